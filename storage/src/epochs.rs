//! Leader epoch cache lookups (Kafka's `LeaderEpochFileCache`), without I/O.
//!
//! ```text
//!  entries  (epoch, start offset), increasing in both — `leader-epoch-checkpoint`
//!      e0@0      e3@120      e5@310             log end 400
//!      ├─────────┼───────────┼──────────────────┤
//!  end_offset_for_epoch(3) = (3, 310)   first offset not in epoch 3
//!  end_offset_for_epoch(4) = (3, 310)   no epoch 4 here: the largest below it ends there
//!  end_offset_for_epoch(5) = (5, 400)   the latest epoch ends at the log end
//!  end_offset_for_epoch(6) = (-1, -1)   newer than anything here
//! ```
//!
//! A follower asks the leader where its last fetched epoch ends (Fetch v12+ answers with
//! a diverging epoch, OffsetForLeaderEpoch v2–v4 answers directly) and truncates its
//! own log there, so a replica never keeps records a new leader does not have.

/// Kafka's undefined epoch (no leader epoch known).
pub const UNDEFINED_EPOCH: i32 = -1;
/// Kafka's undefined end offset.
pub const UNDEFINED_EPOCH_OFFSET: i64 = -1;

/// `(epoch, end offset)` for `requested`: the end offset is the first offset after the
/// records of the largest epoch ≤ `requested` (the next epoch's start, or the log end
/// for the latest epoch). As Kafka: a request below every entry answers
/// `(requested, first start offset)`; above every entry, or with no entries, it is
/// undefined.
pub fn end_offset_for_epoch(
    entries: &[(i32, i64)],
    requested: i32,
    log_end_offset: i64,
) -> (i32, i64) {
    let undefined = (UNDEFINED_EPOCH, UNDEFINED_EPOCH_OFFSET);
    let Some(&(latest, _)) = entries.last() else {
        return undefined;
    };
    if requested == UNDEFINED_EPOCH {
        return undefined;
    }
    if requested == latest {
        return (latest, log_end_offset);
    }
    // The first entry of a newer epoch ends the requested one.
    let higher = entries.partition_point(|&(epoch, _)| epoch <= requested);
    let Some(&(_, higher_start)) = entries.get(higher) else {
        return undefined;
    };
    match higher.checked_sub(1).map(|floor| entries[floor]) {
        Some((floor_epoch, _)) => (floor_epoch, higher_start),
        None => (requested, higher_start),
    }
}

/// Drops the entries that start at or after `offset` (a truncation of the log to
/// `offset`), as Kafka's `truncateFromEnd`.
pub fn truncate_from_end(entries: &mut Vec<(i32, i64)>, offset: i64) {
    entries.retain(|&(_, start)| start < offset);
}

/// Records that `epoch` starts at `start_offset` (Kafka's `assign`). The latest epoch
/// again changes nothing. An entry that contradicts it — an epoch at least as new, or a
/// start at or past `start_offset` — goes first (Kafka's
/// `maybeTruncateNonMonotonicEntries`): it can only be an epoch this broker assigned when
/// it last led, at an offset where the records it now copies belong to an older epoch.
pub fn assign(entries: &mut Vec<(i32, i64)>, epoch: i32, start_offset: i64) -> bool {
    let latest_again = entries
        .last()
        .is_some_and(|&(latest, start)| epoch == latest && start_offset >= start);
    if epoch < 0 || latest_again {
        return false;
    }
    entries.retain(|&(known, start)| known < epoch && start < start_offset);
    entries.push((epoch, start_offset));
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    const CACHE: [(i32, i64); 3] = [(0, 0), (3, 120), (5, 310)];

    #[test]
    fn an_epoch_ends_where_the_next_one_starts() {
        assert_eq!(end_offset_for_epoch(&CACHE, 0, 400), (0, 120));
        assert_eq!(end_offset_for_epoch(&CACHE, 3, 400), (3, 310));
    }

    #[test]
    fn the_latest_epoch_ends_at_the_log_end() {
        assert_eq!(end_offset_for_epoch(&CACHE, 5, 400), (5, 400));
    }

    #[test]
    fn a_missing_epoch_answers_the_largest_epoch_below_it() {
        assert_eq!(end_offset_for_epoch(&CACHE, 1, 400), (0, 120));
        assert_eq!(end_offset_for_epoch(&CACHE, 4, 400), (3, 310));
    }

    #[test]
    fn an_epoch_below_every_entry_ends_at_the_first_start() {
        let cache = [(2, 50), (4, 90)];
        assert_eq!(end_offset_for_epoch(&cache, 1, 100), (1, 50));
    }

    #[test]
    fn unknown_newer_or_undefined_epochs_are_undefined() {
        assert_eq!(end_offset_for_epoch(&CACHE, 6, 400), (-1, -1));
        assert_eq!(end_offset_for_epoch(&CACHE, -1, 400), (-1, -1));
        assert_eq!(end_offset_for_epoch(&[], 0, 400), (-1, -1));
    }

    #[test]
    fn truncation_drops_epochs_starting_at_or_after_the_offset() {
        let mut cache = CACHE.to_vec();
        truncate_from_end(&mut cache, 310);
        assert_eq!(cache, vec![(0, 0), (3, 120)]);
        truncate_from_end(&mut cache, 121);
        assert_eq!(cache, vec![(0, 0), (3, 120)]);
    }

    #[test]
    fn assign_adds_newer_epochs_and_keeps_the_latest_one() {
        let mut cache = CACHE.to_vec();
        assert!(!assign(&mut cache, 5, 400), "the latest epoch again");
        assert!(assign(&mut cache, 7, 400));
        assert_eq!(cache, vec![(0, 0), (3, 120), (5, 310), (7, 400)]);
    }

    #[test]
    fn assign_replaces_entries_that_contradict_it() {
        // This broker assigned epoch 8 at 219 when it led, wrote nothing, and now copies
        // epoch-7 records from 219 on: the epoch-8 entry was never true.
        let mut cache = vec![(6, 195), (8, 219)];
        assert!(assign(&mut cache, 7, 219));
        assert_eq!(cache, vec![(6, 195), (7, 219)]);
        let mut cache = CACHE.to_vec();
        assert!(assign(&mut cache, 4, 300));
        assert_eq!(cache, vec![(0, 0), (3, 120), (4, 300)]);
    }
}
