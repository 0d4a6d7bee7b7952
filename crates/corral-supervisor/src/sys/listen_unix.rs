//! Binding a unix socket for socket activation, safely, as root for a
//! service that may run as another user.
//!
//! - The parent folder must belong to root or to the daemon's user and be
//!   writable by no one else: then no one else can swap an entry in it
//!   between the checks and the bind, and the later `chown`/`chmod` by
//!   name cannot be redirected. A folder like `/tmp` is refused.
//! - An entry already there is removed only when it is a socket of the
//!   daemon's own user (a stale one from an earlier run); anything else is
//!   refused, never replaced.
//! - The bind goes through the opened folder (`/proc/self/fd/N/name` on
//!   Linux), so a folder renamed meanwhile is still the one checked.
//! - The socket ends up owned by the service's user (mode 0660), so that
//!   it and its clients can use it.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

fn cvt(r: libc::c_int) -> io::Result<libc::c_int> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

fn refused(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::PermissionDenied, msg)
}

fn cstr(b: &[u8]) -> io::Result<CString> {
    CString::new(b).map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "a NUL byte in the path"))
}

/// A listening unix socket and the inode of its file.
pub(crate) struct BoundUnix {
    pub fd: OwnedFd,
    pub ino: u64,
}

/// Binds and listens on `path`; `owner` (uid, gid) gets the file.
pub(crate) fn bind(path: &Path, owner: Option<(u32, u32)>, backlog: i32) -> io::Result<BoundUnix> {
    let (Some(parent), Some(name)) = (path.parent(), path.file_name()) else {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "the path names no file"));
    };
    let cparent = cstr(parent.as_os_str().as_bytes())?;
    let cname = cstr(name.as_bytes())?;
    // SAFETY: a NUL-terminated path.
    let dir = cvt(unsafe {
        libc::open(cparent.as_ptr(), libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC)
    })
    .map_err(|e| io::Error::new(e.kind(), format!("opening the folder {}: {e}", parent.display())))?;
    // SAFETY: open just returned this fresh fd.
    let dir = unsafe { OwnedFd::from_raw_fd(dir) };
    // SAFETY: zeroed stat is a valid out-parameter.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: st is valid for writes.
    cvt(unsafe { libc::fstat(dir.as_raw_fd(), &mut st) })?;
    // SAFETY: geteuid has no preconditions.
    let euid = unsafe { libc::geteuid() };
    if st.st_uid != 0 && st.st_uid != euid {
        return Err(refused(format!(
            "the folder {} belongs to uid {}, neither root nor the daemon's user",
            parent.display(),
            st.st_uid
        )));
    }
    if st.st_mode & 0o022 != 0 {
        return Err(refused(format!("the folder {} is writable by other users", parent.display())));
    }
    // SAFETY: st is valid for writes; the name is NUL-terminated.
    let found = unsafe { libc::fstatat(dir.as_raw_fd(), cname.as_ptr(), &mut st, libc::AT_SYMLINK_NOFOLLOW) } == 0;
    if found {
        if st.st_mode & libc::S_IFMT != libc::S_IFSOCK || st.st_uid != euid {
            return Err(refused(format!("{} exists and is not a stale socket of the daemon's user", path.display())));
        }
        // SAFETY: a name in a folder we hold open.
        cvt(unsafe { libc::unlinkat(dir.as_raw_fd(), cname.as_ptr(), 0) })?;
    }
    // SAFETY: plain socket(2) call.
    let fd = cvt(unsafe { libc::socket(libc::AF_UNIX, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) })?;
    // SAFETY: socket just returned this fresh fd.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    #[cfg(target_os = "linux")]
    let via = {
        let mut v = format!("/proc/self/fd/{}/", dir.as_raw_fd()).into_bytes();
        v.extend_from_slice(name.as_bytes());
        v
    };
    #[cfg(not(target_os = "linux"))]
    let via = path.as_os_str().as_bytes().to_vec();
    // SAFETY: a zeroed sockaddr_un is valid.
    let mut addr: libc::sockaddr_un = unsafe { std::mem::zeroed() };
    addr.sun_family = libc::AF_UNIX as libc::sa_family_t;
    if via.len() >= addr.sun_path.len() {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "the socket path is too long"));
    }
    for (d, s) in addr.sun_path.iter_mut().zip(&via) {
        *d = *s as libc::c_char;
    }
    let len = std::mem::size_of::<libc::sa_family_t>() + via.len() + 1;
    // SAFETY: addr is valid for `len` bytes.
    cvt(unsafe { libc::bind(fd.as_raw_fd(), (&addr as *const libc::sockaddr_un).cast(), len as libc::socklen_t) })?;
    if let Some((uid, gid)) = owner {
        // SAFETY: a name in a folder only root or we can write to.
        cvt(unsafe { libc::fchownat(dir.as_raw_fd(), cname.as_ptr(), uid, gid, libc::AT_SYMLINK_NOFOLLOW) })?;
    }
    // SAFETY: as above; no one else can have replaced the entry.
    cvt(unsafe { libc::fchmodat(dir.as_raw_fd(), cname.as_ptr(), 0o660, 0) })?;
    // SAFETY: st is valid for writes.
    cvt(unsafe { libc::fstatat(dir.as_raw_fd(), cname.as_ptr(), &mut st, libc::AT_SYMLINK_NOFOLLOW) })?;
    // SAFETY: listen on our own socket.
    cvt(unsafe { libc::listen(fd.as_raw_fd(), backlog) })?;
    Ok(BoundUnix { fd, ino: st.st_ino as u64 })
}

/// Removes the socket file at `path` if it is still the one bound (inode
/// `ino`): never a file someone else put there since.
pub(crate) fn remove(path: &Path, ino: u64) {
    if let Ok(m) = std::fs::symlink_metadata(path) {
        use std::os::unix::fs::{FileTypeExt, MetadataExt};
        if m.file_type().is_socket() && m.ino() == ino {
            let _ = std::fs::remove_file(path);
        }
    }
}
