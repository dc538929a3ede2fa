//! `tickwire record`: feeds and sequencer into a recording, with no client listener (the
//! server's own start-up with [`ServerConfig::serve_clients`] off). It stops on Ctrl-C,
//! SIGTERM or at the end of `--duration`, and shuts down as the server does: the feeds
//! disconnect (their last statuses recorded), everything published is written, and the
//! recording is closed with its index.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tickwire_feed::venue::VenueSpec;
use tickwire_sdk::recording::WriterOptions;

use crate::recorder::RecorderConfig;
use crate::server::{self, ServerConfig};

/// Options of `tickwire record`.
#[derive(Debug, Clone)]
pub struct RecordArgs {
    /// The recording directory (a new recording, or the one there continued).
    pub out: PathBuf,
    /// Also record the raw venue messages.
    pub record_raw: bool,
    /// Stop after this long (else on Ctrl-C or SIGTERM only).
    pub duration: Option<Duration>,
}

/// Records `feeds` until a signal or the duration; prints a line when recording starts and
/// a summary at the end (stdout).
pub async fn run(feeds: Vec<Arc<dyn VenueSpec>>, args: RecordArgs) -> anyhow::Result<()> {
    // The address is never bound: no gateway runs.
    let mut config = ServerConfig::new(([127, 0, 0, 1], 0).into(), feeds);
    config.serve_clients = false;
    config.record = Some(RecorderConfig {
        dir: args.out.clone(),
        options: WriterOptions {
            keep_raw: args.record_raw,
            ..WriterOptions::default()
        },
    });
    let server = server::start(config).await?;
    println!(
        "recording to {}{} ({})",
        args.out.display(),
        if args.record_raw {
            " with raw venue messages"
        } else {
            ""
        },
        match args.duration {
            Some(d) => format!("for {d:?}, or until Ctrl-C"),
            None => "until Ctrl-C".to_string(),
        }
    );
    let why = tokio::select! {
        r = stop_signal() => r?,
        _ = sleep_or_forever(args.duration) => "the duration is over",
    };
    tracing::info!("stopping: {why}");
    let stats = server.recorder_stats();
    let raw_lost: u64 = server
        .feed_stats
        .iter()
        .map(|s| s.raw_lost.load(Ordering::Relaxed))
        .sum();
    server.shutdown().await;
    if let Some(stats) = stats {
        println!(
            "recorded {} frames, {} raw records ({} raw lost, {} frames lost, {} write errors) to {}",
            stats.frames.load(Ordering::Relaxed),
            stats.raw.load(Ordering::Relaxed),
            raw_lost,
            stats.lost.load(Ordering::Relaxed),
            stats.errors.load(Ordering::Relaxed),
            args.out.display()
        );
        if stats.errors.load(Ordering::Relaxed) > 0 {
            anyhow::bail!("the recording could not be written in full (see the log)");
        }
    }
    Ok(())
}

async fn sleep_or_forever(d: Option<Duration>) {
    match d {
        Some(d) => tokio::time::sleep(d).await,
        None => std::future::pending().await,
    }
}

/// Waits for Ctrl-C (SIGINT) or SIGTERM; says which.
pub async fn stop_signal() -> anyhow::Result<&'static str> {
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        tokio::select! {
            r = tokio::signal::ctrl_c() => r.map(|_| "Ctrl-C").map_err(Into::into),
            _ = term.recv() => Ok("SIGTERM"),
        }
    }
    #[cfg(not(unix))]
    {
        tokio::signal::ctrl_c().await?;
        Ok("Ctrl-C")
    }
}
