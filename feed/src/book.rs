//! The L2 order book the venue adapters keep: the SDK's [`tickwire_sdk::L2Book`], so the
//! feed and the clients share one implementation.

pub use tickwire_sdk::L2Book as OrderBook;
