//! The metadata log: the quorum's records applied to a [`ClusterState`].
//!
//! ```text
//!  open(<first log dir>/weir-quorum) ─► restore ClusterState from the snapshot
//!       ─► replay what the log already committed ─► (single voter) campaign ─► leader
//!  start-up, single voter only: commit(batch) synchronously (imports, this broker's registration)
//!  start(listener, peers) on the controller shard ─► QuorumDriver runs the node:
//!       propose(batch) (a follower forwards to the leader) ─► committed on a majority
//!       ─► apply_committed(): every record applied in log order, requests collected
//!       ─► every SNAPSHOT_EVERY_ENTRIES entries: compact into a snapshot of the state
//! ```
//!
//! Every node, a single one included, runs the same driver after start-up. Raft ids are
//! `node.id + 1` (Raft reserves 0; Kafka's node ids start at 0).

use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::path::Path;
use std::rc::Rc;
use std::time::Duration;

use super::{Committed, QuorumDriver, QuorumError, QuorumNode, QuorumTiming};
use crate::event::Event;
use crate::replication::NodeId;
use crate::replication::cluster_state::{ClusterState, ControllerRequest, MetadataRecord};
use crate::replication::control::ReplicationControl;

/// The quorum's directory inside the first log dir.
pub const QUORUM_DIR_NAME: &str = "weir-quorum";
/// Entries between snapshots.
const SNAPSHOT_EVERY_ENTRIES: u64 = 1000;
/// Ready rounds a single voter may need to elect itself or commit one entry.
const ROUNDS_MAX: usize = 1000;
/// Applied entries whose terms are remembered for proposers waiting on them.
const APPLIED_TERMS_KEPT: usize = 4096;

/// One voter's progress, as DescribeQuorum reports it (Kafka offsets: entries from 0).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VoterProgress {
    pub node_id: NodeId,
    pub log_end_offset: i64,
    pub last_fetch_timestamp_ms: i64,
    pub last_caught_up_timestamp_ms: i64,
}

/// The quorum as this node sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QuorumDescription {
    pub leader_node_id: NodeId,
    pub leader_epoch: i32,
    pub high_watermark: i64,
    pub voters: Vec<VoterProgress>,
}

/// What one [`MetadataLog::apply_committed`] applied.
#[derive(Debug, Default)]
pub struct Applied {
    /// Entries applied (a snapshot counts as one).
    pub entries: usize,
    /// Requests to the controller among them, in log order.
    pub requests: Vec<ControllerRequest>,
}

/// The metadata log of this node.
pub struct MetadataLog {
    /// The node before [`Self::start`] hands it to the driver.
    node: Option<QuorumNode>,
    driver: Option<Rc<QuorumDriver>>,
    node_id: NodeId,
    voters: Vec<NodeId>,
    state: ClusterState,
    applied_index: u64,
    /// (index, term) of the latest applied entries, oldest first.
    applied_terms: VecDeque<(u64, u64)>,
    snapshot_index: u64,
    /// The directory had no quorum log before this open.
    fresh: bool,
    /// The incarnation this broker registers as (multi-node start-up).
    registered_incarnation: u64,
    /// Controlled shutdown began: this broker stays fenced.
    leaving: bool,
    /// Set when persisting failed (a full disk, an I/O error): Raft's view and the disk
    /// may then disagree, so no further change is accepted until a restart replays the
    /// log from disk (Kafka's controller stops on such an error too).
    failed: Option<String>,
}

/// Raft's id for a Kafka node id.
pub fn raft_id(node_id: NodeId) -> u64 {
    node_id as u64 + 1
}

/// The Kafka node id of a Raft id.
pub fn node_id_of(raft_id: u64) -> NodeId {
    raft_id as NodeId - 1
}

fn decode_batch(index: u64, data: &[u8]) -> Result<Vec<MetadataRecord>, QuorumError> {
    serde_json::from_slice(data).map_err(|error| QuorumError::Corrupt {
        path: format!("metadata log entry {index}").into(),
        reason: error.to_string(),
    })
}

/// Raft timing for an election timeout of `election_timeout_ms` at `tick`.
pub fn timing(election_timeout_ms: u64, tick: Duration) -> QuorumTiming {
    let election_ticks = (election_timeout_ms / tick.as_millis().max(1) as u64).max(4) as usize;
    QuorumTiming {
        election_ticks,
        heartbeat_ticks: (election_ticks / 5).max(1),
    }
}

impl MetadataLog {
    /// Opens (or creates) the log of `node_id` in `log_dir/weir-quorum` and replays what
    /// it committed; a single voter also elects itself, so it can commit at once.
    pub fn open(
        log_dir: &Path,
        node_id: NodeId,
        voters: &[NodeId],
        timing: QuorumTiming,
        control: ReplicationControl,
    ) -> Result<MetadataLog, QuorumError> {
        let dir = log_dir.join(QUORUM_DIR_NAME);
        let fresh = !dir.exists();
        let raft_voters: Vec<u64> = voters.iter().map(|&id| raft_id(id)).collect();
        let node = QuorumNode::open(&dir, raft_id(node_id), &raft_voters, timing)?;
        let (snapshot_index, data) = node.snapshot();
        let state =
            ClusterState::restore(control, &data).map_err(|error| QuorumError::Corrupt {
                path: dir.join("snapshot"),
                reason: error.to_string(),
            })?;
        let mut log = MetadataLog {
            node: Some(node),
            driver: None,
            node_id,
            voters: voters.to_vec(),
            state,
            applied_index: snapshot_index,
            applied_terms: VecDeque::new(),
            snapshot_index,
            fresh,
            registered_incarnation: 0,
            leaving: false,
            failed: None,
        };
        // What this node knows to be committed replays without a leader.
        log.drive()?;
        if voters.len() == 1 {
            log.node_mut().campaign()?;
            for _ in 0..ROUNDS_MAX {
                log.drive()?;
                if log.node_mut().is_leader() {
                    break;
                }
            }
            if !log.node_mut().is_leader() {
                return Err(QuorumError::Raft(raft::Error::ProposalDropped));
            }
        }
        tracing::info!(
            dir = %dir.display(),
            applied_index = log.applied_index,
            snapshot_index,
            voters = ?voters,
            "metadata log replayed"
        );
        Ok(log)
    }

    fn node_mut(&mut self) -> &mut QuorumNode {
        self.node
            .as_mut()
            .expect("the node is used directly only before start()")
    }

    /// Whether this open created the log (nothing was ever committed before).
    pub fn is_fresh(&self) -> bool {
        self.fresh
    }

    /// The incarnation this broker asked to be registered as.
    pub fn registered_incarnation(&self) -> u64 {
        self.registered_incarnation
    }

    pub fn set_registered_incarnation(&mut self, incarnation: u64) {
        self.registered_incarnation = incarnation;
    }

    /// Controlled shutdown began: stop asking to be unfenced.
    pub fn set_leaving(&mut self) {
        self.leaving = true;
    }

    /// The request this broker sends while the applied state has its own registration
    /// (this process's incarnation) fenced; None when there is nothing to ask.
    pub fn unfence_request(&self) -> Option<ControllerRequest> {
        let broker = self.state.control().broker(self.node_id)?;
        (broker.fenced
            && !self.leaving
            && self.registered_incarnation != 0
            && broker.incarnation == self.registered_incarnation)
            .then_some(ControllerRequest::Unfence {
                node: self.node_id,
                incarnation: broker.incarnation,
            })
    }

    pub fn node_id(&self) -> NodeId {
        self.node_id
    }

    pub fn voters(&self) -> &[NodeId] {
        &self.voters
    }

    /// Whether this node can commit synchronously now (start-up of a single voter).
    pub fn can_commit_now(&self) -> bool {
        self.driver.is_none() && self.voters.len() == 1
    }

    /// Hands the node to a [`QuorumDriver`] on this (glommio) thread: `peers` maps every
    /// voter's node id to its controller address; `listener` accepts the peers.
    pub fn start(
        &mut self,
        listener: Option<glommio::net::TcpListener>,
        peers: &BTreeMap<NodeId, SocketAddr>,
        tick: Duration,
    ) {
        let node = self.node.take().expect("started once");
        let peers: BTreeMap<u64, SocketAddr> = peers
            .iter()
            .map(|(&id, &address)| (raft_id(id), address))
            .collect();
        self.driver = Some(QuorumDriver::start(node, &peers, listener, tick));
    }

    fn driver(&self) -> &Rc<QuorumDriver> {
        self.driver.as_ref().expect("started")
    }

    /// Fired when something committed or the leader changed (after start).
    pub fn changed(&self) -> Rc<Event> {
        self.driver().changed_event()
    }

    pub fn is_leader(&self) -> bool {
        match (&self.driver, &self.node) {
            (Some(driver), _) => driver.is_leader(),
            (None, Some(node)) => node.is_leader(),
            (None, None) => false,
        }
    }

    /// The node leading the quorum (the active controller), if known.
    pub fn leader(&self) -> Option<NodeId> {
        let leader = match (&self.driver, &self.node) {
            (Some(driver), _) => driver.leader_id(),
            (None, Some(node)) => node.leader_id(),
            (None, None) => None,
        };
        leader.map(node_id_of)
    }

    pub fn applied_index(&self) -> u64 {
        self.applied_index
    }

    /// The index of the last entry in this node's log (applied or not).
    pub fn last_index(&self) -> u64 {
        match (&self.driver, &self.node) {
            (Some(driver), _) => driver.with_node(|node| node.last_index()),
            (None, Some(node)) => node.last_index(),
            (None, None) => 0,
        }
    }

    /// The term of the entry applied at `index`, while it is remembered.
    pub fn applied_term(&self, index: u64) -> Option<u64> {
        self.applied_terms
            .iter()
            .rev()
            .find(|(i, _)| *i == index)
            .map(|(_, term)| *term)
    }

    /// Whether `node` was heard from within `within_ms` (the leader's liveness view).
    pub fn heard_within(&self, node: NodeId, now_ms: u64, within_ms: u64) -> bool {
        if node == self.node_id {
            return true;
        }
        self.driver
            .as_ref()
            .and_then(|driver| driver.last_heard_ms(raft_id(node)))
            .is_some_and(|heard| now_ms.saturating_sub(heard) <= within_ms)
    }

    /// Whether a working quorum was in touch within `within_ms`: as the leader, a
    /// majority of voters (itself included) was heard; as a follower, the leader was
    /// (a leader that loses its majority steps down: Raft's check_quorum).
    pub fn quorum_heard_within(&self, now_ms: u64, within_ms: u64) -> bool {
        if self.is_leader() {
            let heard = self
                .voters
                .iter()
                .filter(|&&voter| self.heard_within(voter, now_ms, within_ms))
                .count();
            return heard > self.voters.len() / 2;
        }
        self.leader()
            .is_some_and(|leader| self.heard_within(leader, now_ms, within_ms))
    }

    /// Whether the leader has replicated to `node` everything committed (it has caught
    /// up with the metadata), per the leader's progress.
    pub fn caught_up(&self, node: NodeId) -> bool {
        let Some(driver) = &self.driver else {
            return node == self.node_id;
        };
        driver.with_node(|quorum| {
            let commit = quorum.commit_index();
            quorum
                .progress()
                .iter()
                .any(|&(id, matched)| id == raft_id(node) && matched >= commit)
        })
    }

    /// The quorum for DescribeQuorum, as this node sees it (the leader knows every
    /// voter's progress; a follower only its own).
    pub fn describe(&self) -> QuorumDescription {
        let now_ms = weir_storage::now_ms();
        let (leader, term, commit, last, progress) = match (&self.driver, &self.node) {
            (Some(driver), _) => driver.with_node(|node| {
                (
                    node.leader_id(),
                    node.term(),
                    node.commit_index(),
                    node.last_index(),
                    node.progress(),
                )
            }),
            (None, Some(node)) => (
                node.leader_id(),
                node.term(),
                node.commit_index(),
                node.last_index(),
                node.progress(),
            ),
            (None, None) => (None, 0, 0, 0, Vec::new()),
        };
        let voters = self
            .voters
            .iter()
            .map(|&voter| {
                let end = if voter == self.node_id {
                    Some(last)
                } else {
                    progress
                        .iter()
                        .find(|(id, _)| *id == raft_id(voter))
                        .map(|(_, matched)| *matched)
                };
                let heard = if voter == self.node_id {
                    Some(now_ms)
                } else {
                    self.driver
                        .as_ref()
                        .and_then(|driver| driver.last_heard_ms(raft_id(voter)))
                        .map(|ms| ms as i64)
                };
                VoterProgress {
                    node_id: voter,
                    log_end_offset: end.map_or(-1, |end| end as i64),
                    last_fetch_timestamp_ms: heard.unwrap_or(-1),
                    last_caught_up_timestamp_ms: if end.is_some_and(|end| end >= commit) {
                        heard.unwrap_or(-1)
                    } else {
                        -1
                    },
                }
            })
            .collect();
        QuorumDescription {
            leader_node_id: leader.map_or(-1, node_id_of),
            leader_epoch: term as i32,
            high_watermark: commit as i64,
            voters,
        }
    }

    pub fn state(&self) -> &ClusterState {
        &self.state
    }

    /// Heartbeat bookkeeping that is not part of the log.
    pub fn state_mut(&mut self) -> &mut ClusterState {
        &mut self.state
    }

    /// Commits `batch` as one entry and applies it; returns once it is applied. Only a
    /// single voter before [`Self::start`] (start-up) commits this way.
    pub fn commit(&mut self, batch: Vec<MetadataRecord>) -> Result<(), QuorumError> {
        if batch.is_empty() {
            return Ok(());
        }
        assert!(
            self.can_commit_now(),
            "synchronous commits are for start-up"
        );
        if let Some(reason) = &self.failed {
            return Err(QuorumError::Stopped(reason.clone()));
        }
        let result = self.commit_unchecked(batch);
        if let Err(error) = &result {
            self.fail(error);
        }
        result
    }

    fn fail(&mut self, error: &QuorumError) {
        tracing::error!(%error, "the metadata log stopped taking changes until the broker restarts");
        self.failed = Some(error.to_string());
    }

    fn commit_unchecked(&mut self, batch: Vec<MetadataRecord>) -> Result<(), QuorumError> {
        let data = serde_json::to_vec(&batch).expect("metadata records always serialize");
        self.node_mut().propose(data)?;
        let index = self.node_mut().last_index();
        for _ in 0..ROUNDS_MAX {
            self.drive()?;
            if self.applied_index >= index {
                self.maybe_compact()?;
                return Ok(());
            }
        }
        Err(QuorumError::Raft(raft::Error::ProposalDropped))
    }

    /// Proposes `batch` as one entry (after start): a leader answers the (index, term)
    /// to wait for in [`Self::applied_term`]; a follower forwards it and answers None.
    pub fn propose(&mut self, batch: &[MetadataRecord]) -> Result<Option<(u64, u64)>, QuorumError> {
        if let Some(reason) = &self.failed {
            return Err(QuorumError::Stopped(reason.clone()));
        }
        let data = serde_json::to_vec(batch).expect("metadata records always serialize");
        self.driver().propose(data)
    }

    /// Applies what the driver committed since the last call (after start).
    pub fn apply_committed(&mut self) -> Result<Applied, QuorumError> {
        let committed = self.driver().take_committed();
        let applied = self.apply(committed);
        match applied {
            Ok(applied) => {
                if applied.entries > 0
                    && let Err(error) = self.maybe_compact()
                {
                    self.fail(&error);
                }
                Ok(applied)
            }
            Err(error) => {
                self.fail(&error);
                Err(error)
            }
        }
    }

    /// One round of Ready before start: persist, apply what committed.
    fn drive(&mut self) -> Result<(), QuorumError> {
        let ready = self.node_mut().handle_ready()?;
        debug_assert!(
            ready.messages.is_empty() || self.voters.len() > 1,
            "a single voter sends nothing"
        );
        self.apply(ready.committed)?;
        Ok(())
    }

    fn apply(&mut self, committed: Vec<Committed>) -> Result<Applied, QuorumError> {
        let mut applied = Applied::default();
        for committed in committed {
            match committed {
                Committed::Record { index, term, data } => {
                    for record in decode_batch(index, &data)? {
                        if let MetadataRecord::Request(request) = &record {
                            applied.requests.push(request.clone());
                        }
                        self.state.apply(&record);
                    }
                    self.applied_index = index;
                    self.applied_terms.push_back((index, term));
                    if self.applied_terms.len() > APPLIED_TERMS_KEPT {
                        self.applied_terms.pop_front();
                    }
                }
                Committed::Empty { index, term } => {
                    self.applied_index = index;
                    self.applied_terms.push_back((index, term));
                    if self.applied_terms.len() > APPLIED_TERMS_KEPT {
                        self.applied_terms.pop_front();
                    }
                }
                Committed::Snapshot { index, data } => {
                    let control = self.state.control().config_copy();
                    self.state = ClusterState::restore(control, &data).map_err(|error| {
                        QuorumError::Corrupt {
                            path: format!("metadata snapshot at {index}").into(),
                            reason: error.to_string(),
                        }
                    })?;
                    self.applied_index = index;
                    self.snapshot_index = index;
                }
            }
            applied.entries += 1;
        }
        Ok(applied)
    }

    fn maybe_compact(&mut self) -> Result<(), QuorumError> {
        let applied = self.applied_index;
        if applied >= self.snapshot_index + SNAPSHOT_EVERY_ENTRIES {
            let data = self.state.snapshot();
            match (&self.driver, &mut self.node) {
                (Some(driver), _) => driver.compact(applied, data)?,
                (None, Some(node)) => node.compact(applied, data)?,
                (None, None) => return Ok(()),
            }
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

    const TEST_TIMING: QuorumTiming = QuorumTiming {
        election_ticks: 10,
        heartbeat_ticks: 2,
    };

    fn open(dir: &Path) -> MetadataLog {
        MetadataLog::open(dir, 0, &[0], TEST_TIMING, ReplicationControl::new(9_000)).expect("open")
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
    fn only_this_processs_fenced_registration_asks_to_be_unfenced() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut log = open(dir.path());
        register(&mut log);
        log.set_registered_incarnation(1);
        assert_eq!(
            log.unfence_request(),
            None,
            "registered brokers start unfenced"
        );
        let fence =
            MetadataRecord::Replication(crate::replication::control::MetadataChange::FenceBroker {
                node: 0,
            });
        log.commit(vec![fence]).expect("commit");
        assert_eq!(
            log.unfence_request(),
            Some(ControllerRequest::Unfence {
                node: 0,
                incarnation: 1
            })
        );
        // A restarted process (a newer incarnation, not registered yet) does not ask on
        // behalf of its predecessor's registration.
        log.set_registered_incarnation(2);
        assert_eq!(log.unfence_request(), None);
        // Nor does a broker in controlled shutdown.
        log.set_registered_incarnation(1);
        log.set_leaving();
        assert_eq!(log.unfence_request(), None);
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
                granted: None,
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
