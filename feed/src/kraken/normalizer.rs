//! Kraken spot messages -> frames, WebSocket v2 (objects) and v1 (arrays), told apart by
//! their first byte.
//!
//! v1 (`wss://ws.kraken.com`, docs.kraken.com "Spot WebSocket v1"): channel messages are
//! arrays `[channelID, payload, (payload,) channelName, pair]`: `book-<depth>` (snapshot
//! `as`/`bs`; updates `a`/`b`, possibly in two objects, the checksum `c` in the last one;
//! levels `[price, volume, timestamp, ("r")]`), `trade` (`[price, volume, time, side,
//! orderType, misc]`), `ticker` (best `a`/`b` as `[price, wholeLotVolume, lotVolume]`).
//! Events are objects with `event`: `heartbeat`, `pong`, `systemStatus`,
//! `subscriptionStatus` (whose `connectionID` may exceed i64::MAX), `error`.
//!
//! v2 (`wss://ws.kraken.com/v2`, docs.kraken.com "Spot WebSocket v2"): objects with
//! `channel` (`book`, `trade`, `ticker`, `instrument`, `heartbeat`, `status`) and `type`
//! (`snapshot`/`update`), or method replies (`subscribe`/`unsubscribe` acks and errors,
//! `pong`). Prices and quantities are JSON numbers: their text is read as written and parsed
//! straight to fixed point. The v2 book checksum formats them at the pair's precision, which
//! the `instrument` channel gives (`price_precision`, `qty_precision`); without it the most
//! fractional digits seen in the pair's data stand in (counted `checksum:learned_precision`).
//!
//! Integrity: after each book update the checksum is verified (and the book must not be
//! crossed). On a mismatch the update's frames are flagged `BAD_BOOK`, a `Gap` status is
//! emitted, and the book is resynced by unsubscribing and resubscribing that pair's book (the
//! venue has no other way to get a fresh snapshot); updates are dropped until the snapshot
//! arrives, which is emitted whole and followed by `Resynced`. v2 trade ids are sequential per
//! pair: a hole is a `Gap` status on the trades stream.

use std::collections::HashMap;

use tickwire_sdk::wire::{
    Body, BookDelta, BookSide, DecimalError, Frame, Parsed, Quote, Side, StatusCode, Trade,
    TradeId, Venue, flags, parse_decimal,
};

use super::book::{ChecksumFormat, KLevel, KrakenBook};
use super::scan::{Scan, epoch_secs_to_ns, parse_u64, rfc3339_to_ns};
use crate::json::Precision;
use crate::layout::Cursor;
use crate::normalizer::{Action, NormalizeError, Normalizer, Output, Stats};
use crate::symbols::{SymbolIndex, SymbolTable};

/// Which API a pair's stream speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// WebSocket v1: arrays, `XBT/USD`.
    V1,
    /// WebSocket v2: objects, `BTC/USD`.
    V2,
}

/// Book depth Kraken uses when a subscription does not give one.
pub const DEFAULT_DEPTH: usize = 10;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BookState {
    /// No snapshot yet on this connection.
    Empty,
    /// Verified and applied up to the last update.
    Live,
    /// Broken; waiting for the snapshot the resubscription brings.
    Resyncing,
}

#[derive(Debug)]
struct Pair {
    dialect: Dialect,
    /// Subscribed book depth (levels per side).
    depth: usize,
    book: KrakenBook,
    state: BookState,
    /// The book was flagged bad (gap or disconnect): the next snapshot reports `Resynced`.
    flagged: bool,
    /// Last v2 trade id seen.
    last_trade_id: Option<u64>,
    /// (price, qty) precision from the v2 `instrument` channel.
    precision: Option<(u8, u8)>,
}

/// One level change, in message order.
#[derive(Debug, Clone, Copy)]
struct Upd {
    side: BookSide,
    level: KLevel,
}

/// One trade, parsed before any frame is emitted.
#[derive(Debug, Clone, Copy)]
struct TradeRow {
    price: Parsed,
    qty: Parsed,
    ts: u64,
    side: Side,
    id: Option<u64>,
}

/// The Kraken spot normalizer (v1 and v2) with its book builders. One per connection.
pub struct KrakenNormalizer {
    symbols: SymbolTable,
    pairs: Vec<Pair>,
    stats: Stats,
    default_depth: usize,
    /// Scratch: the level changes of the message being read.
    updates: Vec<Upd>,
    /// Scratch: the trades of the message being read.
    trades: Vec<TradeRow>,
    /// v2 `instrument` precisions by symbol, for pairs not seen yet.
    instruments: HashMap<String, (u8, u8)>,
    /// v1 channel ids and the pair each was last seen with (checked against the pair's name
    /// on every use), so a v1 message's pair is found without hashing its name.
    channels: Vec<(u64, SymbolIndex)>,
    /// The exact-layout fast path is off (tests switch it off to compare the paths).
    fast_off: bool,
    /// Messages the fast path handled.
    fast_hits: u64,
}

fn field(message: &'static str, field: &'static str, expected: &'static str) -> NormalizeError {
    NormalizeError::Field {
        message,
        field,
        expected,
    }
}

/// Decimal text -> fixed point, naming the field on error.
#[inline]
fn dec(text: &[u8], message: &'static str, field: &'static str) -> Result<Parsed, NormalizeError> {
    parse_decimal(text).map_err(|error| NormalizeError::Decimal {
        message,
        field,
        text: String::from_utf8_lossy(&text[..text.len().min(40)]).into_owned(),
        error,
    })
}

/// A price (> 0) and a quantity (>= 0).
#[inline]
fn price_qty(
    p: &[u8],
    q: &[u8],
    message: &'static str,
) -> Result<(Parsed, Parsed), NormalizeError> {
    let price = dec(p, message, "price")?;
    let qty = dec(q, message, "qty")?;
    if price.value <= 0 || qty.value < 0 {
        return Err(field(
            message,
            "price",
            "a positive price and a non-negative quantity",
        ));
    }
    Ok((price, qty))
}

/// A book level's price and quantity: like [`price_qty`], but values beyond the frame's i64
/// range are kept (as i128) rather than refused.
#[inline]
fn level_pq(p: &[u8], q: &[u8], message: &'static str) -> Result<KLevel, NormalizeError> {
    let price = wide(p, message, "price")?;
    let qty = wide(q, message, "qty")?;
    if price.0 <= 0 || qty.0 < 0 {
        return Err(field(
            message,
            "price",
            "a positive price and a non-negative quantity",
        ));
    }
    Ok(KLevel {
        price: price.0,
        qty: qty.0,
        price_dec: price.1,
        qty_dec: qty.1,
    })
}

/// Decimal text -> (1e-9 units, fractional digits), in i128 when i64 overflows.
#[inline]
fn wide(text: &[u8], message: &'static str, f: &'static str) -> Result<(i128, u8), NormalizeError> {
    match parse_decimal(text) {
        Ok(p) => Ok((p.value as i128, p.decimals)),
        Err(DecimalError::Overflow) => {
            // Plain `digits[.digits]` only; up to 9 fractional digits.
            let (int, frac) = match text.iter().position(|&c| c == b'.') {
                Some(i) => (&text[..i], &text[i + 1..]),
                None => (text, &[][..]),
            };
            let ok = !int.is_empty()
                && int.len() <= 27
                && frac.len() <= 9
                && int.iter().chain(frac).all(u8::is_ascii_digit);
            if !ok {
                return dec(text, message, f).map(|p| (p.value as i128, p.decimals));
            }
            let mut v: i128 = 0;
            for &c in int {
                v = v * 10 + (c - b'0') as i128;
            }
            for k in 0..9 {
                v = v * 10 + frac.get(k).map_or(0, |c| (c - b'0') as i128);
            }
            Ok((v, frac.len() as u8))
        }
        Err(_) => dec(text, message, f).map(|p| (p.value as i128, p.decimals)),
    }
}

fn utf8<'a>(
    b: &'a [u8],
    message: &'static str,
    f: &'static str,
) -> Result<&'a str, NormalizeError> {
    std::str::from_utf8(b).map_err(|_| field(message, f, "UTF-8 text"))
}

/// The string at `p`, if any.
fn text_at<'a>(s: Scan<'a>, p: Option<usize>) -> Result<Option<&'a [u8]>, NormalizeError> {
    p.map(|p| s.at(p).string()).transpose()
}

/// The decimal (number or string) at `p`, which is required.
fn num_at<'a>(
    s: Scan<'a>,
    p: Option<usize>,
    message: &'static str,
    f: &'static str,
) -> Result<&'a [u8], NormalizeError> {
    s.at(p.ok_or(field(message, f, "a number"))?).decimal_text()
}

/// A JSON string literal for `s` (symbols in the messages we send).
fn quoted(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| "\"\"".to_string())
}

impl KrakenNormalizer {
    /// A v2 normalizer (`BTC/USD`); `symbols` are announced up front so connection statuses
    /// can name them. `depth` is the book depth subscribed (acks override it per pair).
    pub fn v2(symbols: &[String], depth: usize) -> KrakenNormalizer {
        Self::new(Dialect::V2, symbols, depth)
    }

    /// A v1 normalizer (`XBT/USD`); the depth is also read from each book message's
    /// `channelName` (`book-1000`).
    pub fn v1(symbols: &[String], depth: usize) -> KrakenNormalizer {
        Self::new(Dialect::V1, symbols, depth)
    }

    /// A normalizer whose pre-announced symbols speak `dialect`. Either dialect is understood
    /// on any message.
    pub fn new(dialect: Dialect, symbols: &[String], depth: usize) -> KrakenNormalizer {
        let mut n = KrakenNormalizer {
            symbols: SymbolTable::new(Venue::Kraken),
            pairs: Vec::new(),
            stats: Stats::default(),
            default_depth: depth.max(1),
            updates: Vec::new(),
            trades: Vec::new(),
            instruments: HashMap::new(),
            channels: Vec::new(),
            fast_off: false,
            fast_hits: 0,
        };
        for s in symbols {
            n.intern(s, dialect);
        }
        n
    }

    /// Turns the exact-layout fast path on or off (on by default). Off, every message goes
    /// through the general scanner path; the output is the same either way.
    pub fn set_fast_path(&mut self, on: bool) {
        self.fast_off = !on;
    }

    /// Messages handled by the exact-layout fast path so far.
    pub fn fast_hits(&self) -> u64 {
        self.fast_hits
    }

    /// The book of `symbol` while it is verified and live (for tests and checks).
    pub fn book(&self, symbol: &str) -> Option<&KrakenBook> {
        let i = self.symbols.find(symbol)?;
        let p = &self.pairs[i];
        (p.state == BookState::Live).then_some(&p.book)
    }

    /// The (price, qty) precision known for `symbol` from the `instrument` channel.
    pub fn precision(&self, symbol: &str) -> Option<(u8, u8)> {
        let i = self.symbols.find(symbol)?;
        self.pairs[i].precision
    }

    fn intern(&mut self, symbol: &str, dialect: Dialect) -> SymbolIndex {
        let i = self.symbols.intern(symbol);
        if i == self.pairs.len() {
            self.pairs.push(Pair {
                dialect,
                depth: self.default_depth,
                book: KrakenBook::new(),
                state: BookState::Empty,
                flagged: false,
                last_trade_id: None,
                precision: self.instruments.get(symbol).copied(),
            });
        }
        self.pairs[i].dialect = dialect;
        i
    }

    fn intern_bytes(
        &mut self,
        symbol: &[u8],
        dialect: Dialect,
        message: &'static str,
    ) -> Result<SymbolIndex, NormalizeError> {
        let s = utf8(symbol, message, "symbol")?;
        if s.is_empty() {
            return Err(field(message, "symbol", "a non-empty pair name"));
        }
        Ok(self.intern(s, dialect))
    }

    fn dispatch(&mut self, raw: &[u8], ts: u64, out: &mut Output) -> Result<(), NormalizeError> {
        let mut s = Scan::new(raw);
        match s.peek() {
            Some(b'[') => self.v1_channel(s, ts, out),
            Some(b'{') => self.object(s, ts, out),
            _ => Err(NormalizeError::Json(
                "expected a JSON array (v1 channel message) or object".into(),
            )),
        }
    }

    // ---------------------------------------------------------------- exact-layout fast path

    /// The exact-layout fast path (see [`crate::layout`]) for the data messages of both
    /// dialects, compact and in the documented key order: v1 `book-N` snapshots and updates
    /// (one or two update objects, the checksum in the last, levels with or without the
    /// republish flag `"r"`), `trade` and `ticker` arrays; v2 `book`, `trade` and `ticker`
    /// channel messages. The whole message is read before anything changes; on anything else
    /// (another layout, an escape, an exponent, a value the scanner path would refuse) it
    /// returns false having changed nothing but scratch space, and the scanner path, which
    /// also words the errors, handles the message with the same result. Strings must be
    /// printable ASCII (symbols, times and decimals always are); others go to the scanner.
    fn fast(&mut self, raw: &[u8], ts: u64, out: &mut Output) -> bool {
        match raw.first() {
            Some(b'[') => self.fast_v1(raw, ts, out).is_some(),
            Some(b'{') => self.fast_v2(raw, ts, out).is_some(),
            _ => false,
        }
    }

    fn fast_v1(&mut self, raw: &[u8], ts: u64, out: &mut Output) -> Option<()> {
        let mut c = Cursor::new(raw);
        c.lit(b"[")?;
        let channel = c.u64()?;
        c.lit(b",")?;
        if c.peek(b"{\"as\":") || c.peek(b"{\"a\":[[") || c.peek(b"{\"b\":") {
            let (snapshot, checksum, ts_ex, precision) = fast_v1_book(&mut c, &mut self.updates)?;
            let (name, pair) = fast_v1_tail(&mut c)?;
            let depth = parse_u64(name.strip_prefix("book-")?.as_bytes()).filter(|&d| d > 0)?;
            // As the scanner path, from here on.
            let i = self.intern_channel(channel, pair);
            self.pairs[i].depth = depth as usize;
            self.stats.count(if snapshot {
                "book_snapshot"
            } else {
                "book_update"
            });
            let inst = self
                .symbols
                .announce(i, precision.price, precision.qty, ts, out);
            if snapshot {
                self.apply_snapshot(i, inst, None, ts_ex, ts, out);
            } else {
                self.apply_update(i, inst, checksum, ts_ex, ts, out);
            }
        } else if c.peek(b"[") {
            fast_v1_trades(&mut c, &mut self.trades)?;
            let (name, pair) = fast_v1_tail(&mut c)?;
            if name != "trade" {
                return None;
            }
            self.stats.count("trade");
            let i = self.intern_channel(channel, pair);
            self.emit_trades(i, false, ts, out);
        } else {
            let [(ap, aq), (bp, bq)] = fast_v1_ticker(&mut c)?;
            let (name, pair) = fast_v1_tail(&mut c)?;
            if name != "ticker" {
                return None;
            }
            self.stats.count("ticker");
            let i = self.intern_channel(channel, pair);
            self.emit_quote(i, bp, bq, ap, aq, 0, ts, out);
        }
        Some(())
    }

    /// The pair of a v1 message on `channel`: the pair last seen on that channel if it has
    /// this name, else interned (and remembered for the channel).
    #[inline]
    fn intern_channel(&mut self, channel: u64, pair: &str) -> SymbolIndex {
        let slot = self.channels.iter().position(|&(c, _)| c == channel);
        if let Some(k) = slot {
            let i = self.channels[k].1;
            if self.symbols.get(i).symbol == pair {
                self.pairs[i].dialect = Dialect::V1;
                return i;
            }
        }
        let i = self.intern(pair, Dialect::V1);
        match slot {
            Some(k) => self.channels[k].1 = i,
            None if self.channels.len() < 256 => self.channels.push((channel, i)),
            None => {}
        }
        i
    }

    fn fast_v2(&mut self, raw: &[u8], ts: u64, out: &mut Output) -> Option<()> {
        let mut c = Cursor::new(raw);
        c.lit(b"{\"channel\":\"")?;
        let channel = c.ascii_str_body()?;
        c.lit(b",\"type\":\"")?;
        let snapshot = if c.opt_lit(b"update\"") {
            false
        } else if c.opt_lit(b"snapshot\"") {
            true
        } else {
            return None;
        };
        c.lit(b",\"data\":[{\"symbol\":\"")?;
        let symbol = c.ascii_str_body()?;
        if symbol.is_empty() {
            return None;
        }
        match channel {
            "book" => {
                let (checksum, ts_ex, precision) = fast_v2_book(&mut c, &mut self.updates)?;
                c.lit(b"]}")?;
                c.end()?;
                self.stats.count(if snapshot {
                    "book_snapshot"
                } else {
                    "book_update"
                });
                let i = self.intern(symbol, Dialect::V2);
                let (pp, qp) = match self.pairs[i].precision {
                    Some((p, q)) => (p.max(precision.price), q.max(precision.qty)),
                    None => (precision.price, precision.qty),
                };
                let inst = self.symbols.announce(i, pp, qp, ts, out);
                if snapshot {
                    self.apply_snapshot(i, inst, Some(checksum), ts_ex, ts, out);
                } else {
                    self.apply_update(i, inst, Some(checksum), ts_ex, ts, out);
                }
            }
            "trade" => {
                fast_v2_trades(&mut c, symbol, &mut self.trades)?;
                c.end()?;
                self.stats
                    .count(if snapshot { "trade_snapshot" } else { "trade" });
                let i = self.intern(symbol, Dialect::V2);
                self.emit_trades(i, snapshot, ts, out);
            }
            "ticker" => {
                let ([bp, bq, ap, aq], ts_ex) = fast_v2_ticker(&mut c)?;
                c.lit(b"]}")?;
                c.end()?;
                self.stats.count("ticker");
                let i = self.intern(symbol, Dialect::V2);
                self.emit_quote(i, bp, bq, ap, aq, ts_ex, ts, out);
            }
            _ => return None,
        }
        Some(())
    }

    // ---------------------------------------------------------------- v1 channel messages

    fn v1_channel(
        &mut self,
        mut s: Scan<'_>,
        ts: u64,
        out: &mut Output,
    ) -> Result<(), NormalizeError> {
        const M: &str = "v1 channel message";
        s.begin_array()?;
        if !s.next_elem()? {
            return Err(field(M, "channelID", "a channel id first"));
        }
        s.u64()?;
        // Record where the remaining elements start: payload(s), channelName, pair.
        let mut pos = [0usize; 5];
        let mut n = 0;
        while s.next_elem()? {
            if n == pos.len() {
                return Err(field(
                    M,
                    "payload",
                    "at most 3 payloads, a channel name and a pair",
                ));
            }
            s.peek();
            pos[n] = s.pos();
            s.skip()?;
            n += 1;
        }
        if n < 3 {
            return Err(field(
                M,
                "channelName",
                "a payload, a channel name and a pair",
            ));
        }
        let name = s.at(pos[n - 2]).string()?;
        let pair = s.at(pos[n - 1]).string()?;
        let payloads = &pos[..n - 2];
        if name.starts_with(b"book") {
            let depth = match name.strip_prefix(b"book-") {
                Some(d) => parse_u64(d).filter(|&d| d > 0).ok_or(field(
                    M,
                    "channelName",
                    "`book-<depth>`",
                ))? as usize,
                None => self.default_depth,
            };
            let i = self.intern_bytes(pair, Dialect::V1, M)?;
            self.pairs[i].depth = depth;
            let r = self.v1_book_parse(s, payloads);
            match r {
                Ok((snapshot, checksum, ts_ex, precision)) => {
                    self.stats.count(if snapshot {
                        "book_snapshot"
                    } else {
                        "book_update"
                    });
                    let inst = self
                        .symbols
                        .announce(i, precision.price, precision.qty, ts, out);
                    if snapshot {
                        self.apply_snapshot(i, inst, None, ts_ex, ts, out);
                    } else {
                        self.apply_update(i, inst, checksum, ts_ex, ts, out);
                    }
                    Ok(())
                }
                Err(e) => {
                    self.stats.count("book_update");
                    self.break_book(i, format!("unreadable book message: {e}"), ts, out);
                    Err(e)
                }
            }
        } else if name == b"trade" {
            self.stats.count("trade");
            let i = self.intern_bytes(pair, Dialect::V1, M)?;
            self.v1_trades(s.at(payloads[0]))?;
            self.emit_trades(i, false, ts, out);
            Ok(())
        } else if name == b"ticker" {
            self.stats.count("ticker");
            let i = self.intern_bytes(pair, Dialect::V1, M)?;
            self.v1_ticker(s.at(payloads[0]), i, ts, out)
        } else {
            let name = String::from_utf8_lossy(name);
            self.stats.count(&format!("ignored:{name}"));
            Ok(())
        }
    }

    /// Reads v1 book payloads into `self.updates`: (is snapshot, checksum, latest level time,
    /// precision seen).
    fn v1_book_parse(
        &mut self,
        s: Scan<'_>,
        payloads: &[usize],
    ) -> Result<(bool, Option<u32>, u64, Precision), NormalizeError> {
        const M: &str = "v1 book";
        self.updates.clear();
        let mut snapshot = false;
        let mut update = false;
        let mut checksum = None;
        let mut ts_ex = 0u64;
        let mut precision = Precision::default();
        for &p in payloads {
            let mut o = s.at(p);
            o.begin_object()?;
            while let Some(k) = o.next_key()? {
                let side = match k {
                    b"as" | b"a" => BookSide::Ask,
                    b"bs" | b"b" => BookSide::Bid,
                    b"c" => {
                        let c = o.string()?;
                        checksum = Some(
                            parse_u64(c)
                                .and_then(|c| u32::try_from(c).ok())
                                .ok_or(field(M, "c", "a CRC32 as a decimal string"))?,
                        );
                        continue;
                    }
                    _ => {
                        o.skip()?;
                        continue;
                    }
                };
                if k.len() == 2 {
                    snapshot = true;
                } else {
                    update = true;
                }
                o.begin_array()?;
                while o.next_elem()? {
                    o.begin_array()?;
                    let bad = || field(M, "a/b", "levels of [price, volume, timestamp] strings");
                    if !o.next_elem()? {
                        return Err(bad());
                    }
                    let pt = o.string()?;
                    if !o.next_elem()? {
                        return Err(bad());
                    }
                    let qt = o.string()?;
                    if !o.next_elem()? {
                        return Err(bad());
                    }
                    let tt = o.string()?;
                    // An optional 4th element `"r"` marks a republished level: applied alike.
                    while o.next_elem()? {
                        o.skip()?;
                    }
                    let level = level_pq(pt, qt, M)?;
                    let t = epoch_secs_to_ns(tt).ok_or(field(M, "timestamp", "epoch seconds"))?;
                    ts_ex = ts_ex.max(t);
                    precision.price = precision.price.max(level.price_dec);
                    precision.qty = precision.qty.max(level.qty_dec);
                    self.updates.push(Upd { side, level });
                }
            }
        }
        if snapshot == update {
            return Err(field(
                M,
                "as/bs",
                "either a snapshot (`as`/`bs`) or an update (`a`/`b`)",
            ));
        }
        Ok((snapshot, checksum, ts_ex, precision))
    }

    fn v1_trades(&mut self, mut s: Scan<'_>) -> Result<(), NormalizeError> {
        const M: &str = "v1 trade";
        self.trades.clear();
        s.begin_array()?;
        while s.next_elem()? {
            s.begin_array()?;
            let bad = || {
                field(
                    M,
                    "trade",
                    "[price, volume, time, side, orderType, misc] strings",
                )
            };
            let mut texts: [&[u8]; 4] = [b""; 4];
            for t in texts.iter_mut() {
                if !s.next_elem()? {
                    return Err(bad());
                }
                *t = s.string()?;
            }
            // orderType, misc, then (in later versions) a trade id.
            let mut id = None;
            let mut k = 4;
            while s.next_elem()? {
                if k == 6 && matches!(s.peek(), Some(b'0'..=b'9')) {
                    id = Some(s.u64()?);
                } else {
                    s.skip()?;
                }
                k += 1;
            }
            let (price, qty) = price_qty(texts[0], texts[1], M)?;
            let ts = epoch_secs_to_ns(texts[2]).ok_or(field(M, "time", "epoch seconds"))?;
            let side = match texts[3] {
                b"b" => Side::Buy,
                b"s" => Side::Sell,
                _ => return Err(field(M, "side", "`b` or `s`")),
            };
            self.trades.push(TradeRow {
                price,
                qty,
                ts,
                side,
                id,
            });
        }
        Ok(())
    }

    fn v1_ticker(
        &mut self,
        mut s: Scan<'_>,
        i: SymbolIndex,
        ts: u64,
        out: &mut Output,
    ) -> Result<(), NormalizeError> {
        const M: &str = "v1 ticker";
        let mut a = None;
        let mut b = None;
        s.begin_object()?;
        while let Some(k) = s.next_key()? {
            let slot = match k {
                b"a" => &mut a,
                b"b" => &mut b,
                _ => {
                    s.skip()?;
                    continue;
                }
            };
            // [price, wholeLotVolume, lotVolume]
            s.begin_array()?;
            let bad = || field(M, "a/b", "[price, wholeLotVolume, lotVolume]");
            if !s.next_elem()? {
                return Err(bad());
            }
            let p = s.string()?;
            if !s.next_elem()? {
                return Err(bad());
            }
            s.skip()?;
            if !s.next_elem()? {
                return Err(bad());
            }
            let q = s.string()?;
            while s.next_elem()? {
                s.skip()?;
            }
            *slot = Some(price_qty(p, q, M)?);
        }
        let (Some((ap, aq)), Some((bp, bq))) = (a, b) else {
            return Err(field(M, "a", "best ask `a` and best bid `b`"));
        };
        self.emit_quote(i, bp, bq, ap, aq, 0, ts, out);
        Ok(())
    }

    // ---------------------------------------------------------------- objects (v1 events, v2)

    fn object(&mut self, s: Scan<'_>, ts: u64, out: &mut Output) -> Result<(), NormalizeError> {
        let mut top = s;
        let [
            channel,
            ty,
            data,
            event,
            method,
            success,
            error,
            result,
            status,
            pair,
            errmsg,
            sub,
            cap_error,
        ] = top.fields([
            b"channel".as_slice(),
            b"type",
            b"data",
            b"event",
            b"method",
            b"success",
            b"error",
            b"result",
            b"status",
            b"pair",
            b"errorMessage",
            b"subscription",
            b"Error",
        ])?;
        let text = |p: Option<usize>| text_at(s, p);
        if let Some(channel) = text(channel)? {
            let ty = text(ty)?;
            return self.v2_channel(s, channel, ty, data, ts, out);
        }
        if let Some(event) = text(event)? {
            return self.v1_event(s, event, status, pair, errmsg, sub);
        }
        if let Some(method) = text(method)? {
            return self.v2_reply(s, method, success, error, result);
        }
        if let Some(e) = cap_error.or(error) {
            let e = s.at(e).string().unwrap_or(b"?");
            return Err(NormalizeError::Venue(
                String::from_utf8_lossy(e).into_owned(),
            ));
        }
        self.stats.count("ignored:unknown");
        Ok(())
    }

    fn v1_event(
        &mut self,
        s: Scan<'_>,
        event: &[u8],
        status: Option<usize>,
        pair: Option<usize>,
        errmsg: Option<usize>,
        sub: Option<usize>,
    ) -> Result<(), NormalizeError> {
        const M: &str = "v1 event";
        let text = |p: Option<usize>| p.and_then(|p| s.at(p).string().ok());
        match event {
            b"heartbeat" => self.stats.count("heartbeat"),
            b"pong" => self.stats.count("pong"),
            b"systemStatus" => self.stats.count("systemStatus"),
            b"subscriptionStatus" => {
                self.stats.count("subscriptionStatus");
                let st = text(status).unwrap_or(b"");
                let pair = text(pair);
                if st == b"error" {
                    self.stats.count("subscriptionStatus:error");
                    return Err(NormalizeError::Venue(format!(
                        "subscription refused for {}: {}",
                        String::from_utf8_lossy(pair.unwrap_or(b"?")),
                        String::from_utf8_lossy(text(errmsg).unwrap_or(b"?"))
                    )));
                }
                // `subscription: {"name":"book","depth":N}` sets the pair's depth.
                if st == b"subscribed"
                    && let (Some(pair), Some(sub)) = (pair, sub)
                {
                    let mut o = s.at(sub);
                    let [name, depth] = o.fields([b"name".as_slice(), b"depth"])?;
                    let is_book = name.is_some_and(|p| s.at(p).string().ok() == Some(b"book"));
                    if is_book {
                        let i = self.intern_bytes(pair, Dialect::V1, M)?;
                        let d = match depth {
                            Some(p) => s.at(p).u64()? as usize,
                            None => DEFAULT_DEPTH,
                        };
                        self.pairs[i].depth = d.max(1);
                    }
                }
            }
            b"error" => {
                return Err(NormalizeError::Venue(
                    String::from_utf8_lossy(text(errmsg).unwrap_or(b"?")).into_owned(),
                ));
            }
            other => {
                let k = format!("ignored:{}", String::from_utf8_lossy(other));
                self.stats.count(&k);
            }
        }
        Ok(())
    }

    fn v2_reply(
        &mut self,
        s: Scan<'_>,
        method: &[u8],
        success: Option<usize>,
        error: Option<usize>,
        result: Option<usize>,
    ) -> Result<(), NormalizeError> {
        const M: &str = "v2 method reply";
        match method {
            b"pong" => {
                self.stats.count("pong");
                return Ok(());
            }
            b"subscribe" | b"unsubscribe" => {}
            other => {
                let k = format!("ignored:method:{}", String::from_utf8_lossy(other));
                self.stats.count(&k);
                return Ok(());
            }
        }
        let ok = match success {
            Some(p) => s.at(p).bool()?,
            None => error.is_none(),
        };
        if !ok {
            self.stats.count("reply:error");
            let e = error.and_then(|p| s.at(p).string().ok()).unwrap_or(b"?");
            return Err(NormalizeError::Venue(format!(
                "{} refused: {}",
                String::from_utf8_lossy(method),
                String::from_utf8_lossy(e)
            )));
        }
        if method == b"unsubscribe" {
            self.stats.count("reply:unsubscribe");
            return Ok(());
        }
        self.stats.count("reply:subscribe");
        // {"channel":"book","depth":10,"snapshot":true,"symbol":"BTC/USD"}: the pair's depth.
        if let Some(r) = result {
            let [channel, symbol, depth] =
                s.at(r)
                    .fields([b"channel".as_slice(), b"symbol", b"depth"])?;
            let is_book = channel.is_some_and(|p| s.at(p).string().ok() == Some(b"book"));
            if is_book && let (Some(sym), Some(d)) = (symbol, depth) {
                let sym = s.at(sym).string()?;
                let d = s.at(d).u64()? as usize;
                let i = self.intern_bytes(sym, Dialect::V2, M)?;
                self.pairs[i].depth = d.max(1);
            }
        }
        Ok(())
    }

    fn v2_channel(
        &mut self,
        s: Scan<'_>,
        channel: &[u8],
        ty: Option<&[u8]>,
        data: Option<usize>,
        ts: u64,
        out: &mut Output,
    ) -> Result<(), NormalizeError> {
        let snapshot = match ty {
            Some(b"snapshot") => true,
            Some(b"update") | None => false,
            Some(_) => return Err(field("v2 message", "type", "`snapshot` or `update`")),
        };
        match channel {
            b"book" => {
                self.stats.count(if snapshot {
                    "book_snapshot"
                } else {
                    "book_update"
                });
                let data = data.ok_or(field("v2 book", "data", "an array"))?;
                let mut d = s.at(data);
                d.begin_array()?;
                while d.next_elem()? {
                    d.peek();
                    let at = d.pos();
                    d.skip()?;
                    self.v2_book(s.at(at), snapshot, ts, out)?;
                }
                Ok(())
            }
            b"trade" => {
                self.stats
                    .count(if snapshot { "trade_snapshot" } else { "trade" });
                let data = data.ok_or(field("v2 trade", "data", "an array"))?;
                self.v2_trades(s.at(data), snapshot, ts, out)
            }
            b"ticker" => {
                self.stats.count("ticker");
                let data = data.ok_or(field("v2 ticker", "data", "an array"))?;
                self.v2_ticker(s.at(data), ts, out)
            }
            b"heartbeat" => {
                self.stats.count("heartbeat");
                Ok(())
            }
            b"status" => {
                self.stats.count("status");
                Ok(())
            }
            b"instrument" => {
                self.stats.count("instrument");
                let data = data.ok_or(field("v2 instrument", "data", "an object"))?;
                self.v2_instrument(s.at(data))
            }
            other => {
                let k = format!("ignored:{}", String::from_utf8_lossy(other));
                self.stats.count(&k);
                Ok(())
            }
        }
    }

    /// `{"assets":[..],"pairs":[{"symbol":..,"price_precision":..,"qty_precision":..}..]}`
    fn v2_instrument(&mut self, mut s: Scan<'_>) -> Result<(), NormalizeError> {
        const M: &str = "v2 instrument";
        let [pairs] = s.fields([b"pairs".as_slice()])?;
        let Some(pairs) = pairs else {
            return Ok(());
        };
        let mut a = s.at(pairs);
        a.begin_array()?;
        while a.next_elem()? {
            let [sym, pp, qp] =
                a.fields([b"symbol".as_slice(), b"price_precision", b"qty_precision"])?;
            let (Some(sym), Some(pp), Some(qp)) = (sym, pp, qp) else {
                return Err(field(
                    M,
                    "pairs",
                    "symbol, price_precision and qty_precision",
                ));
            };
            let sym = utf8(s.at(sym).string()?, M, "symbol")?;
            let pp = s.at(pp).u64()?;
            let qp = s.at(qp).u64()?;
            if pp > 9 || qp > 9 {
                return Err(field(M, "price_precision", "at most 9 decimals"));
            }
            let prec = (pp as u8, qp as u8);
            if let Some(i) = self.symbols.find(sym) {
                self.pairs[i].precision = Some(prec);
            }
            match self.instruments.get_mut(sym) {
                Some(v) => *v = prec,
                None => {
                    self.instruments.insert(sym.to_string(), prec);
                }
            }
        }
        Ok(())
    }

    fn v2_book(
        &mut self,
        mut o: Scan<'_>,
        snapshot: bool,
        ts: u64,
        out: &mut Output,
    ) -> Result<(), NormalizeError> {
        const M: &str = "v2 book";
        let base = o;
        let [sym, bids, asks, checksum, timestamp] = o.fields([
            b"symbol".as_slice(),
            b"bids",
            b"asks",
            b"checksum",
            b"timestamp",
        ])?;
        let sym = sym.ok_or(field(M, "symbol", "a string"))?;
        let i = self.intern_bytes(base.at(sym).string()?, Dialect::V2, M)?;
        let parsed = (|| {
            self.updates.clear();
            let mut precision = Precision::default();
            // Asks then bids: the two sides are independent, the order within one is kept.
            for (slot, side) in [(asks, BookSide::Ask), (bids, BookSide::Bid)] {
                let Some(p) = slot else { continue };
                let mut a = base.at(p);
                a.begin_array()?;
                while a.next_elem()? {
                    a.begin_object()?;
                    let (mut pt, mut qt) = (None, None);
                    while let Some(k) = a.next_key()? {
                        match k {
                            b"price" => pt = Some(a.decimal_text()?),
                            b"qty" => qt = Some(a.decimal_text()?),
                            _ => a.skip()?,
                        }
                    }
                    let (Some(pt), Some(qt)) = (pt, qt) else {
                        return Err(field(M, "bids/asks", "levels with `price` and `qty`"));
                    };
                    let level = level_pq(pt, qt, M)?;
                    precision.price = precision.price.max(level.price_dec);
                    precision.qty = precision.qty.max(level.qty_dec);
                    self.updates.push(Upd { side, level });
                }
            }
            let checksum = match checksum {
                Some(p) => Some(
                    u32::try_from(base.at(p).u64()?)
                        .map_err(|_| field(M, "checksum", "a CRC32"))?,
                ),
                None => None,
            };
            let ts_ex = match timestamp {
                Some(p) => rfc3339_to_ns(base.at(p).string()?).ok_or(field(
                    M,
                    "timestamp",
                    "an RFC 3339 UTC time",
                ))?,
                None => 0,
            };
            Ok((precision, checksum, ts_ex))
        })();
        let (precision, checksum, ts_ex) = match parsed {
            Ok(x) => x,
            Err(e) => {
                self.break_book(i, format!("unreadable book message: {e}"), ts, out);
                return Err(e);
            }
        };
        let (pp, qp) = match self.pairs[i].precision {
            Some((p, q)) => (p.max(precision.price), q.max(precision.qty)),
            None => (precision.price, precision.qty),
        };
        let inst = self.symbols.announce(i, pp, qp, ts, out);
        if snapshot {
            self.apply_snapshot(i, inst, checksum, ts_ex, ts, out);
        } else {
            self.apply_update(i, inst, checksum, ts_ex, ts, out);
        }
        Ok(())
    }

    fn v2_trades(
        &mut self,
        mut a: Scan<'_>,
        snapshot: bool,
        ts: u64,
        out: &mut Output,
    ) -> Result<(), NormalizeError> {
        const M: &str = "v2 trade";
        self.trades.clear();
        let mut pair: Option<SymbolIndex> = None;
        a.begin_array()?;
        while a.next_elem()? {
            let base = a;
            let [sym, side, price, qty, id, t] = a.fields([
                b"symbol".as_slice(),
                b"side",
                b"price",
                b"qty",
                b"trade_id",
                b"timestamp",
            ])?;
            let sym = base
                .at(sym.ok_or(field(M, "symbol", "a string"))?)
                .string()?;
            let i = self.intern_bytes(sym, Dialect::V2, M)?;
            if pair.is_some_and(|p| p != i) {
                // One frame run per pair: flush the previous pair's trades.
                if let Some(p) = pair {
                    self.emit_trades(p, snapshot, ts, out);
                }
                self.trades.clear();
            }
            pair = Some(i);
            let pt = base
                .at(price.ok_or(field(M, "price", "a number"))?)
                .decimal_text()?;
            let qt = base
                .at(qty.ok_or(field(M, "qty", "a number"))?)
                .decimal_text()?;
            let (price, qty) = price_qty(pt, qt, M)?;
            let side = match side.map(|p| base.at(p).string()).transpose()? {
                Some(b"buy") => Side::Buy,
                Some(b"sell") => Side::Sell,
                _ => return Err(field(M, "side", "`buy` or `sell`")),
            };
            let id = match id {
                Some(p) => Some(base.at(p).u64()?),
                None => None,
            };
            let ts_ex = match t {
                Some(p) => rfc3339_to_ns(base.at(p).string()?).ok_or(field(
                    M,
                    "timestamp",
                    "an RFC 3339 UTC time",
                ))?,
                None => 0,
            };
            self.trades.push(TradeRow {
                price,
                qty,
                ts: ts_ex,
                side,
                id,
            });
        }
        if let Some(p) = pair {
            self.emit_trades(p, snapshot, ts, out);
        }
        Ok(())
    }

    fn v2_ticker(
        &mut self,
        mut a: Scan<'_>,
        ts: u64,
        out: &mut Output,
    ) -> Result<(), NormalizeError> {
        const M: &str = "v2 ticker";
        a.begin_array()?;
        while a.next_elem()? {
            let base = a;
            let [sym, bid, bid_qty, ask, ask_qty, t] = a.fields([
                b"symbol".as_slice(),
                b"bid",
                b"bid_qty",
                b"ask",
                b"ask_qty",
                b"timestamp",
            ])?;
            let sym = base
                .at(sym.ok_or(field(M, "symbol", "a string"))?)
                .string()?;
            let i = self.intern_bytes(sym, Dialect::V2, M)?;
            let num = |p: Option<usize>, f: &'static str| num_at(base, p, M, f);
            let (bp, bq) = price_qty(num(bid, "bid")?, num(bid_qty, "bid_qty")?, M)?;
            let (ap, aq) = price_qty(num(ask, "ask")?, num(ask_qty, "ask_qty")?, M)?;
            let ts_ex = match t {
                Some(p) => rfc3339_to_ns(base.at(p).string()?).ok_or(field(
                    M,
                    "timestamp",
                    "an RFC 3339 UTC time",
                ))?,
                None => 0,
            };
            self.emit_quote(i, bp, bq, ap, aq, ts_ex, ts, out);
        }
        Ok(())
    }

    // ---------------------------------------------------------------- emitting

    #[allow(clippy::too_many_arguments)]
    fn emit_quote(
        &mut self,
        i: SymbolIndex,
        bp: Parsed,
        bq: Parsed,
        ap: Parsed,
        aq: Parsed,
        ts_ex: u64,
        ts: u64,
        out: &mut Output,
    ) {
        let (mut pd, mut qd) = (bp.decimals.max(ap.decimals), bq.decimals.max(aq.decimals));
        if let Some((p, q)) = self.pairs[i].precision {
            pd = pd.max(p);
            qd = qd.max(q);
        }
        let inst = self.symbols.announce(i, pd, qd, ts, out);
        out.frames.push(Frame::new(
            Venue::Kraken,
            inst,
            ts_ex,
            ts,
            Body::Quote(Quote {
                bid_px: bp.value,
                bid_qty: bq.value,
                ask_px: ap.value,
                ask_qty: aq.value,
            }),
        ));
    }

    /// Emits `self.trades` for pair `i`, checking trade-id continuity. From a snapshot (v2
    /// sends the latest trades on subscribe) only trades newer than the last one seen are
    /// emitted: on a reconnect they are the ones missed; on a first connection none are.
    fn emit_trades(&mut self, i: SymbolIndex, snapshot: bool, ts: u64, out: &mut Output) {
        let mut pd = 0;
        let mut qd = 0;
        for t in &self.trades {
            pd = pd.max(t.price.decimals);
            qd = qd.max(t.qty.decimals);
        }
        if let Some((p, q)) = self.pairs[i].precision {
            pd = pd.max(p);
            qd = qd.max(q);
        }
        let mut inst = None;
        for k in 0..self.trades.len() {
            let t = self.trades[k];
            if let Some(id) = t.id {
                let last = &mut self.pairs[i].last_trade_id;
                let prev = *last;
                *last = Some(prev.map_or(id, |p| p.max(id)));
                if snapshot && prev.is_none_or(|p| id <= p) {
                    continue;
                }
                if let Some(prev) = prev
                    && id > prev + 1
                {
                    self.stats.gaps += 1;
                    let detail = format!(
                        "trade ids {}..={} missing: those trades were not received",
                        prev + 1,
                        id - 1
                    );
                    self.symbols
                        .status(i, StatusCode::Gap, detail, false, ts, out);
                }
            } else if snapshot {
                continue;
            }
            let inst = *inst.get_or_insert_with(|| self.symbols.announce(i, pd, qd, ts, out));
            out.frames.push(Frame::new(
                Venue::Kraken,
                inst,
                t.ts,
                ts,
                Body::Trade(Trade {
                    price: t.price.value,
                    qty: t.qty.value,
                    side: t.side,
                    trade_id: t.id.map_or(TradeId::None, TradeId::Num),
                }),
            ));
        }
    }

    // ---------------------------------------------------------------- books

    /// Rebuilds pair `i`'s book from `self.updates` (a snapshot) and emits it whole.
    fn apply_snapshot(
        &mut self,
        i: SymbolIndex,
        inst: u32,
        checksum: Option<u32>,
        ts_ex: u64,
        ts: u64,
        out: &mut Output,
    ) {
        let p = &mut self.pairs[i];
        p.book.clear();
        for u in &self.updates {
            p.book.set(u.side, u.level);
        }
        let depth = p.depth;
        p.book.truncate(depth, |_, _| {});
        if let Some(c) = checksum
            && let Some(detail) = self.verify(i, c)
        {
            let p = &mut self.pairs[i];
            p.state = BookState::Empty;
            self.break_book(i, format!("snapshot {detail}"), ts, out);
            return;
        }
        let p = &mut self.pairs[i];
        if checksum.is_some() {
            self.stats.count("checksum:ok");
        }
        out.frames.push(
            Frame::new(
                Venue::Kraken,
                inst,
                ts_ex,
                ts,
                Body::BookSnapshot(p.book.snapshot()),
            )
            .with_flags(flags::SNAPSHOT | flags::LAST),
        );
        p.state = BookState::Live;
        self.stats.count("book:synced");
        if std::mem::take(&mut p.flagged) {
            self.symbols.status(
                i,
                StatusCode::Resynced,
                "book rebuilt from a fresh snapshot".into(),
                false,
                ts,
                out,
            );
        }
    }

    /// Applies `self.updates` to pair `i`'s live book, emits the deltas, verifies.
    fn apply_update(
        &mut self,
        i: SymbolIndex,
        inst: u32,
        checksum: Option<u32>,
        ts_ex: u64,
        ts: u64,
        out: &mut Output,
    ) {
        match self.pairs[i].state {
            BookState::Live => {}
            BookState::Resyncing => {
                self.stats.count("book:skipped_resyncing");
                return;
            }
            BookState::Empty => {
                self.stats.count("book:update_before_snapshot");
                self.break_book(i, "book update before any snapshot".into(), ts, out);
                return;
            }
        }
        let start = out.frames.len();
        let p = &mut self.pairs[i];
        let delta = |side, price, qty| {
            Frame::new(
                Venue::Kraken,
                inst,
                ts_ex,
                ts,
                Body::BookDelta(BookDelta { side, price, qty }),
            )
        };
        let mut out_of_range = 0;
        for u in &self.updates {
            p.book.set(u.side, u.level);
            // A level a frame cannot carry is not emitted; if only its quantity is too large,
            // the level is deleted for clients so they never keep a stale quantity.
            match (i64::try_from(u.level.price), i64::try_from(u.level.qty)) {
                (Ok(price), Ok(qty)) => out.frames.push(delta(u.side, price, qty)),
                (Ok(price), Err(_)) => {
                    out_of_range += 1;
                    out.frames.push(delta(u.side, price, 0));
                }
                (Err(_), _) => out_of_range += 1,
            }
        }
        // Levels pushed beyond the subscribed depth are dropped (Kraken sends no delete).
        let depth = p.depth;
        p.book.truncate(depth, |side, price| {
            if let Ok(price) = i64::try_from(price) {
                out.frames.push(delta(side, price, 0));
            }
        });
        if out_of_range > 0 {
            self.stats.count("level:out_of_frame_range");
        }
        if let Some(last) = out.frames[start..].last_mut() {
            last.flags |= flags::LAST;
        }
        let broken = if self.pairs[i].book.is_crossed() {
            let (b, a) = self.pairs[i].book.best();
            Some(format!(
                "book crossed after an update (best bid {:?} >= best ask {:?})",
                b.map(|l| l.price),
                a.map(|l| l.price)
            ))
        } else {
            match checksum {
                Some(c) => self.verify(i, c),
                None => {
                    self.stats.count("book:no_checksum");
                    None
                }
            }
        };
        match broken {
            None => {
                if checksum.is_some() {
                    self.stats.count("checksum:ok");
                }
            }
            Some(detail) => {
                for f in &mut out.frames[start..] {
                    f.flags |= flags::BAD_BOOK;
                }
                self.break_book(i, detail, ts, out);
            }
        }
    }

    /// Checks pair `i`'s book against the venue's checksum: `Some(why)` on a mismatch.
    fn verify(&mut self, i: SymbolIndex, expected: u32) -> Option<String> {
        let p = &mut self.pairs[i];
        let format = match p.dialect {
            Dialect::V1 => ChecksumFormat::AsSent,
            Dialect::V2 => {
                let (pd, qd) = match p.precision {
                    Some(x) => x,
                    None => {
                        let inst = self.symbols.get(i);
                        let x = (inst.price_decimals, inst.qty_decimals);
                        self.stats.count("checksum:learned_precision");
                        x
                    }
                };
                ChecksumFormat::At(pd, qd)
            }
        };
        let ours = p.book.checksum(format);
        (ours != expected)
            .then(|| format!("checksum mismatch: the venue sent {expected}, the book gives {ours}"))
    }

    /// The book of pair `i` can no longer be trusted: Gap, and resubscribe its book.
    fn break_book(&mut self, i: SymbolIndex, detail: String, ts: u64, out: &mut Output) {
        let p = &mut self.pairs[i];
        if p.state == BookState::Resyncing {
            return;
        }
        p.state = BookState::Resyncing;
        p.flagged = true;
        p.book.clear();
        self.stats.gaps += 1;
        self.symbols
            .status(i, StatusCode::Gap, detail, true, ts, out);
        let (unsub, sub) = self.resync_messages(i);
        out.actions.push(Action::Send(unsub));
        out.actions.push(Action::Send(sub));
    }

    /// The unsubscribe and subscribe messages that bring a fresh snapshot of pair `i`'s book.
    pub fn resync_messages(&self, i: SymbolIndex) -> (String, String) {
        let p = &self.pairs[i];
        let sym = quoted(&self.symbols.get(i).symbol);
        let depth = p.depth;
        match p.dialect {
            Dialect::V1 => {
                let msg = |ev: &str| {
                    format!(
                        "{{\"event\":\"{ev}\",\"pair\":[{sym}],\"subscription\":{{\"name\":\"book\",\"depth\":{depth}}}}}"
                    )
                };
                (msg("unsubscribe"), msg("subscribe"))
            }
            Dialect::V2 => (
                format!(
                    "{{\"method\":\"unsubscribe\",\"params\":{{\"channel\":\"book\",\"symbol\":[{sym}],\"depth\":{depth}}}}}"
                ),
                format!(
                    "{{\"method\":\"subscribe\",\"params\":{{\"channel\":\"book\",\"symbol\":[{sym}],\"depth\":{depth},\"snapshot\":true}}}}"
                ),
            ),
        }
    }
}

// ---------------------------------------------------------------- fast path readers

/// A string value of printable ASCII without escapes (every string Kraken sends in these
/// messages); `None` for any other, which the scanner path reads.
#[inline]
fn fast_str<'a>(c: &mut Cursor<'a>) -> Option<&'a str> {
    c.lit(b"\"")?;
    c.ascii_str_body()
}

/// A price (> 0) and a quantity (>= 0) as [`price_qty`] accepts them; `None` otherwise (the
/// scanner path words the error).
#[inline]
fn fast_pq(price: Parsed, qty: Parsed) -> Option<(Parsed, Parsed)> {
    (price.value > 0 && qty.value >= 0).then_some((price, qty))
}

/// v1 book payloads, the `[channelID,` read: a snapshot `{"as":[..],"bs":[..]}`, or one or
/// two update objects `{"a":[..]}`, `{"b":[..]}` with the checksum `"c"` (in the last one).
/// Levels `["price","volume","time"]`, `"r"` (republished) as an optional 4th element.
/// Fills `updates` in message order: (is snapshot, checksum, latest level time, precision).
fn fast_v1_book(
    c: &mut Cursor<'_>,
    updates: &mut Vec<Upd>,
) -> Option<(bool, Option<u32>, u64, Precision)> {
    updates.clear();
    let mut ts_ex = 0u64;
    let mut precision = Precision::default();
    if c.opt_lit(b"{\"as\":") {
        fast_v1_levels(c, BookSide::Ask, updates, &mut ts_ex, &mut precision)?;
        c.lit(b",\"bs\":")?;
        fast_v1_levels(c, BookSide::Bid, updates, &mut ts_ex, &mut precision)?;
        c.lit(b"}")?;
        return Some((true, None, ts_ex, precision));
    }
    let mut checksum = None;
    // At most two objects (asks, then bids): the scanner path takes up to three payloads,
    // and Kraken sends one per side.
    for _ in 0..2 {
        let side = if c.opt_lit(b"{\"a\":") {
            BookSide::Ask
        } else if c.opt_lit(b"{\"b\":") {
            BookSide::Bid
        } else {
            return None;
        };
        fast_v1_levels(c, side, updates, &mut ts_ex, &mut precision)?;
        if c.opt_lit(b",\"c\":") {
            let v = c.quoted_u64()?;
            checksum = Some(u32::try_from(v).ok()?);
        }
        c.lit(b"}")?;
        if !c.peek(b",{") {
            return Some((false, checksum, ts_ex, precision));
        }
        c.lit(b",")?;
    }
    None
}

/// `[["price","volume","time"(,"r")], ...]` appended to `updates`.
#[inline]
fn fast_v1_levels(
    c: &mut Cursor<'_>,
    side: BookSide,
    updates: &mut Vec<Upd>,
    ts_ex: &mut u64,
    precision: &mut Precision,
) -> Option<()> {
    c.lit(b"[")?;
    if c.opt_lit(b"]") {
        return Some(());
    }
    loop {
        c.lit(b"[")?;
        let price = c.dec()?;
        c.lit(b",")?;
        let qty = c.dec()?;
        c.lit(b",\"")?;
        let t = epoch_secs_to_ns(c.ascii_str_body()?.as_bytes())?;
        c.opt_lit(b",\"r\"");
        c.lit(b"]")?;
        let (price, qty) = fast_pq(price, qty)?;
        *ts_ex = (*ts_ex).max(t);
        precision.price = precision.price.max(price.decimals);
        precision.qty = precision.qty.max(qty.decimals);
        updates.push(Upd {
            side,
            level: KLevel {
                price: price.value as i128,
                qty: qty.value as i128,
                price_dec: price.decimals,
                qty_dec: qty.decimals,
            },
        });
        if c.opt_lit(b"]") {
            return Some(());
        }
        c.lit(b",")?;
    }
}

/// `,"channelName","pair"]` and the end of the message: (channelName, pair).
#[inline]
fn fast_v1_tail<'a>(c: &mut Cursor<'a>) -> Option<(&'a str, &'a str)> {
    c.lit(b",\"")?;
    let name = c.ascii_str_body()?;
    c.lit(b",\"")?;
    let pair = c.ascii_str_body()?;
    c.lit(b"]")?;
    c.end()?;
    (!pair.is_empty()).then_some((name, pair))
}

/// v1 trades `[["price","volume","time","b|s","orderType","misc"(,tradeId)], ...]` into
/// `trades`.
fn fast_v1_trades(c: &mut Cursor<'_>, trades: &mut Vec<TradeRow>) -> Option<()> {
    trades.clear();
    c.lit(b"[")?;
    if c.opt_lit(b"]") {
        return Some(());
    }
    loop {
        c.lit(b"[")?;
        let price = c.dec()?;
        c.lit(b",")?;
        let qty = c.dec()?;
        c.lit(b",\"")?;
        let ts = epoch_secs_to_ns(c.ascii_str_body()?.as_bytes())?;
        let side = if c.opt_lit(b",\"b\",") {
            Side::Buy
        } else if c.opt_lit(b",\"s\",") {
            Side::Sell
        } else {
            return None;
        };
        fast_str(c)?;
        c.lit(b",")?;
        fast_str(c)?;
        let id = if c.opt_lit(b",") {
            Some(c.u64()?)
        } else {
            None
        };
        c.lit(b"]")?;
        let (price, qty) = fast_pq(price, qty)?;
        trades.push(TradeRow {
            price,
            qty,
            ts,
            side,
            id,
        });
        if c.opt_lit(b"]") {
            return Some(());
        }
        c.lit(b",")?;
    }
}

/// v1 ticker `{"a":[price,wholeLotVolume,lotVolume],"b":[..],` then the other fields (flat
/// arrays of strings and integers) `}`: [(ask, ask qty), (bid, bid qty)].
fn fast_v1_ticker(c: &mut Cursor<'_>) -> Option<[(Parsed, Parsed); 2]> {
    fn top(c: &mut Cursor<'_>) -> Option<(Parsed, Parsed)> {
        c.lit(b"[")?;
        let price = c.dec()?;
        c.lit(b",")?;
        c.u64()?;
        c.lit(b",")?;
        let qty = c.dec()?;
        c.lit(b"]")?;
        fast_pq(price, qty)
    }
    c.lit(b"{\"a\":")?;
    let a = top(c)?;
    c.lit(b",\"b\":")?;
    let b = top(c)?;
    while c.opt_lit(b",\"") {
        let key = c.ascii_str_body()?;
        if key == "a" || key == "b" {
            return None; // twice: the scanner path decides which counts
        }
        c.lit(b":[")?;
        loop {
            if c.peek(b"\"") {
                fast_str(c)?;
            } else {
                c.u64()?;
            }
            if c.opt_lit(b"]") {
                break;
            }
            c.lit(b",")?;
        }
    }
    c.lit(b"}")?;
    Some([a, b])
}

/// v2 levels `[{"price":n,"qty":n}, ...]` appended to `updates`.
#[inline]
fn fast_v2_levels(
    c: &mut Cursor<'_>,
    side: BookSide,
    updates: &mut Vec<Upd>,
    precision: &mut Precision,
) -> Option<()> {
    c.lit(b"[")?;
    if c.opt_lit(b"]") {
        return Some(());
    }
    loop {
        c.lit(b"{\"price\":")?;
        let price = c.num()?;
        c.lit(b",\"qty\":")?;
        let qty = c.num()?;
        c.lit(b"}")?;
        let (price, qty) = fast_pq(price, qty)?;
        precision.price = precision.price.max(price.decimals);
        precision.qty = precision.qty.max(qty.decimals);
        updates.push(Upd {
            side,
            level: KLevel {
                price: price.value as i128,
                qty: qty.value as i128,
                price_dec: price.decimals,
                qty_dec: qty.decimals,
            },
        });
        if c.opt_lit(b"]") {
            return Some(());
        }
        c.lit(b",")?;
    }
}

/// The rest of a v2 book data element after its symbol:
/// `,"bids":[..],"asks":[..],"checksum":n(,"timestamp":"..")}`, into `updates` asks first
/// (as the scanner path applies them): (checksum, time, precision).
fn fast_v2_book(c: &mut Cursor<'_>, updates: &mut Vec<Upd>) -> Option<(u32, u64, Precision)> {
    updates.clear();
    let mut precision = Precision::default();
    c.lit(b",\"bids\":")?;
    fast_v2_levels(c, BookSide::Bid, updates, &mut precision)?;
    let bids = updates.len();
    c.lit(b",\"asks\":")?;
    fast_v2_levels(c, BookSide::Ask, updates, &mut precision)?;
    c.lit(b",\"checksum\":")?;
    let checksum = u32::try_from(c.u64()?).ok()?;
    let ts_ex = if c.opt_lit(b",\"timestamp\":\"") {
        rfc3339_to_ns(c.ascii_str_body()?.as_bytes())?
    } else {
        0
    };
    c.lit(b"}")?;
    updates.rotate_left(bids);
    Some((checksum, ts_ex, precision))
}

/// The rest of v2 trade data after the first element's symbol: elements
/// `{"symbol":..,"side":..,"price":n,"qty":n,"ord_type":..,"trade_id":n,"timestamp":".."}`,
/// all of `symbol`, then `]}`; into `trades`.
fn fast_v2_trades(c: &mut Cursor<'_>, symbol: &str, trades: &mut Vec<TradeRow>) -> Option<()> {
    trades.clear();
    loop {
        let side = if c.opt_lit(b",\"side\":\"buy\"") {
            Side::Buy
        } else if c.opt_lit(b",\"side\":\"sell\"") {
            Side::Sell
        } else {
            return None;
        };
        c.lit(b",\"price\":")?;
        let price = c.num()?;
        c.lit(b",\"qty\":")?;
        let qty = c.num()?;
        c.lit(b",\"ord_type\":")?;
        fast_str(c)?;
        c.lit(b",\"trade_id\":")?;
        let id = c.u64()?;
        c.lit(b",\"timestamp\":\"")?;
        let ts = rfc3339_to_ns(c.ascii_str_body()?.as_bytes())?;
        c.lit(b"}")?;
        let (price, qty) = fast_pq(price, qty)?;
        trades.push(TradeRow {
            price,
            qty,
            ts,
            side,
            id: Some(id),
        });
        if c.opt_lit(b"]}") {
            return Some(());
        }
        c.lit(b",{\"symbol\":\"")?;
        if c.ascii_str_body()? != symbol {
            return None; // several pairs: the scanner path makes one run per pair
        }
    }
}

/// The rest of a v2 ticker data element after its symbol:
/// `,"bid":n,"bid_qty":n,"ask":n,"ask_qty":n` then other fields (numbers and strings, a
/// `timestamp` among them or not) `}`: ([bid, bid qty, ask, ask qty], time).
fn fast_v2_ticker(c: &mut Cursor<'_>) -> Option<([Parsed; 4], u64)> {
    c.lit(b",\"bid\":")?;
    let bid = c.num()?;
    c.lit(b",\"bid_qty\":")?;
    let bid_qty = c.num()?;
    c.lit(b",\"ask\":")?;
    let ask = c.num()?;
    c.lit(b",\"ask_qty\":")?;
    let ask_qty = c.num()?;
    let (bid, bid_qty) = fast_pq(bid, bid_qty)?;
    let (ask, ask_qty) = fast_pq(ask, ask_qty)?;
    let mut ts = None;
    while c.opt_lit(b",\"") {
        let key = c.ascii_str_body()?;
        c.lit(b":")?;
        match key {
            "timestamp" if ts.is_none() => ts = Some(rfc3339_to_ns(fast_str(c)?.as_bytes())?),
            // A key the quote reads, twice: the scanner path decides which counts.
            "timestamp" | "symbol" | "bid" | "bid_qty" | "ask" | "ask_qty" => return None,
            _ => {
                if c.peek(b"\"") {
                    fast_str(c)?;
                } else {
                    c.skip_num()?;
                }
            }
        }
    }
    c.lit(b"}")?;
    Some(([bid, bid_qty, ask, ask_qty], ts.unwrap_or(0)))
}

impl Normalizer for KrakenNormalizer {
    fn venue(&self) -> Venue {
        Venue::Kraken
    }

    fn on_connect(&mut self, ts: u64, out: &mut Output) {
        self.symbols
            .status_all(StatusCode::Connected, "connected and subscribed", ts, out);
    }

    fn on_message(
        &mut self,
        raw: &[u8],
        ts_recv: u64,
        out: &mut Output,
    ) -> Result<(), NormalizeError> {
        self.stats.messages += 1;
        let before = out.frames.len();
        let result = if !self.fast_off && self.fast(raw, ts_recv, out) {
            self.fast_hits += 1;
            Ok(())
        } else {
            self.dispatch(raw, ts_recv, out)
        };
        self.stats.settle(before, out, &result);
        result
    }

    fn on_snapshot(
        &mut self,
        symbol: &str,
        _raw: &[u8],
        _ts_recv: u64,
        _out: &mut Output,
    ) -> Result<(), NormalizeError> {
        self.stats.refuse_snapshot(
            symbol,
            "Kraken books come whole over the WebSocket; no REST snapshot is used",
        )
    }

    fn on_stale(&mut self, ts: u64, detail: &str, out: &mut Output) {
        self.symbols.status_all(StatusCode::Stale, detail, ts, out);
    }

    fn on_disconnect(&mut self, ts: u64, reason: &str, out: &mut Output) {
        for i in 0..self.symbols.len() {
            let p = &mut self.pairs[i];
            let had_book = p.state != BookState::Empty || p.flagged;
            if had_book {
                p.book.clear();
                p.state = BookState::Empty;
                p.flagged = true;
            }
            // The next connection's snapshot rebuilds the book and reports `Resynced`; trades
            // missed meanwhile show as a trade-id hole (v2).
            self.symbols.status(
                i,
                StatusCode::Disconnected,
                reason.to_string(),
                had_book,
                ts,
                out,
            );
        }
    }

    fn stats(&self) -> &Stats {
        &self.stats
    }
}
