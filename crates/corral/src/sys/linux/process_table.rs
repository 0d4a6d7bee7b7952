//! The host's process table as `corral tree` shows it: pids, lineage,
//! process group, session and cgroup, with CPU time and resident memory.

use super::{procfs, unix};
use crate::ProcessInfo;
use std::io;

pub(crate) fn process_table() -> io::Result<Vec<ProcessInfo>> {
    Ok(procfs::all_pids()?.into_iter().filter_map(process_info).collect())
}

/// The processes `pids` that are alive, read one by one: a group's tree
/// costs its own members, not the whole host's table.
pub(crate) fn process_infos(pids: &[u32]) -> io::Result<Vec<ProcessInfo>> {
    Ok(pids.iter().copied().filter_map(process_info).collect())
}

fn process_info(pid: u32) -> Option<ProcessInfo> {
    let st = procfs::stat(pid)?;
    let group = procfs::cgroup_v2_path(pid)
        .filter(|p| p != "/")
        .or_else(|| procfs::cgroup_v1_path(&pid.to_string(), "pids").filter(|p| p != "/"))
        .or_else(|| procfs::cgroup_v1_path(&pid.to_string(), "memory"));
    let cpu_ms = (st.utime + st.stime).saturating_mul(1000) / unix::clock_ticks().max(1);
    Some(
        ProcessInfo::new(pid, st.ppid, st.pgid, st.sid, group, procfs::cmdline(pid))
            .with_usage(Some(cpu_ms), procfs::rss_bytes(pid)),
    )
}
