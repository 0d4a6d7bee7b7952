//! The working-set limit (`Limits::working_set`), read back from the job
//! with the test's own `QueryInformationJobObject`. Wine 8 accepts job
//! limits but answers their query with zeroes: there the test says
//! SKIPPED, and what corral passes to the job is checked by the unit test
//! of `sys::windows::job::limit_info`. Enforcement (pages trimmed past the
//! max) is the memory manager's and shows only on real Windows.

#![cfg(windows)]

mod windows_support;

use corral::{Group, Limits, WorkingSet};
use windows_support::{assert_all_gone, start, wine, JobView};
use windows_sys::Win32::System::JobObjects::{
    JobObjectExtendedLimitInformation, JOBOBJECT_EXTENDED_LIMIT_INFORMATION, JOB_OBJECT_LIMIT_WORKINGSET,
};

const MIB: u64 = 1 << 20;

#[test]
fn the_working_set_reads_back_from_the_job() {
    let kit = start(
        Group::builder().limits(Limits::new().working_set(WorkingSet::new(2 * MIB, 48 * MIB))),
        &["--sleep", "60"],
    );
    let info: JOBOBJECT_EXTENDED_LIMIT_INFORMATION =
        JobView::open(&kit.group).query(JobObjectExtendedLimitInformation).expect("query the job's limits");
    kit.group.kill().unwrap();
    assert_eq!(kit.group.wait().leftover, 0);
    assert_all_gone(&kit.procs);
    let b = info.BasicLimitInformation;
    if wine() && b.LimitFlags == 0 {
        eprintln!("SKIPPED read-back under Wine (real Windows only): QueryInformationJobObject returns zeroes");
        return;
    }
    assert_ne!(b.LimitFlags & JOB_OBJECT_LIMIT_WORKINGSET, 0, "flags {:#x}", b.LimitFlags);
    assert_eq!(b.MinimumWorkingSetSize as u64, 2 * MIB);
    assert_eq!(b.MaximumWorkingSetSize as u64, 48 * MIB);
}

#[test]
fn a_working_set_whose_min_is_above_its_max_is_refused_before_anything_starts() {
    let e = Group::builder()
        .limits(Limits::new().working_set(WorkingSet::new(64 * MIB, MIB)))
        .spawn(windows_support::command(&["--sleep", "1"]))
        .unwrap_err();
    assert_eq!(e.kind(), corral::ErrorKind::InvalidInput, "{e}");
    assert!(e.to_string().contains("is above its max"), "{e}");
}
