//! What the Windows tests of the `corral` binary share: the binary, Wine
//! detection, the test's own process handles (which prove pids gone and
//! keep them from being reused meanwhile), polling, and the testkit's
//! ready lines in a service log.

#![allow(dead_code)]

use std::path::Path;
use std::time::{Duration, Instant};
use windows_sys::Win32::Foundation::{CloseHandle, HANDLE, STILL_ACTIVE, WAIT_OBJECT_0};
use windows_sys::Win32::System::LibraryLoader::{GetModuleHandleW, GetProcAddress};
use windows_sys::Win32::System::Threading::{
    GetExitCodeProcess, OpenProcess, WaitForSingleObject, PROCESS_QUERY_LIMITED_INFORMATION, PROCESS_SYNCHRONIZE,
};

pub const CORRAL: &str = env!("CARGO_BIN_EXE_corral");

/// Whether this runs under Wine (ntdll exports `wine_get_version` there).
pub fn wine() -> bool {
    let name: Vec<u16> = "ntdll.dll\0".encode_utf16().collect();
    // SAFETY: NUL-terminated name; ntdll is always loaded.
    let m = unsafe { GetModuleHandleW(name.as_ptr()) };
    // SAFETY: `m` is ntdll's handle (or null, which fails cleanly).
    !m.is_null() && unsafe { GetProcAddress(m, c"wine_get_version".as_ptr().cast()) }.is_some()
}

/// Runs `cmd` to its end. Under Wine, `CreateProcess` now and then fails
/// with ERROR_INTERNAL_ERROR (1359) while the wineserver is busy (seen
/// in CI while other tests installed services): nothing started then, so
/// the launch is tried again, at most five times. Anything else fails.
pub fn output(cmd: &mut std::process::Command) -> std::process::Output {
    let mut tries = 0;
    loop {
        match cmd.output() {
            Err(e) if e.raw_os_error() == Some(1359) && wine() && tries < 4 => {
                tries += 1;
                std::thread::sleep(Duration::from_millis(200));
            }
            r => return r.unwrap_or_else(|e| panic!("run {:?}: {e}", cmd.get_program())),
        }
    }
}

/// The test's own handle on a process.
pub struct Proc {
    pub pid: u32,
    h: HANDLE,
}

impl Proc {
    pub fn open(pid: u32) -> Proc {
        // SAFETY: no pointers; the result is checked.
        let h = unsafe { OpenProcess(PROCESS_SYNCHRONIZE | PROCESS_QUERY_LIMITED_INFORMATION, 0, pid) };
        assert!(!h.is_null(), "process {pid} should be alive: {}", std::io::Error::last_os_error());
        Proc { pid, h }
    }

    pub fn running(&self) -> bool {
        let mut code = 0u32;
        // SAFETY: our live handle; `code` is writable.
        assert!(unsafe { GetExitCodeProcess(self.h, &mut code) } != 0);
        // SAFETY: as above; 259 is also a legal exit code, the handle decides.
        code == STILL_ACTIVE as u32 && unsafe { WaitForSingleObject(self.h, 0) } != WAIT_OBJECT_0
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        // SAFETY: opened by us, closed once.
        unsafe { CloseHandle(self.h) };
    }
}

pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Polls `f` every 50 ms until it gives a value or `secs` pass.
pub fn until<T>(secs: u64, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let end = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < end, "timed out after {secs}s waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The pids of the testkit's `nth` ready line (from 0) in a service log.
pub fn ready_pids(log: &Path, nth: usize) -> Option<Vec<u32>> {
    let text = std::fs::read_to_string(log).ok()?;
    let line = text.lines().filter(|l| l.contains("\"ready\":true")).nth(nth)?;
    let json: serde_json::Value = serde_json::from_str(&line[line.find('{')?..]).ok()?;
    let mut pids = vec![json["pid"].as_u64()? as u32];
    pids.extend(json["all"].as_array()?.iter().filter_map(|v| v.as_u64()).map(|p| p as u32));
    Some(pids)
}
