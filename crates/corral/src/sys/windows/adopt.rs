//! Windows: taking a running tree into a group's job.
//!
//! No process can be frozen from outside without a debugger, but none has
//! to be: once a process is in the job, every child it creates from then
//! on is born in the job. So each pass assigns the members found by parent
//! pid (a Toolhelp snapshot) that are not in yet, and the walk repeats
//! until a pass finds nobody new; a child created before its parent was
//! assigned is found by the next pass.
//!
//! Traps:
//! - A parent pid names a process that may be gone and its pid reused: a
//!   candidate counts only if it was created after its parent (creation
//!   times), so an unrelated process under a recycled pid is never taken.
//! - A process in a job that forbids nesting or breakaway refuses the
//!   assignment with access denied: said as for a spawn (`error::assign`).

use super::handle::{self, raw};
use super::job::Job;
use super::process;
use crate::adopt::descendants;
use crate::{Error, ErrorKind, Result};
use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::os::windows::io::OwnedHandle;
use windows_sys::Win32::System::Threading::{
    OpenProcess, PROCESS_QUERY_INFORMATION, PROCESS_QUERY_LIMITED_INFORMATION, PROCESS_SET_QUOTA, PROCESS_SYNCHRONIZE,
    PROCESS_TERMINATE,
};

/// How many snapshot passes a growing tree may need.
const MAX_PASSES: usize = 1000;

/// What `AssignProcessToJobObject` needs, and watching.
const ASSIGN: u32 = PROCESS_SET_QUOTA
    | PROCESS_TERMINATE
    | PROCESS_SYNCHRONIZE
    | PROCESS_QUERY_INFORMATION
    | PROCESS_QUERY_LIMITED_INFORMATION;

pub(super) fn open_for_assign(pid: u32) -> io::Result<OwnedHandle> {
    // SAFETY: OpenProcess takes no pointers; the result is checked.
    handle::from_null(unsafe { OpenProcess(ASSIGN, 0, pid) })
}

/// The refusals that need no group: the pid runs and may be opened, and is
/// neither this process nor one of its ancestors.
pub(super) fn check(pid: u32) -> Result<()> {
    let h = open_for_assign(pid).map_err(|e| {
        if super::error::is_access_denied(&e) {
            Error::os(format!("cannot adopt process {pid}: it belongs to another user or is protected"), e)
                .with_kind(ErrorKind::PermissionDenied)
                .hint("run corral adopt as that user, or as an administrator")
        } else {
            Error::os(format!("cannot adopt process {pid}: there is no such process"), e)
                .with_kind(ErrorKind::NotFound)
                .hint("check the pid (corral tree)")
        }
    })?;
    if !process::running(&h) {
        return Err(Error::new(ErrorKind::NotFound, format!("cannot adopt process {pid}: there is no such process"))
            .hint("check the pid (corral tree)"));
    }
    let table: BTreeMap<u32, u32> =
        process::snapshot().unwrap_or_default().into_iter().map(|e| (e.pid, e.ppid)).collect();
    let mut up = std::process::id();
    for _ in 0..4096 {
        match table.get(&up) {
            Some(&ppid) if ppid == pid => {
                return Err(Error::new(
                    ErrorKind::InvalidInput,
                    format!("cannot adopt process {pid}: it is an ancestor of corral (killing it would kill corral)"),
                )
                .hint("give the pid of a process that corral does not run under"));
            }
            Some(&ppid) if ppid != 0 && ppid != up => up = ppid,
            _ => break,
        }
    }
    Ok(())
}

/// Assigns the tree under `root` to `job` until a pass finds nobody new.
/// Returns the root's handle (kept for its exit) and every member's.
pub(super) fn take(job: &Job, root: u32) -> Result<(OwnedHandle, Vec<(u32, OwnedHandle)>)> {
    check(root)?;
    let root_h = open_for_assign(root).map_err(|e| Error::os(format!("opening process {root}"), e))?;
    let mut members: BTreeMap<u32, (OwnedHandle, Option<u64>)> = BTreeMap::new();
    for _ in 0..MAX_PASSES {
        let snap = process::snapshot().map_err(|e| Error::os("CreateToolhelp32Snapshot", e))?;
        let parent_of: BTreeMap<u32, u32> = snap.iter().map(|e| (e.pid, e.ppid)).collect();
        let table: Vec<(u32, u32)> = snap.iter().map(|e| (e.pid, e.ppid)).collect();
        let mut fresh = 0;
        for pid in descendants(root, &table, &BTreeSet::new()) {
            if members.contains_key(&pid) {
                continue;
            }
            let Ok(h) = open_for_assign(pid) else { continue };
            let born = process::created(raw(&h));
            // A recycled parent pid: the "child" is older than its parent.
            if pid != root {
                let parent_born = parent_of.get(&pid).and_then(|pp| members.get(pp)).and_then(|(_, b)| *b);
                if let (Some(c), Some(p)) = (born, parent_born) {
                    if c < p {
                        continue;
                    }
                }
            }
            if !process::running(&h) {
                continue;
            }
            if !job.contains(raw(&h)).unwrap_or(false) {
                if let Err(e) = job.assign(raw(&h)) {
                    // A process that ended meanwhile cannot be assigned; that is no failure.
                    if process::running(&h) {
                        return Err(super::error::assign(e));
                    }
                    continue;
                }
            }
            members.insert(pid, (h, born));
            fresh += 1;
        }
        if fresh == 0 {
            let list = members.into_iter().map(|(p, (h, _))| (p, h)).collect();
            return Ok((root_h, list));
        }
    }
    Err(Error::new(
        ErrorKind::Os,
        format!("cannot adopt process {root}: its tree kept growing for {MAX_PASSES} passes"),
    ))
}
