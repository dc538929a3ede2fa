//! The NATS connection of a node: connects to any of the cluster's servers, reconnects by
//! itself (to any of them) after a loss, and reports each loss and recovery.

use std::time::Duration;

use anyhow::Context;
use tokio::sync::mpsc;
use tracing::{info, warn};

/// Connects to the first reachable of `urls` (comma-separated `nats://HOST:PORT`, tried in
/// that order; after a loss the next ones and those the cluster advertises are tried). The
/// receiver gets `false` when the connection is lost and `true` when it is back.
pub async fn connect(
    urls: &str,
    name: &str,
) -> anyhow::Result<(async_nats::Client, mpsc::UnboundedReceiver<bool>)> {
    let servers: Vec<String> = urls
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(String::from)
        .collect();
    anyhow::ensure!(
        !servers.is_empty(),
        "--nats: give the NATS server URL(s), e.g. nats://127.0.0.1:4222 (comma-separated for a cluster)"
    );
    let (tx, rx) = mpsc::unbounded_channel();
    let client = async_nats::ConnectOptions::new()
        .name(name)
        .max_reconnects(None)
        // In the order given: the first is this node's home server, the others its fallbacks.
        .retain_servers_order()
        .connection_timeout(Duration::from_secs(2))
        .reconnect_delay_callback(|attempts| {
            Duration::from_millis((attempts as u64 * 100).min(2_000))
        })
        .event_callback(move |event| {
            let tx = tx.clone();
            async move {
                match event {
                    async_nats::Event::Disconnected => {
                        warn!("NATS connection lost; reconnecting");
                        let _ = tx.send(false);
                    }
                    async_nats::Event::Connected => {
                        info!("NATS connection up");
                        let _ = tx.send(true);
                    }
                    async_nats::Event::SlowConsumer(sid) => {
                        warn!(sid, "NATS says this node is a slow consumer: messages were dropped");
                    }
                    other => info!("NATS: {other}"),
                }
            }
        })
        .connect(servers.as_slice())
        .await
        .with_context(|| {
            format!(
                "cannot connect to NATS at {urls}: is nats-server running there? (Debian: apt-get install nats-server)"
            )
        })?;
    Ok((client, rx))
}
