//! One strategy, written once against `FrameSource`, run on a recording (a backtest) or live.
//!
//! ```sh
//! # On a recording made here (a synthetic random walk), at full speed:
//! cargo run --release -p tickwire-sdk --example backtest
//! # On a recording of your own (`tickwire serve --record rec/`), at 10x recorded time:
//! cargo run --release -p tickwire-sdk --example backtest -- --dir rec/ --speed 10 binance:BTCUSDT
//! # The same strategy live, for 30 s:
//! cargo run --release -p tickwire-sdk --example backtest -- --url ws://127.0.0.1:9100/ws --seconds 30
//! ```
//!
//! The strategy: a moving-average crossover on trade prices (fast 20 trades, slow 200),
//! long or flat one unit, marked to the last trade.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use tickwire_sdk::client::{Client, ClientError, Event};
use tickwire_sdk::recording::{RecordingWriter, WriterOptions};
use tickwire_sdk::replay::{Replay, Speed};
use tickwire_sdk::source::FrameSource;
use tickwire_sdk::wire::{
    ArchivedBody, Body, Channel, Frame, InstrumentInfo, Quote, Side, Trade, TradeId, Venue,
};

/// The strategy's state and result. Prices in 1e-9 units.
#[derive(Debug, Default)]
struct Crossover {
    fast: Window,
    slow: Window,
    position: i64,
    cash: i128,
    last: i64,
    trades_seen: u64,
    orders: u64,
    gaps: u64,
    frames: u64,
}

/// A moving sum over the last `len` prices.
#[derive(Debug, Default)]
struct Window {
    len: usize,
    prices: VecDeque<i64>,
    sum: i128,
}

impl Window {
    fn new(len: usize) -> Window {
        Window {
            len,
            ..Window::default()
        }
    }

    fn push(&mut self, p: i64) -> Option<i128> {
        self.prices.push_back(p);
        self.sum += p as i128;
        if self.prices.len() > self.len {
            self.sum -= self.prices.pop_front().unwrap_or(0) as i128;
        }
        (self.prices.len() == self.len).then(|| self.sum / self.len as i128)
    }
}

impl Crossover {
    fn new() -> Crossover {
        Crossover {
            fast: Window::new(20),
            slow: Window::new(200),
            ..Crossover::default()
        }
    }

    fn on_trade(&mut self, price: i64) {
        self.trades_seen += 1;
        self.last = price;
        let (Some(fast), Some(slow)) = (self.fast.push(price), self.slow.push(price)) else {
            return;
        };
        let want = if fast > slow { 1 } else { 0 };
        if want != self.position {
            self.cash -= (want - self.position) as i128 * price as i128;
            self.position = want;
            self.orders += 1;
        }
    }

    fn pnl(&self) -> i128 {
        self.cash + self.position as i128 * self.last as i128
    }
}

/// The strategy, the same for a live client and a replay. Stops at the source's end or at
/// `deadline`.
async fn run(
    source: &mut impl FrameSource,
    deadline: Option<Instant>,
) -> Result<Crossover, ClientError> {
    let mut s = Crossover::new();
    loop {
        let next = match deadline {
            Some(d) => match tokio::time::timeout_at(d.into(), source.next()).await {
                Ok(next) => next,
                Err(_) => break,
            },
            None => source.next().await,
        };
        let Some(event) = next else { break };
        match event {
            Ok(Event::Frames(batch)) => {
                s.frames += batch.len() as u64;
                for frame in batch.iter() {
                    if let ArchivedBody::Trade(t) = &frame.body {
                        s.on_trade(t.price.to_native());
                    }
                }
            }
            Ok(Event::Gap { .. }) => s.gaps += 1,
            Ok(_) => {}
            // A damaged block in a recording: reported, and the replay goes on.
            Err(e @ ClientError::Corrupt { .. }) => eprintln!("{e}"),
            Err(e) => return Err(e),
        }
    }
    Ok(s)
}

/// A synthetic recording: a random walk of trades and quotes for `binance:BTCUSDT`, one
/// event every 100 µs of recorded time.
fn make_recording(dir: &PathBuf, n: u64) -> Result<(), Box<dyn std::error::Error>> {
    let info = InstrumentInfo::new(Venue::Binance, "BTCUSDT", 2, 5);
    let mut w =
        RecordingWriter::create(dir, WriterOptions::default(), std::slice::from_ref(&info))?;
    let mut def = Frame::new(
        Venue::Binance,
        info.id,
        0,
        0,
        Body::Definition(info.definition()),
    );
    let t0 = 1_723_075_200_000_000_000u64;
    def.ts_recv = t0;
    def.seq = 1;
    w.append_frame(&def)?;
    let (mut price, mut rng) = (60_000_000_000_000i64, 0x2545_f491_4f6c_dd1du64);
    let (mut trade_seq, mut quote_seq) = (0, 0);
    for i in 0..n {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        price += (rng % 2_001) as i64 * 1_000_000 - 1_000_000_000;
        let ts = t0 + (i + 1) * 100_000;
        let mut f = if rng % 3 == 0 {
            quote_seq += 1;
            let mut f = Frame::new(
                Venue::Binance,
                info.id,
                ts - 1_000_000,
                ts - 20_000,
                Body::Quote(Quote {
                    bid_px: price - 10_000_000,
                    bid_qty: 1_000_000_000,
                    ask_px: price + 10_000_000,
                    ask_qty: 1_000_000_000,
                }),
            );
            f.seq = quote_seq;
            f
        } else {
            trade_seq += 1;
            let mut f = Frame::new(
                Venue::Binance,
                info.id,
                ts - 1_000_000,
                ts - 20_000,
                Body::Trade(Trade {
                    price,
                    qty: 1_000_000 * (1 + (rng >> 20) % 500) as i64,
                    side: if rng & 8 == 0 { Side::Buy } else { Side::Sell },
                    trade_id: TradeId::Num(i),
                }),
            );
            f.seq = trade_seq;
            f
        };
        f.ts_publish = ts;
        w.append_frame(&f)?;
    }
    w.close()?;
    Ok(())
}

fn report(what: &str, s: &Crossover, took: Duration) {
    println!(
        "{what}: {} frames ({} trades) in {:.3} s ({:.1} M frames/s); {} orders, {} gaps, \
         position {}, P&L {:.2} (quote units)",
        s.frames,
        s.trades_seen,
        took.as_secs_f64(),
        s.frames as f64 / took.as_secs_f64().max(1e-9) / 1e6,
        s.orders,
        s.gaps,
        s.position,
        s.pnl() as f64 / 1e9,
    );
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let mut dir: Option<PathBuf> = None;
    let mut url: Option<String> = None;
    let mut speed = Speed::Max;
    let mut seconds: Option<f64> = None;
    let mut symbols: Vec<String> = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = || args.next().unwrap_or_default();
        match a.as_str() {
            "--dir" => dir = Some(value().into()),
            "--url" => url = Some(value()),
            "--seconds" => seconds = value().parse().ok(),
            "--speed" => {
                let v = value();
                speed = match v.as_str() {
                    "max" => Speed::Max,
                    f => match f.parse() {
                        Ok(f) => Speed::Factor(f),
                        Err(_) => {
                            eprintln!("--speed is max or a factor (1 = recorded time), not {v:?}");
                            return ExitCode::from(2);
                        }
                    },
                }
            }
            "-h" | "--help" => {
                eprintln!(
                    "usage: backtest [--dir REC] [--speed max|F] [--url URL --seconds N] [venue:SYMBOL ...]"
                );
                return ExitCode::SUCCESS;
            }
            s => symbols.push(s.to_string()),
        }
    }
    if symbols.is_empty() {
        symbols.push("binance:BTCUSDT".into());
    }
    let symbols: Vec<&str> = symbols.iter().map(String::as_str).collect();
    let deadline = seconds.map(|s| Instant::now() + Duration::from_secs_f64(s));

    if let Some(url) = url {
        let result = async {
            let mut client = Client::connect(&url).await?;
            client.subscribe(&symbols, &[Channel::Trades]).await?;
            let t = Instant::now();
            let s = run(&mut client, deadline).await?;
            report("live", &s, t.elapsed());
            Ok::<(), ClientError>(())
        };
        if let Err(e) = result.await {
            eprintln!("live: {e}");
            return ExitCode::FAILURE;
        }
        return ExitCode::SUCCESS;
    }

    let made = dir.is_none();
    let dir = dir.unwrap_or_else(|| {
        std::env::temp_dir().join(format!("tickwire-backtest-{}", std::process::id()))
    });
    if made {
        let _ = std::fs::remove_dir_all(&dir);
        if let Err(e) = make_recording(&dir, 1_000_000) {
            eprintln!("making the recording: {e}");
            return ExitCode::FAILURE;
        }
    }
    let result = async {
        let mut replay = Replay::builder(&dir).speed(speed).open()?;
        replay.subscribe(&symbols, &[Channel::Trades])?;
        let t = Instant::now();
        let s = run(&mut replay, deadline).await?;
        report(&format!("replay of {}", dir.display()), &s, t.elapsed());
        Ok::<(), Box<dyn std::error::Error>>(())
    }
    .await;
    if made {
        let _ = std::fs::remove_dir_all(&dir);
    }
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}
