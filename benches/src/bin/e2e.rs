//! The end-to-end latency harness; the same as `tickwire bench` (see
//! `tickwire_engine::bench` and BENCHMARKS.md, "End-to-end latency").
//!
//! ```text
//! cargo run --release -p benches --bin e2e -- --rate 10000 --clients 100
//! cargo run --release -p benches --bin e2e -- --quick
//! ```

use clap::Parser;
use tickwire_engine::bench::{self, BenchArgs};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// End-to-end latency harness: simulator -> server -> clients, tickwire beside a naive peer.
#[derive(Parser)]
#[command(name = "e2e")]
struct Cli {
    #[command(flatten)]
    args: BenchArgs,
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    bench::main(Cli::parse().args)?;
    Ok(())
}
