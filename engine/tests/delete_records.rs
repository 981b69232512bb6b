//! Goal: DeleteRecords (every advertised version) and time retention move a partition's
//! log start offset exactly as Kafka does, ListOffsets earliest and Fetch follow it,
//! the segment files below it leave the disk, and a clean restart or a crash keeps it.
//! Method: the real binary; topics with two one-record batches per segment and
//! `file.delete.delay.ms=0`; raw requests decoded at their version; the partition
//! directory listed to see which segment files exist.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::{Broker, Client, advertised_versions, create_topic_with_configs};
use kafka_protocol::messages::delete_records_request::{
    DeleteRecordsPartition, DeleteRecordsTopic,
};
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use weir_storage::batch::{SimpleRecord, encode_batch, iterate_batches};

const OFFSET_OUT_OF_RANGE: i16 = 1;
const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
const POLICY_VIOLATION: i16 = 44;
/// One record of this many value bytes per batch; segments hold two batches.
const VALUE_BYTES: usize = 100;

fn name(text: &str) -> TopicName {
    TopicName(StrBytes::from_string(text.to_string()))
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_millis() as i64
}

fn one_record_batch(offset: i64, timestamp_ms: i64) -> Bytes {
    Bytes::from(encode_batch(
        0,
        &[SimpleRecord {
            timestamp_ms,
            // Keyed: compacted topics refuse keyless records, as Kafka does.
            key: Some(b"key".to_vec()),
            value: Some(format!("{offset:0width$}", width = VALUE_BYTES).into_bytes()),
        }],
    ))
}

/// Creates `topic` with `partitions` partitions, two batches per segment, deleted
/// files removed at once, and `extra` topic configs.
fn create_topic(client: &mut Client, topic: &str, partitions: i32, extra: &[(&str, &str)]) {
    let segment_bytes = (2 * one_record_batch(0, 0).len()).to_string();
    let mut configs = vec![
        ("segment.bytes", segment_bytes.as_str()),
        ("file.delete.delay.ms", "0"),
    ];
    configs.extend_from_slice(extra);
    create_topic_with_configs(client, topic, partitions, &configs);
}

/// Produces `count` one-record batches to partition 0, timestamped `timestamp_ms`.
fn produce(client: &mut Client, topic: &str, count: i64, timestamp_ms: i64) {
    for _ in 0..count {
        let request = ProduceRequest::default()
            .with_acks(-1)
            .with_timeout_ms(10_000)
            .with_topic_data(vec![
                TopicProduceData::default()
                    .with_name(name(topic))
                    .with_partition_data(vec![
                        PartitionProduceData::default()
                            .with_index(0)
                            .with_records(Some(one_record_batch(0, timestamp_ms))),
                    ]),
            ]);
        let response: ProduceResponse = client.call(9, &request);
        assert_eq!(response.responses[0].partition_responses[0].error_code, 0);
    }
}

/// DeleteRecords for (partition, offset) pairs of one topic; (error, low watermark) each.
fn delete_records(
    client: &mut Client,
    version: i16,
    topic: &str,
    partitions: &[(i32, i64)],
) -> Vec<(i16, i64)> {
    let request = DeleteRecordsRequest::default()
        .with_timeout_ms(10_000)
        .with_topics(vec![
            DeleteRecordsTopic::default()
                .with_name(name(topic))
                .with_partitions(
                    partitions
                        .iter()
                        .map(|&(index, offset)| {
                            DeleteRecordsPartition::default()
                                .with_partition_index(index)
                                .with_offset(offset)
                        })
                        .collect(),
                ),
        ]);
    let response: DeleteRecordsResponse = client.call(version, &request);
    assert_eq!(response.topics.len(), 1);
    assert_eq!(response.topics[0].name.0.as_str(), topic);
    let results = &response.topics[0].partitions;
    assert_eq!(
        results
            .iter()
            .map(|result| result.partition_index)
            .collect::<Vec<_>>(),
        partitions
            .iter()
            .map(|&(index, _)| index)
            .collect::<Vec<_>>()
    );
    results
        .iter()
        .map(|result| (result.error_code, result.low_watermark))
        .collect()
}

/// ListOffsets earliest (−2) of a partition.
fn earliest(client: &mut Client, topic: &str, partition: i32) -> i64 {
    let response: ListOffsetsResponse = client.call(
        7,
        &ListOffsetsRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_topics(vec![
                ListOffsetsTopic::default()
                    .with_name(name(topic))
                    .with_partitions(vec![
                        ListOffsetsPartition::default()
                            .with_partition_index(partition)
                            .with_timestamp(-2),
                    ]),
            ]),
    );
    let answer = &response.topics[0].partitions[0];
    assert_eq!(
        answer.error_code, 0,
        "ListOffsets earliest {topic}-{partition}"
    );
    answer.offset
}

/// Fetch partition 0 from `offset`: (error, log start offset, base offsets read).
fn fetch(client: &mut Client, topic: &str, offset: i64) -> (i16, i64, Vec<i64>) {
    let response: FetchResponse = client.call(
        11,
        &FetchRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_max_wait_ms(0)
            .with_min_bytes(0)
            .with_max_bytes(1 << 20)
            .with_session_epoch(-1)
            .with_topics(vec![
                FetchTopic::default()
                    .with_topic(name(topic))
                    .with_partitions(vec![
                        FetchPartition::default()
                            .with_partition(0)
                            .with_fetch_offset(offset)
                            .with_partition_max_bytes(1 << 20),
                    ]),
            ]),
    );
    let partition = &response.responses[0].partitions[0];
    let bases = partition
        .records
        .as_ref()
        .map(|records| {
            iterate_batches(records)
                .map(|(_, header)| header.base_offset())
                .collect()
        })
        .unwrap_or_default();
    (partition.error_code, partition.log_start_offset, bases)
}

/// Base offsets of the `.log` files in a partition directory.
fn segment_bases(dir: &Path) -> Vec<i64> {
    let mut bases: Vec<i64> = std::fs::read_dir(dir)
        .expect("partition dir")
        .filter_map(|entry| {
            let name = entry
                .expect("entry")
                .file_name()
                .to_string_lossy()
                .into_owned();
            name.strip_suffix(".log")?.parse().ok()
        })
        .collect();
    bases.sort_unstable();
    bases
}

#[test]
fn delete_records_at_every_version_moves_the_log_start_and_list_offsets_follows() {
    let broker = Broker::start(&[]);
    let mut client = broker.connect();
    let versions = advertised_versions(&mut client, ApiKey::DeleteRecords);
    assert_eq!(versions, 0..=2);
    for version in versions {
        let topic = format!("delete-records-v{version}");
        create_topic(&mut client, &topic, 2, &[]);
        produce(&mut client, &topic, 10, now_ms());
        let dir = broker.log_dir().join(format!("{topic}-0"));
        assert_eq!(segment_bases(&dir), vec![0, 2, 4, 6, 8]);

        // Inside segment [4, 5]: the two segments below go, reads start at 5.
        assert_eq!(
            delete_records(&mut client, version, &topic, &[(0, 5)]),
            vec![(0, 5)],
            "v{version}"
        );
        assert_eq!(earliest(&mut client, &topic, 0), 5);
        assert_eq!(segment_bases(&dir), vec![4, 6, 8]);
        let (error, log_start, _) = fetch(&mut client, &topic, 3);
        assert_eq!((error, log_start), (OFFSET_OUT_OF_RANGE, 5));
        let (error, log_start, bases) = fetch(&mut client, &topic, 5);
        assert_eq!((error, log_start), (0, 5));
        assert_eq!(bases.first(), Some(&5));

        // Past the high watermark or below −1: OFFSET_OUT_OF_RANGE; unknown partitions;
        // backwards is no error and no change; the other partition is untouched.
        assert_eq!(
            delete_records(
                &mut client,
                version,
                &topic,
                &[(0, 11), (0, -2), (0, 2), (1, 0), (7, 1)]
            ),
            vec![
                (OFFSET_OUT_OF_RANGE, -1),
                (OFFSET_OUT_OF_RANGE, -1),
                (0, 5),
                (0, 0),
                (UNKNOWN_TOPIC_OR_PARTITION, -1)
            ]
        );
        assert_eq!(earliest(&mut client, &topic, 0), 5);
        assert_eq!(earliest(&mut client, &topic, 1), 0);
        assert_eq!(
            delete_records(&mut client, version, "no-such-topic", &[(0, 0)]),
            vec![(UNKNOWN_TOPIC_OR_PARTITION, -1)]
        );

        // −1: up to the high watermark; every segment but the active one goes.
        assert_eq!(
            delete_records(&mut client, version, &topic, &[(0, -1)]),
            vec![(0, 10)]
        );
        assert_eq!(earliest(&mut client, &topic, 0), 10);
        assert_eq!(segment_bases(&dir), vec![8]);
        let (error, _, bases) = fetch(&mut client, &topic, 10);
        assert_eq!((error, bases.len()), (0, 0));
        produce(&mut client, &topic, 1, now_ms());
        let (error, _, bases) = fetch(&mut client, &topic, 10);
        assert_eq!((error, bases), (0, vec![10]));
    }
}

#[test]
fn delete_records_is_refused_on_a_compacted_only_topic() {
    let broker = Broker::start(&[]);
    let mut client = broker.connect();
    create_topic(
        &mut client,
        "compacted",
        1,
        &[("cleanup.policy", "compact")],
    );
    produce(&mut client, "compacted", 3, now_ms());
    assert_eq!(
        delete_records(&mut client, 2, "compacted", &[(0, 2)]),
        vec![(POLICY_VIOLATION, -1)]
    );
    assert_eq!(earliest(&mut client, "compacted", 0), 0);
}

#[test]
fn the_log_start_set_by_delete_records_survives_a_crash_and_a_clean_restart() {
    let mut broker = Broker::start(&[]);
    let mut client = broker.connect();
    create_topic(&mut client, "kept", 1, &[]);
    produce(&mut client, "kept", 10, now_ms());
    // In the middle of a segment: only the checkpoint knows this start.
    assert_eq!(
        delete_records(&mut client, 2, "kept", &[(0, 3)]),
        vec![(0, 3)]
    );
    broker.kill9();
    broker.restart();
    let mut client = broker.connect();
    assert_eq!(earliest(&mut client, "kept", 0), 3);
    assert_eq!(fetch(&mut client, "kept", 2).0, OFFSET_OUT_OF_RANGE);

    assert_eq!(
        delete_records(&mut client, 1, "kept", &[(0, 7)]),
        vec![(0, 7)]
    );
    broker.stop();
    broker.restart();
    let mut client = broker.connect();
    assert_eq!(earliest(&mut client, "kept", 0), 7);
    let (error, log_start, bases) = fetch(&mut client, "kept", 7);
    assert_eq!((error, log_start), (0, 7));
    assert_eq!(bases.first(), Some(&7));
    assert_eq!(segment_bases(&broker.log_dir().join("kept-0")), vec![6, 8]);
}

#[test]
fn time_retention_deletes_expired_segments_in_the_background_and_the_start_survives_a_restart() {
    let mut broker = Broker::start(&["log.retention.check.interval.ms=100"]);
    let mut client = broker.connect();
    create_topic(&mut client, "aging", 1, &[("retention.ms", "60000")]);
    let hour_ago = now_ms() - 3_600_000;
    produce(&mut client, "aging", 5, hour_ago);
    produce(&mut client, "aging", 2, now_ms());
    // Offsets 0–4 are an hour old: segments [0, 1] and [2, 3] expire; [4, 5] holds a
    // recent record and stops the pass (oldest first, as Kafka).
    let deadline = Instant::now() + Duration::from_secs(20);
    while earliest(&mut client, "aging", 0) != 4 {
        assert!(
            Instant::now() < deadline,
            "retention did not run: {}",
            broker.stderr()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let dir = broker.log_dir().join("aging-0");
    assert_eq!(segment_bases(&dir), vec![4, 6]);
    assert!(
        broker.stderr().contains("deleted segments"),
        "{}",
        broker.stderr()
    );
    broker.kill9();
    broker.restart();
    let mut client = broker.connect();
    assert_eq!(earliest(&mut client, "aging", 0), 4);
    let (error, _, bases) = fetch(&mut client, "aging", 4);
    assert_eq!((error, bases), (0, vec![4, 5]), "a fetch reads one segment");
}
