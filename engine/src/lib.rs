//! tickwire's engine: the pipeline between the feeds and the clients.
//!
//! ```text
//! feed drivers -> ingest rings -> sequencer -> broadcast ring -> gateway sessions -> clients
//! ```
//!
//! - [`ingest`]: per-connection queues from feed drivers to the sequencer.
//! - [`sequencer`]: assigns per-stream `seq`, stamps `ts_publish`, encodes once, publishes.
//! - [`publisher`]: the one writer of the ring, keeping the cache and registry (used by the
//!   sequencer, and by replay).
//! - [`ring`]: the broadcast ring (one writer, a cursor per reader).
//! - [`lvc`]: the last-value cache (latest quote, book, trade totals, status per instrument).
//! - [`recorder`]: writes every published frame to a recording (`serve --record DIR`).
//! - [`replay`]: a recording served over WebSocket like live data (`tickwire replay --listen`).
//! - [`registry`]: the instruments this server serves.
//! - [`cluster`]: ingest and gateway nodes joined by NATS (`serve --role`).
//! - [`gateway`]: the WebSocket server and per-client sessions.
//! - [`server`]: assembles all of it from a configuration.
//! - [`bench`](mod@bench): the end-to-end latency harness (`tickwire bench`).

pub mod bench;
pub mod cli;
pub mod cluster;
pub mod gateway;
pub mod ingest;
pub mod lvc;
pub mod publisher;
pub mod recorder;
pub mod registry;
pub mod replay;
pub mod ring;
pub mod sequencer;
pub mod server;
