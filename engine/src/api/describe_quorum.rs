//! DescribeQuorum v0–2 (KIP-595, KIP-836, KIP-853): the metadata quorum's leader, epoch,
//! high watermark and each voter's progress, as `kafka-metadata-quorum.sh describe`
//! shows them. The quorum lives on the controller shard; any shard forwards there.
//!
//! Offsets are Kafka's: the metadata log's entries numbered from 0, so the log end offset
//! is the number of entries and the high watermark the number of committed ones. A
//! request for anything but `__cluster_metadata` partition 0 gets
//! UNKNOWN_TOPIC_OR_PARTITION, as Kafka answers.

use std::rc::Rc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::describe_quorum_response::{
    Listener, Node, PartitionData, ReplicaState, TopicData,
};
use kafka_protocol::messages::{BrokerId, DescribeQuorumRequest, DescribeQuorumResponse};
use kafka_protocol::protocol::StrBytes;

use crate::controller::CONTROLLER_SHARD;
use crate::quorum::QuorumDescription;
use crate::shard::Shard;

/// Kafka's name for the metadata log's topic.
pub const METADATA_TOPIC: &str = "__cluster_metadata";

pub async fn handle(
    shard: &Rc<Shard>,
    version: i16,
    request: DescribeQuorumRequest,
) -> DescribeQuorumResponse {
    let described = shard
        .invoke_on(CONTROLLER_SHARD, |controller| async move {
            let log = controller.metadata_log.borrow();
            log.as_ref()
                .map(|log| (log.describe(), log.state().endpoints_snapshot()))
        })
        .await
        .ok()
        .flatten();
    let mut topics = Vec::with_capacity(request.topics.len());
    for topic in request.topics {
        let ours = topic.topic_name.0.as_str() == METADATA_TOPIC;
        let partitions = topic
            .partitions
            .iter()
            .map(|partition| {
                let index = partition.partition_index;
                match (&described, ours && index == 0) {
                    (Some((description, _)), true) => partition_data(description),
                    (None, true) => PartitionData::default()
                        .with_partition_index(index)
                        .with_error_code(ResponseError::NotLeaderOrFollower.code())
                        .with_leader_id(BrokerId(-1))
                        .with_leader_epoch(-1)
                        .with_high_watermark(-1),
                    (_, false) => PartitionData::default()
                        .with_partition_index(index)
                        .with_error_code(ResponseError::UnknownTopicOrPartition.code())
                        .with_leader_id(BrokerId(-1))
                        .with_leader_epoch(-1)
                        .with_high_watermark(-1),
                }
            })
            .collect();
        topics.push(
            TopicData::default()
                .with_topic_name(topic.topic_name)
                .with_partitions(partitions),
        );
    }
    let nodes = match (&described, version >= 2) {
        (Some((description, endpoints)), true) => description
            .voters
            .iter()
            .filter_map(|voter| endpoints.iter().find(|(id, _, _)| *id == voter.node_id))
            .map(|(id, host, port)| {
                let listener = Listener::default()
                    .with_name(StrBytes::from_static_str("PLAINTEXT"))
                    .with_host(StrBytes::from_string(host.clone()))
                    .with_port(*port);
                Node::default()
                    .with_node_id(BrokerId(*id))
                    .with_listeners(vec![listener])
            })
            .collect(),
        _ => Vec::new(),
    };
    DescribeQuorumResponse::default()
        .with_topics(topics)
        .with_nodes(nodes)
}

fn partition_data(description: &QuorumDescription) -> PartitionData {
    let voters = description
        .voters
        .iter()
        .map(|voter| {
            ReplicaState::default()
                .with_replica_id(BrokerId(voter.node_id))
                .with_log_end_offset(voter.log_end_offset)
                .with_last_fetch_timestamp(voter.last_fetch_timestamp_ms)
                .with_last_caught_up_timestamp(voter.last_caught_up_timestamp_ms)
        })
        .collect();
    PartitionData::default()
        .with_partition_index(0)
        .with_error_code(0)
        .with_leader_id(BrokerId(description.leader_node_id))
        .with_leader_epoch(description.leader_epoch)
        .with_high_watermark(description.high_watermark)
        .with_current_voters(voters)
}
