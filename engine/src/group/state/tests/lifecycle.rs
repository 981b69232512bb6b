//! Lifecycle tests: unload, delete, state transitions, offset commit
//! validation, describe and snapshots.

use super::*;

// --------------------------------------------------------- Dead and lifecycle

#[test]
fn unloaded_group_answers_parked_requests_and_refuses_new_ones() {
    let mut harness = Harness::new();
    let (join_id, _) = harness.join(join_request("", "c1"));
    let effects = harness.group.unload(harness.now_ms);
    assert_eq!(
        effects,
        vec![Effect::JoinResponse {
            request: join_id,
            response: JoinResult::error(harness.group.leader_id().unwrap(), ec::NOT_COORDINATOR),
        }]
    );
    assert_eq!(harness.group.state(), GroupState::Dead);
    assert_eq!(harness.group.next_deadline_ms(), None);
    let (id, effects) = harness.join(join_request("", "c2"));
    assert_eq!(
        single_join_error(&effects, id).0,
        ec::COORDINATOR_NOT_AVAILABLE
    );
    let member_id = harness.group.leader_id().unwrap().to_string();
    let (id, effects) = harness.sync(sync_request(&member_id, 0, &[]));
    assert_eq!(
        single_sync_result(&effects, id).error_code,
        ec::COORDINATOR_NOT_AVAILABLE
    );
    assert_eq!(
        harness.heartbeat(&member_id, 0),
        ec::COORDINATOR_NOT_AVAILABLE
    );
    let (id, effects) = harness.leave(vec![leave_member(&member_id, None)]);
    assert_eq!(
        leave_codes(&effects, id),
        (ec::COORDINATOR_NOT_AVAILABLE, vec![])
    );
    assert_eq!(
        harness.group.validate_offset_commit("", None, -1),
        Err(ec::COORDINATOR_NOT_AVAILABLE)
    );
    assert_eq!(
        harness.group.validate_offset_fetch(),
        Err(ec::GROUP_ID_NOT_FOUND)
    );
    assert_eq!(harness.group.validate_delete(), Err(ec::GROUP_ID_NOT_FOUND));
}

#[test]
fn only_an_empty_group_can_be_deleted() {
    let mut harness = Harness::new();
    harness.stable_group(&["c1"]);
    assert_eq!(
        harness.group.delete(harness.now_ms),
        Err(ec::NON_EMPTY_GROUP)
    );
    let mut empty = Harness::new();
    assert_eq!(
        empty.group.delete(0),
        Ok(vec![Effect::PersistGroupTombstone])
    );
    assert_eq!(empty.group.state(), GroupState::Dead);
}

#[test]
#[should_panic(expected = "invalid group state transition")]
fn invalid_state_transitions_crash() {
    let mut group = Group::new(GroupConfig::default(), SEED, 0);
    group.transition_to(GroupState::Stable, 0);
}

#[test]
fn state_transitions_match_kafka() {
    use GroupState::*;
    let all = [Empty, PreparingRebalance, CompletingRebalance, Stable, Dead];
    let allowed = [
        (Empty, PreparingRebalance),
        (PreparingRebalance, Empty),
        (PreparingRebalance, CompletingRebalance),
        (CompletingRebalance, PreparingRebalance),
        (CompletingRebalance, Stable),
        (Stable, PreparingRebalance),
    ];
    for from in all {
        for to in all {
            let expected = to == Dead || allowed.contains(&(from, to));
            assert_eq!(from.can_transition_to(to), expected, "{from:?} -> {to:?}");
        }
    }
    let names: Vec<&str> = all.iter().map(|state| state.name()).collect();
    assert_eq!(
        names,
        [
            "Empty",
            "PreparingRebalance",
            "CompletingRebalance",
            "Stable",
            "Dead"
        ]
    );
}

// ----------------------------------------------------------- Offset commits

#[test]
fn offset_commit_validation_follows_kafka() {
    let mut harness = Harness::new();
    let group = &harness.group;
    assert_eq!(
        group.validate_offset_commit("", None, -1),
        Ok(()),
        "standalone commit to an Empty group"
    );
    assert_eq!(
        group.validate_offset_commit("ghost", None, 1),
        Err(ec::UNKNOWN_MEMBER_ID)
    );
    let (member_ids, generation_id) = harness.join_all(&["c1"]);
    let group = &harness.group;
    assert_eq!(
        group.validate_offset_commit("", None, -1),
        Err(ec::UNKNOWN_MEMBER_ID)
    );
    assert_eq!(
        group.validate_offset_commit(&member_ids[0], None, generation_id),
        Err(ec::REBALANCE_IN_PROGRESS)
    );
    assert_eq!(
        group.validate_transactional_offset_commit(&member_ids[0], None, generation_id),
        Ok(())
    );
    assert_eq!(
        group.validate_transactional_offset_commit("", None, -1),
        Ok(())
    );
    harness.sync_all(&member_ids, generation_id);
    let group = &harness.group;
    assert_eq!(
        group.validate_offset_commit(&member_ids[0], None, generation_id),
        Ok(())
    );
    assert_eq!(
        group.validate_offset_commit(&member_ids[0], None, generation_id - 1),
        Err(ec::ILLEGAL_GENERATION)
    );
    assert_eq!(
        group.validate_offset_commit("ghost", None, generation_id),
        Err(ec::UNKNOWN_MEMBER_ID)
    );
    assert_eq!(
        group.validate_offset_commit(&member_ids[0], Some("nobody"), generation_id),
        Err(ec::UNKNOWN_MEMBER_ID)
    );
    assert_eq!(group.validate_offset_fetch(), Ok(()));
    assert_eq!(group.validate_delete(), Err(ec::NON_EMPTY_GROUP));
}

// ---------------------------------------------------- Describe and snapshots

#[test]
fn describe_reports_metadata_and_assignments_only_when_stable() {
    let mut harness = Harness::new();
    let (member_ids, generation_id) = harness.join_all(&["c1"]);
    let description = harness.group.describe();
    assert_eq!(description.state_name, "CompletingRebalance");
    assert_eq!(description.protocol_name, "");
    assert_eq!(description.members[0].metadata, Bytes::new());
    harness.sync_all(&member_ids, generation_id);
    let description = harness.group.describe();
    assert_eq!(
        description,
        GroupDescription {
            state: GroupState::Stable,
            state_name: "Stable",
            protocol_type: "consumer".to_string(),
            protocol_name: "range".to_string(),
            generation_id,
            leader_id: Some(member_ids[0].clone()),
            members: vec![DescribedMember {
                member_id: member_ids[0].clone(),
                group_instance_id: None,
                client_id: "c1".to_string(),
                client_host: "/10.0.0.2".to_string(),
                metadata: Bytes::from("c1-range"),
                assignment: Bytes::from(format!("a-{}", member_ids[0])),
            }],
        }
    );
}

#[test]
fn group_restored_from_a_snapshot_is_stable_with_fresh_sessions() {
    let mut harness = Harness::new();
    let (member_ids, generation_id) = static_stable_group(&mut harness);
    let snapshot = harness.group.snapshot();
    assert_eq!(snapshot.members.len(), 2);
    assert_eq!(snapshot.members[0].rebalance_timeout_ms, REBALANCE_MS);
    assert_eq!(snapshot.members[0].session_timeout_ms, SESSION_MS);
    let restored =
        Group::from_snapshot(snapshot.clone(), GroupConfig::default(), SEED + 1, 100_000);
    assert_eq!(restored.state(), GroupState::Stable);
    assert_eq!(restored.generation_id(), generation_id);
    assert_eq!(restored.leader_id(), Some(member_ids[0].as_str()));
    assert_eq!(
        restored.static_member_id("s1"),
        harness.group.static_member_id("s1")
    );
    assert_eq!(
        restored.next_deadline_ms(),
        Some(100_000 + SESSION_MS as u64)
    );
    assert_eq!(restored.snapshot(), snapshot);
    assert_eq!(
        restored.describe().members,
        harness.group.describe().members
    );
    // A follower of the old generation can go on heartbeating.
    let mut restored_harness = Harness {
        group: restored,
        now_ms: 100_000,
        request_next: 1,
    };
    assert_eq!(
        restored_harness.heartbeat(&member_ids[1], generation_id),
        ec::NONE
    );
    let empty = Group::from_snapshot(
        GroupValue {
            protocol_type: "consumer".to_string(),
            generation: 4,
            protocol: None,
            leader: None,
            current_state_timestamp_ms: 5,
            members: vec![],
        },
        GroupConfig::default(),
        SEED,
        10,
    );
    assert_eq!(empty.state(), GroupState::Empty);
    assert_eq!(empty.generation_id(), 4);
    assert_eq!(empty.validate_offset_commit("", None, -1), Ok(()));
}
