//! A service whose leader is SIGKILLed from outside restarts at once, but
//! only once its old group is empty: the daemon learns of the end before
//! the old cgroup's teardown, and the new run never starts beside a member
//! of the old one still alive (systemd's promise: a unit restarts once its
//! cgroup is empty).

#![cfg(target_os = "linux")]

mod daemon;

use daemon::*;
use std::time::{Duration, Instant};

#[test]
fn a_killed_leader_restarts_only_after_its_term_ignoring_children_are_gone() {
    let mut d = Daemon::start(&format!(
        r#"
        [services.tree]
        command = [{tk}, "--children", "2", "--grandchildren", "1", "--ignore-term", "--sleep", "120"]
        restart = "always"
        backoff = {{ initial = "0s", max = "0s" }}
        stop = {{ grace = "500ms" }}
        "#,
        tk = tk()
    ));
    let old = d.latest_ready_pids("tree", 0);
    assert_eq!(old.len(), 5, "leader, 2 children, 2 grandchildren: {old:?}");
    // SAFETY: the leader of this test's own service.
    assert_eq!(unsafe { libc::kill(old[0] as i32, libc::SIGKILL) }, 0);
    // The children ignore the group's SIGTERM and live until its kill, 500 ms
    // after the leader's end: a restart that did not wait for the group to
    // empty would print its ready line while they still ran.
    let new = d.ready_pids("tree", 1);
    let alive: Vec<u32> = old.iter().copied().filter(|&p| !gone(p)).collect();
    assert!(alive.is_empty(), "the new run ({}) started while {alive:?} of the old one still ran", new[0]);
    let backoff = d.wait_transition("tree", "backoff");
    assert!(backoff["reason"].as_str().unwrap_or("").contains("SIGKILL"), "{backoff}");
    d.down();
}

/// The log holder keeps a copy of each run's pipes (so that a daemon that
/// crashes loses no line) and lets it go once the run is torn down, off
/// the restart's path: after many short runs it holds the pipes of about
/// one, not of every run.
#[test]
fn the_log_holder_lets_go_of_each_ended_runs_pipes() {
    let mut d = Daemon::start(&format!(
        r#"
        [services.brief]
        command = [{tk}, "--sleep", "0.05"]
        restart = "always"
        backoff = {{ initial = "0s", max = "0s" }}
        start_limit = {{ burst = 1000, interval = "1m" }}
        "#,
        tk = tk()
    ));
    // Twelve runs have started (and eleven ended).
    d.ready_pids("brief", 11);
    let holder = holder_pid(d.dir.path());
    let end = Instant::now() + Duration::from_secs(10);
    loop {
        let pipes = pipes_held(holder);
        // A run's two pipes, and those of a run being torn down this moment.
        if pipes <= 4 {
            break;
        }
        assert!(Instant::now() < end, "after 12 runs the holder still holds {pipes} pipes");
        std::thread::sleep(Duration::from_millis(20));
    }
    d.down();
}

/// How many of `pid`'s fds are pipes.
fn pipes_held(pid: u32) -> usize {
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else { return 0 };
    fds.flatten()
        .filter(|f| std::fs::read_link(f.path()).is_ok_and(|t| t.to_string_lossy().starts_with("pipe:")))
        .count()
}
