//! The per-shard log cleaner: compacts the shard's own partitions of compacted topics
//! (`cleanup.policy` holding `compact`, `__consumer_offsets` included).
//!
//! ```text
//!  loop (background task queue, low shares):
//!    settings ◄─ shard.effective_config()   (log.cleaner.* may change at runtime)
//!    plan every local compacted partition (read lock, brief) ─► filthiest due one?
//!      none ─► sleep log.cleaner.backoff.ms (or until shutdown)
//!      one  ─► offset map over its dirty range ─► per segment, oldest first:
//!              write .cleaned (no lock, throttled) ─► swap (write lock, brief)
//!           ─► cleaner checkpoint = end of the cleaned range ─► info line
//! ```
//!
//! Kafka's rules (`LogCleanerManager.grabFilthiestCompactedLog`): a partition is due
//! when its dirty ratio exceeds `min.cleanable.dirty.ratio` or `max.compaction.lag.ms`
//! is exceeded; the highest ratio goes first. Each shard's cleaner gets
//! `log.cleaner.dedupe.buffer.size / shards` for its offset map (Kafka divides it by
//! `log.cleaner.threads`; here every shard is a cleaner thread). The checkpoint moves
//! only after every segment of a cleaning was swapped, so a cleaning cut short (crash,
//! shutdown, error) is simply done again.

use std::rc::Rc;

use tracing::{debug, info, warn};
use weir_storage::StorageError;
use weir_storage::cleaner::offset_map::OffsetMap;
use weir_storage::cleaner::throttle::IoThrottle;
use weir_storage::cleaner::{CleaningPlan, CleaningStats, build_offset_map, clean_segment};

use crate::partition::Partition;
use crate::shard::Shard;

/// CPU shares of the cleaner's task queue; glommio's default queue has 1000, so
/// produce and fetch get ~10× the cleaner's CPU time when both are busy.
const CLEANER_TASK_QUEUE_SHARES: usize = 100;

/// How long a partition whose cleaning failed is left out of the selection, so one log
/// that cannot be cleaned (a corrupt sealed batch, a batch with more keys than the
/// offset map holds) does not stop the shard's other compacted logs from being cleaned
/// (Kafka marks such logs uncleanable).
const FAILED_CLEANING_RETRY_MS: i64 = 10 * 60 * 1000;

/// Partitions whose last cleaning failed → when they may be tried again.
type FailedCleanings = std::collections::HashMap<(String, i32), i64>;

/// Starts the shard's cleaner in its own low-priority task queue.
pub fn spawn(shard: Rc<Shard>) {
    shard.spawn_background(
        "log-cleaner",
        CLEANER_TASK_QUEUE_SHARES,
        cleaner_loop(shard.clone()),
    );
}

async fn cleaner_loop(shard: Rc<Shard>) {
    let mut failed = FailedCleanings::new();
    loop {
        if shard.is_shutting_down() {
            return;
        }
        let config = shard.effective_config();
        let settings = &config.maintenance;
        let cleaned = settings.cleaner_enable && clean_filthiest(&shard, &mut failed).await;
        if !cleaned {
            shard
                .sleep_unless_shutdown(settings.cleaner_backoff_ms)
                .await;
        }
    }
}

/// Cleans the local partition with the highest dirty ratio among those due; false when
/// none is due (or its cleaning failed: the loop then backs off).
async fn clean_filthiest(shard: &Rc<Shard>, failed: &mut FailedCleanings) -> bool {
    let now_ms = weir_storage::now_ms();
    failed.retain(|_, retry_at_ms| *retry_at_ms > now_ms);
    let mut filthiest: Option<(Rc<Partition>, CleaningPlan)> = None;
    for partition in shard.local_partitions() {
        if shard.is_shutting_down() {
            return false;
        }
        if failed.contains_key(&(partition.topic.clone(), partition.index)) {
            continue;
        }
        match partition.cleaning_plan(now_ms).await {
            Ok(Some((plan, min_ratio))) if plan.should_clean(min_ratio) => {
                let ratio = plan.dirty_ratio();
                if filthiest
                    .as_ref()
                    .is_none_or(|(_, best)| ratio > best.dirty_ratio())
                {
                    filthiest = Some((partition, plan));
                }
            }
            Ok(_) => {}
            Err(error) => warn!(shard = shard.id, topic = %partition.topic,
                partition = partition.index, %error, "could not plan a log cleaning"),
        }
    }
    let Some((partition, plan)) = filthiest else {
        return false;
    };
    match clean(shard, &partition, &plan, now_ms).await {
        Ok(Some((end_offset, stats))) => {
            partition.set_first_dirty_offset(Some(end_offset));
            info!(
                shard = shard.id,
                topic = %partition.topic,
                partition = partition.index,
                dirty_ratio = format!("{:.3}", plan.dirty_ratio()),
                first_dirty_offset = plan.first_dirty_offset,
                cleaned_up_to = end_offset,
                bytes_before = stats.bytes_read,
                bytes_after = stats.bytes_written,
                records_removed = stats.records_read - stats.records_retained,
                segments_swapped = stats.segments_swapped,
                "cleaned log"
            );
            true
        }
        Ok(None) => {
            debug!(shard = shard.id, topic = %partition.topic, partition = partition.index,
                "log cleaning stopped for shutdown");
            false
        }
        Err(error) => {
            warn!(shard = shard.id, topic = %partition.topic, partition = partition.index,
                %error, retry_in_ms = FAILED_CLEANING_RETRY_MS,
                "log cleaning failed; cleaning the shard's other logs meanwhile");
            failed.insert(
                (partition.topic.clone(), partition.index),
                now_ms + FAILED_CLEANING_RETRY_MS,
            );
            false
        }
    }
}

/// One cleaning of `partition`: returns the new first dirty offset and the counts, or
/// None when shutdown cut it short.
async fn clean(
    shard: &Rc<Shard>,
    partition: &Partition,
    plan: &CleaningPlan,
    now_ms: i64,
) -> Result<Option<(i64, CleaningStats)>, StorageError> {
    let config = shard.effective_config();
    let settings = &config.maintenance;
    let mut throttle = IoThrottle::new(settings.cleaner_io_bytes_per_second_max);
    let mut map = OffsetMap::with_budget(settings.cleaner_dedupe_buffer_bytes / shard.count as u64);
    debug!(shard = shard.id, topic = %partition.topic, partition = partition.index,
        first_dirty_offset = plan.first_dirty_offset,
        first_uncleanable_offset = plan.first_uncleanable_offset, "cleaning log");
    let end_offset = build_offset_map(plan, &mut map, &mut throttle).await?;
    let mut stats = CleaningStats::default();
    for source in plan
        .segments
        .iter()
        .filter(|segment| segment.base_offset < end_offset)
    {
        if shard.is_shutting_down() {
            return Ok(None);
        }
        let cleaned = clean_segment(plan, source, &map, now_ms, &mut throttle).await?;
        stats.add(&cleaned.stats);
        if partition.swap_cleaned(cleaned).await? {
            stats.segments_swapped += 1;
        }
    }
    Ok(Some((end_offset, stats)))
}
