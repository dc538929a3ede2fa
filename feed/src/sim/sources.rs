//! The simulator's sans-IO core: the symbol catalog and every source, merged in simulated
//! time. The server asks it what is due next, steps it, and renders what it emits.

use std::sync::Arc;

use anyhow::{Context, bail};
use serde_json::{Value, json};

use super::SimSource;
use super::capture_source::{CapturePlayer, load_tape};
use super::market::{DepthSnapshot, Emitted};
use super::stream::{Catalog, SymbolId, SymbolSpec};
use super::synthetic::{STEP, SyntheticSource, TICK};
use crate::capture::CaptureReader;

enum Source {
    Capture {
        name: String,
        player: Box<CapturePlayer>,
    },
    Synthetic {
        name: String,
        src: Box<SyntheticSource>,
        symbols: Vec<SymbolId>,
    },
}

impl Source {
    fn next_due(&self) -> Option<u64> {
        match self {
            Source::Capture { player, .. } => player.next_due(),
            Source::Synthetic { src, .. } => src.next_due(),
        }
    }
}

/// Every source of a simulation, merged by due time (see the module docs).
pub struct SimCore {
    catalog: Arc<Catalog>,
    sources: Vec<Source>,
    events: [u64; 5],
    steps: u64,
}

impl SimCore {
    /// Builds the core: loads captures (blocking file I/O and parsing) and seeds synthetic
    /// sources. Errors name the source and say what to fix.
    pub fn build(sources: &[SimSource], looping: bool) -> anyhow::Result<SimCore> {
        if sources.is_empty() {
            bail!(
                "the simulator has no sources: give it capture files, an in-memory capture or a synthetic market"
            );
        }
        let mut catalog = Catalog::new();
        enum Pending {
            Capture(String, CapturePlayerParts),
            Synthetic(String, Vec<(SymbolId, SymbolSpec)>, f64, u64),
        }
        type CapturePlayerParts = (super::capture_source::Tape, Vec<SymbolId>);
        let mut pending = Vec::new();
        for (n, source) in sources.iter().enumerate() {
            match source {
                SimSource::CaptureFiles(paths) => {
                    if paths.is_empty() {
                        bail!("source {n}: CaptureFiles needs at least one file");
                    }
                    let mut readers = Vec::new();
                    for p in paths {
                        let reader = CaptureReader::open(p).with_context(|| {
                            format!("source {n}: opening capture {}", p.display())
                        })?;
                        readers.push((p.display().to_string(), reader));
                    }
                    let name = paths
                        .iter()
                        .map(|p| p.display().to_string())
                        .collect::<Vec<_>>()
                        .join(" + ");
                    let tape = load_tape(readers).with_context(|| format!("source {n}: {name}"))?;
                    let ids = add_tape_symbols(&mut catalog, &tape)
                        .with_context(|| format!("source {n}: {name}"))?;
                    pending.push(Pending::Capture(name, (tape, ids)));
                }
                SimSource::CaptureBytes { name, bytes } => {
                    let reader = CaptureReader::from_bytes(name, bytes);
                    let tape = load_tape(vec![(name.clone(), reader)])
                        .with_context(|| format!("source {n}: {name}"))?;
                    let ids = add_tape_symbols(&mut catalog, &tape)
                        .with_context(|| format!("source {n}: {name}"))?;
                    pending.push(Pending::Capture(name.clone(), (tape, ids)));
                }
                SimSource::Synthetic {
                    symbols,
                    rate,
                    seed,
                } => {
                    if !(rate.is_finite() && *rate > 0.0) {
                        bail!(
                            "source {n}: synthetic rate must be a finite number of events per second above 0, not {rate}"
                        );
                    }
                    if symbols.is_empty() {
                        bail!("source {n}: a synthetic source needs at least one symbol");
                    }
                    let mut specs = Vec::new();
                    for s in symbols {
                        let spec = SymbolSpec::new(s, TICK, STEP);
                        let id = catalog
                            .add(spec.clone())
                            .with_context(|| format!("source {n} (synthetic)"))?;
                        specs.push((id, spec));
                    }
                    pending.push(Pending::Synthetic(
                        format!("synthetic {}", symbols.join(",")),
                        specs,
                        *rate,
                        *seed,
                    ));
                }
            }
        }
        let sources = pending
            .into_iter()
            .map(|p| match p {
                Pending::Capture(name, (tape, ids)) => Source::Capture {
                    name,
                    player: Box::new(CapturePlayer::new(tape, &ids, looping)),
                },
                Pending::Synthetic(name, specs, rate, seed) => Source::Synthetic {
                    name,
                    symbols: specs.iter().map(|(id, _)| *id).collect(),
                    src: Box::new(SyntheticSource::new(&specs, rate, seed)),
                },
            })
            .collect();
        Ok(SimCore {
            catalog: Arc::new(catalog),
            sources,
            events: [0; 5],
            steps: 0,
        })
    }

    /// The symbols.
    pub fn catalog(&self) -> &Arc<Catalog> {
        &self.catalog
    }

    /// When the next item of any source is due, in simulated ns; `None` when every source
    /// has finished (captures without looping).
    pub fn next_due(&self) -> Option<u64> {
        self.sources.iter().filter_map(Source::next_due).min()
    }

    /// Processes the earliest due item of all sources (ties: the first source) and appends
    /// what it emits to `out`. Returns false if nothing was due (all finished).
    pub fn step(&mut self, out: &mut Vec<Emitted>) -> bool {
        let Some((i, _)) = self
            .sources
            .iter()
            .enumerate()
            .filter_map(|(i, s)| s.next_due().map(|d| (i, d)))
            .min_by_key(|&(i, d)| (d, i))
        else {
            return false;
        };
        let start = out.len();
        match &mut self.sources[i] {
            Source::Capture { player, .. } => player.step(out),
            Source::Synthetic { src, .. } => src.step(out),
        }
        for e in &out[start..] {
            self.events[e.key.kind.index()] += 1;
        }
        self.steps += 1;
        true
    }

    /// Items processed so far.
    pub fn steps(&self) -> u64 {
        self.steps
    }

    /// Events emitted so far per stream kind (indexed by
    /// [`super::stream::StreamKind::index`]).
    pub fn events(&self) -> [u64; 5] {
        self.events
    }

    /// The REST snapshot of `symbol` (top `limit` levels a side), or `None` while its book is
    /// not known (a capture before its REST snapshot record).
    pub fn snapshot(&self, symbol: SymbolId, limit: usize) -> Option<DepthSnapshot> {
        self.sources.iter().find_map(|s| match s {
            Source::Capture { player, .. } if player.drives(symbol) => {
                Some(player.snapshot(symbol, limit))
            }
            Source::Synthetic { src, symbols, .. } if symbols.contains(&symbol) => {
                Some(src.snapshot(symbol, limit))
            }
            _ => None,
        })?
    }

    /// A counter that changes whenever some symbol's book becomes known.
    pub fn sync_changes(&self) -> u64 {
        self.sources
            .iter()
            .map(|s| match s {
                Source::Capture { player, .. } => player.sync_changes(),
                Source::Synthetic { .. } => 0,
            })
            .sum()
    }

    /// Loops completed by the capture sources (the fewest of them; 0 without captures).
    pub fn loops_completed(&self) -> u64 {
        self.sources
            .iter()
            .filter_map(|s| match s {
                Source::Capture { player, .. } => Some(player.loops()),
                Source::Synthetic { .. } => None,
            })
            .min()
            .unwrap_or(0)
    }

    /// Per-source replay position, as JSON for `/sim/status`.
    pub fn positions(&self) -> Value {
        Value::Array(
            self.sources
                .iter()
                .map(|s| match s {
                    Source::Capture { name, player } => {
                        let (position, length) = player.position();
                        json!({
                            "source": name,
                            "kind": "capture",
                            "position": position,
                            "length": length,
                            "loop_start": player.loop_start(),
                            "loops_completed": player.loops(),
                            "id_gaps_closed": player.gaps(),
                            "next_due_ms": player.next_due().map(|d| d / 1_000_000),
                        })
                    }
                    Source::Synthetic { name, src, .. } => json!({
                        "source": name,
                        "kind": "synthetic",
                        "actions": src.actions(),
                        "next_due_ms": src.next_due().map(|d| d / 1_000_000),
                    }),
                })
                .collect(),
        )
    }
}

fn add_tape_symbols(
    catalog: &mut Catalog,
    tape: &super::capture_source::Tape,
) -> anyhow::Result<Vec<SymbolId>> {
    tape.symbols
        .iter()
        .map(|s| Ok(catalog.add(SymbolSpec::new(&s.symbol, s.tick, s.step))?))
        .collect()
}

impl super::dialect::BookSource for SimCore {
    fn book(&self, symbol: SymbolId, limit: usize) -> Option<DepthSnapshot> {
        self.snapshot(symbol, limit)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merges_sources_in_time_order() {
        let sources = vec![
            SimSource::Synthetic {
                symbols: vec!["ETHUSDT".into()],
                rate: 100.0,
                seed: 1,
            },
            SimSource::Synthetic {
                symbols: vec!["SOLUSDT".into(), "BNBUSDT".into()],
                rate: 300.0,
                seed: 2,
            },
        ];
        let mut core = SimCore::build(&sources, true).unwrap();
        assert_eq!(core.catalog().len(), 3);
        let mut out = Vec::new();
        let mut last = 0;
        for _ in 0..2000 {
            let due = core.next_due().unwrap();
            assert!(due >= last);
            last = due;
            let n = out.len();
            assert!(core.step(&mut out));
            assert!(out[n..].iter().all(|e| e.at == due));
        }
        assert!(core.snapshot(2, 10).is_some());
        assert!(core.snapshot(3, 10).is_none());
        assert!(core.events()[super::super::stream::StreamKind::Trade.index()] > 100);
    }

    #[test]
    fn build_errors_say_what_to_fix() {
        let err = |s: Vec<SimSource>| SimCore::build(&s, false).err().unwrap().to_string();
        assert!(err(vec![]).contains("no sources"));
        let e = err(vec![SimSource::Synthetic {
            symbols: vec!["ETHUSDT".into()],
            rate: 0.0,
            seed: 1,
        }]);
        assert!(e.contains("rate"), "{e}");
        let dup = SimCore::build(
            &[
                SimSource::Synthetic {
                    symbols: vec!["ETHUSDT".into()],
                    rate: 1.0,
                    seed: 1,
                },
                SimSource::Synthetic {
                    symbols: vec!["ethusdt".into()],
                    rate: 1.0,
                    seed: 1,
                },
            ],
            false,
        )
        .err()
        .unwrap();
        assert!(
            format!("{dup:#}").contains("more than one source"),
            "{dup:#}"
        );
        let e = SimCore::build(
            &[SimSource::CaptureFiles(vec!["/nonexistent/x.gz".into()])],
            false,
        )
        .err()
        .unwrap();
        assert!(format!("{e:#}").contains("/nonexistent/x.gz"), "{e:#}");
    }
}
