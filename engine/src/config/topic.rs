//! Topic-level configuration keys: Kafka's names, defaults and the broker key that
//! supplies each default (`segment.bytes` ← `log.segment.bytes`).

use weir_storage::LogConfig;

/// One topic config key.
#[derive(Debug, Clone, Copy)]
pub struct TopicConfigKey {
    /// The topic-level name (`retention.ms`).
    pub name: &'static str,
    /// Broker keys that provide the default, most specific first.
    pub broker_synonyms: &'static [&'static str],
    /// Kafka's default when neither the topic nor the broker sets it.
    pub default: &'static str,
    /// Kafka's config type code in DescribeConfigs v3+ (1 boolean, 2 string, 3 int,
    /// 4 short, 5 long, 6 double, 7 list).
    pub config_type: i8,
}

const fn key(
    name: &'static str,
    broker_synonyms: &'static [&'static str],
    default: &'static str,
    config_type: i8,
) -> TopicConfigKey {
    TopicConfigKey {
        name,
        broker_synonyms,
        default,
        config_type,
    }
}

/// Every topic config weir knows. Values of keys not enforced yet are stored and shown.
pub const TOPIC_CONFIG_KEYS: &[TopicConfigKey] = &[
    key("cleanup.policy", &["log.cleanup.policy"], "delete", 7),
    key("compression.type", &["compression.type"], "producer", 2),
    key(
        "delete.retention.ms",
        &["log.cleaner.delete.retention.ms"],
        "86400000",
        5,
    ),
    key(
        "file.delete.delay.ms",
        &["log.segment.delete.delay.ms"],
        "60000",
        5,
    ),
    key(
        "flush.messages",
        &["log.flush.interval.messages"],
        "9223372036854775807",
        5,
    ),
    key(
        "flush.ms",
        &["log.flush.interval.ms"],
        "9223372036854775807",
        5,
    ),
    key(
        "index.interval.bytes",
        &["log.index.interval.bytes"],
        "4096",
        3,
    ),
    key(
        "max.compaction.lag.ms",
        &["log.cleaner.max.compaction.lag.ms"],
        "9223372036854775807",
        5,
    ),
    key("max.message.bytes", &["message.max.bytes"], "1048588", 3),
    key(
        "message.timestamp.type",
        &["log.message.timestamp.type"],
        "CreateTime",
        2,
    ),
    key(
        "min.cleanable.dirty.ratio",
        &["log.cleaner.min.cleanable.ratio"],
        "0.5",
        6,
    ),
    key(
        "min.compaction.lag.ms",
        &["log.cleaner.min.compaction.lag.ms"],
        "0",
        5,
    ),
    key("min.insync.replicas", &["min.insync.replicas"], "1", 3),
    key("retention.bytes", &["log.retention.bytes"], "-1", 5),
    key(
        "retention.ms",
        &[
            "log.retention.ms",
            "log.retention.minutes",
            "log.retention.hours",
        ],
        "604800000",
        5,
    ),
    key("segment.bytes", &["log.segment.bytes"], "1073741824", 3),
    key(
        "segment.index.bytes",
        &["log.index.size.max.bytes"],
        "10485760",
        3,
    ),
    key(
        "segment.ms",
        &["log.roll.ms", "log.roll.hours"],
        "604800000",
        5,
    ),
    key(
        "unclean.leader.election.enable",
        &["unclean.leader.election.enable"],
        "false",
        1,
    ),
];

/// Looks a topic config key up by name.
pub fn find(name: &str) -> Option<&'static TopicConfigKey> {
    TOPIC_CONFIG_KEYS.iter().find(|key| key.name == name)
}

/// Kafka's accepted `compression.type` values.
const COMPRESSION_TYPES: &[&str] = &["uncompressed", "zstd", "lz4", "snappy", "gzip", "producer"];

/// Checks a topic config value against its type and Kafka's range for the key; the
/// message (Kafka's wording) is for INVALID_CONFIG.
pub fn validate(name: &str, value: &str) -> Result<(), String> {
    let Some(key) = find(name) else {
        return Err(format!("Unknown topic config name: {name}"));
    };
    let invalid = |reason: &str| {
        Err(format!(
            "Invalid value {value} for configuration {name}: {reason}"
        ))
    };
    let long = |min: i64| match value.trim().parse::<i64>() {
        Ok(number) if number >= min => Ok(()),
        Ok(_) => invalid(&format!("Value must be at least {min}")),
        Err(_) => invalid("Not a number of type LONG"),
    };
    let int = |min: i32| match value.trim().parse::<i32>() {
        Ok(number) if number >= min => Ok(()),
        Ok(_) => invalid(&format!("Value must be at least {min}")),
        Err(_) => invalid("Not a number of type INT"),
    };
    match name {
        "cleanup.policy" => {
            let policies: Vec<&str> = value.split(',').map(str::trim).collect();
            if policies
                .iter()
                .all(|policy| matches!(*policy, "delete" | "compact"))
            {
                Ok(())
            } else {
                invalid("String must be one of: compact, delete")
            }
        }
        "compression.type" if !COMPRESSION_TYPES.contains(&value) => invalid(&format!(
            "String must be one of: {}",
            COMPRESSION_TYPES.join(", ")
        )),
        "message.timestamp.type" if value != "CreateTime" && value != "LogAppendTime" => {
            invalid("String must be one of: CreateTime, LogAppendTime")
        }
        "min.cleanable.dirty.ratio" => match value.trim().parse::<f64>() {
            Ok(ratio) if (0.0..=1.0).contains(&ratio) => Ok(()),
            Ok(_) => invalid("Value must be between 0 and 1"),
            Err(_) => invalid("Not a number of type DOUBLE"),
        },
        "retention.ms" => long(-1),
        "retention.bytes" => long(i64::MIN),
        "segment.bytes" => int(14),
        "segment.index.bytes" => int(4),
        "segment.ms" | "max.compaction.lag.ms" | "flush.messages" => long(1),
        "max.message.bytes" | "index.interval.bytes" => int(0),
        "min.insync.replicas" => int(1),
        _ => match key.config_type {
            1 if value != "true" && value != "false" => {
                invalid("Expected value to be either true or false")
            }
            3 => int(i32::MIN),
            5 => long(0),
            _ => Ok(()),
        },
    }
}

/// Checks the relations between a topic's effective values that Kafka checks
/// (`min.compaction.lag.ms` must not exceed `max.compaction.lag.ms`).
pub fn validate_together(log: &LogConfig) -> Result<(), String> {
    if log.min_compaction_lag_ms > log.max_compaction_lag_ms {
        return Err(format!(
            "conflict topic config setting min.compaction.lag.ms ({}) > max.compaction.lag.ms ({})",
            log.min_compaction_lag_ms, log.max_compaction_lag_ms
        ));
    }
    Ok(())
}

/// Applies one topic config value (already validated) to a log config. Keys without
/// an effect on the log (`min.insync.replicas`, ...) leave it unchanged.
pub fn apply(log: &mut LogConfig, name: &str, value: &str) {
    let value = value.trim();
    let long = |fallback: i64| value.parse::<i64>().unwrap_or(fallback);
    match name {
        "cleanup.policy" => {
            log.cleanup_delete = value.split(',').any(|policy| policy.trim() == "delete");
            log.cleanup_compact = value.split(',').any(|policy| policy.trim() == "compact");
        }
        "retention.ms" => log.retention_ms = long(log.retention_ms),
        "retention.bytes" => log.retention_bytes = long(log.retention_bytes),
        "delete.retention.ms" => log.delete_retention_ms = long(log.delete_retention_ms),
        "min.compaction.lag.ms" => log.min_compaction_lag_ms = long(log.min_compaction_lag_ms),
        "max.compaction.lag.ms" => log.max_compaction_lag_ms = long(log.max_compaction_lag_ms),
        "min.cleanable.dirty.ratio" => {
            log.min_cleanable_dirty_ratio = value.parse().unwrap_or(log.min_cleanable_dirty_ratio)
        }
        "file.delete.delay.ms" => {
            log.file_delete_delay_ms = value.parse().unwrap_or(log.file_delete_delay_ms)
        }
        "segment.bytes" => log.segment_bytes = value.parse().unwrap_or(log.segment_bytes),
        "segment.ms" => log.segment_ms = value.parse().unwrap_or(log.segment_ms),
        "index.interval.bytes" => {
            log.index_interval_bytes = value.parse().unwrap_or(log.index_interval_bytes)
        }
        "segment.index.bytes" => {
            log.segment_index_bytes = value.parse().unwrap_or(log.segment_index_bytes)
        }
        "max.message.bytes" => {
            log.max_message_bytes = value.parse().unwrap_or(log.max_message_bytes)
        }
        "flush.messages" => {
            log.flush_interval_messages = value.parse().unwrap_or(log.flush_interval_messages)
        }
        // Kafka's default for flush.ms is Long.MAX_VALUE: "never" (the timer is off).
        "flush.ms" => {
            log.flush_interval_ms = value
                .parse::<u64>()
                .ok()
                .filter(|&ms| ms < i64::MAX as u64)
                .map(|ms| ms.max(1))
        }
        "message.timestamp.type" => log.log_append_time = value == "LogAppendTime",
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_rejects_wrong_types_and_unknown_keys() {
        assert!(validate("retention.ms", "1000").is_ok());
        assert!(validate("retention.ms", "soon").is_err());
        assert!(validate("message.timestamp.type", "LogAppendTime").is_ok());
        assert!(validate("message.timestamp.type", "Wallclock").is_err());
        assert!(validate("no.such.key", "1").is_err());
        assert!(validate("cleanup.policy", "compact,delete").is_ok());
        assert!(validate("cleanup.policy", "compact,archive").is_err());
        assert!(validate("retention.ms", "-1").is_ok());
        assert!(validate("retention.ms", "-2").is_err());
        assert!(validate("min.cleanable.dirty.ratio", "0.01").is_ok());
        assert!(validate("min.cleanable.dirty.ratio", "1.5").is_err());
        assert!(validate("segment.bytes", "13").is_err());
        assert!(validate("compression.type", "brotli").is_err());
        assert_eq!(
            validate("delete.retention.ms", "-5"),
            Err(
                "Invalid value -5 for configuration delete.retention.ms: Value must be at least 0"
                    .into()
            )
        );
    }

    #[test]
    fn applied_values_reach_the_log_config() {
        let mut log = LogConfig::default();
        apply(&mut log, "cleanup.policy", "compact,delete");
        apply(&mut log, "retention.ms", "1000");
        apply(&mut log, "retention.bytes", "4096");
        apply(&mut log, "min.cleanable.dirty.ratio", "0.01");
        apply(&mut log, "flush.ms", "9223372036854775807");
        assert!(log.cleanup_compact && log.cleanup_delete);
        assert_eq!((log.retention_ms, log.retention_bytes), (1000, 4096));
        assert_eq!(log.min_cleanable_dirty_ratio, 0.01);
        assert_eq!(log.flush_interval_ms, None);
        apply(&mut log, "min.compaction.lag.ms", "10");
        apply(&mut log, "max.compaction.lag.ms", "5");
        assert!(validate_together(&log).is_err());
    }
}
