//! The leader's side of a partition: follower progress, the high watermark, ISR changes
//! and acks=all (Kafka's `Partition` + `Replica` on the leader).
//!
//! ```text
//!  follower fetch(offset o, last fetched epoch e) ─► e ends before o here? ─► Diverging(epoch, end)
//!                                                 └► follower LEO = o, caught-up time ─► HW = min LEO(maximal ISR)
//!  tick / after a fetch ─► ISR change? (lagging > replica.lag.time.max.ms out; caught up in)
//!                      ─► one AlterPartition in flight, retried after ALTER_PARTITION_RETRY_MS
//!  produce acks=all ─► ISR < min.insync.replicas? NOT_ENOUGH_REPLICAS
//!                  ─► append ─► wait until HW > last offset ─► ISR still ≥ min? ok : ..._AFTER_APPEND
//! ```
//!
//! The high watermark only moves forward. It may start below the previous leader's (a
//! new leader learns the followers' progress from their fetches) and then catches up.

use std::collections::BTreeMap;

use weir_storage::epochs::end_offset_for_epoch;

use super::{NodeId, PartitionRegistration, ReplicationError};

/// How long an AlterPartition may stay unanswered before the leader proposes again.
pub const ALTER_PARTITION_RETRY_MS: u64 = 500;

/// The leader's knobs (Kafka's `replica.lag.time.max.ms`, `min.insync.replicas`).
#[derive(Clone, Copy, Debug)]
pub struct LeaderConfig {
    pub replica_lag_time_max_ms: u64,
    pub min_insync_replicas: usize,
}

/// What the leader knows about one follower since it became leader.
#[derive(Clone, Copy, Debug)]
struct FollowerProgress {
    /// Unknown until the follower fetches from this leader.
    log_end_offset: Option<i64>,
    last_caught_up_ms: u64,
    last_fetch_ms: u64,
    last_fetch_leader_log_end_offset: i64,
    /// The follower's log start, as its fetches report it (None: not yet reported).
    log_start_offset: Option<i64>,
}

/// An AlterPartition the leader wants sent to the controller.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AlterPartition {
    /// Matches the answer to this proposal (answers to older ones are ignored).
    pub proposal_id: u64,
    pub leader: NodeId,
    pub leader_epoch: i32,
    pub partition_epoch: i32,
    pub new_isr: Vec<NodeId>,
}

/// The answer to a follower's fetch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FollowerFetch {
    /// The follower's last fetched epoch ends at `end_offset` here: it truncates first.
    Diverging { epoch: i32, end_offset: i64 },
    /// Serve records from the fetch offset; `high_watermark` goes in the response.
    Read { high_watermark: i64 },
}

/// Leader state of one partition for one leader epoch.
#[derive(Debug)]
pub struct LeaderState {
    node: NodeId,
    config: LeaderConfig,
    registration: PartitionRegistration,
    followers: BTreeMap<NodeId, FollowerProgress>,
    /// The proposal in flight: (id, sent at).
    in_flight: Option<(u64, u64)>,
    next_proposal_id: u64,
    /// Members proposed for addition against partition epoch `.0`. Any copy of such a
    /// proposal (a retry, a late duplicate) may still be accepted until the registration
    /// moves past that epoch, so until then they count for the high watermark — even
    /// after a refusal or a timeout.
    uncertain_additions: Option<(i32, Vec<NodeId>)>,
    /// No new proposal before this time (after a refusal or a timeout).
    propose_after_ms: u64,
    high_watermark: i64,
    /// The log end offset when this epoch started: a follower joins the ISR only past it.
    epoch_start_offset: i64,
}

impl LeaderState {
    /// Becomes leader of `registration` (whose leader must be `node`). The caller has
    /// assigned the epoch at `log_end_offset` in the leader epoch cache.
    pub fn new(
        node: NodeId,
        config: LeaderConfig,
        registration: PartitionRegistration,
        log_end_offset: i64,
        high_watermark: i64,
        now_ms: u64,
    ) -> Self {
        assert_eq!(
            registration.leader, node,
            "only the registered leader leads"
        );
        assert!(
            high_watermark <= log_end_offset,
            "high watermark past the log end"
        );
        let followers = registration
            .replicas
            .iter()
            .filter(|&&replica| replica != node)
            .map(|&replica| {
                let progress = FollowerProgress {
                    log_end_offset: None,
                    // Kafka's resetReplicaState: in-sync followers count as caught up now.
                    last_caught_up_ms: if registration.isr.contains(&replica) {
                        now_ms
                    } else {
                        0
                    },
                    last_fetch_ms: 0,
                    last_fetch_leader_log_end_offset: 0,
                    log_start_offset: None,
                };
                (replica, progress)
            })
            .collect();
        Self {
            node,
            config,
            registration,
            followers,
            in_flight: None,
            next_proposal_id: 1,
            uncertain_additions: None,
            propose_after_ms: 0,
            high_watermark,
            epoch_start_offset: log_end_offset,
        }
    }

    /// A follower's fetch reported its log start; answers whether it changed.
    pub fn set_follower_log_start(&mut self, follower: NodeId, log_start_offset: i64) -> bool {
        match self.followers.get_mut(&follower) {
            Some(progress) if progress.log_start_offset != Some(log_start_offset) => {
                progress.log_start_offset = Some(log_start_offset);
                true
            }
            _ => false,
        }
    }

    /// Kafka's low watermark: the smallest log start among this leader (`leader_log_start`)
    /// and the ISR's followers that reported theirs (DeleteRecords answers once it passed
    /// the requested offset).
    pub fn low_watermark(&self, leader_log_start: i64) -> i64 {
        self.registration
            .isr
            .iter()
            .filter_map(|member| self.followers.get(member)?.log_start_offset)
            .fold(leader_log_start, i64::min)
    }

    /// New knobs (a changed `min.insync.replicas` or `replica.lag.time.max.ms`).
    pub fn set_config(&mut self, config: LeaderConfig) {
        self.config = config;
    }

    pub fn leader_epoch(&self) -> i32 {
        self.registration.leader_epoch
    }

    pub fn registration(&self) -> &PartitionRegistration {
        &self.registration
    }

    pub fn high_watermark(&self) -> i64 {
        self.high_watermark
    }

    /// The ISR the high watermark waits for: the committed one plus every member a
    /// still-acceptable proposal adds.
    pub fn maximal_isr(&self) -> Vec<NodeId> {
        let mut isr = self.registration.isr.clone();
        if let Some((_, added)) = &self.uncertain_additions {
            isr.extend(
                added
                    .iter()
                    .filter(|node| !self.registration.isr.contains(node)),
            );
        }
        isr
    }

    /// A newer registration of the same leader epoch (an ISR change the controller
    /// committed). Answers false when it ends this leadership (new epoch or leader).
    pub fn update_registration(&mut self, registration: &PartitionRegistration) -> bool {
        if registration.leader != self.node
            || registration.leader_epoch != self.registration.leader_epoch
        {
            return false;
        }
        if registration.partition_epoch > self.registration.partition_epoch {
            // Every proposal in flight was made against an older partition epoch: it is
            // either in this registration or can no longer be accepted.
            self.registration = registration.clone();
            self.in_flight = None;
            self.uncertain_additions = None;
        }
        true
    }

    /// A follower fetched at `fetch_offset`, its last record being of `last_fetched_epoch`
    /// (None for an empty log). `log_end_offset` and `epochs` are the leader's log.
    #[allow(clippy::too_many_arguments)]
    pub fn on_follower_fetch(
        &mut self,
        follower: NodeId,
        current_leader_epoch: i32,
        fetch_offset: i64,
        last_fetched_epoch: Option<i32>,
        log_start_offset: i64,
        log_end_offset: i64,
        epochs: &[(i32, i64)],
        now_ms: u64,
    ) -> Result<FollowerFetch, ReplicationError> {
        self.check_epoch(current_leader_epoch)?;
        if !self.followers.contains_key(&follower) {
            return Err(ReplicationError::UnknownReplica);
        }
        if let Some(last_epoch) = last_fetched_epoch {
            let (epoch, end_offset) = end_offset_for_epoch(epochs, last_epoch, log_end_offset);
            if end_offset < fetch_offset || epoch < last_epoch {
                return Ok(FollowerFetch::Diverging { epoch, end_offset });
            }
        }
        if fetch_offset < log_start_offset || fetch_offset > log_end_offset {
            return Err(ReplicationError::OffsetOutOfRange);
        }
        let progress = self.followers.get_mut(&follower).expect("checked above");
        if fetch_offset >= log_end_offset {
            progress.last_caught_up_ms = progress.last_caught_up_ms.max(now_ms);
        } else if fetch_offset >= progress.last_fetch_leader_log_end_offset {
            progress.last_caught_up_ms = progress.last_caught_up_ms.max(progress.last_fetch_ms);
        }
        progress.log_end_offset = Some(fetch_offset);
        progress.last_fetch_ms = now_ms;
        progress.last_fetch_leader_log_end_offset = log_end_offset;
        self.advance_high_watermark(log_end_offset);
        Ok(FollowerFetch::Read {
            high_watermark: self.high_watermark,
        })
    }

    /// After an append (or at any time): moves the high watermark to the smallest log
    /// end offset of the maximal ISR. Answers whether it moved.
    pub fn advance_high_watermark(&mut self, log_end_offset: i64) -> bool {
        let mut candidate = log_end_offset;
        for member in self.maximal_isr() {
            if member == self.node {
                continue;
            }
            match self.followers.get(&member).and_then(|p| p.log_end_offset) {
                Some(end) => candidate = candidate.min(end),
                None => return false,
            }
        }
        if candidate > self.high_watermark {
            self.high_watermark = candidate;
            true
        } else {
            false
        }
    }

    /// Whether an acks=all produce may append now (Kafka checks the committed ISR).
    pub fn check_produce(&self) -> Result<(), ReplicationError> {
        if self.registration.isr.len() < self.config.min_insync_replicas {
            return Err(ReplicationError::NotEnoughReplicas);
        }
        Ok(())
    }

    /// An acks=all append ending at `last_offset`: None while it waits, then its answer.
    pub fn ack_status(&self, last_offset: i64) -> Option<Result<(), ReplicationError>> {
        if self.high_watermark <= last_offset {
            return None;
        }
        Some(
            if self.registration.isr.len() >= self.config.min_insync_replicas {
                Ok(())
            } else {
                Err(ReplicationError::NotEnoughReplicasAfterAppend)
            },
        )
    }

    /// The ISR change to propose now, if any: lagging members out, caught-up replicas in.
    /// One proposal is in flight at a time; an unanswered one is re-proposed after
    /// [`ALTER_PARTITION_RETRY_MS`]. While refused or expired additions may still be
    /// accepted, the leader proposes even an unchanged ISR: its acceptance moves the
    /// partition epoch past them.
    pub fn isr_change(&mut self, log_end_offset: i64, now_ms: u64) -> Option<AlterPartition> {
        if let Some((_, sent_ms)) = self.in_flight {
            if now_ms < sent_ms + ALTER_PARTITION_RETRY_MS {
                return None;
            }
            self.in_flight = None;
        }
        if now_ms < self.propose_after_ms {
            return None;
        }
        let lag_ms = self.config.replica_lag_time_max_ms;
        let high_watermark = self.high_watermark;
        let epoch_start = self.epoch_start_offset;
        let isr = &self.registration.isr;
        let mut new_isr = Vec::with_capacity(self.registration.replicas.len());
        for &replica in &self.registration.replicas {
            if replica == self.node {
                new_isr.push(replica);
                continue;
            }
            let progress = &self.followers[&replica];
            let keep = if isr.contains(&replica) {
                now_ms.saturating_sub(progress.last_caught_up_ms) <= lag_ms
            } else {
                progress.log_end_offset.is_some_and(|end| {
                    end >= high_watermark && end >= epoch_start && end <= log_end_offset
                }) && now_ms.saturating_sub(progress.last_caught_up_ms) <= lag_ms
            };
            if keep {
                new_isr.push(replica);
            }
        }
        if &new_isr == isr && self.uncertain_additions.is_none() {
            return None;
        }
        let base_epoch = self.registration.partition_epoch;
        let added = new_isr.iter().copied().filter(|node| !isr.contains(node));
        let uncertain = self
            .uncertain_additions
            .get_or_insert_with(|| (base_epoch, Vec::new()));
        for node in added {
            if !uncertain.1.contains(&node) {
                uncertain.1.push(node);
            }
        }
        let proposal_id = self.next_proposal_id;
        self.next_proposal_id += 1;
        self.in_flight = Some((proposal_id, now_ms));
        Some(AlterPartition {
            proposal_id,
            leader: self.node,
            leader_epoch: self.registration.leader_epoch,
            partition_epoch: self.registration.partition_epoch,
            new_isr,
        })
    }

    /// The controller's answer to proposal `proposal_id`.
    pub fn on_alter_partition_response(
        &mut self,
        proposal_id: u64,
        answer: Result<PartitionRegistration, ReplicationError>,
        now_ms: u64,
    ) {
        match answer {
            // A registration is news whichever proposal it answers.
            Ok(registration) => {
                self.update_registration(&registration);
            }
            Err(_) if self.in_flight.is_some_and(|(id, _)| id == proposal_id) => {
                // Stale epochs: the registration that fixes it arrives with metadata.
                self.in_flight = None;
                self.propose_after_ms = now_ms + ALTER_PARTITION_RETRY_MS;
            }
            Err(_) => {}
        }
    }

    fn check_epoch(&self, current_leader_epoch: i32) -> Result<(), ReplicationError> {
        use std::cmp::Ordering::*;
        match current_leader_epoch.cmp(&self.registration.leader_epoch) {
            Less => Err(ReplicationError::FencedLeaderEpoch),
            Greater => Err(ReplicationError::UnknownLeaderEpoch),
            Equal => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONFIG: LeaderConfig = LeaderConfig {
        replica_lag_time_max_ms: 1000,
        min_insync_replicas: 2,
    };

    fn registration(isr: &[NodeId]) -> PartitionRegistration {
        PartitionRegistration {
            replicas: vec![1, 2, 3],
            isr: isr.to_vec(),
            leader: 1,
            leader_epoch: 4,
            partition_epoch: 7,
        }
    }

    fn fetch(
        leader: &mut LeaderState,
        follower: NodeId,
        offset: i64,
        leo: i64,
        now_ms: u64,
    ) -> FollowerFetch {
        leader
            .on_follower_fetch(follower, 4, offset, Some(4), 0, leo, &[(4, 0)], now_ms)
            .expect("fetch accepted")
    }

    #[test]
    fn the_high_watermark_waits_for_every_in_sync_follower() {
        let mut leader = LeaderState::new(1, CONFIG, registration(&[1, 2, 3]), 0, 0, 0);
        assert!(
            !leader.advance_high_watermark(10),
            "followers' progress is unknown"
        );
        assert_eq!(
            fetch(&mut leader, 2, 10, 10, 1),
            FollowerFetch::Read { high_watermark: 0 }
        );
        assert_eq!(
            fetch(&mut leader, 3, 6, 10, 2),
            FollowerFetch::Read { high_watermark: 6 }
        );
        assert_eq!(
            fetch(&mut leader, 3, 10, 10, 3),
            FollowerFetch::Read { high_watermark: 10 }
        );
        assert_eq!(leader.ack_status(9), Some(Ok(())));
        assert_eq!(leader.ack_status(10), None);
    }

    #[test]
    fn a_follower_with_a_newer_last_epoch_than_the_leader_has_diverged() {
        let mut leader = LeaderState::new(1, CONFIG, registration(&[1, 2, 3]), 20, 20, 0);
        let epochs = [(2, 0), (4, 20)];
        // The follower kept records of epoch 3 the leader never had: epoch 3 ends at 20 here.
        let answer = leader.on_follower_fetch(2, 4, 25, Some(3), 0, 30, &epochs, 1);
        assert_eq!(
            answer,
            Ok(FollowerFetch::Diverging {
                epoch: 2,
                end_offset: 20
            })
        );
        let answer = leader.on_follower_fetch(2, 4, 20, Some(2), 0, 30, &epochs, 1);
        assert_eq!(answer, Ok(FollowerFetch::Read { high_watermark: 20 }));
    }

    #[test]
    fn stale_and_future_leader_epochs_are_refused() {
        let mut leader = LeaderState::new(1, CONFIG, registration(&[1, 2, 3]), 0, 0, 0);
        let stale = leader.on_follower_fetch(2, 3, 0, None, 0, 0, &[(4, 0)], 1);
        assert_eq!(stale, Err(ReplicationError::FencedLeaderEpoch));
        let future = leader.on_follower_fetch(2, 5, 0, None, 0, 0, &[(4, 0)], 1);
        assert_eq!(future, Err(ReplicationError::UnknownLeaderEpoch));
    }

    #[test]
    fn a_lagging_follower_leaves_the_isr_and_a_caught_up_one_returns() {
        let mut leader = LeaderState::new(1, CONFIG, registration(&[1, 2, 3]), 0, 0, 0);
        fetch(&mut leader, 2, 0, 50, 10);
        fetch(&mut leader, 3, 0, 50, 10);
        for now in (100..=1000).step_by(100) {
            fetch(&mut leader, 2, 50, 50, now);
        }
        assert_eq!(
            leader.isr_change(50, 1000),
            None,
            "3 is exactly at the lag limit"
        );
        let shrink = leader.isr_change(50, 1100).expect("3 lags");
        assert_eq!(shrink.new_isr, vec![1, 2]);
        assert_eq!(
            leader.maximal_isr(),
            vec![1, 2, 3],
            "a shrink counts once committed"
        );
        assert_eq!(leader.isr_change(50, 1200), None, "one proposal in flight");
        leader.on_alter_partition_response(
            shrink.proposal_id,
            Ok(PartitionRegistration {
                isr: vec![1, 2],
                partition_epoch: 8,
                ..registration(&[])
            }),
            1200,
        );
        assert_eq!(leader.registration().isr, vec![1, 2]);
        assert!(leader.advance_high_watermark(50));
        assert_eq!(leader.high_watermark(), 50);
        assert_eq!(leader.ack_status(49), Some(Ok(())));

        fetch(&mut leader, 3, 50, 50, 1300);
        let expand = leader.isr_change(50, 1300).expect("3 caught up");
        assert_eq!(expand.new_isr, vec![1, 2, 3]);
        assert_eq!(leader.maximal_isr(), vec![1, 2, 3]);
        assert!(
            !leader.advance_high_watermark(60),
            "the pending member holds the HW at its end"
        );
    }

    #[test]
    fn a_refused_addition_counts_until_the_partition_epoch_moves_past_it() {
        let mut leader = LeaderState::new(1, CONFIG, registration(&[1, 2]), 50, 50, 0);
        fetch(&mut leader, 2, 50, 50, 10);
        fetch(&mut leader, 3, 50, 50, 10);
        let first = leader.isr_change(50, 10).expect("3 caught up");
        // No answer: the proposal expires and goes again; a late refusal of the first
        // copy changes nothing, and even a refusal of the second keeps 3 counted, since
        // the first copy may still be accepted.
        let second = leader
            .isr_change(50, 10 + ALTER_PARTITION_RETRY_MS)
            .expect("re-proposed");
        assert_ne!(first.proposal_id, second.proposal_id);
        leader.on_alter_partition_response(
            first.proposal_id,
            Err(ReplicationError::IneligibleReplica),
            600,
        );
        leader.on_alter_partition_response(
            second.proposal_id,
            Err(ReplicationError::IneligibleReplica),
            600,
        );
        fetch(&mut leader, 2, 60, 60, 700);
        assert_eq!(leader.high_watermark(), 50, "3 (at 50) may be in the ISR");
        // 3 falls behind and is never added: the leader proposes the unchanged ISR so that
        // its acceptance retires every copy.
        let now = 700 + CONFIG.replica_lag_time_max_ms + ALTER_PARTITION_RETRY_MS;
        fetch(&mut leader, 2, 60, 60, now);
        let retire = leader
            .isr_change(60, now)
            .expect("retires the uncertain addition");
        assert_eq!(
            (retire.new_isr.clone(), retire.partition_epoch),
            (vec![1, 2], 7)
        );
        let next = PartitionRegistration {
            isr: vec![1, 2],
            partition_epoch: 8,
            ..registration(&[])
        };
        leader.on_alter_partition_response(retire.proposal_id, Ok(next), now);
        assert_eq!(leader.maximal_isr(), vec![1, 2]);
        assert!(leader.advance_high_watermark(60));
        assert_eq!(leader.isr_change(60, now + 1000), None);
    }

    #[test]
    fn acks_all_needs_min_insync_replicas_before_and_after_the_append() {
        let mut leader = LeaderState::new(1, CONFIG, registration(&[1]), 0, 0, 0);
        assert_eq!(
            leader.check_produce(),
            Err(ReplicationError::NotEnoughReplicas)
        );
        let mut leader2 = LeaderState::new(1, CONFIG, registration(&[1, 2]), 0, 0, 0);
        assert_eq!(leader2.check_produce(), Ok(()));
        leader2.update_registration(&PartitionRegistration {
            isr: vec![1],
            partition_epoch: 8,
            ..registration(&[])
        });
        leader2.advance_high_watermark(5);
        assert_eq!(
            leader2.ack_status(4),
            Some(Err(ReplicationError::NotEnoughReplicasAfterAppend))
        );
        leader.advance_high_watermark(5);
        assert_eq!(
            leader.high_watermark(),
            5,
            "a single-member ISR commits alone"
        );
    }

    #[test]
    fn a_refused_proposal_waits_before_the_next() {
        let mut leader = LeaderState::new(1, CONFIG, registration(&[1, 2, 3]), 0, 0, 0);
        fetch(&mut leader, 2, 0, 0, 10);
        let proposal = leader.isr_change(0, 2000).expect("3 lags");
        leader.on_alter_partition_response(
            proposal.proposal_id,
            Err(ReplicationError::InvalidUpdateVersion),
            2000,
        );
        assert_eq!(leader.isr_change(0, 2100), None);
        assert!(
            leader
                .isr_change(0, 2000 + ALTER_PARTITION_RETRY_MS)
                .is_some()
        );
    }
}
