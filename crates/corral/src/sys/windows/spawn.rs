//! Starting the leader inside the job before it runs one instruction.
//!
//! The leader is created with `CREATE_SUSPENDED | CREATE_NEW_PROCESS_GROUP`
//! through std (which keeps stdio, environment and quoting right), assigned
//! to the job while its only thread is still suspended, and then resumed
//! with `NtResumeProcess`. Why this way:
//! - std does not expose the main thread handle, and a Toolhelp thread
//!   snapshot to find it costs hundreds of ms on a host with thousands of
//!   threads; `NtResumeProcess` needs only the process handle.
//! - `PROC_THREAD_ATTRIBUTE_JOB_LIST` would mean rewriting std's
//!   `CreateProcessW` call (quoting, environment block, stdio handles), and
//!   it needs Windows 10.
//!
//! Traps: `creation_flags` replaces, not adds to, any flags the caller set.
//! A console program started by a process that has no console (a service,
//! `corral up -d`) gets a console of its own, a visible window per service
//! on a desktop: without a console corral adds `CREATE_NO_WINDOW`, so the
//! leader's console exists but is never shown.
//! If the assignment fails, the suspended child is terminated before it
//! ever ran, so nothing escapes.

use super::error;
use super::job::Job;
use super::ntdll;
use crate::Result;
use std::os::windows::io::{AsHandle, AsRawHandle, OwnedHandle};
use std::os::windows::process::CommandExt;
use std::process::{Child, Command};
use windows_sys::Win32::System::Threading::{
    TerminateProcess, CREATE_NEW_PROCESS_GROUP, CREATE_NO_WINDOW, CREATE_SUSPENDED,
};

/// Exit code of a leader that corral terminated before it ran.
const NEVER_RAN: u32 = 1;

/// The running leader, and a handle of corral's own to it.
pub(super) struct Leader {
    pub child: Child,
    pub handle: OwnedHandle,
}

pub(super) fn spawn_in_job(job: &Job, mut cmd: Command, env: &[(&str, &str)]) -> Result<Leader> {
    for (k, v) in env {
        cmd.env(k, v);
    }
    let no_window = if super::console::has_console() { 0 } else { CREATE_NO_WINDOW };
    cmd.creation_flags(CREATE_SUSPENDED | CREATE_NEW_PROCESS_GROUP | no_window);
    let program = cmd.get_program().to_string_lossy().into_owned();
    let mut child = cmd.spawn().map_err(|e| error::spawn(&program, e))?;
    let abort = |child: &mut Child| {
        // SAFETY: the child's handle is live (std owns it) and has
        // PROCESS_TERMINATE; the process is still suspended.
        unsafe { TerminateProcess(child.as_raw_handle(), NEVER_RAN) };
        let _ = child.wait();
    };
    if let Err(e) = job.assign(child.as_raw_handle()) {
        abort(&mut child);
        return Err(error::assign(e));
    }
    let handle = match child.as_handle().try_clone_to_owned() {
        Ok(h) => h,
        Err(e) => {
            abort(&mut child);
            return Err(error::os("duplicating the leader's handle", e));
        }
    };
    if let Err(e) = ntdll::resume_process(child.as_raw_handle()) {
        abort(&mut child);
        return Err(error::os("resuming the leader (NtResumeProcess)", e));
    }
    Ok(Leader { child, handle })
}
