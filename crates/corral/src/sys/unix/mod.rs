//! What Linux and macOS share: signals, rlimits, `wait4`, exit statuses.
//!
//! Everything called between `fork` and `exec` (in `pre_exec`) must be
//! async-signal-safe: raw syscalls only, no allocation, no locks.

pub(crate) mod envp;
pub(crate) mod fd_limit;
pub(crate) mod hygiene;
pub(crate) mod identity;
pub(crate) mod passing;

use crate::{ExitStatus, Signal};
use std::io;
use std::time::Duration;

/// Sends `sig` to one process. A process that is already gone is not an error.
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
pub(crate) fn kill(pid: u32, sig: i32) -> io::Result<()> {
    // SAFETY: kill(2) has no memory-safety preconditions.
    gone_is_ok(unsafe { libc::kill(pid as libc::pid_t, sig) })
}

/// Sends `sig` to a whole process group. An empty group is not an error.
pub(crate) fn killpg(pgid: u32, sig: i32) -> io::Result<()> {
    // SAFETY: killpg(2) has no memory-safety preconditions.
    gone_is_ok(unsafe { libc::killpg(pgid as libc::pid_t, sig) })
}

/// ESRCH means the target is gone already, which is what a kill wants.
fn gone_is_ok(r: libc::c_int) -> io::Result<()> {
    if r == 0 {
        return Ok(());
    }
    let e = io::Error::last_os_error();
    if e.raw_os_error() == Some(libc::ESRCH) {
        Ok(())
    } else {
        Err(e)
    }
}

/// The stop signal, then SIGCONT so that stopped members can act on it
/// (as systemd does).
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
pub(crate) fn signal_then_cont(pids: &[u32], sig: Signal) {
    for &p in pids {
        let _ = kill(p, sig.as_raw());
        if sig.as_raw() != libc::SIGKILL && sig.as_raw() != libc::SIGCONT {
            let _ = kill(p, libc::SIGCONT);
        }
    }
}

/// Decodes a `wait` status.
pub(crate) fn exit_status(raw: i32) -> ExitStatus {
    if libc::WIFEXITED(raw) {
        ExitStatus { code: Some(libc::WEXITSTATUS(raw)), signal: None }
    } else if libc::WIFSIGNALED(raw) {
        ExitStatus { code: None, signal: Some(libc::WTERMSIG(raw)) }
    } else {
        ExitStatus { code: None, signal: None }
    }
}

/// What a reaped process used, from `wait4`.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Rusage {
    pub user: Duration,
    pub system: Duration,
    /// Bytes (Linux reports KiB, macOS bytes).
    pub maxrss: u64,
}

impl Rusage {
    pub(crate) fn add(&mut self, other: &Rusage) {
        self.user += other.user;
        self.system += other.system;
        self.maxrss = self.maxrss.max(other.maxrss);
    }
}

fn tv(t: libc::timeval) -> Duration {
    Duration::new(t.tv_sec as u64, (t.tv_usec as u32) * 1000)
}

/// Reaps `pid` if it has ended, without blocking.
pub(crate) fn try_reap(pid: u32) -> io::Result<Option<(ExitStatus, Rusage)>> {
    let mut status = 0;
    // SAFETY: zeroed rusage is a valid out-parameter.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: status and ru are valid for writes for the call.
    let r = unsafe { libc::wait4(pid as libc::pid_t, &mut status, libc::WNOHANG, &mut ru) };
    match r {
        0 => Ok(None),
        r if r > 0 => {
            let rss_unit = if cfg!(target_os = "macos") { 1 } else { 1024 };
            Ok(Some((
                exit_status(status),
                Rusage { user: tv(ru.ru_utime), system: tv(ru.ru_stime), maxrss: ru.ru_maxrss as u64 * rss_unit },
            )))
        }
        _ => Err(io::Error::last_os_error()),
    }
}

/// Reaps a leader once: `None` if it is not started, already reaped, or
/// still running; else its status, recorded in `status`.
pub(crate) fn reap_once(pid: u32, status: &mut Option<ExitStatus>) -> Option<(ExitStatus, Rusage)> {
    if status.is_some() || pid == 0 {
        return None;
    }
    let (st, ru) = try_reap(pid).ok().flatten()?;
    *status = Some(st);
    Some((st, ru))
}

/// An rlimit to set in the child before `exec`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Rlimit {
    pub resource: i32,
    pub soft: u64,
    pub hard: u64,
}

impl Rlimit {
    /// Soft and hard alike: the process cannot raise it again.
    pub(crate) fn fixed(resource: i32, value: u64) -> Rlimit {
        Rlimit { resource, soft: value, hard: value }
    }
}

/// Sets the rlimits. Async-signal-safe: meant for `pre_exec`.
pub(crate) fn apply_rlimits(limits: &[Rlimit]) -> io::Result<()> {
    for l in limits {
        let rl = libc::rlimit { rlim_cur: l.soft as libc::rlim_t, rlim_max: l.hard as libc::rlim_t };
        // SAFETY: rl is a valid rlimit for the duration of the call.
        #[allow(clippy::useless_conversion)]
        let r = unsafe { libc::setrlimit(l.resource as _, &rl) };
        if r != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// The per-process rlimits, and the launcher's open-file limit where
/// this process raised its own (see `fd_limit`). Group CPU time is never an rlimit: RLIMIT_CPU
/// counts one process, and its kill would hide the real reason.
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
pub(crate) fn process_rlimits(limits: &crate::Limits) -> Vec<Rlimit> {
    let mut out = Vec::new();
    if let Some(m) = limits.memory_per_process {
        #[allow(clippy::unnecessary_cast)] // RLIMIT_AS is u32 on glibc, i32 on macOS
        out.push(Rlimit::fixed(libc::RLIMIT_AS as i32, m));
    }
    if let Some(t) = limits.cpu_time_per_process {
        // Soft and hard alike: the kernel kills (SIGKILL) at the limit.
        #[allow(clippy::unnecessary_cast)]
        out.push(Rlimit::fixed(libc::RLIMIT_CPU as i32, t.as_secs_f64().ceil().max(1.0) as u64));
    }
    out.extend(fd_limit::for_child());
    out
}

/// The number of clock ticks per second for `/proc` times.
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
pub(crate) fn clock_ticks() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as u64
    } else {
        100
    }
}

/// Minidumps are a Windows format; a snapshot on Unix reads /proc instead.
pub(crate) fn minidump(_pid: u32, _path: &std::path::Path) -> io::Result<()> {
    Err(io::Error::new(io::ErrorKind::Unsupported, "minidumps are written on Windows only"))
}
