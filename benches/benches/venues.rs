//! Every venue normalizer's cost per message, beside a plain serde_json typed parse of the
//! same messages, as `normalize.rs` does for Binance spot (see BENCHMARKS.md, "Venue
//! normalizers").
//!
//! One criterion group per venue and message type, `venues/<venue>/<type>`, with the functions
//! `tickwire` (the venue's normalizer, `on_message`), `serde_json` (`serde_json::from_slice`
//! into `#[derive(Deserialize)]` structs with borrowed `&str` fields, decimals through
//! `wire::parse_decimal` into the same i64 values, times through the same parsers) and, for
//! book messages, `serde_json+book` (the same, then the levels applied to an `OrderBook`).
//! Both sides first copy the message into a reused buffer, as the feed driver does.
//!
//! Inputs: the real captures for Coinbase Exchange, Kraken v1 and OKX; for the venues without
//! a capture (Kraken v2, Bybit, Binance USD-M futures, Coinbase Advanced Trade) the documented
//! message shapes of the feed tests, generated into a valid stream (chained update ids and
//! sequence numbers, Kraken v2 checksums computed over the book).
//!
//! Every normalizer is primed untimed (connect, subscribe acks, snapshot) so book updates
//! apply to a live book; when the cycle through the samples wraps, the normalizer is primed
//! again outside the timing. `check` runs every sample through both sides first and asserts
//! they agree (prices, sizes, sides, ids, times, in order), that book updates are applied (the
//! book rebuilt from the normalizer's frames equals the baseline's book), and that the
//! normalizer reported no error, no gap and no action.
//!
//! `VENUES_IR=<venue>/<type>/<side>` skips criterion and runs one warm-up pass and one pass of
//! that subject's samples through `ir_pass`, for
//! `valgrind --tool=callgrind --toggle-collect='venues::ir_pass*'`.

use std::collections::HashMap;
use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput};
use serde::Deserialize;
use serde::de::IgnoredAny;
use tickwire_feed::binance::BinanceNormalizer;
use tickwire_feed::book::OrderBook;
use tickwire_feed::bybit::BybitNormalizer;
use tickwire_feed::capture::{CaptureReader, RecordKind};
use tickwire_feed::clock::venue_time_to_ns;
use tickwire_feed::coinbase::CoinbaseNormalizer;
use tickwire_feed::coinbase::common::parse_time_ns;
use tickwire_feed::coinbase_advanced::CoinbaseAdvancedNormalizer;
use tickwire_feed::kraken::KrakenNormalizer;
use tickwire_feed::kraken::normalizer::DEFAULT_DEPTH;
use tickwire_feed::kraken::scan::{epoch_secs_to_ns, rfc3339_to_ns};
use tickwire_feed::kraken::{Dialect, KrakenBook};
use tickwire_feed::okx::OkxNormalizer;
use tickwire_feed::{NormalizeError, Normalizer, Output};
use tickwire_sdk::wire::{
    Body, BookSide, DecimalError, Frame, Side, StatusCode, TradeId, parse_decimal,
};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const CAPTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../replay-data/captures");

/// At most this many messages per sample set (captures may hold fewer).
const SAMPLES: usize = 2_000;

// ---------------------------------------------------------------------------------------
// The normalizers, statically dispatched.

/// Which normalizer a case runs (constructed as `venues::normalizer` does, except where noted).
#[derive(Clone, Copy)]
enum Kind {
    BinanceFutures,
    Coinbase,
    CoinbaseAdvanced,
    KrakenV1,
    /// `KrakenNormalizer::v2(["BTC/USD"], 10)`, as a v2 connection for the doc book makes.
    KrakenV2,
    Okx,
    BybitSpot,
    BybitLinear,
}

enum Norm {
    Binance(BinanceNormalizer),
    Coinbase(CoinbaseNormalizer),
    CoinbaseAdvanced(CoinbaseAdvancedNormalizer),
    Kraken(KrakenNormalizer),
    Okx(OkxNormalizer),
    Bybit(BybitNormalizer),
}

impl Norm {
    fn new(kind: Kind) -> Norm {
        match kind {
            Kind::BinanceFutures => Norm::Binance(BinanceNormalizer::usd_futures(&[])),
            Kind::Coinbase => Norm::Coinbase(CoinbaseNormalizer::new(&[], "level2")),
            Kind::CoinbaseAdvanced => Norm::CoinbaseAdvanced(CoinbaseAdvancedNormalizer::new(&[])),
            Kind::KrakenV1 => Norm::Kraken(KrakenNormalizer::new(Dialect::V1, &[], DEFAULT_DEPTH)),
            Kind::KrakenV2 => Norm::Kraken(KrakenNormalizer::v2(&["BTC/USD".to_string()], 10)),
            Kind::Okx => Norm::Okx(OkxNormalizer::new(&[])),
            Kind::BybitSpot => Norm::Bybit(BybitNormalizer::spot(&[])),
            Kind::BybitLinear => Norm::Bybit(BybitNormalizer::linear(&[])),
        }
    }

    #[inline]
    fn as_dyn(&mut self) -> &mut dyn Normalizer {
        match self {
            Norm::Binance(n) => n,
            Norm::Coinbase(n) => n,
            Norm::CoinbaseAdvanced(n) => n,
            Norm::Kraken(n) => n,
            Norm::Okx(n) => n,
            Norm::Bybit(n) => n,
        }
    }

    /// `on_message` on the concrete type (no virtual call in the timed loop).
    #[inline]
    fn on_message(&mut self, raw: &[u8], ts: u64, out: &mut Output) -> Result<(), NormalizeError> {
        match self {
            Norm::Binance(n) => n.on_message(raw, ts, out),
            Norm::Coinbase(n) => n.on_message(raw, ts, out),
            Norm::CoinbaseAdvanced(n) => n.on_message(raw, ts, out),
            Norm::Kraken(n) => n.on_message(raw, ts, out),
            Norm::Okx(n) => n.on_message(raw, ts, out),
            Norm::Bybit(n) => n.on_message(raw, ts, out),
        }
    }

    /// Whether `symbol`'s book is live.
    fn live(&self, symbol: &str) -> bool {
        match self {
            Norm::Binance(n) => n.book(symbol).is_some(),
            Norm::Coinbase(n) => n.book(symbol).is_some(),
            Norm::CoinbaseAdvanced(n) => n.book(symbol).is_some(),
            Norm::Kraken(n) => n.book(symbol).is_some_and(|b: &KrakenBook| !b.is_crossed()),
            Norm::Okx(n) => n.book(symbol).is_some(),
            Norm::Bybit(n) => n.book(symbol).is_some(),
        }
    }
}

// ---------------------------------------------------------------------------------------
// Inputs.

/// One message.
#[derive(Clone)]
struct Sample {
    payload: Vec<u8>,
    ts_recv: u64,
}

/// A priming step: a WebSocket message, or a REST snapshot body for a symbol.
#[derive(Clone)]
struct Prime {
    payload: Vec<u8>,
    ts: u64,
    snapshot_for: Option<&'static str>,
}

fn msg(payload: impl Into<Vec<u8>>, ts: u64) -> Prime {
    Prime {
        payload: payload.into(),
        ts,
        snapshot_for: None,
    }
}

/// One benchmarked venue and message type.
struct Case {
    /// `<venue>/<type>`.
    id: &'static str,
    kind: Kind,
    prime: Vec<Prime>,
    samples: Vec<Sample>,
    baseline: BaselineFn,
    /// Book messages: the baseline applies levels to a book (`serde_json+book`); this depth is
    /// where a venue's book is truncated (Kraken: levels pushed out are deleted).
    book: Option<usize>,
}

type BaselineFn = for<'a> fn(&'a [u8], &mut Vec<Out>) -> Result<&'a str, BaselineError>;

/// A fresh normalizer fed the priming messages; the frames it made.
fn primed(case: &Case) -> (Norm, Vec<Frame>) {
    let mut n = Norm::new(case.kind);
    let mut out = Output::new();
    let mut buf = Vec::new();
    let mut frames = Vec::new();
    n.as_dyn()
        .on_connect(case.prime.first().map_or(0, |p| p.ts), &mut out);
    for p in &case.prime {
        frames.append(&mut out.frames);
        out.clear();
        buf.clear();
        buf.extend_from_slice(&p.payload);
        let r = match p.snapshot_for {
            None => n.on_message(&buf, p.ts, &mut out),
            Some(symbol) => n.as_dyn().on_snapshot(symbol, &buf, p.ts, &mut out),
        };
        r.unwrap_or_else(|e| panic!("{}: priming message rejected: {e}", case.id));
    }
    frames.append(&mut out.frames);
    (n, frames)
}

fn mean_len(samples: &[Sample]) -> u64 {
    let total: usize = samples.iter().map(|s| s.payload.len()).sum();
    (total as f64 / samples.len() as f64).round() as u64
}

/// The received messages of a capture.
fn capture(path: &str) -> Vec<Sample> {
    CaptureReader::open(format!("{CAPTURES}/{path}"))
        .expect("open the capture")
        .read_all()
        .expect("read the capture")
        .into_iter()
        .filter(|r| r.kind == RecordKind::Received)
        .map(|r| Sample {
            payload: r.payload,
            ts_recv: r.ts_ns.unwrap_or(0),
        })
        .collect()
}

/// Cuts a capture into a priming prefix and the samples of one message type: the samples are
/// the messages of type `ty` from `start` on (the first message after which every book is
/// loaded, for book types; the first `ty` message otherwise); the prefix is every message
/// before that point whose type is not one of `other_data` (control messages, snapshots).
fn cut(
    msgs: &[Sample],
    classify: fn(&[u8]) -> &'static str,
    ty: &str,
    start_after: Option<&str>,
    other_data: &[&str],
) -> (Vec<Prime>, Vec<Sample>) {
    let kinds: Vec<&str> = msgs.iter().map(|m| classify(&m.payload)).collect();
    let start = match start_after {
        Some(last) => kinds.iter().rposition(|k| *k == last).expect("a snapshot") + 1,
        None => kinds.iter().position(|k| *k == ty).expect("a sample"),
    };
    let prime = msgs[..start]
        .iter()
        .zip(&kinds)
        .filter(|(_, k)| !other_data.contains(k))
        .map(|(m, _)| msg(m.payload.clone(), m.ts_recv))
        .collect();
    let samples = msgs[start..]
        .iter()
        .zip(&kinds[start..])
        .filter(|(_, k)| **k == ty)
        .map(|(m, _)| m.clone())
        .take(SAMPLES)
        .collect();
    (prime, samples)
}

fn json(payload: &[u8]) -> serde_json::Value {
    serde_json::from_slice(payload).unwrap_or(serde_json::Value::Null)
}

// ---------------------------------------------------------------------------------------
// What both sides produce, compared by `check`.

#[derive(Debug, Clone, PartialEq, Eq)]
enum Out {
    Trade {
        price: i64,
        qty: i64,
        side: Side,
        id: TradeId,
        ts: u64,
    },
    Quote {
        bid_px: i64,
        bid_qty: i64,
        ask_px: i64,
        ask_qty: i64,
    },
    Delta {
        side: BookSide,
        price: i64,
        qty: i64,
        ts: u64,
    },
}

fn out_of(f: &Frame) -> Option<Out> {
    match &f.body {
        Body::Trade(t) => Some(Out::Trade {
            price: t.price,
            qty: t.qty,
            side: t.side,
            id: t.trade_id.clone(),
            ts: f.ts_exchange,
        }),
        Body::Quote(q) => Some(Out::Quote {
            bid_px: q.bid_px,
            bid_qty: q.bid_qty,
            ask_px: q.ask_px,
            ask_qty: q.ask_qty,
        }),
        Body::BookDelta(d) => Some(Out::Delta {
            side: d.side,
            price: d.price,
            qty: d.qty,
            ts: f.ts_exchange,
        }),
        _ => None,
    }
}

// ---------------------------------------------------------------------------------------
// The serde_json baselines.

#[derive(Debug)]
#[allow(dead_code)] // Read through Debug only, when a baseline fails.
enum BaselineError {
    Json(serde_json::Error),
    Decimal(DecimalError),
    Invalid(&'static str),
}

impl From<serde_json::Error> for BaselineError {
    fn from(e: serde_json::Error) -> Self {
        BaselineError::Json(e)
    }
}

impl From<DecimalError> for BaselineError {
    fn from(e: DecimalError) -> Self {
        BaselineError::Decimal(e)
    }
}

fn fixed(text: &str) -> Result<i64, BaselineError> {
    Ok(parse_decimal(text.as_bytes())?.value)
}

/// A JSON number (Kraken v2) to fixed point, through f64 as a serde_json user would: exact for
/// these prices and quantities (below 2^53 units of 1e-9).
fn fixed_f64(v: f64) -> i64 {
    (v * 1e9).round() as i64
}

fn level(side: BookSide, p: &str, q: &str, ts: u64) -> Result<Out, BaselineError> {
    let (price, qty) = (fixed(p)?, fixed(q)?);
    if price <= 0 || qty < 0 {
        return Err(BaselineError::Invalid("level out of range"));
    }
    Ok(Out::Delta {
        side,
        price,
        qty,
        ts,
    })
}

fn rfc3339(t: &str) -> Result<u64, BaselineError> {
    parse_time_ns(t).ok_or(BaselineError::Invalid("time"))
}

fn ms_text(t: &str) -> Result<u64, BaselineError> {
    t.parse::<u64>()
        .map(venue_time_to_ns)
        .map_err(|_| BaselineError::Invalid("ms time"))
}

fn num_id(id: &str) -> TradeId {
    match id.parse::<u64>() {
        Ok(n) if !id.starts_with('+') => TradeId::Num(n),
        _ => TradeId::Text(id.to_string()),
    }
}

// Coinbase Exchange.

#[derive(Deserialize)]
struct CbL2Update<'a> {
    #[serde(rename = "type")]
    kind: &'a str,
    product_id: &'a str,
    #[serde(borrow)]
    changes: Vec<[&'a str; 3]>,
    time: &'a str,
}

fn cb_l2update<'a>(raw: &'a [u8], out: &mut Vec<Out>) -> Result<&'a str, BaselineError> {
    let m: CbL2Update = serde_json::from_slice(raw)?;
    if m.kind != "l2update" {
        return Err(BaselineError::Invalid("not an l2update"));
    }
    let ts = rfc3339(m.time)?;
    for [s, p, q] in &m.changes {
        let side = match *s {
            "buy" => BookSide::Bid,
            "sell" => BookSide::Ask,
            _ => return Err(BaselineError::Invalid("side")),
        };
        out.push(level(side, p, q, ts)?);
    }
    Ok(m.product_id)
}

#[derive(Deserialize)]
struct CbMatch<'a> {
    #[serde(rename = "type")]
    kind: &'a str,
    trade_id: u64,
    side: &'a str,
    size: &'a str,
    price: &'a str,
    product_id: &'a str,
    time: &'a str,
}

fn cb_match<'a>(raw: &'a [u8], out: &mut Vec<Out>) -> Result<&'a str, BaselineError> {
    let m: CbMatch = serde_json::from_slice(raw)?;
    if m.kind != "match" {
        return Err(BaselineError::Invalid("not a match"));
    }
    out.push(Out::Trade {
        price: fixed(m.price)?,
        qty: fixed(m.size)?,
        side: match m.side {
            "sell" => Side::Buy,
            "buy" => Side::Sell,
            _ => return Err(BaselineError::Invalid("side")),
        },
        id: TradeId::Num(m.trade_id),
        ts: rfc3339(m.time)?,
    });
    Ok(m.product_id)
}

#[derive(Deserialize)]
struct CbTicker<'a> {
    #[serde(rename = "type")]
    kind: &'a str,
    product_id: &'a str,
    best_bid: &'a str,
    best_ask: &'a str,
    best_bid_size: Option<&'a str>,
    best_ask_size: Option<&'a str>,
    time: &'a str,
}

fn cb_ticker<'a>(raw: &'a [u8], out: &mut Vec<Out>) -> Result<&'a str, BaselineError> {
    let m: CbTicker = serde_json::from_slice(raw)?;
    if m.kind != "ticker" {
        return Err(BaselineError::Invalid("not a ticker"));
    }
    black_box(rfc3339(m.time)?);
    out.push(Out::Quote {
        bid_px: fixed(m.best_bid)?,
        bid_qty: m.best_bid_size.map_or(Ok(0), fixed)?,
        ask_px: fixed(m.best_ask)?,
        ask_qty: m.best_ask_size.map_or(Ok(0), fixed)?,
    });
    Ok(m.product_id)
}

fn cb_classify(raw: &[u8]) -> &'static str {
    match json(raw)["type"].as_str() {
        Some("l2update") => "l2update",
        Some("snapshot") => "snapshot",
        Some("match") => "match",
        Some("ticker") => "ticker",
        _ => "control",
    }
}

// Kraken v1: arrays `[channelID, payload..., channelName, pair]`.

/// `[channelID, {book payload}, ({book payload},) "book-N", pair]`.
struct KrV1Book<'a> {
    pair: &'a str,
    /// (side, price, volume, time) in message order.
    levels: Vec<(BookSide, &'a str, &'a str, &'a str)>,
    checksum: Option<u32>,
}

#[derive(Deserialize)]
struct KrV1BookPart<'a> {
    #[serde(borrow, default)]
    a: Vec<Vec<&'a str>>,
    #[serde(borrow, default)]
    b: Vec<Vec<&'a str>>,
    c: Option<&'a str>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum KrV1Elem<'a> {
    Id(#[allow(dead_code)] u64),
    Text(&'a str),
    #[serde(borrow)]
    Book(KrV1BookPart<'a>),
}

impl<'de: 'a, 'a> Deserialize<'de> for KrV1Book<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> serde::de::Visitor<'de> for V<'a> {
            type Value = KrV1Book<'a>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a Kraken v1 book array")
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut s: A,
            ) -> Result<Self::Value, A::Error> {
                let mut book = KrV1Book {
                    pair: "",
                    levels: Vec::new(),
                    checksum: None,
                };
                let _id: u64 = s
                    .next_element()?
                    .ok_or_else(|| serde::de::Error::custom("id"))?;
                while let Some(e) = s.next_element::<KrV1Elem<'a>>()? {
                    match e {
                        KrV1Elem::Id(_) => return Err(serde::de::Error::custom("id")),
                        KrV1Elem::Text(t) => book.pair = t,
                        KrV1Elem::Book(part) => {
                            for (side, ls) in [(BookSide::Ask, &part.a), (BookSide::Bid, &part.b)] {
                                for l in ls {
                                    if l.len() < 3 {
                                        return Err(serde::de::Error::custom("level"));
                                    }
                                    book.levels.push((side, l[0], l[1], l[2]));
                                }
                            }
                            if let Some(c) = part.c {
                                book.checksum =
                                    Some(c.parse().map_err(|_| serde::de::Error::custom("c"))?);
                            }
                        }
                    }
                }
                Ok(book)
            }
        }
        d.deserialize_seq(V(std::marker::PhantomData))
    }
}

fn kr_v1_book<'a>(raw: &'a [u8], out: &mut Vec<Out>) -> Result<&'a str, BaselineError> {
    let m: KrV1Book = serde_json::from_slice(raw)?;
    black_box(m.checksum);
    let mut ts = 0;
    for (_, _, _, t) in &m.levels {
        ts = ts.max(epoch_secs_to_ns(t.as_bytes()).ok_or(BaselineError::Invalid("time"))?);
    }
    for (side, p, q, _) in &m.levels {
        out.push(level(*side, p, q, ts)?);
    }
    Ok(m.pair)
}

#[derive(Deserialize)]
struct KrV1Trade<'a>(
    #[allow(dead_code)] u64,
    #[serde(borrow)] Vec<Vec<&'a str>>,
    #[allow(dead_code)] &'a str,
    &'a str,
);

fn kr_v1_trade<'a>(raw: &'a [u8], out: &mut Vec<Out>) -> Result<&'a str, BaselineError> {
    let m: KrV1Trade = serde_json::from_slice(raw)?;
    for t in &m.1 {
        if t.len() < 4 {
            return Err(BaselineError::Invalid("trade"));
        }
        out.push(Out::Trade {
            price: fixed(t[0])?,
            qty: fixed(t[1])?,
            side: match t[3] {
                "b" => Side::Buy,
                "s" => Side::Sell,
                _ => return Err(BaselineError::Invalid("side")),
            },
            id: TradeId::None,
            ts: epoch_secs_to_ns(t[2].as_bytes()).ok_or(BaselineError::Invalid("time"))?,
        });
    }
    Ok(m.3)
}

/// `[price, wholeLotVolume (integer), lotVolume]`.
#[derive(Deserialize)]
struct KrV1Top<'a>(&'a str, #[allow(dead_code)] IgnoredAny, &'a str);

#[derive(Deserialize)]
struct KrV1TickerBody<'a> {
    #[serde(borrow)]
    a: KrV1Top<'a>,
    #[serde(borrow)]
    b: KrV1Top<'a>,
}

#[derive(Deserialize)]
struct KrV1Ticker<'a>(
    #[allow(dead_code)] u64,
    #[serde(borrow)] KrV1TickerBody<'a>,
    #[allow(dead_code)] &'a str,
    &'a str,
);

fn kr_v1_ticker<'a>(raw: &'a [u8], out: &mut Vec<Out>) -> Result<&'a str, BaselineError> {
    let m: KrV1Ticker = serde_json::from_slice(raw)?;
    out.push(Out::Quote {
        bid_px: fixed(m.1.b.0)?,
        bid_qty: fixed(m.1.b.2)?,
        ask_px: fixed(m.1.a.0)?,
        ask_qty: fixed(m.1.a.2)?,
    });
    Ok(m.3)
}

fn kr_v1_classify(raw: &[u8]) -> &'static str {
    let v = json(raw);
    let Some(a) = v.as_array() else {
        return "control";
    };
    let name = a.iter().rev().nth(1).and_then(|n| n.as_str()).unwrap_or("");
    if name.starts_with("book") {
        if a[1].get("as").is_some() || a[1].get("bs").is_some() {
            "book_snapshot"
        } else {
            "book"
        }
    } else if name == "trade" {
        "trade"
    } else if name == "ticker" {
        "ticker"
    } else {
        "control"
    }
}

// Kraken v2: objects, numbers for prices and quantities.

#[derive(Deserialize)]
struct KrV2Level {
    price: f64,
    qty: f64,
}

#[derive(Deserialize)]
struct KrV2BookData<'a> {
    symbol: &'a str,
    bids: Vec<KrV2Level>,
    asks: Vec<KrV2Level>,
    checksum: u32,
    timestamp: &'a str,
}

#[derive(Deserialize)]
struct KrV2<'a, T> {
    channel: &'a str,
    #[serde(rename = "type")]
    kind: &'a str,
    data: Vec<T>,
}

fn kr_v2_book<'a>(raw: &'a [u8], out: &mut Vec<Out>) -> Result<&'a str, BaselineError> {
    let m: KrV2<KrV2BookData> = serde_json::from_slice(raw)?;
    if m.channel != "book" || m.kind != "update" {
        return Err(BaselineError::Invalid("not a book update"));
    }
    let mut symbol = "";
    for d in &m.data {
        black_box(d.checksum);
        let ts = rfc3339_to_ns(d.timestamp.as_bytes()).ok_or(BaselineError::Invalid("time"))?;
        // The normalizer emits asks first.
        for (side, ls) in [(BookSide::Ask, &d.asks), (BookSide::Bid, &d.bids)] {
            for l in ls {
                out.push(Out::Delta {
                    side,
                    price: fixed_f64(l.price),
                    qty: fixed_f64(l.qty),
                    ts,
                });
            }
        }
        symbol = d.symbol;
    }
    Ok(symbol)
}

#[derive(Deserialize)]
struct KrV2TradeData<'a> {
    symbol: &'a str,
    side: &'a str,
    price: f64,
    qty: f64,
    trade_id: u64,
    timestamp: &'a str,
}

fn kr_v2_trade<'a>(raw: &'a [u8], out: &mut Vec<Out>) -> Result<&'a str, BaselineError> {
    let m: KrV2<KrV2TradeData> = serde_json::from_slice(raw)?;
    if m.channel != "trade" {
        return Err(BaselineError::Invalid("not a trade"));
    }
    let mut symbol = "";
    for t in &m.data {
        out.push(Out::Trade {
            price: fixed_f64(t.price),
            qty: fixed_f64(t.qty),
            side: match t.side {
                "buy" => Side::Buy,
                "sell" => Side::Sell,
                _ => return Err(BaselineError::Invalid("side")),
            },
            id: TradeId::Num(t.trade_id),
            ts: rfc3339_to_ns(t.timestamp.as_bytes()).ok_or(BaselineError::Invalid("time"))?,
        });
        symbol = t.symbol;
    }
    Ok(symbol)
}

#[derive(Deserialize)]
struct KrV2TickerData<'a> {
    symbol: &'a str,
    bid: f64,
    bid_qty: f64,
    ask: f64,
    ask_qty: f64,
    timestamp: &'a str,
}

fn kr_v2_ticker<'a>(raw: &'a [u8], out: &mut Vec<Out>) -> Result<&'a str, BaselineError> {
    let m: KrV2<KrV2TickerData> = serde_json::from_slice(raw)?;
    if m.channel != "ticker" {
        return Err(BaselineError::Invalid("not a ticker"));
    }
    let mut symbol = "";
    for t in &m.data {
        black_box(rfc3339_to_ns(t.timestamp.as_bytes()).ok_or(BaselineError::Invalid("time"))?);
        out.push(Out::Quote {
            bid_px: fixed_f64(t.bid),
            bid_qty: fixed_f64(t.bid_qty),
            ask_px: fixed_f64(t.ask),
            ask_qty: fixed_f64(t.ask_qty),
        });
        symbol = t.symbol;
    }
    Ok(symbol)
}

// OKX v5.

#[derive(Deserialize)]
struct OkxArg<'a> {
    channel: &'a str,
    #[serde(rename = "instId")]
    inst_id: &'a str,
}

#[derive(Deserialize)]
struct OkxPush<'a, T> {
    #[serde(borrow)]
    arg: OkxArg<'a>,
    action: Option<&'a str>,
    data: Vec<T>,
}

#[derive(Deserialize)]
struct OkxBook<'a> {
    #[serde(borrow)]
    asks: Vec<[&'a str; 4]>,
    #[serde(borrow)]
    bids: Vec<[&'a str; 4]>,
    ts: &'a str,
    checksum: Option<i32>,
}

fn okx_books<'a>(raw: &'a [u8], out: &mut Vec<Out>) -> Result<&'a str, BaselineError> {
    let m: OkxPush<OkxBook> = serde_json::from_slice(raw)?;
    if m.arg.channel != "books" || m.action != Some("update") {
        return Err(BaselineError::Invalid("not a books update"));
    }
    for d in &m.data {
        black_box(d.checksum);
        let ts = ms_text(d.ts)?;
        for (side, ls) in [(BookSide::Bid, &d.bids), (BookSide::Ask, &d.asks)] {
            for [p, q, _, _] in ls {
                out.push(level(side, p, q, ts)?);
            }
        }
    }
    Ok(m.arg.inst_id)
}

#[derive(Deserialize)]
struct OkxTrade<'a> {
    #[serde(rename = "tradeId")]
    trade_id: &'a str,
    px: &'a str,
    sz: &'a str,
    side: &'a str,
    ts: &'a str,
}

fn okx_trades<'a>(raw: &'a [u8], out: &mut Vec<Out>) -> Result<&'a str, BaselineError> {
    let m: OkxPush<OkxTrade> = serde_json::from_slice(raw)?;
    if m.arg.channel != "trades" {
        return Err(BaselineError::Invalid("not trades"));
    }
    for t in &m.data {
        out.push(Out::Trade {
            price: fixed(t.px)?,
            qty: fixed(t.sz)?,
            side: match t.side {
                "buy" => Side::Buy,
                "sell" => Side::Sell,
                _ => return Err(BaselineError::Invalid("side")),
            },
            id: num_id(t.trade_id),
            ts: ms_text(t.ts)?,
        });
    }
    Ok(m.arg.inst_id)
}

#[derive(Deserialize)]
struct OkxTicker<'a> {
    #[serde(rename = "bidPx")]
    bid_px: &'a str,
    #[serde(rename = "bidSz")]
    bid_sz: &'a str,
    #[serde(rename = "askPx")]
    ask_px: &'a str,
    #[serde(rename = "askSz")]
    ask_sz: &'a str,
    ts: &'a str,
}

fn okx_tickers<'a>(raw: &'a [u8], out: &mut Vec<Out>) -> Result<&'a str, BaselineError> {
    let m: OkxPush<OkxTicker> = serde_json::from_slice(raw)?;
    if m.arg.channel != "tickers" {
        return Err(BaselineError::Invalid("not tickers"));
    }
    for t in &m.data {
        black_box(ms_text(t.ts)?);
        out.push(Out::Quote {
            bid_px: fixed(t.bid_px)?,
            bid_qty: fixed(t.bid_sz)?,
            ask_px: fixed(t.ask_px)?,
            ask_qty: fixed(t.ask_sz)?,
        });
    }
    Ok(m.arg.inst_id)
}

fn okx_classify(raw: &[u8]) -> &'static str {
    let v = json(raw);
    if v.get("data").is_none() {
        return "control";
    }
    match (v["arg"]["channel"].as_str(), v["action"].as_str()) {
        (Some("books"), Some("snapshot")) => "books_snapshot",
        (Some("books"), _) => "books",
        (Some("trades"), _) => "trades",
        (Some("tickers"), _) => "tickers",
        _ => "control",
    }
}

// Bybit v5.

#[derive(Deserialize)]
struct BybitBookData<'a> {
    s: &'a str,
    #[serde(borrow)]
    b: Vec<[&'a str; 2]>,
    #[serde(borrow)]
    a: Vec<[&'a str; 2]>,
    u: u64,
    #[serde(rename = "seq")]
    _seq: u64,
}

#[derive(Deserialize)]
struct BybitBook<'a> {
    #[serde(rename = "topic")]
    _topic: &'a str,
    #[serde(rename = "type")]
    kind: &'a str,
    ts: u64,
    #[serde(borrow)]
    data: BybitBookData<'a>,
    cts: Option<u64>,
}

fn bybit_delta<'a>(raw: &'a [u8], out: &mut Vec<Out>) -> Result<&'a str, BaselineError> {
    let m: BybitBook = serde_json::from_slice(raw)?;
    if m.kind != "delta" {
        return Err(BaselineError::Invalid("not a delta"));
    }
    black_box(m.data.u);
    let ts = venue_time_to_ns(m.cts.unwrap_or(m.ts));
    for (side, ls) in [(BookSide::Bid, &m.data.b), (BookSide::Ask, &m.data.a)] {
        for [p, q] in ls {
            out.push(level(side, p, q, ts)?);
        }
    }
    Ok(m.data.s)
}

#[derive(Deserialize)]
struct BybitTradeData<'a> {
    #[serde(rename = "T")]
    time: u64,
    s: &'a str,
    #[serde(rename = "S")]
    side: &'a str,
    v: &'a str,
    p: &'a str,
    i: &'a str,
}

#[derive(Deserialize)]
struct BybitTrades<'a> {
    topic: &'a str,
    #[serde(borrow)]
    data: Vec<BybitTradeData<'a>>,
}

fn bybit_trade<'a>(raw: &'a [u8], out: &mut Vec<Out>) -> Result<&'a str, BaselineError> {
    let m: BybitTrades = serde_json::from_slice(raw)?;
    if !m.topic.starts_with("publicTrade.") {
        return Err(BaselineError::Invalid("not a trade"));
    }
    let mut symbol = "";
    for t in &m.data {
        out.push(Out::Trade {
            price: fixed(t.p)?,
            qty: fixed(t.v)?,
            side: match t.side {
                "Buy" => Side::Buy,
                "Sell" => Side::Sell,
                _ => return Err(BaselineError::Invalid("side")),
            },
            id: num_id(t.i),
            ts: venue_time_to_ns(t.time),
        });
        symbol = t.s;
    }
    Ok(symbol)
}

// Binance USD-M futures (combined-stream envelope).

#[derive(Deserialize)]
struct Combined<'a, T> {
    #[serde(rename = "stream")]
    _stream: &'a str,
    data: T,
}

#[derive(Deserialize)]
struct BnDepth<'a> {
    #[serde(rename = "e")]
    event: &'a str,
    #[serde(rename = "E")]
    event_time: u64,
    #[serde(rename = "T")]
    tx_time: Option<u64>,
    s: &'a str,
    #[serde(rename = "U")]
    first_id: u64,
    u: u64,
    pu: u64,
    #[serde(borrow)]
    b: Vec<[&'a str; 2]>,
    #[serde(borrow)]
    a: Vec<[&'a str; 2]>,
}

fn bn_depth<'a>(raw: &'a [u8], out: &mut Vec<Out>) -> Result<&'a str, BaselineError> {
    let m: Combined<BnDepth> = serde_json::from_slice(raw)?;
    let d = m.data;
    if d.event != "depthUpdate" || d.first_id > d.u {
        return Err(BaselineError::Invalid("not a depthUpdate"));
    }
    black_box(d.pu);
    let ts = venue_time_to_ns(d.tx_time.unwrap_or(d.event_time));
    for (side, ls) in [(BookSide::Bid, &d.b), (BookSide::Ask, &d.a)] {
        for [p, q] in ls {
            out.push(level(side, p, q, ts)?);
        }
    }
    Ok(d.s)
}

#[derive(Deserialize)]
struct BnAggTrade<'a> {
    #[serde(rename = "e")]
    event: &'a str,
    #[serde(rename = "E")]
    event_time: u64,
    s: &'a str,
    #[serde(rename = "a")]
    agg_id: u64,
    p: &'a str,
    q: &'a str,
    #[serde(rename = "T")]
    trade_time: Option<u64>,
    #[serde(rename = "m")]
    buyer_is_maker: bool,
}

fn bn_agg_trade<'a>(raw: &'a [u8], out: &mut Vec<Out>) -> Result<&'a str, BaselineError> {
    let m: Combined<BnAggTrade> = serde_json::from_slice(raw)?;
    let d = m.data;
    if d.event != "aggTrade" {
        return Err(BaselineError::Invalid("not an aggTrade"));
    }
    out.push(Out::Trade {
        price: fixed(d.p)?,
        qty: fixed(d.q)?,
        side: if d.buyer_is_maker {
            Side::Sell
        } else {
            Side::Buy
        },
        id: TradeId::Num(d.agg_id),
        ts: venue_time_to_ns(d.trade_time.unwrap_or(d.event_time)),
    });
    Ok(d.s)
}

#[derive(Deserialize)]
struct BnBookTicker<'a> {
    #[serde(rename = "u")]
    _update_id: u64,
    s: &'a str,
    b: &'a str,
    #[serde(rename = "B")]
    bid_qty: &'a str,
    a: &'a str,
    #[serde(rename = "A")]
    ask_qty: &'a str,
    #[serde(rename = "T")]
    tx_time: Option<u64>,
}

fn bn_book_ticker<'a>(raw: &'a [u8], out: &mut Vec<Out>) -> Result<&'a str, BaselineError> {
    let m: Combined<BnBookTicker> = serde_json::from_slice(raw)?;
    let d = m.data;
    black_box(d.tx_time);
    out.push(Out::Quote {
        bid_px: fixed(d.b)?,
        bid_qty: fixed(d.bid_qty)?,
        ask_px: fixed(d.a)?,
        ask_qty: fixed(d.ask_qty)?,
    });
    Ok(d.s)
}

// Coinbase Advanced Trade: `{"channel", "timestamp", "sequence_num", "events": [..]}`.

#[derive(Deserialize)]
struct CaEnvelope<'a, E> {
    channel: &'a str,
    timestamp: &'a str,
    sequence_num: u64,
    events: Vec<E>,
}

#[derive(Deserialize)]
struct CaL2Update<'a> {
    side: &'a str,
    event_time: &'a str,
    price_level: &'a str,
    new_quantity: &'a str,
}

#[derive(Deserialize)]
struct CaL2Event<'a> {
    #[serde(rename = "type")]
    kind: &'a str,
    product_id: &'a str,
    #[serde(borrow)]
    updates: Vec<CaL2Update<'a>>,
}

fn ca_l2<'a>(raw: &'a [u8], out: &mut Vec<Out>) -> Result<&'a str, BaselineError> {
    let m: CaEnvelope<CaL2Event> = serde_json::from_slice(raw)?;
    if m.channel != "l2_data" {
        return Err(BaselineError::Invalid("not l2_data"));
    }
    black_box((rfc3339(m.timestamp)?, m.sequence_num));
    let mut product = "";
    for e in &m.events {
        if e.kind != "update" {
            return Err(BaselineError::Invalid("not an update"));
        }
        for u in &e.updates {
            let side = match u.side {
                "bid" => BookSide::Bid,
                "offer" | "ask" => BookSide::Ask,
                _ => return Err(BaselineError::Invalid("side")),
            };
            out.push(level(
                side,
                u.price_level,
                u.new_quantity,
                rfc3339(u.event_time)?,
            )?);
        }
        product = e.product_id;
    }
    Ok(product)
}

#[derive(Deserialize)]
struct CaTrade<'a> {
    trade_id: &'a str,
    product_id: &'a str,
    price: &'a str,
    size: &'a str,
    side: &'a str,
    time: &'a str,
}

#[derive(Deserialize)]
struct CaTradeEvent<'a> {
    #[serde(rename = "type")]
    kind: &'a str,
    #[serde(borrow)]
    trades: Vec<CaTrade<'a>>,
}

fn ca_trades<'a>(raw: &'a [u8], out: &mut Vec<Out>) -> Result<&'a str, BaselineError> {
    let m: CaEnvelope<CaTradeEvent> = serde_json::from_slice(raw)?;
    if m.channel != "market_trades" {
        return Err(BaselineError::Invalid("not market_trades"));
    }
    black_box((rfc3339(m.timestamp)?, m.sequence_num));
    let mut product = "";
    for e in &m.events {
        if e.kind != "update" {
            return Err(BaselineError::Invalid("not an update"));
        }
        for t in &e.trades {
            out.push(Out::Trade {
                price: fixed(t.price)?,
                qty: fixed(t.size)?,
                // The maker's side, as the normalizer reads it.
                side: match t.side {
                    "BUY" => Side::Sell,
                    "SELL" => Side::Buy,
                    _ => return Err(BaselineError::Invalid("side")),
                },
                id: num_id(t.trade_id),
                ts: rfc3339(t.time)?,
            });
            product = t.product_id;
        }
    }
    Ok(product)
}

#[derive(Deserialize)]
struct CaTicker<'a> {
    product_id: &'a str,
    best_bid: &'a str,
    best_bid_quantity: &'a str,
    best_ask: &'a str,
    best_ask_quantity: &'a str,
}

#[derive(Deserialize)]
struct CaTickerEvent<'a> {
    #[serde(borrow)]
    tickers: Vec<CaTicker<'a>>,
}

fn ca_ticker<'a>(raw: &'a [u8], out: &mut Vec<Out>) -> Result<&'a str, BaselineError> {
    let m: CaEnvelope<CaTickerEvent> = serde_json::from_slice(raw)?;
    if m.channel != "ticker" {
        return Err(BaselineError::Invalid("not ticker"));
    }
    black_box((rfc3339(m.timestamp)?, m.sequence_num));
    let mut product = "";
    for e in &m.events {
        for t in &e.tickers {
            out.push(Out::Quote {
                bid_px: fixed(t.best_bid)?,
                bid_qty: fixed(t.best_bid_quantity)?,
                ask_px: fixed(t.best_ask)?,
                ask_qty: fixed(t.best_ask_quantity)?,
            });
            product = t.product_id;
        }
    }
    Ok(product)
}

// ---------------------------------------------------------------------------------------
// Generated streams for the venues without a capture (documented shapes).

/// A small deterministic generator (xorshift).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Fixed point (1e-9) to decimal text with exactly `dec` decimals.
fn text(v: i64, dec: u32) -> String {
    let unit = 10i64.pow(9 - dec);
    let (i, f) = (v / 1_000_000_000, (v % 1_000_000_000) / unit);
    if dec == 0 {
        i.to_string()
    } else {
        format!("{i}.{f:0width$}", width = dec as usize)
    }
}

/// A generated two-sided book on a price grid: bids at `mid - (k+1) * tick`, asks at
/// `mid + k * tick`, `levels` per side; an update changes some quantities and deletes and
/// re-adds levels, never crossing (each side keeps its own grid).
struct GenBook {
    rng: Rng,
    mid: i64,
    tick: i64,
    lot: i64,
    levels: i64,
    bids: std::collections::BTreeMap<i64, i64>,
    asks: std::collections::BTreeMap<i64, i64>,
}

impl GenBook {
    fn new(seed: u64, mid: i64, tick: i64, lot: i64, levels: i64) -> GenBook {
        let mut g = GenBook {
            rng: Rng(seed),
            mid,
            tick,
            lot,
            levels,
            bids: Default::default(),
            asks: Default::default(),
        };
        for k in 0..levels {
            let q = g.qty();
            g.bids.insert(mid - (k + 1) * tick, q);
            let q = g.qty();
            g.asks.insert(mid + k * tick, q);
        }
        g
    }

    fn qty(&mut self) -> i64 {
        (1 + self.rng.below(5_000) as i64) * self.lot
    }

    /// `n` changes on one side: (price, new quantity, 0 = delete), applied to the book.
    fn changes(&mut self, side: BookSide, n: usize) -> Vec<(i64, i64)> {
        let mut v: Vec<(i64, i64)> = Vec::with_capacity(n);
        while v.len() < n {
            let k = self.rng.below(self.levels as u64) as i64;
            let price = match side {
                BookSide::Bid => self.mid - (k + 1) * self.tick,
                BookSide::Ask => self.mid + k * self.tick,
            };
            if v.iter().any(|(p, _)| *p == price) {
                continue;
            }
            let book = match side {
                BookSide::Bid => &mut self.bids,
                BookSide::Ask => &mut self.asks,
            };
            // Keep the best level on each side so the top stays put; delete one in four.
            let best = k == 0;
            let qty = if !best && book.contains_key(&price) && self.rng.below(4) == 0 {
                0
            } else {
                self.qty()
            };
            let book = match side {
                BookSide::Bid => &mut self.bids,
                BookSide::Ask => &mut self.asks,
            };
            if qty == 0 {
                book.remove(&price);
            } else {
                book.insert(price, qty);
            }
            v.push((price, qty));
        }
        v
    }
}

fn pairs(levels: &[(i64, i64)], pd: u32, qd: u32) -> String {
    let v: Vec<String> = levels
        .iter()
        .map(|(p, q)| format!("[\"{}\",\"{}\"]", text(*p, pd), text(*q, qd)))
        .collect();
    format!("[{}]", v.join(","))
}

const T0_MS: u64 = 1_714_000_000_000;

/// Bybit `orderbook.50` snapshot then deltas (5 bid and 7 ask levels each, as the documented
/// delta), `u` + 1 each; `publicTrade` one trade per message.
fn bybit_cases(linear: bool) -> (Case, Case) {
    let (kind, venue, pd, qd) = if linear {
        (Kind::BybitLinear, "bybit_linear", 2, 3)
    } else {
        (Kind::BybitSpot, "bybit", 2, 6)
    };
    let mut g = GenBook::new(7, 30_247_200_000_000, 100_000_000, 1_000_000, 50);
    let topic = "orderbook.50.BTCUSDT";
    let mut u = 177_400_506u64;
    let snap_b: Vec<_> = g.bids.iter().rev().map(|(p, q)| (*p, *q)).collect();
    let snap_a: Vec<_> = g.asks.iter().map(|(p, q)| (*p, *q)).collect();
    let snapshot = format!(
        r#"{{"topic":"{topic}","type":"snapshot","ts":{T0_MS},"data":{{"s":"BTCUSDT","b":{},"a":{},"u":{u},"seq":66544703300}},"cts":{}}}"#,
        pairs(&snap_b, pd, qd),
        pairs(&snap_a, pd, qd),
        T0_MS - 2
    );
    let ack = r#"{"success":true,"ret_msg":"","conn_id":"cejreaspqfh3sjdnldmg-p","req_id":"","op":"subscribe"}"#;
    let mut deltas = Vec::new();
    for k in 0..SAMPLES as u64 {
        u += 1;
        let b = g.changes(BookSide::Bid, 5);
        let a = g.changes(BookSide::Ask, 7);
        let ts = T0_MS + 20 * (k + 1);
        deltas.push(Sample {
            payload: format!(
                r#"{{"topic":"{topic}","type":"delta","ts":{ts},"data":{{"s":"BTCUSDT","b":{},"a":{},"u":{u},"seq":{}}},"cts":{}}}"#,
                pairs(&b, pd, qd),
                pairs(&a, pd, qd),
                66_544_703_342 + k,
                ts - 2
            )
            .into_bytes(),
            ts_recv: (ts + 1) * 1_000_000,
        });
    }
    let mut rng = Rng(11);
    let mut trades = Vec::new();
    for k in 0..SAMPLES as u64 {
        let ts = T0_MS + 20 * k;
        let price = text(30_247_200_000_000 + rng.below(200) as i64 * 100_000_000, pd);
        let size = text((1 + rng.below(2_000) as i64) * 1_000_000, qd);
        let side = if rng.below(2) == 0 { "Buy" } else { "Sell" };
        let id = if linear {
            format!("20f43950-d8dd-5b31-9112-{:012x}", 0xa178_eb60_23afu64 + k)
        } else {
            (2_290_000_000_061_666_327u64 + k).to_string()
        };
        let payload = if linear {
            format!(
                r#"{{"topic":"publicTrade.BTCUSDT","type":"snapshot","ts":{},"data":[{{"T":{ts},"s":"BTCUSDT","S":"{side}","v":"{size}","p":"{price}","L":"PlusTick","i":"{id}","BT":false,"seq":{}}}]}}"#,
                ts + 3,
                1_783_284_617 + k
            )
        } else {
            format!(
                r#"{{"topic":"publicTrade.BTCUSDT","ts":{},"type":"snapshot","data":[{{"i":"{id}","T":{ts},"p":"{price}","v":"{size}","S":"{side}","s":"BTCUSDT","BT":false,"RPI":false,"seq":{}}}]}}"#,
                ts + 1,
                40_000_001 + k
            )
        };
        trades.push(Sample {
            payload: payload.into_bytes(),
            ts_recv: (ts + 5) * 1_000_000,
        });
    }
    let id_book: &'static str = Box::leak(format!("{venue}/orderbook_delta").into_boxed_str());
    let id_trade: &'static str = Box::leak(format!("{venue}/publicTrade").into_boxed_str());
    (
        Case {
            id: id_book,
            kind,
            prime: vec![msg(ack, 1), msg(snapshot, 2)],
            samples: deltas,
            baseline: bybit_delta,
            book: Some(usize::MAX),
        },
        Case {
            id: id_trade,
            kind,
            prime: vec![msg(ack, 1)],
            samples: trades,
            baseline: bybit_trade,
            book: None,
        },
    )
}

/// Binance USD-M futures: the first depthUpdate bridges a REST snapshot (`U <= lastUpdateId <=
/// u`), then each event's `pu` is the previous `u`; aggTrade ids consecutive; bookTicker.
fn binance_futures_cases() -> Vec<Case> {
    let mut g = GenBook::new(3, 60_000_100_000_000, 100_000_000, 1_000_000, 200);
    let snap_id = 5_000_000_000u64;
    let snap_b: Vec<_> = g.bids.iter().rev().map(|(p, q)| (*p, *q)).collect();
    let snap_a: Vec<_> = g.asks.iter().map(|(p, q)| (*p, *q)).collect();
    let snapshot = format!(
        r#"{{"lastUpdateId":{snap_id},"E":{T0_MS},"T":{},"bids":{},"asks":{}}}"#,
        T0_MS - 1,
        pairs(&snap_b, 1, 3),
        pairs(&snap_a, 1, 3)
    );
    let depth = |u_first: u64, u: u64, pu: u64, t: u64, b: &[(i64, i64)], a: &[(i64, i64)]| {
        format!(
            r#"{{"stream":"btcusdt@depth@100ms","data":{{"e":"depthUpdate","E":{},"T":{t},"s":"BTCUSDT","U":{u_first},"u":{u},"pu":{pu},"b":{},"a":{}}}}}"#,
            t + 2,
            pairs(b, 1, 3),
            pairs(a, 1, 3)
        )
    };
    // The bridging event changes nothing on the snapshot's book (same quantities re-sent).
    let first_b: Vec<_> = snap_b[..2].to_vec();
    let bridge = depth(snap_id - 3, snap_id + 2, snap_id - 4, T0_MS, &first_b, &[]);
    let mut last = snap_id + 2;
    let mut rng = Rng(5);
    let mut updates = Vec::new();
    for k in 0..SAMPLES as u64 {
        let span = 1 + rng.below(40);
        let (first, u) = (last + 1, last + span);
        let nb = 5 + rng.below(15) as usize;
        let na = 5 + rng.below(15) as usize;
        let b = g.changes(BookSide::Bid, nb);
        let a = g.changes(BookSide::Ask, na);
        let t = T0_MS + 100 * (k + 1);
        updates.push(Sample {
            payload: depth(first, u, last, t, &b, &a).into_bytes(),
            ts_recv: (t + 3) * 1_000_000,
        });
        last = u;
    }
    let mut trades = Vec::new();
    let mut quotes = Vec::new();
    for k in 0..SAMPLES as u64 {
        let t = T0_MS + 10 * k;
        let p = text(60_000_000_000_000 + rng.below(500) as i64 * 100_000_000, 1);
        let q = text((1 + rng.below(5_000) as i64) * 1_000_000, 3);
        let m = rng.below(2) == 0;
        trades.push(Sample {
            payload: format!(
                // Key order as in Binance's USD-M "Aggregate Trade Streams" payload.
                r#"{{"stream":"btcusdt@aggTrade","data":{{"e":"aggTrade","E":{},"s":"BTCUSDT","a":{},"p":"{p}","q":"{q}","f":{},"l":{},"T":{t},"m":{m}}}}}"#,
                t + 1,
                26_129 + k,
                100 + 3 * k,
                102 + 3 * k
            )
            .into_bytes(),
            ts_recv: (t + 4) * 1_000_000,
        });
        let bid = 60_000_000_000_000 + rng.below(500) as i64 * 100_000_000;
        quotes.push(Sample {
            payload: format!(
                // Key order as in Binance's USD-M "Individual Symbol Book Ticker Streams" payload.
                r#"{{"stream":"btcusdt@bookTicker","data":{{"e":"bookTicker","u":{},"E":{},"T":{t},"s":"BTCUSDT","b":"{}","B":"{}","a":"{}","A":"{}"}}}}"#,
                400_900_217 + k,
                t + 1,
                text(bid, 1),
                text((1 + rng.below(5_000) as i64) * 1_000_000, 3),
                text(bid + 100_000_000, 1),
                text((1 + rng.below(5_000) as i64) * 1_000_000, 3),
            )
            .into_bytes(),
            ts_recv: (t + 4) * 1_000_000,
        });
    }
    let ack = r#"{"result":null,"id":1}"#;
    vec![
        Case {
            id: "binance_futures/depthUpdate",
            kind: Kind::BinanceFutures,
            prime: vec![
                msg(ack, 1),
                msg(bridge, 2),
                Prime {
                    payload: snapshot.into_bytes(),
                    ts: 3,
                    snapshot_for: Some("BTCUSDT"),
                },
            ],
            samples: updates,
            baseline: bn_depth,
            book: Some(usize::MAX),
        },
        Case {
            id: "binance_futures/aggTrade",
            kind: Kind::BinanceFutures,
            prime: vec![msg(ack, 1)],
            samples: trades,
            baseline: bn_agg_trade,
            book: None,
        },
        Case {
            id: "binance_futures/bookTicker",
            kind: Kind::BinanceFutures,
            prime: vec![msg(ack, 1)],
            samples: quotes,
            baseline: bn_book_ticker,
            book: None,
        },
    ]
}

fn iso(ns: u64) -> String {
    // 2024-04-24T23:06:40Z is T0_MS; samples stay within the same day.
    let base = T0_MS * 1_000_000;
    let d = ns - base;
    let secs = 6 * 60 + 40 + d / 1_000_000_000;
    format!(
        "2024-04-24T23:{:02}:{:02}.{:09}Z",
        secs / 60,
        secs % 60,
        d % 1_000_000_000
    )
}

/// Coinbase Advanced Trade: the documented l2_data, market_trades and ticker messages, compact,
/// with `sequence_num` contiguous from the subscription (each stream is its own connection).
fn coinbase_advanced_cases() -> Vec<Case> {
    let base = T0_MS * 1_000_000;
    let mut g = GenBook::new(9, 21_921_730_000_000, 10_000_000, 10_000, 100);
    let upd = |side: BookSide, p: i64, q: i64, t: &str| {
        format!(
            r#"{{"side":"{}","event_time":"{t}","price_level":"{}","new_quantity":"{}"}}"#,
            if side == BookSide::Bid {
                "bid"
            } else {
                "offer"
            },
            text(p, 2),
            text(q, 8)
        )
    };
    let t0 = iso(base);
    let mut snap = Vec::new();
    for (p, q) in g.bids.iter().rev() {
        snap.push(upd(BookSide::Bid, *p, *q, "1970-01-01T00:00:00Z"));
    }
    for (p, q) in g.asks.iter() {
        snap.push(upd(BookSide::Ask, *p, *q, "1970-01-01T00:00:00Z"));
    }
    let envelope = |channel: &str, t: &str, seq: u64, events: String| {
        format!(
            r#"{{"channel":"{channel}","client_id":"","timestamp":"{t}","sequence_num":{seq},"events":[{events}]}}"#
        )
    };
    let subs = |seq: u64, ch: &str| {
        envelope(
            "subscriptions",
            &t0,
            seq,
            format!(r#"{{"subscriptions":{{"{ch}":["BTC-USD"]}}}}"#),
        )
    };
    let snapshot = envelope(
        "l2_data",
        &t0,
        1,
        format!(
            r#"{{"type":"snapshot","product_id":"BTC-USD","updates":[{}]}}"#,
            snap.join(",")
        ),
    );
    let mut rng = Rng(13);
    let (mut l2, mut trades, mut tickers) = (Vec::new(), Vec::new(), Vec::new());
    for k in 0..SAMPLES as u64 {
        let ns = base + (k + 1) * 50_000_000;
        let t = iso(ns);
        let nb = 1 + rng.below(3) as usize;
        let na = 1 + rng.below(3) as usize;
        let mut ups: Vec<String> = g
            .changes(BookSide::Bid, nb)
            .into_iter()
            .map(|(p, q)| upd(BookSide::Bid, p, q, &t))
            .collect();
        ups.extend(
            g.changes(BookSide::Ask, na)
                .into_iter()
                .map(|(p, q)| upd(BookSide::Ask, p, q, &t)),
        );
        l2.push(Sample {
            payload: envelope(
                "l2_data",
                &t,
                k + 2,
                format!(
                    r#"{{"type":"update","product_id":"BTC-USD","updates":[{}]}}"#,
                    ups.join(",")
                ),
            )
            .into_bytes(),
            ts_recv: ns + 1_000_000,
        });
        let side = if rng.below(2) == 0 { "BUY" } else { "SELL" };
        trades.push(Sample {
            payload: envelope(
                "market_trades",
                &t,
                k + 1,
                format!(
                    r#"{{"type":"update","trades":[{{"trade_id":"{}","product_id":"BTC-USD","price":"{}","size":"{}","side":"{side}","time":"{t}"}}]}}"#,
                    600_000_000 + k,
                    text(21_921_730_000_000 + rng.below(100) as i64 * 10_000_000, 2),
                    text((1 + rng.below(100_000) as i64) * 10_000, 8)
                ),
            )
            .into_bytes(),
            ts_recv: ns + 1_000_000,
        });
        let bid = 21_931_980_000_000 + rng.below(100) as i64 * 10_000_000;
        tickers.push(Sample {
            payload: envelope(
                "ticker",
                &t,
                k + 1,
                format!(
                    r#"{{"type":"update","tickers":[{{"type":"ticker","product_id":"BTC-USD","price":"{}","volume_24_h":"16038.28770938","low_24_h":"21835.29","high_24_h":"23011.18","low_52_w":"15460","high_52_w":"48240","price_percent_chg_24_h":"-4.15775596190603","best_bid":"{}","best_bid_quantity":"{}","best_ask":"{}","best_ask_quantity":"{}"}}]}}"#,
                    text(bid + 10_000_000, 2),
                    text(bid, 2),
                    text((1 + rng.below(100_000) as i64) * 10_000, 8),
                    text(bid + 20_000_000, 2),
                    text((1 + rng.below(100_000) as i64) * 10_000, 8)
                ),
            )
            .into_bytes(),
            ts_recv: ns + 1_000_000,
        });
    }
    vec![
        Case {
            id: "coinbase_advanced/l2_data",
            kind: Kind::CoinbaseAdvanced,
            prime: vec![msg(subs(0, "level2"), 1), msg(snapshot, 2)],
            samples: l2,
            baseline: ca_l2,
            book: Some(usize::MAX),
        },
        Case {
            id: "coinbase_advanced/market_trades",
            kind: Kind::CoinbaseAdvanced,
            prime: vec![msg(subs(0, "market_trades"), 1)],
            samples: trades,
            baseline: ca_trades,
            book: None,
        },
        Case {
            id: "coinbase_advanced/ticker",
            kind: Kind::CoinbaseAdvanced,
            prime: vec![msg(subs(0, "ticker"), 1)],
            samples: tickers,
            baseline: ca_ticker,
            book: None,
        },
    ]
}

/// The v2 book checksum: CRC32 of the top 10 asks then bids, price at 1 and quantity at 8
/// decimals, digits only.
fn kraken_v2_checksum(g: &GenBook) -> u32 {
    let f = |v: i64, dec: u32| (v / 10i64.pow(9 - dec)).to_string();
    let mut s = String::new();
    for (p, q) in g.asks.iter().take(10) {
        s += &f(*p, 1);
        s += &f(*q, 8);
    }
    for (p, q) in g.bids.iter().rev().take(10) {
        s += &f(*p, 1);
        s += &f(*q, 8);
    }
    crc32fast::hash(s.as_bytes())
}

/// A JSON number with at most `dec` decimals, trailing zeros dropped (as Kraken v2 sends).
fn number(v: i64, dec: u32) -> String {
    let t = text(v, dec);
    if t.contains('.') {
        t.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        t
    }
}

/// Kraken v2 (no capture): the documented instrument, subscribe ack and book snapshot shapes,
/// then book updates (one bid and one ask changed, as the documented update) with the
/// checksum of the resulting top 10, trades, and tickers (the documented `ticker` update).
fn kraken_v2_cases() -> Vec<Case> {
    let instrument = r#"{"channel":"instrument","type":"snapshot","data":{"assets":[{"id":"BTC","status":"enabled","precision":10,"precision_display":5,"borrowable":true,"collateral_value":1.0,"margin_rate":0.01}],"pairs":[{"symbol":"BTC/USD","base":"BTC","quote":"USD","status":"online","qty_precision":8,"qty_increment":0.00000001,"price_precision":1,"cost_precision":5,"marginable":true,"has_index":true,"cost_min":0.5,"margin_initial":0.2,"position_limit_long":250,"position_limit_short":200,"tick_size":0.1,"price_increment":0.1,"qty_min":0.0001}]}}"#;
    let ack = r#"{"method":"subscribe","result":{"channel":"book","depth":10,"snapshot":true,"symbol":"BTC/USD"},"success":true,"time_in":"2023-09-25T09:04:31.742599Z","time_out":"2023-09-25T09:04:31.742648Z"}"#;
    let mut g = GenBook::new(17, 45_284_000_000_000, 100_000_000, 10, 10);
    let lv = |ls: &[(i64, i64)]| {
        ls.iter()
            .map(|(p, q)| format!(r#"{{"price":{},"qty":{}}}"#, number(*p, 1), number(*q, 8)))
            .collect::<Vec<_>>()
            .join(",")
    };
    let snap_b: Vec<_> = g.bids.iter().rev().map(|(p, q)| (*p, *q)).collect();
    let snap_a: Vec<_> = g.asks.iter().map(|(p, q)| (*p, *q)).collect();
    let snapshot = format!(
        r#"{{"channel":"book","type":"snapshot","data":[{{"symbol":"BTC/USD","bids":[{}],"asks":[{}],"checksum":{}}}]}}"#,
        lv(&snap_b),
        lv(&snap_a),
        kraken_v2_checksum(&g)
    );
    let base = T0_MS * 1_000_000;
    let mut updates = Vec::new();
    let mut rng = Rng(19);
    for k in 0..SAMPLES as u64 {
        // Quantity changes only: the depth stays 10 per side, no level falls out.
        let mut one = |side: BookSide| {
            let book = if side == BookSide::Bid {
                &g.bids
            } else {
                &g.asks
            };
            let keys: Vec<i64> = book.keys().copied().collect();
            let p = keys[rng.below(keys.len() as u64) as usize];
            (p, (1 + rng.below(500_000_000) as i64) * 10)
        };
        let (bp, bq) = one(BookSide::Bid);
        let (ap, aq) = one(BookSide::Ask);
        g.bids.insert(bp, bq);
        g.asks.insert(ap, aq);
        let ns = base + (k + 1) * 20_000_000;
        updates.push(Sample {
            payload: format!(
                r#"{{"channel":"book","type":"update","data":[{{"symbol":"BTC/USD","bids":[{}],"asks":[{}],"checksum":{},"timestamp":"{}"}}]}}"#,
                lv(&[(bp, bq)]),
                lv(&[(ap, aq)]),
                kraken_v2_checksum(&g),
                iso(ns)
            )
            .into_bytes(),
            ts_recv: ns + 1_000_000,
        });
    }
    let mut trades = Vec::new();
    for k in 0..SAMPLES as u64 {
        let ns = base + k * 20_000_000;
        let side = if rng.below(2) == 0 { "buy" } else { "sell" };
        let ord = if side == "buy" { "market" } else { "limit" };
        trades.push(Sample {
            payload: format!(
                r#"{{"channel":"trade","type":"update","data":[{{"symbol":"BTC/USD","side":"{side}","price":{},"qty":{},"ord_type":"{ord}","trade_id":{},"timestamp":"{}"}}]}}"#,
                number(45_283_500_000_000 + rng.below(100) as i64 * 100_000_000, 1),
                number((1 + rng.below(10_000_000) as i64) * 10, 8),
                4_665_906 + k,
                iso(ns)
            )
            .into_bytes(),
            ts_recv: ns + 1_000_000,
        });
    }
    let mut tickers = Vec::new();
    for k in 0..SAMPLES as u64 {
        let ns = base + k * 20_000_000;
        let bid = 45_283_400_000_000 + rng.below(100) as i64 * 100_000_000;
        tickers.push(Sample {
            payload: format!(
                r#"{{"channel":"ticker","type":"update","data":[{{"symbol":"BTC/USD","bid":{},"bid_qty":{},"ask":{},"ask_qty":{},"last":45285.2,"volume":1254.4632,"vwap":45312.1,"low":45001.0,"high":45609.8,"change":-23.1,"change_pct":-0.05,"timestamp":"{}"}}]}}"#,
                number(bid, 1),
                number((1 + rng.below(10_000_000) as i64) * 10, 8),
                number(bid + 1_800_000_000, 1),
                number((1 + rng.below(10_000_000) as i64) * 10, 8),
                iso(ns)
            )
            .into_bytes(),
            ts_recv: ns + 1_000_000,
        });
    }
    vec![
        Case {
            id: "kraken/v2_book",
            kind: Kind::KrakenV2,
            prime: vec![msg(instrument, 1), msg(ack, 2), msg(snapshot, 3)],
            samples: updates,
            baseline: kr_v2_book,
            book: Some(10),
        },
        Case {
            id: "kraken/v2_trade",
            kind: Kind::KrakenV2,
            prime: vec![msg(instrument, 1)],
            samples: trades,
            baseline: kr_v2_trade,
            book: None,
        },
        Case {
            id: "kraken/v2_ticker",
            kind: Kind::KrakenV2,
            prime: vec![msg(instrument, 1)],
            samples: tickers,
            baseline: kr_v2_ticker,
            book: None,
        },
    ]
}

fn capture_cases() -> Vec<Case> {
    let mut cases = Vec::new();
    let cb = capture("coinbase_exchange_legacy/level2_ticker_matches/COINBASE.ws.28.0");
    let cb_data = ["l2update", "snapshot", "match", "ticker"];
    for (ty, start, base, book) in [
        (
            "l2update",
            Some("snapshot"),
            cb_l2update as BaselineFn,
            true,
        ),
        ("match", None, cb_match as BaselineFn, false),
        ("ticker", None, cb_ticker as BaselineFn, false),
    ] {
        let other: Vec<&str> = cb_data
            .iter()
            .copied()
            .filter(|k| !(*k == ty || (book && *k == "snapshot")))
            .collect();
        let (prime, samples) = cut(&cb, cb_classify, ty, start, &other);
        cases.push(Case {
            id: Box::leak(format!("coinbase/{ty}").into_boxed_str()),
            kind: Kind::Coinbase,
            prime,
            samples,
            baseline: base,
            book: book.then_some(usize::MAX),
        });
    }
    let kb = capture("kraken_spot_v1/book_1000/KRAKEN.ws.50.0");
    let (prime, samples) = cut(&kb, kr_v1_classify, "book", Some("book_snapshot"), &[]);
    cases.push(Case {
        id: "kraken/v1_book",
        kind: Kind::KrakenV1,
        prime,
        samples,
        baseline: kr_v1_book,
        book: Some(1000),
    });
    for (file, ty, base) in [
        ("trade/KRAKEN.ws.48.0", "trade", kr_v1_trade as BaselineFn),
        (
            "ticker/KRAKEN.ws.49.0",
            "ticker",
            kr_v1_ticker as BaselineFn,
        ),
    ] {
        let msgs = capture(&format!("kraken_spot_v1/{file}"));
        let (prime, samples) = cut(&msgs, kr_v1_classify, ty, None, &[]);
        cases.push(Case {
            id: Box::leak(format!("kraken/v1_{ty}").into_boxed_str()),
            kind: Kind::KrakenV1,
            prime,
            samples,
            baseline: base,
            book: None,
        });
    }
    let okx = capture("okx_v5/books_trades_tickers/OKX.ws.1.0");
    let okx_data = ["books", "books_snapshot", "trades", "tickers"];
    for (ty, start, base, book) in [
        (
            "books",
            Some("books_snapshot"),
            okx_books as BaselineFn,
            true,
        ),
        ("trades", None, okx_trades as BaselineFn, false),
        ("tickers", None, okx_tickers as BaselineFn, false),
    ] {
        let other: Vec<&str> = okx_data
            .iter()
            .copied()
            .filter(|k| !(*k == ty || (book && *k == "books_snapshot")))
            .collect();
        let (prime, samples) = cut(&okx, okx_classify, ty, start, &other);
        cases.push(Case {
            id: Box::leak(format!("okx/{ty}").into_boxed_str()),
            kind: Kind::Okx,
            prime,
            samples,
            baseline: base,
            book: book.then_some(usize::MAX),
        });
    }
    cases
}

fn load() -> Vec<Case> {
    let mut cases = capture_cases();
    cases.extend(kraken_v2_cases());
    let (b, t) = bybit_cases(false);
    cases.extend([b, t]);
    let (b, t) = bybit_cases(true);
    cases.extend([b, t]);
    cases.extend(binance_futures_cases());
    cases.extend(coinbase_advanced_cases());
    cases
}

// ---------------------------------------------------------------------------------------
// Books on the baseline side.

/// Per-symbol books for `serde_json+book`, looked up by a short linear scan (as the
/// normalizers' symbol tables do for a handful of symbols).
#[derive(Clone, Default)]
struct Books {
    books: Vec<(String, OrderBook)>,
    depth: usize,
}

impl Books {
    fn get(&mut self, symbol: &str) -> &mut OrderBook {
        let i = match self.books.iter().position(|(s, _)| s == symbol) {
            Some(i) => i,
            None => {
                self.books.push((symbol.to_string(), OrderBook::new()));
                self.books.len() - 1
            }
        };
        &mut self.books[i].1
    }

    /// Applies the levels; Kraken books keep only `depth` levels per side. Returns false if
    /// the book crossed.
    fn apply(&mut self, symbol: &str, outs: &[Out]) -> bool {
        let depth = self.depth;
        let book = self.get(symbol);
        for o in outs {
            if let Out::Delta {
                side, price, qty, ..
            } = o
            {
                book.set(*side, *price, *qty);
            }
        }
        if depth != usize::MAX {
            let (nb, na) = (book.bids().count(), book.asks().count());
            let drop_b: Vec<i64> = book.bids().skip(depth).map(|l| l.price).collect();
            let drop_a: Vec<i64> = book.asks().skip(depth).map(|l| l.price).collect();
            if nb > depth || na > depth {
                for p in drop_b {
                    book.set(BookSide::Bid, p, 0);
                }
                for p in drop_a {
                    book.set(BookSide::Ask, p, 0);
                }
            }
        }
        !book.is_crossed()
    }
}

/// The baseline's books after priming: rebuilt from the normalizer's snapshot frames, keyed
/// by the symbols the samples name (through their instrument ids).
fn synced_books(case: &Case, frames: &[Frame]) -> Books {
    let mut by_inst: HashMap<u32, OrderBook> = HashMap::new();
    for f in frames {
        if matches!(f.body, Body::BookSnapshot(_) | Body::BookDelta(_)) {
            by_inst.entry(f.instrument).or_default().apply_owned(f);
        }
    }
    // Which instrument id each symbol has: from the normalizer's first frame for a sample.
    let (mut n, _) = primed(case);
    let mut books = Books {
        books: Vec::new(),
        depth: case.book.unwrap_or(usize::MAX),
    };
    let mut out = Output::new();
    let mut parsed = Vec::new();
    for s in &case.samples {
        out.clear();
        parsed.clear();
        let _ = n.on_message(&s.payload.clone(), s.ts_recv, &mut out);
        let Ok(symbol) = (case.baseline)(&s.payload, &mut parsed) else {
            continue;
        };
        if books.books.iter().any(|(b, _)| b == symbol) {
            continue;
        }
        if let Some(f) = out
            .frames
            .iter()
            .find(|f| matches!(f.body, Body::BookDelta(_)))
        {
            let book = by_inst.get(&f.instrument).cloned().unwrap_or_default();
            books.books.push((symbol.to_string(), book));
        }
    }
    books
}

// ---------------------------------------------------------------------------------------
// Checks, outside the timing.

fn check(case: &Case) {
    assert!(!case.samples.is_empty(), "{}: no samples", case.id);
    let (mut n, frames) = primed(case);
    let stats0 = n.as_dyn().stats().clone();
    let mut books = case.book.map(|_| synced_books(case, &frames));
    // The normalizer's books as its frames say, to check its updates against the baseline's.
    let mut frame_books: HashMap<u32, OrderBook> = HashMap::new();
    for f in &frames {
        if matches!(f.body, Body::BookSnapshot(_) | Body::BookDelta(_)) {
            frame_books.entry(f.instrument).or_default().apply_owned(f);
        }
    }
    let (mut out, mut buf, mut parsed) = (Output::new(), Vec::new(), Vec::new());
    for (k, s) in case.samples.iter().enumerate() {
        let at = || {
            format!(
                "{} sample {k}: {}",
                case.id,
                String::from_utf8_lossy(&s.payload)
            )
        };
        parsed.clear();
        let symbol = (case.baseline)(&s.payload, &mut parsed)
            .unwrap_or_else(|e| panic!("{}: baseline failed: {e:?}", at()));
        buf.clear();
        buf.extend_from_slice(&s.payload);
        out.clear();
        n.on_message(&buf, s.ts_recv, &mut out)
            .unwrap_or_else(|e| panic!("{}: normalizer failed: {e}", at()));
        assert!(
            out.actions.is_empty(),
            "{}: actions {:?}",
            at(),
            out.actions
        );
        for f in &out.frames {
            if let Body::Status(st) = &f.body {
                assert!(
                    !matches!(st.code, StatusCode::Gap),
                    "{}: gap {}",
                    at(),
                    st.detail
                );
            }
        }
        let ours: Vec<Out> = out.frames.iter().filter_map(out_of).collect();
        if let Some(books) = books.as_mut() {
            // Kraken may follow the levels with deletes of levels pushed past the depth.
            let (head, tail) = ours.split_at(parsed.len().min(ours.len()));
            assert_eq!(head, parsed.as_slice(), "{}", at());
            assert!(
                tail.iter().all(|o| matches!(o, Out::Delta { qty: 0, .. })),
                "{}: extra frames {tail:?}",
                at()
            );
            assert!(
                books.apply(symbol, &parsed),
                "{}: baseline book crossed",
                at()
            );
            assert!(
                n.live(symbol),
                "{}: the normalizer's book is not live",
                at()
            );
            let inst = out
                .frames
                .iter()
                .find(|f| matches!(f.body, Body::BookDelta(_)))
                .map(|f| f.instrument)
                .unwrap_or_else(|| panic!("{}: no BookDelta", at()));
            let fb = frame_books.entry(inst).or_default();
            for f in &out.frames {
                fb.apply_owned(f);
            }
            let theirs = books.get(symbol);
            let levels = |b: &OrderBook| -> [Vec<(i64, i64)>; 2] {
                [
                    b.bids().map(|l| (l.price, l.qty)).collect(),
                    b.asks().map(|l| (l.price, l.qty)).collect(),
                ]
            };
            assert_eq!(levels(fb), levels(theirs), "{}: books differ", at());
        } else {
            assert_eq!(ours, parsed, "{}", at());
        }
    }
    let stats = n.as_dyn().stats();
    assert_eq!(stats.errors, stats0.errors, "{}: errors", case.id);
    assert_eq!(stats.gaps, stats0.gaps, "{}: gaps", case.id);
    assert_eq!(
        stats0.gaps + stats0.errors,
        0,
        "{}: priming had errors",
        case.id
    );
}

// ---------------------------------------------------------------------------------------
// The subjects.

trait Subject {
    fn step(&mut self, s: &Sample);
    /// Called, untimed, when the cycle wraps to the first sample.
    fn rewind(&mut self) {}
}

struct Tickwire<'c> {
    case: &'c Case,
    n: Norm,
    out: Output,
    buf: Vec<u8>,
}

impl Subject for Tickwire<'_> {
    #[inline]
    fn step(&mut self, s: &Sample) {
        self.buf.clear();
        self.buf.extend_from_slice(&s.payload);
        self.out.clear();
        let r = self.n.on_message(&self.buf, s.ts_recv, &mut self.out);
        let _ = black_box(r);
        black_box(&self.out);
    }

    fn rewind(&mut self) {
        // Book updates and trade / sequence ids apply once: start again from the primed state.
        self.n = primed(self.case).0;
    }
}

struct Serde {
    baseline: BaselineFn,
    buf: Vec<u8>,
    outs: Vec<Out>,
    books: Option<(Books, Books)>,
}

impl Subject for Serde {
    #[inline]
    fn step(&mut self, s: &Sample) {
        self.buf.clear();
        self.buf.extend_from_slice(&s.payload);
        self.outs.clear();
        let r = (self.baseline)(&self.buf, &mut self.outs);
        if let (Some((books, _)), Ok(symbol)) = (self.books.as_mut(), &r) {
            black_box(books.apply(symbol, &self.outs));
        }
        let _ = black_box(r);
        black_box(&self.outs);
    }

    fn rewind(&mut self) {
        if let Some((books, synced)) = self.books.as_mut() {
            books.clone_from(synced);
        }
    }
}

fn run<S: Subject>(iters: u64, samples: &[Sample], pos: &mut usize, subject: &mut S) -> Duration {
    let n = samples.len();
    let mut left = iters;
    let mut total = Duration::ZERO;
    while left > 0 {
        let chunk = (n - *pos).min(usize::try_from(left).unwrap_or(usize::MAX));
        let start = Instant::now();
        for s in &samples[*pos..*pos + chunk] {
            subject.step(s);
        }
        total += start.elapsed();
        *pos += chunk;
        left -= chunk as u64;
        if *pos == n {
            *pos = 0;
            subject.rewind();
        }
    }
    total
}

trait DynSubject {
    fn run(&mut self, iters: u64, samples: &[Sample], pos: &mut usize) -> Duration;
    fn one_pass(&mut self, samples: &[Sample]);
}

impl<S: Subject> DynSubject for S {
    fn run(&mut self, iters: u64, samples: &[Sample], pos: &mut usize) -> Duration {
        run(iters, samples, pos, self)
    }

    fn one_pass(&mut self, samples: &[Sample]) {
        ir_pass(samples, self);
    }
}

/// One pass over the samples, for `valgrind --tool=callgrind --toggle-collect='venues::ir_pass*'`.
#[inline(never)]
fn ir_pass<S: Subject>(samples: &[Sample], subject: &mut S) {
    for s in samples {
        subject.step(s);
    }
}

const SIDES: [&str; 3] = ["tickwire", "serde_json", "serde_json+book"];

fn subject<'c>(case: &'c Case, side: &str) -> Option<Box<dyn DynSubject + 'c>> {
    let serde = |books: bool| Serde {
        baseline: case.baseline,
        buf: Vec::with_capacity(1 << 16),
        outs: Vec::with_capacity(1024),
        books: books.then(|| {
            let synced = synced_books(case, &primed(case).1);
            (synced.clone(), synced)
        }),
    };
    Some(match side {
        "tickwire" => Box::new(Tickwire {
            case,
            n: primed(case).0,
            out: Output::new(),
            buf: Vec::with_capacity(1 << 16),
        }),
        "serde_json" => Box::new(serde(false)),
        "serde_json+book" if case.book.is_some() => Box::new(serde(true)),
        _ => return None,
    })
}

fn venues(c: &mut Criterion, cases: &[Case]) {
    for case in cases {
        let mut g = c.benchmark_group(format!("venues/{}", case.id));
        g.throughput(Throughput::Bytes(mean_len(&case.samples)));
        for side in SIDES {
            let Some(mut s) = subject(case, side) else {
                continue;
            };
            let mut pos = 0;
            g.bench_function(side, |b| {
                b.iter_custom(|iters| s.run(iters, &case.samples, &mut pos))
            });
        }
        g.finish();
    }
}

/// `VENUES_IR=<venue>/<type>/<side>`: one warm-up pass (then rewound), one pass through
/// [`ir_pass`].
fn ir_mode(cases: &[Case], id: &str) {
    let (case_id, side) = id.rsplit_once('/').expect("<venue>/<type>/<side>");
    let case = cases.iter().find(|c| c.id == case_id).unwrap_or_else(|| {
        let ids: Vec<&str> = cases.iter().map(|c| c.id).collect();
        panic!("unknown case {case_id:?}; one of {ids:?}")
    });
    let mut s = subject(case, side).unwrap_or_else(|| panic!("unknown side {side:?}"));
    let mut pos = 0;
    s.run(case.samples.len() as u64, &case.samples, &mut pos);
    s.one_pass(&case.samples);
    eprintln!(
        "{id}: {} messages through ir_pass, mean {} bytes",
        case.samples.len(),
        mean_len(&case.samples)
    );
}

fn main() {
    let cases = load();
    match std::env::var("VENUES_IR") {
        Ok(id) => ir_mode(&cases, &id),
        Err(_) => {
            for case in &cases {
                check(case);
            }
            let mut c = Criterion::default().configure_from_args();
            venues(&mut c, &cases);
            c.final_summary();
        }
    }
}
