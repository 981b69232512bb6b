//! The one error type of the storage crate.
//!
//! Every variant carries the structured facts an operator (or the engine's single
//! Kafka-error-code mapping) needs; `Display` reads as a sentence. The variants are
//! deliberately distinct so the engine can map them without string matching:
//!
//! | variant              | Kafka error code the engine should use |
//! |----------------------|----------------------------------------|
//! | `CorruptBatch`       | CORRUPT_MESSAGE (2)                    |
//! | `UnsupportedMagic`   | INVALID_RECORD (87)                    |
//! | `BatchTooLarge`      | MESSAGE_TOO_LARGE (10)                 |
//! | `OffsetOutOfRange`   | OFFSET_OUT_OF_RANGE (1)                |
//! | `InvalidRecord`      | INVALID_RECORD (87)                    |
//! | `InvalidTxnState`    | INVALID_TXN_STATE (48)                 |
//! | `Producer(StaleEpoch)` | INVALID_PRODUCER_EPOCH (47)          |
//! | `Producer(OutOfOrderSequence)` | OUT_OF_ORDER_SEQUENCE_NUMBER (45) |
//! | `Io`, `MalformedFile`, `LowDiskSpace` | KAFKA_STORAGE_ERROR (56) |

use std::path::PathBuf;

/// Errors returned by the partition log, its files and the per-directory metadata files.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// A record batch failed validation: bad CRC, bad length, truncated bytes, record count
    /// mismatch, malformed record. `position` is the byte position of the batch start in the
    /// buffer (produce) or in the segment file (recovery).
    #[error("the record batch at byte {position} is corrupt: {reason}")]
    CorruptBatch { reason: String, position: u64 },

    /// A record batch uses a message format other than magic 2 (Kafka 0.11+).
    #[error("the record batch at byte {position} has magic {magic}, but only magic 2 is supported")]
    UnsupportedMagic { magic: i8, position: u64 },

    /// A record batch is larger than `max.message.bytes`.
    #[error("a record batch of {size_bytes} bytes exceeds max.message.bytes ({max_bytes} bytes)")]
    BatchTooLarge { size_bytes: u64, max_bytes: u64 },

    /// A read asked for an offset outside `[log_start, log_end]`.
    #[error(
        "offset {offset} is out of range: the log holds offsets {log_start} up to {log_end} (exclusive)"
    )]
    OffsetOutOfRange {
        offset: i64,
        log_start: i64,
        log_end: i64,
    },

    /// A well-formed batch that breaks a produce rule (one batch per idempotent request).
    #[error("invalid record batch: {reason}")]
    InvalidRecord { reason: String },

    /// A batch from the leader that does not continue the follower's log (Kafka's
    /// "Out of order offsets"): the follower must truncate or re-fetch.
    #[error(
        "a replicated batch starts at offset {base_offset}, before offset {expected_at_least} it must continue from"
    )]
    OffsetsOutOfOrder {
        base_offset: i64,
        expected_at_least: i64,
    },

    /// A transactional batch, but this broker has no transaction for it.
    #[error(
        "producer {producer_id} sent a transactional batch, but transactions are not supported by this broker yet"
    )]
    InvalidTxnState { producer_id: i64 },

    /// The partition's log dir has less free space than the broker keeps in reserve
    /// (`weir.log.dir.min.free.bytes`), so appends are refused until space returns.
    #[error(
        "{topic}-{partition} is not writable: its log dir has only {available_bytes} bytes free, below weir.log.dir.min.free.bytes; free space or lower the floor"
    )]
    LowDiskSpace {
        topic: String,
        partition: i32,
        available_bytes: u64,
    },

    /// An idempotent batch refused by its producer's sequence or epoch state.
    #[error(transparent)]
    Producer(#[from] crate::producer_state::ProducerStateError),

    /// An operating-system I/O call failed.
    #[error("could not {op} {path}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// A metadata or checkpoint file does not follow Kafka's format.
    #[error("{path} is malformed at line {line}: {reason}")]
    MalformedFile {
        path: PathBuf,
        line: usize,
        reason: String,
    },
}

impl StorageError {
    /// Builds an `Io` error from a glommio or std error.
    pub(crate) fn io(
        op: &'static str,
        path: impl Into<PathBuf>,
        source: impl Into<std::io::Error>,
    ) -> Self {
        StorageError::Io {
            op,
            path: path.into(),
            source: source.into(),
        }
    }

    pub(crate) fn corrupt(position: u64, reason: impl Into<String>) -> Self {
        StorageError::CorruptBatch {
            reason: reason.into(),
            position,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_reads_as_a_sentence_and_keeps_the_source() {
        let error = StorageError::io(
            "open",
            "/data/t-0/00000000000000000000.log",
            std::io::Error::from(std::io::ErrorKind::PermissionDenied),
        );
        assert_eq!(
            error.to_string(),
            "could not open /data/t-0/00000000000000000000.log"
        );
        assert!(std::error::Error::source(&error).is_some());
        let error = StorageError::OffsetOutOfRange {
            offset: 9,
            log_start: 0,
            log_end: 5,
        };
        assert_eq!(
            error.to_string(),
            "offset 9 is out of range: the log holds offsets 0 up to 5 (exclusive)"
        );
    }
}
