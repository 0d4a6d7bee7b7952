//! Orphaned groups found by their environment tag in `/proc`.

use super::procfs;
use crate::sys::unix;
use std::collections::BTreeMap;
use std::io;
use std::time::{Duration, Instant};

const TAG: &[u8] = b"CORRAL_GROUP=";

/// Live processes by the group id they carry.
fn tagged() -> io::Result<BTreeMap<String, Vec<procfs::Stat>>> {
    let me = std::process::id();
    let mut by_id: BTreeMap<String, Vec<procfs::Stat>> = BTreeMap::new();
    for pid in procfs::all_pids()? {
        if pid == me {
            continue;
        }
        let Some(st) = procfs::stat(pid).filter(|s| !s.is_zombie()) else { continue };
        if let Some(id) = procfs::environ_value(pid, TAG) {
            by_id.entry(String::from_utf8_lossy(&id).into_owned()).or_default().push(st);
        }
    }
    Ok(by_id)
}

/// The group `pid` belongs to, by its tag, with every live member: those
/// that carry the same tag, and those in the same cgroup when that is the
/// group's own (an escapee that cleared its environment stays in it).
pub(crate) fn group_of(pid: u32) -> io::Result<Option<(String, Vec<u32>)>> {
    let Some(id) = procfs::environ_value(pid, TAG) else { return Ok(None) };
    let mut tag = TAG.to_vec();
    tag.extend_from_slice(&id);
    let id = String::from_utf8_lossy(&id).into_owned();
    // The process's leaf is its group's when named after it, or after an
    // earlier group of the same controller: a leaf reused from the pool
    // (`leaf_pool.rs`) keeps its first group's name, since cgroup2 refuses
    // to rename a cgroup.
    let own_cgroup = procfs::cgroup_v2_path(pid).filter(|p| {
        let leaf = p.rsplit('/').next().unwrap_or("");
        leaf == id || controller_of(leaf).is_some_and(|c| Some(c) == controller_of(&id))
    });
    let me = std::process::id();
    let mut members = Vec::new();
    for p in procfs::all_pids()? {
        if p == me || procfs::stat(p).is_none_or(|s| s.is_zombie()) {
            continue;
        }
        if procfs::environ_has(p, &tag) || own_cgroup.is_some() && procfs::cgroup_v2_path(p) == own_cgroup {
            members.push(p);
        }
    }
    Ok(Some((id, members)))
}

/// The controller's pid in a group id (`<controller pid>-<seq>`).
fn controller_of(id: &str) -> Option<u32> {
    id.split_once('-')?.0.parse().ok()
}

/// A controller lives when its pid runs and started before every member
/// (a member is its descendant); a younger process under that pid is a
/// reuse.
fn controller_alive(id: &str, members: &[procfs::Stat]) -> bool {
    let Some(ctl) = controller_of(id) else { return false };
    // This process too: a daemon restarted under the same pid (a pid
    // namespace) is younger than what its previous run left.
    let first = members.iter().map(|m| m.starttime).min().unwrap_or(u64::MAX);
    procfs::stat(ctl).is_some_and(|c| !c.is_zombie() && c.starttime <= first)
}

pub(crate) fn orphaned_groups() -> io::Result<Vec<(String, Vec<u32>)>> {
    Ok(tagged()?
        .into_iter()
        .filter(|(id, m)| !controller_alive(id, m))
        .map(|(id, m)| (id, m.iter().map(|s| s.pid).collect()))
        .collect())
}

/// Stop-then-kill rounds over the tagged members until a scan finds none
/// (bounded); a stopped process cannot fork. Refuses a group whose
/// controller lives: it is that controller's to stop.
pub(crate) fn reap_group(id: &str, _leader: u32) -> io::Result<usize> {
    let mut tag = TAG.to_vec();
    tag.extend_from_slice(id.as_bytes());
    let mut killed = std::collections::BTreeSet::new();
    let end = Instant::now() + Duration::from_secs(5);
    loop {
        let found: Vec<procfs::Stat> = procfs::all_pids()?
            .into_iter()
            .filter(|&p| p != std::process::id() && procfs::environ_has(p, &tag))
            .filter_map(|p| procfs::stat(p).filter(|s| !s.is_zombie()))
            .collect();
        if found.is_empty() || Instant::now() > end {
            remove_dirs(id);
            return Ok(killed.len());
        }
        if controller_alive(id, &found) {
            return Err(io::Error::new(io::ErrorKind::ResourceBusy, "its controller is still running"));
        }
        for s in &found {
            let _ = unix::kill(s.pid, libc::SIGSTOP);
        }
        for s in &found {
            if unix::kill(s.pid, libc::SIGKILL).is_ok() {
                killed.insert(s.pid);
            }
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Removes the group's cgroup directories once they are empty (a group
/// meant to outlive its controller is spared by every stale sweep, so the
/// reap is where they go).
fn remove_dirs(id: &str) {
    if id.is_empty() || id.contains('/') || id.starts_with('.') {
        return;
    }
    let l = super::layout();
    for root in l.v2_root.iter().chain(l.v1_roots.iter().map(|(_, r)| r)) {
        let dir = root.join(id);
        let end = Instant::now() + Duration::from_secs(2);
        while dir.exists() && std::fs::remove_dir(&dir).is_err() && Instant::now() < end {
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_controller_is_the_first_part_of_the_id() {
        assert_eq!(controller_of("1234-7"), Some(1234));
        assert_eq!(controller_of("junk"), None);
        assert_eq!(controller_of("x-1"), None);
    }

    #[test]
    fn a_controller_younger_than_the_members_is_a_reused_pid() {
        let me = procfs::stat(std::process::id()).unwrap();
        let id = format!("{}-1", me.pid);
        let started_after = procfs::Stat { starttime: me.starttime + 1, ..me };
        let started_before = procfs::Stat { starttime: me.starttime.saturating_sub(1), ..me };
        assert!(controller_alive(&id, &[started_after]));
        assert!(!controller_alive(&id, &[started_before]), "a member that started before its controller");
        assert!(!controller_alive("4194305-1", &[started_after]), "a pid above pid_max runs nothing");
    }
}
