//! `corral signal` without `--all-members`: one signal to an instance's
//! leader only (the library signals whole groups).
//!
//! Trap: a pid names a process only while it is alive or unreaped. The
//! caller checks that the leader's group has not ended first; the leader
//! is corral's own child, reaped only by corral, so its pid cannot be
//! reused before that check says so (a sub-millisecond window remains
//! between the check and the kill, while the reaper may run).

use std::io;

/// Sends `sig` to `pid`.
#[cfg(unix)]
pub(crate) fn to_pid(pid: u32, sig: corral::Signal) -> io::Result<()> {
    let pid = libc::pid_t::try_from(pid).ok().filter(|p| *p > 0);
    let pid = pid.ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "not a process id"))?;
    // SAFETY: kill(2) has no memory-safety preconditions; the pid is
    // positive, so it names one process, never a group.
    if unsafe { libc::kill(pid, sig.as_raw()) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Windows has no signals.
#[cfg(not(unix))]
pub(crate) fn to_pid(_pid: u32, _sig: corral::Signal) -> io::Result<()> {
    Err(io::Error::new(io::ErrorKind::Unsupported, "signals are a Unix notion"))
}
