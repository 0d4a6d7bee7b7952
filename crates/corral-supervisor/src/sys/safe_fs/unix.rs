//! Unix: directory fds, `openat` with `O_NOFOLLOW`, and an `fstat` of what
//! was actually opened (checking the path first would race with a swap).
//!
//! Traps: `O_NOFOLLOW` guards only the last component, which is why every
//! file is opened relative to a directory fd checked before; a FIFO opened
//! for writing blocks until a reader comes, hence `O_NONBLOCK` on every
//! open (no effect on regular files); and a hard link to a root-only file
//! passes every other check, hence the link count.

use super::Unsafe;
use crate::sys::euid::euid;
use rustix::fs::{self as rfs, AtFlags, FileType, Mode, OFlags, CWD};
use std::fs::File;
use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::fs::DirBuilderExt;
use std::path::Path;

pub(super) enum How {
    Append,
    CreateNew,
    Read,
}

#[derive(Debug)]
pub(super) struct Dir(OwnedFd);

const DIR_FLAGS: OFlags = OFlags::RDONLY.union(OFlags::DIRECTORY).union(OFlags::NOFOLLOW).union(OFlags::CLOEXEC);

impl Dir {
    pub(super) fn create_or_check(path: &Path) -> io::Result<Dir> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            // Missing parents are created private; existing ones are the
            // admin's choice and left as they are.
            std::fs::DirBuilder::new().recursive(true).mode(0o700).create(parent)?;
        }
        match rfs::mkdirat(CWD, path, Mode::RWXU) {
            Ok(()) => {}
            Err(rustix::io::Errno::EXIST) => {}
            Err(e) => return Err(e.into()),
        }
        let fd = rfs::openat(CWD, path, DIR_FLAGS, Mode::empty()).map_err(|e| dir_error(e, path))?;
        check_dir(&fd, path)?;
        Ok(Dir(fd))
    }

    pub(super) fn subdir(&self, name: &str, path: &Path, must_be_new: bool) -> io::Result<Dir> {
        match rfs::mkdirat(&self.0, name, Mode::RWXU) {
            Ok(()) => {}
            Err(rustix::io::Errno::EXIST) if !must_be_new => {}
            Err(e) => return Err(e.into()),
        }
        let fd = rfs::openat(&self.0, name, DIR_FLAGS, Mode::empty()).map_err(|e| dir_error(e, path))?;
        check_dir(&fd, path)?;
        Ok(Dir(fd))
    }

    pub(super) fn open_file(&self, name: &str, path: &Path, how: How) -> io::Result<File> {
        let base = OFlags::NOFOLLOW | OFlags::CLOEXEC | OFlags::NONBLOCK;
        let flags = match how {
            How::Append => base | OFlags::WRONLY | OFlags::APPEND | OFlags::CREATE,
            How::CreateNew => base | OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL,
            How::Read => base | OFlags::RDONLY,
        };
        let fd = rfs::openat(&self.0, name, flags, Mode::RUSR | Mode::WUSR).map_err(|e| match e {
            rustix::io::Errno::LOOP => Unsafe::Symlink(path.to_path_buf()).into(),
            e => io::Error::from(e),
        })?;
        let st = rfs::fstat(&fd)?;
        if FileType::from_raw_mode(st.st_mode as _) != FileType::RegularFile {
            return Err(Unsafe::NotFile(path.to_path_buf()).into());
        }
        if !matches!(how, How::Read) {
            check_owner(st.st_uid, path)?;
            if st.st_nlink > 1 {
                return Err(Unsafe::Linked { path: path.to_path_buf(), links: st.st_nlink as u64 }.into());
            }
        }
        // Back to blocking: the flag was for the open only.
        rfs::fcntl_setfl(&fd, rfs::fcntl_getfl(&fd)? - OFlags::NONBLOCK)?;
        Ok(File::from(fd))
    }

    pub(super) fn rename(&self, from: &str, to: &str) -> io::Result<()> {
        Ok(rfs::renameat(&self.0, from, &self.0, to)?)
    }

    pub(super) fn remove(&self, name: &str) -> io::Result<()> {
        Ok(rfs::unlinkat(&self.0, name, AtFlags::empty())?)
    }

    pub(super) fn sync(&self) -> io::Result<()> {
        Ok(rfs::fsync(&self.0)?)
    }
}

/// With `O_DIRECTORY`, Linux reports a symlink as `ENOTDIR` like a file
/// (others say `ELOOP`): a second look, only to name the cause.
fn dir_error(e: rustix::io::Errno, path: &Path) -> io::Error {
    let is_link = || {
        rfs::statat(CWD, path, AtFlags::SYMLINK_NOFOLLOW)
            .is_ok_and(|st| FileType::from_raw_mode(st.st_mode as _) == FileType::Symlink)
    };
    match e {
        rustix::io::Errno::LOOP => Unsafe::Symlink(path.to_path_buf()).into(),
        rustix::io::Errno::NOTDIR if is_link() => Unsafe::Symlink(path.to_path_buf()).into(),
        rustix::io::Errno::NOTDIR => Unsafe::NotDir(path.to_path_buf()).into(),
        e => e.into(),
    }
}

fn check_dir(fd: &OwnedFd, path: &Path) -> io::Result<()> {
    let st = rfs::fstat(fd)?;
    check_owner(st.st_uid, path)?;
    let mode = st.st_mode as u32 & 0o7777;
    if mode & 0o022 != 0 {
        return Err(Unsafe::Writable { path: path.to_path_buf(), mode }.into());
    }
    Ok(())
}

fn check_owner(uid: u32, path: &Path) -> io::Result<()> {
    let ours = euid();
    if uid != ours {
        return Err(Unsafe::Owner { path: path.to_path_buf(), uid, ours }.into());
    }
    Ok(())
}
