//! `tickwire watch`: a console client. A live table per symbol (bid, ask, last trade, book
//! state, feed status) and the per-hop latency percentiles of the frames received.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

use anyhow::Context;
use hdrhistogram::Histogram;
use tickwire_sdk::L2Book;
use tickwire_sdk::client::{Client, Event, Latency};
use tickwire_sdk::wire::{ArchivedBody, Channel, InstrumentInfo, Side, StatusCode, decimal_string};

/// Options of `tickwire watch`.
pub struct WatchArgs {
    /// Server URL (`ws://127.0.0.1:9100/ws`).
    pub url: String,
    /// `venue:SYMBOL`s; empty = everything the server serves.
    pub symbols: Vec<String>,
    /// Stop after this long (runs until Ctrl-C otherwise).
    pub duration: Option<Duration>,
    /// Redraw period.
    pub refresh: Duration,
}

#[derive(Default)]
struct Row {
    bid: Option<(i64, i64)>,
    ask: Option<(i64, i64)>,
    last: Option<(i64, i64, Side)>,
    trades: u64,
    book: L2Book,
    status: Option<(StatusCode, String)>,
}

/// Runs the console client until the duration ends, the server goes away, or Ctrl-C.
pub async fn run(args: WatchArgs) -> anyhow::Result<()> {
    let mut client = connect_with_retry(&args.url).await?;
    let symbols = if args.symbols.is_empty() {
        client
            .list()
            .await
            .context("asking the server what it serves")?
    } else {
        args.symbols.clone()
    };
    if symbols.is_empty() {
        anyhow::bail!("the server serves no symbols yet");
    }
    let refs: Vec<&str> = symbols.iter().map(String::as_str).collect();
    client
        .subscribe(&refs, &Channel::SUBSCRIBABLE)
        .await
        .context("subscribing")?;
    let tty = std::io::stdout().is_terminal();
    let started = Instant::now();
    let mut rows: BTreeMap<u32, Row> = BTreeMap::new();
    let mut frames_in_period = 0u64;
    let mut last_draw = Instant::now();
    let mut redraw = tokio::time::interval(args.refresh);
    redraw.tick().await;
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    loop {
        if args.duration.is_some_and(|d| started.elapsed() >= d) {
            break;
        }
        tokio::select! {
            ev = client.next() => match ev {
                None => { println!("server closed the connection"); break; }
                Some(Err(e)) => return Err(e).context("reading from the server"),
                Some(Ok(Event::Closed { code, reason })) => {
                    println!("server closed the connection: {code} {reason}");
                    break;
                }
                Some(Ok(Event::Reply(_))) => {}
                Some(Ok(Event::Frames(batch))) => {
                    for f in batch.iter() {
                        frames_in_period += 1;
                        let id = f.instrument.to_native();
                        if id == 0 {
                            continue;
                        }
                        let row = rows.entry(id).or_default();
                        row.book.apply(f);
                        match &f.body {
                            ArchivedBody::Trade(t) => {
                                row.trades += 1;
                                row.last = Some((t.price.to_native(), t.qty.to_native(), Side::from(&t.side)));
                            }
                            ArchivedBody::Quote(q) => {
                                row.bid = Some((q.bid_px.to_native(), q.bid_qty.to_native()));
                                row.ask = Some((q.ask_px.to_native(), q.ask_qty.to_native()));
                            }
                            ArchivedBody::Status(s) => {
                                row.status = Some((StatusCode::from(&s.code), s.detail.as_str().to_string()));
                            }
                            _ => {}
                        }
                    }
                }
                Some(Ok(_)) => {}
            },
            _ = redraw.tick() => {
                let secs = last_draw.elapsed().as_secs_f64();
                let text = render(&rows, &client, frames_in_period as f64 / secs.max(1e-9), started.elapsed());
                draw(&text, tty);
                frames_in_period = 0;
                last_draw = Instant::now();
                client.latency_mut().reset();
            }
            _ = &mut ctrl_c => break,
        }
    }
    let _ = client.close().await;
    Ok(())
}

async fn connect_with_retry(url: &str) -> anyhow::Result<Client> {
    let mut last = None;
    for _ in 0..50 {
        match Client::connect(url).await {
            Ok(c) => return Ok(c),
            Err(e) => last = Some(e),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Err(last
        .map(anyhow::Error::from)
        .unwrap_or_else(|| anyhow::anyhow!("no attempt made")))
    .with_context(|| format!("cannot connect to {url}: is `tickwire serve` running there?"))
}

fn draw(text: &str, tty: bool) {
    let mut out = std::io::stdout().lock();
    if tty {
        // Home the cursor and clear the screen, then draw.
        let _ = write!(out, "\x1b[H\x1b[2J{text}");
    } else {
        let _ = writeln!(out, "{text}");
    }
    let _ = out.flush();
}

fn px(v: Option<(i64, i64)>, info: Option<&InstrumentInfo>) -> String {
    let d = info.map_or(2, |i| i.price_decimals.min(2));
    v.map_or("-".into(), |(p, _)| decimal_string(p, d))
}

fn render(rows: &BTreeMap<u32, Row>, client: &Client, fps: f64, up: Duration) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "tickwire watch   up {:.0?}   {:.0} frames/s   (Ctrl-C to quit)\n",
        up, fps
    );
    let _ = writeln!(
        s,
        "{:<22} {:>12} {:>12} {:>12} {:>12} {:>5} {:>9} {:>11}  status",
        "symbol", "bid", "ask", "last", "qty", "side", "trades", "book"
    );
    for (id, r) in rows {
        let info = client.instruments().get(*id).map(|i| i.as_ref());
        let name = info.map_or(format!("#{id:08x}"), |i| i.qualified());
        let (bid, ask) = match (r.bid, r.ask) {
            (Some(b), Some(a)) => (Some(b), Some(a)),
            _ => (
                r.book.best_bid().map(|l| (l.price, l.qty)),
                r.book.best_ask().map(|l| (l.price, l.qty)),
            ),
        };
        let (last, qty, side) = match r.last {
            Some((p, q, side)) => (
                px(Some((p, 0)), info),
                decimal_string(q, info.map_or(8, |i| i.qty_decimals)),
                side.json_name(),
            ),
            None => ("-".into(), "-".into(), "-"),
        };
        let (nb, na) = r.book.depth();
        let book = if r.book.is_valid() {
            format!("{nb}x{na}")
        } else if nb + na > 0 {
            "BAD".into()
        } else {
            "-".into()
        };
        let status = r.status.as_ref().map_or("ok".to_string(), |(c, d)| {
            format!("{} {}", c.json_name(), d)
        });
        let _ = writeln!(
            s,
            "{:<22} {:>12} {:>12} {:>12} {:>12} {:>5} {:>9} {:>11}  {}",
            name,
            px(bid, info),
            px(ask, info),
            last,
            qty,
            side,
            r.trades,
            book,
            status.chars().take(40).collect::<String>()
        );
    }
    let l: &Latency = client.latency();
    let _ = writeln!(
        s,
        "\nlatency over the last period (us)   {:>9} {:>9} {:>9} {:>9} {:>9}",
        "p50", "p99", "p99.9", "max", "count"
    );
    for (name, h) in [
        ("exchange -> feed recv", &l.exchange_to_recv),
        ("feed recv -> publish", &l.recv_to_publish),
        ("publish -> this client", &l.publish_to_client),
        ("end to end", &l.end_to_end),
    ] {
        let _ = writeln!(s, "  {:<33} {}", name, percentiles(h));
    }
    s
}

fn percentiles(h: &Histogram<u64>) -> String {
    if h.is_empty() {
        return format!("{:>9} {:>9} {:>9} {:>9} {:>9}", "-", "-", "-", "-", 0);
    }
    let us = |v: u64| format!("{:.1}", v as f64 / 1_000.0);
    format!(
        "{:>9} {:>9} {:>9} {:>9} {:>9}",
        us(h.value_at_quantile(0.5)),
        us(h.value_at_quantile(0.99)),
        us(h.value_at_quantile(0.999)),
        us(h.max()),
        h.len()
    )
}
