//! The pgid backend's adoption: what a process group can honestly hold.
//!
//! A running process cannot be moved into another process group, so the
//! pgid backend adopts only a process that leads its own
//! (`getpgid(pid) == pid`): the group's process group is then that one.
//! The tree is stopped race-free as `adopt.rs` stops it for the cgroup
//! backends (nothing is moved), every member found is recorded by pid and
//! start time, and the tree is continued.
//! - Members in the process group are held by it (`killpg`).
//! - Members outside it (setsid escapees present at the adoption) are held
//!   by pid and start time, and so are the descendants that ancestry leads
//!   back to a held member when corral looks (each membership scan and each
//!   kill pass): they are killed by pid, the start time checked first, so a
//!   reused pid is never taken.
//!
//! What it cannot promise: a process that leaves the process group after
//! the adoption and whose ancestry no longer leads back to a member (a
//! double fork whose middle already exited) is not followed: the process
//! connector does not follow an adopted tree here. `corral adopt` says so
//! in a note line.

use super::adopt;
use super::group::Group;
use super::reaper::{self, Owner};
use super::{corral_roots, fds, layout, procfs};
use crate::adopt::descendants;
use crate::sys::{unix, Spawned};
use crate::{Error, ErrorKind, SpawnPath};
use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

/// Stands for "every held member" as one root of the ancestry walk; no
/// real pid is this large.
const ALL_HELD: u32 = u32::MAX;

/// How many stop-and-kill passes one kill of the members outside the
/// process group makes (each pass takes what the previous one missed).
const KILL_PASSES: usize = 64;

impl Group {
    /// [`crate::sys::SysGroup::adopt_leader`] on the pgid backend.
    pub(super) fn take_running_pgid(&self, pid: u32) -> crate::Result<Spawned> {
        let roots = corral_roots(layout());
        let st = adopt::check(pid, &roots)?;
        if st.pgid != pid {
            return Err(not_a_leader(pid, st.pgid));
        }
        // Opened before anything is stopped: from here on, the pid's end
        // is seen even if the number is reused.
        let pidfd = fds::pidfd_open(pid).ok();
        if procfs::stat(pid).map(|s| s.starttime) != Some(st.starttime) {
            return Err(Error::new(ErrorKind::NotFound, format!("cannot adopt process {pid}: it exited")));
        }
        // No destination: stopped, recorded and continued, nothing moved.
        let members = adopt::take(pid, st.starttime, &roots, None, &[])?;
        // A running tree's past forks were never seen: it is not followed.
        drop(self.connector.lock().unwrap_or_else(|p| p.into_inner()).take());
        let owner = Arc::new(Owner { pgid: pid, known: Mutex::new(members.into_iter().collect()), ..Owner::default() });
        reaper::register(pid, owner.clone());
        let _ = self.owner.set(owner);
        let mut ld = self.leader.lock().unwrap_or_else(|p| p.into_inner());
        ld.pid = pid;
        ld.pidfd = pidfd;
        ld.adopted = true;
        Ok(Spawned { pid, stdin: None, stdout: None, stderr: None, path: SpawnPath::Adopted })
    }

    /// The live members of an adopted tree outside its process group: the
    /// recorded ones whose start time still matches, and whatever ancestry
    /// leads back to them or to the process group. Newly found ones are
    /// recorded. Empty for a group corral started.
    pub(super) fn held_by_pid(&self) -> Vec<u32> {
        let adopted = self.leader.lock().map(|l| l.adopted).unwrap_or(false);
        let Some(owner) = self.owner().filter(|_| adopted) else { return Vec::new() };
        let pgid = self.pgid();
        let Ok(mut table) = adopt::table() else { return Vec::new() };
        let mut known = owner.known.lock().unwrap_or_else(|p| p.into_inner());
        let held: Vec<u32> = table
            .iter()
            .filter_map(|&(pid, _)| {
                let st = procfs::stat(pid)?;
                let ours = st.pgid == pgid || known.get(&pid) == Some(&st.starttime);
                ours.then_some(pid)
            })
            .collect();
        table.extend(held.iter().map(|&p| (p, ALL_HELD)));
        let me = std::process::id();
        let mut out = Vec::new();
        for pid in descendants(ALL_HELD, &table, &BTreeSet::from([me])) {
            if pid == ALL_HELD {
                continue;
            }
            let Some(st) = procfs::stat(pid).filter(|s| !s.is_zombie() && s.pgid != pgid) else { continue };
            // Another corral group's member is that group's.
            if !known.contains_key(&pid) && procfs::environ_value(pid, b"CORRAL_GROUP=").is_some() {
                continue;
            }
            known.insert(pid, st.starttime);
            out.push(pid);
        }
        out
    }

    /// Kills the members outside the process group: each pass stops what
    /// it finds (a stopped process cannot fork), then kills it by pid, the
    /// start time checked just before, until a pass finds nobody.
    pub(super) fn kill_held_by_pid(&self) {
        for _ in 0..KILL_PASSES {
            let found = self.held_by_pid();
            if found.is_empty() {
                return;
            }
            let known = self.owner().map(|o| o.known.lock().unwrap_or_else(|p| p.into_inner()).clone());
            let same = |pid: u32| {
                let start = known.as_ref().and_then(|k| k.get(&pid).copied());
                procfs::stat(pid).is_some_and(|s| Some(s.starttime) == start)
            };
            for &pid in &found {
                if same(pid) {
                    let _ = unix::kill(pid, libc::SIGSTOP);
                }
            }
            for &pid in &found {
                if same(pid) {
                    let _ = unix::kill(pid, libc::SIGKILL);
                }
            }
        }
    }
}

fn not_a_leader(pid: u32, pgid: u32) -> Error {
    Error::new(
        ErrorKind::InvalidInput,
        format!(
            "cannot adopt process {pid}: it is not a process-group leader, and the pgid backend holds a group by its process group"
        ),
    )
    .hint(format!("adopt its leader (pgid {pgid}), or use a cgroup backend"))
}
