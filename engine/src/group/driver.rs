//! Drives the sans-IO group state machines of one shard: runs each operation on its
//! group, routes deferred answers (JoinGroup and SyncGroup wait for the rebalance)
//! back to the waiting request, appends what the machine asks to persist, and ticks
//! groups when their deadlines pass.
//!
//! Ordering: effects are applied in the order the machine emits them, so a group
//! record is in the log before the responses that follow it are sent.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures::channel::oneshot;
use tracing::warn;

use super::coordinator::{GroupCoordinator, coordinator_for};
use super::offsets::group_record;
use super::records::GroupValue;
use super::state::{Effect, Group, GroupConfig, RequestId};
use crate::config::BrokerConfig;
use crate::shard::Shard;

/// Longest the tick task sleeps without looking at deadlines again: bounds the
/// damage of a missed wake-up.
const TICK_INTERVAL_MS_MAX: u64 = 1_000;

/// `weir_storage::now_ms` as the unsigned milliseconds the group state machine uses.
pub fn now_ms() -> u64 {
    weir_storage::now_ms().max(0) as u64
}

/// The state machine settings from the broker's `group.*` keys.
pub fn group_config(config: &BrokerConfig) -> GroupConfig {
    let settings = &config.groups;
    let clamp = |value: i64| value.clamp(0, i32::MAX as i64) as i32;
    GroupConfig {
        initial_rebalance_delay_ms: clamp(settings.initial_rebalance_delay_ms),
        session_timeout_ms_min: clamp(settings.session_timeout_ms_min),
        session_timeout_ms_max: clamp(settings.session_timeout_ms_max),
        group_size_max: clamp(settings.group_size_max).max(1),
        ..GroupConfig::default()
    }
}

/// The live groups of one shard and the requests waiting on them.
#[derive(Default)]
pub struct GroupTable {
    groups: RefCell<HashMap<String, Group>>,
    waiting: RefCell<HashMap<RequestId, oneshot::Sender<Effect>>>,
    next_request: Cell<RequestId>,
    /// Fired when a deadline may have moved earlier, to wake the tick task.
    pub deadlines_changed: crate::event::Event,
}

fn seed() -> u64 {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| elapsed.as_nanos() as u64)
        .unwrap_or(1);
    nanos ^ (std::process::id() as u64).rotate_left(32)
}

impl GroupTable {
    /// Reads a group without changing it.
    pub fn with_group<R>(&self, group_id: &str, read: impl FnOnce(Option<&Group>) -> R) -> R {
        read(self.groups.borrow().get(group_id))
    }

    /// Names of the live groups.
    pub fn group_ids(&self) -> Vec<String> {
        self.groups.borrow().keys().cloned().collect()
    }

    /// Restores a group from its stored metadata (at load).
    pub fn restore(&self, config: &BrokerConfig, group_id: &str, value: &GroupValue) {
        let group = Group::from_snapshot(value.clone(), group_config(config), seed(), now_ms());
        self.groups.borrow_mut().insert(group_id.to_string(), group);
        self.deadlines_changed.notify_all();
    }

    /// Forgets a group (after DeleteGroups, or when it is Dead).
    pub fn remove(&self, group_id: &str) {
        self.groups.borrow_mut().remove(group_id);
    }

    /// Runs one operation on `group_id` (creating the group when `create`), applies
    /// the effects, and waits for the answer addressed to this request.
    pub async fn run(
        &self,
        shard: &Rc<Shard>,
        group_id: &str,
        create: bool,
        operation: impl FnOnce(&mut Group, RequestId, u64) -> Vec<Effect>,
    ) -> Option<Effect> {
        let request = self.next_request.get() + 1;
        self.next_request.set(request);
        let (answer, answered) = oneshot::channel();
        self.waiting.borrow_mut().insert(request, answer);
        let effects = {
            let mut groups = self.groups.borrow_mut();
            let now = now_ms();
            if !groups.contains_key(group_id) {
                if !create {
                    self.waiting.borrow_mut().remove(&request);
                    return None;
                }
                groups.insert(
                    group_id.to_string(),
                    Group::new(group_config(&shard.config), seed(), now),
                );
            }
            let group = groups.get_mut(group_id).expect("inserted above");
            operation(group, request, now)
        };
        self.apply(shard, group_id, effects).await;
        self.deadlines_changed.notify_all();
        answered.await.ok()
    }

    /// Runs an operation that answers no waiting request (administrative changes).
    pub fn run_without_answer(
        &self,
        group_id: &str,
        operation: impl FnOnce(&mut Group) -> Vec<Effect>,
    ) -> Vec<Effect> {
        let mut groups = self.groups.borrow_mut();
        let effects = groups.get_mut(group_id).map(operation).unwrap_or_default();
        self.deadlines_changed.notify_all();
        effects
    }

    /// Unloads every group (shutdown): parked requests are answered NOT_COORDINATOR.
    pub async fn unload_all(&self, shard: &Rc<Shard>) {
        let now = now_ms();
        let unloaded: Vec<(String, Vec<Effect>)> = self
            .groups
            .borrow_mut()
            .iter_mut()
            .map(|(group_id, group)| (group_id.clone(), group.unload(now)))
            .collect();
        for (group_id, effects) in unloaded {
            self.apply(shard, &group_id, effects).await;
        }
    }

    /// Carries out effects in order.
    pub async fn apply(&self, shard: &Rc<Shard>, group_id: &str, effects: Vec<Effect>) {
        for effect in effects {
            let request = match &effect {
                Effect::PersistGroup(snapshot) => {
                    let record = group_record(group_id, Some(snapshot), now_ms() as i64);
                    self.persist(shard, group_id, record).await;
                    continue;
                }
                Effect::PersistGroupTombstone => {
                    self.persist(
                        shard,
                        group_id,
                        group_record(group_id, None, now_ms() as i64),
                    )
                    .await;
                    continue;
                }
                Effect::JoinResponse { request, .. }
                | Effect::SyncResponse { request, .. }
                | Effect::HeartbeatResponse { request, .. }
                | Effect::LeaveResponse { request, .. } => *request,
            };
            if let Some(waiter) = self.waiting.borrow_mut().remove(&request) {
                let _ = waiter.send(effect);
            }
        }
    }

    async fn persist(
        &self,
        shard: &Rc<Shard>,
        group_id: &str,
        record: weir_storage::batch::SimpleRecord,
    ) {
        let (partition, _) = coordinator_for(shard, group_id);
        if let Err((code, message)) = shard
            .groups
            .append(shard, partition, vec![record], now_ms() as i64)
            .await
        {
            warn!(group = group_id, code, %message, "could not store group metadata");
        }
    }

    /// Ticks every group whose deadline passed; returns the next deadline.
    async fn tick_due(&self, shard: &Rc<Shard>) -> Option<u64> {
        let now = now_ms();
        let due: Vec<(String, Vec<Effect>)> = {
            let mut groups = self.groups.borrow_mut();
            groups
                .iter_mut()
                .filter(|(_, group)| {
                    group
                        .next_deadline_ms()
                        .is_some_and(|deadline| deadline <= now)
                })
                .map(|(group_id, group)| (group_id.clone(), group.tick(now)))
                .collect()
        };
        for (group_id, effects) in due {
            self.apply(shard, &group_id, effects).await;
        }
        self.groups
            .borrow()
            .values()
            .filter_map(Group::next_deadline_ms)
            .min()
    }
}

/// The per-shard task that ticks groups at their deadlines (session timeouts,
/// rebalance timeouts, the initial rebalance delay).
pub async fn tick_loop(shard: Rc<Shard>) {
    let coordinator: &GroupCoordinator = &shard.groups;
    while !shard.is_shutting_down() {
        let next = coordinator.table.tick_due(&shard).await;
        let wait_ms = next.map_or(TICK_INTERVAL_MS_MAX, |deadline| {
            deadline
                .saturating_sub(now_ms())
                .clamp(1, TICK_INTERVAL_MS_MAX)
        });
        let changed = coordinator.table.deadlines_changed.listen();
        let timer = glommio::timer::sleep(Duration::from_millis(wait_ms));
        futures::pin_mut!(changed, timer);
        futures::future::select(changed, timer).await;
    }
}
