//! macOS: a group is a process group plus per-process rlimits.
//!
//! macOS has no cgroups and no subreaper, so this is the weakest backend,
//! and it says so: a `setsid` or double-fork escapee leaves the group and
//! is not found again; the kill is `killpg` in stop-then-kill rounds, best
//! effort against fork races; memory and CPU time are per-process rlimits;
//! there is no process-count limit (RLIMIT_NPROC counts every process of
//! the user) and no CPU throttling.
//!
//! The one event loop hears each member's forks and exit from one kqueue
//! (`kqueue.rs`); what it cannot hear (a member leaving the process group
//! by `setsid`) is sampled while the group waits for its last members.

#[path = "macos/adopt.rs"]
mod adopt;
#[path = "macos/kqueue.rs"]
mod kqueue;
pub(crate) use self::kqueue::Poller;

use super::{unix, Change, Spec, SysGroup, Wake};
use crate::{
    BackendKind, BackendReport, Capability, Enforcement, Error, ErrorKind, ExitStatus, HostReport, LimitKind,
    ProcessInfo, Signal, Support, Usage,
};
use std::collections::HashSet;
use std::io;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Once the leader is gone, how often the group is listed while it waits
/// for its last members (one that leaves by `setsid` sends no event).
const SAMPLE: Duration = Duration::from_millis(20);
/// How often, and for how long at most, the leader is reaped once its
/// exit was heard (the event may come a moment before the exit can be
/// reaped); after that, at the [`BACKUP`] pace.
const SETTLE: Duration = Duration::from_millis(2);
const SETTLE_LIMIT: Duration = Duration::from_secs(1);
/// How often a running group is looked at without news, in case a watch
/// could not be set (kqueue out of memory).
const BACKUP: Duration = Duration::from_secs(1);
/// The most passes of one [`Group::track`]; the next event or sample goes on.
const TRACK_PASSES: usize = 8;

/// What the kqueue watches for a group.
#[derive(Default)]
struct Watch {
    /// Members seen, each watched where the kqueue allowed it.
    pids: HashSet<u32>,
    /// When the leader's `NOTE_EXIT` came.
    leader_exit_heard: Option<Instant>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[derive(Default)]
struct Leader {
    pid: u32,
    status: Option<ExitStatus>,
    usage: unix::Rusage,
}

pub(crate) struct Group {
    spec: Spec,
    leader: Mutex<Leader>,
    /// Its token on the shared kqueue.
    token: usize,
    watch: Mutex<Watch>,
    /// Set for an adopted tree: what it holds besides its process group.
    adopted: Mutex<Option<adopt::Held>>,
}

fn support(limit: LimitKind) -> Support {
    match limit {
        LimitKind::Memory | LimitKind::MemoryPerProcess => Support::Weaker("RLIMIT_AS on each process".into()),
        LimitKind::CpuTime => Support::Weaker("RLIMIT_CPU on each process".into()),
        LimitKind::WallClock => Support::Yes("timer in the controller".into()),
        LimitKind::Processes => {
            Support::No("macOS has only RLIMIT_NPROC, which counts every process of the user".into())
        }
        _ => Support::No("macOS has no CPU throttling for a process group".into()),
    }
}

impl Group {
    fn pgid(&self) -> u32 {
        self.leader.lock().map(|l| l.pid).unwrap_or(0)
    }

    fn reap_leader(&self) -> Option<ExitStatus> {
        if let Some(ended) = self.adopted_leader_ended() {
            return ended.then_some(ExitStatus::UNKNOWN);
        }
        let mut l = self.leader.lock().unwrap_or_else(|p| p.into_inner());
        let pid = l.pid;
        let (st, ru) = unix::reap_once(pid, &mut l.status)?;
        l.usage.add(&ru);
        Some(st)
    }

    pub(crate) fn token(&self) -> usize {
        self.token
    }

    /// The kqueue said `pid`, watched for this group, exited.
    pub(crate) fn heard_exit(&self, pid: u32) {
        if pid == self.pgid() {
            lock(&self.watch).leader_exit_heard.get_or_insert_with(Instant::now);
        }
    }

    /// Watches every member not yet watched, pass after pass until one
    /// finds none new, and forgets the ones gone.
    fn track(&self) {
        let mut w = lock(&self.watch);
        for _ in 0..TRACK_PASSES {
            let Ok(members) = self.members() else { return };
            let now: HashSet<u32> = members.into_iter().collect();
            let mut found = false;
            for &pid in now.difference(&w.pids.clone()) {
                // A process that cannot be watched (gone, or refused) is
                // not tried again: the samples list the group anyway.
                found |= matches!(kqueue::watch(pid, self.token), Ok(true));
                w.pids.insert(pid);
            }
            w.pids.retain(|p| now.contains(p));
            if !found {
                return;
            }
        }
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        kqueue::remove_wake(self.token);
    }
}

impl SysGroup for Group {
    fn create(spec: &Spec) -> crate::Result<Self> {
        crate::io_limit::refuse_off_linux(&spec.limits)?;
        if let Some(k) = spec.backend.filter(|k| *k != BackendKind::Pgid) {
            return Err(Error::new(ErrorKind::Unsupported, format!("backend {k} does not exist on macOS"))
                .hint("macOS offers only the pgid backend; unset CORRAL_BACKEND"));
        }
        for k in spec.limits.kinds() {
            if let Support::No(why) = support(k) {
                return Err(Error::new(ErrorKind::Unsupported, format!("the {k} cannot be enforced on macOS: {why}"))
                    .hint("drop that limit, or run on Linux or Windows"));
            }
        }
        let token = kqueue::new_token();
        kqueue::add_wake(token).map_err(|e| Error::os("registering the group with the kqueue", e))?;
        Ok(Group {
            spec: spec.clone(),
            leader: Mutex::new(Leader::default()),
            token,
            watch: Mutex::default(),
            adopted: Mutex::default(),
        })
    }

    fn spawn_leader(&self, cmd: crate::command::Leader) -> crate::Result<super::Spawned> {
        unix::hygiene::restore_sigchld()?;
        // Passed fds and pid variables: the last hook execs the leader itself.
        let image = match &cmd {
            crate::command::Leader::Own(c) => unix::passing::ExecImage::of(c, &[("CORRAL_GROUP", &self.spec.id)])
                .map_err(|e| Error::os(format!("starting {}", c.get_program().to_string_lossy()), e))?,
            crate::command::Leader::Std(_) => None,
        };
        let mut cmd = cmd.into_std();
        cmd.env("CORRAL_GROUP", &self.spec.id);
        cmd.process_group(0);
        let l = &self.spec.limits;
        let mut rl = Vec::new();
        if let Some(m) = l.memory_per_process.or(l.memory) {
            rl.push(unix::Rlimit::fixed(libc::RLIMIT_AS, m));
        }
        if let Some(t) = [l.cpu_time, l.cpu_time_per_process].into_iter().flatten().min() {
            rl.push(unix::Rlimit::fixed(libc::RLIMIT_CPU, t.as_secs_f64().ceil().max(1.0) as u64));
        }
        rl.extend(unix::fd_limit::for_child());
        let sweep = unix::hygiene::FdSweep::prepare();
        // SAFETY: the closure only calls setrlimit, sigaction and fcntl,
        // which are async-signal-safe.
        unsafe {
            cmd.pre_exec(move || {
                unix::apply_rlimits(&rl)?;
                unix::hygiene::reset_ignored_signals();
                unix::hygiene::close_inherited_fds(sweep, 3)
            });
        }
        if let Some(image) = image {
            image.install(&mut cmd);
        }
        let program = cmd.get_program().to_string_lossy().into_owned();
        let child = cmd.spawn().map_err(|e| match e.raw_os_error() {
            Some(libc::ENOENT) => Error::os(format!("command not found: {program}"), e).with_kind(ErrorKind::NotFound),
            Some(libc::EACCES) | Some(libc::ENOEXEC) => {
                Error::os(format!("cannot execute {program}"), e).with_kind(ErrorKind::NotExecutable)
            }
            _ => Error::os(format!("starting {program}"), e),
        })?;
        self.leader.lock().unwrap_or_else(|p| p.into_inner()).pid = child.id();
        // The leader first: its exit is what the group waits for.
        if matches!(kqueue::watch(child.id(), self.token), Ok(true)) {
            lock(&self.watch).pids.insert(child.id());
        }
        self.track();
        Ok(super::Spawned::from_child(child, crate::SpawnPath::Fork))
    }

    fn adopt_leader(&self, pid: u32) -> crate::Result<super::Spawned> {
        self.take_running(pid)
    }

    fn kind(&self) -> BackendKind {
        BackendKind::Pgid
    }

    fn enforcement(&self) -> Vec<Enforcement> {
        self.spec.limits.kinds().into_iter().map(|k| Enforcement { limit: k, support: support(k) }).collect()
    }

    fn enforces_cpu_time(&self) -> bool {
        true
    }

    fn members(&self) -> io::Result<Vec<u32>> {
        let pgid = self.pgid();
        let mut buf = vec![0 as libc::pid_t; 4096];
        // SAFETY: buf is valid for its byte length.
        let n = unsafe {
            libc::proc_listpgrppids(pgid as libc::pid_t, buf.as_mut_ptr().cast(), (buf.len() * 4) as libc::c_int)
        };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        let count = (n as usize / 4).min(buf.len());
        Ok(self.with_held(buf[..count].iter().filter(|p| **p > 0).map(|p| *p as u32).collect()))
    }

    fn graceful_stop(&self, signal: Signal) -> io::Result<()> {
        let pgid = self.pgid();
        let outside: Vec<u32> = self.with_held(Vec::new()).into_iter().filter(|p| *p != pgid).collect();
        unix::signal_then_cont(&outside, signal);
        unix::killpg(self.pgid(), signal.as_raw())?;
        unix::killpg(self.pgid(), libc::SIGCONT)
    }

    fn kill(&self) -> io::Result<()> {
        self.kill_held();
        let pgid = self.pgid();
        for _ in 0..100 {
            unix::killpg(pgid, libc::SIGSTOP)?;
            unix::killpg(pgid, libc::SIGKILL)?;
            if self.members()?.is_empty() {
                break;
            }
        }
        Ok(())
    }

    fn usage(&self) -> Usage {
        let l = self.leader.lock().unwrap_or_else(|p| p.into_inner());
        let (user, system, peak) = (l.usage.user, l.usage.system, l.usage.maxrss);
        drop(l);
        Usage {
            cpu_user: user,
            cpu_system: system,
            peak_memory: Some(peak),
            processes_active: self.members().map(|m| m.len() as u64).unwrap_or(0),
            ..Usage::default()
        }
    }

    fn wait(&self, _timeout: Option<Duration>) -> io::Result<Vec<Change>> {
        self.track();
        let mut out = Vec::new();
        if let Some(st) = self.reap_leader() {
            out.push(Change::LeaderExited(st));
        }
        let done = self.leader.lock().map(|l| l.status.is_some()).unwrap_or(true);
        if done && self.members()?.is_empty() {
            out.push(Change::Empty);
        }
        Ok(out)
    }

    fn readiness(&self) -> Option<super::Readiness> {
        let done = self.leader.lock().map(|l| l.status.is_some()).unwrap_or(true);
        let sample = if done {
            SAMPLE
        } else if lock(&self.watch).leader_exit_heard.is_some_and(|t| t.elapsed() < SETTLE_LIMIT) {
            SETTLE
        } else {
            BACKUP
        };
        Some(super::Readiness { fds: Vec::new(), sample: Some(sample) })
    }

    fn waker(&self) -> Arc<dyn Wake> {
        Arc::new(kqueue::TokenWake(self.token))
    }

    fn teardown(&self, deadline: Instant) -> usize {
        loop {
            self.reap_leader();
            let left = self.members().map(|m| m.len()).unwrap_or(0);
            let leader_left = self.leader.lock().map(|l| l.pid != 0 && l.status.is_none()).unwrap_or(false);
            let n = left + leader_left as usize;
            if n == 0 || Instant::now() >= deadline {
                return n;
            }
            let _ = self.kill();
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    fn location(&self) -> String {
        format!("process group {}", self.pgid())
    }
}

pub(crate) use crate::isolation::linux_only as check_isolation;

pub(crate) fn describe(pid: u32) -> (Option<u32>, Option<PathBuf>) {
    (bsdinfo(pid).map(|i| i.pbi_ppid), None)
}

/// macOS offers no other process's environment: no tag can be read.
pub(crate) fn orphaned_groups() -> io::Result<Vec<(String, Vec<u32>)>> {
    Ok(Vec::new())
}

/// Without tags, the recorded process group is what is known.
pub(crate) fn reap_group(_id: &str, leader: u32) -> io::Result<usize> {
    unix::killpg(leader, libc::SIGKILL)?;
    Ok(1)
}

pub(crate) fn reap_all_orphans(_yes: bool) {
    // macOS has no subreaper: orphans go to launchd, which reaps them.
}

fn bsdinfo(pid: u32) -> Option<libc::proc_bsdinfo> {
    // SAFETY: zeroed is a valid proc_bsdinfo out-parameter.
    let mut info: libc::proc_bsdinfo = unsafe { std::mem::zeroed() };
    let size = std::mem::size_of::<libc::proc_bsdinfo>() as libc::c_int;
    // SAFETY: info is valid for `size` bytes.
    let n = unsafe {
        libc::proc_pidinfo(
            pid as libc::c_int,
            libc::PROC_PIDTBSDINFO,
            0,
            (&mut info as *mut libc::proc_bsdinfo).cast(),
            size,
        )
    };
    (n == size).then_some(info)
}

pub(crate) use super::unix::minidump;

pub(crate) fn process_table() -> io::Result<Vec<ProcessInfo>> {
    let mut buf = vec![0 as libc::pid_t; 16384];
    // SAFETY: buf is valid for its byte length.
    let n = unsafe { libc::proc_listallpids(buf.as_mut_ptr().cast(), (buf.len() * 4) as libc::c_int) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    let mut out = Vec::new();
    for &pid in buf.iter().take(n as usize) {
        let Some(i) = bsdinfo(pid as u32) else { continue };
        // SAFETY: getsid has no memory-safety preconditions.
        let sid = unsafe { libc::getsid(pid) }.max(0) as u32;
        let name: String = i.pbi_comm.iter().take_while(|c| **c != 0).map(|c| *c as u8 as char).collect();
        out.push(ProcessInfo::new(pid as u32, i.pbi_ppid, i.pbi_pgid, sid, None, name));
    }
    Ok(out)
}

pub(crate) fn host_report() -> HostReport {
    let weak = |s: &str| Support::Weaker(s.to_string());
    let mut caps = vec![
        (
            Capability::HoldsEscapees,
            Support::No("macOS has no subreaper or cgroup; setsid escapees leave the process group".into()),
        ),
        (Capability::AtomicKill, weak("killpg in stop-then-kill rounds")),
        (Capability::KillOnControllerDeath, Support::No("no PR_SET_PDEATHSIG on macOS".into())),
        (Capability::EmptyNotification, weak("polled")),
        (Capability::PeakMemory, weak("largest single process (rusage maxrss)")),
    ];
    for k in LimitKind::ALL {
        caps.push((Capability::Limit(k), support(k)));
    }
    HostReport {
        os: std::env::consts::OS,
        chosen: Some(BackendKind::Pgid),
        backends: vec![BackendReport { kind: BackendKind::Pgid, available: Ok(()), capabilities: caps }],
        notes: vec!["macOS: process groups only (see the guarantees table in README)".into()],
    }
}
