//! Idempotent-producer state of one partition: who wrote what, with which sequences.
//!
//! ```text
//!  producer id ─► ProducerEntry { epoch, last 5 batches (first/last seq, offsets, time) }
//!
//!  client batch ─► check():  same epoch and an identical sequence range cached ─► Duplicate
//!                            epoch below the producer's                      ─► INVALID_PRODUCER_EPOCH
//!                            new epoch, sequence ≠ 0                          ─► OUT_OF_ORDER_SEQUENCE
//!                            same epoch, sequence ≠ last + 1                  ─► OUT_OF_ORDER_SEQUENCE
//!                            otherwise                                        ─► Append
//!  written batch ─► apply(): new epoch clears the cache; the batch joins it (oldest of 5 drops)
//! ```
//!
//! This is Kafka's `ProducerStateManager`/`ProducerAppendInfo` logic for client appends,
//! kept sans-IO so it can be tested exhaustively. Kafka's rules worth naming:
//! * A producer the partition has never seen (or forgot: expiry, a log rebuilt without
//!   it) may start at any sequence (KIP-360: no UNKNOWN_PRODUCER_ID from the broker).
//! * A duplicate is only recognised among the last [`BATCHES_RETAINED_PER_PRODUCER`]
//!   batches, which is why clients cap `max.in.flight.requests.per.connection` at 5.
//! * Sequences wrap from `i32::MAX` to 0.
//!
//! Snapshots use Kafka's `<offset>.snapshot` format (ProducerSnapshot v1): the state of
//! every producer after all batches below `offset`, one entry per producer holding its
//! last batch. Layout (big-endian): version i16 = 1 | crc u32 (CRC-32C of everything
//! after it) | count i32 | count × (producer id i64, epoch i16, last sequence i32, last
//! offset i64, offset delta i32, timestamp i64, coordinator epoch i32, current
//! transaction first offset i64).

use std::collections::{HashMap, VecDeque};

/// Batches without a producer carry this id.
pub const NO_PRODUCER_ID: i64 = -1;
/// The epoch of a producer the partition has no state for.
pub const NO_PRODUCER_EPOCH: i16 = -1;
/// The sequence of a batch without a producer, and the last sequence of no batch.
pub const NO_SEQUENCE: i32 = -1;
/// Batches remembered per producer for duplicate detection: Kafka's
/// `NUM_BATCHES_TO_RETAIN`, which is also the largest `max.in.flight.requests.per.connection`
/// an idempotent producer may use.
pub const BATCHES_RETAINED_PER_PRODUCER: usize = 5;
/// Kafka's default `producer.id.expiration.ms` (one day).
pub const PRODUCER_ID_EXPIRATION_MS_DEFAULT: i64 = 86_400_000;

/// Snapshot file extension (`00000000000000004711.snapshot`).
pub const SNAPSHOT_EXTENSION: &str = "snapshot";
const SNAPSHOT_VERSION: i16 = 1;
const SNAPSHOT_HEADER_BYTES: usize = 2 + 4 + 4;
const SNAPSHOT_ENTRY_BYTES: usize = 8 + 2 + 4 + 8 + 4 + 8 + 4 + 8;
/// A snapshot file larger than this is refused (about 23 million producers): bounds the
/// memory a damaged or hostile file can make the loader allocate.
pub const SNAPSHOT_BYTES_MAX: usize = 1 << 30;

/// The producer fields of one record batch header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProducerBatch {
    pub producer_id: i64,
    pub epoch: i16,
    pub first_sequence: i32,
    /// Offsets in the batch minus one (`lastOffsetDelta`).
    pub offset_delta: i32,
    /// The batch's maxTimestamp as written (after LogAppendTime stamping).
    pub max_timestamp: i64,
}

impl ProducerBatch {
    /// The sequence of the batch's last record (wrapping at `i32::MAX` as Kafka does).
    pub fn last_sequence(&self) -> i32 {
        increment_sequence(self.first_sequence, self.offset_delta)
    }
}

/// One written batch as a producer's cache remembers it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BatchMetadata {
    pub last_sequence: i32,
    pub last_offset: i64,
    pub offset_delta: i32,
    pub timestamp: i64,
}

impl BatchMetadata {
    pub fn first_sequence(&self) -> i32 {
        decrement_sequence(self.last_sequence, self.offset_delta)
    }
    pub fn first_offset(&self) -> i64 {
        self.last_offset - i64::from(self.offset_delta)
    }
}

/// What the partition knows about one producer id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProducerEntry {
    pub producer_id: i64,
    pub epoch: i16,
    /// Oldest first, at most [`BATCHES_RETAINED_PER_PRODUCER`].
    pub batches: VecDeque<BatchMetadata>,
    /// maxTimestamp of the producer's last batch; expiry counts from it.
    pub last_timestamp: i64,
    /// Kept for the snapshot format; transactions do not exist yet (−1).
    pub coordinator_epoch: i32,
    /// Kept for the snapshot format; −1 without an open transaction.
    pub current_txn_first_offset: i64,
}

impl ProducerEntry {
    fn empty(producer_id: i64) -> Self {
        ProducerEntry {
            producer_id,
            epoch: NO_PRODUCER_EPOCH,
            batches: VecDeque::with_capacity(BATCHES_RETAINED_PER_PRODUCER),
            last_timestamp: -1,
            coordinator_epoch: -1,
            current_txn_first_offset: -1,
        }
    }

    /// Sequence of the producer's last written record, [`NO_SEQUENCE`] if none is cached.
    pub fn last_sequence(&self) -> i32 {
        self.batches
            .back()
            .map_or(NO_SEQUENCE, |batch| batch.last_sequence)
    }
}

/// The verdict on a client batch before it is written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SequenceCheck {
    /// Write it.
    Append,
    /// Already written (a retry): answer with the original batch, write nothing.
    Duplicate(BatchMetadata),
}

/// Why a client batch is refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ProducerStateError {
    /// INVALID_PRODUCER_EPOCH: a newer epoch of this producer id has written here.
    #[error(
        "producer {producer_id} wrote with epoch {epoch}, which is older than its epoch {current_epoch} on this partition"
    )]
    StaleEpoch {
        producer_id: i64,
        epoch: i16,
        current_epoch: i16,
    },
    /// OUT_OF_ORDER_SEQUENCE_NUMBER: the batch does not continue the producer's sequence.
    #[error(
        "out of order sequence number for producer {producer_id} (epoch {epoch}): got {first_sequence}, expected {expected}"
    )]
    OutOfOrderSequence {
        producer_id: i64,
        epoch: i16,
        first_sequence: i32,
        /// The sequence that would have been accepted.
        expected: i32,
    },
}

/// A snapshot file that cannot be used; the loader deletes it and rebuilds from the log.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("producer snapshot is corrupt at byte {offset}: {reason}")]
pub struct CorruptSnapshot {
    pub offset: usize,
    pub reason: String,
}

/// All producers of one partition.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProducerStateTable {
    producers: HashMap<i64, ProducerEntry>,
}

impl ProducerStateTable {
    pub fn len(&self) -> usize {
        self.producers.len()
    }
    pub fn is_empty(&self) -> bool {
        self.producers.is_empty()
    }
    pub fn get(&self, producer_id: i64) -> Option<&ProducerEntry> {
        self.producers.get(&producer_id)
    }
    /// Every producer, in producer-id order (stable output for DescribeProducers).
    pub fn entries(&self) -> Vec<&ProducerEntry> {
        let mut entries: Vec<_> = self.producers.values().collect();
        entries.sort_unstable_by_key(|entry| entry.producer_id);
        entries
    }

    /// Checks a client batch against the producer's state (Kafka's duplicate lookup,
    /// `checkProducerEpoch` and `checkSequence`, in that order).
    pub fn check(&self, batch: &ProducerBatch) -> Result<SequenceCheck, ProducerStateError> {
        assert!(
            batch.producer_id != NO_PRODUCER_ID,
            "only idempotent batches are checked"
        );
        let Some(entry) = self.producers.get(&batch.producer_id) else {
            return Ok(SequenceCheck::Append);
        };
        if batch.epoch == entry.epoch {
            let last_sequence = batch.last_sequence();
            if let Some(original) = entry.batches.iter().find(|cached| {
                cached.first_sequence() == batch.first_sequence
                    && cached.last_sequence == last_sequence
            }) {
                return Ok(SequenceCheck::Duplicate(*original));
            }
        }
        if batch.epoch < entry.epoch {
            return Err(ProducerStateError::StaleEpoch {
                producer_id: batch.producer_id,
                epoch: batch.epoch,
                current_epoch: entry.epoch,
            });
        }
        let out_of_order = |expected| ProducerStateError::OutOfOrderSequence {
            producer_id: batch.producer_id,
            epoch: batch.epoch,
            first_sequence: batch.first_sequence,
            expected,
        };
        if batch.epoch != entry.epoch {
            // A bumped epoch restarts the sequence (KIP-360).
            if batch.first_sequence != 0 && entry.epoch != NO_PRODUCER_EPOCH {
                return Err(out_of_order(0));
            }
        } else if entry.epoch != NO_PRODUCER_EPOCH
            && !in_sequence(entry.last_sequence(), batch.first_sequence)
        {
            return Err(out_of_order(increment_sequence(entry.last_sequence(), 1)));
        }
        Ok(SequenceCheck::Append)
    }

    /// Records a written batch (client append or log replay); `last_offset` is the
    /// offset of its last record.
    pub fn apply(&mut self, batch: &ProducerBatch, last_offset: i64) {
        assert!(
            batch.producer_id != NO_PRODUCER_ID,
            "only idempotent batches are recorded"
        );
        assert!(batch.offset_delta >= 0, "a batch holds at least one offset");
        let entry = self
            .producers
            .entry(batch.producer_id)
            .or_insert_with(|| ProducerEntry::empty(batch.producer_id));
        if entry.epoch != batch.epoch {
            entry.batches.clear();
            entry.epoch = batch.epoch;
        }
        if let Some(previous) = entry.batches.back() {
            assert!(
                last_offset > previous.last_offset,
                "a producer's batches are recorded in offset order"
            );
        }
        if entry.batches.len() == BATCHES_RETAINED_PER_PRODUCER {
            entry.batches.pop_front();
        }
        entry.batches.push_back(BatchMetadata {
            last_sequence: batch.last_sequence(),
            last_offset,
            offset_delta: batch.offset_delta,
            timestamp: batch.max_timestamp,
        });
        entry.last_timestamp = batch.max_timestamp;
    }

    /// Forgets producers idle for `expiration_ms` (Kafka's `producer.id.expiration.ms`,
    /// counted from the last batch's timestamp). Returns how many were removed.
    pub fn remove_expired(&mut self, now_ms: i64, expiration_ms: i64) -> usize {
        let before = self.producers.len();
        self.producers
            .retain(|_, entry| !is_expired(entry, now_ms, expiration_ms));
        before - self.producers.len()
    }

    /// Forgets producers whose last batch lies wholly below `log_start_offset` (or that
    /// have no batch): their data is gone, as Kafka's `truncateHead` does when the log
    /// start advances. Returns how many were removed.
    pub fn remove_before(&mut self, log_start_offset: i64) -> usize {
        let before = self.producers.len();
        self.producers.retain(|_, entry| {
            entry
                .batches
                .back()
                .is_some_and(|batch| batch.last_offset >= log_start_offset)
        });
        before - self.producers.len()
    }

    /// Kafka's snapshot bytes for this table.
    pub fn encode_snapshot(&self) -> Vec<u8> {
        let entries = self.entries();
        let mut bytes =
            Vec::with_capacity(SNAPSHOT_HEADER_BYTES + entries.len() * SNAPSHOT_ENTRY_BYTES);
        bytes.extend_from_slice(&SNAPSHOT_VERSION.to_be_bytes());
        bytes.extend_from_slice(&[0; 4]); // CRC, filled in below
        let count = i32::try_from(entries.len()).expect("fewer than 2^31 producers");
        bytes.extend_from_slice(&count.to_be_bytes());
        for entry in entries {
            let last = entry.batches.back();
            bytes.extend_from_slice(&entry.producer_id.to_be_bytes());
            bytes.extend_from_slice(&entry.epoch.to_be_bytes());
            bytes.extend_from_slice(&last.map_or(NO_SEQUENCE, |b| b.last_sequence).to_be_bytes());
            bytes.extend_from_slice(&last.map_or(-1, |b| b.last_offset).to_be_bytes());
            bytes.extend_from_slice(&last.map_or(0, |b| b.offset_delta).to_be_bytes());
            bytes.extend_from_slice(&entry.last_timestamp.to_be_bytes());
            bytes.extend_from_slice(&entry.coordinator_epoch.to_be_bytes());
            bytes.extend_from_slice(&entry.current_txn_first_offset.to_be_bytes());
        }
        let crc = crc32c::crc32c(&bytes[6..]);
        bytes[2..6].copy_from_slice(&crc.to_be_bytes());
        bytes
    }

    /// Reads Kafka's snapshot bytes, leaving out producers already expired at `now_ms`.
    pub fn decode_snapshot(
        bytes: &[u8],
        now_ms: i64,
        expiration_ms: i64,
    ) -> Result<ProducerStateTable, CorruptSnapshot> {
        let mut table = ProducerStateTable::default();
        for entry in decode_snapshot_entries(bytes)? {
            if !is_expired(&entry, now_ms, expiration_ms) {
                table.producers.insert(entry.producer_id, entry);
            }
        }
        Ok(table)
    }
}

/// Every producer entry of Kafka's snapshot bytes, in file order, none left out (what
/// `kafka-dump-log.sh` prints). A producer without a batch has an empty `batches`.
pub fn decode_snapshot_entries(bytes: &[u8]) -> Result<Vec<ProducerEntry>, CorruptSnapshot> {
    let corrupt = |offset: usize, reason: String| CorruptSnapshot { offset, reason };
    if bytes.len() > SNAPSHOT_BYTES_MAX {
        return Err(corrupt(0, format!("{} bytes is too large", bytes.len())));
    }
    if bytes.len() < SNAPSHOT_HEADER_BYTES {
        return Err(corrupt(
            bytes.len(),
            format!(
                "need {SNAPSHOT_HEADER_BYTES} header bytes, have {}",
                bytes.len()
            ),
        ));
    }
    let version = i16::from_be_bytes([bytes[0], bytes[1]]);
    if version != SNAPSHOT_VERSION {
        return Err(corrupt(0, format!("unknown snapshot version {version}")));
    }
    let stored_crc = u32::from_be_bytes(bytes[2..6].try_into().expect("4 bytes"));
    let computed_crc = crc32c::crc32c(&bytes[6..]);
    if stored_crc != computed_crc {
        return Err(corrupt(
            2,
            format!("stored CRC {stored_crc:#010x}, computed {computed_crc:#010x}"),
        ));
    }
    let count = i32::from_be_bytes(bytes[6..10].try_into().expect("4 bytes"));
    let need = usize::try_from(count)
        .ok()
        .and_then(|count| count.checked_mul(SNAPSHOT_ENTRY_BYTES))
        .and_then(|entries| entries.checked_add(SNAPSHOT_HEADER_BYTES))
        .ok_or_else(|| corrupt(6, format!("invalid producer count {count}")))?;
    if need != bytes.len() {
        return Err(corrupt(
            6,
            format!(
                "{count} producers need {need} bytes, the file has {}",
                bytes.len()
            ),
        ));
    }
    let mut entries = Vec::with_capacity(count as usize);
    for chunk in bytes[SNAPSHOT_HEADER_BYTES..].chunks_exact(SNAPSHOT_ENTRY_BYTES) {
        let mut reader = Reader(chunk);
        let producer_id = reader.i64();
        let epoch = reader.i16();
        let last_sequence = reader.i32();
        let last_offset = reader.i64();
        let offset_delta = reader.i32();
        let timestamp = reader.i64();
        let coordinator_epoch = reader.i32();
        let current_txn_first_offset = reader.i64();
        let mut entry = ProducerEntry {
            producer_id,
            epoch,
            batches: VecDeque::with_capacity(BATCHES_RETAINED_PER_PRODUCER),
            last_timestamp: timestamp,
            coordinator_epoch,
            current_txn_first_offset,
        };
        if last_offset >= 0 {
            entry.batches.push_back(BatchMetadata {
                last_sequence,
                last_offset,
                offset_delta,
                timestamp,
            });
        }
        entries.push(entry);
    }
    Ok(entries)
}

fn is_expired(entry: &ProducerEntry, now_ms: i64, expiration_ms: i64) -> bool {
    entry.current_txn_first_offset < 0
        && now_ms.saturating_sub(entry.last_timestamp) >= expiration_ms
}

/// Big-endian reads from a slice whose length the caller checked.
struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn take<const N: usize>(&mut self) -> [u8; N] {
        let (head, rest) = self.0.split_at(N);
        self.0 = rest;
        head.try_into().expect("length checked by the caller")
    }
    fn i16(&mut self) -> i16 {
        i16::from_be_bytes(self.take())
    }
    fn i32(&mut self) -> i32 {
        i32::from_be_bytes(self.take())
    }
    fn i64(&mut self) -> i64 {
        i64::from_be_bytes(self.take())
    }
}

/// Kafka's `inSequence`: the next batch continues `last` (wrapping at `i32::MAX`).
fn in_sequence(last: i32, next: i32) -> bool {
    i64::from(next) == i64::from(last) + 1 || (next == 0 && last == i32::MAX)
}

/// `sequence + delta`, wrapping past `i32::MAX` to 0 (Kafka's `incrementSequence`).
pub fn increment_sequence(sequence: i32, delta: i32) -> i32 {
    if sequence > i32::MAX - delta {
        delta - (i32::MAX - sequence) - 1
    } else {
        sequence + delta
    }
}

/// `sequence - delta`, wrapping below 0 to `i32::MAX` (Kafka's `decrementSequence`).
pub fn decrement_sequence(sequence: i32, delta: i32) -> i32 {
    if sequence < delta {
        i32::MAX - (delta - sequence) + 1
    } else {
        sequence - delta
    }
}

#[cfg(test)]
#[path = "producer_state_tests.rs"]
mod tests;
