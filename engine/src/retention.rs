//! Per-shard retention: every `log.retention.check.interval.ms` each shard applies
//! Kafka's retention rules to the partitions it owns, in a low-share task queue so the
//! pass yields to produce and fetch.
//!
//! ```text
//!  shard i: retention task queue (RETENTION_SHARES) ── every interval ─► each local partition:
//!     Partition::apply_retention: read lock: anything to delete? ─► write lock: segments leave
//!     the list, log start advances ─► unlocked: files renamed to *.deleted
//!  ─► a timer removes the *.deleted files after file.delete.delay.ms (the next open removes
//!     any a shutdown or crash left behind)
//! ```
//!
//! The log start offset reaches `log-start-offset-checkpoint` with the next periodic
//! checkpoint; until then a restart takes the first remaining segment's base, which is
//! the same offset retention moved it to.

use std::rc::Rc;

use tracing::{info, warn};
use weir_storage::DeletedFiles;

use crate::partition::{Partition, RetiredSegments};
use crate::shard::Shard;

/// Shares of the retention task queue; glommio's default queue has 1000, so under load
/// retention gets about a tenth of the shard's time and produce/fetch the rest.
pub const RETENTION_SHARES: usize = 100;

/// Starts the shard's retention loop in its own low-share task queue.
pub fn spawn(shard: Rc<Shard>) {
    shard.spawn_background("retention", RETENTION_SHARES, retention_loop(shard.clone()));
}

/// Every `log.retention.check.interval.ms` (re-read from the effective config each time,
/// so a dynamic change applies at the next pass), one retention pass over the shard's
/// partitions, until shutdown.
async fn retention_loop(shard: Rc<Shard>) {
    loop {
        let interval_ms = shard
            .effective_config()
            .maintenance
            .retention_check_interval_ms;
        if !shard.sleep_unless_shutdown(interval_ms).await {
            return;
        }
        let now_ms = weir_storage::now_ms();
        for partition in shard.local_partitions() {
            if shard.is_shutting_down() {
                return;
            }
            match partition.apply_retention(now_ms).await {
                Ok(None) => {}
                Ok(Some(retired)) => {
                    log_deletion(&shard, &partition, &retired, "retention");
                    schedule_removal(&shard, retired);
                }
                Err(error) => warn!(shard = shard.id, topic = %partition.topic,
                    partition = partition.index, %error, "retention pass failed"),
            }
        }
    }
}

/// Logs what retention or DeleteRecords deleted, at info (once per pass and partition).
pub fn log_deletion(shard: &Shard, partition: &Partition, retired: &RetiredSegments, cause: &str) {
    let bytes: u64 = retired
        .segments
        .iter()
        .map(|segment| segment.size_bytes)
        .sum();
    let reasons: Vec<String> = retired
        .segments
        .iter()
        .map(|segment| format!("{}: {}", segment.base_offset, segment.reason))
        .collect();
    info!(
        shard = shard.id,
        topic = %partition.topic,
        partition = partition.index,
        segments = retired.segments.len(),
        bytes,
        log_start_offset = retired.log_start_offset,
        cause,
        "deleted segments ({})",
        reasons.join(", ")
    );
}

/// Removes the `*.deleted` files after `file.delete.delay.ms`, or leaves them to the
/// next open if the shard shuts down first. One timer task per removal: at most one per
/// partition and retention pass or DeleteRecords that removed segments, so the tasks
/// alive are bounded by the segments written within one delay.
pub fn schedule_removal(shard: &Rc<Shard>, retired: RetiredSegments) {
    let RetiredSegments {
        files,
        file_delete_delay_ms,
        ..
    } = retired;
    if file_delete_delay_ms == 0 {
        remove(shard.id, files);
        return;
    }
    let shard = shard.clone();
    glommio::spawn_local(async move {
        if shard.sleep_unless_shutdown(file_delete_delay_ms).await {
            remove(shard.id, files);
        }
    })
    .detach();
}

fn remove(shard_id: usize, files: DeletedFiles) {
    if let Err(error) = files.remove() {
        warn!(shard = shard_id, %error, "could not remove deleted segment files; the next start removes them");
    }
}
