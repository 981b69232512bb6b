//! Topic administration (CreateTopics, DeleteTopics, CreatePartitions) and
//! DescribeCluster. Metadata changes are forwarded to the controller shard.

use std::rc::Rc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::create_topics_response::{
    CreatableTopicConfigs, CreatableTopicResult,
};
use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::{
    BrokerId, CreatePartitionsRequest, CreatePartitionsResponse, CreateTopicsRequest,
    CreateTopicsResponse, DeleteTopicsRequest, DeleteTopicsResponse, DescribeClusterRequest,
    DescribeClusterResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;

use super::configs::topic_config_entries;
use crate::controller::{self, CONTROLLER_SHARD, NewTopic, TopicOutcome};
use crate::shard::Shard;

/// Runs a metadata change on the controller shard; if that shard is gone (shutdown),
/// each of the `count` topics gets NOT_CONTROLLER.
async fn on_controller<F, Fut>(shard: &Rc<Shard>, count: usize, change: F) -> Vec<TopicOutcome>
where
    F: FnOnce(Rc<Shard>) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = Vec<TopicOutcome>> + 'static,
{
    match shard.invoke_on(CONTROLLER_SHARD, change).await {
        Ok(outcomes) => outcomes,
        Err(gone) => (0..count)
            .map(|_| Err((ResponseError::NotController.code(), gone.to_string())))
            .collect(),
    }
}

pub async fn create_topics(
    shard: &Rc<Shard>,
    version: i16,
    request: CreateTopicsRequest,
    client: super::Client,
) -> CreateTopicsResponse {
    // Another broker forwarding its own need (`__consumer_offsets`) to the controller.
    let from_broker = client
        .client_id
        .strip_prefix(controller::BROKER_CLIENT_ID_PREFIX)
        .and_then(|node| node.parse::<i32>().ok())
        .is_some_and(|node| shard.metadata().brokers.iter().any(|b| b.node_id == node));
    let requests: Vec<NewTopic> = request
        .topics
        .iter()
        .map(|topic| NewTopic {
            name: topic.name.0.to_string(),
            partitions: topic.num_partitions,
            replication_factor: topic.replication_factor,
            configs: topic
                .configs
                .iter()
                .filter_map(|config| {
                    config
                        .value
                        .as_ref()
                        .map(|value| (config.name.to_string(), value.to_string()))
                })
                .collect(),
            assignments: (!topic.assignments.is_empty()).then(|| {
                let mut assignments: Vec<_> = topic
                    .assignments
                    .iter()
                    .map(|a| {
                        (
                            a.partition_index,
                            a.broker_ids.iter().map(|b| b.0).collect(),
                        )
                    })
                    .collect();
                assignments.sort_by_key(|(partition, _)| *partition);
                assignments
                    .into_iter()
                    .map(|(_, brokers)| brokers)
                    .collect()
            }),
            internal: from_broker && controller::INTERNAL_TOPICS.contains(&topic.name.0.as_str()),
        })
        .collect();
    let validate_only = request.validate_only;
    let outcomes = on_controller(shard, requests.len(), move |controller_shard| {
        controller::create_topics(controller_shard, requests, validate_only)
    })
    .await;
    let results = request
        .topics
        .into_iter()
        .zip(outcomes)
        .map(|(topic, outcome)| match outcome {
            Ok(created) => {
                let mut result = CreatableTopicResult::default()
                    .with_name(topic.name)
                    .with_topic_id(if version >= 7 {
                        created.id
                    } else {
                        uuid::Uuid::nil()
                    })
                    .with_error_code(0);
                if version >= 5 {
                    result = result
                        .with_num_partitions(created.partitions)
                        .with_replication_factor(
                            created
                                .registrations
                                .first()
                                .map_or(1, |r| r.replicas.len() as i16),
                        );
                }
                if version >= 5 {
                    let configs = topic_config_entries(&shard.config, &created)
                        .into_iter()
                        .map(|entry| {
                            CreatableTopicConfigs::default()
                                .with_name(StrBytes::from_string(entry.name))
                                .with_value(Some(StrBytes::from_string(entry.value)))
                                .with_config_source(entry.source)
                                .with_read_only(false)
                                .with_is_sensitive(false)
                        })
                        .collect();
                    result = result.with_configs(Some(configs));
                }
                result
            }
            Err((code, message)) => CreatableTopicResult::default()
                .with_name(topic.name)
                .with_error_code(code)
                .with_error_message(Some(StrBytes::from_string(message)))
                .with_num_partitions(-1)
                .with_replication_factor(-1),
        })
        .collect();
    CreateTopicsResponse::default().with_topics(results)
}

pub async fn delete_topics(
    shard: &Rc<Shard>,
    version: i16,
    request: DeleteTopicsRequest,
) -> DeleteTopicsResponse {
    let metadata = shard.metadata();
    // v6 names topics by name or id; older versions by name only.
    let targets: Vec<(Option<String>, uuid::Uuid)> = if version >= 6 {
        request
            .topics
            .iter()
            .map(|topic| {
                (
                    topic.name.as_ref().map(|name| name.0.to_string()),
                    topic.topic_id,
                )
            })
            .collect()
    } else {
        request
            .topic_names
            .iter()
            .map(|name| (Some(name.0.to_string()), uuid::Uuid::nil()))
            .collect()
    };
    let resolved: Vec<Result<String, (i16, String)>> = targets
        .iter()
        .map(|(name, id)| match name {
            Some(name) => Ok(name.clone()),
            None => metadata
                .topic_by_id(id)
                .map(|topic| topic.name.clone())
                .ok_or((
                    ResponseError::UnknownTopicId.code(),
                    format!("Topic id {id} does not exist."),
                )),
        })
        .collect();
    let names: Vec<String> = resolved
        .iter()
        .filter_map(|name| name.as_ref().ok().cloned())
        .collect();
    let mut outcomes = on_controller(shard, names.len(), move |controller_shard| {
        controller::delete_topics(controller_shard, names)
    })
    .await
    .into_iter();
    let responses = targets
        .into_iter()
        .zip(resolved)
        .map(|((name, id), resolved)| {
            let outcome = match resolved {
                Ok(_) => outcomes.next().expect("one outcome per resolved name"),
                Err(error) => Err(error),
            };
            let result = DeletableTopicResult::default()
                .with_name(name.map(|name| TopicName(StrBytes::from_string(name))))
                .with_topic_id(id);
            match outcome {
                Ok(topic) => result
                    .with_topic_id(if version >= 6 {
                        topic.id
                    } else {
                        uuid::Uuid::nil()
                    })
                    .with_error_code(0),
                Err((code, message)) => result
                    .with_error_code(code)
                    .with_error_message((version >= 5).then(|| StrBytes::from_string(message))),
            }
        })
        .collect();
    DeleteTopicsResponse::default().with_responses(responses)
}

pub async fn create_partitions(
    shard: &Rc<Shard>,
    _version: i16,
    request: CreatePartitionsRequest,
) -> CreatePartitionsResponse {
    let requests: Vec<controller::NewPartitions> = request
        .topics
        .iter()
        .map(|topic| {
            (
                topic.name.0.to_string(),
                topic.count,
                topic
                    .assignments
                    .as_ref()
                    .filter(|list| !list.is_empty())
                    .map(|list| {
                        list.iter()
                            .map(|a| a.broker_ids.iter().map(|b| b.0).collect())
                            .collect()
                    }),
            )
        })
        .collect();
    let validate_only = request.validate_only;
    let outcomes = on_controller(shard, requests.len(), move |controller_shard| {
        controller::create_partitions(controller_shard, requests, validate_only)
    })
    .await;
    let results = request
        .topics
        .into_iter()
        .zip(outcomes)
        .map(|(topic, outcome)| {
            let result = CreatePartitionsTopicResult::default().with_name(topic.name);
            match outcome {
                Ok(_) => result.with_error_code(0),
                Err((code, message)) => result
                    .with_error_code(code)
                    .with_error_message(Some(StrBytes::from_string(message))),
            }
        })
        .collect();
    CreatePartitionsResponse::default().with_results(results)
}

pub async fn describe_cluster(
    shard: &Rc<Shard>,
    _version: i16,
    request: DescribeClusterRequest,
) -> DescribeClusterResponse {
    let metadata = shard.metadata();
    let response = DescribeClusterResponse::default()
        .with_error_code(0)
        .with_cluster_id(StrBytes::from_string(metadata.cluster_id.clone()))
        .with_controller_id(BrokerId(shard.metadata().controller_or_self()))
        .with_brokers(vec![
            DescribeClusterBroker::default()
                .with_broker_id(BrokerId(shard.config.node_id))
                .with_host(StrBytes::from_string(shard.config.advertised_host.clone()))
                .with_port(shard.config.advertised_port),
        ])
        .with_cluster_authorized_operations(i32::MIN);
    // endpoint_type 2 asks for controller endpoints (v1+): this node is the controller.
    response.with_endpoint_type(if request.endpoint_type == 0 {
        1
    } else {
        request.endpoint_type
    })
}
