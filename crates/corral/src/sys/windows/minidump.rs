//! A minidump of one live process (`MiniDumpWriteDump`), the Windows half
//! of a diagnostic snapshot.
//!
//! Traps:
//! - DbgHelp is single-threaded: every call into it is serialised here.
//! - A full-memory dump of a large service can be gigabytes and stalls
//!   the process while it is written. corral writes threads, stacks, the
//!   memory they point to, handles and the memory map, which is what a
//!   hang or a leak is diagnosed from, in megabytes.
//! - A failed write leaves a truncated file that debuggers choke on; it is
//!   removed.

use super::handle;
use std::io;
use std::os::windows::io::AsRawHandle;
use std::path::Path;
use std::sync::Mutex;
use windows_sys::Win32::System::Diagnostics::Debug::{
    MiniDumpWithDataSegs, MiniDumpWithFullMemoryInfo, MiniDumpWithHandleData, MiniDumpWithIndirectlyReferencedMemory,
    MiniDumpWithThreadInfo, MiniDumpWithUnloadedModules, MiniDumpWriteDump,
};
use windows_sys::Win32::System::Threading::{
    OpenProcess, PROCESS_DUP_HANDLE, PROCESS_QUERY_INFORMATION, PROCESS_VM_READ,
};

static DBGHELP: Mutex<()> = Mutex::new(());

/// Writes a minidump of `pid` to `path` (created or replaced).
pub(crate) fn write(pid: u32, path: &Path) -> io::Result<()> {
    // SAFETY: OpenProcess takes no pointers; the result is checked.
    let process = handle::from_null(unsafe {
        OpenProcess(PROCESS_QUERY_INFORMATION | PROCESS_VM_READ | PROCESS_DUP_HANDLE, 0, pid)
    })?;
    let file = std::fs::File::create(path)?;
    let kind = MiniDumpWithDataSegs
        | MiniDumpWithHandleData
        | MiniDumpWithIndirectlyReferencedMemory
        | MiniDumpWithUnloadedModules
        | MiniDumpWithFullMemoryInfo
        | MiniDumpWithThreadInfo;
    let ok = {
        let _one_at_a_time = DBGHELP.lock().unwrap_or_else(|p| p.into_inner());
        // SAFETY: both handles are open for the call's duration; the
        // optional parameters are null, which the API allows.
        unsafe {
            MiniDumpWriteDump(
                handle::raw(&process),
                pid,
                file.as_raw_handle(),
                kind,
                std::ptr::null(),
                std::ptr::null(),
                std::ptr::null(),
            )
        }
    };
    if ok == 0 {
        // MiniDumpWriteDump reports an HRESULT through GetLastError.
        let err = io::Error::last_os_error();
        drop(file);
        let _ = std::fs::remove_file(path);
        return Err(err);
    }
    file.sync_all()
}
