//! The operator tools: `weir topics`, `weir produce`, `weir consume`, `weir groups`,
//! `weir configs`, `weir dump-log`. Each mirrors its Kafka `bin/kafka-*.sh`
//! counterpart's flags and output so habits and scripts carry over, and speaks the
//! plain Kafka protocol through `weir_net::client`, so it works against any Kafka
//! cluster too (`dump-log` reads segment files offline).
//!
//! Conventions shared by every tool: `--bootstrap-server` defaults to
//! [`BOOTSTRAP_DEFAULT`]; errors go to stderr as one sentence saying what went wrong
//! and what to do; exit code 0 on success, 1 when the operation failed, 2 on a usage
//! error (as clap reports them).

pub mod configs;
pub mod console;
pub mod consume;
pub mod consume_settings;
pub mod consumer;
pub mod consumer_group;
pub mod consumer_protocol;
pub mod dump_log;
pub mod fetched_records;
pub mod groups;
pub mod leader_election;
pub mod line_reader;
pub mod local_cluster;
pub mod metadata_quorum;
pub mod partitioner;
pub mod perf;
pub mod produce;
pub mod producer;
pub mod producer_config;
pub mod record_format;
pub mod stop_signal;
pub mod topics;
pub mod tune;

use std::process::ExitCode;
use std::time::Duration;

use weir_net::client::{ClientError, KafkaClient};

/// Where the tools connect without `--bootstrap-server` (Kafka's quickstart address).
pub const BOOTSTRAP_DEFAULT: &str = "localhost:9092";
/// Connect and per-request timeout of the tools.
pub const TOOL_TIMEOUT: Duration = Duration::from_secs(30);

/// Connects a tool to the cluster; the client id names the tool (`weir-topics`).
pub fn connect(bootstrap: &str, tool: &str) -> Result<KafkaClient, ClientError> {
    KafkaClient::connect(bootstrap, &format!("weir-{tool}"), TOOL_TIMEOUT)
}

/// Prints `error` as the tool's one-line failure and returns exit code 1.
pub fn fail(error: impl std::fmt::Display) -> ExitCode {
    eprintln!("Error: {error}");
    ExitCode::FAILURE
}

/// Splits `key=value` (Kafka's `--property`, `--config`, `--producer-property` syntax).
pub fn parse_key_value(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((key, value)) if !key.trim().is_empty() => {
            Ok((key.trim().to_string(), value.to_string()))
        }
        _ => Err(format!("expected key=value, got '{text}'")),
    }
}

/// Helpers the tools' unit tests share.
#[cfg(test)]
pub(crate) mod test_support {
    use super::console::Properties;

    /// Parses `words` as the flags of one tool's `Args`, as if run as `tool words…`.
    pub fn parse_args<A: clap::Args>(tool: &'static str, words: &[&str]) -> Result<A, clap::Error> {
        let matches = A::augment_args(clap::Command::new(tool))
            .try_get_matches_from(std::iter::once(tool).chain(words.iter().copied()))?;
        A::from_arg_matches(&matches)
    }

    /// A property map from literal pairs.
    pub fn properties(pairs: &[(&str, &str)]) -> Properties {
        pairs
            .iter()
            .map(|(key, value)| (key.to_string(), value.to_string()))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_value_pairs_split_at_the_first_equals_sign() {
        assert_eq!(
            parse_key_value("key.separator=="),
            Ok(("key.separator".to_string(), "=".to_string()))
        );
        assert_eq!(
            parse_key_value("print.key=true"),
            Ok(("print.key".to_string(), "true".to_string()))
        );
        assert!(parse_key_value("novalue").is_err());
        assert!(parse_key_value("=x").is_err());
    }
}
