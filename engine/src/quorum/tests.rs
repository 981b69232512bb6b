//! Goal: the quorum applies the same records in the same order on every node through
//! elections, crashes with restarts from disk, partitions, compaction and torn log
//! tails. Method: real `QuorumNode`s over temp dirs, driven tick by tick by a test
//! network that encodes every message to bytes and back; the state machine is the list
//! of applied records (its snapshot: the records joined by newlines).

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use raft::eraftpb::Message;

use super::*;

const TIMING: QuorumTiming = QuorumTiming {
    election_ticks: 10,
    heartbeat_ticks: 2,
};

struct Cluster {
    dirs: BTreeMap<u64, tempfile::TempDir>,
    voters: Vec<u64>,
    nodes: BTreeMap<u64, Option<QuorumNode>>,
    /// Each node's state machine: the records applied since its last restore.
    state: BTreeMap<u64, Vec<String>>,
    in_flight: VecDeque<Message>,
    /// Nodes cut off from everyone.
    isolated: BTreeSet<u64>,
}

fn encode_state(records: &[String]) -> Vec<u8> {
    records.join("\n").into_bytes()
}

fn decode_state(data: &[u8]) -> Vec<String> {
    if data.is_empty() {
        return Vec::new();
    }
    String::from_utf8(data.to_vec())
        .expect("utf-8")
        .split('\n')
        .map(str::to_string)
        .collect()
}

impl Cluster {
    fn new(voters: &[u64]) -> Cluster {
        let mut cluster = Cluster {
            dirs: voters
                .iter()
                .map(|&id| (id, tempfile::tempdir().expect("tempdir")))
                .collect(),
            voters: voters.to_vec(),
            nodes: BTreeMap::new(),
            state: BTreeMap::new(),
            in_flight: VecDeque::new(),
            isolated: BTreeSet::new(),
        };
        for &id in voters {
            cluster.start(id);
        }
        cluster
    }

    fn start(&mut self, id: u64) {
        let node = QuorumNode::open(self.dirs[&id].path(), id, &self.voters, TIMING).expect("open");
        self.state.insert(id, decode_state(&node.snapshot().1));
        self.nodes.insert(id, Some(node));
    }

    fn crash(&mut self, id: u64) {
        self.nodes.insert(id, None);
        self.in_flight.retain(|m| m.to != id);
    }

    fn node(&mut self, id: u64) -> &mut QuorumNode {
        self.nodes
            .get_mut(&id)
            .and_then(Option::as_mut)
            .expect("running")
    }

    fn leader(&self) -> Option<u64> {
        let leaders: Vec<u64> = self
            .nodes
            .iter()
            .filter(|(id, node)| {
                !self.isolated.contains(id) && node.as_ref().is_some_and(QuorumNode::is_leader)
            })
            .map(|(&id, _)| id)
            .collect();
        assert!(
            leaders.len() <= 1,
            "two leaders on the majority side: {leaders:?}"
        );
        leaders.first().copied()
    }

    /// One round: every running node ticks, handles its Ready, and messages are delivered.
    fn round(&mut self) {
        let ids: Vec<u64> = self.nodes.keys().copied().collect();
        for &id in &ids {
            let Some(node) = self.nodes.get_mut(&id).and_then(Option::as_mut) else {
                continue;
            };
            node.tick();
        }
        for _ in 0..4 {
            for &id in &ids {
                let Some(node) = self.nodes.get_mut(&id).and_then(Option::as_mut) else {
                    continue;
                };
                let ready = node.handle_ready().expect("ready");
                let state = self.state.get_mut(&id).expect("state");
                for committed in ready.committed {
                    match committed {
                        Committed::Record { data, .. } => {
                            state.push(String::from_utf8(data).expect("utf-8"))
                        }
                        Committed::Snapshot { data, .. } => *state = decode_state(&data),
                        Committed::Empty { .. } => {}
                    }
                }
                self.in_flight.extend(ready.messages);
            }
            while let Some(message) = self.in_flight.pop_front() {
                if self.isolated.contains(&message.from) || self.isolated.contains(&message.to) {
                    continue;
                }
                let wire = encode_message(&message);
                let message = decode_message(&wire).expect("decodes");
                if let Some(Some(node)) = self.nodes.get_mut(&message.to) {
                    node.step(message).expect("step");
                }
            }
        }
    }

    fn run_until(&mut self, rounds: usize, mut done: impl FnMut(&Cluster) -> bool) {
        for _ in 0..rounds {
            if done(self) {
                return;
            }
            self.round();
        }
        assert!(done(self), "not reached within {rounds} rounds");
    }

    fn elect(&mut self) -> u64 {
        self.run_until(200, |c| c.leader().is_some());
        self.leader().expect("elected")
    }

    fn propose(&mut self, records: impl IntoIterator<Item = String>) {
        let leader = self.elect();
        for record in records {
            self.node(leader)
                .propose(record.into_bytes())
                .expect("the leader accepts");
        }
    }

    fn settle(&mut self) {
        for _ in 0..30 {
            self.round();
        }
    }

    fn states_of(&self, ids: &[u64]) -> Vec<Vec<String>> {
        ids.iter().map(|id| self.state[id].clone()).collect()
    }
}

fn records(range: std::ops::Range<usize>) -> Vec<String> {
    range.map(|i| format!("record-{i}")).collect()
}

#[test]
fn three_voters_elect_one_leader_and_apply_every_record_in_order() {
    let mut cluster = Cluster::new(&[1, 2, 3]);
    cluster.propose(records(0..50));
    cluster.settle();
    assert_eq!(cluster.states_of(&[1, 2, 3]), vec![records(0..50); 3]);
}

#[test]
fn a_restarted_node_replays_its_log_from_disk_and_catches_up() {
    let mut cluster = Cluster::new(&[1, 2, 3]);
    cluster.propose(records(0..20));
    cluster.settle();
    let leader = cluster.elect();
    let follower = [1, 2, 3]
        .into_iter()
        .find(|&id| id != leader)
        .expect("a follower");
    cluster.crash(follower);
    cluster.propose(records(20..40));
    cluster.settle();
    cluster.start(follower);
    assert!(
        cluster.state[&follower].is_empty(),
        "nothing applied before the replay"
    );
    cluster.settle();
    assert_eq!(cluster.states_of(&[1, 2, 3]), vec![records(0..40); 3]);
}

#[test]
fn when_the_leader_dies_the_majority_elects_another_and_goes_on() {
    let mut cluster = Cluster::new(&[1, 2, 3]);
    cluster.propose(records(0..10));
    cluster.settle();
    let old = cluster.elect();
    cluster.crash(old);
    let new = cluster.elect();
    assert_ne!(new, old);
    cluster.propose(records(10..20));
    cluster.settle();
    cluster.start(old);
    cluster.settle();
    assert_eq!(cluster.states_of(&[1, 2, 3]), vec![records(0..20); 3]);
}

#[test]
fn a_cut_off_leader_commits_nothing_and_takes_the_majoritys_log_after_healing() {
    let mut cluster = Cluster::new(&[1, 2, 3]);
    cluster.propose(records(0..5));
    cluster.settle();
    let old = cluster.elect();
    cluster.isolated.insert(old);
    cluster
        .node(old)
        .propose(b"lost".to_vec())
        .expect("still believes it leads");
    let new = cluster.elect();
    assert_ne!(new, old);
    cluster.propose(records(5..10));
    cluster.settle();
    assert!(
        !cluster.node(old).is_leader(),
        "check_quorum: a leader without a majority steps down"
    );
    assert_eq!(
        cluster.state[&old],
        records(0..5),
        "the cut-off node applied nothing new"
    );
    cluster.isolated.clear();
    cluster.settle();
    assert_eq!(cluster.states_of(&[1, 2, 3]), vec![records(0..10); 3]);
}

#[test]
fn a_node_behind_a_compacted_log_catches_up_from_the_snapshot() {
    let mut cluster = Cluster::new(&[1, 2, 3]);
    cluster.propose(records(0..10));
    cluster.settle();
    let leader = cluster.elect();
    let behind = [1, 2, 3]
        .into_iter()
        .find(|&id| id != leader)
        .expect("a follower");
    cluster.crash(behind);
    cluster.propose(records(10..60));
    cluster.settle();
    for id in [1, 2, 3].into_iter().filter(|&id| id != behind) {
        let state = encode_state(&cluster.state[&id]);
        let node = cluster.node(id);
        let applied = node.applied_index();
        node.compact(applied, state).expect("compact");
        assert_eq!(node.snapshot().0, applied);
    }
    cluster.start(behind);
    cluster.settle();
    assert_eq!(cluster.states_of(&[1, 2, 3]), vec![records(0..60); 3]);
    // The compacted nodes restart from their snapshot plus the entries after it.
    cluster.propose(records(60..65));
    cluster.settle();
    cluster.crash(leader);
    cluster.start(leader);
    cluster.settle();
    assert_eq!(cluster.state[&leader], records(0..65));
}

#[test]
fn a_single_voter_is_a_quorum_of_one() {
    let mut cluster = Cluster::new(&[7]);
    cluster.propose(records(0..3));
    cluster.settle();
    assert_eq!(cluster.state[&7], records(0..3));
    cluster.crash(7);
    cluster.start(7);
    cluster.settle();
    assert_eq!(cluster.state[&7], records(0..3));
}

#[test]
fn a_torn_log_tail_is_dropped_at_open() {
    let mut cluster = Cluster::new(&[1, 2, 3]);
    cluster.propose(records(0..10));
    cluster.settle();
    let leader = cluster.elect();
    let follower = [1, 2, 3]
        .into_iter()
        .find(|&id| id != leader)
        .expect("a follower");
    cluster.crash(follower);
    let path = cluster.dirs[&follower].path().join("entries.log");
    let mut bytes = std::fs::read(&path).expect("read");
    let good = bytes.len() as u64;
    // A record header promising 50 bytes, of which 3 made it.
    bytes.extend_from_slice(&[0, 0, 0, 50, 9, 9, 9, 9, 1, 2, 3]);
    std::fs::write(&path, bytes).expect("write");
    cluster.start(follower);
    assert_eq!(
        std::fs::metadata(&path).expect("stat").len(),
        good,
        "the torn record is cut off"
    );
    cluster.settle();
    assert_eq!(cluster.states_of(&[1, 2, 3]), vec![records(0..10); 3]);
}

#[test]
fn a_quorum_log_refuses_a_different_voter_set() {
    let dir = tempfile::tempdir().expect("tempdir");
    drop(QuorumNode::open(dir.path(), 1, &[1, 2, 3], TIMING).expect("open"));
    let error = QuorumNode::open(dir.path(), 1, &[1, 2], TIMING)
        .err()
        .expect("refused");
    assert!(
        matches!(error, QuorumError::VotersChanged { .. }),
        "{error}"
    );
    assert!(
        error.to_string().contains("controller.quorum.voters"),
        "{error}"
    );
}

#[test]
fn damaged_message_bytes_are_an_error() {
    assert!(decode_message(&[0xff, 0xff, 0xff]).is_err());
}
