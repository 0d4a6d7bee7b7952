//! The last desired state a node applied, kept in `state_dir/fleet.json`
//! so that a daemon that starts while etcd is away runs what it ran.
//! Written atomically: a temporary file, fsync, rename, fsync the folder.

use super::watch::Desired;
use std::path::{Path, PathBuf};

/// Where the cache lives.
pub(crate) fn path(state_dir: &Path) -> PathBuf {
    state_dir.join("fleet.json")
}

/// The cached state, if there is a readable one.
pub(crate) fn load(state_dir: &Path) -> Option<Desired> {
    let bytes = std::fs::read(path(state_dir)).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// Replaces the cache.
pub(crate) fn save(state_dir: &Path, desired: &Desired) -> std::io::Result<()> {
    use std::io::Write;
    let target = path(state_dir);
    let tmp = state_dir.join("fleet.json.tmp");
    let _ = std::fs::remove_file(&tmp);
    let mut f = create_new_private(&tmp)?;
    f.write_all(&serde_json::to_vec(desired).map_err(std::io::Error::other)?)?;
    f.sync_all()?;
    std::fs::rename(&tmp, &target)?;
    #[cfg(unix)]
    std::fs::File::open(state_dir)?.sync_all()?;
    Ok(())
}

/// `O_EXCL` (and no symlink followed), mode 0600.
fn create_new_private(p: &Path) -> std::io::Result<std::fs::File> {
    let mut o = std::fs::OpenOptions::new();
    o.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.mode(0o600);
    }
    o.open(p)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_saved_state_loads_back_and_replaces_the_previous() {
        let dir = tempfile::tempdir().unwrap();
        assert!(load(dir.path()).is_none());
        let mut d = Desired { revision: 7, ..Default::default() };
        d.values.insert("web".into(), b"{}".to_vec());
        save(dir.path(), &d).unwrap();
        d.revision = 8;
        save(dir.path(), &d).unwrap();
        assert_eq!(load(dir.path()), Some(d));
        assert!(!dir.path().join("fleet.json.tmp").exists());
    }
}
