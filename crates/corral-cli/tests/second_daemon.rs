//! A second `corral up` on the state dir of a live daemon refuses at
//! once, in one line, before it touches anything of the first: not its
//! log holder (which serves one daemon at a time, so asking it for its
//! pipes would wait for the first daemon to end), not its groups, not its
//! socket.

#![cfg(target_os = "linux")]

mod daemon;

use daemon::{bounded_output, tk, Daemon, CORRAL};
use std::os::unix::fs::MetadataExt;
use std::process::Command;
use std::time::{Duration, Instant};

/// Far above what refusing takes, far below forever.
const REFUSAL_LIMIT: Duration = Duration::from_secs(20);

#[test]
fn a_second_daemon_on_a_live_state_dir_refuses_in_one_line_and_leaves_the_first_untouched() {
    let toml = format!("[services.app]\ncommand = [{}, \"--children\", \"1\", \"--sleep\", \"120\"]\n", tk());
    let mut d = Daemon::start(&toml);
    let pids = d.ready_pids("app", 0);
    let leader = d.pid_of("app").expect("app runs");
    let holder = std::fs::symlink_metadata(d.path(".corral/holder.sock")).expect("the first daemon's holder").ino();

    let mut up = Command::new(CORRAL);
    up.args(["up", "--no-color", "-c"]).arg(d.path("corral.toml"));
    let start = Instant::now();
    // Bounded: a second daemon that blocks fails the test, killed by pid.
    let second = bounded_output(up);
    let took = start.elapsed();
    let said: Vec<&str> = std::str::from_utf8(&second.stderr).unwrap().lines().collect();
    assert!(took < REFUSAL_LIMIT, "the second daemon took {took:?} to refuse: {said:?}");
    assert_eq!(second.status.code(), Some(1), "{said:?}");
    assert_eq!(said.len(), 1, "one line: {said:?}");
    assert!(said[0].contains("another corral daemon (pid "), "{said:?}");
    assert!(said[0].contains(&d.path(".corral").display().to_string()), "names the state dir: {said:?}");

    // The first daemon is as it was: same instance, same processes, the
    // same holder, and it still answers.
    assert_eq!(d.pid_of("app"), Some(leader));
    assert!(pids.iter().all(|&p| !daemon::gone(p)), "the refused daemon stopped nothing: {pids:?}");
    let now = std::fs::symlink_metadata(d.path(".corral/holder.sock")).expect("the holder's socket").ino();
    assert_eq!(now, holder, "the first daemon's holder is the same");
    d.down();
}
