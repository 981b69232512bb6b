//! The follower's side of the log: appending the leader's batches as they are (Kafka's
//! `appendAsFollower`) and truncating the log's end (`truncateTo`) when its last epoch
//! diverged from the new leader's.
//!
//! ```text
//!  append_as_follower(batches) ─► validate (CRC, structure; no size limit, no producer
//!      checks: the leader did them) ─► offsets must start at/after the log end and increase
//!      ─► their leader epochs enter the cache ─► written unchanged ─► producer state applied
//!
//!  truncate_to(t), t < log end:
//!    t below the first segment or the log start ─► truncate_fully_and_start_at(t)
//!    else: segments wholly at/after t, newest first ─► closed, files removed
//!          segment holding t ─► cut before the batch holding t ─► indexes rebuilt from the file
//!          leader epochs from the new end on dropped ─► checkpoint
//!          recovery point ≤ new end; producer state reloaded (snapshots past the end removed)
//! ```
//!
//! Crash consistency: every step leaves a prefix of the old log on disk — later segments
//! go first (newest first), then the holding segment is cut, then its indexes are
//! rewritten — so a crash at any point leaves a shorter, valid log (recovery rebuilds
//! indexes that point past a cut file). Producer snapshots past the end and epoch
//! entries past the end are discarded again at the next open.
//!
//! A whole batch goes when `t` falls inside it, so the new log end may be below `t`; the
//! follower fetches again from there. Truncation is rare (a leader change), so it uses
//! blocking `std::fs` like recovery does.

use super::*;
use crate::batch::{Depth, validate_batches_to};
use crate::recovery::{rewrite_file, scan_segment, truncate_file};
use crate::segment::{AppendBytes, SegmentPaths, SegmentState};

fn remove_if_present(path: &Path) -> Result<(), StorageError> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(error) => Err(StorageError::io("remove", path, error)),
    }
}

impl PartitionLog {
    /// Appends batches fetched from the leader exactly as they are: offsets, leader
    /// epochs and timestamps were set by the leader. The first must start at or after
    /// the log end (a compacted leader may skip offsets) and each after the previous.
    pub async fn append_as_follower(
        &mut self,
        records: Bytes,
        now_ms: i64,
    ) -> Result<AppendInfo, StorageError> {
        let infos = validate_batches_to(&records, u32::MAX, Depth::Batches)?;
        let mut next_offset = self.log_end_offset();
        let (mut batches, mut epochs, mut producers) =
            (Vec::with_capacity(infos.len()), Vec::new(), Vec::new());
        let mut record_count = 0u64;
        for info in &infos {
            let header = BatchHeader::new(&records[info.position..]).expect("validated");
            let (base_offset, last_offset) = (header.base_offset(), header.last_offset());
            if base_offset < next_offset {
                return Err(StorageError::OffsetsOutOfOrder {
                    base_offset,
                    expected_at_least: next_offset,
                });
            }
            let epoch = header.partition_leader_epoch();
            if epochs.last().is_none_or(|&(latest, _)| epoch > latest) {
                epochs.push((epoch, base_offset));
            }
            if header.producer_id() != NO_PRODUCER_ID && !header.is_control() {
                producers.push((producer_batch(&header), last_offset));
            }
            batches.push((
                info.position,
                info.size_bytes as u64,
                last_offset,
                info.max_timestamp,
            ));
            record_count += info.records_count.max(0) as u64;
            next_offset = last_offset + 1;
        }
        let Some(&(_, _, last_offset, _)) = batches.last() else {
            let end = self.log_end_offset();
            return Ok(AppendInfo {
                base_offset: end,
                last_offset: end - 1,
                log_append_time_ms: -1,
                record_count: 0,
                flushed: false,
                duplicate: false,
            });
        };
        let base_offset = BatchHeader::new(&records).expect("validated").base_offset();
        let flushed = self
            .write(
                AppendBytes::AsIs(&records),
                &batches,
                &epochs,
                &producers,
                record_count,
                now_ms,
            )
            .await?;
        Ok(AppendInfo {
            base_offset,
            last_offset,
            log_append_time_ms: -1,
            record_count,
            flushed,
            duplicate: false,
        })
    }

    /// Removes every record at or after `target` (the whole batch holding `target`) and
    /// answers the new log end offset. Nothing happens when `target` is at or past the end.
    pub async fn truncate_to(&mut self, target: i64) -> Result<i64, StorageError> {
        let end = self.log_end_offset();
        if target >= end {
            return Ok(end);
        }
        if target < self.log_start_offset || target < self.segments[0].base_offset() {
            self.truncate_fully_and_start_at(target.max(0)).await?;
            return Ok(self.log_end_offset());
        }
        let holding = self.segment_index_for(target);
        while self.segments.len() > holding + 1 {
            let segment = self
                .segments
                .pop()
                .expect("more segments than the holding one");
            let paths = segment.paths.clone();
            segment.close().await?;
            for path in [&paths.log, &paths.index, &paths.time_index] {
                remove_if_present(path)?;
            }
        }
        let segment = self.segments.pop().expect("the holding segment");
        let cut_at = match segment.find_batch(target).await? {
            Some((position, _)) => position,
            None => segment.state.size_bytes,
        };
        let (base_offset, roll_base_ms, paths) = (
            segment.base_offset(),
            segment.roll_base_ms,
            segment.paths.clone(),
        );
        segment.close().await?;
        let state = self.cut_segment(&paths, base_offset, cut_at)?;
        self.segments
            .push(Segment::open(&self.dir, state, roll_base_ms, false).await?);
        let new_end = self.log_end_offset();
        assert!(
            new_end <= target,
            "truncation to {target} left the log end at {new_end}"
        );
        self.after_truncation(new_end).await?;
        Ok(new_end)
    }

    /// Cuts `<base>.log` at `cut_at` (a batch start) and rewrites its indexes for what
    /// is left.
    fn cut_segment(
        &self,
        paths: &SegmentPaths,
        base_offset: i64,
        cut_at: u64,
    ) -> Result<SegmentState, StorageError> {
        truncate_file(&paths.log, cut_at)?;
        let mut state = SegmentState::empty(base_offset, self.config.segment_index_bytes);
        if let Some(problem) = scan_segment(
            &paths.log,
            &mut state,
            0,
            false,
            self.config.index_interval_bytes,
        )? {
            return Err(StorageError::io(
                "truncate",
                &paths.log,
                std::io::Error::other(format!(
                    "the segment is damaged at position {}: {}",
                    problem.position, problem.reason
                )),
            ));
        }
        rewrite_file(&paths.index, &state.offset_index.encode_all())?;
        rewrite_file(&paths.time_index, &state.time_index.encode_all())?;
        Ok(state)
    }

    /// Kafka's `truncateFullyAndStartAt`: every segment goes and the log restarts, empty,
    /// at `offset` (a follower far behind a leader whose log starts later, or one whose
    /// records all diverged).
    pub async fn truncate_fully_and_start_at(&mut self, offset: i64) -> Result<(), StorageError> {
        for segment in self.segments.drain(..) {
            let paths = segment.paths.clone();
            segment.close().await?;
            for path in [&paths.log, &paths.index, &paths.time_index] {
                remove_if_present(path)?;
            }
        }
        self.segments.push(
            Segment::create(&self.dir, offset, self.config.segment_index_bytes, now_ms()).await?,
        );
        self.log_start_offset = offset;
        // No record is left for any snapshot or epoch entry to describe.
        producer_snapshots::delete_before(&self.dir, i64::MAX)?;
        self.leader_epochs.clear();
        write_leader_epoch_checkpoint(
            &self.dir.join(LEADER_EPOCH_CHECKPOINT_FILE),
            &self.leader_epochs,
        )?;
        self.after_truncation(offset).await
    }

    /// What follows the log end moving back to `new_end`.
    async fn after_truncation(&mut self, new_end: i64) -> Result<(), StorageError> {
        self.log_start_offset = self.log_start_offset.min(new_end);
        self.recovery_point = self.recovery_point.min(new_end);
        let epochs_before = self.leader_epochs.len();
        crate::epochs::truncate_from_end(&mut self.leader_epochs, new_end);
        if self.leader_epochs.len() != epochs_before {
            write_leader_epoch_checkpoint(
                &self.dir.join(LEADER_EPOCH_CHECKPOINT_FILE),
                &self.leader_epochs,
            )?;
        }
        sync_dir(&self.dir)?;
        self.dir_dirty = false;
        // Snapshots past the new end are deleted by the load; later batches replayed.
        self.load_producer_state().await
    }
}
