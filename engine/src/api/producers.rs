//! InitProducerId v0–5 (idempotent producers) and DescribeProducers v0.
//!
//! An idempotent producer (no transactional id) asks any broker for an id; as Kafka's
//! coordinator does for a null transactional id, every request gets a fresh producer id
//! with epoch 0 — also a KIP-360 "bump" request that names its current id and epoch,
//! since only transactional producers keep their id. Producer ids never repeat
//! (`producer_ids`). Transactional ids are refused until transactions exist.
//! DescribeProducers reads each partition's producer state on its owner shard.

use std::rc::Rc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::describe_producers_response::{
    PartitionResponse, ProducerState, TopicResponse,
};
use kafka_protocol::messages::{
    DescribeProducersRequest, DescribeProducersResponse, InitProducerIdRequest,
    InitProducerIdResponse, ProducerId,
};
use kafka_protocol::protocol::StrBytes;

use crate::errors::storage_error_code;
use crate::producer_ids::next_producer_id;
use crate::shard::Shard;

pub async fn init_producer_id(
    shard: &Rc<Shard>,
    _version: i16,
    request: InitProducerIdRequest,
) -> InitProducerIdResponse {
    let failed = |code: i16| {
        InitProducerIdResponse::default()
            .with_error_code(code)
            .with_producer_id(ProducerId(-1))
            .with_producer_epoch(-1)
    };
    if request.transactional_id.is_some() {
        tracing::debug!("InitProducerId with a transactional id refused: no transactions yet");
        return failed(ResponseError::InvalidRequest.code());
    }
    // Kafka: an id without an epoch (or the reverse) is malformed (v3+ fields).
    if (request.producer_id.0 == -1) != (request.producer_epoch == -1) {
        return failed(ResponseError::InvalidRequest.code());
    }
    match next_producer_id(shard).await {
        Ok(producer_id) => InitProducerIdResponse::default()
            .with_producer_id(ProducerId(producer_id))
            .with_producer_epoch(0),
        Err((code, message)) => {
            tracing::warn!(%message, "no producer id could be allocated");
            failed(code)
        }
    }
}

pub async fn describe_producers(
    shard: &Rc<Shard>,
    _version: i16,
    request: DescribeProducersRequest,
) -> DescribeProducersResponse {
    let mut topics = Vec::with_capacity(request.topics.len());
    for topic in request.topics {
        let name = topic.name.0.to_string();
        let lookups = topic.partition_indexes.into_iter().map(|index| {
            let name = name.clone();
            async move { describe_partition(shard, name, index).await }
        });
        let partitions = futures::future::join_all(lookups).await;
        topics.push(
            TopicResponse::default()
                .with_name(topic.name)
                .with_partitions(partitions),
        );
    }
    DescribeProducersResponse::default().with_topics(topics)
}

async fn describe_partition(shard: &Rc<Shard>, topic: String, index: i32) -> PartitionResponse {
    let owner = shard.owner_of(&topic, index);
    let answer = shard
        .invoke_on(owner, move |owner_shard: Rc<Shard>| async move {
            let Some(partition) = owner_shard.partition(&topic, index) else {
                return Err((
                    ResponseError::UnknownTopicOrPartition.code(),
                    format!("This server does not host {topic}-{index}."),
                ));
            };
            partition
                .producers()
                .await
                .map_err(|error| (storage_error_code(&error), error.to_string()))
        })
        .await
        .unwrap_or_else(|gone| Err((ResponseError::NotLeaderOrFollower.code(), gone.to_string())));
    let response = PartitionResponse::default().with_partition_index(index);
    match answer {
        Ok(entries) => response.with_active_producers(
            entries
                .into_iter()
                .map(|entry| {
                    ProducerState::default()
                        .with_producer_id(ProducerId(entry.producer_id))
                        .with_producer_epoch(i32::from(entry.epoch))
                        .with_last_sequence(entry.last_sequence())
                        .with_last_timestamp(entry.last_timestamp)
                        .with_coordinator_epoch(entry.coordinator_epoch)
                        .with_current_txn_start_offset(entry.current_txn_first_offset)
                })
                .collect(),
        ),
        Err((code, message)) => response
            .with_error_code(code)
            .with_error_message(Some(StrBytes::from_string(message))),
    }
}
