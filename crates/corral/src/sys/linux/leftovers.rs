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

/// A controller lives when its pid runs and started before every member
/// (a member is its descendant); a younger process under that pid is a
/// reuse.
fn controller_alive(id: &str, members: &[procfs::Stat]) -> bool {
    let Some(ctl) = crate::leftover::controller_of(id) else { return false };
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
