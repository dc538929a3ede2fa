//! `tickwire import`: captures in public formats (hftbacktest, cryptofeed), or the raw records
//! of a recording, run through the venue normalizers into a new recording.
//!
//! The frames are made as the live path makes them: the venue's normalizer, then the
//! sequencer's per-stream `seq` ([`StreamSeqs`]), Definition frames as the normalizer emits
//! them. The timestamps differ in one documented way:
//!
//! - `ts_recv` is the capture's receive time (a line without one, like the REST snapshot in
//!   an hftbacktest capture, takes the time of the line before it in its file);
//! - `ts_publish` = `ts_recv`: an import has no publish time, and this keeps the recording's
//!   order by frame time (`ts_publish`) equal to the capture's order.
//!
//! Input is checked before anything is written: a line in no capture format, or in the
//! other format than `--format` says, stops the import with the file and line named. A
//! message that does not normalize is skipped, counted and reported (the first ones with
//! file and line), as the live feed does; `--strict` makes that an error at the end.

use std::collections::{BTreeMap, HashMap};
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::ValueEnum;
use indicatif::{ProgressBar, ProgressStyle};
use tickwire_feed::capture::{CaptureReader, LineForm, Record, RecordKind};
use tickwire_feed::venues::{self, Endpoints};
use tickwire_feed::{NormalizeError, Normalizer, Output};
use tickwire_sdk::recording::{RawEvent, Recording, RecordingWriter, TimeRange, WriterOptions};
use tickwire_sdk::wire::{Body, Venue};

use crate::sequencer::StreamSeqs;

/// The formats `tickwire import` reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ImportFormat {
    /// hftbacktest captures: `<receive time ns> <frame>` lines (plain or gzip), with bare
    /// JSON lines for REST snapshots.
    Hftbacktest,
    /// cryptofeed captures: `<secs>: <frame>` lines and `<url> <dir> <secs>: ...` lines
    /// (`*.ws.N.0`, `*.http.N.0`), several files merged by receive time.
    Cryptofeed,
    /// The raw records of a tickwire recording (`serve --record-raw`, `import --keep-raw`):
    /// normalize it again, e.g. after a parser fix.
    Recording,
}

impl ImportFormat {
    fn name(self) -> &'static str {
        match self {
            ImportFormat::Hftbacktest => "hftbacktest",
            ImportFormat::Cryptofeed => "cryptofeed",
            ImportFormat::Recording => "recording",
        }
    }
}

/// The formats, for error messages.
const FORMATS: &str = "hftbacktest (`<ns> <frame>` lines), cryptofeed (`<secs>: <frame>` lines), \
                       recording (a tickwire recording directory with raw records)";

/// Options of `tickwire import`.
#[derive(Debug, Clone)]
pub struct ImportArgs {
    /// The venue whose dialect the captures hold (required for capture formats; for
    /// `recording`, only this venue's raw records are used).
    pub venue: Option<Venue>,
    /// The input format.
    pub format: ImportFormat,
    /// Capture files (merged by receive time), or one recording directory.
    pub inputs: Vec<PathBuf>,
    /// The new recording's directory (must hold no recording yet).
    pub out: PathBuf,
    /// Also write the input messages as raw records, so the new recording can itself be
    /// normalized again.
    pub keep_raw: bool,
    /// Only the first this-much of the input, by receive time.
    pub first: Option<Duration>,
    /// Fail (after writing) if any message could not be normalized.
    pub strict: bool,
    /// Draw a progress bar on stderr (when it is a terminal).
    pub progress: bool,
    /// How the recording is cut into blocks and segments.
    pub options: WriterOptions,
}

impl ImportArgs {
    /// Defaults for everything but what to read and where to write.
    pub fn new(
        venue: Option<Venue>,
        format: ImportFormat,
        inputs: Vec<PathBuf>,
        out: PathBuf,
    ) -> ImportArgs {
        ImportArgs {
            venue,
            format,
            inputs,
            out,
            keep_raw: false,
            first: None,
            strict: false,
            progress: false,
            options: WriterOptions::default(),
        }
    }
}

/// What an import did.
#[derive(Debug, Clone, Default)]
pub struct ImportSummary {
    /// Input messages given to normalizers (venue messages, snapshots, feed events).
    pub messages: u64,
    /// Frames written.
    pub frames: u64,
    /// Frames written per kind (`trade`, `quote`, `book_delta`...).
    pub frames_by_kind: BTreeMap<&'static str, u64>,
    /// The normalizers' counters per outcome (`trade`, `ignored:kline`, `error:json`...).
    pub outcomes: BTreeMap<String, u64>,
    /// Messages that could not be normalized (skipped), and raw data that could not be read.
    pub errors: u64,
    /// Raw records written (with `keep_raw`).
    pub raw: u64,
    /// Time spent reading, normalizing and writing.
    pub elapsed: Duration,
}

impl ImportSummary {
    /// Input messages per second.
    pub fn rate(&self) -> f64 {
        self.messages as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// The summary as printed at the end of `tickwire import`.
    pub fn render(&self, out: &Path) -> String {
        let mut s = format!(
            "imported {} messages into {} frames in {:.2?} ({:.0} messages/s): {}\n",
            self.messages,
            self.frames,
            self.elapsed,
            self.rate(),
            out.display()
        );
        s.push_str("  frames by kind:\n");
        for (kind, n) in &self.frames_by_kind {
            s.push_str(&format!("    {kind:<22} {n}\n"));
        }
        s.push_str(
            "  messages by type (the normalizers' counts; ignored:* are not market data):\n",
        );
        for (kind, n) in &self.outcomes {
            s.push_str(&format!("    {kind:<22} {n}\n"));
        }
        if self.raw > 0 {
            s.push_str(&format!("  raw records kept: {}\n", self.raw));
        }
        s.push_str(&format!("  errors (skipped): {}\n", self.errors));
        s
    }
}

/// The name of a frame kind, as the JSON protocol spells it.
pub fn kind_name(body: &Body) -> &'static str {
    match body {
        Body::Trade(_) => "trade",
        Body::Quote(_) => "quote",
        Body::BookDelta(_) => "book_delta",
        Body::BookSnapshot(_) => "book_snapshot",
        Body::Status(_) => "status",
        Body::Heartbeat => "heartbeat",
        Body::Definition(_) => "definition",
        Body::TradeSummary(_) => "trade_summary",
    }
}

/// What a capture record asks of a normalizer, the way `tickwire normalize` and `import`
/// read captures: a received frame is a venue message; an HTTP body is a REST snapshot for
/// the `symbol=` of its URL (without one, a message the normalizer ties to the book waiting
/// for it); a reopened connection is a disconnect. `connects` counts the connections opened.
pub fn capture_event<'r>(record: &'r Record, connects: &mut u64) -> Option<RawEvent<'r>> {
    match &record.kind {
        RecordKind::Received => Some(RawEvent::Message(&record.payload)),
        RecordKind::Http { .. } => Some(match record.url_symbol() {
            Some(symbol) => RawEvent::Snapshot {
                symbol,
                body: &record.payload,
            },
            None => RawEvent::Message(&record.payload),
        }),
        RecordKind::Connect { .. } => {
            *connects += 1;
            (*connects > 1).then_some(RawEvent::Disconnect {
                reason: "capture: the connection was reopened",
            })
        }
        RecordKind::Sent { .. } => None,
    }
}

/// Gives `event` to `normalizer` at `ts`, its frames and actions into `out`.
pub fn normalize_event(
    normalizer: &mut dyn Normalizer,
    ts: u64,
    event: &RawEvent<'_>,
    out: &mut Output,
) -> Result<(), NormalizeError> {
    match *event {
        RawEvent::Message(bytes) => normalizer.on_message(bytes, ts, out),
        RawEvent::Connect { .. } => {
            normalizer.on_connect(ts, out);
            Ok(())
        }
        RawEvent::Snapshot { symbol, body } => normalizer.on_snapshot(symbol, body, ts, out),
        RawEvent::Stale { detail } => {
            normalizer.on_stale(ts, detail, out);
            Ok(())
        }
        RawEvent::Disconnect { reason } => {
            normalizer.on_disconnect(ts, reason, out);
            Ok(())
        }
        RawEvent::Gap { lost } => {
            // The book cannot be trusted past a hole: flag it as a lost connection does.
            let reason = format!("{lost} raw venue messages were lost here while recording");
            normalizer.on_disconnect(ts, &reason, out);
            Ok(())
        }
    }
}

/// Runs the import; prints errors as they are found (the first ones) to stderr, and returns
/// the summary.
pub fn run(args: &ImportArgs) -> anyhow::Result<ImportSummary> {
    if args.inputs.is_empty() {
        bail!("give at least one input ({FORMATS})");
    }
    let started = Instant::now();
    let mut options = args.options.clone();
    options.keep_raw = args.keep_raw;
    match args.format {
        ImportFormat::Recording => import_recording(args, options, started),
        _ => import_captures(args, options, started),
    }
}

/// The pipeline: normalizers (one per venue), per-stream seq, the writer, and counts.
struct Importer {
    normalizers: HashMap<u16, Box<dyn Normalizer>>,
    out: Output,
    seqs: StreamSeqs,
    writer: RecordingWriter,
    scratch: Vec<u8>,
    summary: ImportSummary,
    keep_raw: bool,
    shown_errors: u64,
}

/// Errors printed one per line before they are only counted.
const SHOWN_ERRORS: u64 = 20;

impl Importer {
    fn new(args: &ImportArgs, options: WriterOptions) -> anyhow::Result<Importer> {
        let writer = RecordingWriter::create(&args.out, options, &[])
            .with_context(|| format!("starting the recording in {} (--out)", args.out.display()))?;
        Ok(Importer {
            normalizers: HashMap::new(),
            out: Output::new(),
            seqs: StreamSeqs::default(),
            writer,
            scratch: Vec::new(),
            summary: ImportSummary::default(),
            keep_raw: args.keep_raw,
            shown_errors: 0,
        })
    }

    fn error(&mut self, what: impl FnOnce() -> String) {
        self.summary.errors += 1;
        self.shown_errors += 1;
        if self.shown_errors <= SHOWN_ERRORS {
            eprintln!("{}", what());
        } else if self.shown_errors == SHOWN_ERRORS + 1 {
            eprintln!("(further errors are only counted)");
        }
    }

    /// One input event of `venue` at `ts`: kept as a raw record if asked, normalized, and the
    /// frames written with their seq and `ts_publish = ts_recv`. `origin` names the input.
    fn feed(
        &mut self,
        venue: Venue,
        ts: u64,
        event: &RawEvent<'_>,
        origin: &dyn Fn() -> String,
    ) -> anyhow::Result<()> {
        if self.keep_raw {
            self.writer
                .append_raw_event(venue.id(), ts, event, &mut self.scratch)
                .context("writing a raw record")?;
            self.summary.raw += 1;
        }
        let normalizer = match self.normalizers.entry(venue.id()) {
            std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::hash_map::Entry::Vacant(e) => e.insert(
                normalizer_for(venue, event).map_err(|m| anyhow::anyhow!("{}: {m}", origin()))?,
            ),
        };
        self.out.clear();
        self.summary.messages += 1;
        let result = normalize_event(normalizer.as_mut(), ts, event, &mut self.out);
        if let Err(e) = result {
            self.error(|| format!("{}: skipped: {e}", origin()));
        }
        for mut frame in self.out.frames.drain(..) {
            self.seqs.assign(&mut frame);
            frame.ts_publish = frame.ts_recv;
            self.writer
                .append_frame(&frame)
                .context("writing a frame")?;
            self.summary.frames += 1;
            *self
                .summary
                .frames_by_kind
                .entry(kind_name(&frame.body))
                .or_default() += 1;
        }
        Ok(())
    }

    fn finish(mut self, started: Instant) -> anyhow::Result<ImportSummary> {
        let dir = self.writer.dir().to_path_buf();
        self.writer
            .close()
            .with_context(|| format!("closing the recording in {}", dir.display()))?;
        let mut venues: Vec<_> = self.normalizers.into_iter().collect();
        venues.sort_by_key(|(id, _)| *id);
        for (_, n) in &venues {
            for (kind, count) in n.stats().by_kind() {
                let key = if venues.len() > 1 {
                    format!("{}:{kind}", n.venue())
                } else {
                    kind.to_string()
                };
                *self.summary.outcomes.entry(key).or_default() += count;
            }
        }
        self.summary.elapsed = started.elapsed();
        Ok(self.summary)
    }
}

/// The normalizer for `venue`'s data starting with `first`: the live feed's own (built for
/// the symbols it was configured for, with the venue's defaults otherwise) when the data
/// starts with a recorded `connect`, else one that learns the symbols from the data.
fn normalizer_for(venue: Venue, first: &RawEvent<'_>) -> Result<Box<dyn Normalizer>, String> {
    match first {
        RawEvent::Connect { symbols } if !symbols.is_empty() => {
            let symbols = symbols.split(',').map(str::to_string).collect();
            venues::spec(venue, symbols, &Endpoints::default())
                .map(|spec| spec.new_normalizer())
                .map_err(|e| format!("the recorded feed configuration: {e}"))
        }
        _ => Ok(venues::normalizer(venue)),
    }
}

fn progress_bar(show: bool, len: u64, what: &str) -> ProgressBar {
    if !show || !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(len);
    if let Ok(style) = ProgressStyle::with_template(&format!(
        "{what} {{bar:40}} {{pos}}/{{len}} messages ({{per_sec}}, {{eta}} left)"
    )) {
        bar.set_style(style);
    }
    bar
}

/// Capture files: read and checked whole first (so a wrong format writes nothing), merged by
/// receive time, then normalized.
fn import_captures(
    args: &ImportArgs,
    options: WriterOptions,
    started: Instant,
) -> anyhow::Result<ImportSummary> {
    let Some(venue) = args.venue else {
        bail!(
            "--format {} needs --venue (one of: {})",
            args.format.name(),
            Venue::ALL.map(|v| v.name()).join(", ")
        );
    };
    let names: Vec<String> = args
        .inputs
        .iter()
        .map(|f| f.display().to_string())
        .collect();
    let mut all: Vec<(usize, u64, Record)> = Vec::new();
    for (k, path) in args.inputs.iter().enumerate() {
        all.extend(
            read_capture(path, args.format)?
                .into_iter()
                .map(|(ts, r)| (k, ts, r)),
        );
    }
    // Stable: lines with equal times keep their file order, and files their command-line order.
    all.sort_by_key(|(_, ts, _)| *ts);
    if let (Some(first), Some((_, t0, _))) = (args.first, all.first()) {
        let end = t0.saturating_add(u64::try_from(first.as_nanos()).unwrap_or(u64::MAX));
        all.retain(|(_, ts, _)| *ts < end);
    }
    let mut imp = Importer::new(args, options)?;
    let bar = progress_bar(args.progress, all.len() as u64, "importing");
    let mut connects = vec![0u64; args.inputs.len()];
    for (n, (file, ts, record)) in all.iter().enumerate() {
        if let Some(event) = capture_event(record, &mut connects[*file]) {
            let origin = || format!("{}:{}", names[*file], record.line);
            imp.feed(venue, *ts, &event, &origin)?;
        }
        if n % 1024 == 0 {
            bar.set_position(n as u64);
        }
    }
    bar.finish_and_clear();
    finish(imp, args, started)
}

fn finish(imp: Importer, args: &ImportArgs, started: Instant) -> anyhow::Result<ImportSummary> {
    let summary = imp.finish(started)?;
    if summary.frames == 0 {
        eprintln!(
            "warning: no frame came out of the input: is it {} data? (--venue)",
            args.venue.map_or("this venue's", |v| v.name())
        );
    }
    if args.strict && summary.errors > 0 {
        let what = if summary.errors == 1 {
            "message"
        } else {
            "messages"
        };
        eprint!("{}", summary.render(&args.out));
        bail!(
            "{} {what} could not be normalized (--strict); the recording in {} holds the rest",
            summary.errors,
            args.out.display()
        );
    }
    Ok(summary)
}

/// One capture file's records with their receive times, every line checked against
/// `format`. A line without a time (hftbacktest's REST snapshot) takes the time of the line
/// before it (the first timed line's, at the start of the file).
fn read_capture(path: &Path, format: ImportFormat) -> anyhow::Result<Vec<(u64, Record)>> {
    if path.is_dir() {
        bail!(
            "{} is a directory, not a {} capture file (a tickwire recording? use --format recording)",
            path.display(),
            format.name()
        );
    }
    let reader = CaptureReader::open(path)?;
    let mut records = Vec::new();
    let mut first_ts = None;
    for r in reader {
        let r = r.map_err(|e| {
            anyhow::anyhow!(
                "{e}\n--format {} expects {}; formats: {FORMATS}",
                format.name(),
                expected(format)
            )
        })?;
        let fits = match format {
            ImportFormat::Hftbacktest => matches!(r.form, LineForm::Hftbacktest | LineForm::Bare),
            _ => r.form == LineForm::Cryptofeed,
        };
        if !fits {
            let other = match r.form {
                LineForm::Hftbacktest => " (an hftbacktest capture? use --format hftbacktest)",
                LineForm::Cryptofeed => " (a cryptofeed capture? use --format cryptofeed)",
                LineForm::Bare => "",
            };
            bail!(
                "{}:{}: --format {} expects {}, but this is {}{other}",
                path.display(),
                r.line,
                format.name(),
                expected(format),
                r.form.describe()
            );
        }
        if first_ts.is_none() {
            first_ts = r.ts_ns;
        }
        records.push(r);
    }
    let Some(mut last) = first_ts else {
        bail!(
            "{}: no line with a receive time: --format {} expects {}; formats: {FORMATS}",
            path.display(),
            format.name(),
            expected(format)
        );
    };
    Ok(records
        .into_iter()
        .map(|r| {
            last = r.ts_ns.unwrap_or(last);
            (last, r)
        })
        .collect())
}

fn expected(format: ImportFormat) -> &'static str {
    match format {
        ImportFormat::Hftbacktest => {
            "hftbacktest lines `<ns> <frame>` (and bare JSON REST snapshot lines)"
        }
        ImportFormat::Cryptofeed => {
            "cryptofeed lines `<secs>: <frame>` and `<url> <dir> <secs>[: <payload>]`"
        }
        ImportFormat::Recording => "a tickwire recording directory",
    }
}

/// A recording's raw records, in recording order, through the normalizers again.
fn import_recording(
    args: &ImportArgs,
    options: WriterOptions,
    started: Instant,
) -> anyhow::Result<ImportSummary> {
    let [dir] = args.inputs.as_slice() else {
        bail!("--format recording reads one recording directory at a time");
    };
    if !dir.is_dir() {
        bail!(
            "{}: not a recording directory; --format recording expects one; formats: {FORMATS}",
            dir.display()
        );
    }
    let rec = Recording::open(dir)
        .with_context(|| format!("opening the recording in {}", dir.display()))?;
    let total: u64 = rec.segments().map(|s| s.raw_frames).sum();
    if total == 0 {
        bail!(
            "{} holds no raw records: record with `tickwire serve --record DIR --record-raw` \
             (or `tickwire import ... --keep-raw`) to be able to normalize it again",
            dir.display()
        );
    }
    if dir.canonicalize().ok() == args.out.canonicalize().ok() {
        bail!("--out must be a new directory, not the recording being read");
    }
    let mut imp = Importer::new(args, options)?;
    let bar = progress_bar(args.progress, total, "re-normalizing");
    let name = dir.display().to_string();
    let mut skipped_venue = 0u64;
    let mut last_ts = 0u64;
    let mut end = None;
    let first = args
        .first
        .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
    for (n, raw) in rec.raw_frames(TimeRange::ALL).enumerate() {
        if n % 1024 == 0 {
            bar.set_position(n as u64);
        }
        let raw = match raw {
            Ok(raw) => raw,
            Err(corrupt) => {
                imp.error(|| format!("{name}: {corrupt}; its raw records are skipped"));
                // Messages are missing: flag the books as a lost connection does.
                let ids: Vec<u16> = imp.normalizers.keys().copied().collect();
                let event = RawEvent::Disconnect {
                    reason: "recording: a damaged block of raw records was skipped here",
                };
                for venue in ids.into_iter().filter_map(Venue::from_id) {
                    imp.feed(venue, last_ts, &event, &|| name.clone())?;
                }
                continue;
            }
        };
        let (venue_id, event) = match RawEvent::decode(&raw) {
            Ok(x) => x,
            Err(e) => {
                imp.error(|| format!("{name}: raw record at {}: {e}", raw.ts_recv));
                continue;
            }
        };
        let Some(venue) = Venue::from_id(venue_id) else {
            imp.error(|| {
                format!(
                    "{name}: raw record at {}: unknown venue id {venue_id}",
                    raw.ts_recv
                )
            });
            continue;
        };
        if args.venue.is_some_and(|v| v != venue) {
            skipped_venue += 1;
            continue;
        }
        if let Some(first) = first {
            let end = *end.get_or_insert(raw.ts_recv.saturating_add(first));
            if raw.ts_recv >= end {
                continue;
            }
        }
        let origin = || format!("{name}: raw record at ts_recv {}", raw.ts_recv);
        last_ts = raw.ts_recv;
        imp.feed(venue, raw.ts_recv, &event, &origin)?;
    }
    bar.finish_and_clear();
    if skipped_venue > 0 {
        eprintln!("{skipped_venue} raw records of other venues than --venue were skipped");
    }
    finish(imp, args, started)
}
