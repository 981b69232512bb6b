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

mod invariants;
mod join;
mod rebalance;
mod sync;
mod timers;
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
        snapshot: GroupValue,
        config: GroupConfig,
        member_id_seed: u64,
        now_ms: u64,
    ) -> Group {
        let mut group = Group::new(config, member_id_seed, now_ms);
        group.generation_id = snapshot.generation;
        group.state_timestamp_ms = snapshot.current_state_timestamp_ms.max(0) as u64;
        group.protocol_type = if snapshot.protocol_type.is_empty() {
            None
        } else {
            Some(snapshot.protocol_type.clone())
        };
        group.protocol_name = snapshot.protocol.clone();
        let protocol_name = snapshot.protocol.clone().unwrap_or_default();
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
            group.leader_id = match snapshot.leader {
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
    pub fn snapshot(&self) -> GroupValue {
        let protocol_name = self.protocol_name.clone();
        let members = match &protocol_name {
            None => Vec::new(),
            Some(name) => self
                .members
                .values()
                .map(|member| GroupMember {
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
        GroupValue {
            protocol_type: self.protocol_type.clone().unwrap_or_default(),
            generation: self.generation_id,
            protocol: protocol_name,
            leader: self.leader_id.clone(),
            current_state_timestamp_ms: self.state_timestamp_ms as i64,
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
}

// Lives in `state/tests.rs`.
#[cfg(test)]
mod tests;
