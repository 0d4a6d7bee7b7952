//! `corral tree [PID]`: a live process tree with pid, ppid, pgid, sid, the
//! group (cgroup path or job) and the command line.

use crate::exit;
use clap::Parser;

#[derive(Debug, Parser)]
pub struct Args {
    /// Show only this process and its descendants.
    pid: Option<u32>,
}

pub fn main(a: Args) -> u8 {
    let all = match corral::process_table() {
        Ok(t) => t,
        Err(e) => {
            exit::error(e);
            return exit::FAILURE;
        }
    };
    let tree = match a.pid {
        None => all,
        Some(pid) => {
            let t = all.subtree(pid);
            if t.is_empty() {
                exit::error(format!("no process with pid {pid} (hint: `corral tree` lists them all)"));
                return 1;
            }
            t
        }
    };
    exit::print(&tree.to_string())
}
