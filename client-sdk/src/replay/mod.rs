//! Replay: a recording read as the stream a live subscription gives, for backtests.
//!
//! A [`Replay`] opens a recording directory (see [`recording`](crate::recording)) memory-mapped,
//! and delivers the frames of the symbols and channels subscribed, in a time range, as
//! batches of zero-copy `&ArchivedFrame` views into the map: the same frame types, the same
//! routing (a subscribed instrument's status and definition frames come with it, as the
//! server sends them) and the same `seq` checking ([`ReplayEvent::Gap`] on a hole) as the
//! live [`Client`](crate::client::Client). Frames come byte for byte as recorded, in recorded
//! order, at full speed ([`Speed::Max`], the default) or paced on their recorded times
//! ([`Speed::Factor`]).
//!
//! - Without an async runtime: [`Replay::next_blocking`] / [`Replay::blocking`], for
//!   backtests at full speed.
//! - With the `client` feature: `Replay::next().await` gives the live client's
//!   [`Event`](crate::client::Event)s, and `Replay` implements
//!   [`FrameSource`](crate::source::FrameSource) beside `Client`, so one strategy runs live
//!   or on a recording (`examples/backtest.rs`).
//!
//! A damaged block comes as a [`CorruptBlock`] item (file and byte offset) in place of its
//! frames, and the replay goes on with the next block.
//!
//! ```
//! use tickwire_sdk::recording::{RecordingWriter, WriterOptions};
//! use tickwire_sdk::replay::{Replay, ReplayEvent, Speed};
//! use tickwire_sdk::wire::{ArchivedBody, Body, Channel, Frame, InstrumentInfo, Side, Trade, TradeId, Venue};
//!
//! // A tiny recording: ten BTCUSDT trades, 1 ms apart.
//! let dir = std::env::temp_dir().join(format!("tickwire-replay-doc-{}", std::process::id()));
//! # let _ = std::fs::remove_dir_all(&dir);
//! let btc = InstrumentInfo::new(Venue::Binance, "BTCUSDT", 2, 5);
//! let mut w = RecordingWriter::create(&dir, WriterOptions::default(), &[btc.clone()])?;
//! for i in 0..10u64 {
//!     let trade = Trade { price: (60_000 + i as i64) * 1_000_000_000, qty: 1_000_000, side: Side::Buy, trade_id: TradeId::Num(i) };
//!     let mut f = Frame::new(Venue::Binance, btc.id, 0, 1_700_000_000_000_000_000 + i * 1_000_000, Body::Trade(trade));
//!     f.seq = i + 1;
//!     w.append_frame(&f)?;
//! }
//! w.close()?;
//!
//! // Replay it at full speed, without an async runtime.
//! let mut replay = Replay::builder(&dir).speed(Speed::Max).open()?;
//! replay.subscribe(&["binance:BTCUSDT"], &[Channel::Trades])?;
//! let mut volume = 0;
//! for event in replay.blocking() {
//!     match event? {
//!         ReplayEvent::Frames(batch) => {
//!             for frame in batch.iter() {
//!                 if let ArchivedBody::Trade(t) = &frame.body {
//!                     volume += t.qty.to_native();
//!                 }
//!             }
//!         }
//!         ReplayEvent::Gap { expected, got, .. } => eprintln!("hole: {expected} due, {got} came"),
//!     }
//! }
//! assert_eq!(volume, 10_000_000);
//! # std::fs::remove_dir_all(&dir)?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod ahead;
mod blocks;
mod error;
#[cfg(feature = "client")]
mod live;
mod pace;
mod select;

use std::collections::VecDeque;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;

pub use error::ReplayError;
pub use pace::Speed;

use self::ahead::ReadAhead;
use self::blocks::{Block, Cut, Reader, read_block};
use self::pace::Pacer;
use self::select::{Pattern, Selection, channel_mask};
use crate::recording::{BlockAt, BlockPos, CorruptBlock, Recording, RecordingError, TimeRange};
use crate::seq::SeqTracker;
use crate::wire::{Batch, Channel, InstrumentInfo, Instruments};

/// What a replay delivers; the live client's [`Event`](crate::client::Event)s of the same
/// names (`From` converts them with the `client` feature).
#[derive(Debug)]
pub enum ReplayEvent {
    /// Recorded frames, in recorded order, as zero-copy views into the recording's map (read
    /// them with [`Batch::iter`]; [`Batch::frame_bytes`] gives each frame's recorded bytes).
    /// At full speed a batch holds the selected frames of one recorded block (up to
    /// 1,024 by default); paced, the frames due by the time it is made.
    Frames(Batch<Bytes>),
    /// A hole in a recorded stream's `seq`: frame `got` came where `expected` was due (the
    /// recording missed frames, or the server had a gap). Comes just before the
    /// [`ReplayEvent::Frames`] that holds frame `got`.
    Gap {
        /// Instrument id of the stream.
        instrument: u32,
        /// Channel of the stream.
        channel: Channel,
        /// The `seq` that was due.
        expected: u64,
        /// The `seq` that arrived.
        got: u64,
    },
}

/// Opens a [`Replay`] with a time range and a speed (see [`Replay::builder`]).
#[derive(Debug, Clone)]
pub struct ReplayBuilder {
    dir: PathBuf,
    range: TimeRange,
    speed: Speed,
    read_ahead: Option<bool>,
}

impl ReplayBuilder {
    /// Replays only frames recorded at or after `ts` (ns since the Unix epoch; a frame's
    /// recorded time is `ts_publish`, else `ts_recv`).
    pub fn from(mut self, ts: u64) -> ReplayBuilder {
        self.range.from = Some(ts);
        self
    }

    /// Replays only frames recorded before `ts` (ns since the Unix epoch).
    pub fn to(mut self, ts: u64) -> ReplayBuilder {
        self.range.to = Some(ts);
        self
    }

    /// Replays only frames recorded in `range` (`[from, to)`, ns since the Unix epoch).
    pub fn range(mut self, range: impl Into<TimeRange>) -> ReplayBuilder {
        self.range = range.into();
        self
    }

    /// Sets the pace (default [`Speed::Max`]).
    pub fn speed(mut self, speed: Speed) -> ReplayBuilder {
        self.speed = speed;
        self
    }

    /// Whether a second thread finds and CRC-checks the next blocks (and takes their page
    /// faults), up to 16 blocks ahead, while the replay walks the current one; the frames,
    /// their order and the damage reported are the same either way. Default: on at
    /// [`Speed::Max`] when the machine has more than one CPU, off when paced (nothing to
    /// gain). It pays on an idle second core (a replay ~25% faster) and costs when the other
    /// cores are busy (~15% slower): see BENCHMARKS.md. When the replay is ahead of the
    /// thread, `next_blocking` and `next().await` wait for it (blocking, for about the time
    /// it takes to check a block). A subscription change or a rewind restarts the thread.
    pub fn read_ahead(mut self, on: bool) -> ReplayBuilder {
        self.read_ahead = Some(on);
        self
    }

    /// Opens the recording: maps its segments and locates their blocks (see
    /// [`Recording::open`]). Nothing is subscribed yet.
    ///
    /// Errors: a path that is not a directory holding segment files
    /// ([`ReplayError::NotFound`], saying what to pass), an unreadable segment header, a
    /// speed factor that is not a positive number.
    pub fn open(self) -> Result<Replay, ReplayError> {
        if let Speed::Factor(f) = self.speed
            && (f.is_nan() || f <= 0.0)
        {
            return Err(ReplayError::BadSpeed(f));
        }
        check_dir(&self.dir)?;
        let rec = Arc::new(Recording::open(&self.dir)?);
        if rec.segments().len() == 0 {
            return Err(ReplayError::NotFound {
                dir: self.dir,
                reason: "the directory holds no seg-*.twrec file".into(),
            });
        }
        let segments = (0..rec.segments().len())
            .map(|i| {
                if rec.segment_bytes(i).is_empty() {
                    Bytes::new()
                } else {
                    Bytes::from_owner(SegmentMap {
                        rec: rec.clone(),
                        segment: i,
                    })
                }
            })
            .collect();
        let mut instruments = Instruments::new();
        for info in rec.instruments() {
            instruments.insert(info);
        }
        let read_ahead = self.read_ahead.unwrap_or_else(|| {
            self.speed == Speed::Max
                && std::thread::available_parallelism().is_ok_and(|n| n.get() > 1)
        });
        Ok(Replay {
            rec,
            segments,
            read_ahead,
            ahead: None,
            ahead_done: false,
            range: self.range,
            speed: self.speed,
            pacer: Pacer::new(self.speed),
            select: Selection::default(),
            pos: BlockPos::default(),
            block: None,
            pending: VecDeque::new(),
            seq: SeqTracker::new(),
            instruments,
            delivered: 0,
        })
    }
}

/// Says what is wrong with a path that is not a recording directory.
fn check_dir(dir: &Path) -> Result<(), ReplayError> {
    let not_found = |reason: String| ReplayError::NotFound {
        dir: dir.to_path_buf(),
        reason,
    };
    match std::fs::metadata(dir) {
        Ok(m) if m.is_dir() => Ok(()),
        Ok(_) => {
            let parent = dir
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
                .unwrap_or(Path::new("."));
            Err(not_found(format!(
                "it is a file, not a directory (for a segment file, pass {})",
                parent.display()
            )))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            Err(not_found("the directory does not exist".into()))
        }
        Err(e) => Err(RecordingError::Io {
            action: "open",
            path: dir.to_path_buf(),
            source: e,
        }
        .into()),
    }
}

/// One segment's map, owned by the `Bytes` that batches hold: a batch keeps the recording
/// mapped for as long as it lives.
struct SegmentMap {
    rec: Arc<Recording>,
    segment: usize,
}

impl AsRef<[u8]> for SegmentMap {
    fn as_ref(&self) -> &[u8] {
        self.rec.segment_bytes(self.segment)
    }
}

/// What [`Replay::advance`] found.
enum Next {
    Event(Result<ReplayEvent, CorruptBlock>),
    /// Nothing is due before this instant.
    Wait(Instant),
    End,
}

/// A recording replayed as a stream: subscribe to symbols and channels as on a live
/// connection, then read [`ReplayEvent`]s (or, with the `client` feature, the live client's
/// `Event`s with `next().await`).
///
/// The batches point into the recording's memory map (no copy) and keep it mapped while they
/// live. Reading at full speed, the work per frame is one validation (`access`: a few tag
/// checks for trades, quotes and deltas), the time and subscription check and the `seq`
/// check; each block's CRC is checked before any of its frames is delivered, by the
/// read-ahead thread when there is one ([`ReplayBuilder::read_ahead`]).
///
/// Subscriptions may change while replaying: a change applies to the blocks read after it
/// (frames of the block being delivered, at most one block ahead, come as selected before,
/// like frames in flight on a live connection).
pub struct Replay {
    rec: Arc<Recording>,
    /// Each segment's map as `Bytes` (empty for an empty file).
    segments: Vec<Bytes>,
    /// Find blocks on a second thread ([`ReplayBuilder::read_ahead`]).
    read_ahead: bool,
    /// The read-ahead thread, once started (restarted from `pos` after a subscription
    /// change or a rewind).
    ahead: Option<ReadAhead>,
    /// The read-ahead thread ended (at the end of the range, or failed): not restarted until
    /// a subscription change or a rewind.
    ahead_done: bool,
    range: TimeRange,
    speed: Speed,
    pacer: Pacer,
    select: Selection,
    pos: BlockPos,
    block: Option<Block>,
    pending: VecDeque<Result<ReplayEvent, CorruptBlock>>,
    seq: SeqTracker,
    instruments: Instruments,
    delivered: u64,
}

impl fmt::Debug for Replay {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Replay")
            .field("dir", &self.rec.dir())
            .field("range", &self.range)
            .field("speed", &self.speed)
            .field("read_ahead", &self.read_ahead)
            .field("delivered", &self.delivered)
            .finish_non_exhaustive()
    }
}

impl Replay {
    /// Opens the recording in `dir` to replay all of it at full speed (see
    /// [`ReplayBuilder::open`] for the errors).
    pub fn open(dir: impl AsRef<Path>) -> Result<Replay, ReplayError> {
        Replay::builder(dir).open()
    }

    /// A builder to set the time range and speed before opening `dir`.
    pub fn builder(dir: impl AsRef<Path>) -> ReplayBuilder {
        ReplayBuilder {
            dir: dir.as_ref().to_path_buf(),
            range: TimeRange::ALL,
            speed: Speed::Max,
            read_ahead: None,
        }
    }

    /// Subscribes to `channels` of `symbols`, as [`Client::subscribe`] does: symbols are
    /// `venue:SYMBOL` (or the server's patterns `venue:*`, `*:SYMBOL`, `*`, matched against
    /// the instruments the recording lists); no channel means all of `trades`, `quotes` and
    /// `book`. A subscribed instrument's status and definition frames come with any of its
    /// channels.
    ///
    /// A symbol (or pattern) the recording does not hold is an error that lists what it
    /// holds; then nothing of the request is subscribed.
    ///
    /// [`Client::subscribe`]: crate::client::Client::subscribe
    pub fn subscribe(&mut self, symbols: &[&str], channels: &[Channel]) -> Result<(), ReplayError> {
        let ids = self.resolve(symbols)?;
        let mask = channel_mask(channels);
        for id in ids {
            self.select.add(id, mask);
        }
        self.restart_ahead();
        Ok(())
    }

    /// Unsubscribes `channels` of `symbols` (every channel if `channels` is empty), as
    /// [`Client::unsubscribe`] does: the streams' `seq` baselines are forgotten, and an
    /// instrument with no channel left loses its control frames too.
    ///
    /// [`Client::unsubscribe`]: crate::client::Client::unsubscribe
    pub fn unsubscribe(
        &mut self,
        symbols: &[&str],
        channels: &[Channel],
    ) -> Result<(), ReplayError> {
        let ids = self.resolve(symbols)?;
        let mask = channel_mask(channels);
        for id in ids {
            for c in Channel::SUBSCRIBABLE {
                if mask & c.bit() != 0 {
                    self.seq.forget(id, c);
                }
            }
            if self.select.remove(id, mask) {
                self.seq.forget(id, Channel::Control);
            }
        }
        self.restart_ahead();
        Ok(())
    }

    /// The instrument ids of names and patterns, each resolved against the recording.
    fn resolve(&self, symbols: &[&str]) -> Result<Vec<u32>, ReplayError> {
        let mut ids = Vec::new();
        for name in symbols {
            match Pattern::parse(name) {
                Ok(Some(pattern)) => {
                    let all = self.rec.instruments();
                    let before = ids.len();
                    ids.extend(all.iter().filter(|i| pattern.matches(i)).map(|i| i.id));
                    if ids.len() == before {
                        return Err(RecordingError::UnknownInstrument {
                            name: name.to_string(),
                            known: known_list(&all),
                        }
                        .into());
                    }
                }
                Ok(None) => ids.push(self.rec.resolve(name)?),
                Err(reason) => {
                    return Err(RecordingError::UnknownInstrument {
                        name: format!("{name} ({reason})"),
                        known: known_list(&self.rec.instruments()),
                    }
                    .into());
                }
            }
        }
        Ok(ids)
    }

    /// The subscribed streams: (instrument id, channel), in no particular order.
    pub fn subscriptions(&self) -> impl Iterator<Item = (u32, Channel)> + '_ {
        self.select.iter().flat_map(|(id, mask)| {
            Channel::SUBSCRIBABLE
                .into_iter()
                .filter(move |c| mask & c.bit() != 0)
                .map(move |c| (id, c))
        })
    }

    /// The next event, waiting (with `std::thread::sleep`) until it is due when paced;
    /// `None` at the end of the recording or of the time range. A damaged block comes as a
    /// [`CorruptBlock`] (file and byte offset) in place of its frames; the next call goes on.
    pub fn next_blocking(&mut self) -> Option<Result<ReplayEvent, CorruptBlock>> {
        let mut now = Instant::now();
        loop {
            match self.advance(now) {
                Next::Event(e) => return Some(e),
                Next::End => return None,
                Next::Wait(until) => {
                    std::thread::sleep(until.saturating_duration_since(Instant::now()));
                    now = Instant::now();
                }
            }
        }
    }

    /// The events as a blocking iterator (see [`next_blocking`](Self::next_blocking)).
    pub fn blocking(&mut self) -> Blocking<'_> {
        Blocking { replay: self }
    }

    /// The next thing to do at `now`: an event, a wait, or the end.
    fn advance(&mut self, now: Instant) -> Next {
        loop {
            if let Some(e) = self.pending.pop_front() {
                return Next::Event(e);
            }
            let Some(block) = self.block.as_mut() else {
                let at = match self.find_block() {
                    None => return Next::End,
                    Some(Err(damage)) => return Next::Event(Err(damage)),
                    Some(Ok(at)) => at,
                };
                let reader = Reader {
                    rec: &self.rec,
                    segments: &self.segments,
                    range: &self.range,
                    select: &self.select,
                    keep_ts: self.pacer.is_paced(),
                    seq: &mut self.seq,
                    instruments: &mut self.instruments,
                };
                self.block = Some(read_block(reader, at.payload(&self.rec)));
                continue;
            };
            let (start, mut end) = match block.cut() {
                Cut::Done => {
                    self.block = None;
                    continue;
                }
                Cut::Damage(d) => return Next::Event(Err(d)),
                Cut::Frames { start, end } => (start, end),
            };
            if self.pacer.is_paced() {
                let due = self.pacer.due(block.ts(start), now);
                if due > now {
                    return Next::Wait(due);
                }
                let mut last = start + 1;
                while last < end && self.pacer.due(block.ts(last), now) <= now {
                    last += 1;
                }
                end = last;
            }
            while let Some(h) = block.hole_before(end) {
                self.pending.push_back(Ok(ReplayEvent::Gap {
                    instrument: h.instrument,
                    channel: h.channel,
                    expected: h.expected,
                    got: h.got,
                }));
            }
            let batch = block.take(start, end);
            self.delivered += batch.len() as u64;
            self.pending.push_back(Ok(ReplayEvent::Frames(batch)));
        }
    }

    /// The next block that may hold selected frames (its CRC checked), or damage in its
    /// place; from the read-ahead thread when there is one, else read here.
    fn find_block(&mut self) -> Option<Result<BlockAt, CorruptBlock>> {
        if self.read_ahead && self.ahead.is_none() && !self.ahead_done {
            self.ahead =
                ReadAhead::start(self.rec.clone(), self.pos, self.range, self.select.clone());
            self.ahead_done = self.ahead.is_none();
        }
        if let Some(ahead) = &self.ahead {
            match ahead.next() {
                Some(next) => {
                    self.pos = next.pos;
                    if next.found.is_none() {
                        self.ahead = None;
                        self.ahead_done = true;
                    }
                    return next.found;
                }
                // The thread is gone (it panicked): go on here from the last position.
                None => {
                    self.ahead = None;
                    self.ahead_done = true;
                }
            }
        }
        let select = &self.select;
        self.rec
            .next_frames_block(&mut self.pos, &self.range, |ids| !select.may_match_any(ids))
            .map(|found| found.map(|payload| payload.at()))
    }

    /// Stops the read-ahead thread, if any, so that the next block is found with the
    /// current subscriptions from the current position.
    fn restart_ahead(&mut self) {
        self.ahead = None;
        self.ahead_done = false;
    }

    /// Starts again from the beginning of the time range: `seq` baselines are forgotten (the
    /// hole count stays), pacing restarts, subscriptions stay.
    pub fn rewind(&mut self) {
        self.restart_ahead();
        self.pos = BlockPos::default();
        self.block = None;
        self.pending.clear();
        self.seq.clear();
        self.pacer.reset();
    }

    /// The recording being replayed (its segments, instruments, ...).
    pub fn recording(&self) -> &Recording {
        &self.rec
    }

    /// What the instrument ids stand for: every instrument the recording lists, updated by
    /// the Definition frames delivered (and those of the block being delivered).
    pub fn instruments(&self) -> &Instruments {
        &self.instruments
    }

    /// The sequence state of every stream delivered (holes found so far: `seq().holes()`),
    /// counting the frames of the block being delivered (read ahead by at most one block).
    pub fn seq(&self) -> &SeqTracker {
        &self.seq
    }

    /// The time range replayed (`[from, to)`, ns since the Unix epoch).
    pub fn range(&self) -> TimeRange {
        self.range
    }

    /// The pace.
    pub fn speed(&self) -> Speed {
        self.speed
    }

    /// Frames delivered so far (since opening; a rewind does not reset it).
    pub fn delivered(&self) -> u64 {
        self.delivered
    }
}

/// The names of `all` for an error message (at most 20, then how many more).
fn known_list(all: &[InstrumentInfo]) -> String {
    if all.is_empty() {
        return "none".into();
    }
    let mut known: Vec<String> = all.iter().take(20).map(|i| i.qualified()).collect();
    if all.len() > known.len() {
        known.push(format!("and {} more", all.len() - known.len()));
    }
    known.join(", ")
}

/// [`Replay::blocking`]: the events of a replay as an iterator, pacing with
/// `std::thread::sleep`.
#[derive(Debug)]
pub struct Blocking<'a> {
    replay: &'a mut Replay,
}

impl Iterator for Blocking<'_> {
    type Item = Result<ReplayEvent, CorruptBlock>;

    fn next(&mut self) -> Option<Self::Item> {
        self.replay.next_blocking()
    }
}

#[cfg(test)]
mod tests {
    /// A replay (with its read-ahead thread) moves to another thread or task, as a backtest
    /// spawned on a runtime needs.
    #[test]
    fn a_replay_is_send() {
        fn send<T: Send>() {}
        send::<super::Replay>();
        send::<super::ReplayEvent>();
    }
}
