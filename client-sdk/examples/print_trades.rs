//! Prints the trades of the symbols given on the command line, one line each.
//!
//! ```sh
//! cargo run -p tickwire-sdk --example print_trades -- --seconds 10 binance:BTCUSDT binance:ETHUSDT
//! ```

mod common;

use std::process::ExitCode;

use common::{Args, name, price, qty, report, time_of_day};
use tickwire_sdk::client::Event;
use tickwire_sdk::wire::frame::{ArchivedTrade, ArchivedTradeId};
use tickwire_sdk::wire::{ArchivedBody, Channel, Instruments, Side};

fn trade_line(instruments: &Instruments, id: u32, t: &ArchivedTrade) -> String {
    let trade_id = match &t.trade_id {
        ArchivedTradeId::None => String::new(),
        ArchivedTradeId::Num(n) => format!("  id {}", n.to_native()),
        ArchivedTradeId::Text(s) => format!("  id {}", s.as_str()),
    };
    format!(
        "{:<4} {:>14} @ {:<14}{trade_id}",
        Side::from(&t.side).json_name(),
        qty(instruments, id, t.qty.to_native()),
        price(instruments, id, t.price.to_native()),
    )
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse("print_trades", "Prints the trades of the symbols given.");
    let mut client = match args.connect(&[Channel::Trades]).await {
        Ok(c) => c,
        Err(e) => {
            eprintln!("cannot subscribe at {}: {e}", args.url);
            return ExitCode::FAILURE;
        }
    };
    eprintln!("trades of {} from {}", args.symbols.join(", "), args.url);
    let stop = args.stop();
    tokio::pin!(stop);
    let mut trades = 0u64;
    loop {
        let event = tokio::select! {
            _ = &mut stop => break,
            event = client.next() => event,
        };
        let event = match event {
            None => break,
            Some(Ok(e)) => e,
            Some(Err(e)) if e.is_fatal() => {
                eprintln!("error: {e}");
                return ExitCode::FAILURE;
            }
            Some(Err(e)) => {
                eprintln!("error: {e}");
                continue;
            }
        };
        if !report(&event, client.instruments()) {
            break;
        }
        let Event::Frames(batch) = event else {
            continue;
        };
        let instruments = client.instruments();
        for f in batch.iter() {
            let id = f.instrument.to_native();
            let ts = match f.ts_exchange.to_native() {
                0 => f.ts_recv.to_native(),
                t => t,
            };
            let line = match &f.body {
                ArchivedBody::Trade(t) => trade_line(instruments, id, t),
                ArchivedBody::TradeSummary(s) => format!(
                    "{} trades folded: volume {}, vwap {}, high {}, low {}; last {}",
                    s.count.to_native(),
                    tickwire_sdk::wire::decimal_string(
                        i64::try_from(s.volume.to_native()).unwrap_or(i64::MAX),
                        instruments.get(id).map_or(8, |i| i.qty_decimals)
                    ),
                    price(instruments, id, s.vwap.to_native()),
                    price(instruments, id, s.high.to_native()),
                    price(instruments, id, s.low.to_native()),
                    trade_line(instruments, id, &s.last).trim_start(),
                ),
                _ => continue,
            };
            trades += 1;
            println!(
                "{}  {:<18} {line}  seq {}",
                time_of_day(ts),
                name(instruments, id),
                f.seq.to_native()
            );
        }
    }
    eprintln!("{trades} trade lines");
    let _ = client.close().await;
    ExitCode::SUCCESS
}
