//! What to read from a recording: a time range and a set of instruments.

use std::collections::HashSet;
use std::ops::Range;

/// A half-open time range `[from, to)` in ns since the Unix epoch; either end may be open.
/// Frames are filed under `ts_publish` when set, else `ts_recv` (see
/// [`frame_time`](super::format::frame_time)); raw messages under `ts_recv`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct TimeRange {
    /// First timestamp included; `None`: from the start.
    pub from: Option<u64>,
    /// First timestamp excluded; `None`: to the end.
    pub to: Option<u64>,
}

impl TimeRange {
    /// Every timestamp.
    pub const ALL: TimeRange = TimeRange {
        from: None,
        to: None,
    };

    /// `[from, to)`.
    pub const fn new(from: u64, to: u64) -> TimeRange {
        TimeRange {
            from: Some(from),
            to: Some(to),
        }
    }

    /// True when `ts` is in the range.
    #[inline]
    pub fn contains(&self, ts: u64) -> bool {
        self.from.is_none_or(|f| ts >= f) && self.to.is_none_or(|t| ts < t)
    }

    /// True when some timestamp of `[first, last]` (both included) is in the range.
    #[inline]
    pub fn overlaps(&self, first: u64, last: u64) -> bool {
        self.from.is_none_or(|f| last >= f) && self.to.is_none_or(|t| first < t)
    }
}

impl From<Range<u64>> for TimeRange {
    fn from(r: Range<u64>) -> TimeRange {
        TimeRange::new(r.start, r.end)
    }
}

/// Which frames [`Recording::frames`](super::Recording::frames) returns: those in a time range
/// and, if a set is given, of those instruments. The default returns everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    /// The time range.
    pub time: TimeRange,
    /// Instrument ids to keep; `None`: all.
    pub instruments: Option<HashSet<u32>>,
}

impl Filter {
    /// Every frame.
    pub fn all() -> Filter {
        Filter::default()
    }

    /// Only frames in `range`.
    pub fn time(mut self, range: impl Into<TimeRange>) -> Filter {
        self.time = range.into();
        self
    }

    /// Only frames filed at or after `ts`.
    pub fn from(mut self, ts: u64) -> Filter {
        self.time.from = Some(ts);
        self
    }

    /// Only frames filed before `ts`.
    pub fn to(mut self, ts: u64) -> Filter {
        self.time.to = Some(ts);
        self
    }

    /// Only frames of these instrument ids (see
    /// [`Recording::resolve`](super::Recording::resolve) for `venue:SYMBOL` names).
    pub fn instruments(mut self, ids: impl IntoIterator<Item = u32>) -> Filter {
        self.instruments = Some(ids.into_iter().collect());
        self
    }

    /// True when a frame filed under `ts` for `instrument` passes.
    #[inline]
    pub fn matches(&self, ts: u64, instrument: u32) -> bool {
        self.time.contains(ts)
            && self
                .instruments
                .as_ref()
                .is_none_or(|set| set.contains(&instrument))
    }

    /// False when no frame of a segment whose frames carry `ids` can pass.
    pub fn may_match_any(&self, ids: &[u32]) -> bool {
        self.instruments
            .as_ref()
            .is_none_or(|set| ids.iter().any(|id| set.contains(id)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_are_half_open() {
        let r = TimeRange::new(10, 20);
        assert!(!r.contains(9) && r.contains(10) && r.contains(19) && !r.contains(20));
        assert!(r.overlaps(0, 10) && r.overlaps(19, 30) && r.overlaps(12, 13));
        assert!(!r.overlaps(0, 9) && !r.overlaps(20, 30));
        assert!(TimeRange::ALL.contains(u64::MAX) && TimeRange::ALL.overlaps(0, 0));
        let f = Filter::all().from(5).instruments([1, 2]);
        assert!(f.matches(5, 1) && !f.matches(4, 1) && !f.matches(5, 3));
        assert!(f.may_match_any(&[3, 2]) && !f.may_match_any(&[3]));
        assert!(Filter::all().may_match_any(&[]));
    }
}
