//! Where the testkit binary is, for the tests of other crates.
//!
//! `cargo test` builds a package's own binaries for its integration tests,
//! but not the binaries of other packages, and a stale one from an older
//! build would be silently used. So the first call in a test process runs
//! `cargo build -p corral-testkit` into the test's own target directory
//! (a no-op when it is up to date), and every call returns its path.

use std::path::PathBuf;
use std::sync::OnceLock;

pub mod counted;
pub mod numbered;
#[cfg(unix)]
pub mod test_support;

/// Runs a mode of the binary when `words` starts with its `name`: its exit
/// code, 2 with the error on stderr when it fails; `None` for another mode.
pub fn run_mode(words: &[String], name: &str, run: impl FnOnce(&[String]) -> Result<(), String>) -> Option<i32> {
    let (mode, rest) = words.split_first()?;
    if mode != name {
        return None;
    }
    Some(match run(rest) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("corral-testkit {name}: {e}");
            2
        }
    })
}

/// The path of a fresh `corral-testkit` binary next to the running test.
///
/// Panics with a clear message when it cannot be built: a test without its
/// child program cannot run.
pub fn binary() -> PathBuf {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        let exe = std::env::current_exe().expect("the test's own path");
        // <target>/<profile>/deps/<test> -> <target>/<profile>
        let profile_dir = exe.parent().and_then(|d| d.parent()).expect("a cargo target layout").to_path_buf();
        let path = profile_dir.join(format!("corral-testkit{}", std::env::consts::EXE_SUFFIX));
        // Under Wine there is no cargo to call: the Windows leg builds it first.
        if cfg!(unix) {
            let target_dir = profile_dir.parent().expect("a cargo target layout");
            let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
            let mut cmd = std::process::Command::new(cargo);
            cmd.args(["build", "-q", "-p", "corral-testkit", "--bin", "corral-testkit", "--target-dir"])
                .arg(target_dir);
            if profile_dir.ends_with("release") {
                cmd.arg("--release");
            }
            let ok = cmd.status().map(|s| s.success()).unwrap_or(false);
            assert!(ok, "building corral-testkit failed: run `cargo build -p corral-testkit` to see why");
        }
        assert!(path.exists(), "{} is missing: build it with `cargo build -p corral-testkit`", path.display());
        path
    })
    .clone()
}
