//! `weir consume`: kafka-console-consumer.sh. Prints records of one topic to stdout in
//! the format of Kafka's `DefaultMessageFormatter` ([`super::record_format`]); ends
//! with `Processed a total of N messages` on stderr, as Kafka's tool does.
//!
//! Without `--group` the tool assigns itself every partition (or the one `--partition`
//! names) and starts at the end, the beginning (`--from-beginning`) or `--offset`;
//! nothing is committed. With `--group` it is a member of a classic consumer group
//! ([`super::consumer_group`]): it starts at the group's committed offsets (else at
//! `auto.offset.reset`), commits what it printed every `auto.commit.interval.ms` and
//! at exit, and leaves the group on exit. SIGINT/SIGTERM stop it cleanly.

use std::collections::BTreeMap;
use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use weir_net::client::KafkaClient;

use super::console;
use super::consume_settings::{
    CONSUMER_KEYS, CONSUMER_KEYS_IGNORED, ConsumeSettings, OffsetReset, StartOffset, resolve,
};
use super::consumer::{
    ConsumeError, EARLIEST_TIMESTAMP, Fetcher, LATEST_TIMESTAMP, PartitionFetch,
};
use super::consumer_group::{GroupMember, Membership};
use super::record_format::FORMAT_KEYS;
use super::{BOOTSTRAP_DEFAULT, TOOL_TIMEOUT, parse_key_value, stop_signal};

/// Longest a fetch waits for data, so signals and heartbeats are served in time.
const POLL_WAIT_MS_MAX: i32 = 500;
/// How long the final commit and LeaveGroup retry an unreachable coordinator.
const CLOSE_RETRY_WINDOW: Duration = Duration::from_secs(5);
/// Sleep of a group member that holds no partition, between heartbeats.
const IDLE_SLEEP: Duration = Duration::from_millis(100);

#[derive(clap::Args, Debug)]
#[command(after_help = "Examples:\n  \
    weir consume --topic events --from-beginning\n  \
    weir consume --topic events --from-beginning --max-messages 10 \\\n      \
    --property print.key=true --property print.offset=true --property print.timestamp=true\n  \
    weir consume --topic events --partition 2 --offset 1000 --timeout-ms 5000\n  \
    weir consume --bootstrap-server broker1:9092 --topic orders --group billing\n\n\
Formatter properties (--property): print.timestamp, print.partition, print.offset,\n\
print.delivery, print.epoch, print.headers, print.key, print.value (all false but\n\
print.value), key.separator (TAB), line.separator (newline), headers.separator (,),\n\
null.literal (null). Output: [CreateTime:<ms>] [Partition:<p>] [Offset:<o>] [headers]\n\
[key] value, as kafka-console-consumer.sh prints it.\n\
Consumer properties (--consumer-property): group.id, client.id, auto.offset.reset,\n\
enable.auto.commit, auto.commit.interval.ms, isolation.level, session.timeout.ms,\n\
heartbeat.interval.ms, max.poll.interval.ms, fetch.max.wait.ms, fetch.min.bytes,\n\
fetch.max.bytes, max.partition.fetch.bytes, retry.backoff.ms.")]
pub struct Args {
    /// The server(s) to connect to: HOST1:PORT1,HOST2:PORT2.
    #[arg(long, value_name = "HOST:PORT", default_value = BOOTSTRAP_DEFAULT)]
    pub bootstrap_server: String,
    /// The topic to consume.
    #[arg(long)]
    pub topic: String,
    /// Consume only this partition (starts at its end unless --offset or --from-beginning).
    #[arg(long)]
    pub partition: Option<i32>,
    /// Where to start in --partition: a non-negative offset, earliest or latest.
    #[arg(long, value_name = "OFFSET", allow_hyphen_values = true)]
    pub offset: Option<String>,
    /// Start at the earliest record when there is no committed offset.
    #[arg(long)]
    pub from_beginning: bool,
    /// Exit after this many messages.
    #[arg(long, value_name = "COUNT")]
    pub max_messages: Option<u64>,
    /// Exit when no message arrived for this long.
    #[arg(long, value_name = "MS")]
    pub timeout_ms: Option<u64>,
    /// The consumer group to join (commits offsets).
    #[arg(long)]
    pub group: Option<String>,
    /// read_committed or read_uncommitted [default: read_uncommitted].
    #[arg(long, value_name = "LEVEL")]
    pub isolation_level: Option<String>,
    /// A formatter property key=value (repeatable; see below).
    #[arg(long = "property", value_name = "KEY=VALUE", value_parser = parse_key_value)]
    pub properties: Vec<(String, String)>,
    /// A formatter properties file; --property wins over it.
    #[arg(long, value_name = "FILE")]
    pub formatter_config: Option<PathBuf>,
    /// A consumer property key=value (repeatable; see below).
    #[arg(long = "consumer-property", value_name = "KEY=VALUE", value_parser = parse_key_value)]
    pub consumer_properties: Vec<(String, String)>,
    /// A consumer properties file; --consumer-property wins over it.
    #[arg(long = "consumer.config", value_name = "FILE")]
    pub consumer_config: Option<PathBuf>,
    /// Kept for compatibility: formatting a record cannot fail here.
    #[arg(long)]
    pub skip_message_on_error: bool,
    /// Key deserializer class (only String/ByteArray: bytes print as they are).
    #[arg(long, value_name = "CLASS")]
    pub key_deserializer: Option<String>,
    /// Value deserializer class (only String/ByteArray: bytes print as they are).
    #[arg(long, value_name = "CLASS")]
    pub value_deserializer: Option<String>,
}

/// The consumer's state between fetch rounds.
struct Session {
    client: KafkaClient,
    topic: String,
    fetcher: Fetcher,
    member: Option<GroupMember>,
    settings: ConsumeSettings,
    /// Partition → next offset to print.
    positions: BTreeMap<i32, i64>,
    /// Partition → leader epoch of the last record printed (committed with the offset).
    epochs: BTreeMap<i32, Option<i32>>,
    processed: u64,
}

impl Session {
    /// Start offsets of `partitions` by the reset policy.
    fn reset(&mut self, partitions: &[i32]) -> Result<BTreeMap<i32, i64>, ConsumeError> {
        if partitions.is_empty() {
            return Ok(BTreeMap::new());
        }
        let timestamp = match self.settings.reset {
            OffsetReset::Earliest => EARLIEST_TIMESTAMP,
            OffsetReset::Latest => LATEST_TIMESTAMP,
            OffsetReset::Fail => {
                let names: Vec<String> = partitions
                    .iter()
                    .map(|partition| format!("{}-{partition}", self.topic))
                    .collect();
                return Err(ConsumeError::Group(format!(
                    "Undefined offset with no reset policy for partitions: [{}]",
                    names.join(", ")
                )));
            }
        };
        self.fetcher
            .list_offsets(&mut self.client, partitions, timestamp)
    }

    /// Positions for a fresh assignment (group) or the tool's own choice (no group).
    fn start(&mut self) -> Result<(), ConsumeError> {
        self.positions.clear();
        self.epochs.clear();
        if let Some(member) = self.member.as_mut() {
            let assigned = member.join(&mut self.client)?;
            let committed = member.committed_offsets(&mut self.client, &assigned)?;
            let missing: Vec<i32> = assigned
                .iter()
                .copied()
                .filter(|partition| !committed.contains_key(partition))
                .collect();
            self.positions.extend(committed);
            let reset = self.reset(&missing)?;
            self.positions.extend(reset);
            return Ok(());
        }
        let count = self.fetcher.partition_count();
        match self.settings.partition {
            Some((partition, start)) => {
                if partition >= count {
                    return Err(ConsumeError::PartitionMissing {
                        topic: self.topic.clone(),
                        partition,
                        partitions: count,
                    });
                }
                let offset = match start {
                    StartOffset::At(offset) => offset,
                    StartOffset::Earliest | StartOffset::Latest => {
                        let timestamp = if start == StartOffset::Earliest {
                            EARLIEST_TIMESTAMP
                        } else {
                            LATEST_TIMESTAMP
                        };
                        let found =
                            self.fetcher
                                .list_offsets(&mut self.client, &[partition], timestamp)?;
                        found[&partition]
                    }
                };
                self.positions.insert(partition, offset);
            }
            None => {
                let all: Vec<i32> = (0..count).collect();
                let reset = self.reset(&all)?;
                self.positions.extend(reset);
            }
        }
        Ok(())
    }

    fn commit(&mut self) -> Result<Membership, ConsumeError> {
        let Some(member) = self.member.as_mut() else {
            return Ok(Membership::Stable);
        };
        let offsets: BTreeMap<i32, (i64, Option<i32>)> = self
            .positions
            .iter()
            .map(|(&partition, &offset)| {
                (
                    partition,
                    (offset, self.epochs.get(&partition).copied().flatten()),
                )
            })
            .collect();
        member.commit(&mut self.client, &offsets)
    }

    /// Runs until max messages, timeout, a signal or a closed stdout.
    fn run(&mut self, out: &mut impl Write) -> Result<(), ConsumeError> {
        self.start()?;
        let mut last_record_at = Instant::now();
        let mut last_commit_at = Instant::now();
        let auto_commit = self.member.is_some() && self.settings.auto_commit;
        loop {
            if stop_signal::requested() || self.max_reached() {
                return Ok(());
            }
            if let Some(timeout) = self.settings.timeout
                && last_record_at.elapsed() >= timeout
            {
                return Ok(());
            }
            if let Some(member) = self.member.as_mut()
                && member.heartbeat_if_due(&mut self.client)? == Membership::Rejoin
            {
                if auto_commit {
                    // Eager rebalance: hand over what was printed before giving it up.
                    let _ = self.commit();
                }
                self.start()?;
            }
            if auto_commit && last_commit_at.elapsed() >= self.settings.auto_commit_interval {
                if self.commit()? == Membership::Rejoin {
                    self.start()?;
                }
                last_commit_at = Instant::now();
            }
            if self.positions.is_empty() {
                std::thread::sleep(IDLE_SLEEP);
                continue;
            }
            let mut wait_ms = self.settings.fetch.max_wait_ms.min(POLL_WAIT_MS_MAX);
            if let Some(timeout) = self.settings.timeout {
                let left = timeout.saturating_sub(last_record_at.elapsed());
                wait_ms = wait_ms.min(left.as_millis() as i32);
            }
            let fetched = self
                .fetcher
                .fetch(&mut self.client, &self.positions, wait_ms)?;
            let mut printed_any = false;
            let mut out_of_range = Vec::new();
            for (partition, fetched) in fetched {
                match fetched {
                    PartitionFetch::Records {
                        records,
                        next_offset,
                    } => {
                        let mut complete = true;
                        for record in &records {
                            if self.max_reached() {
                                complete = false;
                                break;
                            }
                            if self.settings.format.write(record, out).is_err() {
                                eprintln!("Unable to write to standard out, closing consumer.");
                                return Ok(());
                            }
                            self.processed += 1;
                            printed_any = true;
                            self.positions.insert(partition, record.offset + 1);
                            self.epochs.insert(partition, record.leader_epoch);
                        }
                        if complete {
                            let position = self.positions.entry(partition).or_insert(next_offset);
                            *position = (*position).max(next_offset);
                        }
                    }
                    PartitionFetch::OutOfRange => out_of_range.push(partition),
                    PartitionFetch::Retry(_) => {}
                }
            }
            if out.flush().is_err() {
                eprintln!("Unable to write to standard out, closing consumer.");
                return Ok(());
            }
            if !out_of_range.is_empty() {
                let reset = self.reset(&out_of_range)?;
                self.positions.extend(reset);
            }
            if printed_any {
                last_record_at = Instant::now();
            }
        }
    }

    fn max_reached(&self) -> bool {
        self.settings
            .max_messages
            .is_some_and(|max| self.processed >= max)
    }

    /// Commits (when auto commit is on) and leaves the group; problems are warnings.
    fn close(&mut self) {
        let Some(member) = self.member.as_mut() else {
            return;
        };
        member.limit_retries(CLOSE_RETRY_WINDOW);
        if self.settings.auto_commit {
            match self.commit() {
                Ok(Membership::Stable) => {}
                Ok(Membership::Rejoin) => eprintln!(
                    "Warning: the final offset commit was refused because the group rebalanced; \
                     another member continues from the previous commit"
                ),
                Err(error) => eprintln!("Warning: the final offset commit failed: {error}"),
            }
        }
        if let Some(member) = self.member.as_mut()
            && let Err(error) = member.leave(&mut self.client)
        {
            eprintln!(
                "Warning: leaving group '{}' failed: {error}",
                member.group_id()
            );
        }
    }
}

pub fn run(args: Args) -> ExitCode {
    let resolved =
        console::load_properties(args.consumer_config.as_deref(), &args.consumer_properties)
            .and_then(|consumer| {
                let formatter =
                    console::load_properties(args.formatter_config.as_deref(), &args.properties)?;
                console::warn_unknown(&consumer, CONSUMER_KEYS, CONSUMER_KEYS_IGNORED);
                console::warn_unknown(&formatter, FORMAT_KEYS, &[]);
                resolve(&args, &consumer, &formatter)
            });
    let settings = match resolved {
        Ok(settings) => settings,
        Err(message) => {
            eprintln!("Error: {message}");
            return ExitCode::from(2);
        }
    };
    stop_signal::install();
    let mut client =
        match KafkaClient::connect(&args.bootstrap_server, &settings.client_id, TOOL_TIMEOUT) {
            Ok(client) => client,
            Err(error) => return super::fail(error),
        };
    let fetcher = match Fetcher::new(&mut client, &args.topic, settings.fetch.clone()) {
        Ok(fetcher) => fetcher,
        Err(error) => return super::fail(error),
    };
    let mut session = Session {
        client,
        topic: args.topic.clone(),
        fetcher,
        member: settings
            .group
            .clone()
            .map(|group| GroupMember::new(group, &args.topic)),
        settings,
        positions: BTreeMap::new(),
        epochs: BTreeMap::new(),
        processed: 0,
    };
    let stdout = std::io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    let outcome = session.run(&mut out);
    let _ = out.flush();
    session.close();
    eprintln!("Processed a total of {} messages", session.processed);
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => super::fail(error),
    }
}
