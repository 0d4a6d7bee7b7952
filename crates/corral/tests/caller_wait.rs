//! A caller blocked in `wait` drives its own group (Linux): it polls the
//! group's fds itself and the event loop leaves the group alone until it
//! is handed back. These tests hold the hand-over's edges: a
//! `wait_timeout` that runs out gives the group back to the loop, a stop
//! or kill from another thread reaches the waiting caller, a deadline is
//! kept while the caller drives, and two waiters both learn the outcome.
//! Each proves the pids the testkit printed are gone.

#![cfg(target_os = "linux")]

use corral::{Command, Group, Reason, Stdio, StopPolicy};
use corral_testkit::test_support::{alive, assert_gone, eventually, listed_pids};
use std::io::{BufRead, BufReader};
use std::time::Duration;

fn tk(args: &[&str]) -> Command {
    let mut c = Command::new(corral_testkit::binary());
    c.args(args).stdout(Stdio::piped()).stderr(Stdio::null()).stdin(Stdio::null());
    c
}

/// Reads the testkit's ready line; returns the pids it names, with start
/// times.
fn ready(g: &mut Group) -> Vec<(u32, u64)> {
    let mut line = String::new();
    BufReader::new(g.take_stdout().unwrap()).read_line(&mut line).unwrap();
    assert!(line.contains("\"ready\":true"), "{line}");
    alive(std::iter::once(g.pid()).chain(listed_pids(&line, "all")))
}

#[test]
fn a_wait_timeout_that_runs_out_hands_the_group_back_to_the_loop() {
    let mut g = Group::spawn(tk(&["--children", "2", "--sleep", "0.6"])).unwrap();
    let pids = ready(&mut g);
    assert!(g.wait_timeout(Duration::from_millis(50)).is_none(), "the tree sleeps 0.6 s");
    // Nobody waits now: only the event loop can see the end and tear the
    // group down, so `try_wait` finds the outcome only if it took the
    // group back.
    let o = eventually("the loop takes the group back", Duration::from_secs(20), Duration::from_millis(10), || {
        g.try_wait()
    });
    assert_eq!((o.reason, o.status.code, o.leftover), (Reason::Exited, Some(0), 0));
    assert_gone(&pids);
}

#[test]
fn a_stop_from_another_thread_reaches_a_waiting_caller() {
    let stop = StopPolicy::new(corral::Signal::TERM, Duration::from_millis(200));
    let mut g =
        Group::builder().stop(stop).spawn(tk(&["--ignore-term", "--children", "2", "--sleep", "30.5"])).unwrap();
    let pids = ready(&mut g);
    let o = std::thread::scope(|s| {
        s.spawn(|| {
            std::thread::sleep(Duration::from_millis(100));
            g.stop();
        });
        g.wait()
    });
    // TERM ignored, so the grace ran out and the waiting caller killed it.
    assert_eq!((o.reason, o.status.signal, o.leftover), (Reason::Killed, Some(9), 0));
    assert!(o.duration >= Duration::from_millis(300), "{:?}", o.duration);
    assert_gone(&pids);
}

#[test]
fn a_deadline_is_kept_while_the_caller_drives() {
    let mut g = Group::builder()
        .timeout(Duration::from_millis(200))
        .stop(StopPolicy::new(corral::Signal::TERM, Duration::from_millis(100)))
        .spawn(tk(&["--children", "1", "--sleep", "30.5"]))
        .unwrap();
    let pids = ready(&mut g);
    let o = g.wait();
    assert_eq!((o.reason, o.leftover), (Reason::Timeout, 0));
    assert!(o.duration < Duration::from_secs(10), "{:?}", o.duration);
    assert_gone(&pids);
}

#[test]
fn two_waiters_both_learn_the_outcome() {
    let mut g = Group::spawn(tk(&["--children", "1", "--sleep", "0.3"])).unwrap();
    let pids = ready(&mut g);
    let (a, b) = std::thread::scope(|s| {
        let other = s.spawn(|| g.wait());
        let mine = g.wait();
        (mine, other.join().unwrap())
    });
    assert_eq!((a.reason, a.status.code, a.leftover), (Reason::Exited, Some(0), 0));
    assert_eq!((b.status, b.leftover), (a.status, 0));
    assert_gone(&pids);
}
