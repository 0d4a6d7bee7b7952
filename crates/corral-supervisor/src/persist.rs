//! What survives a daemon crash: `state_dir/state.json` lists the daemon's
//! pid and every live group. A daemon that starts finds the groups of a
//! dead predecessor and has the library kill whatever is left of them
//! before it starts anything.
//!
//! The file is replaced atomically (write, fsync, rename, fsync the
//! folder), so a crash leaves the previous version or the new one. Should
//! it still be unreadable (empty, corrupt, a disk that lied), the daemon
//! says so and falls back to the library's own search: every group on the
//! host whose controller is gone is found by the tag its members carry.

use crate::sys::safe_fs::PrivateDir;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Condvar, Mutex};

const NAME: &str = "state.json";

/// A state file larger than this is not one corral wrote (a record is
/// about 200 bytes; instances are bounded in the thousands).
const MAX_SIZE: u64 = 64 << 20;

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
    /// The leader's start time (`corral::process_start_time`): with the
    /// pid, it names the leader across pid reuse. Absent in files of older
    /// daemons, whose groups are then killed, not taken back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start: Option<u64>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct StateFile {
    daemon_pid: u32,
    groups: Vec<GroupRecord>,
}

/// The state file of a running daemon.
///
/// Changes are written by a thread of its own, newest first: two fsyncs
/// per write must not stall an instance task, and a burst of changes (100
/// services starting) coalesces into a few writes. The thread lives only
/// while there is something to write: an idle daemon keeps no thread (and
/// no malloc arena) for a file that changes when a service restarts. A
/// group not yet written when the daemon dies is still found: its id
/// names the dead daemon (see [`reap_previous`]).
pub(crate) struct Persist {
    shared: Arc<Shared>,
}

struct Shared {
    dir: PrivateDir,
    state: Mutex<Pending>,
    changed: Condvar,
}

#[derive(Default)]
struct Pending {
    groups: BTreeMap<(String, u32), GroupRecord>,
    /// Bumped by every change; the writer compares it with what it wrote.
    version: u64,
    /// The last version on disk.
    written: u64,
    /// A writer thread is running; it ends once `written == version`.
    writing: bool,
}

impl Persist {
    pub fn new(state_dir: &Path) -> std::io::Result<Persist> {
        let shared = Arc::new(Shared {
            dir: PrivateDir::create_or_check(state_dir)?,
            state: Mutex::new(Pending::default()),
            changed: Condvar::new(),
        });
        shared.write(&BTreeMap::new());
        Ok(Persist { shared })
    }

    pub fn set(&self, rec: GroupRecord) {
        self.change(|g| {
            g.insert((rec.service.clone(), rec.instance), rec);
            true
        });
    }

    /// Forgets a run; nothing is written when none was recorded.
    pub fn remove(&self, service: &str, instance: u32) {
        self.change(|g| g.remove(&(service.to_string(), instance)).is_some());
    }

    /// Waits (at most `limit`) until every change so far is on disk; false
    /// if it was not by then.
    #[cfg_attr(target_os = "macos", allow(dead_code))] // for a re-exec, Linux and Windows
    pub fn flush(&self, limit: std::time::Duration) -> bool {
        let end = corral::deadline::after(std::time::Instant::now(), limit);
        let mut p = self.shared.state.lock().unwrap_or_else(|p| p.into_inner());
        let want = p.version;
        while p.written < want {
            let now = std::time::Instant::now();
            if now >= end {
                return false;
            }
            p = self.shared.changed.wait_timeout(p, end - now).unwrap_or_else(|p| p.into_inner()).0;
        }
        true
    }

    /// Applies `f`, which says whether it changed anything, and has the
    /// change written.
    fn change(&self, f: impl FnOnce(&mut BTreeMap<(String, u32), GroupRecord>) -> bool) {
        let mut p = self.shared.state.lock().unwrap_or_else(|p| p.into_inner());
        if !f(&mut p.groups) {
            return;
        }
        p.version += 1;
        if p.writing {
            // The running writer looks at the version before it ends.
            return;
        }
        p.writing = true;
        drop(p);
        let s = self.shared.clone();
        if std::thread::Builder::new().name("corral-persist".into()).spawn(move || s.run()).is_err() {
            // No thread to be had: write here rather than never.
            self.shared.run();
        }
    }
}

/// The last change is written before the daemon goes.
impl Drop for Persist {
    fn drop(&mut self) {
        let mut p = self.shared.state.lock().unwrap_or_else(|p| p.into_inner());
        while p.writing {
            p = self.shared.changed.wait(p).unwrap_or_else(|p| p.into_inner());
        }
    }
}

impl Shared {
    /// Writes the newest version until nothing is left to write, then
    /// ends the writer's turn.
    fn run(&self) {
        loop {
            let (groups, version) = {
                let mut p = self.state.lock().unwrap_or_else(|p| p.into_inner());
                if p.version == p.written {
                    p.writing = false;
                    drop(p);
                    // `flush` and `drop` wait on this.
                    self.changed.notify_all();
                    return;
                }
                (p.groups.clone(), p.version)
            };
            self.write(&groups);
            self.state.lock().unwrap_or_else(|p| p.into_inner()).written = version;
            self.changed.notify_all();
        }
    }

    /// Replaced atomically, so a crash mid-write leaves the previous
    /// version, never half of one.
    fn write(&self, groups: &BTreeMap<(String, u32), GroupRecord>) {
        let state = StateFile { daemon_pid: std::process::id(), groups: groups.values().cloned().collect() };
        if let Ok(text) = serde_json::to_vec_pretty(&state) {
            if let Err(e) = self.dir.replace(NAME, &text) {
                eprintln!("corral: cannot write {}: {e}", self.dir.path().join(NAME).display());
            }
        }
    }
}

/// What a start found of a previous run.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Leftovers {
    /// Groups the previous daemon left recorded (or, with an unreadable
    /// state file, orphaned groups found by their tag).
    pub groups: usize,
    /// Processes still alive in them, now killed.
    pub killed: usize,
    /// Why the state file could not be used, when it could not.
    pub unreadable: Option<String>,
    /// Groups taken back alive (see `reattach`), not killed.
    pub reattached: usize,
}

/// Refuses when another live corral daemon keeps its state in
/// `state_dir`. Asked before the daemon touches anything a running one
/// owns: its log holder serves one daemon at a time, so a second daemon
/// that asked it for its pipes would wait for the first to end.
pub(crate) fn refuse_a_running_daemon(state_dir: &Path) -> Result<(), String> {
    let dir = PrivateDir::create_or_check(state_dir).map_err(|e| format!("state_dir: {e}"))?;
    // An unreadable state file is `reap_previous`'s to report.
    match dir.read(NAME, MAX_SIZE).map(|t| t.map(|t| parse(&t))) {
        Ok(Some(Ok(state))) => not_running_elsewhere(&state, state_dir),
        _ => Ok(()),
    }
}

fn not_running_elsewhere(state: &StateFile, state_dir: &Path) -> Result<(), String> {
    if state.daemon_pid != std::process::id() && alive_as_corral(state.daemon_pid) {
        return Err(format!(
            "another corral daemon (pid {}) is running with state in {}",
            state.daemon_pid,
            state_dir.display()
        ));
    }
    Ok(())
}

/// Kills what a dead previous daemon left behind, except the recorded
/// groups `take_back` takes over (it returns true for those). Fails when
/// that daemon is still alive, or when the state folder is not the
/// daemon's own.
pub(crate) fn reap_previous(
    state_dir: &Path,
    mut take_back: impl FnMut(&GroupRecord) -> bool,
) -> Result<Leftovers, String> {
    let dir = PrivateDir::create_or_check(state_dir).map_err(|e| format!("state_dir: {e}"))?;
    let path = dir.path().join(NAME);
    let state = match dir.read(NAME, MAX_SIZE) {
        Ok(None) => return Ok(Leftovers::default()),
        Ok(Some(text)) => parse(&text),
        Err(e) => Err(e.to_string()),
    };
    let state = match state {
        Ok(s) => s,
        Err(why) => return Ok(reap_orphans(format!("{} is unreadable ({why})", path.display()))),
    };
    not_running_elsewhere(&state, state_dir)?;
    let mut out = Leftovers::default();
    for g in &state.groups {
        if take_back(g) {
            out.reattached += 1;
            continue;
        }
        reap(&g.group_id, g.pid, &mut out);
    }
    // A group spawned in the instant before it was recorded: its id names
    // the dead daemon as its controller.
    let prefix = format!("{}-", state.daemon_pid);
    for g in orphans() {
        if g.id.starts_with(&prefix) && !state.groups.iter().any(|r| r.group_id == g.id) {
            reap(&g.id, g.members.iter().copied().min().unwrap_or(0), &mut out);
        }
    }
    Ok(out)
}

fn reap(id: &str, leader: u32, out: &mut Leftovers) {
    out.groups += 1;
    match corral::reap_group(id, leader) {
        Ok(n) => out.killed += n,
        Err(e) => eprintln!("corral: {e}"),
    }
}

fn orphans() -> Vec<corral::OrphanedGroup> {
    corral::orphaned_groups().unwrap_or_else(|e| {
        eprintln!("corral: {e}");
        Vec::new()
    })
}

fn parse(text: &[u8]) -> Result<StateFile, String> {
    if text.iter().all(u8::is_ascii_whitespace) {
        return Err("empty".into());
    }
    serde_json::from_slice(text).map_err(|e| e.to_string())
}

/// Without a record: every group whose controller is gone.
fn reap_orphans(why: String) -> Leftovers {
    let mut out = Leftovers { unreadable: Some(why), ..Leftovers::default() };
    for g in orphans() {
        reap(&g.id, g.members.iter().copied().min().unwrap_or(0), &mut out);
    }
    out
}

/// The pid runs and its command line names corral: a pid alone may have
/// been reused by anything. A zombie or a process whose command line
/// cannot be read shows as `[name]`, and is not running.
fn alive_as_corral(pid: u32) -> bool {
    corral::process_table().is_ok_and(|t| {
        t.get(pid).is_some_and(|p| !p.cmdline.starts_with('[') && p.cmdline.to_lowercase().contains("corral"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_and_corrupt_state_files_are_told_apart_from_a_good_one() {
        assert_eq!(parse(b"").unwrap_err(), "empty");
        assert_eq!(parse(b" \n").unwrap_err(), "empty");
        assert!(parse(b"{\"daemon_pid\": 1, \"gro").unwrap_err().contains("EOF"));
        assert_eq!(parse(b"{\"daemon_pid\": 7, \"groups\": []}").unwrap().daemon_pid, 7);
    }

    #[test]
    fn a_burst_of_changes_ends_in_the_last_state() {
        let d = tempfile::tempdir().unwrap();
        let p = Persist::new(d.path()).unwrap();
        let rec = |i: u32| GroupRecord {
            service: "web".into(),
            instance: i,
            group_id: format!("1-{i}"),
            pid: i + 100,
            backend: "pgid".into(),
            location: String::new(),
            start: None,
        };
        for i in 0..200 {
            p.set(rec(i));
        }
        for i in 1..200 {
            p.remove("web", i);
        }
        drop(p);
        let s: StateFile = serde_json::from_slice(&std::fs::read(d.path().join(NAME)).unwrap()).unwrap();
        assert_eq!(s.groups, [rec(0)]);
        assert_eq!(s.daemon_pid, std::process::id());
    }

    #[test]
    fn the_state_file_is_replaced_whole_and_private() {
        let d = tempfile::tempdir().unwrap();
        let p = Persist::new(d.path()).unwrap();
        let rec = GroupRecord {
            service: "web".into(),
            instance: 0,
            group_id: "1-1".into(),
            pid: 1,
            backend: "pgid".into(),
            location: "process group 1".into(),
            start: Some(42),
        };
        p.set(rec.clone());
        // Dropping it writes the last change.
        drop(p);
        let s: StateFile = serde_json::from_slice(&std::fs::read(d.path().join(NAME)).unwrap()).unwrap();
        assert_eq!(s.groups, [rec]);
        assert!(!d.path().join("state.json.tmp").exists());
        #[cfg(unix)]
        {
            use std::os::unix::fs::MetadataExt;
            assert_eq!(std::fs::metadata(d.path().join(NAME)).unwrap().mode() & 0o777, 0o600);
        }
    }
}
