//! The records of one partition's Fetch answer, decoded for `weir consume` with the
//! storage crate's batch codec (the same one the broker validates with): whole batches
//! only (a trailing partial batch is fetched again), CRC-32C checked, decompressed,
//! records before the fetch offset skipped, control batches never printed, aborted
//! transactions skipped under read_committed.

use std::collections::HashSet;

use kafka_protocol::messages::fetch_response::AbortedTransaction;
use weir_storage::batch::{
    BatchHeader, check_batch_integrity, decompress_records, iterate_batches, walk_record_section,
};

use super::consumer::{ConsumeError, IsolationLevel};
use super::record_format::{ConsumedRecord, TimestampType};

/// The control record key type of an abort marker.
const CONTROL_TYPE_ABORT: i16 = 0;

/// Decodes one partition's fetched record bytes from `fetch_offset`: records of whole
/// batches only, plus the offset to fetch next. `aborted` is the fetch response's
/// aborted transactions list, used under read_committed (Kafka's consumer logic:
/// a transactional batch of a producer with an aborted transaction starting at or
/// before the batch is skipped, until that producer's abort marker).
pub fn decode_partition(
    partition: i32,
    fetch_offset: i64,
    bytes: &[u8],
    aborted: Option<&[AbortedTransaction]>,
    isolation: IsolationLevel,
) -> Result<(Vec<ConsumedRecord>, i64), ConsumeError> {
    let mut records = Vec::new();
    let mut next_offset = fetch_offset;
    let mut aborted: Vec<(i64, i64)> = aborted
        .unwrap_or_default()
        .iter()
        .map(|transaction| (transaction.first_offset, transaction.producer_id.0))
        .collect();
    aborted.sort_unstable();
    let mut aborted = aborted.into_iter().peekable();
    let mut aborted_producers: HashSet<i64> = HashSet::new();
    let corrupt = |offset: i64, reason: String| ConsumeError::Records {
        partition,
        offset,
        reason,
    };
    for (position, header) in iterate_batches(bytes) {
        let size = header.size_bytes() as usize;
        let batch = &bytes[position..position + size];
        if header.last_offset() < next_offset {
            continue;
        }
        if header.magic() != 2 {
            return Err(corrupt(
                header.base_offset(),
                format!(
                    "message format v{} is not supported (only v2 record batches)",
                    header.magic()
                ),
            ));
        }
        check_batch_integrity(batch, position as u64)
            .map_err(|error| corrupt(header.base_offset(), error.to_string()))?;
        let header = BatchHeader::new(batch).expect("checked batch holds its header");
        if isolation == IsolationLevel::ReadCommitted && header.producer_id() >= 0 {
            while let Some(&(first_offset, producer_id)) = aborted.peek() {
                if first_offset > header.last_offset() {
                    break;
                }
                aborted_producers.insert(producer_id);
                aborted.next();
            }
            if header.is_control() {
                if control_type(batch) == Some(CONTROL_TYPE_ABORT) {
                    aborted_producers.remove(&header.producer_id());
                }
            } else if header.is_transactional() && aborted_producers.contains(&header.producer_id())
            {
                next_offset = header.last_offset() + 1;
                continue;
            }
        }
        if header.is_control() {
            next_offset = header.last_offset() + 1;
            continue;
        }
        let section = decompress_records(batch, position as u64)
            .map_err(|error| corrupt(header.base_offset(), error.to_string()))?;
        let leader_epoch = Some(header.partition_leader_epoch()).filter(|&epoch| epoch >= 0);
        let log_append_time = header.is_log_append_time();
        walk_record_section(&section, header.records_count(), |view| {
            let offset = header.base_offset() + i64::from(view.offset_delta);
            if offset < next_offset {
                return Ok(());
            }
            let (timestamp_type, timestamp) = if log_append_time {
                (TimestampType::LogAppendTime, header.max_timestamp())
            } else {
                (
                    TimestampType::CreateTime,
                    header.base_timestamp() + view.timestamp_delta,
                )
            };
            records.push(ConsumedRecord {
                partition,
                offset,
                timestamp_type,
                timestamp,
                leader_epoch,
                key: view.key.map(<[u8]>::to_vec),
                value: view.value.map(<[u8]>::to_vec),
                headers: view
                    .headers()
                    .map(|(key, value)| (key.to_vec(), value.map(<[u8]>::to_vec)))
                    .collect(),
            });
            Ok(())
        })
        .map_err(|reason| corrupt(header.base_offset(), reason))?;
        next_offset = header.last_offset() + 1;
    }
    if next_offset == fetch_offset && !bytes.is_empty() && iterate_batches(bytes).next().is_none() {
        // Brokers since Kafka 0.10.1 always return at least one whole batch; bytes
        // without one mean the batch is larger than everything this fetch allowed.
        return Err(corrupt(
            fetch_offset,
            format!(
                "the fetch returned {} bytes without a whole batch; \
                 raise max.partition.fetch.bytes / fetch.max.bytes",
                bytes.len()
            ),
        ));
    }
    Ok((records, next_offset))
}

/// The type of the first control record of a control batch (0 abort, 1 commit).
fn control_type(batch: &[u8]) -> Option<i16> {
    let section = decompress_records(batch, 0).ok()?;
    let header = BatchHeader::new(batch)?;
    let mut kind = None;
    walk_record_section(&section, header.records_count(), |view| {
        if kind.is_none() {
            kind = view
                .key
                .filter(|key| key.len() >= 4)
                .map(|key| i16::from_be_bytes([key[2], key[3]]));
        }
        Ok(())
    })
    .ok()?;
    kind
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::ProducerId;
    use weir_storage::batch::{
        Compression, ProducerRecord, RecordHeader, SimpleRecord, encode_batch,
        encode_producer_batch, set_base_offset, set_log_append_time, set_partition_leader_epoch,
        set_producer,
    };

    fn value_record(timestamp_ms: i64, value: &str) -> SimpleRecord {
        SimpleRecord {
            timestamp_ms,
            key: None,
            value: Some(value.as_bytes().to_vec()),
        }
    }

    fn values(records: &[ConsumedRecord]) -> Vec<(i64, String)> {
        records
            .iter()
            .map(|record| {
                (
                    record.offset,
                    String::from_utf8_lossy(record.value.as_deref().unwrap_or(b"null"))
                        .into_owned(),
                )
            })
            .collect()
    }

    #[test]
    fn records_before_the_fetch_offset_and_partial_batches_are_skipped() {
        let mut bytes = encode_batch(0, &[value_record(10, "a"), value_record(11, "b")]);
        bytes.extend(encode_batch(2, &[value_record(12, "c")]));
        let third = encode_batch(3, &[value_record(13, "d")]);
        bytes.extend_from_slice(&third[..third.len() - 3]);
        let (records, next) =
            decode_partition(4, 1, &bytes, None, IsolationLevel::ReadUncommitted).expect("decodes");
        assert_eq!(
            values(&records),
            vec![(1, "b".to_string()), (2, "c".to_string())]
        );
        assert_eq!(next, 3, "the partial batch is fetched again");
        assert!(records.iter().all(|record| record.partition == 4));
        assert_eq!(records[0].timestamp, 11);
        assert_eq!(records[0].timestamp_type, TimestampType::CreateTime);
    }

    #[test]
    fn compressed_batches_with_headers_decode() {
        let batch = encode_producer_batch(
            7,
            &[ProducerRecord {
                timestamp_ms: 5,
                key: Some(b"k".to_vec()),
                value: None,
                headers: vec![RecordHeader {
                    key: b"h".to_vec(),
                    value: Some(b"v".to_vec()),
                }],
            }],
            Compression::Zstd,
        );
        let (records, next) =
            decode_partition(0, 7, &batch, None, IsolationLevel::ReadUncommitted).expect("decodes");
        assert_eq!(next, 8);
        assert_eq!(records.len(), 1);
        assert_eq!(records[0].key.as_deref(), Some(&b"k"[..]));
        assert_eq!(records[0].value, None);
        assert_eq!(
            records[0].headers,
            vec![(b"h".to_vec(), Some(b"v".to_vec()))]
        );
    }

    #[test]
    fn log_append_time_and_leader_epoch_come_from_the_batch() {
        let mut batch = encode_batch(0, &[value_record(10, "a")]);
        set_partition_leader_epoch(&mut batch, 3);
        set_log_append_time(&mut batch, 99);
        let (records, _) =
            decode_partition(0, 0, &batch, None, IsolationLevel::ReadUncommitted).expect("decodes");
        assert_eq!(records[0].timestamp_type, TimestampType::LogAppendTime);
        assert_eq!(records[0].timestamp, 99);
        assert_eq!(records[0].leader_epoch, Some(3));
    }

    #[test]
    fn a_corrupt_batch_is_an_error_naming_partition_and_offset() {
        let mut batch = encode_batch(0, &[value_record(10, "a")]);
        set_base_offset(&mut batch, 40);
        let last = batch.len() - 1;
        batch[last] ^= 0xff;
        let error = decode_partition(2, 40, &batch, None, IsolationLevel::ReadUncommitted)
            .expect_err("CRC mismatch");
        assert!(
            error.to_string().starts_with("partition 2 at offset 40"),
            "{error}"
        );
    }

    /// A transactional batch of `producer_id` at `base_offset`.
    fn transactional(base_offset: i64, producer_id: i64, value: &str) -> Vec<u8> {
        let mut batch = encode_batch(base_offset, &[value_record(1, value)]);
        batch[21..23].copy_from_slice(&0x10i16.to_be_bytes());
        set_producer(&mut batch, producer_id, 0, 0);
        batch
    }

    /// A control batch with one marker (0 abort, 1 commit) of `producer_id`.
    fn marker(base_offset: i64, producer_id: i64, kind: i16) -> Vec<u8> {
        let mut key = Vec::new();
        key.extend_from_slice(&0i16.to_be_bytes());
        key.extend_from_slice(&kind.to_be_bytes());
        let mut batch = encode_batch(
            base_offset,
            &[SimpleRecord {
                timestamp_ms: 1,
                key: Some(key),
                value: Some(vec![0, 0, 0, 0, 0, 0]),
            }],
        );
        batch[21..23].copy_from_slice(&0x30i16.to_be_bytes());
        set_producer(&mut batch, producer_id, 0, 0);
        batch
    }

    #[test]
    fn read_committed_skips_aborted_transactions_and_all_modes_skip_markers() {
        let mut bytes = transactional(0, 7, "aborted");
        bytes.extend(transactional(1, 8, "committed"));
        bytes.extend(marker(2, 7, 0));
        bytes.extend(marker(3, 8, 1));
        bytes.extend(transactional(4, 7, "later"));
        let aborted = [AbortedTransaction::default()
            .with_producer_id(ProducerId(7))
            .with_first_offset(0)];
        let (records, next) =
            decode_partition(0, 0, &bytes, Some(&aborted), IsolationLevel::ReadCommitted)
                .expect("decodes");
        assert_eq!(
            values(&records),
            vec![(1, "committed".to_string()), (4, "later".to_string())]
        );
        assert_eq!(next, 5);
        let (records, _) = decode_partition(
            0,
            0,
            &bytes,
            Some(&aborted),
            IsolationLevel::ReadUncommitted,
        )
        .expect("decodes");
        assert_eq!(records.len(), 3, "markers never print");
    }
}
