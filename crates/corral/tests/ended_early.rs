//! `Group::wait_ended` tells a group's end before its teardown, but never
//! while a member still runs: a leader killed from outside leaves children
//! that ignore SIGTERM, and the end comes only once the group's stop has
//! killed them too. Each test proves that every pid the testkit printed is
//! gone afterwards.

#![cfg(target_os = "linux")]

use corral::{BackendKind, Command, Ended, Group, Reason, Signal, Stdio, StopPolicy};
use std::io::{BufRead, BufReader};
use std::time::Duration;

fn tk(args: &[&str]) -> Command {
    let mut c = Command::new(corral_testkit::binary());
    c.args(args).stdout(Stdio::piped()).stderr(Stdio::null()).stdin(Stdio::null());
    c
}

/// `(state, start time)` from `/proc/PID/stat`.
fn stat(pid: u32) -> Option<(char, u64)> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &s[s.rfind(')')? + 2..];
    let mut f = rest.split(' ');
    let state = f.next()?.chars().next()?;
    Some((state, f.nth(18)?.parse().ok()?))
}

/// The leader's pid and every pid of the ready line, with start times.
fn ready(g: &mut Group) -> (u32, Vec<(u32, u64)>) {
    let mut line = String::new();
    BufReader::new(g.take_stdout().unwrap()).read_line(&mut line).unwrap();
    assert!(line.contains("\"ready\":true"), "{line}");
    let after = |key: &str| &line[line.find(key).unwrap_or_else(|| panic!("{key} in {line}")) + key.len()..];
    let leader: u32 = after("\"pid\":").split(|c: char| !c.is_ascii_digit()).next().unwrap().parse().unwrap();
    let all = after("\"all\":[");
    let all = all[..all.find(']').unwrap()].split(',').filter_map(|s| s.trim().parse().ok());
    let pids = std::iter::once(leader).chain(all).filter_map(|p| stat(p).map(|(_, start)| (p, start))).collect();
    (leader, pids)
}

/// Those of `pids` still running (the same process, not a zombie).
fn running(pids: &[(u32, u64)]) -> Vec<u32> {
    pids.iter()
        .filter(|(p, s)| matches!(stat(*p), Some((st, start)) if start == *s && st != 'Z'))
        .map(|p| p.0)
        .collect()
}

fn backends() -> Vec<BackendKind> {
    corral::host_report().backends.into_iter().filter(|b| b.available.is_ok()).map(|b| b.kind).collect()
}

#[test]
fn the_end_is_told_only_once_no_member_runs() {
    for b in backends() {
        let mut g = Group::builder()
            .backend(b)
            .stop(StopPolicy::new(Signal::TERM, Duration::from_millis(300)))
            .spawn(tk(&["--children", "2", "--grandchildren", "1", "--ignore-term", "--sleep", "30.5"]))
            .unwrap();
        let (leader, pids) = ready(&mut g);
        assert_eq!(pids.len(), 5, "[{b}] leader, 2 children, 2 grandchildren: {pids:?}");
        // The leader dies from outside, as in a crash; the rest ignore the
        // group's SIGTERM and live until its kill, 300 ms later.
        // SAFETY: a pid this test's group holds.
        assert_eq!(unsafe { libc::kill(leader as i32, libc::SIGKILL) }, 0);
        let ended = g.wait_ended();
        let left = running(&pids);
        assert!(left.is_empty(), "[{b}] the end was told while {left:?} still ran");
        assert_eq!(ended.status.signal, Some(libc::SIGKILL), "[{b}]");
        assert_eq!(ended.reason, Reason::Signal, "[{b}]");
        let o = g.wait();
        assert_eq!(Ended::from(&o), ended, "[{b}]");
        assert_eq!(o.leftover, 0, "[{b}]");
        let left: Vec<u32> =
            pids.iter().filter(|(p, s)| stat(*p).is_some_and(|(_, st)| st == *s)).map(|p| p.0).collect();
        assert!(left.is_empty(), "[{b}] survivors (zombies count): {left:?}");
    }
}

#[test]
fn a_killed_group_ends_killed_with_nothing_left() {
    for b in backends() {
        let mut g = Group::builder()
            .backend(b)
            .spawn(tk(&["--children", "3", "--grandchildren", "2", "--sleep", "30.5"]))
            .unwrap();
        let (_, pids) = ready(&mut g);
        g.kill().unwrap();
        let ended = g.wait_ended();
        assert!(running(&pids).is_empty(), "[{b}]");
        assert_eq!(ended.reason, Reason::Killed, "[{b}] the caller's own kill is named");
        let o = g.wait();
        assert_eq!((o.reason, o.leftover), (Reason::Killed, 0), "[{b}]");
        let left: Vec<u32> =
            pids.iter().filter(|(p, s)| stat(*p).is_some_and(|(_, st)| st == *s)).map(|p| p.0).collect();
        assert!(left.is_empty(), "[{b}] survivors (zombies count): {left:?}");
    }
}
