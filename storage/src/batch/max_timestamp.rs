//! The record a batch's maxTimestamp belongs to, for ListOffsets MAX_TIMESTAMP (−3).
//!
//! Since KAFKA-16310 (Kafka 3.8) the answer is the offset of the first record whose
//! timestamp equals the batch's maxTimestamp, not the batch's last offset: producers may
//! send records out of timestamp order, so the newest record can sit anywhere in the
//! batch. Finding it means walking the records, decompressing them first if needed.
//! With LogAppendTime every record carries the batch's maxTimestamp, so the first
//! record (the base offset) answers without decompression. No I/O here.

use super::compression::decompress_records;
use super::{BatchHeader, check_batch_integrity, walk_record_section};
use crate::error::StorageError;

/// The offset of the first record in `batch` whose timestamp equals the batch's
/// maxTimestamp. `batch` is exactly one whole batch, read from byte `position` of its
/// file; its length, magic and CRC-32C are checked before anything else is trusted.
///
/// `Ok(None)` when no record carries maxTimestamp: a control batch without records, or a
/// CreateTime batch whose producer wrote a maxTimestamp none of its records has (the
/// broker does not rewrite it). Damaged bytes, an unknown codec, a stream that does not
/// decompress (or decompresses past `DECOMPRESSED_RECORDS_BYTES_MAX`) or malformed
/// records are a `CorruptBatch`.
pub fn offset_of_max_timestamp(batch: &[u8], position: u64) -> Result<Option<i64>, StorageError> {
    let size = check_batch_integrity(batch, position)?;
    if size != batch.len() {
        return Err(StorageError::corrupt(
            position,
            format!("{} bytes follow the {size}-byte batch", batch.len() - size),
        ));
    }
    let header = BatchHeader::new(batch).expect("the integrity check saw a whole header");
    if header.is_log_append_time() {
        return Ok((header.records_count() > 0).then(|| header.base_offset()));
    }
    let records = decompress_records(batch, position)?;
    let (base_offset, base_timestamp, max_timestamp) = (
        header.base_offset(),
        header.base_timestamp(),
        header.max_timestamp(),
    );
    let mut found = None;
    walk_record_section(&records, header.records_count(), |record| {
        // Hostile deltas may overflow; a wrapped sum simply does not match.
        if found.is_none() && base_timestamp.wrapping_add(record.timestamp_delta) == max_timestamp {
            found = Some(base_offset + i64::from(record.offset_delta));
        }
        Ok(())
    })
    .map_err(|reason| StorageError::corrupt(position, reason))?;
    Ok(found)
}

#[cfg(test)]
mod tests {
    //! Goal: the offset matches Kafka's `RecordBatch.offsetOfMaxTimestamp` for every
    //! codec and timestamp type, and damaged input is an error, never a panic. Method:
    //! encode batches with `encode_compressed_batch`, then damage them and reseal the CRC
    //! so the damage reaches the decompressor and the record walk.

    use super::*;
    use crate::batch::compression::Compression;
    use crate::batch::encode::seal;
    use crate::batch::{
        HEADER_BYTES, SimpleRecord, encode_batch, encode_compressed_batch, set_log_append_time,
    };

    const T0: i64 = 1_700_000_000_000;

    /// Offsets 0–9 at t0, t0+1000, ..., t0+9000, then offset 10 at t0+500: the newest
    /// record is offset 9, not the batch's last offset.
    fn eleven_records() -> Vec<SimpleRecord> {
        let mut records: Vec<SimpleRecord> = (0..10)
            .map(|index| SimpleRecord {
                timestamp_ms: T0 + 1000 * index,
                key: None,
                value: Some(format!("value {index}").into_bytes()),
            })
            .collect();
        records.push(SimpleRecord {
            timestamp_ms: T0 + 500,
            key: Some(b"late".to_vec()),
            value: Some(b"value 10".to_vec()),
        });
        records
    }

    #[test]
    fn uncompressed_batch_answers_with_the_first_record_holding_the_max() {
        let batch = encode_batch(0, &eleven_records());
        let header = BatchHeader::new(&batch).expect("header");
        assert_eq!(
            (header.max_timestamp(), header.last_offset()),
            (T0 + 9000, 10)
        );
        assert_eq!(offset_of_max_timestamp(&batch, 0).expect("valid"), Some(9));
        // Relative to the base offset, and ties go to the first record.
        let mut records = eleven_records();
        records[3].timestamp_ms = T0 + 9000;
        let batch = encode_batch(100, &records);
        assert_eq!(
            offset_of_max_timestamp(&batch, 0).expect("valid"),
            Some(103)
        );
    }

    #[test]
    fn every_codec_answers_like_the_uncompressed_batch() {
        for compression in [
            Compression::Gzip,
            Compression::Snappy,
            Compression::Lz4,
            Compression::Zstd,
        ] {
            let batch = encode_compressed_batch(50, &eleven_records(), compression);
            let header = BatchHeader::new(&batch).expect("header");
            assert_eq!(header.compression_codec(), compression.codec());
            assert_eq!(
                offset_of_max_timestamp(&batch, 0).expect("valid"),
                Some(59),
                "{compression:?}"
            );
        }
    }

    #[test]
    fn log_append_time_batch_answers_with_its_base_offset() {
        let mut batch = encode_batch(7, &eleven_records());
        set_log_append_time(&mut batch, T0 + 60_000);
        assert_eq!(offset_of_max_timestamp(&batch, 0).expect("valid"), Some(7));
        let mut batch = encode_compressed_batch(7, &eleven_records(), Compression::Zstd);
        set_log_append_time(&mut batch, T0 + 60_000);
        assert_eq!(offset_of_max_timestamp(&batch, 0).expect("valid"), Some(7));
    }

    #[test]
    fn a_max_timestamp_no_record_carries_gives_no_offset() {
        let mut batch = encode_batch(0, &eleven_records());
        let forged = T0 + 123_456;
        batch[super::super::OFFSET_MAX_TIMESTAMP..super::super::OFFSET_MAX_TIMESTAMP + 8]
            .copy_from_slice(&forged.to_be_bytes());
        seal(&mut batch);
        assert_eq!(offset_of_max_timestamp(&batch, 0).expect("valid"), None);
    }

    #[test]
    fn truncated_compressed_records_are_a_corrupt_batch_at_every_length() {
        for compression in [Compression::Gzip, Compression::Lz4, Compression::Zstd] {
            let whole = encode_compressed_batch(0, &eleven_records(), compression);
            for length in HEADER_BYTES..whole.len() {
                let mut batch = whole[..length].to_vec();
                seal(&mut batch);
                let error =
                    offset_of_max_timestamp(&batch, 4096).expect_err("truncated records must fail");
                assert!(
                    matches!(error, StorageError::CorruptBatch { position: 4096, .. }),
                    "{compression:?} cut at {length}: {error}"
                );
            }
        }
    }

    #[test]
    fn garbage_compressed_records_and_bad_crcs_are_a_corrupt_batch() {
        let mut batch = encode_compressed_batch(0, &eleven_records(), Compression::Gzip);
        for byte in &mut batch[HEADER_BYTES + 10..] {
            *byte = byte.wrapping_mul(31).wrapping_add(7);
        }
        seal(&mut batch);
        let error = offset_of_max_timestamp(&batch, 0).expect_err("garbage");
        assert!(error.to_string().contains("Gzip"), "{error}");
        // Without resealing, the CRC catches damage before decompression.
        let mut batch = encode_compressed_batch(0, &eleven_records(), Compression::Lz4);
        let last = batch.len() - 1;
        batch[last] ^= 1;
        let error = offset_of_max_timestamp(&batch, 0).expect_err("bad crc");
        assert!(error.to_string().contains("CRC-32C"), "{error}");
        // An unassigned codec.
        let mut batch = encode_batch(0, &eleven_records());
        batch[super::super::OFFSET_ATTRIBUTES + 1] |= 5;
        seal(&mut batch);
        let error = offset_of_max_timestamp(&batch, 0).expect_err("codec 5");
        assert!(error.to_string().contains("codec 5"), "{error}");
    }
}
