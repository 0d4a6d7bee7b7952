//! Linux: taking a running tree into a group's cgroups.
//!
//! The order is what makes it race-free:
//! 1. every member found by ancestry gets SIGSTOP, and the walk repeats
//!    once each is seen stopped, until a pass finds nobody new: a stopped
//!    process cannot fork, so the set is then closed;
//! 2. every member is written into each cgroup (`cgroup.procs`, which
//!    moves the whole thread group; not the spawn path's `tasks`, which
//!    moves one thread);
//! 3. only the members corral stopped get SIGCONT: one that was already
//!    stopped (job control, a debugger) stays stopped.
//!
//! Traps:
//! - Ancestry finds what is still in the tree. A process that left it
//!   before the adoption (the middle of a double fork already exited, so it
//!   was re-parented to init or a subreaper) cannot be told from any other
//!   process and is not taken.
//! - A descendant already held by another corral group stays there, with
//!   its own descendants: it is that group's.
//! - If any step fails, what was moved goes back to the cgroups it came
//!   from and everything is continued: nothing changes.

use super::procfs;
use crate::adopt::descendants;
use crate::sys::unix;
use crate::{Error, ErrorKind, Result};
use std::collections::{BTreeMap, BTreeSet};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// How long the tree may take to stop (a member in uninterruptible sleep
/// stops only when its syscall returns).
const STOP_LIMIT: Duration = Duration::from_secs(10);
/// How many walk-and-stop passes a tree may need; a bounded fork storm
/// needs a handful.
const MAX_PASSES: usize = 1000;
/// The most members one adoption takes (the kernel's own pid limit is
/// far above what one tree should hold).
const MAX_MEMBERS: usize = 100_000;

/// One member as it was when corral stopped it.
#[derive(Debug, Clone)]
struct Member {
    pid: u32,
    starttime: u64,
    /// It was stopped before corral came: it stays stopped.
    was_stopped: bool,
}

/// The names under which corral creates its cgroups (`…/<root>/<pid>-<seq>`).
pub(super) fn held_by_corral(cgroup_paths: &[String], roots: &[String]) -> Option<String> {
    cgroup_paths.iter().find_map(|p| {
        let mut parts = p.rsplit('/');
        let leaf = parts.next()?;
        let parent = parts.next()?;
        let (a, b) = leaf.trim_end_matches(crate::group::OUTLIVE_SUFFIX).split_once('-')?;
        let is_id = a.parse::<u32>().is_ok() && b.parse::<u64>().is_ok();
        (is_id && roots.iter().any(|r| r == parent)).then(|| leaf.to_string())
    })
}

/// Refusals that need nothing stopped: the pid runs, this user may signal
/// it, it is not corral's ancestor, corral does not hold it already.
pub(super) fn check(pid: u32, roots: &[String]) -> Result<procfs::Stat> {
    let st = procfs::stat(pid).filter(|s| !s.is_zombie()).ok_or_else(|| {
        Error::new(ErrorKind::NotFound, format!("cannot adopt process {pid}: there is no such process"))
            .hint("check the pid (ps, corral tree)")
    })?;
    // SAFETY: signal 0 only checks for existence and permission.
    if unsafe { libc::kill(pid as libc::pid_t, 0) } != 0 {
        let e = io::Error::last_os_error();
        return Err(if e.raw_os_error() == Some(libc::EPERM) {
            Error::os(format!("cannot adopt process {pid}: it belongs to another user"), e)
                .with_kind(ErrorKind::PermissionDenied)
                .hint("run corral adopt as that user, or as root")
        } else {
            Error::os(format!("cannot adopt process {pid}"), e)
        });
    }
    let mut up = std::process::id();
    for _ in 0..4096 {
        let Some(s) = procfs::stat(up) else { break };
        if s.ppid == pid {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                format!("cannot adopt process {pid}: it is an ancestor of corral (stopping it would stop corral)"),
            )
            .hint("give the pid of a process that corral does not run under"));
        }
        if s.ppid == 0 {
            break;
        }
        up = s.ppid;
    }
    if pid == 1 {
        return Err(Error::new(ErrorKind::InvalidInput, "cannot adopt process 1: it is init")
            .hint("give the pid of the program's own top process"));
    }
    let held = held_by_corral(&procfs::cgroup_paths(pid), roots)
        .or_else(|| procfs::environ_value(pid, b"CORRAL_GROUP=").map(|v| String::from_utf8_lossy(&v).into_owned()));
    if let Some(id) = held {
        return Err(Error::new(
            ErrorKind::InvalidInput,
            format!("cannot adopt process {pid}: corral already holds it (group {id})"),
        )
        .hint("stop or manage it through the corral that runs it"));
    }
    Ok(st)
}

/// Refusals for taking back a group a previous controller left: the
/// leader must be the recorded process (same start time: a reused pid is
/// never taken) and still belong to the group `id` (its cgroup or tag).
pub(super) fn check_recorded(pid: u32, start: u64, id: &str) -> Result<procfs::Stat> {
    let st = procfs::stat(pid).filter(|s| !s.is_zombie()).ok_or_else(|| {
        Error::new(ErrorKind::NotFound, format!("cannot re-attach group {id}: its leader {pid} is gone"))
    })?;
    if st.starttime != start {
        return Err(Error::new(
            ErrorKind::NotFound,
            format!(
                "cannot re-attach group {id}: pid {pid} started at tick {}, not {start} as recorded (the pid was reused)",
                st.starttime
            ),
        ));
    }
    let in_cgroup = procfs::cgroup_paths(pid).iter().any(|c| c.rsplit('/').next() == Some(id));
    let tagged = procfs::environ_value(pid, b"CORRAL_GROUP=").is_some_and(|v| v == id.as_bytes());
    if !in_cgroup && !tagged {
        return Err(Error::new(
            ErrorKind::NotFound,
            format!("cannot re-attach group {id}: process {pid} is neither in its cgroup nor tagged with it"),
        ));
    }
    Ok(st)
}

/// A process table as `(pid, ppid)`, zombies left out (they cannot fork or
/// be moved).
pub(super) fn table() -> io::Result<Vec<(u32, u32)>> {
    Ok(procfs::all_pids()?
        .into_iter()
        .filter_map(procfs::stat)
        .filter(|s| !s.is_zombie())
        .map(|s| (s.pid, s.ppid))
        .collect())
}

fn is_stopped_or_gone(pid: u32, starttime: u64) -> bool {
    match procfs::stat(pid) {
        Some(s) if s.starttime == starttime => matches!(s.state, b'T' | b't' | b'Z' | b'X'),
        _ => true,
    }
}

/// Every live process of the group `id` a previous controller left: in a
/// cgroup named `id`, or carrying its tag (escapees keep the tag).
fn of_old_group(id: &str) -> Vec<u32> {
    let tag = format!("CORRAL_GROUP={id}");
    procfs::all_pids()
        .unwrap_or_default()
        .into_iter()
        .filter(|&p| p != std::process::id())
        .filter(|&p| {
            procfs::cgroup_paths(p).iter().any(|c| c.rsplit('/').next() == Some(id))
                || procfs::environ_has(p, tag.as_bytes())
        })
        .collect()
}

/// Stops the tree under `root` until no new member appears; returns the
/// members (root first). With `old`, the members of that old group are
/// taken too (and are not "held by another group"). On failure continues
/// what it stopped.
fn stop_tree(root: u32, root_start: u64, roots: &[String], old: Option<&str>) -> Result<Vec<Member>> {
    let mut members: BTreeMap<u32, Member> = BTreeMap::new();
    let mut order = Vec::new();
    let mut skip = BTreeSet::new();
    let end = crate::deadline::after(Instant::now(), STOP_LIMIT);
    let fail = |members: &BTreeMap<u32, Member>, e: Error| {
        resume(members.values());
        Err(e)
    };
    for _ in 0..MAX_PASSES {
        let t = table().map_err(|e| Error::os("reading the process table", e))?;
        let mut fresh = 0;
        let mut found = descendants(root, &t, &skip);
        if let Some(id) = old {
            for seed in of_old_group(id) {
                found.extend(descendants(seed, &t, &skip));
            }
        }
        for pid in found {
            if members.contains_key(&pid) {
                continue;
            }
            let Some(st) = procfs::stat(pid).filter(|s| !s.is_zombie()) else { continue };
            if pid == root && st.starttime != root_start {
                return fail(&members, Error::new(ErrorKind::NotFound, format!("process {root} exited")));
            }
            let other = held_by_corral(&procfs::cgroup_paths(pid), roots).filter(|h| Some(h.as_str()) != old);
            if pid != root && other.is_some() {
                skip.insert(pid);
                continue;
            }
            let was_stopped = matches!(st.state, b'T' | b't');
            if let Err(e) = unix::kill(pid, libc::SIGSTOP) {
                let what = format!("cannot adopt process {root}: its descendant {pid} cannot be stopped");
                return fail(
                    &members,
                    Error::os(what, e).hint("run corral adopt as root, or as the owner of the whole tree"),
                );
            }
            members.insert(pid, Member { pid, starttime: st.starttime, was_stopped });
            order.push(pid);
            fresh += 1;
        }
        if members.len() > MAX_MEMBERS {
            return fail(
                &members,
                Error::new(
                    ErrorKind::Unsupported,
                    format!("the tree of {root} holds more than {MAX_MEMBERS} processes"),
                ),
            );
        }
        // Only a stopped process is sure not to fork again.
        while !members.values().all(|m| is_stopped_or_gone(m.pid, m.starttime)) {
            if Instant::now() >= end {
                return fail(
                    &members,
                    Error::new(
                        ErrorKind::Os,
                        format!("cannot adopt process {root}: its tree did not stop within {STOP_LIMIT:?}"),
                    )
                    .hint("a member may be stuck in the kernel (state D); try again"),
                );
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        if fresh == 0 {
            return Ok(order.into_iter().filter_map(|p| members.remove(&p)).collect());
        }
    }
    fail(
        &members,
        Error::new(
            ErrorKind::Os,
            format!("cannot adopt process {root}: its tree kept growing for {MAX_PASSES} passes"),
        ),
    )
}

fn resume<'a>(members: impl IntoIterator<Item = &'a Member>) {
    for m in members {
        if !m.was_stopped && procfs::stat(m.pid).is_some_and(|s| s.starttime == m.starttime) {
            let _ = unix::kill(m.pid, libc::SIGCONT);
        }
    }
}

/// Writes `pid` into a `cgroup.procs`; a process that exited meanwhile is
/// no error.
fn move_into(procs: &Path, pid: u32) -> io::Result<()> {
    let mut f = std::fs::OpenOptions::new().write(true).open(procs)?;
    match f.write_all(pid.to_string().as_bytes()) {
        Err(e) if e.raw_os_error() == Some(libc::ESRCH) => Ok(()),
        r => r,
    }
}

/// One hierarchy the tree moves into.
#[derive(Debug, Clone)]
pub(super) struct Dest {
    /// The group's `cgroup.procs` in this hierarchy.
    pub procs: PathBuf,
    /// The hierarchy's mount point.
    pub mount: PathBuf,
    /// The v1 controller that names the hierarchy; `None` for v2.
    pub controller: Option<String>,
}

impl Dest {
    /// The `cgroup.procs` of the cgroup `pid` sits in now in this
    /// hierarchy, to put it back if the adoption fails.
    fn origin(&self, pid: u32) -> Option<PathBuf> {
        let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
        let path = text.lines().find_map(|l| {
            let mut parts = l.splitn(3, ':');
            let _id = parts.next()?;
            let ctls = parts.next()?;
            let path = parts.next()?;
            let here = match &self.controller {
                None => ctls.is_empty(),
                Some(c) => ctls.split(',').any(|x| x == c),
            };
            here.then(|| path.to_string())
        })?;
        Some(self.mount.join(path.trim_start_matches('/')).join("cgroup.procs"))
    }
}

/// Stops the tree, moves it into every `dests`, continues it. Returns the
/// members' pids and start times.
pub(super) fn take(
    root: u32,
    root_start: u64,
    roots: &[String],
    old: Option<&str>,
    dests: &[Dest],
) -> Result<Vec<(u32, u64)>> {
    let members = stop_tree(root, root_start, roots, old)?;
    let mut moved: Vec<(u32, PathBuf)> = Vec::new();
    for m in &members {
        for d in dests {
            let back = d.origin(m.pid);
            if let Err(e) = move_into(&d.procs, m.pid) {
                for (pid, from) in moved.iter().rev() {
                    let _ = move_into(from, *pid);
                }
                resume(&members);
                return Err(Error::os(format!("cannot move process {} into {}", m.pid, d.procs.display()), e)
                    .hint("the cgroup is not writable by this user: run as root"));
            }
            if let Some(b) = back {
                moved.push((m.pid, b));
            }
        }
    }
    resume(&members);
    Ok(members.iter().map(|m| (m.pid, m.starttime)).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn corral_cgroups_are_recognised_by_root_name_and_id() {
        let roots = vec!["corral".to_string()];
        assert_eq!(held_by_corral(&["/corral/123-4".into()], &roots), Some("123-4".into()));
        assert_eq!(held_by_corral(&["/corral/123-4-outlive".into()], &roots), Some("123-4-outlive".into()));
        assert_eq!(held_by_corral(&["/user.slice/123-4".into()], &roots), None);
        assert_eq!(held_by_corral(&["/corral/leaf".into(), "/".into()], &roots), None);
    }
}
