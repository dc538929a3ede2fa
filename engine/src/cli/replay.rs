//! `tickwire replay DIR --out FILE`: a recording's frames, filtered by time and symbol, written
//! as the public protocol's JSON lines or as the recorded frame bytes, at full speed with a
//! progress bar, or paced on the recorded times (`--speed 1`: a live-like stream on stdout).
//! Damaged blocks are reported (file, offset) and skipped; the rest is written.

use std::io::{self, BufWriter, Write};
use std::path::PathBuf;

use anyhow::{Context, bail};
use indicatif::{ProgressBar, ProgressStyle};
use tickwire_sdk::recording::{Filter, Recording};
use tickwire_sdk::wire::{Instruments, JsonOptions, json};

use crate::replay::{Pacer, Speed};

/// What `replay --out` writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OutFormat {
    /// One JSON object per frame, as text clients receive them (with `ts_publish`).
    Jsonl,
    /// Each frame's recorded rkyv bytes, prefixed by their length (u32 little-endian).
    Frames,
}

/// Options of `tickwire replay`.
pub struct ReplayArgs {
    /// The recording directory.
    pub dir: PathBuf,
    /// Output file; `-` for stdout.
    pub out: PathBuf,
    /// Output format.
    pub format: OutFormat,
    /// Pace of the writing (`Speed::Max`: as fast as possible).
    pub speed: Speed,
    /// Only frames at or after this time (ns since the epoch; the frame's `ts_publish`).
    pub from: Option<u64>,
    /// Only frames before this time (ns since the epoch).
    pub to: Option<u64>,
    /// Only these instruments (`venue:SYMBOL`); all when empty.
    pub symbols: Vec<String>,
}

/// What was written.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ReplaySummary {
    /// Frames written.
    pub frames: u64,
    /// Damaged blocks skipped.
    pub damaged: u64,
}

/// Runs the command; the summary also goes to stderr.
pub fn run(args: &ReplayArgs) -> anyhow::Result<ReplaySummary> {
    let rec = Recording::open(&args.dir)
        .with_context(|| format!("opening the recording {}", args.dir.display()))?;
    let mut filter = Filter::all();
    if let Some(from) = args.from {
        filter = filter.from(from);
    }
    if let Some(to) = args.to {
        filter = filter.to(to);
    }
    if !args.symbols.is_empty() {
        let ids = rec
            .resolve_all(args.symbols.iter().map(String::as_str))
            .context("--symbols")?;
        filter = filter.instruments(ids);
    }
    let out: Box<dyn Write> = if args.out.as_os_str() == "-" {
        Box::new(io::stdout().lock())
    } else {
        Box::new(
            std::fs::File::create(&args.out)
                .with_context(|| format!("creating {}", args.out.display()))?,
        )
    };
    let mut w = BufWriter::with_capacity(1 << 16, out);
    let total: u64 = rec.segments().map(|s| s.frames).sum();
    let pb = ProgressBar::new(total).with_style(
        ProgressStyle::with_template("replay [{bar:30}] {pos}/{len} frames {per_sec} {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    let mut instruments = Instruments::new();
    for info in rec.instruments() {
        instruments.insert(info);
    }
    let mut summary = ReplaySummary::default();
    let mut line = Vec::with_capacity(512);
    let mut seen = 0u64;
    let mut pacer = Pacer::new(args.speed);
    let clock = std::time::Instant::now();
    for item in rec.frames(filter) {
        let f = match item {
            Ok(f) => f,
            Err(damaged) => {
                summary.damaged += 1;
                pb.suspend(|| eprintln!("skipped: {damaged}"));
                continue;
            }
        };
        let wait = pacer.wait(f.ts(), clock.elapsed().as_nanos() as u64);
        if wait > 0 {
            match w.flush() {
                Err(e) if e.kind() == io::ErrorKind::BrokenPipe => break,
                r => r.context("writing output")?,
            }
            std::thread::sleep(std::time::Duration::from_nanos(wait));
        }
        let frame = f.frame();
        match args.format {
            OutFormat::Jsonl => {
                instruments.observe(frame);
                line.clear();
                let info = instruments
                    .get(frame.instrument.to_native())
                    .map(|i| i.as_ref());
                json::render(frame, info, JsonOptions { ts_publish: true }, &mut line);
                line.push(b'\n');
                write(&mut w, &line)?;
            }
            OutFormat::Frames => {
                let bytes = f.bytes();
                write(&mut w, &(bytes.len() as u32).to_le_bytes())?;
                write(&mut w, bytes)?;
            }
        }
        summary.frames += 1;
        seen += 1;
        if seen.is_multiple_of(4096) {
            pb.set_position(seen);
        }
    }
    match w.flush() {
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => {}
        r => r.context("writing output")?,
    }
    pb.finish_and_clear();
    eprintln!(
        "replayed {} frames from {}{}",
        summary.frames,
        args.dir.display(),
        if summary.damaged > 0 {
            format!("; {} damaged blocks skipped (see above)", summary.damaged)
        } else {
            String::new()
        }
    );
    if summary.frames == 0 && total > 0 {
        bail!("no frame of the recording matched --from/--to/--symbols");
    }
    Ok(summary)
}

fn write(w: &mut impl Write, bytes: &[u8]) -> anyhow::Result<()> {
    match w.write_all(bytes) {
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(()),
        r => r.context("writing output"),
    }
}
