//! An encoder for magic-2 batches, uncompressed or compressed, as a Kafka producer
//! writes them. Used by tests and by tools that write records themselves (control
//! records, dump tools).

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

fn put_unsigned_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}
fn put_varint(out: &mut Vec<u8>, value: i32) {
    put_unsigned_varint(out, u64::from(((value << 1) ^ (value >> 31)) as u32));
}
fn put_varlong(out: &mut Vec<u8>, value: i64) {
    put_unsigned_varint(out, ((value << 1) ^ (value >> 63)) as u64);
}
fn put_nullable(out: &mut Vec<u8>, bytes: &Option<Vec<u8>>) {
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

/// Encodes an uncompressed, non-transactional CreateTime batch (producerId −1) the way a
/// Kafka producer would. Used by tests and by tools that write records themselves.
pub fn encode_batch(base_offset: i64, records: &[SimpleRecord]) -> Vec<u8> {
    assert!(!records.is_empty(), "a batch holds at least one record");
    let base_timestamp = records
        .iter()
        .map(|r| r.timestamp_ms)
        .min()
        .expect("non-empty");
    let max_timestamp = records
        .iter()
        .map(|r| r.timestamp_ms)
        .max()
        .expect("non-empty");
    let mut out = Vec::with_capacity(HEADER_BYTES + records.len() * 16);
    out.extend_from_slice(&base_offset.to_be_bytes());
    out.extend_from_slice(&0i32.to_be_bytes()); // batchLength, patched below
    out.extend_from_slice(&(-1i32).to_be_bytes());
    out.push(MAGIC_V2 as u8);
    out.extend_from_slice(&0u32.to_be_bytes()); // crc, patched below
    out.extend_from_slice(&0i16.to_be_bytes());
    out.extend_from_slice(&(records.len() as i32 - 1).to_be_bytes());
    out.extend_from_slice(&base_timestamp.to_be_bytes());
    out.extend_from_slice(&max_timestamp.to_be_bytes());
    out.extend_from_slice(&(-1i64).to_be_bytes());
    out.extend_from_slice(&(-1i16).to_be_bytes());
    out.extend_from_slice(&(-1i32).to_be_bytes());
    out.extend_from_slice(&(records.len() as i32).to_be_bytes());
    let mut body = Vec::new();
    for (index, record) in records.iter().enumerate() {
        body.clear();
        body.push(0); // attributes
        put_varlong(&mut body, record.timestamp_ms - base_timestamp);
        put_varint(&mut body, index as i32);
        put_nullable(&mut body, &record.key);
        put_nullable(&mut body, &record.value);
        put_varint(&mut body, 0);
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
    let plain = encode_batch(base_offset, records);
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
