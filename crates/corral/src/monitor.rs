//! What a group's handle shares with whatever drives the group, and the
//! driver: one event loop for every group of the process (`reactor`), on
//! every OS. It feeds each group's state machine (`life`), which decides
//! every stop and kill; the loop wakes only for a change, a request, a
//! deadline, or an adaptive CPU-time check.
//!
//! `PR_SET_PDEATHSIG` fires when the *thread* that forked the leader ends,
//! so leaders are spawned by a thread that lives as long as the process
//! (the reactor's, or the caller's where `sys::may_start_here` allows). A
//! caller blocked in [`wait`] drives its own group where the OS lets it
//! (`reactor::drive_here`).

mod life;
mod reactor;

use crate::deadline;
use crate::sys::{self, SysGroup, Wake};
use crate::{Event, Outcome, StopPolicy};
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
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
    /// The caller killed the group itself: the reason is a kill, and the
    /// loop need not kill again.
    Killed,
}

/// Where a listener's events go; `false` once nobody reads them.
type Listener = Box<dyn FnMut(Event) -> bool + Send>;

/// True once a listener's reader is gone, asked before each look.
type Closed = Box<dyn Fn() -> bool + Send>;

/// A listener, with the id its stream unsubscribes with when dropped.
struct Subscriber {
    id: u64,
    send: Listener,
    /// For a stream that cannot unsubscribe itself when dropped (a tokio
    /// receiver handed to the caller): says it is gone, so a quiet group
    /// stops being polled for it without waiting for an event to fail.
    closed: Option<Closed>,
}

#[derive(Default)]
struct State {
    outcome: Option<Outcome>,
    /// Told before the outcome when the group is proven empty earlier.
    ended: Option<crate::Ended>,
    request: Option<Request>,
    subscribers: Vec<Subscriber>,
    /// The id of the last subscription.
    last_id: u64,
    /// Members last seen, for Started/Exited diffs; only kept while someone listens.
    known: BTreeSet<u32>,
    /// What the group's own first subscriber (`record_events`) kept for the
    /// caller's first one.
    hold: Option<Arc<Mutex<Vec<Event>>>>,
    /// Hits of notify-only limits so far, by kind.
    notices: Vec<(crate::LimitKind, u64)>,
    /// Threads asleep on `done` or `settled`: told only if there are any
    /// (std's `notify_all` is a system call even when nobody waits, and a
    /// caller that drove its group to the end never sleeps).
    sleepers: usize,
}

/// Sleeps on `cv`, counted in `sleepers`, at most `timeout`.
fn sleep<'a>(cv: &Condvar, mut st: MutexGuard<'a, State>, timeout: Option<Duration>) -> MutexGuard<'a, State> {
    st.sleepers += 1;
    let mut st = match timeout {
        None => cv.wait(st).unwrap_or_else(|p| p.into_inner()),
        Some(t) => cv.wait_timeout(st, t).unwrap_or_else(|p| p.into_inner()).0,
    };
    st.sleepers -= 1;
    st
}

/// The most events held for a first subscriber that has not come yet.
const MAX_HELD: usize = 1 << 16;

/// What the handle and the monitor thread share.
pub(crate) struct Shared {
    state: Mutex<State>,
    /// Told the outcome.
    done: Condvar,
    /// Told the end before the outcome ([`Shared::settle`]); apart from
    /// `done` so that a caller waiting for the outcome is not woken for it
    /// while the loop is still tearing the group down.
    settled: Condvar,
    waker: Arc<dyn Wake>,
    /// Set while the group waits in the loop's queue, told "soon" rather
    /// than now (`reactor::start_here`): whatever then needs the loop to
    /// act (a request, a listener, a caller blocking on its news) wakes
    /// the loop itself, since the loop polls nothing of the group yet.
    pending: AtomicBool,
    /// The group's life, whoever drives it now (`reactor.rs`); `None`
    /// once it has ended.
    drive: Mutex<Option<reactor::Drive>>,
    #[cfg(feature = "tokio")]
    notify: tokio::sync::Notify,
    #[cfg(feature = "tokio")]
    notify_settled: tokio::sync::Notify,
}

impl Shared {
    pub(crate) fn new(waker: Arc<dyn Wake>) -> Shared {
        Shared {
            state: Mutex::new(State::default()),
            done: Condvar::new(),
            settled: Condvar::new(),
            waker,
            pending: AtomicBool::new(false),
            drive: Mutex::new(None),
            #[cfg(feature = "tokio")]
            notify: tokio::sync::Notify::new(),
            #[cfg(feature = "tokio")]
            notify_settled: tokio::sync::Notify::new(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic in a subscriber must not wedge every other caller.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn request(&self, r: Request) {
        self.note_request(r);
        self.wake();
    }

    /// Makes whoever drives the group look at it now.
    pub(crate) fn wake(&self) {
        self.waker.wake();
        self.need_loop();
    }

    /// Marks the group as queued for the loop without its wake-up.
    pub(crate) fn defer_to_loop(&self) {
        self.pending.store(true, Ordering::Release);
    }

    /// The loop has taken the group from its queue: it polls it from now on.
    pub(crate) fn taken_by_loop(&self) {
        self.pending.store(false, Ordering::Release);
    }

    /// Wakes the loop now if it has not taken the group yet.
    fn need_loop(&self) {
        if self.pending.load(Ordering::Acquire) {
            // The loop exists: a group is only deferred to a running one.
            reactor::wake_loop();
        }
    }

    /// Records a request without waking the loop: for a kill the caller
    /// makes itself, whose deaths wake the loop anyway (the leader's end,
    /// or the group's emptiness once the leader is gone), and where a loop
    /// thread woken beside the dying tree would only take a core from it.
    pub(crate) fn note_request(&self, r: Request) {
        // A kill overrides a pending stop, never the reverse; the loop's
        // kill overrides the caller's own (which failed, then).
        fn rank(r: Option<Request>) -> u8 {
            match r {
                None => 0,
                Some(Request::Stop) => 1,
                Some(Request::Killed) => 2,
                Some(Request::Kill) => 3,
            }
        }
        let mut st = self.lock();
        if rank(Some(r)) >= rank(st.request) {
            st.request = Some(r);
        }
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
            self.need_loop();
            st = sleep(&self.done, st, None);
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
            self.need_loop();
            st = sleep(&self.done, st, Some(end - now));
        }
    }

    /// The leader's end, once every member is gone (or the outcome).
    fn ended_now(st: &State) -> Option<crate::Ended> {
        st.ended.or_else(|| st.outcome.as_ref().map(crate::Ended::from))
    }

    pub(crate) fn wait_ended(&self) -> crate::Ended {
        let mut st = self.lock();
        loop {
            if let Some(e) = Self::ended_now(&st) {
                return e;
            }
            self.need_loop();
            st = sleep(&self.settled, st, None);
        }
    }

    #[cfg(feature = "tokio")]
    pub(crate) async fn wait_ended_async(&self) -> crate::Ended {
        loop {
            let notified = self.notify_settled.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if let Some(e) = Self::ended_now(&self.lock()) {
                return e;
            }
            self.need_loop();
            notified.await;
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
            self.need_loop();
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
        let sub: Listener = Box::new(move |e| {
            let mut b = keep.lock().unwrap_or_else(|p| p.into_inner());
            if b.len() < MAX_HELD {
                b.push(e);
            }
            true
        });
        self.subscribe_with(sub, None, sys, true);
        self.lock().hold = Some(buf);
    }

    /// Adds a listener; it first gets the current members as `Started`
    /// (or, the first one after [`Shared::hold`], everything held). Returns
    /// the id that [`Shared::unsubscribe`] takes.
    pub(crate) fn subscribe<S: SysGroup>(&self, sub: Listener, sys: &S) -> u64 {
        self.subscribe_closable(sub, None, sys)
    }

    /// [`Shared::subscribe`] for a listener that `closed` says is gone.
    pub(crate) fn subscribe_closable<S: SysGroup>(&self, sub: Listener, closed: Option<Closed>, sys: &S) -> u64 {
        self.subscribe_with(sub, closed, sys, false)
    }

    /// `from_start`: the group's events were collected since before its
    /// leader started ([`Shared::hold`] of a group that records them).
    fn subscribe_with<S: SysGroup>(&self, mut sub: Listener, closed: Option<Closed>, sys: &S, from_start: bool) -> u64 {
        let mut st = self.lock();
        st.last_id += 1;
        let id = st.last_id;
        if let Some(hold) = st.hold.take() {
            if st.outcome.is_none() && !st.subscribers.is_empty() {
                // The holder, always the first subscriber, hands over.
                drop(st.subscribers.remove(0));
            }
            let held = std::mem::take(&mut *hold.lock().unwrap_or_else(|p| p.into_inner()));
            for e in held {
                if !sub(e) {
                    return id;
                }
            }
            if st.outcome.is_none() {
                st.subscribers.push(Subscriber { id, send: sub, closed });
            }
            return id;
        }
        if let Some(o) = &st.outcome {
            let _ = o;
            sub(Event::Empty);
            return id;
        }
        sys.listen();
        // Events held since the start (`record_events`) go to the first
        // subscriber first, in order: each `Started` then names the process
        // that forked it, where a snapshot would name the subreaper an
        // escapee was re-parented to. The snapshot adds only the rest.
        let held = if st.subscribers.is_empty() { sys.take_events().unwrap_or_default() } else { Vec::new() };
        // Pushed since the start, every member's `Started` comes pushed,
        // naming its parent: a snapshot would only race the connector's
        // reader (a member forked but not yet dispatched would be told
        // from `/proc`, with no parent once it exited, and its own event
        // then dropped as a repeat).
        if st.subscribers.is_empty() && !(from_start && sys.observes_lineage()) {
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
                return id;
            }
        }
        for &pid in st.known.iter().filter(|p| !announced.contains(p)) {
            let (ppid, exe) = sys::describe(pid);
            if !sub(Event::Started { pid, ppid, exe }) {
                return id;
            }
        }
        st.subscribers.push(Subscriber { id, send: sub, closed });
        drop(st);
        // The monitor shortens its sleep now that someone listens.
        self.wake();
        id
    }

    /// Removes the listener `id` (its stream was dropped) at once, rather
    /// than when an event finds its receiver gone: while anyone listens
    /// the monitor polls the group's members, and a quiet group may have
    /// no event to give for hours.
    pub(crate) fn unsubscribe(&self, id: u64) {
        self.lock().subscribers.retain(|s| s.id != id);
    }

    /// Whether anyone listens, after dropping the listeners whose reader
    /// is gone.
    pub(crate) fn listening(&self) -> bool {
        let mut st = self.lock();
        st.subscribers.retain(|s| !s.closed.as_ref().is_some_and(|gone| gone()));
        !st.subscribers.is_empty()
    }

    /// How many listen now.
    #[cfg(test)]
    pub(crate) fn subscriber_count(&self) -> usize {
        self.lock().subscribers.len()
    }

    /// Tells how the group ended before its teardown, once no member is
    /// left; wakes [`Shared::wait_ended`]'s waiters (the outcome's wait on).
    fn settle(&self, ended: crate::Ended) {
        let mut st = self.lock();
        st.ended.get_or_insert(ended);
        let asleep = st.sleepers > 0;
        drop(st);
        if asleep {
            self.settled.notify_all();
        }
        #[cfg(feature = "tokio")]
        self.notify_settled.notify_waiters();
    }

    /// Records the outcome and wakes every waiter.
    fn end(&self, outcome: Outcome) {
        self.emit(Event::Empty);
        let mut st = self.lock();
        st.outcome = Some(outcome);
        st.subscribers.clear();
        let asleep = st.sleepers > 0;
        drop(st);
        if asleep {
            self.done.notify_all();
            self.settled.notify_all();
        }
        #[cfg(feature = "tokio")]
        {
            self.notify.notify_waiters();
            self.notify_settled.notify_waiters();
        }
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
        st.subscribers.retain_mut(|s| (s.send)(e.clone()));
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
pub(crate) struct Delivery<S: SysGroup>(Option<Started<S>>);

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

/// Creates the group and spawns the leader; the one event loop drives it
/// from then on.
pub(crate) fn start(spec: sys::Spec, cmd: sys::Start, cfg: Config) -> crate::Result<Started<sys::Imp>> {
    reactor::start(spec, cmd, cfg)
}

/// Waits for the outcome, driving the group on this thread where it may
/// ([`reactor::drive_here`]): the leader's exit then wakes this thread
/// itself rather than the loop's, which had to wake this one.
pub(crate) fn wait(sys: &Arc<sys::Imp>, shared: &Arc<Shared>) -> Outcome {
    reactor::drive_here(sys, shared, None);
    shared.wait()
}

/// [`wait`] for at most `timeout`; `None` if the group has not ended by
/// then.
pub(crate) fn wait_timeout(sys: &Arc<sys::Imp>, shared: &Arc<Shared>, timeout: Duration) -> Option<Outcome> {
    let until = deadline::after(Instant::now(), timeout);
    reactor::drive_here(sys, shared, Some(until));
    shared.wait_timeout(until.saturating_duration_since(Instant::now()))
}

/// [`start`] for async callers: no thread blocks while the group starts.
#[cfg(feature = "tokio")]
pub(crate) async fn start_async(spec: sys::Spec, cmd: sys::Start, cfg: Config) -> crate::Result<Started<sys::Imp>> {
    reactor::start_async(spec, cmd, cfg).await
}
