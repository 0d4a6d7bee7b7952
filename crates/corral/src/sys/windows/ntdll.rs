//! The few ntdll exports that have no Win32 wrapper, looked up at run time.
//!
//! - `NtResumeProcess` resumes every thread of a suspended process in one
//!   call. std creates the leader suspended but does not give out its main
//!   thread handle, and walking a Toolhelp thread snapshot to find it is
//!   slow on busy hosts (hundreds of ms with thousands of threads).
//! - `wine_get_version` exists only under Wine: its presence is how corral
//!   knows that job limits are accepted but not enforced.
//! - `RtlGetVersion` tells the real Windows version (`GetVersionExW` lies
//!   to programs without a manifest).

use std::ffi::{c_char, CStr};
use std::io;
use std::sync::OnceLock;
use windows_sys::Win32::Foundation::{HANDLE, NTSTATUS};
use windows_sys::Win32::System::LibraryLoader::{GetModuleHandleW, GetProcAddress};
use windows_sys::Win32::System::SystemInformation::OSVERSIONINFOW;

/// What `GetProcAddress` returns, before it is given its real type.
type RawFn = unsafe extern "system" fn() -> isize;
type ResumeFn = unsafe extern "system" fn(HANDLE) -> NTSTATUS;
type WineVersionFn = unsafe extern "C" fn() -> *const c_char;
type RtlGetVersionFn = unsafe extern "system" fn(*mut OSVERSIONINFOW) -> NTSTATUS;

/// The address of an ntdll export, or `None`.
fn symbol(name: &CStr) -> Option<RawFn> {
    static NTDLL: OnceLock<usize> = OnceLock::new();
    let module = *NTDLL.get_or_init(|| {
        let name = super::handle::wide("ntdll.dll");
        // SAFETY: `name` is NUL-terminated; ntdll is mapped into every
        // process and never unloaded, so the module handle stays valid.
        unsafe { GetModuleHandleW(name.as_ptr()) as usize }
    });
    if module == 0 {
        return None;
    }
    // SAFETY: `module` is ntdll's base address and `name` is NUL-terminated.
    unsafe { GetProcAddress(module as _, name.as_ptr().cast()) }
}

/// Resumes every thread of `process` (which needs PROCESS_SUSPEND_RESUME).
pub(super) fn resume_process(process: HANDLE) -> io::Result<()> {
    static F: OnceLock<Option<ResumeFn>> = OnceLock::new();
    // SAFETY: NtResumeProcess has had this signature since Windows XP.
    let f = F.get_or_init(|| symbol(c"NtResumeProcess").map(|p| unsafe { std::mem::transmute::<RawFn, ResumeFn>(p) }));
    let Some(f) = f else {
        return Err(io::Error::new(io::ErrorKind::Unsupported, "ntdll has no NtResumeProcess"));
    };
    // SAFETY: `process` is a live process handle owned by the caller.
    let status = unsafe { f(process) };
    if status >= 0 {
        Ok(())
    } else {
        Err(io::Error::other(format!("NtResumeProcess failed with NTSTATUS {:#010x}", status as u32)))
    }
}

/// The Wine version when running under Wine, else `None`.
pub(super) fn wine_version() -> Option<&'static str> {
    static V: OnceLock<Option<String>> = OnceLock::new();
    V.get_or_init(|| {
        let p = symbol(c"wine_get_version")?;
        // SAFETY: Wine exports `const char *wine_get_version(void)` (cdecl,
        // which is the only x64 convention).
        let f = unsafe { std::mem::transmute::<RawFn, WineVersionFn>(p) };
        // SAFETY: it returns a static NUL-terminated string, or NULL.
        let s = unsafe { f() };
        if s.is_null() {
            return Some("unknown".to_string());
        }
        // SAFETY: non-null, NUL-terminated and static, per Wine's contract.
        Some(unsafe { CStr::from_ptr(s) }.to_string_lossy().into_owned())
    })
    .as_deref()
}

/// `(major, minor, build)` of the running Windows (as Wine pretends).
pub(super) fn windows_version() -> Option<(u32, u32, u32)> {
    let p = symbol(c"RtlGetVersion")?;
    // SAFETY: RtlGetVersion has had this signature since Windows 2000.
    let f = unsafe { std::mem::transmute::<RawFn, RtlGetVersionFn>(p) };
    // SAFETY: OSVERSIONINFOW is plain data; all zeroes is a valid value.
    let mut v: OSVERSIONINFOW = unsafe { std::mem::zeroed() };
    v.dwOSVersionInfoSize = std::mem::size_of::<OSVERSIONINFOW>() as u32;
    // SAFETY: `v` is a properly sized, writable OSVERSIONINFOW.
    if unsafe { f(&mut v) } < 0 {
        return None;
    }
    Some((v.dwMajorVersion, v.dwMinorVersion, v.dwBuildNumber))
}
