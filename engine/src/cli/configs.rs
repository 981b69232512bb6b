//! `weir configs`: describe and alter topic and broker configs, as Kafka's
//! `kafka-configs.sh` (`ConfigCommand`) does, with its flags and output:
//!
//! ```text
//! $ weir configs --describe --topic orders
//! Dynamic configs for topic orders are:
//!   retention.ms=1000 sensitive=false synonyms={DYNAMIC_TOPIC_CONFIG:retention.ms=1000}
//! $ weir configs --alter --topic orders --add-config retention.ms=2000,cleanup.policy=[compact,delete]
//! Completed updating config for topic orders.
//! ```
//!
//! `--describe` sends DescribeConfigs (with synonyms) and prints the entries whose source
//! is the entity's dynamic one (DYNAMIC_TOPIC_CONFIG, DYNAMIC_BROKER_CONFIG,
//! DYNAMIC_DEFAULT_BROKER_CONFIG), or all of them with `--all`, sorted by name.
//! `--alter` first reads the dynamic configs (a deleted key must be one of them, as
//! Kafka checks), then sends one IncrementalAlterConfigs with SET and DELETE
//! operations. Kafka's tool alters broker configs with the older AlterConfigs; this one
//! uses IncrementalAlterConfigs for every entity type.
//!
//! Entity types: topics, brokers (and the cluster-wide broker default), broker-loggers.
//! Kafka's users, clients and ips (quotas, SCRAM credentials), client-metrics and
//! groups are not handled.

mod alter;
mod describe;
mod parse;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::ArgGroup;
use weir_net::client::ClientError;

pub use self::describe::{describe_configs, format_entry, header, source_name};
pub use self::parse::{parse_add_config, parse_properties, validate_topic_name};
use crate::cli::topics::usage_error;
use crate::cli::{self, BOOTSTRAP_DEFAULT};

/// Kafka's config resource types (`ConfigResource.Type`).
pub const RESOURCE_TOPIC: i8 = 2;
pub const RESOURCE_BROKER: i8 = 4;
pub const RESOURCE_BROKER_LOGGER: i8 = 8;
/// Kafka's config sources (`DescribeConfigsResponse.ConfigSource`).
pub const SOURCE_DYNAMIC_TOPIC_CONFIG: i8 = 1;
pub const SOURCE_DYNAMIC_BROKER_CONFIG: i8 = 2;
pub const SOURCE_DYNAMIC_DEFAULT_BROKER_CONFIG: i8 = 3;
pub const SOURCE_DEFAULT_CONFIG: i8 = 5;

const EXAMPLES: &str = "\
Examples:
  weir configs --describe --topic orders
  weir configs --describe --entity-type topics --entity-name orders --all
  weir configs --describe --entity-type topics
  weir configs --describe --broker 0 --all
  weir configs --describe --entity-type brokers --entity-default
  weir configs --alter --topic orders --add-config retention.ms=86400000,cleanup.policy=[compact,delete]
  weir configs --alter --topic orders --delete-config retention.ms
  weir configs --alter --broker 0 --add-config log.cleaner.threads=2

Values that contain commas go in square brackets: k1=v1,k2=[v1,v2],k3=v3.";

/// The entity types this tool handles (Kafka's `--entity-type` names).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum EntityType {
    Topics,
    Brokers,
    BrokerLoggers,
}

impl EntityType {
    /// Kafka's name for one entity of the type (`topics` → `topic`).
    fn singular(self) -> &'static str {
        match self {
            EntityType::Topics => "topic",
            EntityType::Brokers => "broker",
            EntityType::BrokerLoggers => "broker-logger",
        }
    }

    fn plural(self) -> &'static str {
        match self {
            EntityType::Topics => "topics",
            EntityType::Brokers => "brokers",
            EntityType::BrokerLoggers => "broker-loggers",
        }
    }

    fn resource_type(self) -> i8 {
        match self {
            EntityType::Topics => RESOURCE_TOPIC,
            EntityType::Brokers => RESOURCE_BROKER,
            EntityType::BrokerLoggers => RESOURCE_BROKER_LOGGER,
        }
    }
}

/// Flags of `kafka-configs.sh`; exactly one action and one entity.
#[derive(clap::Args, Debug)]
#[command(
    group(ArgGroup::new("action").required(true).multiple(false).args(["describe", "alter"])),
    group(ArgGroup::new("entity").required(true).multiple(false)
        .args(["entity_type", "topic", "broker", "broker_defaults", "broker_logger"])),
    after_help = EXAMPLES
)]
pub struct Args {
    /// The Kafka server(s) to connect to, host:port[,host:port...].
    #[arg(long, value_name = "HOST:PORT", default_value = BOOTSTRAP_DEFAULT)]
    pub bootstrap_server: String,

    /// List configs for the given entity (all entities of the type without a name).
    #[arg(long)]
    pub describe: bool,
    /// Alter the configuration of the entity.
    #[arg(long)]
    pub alter: bool,
    /// With --describe, list all configs, including static and default ones.
    #[arg(long, conflicts_with = "alter")]
    pub all: bool,

    /// Type of entity.
    #[arg(long, value_enum, value_name = "TYPE")]
    pub entity_type: Option<EntityType>,
    /// Name of entity (topic name, broker id).
    #[arg(
        long,
        value_name = "NAME",
        requires = "entity_type",
        conflicts_with = "entity_default"
    )]
    pub entity_name: Option<String>,
    /// The cluster-wide default (for brokers).
    #[arg(long, requires = "entity_type")]
    pub entity_default: bool,
    /// The topic's name (same as --entity-type topics --entity-name NAME).
    #[arg(long, value_name = "TOPIC")]
    pub topic: Option<String>,
    /// The broker's id (same as --entity-type brokers --entity-name ID).
    #[arg(long, value_name = "ID")]
    pub broker: Option<String>,
    /// The config defaults for all brokers (same as --entity-type brokers --entity-default).
    #[arg(long)]
    pub broker_defaults: bool,
    /// The broker's id for its logger config (same as --entity-type broker-loggers --entity-name ID).
    #[arg(long, value_name = "ID")]
    pub broker_logger: Option<String>,

    /// Configs to set, k1=v1,k2=[v1,v2,v2],k3=v3 (brackets group values with commas).
    #[arg(long, value_name = "K=V[,K=V]", conflicts_with = "describe")]
    pub add_config: Option<String>,
    /// A properties file with configs to set.
    #[arg(
        long,
        value_name = "FILE",
        conflicts_with_all = ["describe", "add_config"]
    )]
    pub add_config_file: Option<PathBuf>,
    /// Config keys to remove, k1,k2 (repeatable).
    #[arg(
        long,
        value_name = "K[,K]",
        conflicts_with = "describe",
        value_delimiter = ','
    )]
    pub delete_config: Vec<String>,
    /// Suppress console prompts (accepted for compatibility; there are none).
    #[arg(long)]
    pub force: bool,
}

/// One entity: its type and name (`Some("")` is the cluster-wide default, `None` every
/// entity of the type).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entity {
    pub entity_type: EntityType,
    pub name: Option<String>,
}

/// A synonym of a config: where a value could come from, most specific first.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Synonym {
    pub name: String,
    pub value: Option<String>,
    pub source: i8,
}

/// One config as DescribeConfigs reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigEntry {
    pub name: String,
    /// None for sensitive values (printed `null`, as Kafka).
    pub value: Option<String>,
    pub source: i8,
    pub sensitive: bool,
    pub synonyms: Vec<Synonym>,
}

/// What went wrong; each reads as a sentence for the operator.
#[derive(Debug, thiserror::Error)]
pub enum ConfigsError {
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error("Invalid config(s): {0}")]
    InvalidConfigs(String),
    #[error("Invalid broker logger(s): {0}")]
    InvalidBrokerLoggers(String),
    #[error("cannot write to stdout: {0}")]
    Stdout(#[from] std::io::Error),
}

/// What `--alter` does: SET these, then DELETE those.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Changes {
    pub set: Vec<(String, String)>,
    pub delete: Vec<String>,
}

pub fn run(args: Args) -> ExitCode {
    let (entity, changes) = match check_usage(&args) {
        Ok(checked) => checked,
        Err(message) => return usage_error::<Args>("weir configs", message),
    };
    let mut client = match cli::connect(&args.bootstrap_server, "configs") {
        Ok(client) => client,
        Err(error) => return cli::fail(error),
    };
    let outcome = if args.describe {
        describe::describe(&mut client, &entity, args.all)
    } else {
        alter::alter(&mut client, &entity, &changes)
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => cli::fail(error),
    }
}

/// Kafka's `checkArgs` for what clap's declarations cannot express; returns the
/// entity and, for `--alter`, the changes.
fn check_usage(args: &Args) -> Result<(Entity, Changes), String> {
    let entity = if let Some(entity_type) = args.entity_type {
        Entity {
            entity_type,
            name: if args.entity_default {
                Some(String::new())
            } else {
                args.entity_name.clone()
            },
        }
    } else if let Some(topic) = &args.topic {
        Entity {
            entity_type: EntityType::Topics,
            name: Some(topic.clone()),
        }
    } else if let Some(broker) = &args.broker {
        Entity {
            entity_type: EntityType::Brokers,
            name: Some(broker.clone()),
        }
    } else if args.broker_defaults {
        Entity {
            entity_type: EntityType::Brokers,
            name: Some(String::new()),
        }
    } else {
        Entity {
            entity_type: EntityType::BrokerLoggers,
            name: args.broker_logger.clone(),
        }
    };
    let kind = entity.entity_type;
    let has_name = entity.name.as_deref().is_some_and(|name| !name.is_empty());
    let is_default = entity.name.as_deref() == Some("");
    if let Some(name) = entity.name.as_deref().filter(|name| !name.is_empty()) {
        match kind {
            EntityType::Topics => validate_topic_name(name)?,
            EntityType::Brokers | EntityType::BrokerLoggers => {
                if name.parse::<i32>().is_err() {
                    return Err(format!(
                        "The entity name for {} must be a valid integer broker id, but it is: {name}",
                        kind.plural()
                    ));
                }
            }
        }
    }
    if is_default && kind != EntityType::Brokers {
        let action = if args.describe {
            "--describe"
        } else {
            "--alter"
        };
        return Err(format!(
            "--entity-default must not be specified with {action} of {}",
            kind.plural()
        ));
    }
    if args.describe {
        if kind == EntityType::BrokerLoggers && !has_name {
            return Err(format!(
                "An entity name must be specified with --describe of {}",
                kind.plural()
            ));
        }
        return Ok((entity, Changes::default()));
    }
    match kind {
        EntityType::Brokers if !has_name && !is_default => {
            return Err(
                "An entity-name or default entity must be specified with --alter of users, \
                 clients, brokers or ips"
                    .to_string(),
            );
        }
        EntityType::Topics | EntityType::BrokerLoggers if !has_name => {
            return Err(format!(
                "An entity name must be specified with --alter of {}",
                kind.plural()
            ));
        }
        _ => {}
    }
    if args.add_config.is_none() && args.add_config_file.is_none() && args.delete_config.is_empty()
    {
        return Err(
            "At least one of --add-config, --add-config-file, or --delete-config must be \
             specified with --alter"
                .to_string(),
        );
    }
    let mut set = Vec::new();
    if let Some(path) = &args.add_config_file {
        let text = std::fs::read_to_string(path).map_err(|error| {
            format!("cannot read --add-config-file {}: {error}", path.display())
        })?;
        set = parse_properties(&text);
    }
    if let Some(text) = &args.add_config {
        set = parse_add_config(text)?;
    }
    for (key, _) in &set {
        if !key
            .chars()
            .all(|character| character.is_ascii_alphanumeric() || "._-".contains(character))
        {
            return Err(format!("Invalid character found for config key: {key}"));
        }
    }
    let delete = args
        .delete_config
        .iter()
        .map(|key| key.trim().to_string())
        .collect();
    Ok((entity, Changes { set, delete }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::test_support::parse_args;

    fn parse(words: &[&str]) -> Result<Args, clap::Error> {
        parse_args("configs", words)
    }

    fn checked(words: &[&str]) -> Result<(Entity, Changes), String> {
        check_usage(&parse(words).expect("parses"))
    }

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(key, value)| (key.to_string(), value.to_string()))
            .collect()
    }

    #[test]
    fn shorthand_flags_name_the_same_entities() {
        let topic = |name: &str| Entity {
            entity_type: EntityType::Topics,
            name: Some(name.to_string()),
        };
        assert_eq!(
            checked(&["--describe", "--topic", "t"]).expect("valid").0,
            topic("t")
        );
        assert_eq!(
            checked(&[
                "--describe",
                "--entity-type",
                "topics",
                "--entity-name",
                "t"
            ])
            .expect("valid")
            .0,
            topic("t")
        );
        assert_eq!(
            checked(&["--describe", "--entity-type", "topics"])
                .expect("valid")
                .0,
            Entity {
                entity_type: EntityType::Topics,
                name: None
            }
        );
        let default = Entity {
            entity_type: EntityType::Brokers,
            name: Some(String::new()),
        };
        assert_eq!(
            checked(&["--describe", "--broker-defaults"])
                .expect("valid")
                .0,
            default
        );
        assert_eq!(
            checked(&["--describe", "--entity-type", "brokers", "--entity-default"])
                .expect("valid")
                .0,
            default
        );
    }

    #[test]
    fn usage_mistakes_get_kafkas_messages() {
        assert!(parse(&["--topic", "t"]).is_err(), "no action");
        assert!(parse(&["--describe"]).is_err(), "no entity");
        assert!(parse(&["--describe", "--alter", "--topic", "t"]).is_err());
        assert!(parse(&["--describe", "--topic", "t", "--broker", "0"]).is_err());
        assert!(parse(&["--describe", "--topic", "t", "--add-config", "a=1"]).is_err());
        assert!(parse(&["--describe", "--topic", "t", "--delete-config", "a"]).is_err());
        assert!(parse(&["--alter", "--topic", "t", "--all", "--add-config", "a=1"]).is_err());
        assert!(parse(&["--describe", "--entity-type", "users"]).is_err());
        assert_eq!(
            checked(&["--describe", "--broker", "zero"]).expect_err("not an id"),
            "The entity name for brokers must be a valid integer broker id, but it is: zero"
        );
        assert_eq!(
            checked(&["--alter", "--topic", "t"]).expect_err("nothing to change"),
            "At least one of --add-config, --add-config-file, or --delete-config must be \
             specified with --alter"
        );
        assert_eq!(
            checked(&["--alter", "--entity-type", "topics", "--add-config", "a=1"])
                .expect_err("no name"),
            "An entity name must be specified with --alter of topics"
        );
        assert_eq!(
            checked(&["--describe", "--entity-type", "topics", "--entity-default"])
                .expect_err("no default topic"),
            "--entity-default must not be specified with --describe of topics"
        );
        assert_eq!(
            checked(&["--alter", "--topic", "t", "--add-config", "bad key=1"])
                .expect_err("bad key"),
            "Invalid character found for config key: bad key"
        );
        assert!(checked(&["--describe", "--topic", "a b"]).is_err());
        let (_, changes) = checked(&[
            "--alter",
            "--topic",
            "t",
            "--add-config",
            "a=1,b=[x,y]",
            "--delete-config",
            "c, d",
            "--delete-config",
            "e",
        ])
        .expect("valid");
        assert_eq!(
            changes,
            Changes {
                set: pairs(&[("a", "1"), ("b", "x,y")]),
                delete: vec!["c".to_string(), "d".to_string(), "e".to_string()],
            }
        );
    }
}
