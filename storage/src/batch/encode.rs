//! An encoder for magic-2 batches, uncompressed or compressed, headers included, as a
//! Kafka producer writes them. Used by tests and by tools that write records
//! themselves (control records, dump tools, `weir produce`).

use super::compression::{Compression, compress};
use super::{
    HEADER_BYTES, LOG_OVERHEAD, MAGIC_V2, OFFSET_ATTRIBUTES, OFFSET_BATCH_LENGTH, OFFSET_CRC,
};

/// A record for `encode_batch`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SimpleRecord {
    pub timestamp_ms: i64,
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
}

pub(crate) fn put_unsigned_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}
pub(crate) fn put_varint(out: &mut Vec<u8>, value: i32) {
    put_unsigned_varint(out, u64::from(((value << 1) ^ (value >> 31)) as u32));
}
pub(crate) fn put_varlong(out: &mut Vec<u8>, value: i64) {
    put_unsigned_varint(out, ((value << 1) ^ (value >> 63)) as u64);
}
pub(crate) fn put_nullable(out: &mut Vec<u8>, bytes: Option<&[u8]>) {
    match bytes {
        None => put_varint(out, -1),
        Some(bytes) => {
            put_varint(
                out,
                i32::try_from(bytes.len()).expect("record field below 2 GiB"),
            );
            out.extend_from_slice(bytes);
        }
    }
}

/// A record header: the key is never null, the value may be.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordHeader {
    pub key: Vec<u8>,
    pub value: Option<Vec<u8>>,
}

/// A record as a producer sends it: `SimpleRecord` plus headers. For
/// `encode_producer_batch` (the `weir produce` tool).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProducerRecord {
    pub timestamp_ms: i64,
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    pub headers: Vec<RecordHeader>,
}

/// The fields of one record, borrowed, whichever record type they come from.
struct RecordFields<'a> {
    timestamp_ms: i64,
    key: Option<&'a [u8]>,
    value: Option<&'a [u8]>,
    headers: &'a [RecordHeader],
}

/// Encodes an uncompressed, non-transactional CreateTime batch (producerId −1) the way a
/// Kafka producer would. Used by tests and by tools that write records themselves.
pub fn encode_batch(base_offset: i64, records: &[SimpleRecord]) -> Vec<u8> {
    encode_fields(
        base_offset,
        records.iter().map(|record| RecordFields {
            timestamp_ms: record.timestamp_ms,
            key: record.key.as_deref(),
            value: record.value.as_deref(),
            headers: &[],
        }),
    )
}

/// Encodes `records` (headers included) as one batch compressed with `compression`,
/// non-transactional, CreateTime, producerId −1: stamp an idempotent producer with
/// `set_producer` afterwards.
pub fn encode_producer_batch(
    base_offset: i64,
    records: &[ProducerRecord],
    compression: Compression,
) -> Vec<u8> {
    let plain = encode_fields(
        base_offset,
        records.iter().map(|record| RecordFields {
            timestamp_ms: record.timestamp_ms,
            key: record.key.as_deref(),
            value: record.value.as_deref(),
            headers: &record.headers,
        }),
    );
    compress_batch(plain, compression)
}

fn encode_fields<'a>(
    base_offset: i64,
    records: impl ExactSizeIterator<Item = RecordFields<'a>> + Clone,
) -> Vec<u8> {
    let count = records.len();
    assert!(count > 0, "a batch holds at least one record");
    let count = i32::try_from(count).expect("a batch holds fewer than 2^31 records");
    let base_timestamp = records
        .clone()
        .map(|r| r.timestamp_ms)
        .min()
        .expect("non-empty");
    let max_timestamp = records
        .clone()
        .map(|r| r.timestamp_ms)
        .max()
        .expect("non-empty");
    let mut out = Vec::with_capacity(HEADER_BYTES + count as usize * 16);
    out.extend_from_slice(&base_offset.to_be_bytes());
    out.extend_from_slice(&0i32.to_be_bytes()); // batchLength, patched below
    out.extend_from_slice(&(-1i32).to_be_bytes());
    out.push(MAGIC_V2 as u8);
    out.extend_from_slice(&0u32.to_be_bytes()); // crc, patched below
    out.extend_from_slice(&0i16.to_be_bytes());
    out.extend_from_slice(&(count - 1).to_be_bytes());
    out.extend_from_slice(&base_timestamp.to_be_bytes());
    out.extend_from_slice(&max_timestamp.to_be_bytes());
    out.extend_from_slice(&(-1i64).to_be_bytes());
    out.extend_from_slice(&(-1i16).to_be_bytes());
    out.extend_from_slice(&(-1i32).to_be_bytes());
    out.extend_from_slice(&count.to_be_bytes());
    let mut body = Vec::new();
    for (index, record) in records.enumerate() {
        body.clear();
        body.push(0); // attributes
        put_varlong(&mut body, record.timestamp_ms - base_timestamp);
        put_varint(&mut body, index as i32);
        put_nullable(&mut body, record.key);
        put_nullable(&mut body, record.value);
        put_varint(
            &mut body,
            i32::try_from(record.headers.len()).expect("fewer than 2^31 headers"),
        );
        for header in record.headers {
            put_nullable(&mut body, Some(&header.key));
            put_nullable(&mut body, header.value.as_deref());
        }
        put_varint(&mut out, body.len() as i32);
        out.extend_from_slice(&body);
    }
    seal(&mut out);
    out
}

/// Like `encode_batch`, with the records section compressed by `compression` and the
/// codec set in attributes bits 0–2.
pub fn encode_compressed_batch(
    base_offset: i64,
    records: &[SimpleRecord],
    compression: Compression,
) -> Vec<u8> {
    compress_batch(encode_batch(base_offset, records), compression)
}

/// Replaces the records section of the uncompressed batch `plain` by its compressed
/// form and sets the codec in attributes bits 0–2.
fn compress_batch(plain: Vec<u8>, compression: Compression) -> Vec<u8> {
    if compression == Compression::None {
        return plain;
    }
    let compressed = compress(compression, &plain[HEADER_BYTES..]);
    let mut out = Vec::with_capacity(HEADER_BYTES + compressed.len());
    out.extend_from_slice(&plain[..HEADER_BYTES]);
    out.extend_from_slice(&compressed);
    let attributes = i16::from(compression.codec());
    out[OFFSET_ATTRIBUTES..OFFSET_ATTRIBUTES + 2].copy_from_slice(&attributes.to_be_bytes());
    seal(&mut out);
    out
}

/// Sets batchLength to cover all of `batch` and recomputes the CRC-32C.
pub(crate) fn seal(batch: &mut [u8]) {
    assert!(
        batch.len() >= HEADER_BYTES,
        "a batch holds at least its header"
    );
    let batch_length = i32::try_from(batch.len() - LOG_OVERHEAD).expect("a batch below 2 GiB");
    batch[OFFSET_BATCH_LENGTH..OFFSET_BATCH_LENGTH + 4]
        .copy_from_slice(&batch_length.to_be_bytes());
    let crc = crc32c::crc32c(&batch[OFFSET_ATTRIBUTES..]);
    batch[OFFSET_CRC..OFFSET_CRC + 4].copy_from_slice(&crc.to_be_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::{BatchHeader, decompress_records, validate_batches, walk_record_section};

    #[test]
    fn producer_batches_carry_headers_through_every_codec() {
        let records = vec![
            ProducerRecord {
                timestamp_ms: 2_000,
                key: Some(b"k1".to_vec()),
                value: Some(b"v1".to_vec()),
                headers: vec![
                    RecordHeader {
                        key: b"h1".to_vec(),
                        value: Some(b"x".to_vec()),
                    },
                    RecordHeader {
                        key: b"h2".to_vec(),
                        value: None,
                    },
                ],
            },
            ProducerRecord {
                timestamp_ms: 1_990,
                key: None,
                value: None,
                headers: Vec::new(),
            },
        ];
        for codec in 0..=4 {
            let compression = Compression::from_codec(codec).expect("known codec");
            let batch = encode_producer_batch(5, &records, compression);
            validate_batches(&batch, 1 << 20).expect("valid");
            let header = BatchHeader::new(&batch).expect("header");
            assert_eq!(header.compression_codec(), codec);
            assert_eq!(header.base_timestamp(), 1_990);
            assert_eq!(header.max_timestamp(), 2_000);
            let section = decompress_records(&batch, 0).expect("decompresses");
            let mut seen = Vec::new();
            walk_record_section(&section, header.records_count(), |view| {
                let headers: Vec<(Vec<u8>, Option<Vec<u8>>)> = view
                    .headers()
                    .map(|(key, value)| (key.to_vec(), value.map(<[u8]>::to_vec)))
                    .collect();
                seen.push((
                    view.timestamp_delta,
                    view.key.map(<[u8]>::to_vec),
                    view.value.map(<[u8]>::to_vec),
                    headers,
                ));
                Ok(())
            })
            .expect("walk");
            assert_eq!(
                seen,
                vec![
                    (
                        10,
                        Some(b"k1".to_vec()),
                        Some(b"v1".to_vec()),
                        vec![
                            (b"h1".to_vec(), Some(b"x".to_vec())),
                            (b"h2".to_vec(), None)
                        ]
                    ),
                    (0, None, None, vec![]),
                ],
                "codec {codec}"
            );
        }
        // Without headers, the producer encoding is byte for byte the simple one.
        let simple = encode_batch(
            0,
            &[SimpleRecord {
                timestamp_ms: 7,
                key: None,
                value: Some(b"same".to_vec()),
            }],
        );
        let producer = encode_producer_batch(
            0,
            &[ProducerRecord {
                timestamp_ms: 7,
                key: None,
                value: Some(b"same".to_vec()),
                headers: Vec::new(),
            }],
            Compression::None,
        );
        assert_eq!(simple, producer);
    }
}
