//! One partition as its owner shard holds it: the log plus what long polls wait on.
//!
//! Only the owner shard ([`crate::routing::shard_for`]) ever creates a `Partition`, so
//! the log has exactly one writer. Appends take the async write lock for the whole
//! validate → assign offsets → write → (flush) sequence, which keeps offsets and file
//! positions in append order; reads share the lock. The lock is shard-local (glommio),
//! never a thread lock.

use std::cell::Cell;
use std::rc::Rc;
use std::time::Duration;

use bytes::Bytes;
use glommio::sync::RwLock;
use weir_storage::cleaner::{CleanedSegment, CleaningPlan};
use weir_storage::producer_state::ProducerEntry;
use weir_storage::{
    AppendInfo, DeletedFiles, DeletedSegment, LogConfig, PartitionLog, ReadResult, RemovedSegments,
    SliceResult, StorageError,
};

use crate::disk_space::DirSpace;
use crate::event::Event;

/// Offsets a ListOffsets request can ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OffsetQuery {
    Earliest,
    Latest,
    MaxTimestamp,
    Timestamp(i64),
}

/// The answer to an [`OffsetQuery`]: (offset, timestamp), -1s when nothing matches.
pub type OffsetAnswer = (i64, i64);

/// Segments retention or DeleteRecords took out of a partition's log, their files
/// already renamed to `*.deleted`.
#[derive(Debug)]
pub struct RetiredSegments {
    pub segments: Vec<DeletedSegment>,
    /// The log start offset after the removal.
    pub log_start_offset: i64,
    /// Remove these after `file_delete_delay_ms` (`file.delete.delay.ms`).
    pub files: DeletedFiles,
    pub file_delete_delay_ms: u64,
}

/// Why DeleteRecords was refused for a partition.
#[derive(Debug, thiserror::Error)]
pub enum DeleteRecordsError {
    /// POLICY_VIOLATION: `cleanup.policy` lacks `delete` (Kafka refuses DeleteRecords on
    /// compacted-only topics).
    #[error(
        "records of {topic}-{partition} cannot be deleted: cleanup.policy does not hold delete"
    )]
    PolicyViolation { topic: String, partition: i32 },
    #[error(transparent)]
    Storage(#[from] StorageError),
}

pub struct Partition {
    pub topic: String,
    pub index: i32,
    log: RwLock<PartitionLog>,
    /// Fired after every append; long-poll fetches wait on it.
    pub appended: Rc<Event>,
    log_end_offset: Cell<i64>,
    log_start_offset: Cell<i64>,
    recovery_point: Cell<i64>,
    /// The log cleaner's checkpoint: the first offset not yet cleaned (None: the log
    /// start). Written to `cleaner-offset-checkpoint` with the other checkpoints.
    first_dirty_offset: Cell<Option<i64>>,
    closed: Cell<bool>,
    /// The free-space state of the log dir this partition lives in.
    space: Rc<DirSpace>,
    /// `flush.ms`: unflushed data older than this is fdatasync'ed by the flush loop.
    flush_interval_ms: Cell<Option<u64>>,
    /// When the log was last flushed (or opened), wall-clock ms.
    last_flush_ms: Cell<i64>,
    /// This broker's leader epoch for the partition: stamped into appended batches and
    /// checked against the `current_leader_epoch` clients send (KIP-320).
    leader_epoch: Cell<i32>,
}

impl Partition {
    pub fn new(topic: String, index: i32, log: PartitionLog, space: Rc<DirSpace>) -> Rc<Partition> {
        let flush_interval_ms = log.config().flush_interval_ms;
        Rc::new(Partition {
            topic,
            index,
            log_end_offset: Cell::new(log.log_end_offset()),
            log_start_offset: Cell::new(log.log_start_offset()),
            recovery_point: Cell::new(log.recovery_point()),
            first_dirty_offset: Cell::new(None),
            log: RwLock::new(log),
            appended: Event::new(),
            closed: Cell::new(false),
            space,
            flush_interval_ms: Cell::new(flush_interval_ms),
            last_flush_ms: Cell::new(weir_storage::now_ms()),
            leader_epoch: Cell::new(crate::replication::INITIAL_LEADER_EPOCH),
        })
    }

    pub fn leader_epoch(&self) -> i32 {
        self.leader_epoch.get()
    }

    /// The leader epoch of the partition's current registration (it only grows).
    pub fn set_leader_epoch(&self, leader_epoch: i32) {
        assert!(
            leader_epoch >= self.leader_epoch.get(),
            "leader epochs never go back"
        );
        self.leader_epoch.set(leader_epoch);
    }

    /// KIP-320's check of a request's `current_leader_epoch` (-1: not checked): an older
    /// epoch is FENCED_LEADER_EPOCH (the client's metadata is stale), a newer one
    /// UNKNOWN_LEADER_EPOCH (this broker's is).
    pub fn check_current_leader_epoch(&self, current_leader_epoch: i32) -> Result<(), i16> {
        use kafka_protocol::error::ResponseError;
        let ours = self.leader_epoch.get();
        if current_leader_epoch < 0 || current_leader_epoch == ours {
            Ok(())
        } else if current_leader_epoch < ours {
            Err(ResponseError::FencedLeaderEpoch.code())
        } else {
            Err(ResponseError::UnknownLeaderEpoch.code())
        }
    }

    /// OffsetForLeaderEpoch: where `epoch` ends in this log (see `weir_storage::epochs`).
    pub async fn end_offset_for_epoch(&self, epoch: i32) -> Result<(i32, i64), StorageError> {
        let log = self.log.read().await.map_err(|_| self.closed_error())?;
        Ok(weir_storage::epochs::end_offset_for_epoch(
            log.leader_epochs(),
            epoch,
            log.log_end_offset(),
        ))
    }

    /// Next offset to be assigned; also the high watermark on a single node.
    pub fn log_end_offset(&self) -> i64 {
        self.log_end_offset.get()
    }

    pub fn log_start_offset(&self) -> i64 {
        self.log_start_offset.get()
    }

    pub fn recovery_point(&self) -> i64 {
        self.recovery_point.get()
    }

    /// The high watermark: everything below it is readable by consumers.
    pub fn high_watermark(&self) -> i64 {
        self.log_end_offset.get()
    }

    fn closed_error(&self) -> StorageError {
        StorageError::Io {
            op: "use a closed partition",
            path: format!("{}-{}", self.topic, self.index).into(),
            source: std::io::Error::new(std::io::ErrorKind::NotConnected, "partition is closed"),
        }
    }

    /// Validates and appends one produce request's records for this partition.
    pub async fn append(&self, records: Bytes, now_ms: i64) -> Result<AppendInfo, StorageError> {
        // The floor exists so the broker's own records (committed offsets, group state)
        // still fit: only client topics are refused.
        if self.space.is_low() && !self.topic.starts_with("__") {
            return Err(StorageError::LowDiskSpace {
                topic: self.topic.clone(),
                partition: self.index,
                available_bytes: self.space.available_bytes(),
            });
        }
        let mut log = self.log.write().await.map_err(|_| self.closed_error())?;
        if self.closed.get() {
            return Err(self.closed_error());
        }
        let before = log.log_end_offset();
        let info = log.append(records, now_ms, self.leader_epoch.get()).await?;
        if info.duplicate {
            assert!(info.last_offset < before, "a duplicate was written before");
            assert_eq!(log.log_end_offset(), before, "a duplicate writes nothing");
            return Ok(info);
        }
        assert_eq!(
            info.base_offset, before,
            "offsets are assigned from the log end"
        );
        assert!(
            log.log_end_offset() > before,
            "an append moves the log end forward"
        );
        self.log_end_offset.set(log.log_end_offset());
        self.recovery_point.set(log.recovery_point());
        drop(log);
        self.appended.notify_all();
        Ok(info)
    }

    /// Reads whole batches from `offset` up to the high watermark.
    pub async fn read(
        &self,
        offset: i64,
        max_bytes: usize,
        min_one_batch: bool,
    ) -> Result<ReadResult, StorageError> {
        let log = self.log.read().await.map_err(|_| self.closed_error())?;
        log.read(offset, max_bytes, min_one_batch, self.high_watermark())
            .await
    }

    /// The batches `read` returns, as a region of a segment file (zero-copy Fetch).
    pub async fn read_slice(
        &self,
        offset: i64,
        max_bytes: usize,
        min_one_batch: bool,
    ) -> Result<SliceResult, StorageError> {
        let log = self.log.read().await.map_err(|_| self.closed_error())?;
        log.read_slice(offset, max_bytes, min_one_batch, self.high_watermark())
            .await
    }

    /// Waits until data past `offset` exists or `wait` elapses.
    pub async fn wait_for_data(&self, offset: i64, wait: Duration) {
        if self.log_end_offset() > offset || self.closed.get() {
            return;
        }
        let listen = self.appended.listen();
        let timer = glommio::timer::sleep(wait);
        futures::pin_mut!(listen, timer);
        futures::future::select(listen, timer).await;
    }

    pub async fn list_offset(&self, query: OffsetQuery) -> Result<OffsetAnswer, StorageError> {
        match query {
            OffsetQuery::Earliest => Ok((self.log_start_offset(), -1)),
            OffsetQuery::Latest => Ok((self.high_watermark(), -1)),
            OffsetQuery::MaxTimestamp => {
                let log = self.log.read().await.map_err(|_| self.closed_error())?;
                Ok(log.max_timestamp().await?.unwrap_or((-1, -1)))
            }
            OffsetQuery::Timestamp(timestamp) => {
                let log = self.log.read().await.map_err(|_| self.closed_error())?;
                Ok(log
                    .offset_for_timestamp(timestamp)
                    .await?
                    .unwrap_or((-1, -1)))
            }
        }
    }

    /// fdatasyncs whatever is not yet durable and advances the recovery point.
    pub async fn flush(&self) -> Result<(), StorageError> {
        let mut log = self.log.write().await.map_err(|_| self.closed_error())?;
        if log.recovery_point() < log.log_end_offset() {
            log.flush().await?;
        }
        self.recovery_point.set(log.recovery_point());
        self.last_flush_ms.set(weir_storage::now_ms());
        Ok(())
    }

    /// Whether `flush.ms` has passed since the last flush with data still unflushed.
    pub fn flush_due(&self, now_ms: i64) -> bool {
        self.recovery_point() < self.log_end_offset()
            && self.flush_interval_ms.get().is_some_and(|interval_ms| {
                now_ms.saturating_sub(self.last_flush_ms.get()) >= interval_ms as i64
            })
    }

    /// The idempotent producers of this partition, for DescribeProducers.
    pub async fn producers(&self) -> Result<Vec<ProducerEntry>, StorageError> {
        let log = self.log.read().await.map_err(|_| self.closed_error())?;
        Ok(log.producers().entries().into_iter().cloned().collect())
    }

    /// Forgets producers idle for `producer.id.expiration.ms`; returns how many.
    pub async fn remove_expired_producers(&self, now_ms: i64) -> Result<usize, StorageError> {
        let mut log = self.log.write().await.map_err(|_| self.closed_error())?;
        Ok(log.remove_expired_producers(now_ms))
    }

    /// One retention pass (Kafka's `deleteOldSegments`). The log is locked for writing
    /// only while segments leave its list; deciding happens under the read lock and the
    /// file renames after the write lock is released, so produce and fetch barely notice.
    pub async fn apply_retention(
        &self,
        now_ms: i64,
    ) -> Result<Option<RetiredSegments>, StorageError> {
        {
            let log = self.log.read().await.map_err(|_| self.closed_error())?;
            if self.closed.get() || !log.has_old_segments(now_ms, self.high_watermark()) {
                return Ok(None);
            }
        }
        let (removed, file_delete_delay_ms) = {
            let mut log = self.log.write().await.map_err(|_| self.closed_error())?;
            if self.closed.get() {
                return Ok(None);
            }
            let removed = log
                .remove_old_segments(now_ms, self.high_watermark())
                .await?;
            self.log_start_offset.set(log.log_start_offset());
            self.recovery_point.set(log.recovery_point());
            (removed, log.config().file_delete_delay_ms)
        };
        Self::retire(removed, file_delete_delay_ms).await
    }

    /// DeleteRecords (Kafka's `deleteRecordsOnLeader`): moves the log start offset to
    /// `offset` (−1: the high watermark) and removes the segments wholly below it.
    /// Returns the low watermark (the log start now) and what was removed.
    pub async fn delete_records(
        &self,
        offset: i64,
        now_ms: i64,
    ) -> Result<(i64, Option<RetiredSegments>), DeleteRecordsError> {
        let (removed, file_delete_delay_ms, low_watermark) = {
            let mut log = self.log.write().await.map_err(|_| self.closed_error())?;
            if self.closed.get() {
                return Err(self.closed_error().into());
            }
            if !log.config().cleanup_delete {
                return Err(DeleteRecordsError::PolicyViolation {
                    topic: self.topic.clone(),
                    partition: self.index,
                });
            }
            let high_watermark = self.high_watermark();
            let offset = if offset == -1 { high_watermark } else { offset };
            let removed = log
                .delete_records_before(offset, high_watermark, now_ms)
                .await?;
            self.log_start_offset.set(log.log_start_offset());
            self.recovery_point.set(log.recovery_point());
            (
                removed,
                log.config().file_delete_delay_ms,
                log.log_start_offset(),
            )
        };
        Ok((
            low_watermark,
            Self::retire(removed, file_delete_delay_ms).await?,
        ))
    }

    /// Renames the removed segments' files (outside the log lock).
    async fn retire(
        removed: RemovedSegments,
        file_delete_delay_ms: u64,
    ) -> Result<Option<RetiredSegments>, StorageError> {
        if removed.is_empty() {
            // Still deletes producer snapshots below an advanced log start.
            removed.retire().await?.remove()?;
            return Ok(None);
        }
        let segments = removed.segments();
        let log_start_offset = removed.log_start_offset();
        let files = removed.retire().await?;
        Ok(Some(RetiredSegments {
            segments,
            log_start_offset,
            files,
            file_delete_delay_ms,
        }))
    }

    pub async fn set_config(&self, config: LogConfig) -> Result<(), StorageError> {
        let mut log = self.log.write().await.map_err(|_| self.closed_error())?;
        self.flush_interval_ms.set(config.flush_interval_ms);
        log.set_config(config);
        Ok(())
    }

    /// The cleaner checkpoint (first offset not yet cleaned), if a cleaning or the
    /// checkpoint file set one.
    pub fn first_dirty_offset(&self) -> Option<i64> {
        self.first_dirty_offset.get()
    }

    pub fn set_first_dirty_offset(&self, offset: Option<i64>) {
        self.first_dirty_offset.set(offset);
    }

    /// What the log cleaner could clean now, with the log's `min.cleanable.dirty.ratio`;
    /// None when the topic is not compacted. Holds the read lock only while planning.
    pub async fn cleaning_plan(
        &self,
        now_ms: i64,
    ) -> Result<Option<(CleaningPlan, f64)>, StorageError> {
        let log = self.log.read().await.map_err(|_| self.closed_error())?;
        if self.closed.get() || !log.config().cleanup_compact {
            return Ok(None);
        }
        let plan = log
            .cleaning_plan(self.first_dirty_offset.get(), now_ms)
            .await?;
        Ok(Some((plan, log.config().min_cleanable_dirty_ratio)))
    }

    /// Swaps a cleaned segment in under the write lock (see `PartitionLog::swap_cleaned`);
    /// on a closed partition the cleaned files are discarded instead.
    pub async fn swap_cleaned(&self, cleaned: CleanedSegment) -> Result<bool, StorageError> {
        let Ok(mut log) = self.log.write().await else {
            cleaned.discard()?;
            return Ok(false);
        };
        if self.closed.get() {
            cleaned.discard()?;
            return Ok(false);
        }
        log.swap_cleaned(cleaned).await
    }

    /// Flushes and closes the log; later calls fail with a storage error.
    pub async fn close(self: &Rc<Self>) -> Result<(), StorageError> {
        let mut log = self.log.write().await.map_err(|_| self.closed_error())?;
        if self.closed.replace(true) {
            return Ok(());
        }
        log.flush().await?;
        // After the flush: the snapshot must not describe data that is not yet durable.
        log.snapshot_producers()?;
        self.recovery_point.set(log.recovery_point());
        drop(log);
        self.appended.notify_all();
        Ok(())
    }
}
