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
//!
//! A leader with a token of its own (`Isolation::token`) is created by
//! `CreateProcessAsUserW` instead (`create_as_user.rs`), then goes through
//! the same assignment and resume.

use super::error;
use super::job::Job;
use super::{create_as_user, ntdll, token};
use crate::sys::Spawned;
use crate::{Error, ErrorKind, Result, SpawnPath, Token};
use std::os::windows::io::{AsHandle, AsRawHandle, OwnedHandle};
use std::os::windows::process::CommandExt;
use std::process::{Child, Command};
use std::time::Duration;
use windows_sys::Win32::System::Threading::{
    TerminateProcess, WaitForSingleObject, CREATE_NEW_PROCESS_GROUP, CREATE_NO_WINDOW, CREATE_SUSPENDED,
};

/// Exit code of a leader that corral terminated before it ran.
const NEVER_RAN: u32 = 1;

/// How long a leader terminated before it ran may take to end.
const ABORT_WAIT: Duration = Duration::from_secs(5);

/// The running leader, and a handle of corral's own to it.
pub(super) struct Leader {
    pub spawned: Spawned,
    pub handle: OwnedHandle,
}

fn flags() -> u32 {
    let no_window = if super::console::has_console() { 0 } else { CREATE_NO_WINDOW };
    CREATE_SUSPENDED | CREATE_NEW_PROCESS_GROUP | no_window
}

/// Starts `cmd` under a `token` of its own (see the module docs).
pub(super) fn spawn_in_job_as(
    job: &Job,
    cmd: crate::command::Leader,
    env: &[(&str, &str)],
    kind: Token,
) -> Result<Leader> {
    let crate::command::Leader::Own(cmd) = cmd else {
        return Err(Error::new(ErrorKind::InvalidInput, format!("a {kind} token needs a corral::Command leader"))
            .hint("std's Command keeps its stdio private; build the leader with corral::Command"));
    };
    let program = cmd.get_program().to_string_lossy().into_owned();
    let token = token::for_leader(kind).map_err(|e| error::os(format!("making the leader's {kind} token"), e))?;
    let c = create_as_user::create_suspended(&token, cmd, env, flags()).map_err(|e| error::spawn(&program, e))?;
    let abort = |h: &OwnedHandle| {
        // SAFETY: `h` is the live, still suspended process, with
        // PROCESS_TERMINATE and SYNCHRONIZE (CreateProcess grants all).
        unsafe {
            TerminateProcess(h.as_raw_handle(), NEVER_RAN);
            WaitForSingleObject(h.as_raw_handle(), ABORT_WAIT.as_millis() as u32);
        }
    };
    if let Err(e) = job.assign(c.process.as_raw_handle()) {
        abort(&c.process);
        return Err(error::assign(e));
    }
    if let Err(e) = ntdll::resume_process(c.process.as_raw_handle()) {
        abort(&c.process);
        return Err(error::os("resuming the leader (NtResumeProcess)", e));
    }
    let spawned =
        Spawned { pid: c.pid, stdin: c.stdin, stdout: c.stdout, stderr: c.stderr, path: SpawnPath::CreateProcess };
    Ok(Leader { spawned, handle: c.process })
}

pub(super) fn spawn_in_job(job: &Job, mut cmd: Command, env: &[(&str, &str)]) -> Result<Leader> {
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.creation_flags(flags());
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
    Ok(Leader { spawned: Spawned::from_child(child, SpawnPath::CreateProcess), handle })
}
