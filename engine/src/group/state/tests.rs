//! Tests for the classic group state machine.
//!
//! Goal: every transition and error path of Kafka's classic coordinator that
//! `state.rs` implements, checked on the exact effects it emits. Method: a
//! small harness drives one `Group` with a manual clock; a scripted scenario
//! walks a realistic group life; a seeded random walk checks the invariants
//! after every step and prints its seed on failure.

use super::*;

mod join;
mod lifecycle;
mod random;
mod scenario;
mod static_membership;
mod sync;

const SEED: u64 = 7;
const SESSION_MS: i32 = 10_000;
const REBALANCE_MS: i32 = 60_000;

fn protocol(name: &str, metadata: &str) -> JoinProtocol {
    JoinProtocol {
        name: name.to_string(),
        metadata: Bytes::from(metadata.to_string()),
    }
}

fn join_request(member_id: &str, client_id: &str) -> JoinRequest {
    JoinRequest {
        member_id: member_id.to_string(),
        group_instance_id: None,
        client_id: client_id.to_string(),
        client_host: format!("/10.0.0.{}", client_id.len()),
        session_timeout_ms: SESSION_MS,
        rebalance_timeout_ms: REBALANCE_MS,
        protocol_type: "consumer".to_string(),
        protocols: vec![protocol("range", &format!("{client_id}-range"))],
        require_known_member_id: false,
        supports_skip_assignment: false,
    }
}

fn static_join_request(member_id: &str, instance_id: &str) -> JoinRequest {
    JoinRequest {
        group_instance_id: Some(instance_id.to_string()),
        ..join_request(member_id, instance_id)
    }
}

fn sync_request(member_id: &str, generation_id: i32, assignments: &[(&str, &str)]) -> SyncRequest {
    SyncRequest {
        member_id: member_id.to_string(),
        group_instance_id: None,
        generation_id,
        protocol_type: None,
        protocol_name: None,
        assignments: assignments
            .iter()
            .map(|(member_id, assignment)| SyncAssignment {
                member_id: member_id.to_string(),
                assignment: Bytes::from(assignment.to_string()),
            })
            .collect(),
    }
}

fn heartbeat_request(member_id: &str, generation_id: i32) -> HeartbeatRequest {
    HeartbeatRequest {
        member_id: member_id.to_string(),
        group_instance_id: None,
        generation_id,
    }
}

fn leave_member(member_id: &str, instance_id: Option<&str>) -> LeaveMember {
    LeaveMember {
        member_id: member_id.to_string(),
        group_instance_id: instance_id.map(str::to_string),
    }
}

/// Drives one group with a manual clock and request ids 1, 2, 3, ...
struct Harness {
    group: Group,
    now_ms: u64,
    request_next: RequestId,
}

impl Harness {
    fn new() -> Harness {
        Harness::with_config(GroupConfig::default())
    }

    fn with_config(config: GroupConfig) -> Harness {
        Harness {
            group: Group::new(config, SEED, 0),
            now_ms: 0,
            request_next: 1,
        }
    }

    fn request_id(&mut self) -> RequestId {
        let id = self.request_next;
        self.request_next += 1;
        id
    }

    fn join(&mut self, join: JoinRequest) -> (RequestId, Vec<Effect>) {
        let id = self.request_id();
        (id, self.group.join(id, join, self.now_ms))
    }

    fn sync(&mut self, sync: SyncRequest) -> (RequestId, Vec<Effect>) {
        let id = self.request_id();
        (id, self.group.sync(id, sync, self.now_ms))
    }

    fn heartbeat(&mut self, member_id: &str, generation_id: i32) -> i16 {
        let id = self.request_id();
        let effects =
            self.group
                .heartbeat(id, heartbeat_request(member_id, generation_id), self.now_ms);
        match effects.as_slice() {
            [
                Effect::HeartbeatResponse {
                    request,
                    error_code,
                },
            ] if *request == id => *error_code,
            other => panic!("unexpected heartbeat effects {other:?}"),
        }
    }

    fn leave(&mut self, members: Vec<LeaveMember>) -> (RequestId, Vec<Effect>) {
        let id = self.request_id();
        (id, self.group.leave(id, members, self.now_ms))
    }

    fn advance_to(&mut self, now_ms: u64) -> Vec<Effect> {
        assert!(now_ms >= self.now_ms);
        self.now_ms = now_ms;
        self.group.tick(now_ms)
    }

    /// Joins `clients` as new dynamic members at t=now, lets the initial
    /// delay run out and returns their member ids (leader first) with the
    /// generation. The group is then CompletingRebalance.
    fn join_all(&mut self, clients: &[&str]) -> (Vec<String>, i32) {
        let mut requests = Vec::new();
        for client in clients {
            let (id, effects) = self.join(join_request("", client));
            assert_eq!(effects, vec![], "a join during the initial delay is parked");
            requests.push(id);
        }
        let mut effects = Vec::new();
        while self.group.state() == GroupState::PreparingRebalance {
            let deadline = self.group.next_deadline_ms().expect("rebalance deadline");
            effects.extend(self.advance_to(deadline));
        }
        let responses = join_responses(&effects);
        assert_eq!(responses.len(), clients.len());
        let mut member_ids: Vec<String> = requests
            .iter()
            .map(|id| {
                let response = &responses
                    .iter()
                    .find(|(request, _)| request == id)
                    .expect("answered")
                    .1;
                assert_eq!(response.error_code, ec::NONE);
                response.member_id.clone()
            })
            .collect();
        let leader = self.group.leader_id().expect("leader").to_string();
        member_ids.sort_by_key(|member_id| *member_id != leader);
        (member_ids, self.group.generation_id())
    }

    /// Completes the sync phase: the leader assigns `a-<member>` to everyone.
    fn sync_all(&mut self, member_ids: &[String], generation_id: i32) -> Vec<Effect> {
        let assignments: Vec<(String, String)> = member_ids
            .iter()
            .map(|member_id| (member_id.clone(), format!("a-{member_id}")))
            .collect();
        let borrowed: Vec<(&str, &str)> = assignments
            .iter()
            .map(|(member_id, assignment)| (member_id.as_str(), assignment.as_str()))
            .collect();
        let mut effects = Vec::new();
        for member_id in member_ids.iter().skip(1) {
            let (_, synced) = self.sync(sync_request(member_id, generation_id, &[]));
            effects.extend(synced);
        }
        let (_, synced) = self.sync(sync_request(&member_ids[0], generation_id, &borrowed));
        effects.extend(synced);
        assert_eq!(self.group.state(), GroupState::Stable);
        effects
    }

    fn stable_group(&mut self, clients: &[&str]) -> (Vec<String>, i32) {
        let (member_ids, generation_id) = self.join_all(clients);
        self.sync_all(&member_ids, generation_id);
        (member_ids, generation_id)
    }
}

fn join_responses(effects: &[Effect]) -> Vec<(RequestId, JoinResult)> {
    effects
        .iter()
        .filter_map(|effect| match effect {
            Effect::JoinResponse { request, response } => Some((*request, response.clone())),
            _ => None,
        })
        .collect()
}

fn sync_responses(effects: &[Effect]) -> Vec<(RequestId, SyncResult)> {
    effects
        .iter()
        .filter_map(|effect| match effect {
            Effect::SyncResponse { request, response } => Some((*request, response.clone())),
            _ => None,
        })
        .collect()
}

fn persisted(effects: &[Effect]) -> Vec<GroupValue> {
    effects
        .iter()
        .filter_map(|effect| match effect {
            Effect::PersistGroup(snapshot) => Some(snapshot.clone()),
            _ => None,
        })
        .collect()
}

fn single_join_error(effects: &[Effect], request: RequestId) -> (i16, String) {
    match effects {
        [
            Effect::JoinResponse {
                request: answered,
                response,
            },
        ] if *answered == request => (response.error_code, response.member_id.clone()),
        other => panic!("expected one join response, got {other:?}"),
    }
}

fn single_sync_result(effects: &[Effect], request: RequestId) -> SyncResult {
    match effects {
        [
            Effect::SyncResponse {
                request: answered,
                response,
            },
        ] if *answered == request => response.clone(),
        other => panic!("expected one sync response, got {other:?}"),
    }
}

fn leave_codes(effects: &[Effect], request: RequestId) -> (i16, Vec<i16>) {
    match effects.last() {
        Some(Effect::LeaveResponse {
            request: answered,
            response,
        }) if *answered == request => (
            response.error_code,
            response
                .members
                .iter()
                .map(|member| member.error_code)
                .collect(),
        ),
        other => panic!("expected a leave response last, got {other:?}"),
    }
}

/// Stable group of static members s1, s2; returns their member ids.
fn static_stable_group(harness: &mut Harness) -> (Vec<String>, i32) {
    let (first, _) = harness.join(static_join_request("", "s1"));
    let (second, _) = harness.join(static_join_request("", "s2"));
    let effects = harness.advance_to(6_000);
    let responses = join_responses(&effects);
    let member_of = |id: RequestId| {
        responses
            .iter()
            .find(|(request, _)| *request == id)
            .unwrap()
            .1
            .member_id
            .clone()
    };
    let mut member_ids = vec![member_of(first), member_of(second)];
    let leader = harness.group.leader_id().unwrap().to_string();
    member_ids.sort_by_key(|member_id| *member_id != leader);
    let generation_id = harness.group.generation_id();
    harness.sync_all(&member_ids, generation_id);
    (member_ids, generation_id)
}
