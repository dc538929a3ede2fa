//! Shared pieces of tickwire's benchmarks.
//!
//! - [`synth`]: synthetic frames shaped like the Binance normalizer's (trades, quotes and book
//!   deltas of a few instruments, 76 encoded bytes each), and a [`synth::Producer`] that
//!   sequences, stamps and encodes them exactly as the engine's sequencer does. The fan-out
//!   benchmarks (`benches/ring.rs`, `src/bin/fanout.rs`) need a source that runs at any rate
//!   without a venue.

pub mod synth;
