//! Rebalance machinery: state transitions, preparing and completing the
//! join phase, propagating assignments and removing members.

use super::*;

impl Group {
    // ----------------------------------------------------- rebalance machinery

    pub(super) fn transition_to(&mut self, next: GroupState, now_ms: u64) {
        assert!(
            self.state.can_transition_to(next),
            "invalid group state transition {:?} -> {:?}",
            self.state,
            next
        );
        self.previous_state = self.state;
        self.state = next;
        self.state_timestamp_ms = now_ms;
    }

    fn can_rebalance(&self) -> bool {
        self.state.can_transition_to(GroupState::PreparingRebalance)
    }

    pub(super) fn maybe_prepare_rebalance_or_complete_join(
        &mut self,
        now_ms: u64,
        effects: &mut Vec<Effect>,
    ) {
        if self.can_rebalance() {
            self.prepare_rebalance(now_ms, effects);
        } else {
            self.maybe_complete_join_phase(now_ms, effects);
        }
    }

    pub(super) fn maybe_complete_join_phase(&mut self, now_ms: u64, effects: &mut Vec<Effect>) {
        // The initial rebalance always waits for its delay.
        if self.state == GroupState::PreparingRebalance
            && self.previous_state != GroupState::Empty
            && self.has_all_members_joined()
        {
            self.complete_join(now_ms, effects);
        }
    }

    pub(super) fn prepare_rebalance(&mut self, now_ms: u64, effects: &mut Vec<Effect>) {
        if self.state == GroupState::CompletingRebalance {
            // Members parked in SyncGroup must rejoin.
            self.reset_and_propagate_assignment(ec::REBALANCE_IN_PROGRESS, now_ms, effects);
        }
        self.pending_sync_members.clear();
        self.sync_timer = None;
        let is_initial = self.state == GroupState::Empty;
        if is_initial {
            let delay_ms = duration_ms(self.config.initial_rebalance_delay_ms);
            let remaining_ms = self.rebalance_timeout_ms().saturating_sub(delay_ms);
            self.new_member_added = false;
            self.join_timer = Some(JoinTimer::InitialDelay {
                deadline_ms: now_ms + delay_ms,
                delay_ms,
                remaining_ms,
            });
        }
        self.transition_to(GroupState::PreparingRebalance, now_ms);
        if !is_initial {
            if self.has_all_members_joined() {
                self.complete_join(now_ms, effects);
            } else {
                self.join_timer = Some(JoinTimer::Rebalance {
                    deadline_ms: now_ms + self.rebalance_timeout_ms(),
                });
            }
        }
    }

    /// Kafka's `completeClassicGroupJoin`.
    pub(super) fn complete_join(&mut self, now_ms: u64, effects: &mut Vec<Effect>) {
        assert_eq!(self.state, GroupState::PreparingRebalance);
        self.join_timer = None;
        // Dynamic members that did not rejoin in time are dropped; static
        // members stay, as their instance id keeps their place.
        let not_rejoined: Vec<String> = self
            .members
            .values()
            .filter(|member| member.awaiting_join.is_none() && member.group_instance_id.is_none())
            .map(|member| member.member_id.clone())
            .collect();
        for member_id in not_rejoined {
            self.remove_member(&member_id, effects);
        }
        if !self.members.is_empty() && !self.maybe_elect_new_joined_leader() {
            // Nobody rejoined (only static members left): wait another
            // rebalance timeout while sessions expire the silent ones.
            self.join_timer = Some(JoinTimer::Rebalance {
                deadline_ms: now_ms + self.rebalance_timeout_ms().max(1),
            });
            return;
        }
        self.generation_id += 1;
        self.pending_sync_members.clear();
        if self.members.is_empty() {
            self.protocol_name = None;
            self.transition_to(GroupState::Empty, now_ms);
            effects.push(Effect::PersistGroup(self.snapshot()));
            return;
        }
        self.protocol_name = Some(self.select_protocol());
        self.transition_to(GroupState::CompletingRebalance, now_ms);
        let member_ids: Vec<String> = self.members.keys().cloned().collect();
        for member_id in member_ids {
            let response = self.join_response(&member_id, false);
            let member = self.members.get_mut(&member_id).expect("listed above");
            if let Some(request) = member.awaiting_join.take() {
                effects.push(Effect::JoinResponse { request, response });
            }
            member.session_deadline_ms = Some(now_ms + duration_ms(member.session_timeout_ms));
            member.is_new = false;
            self.pending_sync_members.insert(member_id);
        }
        self.sync_timer = Some(SyncTimer {
            deadline_ms: now_ms + self.rebalance_timeout_ms(),
            generation_id: self.generation_id,
        });
    }

    /// Keeps the leader if it rejoined, else picks the first member that did.
    fn maybe_elect_new_joined_leader(&mut self) -> bool {
        let Some(leader_id) = self.leader_id.clone() else {
            return false;
        };
        let leader = self
            .members
            .get(&leader_id)
            .expect("the leader is a member");
        if leader.awaiting_join.is_some() {
            return true;
        }
        match self
            .members
            .values()
            .find(|member| member.awaiting_join.is_some())
        {
            Some(member) => {
                self.leader_id = Some(member.member_id.clone());
                true
            }
            None => false,
        }
    }

    fn reset_and_propagate_assignment(
        &mut self,
        code: i16,
        now_ms: u64,
        effects: &mut Vec<Effect>,
    ) {
        assert_eq!(self.state, GroupState::CompletingRebalance);
        for member in self.members.values_mut() {
            member.assignment = Bytes::new();
        }
        self.propagate_assignment(code, now_ms, effects);
    }

    /// Answers every parked SyncGroup with the member's assignment (or
    /// `code`) and restarts those members' sessions.
    pub(super) fn propagate_assignment(
        &mut self,
        code: i16,
        now_ms: u64,
        effects: &mut Vec<Effect>,
    ) {
        let (protocol_type, protocol_name) = if code == ec::NONE {
            (self.protocol_type.clone(), self.protocol_name.clone())
        } else {
            (None, None)
        };
        for member in self.members.values_mut() {
            if let Some(request) = member.awaiting_sync.take() {
                effects.push(Effect::SyncResponse {
                    request,
                    response: SyncResult {
                        error_code: code,
                        protocol_type: protocol_type.clone(),
                        protocol_name: protocol_name.clone(),
                        assignment: member.assignment.clone(),
                    },
                });
                member.session_deadline_ms = Some(now_ms + duration_ms(member.session_timeout_ms));
            }
        }
    }

    /// Removes a member or pending member, answering whatever it had parked
    /// with UNKNOWN_MEMBER_ID so the client rejoins if it is still alive.
    pub(super) fn remove_member(&mut self, member_id: &str, effects: &mut Vec<Effect>) {
        self.pending_members.remove(member_id);
        self.pending_sync_members.remove(member_id);
        let Some(member) = self.members.remove(member_id) else {
            return;
        };
        if let Some(request) = member.awaiting_join {
            effects.push(Effect::JoinResponse {
                request,
                response: JoinResult::error("", ec::UNKNOWN_MEMBER_ID),
            });
        }
        if let Some(request) = member.awaiting_sync {
            effects.push(Effect::SyncResponse {
                request,
                response: SyncResult::error(ec::UNKNOWN_MEMBER_ID),
            });
        }
        if let Some(instance_id) = &member.group_instance_id {
            self.static_members.remove(instance_id);
        }
        if self.is_leader(member_id) {
            self.leader_id = self.members.keys().next().cloned();
        }
    }
}
