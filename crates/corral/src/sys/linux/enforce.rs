//! The group's limits at creation, and their hits: written to and read
//! from the group's [`Controls`] (v2 or v1 controllers), or sampled from
//! `/proc` on the pgid backend.

use super::fds::Watched;
use super::group::Group;
use super::parts::{Controls, Holder};
use super::procfs;
use crate::sys::Change;
use crate::LimitKind;
use std::io;
use std::sync::atomic::Ordering;

impl Group {
    /// Applies the limits and arms the notifications. `held`: the limits
    /// a reused leaf was left with (see `reuse.rs`), whose v1 values are
    /// not written again when they are the same.
    /// Sets the limits; `events` is a reused leaf's `cgroup.events`, still
    /// open.
    pub(super) fn configure(&mut self, held: Option<&crate::Limits>, events: Option<Watched>) -> io::Result<()> {
        let lim = self.spec.limits.clone();
        let hard_memory = lim.memory.filter(|_| !lim.notifies(LimitKind::Memory));
        let mut watched = Vec::new();
        if let Holder::Leaf(v2) = self.parts.holder() {
            // First: `populated_now` reads it as `watched[0]`.
            // A reused one is not re-read here: what changed since the last
            // group read it is not news, and no one polls it before the
            // look at the leader's exit reads it (`poll_set`).
            watched.push(match events {
                Some(w) => w,
                None => Watched::open(&v2.file("cgroup.events"))?,
            });
            // Missing before Linux 5.14: the kill then signals each member.
            let kill = self.kill_file.get_mut().unwrap_or_else(|p| p.into_inner());
            if kill.is_none() {
                *kill = std::fs::OpenOptions::new().write(true).open(v2.file("cgroup.kill")).ok();
            }
        }
        if let Controls::V2(v2) = self.parts.controls() {
            if let Some(m) = hard_memory {
                v2.set_memory_max(m)?;
                watched.push(Watched::open(&v2.file("memory.events"))?);
            }
            if let Some(n) = lim.max_procs {
                v2.set_pids_max(n)?;
                watched.push(Watched::open(&v2.file("pids.events"))?);
            }
            if let Some(c) = lim.cpus {
                v2.set_cpu_max(c)?;
            }
        }
        if let Some(m) = lim.memory.filter(|_| lim.notifies(LimitKind::Memory)) {
            self.configure_notify_memory(m)?;
            if let Controls::V2(v2) = self.parts.controls() {
                watched.push(Watched::open(&v2.file("memory.events"))?);
            }
        }
        if let Some(v1) = self.parts.v1_mut() {
            let kept = |same: &dyn Fn(&crate::Limits) -> bool| held.is_some_and(same);
            if let Some(m) = hard_memory {
                // The OOM eventfd came with the leaf: its registration holds.
                if !(v1.oom_event.is_some() && kept(&|h| h.memory == Some(m) && !h.notifies(LimitKind::Memory))) {
                    v1.set_memory(m)?;
                }
            }
            if let Some(n) = lim.max_procs.filter(|n| !kept(&|h| h.max_procs == Some(*n))) {
                // v1 `pids.events` is not signalled: it is sampled instead
                // (see `wait`).
                v1.set_pids_max(n)?;
            }
            if let Some(c) = lim.cpus.filter(|c| !kept(&|h| h.cpus == Some(*c))) {
                v1.set_cpus(c)?;
            }
        }
        self.watched = watched;
        Ok(())
    }

    /// Kills for a limit (and process-limit notices) the kernel counted
    /// since the last look. `empty`: the group was found empty before
    /// this look, so the counts it reads are final (`counts_final`).
    pub(super) fn limit_changes(&self, empty: bool) -> Vec<Change> {
        let live = self.live_limits();
        let mut out = self.limit_notices(&live);
        let counted = Counted::of(&live);
        let controls = self.parts.controls();
        if counted.oom_kills {
            let ooms = controls.oom_kills();
            if ooms > self.seen_oom.swap(ooms, Ordering::Relaxed) {
                out.push(Change::Limit(LimitKind::Memory));
            }
        }
        if counted.pids_max_hits {
            let hits = controls.pids_max_hits();
            if hits > self.seen_pids_max.swap(hits, Ordering::Relaxed) {
                out.push(match live.notifies(LimitKind::Processes) {
                    true => Change::LimitNotice(LimitKind::Processes),
                    false => Change::Limit(LimitKind::Processes),
                });
            }
        }
        if empty && counted.all() {
            self.counts_final.store(true, Ordering::Relaxed);
        }
        out
    }

    /// The pgid backend's sampled limits.
    pub(super) fn sampled_limits(&self) -> Vec<Change> {
        let l = &self.live_limits();
        if !matches!(self.parts.holder(), Holder::Pgid) || (l.memory.is_none() && l.max_procs.is_none()) {
            return vec![];
        }
        let Ok(m) = self.pgid_members() else { return vec![] };
        let mut out = Vec::new();
        if let Some(max) = l.max_procs {
            if m.len() > max as usize {
                out.push(Change::Limit(LimitKind::Processes));
            }
        }
        if let Some(mem) = l.memory {
            let rss: u64 = m.iter().filter_map(|p| procfs::rss_bytes(*p)).sum();
            if rss > mem {
                out.push(Change::Limit(LimitKind::Memory));
            }
        }
        out
    }
}

/// Which of the kernel's cumulative counters a group with these limits
/// follows: the OOM kills when memory is a hard limit (what says a kill
/// was the limit's), the refused forks when processes are limited. The
/// others are never read: each is a file read at every look, the group's
/// end included, for a count nothing reports. A limit set on a running
/// group takes its counter's value then as the base (`change_limits`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Counted {
    pub oom_kills: bool,
    pub pids_max_hits: bool,
}

impl Counted {
    pub(super) fn of(l: &crate::Limits) -> Counted {
        Counted {
            oom_kills: l.memory.is_some() && !l.notifies(LimitKind::Memory),
            pids_max_hits: l.max_procs.is_some(),
        }
    }

    /// Both: the counts a look read are then the kernel's, final once
    /// the group is empty, and a pooled leaf may carry them.
    pub(super) fn all(self) -> bool {
        self.oom_kills && self.pids_max_hits
    }
}

#[cfg(test)]
mod tests {
    use super::Counted;
    use crate::{LimitKind, Limits};

    #[test]
    fn only_the_counters_a_limit_reports_through_are_followed() {
        let none = Counted::of(&Limits::new());
        assert!(!none.oom_kills && !none.pids_max_hits, "no limit: nothing to read at each look");
        let both = Counted::of(&Limits::new().memory(1 << 30).max_procs(8));
        assert!(both.all());
        let notified = Counted::of(&Limits::new().memory(1 << 30).notify_on(LimitKind::Memory));
        assert!(!notified.oom_kills, "a notify-only memory limit kills nothing: memory.high is what tells");
        let procs = Counted::of(&Limits::new().max_procs(8).notify_on(LimitKind::Processes));
        assert!(procs.pids_max_hits && !procs.all(), "refused forks are news even when they only notify");
    }
}
