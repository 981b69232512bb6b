//! FindCoordinator v0–6: where the coordinator for a group (or transaction) lives.
//!
//! A group's coordinator is the broker leading its `__consumer_offsets` partition; on
//! a single node that is always this node. Transaction and share-group keys get a
//! clear, non-retriable INVALID_REQUEST until those features exist, rather than a
//! retriable error a client would spin on. Batched lookups (v4+) answer every key.

use std::rc::Rc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::{BrokerId, FindCoordinatorRequest, FindCoordinatorResponse};
use kafka_protocol::protocol::StrBytes;

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

pub async fn handle(
    shard: &Rc<Shard>,
    version: i16,
    request: FindCoordinatorRequest,
) -> FindCoordinatorResponse {
    let node_id = BrokerId(shard.config.node_id);
    let host = StrBytes::from_string(shard.config.advertised_host.clone());
    let port = shard.config.advertised_port;
    let failure = unsupported_key_type(request.key_type);
    if version >= 4 {
        let coordinators = request
            .coordinator_keys
            .into_iter()
            .map(|key| match &failure {
                None => Coordinator::default()
                    .with_key(key)
                    .with_node_id(node_id)
                    .with_host(host.clone())
                    .with_port(port),
                Some((code, message)) => Coordinator::default()
                    .with_key(key)
                    .with_node_id(BrokerId(-1))
                    .with_port(-1)
                    .with_error_code(*code)
                    .with_error_message(Some(StrBytes::from_string(message.clone()))),
            })
            .collect();
        return FindCoordinatorResponse::default().with_coordinators(coordinators);
    }
    match failure {
        None => FindCoordinatorResponse::default()
            .with_node_id(node_id)
            .with_host(host)
            .with_port(port),
        Some((code, message)) => FindCoordinatorResponse::default()
            .with_error_code(code)
            .with_error_message((version >= 1).then(|| StrBytes::from_string(message)))
            .with_node_id(BrokerId(-1))
            .with_port(-1),
    }
}
