//! Reading `/proc`: process stats, command lines, cgroups, environments.
//!
//! Every read can race with the process exiting; a vanished process is
//! `None`, never an error.

use super::cgroup_v2::read_small;
use std::fs;
use std::path::{Path, PathBuf};

/// The fields of `/proc/<pid>/stat` corral uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Stat {
    pub pid: u32,
    pub state: u8,
    pub ppid: u32,
    pub pgid: u32,
    pub sid: u32,
    /// Clock ticks.
    pub utime: u64,
    pub stime: u64,
    /// Clock ticks since boot; with the pid, identifies a process across pid reuse.
    pub starttime: u64,
}

impl Stat {
    pub(crate) fn is_zombie(&self) -> bool {
        self.state == b'Z' || self.state == b'X'
    }
}

/// Parses a stat line. The command name may hold spaces and parentheses,
/// so the fields are read after the *last* ')'.
pub(crate) fn parse_stat(s: &str) -> Option<Stat> {
    let pid: u32 = s.split(' ').next()?.parse().ok()?;
    let rest = &s[s.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split(' ').collect();
    // rest[0] is field 3 (state); field n is f[n - 3].
    Some(Stat {
        pid,
        state: *f.first()?.as_bytes().first()?,
        ppid: f.get(1)?.parse().ok()?,
        pgid: f.get(2)?.parse().ok()?,
        sid: f.get(3)?.parse().ok()?,
        utime: f.get(11)?.parse().ok()?,
        stime: f.get(12)?.parse().ok()?,
        starttime: f.get(19)?.parse().ok()?,
    })
}

pub(crate) fn stat(pid: u32) -> Option<Stat> {
    parse_stat(&read_proc(format!("/proc/{pid}/stat"))?)
}

/// A small `/proc` file whole, through [`read_small`]: `None` when it
/// cannot be read (the process is gone).
fn read_proc(path: impl AsRef<Path>) -> Option<String> {
    read_small(path.as_ref()).ok()
}

/// Every pid in `/proc` (processes only, not threads).
pub(crate) fn all_pids() -> std::io::Result<Vec<u32>> {
    let mut out = Vec::with_capacity(256);
    for e in fs::read_dir("/proc")? {
        let Ok(e) = e else { continue };
        if let Some(pid) = e.file_name().to_str().and_then(|s| s.parse().ok()) {
            out.push(pid);
        }
    }
    Ok(out)
}

/// The command line, with NULs as spaces; `[comm]` for kernel threads and zombies.
pub(crate) fn cmdline(pid: u32) -> String {
    match fs::read(format!("/proc/{pid}/cmdline")) {
        Ok(b) if !b.is_empty() => {
            let s: Vec<String> = b
                .split(|&c| c == 0)
                .filter(|p| !p.is_empty())
                .map(|p| String::from_utf8_lossy(p).into_owned())
                .collect();
            s.join(" ")
        }
        _ => {
            let comm = fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
            format!("[{}]", comm.trim())
        }
    }
}

/// The arguments, program name first; empty for a kernel thread, a zombie
/// or a process gone.
pub(crate) fn argv(pid: u32) -> Vec<String> {
    let b = fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    b.split(|&c| c == 0).filter(|p| !p.is_empty()).map(|p| String::from_utf8_lossy(p).into_owned()).collect()
}

pub(crate) fn exe(pid: u32) -> Option<PathBuf> {
    fs::read_link(format!("/proc/{pid}/exe")).ok()
}

/// The cgroup v2 path (the `0::` line), if any. Works for zombies too.
pub(crate) fn cgroup_v2_path(pid: u32) -> Option<String> {
    let s = fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
    s.lines().find_map(|l| l.strip_prefix("0::").map(str::to_string))
}

/// Every cgroup path of a process, one per hierarchy (v2 and v1).
pub(crate) fn cgroup_paths(pid: u32) -> Vec<String> {
    let s = read_proc(format!("/proc/{pid}/cgroup")).unwrap_or_default();
    s.lines().filter_map(|l| l.splitn(3, ':').nth(2)).map(str::to_string).collect()
}

/// The cgroup path in the v1 hierarchy that holds `controller`.
pub(crate) fn cgroup_v1_path(pid: &str, controller: &str) -> Option<String> {
    let s = fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
    s.lines().find_map(|l| {
        let mut parts = l.splitn(3, ':');
        let _id = parts.next()?;
        let ctls = parts.next()?;
        let path = parts.next()?;
        ctls.split(',').any(|c| c == controller).then(|| path.to_string())
    })
}

/// True when the process's initial environment holds `needle` (`KEY=value`).
pub(crate) fn environ_has(pid: u32, needle: &[u8]) -> bool {
    match fs::read(format!("/proc/{pid}/environ")) {
        Ok(b) => b.split(|&c| c == 0).any(|kv| kv == needle),
        Err(_) => false,
    }
}

/// The value of `prefix` (`KEY=`) in the process's initial environment.
pub(crate) fn environ_value(pid: u32, prefix: &[u8]) -> Option<Vec<u8>> {
    let b = fs::read(format!("/proc/{pid}/environ")).ok()?;
    b.split(|&c| c == 0).find_map(|kv| kv.strip_prefix(prefix)).map(<[u8]>::to_vec)
}

/// The pids of this process's children, over all of its threads (an orphan
/// is re-parented to one thread of the subreaper, not to the process).
pub(crate) fn own_children() -> Vec<u32> {
    let mut out = Vec::new();
    let Ok(tasks) = fs::read_dir("/proc/self/task") else { return out };
    for t in tasks.flatten() {
        let mut p = t.path();
        p.push("children");
        if let Some(s) = read_proc(&p) {
            out.extend(pids_in(&s));
        }
    }
    out.sort_unstable();
    out.dedup();
    out
}

/// The children of the thread this subreaper's orphans are re-parented
/// to: its main thread while that runs (the kernel gives an orphan to the
/// first live thread of the subreaper, in the order the threads were
/// made: `find_new_reaper`). `None` once the main thread has exited: the
/// caller lists every thread's ([`own_children`]).
///
/// One file for the orphans where [`own_children`] reads one per thread:
/// a daemon's services are the children of the threads that started them,
/// and a leader of the thread that spawned it, not of the main thread.
pub(crate) fn orphans_of_this_process() -> Option<Vec<u32>> {
    // SAFETY: getpid and gettid have no preconditions.
    let (pid, me) = unsafe { (libc::getpid(), libc::gettid()) };
    // A main thread that has exited stays a zombie while the others run;
    // its own stat shows that (not asked when this is the main thread).
    if me != pid
        && read_proc(format!("/proc/self/task/{pid}/stat")).and_then(|s| parse_stat(&s)).is_none_or(|s| s.is_zombie())
    {
        return None;
    }
    let s = read_proc(format!("/proc/self/task/{pid}/children"))?;
    Some(pids_in(&s).collect())
}

/// Now, in `/proc`'s start-time unit: clock ticks since boot
/// (`CLOCK_BOOTTIME`, which a process's start time is counted on).
pub(crate) fn boot_ticks_now() -> u64 {
    // SAFETY: a zeroed timespec is a valid out-parameter.
    let mut t: libc::timespec = unsafe { std::mem::zeroed() };
    // SAFETY: t is valid for writes.
    if unsafe { libc::clock_gettime(libc::CLOCK_BOOTTIME, &mut t) } != 0 {
        return 0;
    }
    let ns = (t.tv_sec as u64).saturating_mul(1_000_000_000).saturating_add(t.tv_nsec as u64);
    // The kernel's own rounding (`nsec_to_clock_t`): down.
    ns / (1_000_000_000 / super::unix::clock_ticks().max(1))
}

fn pids_in(s: &str) -> impl Iterator<Item = u32> + '_ {
    s.split_whitespace().filter_map(|x| x.parse::<u32>().ok())
}

/// A process's resident set from `smaps_rollup` is costly; `statm` is cheap.
pub(crate) fn rss_bytes(pid: u32) -> Option<u64> {
    let s = fs::read_to_string(format!("/proc/{pid}/statm")).ok()?;
    let pages: u64 = s.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * page_size())
}

fn page_size() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let p = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if p > 0 {
        p as u64
    } else {
        4096
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_parses_names_with_parens_and_spaces() {
        let line =
            "4242 (a (b) c) S 1 4242 4242 0 -1 4194560 100 0 0 0 7 3 0 0 20 0 1 0 123456 1000 10 18446744073709551615";
        let s = parse_stat(line).unwrap();
        assert_eq!((s.pid, s.state, s.ppid, s.pgid, s.sid), (4242, b'S', 1, 4242, 4242));
        assert_eq!((s.utime, s.stime, s.starttime), (7, 3, 123456));
    }

    #[test]
    fn own_stat_is_readable() {
        let me = std::process::id();
        let s = stat(me).unwrap();
        assert_eq!(s.pid, me);
        assert!(!s.is_zombie());
    }
}
