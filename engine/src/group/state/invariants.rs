//! Invariant checks run after every request and tick.

use super::*;

impl Group {
    // -------------------------------------------------------------- invariants

    /// Crashes on a broken invariant. Cheap enough for debug builds and tests.
    pub(super) fn check_invariants(&self) {
        if !cfg!(debug_assertions) {
            return;
        }
        use GroupState::*;
        if self.state == Empty {
            assert!(self.members.is_empty(), "an Empty group has no members");
        }
        if matches!(self.state, CompletingRebalance | Stable) {
            assert!(
                !self.members.is_empty(),
                "{:?} group has members",
                self.state
            );
            assert!(
                self.protocol_name.is_some(),
                "{:?} group has a protocol",
                self.state
            );
        }
        match &self.leader_id {
            Some(leader) => assert!(self.members.contains_key(leader), "the leader is a member"),
            None => assert!(self.members.is_empty(), "a group with members has a leader"),
        }
        for (instance_id, member_id) in &self.static_members {
            let member = self
                .members
                .get(member_id)
                .expect("static members are members");
            assert_eq!(member.group_instance_id.as_ref(), Some(instance_id));
        }
        let static_count = self
            .members
            .values()
            .filter(|member| member.group_instance_id.is_some())
            .count();
        assert_eq!(static_count, self.static_members.len());
        for (member_id, member) in &self.members {
            assert_eq!(member_id, &member.member_id);
            assert!(!self.pending_members.contains_key(member_id));
            assert_eq!(
                Some(member.protocol_type.as_str()),
                self.protocol_type.as_deref()
            );
            if let Some(name) = &self.protocol_name
                && self.state != PreparingRebalance
            {
                assert!(
                    member.supports(name),
                    "every member supports the group's protocol"
                );
            }
            if member.awaiting_sync.is_some() {
                assert_eq!(
                    self.state, CompletingRebalance,
                    "syncs are parked only while completing"
                );
            }
            if member.awaiting_join.is_some() {
                assert_eq!(
                    self.state, PreparingRebalance,
                    "joins are parked only while preparing"
                );
            }
            if self.state != Dead
                && member.awaiting_join.is_none()
                && member.awaiting_sync.is_none()
            {
                assert!(
                    member.session_deadline_ms.is_some(),
                    "an idle member has a session"
                );
            }
        }
        for member_id in &self.pending_sync_members {
            assert!(self.members.contains_key(member_id));
        }
        match self.state {
            PreparingRebalance => assert!(self.join_timer.is_some(), "a rebalance has a deadline"),
            _ => assert!(self.join_timer.is_none()),
        }
        if self.state == CompletingRebalance {
            assert!(self.sync_timer.is_some(), "the sync phase has a deadline");
        }
        let size_max = usize::try_from(self.config.pending_members_max).expect("u32 fits usize");
        assert!(self.pending_members.len() <= size_max);
    }
}
