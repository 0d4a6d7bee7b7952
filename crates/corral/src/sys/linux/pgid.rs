//! The fallback without cgroups: a process group, plus every process that
//! carries the group's tag in its environment (`CORRAL_GROUP=<id>`).
//!
//! A `setsid` or double-fork escapee leaves the process group but keeps the
//! environment it inherited, and corral, as the subreaper, adopts it when
//! its parent dies. This is best effort: a process that execs with a clean
//! environment and leaves the process group is lost, and a kill can race
//! with forks. The kill therefore stops everything it finds first (a
//! stopped process cannot fork), then kills, and repeats until a scan is
//! empty.

use super::procfs;
use crate::sys::unix;
use std::io;
use std::time::{Duration, Instant};

/// The live (non-zombie) members: same process group, or tagged.
pub(crate) fn members(pgid: u32, tag: &[u8]) -> io::Result<Vec<(u32, procfs::Stat)>> {
    let me = std::process::id();
    let mut out = Vec::new();
    for pid in procfs::all_pids()? {
        if pid == me {
            continue;
        }
        let Some(st) = procfs::stat(pid) else { continue };
        if st.is_zombie() {
            continue;
        }
        if st.pgid == pgid || procfs::environ_has(pid, tag) {
            out.push((pid, st));
        }
    }
    Ok(out)
}

/// Stop-then-kill rounds until a scan finds nobody (bounded).
pub(crate) fn kill(pgid: u32, tag: &[u8]) -> io::Result<()> {
    let end = Instant::now() + Duration::from_secs(3);
    loop {
        let _ = unix::killpg(pgid, libc::SIGSTOP);
        let _ = unix::killpg(pgid, libc::SIGKILL);
        let found = members(pgid, tag)?;
        if found.is_empty() || Instant::now() > end {
            return Ok(());
        }
        for (pid, _) in &found {
            let _ = unix::kill(*pid, libc::SIGSTOP);
        }
        for (pid, _) in &found {
            let _ = unix::kill(*pid, libc::SIGKILL);
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}
