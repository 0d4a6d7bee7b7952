//! One event loop for every group of this process, on every OS: one
//! thread sleeps in the OS's poller ([`sys::Poll`]: `poll` over pidfds
//! and cgroup files on Linux, the one completion port every job posts to
//! on Windows, one kqueue on macOS) until the earliest deadline or
//! sample, and feeds each group's [`Life`] only when something of its own
//! happened. A daemon with a hundred services has one monitor thread, not
//! a hundred.
//!
//! Traps:
//! - `PR_SET_PDEATHSIG` fires when the *thread* that forked the leader
//!   ends. A leader that must die with its controller is therefore spawned
//!   by a thread that lives as long as the process: this one, or the
//!   caller's own when it is the main thread or the leader is meant to
//!   outlive its controller ([`sys::may_start_here`]). Spawning on the
//!   caller's thread spares two thread hand-offs per spawn (a supervisor's
//!   restart among them); on a loaded 2-core host each is a wake-up that
//!   waits for a CPU. (Windows' job associates with the port here too,
//!   before its leader is assigned.)
//! - Teardown may wait (up to `TEARDOWN_LIMIT`) for members to be reaped;
//!   it runs on a short-lived thread of its own so that one stuck group
//!   never delays another's deadline. A group that one look settles (the
//!   usual end) is torn down here: a thread per group cost more than the
//!   look, and one more wake-up before the caller learnt the outcome.
//! - A caller blocked in `wait` drives its own group where the OS lets a
//!   group poll its own fds ([`sys::WAITS_ALONE`]): it holds the group's
//!   [`Drive`] while it polls, and the loop, which only ever `try_lock`s
//!   it, leaves the group out until it is handed back. The leader's exit
//!   then wakes the caller itself, as `waitpid` would, instead of the
//!   loop's thread which then had to wake the caller: one cross-CPU
//!   wake-up fewer on the path from the exit to the outcome.

use super::life::{later, Life, Next};
use super::{Config, Delivery, Shared, Started};
use crate::sys::{self, Poll, SysGroup, Wake};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{mpsc, Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

type G = sys::Imp;

/// A spawn handed to the reactor thread.
struct Job {
    spec: sys::Spec,
    cmd: sys::Start,
    cfg: Config,
    reply: Reply,
}

/// Where the result of a spawn goes: a blocked caller, or a task.
enum Reply {
    Blocking(mpsc::SyncSender<crate::Result<Delivery<G>>>),
    #[cfg(feature = "tokio")]
    Async(tokio::sync::oneshot::Sender<crate::Result<Delivery<G>>>),
}

impl Reply {
    /// Hands the result over; a group its caller no longer waits for is
    /// killed as the undelivered [`Delivery`] drops.
    fn send(self, r: crate::Result<Delivery<G>>) {
        match self {
            Reply::Blocking(tx) => drop(tx.send(r)),
            #[cfg(feature = "tokio")]
            Reply::Async(tx) => drop(tx.send(r)),
        }
    }
}

/// What the loop is handed.
enum Work {
    /// A group to create and start here (boxed: a spec and a command are
    /// large).
    Spawn(Box<Job>),
    /// A group its caller started itself, to drive from now on.
    Drive(Entry),
}

struct Handle {
    jobs: mpsc::Sender<Work>,
    wake: Arc<dyn Wake>,
}

/// One group the loop watches.
struct Entry {
    sys: Arc<G>,
    shared: Arc<Shared>,
}

/// Whose turn it is to drive a group.
enum Turn<'a> {
    /// The loop's: the guard holds the group's [`Drive`].
    Loop(std::sync::MutexGuard<'a, Option<Drive>>),
    /// A caller blocked in `wait` drives it.
    Caller,
    /// It has ended (a caller finished it).
    Done,
}

impl Entry {
    fn turn(&self) -> Turn<'_> {
        use std::sync::TryLockError;
        let slot = match self.shared.drive.try_lock() {
            Ok(s) => s,
            // A panic while driving left the life as it was; drive on.
            Err(TryLockError::Poisoned(p)) => p.into_inner(),
            Err(TryLockError::WouldBlock) => return Turn::Caller,
        };
        match slot.is_some() {
            true => Turn::Loop(slot),
            false => Turn::Done,
        }
    }
}

/// A group's life and when to look at it next: what the loop, or a
/// caller blocked in `wait`, drives. It sits in [`Shared::drive`]; `None`
/// there once the group has ended.
pub(crate) struct Drive {
    life: Life,
    /// When `life` asked to be looked at again.
    wake_at: Option<Instant>,
    /// When the backend must be sampled again (what it cannot notify).
    sample_at: Option<Instant>,
    /// Not looked at since its spawn: unless the poller already has news
    /// of it, the first step only computes the deadlines. What happens
    /// later is news of the next poll; reading the group right after its
    /// spawn found nothing (and cost a poll and a few cgroup reads).
    fresh: bool,
    /// The loop has put the group's fds in its poll: a caller that takes
    /// the group over must wake it to have them taken out. Until then the
    /// loop has nothing of the group's to drop (it leaves out a group a
    /// caller drives), and that wake-up, a cross-CPU one per `wait`, is
    /// spared.
    polled: bool,
}

fn died() -> crate::Error {
    crate::Error::new(crate::ErrorKind::Os, "corral's event loop thread is gone")
}

fn handle() -> crate::Result<&'static Handle> {
    static HANDLE: OnceLock<Result<Handle, String>> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let poller = sys::Poller::new().map_err(|e| format!("creating corral's event loop: {e}"))?;
            let wake = poller.waker();
            let (jobs, rx) = mpsc::channel();
            std::thread::Builder::new()
                .name("corral-reactor".into())
                .spawn(move || run(rx, poller))
                .map_err(|e| format!("starting corral's event loop thread: {e}"))?;
            Ok(Handle { jobs, wake })
        })
        .as_ref()
        .map_err(|e| crate::Error::new(crate::ErrorKind::Os, e.clone()))
}

/// Wakes the loop now, if it runs.
pub(super) fn wake_loop() {
    if let Ok(h) = handle() {
        h.wake.wake();
    }
}

/// Creates the group and spawns its leader, on this thread where it may
/// (see the module note), else on the reactor thread; the reactor then
/// drives the group's whole life.
pub(super) fn start(spec: sys::Spec, cmd: sys::Start, cfg: Config) -> crate::Result<Started<G>> {
    if sys::may_start_here(&spec) {
        return start_here(spec, cmd, cfg, false);
    }
    let (reply, rx) = mpsc::sync_channel(1);
    submit(Work::Spawn(Box::new(Job { spec, cmd, cfg, reply: Reply::Blocking(reply) })), true)?;
    rx.recv().unwrap_or_else(|_| Err(died()))?.take().ok_or_else(died)
}

/// Like [`start`], awaiting the reactor's answer instead of blocking a
/// thread on it. Where the caller's thread may start the leader, it does,
/// as tokio's own `Command::spawn` does: the spawn blocks only until the
/// leader's `exec`, and the reactor thread would block for as long.
#[cfg(feature = "tokio")]
pub(super) async fn start_async(spec: sys::Spec, cmd: sys::Start, cfg: Config) -> crate::Result<Started<G>> {
    if sys::may_start_here(&spec) {
        // Its caller awaits what the loop tells: the loop must know now.
        return start_here(spec, cmd, cfg, true);
    }
    let (reply, rx) = tokio::sync::oneshot::channel();
    submit(Work::Spawn(Box::new(Job { spec, cmd, cfg, reply: Reply::Async(reply) })), true)?;
    rx.await.unwrap_or_else(|_| Err(died()))?.take().ok_or_else(died)
}

/// Creates and starts the group on the caller's thread, then hands it to
/// the reactor without waiting for it: the loop's first look only sets
/// the group's deadlines, and an exit before it is news the poller keeps.
///
/// The loop is told at once only when that first look has a deadline to
/// set (a timeout, a CPU-time limit) or events to record; else within
/// [`sys::WAKE_SOON`], which spares the caller the cross-CPU wake-up (see
/// the Linux poller). A caller that waits right away drives the group
/// itself meanwhile; one that does not has its group's end, a limit hit
/// or a request seen at most that much later.
fn start_here(spec: sys::Spec, cmd: sys::Start, cfg: Config, urgent: bool) -> crate::Result<Started<G>> {
    // The loop must exist before anything starts that it has to drive.
    handle()?;
    let urgent = urgent || cfg.timeout.is_some() || cfg.cpu_time.is_some() || spec.record_events;
    let (entry, started) = create(spec, cmd, cfg)?;
    if !urgent {
        entry.shared.defer_to_loop();
    }
    // Undelivered (no loop to drive it), the group is killed as it drops.
    let delivery = Delivery::new(started);
    submit(Work::Drive(entry), urgent)?;
    delivery.take().ok_or_else(died)
}

/// Queues `work` for the loop, and wakes it now or soon (`urgent`: now).
fn submit(work: Work, urgent: bool) -> crate::Result<()> {
    let h = handle()?;
    h.jobs.send(work).map_err(|_| died())?;
    match urgent {
        true => h.wake.wake(),
        false => h.wake.wake_soon(),
    }
    Ok(())
}

fn run(jobs: mpsc::Receiver<Work>, mut poller: sys::Poller) {
    let mut groups: Vec<Entry> = Vec::new();
    loop {
        while let Ok(work) = jobs.try_recv() {
            match work {
                Work::Spawn(job) => groups.extend(spawn(*job)),
                Work::Drive(e) => {
                    e.shared.taken_by_loop();
                    groups.push(e);
                }
            }
        }
        // The groups this loop drives now: not one a caller drives (it
        // wakes the loop when it hands one back), nor one it finished.
        groups.retain(|g| !matches!(g.turn(), Turn::Done));
        let mut mine = Vec::with_capacity(groups.len());
        let mut earliest: Option<Instant> = None;
        for (i, g) in groups.iter().enumerate() {
            if let Turn::Loop(mut slot) = g.turn() {
                let d = slot.as_mut().expect("a loop's turn holds a drive");
                d.polled = true;
                earliest = [earliest, d.wake_at, d.sample_at].into_iter().flatten().min();
                mine.push(i);
            }
        }
        let timeout = earliest.map(|t| t.saturating_duration_since(Instant::now()));
        let sys: Vec<&G> = mine.iter().map(|&i| &*groups[i].sys).collect();
        let news = match poller.wait(&sys, timeout) {
            Ok(n) => n,
            Err(_) => {
                // A transient failure (ENOMEM): retry shortly, never spin.
                std::thread::sleep(Duration::from_millis(10));
                Vec::new()
            }
        };
        let now = Instant::now();
        // Backwards, so that `swap_remove` only moves a group already seen
        // (`mine` is in ascending order).
        for (k, &i) in mine.iter().enumerate().rev() {
            let g = &groups[i];
            // A caller may have taken the group while the loop polled.
            let Turn::Loop(mut slot) = g.turn() else { continue };
            let d = slot.as_mut().expect("a loop's turn holds a drive");
            let news = news.get(k).copied().unwrap_or(false);
            let due = [d.wake_at, d.sample_at].into_iter().flatten().any(|t| t <= now);
            let changes = |d: &mut Drive| match std::mem::take(&mut d.fresh) && !news {
                true => Vec::new(),
                false => g.sys.wait(Some(Duration::ZERO)).unwrap_or_default(),
            };
            if (news || due) && step(&g.sys, &g.shared, d, now, changes) {
                let life = slot.take().expect("a loop's turn holds a drive").life;
                drop(slot);
                let g = groups.swap_remove(i);
                finish(g.sys, g.shared, life);
            }
        }
    }
}

/// Looks at one group, with the `changes` the OS reported; true once it
/// has ended.
fn step(
    sys: &G,
    shared: &Shared,
    d: &mut Drive,
    now: Instant,
    changes: impl FnOnce(&mut Drive) -> Vec<sys::Change>,
) -> bool {
    let r = catch_unwind(AssertUnwindSafe(|| {
        let changes = changes(d);
        d.life.advance(sys, shared, changes, now)
    }));
    match r {
        Ok(Next::Wait(at)) => {
            d.wake_at = at;
            d.sample_at = sys.readiness().and_then(|r| r.sample).map(|s| later(now, s));
            false
        }
        Ok(Next::Ended) => true,
        Err(_) => {
            // A bug must not take every other group down with this one:
            // this group is killed and torn down, the loop goes on.
            let _ = sys.kill();
            true
        }
    }
}

/// Drives the group on the calling thread, a caller blocked in `wait`,
/// until it ends or `until` passes: the caller polls the group's own fds
/// and is woken by the leader's exit itself. `false` where it may not
/// ([`sys::WAITS_ALONE`]), while the loop or another caller drives the
/// group at this moment, or once `until` passed first (the group is then
/// handed back to the loop); the caller then waits for the outcome as
/// before. `true` once the group has ended (its outcome is told, or its
/// teardown runs on a thread of its own and tells it).
pub(super) fn drive_here(sys: &Arc<G>, shared: &Arc<Shared>, until: Option<Instant>) -> bool {
    use std::sync::TryLockError;
    if !sys::WAITS_ALONE {
        return false;
    }
    let mut slot = match shared.drive.try_lock() {
        Ok(s) => s,
        Err(TryLockError::Poisoned(p)) => p.into_inner(),
        Err(TryLockError::WouldBlock) => return false,
    };
    let Some(d) = slot.as_mut() else { return false };
    let Ok(h) = handle() else { return false };
    // The loop leaves the group out of its poll from its next pass.
    if std::mem::take(&mut d.polled) {
        h.wake.wake();
    }
    let mut ended = false;
    if std::mem::take(&mut d.fresh) {
        // As the loop's first look: deadlines only, nothing to read yet.
        ended = step(sys, shared, d, Instant::now(), |_| Vec::new());
    }
    while !ended {
        let now = Instant::now();
        if until.is_some_and(|u| now >= u) {
            break;
        }
        let next = [d.wake_at, d.sample_at, until].into_iter().flatten().min();
        let timeout = next.map(|t| t.saturating_duration_since(now));
        let changes = match sys.wait(timeout) {
            Ok(c) => c,
            Err(_) => {
                // As the loop does on a transient failure: never spin.
                std::thread::sleep(Duration::from_millis(10));
                Vec::new()
            }
        };
        ended = step(sys, shared, d, Instant::now(), |_| changes);
    }
    if !ended {
        drop(slot);
        // Handed back: the loop polls the group again.
        h.wake.wake();
        return false;
    }
    let life = slot.take().expect("a drive was there").life;
    drop(slot);
    finish(sys.clone(), shared.clone(), life);
    true
}

/// Tears an ended group down, then publishes its outcome: here when one
/// look settles it (the usual end), else off the loop. A group proven
/// empty (every member exited, in a container none can leave) has its end
/// told first: a supervisor may start the next run while this one's
/// container is removed, as systemd restarts a unit once its cgroup is
/// empty.
fn finish(sys: Arc<G>, shared: Arc<Shared>, life: Life) {
    if let Some(ended) = life.ended().filter(|_| sys.empty_is_final()) {
        shared.settle(ended);
    }
    // A bug in the teardown must not end the loop: this group's outcome
    // is then lost, as it was with a teardown thread that panicked.
    match catch_unwind(AssertUnwindSafe(|| life.finish_if_settled(&*sys, &shared))) {
        Ok(Some(outcome)) => return shared.end(outcome),
        Ok(None) => {}
        Err(_) => return,
    }
    type Ending = Mutex<Option<(Arc<G>, Arc<Shared>, Life)>>;
    fn end(slot: &Ending) {
        let taken = slot.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some((sys, shared, life)) = taken {
            shared.end(life.finish(&*sys, &shared));
        }
    }
    let slot: Arc<Ending> = Arc::new(Mutex::new(Some((sys, shared, life))));
    let theirs = slot.clone();
    if std::thread::Builder::new().name("corral-teardown".into()).spawn(move || end(&theirs)).is_err() {
        // No thread to be had: tear down here rather than never.
        end(&slot);
    }
}

/// Creates the group and starts its leader on this thread, for a caller
/// that may not (see the module note on PDEATHSIG). Replies to the caller
/// either way.
fn spawn(job: Job) -> Option<Entry> {
    let Job { spec, cmd, cfg, reply } = job;
    match create(spec, cmd, cfg) {
        Ok((entry, started)) => {
            reply.send(Ok(Delivery::new(started)));
            Some(entry)
        }
        Err(e) => {
            reply.send(Err(e));
            None
        }
    }
}

/// Creates the group and starts its leader on the calling thread: what
/// the loop will drive, and what the caller gets.
fn create(spec: sys::Spec, cmd: sys::Start, cfg: Config) -> crate::Result<(Entry, Started<G>)> {
    let sys = Arc::new(G::create(&spec)?);
    let child = match sys::begin(&*sys, cmd) {
        Ok(c) => c,
        Err(e) => {
            // Nothing ran; remove the empty container.
            sys.teardown(Instant::now());
            return Err(e);
        }
    };
    let shared = Arc::new(Shared::new(sys.waker()));
    if spec.record_events {
        shared.hold(&*sys);
    }
    let pid = child.pid;
    let cfg = Config { spawn: child.path, ..cfg };
    let started = Instant::now();
    let life = Life::new(&*sys, &cfg, started, pid);
    *shared.drive.lock().unwrap_or_else(|p| p.into_inner()) =
        Some(Drive { life, wake_at: Some(started), sample_at: None, fresh: true, polled: false });
    let entry = Entry { sys: sys.clone(), shared: shared.clone() };
    Ok((entry, Started { pid, sys, shared, child }))
}
