//! Scripted scenario: a realistic group life from first join to a static
//! restart.

use super::*;

// --------------------------------------------------------- Scripted scenario

#[test]
fn scripted_group_life_from_first_join_to_static_restart() {
    let mut harness = Harness::new();
    // Three members join within the initial delay; the leader assigns.
    let (mut member_ids, generation_id) = harness.join_all(&["c1", "c2", "c3"]);
    assert_eq!(generation_id, 1);
    assert_eq!(harness.now_ms, 6_000, "one extension of the initial delay");
    harness.sync_all(&member_ids, 1);
    assert_eq!(harness.group.describe().members.len(), 3);
    // A 4th (static) member joins: rebalance to generation 2.
    harness.join(static_join_request("", "s4"));
    assert_eq!(harness.group.state(), GroupState::PreparingRebalance);
    for member_id in &member_ids {
        let client = harness.group.members[member_id].client_id.clone();
        harness.join(join_request(member_id, &client));
    }
    assert_eq!(harness.group.generation_id(), 2);
    let static_id = harness.group.static_member_id("s4").unwrap().to_string();
    member_ids.push(static_id.clone());
    harness.sync_all(&member_ids, 2);
    // c3 stops heartbeating: removed after its session, generation 3.
    let silent = member_ids.remove(2);
    let start = harness.now_ms;
    let mut now = start;
    while harness.group.has_member(&silent) {
        now += 1_000;
        harness.advance_to(now);
        if harness.group.state() == GroupState::Stable {
            for member_id in &member_ids {
                assert_eq!(harness.heartbeat(member_id, 2), ec::NONE);
            }
        }
    }
    assert_eq!(now - start, SESSION_MS as u64);
    assert_eq!(harness.group.state(), GroupState::PreparingRebalance);
    for member_id in &member_ids {
        let member = &harness.group.members[member_id];
        let mut request = join_request(member_id, &member.client_id.clone());
        request.group_instance_id = member.group_instance_id.clone();
        harness.join(request);
    }
    assert_eq!(harness.group.generation_id(), 3);
    harness.sync_all(&member_ids, 3);
    // The static member restarts: new id, no rebalance, old id fenced.
    let (_, effects) = harness.join(static_join_request("", "s4"));
    assert_eq!(persisted(&effects).len(), 1);
    assert_eq!(harness.group.generation_id(), 3);
    assert_eq!(harness.group.state(), GroupState::Stable);
    let new_static_id = harness.group.static_member_id("s4").unwrap().to_string();
    assert_ne!(new_static_id, static_id);
    let request = harness.request_id();
    let fenced = HeartbeatRequest {
        member_id: static_id,
        group_instance_id: Some("s4".to_string()),
        generation_id: 3,
    };
    let effects = harness.group.heartbeat(request, fenced, harness.now_ms);
    assert_eq!(
        effects,
        vec![Effect::HeartbeatResponse {
            request,
            error_code: ec::FENCED_INSTANCE_ID
        }]
    );
    assert_eq!(harness.heartbeat(&new_static_id, 3), ec::NONE);
    assert_eq!(harness.group.member_count(), 3);
}
