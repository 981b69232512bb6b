//! The controller role, on shard 0: metadata changes through the quorum, and the
//! loop that applies what the quorum committed and publishes it to every shard.
//!
//! ```text
//!  admin request ─► (active controller? else NOT_CONTROLLER) ─► controller_lock
//!     ─► wait until this node published everything in its log (decisions on the latest state)
//!     ─► validate · decide records (cluster_state / control) ─► propose ─► wait for publication
//!  apply_loop (every node): committed entries ─► ClusterState ─► ClusterMetadata::from_state
//!     ─► every shard applies it (opens/closes partitions) ─► published_index
//!     (active controller: the requests among them ─► decided, committed)
//!  liveness_loop (active controller): voters heard from recently heartbeat; silent ones'
//!     sessions expire ─► fenced, leaders move (broker.session.timeout.ms)
//! ```
//! A change is acknowledged only after this node's shards applied it, so a client that
//! created a topic can produce to it at once (other nodes catch up within a round trip).

use std::collections::BTreeMap;
use std::rc::Rc;
use std::time::Duration;

use kafka_protocol::error::ResponseError;
use tracing::{error, info};
use uuid::Uuid;

use crate::config::dynamic::{self, ConfigChange, ConfigResource};
use crate::errors::election_error_code;
use crate::metadata::{TopicMetadata, validate_topic_name};
use crate::replication::cluster_state::{MetadataRecord, TopicError};
use crate::replication::control::{MetadataChange, PartitionKey};
use crate::replication::placement::PlacementError;
use crate::replication::{NodeId, PartitionRegistration};
use crate::shard::Shard;

mod forward;
mod runtime;

use forward::forward_create_topics;
use runtime::allocate_producer_ids_remotely;
pub use runtime::{apply_loop, liveness_loop, request_until};

/// The controller's shard.
pub const CONTROLLER_SHARD: usize = 0;
/// Kafka caps partitions per topic creation far above this; a bound keeps one request
/// from creating millions of directories.
pub const PARTITIONS_PER_TOPIC_MAX: i32 = 10_000;
/// How long a change waits for the quorum to commit and this node to publish it.
pub const COMMIT_TIMEOUT_MS: u64 = 30_000;
/// How often the active controller checks the brokers' liveness.
pub const LIVENESS_CHECK_MS: u64 = 250;
/// A voter heard from this recently is alive (the quorum's leader hears every voter
/// at each Raft heartbeat, a fifth of the election timeout).
pub(crate) const HEARD_WITHIN_MS: u64 = 500;
/// How often a broker re-sends a request the controller has not acted on yet.
pub const REQUEST_RETRY_MS: u64 = 1_000;

/// A topic to create, as CreateTopics or auto-creation asks for it.
#[derive(Debug, Clone)]
pub struct NewTopic {
    pub name: String,
    /// -1 means `num.partitions`.
    pub partitions: i32,
    /// -1 means `default.replication.factor` (internal topics: min(3, voters)).
    pub replication_factor: i16,
    pub configs: BTreeMap<String, String>,
    /// Explicit replica lists, by partition index.
    pub assignments: Option<Vec<Vec<NodeId>>>,
    /// Created by the broker itself (`__consumer_offsets`); clients may not create
    /// internal topics.
    pub internal: bool,
}

/// The client id a broker uses for requests it forwards to the active controller,
/// followed by its node id.
pub const BROKER_CLIENT_ID_PREFIX: &str = "weir-broker-";

/// CreatePartitions for one topic: (name, new total, explicit replica lists of the
/// new partitions).
pub type NewPartitions = (String, i32, Option<Vec<Vec<NodeId>>>);

/// Topics only the broker creates.
pub const INTERNAL_TOPICS: &[&str] = &["__consumer_offsets", "__transaction_state"];

/// The result of one topic operation: an error code and message, or the topic.
pub type TopicOutcome = Result<TopicMetadata, (i16, String)>;

fn failure(error: ResponseError, message: impl Into<String>) -> (i16, String) {
    (error.code(), message.into())
}

fn topic_failure(error: TopicError) -> (i16, String) {
    let code = match &error {
        TopicError::AlreadyExists(_) => ResponseError::TopicAlreadyExists,
        TopicError::Unknown(_) => ResponseError::UnknownTopicOrPartition,
        TopicError::PartitionsNotIncreased { .. } => ResponseError::InvalidPartitions,
        TopicError::Placement(PlacementError::InvalidAssignment(_)) => {
            ResponseError::InvalidReplicaAssignment
        }
        TopicError::Placement(PlacementError::NoPartitions(_)) => ResponseError::InvalidPartitions,
        TopicError::Placement(_) => ResponseError::InvalidReplicationFactor,
    };
    (code.code(), error.to_string())
}

/// The topic a set of records creates (for answers before or without publication).
fn planned_topic(
    name: &str,
    id: Uuid,
    configs: &BTreeMap<String, String>,
    records: &[MetadataRecord],
) -> TopicMetadata {
    let registrations: Vec<PartitionRegistration> = records
        .iter()
        .filter_map(|record| match record {
            MetadataRecord::Replication(MetadataChange::Partition { key, registration })
                if key.0 == name =>
            {
                Some(registration.clone())
            }
            _ => None,
        })
        .collect();
    TopicMetadata {
        name: name.to_string(),
        id,
        partitions: registrations.len() as i32,
        configs: configs.clone(),
        partition_dirs: Vec::new(),
        registrations,
    }
}

/// Creates topics (on the controller shard). `validate_only` checks without creating.
pub async fn create_topics(
    shard: Rc<Shard>,
    topics: Vec<NewTopic>,
    validate_only: bool,
) -> Vec<TopicOutcome> {
    let _permit = match begin(&shard).await {
        Ok(permit) => permit,
        Err(error) => {
            if let Some(outcomes) = forward_create_topics(&shard, &topics, validate_only).await {
                return outcomes;
            }
            return topics.iter().map(|_| Err(error.clone())).collect();
        }
    };
    let current = shard.metadata();
    let config = shard.config.clone();
    let mut outcomes = Vec::with_capacity(topics.len());
    let mut records = Vec::new();
    let mut created: Vec<String> = Vec::new();
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
            if current.topic(&request.name).is_some() || created.contains(&request.name) {
                return Err(failure(
                    ResponseError::TopicAlreadyExists,
                    format!("Topic '{}' already exists.", request.name),
                ));
            }
            let partitions = match (&request.assignments, request.partitions) {
                (Some(assignments), _) => assignments.len() as i32,
                (None, -1) => config.num_partitions,
                (None, partitions) => partitions,
            };
            if !(1..=PARTITIONS_PER_TOPIC_MAX).contains(&partitions) {
                return Err(failure(
                    ResponseError::InvalidPartitions,
                    format!(
                        "Number of partitions must be between 1 and {PARTITIONS_PER_TOPIC_MAX}, got {partitions}."
                    ),
                ));
            }
            let log = shard.metadata_log.borrow();
            let log = log
                .as_ref()
                .expect("the controller shard holds the metadata log");
            let replication = match request.replication_factor {
                -1 if request.internal => 3.min(log.voters().len() as i16),
                -1 => config.default_replication_factor,
                replication => replication,
            };
            dynamic::validate_topic_configs(&shard.effective_config(), &request.configs)?;
            let id = Uuid::new_v4();
            let topic_records = log
                .state()
                .create_topic(
                    &request.name,
                    id,
                    partitions,
                    replication,
                    request.assignments.clone(),
                    request.configs.clone(),
                )
                .map_err(topic_failure)?;
            let topic = planned_topic(&request.name, id, &request.configs, &topic_records);
            records.extend(topic_records);
            Ok(topic)
        })();
        if let Ok(topic) = &outcome {
            created.push(topic.name.clone());
        }
        outcomes.push(outcome);
    }
    if validate_only {
        return outcomes;
    }
    let outcomes = settle(outcomes, commit_records(&shard, records).await);
    for topic in outcomes.iter().flatten() {
        info!(topic = %topic.name, partitions = topic.partitions, "created topic");
    }
    outcomes
}

/// Deletes topics by name (on the controller shard).
pub async fn delete_topics(shard: Rc<Shard>, names: Vec<String>) -> Vec<TopicOutcome> {
    let _permit = match begin(&shard).await {
        Ok(permit) => permit,
        Err(error) => return names.iter().map(|_| Err(error.clone())).collect(),
    };
    let current = shard.metadata();
    let mut records = Vec::new();
    let outcomes: Vec<TopicOutcome> = names
        .iter()
        .map(|name| match current.topic(name) {
            Some(topic) => {
                let log = shard.metadata_log.borrow();
                let log = log
                    .as_ref()
                    .expect("the controller shard holds the metadata log");
                records.extend(log.state().delete_topic(name).map_err(topic_failure)?);
                Ok(topic.clone())
            }
            None => Err(failure(
                ResponseError::UnknownTopicOrPartition,
                format!("Topic '{name}' does not exist."),
            )),
        })
        .collect();
    let outcomes = settle(outcomes, commit_records(&shard, records).await);
    for topic in outcomes.iter().flatten() {
        info!(topic = %topic.name, "deleted topic");
    }
    outcomes
}

/// Raises a topic's partition count (on the controller shard); explicit assignments
/// list the new partitions' replicas.
pub async fn create_partitions(
    shard: Rc<Shard>,
    requests: Vec<NewPartitions>,
    validate_only: bool,
) -> Vec<TopicOutcome> {
    let _permit = match begin(&shard).await {
        Ok(permit) => permit,
        Err(error) => return requests.iter().map(|_| Err(error.clone())).collect(),
    };
    let current = shard.metadata();
    let mut records = Vec::new();
    let outcomes: Vec<TopicOutcome> = requests
        .into_iter()
        .map(|(name, count, assignments)| {
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
            let log = shard.metadata_log.borrow();
            let log = log
                .as_ref()
                .expect("the controller shard holds the metadata log");
            let grown = log
                .state()
                .create_partitions(&name, count, assignments)
                .map_err(topic_failure)?;
            records.extend(grown);
            let mut topic = topic.clone();
            topic.partitions = count;
            Ok(topic)
        })
        .collect();
    if validate_only {
        return outcomes;
    }
    settle(outcomes, commit_records(&shard, records).await)
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
    let _permit = match begin(&shard).await {
        Ok(permit) => permit,
        Err(error) => return requests.iter().map(|_| Err(error.clone())).collect(),
    };
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
    let records = {
        let log = shard.metadata_log.borrow();
        let log = log
            .as_ref()
            .expect("the controller shard holds the metadata log");
        current.records_for_change(&next, log.state())
    };
    let outcomes = settle(outcomes, commit_records(&shard, records).await);
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

/// Why a change was not committed: NOT_CONTROLLER (this node does not lead the quorum,
/// or lost leadership before the change committed), or another failure.
pub type CommitError = (i16, String);

/// The start of every change: this node must be the active controller; the controller
/// lock is taken; every entry in this node's log is applied and published first, so the
/// decision sees the latest state.
async fn begin(shard: &Shard) -> Result<glommio::sync::Permit<'_>, CommitError> {
    assert_eq!(
        shard.id, CONTROLLER_SHARD,
        "only the controller shard changes metadata"
    );
    not_controller_check(shard)?;
    let permit = shard
        .controller_lock
        .acquire_permit(1)
        .await
        .expect("the controller lock is never closed");
    let last = {
        let log = shard.metadata_log.borrow();
        log.as_ref().map_or(0, |log| log.last_index())
    };
    wait_published(shard, last).await?;
    not_controller_check(shard)?;
    Ok(permit)
}

fn not_controller_check(shard: &Shard) -> Result<(), CommitError> {
    let log = shard.metadata_log.borrow();
    let Some(log) = log.as_ref() else {
        return Err(failure(
            ResponseError::NotController,
            "this broker is shutting down",
        ));
    };
    if log.is_leader() {
        return Ok(());
    }
    let message = match log.leader() {
        Some(leader) => format!("This is not the active controller; node {leader} is."),
        None => "There is no active controller (the quorum is electing one).".to_string(),
    };
    Err(failure(ResponseError::NotController, message))
}

/// Waits until this node published the metadata up to `index`.
async fn wait_published(shard: &Shard, index: u64) -> Result<(), CommitError> {
    let deadline = std::time::Instant::now() + Duration::from_millis(COMMIT_TIMEOUT_MS);
    while shard.published_index.get() < index {
        if std::time::Instant::now() >= deadline {
            return Err(failure(
                ResponseError::RequestTimedOut,
                format!(
                    "the metadata log did not apply entry {index} within {COMMIT_TIMEOUT_MS} ms"
                ),
            ));
        }
        let listen = shard.metadata_published.listen();
        let timer = glommio::timer::sleep(Duration::from_millis(100));
        futures::pin_mut!(listen, timer);
        futures::future::select(listen, timer).await;
    }
    Ok(())
}

/// Every outcome that was going to succeed fails with `committed`'s error.
fn settle<T>(
    outcomes: Vec<Result<T, (i16, String)>>,
    committed: Result<(), CommitError>,
) -> Vec<Result<T, (i16, String)>> {
    match committed {
        Ok(()) => outcomes,
        Err(error) => outcomes
            .into_iter()
            .map(|outcome| outcome.and_then(|_| Err(error.clone())))
            .collect(),
    }
}

/// Commits `records` as one entry through the quorum (this node must lead it) and
/// waits until this node applied and published them.
pub async fn commit_records(
    shard: &Rc<Shard>,
    records: Vec<MetadataRecord>,
) -> Result<(), CommitError> {
    if records.is_empty() {
        return Ok(());
    }
    let proposed = {
        let mut log = shard.metadata_log.borrow_mut();
        let log = log
            .as_mut()
            .expect("the controller shard holds the metadata log");
        if !log.is_leader() {
            None
        } else {
            Some(log.propose(&records))
        }
    };
    let (index, term) = match proposed {
        None | Some(Ok(None)) => {
            return Err(not_controller_check(shard)
                .err()
                .unwrap_or_else(|| failure(ResponseError::NotController, "leadership moved")));
        }
        Some(Err(error)) => {
            error!(%error, "could not commit a metadata change");
            return Err(failure(
                ResponseError::KafkaStorageError,
                format!("could not commit the metadata change: {error}"),
            ));
        }
        Some(Ok(Some(placed))) => placed,
    };
    wait_published(shard, index).await?;
    let applied_term = {
        let log = shard.metadata_log.borrow();
        log.as_ref().and_then(|log| log.applied_term(index))
    };
    if applied_term != Some(term) {
        return Err(failure(
            ResponseError::NotController,
            "leadership of the controller quorum moved before the change committed",
        ));
    }
    Ok(())
}

/// ElectLeaders (on the controller shard): decided on the metadata log's state,
/// committed, published; answers each partition's outcome.
pub async fn elect_leaders(
    shard: Rc<Shard>,
    keys: Option<Vec<PartitionKey>>,
    unclean: bool,
) -> Vec<(PartitionKey, Result<(), (i16, String)>)> {
    let _permit = match begin(&shard).await {
        Ok(permit) => permit,
        Err(error) => {
            return keys
                .unwrap_or_default()
                .into_iter()
                .map(|key| (key, Err(error.clone())))
                .collect();
        }
    };
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
    let records = changes
        .into_iter()
        .map(MetadataRecord::Replication)
        .collect();
    match commit_records(&shard, records).await {
        Ok(()) => {
            let elected = outcomes.iter().filter(|(_, o)| o.is_ok()).count();
            if elected > 0 {
                info!(elected, "elected leaders");
            }
            outcomes
        }
        Err(error) => outcomes
            .into_iter()
            .map(|(key, outcome)| (key, outcome.and_then(|()| Err(error.clone()))))
            .collect(),
    }
}

/// Reserves the next producer id block (on the controller shard, which must be the
/// active controller): its end is committed before the block is handed out.
pub async fn allocate_producer_ids(
    shard: &Rc<Shard>,
    floor: i64,
) -> Result<(i64, i64), (i16, String)> {
    let unavailable =
        |(_, message): CommitError| (ResponseError::CoordinatorNotAvailable.code(), message);
    let leads = {
        let log = shard.metadata_log.borrow();
        log.as_ref().is_some_and(|log| log.is_leader())
    };
    if !leads {
        return allocate_producer_ids_remotely(shard).await;
    }
    let _permit = begin(shard).await.map_err(unavailable)?;
    let log_dir = shard.config.log_dirs[0].clone();
    let (start, end, record) = {
        let log = shard.metadata_log.borrow();
        let log = log
            .as_ref()
            .expect("the controller shard holds the metadata log");
        shard.producer_id_blocks.plan(log, &log_dir, floor)?
    };
    commit_records(shard, vec![record])
        .await
        .map_err(|(code, message)| {
            if code == ResponseError::KafkaStorageError.code() {
                (code, message)
            } else {
                (ResponseError::CoordinatorNotAvailable.code(), message)
            }
        })?;
    shard.producer_id_blocks.allocated(&log_dir)?;
    Ok((start, end))
}
