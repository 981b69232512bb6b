//! ListOffsets v1–8: earliest (-2), latest (-1), max timestamp (-3, v7+), earliest
//! local (-4, v8+, the log start on a broker without tiered storage) and by timestamp.
//!
//! As in Kafka, a consumer (`replica_id` -1) is answered by the partition's leader only
//! (NOT_LEADER_OR_FOLLOWER elsewhere) and its latest offset is the high watermark; a
//! debugging client (`replica_id` -2) or a broker may ask any replica, and its latest
//! offset is that replica's log end offset (how replica lag is observed from outside).

use std::rc::Rc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::{ListOffsetsRequest, ListOffsetsResponse};

use crate::errors::storage_error_code;
use crate::partition::OffsetQuery;
use crate::shard::Shard;

/// `replica_id` of an ordinary consumer's request.
const CONSUMER_REPLICA_ID: i32 = -1;

pub async fn handle(
    shard: &Rc<Shard>,
    version: i16,
    request: ListOffsetsRequest,
) -> ListOffsetsResponse {
    let metadata = shard.metadata();
    let consumer = request.replica_id.0 == CONSUMER_REPLICA_ID;
    let mut topics = Vec::with_capacity(request.topics.len());
    for topic in request.topics {
        let name = topic.name.0.to_string();
        let count = metadata
            .topic(&name)
            .map(|topic| topic.partitions)
            .unwrap_or(0);
        let lookups = topic.partitions.iter().map(|partition| {
            let name = name.clone();
            let index = partition.partition_index;
            let timestamp = partition.timestamp;
            let current_leader_epoch = if version >= 4 {
                partition.current_leader_epoch
            } else {
                -1
            };
            async move {
                let query = match timestamp {
                    -2 | -4 => Some(OffsetQuery::Earliest),
                    -1 if consumer => Some(OffsetQuery::Latest),
                    -1 => Some(OffsetQuery::LogEnd),
                    -3 if version >= 7 => Some(OffsetQuery::MaxTimestamp),
                    timestamp if timestamp >= 0 => Some(OffsetQuery::Timestamp(timestamp)),
                    _ => None,
                };
                let response = ListOffsetsPartitionResponse::default().with_partition_index(index);
                let Some(query) = query else {
                    return response
                        .with_error_code(ResponseError::InvalidRequest.code())
                        .with_offset(-1)
                        .with_timestamp(-1);
                };
                if index < 0 || index >= count {
                    return response
                        .with_error_code(ResponseError::UnknownTopicOrPartition.code())
                        .with_offset(-1)
                        .with_timestamp(-1);
                }
                let owner = shard.owner_of(&name, index);
                let answer = shard
                    .invoke_on(owner, move |owner_shard| async move {
                        let Some(partition) = owner_shard.partition(&name, index) else {
                            return Err(ResponseError::UnknownTopicOrPartition.code());
                        };
                        if consumer && !partition.is_leader() {
                            return Err(ResponseError::NotLeaderOrFollower.code());
                        }
                        partition.check_current_leader_epoch(current_leader_epoch)?;
                        let answer = partition.list_offset(query).await;
                        answer
                            .map(|answer| (answer, partition.leader_epoch()))
                            .map_err(|error| storage_error_code(&error))
                    })
                    .await
                    .unwrap_or(Err(ResponseError::NotLeaderOrFollower.code()));
                match answer {
                    Ok(((offset, timestamp), leader_epoch)) => response
                        .with_error_code(0)
                        .with_offset(offset)
                        .with_timestamp(timestamp)
                        .with_leader_epoch(if offset >= 0 && version >= 4 {
                            leader_epoch
                        } else {
                            -1
                        }),
                    Err(code) => response
                        .with_error_code(code)
                        .with_offset(-1)
                        .with_timestamp(-1),
                }
            }
        });
        let partitions = futures::future::join_all(lookups).await;
        topics.push(
            ListOffsetsTopicResponse::default()
                .with_name(topic.name)
                .with_partitions(partitions),
        );
    }
    ListOffsetsResponse::default().with_topics(topics)
}
