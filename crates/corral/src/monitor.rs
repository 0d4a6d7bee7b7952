//! What a group's handle shares with whatever drives the group, and the
//! two drivers: on Linux one event loop for every group (`reactor`), on
//! other OSes one monitor thread per group that sleeps in the backend's
//! `wait`. Both feed the same state machine (`life`), which decides every
//! stop and kill; the loop wakes only for a change, a request, a
//! deadline, or an adaptive CPU-time check.
//!
//! `PR_SET_PDEATHSIG` fires when the *thread* that forked the leader ends,
//! so leaders are spawned on a thread that outlives them: the reactor
//! thread (which lives as long as the process), or the group's own thread.

mod life;
#[cfg(target_os = "linux")]
mod reactor;

use self::life::{Life, Next};
use crate::deadline;
use crate::sys::{self, SysGroup, Wake};
use crate::{Event, Outcome, StopPolicy};
use std::collections::BTreeSet;
use std::sync::{mpsc, Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

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
    /// What the group's own first subscriber (`record_events`) kept for the
    /// caller's first one.
    hold: Option<Arc<Mutex<Vec<Event>>>>,
    /// Hits of notify-only limits so far, by kind.
    notices: Vec<(crate::LimitKind, u64)>,
}

/// The most events held for a first subscriber that has not come yet.
const MAX_HELD: usize = 1 << 16;

/// What the handle and the monitor thread share.
pub(crate) struct Shared {
    state: Mutex<State>,
    done: Condvar,
    waker: Arc<dyn Wake>,
    #[cfg(feature = "tokio")]
    notify: tokio::sync::Notify,
}

impl Shared {
    pub(crate) fn new(waker: Arc<dyn Wake>) -> Shared {
        Shared {
            state: Mutex::new(State::default()),
            done: Condvar::new(),
            waker,
            #[cfg(feature = "tokio")]
            notify: tokio::sync::Notify::new(),
        }
    }

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
        let end = deadline::after(Instant::now(), timeout);
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

    /// Subscribes on behalf of the caller's first listener, before the group
    /// is driven at all, and keeps what happens (bounded) until it comes:
    /// a listener that subscribes right after `spawn` (or after the group
    /// ended already) misses nothing.
    pub(crate) fn hold<S: SysGroup>(&self, sys: &S) {
        let buf: Arc<Mutex<Vec<Event>>> = Arc::default();
        let keep = buf.clone();
        self.subscribe(
            Box::new(move |e| {
                let mut b = keep.lock().unwrap_or_else(|p| p.into_inner());
                if b.len() < MAX_HELD {
                    b.push(e);
                }
                true
            }),
            sys,
        );
        self.lock().hold = Some(buf);
    }

    /// Adds a listener; it first gets the current members as `Started`
    /// (or, the first one after [`Shared::hold`], everything held).
    pub(crate) fn subscribe<S: SysGroup>(&self, mut sub: Subscriber, sys: &S) {
        let mut st = self.lock();
        if let Some(hold) = st.hold.take() {
            if st.outcome.is_none() && !st.subscribers.is_empty() {
                // The holder, always the first subscriber, hands over.
                drop(st.subscribers.remove(0));
            }
            let held = std::mem::take(&mut *hold.lock().unwrap_or_else(|p| p.into_inner()));
            for e in held {
                if !sub(e) {
                    return;
                }
            }
            if st.outcome.is_none() {
                st.subscribers.push(sub);
            }
            return;
        }
        if let Some(o) = &st.outcome {
            let _ = o;
            sub(Event::Empty);
            return;
        }
        sys.listen();
        // Events held since the start (`record_events`) go to the first
        // subscriber first, in order: each `Started` then names the process
        // that forked it, where a snapshot would name the subreaper an
        // escapee was re-parented to. The snapshot adds only the rest.
        let held = if st.subscribers.is_empty() { sys.take_events().unwrap_or_default() } else { Vec::new() };
        if st.subscribers.is_empty() {
            st.known = sys.members().unwrap_or_default().into_iter().collect();
        }
        let mut announced = BTreeSet::new();
        for e in held {
            match &e {
                Event::Started { pid, .. } => {
                    announced.insert(*pid);
                }
                Event::Exited { pid, .. } => {
                    st.known.remove(pid);
                }
                _ => {}
            }
            if !sub(e) {
                return;
            }
        }
        for &pid in st.known.iter().filter(|p| !announced.contains(p)) {
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

    /// Records the outcome and wakes every waiter.
    fn end(&self, outcome: Outcome) {
        self.emit(Event::Empty);
        let mut st = self.lock();
        st.outcome = Some(outcome);
        st.subscribers.clear();
        drop(st);
        self.done.notify_all();
        #[cfg(feature = "tokio")]
        self.notify.notify_waiters();
    }

    /// Counts a hit of a notify-only limit.
    fn note_limit(&self, kind: crate::LimitKind) {
        let mut st = self.lock();
        match st.notices.iter_mut().find(|(k, _)| *k == kind) {
            Some((_, n)) => *n += 1,
            None => st.notices.push((kind, 1)),
        }
    }

    /// Hits of notify-only limits so far.
    pub(crate) fn limit_notices(&self) -> Vec<(crate::LimitKind, u64)> {
        self.lock().notices.clone()
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

/// A started group on its way to its caller. If the caller gave up before
/// taking it (an aborted task dropped the future that awaited it), no one
/// could ever stop the group: it is killed instead, as a dropped handle's
/// group would be.
#[cfg_attr(all(not(target_os = "linux"), not(feature = "tokio")), allow(dead_code))]
pub(crate) struct Delivery<S: SysGroup>(Option<Started<S>>);

#[cfg_attr(all(not(target_os = "linux"), not(feature = "tokio")), allow(dead_code))]
impl<S: SysGroup> Delivery<S> {
    pub(crate) fn new(s: Started<S>) -> Self {
        Delivery(Some(s))
    }

    pub(crate) fn take(mut self) -> Option<Started<S>> {
        self.0.take()
    }
}

impl<S: SysGroup> Drop for Delivery<S> {
    fn drop(&mut self) {
        if let Some(s) = self.0.take() {
            s.shared.request(Request::Kill);
            let _ = s.sys.kill();
        }
    }
}

/// Creates the group and spawns the leader. On Linux one event loop
/// drives every group; elsewhere each group has a monitor thread.
pub(crate) fn start(spec: sys::Spec, cmd: sys::Start, cfg: Config) -> crate::Result<Started<sys::Imp>> {
    #[cfg(target_os = "linux")]
    return reactor::start(spec, cmd, cfg);
    #[cfg(not(target_os = "linux"))]
    return start_thread::<sys::Imp>(spec, cmd, cfg);
}

/// [`start`] for async callers: no thread blocks while the group starts.
#[cfg(feature = "tokio")]
pub(crate) async fn start_async(spec: sys::Spec, cmd: sys::Start, cfg: Config) -> crate::Result<Started<sys::Imp>> {
    #[cfg(target_os = "linux")]
    return reactor::start_async(spec, cmd, cfg).await;
    #[cfg(not(target_os = "linux"))]
    {
        let gone = || crate::Error::new(crate::ErrorKind::Os, "the task starting the group panicked");
        let d = tokio::task::spawn_blocking(move || start(spec, cmd, cfg).map(Delivery::new))
            .await
            .unwrap_or_else(|_| Err(gone()))?;
        d.take().ok_or_else(gone)
    }
}

/// Creates the group and spawns the leader on a new monitor thread, which
/// then runs the group's whole life. The leader is spawned on this thread
/// on purpose: it lives exactly as long as the group, which is what
/// `PR_SET_PDEATHSIG` needs where the OS has it.
#[cfg_attr(target_os = "linux", allow(dead_code))]
fn start_thread<S: SysGroup>(spec: sys::Spec, cmd: sys::Start, cfg: Config) -> crate::Result<Started<S>> {
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
            let child = match sys::begin(&*sys, cmd) {
                Ok(c) => c,
                Err(e) => {
                    // Nothing ran; remove the empty container.
                    sys.teardown(Instant::now());
                    let _ = tx.send(Err(e));
                    return;
                }
            };
            let shared = Arc::new(Shared::new(sys.waker()));
            if spec.record_events {
                shared.hold(&*sys);
            }
            let pid = child.pid;
            let cfg = Config { spawn: child.path, ..cfg };
            let started = Instant::now();
            let _ = tx.send(Ok(Started { pid, sys: sys.clone(), shared: shared.clone(), child }));
            let outcome = run(&*sys, &shared, &cfg, started, pid);
            shared.end(outcome);
        })
        .map_err(|e| crate::Error::os("starting the group's monitor thread", e))?;
    rx.recv().unwrap_or_else(|_| Err(crate::Error::new(crate::ErrorKind::Os, "the group's monitor thread died")))
}

#[cfg_attr(target_os = "linux", allow(dead_code))]
/// Drives one group on the calling thread: sleeps in the backend's `wait`
/// and feeds what it reports to the group's [`Life`].
fn run<S: SysGroup>(sys: &S, shared: &Shared, cfg: &Config, started: Instant, leader_pid: u32) -> Outcome {
    let mut life = Life::new(sys, cfg, started, leader_pid);
    let mut changes = Vec::new();
    while let Next::Wait(at) = life.advance(sys, shared, std::mem::take(&mut changes), Instant::now()) {
        let timeout = at.map(|w| w.saturating_duration_since(Instant::now()));
        changes = match sys.wait(timeout) {
            Ok(c) => c,
            Err(_) => {
                // A transient failure of the notification source: fall back
                // to a short sleep rather than spinning or giving up.
                std::thread::sleep(Duration::from_millis(10));
                Vec::new()
            }
        };
    }
    life.finish(sys, shared)
}
