//! Runtime config changes (AlterConfigs, IncrementalAlterConfigs): the operations, the
//! broker keys that may change without a restart, and how a change is checked.
//!
//! A change is computed against the resource's current overrides (a topic's configs,
//! or the dynamic broker configs of resource `""` — every broker — or `"<node id>"`),
//! validated as a whole, and only then handed to the controller to persist and
//! publish. Nothing here does I/O.

use std::collections::BTreeMap;

use kafka_protocol::error::ResponseError;

use super::BrokerConfig;
use super::topic as topic_config;

/// Kafka's resource type codes.
pub const RESOURCE_TOPIC: i8 = 2;
pub const RESOURCE_BROKER: i8 = 4;

/// One operation on one key (IncrementalAlterConfigs' codes 0–3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigOperation {
    Set(String),
    Delete,
    /// Adds list items not already present (list keys only).
    Append(String),
    /// Removes list items (list keys only).
    Subtract(String),
}

impl ConfigOperation {
    /// Decodes IncrementalAlterConfigs' `config_operation` and `value`.
    pub fn from_wire(name: &str, code: i8, value: Option<String>) -> Result<Self, (i16, String)> {
        let needs_value = |value: Option<String>| {
            value.ok_or_else(|| {
                failure(
                    ResponseError::InvalidRequest,
                    format!("Null value not supported for : {name}"),
                )
            })
        };
        match code {
            0 => Ok(ConfigOperation::Set(needs_value(value)?)),
            1 => Ok(ConfigOperation::Delete),
            2 => Ok(ConfigOperation::Append(needs_value(value)?)),
            3 => Ok(ConfigOperation::Subtract(needs_value(value)?)),
            other => Err(failure(
                ResponseError::InvalidRequest,
                format!("Unknown config operation {other} for {name}"),
            )),
        }
    }
}

/// A change to one key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigChange {
    pub name: String,
    pub operation: ConfigOperation,
}

/// What a change applies to.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum ConfigResource {
    Topic(String),
    /// `""` for the cluster-wide default, otherwise a node id.
    Broker(String),
}

/// Broker keys weir lets AlterConfigs change at runtime: Kafka's dynamic cluster-wide
/// log defaults and cleaner settings, plus weir's disk-space floor. Keys read once at
/// start-up (listeners, log dirs, timers' intervals) need a restart, as in Kafka.
pub const DYNAMIC_BROKER_KEYS: &[&str] = &[
    "compression.type",
    "log.cleaner.backoff.ms",
    "log.cleaner.dedupe.buffer.size",
    "log.cleaner.delete.retention.ms",
    "log.cleaner.io.max.bytes.per.second",
    "log.cleaner.max.compaction.lag.ms",
    "log.cleaner.min.cleanable.ratio",
    "log.cleaner.min.compaction.lag.ms",
    "log.cleanup.policy",
    "log.flush.interval.messages",
    "log.flush.interval.ms",
    "log.index.interval.bytes",
    "log.index.size.max.bytes",
    "log.message.timestamp.type",
    "log.retention.bytes",
    "log.retention.hours",
    "log.retention.minutes",
    "log.retention.ms",
    "log.roll.hours",
    "log.roll.ms",
    "log.segment.bytes",
    "log.segment.delete.delay.ms",
    "message.max.bytes",
    "min.insync.replicas",
    "producer.id.expiration.ms",
    "unclean.leader.election.enable",
    "weir.log.dir.min.free.bytes",
];

/// Keys whose value is a comma-separated list (the only ones APPEND/SUBTRACT accept).
const LIST_KEYS: &[&str] = &["cleanup.policy", "log.cleanup.policy"];

fn failure(error: ResponseError, message: impl Into<String>) -> (i16, String) {
    (error.code(), message.into())
}

/// Whether a broker key may be changed at runtime.
pub fn is_dynamic_broker_key(name: &str) -> bool {
    DYNAMIC_BROKER_KEYS.contains(&name)
}

/// Applies `changes` to `current` overrides. `replace` is AlterConfigs' (non-incremental)
/// meaning: the result holds exactly the keys set by this request. `list_default`
/// gives the value APPEND/SUBTRACT start from when the key is not set (Kafka uses the
/// key's default).
pub fn apply_changes(
    current: &BTreeMap<String, String>,
    changes: &[ConfigChange],
    replace: bool,
    list_default: impl Fn(&str) -> String,
) -> Result<BTreeMap<String, String>, (i16, String)> {
    let mut seen = std::collections::BTreeSet::new();
    for change in changes {
        if !seen.insert(change.name.as_str()) {
            return Err(failure(
                ResponseError::InvalidRequest,
                format!("Error due to duplicate config keys: {}", change.name),
            ));
        }
    }
    let mut next = if replace {
        BTreeMap::new()
    } else {
        current.clone()
    };
    for change in changes {
        let name = change.name.clone();
        let list = || -> Result<Vec<String>, (i16, String)> {
            if !LIST_KEYS.contains(&name.as_str()) {
                return Err(failure(
                    ResponseError::InvalidConfig,
                    format!("Config value append is not allowed for config key: {name}"),
                ));
            }
            let value = next
                .get(&name)
                .cloned()
                .unwrap_or_else(|| list_default(&name));
            Ok(split_list(&value))
        };
        match &change.operation {
            ConfigOperation::Set(value) => {
                next.insert(name, value.clone());
            }
            ConfigOperation::Delete => {
                next.remove(&name);
            }
            ConfigOperation::Append(value) => {
                let mut items = list()?;
                for item in split_list(value) {
                    if !items.contains(&item) {
                        items.push(item);
                    }
                }
                next.insert(name, items.join(","));
            }
            ConfigOperation::Subtract(value) => {
                let remove = split_list(value);
                let items: Vec<String> = list()?
                    .into_iter()
                    .filter(|item| !remove.contains(item))
                    .collect();
                next.insert(name, items.join(","));
            }
        }
    }
    Ok(next)
}

fn split_list(value: &str) -> Vec<String> {
    value
        .split(',')
        .map(str::trim)
        .filter(|item| !item.is_empty())
        .map(str::to_string)
        .collect()
}

/// Checks a topic's complete set of overrides against the broker's effective config.
pub fn validate_topic_configs(
    broker: &BrokerConfig,
    configs: &BTreeMap<String, String>,
) -> Result<(), (i16, String)> {
    let mut log = broker.log_defaults.clone();
    for (name, value) in configs {
        topic_config::validate(name, value)
            .map_err(|message| failure(ResponseError::InvalidConfig, message))?;
        topic_config::apply(&mut log, name, value);
    }
    topic_config::validate_together(&log)
        .map_err(|message| failure(ResponseError::InvalidConfig, message))
}

/// Checks new dynamic broker configs: every changed key must be dynamic, and the
/// static config with both layers applied must be valid. Returns that config.
pub fn validate_broker_configs(
    static_config: &BrokerConfig,
    cluster: &BTreeMap<String, String>,
    node: &BTreeMap<String, String>,
) -> Result<BrokerConfig, (i16, String)> {
    let fixed: Vec<&str> = cluster
        .keys()
        .chain(node.keys())
        .map(String::as_str)
        .filter(|name| !is_dynamic_broker_key(name))
        .collect();
    if !fixed.is_empty() {
        return Err(failure(
            ResponseError::InvalidConfig,
            format!(
                "Cannot update these configs dynamically: {} (set them in server.properties and restart)",
                fixed.join(", ")
            ),
        ));
    }
    static_config
        .with_dynamic(cluster, node)
        .map_err(|error| failure(ResponseError::InvalidConfig, error.to_string()))
}

/// The value APPEND/SUBTRACT start from for an unset list key.
pub fn list_default(name: &str) -> String {
    match name {
        "cleanup.policy" => topic_config::find(name)
            .map(|key| key.default.to_string())
            .unwrap_or_default(),
        _ => BrokerConfig::default_value(name)
            .unwrap_or_default()
            .to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(name: &str, value: &str) -> ConfigChange {
        ConfigChange {
            name: name.into(),
            operation: ConfigOperation::Set(value.into()),
        }
    }

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(key, value)| (key.to_string(), value.to_string()))
            .collect()
    }

    #[test]
    fn incremental_changes_keep_other_keys_and_replace_drops_them() {
        let current = map(&[("retention.ms", "1000"), ("segment.bytes", "4096")]);
        let changes = [
            set("retention.ms", "2000"),
            ConfigChange {
                name: "segment.bytes".into(),
                operation: ConfigOperation::Delete,
            },
            set("max.message.bytes", "100"),
        ];
        let next = apply_changes(&current, &changes, false, |_| String::new()).unwrap();
        assert_eq!(
            next,
            map(&[("max.message.bytes", "100"), ("retention.ms", "2000")])
        );
        let replaced =
            apply_changes(&current, &[set("flush.ms", "10")], true, |_| String::new()).unwrap();
        assert_eq!(replaced, map(&[("flush.ms", "10")]));
    }

    #[test]
    fn append_and_subtract_work_on_lists_only() {
        let append = |value: &str| ConfigChange {
            name: "cleanup.policy".into(),
            operation: ConfigOperation::Append(value.into()),
        };
        let next = apply_changes(&BTreeMap::new(), &[append("compact")], false, |_| {
            "delete".into()
        })
        .unwrap();
        assert_eq!(next["cleanup.policy"], "delete,compact");
        let subtract = ConfigChange {
            name: "cleanup.policy".into(),
            operation: ConfigOperation::Subtract("delete".into()),
        };
        let next = apply_changes(&next, &[subtract], false, |_| String::new()).unwrap();
        assert_eq!(next["cleanup.policy"], "compact");
        let wrong = ConfigChange {
            name: "retention.ms".into(),
            operation: ConfigOperation::Append("5".into()),
        };
        let (code, _) = apply_changes(&next, &[wrong], false, |_| String::new()).unwrap_err();
        assert_eq!(code, ResponseError::InvalidConfig.code());
    }

    #[test]
    fn duplicate_keys_and_static_broker_keys_are_refused() {
        let (code, _) = apply_changes(
            &BTreeMap::new(),
            &[set("retention.ms", "1"), set("retention.ms", "2")],
            false,
            |_| String::new(),
        )
        .unwrap_err();
        assert_eq!(code, ResponseError::InvalidRequest.code());
        let config = BrokerConfig::load(None, std::iter::empty::<(String, String)>(), &[])
            .expect("defaults load");
        let (code, message) =
            validate_broker_configs(&config, &map(&[("log.dirs", "/x")]), &BTreeMap::new())
                .unwrap_err();
        assert_eq!(code, ResponseError::InvalidConfig.code());
        assert!(message.contains("log.dirs"), "{message}");
        let (code, _) = validate_broker_configs(
            &config,
            &BTreeMap::new(),
            &map(&[("log.retention.ms", "soon")]),
        )
        .unwrap_err();
        assert_eq!(code, ResponseError::InvalidConfig.code());
        let effective = validate_broker_configs(
            &config,
            &map(&[("log.retention.ms", "60000")]),
            &BTreeMap::new(),
        )
        .unwrap();
        assert_eq!(effective.log_defaults.retention_ms, 60_000);
    }

    #[test]
    fn topic_overrides_are_checked_together() {
        let config = BrokerConfig::load(None, std::iter::empty::<(String, String)>(), &[])
            .expect("defaults load");
        assert!(validate_topic_configs(&config, &map(&[("retention.ms", "1000")])).is_ok());
        let (code, _) =
            validate_topic_configs(&config, &map(&[("retention.ms", "later")])).unwrap_err();
        assert_eq!(code, ResponseError::InvalidConfig.code());
        assert!(
            validate_topic_configs(
                &config,
                &map(&[
                    ("min.compaction.lag.ms", "10"),
                    ("max.compaction.lag.ms", "5")
                ])
            )
            .is_err()
        );
    }
}
