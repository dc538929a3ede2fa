//! Stream names, stream kinds, time units and the symbol catalog: the vocabulary shared by
//! the simulator's core and its server.

use crate::binance::BinanceMarket;
use std::collections::HashMap;
use std::fmt;

use thiserror::Error;

/// Dense index of a symbol in the simulator's [`Catalog`].
pub type SymbolId = u16;

/// The kinds of market stream the simulator serves, one per Binance stream suffix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum StreamKind {
    /// `<symbol>@trade`: every trade.
    Trade,
    /// `<symbol>@aggTrade`: aggregated trades (the simulator sends one per trade when the
    /// source has trades only; a capture's own aggTrades are replayed as they are).
    AggTrade,
    /// `<symbol>@bookTicker`: best bid and ask, on every change (no `E` field on spot).
    BookTicker,
    /// `<symbol>@depth`: diff depth, one message per second with every change in that second.
    Depth1000ms,
    /// `<symbol>@depth@100ms`: diff depth, one message per 100 ms with changes.
    Depth100ms,
}

impl StreamKind {
    /// Every kind, in a fixed order (the order of [`Self::index`]).
    pub const ALL: [StreamKind; 5] = [
        StreamKind::Trade,
        StreamKind::AggTrade,
        StreamKind::BookTicker,
        StreamKind::Depth1000ms,
        StreamKind::Depth100ms,
    ];

    /// The stream-name suffix after `<symbol>@`.
    pub fn suffix(self) -> &'static str {
        match self {
            StreamKind::Trade => "trade",
            StreamKind::AggTrade => "aggTrade",
            StreamKind::BookTicker => "bookTicker",
            StreamKind::Depth1000ms => "depth",
            StreamKind::Depth100ms => "depth@100ms",
        }
    }

    /// Position in [`Self::ALL`], 0..5.
    pub fn index(self) -> usize {
        self as usize
    }

    /// This kind's bit in a per-symbol subscription mask.
    pub fn bit(self) -> u8 {
        1 << (self as u8)
    }

    fn from_suffix(suffix: &str) -> Option<StreamKind> {
        StreamKind::ALL.into_iter().find(|k| k.suffix() == suffix)
    }
}

/// A stream: one kind of one symbol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StreamKey {
    /// The symbol.
    pub symbol: SymbolId,
    /// The kind.
    pub kind: StreamKind,
}

/// The unit of the time fields (`E`, `T`) a connection asked for with `timeUnit=`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum TimeUnit {
    /// Milliseconds since the Unix epoch (Binance's default).
    #[default]
    Millisecond,
    /// Microseconds (`timeUnit=MICROSECOND`, documented by Binance).
    Microsecond,
    /// Nanoseconds (`timeUnit=NANOSECOND`: a tickwire extension for latency measurement).
    Nanosecond,
}

impl TimeUnit {
    /// Parses a `timeUnit` query value (`MILLISECOND`, `MICROSECOND`, `NANOSECOND`, upper or
    /// lower case as Binance accepts).
    pub fn parse(text: &str) -> Option<TimeUnit> {
        match text {
            "MILLISECOND" | "millisecond" => Some(TimeUnit::Millisecond),
            "MICROSECOND" | "microsecond" => Some(TimeUnit::Microsecond),
            "NANOSECOND" | "nanosecond" => Some(TimeUnit::Nanosecond),
            _ => None,
        }
    }

    /// Converts ns since the epoch to this unit.
    pub fn from_ns(self, ns: u64) -> u64 {
        match self {
            TimeUnit::Millisecond => ns / 1_000_000,
            TimeUnit::Microsecond => ns / 1_000,
            TimeUnit::Nanosecond => ns,
        }
    }

    /// Position of this unit in per-connection rendering caches, 0..3.
    pub fn index(self) -> usize {
        self as usize
    }
}

/// One symbol the simulator serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SymbolSpec {
    /// Upper-case exchange symbol, as in `"s"` and REST (`BTCUSDT`).
    pub symbol: String,
    /// Lower-case form used in stream names (`btcusdt`).
    pub lower: String,
    /// Base asset (`BTC`), empty if it could not be told apart.
    pub base: String,
    /// Quote asset (`USDT`), empty if it could not be told apart.
    pub quote: String,
    /// Price tick, 1e-9 units (> 0).
    pub tick: i64,
    /// Quantity step, 1e-9 units (> 0).
    pub step: i64,
}

impl SymbolSpec {
    /// A spec for `symbol` (any case) with the given tick and step (1e-9 units); base and
    /// quote are split off by a list of well-known quote assets.
    pub fn new(symbol: &str, tick: i64, step: i64) -> SymbolSpec {
        let symbol = symbol.to_ascii_uppercase();
        let (base, quote) = split_symbol(&symbol);
        SymbolSpec {
            lower: symbol.to_ascii_lowercase(),
            base: base.to_string(),
            quote: quote.to_string(),
            symbol,
            tick: tick.max(1),
            step: step.max(1),
        }
    }
}

/// Splits `BTCUSDT` into (`BTC`, `USDT`) using well-known quote assets; (`symbol`, "") if none fits.
pub fn split_symbol(symbol: &str) -> (&str, &str) {
    const QUOTES: [&str; 17] = [
        "FDUSD", "USDT", "USDC", "TUSD", "BUSD", "USDP", "DAI", "BTC", "ETH", "BNB", "EUR", "TRY",
        "BRL", "GBP", "JPY", "AUD", "USD",
    ];
    for q in QUOTES {
        if let Some(base) = symbol.strip_suffix(q)
            && !base.is_empty()
        {
            return (base, q);
        }
    }
    (symbol, "")
}

/// Whether `symbol` is a plausible exchange symbol: 1..=20 ASCII letters or digits.
pub fn valid_symbol_text(symbol: &str) -> bool {
    !symbol.is_empty() && symbol.len() <= 20 && symbol.bytes().all(|c| c.is_ascii_alphanumeric())
}

/// The symbols the simulator serves, indexed densely by [`SymbolId`]. Immutable once built.
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    symbols: Vec<SymbolSpec>,
    by_upper: HashMap<String, SymbolId>,
    market: BinanceMarket,
}

/// Why a catalog could not be built.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum CatalogError {
    /// Two sources (or one source twice) drive the same symbol.
    #[error("symbol {0} is driven by more than one source; give each symbol to exactly one source")]
    Duplicate(String),
    /// A symbol is not 1..=20 ASCII letters or digits.
    #[error("invalid symbol {0:?}: expected 1 to 20 ASCII letters or digits, like BTCUSDT")]
    Invalid(String),
    /// More symbols than a [`SymbolId`] can index.
    #[error("too many symbols (at most {} are supported)", SymbolId::MAX)]
    TooMany,
}

impl Catalog {
    /// An empty catalog.
    pub fn new() -> Catalog {
        Catalog::default()
    }

    /// Adds a symbol; its id is the number of symbols added before it.
    pub fn add(&mut self, spec: SymbolSpec) -> Result<SymbolId, CatalogError> {
        if !valid_symbol_text(&spec.symbol) {
            return Err(CatalogError::Invalid(spec.symbol));
        }
        if self.by_upper.contains_key(&spec.symbol) {
            return Err(CatalogError::Duplicate(spec.symbol));
        }
        let id = SymbolId::try_from(self.symbols.len()).map_err(|_| CatalogError::TooMany)?;
        if id == SymbolId::MAX {
            return Err(CatalogError::TooMany);
        }
        self.by_upper.insert(spec.symbol.clone(), id);
        self.symbols.push(spec);
        Ok(id)
    }

    /// Speaks the dialect of `market` (spot by default).
    pub fn set_market(&mut self, market: BinanceMarket) {
        self.market = market;
    }

    /// The Binance market whose dialect is spoken.
    pub fn market(&self) -> BinanceMarket {
        self.market
    }

    /// Number of symbols.
    pub fn len(&self) -> usize {
        self.symbols.len()
    }

    /// Whether there are no symbols.
    pub fn is_empty(&self) -> bool {
        self.symbols.is_empty()
    }

    /// The spec of `id`; `None` if `id` did not come from this catalog.
    pub fn spec(&self, id: SymbolId) -> Option<&SymbolSpec> {
        self.symbols.get(id as usize)
    }

    /// Every symbol, in id order.
    pub fn iter(&self) -> impl Iterator<Item = (SymbolId, &SymbolSpec)> {
        self.symbols
            .iter()
            .enumerate()
            .map(|(i, s)| (i as SymbolId, s))
    }

    /// The id of an upper-case exchange symbol (`BTCUSDT`).
    pub fn lookup(&self, upper: &str) -> Option<SymbolId> {
        self.by_upper.get(upper).copied()
    }

    /// Lower-case symbol names, comma separated (for error messages).
    pub fn lower_names(&self) -> String {
        let names: Vec<&str> = self.symbols.iter().map(|s| s.lower.as_str()).collect();
        names.join(", ")
    }

    /// The stream name of `key` (`btcusdt@depth@100ms`).
    pub fn stream_name(&self, key: StreamKey) -> String {
        let sym = self
            .spec(key.symbol)
            .map(|s| s.lower.as_str())
            .unwrap_or("?");
        format!("{sym}@{}", key.kind.suffix())
    }

    /// Parses a stream name as Binance spells it (`btcusdt@trade`; lower-case symbol).
    pub fn parse_stream(&self, name: &str) -> Result<StreamKey, StreamError> {
        let invalid = |why: String| StreamError {
            stream: name.to_string(),
            why,
        };
        let Some((sym, suffix)) = name.split_once('@') else {
            return Err(invalid(
                "expected <symbol>@<stream>, like btcusdt@trade".to_string(),
            ));
        };
        if !valid_symbol_text(sym) {
            return Err(invalid(format!("{sym:?} is not a symbol")));
        }
        if sym.bytes().any(|c| c.is_ascii_uppercase()) {
            return Err(invalid(format!(
                "symbols in stream names are lower case: use {}@{suffix}",
                sym.to_ascii_lowercase()
            )));
        }
        let Some(kind) = StreamKind::from_suffix(suffix) else {
            return Err(invalid(format!(
                "the simulator serves @trade, @aggTrade, @bookTicker, @depth and @depth@100ms, not @{suffix}"
            )));
        };
        if kind == StreamKind::Trade && self.market == BinanceMarket::UsdFutures {
            return Err(invalid(
                "USD-M futures has no raw trade stream; subscribe to @aggTrade".to_string(),
            ));
        }
        let Some(symbol) = self.lookup(&sym.to_ascii_uppercase()) else {
            return Err(invalid(format!(
                "unknown symbol {sym}; the simulator serves {}",
                self.lower_names()
            )));
        };
        Ok(StreamKey { symbol, kind })
    }
}

/// A stream name the simulator cannot serve, and why.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("invalid stream {stream:?}: {why}")]
pub struct StreamError {
    /// The name as given.
    pub stream: String,
    /// What is wrong with it.
    pub why: String,
}

impl fmt::Display for StreamKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.suffix())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn catalog() -> Catalog {
        let mut c = Catalog::new();
        c.add(SymbolSpec::new("BTCUSDT", 10_000_000, 10_000))
            .unwrap();
        c.add(SymbolSpec::new("ethusdt", 10_000_000, 10_000))
            .unwrap();
        c
    }

    #[test]
    fn parses_stream_names() {
        let c = catalog();
        let k = c.parse_stream("btcusdt@depth@100ms").unwrap();
        assert_eq!(k.symbol, 0);
        assert_eq!(k.kind, StreamKind::Depth100ms);
        assert_eq!(c.stream_name(k), "btcusdt@depth@100ms");
        assert_eq!(
            c.parse_stream("ethusdt@depth").unwrap().kind,
            StreamKind::Depth1000ms
        );
        assert_eq!(
            c.parse_stream("ethusdt@aggTrade").unwrap().kind,
            StreamKind::AggTrade
        );
        for bad in [
            "btcusdt",
            "BTCUSDT@trade",
            "btcusdt@kline_1m",
            "xrpusdt@trade",
            "@trade",
            "btc-usdt@trade",
            "btcusdt@depth@500ms",
        ] {
            let e = c.parse_stream(bad).unwrap_err();
            assert!(e.to_string().contains(bad), "{e}");
        }
        assert!(
            c.parse_stream("xrpusdt@trade")
                .unwrap_err()
                .why
                .contains("btcusdt, ethusdt")
        );
    }

    #[test]
    fn catalog_rejects_duplicates_and_bad_names() {
        let mut c = catalog();
        assert_eq!(
            c.add(SymbolSpec::new("btcusdt", 1, 1)),
            Err(CatalogError::Duplicate("BTCUSDT".into()))
        );
        assert!(matches!(
            c.add(SymbolSpec::new("BTC/USDT", 1, 1)),
            Err(CatalogError::Invalid(_))
        ));
        assert_eq!(c.lookup("ETHUSDT"), Some(1));
        assert_eq!(c.spec(1).unwrap().base, "ETH");
    }

    #[test]
    fn splits_symbols_and_units() {
        assert_eq!(split_symbol("BTCUSDT"), ("BTC", "USDT"));
        assert_eq!(split_symbol("BLZETH"), ("BLZ", "ETH"));
        assert_eq!(split_symbol("USDT"), ("USDT", ""));
        assert_eq!(split_symbol("FOOBAR"), ("FOOBAR", ""));
        assert_eq!(TimeUnit::parse("microsecond"), Some(TimeUnit::Microsecond));
        assert_eq!(TimeUnit::parse("SECOND"), None);
        assert_eq!(
            TimeUnit::Millisecond.from_ns(1_723_161_255_342_123_456),
            1_723_161_255_342
        );
        assert_eq!(
            TimeUnit::Microsecond.from_ns(1_723_161_255_342_123_456),
            1_723_161_255_342_123
        );
    }
}
