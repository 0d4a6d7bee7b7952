//! The kernel's process-event connector (`NETLINK_CONNECTOR`, `CN_IDX_PROC`):
//! every fork, exec and exit on the host, as it happens.
//!
//! corral uses it, where it is permitted (it needs CAP_NET_ADMIN), to count
//! the processes a group started over its life and to stream `Started` and
//! `Exited` events without polling. A group is followed by ancestry: a fork
//! whose parent belongs to a group puts the child in it.
//!
//! Traps:
//! - The leader's own first forks can happen before `spawn` returns its
//!   pid. Forks of this process are therefore followed provisionally, and
//!   the group claims its leader's subtree when it learns the pid.
//! - Under a fork storm the socket can overflow (ENOBUFS) and events are
//!   lost; every group alive then is marked `lost`, and its total is
//!   reported as unknown rather than guessed.
//! - The reader thread may lag behind the kernel (a loaded host, a burst
//!   of events): the forks and exits that led to a leader's exit are
//!   queued by then, but maybe not dispatched. "Every member exited" is
//!   a fact only once the reader has caught up ([`Watcher::caught_up`]).
//! - Thread creation is a fork event too; only `pid == tgid` is a process.
//! - The socket wakes this process for every fork, exec and exit on the
//!   host, so it is open only while a group needs it (see `connector.rs`):
//!   a group takes a [`Lease`] before its leader is spawned and drops it at
//!   teardown.

use crate::sys::{unix, Wake};
use crate::Event;
use std::collections::HashMap;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

pub(crate) use super::connector::{needed, Lease};

const NETLINK_CONNECTOR: i32 = 11;
const CN_IDX_PROC: u32 = 1;
const CN_VAL_PROC: u32 = 1;
const PROC_CN_MCAST_LISTEN: u32 = 1;
const PROC_CN_MCAST_IGNORE: u32 = 2;
const PROC_EVENT_FORK: u32 = 0x1;
const PROC_EVENT_EXEC: u32 = 0x2;
const PROC_EVENT_EXIT: u32 = 0x8000_0000;
/// nlmsghdr (16) + cn_msg (20): where `struct proc_event` starts.
const EVENT_AT: usize = 36;

/// The most events held between two reads by the group's loop.
const MAX_HELD: usize = 1 << 16;

/// One group as the connector follows it.
pub(crate) struct Tracked {
    total: AtomicU64,
    /// Members that have not exited yet, as far as the events tell.
    alive: AtomicU64,
    /// Members that exited (pid, fork time in ns since boot), not yet
    /// confirmed reaped; teardown checks them.
    exited: Mutex<Vec<(u32, u64)>>,
    lost: AtomicBool,
    /// When a look first found every member gone (monotonic ns; 0: not
    /// yet, or a member came since).
    quiet_since: AtomicU64,
    /// The last look found every member gone, the reader not caught up.
    settling: AtomicBool,
    listening: AtomicBool,
    events: Mutex<Vec<Event>>,
    waker: Arc<dyn Wake>,
}

impl Tracked {
    pub(crate) fn new(waker: Arc<dyn Wake>) -> Arc<Tracked> {
        Arc::new(Tracked {
            total: AtomicU64::new(1),
            alive: AtomicU64::new(1),
            exited: Mutex::new(Vec::new()),
            lost: AtomicBool::new(false),
            quiet_since: AtomicU64::new(0),
            settling: AtomicBool::new(false),
            listening: AtomicBool::new(false),
            events: Mutex::new(Vec::new()),
            waker,
        })
    }

    /// Processes started over the group's life, unless events were lost.
    pub(crate) fn total(&self) -> Option<u64> {
        (!self.lost.load(Ordering::Relaxed)).then(|| self.total.load(Ordering::Relaxed))
    }

    /// True when every member the events announced has exited, no event
    /// was lost, and every event queued so far was dispatched: the list of
    /// exited members is then complete.
    pub(crate) fn settled(&self) -> bool {
        self.settled_by(watcher())
    }

    fn settled_by(&self, w: &Watcher) -> bool {
        let quiet = || !self.lost.load(Ordering::SeqCst) && self.alive.load(Ordering::SeqCst) == 0;
        if !quiet() {
            self.quiet_since.store(0, Ordering::Relaxed);
            self.settling.store(false, Ordering::Relaxed);
            return false;
        }
        // From the first look that found every member gone, every event
        // queued before that moment must be dispatched: then no member
        // was alive at it, and none can have started since.
        let now = monotonic_ns().max(1);
        let since = match self.quiet_since.compare_exchange(0, now, Ordering::Relaxed, Ordering::Relaxed) {
            Ok(_) => now,
            Err(t) => t,
        };
        // Looked at again after the catch-up, which makes visible what the
        // events dispatched until then changed.
        if w.caught_up(since) && quiet() {
            self.settling.store(false, Ordering::Relaxed);
            return true;
        }
        // The reader is behind, most often by the leader's own exit,
        // queued before its pidfd woke the waiter. Woken when it has
        // caught up, not at the next sample 20 ms later (one pgid spawn
        // in five took 21 ms so). Asked before a second look, so that a
        // batch finished in between is not missed.
        w.wake_when_caught_up(self.waker.clone());
        let settled = w.caught_up(since) && quiet();
        self.settling.store(!settled, Ordering::Relaxed);
        settled
    }

    /// The last look found every member gone and waits for the reader to
    /// confirm it (see [`Tracked::settled`]).
    pub(crate) fn settling(&self) -> bool {
        self.settling.load(Ordering::Relaxed) && !self.lost.load(Ordering::Relaxed)
    }

    /// True when events were lost, so the event view is incomplete.
    pub(crate) fn lost(&self) -> bool {
        self.lost.load(Ordering::Relaxed)
    }

    /// Members that exited and may still be unreaped (zombies): those whose
    /// pid still names a process started when the member was forked.
    /// With each one's start time (clock ticks since boot, as `/proc`
    /// gives it), read once here.
    pub(crate) fn unreaped(&self) -> Vec<(u32, u64)> {
        let mut ex = self.exited.lock().unwrap_or_else(|p| p.into_inner());
        let tick_ns = 1_000_000_000 / unix::clock_ticks();
        let mut left = Vec::new();
        ex.retain(|(pid, forked_ns)| match super::procfs::stat(*pid) {
            // The same process if it started within two ticks of the fork.
            Some(st) if st.starttime.saturating_mul(tick_ns).abs_diff(*forked_ns) <= 2 * tick_ns => {
                left.push((*pid, st.starttime));
                true
            }
            _ => false,
        });
        left
    }

    /// Turns on event collection.
    pub(crate) fn listen(&self) {
        self.listening.store(true, Ordering::Relaxed);
    }

    /// Drains what arrived.
    pub(crate) fn take_events(&self) -> Vec<Event> {
        std::mem::take(&mut *self.events.lock().unwrap_or_else(|p| p.into_inner()))
    }

    fn push(&self, e: Event) {
        if self.listening.load(Ordering::Relaxed) {
            let mut events = self.events.lock().unwrap_or_else(|p| p.into_inner());
            // Held for a subscriber that has not come yet (`record_events`):
            // bounded, so a group nobody reads cannot grow without end.
            if events.len() < MAX_HELD {
                events.push(e);
            }
            drop(events);
            self.waker.wake();
        }
    }
}

/// A child of this process seen forking before any group claimed it.
struct Provisional {
    count: u64,
    alive: u64,
    exited: Vec<(u32, u64)>,
    seen: std::time::Instant,
    /// What happened in the subtree before the claim, for a group that
    /// records its events from the start (bounded by [`MAX_EARLY`]).
    events: Vec<Event>,
}

impl Provisional {
    fn note(&mut self, e: Event) {
        if self.events.len() < MAX_EARLY {
            self.events.push(e);
        }
    }
}

/// The most events kept for one provisional subtree.
const MAX_EARLY: usize = 1024;

#[derive(Default)]
struct State {
    /// pid -> (its group, its fork time in ns since boot; 0 for a leader).
    by_pid: HashMap<u32, (Arc<Tracked>, u64)>,
    /// pid -> (provisional root (a direct child of this process), fork time).
    provisional: HashMap<u32, (u32, u64)>,
    roots: HashMap<u32, Provisional>,
}

/// How much later than a moment an event dispatched must be stamped to
/// prove every event before that moment dispatched (see
/// [`Watcher::caught_up`]).
const REORDER_MARGIN: u64 = 10_000_000;

/// CLOCK_MONOTONIC in ns: the clock of the kernel's event stamps.
fn monotonic_ns() -> u64 {
    let mut t = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: t is valid for writes; CLOCK_MONOTONIC always exists.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut t) };
    (t.tv_sec as u64).saturating_mul(1_000_000_000).saturating_add(t.tv_nsec as u64)
}

/// Unclaimed provisional roots are forgotten after this long: they were
/// children of this process that corral did not spawn.
const PROVISIONAL_TTL: std::time::Duration = std::time::Duration::from_secs(5);

pub(crate) struct Watcher {
    state: Mutex<State>,
    /// The open socket, shared with its reader: [`Watcher::caught_up`]
    /// peeks at it.
    socket: Mutex<Option<Arc<OwnedFd>>>,
    /// The reader took events off the socket and has not dispatched them
    /// all yet.
    busy: AtomicBool,
    /// The kernel's timestamp (monotonic ns) of the latest event
    /// dispatched.
    last_ts: AtomicU64,
    /// Groups that found the reader behind: woken when it catches up.
    /// Each entry is one look that found it so, and a group looks again
    /// only when woken or sampled, so this holds at most a few per group.
    waiting: Mutex<Vec<Arc<dyn Wake>>>,
}

/// What the connector follows; it outlives the socket, which opens and
/// closes with the groups that need it.
pub(crate) fn watcher() -> &'static Watcher {
    static WATCHER: OnceLock<Watcher> = OnceLock::new();
    WATCHER.get_or_init(Watcher::new)
}

impl Watcher {
    fn new() -> Watcher {
        Watcher {
            state: Mutex::new(State::default()),
            socket: Mutex::new(None),
            busy: AtomicBool::new(false),
            last_ts: AtomicU64::new(0),
            waiting: Mutex::new(Vec::new()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The group learns its leader's pid: it takes over whatever of the
    /// leader's subtree was followed provisionally. The leader itself is
    /// not counted as alive: its own monitor reaps it.
    pub(crate) fn track(&self, leader: u32, t: &Arc<Tracked>) {
        let mut st = self.lock();
        t.alive.store(0, Ordering::Relaxed);
        if let Some(p) = st.roots.remove(&leader) {
            t.total.store(p.count, Ordering::Relaxed);
            t.alive.store(p.alive, Ordering::Relaxed);
            t.exited.lock().unwrap_or_else(|e| e.into_inner()).extend(p.exited);
            if t.listening.load(Ordering::Relaxed) {
                t.events.lock().unwrap_or_else(|e| e.into_inner()).extend(p.events);
            }
            let pids: Vec<(u32, u64)> =
                st.provisional.iter().filter(|(_, (r, _))| *r == leader).map(|(p, (_, ts))| (*p, *ts)).collect();
            for (p, ts) in pids {
                st.provisional.remove(&p);
                if p != leader {
                    st.by_pid.insert(p, (t.clone(), ts));
                }
            }
        }
        st.by_pid.insert(leader, (t.clone(), 0));
    }

    pub(crate) fn untrack(&self, t: &Arc<Tracked>) {
        self.lock().by_pid.retain(|_, (v, _)| !Arc::ptr_eq(v, t));
    }

    fn fork(&self, parent: u32, child: u32, ts: u64) {
        let me = std::process::id();
        let mut st = self.lock();
        if let Some((t, forked)) = st.by_pid.get(&child) {
            // A leader claimed before its own fork event was read: its
            // group learns of its start now (a claim that found it
            // forked already took the `Started` from its subtree).
            if *forked == 0 {
                let t = t.clone();
                drop(st);
                t.push(Event::Started { pid: child, ppid: Some(parent), exe: None });
            }
            return;
        }
        if let Some((t, _)) = st.by_pid.get(&parent).cloned() {
            st.by_pid.insert(child, (t.clone(), ts));
            t.total.fetch_add(1, Ordering::Relaxed);
            t.alive.fetch_add(1, Ordering::Relaxed);
            drop(st);
            t.push(Event::Started { pid: child, ppid: Some(parent), exe: None });
        } else if parent == me {
            let now = std::time::Instant::now();
            st.roots.retain(|_, p| now.duration_since(p.seen) < PROVISIONAL_TTL);
            let live: std::collections::HashSet<u32> = st.roots.keys().copied().collect();
            st.provisional.retain(|_, (r, _)| live.contains(r));
            st.provisional.insert(child, (child, ts));
            let mut root = Provisional { count: 1, alive: 0, exited: Vec::new(), seen: now, events: Vec::new() };
            root.note(Event::Started { pid: child, ppid: Some(parent), exe: None });
            st.roots.insert(child, root);
        } else if let Some((root, _)) = st.provisional.get(&parent).copied() {
            st.provisional.insert(child, (root, ts));
            if let Some(p) = st.roots.get_mut(&root) {
                p.count += 1;
                p.alive += 1;
                p.note(Event::Started { pid: child, ppid: Some(parent), exe: None });
            }
        }
    }

    /// An exec of a member, for lineage: its new image and arguments are
    /// read now, while the process surely lives (a short life ends before
    /// any subscriber could look).
    fn exec(&self, pid: u32) {
        let t = {
            let st = self.lock();
            match st.by_pid.get(&pid) {
                Some((t, _)) if t.listening.load(Ordering::Relaxed) => t.clone(),
                Some(_) => return,
                None => {
                    // Not claimed yet: kept with its provisional subtree.
                    let Some((root, _)) = st.provisional.get(&pid).copied() else { return };
                    drop(st);
                    let e = exec_event(pid);
                    if let Some(p) = self.lock().roots.get_mut(&root) {
                        p.note(e);
                    }
                    return;
                }
            }
        };
        t.push(exec_event(pid));
    }

    fn exit(&self, pid: u32, raw_status: u32) {
        let mut st = self.lock();
        if let Some((t, forked)) = st.by_pid.remove(&pid) {
            drop(st);
            if forked != 0 {
                t.exited.lock().unwrap_or_else(|p| p.into_inner()).push((pid, forked));
                // The last member gone: the group may be empty now, which
                // nothing else tells on the pgid backend but a sample.
                if t.alive.fetch_sub(1, Ordering::Relaxed) == 1 {
                    t.waker.wake();
                }
            }
            t.push(Event::Exited { pid, status: Some(unix::exit_status(raw_status as i32)) });
            return;
        }
        if let Some((root, ts)) = st.provisional.remove(&pid) {
            if let Some(p) = st.roots.get_mut(&root) {
                p.note(Event::Exited { pid, status: Some(unix::exit_status(raw_status as i32)) });
            }
            if root != pid {
                if let Some(p) = st.roots.get_mut(&root) {
                    p.alive = p.alive.saturating_sub(1);
                    p.exited.push((pid, ts));
                }
            }
            // A root's own exit needs nothing: its descendants still point
            // at it, and its record waits for the claim (or the TTL).
        }
    }

    /// The socket closed: what was followed provisionally can no longer
    /// be claimed completely.
    pub(super) fn closed(&self) {
        *self.socket.lock().unwrap_or_else(|p| p.into_inner()) = None;
        let mut st = self.lock();
        st.provisional.clear();
        st.roots.clear();
        drop(st);
        // Nothing is queued any more: a waiter is caught up.
        self.batch_done();
    }

    /// The socket just opened, before its reader starts.
    pub(super) fn opened(&self, fd: Arc<OwnedFd>) {
        *self.socket.lock().unwrap_or_else(|p| p.into_inner()) = Some(fd);
    }

    /// Whether every event the kernel queued before `since` (monotonic
    /// ns) has been dispatched: the socket holds none and the reader is
    /// not between taking a batch and dispatching it (checked in that
    /// order, so a batch taken in between is seen as the reader's); or,
    /// on a host whose events never let the socket run dry, an event
    /// stamped [`REORDER_MARGIN`] after `since` was dispatched (the
    /// kernel queues events in their stamps' order, give or take the
    /// moment between a stamp and its queueing). True with the socket
    /// closed (then no group is followed).
    pub(crate) fn caught_up(&self, since: u64) -> bool {
        if self.last_ts.load(Ordering::SeqCst) >= since.saturating_add(REORDER_MARGIN) {
            return true;
        }
        let Some(fd) = self.socket.lock().unwrap_or_else(|p| p.into_inner()).clone() else { return true };
        let mut b = [0u8; 1];
        // SAFETY: b is valid for writes of 1 byte; MSG_PEEK leaves the
        // datagram queued for the reader.
        let n = unsafe { libc::recv(fd.as_raw_fd(), b.as_mut_ptr().cast(), 1, libc::MSG_PEEK | libc::MSG_DONTWAIT) };
        if n >= 0 {
            return false;
        }
        match io::Error::last_os_error().raw_os_error() {
            Some(libc::EAGAIN) => !self.busy.load(Ordering::SeqCst),
            // The peek took the socket's overflow error (reported once):
            // act on it as the reader would have.
            Some(libc::ENOBUFS) => {
                self.overflowed();
                false
            }
            _ => false,
        }
    }

    fn wake_when_caught_up(&self, waker: Arc<dyn Wake>) {
        self.waiting.lock().unwrap_or_else(|p| p.into_inner()).push(waker);
    }

    /// The reader found the socket empty and dispatched all it took:
    /// whoever waited for that looks again.
    fn batch_done(&self) {
        self.busy.store(false, Ordering::SeqCst);
        let waiting = std::mem::take(&mut *self.waiting.lock().unwrap_or_else(|p| p.into_inner()));
        for w in waiting {
            w.wake();
        }
    }

    fn overflowed(&self) {
        let st = self.lock();
        for (t, _) in st.by_pid.values() {
            t.lost.store(true, Ordering::Relaxed);
        }
    }
}

/// An `Exec` read from `/proc` now. A program that exits at once may be a
/// zombie already: its arguments are gone, its name (`[comm]`) is not.
fn exec_event(pid: u32) -> Event {
    let mut argv = super::procfs::argv(pid);
    if argv.is_empty() {
        argv.extend(Some(super::procfs::cmdline(pid)).filter(|c| c != "[]"));
    }
    Event::Exec { pid, exe: super::procfs::exe(pid), argv }
}

/// A connector socket that receives every process event of the host.
pub(super) fn open() -> io::Result<OwnedFd> {
    // SAFETY: plain socket(2) call.
    let fd = unsafe { libc::socket(libc::AF_NETLINK, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, NETLINK_CONNECTOR) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd is fresh and owned by nobody else.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: zeroed sockaddr_nl is valid; the fields are then set.
    let mut addr: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
    addr.nl_family = libc::AF_NETLINK as u16;
    addr.nl_pid = 0;
    addr.nl_groups = CN_IDX_PROC;
    let len = std::mem::size_of::<libc::sockaddr_nl>() as u32;
    // SAFETY: addr is a valid sockaddr_nl of `len` bytes.
    if unsafe { libc::bind(fd.as_raw_fd(), (&addr as *const libc::sockaddr_nl).cast(), len) } != 0 {
        return Err(io::Error::last_os_error());
    }
    drop_other_events(&fd);
    // A bigger receive buffer makes overflow under fork storms rarer.
    let size: libc::c_int = 4 << 20;
    // SAFETY: size is a valid c_int for the call.
    unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVBUFFORCE,
            (&size as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as u32,
        )
    };
    let msg = control_message(PROC_CN_MCAST_LISTEN);
    // SAFETY: msg is valid for its length.
    if unsafe { libc::send(fd.as_raw_fd(), msg.as_ptr().cast(), msg.len(), 0) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(fd)
}

/// Tells the kernel this socket stops listening: the kernel counts
/// listeners and sends process events only while there is one.
pub(super) fn stop_listening(fd: &OwnedFd) {
    let msg = control_message(PROC_CN_MCAST_IGNORE);
    // SAFETY: msg is valid for its length. A failure leaves the kernel
    // counting one listener too many, which costs it a little, not us.
    unsafe { libc::send(fd.as_raw_fd(), msg.as_ptr().cast(), msg.len(), libc::MSG_DONTWAIT) };
}

/// The 40-byte netlink message that asks the process connector to start
/// (`PROC_CN_MCAST_LISTEN`) or stop (`PROC_CN_MCAST_IGNORE`) multicasting to
/// this socket: an `nlmsghdr`, a `cn_msg` and the op as its payload.
fn control_message(op: u32) -> Vec<u8> {
    let mut msg = Vec::with_capacity(40);
    msg.extend_from_slice(&40u32.to_ne_bytes()); // nlmsg_len
    msg.extend_from_slice(&(libc::NLMSG_DONE as u16).to_ne_bytes());
    msg.extend_from_slice(&0u16.to_ne_bytes()); // flags
    msg.extend_from_slice(&0u32.to_ne_bytes()); // seq
    msg.extend_from_slice(&std::process::id().to_ne_bytes());
    msg.extend_from_slice(&CN_IDX_PROC.to_ne_bytes());
    msg.extend_from_slice(&CN_VAL_PROC.to_ne_bytes());
    msg.extend_from_slice(&0u32.to_ne_bytes()); // seq
    msg.extend_from_slice(&0u32.to_ne_bytes()); // ack
    msg.extend_from_slice(&4u16.to_ne_bytes()); // len of the op
    msg.extend_from_slice(&0u16.to_ne_bytes()); // flags
    msg.extend_from_slice(&op.to_ne_bytes());
    msg
}

/// Lets only fork, exec and exit events through, in the kernel: uid, sid,
/// comm and the other kinds would wake this process for nothing on a busy
/// host (exec is kept for lineage: what a process became). Classic BPF loads words in network byte order, so the native
/// little-endian `what` values appear byte-swapped here.
fn drop_other_events(fd: &OwnedFd) {
    let what = |v: u32| if cfg!(target_endian = "little") { v.swap_bytes() } else { v };
    let ins = |code: u32, jt: u8, jf: u8, k: u32| libc::sock_filter { code: code as u16, jt, jf, k };
    let prog = [
        ins(libc::BPF_LD | libc::BPF_W | libc::BPF_ABS, 0, 0, EVENT_AT as u32),
        ins(libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K, 3, 0, what(PROC_EVENT_FORK)),
        ins(libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K, 2, 0, what(PROC_EVENT_EXEC)),
        ins(libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K, 1, 0, what(PROC_EVENT_EXIT)),
        ins(libc::BPF_RET | libc::BPF_K, 0, 0, 0),
        ins(libc::BPF_RET | libc::BPF_K, 0, 0, u32::MAX),
    ];
    let fprog = libc::sock_fprog { len: prog.len() as u16, filter: prog.as_ptr() as *mut libc::sock_filter };
    // SAFETY: fprog points at `prog`, which outlives the call; the kernel copies it.
    // A failure only costs wakeups, so it is ignored.
    unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_ATTACH_FILTER,
            (&fprog as *const libc::sock_fprog).cast(),
            std::mem::size_of::<libc::sock_fprog>() as u32,
        )
    };
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

/// Reads events until `stop` is signalled, then stops listening; the
/// socket closes as the thread ends.
pub(super) fn read_loop(fd: Arc<OwnedFd>, stop: &super::EventFd) {
    let mut buf = vec![0u8; 64 * 1024];
    let w = watcher();
    loop {
        let ready = match super::poll_ready(&[(fd.as_raw_fd(), false), (stop.raw(), false)], None) {
            Ok(r) => r,
            Err(_) => {
                // A transient failure (ENOMEM): retry shortly, never spin.
                std::thread::sleep(std::time::Duration::from_millis(10));
                continue;
            }
        };
        if ready[1] {
            stop_listening(&fd);
            return;
        }
        // Everything queued, one wake-up for all of it. Busy from before
        // the first batch is taken until the socket is found empty.
        w.busy.store(true, Ordering::SeqCst);
        loop {
            // SAFETY: buf is valid for writes of its length.
            let n = unsafe { libc::recv(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), libc::MSG_DONTWAIT) };
            if n < 0 {
                match io::Error::last_os_error().raw_os_error() {
                    Some(libc::ENOBUFS) => w.overflowed(),
                    Some(libc::EINTR) => {}
                    Some(libc::EAGAIN) => break,
                    _ => {
                        // No more events will come: what is followed is
                        // incomplete from now on.
                        w.overflowed();
                        w.batch_done();
                        return;
                    }
                }
                continue;
            }
            dispatch(w, &buf[..n as usize]);
        }
        w.batch_done();
    }
}

/// One datagram, which may hold several netlink messages.
fn dispatch(w: &Watcher, buf: &[u8]) {
    let mut off = 0usize;
    let n = buf.len();
    while off + EVENT_AT + 16 <= n {
        let len = u32_at(buf, off).unwrap_or(0) as usize;
        let b = &buf[off..n];
        let stamp = b.get(EVENT_AT + 8..EVENT_AT + 16).and_then(|x| x.try_into().ok()).map(u64::from_ne_bytes);
        match u32_at(b, EVENT_AT) {
            Some(PROC_EVENT_FORK) => {
                let (ptgid, cpid, ctgid) = (u32_at(b, 56), u32_at(b, 60), u32_at(b, 64));
                if let (Some(p), Some(c), Some(ct), Some(ts)) = (ptgid, cpid, ctgid, stamp) {
                    if c == ct {
                        w.fork(p, c, ts);
                    }
                }
            }
            Some(PROC_EVENT_EXEC) => {
                if let (Some(p), Some(t)) = (u32_at(b, 52), u32_at(b, 56)) {
                    if p == t {
                        w.exec(p);
                    }
                }
            }
            Some(PROC_EVENT_EXIT) => {
                let (pid, tgid, code) = (u32_at(b, 52), u32_at(b, 56), u32_at(b, 60));
                if let (Some(p), Some(t), Some(c)) = (pid, tgid, code) {
                    if p == t {
                        w.exit(p, c);
                    }
                }
            }
            _ => {}
        }
        // After the event is dealt with: a look that sees this stamp sees
        // what the event changed.
        if let Some(ts) = stamp {
            w.last_ts.fetch_max(ts, Ordering::SeqCst);
        }
        if len == 0 {
            break;
        }
        off += (len + 3) & !3;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_message_is_one_nlmsg_of_40_bytes_ending_in_its_op() {
        for op in [PROC_CN_MCAST_LISTEN, PROC_CN_MCAST_IGNORE] {
            let msg = control_message(op);
            assert_eq!(msg.len(), 40);
            assert_eq!(u32_at(&msg, 0), Some(40));
            assert_eq!(u32_at(&msg, 16), Some(CN_IDX_PROC));
            assert_eq!(u32_at(&msg, 36), Some(op));
        }
    }

    #[derive(Default)]
    struct Count(std::sync::atomic::AtomicUsize);
    impl Wake for Count {
        fn wake(&self) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    /// A datagram socket standing in for the connector's: one event queued.
    fn socket_with_one_queued() -> (OwnedFd, OwnedFd) {
        let mut fds = [0; 2];
        // SAFETY: fds is valid for two ints; the new fds are owned below.
        let r = unsafe { libc::socketpair(libc::AF_UNIX, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0, fds.as_mut_ptr()) };
        assert_eq!(r, 0, "socketpair: {}", io::Error::last_os_error());
        // SAFETY: both fds were just created and are owned by nobody else.
        let (ours, peer) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        // SAFETY: one byte from a valid buffer.
        assert_eq!(unsafe { libc::send(peer.as_raw_fd(), [7u8].as_ptr().cast(), 1, 0) }, 1);
        (ours, peer)
    }

    #[test]
    fn a_group_that_finds_the_reader_behind_is_woken_when_it_has_caught_up() {
        let w = Watcher::new();
        let (ours, _peer) = socket_with_one_queued();
        let ours = Arc::new(ours);
        w.opened(ours.clone());
        let woken = Arc::new(Count::default());
        let t = Tracked::new(woken.clone());
        w.track(4242, &t);
        assert!(!t.settled_by(&w), "an event is still queued");
        assert_eq!(woken.0.load(Ordering::SeqCst), 0);
        // The reader takes the event and dispatches it.
        w.busy.store(true, Ordering::SeqCst);
        let mut b = [0u8; 8];
        // SAFETY: b is valid for writes of its length.
        assert_eq!(unsafe { libc::recv(ours.as_raw_fd(), b.as_mut_ptr().cast(), b.len(), libc::MSG_DONTWAIT) }, 1);
        assert!(!t.settled_by(&w), "taken but not dispatched yet");
        w.batch_done();
        assert!(woken.0.load(Ordering::SeqCst) >= 1, "the waiting group was not woken");
        assert!(t.settled_by(&w));
        // Woken once per wait, not on every later batch.
        let after = woken.0.load(Ordering::SeqCst);
        w.batch_done();
        assert_eq!(woken.0.load(Ordering::SeqCst), after);
    }

    #[test]
    fn the_exit_of_the_last_member_wakes_its_group() {
        let w = Watcher::new();
        let woken = Arc::new(Count::default());
        let t = Tracked::new(woken.clone());
        w.track(4242, &t);
        w.fork(4242, 4243, 1);
        w.fork(4243, 4244, 2);
        w.exit(4244, 0);
        assert_eq!(woken.0.load(Ordering::SeqCst), 0, "one member still runs");
        w.exit(4243, 0);
        assert_eq!(woken.0.load(Ordering::SeqCst), 1);
        // The leader's own exit is its pidfd's news, not the connector's.
        w.exit(4242, 0);
        assert_eq!(woken.0.load(Ordering::SeqCst), 1);
    }
}
