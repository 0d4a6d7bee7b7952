//! `action = "dump"`: a diagnostic snapshot of a live group in
//! `state_dir/dumps/<service>-<instance>-<time>/`, taken without stopping
//! anything.
//!
//! - `summary.json`: why, when, the backend, the members, the usage, and
//!   every file that could not be read with the reason.
//! - `tree.txt`: the group's process tree.
//! - Linux: `<pid>/status`, `<pid>/smaps_rollup`, `<pid>/stack` and
//!   `<pid>/cmdline` of each member, copied from /proc. `stack` needs
//!   CAP_SYS_ADMIN and a kernel that exposes it; when it cannot be read the
//!   summary says so instead.
//! - Windows: `leader.dmp`, a minidump of the leader (`MiniDumpWriteDump`:
//!   threads, stacks and the memory they point to, handles, the memory
//!   map; not the whole memory), for WinDbg or Visual Studio.
//! - macOS: only the summary and the tree.
//!
//! Only the newest [`KEEP`] snapshots of each instance are kept.

use crate::sys::safe_fs::PrivateDir;
use corral::Group;
use serde_json::json;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// Snapshots kept per instance; older ones are removed.
pub const KEEP: usize = 10;

/// Writes one snapshot of `group` under `dumps` and returns its folder.
///
/// Every folder and file is new and private (0700/0600), created through
/// `PrivateDir`: nothing planted in `dumps` is written through.
pub fn write(dumps: &Path, service: &str, instance: u32, group: &Group, why: &str) -> io::Result<PathBuf> {
    let top = PrivateDir::create_or_check(dumps)?;
    let ts = crate::time::now_rfc3339();
    let stamp: String = ts.chars().filter(|c| *c != '-' && *c != ':').collect();
    let prefix = format!("{service}-{instance}-");
    let mut name = format!("{prefix}{stamp}");
    let mut n = 1;
    let snap = loop {
        match top.new_subdir(&name) {
            Ok(d) => break d,
            Err(e) if e.kind() != io::ErrorKind::AlreadyExists || n > 100 => return Err(e),
            Err(_) => {}
        }
        n += 1;
        name = format!("{prefix}{stamp}-{n}");
    };
    let dir = snap.path().to_path_buf();
    let mut unreadable = Vec::new();
    let members = group.members().unwrap_or_else(|e| {
        unreadable.push(json!({ "what": "members", "error": e.to_string() }));
        Vec::new()
    });
    match group.tree() {
        Ok(t) => write_new(&snap, "tree.txt", t.to_string().as_bytes())?,
        Err(e) => unreadable.push(json!({ "what": "tree", "error": e.to_string() })),
    }
    let notes = per_process(&snap, group.pid(), &members, &mut unreadable)?;
    let u = group.usage();
    let summary = json!({
        "service": service,
        "instance": instance,
        "reason": why,
        "ts": ts,
        "backend": group.backend().as_str(),
        "location": group.location(),
        "leader": group.pid(),
        "members": members,
        "usage": {
            "cpu_user_ms": u.cpu_user.as_millis() as u64,
            "cpu_system_ms": u.cpu_system.as_millis() as u64,
            "memory_bytes": u.memory_now,
            "peak_memory_bytes": u.peak_memory,
            "processes": u.processes_active,
        },
        "unreadable": unreadable,
        "notes": notes,
    });
    write_new(&snap, "summary.json", &serde_json::to_vec_pretty(&summary).unwrap_or_default())?;
    prune(dumps, &prefix, KEEP);
    Ok(dir)
}

fn write_new(dir: &PrivateDir, name: &str, bytes: &[u8]) -> io::Result<()> {
    dir.create_new(name)?.write_all(bytes)
}

#[cfg(target_os = "linux")]
fn per_process(
    dir: &PrivateDir,
    _leader: u32,
    members: &[u32],
    unreadable: &mut Vec<serde_json::Value>,
) -> io::Result<Vec<String>> {
    for pid in members {
        let pdir = dir.new_subdir(&pid.to_string())?;
        for file in ["status", "smaps_rollup", "stack", "cmdline"] {
            match std::fs::read(format!("/proc/{pid}/{file}")) {
                Ok(mut bytes) => {
                    if file == "cmdline" {
                        for b in &mut bytes {
                            if *b == 0 {
                                *b = b' ';
                            }
                        }
                    }
                    write_new(&pdir, file, &bytes)?;
                }
                Err(e) => {
                    let hint = match (file, e.kind()) {
                        ("stack", io::ErrorKind::PermissionDenied) => " (needs CAP_SYS_ADMIN)",
                        (_, io::ErrorKind::NotFound) => " (the process exited)",
                        _ => "",
                    };
                    unreadable.push(json!({ "pid": pid, "what": file, "error": format!("{e}{hint}") }));
                }
            }
        }
    }
    Ok(Vec::new())
}

#[cfg(windows)]
fn per_process(
    dir: &PrivateDir,
    leader: u32,
    _members: &[u32],
    unreadable: &mut Vec<serde_json::Value>,
) -> io::Result<Vec<String>> {
    // The library writes the file by path: the snapshot folder is new and
    // private, so nothing else can have put a name there.
    if let Err(e) = corral::write_minidump(leader, &dir.path().join("leader.dmp")) {
        unreadable.push(json!({ "pid": leader, "what": "leader.dmp", "error": e.to_string() }));
    }
    Ok(Vec::new())
}

#[cfg(not(any(target_os = "linux", windows)))]
fn per_process(
    _dir: &PrivateDir,
    _leader: u32,
    _members: &[u32],
    _unreadable: &mut Vec<serde_json::Value>,
) -> io::Result<Vec<String>> {
    Ok(vec!["per-process memory maps and stacks are collected on Linux, a minidump on Windows".into()])
}

/// Removes all but the newest `keep` snapshots of one instance (names
/// sort by time).
fn prune(dumps: &Path, prefix: &str, keep: usize) {
    let Ok(rd) = std::fs::read_dir(dumps) else { return };
    let mut mine: Vec<PathBuf> = rd
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_str().and_then(|n| n.strip_prefix(prefix)).is_some_and(is_stamp))
        .map(|e| e.path())
        .collect();
    mine.sort();
    let extra = mine.len().saturating_sub(keep);
    for old in &mine[..extra] {
        let _ = std::fs::remove_dir_all(old);
    }
}

/// `20240501T120000.123Z`, maybe with a `-N` suffix: tells `web-0-<stamp>`
/// from the snapshots of a service named `web-0`.
fn is_stamp(rest: &str) -> bool {
    let b = rest.as_bytes();
    b.len() > 9 && b[..8].iter().all(u8::is_ascii_digit) && b[8] == b'T'
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prune_keeps_the_newest_of_one_instance() {
        let d = tempfile::tempdir().unwrap();
        let t = |n: u32| format!("20240501T12000{n}.000Z");
        for n in [
            format!("web-0-{}", t(1)),
            format!("web-0-{}", t(2)),
            format!("web-0-{}", t(3)),
            format!("web-0-1-{}", t(1)),
            format!("web-1-{}", t(1)),
        ] {
            std::fs::create_dir(d.path().join(n)).unwrap();
        }
        prune(d.path(), "web-0-", 2);
        let mut left: Vec<String> =
            std::fs::read_dir(d.path()).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
        left.sort();
        assert_eq!(
            left,
            [
                format!("web-0-1-{}", t(1)),
                format!("web-0-{}", t(2)),
                format!("web-0-{}", t(3)),
                format!("web-1-{}", t(1))
            ]
        );
    }
}
