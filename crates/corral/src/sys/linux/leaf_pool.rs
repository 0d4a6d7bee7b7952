//! Empty cgroup leaves kept for the next group, so that a group start
//! costs no mkdir and a group end no rmdir.
//!
//! On a hybrid host a group is a v2 leaf plus a v1 directory per
//! controller; creating them (and their limit writes) and removing them
//! (the kernel takes each css offline) cost more than the spawn itself. A
//! finished group whose directories are provably empty hands them here;
//! the next group of the same shape (same backend, same controllers)
//! takes them, has the limits the previous one left reset or rewritten,
//! and starts its counters from what they read at that moment: the
//! kernel's cumulative counters (`cpu.stat`, `memory.events`,
//! `pids.events`, v1 `oom_kill`) cannot be reset, so they are subtracted;
//! the peak (v1 `max_usage_in_bytes`) is reset.
//!
//! Traps:
//! - A pooled leaf keeps the name of the group that made it
//!   (`<pid>-<seq>`): the stale sweep of the next corral process still
//!   reaps it if this one dies, and members are found by the leaf's name.
//!   It cannot take the new group's name: cgroup2 refuses rename(2)
//!   (EPERM). So `leftovers::group_of` takes a leaf named after any group
//!   of the same controller as the group's own.
//! - A group whose leaf went back to the pool must not touch it again (a
//!   late `kill()` would hit the next group): see `Group::released`.
//! - A v2 leaf once written `cgroup.kill` is never reused: the kernel
//!   counts kills per cgroup (`kill_seq`) and, on this project's test
//!   hosts (Linux 6.18), SIGKILLs every later `clone3(CLONE_INTO_CGROUP)`
//!   child of that cgroup at birth: a leader started in it died before it
//!   ran. v1's freezer kill leaves nothing behind, so cgroup1 leaves are
//!   reused after a kill too.
//! - v2 `memory.peak` cannot be reset before Linux 6.12 (and then only per
//!   open file), so a cgroup2 group with controllers is never pooled.
//! - At exit every pooled leaf is removed, before corral's roots.

use super::fds::Watched;
use super::group::WakeFd;
use super::hierarchy::Layout;
use super::join_fds::JoinFds;
use super::parts::{needed_v1, v2_controllers, Parts};
use super::reuse::Peaks;
use crate::sys::Spec;
use crate::{BackendKind, Limits};
use std::sync::{Arc, Mutex};

/// Leaves kept at most, all shapes together; a surplus leaf is removed
/// at once, as without a pool.
pub(super) const MAX_POOLED: usize = 8;

/// What makes two groups' directories interchangeable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Shape {
    kind: BackendKind,
    v2: Vec<&'static str>,
    v1: Vec<&'static str>,
}

/// One empty leaf and the limits it was left with.
pub(super) struct Pooled {
    pub shape: Shape,
    pub parts: Parts,
    pub limits: Limits,
    /// The OOM-kill and process-limit counts, when they were read after
    /// the leaf was empty (then they cannot change: no member is left to
    /// be killed or to fork); else the next group reads them itself.
    pub counts: Option<(u64, u64)>,
    /// Its fds for the next `clone3` leader, once a spawn opened them.
    pub joins: Option<JoinFds>,
    /// Its `cgroup.kill`, open for writing.
    pub kill: Option<std::fs::File>,
    /// Its `cgroup.events`, open: the next group polls it without an open.
    pub events: Option<Watched>,
    /// Its v1 peak files, open for the next group's reset.
    pub peaks: Option<Peaks>,
    /// Its wake eventfd: making one was a fifth of a group's creation.
    /// The handle of the group that had it may still signal it (a request
    /// after the end): the next group drains it first, and a signal later
    /// still only costs that group one look.
    pub wake: Option<Arc<WakeFd>>,
}

static POOL: Mutex<Vec<Pooled>> = Mutex::new(Vec::new());

/// The shape of `spec`'s group, when its directories may be reused: a
/// plain group (no re-attach, no leader meant to outlive corral, no
/// isolation, no I/O throttles or notify-only limits, whose files are
/// not all reset here) on a backend whose peak memory can be reset.
pub(super) fn shape(kind: BackendKind, spec: &Spec, l: &Layout) -> Option<Shape> {
    let plain = enabled()
        && !spec.reattach
        && !spec.outlive
        && spec.isolation.is_empty()
        && spec.limits.io.is_empty()
        && spec.limits.notify.is_empty();
    let s = Shape { kind, v2: v2_controllers(kind, spec, l), v1: needed_v1(kind, spec) };
    reusable(plain, &s).then_some(s)
}

/// `CORRAL_LEAF_POOL=off` turns reuse off (to measure it, or to rule it
/// out); read once.
fn enabled() -> bool {
    static ON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ON.get_or_init(|| std::env::var("CORRAL_LEAF_POOL").map_or(true, |v| v != "off"))
}

/// Pure part of [`shape`].
fn reusable(plain: bool, s: &Shape) -> bool {
    plain
        && match s.kind {
            BackendKind::Hybrid | BackendKind::CgroupV1 => true,
            BackendKind::CgroupV2 => s.v2.is_empty(),
            _ => false,
        }
}

/// A pooled leaf of `shape`, if one is kept.
pub(super) fn take(shape: &Shape) -> Option<Pooled> {
    let mut pool = POOL.lock().unwrap_or_else(|p| p.into_inner());
    let i = pool.iter().position(|p| p.shape == *shape)?;
    Some(pool.swap_remove(i))
}

/// Keeps an empty leaf for the next group; gives it back when the pool is
/// full (the caller removes that surplus).
#[must_use]
pub(super) fn give(leaf: Pooled) -> Option<Pooled> {
    let mut pool = POOL.lock().unwrap_or_else(|p| p.into_inner());
    if pool.len() >= MAX_POOLED {
        return Some(leaf);
    }
    pool.push(leaf);
    None
}

/// Removes every pooled leaf (at exit).
pub(super) fn remove_all() {
    let leaves = std::mem::take(&mut *POOL.lock().unwrap_or_else(|p| p.into_inner()));
    for l in leaves {
        l.parts.remove();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape(kind: BackendKind, v2: &[&'static str]) -> Shape {
        Shape { kind, v2: v2.to_vec(), v1: vec![] }
    }

    #[test]
    fn only_plain_groups_whose_peak_can_be_reset_are_pooled() {
        assert!(reusable(true, &shape(BackendKind::Hybrid, &[])));
        assert!(reusable(true, &shape(BackendKind::CgroupV1, &[])));
        assert!(reusable(true, &shape(BackendKind::CgroupV2, &[])), "membership only: nothing to reset");
        assert!(!reusable(true, &shape(BackendKind::CgroupV2, &["memory"])), "memory.peak cannot be reset");
        assert!(!reusable(true, &shape(BackendKind::Pgid, &[])), "no directory");
        assert!(!reusable(false, &shape(BackendKind::Hybrid, &[])));
    }
}
