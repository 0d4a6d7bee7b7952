//! `corral tree`: a group's process tree, every member placed under the
//! process that started it.
//!
//! - `corral tree NAME` asks the daemon (`-c`, `--socket` or `--url`) for
//!   a service instance's tree, placed by the lineage it recorded.
//! - `corral tree --pid N` (or `corral tree N`) finds the corral group that
//!   holds N from outside (its tag), and shows every member; without
//!   lineage, an escapee sits under the leader, marked re-parented. A pid
//!   in no group shows its descendants by parent pid.
//! - `corral tree` alone shows the whole host as a table.

use crate::exit;
use crate::supervise::{self, Common};
use clap::Parser;
use corral_supervisor::tree::render::{render, Format};
use corral_supervisor::tree::Tree;

#[derive(Debug, Parser)]
pub struct Args {
    /// A service name (asks the daemon), or a pid (same as --pid).
    #[arg(value_name = "NAME|PID", conflicts_with = "pid")]
    target: Option<String>,
    /// The group that holds this process.
    #[arg(long, value_name = "N")]
    pid: Option<u32>,
    /// Which instance of the service.
    #[arg(short = 'i', long, value_name = "I", default_value_t = 0)]
    instance: u32,
    /// text, json, dot (Graphviz), mermaid or svg.
    #[arg(short = 'f', long, value_name = "FORMAT", default_value = "text")]
    format: Format,
    #[command(flatten)]
    common: Common,
}

pub fn main(a: Args) -> u8 {
    let pid = a.pid.or_else(|| a.target.as_deref().and_then(|t| t.parse().ok()));
    let tree = match (pid, &a.target) {
        (Some(pid), _) => of_pid(pid),
        (None, Some(name)) => of_service(&a.common, name, a.instance),
        (None, None) => return host(a.format),
    };
    match tree {
        Ok(t) => exit::print(&render(&t, a.format)),
        Err(code) => code,
    }
}

/// The whole host, as the table it always was.
fn host(format: Format) -> u8 {
    if format != Format::Text {
        exit::error("--format needs a group: name a service, or give --pid N");
        return exit::FAILURE;
    }
    match corral::process_table() {
        Ok(t) => exit::print(&t.to_string()),
        Err(e) => {
            exit::error(e);
            exit::FAILURE
        }
    }
}

fn of_service(common: &Common, name: &str, instance: u32) -> Result<Tree, u8> {
    let path = format!("/v1/services/{name}/tree?instance={instance}");
    let reply = supervise::call(common, "GET", &path)?;
    serde_json::from_slice(&reply.body).map_err(|e| {
        exit::error(format!("the daemon's tree answer is not a tree ({e}); is it the same corral version?"));
        supervise::FAILED
    })
}

fn of_pid(pid: u32) -> Result<Tree, u8> {
    let fail = |e: corral::Error| {
        exit::error(e);
        exit::FAILURE
    };
    match corral::find_group(pid).map_err(fail)? {
        Some(g) => {
            let procs = corral::describe_processes(&g.members).map_err(fail)?;
            let leader = leader_of(&procs).unwrap_or(pid);
            let at = procs.iter().find(|p| p.pid == leader).and_then(|p| p.group.clone());
            let mut t = Tree::live(procs, leader, None);
            let at = at.map(|a| format!(" at {a}")).unwrap_or_default();
            t.note = format!("group {}{at}: {}", g.id, t.note);
            Ok(t)
        }
        None => {
            let all = corral::process_table().map_err(fail)?;
            let sub = all.subtree(pid);
            if sub.is_empty() {
                exit::error(format!("no process with pid {pid} (hint: `corral tree` lists them all)"));
                return Err(1);
            }
            let mut t = Tree::live(sub.processes().cloned().collect(), pid, None);
            t.note = format!("pid {pid} is in no corral group found here: its descendants by parent pid");
            Ok(t)
        }
    }
}

/// The leader among a group's members, seen from outside: a member whose
/// parent is not a member, leading its own process group without leading
/// a session (a setsid escapee leads both); else the lowest such pid.
fn leader_of(procs: &[corral::ProcessInfo]) -> Option<u32> {
    let is_member = |p: u32| procs.iter().any(|q| q.pid == p);
    let tops: Vec<&corral::ProcessInfo> = procs.iter().filter(|p| !is_member(p.ppid)).collect();
    tops.iter().find(|p| p.pgid == p.pid && p.sid != p.pid).or_else(|| tops.iter().min_by_key(|p| p.pid)).map(|p| p.pid)
}

#[cfg(test)]
mod tests {
    use super::*;
    use corral::ProcessInfo;

    #[test]
    fn the_leader_is_the_group_leader_that_is_no_session_leader() {
        // 20: a setsid escapee (its own group and session), 30: a daemon
        // re-parented to init, 10: the leader; all with parents outside.
        let p = |pid, ppid, pgid, sid| ProcessInfo::new(pid, ppid, pgid, sid, None, String::new());
        let procs = [p(20, 1, 20, 20), p(30, 1, 10, 5), p(10, 2, 10, 5), p(11, 10, 10, 5)];
        assert_eq!(leader_of(&procs), Some(10));
        assert_eq!(leader_of(&[p(20, 1, 20, 20), p(21, 1, 21, 21)]), Some(20), "else the lowest pid");
    }
}
