//! Files the daemon writes, opened so that nobody else can redirect them.
//!
//! The daemon often runs as root while its services do not. A path such
//! as `log_dir/web/0.log` is only as safe as every directory on it: a
//! service that can write one of them can swap a file for a symlink to
//! `/etc/shadow` and have root append to it. So every file is opened
//! relative to a [`PrivateDir`] (a directory handle whose owner and mode
//! were checked once), never following a symlink in its last component;
//! new files are created exclusively and private (0600, dirs 0700), and
//! a directory corral did not create never has its mode changed.

use std::fmt;
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};

#[cfg(unix)]
#[path = "safe_fs/unix.rs"]
mod imp;

#[cfg(windows)]
#[path = "safe_fs/windows.rs"]
mod imp;

/// Why a path was refused: something other than the daemon's own user
/// could change what it points to.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Unsafe {
    /// The last component is a symlink (or a Windows reparse point).
    Symlink(PathBuf),
    /// A directory was expected.
    NotDir(PathBuf),
    /// A regular file was expected (a FIFO, a device, a socket…).
    NotFile(PathBuf),
    /// Owned by another user.
    Owner { path: PathBuf, uid: u32, ours: u32 },
    /// Other users may write it (group- or world-writable).
    Writable { path: PathBuf, mode: u32 },
    /// A file with more than one name: another name may be anywhere.
    Linked { path: PathBuf, links: u64 },
}

impl fmt::Display for Unsafe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Unsafe::Symlink(p) => {
                write!(f, "{} is a symlink; corral never follows one where it writes: remove it", p.display())
            }
            Unsafe::NotDir(p) => write!(f, "{} is not a directory: remove it or choose another path", p.display()),
            Unsafe::NotFile(p) => write!(f, "{} is not a regular file: remove it", p.display()),
            Unsafe::Owner { path, uid, ours } => write!(
                f,
                "{} belongs to uid {uid}, not to corral's uid {ours}: another user could redirect what corral \
                 writes there; chown it to uid {ours} or remove it",
                path.display()
            ),
            Unsafe::Writable { path, mode } => write!(
                f,
                "{} is writable by other users (mode {mode:o}); corral writes only in a private directory: \
                 choose another path (corral never changes the mode of a directory it did not create)",
                path.display()
            ),
            Unsafe::Linked { path, links } => {
                write!(f, "{} has {links} hard links; corral writes only a file of its own: remove it", path.display())
            }
        }
    }
}

impl std::error::Error for Unsafe {}

impl From<Unsafe> for io::Error {
    fn from(u: Unsafe) -> io::Error {
        io::Error::new(io::ErrorKind::PermissionDenied, u)
    }
}

/// A directory only the daemon's user can change, held open: files in it
/// are reached through the handle, so renaming or replacing the path
/// afterwards does not redirect them.
#[derive(Debug)]
pub struct PrivateDir {
    path: PathBuf,
    imp: imp::Dir,
}

impl PrivateDir {
    /// Opens `path`, creating it and its missing parents (0700). An
    /// existing one must be a real directory, owned by the daemon's user
    /// and writable by nobody else; it is refused otherwise, never fixed.
    pub fn create_or_check(path: &Path) -> io::Result<PrivateDir> {
        Ok(PrivateDir { path: path.to_path_buf(), imp: imp::Dir::create_or_check(path)? })
    }

    /// The directory `name` in this one, created (0700) when missing and
    /// checked like [`PrivateDir::create_or_check`].
    pub fn subdir(&self, name: &str) -> io::Result<PrivateDir> {
        let path = self.child(name)?;
        Ok(PrivateDir { imp: self.imp.subdir(name, &path, false)?, path })
    }

    /// A new directory `name` (0700); `AlreadyExists` when the name is taken.
    pub fn new_subdir(&self, name: &str) -> io::Result<PrivateDir> {
        let path = self.child(name)?;
        Ok(PrivateDir { imp: self.imp.subdir(name, &path, true)?, path })
    }

    /// `name` opened for appending, created 0600 when missing. An existing
    /// one must be a regular file of the daemon's user with one name.
    pub fn append(&self, name: &str) -> io::Result<File> {
        let path = self.child(name)?;
        self.imp.open_file(name, &path, imp::How::Append)
    }

    /// A new file `name` (0600); `AlreadyExists` when the name is taken,
    /// whatever it is (a planted symlink included).
    pub fn create_new(&self, name: &str) -> io::Result<File> {
        let path = self.child(name)?;
        self.imp.open_file(name, &path, imp::How::CreateNew)
    }

    /// The contents of `name`, at most `limit` bytes (`InvalidData` past
    /// it); `None` when it does not exist.
    pub fn read(&self, name: &str, limit: u64) -> io::Result<Option<Vec<u8>>> {
        use std::io::Read;
        let path = self.child(name)?;
        let Some(f) = self.open_read(name)? else { return Ok(None) };
        let mut bytes = Vec::new();
        f.take(limit.saturating_add(1)).read_to_end(&mut bytes)?;
        if bytes.len() as u64 > limit {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{} is larger than {limit} bytes", path.display()),
            ));
        }
        Ok(Some(bytes))
    }

    /// The regular file `name` opened for reading; `None` when it does not
    /// exist.
    pub fn open_read(&self, name: &str) -> io::Result<Option<File>> {
        let path = self.child(name)?;
        match self.imp.open_file(name, &path, imp::How::Read) {
            Ok(f) => Ok(Some(f)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Replaces `name` with `bytes` atomically: a reader (or a crash) sees
    /// the old contents or the new, never a mix. Written to `name.tmp`,
    /// synced, renamed over `name`, and the directory synced so the rename
    /// itself survives a power cut.
    pub fn replace(&self, name: &str, bytes: &[u8]) -> io::Result<()> {
        use std::io::Write;
        let tmp = format!("{name}.tmp");
        // A leftover of a crash, or something planted: either way not ours
        // to write through.
        self.remove(&tmp)?;
        let mut f = self.create_new(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        drop(f);
        self.rename(&tmp, name)?;
        self.imp.sync()
    }

    /// Renames `from` to `to` inside this directory (replacing `to`).
    pub fn rename(&self, from: &str, to: &str) -> io::Result<()> {
        self.child(from)?;
        self.child(to)?;
        self.imp.rename(from, to)
    }

    /// Removes the file `name`; a missing one is fine.
    pub fn remove(&self, name: &str) -> io::Result<()> {
        self.child(name)?;
        match self.imp.remove(name) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            r => r,
        }
    }

    /// The path it was opened at, for messages.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// `name` must be one plain component: no separator, no `..`.
    fn child(&self, name: &str) -> io::Result<PathBuf> {
        let plain = !name.is_empty() && name != "." && name != ".." && !name.contains(['/', '\\']);
        if !plain {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, format!("{name:?} is not a plain file name")));
        }
        Ok(self.path.join(name))
    }
}

/// Opens `path` for appending, its folder created or checked as a
/// [`PrivateDir`]: the way to open a file given by a full path.
pub fn append_to(path: &Path) -> io::Result<(PrivateDir, File)> {
    let (dir, name) = split(path)?;
    let f = dir.append(&name)?;
    Ok((dir, f))
}

fn split(path: &Path) -> io::Result<(PrivateDir, String)> {
    let bad = || io::Error::new(io::ErrorKind::InvalidInput, format!("{} names no file", path.display()));
    let name = path.file_name().and_then(|n| n.to_str()).ok_or_else(bad)?;
    let parent = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    Ok((PrivateDir::create_or_check(parent)?, name.to_string()))
}

/// The [`Unsafe`] reason inside an error, if that is what it is.
#[cfg(all(test, unix))]
pub fn unsafe_reason(e: &io::Error) -> Option<&Unsafe> {
    e.get_ref().and_then(|r| r.downcast_ref::<Unsafe>())
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::io::Write;
    use std::os::unix::fs::{symlink, DirBuilderExt, MetadataExt, PermissionsExt};

    fn mode(p: &Path) -> u32 {
        std::fs::symlink_metadata(p).unwrap().mode() & 0o7777
    }

    #[test]
    fn creates_private_dirs_and_files() {
        let t = tempfile::tempdir().unwrap();
        let d = PrivateDir::create_or_check(&t.path().join("a/b")).unwrap();
        assert_eq!(mode(&t.path().join("a")), 0o700);
        assert_eq!(mode(&t.path().join("a/b")), 0o700);
        let s = d.subdir("svc").unwrap();
        assert_eq!(mode(s.path()), 0o700);
        s.append("0.log").unwrap().write_all(b"x\n").unwrap();
        assert_eq!(mode(&s.path().join("0.log")), 0o600);
        s.append("0.log").unwrap().write_all(b"y\n").unwrap();
        assert_eq!(std::fs::read(s.path().join("0.log")).unwrap(), b"x\ny\n");
    }

    #[test]
    fn an_existing_shared_dir_is_refused_and_keeps_its_mode() {
        let t = tempfile::tempdir().unwrap();
        let shared = t.path().join("shared");
        std::fs::DirBuilder::new().mode(0o777).create(&shared).unwrap();
        std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o1777)).unwrap();
        let e = PrivateDir::create_or_check(&shared).unwrap_err();
        assert!(matches!(unsafe_reason(&e), Some(Unsafe::Writable { mode: 0o1777, .. })), "{e}");
        assert_eq!(mode(&shared), 0o1777);
        // A readable (0755) one of ours is fine: nobody else can write it.
        let open = t.path().join("open");
        std::fs::DirBuilder::new().mode(0o755).create(&open).unwrap();
        std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o755)).unwrap();
        PrivateDir::create_or_check(&open).unwrap();
        assert_eq!(mode(&open), 0o755);
    }

    #[test]
    fn symlinks_are_never_followed() {
        let t = tempfile::tempdir().unwrap();
        let secret = t.path().join("secret");
        std::fs::write(&secret, b"root only\n").unwrap();
        let real = t.path().join("real");
        std::fs::create_dir(&real).unwrap();
        // The directory itself a symlink.
        symlink(&real, t.path().join("link")).unwrap();
        let e = PrivateDir::create_or_check(&t.path().join("link")).unwrap_err();
        assert!(matches!(unsafe_reason(&e), Some(Unsafe::Symlink(_))), "{e}");
        let d = PrivateDir::create_or_check(&real).unwrap();
        symlink(&real, real.join("sub")).unwrap();
        let e = d.subdir("sub").unwrap_err();
        assert!(matches!(unsafe_reason(&e), Some(Unsafe::Symlink(_))), "{e}");
        // A file replaced by a symlink: refused to append, and a new file
        // never replaces it.
        symlink(&secret, real.join("0.log")).unwrap();
        let e = d.append("0.log").unwrap_err();
        assert!(matches!(unsafe_reason(&e), Some(Unsafe::Symlink(_))), "{e}");
        assert_eq!(d.create_new("0.log").unwrap_err().kind(), io::ErrorKind::AlreadyExists);
        // A planted tmp file is removed, not written through.
        symlink(&secret, real.join("state.json.tmp")).unwrap();
        d.replace("state.json", b"{}").unwrap();
        assert_eq!(std::fs::read(real.join("state.json")).unwrap(), b"{}");
        assert_eq!(std::fs::read(&secret).unwrap(), b"root only\n");
    }

    #[test]
    fn hard_links_fifos_and_foreign_files_are_refused() {
        let t = tempfile::tempdir().unwrap();
        let d = PrivateDir::create_or_check(t.path()).unwrap();
        std::fs::write(t.path().join("other"), b"x").unwrap();
        std::fs::hard_link(t.path().join("other"), t.path().join("linked")).unwrap();
        let e = d.append("linked").unwrap_err();
        assert!(matches!(unsafe_reason(&e), Some(Unsafe::Linked { links: 2, .. })), "{e}");
        let fifo = t.path().join("fifo");
        let c = std::ffi::CString::new(fifo.as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        // No reader: a blocking open would hang here.
        let e = d.append("fifo").unwrap_err();
        assert!(e.raw_os_error() == Some(libc::ENXIO) || unsafe_reason(&e).is_some(), "{e}");
        assert!(matches!(d.read("fifo", 10).map_err(|e| unsafe_reason(&e).cloned()), Err(Some(Unsafe::NotFile(_)))));
        assert!(d.read("missing", 10).unwrap().is_none());
        d.replace("big", &[b'x'; 11]).unwrap();
        assert_eq!(d.read("big", 10).unwrap_err().kind(), io::ErrorKind::InvalidData);
        assert!(d.child("../x").is_err() && d.child("a/b").is_err());
    }

    #[test]
    fn a_dir_of_another_user_is_refused() {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            return eprintln!("skipped: needs root to chown");
        }
        let t = tempfile::tempdir().unwrap();
        let d = PrivateDir::create_or_check(t.path()).unwrap();
        let theirs = d.subdir("theirs").unwrap();
        std::os::unix::fs::chown(theirs.path(), Some(65534), Some(65534)).unwrap();
        let e = d.subdir("theirs").unwrap_err();
        assert!(matches!(unsafe_reason(&e), Some(Unsafe::Owner { uid: 65534, ours: 0, .. })), "{e}");
        assert!(e.to_string().contains("chown it to uid 0 or remove it"), "{e}");
    }
}
