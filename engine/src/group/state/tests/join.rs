//! JoinGroup tests: initial delay, member ids, protocol checks and votes,
//! rebalances started by joins.

use super::*;

// ------------------------------------------------------------------ JoinGroup

#[test]
fn first_member_joining_an_empty_group_waits_for_the_initial_rebalance_delay() {
    let mut harness = Harness::new();
    let (request, effects) = harness.join(join_request("", "c1"));
    assert_eq!(effects, vec![]);
    assert_eq!(harness.group.state(), GroupState::PreparingRebalance);
    assert_eq!(harness.group.next_deadline_ms(), Some(3_000));
    assert_eq!(harness.advance_to(2_999), vec![]);
    let effects = harness.advance_to(3_000);
    let member_id = harness.group.leader_id().unwrap().to_string();
    assert!(
        member_id.starts_with("c1-"),
        "member id is {{client_id}}-{{suffix}}: {member_id}"
    );
    assert_eq!(
        effects,
        vec![Effect::JoinResponse {
            request,
            response: JoinResult {
                error_code: ec::NONE,
                generation_id: 1,
                protocol_type: Some("consumer".to_string()),
                protocol_name: Some("range".to_string()),
                leader: member_id.clone(),
                skip_assignment: false,
                member_id: member_id.clone(),
                members: vec![JoinResultMember {
                    member_id: member_id.clone(),
                    group_instance_id: None,
                    metadata: Bytes::from("c1-range"),
                }],
            },
        }]
    );
    assert_eq!(harness.group.state(), GroupState::CompletingRebalance);
}

#[test]
fn initial_delay_is_extended_while_new_members_keep_joining() {
    let mut harness = Harness::new();
    harness.join(join_request("", "c1"));
    harness.now_ms = 2_000;
    harness.join(join_request("", "c2"));
    // A member arrived during the first delay: one more step of 3 s.
    assert_eq!(harness.advance_to(3_000), vec![]);
    assert_eq!(harness.group.next_deadline_ms(), Some(6_000));
    assert_eq!(harness.group.state(), GroupState::PreparingRebalance);
    // Nobody arrived during the second step: complete.
    let effects = harness.advance_to(6_000);
    assert_eq!(join_responses(&effects).len(), 2);
    assert_eq!(harness.group.generation_id(), 1);
}

#[test]
fn initial_delay_never_extends_past_the_rebalance_timeout() {
    let mut harness = Harness::new();
    let mut request = join_request("", "c1");
    request.rebalance_timeout_ms = 5_000;
    harness.join(request);
    // remaining = 5000 - 3000 = 2000; a member joining extends by min(3000, 2000).
    harness.now_ms = 1_000;
    harness.join(join_request("", "c2"));
    assert_eq!(harness.advance_to(3_000), vec![]);
    assert_eq!(harness.group.next_deadline_ms(), Some(5_000));
    harness.now_ms = 4_000;
    harness.join(join_request("", "c3"));
    // The budget is spent: no further extension although a member joined.
    let effects = harness.advance_to(5_000);
    assert_eq!(join_responses(&effects).len(), 3);
    assert_eq!(harness.group.state(), GroupState::CompletingRebalance);
}

#[test]
fn join_requiring_a_known_member_id_gets_member_id_required_with_a_generated_id() {
    let mut harness = Harness::new();
    let mut request = join_request("", "c1");
    request.require_known_member_id = true;
    let (id, effects) = harness.join(request.clone());
    let (code, member_id) = single_join_error(&effects, id);
    assert_eq!(code, ec::MEMBER_ID_REQUIRED);
    assert!(
        member_id.starts_with("c1-") && member_id.len() == "c1-".len() + 36,
        "{member_id}"
    );
    assert_eq!(harness.group.state(), GroupState::Empty);
    assert_eq!(harness.group.pending_member_count(), 1);
    // Rejoining with that id makes it a member.
    request.member_id = member_id.clone();
    let (_, effects) = harness.join(request);
    assert_eq!(effects, vec![]);
    assert!(harness.group.has_member(&member_id));
    assert_eq!(harness.group.pending_member_count(), 0);
    assert_eq!(harness.group.state(), GroupState::PreparingRebalance);
}

#[test]
fn generated_member_ids_are_unique_and_deterministic_per_seed() {
    let mut first = Harness::new();
    let mut second = Harness::new();
    let mut request = join_request("", "c1");
    request.require_known_member_id = true;
    let ids: Vec<String> = (0..50)
        .map(|_| {
            let (id, effects) = first.join(request.clone());
            single_join_error(&effects, id).1
        })
        .collect();
    let again: Vec<String> = (0..50)
        .map(|_| {
            let (id, effects) = second.join(request.clone());
            single_join_error(&effects, id).1
        })
        .collect();
    assert_eq!(ids, again);
    assert_eq!(ids.iter().collect::<BTreeSet<_>>().len(), 50);
}

#[test]
fn pending_member_expires_after_its_session_timeout() {
    let mut harness = Harness::new();
    let mut request = join_request("", "c1");
    request.require_known_member_id = true;
    let (id, effects) = harness.join(request.clone());
    let member_id = single_join_error(&effects, id).1;
    assert_eq!(harness.group.next_deadline_ms(), Some(SESSION_MS as u64));
    assert_eq!(harness.advance_to(SESSION_MS as u64), vec![]);
    assert_eq!(harness.group.pending_member_count(), 0);
    request.member_id = member_id;
    let (id, effects) = harness.join(request);
    assert_eq!(single_join_error(&effects, id).0, ec::UNKNOWN_MEMBER_ID);
}

#[test]
fn pending_members_are_bounded() {
    let mut harness = Harness::with_config(GroupConfig {
        pending_members_max: 2,
        ..GroupConfig::default()
    });
    let mut request = join_request("", "c1");
    request.require_known_member_id = true;
    for _ in 0..2 {
        let (id, effects) = harness.join(request.clone());
        assert_eq!(single_join_error(&effects, id).0, ec::MEMBER_ID_REQUIRED);
    }
    let (id, effects) = harness.join(request);
    assert_eq!(
        single_join_error(&effects, id),
        (ec::COORDINATOR_NOT_AVAILABLE, String::new())
    );
    assert_eq!(harness.group.pending_member_count(), 2);
}

#[test]
fn session_timeout_outside_the_configured_range_is_invalid_session_timeout() {
    let mut harness = Harness::new();
    for session_timeout_ms in [5_999, 1_800_001, -1] {
        let mut request = join_request("", "c1");
        request.session_timeout_ms = session_timeout_ms;
        let (id, effects) = harness.join(request);
        assert_eq!(
            single_join_error(&effects, id).0,
            ec::INVALID_SESSION_TIMEOUT
        );
    }
    for session_timeout_ms in [6_000, 1_800_000] {
        let mut request = join_request("", "c1");
        request.session_timeout_ms = session_timeout_ms;
        let (_, effects) = harness.join(request);
        assert_eq!(effects, vec![]);
    }
    assert_eq!(harness.group.state(), GroupState::PreparingRebalance);
}

#[test]
fn join_with_another_protocol_type_is_inconsistent_group_protocol() {
    let mut harness = Harness::new();
    harness.join(join_request("", "c1"));
    let mut request = join_request("", "c2");
    request.protocol_type = "connect".to_string();
    let (id, effects) = harness.join(request);
    assert_eq!(
        single_join_error(&effects, id),
        (ec::INCONSISTENT_GROUP_PROTOCOL, String::new())
    );
    assert_eq!(harness.group.member_count(), 1);
}

#[test]
fn join_with_no_protocol_shared_by_all_members_is_inconsistent_group_protocol() {
    let mut harness = Harness::new();
    harness.join(join_request("", "c1"));
    let mut request = join_request("", "c2");
    request.protocols = vec![protocol("roundrobin", "x")];
    let (id, effects) = harness.join(request);
    assert_eq!(
        single_join_error(&effects, id).0,
        ec::INCONSISTENT_GROUP_PROTOCOL
    );
    // An empty protocol type or list is refused even by an Empty group.
    let mut empty = Harness::new();
    let mut request = join_request("", "c1");
    request.protocols.clear();
    let (id, effects) = empty.join(request);
    assert_eq!(
        single_join_error(&effects, id).0,
        ec::INCONSISTENT_GROUP_PROTOCOL
    );
}

#[test]
fn protocol_with_most_votes_among_common_protocols_is_selected() {
    let mut harness = Harness::new();
    // Common: range, cooperative-sticky (roundrobin is c1's only).
    let preferences = [
        ("c1", vec!["roundrobin", "cooperative-sticky", "range"]),
        ("c2", vec!["range", "cooperative-sticky"]),
        ("c3", vec!["cooperative-sticky", "range"]),
        ("c4", vec!["cooperative-sticky", "range"]),
    ];
    for (client, names) in &preferences {
        let mut request = join_request("", client);
        request.protocols = names
            .iter()
            .map(|name| protocol(name, &format!("{client}-{name}")))
            .collect();
        harness.join(request);
    }
    let effects = harness.advance_to(6_000);
    let responses = join_responses(&effects);
    assert_eq!(responses.len(), 4);
    for (_, response) in &responses {
        assert_eq!(
            response.protocol_name.as_deref(),
            Some("cooperative-sticky")
        );
    }
    let leader = responses
        .iter()
        .find(|(_, response)| !response.members.is_empty())
        .unwrap();
    let metadata: BTreeSet<Bytes> = leader
        .1
        .members
        .iter()
        .map(|member| member.metadata.clone())
        .collect();
    let expected: BTreeSet<Bytes> = ["c1", "c2", "c3", "c4"]
        .iter()
        .map(|client| Bytes::from(format!("{client}-cooperative-sticky")))
        .collect();
    assert_eq!(
        metadata, expected,
        "the leader sees each member's metadata for the chosen protocol"
    );
}

#[test]
fn protocol_vote_ties_go_to_the_smallest_name() {
    let mut harness = Harness::new();
    for (client, names) in [
        ("c1", ["range", "roundrobin"]),
        ("c2", ["roundrobin", "range"]),
    ] {
        let mut request = join_request("", client);
        request.protocols = names.iter().map(|name| protocol(name, "m")).collect();
        harness.join(request);
    }
    harness.advance_to(6_000);
    assert_eq!(harness.group.protocol_name(), Some("range"));
}

#[test]
fn leader_gets_all_members_and_followers_get_an_empty_list() {
    let mut harness = Harness::new();
    let (first, _) = harness.join(join_request("", "c1"));
    let (second, _) = harness.join(join_request("", "c2"));
    let effects = harness.advance_to(6_000);
    let responses = join_responses(&effects);
    let leader = harness.group.leader_id().unwrap().to_string();
    let by_request = |id: RequestId| {
        responses
            .iter()
            .find(|(request, _)| *request == id)
            .unwrap()
            .1
            .clone()
    };
    let (leader_response, follower_response) = if by_request(first).member_id == leader {
        (by_request(first), by_request(second))
    } else {
        (by_request(second), by_request(first))
    };
    assert_eq!(leader_response.members.len(), 2);
    assert_eq!(follower_response.members, vec![]);
    assert_eq!(follower_response.leader, leader);
    assert_eq!(follower_response.generation_id, 1);
}

#[test]
fn group_max_size_refuses_members_beyond_the_limit() {
    let mut harness = Harness::with_config(GroupConfig {
        group_size_max: 2,
        ..GroupConfig::default()
    });
    harness.join(join_request("", "c1"));
    harness.join(join_request("", "c2"));
    let (id, effects) = harness.join(join_request("", "c3"));
    assert_eq!(
        single_join_error(&effects, id),
        (ec::GROUP_MAX_SIZE_REACHED, String::new())
    );
    let (member_ids, generation_id) = {
        let effects = harness.advance_to(6_000);
        assert_eq!(join_responses(&effects).len(), 2);
        let ids: Vec<String> = join_responses(&effects)
            .into_iter()
            .map(|(_, response)| response.member_id)
            .collect();
        (ids, harness.group.generation_id())
    };
    harness.sync_all(&member_ids, generation_id);
    let (id, effects) = harness.join(join_request("", "c3"));
    assert_eq!(
        single_join_error(&effects, id).0,
        ec::GROUP_MAX_SIZE_REACHED
    );
    assert_eq!(harness.group.state(), GroupState::Stable);
}

#[test]
fn join_with_an_unknown_member_id_is_unknown_member_id() {
    let mut harness = Harness::new();
    let (id, effects) = harness.join(join_request("ghost", "c1"));
    assert_eq!(
        single_join_error(&effects, id),
        (ec::UNKNOWN_MEMBER_ID, "ghost".to_string())
    );
    harness.stable_group(&["c1"]);
    let (id, effects) = harness.join(join_request("ghost", "c1"));
    assert_eq!(single_join_error(&effects, id).0, ec::UNKNOWN_MEMBER_ID);
}

#[test]
fn second_member_joining_a_stable_group_starts_a_rebalance() {
    let mut harness = Harness::new();
    let (member_ids, generation_id) = harness.stable_group(&["c1"]);
    assert_eq!(generation_id, 1);
    let (new_request, effects) = harness.join(join_request("", "c2"));
    assert_eq!(effects, vec![]);
    assert_eq!(harness.group.state(), GroupState::PreparingRebalance);
    assert_eq!(
        harness.heartbeat(&member_ids[0], 1),
        ec::REBALANCE_IN_PROGRESS
    );
    // The old member rejoins: everyone is in, the rebalance completes at once.
    let (old_request, effects) = harness.join(join_request(&member_ids[0], "c1"));
    let responses = join_responses(&effects);
    assert_eq!(responses.len(), 2);
    assert_eq!(
        responses
            .iter()
            .map(|(request, _)| *request)
            .collect::<BTreeSet<_>>(),
        [old_request, new_request].into()
    );
    assert!(
        responses
            .iter()
            .all(|(_, response)| response.generation_id == 2)
    );
    assert_eq!(
        harness.group.leader_id(),
        Some(member_ids[0].as_str()),
        "the old leader is kept"
    );
    assert_eq!(harness.group.state(), GroupState::CompletingRebalance);
}

#[test]
fn rebalance_timeout_removes_members_that_did_not_rejoin() {
    let mut harness = Harness::new();
    let (member_ids, _) = harness.stable_group(&["c1", "c2"]);
    let started_ms = harness.now_ms;
    // The leader asks for a new assignment; the follower never rejoins but
    // keeps heartbeating, so only the rebalance timeout removes it.
    let (request, effects) = harness.join(join_request(&member_ids[0], "c1"));
    assert_eq!(effects, vec![]);
    assert_eq!(harness.group.state(), GroupState::PreparingRebalance);
    let deadline = started_ms + REBALANCE_MS as u64;
    let mut now = started_ms;
    while now + 5_000 < deadline {
        now += 5_000;
        assert_eq!(harness.advance_to(now), vec![]);
        assert_eq!(
            harness.heartbeat(&member_ids[1], 1),
            ec::REBALANCE_IN_PROGRESS
        );
    }
    assert_eq!(harness.advance_to(deadline - 1), vec![]);
    let effects = harness.advance_to(deadline);
    assert_eq!(
        join_responses(&effects)
            .iter()
            .map(|(id, response)| (*id, response.members.len()))
            .collect::<Vec<_>>(),
        vec![(request, 1)]
    );
    assert!(!harness.group.has_member(&member_ids[1]));
    assert_eq!(harness.group.generation_id(), 2);
}

#[test]
fn follower_rejoining_a_stable_group_with_unchanged_metadata_gets_the_current_generation() {
    let mut harness = Harness::new();
    let (member_ids, generation_id) = harness.stable_group(&["c1", "c2"]);
    let (id, effects) = harness.join(join_request(&member_ids[1], "c2"));
    let responses = join_responses(&effects);
    assert_eq!(responses.len(), 1);
    assert_eq!(responses[0].0, id);
    assert_eq!(responses[0].1.error_code, ec::NONE);
    assert_eq!(responses[0].1.generation_id, generation_id);
    assert_eq!(responses[0].1.members, vec![]);
    assert_eq!(harness.group.state(), GroupState::Stable);
}

#[test]
fn follower_rejoining_with_changed_metadata_starts_a_rebalance() {
    let mut harness = Harness::new();
    let (member_ids, _) = harness.stable_group(&["c1", "c2"]);
    let mut request = join_request(&member_ids[1], "c2");
    request.protocols = vec![protocol("range", "new-subscription")];
    let (_, effects) = harness.join(request);
    assert_eq!(effects, vec![]);
    assert_eq!(harness.group.state(), GroupState::PreparingRebalance);
}

#[test]
fn leader_rejoining_a_stable_group_starts_a_rebalance() {
    let mut harness = Harness::new();
    let (member_ids, _) = harness.stable_group(&["c1", "c2"]);
    let (_, effects) = harness.join(join_request(&member_ids[0], "c1"));
    assert_eq!(effects, vec![]);
    assert_eq!(harness.group.state(), GroupState::PreparingRebalance);
    // Cooperative clients rejoin while keeping their assignment; both rejoin.
    let (_, effects) = harness.join(join_request(&member_ids[1], "c2"));
    assert_eq!(join_responses(&effects).len(), 2);
    assert_eq!(harness.group.generation_id(), 2);
    assert_eq!(
        harness.group.assignment(&member_ids[1]),
        Some(&Bytes::from(format!("a-{}", member_ids[1])))
    );
}

#[test]
fn member_resending_a_parked_join_gets_the_old_request_answered_first() {
    let mut harness = Harness::new();
    let (member_ids, _) = harness.stable_group(&["c1", "c2"]);
    let (first, _) = harness.join(join_request(&member_ids[0], "c1"));
    let (second, effects) = harness.join(join_request(&member_ids[0], "c1"));
    assert_eq!(
        single_join_error(&effects, first).0,
        ec::REBALANCE_IN_PROGRESS
    );
    let (_, effects) = harness.join(join_request(&member_ids[1], "c2"));
    let answered: Vec<RequestId> = join_responses(&effects)
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    assert!(answered.contains(&second) && !answered.contains(&first));
}

#[test]
fn join_in_completing_rebalance_with_same_metadata_resends_the_generation() {
    let mut harness = Harness::new();
    let (member_ids, generation_id) = harness.join_all(&["c1", "c2"]);
    let (id, effects) = harness.join(join_request(&member_ids[0], "c1"));
    let responses = join_responses(&effects);
    assert_eq!(responses.len(), 1);
    assert_eq!(responses[0].0, id);
    assert_eq!(responses[0].1.generation_id, generation_id);
    assert_eq!(
        responses[0].1.members.len(),
        2,
        "the leader gets the members again"
    );
    assert_eq!(harness.group.state(), GroupState::CompletingRebalance);
}

#[test]
fn join_in_completing_rebalance_with_new_metadata_fails_parked_syncs_and_rebalances() {
    let mut harness = Harness::new();
    let (member_ids, generation_id) = harness.join_all(&["c1", "c2"]);
    let (parked, effects) = harness.sync(sync_request(&member_ids[1], generation_id, &[]));
    assert_eq!(effects, vec![]);
    let mut request = join_request(&member_ids[0], "c1");
    request.protocols = vec![protocol("range", "changed")];
    let (_, effects) = harness.join(request);
    let result = single_sync_result(&effects, parked);
    assert_eq!(result, SyncResult::error(ec::REBALANCE_IN_PROGRESS));
    assert_eq!(harness.group.state(), GroupState::PreparingRebalance);
}
