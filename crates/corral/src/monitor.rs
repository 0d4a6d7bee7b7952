//! The platform-neutral life of a group, run on one thread per group.
//!
//! The leader is spawned on this thread on purpose: on Linux the leader's
//! `PR_SET_PDEATHSIG` fires when the *thread* that forked it ends, so the
//! forking thread must live exactly as long as the group.
//!
//! The loop sleeps in the backend's `wait` (kernel notifications where the
//! OS has them) and wakes only for a change, a request, a deadline, or an
//! adaptive CPU-time check.

use crate::sys::{self, Change, SysGroup, Wake};
use crate::{Event, ExitStatus, LimitKind, Outcome, Reason, StopPolicy, Usage};
use std::collections::BTreeSet;
use std::sync::{mpsc, Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// How long teardown may take to reap everything before it counts leftovers.
const TEARDOWN_LIMIT: Duration = Duration::from_secs(5);
/// How often membership is diffed while someone listens for events.
const EVENT_POLL: Duration = Duration::from_millis(50);

pub(crate) struct Config {
    pub timeout: Option<Duration>,
    pub stop: StopPolicy,
    pub cpu_time: Option<Duration>,
    /// How the leader was started, for the outcome (set once it is).
    pub spawn: crate::SpawnPath,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Request {
    Stop,
    Kill,
}

type Subscriber = Box<dyn FnMut(Event) -> bool + Send>;

#[derive(Default)]
struct State {
    outcome: Option<Outcome>,
    request: Option<Request>,
    subscribers: Vec<Subscriber>,
    /// Members last seen, for Started/Exited diffs; only kept while someone listens.
    known: BTreeSet<u32>,
}

/// What the handle and the monitor thread share.
pub(crate) struct Shared {
    state: Mutex<State>,
    done: Condvar,
    waker: Arc<dyn Wake>,
    #[cfg(feature = "tokio")]
    notify: tokio::sync::Notify,
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic in a subscriber must not wedge every other caller.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn request(&self, r: Request) {
        {
            let mut st = self.lock();
            // A kill overrides a pending stop, never the reverse.
            if st.request != Some(Request::Kill) {
                st.request = Some(r);
            }
        }
        self.waker.wake();
    }

    pub(crate) fn outcome(&self) -> Option<Outcome> {
        self.lock().outcome.clone()
    }

    pub(crate) fn wait(&self) -> Outcome {
        let mut st = self.lock();
        loop {
            if let Some(o) = &st.outcome {
                return o.clone();
            }
            st = self.done.wait(st).unwrap_or_else(|p| p.into_inner());
        }
    }

    pub(crate) fn wait_timeout(&self, timeout: Duration) -> Option<Outcome> {
        let end = Instant::now() + timeout;
        let mut st = self.lock();
        loop {
            if let Some(o) = &st.outcome {
                return Some(o.clone());
            }
            let now = Instant::now();
            if now >= end {
                return None;
            }
            st = self.done.wait_timeout(st, end - now).unwrap_or_else(|p| p.into_inner()).0;
        }
    }

    #[cfg(feature = "tokio")]
    pub(crate) async fn wait_async(&self) -> Outcome {
        loop {
            let notified = self.notify.notified();
            tokio::pin!(notified);
            // Register before checking, so a notification in between is kept.
            notified.as_mut().enable();
            if let Some(o) = self.outcome() {
                return o;
            }
            notified.await;
        }
    }

    /// Adds a listener; it first gets the current members as `Started`.
    pub(crate) fn subscribe<S: SysGroup>(&self, mut sub: Subscriber, sys: &S) {
        let mut st = self.lock();
        if let Some(o) = &st.outcome {
            let _ = o;
            sub(Event::Empty);
            return;
        }
        sys.listen();
        if st.subscribers.is_empty() {
            st.known = sys.members().unwrap_or_default().into_iter().collect();
        }
        for &pid in &st.known {
            let (ppid, exe) = sys::describe(pid);
            if !sub(Event::Started { pid, ppid, exe }) {
                return;
            }
        }
        st.subscribers.push(sub);
        drop(st);
        // The monitor shortens its sleep now that someone listens.
        self.waker.wake();
    }

    fn emit(&self, e: Event) {
        let mut st = self.lock();
        st.subscribers.retain_mut(|s| s(e.clone()));
    }
}

pub(crate) struct Started<S> {
    pub pid: u32,
    pub sys: Arc<S>,
    pub shared: Arc<Shared>,
    pub child: sys::Spawned,
}

/// Creates the group and spawns the leader on a new monitor thread, which
/// then runs the group's whole life.
pub(crate) fn start<S: SysGroup>(
    spec: sys::Spec,
    cmd: crate::command::Leader,
    cfg: Config,
) -> crate::Result<Started<S>> {
    let (tx, rx) = mpsc::sync_channel::<crate::Result<Started<S>>>(1);
    let name = format!("corral-{}", spec.id);
    std::thread::Builder::new()
        .name(name)
        .spawn(move || {
            let sys = match S::create(&spec) {
                Ok(s) => Arc::new(s),
                Err(e) => {
                    let _ = tx.send(Err(e));
                    return;
                }
            };
            let child = match sys.spawn_leader(cmd) {
                Ok(c) => c,
                Err(e) => {
                    // Nothing ran; remove the empty container.
                    sys.teardown(Instant::now());
                    let _ = tx.send(Err(e));
                    return;
                }
            };
            let shared = Arc::new(Shared {
                state: Mutex::new(State::default()),
                done: Condvar::new(),
                waker: sys.waker(),
                #[cfg(feature = "tokio")]
                notify: tokio::sync::Notify::new(),
            });
            let pid = child.pid;
            let cfg = Config { spawn: child.path, ..cfg };
            let started = Instant::now();
            let _ = tx.send(Ok(Started { pid, sys: sys.clone(), shared: shared.clone(), child }));
            let outcome = run(&*sys, &shared, &cfg, started, pid);
            shared.emit(Event::Empty);
            let mut st = shared.lock();
            st.outcome = Some(outcome);
            st.subscribers.clear();
            drop(st);
            shared.done.notify_all();
            #[cfg(feature = "tokio")]
            shared.notify.notify_waiters();
        })
        .map_err(|e| crate::Error::os("starting the group's monitor thread", e))?;
    rx.recv().unwrap_or_else(|_| Err(crate::Error::new(crate::ErrorKind::Os, "the group's monitor thread died")))
}

/// CPUs this process may use; read once (it costs a few file reads).
fn cores() -> u32 {
    static CORES: std::sync::OnceLock<u32> = std::sync::OnceLock::new();
    *CORES.get_or_init(|| std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1) as u32)
}

/// The stop sequence in progress.
struct Teardown {
    reason: Option<Reason>,
    /// When the kill phase starts; `None` before a graceful stop began.
    kill_at: Option<Instant>,
    killed: bool,
}

impl Teardown {
    fn graceful<S: SysGroup>(&mut self, sys: &S, stop: &StopPolicy, now: Instant) {
        if self.kill_at.is_some() || self.killed {
            return;
        }
        if stop.grace.is_zero() {
            return self.kill(sys);
        }
        let _ = sys.graceful_stop(stop.signal);
        self.kill_at = Some(now + stop.grace);
    }

    fn kill<S: SysGroup>(&mut self, sys: &S) {
        if !self.killed {
            let _ = sys.kill();
            self.killed = true;
        }
    }
}

fn limit_reason(kind: LimitKind) -> Option<Reason> {
    match kind {
        LimitKind::Memory | LimitKind::MemoryPerProcess => Some(Reason::MemoryLimit),
        LimitKind::Processes => Some(Reason::ProcessLimit),
        LimitKind::CpuTime => Some(Reason::CpuTimeLimit),
        LimitKind::WallClock => Some(Reason::Timeout),
        LimitKind::CpuRate => None,
        #[allow(unreachable_patterns)]
        _ => None,
    }
}

fn run<S: SysGroup>(sys: &S, shared: &Shared, cfg: &Config, started: Instant, leader_pid: u32) -> Outcome {
    let deadline = cfg.timeout.map(|t| started + t);
    let cpu_limit = cfg.cpu_time.filter(|_| !sys.enforces_cpu_time());
    let cores = cores();
    let mut next_cpu_check = cpu_limit.map(|_| started);
    let mut td = Teardown { reason: None, kill_at: None, killed: false };
    let mut leader: Option<ExitStatus> = None;
    let mut empty = false;

    loop {
        let now = Instant::now();
        if let Some(d) = deadline {
            if now >= d && td.reason.is_none() && leader.is_none() {
                td.reason = Some(Reason::Timeout);
                shared.emit(Event::LimitHit { kind: LimitKind::WallClock });
                td.graceful(sys, &cfg.stop, now);
            }
        }
        if let (Some(limit), Some(at)) = (cpu_limit, next_cpu_check) {
            if now >= at && !td.killed {
                let used = sys.usage().cpu_total();
                if used >= limit {
                    td.reason.get_or_insert(Reason::CpuTimeLimit);
                    shared.emit(Event::LimitHit { kind: LimitKind::CpuTime });
                    td.kill(sys);
                    next_cpu_check = None;
                } else {
                    // The group cannot burn more than `cores` seconds per
                    // second, so nothing can happen before this point.
                    let wait = (limit - used) / cores;
                    next_cpu_check = Some(now + wait.max(Duration::from_millis(5)));
                }
            }
        }
        match shared.lock().request.take() {
            Some(Request::Stop) => {
                td.reason.get_or_insert(Reason::Killed);
                td.graceful(sys, &cfg.stop, now);
            }
            Some(Request::Kill) => {
                td.reason.get_or_insert(Reason::Killed);
                td.kill(sys);
            }
            None => {}
        }
        if let Some(k) = td.kill_at {
            if now >= k {
                td.kill(sys);
            }
        }
        if leader.is_some() && empty {
            break;
        }
        // The leader is gone but members remain: the group ends with its
        // leader, so the rest is stopped (systemd's KillMode=control-group).
        if leader.is_some() && !empty {
            td.graceful(sys, &cfg.stop, now);
        }

        let listening = !shared.lock().subscribers.is_empty();
        // With an OS event source, events wake the loop; otherwise poll.
        let pushed = if listening { sys.take_events() } else { None };
        let pushes = pushed.is_some();
        emit_pushed(shared, pushed.unwrap_or_default());
        let mut wake_at: Option<Instant> = None;
        for t in [
            deadline.filter(|_| td.reason.is_none() && leader.is_none()),
            next_cpu_check,
            td.kill_at.filter(|_| !td.killed),
            (listening && !pushes).then(|| now + EVENT_POLL),
        ]
        .into_iter()
        .flatten()
        {
            wake_at = Some(wake_at.map_or(t, |w: Instant| w.min(t)));
        }
        let timeout = wake_at.map(|w| w.saturating_duration_since(Instant::now()));
        let changes = match sys.wait(timeout) {
            Ok(c) => c,
            Err(_) => {
                // A transient failure of the notification source: fall back
                // to a short sleep rather than spinning or giving up.
                std::thread::sleep(Duration::from_millis(10));
                Vec::new()
            }
        };
        for c in changes {
            match c {
                Change::LeaderExited(st) => {
                    leader = Some(st);
                    if listening && !pushes {
                        shared.lock().known.remove(&leader_pid);
                        shared.emit(Event::Exited { pid: leader_pid, status: Some(st) });
                    }
                }
                Change::Empty => empty = true,
                Change::Limit(kind) => {
                    shared.emit(Event::LimitHit { kind });
                    if let Some(r) = limit_reason(kind) {
                        td.reason.get_or_insert(r);
                        td.kill(sys);
                    }
                }
            }
        }
        if listening {
            match sys.take_events() {
                Some(events) => emit_pushed(shared, events),
                None => diff_members(sys, shared),
            }
        }
    }

    let leftover = sys.teardown(Instant::now() + TEARDOWN_LIMIT);
    let usage: Usage = sys.usage();
    let status = leader.unwrap_or(ExitStatus { code: None, signal: None });
    let reason = td.reason.unwrap_or(if status.signal.is_some() { Reason::Signal } else { Reason::Exited });
    Outcome { status, reason, usage, leftover, backend: sys.kind(), duration: started.elapsed(), spawn: cfg.spawn }
}

/// Emits OS-pushed events, dropping a `Started` already announced by the
/// snapshot a new subscriber got.
fn emit_pushed(shared: &Shared, events: Vec<Event>) {
    for e in events {
        let fresh = {
            let mut st = shared.lock();
            match &e {
                Event::Started { pid, .. } => st.known.insert(*pid),
                Event::Exited { pid, .. } => {
                    st.known.remove(pid);
                    true
                }
                _ => true,
            }
        };
        if fresh {
            shared.emit(e);
        }
    }
}

/// Turns a change in membership into Started/Exited events.
fn diff_members<S: SysGroup>(sys: &S, shared: &Shared) {
    let Ok(now) = sys.members() else { return };
    let now: BTreeSet<u32> = now.into_iter().collect();
    let (born, gone) = {
        let mut st = shared.lock();
        let born: Vec<u32> = now.difference(&st.known).copied().collect();
        let gone: Vec<u32> = st.known.difference(&now).copied().collect();
        st.known = now;
        (born, gone)
    };
    for pid in born {
        let (ppid, exe) = sys::describe(pid);
        shared.emit(Event::Started { pid, ppid, exe });
    }
    for pid in gone {
        shared.emit(Event::Exited { pid, status: None });
    }
}
