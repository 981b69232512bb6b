//! Partition replication with Kafka's semantics, as sans-IO state machines.
//!
//! ```text
//!   controller (control.rs: one writer, replicated by the metadata quorum)
//!     brokers: registered incarnation, fenced?      partitions: PartitionRegistration
//!       ▲ heartbeat / register      ▲ AlterPartition(new ISR, leader epoch, partition epoch)
//!       │                           │          │ registrations (metadata)
//!   ┌───┴───────────────────────────┴──┐       ▼
//!   │ leader (leader.rs)                │ ◄── Fetch(replica, fetch offset, last fetched epoch)
//!   │  follower progress: LEO, caught-up time     ──► diverging epoch │ records + high watermark
//!   │  HW = min LEO over the maximal ISR          ┌──────────────────┴──┐
//!   │  ISR shrink after replica.lag.time.max.ms   │ follower (follower.rs)│
//!   │  ISR expand when LEO ≥ HW and ≥ epoch start │ truncate at divergence │
//!   └───────────────────────────────────┘          └───────────────────────┘
//! ```
//!
//! Invariants (checked by the seeded simulation in `sim`, every step):
//! * A leader's high watermark never goes back while it leads an epoch; records below
//!   the highest high watermark any leader reached ("committed") are never lost.
//! * Every member of the controller's ISR holds the committed prefix, identical.
//! * A leader is only ever elected from the ISR (no unclean election), and an ISR
//!   change only takes effect for the high watermark once the controller committed it
//!   (a pending expansion counts at once: the "maximal ISR" of KIP-497).
//! * An acks=all append is acknowledged only once the high watermark passed it while
//!   the ISR had at least `min.insync.replicas` members.
//!
//! No I/O here: callers pass the log's facts (end offset, leader epoch entries) and the
//! time, and carry out what the state machines answer (fetch, truncate, append, send an
//! AlterPartition, answer a producer).

pub mod cluster_state;
pub mod control;
pub mod follower;
pub mod leader;
pub mod placement;
#[cfg(test)]
mod sim;

/// A broker's `node.id`.
pub type NodeId = i32;

/// Kafka's "no leader" (-1) in a registration.
pub const NO_LEADER: NodeId = -1;

/// A new partition's leader epoch (as in KRaft); a partition takes its registration's
/// epoch when its shard opens it.
pub const INITIAL_LEADER_EPOCH: i32 = 0;

/// A partition as the controller registered it (Kafka's PartitionRecord after its
/// PartitionChangeRecords).
#[derive(
    Clone,
    Debug,
    PartialEq,
    Eq,
    serde::Serialize,
    serde::Deserialize,
    rkyv::Archive,
    rkyv::Serialize,
    rkyv::Deserialize,
)]
pub struct PartitionRegistration {
    /// Assigned replicas, preferred leader first.
    pub replicas: Vec<NodeId>,
    /// In-sync replicas, in replica order; never empty once created.
    pub isr: Vec<NodeId>,
    pub leader: NodeId,
    /// Bumped on every leader change; stamped into batches the leader appends.
    pub leader_epoch: i32,
    /// Bumped on every change of the registration (Kafka's partition epoch).
    pub partition_epoch: i32,
}

/// The Kafka errors replication answers with (mapped to codes in `errors.rs`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ReplicationError {
    #[error("this broker is not the leader of the partition")]
    NotLeaderOrFollower,
    #[error("the request's leader epoch is older than the leader's")]
    FencedLeaderEpoch,
    #[error("the request's leader epoch is newer than the leader's")]
    UnknownLeaderEpoch,
    #[error("the partition epoch of the change is not the current one")]
    InvalidUpdateVersion,
    #[error("a replica added to the ISR is fenced, or not a replica")]
    IneligibleReplica,
    #[error("the fetch offset is outside the leader's log")]
    OffsetOutOfRange,
    #[error("fewer in-sync replicas than min.insync.replicas")]
    NotEnoughReplicas,
    #[error("the ISR shrank below min.insync.replicas after the append")]
    NotEnoughReplicasAfterAppend,
    #[error("the fetching broker is not a replica of the partition")]
    UnknownReplica,
}
