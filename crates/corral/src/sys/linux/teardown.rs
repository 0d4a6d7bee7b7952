//! The end of a group: kill until empty, reap every zombie, count what is
//! left (never assumed), and remove the directories only when nothing is.
//!
//! Empty is not gone: a member leaves its cgroup before its orphans are
//! re-parented to us, and zombies hold pids until reaped.
//!
//! Most groups are already empty and reaped when they end (the leader
//! exited last): one look settles them, cheaply enough for the event loop
//! to do it itself ([`Group::tear_down_if_settled`]) instead of starting a
//! thread that would only find nothing to wait for.

use super::group::Group;
use super::reaper::{self, Owner};
use crate::sys::SysGroup;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What one look at an ended group found.
enum Look {
    /// These are left (alive, or zombies not reaped yet); none: it is gone.
    Left(Vec<u32>),
    /// The event reader has not read every exit yet: look again soon.
    Unsettled,
}

impl Group {
    /// [`crate::sys::SysGroup::teardown`].
    pub(super) fn tear_down(&self, deadline: Instant) -> usize {
        if self.pgid() == 0 {
            // Nothing ever ran (the spawn or the adoption failed). On the
            // pgid backend process group 0 would mean this process's own:
            // a failed spawn used to stop and kill its caller's group.
            self.parts.remove();
            return 0;
        }
        let owner = self.owner().cloned();
        let settle_by = Instant::now() + Duration::from_millis(500);
        let remaining = loop {
            let left = match self.look(&owner) {
                Look::Unsettled if Instant::now() < settle_by => {
                    std::thread::sleep(Duration::from_micros(100));
                    continue;
                }
                // Past `settle_by`, counted the slow way (see `look`).
                Look::Unsettled => self.left_in_proc(&owner, None),
                Look::Left(left) => left,
            };
            if left.is_empty() {
                break left;
            }
            if Instant::now() >= deadline {
                break left;
            }
            std::thread::sleep(Duration::from_micros(500));
        };
        self.conclude(&owner, remaining.len())
    }

    /// [`crate::sys::SysGroup::teardown_if_settled`]: one look, and the
    /// end of the group if it found nothing left; `None` (nothing changed
    /// but reaping and a kill of what still ran) when teardown must wait.
    pub(super) fn tear_down_if_settled(&self) -> Option<usize> {
        if self.pgid() == 0 {
            return Some(self.tear_down(Instant::now()));
        }
        let owner = self.owner().cloned();
        match self.look(&owner) {
            Look::Left(left) if left.is_empty() => Some(self.conclude(&owner, 0)),
            _ => None,
        }
    }

    /// Reaps what can be reaped, kills what still runs, and says what is
    /// left.
    fn look(&self, owner: &Option<Arc<Owner>>) -> Look {
        self.reap_leader();
        // One `waitid` for two questions: with no child at all there is
        // no zombie to reap, and nothing of the group left (see
        // `left_in_proc`).
        let mut childless = !reaper::has_children();
        if !childless {
            let swept = owner.as_ref().map_or(0, |o| reaper::sweep(Some(o)));
            reaper::sweep_unattributed_if_reaping_all();
            if swept > 0 {
                // What it reaped may have been the last child.
                childless = !reaper::has_children();
            }
        }
        // The event loop no longer polls the group: its `cgroup.events` fd
        // is ours to read, one call where listing members takes four.
        let live = match self.populated_now() {
            Some(false) => Vec::new(),
            _ => self.members_cheap().unwrap_or_default(),
        };
        if !live.is_empty() {
            let _ = self.kill();
            return Look::Left(live);
        }
        // Empty is not gone: a member leaves its cgroup before its
        // orphans are re-parented to us, and zombies hold pids until
        // reaped. Look for anything of ours still in /proc: the members
        // the event connector saw exit, once it has seen every member
        // exit; else a scan of all of /proc.
        match self.tracked.get() {
            Some(t) if t.settled() => {
                // Members by lineage: recorded, so that the next sweep
                // claims their zombies (a v1 zombie names no cgroup, an
                // escapee left the process group).
                let left = t.unreaped();
                self.note_known(&left);
                Look::Left(left.into_iter().map(|(pid, _)| pid).collect())
            }
            Some(t) if !t.lost() => Look::Unsettled,
            _ => Look::Left(self.left_in_proc(owner, Some(childless))),
        }
    }

    /// What is left of an empty group, read from `/proc`.
    /// `childless`: whether this process has any child, as a look just
    /// found after its sweep (`None`: not asked yet).
    fn left_in_proc(&self, owner: &Option<Arc<Owner>>, childless: Option<bool>) -> Vec<u32> {
        if !self.parts.in_cgroup() {
            return self.remaining(owner);
        }
        // A cgroup lists its members: once it is empty, what is left are
        // this process's children not reaped yet. Every process of the
        // group descends from its leader, our child, through parents that
        // are members or are gone (then their orphans came to this
        // subreaper): with no child at all, nothing of it can be left. An
        // adopted leader is not our child, so that shortcut is not its.
        let (adopted, reaped) = self.leader.lock().map(|l| (l.adopted, l.status.is_some())).unwrap_or((true, false));
        if !adopted && childless.unwrap_or_else(|| !reaper::has_children()) {
            return Vec::new();
        }
        // With the leader reaped, the rest can only be orphans that came
        // to this subreaper. A leader not reaped here (still exiting, or
        // reaped by someone else's `waitpid(-1)`) is looked for among the
        // children of every thread, as an adopted leader's members are.
        owner.as_deref().map(|o| reaper::unreaped_children(o, !adopted && reaped)).unwrap_or_default()
    }

    /// Records the usage, hands the directories back (or removes them)
    /// when nothing is left, and lets go of what the group held.
    fn conclude(&self, owner: &Option<Arc<Owner>>, leftover: usize) -> usize {
        let usage = if leftover == 0 { self.usage_of(Vec::new()) } else { self.live_usage() };
        *self.final_usage.lock().unwrap_or_else(|p| p.into_inner()) = Some(usage);
        if leftover == 0 {
            self.release();
        }
        if let Some(o) = owner {
            let pid = self.leader.lock().map(|l| l.pid).unwrap_or(0);
            reaper::unregister(pid, o);
        }
        drop(self.connector.lock().unwrap_or_else(|p| p.into_inner()).take());
        leftover
    }
}
