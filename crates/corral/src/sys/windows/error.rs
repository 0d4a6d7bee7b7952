//! Win32 errors (`GetLastError`) turned into corral errors with a hint.
//!
//! `io::Error::last_os_error()` already carries the code and the system's
//! message; what it lacks is what a person can do about it, which depends
//! on the call that failed.

use crate::{Error, ErrorKind};
use std::io;
use windows_sys::Win32::Foundation::{
    ERROR_ACCESS_DENIED, ERROR_BAD_EXE_FORMAT, ERROR_DIRECTORY, ERROR_ELEVATION_REQUIRED,
    ERROR_EXE_MACHINE_TYPE_MISMATCH, ERROR_FILE_NOT_FOUND, ERROR_INVALID_PARAMETER, ERROR_NOT_SUPPORTED,
    ERROR_PATH_NOT_FOUND,
};

fn code(e: &io::Error) -> Option<u32> {
    e.raw_os_error().map(|c| c as u32)
}

/// True for `ERROR_ACCESS_DENIED`.
pub(super) fn is_access_denied(e: &io::Error) -> bool {
    code(e) == Some(ERROR_ACCESS_DENIED)
}

/// `CreateProcessW` failed for `program`.
pub(super) fn spawn(program: &str, e: io::Error) -> Error {
    // std searches PATH itself and reports a miss as a bare NotFound; give
    // it the code CreateProcessW would have set.
    let e = if e.kind() == io::ErrorKind::NotFound && e.raw_os_error().is_none() {
        io::Error::from_raw_os_error(ERROR_FILE_NOT_FOUND as i32)
    } else {
        e
    };
    match code(&e) {
        Some(ERROR_FILE_NOT_FOUND | ERROR_PATH_NOT_FOUND) => Error::os(format!("command not found: {program}"), e)
            .with_kind(ErrorKind::NotFound)
            .hint("check the spelling and PATH (a script needs its interpreter, e.g. `cmd /c x.bat`)"),
        Some(ERROR_ELEVATION_REQUIRED) => Error::os(format!("cannot execute {program}"), e)
            .with_kind(ErrorKind::NotExecutable)
            .hint("the program asks for elevation (UAC); run corral from an elevated prompt"),
        Some(ERROR_ACCESS_DENIED | ERROR_BAD_EXE_FORMAT | ERROR_EXE_MACHINE_TYPE_MISMATCH | ERROR_DIRECTORY) => {
            Error::os(format!("cannot execute {program}"), e)
                .with_kind(ErrorKind::NotExecutable)
                .hint("check that it is a Windows program for this machine and that you may run it")
        }
        _ => Error::os(format!("starting {program}"), e),
    }
}

/// `AssignProcessToJobObject` failed.
pub(super) fn assign(e: io::Error) -> Error {
    if is_access_denied(&e) {
        Error::os("AssignProcessToJobObject", e).with_kind(ErrorKind::PermissionDenied).hint(
            "access denied (the parent job forbids breakaway): corral runs inside a job that cannot be nested \
                 (before Windows 8) or that does not allow breakaway; run corral outside that job, or have its \
                 owner set JOB_OBJECT_LIMIT_BREAKAWAY_OK",
        )
    } else {
        Error::os("AssignProcessToJobObject", e)
    }
}

/// Setting the job's limits failed.
pub(super) fn limits(what: &str, e: io::Error) -> Error {
    let hint = match code(&e) {
        Some(ERROR_INVALID_PARAMETER | ERROR_NOT_SUPPORTED) => {
            "this Windows version does not accept that job limit (CPU rate control needs Windows 8 or later)"
        }
        Some(ERROR_ACCESS_DENIED) => "a parent job holds a stricter limit that a nested job may not relax",
        _ => "run `corral doctor` to see what this host enforces, or drop that limit",
    };
    Error::os(format!("setting the job's {what}"), e).hint(hint)
}

/// Any other Win32 failure, with context and a hint for access denied.
pub(super) fn os(what: impl Into<String>, e: io::Error) -> Error {
    if is_access_denied(&e) {
        Error::os(what, e).hint(
            "access denied: the process may belong to another user or run elevated; run corral from an elevated \
             prompt (UAC) or as that user",
        )
    } else {
        Error::os(what, e)
    }
}
