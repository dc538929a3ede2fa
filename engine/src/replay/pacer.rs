//! Replay pacing (sans-IO): when each recorded frame is due, given the replay speed.

use std::fmt;
use std::str::FromStr;

/// How fast a recording is played.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Speed {
    /// As fast as the consumers take it (no pacing).
    Max,
    /// Recorded time divided by this factor: 1.0 is the recorded pace, 10.0 ten times
    /// faster, 0.5 half as fast. Finite and > 0.
    Factor(f64),
}

impl FromStr for Speed {
    type Err = String;

    /// `max`, or a positive factor such as `1`, `10`, `0.5` (an `x` suffix is allowed: `10x`).
    fn from_str(s: &str) -> Result<Speed, String> {
        let t = s.trim();
        if t.eq_ignore_ascii_case("max") {
            return Ok(Speed::Max);
        }
        let num = t.strip_suffix(['x', 'X']).unwrap_or(t);
        match num.parse::<f64>() {
            Ok(v) if v.is_finite() && v > 0.0 => Ok(Speed::Factor(v)),
            _ => Err(format!(
                "speed {s:?}: give `max` or a positive factor (1 = recorded pace, 10, 0.5)"
            )),
        }
    }
}

impl fmt::Display for Speed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Speed::Max => f.write_str("max"),
            Speed::Factor(x) => write!(f, "{x}x"),
        }
    }
}

/// Maps recorded times to the times they are due on the replaying clock.
///
/// The first frame sets the origin: it is due at once; a frame recorded `d` ns after it is
/// due `d / factor` ns after the origin. Frames recorded before the origin (timestamps that
/// went back) are due at once. Times are ns on any monotonic clock the caller chooses.
#[derive(Debug, Clone)]
pub struct Pacer {
    speed: Speed,
    /// (recorded time, clock time) of the first frame.
    origin: Option<(u64, u64)>,
}

impl Pacer {
    /// A pacer at `speed`.
    pub fn new(speed: Speed) -> Pacer {
        Pacer {
            speed,
            origin: None,
        }
    }

    /// The speed.
    pub fn speed(&self) -> Speed {
        self.speed
    }

    /// When a frame recorded at `recorded` is due, on the clock that reads `now`; `None`
    /// means at once (full speed).
    pub fn due(&mut self, recorded: u64, now: u64) -> Option<u64> {
        let Speed::Factor(factor) = self.speed else {
            return None;
        };
        let (t0, c0) = *self.origin.get_or_insert((recorded, now));
        let ahead = recorded.saturating_sub(t0) as f64 / factor;
        Some(c0.saturating_add(ahead as u64))
    }

    /// How long to wait, from `now`, before sending a frame recorded at `recorded`
    /// (0 when it is due or overdue).
    pub fn wait(&mut self, recorded: u64, now: u64) -> u64 {
        self.due(recorded, now).map_or(0, |d| d.saturating_sub(now))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn speeds_parse_and_bad_ones_say_what_to_give() {
        assert_eq!("max".parse::<Speed>(), Ok(Speed::Max));
        assert_eq!("MAX".parse::<Speed>(), Ok(Speed::Max));
        assert_eq!("1".parse::<Speed>(), Ok(Speed::Factor(1.0)));
        assert_eq!("10x".parse::<Speed>(), Ok(Speed::Factor(10.0)));
        assert_eq!("0.5".parse::<Speed>(), Ok(Speed::Factor(0.5)));
        for bad in ["0", "-1", "fast", "", "inf", "NaN", "1e999"] {
            let e = bad.parse::<Speed>().unwrap_err();
            assert!(e.contains("max"), "{bad}: {e}");
        }
        assert_eq!(Speed::Factor(10.0).to_string(), "10x");
    }

    #[test]
    fn max_speed_never_waits() {
        let mut p = Pacer::new(Speed::Max);
        assert_eq!(p.due(1_000, 5), None);
        assert_eq!(p.wait(u64::MAX, 5), 0);
    }

    #[test]
    fn frames_are_due_at_recorded_distance_divided_by_the_factor() {
        let mut p = Pacer::new(Speed::Factor(10.0));
        // Origin: recorded 1_000_000 ns at clock 50.
        assert_eq!(p.due(1_000_000, 50), Some(50));
        assert_eq!(p.due(2_000_000, 60), Some(100_050));
        assert_eq!(p.wait(2_000_000, 60), 99_990);
        assert_eq!(p.wait(2_000_000, 200_000), 0, "overdue frames go at once");
        // Time going back: due at once, origin unchanged.
        assert_eq!(p.due(10, 70), Some(50));
        let mut half = Pacer::new(Speed::Factor(0.5));
        half.due(0, 0);
        assert_eq!(half.due(1_000, 0), Some(2_000));
    }
}
