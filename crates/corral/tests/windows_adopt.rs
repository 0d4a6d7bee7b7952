//! `GroupBuilder::adopt` on Windows: a testkit tree started outside corral
//! is assigned to a job and a timeout kills all of it. Runs under Wine in
//! CI (`.ci/windows.sh`) and on real Windows alike; every pid the testkit
//! printed is proved gone with the test's own handles.

#![cfg(windows)]

mod windows_support;

use corral::{ErrorKind, Group, Reason, Signal, SpawnPath, StopPolicy};
use std::collections::HashSet;
use std::io::{BufRead, BufReader};
use std::time::Duration;
use windows_support::{assert_all_gone, command, Proc, Ready};

#[test]
fn a_running_testkit_tree_is_adopted_into_a_job_and_a_timeout_kills_it() {
    // Not corral's: a plain child of the test, with an escapee.
    let mut child = command(&["--children", "2", "--grandchildren", "1", "--setsid", "1", "--sleep", "60"])
        .spawn()
        .expect("start the testkit");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let ready = Ready::parse(line.trim());
    let procs: Vec<Proc> = ready.every_pid().into_iter().filter_map(Proc::open).collect();
    let g = Group::builder()
        .timeout(Duration::from_secs(1))
        .stop(StopPolicy::new(Signal::TERM, Duration::from_millis(300)))
        .adopt(child.id())
        .unwrap_or_else(|e| panic!("adopt: {e}"));
    let members: HashSet<u32> = g.members().unwrap().into_iter().collect();
    for pid in ready.every_pid() {
        assert!(members.contains(&pid), "{pid} is not in the job: {members:?}");
    }
    let o = g.wait();
    assert_eq!(o.reason, Reason::Timeout);
    assert_eq!(o.leftover, 0);
    assert_eq!(o.spawn, SpawnPath::Adopted);
    // Windows tells anyone holding a handle how a process ended.
    assert_eq!(o.status.code, Some(137));
    assert_all_gone(&procs);
    let _ = child.wait();
}

#[test]
fn a_pid_that_does_not_run_and_corral_itself_are_refused() {
    let e = Group::adopt(0x7fff_fff0).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
    let e = Group::adopt(std::process::id()).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
}
