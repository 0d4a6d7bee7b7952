//! Who is in a group, whether it is empty, and the kill: asked of the
//! group's [`Holder`] (a v2 leaf, v1 directories, or a process group).

use super::group::Group;
use super::parts::Holder;
use super::reaper::Owner;
use super::{pgid, procfs, unix};
use std::io;
use std::sync::Arc;

impl Group {
    pub(super) fn members_inner(&self) -> io::Result<Vec<u32>> {
        match self.parts.holder() {
            Holder::Leaf(v2) => v2.members(),
            Holder::V1(v1) => v1.members(),
            Holder::Pgid => self.pgid_members(),
        }
    }

    /// Like `members_inner`, but trusts the event connector's "all
    /// exited" on the pgid backend instead of scanning all of /proc.
    pub(super) fn members_cheap(&self) -> io::Result<Vec<u32>> {
        if let Holder::Pgid = self.parts.holder() {
            if self.leader_done() && self.tracked.get().is_some_and(|t| !t.lost() && t.settled()) {
                return Ok(Vec::new());
            }
        }
        self.members_inner()
    }

    /// Whether the group is empty now. For the event loop only (see
    /// [`Group::populated_now`]).
    pub(super) fn is_empty(&self) -> bool {
        if let Some(p) = self.populated_now() {
            return !p;
        }
        match self.parts.holder() {
            Holder::Leaf(v2) => !v2.populated().unwrap_or(true) || v2.members().map(|m| m.is_empty()).unwrap_or(false),
            Holder::V1(v1) => v1.members().map(|m| m.is_empty()).unwrap_or(false),
            // The event connector knows when every descendant has exited,
            // which spares a scan of all of /proc.
            Holder::Pgid => match self.tracked.get() {
                Some(t) if !t.lost() => t.settled() && self.leader_done(),
                _ => self.pgid_members().map(|m| m.is_empty()).unwrap_or(false),
            },
        }
    }

    /// A v2 leaf's `populated`, read through the `cgroup.events` fd the
    /// event loop polls (`configure` opens it first). Only whoever polls
    /// that fd may call this, since the read re-arms it: the event loop
    /// while the group lives, its teardown after. `None` without a leaf.
    pub(super) fn populated_now(&self) -> Option<bool> {
        match self.parts.holder() {
            Holder::Leaf(_) if self.seen_empty.load(std::sync::atomic::Ordering::Relaxed) => Some(false),
            Holder::Leaf(_) => self.watched.first()?.read_keyed("populated").map(|n| n != 0),
            _ => None,
        }
    }

    /// `cgroup.events` tells when the group empties (else it is sampled).
    pub(super) fn has_empty_notification(&self) -> bool {
        matches!(self.parts.holder(), Holder::Leaf(_)) && !self.watched.is_empty()
    }

    /// The kill of [`crate::sys::SysGroup::kill`], best mechanism first.
    pub(super) fn kill_members(&self) -> io::Result<()> {
        let kill_file = self.kill_file.lock().unwrap_or_else(|p| p.into_inner());
        if let (Holder::Leaf(_), Some(f)) = (self.parts.holder(), kill_file.as_ref()) {
            self.leaf_killed.store(true, std::sync::atomic::Ordering::Relaxed);
            return std::os::unix::fs::FileExt::write_all_at(f, b"1", 0);
        }
        drop(kill_file);
        match self.parts.holder() {
            Holder::Leaf(v2) if v2.has_kill() => {
                self.leaf_killed.store(true, std::sync::atomic::Ordering::Relaxed);
                v2.kill()
            }
            // Before Linux 5.14 a v2 leaf has no atomic kill (and a hybrid
            // group has no v1 freezer).
            Holder::Leaf(v2) => {
                for p in v2.members()? {
                    let _ = unix::kill(p, libc::SIGKILL);
                }
                Ok(())
            }
            Holder::V1(v1) => v1.kill(|members| self.note_members(members)),
            // No leader yet: process group 0 would be our own.
            Holder::Pgid if self.pgid() == 0 => Ok(()),
            Holder::Pgid => {
                let _ = self.pgid_members();
                let killed = pgid::kill(self.pgid(), &self.tag);
                self.kill_held_by_pid();
                killed
            }
        }
    }

    /// Every process of the group still in `/proc`, zombies included: by
    /// cgroup, by process group, or as a member seen earlier (same pid and
    /// start time). Counted, not assumed.
    pub(super) fn remaining(&self, owner: &Option<Arc<Owner>>) -> Vec<u32> {
        let me = std::process::id();
        let pgid = self.pgid();
        let leader = self.leader.lock().map(|l| (l.pid, l.status.is_some())).unwrap_or((0, true));
        let adopted = self.leader.lock().map(|l| l.adopted).unwrap_or(false);
        let known =
            owner.as_ref().map(|o| o.known.lock().unwrap_or_else(|p| p.into_inner()).clone()).unwrap_or_default();
        let leaf_name = self.parts.leaf_name();
        let leaf = leaf_name.as_deref();
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
