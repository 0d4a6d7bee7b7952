//! `user = "name"`: the service runs with that user's uid and primary gid.
//! Supplementary groups are dropped (std sets the ids before any pre-exec
//! hook could call `setgroups`).

/// A resolved account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    /// User id.
    pub uid: u32,
    /// Primary group id.
    pub gid: u32,
    /// Login name.
    pub name: String,
    /// Home directory.
    pub home: String,
    /// Login shell (empty in the passwd entry means `/bin/sh`).
    pub shell: String,
}

/// Checks that `user` exists, without changing anything.
pub fn check(user: &str) -> Result<(), String> {
    lookup(user).map(|_| ())
}

/// Resolves a user name or a numeric uid.
#[cfg(unix)]
pub fn lookup(user: &str) -> Result<Account, String> {
    use std::ffi::{CStr, CString};
    let mut pwd: libc::passwd = unsafe {
        // SAFETY: passwd is plain old data; all-zero is a valid value that
        // getpwnam_r overwrites.
        std::mem::zeroed()
    };
    let mut buf = vec![0 as libc::c_char; 16 * 1024];
    let mut result: *mut libc::passwd = std::ptr::null_mut();
    let rc = if let Ok(uid) = user.parse::<u32>() {
        // SAFETY: every pointer is valid for the call and buf's length is passed.
        unsafe { libc::getpwuid_r(uid, &mut pwd, buf.as_mut_ptr(), buf.len(), &mut result) }
    } else {
        let c = CString::new(user).map_err(|_| format!("invalid user name {user:?}"))?;
        // SAFETY: as above; `c` is NUL-terminated.
        unsafe { libc::getpwnam_r(c.as_ptr(), &mut pwd, buf.as_mut_ptr(), buf.len(), &mut result) }
    };
    if rc != 0 || result.is_null() {
        return Err(format!("no such user `{user}`"));
    }
    // SAFETY: on success pw_name, pw_dir and pw_shell point into buf,
    // NUL-terminated (pw_shell may be null on some systems).
    let (name, home, shell) = unsafe {
        (
            CStr::from_ptr(pwd.pw_name).to_string_lossy().into_owned(),
            CStr::from_ptr(pwd.pw_dir).to_string_lossy().into_owned(),
            if pwd.pw_shell.is_null() {
                String::new()
            } else {
                CStr::from_ptr(pwd.pw_shell).to_string_lossy().into_owned()
            },
        )
    };
    let shell = if shell.is_empty() { "/bin/sh".to_string() } else { shell };
    Ok(Account { uid: pwd.pw_uid, gid: pwd.pw_gid, name, home, shell })
}

/// The account the daemon itself runs as, if the passwd database knows it
/// (a container may run under a uid it does not list).
///
/// Asked at every start of every service that names no `user`, so it is
/// kept, and looked up again only when `/etc/passwd` changed (its inode,
/// size or modification time) or the daemon's uid did: a lookup through
/// NSS is an open, a read and a parse of the whole file, on a restart's
/// path. An account that NSS serves from elsewhere (LDAP) and that changes
/// there is seen at the daemon's next start.
#[cfg(unix)]
pub fn current() -> Option<Account> {
    use std::os::unix::fs::MetadataExt;
    use std::sync::Mutex;
    type Key = (u32, Option<(u64, u64, i64, i64)>);
    static KEPT: Mutex<Option<(Key, Option<Account>)>> = Mutex::new(None);
    let uid = crate::sys::euid::euid();
    let file = std::fs::metadata("/etc/passwd").ok().map(|m| (m.ino(), m.size(), m.mtime(), m.mtime_nsec()));
    let key = (uid, file);
    let mut kept = KEPT.lock().unwrap_or_else(|p| p.into_inner());
    match kept.as_ref() {
        Some((k, account)) if *k == key => account.clone(),
        _ => {
            let account = lookup(&uid.to_string()).ok();
            *kept = Some((key, account.clone()));
            account
        }
    }
}

/// Windows services run as the daemon's account, whose variables the
/// base environment passes on.
#[cfg(not(unix))]
pub fn current() -> Option<Account> {
    None
}

/// Windows services run as the daemon's account for now.
#[cfg(not(unix))]
pub fn lookup(_user: &str) -> Result<Account, String> {
    Err("`user` is supported on Unix only".to_string())
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    #[test]
    fn the_kept_account_is_the_one_a_fresh_lookup_gives() {
        let fresh = lookup(&crate::sys::euid::euid().to_string()).ok();
        assert_eq!(current(), fresh);
        // The second answer comes from what was kept, and is the same.
        assert_eq!(current(), fresh);
    }
}
