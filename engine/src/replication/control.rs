//! The controller's replication decisions (Kafka's `ReplicationControlManager` and
//! `BrokerHeartbeatManager`), sans-IO.
//!
//! ```text
//!  decisions (&self, read the state) ──► Vec<MetadataChange> ──► quorum log ──► apply (every node)
//!    register(node, incarnation, clean?)   new incarnation after an unclean stop: out of every ISR it shares
//!    heartbeat(node)                        fenced? unfence, lead leaderless partitions it is in sync for
//!    expire(now)                            session over: fence, out of ISRs, new leaders from the ISR
//!    alter_partition(leader's proposal)     epochs current? members unfenced replicas? new ISR
//!    create_partition(replicas)             leader = first unfenced replica, ISR = unfenced replicas
//! ```
//!
//! Heartbeat times are not replicated (as in Kafka, only the active controller tracks
//! them); everything else is, as [`MetadataChange`]s that [`ReplicationControl::apply`]
//! replays identically on every node. Leaders are only ever elected from the ISR (unless
//! `unclean.leader.election.enable`), and an ISR never loses its last member (it waits
//! for that broker to come back).

use std::collections::BTreeMap;

use super::{NO_LEADER, NodeId, PartitionRegistration, ReplicationError};

/// A partition's key in the controller: (topic, partition index).
pub type PartitionKey = (String, i32);

/// One replicated change of cluster state.
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
pub enum MetadataChange {
    /// A broker (re)started as `incarnation`, unfenced.
    RegisterBroker {
        node: NodeId,
        incarnation: u64,
    },
    FenceBroker {
        node: NodeId,
    },
    UnfenceBroker {
        node: NodeId,
    },
    /// The partition's whole new registration.
    Partition {
        key: PartitionKey,
        registration: PartitionRegistration,
    },
    /// The partition is gone (its topic was deleted).
    RemovePartition {
        key: PartitionKey,
    },
}

/// One partition's ElectLeaders outcome.
pub type ElectionOutcome = (PartitionKey, Result<(), ElectionError>);

/// Why ElectLeaders did not elect (Kafka's codes in `errors.rs`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ElectionError {
    #[error("Leader election not needed for topic partition.")]
    NotNeeded,
    #[error("The preferred leader was not available.")]
    PreferredLeaderNotAvailable,
    #[error("Eligible topic partition leaders are not available.")]
    EligibleLeadersNotAvailable,
    #[error("This server does not host this topic-partition.")]
    UnknownPartition,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BrokerRegistration {
    pub incarnation: u64,
    pub fenced: bool,
}

/// The replicated replication state, plus the active controller's heartbeat times.
#[derive(Debug, Default)]
pub struct ReplicationControl {
    brokers: BTreeMap<NodeId, BrokerRegistration>,
    partitions: BTreeMap<PartitionKey, PartitionRegistration>,
    last_heartbeat_ms: BTreeMap<NodeId, u64>,
    session_timeout_ms: u64,
    unclean_leader_election: bool,
}

impl ReplicationControl {
    pub fn new(session_timeout_ms: u64) -> Self {
        Self {
            session_timeout_ms,
            ..Self::default()
        }
    }

    /// Kafka's `unclean.leader.election.enable` (default false): with no usable ISR
    /// member, an out-of-sync replica may lead, and what only the ISR had is lost.
    pub fn with_unclean_leader_election(mut self, enabled: bool) -> Self {
        self.unclean_leader_election = enabled;
        self
    }

    /// A control with the same settings and no state (restoring a snapshot).
    pub fn config_copy(&self) -> Self {
        Self::new(self.session_timeout_ms)
            .with_unclean_leader_election(self.unclean_leader_election)
    }

    pub fn broker(&self, node: NodeId) -> Option<BrokerRegistration> {
        self.brokers.get(&node).copied()
    }

    pub fn partition(&self, key: &PartitionKey) -> Option<&PartitionRegistration> {
        self.partitions.get(key)
    }

    pub fn partitions(&self) -> impl Iterator<Item = (&PartitionKey, &PartitionRegistration)> {
        self.partitions.iter()
    }

    fn usable(&self, node: NodeId) -> bool {
        self.brokers.get(&node).is_some_and(|b| !b.fenced)
    }

    /// Replays one change. Every node applies the same changes in the same order.
    pub fn apply(&mut self, change: &MetadataChange) {
        match change {
            MetadataChange::RegisterBroker { node, incarnation } => {
                self.brokers.insert(
                    *node,
                    BrokerRegistration {
                        incarnation: *incarnation,
                        fenced: false,
                    },
                );
            }
            MetadataChange::FenceBroker { node } | MetadataChange::UnfenceBroker { node } => {
                let fenced = matches!(change, MetadataChange::FenceBroker { .. });
                self.brokers
                    .get_mut(node)
                    .expect("only registered brokers are fenced")
                    .fenced = fenced;
            }
            MetadataChange::Partition { key, registration } => {
                assert!(
                    !registration.isr.is_empty(),
                    "an ISR never empties: {key:?}"
                );
                assert!(
                    registration.leader == NO_LEADER
                        || registration.isr.contains(&registration.leader),
                    "leader {} of {key:?} is not in its ISR {:?}",
                    registration.leader,
                    registration.isr
                );
                if let Some(old) = self.partitions.get(key) {
                    assert!(
                        registration.partition_epoch > old.partition_epoch,
                        "partition epoch goes back"
                    );
                    assert!(
                        registration.leader_epoch >= old.leader_epoch,
                        "leader epoch goes back"
                    );
                }
                self.partitions.insert(key.clone(), registration.clone());
            }
            MetadataChange::RemovePartition { key } => {
                self.partitions.remove(key);
            }
        }
    }

    /// A newly active controller starts every registered broker's session now (heartbeat
    /// times are not replicated), so none is fenced for the time the election took.
    pub fn reset_sessions(&mut self, now_ms: u64) {
        let nodes: Vec<NodeId> = self.brokers.keys().copied().collect();
        for node in nodes {
            self.last_heartbeat_ms.insert(node, now_ms);
        }
    }

    /// The registered brokers.
    pub fn brokers(&self) -> impl Iterator<Item = (NodeId, BrokerRegistration)> + '_ {
        self.brokers.iter().map(|(&node, &broker)| (node, broker))
    }

    /// A new partition on `replicas`: led by the first unfenced one.
    pub fn create_partition(
        &self,
        key: PartitionKey,
        replicas: Vec<NodeId>,
    ) -> Vec<MetadataChange> {
        let isr: Vec<NodeId> = replicas
            .iter()
            .copied()
            .filter(|&n| self.usable(n))
            .collect();
        let (leader, isr) = match isr.first() {
            Some(&leader) => (leader, isr),
            None => (NO_LEADER, replicas.clone()),
        };
        let registration = PartitionRegistration {
            replicas,
            isr,
            leader,
            leader_epoch: 0,
            partition_epoch: 0,
        };
        vec![MetadataChange::Partition { key, registration }]
    }

    /// A broker (re)started. `clean_shutdown` is false after a crash: that broker leaves
    /// every ISR it shares with others (KIP-966), since its log may miss what it had
    /// acknowledged to the leader.
    pub fn register(
        &mut self,
        node: NodeId,
        incarnation: u64,
        clean_shutdown: bool,
        now_ms: u64,
    ) -> Vec<MetadataChange> {
        self.last_heartbeat_ms.insert(node, now_ms);
        let known = self.brokers.get(&node);
        if known.is_some_and(|b| b.incarnation == incarnation) {
            return self.heartbeat(node, now_ms);
        }
        let mut changes = vec![MetadataChange::RegisterBroker { node, incarnation }];
        let mut view = self.with_broker(node, incarnation, false);
        if !clean_shutdown {
            changes.extend(view.remove_from_isrs(node));
        }
        changes.extend(view.elect_leaderless());
        changes
    }

    /// A live broker's heartbeat; unfences it when fenced.
    pub fn heartbeat(&mut self, node: NodeId, now_ms: u64) -> Vec<MetadataChange> {
        self.last_heartbeat_ms.insert(node, now_ms);
        match self.brokers.get(&node) {
            Some(b) if b.fenced => {
                let mut view = self.with_broker(node, b.incarnation, false);
                let mut changes = vec![MetadataChange::UnfenceBroker { node }];
                changes.extend(view.elect_leaderless());
                changes
            }
            _ => Vec::new(),
        }
    }

    /// Fences the brokers whose session expired: out of ISRs, leadership moves on.
    pub fn expire(&self, now_ms: u64) -> Vec<MetadataChange> {
        let expired: Vec<NodeId> = self
            .brokers
            .iter()
            .filter(|(node, broker)| {
                let last = self.last_heartbeat_ms.get(node).copied().unwrap_or(0);
                !broker.fenced && now_ms.saturating_sub(last) > self.session_timeout_ms
            })
            .map(|(&node, _)| node)
            .collect();
        // All of them are fenced before any leader is chosen, so none is elected.
        let mut view = self.snapshot();
        let mut changes = Vec::new();
        for &node in &expired {
            changes.push(MetadataChange::FenceBroker { node });
            view.brokers.get_mut(&node).expect("registered").fenced = true;
        }
        for &node in &expired {
            changes.extend(view.remove_from_isrs(node));
        }
        if !expired.is_empty() {
            changes.extend(view.elect_leaderless());
        }
        changes
    }

    /// Controlled shutdown (a broker's heartbeat with `wantShutDown`): the broker is
    /// fenced at once and leaves the ISRs it shares, its partitions get new leaders from
    /// their ISRs, all before it stops, so producers fail over without waiting for the
    /// session timeout. It comes back with its next registration.
    pub fn controlled_shutdown(&self, node: NodeId) -> Vec<MetadataChange> {
        let Some(broker) = self.brokers.get(&node).filter(|broker| !broker.fenced) else {
            return Vec::new();
        };
        let mut view = self.snapshot();
        view.brokers.insert(
            node,
            BrokerRegistration {
                fenced: true,
                ..*broker
            },
        );
        let mut changes = vec![MetadataChange::FenceBroker { node }];
        changes.extend(view.remove_from_isrs(node));
        changes
    }

    /// Preferred leader election for every partition (`auto.leader.rebalance.enable`):
    /// the changes ElectLeaders PREFERRED would commit.
    pub fn elect_preferred_leaders(&self) -> Vec<MetadataChange> {
        self.elect_leaders(None, false).1
    }

    /// ElectLeaders for `keys` (None: every partition): PREFERRED makes the first
    /// replica leader when it is in the ISR and unfenced; UNCLEAN elects any unfenced
    /// replica for a partition without a leader (its ISR becomes just that replica).
    /// Answers each partition's outcome and the changes to commit; with `keys` None,
    /// partitions that need no election are left out of the outcomes, as in Kafka.
    pub fn elect_leaders(
        &self,
        keys: Option<Vec<PartitionKey>>,
        unclean: bool,
    ) -> (Vec<ElectionOutcome>, Vec<MetadataChange>) {
        let all = keys.is_none();
        let keys = keys.unwrap_or_else(|| self.partitions.keys().cloned().collect());
        let (mut outcomes, mut changes) = (Vec::new(), Vec::new());
        for key in keys {
            let outcome = match self.partitions.get(&key) {
                None => Err(ElectionError::UnknownPartition),
                Some(current) if unclean => {
                    if current.leader != NO_LEADER {
                        Err(ElectionError::NotNeeded)
                    } else if let Some(leader) =
                        current.replicas.iter().copied().find(|&n| self.usable(n))
                    {
                        changes.push(MetadataChange::Partition {
                            key: key.clone(),
                            registration: PartitionRegistration {
                                leader,
                                isr: vec![leader],
                                leader_epoch: current.leader_epoch + 1,
                                partition_epoch: current.partition_epoch + 1,
                                ..current.clone()
                            },
                        });
                        Ok(())
                    } else {
                        Err(ElectionError::EligibleLeadersNotAvailable)
                    }
                }
                Some(current) => {
                    let preferred = current.replicas.first().copied().unwrap_or(NO_LEADER);
                    if current.leader == preferred {
                        Err(ElectionError::NotNeeded)
                    } else if current.isr.contains(&preferred) && self.usable(preferred) {
                        changes.push(MetadataChange::Partition {
                            key: key.clone(),
                            registration: PartitionRegistration {
                                leader: preferred,
                                leader_epoch: current.leader_epoch + 1,
                                partition_epoch: current.partition_epoch + 1,
                                ..current.clone()
                            },
                        });
                        Ok(())
                    } else {
                        Err(ElectionError::PreferredLeaderNotAvailable)
                    }
                }
            };
            if !(all && outcome == Err(ElectionError::NotNeeded)) {
                outcomes.push((key, outcome));
            }
        }
        (outcomes, changes)
    }

    /// A leader's AlterPartition (Kafka's rules: current leader and partition epochs, the
    /// leader stays in, added members are unfenced replicas).
    pub fn alter_partition(
        &self,
        key: &PartitionKey,
        leader: NodeId,
        leader_epoch: i32,
        partition_epoch: i32,
        new_isr: &[NodeId],
    ) -> Result<(PartitionRegistration, Vec<MetadataChange>), ReplicationError> {
        let current = self
            .partitions
            .get(key)
            .ok_or(ReplicationError::NotLeaderOrFollower)?;
        if current.leader != leader {
            return Err(ReplicationError::NotLeaderOrFollower);
        }
        if leader_epoch != current.leader_epoch {
            return Err(ReplicationError::FencedLeaderEpoch);
        }
        if partition_epoch != current.partition_epoch {
            return Err(ReplicationError::InvalidUpdateVersion);
        }
        if !new_isr.contains(&leader) {
            return Err(ReplicationError::IneligibleReplica);
        }
        for member in new_isr {
            let added = !current.isr.contains(member);
            if !current.replicas.contains(member) || (added && !self.usable(*member)) {
                return Err(ReplicationError::IneligibleReplica);
            }
        }
        let mut isr: Vec<NodeId> = current
            .replicas
            .iter()
            .copied()
            .filter(|r| new_isr.contains(r))
            .collect();
        isr.dedup();
        let registration = PartitionRegistration {
            isr,
            partition_epoch: current.partition_epoch + 1,
            ..current.clone()
        };
        let change = MetadataChange::Partition {
            key: key.clone(),
            registration: registration.clone(),
        };
        Ok((registration, vec![change]))
    }

    fn snapshot(&self) -> Planner {
        Planner {
            brokers: self.brokers.clone(),
            partitions: self.partitions.clone(),
            unclean_leader_election: self.unclean_leader_election,
        }
    }

    fn with_broker(&self, node: NodeId, incarnation: u64, fenced: bool) -> Planner {
        let mut view = self.snapshot();
        view.brokers.insert(
            node,
            BrokerRegistration {
                incarnation,
                fenced,
            },
        );
        view
    }
}

/// A working copy of the state a decision plans on, so that several changes of one
/// decision see each other.
struct Planner {
    brokers: BTreeMap<NodeId, BrokerRegistration>,
    partitions: BTreeMap<PartitionKey, PartitionRegistration>,
    unclean_leader_election: bool,
}

impl Planner {
    fn usable(&self, node: NodeId) -> bool {
        self.brokers.get(&node).is_some_and(|b| !b.fenced)
    }

    fn change(
        &mut self,
        key: &PartitionKey,
        registration: PartitionRegistration,
    ) -> MetadataChange {
        self.partitions.insert(key.clone(), registration.clone());
        MetadataChange::Partition {
            key: key.clone(),
            registration,
        }
    }

    /// `node` leaves every ISR where someone else remains; where it led, the first usable
    /// remaining member leads (or nobody, until one is usable).
    fn remove_from_isrs(&mut self, node: NodeId) -> Vec<MetadataChange> {
        let keys: Vec<PartitionKey> = self.partitions.keys().cloned().collect();
        let mut changes = Vec::new();
        for key in keys {
            let current = self.partitions[&key].clone();
            let isr: Vec<NodeId> = current.isr.iter().copied().filter(|&n| n != node).collect();
            // It leaves the ISR only if someone remains; the leader moves on regardless.
            let leaves_isr = isr.len() != current.isr.len() && !isr.is_empty();
            let loses_leader = current.leader == node;
            if !leaves_isr && !loses_leader {
                continue;
            }
            let isr = if isr.is_empty() {
                current.isr.clone()
            } else {
                isr
            };
            let mut next = PartitionRegistration {
                isr,
                partition_epoch: current.partition_epoch + 1,
                ..current.clone()
            };
            if loses_leader {
                next.leader = next
                    .isr
                    .iter()
                    .copied()
                    .find(|&n| n != node && self.usable(n))
                    .unwrap_or(NO_LEADER);
                next.leader_epoch += 1;
            }
            changes.push(self.change(&key, next));
        }
        changes
    }

    /// Partitions without a leader get the first usable ISR member.
    fn elect_leaderless(&mut self) -> Vec<MetadataChange> {
        let keys: Vec<PartitionKey> = self.partitions.keys().cloned().collect();
        let mut changes = Vec::new();
        for key in keys {
            let current = self.partitions[&key].clone();
            if current.leader != NO_LEADER {
                continue;
            }
            let clean = current.isr.iter().copied().find(|&n| self.usable(n));
            let unclean = || current.replicas.iter().copied().find(|&n| self.usable(n));
            let (leader, isr) = match clean {
                Some(leader) => (leader, current.isr.clone()),
                None => match unclean().filter(|_| self.unclean_leader_election) {
                    Some(leader) => (leader, vec![leader]),
                    None => continue,
                },
            };
            let next = PartitionRegistration {
                leader,
                isr,
                leader_epoch: current.leader_epoch + 1,
                partition_epoch: current.partition_epoch + 1,
                ..current
            };
            changes.push(self.change(&key, next));
        }
        changes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> PartitionKey {
        ("t".to_string(), 0)
    }

    fn cluster() -> ReplicationControl {
        let mut control = ReplicationControl::new(100);
        for node in 1..=3 {
            for change in control.register(node, 1, true, 0) {
                control.apply(&change);
            }
        }
        for change in control.create_partition(key(), vec![1, 2, 3]) {
            control.apply(&change);
        }
        control
    }

    fn apply(control: &mut ReplicationControl, changes: Vec<MetadataChange>) {
        for change in &changes {
            control.apply(change);
        }
    }

    #[test]
    fn a_new_partition_is_led_by_its_first_replica_with_all_in_sync() {
        let control = cluster();
        let p = control.partition(&key()).expect("created");
        assert_eq!(
            (p.leader, p.isr.clone(), p.leader_epoch),
            (1, vec![1, 2, 3], 0)
        );
    }

    #[test]
    fn an_expired_leader_is_fenced_and_replaced_from_the_isr() {
        let mut control = cluster();
        for node in [2, 3] {
            let changes = control.heartbeat(node, 150);
            apply(&mut control, changes);
        }
        let changes = control.expire(150);
        assert_eq!(changes[0], MetadataChange::FenceBroker { node: 1 });
        apply(&mut control, changes);
        let p = control.partition(&key()).expect("exists");
        assert_eq!(
            (p.leader, p.isr.clone(), p.leader_epoch, p.partition_epoch),
            (2, vec![2, 3], 1, 1)
        );
        assert!(control.broker(1).expect("known").fenced);
    }

    #[test]
    fn the_last_isr_member_stays_and_leads_again_when_it_returns() {
        let mut control = cluster();
        let changes = control.expire(1000);
        apply(&mut control, changes);
        let p = control.partition(&key()).expect("exists").clone();
        assert_eq!(p.leader, NO_LEADER, "no unclean election");
        assert_eq!(p.isr.len(), 1, "the last member stays: {p:?}");
        let last = p.isr[0];
        let other = [1, 2, 3]
            .into_iter()
            .find(|&n| n != last)
            .expect("three brokers");
        let changes = control.heartbeat(other, 1100);
        apply(&mut control, changes);
        assert_eq!(
            control.partition(&key()).expect("exists").leader,
            NO_LEADER,
            "only ISR members lead"
        );
        let changes = control.heartbeat(last, 1100);
        apply(&mut control, changes);
        let p2 = control.partition(&key()).expect("exists");
        assert_eq!((p2.leader, p2.leader_epoch), (last, p.leader_epoch + 1));
    }

    #[test]
    fn alter_partition_checks_epochs_and_eligibility() {
        let mut control = cluster();
        let stale = control.alter_partition(&key(), 1, 0, 5, &[1, 2]);
        assert_eq!(stale.err(), Some(ReplicationError::InvalidUpdateVersion));
        let fenced = control.alter_partition(&key(), 1, 3, 0, &[1, 2]);
        assert_eq!(fenced.err(), Some(ReplicationError::FencedLeaderEpoch));
        let (shrunk, changes) = control
            .alter_partition(&key(), 1, 0, 0, &[1, 2])
            .expect("valid");
        assert_eq!(
            (shrunk.isr.clone(), shrunk.partition_epoch),
            (vec![1, 2], 1)
        );
        apply(&mut control, changes);
        // Broker 3 is fenced now: it cannot be added back.
        for node in [1, 2] {
            let changes = control.heartbeat(node, 150);
            apply(&mut control, changes);
        }
        let changes = control.expire(150);
        apply(&mut control, changes);
        let ineligible = control.alter_partition(&key(), 1, 0, 1, &[1, 2, 3]);
        assert_eq!(ineligible.err(), Some(ReplicationError::IneligibleReplica));
    }

    #[test]
    fn a_controlled_shutdown_moves_leadership_before_the_broker_stops() {
        let mut control = cluster();
        let changes = control.controlled_shutdown(1);
        assert_eq!(changes[0], MetadataChange::FenceBroker { node: 1 });
        apply(&mut control, changes);
        let p = control.partition(&key()).expect("exists");
        assert_eq!(
            (p.leader, p.isr.clone(), p.leader_epoch),
            (2, vec![2, 3], 1)
        );
        assert!(control.controlled_shutdown(1).is_empty(), "already out");
        // Back with a clean restart: unfenced, and preferred leader election returns it
        // the leadership once it is in sync again.
        let changes = control.register(1, 2, true, 10);
        apply(&mut control, changes);
        assert!(
            control.elect_preferred_leaders().is_empty(),
            "not in the ISR yet"
        );
        let (_, changes) = control
            .alter_partition(&key(), 2, 1, 1, &[1, 2, 3])
            .expect("caught up");
        apply(&mut control, changes);
        let changes = control.elect_preferred_leaders();
        apply(&mut control, changes);
        let p = control.partition(&key()).expect("exists");
        assert_eq!((p.leader, p.leader_epoch), (1, 2));
        assert!(control.elect_preferred_leaders().is_empty());
    }

    #[test]
    fn elect_leaders_reports_each_partition_and_skips_unneeded_ones_for_all() {
        let mut control = cluster();
        let other: PartitionKey = ("t".to_string(), 1);
        let changes = control.create_partition(other.clone(), vec![2, 1, 3]);
        apply(&mut control, changes);
        let changes = control.controlled_shutdown(1);
        apply(&mut control, changes);
        let missing: PartitionKey = ("nope".to_string(), 0);
        let (outcomes, changes) =
            control.elect_leaders(Some(vec![key(), other.clone(), missing.clone()]), false);
        assert!(changes.is_empty());
        assert_eq!(
            outcomes,
            vec![
                (key(), Err(ElectionError::PreferredLeaderNotAvailable)),
                (other.clone(), Err(ElectionError::NotNeeded)),
                (missing, Err(ElectionError::UnknownPartition)),
            ]
        );
        let (outcomes, _) = control.elect_leaders(None, false);
        assert_eq!(
            outcomes,
            vec![(key(), Err(ElectionError::PreferredLeaderNotAvailable))]
        );
        // Unclean: only partitions without a leader, from any unfenced replica.
        let (outcomes, changes) = control.elect_leaders(Some(vec![key()]), true);
        assert_eq!(
            (outcomes[0].1, changes.len()),
            (Err(ElectionError::NotNeeded), 0)
        );
    }

    #[test]
    fn an_unclean_restart_leaves_the_isrs_it_shares() {
        let mut control = cluster();
        let changes = control.register(2, 2, false, 10);
        apply(&mut control, changes);
        let p = control.partition(&key()).expect("exists");
        assert_eq!((p.isr.clone(), p.leader), (vec![1, 3], 1));
        let changes = control.register(3, 2, true, 10);
        assert_eq!(
            changes,
            vec![MetadataChange::RegisterBroker {
                node: 3,
                incarnation: 2
            }]
        );
    }
}
