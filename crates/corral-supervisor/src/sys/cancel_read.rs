//! Windows: cancelling a read in flight on a pipe, from another thread.

use std::os::windows::io::AsRawHandle;
use windows_sys::Win32::System::IO::CancelIoEx;

/// Cancels every read this process has in flight on `pipe` (a synchronous
/// `ReadFile` in another thread returns `ERROR_OPERATION_ABORTED` and
/// takes nothing from the pipe). Nothing in flight: nothing happens.
pub(crate) fn cancel(pipe: &impl AsRawHandle) {
    // SAFETY: the handle is live (borrowed); a null OVERLAPPED means all
    // of this process's I/O on it.
    unsafe { CancelIoEx(pipe.as_raw_handle() as _, std::ptr::null()) };
}
