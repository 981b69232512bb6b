//! weir's partition log, in Kafka's own on-disk format.
//!
//! ```text
//!  <log dir>/                          meta.properties, .kafka_cleanshutdown,
//!  │                                   recovery-point-offset-checkpoint,
//!  │                                   cleaner-offset-checkpoint (first dirty offsets),
//!  │                                   log-start-offset-checkpoint,
//!  │                                   replication-offset-checkpoint
//!  └── <topic>-<partition>/            partition.metadata, leader-epoch-checkpoint
//!      ├── 00000000000000000000.log        record batches (magic 2), exactly as on the wire
//!      ├── 00000000000000000000.index      8 B: relative offset u32 | position u32
//!      ├── 00000000000000000000.timeindex 12 B: timestamp i64 | relative offset u32
//!      ├── 00000000000000004711.log    ◄── active segment: appends go here
//!      ├── 00000000000000004711.snapshot  idempotent producers' state below 4711
//!      ├── 00000000000000000000.log.cleaned / .swap   log cleaner's replacement (see `cleaner`)
//!      ├── 00000000000000000000.log.deleted  retention took it out; removed after
//!      │                                     file.delete.delay.ms, or at the next open
//!      └── ...
//!
//!  append(bytes) ─► validate every batch (length, magic 2, CRC-32C, counts, size)
//!                ─► idempotent producer? duplicate ─► original offsets; gap/stale epoch ─► error
//!                ─► stamp baseOffset / leader epoch (outside the CRC), LogAppendTime (CRC recomputed)
//!                ─► roll? ─► one io_uring write_at into the page cache ─► index entries
//!                ─► fdatasync every flush_interval_messages ─► recovery point = log end
//! ```
//!
//! Invariants (asserted; a violation stops the process):
//! * `log_start_offset ≤ recovery_point ≤ log_end_offset`, and none of them moves
//!   backwards except by recovery truncation at open.
//! * Segments are sorted by base offset and cover increasing, non-overlapping offset
//!   ranges; the last segment is the active one and the only one appended to.
//! * An append's first batch gets baseOffset = log end offset; offsets inside the log
//!   are strictly increasing and contiguous per append.
//! * A segment's `size_bytes` only covers whole batches that were fully written, so a
//!   read never returns a partial batch.
//! * Index entries strictly increase in offset and position (time index: in timestamp)
//!   and point inside their segment.
//!
//! Operating errors (I/O failures, bad client bytes, corrupt files) are
//! [`StorageError`]s. Files written as Kafka writes them mean Kafka's tools read ours
//! and a Kafka log directory can be adopted in place.
//!
//! Runtime seam: hot-path file I/O (append, read, fdatasync) goes through glommio
//! (`segment.rs`); opening/recovering a partition and writing checkpoints use blocking
//! `std::fs` because they run at start-up, topic creation or on a slow timer.

pub mod batch;
pub mod checkpoint;
pub mod cleaner;
pub mod epochs;
pub mod error;
pub mod index;
pub mod log;
pub mod meta;
mod preallocation;
mod producer_snapshots;
pub mod producer_state;
mod recovery;
mod segment;

pub use error::StorageError;
pub use log::now_ms;
pub use log::{
    AppendInfo, CleaningOutcome, DeletedFiles, DeletedSegment, DeletionReason, LogConfig, LogSlice,
    PartitionLog, ReadResult, RecoveryReport, RemovedSegments, SliceResult, TruncationNote,
};
pub use preallocation::{preallocates_in, reserve_blocks};
pub use segment::{SegmentWrites, buffered_writes_wait_for_worker};

/// Kafka's segment file name: the base offset zero-padded to 20 digits plus `.ext`
/// (`segment_file_name(42, "log")` → `00000000000000000042.log`).
pub fn segment_file_name(base_offset: i64, extension: &str) -> String {
    assert!(base_offset >= 0, "offsets are never negative");
    format!("{base_offset:020}.{extension}")
}

#[cfg(test)]
mod tests {
    #[test]
    fn segment_file_names_are_twenty_digits() {
        assert_eq!(
            super::segment_file_name(42, "log"),
            "00000000000000000042.log"
        );
        assert_eq!(
            super::segment_file_name(i64::MAX, "timeindex"),
            "09223372036854775807.timeindex"
        );
    }
}
