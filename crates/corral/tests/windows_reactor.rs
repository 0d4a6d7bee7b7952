//! One event loop drives every group of the process on Windows too: the
//! jobs share one completion port, and no group has a thread of its own.
//!
//! This binary holds one test on purpose: it counts the threads of its own
//! process, which other tests running beside it would change.

#![cfg(windows)]

mod windows_support;

use corral::{Group, Reason, Signal, StopPolicy};
use std::io::{BufRead, BufReader};
use std::time::{Duration, Instant};
use windows_support::{assert_all_gone, command, Proc, Ready};
use windows_sys::Win32::Foundation::{CloseHandle, INVALID_HANDLE_VALUE};
use windows_sys::Win32::System::Diagnostics::ToolHelp::{
    CreateToolhelp32Snapshot, Thread32First, Thread32Next, TH32CS_SNAPTHREAD, THREADENTRY32,
};
use windows_sys::Win32::System::Threading::GetCurrentProcessId;

const GROUPS: u32 = 20;

/// The threads of this process, from a toolhelp snapshot.
fn threads() -> usize {
    // SAFETY: no pointers; the handle is checked and closed below.
    let snap = unsafe { CreateToolhelp32Snapshot(TH32CS_SNAPTHREAD, 0) };
    assert!(snap != INVALID_HANDLE_VALUE, "CreateToolhelp32Snapshot: {}", std::io::Error::last_os_error());
    // SAFETY: no preconditions.
    let me = unsafe { GetCurrentProcessId() };
    // SAFETY: THREADENTRY32 is plain data; zeroes are valid before dwSize is set.
    let mut e: THREADENTRY32 = unsafe { std::mem::zeroed() };
    e.dwSize = std::mem::size_of::<THREADENTRY32>() as u32;
    let mut n = 0;
    // SAFETY: `snap` is a live snapshot and `e` a writable entry with its size set.
    let mut ok = unsafe { Thread32First(snap, &mut e) };
    while ok != 0 {
        if e.th32OwnerProcessID == me {
            n += 1;
        }
        // SAFETY: as above.
        ok = unsafe { Thread32Next(snap, &mut e) };
    }
    // SAFETY: we opened `snap` and close it once.
    unsafe { CloseHandle(snap) };
    n
}

#[test]
fn twenty_groups_end_at_their_own_deadlines_on_one_thread() {
    let before = threads();
    // Deadlines 100 ms apart, far enough out that all twenty still run
    // when the threads are counted, even where Wine starts processes
    // slowly on a loaded host.
    let timeout = |i: u32| Duration::from_millis(8000 + 100 * u64::from(i));
    let t0 = Instant::now();
    let mut groups: Vec<(Duration, Group)> = (0..GROUPS)
        .map(|i| {
            let b =
                Group::builder().timeout(timeout(i)).stop(StopPolicy::new(Signal::TERM, Duration::from_millis(300)));
            (timeout(i), b.spawn(command(&["--children", "1", "--sleep", "60"])).expect("spawn the testkit"))
        })
        .collect();
    let spawned_in = t0.elapsed();
    let during = threads();
    eprintln!("threads: {before} before, {during} with {GROUPS} groups running (spawned in {spawned_in:?})");
    if before == 0 {
        eprintln!("SKIPPED the thread count: this host's toolhelp snapshot lists no threads of this process");
    } else {
        assert!(spawned_in < timeout(0), "spawning took {spawned_in:?}: no group may have ended yet");
        // The event loop is one thread; a thread per group would be
        // twenty more.
        assert!(during <= before + 2, "{during} threads with {GROUPS} groups, {before} before");
    }
    // Handles of the test's own to every process, from the ready lines
    // (each was written long before its group's deadline).
    let procs: Vec<Vec<Proc>> = groups
        .iter_mut()
        .map(|(_, g)| {
            let mut line = String::new();
            BufReader::new(g.take_stdout().expect("stdout")).read_line(&mut line).expect("read the ready line");
            Ready::parse(line.trim()).every_pid().into_iter().filter_map(Proc::open).collect()
        })
        .collect();
    for ((limit, group), procs) in groups.iter().zip(&procs) {
        let out = group.wait();
        assert_eq!(out.reason, Reason::Timeout, "group with timeout {limit:?}");
        assert!(out.duration >= *limit, "ended after {:?}, before its own timeout {limit:?}", out.duration);
        // Generous: the grace period, and a loaded host.
        assert!(out.duration < *limit + Duration::from_secs(15), "ended after {:?}, timeout {limit:?}", out.duration);
        assert_eq!(out.leftover, 0);
        assert_eq!(procs.len(), 2, "the leader and its child were open to the test");
        assert_all_gone(procs);
    }
    eprintln!("all {GROUPS} groups ended after {:?}", t0.elapsed());
}
