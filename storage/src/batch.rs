//! Kafka record batches (magic v2): a zero-copy header view, produce-time validation,
//! in-place stamping (offsets, leader epoch, LogAppendTime), bounded decompression of
//! the records section (`compression`), the record holding a batch's maxTimestamp
//! (`max_timestamp`) and an encoder (`encode`). No I/O here.
//!
//! Layout (big-endian), 61-byte header then records:
//!
//! ```text
//!  0 baseOffset i64 | 8 batchLength i32 | 12 partitionLeaderEpoch i32 | 16 magic i8
//! 17 crc u32 (CRC-32C of bytes 21..end) | 21 attributes i16 | 23 lastOffsetDelta i32
//! 27 baseTimestamp i64 | 35 maxTimestamp i64 | 43 producerId i64 | 51 producerEpoch i16
//! 53 baseSequence i32 | 57 recordsCount i32 | 61 records...
//! ```
//!
//! `batchLength` counts the bytes after the length field, so a batch occupies
//! `12 + batchLength` bytes. baseOffset and partitionLeaderEpoch lie before the CRC'd
//! range, which is why the broker can assign offsets and stamp epochs without
//! recomputing the CRC; setting LogAppendTime changes attributes and maxTimestamp,
//! which are covered, so it recomputes the CRC.

use crate::error::StorageError;

/// Bytes before the `batchLength` field ends: baseOffset + batchLength (Kafka's LOG_OVERHEAD).
pub const LOG_OVERHEAD: usize = 12;
/// Size of the v2 batch header, records excluded.
pub const HEADER_BYTES: usize = 61;
/// Smallest legal `batchLength`: a header with no records.
pub const BATCH_LENGTH_MIN: i32 = (HEADER_BYTES - LOG_OVERHEAD) as i32;
/// The only supported message format.
pub const MAGIC_V2: i8 = 2;

pub const OFFSET_BASE_OFFSET: usize = 0;
pub const OFFSET_BATCH_LENGTH: usize = 8;
pub const OFFSET_PARTITION_LEADER_EPOCH: usize = 12;
pub const OFFSET_MAGIC: usize = 16;
pub const OFFSET_CRC: usize = 17;
pub const OFFSET_ATTRIBUTES: usize = 21;
pub const OFFSET_LAST_OFFSET_DELTA: usize = 23;
pub const OFFSET_BASE_TIMESTAMP: usize = 27;
pub const OFFSET_MAX_TIMESTAMP: usize = 35;
pub const OFFSET_PRODUCER_ID: usize = 43;
pub const OFFSET_PRODUCER_EPOCH: usize = 51;
pub const OFFSET_BASE_SEQUENCE: usize = 53;
pub const OFFSET_RECORDS_COUNT: usize = 57;

pub const ATTRIBUTE_COMPRESSION_MASK: i16 = 0x07;
pub const ATTRIBUTE_LOG_APPEND_TIME: i16 = 0x08;
pub const ATTRIBUTE_TRANSACTIONAL: i16 = 0x10;
pub const ATTRIBUTE_CONTROL: i16 = 0x20;
/// KIP-534: baseTimestamp holds the delete horizon of the batch's tombstones (set by
/// the log cleaner the first time it retains them).
pub const ATTRIBUTE_DELETE_HORIZON: i16 = 0x40;

const _: () = assert!(OFFSET_RECORDS_COUNT + 4 == HEADER_BYTES);
const _: () = assert!(BATCH_LENGTH_MIN == 49);

fn be_i16(bytes: &[u8], at: usize) -> i16 {
    i16::from_be_bytes([bytes[at], bytes[at + 1]])
}
fn be_i32(bytes: &[u8], at: usize) -> i32 {
    i32::from_be_bytes(bytes[at..at + 4].try_into().expect("slice of 4 bytes"))
}
fn be_u32(bytes: &[u8], at: usize) -> u32 {
    u32::from_be_bytes(bytes[at..at + 4].try_into().expect("slice of 4 bytes"))
}
fn be_i64(bytes: &[u8], at: usize) -> i64 {
    i64::from_be_bytes(bytes[at..at + 8].try_into().expect("slice of 8 bytes"))
}

/// A zero-copy view of a batch header. Holds at least `HEADER_BYTES` bytes; the
/// records may or may not be present (recovery and reads only look at headers).
#[derive(Clone, Copy)]
pub struct BatchHeader<'a> {
    bytes: &'a [u8],
}

impl<'a> BatchHeader<'a> {
    /// Views the header at the start of `bytes`; `None` if fewer than 61 bytes.
    pub fn new(bytes: &'a [u8]) -> Option<Self> {
        (bytes.len() >= HEADER_BYTES).then_some(BatchHeader { bytes })
    }
    pub fn base_offset(&self) -> i64 {
        be_i64(self.bytes, OFFSET_BASE_OFFSET)
    }
    pub fn batch_length(&self) -> i32 {
        be_i32(self.bytes, OFFSET_BATCH_LENGTH)
    }
    /// Whole size of the batch in bytes (`12 + batchLength`); only meaningful once
    /// `batch_length() >= BATCH_LENGTH_MIN` was checked.
    pub fn size_bytes(&self) -> u64 {
        LOG_OVERHEAD as u64 + self.batch_length().max(0) as u64
    }
    pub fn partition_leader_epoch(&self) -> i32 {
        be_i32(self.bytes, OFFSET_PARTITION_LEADER_EPOCH)
    }
    pub fn magic(&self) -> i8 {
        self.bytes[OFFSET_MAGIC] as i8
    }
    pub fn crc(&self) -> u32 {
        be_u32(self.bytes, OFFSET_CRC)
    }
    pub fn attributes(&self) -> i16 {
        be_i16(self.bytes, OFFSET_ATTRIBUTES)
    }
    pub fn compression_codec(&self) -> u8 {
        (self.attributes() & ATTRIBUTE_COMPRESSION_MASK) as u8
    }
    pub fn is_log_append_time(&self) -> bool {
        self.attributes() & ATTRIBUTE_LOG_APPEND_TIME != 0
    }
    pub fn is_transactional(&self) -> bool {
        self.attributes() & ATTRIBUTE_TRANSACTIONAL != 0
    }
    pub fn is_control(&self) -> bool {
        self.attributes() & ATTRIBUTE_CONTROL != 0
    }
    /// KIP-534's delete horizon: set by the log cleaner on batches holding tombstones,
    /// stored in baseTimestamp; tombstones of the batch may go once it has passed.
    pub fn delete_horizon_ms(&self) -> Option<i64> {
        (self.attributes() & ATTRIBUTE_DELETE_HORIZON != 0).then(|| self.base_timestamp())
    }
    pub fn last_offset_delta(&self) -> i32 {
        be_i32(self.bytes, OFFSET_LAST_OFFSET_DELTA)
    }
    /// `baseOffset + lastOffsetDelta`.
    pub fn last_offset(&self) -> i64 {
        self.base_offset() + i64::from(self.last_offset_delta())
    }
    pub fn base_timestamp(&self) -> i64 {
        be_i64(self.bytes, OFFSET_BASE_TIMESTAMP)
    }
    pub fn max_timestamp(&self) -> i64 {
        be_i64(self.bytes, OFFSET_MAX_TIMESTAMP)
    }
    pub fn producer_id(&self) -> i64 {
        be_i64(self.bytes, OFFSET_PRODUCER_ID)
    }
    pub fn producer_epoch(&self) -> i16 {
        be_i16(self.bytes, OFFSET_PRODUCER_EPOCH)
    }
    pub fn base_sequence(&self) -> i32 {
        be_i32(self.bytes, OFFSET_BASE_SEQUENCE)
    }
    pub fn records_count(&self) -> i32 {
        be_i32(self.bytes, OFFSET_RECORDS_COUNT)
    }
}

/// What validation learned about one batch of a produce request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BatchInfo {
    /// Byte position of the batch within the validated buffer.
    pub position: usize,
    /// Whole batch size (`12 + batchLength`).
    pub size_bytes: u32,
    pub last_offset_delta: i32,
    pub records_count: i32,
    pub max_timestamp: i64,
    pub attributes: i16,
}

/// Checks the parts of a batch that recovery also trusts: header present, length sane
/// and within `available`, magic 2 and CRC-32C. `batch` starts at the batch and may
/// extend past it. Returns the batch size in bytes.
pub fn check_batch_integrity(batch: &[u8], position: u64) -> Result<usize, StorageError> {
    if batch.len() < LOG_OVERHEAD {
        return Err(StorageError::corrupt(
            position,
            format!(
                "only {} bytes remain, fewer than the 12-byte batch prefix",
                batch.len()
            ),
        ));
    }
    let batch_length = be_i32(batch, OFFSET_BATCH_LENGTH);
    if batch_length < BATCH_LENGTH_MIN {
        return Err(StorageError::corrupt(
            position,
            format!("batchLength {batch_length} is below the minimum of {BATCH_LENGTH_MIN}"),
        ));
    }
    let size = LOG_OVERHEAD + batch_length as usize;
    if batch.len() < HEADER_BYTES {
        return Err(StorageError::corrupt(
            position,
            format!(
                "only {} bytes remain, fewer than the 61-byte batch header",
                batch.len()
            ),
        ));
    }
    let magic = batch[OFFSET_MAGIC] as i8;
    if magic != MAGIC_V2 {
        return Err(StorageError::UnsupportedMagic { magic, position });
    }
    if batch.len() < size {
        return Err(StorageError::corrupt(
            position,
            format!(
                "batchLength says {size} bytes but only {} remain",
                batch.len()
            ),
        ));
    }
    let stored = be_u32(batch, OFFSET_CRC);
    let computed = crc32c::crc32c(&batch[OFFSET_ATTRIBUTES..size]);
    if stored != computed {
        return Err(StorageError::corrupt(
            position,
            format!("CRC-32C mismatch: stored {stored:#010x}, computed {computed:#010x}"),
        ));
    }
    Ok(size)
}

/// The CRC-32C of one whole batch as it should be stored at `crc` (bytes 21..end): tools
/// compare it with the stored one to print `isvalid`.
pub fn computed_crc(batch: &[u8]) -> u32 {
    assert!(
        batch.len() >= HEADER_BYTES,
        "a batch holds at least its header"
    );
    crc32c::crc32c(&batch[OFFSET_ATTRIBUTES..])
}

/// Validates every batch of one partition's produce data. The buffer must consist of
/// whole batches only (no partial batch, no trailing bytes). Per batch: header present,
/// batchLength ≥ 49 and within the buffer, magic 2, CRC-32C, size ≤ `max_batch_bytes`,
/// recordsCount ≥ 1 and lastOffsetDelta = recordsCount − 1 (non-control batches), and
/// for uncompressed batches every record is walked with bounds-checked varints, checking
/// the count and that offsetDelta runs 0, 1, 2, ...
pub fn validate_batches(
    records: &[u8],
    max_batch_bytes: u32,
) -> Result<Vec<BatchInfo>, StorageError> {
    validate_batches_to(records, max_batch_bytes, Depth::Records)
}

/// How deep [`validate_batches_to`] looks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Depth {
    /// Every record of uncompressed batches too (a leader, as Kafka's LogValidator).
    Records,
    /// Each batch's header, counts and CRC-32C only: a follower appends what its leader
    /// validated, as Kafka's appendAsFollower does (the CRC still catches damage).
    Batches,
}

/// [`validate_batches`] to the given depth.
pub fn validate_batches_to(
    records: &[u8],
    max_batch_bytes: u32,
    depth: Depth,
) -> Result<Vec<BatchInfo>, StorageError> {
    let mut infos = Vec::new();
    let mut position = 0usize;
    if records.is_empty() {
        return Err(StorageError::corrupt(0, "the record set holds no batch"));
    }
    while position < records.len() {
        let rest = &records[position..];
        // Check the size limit first when the length is readable, so an oversize batch
        // reports MESSAGE_TOO_LARGE even if the client sent it whole.
        if rest.len() >= LOG_OVERHEAD {
            let size_bytes = LOG_OVERHEAD as u64 + be_i32(rest, OFFSET_BATCH_LENGTH).max(0) as u64;
            if size_bytes > u64::from(max_batch_bytes) {
                return Err(StorageError::BatchTooLarge {
                    size_bytes,
                    max_bytes: u64::from(max_batch_bytes),
                });
            }
        }
        let size = check_batch_integrity(rest, position as u64)?;
        let batch = &rest[..size];
        let header = BatchHeader::new(batch).expect("integrity check guarantees a whole header");
        let records_count = header.records_count();
        let last_offset_delta = header.last_offset_delta();
        if !header.is_control() {
            if records_count < 1 {
                return Err(StorageError::corrupt(
                    position as u64,
                    format!("recordsCount is {records_count}"),
                ));
            }
            if i64::from(last_offset_delta) != i64::from(records_count) - 1 {
                return Err(StorageError::corrupt(
                    position as u64,
                    format!(
                        "lastOffsetDelta {last_offset_delta} does not match recordsCount {records_count}"
                    ),
                ));
            }
        } else if records_count < 0 || last_offset_delta < 0 {
            return Err(StorageError::corrupt(
                position as u64,
                "control batch with negative counts",
            ));
        }
        if header.compression_codec() == 0
            && depth == Depth::Records
            && !records_are_sound(&batch[HEADER_BYTES..], records_count)
        {
            // The detailed walk names what is wrong (and has the last word).
            let mut expected_delta = 0i32;
            let walked = walk_records(batch, |record| {
                if record.offset_delta != expected_delta {
                    return Err(format!(
                        "record {expected_delta} has offsetDelta {}, expected {expected_delta}",
                        record.offset_delta
                    ));
                }
                expected_delta += 1;
                Ok(())
            })
            .map_err(|reason| StorageError::corrupt(position as u64, reason))?;
            debug_assert_eq!(walked, records_count as usize);
        } else if Compression::from_codec(header.compression_codec()).is_none() {
            return Err(StorageError::corrupt(
                position as u64,
                format!("unknown compression codec {}", header.compression_codec()),
            ));
        }
        infos.push(BatchInfo {
            position,
            size_bytes: u32::try_from(size).expect("bounded by max_batch_bytes"),
            last_offset_delta,
            records_count,
            max_timestamp: header.max_timestamp(),
            attributes: header.attributes(),
        });
        position += size;
    }
    assert_eq!(position, records.len());
    Ok(infos)
}

/// Iterates over whole batches in a buffer by their length fields only (no CRC check).
/// Stops at the first incomplete or malformed batch.
pub fn iterate_batches(buffer: &[u8]) -> impl Iterator<Item = (usize, BatchHeader<'_>)> + '_ {
    let mut position = 0usize;
    std::iter::from_fn(move || {
        let header = BatchHeader::new(&buffer[position..])?;
        if header.batch_length() < BATCH_LENGTH_MIN {
            return None;
        }
        let size = header.size_bytes() as usize;
        if buffer.len() - position < size {
            return None;
        }
        let at = position;
        position += size;
        Some((
            at,
            BatchHeader {
                bytes: &buffer[at..at + size],
            },
        ))
    })
}

/// Rewrites baseOffset in place (outside the CRC; no recompute).
pub fn set_base_offset(batch: &mut [u8], base_offset: i64) {
    batch[OFFSET_BASE_OFFSET..OFFSET_BASE_OFFSET + 8].copy_from_slice(&base_offset.to_be_bytes());
}

/// Rewrites partitionLeaderEpoch in place (outside the CRC; no recompute).
pub fn set_partition_leader_epoch(batch: &mut [u8], epoch: i32) {
    batch[OFFSET_PARTITION_LEADER_EPOCH..OFFSET_PARTITION_LEADER_EPOCH + 4]
        .copy_from_slice(&epoch.to_be_bytes());
}

/// Marks the batch as LogAppendTime with maxTimestamp = `now_ms` and recomputes the
/// CRC. `batch` must be exactly one whole batch.
pub fn set_log_append_time(batch: &mut [u8], now_ms: i64) {
    assert!(batch.len() >= HEADER_BYTES);
    let attributes = be_i16(batch, OFFSET_ATTRIBUTES) | ATTRIBUTE_LOG_APPEND_TIME;
    batch[OFFSET_ATTRIBUTES..OFFSET_ATTRIBUTES + 2].copy_from_slice(&attributes.to_be_bytes());
    batch[OFFSET_MAX_TIMESTAMP..OFFSET_MAX_TIMESTAMP + 8].copy_from_slice(&now_ms.to_be_bytes());
    let crc = crc32c::crc32c(&batch[OFFSET_ATTRIBUTES..]);
    batch[OFFSET_CRC..OFFSET_CRC + 4].copy_from_slice(&crc.to_be_bytes());
}

/// Stamps an idempotent producer's id, epoch and base sequence into one whole batch
/// (as the producer itself would have) and recomputes the CRC. For tests and load tools.
pub fn set_producer(batch: &mut [u8], producer_id: i64, epoch: i16, base_sequence: i32) {
    assert!(batch.len() >= HEADER_BYTES);
    batch[OFFSET_PRODUCER_ID..OFFSET_PRODUCER_ID + 8].copy_from_slice(&producer_id.to_be_bytes());
    batch[OFFSET_PRODUCER_EPOCH..OFFSET_PRODUCER_EPOCH + 2].copy_from_slice(&epoch.to_be_bytes());
    batch[OFFSET_BASE_SEQUENCE..OFFSET_BASE_SEQUENCE + 4]
        .copy_from_slice(&base_sequence.to_be_bytes());
    let crc = crc32c::crc32c(&batch[OFFSET_ATTRIBUTES..]);
    batch[OFFSET_CRC..OFFSET_CRC + 4].copy_from_slice(&crc.to_be_bytes());
}

mod compression;
mod encode;
mod max_timestamp;
mod records;
pub use compression::compress;
pub use compression::{Compression, DECOMPRESSED_RECORDS_BYTES_MAX, decompress_records};
pub use encode::{
    ProducerRecord, RecordHeader, SimpleRecord, encode_batch, encode_compressed_batch,
    encode_producer_batch,
};
pub(crate) use encode::{put_nullable, put_varint, put_varlong, seal};
pub use max_timestamp::offset_of_max_timestamp;
use records::records_are_sound;
pub use records::{RecordView, walk_record_section, walk_records};

#[cfg(test)]
mod tests {
    use super::*;

    fn record(timestamp_ms: i64, value: &[u8]) -> SimpleRecord {
        SimpleRecord {
            timestamp_ms,
            key: None,
            value: Some(value.to_vec()),
        }
    }

    fn sample() -> Vec<u8> {
        encode_batch(
            0,
            &[record(1000, b"a"), record(1005, b"bc"), record(1002, b"")],
        )
    }

    #[test]
    fn golden_batch_layout_matches_kafka() {
        let batch = encode_batch(
            0,
            &[SimpleRecord {
                timestamp_ms: 1_700_000_000_000,
                key: None,
                value: Some(b"hi".to_vec()),
            }],
        );
        // Record: length 8 (zigzag 16), attributes 0, tsDelta 0, offsetDelta 0, key -1 (zigzag 1), valueLen 2 (zigzag 4), "hi", headers 0.
        let record_bytes = [0x10, 0x00, 0x00, 0x00, 0x01, 0x04, b'h', b'i', 0x00];
        assert_eq!(batch.len(), HEADER_BYTES + record_bytes.len());
        assert_eq!(&batch[HEADER_BYTES..], &record_bytes);
        assert_eq!(&batch[0..8], &[0; 8]);
        assert_eq!(be_i32(&batch, 8), (batch.len() - 12) as i32);
        assert_eq!(&batch[12..16], &[0xff; 4]);
        assert_eq!(batch[16], 2);
        assert_eq!(&batch[21..23], &[0, 0]);
        assert_eq!(&batch[23..27], &[0, 0, 0, 0]);
        assert_eq!(be_i64(&batch, 27), 1_700_000_000_000);
        assert_eq!(be_i64(&batch, 35), 1_700_000_000_000);
        assert_eq!(&batch[43..53], &[0xff; 10]);
        assert_eq!(&batch[53..57], &[0xff; 4]);
        assert_eq!(&batch[57..61], &[0, 0, 0, 1]);
        assert_eq!(be_u32(&batch, 17), crc32c::crc32c(&batch[21..]));
        // The CRC-32C (Castagnoli) of "123456789" is the standard check value.
        assert_eq!(crc32c::crc32c(b"123456789"), 0xe306_9283);
    }

    #[test]
    fn valid_batches_report_their_shape() {
        let mut buffer = sample();
        buffer.extend_from_slice(&encode_batch(3, &[record(7, b"x")]));
        let infos = validate_batches(&buffer, 1 << 20).expect("valid");
        assert_eq!(infos.len(), 2);
        assert_eq!(infos[0].position, 0);
        assert_eq!(infos[0].records_count, 3);
        assert_eq!(infos[0].last_offset_delta, 2);
        assert_eq!(infos[0].max_timestamp, 1005);
        assert_eq!(infos[1].position, infos[0].size_bytes as usize);
        assert_eq!(infos[1].records_count, 1);
        let headers: Vec<i64> = iterate_batches(&buffer)
            .map(|(_, header)| header.base_offset())
            .collect();
        assert_eq!(headers, vec![0, 3]);
    }

    #[test]
    fn truncation_at_every_byte_fails_cleanly() {
        let batch = sample();
        for length in 0..batch.len() {
            let error =
                validate_batches(&batch[..length], 1 << 20).expect_err("truncated batch must fail");
            assert!(
                matches!(error, StorageError::CorruptBatch { .. }),
                "length {length}: {error}"
            );
        }
        // A valid batch followed by a partial one fails too.
        let mut two = batch.clone();
        two.extend_from_slice(&batch);
        for length in batch.len() + 1..two.len() {
            assert!(
                validate_batches(&two[..length], 1 << 20).is_err(),
                "length {length}"
            );
        }
    }

    #[test]
    fn every_bit_flip_in_the_crc_range_is_detected() {
        let batch = sample();
        for byte in OFFSET_CRC..batch.len() {
            for bit in 0..8 {
                let mut flipped = batch.clone();
                flipped[byte] ^= 1 << bit;
                assert!(
                    validate_batches(&flipped, 1 << 20).is_err(),
                    "byte {byte} bit {bit}"
                );
            }
        }
    }

    #[test]
    fn bad_magic_trailing_garbage_and_oversize_are_rejected() {
        let mut batch = sample();
        batch[OFFSET_MAGIC] = 1;
        assert!(matches!(
            validate_batches(&batch, 1 << 20),
            Err(StorageError::UnsupportedMagic {
                magic: 1,
                position: 0
            })
        ));
        let mut batch = sample();
        batch.push(0);
        assert!(matches!(
            validate_batches(&batch, 1 << 20),
            Err(StorageError::CorruptBatch { .. })
        ));
        let batch = sample();
        assert!(matches!(
            validate_batches(&batch, 20),
            Err(StorageError::BatchTooLarge { max_bytes: 20, .. })
        ));
        assert!(validate_batches(&batch, batch.len() as u32).is_ok());
        assert!(validate_batches(&[], 100).is_err());
    }

    #[test]
    fn record_count_mismatch_is_rejected_even_with_a_valid_crc() {
        let mut batch = sample();
        batch[OFFSET_RECORDS_COUNT + 3] = 2;
        let crc = crc32c::crc32c(&batch[OFFSET_ATTRIBUTES..]);
        batch[OFFSET_CRC..OFFSET_CRC + 4].copy_from_slice(&crc.to_be_bytes());
        let error = validate_batches(&batch, 1 << 20).expect_err("count mismatch");
        assert!(error.to_string().contains("lastOffsetDelta"), "{error}");
        // Fix lastOffsetDelta too: now the record walk finds a leftover record.
        batch[OFFSET_LAST_OFFSET_DELTA + 3] = 1;
        let crc = crc32c::crc32c(&batch[OFFSET_ATTRIBUTES..]);
        batch[OFFSET_CRC..OFFSET_CRC + 4].copy_from_slice(&crc.to_be_bytes());
        let error = validate_batches(&batch, 1 << 20).expect_err("records beyond count");
        assert!(error.to_string().contains("follow the last"), "{error}");
        // A follower checks batches, not records: the leader validated them.
        let infos = validate_batches_to(&batch, 1 << 20, Depth::Batches).expect("batch intact");
        assert_eq!(infos[0].records_count, 2);
        let mut damaged = batch.clone();
        damaged[OFFSET_CRC + 8] ^= 1;
        validate_batches_to(&damaged, 1 << 20, Depth::Batches).expect_err("the CRC catches it");
    }

    #[test]
    fn stamping_offsets_and_epoch_keeps_the_crc_valid() {
        let mut batch = sample();
        set_base_offset(&mut batch, 42);
        set_partition_leader_epoch(&mut batch, 7);
        validate_batches(&batch, 1 << 20).expect("still valid");
        let header = BatchHeader::new(&batch).expect("header");
        assert_eq!(header.base_offset(), 42);
        assert_eq!(header.last_offset(), 44);
        assert_eq!(header.partition_leader_epoch(), 7);
    }

    #[test]
    fn log_append_time_sets_the_bit_and_recomputes_the_crc() {
        let mut batch = sample();
        let before = BatchHeader::new(&batch).expect("header").crc();
        set_log_append_time(&mut batch, 99_999);
        let header = BatchHeader::new(&batch).expect("header");
        assert!(header.is_log_append_time());
        assert_eq!(header.max_timestamp(), 99_999);
        assert_eq!(header.base_timestamp(), 1000);
        assert_ne!(header.crc(), before);
        assert_eq!(header.crc(), crc32c::crc32c(&batch[OFFSET_ATTRIBUTES..]));
        validate_batches(&batch, 1 << 20).expect("valid after stamping");
    }
}
