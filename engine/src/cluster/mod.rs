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
//! - [`link`]: a node's NATS connection (reconnecting, reporting losses).
//! - [`nats_server`]: runs `nats-server` processes (tests, benchmarks, the demo).

pub mod arbiter;
pub mod directory;
pub mod edge;
pub mod ingest;
pub mod link;
pub mod nats_server;
pub mod subjects;

/// What a `tickwire serve` process does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Role {
    /// Everything in one process, no NATS (the default).
    #[default]
    All,
    /// Venue feeds and sequencer; frames go to NATS. Serves no clients.
    Ingest,
    /// Serves clients with the streams they want, taken from NATS. Runs no feeds.
    Gateway,
}

/// How a node joins the cluster.
#[derive(Debug, Clone)]
pub struct ClusterConfig {
    /// Ingest or gateway.
    pub role: Role,
    /// NATS server URLs, comma-separated.
    pub nats: String,
    /// This node's name, unique in the cluster.
    pub node: String,
}
