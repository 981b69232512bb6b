//! JoinGroup handling: admitting new, existing and static members,
//! protocol checks and selection, and the JoinGroup responses.

use super::*;

impl Group {
    // -------------------------------------------------------------- JoinGroup

    pub fn join(&mut self, request: RequestId, join: JoinRequest, now_ms: u64) -> Vec<Effect> {
        let mut effects = Vec::new();
        self.handle_join(request, join, now_ms, &mut effects);
        self.check_invariants();
        effects
    }

    fn handle_join(
        &mut self,
        request: RequestId,
        mut join: JoinRequest,
        now_ms: u64,
        effects: &mut Vec<Effect>,
    ) {
        join.protocols = dedup_protocols(std::mem::take(&mut join.protocols));
        let reply = |effects: &mut Vec<Effect>, member_id: &str, code: i16| {
            effects.push(Effect::JoinResponse {
                request,
                response: JoinResult::error(member_id, code),
            });
        };
        if join.session_timeout_ms < self.config.session_timeout_ms_min
            || join.session_timeout_ms > self.config.session_timeout_ms_max
        {
            return reply(effects, &join.member_id, ec::INVALID_SESSION_TIMEOUT);
        }
        if !self.accepts_joining_member(&join.member_id) {
            // Kafka drops an existing member that cannot fit any more.
            self.remove_member(&join.member_id, effects);
            return reply(effects, "", ec::GROUP_MAX_SIZE_REACHED);
        }
        if self.state == GroupState::Dead {
            return reply(effects, &join.member_id, ec::COORDINATOR_NOT_AVAILABLE);
        }
        if !self.supports_protocols(&join.protocol_type, &join.protocols) {
            let member_id = join.member_id.clone();
            return reply(effects, &member_id, ec::INCONSISTENT_GROUP_PROTOCOL);
        }
        if join.member_id.is_empty() {
            self.join_new_member(request, join, now_ms, effects);
        } else {
            self.join_existing_member(request, join, now_ms, effects);
        }
    }

    /// Kafka's `acceptJoiningMember`.
    fn accepts_joining_member(&self, member_id: &str) -> bool {
        let size_max = usize::try_from(self.config.group_size_max).expect("positive");
        match self.state {
            GroupState::Empty | GroupState::Dead => true,
            GroupState::PreparingRebalance => {
                // Counting members awaiting a response (not all members) lets
                // a shrunk limit push out the last members to rejoin.
                let awaiting = self
                    .members
                    .get(member_id)
                    .is_some_and(|member| member.awaiting_join.is_some());
                awaiting || self.awaiting_join_count() < size_max
            }
            GroupState::CompletingRebalance | GroupState::Stable => {
                self.members.contains_key(member_id) || self.members.len() < size_max
            }
        }
    }

    /// Kafka's `supportsProtocols`: some protocol of the request is supported
    /// by every current member.
    fn supports_protocols(&self, protocol_type: &str, protocols: &[JoinProtocol]) -> bool {
        if self.state == GroupState::Empty {
            return !protocol_type.is_empty() && !protocols.is_empty();
        }
        self.protocol_type.as_deref() == Some(protocol_type)
            && protocols.iter().any(|protocol| {
                self.members
                    .values()
                    .all(|member| member.supports(&protocol.name))
            })
    }

    fn generate_member_id(&mut self, prefix: &str) -> String {
        // A collision needs two equal 128-bit outputs; retrying bounds even a
        // pathological seed.
        for _ in 0..16 {
            let member_id = format!("{prefix}-{}", self.member_id_generator.next_suffix());
            if !self.members.contains_key(&member_id)
                && !self.pending_members.contains_key(&member_id)
            {
                return member_id;
            }
        }
        panic!("member id generator keeps producing ids already in use");
    }

    fn join_new_member(
        &mut self,
        request: RequestId,
        join: JoinRequest,
        now_ms: u64,
        effects: &mut Vec<Effect>,
    ) {
        if let Some(instance_id) = join.group_instance_id.clone() {
            let new_member_id = self.generate_member_id(&instance_id);
            match self.static_members.get(&instance_id).cloned() {
                Some(old_member_id) => self.replace_static_member(
                    request,
                    join,
                    old_member_id,
                    new_member_id,
                    now_ms,
                    effects,
                ),
                None => {
                    self.add_member_and_rebalance(request, join, new_member_id, now_ms, effects)
                }
            }
            return;
        }
        let new_member_id = self.generate_member_id(&join.client_id.clone());
        if join.require_known_member_id {
            let pending_max =
                usize::try_from(self.config.pending_members_max).expect("u32 fits usize");
            if self.pending_members.len() >= pending_max {
                effects.push(Effect::JoinResponse {
                    request,
                    response: JoinResult::error("", ec::COORDINATOR_NOT_AVAILABLE),
                });
                return;
            }
            let deadline_ms = now_ms + duration_ms(join.session_timeout_ms);
            self.pending_members
                .insert(new_member_id.clone(), deadline_ms);
            effects.push(Effect::JoinResponse {
                request,
                response: JoinResult::error(&new_member_id, ec::MEMBER_ID_REQUIRED),
            });
        } else {
            self.add_member_and_rebalance(request, join, new_member_id, now_ms, effects);
        }
    }

    fn join_existing_member(
        &mut self,
        request: RequestId,
        join: JoinRequest,
        now_ms: u64,
        effects: &mut Vec<Effect>,
    ) {
        let member_id = join.member_id.clone();
        if self.pending_members.contains_key(&member_id) {
            if join.group_instance_id.is_some() {
                // Pending ids are only handed to dynamic members; Kafka fails
                // the request the same way.
                effects.push(Effect::JoinResponse {
                    request,
                    response: JoinResult::error(&member_id, ec::UNKNOWN_SERVER_ERROR),
                });
                return;
            }
            self.add_member_and_rebalance(request, join, member_id, now_ms, effects);
            return;
        }
        if let Err(code) = self.validate_member(&member_id, join.group_instance_id.as_deref()) {
            effects.push(Effect::JoinResponse {
                request,
                response: JoinResult::error(&member_id, code),
            });
            return;
        }
        let member = self.members.get(&member_id).expect("validated above");
        let protocols_match = member.protocols == join.protocols;
        match self.state {
            GroupState::PreparingRebalance => {
                self.update_member(request, &join, effects);
                self.maybe_prepare_rebalance_or_complete_join(now_ms, effects);
            }
            GroupState::CompletingRebalance if protocols_match => {
                // A retry after a lost response: resend this generation's.
                let response = self.join_response(&member_id, false);
                effects.push(Effect::JoinResponse { request, response });
            }
            GroupState::Stable if protocols_match && !self.is_leader(&member_id) => {
                // A follower with unchanged metadata can go straight to sync.
                let mut response = self.join_response(&member_id, false);
                response.members.clear();
                effects.push(Effect::JoinResponse { request, response });
            }
            GroupState::CompletingRebalance | GroupState::Stable => {
                // Changed metadata, or the leader asking for a new assignment.
                self.update_member(request, &join, effects);
                self.maybe_prepare_rebalance_or_complete_join(now_ms, effects);
            }
            GroupState::Empty | GroupState::Dead => {
                // Unreachable through validate_member (no members); kept as
                // Kafka's answer for an unexpected state.
                effects.push(Effect::JoinResponse {
                    request,
                    response: JoinResult::error(&member_id, ec::UNKNOWN_MEMBER_ID),
                });
            }
        }
    }

    /// Kafka's `validateMember`.
    pub(super) fn validate_member(
        &self,
        member_id: &str,
        group_instance_id: Option<&str>,
    ) -> Result<(), i16> {
        if let Some(instance_id) = group_instance_id {
            match self.static_members.get(instance_id) {
                None => return Err(ec::UNKNOWN_MEMBER_ID),
                Some(current) if current != member_id => return Err(ec::FENCED_INSTANCE_ID),
                Some(_) => {}
            }
        }
        if !self.members.contains_key(member_id) {
            return Err(ec::UNKNOWN_MEMBER_ID);
        }
        Ok(())
    }

    /// The JoinGroup response of the current generation for `member_id`.
    pub(super) fn join_response(&self, member_id: &str, skip_assignment: bool) -> JoinResult {
        let members = if self.is_leader(member_id) {
            self.join_response_members()
        } else {
            Vec::new()
        };
        JoinResult {
            error_code: ec::NONE,
            generation_id: self.generation_id,
            protocol_type: self.protocol_type.clone(),
            protocol_name: self.protocol_name.clone(),
            leader: self.leader_id.clone().unwrap_or_default(),
            skip_assignment,
            member_id: member_id.to_string(),
            members,
        }
    }

    fn join_response_members(&self) -> Vec<JoinResultMember> {
        assert!(
            !matches!(
                self.state,
                GroupState::Dead | GroupState::PreparingRebalance
            ),
            "member metadata is only defined once a protocol is selected"
        );
        let protocol_name = self
            .protocol_name
            .as_deref()
            .expect("a group with members has a protocol");
        self.members
            .values()
            .map(|member| JoinResultMember {
                member_id: member.member_id.clone(),
                group_instance_id: member.group_instance_id.clone(),
                metadata: member.metadata(protocol_name),
            })
            .collect()
    }

    pub(super) fn is_leader(&self, member_id: &str) -> bool {
        self.leader_id.as_deref() == Some(member_id)
    }

    fn awaiting_join_count(&self) -> usize {
        self.members
            .values()
            .filter(|member| member.awaiting_join.is_some())
            .count()
    }

    pub(super) fn has_all_members_joined(&self) -> bool {
        self.pending_members.is_empty()
            && self
                .members
                .values()
                .all(|member| member.awaiting_join.is_some())
    }

    /// The group's rebalance timeout: the largest of its members'.
    pub(super) fn rebalance_timeout_ms(&self) -> u64 {
        let largest = self
            .members
            .values()
            .map(|member| member.rebalance_timeout_ms)
            .max();
        duration_ms(largest.unwrap_or(0))
    }

    /// Parks `request` as the member's join, answering a join it replaces.
    fn park_join(member: &mut Member, request: RequestId, effects: &mut Vec<Effect>) {
        if let Some(old) = member.awaiting_join.replace(request)
            && old != request
        {
            effects.push(Effect::JoinResponse {
                request: old,
                response: JoinResult::error(&member.member_id, ec::REBALANCE_IN_PROGRESS),
            });
        }
    }

    /// Kafka's `updateMember`: new protocols and timeouts, join parked.
    fn update_member(&mut self, request: RequestId, join: &JoinRequest, effects: &mut Vec<Effect>) {
        let member = self
            .members
            .get_mut(&join.member_id)
            .expect("caller checked membership");
        member.protocols = join.protocols.clone();
        member.rebalance_timeout_ms = join.rebalance_timeout_ms;
        member.session_timeout_ms = join.session_timeout_ms;
        Self::park_join(member, request, effects);
    }

    fn add_member_and_rebalance(
        &mut self,
        request: RequestId,
        join: JoinRequest,
        member_id: String,
        now_ms: u64,
        effects: &mut Vec<Effect>,
    ) {
        if self.state == GroupState::PreparingRebalance && self.previous_state == GroupState::Empty
        {
            self.new_member_added = true;
        }
        if self.members.is_empty() {
            self.protocol_type = Some(join.protocol_type.clone());
        }
        assert_eq!(
            self.protocol_type.as_deref(),
            Some(join.protocol_type.as_str())
        );
        assert!(!self.members.contains_key(&member_id));
        if let Some(instance_id) = &join.group_instance_id {
            let previous = self
                .static_members
                .insert(instance_id.clone(), member_id.clone());
            assert!(previous.is_none(), "a static member is added only once");
        }
        if self.leader_id.is_none() {
            self.leader_id = Some(member_id.clone());
        }
        self.pending_members.remove(&member_id);
        // The session does not apply yet: a new member has nothing to
        // heartbeat with until it gets its JoinGroup response. Its parked
        // join is dropped after the new-member timeout instead, so clients
        // that gave up and retried do not pile up as defunct members.
        let deadline_ms = now_ms + duration_ms(self.config.new_member_join_timeout_ms);
        let member = Member {
            member_id: member_id.clone(),
            group_instance_id: join.group_instance_id,
            client_id: join.client_id,
            client_host: join.client_host,
            rebalance_timeout_ms: join.rebalance_timeout_ms,
            session_timeout_ms: join.session_timeout_ms,
            protocol_type: join.protocol_type,
            protocols: join.protocols,
            assignment: Bytes::new(),
            awaiting_join: Some(request),
            awaiting_sync: None,
            is_new: true,
            session_deadline_ms: Some(deadline_ms),
        };
        self.members.insert(member_id, member);
        self.maybe_prepare_rebalance_or_complete_join(now_ms, effects);
    }

    /// A known static member came back with an empty member id (a restart):
    /// it takes a new member id and the old one is fenced.
    fn replace_static_member(
        &mut self,
        request: RequestId,
        join: JoinRequest,
        old_member_id: String,
        new_member_id: String,
        now_ms: u64,
        effects: &mut Vec<Effect>,
    ) {
        let instance_id = join.group_instance_id.clone().expect("static member");
        let mut member = self
            .members
            .remove(&old_member_id)
            .expect("static member is a member");
        // Fence the old incarnation's parked requests.
        if let Some(old) = member.awaiting_join.take() {
            effects.push(Effect::JoinResponse {
                request: old,
                response: JoinResult::error(&old_member_id, ec::FENCED_INSTANCE_ID),
            });
        }
        if let Some(old) = member.awaiting_sync.take() {
            effects.push(Effect::SyncResponse {
                request: old,
                response: SyncResult::error(ec::FENCED_INSTANCE_ID),
            });
        }
        if self.pending_sync_members.remove(&old_member_id) {
            self.pending_sync_members.insert(new_member_id.clone());
        }
        member.member_id = new_member_id.clone();
        member.is_new = false;
        member.session_deadline_ms = Some(now_ms + duration_ms(member.session_timeout_ms));
        // Kafka's updateMember.
        member.protocols = join.protocols.clone();
        member.rebalance_timeout_ms = join.rebalance_timeout_ms;
        member.session_timeout_ms = join.session_timeout_ms;
        member.awaiting_join = Some(request);
        self.members.insert(new_member_id.clone(), member);
        if self.is_leader(&old_member_id) {
            self.leader_id = Some(new_member_id.clone());
        }
        self.static_members
            .insert(instance_id, new_member_id.clone());

        match self.state {
            GroupState::Stable => {
                let unchanged =
                    self.select_protocol() == self.protocol_name.clone().unwrap_or_default();
                if unchanged {
                    // Same protocol: keep the generation and the assignment,
                    // persist the new member id, answer at once.
                    effects.push(Effect::PersistGroup(self.snapshot()));
                    let response = if join.supports_skip_assignment {
                        let is_leader = self.is_leader(&new_member_id);
                        self.join_response(&new_member_id, is_leader)
                    } else {
                        let mut response = self.join_response(&new_member_id, false);
                        response.members.clear();
                        response
                    };
                    let member = self
                        .members
                        .get_mut(&new_member_id)
                        .expect("inserted above");
                    member.awaiting_join = None;
                    effects.push(Effect::JoinResponse { request, response });
                } else {
                    self.maybe_prepare_rebalance_or_complete_join(now_ms, effects);
                }
            }
            GroupState::CompletingRebalance => {
                // The leader may already be assigning to the old member id.
                self.prepare_rebalance(now_ms, effects);
            }
            GroupState::PreparingRebalance => self.maybe_complete_join_phase(now_ms, effects),
            GroupState::Empty | GroupState::Dead => {
                unreachable!("a group with a static member is neither Empty nor Dead")
            }
        }
    }

    /// Kafka's `selectProtocol`: among the protocols every member supports,
    /// each member votes for its most preferred; most votes wins.
    pub(super) fn select_protocol(&self) -> String {
        assert!(
            !self.members.is_empty(),
            "cannot select a protocol for an empty group"
        );
        let first = self.members.values().next().expect("non-empty");
        let candidates: Vec<&str> = first
            .protocols
            .iter()
            .map(|protocol| protocol.name.as_str())
            .filter(|name| self.members.values().all(|member| member.supports(name)))
            .collect();
        assert!(!candidates.is_empty(), "members always share a protocol");
        let mut votes: BTreeMap<&str, usize> = BTreeMap::new();
        for member in self.members.values() {
            let vote = member
                .protocols
                .iter()
                .map(|protocol| protocol.name.as_str())
                .find(|name| candidates.contains(name))
                .expect("every member supports every candidate");
            *votes.entry(vote).or_default() += 1;
        }
        // Ties go to the smallest name: BTreeMap order, and max_by_key keeps
        // the last maximum, so iterate in reverse.
        votes
            .into_iter()
            .rev()
            .max_by_key(|(_, count)| *count)
            .map(|(name, _)| name.to_string())
            .expect("at least one vote")
    }
}
