//! Static membership tests: restarts, fencing, leaving and timeouts.

use super::*;

// ---------------------------------------------------------- Static membership

#[test]
fn static_member_restart_in_a_stable_group_does_not_rebalance_and_fences_the_old_id() {
    let mut harness = Harness::new();
    let (member_ids, generation_id) = static_stable_group(&mut harness);
    let old_id = harness.group.static_member_id("s2").unwrap().to_string();
    assert!(
        old_id.starts_with("s2-"),
        "static member ids start with the instance id"
    );
    let old_assignment = harness.group.assignment(&old_id).unwrap().clone();
    let (id, effects) = harness.join(static_join_request("", "s2"));
    assert_eq!(harness.group.state(), GroupState::Stable);
    assert_eq!(harness.group.generation_id(), generation_id);
    let new_id = harness.group.static_member_id("s2").unwrap().to_string();
    assert_ne!(new_id, old_id);
    assert_eq!(harness.group.assignment(&new_id), Some(&old_assignment));
    assert_eq!(effects.len(), 2);
    let snapshot = persisted(&effects).remove(0);
    assert!(
        snapshot
            .members
            .iter()
            .any(|member| member.member_id == new_id)
    );
    assert!(
        !snapshot
            .members
            .iter()
            .any(|member| member.member_id == old_id)
    );
    let responses = join_responses(&effects);
    assert_eq!(responses[0].0, id);
    assert_eq!(responses[0].1.member_id, new_id);
    assert_eq!(responses[0].1.generation_id, generation_id);
    // The old incarnation is fenced everywhere.
    let fenced = HeartbeatRequest {
        member_id: old_id.clone(),
        group_instance_id: Some("s2".to_string()),
        generation_id,
    };
    let request = harness.request_id();
    assert_eq!(
        harness.group.heartbeat(request, fenced, harness.now_ms),
        vec![Effect::HeartbeatResponse {
            request,
            error_code: ec::FENCED_INSTANCE_ID
        }]
    );
    let mut sync = sync_request(&old_id, generation_id, &[]);
    sync.group_instance_id = Some("s2".to_string());
    let (id, effects) = harness.sync(sync);
    assert_eq!(
        single_sync_result(&effects, id).error_code,
        ec::FENCED_INSTANCE_ID
    );
    let (id, effects) = harness.join(static_join_request(&old_id, "s2"));
    assert_eq!(single_join_error(&effects, id).0, ec::FENCED_INSTANCE_ID);
    let (id, effects) = harness.leave(vec![leave_member(&old_id, Some("s2"))]);
    assert_eq!(leave_codes(&effects, id).1, vec![ec::FENCED_INSTANCE_ID]);
    assert_eq!(
        harness
            .group
            .validate_offset_commit(&old_id, Some("s2"), generation_id),
        Err(ec::FENCED_INSTANCE_ID)
    );
    assert_eq!(
        harness
            .group
            .validate_offset_commit(&new_id, Some("s2"), generation_id),
        Ok(())
    );
    assert_eq!(harness.group.member_count(), member_ids.len());
}

#[test]
fn static_leader_restart_with_skip_assignment_gets_the_member_list() {
    let mut harness = Harness::new();
    let (member_ids, generation_id) = static_stable_group(&mut harness);
    let leader_instance = harness
        .group
        .members
        .get(&member_ids[0])
        .unwrap()
        .group_instance_id
        .clone()
        .unwrap();
    let mut request = static_join_request("", &leader_instance);
    request.supports_skip_assignment = true;
    let (_, effects) = harness.join(request);
    let response = join_responses(&effects).remove(0).1;
    assert!(response.skip_assignment);
    assert_eq!(response.members.len(), 2);
    assert_eq!(response.leader, response.member_id);
    assert_eq!(harness.group.generation_id(), generation_id);
}

#[test]
fn static_member_restart_with_a_protocol_change_rebalances() {
    let mut harness = Harness::new();
    static_stable_group(&mut harness);
    let old_s1 = harness.group.static_member_id("s1").unwrap().to_string();
    let old_s2 = harness.group.static_member_id("s2").unwrap().to_string();
    // s2 now prefers roundrobin; s1 also lists it, so the vote changes the protocol.
    let mut s1 = static_join_request(&old_s1, "s1");
    s1.protocols = vec![protocol("roundrobin", "x"), protocol("range", "y")];
    harness.join(s1);
    assert_eq!(harness.group.state(), GroupState::PreparingRebalance);
    let mut s2 = static_join_request("", "s2");
    s2.protocols = vec![protocol("roundrobin", "x"), protocol("range", "y")];
    let (_, effects) = harness.join(s2);
    assert_eq!(join_responses(&effects).len(), 2);
    assert_eq!(harness.group.protocol_name(), Some("roundrobin"));
    assert!(!harness.group.has_member(&old_s2));
}

#[test]
fn static_member_that_does_not_rejoin_stays_through_a_rebalance() {
    let mut harness = Harness::new();
    let (member_ids, generation_id) = static_stable_group(&mut harness);
    harness.join(static_join_request(
        &member_ids[0],
        harness.group.members[&member_ids[0]]
            .group_instance_id
            .clone()
            .unwrap()
            .as_str(),
    ));
    let deadline = harness.group.join_timer.unwrap().deadline_ms();
    // The follower heartbeats but never rejoins.
    let mut now = harness.now_ms;
    while now + 5_000 < deadline {
        now += 5_000;
        harness.advance_to(now);
        assert_eq!(
            harness.heartbeat(&member_ids[1], generation_id),
            ec::REBALANCE_IN_PROGRESS
        );
    }
    let effects = harness.advance_to(deadline);
    assert_eq!(join_responses(&effects).len(), 1);
    assert!(
        harness.group.has_member(&member_ids[1]),
        "static members are not dropped at the rebalance timeout"
    );
    assert_eq!(harness.group.generation_id(), generation_id + 1);
}

#[test]
fn static_member_leaving_by_instance_id_is_removed() {
    let mut harness = Harness::new();
    static_stable_group(&mut harness);
    let (id, effects) = harness.leave(vec![leave_member("", Some("s1"))]);
    assert_eq!(leave_codes(&effects, id).1, vec![ec::NONE]);
    assert_eq!(harness.group.static_member_id("s1"), None);
    assert_eq!(harness.group.member_count(), 1);
    assert_eq!(harness.group.state(), GroupState::PreparingRebalance);
}

#[test]
fn static_member_session_timeout_removes_it() {
    let mut harness = Harness::new();
    let (_, generation_id) = static_stable_group(&mut harness);
    let survivor = harness.group.static_member_id("s1").unwrap().to_string();
    let start = harness.now_ms;
    harness.now_ms = start + 6_000;
    harness.heartbeat(&survivor, generation_id);
    harness.advance_to(start + SESSION_MS as u64);
    assert_eq!(harness.group.static_member_id("s2"), None);
    assert_eq!(harness.group.member_count(), 1);
}

#[test]
fn static_member_restart_during_completing_rebalance_rebalances() {
    let mut harness = Harness::new();
    harness.join(static_join_request("", "s1"));
    harness.join(static_join_request("", "s2"));
    harness.advance_to(6_000);
    let generation_id = harness.group.generation_id();
    let old_s2 = harness.group.static_member_id("s2").unwrap().to_string();
    let mut parked_sync = sync_request(&old_s2, generation_id, &[]);
    parked_sync.group_instance_id = Some("s2".to_string());
    let (parked, _) = harness.sync(parked_sync);
    let (_, effects) = harness.join(static_join_request("", "s2"));
    assert_eq!(
        single_sync_result(&effects[..1], parked).error_code,
        ec::FENCED_INSTANCE_ID
    );
    assert_eq!(harness.group.state(), GroupState::PreparingRebalance);
}
