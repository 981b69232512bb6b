//! Metadata v0–12: brokers, topics (by name or, v10+, by id), partitions, leaders;
//! auto-creates requested topics when `auto.create.topics.enable` allows it.

use crate::replication::NO_LEADER;
use std::collections::BTreeMap;
use std::rc::Rc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{BrokerId, MetadataRequest, MetadataResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use uuid::Uuid;

use crate::controller::{self, CONTROLLER_SHARD, NewTopic};
use crate::metadata::{TopicMetadata, validate_topic_name};
use crate::shard::Shard;

/// Topics one Metadata request may auto-create; more are answered
/// UNKNOWN_TOPIC_OR_PARTITION so one request cannot create without bound.
const AUTO_CREATE_TOPICS_PER_REQUEST_MAX: usize = 100;

pub async fn handle(shard: &Rc<Shard>, version: i16, request: MetadataRequest) -> MetadataResponse {
    let mut metadata = shard.metadata();
    // v0: an empty list means all topics; v1+: null means all.
    let wanted: Option<Vec<(Option<String>, Uuid)>> = match request.topics {
        None => None,
        Some(topics) if topics.is_empty() && version == 0 => None,
        Some(topics) => Some(
            topics
                .into_iter()
                .map(|topic| (topic.name.map(|name| name.0.to_string()), topic.topic_id))
                .collect(),
        ),
    };
    let allow_auto_create = shard.config.auto_create_topics_enable
        && (version < 4 || request.allow_auto_topic_creation);
    if let (Some(wanted), true) = (&wanted, allow_auto_create) {
        let missing: Vec<NewTopic> = wanted
            .iter()
            .filter_map(|(name, _)| name.clone())
            .filter(|name| {
                metadata.topic(name).is_none()
                    && validate_topic_name(name).is_ok()
                    && !name.starts_with("__")
            })
            .take(AUTO_CREATE_TOPICS_PER_REQUEST_MAX)
            .map(|name| NewTopic {
                name,
                partitions: -1,
                replication_factor: -1,
                configs: BTreeMap::new(),
                assignments: None,
                internal: false,
            })
            .collect();
        if !missing.is_empty() {
            let _ = shard
                .invoke_on(CONTROLLER_SHARD, move |controller_shard| {
                    controller::create_topics(controller_shard, missing, false)
                })
                .await;
            metadata = shard.metadata();
        }
    }
    let topic_entry = |topic: &TopicMetadata| -> MetadataResponseTopic {
        MetadataResponseTopic::default()
            .with_error_code(0)
            .with_name(Some(TopicName(StrBytes::from_string(topic.name.clone()))))
            .with_topic_id(if version >= 10 { topic.id } else { Uuid::nil() })
            .with_is_internal(version >= 1 && topic.is_internal())
            .with_partitions(
                topic
                    .registrations
                    .iter()
                    .enumerate()
                    .map(|(index, registration)| {
                        let ids = |nodes: &[i32]| {
                            nodes.iter().map(|&id| BrokerId(id)).collect::<Vec<_>>()
                        };
                        // Replicas on fenced brokers are offline (Kafka's offline_replicas).
                        let offline: Vec<i32> = registration
                            .replicas
                            .iter()
                            .copied()
                            .filter(|id| {
                                metadata
                                    .brokers
                                    .iter()
                                    .any(|b| b.node_id == *id && b.fenced)
                            })
                            .collect();
                        let error = if registration.leader == NO_LEADER {
                            ResponseError::LeaderNotAvailable.code()
                        } else {
                            0
                        };
                        MetadataResponsePartition::default()
                            .with_error_code(error)
                            .with_partition_index(index as i32)
                            .with_leader_id(BrokerId(registration.leader))
                            .with_leader_epoch(if version >= 7 {
                                registration.leader_epoch
                            } else {
                                -1
                            })
                            .with_replica_nodes(ids(&registration.replicas))
                            .with_isr_nodes(ids(&registration.isr))
                            .with_offline_replicas(if version >= 5 {
                                ids(&offline)
                            } else {
                                Vec::new()
                            })
                    })
                    .collect(),
            )
            .with_topic_authorized_operations(i32::MIN)
    };
    let topics: Vec<MetadataResponseTopic> = match wanted {
        None => metadata.topics.values().map(topic_entry).collect(),
        Some(wanted) => wanted
            .into_iter()
            .map(|(name, id)| {
                let found = match &name {
                    Some(name) => metadata.topic(name),
                    None => metadata.topic_by_id(&id),
                };
                match (found, name) {
                    (Some(topic), _) => topic_entry(topic),
                    (None, Some(name)) => {
                        let error = if validate_topic_name(&name).is_err() {
                            ResponseError::InvalidTopicException
                        } else {
                            ResponseError::UnknownTopicOrPartition
                        };
                        MetadataResponseTopic::default()
                            .with_error_code(error.code())
                            .with_name(Some(TopicName(StrBytes::from_string(name))))
                            .with_topic_authorized_operations(i32::MIN)
                    }
                    (None, None) => MetadataResponseTopic::default()
                        .with_error_code(ResponseError::UnknownTopicId.code())
                        .with_topic_id(if version >= 10 { id } else { Uuid::nil() })
                        .with_topic_authorized_operations(i32::MIN),
                }
            })
            .collect(),
    };
    MetadataResponse::default()
        .with_brokers(
            metadata
                .brokers
                .iter()
                .filter(|broker| !broker.fenced)
                .map(|broker| {
                    MetadataResponseBroker::default()
                        .with_node_id(BrokerId(broker.node_id))
                        .with_host(StrBytes::from_string(broker.host.clone()))
                        .with_port(broker.port as i32)
                        .with_rack(broker.rack.clone().map(StrBytes::from_string))
                })
                .collect(),
        )
        .with_cluster_id((version >= 2).then(|| StrBytes::from_string(metadata.cluster_id.clone())))
        .with_controller_id(BrokerId(if version >= 1 {
            metadata.controller_or_self()
        } else {
            -1
        }))
        .with_topics(topics)
        .with_cluster_authorized_operations(i32::MIN)
}
