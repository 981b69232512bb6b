//! Goal: every API version weir advertises is really handled. Method: start the real
//! binary, read its ApiVersions, and for every advertised (API, version) send a real
//! request encoded at that version and check the decoded response's content.

mod common;

use bytes::Bytes;
use common::Broker;
use kafka_protocol::messages::create_partitions_request::CreatePartitionsTopic;
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::delete_records_request::{
    DeleteRecordsPartition, DeleteRecordsTopic,
};
use kafka_protocol::messages::delete_topics_request::DeleteTopicState;
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::offset_for_leader_epoch_request::{
    OffsetForLeaderPartition, OffsetForLeaderTopic,
};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use weir_storage::batch::{SimpleRecord, encode_batch, iterate_batches};

/// Kafka's UNKNOWN_LEADER_EPOCH error code.
const UNKNOWN_LEADER_EPOCH: i16 = 75;

fn name(text: &str) -> TopicName {
    TopicName(StrBytes::from_string(text.to_string()))
}

fn batch(values: &[&str]) -> Bytes {
    let records: Vec<SimpleRecord> = values
        .iter()
        .map(|value| SimpleRecord {
            timestamp_ms: 1_700_000_000_000,
            key: Some(b"key".to_vec()),
            value: Some(value.as_bytes().to_vec()),
        })
        .collect();
    Bytes::from(encode_batch(0, &records))
}

fn advertised(client: &mut common::Client) -> Vec<(ApiKey, i16, i16)> {
    let response = client.call(
        3,
        &ApiVersionsRequest::default()
            .with_client_software_name(StrBytes::from_static_str("weir-tests"))
            .with_client_software_version(StrBytes::from_static_str("0")),
    );
    assert_eq!(response.error_code, 0);
    response
        .api_keys
        .iter()
        .map(|api| {
            (
                ApiKey::try_from(api.api_key).expect("known key"),
                api.min_version,
                api.max_version,
            )
        })
        .collect()
}

fn create_topic(
    client: &mut common::Client,
    version: i16,
    topic: &str,
    partitions: i32,
) -> CreateTopicsResponse {
    let request = CreateTopicsRequest::default()
        .with_topics(vec![
            CreatableTopic::default()
                .with_name(name(topic))
                .with_num_partitions(partitions)
                .with_replication_factor(1),
        ])
        .with_timeout_ms(10_000);
    client.call(version, &request)
}

#[test]
fn every_advertised_api_version_answers_correctly() {
    let broker = Broker::start(&[]);
    let mut client = broker.connect();
    let apis = advertised(&mut client);
    let expected_keys = [
        ApiKey::Produce,
        ApiKey::Fetch,
        ApiKey::ListOffsets,
        ApiKey::Metadata,
        ApiKey::ApiVersions,
        ApiKey::CreateTopics,
        ApiKey::DeleteTopics,
        ApiKey::DescribeConfigs,
        ApiKey::AlterConfigs,
        ApiKey::IncrementalAlterConfigs,
        ApiKey::CreatePartitions,
        ApiKey::DescribeCluster,
        ApiKey::FindCoordinator,
        ApiKey::JoinGroup,
        ApiKey::SyncGroup,
        ApiKey::Heartbeat,
        ApiKey::LeaveGroup,
        ApiKey::OffsetCommit,
        ApiKey::OffsetFetch,
        ApiKey::ListGroups,
        ApiKey::DescribeGroups,
        ApiKey::DeleteGroups,
        ApiKey::OffsetDelete,
        ApiKey::InitProducerId,
        ApiKey::DescribeProducers,
        ApiKey::DeleteRecords,
        ApiKey::OffsetForLeaderEpoch,
        ApiKey::DescribeQuorum,
        ApiKey::ElectLeaders,
    ];
    assert_eq!(apis.len(), expected_keys.len(), "{apis:?}");
    let range = |key: ApiKey| {
        apis.iter()
            .find(|(api, _, _)| *api == key)
            .map(|(_, min, max)| *min..=*max)
            .expect("advertised")
    };

    for version in range(ApiKey::ApiVersions) {
        let response = client.call(version, &ApiVersionsRequest::default());
        assert_eq!(response.error_code, 0, "ApiVersions v{version}");
        assert_eq!(response.api_keys.len(), expected_keys.len());
    }

    // CreateTopics: one topic per version; the main topic is created at the lowest version.
    for version in range(ApiKey::CreateTopics) {
        let topic = format!("created-v{version}");
        let response = create_topic(&mut client, version, &topic, 2);
        assert_eq!(response.topics.len(), 1);
        assert_eq!(
            response.topics[0].error_code, 0,
            "CreateTopics v{version}: {:?}",
            response.topics[0].error_message
        );
        let again = create_topic(&mut client, version, &topic, 2);
        assert_eq!(
            again.topics[0].error_code, 36,
            "TOPIC_ALREADY_EXISTS at v{version}"
        );
    }
    assert_eq!(
        create_topic(&mut client, 2, "main", 3).topics[0].error_code,
        0
    );

    let mut produced = 0i64;
    for version in 3..=*range(ApiKey::Produce).end() {
        let records = batch(&["a", "b"]);
        let request = ProduceRequest::default()
            .with_acks(-1)
            .with_timeout_ms(5000)
            .with_topic_data(vec![
                TopicProduceData::default()
                    .with_name(name("main"))
                    .with_partition_data(vec![
                        PartitionProduceData::default()
                            .with_index(1)
                            .with_records(Some(records)),
                    ]),
            ]);
        let response = client.call(version, &request);
        let partition = &response.responses[0].partition_responses[0];
        assert_eq!(
            partition.error_code, 0,
            "Produce v{version}: {:?}",
            partition.error_message
        );
        assert_eq!(
            partition.base_offset, produced,
            "Produce v{version} assigns the next offset"
        );
        produced += 2;
    }

    for version in range(ApiKey::Metadata) {
        let topics = Some(vec![
            MetadataRequestTopic::default().with_name(Some(name("main"))),
        ]);
        // allow_auto_topic_creation exists from v4; older versions always allow it.
        let response = client.call(
            version,
            &MetadataRequest::default()
                .with_topics(topics)
                .with_allow_auto_topic_creation(version < 4),
        );
        assert_eq!(response.brokers.len(), 1, "Metadata v{version}");
        assert_eq!(response.brokers[0].port as u16, broker.port);
        assert_eq!(response.topics.len(), 1);
        assert_eq!(response.topics[0].error_code, 0);
        assert_eq!(
            response.topics[0].partitions.len(),
            3,
            "Metadata v{version}"
        );
        let all = client.call(
            version,
            &MetadataRequest::default().with_topics(if version == 0 { Some(vec![]) } else { None }),
        );
        assert!(
            all.topics.len() >= 2,
            "Metadata v{version} lists all topics"
        );
    }

    let main_id = client
        .call(
            12,
            &MetadataRequest::default().with_topics(Some(vec![
                MetadataRequestTopic::default().with_name(Some(name("main"))),
            ])),
        )
        .topics[0]
        .topic_id;
    assert!(!main_id.is_nil());
    // Fetch v0–3 are advertised for librdkafka's feature detection and refused (see
    // the Python bad-input tests); v4+ are served, v13+ by topic id.
    for version in 4..=*range(ApiKey::Fetch).end() {
        let topic = if version >= 13 {
            FetchTopic::default().with_topic_id(main_id)
        } else {
            FetchTopic::default().with_topic(name("main"))
        };
        let request = FetchRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_max_wait_ms(0)
            .with_min_bytes(0)
            .with_max_bytes(1 << 20)
            .with_session_epoch(-1)
            .with_topics(vec![topic.with_partitions(vec![
                FetchPartition::default()
                    .with_partition(1)
                    .with_fetch_offset(2)
                    .with_partition_max_bytes(1 << 20),
            ])]);
        let response = client.call(version, &request);
        if version >= 13 {
            assert_eq!(
                response.responses[0].topic_id, main_id,
                "Fetch v{version} answers by topic id"
            );
        } else {
            assert_eq!(response.responses[0].topic.0.as_str(), "main");
        }
        let partition = &response.responses[0].partitions[0];
        assert_eq!(partition.error_code, 0, "Fetch v{version}");
        assert_eq!(partition.high_watermark, produced);
        let records = partition.records.clone().expect("records");
        let bases: Vec<i64> = iterate_batches(&records)
            .map(|(_, header)| header.base_offset())
            .collect();
        assert_eq!(
            bases.first(),
            Some(&2),
            "Fetch v{version} starts at the batch holding offset 2"
        );
        assert_eq!(bases.len() as i64, produced / 2 - 1);
    }

    for version in range(ApiKey::ListOffsets) {
        let request = ListOffsetsRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_topics(vec![
                ListOffsetsTopic::default()
                    .with_name(name("main"))
                    .with_partitions(vec![
                        ListOffsetsPartition::default()
                            .with_partition_index(1)
                            .with_timestamp(-1),
                        ListOffsetsPartition::default()
                            .with_partition_index(1)
                            .with_timestamp(-2),
                        ListOffsetsPartition::default()
                            .with_partition_index(0)
                            .with_timestamp(-1),
                    ]),
            ]);
        let response = client.call(version, &request);
        let offsets: Vec<(i16, i64)> = response.topics[0]
            .partitions
            .iter()
            .map(|partition| (partition.error_code, partition.offset))
            .collect();
        assert_eq!(
            offsets,
            vec![(0, produced), (0, 0), (0, 0)],
            "ListOffsets v{version}"
        );
    }

    // KIP-320: a client that believes in a newer leader epoch than this broker's (0 on
    // a single node) is told UNKNOWN_LEADER_EPOCH; -1 skips the check.
    for version in 4..=*range(ApiKey::ListOffsets).end() {
        let request = ListOffsetsRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_topics(vec![
                ListOffsetsTopic::default()
                    .with_name(name("main"))
                    .with_partitions(vec![
                        ListOffsetsPartition::default()
                            .with_partition_index(1)
                            .with_timestamp(-1)
                            .with_current_leader_epoch(0),
                        ListOffsetsPartition::default()
                            .with_partition_index(1)
                            .with_timestamp(-1)
                            .with_current_leader_epoch(3),
                    ]),
            ]);
        let response = client.call(version, &request);
        let answers: Vec<(i16, i64, i32)> = response.topics[0]
            .partitions
            .iter()
            .map(|p| (p.error_code, p.offset, p.leader_epoch))
            .collect();
        assert_eq!(
            answers,
            vec![(0, produced, 0), (UNKNOWN_LEADER_EPOCH, -1, -1)],
            "ListOffsets v{version}"
        );
    }
    for version in 9..=*range(ApiKey::Fetch).end() {
        let topic = if version >= 13 {
            FetchTopic::default().with_topic_id(main_id)
        } else {
            FetchTopic::default().with_topic(name("main"))
        };
        let request = FetchRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_max_wait_ms(0)
            .with_max_bytes(1 << 20)
            .with_session_epoch(-1)
            .with_topics(vec![topic.with_partitions(vec![
                FetchPartition::default()
                    .with_partition(1)
                    .with_current_leader_epoch(2)
                    .with_partition_max_bytes(1 << 20),
            ])]);
        let response = client.call(version, &request);
        let partition = &response.responses[0].partitions[0];
        assert_eq!(
            partition.error_code, UNKNOWN_LEADER_EPOCH,
            "Fetch v{version}"
        );
        assert!(
            partition
                .records
                .as_ref()
                .is_none_or(|records| records.is_empty())
        );
    }

    for version in range(ApiKey::OffsetForLeaderEpoch) {
        let partition = |index: i32, current: i32, epoch: i32| {
            OffsetForLeaderPartition::default()
                .with_partition(index)
                .with_current_leader_epoch(current)
                .with_leader_epoch(epoch)
        };
        let request = OffsetForLeaderEpochRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_topics(vec![
                OffsetForLeaderTopic::default()
                    .with_topic(name("main"))
                    .with_partitions(vec![
                        partition(1, 0, 0),  // the current epoch ends at the log end
                        partition(1, -1, 5), // newer than any epoch here: undefined
                        partition(0, 0, 0),  // an empty partition has no epochs yet
                        partition(1, 7, 0),  // the client's epoch is newer than the broker's
                        partition(9, -1, 0), // no such partition
                    ]),
            ]);
        let response = client.call(version, &request);
        let answers: Vec<(i16, i32, i64)> = response.topics[0]
            .partitions
            .iter()
            .map(|p| (p.error_code, p.leader_epoch, p.end_offset))
            .collect();
        assert_eq!(
            answers,
            vec![
                (0, 0, produced),
                (0, -1, -1),
                (0, -1, -1),
                (UNKNOWN_LEADER_EPOCH, -1, -1),
                (3, -1, -1)
            ],
            "OffsetForLeaderEpoch v{version}"
        );
    }

    for version in range(ApiKey::DescribeQuorum) {
        use kafka_protocol::messages::describe_quorum_request as dq;
        let topic = |name: &str, partition: i32| {
            dq::TopicData::default()
                .with_topic_name(self::name(name))
                .with_partitions(vec![
                    dq::PartitionData::default().with_partition_index(partition),
                ])
        };
        let request = DescribeQuorumRequest::default().with_topics(vec![
            topic("__cluster_metadata", 0),
            topic("__cluster_metadata", 1),
            topic("main", 0),
        ]);
        let response = client.call(version, &request);
        assert_eq!(response.error_code, 0, "DescribeQuorum v{version}");
        let quorum = &response.topics[0].partitions[0];
        assert_eq!(
            (quorum.error_code, quorum.leader_id.0),
            (0, 0),
            "DescribeQuorum v{version}"
        );
        assert!(
            quorum.leader_epoch >= 1 && quorum.high_watermark >= 1,
            "{quorum:?}"
        );
        assert_eq!(quorum.current_voters.len(), 1);
        assert_eq!(
            quorum.current_voters[0].log_end_offset,
            quorum.high_watermark
        );
        assert_eq!(
            response.topics[1].partitions[0].error_code, 3,
            "only partition 0 exists"
        );
        assert_eq!(
            response.topics[2].partitions[0].error_code, 3,
            "only the metadata topic"
        );
        if version >= 2 {
            assert_eq!(response.nodes.len(), 1);
            assert_eq!(response.nodes[0].listeners[0].port, broker.port);
        }
    }

    for version in range(ApiKey::ElectLeaders) {
        use kafka_protocol::messages::elect_leaders_request::TopicPartitions;
        let targets = vec![
            TopicPartitions::default()
                .with_topic(name("main"))
                .with_partitions(vec![0, 1]),
            TopicPartitions::default()
                .with_topic(name("absent"))
                .with_partitions(vec![0]),
        ];
        for election_type in [0i8, 1] {
            if version == 0 && election_type == 1 {
                continue;
            }
            let request = ElectLeadersRequest::default()
                .with_election_type(election_type)
                .with_topic_partitions(Some(targets.clone()))
                .with_timeout_ms(5000);
            let response = client.call(version, &request);
            let outcomes: Vec<(String, i32, i16)> = response
                .replica_election_results
                .iter()
                .flat_map(|topic| {
                    topic
                        .partition_result
                        .iter()
                        .map(|p| (topic.topic.0.to_string(), p.partition_id, p.error_code))
                })
                .collect();
            // A single node leads every partition already: ELECTION_NOT_NEEDED (84).
            assert_eq!(
                outcomes,
                vec![
                    ("main".into(), 0, 84),
                    ("main".into(), 1, 84),
                    ("absent".into(), 0, 3)
                ],
                "ElectLeaders v{version} type {election_type}"
            );
        }
        let all = ElectLeadersRequest::default()
            .with_topic_partitions(None)
            .with_timeout_ms(5000);
        let response = client.call(version, &all);
        assert!(
            response.replica_election_results.is_empty(),
            "nothing to elect: {response:?}"
        );
        if version >= 1 {
            let bad = ElectLeadersRequest::default()
                .with_election_type(7)
                .with_topic_partitions(None);
            assert_eq!(client.call(version, &bad).error_code, 42, "INVALID_REQUEST");
        }
    }

    for version in range(ApiKey::DescribeConfigs) {
        let request = DescribeConfigsRequest::default().with_resources(vec![
            DescribeConfigsResource::default()
                .with_resource_type(2)
                .with_resource_name(StrBytes::from_static_str("main"))
                .with_configuration_keys(None),
            DescribeConfigsResource::default()
                .with_resource_type(4)
                .with_resource_name(StrBytes::from_static_str("0"))
                .with_configuration_keys(None),
        ]);
        let response = client.call(version, &request);
        assert_eq!(response.results.len(), 2);
        let topic = &response.results[0];
        assert_eq!(topic.error_code, 0, "DescribeConfigs v{version}");
        let retention = topic
            .configs
            .iter()
            .find(|config| config.name.as_str() == "retention.ms")
            .expect("retention.ms");
        assert_eq!(retention.value.as_deref(), Some("604800000"));
        assert!(
            response.results[1]
                .configs
                .iter()
                .any(|config| config.name.as_str() == "log.segment.bytes")
        );
    }

    let mut partitions = 3;
    for version in range(ApiKey::CreatePartitions) {
        partitions += 1;
        let request = CreatePartitionsRequest::default()
            .with_topics(vec![
                CreatePartitionsTopic::default()
                    .with_name(name("main"))
                    .with_count(partitions),
            ])
            .with_timeout_ms(10_000);
        let response = client.call(version, &request);
        assert_eq!(
            response.results[0].error_code, 0,
            "CreatePartitions v{version}: {:?}",
            response.results[0].error_message
        );
    }

    for version in range(ApiKey::DescribeCluster) {
        let response = client.call(version, &DescribeClusterRequest::default());
        assert_eq!(response.error_code, 0);
        assert_eq!(response.brokers.len(), 1);
        assert!(!response.cluster_id.is_empty());
    }

    for version in range(ApiKey::FindCoordinator) {
        let group = StrBytes::from_static_str("orders-service");
        let request = if version >= 4 {
            FindCoordinatorRequest::default()
                .with_coordinator_keys(vec![group.clone(), StrBytes::from_static_str("other")])
        } else {
            FindCoordinatorRequest::default().with_key(group.clone())
        };
        let response = client.call(version, &request);
        let answers: Vec<(i16, i32, i32)> = if version >= 4 {
            response
                .coordinators
                .iter()
                .map(|coordinator| {
                    (
                        coordinator.error_code,
                        coordinator.node_id.0,
                        coordinator.port,
                    )
                })
                .collect()
        } else {
            vec![(response.error_code, response.node_id.0, response.port)]
        };
        assert!(!answers.is_empty());
        assert!(
            answers
                .iter()
                .all(|answer| *answer == (0, 0, broker.port as i32)),
            "FindCoordinator v{version}: {answers:?}"
        );
        if version >= 1 {
            let transaction = if version >= 4 {
                FindCoordinatorRequest::default()
                    .with_key_type(1)
                    .with_coordinator_keys(vec![group.clone()])
            } else {
                FindCoordinatorRequest::default()
                    .with_key_type(1)
                    .with_key(group.clone())
            };
            let response = client.call(version, &transaction);
            let code = if version >= 4 {
                response.coordinators[0].error_code
            } else {
                response.error_code
            };
            assert_eq!(
                code, 42,
                "transaction keys get INVALID_REQUEST until transactions exist (v{version})"
            );
        }
    }

    for version in range(ApiKey::DeleteRecords) {
        // Offset 0 deletes nothing: the answer is the unchanged log start (see
        // delete_records.rs for the semantics).
        let request = DeleteRecordsRequest::default()
            .with_timeout_ms(10_000)
            .with_topics(vec![
                DeleteRecordsTopic::default()
                    .with_name(name("main"))
                    .with_partitions(vec![
                        DeleteRecordsPartition::default()
                            .with_partition_index(1)
                            .with_offset(0),
                    ]),
            ]);
        let response = client.call(version, &request);
        let partition = &response.topics[0].partitions[0];
        assert_eq!(
            (partition.error_code, partition.low_watermark),
            (0, 0),
            "DeleteRecords v{version}"
        );
    }

    for version in range(ApiKey::DeleteTopics) {
        let topic = format!("created-v{}", version + 1);
        let request = if version >= 6 {
            DeleteTopicsRequest::default().with_topics(vec![
                DeleteTopicState::default().with_name(Some(name(&topic))),
            ])
        } else {
            DeleteTopicsRequest::default().with_topic_names(vec![name(&topic)])
        }
        .with_timeout_ms(10_000);
        let response = client.call(version, &request);
        assert_eq!(
            response.responses[0].error_code, 0,
            "DeleteTopics v{version} {topic}"
        );
        assert!(
            !broker.log_dir().join(format!("{topic}-0")).exists(),
            "partition files removed"
        );
    }
    assert!(
        broker
            .stderr()
            .lines()
            .all(|line| !line.contains("closing connection")),
        "{}",
        broker.stderr()
    );
}
