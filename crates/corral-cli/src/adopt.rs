//! `corral adopt PID`: `corral run` for a tree that already runs. The
//! same flags, exit codes and report; the tree is stopped, moved into a
//! new group and continued (see the library's `GroupBuilder::adopt`).
//! Its leader's own exit status is unknown (corral is not its parent):
//! a tree that ends by itself exits 0, with `exit_code` null in the report.

use crate::exit;
use crate::run::GroupFlags;
use clap::Parser;
use std::sync::Arc;

#[derive(Debug, Parser)]
pub struct Args {
    #[command(flatten)]
    flags: GroupFlags,
    /// The pid of the running process whose tree to take in.
    #[arg(value_name = "PID", value_parser = clap::value_parser!(u32).range(1..))]
    pid: u32,
}

pub fn main(a: Args) -> u8 {
    corral::reap_all_orphans(true);
    let trace = match a.flags.open_trace() {
        Ok(t) => t,
        Err(code) => return code,
    };
    let signals = crate::signals::Forwarder::install();
    let group = match a.flags.builder().record_events(trace.is_some()).adopt(a.pid) {
        Ok(g) => Arc::new(g),
        Err(e) => {
            exit::error(&e);
            return exit::FAILURE;
        }
    };
    if group.backend() == corral::BackendKind::Pgid {
        exit::error(format!(
            "note: the pgid backend holds process group {} and the members found at adoption; a process that leaves the process group after the adoption is followed only while its parent is a member",
            a.pid
        ));
    }
    crate::run::hold(&a.flags, group, signals, trace)
}
