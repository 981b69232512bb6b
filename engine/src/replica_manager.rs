//! Replication on the data path, per shard: followers fetch from their leaders over the
//! Kafka protocol, leaders ask the controller for ISR changes.
//!
//! ```text
//!  fetcher (one task per shard and leader broker) ── Fetch v12, replica_id = this node ──► leader
//!     for every partition this shard follows from that leader: offset = log end,
//!     last fetched epoch, current leader epoch
//!   ◄── per partition: records ─► append_as_follower ─► high watermark = min(leader's, log end)
//!                      diverging epoch ─► truncate to where the epochs agree (truncation_offset)
//!                      offset out of range below the leader's log start ─► start over there
//!                      the leader's log start moved (DeleteRecords) ─► the same records go here
//!                      not leader / fenced epoch ─► wait for the metadata that moves it
//!  isr_loop (every ISR_CHECK_MS): each led partition's isr_change ─► ControllerRequest::AlterPartition
//!     through the metadata log; the leader sees the new ISR when the metadata is published
//! ```
//!
//! The leader's side of a follower fetch is `api::fetch` (`Partition::on_follower_fetch`).

use std::rc::Rc;
use std::time::Duration;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::{BrokerId, FetchRequest, TopicName};
use kafka_protocol::protocol::StrBytes;
use tracing::{debug, info, warn};

use crate::broker_client::BrokerConnection;
use crate::controller::CONTROLLER_SHARD;
use crate::partition::Partition;
use crate::replication::NodeId;
use crate::replication::cluster_state::{ControllerRequest, MetadataRecord};
use crate::replication::follower::truncation_offset;
use crate::shard::Shard;

/// The Fetch version followers send (names topics, carries replica_id and epochs).
pub const REPLICA_FETCH_VERSION: i16 = 12;
/// How long a follower's fetch may park at the leader.
pub const REPLICA_FETCH_WAIT_MS: i32 = 500;
/// Bytes per partition and per response of a follower's fetch (Kafka's
/// `replica.fetch.max.bytes` and `replica.fetch.response.max.bytes`).
pub const REPLICA_FETCH_PARTITION_BYTES: i32 = 1 << 20;
pub const REPLICA_FETCH_RESPONSE_BYTES: i32 = 10 << 20;
/// The first pause after a fetch in which every partition was refused (it doubles
/// while refusals go on).
const REFUSED_BACKOFF_FIRST_MS: u64 = 5;
/// How often leaders look for ISR changes.
pub const ISR_CHECK_MS: u64 = 250;

/// Starts a fetcher for `leader` on this shard unless one runs.
pub fn ensure_fetcher(shard: &Rc<Shard>, leader: NodeId) {
    if shard.fetcher_leaders.borrow_mut().insert(leader) {
        glommio::spawn_local(fetcher(shard.clone(), leader)).detach();
    }
}

/// The partitions this shard follows from `leader`.
fn followed_from(shard: &Shard, leader: NodeId) -> Vec<Rc<Partition>> {
    shard
        .local_partitions()
        .into_iter()
        .filter(|partition| partition.following().is_some_and(|(l, _)| l == leader))
        .collect()
}

/// What one partition of a fetch asked for.
struct Asked {
    partition: Rc<Partition>,
    leader_epoch: i32,
    fetch_offset: i64,
}

/// Fetches from `leader` for as long as this shard follows a partition from it.
async fn fetcher(shard: Rc<Shard>, leader: NodeId) {
    let node_id = shard.config.node_id;
    let backoff = Duration::from_millis(shard.config.cluster.replica_fetch_backoff_ms);
    let mut connection: Option<BrokerConnection> = None;
    let mut refused_backoff_ms = REFUSED_BACKOFF_FIRST_MS;
    debug!(shard = shard.id, leader, "replica fetcher started");
    loop {
        if shard.is_shutting_down() {
            break;
        }
        let followed_version = shard.followed_version.get();
        let partitions = followed_from(&shard, leader);
        if partitions.is_empty() {
            break;
        }
        let Some(address) = shard
            .metadata()
            .brokers
            .iter()
            .find(|broker| broker.node_id == leader)
            .map(|broker| format!("{}:{}", broker.host, broker.port))
        else {
            shard
                .sleep_unless_shutdown(backoff.as_millis() as u64)
                .await;
            continue;
        };
        let mut asked = Vec::with_capacity(partitions.len());
        let mut topics: Vec<FetchTopic> = Vec::new();
        for partition in partitions {
            let Some((_, leader_epoch)) = partition.following() else {
                continue;
            };
            let Ok(epochs) = partition.leader_epochs().await else {
                continue;
            };
            let fetch_offset = partition.log_end_offset();
            let last_fetched_epoch = epochs.last().map_or(-1, |(epoch, _)| *epoch);
            let fetch = FetchPartition::default()
                .with_partition(partition.index)
                .with_current_leader_epoch(leader_epoch)
                .with_fetch_offset(fetch_offset)
                .with_last_fetched_epoch(last_fetched_epoch)
                .with_log_start_offset(partition.log_start_offset())
                .with_partition_max_bytes(REPLICA_FETCH_PARTITION_BYTES);
            match topics
                .iter_mut()
                .find(|topic| topic.topic.0.as_str() == partition.topic)
            {
                Some(topic) => topic.partitions.push(fetch),
                None => topics.push(
                    FetchTopic::default()
                        .with_topic(TopicName(StrBytes::from_string(partition.topic.clone())))
                        .with_partitions(vec![fetch]),
                ),
            }
            asked.push(Asked {
                partition,
                leader_epoch,
                fetch_offset,
            });
        }
        let request = FetchRequest::default()
            .with_replica_id(BrokerId(node_id))
            .with_max_wait_ms(REPLICA_FETCH_WAIT_MS)
            .with_min_bytes(1)
            .with_max_bytes(REPLICA_FETCH_RESPONSE_BYTES)
            .with_isolation_level(0)
            .with_session_id(0)
            .with_session_epoch(-1)
            .with_topics(topics);
        if connection.is_none() {
            match BrokerConnection::connect(&address, format!("weir-replica-fetcher-{node_id}"))
                .await
            {
                Ok(connected) => connection = Some(connected),
                Err(error) => {
                    debug!(leader, %address, %error, "cannot reach the leader");
                    shard
                        .sleep_unless_shutdown(backoff.as_millis() as u64)
                        .await;
                    continue;
                }
            }
        }
        let outcome = {
            let call = connection
                .as_mut()
                .expect("connected above")
                .call(REPLICA_FETCH_VERSION, &request);
            let timeout =
                glommio::timer::sleep(Duration::from_millis(REPLICA_FETCH_WAIT_MS as u64 + 10_000));
            // What this shard follows changed (a new topic, a failover): a fetch parked
            // at the leader for the old set could hold the new partitions back for up
            // to REPLICA_FETCH_WAIT_MS, so it is abandoned with its connection.
            let refollow = async {
                while shard.followed_version.get() == followed_version {
                    shard.followed_changed.listen().await;
                }
            };
            futures::pin_mut!(call, timeout, refollow);
            match futures::future::select(call, futures::future::select(timeout, refollow)).await {
                futures::future::Either::Left((Ok(response), _)) => Some(Ok(response)),
                futures::future::Either::Left((Err(error), _)) => Some(Err(error.to_string())),
                futures::future::Either::Right((futures::future::Either::Left(_), _)) => {
                    Some(Err("timed out".to_string()))
                }
                futures::future::Either::Right((futures::future::Either::Right(_), _)) => None,
            }
        };
        let Some(outcome) = outcome else {
            connection = None;
            continue;
        };
        let response = match outcome {
            Ok(response) => response,
            Err(error) => {
                debug!(leader, %address, %error, "replica fetch failed");
                connection = None;
                shard
                    .sleep_unless_shutdown(backoff.as_millis() as u64)
                    .await;
                continue;
            }
        };
        // The partitions of one answer are applied at once: each waits for its own
        // writes, and the next fetch (which tells the leader how far this replica got,
        // so acks=all producers hear back) goes out once the slowest is done, not after
        // the sum of all of them.
        let applied = futures::future::join_all(response.responses.into_iter().flat_map(|topic| {
            let asked = &asked;
            let shard = &shard;
            topic.partitions.into_iter().filter_map(move |data| {
                let asked = asked.iter().find(|asked| {
                    asked.partition.topic == topic.topic.0.as_str()
                        && asked.partition.index == data.partition_index
                })?;
                Some(async move { (asked, handle_partition(shard, asked, leader, data).await) })
            })
        }))
        .await;
        let mut progressed = false;
        let mut all_failed = true;
        for (asked, outcome) in applied {
            match outcome {
                Ok(moved) => {
                    all_failed = false;
                    progressed |= moved;
                }
                Err(reason) => {
                    debug!(leader, topic = %asked.partition.topic, partition = asked.partition.index, reason, "replica fetch of a partition failed");
                }
            }
        }
        if all_failed && !progressed {
            // Usually a leader that has not installed the metadata naming it yet (a
            // new topic, a moved leadership): retry soon, then back off to at most
            // 200 ms while it keeps refusing.
            shard.sleep_unless_shutdown(refused_backoff_ms).await;
            refused_backoff_ms = (refused_backoff_ms * 2).min(backoff.as_millis().min(200) as u64);
        } else {
            refused_backoff_ms = REFUSED_BACKOFF_FIRST_MS;
        }
    }
    shard.fetcher_leaders.borrow_mut().remove(&leader);
    debug!(shard = shard.id, leader, "replica fetcher stopped");
}

/// Applies one partition's answer; Ok(true) when the log changed.
async fn handle_partition(
    shard: &Rc<Shard>,
    asked: &Asked,
    leader: NodeId,
    data: kafka_protocol::messages::fetch_response::PartitionData,
) -> Result<bool, String> {
    let partition = &asked.partition;
    // The role may have changed while the fetch was in flight.
    if partition.following() != Some((leader, asked.leader_epoch)) {
        return Ok(false);
    }
    if partition.log_end_offset() != asked.fetch_offset {
        return Ok(false);
    }
    let now_ms = weir_storage::now_ms();
    match ResponseError::try_from_code(data.error_code) {
        None => {}
        Some(ResponseError::OffsetOutOfRange) => {
            if data.log_start_offset >= 0 && asked.fetch_offset < data.log_start_offset {
                info!(topic = %partition.topic, partition = partition.index, start = data.log_start_offset,
                    "behind the leader's log start: starting the log over there");
                partition
                    .truncate_fully_and_start_at(data.log_start_offset)
                    .await
                    .map_err(|error| error.to_string())?;
                return Ok(true);
            }
            // Ahead of the leader (an unclean election): back to the high watermark.
            let target = partition.high_watermark().min(asked.fetch_offset);
            warn!(topic = %partition.topic, partition = partition.index, target,
                "ahead of the leader's log end: truncating to the high watermark");
            partition
                .truncate_to(target)
                .await
                .map_err(|error| error.to_string())?;
            return Ok(true);
        }
        Some(error) => return Err(format!("{error:?}")),
    }
    if data.diverging_epoch.epoch >= 0 || data.diverging_epoch.end_offset >= 0 {
        let epochs = partition
            .leader_epochs()
            .await
            .map_err(|error| error.to_string())?;
        let (offset, _) = truncation_offset(
            (data.diverging_epoch.epoch, data.diverging_epoch.end_offset),
            &epochs,
            partition.log_end_offset(),
            partition.high_watermark(),
        );
        info!(topic = %partition.topic, partition = partition.index, offset,
            from = partition.log_end_offset(), "truncating a divergent suffix");
        partition
            .truncate_to(offset)
            .await
            .map_err(|error| error.to_string())?;
        return Ok(true);
    }
    let mut moved = false;
    if let Some(records) = data.records.filter(|records| !records.is_empty()) {
        partition
            .append_as_follower(records, now_ms)
            .await
            .map_err(|error| error.to_string())?;
        moved = true;
    }
    partition.follower_high_watermark(data.high_watermark);
    follow_log_start(shard, partition, data.log_start_offset).await;
    Ok(moved)
}

/// The leader's log start moved past this replica's (DeleteRecords there): this
/// replica drops the same records, up to its own high watermark (Kafka's follower does
/// this on every fetch response). Compacted-only topics never move it by DeleteRecords.
async fn follow_log_start(shard: &Rc<Shard>, partition: &Rc<Partition>, leader_log_start: i64) {
    let target = leader_log_start.min(partition.high_watermark());
    if target <= partition.log_start_offset() {
        return;
    }
    match partition
        .delete_records(target, weir_storage::now_ms())
        .await
    {
        Ok((_, Some(retired))) => {
            crate::retention::log_deletion(shard, partition, &retired, "the leader's log start");
            crate::retention::schedule_removal(shard, retired);
        }
        Ok((_, None)) => {}
        Err(crate::partition::DeleteRecordsError::PolicyViolation { .. }) => {}
        Err(error) => {
            debug!(topic = %partition.topic, partition = partition.index, %error,
                "could not follow the leader's log start");
        }
    }
}

/// Every ISR_CHECK_MS: the ISR changes this shard's leaders want go to the controller.
pub async fn isr_loop(shard: Rc<Shard>) {
    let node_id = shard.config.node_id;
    while shard.sleep_unless_shutdown(ISR_CHECK_MS).await {
        let now_ms = weir_storage::now_ms().max(0) as u64;
        let mut requests = Vec::new();
        for partition in shard.local_partitions() {
            if let Some(alter) = partition.isr_change(now_ms) {
                requests.push(MetadataRecord::Request(ControllerRequest::AlterPartition {
                    leader: node_id,
                    key: (partition.topic.clone(), partition.index),
                    leader_epoch: alter.leader_epoch,
                    partition_epoch: alter.partition_epoch,
                    isr: alter.new_isr,
                }));
            }
        }
        if requests.is_empty() {
            continue;
        }
        let _ = shard
            .invoke_on(CONTROLLER_SHARD, move |controller: Rc<Shard>| async move {
                let mut log = controller.metadata_log.borrow_mut();
                if let Some(log) = log.as_mut()
                    && let Err(error) = log.propose(&requests)
                {
                    debug!(%error, "an ISR change was not sent (no quorum leader)");
                }
            })
            .await;
    }
}
