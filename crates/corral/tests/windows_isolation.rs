//! Windows isolation: the job's UI restrictions, read back from the job
//! with the test's own `QueryInformationJobObject` on real Windows. Wine
//! accepts them (the group would not exist otherwise) but refuses the
//! query or answers it with zeroes: there the test says so and checks the refusal of
//! Linux-only isolation instead, which Wine runs for real.

#![cfg(windows)]

mod windows_support;

use corral::{ErrorKind, Group, Isolation};
use windows_support::{start, wine, JobView};
use windows_sys::Win32::System::JobObjects::{JobObjectBasicUIRestrictions, JOBOBJECT_BASIC_UI_RESTRICTIONS};

#[test]
fn ui_restrictions_are_set_on_the_job() {
    let kit = start(Group::builder().isolate(Isolation::new().ui_restrictions(true)), &["--sleep", "60"]);
    let info: std::io::Result<JOBOBJECT_BASIC_UI_RESTRICTIONS> =
        JobView::open(&kit.group).query(JobObjectBasicUIRestrictions);
    kit.group.kill().unwrap();
    assert_eq!(kit.group.wait().leftover, 0);
    // Wine refuses this query ("Invalid function") or answers zeroes.
    if wine() && info.as_ref().map_or(true, |i| i.UIRestrictionsClass == 0) {
        let got = info.as_ref().map(|i| i.UIRestrictionsClass);
        eprintln!("SKIPPED read-back under Wine (real Windows only): QueryInformationJobObject gives {got:?}");
        return;
    }
    let info = info.expect("query the job's UI restrictions");
    // Every JOB_OBJECT_UILIMIT_* flag, 0x01 through 0x80.
    assert_eq!(info.UIRestrictionsClass, 0xff, "{:#x}", info.UIRestrictionsClass);
}

#[test]
fn linux_only_isolation_is_refused_on_windows() {
    let e = Group::builder()
        .isolate(Isolation::new().pid(true))
        .spawn(windows_support::command(&["--sleep", "1"]))
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unsupported, "{e}");
    assert!(e.to_string().contains("Linux-only"), "{e}");
}
