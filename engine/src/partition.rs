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
use glommio::sync::{RwLock, RwLockReadGuard};
use weir_storage::cleaner::{CleanedSegment, CleaningPlan};
use weir_storage::producer_state::ProducerEntry;
use weir_storage::{
    AppendInfo, DeletedFiles, DeletedSegment, LogConfig, PartitionLog, ReadResult, RemovedSegments,
    SliceResult, StorageError,
};

use crate::disk_space::DirSpace;
use crate::event::Event;
pub use crate::replication::leader::FollowerFetch as ReplicaFetchAnswer;
use crate::replication::leader::{AlterPartition, LeaderConfig, LeaderState};
use crate::replication::{NO_LEADER, NodeId, PartitionRegistration, ReplicationError};
use crate::turns::Turns;

/// Offsets a ListOffsets request can ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OffsetQuery {
    Earliest,
    /// The high watermark (what a consumer may read up to).
    Latest,
    /// This replica's log end offset (debugging clients and brokers).
    LogEnd,
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
    /// Appends write in the order they arrived on this shard (see `turns.rs`).
    append_turns: Turns,
    /// Readers waiting for the log lock; an append whose turn comes lets them in first.
    readers_waiting: Cell<usize>,
    /// Fired when no reader is waiting any more.
    readers_admitted: Event,
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
    /// Everything below it is committed (on every in-sync replica): consumers read up
    /// to it, acks=all waits for it.
    high_watermark: Cell<i64>,
    /// This broker's part in the partition's replication.
    role: std::cell::RefCell<Role>,
    /// Fired when the high watermark moves or the role changes (acks=all waiters).
    pub committed: Rc<Event>,
}

/// This broker's part in a partition.
#[derive(Debug)]
pub enum Role {
    /// Not decided yet (just opened) or no longer a replica.
    None,
    Leader(Box<LeaderState>),
    Follower {
        leader: NodeId,
        leader_epoch: i32,
    },
}

/// How a registration changed this broker's part in a partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeadershipChange {
    None,
    /// This broker leads it now (and did not before).
    Became,
    /// This broker led it and no longer does.
    Lost,
    /// This broker follows another leader or leader epoch than before.
    NewLeaderToFollow,
}

/// Why an acks=all append was not acknowledged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AckError {
    Replication(ReplicationError),
    /// The ISR did not catch up within the request's timeout.
    TimedOut,
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
            append_turns: Turns::default(),
            readers_waiting: Cell::new(0),
            readers_admitted: Event::default(),
            appended: Event::new(),
            closed: Cell::new(false),
            space,
            flush_interval_ms: Cell::new(flush_interval_ms),
            last_flush_ms: Cell::new(weir_storage::now_ms()),
            leader_epoch: Cell::new(crate::replication::INITIAL_LEADER_EPOCH),
            high_watermark: Cell::new(0),
            role: std::cell::RefCell::new(Role::None),
            committed: Event::new(),
        })
    }

    /// The high watermark a restart found in `replication-offset-checkpoint` (within
    /// the log), before this broker knows its role.
    pub fn restore_high_watermark(&self, high_watermark: i64) {
        let clamped = high_watermark.clamp(self.log_start_offset(), self.log_end_offset());
        self.high_watermark.set(clamped);
    }

    pub fn is_leader(&self) -> bool {
        matches!(*self.role.borrow(), Role::Leader(_))
    }

    /// The leader this broker follows for the partition, with its epoch.
    pub fn following(&self) -> Option<(NodeId, i32)> {
        match *self.role.borrow() {
            Role::Follower {
                leader,
                leader_epoch,
            } => Some((leader, leader_epoch)),
            _ => None,
        }
    }

    /// Takes the partition's registration: leads it (a new leader state per leader
    /// epoch), follows its leader, or neither. Answers how leadership changed.
    pub fn apply_registration(
        &self,
        node: NodeId,
        registration: &PartitionRegistration,
        config: LeaderConfig,
        now_ms: u64,
    ) -> LeadershipChange {
        let was_leader = self.is_leader();
        if registration.leader_epoch > self.leader_epoch.get() {
            self.leader_epoch.set(registration.leader_epoch);
        }
        let mut role = self.role.borrow_mut();
        let follower_changed = if registration.leader == node {
            let same_leadership = match &mut *role {
                Role::Leader(state) => {
                    state.set_config(config);
                    state.update_registration(registration)
                }
                _ => false,
            };
            if !same_leadership {
                let state = LeaderState::new(
                    node,
                    config,
                    registration.clone(),
                    self.log_end_offset(),
                    self.high_watermark.get().min(self.log_end_offset()),
                    now_ms,
                );
                *role = Role::Leader(Box::new(state));
            }
            false
        } else if registration.replicas.contains(&node) && registration.leader != NO_LEADER {
            let next = Role::Follower {
                leader: registration.leader,
                leader_epoch: registration.leader_epoch,
            };
            let changed = !matches!(&*role, Role::Follower { leader, leader_epoch }
                if *leader == registration.leader && *leader_epoch == registration.leader_epoch);
            if changed {
                *role = next;
            }
            changed
        } else {
            *role = Role::None;
            false
        };
        if let Role::Leader(state) = &mut *role {
            state.advance_high_watermark(self.log_end_offset());
            self.high_watermark
                .set(self.high_watermark.get().max(state.high_watermark()));
        }
        let is_leader = matches!(&*role, Role::Leader(_));
        drop(role);
        self.committed.notify_all();
        self.appended.notify_all();
        match (was_leader, is_leader) {
            (false, true) => LeadershipChange::Became,
            (true, false) => LeadershipChange::Lost,
            _ if follower_changed => LeadershipChange::NewLeaderToFollow,
            _ => LeadershipChange::None,
        }
    }

    /// The ISR change this leader wants, if any (see `LeaderState::isr_change`).
    pub fn isr_change(&self, now_ms: u64) -> Option<AlterPartition> {
        match &mut *self.role.borrow_mut() {
            Role::Leader(state) => state.isr_change(self.log_end_offset(), now_ms),
            _ => None,
        }
    }

    /// A follower's fetch at `fetch_offset` (leader only): where it diverges, or the high
    /// watermark to send it with the records from `fetch_offset`.
    pub async fn on_follower_fetch(
        &self,
        follower: NodeId,
        current_leader_epoch: i32,
        fetch_offset: i64,
        last_fetched_epoch: Option<i32>,
        follower_log_start: i64,
        now_ms: u64,
    ) -> Result<ReplicaFetchAnswer, ReplicationError> {
        let log = self
            .log
            .read()
            .await
            .map_err(|_| ReplicationError::NotLeaderOrFollower)?;
        let mut role = self.role.borrow_mut();
        let Role::Leader(state) = &mut *role else {
            return Err(ReplicationError::NotLeaderOrFollower);
        };
        let log_start_moved =
            follower_log_start >= 0 && state.set_follower_log_start(follower, follower_log_start);
        let answer = state.on_follower_fetch(
            follower,
            current_leader_epoch,
            fetch_offset,
            last_fetched_epoch,
            log.log_start_offset(),
            log.log_end_offset(),
            log.leader_epochs(),
            now_ms,
        )?;
        if state.high_watermark() > self.high_watermark.get() {
            self.high_watermark.set(state.high_watermark());
            drop(role);
            self.committed.notify_all();
            self.appended.notify_all();
        } else if log_start_moved {
            drop(role);
            self.committed.notify_all();
        }
        Ok(answer)
    }

    /// Waits until every in-sync replica's log start reached `target` (DeleteRecords,
    /// Kafka's low watermark) or `timeout` passes; answers the low watermark then.
    pub async fn wait_low_watermark(&self, target: i64, timeout: Duration) -> i64 {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            let low = match &*self.role.borrow() {
                Role::Leader(state) => state.low_watermark(self.log_start_offset()),
                _ => self.log_start_offset(),
            };
            let now = std::time::Instant::now();
            if low >= target || now >= deadline || self.closed.get() {
                return low;
            }
            let listen = self.committed.listen();
            let timer = glommio::timer::sleep(deadline - now);
            futures::pin_mut!(listen, timer);
            futures::future::select(listen, timer).await;
        }
    }

    /// Whether an acks=all produce may append now (the committed ISR is large enough).
    pub fn check_produce(&self, acks_all: bool) -> Result<(), ReplicationError> {
        match &*self.role.borrow() {
            Role::Leader(state) if acks_all => state.check_produce(),
            Role::Leader(_) => Ok(()),
            _ => Err(ReplicationError::NotLeaderOrFollower),
        }
    }

    /// Waits until the ISR holds everything up to `last_offset` (acks=all), the
    /// leadership ends, or `timeout` passes.
    pub async fn wait_acknowledged(
        &self,
        last_offset: i64,
        timeout: Duration,
    ) -> Result<(), AckError> {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            let status = match &*self.role.borrow() {
                Role::Leader(state) => state.ack_status(last_offset),
                _ => Some(Err(ReplicationError::NotLeaderOrFollower)),
            };
            if let Some(status) = status {
                return status.map_err(AckError::Replication);
            }
            if self.closed.get() {
                return Err(AckError::Replication(ReplicationError::NotLeaderOrFollower));
            }
            let now = std::time::Instant::now();
            if now >= deadline {
                return Err(AckError::TimedOut);
            }
            let listen = self.committed.listen();
            let timer = glommio::timer::sleep(deadline - now);
            futures::pin_mut!(listen, timer);
            futures::future::select(listen, timer).await;
        }
    }

    /// The leader's batches, appended as they are (follower only).
    pub async fn append_as_follower(
        &self,
        records: Bytes,
        now_ms: i64,
    ) -> Result<(), StorageError> {
        let mut log = self.log.write().await.map_err(|_| self.closed_error())?;
        if self.closed.get() {
            return Err(self.closed_error());
        }
        log.append_as_follower(records, now_ms).await?;
        self.log_end_offset.set(log.log_end_offset());
        self.recovery_point.set(log.recovery_point());
        drop(log);
        self.appended.notify_all();
        Ok(())
    }

    /// The log's epochs (for a follower's fetch).
    pub async fn leader_epochs(&self) -> Result<Vec<(i32, i64)>, StorageError> {
        let log = self.read_log().await?;
        Ok(log.leader_epochs().to_vec())
    }

    /// Removes everything at or after `offset` (a follower's divergent suffix).
    pub async fn truncate_to(&self, offset: i64) -> Result<(), StorageError> {
        let mut log = self.log.write().await.map_err(|_| self.closed_error())?;
        if self.closed.get() {
            return Err(self.closed_error());
        }
        log.truncate_to(offset).await?;
        self.after_truncation(&log);
        Ok(())
    }

    /// Empties the log and restarts it at `offset` (a follower behind the leader's log start).
    pub async fn truncate_fully_and_start_at(&self, offset: i64) -> Result<(), StorageError> {
        let mut log = self.log.write().await.map_err(|_| self.closed_error())?;
        if self.closed.get() {
            return Err(self.closed_error());
        }
        log.truncate_fully_and_start_at(offset).await?;
        self.after_truncation(&log);
        Ok(())
    }

    fn after_truncation(&self, log: &PartitionLog) {
        self.log_end_offset.set(log.log_end_offset());
        self.log_start_offset.set(log.log_start_offset());
        self.recovery_point.set(log.recovery_point());
        self.high_watermark
            .set(self.high_watermark.get().min(log.log_end_offset()));
    }

    /// A follower learns the leader's high watermark.
    pub fn follower_high_watermark(&self, leader_high_watermark: i64) {
        let next = crate::replication::follower::follower_high_watermark(
            self.high_watermark.get(),
            leader_high_watermark,
            self.log_end_offset(),
        );
        if next != self.high_watermark.get() {
            self.high_watermark.set(next);
            self.appended.notify_all();
        }
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
        let log = self.read_log().await?;
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
        self.high_watermark.get()
    }

    /// The log for reading, counted among the waiting readers until it is granted so
    /// that appends let it in first (see `append`).
    async fn read_log(&self) -> Result<RwLockReadGuard<'_, PartitionLog>, StorageError> {
        struct Waiting<'a>(&'a Partition);
        impl Drop for Waiting<'_> {
            fn drop(&mut self) {
                let waiting = self.0.readers_waiting.get() - 1;
                self.0.readers_waiting.set(waiting);
                if waiting == 0 {
                    self.0.readers_admitted.notify_all();
                }
            }
        }
        self.readers_waiting.set(self.readers_waiting.get() + 1);
        let _waiting = Waiting(self);
        self.log.read().await.map_err(|_| self.closed_error())
    }

    fn closed_error(&self) -> StorageError {
        StorageError::Io {
            op: "use a closed partition",
            path: format!("{}-{}", self.topic, self.index).into(),
            source: std::io::Error::new(std::io::ErrorKind::NotConnected, "partition is closed"),
        }
    }

    /// Validates and appends one produce request's records for this partition. Appends
    /// are written in the order of their first poll: the turn is taken before any await,
    /// so a caller that polled this once has its place behind the earlier appends.
    pub async fn append(&self, records: Bytes, now_ms: i64) -> Result<AppendInfo, StorageError> {
        let turn = self.append_turns.take();
        // The floor exists so the broker's own records (committed offsets, group state)
        // still fit: only client topics are refused.
        if self.space.is_low() && !self.topic.starts_with("__") {
            return Err(StorageError::LowDiskSpace {
                topic: self.topic.clone(),
                partition: self.index,
                available_bytes: self.space.available_bytes(),
            });
        }
        turn.wait().await;
        // Readers first. A released lock wakes a waiting reader, but an append polled
        // before that reader runs (the next one of a pipelining connection, in the same
        // task) would take the free lock again, and under a steady produce a tailing
        // consumer waited tens of milliseconds for every read.
        while self.readers_waiting.get() > 0 {
            self.readers_admitted.listen().await;
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
        self.advance_high_watermark();
        self.appended.notify_all();
        Ok(info)
    }

    /// A leader moves its high watermark after its own append (alone in its ISR, at once).
    fn advance_high_watermark(&self) {
        let moved = match &mut *self.role.borrow_mut() {
            Role::Leader(state) => {
                state.advance_high_watermark(self.log_end_offset());
                state.high_watermark()
            }
            _ => return,
        };
        if moved > self.high_watermark.get() {
            self.high_watermark.set(moved);
            self.committed.notify_all();
        }
    }

    /// Reads whole batches from `offset` up to the log end (a follower's fetch).
    pub async fn read_to_end(
        &self,
        offset: i64,
        max_bytes: usize,
    ) -> Result<ReadResult, StorageError> {
        let log = self.read_log().await?;
        log.read(offset, max_bytes, true, log.log_end_offset())
            .await
    }

    /// The batches `read_to_end` returns, as a region of a segment file.
    pub async fn read_slice_to_end(
        &self,
        offset: i64,
        max_bytes: usize,
    ) -> Result<SliceResult, StorageError> {
        let log = self.read_log().await?;
        log.read_slice(offset, max_bytes, true, log.log_end_offset())
            .await
    }

    /// Reads whole batches from `offset` up to the high watermark.
    pub async fn read(
        &self,
        offset: i64,
        max_bytes: usize,
        min_one_batch: bool,
    ) -> Result<ReadResult, StorageError> {
        let log = self.read_log().await?;
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
        let log = self.read_log().await?;
        log.read_slice(offset, max_bytes, min_one_batch, self.high_watermark())
            .await
    }

    /// Waits until data past `offset` exists (below the high watermark for consumers,
    /// in the log for a follower) or `wait` elapses.
    pub async fn wait_for_data(&self, offset: i64, wait: Duration, replica: bool) {
        let end = if replica {
            self.log_end_offset()
        } else {
            self.high_watermark()
        };
        if end > offset || self.closed.get() {
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
            OffsetQuery::LogEnd => Ok((self.log_end_offset(), -1)),
            OffsetQuery::MaxTimestamp => {
                let log = self.read_log().await?;
                Ok(log.max_timestamp().await?.unwrap_or((-1, -1)))
            }
            OffsetQuery::Timestamp(timestamp) => {
                let log = self.read_log().await?;
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
        let log = self.read_log().await?;
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
            let log = self.read_log().await?;
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
        let log = self.read_log().await?;
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
        log.release_reserved_space();
        // After the flush: the snapshot must not describe data that is not yet durable.
        log.snapshot_producers()?;
        self.recovery_point.set(log.recovery_point());
        drop(log);
        self.appended.notify_all();
        self.committed.notify_all();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use weir_storage::LogConfig;
    use weir_storage::batch::{SimpleRecord, encode_batch};

    fn batch(value: &[u8]) -> Bytes {
        encode_batch(
            0,
            &[SimpleRecord {
                timestamp_ms: 1,
                key: None,
                value: Some(value.to_vec()),
            }],
        )
        .into()
    }

    /// Runs `test` with a fresh partition `t-0` (a single node: the log end is readable).
    fn with_partition<F: std::future::Future<Output = ()>>(test: impl FnOnce(Rc<Partition>) -> F) {
        let dir = tempfile::tempdir().expect("temp dir");
        glommio::LocalExecutorBuilder::new(glommio::Placement::Unbound)
            .io_memory(512 << 10)
            .make()
            .expect("a glommio executor")
            .run(async move {
                let (log, _) = PartitionLog::open(
                    dir.path().join("t-0"),
                    LogConfig::default(),
                    None,
                    None,
                    false,
                )
                .await
                .expect("log");
                test(Partition::new(
                    "t".into(),
                    0,
                    log,
                    Rc::new(DirSpace::default()),
                ))
                .await
            });
    }

    #[test]
    fn appends_are_written_in_the_order_they_were_first_polled() {
        with_partition(|partition| async move {
            let mut first = std::pin::pin!(partition.append(batch(b"a"), 1));
            let mut second = std::pin::pin!(partition.append(batch(b"b"), 1));
            let mut third = std::pin::pin!(partition.append(batch(b"c"), 1));
            // The first is writing, the second waits behind it.
            assert!(futures::poll!(first.as_mut()).is_pending());
            assert!(futures::poll!(second.as_mut()).is_pending());
            assert_eq!(first.as_mut().await.expect("appended").base_offset, 0);
            // The third arrives after the second but is polled first, with the log
            // lock free: it still waits for its turn (a plain lock would let it in).
            assert!(futures::poll!(third.as_mut()).is_pending());
            let (second, third) = futures::join!(second, third);
            assert_eq!(second.expect("appended").base_offset, 1);
            assert_eq!(third.expect("appended").base_offset, 2);
        });
    }

    #[test]
    fn a_reader_waiting_for_the_log_goes_before_the_next_append() {
        with_partition(|partition| async move {
            let mut first = std::pin::pin!(partition.append(batch(b"a"), 1));
            assert!(futures::poll!(first.as_mut()).is_pending(), "writing");
            let mut read = std::pin::pin!(partition.read_to_end(0, 1 << 20));
            assert!(
                futures::poll!(read.as_mut()).is_pending(),
                "the append holds the log"
            );
            let mut second = std::pin::pin!(partition.append(batch(b"b"), 1));
            assert!(futures::poll!(second.as_mut()).is_pending());
            first.as_mut().await.expect("appended");
            // The next append is polled before the woken reader runs: it must not take
            // the log back (it did, and a tailing consumer starved under steady produce).
            let order = std::cell::RefCell::new(Vec::new());
            let second = async {
                let appended = second.await.expect("appended");
                order.borrow_mut().push("append");
                appended
            };
            let read = async {
                let read = read.await.expect("read");
                order.borrow_mut().push("read");
                read
            };
            let (appended, read) = futures::join!(second, read);
            assert_eq!(order.into_inner(), ["read", "append"]);
            assert_eq!((read.log_end_offset, appended.base_offset), (1, 1));
        });
    }
}
