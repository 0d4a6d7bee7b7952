//! Live process trees, as data and as text.

use std::collections::BTreeMap;
use std::fmt;

/// One live process, as `corral tree` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ProcessInfo {
    /// Process id.
    pub pid: u32,
    /// Parent process id (0 when it has none).
    pub ppid: u32,
    /// Process group id (Unix; 0 elsewhere).
    pub pgid: u32,
    /// Session id (Unix; Windows: the session number).
    pub sid: u32,
    /// The group that holds it: a cgroup path, or a job, when known.
    pub group: Option<String>,
    /// The command line, or the name in brackets when it cannot be read.
    pub cmdline: String,
    /// CPU time used so far (user + system), in ms, where the OS tells.
    pub cpu_ms: Option<u64>,
    /// Resident memory, in bytes, where the OS tells.
    pub rss_bytes: Option<u64>,
}

impl ProcessInfo {
    /// A process record; used by the platform code.
    pub fn new(pid: u32, ppid: u32, pgid: u32, sid: u32, group: Option<String>, cmdline: String) -> Self {
        ProcessInfo { pid, ppid, pgid, sid, group, cmdline, cpu_ms: None, rss_bytes: None }
    }

    /// The same record with its CPU time and resident memory.
    pub fn with_usage(mut self, cpu_ms: Option<u64>, rss_bytes: Option<u64>) -> Self {
        self.cpu_ms = cpu_ms;
        self.rss_bytes = rss_bytes;
        self
    }
}

/// Processes arranged by parent. Renders as an indented table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessTree {
    procs: BTreeMap<u32, ProcessInfo>,
    roots: Vec<u32>,
}

impl ProcessTree {
    /// Builds a tree; a process whose parent is not in the set is a root.
    pub fn from_processes(list: Vec<ProcessInfo>) -> ProcessTree {
        let procs: BTreeMap<u32, ProcessInfo> = list.into_iter().map(|p| (p.pid, p)).collect();
        let roots = procs.values().filter(|p| p.ppid == p.pid || !procs.contains_key(&p.ppid)).map(|p| p.pid).collect();
        ProcessTree { procs, roots }
    }

    /// Keeps only `pid` and its descendants. Empty if `pid` is not there.
    pub fn subtree(&self, pid: u32) -> ProcessTree {
        let mut keep = Vec::new();
        let mut todo = vec![pid];
        while let Some(p) = todo.pop() {
            if let Some(info) = self.procs.get(&p) {
                keep.push(info.clone());
                todo.extend(self.children(p));
            }
        }
        let mut t = ProcessTree::from_processes(keep);
        t.roots = if t.procs.contains_key(&pid) { vec![pid] } else { vec![] };
        t
    }

    /// The roots, by pid.
    pub fn roots(&self) -> &[u32] {
        &self.roots
    }

    /// A process by pid.
    pub fn get(&self, pid: u32) -> Option<&ProcessInfo> {
        self.procs.get(&pid)
    }

    /// All processes, by pid.
    pub fn processes(&self) -> impl Iterator<Item = &ProcessInfo> {
        self.procs.values()
    }

    /// How many processes.
    pub fn len(&self) -> usize {
        self.procs.len()
    }

    /// True when there are none.
    pub fn is_empty(&self) -> bool {
        self.procs.is_empty()
    }

    /// The children of `pid`, by pid.
    pub fn children(&self, pid: u32) -> Vec<u32> {
        self.procs.values().filter(|p| p.ppid == pid && p.pid != pid).map(|p| p.pid).collect()
    }

    fn render(&self, f: &mut fmt::Formatter<'_>, pid: u32, prefix: &str, last: bool, root: bool) -> fmt::Result {
        let Some(p) = self.procs.get(&pid) else { return Ok(()) };
        let branch = if root {
            ""
        } else if last {
            "└─ "
        } else {
            "├─ "
        };
        writeln!(
            f,
            "{:>7} {:>7} {:>7} {:>7}  {:<28} {prefix}{branch}{}",
            p.pid,
            p.ppid,
            p.pgid,
            p.sid,
            truncate(p.group.as_deref().unwrap_or("-"), 28),
            p.cmdline
        )?;
        let kids = self.children(pid);
        let child_prefix =
            if root { prefix.to_string() } else { format!("{prefix}{}", if last { "   " } else { "│  " }) };
        for (i, k) in kids.iter().enumerate() {
            self.render(f, *k, &child_prefix, i + 1 == kids.len(), false)?;
        }
        Ok(())
    }
}

fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        let tail: String = s.chars().rev().take(n - 1).collect::<Vec<_>>().into_iter().rev().collect();
        format!("…{tail}")
    }
}

impl fmt::Display for ProcessTree {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{:>7} {:>7} {:>7} {:>7}  {:<28} COMMAND", "PID", "PPID", "PGID", "SID", "GROUP")?;
        for r in &self.roots {
            self.render(f, *r, "", true, true)?;
        }
        Ok(())
    }
}

/// The group that holds `pid`, found from outside its controller, with
/// every live member (escapees included): `None` when `pid` belongs to no
/// corral group, or where a group cannot be found so (macOS and Windows
/// name no group on a process).
///
/// Linux reads the group's tag from the process's environment, so it
/// sees other users' processes only with the privilege to read theirs.
pub fn find_group(pid: u32) -> crate::Result<Option<FoundGroup>> {
    let found = crate::sys::group_of(pid).map_err(|e| crate::Error::os("reading the process table", e))?;
    Ok(found.map(|(id, members)| FoundGroup { id, members }))
}

/// A group found by [`find_group`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct FoundGroup {
    /// The group's id ([`Group::id`](crate::Group::id)).
    pub id: String,
    /// Its live members.
    pub members: Vec<u32>,
}

/// The arguments of the live process `pid`, program name first; empty
/// when it is gone or they cannot be read. Linux reads them exactly;
/// macOS and Windows split the command line at spaces.
pub fn process_argv(pid: u32) -> Vec<String> {
    crate::sys::argv(pid)
}

/// The processes `pids` that are alive now, from the process table.
pub fn describe_processes(pids: &[u32]) -> crate::Result<Vec<ProcessInfo>> {
    crate::sys::tree_of(pids).map_err(|e| crate::Error::os("reading the process table", e))
}

/// A snapshot of every live process on this host.
pub fn process_table() -> crate::Result<ProcessTree> {
    let list = crate::sys::process_table().map_err(|e| crate::Error::os("reading the process table", e))?;
    Ok(ProcessTree::from_processes(list))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(pid: u32, ppid: u32) -> ProcessInfo {
        ProcessInfo::new(pid, ppid, pid, 1, None, format!("cmd{pid}"))
    }

    #[test]
    fn subtree_keeps_descendants_only() {
        let t = ProcessTree::from_processes(vec![p(1, 0), p(2, 1), p(3, 2), p(4, 1), p(5, 3)]);
        let s = t.subtree(2);
        let mut pids: Vec<u32> = s.processes().map(|p| p.pid).collect();
        pids.sort();
        assert_eq!(pids, vec![2, 3, 5]);
        assert_eq!(s.roots(), &[2]);
        let text = s.to_string();
        assert!(text.contains("└─ cmd3"), "{text}");
    }
}
