//! The Kafka requests behind `weir groups`, as Kafka's admin client sends them: group
//! requests go to the group's coordinator (FindCoordinator first), ListGroups to every
//! broker, ListOffsets to each partition's leader (`leaders.rs`). Fields are set only in the versions
//! that carry them; the version is the highest both sides speak.
//!
//! A coordinator that is loading, moving or not yet elected (COORDINATOR_LOAD_IN_PROGRESS,
//! COORDINATOR_NOT_AVAILABLE, NOT_COORDINATOR) is asked again, every
//! [`RETRY_BACKOFF`], until `--timeout` has passed, as the admin client does.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::offset_delete_request::{
    OffsetDeleteRequestPartition, OffsetDeleteRequestTopic,
};
use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestGroup;
use kafka_protocol::messages::{
    DeleteGroupsRequest, DescribeGroupsRequest, GroupId, ListGroupsRequest, OffsetCommitRequest,
    OffsetDeleteRequest, OffsetFetchRequest, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use weir_net::client::{BrokerAddress, ClientError, Connection, KafkaClient};

use super::GroupsError;
use crate::cli::consumer_protocol;

/// Pause between two attempts at a coordinator that is not ready.
pub const RETRY_BACKOFF: Duration = Duration::from_millis(100);

/// Kafka's protocol type of consumer groups (the only kind this tool lists and describes).
pub const CONSUMER_PROTOCOL_TYPE: &str = "consumer";

/// A topic partition; ordered by topic, then partition.
pub type Partition = (String, i32);

/// One group as ListGroups reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListedGroup {
    pub group_id: String,
    /// ListGroups v4 and later.
    pub state: Option<String>,
}

/// One member as DescribeGroups reports it, assignment decoded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Member {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub host: String,
    pub assignment: Vec<Partition>,
}

/// A consumer group as DescribeGroups reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupDescription {
    pub group_id: String,
    /// Kafka's state name: Stable, Empty, PreparingRebalance, CompletingRebalance, Dead.
    pub state: String,
    /// The partition assignor the members agreed on ("range", "cooperative-sticky", ...).
    pub assignor: String,
    pub members: Vec<Member>,
    pub coordinator: BrokerAddress,
}

/// Which offset ListOffsets should find.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OffsetSpec {
    Earliest,
    Latest,
    /// The first offset whose timestamp is at or after this time (ms since the epoch).
    Timestamp(i64),
}

impl OffsetSpec {
    pub(super) fn timestamp(self) -> i64 {
        match self {
            OffsetSpec::Earliest => -2,
            OffsetSpec::Latest => -1,
            OffsetSpec::Timestamp(timestamp) => timestamp,
        }
    }
}

/// The offset ListOffsets returned, or the error code it returned instead.
pub type OffsetResult = Result<i64, i16>;

pub(super) fn strbytes(text: &str) -> StrBytes {
    StrBytes::from_string(text.to_string())
}

fn retriable(code: i16) -> bool {
    code == ResponseError::CoordinatorLoadInProgress.code()
        || code == ResponseError::CoordinatorNotAvailable.code()
        || code == ResponseError::NotCoordinator.code()
}

/// The cluster, seen through the requests of `kafka-consumer-groups.sh`.
pub struct GroupAdmin {
    pub(super) client: KafkaClient,
    timeout: Duration,
}

impl GroupAdmin {
    pub fn new(client: KafkaClient, timeout: Duration) -> Self {
        GroupAdmin { client, timeout }
    }

    /// Runs `request` against `group`'s coordinator, again while it is not ready.
    fn at_coordinator<T>(
        &mut self,
        group: &str,
        mut request: impl FnMut(&mut Connection) -> Result<T, ClientError>,
    ) -> Result<(T, BrokerAddress), ClientError> {
        let deadline = Instant::now() + self.timeout;
        loop {
            let attempt = self.client.find_coordinator(group).and_then(|address| {
                let connection = self.client.broker(address.node_id)?;
                Ok((request(connection)?, address))
            });
            match attempt {
                Err(error) if error.code().is_some_and(retriable) && Instant::now() < deadline => {
                    std::thread::sleep(RETRY_BACKOFF);
                }
                other => return other,
            }
        }
    }

    /// Every consumer group of every broker (ListGroups), sorted by id; `states` (Kafka's
    /// state names) filters on the broker, which needs ListGroups v4.
    pub fn list_groups(&mut self, states: &[String]) -> Result<Vec<ListedGroup>, ClientError> {
        let metadata = self.client.metadata(Some(&[]))?;
        let nodes: Vec<i32> = metadata
            .brokers
            .iter()
            .map(|broker| broker.node_id.0)
            .collect();
        let mut groups = BTreeMap::new();
        for node in nodes {
            let connection = self.client.broker(node)?;
            let version = connection.version_of::<ListGroupsRequest>()?;
            if !states.is_empty() && version < 4 {
                return Err(ClientError::Unsupported {
                    address: connection.address().to_string(),
                    api: kafka_protocol::messages::ApiKey::ListGroups,
                });
            }
            let mut request = ListGroupsRequest::default();
            if version >= 4 {
                request = request.with_states_filter(states.iter().map(|s| strbytes(s)).collect());
            }
            let response = connection.call_at(version, &request)?;
            ClientError::check(
                response.error_code,
                None,
                format!("ListGroups at {}", connection.address()),
            )?;
            for group in response.groups {
                // Kafka's admin client lists consumer groups and groups without a protocol
                // (offsets committed by standalone consumers), nothing else (Connect, ...).
                let protocol_type = group.protocol_type.to_string();
                if protocol_type != CONSUMER_PROTOCOL_TYPE && !protocol_type.is_empty() {
                    continue;
                }
                let group_id = group.group_id.0.to_string();
                let state = (version >= 4).then(|| group.group_state.to_string());
                groups.insert(group_id.clone(), ListedGroup { group_id, state });
            }
        }
        Ok(groups.into_values().collect())
    }

    /// DescribeGroups for one group at its coordinator, member assignments decoded. A
    /// group the coordinator does not know comes back in state Dead (as Kafka answers).
    pub fn describe_group(&mut self, group: &str) -> Result<GroupDescription, GroupsError> {
        let (described, coordinator) = self.at_coordinator(group, |connection| {
            let version = connection.version_of::<DescribeGroupsRequest>()?;
            let request =
                DescribeGroupsRequest::default().with_groups(vec![GroupId(strbytes(group))]);
            let response = connection.call_at(version, &request)?;
            let described = response
                .groups
                .into_iter()
                .find(|described| described.group_id.0.as_str() == group)
                .ok_or_else(|| ClientError::Protocol {
                    address: connection.address().to_string(),
                    what: "DescribeGroups response".to_string(),
                    reason: format!("group '{group}' is missing"),
                })?;
            if described.error_code == ResponseError::GroupIdNotFound.code() {
                return Ok(None);
            }
            ClientError::check(
                described.error_code,
                described.error_message.as_ref(),
                format!("DescribeGroups for group '{group}'"),
            )?;
            Ok(Some(described))
        })?;
        let Some(described) = described else {
            return Ok(GroupDescription {
                group_id: group.to_string(),
                state: "Dead".to_string(),
                assignor: String::new(),
                members: Vec::new(),
                coordinator,
            });
        };
        let protocol_type = described.protocol_type.to_string();
        if !protocol_type.is_empty() && protocol_type != CONSUMER_PROTOCOL_TYPE {
            return Err(GroupsError::Failed(format!(
                "GroupId {group} is not a consumer group ({protocol_type})."
            )));
        }
        let mut members = Vec::with_capacity(described.members.len());
        for member in described.members {
            let assignment = consumer_protocol::decode_assignment(&member.member_assignment)
                .map_err(|error| {
                    GroupsError::Failed(format!(
                        "the assignment of member {} of group '{group}' (from {}:{}) is not a consumer protocol assignment: {error}",
                        member.member_id, coordinator.host, coordinator.port
                    ))
                })?;
            members.push(Member {
                member_id: member.member_id.to_string(),
                group_instance_id: member.group_instance_id.map(|id| id.to_string()),
                client_id: member.client_id.to_string(),
                host: member.client_host.to_string(),
                assignment: consumer_protocol::flatten(&assignment.partitions),
            });
        }
        Ok(GroupDescription {
            group_id: group.to_string(),
            state: described.group_state.to_string(),
            assignor: described.protocol_data.to_string(),
            members,
            coordinator,
        })
    }

    /// The group's committed offsets (OffsetFetch for all topics); partitions without a
    /// committed offset or with a partition-level error are left out, as Kafka does.
    pub fn committed_offsets(
        &mut self,
        group: &str,
    ) -> Result<BTreeMap<Partition, i64>, ClientError> {
        let (offsets, _) = self.at_coordinator(group, |connection| {
            let version = connection.version_of::<OffsetFetchRequest>()?;
            if version < 2 {
                // Fetching "all topics" (null topics) needs v2.
                return Err(ClientError::Unsupported {
                    address: connection.address().to_string(),
                    api: kafka_protocol::messages::ApiKey::OffsetFetch,
                });
            }
            let mut offsets = BTreeMap::new();
            let context = format!("OffsetFetch for group '{group}'");
            if version >= 8 {
                let request = OffsetFetchRequest::default().with_groups(vec![
                    OffsetFetchRequestGroup::default()
                        .with_group_id(GroupId(strbytes(group)))
                        .with_topics(None),
                ]);
                let response = connection.call_at(version, &request)?;
                for fetched in response.groups {
                    ClientError::check(fetched.error_code, None, context.clone())?;
                    for topic in fetched.topics {
                        for partition in topic.partitions {
                            if partition.error_code == 0 && partition.committed_offset >= 0 {
                                offsets.insert(
                                    (topic.name.0.to_string(), partition.partition_index),
                                    partition.committed_offset,
                                );
                            }
                        }
                    }
                }
            } else {
                let request = OffsetFetchRequest::default()
                    .with_group_id(GroupId(strbytes(group)))
                    .with_topics(None);
                let response = connection.call_at(version, &request)?;
                ClientError::check(response.error_code, None, context)?;
                for topic in response.topics {
                    for partition in topic.partitions {
                        if partition.error_code == 0 && partition.committed_offset >= 0 {
                            offsets.insert(
                                (topic.name.0.to_string(), partition.partition_index),
                                partition.committed_offset,
                            );
                        }
                    }
                }
            }
            Ok(offsets)
        })?;
        Ok(offsets)
    }

    /// Commits `offsets` for `group` as an admin does (OffsetCommit with generation −1 and
    /// no member id, which the coordinator accepts only while the group has no members).
    pub fn commit_offsets(
        &mut self,
        group: &str,
        offsets: &BTreeMap<Partition, i64>,
    ) -> Result<(), ClientError> {
        let mut topics: BTreeMap<&str, Vec<OffsetCommitRequestPartition>> = BTreeMap::new();
        for ((topic, index), offset) in offsets {
            topics.entry(topic).or_default().push(
                OffsetCommitRequestPartition::default()
                    .with_partition_index(*index)
                    .with_committed_offset(*offset),
            );
        }
        let request = OffsetCommitRequest::default()
            .with_group_id(GroupId(strbytes(group)))
            .with_generation_id_or_member_epoch(-1)
            .with_member_id(StrBytes::default())
            .with_topics(
                topics
                    .into_iter()
                    .map(|(topic, partitions)| {
                        OffsetCommitRequestTopic::default()
                            .with_name(TopicName(strbytes(topic)))
                            .with_partitions(partitions)
                    })
                    .collect(),
            );
        self.at_coordinator(group, |connection| {
            let (_, response) = connection.call(&request)?;
            // A coordinator error arrives on every partition; retry those as a whole.
            for topic in &response.topics {
                for partition in &topic.partitions {
                    ClientError::check(
                        partition.error_code,
                        None,
                        format!(
                            "committing the offset of {}-{} for group '{group}'",
                            topic.name.0, partition.partition_index
                        ),
                    )?;
                }
            }
            Ok(())
        })?;
        Ok(())
    }

    /// DeleteGroups for one group at its coordinator; returns the group's error code.
    pub fn delete_group(&mut self, group: &str) -> Result<i16, ClientError> {
        let (code, _) = self.at_coordinator(group, |connection| {
            let request =
                DeleteGroupsRequest::default().with_groups_names(vec![GroupId(strbytes(group))]);
            let (_, response) = connection.call(&request)?;
            let code = response
                .results
                .iter()
                .find(|result| result.group_id.0.as_str() == group)
                .map_or(ResponseError::UnknownServerError.code(), |result| {
                    result.error_code
                });
            if retriable(code) {
                ClientError::check(code, None, format!("DeleteGroups for group '{group}'"))?;
            }
            Ok(code)
        })?;
        Ok(code)
    }

    /// OffsetDelete for `partitions` of `group`: the top-level error code and each
    /// partition's.
    pub fn delete_offsets(
        &mut self,
        group: &str,
        partitions: &BTreeSet<Partition>,
    ) -> Result<(i16, BTreeMap<Partition, i16>), ClientError> {
        let mut topics: BTreeMap<&str, Vec<OffsetDeleteRequestPartition>> = BTreeMap::new();
        for (topic, index) in partitions {
            topics
                .entry(topic)
                .or_default()
                .push(OffsetDeleteRequestPartition::default().with_partition_index(*index));
        }
        let request = OffsetDeleteRequest::default()
            .with_group_id(GroupId(strbytes(group)))
            .with_topics(
                topics
                    .into_iter()
                    .map(|(topic, partitions)| {
                        OffsetDeleteRequestTopic::default()
                            .with_name(TopicName(strbytes(topic)))
                            .with_partitions(partitions)
                    })
                    .collect(),
            );
        let (result, _) = self.at_coordinator(group, |connection| {
            let (_, response) = connection.call(&request)?;
            if retriable(response.error_code) {
                ClientError::check(
                    response.error_code,
                    None,
                    format!("OffsetDelete for group '{group}'"),
                )?;
            }
            let mut codes = BTreeMap::new();
            for topic in &response.topics {
                for partition in &topic.partitions {
                    codes.insert(
                        (topic.name.0.to_string(), partition.partition_index),
                        partition.error_code,
                    );
                }
            }
            Ok((response.error_code, codes))
        })?;
        Ok(result)
    }
}
