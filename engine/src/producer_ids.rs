//! Producer ids for InitProducerId: unique for the life of the data directory.
//!
//! ```text
//!  shard k: ProducerIdCache [next, end) ──empty──► invoke_on(controller shard)
//!                                                   ProducerIdBlocks: persist start+BLOCK, hand out [start, start+BLOCK)
//! ```
//!
//! The controller shard hands out blocks of [`PRODUCER_ID_BLOCK_SIZE`] ids (Kafka's
//! block size) and persists the end of each block in [`PRODUCER_IDS_FILE`] (first log
//! dir, written atomically) *before* handing it out, so no id is ever given twice, even
//! across crashes; ids of a block a crash interrupted are simply skipped. Every shard
//! caches one block and asks for the next when it runs out. When the controller
//! quorum lands, the persisted value moves into the metadata log (Kafka's
//! `ProducerIdsRecord`).

use std::cell::Cell;
use std::path::Path;
use std::rc::Rc;

use kafka_protocol::error::ResponseError;
use weir_storage::checkpoint::write_atomically;

use crate::controller::CONTROLLER_SHARD;
use crate::shard::Shard;

/// Ids per block: Kafka's `ProducerIdsBlock.PRODUCER_ID_BLOCK_SIZE`.
pub const PRODUCER_ID_BLOCK_SIZE: i64 = 1000;
/// File in the first log dir holding the first id not yet handed out.
pub const PRODUCER_IDS_FILE: &str = "weir-producer-ids";
const FILE_KEY: &str = "next.producer.id.block.start";

/// The controller's side: where the next block starts (loaded on first use).
#[derive(Default)]
pub struct ProducerIdBlocks {
    next_block_start: Cell<Option<i64>>,
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
        self.next_block_start.get().is_none()
    }

    /// Reserves the next block, persisting its end before returning it. `floor`: no id
    /// below it may be handed out (ids the logs already hold). Synchronous on purpose:
    /// no other allocation can interleave on the controller shard.
    pub fn allocate(&self, log_dir: &Path, floor: i64) -> Result<(i64, i64), AllocationError> {
        let storage_error = |error: String| (ResponseError::KafkaStorageError.code(), error);
        let path = log_dir.join(PRODUCER_IDS_FILE);
        let start = match self.next_block_start.get() {
            Some(start) => start,
            None => read_next_block_start(&path).map_err(storage_error)?,
        }
        .max(floor);
        let end = start
            .checked_add(PRODUCER_ID_BLOCK_SIZE)
            .ok_or_else(|| storage_error("producer ids are exhausted".to_string()))?;
        write_atomically(&path, format!("{FILE_KEY}={end}\n").as_bytes())
            .map_err(|error| storage_error(error.to_string()))?;
        self.next_block_start.set(Some(end));
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
                controller
                    .producer_id_blocks
                    .allocate(&controller.config.log_dirs[0], floor)
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

    #[test]
    fn blocks_continue_after_a_restart_and_never_repeat() {
        let dir = tempfile::tempdir().expect("tempdir");
        let blocks = ProducerIdBlocks::default();
        assert_eq!(blocks.allocate(dir.path(), 0), Ok((0, 1000)));
        assert_eq!(blocks.allocate(dir.path(), 0), Ok((1000, 2000)));
        // A restart reads the persisted end of the last block handed out.
        let restarted = ProducerIdBlocks::default();
        assert_eq!(restarted.allocate(dir.path(), 0), Ok((2000, 3000)));
        let text = std::fs::read_to_string(dir.path().join(PRODUCER_IDS_FILE)).expect("read");
        assert_eq!(text, "next.producer.id.block.start=3000\n");
        // Ids the logs already hold (an adopted Kafka log dir) are skipped.
        let adopted = ProducerIdBlocks::default();
        assert_eq!(adopted.allocate(dir.path(), 7_000), Ok((7_000, 8_000)));
    }

    #[test]
    fn a_malformed_file_is_an_error_naming_the_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join(PRODUCER_IDS_FILE), "garbage").expect("write");
        let (code, message) = ProducerIdBlocks::default()
            .allocate(dir.path(), 0)
            .expect_err("malformed");
        assert_eq!(code, ResponseError::KafkaStorageError.code());
        assert!(message.contains(PRODUCER_IDS_FILE), "{message}");
    }
}
