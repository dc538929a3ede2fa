//! The harness's results: one [`Run`] per (peer, rate), the JSON report, the terminal table,
//! and HdrHistogram percentile-distribution (`.hgrm`) files.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::Context;
use hdrhistogram::Histogram;
use serde::Serialize;

use super::hops::{Hop, Hops, Percentiles};

/// One peer at one offered rate.
#[derive(Debug, Clone, Serialize)]
pub struct Run {
    /// [`super::Peer::name`]: `tickwire`, `tickwire-rec`, `naive`, `nats` or `cluster`.
    pub peer: String,
    /// Market actions per second asked of the simulator.
    pub rate: f64,
    /// Which repeat of this (rate, peer) it is, from 0 (`--repeat`).
    pub repeat: usize,
    /// Seconds measured (after the warm-up).
    pub seconds: f64,
    /// Venue messages the feed read per second.
    pub ticks_in_per_s: f64,
    /// Frames published per second (into the ring, or the broadcast channel).
    pub frames_published_per_s: f64,
    /// Data frames delivered to all clients per second.
    pub deliveries_per_s: f64,
    /// Clients that read as fast as they can.
    pub fast_clients: usize,
    /// Clients that sleep after each message.
    pub slow_clients: usize,
    /// Clients that never read.
    pub stalled_clients: usize,
    /// Per-hop percentiles over the fast clients' deliveries, us.
    pub hops: Vec<HopStats>,
    /// How late the simulator handed items to its connections, us (the load generator's own
    /// error, included in exchange->recv).
    pub sim_lateness: Percentiles,
    /// Share of the frames published in the window that the fast clients received by the
    /// end of the run (1.0 = all; below: they fell behind and never caught up).
    pub fast_delivered_share: f64,
    /// Frames fast clients missed (`seq` holes, or the naive channel's lag skips).
    pub fast_lost: u64,
    /// Conflated frames fast clients received (they fell behind).
    pub fast_conflated: u64,
    /// Conflated frames slow and stalled clients received.
    pub slow_conflated: u64,
    /// Frames lost by slow clients (naive: lag skips; tickwire: `seq` holes not explained
    /// by conflation are impossible by design, so this counts holes).
    pub slow_lost: u64,
    /// Clients the server closed, by close code.
    pub closed: Vec<(u16, usize)>,
    /// The harness process's resident memory at the end, MiB (simulator, server and clients
    /// share the process; a NATS server is a process of its own, not counted).
    pub rss_mib: f64,
    /// Kept up: fast clients received at least 98% of the window's frames by the end (the
    /// rest is the window's edges), lost nothing, got nothing conflated, none was closed.
    pub keeps_up: bool,
    /// Kept up, and the end-to-end p99 is under 10 ms.
    pub sustained: bool,
    /// The recording, for the `tickwire-rec` peer.
    pub recorder: Option<RecorderRun>,
    /// Gateway nodes, for the `cluster` peer.
    pub gateways: Option<usize>,
    /// CPU cores used during the measured window, by thread name (`server`, `client`, `sim`
    /// runtimes; `tickwire-sequen`encer, `tickwire-record`er threads) and child process
    /// (`nats-server`), busiest first.
    pub cpu_cores: Vec<(String, f64)>,
    #[serde(skip)]
    /// The merged histograms (for files and plots).
    pub histograms: Option<Box<Hops>>,
    #[serde(skip)]
    /// The simulator's lateness histogram.
    pub lateness: Option<Box<Histogram<u64>>>,
}

impl Run {
    /// Percentiles of one hop.
    pub fn hop(&self, hop: Hop) -> Option<&Percentiles> {
        self.hops
            .iter()
            .find(|h| h.hop == hop.name())
            .map(|h| &h.pct)
    }

    /// A short label: `tickwire@10000/s` (`tickwire@10000/s#2` for the third repeat).
    pub fn label(&self) -> String {
        if self.repeat == 0 {
            format!("{}@{}/s", self.peer, self.rate)
        } else {
            format!("{}@{}/s#{}", self.peer, self.rate, self.repeat)
        }
    }

    /// Stem of this run's files: `tickwire-10000` (`tickwire-10000-r2` for the third repeat).
    pub fn stem(&self) -> String {
        format!("{}-{}{}", self.peer, self.rate, repeat_suffix(self.repeat))
    }
}

/// `""` for the first repeat, `-r<i>` for the others (file and directory names).
pub fn repeat_suffix(repeat: usize) -> String {
    if repeat == 0 {
        String::new()
    } else {
        format!("-r{repeat}")
    }
}

/// What the `tickwire-rec` peer's recorder did in one run (counted from the server's start
/// to its shutdown, so warm-up and drain included).
#[derive(Debug, Clone, Serialize)]
pub struct RecorderRun {
    /// Frames written.
    pub frames: u64,
    /// Frames lost because the recorder fell a whole ring behind (0 when it kept up).
    pub lost: u64,
    /// Write errors.
    pub errors: u64,
    /// Size of the recording on disk, bytes.
    pub bytes: u64,
    /// Where the recording was kept (`--keep-recording`); None: deleted after the run.
    pub kept: Option<String>,
}

/// Peers measured as "`tickwire` plus something" at the same load: their latency over
/// `tickwire`'s is the cost of that something.
pub const ADDED_PEERS: [&str; 2] = ["tickwire-rec", "cluster"];

/// One percentile of a peer against `tickwire` at one rate, over the repeats.
#[derive(Debug, Clone, Serialize)]
pub struct Added {
    /// `tickwire`'s figure, us (median over the repeats).
    pub tickwire_us: f64,
    /// The peer's figure, us (median over the repeats).
    pub peer_us: f64,
    /// Peer / `tickwire`, the median of the per-repeat ratios (each from two runs seconds
    /// apart).
    pub ratio: f64,
    /// Peer - `tickwire`, us, the median of the per-repeat differences.
    pub added_us: f64,
    /// Every repeat's ratio, in order.
    pub ratios: Vec<f64>,
}

/// What a peer in [`ADDED_PEERS`] adds to `tickwire`'s end-to-end latency at one rate.
#[derive(Debug, Clone, Serialize)]
pub struct Overhead {
    /// `tickwire-rec` or `cluster`.
    pub peer: String,
    /// Actions per second.
    pub rate: f64,
    /// Repeats with both runs measured.
    pub repeats: usize,
    /// End-to-end p50.
    pub p50: Added,
    /// End-to-end p99.
    pub p99: Added,
    /// End-to-end p99.9.
    pub p99_9: Added,
    /// Both peers kept up in every repeat (otherwise the figures compare a backlog).
    pub both_kept_up: bool,
}

fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// The end-to-end latency each peer of [`ADDED_PEERS`] in `runs` adds to `tickwire`'s, per
/// rate, pairing runs of the same rate and repeat.
pub fn overheads(runs: &[Run]) -> Vec<Overhead> {
    let mut out = Vec::new();
    for peer in ADDED_PEERS {
        let mut rates: Vec<f64> = Vec::new();
        for r in runs.iter().filter(|r| r.peer == peer) {
            if !rates.contains(&r.rate) {
                rates.push(r.rate);
            }
        }
        for rate in rates {
            let pairs: Vec<(&Run, Percentiles, Percentiles)> = runs
                .iter()
                .filter(|p| p.peer == peer && p.rate == rate)
                .filter_map(|p| {
                    let tw = runs
                        .iter()
                        .find(|t| t.peer == "tickwire" && t.rate == rate && t.repeat == p.repeat)?;
                    let (a, b) = (*tw.hop(Hop::EndToEnd)?, *p.hop(Hop::EndToEnd)?);
                    (a.count > 0 && b.count > 0).then_some((tw, a, b))
                })
                .collect();
            if pairs.is_empty() {
                continue;
            }
            let added = |f: fn(&Percentiles) -> f64| Added {
                tickwire_us: median(pairs.iter().map(|(_, a, _)| f(a)).collect()),
                peer_us: median(pairs.iter().map(|(_, _, b)| f(b)).collect()),
                ratio: median(
                    pairs
                        .iter()
                        .map(|(_, a, b)| f(b) / f(a).max(1e-9))
                        .collect(),
                ),
                added_us: median(pairs.iter().map(|(_, a, b)| f(b) - f(a)).collect()),
                ratios: pairs
                    .iter()
                    .map(|(_, a, b)| f(b) / f(a).max(1e-9))
                    .collect(),
            };
            let both_kept_up = pairs.iter().all(|(tw, _, _)| tw.keeps_up)
                && runs
                    .iter()
                    .filter(|p| p.peer == peer && p.rate == rate)
                    .all(|p| p.keeps_up);
            out.push(Overhead {
                peer: peer.to_string(),
                rate,
                repeats: pairs.len(),
                p50: added(|p| p.p50),
                p99: added(|p| p.p99),
                p99_9: added(|p| p.p99_9),
                both_kept_up,
            });
        }
    }
    out
}

fn us(v: f64) -> String {
    if v.abs() >= 1_000.0 {
        format!("{:.2} ms", v / 1_000.0)
    } else {
        format!("{v:.0} us")
    }
}

/// The overheads as lines of text.
pub fn overhead_lines(overheads: &[Overhead]) -> String {
    let mut s = String::new();
    for o in overheads {
        let one = |name: &str, a: &Added| {
            format!(
                "{name} {} -> {} ({:.2}x, {}{})",
                us(a.tickwire_us),
                us(a.peer_us),
                a.ratio,
                if a.added_us >= 0.0 { "+" } else { "-" },
                us(a.added_us.abs()),
            )
        };
        let _ = writeln!(
            s,
            "{} over tickwire at {}/s ({} repeat{}{}): end to end {}; {}; {}",
            o.peer,
            o.rate,
            o.repeats,
            if o.repeats == 1 { "" } else { "s, medians" },
            if o.both_kept_up {
                ""
            } else {
                ", NOT BOTH KEPT UP"
            },
            one("p50", &o.p50),
            one("p99", &o.p99),
            one("p99.9", &o.p99_9),
        );
    }
    s
}

/// One hop's figures.
#[derive(Debug, Clone, Serialize)]
pub struct HopStats {
    /// [`Hop::name`].
    pub hop: &'static str,
    /// Its percentiles.
    #[serde(flatten)]
    pub pct: Percentiles,
}

/// A comparison of tickwire with a peer.
#[derive(Debug, Clone, Serialize)]
pub struct Ratio {
    /// The peer compared with tickwire.
    pub peer: String,
    /// The highest rate the peer sustained (None: it sustained none).
    pub peer_max_sustained_rate: Option<f64>,
    /// tickwire's highest sustained rate.
    pub tickwire_max_sustained_rate: Option<f64>,
    /// The highest rate the peer kept up with (whatever its latency).
    pub peer_max_keeping_up_rate: Option<f64>,
    /// Peer end-to-end p99 / tickwire's, at the peer's highest rate kept up with.
    pub p99_ratio_at_peer_max: Option<f64>,
    /// Peer end-to-end p99 / tickwire's at every rate both ran: (rate, ratio).
    pub p99_ratios: Vec<(f64, f64)>,
    /// tickwire's deliveries/s at its highest sustained rate / the peer's at its own.
    pub sustained_deliveries_ratio: Option<f64>,
    /// The peer's deliveries/s at its highest sustained rate.
    pub peer_max_sustained_deliveries: Option<f64>,
    /// tickwire's deliveries/s at its highest sustained rate.
    pub tickwire_max_sustained_deliveries: Option<f64>,
}

/// The whole report.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Report format version.
    pub version: u32,
    /// When it ran, RFC 3339 UTC.
    pub started: String,
    /// What it ran on.
    pub machine: Machine,
    /// The command line's settings.
    pub settings: serde_json::Value,
    /// Every run, in order.
    pub runs: Vec<Run>,
    /// tickwire against each peer.
    pub ratios: Vec<Ratio>,
    /// What `tickwire-rec` (recording) and `cluster` (the NATS hop) add to `tickwire`'s
    /// latency at the same load.
    pub overheads: Vec<Overhead>,
    /// The goals on this machine, met or missed, and by how much.
    pub goals: Vec<Goal>,
}

/// One goal of the latency benchmark, checked against this report's runs.
#[derive(Debug, Clone, Serialize)]
pub struct Goal {
    /// What is asked.
    pub goal: &'static str,
    /// The figure measured (None: no run in this report measures it).
    pub measured: Option<f64>,
    /// Its unit.
    pub unit: &'static str,
    /// The target.
    pub target: f64,
    /// Met, missed, or not measured.
    pub met: Option<bool>,
    /// Which run(s) the figure comes from.
    pub from: String,
}

/// Checks the goals of the latency benchmark against `runs`, `ratios` and `overheads`.
pub fn goals(runs: &[Run], ratios: &[Ratio], overheads: &[Overhead]) -> Vec<Goal> {
    let tw: Vec<&Run> = runs.iter().filter(|r| r.peer == "tickwire").collect();
    // 10k ticks/s in to 100 clients: the tickwire run closest to that load.
    let at_10k = tw
        .iter()
        .filter(|r| r.ticks_in_per_s >= 9_000.0 && r.fast_clients >= 100)
        .min_by(|a, b| a.ticks_in_per_s.total_cmp(&b.ticks_in_per_s));
    let e2e = |r: &Run| r.hop(Hop::EndToEnd).copied();
    let mut out = Vec::new();
    let mut push = |goal, measured: Option<f64>, unit, target: f64, below: bool, from: String| {
        out.push(Goal {
            goal,
            measured,
            unit,
            target,
            met: measured.map(|m| if below { m < target } else { m >= target }),
            from,
        })
    };
    let label = |r: Option<&&Run>| {
        r.map_or(
            "no run at >= 9k ticks/s with >= 100 fast clients".to_string(),
            |r| r.label(),
        )
    };
    push(
        "end-to-end p50 at 10k ticks/s in, 100 clients",
        at_10k.and_then(|r| e2e(r)).map(|p| p.p50),
        "us",
        100.0,
        true,
        label(at_10k),
    );
    push(
        "end-to-end p99 at 10k ticks/s in, 100 clients",
        at_10k.and_then(|r| e2e(r)).map(|p| p.p99),
        "us",
        1_000.0,
        true,
        label(at_10k),
    );
    let naive = ratios.iter().find(|r| r.peer == "naive");
    push(
        "tickwire's end-to-end p99 lower than naive's at the highest load the naive server keeps up with",
        naive.and_then(|r| r.p99_ratio_at_peer_max),
        "x",
        20.0,
        false,
        naive.map_or("no naive run".into(), |r| {
            format!(
                "naive kept up with up to {}",
                opt_rate(r.peer_max_keeping_up_rate)
            )
        }),
    );
    push(
        "highest sustained deliveries/s (p99 < 10 ms), tickwire over naive",
        naive.and_then(|r| r.sustained_deliveries_ratio),
        "x",
        20.0,
        false,
        naive.map_or("no naive run".into(), |r| {
            format!(
                "tickwire sustained up to {}, naive up to {}",
                opt_rate(r.tickwire_max_sustained_rate),
                opt_rate(r.peer_max_sustained_rate)
            )
        }),
    );
    let worst_internal = tw
        .iter()
        .filter_map(|r| r.hop(Hop::RecvToPublish).map(|p| (p.p99, r.label())))
        .max_by(|a, b| a.0.total_cmp(&b.0));
    push(
        "internal hop recv -> publish p99 (worst tickwire run)",
        worst_internal.as_ref().map(|w| w.0),
        "us",
        20.0,
        true,
        worst_internal.map_or("no tickwire run".into(), |w| w.1),
    );
    // Issue 5: recording costs under 10% of the end-to-end p99, at every rate measured.
    let worst_rec = overheads
        .iter()
        .filter(|o| o.peer == "tickwire-rec")
        .max_by(|a, b| a.p99.ratio.total_cmp(&b.p99.ratio));
    push(
        "recording overhead on the end-to-end p99, tickwire-rec over tickwire (worst rate)",
        worst_rec.map(|o| (o.p99.ratio - 1.0) * 100.0),
        "%",
        10.0,
        true,
        worst_rec.map_or("no tickwire-rec run beside a tickwire run".into(), |o| {
            format!("at {} actions/s, median of {} repeat(s)", o.rate, o.repeats)
        }),
    );
    out
}

fn opt_rate(r: Option<f64>) -> String {
    r.map_or("no rate".into(), |r| format!("{r} actions/s"))
}

/// The goals as lines of text.
pub fn goal_lines(goals: &[Goal]) -> String {
    let mut s = String::new();
    for g in goals {
        let verdict = match (g.met, g.measured) {
            (Some(true), _) => "met".to_string(),
            (Some(false), Some(m)) if g.unit == "%" => {
                format!("MISSED by {:.1} points", m - g.target)
            }
            (Some(false), Some(m)) => {
                let by = if g.unit == "x" {
                    g.target / m.max(1e-9)
                } else {
                    m / g.target
                };
                format!("MISSED by {by:.1}x")
            }
            _ => "not measured".to_string(),
        };
        let _ = writeln!(
            s,
            "goal: {}: {} (target {}{}, measured {}) [{}]",
            g.goal,
            verdict,
            g.target,
            g.unit,
            g.measured
                .map_or("-".into(), |m| format!("{m:.1}{}", g.unit)),
            g.from
        );
    }
    s
}

/// The machine, as the report records it.
#[derive(Debug, Clone, Serialize)]
pub struct Machine {
    /// Logical CPUs available.
    pub cpus: usize,
    /// `/proc/cpuinfo` model name, if readable.
    pub cpu_model: Option<String>,
    /// Kernel release, if readable.
    pub kernel: Option<String>,
    /// Total memory, GiB, if readable.
    pub mem_gib: Option<f64>,
}

impl Machine {
    /// Reads what it can of this machine.
    pub fn this() -> Machine {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu_model = cpuinfo
            .lines()
            .find(|l| l.starts_with("model name"))
            .and_then(|l| l.split(':').nth(1))
            .map(|s| s.trim().to_string());
        let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .ok()
            .map(|s| s.trim().to_string());
        let mem_gib = std::fs::read_to_string("/proc/meminfo").ok().and_then(|m| {
            let kb: f64 = m
                .lines()
                .find(|l| l.starts_with("MemTotal:"))?
                .split_whitespace()
                .nth(1)?
                .parse()
                .ok()?;
            Some((kb / 1024.0 / 1024.0 * 10.0).round() / 10.0)
        });
        Machine {
            cpus: std::thread::available_parallelism().map_or(1, |n| n.get()),
            cpu_model,
            kernel,
            mem_gib,
        }
    }
}

/// Compares tickwire with every other peer in `runs`.
pub fn ratios(runs: &[Run]) -> Vec<Ratio> {
    let best = |peer: &str| {
        runs.iter()
            .filter(|r| r.peer == peer && r.sustained)
            .max_by(|a, b| a.rate.total_cmp(&b.rate))
    };
    let mut peers: Vec<&str> = Vec::new();
    for r in runs {
        if r.peer != "tickwire" && !peers.contains(&r.peer.as_str()) {
            peers.push(&r.peer);
        }
    }
    let tw_best = best("tickwire");
    let p99 = |r: &Run| r.hop(Hop::EndToEnd).map(|p| p.p99).filter(|p| *p > 0.0);
    peers
        .into_iter()
        .map(|peer| {
            let pb = best(peer);
            let p99_ratios: Vec<(f64, f64)> = runs
                .iter()
                .filter(|r| r.peer == peer)
                .filter_map(|p| {
                    let tw = runs.iter().find(|r| {
                        r.peer == "tickwire" && r.rate == p.rate && r.repeat == p.repeat
                    })?;
                    Some((p.rate, p99(p)? / p99(tw)?))
                })
                .collect();
            let keeping_up = runs
                .iter()
                .filter(|r| r.peer == peer && r.keeps_up)
                .max_by(|a, b| a.rate.total_cmp(&b.rate));
            let p99_ratio_at_peer_max = keeping_up
                .and_then(|k| p99_ratios.iter().find(|(rate, _)| *rate == k.rate))
                .map(|(_, x)| *x);
            let sustained_deliveries_ratio = match (tw_best, pb) {
                (Some(t), Some(p)) if p.deliveries_per_s > 0.0 => {
                    Some(t.deliveries_per_s / p.deliveries_per_s)
                }
                _ => None,
            };
            Ratio {
                peer: peer.to_string(),
                peer_max_sustained_rate: pb.map(|r| r.rate),
                tickwire_max_sustained_rate: tw_best.map(|r| r.rate),
                peer_max_keeping_up_rate: keeping_up.map(|r| r.rate),
                p99_ratio_at_peer_max,
                p99_ratios,
                sustained_deliveries_ratio,
                peer_max_sustained_deliveries: pb.map(|r| r.deliveries_per_s),
                tickwire_max_sustained_deliveries: tw_best.map(|r| r.deliveries_per_s),
            }
        })
        .collect()
}

fn rate(r: f64) -> String {
    if r >= 1e6 {
        format!("{:.2}M", r / 1e6)
    } else if r >= 1e3 {
        format!("{:.1}k", r / 1e3)
    } else {
        format!("{r:.0}")
    }
}

/// One run as a terminal table.
pub fn table(run: &Run) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{}: {} ticks/s in, {} frames/s published, {} deliveries/s to {} fast + {} slow + {} stalled clients{}",
        run.label(),
        rate(run.ticks_in_per_s),
        rate(run.frames_published_per_s),
        rate(run.deliveries_per_s),
        run.fast_clients,
        run.slow_clients,
        run.stalled_clients,
        if run.sustained {
            ""
        } else if run.keeps_up {
            "  [kept up, p99 over 10 ms]"
        } else {
            "  [FELL BEHIND]"
        }
    );
    let _ = writeln!(
        s,
        "  {:<18} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>11}",
        "us", "p50", "p90", "p99", "p99.9", "p99.99", "max", "count"
    );
    let row = |s: &mut String, name: &str, p: &Percentiles| {
        let _ = writeln!(
            s,
            "  {:<18} {:>9.1} {:>9.1} {:>9.1} {:>9.1} {:>9.1} {:>9.1} {:>11}",
            name, p.p50, p.p90, p.p99, p.p99_9, p.p99_99, p.max, p.count
        );
    };
    for hop in Hop::ALL {
        if let Some(p) = run.hop(hop) {
            row(&mut s, hop.label(), p);
        }
    }
    row(&mut s, "(sim lateness)", &run.sim_lateness);
    let closed: Vec<String> = run
        .closed
        .iter()
        .map(|(c, n)| format!("{n} with {c}"))
        .collect();
    let _ = writeln!(
        s,
        "  fast clients: {:.1}% of the window delivered, {} lost, {} conflated; slow/stalled: {} conflated, {} lost; closed: {}; harness RSS {:.0} MiB",
        run.fast_delivered_share * 100.0,
        run.fast_lost,
        run.fast_conflated,
        run.slow_conflated,
        run.slow_lost,
        if closed.is_empty() {
            "none".into()
        } else {
            closed.join(", ")
        },
        run.rss_mib
    );
    if !run.cpu_cores.is_empty() {
        let total: f64 = run.cpu_cores.iter().map(|c| c.1).sum();
        let parts: Vec<String> = run
            .cpu_cores
            .iter()
            .map(|(n, c)| format!("{n} {c:.2}"))
            .collect();
        let _ = writeln!(
            s,
            "  CPU cores in the window: {total:.2} = {}",
            parts.join(", ")
        );
    }
    if let Some(r) = &run.recorder {
        let _ = writeln!(
            s,
            "  recorder: {} frames written, {} lost, {} errors, {:.1} MiB on disk{}",
            r.frames,
            r.lost,
            r.errors,
            r.bytes as f64 / (1 << 20) as f64,
            r.kept
                .as_ref()
                .map_or(" (deleted)".to_string(), |d| format!(" in {d}"))
        );
    }
    if let Some(g) = run.gateways {
        let _ = writeln!(
            s,
            "  cluster: 1 ingest node -> NATS -> {g} gateway nodes, clients split evenly"
        );
    }
    s
}

/// The ratios as lines of text.
pub fn ratio_lines(ratios: &[Ratio]) -> String {
    let mut s = String::new();
    let f = |v: Option<f64>, unit: &str| v.map_or("n/a".to_string(), |v| format!("{v:.1}{unit}"));
    for r in ratios {
        if ADDED_PEERS.contains(&r.peer.as_str()) {
            // tickwire plus something: its latency cost is in the overhead lines.
            let _ = writeln!(
                s,
                "{}: highest sustained rate (p99 < 10 ms) {} ({} deliveries/s); tickwire {} ({} deliveries/s)",
                r.peer,
                f(r.peer_max_sustained_rate, "/s"),
                r.peer_max_sustained_deliveries.map_or("-".into(), rate),
                f(r.tickwire_max_sustained_rate, "/s"),
                r.tickwire_max_sustained_deliveries.map_or("-".into(), rate),
            );
            continue;
        }
        let _ = writeln!(
            s,
            "tickwire vs {}: highest sustained rate (p99 < 10 ms) {} vs {}, deliveries/s {}; end-to-end p99 {} lower at {}'s highest rate kept up with ({}); p99 ratio per rate: {}",
            r.peer,
            f(r.tickwire_max_sustained_rate, "/s"),
            f(r.peer_max_sustained_rate, "/s"),
            f(r.sustained_deliveries_ratio, "x"),
            f(r.p99_ratio_at_peer_max, "x"),
            r.peer,
            f(r.peer_max_keeping_up_rate, "/s"),
            r.p99_ratios
                .iter()
                .map(|(rate, x)| format!("{rate}/s {x:.1}x"))
                .collect::<Vec<_>>()
                .join(", "),
        );
    }
    s
}

/// Writes `h` (ns values) as an HdrHistogram percentile distribution in microseconds, the
/// `.hgrm` text that HdrHistogram's plotters read.
pub fn write_hgrm(h: &Histogram<u64>, path: &Path) -> anyhow::Result<()> {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{:>12} {:>14} {:>10} {:>14}\n",
        "Value", "Percentile", "TotalCount", "1/(1-Percentile)"
    );
    if h.is_empty() {
        std::fs::write(path, s).with_context(|| format!("writing {}", path.display()))?;
        return Ok(());
    }
    let mut total = 0u64;
    for v in h.iter_quantiles(5) {
        total += v.count_since_last_iteration();
        let q = v.quantile_iterated_to();
        let inv = if q < 1.0 {
            format!("{:>14.2}", 1.0 / (1.0 - q))
        } else {
            format!("{:>14}", "")
        };
        let _ = writeln!(
            s,
            "{:>12.3} {:>14.12} {:>10} {}",
            h.highest_equivalent(v.value_iterated_to()) as f64 / 1_000.0,
            q,
            total,
            inv.trim_end()
        );
    }
    let _ = writeln!(
        s,
        "#[Mean    = {:>12.3}, StdDeviation   = {:>12.3}]",
        h.mean() / 1_000.0,
        h.stdev() / 1_000.0
    );
    let _ = writeln!(
        s,
        "#[Max     = {:>12.3}, Total count    = {:>12}]",
        h.max() as f64 / 1_000.0,
        h.len()
    );
    std::fs::write(path, s).with_context(|| format!("writing {}", path.display()))
}
