//! DeleteRecords v0–2: moves partitions' log start offsets forward (Kafka's
//! `deleteRecordsOnLeader`).
//!
//! Per partition, on its owner shard: offset −1 means the high watermark; an offset
//! past the high watermark or below −1 is OFFSET_OUT_OF_RANGE; a topic whose
//! `cleanup.policy` lacks `delete` is POLICY_VIOLATION (as Kafka). The answer's
//! `low_watermark` is the log start offset afterwards, which ListOffsets earliest then
//! reports; in a cluster the answer waits (up to the request's timeout, then
//! REQUEST_TIMED_OUT) until every in-sync follower moved its log start there too —
//! Kafka's low watermark — so a failover cannot bring deleted records back. Segments
//! wholly below it are deleted at once; the checkpoint files are written before the
//! answer, so a crash right after it keeps the new start.

use std::rc::Rc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::delete_records_response::{
    DeleteRecordsPartitionResult, DeleteRecordsTopicResult,
};
use kafka_protocol::messages::{DeleteRecordsRequest, DeleteRecordsResponse};
use tracing::warn;

use crate::errors::{NONE, delete_records_error_code};
use crate::retention::{log_deletion, schedule_removal};
use crate::shard::Shard;

/// DeleteRecords' "up to the high watermark" offset.
const HIGH_WATERMARK: i64 = -1;

pub async fn handle(
    shard: &Rc<Shard>,
    _version: i16,
    request: DeleteRecordsRequest,
) -> DeleteRecordsResponse {
    let metadata = shard.metadata();
    let timeout = std::time::Duration::from_millis(request.timeout_ms.max(0) as u64);
    let mut topics = Vec::with_capacity(request.topics.len());
    let mut any_deleted = false;
    for topic in request.topics {
        let name = topic.name.0.to_string();
        let count = metadata
            .topic(&name)
            .map(|topic| topic.partitions)
            .unwrap_or(0);
        let deletions = topic.partitions.iter().map(|partition| {
            let name = name.clone();
            let index = partition.partition_index;
            let offset = partition.offset;
            async move {
                let answer = if index < 0 || index >= count {
                    Err(ResponseError::UnknownTopicOrPartition.code())
                } else if offset < HIGH_WATERMARK {
                    Err(ResponseError::OffsetOutOfRange.code())
                } else {
                    delete_on_owner(shard, name, index, offset, timeout).await
                };
                let result = DeleteRecordsPartitionResult::default().with_partition_index(index);
                match answer {
                    Ok(low_watermark) => result
                        .with_error_code(NONE)
                        .with_low_watermark(low_watermark),
                    Err(code) => result.with_error_code(code).with_low_watermark(-1),
                }
            }
        });
        let partitions = futures::future::join_all(deletions).await;
        any_deleted |= partitions.iter().any(|result| result.error_code == NONE);
        topics.push(
            DeleteRecordsTopicResult::default()
                .with_name(topic.name)
                .with_partitions(partitions),
        );
    }
    if any_deleted {
        let written = shard
            .invoke_on(0, |controller: Rc<Shard>| async move {
                crate::server::write_checkpoints_now(&controller)
                    .await
                    .map_err(|error| error.to_string())
            })
            .await;
        if let Ok(Err(error)) = written {
            warn!(shard = shard.id, %error, "could not write checkpoint files after DeleteRecords");
        }
    }
    DeleteRecordsResponse::default().with_topics(topics)
}

/// Runs the deletion on the partition's owner shard; the low watermark or an error code.
async fn delete_on_owner(
    shard: &Rc<Shard>,
    topic: String,
    index: i32,
    offset: i64,
    timeout: std::time::Duration,
) -> Result<i64, i16> {
    let owner = shard.owner_of(&topic, index);
    shard
        .invoke_on(owner, move |owner_shard: Rc<Shard>| async move {
            let Some(partition) = owner_shard.partition(&topic, index) else {
                return Err(ResponseError::UnknownTopicOrPartition.code());
            };
            if !partition.is_leader() {
                // Followers follow the leader's log start (replica_manager).
                return Err(ResponseError::NotLeaderOrFollower.code());
            }
            let now_ms = weir_storage::now_ms();
            let (low_watermark, retired) = partition
                .delete_records(offset, now_ms)
                .await
                .map_err(|error| delete_records_error_code(&error))?;
            if let Some(retired) = retired {
                log_deletion(&owner_shard, &partition, &retired, "DeleteRecords");
                schedule_removal(&owner_shard, retired);
            }
            // The followers move theirs on their next fetch (replica_manager).
            let replicated = partition.wait_low_watermark(low_watermark, timeout).await;
            if replicated < low_watermark {
                return Err(ResponseError::RequestTimedOut.code());
            }
            Ok(low_watermark)
        })
        .await
        .unwrap_or(Err(ResponseError::NotLeaderOrFollower.code()))
}
