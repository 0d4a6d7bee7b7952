//! `corral doctor` on Linux: which backend this host gives a group, what
//! each one enforces, and the notes a person needs to do better.

use super::{hierarchy, layout, reaper, select, spawn};
use crate::{BackendKind, HostReport};

pub(crate) fn host_report() -> HostReport {
    let l = layout();
    let forced = std::env::var("CORRAL_BACKEND").ok().and_then(|v| BackendKind::parse(&v));
    let chosen = select::choose(forced, l).ok();
    let mut notes = Vec::new();
    if let Some(m) = &l.v2_mount {
        notes.push(format!(
            "cgroup2 mounted at {} with controllers: {}",
            m.display(),
            if l.v2_controllers.is_empty() { "none".to_string() } else { l.v2_controllers.join(" ") }
        ));
        let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        if hierarchy::v2_favors_dynmods(&mountinfo, m) == Some(false) {
            notes.push(format!(
                "cgroup2 at {} is mounted without favordynmods: each group start waits for an RCU grace period \
                 (5-20 ms) to join its cgroup; `mount -o remount,favordynmods {}` (Linux 6.0+) removes the wait \
                 at a small cost to every fork and exit",
                m.display(),
                m.display()
            ));
        }
    }
    if !l.v1_roots.is_empty() {
        let names: Vec<&str> = l.v1_roots.iter().map(|(c, _)| c.as_str()).collect();
        notes.push(format!("cgroup v1 controllers mounted: {}", names.join(" ")));
    }
    if let Some(r) = &l.v2_root {
        notes.push(format!("corral's cgroup subtree: {}", r.display()));
    }
    if let Some(p) = &l.override_problem {
        notes.push(p.clone());
    }
    // SAFETY: geteuid has no preconditions.
    notes.push(format!("running as uid {}", unsafe { libc::geteuid() }));
    notes.push(spawn::describe());
    notes.push(spawn::describe_isolation());
    notes.push(spawn::describe_user_namespaces());
    notes.push(format!(
        "I/O limits: {}; live limit changes and notify-only limits (memory.high / soft limit, pids.max, cpu \
         throttling) on every cgroup backend, not on pgid",
        match (l.v2_controllers.iter().any(|c| c == "io"), l.v1_root("blkio")) {
            (true, _) => "cgroup2 io.max".to_string(),
            (false, Some(d)) => format!("v1 blkio throttle at {}", d.display()),
            (false, None) => "none (no io controller, no blkio hierarchy)".to_string(),
        }
    ));
    notes.push(format!(
        "child subreaper: {} (corral sets it when it creates a group)",
        if reaper::is_subreaper() { "on" } else { "available" }
    ));
    HostReport {
        os: std::env::consts::OS,
        chosen,
        backends: select::ORDER.iter().map(|k| select::report(*k, l)).collect(),
        notes,
    }
}
