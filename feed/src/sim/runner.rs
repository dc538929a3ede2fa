//! The replay: open-loop pacing of the core's items in wall-clock time.
//!
//! Item i is due at start + (t_i - t_0) / speed (paused time excluded). The runner sends every
//! item that is due, then sleeps until the next one (or a control change): it never spins.
//! [`run`] is a tokio task on tokio timers (1 ms resolution); at infinite speed it runs in
//! batches and yields between them so the connections and the REST handlers keep running.
//! [`run_precise`] is a thread on the kernel's fine timers, for latency benchmarks.

use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

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

/// What the runner does next, given the control state; keeps the pacing clock in step with it.
fn next(shared: &Shared, running: bool) -> Next {
    let core = lock(&shared.core);
    let mut clock = lock(&shared.clock);
    let now = Instant::now();
    if running {
        clock.resume(now);
        match core.next_due().and_then(|v| clock.due(v)) {
            Some(t) => Next::At(t),
            None => Next::Finished,
        }
    } else {
        clock.pause(now, core.next_due());
        Next::Wait
    }
}

fn finish(shared: &Shared) {
    info!("simulator: every source has ended; the replay is over");
    shared.control.send_modify(|c| {
        c.running = false;
        c.budget = None;
        c.finished = true;
    });
}

/// 1 ns to 100 s at 3 significant digits.
pub(crate) fn lateness_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 100_000_000_000, 3).expect("valid histogram bounds")
}

pub(crate) async fn run(shared: Arc<Shared>) {
    let mut control = shared.control.subscribe();
    let mut emits: Vec<Emitted> = Vec::with_capacity(DELIVER_EVERY);
    loop {
        let ctl = *control.borrow_and_update();
        if ctl.shutdown {
            return;
        }
        match next(&shared, ctl.running) {
            Next::Wait => {
                if control.changed().await.is_err() {
                    return;
                }
            }
            Next::Finished => finish(&shared),
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

/// Longest the precise runner sleeps before looking at the control state again.
const PRECISE_POLL: Duration = Duration::from_millis(5);

/// The replay on a dedicated (blocking-pool) thread: sleeps until each item's time with the
/// kernel's fine timers, so items leave within tens of microseconds of their schedule.
pub(crate) fn run_precise(shared: Arc<Shared>) {
    lower_timer_slack();
    let mut emits: Vec<Emitted> = Vec::with_capacity(DELIVER_EVERY);
    loop {
        let ctl = *shared.control.borrow();
        if ctl.shutdown {
            return;
        }
        match next(&shared, ctl.running) {
            Next::Wait => std::thread::sleep(PRECISE_POLL),
            Next::Finished => finish(&shared),
            Next::At(t) => {
                let now = Instant::now();
                if t > now {
                    std::thread::sleep((t - now).min(PRECISE_POLL));
                } else {
                    batch(&shared, &mut emits, ctl.budget);
                }
            }
        }
    }
}

/// Asks Linux to wake this thread within 1 us of its timers instead of the default 50 us
/// slack; elsewhere a no-op.
fn lower_timer_slack() {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: PR_SET_TIMERSLACK takes one unsigned long argument (the slack in ns) and
        // only changes the calling thread's timer slack; no memory is passed.
        let r = unsafe { libc::prctl(libc::PR_SET_TIMERSLACK, 1_000 as libc::c_ulong) };
        if r != 0 {
            tracing::debug!("simulator: could not lower the timer slack; pacing stays coarser");
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
    let mut late: Vec<u64> = Vec::new();
    while steps < limit {
        let due = core.next_due().and_then(|v| clock.due(v));
        if due.is_none_or(|t| t > now) {
            break;
        }
        if let Some(t) = due {
            late.push(now.saturating_duration_since(t).as_nanos() as u64);
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
    if !late.is_empty() {
        let mut h = lock(&shared.lateness);
        for ns in late {
            h.saturating_record(ns.max(1));
        }
    }
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
