//! Requests, responses, effects, snapshots and settings of the classic
//! group state machine: plain data, no behaviour beyond small constructors.

use bytes::Bytes;

/// Chosen by the driver; echoed on the response effect of that request.
pub type RequestId = u64;

/// Kafka error codes used by the classic group protocol.
pub mod error_code {
    pub const UNKNOWN_SERVER_ERROR: i16 = -1;
    pub const NONE: i16 = 0;
    pub const COORDINATOR_NOT_AVAILABLE: i16 = 15;
    pub const NOT_COORDINATOR: i16 = 16;
    pub const ILLEGAL_GENERATION: i16 = 22;
    pub const INCONSISTENT_GROUP_PROTOCOL: i16 = 23;
    pub const INVALID_GROUP_ID: i16 = 24;
    pub const UNKNOWN_MEMBER_ID: i16 = 25;
    pub const INVALID_SESSION_TIMEOUT: i16 = 26;
    pub const REBALANCE_IN_PROGRESS: i16 = 27;
    pub const NON_EMPTY_GROUP: i16 = 68;
    pub const GROUP_ID_NOT_FOUND: i16 = 69;
    pub const MEMBER_ID_REQUIRED: i16 = 79;
    pub const GROUP_MAX_SIZE_REACHED: i16 = 81;
    pub const FENCED_INSTANCE_ID: i16 = 82;
}

/// Generation id of a group that never completed a rebalance, and of error
/// responses (Kafka's `JoinGroupResponseData` default).
pub const GENERATION_ID_NONE: i32 = -1;

/// Kafka's defaults (`group.initial.rebalance.delay.ms`,
/// `group.min.session.timeout.ms`, `group.max.session.timeout.ms`,
/// `group.max.size`, `group.classic.new.member.join.timeout.ms`).
pub const INITIAL_REBALANCE_DELAY_MS_DEFAULT: i32 = 3_000;
pub const SESSION_TIMEOUT_MS_MIN_DEFAULT: i32 = 6_000;
pub const SESSION_TIMEOUT_MS_MAX_DEFAULT: i32 = 1_800_000;
pub const GROUP_SIZE_MAX_DEFAULT: i32 = i32::MAX;
pub const NEW_MEMBER_JOIN_TIMEOUT_MS_DEFAULT: i32 = 300_000;
/// Members told MEMBER_ID_REQUIRED that have not rejoined yet. Kafka keeps no
/// bound; a client that loops on JoinGroup v4+ without ever rejoining would
/// otherwise grow this set for a whole session timeout. Ten thousand is far
/// above the number of consumers that start at once in real groups.
pub const PENDING_MEMBERS_MAX_DEFAULT: u32 = 10_000;

const _: () = assert!(SESSION_TIMEOUT_MS_MIN_DEFAULT <= SESSION_TIMEOUT_MS_MAX_DEFAULT);
const _: () = assert!(INITIAL_REBALANCE_DELAY_MS_DEFAULT >= 0);

/// Coordinator-wide settings for classic groups.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupConfig {
    /// How long the first rebalance of an Empty group waits for more members,
    /// extended in steps of this size while members keep arriving.
    pub initial_rebalance_delay_ms: i32,
    pub session_timeout_ms_min: i32,
    pub session_timeout_ms_max: i32,
    /// Answered with GROUP_MAX_SIZE_REACHED beyond this many members.
    pub group_size_max: i32,
    /// A new member's parked JoinGroup is dropped after this long: the client
    /// cannot heartbeat without a member id, so this stands in for a session.
    pub new_member_join_timeout_ms: i32,
    /// Bound on members told MEMBER_ID_REQUIRED that have not rejoined; past
    /// it new members get COORDINATOR_NOT_AVAILABLE, which clients retry.
    pub pending_members_max: u32,
}

impl Default for GroupConfig {
    fn default() -> Self {
        GroupConfig {
            initial_rebalance_delay_ms: INITIAL_REBALANCE_DELAY_MS_DEFAULT,
            session_timeout_ms_min: SESSION_TIMEOUT_MS_MIN_DEFAULT,
            session_timeout_ms_max: SESSION_TIMEOUT_MS_MAX_DEFAULT,
            group_size_max: GROUP_SIZE_MAX_DEFAULT,
            new_member_join_timeout_ms: NEW_MEMBER_JOIN_TIMEOUT_MS_DEFAULT,
            pending_members_max: PENDING_MEMBERS_MAX_DEFAULT,
        }
    }
}

/// Kafka's `ClassicGroupState`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum GroupState {
    Empty,
    PreparingRebalance,
    CompletingRebalance,
    Stable,
    Dead,
}

impl GroupState {
    /// The names Kafka reports in DescribeGroups and ListGroups.
    pub fn name(self) -> &'static str {
        match self {
            GroupState::Empty => "Empty",
            GroupState::PreparingRebalance => "PreparingRebalance",
            GroupState::CompletingRebalance => "CompletingRebalance",
            GroupState::Stable => "Stable",
            GroupState::Dead => "Dead",
        }
    }

    /// Kafka's `validPreviousStates`, read the other way round.
    pub(super) fn can_transition_to(self, next: GroupState) -> bool {
        use GroupState::*;
        match next {
            Empty => self == PreparingRebalance,
            PreparingRebalance => matches!(self, Stable | CompletingRebalance | Empty),
            CompletingRebalance => self == PreparingRebalance,
            Stable => self == CompletingRebalance,
            Dead => true,
        }
    }
}

/// One protocol a member supports, in the member's order of preference.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JoinProtocol {
    pub name: String,
    pub metadata: Bytes,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JoinRequest {
    /// Empty for a member that has no id yet.
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub session_timeout_ms: i32,
    /// JoinGroup v0 has none; the driver passes the session timeout then.
    pub rebalance_timeout_ms: i32,
    pub protocol_type: String,
    pub protocols: Vec<JoinProtocol>,
    /// JoinGroup v4+: a new dynamic member first gets MEMBER_ID_REQUIRED.
    pub require_known_member_id: bool,
    /// JoinGroup v9+: a static leader rejoining a Stable group is told to
    /// skip the assignment and is sent the member list.
    pub supports_skip_assignment: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JoinResultMember {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub metadata: Bytes,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JoinResult {
    pub error_code: i16,
    pub generation_id: i32,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    /// Empty when unknown.
    pub leader: String,
    pub skip_assignment: bool,
    pub member_id: String,
    /// Only the leader gets the members (with their metadata for the chosen
    /// protocol); followers get an empty list.
    pub members: Vec<JoinResultMember>,
}

impl JoinResult {
    pub(super) fn error(member_id: &str, error_code: i16) -> JoinResult {
        JoinResult {
            error_code,
            generation_id: GENERATION_ID_NONE,
            protocol_type: None,
            protocol_name: None,
            leader: String::new(),
            skip_assignment: false,
            member_id: member_id.to_string(),
            members: Vec::new(),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SyncAssignment {
    pub member_id: String,
    pub assignment: Bytes,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SyncRequest {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub generation_id: i32,
    /// SyncGroup v5+; checked against the group's when present.
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    /// Only the leader's assignments are used.
    pub assignments: Vec<SyncAssignment>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SyncResult {
    pub error_code: i16,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub assignment: Bytes,
}

impl SyncResult {
    pub(super) fn error(error_code: i16) -> SyncResult {
        SyncResult {
            error_code,
            protocol_type: None,
            protocol_name: None,
            assignment: Bytes::new(),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HeartbeatRequest {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub generation_id: i32,
}

/// One member of a LeaveGroup request (v3+ batches them; v0-2 is a batch of
/// one with only a member id).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeaveMember {
    /// Empty to remove a static member by instance id (administrative removal).
    pub member_id: String,
    pub group_instance_id: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeaveMemberResult {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub error_code: i16,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeaveResult {
    /// Set for the whole request (COORDINATOR_NOT_AVAILABLE for a Dead group);
    /// otherwise NONE and the per-member codes tell.
    pub error_code: i16,
    pub members: Vec<LeaveMemberResult>,
}

/// What a group persists is Kafka's `GroupMetadataValue` itself: the same type the
/// `__consumer_offsets` codec reads and writes, so no conversion stands between them.
pub use super::super::records::{GroupMember, GroupValue};

/// DescribeGroups for one group.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupDescription {
    pub state: GroupState,
    pub state_name: &'static str,
    pub protocol_type: String,
    /// Only reported while Stable, as Kafka does; empty otherwise.
    pub protocol_name: String,
    pub generation_id: i32,
    pub leader_id: Option<String>,
    pub members: Vec<DescribedMember>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DescribedMember {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    /// Empty unless the group is Stable, as Kafka does.
    pub metadata: Bytes,
    /// Empty unless the group is Stable, as Kafka does.
    pub assignment: Bytes,
}

/// Something the driver must do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Effect {
    JoinResponse {
        request: RequestId,
        response: JoinResult,
    },
    SyncResponse {
        request: RequestId,
        response: SyncResult,
    },
    HeartbeatResponse {
        request: RequestId,
        error_code: i16,
    },
    LeaveResponse {
        request: RequestId,
        response: LeaveResult,
    },
    /// Write this `GroupMetadataValue` before sending the responses after it.
    PersistGroup(GroupValue),
    /// Write a tombstone for the group's metadata key (group deleted).
    PersistGroupTombstone,
}
