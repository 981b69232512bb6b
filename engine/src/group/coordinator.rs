//! The shard side of group coordination: which shard coordinates a group, creating
//! `__consumer_offsets` when first needed, loading its partitions at open, and
//! appending offset and group records through the partition log.
//!
//! A group's coordinator is the owner shard of its `__consumer_offsets` partition, so
//! the coordinator is also the only writer of that partition: every record about a
//! group is appended by the shard that holds the group's state, in order.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use tracing::warn;
use weir_storage::batch::{SimpleRecord, encode_batch, iterate_batches};

use super::driver::GroupTable;
use super::offsets::{OffsetStore, commit_records};
use super::records::{OffsetValue, partition_for_group};
use crate::controller::{self, CONTROLLER_SHARD, NewTopic};
use crate::partition::Partition;
use crate::shard::Shard;

/// Kafka's name for the topic holding committed offsets and group metadata.
pub const OFFSETS_TOPIC: &str = "__consumer_offsets";
/// Kafka's `offsets.commit.timeout.ms`: how long a commit waits for the ISR.
const OFFSET_COMMIT_TIMEOUT_MS: u64 = 5_000;
/// How much of `__consumer_offsets` one read takes while loading.
const LOAD_READ_BYTES: usize = 1 << 20;

/// Group coordination state of one shard.
#[derive(Default)]
pub struct GroupCoordinator {
    /// Committed offsets and stored group metadata (the view of the log).
    pub store: RefCell<OffsetStore>,
    /// Live classic groups (state machines) and requests waiting on them.
    pub table: GroupTable,
}

/// One partition's committed offset as OffsetFetch reports it.
pub type FetchedOffset = (String, i32, Option<OffsetValue>);

/// Where group `group` is coordinated: its `__consumer_offsets` partition and that
/// partition's owner shard.
pub fn coordinator_for(shard: &Shard, group: &str) -> (i32, usize) {
    let partition = partition_for_group(group, shard.config.groups.offsets_topic_partitions);
    (partition, shard.owner_of(OFFSETS_TOPIC, partition))
}

/// Creates `__consumer_offsets` (compacted, `offsets.topic.num.partitions`) if it does
/// not exist yet; Kafka creates it on the first group request as well.
pub async fn ensure_offsets_topic(shard: &Rc<Shard>) -> Result<(), (i16, String)> {
    if shard.metadata().topic(OFFSETS_TOPIC).is_some() {
        return Ok(());
    }
    let settings = shard.config.groups.clone();
    let topic = NewTopic {
        name: OFFSETS_TOPIC.to_string(),
        partitions: settings.offsets_topic_partitions,
        replication_factor: -1,
        configs: BTreeMap::from([
            ("cleanup.policy".to_string(), "compact".to_string()),
            (
                "segment.bytes".to_string(),
                settings.offsets_topic_segment_bytes.to_string(),
            ),
        ]),
        assignments: None,
        internal: true,
    };
    let outcome = shard
        .invoke_on(CONTROLLER_SHARD, move |controller_shard| {
            controller::create_topics(controller_shard, vec![topic], false)
        })
        .await
        .map_err(|gone| {
            (
                ResponseError::CoordinatorNotAvailable.code(),
                gone.to_string(),
            )
        })?;
    match outcome.into_iter().next() {
        Some(Ok(_)) => Ok(()),
        // Another request created it first.
        Some(Err((code, _))) if code == ResponseError::TopicAlreadyExists.code() => Ok(()),
        Some(Err(failure)) => Err(failure),
        None => Err((
            ResponseError::CoordinatorNotAvailable.code(),
            "no answer from the controller".into(),
        )),
    }
}

impl GroupCoordinator {
    /// Forgets the groups of `__consumer_offsets` partition `index` (another broker
    /// coordinates them now, or they are about to be loaded again).
    pub fn unload_partition(&self, shard: &Shard, index: i32) {
        let partitions = shard.config.groups.offsets_topic_partitions;
        let ours = |group: &str| partition_for_group(group, partitions) == index;
        self.store.borrow_mut().remove_groups(ours);
        for group in self.table.group_ids() {
            if ours(&group) {
                self.table.remove(&group);
            }
        }
    }

    /// Replays one `__consumer_offsets` partition into the store (when this broker
    /// becomes its leader), to the log end.
    pub async fn load_partition(&self, partition: &Partition) -> usize {
        let mut offset = partition.log_start_offset();
        let end = partition.log_end_offset();
        let mut records = 0;
        while offset < end {
            let read = match partition.read_to_end(offset, LOAD_READ_BYTES).await {
                Ok(read) => read,
                Err(error) => {
                    warn!(partition = partition.index, offset, %error, "could not read __consumer_offsets while loading");
                    break;
                }
            };
            if read.data.is_empty() {
                break;
            }
            let mut next = offset;
            for (position, header) in iterate_batches(&read.data) {
                let batch = &read.data[position..position + header.size_bytes() as usize];
                match self.store.borrow_mut().replay_batch(batch) {
                    Ok(count) => records += count,
                    Err(error) => {
                        warn!(partition = partition.index, %error, "skipping an unreadable __consumer_offsets batch")
                    }
                }
                next = header.last_offset() + 1;
            }
            assert!(next > offset, "loading always moves forward");
            offset = next;
        }
        records
    }

    /// Appends `records` to this shard's `__consumer_offsets` partition `index` and,
    /// once the log has them, applies them to the store. The append is the commit point.
    pub async fn append(
        &self,
        shard: &Shard,
        index: i32,
        records: Vec<SimpleRecord>,
        now_ms: i64,
    ) -> Result<(), (i16, String)> {
        let Some(partition) = shard.partition(OFFSETS_TOPIC, index) else {
            return Err((
                ResponseError::NotCoordinator.code(),
                format!("this shard does not own {OFFSETS_TOPIC}-{index}"),
            ));
        };
        if !partition.is_leader() {
            return Err((
                ResponseError::NotCoordinator.code(),
                format!("this broker does not lead {OFFSETS_TOPIC}-{index}"),
            ));
        }
        let batch = Bytes::from(encode_batch(0, &records));
        let info = partition
            .append(batch.clone(), now_ms)
            .await
            .map_err(|error| (crate::errors::storage_error_code(&error), error.to_string()))?;
        // Kafka writes group records with acks=all: a commit is answered once the
        // partition's ISR has it, so it survives the coordinator's death.
        partition
            .wait_acknowledged(
                info.last_offset,
                std::time::Duration::from_millis(OFFSET_COMMIT_TIMEOUT_MS),
            )
            .await
            .map_err(|error| match error {
                crate::partition::AckError::TimedOut => (
                    ResponseError::RequestTimedOut.code(),
                    format!(
                        "{OFFSETS_TOPIC}-{index}'s in-sync replicas did not acknowledge in time"
                    ),
                ),
                crate::partition::AckError::Replication(error) => (
                    crate::errors::replication_error_code(&error),
                    error.to_string(),
                ),
            })?;
        self.store
            .borrow_mut()
            .replay_batch(&batch)
            .expect("records this shard just encoded replay cleanly");
        Ok(())
    }

    /// After loading partition `index`: brings back the live groups whose metadata it
    /// stores, with fresh session deadlines.
    pub fn restore_groups(&self, shard: &Shard, index: i32) {
        let store = self.store.borrow();
        let partitions = shard.config.groups.offsets_topic_partitions;
        for group_id in store.group_names() {
            if partition_for_group(group_id, partitions) != index {
                continue;
            }
            if let Some(value) = store
                .group(group_id)
                .and_then(|stored| stored.metadata.as_ref())
            {
                self.table.restore(&shard.config, group_id, value);
            }
        }
    }

    /// OffsetCommit on the coordinator: validates the member against the group (a
    /// group the coordinator does not know accepts only standalone commits, generation
    /// -1) and appends the offsets. Returns the error for the whole request, if any.
    pub async fn commit(
        &self,
        shard: &Rc<Shard>,
        group_id: &str,
        member_id: &str,
        group_instance_id: Option<&str>,
        generation_id: i32,
        offsets: Vec<(String, i32, OffsetValue)>,
    ) -> Result<(), i16> {
        self.table.with_group(group_id, |group| match group {
            Some(group) => {
                group.validate_offset_commit(member_id, group_instance_id, generation_id)
            }
            None if generation_id < 0 => Ok(()),
            None => Err(ResponseError::IllegalGeneration.code()),
        })?;
        if offsets.is_empty() {
            return Ok(());
        }
        let (partition, _) = coordinator_for(shard, group_id);
        let now = super::driver::now_ms() as i64;
        self.append(
            shard,
            partition,
            commit_records(group_id, &offsets, now),
            now,
        )
        .await
        .map_err(|(code, _)| code)
    }

    /// OffsetFetch on the coordinator: the committed offsets of `group_id` for the
    /// given partitions, or for every partition it committed when `wanted` is `None`.
    pub fn fetch(
        &self,
        group_id: &str,
        wanted: Option<Vec<(String, Vec<i32>)>>,
    ) -> Result<Vec<FetchedOffset>, i16> {
        self.table.with_group(group_id, |group| {
            group.map_or(Ok(()), |group| group.validate_offset_fetch())
        })?;
        let store = self.store.borrow();
        Ok(match wanted {
            Some(topics) => topics
                .into_iter()
                .flat_map(|(topic, partitions)| {
                    let store = &store;
                    partitions.into_iter().map(move |partition| {
                        let offset = store.offset(group_id, &topic, partition).cloned();
                        (topic.clone(), partition, offset)
                    })
                })
                .collect(),
            None => store
                .group(group_id)
                .map(|stored| {
                    stored
                        .offsets
                        .iter()
                        .map(|((topic, partition), value)| {
                            (topic.clone(), *partition, Some(value.clone()))
                        })
                        .collect()
                })
                .unwrap_or_default(),
        })
    }
}
