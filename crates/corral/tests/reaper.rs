//! The library's background reaper (the `corral-reaper` thread): it reaps
//! the orphans a group leaves to this process, leaves every other child's
//! zombie alone, and costs nothing while no child dies: it blocks until one
//! does instead of polling, and a zombie it may not reap does not make it
//! spin.
//!
//! Each test owns this process's children, so they run one at a time.

#![cfg(target_os = "linux")]

use corral::{Command, Group, Stdio};
use std::io::{BufRead, BufReader, Write};
use std::sync::Mutex;
use std::time::{Duration, Instant};

static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// The reaper thread's CPU time and how many times it was put on a CPU,
/// from `/proc/self/task/TID/schedstat`.
#[derive(Debug, Clone, Copy)]
struct Runs {
    cpu: Duration,
    times: u64,
}

fn reaper_runs() -> Runs {
    for task in std::fs::read_dir("/proc/self/task").unwrap().flatten() {
        let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
        if comm.trim_end() != "corral-reaper" {
            continue;
        }
        let stat = std::fs::read_to_string(task.path().join("schedstat")).unwrap();
        let f: Vec<u64> = stat.split_whitespace().map(|v| v.parse().unwrap()).collect();
        return Runs { cpu: Duration::from_nanos(f[0]), times: f[2] };
    }
    panic!("no corral-reaper thread in this process");
}

/// How much the reaper ran during `window`.
fn reaper_runs_over(window: Duration) -> Runs {
    let before = reaper_runs();
    std::thread::sleep(window);
    let after = reaper_runs();
    Runs { cpu: after.cpu - before.cpu, times: after.times - before.times }
}

/// Starts the reaper (it starts with the first group).
fn start_reaper() {
    let g = Group::spawn(Command::new("true")).unwrap();
    assert_eq!(g.wait().status.code, Some(0));
}

fn is_zombie(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .is_ok_and(|s| s.rsplit_once(')').is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')))
}

fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let end = Instant::now() + Duration::from_secs(10);
    while !done() {
        assert!(Instant::now() < end, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn the_reaper_sleeps_while_no_child_dies() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    start_reaper();
    // A child that runs through the window: the reaper has something to
    // wait for (with no child at all it looks again every half second).
    let mut child = std::process::Command::new("sleep").arg("30").spawn().unwrap();
    // Let it settle from the group's end first.
    std::thread::sleep(Duration::from_millis(700));
    let runs = reaper_runs_over(Duration::from_secs(1));
    child.kill().unwrap();
    child.wait().unwrap();
    // It polled twice a second before.
    assert!(runs.times <= 1, "the reaper woke while no child died: {runs:?}");
}

#[test]
fn a_zombie_no_group_claims_is_left_to_its_parent_and_does_not_make_the_reaper_spin() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    start_reaper();
    // This process's own child, started outside corral: its exit status is
    // ours to collect, not the reaper's.
    let mut child = std::process::Command::new("true").spawn().unwrap();
    let pid = child.id();
    wait_until("the child is a zombie", || is_zombie(pid));
    let runs = reaper_runs_over(Duration::from_secs(1));
    // About twice (it waits half a second after a zombie it cannot reap);
    // spinning, it would run on every time slice it gets.
    assert!(runs.times <= 6, "the reaper spins on a zombie it may not reap: {runs:?}");
    assert!(runs.cpu < Duration::from_millis(50), "the reaper spins on a zombie it may not reap: {runs:?}");
    assert!(is_zombie(pid), "the zombie was reaped by someone else");
    let status = child.wait().expect("the exit status is still there to collect");
    assert!(status.success());
}

#[test]
fn a_groups_orphan_is_reaped_when_it_dies_while_the_group_runs() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    // The subshell exits at once: its `sleep` is orphaned to this process
    // (a subreaper), still in the group, and dies while the leader waits.
    let mut c = Command::new("sh");
    c.args(["-c", "(sleep 0.3 >/dev/null & echo $!); read _"]).stdin(Stdio::piped()).stdout(Stdio::piped());
    let mut g = Group::spawn(c).unwrap();
    let mut line = String::new();
    BufReader::new(g.take_stdout().unwrap()).read_line(&mut line).unwrap();
    let orphan: u32 = line.trim().parse().unwrap();
    // Gone means reaped: a zombie keeps its /proc entry.
    wait_until("the orphan is reaped", || !std::path::Path::new(&format!("/proc/{orphan}")).exists());
    let mut stdin = g.take_stdin().unwrap();
    stdin.write_all(b"\n").unwrap();
    drop(stdin);
    let o = g.wait();
    assert_eq!(o.status.code, Some(0));
    assert_eq!(o.leftover, 0);
}

#[test]
fn a_group_beside_a_child_of_the_program_finds_its_orphans_and_leaves_that_child_alone() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    // The program's own child, older than every group: the end of a group
    // no longer takes the "no child at all" shortcut, and must neither take
    // this child for a member nor reap it.
    let mut own = std::process::Command::new("sleep").arg("30").spawn().unwrap();
    // The leader exits at once; its `sleep`, orphaned to this process, is
    // what is left of the group then: in the leader's process group, and
    // out of it (a new session: found by its cgroup alone).
    for script in ["sleep 0.2 >/dev/null & echo $!", "setsid sleep 0.2 >/dev/null & echo $!"] {
        let mut c = Command::new("sh");
        c.args(["-c", script]).stdout(Stdio::piped());
        let mut g = Group::spawn(c).unwrap();
        let mut line = String::new();
        BufReader::new(g.take_stdout().unwrap()).read_line(&mut line).unwrap();
        let orphan: u32 = line.trim().parse().unwrap();
        let o = g.wait();
        assert_eq!(o.status.code, Some(0), "{script}");
        assert_eq!(o.leftover, 0, "{script}");
        // Gone means reaped: a zombie keeps its /proc entry.
        assert!(!std::path::Path::new(&format!("/proc/{orphan}")).exists(), "{script}: the orphan was left");
        assert!(own.try_wait().unwrap().is_none(), "{script}: the program's own child was reaped or ended");
    }
    own.kill().unwrap();
    let status = own.wait().expect("its exit status is still there to collect");
    assert_eq!(std::os::unix::process::ExitStatusExt::signal(&status), Some(libc::SIGKILL));
}
