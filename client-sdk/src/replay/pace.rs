//! Pacing: when each recorded frame is due, at a speed relative to recorded time.

use std::time::{Duration, Instant};

/// How fast a [`Replay`](super::Replay) delivers frames.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub enum Speed {
    /// As fast as the consumer reads: never waits (the default; for backtests).
    #[default]
    Max,
    /// A multiple of recorded time: frame `n` is due `(t_n - t_0) / factor` after the first
    /// frame was delivered, where `t` is the frame's recorded time
    /// ([`frame_time`](crate::recording::frame_time): `ts_publish`, else `ts_recv`). `1.0`
    /// replays in recorded time, `10.0` ten times faster, `0.5` at half speed. Must be
    /// greater than 0; `f64::INFINITY` is [`Speed::Max`].
    Factor(f64),
}

/// Turns recorded times into wall-clock deadlines. Frames never wait for a frame before
/// them: a consumer that falls behind gets the late frames at once (nothing is skipped), and
/// a frame filed earlier than the first one (timestamps may jitter) is due at once.
#[derive(Debug, Clone)]
pub(crate) struct Pacer {
    /// 1 / factor, `None` at full speed.
    inverse: Option<f64>,
    /// Wall time and recorded time of the first frame delivered.
    anchor: Option<(Instant, u64)>,
}

impl Pacer {
    /// A pacer for a valid `speed` (checked by the builder).
    pub(crate) fn new(speed: Speed) -> Pacer {
        let inverse = match speed {
            Speed::Factor(f) if f.is_finite() => Some(1.0 / f),
            _ => None,
        };
        Pacer {
            inverse,
            anchor: None,
        }
    }

    /// True unless at full speed.
    #[inline]
    pub(crate) fn is_paced(&self) -> bool {
        self.inverse.is_some()
    }

    /// Starts again: the next frame asked about becomes the anchor.
    pub(crate) fn reset(&mut self) {
        self.anchor = None;
    }

    /// When a frame recorded at `ts` is due; the first frame asked about is due `now`.
    pub(crate) fn due(&mut self, ts: u64, now: Instant) -> Instant {
        let Some(inverse) = self.inverse else {
            return now;
        };
        let (t0, ts0) = *self.anchor.get_or_insert((now, ts));
        let wait = ts.saturating_sub(ts0) as f64 * inverse;
        // `as u64` saturates; a deadline past what `Instant` holds is "never" for our purposes.
        t0.checked_add(Duration::from_nanos(wait as u64))
            .unwrap_or(t0 + Duration::from_secs(86_400 * 365 * 100))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deadlines_follow_recorded_time_over_the_factor() {
        let now = Instant::now();
        let mut p = Pacer::new(Speed::Factor(10.0));
        assert!(p.is_paced());
        assert_eq!(p.due(5_000_000_000, now), now);
        assert_eq!(
            p.due(6_000_000_000, now),
            now + Duration::from_millis(100),
            "1 s recorded at 10x"
        );
        assert_eq!(
            p.due(4_000_000_000, now),
            now,
            "earlier than the anchor: at once"
        );
        p.reset();
        assert_eq!(
            p.due(9, now + Duration::from_secs(1)),
            now + Duration::from_secs(1)
        );
        let mut half = Pacer::new(Speed::Factor(0.5));
        half.due(0, now);
        assert_eq!(half.due(1_000, now), now + Duration::from_nanos(2_000));
        let mut max = Pacer::new(Speed::Max);
        assert!(!max.is_paced());
        assert_eq!(max.due(u64::MAX, now), now);
        assert!(!Pacer::new(Speed::Factor(f64::INFINITY)).is_paced());
        let mut slow = Pacer::new(Speed::Factor(1e-12));
        slow.due(0, now);
        assert!(slow.due(u64::MAX, now) > now + Duration::from_secs(86_400));
    }
}
