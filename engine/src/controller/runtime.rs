//! The controller shard's loops: applying and publishing what the quorum committed, the
//! active controller's decisions on brokers' requests and liveness, and the broker side
//! of those requests (sent through the metadata log until their effect is applied).

use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::error::ResponseError;
use tracing::{debug, error, info, warn};

use super::{HEARD_WITHIN_MS, LIVENESS_CHECK_MS, REQUEST_RETRY_MS, begin, commit_records};
use crate::metadata::ClusterMetadata;
use crate::replication::NodeId;
use crate::replication::cluster_state::{ControllerRequest, MetadataRecord, ProducerIdGrant};
use crate::replication::control::MetadataChange;
use crate::shard::Shard;

/// Applies what the quorum committed and publishes it to every shard, for the life of
/// the broker (every node runs it on its controller shard). The active controller also
/// acts on the requests among the applied records.
pub async fn apply_loop(shard: Rc<Shard>) {
    let changed = {
        let log = shard.metadata_log.borrow();
        log.as_ref().expect("started").changed()
    };
    loop {
        {
            let listen = changed.listen();
            let timer = glommio::timer::sleep(Duration::from_millis(100));
            futures::pin_mut!(listen, timer);
            futures::future::select(listen, timer).await;
        }
        if shard.is_shutting_down() {
            return;
        }
        let (applied, leader) = {
            let mut log = shard.metadata_log.borrow_mut();
            let Some(log) = log.as_mut() else { return };
            (log.apply_committed(), log.is_leader())
        };
        let applied = match applied {
            Ok(applied) => applied,
            Err(error) => {
                error!(%error, "could not apply the metadata log");
                continue;
            }
        };
        if applied.entries > 0 {
            let (next, index) = {
                let log = shard.metadata_log.borrow();
                let log = log.as_ref().expect("held above");
                let mut next = shard
                    .metadata()
                    .from_state(log.state(), shard.config.log_dirs.len());
                next.controller_id = log.leader().unwrap_or(-1);
                (next, log.applied_index())
            };
            if let Err(message) = install(&shard, next).await {
                error!(error = %message, "a shard could not apply new metadata");
            }
            shard.published_index.set(index);
            shard.metadata_published.notify_all();
        }
        if leader && !applied.requests.is_empty() {
            glommio::spawn_local(handle_requests(shard.clone(), applied.requests)).detach();
        }
    }
}

/// Installs `next` on every shard.
async fn install(shard: &Rc<Shard>, next: ClusterMetadata) -> Result<(), String> {
    let next = Arc::new(next);
    let results = shard
        .invoke_on_all(move |target: Rc<Shard>| {
            let next = next.clone();
            async move {
                target
                    .apply_metadata(next, None)
                    .await
                    .map_err(|error| error.to_string())
            }
        })
        .await;
    for result in results {
        match result {
            Ok(Ok(())) => {}
            Ok(Err(message)) => return Err(message),
            Err(gone) => return Err(gone.to_string()),
        }
    }
    Ok(())
}

/// The active controller decides on brokers' requests, one at a time.
async fn handle_requests(shard: Rc<Shard>, requests: Vec<ControllerRequest>) {
    for request in requests {
        let Ok(_permit) = begin(&shard).await else {
            return;
        };
        let now_ms = weir_storage::now_ms().max(0) as u64;
        let records: Vec<MetadataRecord> = {
            let mut log = shard.metadata_log.borrow_mut();
            let Some(log) = log.as_mut() else { return };
            let live_and_caught_up = match &request {
                ControllerRequest::Unfence { node, .. } => {
                    log.heard_within(*node, now_ms, HEARD_WITHIN_MS) && log.caught_up(*node)
                }
                _ => false,
            };
            let state = log.state_mut();
            match &request {
                ControllerRequest::Register {
                    node,
                    incarnation,
                    clean_shutdown,
                    host,
                    port,
                    rack,
                } => {
                    let known = state.control().broker(*node).map(|b| b.incarnation);
                    if known.is_some_and(|known| known >= *incarnation) {
                        Vec::new()
                    } else {
                        let endpoint = crate::replication::cluster_state::Endpoint {
                            host: host.clone(),
                            port: *port,
                            rack: rack.clone(),
                        };
                        info!(node, incarnation, clean_shutdown, "registering broker");
                        state.register_broker(
                            *node,
                            *incarnation,
                            *clean_shutdown,
                            endpoint,
                            now_ms,
                        )
                    }
                }
                ControllerRequest::ControlledShutdown { node, incarnation } => {
                    let current = state.control().broker(*node).map(|b| b.incarnation);
                    if current == Some(*incarnation) {
                        info!(
                            node,
                            "controlled shutdown: fencing the broker and moving its leadership"
                        );
                        state
                            .control()
                            .controlled_shutdown(*node)
                            .into_iter()
                            .map(MetadataRecord::Replication)
                            .collect()
                    } else {
                        Vec::new()
                    }
                }
                ControllerRequest::Unfence { node, incarnation } => {
                    let broker = state.control().broker(*node);
                    if live_and_caught_up
                        && broker.is_some_and(|b| b.fenced && b.incarnation == *incarnation)
                    {
                        info!(
                            node,
                            incarnation, "unfencing broker: it is alive and caught up"
                        );
                        state.control_mut().heartbeat(*node, now_ms)
                    } else {
                        Vec::new()
                    }
                    .into_iter()
                    .map(MetadataRecord::Replication)
                    .collect()
                }
                ControllerRequest::AllocateProducerIds { node, nonce } => {
                    let start = state.next_producer_id_block();
                    vec![MetadataRecord::ProducerIdBlock {
                        next_block_start: start + crate::producer_ids::PRODUCER_ID_BLOCK_SIZE,
                        granted: Some(ProducerIdGrant {
                            node: *node,
                            nonce: *nonce,
                            start,
                        }),
                    }]
                }
                ControllerRequest::AlterPartition {
                    leader,
                    key,
                    leader_epoch,
                    partition_epoch,
                    isr,
                } => match state.control().alter_partition(
                    key,
                    *leader,
                    *leader_epoch,
                    *partition_epoch,
                    isr,
                ) {
                    Ok((registration, changes)) => {
                        info!(topic = %key.0, partition = key.1, isr = ?registration.isr, "ISR changed");
                        changes
                            .into_iter()
                            .map(MetadataRecord::Replication)
                            .collect()
                    }
                    Err(error) => {
                        debug!(topic = %key.0, partition = key.1, %error, "AlterPartition refused");
                        Vec::new()
                    }
                },
            }
        };
        if let Err((_, message)) = commit_records(&shard, records).await {
            warn!(%message, "could not commit a broker request's outcome");
        }
    }
}

/// Broker liveness. On the active controller (combined mode: a broker is alive while
/// its quorum voter answers), live unfenced voters heartbeat, and a voter silent for
/// `broker.session.timeout.ms` is fenced and its leaderships move. On every node, a
/// broker that finds its own registration fenced (it was stopped, or cut off, and is
/// back) asks to be unfenced with [`ControllerRequest::Unfence`].
pub async fn liveness_loop(shard: Rc<Shard>) {
    let mut was_leader = false;
    let rebalance_every =
        std::time::Duration::from_millis(shard.config.cluster.leader_imbalance_check_interval_ms);
    let mut next_rebalance = std::time::Instant::now() + rebalance_every;
    let mut next_unfence_request = std::time::Instant::now();
    loop {
        glommio::timer::sleep(Duration::from_millis(LIVENESS_CHECK_MS)).await;
        if shard.is_shutting_down() {
            return;
        }
        let leader = {
            let mut log = shard.metadata_log.borrow_mut();
            let Some(log) = log.as_mut() else { return };
            if let Some(request) = log.unfence_request()
                && std::time::Instant::now() >= next_unfence_request
            {
                next_unfence_request =
                    std::time::Instant::now() + Duration::from_millis(HEARD_WITHIN_MS);
                if let Err(error) = log.propose(&[MetadataRecord::Request(request)]) {
                    debug!(%error, "could not ask to be unfenced (no quorum leader yet)");
                }
            }
            log.is_leader()
        };
        if !leader {
            was_leader = false;
            continue;
        }
        let Ok(_permit) = begin(&shard).await else {
            continue;
        };
        let now_ms = weir_storage::now_ms().max(0) as u64;
        let records: Vec<MetadataRecord> = {
            let mut log = shard.metadata_log.borrow_mut();
            let Some(log) = log.as_mut() else { return };
            if !was_leader {
                // Heartbeat times are not replicated: every session starts now.
                log.state_mut().control_mut().reset_sessions(now_ms);
                was_leader = true;
            }
            let mut changes = Vec::new();
            let brokers: Vec<(NodeId, bool)> = log
                .state()
                .control()
                .brokers()
                .map(|(node, broker)| (node, broker.fenced))
                .collect();
            for (node, fenced) in brokers {
                if !fenced && log.heard_within(node, now_ms, HEARD_WITHIN_MS) {
                    changes.extend(log.state_mut().control_mut().heartbeat(node, now_ms));
                }
            }
            if changes.is_empty()
                && shard.config.cluster.auto_leader_rebalance
                && std::time::Instant::now() >= next_rebalance
            {
                // auto.leader.rebalance.enable: leadership back to preferred replicas.
                next_rebalance = std::time::Instant::now() + rebalance_every;
                changes = log.state().control().elect_preferred_leaders();
                if !changes.is_empty() {
                    info!(
                        partitions = changes.len(),
                        "moving leadership back to preferred replicas"
                    );
                }
            }
            if changes.is_empty() {
                changes = log.state().control().expire(now_ms);
                for change in &changes {
                    if let MetadataChange::FenceBroker { node } = change {
                        warn!(
                            node,
                            "broker session expired: fencing it and moving its leaderships"
                        );
                    }
                }
            }
            changes
                .into_iter()
                .map(MetadataRecord::Replication)
                .collect()
        };
        if let Err((_, message)) = commit_records(&shard, records).await {
            warn!(%message, "could not commit a liveness change");
        }
    }
}

/// Sends `request` to the active controller through the log until `done` holds on this
/// node's applied state (a lost request is sent again), or `give_up_after` passes.
pub async fn request_until(
    shard: &Rc<Shard>,
    request: ControllerRequest,
    done: impl Fn(&crate::replication::cluster_state::ClusterState) -> bool,
    give_up_after: Option<Duration>,
) -> bool {
    let started = std::time::Instant::now();
    loop {
        {
            let mut log = shard.metadata_log.borrow_mut();
            let Some(log) = log.as_mut() else {
                return false;
            };
            if done(log.state()) {
                return true;
            }
            if let Err(error) = log.propose(&[MetadataRecord::Request(request.clone())]) {
                debug!(%error, "a controller request was not sent (no quorum leader yet)");
            }
        }
        if give_up_after.is_some_and(|limit| started.elapsed() >= limit) {
            return false;
        }
        let deadline = std::time::Instant::now() + Duration::from_millis(REQUEST_RETRY_MS);
        while std::time::Instant::now() < deadline {
            let listen = shard.metadata_published.listen();
            let timer = glommio::timer::sleep(Duration::from_millis(100));
            futures::pin_mut!(listen, timer);
            futures::future::select(listen, timer).await;
            let log = shard.metadata_log.borrow();
            if log.as_ref().is_some_and(|log| done(log.state())) {
                return true;
            }
        }
    }
}

/// A producer id block from the active controller on another node: asked through the
/// metadata log, granted there, seen here once the grant is applied.
pub(super) async fn allocate_producer_ids_remotely(
    shard: &Rc<Shard>,
) -> Result<(i64, i64), (i16, String)> {
    let node = shard.config.node_id;
    let nonce = uuid::Uuid::new_v4().as_u64_pair().0;
    let request = ControllerRequest::AllocateProducerIds { node, nonce };
    let granted = move |state: &crate::replication::cluster_state::ClusterState| {
        state
            .producer_id_grant(node)
            .is_some_and(|grant| grant.nonce == nonce)
    };
    if !request_until(shard, request, granted, Some(Duration::from_millis(5_000))).await {
        return Err((
            ResponseError::CoordinatorNotAvailable.code(),
            "the active controller did not grant producer ids in time".to_string(),
        ));
    }
    let log = shard.metadata_log.borrow();
    let grant = log
        .as_ref()
        .and_then(|log| log.state().producer_id_grant(node))
        .filter(|grant| grant.nonce == nonce)
        .ok_or_else(|| {
            (
                ResponseError::CoordinatorNotAvailable.code(),
                "the producer id grant was replaced".to_string(),
            )
        })?;
    Ok((
        grant.start,
        grant.start + crate::producer_ids::PRODUCER_ID_BLOCK_SIZE,
    ))
}
