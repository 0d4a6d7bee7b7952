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

/// How many names [`create_named`] tries before it gives up.
const NAME_TRIES: u32 = 16;

/// Creates a *new* named object (job, event) through `create`, which gets
/// a NUL-terminated name and returns the `Create*W` result. Names are
/// `<base>`, then `<base>.1`, `<base>.2`, ... while the name is taken, so
/// a namesake never becomes ours.
///
/// Why: names are made of the controller's pid, and pids are reused (Wine
/// hands freed ids out again readily). A job of a dead controller lives on, name
/// and all, while a member of it is alive or while anyone holds a handle to
/// one (Wine); a new controller with the same pid then found "its" name
/// taken, and its spawn failed (the Wine flake of
/// `windows_controller::kill_on_controller_death`). The namesake's handle
/// opened here is closed at once; for a job that may be its last handle,
/// and `KILL_ON_JOB_CLOSE` then ends the dead controller's leftovers.
pub(super) fn create_named(base: &str, create: impl Fn(*const u16) -> HANDLE) -> io::Result<(OwnedHandle, String)> {
    use windows_sys::Win32::Foundation::{GetLastError, ERROR_ALREADY_EXISTS};
    for n in 0..NAME_TRIES {
        let name = if n == 0 { base.to_string() } else { format!("{base}.{n}") };
        let w = wide(&name);
        let h = from_null(create(w.as_ptr()))?;
        // SAFETY: GetLastError has no preconditions; Create*W sets
        // ERROR_ALREADY_EXISTS when it opened an existing object.
        if unsafe { GetLastError() } != ERROR_ALREADY_EXISTS {
            return Ok((h, name));
        }
    }
    Err(io::Error::new(
        io::ErrorKind::AlreadyExists,
        format!("{base} and {} more names like it are taken", NAME_TRIES - 1),
    ))
}

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
