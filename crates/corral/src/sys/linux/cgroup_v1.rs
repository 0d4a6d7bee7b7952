//! One group as a set of cgroup v1 directories, one per controller.
//!
//! v1 has no `cgroup.kill` and no "empty" notification. The atomic kill is
//! the freezer: freeze (no member can fork any more), SIGKILL every member,
//! thaw so the kills land. Limits: `memory.limit_in_bytes`, `pids.max`,
//! `cpu.cfs_quota_us`; OOM kills arrive on an eventfd registered through
//! `cgroup.event_control` on `memory.oom_control`.

use super::cgroup_v2::{keyed, read_pids, remove_dir_retry};
use super::counter_files::CounterFiles;
use super::fds::EventFd;
use super::hierarchy::Layout;
use std::fs;
use std::io;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Debug)]
pub(crate) struct CgroupV1 {
    /// (controller, directory); co-mounted controllers share a directory.
    dirs: Vec<(String, PathBuf)>,
    /// Signalled by the kernel on each OOM in the memory cgroup. Shared
    /// with the next group when the directories are reused (the kernel
    /// keeps the registration as long as the eventfd lives).
    pub oom_event: Option<Arc<EventFd>>,
    /// Its counter files, kept open on a poolable leaf.
    pub kept: CounterFiles,
}

impl CgroupV1 {
    /// Creates `<root>/<name>` for each of `controllers` that the host has.
    pub(crate) fn create(layout: &Layout, name: &str, controllers: &[&str]) -> io::Result<CgroupV1> {
        let mut me = CgroupV1 { dirs: Vec::new(), oom_event: None, kept: CounterFiles::default() };
        for c in controllers {
            let Some(root) = layout.v1_root(c) else { continue };
            let dir = root.join(name);
            let made = fs::create_dir(&dir).or_else(|e| {
                // The root is made when missing: the first time, or after
                // a concurrent corral removed it empty.
                if e.kind() == io::ErrorKind::NotFound {
                    fs::create_dir_all(root)?;
                    fs::create_dir(&dir)
                } else {
                    Err(e)
                }
            });
            match made {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists && me.dirs.iter().any(|(_, d)| *d == dir) => {}
                Err(e) => {
                    let _ = me.remove_all();
                    return Err(e);
                }
            }
            me.dirs.push((c.to_string(), dir));
        }
        Ok(me)
    }

    /// Wraps existing directories (of a stale group).
    pub(crate) fn adopt(dirs: Vec<(String, PathBuf)>) -> CgroupV1 {
        CgroupV1 { dirs, oom_event: None, kept: CounterFiles::default() }
    }

    /// The same directories, OOM registration and kept counter files,
    /// for the next group of a pooled leaf.
    pub(crate) fn reused(&self) -> CgroupV1 {
        CgroupV1 { dirs: self.dirs.clone(), oom_event: self.oom_event.clone(), kept: self.kept.take() }
    }

    /// Reads the counter file `name` of `controller`'s directory.
    fn counter<R>(&self, controller: &str, name: &'static str, parse: impl FnOnce(&str) -> Option<R>) -> Option<R> {
        self.kept.read(name, || Some(self.dir(controller)?.join(name)), parse)
    }

    fn counter_u64(&self, controller: &str, name: &'static str) -> Option<u64> {
        self.counter(controller, name, |t| t.trim().parse().ok())
    }

    pub(crate) fn dir(&self, controller: &str) -> Option<&Path> {
        self.dirs.iter().find(|(c, _)| c == controller).map(|(_, d)| d.as_path())
    }

    /// Every (controller, directory) of the group.
    pub(crate) fn dirs(&self) -> &[(String, PathBuf)] {
        &self.dirs
    }

    pub(crate) fn has(&self, controller: &str) -> bool {
        self.dir(controller).is_some()
    }

    /// The files a new leader joins through, one per distinct directory:
    /// `tasks`, not `cgroup.procs`. Between fork and exec the child has one
    /// thread, so moving that thread moves the process; and the kernel
    /// moves the writer's own single thread without taking the global
    /// threadgroup lock for writing, whose RCU grace period made every
    /// `cgroup.procs` join cost 5–20 ms on an idle host.
    pub(crate) fn join_files(&self) -> Vec<PathBuf> {
        let mut out: Vec<PathBuf> = self.dirs.iter().map(|(_, d)| d.join("tasks")).collect();
        out.dedup();
        out
    }

    /// Members, from the controller that tracks every process.
    pub(crate) fn members(&self) -> io::Result<Vec<u32>> {
        for c in ["pids", "freezer", "memory", "cpuacct", "cpu"] {
            if let Some(d) = self.dir(c) {
                return read_pids(&d.join("cgroup.procs"));
            }
        }
        Ok(Vec::new())
    }

    pub(crate) fn set_memory(&mut self, bytes: u64) -> io::Result<()> {
        let d = self.dir("memory").ok_or(io::ErrorKind::Unsupported)?.to_path_buf();
        fs::write(d.join("memory.limit_in_bytes"), bytes.to_string())?;
        // memsw (memory+swap) must be >= the memory limit; set it after.
        let _ = fs::write(d.join("memory.memsw.limit_in_bytes"), bytes.to_string());
        // Register an eventfd for OOM notifications.
        let efd = EventFd::new()?;
        let ctl = fs::File::open(d.join("memory.oom_control"))?;
        fs::write(d.join("cgroup.event_control"), format!("{} {}", efd.raw(), ctl.as_raw_fd()))?;
        // The kernel holds its own reference to the control file now.
        drop(ctl);
        self.oom_event = Some(Arc::new(efd));
        Ok(())
    }

    pub(crate) fn set_pids_max(&self, n: u32) -> io::Result<()> {
        let d = self.dir("pids").ok_or(io::ErrorKind::Unsupported)?;
        fs::write(d.join("pids.max"), n.to_string())
    }

    pub(crate) fn set_cpus(&self, cores: f64) -> io::Result<()> {
        let d = self.dir("cpu").ok_or(io::ErrorKind::Unsupported)?;
        let period: u64 = 100_000;
        let quota = ((cores * period as f64).round() as u64).max(1000);
        fs::write(d.join("cpu.cfs_period_us"), period.to_string())?;
        fs::write(d.join("cpu.cfs_quota_us"), quota.to_string())
    }

    pub(crate) fn oom_kills(&self) -> u64 {
        self.counter("memory", "memory.oom_control", |s| keyed(s, "oom_kill")).unwrap_or(0)
    }

    pub(crate) fn pids_max_hits(&self) -> u64 {
        self.counter("pids", "pids.events", |s| keyed(s, "max")).unwrap_or(0)
    }

    /// (user, system) from cpuacct, in nanoseconds on disk.
    pub(crate) fn cpu(&self) -> Option<(Duration, Duration)> {
        let u = self.counter_u64("cpuacct", "cpuacct.usage_user")?;
        let s = self.counter_u64("cpuacct", "cpuacct.usage_sys")?;
        Some((Duration::from_nanos(u), Duration::from_nanos(s)))
    }

    pub(crate) fn memory_peak(&self) -> Option<u64> {
        self.counter_u64("memory", "memory.max_usage_in_bytes")
    }

    pub(crate) fn memory_current(&self) -> Option<u64> {
        self.counter_u64("memory", "memory.usage_in_bytes")
    }

    /// Freeze, SIGKILL every member, thaw. Without a freezer this is a
    /// best-effort loop of SIGKILL over `cgroup.procs`. Each member is
    /// handed to `note` before it is killed: v1 shows a zombie in the root
    /// cgroup, so the caller must know the pids to find and reap their
    /// zombies, and a teardown racing this kill may look for them as soon
    /// as the first one dies.
    pub(crate) fn kill(&self, note: impl Fn(&[u32])) -> io::Result<()> {
        let Some(fz) = self.dir("freezer") else {
            for _ in 0..100 {
                let m = self.members()?;
                if m.is_empty() {
                    break;
                }
                note(&m);
                for p in m {
                    let _ = crate::sys::unix::kill(p, libc::SIGKILL);
                }
            }
            return Ok(());
        };
        let state = fz.join("freezer.state");
        fs::write(&state, "FROZEN")?;
        // Freezing is asynchronous: wait until no member can run (bounded).
        let end = Instant::now() + Duration::from_secs(2);
        while fs::read_to_string(&state).map(|s| s.trim() != "FROZEN").unwrap_or(false) && Instant::now() < end {
            std::thread::sleep(Duration::from_micros(200));
        }
        let members = self.members()?;
        note(&members);
        for p in members {
            let _ = crate::sys::unix::kill(p, libc::SIGKILL);
        }
        fs::write(&state, "THAWED")?;
        Ok(())
    }

    pub(crate) fn remove_all(&self) -> io::Result<()> {
        let mut first_err = None;
        let mut seen: Vec<&PathBuf> = Vec::new();
        for (_, d) in &self.dirs {
            if seen.contains(&d) {
                continue;
            }
            seen.push(d);
            if let Err(e) = remove_dir_retry(d) {
                first_err.get_or_insert(e);
            }
        }
        first_err.map_or(Ok(()), Err)
    }
}
