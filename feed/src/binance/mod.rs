//! Binance.
