//! SyncGroup, Heartbeat and LeaveGroup tests.

use super::*;

// ------------------------------------------------------------------ SyncGroup

#[test]
fn followers_wait_for_the_leader_and_then_everyone_gets_their_assignment() {
    let mut harness = Harness::new();
    let (member_ids, generation_id) = harness.join_all(&["c1", "c2", "c3"]);
    let (follower_one, effects) = harness.sync(sync_request(&member_ids[1], generation_id, &[]));
    assert_eq!(effects, vec![]);
    let (follower_two, effects) = harness.sync(sync_request(&member_ids[2], generation_id, &[]));
    assert_eq!(effects, vec![]);
    let (leader, effects) = harness.sync(sync_request(
        &member_ids[0],
        generation_id,
        &[(&member_ids[0], "p0"), (&member_ids[1], "p1")],
    ));
    assert_eq!(harness.group.state(), GroupState::Stable);
    // Persist first, then the responses (member id order).
    assert!(matches!(effects[0], Effect::PersistGroup(_)));
    let snapshot = persisted(&effects).remove(0);
    assert_eq!(snapshot.generation, generation_id);
    assert_eq!(snapshot.members.len(), 3);
    let mut responses = sync_responses(&effects);
    responses.sort_by_key(|(id, _)| *id);
    let ok = |assignment: &str| SyncResult {
        error_code: ec::NONE,
        protocol_type: Some("consumer".to_string()),
        protocol_name: Some("range".to_string()),
        assignment: Bytes::from(assignment.to_string()),
    };
    assert_eq!(
        responses,
        vec![
            (follower_one, ok("p1")),
            (follower_two, ok("")),
            (leader, ok("p0"))
        ]
    );
}

#[test]
fn sync_with_a_wrong_generation_is_illegal_generation() {
    let mut harness = Harness::new();
    let (member_ids, generation_id) = harness.join_all(&["c1"]);
    let (id, effects) = harness.sync(sync_request(&member_ids[0], generation_id + 1, &[]));
    assert_eq!(
        single_sync_result(&effects, id),
        SyncResult::error(ec::ILLEGAL_GENERATION)
    );
}

#[test]
fn sync_from_an_unknown_member_is_unknown_member_id() {
    let mut harness = Harness::new();
    let (id, effects) = harness.sync(sync_request("ghost", 0, &[]));
    assert_eq!(
        single_sync_result(&effects, id).error_code,
        ec::UNKNOWN_MEMBER_ID,
        "Empty group"
    );
    let (_, generation_id) = harness.join_all(&["c1"]);
    let (id, effects) = harness.sync(sync_request("ghost", generation_id, &[]));
    assert_eq!(
        single_sync_result(&effects, id).error_code,
        ec::UNKNOWN_MEMBER_ID
    );
}

#[test]
fn sync_during_preparing_rebalance_is_rebalance_in_progress() {
    let mut harness = Harness::new();
    let (member_ids, generation_id) = harness.stable_group(&["c1", "c2"]);
    harness.join(join_request("", "c3"));
    let (id, effects) = harness.sync(sync_request(&member_ids[1], generation_id, &[]));
    assert_eq!(
        single_sync_result(&effects, id),
        SyncResult::error(ec::REBALANCE_IN_PROGRESS)
    );
}

#[test]
fn sync_in_a_stable_group_returns_the_current_assignment() {
    let mut harness = Harness::new();
    let (member_ids, generation_id) = harness.stable_group(&["c1", "c2"]);
    let (id, effects) = harness.sync(sync_request(
        &member_ids[1],
        generation_id,
        &[(&member_ids[1], "ignored")],
    ));
    let result = single_sync_result(&effects, id);
    assert_eq!(result.error_code, ec::NONE);
    assert_eq!(
        result.assignment,
        Bytes::from(format!("a-{}", member_ids[1]))
    );
}

#[test]
fn sync_with_a_mismatched_protocol_is_inconsistent_group_protocol() {
    let mut harness = Harness::new();
    let (member_ids, generation_id) = harness.stable_group(&["c1"]);
    let mut request = sync_request(&member_ids[0], generation_id, &[]);
    request.protocol_name = Some("roundrobin".to_string());
    let (id, effects) = harness.sync(request.clone());
    assert_eq!(
        single_sync_result(&effects, id).error_code,
        ec::INCONSISTENT_GROUP_PROTOCOL
    );
    request.protocol_name = Some("range".to_string());
    request.protocol_type = Some("connect".to_string());
    let (id, effects) = harness.sync(request.clone());
    assert_eq!(
        single_sync_result(&effects, id).error_code,
        ec::INCONSISTENT_GROUP_PROTOCOL
    );
    request.protocol_type = Some("consumer".to_string());
    let (id, effects) = harness.sync(request);
    assert_eq!(single_sync_result(&effects, id).error_code, ec::NONE);
}

#[test]
fn member_that_never_syncs_is_removed_after_the_rebalance_timeout() {
    let mut harness = Harness::new();
    let (member_ids, generation_id) = harness.join_all(&["c1", "c2"]);
    let completed_ms = harness.now_ms;
    let (parked, _) = harness.sync(sync_request(&member_ids[0], generation_id, &[]));
    // The leader synced (group Stable), the follower never does.
    assert_eq!(harness.group.state(), GroupState::Stable);
    let _ = parked;
    // Keep the leader's session alive past the sync deadline.
    let mut effects = Vec::new();
    let mut now = completed_ms;
    while now < completed_ms + REBALANCE_MS as u64 {
        now += 5_000;
        effects.extend(harness.advance_to(now));
        harness.heartbeat(&member_ids[0], generation_id);
    }
    assert!(!harness.group.has_member(&member_ids[1]));
    assert!(harness.group.has_member(&member_ids[0]));
    assert_eq!(harness.group.state(), GroupState::PreparingRebalance);
    assert_eq!(harness.group.generation_id(), generation_id);
    // The leader rejoins and the group moves on without the follower.
    let (_, effects) = harness.join(join_request(&member_ids[0], "c1"));
    assert_eq!(join_responses(&effects).len(), 1);
    assert_eq!(harness.group.generation_id(), generation_id + 1);
}

// ------------------------------------------------------------------ Heartbeat

#[test]
fn heartbeat_answers_by_state_and_extends_the_session() {
    let mut harness = Harness::new();
    let (member_ids, generation_id) = harness.join_all(&["c1", "c2"]);
    assert_eq!(
        harness.heartbeat(&member_ids[1], generation_id),
        ec::NONE,
        "CompletingRebalance"
    );
    harness.sync_all(&member_ids, generation_id);
    harness.now_ms += 9_000;
    assert_eq!(
        harness.heartbeat(&member_ids[1], generation_id),
        ec::NONE,
        "Stable"
    );
    assert_eq!(harness.heartbeat(&member_ids[0], generation_id), ec::NONE);
    let extended = harness.now_ms + SESSION_MS as u64;
    assert_eq!(harness.group.next_deadline_ms(), Some(extended));
    assert_eq!(
        harness.heartbeat(&member_ids[1], generation_id - 1),
        ec::ILLEGAL_GENERATION
    );
    assert_eq!(
        harness.heartbeat("ghost", generation_id),
        ec::UNKNOWN_MEMBER_ID
    );
    harness.join(join_request("", "c3"));
    harness.now_ms += 1_000;
    assert_eq!(
        harness.heartbeat(&member_ids[1], generation_id),
        ec::REBALANCE_IN_PROGRESS
    );
    let members = harness.group.members.get(&member_ids[1]).unwrap();
    assert_eq!(
        members.session_deadline_ms,
        Some(harness.now_ms + SESSION_MS as u64)
    );
}

#[test]
fn member_that_stops_heartbeating_is_removed_and_a_rebalance_starts() {
    let mut harness = Harness::new();
    let (member_ids, generation_id) = harness.stable_group(&["c1", "c2"]);
    let start = harness.now_ms;
    harness.now_ms = start + 5_000;
    assert_eq!(harness.heartbeat(&member_ids[0], generation_id), ec::NONE);
    let effects = harness.advance_to(start + SESSION_MS as u64);
    assert_eq!(effects, vec![]);
    assert!(!harness.group.has_member(&member_ids[1]));
    assert_eq!(harness.group.state(), GroupState::PreparingRebalance);
}

#[test]
fn last_member_timing_out_empties_the_group_and_persists_it() {
    let mut harness = Harness::new();
    let (member_ids, generation_id) = harness.stable_group(&["c1"]);
    let effects = harness.advance_to(harness.now_ms + SESSION_MS as u64);
    assert_eq!(harness.group.state(), GroupState::Empty);
    assert_eq!(harness.group.generation_id(), generation_id + 1);
    assert!(!harness.group.has_member(&member_ids[0]));
    assert_eq!(
        effects,
        vec![Effect::PersistGroup(GroupValue {
            protocol_type: "consumer".to_string(),
            generation: generation_id + 1,
            protocol: None,
            leader: None,
            current_state_timestamp_ms: harness.now_ms as i64,
            members: vec![],
        })]
    );
    assert_eq!(harness.group.next_deadline_ms(), None);
}

#[test]
fn new_member_whose_join_is_parked_too_long_is_dropped() {
    let mut harness = Harness::new();
    let (member_ids, _) = harness.stable_group(&["c1", "c2"]);
    // c3 joins; c1 and c2 never rejoin but keep heartbeating (not new, so
    // their parked state does not matter); the new member's join is dropped
    // after the new-member timeout only if the rebalance outlasts it.
    harness.group.config = GroupConfig {
        new_member_join_timeout_ms: 20_000,
        ..GroupConfig::default()
    };
    let start = harness.now_ms;
    let (parked, _) = harness.join(join_request("", "c3"));
    harness.join(join_request(&member_ids[0], "c1"));
    for now in [start + 5_000, start + 10_000, start + 15_000] {
        assert_eq!(harness.advance_to(now), vec![]);
        assert_eq!(
            harness.heartbeat(&member_ids[1], 1),
            ec::REBALANCE_IN_PROGRESS
        );
    }
    let effects = harness.advance_to(start + 20_000);
    assert_eq!(
        single_join_error(&effects, parked),
        (ec::UNKNOWN_MEMBER_ID, String::new())
    );
    assert_eq!(harness.group.member_count(), 2);
}

// ----------------------------------------------------------------- LeaveGroup

#[test]
fn leaving_member_is_removed_and_the_group_rebalances() {
    let mut harness = Harness::new();
    let (member_ids, generation_id) = harness.stable_group(&["c1", "c2", "c3"]);
    let (id, effects) = harness.leave(vec![leave_member(&member_ids[2], None)]);
    assert_eq!(leave_codes(&effects, id), (ec::NONE, vec![ec::NONE]));
    assert_eq!(harness.group.state(), GroupState::PreparingRebalance);
    assert_eq!(harness.group.member_count(), 2);
    harness.join(join_request(&member_ids[0], "c1"));
    let (_, effects) = harness.join(join_request(&member_ids[1], "c2"));
    assert_eq!(join_responses(&effects).len(), 2);
    assert_eq!(harness.group.generation_id(), generation_id + 1);
}

#[test]
fn last_member_leaving_empties_the_group() {
    let mut harness = Harness::new();
    let (member_ids, generation_id) = harness.stable_group(&["c1"]);
    let (id, effects) = harness.leave(vec![leave_member(&member_ids[0], None)]);
    assert_eq!(leave_codes(&effects, id), (ec::NONE, vec![ec::NONE]));
    assert_eq!(persisted(&effects).len(), 1);
    assert!(matches!(effects[0], Effect::PersistGroup(_)));
    assert_eq!(harness.group.state(), GroupState::Empty);
    assert_eq!(harness.group.generation_id(), generation_id + 1);
    assert_eq!(harness.group.describe().state_name, "Empty");
}

#[test]
fn leave_batch_reports_unknown_members_one_by_one() {
    let mut harness = Harness::new();
    let (member_ids, _) = harness.stable_group(&["c1", "c2"]);
    let (id, effects) = harness.leave(vec![
        leave_member("ghost", None),
        leave_member(&member_ids[1], None),
        leave_member("", Some("no-such-instance")),
    ]);
    assert_eq!(
        leave_codes(&effects, id),
        (
            ec::NONE,
            vec![ec::UNKNOWN_MEMBER_ID, ec::NONE, ec::UNKNOWN_MEMBER_ID]
        )
    );
    let (id, effects) = harness.leave(vec![leave_member("ghost", None)]);
    assert_eq!(
        leave_codes(&effects, id),
        (ec::NONE, vec![ec::UNKNOWN_MEMBER_ID])
    );
}

#[test]
fn leaving_member_with_a_parked_join_gets_it_answered() {
    let mut harness = Harness::new();
    let (member_ids, _) = harness.stable_group(&["c1", "c2"]);
    let (parked, _) = harness.join(join_request(&member_ids[0], "c1"));
    let (id, effects) = harness.leave(vec![leave_member(&member_ids[0], None)]);
    assert_eq!(effects.len(), 2);
    assert_eq!(
        effects[0],
        Effect::JoinResponse {
            request: parked,
            response: JoinResult::error("", ec::UNKNOWN_MEMBER_ID),
        }
    );
    assert_eq!(leave_codes(&effects, id).1, vec![ec::NONE]);
}

#[test]
fn pending_member_can_leave() {
    let mut harness = Harness::new();
    let mut request = join_request("", "c1");
    request.require_known_member_id = true;
    let (id, effects) = harness.join(request);
    let member_id = single_join_error(&effects, id).1;
    let (id, effects) = harness.leave(vec![leave_member(&member_id, None)]);
    assert_eq!(leave_codes(&effects, id).1, vec![ec::NONE]);
    assert_eq!(harness.group.pending_member_count(), 0);
}
