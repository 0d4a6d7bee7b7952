//! Linux: a group is a cgroup (v2, v1, or both on a hybrid host) or, without
//! cgroup permission, a process group swept by a subreaper.
//!
//! Traps this module exists to avoid:
//! - A process must join its cgroup before it runs user code, or a fast
//!   fork escapes. The leader writes `0` into each v1 `tasks` and the v2
//!   `cgroup.procs` in the child between fork and exec (fds opened by the
//!   parent, so the child only calls `write`).
//! - `PR_SET_PDEATHSIG` fires when the parent *thread* exits; a leader
//!   armed with it is forked by a thread that lives as long as the
//!   process: the event loop's, or the main thread ([`may_start_here`]).
//! - Zombies are not members of a cgroup, yet they hold pids: "gone" is
//!   "reaped", and this process reaps them as a child subreaper.
//! - A cgroup cannot be removed while it holds a task; teardown kills,
//!   waits for `populated 0`, reaps, then removes.
//!
//! What each backend holds is `parts.rs`; the group's surface is
//! `group.rs`; this file only wires the module and offers the free
//! functions of the seam.

mod adopt;
mod block_device;
mod cgroup_v1;
mod cgroup_v2;
mod connector;
mod counter_files;
mod enforce;
mod fds;
mod group;
mod hierarchy;
mod host_report;
mod io_throttle;
mod join_fds;
mod launch;
mod leader;
mod leaf_pool;
mod leftovers;
mod live_limits;
mod membership;
mod parts;
mod pgid;
mod pgid_adopt;
mod poll;
mod poller;
mod proc_events;
mod process_table;
mod procfs;
mod reaper;
mod reuse;
mod select;
mod spawn;
mod stale;
mod take_over;
mod teardown;
mod usage;

pub(crate) use self::fds::{poll_ready, EventFd, TimerFd};
pub(crate) use self::group::Group;
use self::hierarchy::Layout;
pub(crate) use self::host_report::host_report;
pub(crate) use self::poller::Poller;
pub(crate) use self::process_table::{process_infos, process_table};
use super::unix;
use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Duration;

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
    leaf_pool::remove_all();
    if let Some(l) = LAYOUT.get() {
        for root in l.v2_root.iter().chain(l.v1_roots.iter().map(|(_, r)| r)) {
            let _ = std::fs::remove_dir(root);
        }
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

/// [`crate::sys::may_start_here`]: a leader meant to outlive its
/// controller has no `PR_SET_PDEATHSIG`; any other only from the main
/// thread, whose end is the process's.
pub(crate) fn may_start_here(spec: &crate::sys::Spec) -> bool {
    // SAFETY: gettid takes nothing and cannot fail.
    spec.outlive || unsafe { libc::gettid() } as u32 == std::process::id()
}

pub(crate) fn reap_all_orphans(yes: bool) {
    reaper::set_reap_all(yes);
    reaper::ensure();
}

pub(crate) use super::unix::minidump;
