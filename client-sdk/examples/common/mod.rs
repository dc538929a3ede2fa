//! What the examples share: command-line parsing (plain `std::env::args`), connecting, and
//! knowing when to stop.

#![allow(dead_code)]

use std::time::Duration;

use tickwire_sdk::client::{Client, ClientError, Event};
use tickwire_sdk::wire::{Channel, Instruments, decimal_string};

/// The examples' command line.
pub struct Args {
    /// Server URL.
    pub url: String,
    /// `venue:SYMBOL`s.
    pub symbols: Vec<String>,
    /// Stop after this long (else at Ctrl-C).
    pub seconds: Option<f64>,
    /// Bearer token for servers that require one.
    pub token: Option<String>,
}

impl Args {
    /// Parses `[--url URL] [--seconds N] [--token T] [venue:SYMBOL...]`; prints `about` and
    /// the usage on `--help` or a bad argument.
    pub fn parse(name: &str, about: &str) -> Args {
        let usage = || {
            eprintln!(
                "{about}\n\nusage: {name} [--url ws://127.0.0.1:9100/ws] [--seconds N] [--token T] [venue:SYMBOL ...]\n\
                 (default symbol binance:BTCUSDT; runs until Ctrl-C without --seconds)"
            );
        };
        let mut args = Args {
            url: "ws://127.0.0.1:9100/ws".into(),
            symbols: Vec::new(),
            seconds: None,
            token: None,
        };
        let mut it = std::env::args().skip(1);
        while let Some(a) = it.next() {
            let mut value = |flag: &str| {
                it.next().unwrap_or_else(|| {
                    eprintln!("{flag} needs a value");
                    usage();
                    std::process::exit(2)
                })
            };
            match a.as_str() {
                "-h" | "--help" => {
                    usage();
                    std::process::exit(0)
                }
                "--url" => args.url = value("--url"),
                "--token" => args.token = Some(value("--token")),
                "--seconds" => {
                    let v = value("--seconds");
                    match v.parse::<f64>() {
                        Ok(s) if s.is_finite() && s >= 0.0 => args.seconds = Some(s),
                        _ => {
                            eprintln!("--seconds wants a number of seconds, not {v:?}");
                            std::process::exit(2)
                        }
                    }
                }
                flag if flag.starts_with("--") => {
                    eprintln!("unknown option {flag}");
                    usage();
                    std::process::exit(2)
                }
                symbol => {
                    if !symbol.contains(':') {
                        eprintln!("symbols are venue:SYMBOL, e.g. binance:BTCUSDT, not {symbol:?}");
                        std::process::exit(2)
                    }
                    args.symbols.push(symbol.to_string())
                }
            }
        }
        if args.symbols.is_empty() {
            args.symbols.push("binance:BTCUSDT".into());
        }
        args
    }

    /// The symbols as `&str`s, for `subscribe`.
    pub fn symbol_refs(&self) -> Vec<&str> {
        self.symbols.iter().map(String::as_str).collect()
    }

    /// Connects a reconnecting client (with the token, if any) and subscribes to `channels`.
    pub async fn connect(&self, channels: &[Channel]) -> Result<Client, ClientError> {
        let mut builder = Client::builder(&self.url).reconnect(true);
        if let Some(t) = &self.token {
            builder = builder.token(t);
        }
        let mut client = builder.connect().await?;
        client.subscribe(&self.symbol_refs(), channels).await?;
        Ok(client)
    }

    /// Resolves at Ctrl-C, or when `--seconds` have passed.
    pub async fn stop(&self) {
        let ctrl_c = async {
            // Without a signal handler, only --seconds stops the example.
            if tokio::signal::ctrl_c().await.is_err() {
                std::future::pending::<()>().await
            }
        };
        match self.seconds {
            Some(s) => {
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs_f64(s)) => {}
                    _ = ctrl_c => {}
                }
            }
            None => ctrl_c.await,
        }
    }
}

/// `venue:SYMBOL` of an instrument id, once its definition arrived.
pub fn name(instruments: &Instruments, id: u32) -> String {
    instruments
        .get(id)
        .map_or_else(|| format!("#{id:08x}"), |i| i.qualified())
}

/// A price with the instrument's precision (8 decimals until its definition arrived).
pub fn price(instruments: &Instruments, id: u32, v: i64) -> String {
    decimal_string(v, instruments.get(id).map_or(8, |i| i.price_decimals))
}

/// A quantity with the instrument's precision.
pub fn qty(instruments: &Instruments, id: u32, v: i64) -> String {
    decimal_string(v, instruments.get(id).map_or(8, |i| i.qty_decimals))
}

/// Time of day (UTC) of a timestamp in ns since the epoch: `HH:MM:SS.uuuuuu`.
pub fn time_of_day(ns: u64) -> String {
    let secs = ns / 1_000_000_000;
    let day = secs % 86_400;
    format!(
        "{:02}:{:02}:{:02}.{:06}",
        day / 3600,
        day / 60 % 60,
        day % 60,
        ns % 1_000_000_000 / 1_000
    )
}

/// Tells about the connection events on stderr; returns false when the client is done.
pub fn report(event: &Event, instruments: &Instruments) -> bool {
    match event {
        Event::Gap {
            instrument,
            channel,
            expected,
            got,
        } => {
            let what = match channel {
                Channel::Trades => "trades lost, not recoverable",
                Channel::Book | Channel::Quotes => "frames lost; a snapshot was asked for",
                Channel::Control => "frames lost",
            };
            let stream = format!("{} {}", name(instruments, *instrument), channel.name());
            if got < expected {
                eprintln!(
                    "! {stream}: seq went back from {} to {got}: the stream restarted (a server restart?)",
                    expected - 1
                );
            } else {
                eprintln!(
                    "! gap in {stream}: seq {expected} due, {got} came ({} {what})",
                    got - expected
                );
            }
        }
        Event::Disconnected { code, reason } => {
            eprintln!("! disconnected ({code:?} {reason}); reconnecting")
        }
        Event::Reconnected { attempt, downtime } => {
            eprintln!("! reconnected after {downtime:.1?} ({attempt} attempts); resubscribed")
        }
        Event::Refused { op, code, message } => {
            eprintln!("! server refused {op}: {code}: {message}")
        }
        Event::Closed { code, reason } => {
            eprintln!("! server closed the connection: {code} {reason}");
            return false;
        }
        _ => {}
    }
    true
}
