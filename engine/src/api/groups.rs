//! The classic group membership APIs: JoinGroup v0–9, SyncGroup v0–5, Heartbeat
//! v0–4, LeaveGroup v0–5. Each request goes to the group's coordinator shard (owner
//! of its `__consumer_offsets` partition), whose state machine answers it — JoinGroup
//! and SyncGroup possibly much later, when the rebalance completes.

use std::future::Future;
use std::rc::Rc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::join_group_response::JoinGroupResponseMember;
use kafka_protocol::messages::leave_group_response::MemberResponse;
use kafka_protocol::messages::{
    HeartbeatRequest, HeartbeatResponse, JoinGroupRequest, JoinGroupResponse, LeaveGroupRequest,
    LeaveGroupResponse, SyncGroupRequest, SyncGroupResponse,
};
use kafka_protocol::protocol::StrBytes;

use super::Client;
use crate::group::coordinator::{coordinator_for, ensure_offsets_topic};
use crate::group::state::{self, Effect, JoinResult, LeaveResult, SyncResult};
use crate::shard::Shard;

fn text(value: &StrBytes) -> String {
    value.as_str().to_string()
}

fn optional(value: &Option<StrBytes>) -> Option<String> {
    value.as_ref().map(text)
}

fn strbytes(value: String) -> StrBytes {
    StrBytes::from_string(value)
}

/// Runs `work` on the coordinator shard of `group_id`, creating `__consumer_offsets`
/// first if needed. Errors are Kafka codes for the whole request.
pub async fn on_coordinator<R, F, Fut>(shard: &Rc<Shard>, group_id: &str, work: F) -> Result<R, i16>
where
    R: Send + 'static,
    F: FnOnce(Rc<Shard>) -> Fut + Send + 'static,
    Fut: Future<Output = R> + 'static,
{
    if group_id.is_empty() {
        return Err(ResponseError::InvalidGroupId.code());
    }
    ensure_offsets_topic(shard)
        .await
        .map_err(|_| ResponseError::CoordinatorNotAvailable.code())?;
    let (partition, owner) = coordinator_for(shard, group_id);
    // Only the leader of the group's partition coordinates it (it alone appends there).
    let leads = shard
        .metadata()
        .topic(crate::group::coordinator::OFFSETS_TOPIC)
        .and_then(|topic| topic.registrations.get(partition as usize))
        .is_some_and(|registration| registration.leader == shard.config.node_id);
    if !leads {
        return Err(ResponseError::NotCoordinator.code());
    }
    shard
        .invoke_on(owner, move |coordinator: Rc<Shard>| async move {
            let leads = coordinator
                .partition(crate::group::coordinator::OFFSETS_TOPIC, partition)
                .is_some_and(|partition| partition.is_leader());
            if leads {
                Ok(work(coordinator).await)
            } else {
                Err(ResponseError::NotCoordinator.code())
            }
        })
        .await
        .map_err(|_| ResponseError::CoordinatorNotAvailable.code())?
}

fn join_error(member_id: String, code: i16) -> JoinResult {
    JoinResult {
        error_code: code,
        generation_id: -1,
        protocol_type: None,
        protocol_name: None,
        leader: String::new(),
        skip_assignment: false,
        member_id,
        members: Vec::new(),
    }
}

pub async fn join_group(
    shard: &Rc<Shard>,
    version: i16,
    request: JoinGroupRequest,
    client: Client,
) -> JoinGroupResponse {
    let group_id = request.group_id.0.to_string();
    let member_id = text(&request.member_id);
    let join = state::JoinRequest {
        member_id: member_id.clone(),
        group_instance_id: optional(&request.group_instance_id),
        client_id: client.client_id,
        client_host: client.host,
        session_timeout_ms: request.session_timeout_ms,
        // v0 has no rebalance timeout: Kafka uses the session timeout.
        rebalance_timeout_ms: if version >= 1 {
            request.rebalance_timeout_ms
        } else {
            request.session_timeout_ms
        },
        protocol_type: text(&request.protocol_type),
        protocols: request
            .protocols
            .iter()
            .map(|protocol| state::JoinProtocol {
                name: text(&protocol.name),
                metadata: protocol.metadata.clone(),
            })
            .collect(),
        require_known_member_id: version >= 4,
        supports_skip_assignment: version >= 9,
    };
    let key = group_id.clone();
    let result = on_coordinator(shard, &group_id, move |coordinator| async move {
        let answer = coordinator
            .groups
            .table
            .run(&coordinator, &key, true, |group, request, now| {
                group.join(request, join, now)
            })
            .await;
        match answer {
            Some(Effect::JoinResponse { response, .. }) => response,
            _ => join_error(member_id, ResponseError::UnknownServerError.code()),
        }
    })
    .await
    .unwrap_or_else(|code| join_error(text(&request.member_id), code));
    let members = result
        .members
        .into_iter()
        .map(|member| {
            JoinGroupResponseMember::default()
                .with_member_id(strbytes(member.member_id))
                .with_group_instance_id(if version >= 5 {
                    member.group_instance_id.map(strbytes)
                } else {
                    None
                })
                .with_metadata(member.metadata)
        })
        .collect();
    JoinGroupResponse::default()
        .with_error_code(result.error_code)
        .with_generation_id(result.generation_id)
        .with_protocol_type(if version >= 7 {
            result.protocol_type.map(strbytes)
        } else {
            None
        })
        // Before v7 the protocol name is not nullable.
        .with_protocol_name(match (version >= 7, result.protocol_name) {
            (true, name) => name.map(strbytes),
            (false, name) => Some(strbytes(name.unwrap_or_default())),
        })
        .with_leader(strbytes(result.leader))
        .with_skip_assignment(version >= 9 && result.skip_assignment)
        .with_member_id(strbytes(result.member_id))
        .with_members(members)
}

pub async fn sync_group(
    shard: &Rc<Shard>,
    version: i16,
    request: SyncGroupRequest,
    _client: Client,
) -> SyncGroupResponse {
    let group_id = request.group_id.0.to_string();
    let sync = state::SyncRequest {
        member_id: text(&request.member_id),
        group_instance_id: optional(&request.group_instance_id),
        generation_id: request.generation_id,
        protocol_type: optional(&request.protocol_type),
        protocol_name: optional(&request.protocol_name),
        assignments: request
            .assignments
            .iter()
            .map(|assignment| state::SyncAssignment {
                member_id: text(&assignment.member_id),
                assignment: assignment.assignment.clone(),
            })
            .collect(),
    };
    let key = group_id.clone();
    let error = |code: i16| SyncResult {
        error_code: code,
        protocol_type: None,
        protocol_name: None,
        assignment: Default::default(),
    };
    let result = on_coordinator(shard, &group_id, move |coordinator| async move {
        let answer = coordinator
            .groups
            .table
            .run(&coordinator, &key, false, |group, request, now| {
                group.sync(request, sync, now)
            })
            .await;
        match answer {
            Some(Effect::SyncResponse { response, .. }) => response,
            None => error(ResponseError::UnknownMemberId.code()),
            _ => error(ResponseError::UnknownServerError.code()),
        }
    })
    .await
    .unwrap_or_else(error);
    let response = SyncGroupResponse::default()
        .with_error_code(result.error_code)
        .with_assignment(result.assignment);
    if version >= 5 {
        response
            .with_protocol_type(result.protocol_type.map(strbytes))
            .with_protocol_name(result.protocol_name.map(strbytes))
    } else {
        response
    }
}

pub async fn heartbeat(
    shard: &Rc<Shard>,
    _version: i16,
    request: HeartbeatRequest,
    _client: Client,
) -> HeartbeatResponse {
    let group_id = request.group_id.0.to_string();
    let heartbeat = state::HeartbeatRequest {
        member_id: text(&request.member_id),
        group_instance_id: optional(&request.group_instance_id),
        generation_id: request.generation_id,
    };
    let key = group_id.clone();
    let code = on_coordinator(shard, &group_id, move |coordinator| async move {
        let answer = coordinator
            .groups
            .table
            .run(&coordinator, &key, false, |group, request, now| {
                group.heartbeat(request, heartbeat, now)
            })
            .await;
        match answer {
            Some(Effect::HeartbeatResponse { error_code, .. }) => error_code,
            None => ResponseError::UnknownMemberId.code(),
            _ => ResponseError::UnknownServerError.code(),
        }
    })
    .await
    .unwrap_or_else(|code| code);
    HeartbeatResponse::default().with_error_code(code)
}

pub async fn leave_group(
    shard: &Rc<Shard>,
    version: i16,
    request: LeaveGroupRequest,
    _client: Client,
) -> LeaveGroupResponse {
    let group_id = request.group_id.0.to_string();
    // v0–2 name one member by id; v3+ batch members by id or instance id.
    let members: Vec<state::LeaveMember> = if version >= 3 {
        request
            .members
            .iter()
            .map(|member| state::LeaveMember {
                member_id: text(&member.member_id),
                group_instance_id: optional(&member.group_instance_id),
            })
            .collect()
    } else {
        vec![state::LeaveMember {
            member_id: text(&request.member_id),
            group_instance_id: None,
        }]
    };
    let unknown = |members: &[state::LeaveMember], code: i16| LeaveResult {
        error_code: 0,
        members: members
            .iter()
            .map(|member| state::LeaveMemberResult {
                member_id: member.member_id.clone(),
                group_instance_id: member.group_instance_id.clone(),
                error_code: code,
            })
            .collect(),
    };
    let key = group_id.clone();
    let leaving = members.clone();
    let result = on_coordinator(shard, &group_id, move |coordinator| async move {
        let answer = coordinator
            .groups
            .table
            .run(&coordinator, &key, false, |group, request, now| {
                group.leave(request, leaving.clone(), now)
            })
            .await;
        match answer {
            Some(Effect::LeaveResponse { response, .. }) => response,
            None => unknown(&leaving, ResponseError::UnknownMemberId.code()),
            _ => LeaveResult {
                error_code: ResponseError::UnknownServerError.code(),
                members: Vec::new(),
            },
        }
    })
    .await
    .unwrap_or_else(|code| LeaveResult {
        error_code: code,
        members: Vec::new(),
    });
    if version >= 3 {
        let members = result
            .members
            .into_iter()
            .map(|member| {
                MemberResponse::default()
                    .with_member_id(strbytes(member.member_id))
                    .with_group_instance_id(member.group_instance_id.map(strbytes))
                    .with_error_code(member.error_code)
            })
            .collect();
        LeaveGroupResponse::default()
            .with_error_code(result.error_code)
            .with_members(members)
    } else {
        // One member: its own error becomes the request's.
        let code = if result.error_code != 0 {
            result.error_code
        } else {
            result.members.first().map_or(0, |member| member.error_code)
        };
        LeaveGroupResponse::default().with_error_code(code)
    }
}
