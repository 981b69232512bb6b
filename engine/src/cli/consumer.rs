//! The fetching side of `weir consume`: partition leaders from Metadata, start offsets
//! from ListOffsets, records from Fetch (sessionless full fetches, v4+), decoded with
//! the storage crate's batch codec.
//!
//! ```text
//!  positions: partition → next offset ─► group by leader ─► Fetch per leader
//!      ▼
//!  per partition: records ─► whole batches (a trailing partial batch is fetched again)
//!                 │          CRC-32C checked, decompressed, records before the fetch
//!                 │          offset skipped, control batches skipped, aborted
//!                 │          transactions skipped under read_committed
//!                 ├ OFFSET_OUT_OF_RANGE ─► caller resets (auto.offset.reset)
//!                 └ leader moved / unknown ─► metadata refreshed, fetched again
//! ```
//!
//! Decoding the record bytes of a partition is `super::fetched_records`.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchRequest, FetchTopic};
use kafka_protocol::messages::list_offsets_request::{
    ListOffsetsPartition, ListOffsetsRequest, ListOffsetsTopic,
};
use kafka_protocol::messages::{BrokerId, TopicName};
use kafka_protocol::protocol::StrBytes;
use uuid::Uuid;
use weir_net::client::{ClientError, KafkaClient, error_name, metadata_topic};

use super::fetched_records::decode_partition;
use super::record_format::ConsumedRecord;

/// ListOffsets timestamp meaning "the log start offset".
pub const EARLIEST_TIMESTAMP: i64 = -2;
/// ListOffsets timestamp meaning "the log end offset" (the LSO under read_committed).
pub const LATEST_TIMESTAMP: i64 = -1;
/// Consecutive failed rounds for one partition (leader unknown, connection lost)
/// before the consumer gives up; with the retry backoff that is tens of seconds.
pub const PARTITION_RETRIES_MAX: u32 = 100;

/// Why consuming stopped.
#[derive(Debug, thiserror::Error)]
pub enum ConsumeError {
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error("topic '{topic}' does not exist (list topics with `weir topics --list`)")]
    TopicMissing { topic: String },
    #[error("partition {partition} does not exist: topic '{topic}' has {partitions} partitions")]
    PartitionMissing {
        topic: String,
        partition: i32,
        partitions: i32,
    },
    #[error("partition {partition} at offset {offset}: {reason}")]
    Records {
        partition: i32,
        offset: i64,
        reason: String,
    },
    #[error("{0}")]
    Group(String),
}

/// `isolation.level`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IsolationLevel {
    ReadUncommitted,
    ReadCommitted,
}

impl IsolationLevel {
    pub fn parse(value: &str) -> Result<IsolationLevel, String> {
        match value.trim().to_ascii_lowercase().as_str() {
            "read_uncommitted" => Ok(IsolationLevel::ReadUncommitted),
            "read_committed" => Ok(IsolationLevel::ReadCommitted),
            _ => Err(format!(
                "isolation.level must be read_committed or read_uncommitted, got '{value}'"
            )),
        }
    }

    fn code(self) -> i8 {
        match self {
            IsolationLevel::ReadUncommitted => 0,
            IsolationLevel::ReadCommitted => 1,
        }
    }
}

/// Fetch settings (Kafka's consumer config names in the docs).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FetchConfig {
    /// `fetch.max.wait.ms`.
    pub max_wait_ms: i32,
    /// `fetch.min.bytes`.
    pub min_bytes: i32,
    /// `fetch.max.bytes`.
    pub max_bytes: i32,
    /// `max.partition.fetch.bytes`.
    pub partition_max_bytes: i32,
    /// `isolation.level`.
    pub isolation_level: IsolationLevel,
    /// `retry.backoff.ms`.
    pub retry_backoff: Duration,
}

/// What one fetch round brought for one partition.
#[derive(Debug, PartialEq, Eq)]
pub enum PartitionFetch {
    /// Records in offset order and the offset to fetch next (past skipped batches too).
    Records {
        records: Vec<ConsumedRecord>,
        next_offset: i64,
    },
    /// The position is outside the log: reset it.
    OutOfRange,
    /// Transient trouble (leader moved, connection lost); fetched again next round.
    Retry(String),
}

/// Partition leaders and fetching for one topic.
pub struct Fetcher {
    topic: String,
    topic_id: Uuid,
    leaders: Vec<i32>,
    config: FetchConfig,
    /// Consecutive failed rounds per partition.
    failures: BTreeMap<i32, u32>,
}

impl Fetcher {
    /// Loads the topic's metadata; a missing topic is an error.
    pub fn new(
        client: &mut KafkaClient,
        topic: &str,
        config: FetchConfig,
    ) -> Result<Fetcher, ConsumeError> {
        let mut fetcher = Fetcher {
            topic: topic.to_string(),
            topic_id: Uuid::nil(),
            leaders: Vec::new(),
            config,
            failures: BTreeMap::new(),
        };
        fetcher.refresh_metadata(client)?;
        Ok(fetcher)
    }

    pub fn partition_count(&self) -> i32 {
        self.leaders.len() as i32
    }

    /// Re-reads the topic's partition leaders.
    pub fn refresh_metadata(&mut self, client: &mut KafkaClient) -> Result<(), ConsumeError> {
        let response = client.metadata(Some(std::slice::from_ref(&self.topic)))?;
        let topic =
            metadata_topic(&response, &self.topic).ok_or_else(|| ConsumeError::TopicMissing {
                topic: self.topic.clone(),
            })?;
        if topic.error_code == ResponseError::UnknownTopicOrPartition.code() {
            return Err(ConsumeError::TopicMissing {
                topic: self.topic.clone(),
            });
        }
        ClientError::check(
            topic.error_code,
            None,
            format!("metadata of topic '{}'", self.topic),
        )?;
        let count = topic.partitions.len();
        let mut leaders = vec![-1; count];
        for partition in &topic.partitions {
            let index = partition.partition_index;
            if index >= 0 && (index as usize) < count {
                leaders[index as usize] = partition.leader_id.0;
            }
        }
        self.leaders = leaders;
        self.topic_id = topic.topic_id;
        Ok(())
    }

    fn leader_of(&self, partition: i32) -> i32 {
        self.leaders.get(partition as usize).copied().unwrap_or(-1)
    }

    /// ListOffsets for `partitions` at `timestamp` (EARLIEST/LATEST_TIMESTAMP).
    pub fn list_offsets(
        &mut self,
        client: &mut KafkaClient,
        partitions: &[i32],
        timestamp: i64,
    ) -> Result<BTreeMap<i32, i64>, ConsumeError> {
        let mut found = BTreeMap::new();
        let mut wanted: BTreeSet<i32> = partitions.iter().copied().collect();
        let mut rounds = 0;
        while !wanted.is_empty() {
            rounds += 1;
            let mut by_leader: BTreeMap<i32, Vec<i32>> = BTreeMap::new();
            for &partition in &wanted {
                by_leader
                    .entry(self.leader_of(partition))
                    .or_default()
                    .push(partition);
            }
            let mut problem = None;
            for (leader, partitions) in by_leader {
                if leader < 0 {
                    problem = Some(format!("partition {} has no leader", partitions[0]));
                    continue;
                }
                let request = ListOffsetsRequest::default()
                    .with_replica_id(BrokerId(-1))
                    .with_isolation_level(self.config.isolation_level.code())
                    .with_timeout_ms(30_000)
                    .with_topics(vec![
                        ListOffsetsTopic::default()
                            .with_name(TopicName(StrBytes::from_string(self.topic.clone())))
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
                let answer = client
                    .broker(leader)
                    .and_then(|connection| connection.call(&request));
                let response = match answer {
                    Ok((_, response)) => response,
                    Err(error) if error.is_connection_problem() => {
                        client.disconnect(leader);
                        problem = Some(error.to_string());
                        continue;
                    }
                    Err(error) => return Err(error.into()),
                };
                for topic in &response.topics {
                    if *topic.name.0 != *self.topic {
                        continue;
                    }
                    for answer in &topic.partitions {
                        let code = answer.error_code;
                        if code == 0 {
                            found.insert(answer.partition_index, answer.offset);
                            wanted.remove(&answer.partition_index);
                        } else if ResponseError::try_from_code(code)
                            .is_some_and(|error| error.is_retriable())
                        {
                            problem = Some(format!(
                                "partition {}: {}",
                                answer.partition_index,
                                error_name(code)
                            ));
                        } else {
                            ClientError::check(
                                code,
                                None,
                                format!(
                                    "ListOffsets of {} partition {}",
                                    self.topic, answer.partition_index
                                ),
                            )?;
                        }
                    }
                }
            }
            if wanted.is_empty() {
                break;
            }
            if rounds >= PARTITION_RETRIES_MAX {
                return Err(ConsumeError::Group(format!(
                    "cannot list the offsets of topic '{}': {}",
                    self.topic,
                    problem.unwrap_or_else(|| "the leader did not answer".to_string())
                )));
            }
            std::thread::sleep(self.config.retry_backoff);
            match self.refresh_metadata(client) {
                // A restarting broker: the round count above bounds the wait.
                Err(ConsumeError::Client(error)) if error.is_connection_problem() => {}
                other => other?,
            }
        }
        Ok(found)
    }

    /// One fetch round: a Fetch to each leader of the `positions` partitions, waiting
    /// at most `max_wait_ms` for data.
    pub fn fetch(
        &mut self,
        client: &mut KafkaClient,
        positions: &BTreeMap<i32, i64>,
        max_wait_ms: i32,
    ) -> Result<BTreeMap<i32, PartitionFetch>, ConsumeError> {
        let mut out = BTreeMap::new();
        let mut by_leader: BTreeMap<i32, Vec<(i32, i64)>> = BTreeMap::new();
        for (&partition, &offset) in positions {
            by_leader
                .entry(self.leader_of(partition))
                .or_default()
                .push((partition, offset));
        }
        // With several leaders, only the first waits; the rest answer what they have.
        let mut wait_ms = max_wait_ms;
        for (leader, partitions) in by_leader {
            if leader < 0 {
                for (partition, _) in partitions {
                    out.insert(partition, PartitionFetch::Retry("no leader".to_string()));
                }
                continue;
            }
            match self.fetch_from(client, leader, &partitions, wait_ms) {
                Ok(answers) => out.extend(answers),
                Err(ConsumeError::Client(error)) if error.is_connection_problem() => {
                    client.disconnect(leader);
                    for (partition, _) in partitions {
                        out.insert(partition, PartitionFetch::Retry(error.to_string()));
                    }
                }
                Err(error) => return Err(error),
            }
            wait_ms = 0;
        }
        let mut refresh = false;
        for (&partition, fetched) in &out {
            if let PartitionFetch::Retry(reason) = fetched {
                let failures = self.failures.entry(partition).or_default();
                *failures += 1;
                if *failures >= PARTITION_RETRIES_MAX {
                    return Err(ConsumeError::Records {
                        partition,
                        offset: positions.get(&partition).copied().unwrap_or(-1),
                        reason: format!("fetching failed {failures} times in a row: {reason}"),
                    });
                }
                refresh = true;
            } else {
                self.failures.remove(&partition);
            }
        }
        if refresh {
            std::thread::sleep(self.config.retry_backoff);
            match self.refresh_metadata(client) {
                // A broker that restarts refuses connections for a moment; the failure
                // counts above bound how long that is waited out.
                Err(ConsumeError::Client(ClientError::Connect { .. } | ClientError::Io { .. })) => {
                }
                other => other?,
            }
        }
        Ok(out)
    }

    fn fetch_from(
        &self,
        client: &mut KafkaClient,
        leader: i32,
        partitions: &[(i32, i64)],
        max_wait_ms: i32,
    ) -> Result<BTreeMap<i32, PartitionFetch>, ConsumeError> {
        let request = FetchRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_max_wait_ms(max_wait_ms)
            .with_min_bytes(self.config.min_bytes)
            .with_max_bytes(self.config.max_bytes)
            .with_isolation_level(self.config.isolation_level.code())
            .with_session_id(0)
            .with_session_epoch(-1)
            .with_topics(vec![
                FetchTopic::default()
                    .with_topic(TopicName(StrBytes::from_string(self.topic.clone())))
                    .with_topic_id(self.topic_id)
                    .with_partitions(
                        partitions
                            .iter()
                            .map(|&(partition, offset)| {
                                FetchPartition::default()
                                    .with_partition(partition)
                                    .with_fetch_offset(offset)
                                    .with_partition_max_bytes(self.config.partition_max_bytes)
                            })
                            .collect(),
                    ),
            ]);
        let connection = client.broker(leader)?;
        let mut version = connection.version_of::<FetchRequest>()?;
        if self.topic_id.is_nil() {
            // Fetch v13+ names topics by id only; without an id, stay below.
            version = version.min(12);
        }
        let response = connection.call_at(version, &request)?;
        ClientError::check(
            response.error_code,
            None,
            format!("Fetch from broker {leader}"),
        )?;
        let mut out = BTreeMap::new();
        let offsets: BTreeMap<i32, i64> = partitions.iter().copied().collect();
        for topic in &response.responses {
            let ours = if version >= 13 {
                topic.topic_id == self.topic_id
            } else {
                *topic.topic.0 == *self.topic
            };
            if !ours {
                continue;
            }
            for data in &topic.partitions {
                let partition = data.partition_index;
                let Some(&offset) = offsets.get(&partition) else {
                    continue;
                };
                let code = data.error_code;
                let fetched = if code == 0 {
                    let bytes = data.records.as_deref().unwrap_or_default();
                    let (records, next_offset) = decode_partition(
                        partition,
                        offset,
                        bytes,
                        data.aborted_transactions.as_deref(),
                        self.config.isolation_level,
                    )?;
                    PartitionFetch::Records {
                        records,
                        next_offset,
                    }
                } else if code == ResponseError::OffsetOutOfRange.code() {
                    PartitionFetch::OutOfRange
                } else if ResponseError::try_from_code(code).is_some_and(|error| {
                    error.is_retriable()
                        || matches!(
                            error,
                            ResponseError::UnknownTopicId | ResponseError::InconsistentTopicId
                        )
                }) {
                    PartitionFetch::Retry(error_name(code))
                } else {
                    return Err(ClientError::Broker {
                        context: format!("Fetch of {} partition {partition}", self.topic),
                        code,
                        message: None,
                    }
                    .into());
                };
                out.insert(partition, fetched);
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn isolation_levels_parse_as_kafka_names_them() {
        assert_eq!(
            IsolationLevel::parse("read_committed"),
            Ok(IsolationLevel::ReadCommitted)
        );
        assert_eq!(
            IsolationLevel::parse("READ_UNCOMMITTED"),
            Ok(IsolationLevel::ReadUncommitted)
        );
        assert!(IsolationLevel::parse("serializable").is_err());
    }
}
