//! `Command::umask` and `Command::groups` on both spawn paths: a real
//! leader reads its own umask, ids and supplementary groups from
//! `/proc/self/status`. The fork path is forced with `CORRAL_SPAWN=fork`
//! in a copy of this test binary, so the setting never leaks into the
//! other tests of this process.

#![cfg(target_os = "linux")]

use corral::{Command, Group, SpawnPath, Stdio};
use std::io::Read;

/// Set in the copy of this binary that runs the fork path.
const FORK_CHILD: &str = "CORRAL_TEST_IDENTITY_FORK";

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// The leader's own `/proc/self/status` lines for `keys`, and the path
/// that started it.
fn status_of(setup: impl FnOnce(&mut Command)) -> (Vec<String>, SpawnPath) {
    let mut c = Command::new("cat");
    c.arg("/proc/self/status").stdin(Stdio::null()).stdout(Stdio::piped()).current_dir("/");
    setup(&mut c);
    let mut g = Group::spawn(c).expect("spawn");
    let mut out = String::new();
    g.take_stdout().unwrap().read_to_string(&mut out).unwrap();
    let o = g.wait();
    assert_eq!(o.status.code, Some(0), "{out}");
    assert_eq!(o.leftover, 0);
    let keep = ["Umask:", "Uid:", "Gid:", "Groups:"];
    let lines = out
        .lines()
        .filter(|l| keep.iter().any(|k| l.starts_with(k)))
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect();
    (lines, g.spawn_path())
}

/// The checks, on whichever path this process spawns by.
fn check(path: SpawnPath) {
    let (lines, took) = status_of(|c| {
        c.umask(0o027);
    });
    assert_eq!(took, path);
    assert!(lines.contains(&"Umask: 0027".to_string()), "{lines:?}");
    // Only the permission bits count.
    let (lines, _) = status_of(|c| {
        c.umask(0o7077);
    });
    assert!(lines.contains(&"Umask: 0077".to_string()), "{lines:?}");
    if !is_root() {
        eprintln!("skipping the groups: setgroups needs root");
        return;
    }
    let (lines, _) = status_of(|c| {
        c.uid(65534).gid(4242).groups(&[4343, 4444]).umask(0o022);
    });
    assert!(lines.contains(&"Uid: 65534 65534 65534 65534".to_string()), "{lines:?}");
    assert!(lines.contains(&"Gid: 4242 4242 4242 4242".to_string()), "{lines:?}");
    assert!(lines.contains(&"Groups: 4343 4444".to_string()), "{lines:?}");
    assert!(lines.contains(&"Umask: 0022".to_string()), "{lines:?}");
    // No groups asked for: root's switch still drops its own.
    let (lines, _) = status_of(|c| {
        c.uid(65534).gid(65534);
    });
    assert!(lines.contains(&"Groups:".to_string()), "{lines:?}");
}

#[test]
fn umask_and_groups_reach_a_leader_started_by_clone3() {
    if std::env::var_os(FORK_CHILD).is_some() {
        return;
    }
    check(SpawnPath::Clone3);
}

#[test]
fn umask_and_groups_reach_a_leader_started_by_fork() {
    if std::env::var_os(FORK_CHILD).is_some() {
        return check(SpawnPath::Fork);
    }
    let me = std::env::current_exe().unwrap();
    let out = std::process::Command::new(me)
        .args(["--exact", "umask_and_groups_reach_a_leader_started_by_fork", "--nocapture", "--test-threads=1"])
        .env(FORK_CHILD, "1")
        .env("CORRAL_SPAWN", "fork")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "the fork-path copy failed:\n{text}");
    assert!(text.contains("1 passed"), "the fork-path copy ran nothing:\n{text}");
}
