//! Coinbase Advanced Trade market data (`wss://advanced-trade-ws.coinbase.com`, path `/`),
//! as documented at docs.cdp.coinbase.com/coinbase-app/advanced-trade-apis/websocket/
//! websocket-overview and .../websocket-channels.
//!
//! - Requests: one channel each, `{"type":"subscribe"|"unsubscribe","product_ids":[..],
//!   "channel":".."}` (`heartbeats` takes no products). An accepted request is answered on the
//!   `subscriptions` channel with every subscription the connection now has
//!   (`{"level2":["BTC-USD"],"heartbeats":["heartbeats"]}`); a rejected one (unknown product or
//!   channel, no products, not JSON) with `{"type":"error","message":"failure to subscribe"}`,
//!   the connection staying open. The public channels need no JWT; one is accepted and not
//!   checked.
//! - Every other message is the envelope `{"channel":..,"client_id":"","timestamp":..,
//!   "sequence_num":..,"events":[..]}`; `sequence_num` counts this connection's messages from
//!   0, across channels (errors carry none); `timestamp` is RFC 3339 with nanoseconds.
//! - Channels: `level2` (sent as `l2_data`: a `snapshot` event with the whole book, then one
//!   `update` event per book batch with the levels that changed, `side` `bid`/`offer`,
//!   `new_quantity` absolute, `"0"` removes), `market_trades` (a `snapshot` of the trades this
//!   connection saw, at most 50, then one `update` per trade; `side` is the maker's, as the
//!   adapter reads it), `ticker` (a `snapshot` on subscribing, then an `update` per trade with
//!   the best bid/ask and their quantities at that moment; the 24 h and 52 w fields are the
//!   trades this connection has seen), `heartbeats` (once a second, `heartbeat_counter`
//!   counting from 1).
//! - Prices carry the tick's decimals, sizes the step's. No application-level ping exists.

use std::collections::VecDeque;
use std::fmt::Write as _;

use serde_json::Value;
use tickwire_sdk::wire::{BookSide, Level, Venue};

use super::coinbase::{Book, LastTrade, Stats, price_str, quoted, rfc3339, size_str, top};
use super::{Ctx, Dialect, Session, lookup, mapped, venue_symbol};
use crate::sim::fanout::CloseReason;
use crate::sim::market::{Emitted, Event};
use crate::sim::stream::{StreamKind, SymbolId, SymbolSpec};

/// Trades a `market_trades` snapshot holds at most.
pub const TRADES_SNAPSHOT: usize = 50;

/// The Coinbase Advanced Trade dialect (`Venue::CoinbaseAdvanced`), served on `/`.
#[derive(Debug, Clone, Copy, Default)]
pub struct AdvancedTradeDialect;

impl Dialect for AdvancedTradeDialect {
    fn venue(&self) -> Venue {
        Venue::CoinbaseAdvanced
    }

    fn paths(&self) -> &'static [&'static str] {
        &["/"]
    }

    fn session(&self, _path: &str) -> Box<dyn Session> {
        Box::new(AdvancedTradeSession::new())
    }

    fn symbol(&self, spec: &SymbolSpec) -> String {
        venue_symbol(spec, "-")
    }
}

/// The product channels served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ch {
    Level2,
    MarketTrades,
    Ticker,
}

impl Ch {
    fn name(self) -> &'static str {
        match self {
            Ch::Level2 => "level2",
            Ch::MarketTrades => "market_trades",
            Ch::Ticker => "ticker",
        }
    }

    fn parse(name: &str) -> Option<Ch> {
        [Ch::Level2, Ch::MarketTrades, Ch::Ticker]
            .into_iter()
            .find(|c| c.name() == name)
    }
}

#[derive(Debug, Default)]
struct Product {
    book: Option<Book>,
    /// Level2 was subscribed before the book was known: its snapshot is due.
    pending: bool,
    trades: VecDeque<LastTrade>,
    bbo: Option<(Level, Level)>,
    stats: Stats,
}

/// One Coinbase Advanced Trade connection.
#[derive(Debug, Default)]
pub struct AdvancedTradeSession {
    /// Product subscriptions, in the order channels were first subscribed.
    subs: Vec<(Ch, Vec<SymbolId>)>,
    heartbeats: bool,
    heartbeat_counter: u64,
    /// The next `sequence_num`.
    sequence: u64,
    /// `now_ns` of the first call, for the heartbeats' monotonic clock.
    started_ns: Option<u64>,
    products: Vec<Product>,
}

const FAILED: &str = r#"{"type":"error","message":"failure to subscribe"}"#;

impl AdvancedTradeSession {
    /// A connection with no subscriptions.
    pub fn new() -> AdvancedTradeSession {
        AdvancedTradeSession::default()
    }

    fn product(&mut self, id: SymbolId) -> &mut Product {
        let i = id as usize;
        if self.products.len() <= i {
            self.products.resize_with(i + 1, Product::default);
        }
        &mut self.products[i]
    }

    fn subscribed(&self, ch: Ch, id: SymbolId) -> bool {
        self.subs
            .iter()
            .any(|(c, ids)| *c == ch && ids.contains(&id))
    }

    /// The envelope around `events` (a JSON array text), numbered.
    fn envelope(&mut self, channel: &str, ns: u64, events: &str) -> String {
        let seq = self.sequence;
        self.sequence += 1;
        format!(
            r#"{{"channel":"{channel}","client_id":"","timestamp":"{}","sequence_num":{seq},"events":{events}}}"#,
            rfc3339(ns, 9)
        )
    }

    fn subscriptions(&mut self, ctx: &Ctx<'_>) -> String {
        let mut body: Vec<String> = self
            .subs
            .iter()
            .map(|(ch, ids)| {
                let names: Vec<String> = ids
                    .iter()
                    .filter_map(|&id| ctx.catalog.spec(id))
                    .map(|s| quoted(&venue_symbol(s, "-")))
                    .collect();
                format!(r#""{}":[{}]"#, ch.name(), names.join(","))
            })
            .collect();
        if self.heartbeats {
            body.push(r#""heartbeats":["heartbeats"]"#.to_string());
        }
        let events = format!(r#"[{{"subscriptions":{{{}}}}}]"#, body.join(","));
        self.envelope("subscriptions", ctx.now_ns, &events)
    }

    /// Handles one request; `Err(())` is a rejected one (nothing changed).
    fn request(&mut self, text: &str, ctx: &Ctx<'_>, out: &mut Vec<String>) -> Result<(), ()> {
        let Ok(Value::Object(msg)) = serde_json::from_str::<Value>(text) else {
            return Err(());
        };
        let subscribe = match msg.get("type").and_then(Value::as_str) {
            Some("subscribe") => true,
            Some("unsubscribe") => false,
            _ => return Err(()),
        };
        let channel = msg.get("channel").and_then(Value::as_str).ok_or(())?;
        if channel == "heartbeats" {
            self.heartbeats = subscribe;
            let ack = self.subscriptions(ctx);
            out.push(ack);
            return Ok(());
        }
        let ch = Ch::parse(channel).ok_or(())?;
        let mut ids = Vec::new();
        for p in msg.get("product_ids").and_then(Value::as_array).ok_or(())? {
            let id = lookup(ctx.catalog, p.as_str().ok_or(())?, "-").ok_or(())?;
            if !ids.contains(&id) {
                ids.push(id);
            }
        }
        if ids.is_empty() {
            return Err(());
        }
        if !subscribe {
            if let Some((_, subscribed)) = self.subs.iter_mut().find(|(c, _)| *c == ch) {
                subscribed.retain(|id| !ids.contains(id));
            }
            self.subs.retain(|(_, ids)| !ids.is_empty());
            if ch == Ch::Level2 {
                for id in ids {
                    let p = self.product(id);
                    p.book = None;
                    p.pending = false;
                }
            }
            let ack = self.subscriptions(ctx);
            out.push(ack);
            return Ok(());
        }
        let k = match self.subs.iter().position(|(c, _)| *c == ch) {
            Some(k) => k,
            None => {
                self.subs.push((ch, Vec::new()));
                self.subs.len() - 1
            }
        };
        let added: Vec<SymbolId> = ids
            .into_iter()
            .filter(|id| !self.subs[k].1.contains(id))
            .collect();
        self.subs[k].1.extend(&added);
        let ack = self.subscriptions(ctx);
        out.push(ack);
        for id in added {
            self.first_message(ch, id, ctx, out);
        }
        Ok(())
    }

    /// The snapshot a new subscription of `ch` to `id` starts with.
    fn first_message(&mut self, ch: Ch, id: SymbolId, ctx: &Ctx<'_>, out: &mut Vec<String>) {
        let Some(spec) = ctx.catalog.spec(id) else {
            return;
        };
        let now = ctx.now_ns;
        let events = match ch {
            Ch::Level2 => {
                let p = self.product(id);
                p.book = Book::fetch(ctx.books, id);
                p.pending = p.book.is_none();
                match &p.book {
                    Some(book) => l2_event(spec, "snapshot", &snapshot_levels(book), now),
                    None => return,
                }
            }
            Ch::MarketTrades => {
                let p = self.product(id);
                let trades: Vec<&LastTrade> = p.trades.iter().rev().collect();
                trades_event(spec, "snapshot", &trades)
            }
            Ch::Ticker => {
                let p = self.product(id);
                let Some(t) = p.trades.back().copied() else {
                    return;
                };
                let Some(bbo) = p.bbo.or_else(|| top(ctx.books, id)) else {
                    return;
                };
                ticker_event(spec, "snapshot", &t, bbo, &p.stats)
            }
        };
        let channel = match ch {
            Ch::Level2 => "l2_data",
            c => c.name(),
        };
        let msg = self.envelope(channel, now, &events);
        out.push(msg);
    }
}

/// `[{"type":..,"product_id":..,"updates":[..]}]`; `levels` as (side, level, event time).
fn l2_event(spec: &SymbolSpec, kind: &str, levels: &[(BookSide, Level)], ns: u64) -> String {
    let time = rfc3339(ns, 9);
    let mut s = format!(
        r#"[{{"type":"{kind}","product_id":"{}","updates":["#,
        venue_symbol(spec, "-")
    );
    for (i, (side, l)) in levels.iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        let _ = write!(
            s,
            r#"{{"side":"{}","event_time":"{time}","price_level":"{}","new_quantity":"{}"}}"#,
            match side {
                BookSide::Bid => "bid",
                BookSide::Ask => "offer",
            },
            price_str(spec, l.price),
            size_str(spec, l.qty)
        );
    }
    s.push_str("]}]");
    s
}

fn snapshot_levels(book: &Book) -> Vec<(BookSide, Level)> {
    book.bids()
        .map(|l| (BookSide::Bid, l))
        .chain(book.asks().map(|l| (BookSide::Ask, l)))
        .collect()
}

/// `[{"type":..,"trades":[..]}]`, newest trade first.
fn trades_event(spec: &SymbolSpec, kind: &str, trades: &[&LastTrade]) -> String {
    let items: Vec<String> = trades
        .iter()
        .map(|t| {
            format!(
                r#"{{"trade_id":"{}","product_id":"{}","price":"{}","size":"{}","side":"{}","time":"{}"}}"#,
                t.id,
                venue_symbol(spec, "-"),
                price_str(spec, t.price),
                size_str(spec, t.qty),
                if t.buyer_maker { "BUY" } else { "SELL" },
                rfc3339(t.wall_ns, 6)
            )
        })
        .collect();
    format!(r#"[{{"type":"{kind}","trades":[{}]}}]"#, items.join(","))
}

/// `[{"type":..,"tickers":[{"type":"ticker",..}]}]`.
fn ticker_event(
    spec: &SymbolSpec,
    kind: &str,
    t: &LastTrade,
    (bid, ask): (Level, Level),
    st: &Stats,
) -> String {
    let change = if st.open > 0 {
        (t.price - st.open) as f64 * 100.0 / st.open as f64
    } else {
        0.0
    };
    format!(
        r#"[{{"type":"{kind}","tickers":[{{"type":"ticker","product_id":"{}","price":"{}","volume_24_h":"{}","low_24_h":"{}","high_24_h":"{}","low_52_w":"{}","high_52_w":"{}","price_percent_chg_24_h":"{change}","best_bid":"{}","best_bid_quantity":"{}","best_ask":"{}","best_ask_quantity":"{}"}}]}}]"#,
        venue_symbol(spec, "-"),
        price_str(spec, t.price),
        size_str(spec, st.volume),
        price_str(spec, st.low),
        price_str(spec, st.high),
        price_str(spec, st.low),
        price_str(spec, st.high),
        price_str(spec, bid.price),
        size_str(spec, bid.qty),
        price_str(spec, ask.price),
        size_str(spec, ask.qty),
    )
}

impl Session for AdvancedTradeSession {
    fn on_text(
        &mut self,
        text: &str,
        ctx: &Ctx<'_>,
        out: &mut Vec<String>,
    ) -> Result<(), CloseReason> {
        self.started_ns.get_or_insert(ctx.now_ns);
        if self.request(text, ctx, out).is_err() {
            out.push(FAILED.to_string());
        }
        Ok(())
    }

    fn on_event(&mut self, event: &Emitted, wall_ns: u64, ctx: &Ctx<'_>, out: &mut Vec<String>) {
        if !mapped(event.key.kind) {
            return;
        }
        let id = event.key.symbol;
        let Some(spec) = ctx.catalog.spec(id) else {
            return;
        };
        match (&event.event, event.key.kind) {
            (Event::Depth(u), StreamKind::Depth100ms) => {
                if !self.subscribed(Ch::Level2, id) {
                    return;
                }
                let p = self.product(id);
                if p.book.is_none() {
                    let Some(book) = Book::fetch(ctx.books, id) else {
                        return;
                    };
                    let events = l2_event(spec, "snapshot", &snapshot_levels(&book), wall_ns);
                    p.book = Some(book);
                    p.pending = false;
                    let msg = self.envelope("l2_data", wall_ns, &events);
                    out.push(msg);
                }
                let Some(book) = self.product(id).book.as_mut() else {
                    return;
                };
                let changed = book.apply(u);
                if !changed.is_empty() {
                    let events = l2_event(spec, "update", &changed, wall_ns);
                    let msg = self.envelope("l2_data", wall_ns, &events);
                    out.push(msg);
                }
            }
            (Event::BookTicker { bid, ask, .. }, _) => {
                self.product(id).bbo = Some((*bid, *ask));
            }
            (
                Event::Trade {
                    id: trade,
                    price,
                    qty,
                    buyer_maker,
                },
                _,
            ) => {
                let t = LastTrade {
                    id: *trade,
                    price: *price,
                    qty: *qty,
                    buyer_maker: *buyer_maker,
                    wall_ns,
                    sequence: 0,
                };
                let p = self.product(id);
                if p.trades.len() == TRADES_SNAPSHOT {
                    p.trades.pop_front();
                }
                p.trades.push_back(t);
                p.stats.add(*price, *qty);
                let (bbo, stats) = (p.bbo.or_else(|| top(ctx.books, id)), p.stats);
                if self.subscribed(Ch::MarketTrades, id) {
                    let events = trades_event(spec, "update", &[&t]);
                    let msg = self.envelope("market_trades", wall_ns, &events);
                    out.push(msg);
                }
                if let Some(bbo) = bbo
                    && self.subscribed(Ch::Ticker, id)
                {
                    let events = ticker_event(spec, "update", &t, bbo, &stats);
                    let msg = self.envelope("ticker", wall_ns, &events);
                    out.push(msg);
                }
            }
            _ => {}
        }
    }

    fn on_tick(&mut self, ctx: &Ctx<'_>, out: &mut Vec<String>) {
        if !self.heartbeats {
            return;
        }
        self.heartbeat_counter += 1;
        let now = ctx.now_ns;
        let mono = now.saturating_sub(*self.started_ns.get_or_insert(now));
        // Go's time.Time text, as the venue writes it.
        let wall = rfc3339(now, 9).replace('T', " ").replace('Z', "");
        let events = format!(
            r#"[{{"current_time":"{wall} +0000 UTC m=+{}.{:09}","heartbeat_counter":"{}"}}]"#,
            mono / 1_000_000_000,
            mono % 1_000_000_000,
            self.heartbeat_counter
        );
        let msg = self.envelope("heartbeats", now, &events);
        out.push(msg);
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use tickwire_sdk::L2Book;
    use tickwire_sdk::wire::{Body, Quote, Side, StatusCode, Trade, TradeId, instrument_id};

    use super::*;
    use crate::coinbase_advanced::{CoinbaseAdvancedNormalizer, CoinbaseAdvancedTrade};
    use crate::normalizer::{NormalizeError, Normalizer, Output};
    use crate::sim::dialect::coinbase::test_market::Market;
    use crate::venue::VenueSpec;

    const PRODUCTS: [&str; 2] = ["BTC-USDT", "ETH-USDT"];

    struct Client {
        n: CoinbaseAdvancedNormalizer,
        books: HashMap<u32, L2Book>,
        trades: Vec<(u32, Trade)>,
        quotes: Vec<(u32, Quote)>,
        errors: Vec<NormalizeError>,
        next_seq: u64,
    }

    impl Client {
        fn new() -> Client {
            let products: Vec<String> = PRODUCTS.iter().map(|s| s.to_string()).collect();
            Client {
                n: CoinbaseAdvancedNormalizer::new(&products),
                books: HashMap::new(),
                trades: Vec::new(),
                quotes: Vec::new(),
                errors: Vec::new(),
                next_seq: 0,
            }
        }

        fn feed(&mut self, msgs: &mut Vec<String>) {
            for m in msgs.drain(..) {
                let v: Value = serde_json::from_str(&m).expect("valid JSON");
                if let Some(seq) = v["sequence_num"].as_u64() {
                    assert_eq!(seq, self.next_seq, "sequence_num counts every message");
                    self.next_seq += 1;
                }
                let mut out = Output::new();
                if let Err(e) = self.n.on_message(m.as_bytes(), 1, &mut out) {
                    self.errors.push(e);
                }
                assert!(out.actions.is_empty(), "no resync asked: {:?}", out.actions);
                for f in out.frames {
                    match &f.body {
                        Body::Status(s) => {
                            assert_ne!(s.code, StatusCode::Gap, "{}: {m}", s.detail)
                        }
                        Body::Trade(t) => self.trades.push((f.instrument, t.clone())),
                        Body::Quote(q) => self.quotes.push((f.instrument, *q)),
                        Body::BookSnapshot(_) | Body::BookDelta(_) => {
                            self.books.entry(f.instrument).or_default().apply_owned(&f);
                        }
                        _ => {}
                    }
                }
            }
        }
    }

    fn inst(product: &str) -> u32 {
        instrument_id(Venue::CoinbaseAdvanced, product)
    }

    fn run(seed: u64, events: usize, before: bool, unknown_at_start: bool) {
        let mut m = Market::new(seed);
        if unknown_at_start {
            m.known[0] = false;
        }
        let mut s = AdvancedTradeSession::new();
        let mut c = Client::new();
        let mut out = Vec::new();
        let spec = CoinbaseAdvancedTrade::new(PRODUCTS.iter().map(|s| s.to_string()).collect());
        for req in spec.subscribe_messages() {
            s.on_text(&req, &m.ctx(), &mut out).unwrap();
            c.feed(&mut out);
        }
        assert_eq!(c.n.stats().get("subscriptions"), 4);
        let mut due: Vec<bool> = m.known.clone();
        let mut bbo: HashMap<u16, (Level, Level)> = HashMap::new();
        let (mut trades, mut quotes) = (0, 0);
        for k in 0..events {
            if unknown_at_start && k == events / 4 {
                m.known[0] = true;
            }
            let e = m.next_event();
            let sym = e.key.symbol;
            let product = PRODUCTS[sym as usize];
            if before {
                m.apply(&e);
            }
            if matches!(e.event, Event::Depth(_)) && m.known[sym as usize] {
                due[sym as usize] = true;
            }
            s.on_event(&e, m.now, &m.ctx(), &mut out);
            if !before {
                m.apply(&e);
            }
            let sent = out.clone();
            c.feed(&mut out);
            assert!(c.errors.is_empty(), "{:?}", c.errors);
            match e.event {
                Event::BookTicker { bid, ask, .. } => {
                    bbo.insert(sym, (bid, ask));
                }
                Event::Trade {
                    id,
                    price,
                    qty,
                    buyer_maker,
                } => {
                    trades += 1;
                    let (i, t) = c.trades.last().unwrap();
                    assert_eq!(*i, inst(product));
                    assert_eq!((t.price, t.qty), (price, qty));
                    assert_eq!(t.trade_id, TradeId::Num(id));
                    assert_eq!(t.side, if buyer_maker { Side::Sell } else { Side::Buy });
                    // A ticker needs the best bid and ask: a book ticker or the known book.
                    let known = m.known[sym as usize];
                    let Some((bid, ask)) = bbo
                        .get(&sym)
                        .copied()
                        .or_else(|| known.then(|| crate::sim::market::top(&m.books[sym as usize])))
                    else {
                        assert_eq!(c.quotes.len(), quotes, "no ticker without a best bid/ask");
                        continue;
                    };
                    quotes += 1;
                    assert_eq!(
                        c.quotes.len(),
                        quotes,
                        "one ticker update per trade: {sent:?}"
                    );
                    let (i, q) = c.quotes.last().unwrap();
                    assert_eq!(*i, inst(product));
                    assert_eq!(
                        (q.bid_px, q.bid_qty, q.ask_px, q.ask_qty),
                        (bid.price, bid.qty, ask.price, ask.qty)
                    );
                }
                _ => {}
            }
            assert_eq!(c.trades.len(), trades);
            for (i, p) in PRODUCTS.iter().enumerate() {
                match c.books.get(&inst(p)) {
                    Some(b) => {
                        assert!(b.is_valid());
                        assert!(b.bids().eq(m.books[i].bids()), "{p} bids after {k}");
                        assert!(b.asks().eq(m.books[i].asks()), "{p} asks after {k}");
                    }
                    None => assert!(!due[i], "{p} has no book after {k}"),
                }
            }
        }
        assert!(trades > events / 10);
        let st = c.n.stats();
        assert_eq!((st.gaps, st.errors), (0, 0));
        assert_eq!(st.get("ignored:old_sequence"), 0);
        assert!(st.get("l2_data") > (events / 3) as u64);
        s.on_tick(&m.ctx(), &mut out);
        s.on_tick(&m.ctx(), &mut out);
        assert_eq!(out.len(), 2);
        assert!(out[1].contains(r#""heartbeat_counter":"2""#), "{}", out[1]);
        c.feed(&mut out);
        assert_eq!(c.n.stats().get("heartbeats"), 2);
    }

    #[test]
    fn the_real_normalizer_rebuilds_books_trades_and_quotes() {
        for seed in 11..=14 {
            run(seed, 3000, seed % 2 == 0, false);
        }
        run(15, 1500, false, true);
        run(16, 1500, true, true);
    }

    fn texts(out: &mut Vec<String>) -> Vec<Value> {
        out.drain(..)
            .map(|m| serde_json::from_str(&m).unwrap())
            .collect()
    }

    #[test]
    fn acks_errors_unsubscribe_and_shapes() {
        let mut m = Market::new(21);
        let mut s = AdvancedTradeSession::new();
        let send = |s: &mut AdvancedTradeSession, m: &Market, text: &str| {
            let mut out = Vec::new();
            s.on_text(text, &m.ctx(), &mut out).expect("never closes");
            out
        };
        for bad in [
            r#"{"type":"subscribe","product_ids":["BTC-XYZ"],"channel":"level2"}"#,
            r#"{"type":"subscribe","product_ids":["BTC-USDT"],"channel":"level9"}"#,
            r#"{"type":"subscribe","product_ids":[],"channel":"ticker"}"#,
            r#"{"type":"subscribe","product_ids":["BTC-USDT"],"channels":["ticker"]}"#,
            r#"{"type":"ping"}"#,
            "{not json",
        ] {
            assert_eq!(send(&mut s, &m, bad), [FAILED], "{bad}");
        }
        assert!(s.subs.is_empty() && !s.heartbeats && s.sequence == 0);
        let mut n = CoinbaseAdvancedNormalizer::new(&[]);
        assert_eq!(
            n.on_message(FAILED.as_bytes(), 0, &mut Output::new()),
            Err(NormalizeError::Venue("failure to subscribe".into()))
        );

        let r = send(&mut s, &m, r#"{"type":"subscribe","channel":"heartbeats"}"#);
        let v: Value = serde_json::from_str(&r[0]).unwrap();
        assert_eq!(v["channel"], "subscriptions");
        assert_eq!(v["sequence_num"], 0);
        assert_eq!(
            v["events"][0]["subscriptions"]["heartbeats"][0],
            "heartbeats"
        );
        let r = send(
            &mut s,
            &m,
            r#"{"type":"subscribe","product_ids":["BTC-USDT"],"channel":"level2"}"#,
        );
        assert_eq!(r.len(), 2);
        assert!(r[1].starts_with(r#"{"channel":"l2_data","client_id":"","timestamp":""#));
        let v: Value = serde_json::from_str(&r[1]).unwrap();
        assert_eq!(v["sequence_num"], 2);
        let ev = &v["events"][0];
        assert_eq!(
            (ev["type"].as_str(), ev["product_id"].as_str()),
            (Some("snapshot"), Some("BTC-USDT"))
        );
        assert_eq!(ev["updates"][0]["side"], "bid");
        assert_eq!(ev["updates"][0]["price_level"], "59999.99");
        assert_eq!(ev["updates"][0]["new_quantity"], "0.01000");
        assert_eq!(ev["updates"][10]["side"], "offer");
        let r = send(
            &mut s,
            &m,
            r#"{"type":"subscribe","product_ids":["BTC-USDT","ETH-USDT"],"channel":"market_trades"}"#,
        );
        assert_eq!(r.len(), 3, "ack and two (empty) trade snapshots");
        let v: Value = serde_json::from_str(&r[0]).unwrap();
        assert_eq!(
            v["events"][0]["subscriptions"],
            serde_json::json!({"level2":["BTC-USDT"],"market_trades":["BTC-USDT","ETH-USDT"],"heartbeats":["heartbeats"]})
        );
        let mut out = Vec::new();
        let (mut trades, mut updates) = (0, 0);
        for _ in 0..400 {
            let e = m.next_event();
            s.on_event(&e, m.now, &m.ctx(), &mut out);
            m.apply(&e);
            for v in texts(&mut out) {
                match v["channel"].as_str().unwrap() {
                    "market_trades" => {
                        trades += 1;
                        let t = &v["events"][0]["trades"][0];
                        assert!(t["trade_id"].is_string() && t["price"].is_string());
                        assert!(matches!(t["side"].as_str(), Some("BUY" | "SELL")));
                    }
                    "l2_data" => {
                        updates += 1;
                        assert_eq!(v["events"][0]["product_id"], "BTC-USDT");
                    }
                    c => panic!("{c}"),
                }
            }
        }
        assert!(trades > 10 && updates > 10);
        // A late subscriber to ticker and market_trades gets snapshots of what happened.
        let r = send(
            &mut s,
            &m,
            r#"{"type":"subscribe","product_ids":["ETH-USDT"],"channel":"ticker"}"#,
        );
        let v: Value = serde_json::from_str(&r[1]).unwrap();
        let tk = &v["events"][0]["tickers"][0];
        assert_eq!(v["events"][0]["type"], "snapshot");
        assert_eq!(tk["type"], "ticker");
        assert!(tk["best_bid"].is_string() && tk["best_ask_quantity"].is_string());
        let r = send(
            &mut s,
            &m,
            r#"{"type":"unsubscribe","product_ids":["BTC-USDT","ETH-USDT"],"channel":"market_trades"}"#,
        );
        assert_eq!(r.len(), 1);
        send(
            &mut s,
            &m,
            r#"{"type":"unsubscribe","product_ids":["ETH-USDT"],"channel":"ticker"}"#,
        );
        send(
            &mut s,
            &m,
            r#"{"type":"unsubscribe","product_ids":["BTC-USDT"],"channel":"level2"}"#,
        );
        let r = send(
            &mut s,
            &m,
            r#"{"type":"unsubscribe","channel":"heartbeats"}"#,
        );
        let v: Value = serde_json::from_str(&r[0]).unwrap();
        assert_eq!(v["events"][0]["subscriptions"], serde_json::json!({}));
        for _ in 0..200 {
            let e = m.next_event();
            s.on_event(&e, m.now, &m.ctx(), &mut out);
            m.apply(&e);
        }
        s.on_tick(&m.ctx(), &mut out);
        assert!(out.is_empty(), "{out:?}");
    }
}
