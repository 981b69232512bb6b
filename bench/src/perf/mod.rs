//! Load tools with the flags and output of Kafka's `kafka-producer-perf-test.sh`
//! (`produce`), `kafka-consumer-perf-test.sh` (`consume`) and `EndToEndLatency`
//! (`e2e`), as `weir perf ...`. Plain Kafka protocol over blocking sockets, so they
//! measure any Kafka-compatible broker.
//!
//! The producer is built to outrun the broker: record batches are written straight
//! into the request frame (no per-record allocation, one CRC-32C per batch, one
//! `write` per request), up to `max.in.flight.requests.per.connection` requests are
//! in flight, and responses are read on a thread of their own. Latencies go into
//! hdrhistogram in microseconds.

pub mod consume;
pub mod e2e;
pub mod produce;
pub mod props;

use std::collections::BTreeMap;
use std::time::Duration;

use hdrhistogram::Histogram;
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::metadata_response::MetadataResponsePartition;
use kafka_protocol::messages::{MetadataRequest, MetadataResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use weir_net::client::{ClientError, KafkaClient};

/// Errors of the load tools, as sentences for the operator.
#[derive(Debug, thiserror::Error)]
pub enum PerfError {
    #[error("{0}")]
    Usage(String),
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error("i/o with {address} failed: {source}")]
    Io {
        address: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Broker(String),
}

/// How long setup requests and blocking reads wait (request.timeout.ms's default).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// A topic's partitions by leader: (leader address, partitions it leads).
pub struct Leaders {
    pub by_broker: BTreeMap<String, Vec<i32>>,
    pub partitions: usize,
}

/// Metadata for `topic`, creating it when the broker auto-creates topics (as a
/// producer's Metadata request allows). Waits until every partition has a leader.
pub fn topic_leaders(
    client: &mut KafkaClient,
    topic: &str,
    allow_create: bool,
) -> Result<Leaders, PerfError> {
    let request = MetadataRequest::default()
        .with_topics(Some(vec![MetadataRequestTopic::default().with_name(Some(
            TopicName(StrBytes::from_string(topic.to_string())),
        ))]))
        .with_allow_auto_topic_creation(allow_create);
    let deadline = std::time::Instant::now() + REQUEST_TIMEOUT;
    loop {
        let response: MetadataResponse = client.metadata_request(&request)?;
        let brokers: BTreeMap<i32, String> = response
            .brokers
            .iter()
            .map(|broker| (broker.node_id.0, format!("{}:{}", broker.host, broker.port)))
            .collect();
        if let Some(found) = response.topics.first() {
            let ready = found.error_code == 0
                && !found.partitions.is_empty()
                && found
                    .partitions
                    .iter()
                    .all(|partition| brokers.contains_key(&partition.leader_id.0));
            // Each leader must know the topic itself (a new topic reaches the brokers a
            // moment after the one that answered), or its first produce is refused.
            let leaders_agree = |client: &mut KafkaClient| -> Result<bool, PerfError> {
                let leader_ids: std::collections::BTreeSet<i32> =
                    found.partitions.iter().map(|p| p.leader_id.0).collect();
                for node in leader_ids {
                    let led = |partitions: &[MetadataResponsePartition]| {
                        partitions.iter().filter(|p| p.leader_id.0 == node).count()
                    };
                    let (_, own) = client.broker(node)?.call(&request)?;
                    let agrees = own.topics.first().is_some_and(|topic| {
                        topic.error_code == 0 && led(&topic.partitions) == led(&found.partitions)
                    });
                    if !agrees {
                        return Ok(false);
                    }
                }
                Ok(true)
            };
            if ready && leaders_agree(client)? {
                let mut by_broker: BTreeMap<String, Vec<i32>> = BTreeMap::new();
                for partition in &found.partitions {
                    by_broker
                        .entry(brokers[&partition.leader_id.0].clone())
                        .or_default()
                        .push(partition.partition_index);
                }
                for partitions in by_broker.values_mut() {
                    partitions.sort_unstable();
                }
                return Ok(Leaders {
                    by_broker,
                    partitions: found.partitions.len(),
                });
            }
            if std::time::Instant::now() > deadline {
                return Err(PerfError::Broker(format!(
                    "topic {topic} has no leader for every partition (error {}: {})",
                    found.error_code,
                    weir_net::client::error_name(found.error_code)
                )));
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A latency histogram in microseconds, 1 µs to 1 hour, 3 significant digits.
pub fn latency_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("valid histogram bounds")
}

/// Latency summary in milliseconds.
#[derive(Clone, Copy, Debug, Default, PartialEq, serde::Serialize)]
pub struct Latencies {
    pub avg_ms: f64,
    pub max_ms: f64,
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
}

impl Latencies {
    pub fn of(histogram: &Histogram<u64>) -> Latencies {
        if histogram.is_empty() {
            return Latencies::default();
        }
        let ms = |micros: u64| micros as f64 / 1000.0;
        Latencies {
            avg_ms: histogram.mean() / 1000.0,
            max_ms: ms(histogram.max()),
            p50_ms: ms(histogram.value_at_quantile(0.50)),
            p95_ms: ms(histogram.value_at_quantile(0.95)),
            p99_ms: ms(histogram.value_at_quantile(0.99)),
            p999_ms: ms(histogram.value_at_quantile(0.999)),
        }
    }
}

/// Kafka's "MB": MiB.
pub const MIB: f64 = 1024.0 * 1024.0;
