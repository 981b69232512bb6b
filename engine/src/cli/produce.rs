//! `weir produce`: kafka-console-producer.sh. Reads stdin line by line, one record per
//! line (key and headers split off when `parse.key`/`parse.headers` say so, exactly as
//! Kafka's `LineMessageReader`), and produces them through [`super::producer`].
//!
//! Flags and defaults are the Kafka tool's (`--request-required-acks -1`, `--timeout`
//! = linger.ms 1000, `--batch-size` 16384, `--compression-codec` alone = gzip); a flag
//! given explicitly beats the same setting in `--producer-property`, which beats the
//! flag's default, as Kafka merges them. Unlike Kafka's tool, failed sends make the
//! exit code 1, and stdout stays empty (errors and the summary go to stderr).

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use weir_net::client::KafkaClient;

use super::console;
use super::line_reader::{Line, LineReader, READER_KEYS, spawn_stdin_reader};
use super::producer::{ProduceError, Producer};
use super::producer_config::{PRODUCER_KEYS, PRODUCER_KEYS_IGNORED, producer_config};
use super::{BOOTSTRAP_DEFAULT, TOOL_TIMEOUT, parse_key_value, stop_signal};

/// Longest the main loop sleeps before checking linger deadlines and signals.
const POLL_INTERVAL: Duration = Duration::from_millis(100);
/// Runs at least this long get the summary line on stderr (short ones stay quiet).
const SUMMARY_AFTER: Duration = Duration::from_secs(1);

#[derive(clap::Args, Debug)]
#[command(after_help = "Examples:\n  \
    weir produce --topic events < events.txt\n  \
    weir produce --bootstrap-server broker1:9092 --topic users \\\n      \
    --property parse.key=true --property key.separator=: <<< 'alice:{\"age\":31}'\n  \
    weir produce --topic logs --compression-codec zstd --producer-property linger.ms=50\n  \
    weir produce --topic orders --property parse.headers=true <<< $'source:web,v:2\\tpayload'\n\n\
Reader properties (--property): parse.key, key.separator (default TAB), parse.headers,\n\
headers.delimiter (TAB), headers.separator (,), headers.key.separator (:), ignore.error,\n\
null.marker.\n\
Producer properties (--producer-property): acks, linger.ms, batch.size, compression.type,\n\
enable.idempotence, client.id, request.timeout.ms, retries, retry.backoff.ms,\n\
max.request.size, max.block.ms.\n\n\
Exit code 1 if any record was not acknowledged; failures name the partition and the\n\
Kafka error on stderr.")]
pub struct Args {
    /// The server(s) to connect to: HOST1:PORT1,HOST2:PORT2.
    #[arg(long, value_name = "HOST:PORT", default_value = BOOTSTRAP_DEFAULT)]
    pub bootstrap_server: String,
    /// The topic to produce messages to.
    #[arg(long)]
    pub topic: String,
    /// Send each message synchronously, one at a time as it arrives.
    #[arg(long)]
    pub sync: bool,
    /// Compression codec: none, gzip, snappy, lz4 or zstd (gzip when given without a value).
    #[arg(long, value_name = "CODEC", num_args = 0..=1, default_missing_value = "gzip")]
    pub compression_codec: Option<String>,
    /// Bytes per partition batch (batch.size) [default: 16384].
    #[arg(long, value_name = "SIZE")]
    pub batch_size: Option<usize>,
    /// Same as --batch-size (batch.size), as Kafka's tool has both.
    #[arg(long, value_name = "SIZE")]
    pub max_partition_memory_bytes: Option<usize>,
    /// Retries of a retriable send failure (retries) [default: 3].
    #[arg(long, value_name = "COUNT")]
    pub message_send_max_retries: Option<u32>,
    /// Wait before each retry (retry.backoff.ms) [default: 100].
    #[arg(long, value_name = "MS")]
    pub retry_backoff_ms: Option<u64>,
    /// How long a message may wait for its batch to fill (linger.ms) [default: 1000].
    #[arg(long = "timeout", value_name = "MS")]
    pub linger_ms: Option<u64>,
    /// Acknowledgements the leader waits for: -1/all, 0 or 1 (acks) [default: -1].
    #[arg(long, value_name = "ACKS")]
    pub request_required_acks: Option<String>,
    /// The broker's ack timeout (request.timeout.ms) [default: 1500].
    #[arg(long, value_name = "MS")]
    pub request_timeout_ms: Option<u64>,
    /// How long to wait for the topic's partition leaders (max.block.ms) [default: 60000].
    #[arg(long, value_name = "MS")]
    pub max_block_ms: Option<u64>,
    /// A reader property key=value (repeatable; see below).
    #[arg(long = "property", value_name = "KEY=VALUE", value_parser = parse_key_value)]
    pub properties: Vec<(String, String)>,
    /// A properties file for the reader; --property wins over it.
    #[arg(long, value_name = "FILE")]
    pub reader_config: Option<PathBuf>,
    /// A producer property key=value (repeatable; see below).
    #[arg(long = "producer-property", value_name = "KEY=VALUE", value_parser = parse_key_value)]
    pub producer_properties: Vec<(String, String)>,
    /// A producer properties file; --producer-property wins over it.
    #[arg(long = "producer.config", value_name = "FILE")]
    pub producer_config: Option<PathBuf>,
}

/// How reading stdin ended.
enum Input {
    /// End of input, or SIGINT/SIGTERM.
    Done,
    /// A line did not parse or stdin failed (reported on stderr).
    Refused,
}

/// Reads lines and produces them until stdin ends, a line is refused or a signal
/// arrives; sends lingered batches while waiting for input.
fn produce_lines(
    producer: &mut Producer,
    lines: &Receiver<Line>,
    reader: &LineReader,
    sync: bool,
) -> Result<Input, ProduceError> {
    let mut line_number = 0u64;
    loop {
        if stop_signal::requested() {
            return Ok(Input::Done);
        }
        let wait = producer
            .next_deadline()
            .map_or(POLL_INTERVAL, |deadline| {
                deadline.saturating_duration_since(Instant::now())
            })
            .min(POLL_INTERVAL);
        match lines.recv_timeout(wait) {
            Ok(Ok(line)) => {
                line_number += 1;
                let mut record = match reader.parse(&line, line_number) {
                    Ok(record) => record,
                    Err(message) => {
                        eprintln!("Error: {message}");
                        return Ok(Input::Refused);
                    }
                };
                record.timestamp_ms = now_ms();
                producer.send(record)?;
                if sync {
                    producer.flush()?;
                } else if producer
                    .next_deadline()
                    .is_some_and(|deadline| deadline <= Instant::now())
                {
                    // Lines arriving back to back must not hold up lingered batches.
                    producer.poll()?;
                }
            }
            Ok(Err(error)) => {
                eprintln!("Error: cannot read stdin: {error}");
                return Ok(Input::Refused);
            }
            Err(RecvTimeoutError::Timeout) => producer.poll()?,
            Err(RecvTimeoutError::Disconnected) => return Ok(Input::Done),
        }
    }
}

use weir_storage::now_ms;

pub fn run(args: Args) -> ExitCode {
    let settings =
        console::load_properties(args.producer_config.as_deref(), &args.producer_properties)
            .and_then(|producer_properties| {
                let reader_properties =
                    console::load_properties(args.reader_config.as_deref(), &args.properties)?;
                console::warn_unknown(&producer_properties, PRODUCER_KEYS, PRODUCER_KEYS_IGNORED);
                console::warn_unknown(&reader_properties, READER_KEYS, &[]);
                Ok((
                    producer_config(&args, &producer_properties)?,
                    LineReader::from_properties(&reader_properties)?,
                ))
            });
    let (config, reader) = match settings {
        Ok(settings) => settings,
        Err(message) => {
            eprintln!("Error: {message}");
            return ExitCode::from(2);
        }
    };
    stop_signal::install();
    let started = Instant::now();
    let client = match KafkaClient::connect(&args.bootstrap_server, &config.client_id, TOOL_TIMEOUT)
    {
        Ok(client) => client,
        Err(error) => return super::fail(error),
    };
    let mut producer = Producer::new(client, &args.bootstrap_server, &args.topic, config);
    let lines = spawn_stdin_reader();
    let outcome = produce_lines(&mut producer, &lines, &reader, args.sync);
    let mut failed = matches!(outcome, Ok(Input::Refused));
    let outcome = outcome.and_then(|_| producer.flush());
    if let Err(error) = outcome {
        eprintln!("Error: {error}");
        failed = true;
    }
    let stats = producer.stats();
    let elapsed = started.elapsed();
    if stats.failed > 0 {
        eprintln!(
            "Produced {} of {} records to {} in {:.1} s; {} failed",
            stats.acknowledged,
            stats.acknowledged + stats.failed,
            args.topic,
            elapsed.as_secs_f64(),
            stats.failed
        );
    } else if elapsed >= SUMMARY_AFTER {
        eprintln!(
            "Produced {} records to {} in {:.1} s",
            stats.acknowledged,
            args.topic,
            elapsed.as_secs_f64()
        );
    }
    if failed || stats.failed > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
