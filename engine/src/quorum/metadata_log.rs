//! The metadata log: the quorum's records applied to a [`ClusterState`].
//!
//! ```text
//!  open(<first log dir>/weir-quorum) ─► restore ClusterState from the snapshot
//!       ─► (single voter) campaign ─► replay committed batches ─► leader
//!  commit(batch) ─► propose one entry (a JSON list of MetadataRecords, applied together)
//!       ─► drive Ready until applied (entries fdatasync'ed first) ─► state updated
//!       ─► every SNAPSHOT_EVERY_ENTRIES entries: compact into a snapshot of the state
//! ```
//!
//! A single node is a quorum of one voter on this path. Raft ids are `node.id + 1`
//! (Raft reserves 0; Kafka's node ids start at 0). Several voters need the transport
//! and an asynchronous driver; until then `open` refuses them.

use std::path::Path;

use super::{Committed, QuorumError, QuorumNode, QuorumTiming};
use crate::replication::NodeId;
use crate::replication::cluster_state::{ClusterState, MetadataRecord};
use crate::replication::control::ReplicationControl;

/// The quorum's directory inside the first log dir.
pub const QUORUM_DIR_NAME: &str = "weir-quorum";
/// Entries between snapshots.
const SNAPSHOT_EVERY_ENTRIES: u64 = 1000;
/// Ready rounds a single voter may need to elect itself or commit one entry.
const ROUNDS_MAX: usize = 1000;
const TIMING: QuorumTiming = QuorumTiming {
    election_ticks: 10,
    heartbeat_ticks: 2,
};

/// One voter's progress, as DescribeQuorum reports it (Kafka offsets: entries from 0).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VoterProgress {
    pub node_id: NodeId,
    pub log_end_offset: i64,
    pub last_fetch_timestamp_ms: i64,
    pub last_caught_up_timestamp_ms: i64,
}

/// The quorum as the leader sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QuorumDescription {
    pub leader_node_id: NodeId,
    pub leader_epoch: i32,
    pub high_watermark: i64,
    pub voters: Vec<VoterProgress>,
}

/// The metadata log of this node.
pub struct MetadataLog {
    node: QuorumNode,
    state: ClusterState,
    snapshot_index: u64,
    /// The directory had no quorum log before this open.
    fresh: bool,
    /// Set when persisting failed (a full disk, an I/O error): Raft's view and the disk
    /// may then disagree, so no further change is accepted until a restart replays the
    /// log from disk (Kafka's controller stops on such an error too).
    failed: Option<String>,
}

/// Raft's id for a Kafka node id.
pub fn raft_id(node_id: NodeId) -> u64 {
    node_id as u64 + 1
}

fn decode_batch(index: u64, data: &[u8]) -> Result<Vec<MetadataRecord>, QuorumError> {
    serde_json::from_slice(data).map_err(|error| QuorumError::Corrupt {
        path: format!("metadata log entry {index}").into(),
        reason: error.to_string(),
    })
}

impl MetadataLog {
    /// Opens (or creates) the log of `node_id` in `log_dir/weir-quorum` and replays it.
    pub fn open(
        log_dir: &Path,
        node_id: NodeId,
        voters: &[NodeId],
        control: ReplicationControl,
    ) -> Result<MetadataLog, QuorumError> {
        assert_eq!(
            voters,
            [node_id],
            "only a single-voter metadata log runs in this build"
        );
        let dir = log_dir.join(QUORUM_DIR_NAME);
        let fresh = !dir.exists();
        let raft_voters: Vec<u64> = voters.iter().map(|&id| raft_id(id)).collect();
        let mut node = QuorumNode::open(&dir, raft_id(node_id), &raft_voters, TIMING)?;
        let (snapshot_index, data) = node.snapshot();
        let state =
            ClusterState::restore(control, &data).map_err(|error| QuorumError::Corrupt {
                path: dir.join("snapshot"),
                reason: error.to_string(),
            })?;
        node.campaign()?;
        let mut log = MetadataLog {
            node,
            state,
            snapshot_index,
            fresh,
            failed: None,
        };
        for _ in 0..ROUNDS_MAX {
            log.drive()?;
            if log.node.is_leader() {
                tracing::info!(
                    dir = %dir.display(),
                    term = log.node.term(),
                    applied_index = log.node.applied_index(),
                    snapshot_index,
                    "metadata log replayed; this node leads its quorum of one"
                );
                return Ok(log);
            }
        }
        Err(QuorumError::Raft(raft::Error::ProposalDropped))
    }

    /// Whether this open created the log (nothing was ever committed before).
    pub fn is_fresh(&self) -> bool {
        self.fresh
    }

    /// The quorum for DescribeQuorum: this node leads a quorum of one, so its log end
    /// is everyone's and it is caught up now.
    pub fn describe(&self) -> QuorumDescription {
        let now_ms = weir_storage::now_ms();
        let node_id = self.node.id() as NodeId - 1;
        QuorumDescription {
            leader_node_id: node_id,
            leader_epoch: self.node.term() as i32,
            high_watermark: self.node.commit_index() as i64,
            voters: vec![VoterProgress {
                node_id,
                log_end_offset: self.node.last_index() as i64,
                last_fetch_timestamp_ms: now_ms,
                last_caught_up_timestamp_ms: now_ms,
            }],
        }
    }

    pub fn state(&self) -> &ClusterState {
        &self.state
    }

    /// Heartbeat bookkeeping that is not part of the log.
    pub fn state_mut(&mut self) -> &mut ClusterState {
        &mut self.state
    }

    /// Commits `batch` as one entry and applies it; returns once it is applied.
    pub fn commit(&mut self, batch: Vec<MetadataRecord>) -> Result<(), QuorumError> {
        if batch.is_empty() {
            return Ok(());
        }
        if let Some(reason) = &self.failed {
            return Err(QuorumError::Stopped(reason.clone()));
        }
        let result = self.commit_unchecked(batch);
        if let Err(error) = &result {
            tracing::error!(%error, "the metadata log stopped taking changes until the broker restarts");
            self.failed = Some(error.to_string());
        }
        result
    }

    fn commit_unchecked(&mut self, batch: Vec<MetadataRecord>) -> Result<(), QuorumError> {
        let data = serde_json::to_vec(&batch).expect("metadata records always serialize");
        self.node.propose(data)?;
        let index = self.node.last_index();
        for _ in 0..ROUNDS_MAX {
            self.drive()?;
            if self.node.applied_index() >= index {
                self.maybe_compact()?;
                return Ok(());
            }
        }
        Err(QuorumError::Raft(raft::Error::ProposalDropped))
    }

    /// One round of Ready: persist, apply what committed.
    fn drive(&mut self) -> Result<(), QuorumError> {
        let ready = self.node.handle_ready()?;
        debug_assert!(ready.messages.is_empty(), "a single voter sends nothing");
        for committed in ready.committed {
            match committed {
                Committed::Record { index, data } => {
                    for record in decode_batch(index, &data)? {
                        self.state.apply(&record);
                    }
                }
                Committed::Snapshot { .. } => {
                    unreachable!("a single voter never receives a snapshot")
                }
            }
        }
        Ok(())
    }

    fn maybe_compact(&mut self) -> Result<(), QuorumError> {
        let applied = self.node.applied_index();
        if applied >= self.snapshot_index + SNAPSHOT_EVERY_ENTRIES {
            self.node.compact(applied, self.state.snapshot())?;
            self.snapshot_index = applied;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use uuid::Uuid;

    use super::*;
    use crate::replication::cluster_state::Endpoint;

    fn open(dir: &Path) -> MetadataLog {
        MetadataLog::open(dir, 0, &[0], ReplicationControl::new(9_000)).expect("open")
    }

    fn register(log: &mut MetadataLog) {
        let endpoint = Endpoint {
            host: "127.0.0.1".into(),
            port: 9092,
            rack: None,
        };
        let records = log.state_mut().register_broker(0, 1, true, endpoint, 0);
        log.commit(records).expect("commit");
    }

    #[test]
    fn a_failed_write_stops_the_log_until_a_restart_replays_what_is_on_disk() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut log = open(dir.path());
        register(&mut log);
        // The hard state cannot be replaced: its temp file's name is taken by a directory.
        let blocker = dir.path().join(QUORUM_DIR_NAME).join("hard-state.tmp");
        std::fs::create_dir(&blocker).expect("mkdir");
        let records = log
            .state()
            .create_topic("t", Uuid::new_v4(), 1, 1, None, BTreeMap::new())
            .expect("create");
        let error = log.commit(records.clone()).expect_err("the write fails");
        assert!(matches!(error, QuorumError::Storage(_)), "{error}");
        std::fs::remove_dir(&blocker).expect("rmdir");
        let stopped = log.commit(records).expect_err("stopped");
        assert!(
            stopped.to_string().contains("restart the broker"),
            "{stopped}"
        );
        drop(log);
        let mut log = open(dir.path());
        register(&mut log);
        let records = log
            .state()
            .create_topic("u", Uuid::new_v4(), 1, 1, None, BTreeMap::new())
            .expect("create");
        log.commit(records)
            .expect("a restarted log takes changes again");
        assert!(log.state().topic("u").is_some());
    }

    #[test]
    fn committed_batches_survive_a_restart_and_a_compaction() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut log = open(dir.path());
        assert!(log.is_fresh());
        register(&mut log);
        let id = Uuid::new_v4();
        let records = log
            .state()
            .create_topic("t", id, 3, 1, None, BTreeMap::new())
            .expect("create");
        log.commit(records).expect("commit");
        assert_eq!(log.state().topic("t").expect("applied").partitions, 3);
        drop(log);

        let mut log = open(dir.path());
        assert!(!log.is_fresh());
        assert_eq!(
            log.state().topic("t").map(|t| (t.id, t.partitions)),
            Some((id, 3))
        );
        assert_eq!(log.state().partition("t", 2).expect("registered").leader, 0);
        // Enough entries for a snapshot; the state after reopening is the same.
        for block in 0..SNAPSHOT_EVERY_ENTRIES as i64 + 5 {
            log.commit(vec![MetadataRecord::ProducerIdBlock {
                next_block_start: block * 1000,
            }])
            .expect("commit");
        }
        assert!(log.snapshot_index > 0, "compacted");
        let before = log.state().snapshot();
        drop(log);
        let log = open(dir.path());
        assert_eq!(log.state().snapshot(), before);
        assert_eq!(
            log.state().next_producer_id_block(),
            (SNAPSHOT_EVERY_ENTRIES as i64 + 4) * 1000
        );
    }
}
