//! The sending side of `weir produce`: Kafka's producer, reduced to what a console tool
//! needs and built on the blocking `weir_net::client`.
//!
//! ```text
//!  send(record) ─► partition: keyed → toPositive(murmur2(key)) % partitions (Kafka's and
//!      │           librdkafka's murmur2_random choice); unkeyed → sticky partition,
//!      │           switched at random once batch.size bytes went to it (Kafka's KIP-794)
//!      ▼
//!  pending records per partition ─ ready when ≥ batch.size, linger.ms old, or flushing
//!      ▼
//!  drain: one batch per ready partition (compressed, idempotent producer stamped),
//!         grouped by leader, packed into Produce requests ≤ max.request.size
//!      ▼
//!  answer per partition: acknowledged │ retriable → refresh metadata, back off, resend
//!                                     │ (at most `retries` times) │ else reported on stderr
//! ```
//!
//! One request is in flight per leader and a partition has at most one batch in flight,
//! so an idempotent producer's sequence numbers advance only when a batch is
//! acknowledged, and a retry resends the very same bytes (the broker answers a
//! duplicate with the original offsets). Memory is bounded by `batch.size` per
//! partition plus one request per leader. Partition choice is `super::partitioner`;
//! metadata and the producer id are `cluster`.

use std::collections::BTreeMap;
use std::time::Instant;

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::TopicName;
use kafka_protocol::messages::produce_request::{
    PartitionProduceData, ProduceRequest, TopicProduceData,
};
use kafka_protocol::protocol::StrBytes;
use uuid::Uuid;
use weir_net::client::{ClientError, KafkaClient, error_name};
use weir_storage::batch::{HEADER_BYTES, ProducerRecord, encode_producer_batch, set_producer};

use super::partitioner::Partitioner;
use super::producer_config::{Idempotence, ProducerConfig};

mod cluster;

/// Bytes a Produce request adds around its batches (header, topic, partition entries),
/// generously: used only to keep requests below max.request.size.
const REQUEST_OVERHEAD_BYTES: usize = 1024;

/// Why producing stopped as a whole (single failed batches are only reported).
#[derive(Debug, thiserror::Error)]
pub enum ProduceError {
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error(
        "topic '{topic}' does not exist and the broker did not create it \
         (auto.create.topics.enable=false?); create it first with \
         `weir topics --bootstrap-server {bootstrap} --create --topic {topic}`"
    )]
    TopicMissing { topic: String, bootstrap: String },
    #[error("metadata for topic '{topic}' is not usable: {reason}")]
    Metadata { topic: String, reason: String },
    #[error(
        "the partitions of topic '{topic}' had no leader within {waited_ms} ms (max.block.ms): {reason}"
    )]
    NoLeader {
        topic: String,
        waited_ms: u128,
        reason: String,
    },
    #[error("cannot get an idempotent producer id: {0}")]
    ProducerId(String),
}

/// An upper bound of the bytes `record` takes in a batch (Kafka's
/// `DefaultRecord.sizeInBytes` with every varint at its longest).
pub fn record_size_upper_bound(record: &ProducerRecord) -> usize {
    let field = |bytes: Option<&[u8]>| 5 + bytes.map_or(0, <[u8]>::len);
    // length, attributes, timestampDelta, offsetDelta, key, value, header count.
    5 + 1
        + 10
        + 5
        + field(record.key.as_deref())
        + field(record.value.as_deref())
        + 5
        + record
            .headers
            .iter()
            .map(|header| field(Some(&header.key)) + field(header.value.as_deref()))
            .sum::<usize>()
}

/// One partition of the topic as the producer tracks it.
struct PartitionState {
    leader: i32,
    pending: Vec<ProducerRecord>,
    pending_bytes: usize,
    first_pending_at: Option<Instant>,
    /// Sequence number of the next batch (idempotent producers only).
    next_sequence: i32,
}

/// A batch on its way to a leader.
struct Outgoing {
    partition: i32,
    records: i32,
    batch: Bytes,
    attempts: u32,
}

/// Counts for the summary line.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ProduceStats {
    pub acknowledged: u64,
    pub failed: u64,
}

/// A producer for one topic.
pub struct Producer {
    client: KafkaClient,
    bootstrap: String,
    topic: String,
    topic_id: Uuid,
    config: ProducerConfig,
    partitions: Vec<PartitionState>,
    /// (producer id, epoch) of an idempotent producer.
    producer: Option<(i64, i16)>,
    idempotence: Idempotence,
    partitioner: Partitioner,
    stats: ProduceStats,
}

impl Producer {
    pub fn new(
        client: KafkaClient,
        bootstrap: &str,
        topic: &str,
        config: ProducerConfig,
    ) -> Producer {
        let partitioner = Partitioner::new(config.batch_size_bytes);
        Producer {
            client,
            bootstrap: bootstrap.to_string(),
            topic: topic.to_string(),
            topic_id: Uuid::nil(),
            idempotence: config.idempotence,
            config,
            partitions: Vec::new(),
            producer: None,
            partitioner,
            stats: ProduceStats::default(),
        }
    }

    pub fn stats(&self) -> ProduceStats {
        self.stats
    }

    /// Queues `record`; sends the batches that became full. Records that can never be
    /// sent (too large) are reported and counted as failed.
    pub fn send(&mut self, record: ProducerRecord) -> Result<(), ProduceError> {
        if self.partitions.is_empty() {
            self.refresh_metadata()?;
        }
        let size = record_size_upper_bound(&record);
        if size + HEADER_BYTES + REQUEST_OVERHEAD_BYTES > self.config.max_request_size_bytes {
            eprintln!(
                "Error when sending message to topic {}: RECORD_TOO_LARGE (the message is {} bytes \
                 when serialized which is larger than {}, which is the value of the \
                 max.request.size configuration)",
                self.topic,
                size + HEADER_BYTES,
                self.config.max_request_size_bytes
            );
            self.stats.failed += 1;
            return Ok(());
        }
        let partition =
            self.partitioner
                .partition(record.key.as_deref(), size, self.partitions.len() as i32);
        let state = &mut self.partitions[partition as usize];
        state.pending.push(record);
        state.pending_bytes += size;
        state.first_pending_at.get_or_insert_with(Instant::now);
        if state.pending_bytes >= self.config.batch_size_bytes {
            self.drain(false)?;
        }
        Ok(())
    }

    /// Sends batches whose linger.ms has passed (or that are full).
    pub fn poll(&mut self) -> Result<(), ProduceError> {
        self.drain(false)
    }

    /// Sends everything pending and waits for the answers.
    pub fn flush(&mut self) -> Result<(), ProduceError> {
        self.drain(true)
    }

    /// When the oldest pending batch reaches linger.ms.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.partitions
            .iter()
            .filter_map(|state| state.first_pending_at)
            .min()
            .map(|first| first + self.config.linger)
    }

    /// Turns every ready partition's pending records into one batch and sends them.
    fn drain(&mut self, force: bool) -> Result<(), ProduceError> {
        let now = Instant::now();
        let batch_size = self.config.batch_size_bytes;
        let linger = self.config.linger;
        let ready: Vec<i32> = (0..self.partitions.len() as i32)
            .filter(|&partition| {
                let state = &self.partitions[partition as usize];
                !state.pending.is_empty()
                    && (force
                        || state.pending_bytes >= batch_size
                        || state
                            .first_pending_at
                            .is_some_and(|first| now.duration_since(first) >= linger))
            })
            .collect();
        if ready.is_empty() {
            return Ok(());
        }
        self.ensure_producer_id()?;
        let mut outgoing = Vec::with_capacity(ready.len());
        for partition in ready {
            let state = &mut self.partitions[partition as usize];
            let records = std::mem::take(&mut state.pending);
            state.pending_bytes = 0;
            state.first_pending_at = None;
            let mut batch = encode_producer_batch(0, &records, self.config.compression);
            if let Some((producer_id, epoch)) = self.producer {
                set_producer(&mut batch, producer_id, epoch, state.next_sequence);
            }
            outgoing.push(Outgoing {
                partition,
                records: records.len() as i32,
                batch: Bytes::from(batch),
                attempts: 0,
            });
        }
        self.send_batches(outgoing)
    }

    /// Sends `outgoing` to the partitions' leaders, retrying retriable failures.
    fn send_batches(&mut self, mut outgoing: Vec<Outgoing>) -> Result<(), ProduceError> {
        while !outgoing.is_empty() {
            let mut by_leader: BTreeMap<i32, Vec<Outgoing>> = BTreeMap::new();
            for batch in outgoing.drain(..) {
                let leader = self.partitions[batch.partition as usize].leader;
                by_leader.entry(leader).or_default().push(batch);
            }
            let mut retry = Vec::new();
            for (leader, batches) in by_leader {
                let mut request_batches = Vec::new();
                let mut request_bytes = REQUEST_OVERHEAD_BYTES;
                for batch in batches {
                    if !request_batches.is_empty()
                        && request_bytes + batch.batch.len() > self.config.max_request_size_bytes
                    {
                        retry.extend(
                            self.send_request(leader, std::mem::take(&mut request_batches)),
                        );
                        request_bytes = REQUEST_OVERHEAD_BYTES;
                    }
                    request_bytes += batch.batch.len();
                    request_batches.push(batch);
                }
                if !request_batches.is_empty() {
                    retry.extend(self.send_request(leader, request_batches));
                }
            }
            if !retry.is_empty() {
                std::thread::sleep(self.config.retry_backoff);
                match self.refresh_metadata() {
                    // A restarting broker refuses connections for a moment: the batches'
                    // retry counts bound how long that is waited out.
                    Err(ProduceError::Client(error)) if error.is_connection_problem() => {}
                    other => other?,
                }
            }
            outgoing = retry;
        }
        Ok(())
    }

    /// Sends one Produce request; returns the batches to retry.
    fn send_request(&mut self, leader: i32, batches: Vec<Outgoing>) -> Vec<Outgoing> {
        let request = ProduceRequest::default()
            .with_transactional_id(None)
            .with_acks(self.config.acks)
            .with_timeout_ms(self.config.request_timeout_ms)
            .with_topic_data(vec![
                TopicProduceData::default()
                    .with_name(TopicName(StrBytes::from_string(self.topic.clone())))
                    .with_topic_id(self.topic_id)
                    .with_partition_data(
                        batches
                            .iter()
                            .map(|batch| {
                                PartitionProduceData::default()
                                    .with_index(batch.partition)
                                    .with_records(Some(batch.batch.clone()))
                            })
                            .collect(),
                    ),
            ]);
        let answer = self.client.broker(leader).and_then(|connection| {
            let version = connection.version_of::<ProduceRequest>()?;
            if self.config.acks == 0 {
                connection.send_at(version, &request).map(|()| None)
            } else {
                connection.call_at(version, &request).map(Some)
            }
        });
        let response = match answer {
            Ok(Some(response)) => response,
            Ok(None) => {
                // acks=0: the broker never answers; sent is all there is to know.
                for batch in &batches {
                    self.acknowledged(batch);
                }
                return Vec::new();
            }
            Err(error) => {
                if error.is_connection_problem() {
                    self.client.disconnect(leader);
                }
                let reason = error.to_string();
                return batches
                    .into_iter()
                    .filter_map(|batch| self.retry_or_fail(batch, true, &reason))
                    .collect();
            }
        };
        let mut answers: BTreeMap<i32, (i16, Option<String>)> = BTreeMap::new();
        for topic in &response.responses {
            let ours = *topic.name.0 == *self.topic
                || (!self.topic_id.is_nil() && topic.topic_id == self.topic_id);
            if !ours {
                continue;
            }
            for partition in &topic.partition_responses {
                answers.insert(
                    partition.index,
                    (
                        partition.error_code,
                        partition
                            .error_message
                            .as_ref()
                            .map(|message| message.to_string()),
                    ),
                );
            }
        }
        let mut retry = Vec::new();
        for batch in batches {
            match answers.get(&batch.partition) {
                Some((0, _)) => self.acknowledged(&batch),
                Some((code, _)) if *code == ResponseError::DuplicateSequenceNumber.code() => {
                    self.acknowledged(&batch)
                }
                Some((code, message)) => {
                    let code = *code;
                    if matches!(
                        ResponseError::try_from_code(code),
                        Some(
                            ResponseError::OutOfOrderSequenceNumber
                                | ResponseError::UnknownProducerId
                                | ResponseError::InvalidProducerEpoch
                        )
                    ) {
                        // The broker lost track of this producer: the next batches start
                        // over with a fresh producer id.
                        self.producer = None;
                    }
                    let retriable = ResponseError::try_from_code(code)
                        .is_some_and(|error| error.is_retriable());
                    let reason = match message {
                        Some(message) => format!("{} ({message})", error_name(code)),
                        None => error_name(code),
                    };
                    retry.extend(self.retry_or_fail(batch, retriable, &reason));
                }
                None => retry.extend(self.retry_or_fail(
                    batch,
                    true,
                    "the broker did not answer for it",
                )),
            }
        }
        retry
    }

    fn acknowledged(&mut self, batch: &Outgoing) {
        self.stats.acknowledged += batch.records as u64;
        if self.producer.is_some() {
            let state = &mut self.partitions[batch.partition as usize];
            state.next_sequence = next_sequence(state.next_sequence, batch.records);
        }
    }

    /// The batch again if it may be retried; otherwise reports it as failed.
    fn retry_or_fail(
        &mut self,
        mut batch: Outgoing,
        retriable: bool,
        reason: &str,
    ) -> Option<Outgoing> {
        if retriable && batch.attempts < self.config.retries {
            batch.attempts += 1;
            return Some(batch);
        }
        eprintln!(
            "Error when sending {} message{} to topic {} partition {}: {reason}",
            batch.records,
            if batch.records == 1 { "" } else { "s" },
            self.topic,
            batch.partition
        );
        self.stats.failed += batch.records as u64;
        None
    }
}

/// The sequence number after a batch of `records` starting at `sequence` (Kafka's
/// sequences wrap at i32::MAX back to 0).
fn next_sequence(sequence: i32, records: i32) -> i32 {
    ((i64::from(sequence) + i64::from(records)) % (i64::from(i32::MAX) + 1)) as i32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequences_wrap_at_i32_max() {
        assert_eq!(next_sequence(0, 5), 5);
        assert_eq!(next_sequence(i32::MAX - 1, 1), i32::MAX);
        assert_eq!(next_sequence(i32::MAX, 1), 0);
        assert_eq!(next_sequence(i32::MAX - 2, 5), 2);
    }

    #[test]
    fn record_size_bound_covers_the_encoded_record() {
        use weir_storage::batch::{Compression, RecordHeader, encode_producer_batch};
        let record = ProducerRecord {
            timestamp_ms: 1_700_000_000_000,
            key: Some(vec![7; 300]),
            value: Some(vec![9; 70_000]),
            headers: vec![RecordHeader {
                key: b"trace".to_vec(),
                value: None,
            }],
        };
        let batch = encode_producer_batch(0, std::slice::from_ref(&record), Compression::None);
        assert!(record_size_upper_bound(&record) >= batch.len() - HEADER_BYTES);
        assert!(record_size_upper_bound(&record) <= batch.len() - HEADER_BYTES + 40);
    }
}
