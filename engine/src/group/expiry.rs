//! Expiry of committed offsets (`offsets.retention.minutes`, KIP-211 semantics): a
//! group's offsets are kept while it has members; once it is empty they expire
//! `retention` after the group became empty (or, for standalone consumers with no
//! group state, after their own commit time). An explicit expire timestamp
//! (OffsetCommit v2–4 retention time) wins. When the last offset of a memberless group
//! expires, the group is forgotten too (Kafka turns it Dead).

use std::rc::Rc;

use tracing::{info, warn};

use super::coordinator::{GroupCoordinator, coordinator_for};
use super::driver::now_ms;
use super::offsets::{StoredGroup, group_record, offset_tombstones};
use super::state::GroupState;
use crate::shard::Shard;

/// The offsets of `stored` that have expired at `now_ms`. `empty_since_ms` is when
/// the live group became empty; `None` when it has members (nothing expires by age).
pub fn expired_offsets(
    stored: &StoredGroup,
    empty_since_ms: Option<i64>,
    has_live_group: bool,
    now_ms: i64,
    retention_ms: i64,
) -> Vec<(String, i32)> {
    stored
        .offsets
        .iter()
        .filter(|(_, value)| {
            if let Some(expire) = value.expire_timestamp_ms {
                return expire <= now_ms;
            }
            match (has_live_group, empty_since_ms) {
                // A group with members keeps its offsets.
                (true, None) => false,
                (true, Some(since)) => {
                    since
                        .max(value.commit_timestamp_ms)
                        .saturating_add(retention_ms)
                        <= now_ms
                }
                (false, _) => value.commit_timestamp_ms.saturating_add(retention_ms) <= now_ms,
            }
        })
        .map(|(key, _)| key.clone())
        .collect()
}

impl GroupCoordinator {
    /// Tombstones every expired offset of the groups this shard coordinates.
    pub async fn expire_offsets(&self, shard: &Rc<Shard>) {
        let now = now_ms() as i64;
        let retention_ms = shard.config.groups.offsets_retention_ms;
        let candidates: Vec<(String, StoredGroup)> = self
            .store
            .borrow()
            .group_names()
            .filter_map(|name| {
                self.store
                    .borrow()
                    .group(name)
                    .map(|stored| (name.to_string(), stored.clone()))
            })
            .collect();
        for (group_id, stored) in candidates {
            let live = self.table.with_group(&group_id, |group| {
                group.map(|group| {
                    let empty = matches!(group.state(), GroupState::Empty | GroupState::Dead);
                    (
                        empty.then(|| group.snapshot().current_state_timestamp_ms),
                        group.state(),
                    )
                })
            });
            let (empty_since, has_live) = match live {
                Some((since, _)) => (since, true),
                None => (None, false),
            };
            let expired = expired_offsets(&stored, empty_since, has_live, now, retention_ms);
            if expired.is_empty() {
                continue;
            }
            let mut records = offset_tombstones(&group_id, &expired, now);
            let all_gone = expired.len() == stored.offsets.len();
            let memberless = live.is_none_or(|(since, _)| since.is_some());
            if all_gone && memberless && stored.metadata.is_some() {
                records.push(group_record(&group_id, None, now));
            }
            let (partition, _) = coordinator_for(shard, &group_id);
            match self.append(shard, partition, records, now).await {
                Ok(()) => {
                    info!(group = %group_id, offsets = expired.len(), "expired committed offsets");
                    if all_gone && memberless {
                        self.table.remove(&group_id);
                    }
                }
                Err((code, message)) => {
                    warn!(group = %group_id, code, %message, "could not expire offsets")
                }
            }
        }
    }
}

/// Per-shard task: expires offsets every `offsets.retention.check.interval.ms`.
pub async fn expiry_loop(shard: Rc<Shard>) {
    let interval_ms = shard
        .config
        .groups
        .offsets_retention_check_interval_ms
        .max(1) as u64;
    while shard.sleep_unless_shutdown(interval_ms).await {
        shard.groups.expire_offsets(&shard).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::group::records::OffsetValue;

    fn stored(commits: &[(&str, i32, i64, Option<i64>)]) -> StoredGroup {
        let mut group = StoredGroup::default();
        for (topic, partition, committed_at, expire) in commits {
            group.offsets.insert(
                (topic.to_string(), *partition),
                OffsetValue {
                    offset: 1,
                    leader_epoch: -1,
                    metadata: String::new(),
                    commit_timestamp_ms: *committed_at,
                    expire_timestamp_ms: *expire,
                },
            );
        }
        group
    }

    #[test]
    fn offsets_of_a_group_with_members_never_expire_by_age() {
        let group = stored(&[("t", 0, 0, None)]);
        assert!(expired_offsets(&group, None, true, 10_000_000, 1000).is_empty());
    }

    #[test]
    fn offsets_of_an_empty_group_expire_retention_after_it_became_empty() {
        let group = stored(&[("t", 0, 100, None), ("t", 1, 5_000, None)]);
        assert!(expired_offsets(&group, Some(2_000), true, 2_999, 1000).is_empty());
        assert_eq!(
            expired_offsets(&group, Some(2_000), true, 3_000, 1000),
            vec![("t".to_string(), 0)]
        );
        assert_eq!(
            expired_offsets(&group, Some(2_000), true, 6_000, 1000).len(),
            2
        );
    }

    #[test]
    fn standalone_offsets_expire_by_commit_time_and_explicit_expiry_wins() {
        let group = stored(&[("t", 0, 100, None), ("t", 1, 100, Some(50_000))]);
        assert_eq!(
            expired_offsets(&group, None, false, 1_100, 1000),
            vec![("t".to_string(), 0)]
        );
        assert_eq!(expired_offsets(&group, None, false, 50_000, 1000).len(), 2);
        let with_members = stored(&[("t", 1, 100, Some(50_000))]);
        assert_eq!(
            expired_offsets(&with_members, None, true, 50_000, 1000).len(),
            1,
            "explicit expiry applies even with members"
        );
    }
}
