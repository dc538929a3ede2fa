//! The async client: connect to a tickwire server, subscribe, and read batches of zero-copy
//! frame views.
//!
//! ```no_run
//! # async fn demo() -> Result<(), tickwire_sdk::client::ClientError> {
//! use tickwire_sdk::client::{Client, Event};
//! use tickwire_sdk::wire::{ArchivedBody, Channel};
//!
//! let mut client = Client::connect("ws://127.0.0.1:9100/ws").await?;
//! client.subscribe(&["binance:BTCUSDT"], &[Channel::Trades]).await?;
//! while let Some(event) = client.next().await {
//!     if let Event::Frames(batch) = event? {
//!         for frame in batch.iter() {
//!             if let ArchivedBody::Trade(t) = &frame.body {
//!                 println!("{} @ {}", t.qty.to_native(), t.price.to_native());
//!             }
//!         }
//!     }
//! }
//! # Ok(()) }
//! ```

use std::collections::VecDeque;
use std::time::{SystemTime, UNIX_EPOCH};

use futures_util::{SinkExt, StreamExt};
use hdrhistogram::Histogram;
use serde_json::{Value, json};
use thiserror::Error;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Bytes;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::wire::{ArchivedBody, ArchivedFrame, Batch, Channel, Instruments, WireError};

/// Why the client failed.
#[derive(Debug, Error)]
pub enum ClientError {
    /// The WebSocket connection failed.
    #[error("connection: {0}")]
    Ws(#[from] tokio_tungstenite::tungstenite::Error),
    /// The server sent bytes that are not a valid batch.
    #[error("invalid batch from server: {0}")]
    Wire(#[from] WireError),
    /// The server refused a request.
    #[error("server refused request: {code}: {message}")]
    Refused {
        /// The error code (`unknown_symbol`...).
        code: String,
        /// The server's explanation.
        message: String,
    },
    /// The server sent text that is not a JSON reply.
    #[error("unexpected message from server: {0}")]
    Protocol(String),
    /// The connection closed before the reply arrived.
    #[error("connection closed")]
    Closed,
}

/// Something the server sent.
#[derive(Debug)]
pub enum Event {
    /// A batch of frames, validated once; read them with [`Batch::iter`] (zero-copy).
    Frames(Batch<Bytes>),
    /// A control reply that no pending request was waiting for.
    Reply(Value),
    /// The server closed the connection.
    Closed {
        /// Close code (4001 = slow consumer).
        code: u16,
        /// The server's reason.
        reason: String,
    },
}

/// Per-hop latency histograms, in ns. Recorded for every data frame received (trades,
/// quotes, book); a hop whose start time is unknown (0) is skipped.
#[derive(Debug, Clone)]
pub struct Latency {
    /// Venue event time -> feed socket read (wire + venue; needs synchronized clocks).
    pub exchange_to_recv: Histogram<u64>,
    /// Feed socket read -> engine publish (tickwire's pipeline).
    pub recv_to_publish: Histogram<u64>,
    /// Engine publish -> this client's socket read (fan-out).
    pub publish_to_client: Histogram<u64>,
    /// Venue event time (or feed read when the venue sends no time) -> this client.
    pub end_to_end: Histogram<u64>,
    /// Frames whose clocks ran backwards on some hop (skew between hosts).
    pub negative: u64,
}

impl Default for Latency {
    fn default() -> Self {
        // 1 ns to 1 hour at 3 significant digits: constant, valid bounds.
        let h =
            || Histogram::new_with_bounds(1, 3_600_000_000_000, 3).expect("valid histogram bounds");
        Latency {
            exchange_to_recv: h(),
            recv_to_publish: h(),
            publish_to_client: h(),
            end_to_end: h(),
            negative: 0,
        }
    }
}

impl Latency {
    /// Records the hops of `frame`, received at `now` (ns since the epoch).
    pub fn record(&mut self, frame: &ArchivedFrame, now: u64) {
        if !matches!(
            frame.body,
            ArchivedBody::Trade(_)
                | ArchivedBody::Quote(_)
                | ArchivedBody::BookDelta(_)
                | ArchivedBody::BookSnapshot(_)
        ) {
            return;
        }
        let ex = frame.ts_exchange.to_native();
        let recv = frame.ts_recv.to_native();
        let publish = frame.ts_publish.to_native();
        let mut hop = |h: &mut Histogram<u64>, from: u64, to: u64| {
            if from == 0 || to == 0 {
                return;
            }
            match to.checked_sub(from) {
                Some(d) => h.saturating_record(d.max(1)),
                None => self.negative += 1,
            }
        };
        hop(&mut self.exchange_to_recv, ex, recv);
        hop(&mut self.recv_to_publish, recv, publish);
        hop(&mut self.publish_to_client, publish, now);
        hop(&mut self.end_to_end, if ex != 0 { ex } else { recv }, now);
    }

    /// Clears every histogram.
    pub fn reset(&mut self) {
        self.exchange_to_recv.reset();
        self.recv_to_publish.reset();
        self.publish_to_client.reset();
        self.end_to_end.reset();
        self.negative = 0;
    }
}

/// Now, ns since the Unix epoch.
pub fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

/// A connection to a tickwire server, in binary mode.
pub struct Client {
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    next_id: u64,
    pending: VecDeque<Event>,
    instruments: Instruments,
    latency: Latency,
}

impl Client {
    /// Connects to `url` (`ws://HOST:PORT/ws`).
    pub async fn connect(url: &str) -> Result<Client, ClientError> {
        let (ws, _) = tokio_tungstenite::connect_async(url).await?;
        Ok(Client {
            ws,
            next_id: 1,
            pending: VecDeque::new(),
            instruments: Instruments::new(),
            latency: Latency::default(),
        })
    }

    /// Subscribes to `channels` of `symbols` (`venue:SYMBOL`); returns the server's ack.
    pub async fn subscribe(
        &mut self,
        symbols: &[&str],
        channels: &[Channel],
    ) -> Result<Value, ClientError> {
        let chans: Vec<&str> = channels.iter().map(|c| c.name()).collect();
        self.request(
            json!({"op": "subscribe", "symbols": symbols, "channels": chans, "encoding": "binary"}),
        )
        .await
    }

    /// Unsubscribes; returns the server's ack.
    pub async fn unsubscribe(
        &mut self,
        symbols: &[&str],
        channels: &[Channel],
    ) -> Result<Value, ClientError> {
        let chans: Vec<&str> = channels.iter().map(|c| c.name()).collect();
        self.request(json!({"op": "unsubscribe", "symbols": symbols, "channels": chans}))
            .await
    }

    /// The `venue:SYMBOL`s the server serves.
    pub async fn list(&mut self) -> Result<Vec<String>, ClientError> {
        let reply = self.request(json!({"op": "list"})).await?;
        Ok(reply["symbols"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|s| s.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default())
    }

    /// Sends a request with a fresh id and waits for its reply; events received meanwhile are
    /// kept for [`Self::next`].
    async fn request(&mut self, mut req: Value) -> Result<Value, ClientError> {
        let id = self.next_id;
        self.next_id += 1;
        req["id"] = json!(id);
        self.ws.send(Message::text(req.to_string())).await?;
        loop {
            let Some(event) = self.read_event().await else {
                return Err(ClientError::Closed);
            };
            match event? {
                Event::Reply(v) if v["id"] == json!(id) => {
                    if v["type"] == "error" {
                        return Err(ClientError::Refused {
                            code: v["code"].as_str().unwrap_or("").to_string(),
                            message: v["message"].as_str().unwrap_or("").to_string(),
                        });
                    }
                    return Ok(v);
                }
                Event::Closed { .. } => return Err(ClientError::Closed),
                other => self.pending.push_back(other),
            }
        }
    }

    /// The next event; `None` once the connection is gone.
    pub async fn next(&mut self) -> Option<Result<Event, ClientError>> {
        if let Some(e) = self.pending.pop_front() {
            return Some(Ok(e));
        }
        self.read_event().await
    }

    async fn read_event(&mut self) -> Option<Result<Event, ClientError>> {
        loop {
            let msg = match self.ws.next().await? {
                Ok(m) => m,
                Err(e) => return Some(Err(e.into())),
            };
            match msg {
                Message::Binary(bytes) => {
                    let now = now_ns();
                    let batch = match Batch::new(bytes) {
                        Ok(b) => b,
                        Err(e) => return Some(Err(e.into())),
                    };
                    for f in batch.iter() {
                        self.instruments.observe(f);
                        self.latency.record(f, now);
                    }
                    return Some(Ok(Event::Frames(batch)));
                }
                Message::Text(t) => {
                    return Some(
                        serde_json::from_str::<Value>(t.as_str())
                            .map(Event::Reply)
                            .map_err(|_| {
                                ClientError::Protocol(t.as_str().chars().take(200).collect())
                            }),
                    );
                }
                Message::Close(frame) => {
                    let (code, reason) = frame
                        .map(|f| (u16::from(f.code), f.reason.to_string()))
                        .unwrap_or((1005, String::new()));
                    return Some(Ok(Event::Closed { code, reason }));
                }
                Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => continue,
            }
        }
    }

    /// What the instrument ids seen so far stand for.
    pub fn instruments(&self) -> &Instruments {
        &self.instruments
    }

    /// Per-hop latency of the frames received so far.
    pub fn latency(&self) -> &Latency {
        &self.latency
    }

    /// Per-hop latency, to read and reset between reporting intervals.
    pub fn latency_mut(&mut self) -> &mut Latency {
        &mut self.latency
    }

    /// Closes the connection politely.
    pub async fn close(mut self) -> Result<(), ClientError> {
        self.ws.close(None).await?;
        Ok(())
    }
}
