//! FindCoordinator v0–6: where the coordinator for a group (or transaction) lives.
//!
//! A group's coordinator is the broker leading its `__consumer_offsets` partition; on
//! a single node that is always this node. In a cluster, the first lookup creates
//! `__consumer_offsets` (through the active controller) as Kafka does. Transaction and share-group keys get a
//! clear, non-retriable INVALID_REQUEST until those features exist, rather than a
//! retriable error a client would spin on. Batched lookups (v4+) answer every key.

use std::rc::Rc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::{BrokerId, FindCoordinatorRequest, FindCoordinatorResponse};
use kafka_protocol::protocol::StrBytes;

use crate::group::coordinator::{OFFSETS_TOPIC, ensure_offsets_topic};
use crate::group::records::partition_for_group;
use crate::shard::Shard;

/// Kafka's coordinator key types.
const KEY_TYPE_GROUP: i8 = 0;

/// (error code, message) for a key type weir cannot coordinate yet.
fn unsupported_key_type(key_type: i8) -> Option<(i16, String)> {
    match key_type {
        KEY_TYPE_GROUP => None,
        1 => Some((
            ResponseError::InvalidRequest.code(),
            "transactions are not supported by this broker yet".into(),
        )),
        other => Some((
            ResponseError::InvalidRequest.code(),
            format!("coordinator key type {other} is not supported"),
        )),
    }
}

/// The broker coordinating `group`: the leader of its `__consumer_offsets` partition
/// (created first in a multi-node cluster); this node while the topic does not exist on
/// a single node. Err: COORDINATOR_NOT_AVAILABLE with a reason.
async fn coordinator_of(
    shard: &Rc<Shard>,
    group: &str,
) -> Result<(i32, String, i32), (i16, String)> {
    let unavailable = |message: String| (ResponseError::CoordinatorNotAvailable.code(), message);
    if shard.metadata().topic(OFFSETS_TOPIC).is_none() {
        if !shard.config.cluster.is_multi_node() {
            return Ok((
                shard.config.node_id,
                shard.config.advertised_host.clone(),
                shard.config.advertised_port,
            ));
        }
        ensure_offsets_topic(shard)
            .await
            .map_err(|(_, message)| unavailable(message))?;
    }
    let metadata = shard.metadata();
    let partition = partition_for_group(group, shard.config.groups.offsets_topic_partitions);
    let leader = metadata
        .topic(OFFSETS_TOPIC)
        .and_then(|topic| topic.registrations.get(partition as usize))
        .map_or(-1, |registration| registration.leader);
    metadata
        .brokers
        .iter()
        .find(|broker| broker.node_id == leader && !broker.fenced)
        .map(|broker| (broker.node_id, broker.host.clone(), broker.port as i32))
        .ok_or_else(|| {
            unavailable(format!(
                "{OFFSETS_TOPIC}-{partition} has no leader right now"
            ))
        })
}

fn found(key: StrBytes, outcome: &Result<(i32, String, i32), (i16, String)>) -> Coordinator {
    match outcome {
        Ok((node, host, port)) => Coordinator::default()
            .with_key(key)
            .with_node_id(BrokerId(*node))
            .with_host(StrBytes::from_string(host.clone()))
            .with_port(*port),
        Err((code, message)) => Coordinator::default()
            .with_key(key)
            .with_node_id(BrokerId(-1))
            .with_port(-1)
            .with_error_code(*code)
            .with_error_message(Some(StrBytes::from_string(message.clone()))),
    }
}

pub async fn handle(
    shard: &Rc<Shard>,
    version: i16,
    request: FindCoordinatorRequest,
) -> FindCoordinatorResponse {
    let failure = unsupported_key_type(request.key_type);
    if version >= 4 {
        let mut coordinators = Vec::with_capacity(request.coordinator_keys.len());
        for key in request.coordinator_keys {
            let outcome = match &failure {
                None => coordinator_of(shard, key.as_str()).await,
                Some(failure) => Err(failure.clone()),
            };
            coordinators.push(found(key, &outcome));
        }
        return FindCoordinatorResponse::default().with_coordinators(coordinators);
    }
    let outcome = match failure {
        None => coordinator_of(shard, request.key.as_str()).await,
        Some(failure) => Err(failure),
    };
    match outcome {
        Ok((node, host, port)) => FindCoordinatorResponse::default()
            .with_node_id(BrokerId(node))
            .with_host(StrBytes::from_string(host))
            .with_port(port),
        Err((code, message)) => FindCoordinatorResponse::default()
            .with_error_code(code)
            .with_error_message((version >= 1).then(|| StrBytes::from_string(message)))
            .with_node_id(BrokerId(-1))
            .with_port(-1),
    }
}
