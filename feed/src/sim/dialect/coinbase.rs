//! Coinbase Exchange (`wss://ws-feed.exchange.coinbase.com`, path `/`), as documented at
//! docs.cdp.coinbase.com/exchange/websocket-feed/overview and .../channels.
//!
//! - Requests: `{"type":"subscribe"|"unsubscribe","product_ids":[..],"channels":[..]}`, a
//!   channel being a name or `{"name":..,"product_ids":[..]}` (its own products win over the
//!   top-level ones). An unsubscribe without products drops the whole channel. Every accepted
//!   request is answered with `{"type":"subscriptions","channels":[{"name":..,"product_ids":
//!   [..]}]}`: every subscription the connection now has.
//! - Errors: `{"type":"error","message":"Failed to subscribe","reason":..}` with the venue's
//!   reasons (`BTC-XYZ is not a valid product`, `No channels provided`, `level2 requires
//!   authentication`); the whole request is then ignored and the connection stays open.
//!   `level2` is accepted when the request carries the auth fields (`signature`, `key`,
//!   `passphrase`, `timestamp`: not verified); `level2_batch` (the same messages) needs none.
//! - Channels: `matches` (`last_match` on subscribing when a trade is known, then `match`;
//!   `side` is the maker's), `ticker` (one per match, with the best bid/ask and their sizes at
//!   that moment; `side` is the taker's; the 24h fields are the trades this connection has
//!   seen), `level2`/`level2_batch` (`snapshot` of the whole book, then one `l2update` per
//!   book batch with the levels that changed, sizes absolute, `"0.00..."` removes),
//!   `heartbeat` (per product, about once a second, with `last_trade_id`).
//! - Numbers are strings with the product's increments as decimals (price from the tick, size
//!   from the step); ids are JSON numbers; times are RFC 3339 UTC with microseconds.
//! - `sequence` (per product) is the simulator's book update id, bumped by one per trade.
//! - No application-level ping exists (WebSocket pings only). The 5 s "subscribe or be
//!   disconnected" rule is not enforced (a session cannot close from its tick).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde_json::Value;
use tickwire_sdk::wire::{BookSide, Level, Venue, decimal_string};

use super::{BookSource, Ctx, Dialect, Session, decimals_of, lookup, mapped, venue_symbol};
use crate::sim::fanout::CloseReason;
use crate::sim::market::{DepthUpdate, Emitted, Event};
use crate::sim::stream::{StreamKind, SymbolId, SymbolSpec};

/// The Coinbase Exchange dialect (`Venue::Coinbase`), served on `/`.
#[derive(Debug, Clone, Copy, Default)]
pub struct ExchangeDialect;

impl Dialect for ExchangeDialect {
    fn venue(&self) -> Venue {
        Venue::Coinbase
    }

    fn paths(&self) -> &'static [&'static str] {
        &["/"]
    }

    fn session(&self, _path: &str) -> Box<dyn Session> {
        Box::new(ExchangeSession::new())
    }

    fn symbol(&self, spec: &SymbolSpec) -> String {
        venue_symbol(spec, "-")
    }
}

/// The channels served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ch {
    Matches,
    Ticker,
    Level2,
    Level2Batch,
    Heartbeat,
}

impl Ch {
    const ALL: [Ch; 5] = [
        Ch::Matches,
        Ch::Ticker,
        Ch::Level2,
        Ch::Level2Batch,
        Ch::Heartbeat,
    ];

    fn name(self) -> &'static str {
        match self {
            Ch::Matches => "matches",
            Ch::Ticker => "ticker",
            Ch::Level2 => "level2",
            Ch::Level2Batch => "level2_batch",
            Ch::Heartbeat => "heartbeat",
        }
    }

    fn parse(name: &str) -> Option<Ch> {
        Ch::ALL.into_iter().find(|c| c.name() == name)
    }

    fn is_book(self) -> bool {
        matches!(self, Ch::Level2 | Ch::Level2Batch)
    }
}

/// A book copy: price -> size per side, at update id `id`.
#[derive(Debug, Clone, Default)]
pub(crate) struct Book {
    pub(crate) bids: BTreeMap<i64, i64>,
    pub(crate) asks: BTreeMap<i64, i64>,
    pub(crate) id: u64,
}

impl Book {
    /// The book of a symbol, or `None` while the simulator does not know it.
    pub(crate) fn fetch(books: &dyn BookSource, symbol: SymbolId) -> Option<Book> {
        let s = books.book(symbol, usize::MAX)?;
        Some(Book {
            bids: s.bids.iter().map(|l| (l.price, l.qty)).collect(),
            asks: s.asks.iter().map(|l| (l.price, l.qty)).collect(),
            id: s.last_update_id,
        })
    }

    /// Applies `u` if it is newer than the book; returns the levels that really changed, in
    /// the update's order (bids best first, then asks best first).
    pub(crate) fn apply(&mut self, u: &DepthUpdate) -> Vec<(BookSide, Level)> {
        let mut changed = Vec::new();
        if u.last_update_id <= self.id {
            return changed;
        }
        self.id = u.last_update_id;
        for (side, levels) in [(BookSide::Bid, &u.bids), (BookSide::Ask, &u.asks)] {
            let map = match side {
                BookSide::Bid => &mut self.bids,
                BookSide::Ask => &mut self.asks,
            };
            for l in levels {
                let old = map.get(&l.price).copied().unwrap_or(0);
                if old == l.qty {
                    continue;
                }
                if l.qty == 0 {
                    map.remove(&l.price);
                } else {
                    map.insert(l.price, l.qty);
                }
                changed.push((side, *l));
            }
        }
        changed
    }

    pub(crate) fn bids(&self) -> impl Iterator<Item = Level> + '_ {
        self.bids
            .iter()
            .rev()
            .map(|(&price, &qty)| Level { price, qty })
    }

    pub(crate) fn asks(&self) -> impl Iterator<Item = Level> + '_ {
        self.asks.iter().map(|(&price, &qty)| Level { price, qty })
    }
}

/// The last trade of a product this connection saw.
#[derive(Debug, Clone, Copy)]
pub(crate) struct LastTrade {
    pub(crate) id: u64,
    pub(crate) price: i64,
    pub(crate) qty: i64,
    pub(crate) buyer_maker: bool,
    pub(crate) wall_ns: u64,
    pub(crate) sequence: u64,
}

/// Trade statistics since the connection opened (the simulator keeps no 24 h history).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Stats {
    pub(crate) open: i64,
    pub(crate) high: i64,
    pub(crate) low: i64,
    pub(crate) volume: i64,
}

impl Stats {
    pub(crate) fn add(&mut self, price: i64, qty: i64) {
        if self.open == 0 {
            *self = Stats {
                open: price,
                high: price,
                low: price,
                volume: 0,
            };
        }
        self.high = self.high.max(price);
        self.low = self.low.min(price);
        self.volume = self.volume.saturating_add(qty);
    }
}

/// What a connection knows about one product.
#[derive(Debug, Default)]
struct Product {
    /// The book copy, while a book channel is subscribed and the book is known.
    book: Option<Book>,
    /// Book channels subscribed before the book was known: their snapshot is due.
    pending: Vec<Ch>,
    last_trade: Option<LastTrade>,
    /// Best bid and ask from the latest book ticker (else the book's top is used).
    bbo: Option<(Level, Level)>,
    sequence: u64,
    stats: Stats,
}

/// One Coinbase Exchange connection.
#[derive(Debug, Default)]
pub struct ExchangeSession {
    /// Subscriptions, in the order channels were first subscribed.
    subs: Vec<(Ch, Vec<SymbolId>)>,
    products: Vec<Product>,
}

/// A parsed, validated request.
struct Request {
    subscribe: bool,
    /// Channel and its products (`None`: an unsubscribe of the whole channel).
    channels: Vec<(Ch, Option<Vec<SymbolId>>)>,
}

/// A JSON string literal.
pub(crate) fn quoted(s: &str) -> String {
    Value::String(s.to_string()).to_string()
}

/// `{"type":"error","message":"Failed to subscribe","reason":..}`.
fn failed(reason: &str) -> String {
    format!(
        r#"{{"type":"error","message":"Failed to subscribe","reason":{}}}"#,
        quoted(reason)
    )
}

/// Writes `ns` (since the epoch) as RFC 3339 UTC with `digits` (0..=9) fractional digits.
pub(crate) fn rfc3339(ns: u64, digits: u32) -> String {
    let secs = ns / 1_000_000_000;
    let nanos = ns % 1_000_000_000;
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let mut s = format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    );
    let digits = digits.min(9);
    if digits > 0 {
        let frac = nanos / 10u64.pow(9 - digits);
        let _ = write!(s, ".{frac:0width$}", width = digits as usize);
    }
    s.push('Z');
    s
}

/// The best bid and ask of the simulator's book (when no book ticker was seen yet).
pub(crate) fn top(books: &dyn BookSource, id: SymbolId) -> Option<(Level, Level)> {
    let s = books.book(id, 1)?;
    Some((*s.bids.first()?, *s.asks.first()?))
}

/// A price string with the product's quote increment as decimals.
pub(crate) fn price_str(spec: &SymbolSpec, v: i64) -> String {
    decimal_string(v, decimals_of(spec.tick))
}

/// A size string with the product's base increment as decimals.
pub(crate) fn size_str(spec: &SymbolSpec, v: i64) -> String {
    decimal_string(v, decimals_of(spec.step))
}

/// A UUID-shaped order id derived from a trade (the simulator has no orders).
fn order_id(trade: u64, symbol: SymbolId, taker: bool) -> String {
    let mut x = trade
        .wrapping_mul(0x9E37_79B9_7F4A_7C15)
        .wrapping_add(u64::from(symbol) << 1 | u64::from(taker));
    let mut next = || {
        x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = x;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    };
    let (a, b) = (next(), next());
    format!(
        "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
        a >> 32,
        (a >> 16) & 0xffff,
        a & 0xfff,
        0x8000 | (b >> 48) & 0x3fff,
        b & 0xffff_ffff_ffff
    )
}

impl ExchangeSession {
    /// A connection with no subscriptions.
    pub fn new() -> ExchangeSession {
        ExchangeSession::default()
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

    fn book_channels(&self, id: SymbolId) -> Vec<Ch> {
        self.subs
            .iter()
            .filter(|(c, ids)| c.is_book() && ids.contains(&id))
            .map(|(c, _)| *c)
            .collect()
    }

    /// Parses and validates a request; `Err` is the error already rendered.
    fn parse(&self, text: &str, ctx: &Ctx<'_>) -> Result<Request, String> {
        let fail = failed;
        let Ok(Value::Object(msg)) = serde_json::from_str::<Value>(text) else {
            return Err(fail("malformed JSON"));
        };
        let subscribe = match msg.get("type").and_then(Value::as_str) {
            Some("subscribe") => true,
            Some("unsubscribe") => false,
            _ => return Err(fail("type has to be either subscribe or unsubscribe")),
        };
        let products = |v: Option<&Value>| -> Result<Option<Vec<SymbolId>>, String> {
            let Some(v) = v else { return Ok(None) };
            let Some(arr) = v.as_array() else {
                return Err(fail("product_ids must be an array"));
            };
            let mut ids = Vec::new();
            for p in arr {
                let name = p.as_str().unwrap_or("");
                match lookup(ctx.catalog, name, "-") {
                    Some(id) => {
                        if !ids.contains(&id) {
                            ids.push(id)
                        }
                    }
                    None => return Err(fail(&format!("{name} is not a valid product"))),
                }
            }
            Ok(Some(ids))
        };
        let top = products(msg.get("product_ids"))?;
        let authenticated = ["signature", "key", "passphrase", "timestamp"]
            .iter()
            .all(|k| msg.get(*k).and_then(Value::as_str).is_some());
        let Some(list) = msg
            .get("channels")
            .and_then(Value::as_array)
            .filter(|l| !l.is_empty())
        else {
            return Err(fail("No channels provided"));
        };
        let mut channels = Vec::new();
        for c in list {
            let (name, own) = match c {
                Value::String(s) => (s.as_str(), None),
                Value::Object(o) => (
                    o.get("name").and_then(Value::as_str).unwrap_or(""),
                    products(o.get("product_ids"))?,
                ),
                _ => return Err(fail("No channels provided")),
            };
            let Some(ch) = Ch::parse(name) else {
                if !subscribe {
                    continue;
                }
                return Err(fail(&format!("{name} is not a valid channel")));
            };
            if subscribe && ch == Ch::Level2 && !authenticated {
                return Err(fail("level2 requires authentication"));
            }
            let ids = own.or_else(|| top.clone());
            match &ids {
                Some(ids) if !ids.is_empty() => {}
                _ if !subscribe => {}
                _ => return Err(fail("No product ids provided")),
            }
            channels.push((ch, ids.filter(|ids| !ids.is_empty())));
        }
        Ok(Request {
            subscribe,
            channels,
        })
    }

    /// `{"type":"subscriptions","channels":[..]}` with every current subscription.
    fn subscriptions(&self, ctx: &Ctx<'_>) -> String {
        let channels: Vec<String> = self
            .subs
            .iter()
            .map(|(ch, ids)| {
                let names: Vec<String> = ids
                    .iter()
                    .filter_map(|&id| ctx.catalog.spec(id))
                    .map(|s| quoted(&venue_symbol(s, "-")))
                    .collect();
                format!(
                    r#"{{"name":"{}","product_ids":[{}]}}"#,
                    ch.name(),
                    names.join(",")
                )
            })
            .collect();
        format!(
            r#"{{"type":"subscriptions","channels":[{}]}}"#,
            channels.join(",")
        )
    }

    /// The messages a new subscription of `ch` to `id` starts with.
    fn first_messages(&mut self, ch: Ch, id: SymbolId, ctx: &Ctx<'_>, out: &mut Vec<String>) {
        let Some(spec) = ctx.catalog.spec(id) else {
            return;
        };
        match ch {
            Ch::Level2 | Ch::Level2Batch => {
                let p = self.product(id);
                if p.book.is_none() {
                    p.book = Book::fetch(ctx.books, id);
                }
                match &p.book {
                    Some(book) => out.push(snapshot(spec, book)),
                    None => p.pending.push(ch),
                }
            }
            Ch::Matches => {
                if let Some(t) = self.product(id).last_trade {
                    out.push(matched(spec, id, &t, true));
                }
            }
            Ch::Ticker => {
                let p = self.product(id);
                if let (Some(t), Some(bbo)) = (p.last_trade, p.bbo.or_else(|| top(ctx.books, id))) {
                    out.push(ticker(spec, &t, bbo, &p.stats));
                }
            }
            Ch::Heartbeat => {}
        }
    }

    fn apply(&mut self, req: Request, ctx: &Ctx<'_>, out: &mut Vec<String>) {
        if req.subscribe {
            let mut added = Vec::new();
            for (ch, ids) in req.channels {
                let ids = ids.unwrap_or_default();
                let k = match self.subs.iter().position(|(c, _)| *c == ch) {
                    Some(k) => k,
                    None => {
                        self.subs.push((ch, Vec::new()));
                        self.subs.len() - 1
                    }
                };
                for id in ids {
                    if !self.subs[k].1.contains(&id) {
                        self.subs[k].1.push(id);
                        added.push((ch, id));
                    }
                }
            }
            out.push(self.subscriptions(ctx));
            for (ch, id) in added {
                self.first_messages(ch, id, ctx, out);
            }
        } else {
            for (ch, ids) in req.channels {
                if let Some((_, subscribed)) = self.subs.iter_mut().find(|(c, _)| *c == ch) {
                    match ids {
                        Some(ids) => subscribed.retain(|id| !ids.contains(id)),
                        None => subscribed.clear(),
                    }
                }
            }
            self.subs.retain(|(_, ids)| !ids.is_empty());
            // Books no channel follows any more are dropped (a new subscription re-fetches).
            for i in 0..self.products.len() {
                let id = i as SymbolId;
                let chs = self.book_channels(id);
                let p = &mut self.products[i];
                p.pending.retain(|c| chs.contains(c));
                if chs.is_empty() {
                    p.book = None;
                }
            }
            out.push(self.subscriptions(ctx));
        }
    }

    fn on_depth(
        &mut self,
        id: SymbolId,
        u: &DepthUpdate,
        wall_ns: u64,
        ctx: &Ctx<'_>,
        out: &mut Vec<String>,
    ) {
        let chs = self.book_channels(id);
        if chs.is_empty() {
            return;
        }
        let Some(spec) = ctx.catalog.spec(id) else {
            return;
        };
        let p = self.product(id);
        if p.book.is_none() {
            let Some(book) = Book::fetch(ctx.books, id) else {
                return;
            };
            for _ in p.pending.drain(..) {
                out.push(snapshot(spec, &book));
            }
            p.book = Some(book);
        }
        let Some(book) = p.book.as_mut() else {
            return;
        };
        let changed = book.apply(u);
        if changed.is_empty() {
            return;
        }
        let msg = l2update(spec, &changed, wall_ns);
        for _ in &chs {
            out.push(msg.clone());
        }
    }
}

fn levels_json(spec: &SymbolSpec, levels: impl Iterator<Item = Level>) -> Value {
    Value::Array(
        levels
            .map(|l| serde_json::json!([price_str(spec, l.price), size_str(spec, l.qty)]))
            .collect(),
    )
}

/// `{"type":"snapshot","product_id":..,"bids":[[price,size]..],"asks":[..]}`.
fn snapshot(spec: &SymbolSpec, book: &Book) -> String {
    let mut s = String::with_capacity(64 + 32 * (book.bids.len() + book.asks.len()));
    let _ = write!(
        s,
        r#"{{"type":"snapshot","product_id":"{}","bids":{},"asks":{}}}"#,
        venue_symbol(spec, "-"),
        levels_json(spec, book.bids()),
        levels_json(spec, book.asks())
    );
    s
}

/// `{"type":"l2update","product_id":..,"changes":[[side,price,size]..],"time":..}`.
fn l2update(spec: &SymbolSpec, changed: &[(BookSide, Level)], wall_ns: u64) -> String {
    let changes: Vec<Value> = changed
        .iter()
        .map(|(side, l)| {
            let side = match side {
                BookSide::Bid => "buy",
                BookSide::Ask => "sell",
            };
            serde_json::json!([side, price_str(spec, l.price), size_str(spec, l.qty)])
        })
        .collect();
    format!(
        r#"{{"type":"l2update","product_id":"{}","changes":{},"time":"{}"}}"#,
        venue_symbol(spec, "-"),
        Value::Array(changes),
        rfc3339(wall_ns, 6)
    )
}

/// A `match` (or `last_match`): `side` is the maker's order side.
fn matched(spec: &SymbolSpec, id: SymbolId, t: &LastTrade, last: bool) -> String {
    format!(
        r#"{{"type":"{}","trade_id":{},"sequence":{},"maker_order_id":"{}","taker_order_id":"{}","time":"{}","product_id":"{}","size":"{}","price":"{}","side":"{}"}}"#,
        if last { "last_match" } else { "match" },
        t.id,
        t.sequence,
        order_id(t.id, id, false),
        order_id(t.id, id, true),
        rfc3339(t.wall_ns, 6),
        venue_symbol(spec, "-"),
        size_str(spec, t.qty),
        price_str(spec, t.price),
        if t.buyer_maker { "buy" } else { "sell" },
    )
}

/// A `ticker` for trade `t` with the best bid and ask then: `side` is the taker's.
fn ticker(spec: &SymbolSpec, t: &LastTrade, (bid, ask): (Level, Level), st: &Stats) -> String {
    format!(
        r#"{{"type":"ticker","sequence":{},"product_id":"{}","price":"{}","open_24h":"{}","volume_24h":"{}","low_24h":"{}","high_24h":"{}","volume_30d":"{}","best_bid":"{}","best_bid_size":"{}","best_ask":"{}","best_ask_size":"{}","side":"{}","time":"{}","trade_id":{},"last_size":"{}"}}"#,
        t.sequence,
        venue_symbol(spec, "-"),
        price_str(spec, t.price),
        price_str(spec, st.open),
        size_str(spec, st.volume),
        price_str(spec, st.low),
        price_str(spec, st.high),
        size_str(spec, st.volume),
        price_str(spec, bid.price),
        size_str(spec, bid.qty),
        price_str(spec, ask.price),
        size_str(spec, ask.qty),
        if t.buyer_maker { "sell" } else { "buy" },
        rfc3339(t.wall_ns, 6),
        t.id,
        size_str(spec, t.qty),
    )
}

impl Session for ExchangeSession {
    fn on_text(
        &mut self,
        text: &str,
        ctx: &Ctx<'_>,
        out: &mut Vec<String>,
    ) -> Result<(), CloseReason> {
        match self.parse(text, ctx) {
            Ok(req) => self.apply(req, ctx, out),
            Err(e) => out.push(e),
        }
        Ok(())
    }

    fn on_event(&mut self, event: &Emitted, wall_ns: u64, ctx: &Ctx<'_>, out: &mut Vec<String>) {
        if !mapped(event.key.kind) {
            return;
        }
        let id = event.key.symbol;
        match (&event.event, event.key.kind) {
            (Event::Depth(u), StreamKind::Depth100ms) => {
                let p = self.product(id);
                p.sequence = p.sequence.max(u.last_update_id);
                self.on_depth(id, u, wall_ns, ctx, out);
            }
            (
                Event::BookTicker {
                    update_id,
                    bid,
                    ask,
                },
                _,
            ) => {
                let p = self.product(id);
                p.sequence = p.sequence.max(*update_id);
                p.bbo = Some((*bid, *ask));
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
                let p = self.product(id);
                p.sequence += 1;
                let t = LastTrade {
                    id: *trade,
                    price: *price,
                    qty: *qty,
                    buyer_maker: *buyer_maker,
                    wall_ns,
                    sequence: p.sequence,
                };
                p.last_trade = Some(t);
                p.stats.add(*price, *qty);
                let (bbo, stats) = (p.bbo.or_else(|| top(ctx.books, id)), p.stats);
                let Some(spec) = ctx.catalog.spec(id) else {
                    return;
                };
                if self.subscribed(Ch::Matches, id) {
                    out.push(matched(spec, id, &t, false));
                }
                if let Some(bbo) = bbo
                    && self.subscribed(Ch::Ticker, id)
                {
                    out.push(ticker(spec, &t, bbo, &stats));
                }
            }
            _ => {}
        }
    }

    fn on_tick(&mut self, ctx: &Ctx<'_>, out: &mut Vec<String>) {
        let Some((_, ids)) = self.subs.iter().find(|(c, _)| *c == Ch::Heartbeat) else {
            return;
        };
        let time = rfc3339(ctx.now_ns, 6);
        for &id in ids {
            let Some(spec) = ctx.catalog.spec(id) else {
                continue;
            };
            let p = self.products.get(id as usize);
            let sequence = p.map_or(0, |p| p.sequence);
            let last = p.and_then(|p| p.last_trade).map_or(0, |t| t.id);
            out.push(format!(
                r#"{{"type":"heartbeat","sequence":{sequence},"last_trade_id":{last},"product_id":"{}","time":"{time}"}}"#,
                venue_symbol(spec, "-")
            ));
        }
    }
}

/// A seeded random market for the dialect tests: books, trades and book tickers, with the
/// simulator's ordering (a depth event is applied to the books once it was handed over, or
/// before, as the test chooses).
#[cfg(test)]
pub(crate) mod test_market {
    use std::collections::BTreeMap;

    use tickwire_sdk::wire::{BookSide, Level};

    use crate::book::OrderBook;
    use crate::sim::dialect::{BookSource, Ctx};
    use crate::sim::market::{DepthSnapshot, DepthUpdate, Emitted, Event, apply, top};
    use crate::sim::stream::{Catalog, StreamKey, StreamKind, SymbolId, SymbolSpec};

    pub(crate) const TICK: i64 = 10_000_000; // 0.01
    pub(crate) const STEP: i64 = 10_000; // 0.00001

    pub(crate) struct Market {
        pub(crate) catalog: Catalog,
        pub(crate) books: Vec<OrderBook>,
        pub(crate) ids: Vec<u64>,
        /// Whether the simulator knows each book yet.
        pub(crate) known: Vec<bool>,
        mids: Vec<i64>,
        trade_ids: Vec<u64>,
        rng: u64,
        pub(crate) now: u64,
    }

    impl BookSource for Market {
        fn book(&self, symbol: SymbolId, limit: usize) -> Option<DepthSnapshot> {
            let s = symbol as usize;
            self.known
                .get(s)
                .copied()
                .unwrap_or(false)
                .then(|| DepthSnapshot::of(&self.books[s], self.ids[s], limit))
        }
    }

    impl Market {
        /// BTCUSDT (mid 60000) and ETHUSDT (mid 3000), ten levels a side each.
        pub(crate) fn new(seed: u64) -> Market {
            let mut catalog = Catalog::new();
            let mut m = Market {
                catalog: Catalog::new(),
                books: Vec::new(),
                ids: Vec::new(),
                known: Vec::new(),
                mids: Vec::new(),
                trade_ids: Vec::new(),
                rng: seed
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407),
                now: 1_700_000_000_123_456_789,
            };
            for (sym, mid) in [("BTCUSDT", 60_000), ("ETHUSDT", 3_000)] {
                catalog.add(SymbolSpec::new(sym, TICK, STEP)).unwrap();
                let mid = mid * 1_000_000_000;
                let mut book = OrderBook::new();
                for k in 1..=10 {
                    book.set(BookSide::Bid, mid - k * TICK, k * 1000 * STEP);
                    book.set(BookSide::Ask, mid + (k - 1) * TICK, k * 700 * STEP);
                }
                m.books.push(book);
                m.ids.push(1000);
                m.known.push(true);
                m.mids.push(mid);
                m.trade_ids.push(5000);
            }
            m.catalog = catalog;
            m
        }

        pub(crate) fn ctx(&self) -> Ctx<'_> {
            Ctx {
                catalog: &self.catalog,
                books: self,
                now_ns: self.now,
            }
        }

        pub(crate) fn rand(&mut self, n: u64) -> u64 {
            self.rng = self
                .rng
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (self.rng >> 33) % n
        }

        /// The next event (not applied yet), 1 ms after the previous one.
        pub(crate) fn next_event(&mut self) -> Emitted {
            self.now += 1_000_000;
            let s = self.rand(self.books.len() as u64) as usize;
            let symbol = s as SymbolId;
            let r = self.rand(10);
            let (kind, event) = if r < 6 {
                let mut bids = BTreeMap::new();
                let mut asks = BTreeMap::new();
                for _ in 0..1 + self.rand(6) {
                    let off = self.rand(25) as i64;
                    let qty = if self.rand(10) < 3 {
                        0
                    } else {
                        (1 + self.rand(1000) as i64) * STEP
                    };
                    if self.rand(2) == 0 {
                        bids.insert(self.mids[s] - (off + 1) * TICK, qty);
                    } else {
                        asks.insert(self.mids[s] + off * TICK, qty);
                    }
                }
                let first = self.ids[s] + 1;
                let last = first + self.rand(3);
                let lv = |(&price, &qty): (&i64, &i64)| Level { price, qty };
                (
                    StreamKind::Depth100ms,
                    Event::Depth(DepthUpdate {
                        first_update_id: first,
                        last_update_id: last,
                        bids: bids.iter().rev().map(lv).collect(),
                        asks: asks.iter().map(lv).collect(),
                    }),
                )
            } else if r < 8 {
                self.trade_ids[s] += 1;
                let buyer_maker = self.rand(2) == 0;
                let (bid, ask) = top(&self.books[s]);
                let price = if buyer_maker { bid.price } else { ask.price };
                (
                    StreamKind::Trade,
                    Event::Trade {
                        id: self.trade_ids[s],
                        price: if price > 0 { price } else { self.mids[s] },
                        qty: (1 + self.rand(100) as i64) * STEP,
                        buyer_maker,
                    },
                )
            } else {
                let (bid, ask) = top(&self.books[s]);
                (
                    StreamKind::BookTicker,
                    Event::BookTicker {
                        update_id: self.ids[s],
                        bid,
                        ask,
                    },
                )
            };
            Emitted {
                key: StreamKey { symbol, kind },
                at: self.now,
                event,
            }
        }

        /// Applies a depth event to the simulator's books.
        pub(crate) fn apply(&mut self, e: &Emitted) {
            if let Event::Depth(u) = &e.event {
                let s = e.key.symbol as usize;
                apply(&mut self.books[s], u);
                self.ids[s] = u.last_update_id;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use tickwire_sdk::L2Book;
    use tickwire_sdk::wire::{Body, Side, StatusCode, TradeId, instrument_id};

    use super::test_market::Market;
    use super::*;
    use crate::coinbase::CoinbaseNormalizer;
    use crate::coinbase::common::parse_time_ns;
    use crate::coinbase::spec::CoinbaseExchange;
    use crate::normalizer::{Normalizer, Output};
    use crate::venue::VenueSpec;

    const PRODUCTS: [&str; 2] = ["BTC-USDT", "ETH-USDT"];

    /// The client side: the real normalizer and the books and frames it produced.
    struct Client {
        n: CoinbaseNormalizer,
        books: HashMap<u32, L2Book>,
        trades: Vec<(u32, tickwire_sdk::wire::Trade)>,
        quotes: Vec<(u32, tickwire_sdk::wire::Quote)>,
        errors: Vec<String>,
        messages: usize,
    }

    impl Client {
        fn new() -> Client {
            let products: Vec<String> = PRODUCTS.iter().map(|s| s.to_string()).collect();
            Client {
                n: CoinbaseNormalizer::new(&products, "level2_batch"),
                books: HashMap::new(),
                trades: Vec::new(),
                quotes: Vec::new(),
                errors: Vec::new(),
                messages: 0,
            }
        }

        fn feed(&mut self, msgs: &mut Vec<String>) {
            for m in msgs.drain(..) {
                self.messages += 1;
                let v: Value = serde_json::from_str(&m).expect("valid JSON");
                assert!(v["type"].is_string(), "{m}");
                let mut out = Output::new();
                if let Err(e) = self.n.on_message(m.as_bytes(), 1, &mut out) {
                    self.errors.push(e.to_string());
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

        fn book(&self, product: &str) -> Option<&L2Book> {
            self.books.get(&instrument_id(Venue::Coinbase, product))
        }
    }

    fn inst(product: &str) -> u32 {
        instrument_id(Venue::Coinbase, product)
    }

    fn assert_same(client: &L2Book, sim: &crate::book::OrderBook, at: &str) {
        assert!(client.is_valid(), "{at}");
        assert!(client.bids().eq(sim.bids()), "bids differ {at}");
        assert!(client.asks().eq(sim.asks()), "asks differ {at}");
    }

    /// Drives `events` events through a session subscribed with the adapter's own requests;
    /// `before`: the simulator's books include an event when it is handed over.
    fn run(seed: u64, events: usize, before: bool, unknown_at_start: bool) {
        let mut m = Market::new(seed);
        if unknown_at_start {
            m.known[1] = false;
        }
        let mut s = ExchangeSession::new();
        let mut c = Client::new();
        let mut out = Vec::new();
        let spec = CoinbaseExchange::new(PRODUCTS.iter().map(|s| s.to_string()).collect());
        for req in spec.subscribe_messages() {
            s.on_text(&req, &m.ctx(), &mut out).unwrap();
            c.feed(&mut out);
        }
        assert_eq!(c.n.stats().get("subscriptions"), 4);
        assert_eq!(
            c.n.stats().get("snapshot"),
            if unknown_at_start { 1 } else { 2 }
        );
        let mut bbo: HashMap<u16, (Level, Level)> = HashMap::new();
        let (mut trades, mut quotes) = (0, 0);
        // Whether each book was known at one of its depth events (its snapshot is then due).
        let mut due: Vec<bool> = m.known.clone();
        for k in 0..events {
            if unknown_at_start && k == events / 3 {
                m.known[1] = true;
            }
            let e = m.next_event();
            if before {
                m.apply(&e);
            }
            let sym = e.key.symbol;
            let product = PRODUCTS[sym as usize];
            if matches!(e.event, Event::Depth(_)) && m.known[sym as usize] {
                due[sym as usize] = true;
            }
            s.on_event(&e, m.now, &m.ctx(), &mut out);
            if !before {
                m.apply(&e);
            }
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
                    assert_eq!(c.quotes.len(), quotes, "one ticker per match");
                    let (i, q) = c.quotes.last().unwrap();
                    assert_eq!(*i, inst(product));
                    assert_eq!(
                        (q.bid_px, q.bid_qty, q.ask_px, q.ask_qty),
                        (bid.price, bid.qty, ask.price, ask.qty)
                    );
                }
                Event::Depth(_) => {}
                _ => unreachable!(),
            }
            assert_eq!(c.trades.len(), trades);
            for (i, p) in PRODUCTS.iter().enumerate() {
                match c.book(p) {
                    Some(b) => assert_same(b, &m.books[i], &format!("{p} after event {k}")),
                    None => assert!(!due[i], "{p} has no book after {k}"),
                }
                if let Some(b) = s.products.get(i).and_then(|p| p.book.as_ref()) {
                    assert!(b.bids().eq(m.books[i].bids()) && b.asks().eq(m.books[i].asks()));
                }
            }
        }
        assert!(trades > events / 10, "{trades} trades");
        assert_eq!(c.n.stats().gaps, 0);
        assert_eq!(c.n.stats().errors, 0);
        assert!(c.n.stats().get("l2update") > (events / 3) as u64);
        // Heartbeats carry the last trade id: no trade was missed.
        s.on_tick(&m.ctx(), &mut out);
        assert_eq!(out.len(), 2);
        c.feed(&mut out);
        assert_eq!(c.n.stats().get("heartbeat"), 2);
        assert_eq!(c.n.stats().gaps, 0);
    }

    #[test]
    fn the_real_normalizer_rebuilds_books_trades_and_quotes() {
        for seed in 1..=4 {
            run(seed, 3000, seed % 2 == 0, false);
        }
    }

    #[test]
    fn a_book_unknown_at_subscribe_gets_its_snapshot_later() {
        run(7, 1500, false, true);
        run(8, 1500, true, true);
    }

    /// The top-level keys of a JSON object text, in the order written.
    fn keys(text: &str) -> Vec<String> {
        let v: Value = serde_json::from_str(text).unwrap();
        let mut k: Vec<(usize, String)> = v
            .as_object()
            .unwrap()
            .keys()
            .map(|k| (text.find(&format!("\"{k}\":")).unwrap(), k.clone()))
            .collect();
        k.sort();
        k.into_iter().map(|(_, k)| k).collect()
    }

    fn texts(out: &mut Vec<String>) -> Vec<Value> {
        out.drain(..)
            .map(|m| serde_json::from_str(&m).unwrap())
            .collect()
    }

    #[test]
    fn acks_errors_and_unsubscribe() {
        let mut m = Market::new(3);
        let mut s = ExchangeSession::new();
        let mut out = Vec::new();
        let send = |s: &mut ExchangeSession, m: &Market, text: &str| {
            let mut out = Vec::new();
            s.on_text(text, &m.ctx(), &mut out).expect("never closes");
            texts(&mut out)
        };
        let fail = |reason: &str| serde_json::json!({"type": "error", "message": "Failed to subscribe", "reason": reason});
        let r = send(
            &mut s,
            &m,
            r#"{"type":"subscribe","product_ids":["BTC-USDT","BTC-XYZ"],"channels":["matches"]}"#,
        );
        assert_eq!(r, vec![fail("BTC-XYZ is not a valid product")]);
        let r = send(
            &mut s,
            &m,
            r#"{"type":"subscribe","product_ids":["BTC-USDT"],"channels":["level2"]}"#,
        );
        assert_eq!(r, vec![fail("level2 requires authentication")]);
        let r = send(
            &mut s,
            &m,
            r#"{"type":"subscribe","product_ids":["BTC-USDT"],"channels":["level9"]}"#,
        );
        assert_eq!(r, vec![fail("level9 is not a valid channel")]);
        let r = send(
            &mut s,
            &m,
            r#"{"type":"subscribe","product_ids":["BTC-USDT"]}"#,
        );
        assert_eq!(r, vec![fail("No channels provided")]);
        // No application ping exists: anything but (un)subscribe is an error.
        let r = send(&mut s, &m, r#"{"type":"ping"}"#);
        assert_eq!(
            r,
            vec![fail("type has to be either subscribe or unsubscribe")]
        );
        let r = send(&mut s, &m, "{not json");
        assert_eq!(r[0]["type"], "error");
        assert!(s.subs.is_empty(), "failed requests change nothing");
        // The real normalizer reports those as venue errors.
        let mut n = CoinbaseNormalizer::new(&[], "level2_batch");
        let e = n
            .on_message(
                fail("BTC-XYZ is not a valid product")
                    .to_string()
                    .as_bytes(),
                0,
                &mut Output::new(),
            )
            .unwrap_err();
        assert!(
            matches!(&e, crate::normalizer::NormalizeError::Venue(v) if v == "Failed to subscribe: BTC-XYZ is not a valid product"),
            "{e:?}"
        );

        // Channel objects with their own products; level2 with the auth fields.
        let r = send(
            &mut s,
            &m,
            r#"{"type":"subscribe","product_ids":["ETH-USDT"],"channels":["heartbeat",{"name":"matches","product_ids":["BTC-USDT","ETH-USDT"]}],"signature":"x","key":"k","passphrase":"p","timestamp":"1"}"#,
        );
        assert_eq!(
            r,
            vec![serde_json::json!({"type":"subscriptions","channels":[
                {"name":"heartbeat","product_ids":["ETH-USDT"]},
                {"name":"matches","product_ids":["BTC-USDT","ETH-USDT"]}]})]
        );
        let r = send(
            &mut s,
            &m,
            r#"{"type":"subscribe","product_ids":["BTC-USDT"],"channels":["level2"],"signature":"x","key":"k","passphrase":"p","timestamp":"1"}"#,
        );
        assert_eq!(r.len(), 2);
        assert_eq!(
            r[0]["channels"][2],
            serde_json::json!({"name":"level2","product_ids":["BTC-USDT"]})
        );
        assert_eq!(r[1]["type"], "snapshot");
        assert_eq!(r[1]["product_id"], "BTC-USDT");
        assert_eq!(r[1]["bids"][0], serde_json::json!(["59999.99", "0.01000"]));
        assert_eq!(r[1]["asks"][0], serde_json::json!(["60000.00", "0.00700"]));
        // Data flows, then stops after the unsubscribe.
        let mut matches = 0;
        let mut updates = 0;
        for _ in 0..400 {
            let e = m.next_event();
            s.on_event(&e, m.now, &m.ctx(), &mut out);
            m.apply(&e);
            for v in texts(&mut out) {
                match v["type"].as_str().unwrap() {
                    "match" => matches += 1,
                    "l2update" => updates += 1,
                    t => panic!("{t}"),
                }
            }
        }
        assert!(matches > 10 && updates > 10);
        // A second subscription to matches starts with last_match.
        let r = send(
            &mut s,
            &m,
            r#"{"type":"unsubscribe","channels":["matches"]}"#,
        );
        assert_eq!(r.len(), 1);
        assert_eq!(r[0]["channels"].as_array().unwrap().len(), 2);
        let r = send(
            &mut s,
            &m,
            r#"{"type":"subscribe","product_ids":["BTC-USDT"],"channels":["matches"]}"#,
        );
        assert_eq!(r[1]["type"], "last_match");
        let r = send(
            &mut s,
            &m,
            r#"{"type":"unsubscribe","product_ids":["BTC-USDT","ETH-USDT"],"channels":["matches","level2","heartbeat"]}"#,
        );
        assert_eq!(
            r,
            vec![serde_json::json!({"type":"subscriptions","channels":[]})]
        );
        assert!(s.products.iter().all(|p| p.book.is_none()));
        for _ in 0..200 {
            let e = m.next_event();
            s.on_event(&e, m.now, &m.ctx(), &mut out);
            m.apply(&e);
        }
        s.on_tick(&m.ctx(), &mut out);
        assert!(out.is_empty(), "{out:?}");
    }

    #[test]
    fn heartbeats_and_message_shapes() {
        let mut m = Market::new(5);
        let mut s = ExchangeSession::new();
        let mut out = Vec::new();
        s.on_text(
            r#"{"type":"subscribe","product_ids":["BTC-USDT"],"channels":["heartbeat","matches","ticker"]}"#,
            &m.ctx(),
            &mut out,
        )
        .unwrap();
        assert_eq!(keys(&out[0]), ["type", "channels"]);
        out.clear();
        s.on_tick(&m.ctx(), &mut out);
        assert_eq!(
            keys(&out[0]),
            ["type", "sequence", "last_trade_id", "product_id", "time"]
        );
        assert_eq!(texts(&mut out)[0]["last_trade_id"], 0);
        while !out.iter().any(|m| m.contains("\"match\"")) {
            let e = m.next_event();
            s.on_event(&e, m.now, &m.ctx(), &mut out);
            m.apply(&e);
        }
        let mat = out.iter().find(|t| t.contains("\"match\"")).unwrap();
        assert_eq!(
            keys(mat),
            [
                "type",
                "trade_id",
                "sequence",
                "maker_order_id",
                "taker_order_id",
                "time",
                "product_id",
                "size",
                "price",
                "side"
            ]
        );
        let tk = out.iter().find(|t| t.contains("\"ticker\"")).unwrap();
        assert_eq!(
            keys(tk),
            [
                "type",
                "sequence",
                "product_id",
                "price",
                "open_24h",
                "volume_24h",
                "low_24h",
                "high_24h",
                "volume_30d",
                "best_bid",
                "best_bid_size",
                "best_ask",
                "best_ask_size",
                "side",
                "time",
                "trade_id",
                "last_size"
            ]
        );
        let v = texts(&mut out);
        let mat = v.iter().find(|v| v["type"] == "match").unwrap();
        let tk = v.iter().find(|v| v["type"] == "ticker").unwrap();
        assert_eq!(mat["maker_order_id"].as_str().unwrap().len(), 36);
        assert_ne!(mat["maker_order_id"], mat["taker_order_id"]);
        assert!(parse_time_ns(mat["time"].as_str().unwrap()).is_some());
        assert!(mat["trade_id"].is_u64() && mat["sequence"].is_u64());
        assert!(mat["price"].is_string() && mat["size"].is_string());
        assert_ne!(
            tk["side"], mat["side"],
            "ticker side is the taker's, match side the maker's"
        );
        assert_eq!(tk["trade_id"], mat["trade_id"]);
        s.on_tick(&m.ctx(), &mut out);
        let hb = texts(&mut out);
        assert_eq!(hb[0]["last_trade_id"], mat["trade_id"]);
        let mut out = Vec::new();
        s.on_text(
            r#"{"type":"subscribe","channels":["ticker"]}"#,
            &m.ctx(),
            &mut out,
        )
        .unwrap();
        assert_eq!(keys(&out[0]), ["type", "message", "reason"]);
    }

    #[test]
    fn rfc3339_times_round_trip() {
        assert_eq!(
            rfc3339(1_415_348_367_028_459_000, 6),
            "2014-11-07T08:19:27.028459Z"
        );
        assert_eq!(rfc3339(0, 0), "1970-01-01T00:00:00Z");
        assert_eq!(
            rfc3339(1_709_164_800_000_000_000, 3),
            "2024-02-29T00:00:00.000Z"
        );
        let mut x = 1u64;
        for _ in 0..2000 {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let ns = x % 4_000_000_000_000_000_000;
            assert_eq!(parse_time_ns(&rfc3339(ns, 9)), Some(ns));
            assert_eq!(parse_time_ns(&rfc3339(ns, 6)), Some(ns / 1000 * 1000));
        }
    }
}
