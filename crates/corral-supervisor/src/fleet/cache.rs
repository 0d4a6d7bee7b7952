//! The last desired state a node applied, kept in `state_dir/fleet.json`
//! so that a daemon that starts while etcd is away runs what it ran.
//! Written atomically and without following links, through the state
//! dir's [`PrivateDir`](crate::sys::safe_fs::PrivateDir).

use super::watch::Desired;
use crate::sys::safe_fs::PrivateDir;
use std::path::Path;

const NAME: &str = "fleet.json";
/// Up to 1000 services of at most 64 KiB each, as JSON.
const MAX_BYTES: u64 = 256 << 20;

/// The cached state, if there is a readable one.
pub(crate) fn load(state_dir: &Path) -> Option<Desired> {
    let bytes = PrivateDir::create_or_check(state_dir).ok()?.read(NAME, MAX_BYTES).ok()??;
    serde_json::from_slice(&bytes).ok()
}

/// Replaces the cache.
pub(crate) fn save(state_dir: &Path, desired: &Desired) -> std::io::Result<()> {
    let bytes = serde_json::to_vec(desired).map_err(std::io::Error::other)?;
    PrivateDir::create_or_check(state_dir)?.replace(NAME, &bytes)
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
