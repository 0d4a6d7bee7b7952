//! Defaults that work without root: everything lives next to the config,
//! so two projects never share a socket and no system folder is needed.

use std::path::{Path, PathBuf};

/// `corral.toml` in the current folder, or `$CORRAL_CONFIG`.
pub fn default_config_path() -> PathBuf {
    std::env::var_os("CORRAL_CONFIG").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("corral.toml"))
}

/// The folder relative paths are anchored to.
pub(crate) fn base_dir(config: &Path) -> PathBuf {
    let dir = config.parent().map(Path::to_path_buf).unwrap_or_default();
    let dir = if dir.as_os_str().is_empty() { PathBuf::from(".") } else { dir };
    std::path::absolute(&dir).unwrap_or(dir)
}

pub(crate) fn anchor(base: &Path, p: &Path) -> PathBuf {
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        base.join(p)
    }
}
