//! Windows: a group is a Job Object.
//!
//! The leader is created suspended, assigned to the group's job, then
//! resumed (`spawn.rs`), so it and everything it ever starts is a member
//! before running user code; membership is inherited and cannot be left.
//! The job is created with `KILL_ON_JOB_CLOSE`, so a controller that dies
//! takes its groups with it, unless the group is meant to outlive its
//! controller: then the next controller takes it back by the job's name
//! or reaps it (`reattach.rs`). Its messages arrive on the one I/O
//! completion port of the process (`port.rs`), under the group's own key,
//! where the one event loop waits for every group at once (`poller.rs`);
//! they become the group's Started/Exited events.
//! A stop sets the group's named event, sends CTRL_BREAK and WM_CLOSE
//! where they can arrive (`console.rs`); the kill is `TerminateJobObject`.
//!
//! Traps this module exists to avoid:
//! - Completion messages can be lost. The group is empty only when the
//!   job's `ActiveProcesses` is 0, whether or not `ACTIVE_PROCESS_ZERO`
//!   came; the event loop samples each group at least every [`BACKUP_POLL`]; and
//!   members announced as started get their `Exited` when the group
//!   empties even if their exit message never came.
//! - A pid is reused once the last handle to the dead process closes.
//!   corral holds a handle to every member it hears of (checked to be in
//!   the job), so the pids it later checks are the ones it meant.
//! - Windows has no signals and no exit-by-signal: members that corral
//!   kills exit with code [`KILLED`] (137, what a shell shows on Unix for
//!   SIGKILL); the [`crate::Reason`] says why.
//! - Wine runs jobs, the port, the process list, `TerminateJobObject` and
//!   the process counts, but accepts limits without enforcing them (or
//!   reporting them back), and counts no CPU time or peak memory, in the
//!   job or (from outside) in a process. corral reports those limits as
//!   not enforced there, and those usage fields as zero or `None`.

mod adopt;
mod console;
mod create_as_user;
mod error;
mod handle;
mod host;
mod isolation_notes;
mod job;
mod minidump;
mod ntdll;
mod poller;
mod port;
mod process;
mod reattach;
mod spawn;
mod token;

use self::console::StopEvent;
use self::job::Job;
pub(crate) use self::poller::Poller;
use self::port::{KeyWake, Msg};
use super::{Change, Spec, SysGroup, Wake};
use crate::{
    BackendKind, Enforcement, Error, ErrorKind, Event, ExitStatus, HostReport, LimitKind, ProcessInfo, Signal, Support,
    Usage,
};
use std::collections::hash_map::Entry;
use std::collections::{HashMap, HashSet};
use std::io;
use std::os::windows::io::OwnedHandle;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

/// The longest the event loop leaves a group without looking at the
/// job's counts and the leader's handle, in case a message was lost.
const BACKUP_POLL: Duration = Duration::from_millis(200);

/// The exit code of members that corral kills (`TerminateJobObject`).
pub(crate) const KILLED: u32 = 137;

/// How long the leader's handle is looked at every [`PENDING_POLL`] once
/// the job says it is empty (the same exit sets the two, not atomically);
/// after that, at the [`BACKUP_POLL`] pace.
const LEADER_SETTLE: Duration = Duration::from_secs(1);

/// The most messages a group holds between two looks of the event loop;
/// beyond that they count as lost (the job's counts are the truth).
const MAX_INBOX: usize = 1 << 14;

/// Events not taken for this long mean nobody listens any more: stop
/// collecting them, so a long-lived group does not hoard them.
const UNCLAIMED: Duration = Duration::from_secs(5);

/// How often, and how long at most, a `Started` waits for its image path.
const PENDING_POLL: Duration = Duration::from_millis(5);
const PENDING_LIMIT: Duration = Duration::from_millis(500);

/// Live groups of this process, so `process_table` can name a member's
/// job. Holds raw job handles: each entry is removed (under this lock)
/// before its job handle closes.
static LIVE_JOBS: Mutex<Vec<(usize, String)>> = Mutex::new(Vec::new());

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn status(code: u32) -> ExitStatus {
    ExitStatus { code: Some(code as i32), signal: None }
}

#[derive(Default)]
struct State {
    leader_reported: bool,
    /// A handle to every member heard of whose exit was not yet handled.
    members: HashMap<u32, OwnedHandle>,
    cpu_limit_reported: bool,
    final_usage: Option<Usage>,
    /// Someone listens: pushed events are collected.
    listening: bool,
    /// When the monitor last took the events; it does so on every turn of
    /// its loop (at least every [`BACKUP_POLL`]) while anyone listens.
    taken: Option<Instant>,
    /// Members announced (by snapshot or `Started`) and not yet `Exited`.
    announced: HashSet<u32>,
    /// New members whose image path could not be read yet (Wine maps it
    /// only once the process runs), with when they were heard of.
    pending: Vec<(u32, Instant)>,
    events: Vec<Event>,
    /// The job's messages the event loop routed here, not yet read.
    inbox: Vec<Msg>,
    /// Since when the job is empty and the leader's handle not yet signalled.
    settling: Option<Instant>,
}

/// One Windows group: a job, its key on the shared completion port and
/// its stop event.
pub(crate) struct Group {
    spec: Spec,
    job: Job,
    key: usize,
    stop: StopEvent,
    enforcement: Vec<Enforcement>,
    wine: bool,
    /// The leader's pid and a handle of corral's own to it, set once.
    leader: OnceLock<(u32, OwnedHandle)>,
    st: Mutex<State>,
}

impl SysGroup for Group {
    fn create(spec: &Spec) -> crate::Result<Self> {
        crate::io_limit::refuse_off_linux(&spec.limits)?;
        if let Some(k) = spec.backend.filter(|k| *k != BackendKind::Job) {
            return Err(Error::new(
                ErrorKind::Unsupported,
                format!("backend {k} cannot run here: Windows has only the job backend"),
            )
            .hint("use CORRAL_BACKEND=job, or unset it"));
        }
        if let Err(why) = host::available() {
            return Err(Error::new(ErrorKind::Unsupported, format!("the job backend cannot run here: {why}"))
                .hint("run `corral doctor` for details"));
        }
        let enforcement: Vec<Enforcement> = spec
            .limits
            .kinds()
            .into_iter()
            .map(|k| Enforcement { limit: k, support: host::limit_support(k) })
            .collect();
        if let Some(e) = enforcement.iter().find(|e| matches!(e.support, Support::No(_))) {
            return Err(Error::new(
                ErrorKind::Unsupported,
                format!("the {} cannot be enforced by the job backend: {}", e.limit, e.support.detail()),
            )
            .hint("run `corral doctor` to see what this host enforces, or drop that limit"));
        }
        let job =
            Job::create(&reattach::job_name(&spec.id), spec.outlive).map_err(|e| error::os("CreateJobObjectW", e))?;
        let shared = port::shared().map_err(|e| error::os("CreateIoCompletionPort", e))?;
        let key = port::new_key();
        job.associate(shared.raw(), key).map_err(|e| error::os("associating the job with the completion port", e))?;
        job.set_extended(&spec.limits).map_err(|e| error::limits("limits", e))?;
        if let Some(c) = spec.limits.cpus {
            job.set_cpu_rate(c).map_err(|e| error::limits("CPU rate", e))?;
        }
        if spec.isolation.ui_restrictions {
            job.set_ui_restrictions().map_err(|e| error::os("setting the job's UI restrictions", e))?;
        }
        let stop = StopEvent::create(&spec.id).map_err(|e| error::os("creating the stop event", e))?;
        lock(&LIVE_JOBS).push((job.raw() as usize, job.name().to_string()));
        Ok(Group {
            spec: spec.clone(),
            job,
            key,
            stop,
            enforcement,
            wine: ntdll::wine_version().is_some(),
            leader: OnceLock::new(),
            st: Mutex::new(State::default()),
        })
    }

    fn spawn_leader(&self, cmd: crate::command::Leader) -> crate::Result<super::Spawned> {
        let env = [("CORRAL_GROUP", self.spec.id.as_str()), ("CORRAL_STOP_EVENT", self.stop.name())];
        let leader = match self.spec.isolation.token {
            Some(t) => spawn::spawn_in_job_as(&self.job, cmd, &env, t)?,
            None => spawn::spawn_in_job(&self.job, cmd.into_std(), &env)?,
        };
        let pid = leader.spawned.pid;
        if let Ok(h) = leader.handle.try_clone() {
            lock(&self.st).members.insert(pid, h);
        }
        let _ = self.leader.set((pid, leader.handle));
        Ok(leader.spawned)
    }

    fn adopt_leader(&self, pid: u32) -> crate::Result<super::Spawned> {
        let (root, members) = adopt::take(&self.job, pid)?;
        {
            let mut st = lock(&self.st);
            for (p, h) in members {
                st.members.insert(p, h);
            }
        }
        let _ = self.leader.set((pid, root));
        Ok(super::Spawned { pid, stdin: None, stdout: None, stderr: None, path: crate::SpawnPath::Adopted })
    }

    fn reattach_leader(&self, id: &str, pid: u32, start: u64) -> crate::Result<super::Spawned> {
        let (root, members) = reattach::take_back(&self.job, id, pid, start)?;
        {
            let mut st = lock(&self.st);
            for (p, h) in members {
                st.members.insert(p, h);
            }
        }
        let _ = self.leader.set((pid, root));
        Ok(super::Spawned { pid, stdin: None, stdout: None, stderr: None, path: crate::SpawnPath::Adopted })
    }

    fn kind(&self) -> BackendKind {
        BackendKind::Job
    }

    fn enforcement(&self) -> Vec<Enforcement> {
        self.enforcement.clone()
    }

    fn enforces_cpu_time(&self) -> bool {
        // The job ends itself when PerJobUserTimeLimit runs out. (Wine does
        // not, but it gives no CPU times a watcher could use either.)
        true
    }

    fn members(&self) -> io::Result<Vec<u32>> {
        self.job.pids()
    }

    fn graceful_stop(&self, _signal: Signal) -> io::Result<()> {
        self.stop.set()?;
        // Only while the leader lives is its pid surely a process group of
        // ours; the handle held in `self.leader` keeps the pid from reuse.
        if let Some((pid, h)) = self.leader.get() {
            if process::running(h) && console::has_console() {
                let _ = console::ctrl_break(*pid);
            }
        }
        let pids: HashSet<u32> = self.job.pids().unwrap_or_default().into_iter().collect();
        console::close_windows(&pids);
        Ok(())
    }

    fn kill(&self) -> io::Result<()> {
        self.job.terminate(KILLED)
    }

    fn usage(&self) -> Usage {
        if let Some(u) = lock(&self.st).final_usage.clone() {
            return u;
        }
        self.live_usage()
    }

    fn wait(&self, _timeout: Option<Duration>) -> io::Result<Vec<Change>> {
        let mut out = Vec::new();
        let mut zero = false;
        {
            let mut st = lock(&self.st);
            let msgs = std::mem::take(&mut st.inbox);
            if st.listening && st.taken.is_some_and(|t| t.elapsed() > UNCLAIMED) {
                st.listening = false;
                st.events.clear();
                st.announced.clear();
                st.pending.clear();
            }
            announce_pending(&mut st, false);
            for m in msgs {
                match m {
                    Msg::NewProcess(pid) => self.on_new(&mut st, pid),
                    Msg::ExitProcess(pid) | Msg::AbnormalExit(pid) => on_exit(&mut st, pid),
                    Msg::ActiveZero => zero = true,
                    Msg::Limit(kind) => {
                        if self.spec.limits.kinds().contains(&kind) {
                            out.push(Change::Limit(kind));
                        }
                    }
                    Msg::Wake | Msg::Other(_) => {}
                }
            }
            if self.spec.limits.cpu_time.is_some()
                && !self.wine
                && !st.cpu_limit_reported
                && self.job.time_limit_reached()
            {
                st.cpu_limit_reported = true;
                out.push(Change::Limit(LimitKind::CpuTime));
            }
        }
        // The job's count is the truth; the message only says when to look.
        let (leader_done, settling) = {
            let st = lock(&self.st);
            (st.leader_reported, st.settling.is_some())
        };
        let empty = (zero || leader_done || settling || self.leader_exit().is_some()) && self.is_empty();
        if let Some(status) = self.leader_exit() {
            let mut st = lock(&self.st);
            if !st.leader_reported {
                st.leader_reported = true;
                out.push(Change::LeaderExited(status));
            }
        }
        let mut st = lock(&self.st);
        // Never sleep on the loop's thread for the leader's handle: look
        // again soon instead.
        st.settling = if empty && !st.leader_reported { st.settling.or(Some(Instant::now())) } else { None };
        if empty && st.leader_reported {
            // Exits whose message was lost still get their event.
            announce_pending(&mut st, true);
            let left: Vec<u32> = st.announced.iter().copied().collect();
            for pid in left {
                on_exit(&mut st, pid);
            }
            out.push(Change::Empty);
        }
        Ok(out)
    }

    fn readiness(&self) -> Option<super::Readiness> {
        let st = lock(&self.st);
        let settling = st.settling.is_some_and(|t| t.elapsed() < LEADER_SETTLE);
        let soon = settling || !st.pending.is_empty();
        Some(super::Readiness { fds: Vec::new(), sample: Some(if soon { PENDING_POLL } else { BACKUP_POLL }) })
    }

    fn waker(&self) -> Arc<dyn Wake> {
        Arc::new(KeyWake(self.key))
    }

    fn teardown(&self, deadline: Instant) -> usize {
        let leftover = loop {
            let active = self.job.accounting().map(|a| a.active_processes as usize).unwrap_or(usize::MAX);
            let live = self.live_pids();
            if active == 0 && live.is_empty() {
                break 0;
            }
            if Instant::now() >= deadline {
                break active.max(live.len());
            }
            let _ = self.job.terminate(KILLED);
            // This only paces the re-check: the counts are the truth.
            std::thread::sleep(Duration::from_millis(5));
        };
        let usage = self.live_usage();
        let mut st = lock(&self.st);
        st.final_usage = Some(usage);
        // Holding dead processes costs kernel memory; their pids are no
        // longer needed.
        st.members.clear();
        leftover
    }

    fn location(&self) -> String {
        self.job.name().to_string()
    }

    fn take_events(&self) -> Option<Vec<Event>> {
        let mut st = lock(&self.st);
        if !st.listening {
            self.start_listening(&mut st);
        }
        st.taken = Some(Instant::now());
        Some(std::mem::take(&mut st.events))
    }

    fn listen(&self) {
        let mut st = lock(&self.st);
        if !st.listening {
            self.start_listening(&mut st);
        }
    }
}

/// Emits the `Started` of new members whose image path can now be read,
/// or that waited long enough (or all of them, with `all`).
fn announce_pending(st: &mut State, all: bool) {
    let now = Instant::now();
    let pending = std::mem::take(&mut st.pending);
    for (pid, since) in pending {
        let Some(h) = st.members.get(&pid).map(handle::raw) else { continue };
        let exe = process::image(h);
        if exe.is_none() && !all && now.duration_since(since) < PENDING_LIMIT && process::running_raw(h) {
            st.pending.push((pid, since));
            continue;
        }
        st.announced.insert(pid);
        st.events.push(Event::Started { pid, ppid: process::parent(h), exe });
    }
}

/// A member's exit message: close its handle and announce the exit if
/// the start was announced.
fn on_exit(st: &mut State, pid: u32) {
    if st.pending.iter().any(|(p, _)| *p == pid) {
        // Its Started must come first; the image is readable or never.
        announce_pending(st, true);
    }
    let mut code = None;
    if let Some(h) = st.members.get(&pid) {
        code = process::exit_code(handle::raw(h));
        if code.is_some() {
            st.members.remove(&pid);
        }
    }
    if st.listening && st.announced.remove(&pid) {
        st.events.push(Event::Exited { pid, status: code.map(status) });
    }
}

impl Group {
    /// Everything alive now counts as announced: the monitor's snapshot
    /// of members, taken right after this, reports them as started.
    fn start_listening(&self, st: &mut State) {
        st.listening = true;
        st.taken = Some(Instant::now());
        st.announced = self.job.pids().unwrap_or_default().into_iter().collect();
        st.announced.extend(st.members.iter().filter(|(_, h)| process::running(h)).map(|(p, _)| *p));
    }

    /// A member's start message: hold a handle to it, announce it.
    fn on_new(&self, st: &mut State, pid: u32) {
        if let Entry::Vacant(slot) = st.members.entry(pid) {
            // The pid may already belong to another process by now, so
            // only a process the job claims is taken as a member.
            if let Ok(h) = process::open(pid) {
                if self.job.contains(handle::raw(&h)).unwrap_or(false) {
                    slot.insert(h);
                }
            }
        }
        if !st.listening || st.announced.contains(&pid) || st.pending.iter().any(|(p, _)| *p == pid) {
            return;
        }
        if let Some(h) = st.members.get(&pid) {
            let h = handle::raw(h);
            match process::image(h) {
                Some(exe) => {
                    st.announced.insert(pid);
                    st.events.push(Event::Started { pid, ppid: process::parent(h), exe: Some(exe) });
                }
                None => st.pending.push((pid, Instant::now())),
            }
        }
    }

    /// The job's count says no process is left (its process list, should
    /// the count be unreadable).
    fn is_empty(&self) -> bool {
        match self.job.accounting() {
            Ok(a) => a.active_processes == 0,
            Err(_) => self.job.pids().is_ok_and(|p| p.is_empty()),
        }
    }

    /// The leader's status once it has ended.
    fn leader_exit(&self) -> Option<ExitStatus> {
        process::exit_code(handle::raw(&self.leader.get()?.1)).map(status)
    }

    /// Its key on the shared completion port.
    fn key(&self) -> usize {
        self.key
    }

    /// A message of its job, routed here by the event loop.
    fn deliver(&self, msg: Msg) {
        let mut st = lock(&self.st);
        if st.inbox.len() < MAX_INBOX {
            st.inbox.push(msg);
        }
    }

    /// Every process corral can see alive in the group: the job's list and
    /// the members it holds handles to.
    fn live_pids(&self) -> HashSet<u32> {
        let mut live: HashSet<u32> = self.job.pids().unwrap_or_default().into_iter().collect();
        live.extend(lock(&self.st).members.iter().filter(|(_, h)| process::running(h)).map(|(p, _)| *p));
        if let Some((pid, h)) = self.leader.get() {
            if process::running(h) {
                live.insert(*pid);
            }
        }
        live
    }

    fn live_usage(&self) -> Usage {
        let mut u = Usage::default();
        if let Ok(a) = self.job.accounting() {
            u.cpu_user = a.user;
            u.cpu_system = a.kernel;
            u.processes_total = Some(u64::from(a.total_processes));
            u.processes_active = u64::from(a.active_processes);
            u.io_read_bytes = a.read_bytes;
            u.io_write_bytes = a.write_bytes;
        }
        // Wine reports 0 for these; real Windows never does once a process ran.
        u.peak_memory = self.job.peak_memory().ok().filter(|p| *p > 0);
        let now: u64 = lock(&self.st)
            .members
            .values()
            .map(handle::raw)
            .filter(|h| process::running_raw(*h))
            .filter_map(process::private_bytes)
            .sum();
        // Wine reports 0 private bytes for every process.
        u.memory_now = Some(now).filter(|n| *n > 0 || !self.wine);
        u
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        // Unregister before the job handle closes (KILL_ON_JOB_CLOSE then
        // ends anything a failed teardown left).
        let raw = self.job.raw() as usize;
        lock(&LIVE_JOBS).retain(|(h, _)| *h != raw);
    }
}

/// `(ppid, exe)` for events.
pub(crate) use crate::isolation::linux_only as check_isolation;

pub(crate) fn describe(pid: u32) -> (Option<u32>, Option<PathBuf>) {
    match process::open(pid) {
        Ok(h) => (process::parent(handle::raw(&h)), process::image(handle::raw(&h))),
        Err(_) => (None, None),
    }
}

/// A minidump of a live process: its threads, stacks, handles and memory
/// map.
pub(crate) fn minidump(pid: u32, path: &std::path::Path) -> io::Result<()> {
    minidump::write(pid, path)
}

/// Windows has no zombies to reap: a process is gone when it exits and
/// the last handle to it closes, and corral closes its own.
pub(crate) fn reap_all_orphans(_yes: bool) {}

/// A Job Object kills its members when its controller's last handle
/// closes: a dead controller leaves nothing, except groups meant to
/// outlive it, which only their record names (see [`reap_group`]).
pub(crate) fn orphaned_groups() -> io::Result<Vec<(String, Vec<u32>)>> {
    Ok(Vec::new())
}

/// Kills a recorded group that outlived its controller, found by its
/// job's name.
pub(crate) fn reap_group(id: &str, _leader: u32) -> io::Result<usize> {
    reattach::reap(id)
}

/// The creation time of the live process `pid` (100 ns ticks since 1601).
pub(crate) fn start_time(pid: u32) -> Option<u64> {
    let h = process::open(pid).ok()?;
    process::running(&h).then(|| process::created(handle::raw(&h))).flatten()
}

pub(crate) fn process_table() -> io::Result<Vec<ProcessInfo>> {
    let jobs = lock(&LIVE_JOBS);
    let mut out = Vec::new();
    for e in process::snapshot()? {
        let h = process::open(e.pid).ok();
        let group = h.as_ref().and_then(|h| {
            jobs.iter().find_map(|(job, name)| {
                let mut yes = 0;
                // SAFETY: `job` is a live job handle: entries leave
                // LIVE_JOBS (under the lock held here) before they close.
                let ok = unsafe {
                    windows_sys::Win32::System::JobObjects::IsProcessInJob(handle::raw(h), *job as _, &mut yes)
                };
                (ok != 0 && yes != 0).then(|| name.clone())
            })
        });
        // Wine 8 does not give command lines; the image path is the next best.
        let cmdline = h
            .as_ref()
            .and_then(|h| {
                process::command_line(handle::raw(h))
                    .or_else(|| process::image(handle::raw(h)).map(|p| p.display().to_string()))
            })
            .filter(|c| !c.trim().is_empty())
            .unwrap_or_else(|| format!("[{}]", e.name));
        let sid = process::session(e.pid).unwrap_or(0);
        // Windows has no process groups in the Unix sense; pgid is 0.
        out.push(ProcessInfo::new(e.pid, e.ppid, 0, sid, group, cmdline));
    }
    Ok(out)
}

pub(crate) fn host_report() -> HostReport {
    host::report()
}
