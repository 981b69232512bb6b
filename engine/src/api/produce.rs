//! Produce v3–11 (v0–2 advertised for librdkafka's sake, answered UNSUPPORTED_VERSION).
//!
//! Per partition: find the topic, route the records to the owner shard, which
//! validates every batch (all-or-nothing), assigns offsets and appends. Partitions of
//! one request are appended concurrently; the response lists them in request order.
//! Before appending, the partition's registration decides (as Kafka's leader does): a
//! broker that does not lead it answers NOT_LEADER_OR_FOLLOWER, and acks=all with an ISR
//! smaller than `min.insync.replicas` (topic config, else the broker's) gets
//! NOT_ENOUGH_REPLICAS with nothing written. A single node is its partitions' whole ISR.
//! acks=all answers once the ISR has the records (the high watermark passed them).
//! NOT_LEADER_OR_FOLLOWER carries the current leader and its endpoint (KIP-951, v10+).
//!
//! A request runs in three steps. [`append`] hands every partition's records to its
//! owner shard and returns once each has its place in its partition's line of appends
//! (`Partition::append` takes a turn before its first await; see `turns.rs`), so the
//! connection can hand over its next request while this one is still being written,
//! and the records still land in request order. [`Appending::finish`] waits for the
//! writes; [`Appended::respond`] waits for the ISR (acks=all) and builds the answer.
//! The connection answers in request order (see `conn.rs`).

use std::cell::Cell;
use std::rc::Rc;
use std::task::Poll;

use bytes::Bytes;
use futures::future::LocalBoxFuture;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::produce_response::{
    LeaderIdAndEpoch, NodeEndpoint, PartitionProduceResponse, TopicProduceResponse,
};
use kafka_protocol::messages::{BrokerId, ProduceRequest, ProduceResponse, TopicName};
use kafka_protocol::protocol::StrBytes;

use std::sync::Arc;

use crate::errors::{replication_error_code, storage_error_code};
use crate::metadata::ClusterMetadata;
use crate::partition::AckError;
use crate::shard::Shard;

/// What the owner shard answers for one partition.
#[derive(Debug, Clone)]
pub struct PartitionAppend {
    pub base_offset: i64,
    /// The last offset written (what acks=all waits for).
    pub last_offset: i64,
    pub log_append_time_ms: i64,
    pub log_start_offset: i64,
}

type PartitionResult = Result<PartitionAppend, (i16, String)>;

pub use weir_storage::now_ms;

/// A produce request in one of its steps: `T` is each partition's state.
pub struct Produce<T> {
    shard: Rc<Shard>,
    metadata: Arc<ClusterMetadata>,
    acks_all: bool,
    timeout: std::time::Duration,
    topics: Vec<(TopicName, Vec<(i32, T)>)>,
}

/// A produce request whose appends are queued in order on their owner shards.
pub type Appending = Produce<Pending>;

/// A produce request whose records are written: what is left is waiting for the ISR
/// (acks=all) and answering.
pub type Appended = Produce<PartitionResult>;

/// One partition's append under way.
pub struct Pending {
    /// Set once the append has its place in the partition's line.
    ordered: Rc<Cell<bool>>,
    future: LocalBoxFuture<'static, PartitionResult>,
    result: Option<PartitionResult>,
}

impl Appending {
    /// Polls every partition's append until `ready` holds for all of them.
    async fn drive(&mut self, ready: fn(&Pending) -> bool) {
        futures::future::poll_fn(|context| {
            let mut all_ready = true;
            for (_, partitions) in &mut self.topics {
                for (_, pending) in partitions {
                    if pending.result.is_none()
                        && let Poll::Ready(result) = pending.future.as_mut().poll(context)
                    {
                        pending.result = Some(result);
                    }
                    all_ready &= ready(pending);
                }
            }
            if all_ready {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        })
        .await
    }

    /// Waits until every partition's records are written (or refused).
    pub async fn finish(mut self) -> Appended {
        self.drive(|pending| pending.result.is_some()).await;
        let topics = self
            .topics
            .into_iter()
            .map(|(name, partitions)| {
                let partitions = partitions
                    .into_iter()
                    .map(|(index, pending)| (index, pending.result.expect("finished")))
                    .collect();
                (name, partitions)
            })
            .collect();
        Produce {
            shard: self.shard,
            metadata: self.metadata,
            acks_all: self.acks_all,
            timeout: self.timeout,
            topics,
        }
    }
}

/// Validates every partition's records and queues their appends on the owner shards;
/// returns once every append has its place in line (see the module comment).
pub async fn append(shard: &Rc<Shard>, request: ProduceRequest) -> Appending {
    let acks_valid = matches!(request.acks, -1..=1);
    let acks_all = request.acks == -1;
    let timeout = std::time::Duration::from_millis(request.timeout_ms.max(0) as u64);
    let metadata = shard.metadata();
    let broker_min_isr = shard
        .effective_config()
        .value("min.insync.replicas")
        .and_then(|(value, _)| value.parse::<usize>().ok())
        .unwrap_or(1);
    let mut topics = Vec::with_capacity(request.topic_data.len());
    for topic_data in request.topic_data {
        let name = topic_data.name.0.to_string();
        let topic = metadata.topic(&name);
        let topic_exists = topic.map(|topic| topic.partitions);
        let min_isr = topic
            .and_then(|topic| topic.configs.get("min.insync.replicas"))
            .and_then(|value| value.parse::<usize>().ok())
            .unwrap_or(broker_min_isr);
        let appends = topic_data.partition_data.into_iter().map(|partition_data| {
            let name = name.clone();
            let registration = topic.and_then(|topic| topic.registrations.get(partition_data.index.max(0) as usize));
            let refused = registration.and_then(|registration| {
                if registration.leader != metadata.node_id {
                    Some((
                        ResponseError::NotLeaderOrFollower.code(),
                        format!("This server is not the leader for {name}-{}.", partition_data.index),
                    ))
                } else if acks_all && registration.isr.len() < min_isr {
                    Some((
                        ResponseError::NotEnoughReplicas.code(),
                        format!(
                            "The size of the current ISR {:?} is insufficient to satisfy the min.isr requirement of {min_isr} for partition {name}-{}",
                            registration.isr, partition_data.index
                        ),
                    ))
                } else {
                    None
                }
            });
            let ordered = Rc::new(Cell::new(false));
            let in_line = ordered.clone();
            let shard = shard.clone();
            let index = partition_data.index;
            let future = async move {
                let shard = &shard;
                let result: PartitionResult = if !acks_valid {
                    Err((
                        ResponseError::InvalidRequiredAcks.code(),
                        "acks must be -1, 0 or 1".to_string(),
                    ))
                } else if let (Some(_), Some(refusal)) = (topic_exists.filter(|&count| index >= 0 && index < count), refused) {
                    Err(refusal)
                } else {
                    match (topic_exists, partition_data.records) {
                        (Some(count), Some(records)) if index >= 0 && index < count => {
                            append_on_owner(shard, name, index, records, acks_all, &in_line).await
                        }
                        (Some(count), None) if index >= 0 && index < count => Err((
                            ResponseError::CorruptMessage.code(),
                            "produce request carries no records".to_string(),
                        )),
                        _ => Err((
                            ResponseError::UnknownTopicOrPartition.code(),
                            format!("This server does not host {name}-{index}."),
                        )),
                    }
                };
                result
            };
            let pending = Pending {
                ordered,
                future: Box::pin(future),
                result: None,
            };
            (index, pending)
        });
        topics.push((topic_data.name, appends.collect()));
    }
    let mut appending = Produce {
        shard: shard.clone(),
        metadata,
        acks_all,
        timeout,
        topics,
    };
    appending
        .drive(|pending| pending.result.is_some() || pending.ordered.get())
        .await;
    appending
}

impl Appended {
    /// Waits until the ISR has every appended batch (acks=all), then answers.
    pub async fn respond(self, version: i16) -> ProduceResponse {
        let Produce {
            shard,
            metadata,
            acks_all,
            timeout,
            mut topics,
        } = self;
        if acks_all {
            let waits = topics.iter_mut().flat_map(|(name, partitions)| {
                let (shard, topic) = (&shard, name.0.to_string());
                partitions.iter_mut().map(move |(index, result)| {
                    let topic = topic.clone();
                    async move {
                        let Ok(append) = result else { return };
                        let last_offset = append.last_offset;
                        if let Err(error) =
                            acknowledged_on_owner(shard, topic, *index, last_offset, timeout).await
                        {
                            *result = Err(error);
                        }
                    }
                })
            });
            futures::future::join_all(waits).await;
        }
        answer(&metadata, version, topics)
    }
}

/// The response for appended (and acknowledged) partitions.
fn answer(
    metadata: &ClusterMetadata,
    version: i16,
    appended: Vec<(TopicName, Vec<(i32, PartitionResult)>)>,
) -> ProduceResponse {
    let mut topics = Vec::with_capacity(appended.len());
    let mut leaders_named = std::collections::BTreeSet::new();
    for (name, results) in appended {
        let topic = metadata.topic(&name.0);
        let partition_responses = results
            .into_iter()
            .map(|(index, result)| {
                // KIP-951 (v10+): a stale route learns the current leader at once.
                let current_leader = match &result {
                    Err((code, _))
                        if version >= 10
                            && (*code == ResponseError::NotLeaderOrFollower.code()
                                || *code == ResponseError::FencedLeaderEpoch.code()) =>
                    {
                        topic
                            .and_then(|topic| topic.registrations.get(index.max(0) as usize))
                            .filter(|registration| registration.leader >= 0)
                            .map(|registration| (registration.leader, registration.leader_epoch))
                    }
                    _ => None,
                };
                if let Some((leader, _)) = current_leader {
                    leaders_named.insert(leader);
                }
                (index, result, current_leader)
            })
            .map(|(index, result, current_leader)| match result {
                Ok(append) => PartitionProduceResponse::default()
                    .with_index(index)
                    .with_error_code(0)
                    .with_base_offset(append.base_offset)
                    .with_log_append_time_ms(append.log_append_time_ms)
                    .with_log_start_offset(if version >= 5 {
                        append.log_start_offset
                    } else {
                        -1
                    }),
                Err((code, message)) => {
                    let mut response = PartitionProduceResponse::default()
                        .with_index(index)
                        .with_error_code(code)
                        .with_base_offset(-1)
                        .with_log_append_time_ms(-1)
                        .with_log_start_offset(-1)
                        .with_error_message((version >= 8).then(|| StrBytes::from_string(message)));
                    if let Some((leader, leader_epoch)) = current_leader {
                        response = response.with_current_leader(
                            LeaderIdAndEpoch::default()
                                .with_leader_id(BrokerId(leader))
                                .with_leader_epoch(leader_epoch),
                        );
                    }
                    response
                }
            })
            .collect();
        topics.push(
            TopicProduceResponse::default()
                .with_name(name)
                .with_partition_responses(partition_responses),
        );
    }
    // KIP-951: the endpoints of every leader named above.
    let node_endpoints = metadata
        .brokers
        .iter()
        .filter(|broker| leaders_named.contains(&broker.node_id))
        .map(|broker| {
            NodeEndpoint::default()
                .with_node_id(BrokerId(broker.node_id))
                .with_host(StrBytes::from_string(broker.host.clone()))
                .with_port(broker.port as i32)
                .with_rack(broker.rack.clone().map(StrBytes::from_string))
        })
        .collect();
    ProduceResponse::default()
        .with_responses(topics)
        .with_node_endpoints(node_endpoints)
}

async fn append_on_owner(
    shard: &Rc<Shard>,
    topic: String,
    index: i32,
    records: Bytes,
    acks_all: bool,
    ordered: &Cell<bool>,
) -> PartitionResult {
    on_owner(
        shard,
        topic,
        index,
        ordered,
        move |partition, topic| async move {
            if let Err(error) = partition.check_produce(acks_all) {
                return Err((
                    replication_error_code(&error),
                    format!("{error} ({topic}-{index})"),
                ));
            }
            match partition.append(records, now_ms()).await {
                Ok(info) => Ok(PartitionAppend {
                    base_offset: info.base_offset,
                    last_offset: info.last_offset,
                    log_append_time_ms: info.log_append_time_ms,
                    log_start_offset: partition.log_start_offset(),
                }),
                Err(error) => {
                    tracing::debug!(topic = %topic, partition = index, %error, "produce rejected");
                    Err((storage_error_code(&error), error.to_string()))
                }
            }
        },
    )
    .await
}

/// acks=all: waits on the owner shard until the ISR has `last_offset`.
async fn acknowledged_on_owner(
    shard: &Rc<Shard>,
    topic: String,
    index: i32,
    last_offset: i64,
    timeout: std::time::Duration,
) -> Result<(), (i16, String)> {
    on_owner(
        shard,
        topic,
        index,
        &Cell::new(false),
        move |partition, topic| async move {
            match partition.wait_acknowledged(last_offset, timeout).await {
                Ok(()) => Ok(()),
                Err(AckError::Replication(error)) => Err((
                    replication_error_code(&error),
                    format!("{error} ({topic}-{index})"),
                )),
                Err(AckError::TimedOut) => Err((
                    ResponseError::RequestTimedOut.code(),
                    format!(
                        "the in-sync replicas of {topic}-{index} did not acknowledge within {} ms",
                        timeout.as_millis()
                    ),
                )),
            }
        },
    )
    .await
}

/// Runs `work` on the shard that owns `topic`-`index`, with the partition; a partition
/// this broker does not host (or a shard that is gone) is NOT_LEADER_OR_FOLLOWER.
/// `ordered` as for `Shard::invoke_on_in_order`.
async fn on_owner<T, F, Fut>(
    shard: &Rc<Shard>,
    topic: String,
    index: i32,
    ordered: &Cell<bool>,
    work: F,
) -> Result<T, (i16, String)>
where
    T: Send + 'static,
    F: FnOnce(Rc<crate::partition::Partition>, String) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = Result<T, (i16, String)>> + 'static,
{
    let owner = shard.owner_of(&topic, index);
    shard
        .invoke_on_in_order(
            owner,
            move |owner_shard| async move {
                let Some(partition) = owner_shard.partition(&topic, index) else {
                    return Err((
                        ResponseError::NotLeaderOrFollower.code(),
                        format!("This server is not the leader for {topic}-{index}."),
                    ));
                };
                work(partition, topic).await
            },
            ordered,
        )
        .await
        .unwrap_or_else(|gone| Err((ResponseError::NotLeaderOrFollower.code(), gone.to_string())))
}
