//! Goal: the broker's life cycle keeps data and files right: partitions spread over
//! several log dirs, SIGTERM shuts down cleanly (exit 0, checkpoints, marker), a
//! restart serves the same data and continues offsets, bad configuration is refused
//! with a message naming the key. Method: the real binary, raw protocol requests.

mod common;

use bytes::Bytes;
use common::{Broker, Client, create_topic, create_topic_with_configs};
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Decodable, StrBytes};
use weir_storage::batch::{SimpleRecord, encode_batch, iterate_batches};

fn name(text: &str) -> TopicName {
    TopicName(StrBytes::from_string(text.to_string()))
}

fn produce(client: &mut Client, topic: &str, partition: i32, value: &str) -> (i16, i64) {
    let records = Bytes::from(encode_batch(
        0,
        &[SimpleRecord {
            timestamp_ms: 1,
            key: None,
            value: Some(value.as_bytes().to_vec()),
        }],
    ));
    let request = ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(5000)
        .with_topic_data(vec![
            TopicProduceData::default()
                .with_name(name(topic))
                .with_partition_data(vec![
                    PartitionProduceData::default()
                        .with_index(partition)
                        .with_records(Some(records)),
                ]),
        ]);
    let response = client.call(9, &request);
    let partition = &response.responses[0].partition_responses[0];
    (partition.error_code, partition.base_offset)
}

fn fetch_values(client: &mut Client, topic: &str, partition: i32) -> Vec<(i64, usize)> {
    let request = FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_bytes(1 << 20)
        .with_session_epoch(-1)
        .with_topics(vec![
            FetchTopic::default()
                .with_topic(name(topic))
                .with_partitions(vec![
                    FetchPartition::default()
                        .with_partition(partition)
                        .with_fetch_offset(0)
                        .with_partition_max_bytes(1 << 20),
                ]),
        ]);
    let response = client.call(11, &request);
    let data = response.responses[0].partitions[0]
        .records
        .clone()
        .unwrap_or_default();
    iterate_batches(&data)
        .map(|(_, header)| (header.base_offset(), header.records_count() as usize))
        .collect()
}

#[test]
fn partitions_spread_over_log_dirs_and_survive_a_clean_restart() {
    let dirs = tempfile::tempdir().unwrap();
    let (dir_a, dir_b) = (dirs.path().join("a"), dirs.path().join("b"));
    let log_dirs = format!("log.dirs={},{}", dir_a.display(), dir_b.display());
    let mut broker = Broker::start(&[&log_dirs]);
    let mut client = broker.connect();
    create_topic(&mut client, "spread", 6);
    for partition in 0..6 {
        for round in 0..3 {
            assert_eq!(
                produce(
                    &mut client,
                    "spread",
                    partition,
                    &format!("p{partition}-{round}")
                ),
                (0, round)
            );
        }
    }
    let in_dir = |dir: &std::path::Path| {
        (0..6)
            .filter(|partition| dir.join(format!("spread-{partition}")).is_dir())
            .count()
    };
    assert_eq!(
        (in_dir(&dir_a), in_dir(&dir_b)),
        (3, 3),
        "six partitions split evenly over two log dirs"
    );
    drop(client);

    broker.stop();
    for dir in [&dir_a, &dir_b] {
        assert!(
            dir.join(".kafka_cleanshutdown").exists(),
            "clean-shutdown marker in {}",
            dir.display()
        );
        assert!(dir.join("meta.properties").exists());
        let checkpoint =
            std::fs::read_to_string(dir.join("recovery-point-offset-checkpoint")).unwrap();
        let lines: Vec<&str> = checkpoint.lines().collect();
        assert_eq!(lines[..2], ["0", "3"], "{checkpoint}");
        assert!(
            lines[2..]
                .iter()
                .all(|line| line.starts_with("spread ") && line.ends_with(" 3")),
            "{checkpoint}"
        );
    }

    broker.restart();
    assert!(
        !dir_a.join(".kafka_cleanshutdown").exists(),
        "the marker is consumed by the next start"
    );
    let mut client = broker.connect();
    for partition in 0..6 {
        assert_eq!(
            fetch_values(&mut client, "spread", partition),
            vec![(0, 1), (1, 1), (2, 1)]
        );
        assert_eq!(
            produce(&mut client, "spread", partition, "after restart"),
            (0, 3),
            "offsets continue after restart"
        );
    }
}

#[test]
fn produce_to_missing_topic_without_auto_create_is_unknown_topic() {
    let broker = Broker::start(&["auto.create.topics.enable=false"]);
    let mut client = broker.connect();
    assert_eq!(
        produce(&mut client, "missing", 0, "x").0,
        3,
        "UNKNOWN_TOPIC_OR_PARTITION"
    );
    let metadata: MetadataResponse = client.call(
        9,
        &MetadataRequest::default()
            .with_topics(Some(vec![
                kafka_protocol::messages::metadata_request::MetadataRequestTopic::default()
                    .with_name(Some(name("missing"))),
            ]))
            .with_allow_auto_topic_creation(true),
    );
    assert_eq!(
        metadata.topics[0].error_code, 3,
        "auto-create off wins over the client's flag"
    );
}

#[test]
fn bad_configuration_is_refused_with_the_key_named() {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_weir"))
        .args([
            "broker",
            "--override",
            "default.replication.factor=0",
            "--override",
            "log.dirs=/nonexistent-weir-test",
        ])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("default.replication.factor"), "{stderr}");

    let broker = Broker::start(&["zookeeper.connect=localhost:2181", "no.such.key=1"]);
    let stderr = broker.stderr();
    assert!(
        stderr.contains("zookeeper.connect is not needed"),
        "{stderr}"
    );
    assert!(stderr.contains("'no.such.key'"), "{stderr}");
}

#[test]
fn pipelined_requests_are_answered_in_order_and_acks_zero_gets_no_answer() {
    let broker = Broker::start(&[]);
    let mut client = broker.connect();
    create_topic(&mut client, "pipelined", 2);
    // 40 requests written before reading anything: produces with acks=1 and acks=0
    // interleaved with ApiVersions; only the acks=1 produces and ApiVersions answer.
    let mut expected = Vec::new();
    for index in 0..40 {
        let records = Bytes::from(encode_batch(
            0,
            &[SimpleRecord {
                timestamp_ms: 1,
                key: None,
                value: Some(vec![b'v'; 10]),
            }],
        ));
        let produce = |acks: i16| {
            ProduceRequest::default()
                .with_acks(acks)
                .with_timeout_ms(5000)
                .with_topic_data(vec![
                    TopicProduceData::default()
                        .with_name(name("pipelined"))
                        .with_partition_data(vec![
                            PartitionProduceData::default()
                                .with_index(index % 2)
                                .with_records(Some(records.clone())),
                        ]),
                ])
        };
        match index % 3 {
            0 => expected.push((
                client.send(ApiKey::Produce, 9, &produce(1)),
                ApiKey::Produce,
            )),
            1 => {
                client.send(ApiKey::Produce, 9, &produce(0));
            }
            _ => expected.push((
                client.send(ApiKey::ApiVersions, 3, &ApiVersionsRequest::default()),
                ApiKey::ApiVersions,
            )),
        }
    }
    for (correlation_id, key) in expected {
        let mut body = client.receive().expect("an answer");
        let header = ResponseHeader::decode(
            &mut body,
            key.response_header_version(if key == ApiKey::Produce { 9 } else { 3 }),
        )
        .unwrap();
        assert_eq!(
            header.correlation_id, correlation_id,
            "answers come in request order, none for acks=0"
        );
    }
    // Every produce landed, acks=0 ones included: 40 * 2/3 produces over two partitions.
    let total: usize = (0..2)
        .map(|partition| fetch_values(&mut client, "pipelined", partition).len())
        .sum();
    assert_eq!(total, (0..40).filter(|index| index % 3 != 2).count());
}

#[test]
fn a_second_broker_on_the_same_log_dir_or_port_is_refused() {
    let broker = Broker::start(&[]);
    let same_dir = common::output_within(
        std::process::Command::new(env!("CARGO_BIN_EXE_weir")).args([
            "broker",
            "--override",
            &format!("log.dirs={}", broker.log_dir().display()),
            "--override",
            "listeners=PLAINTEXT://127.0.0.1:0",
        ]),
        std::time::Duration::from_secs(20),
    );
    assert!(!same_dir.status.success());
    let stderr = String::from_utf8_lossy(&same_dir.stderr);
    assert!(
        stderr.contains("is in use by another broker process"),
        "{stderr}"
    );

    let other_dir = tempfile::tempdir().unwrap();
    let same_port = common::output_within(
        std::process::Command::new(env!("CARGO_BIN_EXE_weir")).args([
            "broker",
            "--override",
            &format!("log.dirs={}", other_dir.path().display()),
            "--override",
            &format!("listeners=PLAINTEXT://127.0.0.1:{}", broker.port),
        ]),
        std::time::Duration::from_secs(20),
    );
    assert!(!same_port.status.success());
    let stderr = String::from_utf8_lossy(&same_port.stderr);
    assert!(
        stderr.contains(&format!("cannot listen on 127.0.0.1:{}", broker.port)),
        "{stderr}"
    );
}

/// The recovery point of `topic`-0 in the first log dir's checkpoint, if listed.
fn checkpointed_recovery_point(broker: &Broker, topic: &str) -> Option<i64> {
    let text =
        std::fs::read_to_string(broker.log_dir().join("recovery-point-offset-checkpoint")).ok()?;
    text.lines().skip(2).find_map(|line| {
        let fields: Vec<&str> = line.split(' ').collect();
        (fields.len() == 3 && fields[0] == topic && fields[1] == "0")
            .then(|| fields[2].parse().expect("offset"))
    })
}

#[test]
fn topic_flush_ms_makes_appends_durable_on_a_timer_and_can_be_changed_live() {
    let broker = Broker::start(&["log.flush.offset.checkpoint.interval.ms=100"]);
    let mut client = broker.connect();
    create_topic_with_configs(&mut client, "timed", 1, &[("flush.ms", "100")]);
    create_topic(&mut client, "untimed", 1);
    assert_eq!(produce(&mut client, "timed", 0, "a"), (0, 0));
    assert_eq!(produce(&mut client, "untimed", 0, "a"), (0, 0));
    let wait_for = |topic: &str, offset: i64| {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while checkpointed_recovery_point(&broker, topic) != Some(offset) {
            assert!(
                std::time::Instant::now() < deadline,
                "{topic}: recovery point {:?}, wanted {offset}",
                checkpointed_recovery_point(&broker, topic)
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    };
    wait_for("timed", 1);
    // Kafka's default flush.ms is "never": the page cache and the log's recovery do the work.
    std::thread::sleep(std::time::Duration::from_millis(500));
    assert_eq!(checkpointed_recovery_point(&broker, "untimed"), Some(0));

    use kafka_protocol::messages::incremental_alter_configs_request::{
        AlterConfigsResource, AlterableConfig,
    };
    let request = IncrementalAlterConfigsRequest::default().with_resources(vec![
        AlterConfigsResource::default()
            .with_resource_type(2)
            .with_resource_name(StrBytes::from_static_str("untimed"))
            .with_configs(vec![
                AlterableConfig::default()
                    .with_name(StrBytes::from_static_str("flush.ms"))
                    .with_config_operation(0)
                    .with_value(Some(StrBytes::from_static_str("100"))),
            ]),
    ]);
    assert_eq!(client.call(1, &request).responses[0].error_code, 0);
    wait_for("untimed", 1);
}

#[test]
fn a_start_up_failure_on_the_controller_shard_ends_the_process() {
    // The node's CONTROLLER port is taken: the quorum cannot start, and every shard
    // must stop (not wait forever for a shutdown that will never come).
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let controller_port = taken.local_addr().unwrap().port();
    let client_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = tempfile::tempdir().unwrap();
    let output = common::output_within(
        std::process::Command::new(env!("CARGO_BIN_EXE_weir")).args([
            "broker",
            "--shards",
            "2",
            "--override",
            &format!("log.dirs={}", dir.path().display()),
            "--override",
            &format!(
                "listeners=PLAINTEXT://127.0.0.1:{client_port},CONTROLLER://127.0.0.1:{controller_port}"
            ),
            "--override",
            &format!("controller.quorum.voters=0@127.0.0.1:{controller_port},1@127.0.0.1:1,2@127.0.0.1:2"),
        ]),
        std::time::Duration::from_secs(30),
    );
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(&format!(
            "cannot bind the controller listener 127.0.0.1:{controller_port}"
        )),
        "{stderr}"
    );
}
