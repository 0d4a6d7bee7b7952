//! Windows: the local listener is a named pipe that only the daemon's own
//! user can open.
//!
//! - The pipe is created with a protected DACL that grants access to the
//!   daemon's user SID and to nobody else (`D:P(A;;GA;;;<sid>)`), so other
//!   users, services and remote machines are refused by the OS before a
//!   byte is read. Remote clients are also refused by flag.
//! - The first instance is created with `FILE_FLAG_FIRST_PIPE_INSTANCE`:
//!   if the name exists (another daemon, or a squatter waiting to read
//!   commands), the daemon refuses to start instead of joining it.
//! - Every connection's client process is checked against the daemon's
//!   SID as well, like SO_PEERCRED on Unix, so a loosened ACL still serves
//!   only the owner.
//! - A pipe instance serves one client: the listener creates the next
//!   instance before handing out a connected one, so a client always finds
//!   one waiting.

use std::ffi::c_void;
use std::io;
use std::os::windows::io::AsRawHandle;
use std::time::Duration;
use tokio::net::windows::named_pipe::{ClientOptions, NamedPipeClient, NamedPipeServer, ServerOptions};
use windows_sys::Win32::Foundation::{CloseHandle, LocalFree, ERROR_PIPE_BUSY, HANDLE};
use windows_sys::Win32::Security::Authorization::{
    ConvertSidToStringSidW, ConvertStringSecurityDescriptorToSecurityDescriptorW, SDDL_REVISION_1,
};
use windows_sys::Win32::Security::{
    EqualSid, GetTokenInformation, TokenUser, PSECURITY_DESCRIPTOR, SECURITY_ATTRIBUTES, TOKEN_QUERY, TOKEN_USER,
};
use windows_sys::Win32::System::Pipes::GetNamedPipeClientProcessId;
use windows_sys::Win32::System::Threading::{
    GetCurrentProcess, OpenProcess, OpenProcessToken, PROCESS_QUERY_LIMITED_INFORMATION,
};

/// The user a process runs as: its token's user SID, as bytes.
fn user_sid(process: HANDLE) -> io::Result<Vec<u8>> {
    let mut token: HANDLE = std::ptr::null_mut();
    // SAFETY: `process` is a process handle; `token` is writable.
    if unsafe { OpenProcessToken(process, TOKEN_QUERY, &mut token) } == 0 {
        return Err(io::Error::last_os_error());
    }
    let mut buf = vec![0u8; 256];
    let mut len = 0u32;
    // SAFETY: the buffer is writable for its length; the token is open.
    let ok = unsafe { GetTokenInformation(token, TokenUser, buf.as_mut_ptr().cast(), buf.len() as u32, &mut len) };
    let err = io::Error::last_os_error();
    // SAFETY: we opened `token` and close it once.
    unsafe { CloseHandle(token) };
    if ok == 0 {
        return Err(err);
    }
    // TOKEN_USER holds a pointer into the same buffer; copy the SID out.
    // SAFETY: on success the buffer starts with a TOKEN_USER.
    let sid = unsafe { (*buf.as_ptr().cast::<TOKEN_USER>()).User.Sid };
    // A SID is 8 bytes plus 4 per sub-authority (byte 1 counts them).
    // SAFETY: `sid` points at a valid SID inside `buf`.
    let n = 8 + 4 * usize::from(unsafe { *sid.cast::<u8>().add(1) });
    // SAFETY: as above, `n` bytes long.
    Ok(unsafe { std::slice::from_raw_parts(sid.cast::<u8>(), n) }.to_vec())
}

fn sid_string(sid: &[u8]) -> io::Result<String> {
    let mut s: *mut u16 = std::ptr::null_mut();
    // SAFETY: `sid` is a valid SID; `s` receives a LocalAlloc'ed string.
    if unsafe { ConvertSidToStringSidW(sid.as_ptr() as *mut c_void, &mut s) } == 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `s` is NUL-terminated UTF-16 from the call above.
    let len = (0..).take_while(|i| unsafe { *s.add(*i) } != 0).count();
    // SAFETY: `len` units are readable.
    let out = String::from_utf16_lossy(unsafe { std::slice::from_raw_parts(s, len) });
    // SAFETY: allocated by the API with LocalAlloc.
    unsafe { LocalFree(s.cast()) };
    Ok(out)
}

/// The owner-only security descriptor, and the daemon's SID to check
/// clients against.
pub(super) struct OwnerOnly {
    sd: PSECURITY_DESCRIPTOR,
    sid: Vec<u8>,
}

// SAFETY: the descriptor is built once and only read afterwards (the OS
// copies it into each pipe instance); freeing it happens once, in Drop.
unsafe impl Send for OwnerOnly {}
// SAFETY: as above.
unsafe impl Sync for OwnerOnly {}

impl OwnerOnly {
    pub(super) fn new() -> io::Result<OwnerOnly> {
        // SAFETY: the pseudo handle needs no closing.
        let sid = user_sid(unsafe { GetCurrentProcess() })?;
        let sddl = owner_only_sddl(&sid_string(&sid)?);
        let wide: Vec<u16> = sddl.encode_utf16().chain(Some(0)).collect();
        let mut sd: PSECURITY_DESCRIPTOR = std::ptr::null_mut();
        // SAFETY: NUL-terminated SDDL; `sd` receives a LocalAlloc'ed descriptor.
        let ok = unsafe {
            ConvertStringSecurityDescriptorToSecurityDescriptorW(
                wide.as_ptr(),
                SDDL_REVISION_1,
                &mut sd,
                std::ptr::null_mut(),
            )
        };
        if ok == 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(OwnerOnly { sd, sid })
    }

    /// Creates one pipe instance with the owner-only DACL.
    pub(super) fn create(&self, name: &str, first: bool) -> io::Result<NamedPipeServer> {
        let mut sa = SECURITY_ATTRIBUTES {
            nLength: std::mem::size_of::<SECURITY_ATTRIBUTES>() as u32,
            lpSecurityDescriptor: self.sd,
            bInheritHandle: 0,
        };
        let mut opts = ServerOptions::new();
        opts.first_pipe_instance(first).reject_remote_clients(true);
        // SAFETY: `sa` and the descriptor it points to outlive the call.
        unsafe { opts.create_with_security_attributes_raw(name, (&mut sa as *mut SECURITY_ATTRIBUTES).cast()) }
    }

    /// The daemon's first instance. Refused when the name exists: another
    /// daemon, or a squatter waiting to read commands. The OS refuses a
    /// second first instance; Wine does not, so a daemon that answers is
    /// looked for first.
    pub(super) fn create_first(&self, name: &str) -> io::Result<NamedPipeServer> {
        let in_use = || {
            io::Error::new(
                io::ErrorKind::AddrInUse,
                format!("the pipe {name} already exists: another corral daemon serves this config"),
            )
        };
        match ClientOptions::new().open(name) {
            Ok(_) => return Err(in_use()),
            Err(e) if e.raw_os_error() == Some(ERROR_PIPE_BUSY as i32) => return Err(in_use()),
            Err(_) => {}
        }
        self.create(name, true).map_err(|e| if e.kind() == io::ErrorKind::PermissionDenied { in_use() } else { e })
    }

    /// Whether the process at the other end of `pipe` runs as the daemon's
    /// user. Any failure to tell is a no.
    pub(super) fn is_owner(&self, pipe: &NamedPipeServer) -> bool {
        let mut pid = 0u32;
        // SAFETY: a connected server handle; `pid` is writable.
        if unsafe { GetNamedPipeClientProcessId(pipe.as_raw_handle(), &mut pid) } == 0 {
            return false;
        }
        // SAFETY: no pointers; the result is checked.
        let h = unsafe { OpenProcess(PROCESS_QUERY_LIMITED_INFORMATION, 0, pid) };
        if h.is_null() {
            return false;
        }
        let sid = user_sid(h);
        // SAFETY: opened above, closed once.
        unsafe { CloseHandle(h) };
        // SAFETY: both are valid SIDs.
        sid.is_ok_and(|s| unsafe { EqualSid(s.as_ptr() as *mut c_void, self.sid.as_ptr() as *mut c_void) } != 0)
    }
}

impl Drop for OwnerOnly {
    fn drop(&mut self) {
        // SAFETY: allocated by ConvertStringSecurityDescriptor…W, freed once.
        unsafe { LocalFree(self.sd) };
    }
}

/// Protected (no inherited entries), one entry: full access for `sid`.
pub(super) fn owner_only_sddl(sid: &str) -> String {
    format!("D:P(A;;GA;;;{sid})")
}

/// Opens the daemon's pipe. A busy pipe (every instance taken for a
/// moment) is retried for up to two seconds.
pub async fn connect(name: &str) -> io::Result<NamedPipeClient> {
    let end = tokio::time::Instant::now() + Duration::from_secs(2);
    loop {
        match ClientOptions::new().open(name) {
            Err(e) if e.raw_os_error() == Some(ERROR_PIPE_BUSY as i32) && tokio::time::Instant::now() < end => {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            r => return r,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use windows_sys::Win32::Security::Authorization::{
        ConvertSecurityDescriptorToStringSecurityDescriptorW, GetSecurityInfo, SE_KERNEL_OBJECT,
    };
    use windows_sys::Win32::Security::DACL_SECURITY_INFORMATION;

    fn unique(tag: &str) -> String {
        format!(r"\\.\pipe\corral-test-{tag}-{}", std::process::id())
    }

    /// The DACL the OS holds for the pipe, as SDDL.
    fn dacl_of(pipe: &NamedPipeServer) -> String {
        let mut sd: PSECURITY_DESCRIPTOR = std::ptr::null_mut();
        // SAFETY: a live pipe handle; `sd` receives a LocalAlloc'ed descriptor.
        let rc = unsafe {
            GetSecurityInfo(
                pipe.as_raw_handle(),
                SE_KERNEL_OBJECT,
                DACL_SECURITY_INFORMATION,
                std::ptr::null_mut(),
                std::ptr::null_mut(),
                std::ptr::null_mut(),
                std::ptr::null_mut(),
                &mut sd,
            )
        };
        assert_eq!(rc, 0, "GetSecurityInfo: {}", io::Error::from_raw_os_error(rc as i32));
        let mut s: *mut u16 = std::ptr::null_mut();
        // SAFETY: `sd` is valid; `s` receives a LocalAlloc'ed string.
        let ok = unsafe {
            ConvertSecurityDescriptorToStringSecurityDescriptorW(
                sd,
                SDDL_REVISION_1,
                DACL_SECURITY_INFORMATION,
                &mut s,
                std::ptr::null_mut(),
            )
        };
        assert!(ok != 0, "{}", io::Error::last_os_error());
        // SAFETY: NUL-terminated output of the call above.
        let len = (0..).take_while(|i| unsafe { *s.add(*i) } != 0).count();
        // SAFETY: `len` units are readable.
        let text = String::from_utf16_lossy(unsafe { std::slice::from_raw_parts(s, len) });
        // SAFETY: both were allocated by the APIs with LocalAlloc.
        unsafe {
            LocalFree(s.cast());
            LocalFree(sd);
        }
        text
    }

    #[tokio::test]
    async fn the_pipe_grants_access_to_its_owner_only() {
        let acl = OwnerOnly::new().unwrap();
        let me = sid_string(&acl.sid).unwrap();
        assert!(me.starts_with("S-1-"), "{me}");
        let pipe = acl.create_first(&unique("dacl")).unwrap();
        let dacl = dacl_of(&pipe);
        // One allow entry, for this user; GA reads back as GA or as the
        // pipe's specific rights (FA).
        assert!(dacl.starts_with("D:P"), "a protected DACL: {dacl}");
        assert_eq!(dacl.matches("(A;").count(), 1, "exactly one allow entry: {dacl}");
        assert!(dacl.contains(&format!(";;;{me})")), "the entry is for {me}: {dacl}");
    }

    #[tokio::test]
    async fn a_second_daemon_on_the_same_pipe_is_refused() {
        let acl = OwnerOnly::new().unwrap();
        let name = unique("twice");
        let _first = acl.create_first(&name).unwrap();
        let e = acl.create_first(&name).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::AddrInUse, "{e}");
        assert!(e.to_string().contains("another corral daemon"), "{e}");
    }

    #[tokio::test]
    async fn the_owner_connects_and_is_recognised() {
        let acl = OwnerOnly::new().unwrap();
        let name = unique("owner");
        let server = acl.create_first(&name).unwrap();
        let client = connect(&name).await.unwrap();
        server.connect().await.unwrap();
        assert!(acl.is_owner(&server), "this process is the daemon's user");
        drop(client);
        // Nothing listens any more: the error says so.
        drop(server);
        let e = connect(&name).await.unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::NotFound, "{e}");
    }
}
