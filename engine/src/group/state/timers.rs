//! Timers: `tick` and the join, sync, pending-member and session deadlines.

use super::*;

impl Group {
    // ------------------------------------------------------------------ timers

    /// Fires every timer due at `now_ms`, earliest first.
    pub fn tick(&mut self, now_ms: u64) -> Vec<Effect> {
        let mut effects = Vec::new();
        if self.state == GroupState::Dead {
            return effects;
        }
        // Each firing removes its timer or moves it past `now_ms`, except the
        // initial-delay extension, which shrinks its remaining budget; so the
        // loop ends. The bound turns a broken invariant into a crash, not a hang.
        let firings_max = 2 * (self.members.len() + self.pending_members.len()) + 64;
        for _ in 0..firings_max {
            if !self.fire_next_timer(now_ms, &mut effects) {
                self.check_invariants();
                return effects;
            }
        }
        panic!(
            "group timers keep firing at {now_ms}: {:?}",
            self.next_deadline_ms()
        );
    }

    fn fire_next_timer(&mut self, now_ms: u64, effects: &mut Vec<Effect>) -> bool {
        #[derive(Debug)]
        enum Due {
            Join,
            Sync,
            Pending(String),
            Session(String),
        }
        let mut due: Option<(u64, Due)> = None;
        let mut consider = |deadline_ms: u64, which: Due| {
            if deadline_ms <= now_ms && due.as_ref().is_none_or(|(best, _)| deadline_ms < *best) {
                due = Some((deadline_ms, which));
            }
        };
        if let Some(timer) = self.join_timer {
            consider(timer.deadline_ms(), Due::Join);
        }
        if let Some(timer) = self.sync_timer {
            consider(timer.deadline_ms, Due::Sync);
        }
        for (member_id, deadline_ms) in &self.pending_members {
            consider(*deadline_ms, Due::Pending(member_id.clone()));
        }
        for member in self.members.values() {
            if let Some(deadline_ms) = member.session_deadline_ms {
                consider(deadline_ms, Due::Session(member.member_id.clone()));
            }
        }
        let Some((_, which)) = due else {
            return false;
        };
        match which {
            Due::Join => self.fire_join_timer(now_ms, effects),
            Due::Sync => self.fire_sync_timer(now_ms, effects),
            Due::Pending(member_id) => {
                self.pending_members.remove(&member_id);
                if self.state == GroupState::PreparingRebalance && self.has_all_members_joined() {
                    self.complete_join(now_ms, effects);
                }
            }
            Due::Session(member_id) => self.expire_session(&member_id, now_ms, effects),
        }
        true
    }

    fn fire_join_timer(&mut self, now_ms: u64, effects: &mut Vec<Effect>) {
        let timer = self.join_timer.take().expect("due");
        match timer {
            JoinTimer::InitialDelay {
                deadline_ms,
                delay_ms,
                remaining_ms,
            } if self.new_member_added && remaining_ms != 0 => {
                // Members are still arriving: wait one more step, counted
                // from when this step ended so a late tick does not stretch
                // the total delay.
                self.new_member_added = false;
                let next_delay_ms =
                    duration_ms(self.config.initial_rebalance_delay_ms).min(remaining_ms);
                self.join_timer = Some(JoinTimer::InitialDelay {
                    deadline_ms: deadline_ms + next_delay_ms,
                    delay_ms: next_delay_ms,
                    remaining_ms: remaining_ms.saturating_sub(delay_ms),
                });
            }
            JoinTimer::InitialDelay { .. } | JoinTimer::Rebalance { .. } => {
                self.complete_join(now_ms, effects)
            }
        }
    }

    /// Kafka's `expirePendingSync`: members that got their JoinGroup response
    /// but never synced within the rebalance timeout are dropped.
    fn fire_sync_timer(&mut self, now_ms: u64, effects: &mut Vec<Effect>) {
        let timer = self.sync_timer.take().expect("due");
        let current = timer.generation_id == self.generation_id
            && matches!(
                self.state,
                GroupState::CompletingRebalance | GroupState::Stable
            );
        if !current || self.pending_sync_members.is_empty() {
            return;
        }
        let late: Vec<String> = self.pending_sync_members.iter().cloned().collect();
        for member_id in late {
            self.remove_member(&member_id, effects);
        }
        self.prepare_rebalance(now_ms, effects);
    }

    fn expire_session(&mut self, member_id: &str, now_ms: u64, effects: &mut Vec<Effect>) {
        let member = self.members.get_mut(member_id).expect("due");
        if member.has_satisfied_heartbeat() {
            // Parked in a join or sync counts as alive; the session restarts
            // when that request is answered.
            member.session_deadline_ms = None;
            return;
        }
        self.remove_member(member_id, effects);
        match self.state {
            GroupState::Stable | GroupState::CompletingRebalance => {
                self.maybe_prepare_rebalance_or_complete_join(now_ms, effects)
            }
            GroupState::PreparingRebalance if self.has_all_members_joined() => {
                self.complete_join(now_ms, effects)
            }
            _ => {}
        }
    }
}
