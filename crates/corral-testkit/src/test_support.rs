//! What the Unix tests of every crate share: proving that the processes
//! a test saw are gone, asking whether this host can run a test at all,
//! and temp dirs that a group's private /tmp cannot hide.
//!
//! Std and libc only, so the library's and the CLI's tests can both use
//! it without the testkit depending on either. Start times come from
//! `/proc`: Linux only (elsewhere every process reads as gone).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// The start time of `pid` (clock ticks since boot), `None` once it is
/// gone: a pid and its start time name one process, even after the pid
/// is reused.
pub fn starttime(pid: u32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The name in parentheses may hold spaces; the fields after it do not.
    let rest = &s[s.rfind(')')? + 2..];
    rest.split(' ').nth(19)?.parse().ok()
}

/// Which of `pids` are alive now, with their start times, to prove them
/// gone later with [`assert_gone`].
pub fn alive(pids: impl IntoIterator<Item = u32>) -> Vec<(u32, u64)> {
    pids.into_iter().filter_map(|p| starttime(p).map(|s| (p, s))).collect()
}

/// Panics naming every process of `pids` that still runs (a zombie counts:
/// nobody reaped it).
pub fn assert_gone(pids: &[(u32, u64)]) {
    let left: Vec<u32> = pids.iter().filter(|(p, s)| starttime(*p) == Some(*s)).map(|(p, _)| *p).collect();
    assert!(left.is_empty(), "survivors (zombies count): {left:?}");
}

/// The pids a testkit ready line lists under `key` (`"all":[12,13]`);
/// none if it has no such list.
pub fn listed_pids(line: &str, key: &str) -> Vec<u32> {
    let Some(at) = line.find(&format!("\"{key}\":[")) else { return Vec::new() };
    let rest = &line[at + key.len() + 4..];
    let list = &rest[..rest.find(']').unwrap_or(rest.len())];
    list.split(',').filter_map(|s| s.trim().parse().ok()).collect()
}

/// Calls `f` every `every` until it gives a value, for at most `within`;
/// then panics naming `what`. For what nothing can be waited on directly
/// (a state another thread reaches, a file another process writes).
pub fn eventually<T>(what: &str, within: Duration, every: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let end = Instant::now() + within;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < end, "never within {within:?}: {what}");
        std::thread::sleep(every);
    }
}

/// Whether the test runs as root (namespaces, mounts, cgroups, the
/// process connector and other users need it).
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// Returns from the test, saying SKIPPED and why, unless it runs as root.
#[macro_export]
macro_rules! require_root {
    ($why:expr) => {
        if !$crate::test_support::is_root() {
            eprintln!("SKIPPED: {}", $why);
            return;
        }
    };
}

/// A directory of the test's own on the real disk, removed on drop.
///
/// Never under /tmp: `private_tmp` hides /tmp inside the group, so a bind
/// or a read-only path there would vanish (a checkout under /tmp puts the
/// target dir there, hence /var/tmp then).
pub struct DiskDir(PathBuf);

impl DiskDir {
    /// A fresh, empty `<name>-<pid>-<n>` beside the running test's build.
    pub fn new(name: &str) -> DiskDir {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let base = target_tmp();
        let base = if base.starts_with("/tmp") { PathBuf::from("/var/tmp") } else { base };
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let d = base.join(format!("{name}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap_or_else(|e| panic!("cannot create {}: {e}", d.display()));
        DiskDir(d)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for DiskDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Cargo's `CARGO_TARGET_TMPDIR` (`<target>/tmp`), found from the test's
/// own path (`<target>/<profile>/deps/<test>`): the variable is set only
/// while an integration test itself compiles.
fn target_tmp() -> PathBuf {
    let exe = std::env::current_exe().expect("the test's own path");
    let target = exe.ancestors().nth(3).expect("a cargo target layout");
    target.join("tmp")
}
