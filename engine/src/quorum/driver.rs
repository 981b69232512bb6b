//! Runs a [`QuorumNode`] among its voters on a glommio executor: a tick timer, one
//! connection per peer for sending, accepted connections for receiving, proposals.
//!
//! ```text
//!  tick_loop ── every tick ──► node.tick() ─┐
//!  read_loop (per accepted conn) ─ frames ──► node.step(message) ─┤─► process_ready():
//!  propose(data) ──────────────────────────► node.propose() ─┘      persist · messages to outboxes · committed
//!  writer_loop (per peer) ◄── outbox (bounded) ◄─────────────────────┘    (taken by the state machine's owner)
//! ```
//!
//! Sending is fire-and-forget, as Raft expects of its transport: a full outbox, a peer
//! that is down or a broken connection drops frames (the peer is reported unreachable
//! and Raft retransmits what it still needs). Each connection carries one direction,
//! frames as in [`super::transport`]; a damaged frame closes that connection.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;

use futures::io::{AsyncReadExt, AsyncWriteExt};
use glommio::channels::local_channel::{self, LocalReceiver, LocalSender};
use glommio::net::{TcpListener, TcpStream};
use raft::eraftpb::Message;

use super::transport::{FrameDecoder, encode_frame};
use super::{Committed, QuorumError, QuorumNode};
use crate::event::Event;

/// Frames waiting for one peer at most; more are dropped.
pub const OUTBOX_FRAMES_MAX: usize = 1024;
/// Pause before reconnecting to a peer that refused or broke a connection.
pub const RECONNECT_BACKOFF_MS: u64 = 100;
const READ_CHUNK_BYTES: usize = 64 << 10;

/// A quorum member running on this executor.
pub struct QuorumDriver {
    node: RefCell<QuorumNode>,
    outboxes: BTreeMap<u64, LocalSender<Vec<u8>>>,
    committed: RefCell<Vec<Committed>>,
    /// Fired after every Ready that committed something (or changed the leader).
    changed: Rc<Event>,
    /// When each peer was last heard from (a Raft message arrived), wall-clock ms: the
    /// active controller's view of which brokers are alive (combined mode).
    last_heard_ms: RefCell<BTreeMap<u64, u64>>,
}

impl QuorumDriver {
    /// Starts the driver's tasks: `peers` maps every voter's Raft id (this node's too)
    /// to its quorum address; `listener` accepts the peers' connections (None: a single
    /// voter, which has no peers).
    pub fn start(
        node: QuorumNode,
        peers: &BTreeMap<u64, SocketAddr>,
        listener: Option<TcpListener>,
        tick: Duration,
    ) -> Rc<QuorumDriver> {
        let mut outboxes = BTreeMap::new();
        let mut writers = Vec::new();
        for (&id, &address) in peers.iter().filter(|(id, _)| **id != node.id()) {
            let (sender, receiver) = local_channel::new_bounded(OUTBOX_FRAMES_MAX);
            outboxes.insert(id, sender);
            writers.push((id, address, receiver));
        }
        let driver = Rc::new(QuorumDriver {
            node: RefCell::new(node),
            outboxes,
            committed: RefCell::new(Vec::new()),
            changed: Event::new(),
            last_heard_ms: RefCell::new(BTreeMap::new()),
        });
        for (id, address, receiver) in writers {
            glommio::spawn_local(writer_loop(driver.clone(), id, address, receiver)).detach();
        }
        if let Some(listener) = listener {
            glommio::spawn_local(accept_loop(driver.clone(), listener)).detach();
        }
        glommio::spawn_local(tick_loop(driver.clone(), tick)).detach();
        driver
    }

    pub fn is_leader(&self) -> bool {
        self.node.borrow().is_leader()
    }

    pub fn leader_id(&self) -> Option<u64> {
        self.node.borrow().leader_id()
    }

    /// Fired when something committed or the leader changed; re-check after waking.
    pub fn changed(&self) -> &Event {
        &self.changed
    }

    /// The same event, to wait on without borrowing the driver.
    pub fn changed_event(&self) -> Rc<Event> {
        self.changed.clone()
    }

    /// Proposes `data`; a leader answers the (index, term) it will have if committed, a
    /// follower forwards it to the leader and answers None.
    pub fn propose(&self, data: Vec<u8>) -> Result<Option<(u64, u64)>, QuorumError> {
        let placed = {
            let mut node = self.node.borrow_mut();
            node.propose(data)?;
            node.is_leader().then(|| (node.last_index(), node.term()))
        };
        self.process_ready();
        Ok(placed)
    }

    /// Reads the node (for descriptions and progress).
    pub fn with_node<R>(&self, read: impl FnOnce(&QuorumNode) -> R) -> R {
        read(&self.node.borrow())
    }

    /// Compacts the log into a snapshot of the state machine at `applied_index`.
    pub fn compact(&self, applied_index: u64, data: Vec<u8>) -> Result<(), QuorumError> {
        self.node.borrow_mut().compact(applied_index, data)
    }

    /// When peer `id` (a Raft id) was last heard from, wall-clock ms.
    pub fn last_heard_ms(&self, id: u64) -> Option<u64> {
        self.last_heard_ms.borrow().get(&id).copied()
    }

    /// What committed since the last call, in log order.
    pub fn take_committed(&self) -> Vec<Committed> {
        std::mem::take(&mut *self.committed.borrow_mut())
    }

    fn step(&self, message: Message) {
        let now_ms = weir_storage::now_ms().max(0) as u64;
        self.last_heard_ms.borrow_mut().insert(message.from, now_ms);
        if let Err(error) = self.node.borrow_mut().step(message) {
            tracing::debug!(%error, "a quorum message was refused");
        }
        self.process_ready();
    }

    fn process_ready(&self) {
        let leader_before = self.leader_id();
        let ready = match self.node.borrow_mut().handle_ready() {
            Ok(ready) => ready,
            Err(error) => {
                tracing::error!(%error, "the quorum log could not persist; this voter stops acting on new input");
                return;
            }
        };
        for message in ready.messages {
            if let Some(outbox) = self.outboxes.get(&message.to) {
                // A full outbox drops the frame; Raft retransmits.
                let _ = outbox.try_send(encode_frame(&message));
            }
        }
        let committed = !ready.committed.is_empty();
        self.committed.borrow_mut().extend(ready.committed);
        if committed || self.leader_id() != leader_before {
            self.changed.notify_all();
        }
    }

    fn report_unreachable(&self, id: u64) {
        self.node.borrow_mut().report_unreachable(id);
    }
}

async fn tick_loop(driver: Rc<QuorumDriver>, tick: Duration) {
    loop {
        glommio::timer::sleep(tick).await;
        driver.node.borrow_mut().tick();
        driver.process_ready();
    }
}

async fn accept_loop(driver: Rc<QuorumDriver>, listener: TcpListener) {
    loop {
        match listener.accept().await {
            Ok(stream) => {
                glommio::spawn_local(read_loop(driver.clone(), stream)).detach();
            }
            Err(error) => {
                tracing::warn!(%error, "accepting a quorum connection failed");
                glommio::timer::sleep(Duration::from_millis(10)).await;
            }
        }
    }
}

async fn read_loop(driver: Rc<QuorumDriver>, mut stream: TcpStream) {
    let mut decoder = FrameDecoder::default();
    let mut buffer = vec![0u8; READ_CHUNK_BYTES];
    loop {
        let read = match stream.read(&mut buffer).await {
            Ok(0) | Err(_) => return,
            Ok(read) => read,
        };
        decoder.extend(&buffer[..read]);
        loop {
            match decoder.next_message() {
                Ok(Some(message)) => driver.step(message),
                Ok(None) => break,
                Err(error) => {
                    tracing::warn!(%error, peer = ?stream.peer_addr().ok(), "closing a quorum connection");
                    return;
                }
            }
        }
    }
}

async fn writer_loop(
    driver: Rc<QuorumDriver>,
    id: u64,
    address: SocketAddr,
    outbox: LocalReceiver<Vec<u8>>,
) {
    let mut stream: Option<TcpStream> = None;
    while let Some(frame) = outbox.recv().await {
        if stream.is_none() {
            match TcpStream::connect(address).await {
                Ok(connected) => {
                    let _ = connected.set_nodelay(true);
                    stream = Some(connected);
                }
                Err(error) => {
                    tracing::debug!(peer = id, %address, %error, "quorum peer unreachable");
                    driver.report_unreachable(id);
                    glommio::timer::sleep(Duration::from_millis(RECONNECT_BACKOFF_MS)).await;
                    continue;
                }
            }
        }
        let connection = stream.as_mut().expect("connected above");
        if let Err(error) = connection.write_all(&frame).await {
            tracing::debug!(peer = id, %address, %error, "quorum connection broke");
            stream = None;
            driver.report_unreachable(id);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc;
    use std::time::Instant;

    use super::*;
    use crate::quorum::QuorumTiming;

    // Elections after 1–2 s of silence: a loaded CI machine must not depose a healthy
    // leader while the test's proposals are in flight.
    const TIMING: QuorumTiming = QuorumTiming {
        election_ticks: 50,
        heartbeat_ticks: 5,
    };

    fn free_addresses(count: usize) -> Vec<SocketAddr> {
        let listeners: Vec<std::net::TcpListener> = (0..count)
            .map(|_| std::net::TcpListener::bind("127.0.0.1:0").expect("bind"))
            .collect();
        listeners
            .iter()
            .map(|l| l.local_addr().expect("address"))
            .collect()
    }

    /// Runs voter `id` for `run_for`, proposing `records` whenever it leads and has not
    /// yet seen them applied; answers what it applied.
    fn run_voter(
        id: u64,
        dir: std::path::PathBuf,
        peers: BTreeMap<u64, SocketAddr>,
        start_after: Duration,
        run_for: Duration,
        records: Vec<String>,
    ) -> Vec<String> {
        glommio::LocalExecutorBuilder::new(glommio::Placement::Unbound)
            .io_memory(512 << 10)
            .make()
            .expect("an executor")
            .run(async move {
                glommio::timer::sleep(start_after).await;
                let voters: Vec<u64> = peers.keys().copied().collect();
                let node = QuorumNode::open(&dir, id, &voters, TIMING).expect("open");
                let listener = TcpListener::bind(peers[&id]).expect("bind the quorum address");
                let driver =
                    QuorumDriver::start(node, &peers, Some(listener), Duration::from_millis(20));
                let mut applied = Vec::new();
                let mut proposed = false;
                let deadline = Instant::now() + run_for;
                while Instant::now() < deadline {
                    if driver.is_leader() && !proposed {
                        for record in &records {
                            driver
                                .propose(record.clone().into_bytes())
                                .expect("the leader accepts");
                        }
                        proposed = true;
                    }
                    let listen = driver.changed().listen();
                    let timer = glommio::timer::sleep(Duration::from_millis(20));
                    futures::pin_mut!(listen, timer);
                    futures::future::select(listen, timer).await;
                    for committed in driver.take_committed() {
                        if let Committed::Record { data, .. } = committed {
                            applied.push(String::from_utf8(data).expect("utf-8"));
                        }
                    }
                }
                applied
            })
    }

    #[test]
    fn three_voters_over_tcp_elect_a_leader_and_apply_the_same_records() {
        let addresses = free_addresses(3);
        let peers: BTreeMap<u64, SocketAddr> = (1..=3).zip(addresses).collect();
        let records: Vec<String> = (0..20).map(|i| format!("record-{i}")).collect();
        let dirs: Vec<tempfile::TempDir> = (0..3)
            .map(|_| tempfile::tempdir().expect("tempdir"))
            .collect();
        let (sender, receiver) = mpsc::channel();
        let threads: Vec<_> = (1..=3u64)
            .map(|id| {
                let (peers, records, sender) = (peers.clone(), records.clone(), sender.clone());
                let dir = dirs[id as usize - 1].path().to_path_buf();
                // Voter 3 starts late: the others keep reconnecting to it.
                let start_after = Duration::from_millis(if id == 3 { 700 } else { 0 });
                std::thread::spawn(move || {
                    let applied =
                        run_voter(id, dir, peers, start_after, Duration::from_secs(5), records);
                    sender.send((id, applied)).expect("the test waits");
                })
            })
            .collect();
        drop(sender);
        let results: BTreeMap<u64, Vec<String>> = receiver.iter().collect();
        for thread in threads {
            thread.join().expect("voter thread");
        }
        assert_eq!(results.len(), 3);
        for (id, applied) in &results {
            assert_eq!(
                applied, &records,
                "voter {id} applied every record once, in order"
            );
        }
    }
}
