//! ElectLeaders v0–2 (KIP-183, KIP-460): preferred (type 0) or unclean (type 1, v1+)
//! leader election, decided and committed by the controller shard
//! (`controller::elect_leaders`). `topic_partitions` null means every partition; then
//! partitions that need no election are left out, as Kafka does.

use std::rc::Rc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::elect_leaders_response::{PartitionResult, ReplicaElectionResult};
use kafka_protocol::messages::{ElectLeadersRequest, ElectLeadersResponse, TopicName};
use kafka_protocol::protocol::StrBytes;

use crate::controller::{self, CONTROLLER_SHARD};
use crate::shard::Shard;

pub async fn handle(
    shard: &Rc<Shard>,
    version: i16,
    request: ElectLeadersRequest,
) -> ElectLeadersResponse {
    let unclean = match (version, request.election_type) {
        (0, _) | (_, 0) => false,
        (_, 1) => true,
        (_, other) => {
            tracing::debug!(
                election_type = other,
                "ElectLeaders with an unknown election type"
            );
            return ElectLeadersResponse::default()
                .with_error_code(ResponseError::InvalidRequest.code());
        }
    };
    let keys = request.topic_partitions.map(|topics| {
        topics
            .into_iter()
            .flat_map(|topic| {
                let name = topic.topic.0.to_string();
                topic
                    .partitions
                    .into_iter()
                    .map(move |partition| (name.clone(), partition))
            })
            .collect::<Vec<_>>()
    });
    let outcomes = shard
        .invoke_on(CONTROLLER_SHARD, move |controller_shard| {
            controller::elect_leaders(controller_shard, keys, unclean)
        })
        .await;
    let outcomes = match outcomes {
        Ok(outcomes) => outcomes,
        Err(gone) => {
            tracing::warn!(%gone, "the controller shard is gone");
            return ElectLeadersResponse::default()
                .with_error_code(ResponseError::NotController.code());
        }
    };
    // Group by topic, in the order the outcomes came.
    let mut results: Vec<ReplicaElectionResult> = Vec::new();
    for ((topic, partition), outcome) in outcomes {
        let (error_code, error_message) = match outcome {
            Ok(()) => (0, None),
            Err((code, message)) => (code, Some(StrBytes::from_string(message))),
        };
        let result = PartitionResult::default()
            .with_partition_id(partition)
            .with_error_code(error_code)
            .with_error_message(error_message);
        match results
            .iter_mut()
            .find(|entry| entry.topic.0.as_str() == topic)
        {
            Some(entry) => entry.partition_result.push(result),
            None => results.push(
                ReplicaElectionResult::default()
                    .with_topic(TopicName(StrBytes::from_string(topic)))
                    .with_partition_result(vec![result]),
            ),
        }
    }
    ElectLeadersResponse::default()
        .with_error_code(0)
        .with_replica_election_results(results)
}
