//! `weir perf consume`: kafka-consumer-perf-test.sh.
//!
//! The tool assigns itself the topic's partitions (or a given subset) instead of
//! joining a group, so `rebalance.time.ms` is 0. One Fetch per leader per round
//! (`fetch.max.bytes`, `max.partition.fetch.bytes`, `fetch.max.wait.ms`); every batch is
//! CRC-checked (Kafka's `check.crcs`), decompressed when compressed, and its records
//! walked to count key + value bytes as Kafka's tool counts them. A batch cut short at
//! the end of a partition's records is skipped and fetched again next round.

use std::collections::BTreeMap;
use std::io::Write;
use std::time::{Duration, Instant, SystemTime};

use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::{BrokerId, FetchRequest, ListOffsetsRequest, TopicName};
use kafka_protocol::protocol::StrBytes;
use weir_net::client::{Connection, KafkaClient, error_name};
use weir_storage::batch::{
    BatchHeader, check_batch_integrity, decompress_records, iterate_batches, walk_record_section,
};

use super::props::Props;
use super::{MIB, PerfError, REQUEST_TIMEOUT, topic_leaders};

const FETCH_VERSION: i16 = 12;

/// What to consume.
#[derive(Clone, Debug)]
pub struct ConsumerPerfConfig {
    pub topic: String,
    /// Stop after this many records.
    pub num_records: u64,
    /// Stop when nothing arrives for this long.
    pub timeout: Duration,
    pub from_latest: bool,
    /// `None`: every partition.
    pub partitions: Option<Vec<i32>>,
    pub props: Props,
    /// `--show-detailed-stats` every `reporting_interval`.
    pub reporting_interval: Option<Duration>,
}

/// What a run measured.
#[derive(Clone, Debug, serde::Serialize)]
pub struct ConsumerPerfResult {
    pub records: u64,
    pub bytes: u64,
    pub elapsed_s: f64,
    pub records_per_s: f64,
    pub mib_per_s: f64,
    pub start_ms: i64,
    pub end_ms: i64,
    /// The run stopped on `timeout` before `num_records`.
    pub timed_out: bool,
}

pub const HEADER: &str = "start.time, end.time, data.consumed.in.MB, MB.sec, data.consumed.in.nMsg, nMsg.sec, rebalance.time.ms, fetch.time.ms, fetch.MB.sec, fetch.nMsg.sec";

impl ConsumerPerfResult {
    /// Kafka's values line (times in UTC).
    pub fn values_line(&self) -> String {
        let elapsed = self.elapsed_s.max(1e-9);
        let mib = self.bytes as f64 / MIB;
        let elapsed_ms = (self.end_ms - self.start_ms).max(0);
        format!(
            "{}, {}, {:.4}, {:.4}, {}, {:.4}, 0, {}, {:.4}, {:.4}",
            format_time(self.start_ms),
            format_time(self.end_ms),
            mib,
            mib / elapsed,
            self.records,
            self.records as f64 / elapsed,
            elapsed_ms,
            mib / elapsed,
            self.records as f64 / elapsed
        )
    }
}

/// `yyyy-MM-dd HH:mm:ss:SSS` in UTC, as Kafka's tool prints times.
pub fn format_time(epoch_ms: i64) -> String {
    let days = epoch_ms.div_euclid(86_400_000);
    let in_day = epoch_ms.rem_euclid(86_400_000);
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}:{:03}",
        in_day / 3_600_000,
        in_day / 60_000 % 60,
        in_day / 1000 % 60,
        in_day % 1000
    )
}

fn epoch_ms() -> i64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_millis() as i64)
}

fn topic_name(topic: &str) -> TopicName {
    TopicName(StrBytes::from_string(topic.to_string()))
}

/// The earliest (−2) or latest (−1) offset of each partition, as a consumer sees it
/// (from the leader; latest is the high watermark).
pub fn list_offsets(
    connection: &mut Connection,
    topic: &str,
    partitions: &[i32],
    timestamp: i64,
) -> Result<BTreeMap<i32, i64>, PerfError> {
    list_offsets_as(connection, -1, topic, partitions, timestamp)
}

/// [`list_offsets`] with Kafka's `replica_id`: -2 (a debugging client) may ask any
/// replica, and its latest offset is that replica's log end offset.
pub fn list_offsets_as(
    connection: &mut Connection,
    replica_id: i32,
    topic: &str,
    partitions: &[i32],
    timestamp: i64,
) -> Result<BTreeMap<i32, i64>, PerfError> {
    let request = ListOffsetsRequest::default()
        .with_replica_id(BrokerId(replica_id))
        .with_topics(vec![
            ListOffsetsTopic::default()
                .with_name(topic_name(topic))
                .with_partitions(
                    partitions
                        .iter()
                        .map(|&partition| {
                            ListOffsetsPartition::default()
                                .with_partition_index(partition)
                                .with_timestamp(timestamp)
                        })
                        .collect(),
                ),
        ]);
    let (_, response) = connection.call(&request)?;
    let mut offsets = BTreeMap::new();
    for topic in &response.topics {
        for partition in &topic.partitions {
            if partition.error_code != 0 {
                return Err(PerfError::Broker(format!(
                    "ListOffsets for partition {} failed: {}",
                    partition.partition_index,
                    error_name(partition.error_code)
                )));
            }
            offsets.insert(partition.partition_index, partition.offset);
        }
    }
    Ok(offsets)
}

/// Records and key + value bytes of `records` (a partition's fetched bytes) at or after
/// `offset`; returns (records, bytes, next offset) — the next offset stays at the first
/// batch that is not whole.
fn count_records(records: &[u8], mut offset: i64) -> Result<(u64, u64, i64), String> {
    let (mut count, mut bytes) = (0u64, 0u64);
    for (position, header) in iterate_batches(records) {
        let size = header.size_bytes() as usize;
        let batch = &records[position..position + size];
        check_batch_integrity(batch, position as u64).map_err(|error| error.to_string())?;
        let header = BatchHeader::new(batch).expect("a whole batch");
        if header.last_offset() < offset {
            continue;
        }
        if !header.is_control() {
            let section =
                decompress_records(batch, position as u64).map_err(|error| error.to_string())?;
            let base = header.base_offset();
            walk_record_section(&section, header.records_count(), |record| {
                if base + i64::from(record.offset_delta) >= offset {
                    count += 1;
                    bytes += record.key.map_or(0, <[u8]>::len) as u64
                        + record.value.map_or(0, <[u8]>::len) as u64;
                }
                Ok(())
            })?;
        }
        offset = header.last_offset() + 1;
    }
    Ok((count, bytes, offset))
}

/// Runs the consumer benchmark; `detail` gets `--show-detailed-stats` lines.
pub fn run_consumer(
    config: &ConsumerPerfConfig,
    detail: &mut dyn Write,
) -> Result<ConsumerPerfResult, PerfError> {
    let bootstrap = config
        .props
        .get("bootstrap.servers")
        .ok_or_else(|| PerfError::Usage("--bootstrap-server must be set".into()))?
        .to_string();
    let client_id = config.props.string("client.id", "perf-consumer-client");
    let fetch_max_bytes: i32 = config.props.number("fetch.max.bytes", 52_428_800)?;
    let partition_max_bytes: i32 = config
        .props
        .number("max.partition.fetch.bytes", 1_048_576)?;
    let max_wait_ms: i32 = config.props.number("fetch.max.wait.ms", 500)?;
    let min_bytes: i32 = config.props.number("fetch.min.bytes", 1)?;
    let mut client = KafkaClient::connect(&bootstrap, &client_id, REQUEST_TIMEOUT)?;
    let leaders = topic_leaders(&mut client, &config.topic, false)?;
    // Per leader: its connection and (partition → next offset).
    let mut fetchers = Vec::new();
    for (address, partitions) in &leaders.by_broker {
        let partitions: Vec<i32> = partitions
            .iter()
            .copied()
            .filter(|partition| {
                config
                    .partitions
                    .as_ref()
                    .is_none_or(|wanted| wanted.contains(partition))
            })
            .collect();
        if partitions.is_empty() {
            continue;
        }
        let mut connection = Connection::connect(address, &client_id, REQUEST_TIMEOUT)?;
        let offsets = list_offsets(
            &mut connection,
            &config.topic,
            &partitions,
            if config.from_latest { -1 } else { -2 },
        )?;
        fetchers.push((connection, offsets));
    }
    let start_ms = epoch_ms();
    let started = Instant::now();
    let (mut records, mut bytes) = (0u64, 0u64);
    let mut last_data = Instant::now();
    let mut next_report = config.reporting_interval.map(|interval| started + interval);
    let mut report_base = (started, 0u64, 0u64);
    let mut timed_out = false;
    while records < config.num_records {
        let mut got_any = false;
        for (connection, offsets) in &mut fetchers {
            let request = FetchRequest::default()
                .with_replica_id(BrokerId(-1))
                .with_max_wait_ms(max_wait_ms)
                .with_min_bytes(min_bytes)
                .with_max_bytes(fetch_max_bytes)
                .with_session_epoch(-1)
                .with_topics(vec![
                    FetchTopic::default()
                        .with_topic(topic_name(&config.topic))
                        .with_partitions(
                            offsets
                                .iter()
                                .map(|(&partition, &offset)| {
                                    FetchPartition::default()
                                        .with_partition(partition)
                                        .with_fetch_offset(offset)
                                        .with_partition_max_bytes(partition_max_bytes)
                                        .with_current_leader_epoch(-1)
                                })
                                .collect(),
                        ),
                ]);
            let response = connection.call_at(FETCH_VERSION, &request)?;
            if response.error_code != 0 {
                return Err(PerfError::Broker(format!(
                    "Fetch failed: {}",
                    error_name(response.error_code)
                )));
            }
            for topic in &response.responses {
                for partition in &topic.partitions {
                    if partition.error_code != 0 {
                        return Err(PerfError::Broker(format!(
                            "Fetch from partition {} failed: {} (error {})",
                            partition.partition_index,
                            error_name(partition.error_code),
                            partition.error_code
                        )));
                    }
                    let Some(data) = &partition.records else {
                        continue;
                    };
                    let offset = offsets[&partition.partition_index];
                    let (count, size, next) = count_records(data, offset).map_err(|reason| {
                        PerfError::Broker(format!(
                            "partition {} sent a bad batch: {reason}",
                            partition.partition_index
                        ))
                    })?;
                    records += count;
                    bytes += size;
                    got_any |= count > 0;
                    offsets.insert(partition.partition_index, next);
                }
            }
        }
        let now = Instant::now();
        if got_any {
            last_data = now;
        } else if now - last_data > config.timeout {
            timed_out = true;
            break;
        }
        if let Some(due) = next_report
            && now >= due
        {
            let (since, base_records, base_bytes) = report_base;
            let seconds = (now - since).as_secs_f64().max(1e-9);
            let mib = (bytes - base_bytes) as f64 / MIB;
            let _ = writeln!(
                detail,
                "{}, {:.4}, {:.4}, {}, {:.4}, 0, {}, {:.4}, {:.4}",
                format_time(epoch_ms()),
                bytes as f64 / MIB,
                mib / seconds,
                records,
                (records - base_records) as f64 / seconds,
                (now - since).as_millis(),
                mib / seconds,
                (records - base_records) as f64 / seconds
            );
            report_base = (now, records, bytes);
            next_report = config.reporting_interval.map(|interval| now + interval);
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    Ok(ConsumerPerfResult {
        records,
        bytes,
        elapsed_s: elapsed,
        records_per_s: records as f64 / elapsed.max(1e-9),
        mib_per_s: bytes as f64 / MIB / elapsed.max(1e-9),
        start_ms,
        end_ms: epoch_ms(),
        timed_out,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use weir_storage::batch::{SimpleRecord, encode_batch};

    #[test]
    fn times_print_as_kafka_formats_them() {
        assert_eq!(format_time(0), "1970-01-01 00:00:00:000");
        assert_eq!(format_time(1_795_347_926_065), "2026-11-22 11:45:26:065");
        assert_eq!(format_time(951_782_400_001), "2000-02-29 00:00:00:001");
    }

    #[test]
    fn counting_skips_records_before_the_offset_and_a_cut_last_batch() {
        let batch = |base: i64, count: usize| {
            encode_batch(
                base,
                &(0..count)
                    .map(|index| SimpleRecord {
                        timestamp_ms: 0,
                        key: (index % 2 == 0).then(|| b"k".to_vec()),
                        value: Some(vec![1; 10]),
                    })
                    .collect::<Vec<_>>(),
            )
        };
        let mut data = batch(0, 4);
        data.extend(batch(4, 4));
        let whole = data.len();
        data.extend(&batch(8, 4)[..30]);
        let (records, bytes, next) = count_records(&data, 2).unwrap();
        assert_eq!((records, next), (6, 8));
        assert_eq!(bytes, 6 * 10 + 3, "values plus the keys of records 2, 4, 6");
        let mut damaged = data[..whole].to_vec();
        damaged[whole - 1] ^= 1;
        assert!(count_records(&damaged, 0).is_err(), "a bad CRC is an error");
    }

    #[test]
    fn values_line_has_kafkas_columns() {
        let result = ConsumerPerfResult {
            records: 1000,
            bytes: 1 << 20,
            elapsed_s: 2.0,
            records_per_s: 500.0,
            mib_per_s: 0.5,
            start_ms: 0,
            end_ms: 2000,
            timed_out: false,
        };
        assert_eq!(
            result.values_line(),
            "1970-01-01 00:00:00:000, 1970-01-01 00:00:02:000, 1.0000, 0.5000, 1000, 500.0000, 0, 2000, 0.5000, 500.0000"
        );
        assert_eq!(
            HEADER.split(", ").count(),
            result.values_line().split(", ").count()
        );
    }
}
