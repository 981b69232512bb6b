//! The follower's side of a partition: one fetch at a time from the leader, truncation
//! at a diverging epoch, the follower's high watermark (Kafka's fetcher thread rules).
//!
//! ```text
//!  poll_fetch ─► Fetch(leader epoch, fetch offset = LEO, last fetched epoch)
//!  answer: records ─► append them (their epochs enter the cache) ─► HW = max(HW, min(leader HW, LEO))
//!          diverging(epoch, end) ─► truncate_offset: the end of that epoch here and there ─► fetch again
//!          error ─► back off (replica.fetch.backoff.ms) (a stale epoch waits for the next registration)
//! ```

use weir_storage::epochs::{UNDEFINED_EPOCH, UNDEFINED_EPOCH_OFFSET, end_offset_for_epoch};

use super::NodeId;

/// Kafka's `replica.fetch.backoff.ms` default: the pause after a failed fetch.
pub const FETCH_BACKOFF_MS: u64 = 1000;

/// How long a fetch may stay unanswered, and the pause after a failed one.
#[derive(Clone, Copy, Debug)]
pub struct FetchTiming {
    pub timeout_ms: u64,
    pub backoff_ms: u64,
}

/// A fetch to send to the leader.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FetchFromLeader {
    pub request_id: u64,
    pub leader: NodeId,
    pub leader_epoch: i32,
    pub fetch_offset: i64,
    /// The follower's latest leader epoch (Kafka's `latestEpoch`); None without any.
    pub last_fetched_epoch: Option<i32>,
}

/// Follower state of one partition for one leader epoch.
#[derive(Debug)]
pub struct FollowerState {
    leader: NodeId,
    leader_epoch: i32,
    in_flight: Option<(u64, u64)>,
    next_request_id: u64,
    fetch_after_ms: u64,
    timing: FetchTiming,
}

impl FollowerState {
    pub fn new(leader: NodeId, leader_epoch: i32, timing: FetchTiming) -> Self {
        Self {
            leader,
            leader_epoch,
            in_flight: None,
            next_request_id: 1,
            fetch_after_ms: 0,
            timing,
        }
    }

    pub fn leader(&self) -> NodeId {
        self.leader
    }

    pub fn leader_epoch(&self) -> i32 {
        self.leader_epoch
    }

    /// The next fetch, when none is in flight (an unanswered one expires after the
    /// fetch timeout) and no back-off is running.
    pub fn poll_fetch(
        &mut self,
        log_end_offset: i64,
        epochs: &[(i32, i64)],
        now_ms: u64,
    ) -> Option<FetchFromLeader> {
        if let Some((_, sent_ms)) = self.in_flight {
            if now_ms < sent_ms + self.timing.timeout_ms {
                return None;
            }
            self.in_flight = None;
        }
        if now_ms < self.fetch_after_ms {
            return None;
        }
        let request_id = self.next_request_id;
        self.next_request_id += 1;
        self.in_flight = Some((request_id, now_ms));
        // Kafka's `log.latestEpoch`: the cache's latest entry, even one with no records
        // yet (assigned when this broker last led). A leader that never had that epoch
        // answers with a divergence, and the truncation removes the stale entry.
        let last = epochs.last().map_or(UNDEFINED_EPOCH, |&(epoch, _)| epoch);
        Some(FetchFromLeader {
            request_id,
            leader: self.leader,
            leader_epoch: self.leader_epoch,
            fetch_offset: log_end_offset,
            last_fetched_epoch: (last != UNDEFINED_EPOCH).then_some(last),
        })
    }

    /// Whether `request_id` is the fetch in flight; an answer to anything else (a late
    /// answer to an expired fetch) must be dropped. Accepting it ends the fetch.
    pub fn accept_answer(&mut self, request_id: u64) -> bool {
        if self.in_flight.is_some_and(|(id, _)| id == request_id) {
            self.in_flight = None;
            true
        } else {
            false
        }
    }

    /// The fetch failed (error answer): wait before the next.
    pub fn back_off(&mut self, now_ms: u64) {
        self.fetch_after_ms = now_ms + self.timing.backoff_ms;
    }
}

/// Where a follower truncates when the leader answers that its last fetched epoch ends
/// at `(leader_epoch, leader_end_offset)` (Kafka's `getOffsetTruncationState`). The
/// flag says whether truncation is complete; when not, the next fetch checks again.
pub fn truncation_offset(
    diverging: (i32, i64),
    epochs: &[(i32, i64)],
    log_end_offset: i64,
    high_watermark: i64,
) -> (i64, bool) {
    let (leader_epoch, leader_end_offset) = diverging;
    if leader_end_offset == UNDEFINED_EPOCH_OFFSET {
        return (high_watermark.min(log_end_offset), true);
    }
    if leader_epoch == UNDEFINED_EPOCH {
        return (leader_end_offset.min(log_end_offset), true);
    }
    let (epoch, end_offset) = end_offset_for_epoch(epochs, leader_epoch, log_end_offset);
    if epoch == UNDEFINED_EPOCH {
        return (leader_end_offset.min(log_end_offset), true);
    }
    // Both logs agree up to where the shorter of the two ends the epoch. When the
    // follower does not have the leader's epoch, the next fetch checks again.
    let offset = end_offset.min(leader_end_offset).min(log_end_offset);
    (offset, epoch == leader_epoch)
}

/// The follower's high watermark after a fetch answer: the leader's, bounded by what
/// the follower has, never moving back.
pub fn follower_high_watermark(
    current: i64,
    leader_high_watermark: i64,
    log_end_offset: i64,
) -> i64 {
    current.max(leader_high_watermark.min(log_end_offset))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_follower_sends_its_log_end_and_last_epoch_one_fetch_at_a_time() {
        let timing = FetchTiming {
            timeout_ms: 500,
            backoff_ms: 50,
        };
        let mut follower = FollowerState::new(2, 6, timing);
        let fetch = follower
            .poll_fetch(40, &[(3, 0), (5, 30)], 0)
            .expect("first fetch");
        assert_eq!(
            (
                fetch.fetch_offset,
                fetch.last_fetched_epoch,
                fetch.leader_epoch
            ),
            (40, Some(5), 6)
        );
        assert_eq!(follower.poll_fetch(40, &[], 100), None, "one in flight");
        assert!(!follower.accept_answer(fetch.request_id + 1));
        assert!(follower.accept_answer(fetch.request_id));
        let empty = follower.poll_fetch(0, &[], 100).expect("next fetch");
        assert_eq!(empty.last_fetched_epoch, None);
        assert!(follower.poll_fetch(0, &[], 599).is_none());
        let retry = follower
            .poll_fetch(0, &[], 600)
            .expect("an unanswered fetch expires");
        assert!(retry.request_id > empty.request_id);
    }

    #[test]
    fn truncation_stops_at_the_leaders_end_of_a_shared_epoch() {
        // Both have epoch 3; the leader's ends at 25, the follower wrote on to 40.
        assert_eq!(
            truncation_offset((3, 25), &[(1, 0), (3, 10)], 40, 20),
            (25, true)
        );
    }

    #[test]
    fn truncation_stops_where_the_followers_share_of_the_epoch_ends() {
        // The leader's epoch 2 runs to 152; the follower's ends at 150, where its epoch 3
        // (records the leader never had) starts. Truncating at 152 would keep them.
        assert_eq!(
            truncation_offset((2, 152), &[(0, 0), (2, 140), (3, 150)], 152, 149),
            (150, true)
        );
    }

    #[test]
    fn an_epoch_only_the_leader_knows_truncates_to_the_followers_own_end_first() {
        // Leader: epoch 2 ends at 30. Follower has epochs 1 and 4 (never had 2); its epoch 1
        // ends at 20, so it cuts there and asks again.
        assert_eq!(
            truncation_offset((2, 30), &[(1, 0), (4, 20)], 35, 10),
            (20, false)
        );
    }

    #[test]
    fn undefined_answers_fall_back_to_the_high_watermark_or_the_leaders_end() {
        assert_eq!(truncation_offset((-1, -1), &[(1, 0)], 35, 12), (12, true));
        assert_eq!(truncation_offset((-1, 30), &[(1, 0)], 35, 12), (30, true));
    }

    #[test]
    fn the_follower_high_watermark_is_bounded_by_its_log_and_never_goes_back() {
        assert_eq!(follower_high_watermark(5, 20, 12), 12);
        assert_eq!(follower_high_watermark(15, 10, 30), 15);
    }
}
