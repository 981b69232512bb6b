//! The producer's view of the cluster: the topic's partitions and leaders (waiting
//! while an auto-created topic gets them) and the idempotent producer id.

use std::time::{Duration, Instant};

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::ProducerId;
use kafka_protocol::messages::TopicName;
use kafka_protocol::messages::init_producer_id_request::InitProducerIdRequest;
use kafka_protocol::messages::metadata_request::{MetadataRequest, MetadataRequestTopic};
use kafka_protocol::protocol::StrBytes;
use weir_net::client::{ClientError, error_name, metadata_topic};

use super::{Idempotence, PartitionState, ProduceError, Producer};

/// How long a topic the broker calls unknown is waited for (it may be being created)
/// before the producer gives up; Kafka waits max.block.ms, which is long for a CLI.
const UNKNOWN_TOPIC_WAIT: Duration = Duration::from_secs(2);
/// Attempts to get a producer id when the broker answers with a retriable error.
const INIT_PRODUCER_ID_ATTEMPTS_MAX: u32 = 10;

impl Producer {
    /// Loads the topic's partitions and leaders, waiting (max.block.ms) while the topic
    /// is being created or a partition has no leader.
    pub(super) fn refresh_metadata(&mut self) -> Result<(), ProduceError> {
        let started = Instant::now();
        let request = MetadataRequest::default()
            .with_topics(Some(vec![MetadataRequestTopic::default().with_name(Some(
                TopicName(StrBytes::from_string(self.topic.clone())),
            ))]))
            .with_allow_auto_topic_creation(true);
        loop {
            let response = self.client.metadata_request(&request)?;
            let topic =
                metadata_topic(&response, &self.topic).ok_or_else(|| ProduceError::Metadata {
                    topic: self.topic.clone(),
                    reason: "the broker's answer does not list it".to_string(),
                })?;
            let waited = started.elapsed();
            let problem = if topic.error_code == ResponseError::UnknownTopicOrPartition.code() {
                if waited >= UNKNOWN_TOPIC_WAIT {
                    return Err(ProduceError::TopicMissing {
                        topic: self.topic.clone(),
                        bootstrap: self.bootstrap.clone(),
                    });
                }
                error_name(topic.error_code)
            } else if topic.error_code != 0 {
                let retriable = ResponseError::try_from_code(topic.error_code)
                    .is_some_and(|error| error.is_retriable());
                if !retriable {
                    return Err(ProduceError::Metadata {
                        topic: self.topic.clone(),
                        reason: error_name(topic.error_code),
                    });
                }
                error_name(topic.error_code)
            } else if topic.partitions.is_empty() {
                "no partitions listed".to_string()
            } else if let Some(partition) = topic
                .partitions
                .iter()
                .find(|partition| partition.leader_id.0 < 0)
            {
                format!("partition {} has no leader", partition.partition_index)
            } else {
                let count = topic.partitions.len();
                let mut leaders = vec![-1; count];
                for partition in &topic.partitions {
                    let index = partition.partition_index;
                    if index < 0 || index as usize >= count {
                        return Err(ProduceError::Metadata {
                            topic: self.topic.clone(),
                            reason: format!("partition index {index} of {count}"),
                        });
                    }
                    leaders[index as usize] = partition.leader_id.0;
                }
                self.topic_id = topic.topic_id;
                for (index, leader) in leaders.into_iter().enumerate() {
                    match self.partitions.get_mut(index) {
                        Some(state) => state.leader = leader,
                        None => self.partitions.push(PartitionState {
                            leader,
                            pending: Vec::new(),
                            pending_bytes: 0,
                            first_pending_at: None,
                            next_sequence: 0,
                        }),
                    }
                }
                return Ok(());
            };
            if waited >= self.config.max_block {
                return Err(ProduceError::NoLeader {
                    topic: self.topic.clone(),
                    waited_ms: waited.as_millis(),
                    reason: problem,
                });
            }
            std::thread::sleep(self.config.retry_backoff);
        }
    }

    /// Gets an idempotent producer id the first time one is needed.
    pub(super) fn ensure_producer_id(&mut self) -> Result<(), ProduceError> {
        if self.idempotence == Idempotence::Off || self.producer.is_some() {
            return Ok(());
        }
        let request = InitProducerIdRequest::default()
            .with_transactional_id(None)
            .with_transaction_timeout_ms(60_000)
            .with_producer_id(ProducerId(-1))
            .with_producer_epoch(-1);
        let mut attempts = 0;
        loop {
            attempts += 1;
            let response = match self.client.any().call(&request) {
                Ok((_, response)) => response,
                Err(ClientError::Unsupported { .. })
                    if self.idempotence == Idempotence::Preferred =>
                {
                    self.idempotence = Idempotence::Off;
                    return Ok(());
                }
                Err(error) => return Err(ProduceError::ProducerId(error.to_string())),
            };
            if response.error_code == 0 {
                self.producer = Some((response.producer_id.0, response.producer_epoch));
                for state in &mut self.partitions {
                    state.next_sequence = 0;
                }
                return Ok(());
            }
            let retriable = ResponseError::try_from_code(response.error_code)
                .is_some_and(|error| error.is_retriable());
            if !retriable || attempts >= INIT_PRODUCER_ID_ATTEMPTS_MAX {
                return Err(ProduceError::ProducerId(error_name(response.error_code)));
            }
            std::thread::sleep(self.config.retry_backoff);
        }
    }
}
