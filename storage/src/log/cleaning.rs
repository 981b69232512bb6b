//! The compaction side of `PartitionLog`: what the cleaner may clean (`cleaning_plan`,
//! under the owner's read lock), swapping a cleaned segment in (`swap_cleaned`, under
//! the write lock), a whole cleaning for an exclusive owner (`clean`), and Kafka's
//! produce-time rule that compacted topics only take keyed records. The protocol and the
//! rules live in `crate::cleaner`.

use super::*;
use crate::cleaner::offset_map::OffsetMap;
use crate::cleaner::throttle::IoThrottle;
use crate::cleaner::{
    CleanedSegment, CleaningPlan, CleaningStats, SourceSegment, build_offset_map, clean_segment,
    swap,
};
use crate::segment::SegmentPaths;

/// What one `PartitionLog::clean` did.
#[derive(Clone, Debug, PartialEq)]
pub struct CleaningOutcome {
    /// The new cleaner checkpoint: the first offset not yet cleaned.
    pub first_dirty_offset: i64,
    pub dirty_ratio: f64,
    pub stats: CleaningStats,
}

impl PartitionLog {
    /// Kafka's `LogValidator` rule for compacted topics: every record needs a key
    /// (INVALID_RECORD otherwise). Compressed batches are decompressed to check.
    pub(super) fn check_keys_for_compaction(
        &self,
        records: &[u8],
        infos: &[batch::BatchInfo],
    ) -> Result<(), StorageError> {
        for info in infos {
            let bytes = &records[info.position..info.position + info.size_bytes as usize];
            let header = BatchHeader::new(bytes).expect("validated");
            if header.is_control() {
                continue;
            }
            let section = batch::decompress_records(bytes, info.position as u64)?;
            let mut keyless = false;
            batch::walk_record_section(&section, header.records_count(), |record| {
                keyless |= record.key.is_none();
                Ok(())
            })
            .map_err(|reason| StorageError::corrupt(info.position as u64, reason))?;
            if keyless {
                return Err(StorageError::InvalidRecord {
                    reason: "Compacted topic cannot accept message without key".into(),
                });
            }
        }
        Ok(())
    }

    /// The cleanable state of this log at `now_ms` (Kafka's `cleanableOffsets` and
    /// `LogToClean`). `first_dirty_offset` is the cleaner checkpoint; None, or one
    /// outside the log, means the log start. Reads one batch header per dirty segment
    /// when `max.compaction.lag.ms` could be exceeded.
    pub async fn cleaning_plan(
        &self,
        first_dirty_offset: Option<i64>,
        now_ms: i64,
    ) -> Result<CleaningPlan, StorageError> {
        let log_start_offset = self.log_start_offset;
        let first_dirty_offset = first_dirty_offset
            .filter(|&offset| offset >= log_start_offset && offset <= self.log_end_offset())
            .unwrap_or(log_start_offset);
        let sealed = &self.segments[..self.segments.len() - 1];
        let first = self.segment_index_for(log_start_offset).min(sealed.len());
        let sealed = &sealed[first..];
        let is_dirty = |segment: &Segment| segment.state.next_offset > first_dirty_offset;
        let mut first_uncleanable_offset = self.active().base_offset();
        let lag_ms = self.config.min_compaction_lag_ms.max(0);
        if lag_ms > 0
            && let Some(young) = sealed
                .iter()
                .filter(|segment| is_dirty(segment))
                .find(|segment| segment.state.max_timestamp > now_ms.saturating_sub(lag_ms))
        {
            first_uncleanable_offset = first_uncleanable_offset.min(young.base_offset());
        }
        let first_uncleanable_offset = first_uncleanable_offset.max(first_dirty_offset);
        let below_uncleanable: Vec<&Segment> = sealed
            .iter()
            .filter(|segment| segment.base_offset() < first_uncleanable_offset)
            .collect();
        let clean_bytes = below_uncleanable
            .iter()
            .filter(|segment| !is_dirty(segment))
            .map(|segment| segment.state.size_bytes)
            .sum();
        let dirty_bytes = below_uncleanable
            .iter()
            .filter(|segment| is_dirty(segment))
            .map(|segment| segment.state.size_bytes)
            .sum();
        // Kafka's maxCompactionDelay: the first batch of each dirty sealed segment.
        let max_lag_ms = self.config.max_compaction_lag_ms.max(0);
        let clean_until_ms = now_ms.saturating_sub(max_lag_ms);
        let mut compaction_delay_ms = 0;
        if clean_until_ms > 0 {
            let mut earliest = i64::MAX;
            for segment in sealed.iter().filter(|segment| is_dirty(segment)) {
                if segment.state.size_bytes < HEADER_BYTES as u64 {
                    continue;
                }
                let bytes = segment.read_log(0, HEADER_BYTES).await?;
                let header = BatchHeader::new(&bytes).expect("read a whole header");
                if header.max_timestamp() > 0 {
                    earliest = earliest.min(header.max_timestamp());
                }
            }
            if earliest < clean_until_ms {
                compaction_delay_ms = clean_until_ms - earliest;
            }
        }
        let producer_last_offsets = self
            .producers
            .entries()
            .into_iter()
            .filter_map(|entry| {
                entry
                    .batches
                    .back()
                    .map(|batch| (entry.producer_id, batch.last_offset))
            })
            .collect();
        Ok(CleaningPlan {
            dir: self.dir.clone(),
            first_dirty_offset,
            first_uncleanable_offset,
            clean_bytes,
            dirty_bytes,
            compaction_delay_ms,
            segments: below_uncleanable
                .iter()
                .map(|segment| SourceSegment {
                    base_offset: segment.base_offset(),
                    next_offset: segment.state.next_offset,
                    size_bytes: segment.state.size_bytes,
                    max_timestamp: segment.state.max_timestamp,
                    log_path: segment.paths.log.clone(),
                })
                .collect(),
            producer_last_offsets,
            delete_retention_ms: self.config.delete_retention_ms,
            segment_index_bytes: self.config.segment_index_bytes,
            index_interval_bytes: self.config.index_interval_bytes,
        })
    }

    /// Steps 3–4 of the cleaner's protocol for one cleaned segment: if its source is
    /// still a sealed segment of this log, exactly as planned, commit and install the
    /// `.cleaned` files and serve the new segment; otherwise (retention deleted or
    /// replaced it meanwhile) discard them. Returns whether the segment was swapped.
    pub async fn swap_cleaned(&mut self, cleaned: CleanedSegment) -> Result<bool, StorageError> {
        if cleaned.unchanged {
            return Ok(false);
        }
        let source = &cleaned.source;
        let paths = SegmentPaths::new(&self.dir, source.base_offset);
        let sealed = self.segments.len() - 1;
        let found = self.segments[..sealed].iter().position(|segment| {
            segment.base_offset() == source.base_offset
                && segment.state.size_bytes == source.size_bytes
                && segment.state.next_offset == source.next_offset
                && segment.paths.log == source.log_path
        });
        let Some(index) = found else {
            tracing::info!(path = %source.log_path.display(), "the cleaned segment's source is gone; discarding the cleaned files");
            swap::discard_cleaned(&paths)?;
            return Ok(false);
        };
        assert!(
            cleaned.state.next_offset <= source.next_offset,
            "cleaning never adds offsets"
        );
        swap::commit(&self.dir, &paths)?;
        swap::install(&self.dir, &paths)?;
        let roll_base_ms = self.segments[index].roll_base_ms;
        let segment = Segment::open(&self.dir, cleaned.state, roll_base_ms, false).await?;
        let replaced = std::mem::replace(&mut self.segments[index], segment);
        replaced.close().await?;
        Ok(true)
    }

    /// A whole cleaning by an exclusive owner of the log (tests, tools): plan, and if
    /// the log should be cleaned, map the dirty range and clean and swap every segment
    /// below the mapped end, oldest first. None when nothing is due. The engine runs the
    /// same steps with its lock held only for planning and swapping.
    pub async fn clean(
        &mut self,
        first_dirty_offset: Option<i64>,
        now_ms: i64,
        dedupe_buffer_bytes: u64,
        throttle: &mut IoThrottle,
    ) -> Result<Option<CleaningOutcome>, StorageError> {
        let plan = self.cleaning_plan(first_dirty_offset, now_ms).await?;
        if !plan.should_clean(self.config.min_cleanable_dirty_ratio) {
            return Ok(None);
        }
        let mut map = OffsetMap::with_budget(dedupe_buffer_bytes);
        let end_offset = build_offset_map(&plan, &mut map, throttle).await?;
        let mut stats = CleaningStats::default();
        for source in plan
            .segments
            .iter()
            .filter(|segment| segment.base_offset < end_offset)
        {
            let cleaned = clean_segment(&plan, source, &map, now_ms, throttle).await?;
            stats.add(&cleaned.stats);
            if self.swap_cleaned(cleaned).await? {
                stats.segments_swapped += 1;
            }
        }
        Ok(Some(CleaningOutcome {
            first_dirty_offset: end_offset,
            dirty_ratio: plan.dirty_ratio(),
            stats,
        }))
    }
}

#[cfg(test)]
#[path = "../log_cleaning_tests.rs"]
mod tests;
