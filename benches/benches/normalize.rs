//! Binance normalize cost per message, beside a plain serde_json typed parse of the same
//! messages, on the real capture that ships with the project.
//!
//! One criterion iteration is one message; the inputs cycle through the first [`SAMPLES`]
//! messages of each type. Every message is first copied into a reused buffer (the normalizer
//! parses in place), on both sides. See BENCHMARKS.md for the method and the figures.
//!
//! - `tickwire`: `BinanceNormalizer::on_message` (simd-json tape, dispatch, fixed-point
//!   decimals, symbol table, stats; for depth also the book sync, the book update and one
//!   BookDelta frame per level).
//! - `serde_json`: `serde_json::from_slice` into `#[derive(Deserialize)]` structs for the
//!   combined envelope and the message (borrowed `&str` fields, the type known up front), with
//!   the decimal strings parsed by `wire::parse_decimal` into the same i64 values.
//! - `serde_json+book` (depth only): the same, then the levels applied to an `OrderBook`
//!   cloned from the synced one, as the normalizer's book sync does.
//!
//! Before timing, `check` runs every sample through both sides and asserts they produce the
//! same values, and that the normalizer applies every depth update to its live book.
//!
//! `NORMALIZE_IR=<type>/<side>` (e.g. `trade/tickwire`) skips criterion and runs one warm-up
//! pass and one pass over that subject's samples through `ir_pass`, so
//! `valgrind --tool=callgrind --toggle-collect='normalize::ir_pass*'` gives exact instruction
//! counts per message, free of this VM's noise.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group};
use serde::Deserialize;
use tickwire_feed::binance::BinanceNormalizer;
use tickwire_feed::book::OrderBook;
use tickwire_feed::capture::{CaptureReader, Record, RecordKind};
use tickwire_feed::clock::venue_time_to_ns;
use tickwire_feed::{Normalizer, Output};
use tickwire_sdk::wire::{
    Body, BookSide, DecimalError, Frame, Level, Side, TradeId, parse_decimal,
};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const CAPTURE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../replay-data/captures/binance_spot/depth100ms_bookTicker_trade_restSnapshot/btcusdt_20240808.gz"
);

/// Messages of each type in the input set.
const SAMPLES: usize = 2_000;

const SYMBOL: &str = "BTCUSDT";

/// One captured message.
struct Sample {
    payload: Vec<u8>,
    ts_recv: u64,
}

/// The capture, cut into the prefix that syncs the book and the sample sets.
struct Inputs {
    /// Records up to and including the one after which BTCUSDT's book is live.
    prefix: Vec<Record>,
    trade: Vec<Sample>,
    book_ticker: Vec<Sample>,
    /// Depth updates after the prefix, in capture order: each one chains on the previous.
    depth: Vec<Sample>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum MsgType {
    Trade,
    BookTicker,
    Depth,
    Other,
}

fn msg_type(payload: &[u8]) -> MsgType {
    let v: serde_json::Value = serde_json::from_slice(payload).expect("capture line is JSON");
    let data = v.get("data").unwrap_or(&v);
    match data.get("e").and_then(|e| e.as_str()) {
        Some("trade") => MsgType::Trade,
        Some("depthUpdate") => MsgType::Depth,
        Some(_) => MsgType::Other,
        None if data.get("u").is_some() && data.get("B").is_some() => MsgType::BookTicker,
        None => MsgType::Other,
    }
}

/// Feeds one captured record to `n` as a driver would.
fn feed(n: &mut BinanceNormalizer, r: &Record, buf: &mut Vec<u8>, out: &mut Output) {
    buf.clear();
    buf.extend_from_slice(&r.payload);
    out.clear();
    let ts = r.ts_ns.unwrap_or(0);
    let result = match &r.kind {
        RecordKind::Received => n.on_message(buf, ts, out),
        RecordKind::Http { .. } => {
            let symbol = r.url_symbol().unwrap_or(SYMBOL).to_string();
            n.on_snapshot(&symbol, buf, ts, out)
        }
        RecordKind::Sent { .. } | RecordKind::Connect { .. } => Ok(()),
    };
    result.unwrap_or_else(|e| panic!("capture line {}: {e}", r.line));
}

/// A fresh normalizer that has seen the prefix: BTCUSDT's book is live.
fn synced_normalizer(prefix: &[Record]) -> BinanceNormalizer {
    let mut n = BinanceNormalizer::spot(&[SYMBOL.to_string()]);
    let mut out = Output::new();
    let mut buf = Vec::new();
    n.on_connect(prefix.first().and_then(|r| r.ts_ns).unwrap_or(0), &mut out);
    for r in prefix {
        feed(&mut n, r, &mut buf, &mut out);
    }
    assert!(n.book(SYMBOL).is_some(), "the prefix must sync the book");
    n
}

fn load() -> Inputs {
    let records = CaptureReader::open(CAPTURE)
        .expect("open the capture")
        .read_all()
        .expect("read the capture");
    // The prefix: feed until the book goes live (the REST snapshot line, or the first depth
    // event after it if the snapshot had to wait for its bridging event).
    let mut n = BinanceNormalizer::spot(&[SYMBOL.to_string()]);
    let (mut buf, mut out) = (Vec::new(), Output::new());
    let mut prefix_len = 0;
    for (i, r) in records.iter().enumerate() {
        feed(&mut n, r, &mut buf, &mut out);
        if n.book(SYMBOL).is_some() {
            prefix_len = i + 1;
            break;
        }
    }
    assert!(prefix_len > 0, "the capture never syncs the book");
    let mut inputs = Inputs {
        prefix: records[..prefix_len].to_vec(),
        trade: Vec::new(),
        book_ticker: Vec::new(),
        depth: Vec::new(),
    };
    for (i, r) in records.iter().enumerate() {
        if r.kind != RecordKind::Received {
            continue;
        }
        let set = match msg_type(&r.payload) {
            MsgType::Trade => &mut inputs.trade,
            MsgType::BookTicker => &mut inputs.book_ticker,
            MsgType::Depth if i >= prefix_len => &mut inputs.depth,
            MsgType::Depth | MsgType::Other => continue,
        };
        if set.len() < SAMPLES {
            set.push(Sample {
                payload: r.payload.clone(),
                ts_recv: r.ts_ns.unwrap_or(0),
            });
        }
    }
    for (name, set) in [
        ("trade", &inputs.trade),
        ("bookTicker", &inputs.book_ticker),
        ("depthUpdate", &inputs.depth),
    ] {
        assert_eq!(set.len(), SAMPLES, "not enough {name} messages");
    }
    inputs
}

fn mean_len(samples: &[Sample]) -> u64 {
    let total: usize = samples.iter().map(|s| s.payload.len()).sum();
    (total as f64 / samples.len() as f64).round() as u64
}

// ---------------------------------------------------------------------------------------
// The serde_json baseline.

#[derive(Debug)]
#[allow(dead_code)] // Read through Debug only, when a baseline panics.
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

/// The combined-stream envelope `{"stream":..,"data":..}`.
#[derive(Deserialize)]
struct Combined<'a, T> {
    #[serde(rename = "stream")]
    _stream: &'a str,
    data: T,
}

#[derive(Deserialize)]
struct TradeMsg<'a> {
    #[serde(rename = "e")]
    event: &'a str,
    #[serde(rename = "E")]
    event_time: u64,
    #[serde(rename = "s")]
    _symbol: &'a str,
    #[serde(rename = "t")]
    trade_id: u64,
    #[serde(rename = "p")]
    price: &'a str,
    #[serde(rename = "q")]
    qty: &'a str,
    #[serde(rename = "T")]
    trade_time: Option<u64>,
    #[serde(rename = "m")]
    buyer_is_maker: bool,
}

#[derive(Deserialize)]
struct BookTickerMsg<'a> {
    #[serde(rename = "u")]
    _update_id: u64,
    #[serde(rename = "s")]
    _symbol: &'a str,
    #[serde(rename = "b")]
    bid_px: &'a str,
    #[serde(rename = "B")]
    bid_qty: &'a str,
    #[serde(rename = "a")]
    ask_px: &'a str,
    #[serde(rename = "A")]
    ask_qty: &'a str,
}

#[derive(Deserialize)]
struct DepthMsg<'a> {
    #[serde(rename = "e")]
    event: &'a str,
    #[serde(rename = "E")]
    event_time: u64,
    #[serde(rename = "s")]
    _symbol: &'a str,
    #[serde(rename = "U")]
    first_id: u64,
    #[serde(rename = "u")]
    last_id: u64,
    #[serde(rename = "b", borrow)]
    bids: Vec<[&'a str; 2]>,
    #[serde(rename = "a", borrow)]
    asks: Vec<[&'a str; 2]>,
}

/// What the baseline makes of a trade: the values of the normalizer's Trade frame.
#[derive(Debug, PartialEq, Eq)]
struct TradeOut {
    price: i64,
    qty: i64,
    side: Side,
    trade_id: u64,
    ts_exchange: u64,
}

/// What the baseline makes of a bookTicker: the values of the normalizer's Quote frame.
#[derive(Debug, PartialEq, Eq)]
struct QuoteOut {
    bid_px: i64,
    bid_qty: i64,
    ask_px: i64,
    ask_qty: i64,
}

/// What the baseline makes of a depthUpdate (reused between messages, like the normalizer's
/// scratch event).
#[derive(Debug, Default)]
struct DepthOut {
    first_id: u64,
    last_id: u64,
    ts_exchange: u64,
    bids: Vec<Level>,
    asks: Vec<Level>,
}

fn serde_trade(raw: &[u8]) -> Result<TradeOut, BaselineError> {
    let m: Combined<TradeMsg> = serde_json::from_slice(raw)?;
    let d = m.data;
    if d.event != "trade" {
        return Err(BaselineError::Invalid("not a trade"));
    }
    Ok(TradeOut {
        price: fixed(d.price)?,
        qty: fixed(d.qty)?,
        side: if d.buyer_is_maker {
            Side::Sell
        } else {
            Side::Buy
        },
        trade_id: d.trade_id,
        ts_exchange: venue_time_to_ns(d.trade_time.unwrap_or(d.event_time)),
    })
}

fn serde_book_ticker(raw: &[u8]) -> Result<QuoteOut, BaselineError> {
    let m: Combined<BookTickerMsg> = serde_json::from_slice(raw)?;
    let d = m.data;
    Ok(QuoteOut {
        bid_px: fixed(d.bid_px)?,
        bid_qty: fixed(d.bid_qty)?,
        ask_px: fixed(d.ask_px)?,
        ask_qty: fixed(d.ask_qty)?,
    })
}

fn serde_levels(src: &[[&str; 2]], out: &mut Vec<Level>) -> Result<(), BaselineError> {
    out.clear();
    out.reserve(src.len());
    for [p, q] in src {
        let (price, qty) = (fixed(p)?, fixed(q)?);
        if price <= 0 || qty < 0 {
            return Err(BaselineError::Invalid("level out of range"));
        }
        out.push(Level { price, qty });
    }
    Ok(())
}

fn serde_depth(raw: &[u8], out: &mut DepthOut) -> Result<(), BaselineError> {
    let m: Combined<DepthMsg> = serde_json::from_slice(raw)?;
    let d = m.data;
    if d.event != "depthUpdate" {
        return Err(BaselineError::Invalid("not a depthUpdate"));
    }
    if d.first_id > d.last_id {
        return Err(BaselineError::Invalid("U > u"));
    }
    out.first_id = d.first_id;
    out.last_id = d.last_id;
    out.ts_exchange = venue_time_to_ns(d.event_time);
    serde_levels(&d.bids, &mut out.bids)?;
    serde_levels(&d.asks, &mut out.asks)?;
    Ok(())
}

/// Applies a parsed depth update to `book` and checks it is not crossed, as the book sync
/// does for a live book.
fn apply(book: &mut OrderBook, d: &DepthOut) -> bool {
    for l in &d.bids {
        book.set(BookSide::Bid, l.price, l.qty);
    }
    for l in &d.asks {
        book.set(BookSide::Ask, l.price, l.qty);
    }
    !book.is_crossed()
}

// ---------------------------------------------------------------------------------------
// Checks, outside the timing: both sides accept every sample and agree on the values, and
// the normalizer applies every depth update to its live book.

fn check(inputs: &Inputs) {
    let mut n = synced_normalizer(&inputs.prefix);
    let (mut buf, mut out) = (Vec::new(), Output::new());
    let mut normalize = |n: &mut BinanceNormalizer, s: &Sample| -> Vec<Frame> {
        buf.clear();
        buf.extend_from_slice(&s.payload);
        out.clear();
        n.on_message(&buf, s.ts_recv, &mut out)
            .expect("the normalizer accepts every sample");
        assert!(out.actions.is_empty(), "no action expected");
        std::mem::take(&mut out.frames)
    };
    for s in &inputs.trade {
        let frames = normalize(&mut n, s);
        let ours = match frames.as_slice() {
            [f] => match &f.body {
                Body::Trade(t) => TradeOut {
                    price: t.price,
                    qty: t.qty,
                    side: t.side,
                    trade_id: match t.trade_id {
                        TradeId::Num(id) => id,
                        _ => panic!("numeric trade id expected"),
                    },
                    ts_exchange: f.ts_exchange,
                },
                other => panic!("trade frame expected, got {other:?}"),
            },
            _ => panic!("one frame per trade expected, got {frames:?}"),
        };
        assert_eq!(serde_trade(&s.payload).unwrap(), ours);
    }
    for s in &inputs.book_ticker {
        let frames = normalize(&mut n, s);
        let ours = match frames.as_slice() {
            [f] => match &f.body {
                Body::Quote(q) => QuoteOut {
                    bid_px: q.bid_px,
                    bid_qty: q.bid_qty,
                    ask_px: q.ask_px,
                    ask_qty: q.ask_qty,
                },
                other => panic!("quote frame expected, got {other:?}"),
            },
            _ => panic!("one frame per bookTicker expected, got {frames:?}"),
        };
        assert_eq!(serde_book_ticker(&s.payload).unwrap(), ours);
    }
    // Depth: a fresh synced normalizer, the samples in order, every one applied.
    let mut n = synced_normalizer(&inputs.prefix);
    let mut book = n.book(SYMBOL).expect("live").clone();
    let mut parsed = DepthOut::default();
    for s in &inputs.depth {
        serde_depth(&s.payload, &mut parsed).unwrap();
        assert!(apply(&mut book, &parsed), "baseline book crossed");
        let frames = normalize(&mut n, s);
        assert_eq!(
            n.book(SYMBOL).expect("book stays live"),
            &book,
            "books differ after update {}",
            parsed.last_id
        );
        let ours: Vec<(BookSide, i64, i64)> = frames
            .iter()
            .map(|f| match &f.body {
                Body::BookDelta(d) => {
                    assert_eq!(f.ts_exchange, parsed.ts_exchange);
                    (d.side, d.price, d.qty)
                }
                other => panic!("only BookDelta frames expected, got {other:?}"),
            })
            .collect();
        let theirs: Vec<(BookSide, i64, i64)> = parsed
            .bids
            .iter()
            .map(|l| (BookSide::Bid, l.price, l.qty))
            .chain(parsed.asks.iter().map(|l| (BookSide::Ask, l.price, l.qty)))
            .collect();
        assert_eq!(ours, theirs, "depth update {} not applied", parsed.last_id);
    }
    let stats = n.stats();
    assert_eq!(stats.gaps, 0);
    assert_eq!(stats.errors, 0);
}

// ---------------------------------------------------------------------------------------
// The subjects: what one iteration does, for each side.

/// One side of a comparison: handles one message per call.
trait Subject {
    /// Handles sample `s` (copy into the reused buffer, then parse / normalize).
    fn step(&mut self, s: &Sample);
    /// Called, untimed, when the cycle through the samples wraps to the first one again.
    fn rewind(&mut self) {}
}

/// `BinanceNormalizer::on_message`, as the feed driver calls it.
struct Tickwire<'p> {
    n: BinanceNormalizer,
    out: Output,
    buf: Vec<u8>,
    prefix: &'p [Record],
    /// Rebuild the synced normalizer on rewind (depth: the same updates apply again).
    rebuild: bool,
}

impl<'p> Tickwire<'p> {
    fn new(prefix: &'p [Record], rebuild: bool) -> Tickwire<'p> {
        Tickwire {
            n: synced_normalizer(prefix),
            out: Output::new(),
            buf: Vec::with_capacity(1 << 16),
            prefix,
            rebuild,
        }
    }
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
        if self.rebuild {
            self.n = synced_normalizer(self.prefix);
        }
    }
}

/// What the serde_json side parses.
#[derive(Clone, Copy)]
enum SerdeKind {
    Trade,
    BookTicker,
    Depth,
    /// Depth, then applied to the book.
    DepthBook,
}

/// The serde_json baseline.
struct Serde {
    kind: SerdeKind,
    buf: Vec<u8>,
    depth: DepthOut,
    book: OrderBook,
    /// The book to start over from on rewind (`DepthBook`).
    synced_book: OrderBook,
}

impl Serde {
    fn new(kind: SerdeKind, synced_book: OrderBook) -> Serde {
        Serde {
            kind,
            buf: Vec::with_capacity(1 << 16),
            depth: DepthOut::default(),
            book: synced_book.clone(),
            synced_book,
        }
    }
}

impl Subject for Serde {
    #[inline]
    fn step(&mut self, s: &Sample) {
        self.buf.clear();
        self.buf.extend_from_slice(&s.payload);
        match self.kind {
            SerdeKind::Trade => {
                let _ = black_box(serde_trade(&self.buf));
            }
            SerdeKind::BookTicker => {
                let _ = black_box(serde_book_ticker(&self.buf));
            }
            SerdeKind::Depth => {
                let _ = black_box(serde_depth(&self.buf, &mut self.depth));
                black_box(&self.depth);
            }
            SerdeKind::DepthBook => {
                if serde_depth(&self.buf, &mut self.depth).is_ok() {
                    black_box(apply(&mut self.book, &self.depth));
                }
            }
        }
    }

    fn rewind(&mut self) {
        if let SerdeKind::DepthBook = self.kind {
            self.book.clone_from(&self.synced_book);
        }
    }
}

// ---------------------------------------------------------------------------------------
// The timing loop.

/// Runs `iters` messages through `subject`, cycling through `samples` from `*pos`, and
/// returns the time spent in `step` (rewinds are not timed).
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

/// The book BTCUSDT has once the prefix is fed.
fn synced_book(inputs: &Inputs) -> OrderBook {
    synced_normalizer(&inputs.prefix)
        .book(SYMBOL)
        .expect("live")
        .clone()
}

/// Every subject, by its criterion id (`<message type>/<side>`), with its samples.
fn subject<'a>(inputs: &'a Inputs, id: &str) -> Option<(&'a [Sample], Box<dyn DynSubject + 'a>)> {
    let (ty, side) = id.split_once('/')?;
    let samples: &[Sample] = match ty {
        "trade" => &inputs.trade,
        "bookTicker" => &inputs.book_ticker,
        "depthUpdate" => &inputs.depth,
        _ => return None,
    };
    let serde = |kind| {
        let book = match kind {
            SerdeKind::DepthBook => synced_book(inputs),
            _ => OrderBook::new(),
        };
        Box::new(Serde::new(kind, book)) as Box<dyn DynSubject>
    };
    let subject = match (ty, side) {
        ("depthUpdate", "tickwire") => Box::new(Tickwire::new(&inputs.prefix, true)) as _,
        (_, "tickwire") => Box::new(Tickwire::new(&inputs.prefix, false)) as _,
        ("trade", "serde_json") => serde(SerdeKind::Trade),
        ("bookTicker", "serde_json") => serde(SerdeKind::BookTicker),
        ("depthUpdate", "serde_json") => serde(SerdeKind::Depth),
        ("depthUpdate", "serde_json+book") => serde(SerdeKind::DepthBook),
        _ => return None,
    };
    Some((samples, subject))
}

/// The subjects benchmarked, in order.
const SUBJECTS: [&str; 7] = [
    "trade/tickwire",
    "trade/serde_json",
    "bookTicker/tickwire",
    "bookTicker/serde_json",
    "depthUpdate/tickwire",
    "depthUpdate/serde_json",
    "depthUpdate/serde_json+book",
];

/// Object-safe wrapper so subjects of different types can be listed together; criterion and
/// the instruction-count mode call through it once per batch, never per message.
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

/// One pass over the samples, for instruction counts: `valgrind --tool=callgrind
/// --toggle-collect='normalize::ir_pass*'` counts exactly the work of `samples.len()`
/// messages.
#[inline(never)]
fn ir_pass<S: Subject>(samples: &[Sample], subject: &mut S) {
    for s in samples {
        subject.step(s);
    }
}

fn normalize(c: &mut Criterion) {
    let inputs = load();
    check(&inputs);
    for ty in ["trade", "bookTicker", "depthUpdate"] {
        let mut g = c.benchmark_group(format!("normalize/{ty}"));
        let mut first = true;
        for id in SUBJECTS
            .iter()
            .filter(|id| id.starts_with(&format!("{ty}/")))
        {
            let (samples, mut subject) = subject(&inputs, id).expect("known subject");
            if first {
                g.throughput(Throughput::Bytes(mean_len(samples)));
                first = false;
            }
            let name = id.split_once('/').map_or(*id, |(_, side)| side);
            let mut pos = 0;
            g.bench_function(name, |b| {
                b.iter_custom(|iters| subject.run(iters, samples, &mut pos))
            });
        }
        g.finish();
    }
}

/// `NORMALIZE_IR=<subject>`: instead of criterion, one warm-up pass then one pass over the
/// samples of that subject through [`ir_pass`], for callgrind (see BENCHMARKS.md).
fn ir_mode(id: &str) {
    let inputs = load();
    let (samples, mut subject) = subject(&inputs, id)
        .unwrap_or_else(|| panic!("unknown subject {id:?}; one of {SUBJECTS:?}"));
    let mut pos = 0;
    // Warm-up (not collected): buffers grow to size, then the state is rewound.
    subject.run(samples.len() as u64, samples, &mut pos);
    subject.one_pass(samples);
    eprintln!("{id}: {} messages through ir_pass", samples.len());
}

criterion_group!(benches, normalize);

fn main() {
    match std::env::var("NORMALIZE_IR") {
        Ok(id) => ir_mode(&id),
        Err(_) => {
            benches();
            Criterion::default().configure_from_args().final_summary();
        }
    }
}
