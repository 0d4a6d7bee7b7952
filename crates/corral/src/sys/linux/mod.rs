//! Linux: a group is a cgroup (v2, v1, or both on a hybrid host) or, without
//! cgroup permission, a process group swept by a subreaper.
//!
//! Traps this module exists to avoid:
//! - A process must join its cgroup before it runs user code, or a fast
//!   fork escapes. The leader writes `0` into each v1 `tasks` and the v2
//!   `cgroup.procs` in the child between fork and exec (fds opened by the
//!   parent, so the child only calls `write`).
//! - `PR_SET_PDEATHSIG` fires when the parent *thread* exits; the monitor
//!   thread that forks the leader lives as long as the group.
//! - Zombies are not members of a cgroup, yet they hold pids: "gone" is
//!   "reaped", and this process reaps them as a child subreaper.
//! - A cgroup cannot be removed while it holds a task; teardown kills,
//!   waits for `populated 0`, reaps, then removes.

mod adopt;
mod block_device;
mod cgroup_v1;
mod cgroup_v2;
mod connector;
mod fds;
mod hierarchy;
mod io_throttle;
mod leftovers;
mod live_limits;
mod pgid;
mod poller;
mod proc_events;
mod procfs;
mod reaper;
mod select;
mod spawn;
mod stale;

use self::cgroup_v1::CgroupV1;
use self::cgroup_v2::CgroupV2;
use self::fds::Watched;
pub(crate) use self::fds::{poll_ready, EventFd};
use self::hierarchy::Layout;
use self::io_throttle::io_devices;
pub(crate) use self::poller::Poller;
use self::reaper::Owner;
use super::{unix, Change, Spawned, Spec, SysGroup, Wake};
use crate::command::Leader as LeaderCmd;
use crate::{
    BackendKind, Enforcement, Error, ErrorKind, ExitStatus, HostReport, LimitKind, ProcessInfo, Signal, SpawnPath,
    Support, Usage,
};
use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// Sampling period for what the kernel cannot notify: emptiness without
/// `cgroup.events`, and the pgid backend's memory and process counts.
const SAMPLE: Duration = Duration::from_millis(20);

static LAYOUT: OnceLock<Layout> = OnceLock::new();
static STALE_SWEPT: OnceLock<()> = OnceLock::new();

fn layout() -> &'static Layout {
    LAYOUT.get_or_init(|| {
        // SAFETY: registers a plain extern "C" function, once.
        unsafe { libc::atexit(remove_empty_roots) };
        hierarchy::discover()
    })
}

/// At exit, removes corral's cgroup roots if no group is left in them, so
/// an idle host keeps no corral directories. Keeping them for the life of
/// the process spares a mkdir and an rmdir per hierarchy on every spawn.
/// An rmdir fails harmlessly while another process's group lives there.
extern "C" fn remove_empty_roots() {
    if let Some(l) = LAYOUT.get() {
        for root in l.v2_root.iter().chain(l.v1_roots.iter().map(|(_, r)| r)) {
            let _ = std::fs::remove_dir(root);
        }
    }
}

struct WakeFd(EventFd);

impl Wake for WakeFd {
    fn wake(&self) {
        self.0.signal();
    }
}

#[derive(Default)]
struct Leader {
    pid: u32,
    pidfd: Option<OwnedFd>,
    status: Option<ExitStatus>,
    /// Not our child (an adopted tree): its end comes from the pidfd and
    /// its status is unknown.
    adopted: bool,
}

/// One Linux group.
pub(crate) struct Group {
    kind: BackendKind,
    spec: Spec,
    v2: Option<CgroupV2>,
    v1: Option<CgroupV1>,
    owner: OnceLock<Arc<Owner>>,
    leader: Mutex<Leader>,
    wake: Arc<WakeFd>,
    /// Kernel-signalled cgroup files: `cgroup.events`, `memory.events`, `pids.events`.
    watched: Vec<Watched>,
    seen_oom: AtomicU64,
    seen_pids_max: AtomicU64,
    /// The limits in force: the spec's, until `set_limits` changes them.
    live: Mutex<crate::Limits>,
    /// Notify-only limits: counters last seen (see `live_limits.rs`).
    seen_high: AtomicU64,
    seen_throttled: AtomicU64,
    above_soft: std::sync::atomic::AtomicBool,
    enforcement: Vec<Enforcement>,
    final_usage: Mutex<Option<Usage>>,
    tag: Vec<u8>,
    /// Followed by the process-event connector, where it is permitted.
    tracked: OnceLock<Arc<proc_events::Tracked>>,
    /// Held while this group needs the connector (`connector.rs`).
    connector: Mutex<Option<proc_events::Lease>>,
}

impl Group {
    fn pgid(&self) -> u32 {
        self.leader.lock().map(|l| l.pid).unwrap_or(0)
    }

    fn owner(&self) -> Option<&Arc<Owner>> {
        self.owner.get()
    }

    fn pgid_members(&self) -> io::Result<Vec<u32>> {
        let found = pgid::members(self.pgid(), &self.tag)?;
        if let Some(o) = self.owner() {
            let mut k = o.known.lock().unwrap_or_else(|p| p.into_inner());
            for (pid, st) in &found {
                k.insert(*pid, st.starttime);
            }
        }
        Ok(found.into_iter().map(|(p, _)| p).collect())
    }

    /// Remembers members by pid and start time, so that their zombies can
    /// be found and reaped where `/proc/<pid>/cgroup` no longer tells
    /// (cgroup v1 shows a zombie in the root cgroup; escapees leave the
    /// process group).
    fn note_members(&self, pids: &[u32]) {
        let Some(o) = self.owner() else { return };
        let mut k = o.known.lock().unwrap_or_else(|p| p.into_inner());
        for &pid in pids {
            if let Some(st) = procfs::stat(pid) {
                k.entry(pid).or_insert(st.starttime);
            }
        }
    }

    fn limit_changes(&self) -> Vec<Change> {
        let live = self.live_limits();
        let mut out = self.limit_notices(&live);
        let ooms = match (&self.v2, &self.v1) {
            (_, Some(v1)) if v1.has("memory") => v1.oom_kills(),
            (Some(v2), _) if self.kind == BackendKind::CgroupV2 => v2.oom_kills(),
            _ => 0,
        };
        let kill_on_memory = live.memory.is_some() && !live.notifies(LimitKind::Memory);
        if ooms > self.seen_oom.swap(ooms, Ordering::Relaxed) && kill_on_memory {
            out.push(Change::Limit(LimitKind::Memory));
        }
        let hits = match (&self.v2, &self.v1) {
            (_, Some(v1)) if v1.has("pids") => v1.pids_max_hits(),
            (Some(v2), _) if self.kind == BackendKind::CgroupV2 => v2.pids_max_hits(),
            _ => 0,
        };
        if hits > self.seen_pids_max.swap(hits, Ordering::Relaxed) && live.max_procs.is_some() {
            out.push(match live.notifies(LimitKind::Processes) {
                true => Change::LimitNotice(LimitKind::Processes),
                false => Change::Limit(LimitKind::Processes),
            });
        }
        out
    }

    /// The pgid backend's sampled limits.
    fn sampled_limits(&self) -> Vec<Change> {
        let l = &self.live_limits();
        if self.kind != BackendKind::Pgid || (l.memory.is_none() && l.max_procs.is_none()) {
            return vec![];
        }
        let Ok(m) = self.pgid_members() else { return vec![] };
        let mut out = Vec::new();
        if let Some(max) = l.max_procs {
            if m.len() > max as usize {
                out.push(Change::Limit(LimitKind::Processes));
            }
        }
        if let Some(mem) = l.memory {
            let rss: u64 = m.iter().filter_map(|p| procfs::rss_bytes(*p)).sum();
            if rss > mem {
                out.push(Change::Limit(LimitKind::Memory));
            }
        }
        out
    }

    fn is_empty(&self) -> bool {
        match (&self.v2, &self.v1) {
            (Some(v2), _) => !v2.populated().unwrap_or(true) || v2.members().map(|m| m.is_empty()).unwrap_or(false),
            (None, Some(v1)) => v1.members().map(|m| m.is_empty()).unwrap_or(false),
            // The event connector knows when every descendant has exited,
            // which spares a scan of all of /proc.
            (None, None) => match self.tracked.get() {
                Some(t) if !t.lost() => t.settled() && self.leader.lock().map(|l| l.status.is_some()).unwrap_or(false),
                _ => self.pgid_members().map(|m| m.is_empty()).unwrap_or(false),
            },
        }
    }

    fn has_empty_notification(&self) -> bool {
        self.v2.is_some() && !self.watched.is_empty()
    }

    fn live_usage(&self) -> Usage {
        let mut u = Usage::default();
        let members = self.members_cheap().unwrap_or_default();
        u.processes_active = members.len() as u64;
        u.processes_total = self.tracked.get().and_then(|t| t.total());
        let cpu = match (&self.v2, &self.v1) {
            (Some(v2), _) => v2.cpu(),
            (None, Some(v1)) => v1.cpu(),
            _ => None,
        };
        match cpu {
            Some((user, sys)) => {
                u.cpu_user = user;
                u.cpu_system = sys;
            }
            None => {
                // pgid: what reaped members used, plus the live ones now.
                let ticks = unix::clock_ticks();
                if let Some(o) = self.owner() {
                    let r = *o.reaped.lock().unwrap_or_else(|p| p.into_inner());
                    u.cpu_user = r.user;
                    u.cpu_system = r.system;
                    u.peak_memory = Some(r.maxrss);
                }
                for p in &members {
                    if let Some(st) = procfs::stat(*p) {
                        u.cpu_user += Duration::from_secs_f64(st.utime as f64 / ticks as f64);
                        u.cpu_system += Duration::from_secs_f64(st.stime as f64 / ticks as f64);
                    }
                }
                let now: u64 = members.iter().filter_map(|p| procfs::rss_bytes(*p)).sum();
                u.memory_now = Some(now);
                let biggest = members.iter().filter_map(|p| procfs::rss_bytes(*p)).max().unwrap_or(0);
                u.peak_memory = Some(u.peak_memory.unwrap_or(0).max(biggest));
            }
        }
        match (&self.v2, &self.v1) {
            (_, Some(v1)) if v1.has("memory") => {
                u.peak_memory = v1.memory_peak();
                u.memory_now = v1.memory_current();
            }
            (Some(v2), _) if self.kind == BackendKind::CgroupV2 => {
                u.peak_memory = v2.memory_peak();
                u.memory_now = v2.memory_current();
            }
            _ => {}
        }
        u
    }

    /// Like `members_inner`, but trusts the event connector's "all
    /// exited" on the pgid backend instead of scanning all of /proc.
    fn members_cheap(&self) -> io::Result<Vec<u32>> {
        let leader_gone = self.leader.lock().map(|l| l.status.is_some()).unwrap_or(false);
        if self.v2.is_none()
            && self.v1.is_none()
            && leader_gone
            && self.tracked.get().is_some_and(|t| !t.lost() && t.settled())
        {
            return Ok(Vec::new());
        }
        self.members_inner()
    }

    fn members_inner(&self) -> io::Result<Vec<u32>> {
        match (&self.v2, &self.v1) {
            (Some(v2), _) => v2.members(),
            (None, Some(v1)) => v1.members(),
            (None, None) => self.pgid_members(),
        }
    }

    fn reap_leader(&self) -> Option<ExitStatus> {
        let mut l = self.leader.lock().unwrap_or_else(|p| p.into_inner());
        if l.adopted {
            return adopted_leader_ended(&mut l);
        }
        let pid = l.pid;
        let (st, ru) = unix::reap_once(pid, &mut l.status)?;
        l.pidfd = None;
        if let Some(o) = self.owner() {
            o.reaped.lock().unwrap_or_else(|p| p.into_inner()).add(&ru);
        }
        Some(st)
    }
}

fn needed_v1(kind: BackendKind, spec: &Spec) -> Vec<&'static str> {
    let l = &spec.limits;
    let mut c = Vec::new();
    match kind {
        BackendKind::Hybrid => {
            c.push("memory");
            if l.max_procs.is_some() {
                c.push("pids");
            }
            if l.cpus.is_some() {
                c.push("cpu");
            }
            if !l.io.is_empty() {
                c.push("blkio");
            }
        }
        BackendKind::CgroupV1 => {
            c.extend(["freezer", "pids", "memory", "cpuacct"]);
            if l.cpus.is_some() {
                c.push("cpu");
            }
            if !l.io.is_empty() {
                c.push("blkio");
            }
        }
        _ => {}
    }
    c
}

impl SysGroup for Group {
    fn create(spec: &Spec) -> crate::Result<Self> {
        reaper::ensure();
        let l = layout();
        let kind = select::choose(spec.backend, l)?;
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
        let mut v2 = None;
        if matches!(kind, BackendKind::CgroupV2 | BackendKind::Hybrid) {
            let root = l.v2_root.as_ref().expect("checked by select::available");
            let mut ctl: Vec<&str> = Vec::new();
            if kind == BackendKind::CgroupV2 {
                let lim = &spec.limits;
                let io = !lim.io.is_empty();
                for (want, c) in
                    [(true, "memory"), (lim.max_procs.is_some(), "pids"), (lim.cpus.is_some(), "cpu"), (io, "io")]
                {
                    if want && l.v2_controllers.iter().any(|x| x == c) {
                        ctl.push(c);
                    }
                }
            }
            v2 = Some(CgroupV2::create(root, &spec.id, &ctl).map_err(|e| cg_err("creating the cgroup", e))?);
        }
        let mut v1 = None;
        let wanted = needed_v1(kind, spec);
        if !wanted.is_empty() {
            match CgroupV1::create(l, &spec.id, &wanted) {
                Ok(c) => v1 = Some(c),
                Err(e) => {
                    if let Some(v) = &v2 {
                        let _ = v.remove();
                    }
                    return Err(cg_err("creating the v1 cgroups", e));
                }
            }
        }
        let mut me = Group {
            kind,
            spec: spec.clone(),
            v2,
            v1,
            owner: OnceLock::new(),
            leader: Mutex::new(Leader::default()),
            wake: Arc::new(WakeFd(EventFd::new().map_err(|e| Error::os("creating an eventfd", e))?)),
            watched: Vec::new(),
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
                proc_events::needed(kind, spec.record_events, spec.count_processes)
                    .then(proc_events::Lease::take)
                    .flatten(),
            ),
        };
        // On failure, Drop removes the directories: no leader ever ran.
        me.configure().map_err(|e| cg_err("setting the limits", e))?;
        me.configure_io(&io_devices).map_err(|e| cg_err("setting the I/O limits", e))?;
        Ok(me)
    }

    fn spawn_leader(&self, cmd: LeaderCmd) -> crate::Result<Spawned> {
        unix::hygiene::restore_sigchld()?;
        let leader = match self.try_clone3(cmd)? {
            Ok(started) => return Ok(started),
            Err(leader) => leader,
        };
        let id = self.spec.id.clone();
        // Passed fds and pid variables: the last hook execs the leader itself.
        let image = match &leader {
            LeaderCmd::Own(c) => unix::passing::ExecImage::of(c, &[("CORRAL_GROUP", &id)])
                .map_err(|e| Error::os(format!("starting {}", c.get_program().to_string_lossy()), e))?,
            LeaderCmd::Std(_) => None,
        };
        let mut cmd = leader.into_std();
        cmd.env("CORRAL_GROUP", &id);
        cmd.process_group(0);
        let mut files: Vec<PathBuf> = Vec::new();
        if let Some(v1) = &self.v1 {
            files.extend(v1.join_files());
        }
        // v2 has no single-thread shortcut between domains (`cgroup.threads`
        // is for threaded subtrees): this write waits for the lock.
        if let Some(v2) = &self.v2 {
            files.push(v2.file("cgroup.procs"));
        }
        let mut fds: Vec<std::fs::File> = Vec::new();
        for f in &files {
            let file = std::fs::OpenOptions::new().write(true).open(f).map_err(|e| {
                Error::os(format!("opening {}", f.display()), e).hint("the cgroup is not writable by this user")
            })?;
            fds.push(file);
        }
        let raw: Vec<RawFd> = fds.iter().map(|f| f.as_raw_fd()).collect();
        let rlimits = unix::process_rlimits(&self.spec.limits);
        let sweep = unix::hygiene::FdSweep::prepare();
        // SAFETY: getpid has no preconditions.
        let parent = unsafe { libc::getpid() };
        let death_signal = !self.spec.outlive;
        // SAFETY: the closure runs between fork and exec and only makes
        // async-signal-safe syscalls on fds and values captured by copy.
        unsafe {
            cmd.pre_exec(move || {
                for &fd in &raw {
                    if libc::write(fd, b"0".as_ptr().cast(), 1) != 1 {
                        return Err(io::Error::last_os_error());
                    }
                }
                if death_signal {
                    if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) != 0 {
                        return Err(io::Error::last_os_error());
                    }
                    // The parent may have died before pdeathsig was armed.
                    if libc::getppid() != parent {
                        libc::_exit(137);
                    }
                }
                unix::apply_rlimits(&rlimits)?;
                unix::hygiene::reset_ignored_signals();
                unix::hygiene::close_inherited_fds(sweep, 3)
            });
        }
        if let Some(image) = image {
            image.install(&mut cmd);
        }
        let program = cmd.get_program().to_string_lossy().into_owned();
        let guard = reaper::spawning();
        let child = cmd.spawn().map_err(|e| spawn_error(&program, e))?;
        self.adopt(child.id(), fds::pidfd_open(child.id()).ok());
        drop(guard);
        drop(fds);
        Ok(Spawned::from_child(child, SpawnPath::Fork))
    }

    fn adopt_leader(&self, pid: u32) -> crate::Result<Spawned> {
        self.take_running(pid, None)
    }

    fn reattach_leader(&self, id: &str, pid: u32, start: u64) -> crate::Result<Spawned> {
        self.take_running(pid, Some((id, start)))
    }

    fn kind(&self) -> BackendKind {
        self.kind
    }

    fn enforcement(&self) -> Vec<Enforcement> {
        self.enforcement.clone()
    }

    fn enforces_cpu_time(&self) -> bool {
        false
    }

    fn members(&self) -> io::Result<Vec<u32>> {
        self.members_inner()
    }

    fn graceful_stop(&self, signal: Signal) -> io::Result<()> {
        let members = self.members_inner()?;
        self.note_members(&members);
        if self.kind == BackendKind::Pgid {
            let _ = unix::killpg(self.pgid(), signal.as_raw());
            let _ = unix::killpg(self.pgid(), libc::SIGCONT);
        }
        unix::signal_then_cont(&members, signal);
        Ok(())
    }

    fn kill(&self) -> io::Result<()> {
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
        let ready = fds::poll_ready(&fds, timeout)?;
        Ok(self.collect(&fds, &ready))
    }

    fn readiness(&self) -> Option<super::Readiness> {
        let (fds, must_sample) = self.poll_set();
        Some(super::Readiness { fds, sample: must_sample.then_some(SAMPLE) })
    }

    fn waker(&self) -> Arc<dyn Wake> {
        self.wake.clone()
    }

    fn teardown(&self, deadline: Instant) -> usize {
        if self.pgid() == 0 {
            // Nothing ever ran (the spawn or the adoption failed). On the
            // pgid backend process group 0 would mean this process's own:
            // a failed spawn used to stop and kill its caller's group.
            self.remove_dirs();
            return 0;
        }
        let owner = self.owner().cloned();
        let mut remaining: Vec<u32>;
        let settle_by = Instant::now() + Duration::from_millis(500);
        loop {
            if let Some(o) = &owner {
                reaper::sweep(Some(o));
            }
            reaper::sweep_unattributed_if_reaping_all();
            self.reap_leader();
            let live = self.members_cheap().unwrap_or_default();
            if !live.is_empty() {
                let _ = self.kill();
                remaining = live;
            } else {
                // Empty is not gone: a member leaves its cgroup before its
                // orphans are re-parented to us, and zombies hold pids
                // until reaped. Look for anything of ours still in /proc:
                // the members the event connector saw exit, once it has
                // seen every member exit; else a scan of all of /proc.
                let tracked = self.tracked.get();
                if tracked.is_some_and(|t| !t.settled() && !t.lost()) && Instant::now() < settle_by {
                    // The event reader has not read every exit yet.
                    std::thread::sleep(Duration::from_micros(100));
                    continue;
                }
                remaining = match tracked {
                    Some(t) if t.settled() => t.unreaped(),
                    // A cgroup lists its members: once it is empty, what is
                    // left are this process's children not reaped yet.
                    _ if self.kind != BackendKind::Pgid => {
                        owner.as_deref().map(reaper::unreaped_children).unwrap_or_default()
                    }
                    _ => self.remaining(&owner),
                };
                if remaining.is_empty() {
                    break;
                }
            }
            if Instant::now() >= deadline {
                break;
            }
            std::thread::sleep(Duration::from_micros(500));
        }
        let usage = self.live_usage();
        *self.final_usage.lock().unwrap_or_else(|p| p.into_inner()) = Some(usage);
        let leftover = remaining.len();
        if leftover == 0 {
            self.remove_dirs();
        }
        if let Some(o) = &owner {
            let pid = self.leader.lock().map(|l| l.pid).unwrap_or(0);
            reaper::unregister(pid, o);
        }
        drop(self.connector.lock().unwrap_or_else(|p| p.into_inner()).take());
        leftover
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
        self.change_limits(limits)
    }

    fn location(&self) -> String {
        match (&self.v2, &self.v1) {
            (Some(v2), _) => v2.dir.display().to_string(),
            (None, Some(v1)) => {
                v1.dir("pids").or_else(|| v1.dir("freezer")).map(|d| d.display().to_string()).unwrap_or_default()
            }
            (None, None) => format!("process group {}", self.pgid()),
        }
    }
}

impl Group {
    /// The fds whose readiness is news (with `true` for the cgroup files
    /// signalled by POLLPRI), and whether the group must be looked at
    /// every `SAMPLE` anyway, for what the kernel cannot notify.
    fn poll_set(&self) -> (Vec<(RawFd, bool)>, bool) {
        let (pidfd, leader_done) = {
            let l = self.leader.lock().unwrap_or_else(|p| p.into_inner());
            (l.pidfd.as_ref().map(|f| f.as_raw_fd()), l.status.is_some())
        };
        let mut fds = vec![(self.wake.0.raw(), false)];
        if let Some(p) = pidfd {
            fds.push((p, false));
        }
        fds.extend(self.watched.iter().map(|w| (w.raw(), true)));
        if let Some(e) = self.v1.as_ref().and_then(|v| v.oom_event.as_ref()) {
            fds.push((e.raw(), false));
        }
        // Sample what the kernel cannot notify.
        let lim = &self.live_limits();
        let sampled = (self.kind == BackendKind::Pgid && (lim.memory.is_some() || lim.max_procs.is_some()))
            || (self.v1.as_ref().is_some_and(|v| v.has("pids")) && lim.max_procs.is_some())
            || !lim.notify.is_empty();
        let must_sample =
            sampled || (leader_done && !self.has_empty_notification()) || (pidfd.is_none() && !leader_done);
        (fds, must_sample)
    }

    /// What changed, once `poll` reported `ready` for `fds`; re-arms the
    /// notifications it consumed. Never blocks.
    fn collect(&self, fds: &[(RawFd, bool)], ready: &[bool]) -> Vec<Change> {
        self.wake.0.drain();
        for w in &self.watched {
            if fds.iter().position(|(f, _)| *f == w.raw()).and_then(|i| ready.get(i).copied()).unwrap_or(false) {
                w.rearm();
            }
        }
        if let Some(e) = self.v1.as_ref().and_then(|v| v.oom_event.as_ref()) {
            e.drain();
        }
        let mut out = Vec::new();
        if let Some(st) = self.reap_leader() {
            out.push(Change::LeaderExited(st));
        }
        out.extend(self.limit_changes());
        out.extend(self.sampled_limits());
        let leader_gone = self.leader.lock().map(|l| l.status.is_some()).unwrap_or(true);
        if leader_gone && self.is_empty() {
            out.push(Change::Empty);
        }
        out
    }
}

impl Group {
    /// Starts a corral `Command` with `clone3` straight into the group.
    /// Gives the command back for the fork path when `clone3` is
    /// refused, forced off, or the command is std's own.
    fn try_clone3(&self, cmd: LeaderCmd) -> crate::Result<Result<Spawned, LeaderCmd>> {
        let isolated = !self.spec.isolation.is_empty();
        let cmd = match cmd {
            // An isolated spawn is fork-like already: CORRAL_SPAWN=fork
            // changes nothing for it.
            LeaderCmd::Own(c) if isolated || (!self.spec.force_fork && spawn::enabled()) => c,
            LeaderCmd::Std(_) if isolated => {
                return Err(Error::new(ErrorKind::Unsupported, "isolation needs a corral::Command as the leader")
                    .hint("build the leader with corral::Command; std's Command keeps its settings private"))
            }
            other => return Ok(Err(other)),
        };
        spawn::check_user_switch(&cmd, &self.spec.isolation)?;
        let program = cmd.get_program().to_string_lossy().into_owned();
        let not_writable = |p: &std::path::Path, e: io::Error| {
            Error::os(format!("opening {}", p.display()), e).hint("the cgroup is not writable by this user")
        };
        let leaf = match &self.v2 {
            Some(v2) => Some(fds::open_dir(&v2.dir).map_err(|e| not_writable(&v2.dir, e))?),
            None => None,
        };
        let mut joins: Vec<std::fs::File> = Vec::new();
        for f in self.v1.iter().flat_map(|v1| v1.join_files()) {
            joins.push(std::fs::OpenOptions::new().write(true).open(&f).map_err(|e| not_writable(&f, e))?);
        }
        let rlimits = unix::process_rlimits(&self.spec.limits);
        let guard = reaper::spawning();
        let started = spawn::spawn(
            &cmd,
            &[("CORRAL_GROUP", &self.spec.id)],
            leaf.as_ref().map(|f| f.as_raw_fd()),
            joins.iter().map(|f| f.as_raw_fd()).collect(),
            rlimits,
            !self.spec.outlive,
            &self.spec.isolation,
        );
        let started = match started {
            Ok(s) => s,
            Err(spawn::NotStarted::Refused) if isolated => {
                return Err(Error::new(ErrorKind::Unsupported, format!("starting {program}: clone3 was refused"))
                    .hint("isolation needs clone3 (Linux 5.7+, no seccomp filter on it); see `corral doctor`"))
            }
            Err(spawn::NotStarted::Refused) => return Ok(Err(LeaderCmd::Own(cmd))),
            Err(spawn::NotStarted::Failed { step: Some(spawn::Step::Exec), err, .. }) => {
                return Err(spawn_error(&program, err))
            }
            Err(spawn::NotStarted::Failed { step: Some(step), detail, err }) => {
                let doing = detail.unwrap_or_else(|| step.doing().to_string());
                return Err(Error::os(format!("starting {program}: {doing}"), err));
            }
            Err(spawn::NotStarted::Failed { step: None, err, .. }) => {
                return Err(Error::os(format!("starting {program}"), err))
            }
        };
        self.adopt(started.pid, Some(started.pidfd));
        drop(guard);
        let [stdin, stdout, stderr] = started.pipes;
        Ok(Ok(Spawned {
            pid: started.pid,
            stdin: stdin.map(Into::into),
            stdout: stdout.map(Into::into),
            stderr: stderr.map(Into::into),
            path: SpawnPath::Clone3,
        }))
    }

    /// Takes charge of a leader just started, whichever path started it:
    /// the reaper learns whose it is, the event connector follows it.
    fn adopt(&self, pid: u32, pidfd: Option<OwnedFd>) {
        let owner = Arc::new(Owner {
            cgroup_leaf: Some(self.spec.id.clone()).filter(|_| self.kind != BackendKind::Pgid),
            pgid: pid,
            ..Owner::default()
        });
        reaper::register(pid, owner.clone());
        let _ = self.owner.set(owner);
        if let Some(c) = self.connector.lock().unwrap_or_else(|p| p.into_inner()).as_ref() {
            let t = proc_events::Tracked::new(self.wake.clone());
            if self.spec.record_events {
                t.listen();
            }
            c.track(pid, &t);
            let _ = self.tracked.set(t);
        }
        let mut l = self.leader.lock().unwrap_or_else(|p| p.into_inner());
        l.pid = pid;
        l.pidfd = pidfd;
    }

    /// The kill of [`SysGroup::kill`], best mechanism first.
    fn kill_members(&self) -> io::Result<()> {
        match (&self.v2, &self.v1) {
            (Some(v2), _) if v2.has_kill() => v2.kill(),
            (_, Some(v1)) if v1.has("freezer") => {
                let killed = v1.kill()?;
                self.note_members(&killed);
                Ok(())
            }
            (Some(v2), _) => {
                for p in v2.members()? {
                    let _ = unix::kill(p, libc::SIGKILL);
                }
                Ok(())
            }
            (None, Some(v1)) => {
                let killed = v1.kill()?;
                self.note_members(&killed);
                Ok(())
            }
            // No leader yet: process group 0 would be our own.
            (None, None) if self.pgid() == 0 => Ok(()),
            (None, None) => {
                let _ = self.pgid_members();
                pgid::kill(self.pgid(), &self.tag)
            }
        }
    }

    /// Applies the limits and arms the notifications.
    fn configure(&mut self) -> io::Result<()> {
        let lim = self.spec.limits.clone();
        let mut watched = Vec::new();
        if let Some(v2) = &self.v2 {
            watched.push(Watched::open(&v2.file("cgroup.events"))?);
            if self.kind == BackendKind::CgroupV2 {
                if let Some(m) = lim.memory.filter(|_| !lim.notifies(LimitKind::Memory)) {
                    v2.set_memory_max(m)?;
                    watched.push(Watched::open(&v2.file("memory.events"))?);
                }
                if let Some(n) = lim.max_procs {
                    v2.set_pids_max(n)?;
                    watched.push(Watched::open(&v2.file("pids.events"))?);
                }
                if let Some(c) = lim.cpus {
                    v2.set_cpu_max(c)?;
                }
            }
        }
        if let Some(m) = lim.memory.filter(|_| lim.notifies(LimitKind::Memory)) {
            self.configure_notify_memory(m)?;
            if let (Some(v2), BackendKind::CgroupV2) = (&self.v2, self.kind) {
                watched.push(Watched::open(&v2.file("memory.events"))?);
            }
        }
        if let Some(v1) = &mut self.v1 {
            if let Some(m) = lim.memory.filter(|_| !lim.notifies(LimitKind::Memory)) {
                v1.set_memory(m)?;
            }
            if let Some(n) = lim.max_procs {
                // v1 `pids.events` is not signalled: it is sampled instead
                // (see `wait`).
                v1.set_pids_max(n)?;
            }
            if let Some(c) = lim.cpus {
                v1.set_cpus(c)?;
            }
        }
        self.watched = watched;
        Ok(())
    }

    fn remove_dirs(&self) {
        if let Some(v2) = &self.v2 {
            let _ = v2.remove();
        }
        if let Some(v1) = &self.v1 {
            let _ = v1.remove_all();
        }
    }

    /// Every process of the group still in `/proc`, zombies included: by
    /// cgroup, by process group, or as a member seen earlier (same pid and
    /// start time). Counted, not assumed.
    fn remaining(&self, owner: &Option<Arc<Owner>>) -> Vec<u32> {
        let me = std::process::id();
        let pgid = self.pgid();
        let leader = self.leader.lock().map(|l| (l.pid, l.status.is_some())).unwrap_or((0, true));
        let adopted = self.leader.lock().map(|l| l.adopted).unwrap_or(false);
        let known =
            owner.as_ref().map(|o| o.known.lock().unwrap_or_else(|p| p.into_inner()).clone()).unwrap_or_default();
        let leaf = (self.kind != BackendKind::Pgid).then_some(self.spec.id.as_str());
        let mut out = Vec::new();
        for pid in procfs::all_pids().unwrap_or_default() {
            if pid == me || (pid == leader.0 && leader.1) {
                continue;
            }
            let Some(st) = procfs::stat(pid) else { continue };
            // An adopted tree's pgid may be shared with processes outside
            // it, and its zombies belong to whoever is their parent: only
            // what corral can reap counts as left over.
            if adopted && st.is_zombie() && st.ppid != me {
                continue;
            }
            let ours = (st.pgid == pgid && !adopted)
                || known.get(&pid).is_some_and(|start| *start == st.starttime)
                || leaf
                    .is_some_and(|leaf| procfs::cgroup_paths(pid).iter().any(|c| c.rsplit('/').next() == Some(leaf)));
            if ours {
                out.push(pid);
            }
        }
        out
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        // A group whose teardown never ran (spawn failed) leaves no directory.
        if self.leader.lock().map(|l| l.pid == 0).unwrap_or(false) {
            self.remove_dirs();
        }
    }
}

fn spawn_error(program: &str, e: io::Error) -> Error {
    match e.raw_os_error() {
        Some(libc::ENOENT) => Error::os(format!("command not found: {program}"), e)
            .with_kind(ErrorKind::NotFound)
            .hint("check the spelling and PATH"),
        Some(libc::EACCES) | Some(libc::ENOEXEC) | Some(libc::EISDIR) => {
            Error::os(format!("cannot execute {program}"), e)
                .with_kind(ErrorKind::NotExecutable)
                .hint("check that it is a program and has the execute bit (chmod +x)")
        }
        _ => Error::os(format!("starting {program}"), e),
    }
}

/// The names of corral's cgroup roots, which tell its groups' cgroups.
fn corral_roots(l: &Layout) -> Vec<String> {
    l.v2_root
        .iter()
        .chain(l.v1_roots.iter().map(|(_, r)| r))
        .filter_map(|r| r.file_name().map(|n| n.to_string_lossy().into_owned()))
        .collect()
}

/// [`crate::sys::adopt_check`]: the refusals that need no group yet.
pub(crate) fn adopt_check(pid: u32) -> crate::Result<()> {
    adopt::check(pid, &corral_roots(layout())).map(|_| ())
}

/// The start time of `pid` (clock ticks since boot), which with the pid
/// names one process across pid reuse.
pub(crate) fn start_time(pid: u32) -> Option<u64> {
    procfs::stat(pid).filter(|s| !s.is_zombie()).map(|s| s.starttime)
}

/// Whether an adopted leader has ended, from its pidfd (`None`: not yet).
/// A leader with no pidfd (the kernel lacks pidfd_open) is watched by its
/// start time.
fn adopted_leader_ended(l: &mut Leader) -> Option<ExitStatus> {
    if l.status.is_some() {
        return None;
    }
    let ended = match &l.pidfd {
        Some(fd) => fds::poll_ready(&[(fd.as_raw_fd(), false)], Some(Duration::ZERO)).map(|r| r[0]).unwrap_or(false),
        None => procfs::stat(l.pid).is_none_or(|s| s.is_zombie()),
    };
    if !ended {
        return None;
    }
    l.pidfd = None;
    // A process that owns its children (a daemon re-executed in place is
    // still its services' parent) reaps the leader and learns its status;
    // a library caller's own children keep theirs.
    let reaped = if reaper::reaping_all() { unix::try_reap(l.pid).ok().flatten() } else { None };
    l.status = Some(reaped.map_or(ExitStatus::UNKNOWN, |(st, _)| st));
    l.status
}

impl Group {
    /// [`SysGroup::adopt_leader`] (`old`: `None`) and
    /// [`SysGroup::reattach_leader`] (`old`: the recorded group id and the
    /// leader's start time): checks, stops, moves, continues.
    fn take_running(&self, pid: u32, old: Option<(&str, u64)>) -> crate::Result<Spawned> {
        if self.kind == BackendKind::Pgid {
            return Err(Error::new(
                ErrorKind::Unsupported,
                format!("cannot adopt process {pid} with the pgid backend: a running process cannot be moved into another process group"),
            )
            .hint("adopting needs a cgroup: run as root, or under `systemd-run --user -p Delegate=yes`"));
        }
        let l = layout();
        let roots = corral_roots(l);
        let st = match old {
            None => adopt::check(pid, &roots)?,
            Some((id, start)) => adopt::check_recorded(pid, start, id)?,
        };
        // Opened before anything is stopped: from here on, the pid's end
        // is seen even if the number is reused.
        let pidfd = fds::pidfd_open(pid).ok();
        if procfs::stat(pid).map(|s| s.starttime) != Some(st.starttime) {
            return Err(Error::new(ErrorKind::NotFound, format!("cannot adopt process {pid}: it exited")));
        }
        let mut dests = Vec::new();
        if let (Some(v2), Some(mount)) = (&self.v2, &l.v2_mount) {
            dests.push(adopt::Dest { procs: v2.file("cgroup.procs"), mount: mount.clone(), controller: None });
        }
        if let Some(v1) = &self.v1 {
            let mounts =
                hierarchy::parse_mountinfo(&std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default());
            let mut seen = Vec::new();
            for (c, dir) in v1.dirs() {
                let Some(m) = mounts.iter().find(|m| !m.v2 && m.controllers.iter().any(|x| x == c)) else { continue };
                if seen.contains(dir) {
                    continue;
                }
                seen.push(dir.clone());
                dests.push(adopt::Dest {
                    procs: dir.join("cgroup.procs"),
                    mount: m.path.clone(),
                    controller: Some(c.clone()),
                });
            }
        }
        let members = adopt::take(pid, st.starttime, &roots, old.map(|(id, _)| id), &dests)?;
        // A running tree's past forks were never seen: it is not followed.
        drop(self.connector.lock().unwrap_or_else(|p| p.into_inner()).take());
        if let Some((id, _)) = old {
            // Emptied by the move: the old group's directories go.
            for root in l.v2_root.iter().chain(l.v1_roots.iter().map(|(_, r)| r)) {
                let _ = std::fs::remove_dir(root.join(id));
            }
        }
        let owner = Arc::new(Owner {
            cgroup_leaf: Some(self.spec.id.clone()),
            known: Mutex::new(members.into_iter().collect()),
            ..Owner::default()
        });
        reaper::register(pid, owner.clone());
        let _ = self.owner.set(owner);
        let mut ld = self.leader.lock().unwrap_or_else(|p| p.into_inner());
        ld.pid = pid;
        ld.pidfd = pidfd;
        ld.adopted = true;
        Ok(Spawned { pid, stdin: None, stdout: None, stderr: None, path: SpawnPath::Adopted })
    }
}

/// `(ppid, exe)` for events.
pub(crate) use leftovers::{group_of, orphaned_groups, reap_group};

pub(crate) use connector::is_open as connector_open;

pub(crate) fn argv(pid: u32) -> Vec<String> {
    procfs::argv(pid)
}

pub(crate) use spawn::check_isolation;

pub(crate) fn describe(pid: u32) -> (Option<u32>, Option<PathBuf>) {
    (procfs::stat(pid).map(|s| s.ppid), procfs::exe(pid))
}

pub(crate) fn reap_all_orphans(yes: bool) {
    reaper::set_reap_all(yes);
    reaper::ensure();
}

pub(crate) use super::unix::minidump;

pub(crate) fn process_table() -> io::Result<Vec<ProcessInfo>> {
    Ok(procfs::all_pids()?.into_iter().filter_map(process_info).collect())
}

/// The processes `pids` that are alive, read one by one: a group's tree
/// costs its own members, not the whole host's table.
pub(crate) fn process_infos(pids: &[u32]) -> io::Result<Vec<ProcessInfo>> {
    Ok(pids.iter().copied().filter_map(process_info).collect())
}

fn process_info(pid: u32) -> Option<ProcessInfo> {
    let st = procfs::stat(pid)?;
    let group = procfs::cgroup_v2_path(pid)
        .filter(|p| p != "/")
        .or_else(|| procfs::cgroup_v1_path(&pid.to_string(), "pids").filter(|p| p != "/"))
        .or_else(|| procfs::cgroup_v1_path(&pid.to_string(), "memory"));
    let cpu_ms = (st.utime + st.stime).saturating_mul(1000) / unix::clock_ticks().max(1);
    Some(
        ProcessInfo::new(pid, st.ppid, st.pgid, st.sid, group, procfs::cmdline(pid))
            .with_usage(Some(cpu_ms), procfs::rss_bytes(pid)),
    )
}

pub(crate) fn host_report() -> HostReport {
    let l = layout();
    let forced = std::env::var("CORRAL_BACKEND").ok().and_then(|v| BackendKind::parse(&v));
    let chosen = select::choose(forced, l).ok();
    let mut notes = Vec::new();
    if let Some(m) = &l.v2_mount {
        notes.push(format!(
            "cgroup2 mounted at {} with controllers: {}",
            m.display(),
            if l.v2_controllers.is_empty() { "none".to_string() } else { l.v2_controllers.join(" ") }
        ));
        let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        if hierarchy::v2_favors_dynmods(&mountinfo, m) == Some(false) {
            notes.push(format!(
                "cgroup2 at {} is mounted without favordynmods: each group start waits for an RCU grace period \
                 (5-20 ms) to join its cgroup; `mount -o remount,favordynmods {}` (Linux 6.0+) removes the wait \
                 at a small cost to every fork and exit",
                m.display(),
                m.display()
            ));
        }
    }
    if !l.v1_roots.is_empty() {
        let names: Vec<&str> = l.v1_roots.iter().map(|(c, _)| c.as_str()).collect();
        notes.push(format!("cgroup v1 controllers mounted: {}", names.join(" ")));
    }
    if let Some(r) = &l.v2_root {
        notes.push(format!("corral's cgroup subtree: {}", r.display()));
    }
    if let Some(p) = &l.override_problem {
        notes.push(p.clone());
    }
    // SAFETY: geteuid has no preconditions.
    notes.push(format!("running as uid {}", unsafe { libc::geteuid() }));
    notes.push(spawn::describe());
    notes.push(spawn::describe_isolation());
    notes.push(spawn::describe_user_namespaces());
    notes.push(format!(
        "I/O limits: {}; live limit changes and notify-only limits (memory.high / soft limit, pids.max, cpu \
         throttling) on every cgroup backend, not on pgid",
        match (l.v2_controllers.iter().any(|c| c == "io"), l.v1_root("blkio")) {
            (true, _) => "cgroup2 io.max".to_string(),
            (false, Some(d)) => format!("v1 blkio throttle at {}", d.display()),
            (false, None) => "none (no io controller, no blkio hierarchy)".to_string(),
        }
    ));
    notes.push(format!(
        "child subreaper: {} (corral sets it when it creates a group)",
        if reaper::is_subreaper() { "on" } else { "available" }
    ));
    HostReport {
        os: std::env::consts::OS,
        chosen,
        backends: select::ORDER.iter().map(|k| select::report(*k, l)).collect(),
        notes,
    }
}
