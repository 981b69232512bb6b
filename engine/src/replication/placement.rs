//! Replica placement for new partitions (Kafka's `assignReplicasToBrokers`): leaders
//! spread evenly, followers shifted so that no two partitions share the same replica
//! list pattern, and with `broker.rack` set, every partition spans as many racks as it
//! can.
//!
//! ```text
//!  brokers (rack-alternated when racks are set: r1a r2a r3a r1b r2b r3b ...)
//!  partition p: first replica = brokers[(start + p) % n]
//!               replica j ≥ 1 = brokers[(first + 1 + (shift + j - 1) % (n - 1)) % n]
//!               (shift grows by one every n partitions; with racks, candidates whose
//!                rack is already used are skipped while unused racks remain)
//! ```
//!
//! `start` and the initial `shift` come from the caller (Kafka picks them at random; the
//! controller derives them from the topic name so that a replay places identically).

use std::collections::{BTreeMap, BTreeSet};

use super::NodeId;

/// A broker that may hold replicas.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlacementBroker {
    pub id: NodeId,
    pub rack: Option<String>,
}

/// Why replicas cannot be placed (Kafka's INVALID_REPLICATION_FACTOR /
/// INVALID_REPLICA_ASSIGNMENT / INVALID_PARTITIONS).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PlacementError {
    #[error("Replication factor: {replication_factor} larger than available brokers: {brokers}.")]
    ReplicationFactorTooLarge {
        replication_factor: i16,
        brokers: usize,
    },
    #[error("Replication factor must be larger than 0, got {0}.")]
    ReplicationFactorTooSmall(i16),
    #[error("Number of partitions must be larger than 0, got {0}.")]
    NoPartitions(i32),
    #[error("Invalid replica assignment: {0}")]
    InvalidAssignment(String),
}

/// Brokers ordered for placement: by id, or alternating across racks (each rack's
/// brokers by id) when every broker has a rack.
fn arrange(brokers: &[PlacementBroker]) -> Vec<PlacementBroker> {
    let mut sorted = brokers.to_vec();
    sorted.sort_by_key(|broker| broker.id);
    if sorted.iter().any(|broker| broker.rack.is_none()) {
        return sorted;
    }
    let mut by_rack: BTreeMap<&str, Vec<&PlacementBroker>> = BTreeMap::new();
    for broker in &sorted {
        by_rack
            .entry(broker.rack.as_deref().expect("checked"))
            .or_default()
            .push(broker);
    }
    let mut arranged = Vec::with_capacity(sorted.len());
    for round in 0.. {
        let before = arranged.len();
        arranged.extend(
            by_rack
                .values()
                .filter_map(|rack| rack.get(round).map(|b| (*b).clone())),
        );
        if arranged.len() == before {
            break;
        }
    }
    arranged
}

/// Replica lists for `partitions` new partitions, numbered from 0.
pub fn place(
    brokers: &[PlacementBroker],
    partitions: i32,
    replication_factor: i16,
    start: usize,
    shift: usize,
) -> Result<Vec<Vec<NodeId>>, PlacementError> {
    if partitions < 1 {
        return Err(PlacementError::NoPartitions(partitions));
    }
    if replication_factor < 1 {
        return Err(PlacementError::ReplicationFactorTooSmall(
            replication_factor,
        ));
    }
    let factor = replication_factor as usize;
    if factor > brokers.len() {
        return Err(PlacementError::ReplicationFactorTooLarge {
            replication_factor,
            brokers: brokers.len(),
        });
    }
    let arranged = arrange(brokers);
    let n = arranged.len();
    let racks: BTreeSet<&str> = arranged.iter().filter_map(|b| b.rack.as_deref()).collect();
    let rack_aware = racks.len() > 1 && arranged.iter().all(|b| b.rack.is_some());
    let start = start % n;
    let mut shift = shift % n.max(1);
    let mut placed = Vec::with_capacity(partitions as usize);
    for partition in 0..partitions as usize {
        if partition > 0 && partition % n == 0 {
            shift += 1;
        }
        let first = (partition + start) % n;
        let mut replicas = vec![first];
        let mut used_racks: BTreeSet<&str> = arranged[first].rack.as_deref().into_iter().collect();
        let mut j = 0;
        while replicas.len() < factor {
            // Candidates in Kafka's order; with racks, an unused rack wins while one remains.
            let candidate = (first + 1 + (shift + j) % (n - 1)) % n;
            j += 1;
            if replicas.contains(&candidate) {
                continue;
            }
            let rack = arranged[candidate].rack.as_deref();
            let racks_left = rack_aware && used_racks.len() < racks.len();
            if racks_left && rack.is_some_and(|r| used_racks.contains(r)) && j < 2 * n {
                continue;
            }
            replicas.push(candidate);
            used_racks.extend(rack);
        }
        placed.push(
            replicas
                .into_iter()
                .map(|index| arranged[index].id)
                .collect(),
        );
    }
    Ok(placed)
}

/// Checks CreateTopics' explicit assignments: partitions numbered 0.., each with the
/// same number of distinct replicas, all on known brokers.
pub fn check_assignments(
    assignments: &[Vec<NodeId>],
    known: &BTreeSet<NodeId>,
) -> Result<(), PlacementError> {
    let invalid = |reason: String| Err(PlacementError::InvalidAssignment(reason));
    let Some(first) = assignments.first() else {
        return invalid("no partitions".to_string());
    };
    for (partition, replicas) in assignments.iter().enumerate() {
        if replicas.is_empty() {
            return invalid(format!("partition {partition} has no replicas"));
        }
        if replicas.len() != first.len() {
            return invalid(format!(
                "partition {partition} has {} replicas, partition 0 has {}",
                replicas.len(),
                first.len()
            ));
        }
        let distinct: BTreeSet<&NodeId> = replicas.iter().collect();
        if distinct.len() != replicas.len() {
            return invalid(format!(
                "partition {partition} lists a broker twice: {replicas:?}"
            ));
        }
        if let Some(unknown) = replicas.iter().find(|id| !known.contains(id)) {
            return invalid(format!(
                "partition {partition} names broker {unknown}, which is not registered"
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn brokers(specs: &[(NodeId, Option<&str>)]) -> Vec<PlacementBroker> {
        specs
            .iter()
            .map(|&(id, rack)| PlacementBroker {
                id,
                rack: rack.map(str::to_string),
            })
            .collect()
    }

    #[test]
    fn leaders_rotate_and_replicas_are_distinct() {
        let placed =
            place(&brokers(&[(1, None), (2, None), (3, None)]), 6, 3, 0, 0).expect("placed");
        let leaders: Vec<NodeId> = placed.iter().map(|r| r[0]).collect();
        assert_eq!(leaders, vec![1, 2, 3, 1, 2, 3]);
        for replicas in &placed {
            let distinct: BTreeSet<_> = replicas.iter().collect();
            assert_eq!(distinct.len(), 3, "{replicas:?}");
        }
        // Kafka's shift: the second round uses a different follower order.
        assert_ne!(placed[0][1..], placed[3][1..]);
    }

    #[test]
    fn every_broker_leads_and_holds_the_same_share() {
        let all = brokers(&[(1, None), (2, None), (3, None), (4, None), (5, None)]);
        let placed = place(&all, 20, 3, 2, 1).expect("placed");
        let mut leads = BTreeMap::new();
        let mut holds = BTreeMap::new();
        for replicas in &placed {
            *leads.entry(replicas[0]).or_insert(0) += 1;
            for id in replicas {
                *holds.entry(*id).or_insert(0) += 1;
            }
        }
        assert!(leads.values().all(|&n| n == 4), "{leads:?}");
        assert!(holds.values().all(|&n| n == 12), "{holds:?}");
    }

    #[test]
    fn with_racks_every_partition_spans_all_racks() {
        let racked = brokers(&[
            (1, Some("a")),
            (2, Some("a")),
            (3, Some("b")),
            (4, Some("b")),
            (5, Some("c")),
            (6, Some("c")),
        ]);
        let rack_of = |id: NodeId| {
            racked
                .iter()
                .find(|b| b.id == id)
                .and_then(|b| b.rack.clone())
        };
        for start in 0..6 {
            for shift in 0..6 {
                let placed = place(&racked, 12, 3, start, shift).expect("placed");
                for replicas in &placed {
                    let racks: BTreeSet<_> = replicas.iter().map(|&id| rack_of(id)).collect();
                    assert_eq!(racks.len(), 3, "start {start} shift {shift}: {replicas:?}");
                }
            }
        }
    }

    #[test]
    fn too_few_brokers_or_nonsense_counts_are_refused_with_kafkas_messages() {
        let one = brokers(&[(1, None)]);
        let error = place(&one, 1, 3, 0, 0).expect_err("refused");
        assert_eq!(
            error.to_string(),
            "Replication factor: 3 larger than available brokers: 1."
        );
        assert!(matches!(
            place(&one, 0, 1, 0, 0),
            Err(PlacementError::NoPartitions(0))
        ));
        assert!(matches!(
            place(&one, 1, 0, 0, 0),
            Err(PlacementError::ReplicationFactorTooSmall(0))
        ));
        assert_eq!(
            place(&one, 3, 1, 0, 0).expect("RF 1"),
            vec![vec![1], vec![1], vec![1]]
        );
    }

    #[test]
    fn explicit_assignments_are_checked() {
        let known: BTreeSet<NodeId> = [1, 2, 3].into_iter().collect();
        assert_eq!(check_assignments(&[vec![1, 2], vec![2, 3]], &known), Ok(()));
        for (assignments, expected) in [
            (vec![vec![1, 1]], "twice"),
            (vec![vec![1, 2], vec![3]], "has 1 replicas"),
            (vec![vec![1, 9]], "broker 9"),
            (vec![vec![]], "no replicas"),
            (vec![], "no partitions"),
        ] {
            let error = check_assignments(&assignments, &known)
                .expect_err("refused")
                .to_string();
            assert!(error.contains(expected), "{assignments:?}: {error}");
        }
    }
}
