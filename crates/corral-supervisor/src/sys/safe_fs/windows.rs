//! Windows: the honest equivalent of the Unix checks, by path.
//!
//! Files are opened with `FILE_FLAG_OPEN_REPARSE_POINT`, so a symlink or
//! junction planted in place of a file is opened as itself and refused,
//! never followed; new files are created with `CREATE_NEW`. A directory
//! must not itself be a reparse point. Windows has no mode bits: new
//! directories inherit the ACL of their parent, and corral does not yet
//! check the owner or the DACL of an existing one (the gap to close is
//! `GetSecurityInfo` against the daemon's SID); nor can a directory be
//! flushed, so `replace` ends with the rename (`MoveFileEx` with
//! `MOVEFILE_REPLACE_EXISTING`, atomic on NTFS).

use super::Unsafe;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::windows::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// From winbase.h; not worth a windows-sys feature for one constant.
const FILE_FLAG_OPEN_REPARSE_POINT: u32 = 0x0020_0000;

pub(super) enum How {
    Append,
    CreateNew,
    Read,
}

#[derive(Debug)]
pub(super) struct Dir(PathBuf);

impl Dir {
    pub(super) fn create_or_check(path: &Path) -> io::Result<Dir> {
        std::fs::create_dir_all(path)?;
        check_dir(path)?;
        Ok(Dir(path.to_path_buf()))
    }

    pub(super) fn subdir(&self, name: &str, path: &Path, must_be_new: bool) -> io::Result<Dir> {
        match std::fs::create_dir(self.0.join(name)) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists && !must_be_new => {}
            Err(e) => return Err(e),
        }
        check_dir(path)?;
        Ok(Dir(path.to_path_buf()))
    }

    pub(super) fn open_file(&self, name: &str, path: &Path, how: How) -> io::Result<File> {
        let mut o = OpenOptions::new();
        o.custom_flags(FILE_FLAG_OPEN_REPARSE_POINT);
        match how {
            How::Append => o.append(true).create(true),
            How::CreateNew => o.write(true).create_new(true),
            How::Read => o.read(true),
        };
        let f = o.open(self.0.join(name))?;
        let t = f.metadata()?.file_type();
        if t.is_symlink() {
            return Err(Unsafe::Symlink(path.to_path_buf()).into());
        }
        if !t.is_file() {
            return Err(Unsafe::NotFile(path.to_path_buf()).into());
        }
        Ok(f)
    }

    pub(super) fn rename(&self, from: &str, to: &str) -> io::Result<()> {
        std::fs::rename(self.0.join(from), self.0.join(to))
    }

    pub(super) fn remove(&self, name: &str) -> io::Result<()> {
        std::fs::remove_file(self.0.join(name))
    }

    pub(super) fn sync(&self) -> io::Result<()> {
        Ok(())
    }
}

fn check_dir(path: &Path) -> io::Result<()> {
    let t = std::fs::symlink_metadata(path)?.file_type();
    if t.is_symlink() {
        return Err(Unsafe::Symlink(path.to_path_buf()).into());
    }
    if !t.is_dir() {
        return Err(Unsafe::NotDir(path.to_path_buf()).into());
    }
    Ok(())
}
