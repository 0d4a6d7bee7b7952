//! The end of a group: kill until empty, reap every zombie, count what is
//! left (never assumed), and remove the directories only when nothing is.
//!
//! Empty is not gone: a member leaves its cgroup before its orphans are
//! re-parented to us, and zombies hold pids until reaped.

use super::group::Group;
use super::reaper;
use crate::sys::SysGroup;
use std::time::{Duration, Instant};

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
        let mut remaining: Vec<u32>;
        let settle_by = Instant::now() + Duration::from_millis(500);
        loop {
            if let Some(o) = &owner {
                reaper::sweep(Some(o));
            }
            reaper::sweep_unattributed_if_reaping_all();
            self.reap_leader();
            let live = self.members_cheap().unwrap_or_default();
            if !live.is_empty() {
                let _ = self.kill();
                remaining = live;
            } else {
                // Empty is not gone: a member leaves its cgroup before its
                // orphans are re-parented to us, and zombies hold pids
                // until reaped. Look for anything of ours still in /proc:
                // the members the event connector saw exit, once it has
                // seen every member exit; else a scan of all of /proc.
                let tracked = self.tracked.get();
                if tracked.is_some_and(|t| !t.settled() && !t.lost()) && Instant::now() < settle_by {
                    // The event reader has not read every exit yet.
                    std::thread::sleep(Duration::from_micros(100));
                    continue;
                }
                remaining = match tracked {
                    Some(t) if t.settled() => t.unreaped(),
                    // A cgroup lists its members: once it is empty, what is
                    // left are this process's children not reaped yet.
                    _ if self.parts.in_cgroup() => owner.as_deref().map(reaper::unreaped_children).unwrap_or_default(),
                    _ => self.remaining(&owner),
                };
                if remaining.is_empty() {
                    break;
                }
            }
            if Instant::now() >= deadline {
                break;
            }
            std::thread::sleep(Duration::from_micros(500));
        }
        let usage = self.live_usage();
        *self.final_usage.lock().unwrap_or_else(|p| p.into_inner()) = Some(usage);
        let leftover = remaining.len();
        if leftover == 0 {
            self.release();
        }
        if let Some(o) = &owner {
            let pid = self.leader.lock().map(|l| l.pid).unwrap_or(0);
            reaper::unregister(pid, o);
        }
        drop(self.connector.lock().unwrap_or_else(|p| p.into_inner()).take());
        leftover
    }
}
