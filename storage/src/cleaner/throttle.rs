//! The cleaner's I/O budget (`log.cleaner.io.max.bytes.per.second`), Kafka's `Throttler`
//! as a token bucket: every byte read or written is counted; once the count runs ahead
//! of the allowed rate, the cleaner sleeps on a glommio timer until it no longer does.
//! Each call also yields to the shard's other tasks when the scheduler asks, so
//! produce and fetch on the shard keep their latency while a large log is cleaned.

use std::time::{Duration, Instant};

/// How much unspent budget may pile up while the cleaner is idle between chunks: one
/// second's worth, so a burst after a pause stays short.
const BURST_SECONDS: f64 = 1.0;

pub struct IoThrottle {
    bytes_per_second: f64,
    /// Bytes that may still pass without sleeping (negative: owed).
    tokens: f64,
    refilled_at: Instant,
}

impl IoThrottle {
    /// A throttle at `bytes_per_second`; non-finite or non-positive means unlimited.
    pub fn new(bytes_per_second: f64) -> IoThrottle {
        IoThrottle {
            bytes_per_second,
            tokens: 0.0,
            refilled_at: Instant::now(),
        }
    }

    fn limited(&self) -> bool {
        self.bytes_per_second.is_finite() && self.bytes_per_second > 0.0
    }

    /// How long `bytes` more must wait at `now` (zero when within budget).
    fn take(&mut self, bytes: u64, now: Instant) -> Duration {
        if !self.limited() {
            return Duration::ZERO;
        }
        let elapsed = now
            .saturating_duration_since(self.refilled_at)
            .as_secs_f64();
        self.refilled_at = now;
        self.tokens = (self.tokens + elapsed * self.bytes_per_second)
            .min(self.bytes_per_second * BURST_SECONDS);
        self.tokens -= bytes as f64;
        if self.tokens >= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(-self.tokens / self.bytes_per_second)
        }
    }

    /// Accounts for `bytes` of cleaner I/O: sleeps while over budget, then yields if
    /// other tasks wait.
    pub async fn consume(&mut self, bytes: u64) {
        let wait = self.take(bytes, Instant::now());
        if !wait.is_zero() {
            glommio::timer::sleep(wait).await;
        }
        glommio::yield_if_needed().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_beyond_the_rate_wait_in_proportion() {
        let mut throttle = IoThrottle::new(1000.0);
        let start = throttle.refilled_at;
        assert_eq!(throttle.take(500, start), Duration::from_millis(500));
        // Half a second later the debt is paid; another 1000 bytes owe one second.
        let later = start + Duration::from_millis(500);
        assert_eq!(throttle.take(1000, later), Duration::from_secs(1));
        // A long pause refills at most one second's worth.
        let much_later = later + Duration::from_secs(60);
        assert_eq!(throttle.take(1000, much_later), Duration::ZERO);
        assert_eq!(throttle.take(500, much_later), Duration::from_millis(500));
    }

    #[test]
    fn the_default_rate_is_unlimited() {
        let mut throttle = IoThrottle::new(f64::MAX * 2.0);
        assert_eq!(throttle.take(u64::MAX, Instant::now()), Duration::ZERO);
        let mut throttle = IoThrottle::new(f64::MAX);
        assert_eq!(throttle.take(1 << 40, Instant::now()), Duration::ZERO);
    }
}
