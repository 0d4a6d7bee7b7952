//! For the unit tests of the config's readers: what loading a config
//! says about it.

use std::path::Path;

/// Every error of `src` read as `corral.toml`, as the daemon prints them.
/// Panics when it loads: these tests expect a refusal.
pub(super) fn errors(src: &str) -> String {
    super::parse(src, Path::new("corral.toml")).expect_err("the config loads, but a refusal was expected").to_string()
}
