//! Taking a running process tree under control: the same [`Group`] as a
//! spawned one, built around a leader corral did not start.
//!
//! What each OS can promise:
//! - **Linux (cgroup backends):** the tree is stopped (SIGSTOP, walked
//!   again until no new member appears: a stopped process cannot fork),
//!   moved into the group's cgroups, and continued; members that were
//!   already stopped stay stopped. The tree is found by ancestry, so a
//!   process that left it *before* the adoption (a double fork whose
//!   middle already exited) is not found. From then on nothing escapes.
//! - **Linux pgid backend and macOS:** weaker, and said so. A running
//!   process cannot be moved into another process group, so only a
//!   process-group leader is adopted (any other pid is refused, nothing stopped); the tree is
//!   stopped the same way, recorded by pid and start time, and continued.
//!   The process group holds its members; escapees present at the adoption
//!   are held by pid and start time, and a later one only while ancestry
//!   leads back to a held member (`sys/linux/pgid_adopt.rs`,
//!   `sys/macos/adopt.rs`).
//! - **Windows:** every process found by parent pid (a Toolhelp snapshot)
//!   is assigned to the group's job, and the walk repeats until a pass
//!   finds nobody new: a member's new children are born in the job, so the
//!   set is then closed. A parent job that forbids nesting or breakaway is
//!   said, as for a spawn. Windows tells anyone holding a handle how a
//!   process ended, so there the leader's exit code is known.
//!
//! On Unix corral is not the adopted leader's parent, so the kernel never
//! tells it the leader's exit status: the outcome says
//! [`ExitStatus::UNKNOWN`] with [`SpawnPath::Adopted`] (a timeout or a
//! limit still gives its reason).
//!
//! [`ExitStatus::UNKNOWN`]: crate::ExitStatus::UNKNOWN

use crate::monitor;
use crate::sys::{self, Start};
use crate::{Error, ErrorKind, Group, GroupBuilder, Result, SpawnPath};
use std::collections::{BTreeMap, BTreeSet};

impl GroupBuilder {
    /// Takes the running process `pid` and all its descendants into a new
    /// group with this builder's limits, timeout and stop policy. The
    /// group then behaves as a spawned one, except that the leader's exit
    /// status is unknown ([`crate::ExitStatus::UNKNOWN`]) and it has no
    /// pipes.
    ///
    /// Refused, with nothing changed: a pid that does not exist, one this
    /// user may not signal, one that corral already holds, this process or
    /// one of its ancestors, and on the pgid backend (macOS too) a pid
    /// that leads no process group (see the module notes).
    pub fn adopt(self, pid: u32) -> Result<Group> {
        check_not_self(pid)?;
        // Before any group exists: a refusal leaves nothing behind.
        sys::adopt_check(pid)?;
        let (spec, cfg, kill_on_drop) = self.prepare()?;
        let cfg = monitor::Config { spawn: SpawnPath::Adopted, ..cfg };
        let started = monitor::start(spec.clone(), Start::Adopt(pid), cfg)?;
        Ok(Group::from_started(spec.id, spec.limits, started, kill_on_drop))
    }
}

impl GroupBuilder {
    /// Takes back the group `id` that a previous controller (a crashed or
    /// restarted daemon) recorded with its leader `pid`, started at
    /// `start` ([`process_start_time`] when it was recorded). The leader
    /// must be that very process (a reused pid never matches its start
    /// time) and still belong to `id` (its cgroup or its tag); every
    /// member of the old group, escapees included, moves into the new one,
    /// race-free as in [`GroupBuilder::adopt`], and the old group's
    /// cgroups are removed.
    ///
    /// Call it before the process creates any other group: the first
    /// creation sweeps away stale groups, which this one would be.
    pub fn reattach(self, id: &str, pid: u32, start: u64) -> Result<Group> {
        check_not_self(pid)?;
        let (mut spec, cfg, kill_on_drop) = self.prepare()?;
        spec.reattach = true;
        let how = Start::Reattach { id: id.to_string(), pid, start };
        let started = monitor::start(spec.clone(), how, cfg)?;
        Ok(Group::from_started(spec.id, spec.limits, started, kill_on_drop))
    }
}

/// The start time of the live process `pid` in an OS-specific clock
/// (Linux: clock ticks since boot; Windows: the creation time in 100 ns
/// ticks since 1601), which with the pid names one process
/// across pid reuse; `None` when it is gone or the OS does not tell.
pub fn process_start_time(pid: u32) -> Option<u64> {
    sys::start_time(pid)
}

impl Group {
    /// [`GroupBuilder::adopt`] with default settings.
    pub fn adopt(pid: u32) -> Result<Group> {
        Group::builder().adopt(pid)
    }
}

/// The pids no OS accepts: none, and this very process (stopping it would
/// stop corral). Ancestors are checked by each OS, which knows the tree.
fn check_not_self(pid: u32) -> Result<()> {
    if pid == 0 {
        return Err(Error::new(ErrorKind::InvalidInput, "cannot adopt process 0: there is no such process")
            .hint("give the pid of a running process"));
    }
    if pid == std::process::id() {
        return Err(Error::new(ErrorKind::InvalidInput, format!("cannot adopt process {pid}: it is corral itself"))
            .hint("give the pid of another process"));
    }
    Ok(())
}

/// Every pid under `root` (itself included) in a `(pid, ppid)` table,
/// leaving out `skip` and whatever lies under it. Pure, for the tests.
pub(crate) fn descendants(root: u32, table: &[(u32, u32)], skip: &BTreeSet<u32>) -> Vec<u32> {
    let mut children: BTreeMap<u32, Vec<u32>> = BTreeMap::new();
    for &(pid, ppid) in table {
        if pid != root {
            children.entry(ppid).or_default().push(pid);
        }
    }
    let mut out = Vec::new();
    let mut todo = vec![root];
    let mut seen = BTreeSet::new();
    while let Some(p) = todo.pop() {
        if skip.contains(&p) || !seen.insert(p) {
            continue;
        }
        out.push(p);
        if let Some(c) = children.get(&p) {
            todo.extend(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn descendants_follow_ppid_and_leave_out_what_is_skipped() {
        let t = [(1, 0), (10, 1), (11, 10), (12, 10), (13, 12), (20, 1), (21, 11)];
        let mut d = descendants(10, &t, &BTreeSet::new());
        d.sort_unstable();
        assert_eq!(d, vec![10, 11, 12, 13, 21]);
        let mut d = descendants(10, &t, &BTreeSet::from([12]));
        d.sort_unstable();
        assert_eq!(d, vec![10, 11, 21], "a skipped member takes its subtree with it");
    }

    #[test]
    fn a_cycle_in_a_racy_table_ends() {
        // Read across a pid reuse, a table can claim a loop.
        let t = [(5, 6), (6, 5)];
        let mut d = descendants(5, &t, &BTreeSet::new());
        d.sort_unstable();
        assert_eq!(d, vec![5, 6]);
    }
}
