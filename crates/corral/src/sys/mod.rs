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

pub(crate) use imp::{
    check_isolation, describe, host_report, minidump, orphaned_groups, process_table, reap_all_orphans, reap_group,
    Group as Imp,
};
#[cfg(target_os = "linux")]
pub(crate) use imp::{poll_ready, EventFd};

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

/// What a shared event loop watches for one group.
#[derive(Debug, Clone, Default)]
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
pub(crate) struct Readiness {
    /// Fds whose readiness means [`SysGroup::wait`] has news; `true` for a
    /// file the kernel signals with POLLPRI (cgroup `*.events`).
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

/// Interrupts a [`SysGroup::wait`] from another thread.
pub(crate) trait Wake: Send + Sync {
    fn wake(&self);
}

/// One group, held by one OS mechanism. Every method takes `&self`: the
/// monitor thread waits while callers list members or kill.
pub(crate) trait SysGroup: Send + Sync + Sized + 'static {
    /// Creates the container (cgroup, job, …) before anything runs in it.
    fn create(spec: &Spec) -> crate::Result<Self>;
    /// Starts the leader inside the container before it runs user code.
    fn spawn_leader(&self, cmd: crate::command::Leader) -> crate::Result<Spawned>;
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
    /// Blocks until something changes, `wake()` is called, or `timeout`.
    fn wait(&self, timeout: Option<Duration>) -> io::Result<Vec<Change>>;
    fn waker(&self) -> std::sync::Arc<dyn Wake>;
    /// For one event loop shared by every group: what to watch. `None`
    /// (the default): this backend is driven by a thread of its own that
    /// sleeps in [`SysGroup::wait`].
    #[cfg_attr(not(target_os = "linux"), allow(dead_code))]
    fn readiness(&self) -> Option<Readiness> {
        None
    }
    /// After the kill: reaps everything, removes the container, and counts
    /// what is still alive (or unreaped) by `deadline`.
    fn teardown(&self, deadline: Instant) -> usize;
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
    /// Someone subscribed: start collecting pushed events now, before the
    /// snapshot of current members is taken, so nothing falls in between.
    fn listen(&self) {}
}

/// A process table entry filter used by `members()`-based trees.
pub(crate) fn tree_of(members: &[u32]) -> io::Result<Vec<ProcessInfo>> {
    let all = process_table()?;
    Ok(all.into_iter().filter(|p| members.contains(&p.pid)).collect())
}
