//! The I/O completion port that carries a job's messages.
//!
//! The kernel posts one packet per event: the message id in the byte
//! count, the job's key, and for process events the pid in place of the
//! `OVERLAPPED` pointer. The same port carries corral's own wake-ups (a
//! packet with another key), so one blocking call waits for both.
//!
//! Traps:
//! - Messages can be lost (the documentation says so), and Wine was seen to
//!   send no `ABNORMAL_EXIT_PROCESS` for terminated members. Nothing may
//!   depend on one message arriving: `ACTIVE_PROCESS_ZERO` is confirmed
//!   with the job's count, and the caller polls that count now and then.
//! - The port must be associated before the leader is assigned, or its
//!   `NEW_PROCESS` is never sent.

use super::handle::{self, check, raw};
use crate::LimitKind;
use std::io;
use std::os::windows::io::OwnedHandle;
use std::time::Duration;
use windows_sys::Win32::Foundation::{INVALID_HANDLE_VALUE, WAIT_TIMEOUT};
use windows_sys::Win32::System::SystemServices::{
    JOB_OBJECT_MSG_ABNORMAL_EXIT_PROCESS, JOB_OBJECT_MSG_ACTIVE_PROCESS_LIMIT, JOB_OBJECT_MSG_ACTIVE_PROCESS_ZERO,
    JOB_OBJECT_MSG_END_OF_JOB_TIME, JOB_OBJECT_MSG_EXIT_PROCESS, JOB_OBJECT_MSG_JOB_MEMORY_LIMIT,
    JOB_OBJECT_MSG_NEW_PROCESS, JOB_OBJECT_MSG_PROCESS_MEMORY_LIMIT,
};
use windows_sys::Win32::System::IO::{
    CreateIoCompletionPort, GetQueuedCompletionStatusEx, PostQueuedCompletionStatus, OVERLAPPED_ENTRY,
};

/// The key of the job's packets.
pub(super) const KEY_JOB: usize = 1;
/// The key of corral's wake-up packets.
const KEY_WAKE: usize = 2;

/// One packet, decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Msg {
    NewProcess(u32),
    ExitProcess(u32),
    AbnormalExit(u32),
    ActiveZero,
    Limit(LimitKind),
    Wake,
    Other(u32),
}

fn decode(e: &OVERLAPPED_ENTRY) -> Msg {
    if e.lpCompletionKey != KEY_JOB {
        return Msg::Wake;
    }
    let pid = e.lpOverlapped as usize as u32;
    match e.dwNumberOfBytesTransferred {
        JOB_OBJECT_MSG_NEW_PROCESS => Msg::NewProcess(pid),
        JOB_OBJECT_MSG_EXIT_PROCESS => Msg::ExitProcess(pid),
        JOB_OBJECT_MSG_ABNORMAL_EXIT_PROCESS => Msg::AbnormalExit(pid),
        JOB_OBJECT_MSG_ACTIVE_PROCESS_ZERO => Msg::ActiveZero,
        JOB_OBJECT_MSG_JOB_MEMORY_LIMIT => Msg::Limit(LimitKind::Memory),
        JOB_OBJECT_MSG_PROCESS_MEMORY_LIMIT => Msg::Limit(LimitKind::MemoryPerProcess),
        JOB_OBJECT_MSG_ACTIVE_PROCESS_LIMIT => Msg::Limit(LimitKind::Processes),
        JOB_OBJECT_MSG_END_OF_JOB_TIME => Msg::Limit(LimitKind::CpuTime),
        other => Msg::Other(other),
    }
}

/// A completion port, closed on drop.
pub(super) struct Port {
    handle: OwnedHandle,
}

impl Port {
    pub(super) fn new() -> io::Result<Port> {
        // SAFETY: INVALID_HANDLE_VALUE with no existing port creates a new
        // port; one concurrent thread is all the monitor needs.
        let h = unsafe { CreateIoCompletionPort(INVALID_HANDLE_VALUE, std::ptr::null_mut(), 0, 1) };
        Ok(Port { handle: handle::from_null(h)? })
    }

    pub(super) fn raw(&self) -> windows_sys::Win32::Foundation::HANDLE {
        raw(&self.handle)
    }

    /// Waits up to `timeout` (forever with `None`) for packets and returns
    /// every packet that is ready, in order; empty on timeout.
    pub(super) fn wait(&self, timeout: Option<Duration>) -> io::Result<Vec<Msg>> {
        let ms = match timeout {
            // Round up, so a short timeout does not become a busy poll.
            Some(t) => u32::try_from(t.as_micros().div_ceil(1000)).unwrap_or(u32::MAX - 1).min(u32::MAX - 1),
            None => u32::MAX,
        };
        // SAFETY: OVERLAPPED_ENTRY is plain data; zeroes are valid.
        let mut entries: [OVERLAPPED_ENTRY; 64] = unsafe { std::mem::zeroed() };
        let mut n = 0u32;
        // SAFETY: `entries` is writable for its length; `n` is writable; a
        // non-alertable wait runs no APCs.
        let ok = unsafe {
            GetQueuedCompletionStatusEx(self.raw(), entries.as_mut_ptr(), entries.len() as u32, &mut n, ms, 0)
        };
        if ok == 0 {
            let e = io::Error::last_os_error();
            if e.raw_os_error() == Some(WAIT_TIMEOUT as i32) {
                return Ok(Vec::new());
            }
            return Err(e);
        }
        Ok(entries[..n as usize].iter().map(decode).collect())
    }

    /// Makes a `wait` in another thread return.
    pub(super) fn wake(&self) -> io::Result<()> {
        // SAFETY: the port handle is live; a null OVERLAPPED is allowed for
        // packets that carry no I/O.
        check(unsafe { PostQueuedCompletionStatus(self.raw(), 0, KEY_WAKE, std::ptr::null()) })
    }
}

impl super::super::Wake for Port {
    fn wake(&self) {
        let _ = Port::wake(self);
    }
}
