//! The changing actions of `weir topics`: `--create` (CreateTopics), `--alter`
//! (CreatePartitions) and `--delete` (DeleteTopics). `--alter` and `--delete` act on
//! every topic the `--topic` pattern matches; all three print nothing but Kafka's
//! "Created topic T." (and its name-collision warning).

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::create_partitions_request::{
    CreatePartitionsAssignment, CreatePartitionsTopic,
};
use kafka_protocol::messages::create_topics_request::{
    CreatableReplicaAssignment, CreatableTopic, CreatableTopicConfig,
};
use kafka_protocol::messages::delete_topics_request::DeleteTopicState;
use kafka_protocol::messages::{
    BrokerId, CreatePartitionsRequest, CreateTopicsRequest, DeleteTopicsRequest, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use weir_net::client::{ClientError, KafkaClient, metadata_topic};

use super::{
    Args, TopicFilter, TopicsError, ensure_found, has_collision_chars, matching_topics,
    write_stdout,
};
use crate::cli::TOOL_TIMEOUT;

pub(super) fn create(client: &mut KafkaClient, args: &Args) -> Result<(), TopicsError> {
    let name = args
        .topic
        .clone()
        .expect("clap requires --topic with --create");
    if has_collision_chars(&name) {
        write_stdout(
            "WARNING: Due to limitations in metric names, topics with a period ('.') or \
             underscore ('_') could collide. To avoid issues it is best to use either, but \
             not both.\n",
        )?;
    }
    let connection = client.any();
    let version = connection.version_of::<CreateTopicsRequest>()?;
    let uses_broker_defaults = args.replica_assignment.is_none()
        && (args.partitions.is_none() || args.replication_factor.is_none());
    // Kafka's admin client refuses the same: -1 means "broker default" only from v4.
    if uses_broker_defaults && version < 4 {
        return Err(TopicsError::BrokerDefaultsUnsupported {
            address: connection.address().to_string(),
            version,
        });
    }
    let assignments = args
        .replica_assignment
        .as_ref()
        .map(|assignment| {
            assignment
                .0
                .iter()
                .enumerate()
                .map(|(partition, brokers)| {
                    CreatableReplicaAssignment::default()
                        .with_partition_index(partition as i32)
                        .with_broker_ids(brokers.iter().copied().map(BrokerId).collect())
                })
                .collect()
        })
        .unwrap_or_default();
    let configs = args
        .config
        .iter()
        .map(|(key, value)| {
            CreatableTopicConfig::default()
                .with_name(StrBytes::from_string(key.clone()))
                .with_value(Some(StrBytes::from_string(value.clone())))
        })
        .collect();
    let topic = CreatableTopic::default()
        .with_name(TopicName(StrBytes::from_string(name.clone())))
        .with_num_partitions(args.partitions.unwrap_or(-1))
        .with_replication_factor(args.replication_factor.map_or(-1, |factor| factor as i16))
        .with_assignments(assignments)
        .with_configs(configs);
    let request = CreateTopicsRequest::default()
        .with_topics(vec![topic])
        .with_timeout_ms(TOOL_TIMEOUT.as_millis() as i32);
    let response = connection.call_at(version, &request)?;
    let result = response
        .topics
        .iter()
        .find(|result| result.name.0.as_str() == name)
        .ok_or_else(|| missing_result(connection.address(), "CreateTopics", &name))?;
    if result.error_code == ResponseError::TopicAlreadyExists.code() {
        return if args.if_not_exists {
            Ok(())
        } else {
            Err(TopicsError::AlreadyExists(name))
        };
    }
    ClientError::check(
        result.error_code,
        result.error_message.as_ref(),
        format!("CreateTopics for topic '{name}'"),
    )?;
    Ok(write_stdout(&format!("Created topic {name}.\n"))?)
}

fn missing_result(address: &str, api: &str, topic: &str) -> ClientError {
    ClientError::Protocol {
        address: address.to_string(),
        what: format!("{api} response"),
        reason: format!("no result for topic '{topic}'"),
    }
}

pub(super) fn alter(
    client: &mut KafkaClient,
    args: &Args,
    filter: Option<&TopicFilter>,
) -> Result<(), TopicsError> {
    let (metadata, names) = matching_topics(client, filter, args.exclude_internal)?;
    ensure_found(args, &names)?;
    if names.is_empty() {
        return Ok(());
    }
    let count = args
        .partitions
        .expect("clap requires --partitions with --alter");
    let topics = names
        .iter()
        .map(|name| {
            let mut topic = CreatePartitionsTopic::default()
                .with_name(TopicName(StrBytes::from_string(name.clone())))
                .with_count(count);
            if let Some(assignment) = &args.replica_assignment {
                // As Kafka: the assignment lists every partition; the existing ones are skipped.
                let existing =
                    metadata_topic(&metadata, name).map_or(0, |topic| topic.partitions.len());
                topic = topic.with_assignments(Some(
                    assignment
                        .0
                        .iter()
                        .skip(existing)
                        .map(|brokers| {
                            CreatePartitionsAssignment::default()
                                .with_broker_ids(brokers.iter().copied().map(BrokerId).collect())
                        })
                        .collect(),
                ));
            }
            topic
        })
        .collect();
    let request = CreatePartitionsRequest::default()
        .with_topics(topics)
        .with_timeout_ms(TOOL_TIMEOUT.as_millis() as i32);
    let (_, response) = client.any().call(&request)?;
    for result in &response.results {
        ClientError::check(
            result.error_code,
            result.error_message.as_ref(),
            format!("CreatePartitions for topic '{}'", result.name.0),
        )?;
    }
    Ok(())
}

pub(super) fn delete(
    client: &mut KafkaClient,
    args: &Args,
    filter: Option<&TopicFilter>,
) -> Result<(), TopicsError> {
    let (_, names) = matching_topics(client, filter, args.exclude_internal)?;
    ensure_found(args, &names)?;
    if names.is_empty() {
        return Ok(());
    }
    let connection = client.any();
    let version = connection.version_of::<DeleteTopicsRequest>()?;
    let topic_names = || {
        names
            .iter()
            .map(|name| TopicName(StrBytes::from_string(name.clone())))
    };
    let request = if version >= 6 {
        DeleteTopicsRequest::default().with_topics(
            topic_names()
                .map(|name| DeleteTopicState::default().with_name(Some(name)))
                .collect(),
        )
    } else {
        DeleteTopicsRequest::default().with_topic_names(topic_names().collect())
    }
    .with_timeout_ms(TOOL_TIMEOUT.as_millis() as i32);
    let response = connection.call_at(version, &request)?;
    for result in &response.responses {
        let name = result
            .name
            .as_ref()
            .map(|name| name.0.to_string())
            .unwrap_or_default();
        ClientError::check(
            result.error_code,
            result.error_message.as_ref(),
            format!("DeleteTopics for topic '{name}'"),
        )?;
    }
    Ok(())
}
