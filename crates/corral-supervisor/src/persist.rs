//! What survives a daemon crash: `state_dir/state.json` lists the daemon's
//! pid and every live group. A daemon that starts finds the groups of a
//! dead predecessor and kills whatever is left of them before it starts
//! anything.
//!
//! Members are found by the `CORRAL_GROUP=<id>` variable that corral puts
//! in every group's environment, which every descendant inherits: that
//! catches setsid and double-fork escapees on every backend, and a pid
//! reused by an unrelated process never carries the tag. Cgroups that
//! outlive their controller are also removed by the library the next time
//! it creates a group.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// One live group, as recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupRecord {
    /// Service name.
    pub service: String,
    /// Instance index.
    pub instance: u32,
    /// The library's group id (`<controller pid>-<seq>`).
    pub group_id: String,
    /// The leader's pid (also its process group id).
    pub pid: u32,
    /// The backend that held it.
    pub backend: String,
    /// Its cgroup path or process group.
    pub location: String,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct StateFile {
    daemon_pid: u32,
    groups: Vec<GroupRecord>,
}

/// The state file of a running daemon.
pub(crate) struct Persist {
    path: PathBuf,
    groups: Mutex<BTreeMap<(String, u32), GroupRecord>>,
}

impl Persist {
    pub fn new(state_dir: &Path) -> Persist {
        let p = Persist { path: state_dir.join("state.json"), groups: Mutex::new(BTreeMap::new()) };
        p.write(&BTreeMap::new());
        p
    }

    pub fn set(&self, rec: GroupRecord) {
        let mut g = self.groups.lock().unwrap_or_else(|p| p.into_inner());
        g.insert((rec.service.clone(), rec.instance), rec);
        self.write(&g);
    }

    pub fn remove(&self, service: &str, instance: u32) {
        let mut g = self.groups.lock().unwrap_or_else(|p| p.into_inner());
        g.remove(&(service.to_string(), instance));
        self.write(&g);
    }

    /// Written to a temporary file and renamed, so a crash mid-write
    /// leaves the previous version, never half of one.
    fn write(&self, groups: &BTreeMap<(String, u32), GroupRecord>) {
        let state = StateFile { daemon_pid: std::process::id(), groups: groups.values().cloned().collect() };
        let tmp = self.path.with_extension("json.tmp");
        if let Ok(text) = serde_json::to_vec_pretty(&state) {
            if std::fs::write(&tmp, text).is_ok() {
                let _ = std::fs::rename(&tmp, &self.path);
            }
        }
    }
}

/// What a start found of a previous run.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Leftovers {
    /// Groups the previous daemon left recorded.
    pub groups: usize,
    /// Processes still alive in them, now killed.
    pub killed: usize,
}

/// Kills what a dead previous daemon left behind. Fails when that daemon
/// is still alive.
pub(crate) fn reap_previous(state_dir: &Path) -> Result<Leftovers, String> {
    let path = state_dir.join("state.json");
    let Ok(text) = std::fs::read(&path) else { return Ok(Leftovers::default()) };
    let Ok(state) = serde_json::from_slice::<StateFile>(&text) else { return Ok(Leftovers::default()) };
    if state.daemon_pid != std::process::id() && sys::alive_as_corral(state.daemon_pid) {
        return Err(format!(
            "another corral daemon (pid {}) is running with state in {}",
            state.daemon_pid,
            state_dir.display()
        ));
    }
    let mut out = Leftovers { groups: state.groups.len(), killed: 0 };
    for g in &state.groups {
        out.killed += sys::kill_group_members(g);
    }
    Ok(out)
}

#[cfg(target_os = "linux")]
mod sys {
    use super::GroupRecord;
    use std::time::{Duration, Instant};

    pub fn alive_as_corral(pid: u32) -> bool {
        let comm = |p: &str| std::fs::read_to_string(format!("/proc/{p}/comm")).unwrap_or_default();
        let theirs = comm(&pid.to_string());
        !theirs.is_empty() && theirs == comm("self") && !is_zombie(pid)
    }

    fn is_zombie(pid: u32) -> bool {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        stat.rsplit_once(") ").is_some_and(|(_, rest)| rest.starts_with('Z'))
    }

    /// Processes whose environment carries the group's tag.
    fn tagged(tag: &[u8]) -> Vec<u32> {
        let Ok(rd) = std::fs::read_dir("/proc") else { return vec![] };
        rd.flatten()
            .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
            .filter(|&pid| pid != std::process::id())
            .filter(|pid| {
                std::fs::read(format!("/proc/{pid}/environ"))
                    .map(|env| env.split(|&b| b == 0).any(|v| v == tag))
                    .unwrap_or(false)
            })
            .collect()
    }

    pub fn kill_group_members(g: &GroupRecord) -> usize {
        let tag = format!("CORRAL_GROUP={}", g.group_id).into_bytes();
        let mut killed = std::collections::BTreeSet::new();
        // Kill until none is left: a member may fork while we look.
        let end = Instant::now() + Duration::from_secs(5);
        loop {
            let found = tagged(&tag);
            if found.is_empty() || Instant::now() > end {
                break;
            }
            for pid in found {
                // SAFETY: kill has no memory-safety preconditions.
                unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
                killed.insert(pid);
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        killed.len()
    }
}

#[cfg(all(unix, not(target_os = "linux")))]
mod sys {
    use super::GroupRecord;

    pub fn alive_as_corral(pid: u32) -> bool {
        // SAFETY: signal 0 only checks that the process exists.
        unsafe { libc::kill(pid as libc::pid_t, 0) == 0 }
    }

    /// Without /proc, the recorded process group is what is known.
    pub fn kill_group_members(g: &GroupRecord) -> usize {
        // SAFETY: as above; the group is the leader's pid.
        let r = unsafe { libc::killpg(g.pid as libc::pid_t, libc::SIGKILL) };
        usize::from(r == 0)
    }
}

#[cfg(windows)]
mod sys {
    use super::GroupRecord;

    /// The pid runs and its command line names corral (a pid alone may
    /// have been reused by anything).
    pub fn alive_as_corral(pid: u32) -> bool {
        corral::process_table().is_ok_and(|t| t.get(pid).is_some_and(|p| p.cmdline.to_lowercase().contains("corral")))
    }

    /// Job Objects are closed with their last handle, and the daemon's
    /// jobs kill on close: nothing of a dead daemon survives it.
    pub fn kill_group_members(_g: &GroupRecord) -> usize {
        0
    }
}
