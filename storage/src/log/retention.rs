//! Retention and DeleteRecords for `PartitionLog`: Kafka's `deleteOldSegments` rules
//! and `deleteRecordsOnLeader`, with Kafka's two-step deletion of segment files.
//!
//! ```text
//!  owner has write access ─► remove_old_segments(now, high watermark) / delete_records_before(offset)
//!     decide in memory: below log start │ retention.bytes │ retention.ms (oldest first,
//!                       stop at the first keeper, never at or past the high watermark)
//!     every segment goes? roll first, so the log end keeps an empty active segment
//!     take the segments out of the list ─► log start = max(log start, first base)
//!     ─► producers and leader epochs below the new start dropped
//!  write access released ─► RemovedSegments::retire: rename files to *.deleted, close them,
//!                           delete producer snapshots below the log start
//!  file.delete.delay.ms later ─► DeletedFiles::remove
//! ```
//!
//! Crash-consistency protocol:
//! 1. Segments leave the in-memory list before any file changes; readers hold shared
//!    access for a whole read, so none sees a segment whose files are going away.
//! 2. Each file is renamed to `<name>.deleted`, the `.log` first, before it is removed.
//!    A crash after a rename leaves `.deleted` files, which `recovery::load_log` removes
//!    at open, and maybe index files without their `.log`, which it removes as orphans:
//!    a crash never brings back part of a deleted segment.
//! 3. A crash before the renames brings back the whole segment; the checkpointed log
//!    start offset (clamped to the first segment at open) still hides it and the next
//!    retention pass deletes it again (it is below the log start).
//! 4. The log start offset only moves forward. The owner persists it in
//!    `log-start-offset-checkpoint`; without that, the first segment's base is the start.
//!
//! Renames and snapshot deletions are blocking `std::fs` calls, made after the owner
//! released write access so appends and reads are not held up by them.

use super::*;
use crate::segment::SegmentState;
use crate::segment_file_name;

/// Why a segment was deleted, after Kafka's `SegmentDeletionReason`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeletionReason {
    /// Every offset of the segment is below the log start offset (DeleteRecords).
    LogStartOffset,
    /// The log was larger than `retention.bytes`.
    RetentionBytes,
    /// The segment's newest timestamp was older than `retention.ms`.
    RetentionMs,
}

impl std::fmt::Display for DeletionReason {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str(match self {
            DeletionReason::LogStartOffset => "below the log start offset",
            DeletionReason::RetentionBytes => "retention.bytes exceeded",
            DeletionReason::RetentionMs => "retention.ms exceeded",
        })
    }
}

/// What a deleted segment held, for logs and callers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeletedSegment {
    pub base_offset: i64,
    /// One past its last offset.
    pub next_offset: i64,
    pub size_bytes: u64,
    /// Its largest record timestamp, −1 if none.
    pub max_timestamp: i64,
    pub reason: DeletionReason,
}

/// Segments taken out of a log whose files still exist under their live names.
/// `retire` renames them; dropping this instead leaves them for the next open, where
/// they are below the log start and deleted again.
#[must_use = "the files of removed segments stay on disk until retired"]
pub struct RemovedSegments {
    dir: PathBuf,
    segments: Vec<(Segment, DeletionReason)>,
    /// The log start offset after the removal: snapshots below it are deleted.
    log_start_offset: i64,
}

impl RemovedSegments {
    fn new(dir: PathBuf, log_start_offset: i64) -> Self {
        RemovedSegments {
            dir,
            segments: Vec::new(),
            log_start_offset,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.segments.is_empty()
    }

    /// The removed segments, oldest first.
    pub fn segments(&self) -> Vec<DeletedSegment> {
        self.segments
            .iter()
            .map(|(segment, reason)| DeletedSegment {
                base_offset: segment.state.base_offset,
                next_offset: segment.state.next_offset,
                size_bytes: segment.state.size_bytes,
                max_timestamp: segment.state.max_timestamp,
                reason: *reason,
            })
            .collect()
    }

    /// The log start offset once these segments were removed.
    pub fn log_start_offset(&self) -> i64 {
        self.log_start_offset
    }

    /// Renames every file of the removed segments to `<name>.deleted` (the `.log`
    /// first), closes them and deletes the producer snapshots below the log start.
    /// Keeps going after a failure and returns the first one.
    pub async fn retire(self) -> Result<DeletedFiles, StorageError> {
        let mut first_error = None;
        let mut renamed = Vec::with_capacity(self.segments.len() * 3);
        for (segment, _) in self.segments {
            let paths = segment.paths.clone();
            for path in [&paths.log, &paths.index, &paths.time_index] {
                let deleted = deleted_path(path);
                match std::fs::rename(path, &deleted) {
                    Ok(()) => renamed.push(deleted),
                    Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
                    Err(error) => {
                        first_error.get_or_insert(StorageError::io("rename", path, error));
                    }
                }
            }
            if let Err(error) = segment.close().await {
                first_error.get_or_insert(error);
            }
        }
        if let Err(error) = producer_snapshots::delete_before(&self.dir, self.log_start_offset) {
            first_error.get_or_insert(error);
        }
        match first_error {
            None => Ok(DeletedFiles { paths: renamed }),
            Some(error) => Err(error),
        }
    }

    /// `retire` then `DeletedFiles::remove` at once (`file.delete.delay.ms` = 0).
    pub async fn delete_now(self) -> Result<Vec<DeletedSegment>, StorageError> {
        let segments = self.segments();
        self.retire().await?.remove()?;
        Ok(segments)
    }
}

/// Files renamed to `*.deleted`, waiting for `file.delete.delay.ms`.
#[derive(Debug)]
#[must_use = "renamed files stay on disk until removed (or until the next open)"]
pub struct DeletedFiles {
    paths: Vec<PathBuf>,
}

impl DeletedFiles {
    pub fn paths(&self) -> &[PathBuf] {
        &self.paths
    }

    /// Removes the files; ones already gone (the partition was deleted) are fine.
    pub fn remove(self) -> Result<(), StorageError> {
        for path in &self.paths {
            match std::fs::remove_file(path) {
                Ok(()) => {}
                Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
                Err(error) => return Err(StorageError::io("remove", path, error)),
            }
        }
        Ok(())
    }
}

/// Suffix of segment files waiting for deletion (Kafka's `DeletedFileSuffix`).
pub const DELETED_FILE_SUFFIX: &str = ".deleted";

fn deleted_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_os_string();
    name.push(DELETED_FILE_SUFFIX);
    PathBuf::from(name)
}

impl PartitionLog {
    /// Kafka's `deleteOldSegments`: removes the segments entirely below the log start
    /// offset, then (with `cleanup.policy` holding `delete`) the oldest segments while
    /// the log exceeds `retention.bytes`, then those whose newest timestamp is older than
    /// `retention.ms`. Nothing at or beyond `high_watermark` goes. If every segment goes,
    /// the active one is rolled first so an empty active segment stays at the log end.
    /// The files stay until the caller retires the result.
    pub async fn remove_old_segments(
        &mut self,
        now_ms: i64,
        high_watermark: i64,
    ) -> Result<RemovedSegments, StorageError> {
        let mut removed = RemovedSegments::new(self.dir.clone(), self.log_start_offset);
        for (reason, count) in self.deletion_plan(now_ms, high_watermark) {
            self.remove_oldest(count, reason, now_ms, &mut removed)
                .await?;
        }
        Ok(removed)
    }

    /// Whether `remove_old_segments` would remove anything now (shared access only).
    pub fn has_old_segments(&self, now_ms: i64, high_watermark: i64) -> bool {
        !self.deletion_plan(now_ms, high_watermark).is_empty()
    }

    /// How many of the oldest segments each rule of `remove_old_segments` removes, in
    /// order, each counted on the segments the rules before it left.
    fn deletion_plan(&self, now_ms: i64, high_watermark: i64) -> Vec<(DeletionReason, usize)> {
        let mut plan = Vec::new();
        let mut first = 0;
        let log_start_offset = self.log_start_offset;
        let count = self.deletable_segments(first, high_watermark, |_, next| {
            next.is_some_and(|next| next.base_offset <= log_start_offset)
        });
        if count > 0 {
            plan.push((DeletionReason::LogStartOffset, count));
            first += count;
        }
        if !self.config.cleanup_delete {
            return plan;
        }
        let retention_bytes = self.config.retention_bytes;
        let size_bytes: i64 = self.segments[first..]
            .iter()
            .map(|segment| segment.state.size_bytes as i64)
            .sum();
        if retention_bytes >= 0 && size_bytes >= retention_bytes {
            let mut excess_bytes = size_bytes - retention_bytes;
            let count = self.deletable_segments(first, high_watermark, |segment, _| {
                let fits = excess_bytes - segment.size_bytes as i64 >= 0;
                if fits {
                    excess_bytes -= segment.size_bytes as i64;
                }
                fits
            });
            if count > 0 {
                plan.push((DeletionReason::RetentionBytes, count));
                first += count;
            }
        }
        let retention_ms = self.config.retention_ms;
        if retention_ms >= 0 {
            let count = self.deletable_segments(first, high_watermark, |segment, _| {
                now_ms.saturating_sub(largest_timestamp(&self.dir, segment)) > retention_ms
            });
            if count > 0 {
                plan.push((DeletionReason::RetentionMs, count));
            }
        }
        plan
    }

    /// Kafka's `deleteRecordsOnLeader`: advances the log start offset to `offset` (never
    /// backwards) and removes the segments now wholly below it. `offset` must lie in
    /// `0..=high_watermark`, else `OffsetOutOfRange`. Applies whatever `cleanup.policy`;
    /// refusing compacted-only topics is the caller's policy decision.
    pub async fn delete_records_before(
        &mut self,
        offset: i64,
        high_watermark: i64,
        now_ms: i64,
    ) -> Result<RemovedSegments, StorageError> {
        let log_end_offset = self.log_end_offset();
        assert!(
            high_watermark <= log_end_offset,
            "the high watermark never passes the log end"
        );
        if offset < 0 || offset > high_watermark {
            return Err(StorageError::OffsetOutOfRange {
                offset,
                log_start: self.log_start_offset,
                log_end: log_end_offset,
            });
        }
        self.advance_log_start(offset)?;
        let mut removed = RemovedSegments::new(self.dir.clone(), self.log_start_offset);
        let log_start_offset = self.log_start_offset;
        let count = self.deletable_segments(0, high_watermark, |_, next| {
            next.is_some_and(|next| next.base_offset <= log_start_offset)
        });
        self.remove_oldest(count, DeletionReason::LogStartOffset, now_ms, &mut removed)
            .await?;
        Ok(removed)
    }

    /// Kafka's `deletableSegments` from segment number `first` on: how many segments in
    /// a row `predicate` (given a segment and the next one) accepts, stopping at the
    /// first refusal, at a segment reaching past `high_watermark`, and at an empty
    /// active segment.
    fn deletable_segments(
        &self,
        first: usize,
        high_watermark: i64,
        mut predicate: impl FnMut(&SegmentState, Option<&SegmentState>) -> bool,
    ) -> usize {
        let log_end_offset = self.log_end_offset();
        let mut count = 0;
        for (number, segment) in self.segments.iter().enumerate().skip(first) {
            let next = self.segments.get(number + 1).map(|next| &next.state);
            let upper_bound = next.map_or(log_end_offset, |next| next.base_offset);
            let last_and_empty = next.is_none() && segment.state.size_bytes == 0;
            if last_and_empty || high_watermark < upper_bound || !predicate(&segment.state, next) {
                break;
            }
            count += 1;
        }
        count
    }

    /// Takes the oldest `count` segments out of the list (rolling first if that is all
    /// of them) and advances the log start to the first remaining segment.
    async fn remove_oldest(
        &mut self,
        count: usize,
        reason: DeletionReason,
        now_ms: i64,
        removed: &mut RemovedSegments,
    ) -> Result<(), StorageError> {
        if count == 0 {
            return Ok(());
        }
        if count == self.segments.len() {
            // A log always has an active segment: start an empty one at the log end.
            self.roll(now_ms).await?;
            assert!(
                self.segments.len() > count,
                "only a non-empty active segment is deletable, and it rolls"
            );
        }
        removed.segments.extend(
            self.segments
                .drain(..count)
                .map(|segment| (segment, reason)),
        );
        let first_base = self.segments[0].base_offset();
        self.advance_log_start(first_base)?;
        removed.log_start_offset = self.log_start_offset;
        Ok(())
    }

    /// Moves the log start offset forward to `offset` (a no-op if it is not ahead):
    /// Kafka's `maybeIncrementLogStartOffset`. The recovery point follows it (nothing
    /// below the start needs recovery); producers whose last batch is below it are
    /// forgotten; the leader epoch cache drops the entries before it, keeping the one
    /// covering it, moved to start there (`truncateFromStart`).
    fn advance_log_start(&mut self, offset: i64) -> Result<(), StorageError> {
        if offset <= self.log_start_offset {
            return Ok(());
        }
        assert!(
            offset <= self.log_end_offset(),
            "the log start never passes the log end"
        );
        self.log_start_offset = offset;
        self.recovery_point = self.recovery_point.max(offset);
        self.producers.remove_before(offset);
        if self
            .latest_snapshot_offset
            .is_some_and(|snapshot| snapshot < offset)
        {
            // Deleted with the other snapshots below the start when the caller retires.
            self.latest_snapshot_offset = None;
        }
        if truncate_leader_epochs_from_start(&mut self.leader_epochs, offset) {
            // A few bytes, only when the start passed an epoch's first offset.
            write_leader_epoch_checkpoint(
                &self.dir.join(LEADER_EPOCH_CHECKPOINT_FILE),
                &self.leader_epochs,
            )?;
        }
        Ok(())
    }
}

/// Kafka's `LogSegment.largestTimestamp`: the newest record timestamp, or the file's
/// modification time for a segment without timestamps.
fn largest_timestamp(dir: &Path, segment: &SegmentState) -> i64 {
    if segment.max_timestamp >= 0 {
        return segment.max_timestamp;
    }
    let path = dir.join(segment_file_name(segment.base_offset, "log"));
    std::fs::metadata(&path)
        .and_then(|metadata| metadata.modified())
        .ok()
        .and_then(|time| time.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or_else(now_ms, |elapsed| elapsed.as_millis() as i64)
}

/// Kafka's `LeaderEpochFileCache.truncateFromStart`: entries starting at or below
/// `start_offset` go, except the newest of them, which stays with its start moved to
/// `start_offset`. Returns whether anything changed.
pub(crate) fn truncate_leader_epochs_from_start(
    epochs: &mut Vec<(i32, i64)>,
    start_offset: i64,
) -> bool {
    let covered = epochs.partition_point(|&(_, offset)| offset <= start_offset);
    if covered == 0 {
        return false;
    }
    let (epoch, offset) = epochs[covered - 1];
    if covered == 1 && offset == start_offset {
        return false;
    }
    epochs.drain(..covered);
    epochs.insert(0, (epoch, start_offset));
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leader_epochs_keep_the_entry_covering_the_new_start_moved_to_it() {
        let mut epochs = vec![(0, 0), (1, 100), (3, 250)];
        assert!(!truncate_leader_epochs_from_start(&mut epochs, 0));
        assert!(truncate_leader_epochs_from_start(&mut epochs, 120));
        assert_eq!(epochs, vec![(1, 120), (3, 250)]);
        assert!(truncate_leader_epochs_from_start(&mut epochs, 250));
        assert_eq!(epochs, vec![(3, 250)]);
        assert!(!truncate_leader_epochs_from_start(&mut epochs, 250));
        assert!(!truncate_leader_epochs_from_start(&mut Vec::new(), 7));
        let mut later = vec![(5, 300)];
        assert!(!truncate_leader_epochs_from_start(&mut later, 200));
        assert_eq!(later, vec![(5, 300)]);
    }

    #[test]
    fn deleted_files_keep_their_name_with_the_suffix() {
        assert_eq!(
            deleted_path(Path::new("/d/t-0/00000000000000000042.timeindex")),
            PathBuf::from("/d/t-0/00000000000000000042.timeindex.deleted")
        );
    }
}
