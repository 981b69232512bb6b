//! Goal: every advertised version of InitProducerId and DescribeProducers is handled,
//! and idempotent Produce answers Kafka's error codes at every Produce version.
//! Method: the real binary; InitProducerId at each version (ids distinct, and above
//! the ids handed out before a restart); per Produce version one producer writes,
//! retries, skips a sequence and writes with an older epoch; DescribeProducers shows
//! the resulting state; responses decoded at their version and checked for content.

mod common;

use std::collections::BTreeSet;

use bytes::Bytes;
use common::{Broker, Client, advertised_versions, create_topic};
use kafka_protocol::messages::describe_producers_request::TopicRequest;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use weir_storage::batch::{SimpleRecord, encode_batch, set_producer};

const OUT_OF_ORDER_SEQUENCE_NUMBER: i16 = 45;
const INVALID_PRODUCER_EPOCH: i16 = 47;
const INVALID_REQUEST: i16 = 42;
const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;

fn init_producer_id(client: &mut Client, version: i16) -> InitProducerIdResponse {
    client.call(
        version,
        &InitProducerIdRequest::default()
            .with_transactional_id(None)
            .with_transaction_timeout_ms(60_000),
    )
}

/// Record timestamp of every test batch: recent, or the producers would count as
/// expired (`producer.id.expiration.ms` runs from the batch timestamp, as in Kafka).
fn batch_timestamp_ms() -> i64 {
    static START: std::sync::OnceLock<i64> = std::sync::OnceLock::new();
    *START.get_or_init(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock after 1970")
            .as_millis() as i64
    })
}

fn idempotent_batch(producer_id: i64, epoch: i16, sequence: i32, count: usize) -> Bytes {
    let records: Vec<_> = (0..count)
        .map(|index| SimpleRecord {
            timestamp_ms: batch_timestamp_ms(),
            key: None,
            value: Some(
                format!("{producer_id}/{epoch}/{}", sequence as usize + index).into_bytes(),
            ),
        })
        .collect();
    let mut bytes = encode_batch(0, &records);
    set_producer(&mut bytes, producer_id, epoch, sequence);
    Bytes::from(bytes)
}

/// Produces one batch to `topic`-0 and returns (error code, base offset).
fn produce(client: &mut Client, version: i16, topic: &str, records: Bytes) -> (i16, i64) {
    let request = ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(10_000)
        .with_topic_data(vec![
            TopicProduceData::default()
                .with_name(TopicName(StrBytes::from_string(topic.to_string())))
                .with_partition_data(vec![
                    PartitionProduceData::default()
                        .with_index(0)
                        .with_records(Some(records)),
                ]),
        ]);
    let response = client.call(version, &request);
    let partition = &response.responses[0].partition_responses[0];
    (partition.error_code, partition.base_offset)
}

#[test]
fn init_producer_id_hands_out_distinct_ids_at_every_version_and_after_a_restart() {
    let mut broker = Broker::start(&[]);
    let mut client = broker.connect();
    let mut ids = BTreeSet::new();
    for version in advertised_versions(&mut client, ApiKey::InitProducerId) {
        let response = init_producer_id(&mut client, version);
        assert_eq!(response.error_code, 0, "InitProducerId v{version}");
        assert_eq!(response.producer_epoch, 0);
        assert!(response.producer_id.0 >= 0);
        assert!(
            ids.insert(response.producer_id.0),
            "id repeated at v{version}"
        );
        if version >= 3 {
            // KIP-360: a producer naming its current id and epoch gets a fresh id.
            let bump: InitProducerIdResponse = client.call(
                version,
                &InitProducerIdRequest::default()
                    .with_transactional_id(None)
                    .with_producer_id(response.producer_id)
                    .with_producer_epoch(0),
            );
            assert_eq!(bump.error_code, 0);
            assert!(ids.insert(bump.producer_id.0), "bump reused an id");
            let malformed: InitProducerIdResponse = client.call(
                version,
                &InitProducerIdRequest::default()
                    .with_transactional_id(None)
                    .with_producer_id(response.producer_id)
                    .with_producer_epoch(-1),
            );
            assert_eq!(malformed.error_code, INVALID_REQUEST);
        }
        let transactional: InitProducerIdResponse = client.call(
            version,
            &InitProducerIdRequest::default()
                .with_transactional_id(Some(TransactionalId(StrBytes::from_static_str("tx")))),
        );
        assert_eq!(transactional.error_code, INVALID_REQUEST, "v{version}");
    }
    let highest_before = *ids.last().expect("ids");
    broker.stop();
    broker.restart();
    let mut client = broker.connect();
    let after = init_producer_id(&mut client, 4);
    assert_eq!(after.error_code, 0);
    assert!(
        after.producer_id.0 > highest_before,
        "{} after a restart, {highest_before} before",
        after.producer_id.0
    );
}

#[test]
fn idempotent_produce_answers_kafkas_codes_at_every_version() {
    let mut broker = Broker::start(&[]);
    let mut client = broker.connect();
    let produce_versions = 3..=*advertised_versions(&mut client, ApiKey::Produce).end();
    for version in produce_versions {
        let topic = format!("idempotent-v{version}");
        create_topic(&mut client, &topic, 1);
        let producer = init_producer_id(&mut client, 4).producer_id.0;
        let at = |client: &mut Client, epoch, sequence, count| {
            produce(
                client,
                version,
                &topic,
                idempotent_batch(producer, epoch, sequence, count),
            )
        };
        assert_eq!(at(&mut client, 1, 0, 3), (0, 0), "v{version} first batch");
        assert_eq!(at(&mut client, 1, 3, 2), (0, 3), "v{version} second batch");
        assert_eq!(
            at(&mut client, 1, 0, 3),
            (0, 0),
            "v{version} retry answers offset 0"
        );
        assert_eq!(at(&mut client, 1, 7, 1).0, OUT_OF_ORDER_SEQUENCE_NUMBER);
        assert_eq!(at(&mut client, 0, 5, 1).0, INVALID_PRODUCER_EPOCH);
        assert_eq!(at(&mut client, 2, 4, 1).0, OUT_OF_ORDER_SEQUENCE_NUMBER);
        assert_eq!(at(&mut client, 1, 5, 1), (0, 5), "v{version} continues");

        let described: DescribeProducersResponse = client.call(
            0,
            &DescribeProducersRequest::default().with_topics(vec![
                TopicRequest::default()
                    .with_name(TopicName(StrBytes::from_string(topic.clone())))
                    .with_partition_indexes(vec![0, 9]),
            ]),
        );
        let partitions = &described.topics[0].partitions;
        assert_eq!(partitions[0].error_code, 0);
        let active = &partitions[0].active_producers;
        assert_eq!(active.len(), 1, "v{version}: {active:?}");
        assert_eq!(active[0].producer_id.0, producer);
        assert_eq!(active[0].producer_epoch, 1);
        assert_eq!(active[0].last_sequence, 5);
        assert_eq!(active[0].last_timestamp, batch_timestamp_ms());
        assert_eq!(active[0].current_txn_start_offset, -1);
        assert_eq!(partitions[1].error_code, UNKNOWN_TOPIC_OR_PARTITION);
    }

    // A clean shutdown snapshots the producer state in Kafka's file; a retry after the
    // restart is still recognised.
    let topic = "idempotent-v3";
    let producer = {
        let described: DescribeProducersResponse = client.call(
            0,
            &DescribeProducersRequest::default().with_topics(vec![
                TopicRequest::default()
                    .with_name(TopicName(StrBytes::from_static_str(topic)))
                    .with_partition_indexes(vec![0]),
            ]),
        );
        described.topics[0].partitions[0].active_producers[0]
            .producer_id
            .0
    };
    broker.stop();
    let snapshot = broker
        .log_dir()
        .join(format!("{topic}-0"))
        .join("00000000000000000006.snapshot");
    assert!(
        snapshot.exists(),
        "{} after a clean shutdown",
        snapshot.display()
    );
    broker.restart();
    let mut client = broker.connect();
    let retry = produce(&mut client, 3, topic, idempotent_batch(producer, 1, 5, 1));
    assert_eq!(
        retry,
        (0, 5),
        "the last batch is still known after the restart"
    );
    let next = produce(&mut client, 3, topic, idempotent_batch(producer, 1, 6, 1));
    assert_eq!(next, (0, 6));
}

#[test]
fn idle_producers_expire_after_producer_id_expiration_ms() {
    let broker = Broker::start(&[
        "producer.id.expiration.ms=1000",
        "producer.id.expiration.check.interval.ms=100",
    ]);
    let mut client = broker.connect();
    create_topic(&mut client, "expiring", 1);
    let producer = init_producer_id(&mut client, 4).producer_id.0;
    // A batch stamped now: the producer is active until a second has passed.
    let mut records = encode_batch(
        0,
        &[SimpleRecord {
            timestamp_ms: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .expect("clock after 1970")
                .as_millis() as i64,
            key: None,
            value: Some(b"v".to_vec()),
        }],
    );
    set_producer(&mut records, producer, 0, 0);
    assert_eq!(
        produce(&mut client, 9, "expiring", Bytes::from(records)),
        (0, 0)
    );
    let active = |client: &mut Client| {
        let described: DescribeProducersResponse = client.call(
            0,
            &DescribeProducersRequest::default().with_topics(vec![
                TopicRequest::default()
                    .with_name(TopicName(StrBytes::from_static_str("expiring")))
                    .with_partition_indexes(vec![0]),
            ]),
        );
        described.topics[0].partitions[0].active_producers.len()
    };
    assert_eq!(active(&mut client), 1);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while active(&mut client) != 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "producer never expired"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    // Forgotten: any sequence is accepted again (KIP-360).
    let mut records = encode_batch(
        0,
        &[SimpleRecord {
            timestamp_ms: batch_timestamp_ms(),
            key: None,
            value: Some(b"w".to_vec()),
        }],
    );
    set_producer(&mut records, producer, 0, 42);
    assert_eq!(
        produce(&mut client, 9, "expiring", Bytes::from(records)),
        (0, 1)
    );
}

#[test]
fn ids_start_above_the_producer_ids_already_in_the_logs() {
    // As after adopting a Kafka log dir: the logs hold producer 50,000 before this
    // broker ever handed out an id.
    let mut broker = Broker::start(&[]);
    let mut client = broker.connect();
    create_topic(&mut client, "adopted", 1);
    let records = idempotent_batch(50_000, 0, 0, 2);
    assert_eq!(produce(&mut client, 9, "adopted", records), (0, 0));
    broker.stop();
    broker.restart();
    let mut client = broker.connect();
    let response = init_producer_id(&mut client, 4);
    assert_eq!(response.error_code, 0);
    assert!(
        response.producer_id.0 > 50_000,
        "handed out {} although the log holds producer 50000",
        response.producer_id.0
    );
}
