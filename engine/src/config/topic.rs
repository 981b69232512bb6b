//! Topic-level configuration keys: Kafka's names, defaults and the broker key that
//! supplies each default (`segment.bytes` ← `log.segment.bytes`).

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

/// Checks a topic config value against its type; the message is for INVALID_CONFIG.
pub fn validate(name: &str, value: &str) -> Result<(), String> {
    let Some(key) = find(name) else {
        return Err(format!("unknown topic config '{name}'"));
    };
    let ok = match key.config_type {
        1 => value == "true" || value == "false",
        3 => value.parse::<i32>().is_ok(),
        5 => value.parse::<i64>().is_ok(),
        6 => value.parse::<f64>().is_ok(),
        _ => true,
    };
    let ok = ok
        && match name {
            "message.timestamp.type" => value == "CreateTime" || value == "LogAppendTime",
            "cleanup.policy" => value
                .split(',')
                .all(|policy| matches!(policy.trim(), "delete" | "compact")),
            "segment.bytes" => value.parse::<i32>().is_ok_and(|bytes| bytes >= 14),
            "max.message.bytes" => value.parse::<i32>().is_ok_and(|bytes| bytes >= 0),
            _ => true,
        };
    if ok {
        Ok(())
    } else {
        Err(format!("invalid value '{value}' for topic config '{name}'"))
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
    }
}
