//! SyncGroup, Heartbeat and LeaveGroup handling.

use super::*;

impl Group {
    // -------------------------------------------------------------- SyncGroup

    pub fn sync(&mut self, request: RequestId, sync: SyncRequest, now_ms: u64) -> Vec<Effect> {
        let mut effects = Vec::new();
        self.handle_sync(request, sync, now_ms, &mut effects);
        self.check_invariants();
        effects
    }

    fn validate_sync(&self, sync: &SyncRequest) -> Result<(), i16> {
        if self.state == GroupState::Empty {
            return Err(ec::UNKNOWN_MEMBER_ID);
        }
        if self.state == GroupState::Dead {
            return Err(ec::COORDINATOR_NOT_AVAILABLE);
        }
        self.validate_member(&sync.member_id, sync.group_instance_id.as_deref())?;
        if sync.generation_id != self.generation_id {
            return Err(ec::ILLEGAL_GENERATION);
        }
        let inconsistent = |requested: &Option<String>, current: &Option<String>| {
            requested.is_some() && requested != current
        };
        if inconsistent(&sync.protocol_type, &self.protocol_type)
            || inconsistent(&sync.protocol_name, &self.protocol_name)
        {
            return Err(ec::INCONSISTENT_GROUP_PROTOCOL);
        }
        Ok(())
    }

    fn handle_sync(
        &mut self,
        request: RequestId,
        sync: SyncRequest,
        now_ms: u64,
        effects: &mut Vec<Effect>,
    ) {
        if let Err(code) = self.validate_sync(&sync) {
            effects.push(Effect::SyncResponse {
                request,
                response: SyncResult::error(code),
            });
            return;
        }
        match self.state {
            GroupState::PreparingRebalance => effects.push(Effect::SyncResponse {
                request,
                response: SyncResult::error(ec::REBALANCE_IN_PROGRESS),
            }),
            GroupState::CompletingRebalance => {
                let member = self.members.get_mut(&sync.member_id).expect("validated");
                if let Some(old) = member.awaiting_sync.replace(request)
                    && old != request
                {
                    effects.push(Effect::SyncResponse {
                        request: old,
                        response: SyncResult::error(ec::REBALANCE_IN_PROGRESS),
                    });
                }
                self.remove_pending_sync_member(&sync.member_id);
                if self.is_leader(&sync.member_id) {
                    let mut assignments: BTreeMap<String, Bytes> = BTreeMap::new();
                    for assignment in sync.assignments {
                        assignments.insert(assignment.member_id, assignment.assignment);
                    }
                    for member in self.members.values_mut() {
                        member.assignment =
                            assignments.remove(&member.member_id).unwrap_or_default();
                    }
                    self.transition_to(GroupState::Stable, now_ms);
                    effects.push(Effect::PersistGroup(self.snapshot()));
                    self.propagate_assignment(ec::NONE, now_ms, effects);
                }
            }
            GroupState::Stable => {
                self.remove_pending_sync_member(&sync.member_id);
                let member = self.members.get(&sync.member_id).expect("validated");
                effects.push(Effect::SyncResponse {
                    request,
                    response: SyncResult {
                        error_code: ec::NONE,
                        protocol_type: self.protocol_type.clone(),
                        protocol_name: self.protocol_name.clone(),
                        assignment: member.assignment.clone(),
                    },
                });
            }
            GroupState::Empty | GroupState::Dead => unreachable!("refused by validate_sync"),
        }
    }

    fn remove_pending_sync_member(&mut self, member_id: &str) {
        self.pending_sync_members.remove(member_id);
        if self.pending_sync_members.is_empty() {
            self.sync_timer = None;
        }
    }

    // -------------------------------------------------------------- Heartbeat

    pub fn heartbeat(
        &mut self,
        request: RequestId,
        heartbeat: HeartbeatRequest,
        now_ms: u64,
    ) -> Vec<Effect> {
        let error_code = match self.handle_heartbeat(&heartbeat, now_ms) {
            Ok(()) => ec::NONE,
            Err(code) => code,
        };
        self.check_invariants();
        vec![Effect::HeartbeatResponse {
            request,
            error_code,
        }]
    }

    fn handle_heartbeat(&mut self, heartbeat: &HeartbeatRequest, now_ms: u64) -> Result<(), i16> {
        if self.state == GroupState::Dead {
            return Err(ec::COORDINATOR_NOT_AVAILABLE);
        }
        self.validate_member(&heartbeat.member_id, heartbeat.group_instance_id.as_deref())?;
        if heartbeat.generation_id != self.generation_id {
            return Err(ec::ILLEGAL_GENERATION);
        }
        let member = self
            .members
            .get_mut(&heartbeat.member_id)
            .expect("validated");
        member.session_deadline_ms = Some(now_ms + duration_ms(member.session_timeout_ms));
        match self.state {
            GroupState::PreparingRebalance => Err(ec::REBALANCE_IN_PROGRESS),
            GroupState::CompletingRebalance | GroupState::Stable => Ok(()),
            GroupState::Empty | GroupState::Dead => unreachable!("such groups have no members"),
        }
    }

    // ------------------------------------------------------------- LeaveGroup

    pub fn leave(
        &mut self,
        request: RequestId,
        members: Vec<LeaveMember>,
        now_ms: u64,
    ) -> Vec<Effect> {
        let mut effects = Vec::new();
        if self.state == GroupState::Dead {
            effects.push(Effect::LeaveResponse {
                request,
                response: LeaveResult {
                    error_code: ec::COORDINATOR_NOT_AVAILABLE,
                    members: Vec::new(),
                },
            });
            return effects;
        }
        let mut results = Vec::with_capacity(members.len());
        let mut removed_any = false;
        for leaving in members {
            let code = self.leave_one(&leaving, &mut effects);
            removed_any |= code == ec::NONE;
            results.push(LeaveMemberResult {
                member_id: leaving.member_id,
                group_instance_id: leaving.group_instance_id,
                error_code: code,
            });
        }
        if removed_any {
            match self.state {
                GroupState::Stable | GroupState::CompletingRebalance => {
                    self.maybe_prepare_rebalance_or_complete_join(now_ms, &mut effects)
                }
                GroupState::PreparingRebalance => {
                    self.maybe_complete_join_phase(now_ms, &mut effects)
                }
                GroupState::Empty | GroupState::Dead => {}
            }
        }
        effects.push(Effect::LeaveResponse {
            request,
            response: LeaveResult {
                error_code: ec::NONE,
                members: results,
            },
        });
        self.check_invariants();
        effects
    }

    fn leave_one(&mut self, leaving: &LeaveMember, effects: &mut Vec<Effect>) -> i16 {
        if leaving.member_id.is_empty() {
            // Administrative removal by instance id.
            let member_id = leaving
                .group_instance_id
                .as_ref()
                .and_then(|instance_id| self.static_members.get(instance_id).cloned());
            return match member_id {
                Some(member_id) => {
                    self.remove_member(&member_id, effects);
                    ec::NONE
                }
                None => ec::UNKNOWN_MEMBER_ID,
            };
        }
        if self.pending_members.remove(&leaving.member_id).is_some() {
            return ec::NONE;
        }
        match self.validate_member(&leaving.member_id, leaving.group_instance_id.as_deref()) {
            Ok(()) => {
                self.remove_member(&leaving.member_id, effects);
                ec::NONE
            }
            Err(code) => code,
        }
    }
}
