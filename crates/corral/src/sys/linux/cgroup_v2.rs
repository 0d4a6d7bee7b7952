//! One group as a cgroup v2 leaf.
//!
//! Membership is `cgroup.procs`; the kill is `cgroup.kill` (Linux 5.14+),
//! which the kernel makes atomic against forks; "empty" is `populated 0` in
//! `cgroup.events`, signalled through poll(2) (POLLPRI). Limits and accounting use the
//! controllers where they are enabled: `memory.max`, `pids.max`, `cpu.max`,
//! `memory.peak`, `memory.events`, `pids.events`, `cpu.stat`. On a hybrid
//! host the v2 tree has no controllers, and only membership, kill, events
//! and `cpu.stat` come from here.

use super::counter_files::CounterFiles;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(Debug)]
pub(crate) struct CgroupV2 {
    pub dir: PathBuf,
    /// Its counter files, kept open on a poolable leaf.
    pub kept: CounterFiles,
}

/// Reads a small kernel file whole, in as few calls as it takes: open,
/// read, the read that finds the end, close. Kernel files have no size to
/// plan by, so `fs::read_to_string` asks for one (a stat; `File`'s own
/// reader a `lseek` too) and then reads in growing steps from 32 bytes,
/// twice the calls for each of the dozen cgroup files a group start and
/// end read, and for the `/proc` files of `procfs`. Bounded at 1 MiB (a
/// huge group's `cgroup.procs`).
pub(crate) fn read_small(path: &Path) -> io::Result<String> {
    let f = fs::File::open(path)?;
    let mut s = String::with_capacity(4096);
    io::Read::read_to_string(&mut io::Read::take(&f, 1 << 20), &mut s)?;
    Ok(s)
}

/// Reads `key value` lines (`memory.events`, `cpu.stat`, …).
pub(crate) fn read_keyed(path: &Path, key: &str) -> Option<u64> {
    keyed(&read_small(path).ok()?, key)
}

/// The value of `key` in `key value` lines.
pub(crate) fn keyed(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|l| {
        let (k, v) = l.split_once(' ')?;
        (k == key).then(|| v.trim().parse().ok()).flatten()
    })
}

pub(crate) fn read_pids(path: &Path) -> io::Result<Vec<u32>> {
    Ok(read_small(path)?.split_whitespace().filter_map(|s| s.parse().ok()).collect())
}

impl CgroupV2 {
    /// Creates `root/name`, enabling in `root` the controllers the limits need.
    pub(crate) fn create(root: &Path, name: &str, controllers: &[&str]) -> io::Result<CgroupV2> {
        let dir = root.join(name);
        // The root is kept for the process's life, so without controllers
        // to enable the leaf is made first and the root only when missing
        // (two calls fewer per group that is not on a pooled leaf, as a
        // supervisor's are). Another corral process may remove an empty
        // root between our create_dir_all and mkdir; a retry that makes
        // the root again settles it.
        for attempt in 0..3 {
            if attempt > 0 || !controllers.is_empty() {
                fs::create_dir_all(root)?;
                if !controllers.is_empty() {
                    enable_controllers(root, controllers)?;
                }
            }
            match fs::create_dir(&dir) {
                Err(e) if e.kind() == io::ErrorKind::NotFound && attempt < 2 => continue,
                r => r?,
            }
            break;
        }
        Ok(CgroupV2::at(dir))
    }

    /// The leaf at `dir`, made before.
    pub(crate) fn at(dir: PathBuf) -> CgroupV2 {
        CgroupV2 { dir, kept: CounterFiles::default() }
    }

    /// The same leaf and its kept counter files, for the next group of
    /// a pooled leaf.
    pub(crate) fn reused(&self) -> CgroupV2 {
        CgroupV2 { dir: self.dir.clone(), kept: self.kept.take() }
    }

    /// Reads one of its counter files.
    fn counter<R>(&self, name: &'static str, parse: impl FnOnce(&str) -> Option<R>) -> Option<R> {
        self.kept.read(name, || Some(self.file(name)), parse)
    }

    pub(crate) fn file(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    pub(crate) fn members(&self) -> io::Result<Vec<u32>> {
        read_pids(&self.file("cgroup.procs"))
    }

    pub(crate) fn populated(&self) -> io::Result<bool> {
        Ok(read_keyed(&self.file("cgroup.events"), "populated").unwrap_or(0) != 0)
    }

    /// Atomic kill of every member (and of every fork racing with it).
    pub(crate) fn kill(&self) -> io::Result<()> {
        fs::write(self.file("cgroup.kill"), "1")
    }

    pub(crate) fn has_kill(&self) -> bool {
        self.file("cgroup.kill").exists()
    }

    pub(crate) fn set_memory_max(&self, bytes: u64) -> io::Result<()> {
        fs::write(self.file("memory.max"), bytes.to_string())?;
        // Swap would let the group hold more than its limit; ignore hosts without it.
        let _ = fs::write(self.file("memory.swap.max"), "0");
        // One OOM kill takes the whole group, so a tree never half-survives.
        let _ = fs::write(self.file("memory.oom.group"), "1");
        Ok(())
    }

    pub(crate) fn set_pids_max(&self, n: u32) -> io::Result<()> {
        fs::write(self.file("pids.max"), n.to_string())
    }

    pub(crate) fn set_cpu_max(&self, cores: f64) -> io::Result<()> {
        let period: u64 = 100_000;
        let quota = ((cores * period as f64).round() as u64).max(1000);
        fs::write(self.file("cpu.max"), format!("{quota} {period}"))
    }

    /// (user, system) CPU time from `cpu.stat`, which every v2 cgroup has.
    pub(crate) fn cpu(&self) -> Option<(Duration, Duration)> {
        self.counter("cpu.stat", |s| {
            Some((Duration::from_micros(keyed(s, "user_usec")?), Duration::from_micros(keyed(s, "system_usec")?)))
        })
    }

    pub(crate) fn memory_peak(&self) -> Option<u64> {
        self.counter("memory.peak", |t| t.trim().parse().ok())
    }

    pub(crate) fn memory_current(&self) -> Option<u64> {
        self.counter("memory.current", |t| t.trim().parse().ok())
    }

    pub(crate) fn oom_kills(&self) -> u64 {
        self.counter("memory.events", |s| keyed(s, "oom_kill")).unwrap_or(0)
    }

    pub(crate) fn pids_max_hits(&self) -> u64 {
        self.counter("pids.events", |s| keyed(s, "max")).unwrap_or(0)
    }

    /// Removes the (empty) directory; a few retries because the kernel may
    /// still be finishing the last exit.
    pub(crate) fn remove(&self) -> io::Result<()> {
        remove_dir_retry(&self.dir)
    }
}

/// `rmdir` with a short bounded retry on EBUSY.
pub(crate) fn remove_dir_retry(dir: &Path) -> io::Result<()> {
    let mut last = None;
    for i in 0..50 {
        match fs::remove_dir(dir) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => last = Some(e),
        }
        std::thread::sleep(Duration::from_millis(1 + i / 5));
    }
    Err(last.unwrap_or_else(|| io::Error::other("rmdir failed")))
}

/// Enables controllers for the children of `root` (and of its ancestors up
/// to the mount, as the kernel requires).
///
/// The "no internal processes" rule forbids enabling controllers for the
/// children of a cgroup that holds processes. When that cgroup holds only
/// this process (a delegated subtree, `systemd-run -p Delegate=yes`), corral
/// moves itself into a leaf, `corral-ctl`, and tries again.
pub(crate) fn enable_controllers(root: &Path, controllers: &[&str]) -> io::Result<()> {
    let enabled = fs::read_to_string(root.join("cgroup.subtree_control")).unwrap_or_default();
    let missing: Vec<&str> =
        controllers.iter().copied().filter(|c| !enabled.split_whitespace().any(|e| e == *c)).collect();
    if missing.is_empty() {
        return Ok(());
    }
    // The parent must offer them to root first.
    if let Some(parent) = root.parent() {
        let offered = fs::read_to_string(root.join("cgroup.controllers")).unwrap_or_default();
        if missing.iter().any(|c| !offered.split_whitespace().any(|o| o == *c))
            && parent.join("cgroup.subtree_control").exists()
        {
            enable_controllers(parent, &missing)?;
        }
    }
    let line: Vec<String> = missing.iter().map(|c| format!("+{c}")).collect();
    let line = line.join(" ");
    match fs::write(root.join("cgroup.subtree_control"), &line) {
        Err(e) if e.raw_os_error() == Some(libc::EBUSY) && holds_only_me(root) => {
            let leaf = root.join("corral-ctl");
            match fs::create_dir(&leaf) {
                Err(e) if e.kind() != io::ErrorKind::AlreadyExists => return Err(e),
                _ => {}
            }
            fs::write(leaf.join("cgroup.procs"), std::process::id().to_string())?;
            fs::write(root.join("cgroup.subtree_control"), &line)
        }
        Err(e) if e.raw_os_error() == Some(libc::EBUSY) => Err(io::Error::new(
            e.kind(),
            format!(
                "{} holds other processes, so its controllers cannot be delegated (cgroup v2's no-internal-processes rule): \
                 point CORRAL_CGROUP_ROOT at an empty cgroup",
                root.display()
            ),
        )),
        r => r,
    }
}

/// True when every process in `dir` is this one.
fn holds_only_me(dir: &Path) -> bool {
    let me = std::process::id();
    read_pids(&dir.join("cgroup.procs")).is_ok_and(|p| p.iter().all(|x| *x == me))
}
