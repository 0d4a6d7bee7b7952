//! macOS: adopting a running process group, with what a process group can
//! honestly hold (the Linux pgid backend's promise, `sys/linux/pgid_adopt.rs`).
//!
//! A running process cannot be moved into another process group, so only a
//! process that leads its own is adopted. Its tree (found by parent pid,
//! `proc_pidinfo`) gets SIGSTOP pass after pass until a pass finds nobody
//! new (a stopped process cannot fork); every member is recorded by pid and
//! start time, and corral continues what it stopped (one that was already
//! stopped stays stopped). The process group holds its members (`killpg`);
//! members outside it (setsid escapees present at the adoption) are held by
//! pid and start time, and so are the descendants ancestry leads back to a
//! held member when corral looks; they are killed by pid, the start time
//! checked first, so a reused pid is never taken.
//!
//! Traps:
//! - There is no subreaper: a member whose parent dies goes to launchd,
//!   and a later escapee whose ancestry is gone before corral looks is lost.
//! - corral is not the leader's parent: its end is seen (kqueue
//!   `NOTE_EXIT`, or its entry gone), its status is unknown.
//! - Another process's environment (the `CORRAL_GROUP` tag) is read with
//!   `KERN_PROCARGS2`, which macOS grants for this user's processes.

use super::{bsdinfo, kqueue, lock, Group};
use crate::adopt::descendants;
use crate::sys::{unix, Spawned};
use crate::{Error, ErrorKind, ExitStatus, Result, SpawnPath};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io;
use std::time::{Duration, Instant};

/// How long the tree may take to stop.
const STOP_LIMIT: Duration = Duration::from_secs(10);
/// Walk-and-stop passes one adoption may need.
const MAX_PASSES: usize = 1000;
/// The most members one adoption takes.
const MAX_MEMBERS: usize = 100_000;
/// The most pids one listing of the host reads.
const MAX_PIDS: usize = 1 << 16;
/// The most bytes of one process's arguments and environment read.
const MAX_ARGS: usize = 1 << 20;
/// Stands for "every held member" as one root of the ancestry walk.
const ALL_HELD: u32 = u32::MAX;

/// What an adopted group holds besides its process group.
#[derive(Debug, Default)]
pub(super) struct Held {
    /// pid -> start time (µs since the epoch) of every member seen.
    known: HashMap<u32, u64>,
    leader_start: u64,
}

/// One entry of the process table.
#[derive(Debug, Clone, Copy)]
struct Proc {
    ppid: u32,
    pgid: u32,
    start: u64,
    status: u32,
}

impl Proc {
    fn is_zombie(&self) -> bool {
        self.status == libc::SZOMB
    }
}

fn info(pid: u32) -> Option<Proc> {
    let i = bsdinfo(pid)?;
    let start = i.pbi_start_tvsec.saturating_mul(1_000_000).saturating_add(i.pbi_start_tvusec);
    Some(Proc { ppid: i.pbi_ppid, pgid: i.pbi_pgid, start, status: i.pbi_status })
}

fn all_pids() -> io::Result<Vec<u32>> {
    let mut buf = vec![0 as libc::pid_t; MAX_PIDS];
    // SAFETY: buf is valid for its byte length.
    let n = unsafe { libc::proc_listallpids(buf.as_mut_ptr().cast(), (buf.len() * 4) as libc::c_int) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(buf.iter().take((n as usize).min(MAX_PIDS)).filter(|p| **p > 0).map(|p| *p as u32).collect())
}

/// `(pid, ppid)` of every live process, zombies left out.
fn table() -> io::Result<Vec<(u32, u32)>> {
    Ok(all_pids()?.into_iter().filter_map(|p| info(p).filter(|i| !i.is_zombie()).map(|i| (p, i.ppid))).collect())
}

/// Whether `pid`'s environment carries a `CORRAL_GROUP` tag.
fn tagged(pid: u32) -> bool {
    let mut mib = [libc::CTL_KERN, libc::KERN_PROCARGS2, pid as libc::c_int];
    let mut buf = vec![0u8; MAX_ARGS];
    let mut len = buf.len();
    // SAFETY: mib, buf and len are valid for the lengths given.
    let r = unsafe { libc::sysctl(mib.as_mut_ptr(), 3, buf.as_mut_ptr().cast(), &mut len, std::ptr::null_mut(), 0) };
    if r != 0 {
        return false;
    }
    // argc, the exec path, then argv and the environment, NUL-separated:
    // the tag can only be a whole string that starts with it.
    buf[..len.min(MAX_ARGS)].split(|b| *b == 0).any(|s| s.starts_with(b"CORRAL_GROUP="))
}

/// The refusals that need nothing stopped; returns the leader's start time.
fn check(pid: u32) -> Result<u64> {
    let me = info(pid).filter(|i| !i.is_zombie()).ok_or_else(|| {
        Error::new(ErrorKind::NotFound, format!("cannot adopt process {pid}: there is no such process"))
            .hint("check the pid (ps, corral tree)")
    })?;
    unix::kill(pid, 0).map_err(|e| {
        if e.raw_os_error() == Some(libc::EPERM) {
            Error::os(format!("cannot adopt process {pid}: it belongs to another user"), e)
                .with_kind(ErrorKind::PermissionDenied)
                .hint("run corral adopt as that user, or as root")
        } else {
            Error::os(format!("cannot adopt process {pid}"), e)
        }
    })?;
    let mut up = std::process::id();
    for _ in 0..4096 {
        let Some(i) = info(up) else { break };
        if i.ppid == pid {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                format!("cannot adopt process {pid}: it is an ancestor of corral (stopping it would stop corral)"),
            )
            .hint("give the pid of a process that corral does not run under"));
        }
        if i.ppid == 0 || i.ppid == up {
            break;
        }
        up = i.ppid;
    }
    if pid == 1 {
        return Err(Error::new(ErrorKind::InvalidInput, "cannot adopt process 1: it is launchd")
            .hint("give the pid of the program's own top process"));
    }
    if tagged(pid) {
        return Err(Error::new(
            ErrorKind::InvalidInput,
            format!("cannot adopt process {pid}: corral already holds it"),
        )
        .hint("stop or manage it through the corral that runs it"));
    }
    if me.pgid != pid {
        return Err(Error::new(
            ErrorKind::InvalidInput,
            format!(
                "cannot adopt process {pid}: it is not a process-group leader, and the pgid backend holds a group by its process group"
            ),
        )
        .hint(format!("adopt its leader (pgid {}), or use a cgroup backend (Linux)", me.pgid)));
    }
    Ok(me.start)
}

/// One member as corral stopped it.
struct Stopped {
    start: u64,
    was_stopped: bool,
}

fn resume(members: &BTreeMap<u32, Stopped>) {
    for (&pid, m) in members {
        if !m.was_stopped && info(pid).is_some_and(|i| i.start == m.start) {
            let _ = unix::kill(pid, libc::SIGCONT);
        }
    }
}

fn stopped_or_gone(pid: u32, start: u64) -> bool {
    match info(pid) {
        Some(i) if i.start == start => matches!(i.status, libc::SSTOP | libc::SZOMB),
        _ => true,
    }
}

/// Stops the tree under `root` until a pass finds nobody new, then
/// continues it; returns every member with its start time.
fn stop_and_record(root: u32, root_start: u64) -> Result<HashMap<u32, u64>> {
    let mut members: BTreeMap<u32, Stopped> = BTreeMap::new();
    let mut skip = BTreeSet::new();
    let end = crate::deadline::after(Instant::now(), STOP_LIMIT);
    let fail = |members: &BTreeMap<u32, Stopped>, e: Error| {
        resume(members);
        Err(e)
    };
    for _ in 0..MAX_PASSES {
        let t = table().map_err(|e| Error::os("reading the process table", e))?;
        let mut fresh = 0;
        for pid in descendants(root, &t, &skip) {
            if members.contains_key(&pid) {
                continue;
            }
            let Some(i) = info(pid).filter(|i| !i.is_zombie()) else { continue };
            if pid == root && i.start != root_start {
                return fail(&members, Error::new(ErrorKind::NotFound, format!("process {root} exited")));
            }
            if pid != root && tagged(pid) {
                // Another corral group's: it stays that group's.
                skip.insert(pid);
                continue;
            }
            let was_stopped = i.status == libc::SSTOP;
            if let Err(e) = unix::kill(pid, libc::SIGSTOP) {
                let what = format!("cannot adopt process {root}: its descendant {pid} cannot be stopped");
                return fail(
                    &members,
                    Error::os(what, e).hint("run corral adopt as root, or as the owner of the whole tree"),
                );
            }
            members.insert(pid, Stopped { start: i.start, was_stopped });
            fresh += 1;
        }
        if members.len() > MAX_MEMBERS {
            let e = Error::new(
                ErrorKind::Unsupported,
                format!("the tree of {root} holds more than {MAX_MEMBERS} processes"),
            );
            return fail(&members, e);
        }
        while !members.iter().all(|(p, m)| stopped_or_gone(*p, m.start)) {
            if Instant::now() >= end {
                let e = Error::new(
                    ErrorKind::Os,
                    format!("cannot adopt process {root}: its tree did not stop within {STOP_LIMIT:?}"),
                );
                return fail(&members, e);
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        if fresh == 0 {
            resume(&members);
            return Ok(members.into_iter().map(|(p, m)| (p, m.start)).collect());
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

impl Group {
    /// [`crate::sys::SysGroup::adopt_leader`] on macOS.
    pub(super) fn take_running(&self, pid: u32) -> Result<Spawned> {
        let start = check(pid)?;
        let known = stop_and_record(pid, start)?;
        *lock(&self.adopted) = Some(Held { known, leader_start: start });
        self.leader.lock().unwrap_or_else(|p| p.into_inner()).pid = pid;
        if matches!(kqueue::watch(pid, self.token), Ok(true)) {
            lock(&self.watch).pids.insert(pid);
        }
        self.track();
        Ok(Spawned { pid, stdin: None, stdout: None, stderr: None, path: SpawnPath::Adopted })
    }

    /// `pgrp`, the process group's listing, as the group's members: for an
    /// adopted group without zombies (they are their parents' to reap) and
    /// with the held members outside the process group.
    pub(super) fn with_held(&self, pgrp: Vec<u32>) -> Vec<u32> {
        let mut a = lock(&self.adopted);
        let Some(held) = a.as_mut() else { return pgrp };
        let pgid = self.pgid();
        let Ok(mut t) = table() else { return pgrp };
        let mut out: Vec<u32> = pgrp.into_iter().filter(|p| info(*p).is_some_and(|i| !i.is_zombie())).collect();
        let roots: Vec<u32> = t
            .iter()
            .filter(|(p, _)| info(*p).is_some_and(|i| i.pgid == pgid || held.known.get(p) == Some(&i.start)))
            .map(|(p, _)| *p)
            .collect();
        t.extend(roots.into_iter().map(|p| (p, ALL_HELD)));
        let me = std::process::id();
        for pid in descendants(ALL_HELD, &t, &BTreeSet::from([me])) {
            let Some(i) = info(pid).filter(|i| pid != ALL_HELD && !i.is_zombie() && i.pgid != pgid) else { continue };
            if !held.known.contains_key(&pid) && tagged(pid) {
                continue;
            }
            held.known.insert(pid, i.start);
            out.push(pid);
        }
        out
    }

    /// The held members outside the process group, stopped then killed by
    /// pid (start time checked), pass after pass until none is found.
    pub(super) fn kill_held(&self) {
        if lock(&self.adopted).is_none() {
            return;
        }
        for _ in 0..64 {
            let pgid = self.pgid();
            let outside: Vec<u32> =
                self.with_held(Vec::new()).into_iter().filter(|p| info(*p).is_some_and(|i| i.pgid != pgid)).collect();
            if outside.is_empty() {
                return;
            }
            let starts = lock(&self.adopted).as_ref().map(|h| h.known.clone()).unwrap_or_default();
            let same = |pid: u32| info(pid).is_some_and(|i| starts.get(&pid) == Some(&i.start));
            for sig in [libc::SIGSTOP, libc::SIGKILL] {
                for &pid in outside.iter().filter(|p| same(**p)) {
                    let _ = unix::kill(pid, sig);
                }
            }
        }
    }

    /// An adopted leader's end: gone, a zombie, or its pid reused. corral
    /// is not its parent, so its status is unknown. `None`: not adopted.
    pub(super) fn adopted_leader_ended(&self) -> Option<bool> {
        let start = lock(&self.adopted).as_ref()?.leader_start;
        let l = self.leader.lock().unwrap_or_else(|p| p.into_inner());
        if l.status.is_some() {
            return Some(false);
        }
        let pid = l.pid;
        drop(l);
        let ended = info(pid).is_none_or(|i| i.is_zombie() || i.start != start);
        if ended {
            self.leader.lock().unwrap_or_else(|p| p.into_inner()).status = Some(ExitStatus::UNKNOWN);
        }
        Some(ended)
    }
}
