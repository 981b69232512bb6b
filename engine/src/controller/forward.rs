//! Requests that reach a broker other than the active controller and are sent on to it
//! (KIP-590's forwarding, for CreateTopics): over `broker_client`, with this broker's
//! client id so the controller lets it create internal topics.

use std::rc::Rc;
use std::time::Duration;

use kafka_protocol::error::ResponseError;
use tracing::debug;

use super::{BROKER_CLIENT_ID_PREFIX, COMMIT_TIMEOUT_MS, NewTopic, TopicOutcome, failure};
use crate::metadata::TopicMetadata;
use crate::shard::Shard;

/// How long a forwarding broker waits for the created topic to reach its own metadata.
const FORWARDED_VISIBLE_MS: u64 = 10_000;

/// The active controller's client endpoint, when another node leads the quorum.
fn controller_address(shard: &Shard) -> Option<String> {
    let leader = {
        let log = shard.metadata_log.borrow();
        log.as_ref()?.leader()?
    };
    if leader == shard.config.node_id {
        return None;
    }
    shard
        .metadata()
        .brokers
        .iter()
        .find(|broker| broker.node_id == leader)
        .map(|broker| format!("{}:{}", broker.host, broker.port))
}

/// CreateTopics sent on to the active controller (a client's request reached another
/// broker, or this broker needs an internal topic); each created topic is answered once
/// this broker's own metadata has it. None when there is no other controller to ask.
pub(super) async fn forward_create_topics(
    shard: &Rc<Shard>,
    topics: &[NewTopic],
    validate_only: bool,
) -> Option<Vec<TopicOutcome>> {
    use kafka_protocol::messages::create_topics_request::{
        CreatableReplicaAssignment, CreatableTopic, CreatableTopicConfig,
    };
    use kafka_protocol::messages::{BrokerId, CreateTopicsRequest, TopicName};
    use kafka_protocol::protocol::StrBytes;
    const VERSION: i16 = 7;
    let address = controller_address(shard)?;
    let request = CreateTopicsRequest::default()
        .with_timeout_ms(COMMIT_TIMEOUT_MS as i32)
        .with_validate_only(validate_only)
        .with_topics(
            topics
                .iter()
                .map(|topic| {
                    let assignments = topic
                        .assignments
                        .iter()
                        .flatten()
                        .enumerate()
                        .map(|(partition, brokers)| {
                            CreatableReplicaAssignment::default()
                                .with_partition_index(partition as i32)
                                .with_broker_ids(brokers.iter().map(|b| BrokerId(*b)).collect())
                        })
                        .collect();
                    let explicit = topic.assignments.is_some();
                    CreatableTopic::default()
                        .with_name(TopicName(StrBytes::from_string(topic.name.clone())))
                        .with_num_partitions(if explicit { -1 } else { topic.partitions })
                        .with_replication_factor(if explicit {
                            -1
                        } else {
                            topic.replication_factor
                        })
                        .with_assignments(assignments)
                        .with_configs(
                            topic
                                .configs
                                .iter()
                                .map(|(name, value)| {
                                    CreatableTopicConfig::default()
                                        .with_name(StrBytes::from_string(name.clone()))
                                        .with_value(Some(StrBytes::from_string(value.clone())))
                                })
                                .collect(),
                        )
                })
                .collect(),
        );
    let client_id = format!("{BROKER_CLIENT_ID_PREFIX}{}", shard.config.node_id);
    let answered = async {
        let mut connection =
            crate::broker_client::BrokerConnection::connect(&address, client_id).await?;
        connection.call(VERSION, &request).await
    }
    .await;
    let response = match answered {
        Ok(response) => response,
        Err(error) => {
            debug!(%address, %error, "could not forward CreateTopics to the controller");
            return None;
        }
    };
    let mut outcomes = Vec::with_capacity(topics.len());
    for topic in topics {
        let answer = response
            .topics
            .iter()
            .find(|result| result.name.0.as_str() == topic.name);
        let outcome = match answer {
            None => Err(failure(
                ResponseError::UnknownServerError,
                "the controller did not answer for the topic",
            )),
            Some(result) if result.error_code != 0 => Err((
                result.error_code,
                result
                    .error_message
                    .as_ref()
                    .map(|message| message.to_string())
                    .unwrap_or_default(),
            )),
            Some(result) if validate_only => Ok(TopicMetadata {
                name: topic.name.clone(),
                id: result.topic_id,
                partitions: result.num_partitions,
                configs: topic.configs.clone(),
                partition_dirs: Vec::new(),
                registrations: Vec::new(),
            }),
            Some(_) => {
                let deadline =
                    std::time::Instant::now() + Duration::from_millis(FORWARDED_VISIBLE_MS);
                loop {
                    if let Some(found) = shard.metadata().topic(&topic.name) {
                        break Ok(found.clone());
                    }
                    if std::time::Instant::now() >= deadline {
                        break Err(failure(
                            ResponseError::RequestTimedOut,
                            "the topic was created but has not reached this broker yet",
                        ));
                    }
                    let listen = shard.metadata_published.listen();
                    let timer = glommio::timer::sleep(Duration::from_millis(50));
                    futures::pin_mut!(listen, timer);
                    futures::future::select(listen, timer).await;
                }
            }
        };
        outcomes.push(outcome);
    }
    Some(outcomes)
}
