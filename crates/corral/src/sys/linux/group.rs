//! One Linux group: its directories ([`Parts`]), its leader, and the
//! notifications it waits on. The [`SysGroup`] surface is here; each
//! concern it calls into has a file of its own (`membership`, `enforce`,
//! `usage`, `poll`, `launch`, `take_over`, `teardown`).

use super::fds::{EventFd, Watched};
use super::io_throttle::io_devices;
use super::join_fds::JoinFds;
use super::leaf_pool::{self, Pooled, Shape};
use super::parts::{Holder, Parts};
use super::reaper::{self, Owner};
use super::{layout, pgid, proc_events, procfs, select, stale, unix, SAMPLE, STALE_SWEPT};
use crate::command::Leader as LeaderCmd;
use crate::sys::{Change, Readiness, Spawned, Spec, SysGroup, Wake};
use crate::{BackendKind, Enforcement, Error, ErrorKind, ExitStatus, Signal, Support, Usage};
use std::io;
use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock, RwLockReadGuard};
use std::time::{Duration, Instant};

/// The group's own wake-up: an eventfd in the poll set of whoever waits
/// for it.
pub(super) struct WakeFd {
    fd: EventFd,
    /// Signalled since it was last cleared: a pooled leaf hands its wake
    /// to the next group, which drains it only if so (a read that finds
    /// nothing was a system call on every spawn).
    armed: AtomicBool,
}

impl WakeFd {
    pub(super) fn new() -> io::Result<WakeFd> {
        Ok(WakeFd { fd: EventFd::new()?, armed: AtomicBool::new(false) })
    }

    pub(super) fn raw(&self) -> std::os::fd::RawFd {
        self.fd.raw()
    }

    /// Clears a wake that `poll` reported.
    pub(super) fn clear(&self) {
        self.armed.store(false, Ordering::Relaxed);
        self.fd.drain();
    }

    /// Clears a wake, if one came since the last clear. A wake racing
    /// with this is left for the next look, which it only costs a look.
    pub(super) fn clear_if_armed(&self) {
        if self.armed.swap(false, Ordering::Relaxed) {
            self.fd.drain();
        }
    }
}

impl Wake for WakeFd {
    fn wake(&self) {
        self.armed.store(true, Ordering::Relaxed);
        self.fd.signal();
    }
}

#[derive(Default)]
pub(super) struct Leader {
    pub(super) pid: u32,
    pub(super) pidfd: Option<OwnedFd>,
    /// The pidfd of the leader once reaped: closed with the group rather
    /// than at the reap, where its close (a few µs) was paid by the caller
    /// waiting for the outcome.
    pub(super) spent_pidfd: Option<OwnedFd>,
    pub(super) status: Option<ExitStatus>,
    /// Not our child (an adopted tree): its end comes from the pidfd and
    /// its status is unknown.
    pub(super) adopted: bool,
}

/// One Linux group.
pub(crate) struct Group {
    pub(super) parts: Parts,
    /// Boxed: inline, its 384 bytes made a group 1.2 KB, past what
    /// malloc's per-thread cache serves, and every spawn's allocation of
    /// one then made malloc consolidate its free lists first.
    pub(super) spec: Box<Spec>,
    pub(super) owner: OnceLock<Arc<Owner>>,
    pub(super) leader: Mutex<Leader>,
    pub(super) wake: Arc<WakeFd>,
    /// Kernel-signalled cgroup files: `cgroup.events`, `memory.events`, `pids.events`.
    pub(super) watched: Vec<Watched>,
    /// The leaf's `cgroup.kill`, opened with `watched` so that the kill is
    /// one write: no stat, open and close while the caller waits (and
    /// while the tree it kills needs the CPU). `None` before Linux 5.14.
    /// A pooled leaf's comes with it (a killed leaf is never pooled).
    pub(super) kill_file: Mutex<Option<std::fs::File>>,
    pub(super) seen_oom: AtomicU64,
    pub(super) seen_pids_max: AtomicU64,
    /// The limits in force: the spec's, until `set_limits` changes them.
    pub(super) live: Mutex<crate::Limits>,
    /// Notify-only limits: counters last seen (see `live_limits.rs`).
    pub(super) seen_high: AtomicU64,
    pub(super) seen_throttled: AtomicU64,
    pub(super) above_soft: AtomicBool,
    pub(super) enforcement: Vec<Enforcement>,
    pub(super) final_usage: Mutex<Option<Usage>>,
    pub(super) tag: Vec<u8>,
    /// Followed by the process-event connector, where it is permitted.
    pub(super) tracked: OnceLock<Arc<proc_events::Tracked>>,
    /// Held while this group needs the connector (`connector.rs`).
    pub(super) connector: Mutex<Option<proc_events::Lease>>,
    /// Set when its directories may go back to the pool (`leaf_pool.rs`).
    pub(super) shape: Option<Shape>,
    /// True once the directories went back to the pool: from then on they
    /// are the next group's, and this one must not touch them. Read-held
    /// by whatever acts on them, so the release waits for it.
    pub(super) released: RwLock<bool>,
    /// CPU time a reused leaf had counted before this group (`cpu.stat`
    /// cannot be reset).
    pub(super) cpu_base: (Duration, Duration),
    /// `cgroup.kill` was written: the leaf is never reused (see `leaf_pool.rs`).
    pub(super) leaf_killed: AtomicBool,
    /// `seen_oom` and `seen_pids_max` were both read after the group was
    /// found empty (it follows both: `enforce::Counted::all`), so they are
    /// final and a pooled leaf may carry them.
    pub(super) counts_final: AtomicBool,
    /// A look found the leader reaped and the leaf empty. Final: nothing
    /// joins an empty leaf that only corral writes to, so teardown and
    /// release trust it instead of reading `cgroup.events` twice more.
    pub(super) seen_empty: AtomicBool,
    /// What a `clone3` leader joins through; a pooled leaf's come with it.
    pub(super) joins: Mutex<Option<JoinFds>>,
    /// A reused leaf's v1 peak files, handed on with it (`reuse.rs`).
    pub(super) peaks: Mutex<Option<super::reuse::Peaks>>,
}

impl Group {
    pub(super) fn kind(&self) -> BackendKind {
        self.parts.kind()
    }

    pub(super) fn pgid(&self) -> u32 {
        self.leader.lock().map(|l| l.pid).unwrap_or(0)
    }

    pub(super) fn owner(&self) -> Option<&Arc<Owner>> {
        self.owner.get()
    }

    /// Held while acting on the directories; `None` once they went back to
    /// the pool.
    pub(super) fn hold(&self) -> Option<RwLockReadGuard<'_, bool>> {
        let g = self.released.read().unwrap_or_else(|p| p.into_inner());
        (!*g).then_some(g)
    }

    pub(super) fn leader_done(&self) -> bool {
        self.leader.lock().map(|l| l.status.is_some()).unwrap_or(false)
    }

    pub(super) fn pgid_members(&self) -> io::Result<Vec<u32>> {
        let found = pgid::members(self.pgid(), &self.tag)?;
        if let Some(o) = self.owner() {
            let mut k = o.known.lock().unwrap_or_else(|p| p.into_inner());
            for (pid, st) in &found {
                k.insert(*pid, st.starttime);
            }
        }
        let mut out: Vec<u32> = found.into_iter().map(|(p, _)| p).collect();
        out.extend(self.held_by_pid());
        Ok(out)
    }

    /// Remembers members by pid and start time, so that their zombies can
    /// be found and reaped where `/proc/<pid>/cgroup` no longer tells
    /// (cgroup v1 shows a zombie in the root cgroup; escapees leave the
    /// process group).
    pub(super) fn note_members(&self, pids: &[u32]) {
        let started: Vec<(u32, u64)> =
            pids.iter().filter_map(|&pid| procfs::stat(pid).map(|st| (pid, st.starttime))).collect();
        self.note_known(&started);
    }

    /// [`Group::note_members`] for members whose start time is known.
    pub(super) fn note_known(&self, members: &[(u32, u64)]) {
        let Some(o) = self.owner() else { return };
        let mut k = o.known.lock().unwrap_or_else(|p| p.into_inner());
        for &(pid, start) in members {
            // The latest process of that pid: an older one with the same
            // pid has exited (see `Owner::claims`).
            k.insert(pid, start);
        }
    }
}

/// The automatic choice of backend, kept once it is a cgroup one: the
/// layout is the process's own, and a root found writable stays known as
/// such (`hierarchy::writable`), so the answer cannot change. Made anew
/// it cost two error strings and a search of the known roots per spawn.
fn best_backend(l: &super::hierarchy::Layout) -> BackendKind {
    static BEST: OnceLock<BackendKind> = OnceLock::new();
    if let Some(k) = BEST.get() {
        return *k;
    }
    let k = select::choose(None, l).unwrap_or(BackendKind::Pgid);
    if k != BackendKind::Pgid {
        let _ = BEST.set(k);
    }
    k
}

impl SysGroup for Group {
    fn create(spec: &Spec) -> crate::Result<Self> {
        reaper::ensure();
        let l = layout();
        let kind = match spec.backend {
            Some(forced) => select::choose(Some(forced), l)?,
            None => best_backend(l),
        };
        // A re-attach runs before anything else of a restarted daemon: the
        // sweep would kill the very groups it takes back.
        if kind != BackendKind::Pgid && !spec.reattach {
            STALE_SWEPT.get_or_init(|| {
                stale::sweep(l);
            });
        }
        let enforcement: Vec<Enforcement> = spec
            .limits
            .kinds()
            .into_iter()
            .map(|k| Enforcement { limit: k, support: select::limit_support(kind, k, l, true) })
            .collect();
        let io_devices = io_devices(kind, spec, l)?;
        if kind == BackendKind::Pgid && !spec.limits.notify.is_empty() {
            return Err(Error::new(
                ErrorKind::Unsupported,
                "notify-only limits need cgroups, which throttle and refuse; the pgid backend can only kill",
            )
            .hint("run as root or with a delegated cgroup, or let these limits kill (on_limit = \"kill\")"));
        }
        if let Some(e) = enforcement.iter().find(|e| matches!(e.support, Support::No(_))) {
            return Err(Error::new(
                ErrorKind::Unsupported,
                format!("the {} cannot be enforced by the {kind} backend: {}", e.limit, e.support.detail()),
            )
            .hint("run `corral doctor` to see what this host enforces, or drop that limit"));
        }
        let cg_err = |what: &str, e: io::Error| {
            // Only a refusal is about permissions; a value the kernel
            // rejects (ERANGE, EINVAL) is about the limit itself.
            let hint = match e.raw_os_error() {
                Some(libc::EACCES | libc::EPERM | libc::EROFS) => "run as root, or under `systemd-run --user -p Delegate=yes`, or set CORRAL_CGROUP_ROOT to a writable cgroup",
                _ => "the kernel refused a limit's value: try a smaller one, and see `corral doctor`",
            };
            Error::os(format!("{what} for the {kind} backend"), e).hint(hint)
        };
        let shape = leaf_pool::shape(kind, spec, l);
        let (parts, reused, counts, joins, kill, events, peaks, wake) = match shape.as_ref().and_then(leaf_pool::take) {
            Some(Pooled { parts, limits, counts, joins, kill, events, peaks, wake, .. }) => {
                (parts, Some(limits), counts, joins, kill, events, peaks, wake)
            }
            None => {
                let mut parts = Parts::create(kind, spec, l, cg_err)?;
                if shape.is_some() {
                    parts.keep_counter_files();
                }
                (parts, None, None, None, None, None, None, None)
            }
        };
        let wake = match wake {
            // A late wake of the group that had it (its handle outlives it)
            // is drained now, or costs this group one look for nothing.
            Some(w) => {
                w.clear_if_armed();
                w
            }
            None => Arc::new(WakeFd::new().map_err(|e| Error::os("creating an eventfd", e))?),
        };
        let mut me = Group {
            parts,
            spec: Box::new(spec.clone()),
            owner: OnceLock::new(),
            leader: Mutex::new(Leader::default()),
            wake,
            watched: Vec::new(),
            kill_file: Mutex::new(kill),
            seen_oom: AtomicU64::new(0),
            seen_pids_max: AtomicU64::new(0),
            live: Mutex::new(spec.limits.clone()),
            seen_high: AtomicU64::new(0),
            seen_throttled: AtomicU64::new(0),
            above_soft: Default::default(),
            enforcement,
            final_usage: Mutex::new(None),
            tag: format!("CORRAL_GROUP={}", spec.id).into_bytes(),
            tracked: OnceLock::new(),
            // Open before the spawn, so that it sees the leader's first forks.
            connector: Mutex::new(
                proc_events::needed(kind, spec.record_events, spec.count_processes, reaper::reaping_all())
                    .then(proc_events::Lease::take)
                    .flatten(),
            ),
            shape,
            released: RwLock::new(false),
            cpu_base: Default::default(),
            leaf_killed: AtomicBool::new(false),
            counts_final: AtomicBool::new(false),
            seen_empty: AtomicBool::new(false),
            joins: Mutex::new(joins),
            peaks: Mutex::new(None),
        };
        if let Some(old) = &reused {
            me.prepare_reuse(old, counts, peaks).map_err(|e| cg_err("resetting a reused cgroup", e))?;
        }
        // On failure, Drop removes the directories: no leader ever ran.
        me.configure(reused.as_ref(), events).map_err(|e| cg_err("setting the limits", e))?;
        me.configure_io(&io_devices).map_err(|e| cg_err("setting the I/O limits", e))?;
        Ok(me)
    }

    fn spawn_leader(&self, cmd: LeaderCmd) -> crate::Result<Spawned> {
        self.launch(cmd)
    }

    fn adopt_leader(&self, pid: u32) -> crate::Result<Spawned> {
        self.take_running(pid, None)
    }

    fn reattach_leader(&self, id: &str, pid: u32, start: u64) -> crate::Result<Spawned> {
        self.take_running(pid, Some((id, start)))
    }

    fn kind(&self) -> BackendKind {
        self.parts.kind()
    }

    fn enforcement(&self) -> Vec<Enforcement> {
        self.enforcement.clone()
    }

    fn enforces_cpu_time(&self) -> bool {
        false
    }

    fn members(&self) -> io::Result<Vec<u32>> {
        let Some(_held) = self.hold() else { return Ok(Vec::new()) };
        self.members_inner()
    }

    fn graceful_stop(&self, signal: Signal) -> io::Result<()> {
        let Some(_held) = self.hold() else { return Ok(()) };
        let members = self.members_inner()?;
        self.note_members(&members);
        if let Holder::Pgid = self.parts.holder() {
            let _ = unix::killpg(self.pgid(), signal.as_raw());
            let _ = unix::killpg(self.pgid(), libc::SIGCONT);
        }
        unix::signal_then_cont(&members, signal);
        Ok(())
    }

    fn kill(&self) -> io::Result<()> {
        let Some(_held) = self.hold() else { return Ok(()) };
        match self.kill_members() {
            // The monitor's teardown removes the cgroups once every member
            // is reaped; a kill that races it finds them gone (ENOENT) or
            // being removed (ENODEV), and there is nothing left to kill.
            Err(e) if matches!(e.raw_os_error(), Some(libc::ENOENT | libc::ENODEV)) => Ok(()),
            r => r,
        }
    }

    fn usage(&self) -> Usage {
        if let Some(u) = self.final_usage.lock().unwrap_or_else(|p| p.into_inner()).clone() {
            return u;
        }
        self.live_usage()
    }

    fn wait(&self, timeout: Option<Duration>) -> io::Result<Vec<Change>> {
        let (fds, must_sample) = self.poll_set();
        let timeout = match (timeout, must_sample) {
            (Some(t), true) => Some(t.min(SAMPLE)),
            (None, true) => Some(SAMPLE),
            (t, false) => t,
        };
        let ready = super::fds::poll_ready(&fds, timeout)?;
        Ok(self.collect(&fds, &ready, must_sample))
    }

    fn readiness(&self) -> Option<Readiness> {
        let (fds, must_sample) = self.poll_set();
        Some(Readiness { fds, sample: must_sample.then_some(SAMPLE) })
    }

    fn waker(&self) -> Arc<dyn Wake> {
        self.wake.clone()
    }

    fn teardown(&self, deadline: Instant) -> usize {
        self.tear_down(deadline)
    }

    fn teardown_if_settled(&self) -> Option<usize> {
        self.tear_down_if_settled()
    }

    fn settling(&self) -> bool {
        matches!(self.parts.holder(), Holder::Pgid)
            && self.leader_done()
            && self.tracked.get().is_some_and(|t| t.settling())
    }

    fn empty_is_final(&self) -> bool {
        // A member cannot leave its cgroup (only a privileged writer of
        // another cgroup's `cgroup.procs` could move it, which no backend
        // can see): an empty cgroup has no process left running, only
        // zombies that the teardown reaps.
        self.parts.in_cgroup()
    }

    fn observes_lineage(&self) -> bool {
        self.tracked.get().is_some()
    }

    fn take_events(&self) -> Option<Vec<crate::Event>> {
        self.tracked.get().map(|t| t.take_events())
    }

    fn listen(&self) {
        if let Some(t) = self.tracked.get() {
            t.listen();
        }
    }

    fn set_limits(&self, limits: &crate::Limits) -> crate::Result<()> {
        let Some(_held) = self.hold() else {
            return Err(Error::new(ErrorKind::InvalidInput, "the group has ended: its limits cannot change"));
        };
        self.change_limits(limits)
    }

    fn location(&self) -> String {
        match self.parts.holder() {
            Holder::Leaf(v2) => v2.dir.display().to_string(),
            Holder::V1(v1) => {
                v1.dir("pids").or_else(|| v1.dir("freezer")).map(|d| d.display().to_string()).unwrap_or_default()
            }
            Holder::Pgid => format!("process group {}", self.pgid()),
        }
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        // A group whose teardown never ran (spawn failed) leaves no directory.
        if self.leader.lock().map(|l| l.pid == 0).unwrap_or(false) {
            self.parts.remove();
        }
    }
}
