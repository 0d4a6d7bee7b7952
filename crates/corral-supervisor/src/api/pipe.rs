//! Windows: the local listener is a named pipe that only the daemon's own
//! user can open, and in service mode also the people who administer the
//! service.
//!
//! - The pipe is created with a protected DACL that grants access to the
//!   daemon's user SID and to nobody else (`D:P(A;;GA;;;<sid>)`), so other
//!   users, services and remote machines are refused by the OS before a
//!   byte is read. Remote clients are also refused by flag.
//! - As a Windows service ([`Access::OwnerAndAdministrators`]) the daemon
//!   runs as a service account nobody logs on as, so the DACL also grants
//!   SYSTEM and BUILTIN\Administrators
//!   (`D:P(A;;GA;;;<sid>)(A;;GA;;;SY)(A;;GA;;;BA)`). Administrators means an
//!   elevated token: under UAC a filtered token holds the group deny-only,
//!   and neither the DACL nor the check below lets it in.
//! - The first instance is created with `FILE_FLAG_FIRST_PIPE_INSTANCE`:
//!   if the name exists (another daemon, or a squatter waiting to read
//!   commands), the daemon refuses to start instead of joining it.
//! - Every connection's client is checked against the same identities,
//!   like SO_PEERCRED on Unix, so a loosened ACL still serves only them.
//! - A pipe instance serves one client: the listener creates the next
//!   instance before handing out a connected one, so a client always finds
//!   one waiting.

use super::Access;
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
    CheckTokenMembership, CreateWellKnownSid, DuplicateToken, EqualSid, GetTokenInformation, IsWellKnownSid,
    RevertToSelf, SecurityIdentification, TokenUser, WinBuiltinAdministratorsSid, WinLocalSystemSid,
    PSECURITY_DESCRIPTOR, SECURITY_ATTRIBUTES, SECURITY_MAX_SID_SIZE, TOKEN_DUPLICATE, TOKEN_QUERY, TOKEN_USER,
};
use windows_sys::Win32::System::Pipes::{GetNamedPipeClientProcessId, ImpersonateNamedPipeClient};
use windows_sys::Win32::System::Threading::{
    GetCurrentProcess, GetCurrentThread, OpenProcess, OpenProcessToken, OpenThreadToken,
    PROCESS_QUERY_LIMITED_INFORMATION,
};

/// An access token, closed on drop.
struct Token(HANDLE);

impl Drop for Token {
    fn drop(&mut self) {
        // SAFETY: opened by this module, closed once.
        unsafe { CloseHandle(self.0) };
    }
}

/// The user a token stands for: its user SID, as bytes.
fn token_user(token: &Token) -> io::Result<Vec<u8>> {
    // u64s keep the buffer aligned for TOKEN_USER, which starts with a
    // pointer; 256 bytes hold it and the largest SID (68 bytes).
    let mut buf = vec![0u64; 32];
    let mut len = 0u32;
    // SAFETY: the buffer is writable for its length in bytes; the token is open.
    let ok =
        unsafe { GetTokenInformation(token.0, TokenUser, buf.as_mut_ptr().cast(), (buf.len() * 8) as u32, &mut len) };
    if ok == 0 {
        return Err(io::Error::last_os_error());
    }
    // TOKEN_USER holds a pointer into the same buffer; copy the SID out.
    // SAFETY: on success the buffer starts with a TOKEN_USER, and it is
    // aligned for one.
    let sid = unsafe { (*buf.as_ptr().cast::<TOKEN_USER>()).User.Sid };
    // A SID is 8 bytes plus 4 per sub-authority (byte 1 counts them).
    // SAFETY: `sid` points at a valid SID inside `buf`.
    let n = 8 + 4 * usize::from(unsafe { *sid.cast::<u8>().add(1) });
    // SAFETY: as above, `n` bytes long.
    Ok(unsafe { std::slice::from_raw_parts(sid.cast::<u8>(), n) }.to_vec())
}

/// The token of a process, opened with `access`.
fn process_token(process: HANDLE, access: u32) -> io::Result<Token> {
    let mut token: HANDLE = std::ptr::null_mut();
    // SAFETY: `process` is a process handle; `token` is writable.
    if unsafe { OpenProcessToken(process, access, &mut token) } == 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(Token(token))
}

/// The user a process runs as.
fn user_sid(process: HANDLE) -> io::Result<Vec<u8>> {
    token_user(&process_token(process, TOKEN_QUERY)?)
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

/// The process at the other end of a connected pipe, opened for queries.
fn client_process(pipe: &NamedPipeServer) -> io::Result<HANDLE> {
    let mut pid = 0u32;
    // SAFETY: a connected server handle; `pid` is writable.
    if unsafe { GetNamedPipeClientProcessId(pipe.as_raw_handle(), &mut pid) } == 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: no pointers; the result is checked.
    let h = unsafe { OpenProcess(PROCESS_QUERY_LIMITED_INFORMATION, 0, pid) };
    if h.is_null() {
        return Err(io::Error::last_os_error());
    }
    Ok(h)
}

/// The client's token as seen through the pipe: the daemon impersonates
/// the client for a moment and takes its thread token. This works whatever
/// the client process's own ACL says (a service account may not open an
/// administrator's process), and identification level, which clients grant
/// by default, is enough to read it.
fn impersonated_token(pipe: &NamedPipeServer) -> io::Result<Token> {
    // SAFETY: a connected server handle.
    if unsafe { ImpersonateNamedPipeClient(pipe.as_raw_handle()) } == 0 {
        return Err(io::Error::last_os_error());
    }
    let mut token: HANDLE = std::ptr::null_mut();
    // SAFETY: this thread impersonates now; `token` is writable. OpenAsSelf
    // (1): the daemon's own rights open it, the client's identification-
    // level token could not.
    let ok = unsafe { OpenThreadToken(GetCurrentThread(), TOKEN_QUERY, 1, &mut token) };
    let err = io::Error::last_os_error();
    // SAFETY: ends the impersonation begun above, on the same thread, with
    // no await in between (this function is synchronous).
    if unsafe { RevertToSelf() } == 0 {
        // A worker thread left running as the client must not serve anyone.
        eprintln!("corral: RevertToSelf failed: {}; aborting", io::Error::last_os_error());
        std::process::abort();
    }
    if ok == 0 {
        return Err(err);
    }
    Ok(Token(token))
}

/// The client process's token as an identification token (what
/// CheckTokenMembership needs). The fallback when impersonation fails.
fn client_process_token(pipe: &NamedPipeServer) -> io::Result<Token> {
    let h = client_process(pipe)?;
    let primary = process_token(h, TOKEN_QUERY | TOKEN_DUPLICATE);
    // SAFETY: opened by client_process, closed once.
    unsafe { CloseHandle(h) };
    let primary = primary?;
    let mut dup: HANDLE = std::ptr::null_mut();
    // SAFETY: an open token with TOKEN_DUPLICATE; `dup` is writable.
    if unsafe { DuplicateToken(primary.0, SecurityIdentification, &mut dup) } == 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(Token(dup))
}

/// Whether `token` holds BUILTIN\Administrators enabled (an elevated
/// token; a UAC-filtered one holds it deny-only and is refused).
fn is_administrator(token: &Token) -> bool {
    let mut sid = [0u8; SECURITY_MAX_SID_SIZE as usize];
    let mut len = SECURITY_MAX_SID_SIZE;
    // SAFETY: `sid` is writable for `len` bytes.
    let ok = unsafe {
        CreateWellKnownSid(WinBuiltinAdministratorsSid, std::ptr::null_mut(), sid.as_mut_ptr().cast(), &mut len)
    };
    let mut member = 0;
    // SAFETY: an impersonation-type token and a valid SID; `member` is writable.
    ok != 0 && unsafe { CheckTokenMembership(token.0, sid.as_mut_ptr().cast(), &mut member) } != 0 && member != 0
}

fn same_sid(a: &[u8], b: &[u8]) -> bool {
    // SAFETY: both are valid SIDs.
    unsafe { EqualSid(a.as_ptr() as *mut c_void, b.as_ptr() as *mut c_void) != 0 }
}

/// The pipe's security descriptor, and the identities a client is checked
/// against.
pub(super) struct PipeAcl {
    sd: PSECURITY_DESCRIPTOR,
    sid: Vec<u8>,
    access: Access,
}

// SAFETY: the descriptor is built once and only read afterwards (the OS
// copies it into each pipe instance); freeing it happens once, in Drop.
unsafe impl Send for PipeAcl {}
// SAFETY: as above.
unsafe impl Sync for PipeAcl {}

impl PipeAcl {
    pub(super) fn new(access: Access) -> io::Result<PipeAcl> {
        // SAFETY: the pseudo handle needs no closing.
        let sid = user_sid(unsafe { GetCurrentProcess() })?;
        let sddl = pipe_sddl(&sid_string(&sid)?, access);
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
        Ok(PipeAcl { sd, sid, access })
    }

    /// Creates one pipe instance with the DACL.
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

    /// Whether the client at the other end of `pipe` may use the API. Any
    /// failure to tell is a no.
    pub(super) fn is_allowed(&self, pipe: &NamedPipeServer) -> bool {
        match self.access {
            Access::Owner => self.is_owner(pipe),
            Access::OwnerAndAdministrators => {
                let Ok(token) = impersonated_token(pipe).or_else(|_| client_process_token(pipe)) else {
                    return false;
                };
                let Ok(user) = token_user(&token) else { return false };
                // SAFETY: `user` is a valid SID.
                let system = unsafe { IsWellKnownSid(user.as_ptr() as *mut c_void, WinLocalSystemSid) } != 0;
                same_sid(&user, &self.sid) || system || is_administrator(&token)
            }
        }
    }

    /// Whether the process at the other end of `pipe` runs as the daemon's
    /// user (`corral up`: the client is the same user, so its process can
    /// always be opened).
    fn is_owner(&self, pipe: &NamedPipeServer) -> bool {
        let Ok(h) = client_process(pipe) else { return false };
        let sid = user_sid(h);
        // SAFETY: opened by client_process, closed once.
        unsafe { CloseHandle(h) };
        sid.is_ok_and(|s| same_sid(&s, &self.sid))
    }
}

impl Drop for PipeAcl {
    fn drop(&mut self) {
        // SAFETY: allocated by ConvertStringSecurityDescriptor…W, freed once.
        unsafe { LocalFree(self.sd) };
    }
}

/// Who is at the other end of `pipe`: its user SID (as `S-1-5-…`) and its
/// pid, each `None` when the system does not say.
pub(super) fn client_identity(pipe: &NamedPipeServer) -> (Option<String>, Option<u32>) {
    let mut pid = 0u32;
    // SAFETY: a connected server handle; `pid` is writable.
    let pid = (unsafe { GetNamedPipeClientProcessId(pipe.as_raw_handle(), &mut pid) } != 0).then_some(pid);
    let token = impersonated_token(pipe).or_else(|_| client_process_token(pipe));
    let sid = token.ok().and_then(|t| token_user(&t).ok()).and_then(|s| sid_string(&s).ok());
    (sid, pid)
}

/// Protected (no inherited entries): full access for `sid`, and in
/// service mode for SYSTEM and BUILTIN\Administrators too.
pub(super) fn pipe_sddl(sid: &str, access: Access) -> String {
    match access {
        Access::Owner => format!("D:P(A;;GA;;;{sid})"),
        Access::OwnerAndAdministrators => format!("D:P(A;;GA;;;{sid})(A;;GA;;;SY)(A;;GA;;;BA)"),
    }
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
        let acl = PipeAcl::new(Access::Owner).unwrap();
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
        let acl = PipeAcl::new(Access::Owner).unwrap();
        let name = unique("twice");
        let _first = acl.create_first(&name).unwrap();
        let e = acl.create_first(&name).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::AddrInUse, "{e}");
        assert!(e.to_string().contains("another corral daemon"), "{e}");
    }

    #[tokio::test]
    async fn the_owner_connects_and_is_recognised() {
        let acl = PipeAcl::new(Access::Owner).unwrap();
        let name = unique("owner");
        let server = acl.create_first(&name).unwrap();
        let client = connect(&name).await.unwrap();
        server.connect().await.unwrap();
        assert!(acl.is_allowed(&server), "this process is the daemon's user");
        drop(client);
        // Nothing listens any more: the error says so.
        drop(server);
        let e = connect(&name).await.unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::NotFound, "{e}");
    }

    #[tokio::test]
    async fn a_client_is_named_by_its_sid_and_pid() {
        let acl = PipeAcl::new(Access::Owner).unwrap();
        let name = unique("who");
        let server = acl.create_first(&name).unwrap();
        let _client = connect(&name).await.unwrap();
        server.connect().await.unwrap();
        let (sid, pid) = client_identity(&server);
        assert_eq!(sid, Some(sid_string(&acl.sid).unwrap()), "the client runs as this user");
        assert_eq!(pid, Some(std::process::id()), "the client is this process");
    }

    #[tokio::test]
    async fn the_service_pipe_also_grants_system_and_administrators() {
        let acl = PipeAcl::new(Access::OwnerAndAdministrators).unwrap();
        let me = sid_string(&acl.sid).unwrap();
        let pipe = acl.create_first(&unique("svc-dacl")).unwrap();
        let dacl = dacl_of(&pipe);
        assert!(dacl.starts_with("D:P"), "a protected DACL: {dacl}");
        assert_eq!(dacl.matches("(A;").count(), 3, "three allow entries: {dacl}");
        for who in [me.as_str(), "SY", "BA"] {
            assert!(dacl.contains(&format!(";;;{who})")), "an entry for {who}: {dacl}");
        }
        assert!(!dacl.contains("(D;"), "no deny entries: {dacl}");
    }

    #[tokio::test]
    async fn in_service_mode_the_owner_is_still_recognised() {
        let acl = PipeAcl::new(Access::OwnerAndAdministrators).unwrap();
        let name = unique("svc-owner");
        let server = acl.create_first(&name).unwrap();
        let client = connect(&name).await.unwrap();
        server.connect().await.unwrap();
        assert!(acl.is_allowed(&server), "this process is the daemon's user");
        // Through the pipe, the client is this user too.
        match impersonated_token(&server) {
            Ok(t) => assert!(same_sid(&token_user(&t).unwrap(), &acl.sid)),
            Err(e) => eprintln!("ImpersonateNamedPipeClient failed ({e}): the process token is used"),
        }
        // The impersonation was undone: this thread is the daemon again.
        let mut t: HANDLE = std::ptr::null_mut();
        // SAFETY: `t` is writable; a thread that does not impersonate has no token.
        let has_thread_token = unsafe { OpenThreadToken(GetCurrentThread(), TOKEN_QUERY, 1, &mut t) } != 0;
        if has_thread_token {
            // SAFETY: opened just above.
            unsafe { CloseHandle(t) };
        }
        assert!(!has_thread_token, "the thread still impersonates the client");
        drop(client);
    }
}
