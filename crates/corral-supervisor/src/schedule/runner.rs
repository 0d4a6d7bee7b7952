//! The timer of one armed service: a tokio task that sleeps until the
//! next tick and then starts a run (`schedule`, `every`) or restarts the
//! service's instances one at a time (`cron_restart`).
//!
//! A cron tick is a wall-clock time: the task sleeps at most
//! [`WAKE_AT_MOST`] at once and looks at the clock again, so a clock set
//! forward or back (NTP, a resumed laptop) moves the tick with it. A tick
//! missed while the daemon was busy is not caught up in a burst: the
//! next one is after now. `every` keeps its own pace on the monotonic
//! clock. Everything the task does goes through the supervisor, which
//! refuses it once the schedule is disarmed (`token`), so a `corral stop`
//! racing a tick never sees a run start after it.

use super::{on_tick, ScheduleSpec, Tick, When};
use crate::config::ServiceSpec;
use crate::event::{Event, EventKind};
use crate::supervisor::WeakSupervisor;
use chrono::{DateTime, Utc};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The longest sleep between two looks at the wall clock.
const WAKE_AT_MOST: Duration = Duration::from_secs(30);
/// How often the slots are looked at while ticks wait (`on_overlap = "queue"`).
const QUEUE_LOOK: Duration = Duration::from_millis(250);

static TOKENS: AtomicU64 = AtomicU64::new(1);

/// An armed timer or file watcher; dropping it ends its task.
pub(crate) struct Armed {
    /// What the supervisor checks before acting for this task.
    pub token: u64,
    next: Option<Arc<Mutex<Option<DateTime<Utc>>>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Armed {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Armed {
    /// The next tick, RFC 3339 in UTC.
    pub fn next_run(&self) -> Option<String> {
        let next = *self.next.as_ref()?.lock().unwrap_or_else(|p| p.into_inner());
        next.map(|t| crate::time::format_millis(t.timestamp_millis()))
    }
}

/// Starts what `spec` asks for while the service is started: the timer of
/// its `schedule`, `every` or `cron_restart`, and its `watch`. `skip`:
/// folders a watch never reacts to (the daemon's own).
pub(crate) fn arm(sup: WeakSupervisor, spec: &Arc<ServiceSpec>, skip: Vec<PathBuf>) -> Vec<Armed> {
    let mut out = Vec::new();
    let name = spec.name.clone();
    let token = TOKENS.fetch_add(1, Ordering::Relaxed);
    let next = Arc::new(Mutex::new(None));
    let timer = match (&spec.schedule, &spec.cron_restart) {
        (Some(s), _) => Some(tokio::spawn(runs(sup.clone(), name.clone(), s.clone(), token, next.clone()))),
        (None, Some(c)) => {
            Some(tokio::spawn(restarts(sup.clone(), name.clone(), When::Cron(c.clone()), token, next.clone())))
        }
        (None, None) => None,
    };
    out.extend(timer.map(|task| Armed { token, next: Some(next), task }));
    if let Some(w) = &spec.watch {
        let token = TOKENS.fetch_add(1, Ordering::Relaxed);
        let task = crate::watch_restart::arm(sup, name, w.clone(), skip, token);
        out.extend(task.map(|task| Armed { token, next: None, task }));
    }
    out
}

/// Sleeps until the next tick of `when`; `false` when there is none.
async fn until_tick(when: &When, every_next: &mut tokio::time::Instant, cell: &Mutex<Option<DateTime<Utc>>>) -> bool {
    match when {
        When::Every(period) => {
            let now = tokio::time::Instant::now();
            if *every_next <= now {
                // Late (a busy daemon): the pace restarts from now.
                *every_next = now + *period;
            }
            let wall = Utc::now() + chrono::Duration::from_std(*every_next - now).unwrap_or_default();
            *cell.lock().unwrap_or_else(|p| p.into_inner()) = Some(wall);
            tokio::time::sleep_until(*every_next).await;
            *every_next += *period;
            true
        }
        When::Cron(c) => {
            let Some(wall) = c.next_after(Utc::now()) else {
                *cell.lock().unwrap_or_else(|p| p.into_inner()) = None;
                return false;
            };
            *cell.lock().unwrap_or_else(|p| p.into_inner()) = Some(wall);
            loop {
                let left = (wall - Utc::now()).to_std().unwrap_or_default();
                if left.is_zero() {
                    return true;
                }
                tokio::time::sleep(left.min(WAKE_AT_MOST)).await;
            }
        }
    }
}

fn note(sup: &crate::supervisor::Supervisor, name: &str, slot: usize, reason: String) {
    let mut e = Event::daemon(reason);
    e.service = name.to_string();
    e.instance = slot as u32;
    e.kind = EventKind::Schedule;
    sup.emit(e);
}

/// `schedule` / `every`: a run at each tick.
async fn runs(
    sup: WeakSupervisor,
    name: String,
    spec: ScheduleSpec,
    token: u64,
    cell: Arc<Mutex<Option<DateTime<Utc>>>>,
) {
    let period = match spec.when {
        When::Every(p) => p,
        When::Cron(_) => Duration::ZERO,
    };
    let mut every_next = tokio::time::Instant::now() + period;
    let slots = spec.max_concurrent as usize;
    let mut runs = Runs { name: &name, token, started: vec![0; slots], count: 0 };
    let mut queued = 0usize;
    loop {
        let tick = until_tick(&spec.when, &mut every_next, &cell);
        tokio::pin!(tick);
        // While ticks wait for a slot, look at the slots until the tick.
        let ticked = loop {
            if queued == 0 {
                break tick.as_mut().await;
            }
            tokio::select! {
                t = tick.as_mut() => break t,
                _ = tokio::time::sleep(QUEUE_LOOK) => {
                    let Some(sup) = sup.upgrade() else { return };
                    if let Some(free) = sup.busy_slots(&name).iter().position(|b| !b) {
                        if runs.start(&sup, free, "queued run started") {
                            queued -= 1;
                        }
                    }
                }
            }
        };
        if !ticked {
            return;
        }
        let Some(strong) = sup.upgrade() else { return };
        let busy = strong.busy_slots(&name);
        if busy.len() != slots {
            return;
        }
        match on_tick(spec.on_overlap, &busy, &runs.started, queued) {
            Tick::Start(i) => {
                runs.start(&strong, i, "scheduled run started");
            }
            Tick::Skip => {
                let why = format!(
                    "tick skipped: {slots} run(s) still going (max_concurrent = {slots}, on_overlap = \"{}\")",
                    spec.on_overlap.as_str()
                );
                note(&strong, &name, 0, why);
            }
            Tick::Queue => {
                queued += 1;
                note(&strong, &name, 0, format!("tick queued: {slots} run(s) still going ({queued} waiting)"));
            }
            Tick::Replace(i) => {
                note(&strong, &name, i, "tick replaces the oldest run (on_overlap = \"replace\")".into());
                let Some(mut rx) = strong.stop_slot(&name, i, token) else { continue };
                // Not held while the run stops: the daemon may be shutting down.
                drop(strong);
                let _ = rx.wait_for(|s| s.state.is_down()).await;
                let Some(strong) = sup.upgrade() else { return };
                runs.start(&strong, i, "scheduled run started (replacing the previous one)");
            }
        }
    }
}

/// The runs a schedule started.
struct Runs<'a> {
    name: &'a str,
    token: u64,
    /// When each slot's run began, in starts counted: the oldest is replaced.
    started: Vec<u64>,
    count: u64,
}

impl Runs<'_> {
    fn start(&mut self, sup: &crate::supervisor::Supervisor, slot: usize, why: &str) -> bool {
        if !sup.start_slot(self.name, slot, self.token) {
            return false;
        }
        self.count += 1;
        self.started[slot] = self.count;
        note(sup, self.name, slot, why.to_string());
        true
    }
}

/// `cron_restart`: at each tick, the service restarts ([`restart_slots`]).
async fn restarts(sup: WeakSupervisor, name: String, when: When, token: u64, cell: Arc<Mutex<Option<DateTime<Utc>>>>) {
    let mut unused = tokio::time::Instant::now();
    loop {
        if !until_tick(&when, &mut unused, &cell).await {
            return;
        }
        if let Some(strong) = sup.upgrade() {
            note(&strong, &name, 0, "cron_restart: restarting".into());
        }
        restart_slots(&sup, &name, token).await;
    }
}

/// Each instance of `name` is stopped gracefully and started again, one
/// after the other, so a service with several instances keeps serving
/// through it; the next waits until the one before runs again (or gave
/// up), at most `ROLL_WAIT`.
pub(crate) async fn restart_slots(sup: &WeakSupervisor, name: &str, token: u64) {
    let Some(n) = sup.upgrade().map(|s| s.busy_slots(name).len()) else { return };
    for i in 0..n {
        let Some(mut rx) = sup.upgrade().and_then(|s| s.stop_slot(name, i, token)) else { return };
        let _ = rx.wait_for(|s| s.state.is_down()).await;
        if !sup.upgrade().is_some_and(|s| s.start_slot(name, i, token)) {
            return;
        }
        let up = rx
            .wait_for(|s| s.state == crate::State::Running || (s.state.is_down() && s.state != crate::State::Stopped));
        let _ = tokio::time::timeout(crate::supervisor::ROLL_WAIT, up).await;
    }
}
