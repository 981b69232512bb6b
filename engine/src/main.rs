//! The `weir` command line.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;
use weir_engine::cli;
use weir_engine::config::BrokerConfig;

#[derive(Parser)]
#[command(
    name = "weir",
    version,
    about = "A Kafka-compatible, thread-per-core message broker"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a broker. With no options: node 0 on 127.0.0.1:9092, data in ./weir-data.
    #[command(
        after_help = "Examples:\n  weir broker\n  weir broker --config server.properties\n  \
        weir broker --override listeners=PLAINTEXT://127.0.0.1:19092 --override log.dirs=/data/a,/data/b\n  \
        WEIR_NUM_PARTITIONS=6 weir broker\n\nPrecedence: defaults < --config file < WEIR_* env vars < --override."
    )]
    Broker {
        /// A Kafka server.properties file.
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
        /// Set a config key, as kafka-server-start.sh --override (repeatable).
        #[arg(long = "override", value_name = "KEY=VALUE")]
        overrides: Vec<String>,
        /// Number of shards (default: one per usable core).
        #[arg(long)]
        shards: Option<usize>,
    },
    /// Create, list, describe, alter and delete topics (kafka-topics.sh).
    Topics(cli::topics::Args),
    /// Produce lines from stdin (kafka-console-producer.sh).
    Produce(cli::produce::Args),
    /// Print records to stdout (kafka-console-consumer.sh).
    Consume(cli::consume::Args),
    /// List, describe, reset and delete consumer groups (kafka-consumer-groups.sh).
    Groups(cli::groups::Args),
    /// Describe and alter topic and broker configs (kafka-configs.sh).
    Configs(cli::configs::Args),
    /// Print segment, index and time index files (kafka-dump-log.sh).
    DumpLog(cli::dump_log::Args),
    /// Elect preferred or unclean leaders (kafka-leader-election.sh).
    LeaderElection(cli::leader_election::Args),
    /// Run a replicated cluster of N brokers on this machine (each its own ports and
    /// data directory) until Ctrl-C.
    LocalCluster(cli::local_cluster::Args),
    /// Describe the metadata quorum (kafka-metadata-quorum.sh).
    MetadataQuorum(cli::metadata_quorum::Args),
    /// Check this machine's settings for running a broker, with the fix for each.
    Tune(cli::tune::Args),
    /// Load tools: producer, consumer and end-to-end latency benchmarks
    /// (kafka-*-perf-test.sh) and the LinkedIn benchmark.
    Perf(cli::perf::Args),
}

fn main() -> ExitCode {
    // Before any thread starts (see the module comment).
    let malloc =
        weir_engine::malloc::keep_freed_memory(std::env::vars_os().map(|(name, value)| {
            (
                name.to_string_lossy().into_owned(),
                value.to_string_lossy().into_owned(),
            )
        }));
    let filter = EnvFilter::try_from_env("WEIR_LOG")
        .or_else(|_| EnvFilter::try_from_default_env())
        .unwrap_or_else(|_| EnvFilter::new("info"));
    // Colours only for a terminal: a log redirected to a file stays plain text, for
    // grep and for the tools that count its lines (`weir perf linkedin`).
    let colours = std::io::stderr().is_terminal()
        && std::env::var_os("NO_COLOR").is_none_or(|value| value.is_empty());
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(colours)
        .init();
    tracing::debug!(outcome = ?malloc, "malloc thresholds");
    let cli = Cli::parse();
    match cli.command {
        Command::Topics(args) => cli::topics::run(args),
        Command::Produce(args) => cli::produce::run(args),
        Command::Consume(args) => cli::consume::run(args),
        Command::Groups(args) => cli::groups::run(args),
        Command::Configs(args) => cli::configs::run(args),
        Command::DumpLog(args) => cli::dump_log::run(args),
        Command::Tune(args) => cli::tune::run(args),
        Command::MetadataQuorum(args) => cli::metadata_quorum::run(args),
        Command::LocalCluster(args) => cli::local_cluster::run(args),
        Command::LeaderElection(args) => cli::leader_election::run(args),
        Command::Perf(args) => cli::perf::run(args),
        Command::Broker {
            config,
            overrides,
            shards,
        } => {
            let loaded = BrokerConfig::load(config.as_deref(), std::env::vars(), &overrides);
            let config = match loaded {
                Ok(config) => config,
                Err(error) => {
                    eprintln!("weir: {error}");
                    return ExitCode::from(2);
                }
            };
            if shards == Some(0) {
                eprintln!("weir: --shards must be at least 1");
                return ExitCode::from(2);
            }
            match weir_engine::server::run(config, shards) {
                Ok(()) => ExitCode::SUCCESS,
                Err(error) => {
                    eprintln!("weir: {error:#}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}
