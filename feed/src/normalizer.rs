//! The sans-IO normalizer interface: raw venue messages in, frames and driver actions out.
//!
//! A normalizer never touches a socket or a clock. Its driver (see [`crate::driver`]) feeds
//! it each message with the time it was read off the socket, performs the actions it asks for
//! (fetch a REST snapshot, send a message), and forwards the frames. Tests and
//! `tickwire normalize` drive the same code from capture files.

use thiserror::Error;
use tickwire_sdk::wire::{Body, BookDelta, BookSide, DecimalError, Frame, Level, Venue, flags};

/// Something the normalizer needs its driver to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Fetch the venue's REST book snapshot for `symbol`, then call
    /// [`Normalizer::on_snapshot`] with the body (retrying on failure while connected).
    FetchSnapshot {
        /// The venue's symbol.
        symbol: String,
    },
    /// Send this text message to the venue on the current connection.
    Send(String),
    /// Drop the connection and connect again (the venue announced it is going away).
    Reconnect {
        /// Why, for the status frames and logs.
        reason: String,
    },
}

/// What one call produced. Reused between calls: the driver drains it each time.
#[derive(Debug, Default)]
pub struct Output {
    /// Frames, in order, with `seq` and `ts_publish` unset.
    pub frames: Vec<Frame>,
    /// Actions for the driver, in order.
    pub actions: Vec<Action>,
}

impl Output {
    /// An empty output.
    pub fn new() -> Output {
        Output::default()
    }

    /// Empties both lists, keeping their capacity.
    pub fn clear(&mut self) {
        self.frames.clear();
        self.actions.clear();
    }

    /// One BookDelta frame per changed level (absolute quantity, 0 removes), bids then asks,
    /// `LAST` on the final one; every frame also carries `extra` flags (`BAD_BOOK`).
    #[allow(clippy::too_many_arguments)]
    pub fn push_deltas(
        &mut self,
        venue: Venue,
        instrument: u32,
        ts_exchange: u64,
        ts_recv: u64,
        bids: &[Level],
        asks: &[Level],
        extra: u8,
    ) {
        let n = bids.len() + asks.len();
        let sides = bids
            .iter()
            .map(|l| (BookSide::Bid, l))
            .chain(asks.iter().map(|l| (BookSide::Ask, l)));
        for (k, (side, l)) in sides.enumerate() {
            let last = if k + 1 == n { flags::LAST } else { 0 };
            self.frames.push(
                Frame::new(
                    venue,
                    instrument,
                    ts_exchange,
                    ts_recv,
                    Body::BookDelta(BookDelta {
                        side,
                        price: l.price,
                        qty: l.qty,
                    }),
                )
                .with_flags(last | extra),
            );
        }
    }
}

/// Why a message could not be normalized. The message is skipped and counted; a message that
/// leaves a book in doubt also flags that book and starts a resync.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum NormalizeError {
    /// Not valid JSON.
    #[error("malformed JSON: {0}")]
    Json(String),
    /// A field is missing or has the wrong type.
    #[error("{message}: field `{field}` is missing or not {expected}")]
    Field {
        /// The message type being read.
        message: &'static str,
        /// The field.
        field: &'static str,
        /// The type it should have.
        expected: &'static str,
    },
    /// A price or quantity is not an exact decimal in range.
    #[error("{message}: field `{field}` = {text:?}: {error}")]
    Decimal {
        /// The message type being read.
        message: &'static str,
        /// The field.
        field: &'static str,
        /// The offending text (truncated).
        text: String,
        /// What is wrong with it.
        error: DecimalError,
    },
    /// A REST snapshot that cannot be tied to one symbol.
    #[error("book snapshot for an unknown symbol: {0}")]
    Snapshot(String),
    /// The venue rejected a request (subscribe error...).
    #[error("venue error: {0}")]
    Venue(String),
}

/// Counters by message type: every message is either normalized or deliberately ignored, and
/// each outcome is counted under its own key (`trade`, `depthUpdate`, `ignored:kline`,
/// `error:json`...).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Stats {
    /// Messages fed in (WebSocket messages and REST snapshots).
    pub messages: u64,
    /// Frames emitted.
    pub frames: u64,
    /// Messages that failed to normalize.
    pub errors: u64,
    /// Sequence breaks detected (gaps, checksum mismatches, crossed books).
    pub gaps: u64,
    /// Count per outcome key, in first-seen order. A short list scanned linearly: the keys
    /// seen most (the data messages) come first, so counting costs a compare or two.
    counts: Vec<(String, u64)>,
}

impl Stats {
    /// Adds one to the counter `key`.
    #[inline]
    pub fn count(&mut self, key: &str) {
        match self.counts.iter_mut().find(|(k, _)| k == key) {
            Some((_, n)) => *n += 1,
            None => self.counts.push((key.to_string(), 1)),
        }
    }

    /// The counter `key` (0 if never counted).
    pub fn get(&self, key: &str) -> u64 {
        self.counts
            .iter()
            .find(|(k, _)| k == key)
            .map_or(0, |(_, n)| *n)
    }

    /// Books one `on_message` call: the frames it added to `out` since it held
    /// `frames_before`, and a failure under `error:json`, `error:venue` or `error:message`.
    pub fn settle(
        &mut self,
        frames_before: usize,
        out: &Output,
        result: &Result<(), NormalizeError>,
    ) {
        self.frames += out.frames.len().saturating_sub(frames_before) as u64;
        if let Err(e) = result {
            self.errors += 1;
            self.count(match e {
                NormalizeError::Json(_) => "error:json",
                NormalizeError::Venue(_) => "error:venue",
                _ => "error:message",
            });
        }
    }

    /// Refuses a REST book snapshot for a venue whose books sync over the WebSocket: counts
    /// the call as an `error:snapshot` and says `how` the venue's books sync instead.
    pub fn refuse_snapshot(&mut self, symbol: &str, how: &str) -> Result<(), NormalizeError> {
        self.messages += 1;
        self.errors += 1;
        self.count("error:snapshot");
        Err(NormalizeError::Snapshot(format!("{symbol}: {how}")))
    }

    /// Every counter, sorted by key.
    pub fn by_kind(&self) -> Vec<(&str, u64)> {
        let mut v: Vec<(&str, u64)> = self.counts.iter().map(|(k, n)| (k.as_str(), *n)).collect();
        v.sort();
        v
    }
}

/// A venue normalizer with its book builders: sans-IO, one per upstream connection.
pub trait Normalizer: Send {
    /// The venue whose dialect this speaks.
    fn venue(&self) -> Venue;

    /// The connection is up and subscriptions were sent: emits `Connected` statuses and starts
    /// buffering book updates for a fresh sync.
    fn on_connect(&mut self, ts: u64, out: &mut Output);

    /// One message from the venue, read off the socket at `ts_recv` (ns).
    fn on_message(
        &mut self,
        raw: &[u8],
        ts_recv: u64,
        out: &mut Output,
    ) -> Result<(), NormalizeError>;

    /// The body of a REST book snapshot for `symbol`, requested by [`Action::FetchSnapshot`].
    fn on_snapshot(
        &mut self,
        symbol: &str,
        raw: &[u8],
        ts_recv: u64,
        out: &mut Output,
    ) -> Result<(), NormalizeError>;

    /// No message arrived for a while: emits `Stale` statuses (`detail` says how long).
    fn on_stale(&mut self, ts: u64, detail: &str, out: &mut Output);

    /// The connection is gone: emits `Disconnected` statuses and flags every book bad until it
    /// is resynced on the next connection.
    fn on_disconnect(&mut self, ts: u64, reason: &str, out: &mut Output);

    /// Counters so far.
    fn stats(&self) -> &Stats;
}

/// The parsing state of a normalizer with an exact-layout fast path (see [`crate::layout`])
/// in front of its simd-json tape path.
#[derive(Default)]
pub struct Paths {
    /// `None` only while a call is using it (taken out so the normalizer can be borrowed).
    parser: Option<crate::json::TapeParser>,
    /// Try the fast path first (the default; tests switch it off to compare the paths).
    fast_off: bool,
    /// Messages the fast path handled.
    fast_hits: u64,
}

impl Paths {
    /// Turns the fast path on (the default) or off.
    pub fn set_fast(&mut self, on: bool) {
        self.fast_off = !on;
    }

    /// Messages the fast path handled so far.
    pub fn fast_hits(&self) -> u64 {
        self.fast_hits
    }

    /// The tape parser, taken out for a call that parses on its own (a REST body).
    pub fn parser_take(&mut self) -> crate::json::TapeParser {
        self.parser.take().unwrap_or_default()
    }

    /// Puts the parser back after [`Self::parser_take`].
    pub fn parser_put(&mut self, parser: crate::json::TapeParser) {
        self.parser = Some(parser);
    }
}

/// A normalizer that reads a message with its fast path if it can, else through the tape.
pub trait TwoPaths {
    /// Handles `raw` if it has exactly a layout the fast path knows; false (having changed
    /// nothing observable) otherwise.
    fn fast_path(&mut self, raw: &[u8], ts_recv: u64, out: &mut Output) -> bool;

    /// Handles the message parsed onto the tape (every message the fast path declined).
    fn tape_path(
        &mut self,
        root: simd_json::tape::Value<'_, '_>,
        ts_recv: u64,
        out: &mut Output,
    ) -> Result<(), NormalizeError>;

    /// The parsing state.
    fn paths(&mut self) -> &mut Paths;

    /// The counters.
    fn counters(&mut self) -> &mut Stats;

    /// One message through the fast path or the tape, its frames and failure counted.
    fn read_message(
        &mut self,
        raw: &[u8],
        ts_recv: u64,
        out: &mut Output,
    ) -> Result<(), NormalizeError> {
        let before = out.frames.len();
        let result = if !self.paths().fast_off && self.fast_path(raw, ts_recv, out) {
            self.paths().fast_hits += 1;
            Ok(())
        } else {
            let mut parser = self.paths().parser.take().unwrap_or_default();
            let result = parser
                .with(raw, |root| self.tape_path(root, ts_recv, out))
                .and_then(|r| r);
            self.paths().parser = Some(parser);
            result
        };
        self.counters().settle(before, out, &result);
        result
    }
}
