//! What the event loop watches for one group, and what it learns once
//! something is ready.

use super::group::Group;
use super::parts::Holder;
use crate::sys::Change;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::Ordering;

impl Group {
    /// The fds whose readiness is news (with `true` for the cgroup files
    /// signalled by POLLPRI), and whether the group must be looked at
    /// every `SAMPLE` anyway, for what the kernel cannot notify.
    pub(super) fn poll_set(&self) -> (Vec<(RawFd, bool)>, bool) {
        let (pidfd, leader_done) = {
            let l = self.leader.lock().unwrap_or_else(|p| p.into_inner());
            (l.pidfd.as_ref().map(|f| f.as_raw_fd()), l.status.is_some())
        };
        let mut fds = vec![(self.wake.raw(), false)];
        if let Some(p) = pidfd {
            fds.push((p, false));
        }
        // The leaf's `cgroup.events` (`watched[0]`) tells that the group
        // emptied; while the leader lives it cannot be empty, and the
        // leader's exit is the pidfd's news. Left out until then: the
        // kernel tells the leaf's filling at the spawn late (a timer holds
        // a file's notifications 10 ms apart), and a poll that woke for
        // it looked at the whole group for nothing, on one spawn in five.
        let skip_events = pidfd.is_some() && !leader_done && matches!(self.parts.holder(), Holder::Leaf(_));
        fds.extend(self.watched.iter().skip(usize::from(skip_events)).map(|w| (w.raw(), true)));
        let v1 = self.parts.v1();
        if let Some(e) = v1.and_then(|v| v.oom_event.as_ref()) {
            fds.push((e.raw(), false));
        }
        // Sample what the kernel cannot notify.
        let lim = &self.live_limits();
        let sampled = (matches!(self.parts.holder(), Holder::Pgid)
            && (lim.memory.is_some() || lim.max_procs.is_some()))
            || (v1.is_some_and(|v| v.has("pids")) && lim.max_procs.is_some())
            || !lim.notify.is_empty();
        let must_sample =
            sampled || (leader_done && !self.has_empty_notification()) || (pidfd.is_none() && !leader_done);
        (fds, must_sample)
    }

    /// What changed, once `poll` reported `ready` for `fds`; re-arms the
    /// notifications it consumed. Never blocks.
    pub(super) fn collect(&self, fds: &[(RawFd, bool)], ready: &[bool], must_sample: bool) -> Vec<Change> {
        let was_ready = |fd: RawFd| fds.iter().position(|(f, _)| *f == fd).and_then(|i| ready.get(i).copied());
        // The eventfds are drained only when `poll` said they were ready
        // (or were not polled): a read that finds nothing is a system call
        // for nothing, two on every leader's exit.
        if was_ready(self.wake.raw()).unwrap_or(true) {
            self.wake.clear();
        }
        for w in &self.watched {
            if was_ready(w.raw()).unwrap_or(false) {
                w.rearm();
            }
        }
        if let Some(e) = self.parts.v1().and_then(|v| v.oom_event.as_ref()) {
            if was_ready(e.raw()).unwrap_or(true) {
                e.drain();
            }
        }
        let mut out = Vec::new();
        if let Some(st) = self.reap_leader() {
            out.push(Change::LeaderExited(st));
        }
        // Emptiness first: counters read after the group was empty are
        // final (no member is left to be OOM-killed or to fork), and a
        // pooled leaf carries them to the next group (`leaf_pool.rs`).
        let leader_gone = self.leader.lock().map(|l| l.status.is_some()).unwrap_or(true);
        let empty = leader_gone && self.is_empty();
        if empty {
            self.seen_empty.store(true, Ordering::Relaxed);
        }
        // The kernel signals each limit hit on an fd of the poll set; what
        // it cannot signal is sampled. A look with neither (the first one
        // after the spawn, a deadline) has no counter to read. Nor has a
        // look while `cgroup.kill` is emptying the leaf (the leader's death
        // comes first): the dying tree needs the CPU, and the look that
        // finds it empty reads the final counts.
        let dying = self.leaf_killed.load(Ordering::Relaxed) && !empty;
        if !dying && (must_sample || !out.is_empty() || ready.iter().any(|r| *r)) {
            out.extend(self.limit_changes(empty));
            out.extend(self.sampled_limits());
        }
        if empty {
            out.push(Change::Empty);
        }
        out
    }
}
