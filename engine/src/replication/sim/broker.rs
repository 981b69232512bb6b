//! A simulated broker: one partition's log (in memory, surviving a crash like the page
//! cache does), its high watermark, and the leader or follower state machine it runs.

use super::{FETCH_MAX_RECORDS, Msg};
use crate::replication::follower::{
    FetchTiming, FollowerState, follower_high_watermark, truncation_offset,
};
use crate::replication::leader::{FollowerFetch, LeaderConfig, LeaderState};
use crate::replication::{NO_LEADER, NodeId, PartitionRegistration, ReplicationError};
use weir_storage::epochs;

/// A record in the model log: the leader epoch it was appended in and its value.
pub type Record = (i32, u64);

pub enum Role {
    None,
    Leader {
        state: LeaderState,
        /// Produce requests waiting for the high watermark: (request id, last offset).
        waiting: Vec<(u64, i64)>,
    },
    Follower {
        state: FollowerState,
        /// Tags this follower state's fetches so a late answer to an older one is dropped.
        generation: u64,
    },
}

pub struct Broker {
    pub id: NodeId,
    pub incarnation: u64,
    pub records: Vec<Record>,
    pub epochs: Vec<(i32, i64)>,
    pub high_watermark: i64,
    /// What `replication-offset-checkpoint` holds: the high watermark at the last checkpoint.
    pub checkpointed_high_watermark: i64,
    pub registration: Option<PartitionRegistration>,
    pub role: Role,
    /// The last stop was a controlled shutdown (the next registration says so).
    pub stopped_cleanly: bool,
    generation: u64,
    leader_config: LeaderConfig,
    fetch_timing: FetchTiming,
}

impl Broker {
    pub fn new(id: NodeId, leader_config: LeaderConfig, fetch_timing: FetchTiming) -> Self {
        Self {
            id,
            incarnation: 1,
            records: Vec::new(),
            epochs: Vec::new(),
            high_watermark: 0,
            checkpointed_high_watermark: 0,
            registration: None,
            role: Role::None,
            stopped_cleanly: false,
            generation: 0,
            leader_config,
            fetch_timing,
        }
    }

    pub fn log_end_offset(&self) -> i64 {
        self.records.len() as i64
    }

    /// kill -9: the process state goes; the log (page cache) and checkpoints stay.
    pub fn crash(&mut self) {
        self.stopped_cleanly = false;
        self.role = Role::None;
        self.registration = None;
        self.high_watermark = self.checkpointed_high_watermark.min(self.log_end_offset());
    }

    pub fn restart(&mut self) {
        self.incarnation += 1;
    }

    /// A registration from the controller (pushed, or in a heartbeat answer). Older ones
    /// are ignored. Answers the messages to send (failed produce answers).
    pub fn on_registration(
        &mut self,
        registration: &PartitionRegistration,
        now_ms: u64,
    ) -> Vec<(NodeId, Msg)> {
        if self
            .registration
            .as_ref()
            .is_some_and(|known| known.partition_epoch >= registration.partition_epoch)
        {
            return Vec::new();
        }
        self.registration = Some(registration.clone());
        if registration.leader == self.id {
            if let Role::Leader { state, .. } = &mut self.role
                && state.update_registration(registration)
            {
                return Vec::new();
            }
            let failed = self.fail_waiting();
            let leo = self.log_end_offset();
            epochs::assign(&mut self.epochs, registration.leader_epoch, leo);
            let state = LeaderState::new(
                self.id,
                self.leader_config,
                registration.clone(),
                leo,
                self.high_watermark,
                now_ms,
            );
            self.role = Role::Leader {
                state,
                waiting: Vec::new(),
            };
            return failed;
        }
        if let Role::Follower { state, .. } = &self.role
            && state.leader() == registration.leader
            && state.leader_epoch() == registration.leader_epoch
        {
            return Vec::new();
        }
        let failed = self.fail_waiting();
        self.role = if registration.leader == NO_LEADER {
            Role::None
        } else {
            self.generation += 1;
            Role::Follower {
                state: FollowerState::new(
                    registration.leader,
                    registration.leader_epoch,
                    self.fetch_timing,
                ),
                generation: self.generation,
            }
        };
        failed
    }

    fn fail_waiting(&mut self) -> Vec<(NodeId, Msg)> {
        match std::mem::replace(&mut self.role, Role::None) {
            Role::Leader { waiting, .. } => waiting
                .into_iter()
                .map(|(id, _)| {
                    let answer = Msg::ProduceAnswer {
                        id,
                        result: Err(ReplicationError::NotLeaderOrFollower),
                    };
                    (super::PRODUCER, answer)
                })
                .collect(),
            _ => Vec::new(),
        }
    }

    /// Periodic work: a follower's next fetch, a leader's ISR change and acks.
    pub fn tick(&mut self, now_ms: u64) -> Vec<(NodeId, Msg)> {
        let leo = self.log_end_offset();
        let mut out = Vec::new();
        match &mut self.role {
            Role::Follower { state, generation } => {
                if let Some(fetch) = state.poll_fetch(leo, &self.epochs, now_ms) {
                    out.push((
                        fetch.leader,
                        Msg::Fetch {
                            fetch,
                            generation: *generation,
                        },
                    ));
                }
            }
            Role::Leader { state, .. } => {
                state.advance_high_watermark(leo);
                if let Some(alter) = state.isr_change(leo, now_ms) {
                    out.push((super::CONTROLLER, Msg::AlterPartition(alter)));
                }
                self.high_watermark = state.high_watermark();
            }
            Role::None => {}
        }
        out.extend(self.answer_waiting());
        out
    }

    /// Produce requests whose fate the high watermark decided.
    fn answer_waiting(&mut self) -> Vec<(NodeId, Msg)> {
        let Role::Leader { state, waiting } = &mut self.role else {
            return Vec::new();
        };
        let mut out = Vec::new();
        waiting.retain(|&(id, last_offset)| match state.ack_status(last_offset) {
            None => true,
            Some(result) => {
                let result = result.map(|()| last_offset);
                out.push((super::PRODUCER, Msg::ProduceAnswer { id, result }));
                false
            }
        });
        out
    }

    /// An acks=all produce of one record.
    pub fn on_produce(&mut self, id: u64, value: u64) -> Vec<(NodeId, Msg)> {
        let leo = self.log_end_offset();
        let Role::Leader { state, waiting } = &mut self.role else {
            let result = Err(ReplicationError::NotLeaderOrFollower);
            return vec![(super::PRODUCER, Msg::ProduceAnswer { id, result })];
        };
        if let Err(error) = state.check_produce() {
            return vec![(
                super::PRODUCER,
                Msg::ProduceAnswer {
                    id,
                    result: Err(error),
                },
            )];
        }
        self.records.push((state.leader_epoch(), value));
        waiting.push((id, leo));
        state.advance_high_watermark(leo + 1);
        self.high_watermark = state.high_watermark();
        self.answer_waiting()
    }

    /// A follower's fetch, on the leader.
    pub fn on_fetch(
        &mut self,
        from: NodeId,
        fetch: crate::replication::follower::FetchFromLeader,
        generation: u64,
        now_ms: u64,
    ) -> Vec<(NodeId, Msg)> {
        let leo = self.log_end_offset();
        let answer = match &mut self.role {
            Role::Leader { state, .. } => state.on_follower_fetch(
                from,
                fetch.leader_epoch,
                fetch.fetch_offset,
                fetch.last_fetched_epoch,
                0,
                leo,
                &self.epochs,
                now_ms,
            ),
            _ => Err(ReplicationError::NotLeaderOrFollower),
        };
        let body = answer.map(|answer| match answer {
            FollowerFetch::Diverging { epoch, end_offset } => {
                FetchBody::Diverging { epoch, end_offset }
            }
            FollowerFetch::Read { high_watermark } => {
                let from = fetch.fetch_offset as usize;
                let to = (from + FETCH_MAX_RECORDS).min(self.records.len());
                FetchBody::Records {
                    base_offset: fetch.fetch_offset,
                    records: self.records[from..to].to_vec(),
                    high_watermark,
                }
            }
        });
        let mut out = vec![(
            from,
            Msg::FetchAnswer {
                request_id: fetch.request_id,
                generation,
                body,
            },
        )];
        if let Role::Leader { state, .. } = &mut self.role {
            self.high_watermark = state.high_watermark();
            if let Some(alter) = state.isr_change(leo, now_ms) {
                out.push((super::CONTROLLER, Msg::AlterPartition(alter)));
            }
        }
        out.extend(self.answer_waiting());
        out
    }

    /// The leader's answer to this follower's fetch.
    pub fn on_fetch_answer(
        &mut self,
        request_id: u64,
        generation: u64,
        body: Result<FetchBody, ReplicationError>,
        now_ms: u64,
    ) {
        let Role::Follower {
            state,
            generation: current,
        } = &mut self.role
        else {
            return;
        };
        if *current != generation || !state.accept_answer(request_id) {
            return;
        }
        match body {
            Err(_) => state.back_off(now_ms),
            Ok(FetchBody::Diverging { epoch, end_offset }) => {
                let leo = self.log_end_offset();
                let (offset, _complete) =
                    truncation_offset((epoch, end_offset), &self.epochs, leo, self.high_watermark);
                self.truncate(offset);
            }
            Ok(FetchBody::Records {
                base_offset,
                records,
                high_watermark,
            }) => {
                assert_eq!(
                    base_offset,
                    self.log_end_offset(),
                    "broker {}: records not at the log end",
                    self.id
                );
                for (epoch, value) in records {
                    let offset = self.log_end_offset();
                    epochs::assign(&mut self.epochs, epoch, offset);
                    self.records.push((epoch, value));
                }
                self.high_watermark = follower_high_watermark(
                    self.high_watermark,
                    high_watermark,
                    self.log_end_offset(),
                );
            }
        }
    }

    fn truncate(&mut self, offset: i64) {
        self.records.truncate(offset as usize);
        epochs::truncate_from_end(&mut self.epochs, offset);
        self.high_watermark = self.high_watermark.min(offset);
    }

    pub fn on_alter_partition_answer(
        &mut self,
        proposal_id: u64,
        answer: Result<PartitionRegistration, ReplicationError>,
        now_ms: u64,
    ) {
        let Role::Leader { state, .. } = &mut self.role else {
            return;
        };
        if let Ok(registration) = &answer {
            let newer = self
                .registration
                .as_ref()
                .is_none_or(|known| registration.partition_epoch > known.partition_epoch);
            if newer && state.leader_epoch() == registration.leader_epoch {
                self.registration = Some(registration.clone());
            }
        }
        state.on_alter_partition_response(proposal_id, answer, now_ms);
    }

    pub fn leader_state(&self) -> Option<&LeaderState> {
        match &self.role {
            Role::Leader { state, .. } => Some(state),
            _ => None,
        }
    }
}

/// What a leader answers a follower's fetch with.
#[derive(Clone, Debug)]
pub enum FetchBody {
    Diverging {
        epoch: i32,
        end_offset: i64,
    },
    Records {
        base_offset: i64,
        records: Vec<Record>,
        high_watermark: i64,
    },
}
