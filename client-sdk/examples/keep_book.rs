//! Keeps the order books of the symbols given and prints their top 5 levels every second.
//!
//! ```sh
//! cargo run -p tickwire-sdk --example keep_book -- --seconds 10 binance:BTCUSDT
//! ```

mod common;

use std::fmt::Write as _;
use std::process::ExitCode;
use std::time::Duration;

use common::{Args, price, qty, report};
use tickwire_sdk::books::Books;
use tickwire_sdk::symbol::Symbol;
use tickwire_sdk::wire::{Channel, Instruments};

const LEVELS: usize = 5;

fn render(books: &Books, symbols: &[Symbol], instruments: &Instruments, up: Duration) -> String {
    let mut s = format!("--- {:.0?} ---\n", up);
    for sym in symbols {
        let id = sym.id();
        let Some(book) = books.by_id(id) else {
            let _ = writeln!(s, "{sym}: no book yet\n");
            continue;
        };
        let (nb, na) = book.depth();
        let state = if book.is_valid() {
            "valid"
        } else {
            "STALE (waiting for a snapshot)"
        };
        let _ = writeln!(s, "{sym}  {nb} bids x {na} asks  {state}");
        let _ = writeln!(
            s,
            "  {:>16} {:>14}  | {:<14} {:<16}",
            "bid qty", "bid", "ask", "ask qty"
        );
        let mut bids = book.bids().take(LEVELS);
        let mut asks = book.asks().take(LEVELS);
        for _ in 0..LEVELS {
            let (b, a) = (bids.next(), asks.next());
            if b.is_none() && a.is_none() {
                break;
            }
            let (bq, bp) = b.map_or((String::new(), String::new()), |l| {
                (qty(instruments, id, l.qty), price(instruments, id, l.price))
            });
            let (ap, aq) = a.map_or((String::new(), String::new()), |l| {
                (price(instruments, id, l.price), qty(instruments, id, l.qty))
            });
            let _ = writeln!(s, "  {bq:>16} {bp:>14}  | {ap:<14} {aq:<16}");
        }
        s.push('\n');
    }
    s
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse(
        "keep_book",
        "Keeps the books of the symbols given; prints the top 5 levels every second.",
    );
    let symbols: Vec<Symbol> = match args.symbols.iter().map(|s| s.parse()).collect() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    let mut client = match args.connect(&[Channel::Book]).await {
        Ok(c) => c,
        Err(e) => {
            eprintln!("cannot subscribe at {}: {e}", args.url);
            return ExitCode::FAILURE;
        }
    };
    let mut books = Books::new();
    let started = std::time::Instant::now();
    let mut last_print = started;
    let mut every = tokio::time::interval(Duration::from_secs(1));
    every.tick().await;
    let stop = args.stop();
    tokio::pin!(stop);
    loop {
        tokio::select! {
            _ = &mut stop => break,
            _ = every.tick() => {
                print!("{}", render(&books, &symbols, client.instruments(), started.elapsed()));
                last_print = std::time::Instant::now();
            }
            event = client.next() => match event {
                None => break,
                Some(Ok(event)) => {
                    if !report(&event, client.instruments()) {
                        break;
                    }
                    books.on_event(&event);
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
    // The final state, unless it was just printed.
    if last_print.elapsed() > Duration::from_millis(500) {
        print!(
            "{}",
            render(&books, &symbols, client.instruments(), started.elapsed())
        );
    }
    let _ = client.close().await;
    ExitCode::SUCCESS
}
