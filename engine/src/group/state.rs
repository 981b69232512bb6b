//! The classic consumer-group coordinator (JoinGroup / SyncGroup / Heartbeat /
//! LeaveGroup, static membership) as a sans-IO state machine.
//!
//! One [`Group`] holds the state of one group. It owns no sockets, timers,
//! threads or files: the driver (the shard that owns the group's
//! `__consumer_offsets` partition) passes every request in together with the
//! current time `now_ms`, calls [`Group::tick`] no later than
//! [`Group::next_deadline_ms`], and carries out the [`Effect`]s that come back.
//!
//! # Contract with the driver
//!
//! - Every request carries a caller-chosen [`RequestId`]. Every request gets
//!   exactly one response effect with that id: immediately for heartbeats and
//!   leaves, possibly much later (from another call, usually `tick`) for joins
//!   and syncs, which Kafka parks until the rebalance moves on.
//! - Effects are ordered. An [`Effect::PersistGroup`] must be made durable in
//!   `__consumer_offsets` before the responses that follow it in the same
//!   vector are sent, as Kafka only answers a leader's SyncGroup once the
//!   assignment is written. If the write fails the driver unloads the group
//!   ([`Group::unload`]) and reloads it from the log, as Kafka does when it
//!   loses a coordinator partition.
//! - Group creation is the driver's: Kafka creates a group only for a
//!   JoinGroup with an empty member id and answers any other request for an
//!   unknown group itself (JoinGroup with a member id: UNKNOWN_MEMBER_ID;
//!   SyncGroup, Heartbeat, LeaveGroup: UNKNOWN_MEMBER_ID; an empty group id:
//!   INVALID_GROUP_ID).
//!
//! # Behaviour
//!
//! The states, transitions, error codes and timer rules follow Apache
//! Kafka's classic group coordinator (`ClassicGroup` and the classic parts of
//! `GroupMetadataManager`). Where Kafka leaves a request hanging until the
//! client's request timeout (a JoinGroup or SyncGroup re-sent while the first
//! is still parked, the parked SyncGroup of a member that leaves), this
//! module answers the old request with an error instead, so that no request
//! is ever parked without a deadline. Where Kafka's result depends on hash
//! map iteration order (protocol vote ties, the new leader after the old one
//! leaves) this module picks deterministically: the lexicographically
//! smallest protocol name among those with most votes, and the smallest
//! member id.

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;

mod types;

pub use types::*;

use error_code as ec;

/// Produces the unique part of generated member ids. Seeded by the driver
/// (from the OS at startup, a constant in tests) so runs are reproducible.
#[derive(Clone, Debug)]
struct MemberIdGenerator {
    state: u64,
}

impl MemberIdGenerator {
    fn next_u64(&mut self) -> u64 {
        // splitmix64: every seed gives a full-period, well-mixed sequence.
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// UUID-shaped, as Kafka's `UUID.randomUUID()` suffix.
    fn next_suffix(&mut self) -> String {
        let high = self.next_u64();
        let low = self.next_u64();
        format!(
            "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
            high >> 32,
            (high >> 16) & 0xffff,
            high & 0xffff,
            low >> 48,
            low & 0xffff_ffff_ffff
        )
    }
}

#[derive(Clone, Debug)]
struct Member {
    member_id: String,
    group_instance_id: Option<String>,
    client_id: String,
    client_host: String,
    rebalance_timeout_ms: i32,
    session_timeout_ms: i32,
    protocol_type: String,
    protocols: Vec<JoinProtocol>,
    assignment: Bytes,
    /// The parked JoinGroup, if any.
    awaiting_join: Option<RequestId>,
    /// The parked SyncGroup, if any.
    awaiting_sync: Option<RequestId>,
    /// Joined in the current rebalance; such members can expire while parked.
    is_new: bool,
    /// Kafka's heartbeat timer. `None` once it fired while the member was
    /// parked in a join or sync (which counts as a heartbeat); it is set again
    /// when the member's parked request is answered.
    session_deadline_ms: Option<u64>,
}

impl Member {
    fn has_satisfied_heartbeat(&self) -> bool {
        !self.is_new && (self.awaiting_join.is_some() || self.awaiting_sync.is_some())
    }

    fn metadata(&self, protocol_name: &str) -> Bytes {
        self.protocols
            .iter()
            .find(|protocol| protocol.name == protocol_name)
            .map(|protocol| protocol.metadata.clone())
            .expect("every member supports the group's selected protocol")
    }

    fn supports(&self, protocol_name: &str) -> bool {
        self.protocols
            .iter()
            .any(|protocol| protocol.name == protocol_name)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum JoinTimer {
    /// Kafka's `InitialDelayedJoin`: the first rebalance of an Empty group.
    InitialDelay {
        deadline_ms: u64,
        delay_ms: u64,
        remaining_ms: u64,
    },
    /// The rebalance timeout.
    Rebalance { deadline_ms: u64 },
}

impl JoinTimer {
    fn deadline_ms(self) -> u64 {
        match self {
            JoinTimer::InitialDelay { deadline_ms, .. } => deadline_ms,
            JoinTimer::Rebalance { deadline_ms } => deadline_ms,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct SyncTimer {
    deadline_ms: u64,
    generation_id: i32,
}

/// The state of one classic group.
#[derive(Clone, Debug)]
pub struct Group {
    config: GroupConfig,
    state: GroupState,
    previous_state: GroupState,
    state_timestamp_ms: u64,
    generation_id: i32,
    protocol_type: Option<String>,
    protocol_name: Option<String>,
    leader_id: Option<String>,
    /// Keyed by member id; the ordering makes leader choice deterministic.
    members: BTreeMap<String, Member>,
    /// Group instance id → member id.
    static_members: BTreeMap<String, String>,
    /// Member ids handed out with MEMBER_ID_REQUIRED → expiry deadline.
    pending_members: BTreeMap<String, u64>,
    /// Members that got their JoinGroup response but have not synced yet.
    pending_sync_members: BTreeSet<String>,
    join_timer: Option<JoinTimer>,
    sync_timer: Option<SyncTimer>,
    /// A member joined during the initial delay; extend it once more.
    new_member_added: bool,
    member_id_generator: MemberIdGenerator,
}

fn duration_ms(timeout_ms: i32) -> u64 {
    u64::try_from(timeout_ms.max(0)).expect("non-negative i32 fits u64")
}

fn dedup_protocols(protocols: Vec<JoinProtocol>) -> Vec<JoinProtocol> {
    // Kafka keys the request's protocol collection by name.
    let mut seen = BTreeSet::new();
    protocols
        .into_iter()
        .filter(|protocol| seen.insert(protocol.name.clone()))
        .collect()
}

impl Group {
    /// A new, Empty group. `member_id_seed` seeds generated member ids.
    pub fn new(config: GroupConfig, member_id_seed: u64, now_ms: u64) -> Group {
        assert!(config.session_timeout_ms_min <= config.session_timeout_ms_max);
        assert!(config.initial_rebalance_delay_ms >= 0);
        assert!(config.group_size_max > 0);
        Group {
            config,
            state: GroupState::Empty,
            previous_state: GroupState::Empty,
            state_timestamp_ms: now_ms,
            generation_id: 0,
            protocol_type: None,
            protocol_name: None,
            leader_id: None,
            members: BTreeMap::new(),
            static_members: BTreeMap::new(),
            pending_members: BTreeMap::new(),
            pending_sync_members: BTreeSet::new(),
            join_timer: None,
            sync_timer: None,
            new_member_added: false,
            member_id_generator: MemberIdGenerator {
                state: member_id_seed,
            },
        }
    }

    /// Restores a group from its last `GroupMetadataValue`, as Kafka does when
    /// it loads `__consumer_offsets`: Stable with its members (each with a
    /// fresh session) if it had any, else Empty.
    pub fn from_snapshot(
        snapshot: GroupSnapshot,
        config: GroupConfig,
        member_id_seed: u64,
        now_ms: u64,
    ) -> Group {
        let mut group = Group::new(config, member_id_seed, now_ms);
        group.generation_id = snapshot.generation_id;
        group.state_timestamp_ms = snapshot.current_state_timestamp_ms;
        group.protocol_type = if snapshot.protocol_type.is_empty() {
            None
        } else {
            Some(snapshot.protocol_type.clone())
        };
        group.protocol_name = snapshot.protocol_name.clone();
        let protocol_name = snapshot.protocol_name.clone().unwrap_or_default();
        for member in snapshot.members {
            if let Some(instance_id) = &member.group_instance_id {
                group
                    .static_members
                    .insert(instance_id.clone(), member.member_id.clone());
            }
            let restored = Member {
                member_id: member.member_id.clone(),
                group_instance_id: member.group_instance_id,
                client_id: member.client_id,
                client_host: member.client_host,
                rebalance_timeout_ms: member.rebalance_timeout_ms,
                session_timeout_ms: member.session_timeout_ms,
                protocol_type: snapshot.protocol_type.clone(),
                protocols: vec![JoinProtocol {
                    name: protocol_name.clone(),
                    metadata: member.subscription,
                }],
                assignment: member.assignment,
                awaiting_join: None,
                awaiting_sync: None,
                is_new: false,
                session_deadline_ms: Some(now_ms + duration_ms(member.session_timeout_ms)),
            };
            group.members.insert(member.member_id, restored);
        }
        if !group.members.is_empty() {
            assert!(
                group.protocol_name.is_some(),
                "a group with members has a protocol"
            );
            assert!(
                group.protocol_type.is_some(),
                "a group with members has a protocol type"
            );
            group.state = GroupState::Stable;
            group.leader_id = match snapshot.leader_id {
                Some(leader) if group.members.contains_key(&leader) => Some(leader),
                _ => group.members.keys().next().cloned(),
            };
        }
        group.check_invariants();
        group
    }

    // ---------------------------------------------------------------- queries

    pub fn state(&self) -> GroupState {
        self.state
    }

    pub fn generation_id(&self) -> i32 {
        self.generation_id
    }

    pub fn leader_id(&self) -> Option<&str> {
        self.leader_id.as_deref()
    }

    pub fn protocol_type(&self) -> Option<&str> {
        self.protocol_type.as_deref()
    }

    pub fn protocol_name(&self) -> Option<&str> {
        self.protocol_name.as_deref()
    }

    pub fn member_count(&self) -> usize {
        self.members.len()
    }

    pub fn pending_member_count(&self) -> usize {
        self.pending_members.len()
    }

    pub fn has_member(&self, member_id: &str) -> bool {
        self.members.contains_key(member_id)
    }

    /// The member id currently bound to a static member's instance id.
    pub fn static_member_id(&self, group_instance_id: &str) -> Option<&str> {
        self.static_members
            .get(group_instance_id)
            .map(String::as_str)
    }

    /// The member's current assignment (empty until the leader assigned it).
    pub fn assignment(&self, member_id: &str) -> Option<&Bytes> {
        self.members.get(member_id).map(|member| &member.assignment)
    }

    /// When `tick` must be called next, if anything is scheduled.
    pub fn next_deadline_ms(&self) -> Option<u64> {
        if self.state == GroupState::Dead {
            return None;
        }
        let members = self
            .members
            .values()
            .filter_map(|member| member.session_deadline_ms);
        let pending = self.pending_members.values().copied();
        let join = self.join_timer.map(JoinTimer::deadline_ms);
        let sync = self.sync_timer.map(|timer| timer.deadline_ms);
        members.chain(pending).chain(join).chain(sync).min()
    }

    /// DescribeGroups, with Kafka's rule that protocol name, metadata and
    /// assignments are only reported while Stable.
    pub fn describe(&self) -> GroupDescription {
        let stable_protocol = match self.state {
            GroupState::Stable => self.protocol_name.clone(),
            _ => None,
        };
        let members = self
            .members
            .values()
            .map(|member| DescribedMember {
                member_id: member.member_id.clone(),
                group_instance_id: member.group_instance_id.clone(),
                client_id: member.client_id.clone(),
                client_host: member.client_host.clone(),
                metadata: stable_protocol
                    .as_deref()
                    .map(|name| member.metadata(name))
                    .unwrap_or_default(),
                assignment: if stable_protocol.is_some() {
                    member.assignment.clone()
                } else {
                    Bytes::new()
                },
            })
            .collect();
        GroupDescription {
            state: self.state,
            state_name: self.state.name(),
            protocol_type: self.protocol_type.clone().unwrap_or_default(),
            protocol_name: stable_protocol.unwrap_or_default(),
            generation_id: self.generation_id,
            leader_id: self.leader_id.clone(),
            members,
        }
    }

    /// The group as Kafka's `GroupMetadataValue` would store it now.
    pub fn snapshot(&self) -> GroupSnapshot {
        let protocol_name = self.protocol_name.clone();
        let members = match &protocol_name {
            None => Vec::new(),
            Some(name) => self
                .members
                .values()
                .map(|member| MemberSnapshot {
                    member_id: member.member_id.clone(),
                    group_instance_id: member.group_instance_id.clone(),
                    client_id: member.client_id.clone(),
                    client_host: member.client_host.clone(),
                    rebalance_timeout_ms: member.rebalance_timeout_ms,
                    session_timeout_ms: member.session_timeout_ms,
                    subscription: member.metadata(name),
                    assignment: member.assignment.clone(),
                })
                .collect(),
        };
        GroupSnapshot {
            protocol_type: self.protocol_type.clone().unwrap_or_default(),
            generation_id: self.generation_id,
            protocol_name,
            leader_id: self.leader_id.clone(),
            current_state_timestamp_ms: self.state_timestamp_ms,
            members,
        }
    }

    // ------------------------------------------------------ offset validation

    /// Kafka's `ClassicGroup.validateOffsetCommit` for OffsetCommit.
    /// `generation_id` is -1 for commits outside group management.
    pub fn validate_offset_commit(
        &self,
        member_id: &str,
        group_instance_id: Option<&str>,
        generation_id: i32,
    ) -> Result<(), i16> {
        self.validate_commit(member_id, group_instance_id, generation_id, false)
    }

    /// The same for TxnOffsetCommit, which skips the state checks.
    pub fn validate_transactional_offset_commit(
        &self,
        member_id: &str,
        group_instance_id: Option<&str>,
        generation_id: i32,
    ) -> Result<(), i16> {
        self.validate_commit(member_id, group_instance_id, generation_id, true)
    }

    fn validate_commit(
        &self,
        member_id: &str,
        group_instance_id: Option<&str>,
        generation_id: i32,
        is_transactional: bool,
    ) -> Result<(), i16> {
        if self.state == GroupState::Dead {
            return Err(ec::COORDINATOR_NOT_AVAILABLE);
        }
        if generation_id < 0 && self.state == GroupState::Empty {
            // Admin clients and consumers outside group management.
            return Ok(());
        }
        if generation_id >= 0 || !member_id.is_empty() || group_instance_id.is_some() {
            self.validate_member(member_id, group_instance_id)?;
            if generation_id != self.generation_id {
                return Err(ec::ILLEGAL_GENERATION);
            }
        } else if !is_transactional && self.state != GroupState::Empty {
            return Err(ec::UNKNOWN_MEMBER_ID);
        }
        if !is_transactional && self.state == GroupState::CompletingRebalance {
            // The member holds the new generation but not yet its assignment.
            return Err(ec::REBALANCE_IN_PROGRESS);
        }
        Ok(())
    }

    /// OffsetFetch: only a Dead group is refused.
    pub fn validate_offset_fetch(&self) -> Result<(), i16> {
        match self.state {
            GroupState::Dead => Err(ec::GROUP_ID_NOT_FOUND),
            _ => Ok(()),
        }
    }

    /// OffsetDelete and DeleteGroups: only an Empty group.
    pub fn validate_delete(&self) -> Result<(), i16> {
        match self.state {
            GroupState::Dead => Err(ec::GROUP_ID_NOT_FOUND),
            GroupState::Empty => Ok(()),
            _ => Err(ec::NON_EMPTY_GROUP),
        }
    }

    // ------------------------------------------------------------- lifecycle

    /// DeleteGroups: an Empty group becomes Dead and its metadata is
    /// tombstoned.
    pub fn delete(&mut self, now_ms: u64) -> Result<Vec<Effect>, i16> {
        self.validate_delete()?;
        self.transition_to(GroupState::Dead, now_ms);
        self.clear_timers();
        self.pending_members.clear();
        Ok(vec![Effect::PersistGroupTombstone])
    }

    /// The coordinator partition moved away (or a write failed): the group
    /// becomes Dead and every parked request is told NOT_COORDINATOR so the
    /// client finds the new coordinator. Nothing is persisted.
    pub fn unload(&mut self, now_ms: u64) -> Vec<Effect> {
        let mut effects = Vec::new();
        for member in self.members.values_mut() {
            if let Some(request) = member.awaiting_join.take() {
                effects.push(Effect::JoinResponse {
                    request,
                    response: JoinResult::error(&member.member_id, ec::NOT_COORDINATOR),
                });
            }
            if let Some(request) = member.awaiting_sync.take() {
                effects.push(Effect::SyncResponse {
                    request,
                    response: SyncResult::error(ec::NOT_COORDINATOR),
                });
            }
        }
        self.transition_to(GroupState::Dead, now_ms);
        self.clear_timers();
        self.pending_members.clear();
        self.pending_sync_members.clear();
        effects
    }

    fn clear_timers(&mut self) {
        self.join_timer = None;
        self.sync_timer = None;
        for member in self.members.values_mut() {
            member.session_deadline_ms = None;
        }
    }

    // -------------------------------------------------------------- JoinGroup

    pub fn join(&mut self, request: RequestId, join: JoinRequest, now_ms: u64) -> Vec<Effect> {
        let mut effects = Vec::new();
        self.handle_join(request, join, now_ms, &mut effects);
        self.check_invariants();
        effects
    }

    fn handle_join(
        &mut self,
        request: RequestId,
        mut join: JoinRequest,
        now_ms: u64,
        effects: &mut Vec<Effect>,
    ) {
        join.protocols = dedup_protocols(std::mem::take(&mut join.protocols));
        let reply = |effects: &mut Vec<Effect>, member_id: &str, code: i16| {
            effects.push(Effect::JoinResponse {
                request,
                response: JoinResult::error(member_id, code),
            });
        };
        if join.session_timeout_ms < self.config.session_timeout_ms_min
            || join.session_timeout_ms > self.config.session_timeout_ms_max
        {
            return reply(effects, &join.member_id, ec::INVALID_SESSION_TIMEOUT);
        }
        if !self.accepts_joining_member(&join.member_id) {
            // Kafka drops an existing member that cannot fit any more.
            self.remove_member(&join.member_id, effects);
            return reply(effects, "", ec::GROUP_MAX_SIZE_REACHED);
        }
        if self.state == GroupState::Dead {
            return reply(effects, &join.member_id, ec::COORDINATOR_NOT_AVAILABLE);
        }
        if !self.supports_protocols(&join.protocol_type, &join.protocols) {
            let member_id = join.member_id.clone();
            return reply(effects, &member_id, ec::INCONSISTENT_GROUP_PROTOCOL);
        }
        if join.member_id.is_empty() {
            self.join_new_member(request, join, now_ms, effects);
        } else {
            self.join_existing_member(request, join, now_ms, effects);
        }
    }

    /// Kafka's `acceptJoiningMember`.
    fn accepts_joining_member(&self, member_id: &str) -> bool {
        let size_max = usize::try_from(self.config.group_size_max).expect("positive");
        match self.state {
            GroupState::Empty | GroupState::Dead => true,
            GroupState::PreparingRebalance => {
                // Counting members awaiting a response (not all members) lets
                // a shrunk limit push out the last members to rejoin.
                let awaiting = self
                    .members
                    .get(member_id)
                    .is_some_and(|member| member.awaiting_join.is_some());
                awaiting || self.awaiting_join_count() < size_max
            }
            GroupState::CompletingRebalance | GroupState::Stable => {
                self.members.contains_key(member_id) || self.members.len() < size_max
            }
        }
    }

    /// Kafka's `supportsProtocols`: some protocol of the request is supported
    /// by every current member.
    fn supports_protocols(&self, protocol_type: &str, protocols: &[JoinProtocol]) -> bool {
        if self.state == GroupState::Empty {
            return !protocol_type.is_empty() && !protocols.is_empty();
        }
        self.protocol_type.as_deref() == Some(protocol_type)
            && protocols.iter().any(|protocol| {
                self.members
                    .values()
                    .all(|member| member.supports(&protocol.name))
            })
    }

    fn generate_member_id(&mut self, prefix: &str) -> String {
        // A collision needs two equal 128-bit outputs; retrying bounds even a
        // pathological seed.
        for _ in 0..16 {
            let member_id = format!("{prefix}-{}", self.member_id_generator.next_suffix());
            if !self.members.contains_key(&member_id)
                && !self.pending_members.contains_key(&member_id)
            {
                return member_id;
            }
        }
        panic!("member id generator keeps producing ids already in use");
    }

    fn join_new_member(
        &mut self,
        request: RequestId,
        join: JoinRequest,
        now_ms: u64,
        effects: &mut Vec<Effect>,
    ) {
        if let Some(instance_id) = join.group_instance_id.clone() {
            let new_member_id = self.generate_member_id(&instance_id);
            match self.static_members.get(&instance_id).cloned() {
                Some(old_member_id) => self.replace_static_member(
                    request,
                    join,
                    old_member_id,
                    new_member_id,
                    now_ms,
                    effects,
                ),
                None => {
                    self.add_member_and_rebalance(request, join, new_member_id, now_ms, effects)
                }
            }
            return;
        }
        let new_member_id = self.generate_member_id(&join.client_id.clone());
        if join.require_known_member_id {
            let pending_max =
                usize::try_from(self.config.pending_members_max).expect("u32 fits usize");
            if self.pending_members.len() >= pending_max {
                effects.push(Effect::JoinResponse {
                    request,
                    response: JoinResult::error("", ec::COORDINATOR_NOT_AVAILABLE),
                });
                return;
            }
            let deadline_ms = now_ms + duration_ms(join.session_timeout_ms);
            self.pending_members
                .insert(new_member_id.clone(), deadline_ms);
            effects.push(Effect::JoinResponse {
                request,
                response: JoinResult::error(&new_member_id, ec::MEMBER_ID_REQUIRED),
            });
        } else {
            self.add_member_and_rebalance(request, join, new_member_id, now_ms, effects);
        }
    }

    fn join_existing_member(
        &mut self,
        request: RequestId,
        join: JoinRequest,
        now_ms: u64,
        effects: &mut Vec<Effect>,
    ) {
        let member_id = join.member_id.clone();
        if self.pending_members.contains_key(&member_id) {
            if join.group_instance_id.is_some() {
                // Pending ids are only handed to dynamic members; Kafka fails
                // the request the same way.
                effects.push(Effect::JoinResponse {
                    request,
                    response: JoinResult::error(&member_id, ec::UNKNOWN_SERVER_ERROR),
                });
                return;
            }
            self.add_member_and_rebalance(request, join, member_id, now_ms, effects);
            return;
        }
        if let Err(code) = self.validate_member(&member_id, join.group_instance_id.as_deref()) {
            effects.push(Effect::JoinResponse {
                request,
                response: JoinResult::error(&member_id, code),
            });
            return;
        }
        let member = self.members.get(&member_id).expect("validated above");
        let protocols_match = member.protocols == join.protocols;
        match self.state {
            GroupState::PreparingRebalance => {
                self.update_member(request, &join, effects);
                self.maybe_prepare_rebalance_or_complete_join(now_ms, effects);
            }
            GroupState::CompletingRebalance if protocols_match => {
                // A retry after a lost response: resend this generation's.
                let response = self.join_response(&member_id, false);
                effects.push(Effect::JoinResponse { request, response });
            }
            GroupState::Stable if protocols_match && !self.is_leader(&member_id) => {
                // A follower with unchanged metadata can go straight to sync.
                let mut response = self.join_response(&member_id, false);
                response.members.clear();
                effects.push(Effect::JoinResponse { request, response });
            }
            GroupState::CompletingRebalance | GroupState::Stable => {
                // Changed metadata, or the leader asking for a new assignment.
                self.update_member(request, &join, effects);
                self.maybe_prepare_rebalance_or_complete_join(now_ms, effects);
            }
            GroupState::Empty | GroupState::Dead => {
                // Unreachable through validate_member (no members); kept as
                // Kafka's answer for an unexpected state.
                effects.push(Effect::JoinResponse {
                    request,
                    response: JoinResult::error(&member_id, ec::UNKNOWN_MEMBER_ID),
                });
            }
        }
    }

    /// Kafka's `validateMember`.
    fn validate_member(&self, member_id: &str, group_instance_id: Option<&str>) -> Result<(), i16> {
        if let Some(instance_id) = group_instance_id {
            match self.static_members.get(instance_id) {
                None => return Err(ec::UNKNOWN_MEMBER_ID),
                Some(current) if current != member_id => return Err(ec::FENCED_INSTANCE_ID),
                Some(_) => {}
            }
        }
        if !self.members.contains_key(member_id) {
            return Err(ec::UNKNOWN_MEMBER_ID);
        }
        Ok(())
    }

    /// The JoinGroup response of the current generation for `member_id`.
    fn join_response(&self, member_id: &str, skip_assignment: bool) -> JoinResult {
        let members = if self.is_leader(member_id) {
            self.join_response_members()
        } else {
            Vec::new()
        };
        JoinResult {
            error_code: ec::NONE,
            generation_id: self.generation_id,
            protocol_type: self.protocol_type.clone(),
            protocol_name: self.protocol_name.clone(),
            leader: self.leader_id.clone().unwrap_or_default(),
            skip_assignment,
            member_id: member_id.to_string(),
            members,
        }
    }

    fn join_response_members(&self) -> Vec<JoinResultMember> {
        assert!(
            !matches!(
                self.state,
                GroupState::Dead | GroupState::PreparingRebalance
            ),
            "member metadata is only defined once a protocol is selected"
        );
        let protocol_name = self
            .protocol_name
            .as_deref()
            .expect("a group with members has a protocol");
        self.members
            .values()
            .map(|member| JoinResultMember {
                member_id: member.member_id.clone(),
                group_instance_id: member.group_instance_id.clone(),
                metadata: member.metadata(protocol_name),
            })
            .collect()
    }

    fn is_leader(&self, member_id: &str) -> bool {
        self.leader_id.as_deref() == Some(member_id)
    }

    fn awaiting_join_count(&self) -> usize {
        self.members
            .values()
            .filter(|member| member.awaiting_join.is_some())
            .count()
    }

    fn has_all_members_joined(&self) -> bool {
        self.pending_members.is_empty()
            && self
                .members
                .values()
                .all(|member| member.awaiting_join.is_some())
    }

    /// The group's rebalance timeout: the largest of its members'.
    fn rebalance_timeout_ms(&self) -> u64 {
        let largest = self
            .members
            .values()
            .map(|member| member.rebalance_timeout_ms)
            .max();
        duration_ms(largest.unwrap_or(0))
    }

    /// Parks `request` as the member's join, answering a join it replaces.
    fn park_join(member: &mut Member, request: RequestId, effects: &mut Vec<Effect>) {
        if let Some(old) = member.awaiting_join.replace(request)
            && old != request
        {
            effects.push(Effect::JoinResponse {
                request: old,
                response: JoinResult::error(&member.member_id, ec::REBALANCE_IN_PROGRESS),
            });
        }
    }

    /// Kafka's `updateMember`: new protocols and timeouts, join parked.
    fn update_member(&mut self, request: RequestId, join: &JoinRequest, effects: &mut Vec<Effect>) {
        let member = self
            .members
            .get_mut(&join.member_id)
            .expect("caller checked membership");
        member.protocols = join.protocols.clone();
        member.rebalance_timeout_ms = join.rebalance_timeout_ms;
        member.session_timeout_ms = join.session_timeout_ms;
        Self::park_join(member, request, effects);
    }

    fn add_member_and_rebalance(
        &mut self,
        request: RequestId,
        join: JoinRequest,
        member_id: String,
        now_ms: u64,
        effects: &mut Vec<Effect>,
    ) {
        if self.state == GroupState::PreparingRebalance && self.previous_state == GroupState::Empty
        {
            self.new_member_added = true;
        }
        if self.members.is_empty() {
            self.protocol_type = Some(join.protocol_type.clone());
        }
        assert_eq!(
            self.protocol_type.as_deref(),
            Some(join.protocol_type.as_str())
        );
        assert!(!self.members.contains_key(&member_id));
        if let Some(instance_id) = &join.group_instance_id {
            let previous = self
                .static_members
                .insert(instance_id.clone(), member_id.clone());
            assert!(previous.is_none(), "a static member is added only once");
        }
        if self.leader_id.is_none() {
            self.leader_id = Some(member_id.clone());
        }
        self.pending_members.remove(&member_id);
        // The session does not apply yet: a new member has nothing to
        // heartbeat with until it gets its JoinGroup response. Its parked
        // join is dropped after the new-member timeout instead, so clients
        // that gave up and retried do not pile up as defunct members.
        let deadline_ms = now_ms + duration_ms(self.config.new_member_join_timeout_ms);
        let member = Member {
            member_id: member_id.clone(),
            group_instance_id: join.group_instance_id,
            client_id: join.client_id,
            client_host: join.client_host,
            rebalance_timeout_ms: join.rebalance_timeout_ms,
            session_timeout_ms: join.session_timeout_ms,
            protocol_type: join.protocol_type,
            protocols: join.protocols,
            assignment: Bytes::new(),
            awaiting_join: Some(request),
            awaiting_sync: None,
            is_new: true,
            session_deadline_ms: Some(deadline_ms),
        };
        self.members.insert(member_id, member);
        self.maybe_prepare_rebalance_or_complete_join(now_ms, effects);
    }

    /// A known static member came back with an empty member id (a restart):
    /// it takes a new member id and the old one is fenced.
    fn replace_static_member(
        &mut self,
        request: RequestId,
        join: JoinRequest,
        old_member_id: String,
        new_member_id: String,
        now_ms: u64,
        effects: &mut Vec<Effect>,
    ) {
        let instance_id = join.group_instance_id.clone().expect("static member");
        let mut member = self
            .members
            .remove(&old_member_id)
            .expect("static member is a member");
        // Fence the old incarnation's parked requests.
        if let Some(old) = member.awaiting_join.take() {
            effects.push(Effect::JoinResponse {
                request: old,
                response: JoinResult::error(&old_member_id, ec::FENCED_INSTANCE_ID),
            });
        }
        if let Some(old) = member.awaiting_sync.take() {
            effects.push(Effect::SyncResponse {
                request: old,
                response: SyncResult::error(ec::FENCED_INSTANCE_ID),
            });
        }
        if self.pending_sync_members.remove(&old_member_id) {
            self.pending_sync_members.insert(new_member_id.clone());
        }
        member.member_id = new_member_id.clone();
        member.is_new = false;
        member.session_deadline_ms = Some(now_ms + duration_ms(member.session_timeout_ms));
        // Kafka's updateMember.
        member.protocols = join.protocols.clone();
        member.rebalance_timeout_ms = join.rebalance_timeout_ms;
        member.session_timeout_ms = join.session_timeout_ms;
        member.awaiting_join = Some(request);
        self.members.insert(new_member_id.clone(), member);
        if self.is_leader(&old_member_id) {
            self.leader_id = Some(new_member_id.clone());
        }
        self.static_members
            .insert(instance_id, new_member_id.clone());

        match self.state {
            GroupState::Stable => {
                let unchanged =
                    self.select_protocol() == self.protocol_name.clone().unwrap_or_default();
                if unchanged {
                    // Same protocol: keep the generation and the assignment,
                    // persist the new member id, answer at once.
                    effects.push(Effect::PersistGroup(self.snapshot()));
                    let response = if join.supports_skip_assignment {
                        let is_leader = self.is_leader(&new_member_id);
                        self.join_response(&new_member_id, is_leader)
                    } else {
                        let mut response = self.join_response(&new_member_id, false);
                        response.members.clear();
                        response
                    };
                    let member = self
                        .members
                        .get_mut(&new_member_id)
                        .expect("inserted above");
                    member.awaiting_join = None;
                    effects.push(Effect::JoinResponse { request, response });
                } else {
                    self.maybe_prepare_rebalance_or_complete_join(now_ms, effects);
                }
            }
            GroupState::CompletingRebalance => {
                // The leader may already be assigning to the old member id.
                self.prepare_rebalance(now_ms, effects);
            }
            GroupState::PreparingRebalance => self.maybe_complete_join_phase(now_ms, effects),
            GroupState::Empty | GroupState::Dead => {
                unreachable!("a group with a static member is neither Empty nor Dead")
            }
        }
    }

    /// Kafka's `selectProtocol`: among the protocols every member supports,
    /// each member votes for its most preferred; most votes wins.
    fn select_protocol(&self) -> String {
        assert!(
            !self.members.is_empty(),
            "cannot select a protocol for an empty group"
        );
        let first = self.members.values().next().expect("non-empty");
        let candidates: Vec<&str> = first
            .protocols
            .iter()
            .map(|protocol| protocol.name.as_str())
            .filter(|name| self.members.values().all(|member| member.supports(name)))
            .collect();
        assert!(!candidates.is_empty(), "members always share a protocol");
        let mut votes: BTreeMap<&str, usize> = BTreeMap::new();
        for member in self.members.values() {
            let vote = member
                .protocols
                .iter()
                .map(|protocol| protocol.name.as_str())
                .find(|name| candidates.contains(name))
                .expect("every member supports every candidate");
            *votes.entry(vote).or_default() += 1;
        }
        // Ties go to the smallest name: BTreeMap order, and max_by_key keeps
        // the last maximum, so iterate in reverse.
        votes
            .into_iter()
            .rev()
            .max_by_key(|(_, count)| *count)
            .map(|(name, _)| name.to_string())
            .expect("at least one vote")
    }

    // ----------------------------------------------------- rebalance machinery

    fn transition_to(&mut self, next: GroupState, now_ms: u64) {
        assert!(
            self.state.can_transition_to(next),
            "invalid group state transition {:?} -> {:?}",
            self.state,
            next
        );
        self.previous_state = self.state;
        self.state = next;
        self.state_timestamp_ms = now_ms;
    }

    fn can_rebalance(&self) -> bool {
        self.state.can_transition_to(GroupState::PreparingRebalance)
    }

    fn maybe_prepare_rebalance_or_complete_join(&mut self, now_ms: u64, effects: &mut Vec<Effect>) {
        if self.can_rebalance() {
            self.prepare_rebalance(now_ms, effects);
        } else {
            self.maybe_complete_join_phase(now_ms, effects);
        }
    }

    fn maybe_complete_join_phase(&mut self, now_ms: u64, effects: &mut Vec<Effect>) {
        // The initial rebalance always waits for its delay.
        if self.state == GroupState::PreparingRebalance
            && self.previous_state != GroupState::Empty
            && self.has_all_members_joined()
        {
            self.complete_join(now_ms, effects);
        }
    }

    fn prepare_rebalance(&mut self, now_ms: u64, effects: &mut Vec<Effect>) {
        if self.state == GroupState::CompletingRebalance {
            // Members parked in SyncGroup must rejoin.
            self.reset_and_propagate_assignment(ec::REBALANCE_IN_PROGRESS, now_ms, effects);
        }
        self.pending_sync_members.clear();
        self.sync_timer = None;
        let is_initial = self.state == GroupState::Empty;
        if is_initial {
            let delay_ms = duration_ms(self.config.initial_rebalance_delay_ms);
            let remaining_ms = self.rebalance_timeout_ms().saturating_sub(delay_ms);
            self.new_member_added = false;
            self.join_timer = Some(JoinTimer::InitialDelay {
                deadline_ms: now_ms + delay_ms,
                delay_ms,
                remaining_ms,
            });
        }
        self.transition_to(GroupState::PreparingRebalance, now_ms);
        if !is_initial {
            if self.has_all_members_joined() {
                self.complete_join(now_ms, effects);
            } else {
                self.join_timer = Some(JoinTimer::Rebalance {
                    deadline_ms: now_ms + self.rebalance_timeout_ms(),
                });
            }
        }
    }

    /// Kafka's `completeClassicGroupJoin`.
    fn complete_join(&mut self, now_ms: u64, effects: &mut Vec<Effect>) {
        assert_eq!(self.state, GroupState::PreparingRebalance);
        self.join_timer = None;
        // Dynamic members that did not rejoin in time are dropped; static
        // members stay, as their instance id keeps their place.
        let not_rejoined: Vec<String> = self
            .members
            .values()
            .filter(|member| member.awaiting_join.is_none() && member.group_instance_id.is_none())
            .map(|member| member.member_id.clone())
            .collect();
        for member_id in not_rejoined {
            self.remove_member(&member_id, effects);
        }
        if !self.members.is_empty() && !self.maybe_elect_new_joined_leader() {
            // Nobody rejoined (only static members left): wait another
            // rebalance timeout while sessions expire the silent ones.
            self.join_timer = Some(JoinTimer::Rebalance {
                deadline_ms: now_ms + self.rebalance_timeout_ms().max(1),
            });
            return;
        }
        self.generation_id += 1;
        self.pending_sync_members.clear();
        if self.members.is_empty() {
            self.protocol_name = None;
            self.transition_to(GroupState::Empty, now_ms);
            effects.push(Effect::PersistGroup(self.snapshot()));
            return;
        }
        self.protocol_name = Some(self.select_protocol());
        self.transition_to(GroupState::CompletingRebalance, now_ms);
        let member_ids: Vec<String> = self.members.keys().cloned().collect();
        for member_id in member_ids {
            let response = self.join_response(&member_id, false);
            let member = self.members.get_mut(&member_id).expect("listed above");
            if let Some(request) = member.awaiting_join.take() {
                effects.push(Effect::JoinResponse { request, response });
            }
            member.session_deadline_ms = Some(now_ms + duration_ms(member.session_timeout_ms));
            member.is_new = false;
            self.pending_sync_members.insert(member_id);
        }
        self.sync_timer = Some(SyncTimer {
            deadline_ms: now_ms + self.rebalance_timeout_ms(),
            generation_id: self.generation_id,
        });
    }

    /// Keeps the leader if it rejoined, else picks the first member that did.
    fn maybe_elect_new_joined_leader(&mut self) -> bool {
        let Some(leader_id) = self.leader_id.clone() else {
            return false;
        };
        let leader = self
            .members
            .get(&leader_id)
            .expect("the leader is a member");
        if leader.awaiting_join.is_some() {
            return true;
        }
        match self
            .members
            .values()
            .find(|member| member.awaiting_join.is_some())
        {
            Some(member) => {
                self.leader_id = Some(member.member_id.clone());
                true
            }
            None => false,
        }
    }

    fn reset_and_propagate_assignment(
        &mut self,
        code: i16,
        now_ms: u64,
        effects: &mut Vec<Effect>,
    ) {
        assert_eq!(self.state, GroupState::CompletingRebalance);
        for member in self.members.values_mut() {
            member.assignment = Bytes::new();
        }
        self.propagate_assignment(code, now_ms, effects);
    }

    /// Answers every parked SyncGroup with the member's assignment (or
    /// `code`) and restarts those members' sessions.
    fn propagate_assignment(&mut self, code: i16, now_ms: u64, effects: &mut Vec<Effect>) {
        let (protocol_type, protocol_name) = if code == ec::NONE {
            (self.protocol_type.clone(), self.protocol_name.clone())
        } else {
            (None, None)
        };
        for member in self.members.values_mut() {
            if let Some(request) = member.awaiting_sync.take() {
                effects.push(Effect::SyncResponse {
                    request,
                    response: SyncResult {
                        error_code: code,
                        protocol_type: protocol_type.clone(),
                        protocol_name: protocol_name.clone(),
                        assignment: member.assignment.clone(),
                    },
                });
                member.session_deadline_ms = Some(now_ms + duration_ms(member.session_timeout_ms));
            }
        }
    }

    /// Removes a member or pending member, answering whatever it had parked
    /// with UNKNOWN_MEMBER_ID so the client rejoins if it is still alive.
    fn remove_member(&mut self, member_id: &str, effects: &mut Vec<Effect>) {
        self.pending_members.remove(member_id);
        self.pending_sync_members.remove(member_id);
        let Some(member) = self.members.remove(member_id) else {
            return;
        };
        if let Some(request) = member.awaiting_join {
            effects.push(Effect::JoinResponse {
                request,
                response: JoinResult::error("", ec::UNKNOWN_MEMBER_ID),
            });
        }
        if let Some(request) = member.awaiting_sync {
            effects.push(Effect::SyncResponse {
                request,
                response: SyncResult::error(ec::UNKNOWN_MEMBER_ID),
            });
        }
        if let Some(instance_id) = &member.group_instance_id {
            self.static_members.remove(instance_id);
        }
        if self.is_leader(member_id) {
            self.leader_id = self.members.keys().next().cloned();
        }
    }

    // -------------------------------------------------------------- SyncGroup

    pub fn sync(&mut self, request: RequestId, sync: SyncRequest, now_ms: u64) -> Vec<Effect> {
        let mut effects = Vec::new();
        self.handle_sync(request, sync, now_ms, &mut effects);
        self.check_invariants();
        effects
    }

    fn validate_sync(&self, sync: &SyncRequest) -> Result<(), i16> {
        if self.state == GroupState::Empty {
            return Err(ec::UNKNOWN_MEMBER_ID);
        }
        if self.state == GroupState::Dead {
            return Err(ec::COORDINATOR_NOT_AVAILABLE);
        }
        self.validate_member(&sync.member_id, sync.group_instance_id.as_deref())?;
        if sync.generation_id != self.generation_id {
            return Err(ec::ILLEGAL_GENERATION);
        }
        let inconsistent = |requested: &Option<String>, current: &Option<String>| {
            requested.is_some() && requested != current
        };
        if inconsistent(&sync.protocol_type, &self.protocol_type)
            || inconsistent(&sync.protocol_name, &self.protocol_name)
        {
            return Err(ec::INCONSISTENT_GROUP_PROTOCOL);
        }
        Ok(())
    }

    fn handle_sync(
        &mut self,
        request: RequestId,
        sync: SyncRequest,
        now_ms: u64,
        effects: &mut Vec<Effect>,
    ) {
        if let Err(code) = self.validate_sync(&sync) {
            effects.push(Effect::SyncResponse {
                request,
                response: SyncResult::error(code),
            });
            return;
        }
        match self.state {
            GroupState::PreparingRebalance => effects.push(Effect::SyncResponse {
                request,
                response: SyncResult::error(ec::REBALANCE_IN_PROGRESS),
            }),
            GroupState::CompletingRebalance => {
                let member = self.members.get_mut(&sync.member_id).expect("validated");
                if let Some(old) = member.awaiting_sync.replace(request)
                    && old != request
                {
                    effects.push(Effect::SyncResponse {
                        request: old,
                        response: SyncResult::error(ec::REBALANCE_IN_PROGRESS),
                    });
                }
                self.remove_pending_sync_member(&sync.member_id);
                if self.is_leader(&sync.member_id) {
                    let mut assignments: BTreeMap<String, Bytes> = BTreeMap::new();
                    for assignment in sync.assignments {
                        assignments.insert(assignment.member_id, assignment.assignment);
                    }
                    for member in self.members.values_mut() {
                        member.assignment =
                            assignments.remove(&member.member_id).unwrap_or_default();
                    }
                    self.transition_to(GroupState::Stable, now_ms);
                    effects.push(Effect::PersistGroup(self.snapshot()));
                    self.propagate_assignment(ec::NONE, now_ms, effects);
                }
            }
            GroupState::Stable => {
                self.remove_pending_sync_member(&sync.member_id);
                let member = self.members.get(&sync.member_id).expect("validated");
                effects.push(Effect::SyncResponse {
                    request,
                    response: SyncResult {
                        error_code: ec::NONE,
                        protocol_type: self.protocol_type.clone(),
                        protocol_name: self.protocol_name.clone(),
                        assignment: member.assignment.clone(),
                    },
                });
            }
            GroupState::Empty | GroupState::Dead => unreachable!("refused by validate_sync"),
        }
    }

    fn remove_pending_sync_member(&mut self, member_id: &str) {
        self.pending_sync_members.remove(member_id);
        if self.pending_sync_members.is_empty() {
            self.sync_timer = None;
        }
    }

    // -------------------------------------------------------------- Heartbeat

    pub fn heartbeat(
        &mut self,
        request: RequestId,
        heartbeat: HeartbeatRequest,
        now_ms: u64,
    ) -> Vec<Effect> {
        let error_code = match self.handle_heartbeat(&heartbeat, now_ms) {
            Ok(()) => ec::NONE,
            Err(code) => code,
        };
        self.check_invariants();
        vec![Effect::HeartbeatResponse {
            request,
            error_code,
        }]
    }

    fn handle_heartbeat(&mut self, heartbeat: &HeartbeatRequest, now_ms: u64) -> Result<(), i16> {
        if self.state == GroupState::Dead {
            return Err(ec::COORDINATOR_NOT_AVAILABLE);
        }
        self.validate_member(&heartbeat.member_id, heartbeat.group_instance_id.as_deref())?;
        if heartbeat.generation_id != self.generation_id {
            return Err(ec::ILLEGAL_GENERATION);
        }
        let member = self
            .members
            .get_mut(&heartbeat.member_id)
            .expect("validated");
        member.session_deadline_ms = Some(now_ms + duration_ms(member.session_timeout_ms));
        match self.state {
            GroupState::PreparingRebalance => Err(ec::REBALANCE_IN_PROGRESS),
            GroupState::CompletingRebalance | GroupState::Stable => Ok(()),
            GroupState::Empty | GroupState::Dead => unreachable!("such groups have no members"),
        }
    }

    // ------------------------------------------------------------- LeaveGroup

    pub fn leave(
        &mut self,
        request: RequestId,
        members: Vec<LeaveMember>,
        now_ms: u64,
    ) -> Vec<Effect> {
        let mut effects = Vec::new();
        if self.state == GroupState::Dead {
            effects.push(Effect::LeaveResponse {
                request,
                response: LeaveResult {
                    error_code: ec::COORDINATOR_NOT_AVAILABLE,
                    members: Vec::new(),
                },
            });
            return effects;
        }
        let mut results = Vec::with_capacity(members.len());
        let mut removed_any = false;
        for leaving in members {
            let code = self.leave_one(&leaving, &mut effects);
            removed_any |= code == ec::NONE;
            results.push(LeaveMemberResult {
                member_id: leaving.member_id,
                group_instance_id: leaving.group_instance_id,
                error_code: code,
            });
        }
        if removed_any {
            match self.state {
                GroupState::Stable | GroupState::CompletingRebalance => {
                    self.maybe_prepare_rebalance_or_complete_join(now_ms, &mut effects)
                }
                GroupState::PreparingRebalance => {
                    self.maybe_complete_join_phase(now_ms, &mut effects)
                }
                GroupState::Empty | GroupState::Dead => {}
            }
        }
        effects.push(Effect::LeaveResponse {
            request,
            response: LeaveResult {
                error_code: ec::NONE,
                members: results,
            },
        });
        self.check_invariants();
        effects
    }

    fn leave_one(&mut self, leaving: &LeaveMember, effects: &mut Vec<Effect>) -> i16 {
        if leaving.member_id.is_empty() {
            // Administrative removal by instance id.
            let member_id = leaving
                .group_instance_id
                .as_ref()
                .and_then(|instance_id| self.static_members.get(instance_id).cloned());
            return match member_id {
                Some(member_id) => {
                    self.remove_member(&member_id, effects);
                    ec::NONE
                }
                None => ec::UNKNOWN_MEMBER_ID,
            };
        }
        if self.pending_members.remove(&leaving.member_id).is_some() {
            return ec::NONE;
        }
        match self.validate_member(&leaving.member_id, leaving.group_instance_id.as_deref()) {
            Ok(()) => {
                self.remove_member(&leaving.member_id, effects);
                ec::NONE
            }
            Err(code) => code,
        }
    }

    // ------------------------------------------------------------------ timers

    /// Fires every timer due at `now_ms`, earliest first.
    pub fn tick(&mut self, now_ms: u64) -> Vec<Effect> {
        let mut effects = Vec::new();
        if self.state == GroupState::Dead {
            return effects;
        }
        // Each firing removes its timer or moves it past `now_ms`, except the
        // initial-delay extension, which shrinks its remaining budget; so the
        // loop ends. The bound turns a broken invariant into a crash, not a hang.
        let firings_max = 2 * (self.members.len() + self.pending_members.len()) + 64;
        for _ in 0..firings_max {
            if !self.fire_next_timer(now_ms, &mut effects) {
                self.check_invariants();
                return effects;
            }
        }
        panic!(
            "group timers keep firing at {now_ms}: {:?}",
            self.next_deadline_ms()
        );
    }

    fn fire_next_timer(&mut self, now_ms: u64, effects: &mut Vec<Effect>) -> bool {
        #[derive(Debug)]
        enum Due {
            Join,
            Sync,
            Pending(String),
            Session(String),
        }
        let mut due: Option<(u64, Due)> = None;
        let mut consider = |deadline_ms: u64, which: Due| {
            if deadline_ms <= now_ms && due.as_ref().is_none_or(|(best, _)| deadline_ms < *best) {
                due = Some((deadline_ms, which));
            }
        };
        if let Some(timer) = self.join_timer {
            consider(timer.deadline_ms(), Due::Join);
        }
        if let Some(timer) = self.sync_timer {
            consider(timer.deadline_ms, Due::Sync);
        }
        for (member_id, deadline_ms) in &self.pending_members {
            consider(*deadline_ms, Due::Pending(member_id.clone()));
        }
        for member in self.members.values() {
            if let Some(deadline_ms) = member.session_deadline_ms {
                consider(deadline_ms, Due::Session(member.member_id.clone()));
            }
        }
        let Some((_, which)) = due else {
            return false;
        };
        match which {
            Due::Join => self.fire_join_timer(now_ms, effects),
            Due::Sync => self.fire_sync_timer(now_ms, effects),
            Due::Pending(member_id) => {
                self.pending_members.remove(&member_id);
                if self.state == GroupState::PreparingRebalance && self.has_all_members_joined() {
                    self.complete_join(now_ms, effects);
                }
            }
            Due::Session(member_id) => self.expire_session(&member_id, now_ms, effects),
        }
        true
    }

    fn fire_join_timer(&mut self, now_ms: u64, effects: &mut Vec<Effect>) {
        let timer = self.join_timer.take().expect("due");
        match timer {
            JoinTimer::InitialDelay {
                deadline_ms,
                delay_ms,
                remaining_ms,
            } if self.new_member_added && remaining_ms != 0 => {
                // Members are still arriving: wait one more step, counted
                // from when this step ended so a late tick does not stretch
                // the total delay.
                self.new_member_added = false;
                let next_delay_ms =
                    duration_ms(self.config.initial_rebalance_delay_ms).min(remaining_ms);
                self.join_timer = Some(JoinTimer::InitialDelay {
                    deadline_ms: deadline_ms + next_delay_ms,
                    delay_ms: next_delay_ms,
                    remaining_ms: remaining_ms.saturating_sub(delay_ms),
                });
            }
            JoinTimer::InitialDelay { .. } | JoinTimer::Rebalance { .. } => {
                self.complete_join(now_ms, effects)
            }
        }
    }

    /// Kafka's `expirePendingSync`: members that got their JoinGroup response
    /// but never synced within the rebalance timeout are dropped.
    fn fire_sync_timer(&mut self, now_ms: u64, effects: &mut Vec<Effect>) {
        let timer = self.sync_timer.take().expect("due");
        let current = timer.generation_id == self.generation_id
            && matches!(
                self.state,
                GroupState::CompletingRebalance | GroupState::Stable
            );
        if !current || self.pending_sync_members.is_empty() {
            return;
        }
        let late: Vec<String> = self.pending_sync_members.iter().cloned().collect();
        for member_id in late {
            self.remove_member(&member_id, effects);
        }
        self.prepare_rebalance(now_ms, effects);
    }

    fn expire_session(&mut self, member_id: &str, now_ms: u64, effects: &mut Vec<Effect>) {
        let member = self.members.get_mut(member_id).expect("due");
        if member.has_satisfied_heartbeat() {
            // Parked in a join or sync counts as alive; the session restarts
            // when that request is answered.
            member.session_deadline_ms = None;
            return;
        }
        self.remove_member(member_id, effects);
        match self.state {
            GroupState::Stable | GroupState::CompletingRebalance => {
                self.maybe_prepare_rebalance_or_complete_join(now_ms, effects)
            }
            GroupState::PreparingRebalance if self.has_all_members_joined() => {
                self.complete_join(now_ms, effects)
            }
            _ => {}
        }
    }

    // -------------------------------------------------------------- invariants

    /// Crashes on a broken invariant. Cheap enough for debug builds and tests.
    fn check_invariants(&self) {
        if !cfg!(debug_assertions) {
            return;
        }
        use GroupState::*;
        if self.state == Empty {
            assert!(self.members.is_empty(), "an Empty group has no members");
        }
        if matches!(self.state, CompletingRebalance | Stable) {
            assert!(
                !self.members.is_empty(),
                "{:?} group has members",
                self.state
            );
            assert!(
                self.protocol_name.is_some(),
                "{:?} group has a protocol",
                self.state
            );
        }
        match &self.leader_id {
            Some(leader) => assert!(self.members.contains_key(leader), "the leader is a member"),
            None => assert!(self.members.is_empty(), "a group with members has a leader"),
        }
        for (instance_id, member_id) in &self.static_members {
            let member = self
                .members
                .get(member_id)
                .expect("static members are members");
            assert_eq!(member.group_instance_id.as_ref(), Some(instance_id));
        }
        let static_count = self
            .members
            .values()
            .filter(|member| member.group_instance_id.is_some())
            .count();
        assert_eq!(static_count, self.static_members.len());
        for (member_id, member) in &self.members {
            assert_eq!(member_id, &member.member_id);
            assert!(!self.pending_members.contains_key(member_id));
            assert_eq!(
                Some(member.protocol_type.as_str()),
                self.protocol_type.as_deref()
            );
            if let Some(name) = &self.protocol_name
                && self.state != PreparingRebalance
            {
                assert!(
                    member.supports(name),
                    "every member supports the group's protocol"
                );
            }
            if member.awaiting_sync.is_some() {
                assert_eq!(
                    self.state, CompletingRebalance,
                    "syncs are parked only while completing"
                );
            }
            if member.awaiting_join.is_some() {
                assert_eq!(
                    self.state, PreparingRebalance,
                    "joins are parked only while preparing"
                );
            }
            if self.state != Dead
                && member.awaiting_join.is_none()
                && member.awaiting_sync.is_none()
            {
                assert!(
                    member.session_deadline_ms.is_some(),
                    "an idle member has a session"
                );
            }
        }
        for member_id in &self.pending_sync_members {
            assert!(self.members.contains_key(member_id));
        }
        match self.state {
            PreparingRebalance => assert!(self.join_timer.is_some(), "a rebalance has a deadline"),
            _ => assert!(self.join_timer.is_none()),
        }
        if self.state == CompletingRebalance {
            assert!(self.sync_timer.is_some(), "the sync phase has a deadline");
        }
        let size_max = usize::try_from(self.config.pending_members_max).expect("u32 fits usize");
        assert!(self.pending_members.len() <= size_max);
    }
}

// Lives in `state/tests.rs`.
#[cfg(test)]
mod tests;
