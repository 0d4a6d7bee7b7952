//! `GroupBuilder::reattach` on Windows: a group made to outlive its
//! controller (a job without `KILL_ON_JOB_CLOSE`, named after the group
//! id) is taken back by that name when its leader's pid and creation time
//! match, and refused (nothing touched) when they do not; one not taken
//! back is reaped by name. Runs under Wine in CI and on real Windows
//! alike; every pid the testkit printed is proved gone.
//!
//! The old group's handles stay open in this process (its monitor runs
//! on), so this does not show the job outliving its controller: the
//! daemon's test does (`corral-cli/tests/windows_reattach.rs`).

#![cfg(windows)]

mod windows_support;

use corral::{ErrorKind, Group, Signal, StopPolicy};
use std::collections::HashSet;
use std::time::Duration;
use windows_support::{assert_all_gone, start, Kit};

fn left_behind() -> (String, u32, u64, Kit) {
    let b = Group::builder().outlive_controller(true).kill_on_drop(false);
    let kit = start(b, &["--children", "2", "--sleep", "60"]);
    let (id, pid) = (kit.group.id().to_string(), kit.group.pid());
    let start = corral::process_start_time(pid).expect("a live leader has a creation time");
    (id, pid, start, kit)
}

#[test]
fn a_group_left_behind_is_taken_back_by_its_job_name_only_with_the_leaders_creation_time() {
    let (id, pid, start, kit) = left_behind();
    let Kit { group, ready, procs, stdout } = kit;
    assert!(group.location().ends_with(&id), "the job is named after the group: {}", group.location());
    drop(group);

    let e = Group::builder().reattach(&id, pid, start + 1).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
    assert!(e.to_string().contains("the pid was reused"), "{e}");
    let e = Group::builder().reattach("1-1-outlive", pid, start).unwrap_err();
    assert!(e.to_string().contains("is gone"), "no such job: {e}");
    assert!(procs.iter().all(|p| p.exit_code().is_none()), "a refusal touches nothing");

    let g = Group::builder()
        .outlive_controller(true)
        .stop(StopPolicy::new(Signal::TERM, Duration::from_millis(300)))
        .reattach(&id, pid, start)
        .unwrap_or_else(|e| panic!("reattach: {e}"));
    assert_eq!(g.pid(), pid);
    assert_ne!(g.id(), id, "a new group");
    let members: HashSet<u32> = g.members().unwrap().into_iter().collect();
    for p in ready.every_pid() {
        assert!(members.contains(&p), "{p} was not taken back: {members:?}");
    }
    g.kill().unwrap();
    let o = g.wait();
    assert_eq!(o.leftover, 0);
    assert_all_gone(&procs);
    drop(stdout);
}

#[test]
fn a_group_left_behind_and_not_taken_back_is_reaped_by_its_job_name() {
    let (id, pid, _, kit) = left_behind();
    let Kit { group, ready, procs, stdout } = kit;
    drop(group);
    let n = corral::reap_group(&id, pid).unwrap();
    // Wine may count a console host of its own in the job too.
    assert!(n >= ready.every_pid().len(), "every member counted: {n}");
    assert_all_gone(&procs);
    assert_eq!(corral::reap_group(&id, pid).unwrap(), 0, "a job that is gone has nothing left");
    drop(stdout);
}
