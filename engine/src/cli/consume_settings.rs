//! The settings of `weir consume`: its flags and the consumer/formatter properties
//! resolved as Kafka's `ConsoleConsumerOptions` resolves them, with the same usage
//! errors (offset without partition, group with partition, conflicting group ids,
//! --from-beginning against auto.offset.reset).

use std::time::Duration;

use super::TOOL_TIMEOUT;
use super::console::{self, Properties};
use super::consume::Args;
use super::consumer::{FetchConfig, IsolationLevel};
use super::consumer_group::GroupSettings;
use super::record_format::RecordFormat;

/// Consumer property keys `weir consume` understands.
pub const CONSUMER_KEYS: &[&str] = &[
    "group.id",
    "client.id",
    "auto.offset.reset",
    "enable.auto.commit",
    "auto.commit.interval.ms",
    "isolation.level",
    "session.timeout.ms",
    "heartbeat.interval.ms",
    "max.poll.interval.ms",
    "fetch.max.wait.ms",
    "fetch.min.bytes",
    "fetch.max.bytes",
    "max.partition.fetch.bytes",
    "retry.backoff.ms",
];
/// Java consumer settings that mean nothing to this consumer; accepted silently so
/// existing config files work.
pub const CONSUMER_KEYS_IGNORED: &[&str] = &[
    "bootstrap.servers",
    "key.deserializer",
    "value.deserializer",
    "receive.buffer.bytes",
    "send.buffer.bytes",
    "check.crcs",
    "client.rack",
    "metadata.max.age.ms",
    "request.timeout.ms",
    "default.api.timeout.ms",
    "connections.max.idle.ms",
    "reconnect.backoff.ms",
    "reconnect.backoff.max.ms",
    "retry.backoff.max.ms",
    "max.poll.records",
    "allow.auto.create.topics",
    "exclude.internal.topics",
    "partition.assignment.strategy",
];

/// Where a partition without a position starts (`auto.offset.reset`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OffsetReset {
    Earliest,
    Latest,
    /// No reset: a partition without committed offset is an error.
    Fail,
}

/// Where `--partition` starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StartOffset {
    Earliest,
    Latest,
    At(i64),
}

/// Everything `weir consume` needs, resolved from flags and properties.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConsumeSettings {
    pub client_id: String,
    pub group: Option<GroupSettings>,
    pub auto_commit: bool,
    pub auto_commit_interval: Duration,
    pub reset: OffsetReset,
    /// `--partition` and where it starts.
    pub partition: Option<(i32, StartOffset)>,
    pub fetch: FetchConfig,
    pub format: RecordFormat,
    pub max_messages: Option<u64>,
    pub timeout: Option<Duration>,
}

/// Resolves flags and properties as ConsoleConsumerOptions does. `Err` is a usage error.
pub fn resolve(
    args: &Args,
    consumer: &Properties,
    formatter: &Properties,
) -> Result<ConsumeSettings, String> {
    if args.offset.is_some() && args.partition.is_none() {
        return Err("The partition is required when offset is specified.".to_string());
    }
    if args.partition.is_some() && args.from_beginning && args.offset.is_some() {
        return Err("Options from-beginning and offset cannot be specified together.".to_string());
    }
    let mut group_ids: Vec<&String> = args.group.iter().chain(consumer.get("group.id")).collect();
    group_ids.dedup();
    if group_ids.len() > 1 {
        return Err(format!(
            "The group ids provided in different places (directly using '--group', via \
             '--consumer-property', or via '--consumer.config') do not match. Detected group \
             ids: {}",
            group_ids
                .iter()
                .map(|id| format!("'{id}'"))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    let group_id = group_ids.first().map(|id| id.to_string());
    if group_id.is_some() && args.partition.is_some() {
        return Err("Options group and partition cannot be specified together.".to_string());
    }
    let reset = match consumer.get("auto.offset.reset").map(|v| v.trim()) {
        Some("earliest") => OffsetReset::Earliest,
        Some(value) if args.from_beginning => {
            return Err(format!(
                "Can't simultaneously specify --from-beginning and 'auto.offset.reset={value}', \
                 please remove one option"
            ));
        }
        Some("latest") => OffsetReset::Latest,
        Some("none") => OffsetReset::Fail,
        Some(value) => {
            return Err(format!(
                "auto.offset.reset must be earliest, latest or none, got '{value}'"
            ));
        }
        None if args.from_beginning => OffsetReset::Earliest,
        None => OffsetReset::Latest,
    };
    let partition = match args.partition {
        None => None,
        Some(partition) if partition < 0 => {
            return Err(format!("--partition must be non-negative, got {partition}"));
        }
        Some(partition) => {
            let start = match args.offset.as_deref().map(str::trim) {
                Some(text) if text.eq_ignore_ascii_case("earliest") => StartOffset::Earliest,
                Some(text) if text.eq_ignore_ascii_case("latest") => StartOffset::Latest,
                Some(text) => match text.parse::<i64>() {
                    Ok(offset) if offset >= 0 => StartOffset::At(offset),
                    _ => {
                        return Err(format!(
                            "The provided offset value '{text}' is incorrect. Valid values are \
                             'earliest', 'latest', or a non-negative long."
                        ));
                    }
                },
                None if args.from_beginning => StartOffset::Earliest,
                None => StartOffset::Latest,
            };
            Some((partition, start))
        }
    };
    let number = |key: &str, default: &str| -> Result<u64, String> {
        console::parse_number::<u64>(key, consumer.get(key).map_or(default, String::as_str))
    };
    let bounded_i32 = |key: &str, value: u64| -> Result<i32, String> {
        i32::try_from(value).map_err(|_| format!("{key} must be below 2^31, got {value}"))
    };
    let isolation_text = args
        .isolation_level
        .clone()
        .or_else(|| consumer.get("isolation.level").cloned())
        .unwrap_or_else(|| "read_uncommitted".to_string());
    let retry_backoff = Duration::from_millis(number("retry.backoff.ms", "100")?);
    let fetch = FetchConfig {
        max_wait_ms: bounded_i32("fetch.max.wait.ms", number("fetch.max.wait.ms", "500")?)?,
        min_bytes: bounded_i32("fetch.min.bytes", number("fetch.min.bytes", "1")?)?,
        max_bytes: bounded_i32("fetch.max.bytes", number("fetch.max.bytes", "52428800")?)?,
        partition_max_bytes: bounded_i32(
            "max.partition.fetch.bytes",
            number("max.partition.fetch.bytes", "1048576")?,
        )?,
        isolation_level: IsolationLevel::parse(&isolation_text)?,
        retry_backoff,
    };
    let group = match group_id {
        None => None,
        Some(group_id) => {
            let session_timeout_ms =
                bounded_i32("session.timeout.ms", number("session.timeout.ms", "45000")?)?;
            let heartbeat_ms = number("heartbeat.interval.ms", "3000")?;
            if heartbeat_ms >= session_timeout_ms as u64 {
                return Err(
                    "heartbeat.interval.ms must be lower than session.timeout.ms".to_string(),
                );
            }
            Some(GroupSettings {
                group_id,
                session_timeout_ms,
                rebalance_timeout_ms: bounded_i32(
                    "max.poll.interval.ms",
                    number("max.poll.interval.ms", "300000")?,
                )?,
                heartbeat_interval: Duration::from_millis(heartbeat_ms),
                retry_backoff,
                request_timeout: TOOL_TIMEOUT,
            })
        }
    };
    let auto_commit = match consumer.get("enable.auto.commit") {
        Some(value) => console::parse_bool("enable.auto.commit", value)?,
        None => true,
    };
    let mut formatter = formatter.clone();
    for (key, class) in [
        ("key.deserializer", &args.key_deserializer),
        ("value.deserializer", &args.value_deserializer),
    ] {
        if let Some(class) = class {
            formatter.insert(key.to_string(), class.clone());
        }
    }
    Ok(ConsumeSettings {
        client_id: consumer
            .get("client.id")
            .cloned()
            .unwrap_or_else(|| "weir-consume".to_string()),
        group,
        auto_commit,
        auto_commit_interval: Duration::from_millis(number("auto.commit.interval.ms", "5000")?),
        reset,
        partition,
        fetch,
        format: RecordFormat::from_properties(&formatter)?,
        max_messages: args.max_messages,
        timeout: args.timeout_ms.map(Duration::from_millis),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::test_support::{parse_args, properties};

    fn args(extra: &[&str]) -> Args {
        let words: Vec<&str> = ["--topic", "t"].iter().chain(extra).copied().collect();
        parse_args("weir-consume", &words).expect("valid arguments")
    }

    fn settings(extra: &[&str], consumer: &[(&str, &str)]) -> Result<ConsumeSettings, String> {
        resolve(&args(extra), &properties(consumer), &Properties::new())
    }

    #[test]
    fn defaults_start_at_the_end_without_a_group() {
        let settings = settings(&[], &[]).expect("valid");
        assert_eq!(settings.reset, OffsetReset::Latest);
        assert_eq!(settings.group, None);
        assert_eq!(settings.partition, None);
        assert_eq!(
            settings.fetch.isolation_level,
            IsolationLevel::ReadUncommitted
        );
        assert_eq!(settings.fetch.max_wait_ms, 500);
        assert_eq!(settings.client_id, "weir-consume");
        assert!(settings.format.print_value && !settings.format.print_key);
    }

    #[test]
    fn from_beginning_means_earliest() {
        let settings = settings(&["--from-beginning"], &[]).expect("valid");
        assert_eq!(settings.reset, OffsetReset::Earliest);
        let settings =
            settings_with_partition(&["--partition", "1", "--from-beginning"]).expect("valid");
        assert_eq!(settings.partition, Some((1, StartOffset::Earliest)));
    }

    fn settings_with_partition(extra: &[&str]) -> Result<ConsumeSettings, String> {
        settings(extra, &[])
    }

    #[test]
    fn offsets_need_a_partition_and_parse_as_kafka_does() {
        let error = settings(&["--offset", "5"], &[]).expect_err("no partition");
        assert_eq!(error, "The partition is required when offset is specified.");
        let parsed = settings(&["--partition", "0", "--offset", "5"], &[]).expect("valid");
        assert_eq!(parsed.partition, Some((0, StartOffset::At(5))));
        let parsed = settings(&["--partition", "0", "--offset", "EARLIEST"], &[]).expect("valid");
        assert_eq!(parsed.partition, Some((0, StartOffset::Earliest)));
        let parsed = settings(&["--partition", "2"], &[]).expect("valid");
        assert_eq!(parsed.partition, Some((2, StartOffset::Latest)));
        let error = settings(&["--partition", "0", "--offset", "-3"], &[]).expect_err("negative");
        assert!(
            error.contains("The provided offset value '-3' is incorrect"),
            "{error}"
        );
        let error = settings(
            &["--partition", "0", "--offset", "1", "--from-beginning"],
            &[],
        )
        .expect_err("both");
        assert_eq!(
            error,
            "Options from-beginning and offset cannot be specified together."
        );
    }

    #[test]
    fn groups_exclude_partitions_and_must_agree() {
        let error = settings(&["--group", "g", "--partition", "0"], &[]).expect_err("both");
        assert_eq!(
            error,
            "Options group and partition cannot be specified together."
        );
        let error = settings(&["--group", "g"], &[("group.id", "h")]).expect_err("mismatch");
        assert!(error.contains("'g', 'h'"), "{error}");
        let same = settings(&["--group", "g"], &[("group.id", "g")]).expect("same id");
        let group = same.group.expect("a group");
        assert_eq!(group.group_id, "g");
        assert_eq!(group.session_timeout_ms, 45_000);
        assert_eq!(group.rebalance_timeout_ms, 300_000);
        assert_eq!(group.heartbeat_interval, Duration::from_millis(3000));
        assert!(same.auto_commit);
        let from_property = settings(&[], &[("group.id", "p")]).expect("valid");
        assert_eq!(from_property.group.expect("a group").group_id, "p");
    }

    #[test]
    fn auto_offset_reset_conflicts_with_from_beginning() {
        let error =
            settings(&["--from-beginning"], &[("auto.offset.reset", "latest")]).expect_err("clash");
        assert!(
            error.starts_with("Can't simultaneously specify --from-beginning"),
            "{error}"
        );
        let settings_none = settings(&[], &[("auto.offset.reset", "none")]).expect("valid");
        assert_eq!(settings_none.reset, OffsetReset::Fail);
        let earliest =
            settings(&["--from-beginning"], &[("auto.offset.reset", "earliest")]).expect("valid");
        assert_eq!(earliest.reset, OffsetReset::Earliest);
    }

    #[test]
    fn isolation_level_flag_beats_the_property() {
        let parsed = settings(
            &["--isolation-level", "read_committed"],
            &[("isolation.level", "read_uncommitted")],
        )
        .expect("valid");
        assert_eq!(parsed.fetch.isolation_level, IsolationLevel::ReadCommitted);
        assert!(settings(&["--isolation-level", "dirty"], &[]).is_err());
    }

    #[test]
    fn formatter_properties_reach_the_format() {
        let mut cli = args(&[]);
        cli.properties = vec![("print.key".to_string(), "true".to_string())];
        let formatter: Properties = cli.properties.iter().cloned().collect();
        let settings = resolve(&cli, &Properties::new(), &formatter).expect("valid");
        assert!(settings.format.print_key);
    }
}
