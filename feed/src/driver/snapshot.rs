//! REST book snapshots fetched in the background for the driver, one request in flight per
//! symbol, retried with backoff while the connection lasts.

use std::collections::HashMap;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::Backoff;
use crate::clock::now_ns;

/// A finished snapshot request.
pub(crate) struct SnapshotReply {
    /// The connection generation it was requested for.
    pub generation: u64,
    /// The symbol.
    pub symbol: String,
    /// When the body arrived, ns.
    pub ts_recv: u64,
    /// The body, or why it could not be had.
    pub body: Result<Vec<u8>, String>,
}

pub(crate) struct SnapshotFetcher {
    client: reqwest::Client,
    in_flight: HashMap<String, JoinHandle<()>>,
    backoff: HashMap<String, Backoff>,
}

impl SnapshotFetcher {
    pub fn new(timeout: Duration) -> SnapshotFetcher {
        crate::tls::install_crypto_provider();
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .build()
            .unwrap_or_else(|_| reqwest::Client::new());
        SnapshotFetcher {
            client,
            in_flight: HashMap::new(),
            backoff: HashMap::new(),
        }
    }

    /// Requests a snapshot unless one is already on its way for `symbol`.
    pub fn fetch(
        &mut self,
        symbol: String,
        url: String,
        generation: u64,
        tx: mpsc::UnboundedSender<SnapshotReply>,
    ) {
        self.backoff.remove(&symbol);
        self.start(symbol, url, generation, tx, Duration::ZERO);
    }

    /// Requests again after a failure, after a backoff delay.
    pub fn retry(
        &mut self,
        symbol: String,
        url: String,
        generation: u64,
        tx: mpsc::UnboundedSender<SnapshotReply>,
    ) {
        self.in_flight.remove(&symbol);
        let delay = self
            .backoff
            .entry(symbol.clone())
            .or_insert_with(|| Backoff::new(Duration::from_millis(500), Duration::from_secs(30)))
            .next_delay(rand::random::<f64>());
        self.start(symbol, url, generation, tx, delay);
    }

    fn start(
        &mut self,
        symbol: String,
        url: String,
        generation: u64,
        tx: mpsc::UnboundedSender<SnapshotReply>,
        delay: Duration,
    ) {
        if self
            .in_flight
            .get(&symbol)
            .is_some_and(|h| !h.is_finished())
        {
            return;
        }
        let client = self.client.clone();
        let key = symbol.clone();
        let handle = tokio::spawn(async move {
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            let body = get(&client, &url).await;
            let _ = tx.send(SnapshotReply {
                generation,
                symbol,
                ts_recv: now_ns(),
                body,
            });
        });
        self.in_flight.insert(key, handle);
    }

    /// Abandons every request (the connection is gone).
    pub fn cancel_all(&mut self) {
        for (_, h) in self.in_flight.drain() {
            h.abort();
        }
        self.backoff.clear();
    }
}

async fn get(client: &reqwest::Client, url: &str) -> Result<Vec<u8>, String> {
    let resp = client
        .get(url)
        .send()
        .await
        .map_err(|e| format!("GET {url}: {e}"))?;
    let status = resp.status();
    let body = resp
        .bytes()
        .await
        .map_err(|e| format!("GET {url}: reading body: {e}"))?;
    if !status.is_success() {
        let text = String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned();
        return Err(format!("GET {url}: HTTP {status}: {text}"));
    }
    Ok(body.to_vec())
}
