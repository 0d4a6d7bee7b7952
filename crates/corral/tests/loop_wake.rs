//! A group started on the caller's thread without a deadline reaches the
//! event loop "soon" (a timer, within `WAKE_SOON`) instead of through a
//! wake-up on the caller's time. These tests hold what that must not
//! cost: a group nobody waits for is still seen to its end by the loop
//! alone, and a spawn loop does not pile up ended groups (their fds)
//! between two of the loop's wake-ups. One test, one process: it counts
//! this process's fds.

#![cfg(target_os = "linux")]

use corral::{Command, Group, Reason, Stdio};
use corral_testkit::test_support::{alive, assert_gone, eventually, listed_pids};
use std::io::{BufRead, BufReader};
use std::time::Duration;

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").expect("/proc/self/fd").count()
}

#[test]
fn the_loop_takes_unwaited_groups_soon_and_a_spawn_loop_holds_no_pile_of_them() {
    // 1. Nobody waits: only the loop can see the end and tear the group
    // down, so `try_wait` (which drives nothing) finds the outcome only
    // if the loop took the group.
    let mut c = Command::new(corral_testkit::binary());
    c.args(["--children", "2", "--sleep", "0.2"]).stdout(Stdio::piped()).stderr(Stdio::null()).stdin(Stdio::null());
    let mut g = Group::spawn(c).expect("spawn");
    let mut line = String::new();
    BufReader::new(g.take_stdout().expect("stdout")).read_line(&mut line).expect("ready line");
    assert!(line.contains("\"ready\":true"), "{line}");
    let pids = alive(std::iter::once(g.pid()).chain(listed_pids(&line, "all")));
    assert_eq!(pids.len(), 3, "the leader and its two children run: {line}");
    let o = eventually("the loop takes the group", Duration::from_secs(20), Duration::from_millis(5), || g.try_wait());
    assert_eq!((o.reason, o.status.code, o.leftover), (Reason::Exited, Some(0), 0));
    assert_gone(&pids);
    drop(g);

    // 2. A spawn loop: every group ends in its caller's `wait`, and the
    // loop drops what it was queued at its next timer, not never.
    std::thread::sleep(Duration::from_millis(50));
    let before = open_fds();
    for _ in 0..300 {
        let o = Group::spawn(Command::new("/bin/true")).expect("spawn").wait();
        assert!(o.status.success() && o.leftover == 0, "{o:?}");
    }
    let what = format!("ended groups let go of their fds ({before} before 300 spawns)");
    eventually(&what, Duration::from_secs(10), Duration::from_millis(10), || (open_fds() <= before + 4).then_some(()));
}
