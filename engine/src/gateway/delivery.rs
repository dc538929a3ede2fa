//! What one client is sent, and when: the sans-IO core of a gateway session.
//!
//! For every frame read from the ring it decides to deliver it now, fold it (the client's
//! socket is busy, or its policy says not yet), or skip it (already covered by a state sent,
//! or not subscribed). When the socket is free again it sends, per stream with something
//! folded, the latest state from the last-value cache (quotes, book) or the folded trades,
//! flagged `conflated` with how many updates each stands for. Control frames (status,
//! definitions) are never folded. Output accumulates in a batch (binary) or a list of texts
//! (JSON) that the session writes with one flush.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tickwire_sdk::wire::{
    ArchivedBody, BatchWriter, Body, Channel, Encoder, Frame, InstrumentInfo, JsonOptions, Trade,
    flags, json, to_owned,
};
use tokio_tungstenite::tungstenite::Message;

use super::protocol::{self, Encoding, Policy, Request, RequestError, SymbolSpec};
use super::subscriptions::{Subscriptions, TradeFold};
use crate::lvc::{self, Lvc, Stamp, TradeTotals};
use crate::registry::Registry;
use crate::ring::Entry;

/// Output bytes that may pile up while the socket is busy (control frames only) before the
/// client is dropped as a slow consumer.
pub const MAX_HELD_BYTES: usize = 4 << 20;

/// Counters of one client's delivery.
#[derive(Debug, Default, Clone, Copy)]
pub struct DeliveryStats {
    /// Frames queued for the client.
    pub frames: u64,
    /// Updates folded instead of sent.
    pub folded: u64,
    /// Conflated frames sent (each stands for one or more folded updates).
    pub conflated: u64,
    /// Ring entries lost to a lapped cursor.
    pub lapped: u64,
}

/// The delivery state of one client.
pub struct Delivery {
    /// What the client subscribed to.
    pub subs: Subscriptions,
    /// How frames are encoded for it.
    pub encoding: Encoding,
    batch: BatchWriter,
    /// Finished messages, in order (replies, JSON frames, closed binary batches).
    outbox: Vec<Message>,
    out_bytes: usize,
    queued: usize,
    encoder: Encoder,
    scratch: Vec<u8>,
    lvc: Arc<Lvc>,
    registry: Arc<Registry>,
    /// Earliest time an interval stream is due.
    next_due: Option<Instant>,
    /// Counters.
    pub stats: DeliveryStats,
}

impl Delivery {
    /// A client with no subscriptions, JSON encoding.
    pub fn new(lvc: Arc<Lvc>, registry: Arc<Registry>) -> Delivery {
        Delivery {
            subs: Subscriptions::new(),
            encoding: Encoding::Json,
            batch: BatchWriter::with_capacity(64 << 10),
            outbox: Vec::new(),
            out_bytes: 0,
            queued: 0,
            encoder: Encoder::new(),
            scratch: Vec::new(),
            lvc,
            registry,
            next_due: None,
            stats: DeliveryStats::default(),
        }
    }

    /// Frames queued and not yet taken.
    pub fn queued(&self) -> usize {
        self.queued
    }

    /// True if anything (frames or replies) waits to be written.
    pub fn has_output(&self) -> bool {
        !self.outbox.is_empty() || !self.batch.is_empty()
    }

    /// Bytes queued and not yet taken.
    pub fn queued_bytes(&self) -> usize {
        self.batch
            .len()
            .saturating_sub(tickwire_sdk::wire::codec::BATCH_HEADER_LEN)
            + self.out_bytes
    }

    /// When an interval stream next falls due, if one is waiting.
    pub fn next_due(&self) -> Option<Instant> {
        self.next_due
    }

    /// Takes the queued messages, in order.
    pub fn take_output(&mut self) -> Vec<Message> {
        self.close_batch();
        self.out_bytes = 0;
        self.queued = 0;
        std::mem::take(&mut self.outbox)
    }

    /// Ends the current binary batch (so what follows is ordered after it).
    fn close_batch(&mut self) {
        if !self.batch.is_empty() {
            let bytes = self.batch.take();
            self.out_bytes += bytes.len();
            self.outbox.push(Message::Binary(bytes.into()));
        }
    }

    /// Queues a control reply (JSON text), after everything queued so far.
    pub fn push_reply(&mut self, text: String) {
        self.close_batch();
        self.out_bytes += text.len();
        self.outbox.push(Message::text(text));
    }

    /// Decides what to do with one ring entry. `busy`: the client's socket has not taken the
    /// last write yet (deliverable data is folded instead, control frames are still queued).
    #[inline]
    pub fn on_entry(&mut self, e: &Entry, busy: bool, now: Instant) {
        let id = e.instrument;
        if !self.subs.contains(id) {
            let admitted = match &e.info {
                Some(info) => self.subs.admit(id, info.venue, &info.symbol),
                None => false,
            };
            if !admitted {
                return;
            }
        }
        let Some(sub) = self.subs.get_mut(id) else {
            return;
        };
        if e.channel == Channel::Control {
            // seq 0: part of no stream (replay start and end markers): always delivered.
            if e.seq == 0 {
                self.push_entry(e);
            } else if e.seq > sub.control_seq {
                sub.control_seq = e.seq;
                self.push_entry(e);
            }
            return;
        }
        let Some(st) = sub.stream(e.channel) else {
            return;
        };
        if e.seq <= st.last_seq {
            return; // covered by a state already sent
        }
        // Trades lost to a lapped cursor show as a jump in the running totals (which include
        // this trade).
        let mut unseen = None;
        if let Some(totals) = e.totals {
            if let Some(prev) = st.totals
                && totals.count > prev.count + 1
                && let ArchivedBody::Trade(t) = &e.frame().body
            {
                let (p, q) = (t.price.to_native() as i128, t.qty.to_native() as i128);
                unseen = Some(TradeTotals {
                    count: totals.count - prev.count - 1,
                    volume: totals.volume - prev.volume - q,
                    notional: totals.notional - prev.notional - p * q,
                });
            }
            st.totals = Some(totals);
        }
        let deliver = unseen.is_none()
            && match st.policy {
                Policy::Lossless => true,
                Policy::Conflate => !busy && !st.is_due(),
                Policy::Interval(iv) => {
                    !busy && !st.is_due() && st.last_emit.is_none_or(|t| now >= t + iv)
                }
            };
        if deliver {
            st.last_seq = e.seq;
            if matches!(st.policy, Policy::Interval(_)) {
                st.last_emit = Some(now);
            }
            self.push_entry(e);
            return;
        }
        // Fold.
        st.pending += 1;
        self.stats.folded += 1;
        if e.channel == Channel::Trades
            && let ArchivedBody::Trade(_) = &e.frame().body
        {
            let f = to_owned(e.frame());
            if let Body::Trade(t) = f.body {
                let stamp = Stamp {
                    exchange: f.ts_exchange,
                    recv: f.ts_recv,
                    publish: f.ts_publish,
                };
                fold_trade(&mut st.fold, &t, e.seq, stamp);
                if let (Some(u), Some(fold)) = (unseen, st.fold.as_mut()) {
                    // The trades lost count in the totals; their prices are unknown.
                    fold.add_unseen(u);
                }
            }
        }
        if let Policy::Interval(iv) = st.policy {
            let due = st.last_emit.map_or(now, |t| t + iv);
            self.next_due = Some(self.next_due.map_or(due, |d| d.min(due)));
        }
        self.subs.mark_due(id);
    }

    /// The cursor was lapped and `skipped` entries are gone: every subscribed stream may have
    /// changed, so each sends its current state when it can (trades are accounted from the
    /// running totals on the next trade).
    pub fn lapped(&mut self, skipped: u64) {
        self.stats.lapped += skipped;
        let ids: Vec<u32> = self.subs.ids().collect();
        for id in ids {
            if let Some(sub) = self.subs.get_mut(id) {
                for c in [Channel::Quotes, Channel::Book] {
                    if let Some(st) = sub.stream(c) {
                        st.pending += 1;
                    }
                }
            }
            self.subs.mark_due(id);
        }
    }

    /// Queues what is due: subscribe-time state, conflated state, folded trades. Interval
    /// streams wait for their interval.
    pub fn emit_due(&mut self, now: Instant) {
        self.next_due = None;
        for id in self.subs.take_due() {
            self.emit_instrument(id, now);
        }
    }

    fn emit_instrument(&mut self, id: u32, now: Instant) {
        let slot = self.lvc.get(id);
        let info = self.registry.definition(id);
        let mut still_due = false;
        let Some(sub) = self.subs.get_mut(id) else {
            return;
        };
        let depth = sub.depth;
        let mut frames: Vec<Frame> = Vec::new();
        if sub.control_due {
            sub.control_due = false;
            // The control lane's state: the definition, then the latest status, both flagged
            // SNAPSHOT with the lane's current seq (a baseline for the client's seq check).
            let (control_seq, status) = match &slot {
                Some(slot) => {
                    let state = lvc::lock(slot);
                    (state.control_seq, state.status_frame(id))
                }
                None => (0, None),
            };
            if let Some(info) = &info {
                let mut f = Frame::new(info.venue, id, 0, 0, Body::Definition(info.definition()));
                f.seq = control_seq;
                f.flags = flags::SNAPSHOT;
                f.ts_publish = tickwire_feed::clock::now_ns();
                frames.push(f);
            }
            if let Some(f) = status {
                frames.push(f);
            }
            sub.control_seq = sub.control_seq.max(control_seq);
        }
        for channel in [Channel::Quotes, Channel::Book, Channel::Trades] {
            let Some(st) = sub.stream(channel) else {
                continue;
            };
            if !st.is_due() {
                continue;
            }
            if let Policy::Interval(iv) = st.policy
                && !st.snapshot_due
                && let Some(t) = st.last_emit
                && now < t + iv
            {
                still_due = true;
                let due = t + iv;
                self.next_due = Some(self.next_due.map_or(due, |d| d.min(due)));
                continue;
            }
            let conflated = !st.snapshot_due;
            let extra = if conflated {
                flags::CONFLATED
            } else {
                flags::SNAPSHOT
            };
            let updates = st.pending.max(1);
            match channel {
                Channel::Quotes | Channel::Book => {
                    if let Some(slot) = &slot {
                        let state = lvc::lock(slot);
                        let f = if channel == Channel::Quotes {
                            state.quote_frame(id, extra)
                        } else if state.book_seq > 0 {
                            Some(state.book_frame(id, depth, extra))
                        } else {
                            None
                        };
                        if let Some(mut f) = f
                            && (f.seq > st.last_seq || st.snapshot_due)
                        {
                            st.last_seq = f.seq;
                            if conflated {
                                f.updates = updates;
                            }
                            frames.push(f);
                        }
                    }
                }
                Channel::Trades => {
                    if let Some(fold) = st.fold.take() {
                        let mut f = Frame {
                            venue: info.as_ref().map_or(0, |i| i.venue.id()),
                            instrument: id,
                            flags: flags::CONFLATED,
                            seq: fold.last_seq,
                            ts_exchange: fold.stamp.exchange,
                            ts_recv: fold.stamp.recv,
                            ts_publish: fold.stamp.publish,
                            updates: u32::try_from(fold.count).unwrap_or(u32::MAX),
                            body: Body::TradeSummary(Box::new(fold.summary())),
                        };
                        if f.venue == 0
                            && let Some(slot) = &slot
                        {
                            f.venue = lvc::lock(slot).venue;
                        }
                        st.last_seq = fold.last_seq;
                        frames.push(f);
                    } else if st.snapshot_due
                        && let Some(slot) = &slot
                    {
                        // Trades have no state to send: start from the next one.
                        st.last_seq = st.last_seq.max(lvc::lock(slot).seq(Channel::Trades));
                    }
                }
                Channel::Control => {}
            }
            st.pending = 0;
            st.snapshot_due = false;
            st.last_emit = Some(now);
        }
        if still_due {
            self.subs.mark_due(id);
        }
        let conflated = frames
            .iter()
            .filter(|f| f.flags & flags::CONFLATED != 0)
            .count();
        self.stats.conflated += conflated as u64;
        for f in &frames {
            self.push_frame(f, info.as_deref());
        }
    }

    /// Queues a frame made here (definitions, states, summaries, heartbeats).
    pub fn push_frame(&mut self, f: &Frame, info: Option<&InstrumentInfo>) {
        self.queued += 1;
        self.stats.frames += 1;
        match self.encoding {
            Encoding::Binary => {
                let bytes = self.encoder.encode(f);
                self.batch.push(bytes);
            }
            Encoding::Json => {
                let bytes = self.encoder.encode(f);
                self.scratch.clear();
                if let Ok(archived) = tickwire_sdk::wire::access(bytes) {
                    json::render(archived, info, JsonOptions::default(), &mut self.scratch);
                    self.out_bytes += self.scratch.len();
                    let text = String::from_utf8_lossy(&self.scratch).into_owned();
                    self.outbox.push(Message::text(text));
                }
            }
        }
    }

    #[inline]
    fn push_entry(&mut self, e: &Entry) {
        self.queued += 1;
        self.stats.frames += 1;
        match self.encoding {
            Encoding::Binary => self.batch.push(&e.bytes),
            Encoding::Json => {
                let t = e.json().clone();
                self.out_bytes += t.len();
                self.outbox.push(Message::Text(t));
            }
        }
    }

    /// How long until an interval stream falls due, if one waits.
    pub fn interval_wait(&self, now: Instant) -> Option<Duration> {
        self.next_due.map(|d| d.saturating_duration_since(now))
    }
}

impl Delivery {
    /// Handles a control message: queues its reply (and, for subscribe and snapshot, the
    /// states to send). `max_instruments` bounds the subscriptions of the connection.
    pub fn on_request(&mut self, text: &str, max_instruments: usize, now: Instant) {
        let req = match protocol::parse(text) {
            Ok(r) => r,
            Err(e) => return self.push_reply(e.to_json()),
        };
        match req {
            Request::Subscribe {
                id,
                symbols,
                channels,
                encoding,
                options,
            } => {
                let unknown: Vec<String> = symbols
                    .iter()
                    .filter_map(|s| match s {
                        SymbolSpec::Exact(x) => (!self
                            .registry
                            .is_served(tickwire_sdk::wire::instrument_id(x.venue, &x.symbol)))
                        .then(|| x.qualified()),
                        SymbolSpec::Pattern { .. } => None,
                    })
                    .collect();
                if !unknown.is_empty() {
                    let served = self.registry.served();
                    let served = if served.is_empty() {
                        "nothing yet".to_string()
                    } else {
                        served.join(", ")
                    };
                    return self.push_reply(
                        RequestError {
                            id,
                            code: "unknown_symbol",
                            message: format!(
                                "not served here: {}; this server serves {served}",
                                unknown.join(", ")
                            ),
                        }
                        .to_json(),
                    );
                }
                // What the request names now: exact symbols and the served ones patterns match.
                let mut named: Vec<(tickwire_sdk::wire::Venue, String)> = Vec::new();
                for spec in &symbols {
                    match spec {
                        SymbolSpec::Exact(x) => named.push((x.venue, x.symbol.clone())),
                        SymbolSpec::Pattern { .. } => named.extend(
                            self.registry
                                .served_instruments()
                                .into_iter()
                                .filter(|(v, s)| spec.matches(*v, s)),
                        ),
                    }
                }
                named.sort();
                named.dedup();
                let new = named
                    .iter()
                    .filter(|(v, s)| !self.subs.contains(tickwire_sdk::wire::instrument_id(*v, s)))
                    .count();
                if self.subs.len() + new > max_instruments {
                    return self.push_reply(
                        RequestError {
                            id,
                            code: "too_many_subscriptions",
                            message: format!(
                                "at most {max_instruments} instruments per connection; unsubscribe some or open another connection"
                            ),
                        }
                        .to_json(),
                    );
                }
                if let Some(e) = encoding {
                    self.encoding = e;
                }
                for spec in &symbols {
                    if matches!(spec, SymbolSpec::Pattern { .. }) {
                        self.subs.add_pattern(spec.clone(), &channels, options);
                    }
                }
                for (venue, symbol) in &named {
                    self.subs.add(*venue, symbol, &channels, &options);
                }
                let ack = protocol::ack(
                    "subscribed",
                    &id,
                    &symbols,
                    &channels,
                    self.encoding,
                    Some(&options),
                );
                self.push_reply(ack);
                // The state follows the ack at once.
                self.emit_due(now);
            }
            Request::Unsubscribe {
                id,
                symbols,
                channels,
            } => {
                for spec in &symbols {
                    self.subs.remove(spec, &channels);
                }
                let ack = protocol::ack(
                    "unsubscribed",
                    &id,
                    &symbols,
                    &channels,
                    self.encoding,
                    None,
                );
                self.push_reply(ack);
            }
            Request::Snapshot {
                id,
                symbols,
                channels,
            } => {
                for spec in &symbols {
                    self.subs.request_snapshot(spec, &channels);
                }
                self.emit_due(now);
                let ack = protocol::ack("snapshot", &id, &symbols, &channels, self.encoding, None);
                self.push_reply(ack);
            }
            Request::Ping { id } => {
                self.push_reply(protocol::pong(&id, tickwire_feed::clock::now_ns()))
            }
            Request::List { id } => {
                let served = self.registry.served();
                self.push_reply(protocol::instruments(&id, &served))
            }
        }
    }
}

fn fold_trade(fold: &mut Option<TradeFold>, t: &Trade, seq: u64, stamp: Stamp) {
    match fold {
        Some(f) => f.add(t, seq, stamp),
        None => *fold = Some(TradeFold::new(t, seq, stamp)),
    }
}
