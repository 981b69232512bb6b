//! Producer ids for InitProducerId: unique for the life of the data directory.
//!
//! ```text
//!  shard k: ProducerIdCache [next, end) ──empty──► invoke_on(controller shard)
//!                     ProducerIdBlocks: commit ProducerIdBlock{start+BLOCK} through the quorum
//!                     (the active controller only; elsewhere COORDINATOR_NOT_AVAILABLE, retried),
//!                                       then hand out [start, start+BLOCK)
//! ```
//!
//! The controller shard hands out blocks of [`PRODUCER_ID_BLOCK_SIZE`] ids (Kafka's
//! block size) and commits the end of each block to the metadata log (Kafka's
//! `ProducerIdsRecord`) *before* handing it out, so no id is ever given twice, even
//! across crashes; ids of a block a crash interrupted are simply skipped. Every shard
//! caches one block and asks for the next when it runs out. An older weir's
//! [`PRODUCER_IDS_FILE`] is a lower bound once, then renamed `.imported`.

use std::cell::Cell;
use std::path::Path;
use std::rc::Rc;

use kafka_protocol::error::ResponseError;

use crate::controller::CONTROLLER_SHARD;
use crate::quorum::MetadataLog;
use crate::replication::cluster_state::MetadataRecord;
use crate::shard::Shard;

/// Ids per block: Kafka's `ProducerIdsBlock.PRODUCER_ID_BLOCK_SIZE`.
pub const PRODUCER_ID_BLOCK_SIZE: i64 = 1000;
/// The file an older weir kept the first unused id in (first log dir).
pub const PRODUCER_IDS_FILE: &str = "weir-producer-ids";
const FILE_KEY: &str = "next.producer.id.block.start";

/// The controller's side: whether a block was handed out since start-up.
#[derive(Default)]
pub struct ProducerIdBlocks {
    allocated: Cell<bool>,
}

/// A shard's current block `[next, end)`.
#[derive(Default)]
pub struct ProducerIdCache {
    next: Cell<i64>,
    end: Cell<i64>,
}

/// Why no producer id could be handed out: (Kafka error code, message).
pub type AllocationError = (i16, String);

impl ProducerIdBlocks {
    /// Whether no block was handed out since start-up yet.
    pub fn is_first(&self) -> bool {
        !self.allocated.get()
    }

    /// The next block and the record that reserves it. `floor`: no id below it may be
    /// handed out (ids the logs already hold).
    pub fn plan(
        &self,
        log: &MetadataLog,
        log_dir: &Path,
        floor: i64,
    ) -> Result<(i64, i64, MetadataRecord), AllocationError> {
        let storage_error = |error: String| (ResponseError::KafkaStorageError.code(), error);
        let legacy_path = log_dir.join(PRODUCER_IDS_FILE);
        let legacy = read_next_block_start(&legacy_path).map_err(storage_error)?;
        let start = log.state().next_producer_id_block().max(legacy).max(floor);
        let end = start
            .checked_add(PRODUCER_ID_BLOCK_SIZE)
            .ok_or_else(|| storage_error("producer ids are exhausted".to_string()))?;
        Ok((
            start,
            end,
            MetadataRecord::ProducerIdBlock {
                next_block_start: end,
                granted: None,
            },
        ))
    }

    /// After the block's record committed: an older file's value is in the log now.
    pub fn allocated(&self, log_dir: &Path) -> Result<(), AllocationError> {
        let legacy_path = log_dir.join(PRODUCER_IDS_FILE);
        if legacy_path.exists() {
            std::fs::rename(&legacy_path, legacy_path.with_extension("imported")).map_err(
                |error| {
                    (
                        ResponseError::KafkaStorageError.code(),
                        format!("cannot rename {}: {error}", legacy_path.display()),
                    )
                },
            )?;
        }
        self.allocated.set(true);
        Ok(())
    }

    /// Reserves the next block with a synchronous commit (a single voter's start-up).
    pub fn allocate(
        &self,
        log: &mut MetadataLog,
        log_dir: &Path,
        floor: i64,
    ) -> Result<(i64, i64), AllocationError> {
        let (start, end, record) = self.plan(log, log_dir, floor)?;
        log.commit(vec![record])
            .map_err(|error| (ResponseError::KafkaStorageError.code(), error.to_string()))?;
        self.allocated(log_dir)?;
        Ok((start, end))
    }
}

fn read_next_block_start(path: &Path) -> Result<i64, String> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(error) => return Err(format!("cannot read {}: {error}", path.display())),
    };
    text.lines()
        .find_map(|line| line.strip_prefix(FILE_KEY)?.strip_prefix('='))
        .and_then(|value| value.trim().parse::<i64>().ok())
        .filter(|start| *start >= 0)
        .ok_or_else(|| {
            format!(
                "{} is malformed: expected `{FILE_KEY}=<id>`; restore it or move it away to start ids above every id in the logs",
                path.display()
            )
        })
}

/// A fresh producer id, from this shard's block (fetching a new block when it is used up).
pub async fn next_producer_id(shard: &Rc<Shard>) -> Result<i64, AllocationError> {
    let cache = &shard.producer_ids;
    if cache.next.get() >= cache.end.get() {
        let (start, end) = shard
            .invoke_on(CONTROLLER_SHARD, |controller: Rc<Shard>| async move {
                let floor = if controller.producer_id_blocks.is_first() {
                    largest_known_producer_id(&controller).await + 1
                } else {
                    0
                };
                crate::controller::allocate_producer_ids(&controller, floor).await
            })
            .await
            .map_err(|gone| {
                (
                    ResponseError::CoordinatorNotAvailable.code(),
                    gone.to_string(),
                )
            })??;
        // Another request on this shard may have refilled the cache meanwhile; the
        // newer block simply replaces it (ids in between stay unused, never reused).
        cache.next.set(start);
        cache.end.set(end);
    }
    let id = cache.next.get();
    cache.next.set(id + 1);
    Ok(id)
}

/// The largest producer id any open partition of any shard has state for (−1: none).
async fn largest_known_producer_id(controller: &Rc<Shard>) -> i64 {
    let per_shard = controller
        .invoke_on_all(|shard: Rc<Shard>| async move {
            let mut largest = -1;
            for partition in shard.local_partitions() {
                if let Ok(producers) = partition.producers().await {
                    for producer in producers {
                        largest = largest.max(producer.producer_id);
                    }
                }
            }
            largest
        })
        .await;
    per_shard
        .into_iter()
        .filter_map(Result::ok)
        .max()
        .unwrap_or(-1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::replication::control::ReplicationControl;

    fn open(dir: &Path) -> MetadataLog {
        MetadataLog::open(
            dir,
            0,
            &[0],
            crate::quorum::timing(1000, std::time::Duration::from_millis(100)),
            ReplicationControl::new(9_000),
        )
        .expect("open")
    }

    #[test]
    fn blocks_continue_after_a_restart_and_never_repeat() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut log = open(dir.path());
        let blocks = ProducerIdBlocks::default();
        assert_eq!(blocks.allocate(&mut log, dir.path(), 0), Ok((0, 1000)));
        assert_eq!(blocks.allocate(&mut log, dir.path(), 0), Ok((1000, 2000)));
        drop(log);
        // A restart reads the committed end of the last block handed out.
        let mut log = open(dir.path());
        let restarted = ProducerIdBlocks::default();
        assert_eq!(
            restarted.allocate(&mut log, dir.path(), 0),
            Ok((2000, 3000))
        );
        // Ids the logs already hold (an adopted Kafka log dir) are skipped.
        assert_eq!(
            restarted.allocate(&mut log, dir.path(), 7_000),
            Ok((7_000, 8_000))
        );
    }

    #[test]
    fn an_older_producer_ids_file_is_a_lower_bound_once() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(
            dir.path().join(PRODUCER_IDS_FILE),
            "next.producer.id.block.start=5000\n",
        )
        .expect("write");
        let mut log = open(dir.path());
        let blocks = ProducerIdBlocks::default();
        assert_eq!(blocks.allocate(&mut log, dir.path(), 0), Ok((5000, 6000)));
        assert!(!dir.path().join(PRODUCER_IDS_FILE).exists());
        assert!(dir.path().join("weir-producer-ids.imported").exists());
        assert_eq!(blocks.allocate(&mut log, dir.path(), 0), Ok((6000, 7000)));
    }

    #[test]
    fn a_malformed_file_is_an_error_naming_the_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join(PRODUCER_IDS_FILE), "garbage").expect("write");
        let mut log = open(dir.path());
        let (code, message) = ProducerIdBlocks::default()
            .allocate(&mut log, dir.path(), 0)
            .expect_err("malformed");
        assert_eq!(code, ResponseError::KafkaStorageError.code());
        assert!(message.contains(PRODUCER_IDS_FILE), "{message}");
    }
}
