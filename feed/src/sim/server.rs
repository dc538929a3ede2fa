//! The tokio/axum shell: HTTP routes (WebSocket streams, REST, control) over the shared state.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::Router;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use futures_util::SinkExt;
use serde_json::{Value, json};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::MissedTickBehavior;
use tracing::{debug, info};

use super::dialect::{Ctx, Dialect};
use super::fanout::{CloseReason, NewConn, PaceClock, QUEUE_CAPACITY, Registry};
use super::protocol::{Beat, Heartbeat, MAX_STREAMS, RateLimiter, Session};
use super::render;
use super::sources::SimCore;
use super::stream::{Catalog, StreamKind, TimeUnit};
use crate::clock::now_ns;

/// How long `GET /api/v3/depth` waits for a book that is not known yet before answering 503.
pub const SNAPSHOT_WAIT: Duration = Duration::from_secs(10);
/// Largest client message accepted (bytes); larger ones close the connection (1009).
pub const MAX_CLIENT_MESSAGE: usize = 64 * 1024;
/// Default and largest `limit` of `GET /api/v3/depth` (Binance: default 100, max 5000).
pub const DEPTH_DEFAULT_LIMIT: usize = 100;
/// See [`DEPTH_DEFAULT_LIMIT`].
pub const DEPTH_MAX_LIMIT: usize = 5000;

/// Run state, changed by the control endpoints and the runner.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Control {
    pub running: bool,
    /// Items left before pausing again (`POST /sim/start?events=N`).
    pub budget: Option<u64>,
    /// Every source has ended (captures without looping).
    pub finished: bool,
    pub shutdown: bool,
}

/// State shared by the runner, the connections and the HTTP handlers.
/// Lock order: `core`, then `clock`, then `registry`.
pub(crate) struct Shared {
    pub core: Mutex<SimCore>,
    pub catalog: Arc<Catalog>,
    pub clock: Mutex<PaceClock>,
    pub registry: Mutex<Registry>,
    pub control: watch::Sender<Control>,
    /// Bumped whenever a book becomes known (REST requests waiting for one watch it).
    pub books: watch::Sender<u64>,
    pub speed: f64,
    pub looping: bool,
    pub ping_interval: Duration,
    pub closed_timeout: AtomicU64,
    pub closed_rate: AtomicU64,
    /// The venue dialect spoken on its own paths, if not Binance's.
    pub dialect: Option<Arc<dyn Dialect>>,
    /// Replay lateness per item, ns after its scheduled time (see `SimHandle::lateness`).
    pub lateness: Mutex<hdrhistogram::Histogram<u64>>,
}

/// Locks a mutex, recovering the data if a holder panicked (never expected).
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

pub(crate) fn router(shared: Arc<Shared>) -> Router {
    let mut router = Router::new();
    match &shared.dialect {
        Some(d) => {
            for path in d.paths() {
                router = router.route(path, get(ws_dialect));
            }
        }
        None => {
            router = router
                .route("/stream", get(ws_combined))
                .route("/stream/", get(ws_combined))
                .route("/ws", get(ws_raw))
                .route("/ws/", get(ws_raw))
                .route("/ws/{*streams}", get(ws_raw_path));
        }
    }
    router
        .route("/api/v3/depth", get(rest_depth))
        .route("/api/v3/ping", get(rest_ping))
        .route("/api/v3/time", get(rest_time))
        .route("/api/v3/exchangeInfo", get(rest_exchange_info))
        .route("/fapi/v1/depth", get(rest_depth))
        .route("/fapi/v1/ping", get(rest_ping))
        .route("/fapi/v1/time", get(rest_time))
        .route("/fapi/v1/exchangeInfo", get(rest_exchange_info))
        .route("/sim/start", post(sim_start))
        .route("/sim/pause", post(sim_pause))
        .route("/sim/status", get(sim_status))
        .fallback(not_found)
        .with_state(shared)
}

fn json_response(status: StatusCode, body: String) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json;charset=UTF-8")],
        body,
    )
        .into_response()
}

fn rest_error(status: StatusCode, code: i64, msg: &str) -> Response {
    json_response(status, render::rest_error(code, msg))
}

type Params = Query<HashMap<String, String>>;
type Upgrade = Result<WebSocketUpgrade, WebSocketUpgradeRejection>;

async fn ws_combined(
    State(shared): State<Arc<Shared>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Query(q): Params,
    ws: Upgrade,
) -> Response {
    let names = q.get("streams").cloned().unwrap_or_default();
    accept(shared, ws, &names, true, &q, peer)
}

async fn ws_raw(
    State(shared): State<Arc<Shared>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Query(q): Params,
    ws: Upgrade,
) -> Response {
    accept(shared, ws, "", false, &q, peer)
}

async fn ws_raw_path(
    State(shared): State<Arc<Shared>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(streams): Path<String>,
    Query(q): Params,
    ws: Upgrade,
) -> Response {
    accept(shared, ws, &streams, false, &q, peer)
}

/// Validates the URL (streams, `timeUnit`), registers the connection before the upgrade
/// completes (so nothing sent after the client sees the 101 is missed), and runs it.
fn accept(
    shared: Arc<Shared>,
    ws: Upgrade,
    names: &str,
    combined: bool,
    q: &HashMap<String, String>,
    peer: SocketAddr,
) -> Response {
    let ws = match ws {
        Ok(ws) => ws,
        Err(rejection) => {
            let status = rejection.status();
            return rest_error(
                status,
                -1000,
                &format!(
                    "this is a WebSocket endpoint ({rejection}); connect with a WebSocket client, e.g. ws://HOST/stream?streams=btcusdt@trade"
                ),
            );
        }
    };
    let unit = match q.get("timeUnit") {
        None => TimeUnit::Millisecond,
        Some(t) => match TimeUnit::parse(t) {
            Some(u) => u,
            None => {
                return rest_error(
                    StatusCode::BAD_REQUEST,
                    -1194,
                    "Invalid value for time unit; expected either MICROSECOND or MILLISECOND (or NANOSECOND, a simulator extension).",
                );
            }
        },
    };
    let mut keys = Vec::new();
    for name in names.split('/').filter(|n| !n.is_empty()) {
        match shared.catalog.parse_stream(name) {
            Ok(k) => keys.push(k),
            Err(e) => {
                return rest_error(
                    StatusCode::BAD_REQUEST,
                    2,
                    &format!("Invalid request: invalid stream {name:?}: {}", e.why),
                );
            }
        }
    }
    if keys.len() > MAX_STREAMS {
        return rest_error(
            StatusCode::BAD_REQUEST,
            2,
            &format!(
                "Invalid request: too many streams: a connection can listen to at most {MAX_STREAMS}"
            ),
        );
    }
    let session = Session::new(keys, combined, unit);
    let (tx, rx) = mpsc::channel(QUEUE_CAPACITY);
    let (kill, kill_rx) = oneshot::channel();
    let id = lock(&shared.registry).register(NewConn {
        peer,
        tx,
        kill,
        masks: session.masks(shared.catalog.len()),
        unit,
        combined,
        session: None,
    });
    debug!(%peer, id, streams = names, "simulator: WebSocket client connected");
    let guard = ConnGuard { shared, id };
    ws.max_message_size(MAX_CLIENT_MESSAGE)
        .max_frame_size(MAX_CLIENT_MESSAGE)
        .on_upgrade(move |socket| connection(socket, session, rx, kill_rx, guard))
}

/// Unregisters a connection when its task ends (or when the upgrade never happens).
struct ConnGuard {
    shared: Arc<Shared>,
    id: u64,
}

impl Drop for ConnGuard {
    fn drop(&mut self) {
        lock(&self.shared.registry).remove(self.id);
    }
}

async fn connection(
    mut ws: WebSocket,
    mut session: Session,
    mut rx: mpsc::Receiver<Utf8Bytes>,
    mut kill: oneshot::Receiver<CloseReason>,
    guard: ConnGuard,
) {
    let shared = guard.shared.clone();
    let id = guard.id;
    let interval = shared.ping_interval;
    let mut heartbeat = Heartbeat::new(interval, std::time::Instant::now());
    let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut limiter = RateLimiter::default();
    let mut batch: Vec<Utf8Bytes> = Vec::with_capacity(256);
    let close: Option<CloseReason> = loop {
        tokio::select! {
            biased;
            reason = &mut kill => break reason.ok(),
            n = rx.recv_many(&mut batch, 256) => {
                if n == 0 {
                    break None;
                }
                // Many messages, one flush; a kill (slow consumer) interrupts a blocked write.
                let write = async {
                    for m in batch.drain(..) {
                        ws.feed(Message::Text(m)).await?;
                    }
                    ws.flush().await
                };
                tokio::select! {
                    biased;
                    reason = &mut kill => break reason.ok(),
                    r = write => if r.is_err() { break None },
                }
            }
            incoming = ws.recv() => {
                let now = std::time::Instant::now();
                let msg = match incoming {
                    Some(Ok(msg)) => msg,
                    Some(Err(e)) => break close_for_error(e),
                    None => break None,
                };
                if !limiter.allow(now) {
                    shared.closed_rate.fetch_add(1, Ordering::Relaxed);
                    break Some(CloseReason::new(
                        1008,
                        "too many messages: at most 5 incoming messages (requests, pings, pongs) per second, as on Binance",
                    ));
                }
                let text = match &msg {
                    Message::Text(t) => Some(t.as_str().to_string()),
                    Message::Binary(b) => Some(String::from_utf8_lossy(b).into_owned()),
                    Message::Ping(_) => {
                        // tungstenite queued the pong; send it now.
                        if ws.flush().await.is_err() {
                            break None;
                        }
                        None
                    }
                    Message::Pong(p) => {
                        heartbeat.on_pong(p, now);
                        None
                    }
                    Message::Close(_) => {
                        // Send tungstenite's queued reply to the client's close frame.
                        let _ = ws.flush().await;
                        break None;
                    }
                };
                if let Some(text) = text {
                    let out = session.handle(&text, &shared.catalog);
                    if out.changed {
                        lock(&shared.registry).update(
                            id,
                            session.masks(shared.catalog.len()),
                            session.combined(),
                        );
                    }
                    if ws.send(Message::Text(out.reply.into())).await.is_err() {
                        break None;
                    }
                }
            }
            _ = ticker.tick() => {
                match heartbeat.on_tick(std::time::Instant::now()) {
                    Beat::Ping(p) => {
                        if ws.send(Message::Ping(p.into())).await.is_err() {
                            break None;
                        }
                    }
                    Beat::TimedOut => {
                        shared.closed_timeout.fetch_add(1, Ordering::Relaxed);
                        break Some(CloseReason::new(
                            1008,
                            format!(
                                "no pong answered the server's pings for {} s",
                                (interval * super::protocol::MISSED_PONGS).as_secs_f64()
                            ),
                        ));
                    }
                }
            }
        }
    };
    if let Some(reason) = close {
        info!(id, code = reason.code, reason = %reason.reason, "simulator: closing a WebSocket client");
        let frame = CloseFrame {
            code: reason.code,
            reason: reason.reason.into(),
        };
        // Send the close frame and give the client a moment to answer it (the RFC 6455
        // closing handshake) instead of resetting a connection it may still write pongs to.
        let _ = tokio::time::timeout(Duration::from_secs(1), async {
            ws.send(Message::Close(Some(frame))).await?;
            while let Some(m) = ws.recv().await {
                if matches!(m?, Message::Close(_)) {
                    break;
                }
            }
            Ok::<(), axum::Error>(())
        })
        .await;
    }
    drop(guard);
}

/// A WebSocket connection on one of the venue dialect's paths.
async fn ws_dialect(
    State(shared): State<Arc<Shared>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    uri: Uri,
    ws: Upgrade,
) -> Response {
    let ws = match ws {
        Ok(ws) => ws,
        Err(rejection) => {
            return (
                rejection.status(),
                format!(
                    "this is a WebSocket endpoint ({rejection}); connect with a WebSocket client"
                ),
            )
                .into_response();
        }
    };
    let Some(dialect) = shared.dialect.clone() else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let (tx, rx) = mpsc::channel(QUEUE_CAPACITY);
    let (kill, kill_rx) = oneshot::channel();
    let id = lock(&shared.registry).register(NewConn {
        peer,
        tx,
        kill,
        masks: Vec::new(),
        unit: TimeUnit::Millisecond,
        combined: false,
        session: Some(dialect.session(uri.path())),
    });
    debug!(%peer, id, venue = %dialect.venue(), "simulator: WebSocket client connected");
    let guard = ConnGuard { shared, id };
    ws.max_message_size(MAX_CLIENT_MESSAGE)
        .max_frame_size(MAX_CLIENT_MESSAGE)
        .on_upgrade(move |socket| dialect_connection(socket, rx, kill_rx, guard))
}

/// Runs `f` on the connection's session with the current books (core, then registry: the
/// lock order), queueing its output behind everything already queued.
fn on_session(
    shared: &Shared,
    id: u64,
    f: impl FnOnce(
        &mut dyn super::dialect::Session,
        &Ctx<'_>,
        &mut Vec<String>,
    ) -> Result<(), CloseReason>,
) -> Result<(), CloseReason> {
    let core = lock(&shared.core);
    let ctx = Ctx {
        catalog: &shared.catalog,
        books: &*core,
        now_ns: now_ns(),
    };
    lock(&shared.registry)
        .with_session(id, |s, out| f(s, &ctx, out))
        .map(|_| ())
}

/// A dialect connection: queued messages out (many per flush), client text to the session,
/// a tick a second for heartbeats. WebSocket pings are answered by the WebSocket layer.
async fn dialect_connection(
    mut ws: WebSocket,
    mut rx: mpsc::Receiver<Utf8Bytes>,
    mut kill: oneshot::Receiver<CloseReason>,
    guard: ConnGuard,
) {
    let shared = guard.shared.clone();
    let id = guard.id;
    let mut ticker = tokio::time::interval(Duration::from_secs(1));
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut batch: Vec<Utf8Bytes> = Vec::with_capacity(256);
    let close: Option<CloseReason> = loop {
        tokio::select! {
            biased;
            reason = &mut kill => break reason.ok(),
            n = rx.recv_many(&mut batch, 256) => {
                if n == 0 {
                    break None;
                }
                let write = async {
                    for m in batch.drain(..) {
                        ws.feed(Message::Text(m)).await?;
                    }
                    ws.flush().await
                };
                tokio::select! {
                    biased;
                    reason = &mut kill => break reason.ok(),
                    r = write => if r.is_err() { break None },
                }
            }
            incoming = ws.recv() => {
                let msg = match incoming {
                    Some(Ok(msg)) => msg,
                    Some(Err(e)) => break close_for_error(e),
                    None => break None,
                };
                let text = match &msg {
                    Message::Text(t) => t.as_str().to_string(),
                    Message::Binary(b) => String::from_utf8_lossy(b).into_owned(),
                    Message::Ping(_) => {
                        if ws.flush().await.is_err() {
                            break None;
                        }
                        continue;
                    }
                    Message::Pong(_) => continue,
                    Message::Close(_) => {
                        let _ = ws.flush().await;
                        break None;
                    }
                };
                if let Err(reason) = on_session(&shared, id, |s, ctx, out| s.on_text(&text, ctx, out)) {
                    break Some(reason);
                }
            }
            _ = ticker.tick() => {
                if let Err(reason) = on_session(&shared, id, |s, ctx, out| {
                    s.on_tick(ctx, out);
                    Ok(())
                }) {
                    break Some(reason);
                }
            }
        }
    };
    if let Some(reason) = close {
        info!(id, code = reason.code, reason = %reason.reason, "simulator: closing a WebSocket client");
        let frame = CloseFrame {
            code: reason.code,
            reason: reason.reason.into(),
        };
        let _ = tokio::time::timeout(Duration::from_secs(1), async {
            ws.send(Message::Close(Some(frame))).await?;
            while let Some(m) = ws.recv().await {
                if matches!(m?, Message::Close(_)) {
                    break;
                }
            }
            Ok::<(), axum::Error>(())
        })
        .await;
    }
    drop(guard);
}

/// The close frame that fits a protocol violation by the client (RFC 6455 codes), if any.
fn close_for_error(e: axum::Error) -> Option<CloseReason> {
    use tokio_tungstenite::tungstenite::Error as WsError;
    use tokio_tungstenite::tungstenite::error::CapacityError;
    match *e.into_inner().downcast::<WsError>().ok()? {
        WsError::Capacity(CapacityError::MessageTooLong { .. }) => Some(CloseReason::new(
            1009,
            format!("message too big: requests are at most {MAX_CLIENT_MESSAGE} bytes"),
        )),
        WsError::Capacity(_) => Some(CloseReason::new(1009, "message too big")),
        WsError::Utf8(_) => Some(CloseReason::new(1007, "text message is not valid UTF-8")),
        WsError::Protocol(p) => Some(CloseReason::new(1002, format!("protocol error: {p}"))),
        _ => None,
    }
}

async fn rest_depth(State(shared): State<Arc<Shared>>, Query(q): Params) -> Response {
    let symbol = match q.get("symbol").map(String::as_str) {
        None | Some("") => {
            return rest_error(
                StatusCode::BAD_REQUEST,
                -1102,
                "Mandatory parameter 'symbol' was not sent, was empty/null, or malformed.",
            );
        }
        Some(s) => s,
    };
    if symbol.len() > 20
        || !symbol
            .bytes()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || b"-_.".contains(&c))
    {
        return rest_error(
            StatusCode::BAD_REQUEST,
            -1100,
            "Illegal characters found in parameter 'symbol'; legal range is '^[A-Z0-9-_.]{1,20}$'.",
        );
    }
    let Some(id) = shared.catalog.lookup(symbol) else {
        return rest_error(StatusCode::BAD_REQUEST, -1121, "Invalid symbol.");
    };
    let limit = match q.get("limit") {
        None => DEPTH_DEFAULT_LIMIT,
        Some(text) => match text.parse::<u64>() {
            Ok(n) if n >= 1 => (n.min(DEPTH_MAX_LIMIT as u64)) as usize,
            _ => {
                return rest_error(
                    StatusCode::BAD_REQUEST,
                    -1100,
                    "Illegal characters found in parameter 'limit'; legal range is '1' to '5000' (larger values are cut to 5000).",
                );
            }
        },
    };
    let deadline = tokio::time::Instant::now() + SNAPSHOT_WAIT;
    let mut books = shared.books.subscribe();
    loop {
        books.borrow_and_update();
        let snap = lock(&shared.core).snapshot(id, limit);
        if let Some(snap) = snap {
            return json_response(StatusCode::OK, render::depth_snapshot(&snap));
        }
        match tokio::time::timeout_at(deadline, books.changed()).await {
            Ok(Ok(())) => continue,
            _ => {
                return rest_error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    -1001,
                    &format!(
                        "The order book of {symbol} is not known yet: the capture has not reached its REST snapshot. \
                         Start the simulator (POST /sim/start) and retry."
                    ),
                );
            }
        }
    }
}

async fn rest_ping() -> Response {
    json_response(StatusCode::OK, "{}".to_string())
}

async fn rest_time() -> Response {
    json_response(
        StatusCode::OK,
        json!({ "serverTime": now_ns() / 1_000_000 }).to_string(),
    )
}

async fn rest_exchange_info(State(shared): State<Arc<Shared>>, Query(q): Params) -> Response {
    let catalog = &shared.catalog;
    let mut wanted: Option<Vec<String>> = None;
    if let Some(s) = q.get("symbol") {
        wanted = Some(vec![s.clone()]);
    } else if let Some(list) = q.get("symbols") {
        match serde_json::from_str::<Vec<String>>(list) {
            Ok(v) => wanted = Some(v),
            Err(_) => {
                return rest_error(
                    StatusCode::BAD_REQUEST,
                    -1100,
                    "Illegal characters found in parameter 'symbols'; expected a JSON array like [\"BTCUSDT\",\"ETHUSDT\"].",
                );
            }
        }
    }
    let ids = match wanted {
        None => None,
        Some(names) => {
            let mut ids = Vec::new();
            for n in names {
                match catalog.lookup(&n) {
                    Some(id) => ids.push(id),
                    None => return rest_error(StatusCode::BAD_REQUEST, -1121, "Invalid symbol."),
                }
            }
            Some(ids)
        }
    };
    json_response(
        StatusCode::OK,
        render::exchange_info(catalog, ids.as_deref(), now_ns() / 1_000_000),
    )
}

async fn sim_start(State(shared): State<Arc<Shared>>, Query(q): Params) -> Response {
    let events = match q.get("events").map(|t| t.parse::<u64>()) {
        None => None,
        Some(Ok(n)) if n >= 1 => Some(n),
        Some(_) => {
            return rest_error(
                StatusCode::BAD_REQUEST,
                -1100,
                "events must be a whole number of at least 1 (or left out to run until paused)",
            );
        }
    };
    set_running(&shared, true, events);
    json_response(StatusCode::OK, status(&shared).to_string())
}

async fn sim_pause(State(shared): State<Arc<Shared>>) -> Response {
    set_running(&shared, false, None);
    json_response(StatusCode::OK, status(&shared).to_string())
}

async fn sim_status(State(shared): State<Arc<Shared>>) -> Response {
    json_response(StatusCode::OK, status(&shared).to_string())
}

async fn not_found(method: Method, uri: Uri) -> Response {
    rest_error(
        StatusCode::NOT_FOUND,
        -1000,
        &format!(
            "Not found: {method} {}. The simulator serves WebSocket /stream?streams=.., /ws, /ws/<stream>; \
             GET /api/v3/depth, /api/v3/exchangeInfo, /api/v3/ping, /api/v3/time; \
             POST /sim/start, /sim/pause; GET /sim/status.",
            uri.path()
        ),
    )
}

/// Starts (optionally for `budget` items, then pauses) or pauses the replay.
pub(crate) fn set_running(shared: &Shared, running: bool, budget: Option<u64>) {
    shared.control.send_modify(|c| {
        c.running = running;
        c.budget = if running { budget } else { None };
    });
}

/// The `/sim/status` document.
pub(crate) fn status(shared: &Shared) -> Value {
    let (events, steps, loops, sources) = {
        let core = lock(&shared.core);
        (
            core.events(),
            core.steps(),
            core.loops_completed(),
            core.positions(),
        )
    };
    let (clients, streams, messages, closed_slow) = {
        let r = lock(&shared.registry);
        (r.len(), r.streams_subscribed(), r.messages, r.closed_slow)
    };
    let ctl = *shared.control.borrow();
    let mut per_stream = serde_json::Map::new();
    for k in StreamKind::ALL {
        per_stream.insert(k.suffix().to_string(), json!(events[k.index()]));
    }
    json!({
        "running": ctl.running,
        "finished": ctl.finished,
        "run_budget": ctl.budget,
        "speed": if shared.speed.is_finite() { json!(shared.speed) } else { json!("max") },
        "looping": shared.looping,
        "events_sent": per_stream,
        "items_processed": steps,
        "messages_queued": messages,
        "loops_completed": loops,
        "connected_clients": clients,
        "streams_subscribed": streams,
        "clients_closed_slow": closed_slow,
        "clients_closed_pong_timeout": shared.closed_timeout.load(Ordering::Relaxed),
        "clients_closed_rate_limit": shared.closed_rate.load(Ordering::Relaxed),
        "sources": sources,
    })
}
