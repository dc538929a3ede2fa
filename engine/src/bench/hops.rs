//! Per-hop latency of delivered frames, from the timestamps every frame carries (sans-IO).
//!
//! A frame's `ts_exchange` is, from the simulator, the message's *intended* send time (its
//! open-loop schedule), so a stall anywhere counts as latency for every message behind it:
//! no coordinated omission. All timestamps are CLOCK_REALTIME ns on one host.

use hdrhistogram::Histogram;
use serde::Serialize;
use tickwire_sdk::wire::{ArchivedBody, ArchivedFrame, flags};

/// The hops, in path order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hop {
    /// Intended send time at the venue -> socket read in the feed (`ts_recv - ts_exchange`):
    /// the simulator's pacing, the wire, and the feed's read.
    ExchangeToRecv,
    /// Socket read -> published into the broadcast ring (`ts_publish - ts_recv`): normalize,
    /// ingest ring, sequencer, encode.
    RecvToPublish,
    /// Published -> read by the client (`client - ts_publish`): fan-out, socket, client decode.
    PublishToClient,
    /// Intended send time -> read by the client: the sum of the three.
    EndToEnd,
}

impl Hop {
    /// Every hop, in path order.
    pub const ALL: [Hop; 4] = [
        Hop::ExchangeToRecv,
        Hop::RecvToPublish,
        Hop::PublishToClient,
        Hop::EndToEnd,
    ];

    /// Short name used in reports and file names.
    pub const fn name(self) -> &'static str {
        match self {
            Hop::ExchangeToRecv => "exchange_to_recv",
            Hop::RecvToPublish => "recv_to_publish",
            Hop::PublishToClient => "publish_to_client",
            Hop::EndToEnd => "end_to_end",
        }
    }

    /// Column heading for terminal tables.
    pub const fn label(self) -> &'static str {
        match self {
            Hop::ExchangeToRecv => "exchange->recv",
            Hop::RecvToPublish => "recv->publish",
            Hop::PublishToClient => "publish->client",
            Hop::EndToEnd => "end to end",
        }
    }
}

/// A latency histogram in ns: 1 ns to 100 s at 2 significant digits (1% resolution, ~28 KiB).
pub fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 100_000_000_000, 2).expect("valid histogram bounds")
}

/// What a client does with one frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seen {
    /// A live data frame inside the measurement window: recorded.
    Measured,
    /// A conflated frame (stands for several updates): counted, not timed.
    Conflated,
    /// Outside the window, a snapshot, a status or a definition: ignored.
    Ignored,
}

/// One histogram per hop, plus the window of frames that count.
#[derive(Debug, Clone)]
pub struct Hops {
    hists: [Histogram<u64>; 4],
    /// Frames whose venue time is at or after this (ns) count.
    pub from_ns: u64,
    /// Frames whose venue time is before this (ns) count.
    pub to_ns: u64,
}

impl Default for Hops {
    fn default() -> Self {
        Hops::new(0, u64::MAX)
    }
}

impl Hops {
    /// Empty histograms counting frames with a venue time in `[from_ns, to_ns)`.
    pub fn new(from_ns: u64, to_ns: u64) -> Hops {
        Hops {
            hists: [histogram(), histogram(), histogram(), histogram()],
            from_ns,
            to_ns,
        }
    }

    /// Records one frame read by a client at `now_ns`. The venue time is `ts_exchange`; frames
    /// without one (Binance spot book tickers) are timed from `ts_recv` on, and have no
    /// exchange hop and no end-to-end figure.
    pub fn record(&mut self, f: &ArchivedFrame, now_ns: u64) -> Seen {
        if !matches!(
            f.body,
            ArchivedBody::Trade(_) | ArchivedBody::Quote(_) | ArchivedBody::BookDelta(_)
        ) || f.flags & flags::SNAPSHOT != 0
        {
            return Seen::Ignored;
        }
        let (ex, recv, publ) = (
            f.ts_exchange.to_native(),
            f.ts_recv.to_native(),
            f.ts_publish.to_native(),
        );
        let key = if ex != 0 { ex } else { recv };
        if key < self.from_ns || key >= self.to_ns {
            return Seen::Ignored;
        }
        if f.flags & flags::CONFLATED != 0 {
            return Seen::Conflated;
        }
        self.record_times(ex, recv, publ, now_ns);
        Seen::Measured
    }

    /// Records one delivery from its four times (ns; `ex` 0 = unknown venue time).
    pub fn record_times(&mut self, ex: u64, recv: u64, publ: u64, now_ns: u64) {
        let [a, b, c, d] = &mut self.hists;
        if ex != 0 {
            a.saturating_record(recv.saturating_sub(ex).max(1));
            d.saturating_record(now_ns.saturating_sub(ex).max(1));
        }
        b.saturating_record(publ.saturating_sub(recv).max(1));
        c.saturating_record(now_ns.saturating_sub(publ).max(1));
    }

    /// One hop's histogram.
    pub fn get(&self, hop: Hop) -> &Histogram<u64> {
        &self.hists[hop as usize]
    }

    /// Adds another client's histograms into these.
    pub fn merge(&mut self, other: &Hops) {
        for (a, b) in self.hists.iter_mut().zip(&other.hists) {
            // Same bounds on both sides: cannot fail.
            let _ = a.add(b);
        }
    }

    /// Deliveries timed (publish -> client count).
    pub fn deliveries(&self) -> u64 {
        self.get(Hop::PublishToClient).len()
    }
}

/// Percentiles of one histogram, in microseconds.
#[derive(Debug, Clone, Copy, Serialize, PartialEq)]
pub struct Percentiles {
    /// Values recorded.
    pub count: u64,
    /// Median, us.
    pub p50: f64,
    /// 90th percentile, us.
    pub p90: f64,
    /// 99th, us.
    pub p99: f64,
    /// 99.9th, us.
    pub p99_9: f64,
    /// 99.99th, us.
    pub p99_99: f64,
    /// Largest value, us.
    pub max: f64,
}

impl Percentiles {
    /// The percentiles of `h` (ns values) in us; all 0 for an empty histogram.
    pub fn of(h: &Histogram<u64>) -> Percentiles {
        let us = |q: f64| h.value_at_quantile(q) as f64 / 1_000.0;
        Percentiles {
            count: h.len(),
            p50: us(0.5),
            p90: us(0.9),
            p99: us(0.99),
            p99_9: us(0.999),
            p99_99: us(0.9999),
            max: h.max() as f64 / 1_000.0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tickwire_sdk::wire::{Body, Frame, Side, Trade, TradeId, Venue, encode};

    fn trade(ex: u64, recv: u64, publ: u64, flags: u8) -> Vec<u8> {
        let mut f = Frame::new(
            Venue::Binance,
            1,
            ex,
            recv,
            Body::Trade(Trade {
                price: 1,
                qty: 1,
                side: Side::Buy,
                trade_id: TradeId::Num(1),
            }),
        );
        f.ts_publish = publ;
        f.flags = flags;
        encode(&f)
    }

    #[test]
    fn hops_add_up_and_the_window_filters_on_venue_time() {
        let mut h = Hops::new(1_000, 10_000);
        let b = trade(1_000, 1_200, 1_500, 0);
        let f = tickwire_sdk::wire::access(&b).unwrap();
        assert_eq!(h.record(f, 2_000), Seen::Measured);
        assert!(
            h.get(Hop::ExchangeToRecv)
                .equivalent(h.get(Hop::ExchangeToRecv).max(), 200)
        );
        assert!(
            h.get(Hop::RecvToPublish)
                .equivalent(h.get(Hop::RecvToPublish).max(), 300)
        );
        assert!(
            h.get(Hop::PublishToClient)
                .equivalent(h.get(Hop::PublishToClient).max(), 500)
        );
        assert!(
            h.get(Hop::EndToEnd)
                .equivalent(h.get(Hop::EndToEnd).max(), 1_000)
        );
        for ex in [999, 10_000] {
            let b = trade(ex, ex + 1, ex + 2, 0);
            assert_eq!(
                h.record(tickwire_sdk::wire::access(&b).unwrap(), ex + 3),
                Seen::Ignored
            );
        }
        let c = trade(5_000, 5_001, 5_002, flags::CONFLATED);
        assert_eq!(
            h.record(tickwire_sdk::wire::access(&c).unwrap(), 5_003),
            Seen::Conflated
        );
        let s = trade(5_000, 5_001, 5_002, flags::SNAPSHOT);
        assert_eq!(
            h.record(tickwire_sdk::wire::access(&s).unwrap(), 5_003),
            Seen::Ignored
        );
        assert_eq!(h.deliveries(), 1);
    }

    #[test]
    fn a_frame_without_venue_time_has_no_exchange_hop() {
        let mut h = Hops::default();
        h.record_times(0, 100, 150, 400);
        assert_eq!(h.get(Hop::ExchangeToRecv).len(), 0);
        assert_eq!(h.get(Hop::EndToEnd).len(), 0);
        assert_eq!(h.get(Hop::PublishToClient).max(), 250);
        let mut all = Hops::default();
        all.merge(&h);
        all.merge(&h);
        assert_eq!(all.deliveries(), 2);
        let p = Percentiles::of(all.get(Hop::RecvToPublish));
        assert_eq!(p.count, 2);
        assert!((p.p50 - 0.05).abs() < 0.001 && p.max >= p.p99);
    }
}
