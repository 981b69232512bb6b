//! OffsetCommit v2–9 and OffsetFetch v1–9 (multi-group from v8), against the group's
//! coordinator shard. A commit is acknowledged only after its records are appended
//! to `__consumer_offsets`.

use std::collections::BTreeMap;
use std::rc::Rc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions,
    OffsetFetchResponseTopic, OffsetFetchResponseTopics,
};
use kafka_protocol::messages::{
    OffsetCommitRequest, OffsetCommitResponse, OffsetFetchRequest, OffsetFetchResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;

use super::groups::on_coordinator;
use crate::group::coordinator::FetchedOffset;
use crate::group::driver::now_ms;
use crate::group::records::OffsetValue;
use crate::shard::Shard;

pub async fn offset_commit(
    shard: &Rc<Shard>,
    version: i16,
    request: OffsetCommitRequest,
) -> OffsetCommitResponse {
    let group_id = request.group_id.0.to_string();
    let metadata = shard.metadata();
    let now = now_ms() as i64;
    let metadata_bytes_max = shard.config.groups.offset_metadata_bytes_max;
    // v2–4 carry a retention time; -1 means the broker default (no explicit expiry).
    let expire_timestamp_ms =
        (version <= 4 && request.retention_time_ms >= 0).then(|| now + request.retention_time_ms);
    // Per-partition checks first; only valid partitions are committed.
    let mut codes: BTreeMap<(String, i32), i16> = BTreeMap::new();
    let mut offsets = Vec::new();
    for topic in &request.topics {
        let name = topic.name.0.to_string();
        let partitions = metadata.topic(&name).map_or(0, |topic| topic.partitions);
        for partition in &topic.partitions {
            let index = partition.partition_index;
            let committed_metadata = partition
                .committed_metadata
                .as_ref()
                .map(|text| text.to_string())
                .unwrap_or_default();
            let code = if index < 0 || index >= partitions {
                ResponseError::UnknownTopicOrPartition.code()
            } else if committed_metadata.len() > metadata_bytes_max {
                ResponseError::OffsetMetadataTooLarge.code()
            } else {
                offsets.push((
                    name.clone(),
                    index,
                    OffsetValue {
                        offset: partition.committed_offset,
                        leader_epoch: if version >= 6 {
                            partition.committed_leader_epoch
                        } else {
                            -1
                        },
                        metadata: committed_metadata,
                        commit_timestamp_ms: now,
                        expire_timestamp_ms,
                    },
                ));
                0
            };
            codes.insert((name.clone(), index), code);
        }
    }
    let member_id = request.member_id.to_string();
    let instance_id = request.group_instance_id.as_ref().map(|id| id.to_string());
    let generation = request.generation_id_or_member_epoch;
    let key = group_id.clone();
    let outcome = on_coordinator(shard, &group_id, move |coordinator| async move {
        coordinator
            .groups
            .commit(
                &coordinator,
                &key,
                &member_id,
                instance_id.as_deref(),
                generation,
                offsets,
            )
            .await
    })
    .await
    .and_then(|result| result);
    let topics = request
        .topics
        .iter()
        .map(|topic| {
            let name = topic.name.0.to_string();
            let partitions = topic
                .partitions
                .iter()
                .map(|partition| {
                    let own = codes
                        .get(&(name.clone(), partition.partition_index))
                        .copied()
                        .unwrap_or(0);
                    let code = match outcome {
                        Err(code) if own == 0 => code,
                        _ => own,
                    };
                    OffsetCommitResponsePartition::default()
                        .with_partition_index(partition.partition_index)
                        .with_error_code(code)
                })
                .collect();
            OffsetCommitResponseTopic::default()
                .with_name(topic.name.clone())
                .with_partitions(partitions)
        })
        .collect();
    OffsetCommitResponse::default().with_topics(topics)
}

/// Fetches one group's offsets from its coordinator, grouped by topic in first-seen
/// order; a group-level failure is its error code with no offsets.
async fn fetch_group(
    shard: &Rc<Shard>,
    group_id: String,
    wanted: Option<Vec<(String, Vec<i32>)>>,
) -> (i16, Vec<TopicOffsets>) {
    let key = group_id.clone();
    let result = on_coordinator(shard, &group_id, move |coordinator| async move {
        coordinator.groups.fetch(&key, wanted)
    })
    .await
    .and_then(|result| result);
    match result {
        Ok(offsets) => (0, by_topic(offsets)),
        Err(code) => (code, Vec::new()),
    }
}

/// One topic's fetched offsets: (topic, [(partition, committed offset)]).
type TopicOffsets = (String, Vec<(i32, Option<OffsetValue>)>);

/// Groups fetched offsets by topic, keeping the first-seen topic order.
fn by_topic(offsets: Vec<FetchedOffset>) -> Vec<TopicOffsets> {
    let mut topics: Vec<TopicOffsets> = Vec::new();
    for (topic, partition, value) in offsets {
        match topics.iter_mut().find(|(name, _)| *name == topic) {
            Some((_, partitions)) => partitions.push((partition, value)),
            None => topics.push((topic, vec![(partition, value)])),
        }
    }
    topics
}

/// Builds the response topics for either OffsetFetch layout (v0–7 and v8+ use
/// different generated types with the same fields).
fn response_topics<P, T>(
    topics: Vec<TopicOffsets>,
    version: i16,
    partition: impl Fn(i32, i64, i32, StrBytes) -> P,
    topic: impl Fn(TopicName, Vec<P>) -> T,
) -> Vec<T> {
    topics
        .into_iter()
        .map(|(name, partitions)| {
            let partitions = partitions
                .into_iter()
                .map(|(index, value)| {
                    let (offset, epoch, metadata) = match value {
                        Some(value) => (
                            value.offset,
                            if version >= 5 { value.leader_epoch } else { -1 },
                            value.metadata,
                        ),
                        None => (-1, -1, String::new()),
                    };
                    partition(index, offset, epoch, StrBytes::from_string(metadata))
                })
                .collect();
            topic(TopicName(StrBytes::from_string(name)), partitions)
        })
        .collect()
}

pub async fn offset_fetch(
    shard: &Rc<Shard>,
    version: i16,
    request: OffsetFetchRequest,
) -> OffsetFetchResponse {
    if version >= 8 {
        let mut groups = Vec::with_capacity(request.groups.len());
        for group in request.groups {
            let wanted = group.topics.as_ref().map(|topics| {
                topics
                    .iter()
                    .map(|topic| (topic.name.0.to_string(), topic.partition_indexes.clone()))
                    .collect()
            });
            let (code, offsets) = fetch_group(shard, group.group_id.0.to_string(), wanted).await;
            let topics = response_topics(
                offsets,
                version,
                |index, offset, epoch, metadata| {
                    OffsetFetchResponsePartitions::default()
                        .with_partition_index(index)
                        .with_committed_offset(offset)
                        .with_committed_leader_epoch(epoch)
                        .with_metadata(Some(metadata))
                },
                |name, partitions| {
                    OffsetFetchResponseTopics::default()
                        .with_name(name)
                        .with_partitions(partitions)
                },
            );
            groups.push(
                OffsetFetchResponseGroup::default()
                    .with_group_id(group.group_id)
                    .with_topics(topics)
                    .with_error_code(code),
            );
        }
        return OffsetFetchResponse::default().with_groups(groups);
    }
    let wanted = request.topics.as_ref().map(|topics| {
        topics
            .iter()
            .map(|topic| (topic.name.0.to_string(), topic.partition_indexes.clone()))
            .collect()
    });
    let (code, offsets) = fetch_group(shard, request.group_id.0.to_string(), wanted).await;
    let topics = response_topics(
        offsets,
        version,
        |index, offset, epoch, metadata| {
            // v0–1 have no top-level error: the group's error goes on each partition.
            OffsetFetchResponsePartition::default()
                .with_partition_index(index)
                .with_committed_offset(offset)
                .with_committed_leader_epoch(epoch)
                .with_metadata(Some(metadata))
                .with_error_code(if version < 2 { code } else { 0 })
        },
        |name, partitions| {
            OffsetFetchResponseTopic::default()
                .with_name(name)
                .with_partitions(partitions)
        },
    );
    let response = OffsetFetchResponse::default().with_topics(topics);
    if version >= 2 {
        response.with_error_code(code)
    } else {
        response
    }
}
