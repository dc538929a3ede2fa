//! The replay task: open-loop pacing of the core's items in wall-clock time.
//!
//! Item i is due at start + (t_i - t_0) / speed (paused time excluded). The runner sends every
//! item that is due, then sleeps on a tokio timer until the next one (or a control change):
//! it never spins. At infinite speed it runs in batches and yields between them so the
//! connections and the REST handlers keep running.

use std::sync::Arc;
use std::time::Instant;

use tracing::info;

use super::fanout::PaceClock;
use super::market::Emitted;
use super::server::{Shared, lock};
use super::sources::SimCore;

/// Most items processed under one lock of the core.
const BATCH: u64 = 512;
/// Events delivered at once at most (bounds the scratch buffer).
const DELIVER_EVERY: usize = 2048;

enum Next {
    Wait,
    Finished,
    At(Instant),
}

pub(crate) async fn run(shared: Arc<Shared>) {
    let mut control = shared.control.subscribe();
    let mut emits: Vec<Emitted> = Vec::with_capacity(DELIVER_EVERY);
    loop {
        let ctl = *control.borrow_and_update();
        if ctl.shutdown {
            return;
        }
        let next = {
            let core = lock(&shared.core);
            let mut clock = lock(&shared.clock);
            let now = Instant::now();
            if ctl.running {
                clock.resume(now);
                match core.next_due().and_then(|v| clock.due(v)) {
                    Some(t) => Next::At(t),
                    None => Next::Finished,
                }
            } else {
                clock.pause(now, core.next_due());
                Next::Wait
            }
        };
        match next {
            Next::Wait => {
                if control.changed().await.is_err() {
                    return;
                }
            }
            Next::Finished => {
                info!("simulator: every source has ended; the replay is over");
                shared.control.send_modify(|c| {
                    c.running = false;
                    c.budget = None;
                    c.finished = true;
                });
            }
            Next::At(t) if t > Instant::now() => {
                tokio::select! {
                    _ = tokio::time::sleep_until(t.into()) => {}
                    r = control.changed() => if r.is_err() { return },
                }
            }
            Next::At(_) => {
                batch(&shared, &mut emits, ctl.budget);
                tokio::task::yield_now().await;
            }
        }
    }
}

/// Queues `emits` to every connection: Binance ones and dialect sessions (with the core's
/// books, which already reflect these events).
fn deliver(shared: &Shared, core: &SimCore, emits: &[Emitted], clock: &PaceClock) {
    let mut registry = lock(&shared.registry);
    registry.deliver(&shared.catalog, emits, |v| clock.wall_ns(v));
    registry.deliver_sessions(&shared.catalog, core, emits, |v| clock.wall_ns(v));
}

/// Processes every due item (at most [`BATCH`], at most `budget`) and delivers the events.
/// The core stays locked until they are queued to the connections, so a REST snapshot never
/// reflects a diff the connections have not been handed.
fn batch(shared: &Shared, emits: &mut Vec<Emitted>, budget: Option<u64>) {
    let mut core = lock(&shared.core);
    let clock = lock(&shared.clock);
    let syncs = core.sync_changes();
    let now = Instant::now();
    let limit = budget.map_or(BATCH, |b| b.min(BATCH));
    let mut steps = 0;
    while steps < limit {
        let due = core.next_due().and_then(|v| clock.due(v));
        if due.is_none_or(|t| t > now) {
            break;
        }
        core.step(emits);
        steps += 1;
        if emits.len() >= DELIVER_EVERY {
            deliver(shared, &core, emits, &clock);
            emits.clear();
        }
    }
    if !emits.is_empty() {
        deliver(shared, &core, emits, &clock);
        emits.clear();
    }
    let synced = core.sync_changes() != syncs;
    drop(clock);
    drop(core);
    if synced {
        shared.books.send_modify(|g| *g += 1);
    }
    if budget.is_some() {
        shared.control.send_modify(|c| {
            if let Some(b) = c.budget {
                let left = b.saturating_sub(steps);
                if left == 0 {
                    c.running = false;
                    c.budget = None;
                } else {
                    c.budget = Some(left);
                }
            }
        });
    }
}
