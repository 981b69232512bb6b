//! The client side of Kafka's classic consumer group protocol for `weir consume --group`:
//! membership, Kafka's `range` assignor and the ConsumerProtocol byte formats, so a
//! group mixes with Java, librdkafka and kafka-python consumers and shows up in
//! `kafka-consumer-groups.sh --describe` like theirs.
//!
//! ```text
//!  FindCoordinator ─► JoinGroup (protocol type "consumer", protocol "range",
//!      │              subscription v0) ─ MEMBER_ID_REQUIRED ─► JoinGroup again with the id
//!      ▼
//!  leader? ─ yes ─► Metadata of every subscribed topic ─► range assignment for all members
//!      ▼
//!  SyncGroup ─► own assignment ─► OffsetFetch (committed offsets) ─► fetching
//!      │
//!  poll loop: Heartbeat every heartbeat.interval.ms ─ REBALANCE_IN_PROGRESS / ILLEGAL_GENERATION
//!      │      / UNKNOWN_MEMBER_ID ─► commit (eager protocol), JoinGroup again
//!      ▼
//!  exit: OffsetCommit ─► LeaveGroup
//! ```
//!
//! The byte formats and the assignor are `super::consumer_protocol`; OffsetFetch and
//! OffsetCommit are `offsets`. Requests to the coordinator are retried while it moves
//! or loads (NOT_COORDINATOR, COORDINATOR_NOT_AVAILABLE, COORDINATOR_LOAD_IN_PROGRESS,
//! lost connections) until [`COORDINATOR_RETRY_WINDOW`] passes.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::GroupId;
use kafka_protocol::messages::heartbeat_request::HeartbeatRequest;
use kafka_protocol::messages::join_group_request::{JoinGroupRequest, JoinGroupRequestProtocol};
use kafka_protocol::messages::join_group_response::JoinGroupResponseMember;
use kafka_protocol::messages::leave_group_request::{LeaveGroupRequest, MemberIdentity};
use kafka_protocol::messages::sync_group_request::{SyncGroupRequest, SyncGroupRequestAssignment};
use kafka_protocol::protocol::{Request, StrBytes};
use weir_net::client::{ClientError, Connection, KafkaClient, error_name};

use super::consumer::ConsumeError;
use super::consumer_protocol::{decode_assignment, decode_subscription};
use assignor::{
    MemberSubscription, PROTOCOL_TYPE, RANGE_ASSIGNOR, encode_assignment, encode_subscription,
    range_assign,
};

mod assignor;
mod offsets;

/// How long coordinator requests keep being retried while the coordinator moves,
/// loads, or its connection fails.
pub const COORDINATOR_RETRY_WINDOW: Duration = Duration::from_secs(30);
/// Extra time a JoinGroup/SyncGroup may take beyond the rebalance timeout (Kafka's
/// client adds 5 s to its request timeout for JoinGroup the same way).
const REBALANCE_REQUEST_SLACK: Duration = Duration::from_secs(5);

/// The member's settings (Kafka's consumer config names in the docs).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupSettings {
    /// `group.id`.
    pub group_id: String,
    /// `session.timeout.ms`.
    pub session_timeout_ms: i32,
    /// `max.poll.interval.ms`: the rebalance timeout.
    pub rebalance_timeout_ms: i32,
    /// `heartbeat.interval.ms`.
    pub heartbeat_interval: Duration,
    /// `retry.backoff.ms`.
    pub retry_backoff: Duration,
    /// The tool's normal request timeout, restored after a JoinGroup.
    pub request_timeout: Duration,
}

/// Whether the member still holds its assignment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Membership {
    Stable,
    /// The group rebalanced (or forgot this member): join again.
    Rejoin,
}

fn is_coordinator_error(code: i16) -> bool {
    matches!(
        ResponseError::try_from_code(code),
        Some(
            ResponseError::NotCoordinator
                | ResponseError::CoordinatorNotAvailable
                | ResponseError::CoordinatorLoadInProgress
        )
    )
}

fn is_membership_lost(code: i16) -> bool {
    matches!(
        ResponseError::try_from_code(code),
        Some(
            ResponseError::RebalanceInProgress
                | ResponseError::IllegalGeneration
                | ResponseError::UnknownMemberId
                | ResponseError::FencedInstanceId
        )
    )
}

/// One member of a consumer group, subscribed to one topic.
pub struct GroupMember {
    settings: GroupSettings,
    topic: String,
    coordinator: Option<i32>,
    member_id: String,
    generation_id: i32,
    protocol_name: String,
    last_heartbeat: Instant,
    /// How long one coordinator request is retried ([`COORDINATOR_RETRY_WINDOW`], less
    /// when closing).
    retry_window: Duration,
}

impl GroupMember {
    pub fn new(settings: GroupSettings, topic: &str) -> GroupMember {
        GroupMember {
            settings,
            topic: topic.to_string(),
            coordinator: None,
            member_id: String::new(),
            generation_id: -1,
            protocol_name: RANGE_ASSIGNOR.to_string(),
            last_heartbeat: Instant::now(),
            retry_window: COORDINATOR_RETRY_WINDOW,
        }
    }

    /// Retries coordinator requests for at most `window` from now on (for the final
    /// commit and LeaveGroup: a consumer that is asked to stop must not hang).
    pub fn limit_retries(&mut self, window: Duration) {
        self.retry_window = window;
    }

    pub fn group_id(&self) -> &str {
        &self.settings.group_id
    }

    /// Sends a coordinator request, retrying coordinator moves and lost connections;
    /// `error_of` reads the response's top-level error code (0 when none).
    fn call<R: Request>(
        &mut self,
        client: &mut KafkaClient,
        timeout: Option<Duration>,
        build: impl Fn(i16, &GroupMember) -> R,
        error_of: impl Fn(&R::Response) -> i16,
    ) -> Result<(i16, R::Response), ConsumeError> {
        let deadline = Instant::now() + self.retry_window;
        loop {
            let outcome = self.call_once(client, timeout, &build);
            let retry_reason = match outcome {
                Ok((version, response)) => {
                    let code = error_of(&response);
                    if !is_coordinator_error(code) {
                        return Ok((version, response));
                    }
                    self.coordinator = None;
                    error_name(code)
                }
                Err(ConsumeError::Client(error))
                    if error.is_connection_problem()
                        || error.code().is_some_and(is_coordinator_error) =>
                {
                    if let Some(node_id) = self.coordinator.take() {
                        client.disconnect(node_id);
                    }
                    error.to_string()
                }
                Err(error) => return Err(error),
            };
            if Instant::now() >= deadline {
                return Err(ConsumeError::Group(format!(
                    "the coordinator of group '{}' did not answer within {} s: {retry_reason}",
                    self.settings.group_id,
                    self.retry_window.as_secs()
                )));
            }
            std::thread::sleep(self.settings.retry_backoff);
        }
    }

    fn call_once<R: Request>(
        &mut self,
        client: &mut KafkaClient,
        timeout: Option<Duration>,
        build: &impl Fn(i16, &GroupMember) -> R,
    ) -> Result<(i16, R::Response), ConsumeError> {
        let node_id = match self.coordinator {
            Some(node_id) => node_id,
            None => {
                let node_id = client.find_coordinator(&self.settings.group_id)?.node_id;
                self.coordinator = Some(node_id);
                node_id
            }
        };
        let connection: &mut Connection = client.broker(node_id)?;
        let version = connection.version_of::<R>()?;
        let request = build(version, self);
        if let Some(timeout) = timeout {
            connection.set_timeout(timeout)?;
        }
        let response = connection.call_at(version, &request);
        if timeout.is_some() {
            connection.set_timeout(self.settings.request_timeout)?;
        }
        Ok((version, response?))
    }

    /// Joins (or rejoins) the group and returns the partitions of the topic assigned
    /// to this member.
    pub fn join(&mut self, client: &mut KafkaClient) -> Result<Vec<i32>, ConsumeError> {
        let rebalance_wait = Duration::from_millis(self.settings.rebalance_timeout_ms as u64)
            + REBALANCE_REQUEST_SLACK;
        let subscription = encode_subscription(std::slice::from_ref(&self.topic));
        loop {
            let (_, joined) = self.call(
                client,
                Some(rebalance_wait),
                |_, member| {
                    JoinGroupRequest::default()
                        .with_group_id(GroupId(StrBytes::from_string(
                            member.settings.group_id.clone(),
                        )))
                        .with_session_timeout_ms(member.settings.session_timeout_ms)
                        .with_rebalance_timeout_ms(member.settings.rebalance_timeout_ms)
                        .with_member_id(StrBytes::from_string(member.member_id.clone()))
                        .with_group_instance_id(None)
                        .with_protocol_type(StrBytes::from_static_str(PROTOCOL_TYPE))
                        .with_protocols(vec![
                            JoinGroupRequestProtocol::default()
                                .with_name(StrBytes::from_static_str(RANGE_ASSIGNOR))
                                .with_metadata(subscription.clone()),
                        ])
                },
                |response| response.error_code,
            )?;
            let code = joined.error_code;
            if code == ResponseError::MemberIdRequired.code() {
                self.member_id = joined.member_id.to_string();
                continue;
            }
            if code == ResponseError::UnknownMemberId.code() {
                self.member_id.clear();
                continue;
            }
            if code == ResponseError::RebalanceInProgress.code() {
                std::thread::sleep(self.settings.retry_backoff);
                continue;
            }
            ClientError::check(
                code,
                None,
                format!("JoinGroup of group '{}'", self.settings.group_id),
            )?;
            self.member_id = joined.member_id.to_string();
            self.generation_id = joined.generation_id;
            if let Some(name) = &joined.protocol_name {
                self.protocol_name = name.to_string();
            }
            let assignments = if joined.leader == joined.member_id && !joined.skip_assignment {
                self.assign(client, &joined.members)?
            } else {
                Vec::new()
            };
            let (_, synced) = self.call(
                client,
                Some(rebalance_wait),
                |_, member| {
                    SyncGroupRequest::default()
                        .with_group_id(GroupId(StrBytes::from_string(
                            member.settings.group_id.clone(),
                        )))
                        .with_generation_id(member.generation_id)
                        .with_member_id(StrBytes::from_string(member.member_id.clone()))
                        .with_group_instance_id(None)
                        .with_protocol_type(Some(StrBytes::from_static_str(PROTOCOL_TYPE)))
                        .with_protocol_name(Some(StrBytes::from_string(
                            member.protocol_name.clone(),
                        )))
                        .with_assignments(assignments.clone())
                },
                |response| response.error_code,
            )?;
            if is_membership_lost(synced.error_code) {
                if synced.error_code == ResponseError::UnknownMemberId.code() {
                    self.member_id.clear();
                }
                continue;
            }
            ClientError::check(
                synced.error_code,
                None,
                format!("SyncGroup of group '{}'", self.settings.group_id),
            )?;
            self.last_heartbeat = Instant::now();
            let assignment = decode_assignment(&synced.assignment).map_err(|reason| {
                ConsumeError::Group(format!(
                    "the assignment the leader of group '{}' sent does not decode: {reason}",
                    self.settings.group_id
                ))
            })?;
            let mut partitions: Vec<i32> = assignment
                .partitions
                .iter()
                .filter(|(topic, _)| *topic == self.topic)
                .flat_map(|(_, partitions)| partitions.iter().copied())
                .collect();
            partitions.sort_unstable();
            partitions.dedup();
            return Ok(partitions);
        }
    }

    /// The leader's part of a rebalance: the range assignment of every member.
    fn assign(
        &mut self,
        client: &mut KafkaClient,
        members: &[JoinGroupResponseMember],
    ) -> Result<Vec<SyncGroupRequestAssignment>, ConsumeError> {
        let mut subscriptions = Vec::with_capacity(members.len());
        for member in members {
            let topics = decode_subscription(&member.metadata)
                .map(|subscription| subscription.topics)
                .map_err(|reason| {
                ConsumeError::Group(format!(
                    "member {} of group '{}' sent a subscription that does not decode: {reason}",
                    member.member_id, self.settings.group_id
                ))
            })?;
            subscriptions.push(MemberSubscription {
                member_id: member.member_id.to_string(),
                group_instance_id: member.group_instance_id.as_ref().map(|id| id.to_string()),
                topics,
            });
        }
        let topics: Vec<String> = subscriptions
            .iter()
            .flat_map(|member| member.topics.iter().cloned())
            .collect::<BTreeSet<String>>()
            .into_iter()
            .collect();
        let metadata = client.metadata(Some(&topics))?;
        let partitions_per_topic: BTreeMap<String, i32> = metadata
            .topics
            .iter()
            .filter(|topic| topic.error_code == 0)
            .filter_map(|topic| {
                let name = topic.name.as_ref()?.0.to_string();
                Some((name, topic.partitions.len() as i32))
            })
            .collect();
        let assignment = range_assign(&subscriptions, &partitions_per_topic);
        Ok(assignment
            .into_iter()
            .map(|(member_id, partitions)| {
                SyncGroupRequestAssignment::default()
                    .with_member_id(StrBytes::from_string(member_id))
                    .with_assignment(encode_assignment(&partitions))
            })
            .collect())
    }

    /// Sends a heartbeat when heartbeat.interval.ms has passed since the last one.
    pub fn heartbeat_if_due(
        &mut self,
        client: &mut KafkaClient,
    ) -> Result<Membership, ConsumeError> {
        if self.last_heartbeat.elapsed() < self.settings.heartbeat_interval {
            return Ok(Membership::Stable);
        }
        let (_, response) = self.call(
            client,
            None,
            |_, member| {
                HeartbeatRequest::default()
                    .with_group_id(GroupId(StrBytes::from_string(
                        member.settings.group_id.clone(),
                    )))
                    .with_generation_id(member.generation_id)
                    .with_member_id(StrBytes::from_string(member.member_id.clone()))
                    .with_group_instance_id(None)
            },
            |response| response.error_code,
        )?;
        self.last_heartbeat = Instant::now();
        self.membership_after(response.error_code, "Heartbeat")
    }

    fn membership_after(&mut self, code: i16, what: &str) -> Result<Membership, ConsumeError> {
        if is_membership_lost(code) {
            if code == ResponseError::UnknownMemberId.code() {
                self.member_id.clear();
            }
            return Ok(Membership::Rejoin);
        }
        ClientError::check(
            code,
            None,
            format!("{what} of group '{}'", self.settings.group_id),
        )?;
        Ok(Membership::Stable)
    }

    /// Leaves the group (members that leave let the others rebalance at once instead
    /// of after session.timeout.ms).
    pub fn leave(&mut self, client: &mut KafkaClient) -> Result<(), ConsumeError> {
        if self.member_id.is_empty() {
            return Ok(());
        }
        let (version, response) = self.call(
            client,
            None,
            |version, member| {
                let group_id = GroupId(StrBytes::from_string(member.settings.group_id.clone()));
                let member_id = StrBytes::from_string(member.member_id.clone());
                if version >= 3 {
                    LeaveGroupRequest::default()
                        .with_group_id(group_id)
                        .with_members(vec![
                            MemberIdentity::default()
                                .with_member_id(member_id)
                                .with_group_instance_id(None)
                                .with_reason(Some(StrBytes::from_static_str(
                                    "the consumer is being closed",
                                ))),
                        ])
                } else {
                    LeaveGroupRequest::default()
                        .with_group_id(group_id)
                        .with_member_id(member_id)
                }
            },
            |response| response.error_code,
        )?;
        let context = format!("LeaveGroup of group '{}'", self.settings.group_id);
        ClientError::check(response.error_code, None, context.clone())?;
        if version >= 3 {
            for member in &response.members {
                ClientError::check(member.error_code, None, context.clone())?;
            }
        }
        self.member_id.clear();
        self.generation_id = -1;
        Ok(())
    }
}
