//! `tickwire`: the command-line entry point.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
use tickwire_engine::cli;
use tickwire_engine::server::{self, ServerConfig};
use tickwire_feed::binance::BinanceSpot;
use tickwire_feed::sim::{self, SimConfig, SimSource};
use tickwire_feed::venue::VenueSpec;
use tickwire_sdk::wire::Venue;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// tickwire: a market-data feed handler. Exchange ticks in, normalized frames out to
/// WebSocket clients, with per-hop latency.
#[derive(Parser)]
#[command(name = "tickwire", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Measure latency end to end and per hop: simulator (open-loop schedule) -> server ->
    /// N clients on loopback, tickwire beside a naive tokio-tungstenite server. Writes a
    /// report (JSON, .hgrm, SVG) to --out.
    Bench(tickwire_engine::bench::BenchArgs),
    /// Play a recording (from `serve --record` or `import`): serve it over the same WebSocket
    /// API as live data (--listen), or write its frames to a file (--out), filtered by time
    /// and symbol, at the recorded pace or faster.
    Replay {
        /// The recording directory.
        dir: PathBuf,
        /// Serve the replay to WebSocket clients at ws://ADDR/ws.
        #[arg(long, conflicts_with = "out", required_unless_present = "out")]
        listen: Option<SocketAddr>,
        /// Write the frames to this file instead (`-` for stdout).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Output format with --out.
        #[arg(long, value_enum, default_value_t = cli::replay::OutFormat::Jsonl)]
        format: cli::replay::OutFormat,
        /// Pace: `max`, or a factor of the recorded pace (1, 10, 0.5). Default: max.
        #[arg(long, default_value = "max")]
        speed: tickwire_engine::replay::Speed,
        /// Only frames recorded at or after this time (ns since the Unix epoch).
        #[arg(long)]
        from: Option<u64>,
        /// Only frames recorded before this time (ns since the Unix epoch).
        #[arg(long)]
        to: Option<u64>,
        /// Only these instruments, e.g. binance:BTCUSDT,binance:ETHUSDT.
        #[arg(long, value_delimiter = ',')]
        symbols: Vec<String>,
        /// With --listen: start once this many clients have subscribed (0: at once).
        #[arg(long, default_value_t = 1)]
        wait_clients: u64,
        /// With --listen: exit when the replay ends (clients get everything, then a close).
        #[arg(long)]
        exit_at_end: bool,
        /// With --listen: clients must present this token.
        #[arg(long, env = "TICKWIRE_TOKEN")]
        token: Option<String>,
    },
    /// Run the built-in exchange simulator, the server and a console client together:
    /// live normalized data and latency within seconds, offline.
    Demo {
        /// Stop after this many seconds (runs until Ctrl-C otherwise).
        #[arg(long)]
        duration: Option<f64>,
        /// Replay speed of the simulator (1 = real time).
        #[arg(long, default_value_t = 1.0)]
        speed: f64,
    },
    /// Run the server. With no --venue, the built-in simulator is its venue (offline).
    Serve {
        /// Address of the client WebSocket server (clients connect to ws://ADDR/ws).
        #[arg(long, default_value = "127.0.0.1:9100")]
        listen: SocketAddr,
        /// Venue to ingest (binance). Omit to use the built-in simulator.
        #[arg(long)]
        venue: Option<Venue>,
        /// Comma-separated venue symbols, e.g. btcusdt,ethusdt (required with --venue).
        #[arg(long, value_delimiter = ',')]
        symbols: Vec<String>,
        /// Override the venue's WebSocket base URL (e.g. a `tickwire sim` at ws://127.0.0.1:9200).
        #[arg(long)]
        ws_url: Option<String>,
        /// Override the venue's REST base URL (e.g. http://127.0.0.1:9200).
        #[arg(long)]
        rest_url: Option<String>,
        /// Replay speed of the built-in simulator (1 = real time).
        #[arg(long, default_value_t = 1.0)]
        sim_speed: f64,
        /// Record every published frame to this directory (a new recording, or the one there
        /// continued after cutting any torn tail); replay reads it back byte for byte.
        #[arg(long)]
        record: Option<PathBuf>,
        /// With --record: also record every raw venue message (and REST snapshot), so the
        /// recording can be normalized again after a parser fix (`tickwire import --format
        /// recording`).
        #[arg(long, requires = "record")]
        record_raw: bool,
        /// Require this token from clients (`Authorization: Bearer <token>` or `?token=`).
        #[arg(long, env = "TICKWIRE_TOKEN", hide_env_values = true)]
        token: Option<String>,
        /// Serve wss:// with this PEM certificate chain (needs --tls-key).
        #[arg(long, requires = "tls_key")]
        tls_cert: Option<PathBuf>,
        /// The PEM private key of --tls-cert.
        #[arg(long, requires = "tls_cert")]
        tls_key: Option<PathBuf>,
        /// What this process does: `all` (feeds and clients, no NATS), `ingest` (feeds,
        /// frames to NATS), `gateway` (clients, frames from NATS).
        #[arg(long, value_enum, default_value_t = tickwire_engine::cluster::Role::All)]
        role: tickwire_engine::cluster::Role,
        /// NATS server URL(s) of the cluster, comma-separated (with --role ingest|gateway).
        #[arg(long, env = "TICKWIRE_NATS")]
        nats: Option<String>,
        /// This node's name, unique in the cluster (default: role-host-pid).
        #[arg(long)]
        node: Option<String>,
    },
    /// Record only: feeds and sequencer into a recording, no client listener. Stops on
    /// Ctrl-C, SIGTERM or after --duration, with the recording closed.
    Record {
        /// Venue to ingest. Omit to record the built-in simulator (offline).
        #[arg(long)]
        venue: Option<Venue>,
        /// Comma-separated venue symbols, e.g. btcusdt,ethusdt (required with --venue).
        #[arg(long, value_delimiter = ',')]
        symbols: Vec<String>,
        /// The recording directory (a new recording, or the one there continued).
        #[arg(long)]
        out: PathBuf,
        /// Also record every raw venue message, so the recording can be normalized again.
        #[arg(long)]
        record_raw: bool,
        /// Stop after this many seconds (runs until Ctrl-C or SIGTERM otherwise).
        #[arg(long)]
        duration: Option<f64>,
        /// Override the venue's WebSocket base URL (e.g. a `tickwire sim` at ws://127.0.0.1:9200).
        #[arg(long)]
        ws_url: Option<String>,
        /// Override the venue's REST base URL (e.g. http://127.0.0.1:9200).
        #[arg(long)]
        rest_url: Option<String>,
    },
    /// Turn captures (hftbacktest, cryptofeed) or a recording's raw records into a recording,
    /// through the venue normalizers, as the live feed would have recorded them.
    Import {
        /// The venue whose messages the captures hold (with --format recording: only this
        /// venue's raw records; default all).
        #[arg(long)]
        venue: Option<Venue>,
        /// The input format.
        #[arg(long, value_enum)]
        format: cli::import::ImportFormat,
        /// Capture files (plain or gzip; several are merged by receive time), or with
        /// --format recording one recording directory.
        #[arg(required = true)]
        inputs: Vec<PathBuf>,
        /// The new recording's directory.
        #[arg(long)]
        out: PathBuf,
        /// Also keep the input messages as raw records (the new recording can be normalized
        /// again).
        #[arg(long)]
        keep_raw: bool,
        /// Only the first this many seconds of the input (by receive time).
        #[arg(long)]
        first: Option<f64>,
        /// Exit with an error if any message could not be normalized.
        #[arg(long)]
        strict: bool,
    },
    /// Run only the exchange simulator, speaking one venue's WebSocket dialect (offline).
    Sim {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:9200")]
        listen: SocketAddr,
        /// Whose dialect to speak (as each venue documents it): binance, binance-futures,
        /// coinbase, coinbase-advanced, kraken, okx, bybit, bybit-linear.
        #[arg(long, default_value = "binance")]
        venue: Venue,
        /// Binance capture files to replay (plain or gzip); default: the embedded BTCUSDT capture.
        #[arg(long = "capture")]
        captures: Vec<PathBuf>,
        /// Comma-separated symbols to generate as a synthetic random walk.
        #[arg(long, value_delimiter = ',')]
        synthetic: Vec<String>,
        /// Synthetic events per second, all symbols together.
        #[arg(long, default_value_t = 100.0)]
        rate: f64,
        /// Seed of the synthetic random walk.
        #[arg(long, default_value_t = 42)]
        seed: u64,
        /// Replay speed: a factor (1 = real time) or `max`.
        #[arg(long, default_value = "1")]
        speed: String,
        /// Stop at the end of the capture instead of starting over.
        #[arg(long)]
        no_loop: bool,
        /// Start paused; POST /sim/start begins the replay.
        #[arg(long)]
        paused: bool,
    },
    /// Turn captured raw venue frames into the JSON lines clients receive (stdout).
    Normalize {
        /// The venue whose messages the files hold.
        #[arg(long)]
        venue: Venue,
        /// Exit with an error if any message could not be normalized.
        #[arg(long)]
        strict: bool,
        /// Capture files: gzip or plain; lines `<ns> <frame>`, bare frames, or cryptofeed's
        /// format. Several files are merged by receive time.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// A console client: a live table per symbol and per-hop latency percentiles.
    Watch {
        /// Server URL.
        #[arg(long, default_value = "ws://127.0.0.1:9100/ws")]
        url: String,
        /// Comma-separated venue:SYMBOL list; default: everything the server serves.
        #[arg(long, value_delimiter = ',')]
        symbols: Vec<String>,
        /// Stop after this many seconds.
        #[arg(long)]
        duration: Option<f64>,
    },
}

fn init_logs(default: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    match cli.command {
        Command::Normalize {
            venue,
            strict,
            files,
        } => {
            init_logs("warn");
            let args = cli::normalize::NormalizeArgs {
                venue,
                files,
                strict,
            };
            cli::normalize::run(&args, &mut std::io::stdout().lock())
        }
        Command::Watch {
            url,
            symbols,
            duration,
        } => {
            init_logs("warn");
            runtime.block_on(cli::watch::run(cli::watch::WatchArgs {
                url,
                symbols,
                duration: duration.map(Duration::from_secs_f64),
                refresh: Duration::from_millis(500),
            }))
        }
        Command::Sim {
            listen,
            venue,
            captures,
            synthetic,
            rate,
            seed,
            speed,
            no_loop,
            paused,
        } => {
            init_logs("info");
            let speed = parse_speed(&speed)?;
            let mut config = SimConfig::demo();
            config.listen = listen;
            config.speed = speed;
            config.looping = !no_loop;
            config.paused = paused;
            config.venue = venue;
            if !captures.is_empty() || !synthetic.is_empty() {
                config.sources.clear();
                if !captures.is_empty() {
                    config.sources.push(SimSource::CaptureFiles(captures));
                }
                if !synthetic.is_empty() {
                    config.sources.push(SimSource::Synthetic {
                        symbols: synthetic.iter().map(|s| s.to_ascii_uppercase()).collect(),
                        rate,
                        seed,
                    });
                }
            }
            runtime.block_on(async {
                let handle = sim::start(config).await?;
                let depth = match venue {
                    Venue::BinanceFutures => "/fapi/v1/depth",
                    _ => "/api/v3/depth",
                };
                println!(
                    "simulator listening: WebSocket {}, REST {}{depth} (speaking {venue})",
                    handle.venue_ws_url(),
                    handle.rest_url()
                );
                println!(
                    "  connect tickwire to it: tickwire serve --venue {venue} --symbols {} --ws-url {} --rest-url {}",
                    handle.venue_symbols().join(","),
                    handle.ws_url(),
                    handle.rest_url()
                );
                tokio::signal::ctrl_c().await?;
                handle.shutdown().await;
                Ok(())
            })
        }
        Command::Serve {
            listen,
            venue,
            symbols,
            ws_url,
            rest_url,
            sim_speed,
            record,
            record_raw,
            token,
            tls_cert,
            tls_key,
            role,
            nats,
            node,
        } => {
            use tickwire_engine::cluster::{ClusterConfig, Role};
            init_logs("info");
            runtime.block_on(async {
                let cluster = match (role, nats) {
                    (Role::All, None) => None,
                    (Role::All, Some(_)) => anyhow::bail!(
                        "--nats needs --role ingest or --role gateway (the default role runs everything in one process)"
                    ),
                    (_, None) => anyhow::bail!(
                        "--role {} needs --nats URL (the cluster's NATS servers, comma-separated)",
                        if role == Role::Ingest { "ingest" } else { "gateway" }
                    ),
                    (role, Some(nats)) => Some(ClusterConfig {
                        role,
                        nats,
                        node: node.unwrap_or_else(|| {
                            format!(
                                "{}-{}",
                                if role == Role::Ingest { "ingest" } else { "gateway" },
                                std::process::id()
                            )
                        }),
                    }),
                };
                let (feeds, sim) = if role == Role::Gateway {
                    anyhow::ensure!(
                        venue.is_none() && symbols.is_empty(),
                        "a gateway runs no feeds: drop --venue/--symbols (the ingest nodes run them)"
                    );
                    (Vec::new(), None)
                } else {
                    feeds(venue, symbols, ws_url, rest_url, sim_speed).await?
                };
                let mut config = ServerConfig::new(listen, feeds);
                config.cluster = cluster;
                config.gateway.token = token;
                config.record = record.map(|dir| tickwire_engine::recorder::RecorderConfig {
                    dir,
                    options: tickwire_sdk::recording::WriterOptions {
                        keep_raw: record_raw,
                        ..Default::default()
                    },
                });
                if let (Some(cert), Some(key)) = (tls_cert, tls_key) {
                    config.gateway.tls =
                        Some(tickwire_engine::gateway::tls::TlsFiles { cert, key });
                }
                let server = server::start(config).await?;
                if role == Role::Ingest {
                    println!("tickwire ingest node publishing to NATS");
                } else {
                    println!(
                        "tickwire serving on {}  (try: tickwire watch --url {})",
                        server.ws_url(),
                        server.ws_url()
                    );
                }
                let why = cli::record::stop_signal().await?;
                tracing::info!("{why}: shutting down");
                server.shutdown().await;
                if let Some(sim) = sim {
                    sim.shutdown().await;
                }
                Ok(())
            })
        }
        Command::Record {
            venue,
            symbols,
            out,
            record_raw,
            duration,
            ws_url,
            rest_url,
        } => {
            init_logs("info");
            if let Some(d) = duration {
                anyhow::ensure!(
                    d > 0.0 && d.is_finite(),
                    "--duration must be a positive number of seconds"
                );
            }
            runtime.block_on(async {
                let (feeds, sim) = feeds(venue, symbols, ws_url, rest_url, 1.0).await?;
                let args = cli::record::RecordArgs {
                    out,
                    record_raw,
                    duration: duration.map(Duration::from_secs_f64),
                };
                let result = cli::record::run(feeds, args).await;
                if let Some(sim) = sim {
                    sim.shutdown().await;
                }
                result
            })
        }
        Command::Import {
            venue,
            format,
            inputs,
            out,
            keep_raw,
            first,
            strict,
        } => {
            init_logs("warn");
            drop(runtime);
            if let Some(f) = first {
                anyhow::ensure!(
                    f > 0.0 && f.is_finite(),
                    "--first must be a positive number of seconds"
                );
            }
            let mut args = cli::import::ImportArgs::new(venue, format, inputs, out);
            args.keep_raw = keep_raw;
            args.first = first.map(Duration::from_secs_f64);
            args.strict = strict;
            args.progress = true;
            let summary = cli::import::run(&args)?;
            eprint!("{}", summary.render(&args.out));
            Ok(())
        }
        Command::Replay {
            dir,
            listen,
            out,
            format,
            speed,
            from,
            to,
            symbols,
            wait_clients,
            exit_at_end,
            token,
        } => match (listen, out) {
            (Some(listen), _) => {
                init_logs("info");
                runtime.block_on(async {
                    let mut config = tickwire_engine::replay::ReplayConfig::new(dir, listen);
                    config.speed = speed;
                    config.from = from;
                    config.to = to;
                    config.symbols = symbols;
                    config.wait_clients = wait_clients;
                    config.gateway.token = token;
                    let mut replay = tickwire_engine::replay::start(config).await?;
                    println!(
                        "tickwire replaying on {}{}  (try: tickwire watch --url {})",
                        replay.ws_url(),
                        if wait_clients > 0 {
                            format!("; starts when {wait_clients} client(s) have subscribed")
                        } else {
                            String::new()
                        },
                        replay.ws_url()
                    );
                    if exit_at_end {
                        tokio::select! {
                            r = replay.finished() => r?,
                            r = cli::record::stop_signal() => { r?; }
                        }
                    } else {
                        cli::record::stop_signal().await?;
                    }
                    replay.shutdown().await;
                    Ok(())
                })
            }
            (None, Some(out)) => {
                drop(runtime);
                cli::replay::run(&cli::replay::ReplayArgs {
                    dir,
                    out,
                    format,
                    speed,
                    from,
                    to,
                    symbols,
                })
                .map(|_| ())
            }
            (None, None) => anyhow::bail!("replay: pass --listen ADDR or --out FILE"),
        },
        Command::Bench(args) => {
            init_logs("warn");
            drop(runtime);
            tickwire_engine::bench::main(args).map(|_| ())
        }
        Command::Demo { duration, speed } => {
            init_logs("warn");
            runtime.block_on(async {
                let (feeds, sim) = feeds(None, Vec::new(), None, None, speed).await?;
                let server =
                    server::start(ServerConfig::new("127.0.0.1:0".parse()?, feeds)).await?;
                let result = cli::watch::run(cli::watch::WatchArgs {
                    url: server.ws_url(),
                    symbols: Vec::new(),
                    duration: duration.map(Duration::from_secs_f64),
                    refresh: Duration::from_millis(500),
                })
                .await;
                server.shutdown().await;
                if let Some(sim) = sim {
                    sim.shutdown().await;
                }
                result
            })
        }
    }
}

fn parse_speed(s: &str) -> anyhow::Result<f64> {
    if s.eq_ignore_ascii_case("max") {
        return Ok(f64::INFINITY);
    }
    let v: f64 = s
        .parse()
        .with_context(|| format!("--speed {s:?}: give a positive factor (1, 10, 0.5) or `max`"))?;
    anyhow::ensure!(v > 0.0, "--speed must be positive (or `max`)");
    Ok(v)
}

/// The feeds to run: the real venue if one is named, else the built-in simulator.
async fn feeds(
    venue: Option<Venue>,
    symbols: Vec<String>,
    ws_url: Option<String>,
    rest_url: Option<String>,
    sim_speed: f64,
) -> anyhow::Result<(Vec<Arc<dyn VenueSpec>>, Option<sim::SimHandle>)> {
    match venue {
        None => {
            let mut config = SimConfig::demo();
            config.speed = sim_speed;
            let symbols = config.symbols();
            let handle = sim::start(config)
                .await
                .context("starting the built-in simulator")?;
            let spec = BinanceSpot::new(symbols).at(&handle.ws_url(), &handle.rest_url());
            Ok((vec![Arc::new(spec)], Some(handle)))
        }
        Some(venue) => {
            let endpoints = tickwire_feed::venues::Endpoints {
                ws: ws_url,
                rest: rest_url,
            };
            Ok((
                vec![tickwire_feed::venues::spec(venue, symbols, &endpoints)?],
                None,
            ))
        }
    }
}
