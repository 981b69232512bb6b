//! Broker configuration in Kafka's `server.properties` key names.
//!
//! Precedence, lowest first: embedded defaults < `--config FILE` < `WEIR_*` environment
//! variables (`WEIR_LOG_DIRS` → `log.dirs`) < `--override key=value` flags. Every key a
//! user sets is remembered with its source so DescribeConfigs can report it.

pub mod broker;
pub mod cluster;
pub mod cores;
pub mod dynamic;
pub mod properties;
pub mod topic;

pub use broker::{BrokerConfig, ConfigError, ConfigSource};
pub use cluster::ClusterSettings;
pub use cores::ShardCores;
pub use topic::{TOPIC_CONFIG_KEYS, TopicConfigKey};
