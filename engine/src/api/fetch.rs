//! Fetch v4–12, sessionless (a session id of 0 is always answered).
//!
//! Reads go to each partition's owner shard in parallel; the connection's shard then
//! applies the response byte limit in request order, keeping whole batches only and
//! always at least one batch of the first non-empty partition (KIP-74), so consumers
//! progress past batches larger than their limits. When fewer than `min_bytes` are
//! available, the request parks until an owner appends or `max_wait_ms` passes.
//!
//! Zero copy (`weir.fetch.zero.copy`, on by default): owners answer with file regions
//! (`LogSlice`: a dup'ed segment descriptor, position, length) instead of bytes, the
//! response is encoded with placeholders where the records go
//! (`weir_net::zero_copy`), and the connection sends the regions with `sendfile`
//! (`crate::send_file`). With it off, owners read the bytes into the response.

use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::FutureExt;
use futures::future::{Either, LocalBoxFuture, select, select_all};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::fetch_request::FetchTopic;
use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
use kafka_protocol::messages::{BrokerId, FetchRequest, FetchResponse};
use weir_net::zero_copy::{RegionLength, placeholder};
use weir_storage::LogSlice;
use weir_storage::batch::iterate_batches;

use crate::errors::storage_error_code;
use crate::metadata::{ClusterMetadata, TopicMetadata};
use crate::shard::Shard;

/// Longest a fetch may park, whatever the client asks: bounds how long a waiter and
/// its cross-shard registrations live.
pub const FETCH_WAIT_MS_MAX: i32 = 30_000;

/// One partition's records, as the owner shard answers them.
#[derive(Debug, Clone, Default)]
enum Records {
    #[default]
    Empty,
    /// Read into memory (zero copy off).
    Bytes(Bytes),
    /// A region of a segment file, sent with `sendfile`.
    Slice(LogSlice),
}

impl Records {
    fn len(&self) -> usize {
        match self {
            Records::Empty => 0,
            Records::Bytes(bytes) => bytes.len(),
            Records::Slice(slice) => slice.length,
        }
    }

    /// Keeps whole batches within `limit` bytes (the first batch always with
    /// `at_least_one_batch`).
    fn truncate_to(&mut self, limit: usize, at_least_one_batch: bool) {
        match self {
            Records::Empty => {}
            Records::Bytes(bytes) => {
                let mut keep = 0usize;
                for (position, header) in iterate_batches(bytes) {
                    let end = position + header.size_bytes() as usize;
                    if end > limit && !(at_least_one_batch && keep == 0) {
                        break;
                    }
                    keep = end;
                }
                *bytes = bytes.slice(..keep);
            }
            Records::Slice(slice) => slice.truncate_to(limit, at_least_one_batch),
        }
        if self.len() == 0 {
            *self = Records::Empty;
        }
    }
}

/// A file region of a Fetch response frame (see `weir_net::zero_copy`).
#[derive(Debug)]
pub struct FetchRegion(pub LogSlice);

impl RegionLength for FetchRegion {
    fn region_length(&self) -> usize {
        self.0.length
    }
}

/// One partition's read, as the owner shard answers it.
#[derive(Debug, Clone, Default)]
struct PartitionRead {
    error_code: i16,
    records: Records,
    high_watermark: i64,
    log_start_offset: i64,
    /// A follower's last fetched epoch ends here on the leader: (epoch, end offset).
    diverging: Option<(i32, i64)>,
    /// The end the read saw (the high watermark for a consumer, the log end for a
    /// follower), taken before reading; 0 when there was no partition to read. A wait
    /// for more waits for the end to pass it: waiting past the fetch offset would
    /// return at once whenever some data, but less than `min_bytes`, is there.
    end_seen: i64,
}

struct Wanted {
    topic_index: usize,
    topic: String,
    partition: i32,
    offset: i64,
    partition_max_bytes: usize,
    /// KIP-320 (v9+): the leader epoch the client believes in; -1 skips the check.
    current_leader_epoch: i32,
    /// Set when the topic or partition does not exist: the error to answer with.
    missing: Option<i16>,
    /// A follower's fetch: its node id, the epoch of its last record (v12+) and its
    /// log start.
    replica: Option<(i32, Option<i32>, i64)>,
}

/// Answers a Fetch: the response, and the file regions its placeholders stand for, in
/// encoding order (empty when every record byte is in the response itself).
/// The topic a Fetch request's entry names: by id from v13 on, by name before.
pub fn requested_topic<'m>(
    metadata: &'m ClusterMetadata,
    version: i16,
    topic: &FetchTopic,
) -> Option<&'m TopicMetadata> {
    if version >= 13 {
        metadata.topic_by_id(&topic.topic_id)
    } else {
        metadata.topic(&topic.topic.0)
    }
}

pub async fn handle(
    shard: &Rc<Shard>,
    version: i16,
    request: FetchRequest,
) -> (FetchResponse, Vec<FetchRegion>) {
    let started = Instant::now();
    let max_wait = Duration::from_millis(request.max_wait_ms.clamp(0, FETCH_WAIT_MS_MAX) as u64);
    let min_bytes = request.min_bytes.max(0) as usize;
    let max_bytes = if request.max_bytes <= 0 {
        i32::MAX as usize
    } else {
        request.max_bytes as usize
    };
    let metadata = shard.metadata();
    let mut wanted = Vec::new();
    for (topic_index, topic) in request.topics.iter().enumerate() {
        let found = requested_topic(&metadata, version, topic);
        let name = found.map_or_else(|| topic.topic.0.to_string(), |found| found.name.clone());
        let count = found.map_or(0, |found| found.partitions);
        let missing_code = if version >= 13 && found.is_none() {
            ResponseError::UnknownTopicId.code()
        } else {
            ResponseError::UnknownTopicOrPartition.code()
        };
        for partition in &topic.partitions {
            wanted.push(Wanted {
                topic_index,
                topic: name.clone(),
                partition: partition.partition,
                offset: partition.fetch_offset,
                partition_max_bytes: partition.partition_max_bytes.max(0) as usize,
                current_leader_epoch: if version >= 9 {
                    partition.current_leader_epoch
                } else {
                    -1
                },
                missing: (partition.partition < 0 || partition.partition >= count)
                    .then_some(missing_code),
                replica: (request.replica_id.0 >= 0).then(|| {
                    let last = if version >= 12 {
                        partition.last_fetched_epoch
                    } else {
                        -1
                    };
                    (
                        request.replica_id.0,
                        (last >= 0).then_some(last),
                        partition.log_start_offset,
                    )
                }),
            });
        }
    }
    let reads = loop {
        let reads = read_all(shard, &wanted, max_bytes).await;
        let available: usize = reads.iter().map(|read| read.records.len()).sum();
        let any_error = reads.iter().any(|read| read.error_code != 0);
        let elapsed = started.elapsed();
        // After the wait ends (append or deadline) the loop reads once more, so data
        // arriving right at the deadline is still returned.
        if available >= min_bytes
            || any_error
            || elapsed >= max_wait
            || shard.is_shutting_down()
            || wanted.is_empty()
        {
            break reads;
        }
        wait_for_any(shard, &wanted, &reads, max_wait - elapsed).await;
    };
    let reads = apply_response_limit(reads, max_bytes);
    let mut responses: Vec<FetchableTopicResponse> = request
        .topics
        .iter()
        .map(|topic| {
            // A response names topics the way the request did: by name up to v12, by id after.
            if version >= 13 {
                FetchableTopicResponse::default().with_topic_id(topic.topic_id)
            } else {
                FetchableTopicResponse::default().with_topic(topic.topic.clone())
            }
        })
        .collect();
    let mut regions = Vec::new();
    for (want, read) in wanted.iter().zip(reads) {
        let mut error_code = read.error_code;
        let records = match read.records {
            Records::Empty => Bytes::new(),
            Records::Bytes(bytes) => bytes,
            Records::Slice(slice) => match placeholder(slice.length) {
                Some(placeholder) => {
                    regions.push(FetchRegion(slice));
                    placeholder
                }
                // Larger than a placeholder can stand for: copy it.
                None => match slice.read_bytes() {
                    Ok(bytes) => Bytes::from(bytes),
                    Err(error) => {
                        tracing::warn!(topic = want.topic, partition = want.partition, %error, "fetch read failed");
                        error_code = ResponseError::KafkaStorageError.code();
                        Bytes::new()
                    }
                },
            },
        };
        let mut data = PartitionData::default()
            .with_partition_index(want.partition)
            .with_error_code(error_code)
            .with_high_watermark(read.high_watermark)
            .with_last_stable_offset(read.high_watermark)
            .with_log_start_offset(if version >= 5 {
                read.log_start_offset
            } else {
                -1
            })
            .with_aborted_transactions(None)
            .with_records(Some(records));
        if version >= 11 {
            data = data.with_preferred_read_replica(BrokerId(-1));
        }
        if let (Some((epoch, end_offset)), true) = (read.diverging, version >= 12) {
            data = data.with_diverging_epoch(
                kafka_protocol::messages::fetch_response::EpochEndOffset::default()
                    .with_epoch(epoch)
                    .with_end_offset(end_offset),
            );
        }
        responses[want.topic_index].partitions.push(data);
    }
    let response = FetchResponse::default()
        .with_error_code(0)
        .with_session_id(0)
        .with_responses(responses);
    (response, regions)
}

async fn read_all(shard: &Rc<Shard>, wanted: &[Wanted], max_bytes: usize) -> Vec<PartitionRead> {
    let reads = wanted.iter().map(|want| {
        let topic = want.topic.clone();
        let (partition, offset, missing) = (want.partition, want.offset, want.missing);
        let current_leader_epoch = want.current_leader_epoch;
        let replica = want.replica;
        let limit = want.partition_max_bytes.min(max_bytes);
        async move {
            if let Some(error_code) = missing {
                return PartitionRead {
                    error_code,
                    high_watermark: -1,
                    log_start_offset: -1,
                    ..PartitionRead::default()
                };
            }
            let owner = shard.owner_of(&topic, partition);
            shard
                .invoke_on(owner, move |owner_shard| async move {
                    let end_seen =
                        owner_shard
                            .partition(&topic, partition)
                            .map_or(0, |partition| {
                                if replica.is_some() {
                                    partition.log_end_offset()
                                } else {
                                    partition.high_watermark()
                                }
                            });
                    let read = read_local(
                        &owner_shard,
                        &topic,
                        partition,
                        offset,
                        current_leader_epoch,
                        replica,
                        limit,
                    )
                    .await;
                    PartitionRead { end_seen, ..read }
                })
                .await
                .unwrap_or_else(|_| PartitionRead {
                    error_code: ResponseError::NotLeaderOrFollower.code(),
                    high_watermark: -1,
                    log_start_offset: -1,
                    ..PartitionRead::default()
                })
        }
    });
    futures::future::join_all(reads).await
}

async fn read_local(
    shard: &Rc<Shard>,
    topic: &str,
    index: i32,
    offset: i64,
    current_leader_epoch: i32,
    replica: Option<(i32, Option<i32>, i64)>,
    limit: usize,
) -> PartitionRead {
    let Some(partition) = shard.partition(topic, index) else {
        return PartitionRead {
            error_code: ResponseError::UnknownTopicOrPartition.code(),
            high_watermark: -1,
            log_start_offset: -1,
            ..PartitionRead::default()
        };
    };
    if let Err(error_code) = partition.check_current_leader_epoch(current_leader_epoch) {
        return PartitionRead {
            error_code,
            high_watermark: -1,
            log_start_offset: -1,
            ..PartitionRead::default()
        };
    }
    if let Some((follower, last_fetched_epoch, follower_log_start)) = replica {
        return read_for_follower(
            shard,
            &partition,
            (follower, last_fetched_epoch, follower_log_start),
            current_leader_epoch,
            offset,
            limit,
        )
        .await;
    }
    if !partition.is_leader() {
        return PartitionRead {
            error_code: ResponseError::NotLeaderOrFollower.code(),
            high_watermark: -1,
            log_start_offset: -1,
            ..PartitionRead::default()
        };
    }
    let high_watermark = partition.high_watermark();
    let log_start_offset = partition.log_start_offset();
    if offset < log_start_offset || offset > high_watermark {
        return PartitionRead {
            error_code: ResponseError::OffsetOutOfRange.code(),
            high_watermark,
            log_start_offset,
            ..PartitionRead::default()
        };
    }
    if offset == high_watermark {
        return PartitionRead {
            high_watermark,
            log_start_offset,
            ..PartitionRead::default()
        };
    }
    let records = read_records(shard, &partition, offset, limit, false).await;
    match records {
        Ok(records) => PartitionRead {
            records,
            high_watermark,
            log_start_offset,
            ..PartitionRead::default()
        },
        Err(error) => {
            tracing::warn!(topic, partition = index, offset, %error, "fetch read failed");
            PartitionRead {
                error_code: storage_error_code(&error),
                high_watermark,
                log_start_offset,
                ..PartitionRead::default()
            }
        }
    }
}

/// Whole batches from `offset` within `limit` bytes, as file regions (zero copy) or
/// bytes; up to the high watermark for consumers, to the log end for a follower.
async fn read_records(
    shard: &Shard,
    partition: &crate::partition::Partition,
    offset: i64,
    limit: usize,
    to_log_end: bool,
) -> Result<Records, weir_storage::StorageError> {
    match (shard.config.fetch_zero_copy, to_log_end) {
        (true, false) => partition.read_slice(offset, limit, true).await,
        (true, true) => partition.read_slice_to_end(offset, limit).await,
        (false, false) => {
            return Ok(Records::Bytes(
                partition.read(offset, limit, true).await?.data,
            ));
        }
        (false, true) => {
            return Ok(Records::Bytes(
                partition.read_to_end(offset, limit).await?.data,
            ));
        }
    }
    .map(|read| read.slice.map_or(Records::Empty, Records::Slice))
}

/// The leader's answer to a follower: where its log diverges, or the records from
/// `offset` to the log end with the high watermark the fetch moved.
async fn read_for_follower(
    shard: &Rc<Shard>,
    partition: &crate::partition::Partition,
    (follower, last_fetched_epoch, follower_log_start): (i32, Option<i32>, i64),
    current_leader_epoch: i32,
    offset: i64,
    limit: usize,
) -> PartitionRead {
    use crate::partition::ReplicaFetchAnswer;
    let now_ms = weir_storage::now_ms().max(0) as u64;
    let answer = partition
        .on_follower_fetch(
            follower,
            current_leader_epoch,
            offset,
            last_fetched_epoch,
            follower_log_start,
            now_ms,
        )
        .await;
    let log_start_offset = partition.log_start_offset();
    let high_watermark = match answer {
        Ok(ReplicaFetchAnswer::Diverging { epoch, end_offset }) => {
            return PartitionRead {
                high_watermark: partition.high_watermark(),
                log_start_offset,
                diverging: Some((epoch, end_offset)),
                ..PartitionRead::default()
            };
        }
        Ok(ReplicaFetchAnswer::Read { high_watermark }) => high_watermark,
        Err(error) => {
            return PartitionRead {
                error_code: crate::errors::replication_error_code(&error),
                high_watermark: partition.high_watermark(),
                log_start_offset,
                ..PartitionRead::default()
            };
        }
    };
    if offset >= partition.log_end_offset() {
        return PartitionRead {
            high_watermark,
            log_start_offset,
            ..PartitionRead::default()
        };
    }
    let records = read_records(shard, partition, offset, limit, true).await;
    match records {
        Ok(records) => PartitionRead {
            records,
            high_watermark,
            log_start_offset,
            ..PartitionRead::default()
        },
        Err(error) => PartitionRead {
            error_code: storage_error_code(&error),
            high_watermark,
            log_start_offset,
            ..PartitionRead::default()
        },
    }
}

/// Parks until any wanted partition's end passes both its fetch offset and the end its
/// last read saw (`reads`, in `wanted` order), or `wait` passes.
async fn wait_for_any(
    shard: &Rc<Shard>,
    wanted: &[Wanted],
    reads: &[PartitionRead],
    wait: Duration,
) {
    let waits: Vec<LocalBoxFuture<'_, ()>> = wanted
        .iter()
        .zip(reads)
        .filter(|(want, _)| want.missing.is_none())
        .map(|(want, read)| {
            let topic = want.topic.clone();
            let (partition, offset) = (want.partition, want.offset.max(read.end_seen));
            let replica = want.replica.is_some();
            let owner = shard.owner_of(&topic, partition);
            async move {
                let _ = shard
                    .invoke_on(owner, move |owner_shard| async move {
                        if let Some(partition) = owner_shard.partition(&topic, partition) {
                            partition.wait_for_data(offset, wait, replica).await;
                        }
                    })
                    .await;
            }
            .boxed_local()
        })
        .collect();
    if waits.is_empty() {
        glommio::timer::sleep(wait).await;
        return;
    }
    let timer = glommio::timer::sleep(wait).boxed_local();
    let shutdown = shard.shutdown.listen().boxed_local();
    match select(select_all(waits), select(timer, shutdown)).await {
        Either::Left(_) | Either::Right(_) => {}
    }
}

/// Keeps, in request order, whole batches within `max_bytes` in total, but always the
/// first batch of the first partition that has data.
fn apply_response_limit(mut reads: Vec<PartitionRead>, max_bytes: usize) -> Vec<PartitionRead> {
    let mut remaining = max_bytes;
    let mut first_non_empty = true;
    for read in reads.iter_mut() {
        if read.records.len() == 0 {
            continue;
        }
        read.records.truncate_to(remaining, first_non_empty);
        first_non_empty = false;
        remaining = remaining.saturating_sub(read.records.len());
    }
    reads
}

#[cfg(test)]
mod tests {
    use super::*;
    use weir_storage::batch::{SimpleRecord, encode_batch};

    fn batch(base_offset: i64, value_bytes: usize) -> Vec<u8> {
        let record = SimpleRecord {
            timestamp_ms: 0,
            key: None,
            value: Some(vec![7u8; value_bytes]),
        };
        encode_batch(base_offset, &[record])
    }

    #[test]
    fn response_limit_keeps_whole_batches_and_the_first_batch_always() {
        let big = batch(0, 500);
        let small: Vec<u8> = [batch(0, 10), batch(1, 10)].concat();
        let reads = vec![
            PartitionRead {
                records: Records::Empty,
                ..Default::default()
            },
            PartitionRead {
                records: Records::Bytes(Bytes::from(big.clone())),
                ..Default::default()
            },
            PartitionRead {
                records: Records::Bytes(Bytes::from(small.clone())),
                ..Default::default()
            },
        ];
        let limited = apply_response_limit(reads, 100);
        assert_eq!(
            limited[1].records.len(),
            big.len(),
            "first non-empty partition keeps one batch over the limit"
        );
        assert_eq!(
            limited[2].records.len(),
            0,
            "nothing left for later partitions"
        );
        let reads = vec![PartitionRead {
            records: Records::Bytes(Bytes::from(small.clone())),
            ..Default::default()
        }];
        let limited = apply_response_limit(reads, small.len() - 1);
        assert_eq!(
            limited[0].records.len(),
            small.len() / 2,
            "only whole batches are kept"
        );
    }
}
