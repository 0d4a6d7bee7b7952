//! Owned handles over the Service Control Manager calls corral makes, and
//! their failures as one line that names the cause and the fix.

use std::ffi::c_void;
use std::fmt;
use windows_sys::Win32::Foundation::{
    LocalFree, ERROR_ACCESS_DENIED, ERROR_DUPLICATE_SERVICE_NAME, ERROR_INSUFFICIENT_BUFFER, ERROR_INVALID_NAME,
    ERROR_INVALID_SERVICE_ACCOUNT, ERROR_SERVICE_DISABLED, ERROR_SERVICE_DOES_NOT_EXIST, ERROR_SERVICE_EXISTS,
    ERROR_SERVICE_LOGON_FAILED, ERROR_SERVICE_MARKED_FOR_DELETE, ERROR_SERVICE_REQUEST_TIMEOUT,
};
use windows_sys::Win32::Security::Authorization::{
    ConvertStringSecurityDescriptorToSecurityDescriptorW, SDDL_REVISION_1,
};
use windows_sys::Win32::Security::{DACL_SECURITY_INFORMATION, PSECURITY_DESCRIPTOR};
use windows_sys::Win32::System::Services::{
    ChangeServiceConfig2W, CloseServiceHandle, ControlService, CreateServiceW, DeleteService, OpenSCManagerW,
    OpenServiceW, QueryServiceConfigW, QueryServiceStatusEx, SetServiceObjectSecurity, StartServiceW,
    QUERY_SERVICE_CONFIGW, SC_HANDLE, SC_STATUS_PROCESS_INFO, SERVICE_AUTO_START, SERVICE_CONFIG, SERVICE_CONTROL_STOP,
    SERVICE_ERROR_NORMAL, SERVICE_STATUS, SERVICE_STATUS_PROCESS, SERVICE_WIN32_OWN_PROCESS,
};

/// Standard access rights the SCM checks on a service object. Spelled out
/// here because windows-sys keeps them behind the file-system feature.
pub const DELETE: u32 = 0x0001_0000;
/// Changing the service's DACL.
pub const WRITE_DAC: u32 = 0x0004_0000;

/// An SCM call that failed.
#[derive(Debug)]
pub struct ScmError {
    /// What was being done, e.g. "cannot install service `corral`".
    pub what: String,
    /// The service's name.
    pub service: String,
    /// The Win32 error code.
    pub code: u32,
}

impl ScmError {
    fn last(what: impl Into<String>, service: &str) -> ScmError {
        let code = std::io::Error::last_os_error().raw_os_error().unwrap_or(0) as u32;
        ScmError { what: what.into(), service: service.to_string(), code }
    }
}

impl fmt::Display for ScmError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (what, name) = (&self.what, &self.service);
        match self.code {
            ERROR_ACCESS_DENIED => {
                write!(f, "{what}: access denied; run it from an elevated prompt (Run as administrator)")
            }
            ERROR_SERVICE_DOES_NOT_EXIST => {
                write!(f, "no service `{name}`; install one with `corral service install -c FILE --name {name}`")
            }
            ERROR_SERVICE_EXISTS => write!(
                f,
                "service `{name}` already exists; remove it with `corral service uninstall --name {name}`, or choose another --name"
            ),
            ERROR_DUPLICATE_SERVICE_NAME => {
                write!(f, "{what}: another service has the same display name; choose another --name")
            }
            ERROR_SERVICE_MARKED_FOR_DELETE => write!(
                f,
                "service `{name}` is being deleted; close what holds it open (services.msc, Event Viewer) and try again"
            ),
            ERROR_SERVICE_LOGON_FAILED => write!(
                f,
                "service `{name}` cannot log on as its account; check the password it was installed with and that the account may 'Log on as a service' (secpol.msc)"
            ),
            ERROR_INVALID_SERVICE_ACCOUNT => write!(
                f,
                "{what}: no such account; use LocalService, NetworkService, LocalSystem or an existing .\\USER"
            ),
            ERROR_SERVICE_DISABLED => {
                write!(f, "service `{name}` is disabled; set its startup type to Automatic in services.msc")
            }
            ERROR_INVALID_NAME => write!(f, "invalid service name `{name}`; use letters, digits, `-` and `_`"),
            ERROR_SERVICE_REQUEST_TIMEOUT => write!(
                f,
                "{what}: the service did not answer the Service Control Manager in time; see its state_dir\\daemon.log"
            ),
            code => write!(f, "{what}: {}", std::io::Error::from_raw_os_error(code as i32)),
        }
    }
}

impl std::error::Error for ScmError {}

/// NUL-terminated UTF-16.
pub fn wide(s: &str) -> Vec<u16> {
    s.encode_utf16().chain(Some(0)).collect()
}

/// A NUL-terminated UTF-16 string from the OS; empty for null.
///
/// # Safety
/// `p` is null or points at a NUL-terminated UTF-16 string.
pub unsafe fn from_wide(p: *const u16) -> String {
    if p.is_null() {
        return String::new();
    }
    // SAFETY: the caller promises a NUL-terminated string.
    let len = (0..).take_while(|i| unsafe { *p.add(*i) } != 0).count();
    // SAFETY: `len` units are readable.
    String::from_utf16_lossy(unsafe { std::slice::from_raw_parts(p, len) })
}

/// A service's registration, as QueryServiceConfigW reports it.
#[derive(Debug, Clone)]
pub struct Registration {
    /// The command line the SCM runs.
    pub binary_path: String,
}

/// What CreateServiceW registers.
pub struct NewService<'a> {
    pub name: &'a str,
    pub display_name: &'a str,
    pub binary_path: &'a str,
    pub account: &'a str,
    pub password: Option<&'a str>,
}

/// An open SCM or service handle, closed on drop.
pub struct Handle {
    h: SC_HANDLE,
    name: String,
}

impl Drop for Handle {
    fn drop(&mut self) {
        // SAFETY: opened by this module, closed once.
        unsafe { CloseServiceHandle(self.h) };
    }
}

/// The local Service Control Manager, opened for `access`.
pub fn manager(access: u32) -> Result<Handle, ScmError> {
    // SAFETY: null machine and database: the local, active one.
    let h = unsafe { OpenSCManagerW(std::ptr::null(), std::ptr::null(), access) };
    if h.is_null() {
        return Err(ScmError::last("cannot open the Service Control Manager", ""));
    }
    Ok(Handle { h, name: String::new() })
}

impl Handle {
    /// Opens the service `name` for `access`.
    pub fn open(&self, name: &str, access: u32) -> Result<Handle, ScmError> {
        let w = wide(name);
        // SAFETY: an open SCM handle and a NUL-terminated name.
        let h = unsafe { OpenServiceW(self.h, w.as_ptr(), access) };
        if h.is_null() {
            return Err(ScmError::last(format!("cannot open service `{name}`"), name));
        }
        Ok(Handle { h, name: name.to_string() })
    }

    /// Registers an own-process, auto-start service.
    pub fn create(&self, s: &NewService, access: u32) -> Result<Handle, ScmError> {
        let (name, display, path, account) = (wide(s.name), wide(s.display_name), wide(s.binary_path), wide(s.account));
        let password = s.password.map(wide);
        // SAFETY: every string is NUL-terminated and outlives the call;
        // null group, tag and dependencies.
        let h = unsafe {
            CreateServiceW(
                self.h,
                name.as_ptr(),
                display.as_ptr(),
                access,
                SERVICE_WIN32_OWN_PROCESS,
                SERVICE_AUTO_START,
                SERVICE_ERROR_NORMAL,
                path.as_ptr(),
                std::ptr::null(),
                std::ptr::null_mut(),
                std::ptr::null(),
                account.as_ptr(),
                password.as_ref().map_or(std::ptr::null(), |p| p.as_ptr()),
            )
        };
        if h.is_null() {
            return Err(ScmError::last(format!("cannot install service `{}`", s.name), s.name));
        }
        Ok(Handle { h, name: s.name.to_string() })
    }

    fn fail(&self, what: &str) -> ScmError {
        ScmError::last(format!("cannot {what} service `{}`", self.name), &self.name)
    }

    /// ChangeServiceConfig2W with one info structure.
    pub fn set_config2<T>(&self, level: SERVICE_CONFIG, info: &T, what: &str) -> Result<(), ScmError> {
        // SAFETY: `info` is the structure `level` names, alive for the call.
        if unsafe { ChangeServiceConfig2W(self.h, level, (info as *const T).cast::<c_void>()) } == 0 {
            return Err(self.fail(what));
        }
        Ok(())
    }

    /// Replaces the service's DACL with the one in `sddl`.
    pub fn set_dacl(&self, sddl: &str) -> Result<(), ScmError> {
        let w = wide(sddl);
        let mut sd: PSECURITY_DESCRIPTOR = std::ptr::null_mut();
        // SAFETY: NUL-terminated SDDL; `sd` receives a LocalAlloc'ed descriptor.
        let ok = unsafe {
            ConvertStringSecurityDescriptorToSecurityDescriptorW(
                w.as_ptr(),
                SDDL_REVISION_1,
                &mut sd,
                std::ptr::null_mut(),
            )
        };
        if ok == 0 {
            return Err(self.fail("build the security descriptor of"));
        }
        // SAFETY: a valid descriptor with a DACL; the handle has WRITE_DAC.
        let ok = unsafe { SetServiceObjectSecurity(self.h, DACL_SECURITY_INFORMATION, sd) };
        let err = (ok == 0).then(|| self.fail("set the ACL of"));
        // SAFETY: allocated by the conversion above, freed once.
        unsafe { LocalFree(sd) };
        err.map_or(Ok(()), Err)
    }

    /// The service's state, exit codes and process id.
    pub fn status(&self) -> Result<SERVICE_STATUS_PROCESS, ScmError> {
        // SAFETY: all-zero is a valid SERVICE_STATUS_PROCESS.
        let mut st: SERVICE_STATUS_PROCESS = unsafe { std::mem::zeroed() };
        let mut needed = 0u32;
        // SAFETY: `st` is writable for its size.
        let ok = unsafe {
            QueryServiceStatusEx(
                self.h,
                SC_STATUS_PROCESS_INFO,
                (&mut st as *mut SERVICE_STATUS_PROCESS).cast(),
                std::mem::size_of::<SERVICE_STATUS_PROCESS>() as u32,
                &mut needed,
            )
        };
        if ok == 0 {
            return Err(self.fail("query the status of"));
        }
        Ok(st)
    }

    /// The registration: the command line the SCM runs.
    pub fn registration(&self) -> Result<Registration, ScmError> {
        let mut needed = 0u32;
        // SAFETY: asking for the size only.
        unsafe { QueryServiceConfigW(self.h, std::ptr::null_mut(), 0, &mut needed) };
        if std::io::Error::last_os_error().raw_os_error() != Some(ERROR_INSUFFICIENT_BUFFER as i32) {
            return Err(self.fail("query the configuration of"));
        }
        // u64s keep the buffer aligned for the structure.
        let mut buf = vec![0u64; (needed as usize).div_ceil(8)];
        let cfg = buf.as_mut_ptr().cast::<QUERY_SERVICE_CONFIGW>();
        // SAFETY: `buf` is writable for `needed` bytes and aligned.
        if unsafe { QueryServiceConfigW(self.h, cfg, needed, &mut needed) } == 0 {
            return Err(self.fail("query the configuration of"));
        }
        // SAFETY: filled by the call; its strings point into `buf`.
        Ok(Registration { binary_path: unsafe { from_wide((*cfg).lpBinaryPathName) } })
    }

    /// StartServiceW, without arguments.
    pub fn start(&self) -> Result<(), ScmError> {
        // SAFETY: no arguments.
        if unsafe { StartServiceW(self.h, 0, std::ptr::null()) } == 0 {
            return Err(self.fail("start"));
        }
        Ok(())
    }

    /// Sends SERVICE_CONTROL_STOP.
    pub fn control_stop(&self) -> Result<(), ScmError> {
        // SAFETY: all-zero is a valid SERVICE_STATUS; it is writable.
        let mut st: SERVICE_STATUS = unsafe { std::mem::zeroed() };
        // SAFETY: as above.
        if unsafe { ControlService(self.h, SERVICE_CONTROL_STOP, &mut st) } == 0 {
            return Err(self.fail("stop"));
        }
        Ok(())
    }

    /// Marks the service for deletion; it goes once every handle to it is
    /// closed.
    pub fn delete(&self) -> Result<(), ScmError> {
        // SAFETY: an open service handle with DELETE access.
        if unsafe { DeleteService(self.h) } == 0 {
            return Err(self.fail("remove"));
        }
        Ok(())
    }
}
