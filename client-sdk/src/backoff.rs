//! Reconnect delays, sans-IO: exponential backoff with jitter, capped, and reset once a
//! connection has stayed up for a while.
//!
//! The delay before attempt `n` (0-based, counted since the last reset) is drawn uniformly
//! from `[d/2, d]` where `d = min(max, initial * 2^n)` ("equal jitter"): clients dropped
//! together do not come back together, and the delay never falls below half the nominal one.
//!
//! ```
//! use std::time::{Duration, Instant};
//! use tickwire_sdk::backoff::{Backoff, BackoffConfig};
//!
//! let mut b = Backoff::with_seed(BackoffConfig::default(), 42);
//! let first = b.next_delay();
//! assert!(first <= BackoffConfig::default().initial);
//! let t0 = Instant::now();
//! b.connected(t0);
//! b.disconnected(t0 + Duration::from_secs(60)); // up long enough: start over
//! assert_eq!(b.failures(), 0);
//! ```

use std::time::{Duration, Instant};

/// How reconnect delays grow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BackoffConfig {
    /// Nominal delay before the first attempt.
    pub initial: Duration,
    /// Cap on the nominal delay.
    pub max: Duration,
    /// A connection that stayed up this long resets the delays to `initial`.
    pub reset_after: Duration,
}

impl Default for BackoffConfig {
    /// 100 ms, doubling up to 10 s; reset after 10 s connected.
    fn default() -> Self {
        BackoffConfig {
            initial: Duration::from_millis(100),
            max: Duration::from_secs(10),
            reset_after: Duration::from_secs(10),
        }
    }
}

/// The state of the reconnect delays of one client.
#[derive(Debug, Clone)]
pub struct Backoff {
    config: BackoffConfig,
    failures: u32,
    connected_at: Option<Instant>,
    rng: u64,
}

impl Backoff {
    /// A backoff with a random jitter seed (from std's per-process random hash keys).
    pub fn new(config: BackoffConfig) -> Backoff {
        use std::hash::BuildHasher;
        let seed = std::collections::hash_map::RandomState::new().hash_one(Instant::now());
        Backoff::with_seed(config, seed)
    }

    /// A backoff with a fixed jitter seed (reproducible delays, for tests).
    pub fn with_seed(config: BackoffConfig, seed: u64) -> Backoff {
        Backoff {
            config,
            failures: 0,
            connected_at: None,
            // xorshift must not start at 0.
            rng: seed | 1,
        }
    }

    /// The configuration.
    pub fn config(&self) -> &BackoffConfig {
        &self.config
    }

    /// The nominal (unjittered) delay before attempt `n` since the last reset.
    pub fn nominal(&self, n: u32) -> Duration {
        let factor = 1u32.checked_shl(n.min(31)).unwrap_or(u32::MAX);
        self.config
            .initial
            .checked_mul(factor)
            .unwrap_or(self.config.max)
            .min(self.config.max)
    }

    /// The delay to wait before the next attempt; counts the attempt.
    pub fn next_delay(&mut self) -> Duration {
        let nominal = self.nominal(self.failures);
        self.failures = self.failures.saturating_add(1);
        let half = nominal / 2;
        let span = (nominal - half).as_nanos() as u64;
        let jitter = if span == 0 {
            0
        } else {
            self.next_random() % (span + 1)
        };
        half + Duration::from_nanos(jitter)
    }

    /// Attempts counted since the last reset.
    pub fn failures(&self) -> u32 {
        self.failures
    }

    /// A connection was established at `now`.
    pub fn connected(&mut self, now: Instant) {
        self.connected_at = Some(now);
    }

    /// The connection was lost at `now`: if it had stayed up for `reset_after`, the delays
    /// start over from `initial`.
    pub fn disconnected(&mut self, now: Instant) {
        if let Some(at) = self.connected_at.take()
            && now.saturating_duration_since(at) >= self.config.reset_after
        {
            self.failures = 0;
        }
    }

    /// Starts the delays over from `initial`.
    pub fn reset(&mut self) {
        self.failures = 0;
    }

    fn next_random(&mut self) -> u64 {
        // xorshift64*: plenty for spreading reconnects.
        let mut x = self.rng;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.rng = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> BackoffConfig {
        BackoffConfig {
            initial: Duration::from_millis(100),
            max: Duration::from_secs(2),
            reset_after: Duration::from_secs(5),
        }
    }

    #[test]
    fn delays_double_within_the_jitter_band_up_to_the_cap() {
        let mut b = Backoff::with_seed(config(), 7);
        let nominal = [100, 200, 400, 800, 1600, 2000, 2000, 2000];
        for (n, ms) in nominal.into_iter().enumerate() {
            let nominal = Duration::from_millis(ms);
            assert_eq!(b.nominal(n as u32), nominal);
            let d = b.next_delay();
            assert!(
                d >= nominal / 2 && d <= nominal,
                "attempt {n}: {d:?} outside [{:?}, {nominal:?}]",
                nominal / 2
            );
        }
        assert_eq!(b.failures(), 8);
        // Far past the cap, nothing overflows.
        assert_eq!(b.nominal(40), Duration::from_secs(2));
        assert_eq!(b.nominal(u32::MAX), Duration::from_secs(2));
        let mut far = Backoff::with_seed(config(), 1);
        for _ in 0..100 {
            assert!(far.next_delay() <= Duration::from_secs(2));
        }
    }

    #[test]
    fn jitter_spreads_clients_and_is_reproducible() {
        let delays = |seed| {
            let mut b = Backoff::with_seed(config(), seed);
            (0..6).map(|_| b.next_delay()).collect::<Vec<_>>()
        };
        assert_eq!(delays(3), delays(3));
        assert_ne!(delays(3), delays(4));
        // Many draws of the same attempt cover the band, not one point.
        let mut seen = std::collections::BTreeSet::new();
        for seed in 0..200 {
            let d = Backoff::with_seed(config(), seed).next_delay();
            seen.insert(d.as_millis() / 10);
        }
        assert!(seen.len() >= 4, "jitter too narrow: {seen:?}");
    }

    #[test]
    fn a_stable_connection_resets_the_delays_a_flapping_one_does_not() {
        let mut b = Backoff::with_seed(config(), 9);
        for _ in 0..5 {
            b.next_delay();
        }
        let t0 = Instant::now();
        // Up for 1 s: flapping, keep backing off.
        b.connected(t0);
        b.disconnected(t0 + Duration::from_secs(1));
        assert_eq!(b.failures(), 5);
        assert!(b.next_delay() >= Duration::from_millis(1000));
        // Up for 5 s: stable, start over.
        b.connected(t0);
        b.disconnected(t0 + Duration::from_secs(5));
        assert_eq!(b.failures(), 0);
        assert!(b.next_delay() <= Duration::from_millis(100));
        // A disconnect without a connect changes nothing.
        b.disconnected(t0 + Duration::from_secs(60));
        assert_eq!(b.failures(), 1);
        b.reset();
        assert_eq!(b.failures(), 0);
    }

    #[test]
    fn zero_initial_delay_means_retry_at_once() {
        let mut b = Backoff::with_seed(
            BackoffConfig {
                initial: Duration::ZERO,
                ..config()
            },
            1,
        );
        assert_eq!(b.next_delay(), Duration::ZERO);
        assert_eq!(b.next_delay(), Duration::ZERO);
    }
}
