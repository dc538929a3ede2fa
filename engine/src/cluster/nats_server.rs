//! `nats-server` child processes on loopback ports: one server, or a cluster of several joined
//! by routes. For tests, benchmarks and trying the distributed mode on one host; production
//! runs its own NATS.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

/// The `nats-server` binary on PATH (or in /usr/sbin, where the Debian package puts it).
pub fn find_server() -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/usr/local/bin")])
        .map(|d| d.join("nats-server"))
        .find(|p| p.is_file())
}

fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// A `nats-server` process, killed on drop.
pub struct NatsServer {
    child: Option<Child>,
    bin: PathBuf,
    args: Vec<String>,
    addr: SocketAddr,
}

impl NatsServer {
    /// Starts a lone server on an ephemeral loopback port; waits until it listens.
    pub fn start(bin: &Path) -> anyhow::Result<NatsServer> {
        let port = free_port()?;
        NatsServer::spawn(
            bin,
            vec![
                "-a".into(),
                "127.0.0.1".into(),
                "-p".into(),
                port.to_string(),
            ],
            port,
        )
    }

    fn spawn(bin: &Path, args: Vec<String>, port: u16) -> anyhow::Result<NatsServer> {
        let mut server = NatsServer {
            child: None,
            bin: bin.to_path_buf(),
            args,
            addr: ([127, 0, 0, 1], port).into(),
        };
        server.restart()?;
        Ok(server)
    }

    /// Starts the process again (after [`Self::kill`]), on the same ports.
    pub fn restart(&mut self) -> anyhow::Result<()> {
        self.kill();
        let child = Command::new(&self.bin)
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("starting {}", self.bin.display()))?;
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(self.addr).is_err() {
            if let Some(c) = self.child.as_mut()
                && let Some(status) = c.try_wait()?
            {
                bail!(
                    "nats-server exited at start ({status}); is port {} free?",
                    self.addr.port()
                );
            }
            if Instant::now() > deadline {
                bail!("nats-server did not listen on {} within 10 s", self.addr);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    }

    /// Kills the process (SIGKILL), as a crash would.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// `nats://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("nats://{}", self.addr)
    }

    /// The client port's address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Several `nats-server`s joined into one cluster by routes on loopback.
pub struct NatsCluster {
    /// The nodes, in start order.
    pub nodes: Vec<NatsServer>,
}

impl NatsCluster {
    /// Starts `n` nodes routed to each other; returns once every node listens and the routes
    /// had a moment to form.
    pub fn start(bin: &Path, n: usize) -> anyhow::Result<NatsCluster> {
        anyhow::ensure!(n >= 1, "a cluster needs at least one node");
        let ports: Vec<(u16, u16)> = (0..n)
            .map(|_| Ok((free_port()?, free_port()?)))
            .collect::<anyhow::Result<_>>()?;
        let routes: Vec<String> = ports
            .iter()
            .map(|(_, r)| format!("nats-route://127.0.0.1:{r}"))
            .collect();
        let mut nodes = Vec::new();
        for (i, (client, route)) in ports.iter().enumerate() {
            let args = vec![
                "-a".into(),
                "127.0.0.1".into(),
                "-p".into(),
                client.to_string(),
                "-n".into(),
                format!("tickwire-nats-{i}"),
                "--cluster_name".into(),
                "tickwire".into(),
                "--cluster".into(),
                format!("nats://127.0.0.1:{route}"),
                "--routes".into(),
                routes.join(","),
            ];
            nodes.push(NatsServer::spawn(bin, args, *client)?);
        }
        let cluster = NatsCluster { nodes };
        cluster.wait_routes(Duration::from_secs(10))?;
        Ok(cluster)
    }

    /// Every node's URL, comma-separated (what `--nats` takes).
    pub fn urls(&self) -> String {
        self.nodes
            .iter()
            .map(NatsServer::url)
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Waits until a message published on each node reaches a subscriber on every other
    /// node: the routes are up.
    fn wait_routes(&self, limit: Duration) -> anyhow::Result<()> {
        if self.nodes.len() < 2 {
            return Ok(());
        }
        let urls: Vec<String> = self.nodes.iter().map(NatsServer::url).collect();
        // Its own thread and runtime: callers may be inside one already.
        std::thread::scope(|scope| {
            scope
                .spawn(|| {
                    tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()?
                        .block_on(probe(urls, limit))
                })
                .join()
                .unwrap_or_else(|_| bail!("the route probe panicked"))
        })
    }
}

/// Publishes on each node until a subscriber on every other node hears it.
async fn probe(urls: Vec<String>, limit: Duration) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + limit;
    let mut clients = Vec::new();
    for u in &urls {
        clients.push(async_nats::connect(u.as_str()).await?);
    }
    'probe: loop {
        if tokio::time::Instant::now() > deadline {
            bail!("the NATS cluster's routes did not form within {limit:?}");
        }
        for (i, sub_client) in clients.iter().enumerate() {
            use futures_util::StreamExt;
            let subject = format!("tickwire.probe.{i}");
            let mut sub = sub_client.subscribe(subject.clone()).await?;
            sub_client.flush().await?;
            for (j, pubc) in clients.iter().enumerate() {
                if i == j {
                    continue;
                }
                pubc.publish(subject.clone(), "x".into()).await?;
                pubc.flush().await?;
                match tokio::time::timeout(Duration::from_millis(200), sub.next()).await {
                    Ok(Some(_)) => {}
                    _ => {
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue 'probe;
                    }
                }
            }
        }
        return Ok(());
    }
}
