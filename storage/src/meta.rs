//! Kafka's small metadata files: `meta.properties` (per log directory),
//! `partition.metadata` (per partition), the clean-shutdown marker, and partition
//! directory names.
//!
//! Kafka prints UUIDs (topic ids, directory ids, cluster ids) as URL-safe base64 without
//! padding: 22 characters for 16 bytes. All writes use `checkpoint::write_atomically`
//! (temp → fsync → rename → fsync dir).

use std::path::Path;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use uuid::Uuid;

use crate::checkpoint::{sync_dir, write_atomically};
use crate::error::StorageError;

/// Name of the per-directory properties file.
pub const META_PROPERTIES_FILE: &str = "meta.properties";
/// Name of the per-partition topic-id file.
pub const PARTITION_METADATA_FILE: &str = "partition.metadata";
/// Kafka's clean-shutdown marker, written into each log dir after a clean close.
pub const CLEAN_SHUTDOWN_MARKER_FILE: &str = ".kafka_cleanshutdown";

/// Encodes a UUID the way Kafka's `Uuid.toString()` does.
pub fn uuid_to_kafka_string(uuid: Uuid) -> String {
    URL_SAFE_NO_PAD.encode(uuid.as_bytes())
}

/// Parses Kafka's 22-character URL-safe base64 UUID.
pub fn uuid_from_kafka_string(text: &str) -> Option<Uuid> {
    let bytes = URL_SAFE_NO_PAD.decode(text.trim()).ok()?;
    Uuid::from_slice(&bytes).ok()
}

fn malformed(path: &Path, line: usize, reason: impl Into<String>) -> StorageError {
    StorageError::MalformedFile {
        path: path.to_path_buf(),
        line,
        reason: reason.into(),
    }
}

/// The contents of a log directory's `meta.properties`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MetaProperties {
    /// `node.id` (KRaft) or `broker.id` (ZooKeeper-era version 0 files).
    pub node_id: i32,
    /// `cluster.id`, usually a Kafka-encoded UUID but kept as written.
    pub cluster_id: String,
    /// `directory.id` (Kafka 3.7+); absent in older files.
    pub directory_id: Option<Uuid>,
}

impl MetaProperties {
    /// Reads `<log dir>/meta.properties`; `Ok(None)` when the directory has none yet.
    /// Accepts KRaft (`version=1`, `node.id`) and ZooKeeper-era (`version=0`,
    /// `broker.id`) files; unknown keys are ignored.
    pub fn read(log_dir: &Path) -> Result<Option<MetaProperties>, StorageError> {
        let path = log_dir.join(META_PROPERTIES_FILE);
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(error) => return Err(StorageError::io("read", &path, error)),
        };
        let mut node_id = None;
        let mut cluster_id = None;
        let mut directory_id = None;
        let mut version = None;
        for (number, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') || line.starts_with('!') {
                continue;
            }
            let Some((key, value)) = line.split_once(['=', ':']) else {
                return Err(malformed(&path, number + 1, "expected key=value"));
            };
            let (key, value) = (key.trim(), value.trim());
            match key {
                "version" => {
                    version = Some(
                        value
                            .parse::<u32>()
                            .map_err(|_| malformed(&path, number + 1, "bad version"))?,
                    )
                }
                "node.id" | "broker.id" => {
                    node_id = Some(
                        value
                            .parse::<i32>()
                            .map_err(|_| malformed(&path, number + 1, "bad node id"))?,
                    );
                }
                "cluster.id" => cluster_id = Some(value.to_string()),
                "directory.id" => {
                    directory_id = Some(
                        uuid_from_kafka_string(value)
                            .ok_or_else(|| malformed(&path, number + 1, "bad directory.id"))?,
                    );
                }
                _ => {}
            }
        }
        match version {
            Some(0 | 1) => {}
            Some(other) => return Err(malformed(&path, 0, format!("unsupported version {other}"))),
            None => return Err(malformed(&path, 0, "the version key is missing")),
        }
        let node_id =
            node_id.ok_or_else(|| malformed(&path, 0, "neither node.id nor broker.id is set"))?;
        let cluster_id = cluster_id.ok_or_else(|| malformed(&path, 0, "cluster.id is missing"))?;
        Ok(Some(MetaProperties {
            node_id,
            cluster_id,
            directory_id,
        }))
    }

    /// Writes `<log dir>/meta.properties` in KRaft form (version 1) atomically.
    pub fn write(&self, log_dir: &Path) -> Result<(), StorageError> {
        let mut text = String::from("#\n#Written by weir\n");
        text.push_str(&format!("node.id={}\n", self.node_id));
        if let Some(directory_id) = self.directory_id {
            text.push_str(&format!(
                "directory.id={}\n",
                uuid_to_kafka_string(directory_id)
            ));
        }
        text.push_str("version=1\n");
        text.push_str(&format!("cluster.id={}\n", self.cluster_id));
        write_atomically(&log_dir.join(META_PROPERTIES_FILE), text.as_bytes())
    }
}

/// The contents of a partition's `partition.metadata`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PartitionMetadata {
    pub topic_id: Uuid,
}

impl PartitionMetadata {
    /// Reads `<partition dir>/partition.metadata`; `Ok(None)` if absent.
    pub fn read(partition_dir: &Path) -> Result<Option<PartitionMetadata>, StorageError> {
        let path = partition_dir.join(PARTITION_METADATA_FILE);
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(error) => return Err(StorageError::io("read", &path, error)),
        };
        let mut lines = text.lines();
        match lines.next().and_then(|line| line.split_once(':')) {
            Some(("version", version)) if version.trim() == "0" => {}
            _ => return Err(malformed(&path, 1, "expected \"version: 0\"")),
        }
        match lines.next().and_then(|line| line.split_once(':')) {
            Some(("topic_id", topic_id)) => match uuid_from_kafka_string(topic_id) {
                Some(topic_id) => Ok(Some(PartitionMetadata { topic_id })),
                None => Err(malformed(
                    &path,
                    2,
                    format!("bad topic id {:?}", topic_id.trim()),
                )),
            },
            _ => Err(malformed(&path, 2, "expected \"topic_id: <id>\"")),
        }
    }

    /// Writes `<partition dir>/partition.metadata` atomically.
    pub fn write(&self, partition_dir: &Path) -> Result<(), StorageError> {
        let text = format!(
            "version: 0\ntopic_id: {}\n",
            uuid_to_kafka_string(self.topic_id)
        );
        write_atomically(
            &partition_dir.join(PARTITION_METADATA_FILE),
            text.as_bytes(),
        )
    }
}

/// Splits a partition directory name `<topic>-<partition>` at its last '-'. Topic names
/// may contain '-'. Returns `None` for anything else (Kafka's `-delete`/`-future`/`-stray`
/// directories included).
pub fn parse_partition_dir_name(name: &str) -> Option<(String, i32)> {
    let (topic, partition) = name.rsplit_once('-')?;
    if topic.is_empty()
        || partition.is_empty()
        || !partition.bytes().all(|byte| byte.is_ascii_digit())
    {
        return None;
    }
    let partition: i32 = partition.parse().ok()?;
    Some((topic.to_string(), partition))
}

/// The directory name of a partition.
pub fn partition_dir_name(topic: &str, partition: i32) -> String {
    format!("{topic}-{partition}")
}

/// Marks `log_dir` as cleanly shut down (create, fsync, fsync dir).
pub fn write_clean_shutdown_marker(log_dir: &Path) -> Result<(), StorageError> {
    write_atomically(&log_dir.join(CLEAN_SHUTDOWN_MARKER_FILE), b"")
}

/// Whether `log_dir` was cleanly shut down.
pub fn has_clean_shutdown_marker(log_dir: &Path) -> bool {
    log_dir.join(CLEAN_SHUTDOWN_MARKER_FILE).exists()
}

/// Removes the marker (at start-up, before writing anything) and syncs the directory.
pub fn remove_clean_shutdown_marker(log_dir: &Path) -> Result<(), StorageError> {
    let path = log_dir.join(CLEAN_SHUTDOWN_MARKER_FILE);
    match std::fs::remove_file(&path) {
        Ok(()) => sync_dir(log_dir),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(error) => Err(StorageError::io("remove", &path, error)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuids_use_kafkas_base64url_encoding() {
        let uuid = Uuid::from_u128(0x0123_4567_89ab_cdef_fedc_ba98_7654_3210);
        let text = uuid_to_kafka_string(uuid);
        assert_eq!(text, "ASNFZ4mrze_-3LqYdlQyEA");
        assert_eq!(text.len(), 22);
        assert_eq!(uuid_from_kafka_string(&text), Some(uuid));
        assert_eq!(uuid_from_kafka_string("not-a-uuid"), None);
    }

    #[test]
    fn meta_properties_round_trip_and_accept_kafka_files() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert_eq!(MetaProperties::read(dir.path()).expect("read"), None);
        let meta = MetaProperties {
            node_id: 3,
            cluster_id: "MkU3OEVBNTcwNTJENDM2Qg".to_string(),
            directory_id: Some(Uuid::from_u128(7)),
        };
        meta.write(dir.path()).expect("write");
        let text = std::fs::read_to_string(dir.path().join(META_PROPERTIES_FILE)).expect("read");
        assert!(text.starts_with('#'));
        assert!(
            text.contains("node.id=3\n")
                && text.contains("version=1\n")
                && text.contains("cluster.id=MkU3OEVBNTcwNTJENDM2Qg\n")
        );
        assert_eq!(MetaProperties::read(dir.path()).expect("read"), Some(meta));

        // A ZooKeeper-era Kafka file.
        std::fs::write(
            dir.path().join(META_PROPERTIES_FILE),
            "#\n#Tue Mar 05 10:00:00 UTC 2024\nbroker.id=0\nversion=0\ncluster.id=abc\n",
        )
        .expect("write");
        let meta = MetaProperties::read(dir.path())
            .expect("read")
            .expect("present");
        assert_eq!(
            (meta.node_id, meta.cluster_id.as_str(), meta.directory_id),
            (0, "abc", None)
        );

        std::fs::write(
            dir.path().join(META_PROPERTIES_FILE),
            "version=1\ncluster.id=abc\n",
        )
        .expect("write");
        assert!(MetaProperties::read(dir.path()).is_err());
    }

    #[test]
    fn partition_metadata_round_trips() {
        let dir = tempfile::tempdir().expect("tempdir");
        let metadata = PartitionMetadata {
            topic_id: Uuid::from_u128(0x0123_4567_89ab_cdef_fedc_ba98_7654_3210),
        };
        metadata.write(dir.path()).expect("write");
        assert_eq!(
            std::fs::read_to_string(dir.path().join(PARTITION_METADATA_FILE)).expect("read"),
            "version: 0\ntopic_id: ASNFZ4mrze_-3LqYdlQyEA\n"
        );
        assert_eq!(
            PartitionMetadata::read(dir.path()).expect("read"),
            Some(metadata)
        );
    }

    #[test]
    fn partition_dir_names_split_at_the_last_dash() {
        assert_eq!(
            parse_partition_dir_name("my-topic-3"),
            Some(("my-topic".to_string(), 3))
        );
        assert_eq!(
            parse_partition_dir_name("__consumer_offsets-49"),
            Some(("__consumer_offsets".to_string(), 49))
        );
        assert_eq!(parse_partition_dir_name("t-0.6a9b-delete"), None);
        assert_eq!(parse_partition_dir_name("-3"), None);
        assert_eq!(parse_partition_dir_name("topic-"), None);
        assert_eq!(parse_partition_dir_name("topic-+1"), None);
        assert_eq!(partition_dir_name("my-topic", 3), "my-topic-3");
    }

    #[test]
    fn clean_shutdown_marker_is_written_checked_and_removed() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert!(!has_clean_shutdown_marker(dir.path()));
        write_clean_shutdown_marker(dir.path()).expect("write");
        assert!(has_clean_shutdown_marker(dir.path()));
        remove_clean_shutdown_marker(dir.path()).expect("remove");
        assert!(!has_clean_shutdown_marker(dir.path()));
        remove_clean_shutdown_marker(dir.path()).expect("removing twice is fine");
    }
}
