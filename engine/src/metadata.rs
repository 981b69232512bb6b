//! Cluster metadata: topics, their ids, partition counts, configs and log directories.
//!
//! One writer (shard 0, the controller role) changes it and publishes immutable
//! snapshots (`Arc<ClusterMetadata>`) to every shard; readers never lock. What is shared
//! (topics, ids, configs, partition registrations, dynamic broker configs) lives in the
//! metadata log (`quorum::MetadataLog`, `<first log dir>/weir-quorum/`); which log dir
//! holds a partition is this node's own business and comes from the partition
//! directories themselves: a `<topic>-<partition>` dir found at start-up that the log
//! does not know is adopted (a Kafka log directory can be adopted in place). A
//! `weir-topics.json` of an older weir is imported once into a new metadata log and
//! renamed `weir-topics.json.imported`.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use uuid::Uuid;
use weir_storage::meta;

use crate::quorum::{MetadataLog, QuorumError};
use crate::replication::cluster_state::{ClusterState, MetadataRecord, TopicState};
use crate::replication::control::MetadataChange;
use crate::replication::{NodeId, PartitionRegistration};

/// Topic definitions of weir before the metadata log (imported once, then renamed).
pub const TOPICS_FILE_NAME: &str = "weir-topics.json";
/// Kafka's limit on topic name length.
pub const TOPIC_NAME_LENGTH_MAX: usize = 249;

/// One topic.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TopicMetadata {
    pub name: String,
    pub id: Uuid,
    pub partitions: i32,
    /// Topic-level config overrides (`retention.ms`, ...), as set by the user.
    pub configs: BTreeMap<String, String>,
    /// Index into `log.dirs` for each partition.
    pub partition_dirs: Vec<usize>,
    /// Each partition's registration in the metadata log (leader, epochs, replicas,
    /// ISR); filled from the log, never from an older topics file.
    #[serde(default, skip)]
    pub registrations: Vec<PartitionRegistration>,
}

impl TopicMetadata {
    pub fn is_internal(&self) -> bool {
        self.name.starts_with("__")
    }
}

/// An immutable snapshot of everything shards need to route and answer metadata.
#[derive(Debug, Clone, Default)]
pub struct ClusterMetadata {
    pub cluster_id: String,
    pub node_id: i32,
    pub topics: BTreeMap<String, TopicMetadata>,
    pub topic_names_by_id: HashMap<Uuid, String>,
    /// Dynamic broker configs set with AlterConfigs, by resource name: `""` applies to
    /// every broker, `"<node id>"` to one.
    pub broker_configs: BTreeMap<String, BTreeMap<String, String>>,
    /// Registered brokers: (node, client host, client port, fenced).
    pub brokers: Vec<BrokerInfo>,
    /// Bumped at every change, so shards can tell snapshots apart.
    pub version: u64,
    /// The active controller (the quorum's leader) when this was published; -1: none.
    pub controller_id: i32,
}

/// A registered broker as clients see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerInfo {
    pub node_id: NodeId,
    pub host: String,
    pub port: u16,
    pub rack: Option<String>,
    pub fenced: bool,
}

#[derive(Serialize, Deserialize)]
struct TopicsFile {
    version: u32,
    topics: Vec<TopicMetadata>,
    #[serde(default)]
    broker_configs: BTreeMap<String, BTreeMap<String, String>>,
}

impl TopicMetadata {
    /// A topic of the metadata log with the log dir of each partition (registrations
    /// come with `ClusterMetadata::refresh_from_log`).
    fn placed(name: &str, topic: &TopicState, partition_dirs: Vec<usize>) -> TopicMetadata {
        TopicMetadata {
            name: name.to_string(),
            id: topic.id,
            partitions: topic.partitions,
            configs: topic.configs.clone(),
            partition_dirs,
            registrations: Vec::new(),
        }
    }
}

impl ClusterMetadata {
    pub fn topic(&self, name: &str) -> Option<&TopicMetadata> {
        self.topics.get(name)
    }

    pub fn topic_by_id(&self, id: &Uuid) -> Option<&TopicMetadata> {
        self.topic_names_by_id
            .get(id)
            .and_then(|name| self.topics.get(name))
    }

    /// The dynamic broker configs for every broker (`""`) and for `node_id`.
    pub fn dynamic_configs(
        &self,
        node_id: i32,
    ) -> (BTreeMap<String, String>, BTreeMap<String, String>) {
        let layer = |name: &str| self.broker_configs.get(name).cloned().unwrap_or_default();
        (layer(""), layer(&node_id.to_string()))
    }

    /// A copy with `change` applied and the version bumped.
    pub fn with_change(
        &self,
        change: impl FnOnce(&mut BTreeMap<String, TopicMetadata>),
    ) -> ClusterMetadata {
        let mut topics = self.topics.clone();
        change(&mut topics);
        let topic_names_by_id = topics
            .values()
            .map(|topic| (topic.id, topic.name.clone()))
            .collect();
        ClusterMetadata {
            cluster_id: self.cluster_id.clone(),
            node_id: self.node_id,
            topics,
            topic_names_by_id,
            broker_configs: self.broker_configs.clone(),
            brokers: self.brokers.clone(),
            version: self.version + 1,
            controller_id: self.controller_id,
        }
    }

    /// Takes partition registrations and brokers from the applied metadata log (after
    /// a change was committed, or at start-up).
    pub fn refresh_from_log(&mut self, state: &ClusterState) {
        for (name, topic) in self.topics.iter_mut() {
            topic.registrations = (0..topic.partitions)
                .map(|partition| {
                    state
                        .partition(name, partition)
                        .cloned()
                        .expect("every published partition is registered in the metadata log")
                })
                .collect();
        }
        self.brokers = state
            .control()
            .brokers()
            .filter_map(|(node_id, broker)| {
                state.endpoint(node_id).map(|endpoint| BrokerInfo {
                    node_id,
                    host: endpoint.host.clone(),
                    port: endpoint.port,
                    rack: endpoint.rack.clone(),
                    fenced: broker.fenced,
                })
            })
            .collect();
    }

    /// The metadata the applied `state` describes, keeping the log dir of every
    /// partition this metadata already places (new partitions go to the least loaded).
    pub fn from_state(&self, state: &ClusterState, log_dir_count: usize) -> ClusterMetadata {
        let mut topics = BTreeMap::new();
        let mut extra = Vec::new();
        for (name, topic) in state.topics() {
            let before = self.topics.get(name).filter(|before| before.id == topic.id);
            let partition_dirs = (0..topic.partitions)
                .map(|partition| {
                    before
                        .and_then(|before| before.partition_dirs.get(partition as usize))
                        .copied()
                        .filter(|dir| *dir < log_dir_count)
                        .unwrap_or_else(|| {
                            let dir = self.least_loaded_dir(log_dir_count, &extra);
                            extra.push(dir);
                            dir
                        })
                })
                .collect();
            topics.insert(
                name.clone(),
                TopicMetadata::placed(name, topic, partition_dirs),
            );
        }
        let mut next = self.with_change(|all| *all = topics);
        next.broker_configs = state.broker_configs().clone();
        next.refresh_from_log(state);
        next
    }

    /// The broker clients should send controller requests to (Metadata's
    /// `controller_id`): the active controller, else this node.
    pub fn controller_or_self(&self) -> i32 {
        if self.controller_id >= 0 {
            self.controller_id
        } else {
            self.node_id
        }
    }

    /// Builds the metadata from the metadata log and the partition directories under
    /// `log_dirs`, first importing an older `weir-topics.json` into a new log and
    /// adopting partition directories the log does not know (both committed to the log).
    pub fn load(
        cluster_id: String,
        node_id: i32,
        log_dirs: &[PathBuf],
        log: &mut MetadataLog,
    ) -> std::io::Result<(ClusterMetadata, Vec<String>)> {
        let mut notes = Vec::new();
        let quorum_error = |error: QuorumError| std::io::Error::other(error.to_string());
        let legacy_path = log_dirs[0].join(TOPICS_FILE_NAME);
        let mut legacy_dirs: BTreeMap<(String, i32), usize> = BTreeMap::new();
        match std::fs::read(&legacy_path) {
            Ok(_) if !log.can_commit_now() => {
                notes.push(format!(
                    "{} is not imported: a multi-node cluster's metadata comes from its quorum",
                    legacy_path.display()
                ));
            }
            Ok(bytes) => {
                let file: TopicsFile = serde_json::from_slice(&bytes).map_err(|error| {
                    std::io::Error::new(
                        std::io::ErrorKind::InvalidData,
                        format!("{}: {error}", legacy_path.display()),
                    )
                })?;
                if log.is_fresh() {
                    let mut records = Vec::new();
                    for topic in &file.topics {
                        let partitions = 0..topic.partitions;
                        records.extend(topic_records(
                            log.state(),
                            node_id,
                            &topic.name,
                            topic.id,
                            partitions,
                            &topic.configs,
                        ));
                        for (partition, dir) in topic.partition_dirs.iter().enumerate() {
                            legacy_dirs.insert((topic.name.clone(), partition as i32), *dir);
                        }
                    }
                    for (resource, configs) in &file.broker_configs {
                        records.push(MetadataRecord::BrokerConfigs {
                            resource: resource.clone(),
                            configs: configs.clone(),
                        });
                    }
                    log.commit(records).map_err(quorum_error)?;
                    notes.push(format!(
                        "imported {} topics from {} into the metadata log",
                        file.topics.len(),
                        legacy_path.display()
                    ));
                }
                let imported = legacy_path.with_extension("json.imported");
                std::fs::rename(&legacy_path, &imported)?;
                weir_storage::checkpoint::sync_dir(&log_dirs[0]).map_err(std::io::Error::other)?;
            }
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
            Err(error) => return Err(error),
        }
        // Partition directories on disk are the ground truth for where data lives.
        let mut found: BTreeMap<String, BTreeMap<i32, (usize, Option<Uuid>)>> = BTreeMap::new();
        for (dir_index, dir) in log_dirs.iter().enumerate() {
            let Ok(entries) = std::fs::read_dir(dir) else {
                continue;
            };
            for entry in entries.flatten() {
                if !entry.file_type().is_ok_and(|kind| kind.is_dir()) {
                    continue;
                }
                let name = entry.file_name().to_string_lossy().to_string();
                if name.ends_with("-delete")
                    || name.ends_with("-future")
                    || name.ends_with("-stray")
                {
                    continue;
                }
                let Some((topic, partition)) = meta::parse_partition_dir_name(&name) else {
                    continue;
                };
                let topic_id = meta::PartitionMetadata::read(&entry.path())
                    .ok()
                    .flatten()
                    .map(|metadata| metadata.topic_id);
                found
                    .entry(topic)
                    .or_default()
                    .insert(partition, (dir_index, topic_id));
            }
        }
        let mut adopted = Vec::new();
        for (name, partitions) in &found {
            if log.state().topic(name).is_some() {
                continue;
            }
            if !log.can_commit_now() {
                notes.push(format!(
                    "partition directories of topic {name} are not in the cluster's metadata; left alone"
                ));
                continue;
            }
            let count = partitions.keys().max().map_or(0, |max| max + 1);
            let id = partitions
                .values()
                .find_map(|(_, id)| *id)
                .unwrap_or_else(Uuid::new_v4);
            adopted.extend(topic_records(
                log.state(),
                node_id,
                name,
                id,
                0..count,
                &BTreeMap::new(),
            ));
            notes.push(format!(
                "adopted topic {name} ({count} partitions) found on disk"
            ));
        }
        log.commit(adopted).map_err(quorum_error)?;
        let state = log.state();
        let mut topics = BTreeMap::new();
        for (name, topic) in state.topics() {
            let partition_dirs = (0..topic.partitions)
                .map(|partition| {
                    found
                        .get(name)
                        .and_then(|dirs| dirs.get(&partition))
                        .map(|(dir, _)| *dir)
                        .or_else(|| legacy_dirs.get(&(name.clone(), partition)).copied())
                        .filter(|dir| *dir < log_dirs.len())
                        .unwrap_or(usize::MAX)
                })
                .collect();
            topics.insert(
                name.clone(),
                TopicMetadata::placed(name, topic, partition_dirs),
            );
        }
        let mut metadata = ClusterMetadata {
            cluster_id,
            node_id,
            topics,
            topic_names_by_id: HashMap::new(),
            broker_configs: state.broker_configs().clone(),
            brokers: Vec::new(),
            version: 0,
            controller_id: log.leader().unwrap_or(-1),
        };
        metadata.refresh_from_log(state);
        // Partitions without a directory yet (created, never opened) get the least
        // loaded log dir, as at creation.
        let missing: Vec<(String, usize)> = metadata
            .topics
            .values()
            .flat_map(|topic| {
                topic
                    .partition_dirs
                    .iter()
                    .enumerate()
                    .filter(|(_, dir)| **dir == usize::MAX)
                    .map(|(partition, _)| (topic.name.clone(), partition))
                    .collect::<Vec<_>>()
            })
            .collect();
        for (name, partition) in missing {
            let dir = metadata.least_loaded_dir(log_dirs.len(), &[]);
            metadata
                .topics
                .get_mut(&name)
                .expect("listed above")
                .partition_dirs[partition] = dir;
        }
        Ok((metadata.with_change(|_| {}), notes))
    }

    /// The metadata log records that turn `self` into `next` (a controller change of a
    /// single node: every partition on this node, which leads it).
    pub fn records_for_change(
        &self,
        next: &ClusterMetadata,
        state: &ClusterState,
    ) -> Vec<MetadataRecord> {
        let mut records = Vec::new();
        for (name, topic) in &self.topics {
            let replaced = next.topics.get(name).is_none_or(|now| now.id != topic.id);
            if replaced {
                records.extend((0..topic.partitions).map(|partition| {
                    MetadataRecord::Replication(MetadataChange::RemovePartition {
                        key: (name.clone(), partition),
                    })
                }));
                records.push(MetadataRecord::RemoveTopic { name: name.clone() });
            }
        }
        for (name, topic) in &next.topics {
            match self.topics.get(name).filter(|before| before.id == topic.id) {
                None => records.extend(topic_records(
                    state,
                    self.node_id,
                    name,
                    topic.id,
                    0..topic.partitions,
                    &topic.configs,
                )),
                Some(before) => {
                    if before.configs != topic.configs {
                        records.push(MetadataRecord::TopicConfigs {
                            name: name.clone(),
                            configs: topic.configs.clone(),
                        });
                    }
                    let grown = before.partitions..topic.partitions;
                    records.extend(partition_records(state, self.node_id, name, grown));
                }
            }
        }
        let resources: std::collections::BTreeSet<&String> = self
            .broker_configs
            .keys()
            .chain(next.broker_configs.keys())
            .collect();
        for resource in resources {
            let now = next.broker_configs.get(resource);
            if self.broker_configs.get(resource) != now {
                records.push(MetadataRecord::BrokerConfigs {
                    resource: resource.clone(),
                    configs: now.cloned().unwrap_or_default(),
                });
            }
        }
        records
    }

    /// Picks the log dir for a new partition: the one holding the fewest partitions.
    pub fn least_loaded_dir(&self, log_dir_count: usize, extra: &[usize]) -> usize {
        let mut counts = vec![0usize; log_dir_count];
        for topic in self.topics.values() {
            for dir in &topic.partition_dirs {
                if *dir < log_dir_count {
                    counts[*dir] += 1;
                }
            }
        }
        for dir in extra {
            counts[*dir] += 1;
        }
        (0..log_dir_count)
            .min_by_key(|dir| (counts[*dir], *dir))
            .expect("at least one log dir")
    }
}

/// A topic's records on a single node: the topic, then its partitions led by `node_id`.
fn topic_records(
    state: &ClusterState,
    node_id: NodeId,
    name: &str,
    id: Uuid,
    partitions: std::ops::Range<i32>,
    configs: &BTreeMap<String, String>,
) -> Vec<MetadataRecord> {
    let mut records = vec![MetadataRecord::Topic {
        name: name.to_string(),
        id,
        configs: configs.clone(),
    }];
    records.extend(partition_records(state, node_id, name, partitions));
    records
}

fn partition_records(
    state: &ClusterState,
    node_id: NodeId,
    name: &str,
    partitions: std::ops::Range<i32>,
) -> Vec<MetadataRecord> {
    partitions
        .flat_map(|partition| {
            state
                .control()
                .create_partition((name.to_string(), partition), vec![node_id])
        })
        .map(MetadataRecord::Replication)
        .collect()
}

/// The directory of one partition.
pub fn partition_dir(log_dirs: &[PathBuf], topic: &TopicMetadata, partition: i32) -> PathBuf {
    let dir_index = topic
        .partition_dirs
        .get(partition as usize)
        .copied()
        .unwrap_or(0);
    log_dirs[dir_index.min(log_dirs.len() - 1)].join(format!("{}-{}", topic.name, partition))
}

/// Kafka's topic name rules: 1–249 characters of `[a-zA-Z0-9._-]`, not `.` or `..`.
pub fn validate_topic_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("topic name is empty".into());
    }
    if name == "." || name == ".." {
        return Err(format!("topic name '{name}' is not allowed"));
    }
    if name.len() > TOPIC_NAME_LENGTH_MAX {
        return Err(format!(
            "topic name is longer than {TOPIC_NAME_LENGTH_MAX} characters"
        ));
    }
    if let Some(bad) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        return Err(format!(
            "topic name '{name}' contains '{bad}'; only ASCII letters, digits, '.', '_' and '-' are allowed"
        ));
    }
    Ok(())
}

/// Ensures `meta.properties` in every log dir agrees on node and cluster; creates it
/// where missing. Returns the cluster id.
pub fn ensure_meta_properties(
    log_dirs: &[PathBuf],
    node_id: i32,
    new_cluster_id: Option<String>,
) -> Result<String, String> {
    let mut cluster_id: Option<String> = None;
    for dir in log_dirs {
        let existing = meta::MetaProperties::read(dir).map_err(|error| error.to_string())?;
        if let Some(existing) = existing {
            if existing.node_id != node_id {
                return Err(format!(
                    "{} belongs to node {} but this broker is node.id={node_id}; point log.dirs elsewhere or fix node.id",
                    dir.join("meta.properties").display(),
                    existing.node_id
                ));
            }
            if let Some(known) = &cluster_id
                && *known != existing.cluster_id
            {
                return Err(format!(
                    "log dirs disagree on cluster.id ({known} vs {} in {})",
                    existing.cluster_id,
                    dir.display()
                ));
            }
            cluster_id = Some(existing.cluster_id.clone());
        }
    }
    let cluster_id = cluster_id
        .or(new_cluster_id)
        .unwrap_or_else(|| meta::uuid_to_kafka_string(Uuid::new_v4()));
    for dir in log_dirs {
        if meta::MetaProperties::read(dir)
            .map_err(|error| error.to_string())?
            .is_none()
        {
            let properties = meta::MetaProperties {
                node_id,
                cluster_id: cluster_id.clone(),
                directory_id: Some(Uuid::new_v4()),
            };
            properties.write(dir).map_err(|error| error.to_string())?;
        }
    }
    Ok(cluster_id)
}

/// The cluster id every node of a new multi-node cluster takes without a format step:
/// derived from `controller.quorum.voters` (the same on every node), so the nodes agree.
pub fn cluster_id_for_voters(voters: &str) -> String {
    let forward = crate::routing::fnv1a_64(voters.as_bytes());
    let reversed: Vec<u8> = voters.bytes().rev().collect();
    let backward = crate::routing::fnv1a_64(&reversed);
    meta::uuid_to_kafka_string(Uuid::from_u64_pair(forward, backward))
}

/// Whether `path` is inside one of the log dirs (guards directory deletion).
pub fn is_inside(path: &Path, log_dirs: &[PathBuf]) -> bool {
    log_dirs
        .iter()
        .any(|dir| path.starts_with(dir) && path != dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_names_follow_kafka_rules() {
        assert!(validate_topic_name("orders.v1_eu-west").is_ok());
        assert!(validate_topic_name("").is_err());
        assert!(validate_topic_name("..").is_err());
        assert!(validate_topic_name("has space").is_err());
        assert!(validate_topic_name(&"x".repeat(250)).is_err());
    }

    use crate::replication::cluster_state::Endpoint;
    use crate::replication::control::ReplicationControl;

    fn open_log(dir: &Path) -> MetadataLog {
        let mut log = MetadataLog::open(
            dir,
            0,
            &[0],
            crate::quorum::timing(1000, std::time::Duration::from_millis(100)),
            ReplicationControl::new(9_000),
        )
        .expect("open");
        let endpoint = Endpoint {
            host: "127.0.0.1".into(),
            port: 9092,
            rack: None,
        };
        let incarnation = log
            .state()
            .control()
            .broker(0)
            .map_or(1, |b| b.incarnation + 1);
        let records = log
            .state_mut()
            .register_broker(0, incarnation, true, endpoint, 0);
        log.commit(records).expect("register");
        log
    }

    fn load(dirs: &[PathBuf]) -> (ClusterMetadata, Vec<String>) {
        let mut log = open_log(&dirs[0]);
        ClusterMetadata::load("cluster".into(), 0, dirs, &mut log).expect("load")
    }

    #[test]
    fn an_older_topics_file_is_imported_once_then_the_log_is_the_truth() {
        let dir = tempfile::tempdir().expect("tempdir");
        let dirs = vec![dir.path().to_path_buf()];
        let id = Uuid::new_v4();
        let legacy = TopicsFile {
            version: 1,
            topics: vec![TopicMetadata {
                name: "orders".into(),
                id,
                partitions: 3,
                configs: BTreeMap::from([("retention.ms".into(), "60000".into())]),
                partition_dirs: vec![0, 0, 0],
                registrations: Vec::new(),
            }],
            broker_configs: BTreeMap::from([(
                String::new(),
                BTreeMap::from([("log.retention.hours".into(), "2".into())]),
            )]),
        };
        std::fs::write(
            dir.path().join(TOPICS_FILE_NAME),
            serde_json::to_vec(&legacy).expect("json"),
        )
        .expect("write");
        let (metadata, notes) = load(&dirs);
        assert!(
            notes.iter().any(|note| note.contains("imported 1 topics")),
            "{notes:?}"
        );
        let orders = metadata.topic("orders").expect("imported");
        assert_eq!((orders.id, orders.partitions), (id, 3));
        assert_eq!(orders.configs["retention.ms"], "60000");
        assert_eq!(metadata.broker_configs[""]["log.retention.hours"], "2");
        assert!(!dir.path().join(TOPICS_FILE_NAME).exists());
        assert!(dir.path().join("weir-topics.json.imported").exists());
        // The next start reads the log alone.
        let (again, notes) = load(&dirs);
        assert!(notes.is_empty(), "{notes:?}");
        assert_eq!(again.topic("orders"), metadata.topic("orders"));
    }

    #[test]
    fn partition_directories_the_log_does_not_know_are_adopted_with_their_topic_id() {
        let first = tempfile::tempdir().expect("tempdir");
        let second = tempfile::tempdir().expect("tempdir");
        let dirs = vec![first.path().to_path_buf(), second.path().to_path_buf()];
        let id = Uuid::new_v4();
        for partition in [0, 2] {
            let path = second.path().join(format!("kafka-topic-{partition}"));
            std::fs::create_dir_all(&path).expect("mkdir");
            meta::PartitionMetadata { topic_id: id }
                .write(&path)
                .expect("write");
        }
        let (metadata, notes) = load(&dirs);
        assert!(
            notes
                .iter()
                .any(|note| note.contains("adopted topic kafka-topic (3 partitions)")),
            "{notes:?}"
        );
        let topic = metadata.topic("kafka-topic").expect("adopted");
        assert_eq!(topic.id, id);
        assert_eq!(
            (topic.partition_dirs[0], topic.partition_dirs[2]),
            (1, 1),
            "found where the data is"
        );
        let (again, notes) = load(&dirs);
        assert!(notes.is_empty(), "adopted once: {notes:?}");
        assert_eq!(again.topic("kafka-topic").map(|t| t.id), Some(id));
    }

    #[test]
    fn controller_changes_become_records_that_rebuild_the_same_metadata() {
        let dir = tempfile::tempdir().expect("tempdir");
        let dirs = vec![dir.path().to_path_buf()];
        let mut log = open_log(&dirs[0]);
        let (mut current, _) = ClusterMetadata::load("c".into(), 0, &dirs, &mut log).expect("load");
        let topic = |name: &str, partitions: i32, retention: &str| TopicMetadata {
            name: name.into(),
            id: Uuid::new_v4(),
            partitions,
            configs: BTreeMap::from([("retention.ms".into(), retention.into())]),
            partition_dirs: vec![0; partitions as usize],
            registrations: Vec::new(),
        };
        let (a, b) = (topic("a", 2, "1000"), topic("b", 1, "2000"));
        type Step = Box<dyn Fn(&ClusterMetadata) -> ClusterMetadata>;
        let steps: Vec<Step> = vec![
            Box::new(move |m| {
                m.with_change(|t| {
                    t.insert("a".into(), a.clone());
                    t.insert("b".into(), b.clone());
                })
            }),
            Box::new(|m| {
                m.with_change(|t| {
                    let a = t.get_mut("a").expect("a");
                    a.partitions = 5;
                    a.partition_dirs = vec![0; 5];
                    a.configs.insert("retention.ms".into(), "9".into());
                })
            }),
            Box::new(|m| {
                let mut next = m.with_change(|t| {
                    t.remove("b");
                });
                next.broker_configs.insert(
                    "0".into(),
                    BTreeMap::from([("log.cleaner.backoff.ms".into(), "5".into())]),
                );
                next
            }),
        ];
        for step in steps {
            let next = step(&current);
            let records = current.records_for_change(&next, log.state());
            log.commit(records).expect("commit");
            current = next;
        }
        drop(log);
        let (rebuilt, _) = load(&dirs);
        assert_eq!(rebuilt.topics.keys().collect::<Vec<_>>(), vec!["a"]);
        let a = rebuilt.topic("a").expect("a");
        assert_eq!((a.partitions, a.configs["retention.ms"].as_str()), (5, "9"));
        assert_eq!(a.id, current.topic("a").expect("a").id);
        assert_eq!(rebuilt.broker_configs, current.broker_configs);
    }

    #[test]
    fn least_loaded_dir_spreads_partitions() {
        let metadata = ClusterMetadata::default();
        let mut chosen = Vec::new();
        for _ in 0..6 {
            let dir = metadata.least_loaded_dir(3, &chosen);
            chosen.push(dir);
        }
        assert_eq!(chosen, vec![0, 1, 2, 0, 1, 2]);
    }
}
