//! `tickwire normalize`: captured raw venue frames in, the clients' JSON lines out.

use std::io::{self, BufWriter, Write};
use std::path::PathBuf;

use anyhow::{Context, bail};
use tickwire_feed::capture::{CaptureReader, Record};
use tickwire_feed::{Normalizer, Output};
use tickwire_sdk::wire::{Encoder, Instruments, JsonOptions, Venue, access, json};

use super::import::{capture_event, normalize_event};
use crate::sequencer::StreamSeqs;

/// Options of `tickwire normalize`.
pub struct NormalizeArgs {
    /// The venue whose dialect the files hold.
    pub venue: Venue,
    /// Capture files (plain or gzip); several are merged by receive time.
    pub files: Vec<PathBuf>,
    /// Exit with an error if any message could not be normalized.
    pub strict: bool,
}

/// Runs the command, writing JSON lines to `out` and a summary to stderr.
pub fn run(args: &NormalizeArgs, out: &mut dyn Write) -> anyhow::Result<()> {
    let mut normalizer: Box<dyn Normalizer> = tickwire_feed::venues::normalizer(args.venue);
    let records = read_merged(&args.files)?;
    let names: Vec<String> = args.files.iter().map(|f| f.display().to_string()).collect();
    let mut w = BufWriter::with_capacity(1 << 16, out);
    let mut o = Output::new();
    let mut seqs = StreamSeqs::default();
    let mut enc = Encoder::new();
    let mut instruments = Instruments::new();
    let mut line = Vec::with_capacity(512);
    let mut errors = 0u64;
    let mut connects = 0u64;
    for (file, r) in records {
        o.clear();
        let ts = r.ts_ns.unwrap_or(0);
        let result = match capture_event(&r, &mut connects) {
            Some(event) => normalize_event(normalizer.as_mut(), ts, &event, &mut o),
            None => Ok(()),
        };
        if let Err(e) = result {
            errors += 1;
            if errors <= 20 {
                eprintln!("{}:{}: skipped: {e}", names[file], r.line);
            }
        }
        for mut frame in o.frames.drain(..) {
            seqs.assign(&mut frame);
            let bytes = enc.encode(&frame);
            let archived = access(bytes).context("re-reading an encoded frame")?;
            instruments.observe(archived);
            line.clear();
            let info = instruments
                .get(archived.instrument.to_native())
                .map(|i| i.as_ref());
            json::render(archived, info, JsonOptions { ts_publish: false }, &mut line);
            line.push(b'\n');
            if let Err(e) = w.write_all(&line) {
                if e.kind() == io::ErrorKind::BrokenPipe {
                    return Ok(());
                }
                return Err(e).context("writing output");
            }
        }
    }
    match w.flush() {
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => return Ok(()),
        r => r.context("writing output")?,
    }
    let stats = normalizer.stats();
    eprintln!(
        "normalized {} messages into {} frames; {} skipped, {} sequence breaks",
        stats.messages, stats.frames, stats.errors, stats.gaps
    );
    for (kind, n) in stats.by_kind() {
        eprintln!("  {kind:<24} {n}");
    }
    if args.strict && errors > 0 {
        let what = if errors == 1 { "message" } else { "messages" };
        bail!("{errors} {what} could not be normalized (--strict)");
    }
    Ok(())
}

/// Reads every file, each record with the index of its file; if all records carry receive
/// times, merges them in time order (stable), else keeps file order.
fn read_merged(files: &[PathBuf]) -> anyhow::Result<Vec<(usize, Record)>> {
    if files.is_empty() {
        bail!("give at least one capture file");
    }
    let mut all = Vec::new();
    for (k, f) in files.iter().enumerate() {
        let records = CaptureReader::open(f)?.read_all()?;
        all.extend(records.into_iter().map(|r| (k, r)));
    }
    if files.len() > 1 && all.iter().all(|(_, r)| r.ts_ns.is_some()) {
        all.sort_by_key(|(_, r)| r.ts_ns);
    }
    Ok(all)
}
