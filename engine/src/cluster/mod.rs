//! Scale-out over NATS: ingest nodes publish encoded frames, gateway nodes serve clients.
//!
//! ```text
//! venues -> ingest node (feeds, sequencer) --NATS md.<venue>.<symbol>.<channel>--> gateway
//!           ingest node (same feeds: A/B)  -/                 node (arbiter, sequencer input,
//!                                                             ring, sessions) -> clients
//! ```
//!
//! - [`subjects`]: subject names and headers.
//! - [`directory`]: what an ingest node announces (instruments, heartbeat).
//! - [`arbiter`]: per-stream choice of source, failover and continuity (sans-IO).
//! - [`ingest`]: the ingest side: ring -> NATS, snapshot answers, announcements.
//! - [`edge`]: the gateway side: NATS -> arbiter -> the local ring; interest follows the
//!   clients' subscriptions.
//! - [`nats_server`]: runs `nats-server` processes (tests, benchmarks, the demo).

pub mod arbiter;
pub mod directory;
pub mod subjects;
