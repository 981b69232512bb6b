//! Goal: every advertised version of the consumer-group APIs is really handled.
//! Method: the real binary (initial rebalance delay 0), one group per JoinGroup
//! version driven through join → sync → heartbeat → commit → fetch → describe →
//! leave at matching versions, then ListGroups, OffsetDelete and DeleteGroups at
//! every version; responses decoded at their version and checked for content.

mod common;

use bytes::Bytes;
use common::{Broker, Client, advertised_versions, create_topic};
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::leave_group_request::MemberIdentity;
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::offset_delete_request::{
    OffsetDeleteRequestPartition, OffsetDeleteRequestTopic,
};
use kafka_protocol::messages::offset_fetch_request::{
    OffsetFetchRequestGroup, OffsetFetchRequestTopic, OffsetFetchRequestTopics,
};
use kafka_protocol::messages::sync_group_request::SyncGroupRequestAssignment;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;

fn text(value: &str) -> StrBytes {
    StrBytes::from_string(value.to_string())
}

/// Joins `group` as a new member at `version`, handling MEMBER_ID_REQUIRED (v4+).
fn join(client: &mut Client, version: i16, group: &str) -> JoinGroupResponse {
    let request = |member_id: &str| {
        JoinGroupRequest::default()
            .with_group_id(GroupId(text(group)))
            .with_session_timeout_ms(10_000)
            .with_rebalance_timeout_ms(if version >= 1 { 10_000 } else { -1 })
            .with_member_id(text(member_id))
            .with_protocol_type(text("consumer"))
            .with_protocols(vec![
                JoinGroupRequestProtocol::default()
                    .with_name(text("range"))
                    .with_metadata(Bytes::from_static(b"subscription")),
            ])
    };
    let first = client.call(version, &request(""));
    if version < 4 {
        return first;
    }
    assert_eq!(
        first.error_code, 79,
        "JoinGroup v{version}: MEMBER_ID_REQUIRED first"
    );
    assert!(!first.member_id.is_empty());
    client.call(version, &request(first.member_id.as_str()))
}

#[test]
fn every_advertised_group_api_version_answers_correctly() {
    let broker = Broker::start(&[
        "group.initial.rebalance.delay.ms=0",
        "offsets.topic.num.partitions=4",
    ]);
    let mut client = broker.connect();
    create_topic(&mut client, "orders", 2);
    let commit_versions = advertised_versions(&mut client, ApiKey::OffsetCommit);
    let fetch_versions = advertised_versions(&mut client, ApiKey::OffsetFetch);
    let describe_versions = advertised_versions(&mut client, ApiKey::DescribeGroups);
    let pick = |versions: &std::ops::RangeInclusive<i16>, wanted: i16| {
        wanted.clamp(*versions.start(), *versions.end())
    };

    for version in advertised_versions(&mut client, ApiKey::JoinGroup) {
        let group = format!("group-v{version}");
        let joined = join(&mut client, version, &group);
        assert_eq!(joined.error_code, 0, "JoinGroup v{version}");
        assert_eq!(joined.generation_id, 1);
        assert_eq!(joined.leader, joined.member_id, "the only member leads");
        assert_eq!(joined.members.len(), 1);
        assert_eq!(
            joined.members[0].metadata,
            Bytes::from_static(b"subscription")
        );
        if version >= 7 {
            assert_eq!(
                joined.protocol_name.as_ref().map(|name| name.as_str()),
                Some("range")
            );
        }
        let member = joined.member_id.clone();

        let sync_version = version.min(5);
        let synced: SyncGroupResponse = client.call(
            sync_version,
            &SyncGroupRequest::default()
                .with_group_id(GroupId(text(&group)))
                .with_generation_id(1)
                .with_member_id(member.clone())
                .with_protocol_type(if sync_version >= 5 {
                    Some(text("consumer"))
                } else {
                    None
                })
                .with_protocol_name(if sync_version >= 5 {
                    Some(text("range"))
                } else {
                    None
                })
                .with_assignments(vec![
                    SyncGroupRequestAssignment::default()
                        .with_member_id(member.clone())
                        .with_assignment(Bytes::from_static(b"all of it")),
                ]),
        );
        assert_eq!(
            (synced.error_code, synced.assignment.clone()),
            (0, Bytes::from_static(b"all of it")),
            "SyncGroup v{sync_version}"
        );

        let beat: HeartbeatResponse = client.call(
            version.min(4),
            &HeartbeatRequest::default()
                .with_group_id(GroupId(text(&group)))
                .with_generation_id(1)
                .with_member_id(member.clone()),
        );
        assert_eq!(beat.error_code, 0, "Heartbeat v{}", version.min(4));

        let commit_version = pick(&commit_versions, version);
        let committed: OffsetCommitResponse = client.call(
            commit_version,
            &OffsetCommitRequest::default()
                .with_group_id(GroupId(text(&group)))
                .with_generation_id_or_member_epoch(1)
                .with_member_id(member.clone())
                .with_topics(vec![
                    OffsetCommitRequestTopic::default()
                        .with_name(TopicName(text("orders")))
                        .with_partitions(vec![
                            OffsetCommitRequestPartition::default()
                                .with_partition_index(1)
                                .with_committed_offset(42 + version as i64)
                                .with_committed_metadata(Some(text("note"))),
                        ]),
                ]),
        );
        assert_eq!(
            committed.topics[0].partitions[0].error_code, 0,
            "OffsetCommit v{commit_version}"
        );
        let stale: OffsetCommitResponse = client.call(
            commit_version,
            &OffsetCommitRequest::default()
                .with_group_id(GroupId(text(&group)))
                .with_generation_id_or_member_epoch(7)
                .with_member_id(member.clone())
                .with_topics(vec![
                    OffsetCommitRequestTopic::default()
                        .with_name(TopicName(text("orders")))
                        .with_partitions(vec![
                            OffsetCommitRequestPartition::default()
                                .with_partition_index(1)
                                .with_committed_offset(1),
                        ]),
                ]),
        );
        assert_eq!(
            stale.topics[0].partitions[0].error_code, 22,
            "ILLEGAL_GENERATION for a stale generation"
        );

        let fetch_version = pick(&fetch_versions, version);
        let fetched: OffsetFetchResponse = if fetch_version >= 8 {
            client.call(
                fetch_version,
                &OffsetFetchRequest::default().with_groups(vec![
                    OffsetFetchRequestGroup::default()
                        .with_group_id(GroupId(text(&group)))
                        .with_topics(Some(vec![
                            OffsetFetchRequestTopics::default()
                                .with_name(TopicName(text("orders")))
                                .with_partition_indexes(vec![0, 1]),
                        ])),
                ]),
            )
        } else {
            client.call(
                fetch_version,
                &OffsetFetchRequest::default()
                    .with_group_id(GroupId(text(&group)))
                    .with_topics(Some(vec![
                        OffsetFetchRequestTopic::default()
                            .with_name(TopicName(text("orders")))
                            .with_partition_indexes(vec![0, 1]),
                    ])),
            )
        };
        let offsets: Vec<(i32, i64, String)> = if fetch_version >= 8 {
            fetched.groups[0].topics[0]
                .partitions
                .iter()
                .map(|p| {
                    (
                        p.partition_index,
                        p.committed_offset,
                        p.metadata.as_deref().unwrap_or("").to_string(),
                    )
                })
                .collect()
        } else {
            fetched.topics[0]
                .partitions
                .iter()
                .map(|p| {
                    (
                        p.partition_index,
                        p.committed_offset,
                        p.metadata.as_deref().unwrap_or("").to_string(),
                    )
                })
                .collect()
        };
        assert_eq!(
            offsets,
            vec![
                (0, -1, String::new()),
                (1, 42 + version as i64, "note".to_string())
            ],
            "OffsetFetch v{fetch_version}"
        );

        let describe_version = pick(&describe_versions, version);
        let described: DescribeGroupsResponse = client.call(
            describe_version,
            &DescribeGroupsRequest::default().with_groups(vec![GroupId(text(&group))]),
        );
        let group_entry = &described.groups[0];
        assert_eq!(
            (group_entry.error_code, group_entry.group_state.as_str()),
            (0, "Stable"),
            "DescribeGroups v{describe_version}"
        );
        assert_eq!(group_entry.members.len(), 1);
        assert_eq!(group_entry.members[0].client_id.as_str(), "weir-tests");
        assert_eq!(group_entry.members[0].client_host.as_str(), "/127.0.0.1");
        assert_eq!(
            group_entry.members[0].member_assignment,
            Bytes::from_static(b"all of it")
        );

        let leave_version = version.min(5);
        let leave = if leave_version >= 3 {
            LeaveGroupRequest::default()
                .with_group_id(GroupId(text(&group)))
                .with_members(vec![
                    MemberIdentity::default().with_member_id(member.clone()),
                ])
        } else {
            LeaveGroupRequest::default()
                .with_group_id(GroupId(text(&group)))
                .with_member_id(member.clone())
        };
        let left: LeaveGroupResponse = client.call(leave_version, &leave);
        assert_eq!(left.error_code, 0, "LeaveGroup v{leave_version}");
        if leave_version >= 3 {
            assert_eq!(left.members[0].error_code, 0);
        }
    }

    for version in advertised_versions(&mut client, ApiKey::ListGroups) {
        let request = if version >= 4 {
            ListGroupsRequest::default().with_states_filter(vec![text("Empty")])
        } else {
            ListGroupsRequest::default()
        };
        let listed: ListGroupsResponse = client.call(version, &request);
        assert_eq!(listed.error_code, 0);
        let mut names: Vec<String> = listed
            .groups
            .iter()
            .map(|group| group.group_id.0.to_string())
            .collect();
        names.sort();
        assert_eq!(names.len(), 10, "ListGroups v{version}: {names:?}");
        assert!(
            listed
                .groups
                .iter()
                .all(|group| group.protocol_type.as_str() == "consumer")
        );
        if version >= 4 {
            assert!(
                listed
                    .groups
                    .iter()
                    .all(|group| group.group_state.as_str() == "Empty")
            );
        }
    }

    for version in advertised_versions(&mut client, ApiKey::OffsetDelete) {
        let response: OffsetDeleteResponse = client.call(
            version,
            &OffsetDeleteRequest::default()
                .with_group_id(GroupId(text("group-v0")))
                .with_topics(vec![
                    OffsetDeleteRequestTopic::default()
                        .with_name(TopicName(text("orders")))
                        .with_partitions(vec![
                            OffsetDeleteRequestPartition::default().with_partition_index(1),
                        ]),
                ]),
        );
        assert_eq!(
            (
                response.error_code,
                response.topics[0].partitions[0].error_code
            ),
            (0, 0),
            "OffsetDelete v{version}"
        );
    }

    let mut deleted = 0;
    for version in advertised_versions(&mut client, ApiKey::DeleteGroups) {
        let group = format!("group-v{}", version + 1);
        let response: DeleteGroupsResponse = client.call(
            version,
            &DeleteGroupsRequest::default()
                .with_groups_names(vec![GroupId(text(&group)), GroupId(text("never-existed"))]),
        );
        assert_eq!(response.results[0].error_code, 0, "DeleteGroups v{version}");
        assert_eq!(response.results[1].error_code, 69, "GROUP_ID_NOT_FOUND");
        deleted += 1;
    }
    let listed: ListGroupsResponse = client.call(0, &ListGroupsRequest::default());
    assert_eq!(listed.groups.len(), 10 - deleted);
}

#[test]
fn committed_offsets_expire_at_their_retention_and_survive_a_restart_until_then() {
    let mut broker = Broker::start(&[
        "offsets.retention.check.interval.ms=100",
        "offsets.topic.num.partitions=3",
    ]);
    let mut client = broker.connect();
    let commit = |client: &mut Client, group: &str, retention_ms: i64| {
        let response: OffsetCommitResponse = client.call(
            2,
            &OffsetCommitRequest::default()
                .with_group_id(GroupId(text(group)))
                .with_generation_id_or_member_epoch(-1)
                .with_retention_time_ms(retention_ms)
                .with_topics(vec![
                    OffsetCommitRequestTopic::default()
                        .with_name(TopicName(text("events")))
                        .with_partitions(vec![
                            OffsetCommitRequestPartition::default()
                                .with_partition_index(0)
                                .with_committed_offset(7),
                        ]),
                ]),
        );
        response.topics[0].partitions[0].error_code
    };
    let fetch = |client: &mut Client, group: &str| -> i64 {
        let response: OffsetFetchResponse = client.call(
            3,
            &OffsetFetchRequest::default()
                .with_group_id(GroupId(text(group)))
                .with_topics(Some(vec![
                    OffsetFetchRequestTopic::default()
                        .with_name(TopicName(text("events")))
                        .with_partition_indexes(vec![0]),
                ])),
        );
        response.topics[0].partitions[0].committed_offset
    };
    // Auto-created by Metadata, one partition.
    let _: MetadataResponse = client.call(
        4,
        &MetadataRequest::default()
            .with_topics(Some(vec![
                kafka_protocol::messages::metadata_request::MetadataRequestTopic::default()
                    .with_name(Some(TopicName(text("events")))),
            ]))
            .with_allow_auto_topic_creation(true),
    );
    assert_eq!(commit(&mut client, "short-lived", 300), 0);
    assert_eq!(
        commit(&mut client, "standalone", -1),
        0,
        "standalone commit, generation -1, broker retention"
    );
    assert_eq!(
        (
            fetch(&mut client, "short-lived"),
            fetch(&mut client, "standalone")
        ),
        (7, 7)
    );
    broker.kill9();
    broker.restart();
    let mut client = broker.connect();
    assert_eq!(
        fetch(&mut client, "standalone"),
        7,
        "committed offsets survive kill -9"
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while fetch(&mut client, "short-lived") != -1 {
        assert!(
            std::time::Instant::now() < deadline,
            "offset committed with a 300 ms retention did not expire"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert_eq!(
        fetch(&mut client, "standalone"),
        7,
        "the default retention (7 days) keeps it"
    );
    let listed: ListGroupsResponse = client.call(3, &ListGroupsRequest::default());
    let names: Vec<&str> = listed
        .groups
        .iter()
        .map(|group| group.group_id.0.as_str())
        .collect();
    assert_eq!(
        names,
        vec!["standalone"],
        "a group whose last offset expired is gone"
    );
}
