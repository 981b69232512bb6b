//! `weir broker`: start-up, the shards' lives, and clean shutdown.
//!
//! Start-up (main thread, before any traffic):
//! 1. config → environment checks (cores, io_uring, RLIMIT_MEMLOCK sized per shard);
//! 2. log dirs + `meta.properties` (cluster id); the metadata log (`weir-quorum/`, a
//!    quorum of one) opened, replayed and this broker registered in it
//!    and the partition dirs; recovery points and clean-shutdown markers per dir;
//! 3. one pinned glommio executor per shard, connected by bounded channels; each opens
//!    (recovering) the partitions it owns, then binds the listener with SO_REUSEPORT;
//! 4. when every shard is ready: remove the clean-shutdown markers, print the ready line.
//!
//! Shutdown (SIGINT/SIGTERM), driven by shard 0: every shard stops accepting and lets
//! each connection finish its in-flight request (the gate drains) → every shard
//! flushes and closes its partitions → checkpoint files are written (temp → fsync →
//! rename → fsync dir) → the clean-shutdown marker goes into every log dir → exit 0.
//! Crash consistency: the marker is written last, so a crash anywhere before it makes
//! the next start recover from the checkpointed recovery points.

use std::collections::HashMap;
use std::net::ToSocketAddrs;
use std::os::fd::{FromRawFd, IntoRawFd};
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};
use glommio::channels::shared_channel::{self, SharedReceiver, SharedSender};
use glommio::net::TcpListener;
use glommio::{LocalExecutorBuilder, Placement};
use socket2::{Domain, Protocol, Socket, Type};
use tracing::{debug, error, info, warn};
use weir_storage::{checkpoint, meta};

use crate::config::{BrokerConfig, ShardCores};
use crate::main_thread::{
    block_stop_signals, ensure_port_is_free, lock_log_dirs, wait_for_stop_signal,
};
use crate::metadata::{ClusterMetadata, ensure_meta_properties};
use crate::quorum::MetadataLog;
use crate::replication::cluster_state::Endpoint;
use crate::replication::control::ReplicationControl;
use crate::shard::{CROSS_SHARD_CHANNEL_CAPACITY, CheckpointEntry, Shard, ShardTask, StartupState};
use crate::watchdog::{STALL_REPORT_MS, ShardBeats, Watchdog, heartbeat_loop};

/// Pending connections the kernel queues per shard listener.
const LISTEN_BACKLOG: i32 = 1024;
/// How often shard 0 looks at the stop flag the signal thread sets.
const STOP_POLL_INTERVAL_MS: u64 = 50;

pub const RECOVERY_POINT_CHECKPOINT: &str = "recovery-point-offset-checkpoint";
pub const LOG_START_OFFSET_CHECKPOINT: &str = "log-start-offset-checkpoint";
pub const REPLICATION_OFFSET_CHECKPOINT: &str = "replication-offset-checkpoint";
pub use weir_storage::cleaner::CLEANER_OFFSET_CHECKPOINT;

/// Runs a broker until SIGINT/SIGTERM. Returns after a clean shutdown.
pub fn run(mut config: BrokerConfig, shards: Option<usize>) -> anyhow::Result<()> {
    let started = Instant::now();
    for warning in &config.warnings {
        warn!("{warning}");
    }
    let usable = weir_tuning::usable_cores()?;
    let (cores, pinned) = match &config.shard_cores {
        ShardCores::All => (usable, true),
        ShardCores::Unpinned => (usable, false),
        ShardCores::Listed(listed) => {
            if let Some(core) = listed.iter().find(|core| !usable.contains(core)) {
                bail!(
                    "weir.shard.cores lists core {core}, which this process may not use (it may use {usable:?})"
                );
            }
            (listed.clone(), true)
        }
    };
    let shard_count = shards.unwrap_or(cores.len()).max(1);
    weir_tuning::check_io_uring()?;
    let plan = weir_tuning::plan_io_memory(shard_count)?;
    info!(
        shards = shard_count,
        cores = ?cores,
        pinned,
        io_memory_per_shard = plan.io_memory_per_shard_bytes,
        memlock = plan.memlock_soft_bytes,
        raised = plan.raised,
        "environment checked"
    );

    for dir in &config.log_dirs {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot create log dir {}", dir.display()))?;
    }
    std::fs::create_dir_all(&config.metadata_log_dir).with_context(|| {
        format!(
            "cannot create metadata.log.dir {}",
            config.metadata_log_dir.display()
        )
    })?;
    // Held for the life of the process: the kernel drops the locks when it exits.
    let _log_dir_locks = lock_log_dirs(&config.log_dirs)?;
    let segment_writes = config
        .resolve_segment_writes()
        .context("cannot probe the log dirs' filesystem for weir.log.segment.writes=auto")?;
    // Before `segment_writes`, which tests read as the line's last field.
    let blocks_reserved_ahead = config
        .log_dirs
        .iter()
        .map(|dir| weir_storage::preallocates_in(dir).unwrap_or(false))
        .collect::<Vec<_>>();
    info!(?blocks_reserved_ahead, ?segment_writes, "segment appends");
    ensure_port_is_free(config.listen_address)?;
    let cluster_id =
        ensure_meta_properties(&config.log_dirs, config.node_id, new_cluster_id(&config))
            .map_err(|message| anyhow!(message))?;
    info!(%cluster_id, "cluster id");
    let startup = Arc::new(read_startup_state(&config.log_dirs)?);
    let config = Arc::new(config);

    block_stop_signals();
    let stop = Arc::new(AtomicBool::new(false));
    let running = Arc::new(AtomicUsize::new(shard_count));
    let beats = ShardBeats::new(shard_count);
    let (ready_sender, ready_receiver) = mpsc::channel::<(usize, Result<(), String>)>();

    // One bounded channel per ordered pair of shards.
    let mut senders: Vec<Vec<Option<SharedSender<ShardTask>>>> = (0..shard_count)
        .map(|_| (0..shard_count).map(|_| None).collect())
        .collect();
    let mut receivers: Vec<Vec<SharedReceiver<ShardTask>>> =
        (0..shard_count).map(|_| Vec::new()).collect();
    for (from, row) in senders.iter_mut().enumerate() {
        for (to, slot) in row.iter_mut().enumerate() {
            if from != to {
                let (sender, receiver) = shared_channel::new_bounded(CROSS_SHARD_CHANNEL_CAPACITY);
                *slot = Some(sender);
                receivers[to].push(receiver);
            }
        }
    }
    // Shard 0 opens the metadata log on its own thread (the quorum driver that runs it
    // later is thread-local) and hands the loaded metadata to the others.
    let (metadata_sender, metadata_receiver) =
        mpsc::channel::<Result<Arc<ClusterMetadata>, String>>();
    let mut handles = Vec::with_capacity(shard_count);
    let mut metadata: Option<Arc<ClusterMetadata>> = None;
    for (id, (my_senders, my_receivers)) in senders.into_iter().zip(receivers).enumerate() {
        let core = cores[id % cores.len()];
        let (config, startup, stop, running, ready, beats) = (
            config.clone(),
            startup.clone(),
            stop.clone(),
            running.clone(),
            ready_sender.clone(),
            beats.clone(),
        );
        let shard_metadata = metadata.clone();
        let metadata_sender = metadata_sender.clone();
        let handle = LocalExecutorBuilder::new(Placement::Unbound)
            .name(&format!("weir-shard-{id}"))
            .io_memory(plan.io_memory_per_shard_bytes)
            .spawn(move || async move {
                if pinned && let Err(error) = weir_tuning::pin_current_thread(core) {
                    warn!(shard = id, core, %error, "could not pin shard to its core");
                }
                let (metadata, log) = match shard_metadata {
                    Some(metadata) => (metadata, None),
                    None => match load_metadata(&config, cluster_id_of(&config)) {
                        Ok((metadata, log)) => {
                            let metadata = Arc::new(metadata);
                            let _ = metadata_sender.send(Ok(metadata.clone()));
                            (metadata, Some(log))
                        }
                        Err(error) => {
                            let _ = metadata_sender.send(Err(format!("{error:#}")));
                            running.fetch_sub(1, Ordering::SeqCst);
                            return;
                        }
                    },
                };
                drop(metadata_sender);
                glommio::spawn_local(heartbeat_loop(id, beats, stop.clone())).detach();
                shard_main(
                    id,
                    shard_count,
                    config,
                    metadata,
                    log,
                    startup,
                    my_senders,
                    my_receivers,
                    stop,
                    ready,
                )
                .await;
                running.fetch_sub(1, Ordering::SeqCst);
            })
            .map_err(|error| anyhow!("cannot start shard {id}: {error}"))?;
        handles.push(handle);
        if id == crate::controller::CONTROLLER_SHARD {
            match metadata_receiver.recv() {
                Ok(Ok(loaded)) => metadata = Some(loaded),
                Ok(Err(message)) => {
                    let _ = handles.pop().map(|handle| handle.join());
                    bail!("{message}");
                }
                Err(_) => bail!("shard 0 stopped while loading the metadata"),
            }
        }
    }
    drop(ready_sender);

    let mut failures = Vec::new();
    for _ in 0..shard_count {
        match ready_receiver.recv() {
            Ok((_, Ok(()))) => {}
            Ok((id, Err(message))) => {
                error!(shard = id, "{message}");
                failures.push(format!("shard {id}: {message}"));
            }
            Err(_) => {
                failures.push("a shard stopped during start-up".to_string());
                break;
            }
        }
    }
    if failures.is_empty() {
        for dir in &config.log_dirs {
            if let Err(error) = meta::remove_clean_shutdown_marker(dir) {
                warn!(dir = %dir.display(), %error, "could not remove the clean-shutdown marker");
            }
        }
        info!(
            elapsed_ms = started.elapsed().as_millis() as u64,
            "broker ready"
        );
        println!(
            "weir broker ready: listening on {} ({shard_count} shards, node {}, started in {} ms)",
            config.listen_address,
            config.node_id,
            started.elapsed().as_millis()
        );
        wait_for_stop_signal(&stop, &running, &mut Watchdog::new(beats, STALL_REPORT_MS));
    }
    stop.store(true, Ordering::SeqCst);
    let mut panicked = false;
    for handle in handles {
        if handle.join().is_err() {
            panicked = true;
        }
    }
    if !failures.is_empty() {
        bail!("broker failed to start: {}", failures.join("; "));
    }
    if panicked {
        bail!("a shard stopped unexpectedly; see the log above");
    }
    info!("broker stopped cleanly");
    Ok(())
}

fn cluster_id_of(config: &BrokerConfig) -> String {
    ensure_meta_properties(&config.log_dirs, config.node_id, new_cluster_id(config))
        .expect("meta.properties was written before the shards started")
}

/// A new multi-node cluster's id comes from its voters (see `cluster_id_for_voters`).
fn new_cluster_id(config: &BrokerConfig) -> Option<String> {
    let cluster = &config.cluster;
    cluster.is_multi_node().then(|| {
        let voters: Vec<String> = cluster
            .voters
            .iter()
            .map(|voter| format!("{}@{}:{}", voter.id, voter.host, voter.port))
            .collect();
        crate::metadata::cluster_id_for_voters(&voters.join(","))
    })
}

/// Opens the metadata log and builds the metadata the shards start from.
fn load_metadata(
    config: &BrokerConfig,
    cluster_id: String,
) -> anyhow::Result<(ClusterMetadata, MetadataLog)> {
    let mut metadata_log = open_metadata_log(config)?;
    let (metadata, notes) = ClusterMetadata::load(
        cluster_id,
        config.node_id,
        &config.log_dirs,
        &mut metadata_log,
    )
    .context("cannot load topic metadata")?;
    for note in notes {
        info!("{note}");
    }
    Ok((metadata, metadata_log))
}

/// This broker's incarnation: above every earlier one (Kafka uses a random incarnation
/// id; a clock-based number also orders them).
fn next_incarnation(log: &MetadataLog, node_id: i32) -> u64 {
    let known = log
        .state()
        .control()
        .broker(node_id)
        .map_or(0, |b| b.incarnation);
    (known + 1).max(weir_storage::now_ms().max(0) as u64)
}

/// Opens this node's metadata log; a single voter registers this broker in it at once
/// (every start is a new incarnation, with its client endpoint), several voters after
/// the quorum runs (`register_with_controller`).
fn open_metadata_log(config: &BrokerConfig) -> anyhow::Result<MetadataLog> {
    let cluster = &config.cluster;
    let control = ReplicationControl::new(cluster.broker_session_timeout_ms)
        .with_unclean_leader_election(cluster.unclean_leader_election);
    let node_id = config.node_id;
    let voters: Vec<i32> = cluster.voters.iter().map(|voter| voter.id).collect();
    let timing = crate::quorum::timing(cluster.election_timeout_ms, quorum_tick(config));
    let mut log = MetadataLog::open(&config.metadata_log_dir, node_id, &voters, timing, control)
        .context("cannot open the metadata log")?;
    if log.can_commit_now() {
        let request = registration(config, &log);
        let crate::replication::cluster_state::ControllerRequest::Register {
            incarnation,
            clean_shutdown,
            host,
            port,
            rack,
            ..
        } = request
        else {
            unreachable!("registration() builds a Register request")
        };
        let endpoint = Endpoint { host, port, rack };
        let now_ms = weir_storage::now_ms().max(0) as u64;
        let records =
            log.state_mut()
                .register_broker(node_id, incarnation, clean_shutdown, endpoint, now_ms);
        log.commit(records)
            .context("cannot register this broker in the metadata log")?;
        log.set_registered_incarnation(incarnation);
    }
    Ok(log)
}

/// The quorum's tick: a tenth of the election timeout.
fn quorum_tick(config: &BrokerConfig) -> Duration {
    Duration::from_millis((config.cluster.election_timeout_ms / 10).max(10))
}

/// This broker's registration request: a new incarnation, whether every log dir was
/// shut down cleanly, its client endpoint and rack.
fn registration(
    config: &BrokerConfig,
    log: &MetadataLog,
) -> crate::replication::cluster_state::ControllerRequest {
    let clean_shutdown = config
        .log_dirs
        .iter()
        .all(|dir| weir_storage::meta::has_clean_shutdown_marker(dir));
    crate::replication::cluster_state::ControllerRequest::Register {
        node: config.node_id,
        incarnation: next_incarnation(log, config.node_id),
        clean_shutdown,
        host: config.advertised_host.clone(),
        port: config.advertised_port as u16,
        rack: config.broker_rack.clone(),
    }
}

/// Starts the quorum driver on the controller shard (binding the controller listener
/// when there are peers) and the loops that apply and act on the metadata log.
fn start_quorum(shard: &Rc<Shard>) -> anyhow::Result<()> {
    let config = &shard.config;
    let cluster = &config.cluster;
    let listener = match cluster.controller_listener {
        Some(address) if cluster.is_multi_node() => {
            Some(TcpListener::bind(address).map_err(|error| {
                anyhow!("cannot bind the controller listener {address}: {error}")
            })?)
        }
        _ => None,
    };
    let mut peers = std::collections::BTreeMap::new();
    for voter in cluster.voters.iter().filter(|_| cluster.is_multi_node()) {
        let address = (voter.host.as_str(), voter.port)
            .to_socket_addrs()
            .ok()
            .and_then(|mut addresses| addresses.next())
            .ok_or_else(|| {
                anyhow!(
                    "cannot resolve controller voter {}@{}:{}",
                    voter.id,
                    voter.host,
                    voter.port
                )
            })?;
        peers.insert(voter.id, address);
    }
    let registration = {
        let mut log = shard.metadata_log.borrow_mut();
        let log = log.as_mut().expect("shard 0 holds the metadata log");
        let registration = (!log.can_commit_now()).then(|| registration(config, log));
        if let Some(crate::replication::cluster_state::ControllerRequest::Register {
            incarnation,
            ..
        }) = &registration
        {
            log.set_registered_incarnation(*incarnation);
        }
        shard.published_index.set(log.applied_index());
        log.start(listener, &peers, quorum_tick(config));
        registration
    };
    glommio::spawn_local(crate::controller::apply_loop(shard.clone())).detach();
    glommio::spawn_local(crate::controller::liveness_loop(shard.clone())).detach();
    if let Some(request) = registration {
        let shard = shard.clone();
        glommio::spawn_local(async move {
            let crate::replication::cluster_state::ControllerRequest::Register {
                node,
                incarnation,
                ..
            } = &request
            else {
                unreachable!()
            };
            let (node, incarnation) = (*node, *incarnation);
            let registered = crate::controller::request_until(
                &shard,
                request.clone(),
                move |state| {
                    state
                        .control()
                        .broker(node)
                        .is_some_and(|b| b.incarnation >= incarnation)
                },
                None,
            )
            .await;
            if registered {
                info!(node, incarnation, "registered with the active controller");
            }
        })
        .detach();
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
async fn shard_main(
    id: usize,
    count: usize,
    config: Arc<BrokerConfig>,
    metadata: Arc<ClusterMetadata>,
    metadata_log: Option<MetadataLog>,
    startup: Arc<StartupState>,
    senders: Vec<Option<SharedSender<ShardTask>>>,
    receivers: Vec<SharedReceiver<ShardTask>>,
    stop: Arc<AtomicBool>,
    ready: mpsc::Sender<(usize, Result<(), String>)>,
) {
    // A channel's two ends connect together, so every end is connected concurrently.
    let connect_senders = futures::future::join_all(senders.into_iter().map(|sender| async move {
        match sender {
            Some(sender) => Some(sender.connect().await),
            None => None,
        }
    }));
    let connect_receivers =
        futures::future::join_all(receivers.into_iter().map(|receiver| receiver.connect()));
    let (connected_senders, connected_receivers) =
        futures::join!(connect_senders, connect_receivers);
    let shard = Shard::new(
        id,
        count,
        config.clone(),
        ClusterMetadata::default().into(),
        connected_senders,
    );
    let is_controller_shard = metadata_log.is_some();
    *shard.metadata_log.borrow_mut() = metadata_log;
    // Before any partition takes writes: a broker started on a full disk refuses at once.
    crate::disk_space::check(&shard);
    if let Err(error) = shard.apply_metadata(metadata, Some(&startup)).await {
        let _ = ready.send((id, Err(format!("cannot open partitions: {error}"))));
        stop.store(true, Ordering::SeqCst);
        return;
    }
    // The quorum starts after this shard opened what the loaded metadata holds: every
    // snapshot it publishes from then on is newer (see Shard::apply_metadata).
    if is_controller_shard {
        if let Err(error) = start_quorum(&shard) {
            let _ = ready.send((id, Err(format!("{error:#}"))));
            stop.store(true, Ordering::SeqCst);
            return;
        }
        // As a Kafka broker does, a cluster member is ready once the active controller
        // registered it and it is unfenced, so its first clients see it in Metadata.
        if config.cluster.is_multi_node() {
            info!("waiting for the active controller to register this broker");
            let node = config.node_id;
            loop {
                let registered = {
                    let log = shard.metadata_log.borrow();
                    log.as_ref().is_some_and(|log| {
                        log.state().control().broker(node).is_some_and(|b| {
                            !b.fenced && b.incarnation >= log.registered_incarnation()
                        })
                    })
                };
                if registered || stop.load(Ordering::SeqCst) {
                    break;
                }
                let listen = shard.metadata_published.listen();
                let timer = glommio::timer::sleep(Duration::from_millis(100));
                futures::pin_mut!(listen, timer);
                futures::future::select(listen, timer).await;
            }
        }
    }
    for receiver in connected_receivers {
        glommio::spawn_local(shard.clone().serve_peer(receiver)).detach();
    }
    let listener = match bind_listener(&config) {
        Ok(listener) => listener,
        Err(error) => {
            let _ = ready.send((id, Err(error.to_string())));
            stop.store(true, Ordering::SeqCst);
            return;
        }
    };
    glommio::spawn_local(accept_loop(shard.clone(), listener)).detach();
    glommio::spawn_local(flush_loop(shard.clone())).detach();
    glommio::spawn_local(crate::group::driver::tick_loop(shard.clone())).detach();
    glommio::spawn_local(crate::group::expiry::expiry_loop(shard.clone())).detach();
    glommio::spawn_local(producer_expiry_loop(shard.clone())).detach();
    glommio::spawn_local(crate::replica_manager::isr_loop(shard.clone())).detach();
    glommio::spawn_local(crate::disk_space::disk_space_loop(shard.clone())).detach();
    crate::cleaner::spawn(shard.clone());
    crate::retention::spawn(shard.clone());
    if id == 0 {
        glommio::spawn_local(checkpoint_loop(shard.clone())).detach();
    }
    let _ = ready.send((id, Ok(())));
    drop(ready);
    if id == 0 {
        while !stop.load(Ordering::SeqCst) {
            glommio::timer::sleep(Duration::from_millis(STOP_POLL_INTERVAL_MS)).await;
        }
        shutdown(&shard).await;
    } else {
        // Shard 0 fires `exit` at the end of shutdown; a shard that lost its link to
        // another (one that stopped during start-up) stops too instead of waiting forever.
        while !shard.peer_gone.get() {
            let exit = shard.exit.listen();
            let poll = glommio::timer::sleep(Duration::from_millis(STOP_POLL_INTERVAL_MS));
            futures::pin_mut!(exit, poll);
            if let futures::future::Either::Left(_) = futures::future::select(exit, poll).await {
                break;
            }
        }
    }
}

fn bind_listener(config: &BrokerConfig) -> anyhow::Result<TcpListener> {
    let address = config.listen_address;
    let socket = Socket::new(
        Domain::for_address(address),
        Type::STREAM,
        Some(Protocol::TCP),
    )?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    socket.set_tcp_nodelay(true)?;
    // Set before listen, so accepted connections inherit them (and the receive window's
    // scale is negotiated for them).
    if let Some(bytes) = config.socket_send_buffer_bytes {
        socket.set_send_buffer_size(bytes)?;
    }
    if let Some(bytes) = config.socket_receive_buffer_bytes {
        socket.set_recv_buffer_size(bytes)?;
    }
    socket
        .bind(&address.into())
        .with_context(|| format!("cannot listen on {address} (is another broker running? set listeners=PLAINTEXT://host:port)"))?;
    socket.listen(LISTEN_BACKLOG)?;
    // SAFETY: the fd comes from a socket we own and hand over whole.
    Ok(unsafe { TcpListener::from_raw_fd(socket.into_raw_fd()) })
}

async fn accept_loop(shard: Rc<Shard>, listener: TcpListener) {
    loop {
        let accepted = {
            let accept = listener.accept();
            let shutdown = shard.shutdown.listen();
            futures::pin_mut!(accept, shutdown);
            match futures::future::select(accept, shutdown).await {
                futures::future::Either::Left((accepted, _)) => accepted,
                // The event is a hint: only a real shutdown ends accepting.
                futures::future::Either::Right(_) if shard.is_shutting_down() => break,
                futures::future::Either::Right(_) => continue,
            }
        };
        match accepted {
            Ok(stream) => {
                let peer = stream
                    .peer_addr()
                    .unwrap_or_else(|_| ([0, 0, 0, 0], 0).into());
                if shard
                    .connections
                    .spawn(crate::conn::serve(shard.clone(), stream, peer))
                    .map(|task| task.detach())
                    .is_err()
                {
                    break;
                }
            }
            Err(error) => {
                warn!(shard = shard.id, %error, "accept failed");
                glommio::timer::sleep(Duration::from_millis(10)).await;
            }
        }
    }
}

/// How often the flush loop looks for partitions whose `flush.ms` (or the broker's
/// `log.flush.interval.ms`) has passed: the granularity of time-based flushing.
const FLUSH_CHECK_INTERVAL_MS: u64 = 50;

/// fdatasyncs partitions whose unflushed data is older than their `flush.ms`.
async fn flush_loop(shard: Rc<Shard>) {
    while shard.sleep_unless_shutdown(FLUSH_CHECK_INTERVAL_MS).await {
        let now_ms = weir_storage::now_ms();
        for partition in shard.local_partitions() {
            if partition.flush_due(now_ms)
                && let Err(error) = partition.flush().await
            {
                warn!(shard = shard.id, topic = %partition.topic, partition = partition.index, %error, "periodic flush failed");
            }
        }
    }
}

/// Forgets idle idempotent producers (`producer.id.expiration.ms`) every
/// `producer.id.expiration.check.interval.ms`.
async fn producer_expiry_loop(shard: Rc<Shard>) {
    let interval_ms = shard.config.producer_id_expiration_check_interval_ms;
    while shard.sleep_unless_shutdown(interval_ms).await {
        let now_ms = weir_storage::now_ms();
        for partition in shard.local_partitions() {
            match partition.remove_expired_producers(now_ms).await {
                Ok(0) => {}
                Ok(removed) => debug!(shard = shard.id, topic = %partition.topic,
                    partition = partition.index, removed, "expired idle producers"),
                Err(error) => warn!(shard = shard.id, topic = %partition.topic,
                    partition = partition.index, %error, "could not expire producers"),
            }
        }
    }
}

async fn checkpoint_loop(shard: Rc<Shard>) {
    let interval = Duration::from_millis(shard.config.checkpoint_interval_ms);
    loop {
        glommio::timer::sleep(interval).await;
        if shard.is_shutting_down() {
            return;
        }
        if let Err(error) = write_checkpoints_now(&shard).await {
            warn!(%error, "could not write checkpoint files");
        }
    }
}

/// Collects every shard's checkpoint entries and writes the checkpoint files now (on
/// the controller shard; also after DeleteRecords, so a crash cannot bring deleted
/// records back). Does nothing once shutdown began: shutdown writes the final files.
pub async fn write_checkpoints_now(shard: &Rc<Shard>) -> Result<(), weir_storage::StorageError> {
    assert_eq!(shard.id, 0, "checkpoint files are written by shard 0");
    let _permit = shard
        .checkpoint_lock
        .acquire_permit(1)
        .await
        .expect("the checkpoint lock is never closed");
    if shard.is_shutting_down() {
        return Ok(());
    }
    let entries = collect(
        shard
            .invoke_on_all(|target: Rc<Shard>| async move { target.checkpoint_entries() })
            .await,
    );
    write_checkpoints(&shard.config.log_dirs, &entries)
}

fn collect(
    results: Vec<Result<Vec<CheckpointEntry>, crate::shard::ShardGone>>,
) -> Vec<CheckpointEntry> {
    results
        .into_iter()
        .filter_map(Result::ok)
        .flatten()
        .collect()
}

/// Kafka's controlled shutdown: the active controller fences this broker and moves
/// its leaderships to other in-sync replicas before it stops, so clients fail over at
/// once instead of after the session timeout.
async fn controlled_shutdown(shard: &Rc<Shard>) {
    let node = shard.config.node_id;
    let incarnation = {
        let log = shard.metadata_log.borrow();
        log.as_ref()
            .and_then(|log| log.state().control().broker(node))
            .map(|broker| broker.incarnation)
    };
    let Some(incarnation) = incarnation else {
        return;
    };
    if let Some(log) = shard.metadata_log.borrow_mut().as_mut() {
        log.set_leaving();
    }
    info!("controlled shutdown: asking the controller to move this broker's leaderships");
    let request = crate::replication::cluster_state::ControllerRequest::ControlledShutdown {
        node,
        incarnation,
    };
    let fenced = crate::controller::request_until(
        shard,
        request,
        move |state| state.control().broker(node).is_none_or(|b| b.fenced),
        Some(Duration::from_millis(CONTROLLED_SHUTDOWN_WAIT_MS)),
    );
    // The other voters stopping too (a whole cluster shut down at once) leave no
    // quorum to answer: stop once none has been in touch for two election timeouts.
    let silent_ms = 2 * shard.config.cluster.election_timeout_ms;
    let quorum_gone = async {
        loop {
            glommio::timer::sleep(Duration::from_millis(100)).await;
            let now_ms = weir_storage::now_ms().max(0) as u64;
            let log = shard.metadata_log.borrow();
            if log
                .as_ref()
                .is_none_or(|log| !log.quorum_heard_within(now_ms, silent_ms))
            {
                return;
            }
        }
    };
    futures::pin_mut!(fenced, quorum_gone);
    match futures::future::select(fenced, quorum_gone).await {
        futures::future::Either::Left((true, _)) => {
            info!("controlled shutdown: leaderships moved")
        }
        futures::future::Either::Left((false, _)) => {
            warn!("controlled shutdown: the controller did not answer in time; stopping anyway")
        }
        futures::future::Either::Right(_) => warn!(
            silent_ms,
            "controlled shutdown: most controller voters are silent (stopped too?); stopping anyway"
        ),
    }
}

/// How long a cluster member waits for the controller to move its leaderships away
/// before it stops anyway (Kafka's controlled shutdown).
const CONTROLLED_SHUTDOWN_WAIT_MS: u64 = 10_000;

async fn shutdown(shard: &Rc<Shard>) {
    if shard.config.cluster.is_multi_node() {
        controlled_shutdown(shard).await;
    }
    info!("shutting down: draining connections");
    shard
        .invoke_on_all(|target: Rc<Shard>| async move {
            target.begin_shutdown();
            // Parked JoinGroup/SyncGroup requests would otherwise hold the drain for
            // up to a rebalance timeout: answer them NOT_COORDINATOR, as Kafka does
            // when a coordinator unloads its groups.
            target.groups.table.unload_all(&target).await;
            let _ = target.connections.close().await;
            let (zero_copy_bytes, copied_bytes) = crate::send_file::region_bytes_sent();
            info!(
                shard = target.id,
                zero_copy_bytes,
                copied_bytes,
                "fetch record bytes sent: with sendfile, copied at a full socket"
            );
        })
        .await;
    info!("flushing partitions");
    let entries = collect(
        shard
            .invoke_on_all(|target: Rc<Shard>| async move { target.close_partitions().await })
            .await,
    );
    let _permit = shard
        .checkpoint_lock
        .acquire_permit(1)
        .await
        .expect("the checkpoint lock is never closed");
    let clean = match write_checkpoints(&shard.config.log_dirs, &entries) {
        Ok(()) => true,
        Err(error) => {
            error!(%error, "could not write checkpoint files; the next start will recover");
            false
        }
    };
    if clean {
        for dir in &shard.config.log_dirs {
            if let Err(error) = meta::write_clean_shutdown_marker(dir) {
                error!(dir = %dir.display(), %error, "could not write the clean-shutdown marker");
            }
        }
    }
    for target in 1..shard.count {
        let _ = shard
            .invoke_on(target, |target: Rc<Shard>| async move {
                target.exit.notify_all()
            })
            .await;
    }
}

fn write_checkpoints(
    log_dirs: &[PathBuf],
    entries: &[CheckpointEntry],
) -> Result<(), weir_storage::StorageError> {
    for (dir_index, dir) in log_dirs.iter().enumerate() {
        let in_dir: Vec<&CheckpointEntry> = entries
            .iter()
            .filter(|entry| entry.dir_index == dir_index)
            .collect();
        let list = |value: fn(&CheckpointEntry) -> i64| -> Vec<(String, i32, i64)> {
            in_dir
                .iter()
                .map(|entry| (entry.topic.clone(), entry.partition, value(entry)))
                .collect()
        };
        checkpoint::write_checkpoint(
            &dir.join(RECOVERY_POINT_CHECKPOINT),
            &list(|entry| entry.recovery_point),
        )?;
        checkpoint::write_checkpoint(
            &dir.join(LOG_START_OFFSET_CHECKPOINT),
            &list(|entry| entry.log_start_offset),
        )?;
        checkpoint::write_checkpoint(
            &dir.join(REPLICATION_OFFSET_CHECKPOINT),
            &list(|entry| entry.high_watermark),
        )?;
        let cleaned: Vec<(String, i32, i64)> = in_dir
            .iter()
            .filter_map(|entry| {
                let offset = entry.first_dirty_offset?;
                Some((entry.topic.clone(), entry.partition, offset))
            })
            .collect();
        checkpoint::write_checkpoint(&dir.join(CLEANER_OFFSET_CHECKPOINT), &cleaned)?;
    }
    Ok(())
}

fn read_startup_state(log_dirs: &[PathBuf]) -> anyhow::Result<StartupState> {
    let mut state = StartupState::default();
    let mut recovery_points = HashMap::new();
    let mut log_start_offsets = HashMap::new();
    for dir in log_dirs {
        state.clean_dirs.push(meta::has_clean_shutdown_marker(dir));
        for (topic, partition, offset) in
            checkpoint::read_checkpoint(&dir.join(RECOVERY_POINT_CHECKPOINT))?
        {
            recovery_points.insert((topic, partition), offset);
        }
        for (topic, partition, offset) in
            checkpoint::read_checkpoint(&dir.join(LOG_START_OFFSET_CHECKPOINT))?
        {
            log_start_offsets.insert((topic, partition), offset);
        }
    }
    state.recovery_points = recovery_points;
    for dir in log_dirs {
        for (topic, partition, offset) in
            checkpoint::read_checkpoint(&dir.join(CLEANER_OFFSET_CHECKPOINT))?
        {
            state.cleaner_offsets.insert((topic, partition), offset);
        }
    }
    state.log_start_offsets = log_start_offsets;
    for dir in log_dirs {
        for (topic, partition, offset) in
            checkpoint::read_checkpoint(&dir.join(REPLICATION_OFFSET_CHECKPOINT))?
        {
            state.high_watermarks.insert((topic, partition), offset);
        }
    }
    Ok(state)
}
