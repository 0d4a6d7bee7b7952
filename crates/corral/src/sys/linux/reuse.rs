//! A group on a pooled leaf (see `leaf_pool.rs`): what it resets when it
//! takes one, and how it hands its own back at the end.

use super::enforce::Counted;
use super::group::Group;
use super::leaf_pool::{self, Pooled};
use super::parts::Holder;
use crate::Limits;
use std::fs;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::atomic::Ordering;

/// A v1 memory cgroup's peak file (`memory.max_usage_in_bytes`), kept
/// open with a pooled leaf: each reuse resets it with one write, where
/// opening it by path cost more than the write (the reset is on the
/// spawn's path). The swap peak (`memory.memsw.max_usage_in_bytes`) is
/// left alone: corral never reads it, and its reset was a second write on
/// every spawn.
pub(super) struct Peaks {
    usage: fs::File,
}

impl Peaks {
    fn open(dir: &Path) -> io::Result<Peaks> {
        Ok(Peaks { usage: fs::OpenOptions::new().write(true).open(dir.join("memory.max_usage_in_bytes"))? })
    }

    /// The peak restarts from what is charged now.
    fn reset(&self) -> io::Result<()> {
        self.usage.write_at(b"0", 0).map(drop)
    }
}

impl Group {
    /// Before `configure`: undoes the limits the previous group left that
    /// this one does not set (the same shape keeps the same controllers,
    /// but v1 memory and cgroup1's pids are there with or without a
    /// limit), resets the peak, and starts the counters the kernel cannot
    /// reset from what they read now (or, for the OOM-kill and
    /// process-limit counts, from the final ones the leaf carried).
    pub(super) fn prepare_reuse(
        &mut self,
        old: &Limits,
        counts: Option<(u64, u64)>,
        peaks: Option<Peaks>,
    ) -> io::Result<()> {
        let new = &self.spec.limits;
        if let Some(v1) = self.parts.v1() {
            if let Some(d) = v1.dir("memory") {
                if old.memory.is_some() && old.memory != new.memory {
                    // memsw must stay >= the limit: raise it first.
                    let _ = fs::write(d.join("memory.memsw.limit_in_bytes"), "-1");
                    fs::write(d.join("memory.limit_in_bytes"), "-1")?;
                }
                // The peak restarts from what is charged now (the page
                // cache a previous group left, which anyone may reclaim;
                // `force_empty` would drain every CPU's lists to take it
                // back, at a cost above the mkdir this saves).
                let peaks = match peaks {
                    Some(p) => p,
                    None => Peaks::open(d)?,
                };
                peaks.reset()?;
                *self.peaks.get_mut().unwrap_or_else(|p| p.into_inner()) = Some(peaks);
            }
            if let Some(d) = v1.dir("pids") {
                if old.max_procs.is_some() && new.max_procs.is_none() {
                    fs::write(d.join("pids.max"), "max")?;
                }
            }
        }
        self.cpu_base = match self.parts.holder() {
            Holder::Leaf(v2) => v2.cpu(),
            Holder::V1(v1) => v1.cpu(),
            Holder::Pgid => None,
        }
        .unwrap_or_default();
        // The CPU time is read, not carried: a dying member is charged for
        // the last microseconds it runs after it left the leaf's count.
        // Only the counters this group follows (`Counted`) are read.
        let (ooms, hits) = counts.unwrap_or_else(|| {
            let (counted, c) = (Counted::of(new), self.parts.controls());
            let ooms = if counted.oom_kills { c.oom_kills() } else { 0 };
            let hits = if counted.pids_max_hits { c.pids_max_hits() } else { 0 };
            (ooms, hits)
        });
        self.seen_oom.store(ooms, Ordering::Relaxed);
        self.seen_pids_max.store(hits, Ordering::Relaxed);
        Ok(())
    }

    /// At the end, once nothing is left: the directories go back to the
    /// pool when the group may share them and the kernel says they are
    /// empty; else (or when the pool is full) they are removed.
    pub(super) fn release(&self) {
        let killed = self.leaf_killed.load(Ordering::Relaxed);
        // Called by teardown only, so the `cgroup.events` fd is its to read.
        let empty = || self.populated_now().map_or_else(|| self.parts.is_provably_empty(), |p| !p);
        let Some(shape) = self.shape.clone().filter(|_| !killed && empty()) else {
            self.parts.remove();
            return;
        };
        // Waits for whatever acts on the directories now (a late kill).
        let mut released = self.released.write().unwrap_or_else(|p| p.into_inner());
        let counts = self
            .counts_final
            .load(Ordering::Relaxed)
            .then(|| (self.seen_oom.load(Ordering::Relaxed), self.seen_pids_max.load(Ordering::Relaxed)));
        let joins = self.joins.lock().unwrap_or_else(|p| p.into_inner()).take();
        let kill = self.kill_file.lock().unwrap_or_else(|p| p.into_inner()).take();
        // `watched[0]` is the leaf's `cgroup.events` (see `configure`).
        let events = self.parts.v2().and(self.watched.first()).map(|w| w.share());
        let peaks = self.peaks.lock().unwrap_or_else(|p| p.into_inner()).take();
        let leaf = Pooled {
            shape,
            parts: self.parts.detached(),
            limits: self.live_limits(),
            counts,
            joins,
            kill,
            events,
            peaks,
            wake: Some(self.wake.clone()),
        };
        match leaf_pool::give(leaf) {
            None => *released = true,
            Some(surplus) => surplus.parts.remove(),
        }
    }
}
