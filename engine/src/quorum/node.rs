//! One member of the controller quorum: `raft::RawNode` over [`DiskStorage`], driven by
//! its caller (ticks, peer messages, proposals) and answering what to send and apply.

use std::path::Path;

use protobuf::Message as _;
use raft::eraftpb::{EntryType, Message};
use raft::{Config, RawNode, StateRole};

use super::{DiskStorage, QuorumError, logger};

/// Raft's timing in ticks (the caller ticks every `tick_ms`).
#[derive(Clone, Copy, Debug)]
pub struct QuorumTiming {
    /// A follower campaigns after a randomized [election_ticks, 2 × election_ticks) of
    /// silence from the leader.
    pub election_ticks: usize,
    pub heartbeat_ticks: usize,
}

/// What the caller does after [`QuorumNode::handle_ready`].
#[derive(Debug, Default)]
pub struct Ready {
    /// To send to peers (`Message::to`), in order.
    pub messages: Vec<Message>,
    /// To apply to the state machine, in order.
    pub committed: Vec<Committed>,
}

/// A committed step of the log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Committed {
    /// A proposed record; `term` tells a proposer whether its own entry committed at
    /// `index` (a deposed leader's entry is replaced by the next leader's).
    Record {
        index: u64,
        term: u64,
        data: Vec<u8>,
    },
    /// An entry without a record (a new leader's first entry): nothing to apply, but
    /// the log has reached `index`.
    Empty { index: u64, term: u64 },
    /// The leader's snapshot replaced the log: restore the state machine from `data`.
    Snapshot { index: u64, data: Vec<u8> },
}

/// A member of the quorum.
pub struct QuorumNode {
    raw: RawNode<DiskStorage>,
}

/// A Raft message as bytes for the wire.
pub fn encode_message(message: &Message) -> Vec<u8> {
    message
        .write_to_bytes()
        .expect("a raft Message always encodes")
}

/// A Raft message from the wire; damaged bytes are an error, never a panic.
pub fn decode_message(bytes: &[u8]) -> Result<Message, protobuf::ProtobufError> {
    Message::parse_from_bytes(bytes)
}

impl QuorumNode {
    /// Opens this node's quorum log in `dir` (bootstrapping it with `voters` when new).
    /// The state machine first restores from [`Self::snapshot`], then applies what
    /// [`Self::handle_ready`] answers.
    pub fn open(
        dir: &Path,
        id: u64,
        voters: &[u64],
        timing: QuorumTiming,
    ) -> Result<QuorumNode, QuorumError> {
        assert!(
            voters.contains(&id),
            "node {id} is not one of the voters {voters:?}"
        );
        let storage = DiskStorage::open(dir, voters)?;
        let applied = storage.latest_snapshot().get_metadata().index;
        let config = Config {
            id,
            election_tick: timing.election_ticks,
            heartbeat_tick: timing.heartbeat_ticks,
            applied,
            // A partitioned minority leader steps down, and a rejoining node does not
            // disrupt a healthy leader with a higher term.
            check_quorum: true,
            pre_vote: true,
            ..Config::default()
        };
        config.validate()?;
        let raw = RawNode::new(&config, storage, &logger(id))?;
        Ok(QuorumNode { raw })
    }

    /// The state machine bytes of the latest snapshot, and its index (0: empty).
    pub fn snapshot(&self) -> (u64, Vec<u8>) {
        let snapshot = self.raw.store().latest_snapshot();
        (snapshot.get_metadata().index, snapshot.get_data().to_vec())
    }

    pub fn id(&self) -> u64 {
        self.raw.raft.id
    }

    pub fn is_leader(&self) -> bool {
        self.raw.raft.state == StateRole::Leader
    }

    /// The leader this node knows of, if any.
    pub fn leader_id(&self) -> Option<u64> {
        let leader = self.raw.raft.leader_id;
        (leader != raft::INVALID_ID).then_some(leader)
    }

    /// The index of the last record handed out for applying.
    pub fn applied_index(&self) -> u64 {
        self.raw.raft.raft_log.applied
    }

    pub fn term(&self) -> u64 {
        self.raw.raft.term
    }

    /// The index of the last committed entry.
    pub fn commit_index(&self) -> u64 {
        self.raw.raft.raft_log.committed
    }

    /// The index of the last entry in the log (a proposal just made is at this index).
    pub fn last_index(&self) -> u64 {
        self.raw.raft.raft_log.last_index()
    }

    /// The leader's view of each voter's replication: (raft id, matched index). Empty
    /// on a follower.
    pub fn progress(&self) -> Vec<(u64, u64)> {
        if !self.is_leader() {
            return Vec::new();
        }
        let mut progress: Vec<(u64, u64)> = self
            .raw
            .raft
            .prs()
            .iter()
            .map(|(&id, progress)| (id, progress.matched))
            .collect();
        progress.sort_unstable();
        progress
    }

    /// Starts an election now (a single voter elects itself at once).
    pub fn campaign(&mut self) -> Result<(), QuorumError> {
        self.raw.campaign().map_err(QuorumError::from)
    }

    /// A peer could not be reached: Raft probes it instead of streaming to it.
    pub fn report_unreachable(&mut self, id: u64) {
        self.raw.report_unreachable(id);
    }

    pub fn tick(&mut self) {
        self.raw.tick();
    }

    /// A message from a peer. Messages Raft keeps local are refused; a proposal a
    /// follower forwarded to this leader is taken (followers forward what they propose).
    pub fn step(&mut self, message: Message) -> Result<(), QuorumError> {
        if raft::raw_node::is_local_msg(message.get_msg_type()) {
            return Err(QuorumError::Raft(raft::Error::StepLocalMsg));
        }
        match self.raw.step(message) {
            // A message from a node outside the configuration: nothing to do.
            Err(raft::Error::StepPeerNotFound) => Ok(()),
            other => other.map_err(QuorumError::from),
        }
    }

    /// Proposes a record: a leader appends it, a follower forwards it to the leader it
    /// knows (ProposalDropped without one).
    pub fn propose(&mut self, data: Vec<u8>) -> Result<(), QuorumError> {
        self.raw
            .propose(Vec::new(), data)
            .map_err(QuorumError::from)
    }

    /// Compacts the log into a snapshot of the state machine at `applied_index`.
    pub fn compact(&mut self, applied_index: u64, data: Vec<u8>) -> Result<(), QuorumError> {
        self.raw.mut_store().compact(applied_index, data)
    }

    /// Persists what Raft produced, then answers the messages to send and the records
    /// to apply (`raft`'s Ready / LightReady protocol, synchronously).
    pub fn handle_ready(&mut self) -> Result<Ready, QuorumError> {
        let mut out = Ready::default();
        if !self.raw.has_ready() {
            return Ok(out);
        }
        let mut ready = self.raw.ready();
        // A leader may send these before its own entries are durable (Raft allows it).
        out.messages.extend(ready.take_messages());
        if !ready.snapshot().is_empty() {
            let snapshot = ready.snapshot().clone();
            let (index, data) = (snapshot.get_metadata().index, snapshot.get_data().to_vec());
            self.raw.mut_store().apply_snapshot(snapshot)?;
            out.committed.push(Committed::Snapshot { index, data });
        }
        collect_committed(ready.take_committed_entries(), &mut out.committed);
        self.raw.mut_store().append(ready.entries())?;
        if let Some(hard_state) = ready.hs() {
            self.raw.mut_store().set_hard_state(hard_state.clone())?;
        }
        out.messages.extend(ready.take_persisted_messages());
        let mut light = self.raw.advance(ready);
        if let Some(commit) = light.commit_index() {
            self.raw.mut_store().set_commit(commit)?;
        }
        out.messages.extend(light.take_messages());
        collect_committed(light.take_committed_entries(), &mut out.committed);
        self.raw.advance_apply();
        Ok(out)
    }
}

fn collect_committed(entries: Vec<raft::eraftpb::Entry>, out: &mut Vec<Committed>) {
    for entry in entries {
        // A new leader's empty entry (and configuration changes, which weir does not
        // make) carry no record.
        if entry.get_entry_type() == EntryType::EntryNormal && !entry.get_data().is_empty() {
            out.push(Committed::Record {
                index: entry.index,
                term: entry.term,
                data: entry.get_data().to_vec(),
            });
        } else {
            out.push(Committed::Empty {
                index: entry.index,
                term: entry.term,
            });
        }
    }
}
