//! The controller role: the single writer of cluster metadata, on shard 0.
//!
//! Every change follows one sequence, serialized by `controller_lock`:
//! validate → build the next snapshot → commit its records to the metadata log
//! (`quorum::MetadataLog`, durable before it returns) → publish it to every shard (each
//! opens/closes the partitions it owns) → answer.
//! A change is acknowledged only after every shard applied it, so a client that
//! created a topic can produce to it at once.

use std::collections::BTreeMap;
use std::rc::Rc;
use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use tracing::{error, info};
use uuid::Uuid;

use crate::config::dynamic::{self, ConfigChange, ConfigResource};
use crate::errors::election_error_code;
use crate::metadata::{ClusterMetadata, TopicMetadata, validate_topic_name};
use crate::replication::cluster_state::MetadataRecord;
use crate::replication::control::PartitionKey;
use crate::shard::Shard;

/// The controller's shard.
pub const CONTROLLER_SHARD: usize = 0;
/// Kafka caps partitions per topic creation far above this; a bound keeps one request
/// from creating millions of directories.
pub const PARTITIONS_PER_TOPIC_MAX: i32 = 10_000;

/// A topic to create, as CreateTopics or auto-creation asks for it.
#[derive(Debug, Clone)]
pub struct NewTopic {
    pub name: String,
    /// -1 means `num.partitions`.
    pub partitions: i32,
    /// -1 means `default.replication.factor`.
    pub replication_factor: i16,
    pub configs: BTreeMap<String, String>,
    pub has_assignments: bool,
    /// Created by the broker itself (`__consumer_offsets`); clients may not create
    /// internal topics.
    pub internal: bool,
}

/// Topics only the broker creates.
pub const INTERNAL_TOPICS: &[&str] = &["__consumer_offsets", "__transaction_state"];

/// The result of one topic operation: an error code and message, or the topic.
pub type TopicOutcome = Result<TopicMetadata, (i16, String)>;

fn failure(error: ResponseError, message: impl Into<String>) -> (i16, String) {
    (error.code(), message.into())
}

/// Creates topics (on the controller shard). `validate_only` checks without creating.
pub async fn create_topics(
    shard: Rc<Shard>,
    topics: Vec<NewTopic>,
    validate_only: bool,
) -> Vec<TopicOutcome> {
    let _permit = lock(&shard).await;
    let current = shard.metadata();
    let config = shard.config.clone();
    let mut outcomes = Vec::with_capacity(topics.len());
    let mut created: Vec<TopicMetadata> = Vec::new();
    let mut extra_dirs = Vec::new();
    for request in topics {
        let outcome = (|| {
            validate_topic_name(&request.name)
                .map_err(|message| failure(ResponseError::InvalidTopicException, message))?;
            if INTERNAL_TOPICS.contains(&request.name.as_str()) && !request.internal {
                return Err(failure(
                    ResponseError::InvalidRequest,
                    format!(
                        "Topic '{}' is internal: the broker creates it when it is first needed.",
                        request.name
                    ),
                ));
            }
            if current.topic(&request.name).is_some()
                || created.iter().any(|topic| topic.name == request.name)
            {
                return Err(failure(
                    ResponseError::TopicAlreadyExists,
                    format!("Topic '{}' already exists.", request.name),
                ));
            }
            let partitions = if request.partitions == -1 {
                config.num_partitions
            } else {
                request.partitions
            };
            if !(1..=PARTITIONS_PER_TOPIC_MAX).contains(&partitions) {
                return Err(failure(
                    ResponseError::InvalidPartitions,
                    format!(
                        "Number of partitions must be between 1 and {PARTITIONS_PER_TOPIC_MAX}, got {partitions}."
                    ),
                ));
            }
            let replication = if request.replication_factor == -1 {
                config.default_replication_factor
            } else {
                request.replication_factor
            };
            if replication != 1 {
                return Err(failure(
                    ResponseError::InvalidReplicationFactor,
                    format!(
                        "Replication factor {replication} is larger than the 1 available broker."
                    ),
                ));
            }
            if request.has_assignments {
                return Err(failure(
                    ResponseError::InvalidReplicaAssignment,
                    "Explicit replica assignments are not supported by a single-node broker.",
                ));
            }
            dynamic::validate_topic_configs(&shard.effective_config(), &request.configs)?;
            let mut partition_dirs = Vec::with_capacity(partitions as usize);
            for _ in 0..partitions {
                let dir = current.least_loaded_dir(config.log_dirs.len(), &extra_dirs);
                extra_dirs.push(dir);
                partition_dirs.push(dir);
            }
            Ok(TopicMetadata {
                name: request.name.clone(),
                id: Uuid::new_v4(),
                partitions,
                configs: request.configs.clone(),
                partition_dirs,
                registrations: Vec::new(),
            })
        })();
        if let Ok(topic) = &outcome {
            created.push(topic.clone());
        }
        outcomes.push(outcome);
    }
    let next = (!validate_only && !created.is_empty()).then(|| {
        current.with_change(|topics| {
            for topic in &created {
                topics.insert(topic.name.clone(), topic.clone());
            }
        })
    });
    let outcomes = commit(&shard, outcomes, next).await;
    if !validate_only {
        for topic in outcomes.iter().flatten() {
            info!(topic = %topic.name, partitions = topic.partitions, "created topic");
        }
    }
    outcomes
}

/// Deletes topics by name (on the controller shard).
pub async fn delete_topics(shard: Rc<Shard>, names: Vec<String>) -> Vec<TopicOutcome> {
    let _permit = lock(&shard).await;
    let current = shard.metadata();
    let outcomes: Vec<TopicOutcome> = names
        .iter()
        .map(|name| match current.topic(name) {
            Some(topic) => Ok(topic.clone()),
            None => Err(failure(
                ResponseError::UnknownTopicOrPartition,
                format!("Topic '{name}' does not exist."),
            )),
        })
        .collect();
    let doomed: Vec<String> = outcomes
        .iter()
        .filter_map(|outcome| outcome.as_ref().ok().map(|topic| topic.name.clone()))
        .collect();
    let next = (!doomed.is_empty()).then(|| {
        current.with_change(|topics| {
            for name in &doomed {
                topics.remove(name);
            }
        })
    });
    let outcomes = commit(&shard, outcomes, next).await;
    for topic in outcomes.iter().flatten() {
        info!(topic = %topic.name, "deleted topic");
    }
    outcomes
}

/// Raises a topic's partition count (on the controller shard).
pub async fn create_partitions(
    shard: Rc<Shard>,
    requests: Vec<(String, i32, bool)>,
    validate_only: bool,
) -> Vec<TopicOutcome> {
    let _permit = lock(&shard).await;
    let current = shard.metadata();
    let dir_count = shard.config.log_dirs.len();
    let mut extra_dirs = Vec::new();
    let mut changed: Vec<TopicMetadata> = Vec::new();
    let outcomes: Vec<TopicOutcome> = requests
        .into_iter()
        .map(|(name, count, has_assignments)| {
            let topic = current.topic(&name).ok_or_else(|| {
                failure(
                    ResponseError::UnknownTopicOrPartition,
                    format!("Topic '{name}' does not exist."),
                )
            })?;
            if count <= topic.partitions {
                return Err(failure(
                    ResponseError::InvalidPartitions,
                    format!(
                        "Topic currently has {} partitions, {count} would not be an increase.",
                        topic.partitions
                    ),
                ));
            }
            if count > PARTITIONS_PER_TOPIC_MAX {
                return Err(failure(
                    ResponseError::InvalidPartitions,
                    format!("At most {PARTITIONS_PER_TOPIC_MAX} partitions per topic."),
                ));
            }
            if has_assignments {
                return Err(failure(
                    ResponseError::InvalidReplicaAssignment,
                    "Explicit replica assignments are not supported by a single-node broker.",
                ));
            }
            let mut grown = topic.clone();
            for _ in topic.partitions..count {
                let dir = current.least_loaded_dir(dir_count, &extra_dirs);
                extra_dirs.push(dir);
                grown.partition_dirs.push(dir);
            }
            grown.partitions = count;
            changed.push(grown.clone());
            Ok(grown)
        })
        .collect();
    let next = (!validate_only && !changed.is_empty()).then(|| {
        current.with_change(|topics| {
            for topic in &changed {
                topics.insert(topic.name.clone(), topic.clone());
            }
        })
    });
    commit(&shard, outcomes, next).await
}

/// Changes topic configs and dynamic broker configs (on the controller shard).
/// `replace` is AlterConfigs' meaning (the request lists the resource's whole config);
/// otherwise IncrementalAlterConfigs'. Each resource succeeds or fails on its own; the
/// successful ones are persisted and published together, before the answer.
pub async fn alter_configs(
    shard: Rc<Shard>,
    requests: Vec<(ConfigResource, Vec<ConfigChange>)>,
    replace: bool,
    validate_only: bool,
) -> Vec<Result<(), (i16, String)>> {
    let _permit = lock(&shard).await;
    let current = shard.metadata();
    let static_config = shard.config.clone();
    let node_name = static_config.node_id.to_string();
    let mut topics = current.topics.clone();
    let mut broker_configs = current.broker_configs.clone();
    let mut changed = false;
    let mut outcomes = Vec::with_capacity(requests.len());
    for (resource, changes) in requests {
        let list_default = dynamic::list_default;
        let outcome = match &resource {
            ConfigResource::Topic(name) => match topics.get(name) {
                None => Err(failure(
                    ResponseError::UnknownTopicOrPartition,
                    format!("Topic '{name}' does not exist."),
                )),
                Some(topic) => {
                    dynamic::apply_changes(&topic.configs, &changes, replace, list_default)
                        .and_then(|configs| {
                            let (cluster, node) = layers(&broker_configs, &node_name);
                            let effective = static_config
                                .with_dynamic(&cluster, &node)
                                .unwrap_or_else(|_| (*static_config).clone());
                            dynamic::validate_topic_configs(&effective, &configs)?;
                            Ok(configs)
                        })
                        .map(|configs| {
                            let topic = topics.get_mut(name).expect("looked up above");
                            if topic.configs != configs {
                                topic.configs = configs;
                                changed = true;
                            }
                        })
                }
            },
            ConfigResource::Broker(name) if name.is_empty() || *name == node_name => {
                let before = broker_configs.get(name).cloned().unwrap_or_default();
                dynamic::apply_changes(&before, &changes, replace, list_default).and_then(
                    |configs| {
                        let mut next = broker_configs.clone();
                        next.insert(name.clone(), configs.clone());
                        let (cluster, node) = layers(&next, &node_name);
                        dynamic::validate_broker_configs(&static_config, &cluster, &node)?;
                        if configs != before {
                            if configs.is_empty() {
                                broker_configs.remove(name);
                            } else {
                                broker_configs.insert(name.clone(), configs);
                            }
                            changed = true;
                        }
                        Ok(())
                    },
                )
            }
            ConfigResource::Broker(name) => Err(failure(
                ResponseError::InvalidRequest,
                format!(
                    "Unexpected broker id, expected {node_name} or empty string, but received {name}"
                ),
            )),
        };
        outcomes.push(outcome);
    }
    if validate_only || !changed {
        return outcomes;
    }
    let mut next = current.with_change(|all| *all = topics);
    next.broker_configs = broker_configs;
    let outcomes = commit(&shard, outcomes, Some(next)).await;
    info!(
        changed = outcomes.iter().filter(|outcome| outcome.is_ok()).count(),
        "changed configs"
    );
    outcomes
}

fn layers(
    broker_configs: &BTreeMap<String, BTreeMap<String, String>>,
    node_name: &str,
) -> (BTreeMap<String, String>, BTreeMap<String, String>) {
    let layer = |name: &str| broker_configs.get(name).cloned().unwrap_or_default();
    (layer(""), layer(node_name))
}

/// Takes the controller lock: metadata changes run one at a time, on shard 0 only.
async fn lock(shard: &Shard) -> glommio::sync::Permit<'_> {
    assert_eq!(
        shard.id, CONTROLLER_SHARD,
        "only the controller shard changes metadata"
    );
    shard
        .controller_lock
        .acquire_permit(1)
        .await
        .expect("the controller lock is never closed")
}

/// Publishes `next` when there is a change to make; if that fails, every outcome that
/// was going to succeed becomes KAFKA_STORAGE_ERROR with the reason.
async fn commit<T>(
    shard: &Rc<Shard>,
    outcomes: Vec<Result<T, (i16, String)>>,
    next: Option<ClusterMetadata>,
) -> Vec<Result<T, (i16, String)>> {
    let Some(next) = next else { return outcomes };
    match publish(shard, next).await {
        Ok(()) => outcomes,
        Err(message) => outcomes
            .into_iter()
            .map(|outcome| {
                outcome
                    .and_then(|_| Err(failure(ResponseError::KafkaStorageError, message.clone())))
            })
            .collect(),
    }
}

/// ElectLeaders (on the controller shard): decided on the metadata log's state,
/// committed, published; answers each partition's outcome.
pub async fn elect_leaders(
    shard: Rc<Shard>,
    keys: Option<Vec<PartitionKey>>,
    unclean: bool,
) -> Vec<(PartitionKey, Result<(), (i16, String)>)> {
    let _permit = lock(&shard).await;
    let (outcomes, changes) = {
        let log = shard.metadata_log.borrow();
        let log = log
            .as_ref()
            .expect("the controller shard holds the metadata log");
        log.state().control().elect_leaders(keys, unclean)
    };
    let outcomes: Vec<_> = outcomes
        .into_iter()
        .map(|(key, outcome)| {
            let outcome = outcome.map_err(|error| (election_error_code(&error), error.to_string()));
            (key, outcome)
        })
        .collect();
    if changes.is_empty() {
        return outcomes;
    }
    let records = changes
        .into_iter()
        .map(MetadataRecord::Replication)
        .collect();
    let next = shard.metadata().with_change(|_| {});
    match publish_records(&shard, records, next).await {
        Ok(()) => {
            info!(
                elected = outcomes
                    .iter()
                    .filter(|(_, outcome)| outcome.is_ok())
                    .count(),
                "elected leaders"
            );
            outcomes
        }
        Err(message) => outcomes
            .into_iter()
            .map(|(key, outcome)| {
                let outcome = outcome
                    .and_then(|()| Err(failure(ResponseError::KafkaStorageError, message.clone())));
                (key, outcome)
            })
            .collect(),
    }
}

/// Commits the change to the metadata log, then installs it on every shard.
async fn publish(shard: &Rc<Shard>, next: ClusterMetadata) -> Result<(), String> {
    let records = {
        let log = shard.metadata_log.borrow();
        let log = log
            .as_ref()
            .expect("the controller shard holds the metadata log");
        shard.metadata().records_for_change(&next, log.state())
    };
    publish_records(shard, records, next).await
}

/// Commits `records` (which turn the current metadata into `next`), then installs
/// `next`, with the registrations and brokers as the log now has them, on every shard.
async fn publish_records(
    shard: &Rc<Shard>,
    records: Vec<MetadataRecord>,
    mut next: ClusterMetadata,
) -> Result<(), String> {
    let committed = {
        let mut log = shard.metadata_log.borrow_mut();
        let log = log
            .as_mut()
            .expect("the controller shard holds the metadata log");
        let committed = log.commit(records);
        if committed.is_ok() {
            next.refresh_from_log(log.state());
        }
        committed
    };
    if let Err(error) = committed {
        error!(%error, "could not commit a metadata change");
        return Err(format!("could not commit the metadata change: {error}"));
    }
    let next = Arc::new(next);
    let results = shard
        .invoke_on_all(move |target: Rc<Shard>| {
            let next = next.clone();
            async move {
                target
                    .apply_metadata(next, None)
                    .await
                    .map_err(|error| error.to_string())
            }
        })
        .await;
    for result in results {
        match result {
            Ok(Ok(())) => {}
            Ok(Err(message)) => {
                error!(error = %message, "a shard could not apply new metadata");
                return Err(message);
            }
            Err(gone) => return Err(gone.to_string()),
        }
    }
    Ok(())
}
