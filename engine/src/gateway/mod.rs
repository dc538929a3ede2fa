//! The gateway: the WebSocket server clients connect to (`ws://HOST:PORT/ws`).
//!
//! - [`protocol`]: control messages (sans-IO).
//! - [`subscriptions`]: a client's subscriptions and per-stream delivery state.
//! - [`delivery`]: what a client is sent and when (policies, conflation, snapshots; sans-IO).
//! - [`session`]: one client's task: its ring cursor and its writes.
//! - [`tls`]: TLS and token authentication at the handshake.

pub mod delivery;
pub mod protocol;
pub mod session;
pub mod subscriptions;
pub mod tls;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::StatusCode;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tracing::{debug, info, warn};

use crate::registry::Registry;
use crate::ring::Ring;
use tickwire_sdk::wire::Channel;

/// Limits and timings of the gateway.
#[derive(Debug, Clone)]
pub struct GatewayConfig {
    /// Most simultaneous client connections; more are refused with HTTP 503.
    pub max_connections: u64,
    /// Most instruments one connection may subscribe to.
    pub max_subscriptions: usize,
    /// Largest control message accepted from a client, bytes (larger: close 1009).
    pub max_message_size: usize,
    /// Most frames per batch (one WebSocket message in binary mode, one flush in JSON mode).
    pub max_batch_frames: usize,
    /// Most frame bytes per batch.
    pub max_batch_bytes: usize,
    /// A subscribed client that was sent nothing for this long gets a heartbeat frame.
    pub heartbeat_every: Duration,
    /// The server pings a client it has not heard from for this long.
    pub ping_every: Duration,
    /// A client silent for this long (no message, no pong) is closed.
    pub idle_timeout: Duration,
    /// A write that cannot complete in this time drops the client (slow consumer).
    pub write_timeout: Duration,
    /// If set, clients must present this token (`Authorization: Bearer <token>` or
    /// `?token=<token>` in the URL); others are refused with HTTP 401.
    pub token: Option<String>,
    /// If set, clients connect with TLS (`wss://`) using this certificate chain and key (PEM).
    pub tls: Option<tls::TlsFiles>,
    /// If set, every session with a lossless subscription publishes its ring position here,
    /// so that the ring's writer can wait for it (a replay at full speed does; the live
    /// engine never sets this: it never waits for a client).
    pub marks: Option<Arc<crate::ring::Marks>>,
    /// If set, the streams clients subscribe to are asked for here first (a gateway node of
    /// a cluster gets them from NATS); the embedded server has every stream in its ring.
    pub interest: Option<InterestHandle>,
}

/// Where a gateway gets the streams its clients want when not every stream flows into its
/// ring anyway (a gateway node of a cluster).
pub trait Interest: Send + Sync {
    /// Makes `streams` (instrument, channel) flow into the local ring; resolves once their
    /// current state is in the local cache, or after a bounded wait. Counted: each call is
    /// matched by one [`Interest::unwant`] of the same stream.
    fn want(
        self: Arc<Self>,
        streams: Vec<(u32, Channel)>,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>;
    /// One session no longer needs `streams`.
    fn unwant(&self, streams: Vec<(u32, Channel)>);
}

/// A shared [`Interest`].
#[derive(Clone)]
pub struct InterestHandle(pub Arc<dyn Interest>);

impl std::fmt::Debug for InterestHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Interest")
    }
}

impl Default for GatewayConfig {
    fn default() -> Self {
        GatewayConfig {
            max_connections: 10_000,
            max_subscriptions: 1_000,
            max_message_size: 64 << 10,
            max_batch_frames: 512,
            max_batch_bytes: 256 << 10,
            heartbeat_every: Duration::from_secs(1),
            ping_every: Duration::from_secs(15),
            idle_timeout: Duration::from_secs(60),
            write_timeout: Duration::from_secs(10),
            token: None,
            tls: None,
            marks: None,
            interest: None,
        }
    }
}

/// Counters of the gateway.
#[derive(Debug, Default)]
pub struct GatewayStats {
    /// Connections open now.
    pub active: AtomicU64,
    /// Connections with at least one subscription now.
    pub subscribed: AtomicU64,
    /// Connections accepted since start.
    pub accepted: AtomicU64,
    /// Connections refused (limit reached, bad path, failed handshake).
    pub refused: AtomicU64,
    /// Clients closed for being too slow.
    pub slow_closed: AtomicU64,
    /// Updates folded (not sent one by one) for clients that could not keep up, summed over
    /// ended sessions.
    pub folded: AtomicU64,
    /// Conflated frames sent, summed over ended sessions.
    pub conflated: AtomicU64,
    /// Ring entries lost to lapped (conflating) sessions.
    pub lapped: AtomicU64,
    /// Most bytes any session held queued while its client's socket was busy (control
    /// frames only: data is folded or left in the ring). Bounded by `MAX_HELD_BYTES`.
    pub max_held_bytes: AtomicU64,
    /// Frames delivered to clients (one per client per frame).
    pub frames_sent: AtomicU64,
    /// WebSocket messages written.
    pub messages_sent: AtomicU64,
}

/// What every session shares.
pub(crate) struct GatewayCtx {
    pub ring: Ring,
    pub registry: Arc<Registry>,
    pub lvc: Arc<crate::lvc::Lvc>,
    pub config: GatewayConfig,
    pub stats: Arc<GatewayStats>,
    /// Fires when the server shuts down: sessions deliver what is in the ring, then close 1001.
    pub shutdown: watch::Receiver<bool>,
    /// The TLS acceptor, when TLS is on.
    pub tls: Option<tokio_rustls::TlsAcceptor>,
}

/// Serves clients on `listener` until `shutdown` fires; then every session sends what is
/// left in the ring for it and closes with 1001 (going away).
#[allow(clippy::too_many_arguments)]
pub async fn serve(
    listener: TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    ring: Ring,
    registry: Arc<Registry>,
    lvc: Arc<crate::lvc::Lvc>,
    config: GatewayConfig,
    stats: Arc<GatewayStats>,
    mut shutdown: watch::Receiver<bool>,
) {
    let ctx = Arc::new(GatewayCtx {
        ring,
        registry,
        lvc,
        config,
        stats,
        shutdown: shutdown.clone(),
        tls,
    });
    if let Ok(addr) = listener.local_addr() {
        let scheme = if ctx.tls.is_some() { "wss" } else { "ws" };
        info!(%addr, "gateway listening on {scheme}://{addr}/ws");
    }
    loop {
        let (stream, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = shutdown.changed() => break,
        };
        let _ = stream.set_nodelay(true);
        let ctx = ctx.clone();
        tokio::spawn(async move { handshake_and_run(stream, peer, ctx).await });
    }
}

async fn handshake_and_run(stream: tokio::net::TcpStream, peer: SocketAddr, ctx: Arc<GatewayCtx>) {
    match ctx.tls.clone() {
        None => websocket(stream, peer, ctx).await,
        Some(acceptor) => {
            match tokio::time::timeout(Duration::from_secs(10), acceptor.accept(stream)).await {
                Ok(Ok(tls)) => websocket(tls, peer, ctx).await,
                Ok(Err(e)) => {
                    ctx.stats.refused.fetch_add(1, Ordering::Relaxed);
                    debug!(%peer, error = %e, "TLS handshake failed");
                }
                Err(_) => {
                    ctx.stats.refused.fetch_add(1, Ordering::Relaxed);
                    debug!(%peer, "TLS handshake timed out");
                }
            }
        }
    }
}

async fn websocket<S: session::Io>(stream: S, peer: SocketAddr, ctx: Arc<GatewayCtx>) {
    let active = ctx.stats.active.fetch_add(1, Ordering::Relaxed) + 1;
    let over_limit = active > ctx.config.max_connections;
    let limit = ctx.config.max_connections;
    let token = ctx.config.token.clone();
    // The callback's error type is tungstenite's, large as it is.
    #[allow(clippy::result_large_err)]
    let check = move |req: &Request, resp: Response| -> Result<Response, ErrorResponse> {
        if req.uri().path() != "/ws" {
            return Err(refusal(
                StatusCode::NOT_FOUND,
                "tickwire serves WebSocket clients at /ws",
            ));
        }
        if let Some(token) = &token
            && !tls::authorized(req, token)
        {
            return Err(refusal(
                StatusCode::UNAUTHORIZED,
                "a token is required: send `Authorization: Bearer <token>` or add ?token=<token>",
            ));
        }
        if over_limit {
            return Err(refusal(
                StatusCode::SERVICE_UNAVAILABLE,
                &format!(
                    "connection limit reached ({limit}); try again later or use another gateway"
                ),
            ));
        }
        Ok(resp)
    };
    let mut ws_config = WebSocketConfig::default();
    ws_config.max_message_size = Some(ctx.config.max_message_size);
    ws_config.max_frame_size = Some(ctx.config.max_message_size);
    match tokio_tungstenite::accept_hdr_async_with_config(stream, check, Some(ws_config)).await {
        Ok(ws) => {
            ctx.stats.accepted.fetch_add(1, Ordering::Relaxed);
            debug!(%peer, "client connected");
            session::run(ws, peer, ctx).await;
        }
        Err(e) => {
            ctx.stats.active.fetch_sub(1, Ordering::Relaxed);
            ctx.stats.refused.fetch_add(1, Ordering::Relaxed);
            debug!(%peer, error = %e, "handshake refused");
        }
    }
}

#[allow(clippy::result_large_err)]
fn refusal(status: StatusCode, message: &str) -> ErrorResponse {
    let mut resp = ErrorResponse::new(Some(message.to_string()));
    *resp.status_mut() = status;
    resp
}
