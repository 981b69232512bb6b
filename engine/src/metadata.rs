//! Cluster metadata: topics, their ids, partition counts, configs and log directories.
//!
//! One writer (shard 0, the controller role) changes it and publishes immutable
//! snapshots (`Arc<ClusterMetadata>`) to every shard; readers never lock. On disk it is
//! `weir-topics.json` in the first log dir (written atomically: temp → fsync → rename →
//! fsync dir), and the partition directories themselves: a `<topic>-<partition>` dir with
//! a `partition.metadata` file found at start-up is adopted even when the JSON does not
//! list it, so a Kafka log directory can be adopted in place.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use uuid::Uuid;
use weir_storage::{checkpoint, meta};

/// File holding topic definitions, in the first log dir.
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
    /// Bumped at every change, so shards can tell snapshots apart.
    pub version: u64,
}

#[derive(Serialize, Deserialize)]
struct TopicsFile {
    version: u32,
    topics: Vec<TopicMetadata>,
    #[serde(default)]
    broker_configs: BTreeMap<String, BTreeMap<String, String>>,
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
            version: self.version + 1,
        }
    }

    /// Loads topics from `weir-topics.json` and the partition directories under `log_dirs`.
    pub fn load(
        cluster_id: String,
        node_id: i32,
        log_dirs: &[PathBuf],
    ) -> std::io::Result<(ClusterMetadata, Vec<String>)> {
        let mut notes = Vec::new();
        let mut topics: BTreeMap<String, TopicMetadata> = BTreeMap::new();
        let mut broker_configs = BTreeMap::new();
        let path = log_dirs[0].join(TOPICS_FILE_NAME);
        match std::fs::read(&path) {
            Ok(bytes) => {
                let file: TopicsFile = serde_json::from_slice(&bytes).map_err(|error| {
                    std::io::Error::new(
                        std::io::ErrorKind::InvalidData,
                        format!("{}: {error}", path.display()),
                    )
                })?;
                for topic in file.topics {
                    topics.insert(topic.name.clone(), topic);
                }
                broker_configs = file.broker_configs;
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
        for (name, partitions) in found {
            let count = partitions.keys().max().map_or(0, |max| max + 1);
            match topics.get_mut(&name) {
                Some(topic) => {
                    for (partition, (dir_index, _)) in &partitions {
                        if (*partition as usize) < topic.partition_dirs.len() {
                            topic.partition_dirs[*partition as usize] = *dir_index;
                        }
                    }
                }
                None => {
                    let id = partitions
                        .values()
                        .find_map(|(_, id)| *id)
                        .unwrap_or_else(Uuid::new_v4);
                    let mut partition_dirs = vec![0; count as usize];
                    for (partition, (dir_index, _)) in &partitions {
                        partition_dirs[*partition as usize] = *dir_index;
                    }
                    notes.push(format!(
                        "adopted topic {name} ({count} partitions) found on disk"
                    ));
                    topics.insert(
                        name.clone(),
                        TopicMetadata {
                            name,
                            id,
                            partitions: count,
                            configs: BTreeMap::new(),
                            partition_dirs,
                        },
                    );
                }
            }
        }
        let metadata = ClusterMetadata {
            cluster_id,
            node_id,
            topics,
            topic_names_by_id: HashMap::new(),
            broker_configs,
            version: 0,
        };
        Ok((metadata.with_change(|_| {}), notes))
    }

    /// Writes `weir-topics.json` atomically into the first log dir.
    pub fn persist(&self, log_dirs: &[PathBuf]) -> Result<(), weir_storage::error::StorageError> {
        let file = TopicsFile {
            version: 1,
            topics: self.topics.values().cloned().collect(),
            broker_configs: self.broker_configs.clone(),
        };
        let bytes = serde_json::to_vec_pretty(&file).expect("topic metadata always serializes");
        checkpoint::write_atomically(&log_dirs[0].join(TOPICS_FILE_NAME), &bytes)
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
pub fn ensure_meta_properties(log_dirs: &[PathBuf], node_id: i32) -> Result<String, String> {
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
    let cluster_id = cluster_id.unwrap_or_else(|| meta::uuid_to_kafka_string(Uuid::new_v4()));
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
