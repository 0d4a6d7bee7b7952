//! A running group's events into its lineage, and into a trace file when
//! one is asked for.
//!
//! Following costs a subscription: where the OS pushes events (Linux with
//! the process-event connector) that is nearly free; elsewhere the group's
//! membership is polled every 50 ms while followed. So the daemon follows
//! a service when lineage is observed, or when its `trace = true` asks.

use super::lineage::{lineage_note, now_ms, Lineage, TraceLine};
use super::trace_file::TraceFile;
use corral::{Event, Group};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// The `run` line that opens a group's trace.
pub fn run_line(group: &Group) -> TraceLine {
    let observed = group.observes_lineage();
    TraceLine::Run {
        leader: group.pid(),
        lineage: observed,
        note: lineage_note(observed),
        backend: group.backend().as_str().to_string(),
        at_ms: now_ms(),
    }
}

/// One event into the lineage and the file. True once the group is empty.
fn take(e: &Event, lineage: Option<&Mutex<Lineage>>, file: &mut Option<TraceFile>) -> bool {
    if *e == Event::Empty {
        return true;
    }
    if let Some(line) = TraceLine::from_event(e, now_ms()) {
        if let Some(f) = file {
            f.write(&line);
        }
        if let Some(l) = lineage {
            l.lock().unwrap_or_else(|p| p.into_inner()).apply(&line.with_argv_cut(KEPT_ARGV_BYTES));
        }
    }
    false
}

/// Bytes of arguments the daemon keeps per process in memory (the trace
/// file has up to [`super::lineage::MAX_ARGV_BYTES`]): a tree shows a
/// line of each command, and a run holds up to
/// [`super::lineage::MAX_RECORDS`] processes.
const KEPT_ARGV_BYTES: usize = 256;

/// Follows `group` on a thread of its own until it is empty (for `corral
/// run`, which has no runtime). The thread returns the trace file, so the
/// caller can tell whether writing it failed.
pub fn follow_blocking(group: &Group, mut file: Option<TraceFile>) -> std::thread::JoinHandle<Option<TraceFile>> {
    // Subscribed before the `run` line is written: once it is in the file,
    // every later fork is in the trace.
    let events = group.events();
    if let Some(f) = &mut file {
        f.write(&run_line(group));
    }
    std::thread::spawn(move || {
        for e in events {
            if take(&e, None, &mut file) {
                break;
            }
        }
        file
    })
}

/// The lineage of every followed instance of the daemon, by service and
/// instance.
#[derive(Default)]
pub struct Registry {
    runs: Mutex<Runs>,
}

/// Each followed run's lineage, by service and instance.
type Runs = HashMap<(String, u32), Arc<Mutex<Lineage>>>;

impl Registry {
    fn lock(&self) -> std::sync::MutexGuard<'_, Runs> {
        self.runs.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Starts following a new run of `service`'s instance `index`: always
    /// when `file` is given, otherwise only when lineage is observed (see
    /// the module's note on cost). Replaces what the last run recorded.
    pub fn follow(self: &Arc<Self>, service: &str, index: u32, group: &Arc<Group>, mut file: Option<TraceFile>) {
        let key = (service.to_string(), index);
        if file.is_none() && !group.observes_lineage() {
            // Not followed, and not subscribed to either: a subscriber
            // that never reads keeps the group's membership polled every
            // 50 ms until an event finds it gone, and a sleeping service
            // has no event to give (100 idle services cost 1.8 s of CPU
            // per 30 s that way). Only a traced service holds events.
            self.lock().remove(&key);
            return;
        }
        let mut events = group.events_async();
        let first = run_line(group);
        let lineage = Arc::new(Mutex::new(Lineage::new()));
        lineage.lock().unwrap_or_else(|p| p.into_inner()).apply(&first);
        if let Some(f) = &mut file {
            f.write(&first);
        }
        self.lock().insert(key.clone(), lineage.clone());
        let me = self.clone();
        tokio::spawn(async move {
            while let Some(e) = events.recv().await {
                if take(&e, Some(&lineage), &mut file) {
                    break;
                }
            }
            if let Some(e) = file.as_ref().and_then(|f| f.failed.as_ref()) {
                eprintln!("corral: {}.{}: the trace stopped: {e}", key.0, key.1);
            }
            // The run is over: its lineage goes, unless a new run took its place.
            let mut runs = me.lock();
            if runs.get(&key).is_some_and(|l| Arc::ptr_eq(l, &lineage)) {
                runs.remove(&key);
            }
        });
    }

    /// What was recorded of the current run, if it is followed.
    pub fn get(&self, service: &str, index: u32) -> Option<Lineage> {
        let l = self.lock().get(&(service.to_string(), index)).cloned()?;
        let l = l.lock().unwrap_or_else(|p| p.into_inner()).clone();
        Some(l)
    }
}

/// The daemon's hook for a new run of an instance: follows it into the
/// registry, and into `log_dir/<service>/<index>.trace.jsonl` when the
/// service says `trace = true`. A trace file that cannot be opened is
/// said once on stderr; the run goes on without it.
pub(crate) fn start(
    registry: &Arc<Registry>,
    logs: &crate::logs::LogHub,
    spec: &crate::config::ServiceSpec,
    index: u32,
    group: &Arc<Group>,
) {
    let file = spec.trace.then(|| {
        let dir = crate::sys::safe_fs::PrivateDir::create_or_check(&logs.service_dir(&spec.name))?;
        TraceFile::append_private(dir, &trace_name(index))
    });
    let file = match file {
        Some(Err(e)) => {
            eprintln!("corral: {}.{index}: cannot open its trace file: {e}; running without it", spec.name);
            None
        }
        Some(Ok(f)) => Some(f),
        None => None,
    };
    registry.follow(&spec.name, index, group, file);
}

/// `<index>.trace.jsonl`, beside the instance's log.
pub fn trace_name(index: u32) -> String {
    format!("{index}.trace.jsonl")
}
