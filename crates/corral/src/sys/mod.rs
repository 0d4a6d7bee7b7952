//! The one seam between corral and the OS.
//!
//! Each OS provides a type implementing [`SysGroup`] and the free functions
//! below. The compiler checks that every OS offers the same surface; the
//! platform-neutral monitor (`crate::monitor`) drives it.

use crate::{BackendKind, Enforcement, ExitStatus, LimitKind, Limits, ProcessInfo, Signal, Usage};
use std::io;
use std::process::{Child, ChildStderr, ChildStdin, ChildStdout};
use std::time::{Duration, Instant};

#[cfg(unix)]
pub(crate) mod unix;

#[cfg(target_os = "linux")]
#[path = "linux/mod.rs"]
mod imp;

#[cfg(target_os = "macos")]
#[path = "macos.rs"]
mod imp;

#[cfg(windows)]
#[path = "windows/mod.rs"]
mod imp;

#[cfg(target_os = "linux")]
pub(crate) use imp::{adopt_check, start_time};
#[cfg(target_os = "linux")]
pub(crate) use imp::{argv, connector_open, group_of, process_infos};

/// The process-event connector is Linux's.
#[cfg(not(target_os = "linux"))]
pub(crate) fn connector_open() -> bool {
    false
}

#[cfg(windows)]
pub(crate) use imp::start_time;

/// A process's start time, where the OS tells it.
#[cfg(target_os = "macos")]
pub(crate) fn start_time(_pid: u32) -> Option<u64> {
    None
}
pub(crate) use imp::{
    check_isolation, describe, host_report, minidump, orphaned_groups, process_table, reap_all_orphans, reap_group,
    Group as Imp, Poller,
};

/// The refusals of an adoption that need no group yet (elsewhere than on
/// Linux the backend refuses once created).
#[cfg(not(target_os = "linux"))]
pub(crate) fn adopt_check(_pid: u32) -> crate::Result<()> {
    Ok(())
}

/// What the OS layer needs to create a group.
#[derive(Debug, Clone)]
pub(crate) struct Spec {
    /// Unique among live groups of this host: `<controller pid>-<seq>`.
    pub id: String,
    pub limits: Limits,
    /// A forced backend, from the builder or `CORRAL_BACKEND`.
    pub backend: Option<BackendKind>,
    /// `CORRAL_SPAWN=fork`: start the leader through the fork path even
    /// where `clone3` would work (tests cover both paths with it).
    #[cfg_attr(not(target_os = "linux"), allow(dead_code))]
    pub force_fork: bool,
    /// Created to take back a recorded group: the sweep of stale groups
    /// must not run (it would kill what is taken back).
    #[cfg_attr(not(target_os = "linux"), allow(dead_code))]
    pub reattach: bool,
    /// The leader survives its controller's death (no `PR_SET_PDEATHSIG`;
    /// on Windows no `KILL_ON_JOB_CLOSE`).
    #[cfg_attr(target_os = "macos", allow(dead_code))]
    pub outlive: bool,
    /// Collect pushed events from the start, before anyone subscribes
    /// ([`crate::GroupBuilder::record_events`]).
    #[cfg_attr(not(target_os = "linux"), allow(dead_code))]
    pub record_events: bool,
    /// Count every process started ([`crate::GroupBuilder::count_processes`]).
    #[cfg_attr(not(target_os = "linux"), allow(dead_code))]
    pub count_processes: bool,
    /// Namespaces, mounts and privileges (checked by `check_isolation`).
    #[cfg_attr(not(target_os = "linux"), allow(dead_code))]
    pub isolation: crate::Isolation,
}

/// A leader just started: its pid, the controller's ends of its pipes,
/// and how it was started.
#[derive(Debug)]
pub(crate) struct Spawned {
    pub pid: u32,
    pub stdin: Option<ChildStdin>,
    pub stdout: Option<ChildStdout>,
    pub stderr: Option<ChildStderr>,
    pub path: crate::SpawnPath,
}

impl Spawned {
    /// From std's `Child` (corral reaps the leader itself; std's handle
    /// only carries the pid and the pipes).
    pub(crate) fn from_child(c: Child, path: crate::SpawnPath) -> Spawned {
        Spawned { pid: c.id(), stdin: c.stdin, stdout: c.stdout, stderr: c.stderr, path }
    }
}

/// How a group gets its leader: started by corral, or taken over while it
/// runs (`GroupBuilder::adopt`).
#[derive(Debug)]
pub(crate) enum Start {
    Spawn(crate::command::Leader),
    Adopt(u32),
    /// A group a previous controller recorded: its id, leader and the
    /// leader's start time.
    Reattach {
        id: String,
        pid: u32,
        start: u64,
    },
}

impl From<crate::command::Leader> for Start {
    fn from(l: crate::command::Leader) -> Start {
        Start::Spawn(l)
    }
}

/// Whether the calling thread may start `spec`'s leader itself rather
/// than the event loop's thread. Linux: a leader that must die with its
/// controller dies with the *thread* that forked it (`PR_SET_PDEATHSIG`),
/// so only the main thread (whose end is the process's) may, or any
/// thread for a leader meant to outlive its controller. Elsewhere the
/// loop's thread starts every leader, as it registers each with its one
/// port or queue.
#[cfg(target_os = "linux")]
pub(crate) use imp::may_start_here;
#[cfg(not(target_os = "linux"))]
pub(crate) fn may_start_here(_spec: &Spec) -> bool {
    false
}

/// Whether a caller blocked in `wait` may drive its own group: poll the
/// group's own fds ([`SysGroup::wait`] with a timeout) and step its life
/// on its own thread while the event loop leaves the group alone. Only
/// Linux's groups poll their own fds; Windows' and macOS's news arrive
/// on the loop's one port or queue.
pub(crate) const WAITS_ALONE: bool = cfg!(target_os = "linux");

/// Gives a freshly created group its leader, whichever way [`Start`] says.
pub(crate) fn begin<S: SysGroup>(sys: &S, start: Start) -> crate::Result<Spawned> {
    match start {
        Start::Spawn(cmd) => sys.spawn_leader(cmd),
        Start::Adopt(pid) => sys.adopt_leader(pid),
        Start::Reattach { id, pid, start } => sys.reattach_leader(&id, pid, start),
    }
}

/// What the event loop watches for one group.
#[derive(Debug, Clone, Default)]
pub(crate) struct Readiness {
    /// Linux: fds whose readiness means [`SysGroup::wait`] has news; `true`
    /// for a file the kernel signals with POLLPRI (cgroup `*.events`).
    /// Elsewhere empty: the group's news comes through the one port or
    /// queue that [`Poll`] waits on.
    #[cfg_attr(not(target_os = "linux"), allow(dead_code))]
    pub fds: Vec<(i32, bool)>,
    /// Look at the group this often even without news (what the kernel
    /// cannot notify is sampled).
    pub sample: Option<Duration>,
}

/// Something the monitor learns from [`SysGroup::wait`].
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Change {
    /// The leader ended and was reaped.
    LeaderExited(ExitStatus),
    /// No process is left in the group.
    Empty,
    /// The OS reports a limit hit (the OS may already have killed a member).
    #[cfg_attr(target_os = "macos", allow(dead_code))]
    Limit(LimitKind),
    /// A notify-only limit was hit: the OS throttled or refused, nothing died.
    #[cfg_attr(not(target_os = "linux"), allow(dead_code))]
    LimitNotice(LimitKind),
}

/// Makes the event loop look at a group (or at its own queue) now.
pub(crate) trait Wake: Send + Sync {
    fn wake(&self);
    /// Makes it look within [`WAKE_SOON`] at the latest, without waking it
    /// on the caller's time: for work that has no deadline sooner. Where
    /// the OS offers nothing cheaper, the same as [`Wake::wake`].
    fn wake_soon(&self) {
        self.wake();
    }
}

/// How late [`Wake::wake_soon`] may be.
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
pub(crate) const WAKE_SOON: Duration = Duration::from_millis(10);

/// The OS half of the one event loop that drives every group of this
/// process (`monitor::reactor`): what it sleeps in, and how it tells
/// whose news came. Linux polls every group's fds; Windows waits on the
/// one completion port that every job posts to; macOS on one kqueue.
pub(crate) trait Poll: Send + Sized + 'static {
    fn new() -> io::Result<Self>;
    /// Makes a [`Poll::wait`] in progress return, so that the loop takes
    /// the work queued for it.
    fn waker(&self) -> std::sync::Arc<dyn Wake>;
    /// Sleeps until one of `groups` has news, the loop is woken, or
    /// `timeout` passes (`None`: no timeout). Says, for each group in
    /// order, whether it has news for its next [`SysGroup::wait`].
    fn wait(&mut self, groups: &[&Imp], timeout: Option<Duration>) -> io::Result<Vec<bool>>;
}

/// One group, held by one OS mechanism. Every method takes `&self`: the
/// monitor thread waits while callers list members or kill.
pub(crate) trait SysGroup: Send + Sync + Sized + 'static {
    /// Creates the container (cgroup, job, …) before anything runs in it.
    fn create(spec: &Spec) -> crate::Result<Self>;
    /// Starts the leader inside the container before it runs user code.
    fn spawn_leader(&self, cmd: crate::command::Leader) -> crate::Result<Spawned>;
    /// Takes the running process `pid` and its descendants into the
    /// container, race-free where the OS allows; the leader is then `pid`,
    /// whose exit status corral cannot learn (it is not its parent).
    fn adopt_leader(&self, pid: u32) -> crate::Result<Spawned> {
        Err(crate::Error::new(
            crate::ErrorKind::Unsupported,
            format!("cannot adopt process {pid}: the {} backend cannot take in a running process", self.kind()),
        )
        .hint("start the program under corral instead (corral run)"))
    }
    /// Takes back the group `id` that a previous controller left, whose
    /// leader is `pid` started at `start` (an OS-specific clock).
    fn reattach_leader(&self, id: &str, pid: u32, start: u64) -> crate::Result<Spawned> {
        let _ = start;
        Err(crate::Error::new(
            crate::ErrorKind::Unsupported,
            format!("cannot re-attach group {id} (leader {pid}): the {} backend cannot", self.kind()),
        ))
    }
    fn kind(&self) -> BackendKind;
    /// How each requested limit is enforced.
    fn enforcement(&self) -> Vec<Enforcement>;
    /// True when the OS itself enforces the group CPU-time limit; otherwise
    /// the monitor watches `usage()` (never with a busy poll).
    fn enforces_cpu_time(&self) -> bool;
    fn members(&self) -> io::Result<Vec<u32>>;
    /// The first, polite phase of a stop, sent to every member.
    fn graceful_stop(&self, signal: Signal) -> io::Result<()>;
    /// The inescapable phase: every member, atomically where the OS can.
    fn kill(&self) -> io::Result<()>;
    fn usage(&self) -> Usage;
    /// What changed since the last call. The event loop calls it when
    /// [`Poll::wait`] said this group has news, or when the group's
    /// deadline or sample came due, always with a zero `timeout`; a
    /// caller that drives its own group ([`WAITS_ALONE`]) blocks in it up
    /// to its next deadline. Only a backend that polls its own fds (Linux)
    /// looks at `timeout`.
    fn wait(&self, timeout: Option<Duration>) -> io::Result<Vec<Change>>;
    fn waker(&self) -> std::sync::Arc<dyn Wake>;
    /// What the event loop watches for this group, and how often it
    /// samples it anyway. `None` (the default): only the group's own
    /// deadlines and requests wake it.
    fn readiness(&self) -> Option<Readiness> {
        None
    }
    /// After the kill: reaps everything, removes the container, and counts
    /// what is still alive (or unreaped) by `deadline`.
    fn teardown(&self, deadline: Instant) -> usize;
    /// [`SysGroup::teardown`] when one look finds nothing left to wait
    /// for (the usual end: the leader exited last): never blocks, so the
    /// event loop may run it itself. `None`, the default, when teardown
    /// would have to wait: then [`SysGroup::teardown`] follows.
    fn teardown_if_settled(&self) -> Option<usize> {
        None
    }

    /// True when the [`Change::Empty`] this backend reports means that every
    /// member has exited (a container no process can leave), so a group's
    /// end may be told before its teardown. False (the default) where a
    /// member may live on outside what is watched (a process group).
    fn empty_is_final(&self) -> bool {
        false
    }
    /// True while the backend cannot tell yet whether the group is empty
    /// but has every sign that it is, and wakes the group once it can
    /// tell (the pgid backend's event reader catching up with the
    /// leader's own exit). The rest of the group is not stopped before:
    /// that stop (a scan of every process) kept the reader off the CPU it
    /// needed to answer.
    fn settling(&self) -> bool {
        false
    }
    /// Changes the limits of the running group (see `Group::set_limits`).
    fn set_limits(&self, _limits: &Limits) -> crate::Result<()> {
        Err(crate::Error::new(
            crate::ErrorKind::Unsupported,
            format!("the {} backend cannot change limits while the group runs", self.kind()),
        )
        .hint("restart the group with the new limits"))
    }
    /// Where the group lives, for people (a cgroup path, a job name).
    fn location(&self) -> String;
    /// Started/Exited events the OS pushed since the last call, or `None`
    /// when this backend has no such source (the monitor then diffs
    /// `members()` while someone listens). The first call turns collection on.
    fn take_events(&self) -> Option<Vec<crate::Event>> {
        None
    }
    /// True when the OS reports each fork with its real parent as it
    /// happens (so a `Started`'s `ppid` is who forked it, even for a
    /// process re-parented since), and execs as `Exec`.
    fn observes_lineage(&self) -> bool {
        false
    }
    /// Someone subscribed: start collecting pushed events now, before the
    /// snapshot of current members is taken, so nothing falls in between.
    fn listen(&self) {}
}

/// Where no group can be found from outside its controller (a Job Object
/// or a macOS process group names no group id), nothing is found.
#[cfg(not(target_os = "linux"))]
pub(crate) fn group_of(_pid: u32) -> io::Result<Option<(String, Vec<u32>)>> {
    Ok(None)
}

/// Elsewhere the arguments are the command line split at spaces (macOS
/// and Windows give corral one string, or only the name).
#[cfg(not(target_os = "linux"))]
pub(crate) fn argv(pid: u32) -> Vec<String> {
    let list = tree_of(&[pid]).unwrap_or_default();
    list.first().map(|p| p.cmdline.split(' ').map(str::to_string).collect()).unwrap_or_default()
}

/// The members' entries of the process table, for `members()`-based trees.
pub(crate) fn tree_of(members: &[u32]) -> io::Result<Vec<ProcessInfo>> {
    #[cfg(target_os = "linux")]
    return process_infos(members);
    #[cfg(not(target_os = "linux"))]
    {
        let wanted: std::collections::HashSet<u32> = members.iter().copied().collect();
        Ok(process_table()?.into_iter().filter(|p| wanted.contains(&p.pid)).collect())
    }
}
