//! OffsetForLeaderEpoch v2–4 (KIP-101, KIP-320): where a leader epoch ends in this
//! broker's log. Followers ask it to find where to truncate; consumers ask it after a
//! leader change to detect a log that was truncated under them.
//!
//! Per partition: unknown → UNKNOWN_TOPIC_OR_PARTITION; `current_leader_epoch` (v2+)
//! checked as Fetch checks it (FENCED_LEADER_EPOCH / UNKNOWN_LEADER_EPOCH); else the
//! leader epoch cache answers `(epoch, end offset)`: the largest epoch ≤ the requested
//! one and the first offset after it, or `(-1, -1)` when the log has no such epoch.

use std::rc::Rc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::offset_for_leader_epoch_response::{
    EpochEndOffset, OffsetForLeaderTopicResult,
};
use kafka_protocol::messages::{OffsetForLeaderEpochRequest, OffsetForLeaderEpochResponse};

use crate::errors::storage_error_code;
use crate::shard::Shard;

pub async fn handle(
    shard: &Rc<Shard>,
    _version: i16,
    request: OffsetForLeaderEpochRequest,
) -> OffsetForLeaderEpochResponse {
    let metadata = shard.metadata();
    let mut topics = Vec::with_capacity(request.topics.len());
    for topic in request.topics {
        let name = topic.topic.0.to_string();
        let count = metadata.topic(&name).map_or(0, |topic| topic.partitions);
        let lookups = topic.partitions.iter().map(|partition| {
            let name = name.clone();
            let (index, current, requested) = (
                partition.partition,
                partition.current_leader_epoch,
                partition.leader_epoch,
            );
            async move {
                let answer = EpochEndOffset::default().with_partition(index);
                if index < 0 || index >= count {
                    return answer
                        .with_error_code(ResponseError::UnknownTopicOrPartition.code())
                        .with_leader_epoch(-1)
                        .with_end_offset(-1);
                }
                let owner = shard.owner_of(&name, index);
                let found = shard
                    .invoke_on(owner, move |owner_shard| async move {
                        let Some(partition) = owner_shard.partition(&name, index) else {
                            return Err(ResponseError::UnknownTopicOrPartition.code());
                        };
                        partition.check_current_leader_epoch(current)?;
                        partition
                            .end_offset_for_epoch(requested)
                            .await
                            .map_err(|error| storage_error_code(&error))
                    })
                    .await
                    .unwrap_or(Err(ResponseError::NotLeaderOrFollower.code()));
                match found {
                    Ok((epoch, end_offset)) => answer
                        .with_error_code(0)
                        .with_leader_epoch(epoch)
                        .with_end_offset(end_offset),
                    Err(code) => answer
                        .with_error_code(code)
                        .with_leader_epoch(-1)
                        .with_end_offset(-1),
                }
            }
        });
        let partitions = futures::future::join_all(lookups).await;
        topics.push(
            OffsetForLeaderTopicResult::default()
                .with_topic(topic.topic)
                .with_partitions(partitions),
        );
    }
    OffsetForLeaderEpochResponse::default().with_topics(topics)
}
