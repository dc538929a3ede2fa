//! A client's subscriptions and, per stream, its delivery state: policy, the last seq it has
//! been given, what was folded while it could not keep up. Checked for every frame in the
//! ring, so the lookup is a hash of an id that already is a hash. Sans-IO.

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};
use std::time::Instant;

use tickwire_sdk::wire::{Channel, Trade, TradeSummary, Venue, instrument_id};

use super::protocol::{Policy, SubOptions, SymbolSpec};
use crate::lvc::{Stamp, TradeTotals};

/// Hasher for instrument ids, which are FNV hashes already: passes them through.
#[derive(Default)]
pub struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 << 8) | b as u64;
        }
    }
    fn write_u32(&mut self, n: u32) {
        // Spread the bits so hashbrown's top-7-bit tags vary.
        self.0 = (n as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

type IdBuild = BuildHasherDefault<IdHasher>;

/// Trades received but not yet delivered, folded trade-safe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TradeFold {
    /// Trades folded.
    pub count: u64,
    /// Sum of quantities, 1e-9 units.
    pub volume: i128,
    /// Sum of price x quantity, 1e-18 units.
    pub notional: i128,
    /// Highest price seen.
    pub high: i64,
    /// Lowest price seen.
    pub low: i64,
    /// The last trade.
    pub last: Trade,
    /// Seq of the last trade folded.
    pub last_seq: u64,
    /// Its timestamps.
    pub stamp: Stamp,
}

impl TradeFold {
    /// Starts a fold with one trade.
    pub fn new(t: &Trade, seq: u64, stamp: Stamp) -> TradeFold {
        TradeFold {
            count: 1,
            volume: t.qty as i128,
            notional: t.price as i128 * t.qty as i128,
            high: t.price,
            low: t.price,
            last: t.clone(),
            last_seq: seq,
            stamp,
        }
    }

    /// Adds a trade.
    pub fn add(&mut self, t: &Trade, seq: u64, stamp: Stamp) {
        self.count += 1;
        self.volume += t.qty as i128;
        self.notional += t.price as i128 * t.qty as i128;
        self.high = self.high.max(t.price);
        self.low = self.low.min(t.price);
        self.last = t.clone();
        self.last_seq = seq;
        self.stamp = stamp;
    }

    /// Adds trades known only by their totals (lost to a lapped cursor): counted in the
    /// totals; their prices cannot widen high and low.
    pub fn add_unseen(&mut self, unseen: TradeTotals) {
        self.count += unseen.count;
        self.volume += unseen.volume;
        self.notional += unseen.notional;
    }

    /// The summary body.
    pub fn summary(&self) -> TradeSummary {
        let vwap = if self.volume > 0 {
            let v = (self.notional + self.volume / 2) / self.volume;
            i64::try_from(v).unwrap_or(self.last.price)
        } else {
            self.last.price
        };
        TradeSummary {
            count: self.count,
            volume: self.volume,
            vwap,
            high: self.high,
            low: self.low,
            last: self.last.clone(),
        }
    }
}

/// Delivery state of one stream (instrument, channel) for one client.
#[derive(Debug, Clone)]
pub struct StreamState {
    /// How it is delivered.
    pub policy: Policy,
    /// Highest seq delivered, or covered by a state delivered; frames at or below are skipped.
    pub last_seq: u64,
    /// Updates received but not delivered yet (conflate, interval): the state is dirty.
    pub pending: u32,
    /// The current state is to be sent as a snapshot (on subscribe, on request).
    pub snapshot_due: bool,
    /// Interval policy: when the last update went out.
    pub last_emit: Option<Instant>,
    /// Trades: the fold of undelivered trades.
    pub fold: Option<TradeFold>,
    /// Trades: the instrument's running totals after the last trade accounted for, to count
    /// trades lost to a lapped cursor.
    pub totals: Option<TradeTotals>,
}

impl StreamState {
    fn new(policy: Policy, snapshot: bool) -> StreamState {
        StreamState {
            policy,
            last_seq: 0,
            pending: 0,
            snapshot_due: snapshot,
            last_emit: None,
            fold: None,
            totals: None,
        }
    }

    /// Something waits to be sent.
    pub fn is_due(&self) -> bool {
        self.pending > 0 || self.snapshot_due
    }
}

/// One instrument a client receives.
#[derive(Debug, Clone)]
pub struct InstrumentSub {
    /// The venue.
    pub venue: Venue,
    /// The venue's symbol.
    pub symbol: String,
    /// Levels per side in book snapshots.
    pub depth: usize,
    /// Per channel (trades, quotes, book), if subscribed.
    pub streams: [Option<StreamState>; 3],
    /// Definition and latest status are to be sent (on subscribe).
    pub control_due: bool,
    /// Highest seq of the control lane (status) delivered.
    pub control_seq: u64,
    /// In the dirty list.
    queued: bool,
}

impl InstrumentSub {
    /// The state of `channel`, if subscribed.
    pub fn stream(&mut self, channel: Channel) -> Option<&mut StreamState> {
        self.streams.get_mut(channel.index())?.as_mut()
    }

    fn is_empty(&self) -> bool {
        self.streams.iter().all(Option::is_none)
    }
}

/// Everything one client receives.
#[derive(Debug, Default)]
pub struct Subscriptions {
    by_id: HashMap<u32, InstrumentSub, IdBuild>,
    patterns: Vec<(SymbolSpec, Vec<Channel>, SubOptions)>,
    /// Ids checked against the patterns that did not match.
    unmatched: HashSet<u32, IdBuild>,
    /// Ids with something due, in the order they became due.
    dirty: Vec<u32>,
    lossless: usize,
}

impl Subscriptions {
    /// No subscriptions.
    pub fn new() -> Subscriptions {
        Subscriptions::default()
    }

    /// Instruments subscribed (patterns not counted).
    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    /// True when nothing is subscribed, not even a pattern.
    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty() && self.patterns.is_empty()
    }

    /// True if any stream is lossless: the connection then never skips frames.
    pub fn is_lossless(&self) -> bool {
        self.lossless > 0
    }

    /// Subscribes `channels` of one instrument; returns true if the instrument is new.
    pub fn add(
        &mut self,
        venue: Venue,
        symbol: &str,
        channels: &[Channel],
        opts: &SubOptions,
    ) -> bool {
        let id = instrument_id(venue, symbol);
        self.unmatched.remove(&id);
        let new = !self.by_id.contains_key(&id);
        let sub = self.by_id.entry(id).or_insert_with(|| InstrumentSub {
            venue,
            symbol: symbol.to_string(),
            depth: opts.depth,
            streams: [None, None, None],
            control_due: false,
            control_seq: 0,
            queued: false,
        });
        sub.depth = opts.depth;
        sub.control_due |= opts.snapshot || new;
        for c in channels {
            if *c == Channel::Control {
                continue;
            }
            let slot = &mut sub.streams[c.index()];
            if slot.as_ref().is_some_and(|s| s.policy == Policy::Lossless) {
                self.lossless -= 1;
            }
            let mut state = StreamState::new(opts.policy, opts.snapshot);
            if let Some(old) = slot.take() {
                // Keep what the client has been given.
                state.last_seq = old.last_seq;
                state.totals = old.totals;
            }
            if opts.policy == Policy::Lossless {
                self.lossless += 1;
            }
            *slot = Some(state);
        }
        if !sub.queued {
            sub.queued = true;
            self.dirty.push(id);
        }
        new
    }

    /// Adds a pattern; instruments it matches are added as they appear ([`Self::admit`]).
    pub fn add_pattern(&mut self, spec: SymbolSpec, channels: &[Channel], opts: SubOptions) {
        self.patterns.retain(|(s, _, _)| *s != spec);
        self.patterns.push((spec, channels.to_vec(), opts));
        self.unmatched.clear();
    }

    /// Unsubscribes `channels` of what `spec` names (a pattern also stops matching new
    /// instruments).
    pub fn remove(&mut self, spec: &SymbolSpec, channels: &[Channel]) {
        if matches!(spec, SymbolSpec::Pattern { .. }) {
            self.patterns.retain(|(s, _, _)| s != spec);
        }
        let ids: Vec<u32> = self
            .by_id
            .iter()
            .filter(|(_, s)| spec.matches(s.venue, &s.symbol))
            .map(|(id, _)| *id)
            .collect();
        for id in ids {
            let Some(sub) = self.by_id.get_mut(&id) else {
                continue;
            };
            for c in channels {
                if let Some(old) = sub.streams.get_mut(c.index()).and_then(Option::take)
                    && old.policy == Policy::Lossless
                {
                    self.lossless -= 1;
                }
            }
            if sub.is_empty() {
                self.by_id.remove(&id);
            }
        }
    }

    /// The instrument `id`, if subscribed.
    #[inline]
    pub fn get_mut(&mut self, id: u32) -> Option<&mut InstrumentSub> {
        self.by_id.get_mut(&id)
    }

    /// True if `id` is subscribed on any channel.
    #[inline]
    pub fn contains(&self, id: u32) -> bool {
        self.by_id.contains_key(&id)
    }

    /// For an instrument seen for the first time: subscribes it if a pattern matches
    /// (returns true), else remembers that it does not.
    pub fn admit(&mut self, id: u32, venue: Venue, symbol: &str) -> bool {
        if self.patterns.is_empty() || self.unmatched.contains(&id) || self.by_id.contains_key(&id)
        {
            return false;
        }
        let matched: Vec<(Vec<Channel>, SubOptions)> = self
            .patterns
            .iter()
            .filter(|(spec, _, _)| spec.matches(venue, symbol))
            .map(|(_, c, o)| (c.clone(), *o))
            .collect();
        if matched.is_empty() {
            self.unmatched.insert(id);
            return false;
        }
        for (channels, mut opts) in matched {
            // A new instrument's state is sent before its first frames, whatever the request
            // said about snapshots: a client cannot build a book from deltas alone.
            opts.snapshot = true;
            self.add(venue, symbol, &channels, &opts);
        }
        true
    }

    /// Marks `id` as having something due.
    pub fn mark_due(&mut self, id: u32) {
        if let Some(sub) = self.by_id.get_mut(&id)
            && !sub.queued
        {
            sub.queued = true;
            self.dirty.push(id);
        }
    }

    /// Takes the list of ids with something due (each entry is marked not queued).
    pub fn take_due(&mut self) -> Vec<u32> {
        let ids = std::mem::take(&mut self.dirty);
        for id in &ids {
            if let Some(sub) = self.by_id.get_mut(id) {
                sub.queued = false;
            }
        }
        ids
    }

    /// Asks for the current state of `channels` of what `spec` names to be sent again.
    pub fn request_snapshot(&mut self, spec: &SymbolSpec, channels: &[Channel]) -> usize {
        let ids: Vec<u32> = self
            .by_id
            .iter()
            .filter(|(_, s)| spec.matches(s.venue, &s.symbol))
            .map(|(id, _)| *id)
            .collect();
        for id in &ids {
            if let Some(sub) = self.by_id.get_mut(id) {
                sub.control_due = true;
                for c in channels {
                    if let Some(st) = sub.stream(*c) {
                        st.snapshot_due = true;
                    }
                }
            }
            self.mark_due(*id);
        }
        ids.len()
    }

    /// Every subscribed instrument id.
    pub fn ids(&self) -> impl Iterator<Item = u32> + '_ {
        self.by_id.keys().copied()
    }

    /// Every subscribed stream: (instrument, channel), the control lane included for each
    /// instrument.
    pub fn streams(&self) -> impl Iterator<Item = (u32, Channel)> + '_ {
        self.by_id.iter().flat_map(|(&id, sub)| {
            Channel::SUBSCRIBABLE
                .into_iter()
                .filter(|c| sub.streams[c.index()].is_some())
                .chain([Channel::Control])
                .map(move |c| (id, c))
        })
    }

    /// The patterns subscribed, with their channels.
    pub fn patterns(&self) -> impl Iterator<Item = (&SymbolSpec, &[Channel])> + '_ {
        self.patterns.iter().map(|(s, c, _)| (s, c.as_slice()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tickwire_sdk::wire::{Side, TradeId};

    fn exact(sym: &str) -> SymbolSpec {
        SymbolSpec::Exact(super::super::protocol::Symbol {
            venue: Venue::Binance,
            symbol: sym.into(),
        })
    }

    #[test]
    fn add_remove_policies_and_patterns() {
        let id = instrument_id(Venue::Binance, "BTCUSDT");
        let mut s = Subscriptions::new();
        let lossless = SubOptions {
            policy: Policy::Lossless,
            ..SubOptions::default()
        };
        assert!(s.add(Venue::Binance, "BTCUSDT", &[Channel::Trades], &lossless));
        assert!(s.is_lossless());
        assert!(s.get_mut(id).unwrap().stream(Channel::Trades).is_some());
        assert!(s.get_mut(id).unwrap().stream(Channel::Book).is_none());
        assert!(!s.add(
            Venue::Binance,
            "BTCUSDT",
            &[Channel::Book],
            &SubOptions::default()
        ));
        assert_eq!(s.take_due(), vec![id]);
        s.remove(&exact("BTCUSDT"), &[Channel::Trades]);
        assert!(!s.is_lossless());
        assert!(s.contains(id));
        s.remove(&exact("BTCUSDT"), &[Channel::Book]);
        assert!(!s.contains(id));

        s.add_pattern(
            SymbolSpec::Pattern {
                venue: Some(Venue::Binance),
                symbol: None,
            },
            &[Channel::Quotes],
            SubOptions::default(),
        );
        let eth = instrument_id(Venue::Binance, "ETHUSDT");
        assert!(s.admit(eth, Venue::Binance, "ETHUSDT"));
        assert!(
            s.get_mut(eth)
                .unwrap()
                .stream(Channel::Quotes)
                .unwrap()
                .snapshot_due
        );
        let okx = instrument_id(Venue::Okx, "BTC-USDT");
        assert!(!s.admit(okx, Venue::Okx, "BTC-USDT"));
        assert!(!s.contains(okx));
        s.remove(
            &SymbolSpec::Pattern {
                venue: Some(Venue::Binance),
                symbol: None,
            },
            &Channel::SUBSCRIBABLE,
        );
        assert!(s.is_empty());
    }

    #[test]
    fn trades_fold_trade_safe() {
        let t = |price, qty| Trade {
            price,
            qty,
            side: Side::Buy,
            trade_id: TradeId::Num(1),
        };
        let mut f = TradeFold::new(&t(100, 2), 1, Stamp::default());
        f.add(&t(300, 2), 2, Stamp::default());
        f.add(&t(200, 4), 3, Stamp::default());
        let s = f.summary();
        assert_eq!((s.count, s.volume, s.high, s.low), (3, 8, 300, 100));
        assert_eq!(s.vwap, (200 + 600 + 800) / 8);
        assert_eq!(s.last.price, 200);
        f.add_unseen(TradeTotals {
            count: 2,
            volume: 2,
            notional: 1000,
        });
        assert_eq!((f.count, f.volume), (5, 10));
    }
}
