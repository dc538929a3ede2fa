//! Venue dialects of the simulator: the same simulated market (captures, synthetic walks)
//! spoken as Coinbase, Kraken, OKX or Bybit speak it, so each venue adapter can be driven end
//! to end on a real socket, offline.
//!
//! A dialect is sans IO. The server gives each WebSocket connection on one of the dialect's
//! paths a [`Session`], and calls it with what the client sent, with every market event (in
//! order, under the same lock that orders them for every other connection) and once a second.
//! Whatever the session appends to `out` is queued to that connection, in order. A session
//! keeps its own per-connection state: subscriptions, its copy of each subscribed book (for
//! checksums and depth windows), sequence numbers.
//!
//! Books are consistent by construction: [`Ctx::books`] gives the current book of a symbol
//! exactly as of the events already handed to the sessions, so a snapshot taken on subscribe
//! followed by the next events is the venue's book.
//!
//! Events a dialect maps: [`StreamKind::Trade`] (trades), [`StreamKind::BookTicker`] (best bid
//! and offer), [`StreamKind::Depth100ms`] (book changes: absolute quantities, 0 removes). The
//! Binance-only kinds ([`StreamKind::AggTrade`], [`StreamKind::Depth1000ms`]) carry the same
//! information again and are skipped.

pub mod bybit;
pub mod coinbase;
pub mod coinbase_advanced;
pub mod kraken;
pub mod okx;

use std::sync::Arc;

use tickwire_sdk::wire::Venue;

use super::fanout::CloseReason;
use super::market::{DepthSnapshot, Emitted};
use super::stream::{Catalog, StreamKind, SymbolId, SymbolSpec};

pub use super::stream::StreamKind as Kind;

/// The current books of the simulated market.
pub trait BookSource {
    /// The top `limit` levels a side of `symbol`'s book, or `None` while it is not known yet
    /// (a capture before its first snapshot record).
    fn book(&self, symbol: SymbolId, limit: usize) -> Option<DepthSnapshot>;
}

/// What a session may look at while handling a call.
pub struct Ctx<'a> {
    /// The symbols served (`BTCUSDT` with base `BTC` and quote `USDT`, tick and step).
    pub catalog: &'a Catalog,
    /// The current books.
    pub books: &'a dyn BookSource,
    /// Wall-clock time of the call, ns since the Unix epoch.
    pub now_ns: u64,
}

/// One client connection in a venue's dialect.
pub trait Session: Send {
    /// A text message from the client (subscribe, unsubscribe, application ping...): replies,
    /// acknowledgements, errors and book snapshots go to `out`, in the order the venue sends
    /// them. `Err` closes the connection with that code and reason (a venue that closes on
    /// bad input or too many requests).
    fn on_text(
        &mut self,
        text: &str,
        ctx: &Ctx<'_>,
        out: &mut Vec<String>,
    ) -> Result<(), CloseReason>;

    /// A market event at wall-clock time `wall_ns` (ns since the epoch): the messages it becomes
    /// on this connection (none when not subscribed).
    fn on_event(&mut self, event: &Emitted, wall_ns: u64, ctx: &Ctx<'_>, out: &mut Vec<String>);

    /// Called about once a second: heartbeats, periodic re-sends.
    fn on_tick(&mut self, ctx: &Ctx<'_>, out: &mut Vec<String>);
}

/// A venue dialect: where it listens and how it makes sessions.
pub trait Dialect: Send + Sync + 'static {
    /// The venue it imitates.
    fn venue(&self) -> Venue;

    /// The WebSocket paths it serves (`/ws/v5/public`); the first is the one clients are told.
    fn paths(&self) -> &'static [&'static str];

    /// A session for a new connection on `path`.
    fn session(&self, path: &str) -> Box<dyn Session>;

    /// The venue's spelling of a catalog symbol (`BTC-USDT`), usually [`venue_symbol`].
    fn symbol(&self, spec: &SymbolSpec) -> String;
}

/// The dialect of `venue`, if the simulator speaks it (Binance spot and futures are built into
/// the server and have none).
pub fn for_venue(venue: Venue) -> Option<Arc<dyn Dialect>> {
    all().into_iter().find(|d| d.venue() == venue)
}

/// Every dialect the simulator speaks besides Binance's.
pub fn all() -> Vec<Arc<dyn Dialect>> {
    vec![
        Arc::new(bybit::BybitDialect::spot()),
        Arc::new(bybit::BybitDialect::linear()),
        Arc::new(coinbase::ExchangeDialect),
        Arc::new(coinbase_advanced::AdvancedTradeDialect),
        Arc::new(kraken::KrakenDialect),
        Arc::new(okx::OkxDialect::new()),
    ]
}

/// The venue spelling of a catalog symbol: `base` + `sep` + `quote` (`BTC-USDT`, `BTC/USD`),
/// or the symbol as it is when its quote asset is unknown.
pub fn venue_symbol(spec: &SymbolSpec, sep: &str) -> String {
    if spec.quote.is_empty() {
        spec.symbol.clone()
    } else {
        format!("{}{sep}{}", spec.base, spec.quote)
    }
}

/// The catalog symbol whose venue spelling (with `sep`) is `name`.
pub fn lookup(catalog: &Catalog, name: &str, sep: &str) -> Option<SymbolId> {
    catalog
        .iter()
        .find(|(_, s)| venue_symbol(s, sep) == name)
        .map(|(id, _)| id)
}

/// Decimal places of a tick or step in 1e-9 units (`10_000_000` = 0.01 -> 2).
pub fn decimals_of(units: i64) -> u8 {
    let mut d = 9u8;
    let mut u = units.max(1);
    while d > 0 && u % 10 == 0 {
        u /= 10;
        d -= 1;
    }
    d
}

/// Whether a dialect maps this kind of event (see the module docs).
pub fn mapped(kind: StreamKind) -> bool {
    matches!(
        kind,
        StreamKind::Trade | StreamKind::BookTicker | StreamKind::Depth100ms
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn symbols_and_decimals() {
        let s = SymbolSpec::new("BTCUSDT", 10_000_000, 10_000);
        assert_eq!(venue_symbol(&s, "-"), "BTC-USDT");
        assert_eq!(venue_symbol(&s, "/"), "BTC/USDT");
        assert_eq!(venue_symbol(&s, ""), "BTCUSDT");
        let mut c = Catalog::new();
        c.add(s).unwrap();
        assert_eq!(lookup(&c, "BTC-USDT", "-"), Some(0));
        assert_eq!(lookup(&c, "ETH-USDT", "-"), None);
        assert_eq!(decimals_of(10_000_000), 2);
        assert_eq!(decimals_of(10_000), 5);
        assert_eq!(decimals_of(1), 9);
        assert_eq!(decimals_of(1_000_000_000), 0);
    }
}
