//! `weir perf produce|consume|e2e-latency|linkedin`: Kafka's perf tools
//! (kafka-producer-perf-test.sh, kafka-consumer-perf-test.sh, EndToEndLatency) and the
//! LinkedIn benchmark, over `weir_bench::perf` and `weir_bench::linkedin`.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Subcommand;
use weir_bench::perf::PerfError;
use weir_bench::perf::consume::{ConsumerPerfConfig, HEADER, run_consumer};
use weir_bench::perf::e2e::{E2eConfig, run_e2e};
use weir_bench::perf::produce::{ProducerPerfConfig, random_payload, run_producer};
use weir_bench::perf::props::Props;

#[derive(clap::Args, Debug)]
#[command(
    after_help = "Examples:\n  weir perf produce --topic perf --num-records 5000000 --record-size 100 --throughput -1 \\\n      --producer-props bootstrap.servers=127.0.0.1:9092 acks=1 batch.size=262144\n  \
weir perf consume --bootstrap-server 127.0.0.1:9092 --topic perf --messages 5000000\n  \
weir perf e2e-latency --bootstrap-server 127.0.0.1:9092 --topic lat --num-records 10000 --producer-acks 1 --record-size 100\n  \
weir perf linkedin --out bench/results/linkedin"
)]
pub struct Args {
    #[command(subcommand)]
    pub action: Action,
}

#[derive(Subcommand, Debug)]
pub enum Action {
    /// kafka-producer-perf-test.sh: progress every 5 s, then Kafka's summary line
    /// (percentiles printed with 2 decimals, as sub-millisecond values matter).
    Produce {
        #[arg(long)]
        topic: String,
        #[arg(long)]
        num_records: u64,
        /// Bytes per record (random uppercase letters, as Kafka).
        #[arg(long, conflicts_with = "payload_file")]
        record_size: Option<usize>,
        /// Record values: this file split by --payload-delimiter.
        #[arg(long)]
        payload_file: Option<PathBuf>,
        #[arg(long, default_value = "\\n")]
        payload_delimiter: String,
        /// Records per second; -1 for no limit.
        #[arg(long, allow_negative_numbers = true)]
        throughput: f64,
        /// Producer configs as key=value (several after one flag).
        #[arg(long, num_args = 1..)]
        producer_props: Vec<String>,
        #[arg(long = "producer.config")]
        producer_config: Option<PathBuf>,
        #[arg(long)]
        bootstrap_server: Option<String>,
        /// Accepted for compatibility; weir prints no client metrics.
        #[arg(long)]
        print_metrics: bool,
    },
    /// kafka-consumer-perf-test.sh. Assigns itself the partitions (no group join, so
    /// rebalance.time.ms is 0); --group is accepted and ignored.
    Consume {
        #[arg(long)]
        bootstrap_server: String,
        #[arg(long)]
        topic: String,
        /// Records to consume (Kafka's --messages; --num-records is the newer name).
        #[arg(long, alias = "num-records")]
        messages: u64,
        /// Stop when nothing arrives for this many ms.
        #[arg(long, default_value_t = 10_000)]
        timeout: u64,
        /// max.partition.fetch.bytes.
        #[arg(long, default_value_t = 1_048_576)]
        fetch_size: i32,
        #[arg(long)]
        from_latest: bool,
        #[arg(long = "consumer.config")]
        consumer_config: Option<PathBuf>,
        #[arg(long, num_args = 1..)]
        consumer_props: Vec<String>,
        #[arg(long)]
        show_detailed_stats: bool,
        #[arg(long, default_value_t = 5000)]
        reporting_interval: u64,
        #[arg(long)]
        hide_header: bool,
        #[arg(long)]
        group: Option<String>,
        #[arg(long)]
        print_metrics: bool,
    },
    /// EndToEndLatency: one record at a time (Kafka's method), or with --throughput a
    /// steady load whose every record's produce-to-consume latency is measured.
    E2eLatency {
        #[arg(long)]
        bootstrap_server: String,
        #[arg(long)]
        topic: String,
        #[arg(long)]
        num_records: u64,
        #[arg(long, default_value = "1")]
        producer_acks: String,
        #[arg(long, default_value_t = 100)]
        record_size: usize,
        /// weir extension: records per second of background load.
        #[arg(long)]
        throughput: Option<f64>,
        #[arg(long, num_args = 1..)]
        producer_props: Vec<String>,
        #[arg(long, num_args = 1..)]
        consumer_props: Vec<String>,
    },
    /// LinkedIn's 2014 benchmark matrix against a broker this command starts, beside
    /// LinkedIn's published numbers; writes results.json and SVG plots to --out.
    Linkedin(weir_bench::linkedin::Args),
}

fn fail(error: PerfError) -> ExitCode {
    eprintln!("{error}");
    match error {
        PerfError::Usage(_) => ExitCode::from(2),
        _ => ExitCode::from(1),
    }
}

fn split_payloads(bytes: &[u8], delimiter: &str) -> Vec<Vec<u8>> {
    let delimiter = delimiter.replace("\\n", "\n").replace("\\t", "\t");
    let delimiter = delimiter.as_bytes();
    let mut payloads = Vec::new();
    let mut rest = bytes;
    while !rest.is_empty() {
        match rest
            .windows(delimiter.len())
            .position(|window| window == delimiter)
        {
            Some(at) => {
                if at > 0 {
                    payloads.push(rest[..at].to_vec());
                }
                rest = &rest[at + delimiter.len()..];
            }
            None => {
                payloads.push(rest.to_vec());
                break;
            }
        }
    }
    payloads
}

pub fn run(args: Args) -> ExitCode {
    let result = match args.action {
        Action::Produce {
            topic,
            num_records,
            record_size,
            payload_file,
            payload_delimiter,
            throughput,
            producer_props,
            producer_config,
            bootstrap_server,
            print_metrics: _,
        } => (|| {
            let mut props = Props::load(producer_config.as_deref(), &producer_props)?;
            if let Some(bootstrap) = bootstrap_server {
                props.set("bootstrap.servers", &bootstrap);
            }
            let payloads = match (record_size, payload_file) {
                (Some(size), None) => vec![random_payload(size)],
                (None, Some(path)) => {
                    let bytes = std::fs::read(&path).map_err(|error| {
                        PerfError::Usage(format!("cannot read {}: {error}", path.display()))
                    })?;
                    let payloads = split_payloads(&bytes, &payload_delimiter);
                    if payloads.is_empty() {
                        return Err(PerfError::Usage(format!(
                            "{} holds no payload",
                            path.display()
                        )));
                    }
                    payloads
                }
                _ => {
                    return Err(PerfError::Usage(
                        "Either --record-size or --payload-file must be specified but not both."
                            .into(),
                    ));
                }
            };
            let config = ProducerPerfConfig {
                topic,
                num_records,
                payloads,
                throughput,
                props,
                stamp_send_time: None,
            };
            let result = run_producer(&config, &mut std::io::stdout())?;
            println!("{}", result.summary_line());
            Ok(())
        })(),
        Action::Consume {
            bootstrap_server,
            topic,
            messages,
            timeout,
            fetch_size,
            from_latest,
            consumer_config,
            consumer_props,
            show_detailed_stats,
            reporting_interval,
            hide_header,
            group: _,
            print_metrics: _,
        } => (|| {
            let mut props = Props::load(consumer_config.as_deref(), &consumer_props)?;
            props.set("bootstrap.servers", &bootstrap_server);
            if props.get("max.partition.fetch.bytes").is_none() {
                props.set("max.partition.fetch.bytes", &fetch_size.to_string());
            }
            let config = ConsumerPerfConfig {
                topic,
                num_records: messages,
                timeout: Duration::from_millis(timeout),
                from_latest,
                partitions: None,
                props,
                reporting_interval: show_detailed_stats
                    .then(|| Duration::from_millis(reporting_interval.max(1))),
            };
            if show_detailed_stats && !hide_header {
                println!(
                    "time, data.consumed.in.MB, MB.sec, data.consumed.in.nMsg, nMsg.sec, rebalance.time.ms, fetch.time.ms, fetch.MB.sec, fetch.nMsg.sec"
                );
            }
            let result = run_consumer(&config, &mut std::io::stdout())?;
            if result.timed_out {
                eprintln!(
                    "WARNING: Exiting before consuming the expected number of messages: timeout ({timeout} ms) exceeded. You can use the --timeout option to increase the timeout."
                );
            }
            if !show_detailed_stats {
                if !hide_header {
                    println!("{HEADER}");
                }
                println!("{}", result.values_line());
            }
            Ok(())
        })(),
        Action::E2eLatency {
            bootstrap_server,
            topic,
            num_records,
            producer_acks,
            record_size,
            throughput,
            producer_props,
            consumer_props,
        } => (|| {
            let mut producer = Props::load(None, &producer_props)?;
            producer.set("bootstrap.servers", &bootstrap_server);
            let mut consumer = Props::load(None, &consumer_props)?;
            consumer.set("bootstrap.servers", &bootstrap_server);
            let config = E2eConfig {
                topic,
                num_records,
                record_size,
                producer_acks,
                throughput,
                producer_props: producer,
                consumer_props: consumer,
            };
            let result = run_e2e(&config, &mut std::io::stdout())?;
            println!("{}", result.lines());
            if throughput.is_some() {
                println!(
                    "{} records at {:.1} records/sec",
                    result.records, result.records_per_s
                );
            }
            Ok(())
        })(),
        Action::Linkedin(args) => weir_bench::linkedin::run(args),
    };
    let _ = std::io::stdout().flush();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => fail(error),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_files_split_on_the_delimiter_without_empty_values() {
        assert_eq!(
            split_payloads(b"a\nbb\n\nccc", "\\n"),
            vec![b"a".to_vec(), b"bb".to_vec(), b"ccc".to_vec()]
        );
        assert_eq!(
            split_payloads(b"x||y||", "||"),
            vec![b"x".to_vec(), b"y".to_vec()]
        );
    }
}
