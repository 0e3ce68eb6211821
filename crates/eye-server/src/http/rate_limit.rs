//! Per-application rate limits: a token bucket per application, refilled at
//! `rate_limit_events_per_second` up to `rate_limit_burst` events. A request takes as
//! many tokens as it holds events, all or none, so a batch is never half accepted.
//! Buckets live in the process: with N API processes the fleet's limit is N times it.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    refilled: Instant,
}

#[derive(Debug)]
pub struct RateLimiter {
    per_second: f64,
    burst: f64,
    buckets: Mutex<HashMap<i64, Bucket>>,
}

impl RateLimiter {
    /// `None` when `per_second` is 0 (no limit). A `burst` of 0 is one second's worth
    /// or `max_batch`, whichever is more, so that a full batch can always pass.
    pub fn new(per_second: u64, burst: u64, max_batch: usize) -> Option<RateLimiter> {
        if per_second == 0 {
            return None;
        }
        let burst = if burst == 0 {
            per_second.max(max_batch as u64)
        } else {
            burst
        };
        Some(RateLimiter {
            per_second: per_second as f64,
            burst: burst as f64,
            buckets: Mutex::new(HashMap::new()),
        })
    }

    /// Takes `events` tokens from `app`'s bucket, or says how long until there are
    /// enough of them.
    pub fn take(&self, app: i64, events: usize, now: Instant) -> Result<(), Duration> {
        let events = events as f64;
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        let bucket = buckets.entry(app).or_insert(Bucket {
            tokens: self.burst,
            refilled: now,
        });
        let elapsed = now.saturating_duration_since(bucket.refilled).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * self.per_second).min(self.burst);
        bucket.refilled = now;
        if bucket.tokens >= events {
            bucket.tokens -= events;
            return Ok(());
        }
        // More than the bucket can ever hold waits as long as a full refill.
        let missing = events.min(self.burst) - bucket.tokens;
        Err(Duration::from_secs_f64(missing / self.per_second))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_rate_means_no_limiter() {
        assert!(RateLimiter::new(0, 10, 100).is_none());
    }

    #[test]
    fn a_burst_passes_then_the_rate_holds() {
        let limiter = RateLimiter::new(10, 20, 5).unwrap();
        let app = 7;
        let start = Instant::now();
        assert_eq!(limiter.take(app, 20, start), Ok(()));
        let wait = limiter.take(app, 5, start).unwrap_err();
        assert_eq!(wait, Duration::from_millis(500));
        // Half a second later five tokens are back, and no more.
        let later = start + Duration::from_millis(500);
        assert_eq!(limiter.take(app, 5, later), Ok(()));
        assert!(limiter.take(app, 1, later).is_err());
    }

    #[test]
    fn applications_have_their_own_buckets() {
        let limiter = RateLimiter::new(1, 1, 1).unwrap();
        let now = Instant::now();
        assert_eq!(limiter.take(1, 1, now), Ok(()));
        assert_eq!(limiter.take(2, 1, now), Ok(()));
        assert!(limiter.take(1, 1, now).is_err());
    }

    #[test]
    fn the_default_burst_fits_a_full_batch() {
        let limiter = RateLimiter::new(10, 0, 1_000).unwrap();
        assert_eq!(limiter.take(7, 1_000, Instant::now()), Ok(()));
    }
}
