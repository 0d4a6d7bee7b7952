//! `--install`: where each init system looks, and a write that never
//! follows a symlink and never replaces a different file unasked.
//!
//! The new text goes to a fresh temporary file (`O_CREAT | O_EXCL`, so
//! nothing planted under its name is followed) in the destination's
//! folder, then is renamed over the destination: a rename replaces a
//! symlink itself, never what it points to, and an init system reading
//! the folder sees the old file or the new one, never half of one.

use super::{Entry, Init};
use std::io::Write;
use std::path::{Path, PathBuf};

/// What `write` did.
pub(crate) enum Written {
    /// The same text was already there.
    Same,
    /// The file is new or replaced.
    New,
}

/// The file the init system reads, under `root` when given (tests and
/// packaging) instead of `/`.
pub(crate) fn destination(init: Init, e: &Entry, root: Option<&Path>) -> Result<PathBuf, String> {
    let home = || {
        std::env::var_os("HOME")
            .filter(|h| Path::new(h).is_absolute())
            .map(PathBuf::from)
            .ok_or_else(|| "--user needs $HOME set to an absolute path".to_string())
    };
    let path = match (init, e.user) {
        (Init::Systemd, false) => PathBuf::from(format!("/etc/systemd/system/{}.service", e.name)),
        (Init::Systemd, true) => home()?.join(format!(".config/systemd/user/{}.service", e.name)),
        (Init::Openrc, _) => PathBuf::from(format!("/etc/init.d/{}", e.name)),
        (Init::Launchd, false) => PathBuf::from(format!("/Library/LaunchDaemons/{}.plist", e.name)),
        (Init::Launchd, true) => home()?.join(format!("Library/LaunchAgents/{}.plist", e.name)),
    };
    Ok(match root {
        Some(r) => r.join(path.strip_prefix("/").unwrap_or(&path)),
        None => path,
    })
}

/// Writes `text` to `dest` with `mode`, unless a different file is there
/// and `force` is not set. A symlink at `dest` is refused, even with
/// `force`: whoever put it there meant something this tool cannot know.
pub(crate) fn write(dest: &Path, text: &[u8], mode: u32, force: bool) -> Result<Written, String> {
    let shown = dest.display();
    match std::fs::symlink_metadata(dest) {
        Ok(m) if m.file_type().is_symlink() => {
            return Err(format!("{shown} is a symlink: remove it, or install by hand"));
        }
        Ok(m) if !m.is_file() => return Err(format!("{shown} exists and is not a regular file")),
        Ok(m) => {
            let same = m.len() == text.len() as u64 && std::fs::read(dest).is_ok_and(|old| old == text);
            if same {
                return Ok(Written::Same);
            }
            if !force {
                return Err(format!("{shown} exists and differs: review it, then add --force to replace it"));
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(format!("cannot check {shown}: {e}")),
    }
    let folder = dest.parent().ok_or_else(|| format!("{shown} has no folder"))?;
    std::fs::create_dir_all(folder).map_err(|e| format!("cannot create {}: {e}", folder.display()))?;
    let name = dest.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = folder.join(format!(".{name}.corral-{}.tmp", std::process::id()));
    let written = create_new(&tmp, mode)
        .and_then(|mut f| f.write_all(text).and_then(|_| f.sync_all()))
        .and_then(|_| std::fs::rename(&tmp, dest));
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(format!("cannot write {shown}: {e}"));
    }
    Ok(Written::New)
}

#[cfg(unix)]
fn create_new(path: &Path, mode: u32) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    let f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .custom_flags(libc::O_NOFOLLOW)
        .mode(mode)
        .open(path)?;
    // The umask may have taken bits the init system needs (an OpenRC
    // script must be executable).
    use std::os::unix::fs::PermissionsExt;
    f.set_permissions(std::fs::Permissions::from_mode(mode))?;
    Ok(f)
}

#[cfg(not(unix))]
fn create_new(path: &Path, _mode: u32) -> std::io::Result<std::fs::File> {
    std::fs::OpenOptions::new().write(true).create_new(true).open(path)
}
