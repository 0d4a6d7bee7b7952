//! A second `corral up` on the state dir of a live daemon refuses at
//! once, in one line, before it touches anything of the first: not its
//! log holder (which serves one daemon at a time, so asking it for its
//! pipes would wait for the first daemon to end), not its groups, not its
//! socket.

#![cfg(target_os = "linux")]

mod daemon;

use daemon::{spawn_up, tk, Daemon};
use std::os::unix::fs::MetadataExt;
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

    let (mut second, lines) = spawn_up(&d.path("corral.toml"));
    let end = Instant::now() + REFUSAL_LIMIT;
    let status = loop {
        if let Some(s) = second.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > end {
            let _ = second.kill();
            let _ = second.wait();
            panic!("the second daemon blocked for {REFUSAL_LIMIT:?} instead of refusing");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    // Its stderr ends with it; the deadline only guards against a child
    // that kept it open.
    let mut said = Vec::new();
    while let Ok(l) = lines.recv_timeout(end.saturating_duration_since(Instant::now())) {
        said.push(l);
    }
    assert_eq!(status.code(), Some(1), "{said:?}");
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
