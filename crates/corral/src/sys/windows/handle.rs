//! Owned handles and the small conversions every Win32 call needs.
//!
//! Every handle corral opens lives in std's `OwnedHandle`, which closes it
//! on drop. Win32 reports failure with two different sentinels (NULL for
//! most objects, `INVALID_HANDLE_VALUE` for snapshots and files); the two
//! constructors here keep them apart.

use std::ffi::OsStr;
use std::io;
use std::os::windows::ffi::OsStrExt;
use std::os::windows::io::{AsRawHandle, FromRawHandle, OwnedHandle};
use windows_sys::Win32::Foundation::{HANDLE, INVALID_HANDLE_VALUE};

/// Takes ownership of a handle from an API that returns NULL on failure.
pub(super) fn from_null(h: HANDLE) -> io::Result<OwnedHandle> {
    if h.is_null() {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the caller got `h` from a call that just created or opened it
    // for us, so nobody else owns it.
    Ok(unsafe { OwnedHandle::from_raw_handle(h) })
}

/// Takes ownership of a handle from an API that returns
/// `INVALID_HANDLE_VALUE` on failure.
pub(super) fn from_invalid(h: HANDLE) -> io::Result<OwnedHandle> {
    if h == INVALID_HANDLE_VALUE || h.is_null() {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: as in `from_null`.
    Ok(unsafe { OwnedHandle::from_raw_handle(h) })
}

/// The raw value of an owned handle, for passing to Win32.
pub(super) fn raw(h: &OwnedHandle) -> HANDLE {
    h.as_raw_handle()
}

/// A NUL-terminated UTF-16 string.
pub(super) fn wide(s: impl AsRef<OsStr>) -> Vec<u16> {
    s.as_ref().encode_wide().chain(Some(0)).collect()
}

/// A UTF-16 buffer up to its first NUL, as a `String` (lossy).
pub(super) fn from_wide(buf: &[u16]) -> String {
    let end = buf.iter().position(|c| *c == 0).unwrap_or(buf.len());
    String::from_utf16_lossy(&buf[..end])
}

/// `Ok(())` when a `BOOL` result is true, else the thread's last error.
pub(super) fn check(ok: i32) -> io::Result<()> {
    if ok != 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}
