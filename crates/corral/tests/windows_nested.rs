//! A group inside a job that corral did not make, as under a CI runner or
//! a service: Windows 8 and later (and Wine) nest jobs.
//!
//! This file is its own test binary on purpose: the test puts the whole
//! test process into an outer job, which every later group then nests in.

#![cfg(windows)]

mod windows_support;

use corral::{Group, Reason};
use windows_support::{assert_all_gone, start};
use windows_sys::Win32::Foundation::CloseHandle;
use windows_sys::Win32::System::JobObjects::{AssignProcessToJobObject, CreateJobObjectW, IsProcessInJob};
use windows_sys::Win32::System::Threading::{
    GetCurrentProcess, OpenProcess, PROCESS_QUERY_INFORMATION, PROCESS_QUERY_LIMITED_INFORMATION,
};

#[test]
fn a_group_nests_in_the_job_corral_runs_in() {
    // SAFETY: an unnamed job with default security; the handle is closed at
    // the end (the job has no KILL_ON_JOB_CLOSE, so that ends nothing).
    let outer = unsafe { CreateJobObjectW(std::ptr::null(), std::ptr::null()) };
    assert!(!outer.is_null(), "CreateJobObjectW: {}", std::io::Error::last_os_error());
    // SAFETY: both handles are live; the pseudo handle needs no closing.
    let ok = unsafe { AssignProcessToJobObject(outer, GetCurrentProcess()) };
    assert!(ok != 0, "putting the test into a job: {}", std::io::Error::last_os_error());

    let notes = corral::host_report().notes.join("\n");
    assert!(notes.contains("runs inside a job"), "{notes}");

    let kit = start(Group::builder(), &["--children", "2", "--grandchildren", "1", "--sleep", "60"]);
    let members = kit.group.members().unwrap();
    for pid in kit.ready.every_pid() {
        assert!(members.contains(&pid), "{pid} is not in the group: {members:?}");
        // SAFETY: no pointers; the handle is checked and closed below.
        let h = unsafe { OpenProcess(PROCESS_QUERY_INFORMATION | PROCESS_QUERY_LIMITED_INFORMATION, 0, pid) };
        assert!(!h.is_null(), "OpenProcess({pid}): {}", std::io::Error::last_os_error());
        let mut yes = 0;
        // SAFETY: both handles are live; `yes` is writable.
        let ok = unsafe { IsProcessInJob(h, outer, &mut yes) };
        // SAFETY: opened above.
        unsafe { CloseHandle(h) };
        assert!(ok != 0 && yes != 0, "{pid} is not in the outer job too");
    }
    kit.group.kill().unwrap();
    let out = kit.group.wait();
    assert_eq!(out.reason, Reason::Killed);
    assert_eq!(out.leftover, 0);
    assert_all_gone(&kit.procs);
    // SAFETY: created above, closed once.
    unsafe { CloseHandle(outer) };
}
