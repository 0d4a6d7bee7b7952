//! The one I/O completion port that carries the messages of every job of
//! this process.
//!
//! Each group's job is associated with it under a key of its own
//! ([`new_key`]). The kernel posts one packet per event: the message id
//! in the byte count, the job's key, and for process events the pid in
//! place of the `OVERLAPPED` pointer. The same port carries corral's own
//! wake-ups, packets with a byte count of 0 (no job message has that id):
//! under a group's key they make the event loop look at that group, under
//! [`KEY_LOOP`] at its own queue. So the loop (`poller.rs`) waits for
//! every group in one kernel call.
//!
//! Traps:
//! - Messages can be lost (the documentation says so), and Wine was seen to
//!   send no `ABNORMAL_EXIT_PROCESS` for terminated members. Nothing may
//!   depend on one message arriving: `ACTIVE_PROCESS_ZERO` is confirmed
//!   with the job's count, and every group's count is polled now and then.
//! - The port must be associated before the leader is assigned, or its
//!   `NEW_PROCESS` is never sent.
//! - Packets may still be queued for a job that has ended and closed: keys
//!   are never reused, so such a packet names no group and is dropped.

use super::handle::{self, check, raw};
use crate::LimitKind;
use std::io;
use std::os::windows::io::OwnedHandle;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;
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

/// The key of the event loop's own wake-ups; groups' keys start above it.
pub(super) const KEY_LOOP: usize = 0;
/// The byte count of a wake-up packet: no job message has this id.
const WAKE: u32 = 0;

/// A key no group of this process had before.
pub(super) fn new_key() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(KEY_LOOP + 1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// The port every job of this process posts to, created on first use and
/// kept for the life of the process.
pub(super) fn shared() -> io::Result<&'static Port> {
    static PORT: OnceLock<Result<Port, i32>> = OnceLock::new();
    PORT.get_or_init(|| Port::new().map_err(|e| e.raw_os_error().unwrap_or(0)))
        .as_ref()
        .map_err(|code| io::Error::from_raw_os_error(*code))
}

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

/// The packet's key and message.
fn decode(e: &OVERLAPPED_ENTRY) -> (usize, Msg) {
    let pid = e.lpOverlapped as usize as u32;
    let msg = match e.dwNumberOfBytesTransferred {
        WAKE => Msg::Wake,
        JOB_OBJECT_MSG_NEW_PROCESS => Msg::NewProcess(pid),
        JOB_OBJECT_MSG_EXIT_PROCESS => Msg::ExitProcess(pid),
        JOB_OBJECT_MSG_ABNORMAL_EXIT_PROCESS => Msg::AbnormalExit(pid),
        JOB_OBJECT_MSG_ACTIVE_PROCESS_ZERO => Msg::ActiveZero,
        JOB_OBJECT_MSG_JOB_MEMORY_LIMIT => Msg::Limit(LimitKind::Memory),
        JOB_OBJECT_MSG_PROCESS_MEMORY_LIMIT => Msg::Limit(LimitKind::MemoryPerProcess),
        JOB_OBJECT_MSG_ACTIVE_PROCESS_LIMIT => Msg::Limit(LimitKind::Processes),
        JOB_OBJECT_MSG_END_OF_JOB_TIME => Msg::Limit(LimitKind::CpuTime),
        other => Msg::Other(other),
    };
    (e.lpCompletionKey, msg)
}

/// A completion port, closed on drop.
pub(super) struct Port {
    handle: OwnedHandle,
}

impl Port {
    fn new() -> io::Result<Port> {
        // SAFETY: INVALID_HANDLE_VALUE with no existing port creates a new
        // port; one concurrent thread is all the event loop needs.
        let h = unsafe { CreateIoCompletionPort(INVALID_HANDLE_VALUE, std::ptr::null_mut(), 0, 1) };
        Ok(Port { handle: handle::from_null(h)? })
    }

    pub(super) fn raw(&self) -> windows_sys::Win32::Foundation::HANDLE {
        raw(&self.handle)
    }

    /// Waits up to `timeout` (forever with `None`) for packets and returns
    /// the packets that are ready (up to 64), in order, with their keys;
    /// empty on timeout.
    pub(super) fn wait(&self, timeout: Option<Duration>) -> io::Result<Vec<(usize, Msg)>> {
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

    /// Makes the event loop's `wait` return with news for `key`.
    pub(super) fn wake(&self, key: usize) -> io::Result<()> {
        // SAFETY: the port handle is live; a null OVERLAPPED is allowed for
        // packets that carry no I/O.
        check(unsafe { PostQueuedCompletionStatus(self.raw(), WAKE, key, std::ptr::null()) })
    }
}

/// Wakes the event loop for one group (or, with [`KEY_LOOP`], for itself).
pub(super) struct KeyWake(pub(super) usize);

impl super::super::Wake for KeyWake {
    fn wake(&self) {
        if let Ok(port) = shared() {
            let _ = port.wake(self.0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packets_carry_their_key_and_a_wake_is_no_job_message() {
        // A port of the test's own: the shared one belongs to the event loop.
        let port = Port::new().unwrap();
        let (a, b) = (new_key(), new_key());
        assert!(a > KEY_LOOP && b > a, "keys are fresh: {a}, {b}");
        port.wake(a).unwrap();
        // What the kernel posts for a job's new process: the message id in
        // the byte count, the pid in place of the OVERLAPPED pointer.
        // SAFETY: the port is live; the "pointer" is never dereferenced.
        check(unsafe { PostQueuedCompletionStatus(port.raw(), JOB_OBJECT_MSG_NEW_PROCESS, b, 4242 as *const _) })
            .unwrap();
        port.wake(KEY_LOOP).unwrap();
        let got = port.wait(Some(Duration::from_secs(5))).unwrap();
        assert_eq!(got, vec![(a, Msg::Wake), (b, Msg::NewProcess(4242)), (KEY_LOOP, Msg::Wake)]);
        assert_eq!(port.wait(Some(Duration::ZERO)).unwrap(), Vec::new(), "nothing else was queued");
    }
}
