//! Feed arbitration on a gateway node (sans-IO): frames of one stream may come from several
//! ingest nodes (A/B feeds) and from several incarnations of one node (restarts); clients
//! must see each venue event once, with `seq` that never goes back.
//!
//! Per stream (instrument, channel) one source is followed, the primary. With a single
//! source that never restarts, its frames pass through unchanged, byte for byte (`seq` as the
//! ingest node assigned it). Other sources' recent frames are kept as a standby window. When
//! the primary is lost (its node's heartbeat stops, its node restarts, or it reports its venue
//! connection down) the stream fails over to a standby:
//!
//! - trades that carry a venue trade id: continued exactly after the last trade forwarded,
//!   found by id in the standby's window (numeric ids also by order), so no trade is lost or
//!   repeated; when the window cannot prove continuity (no id, or it does not reach back),
//!   `seq` skips one (clients see a hole) and a `gap` marker says why;
//! - books and quotes: a fresh snapshot from the standby node, sent as a snapshot frame (a
//!   new baseline for clients), then its deltas; a `resynced` marker follows;
//! - status frames: continued from the standby.
//!
//! After failover `seq` is the standby's plus an offset chosen so it continues where the
//! stream was; such frames are re-encoded. Frames lost between an ingest node and the gateway
//! (a NATS outage) show as a `seq` hole on trades and make books and quotes re-snapshot, with
//! `stale`/`gap` and `resynced` markers: never a silent hole.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use tickwire_sdk::wire::{Body, Channel, Encoder, Frame, StatusCode, TradeId, flags};

/// Frames of a standby source kept per stream, for failover.
const WINDOW: usize = 8192;
/// A node silent this long (no heartbeat, no frame) is lost, ns. (Ten heartbeats: a loaded
/// machine can delay a few; a node wrongly declared lost comes back with its next heartbeat.)
pub const NODE_TIMEOUT_NS: u64 = 2_000_000_000;
/// A snapshot request unanswered this long is sent again, ns.
pub const SNAPSHOT_RETRY_NS: u64 = 2_000_000_000;
/// After failover, how long to wait for a standby that lags behind the last trade forwarded
/// before declaring a gap, ns.
const CATCH_UP_NS: u64 = 2_000_000_000;

/// One incarnation of one ingest node.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Source {
    /// The node's name.
    pub node: Arc<str>,
    /// Its process start time (ns): a restart makes a new source.
    pub epoch: u64,
}

/// What the arbiter asks its shell to do.
#[derive(Debug)]
pub enum Out {
    /// Publish this frame locally (its `seq` final), as these bytes.
    Publish(Frame, Box<[u8]>),
    /// Ask for an instrument's state: from this node, or from any when `None`.
    Snapshot {
        /// The instrument.
        instrument: u32,
        /// The node to ask.
        node: Option<Arc<str>>,
    },
    /// Tell the instrument's clients something happened (a status with `seq` 0).
    Marker {
        /// The instrument.
        instrument: u32,
        /// What happened.
        code: StatusCode,
        /// Why, for people.
        detail: String,
        /// The book may be wrong until the next snapshot.
        bad_book: bool,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum TradeKey {
    Num(u64),
    Text(String),
}

fn trade_key(f: &Frame) -> Option<TradeKey> {
    match &f.body {
        Body::Trade(t) => match &t.trade_id {
            TradeId::Num(n) => Some(TradeKey::Num(*n)),
            TradeId::Text(s) => Some(TradeKey::Text(s.clone())),
            TradeId::None => None,
        },
        _ => None,
    }
}

#[derive(Debug)]
enum Phase {
    /// Forwarding the primary's frames.
    Live,
    /// Waiting for a snapshot from `from` (any source when `None`); frames are buffered.
    Waiting {
        from: Option<Source>,
        asked_at: u64,
        buffer: Vec<(Source, Frame, Box<[u8]>)>,
    },
    /// Trades after failover: the new primary lags; skip its trades up to the last one
    /// forwarded, then go on.
    CatchingUp { until: TradeKey, since: u64 },
}

/// A standby source's recent frames of one stream, oldest first.
type Window = VecDeque<(Frame, Box<[u8]>)>;

#[derive(Debug)]
struct Stream {
    instrument: u32,
    channel: Channel,
    primary: Option<Source>,
    /// out seq = in seq + offset.
    offset: i64,
    /// Last seq of the primary seen.
    last_in: u64,
    /// Last seq published (0: none).
    last_out: u64,
    /// Last trade forwarded.
    last_trade: Option<TradeKey>,
    /// Clients were sent a `gap` or `stale` marker for this stream; a `resynced` one is due
    /// with the next state.
    marked: bool,
    phase: Phase,
    standby: HashMap<Source, Window>,
}

impl Stream {
    fn new(instrument: u32, channel: Channel) -> Stream {
        Stream {
            instrument,
            channel,
            primary: None,
            offset: 0,
            last_in: 0,
            last_out: 0,
            last_trade: None,
            marked: false,
            phase: Phase::Live,
            standby: HashMap::new(),
        }
    }

    fn snapshotted(&self) -> bool {
        !matches!(self.channel, Channel::Trades)
    }
}

/// The arbiter of every stream a gateway receives.
#[derive(Default)]
pub struct Arbiter {
    streams: HashMap<(u32, Channel), Stream>,
    /// Last time each source was heard of (heartbeat or frame), ns.
    seen: HashMap<Source, u64>,
    /// Sources declared lost.
    lost: Vec<Source>,
    /// The link to the cluster is down (markers sent).
    link_down: bool,
    encoder: Encoder,
}

impl Arbiter {
    /// No streams.
    pub fn new() -> Arbiter {
        Arbiter::default()
    }

    /// Streams wanted now.
    pub fn wanted(&self) -> impl Iterator<Item = (u32, Channel)> + '_ {
        self.streams.keys().copied()
    }

    /// True while the stream waits for a snapshot.
    pub fn is_waiting(&self, instrument: u32, channel: Channel) -> bool {
        self.streams
            .get(&(instrument, channel))
            .is_some_and(|s| matches!(s.phase, Phase::Waiting { .. }))
    }

    /// Last seq published on a stream (0: none).
    pub fn last_out(&self, instrument: u32, channel: Channel) -> u64 {
        self.streams
            .get(&(instrument, channel))
            .map_or(0, |s| s.last_out)
    }

    /// Starts following a stream. Books, quotes and status need the current state first: a
    /// snapshot request goes out.
    pub fn want(&mut self, instrument: u32, channel: Channel, now: u64, out: &mut Vec<Out>) {
        if self.streams.contains_key(&(instrument, channel)) {
            return;
        }
        let mut s = Stream::new(instrument, channel);
        if s.snapshotted() {
            s.phase = Phase::Waiting {
                from: None,
                asked_at: now,
                buffer: Vec::new(),
            };
            out.push(Out::Snapshot {
                instrument,
                node: None,
            });
        }
        self.streams.insert((instrument, channel), s);
    }

    /// Stops following a stream.
    pub fn unwant(&mut self, instrument: u32, channel: Channel) {
        self.streams.remove(&(instrument, channel));
    }

    /// A node's heartbeat (its directory) arrived. A node declared lost that speaks again (it
    /// was only cut off) is a source again: streams waiting for any node take it.
    pub fn on_heartbeat(&mut self, src: &Source, now: u64, out: &mut Vec<Out>) {
        if let Some(i) = self.lost.iter().position(|l| l == src) {
            self.lost.remove(i);
        }
        self.touch(src, now, out);
    }

    fn touch(&mut self, src: &Source, now: u64, out: &mut Vec<Out>) {
        if self.lost.contains(src) {
            return;
        }
        if self.seen.insert(src.clone(), now).is_none() {
            // A new incarnation of a node supersedes the old ones.
            let old: Vec<Source> = self
                .seen
                .keys()
                .filter(|s| s.node == src.node && s.epoch < src.epoch)
                .cloned()
                .collect();
            for o in old {
                self.lose(&o, now, "restarted", out);
            }
        }
    }

    /// Retries unanswered snapshot requests and, with `judge_liveness`, declares nodes silent
    /// for too long lost; call a few times a second. (Pass false while frames wait to be fed
    /// in: a node is not silent because its messages are queued.)
    pub fn tick(&mut self, now: u64, judge_liveness: bool, out: &mut Vec<Out>) {
        if self.link_down {
            return;
        }
        let dead: Vec<Source> = self
            .seen
            .iter()
            .filter(|(_, t)| judge_liveness && now.saturating_sub(**t) > NODE_TIMEOUT_NS)
            .map(|(s, _)| s.clone())
            .collect();
        for s in dead {
            self.lose(&s, now, "went silent", out);
        }
        for s in self.streams.values_mut() {
            match &mut s.phase {
                Phase::Waiting { from, asked_at, .. }
                    if now.saturating_sub(*asked_at) > SNAPSHOT_RETRY_NS =>
                {
                    *asked_at = now;
                    out.push(Out::Snapshot {
                        instrument: s.instrument,
                        node: from.as_ref().map(|f| f.node.clone()),
                    });
                }
                Phase::CatchingUp { since, .. } if now.saturating_sub(*since) > CATCH_UP_NS => {
                    s.phase = Phase::Live;
                    s.offset += 1; // skip one seq: clients see the hole
                    out.push(Out::Marker {
                        instrument: s.instrument,
                        code: StatusCode::Gap,
                        detail: "trades may be missing: the standby feed never caught up with the last trade forwarded".into(),
                        bad_book: false,
                    });
                }
                _ => {}
            }
        }
    }

    /// The link to the cluster went down: every followed instrument is stale.
    pub fn on_link_down(&mut self, out: &mut Vec<Out>) {
        if self.link_down {
            return;
        }
        self.link_down = true;
        for s in self.streams.values_mut() {
            s.marked = true;
        }
        let mut ids: Vec<u32> = self.streams.keys().map(|k| k.0).collect();
        ids.sort_unstable();
        ids.dedup();
        for instrument in ids {
            out.push(Out::Marker {
                instrument,
                code: StatusCode::Stale,
                detail: "the gateway lost its connection to the cluster; reconnecting".into(),
                bad_book: true,
            });
        }
    }

    /// The link is back: books, quotes and status are snapshotted again (frames were lost
    /// meanwhile); trades go on, a hole in their `seq` shows what was lost.
    pub fn on_link_up(&mut self, now: u64, out: &mut Vec<Out>) {
        if !self.link_down {
            return;
        }
        self.link_down = false;
        for t in self.seen.values_mut() {
            *t = now;
        }
        let mut asked = Vec::new();
        for s in self.streams.values_mut() {
            if s.snapshotted() {
                s.phase = Phase::Waiting {
                    from: s.primary.clone(),
                    asked_at: now,
                    buffer: Vec::new(),
                };
                if !asked.contains(&s.instrument) {
                    asked.push(s.instrument);
                    out.push(Out::Snapshot {
                        instrument: s.instrument,
                        node: s.primary.as_ref().map(|p| p.node.clone()),
                    });
                }
            }
        }
    }

    /// A frame of a stream arrived from `src`.
    pub fn on_frame(
        &mut self,
        src: &Source,
        frame: Frame,
        bytes: Box<[u8]>,
        now: u64,
        out: &mut Vec<Out>,
    ) {
        self.touch(src, now, out);
        if self.lost.contains(src) {
            return;
        }
        let key = (frame.instrument, frame.channel());
        let Some(s) = self.streams.get_mut(&key) else {
            return;
        };
        if let Phase::Waiting { from, buffer, .. } = &mut s.phase {
            if from.as_ref().is_none_or(|f| f == src) {
                buffer.push((src.clone(), frame, bytes));
                if buffer.len() > WINDOW * 4 {
                    buffer.drain(..WINDOW);
                }
                return;
            }
            keep_standby(s, src, frame, bytes);
            return;
        }
        match &s.primary {
            None => {
                // The first source of a stream that needs no snapshot (trades).
                s.primary = Some(src.clone());
                s.offset = offset_to_follow(s.last_out, frame.seq, s.last_out == 0);
                s.last_in = frame.seq.saturating_sub(1);
            }
            Some(p) if p != src => {
                keep_standby(s, src, frame, bytes);
                return;
            }
            Some(_) => {}
        }
        if let Phase::CatchingUp { until, .. } = &s.phase {
            let k = trade_key(&frame);
            let passed = match (&k, until) {
                (Some(TradeKey::Num(a)), TradeKey::Num(b)) => a > b,
                _ => false,
            };
            if k.as_ref() == Some(until) {
                s.phase = Phase::Live;
                s.offset = s.last_out as i64 - frame.seq as i64;
                s.last_in = frame.seq;
                return;
            }
            if !passed {
                s.last_in = frame.seq;
                return;
            }
            s.phase = Phase::Live;
            s.offset = s.last_out as i64 + 1 - frame.seq as i64;
            s.last_in = frame.seq.saturating_sub(1);
        }
        forward(s, frame, bytes, &mut self.encoder, now, out);
    }

    /// A node answered a snapshot request: its current state of an instrument, one frame per
    /// stream it has state for (status, quote, book); an empty answer means no state yet.
    pub fn on_snapshot(
        &mut self,
        src: &Source,
        instrument: u32,
        frames: Vec<(Frame, Box<[u8]>)>,
        now: u64,
        out: &mut Vec<Out>,
    ) {
        self.touch(src, now, out);
        if self.lost.contains(src) {
            return;
        }
        let mut resynced = false;
        for channel in [Channel::Control, Channel::Quotes, Channel::Book] {
            let Some(s) = self.streams.get_mut(&(instrument, channel)) else {
                continue;
            };
            let Phase::Waiting { from, buffer, .. } = &mut s.phase else {
                continue;
            };
            if from.as_ref().is_some_and(|f| f != src) {
                continue;
            }
            let buffer = std::mem::take(buffer);
            let state = frames.iter().find(|(f, _)| f.channel() == channel);
            let first = s.last_out == 0;
            let same = s.primary.as_ref() == Some(src);
            // The seq the state stands at (0: the node has nothing yet).
            let at = state.map_or(0, |(f, _)| f.seq);
            s.offset = if first {
                0
            } else if same && at as i64 + s.offset > s.last_out as i64 {
                s.offset
            } else {
                s.last_out as i64 + 1 - at as i64
            };
            if s.marked && (at > 0 || channel == Channel::Control) {
                // Clients were told of a hole or a stale period: they are told it is over. A
                // clean failover to a standby needs no marker: its snapshot is a new baseline.
                // (A node with no state yet: told when its first state frame is forwarded.)
                resynced = true;
                s.marked = false;
            }
            s.primary = Some(src.clone());
            s.standby.remove(src);
            s.last_in = at;
            s.phase = Phase::Live;
            if let Some((f, b)) = state
                && at > 0
            {
                // A state is a new baseline for clients' seq checks.
                let mut f = f.clone();
                let b = if f.flags & flags::SNAPSHOT == 0 {
                    f.flags |= flags::SNAPSHOT;
                    self.encoder.encode(&f).into()
                } else {
                    b.clone()
                };
                emit(s, f, b, &mut self.encoder, out);
            }
            // Then what arrived meanwhile, after the state.
            for (bsrc, f, b) in buffer {
                if &bsrc != src {
                    keep_standby(s, &bsrc, f, b);
                } else if f.seq > s.last_in {
                    forward(s, f, b, &mut self.encoder, now, out);
                }
            }
        }
        if resynced {
            out.push(Out::Marker {
                instrument,
                code: StatusCode::Resynced,
                detail: format!("state taken again from ingest node {}", src.node),
                bad_book: false,
            });
        }
    }

    /// A source is gone (silent, or superseded by a restart): the streams it was primary of
    /// fail over to the standby with the most recent data, or wait for any node.
    fn lose(&mut self, src: &Source, now: u64, why: &str, out: &mut Vec<Out>) {
        self.seen.remove(src);
        if !self.lost.contains(src) {
            self.lost.push(src.clone());
            if self.lost.len() > 64 {
                self.lost.remove(0);
            }
        }
        let mut resync: Vec<(u32, Option<Arc<str>>)> = Vec::new();
        for s in self.streams.values_mut() {
            s.standby.remove(src);
            if let Phase::Waiting { from, buffer, .. } = &mut s.phase {
                buffer.retain(|(b, _, _)| b != src);
                if from.as_ref() == Some(src) {
                    *from = None;
                    s.marked = true;
                    resync.push((s.instrument, None));
                }
                continue;
            }
            if s.primary.as_ref() != Some(src) {
                continue;
            }
            let standby = best_standby(s);
            match s.channel {
                Channel::Trades => fail_over_trades(s, standby, now, why, &mut self.encoder, out),
                Channel::Control => {
                    s.primary = None;
                    if let Some(sb) = standby
                        && let Some(window) = s.standby.remove(&sb)
                    {
                        s.primary = Some(sb);
                        if let Some((f, _)) = window.back() {
                            s.offset = s.last_out as i64 - f.seq as i64;
                            s.last_in = f.seq;
                        }
                    }
                }
                Channel::Quotes | Channel::Book => {
                    let node = standby.as_ref().map(|b| b.node.clone());
                    s.marked |= node.is_none();
                    let mut buffer = Vec::new();
                    if let Some(sb) = &standby
                        && let Some(window) = s.standby.remove(sb)
                    {
                        buffer.extend(window.into_iter().map(|(f, b)| (sb.clone(), f, b)));
                    }
                    s.phase = Phase::Waiting {
                        from: standby,
                        asked_at: now,
                        buffer,
                    };
                    resync.push((s.instrument, node));
                }
            }
        }
        resync.sort();
        resync.dedup();
        for (instrument, node) in resync {
            // With a standby the book goes on from its snapshot (a new baseline, nothing
            // lost); without one, clients are told the state is unknown until a node answers.
            if node.is_none() {
                out.push(Out::Marker {
                    instrument,
                    code: StatusCode::Stale,
                    detail: format!(
                        "ingest node {} {why} and no other node has this instrument; waiting for one",
                        src.node
                    ),
                    bad_book: true,
                });
            }
            out.push(Out::Snapshot { instrument, node });
        }
    }
}

/// The offset that maps `seq` right after `last_out` (or keeps the ingest's numbering for a
/// stream's very first source).
fn offset_to_follow(last_out: u64, seq: u64, first: bool) -> i64 {
    if first {
        0
    } else {
        last_out as i64 + 1 - seq as i64
    }
}

fn keep_standby(s: &mut Stream, src: &Source, frame: Frame, bytes: Box<[u8]>) {
    let w = s.standby.entry(src.clone()).or_default();
    if w.len() >= WINDOW {
        w.pop_front();
    }
    w.push_back((frame, bytes));
}

/// The standby with the most recent data.
fn best_standby(s: &Stream) -> Option<Source> {
    s.standby
        .iter()
        .max_by_key(|(_, w)| w.back().map_or(0, |(f, _)| f.ts_recv))
        .map(|(src, _)| src.clone())
}

fn fail_over_trades(
    s: &mut Stream,
    standby: Option<Source>,
    now: u64,
    why: &str,
    encoder: &mut Encoder,
    out: &mut Vec<Out>,
) {
    s.primary = None;
    let Some(sb) = standby else {
        // Nobody else has this stream (yet): the next source to send it takes over, one seq
        // skipped so the hole shows.
        s.last_in = 0;
        s.phase = Phase::Live;
        out.push(Out::Marker {
            instrument: s.instrument,
            code: StatusCode::Gap,
            detail: "trades may be missing: no other ingest node has this stream".into(),
            bad_book: false,
        });
        // Next source's first frame maps after a skipped seq.
        s.last_out += 1;
        return;
    };
    let window: Vec<(Frame, Box<[u8]>)> = s.standby.remove(&sb).unwrap_or_default().into();
    s.primary = Some(sb.clone());
    let last = s.last_trade.clone();
    // Where the standby's window continues the stream.
    let start = match &last {
        None => Some(0),
        Some(k) => {
            if let Some(i) = window
                .iter()
                .position(|(f, _)| trade_key(f).as_ref() == Some(k))
            {
                Some(i + 1)
            } else if let TradeKey::Num(n) = k {
                let covers = window
                    .iter()
                    .any(|(f, _)| matches!(trade_key(f), Some(TradeKey::Num(m)) if m <= *n));
                let ahead = window
                    .iter()
                    .position(|(f, _)| matches!(trade_key(f), Some(TradeKey::Num(m)) if m > *n));
                match ahead {
                    Some(i) if covers => Some(i),
                    Some(i) => {
                        out.push(Out::Marker {
                            instrument: s.instrument,
                            code: StatusCode::Gap,
                            detail: format!("ingest node {why}; trades between id {n} and the standby's first may be missing"),
                            bad_book: false,
                        });
                        s.last_out += 1;
                        Some(i)
                    }
                    None => None,
                }
            } else {
                None
            }
        }
    };
    match start {
        Some(i) => {
            s.phase = Phase::Live;
            match window.get(i) {
                Some((f, _)) => {
                    s.offset = s.last_out as i64 + 1 - f.seq as i64;
                    s.last_in = f.seq - 1;
                }
                None => {
                    if let Some((f, _)) = window.last() {
                        s.offset = s.last_out as i64 - f.seq as i64;
                        s.last_in = f.seq;
                    }
                }
            }
            for (f, b) in window.into_iter().skip(i) {
                forward(s, f, b, encoder, now, out);
            }
        }
        None => {
            // The standby has not reached the last trade forwarded yet (or its window has no
            // ids): skip its trades until it has.
            match last {
                Some(until) => {
                    if let Some((f, _)) = window.last() {
                        s.last_in = f.seq;
                    }
                    s.phase = Phase::CatchingUp { until, since: now };
                }
                None => s.phase = Phase::Live,
            }
        }
    }
}

/// Forwards a frame of the primary: holes in its seq stay visible; books and quotes with a
/// hole wait for a fresh snapshot instead.
fn forward(
    s: &mut Stream,
    frame: Frame,
    bytes: Box<[u8]>,
    encoder: &mut Encoder,
    now: u64,
    out: &mut Vec<Out>,
) {
    if frame.seq <= s.last_in {
        return; // already forwarded (overlap with a snapshot or a window)
    }
    let hole = frame.seq > s.last_in + 1 && s.last_in > 0;
    if hole && s.snapshotted() && frame.flags & flags::SNAPSHOT == 0 {
        let from = s.primary.clone();
        s.marked = true;
        out.push(Out::Marker {
            instrument: s.instrument,
            code: StatusCode::Gap,
            detail: format!(
                "{} frames of the {} stream lost between the ingest node and this gateway; taking a fresh snapshot",
                frame.seq - s.last_in - 1,
                s.channel.name()
            ),
            bad_book: s.channel == Channel::Book,
        });
        out.push(Out::Snapshot {
            instrument: s.instrument,
            node: from.as_ref().map(|f| f.node.clone()),
        });
        s.phase = Phase::Waiting {
            from: from.clone(),
            asked_at: now,
            buffer: match from {
                Some(src) => vec![(src, frame, bytes)],
                None => Vec::new(),
            },
        };
        return;
    }
    if hole && s.channel == Channel::Trades {
        out.push(Out::Marker {
            instrument: s.instrument,
            code: StatusCode::Gap,
            detail: format!(
                "{} trades lost between the ingest node and this gateway",
                frame.seq - s.last_in - 1
            ),
            bad_book: false,
        });
    }
    s.last_in = frame.seq;
    if let Some(k) = trade_key(&frame) {
        s.last_trade = Some(k);
    }
    // A stream clients were told is stale or broken is whole again with its first state.
    let whole = s.marked
        && s.snapshotted()
        && (s.channel != Channel::Book || frame.flags & flags::SNAPSHOT != 0);
    let instrument = s.instrument;
    emit(s, frame, bytes, encoder, out);
    if whole {
        s.marked = false;
        out.push(Out::Marker {
            instrument,
            code: StatusCode::Resynced,
            detail: "the stream is whole again".into(),
            bad_book: false,
        });
    }
}

/// Publishes with the stream's offset applied (re-encoding only when it changes `seq`).
fn emit(
    s: &mut Stream,
    mut frame: Frame,
    bytes: Box<[u8]>,
    encoder: &mut Encoder,
    out: &mut Vec<Out>,
) {
    let seq = (frame.seq as i64 + s.offset).max(1) as u64;
    let bytes = if seq == frame.seq {
        bytes
    } else {
        frame.seq = seq;
        encoder.encode(&frame).into()
    };
    s.last_out = s.last_out.max(seq);
    out.push(Out::Publish(frame, bytes));
}

#[cfg(test)]
mod tests {
    use super::*;
    use tickwire_sdk::wire::{
        BookDelta, BookSide, BookSnapshot, Level, Side, Trade, Venue, encode,
    };

    const ID: u32 = 7;

    fn src(node: &str, epoch: u64) -> Source {
        Source {
            node: node.into(),
            epoch,
        }
    }

    /// `f` with its `seq`, and its bytes, as an ingest node publishes it.
    fn sequenced(mut f: Frame, seq: u64) -> (Frame, Box<[u8]>) {
        f.seq = seq;
        let b = encode(&f).into_boxed_slice();
        (f, b)
    }

    fn trade(seq: u64, id: u64) -> (Frame, Box<[u8]>) {
        let f = Frame::new(
            Venue::Binance,
            ID,
            0,
            seq * 10,
            Body::Trade(Trade {
                price: 1,
                qty: 1,
                side: Side::Buy,
                trade_id: TradeId::Num(id),
            }),
        );
        sequenced(f, seq)
    }

    fn delta(seq: u64, price: i64) -> (Frame, Box<[u8]>) {
        let f = Frame::new(
            Venue::Binance,
            ID,
            0,
            seq * 10,
            Body::BookDelta(BookDelta {
                side: BookSide::Bid,
                price,
                qty: 1,
            }),
        );
        sequenced(f, seq)
    }

    fn book(seq: u64) -> (Frame, Box<[u8]>) {
        let mut f = Frame::new(
            Venue::Binance,
            ID,
            0,
            seq * 10,
            Body::BookSnapshot(BookSnapshot {
                bids: vec![Level { price: 5, qty: 1 }],
                asks: vec![],
            }),
        );
        f.flags = flags::SNAPSHOT | flags::LAST;
        sequenced(f, seq)
    }

    /// (seq, trade id or price) of what was published, and the markers.
    fn published(out: &[Out]) -> (Vec<(u64, u64)>, Vec<StatusCode>) {
        let mut p = Vec::new();
        let mut m = Vec::new();
        for o in out {
            match o {
                Out::Publish(f, b) => {
                    let back = tickwire_sdk::wire::to_owned(
                        tickwire_sdk::wire::access(b).expect("valid bytes"),
                    );
                    assert_eq!(&back, f, "bytes and frame agree");
                    let v = match &f.body {
                        Body::Trade(t) => match t.trade_id {
                            TradeId::Num(n) => n,
                            _ => 0,
                        },
                        Body::BookDelta(d) => d.price as u64,
                        _ => 0,
                    };
                    p.push((f.seq, v));
                }
                Out::Marker { code, .. } => m.push(*code),
                Out::Snapshot { .. } => {}
            }
        }
        (p, m)
    }

    #[test]
    fn one_source_passes_through_byte_for_byte() {
        let mut a = Arbiter::new();
        let mut out = Vec::new();
        a.want(ID, Channel::Trades, 0, &mut out);
        let s = src("a", 1);
        for (seq, id) in [(5, 100), (6, 101), (7, 102)] {
            let (f, b) = trade(seq, id);
            let orig = b.clone();
            a.on_frame(&s, f, b, 1, &mut out);
            match out.last() {
                Some(Out::Publish(_, got)) => assert_eq!(got, &orig),
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(published(&out).0, [(5, 100), (6, 101), (7, 102)]);
    }

    #[test]
    fn trades_fail_over_to_the_standby_exactly_after_the_last_forwarded() {
        let mut a = Arbiter::new();
        let mut out = Vec::new();
        a.want(ID, Channel::Trades, 0, &mut out);
        let (pa, pb) = (src("a", 1), src("b", 1));
        // A is primary (first); B runs with its own numbering, a little behind and ahead.
        for (seq, id) in [(1, 100), (2, 101), (3, 102)] {
            let (f, b) = trade(seq, id);
            a.on_frame(&pa, f, b, 1, &mut out);
        }
        for (seq, id) in [(40, 101), (41, 102), (42, 103), (43, 104)] {
            let (f, b) = trade(seq, id);
            a.on_frame(&pb, f, b, 1, &mut out);
        }
        // A goes silent.
        a.on_heartbeat(&pb, NODE_TIMEOUT_NS + 10, &mut out);
        a.tick(NODE_TIMEOUT_NS + 10, true, &mut out);
        let (f, b) = trade(44, 105);
        a.on_frame(&pb, f, b, NODE_TIMEOUT_NS + 20, &mut out);
        let (p, markers) = published(&out);
        assert_eq!(
            p,
            [(1, 100), (2, 101), (3, 102), (4, 103), (5, 104), (6, 105)],
            "every trade once, seq continuous"
        );
        assert!(markers.is_empty(), "{markers:?}");
        // A's late frames are ignored.
        let (f, b) = trade(4, 103);
        let n = out.len();
        a.on_frame(&pa, f, b, NODE_TIMEOUT_NS + 30, &mut out);
        assert_eq!(out.len(), n);
    }

    #[test]
    fn a_lagging_standby_is_caught_up_by_trade_id() {
        let mut a = Arbiter::new();
        let mut out = Vec::new();
        a.want(ID, Channel::Trades, 0, &mut out);
        let (pa, pb) = (src("a", 1), src("b", 1));
        for (seq, id) in [(1, 100), (2, 101), (3, 102)] {
            let (f, b) = trade(seq, id);
            a.on_frame(&pa, f, b, 1, &mut out);
        }
        let (f, b) = trade(9, 100);
        a.on_frame(&pb, f, b, 1, &mut out);
        // A restarts (new epoch): its old incarnation is lost.
        a.on_heartbeat(&src("a", 2), 5, &mut out);
        for (seq, id) in [(10, 101), (11, 102), (12, 103)] {
            let (f, b) = trade(seq, id);
            a.on_frame(&pb, f, b, 6, &mut out);
        }
        let (p, markers) = published(&out);
        assert_eq!(p, [(1, 100), (2, 101), (3, 102), (4, 103)]);
        assert!(markers.is_empty());
    }

    #[test]
    fn a_hole_on_the_primary_shows_in_trades_and_resnapshots_books() {
        let mut a = Arbiter::new();
        let mut out = Vec::new();
        let s = src("a", 1);
        a.want(ID, Channel::Trades, 0, &mut out);
        a.want(ID, Channel::Book, 0, &mut out);
        assert!(a.is_waiting(ID, Channel::Book));
        // A delta arrives before the snapshot answer: buffered.
        let (f, b) = delta(11, 1);
        a.on_frame(&s, f, b, 1, &mut out);
        let (f, b) = book(10);
        a.on_snapshot(&s, ID, vec![(f, b)], 2, &mut out);
        assert!(!a.is_waiting(ID, Channel::Book));
        let (f, b) = delta(12, 2);
        a.on_frame(&s, f, b, 3, &mut out);
        // Hole: 13 is lost.
        let (f, b) = delta(14, 4);
        a.on_frame(&s, f, b, 4, &mut out);
        assert!(a.is_waiting(ID, Channel::Book));
        let (f, b) = book(14);
        a.on_snapshot(&s, ID, vec![(f, b)], 5, &mut out);
        for (seq, id) in [(1, 1), (3, 3)] {
            let (f, b) = trade(seq, id);
            a.on_frame(&s, f, b, 6, &mut out);
        }
        let (p, markers) = published(&out);
        assert_eq!(
            p,
            [(10, 0), (11, 1), (12, 2), (14, 0), (1, 1), (3, 3)],
            "snapshot, deltas, fresh snapshot; trades keep their hole"
        );
        assert_eq!(
            markers,
            [StatusCode::Gap, StatusCode::Resynced, StatusCode::Gap]
        );
    }

    #[test]
    fn books_fail_over_with_a_snapshot_from_the_standby_and_seq_goes_on() {
        let mut a = Arbiter::new();
        let mut out = Vec::new();
        let (pa, pb) = (src("a", 1), src("b", 1));
        a.want(ID, Channel::Book, 0, &mut out);
        let (f, b) = book(10);
        a.on_snapshot(&pa, ID, vec![(f, b)], 1, &mut out);
        let (f, b) = delta(11, 1);
        a.on_frame(&pa, f, b, 1, &mut out);
        let (f, b) = delta(3, 9);
        a.on_frame(&pb, f, b, 1, &mut out);
        out.clear();
        a.tick(NODE_TIMEOUT_NS + 5, true, &mut out); // both silent: both lost...
        assert!(
            out.iter()
                .any(|o| matches!(o, Out::Snapshot { node: None, .. }))
        );
        // ...so the stream waits for any node; B comes back as a new incarnation.
        let pb2 = src("b", 2);
        let (f, b) = book(2);
        out.clear();
        a.on_snapshot(&pb2, ID, vec![(f, b)], NODE_TIMEOUT_NS + 6, &mut out);
        let (f, b) = delta(3, 7);
        a.on_frame(&pb2, f, b, NODE_TIMEOUT_NS + 7, &mut out);
        let (p, markers) = published(&out);
        assert_eq!(p, [(12, 0), (13, 7)], "seq goes on after 11");
        assert_eq!(markers, [StatusCode::Resynced]);
    }

    #[test]
    fn a_node_wrongly_declared_lost_is_taken_back_with_its_next_heartbeat() {
        let mut a = Arbiter::new();
        let mut out = Vec::new();
        let s = src("a", 1);
        a.want(ID, Channel::Trades, 0, &mut out);
        let (f, b) = trade(1, 100);
        a.on_frame(&s, f, b, 1, &mut out);
        a.tick(NODE_TIMEOUT_NS + 10, true, &mut out); // silent too long: lost (no standby)
        let (f, b) = trade(2, 101);
        a.on_frame(&s, f, b, NODE_TIMEOUT_NS + 11, &mut out); // ignored while lost
        a.on_heartbeat(&s, NODE_TIMEOUT_NS + 12, &mut out);
        let (f, b) = trade(3, 102);
        a.on_frame(&s, f, b, NODE_TIMEOUT_NS + 13, &mut out);
        let (p, markers) = published(&out);
        assert_eq!(p, [(1, 100), (3, 102)], "one seq skipped: the hole shows");
        assert_eq!(markers, [StatusCode::Gap]);
    }

    #[test]
    fn link_loss_marks_stale_and_resnapshots_on_return() {
        let mut a = Arbiter::new();
        let mut out = Vec::new();
        let s = src("a", 1);
        a.want(ID, Channel::Quotes, 0, &mut out);
        a.on_snapshot(&s, ID, vec![], 1, &mut out);
        assert!(!a.is_waiting(ID, Channel::Quotes));
        out.clear();
        a.on_link_down(&mut out);
        a.on_link_down(&mut out);
        a.on_link_up(10, &mut out);
        let markers: Vec<_> = out
            .iter()
            .filter_map(|o| match o {
                Out::Marker { code, .. } => Some(*code),
                _ => None,
            })
            .collect();
        assert_eq!(markers, [StatusCode::Stale]);
        assert!(a.is_waiting(ID, Channel::Quotes));
        assert!(out.iter().any(|o| matches!(o, Out::Snapshot { .. })));
    }
}
