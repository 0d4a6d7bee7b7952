//! Files a config names for corral to read (env files): opened without
//! following a symlink in the last component when the daemon is root
//! (a service could plant one to make root read a file it may not), and
//! read only if they are regular files, at most `limit` bytes (a FIFO
//! would block the load, `/dev/zero` never end).

use super::safe_fs::Unsafe;
use std::io::{self, Read};
use std::path::Path;

/// The file's bytes; `NotFound` when it does not exist, `InvalidData`
/// past `limit`, an [`Unsafe`] when it is a symlink (as root) or not a
/// regular file.
pub(crate) fn read_bounded(path: &Path, limit: u64) -> io::Result<Vec<u8>> {
    let file = open(path)?;
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(Unsafe::NotFile(path.to_path_buf()).into());
    }
    let mut out = Vec::new();
    file.take(limit.saturating_add(1)).read_to_end(&mut out)?;
    if out.len() as u64 > limit {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{} is larger than {} KiB", path.display(), limit >> 10),
        ));
    }
    Ok(out)
}

#[cfg(unix)]
fn open(path: &Path) -> io::Result<std::fs::File> {
    use rustix::fs::{self as rfs, Mode, OFlags, CWD};
    // O_NONBLOCK: opening a FIFO must not wait for a writer.
    let mut flags = OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NONBLOCK;
    if rustix::process::geteuid().is_root() {
        flags |= OFlags::NOFOLLOW;
    }
    let fd = rfs::openat(CWD, path, flags, Mode::empty()).map_err(|e| match e {
        rustix::io::Errno::LOOP => Unsafe::Symlink(path.to_path_buf()).into(),
        e => io::Error::from(e),
    })?;
    rfs::fcntl_setfl(&fd, rfs::fcntl_getfl(&fd)? - OFlags::NONBLOCK)?;
    Ok(std::fs::File::from(fd))
}

/// The daemon is never root on Windows; the file is read as the account
/// it runs as.
#[cfg(not(unix))]
fn open(path: &Path) -> io::Result<std::fs::File> {
    std::fs::File::open(path)
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    #[test]
    fn regular_files_only_and_bounded() {
        let t = tempfile::tempdir().unwrap();
        let f = t.path().join("a.env");
        std::fs::write(&f, b"A=1\n").unwrap();
        assert_eq!(read_bounded(&f, 10).unwrap(), b"A=1\n");
        assert_eq!(read_bounded(&f, 3).unwrap_err().kind(), io::ErrorKind::InvalidData);
        assert_eq!(read_bounded(&t.path().join("missing"), 10).unwrap_err().kind(), io::ErrorKind::NotFound);
        assert!(read_bounded(t.path(), 10).unwrap_err().to_string().contains("not a regular file"));
        let link = t.path().join("link.env");
        std::os::unix::fs::symlink(&f, &link).unwrap();
        let r = read_bounded(&link, 10);
        if rustix::process::geteuid().is_root() {
            assert!(r.unwrap_err().to_string().contains("symlink"));
        } else {
            assert_eq!(r.unwrap(), b"A=1\n");
        }
    }
}
