//! Wall-clock time in ns since the Unix epoch (CLOCK_REALTIME), comparable across processes
//! on one host.

use std::time::{SystemTime, UNIX_EPOCH};

/// Now, in ns since the Unix epoch.
#[inline]
pub fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

/// Converts a venue timestamp to ns, whatever its unit: values are told apart by magnitude
/// (seconds < 1e11 <= ms < 1e14 <= us < 1e17 <= ns), which holds for any date from 1973 to 2286.
#[inline]
pub fn venue_time_to_ns(t: u64) -> u64 {
    if t == 0 {
        0
    } else if t < 100_000_000_000 {
        t.saturating_mul(1_000_000_000)
    } else if t < 100_000_000_000_000 {
        t.saturating_mul(1_000_000)
    } else if t < 100_000_000_000_000_000 {
        t.saturating_mul(1_000)
    } else {
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_are_detected() {
        let ns = 1_723_161_255_342_000_000;
        assert_eq!(venue_time_to_ns(1_723_161_255), 1_723_161_255_000_000_000);
        assert_eq!(venue_time_to_ns(1_723_161_255_342), ns);
        assert_eq!(venue_time_to_ns(1_723_161_255_342_000), ns);
        assert_eq!(venue_time_to_ns(ns), ns);
        assert_eq!(venue_time_to_ns(0), 0);
        assert!(now_ns() > ns);
    }
}
