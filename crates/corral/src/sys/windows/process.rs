//! Single processes: open by pid, ask whether they live, what they are.
//!
//! Traps:
//! - A pid can be reused as soon as the last handle to a dead process
//!   closes. Holding a handle pins the pid; a pid alone proves nothing, so
//!   anything opened by pid is checked against the job before it is
//!   trusted as a member.
//! - Exit code 259 (`STILL_ACTIVE`) is also a legal exit code. Whether a
//!   process ended is asked of its handle (signalled or not), never of
//!   `GetExitCodeProcess` alone.

use super::handle::{self, check, from_wide, raw};
use std::io;
use std::mem::{size_of, zeroed};
use std::os::windows::io::OwnedHandle;
use std::path::PathBuf;
use windows_sys::Wdk::System::Threading::{
    NtQueryInformationProcess, ProcessBasicInformation, ProcessCommandLineInformation,
};
use windows_sys::Win32::Foundation::{FILETIME, HANDLE, UNICODE_STRING, WAIT_OBJECT_0};
use windows_sys::Win32::System::Diagnostics::ToolHelp::{
    CreateToolhelp32Snapshot, Process32FirstW, Process32NextW, PROCESSENTRY32W, TH32CS_SNAPPROCESS,
};
use windows_sys::Win32::System::ProcessStatus::{
    K32GetProcessMemoryInfo, PROCESS_MEMORY_COUNTERS, PROCESS_MEMORY_COUNTERS_EX,
};
use windows_sys::Win32::System::RemoteDesktop::ProcessIdToSessionId;
use windows_sys::Win32::System::Threading::{
    GetExitCodeProcess, GetProcessTimes, OpenProcess, QueryFullProcessImageNameW, WaitForSingleObject,
    PROCESS_BASIC_INFORMATION, PROCESS_NAME_WIN32, PROCESS_QUERY_INFORMATION, PROCESS_QUERY_LIMITED_INFORMATION,
    PROCESS_SYNCHRONIZE,
};

/// Enough access to wait for a process and query it; granted for any
/// process of the same user without elevation.
const WATCH: u32 = PROCESS_SYNCHRONIZE | PROCESS_QUERY_LIMITED_INFORMATION;

/// Opens `pid` for watching. Full query access is asked first: Wine's
/// `IsProcessInJob` refuses the limited right.
pub(super) fn open(pid: u32) -> io::Result<OwnedHandle> {
    // SAFETY: OpenProcess takes no pointers; the result is checked.
    handle::from_null(unsafe { OpenProcess(WATCH | PROCESS_QUERY_INFORMATION, 0, pid) })
        // SAFETY: as above.
        .or_else(|_| handle::from_null(unsafe { OpenProcess(WATCH, 0, pid) }))
}

/// When the process was created, in 100 ns ticks since 1601: with the pid
/// it names one process across pid reuse (and tells a parent from a
/// process that later got its pid).
pub(super) fn created(h: HANDLE) -> Option<u64> {
    let z = FILETIME { dwLowDateTime: 0, dwHighDateTime: 0 };
    let (mut c, mut e, mut k, mut u) = (z, z, z, z);
    // SAFETY: `h` is live with query rights; the four FILETIMEs are writable.
    let ok = unsafe { GetProcessTimes(h, &mut c, &mut e, &mut k, &mut u) };
    (ok != 0).then(|| (u64::from(c.dwHighDateTime) << 32) | u64::from(c.dwLowDateTime))
}

/// `Some(code)` once the process has ended, `None` while it runs.
pub(super) fn exit_code(h: HANDLE) -> Option<u32> {
    // SAFETY: `h` is a live process handle with SYNCHRONIZE.
    if unsafe { WaitForSingleObject(h, 0) } != WAIT_OBJECT_0 {
        return None;
    }
    let mut code = 0u32;
    // SAFETY: `h` is live with PROCESS_QUERY_LIMITED_INFORMATION.
    check(unsafe { GetExitCodeProcess(h, &mut code) }).ok()?;
    Some(code)
}

/// Whether the process behind an open handle still runs.
pub(super) fn running(h: &OwnedHandle) -> bool {
    running_raw(raw(h))
}

pub(super) fn running_raw(h: HANDLE) -> bool {
    exit_code(h).is_none()
}

fn memory_counters(h: HANDLE) -> Option<PROCESS_MEMORY_COUNTERS_EX> {
    // SAFETY: plain C struct.
    let mut c: PROCESS_MEMORY_COUNTERS_EX = unsafe { zeroed() };
    c.cb = size_of::<PROCESS_MEMORY_COUNTERS_EX>() as u32;
    // SAFETY: `c` is writable for `cb` bytes; the _EX struct starts with
    // the base struct, as the API expects.
    let ok = unsafe {
        K32GetProcessMemoryInfo(h, (&mut c as *mut PROCESS_MEMORY_COUNTERS_EX).cast::<PROCESS_MEMORY_COUNTERS>(), c.cb)
    };
    (ok != 0).then_some(c)
}

/// Committed private memory (what job memory limits count).
pub(super) fn private_bytes(h: HANDLE) -> Option<u64> {
    memory_counters(h).map(|c| c.PrivateUsage as u64)
}

/// The full path of the process's executable.
pub(super) fn image(h: HANDLE) -> Option<PathBuf> {
    let mut buf = vec![0u16; 1024];
    let mut len = buf.len() as u32;
    // SAFETY: `buf` is writable for `len` u16s; `len` is in/out.
    check(unsafe { QueryFullProcessImageNameW(h, PROCESS_NAME_WIN32, buf.as_mut_ptr(), &mut len) }).ok()?;
    Some(PathBuf::from(from_wide(&buf[..len as usize])))
}

/// The parent pid recorded at creation (the parent may be gone, and its
/// pid reused since).
pub(super) fn parent(h: HANDLE) -> Option<u32> {
    // SAFETY: plain C struct.
    let mut info: PROCESS_BASIC_INFORMATION = unsafe { zeroed() };
    // SAFETY: `info` is writable for its size; the class matches the struct.
    let status = unsafe {
        NtQueryInformationProcess(
            h,
            ProcessBasicInformation,
            (&mut info as *mut PROCESS_BASIC_INFORMATION).cast(),
            size_of::<PROCESS_BASIC_INFORMATION>() as u32,
            std::ptr::null_mut(),
        )
    };
    (status >= 0).then_some(info.InheritedFromUniqueProcessId as u32)
}

/// The command line (Windows 8.1 and later, and Wine).
pub(super) fn command_line(h: HANDLE) -> Option<String> {
    // A UNICODE_STRING followed by its characters; usize keeps alignment.
    let mut buf = vec![0usize; 8192 / size_of::<usize>()];
    let bytes = (buf.len() * size_of::<usize>()) as u32;
    let mut needed = 0u32;
    // SAFETY: `buf` is writable for `bytes` bytes and aligned for
    // UNICODE_STRING; the class fills it with a UNICODE_STRING whose
    // buffer points into `buf`.
    let status = unsafe {
        NtQueryInformationProcess(h, ProcessCommandLineInformation, buf.as_mut_ptr().cast(), bytes, &mut needed)
    };
    if status < 0 {
        return None;
    }
    // SAFETY: on success `buf` starts with an initialised UNICODE_STRING.
    let us: UNICODE_STRING = unsafe { std::ptr::read(buf.as_ptr().cast()) };
    if us.Buffer.is_null() || us.Length == 0 {
        return None;
    }
    let start = buf.as_ptr() as usize;
    let end = start + bytes as usize;
    let p = us.Buffer as usize;
    if p < start || p + us.Length as usize > end {
        return None;
    }
    // SAFETY: the characters lie inside `buf` (checked just above).
    let chars = unsafe { std::slice::from_raw_parts(us.Buffer, us.Length as usize / 2) };
    Some(String::from_utf16_lossy(chars))
}

/// The terminal-services session the process runs in.
pub(super) fn session(pid: u32) -> Option<u32> {
    let mut s = 0u32;
    // SAFETY: `s` is writable.
    check(unsafe { ProcessIdToSessionId(pid, &mut s) }).ok()?;
    Some(s)
}

/// One row of a Toolhelp snapshot.
pub(super) struct Entry {
    pub pid: u32,
    pub ppid: u32,
    pub name: String,
}

/// Every process on the host, with its parent pid.
pub(super) fn snapshot() -> io::Result<Vec<Entry>> {
    // SAFETY: no pointers; the result is checked.
    let snap = handle::from_invalid(unsafe { CreateToolhelp32Snapshot(TH32CS_SNAPPROCESS, 0) })?;
    // SAFETY: plain C struct.
    let mut e: PROCESSENTRY32W = unsafe { zeroed() };
    e.dwSize = size_of::<PROCESSENTRY32W>() as u32;
    let mut out = Vec::new();
    // SAFETY: `snap` is a live snapshot; `e` is writable with dwSize set.
    let mut ok = unsafe { Process32FirstW(raw(&snap), &mut e) };
    while ok != 0 {
        out.push(Entry { pid: e.th32ProcessID, ppid: e.th32ParentProcessID, name: from_wide(&e.szExeFile) });
        // SAFETY: as above.
        ok = unsafe { Process32NextW(raw(&snap), &mut e) };
    }
    Ok(out)
}
