//! Prints the per-hop latency percentiles of the frames received, every second.
//!
//! ```sh
//! cargo run --release -p tickwire-sdk --example measure_latency -- --seconds 10 binance:BTCUSDT
//! ```

mod common;

use std::process::ExitCode;
use std::time::{Duration, Instant};

use common::{Args, report};
use hdrhistogram::Histogram;
use tickwire_sdk::client::Latency;
use tickwire_sdk::wire::Channel;

fn row(name: &str, h: &Histogram<u64>) -> String {
    if h.is_empty() {
        return format!(
            "  {name:<24} {:>9} {:>9} {:>9} {:>9} {:>9} {:>8}",
            "-", "-", "-", "-", "-", 0
        );
    }
    let us = |v: u64| format!("{:.1}", v as f64 / 1_000.0);
    format!(
        "  {name:<24} {:>9} {:>9} {:>9} {:>9} {:>9} {:>8}",
        us(h.value_at_quantile(0.5)),
        us(h.value_at_quantile(0.9)),
        us(h.value_at_quantile(0.99)),
        us(h.value_at_quantile(0.999)),
        us(h.max()),
        h.len()
    )
}

fn table(l: &Latency, period: Duration) -> String {
    let mut s = format!(
        "latency over the last {:.1?} (us)  {:>9} {:>9} {:>9} {:>9} {:>9} {:>8}\n",
        period, "p50", "p90", "p99", "p99.9", "max", "frames"
    );
    for (name, h) in [
        ("exchange -> feed recv", &l.exchange_to_recv),
        ("feed recv -> publish", &l.recv_to_publish),
        ("publish -> this client", &l.publish_to_client),
        ("end to end", &l.end_to_end),
    ] {
        s.push_str(&row(name, h));
        s.push('\n');
    }
    if l.negative > 0 {
        s.push_str(&format!(
            "  ({} frames with clocks running backwards on some hop)\n",
            l.negative
        ));
    }
    s
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse(
        "measure_latency",
        "Prints per-hop latency percentiles of the symbols' trades, quotes and book, every second.",
    );
    let mut client = match args.connect(&Channel::SUBSCRIBABLE).await {
        Ok(c) => c,
        Err(e) => {
            eprintln!("cannot subscribe at {}: {e}", args.url);
            return ExitCode::FAILURE;
        }
    };
    let mut every = tokio::time::interval(Duration::from_secs(1));
    every.tick().await;
    let mut since = Instant::now();
    let stop = args.stop();
    tokio::pin!(stop);
    loop {
        tokio::select! {
            _ = &mut stop => break,
            _ = every.tick() => {
                println!("{}", table(client.latency(), since.elapsed()));
                client.latency_mut().reset();
                since = Instant::now();
            }
            event = client.next() => match event {
                None => break,
                // The client records every frame's hops as it reads them.
                Some(Ok(event)) => {
                    if !report(&event, client.instruments()) {
                        break;
                    }
                }
                Some(Err(e)) => {
                    eprintln!("error: {e}");
                    if e.is_fatal() {
                        return ExitCode::FAILURE;
                    }
                }
            },
        }
    }
    println!("{}", table(client.latency(), since.elapsed()));
    let _ = client.close().await;
    ExitCode::SUCCESS
}
