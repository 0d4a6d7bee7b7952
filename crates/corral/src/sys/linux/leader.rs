//! The group's leader once it runs: who owns its zombies, who follows its
//! forks, and how its end is learnt (reaped as our child, or seen through
//! the pidfd of an adopted process).

use super::group::{Group, Leader};
use super::reaper::{self, Owner};
use super::{fds, proc_events, procfs, unix};
use crate::ExitStatus;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::Arc;
use std::time::Duration;

impl Group {
    /// Takes charge of a leader just started, whichever path started it:
    /// the reaper learns whose it is, the event connector follows it.
    /// `since`: the clock tick before the spawn (see [`Owner::since`]).
    pub(super) fn adopt(&self, pid: u32, pidfd: Option<OwnedFd>, since: u64) {
        let owner = Arc::new(Owner { cgroup_leaf: self.parts.leaf_name(), pgid: pid, since, ..Owner::default() });
        reaper::register(pid, owner.clone());
        let _ = self.owner.set(owner);
        if let Some(c) = self.connector.lock().unwrap_or_else(|p| p.into_inner()).as_ref() {
            let t = proc_events::Tracked::new(self.wake.clone());
            if self.spec.record_events {
                t.listen();
            }
            c.track(pid, &t);
            let _ = self.tracked.set(t);
        }
        let mut l = self.leader.lock().unwrap_or_else(|p| p.into_inner());
        l.pid = pid;
        l.pidfd = pidfd;
    }

    pub(super) fn reap_leader(&self) -> Option<ExitStatus> {
        let mut l = self.leader.lock().unwrap_or_else(|p| p.into_inner());
        if l.adopted {
            return adopted_leader_ended(&mut l);
        }
        let pid = l.pid;
        let (st, ru) = unix::reap_once(pid, &mut l.status)?;
        l.spent_pidfd = l.pidfd.take();
        if let Some(o) = self.owner() {
            o.reaped.lock().unwrap_or_else(|p| p.into_inner()).add(&ru);
        }
        Some(st)
    }
}

/// Whether an adopted leader has ended, from its pidfd (`None`: not yet).
/// A leader with no pidfd (the kernel lacks pidfd_open) is watched by its
/// start time.
fn adopted_leader_ended(l: &mut Leader) -> Option<ExitStatus> {
    if l.status.is_some() {
        return None;
    }
    let ended = match &l.pidfd {
        Some(fd) => fds::poll_ready(&[(fd.as_raw_fd(), false)], Some(Duration::ZERO)).map(|r| r[0]).unwrap_or(false),
        None => procfs::stat(l.pid).is_none_or(|s| s.is_zombie()),
    };
    if !ended {
        return None;
    }
    l.pidfd = None;
    // A process that owns its children (a daemon re-executed in place is
    // still its services' parent) reaps the leader and learns its status;
    // a library caller's own children keep theirs.
    let reaped = if reaper::reaping_all() { unix::try_reap(l.pid).ok().flatten() } else { None };
    l.status = Some(reaped.map_or(ExitStatus::UNKNOWN, |(st, _)| st));
    l.status
}
