//! The broker's own configuration: known keys, defaults, parsing and validation.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use thiserror::Error;
use weir_storage::SegmentWrites;
use weir_storage::log::LogConfig;

use super::cluster::ClusterSettings;
use super::cores::{ShardCores, parse_shard_cores};
use super::properties;

/// Where a config value came from, with Kafka's DescribeConfigs source codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigSource {
    /// Set at runtime for this broker (AlterConfigs on resource `<node id>`;
    /// DYNAMIC_BROKER_CONFIG = 2).
    DynamicBroker,
    /// Set at runtime for every broker (AlterConfigs on resource `""`;
    /// DYNAMIC_DEFAULT_BROKER_CONFIG = 3).
    DynamicDefaultBroker,
    /// Set in the properties file, the environment or a flag (STATIC_BROKER_CONFIG = 4).
    Static,
    /// Kafka's built-in default (DEFAULT_CONFIG = 5).
    Default,
}

impl ConfigSource {
    /// Kafka's numeric config source.
    pub fn code(self) -> i8 {
        match self {
            ConfigSource::DynamicBroker => 2,
            ConfigSource::DynamicDefaultBroker => 3,
            ConfigSource::Static => 4,
            ConfigSource::Default => 5,
        }
    }
}

/// Configuration errors: each names the key and what is wrong with it.
#[derive(Debug, Error)]
pub enum ConfigError {
    #[error("could not read config file {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid value '{value}' for {key}: {reason}")]
    Invalid {
        key: String,
        value: String,
        reason: String,
    },
    #[error("--override expects key=value, got '{0}'")]
    BadOverride(String),
}

/// Keys weir understands, with Kafka's defaults. `None` means "no default" (unset).
const KNOWN_KEYS: &[(&str, Option<&str>)] = &[
    ("node.id", Some("0")),
    ("broker.id", None),
    ("log.dirs", Some("./weir-data")),
    ("log.dir", None),
    ("listeners", Some("PLAINTEXT://127.0.0.1:9092")),
    ("advertised.listeners", None),
    ("num.partitions", Some("1")),
    ("broker.rack", None),
    ("metadata.log.dir", None),
    ("default.replication.factor", Some("1")),
    ("auto.create.topics.enable", Some("true")),
    ("log.segment.bytes", Some("1073741824")),
    ("log.roll.ms", None),
    ("log.roll.hours", Some("168")),
    ("log.index.interval.bytes", Some("4096")),
    ("log.index.size.max.bytes", Some("10485760")),
    ("message.max.bytes", Some("1048588")),
    ("socket.request.max.bytes", Some("104857600")),
    // Kafka's default is 102400 for both; weir leaves the buffers to the kernel's
    // autotuning unless they are set (a fixed 100 KiB caps a fast consumer's fetches).
    ("socket.send.buffer.bytes", Some("-1")),
    ("socket.receive.buffer.bytes", Some("-1")),
    ("log.flush.interval.messages", Some("9223372036854775807")),
    ("log.flush.interval.ms", None),
    ("log.flush.offset.checkpoint.interval.ms", Some("60000")),
    ("log.message.timestamp.type", Some("CreateTime")),
    ("log.retention.hours", Some("168")),
    ("log.retention.minutes", None),
    ("log.retention.ms", None),
    ("log.retention.bytes", Some("-1")),
    ("log.retention.check.interval.ms", Some("300000")),
    ("log.cleanup.policy", Some("delete")),
    ("log.cleaner.delete.retention.ms", Some("86400000")),
    ("log.cleaner.min.compaction.lag.ms", Some("0")),
    (
        "log.cleaner.max.compaction.lag.ms",
        Some("9223372036854775807"),
    ),
    ("log.cleaner.min.cleanable.ratio", Some("0.5")),
    ("log.cleaner.backoff.ms", Some("15000")),
    ("log.cleaner.enable", Some("true")),
    (
        "log.cleaner.io.max.bytes.per.second",
        Some("1.7976931348623157E308"),
    ),
    ("log.cleaner.dedupe.buffer.size", Some("134217728")),
    ("weir.log.dir.min.free.bytes", Some("536870912")),
    ("weir.fetch.zero.copy", Some("true")),
    ("weir.log.segment.writes", Some("auto")),
    ("weir.shard.cores", Some("all")),
    ("log.segment.delete.delay.ms", Some("60000")),
    ("min.insync.replicas", Some("1")),
    ("compression.type", Some("producer")),
    ("unclean.leader.election.enable", Some("false")),
    ("cluster.id", None),
    ("offsets.topic.num.partitions", Some("50")),
    ("offsets.topic.segment.bytes", Some("104857600")),
    ("offsets.retention.minutes", Some("10080")),
    ("offsets.retention.check.interval.ms", Some("600000")),
    ("offset.metadata.max.bytes", Some("4096")),
    ("group.initial.rebalance.delay.ms", Some("3000")),
    ("group.min.session.timeout.ms", Some("6000")),
    ("group.max.session.timeout.ms", Some("1800000")),
    ("group.max.size", Some("2147483647")),
    ("producer.id.expiration.ms", Some("86400000")),
    ("producer.id.expiration.check.interval.ms", Some("600000")),
];

/// Every key weir understands: the broker's and the cluster's.
fn known_keys() -> impl Iterator<Item = &'static (&'static str, Option<&'static str>)> {
    KNOWN_KEYS.iter().chain(super::cluster::CLUSTER_KEYS)
}

/// Kafka keys accepted for compatibility that have no effect in weir yet (or ever:
/// thread-pool sizes mean nothing in a thread-per-core broker).
const ACCEPTED_WITHOUT_EFFECT: &[&str] = &[
    "num.network.threads",
    "num.io.threads",
    "num.recovery.threads.per.data.dir",
    "offsets.topic.replication.factor",
    "transaction.state.log.replication.factor",
    "transaction.state.log.min.isr",
    "controller.quorum.bootstrap.servers",
    "inter.broker.listener.name",
    "listener.security.protocol.map",
    "num.replica.fetchers",
    // One cleaner runs per shard: the shard count is the cleaner thread count.
    "log.cleaner.threads",
];

/// `WEIR_*` variables that tools and tests use and that are not config keys:
/// `WEIR_LOG` (log filter), `WEIR_BIN` (binary under test), `WEIR_SKIP_RUST` (tests/run).
const NON_CONFIG_VARIABLES: &[&str] = &["LOG", "BIN", "SKIP_RUST"];

/// Consumer-group and committed-offset settings (Kafka's key names in comments).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupSettings {
    /// offsets.topic.num.partitions
    pub offsets_topic_partitions: i32,
    /// offsets.topic.segment.bytes
    pub offsets_topic_segment_bytes: i64,
    /// offsets.retention.minutes, in ms
    pub offsets_retention_ms: i64,
    /// offsets.retention.check.interval.ms
    pub offsets_retention_check_interval_ms: i64,
    /// offset.metadata.max.bytes
    pub offset_metadata_bytes_max: usize,
    /// group.initial.rebalance.delay.ms
    pub initial_rebalance_delay_ms: i64,
    /// group.min.session.timeout.ms
    pub session_timeout_ms_min: i64,
    /// group.max.session.timeout.ms
    pub session_timeout_ms_max: i64,
    /// group.max.size
    pub group_size_max: i64,
}

/// Retention, log cleaner and disk-space settings (Kafka's key names in comments).
#[derive(Debug, Clone, PartialEq)]
pub struct LogMaintenanceSettings {
    /// log.retention.check.interval.ms
    pub retention_check_interval_ms: u64,
    /// log.cleaner.enable
    pub cleaner_enable: bool,
    /// log.cleaner.backoff.ms: sleep when no log needs cleaning.
    pub cleaner_backoff_ms: u64,
    /// log.cleaner.io.max.bytes.per.second: each shard's cleaner reads and writes at
    /// most this many bytes per second.
    pub cleaner_io_bytes_per_second_max: f64,
    /// log.cleaner.dedupe.buffer.size: memory for the key → offset map of one cleaning,
    /// shared by the shards' cleaners.
    pub cleaner_dedupe_buffer_bytes: u64,
    /// weir.log.dir.min.free.bytes: below this much free space in a log dir, produce to
    /// it fails with KAFKA_STORAGE_ERROR until space returns.
    pub log_dir_free_bytes_min: u64,
}

/// The broker's configuration after merging every source.
#[derive(Debug, Clone)]
pub struct BrokerConfig {
    pub node_id: i32,
    /// process.roles, the controller quorum and replication timings.
    pub cluster: ClusterSettings,
    pub log_dirs: Vec<PathBuf>,
    pub listen_address: SocketAddr,
    pub advertised_host: String,
    pub advertised_port: i32,
    /// metadata.log.dir: the metadata quorum's directory holds `weir-quorum/`.
    pub metadata_log_dir: PathBuf,
    /// broker.rack: replicas of a partition spread over racks.
    pub broker_rack: Option<String>,
    pub num_partitions: i32,
    pub default_replication_factor: i16,
    pub auto_create_topics_enable: bool,
    /// weir.fetch.zero.copy: Fetch sends record bytes from the segment files with
    /// `sendfile` (true) or reads them into the response first (false, for comparison).
    pub fetch_zero_copy: bool,
    /// weir.log.segment.writes: `io_uring` or `pwrite` (see `SegmentWrites`); `auto`
    /// (None) picks by probing the log dirs at start (`resolve_segment_writes`).
    pub segment_writes: Option<SegmentWrites>,
    /// weir.shard.cores: which cores the shards are pinned to.
    pub shard_cores: ShardCores,
    pub socket_request_max_bytes: usize,
    /// socket.send.buffer.bytes / socket.receive.buffer.bytes: `SO_SNDBUF` / `SO_RCVBUF`
    /// of the listening socket (accepted connections inherit them); None (-1) leaves
    /// them to the kernel.
    pub socket_send_buffer_bytes: Option<usize>,
    pub socket_receive_buffer_bytes: Option<usize>,
    pub checkpoint_interval_ms: u64,
    /// Log settings every topic starts from (topic configs override them).
    pub log_defaults: LogConfig,
    /// Consumer-group and committed-offset settings.
    pub groups: GroupSettings,
    /// `producer.id.expiration.check.interval.ms`: how often idle producers are dropped.
    pub producer_id_expiration_check_interval_ms: u64,
    /// Retention, cleaner and disk-space settings.
    pub maintenance: LogMaintenanceSettings,
    /// Every known key with its effective value and source (for DescribeConfigs).
    values: BTreeMap<String, (String, ConfigSource)>,
    /// The keys set in the file, environment and flags, for re-merging with dynamic
    /// configs (`with_dynamic`).
    static_set: BTreeMap<String, String>,
    /// The dynamic layers this config was built with: every broker (`""`), this node.
    dynamic_cluster: BTreeMap<String, String>,
    dynamic_node: BTreeMap<String, String>,
    /// Human-readable notes on unknown or ignored keys, logged at start-up.
    pub warnings: Vec<String>,
}

impl BrokerConfig {
    /// Builds the configuration from an optional properties file, `WEIR_*` variables
    /// (passed in so tests need not touch the process environment) and overrides.
    pub fn load(
        file: Option<&Path>,
        environment: impl IntoIterator<Item = (String, String)>,
        overrides: &[String],
    ) -> Result<BrokerConfig, ConfigError> {
        let mut set: BTreeMap<String, String> = BTreeMap::new();
        if let Some(path) = file {
            let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                path: path.to_path_buf(),
                source,
            })?;
            set.extend(properties::parse(&text));
        }
        for (name, value) in environment {
            if let Some(rest) = name.strip_prefix("WEIR_") {
                if NON_CONFIG_VARIABLES.contains(&rest) {
                    continue;
                }
                set.insert(rest.to_ascii_lowercase().replace('_', "."), value);
            }
        }
        for item in overrides {
            let (key, value) = item
                .split_once('=')
                .ok_or_else(|| ConfigError::BadOverride(item.clone()))?;
            set.insert(key.trim().to_string(), value.trim().to_string());
        }
        Self::from_layers(set, &BTreeMap::new(), &BTreeMap::new())
    }

    /// This configuration with dynamic values applied: `cluster` (resource `""`) over
    /// the static keys, `node` (resource `<node id>`) over both, as Kafka layers them.
    pub fn with_dynamic(
        &self,
        cluster: &BTreeMap<String, String>,
        node: &BTreeMap<String, String>,
    ) -> Result<BrokerConfig, ConfigError> {
        let mut config = Self::from_layers(self.static_set.clone(), cluster, node)?;
        // Resolved once at start (a static key).
        config.log_defaults.segment_writes = self.log_defaults.segment_writes;
        Ok(config)
    }

    /// Settles `weir.log.segment.writes` for the log dirs, which must exist: the
    /// configured mode, or for `auto` `pwrite` when every log dir's filesystem would
    /// hand each io_uring buffered write to a worker thread
    /// (`buffered_writes_wait_for_worker`), else `io_uring`.
    pub fn resolve_segment_writes(&mut self) -> std::io::Result<SegmentWrites> {
        let writes = match self.segment_writes {
            Some(writes) => writes,
            None => auto_segment_writes(&self.log_dirs)?,
        };
        self.log_defaults.segment_writes = writes;
        Ok(writes)
    }

    fn from_layers(
        static_set: BTreeMap<String, String>,
        cluster: &BTreeMap<String, String>,
        node: &BTreeMap<String, String>,
    ) -> Result<BrokerConfig, ConfigError> {
        let mut set = static_set.clone();
        set.extend(
            cluster
                .iter()
                .map(|(key, value)| (key.clone(), value.clone())),
        );
        set.extend(node.iter().map(|(key, value)| (key.clone(), value.clone())));
        let source_of = |key: &str| {
            if node.contains_key(key) {
                ConfigSource::DynamicBroker
            } else if cluster.contains_key(key) {
                ConfigSource::DynamicDefaultBroker
            } else {
                ConfigSource::Static
            }
        };
        let mut warnings = Vec::new();
        for key in set.keys() {
            if key == "zookeeper.connect" || key.starts_with("zookeeper.") {
                warnings.push(format!(
                    "{key} is not needed: weir keeps its metadata itself and never talks to ZooKeeper; remove it"
                ));
            } else if ACCEPTED_WITHOUT_EFFECT.contains(&key.as_str()) {
                warnings.push(format!(
                    "{key} is accepted for compatibility and has no effect in weir"
                ));
            } else if !known_keys().any(|(known, _)| known == key) {
                warnings.push(format!("unknown config key '{key}' is ignored"));
            }
        }
        let mut values = BTreeMap::new();
        for (key, default) in known_keys() {
            if let Some(value) = set.get(*key) {
                values.insert(key.to_string(), (value.clone(), source_of(key)));
            } else if let Some(default) = default {
                values.insert(
                    key.to_string(),
                    (default.to_string(), ConfigSource::Default),
                );
            }
        }
        let get = |key: &str| values.get(key).map(|(value, _)| value.as_str());
        let node_id = match (set.get("node.id"), set.get("broker.id")) {
            (Some(value), _) | (None, Some(value)) => parse_number::<i32>("node.id", value)?,
            (None, None) => 0,
        };
        if node_id < 0 {
            return Err(invalid(
                "node.id",
                &node_id.to_string(),
                "must be 0 or more",
            ));
        }
        let log_dirs_value = set
            .get("log.dirs")
            .or(set.get("log.dir"))
            .map(String::as_str)
            .unwrap_or("./weir-data");
        let log_dirs: Vec<PathBuf> = log_dirs_value
            .split(',')
            .map(str::trim)
            .filter(|dir| !dir.is_empty())
            .map(PathBuf::from)
            .collect();
        if log_dirs.is_empty() {
            return Err(invalid(
                "log.dirs",
                log_dirs_value,
                "needs at least one directory",
            ));
        }
        // Kafka's metadata.log.dir: where the metadata quorum's log lives (default: the
        // first log dir). Kept apart, the partition data can be lost or wiped while the
        // node stays a sound quorum voter.
        let metadata_log_dir = get("metadata.log.dir")
            .map(str::trim)
            .filter(|dir| !dir.is_empty())
            .map(PathBuf::from)
            .unwrap_or_else(|| log_dirs[0].clone());
        let listeners = get("listeners").expect("listeners has a default");
        let (listen_host, listen_port) = parse_listener("listeners", listeners)?;
        let listen_address: SocketAddr = format!("{}:{listen_port}", bind_host(&listen_host))
            .parse()
            .map_err(|_| {
                invalid(
                    "listeners",
                    listeners,
                    "host must be an IP address or localhost",
                )
            })?;
        let (advertised_host, advertised_port) = match get("advertised.listeners") {
            Some(value) => parse_listener("advertised.listeners", value)?,
            None if listen_host.is_empty() || listen_host == "0.0.0.0" || listen_host == "::" => {
                ("127.0.0.1".to_string(), listen_port)
            }
            None => (listen_host.clone(), listen_port),
        };
        let number_i64 = |key: &str| -> Result<i64, ConfigError> {
            parse_number::<i64>(key, get(key).expect("key has a default"))
        };
        let num_partitions =
            parse_number::<i32>("num.partitions", get("num.partitions").expect("default"))?;
        if num_partitions < 1 {
            return Err(invalid(
                "num.partitions",
                &num_partitions.to_string(),
                "must be at least 1",
            ));
        }
        let default_replication_factor = parse_number::<i16>(
            "default.replication.factor",
            get("default.replication.factor").expect("default"),
        )?;
        if default_replication_factor < 1 {
            return Err(invalid(
                "default.replication.factor",
                &default_replication_factor.to_string(),
                "must be at least 1",
            ));
        }
        let auto_create = parse_bool(
            "auto.create.topics.enable",
            get("auto.create.topics.enable").expect("default"),
        )?;
        let segment_bytes = number_i64("log.segment.bytes")?;
        if segment_bytes < 14 || segment_bytes > i32::MAX as i64 {
            return Err(invalid(
                "log.segment.bytes",
                &segment_bytes.to_string(),
                "must be between 14 and 2147483647",
            ));
        }
        let roll_ms = match get("log.roll.ms") {
            Some(value) => parse_number::<i64>("log.roll.ms", value)?,
            None => number_i64("log.roll.hours")? * 3_600_000,
        };
        let index_interval_bytes = number_i64("log.index.interval.bytes")?;
        let index_size_bytes = number_i64("log.index.size.max.bytes")?;
        let max_message_bytes = number_i64("message.max.bytes")?;
        let socket_request_max_bytes = number_i64("socket.request.max.bytes")?;
        let socket_buffer_bytes = |key: &str| -> Result<Option<usize>, ConfigError> {
            match number_i64(key)? {
                -1 => Ok(None),
                bytes if bytes >= 1 && bytes <= i32::MAX as i64 => Ok(Some(bytes as usize)),
                bytes => Err(invalid(
                    key,
                    &bytes.to_string(),
                    "must be -1 (the kernel's default) or between 1 and 2147483647",
                )),
            }
        };
        let flush_messages = number_i64("log.flush.interval.messages")?;
        let flush_interval_ms = get("log.flush.interval.ms")
            .map(|value| parse_number::<i64>("log.flush.interval.ms", value))
            .transpose()?;
        let timestamp_type = get("log.message.timestamp.type").expect("default");
        if timestamp_type != "CreateTime" && timestamp_type != "LogAppendTime" {
            return Err(invalid(
                "log.message.timestamp.type",
                timestamp_type,
                "must be CreateTime or LogAppendTime",
            ));
        }
        for (key, value) in [
            ("log.index.interval.bytes", index_interval_bytes),
            ("message.max.bytes", max_message_bytes),
            ("socket.request.max.bytes", socket_request_max_bytes),
            ("log.flush.interval.messages", flush_messages),
            ("log.roll.ms", roll_ms),
            ("log.index.size.max.bytes", index_size_bytes),
            (
                "producer.id.expiration.ms",
                number_i64("producer.id.expiration.ms")?,
            ),
            (
                "producer.id.expiration.check.interval.ms",
                number_i64("producer.id.expiration.check.interval.ms")?,
            ),
        ] {
            if value < 1 {
                return Err(invalid(key, &value.to_string(), "must be positive"));
            }
        }
        let segment_writes =
            parse_segment_writes(get("weir.log.segment.writes").expect("default"))?;
        let log_defaults = LogConfig {
            segment_bytes: segment_bytes as u64,
            segment_ms: roll_ms as u64,
            index_interval_bytes: index_interval_bytes.min(i32::MAX as i64) as u32,
            segment_index_bytes: index_size_bytes.min(i32::MAX as i64) as u32,
            max_message_bytes: max_message_bytes.min(i32::MAX as i64) as u32,
            flush_interval_messages: flush_messages as u64,
            flush_interval_ms: flush_interval_ms.map(|ms| ms.max(1) as u64),
            log_append_time: timestamp_type == "LogAppendTime",
            producer_id_expiration_ms: number_i64("producer.id.expiration.ms")?,
            // Until `resolve_segment_writes` settles `auto`.
            segment_writes: segment_writes.unwrap_or(SegmentWrites::IoUring),
            // Retention and cleaner keys: `apply_topic_defaults`.
            ..LogConfig::default()
        };
        let producer_id_expiration_check_interval_ms =
            number_i64("producer.id.expiration.check.interval.ms")?;
        let groups = GroupSettings {
            offsets_topic_partitions: parse_number::<i32>(
                "offsets.topic.num.partitions",
                get("offsets.topic.num.partitions").expect("default"),
            )?,
            offsets_topic_segment_bytes: number_i64("offsets.topic.segment.bytes")?,
            offsets_retention_ms: number_i64("offsets.retention.minutes")?.saturating_mul(60_000),
            offsets_retention_check_interval_ms: number_i64("offsets.retention.check.interval.ms")?,
            offset_metadata_bytes_max: number_i64("offset.metadata.max.bytes")?
                .clamp(0, i32::MAX as i64) as usize,
            initial_rebalance_delay_ms: number_i64("group.initial.rebalance.delay.ms")?,
            session_timeout_ms_min: number_i64("group.min.session.timeout.ms")?,
            session_timeout_ms_max: number_i64("group.max.session.timeout.ms")?,
            group_size_max: number_i64("group.max.size")?,
        };
        for (key, value) in [
            (
                "offsets.topic.num.partitions",
                groups.offsets_topic_partitions as i64,
            ),
            (
                "offsets.topic.segment.bytes",
                groups.offsets_topic_segment_bytes,
            ),
            (
                "offsets.retention.check.interval.ms",
                groups.offsets_retention_check_interval_ms,
            ),
            (
                "group.min.session.timeout.ms",
                groups.session_timeout_ms_min,
            ),
            ("group.max.size", groups.group_size_max),
        ] {
            if value < 1 {
                return Err(invalid(key, &value.to_string(), "must be positive"));
            }
        }
        if groups.initial_rebalance_delay_ms < 0 {
            return Err(invalid(
                "group.initial.rebalance.delay.ms",
                &groups.initial_rebalance_delay_ms.to_string(),
                "must be 0 or more",
            ));
        }
        if groups.session_timeout_ms_max < groups.session_timeout_ms_min {
            return Err(invalid(
                "group.max.session.timeout.ms",
                &groups.session_timeout_ms_max.to_string(),
                "must not be below group.min.session.timeout.ms",
            ));
        }
        let maintenance = LogMaintenanceSettings {
            retention_check_interval_ms: number_i64("log.retention.check.interval.ms")?.max(1)
                as u64,
            cleaner_enable: parse_bool(
                "log.cleaner.enable",
                get("log.cleaner.enable").expect("default"),
            )?,
            cleaner_backoff_ms: number_i64("log.cleaner.backoff.ms")?.max(1) as u64,
            cleaner_io_bytes_per_second_max: parse_number::<f64>(
                "log.cleaner.io.max.bytes.per.second",
                get("log.cleaner.io.max.bytes.per.second").expect("default"),
            )?,
            cleaner_dedupe_buffer_bytes: number_i64("log.cleaner.dedupe.buffer.size")?.max(0)
                as u64,
            log_dir_free_bytes_min: number_i64("weir.log.dir.min.free.bytes")?.max(0) as u64,
        };
        if maintenance.cleaner_io_bytes_per_second_max <= 0.0 {
            return Err(invalid(
                "log.cleaner.io.max.bytes.per.second",
                get("log.cleaner.io.max.bytes.per.second").expect("default"),
                "must be positive",
            ));
        }
        let cluster_settings =
            ClusterSettings::parse(&|key| get(key).map(str::to_string), node_id)?;
        Ok(BrokerConfig {
            node_id,
            cluster: cluster_settings,
            log_dirs,
            listen_address,
            advertised_host,
            advertised_port: listen_port as i32,
            metadata_log_dir,
            broker_rack: get("broker.rack")
                .map(str::trim)
                .filter(|rack| !rack.is_empty())
                .map(str::to_string),
            num_partitions,
            default_replication_factor,
            auto_create_topics_enable: auto_create,
            fetch_zero_copy: parse_bool(
                "weir.fetch.zero.copy",
                get("weir.fetch.zero.copy").expect("default"),
            )?,
            segment_writes,
            shard_cores: parse_shard_cores(get("weir.shard.cores").expect("default"))?,
            socket_request_max_bytes: socket_request_max_bytes.min(i32::MAX as i64) as usize,
            socket_send_buffer_bytes: socket_buffer_bytes("socket.send.buffer.bytes")?,
            socket_receive_buffer_bytes: socket_buffer_bytes("socket.receive.buffer.bytes")?,
            checkpoint_interval_ms: number_i64("log.flush.offset.checkpoint.interval.ms")?.max(100)
                as u64,
            log_defaults,
            groups,
            producer_id_expiration_check_interval_ms: producer_id_expiration_check_interval_ms
                as u64,
            maintenance,
            values,
            static_set,
            dynamic_cluster: cluster.clone(),
            dynamic_node: node.clone(),
            warnings,
        })
        .and_then(|mut config| {
            config.advertised_port = advertised_port as i32;
            config.apply_topic_defaults()?;
            Ok(config)
        })
    }

    /// Folds the broker keys behind topic configs (`log.retention.hours`,
    /// `log.cleanup.policy`, ...) into `log_defaults`, checking each against the topic
    /// key's rules so a bad broker value is refused at start-up (or at AlterConfigs).
    fn apply_topic_defaults(&mut self) -> Result<(), ConfigError> {
        for key in super::TOPIC_CONFIG_KEYS {
            let (mut value, broker_key) = self.topic_default(key);
            let Some((broker_key, _)) = broker_key else {
                continue;
            };
            if key.name == "retention.ms" && value.parse::<i64>().is_ok_and(|ms| ms < 0) {
                value = "-1".to_string(); // Kafka: any negative retention means "no limit".
            }
            super::topic::validate(key.name, &value)
                .map_err(|reason| invalid(broker_key, &value, &reason))?;
            super::topic::apply(&mut self.log_defaults, key.name, &value);
        }
        super::topic::validate_together(&self.log_defaults)
            .map_err(|reason| invalid("log.cleaner.min.compaction.lag.ms", "", &reason))
    }

    /// The effective value and source of a broker key, if weir knows it.
    pub fn value(&self, key: &str) -> Option<(&str, ConfigSource)> {
        self.values
            .get(key)
            .map(|(value, source)| (value.as_str(), *source))
    }

    /// Every known broker key with its effective value and source.
    pub fn values(&self) -> impl Iterator<Item = (&str, &str, ConfigSource)> {
        self.values
            .iter()
            .map(|(key, (value, source))| (key.as_str(), value.as_str(), *source))
    }

    /// Kafka's default for broker key `key`, if it has one.
    pub fn default_value(key: &str) -> Option<&'static str> {
        known_keys()
            .find(|(known, _)| *known == key)
            .and_then(|(_, default)| *default)
    }

    /// The value set for every broker at runtime (resource `""`), if any.
    pub fn cluster_dynamic_value(&self, key: &str) -> Option<&str> {
        self.dynamic_cluster.get(key).map(String::as_str)
    }

    /// Every layer that gives broker key `key` a value, most specific first: this node's
    /// dynamic value, the cluster-wide dynamic value, the static value, Kafka's default.
    pub fn layers(&self, key: &str) -> Vec<(String, ConfigSource)> {
        let default = Self::default_value(key);
        [
            (
                self.dynamic_node.get(key).cloned(),
                ConfigSource::DynamicBroker,
            ),
            (
                self.dynamic_cluster.get(key).cloned(),
                ConfigSource::DynamicDefaultBroker,
            ),
            (self.static_set.get(key).cloned(), ConfigSource::Static),
            (default.map(str::to_string), ConfigSource::Default),
        ]
        .into_iter()
        .filter_map(|(value, source)| value.map(|value| (value, source)))
        .collect()
    }

    /// Every broker key behind a topic config, with every layer that sets it, most
    /// specific first, values as written (`log.retention.hours=168`), as Kafka lists
    /// synonyms.
    pub fn topic_synonyms(
        &self,
        key: &super::TopicConfigKey,
    ) -> Vec<(&'static str, String, ConfigSource)> {
        key.broker_synonyms
            .iter()
            .flat_map(|synonym| {
                self.layers(synonym)
                    .into_iter()
                    .map(|(value, source)| (*synonym, value, source))
            })
            .collect()
    }

    /// The broker-level value that provides a topic config's default, with its broker key.
    pub fn topic_default(
        &self,
        key: &super::TopicConfigKey,
    ) -> (String, Option<(&'static str, ConfigSource)>) {
        for synonym in key.broker_synonyms {
            if let Some((value, source)) = self.value(synonym) {
                let value = match *synonym {
                    "log.retention.hours" | "log.roll.hours" => value
                        .parse::<i64>()
                        .map(|hours| (hours * 3_600_000).to_string())
                        .unwrap_or(value.into()),
                    "log.retention.minutes" => value
                        .parse::<i64>()
                        .map(|minutes| (minutes * 60_000).to_string())
                        .unwrap_or(value.into()),
                    _ => value.to_string(),
                };
                return (value, Some((synonym, source)));
            }
        }
        (key.default.to_string(), None)
    }
}

pub(super) fn invalid(key: &str, value: &str, reason: &str) -> ConfigError {
    ConfigError::Invalid {
        key: key.to_string(),
        value: value.to_string(),
        reason: reason.to_string(),
    }
}

fn parse_number<T: std::str::FromStr>(key: &str, value: &str) -> Result<T, ConfigError> {
    value
        .trim()
        .parse::<T>()
        .map_err(|_| invalid(key, value, "not a number in range"))
}

fn parse_segment_writes(value: &str) -> Result<Option<SegmentWrites>, ConfigError> {
    match value.trim() {
        "auto" => Ok(None),
        "io_uring" => Ok(Some(SegmentWrites::IoUring)),
        "pwrite" => Ok(Some(SegmentWrites::Pwrite)),
        _ => Err(invalid(
            "weir.log.segment.writes",
            value,
            "must be auto, io_uring or pwrite",
        )),
    }
}

fn parse_bool(key: &str, value: &str) -> Result<bool, ConfigError> {
    match value.trim() {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(invalid(key, value, "must be true or false")),
    }
}

/// Reads the PLAINTEXT entry of a Kafka listener list (`PLAINTEXT://host:port,...`).
fn parse_listener(key: &str, value: &str) -> Result<(String, u16), ConfigError> {
    let mut entries = value
        .split(',')
        .map(str::trim)
        .filter(|entry| !entry.is_empty());
    let entry = entries
        .clone()
        .find(|entry| entry.starts_with("PLAINTEXT://"))
        .or_else(|| entries.next())
        .ok_or_else(|| invalid(key, value, "needs one PLAINTEXT://host:port entry"))?;
    let (name, address) = entry
        .split_once("://")
        .ok_or_else(|| invalid(key, value, "entries look like PLAINTEXT://host:port"))?;
    if name != "PLAINTEXT" {
        return Err(invalid(
            key,
            value,
            "only the PLAINTEXT listener is supported so far",
        ));
    }
    let (host, port) = address
        .rsplit_once(':')
        .ok_or_else(|| invalid(key, value, "the listener needs a port"))?;
    let port = port
        .parse::<u16>()
        .map_err(|_| invalid(key, value, "the port is not a number"))?;
    Ok((host.trim_matches(['[', ']']).to_string(), port))
}

fn bind_host(host: &str) -> String {
    match host {
        "" => "0.0.0.0".to_string(),
        "localhost" => "127.0.0.1".to_string(),
        host if host.contains(':') => format!("[{host}]"),
        host => host.to_string(),
    }
}

#[cfg(test)]
#[path = "broker_tests.rs"]
pub(super) mod tests;

/// `weir.log.segment.writes=auto` for these (existing) log dirs: `pwrite` when every
/// one's filesystem would hand each io_uring buffered write to a worker thread
/// (`buffered_writes_wait_for_worker`), else `io_uring`. `weir tune check` reports it.
pub fn auto_segment_writes(log_dirs: &[PathBuf]) -> std::io::Result<SegmentWrites> {
    let mut all_wait = true;
    for dir in log_dirs {
        all_wait &= weir_storage::buffered_writes_wait_for_worker(dir)?;
    }
    Ok(if all_wait {
        SegmentWrites::Pwrite
    } else {
        SegmentWrites::IoUring
    })
}
