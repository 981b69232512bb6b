//! `weir perf e2e-latency`: Kafka's EndToEndLatency, plus latency under load.
//!
//! Without `--throughput` (Kafka's method): one record at a time to partition 0 — send,
//! wait for the ack (unless acks=0), then long-poll Fetch until the record arrives;
//! the latency is receive − send, and the received value must equal the sent one.
//! With `--throughput N`: the producer of `produce.rs` sends N records/s with the send
//! time (ns since a shared monotonic instant) in each value's first 8 bytes while this
//! thread fetches every partition from the log end and records receive − send for
//! every record: latency at a given load, the LinkedIn figure.

use std::collections::BTreeMap;
use std::io::Write;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{BrokerId, FetchRequest, ProduceRequest, TopicName};
use kafka_protocol::protocol::StrBytes;
use weir_net::client::{Connection, KafkaClient, error_name};
use weir_storage::batch::{
    BatchHeader, SimpleRecord, check_batch_integrity, decompress_records, encode_batch,
    iterate_batches, walk_record_section,
};

use super::consume::list_offsets;
use super::produce::{ProducerPerfConfig, run_producer};
use super::props::Props;
use super::{Latencies, PerfError, REQUEST_TIMEOUT, latency_histogram, topic_leaders};

/// What to measure.
#[derive(Clone, Debug)]
pub struct E2eConfig {
    pub topic: String,
    pub num_records: u64,
    pub record_size: usize,
    /// "all"/"-1", "1" or "0".
    pub producer_acks: String,
    /// Records per second under load; `None`: Kafka's one-at-a-time method.
    pub throughput: Option<f64>,
    pub producer_props: Props,
    pub consumer_props: Props,
}

/// What a run measured.
#[derive(Clone, Debug, serde::Serialize)]
pub struct E2eResult {
    pub records: u64,
    pub elapsed_s: f64,
    pub records_per_s: f64,
    pub latency: Latencies,
}

impl E2eResult {
    /// Kafka's two lines (milliseconds with 3 decimals).
    pub fn lines(&self) -> String {
        format!(
            "Avg latency: {:.4} ms\nPercentiles: 50th = {:.3}, 99th = {:.3}, 99.9th = {:.3}",
            self.latency.avg_ms, self.latency.p50_ms, self.latency.p99_ms, self.latency.p999_ms
        )
    }
}

fn topic_name(topic: &str) -> TopicName {
    TopicName(StrBytes::from_string(topic.to_string()))
}

fn fetch_request(topic: &str, offsets: &BTreeMap<i32, i64>, max_wait_ms: i32) -> FetchRequest {
    FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_wait_ms(max_wait_ms)
        .with_min_bytes(1)
        .with_max_bytes(52_428_800)
        .with_session_epoch(-1)
        .with_topics(vec![
            FetchTopic::default()
                .with_topic(topic_name(topic))
                .with_partitions(
                    offsets
                        .iter()
                        .map(|(&partition, &offset)| {
                            FetchPartition::default()
                                .with_partition(partition)
                                .with_fetch_offset(offset)
                                .with_partition_max_bytes(1_048_576)
                                .with_current_leader_epoch(-1)
                        })
                        .collect(),
                ),
        ])
}

/// Fetches once; calls `visit(value)` for every record at or after its partition's
/// offset and moves the offsets on.
fn fetch_values(
    connection: &mut Connection,
    topic: &str,
    offsets: &mut BTreeMap<i32, i64>,
    mut visit: impl FnMut(&[u8]),
) -> Result<(), PerfError> {
    let response = connection.call_at(12, &fetch_request(topic, offsets, 500))?;
    for fetched in response
        .responses
        .iter()
        .flat_map(|topic| &topic.partitions)
    {
        if fetched.error_code != 0 {
            return Err(PerfError::Broker(format!(
                "Fetch from partition {} failed: {}",
                fetched.partition_index,
                error_name(fetched.error_code)
            )));
        }
        let Some(data) = &fetched.records else {
            continue;
        };
        let offset = offsets[&fetched.partition_index];
        let mut next = offset;
        for (position, header) in iterate_batches(data) {
            let batch = &data[position..position + header.size_bytes() as usize];
            check_batch_integrity(batch, position as u64)
                .map_err(|error| PerfError::Broker(error.to_string()))?;
            let header = BatchHeader::new(batch).expect("a whole batch");
            if header.last_offset() < offset || header.is_control() {
                next = next.max(header.last_offset() + 1);
                continue;
            }
            let section = decompress_records(batch, position as u64)
                .map_err(|error| PerfError::Broker(error.to_string()))?;
            let base = header.base_offset();
            walk_record_section(&section, header.records_count(), |record| {
                if base + i64::from(record.offset_delta) >= offset {
                    visit(record.value.unwrap_or_default());
                }
                Ok(())
            })
            .map_err(PerfError::Broker)?;
            next = header.last_offset() + 1;
        }
        offsets.insert(fetched.partition_index, next);
    }
    Ok(())
}

/// Runs the end-to-end latency measurement.
pub fn run_e2e(config: &E2eConfig, progress: &mut dyn Write) -> Result<E2eResult, PerfError> {
    let bootstrap = config
        .producer_props
        .get("bootstrap.servers")
        .ok_or_else(|| PerfError::Usage("--bootstrap-server must be set".into()))?
        .to_string();
    let mut client = KafkaClient::connect(&bootstrap, "perf-e2e-latency", REQUEST_TIMEOUT)?;
    let leaders = topic_leaders(&mut client, &config.topic, true)?;
    let mut consumers = Vec::new();
    for (address, partitions) in &leaders.by_broker {
        let mut connection = Connection::connect(address, "perf-e2e-consumer", REQUEST_TIMEOUT)?;
        let offsets = list_offsets(&mut connection, &config.topic, partitions, -1)?;
        consumers.push((connection, offsets));
    }
    let mut histogram = latency_histogram();
    let started = Instant::now();
    let records = match config.throughput {
        None => one_at_a_time(config, &leaders, &mut consumers, &mut histogram, progress)?,
        Some(throughput) => under_load(config, throughput, &mut consumers, &mut histogram)?,
    };
    let elapsed = started.elapsed().as_secs_f64();
    Ok(E2eResult {
        records,
        elapsed_s: elapsed,
        records_per_s: records as f64 / elapsed.max(1e-9),
        latency: Latencies::of(&histogram),
    })
}

fn acks_value(acks: &str) -> Result<i16, PerfError> {
    match acks {
        "all" | "-1" => Ok(-1),
        "1" => Ok(1),
        "0" => Ok(0),
        other => Err(PerfError::Usage(format!(
            "producer acks must be all, -1, 0 or 1, not {other}"
        ))),
    }
}

fn one_at_a_time(
    config: &E2eConfig,
    leaders: &super::Leaders,
    consumers: &mut [(Connection, BTreeMap<i32, i64>)],
    histogram: &mut Histogram<u64>,
    progress: &mut dyn Write,
) -> Result<u64, PerfError> {
    let acks = acks_value(&config.producer_acks)?;
    let (leader, _) = leaders
        .by_broker
        .iter()
        .find(|(_, partitions)| partitions.contains(&0))
        .expect("partition 0 has a leader");
    let mut producer = Connection::connect(leader, "perf-e2e-producer", REQUEST_TIMEOUT)?;
    let (consumer, offsets) = consumers
        .iter_mut()
        .find(|(_, offsets)| offsets.contains_key(&0))
        .expect("partition 0 has a consumer");
    offsets.retain(|&partition, _| partition == 0);
    let mut payload = super::produce::random_payload(config.record_size.max(8));
    for index in 0..config.num_records {
        payload[..8].copy_from_slice(&index.to_be_bytes());
        let batch = encode_batch(
            0,
            &[SimpleRecord {
                timestamp_ms: weir_storage::now_ms(),
                key: None,
                value: Some(payload.clone()),
            }],
        );
        let request = ProduceRequest::default()
            .with_acks(acks)
            .with_timeout_ms(30_000)
            .with_topic_data(vec![
                TopicProduceData::default()
                    .with_name(topic_name(&config.topic))
                    .with_partition_data(vec![
                        PartitionProduceData::default()
                            .with_index(0)
                            .with_records(Some(batch.into())),
                    ]),
            ]);
        let sent = Instant::now();
        if acks == 0 {
            producer.send_at(7, &request)?;
        } else {
            let response = producer.call_at(7, &request)?;
            for partition in response
                .responses
                .iter()
                .flat_map(|topic| &topic.partition_responses)
            {
                if partition.error_code != 0 {
                    return Err(PerfError::Broker(format!(
                        "produce failed: {}",
                        error_name(partition.error_code)
                    )));
                }
            }
        }
        let mut received = None;
        let deadline = sent + REQUEST_TIMEOUT;
        while received.is_none() {
            fetch_values(consumer, &config.topic, offsets, |value| {
                received.get_or_insert_with(|| value.to_vec());
            })?;
            if Instant::now() > deadline {
                return Err(PerfError::Broker(format!(
                    "record {index} did not arrive within {} s",
                    REQUEST_TIMEOUT.as_secs()
                )));
            }
        }
        let latency = sent.elapsed().as_micros() as u64;
        if received.as_deref() != Some(&payload[..]) {
            return Err(PerfError::Broker(format!(
                "record {index}: the consumed value is not the produced one"
            )));
        }
        histogram.saturating_record(latency.max(1));
        if index % 1000 == 0 {
            let _ = writeln!(progress, "{index}\t{:.3}", latency as f64 / 1000.0);
        }
    }
    Ok(config.num_records)
}

fn under_load(
    config: &E2eConfig,
    throughput: f64,
    consumers: &mut [(Connection, BTreeMap<i32, i64>)],
    histogram: &mut Histogram<u64>,
) -> Result<u64, PerfError> {
    let base = Instant::now();
    let mut props = config.producer_props.clone();
    props.set("acks", &config.producer_acks);
    if props.get("enable.idempotence").is_none() && acks_value(&config.producer_acks)? != -1 {
        props.set("enable.idempotence", "false");
    }
    let producer_config = ProducerPerfConfig {
        topic: config.topic.clone(),
        num_records: config.num_records,
        payloads: vec![super::produce::random_payload(config.record_size.max(8))],
        throughput,
        props,
        stamp_send_time: Some(base),
    };
    let producer = std::thread::spawn(move || run_producer(&producer_config, &mut std::io::sink()));
    let mut received = 0u64;
    let mut last_data = Instant::now();
    let idle_timeout = Duration::from_secs(10);
    while received < config.num_records {
        let mut got = false;
        for (connection, offsets) in consumers.iter_mut() {
            // Every record of one response arrived with it: one clock read per response.
            let mut arrived = None;
            fetch_values(connection, &config.topic, offsets, |value| {
                let now = *arrived.get_or_insert_with(|| base.elapsed().as_nanos() as u64);
                let sent = u64::from_be_bytes(value[..8].try_into().expect("8 stamped bytes"));
                histogram.saturating_record((now.saturating_sub(sent) / 1000).max(1));
                received += 1;
                got = true;
            })?;
        }
        if got {
            last_data = Instant::now();
        } else if last_data.elapsed() > idle_timeout
            || producer.is_finished() && last_data.elapsed() > Duration::from_secs(2)
        {
            break;
        }
    }
    match producer.join() {
        Ok(Ok(_)) => {}
        Ok(Err(error)) => return Err(error),
        Err(_) => return Err(PerfError::Broker("the producer thread panicked".into())),
    }
    if received < config.num_records {
        return Err(PerfError::Broker(format!(
            "only {received} of {} records arrived",
            config.num_records
        )));
    }
    Ok(received)
}
