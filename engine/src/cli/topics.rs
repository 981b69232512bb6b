//! `weir topics`: create, list, describe, alter and delete topics, as Kafka's
//! `kafka-topics.sh` (Kafka 4.0's `TopicCommand`) does, with its flags and output.
//!
//! ```text
//!  --create  ─► CreateTopics                       "Created topic T."
//!  --list    ─► Metadata (all topics)              names, sorted, one a line
//!  --describe ─► Metadata ─► DescribeTopicPartitions (or the Metadata answer when the
//!               broker lacks it) + DescribeConfigs   topic line, then a line per partition
//!  --alter   ─► Metadata ─► CreatePartitions        (silent, as Kafka)
//!  --delete  ─► Metadata ─► DeleteTopics            (silent, as Kafka)
//! ```
//!
//! Except with `--create`, `--topic` is a regular expression matched against the whole
//! name (commas separate alternatives), as in Kafka; `test.topic` also matches
//! `test_topic` unless the dot is escaped.
//!
//! Choices where Kafka's own output is not one fixed thing:
//! - Partition lines end with `\tElr: ...\tLastKnownElr: ...` as Kafka 3.8+ prints them.
//!   The eligible leader replicas come from DescribeTopicPartitions; a broker without it
//!   (weir today, Kafka before 3.8) answers through Metadata, which carries no ELR, and
//!   Kafka's tool then prints `Elr: N/A\tLastKnownElr: N/A` — so does this one.
//! - Topics are described in name order (Kafka's order is a hash map's).
//! - Errors go to stderr as `Error: <sentence>` (Kafka prints `Error while executing
//!   topic command : ...` to stdout); Kafka's texts are kept, without its
//!   `Optional[...]` slip in "Topic 'Optional[t]' does not exist as expected".
//! - What the command line alone shows to be wrong is a usage error (exit 2, as clap
//!   reports them); what the cluster refuses exits 1.

mod change;
mod describe;
mod parse;

use std::fmt::Display;
use std::io::Write;
use std::process::ExitCode;

use clap::ArgGroup;
use kafka_protocol::messages::MetadataResponse;
use weir_net::client::{ClientError, KafkaClient};

pub use self::parse::{
    ReplicaAssignment, TopicFilter, has_collision_chars, parse_replica_assignment,
    parse_topic_config,
};
use crate::cli::{self, BOOTSTRAP_DEFAULT};

/// Kafka's internal topics (`org.apache.kafka.common.internals.Topic`).
pub const INTERNAL_TOPICS: &[&str] = &[
    "__consumer_offsets",
    "__transaction_state",
    "__share_group_state",
];
/// Kafka's DescribeTopicPartitions page size when `--partition-size-limit-per-response`
/// is not given.
pub const PARTITIONS_PER_RESPONSE_DEFAULT: i32 = 2000;

const EXAMPLES: &str = "\
Examples:
  weir topics --create --topic orders --partitions 6 --replication-factor 1
  weir topics --create --topic audit --config retention.ms=86400000 --config cleanup.policy=compact
  weir topics --list
  weir topics --describe --topic orders
  weir topics --describe --topic 'orders|audit' --exclude-internal
  weir topics --alter --topic orders --partitions 12
  weir topics --delete --topic orders --if-exists
  weir topics --bootstrap-server 10.0.0.5:9092 --list

--topic is a regular expression except with --create: escape dots (\"test\\.topic\") to
match them literally. Topic configs are changed with `weir configs --alter`.";

/// Flags of `kafka-topics.sh`; exactly one action.
#[derive(clap::Args, Debug)]
#[command(
    group(ArgGroup::new("action").required(true).multiple(false)
        .args(["create", "list", "describe", "alter", "delete"])),
    after_help = EXAMPLES
)]
pub struct Args {
    /// The Kafka server(s) to connect to, host:port[,host:port...].
    #[arg(long, value_name = "HOST:PORT", default_value = BOOTSTRAP_DEFAULT)]
    pub bootstrap_server: String,

    /// Create a new topic.
    #[arg(long)]
    pub create: bool,
    /// List all available topics.
    #[arg(long)]
    pub list: bool,
    /// List details for the given topics (all topics without --topic).
    #[arg(long)]
    pub describe: bool,
    /// Alter the number of partitions and replica assignment.
    #[arg(long)]
    pub alter: bool,
    /// Delete a topic.
    #[arg(long)]
    pub delete: bool,

    /// The topic to create, alter, describe or delete. Except with --create it is a
    /// regular expression matched against whole names; commas separate alternatives.
    #[arg(long, value_name = "TOPIC", required_unless_present_any = ["list", "describe"])]
    pub topic: Option<String>,
    /// The topic id to describe (Kafka's base64 form).
    #[arg(long, value_name = "TOPIC_ID", conflicts_with_all = ["create", "list", "alter", "delete"])]
    pub topic_id: Option<String>,
    /// A topic config override for the topic being created (repeatable).
    #[arg(long, value_name = "NAME=VALUE", value_parser = parse_topic_config,
          conflicts_with_all = ["list", "describe", "alter", "delete"])]
    pub config: Vec<(String, String)>,
    /// The number of partitions for the topic being created or altered; without it
    /// --create uses the broker's default. Adding partitions to a keyed topic changes
    /// which partition a key goes to.
    #[arg(long, value_name = "COUNT", required_if_eq("alter", "true"),
          conflicts_with_all = ["list", "describe", "delete"])]
    pub partitions: Option<i32>,
    /// The replication factor of the topic being created; without it the broker's default.
    #[arg(long, value_name = "FACTOR", conflicts_with_all = ["list", "describe", "alter", "delete"])]
    pub replication_factor: Option<i32>,
    /// Manual partition-to-broker assignment for the topic being created or altered:
    /// broker_for_partition0_replica1:broker_for_partition0_replica2,broker_for_partition1_replica1:...
    #[arg(long, value_name = "ASSIGNMENT", value_parser = parse_replica_assignment,
          conflicts_with_all = ["list", "describe", "delete"])]
    pub replica_assignment: Option<ReplicaAssignment>,

    /// With --describe, only show under-replicated partitions.
    #[arg(long, conflicts_with_all = ["create", "list", "alter", "delete", "topics_with_overrides"])]
    pub under_replicated_partitions: bool,
    /// With --describe, only show partitions whose leader is not available.
    #[arg(long, conflicts_with_all = ["create", "list", "alter", "delete", "topics_with_overrides"])]
    pub unavailable_partitions: bool,
    /// With --describe, only show partitions whose ISR is smaller than min.insync.replicas.
    #[arg(long, conflicts_with_all = ["create", "list", "alter", "delete", "topics_with_overrides"])]
    pub under_min_isr_partitions: bool,
    /// With --describe, only show partitions whose ISR equals min.insync.replicas.
    #[arg(long, conflicts_with_all = ["create", "list", "alter", "delete", "topics_with_overrides"])]
    pub at_min_isr_partitions: bool,
    /// With --describe, only show topics that have overridden configs.
    #[arg(long, conflicts_with_all = ["create", "list", "alter", "delete"])]
    pub topics_with_overrides: bool,
    /// With --alter, --delete or --describe, do nothing (and succeed) when no topic matches.
    #[arg(long, conflicts_with_all = ["create", "list"])]
    pub if_exists: bool,
    /// With --create, succeed without doing anything when the topic already exists.
    #[arg(long, conflicts_with_all = ["list", "describe", "alter", "delete"])]
    pub if_not_exists: bool,
    /// Exclude internal topics (__consumer_offsets, ...) when listing or describing.
    #[arg(long, conflicts_with_all = ["create", "alter", "delete"])]
    pub exclude_internal: bool,
    /// With --describe, the largest number of partitions in one DescribeTopicPartitions
    /// response.
    #[arg(long, value_name = "COUNT", conflicts_with_all = ["create", "list", "alter", "delete"])]
    pub partition_size_limit_per_response: Option<i32>,
}

/// What went wrong; each reads as a sentence for the operator.
#[derive(Debug, thiserror::Error)]
pub enum TopicsError {
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error("Topic '{0}' already exists.")]
    AlreadyExists(String),
    #[error("Topic '{0}' does not exist as expected")]
    NotFound(String),
    #[error("TopicId '{0}' does not exist as expected")]
    TopicIdNotFound(String),
    #[error(
        "the broker at {address} speaks CreateTopics only up to v{version}, which cannot ask \
         for the broker's default partition count or replication factor: pass --partitions \
         and --replication-factor"
    )]
    BrokerDefaultsUnsupported { address: String, version: i16 },
    #[error("cannot write to stdout: {0}")]
    Stdout(#[from] std::io::Error),
}

pub fn run(args: Args) -> ExitCode {
    let filter = match check_usage(&args) {
        Ok(filter) => filter,
        Err(message) => return usage_error::<Args>("weir topics", message),
    };
    let mut client = match cli::connect(&args.bootstrap_server, "topics") {
        Ok(client) => client,
        Err(error) => return cli::fail(error),
    };
    let outcome = if args.create {
        change::create(&mut client, &args)
    } else if args.list {
        list(&mut client, &args, filter.as_ref())
    } else if args.describe {
        describe::describe(&mut client, &args, filter.as_ref())
    } else if args.alter {
        change::alter(&mut client, &args, filter.as_ref())
    } else {
        change::delete(&mut client, &args, filter.as_ref())
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => cli::fail(error),
    }
}

/// Prints a usage error the way clap prints its own (usage line, exit code 2).
pub(crate) fn usage_error<A: clap::Args>(
    bin_name: &'static str,
    message: impl Display,
) -> ExitCode {
    let mut command = A::augment_args(clap::Command::new(bin_name).bin_name(bin_name));
    let error = command.error(clap::error::ErrorKind::ArgumentConflict, message);
    let _ = error.print();
    ExitCode::from(2)
}

/// Checks what clap's declarations cannot express; returns the `--topic` filter for
/// the actions that take a pattern.
fn check_usage(args: &Args) -> Result<Option<TopicFilter>, String> {
    if args
        .replication_factor
        .is_some_and(|factor| !(1..=i16::MAX as i32).contains(&factor))
    {
        return Err(format!(
            "The replication factor must be between 1 and {} inclusive",
            i16::MAX
        ));
    }
    if args.partitions.is_some_and(|partitions| partitions < 1) {
        return Err("The partitions must be greater than 0".to_string());
    }
    if args.create
        && args.replica_assignment.is_some()
        && (args.partitions.is_some() || args.replication_factor.is_some())
    {
        return Err(
            "--replica-assignment cannot be used with --partitions or --replication-factor \
             when creating a topic"
                .to_string(),
        );
    }
    if args.describe && args.if_exists && args.topic.is_none() && args.topic_id.is_none() {
        return Err("--topic or --topic-id is required to describe a topic".to_string());
    }
    if args
        .partition_size_limit_per_response
        .is_some_and(|limit| limit < 1)
    {
        return Err("--partition-size-limit-per-response must be at least 1".to_string());
    }
    if args.create {
        return Ok(None);
    }
    args.topic.as_deref().map(TopicFilter::new).transpose()
}

/// Writes `text` to stdout; a closed pipe (`| head`) is not an error.
pub(crate) fn write_stdout(text: &str) -> std::io::Result<()> {
    let mut stdout = std::io::stdout().lock();
    match stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
    {
        Err(error) if error.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        outcome => outcome,
    }
}

/// Kafka's `Topic.isInternal`, or the broker's own flag.
fn is_internal(name: &str, flagged_internal: bool) -> bool {
    flagged_internal || INTERNAL_TOPICS.contains(&name)
}

/// All topics of the cluster (one Metadata round trip), and the sorted names that pass
/// `filter` and `exclude_internal`.
fn matching_topics(
    client: &mut KafkaClient,
    filter: Option<&TopicFilter>,
    exclude_internal: bool,
) -> Result<(MetadataResponse, Vec<String>), TopicsError> {
    let metadata = client.metadata(None)?;
    let mut names: Vec<String> = metadata
        .topics
        .iter()
        .filter_map(|topic| {
            let name = topic.name.as_ref()?.0.to_string();
            let internal = is_internal(&name, topic.is_internal);
            let wanted = filter.is_none_or(|filter| filter.matches(&name));
            (wanted && !(exclude_internal && internal)).then_some(name)
        })
        .collect();
    names.sort();
    names.dedup();
    Ok((metadata, names))
}

/// Kafka's `ensureTopicExists`: a named topic that matched nothing is an error unless
/// `--if-exists`.
fn ensure_found(args: &Args, found: &[String]) -> Result<(), TopicsError> {
    match args.topic.as_deref() {
        Some(topic) if !topic.is_empty() && !args.if_exists && found.is_empty() => {
            Err(TopicsError::NotFound(topic.to_string()))
        }
        _ => Ok(()),
    }
}

fn list(
    client: &mut KafkaClient,
    args: &Args,
    filter: Option<&TopicFilter>,
) -> Result<(), TopicsError> {
    let (_, names) = matching_topics(client, filter, args.exclude_internal)?;
    Ok(write_stdout(&format_list(&names))?)
}

/// Kafka joins the names with newlines and prints that line: no topics print one
/// empty line.
pub fn format_list(names: &[String]) -> String {
    format!("{}\n", names.join("\n"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::test_support::parse_args;

    fn parse(words: &[&str]) -> Result<Args, clap::Error> {
        parse_args("topics", words)
    }

    #[test]
    fn an_empty_listing_prints_one_empty_line_as_kafka() {
        assert_eq!(format_list(&[]), "\n");
        assert_eq!(format_list(&["a".to_string(), "b".to_string()]), "a\nb\n");
    }

    #[test]
    fn exactly_one_action_is_required_and_flags_fit_their_action() {
        assert!(parse(&["--list"]).is_ok());
        assert!(parse(&["--describe"]).is_ok());
        assert!(parse(&[]).is_err(), "no action");
        assert!(parse(&["--list", "--describe"]).is_err(), "two actions");
        assert!(parse(&["--create"]).is_err(), "--create needs --topic");
        assert!(parse(&["--delete"]).is_err(), "--delete needs --topic");
        assert!(
            parse(&["--alter", "--topic", "t"]).is_err(),
            "--alter needs --partitions"
        );
        assert!(parse(&["--alter", "--topic", "t", "--partitions", "3"]).is_ok());
        assert!(parse(&["--list", "--partitions", "3"]).is_err());
        assert!(
            parse(&[
                "--alter",
                "--topic",
                "t",
                "--partitions",
                "3",
                "--config",
                "a=b"
            ])
            .is_err()
        );
        assert!(parse(&["--delete", "--topic", "t", "--if-not-exists"]).is_err());
        assert!(parse(&["--list", "--under-replicated-partitions"]).is_err());
        assert!(parse(&["--list", "--topic-id", "AAAAAAAAAAAAAAAAAAAAAQ"]).is_err());
        assert!(
            parse(&[
                "--alter",
                "--topic",
                "t",
                "--partitions",
                "3",
                "--if-exists"
            ])
            .is_ok()
        );
        assert!(parse(&["--create", "--topic", "t", "--if-exists"]).is_err());
        assert!(parse(&["--delete", "--topic", "t", "--exclude-internal"]).is_err());
        assert!(
            parse(&[
                "--describe",
                "--topics-with-overrides",
                "--under-replicated-partitions"
            ])
            .is_err()
        );
        let args = parse(&[
            "--create", "--topic", "t", "--config", "a=1", "--config", "b=2",
        ])
        .expect("valid");
        assert_eq!(args.bootstrap_server, BOOTSTRAP_DEFAULT);
        assert_eq!(
            args.config,
            vec![
                ("a".to_string(), "1".to_string()),
                ("b".to_string(), "2".to_string())
            ]
        );
    }

    #[test]
    fn usage_checks_catch_what_clap_cannot() {
        let check = |words: &[&str]| check_usage(&parse(words).expect("parses"));
        assert_eq!(
            check(&["--create", "--topic", "t", "--partitions", "0"]).expect_err("zero"),
            "The partitions must be greater than 0"
        );
        assert_eq!(
            check(&["--create", "--topic", "t", "--replication-factor", "40000"])
                .expect_err("too large"),
            "The replication factor must be between 1 and 32767 inclusive"
        );
        assert!(
            check(&[
                "--create",
                "--topic",
                "t",
                "--replica-assignment",
                "0",
                "--partitions",
                "1"
            ])
            .is_err()
        );
        assert!(check(&["--describe", "--if-exists"]).is_err());
        assert!(check(&["--describe", "--topic", "bad("]).is_err());
        assert!(
            check(&["--create", "--topic", "bad("])
                .expect("create takes names")
                .is_none()
        );
        assert!(check(&["--list"]).expect("valid").is_none());
    }
}
