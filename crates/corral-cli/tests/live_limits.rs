//! Limits of running services, end to end under a real daemon: `corral
//! limit` and a reload that changes only limits apply to the running group
//! (same pid, read back from the cgroup), and a notify-only limit is an
//! event while the service keeps running. Without cgroups (not root) the
//! tests print SKIPPED.

#![cfg(target_os = "linux")]

mod daemon;

use daemon::{tk, Daemon};
use std::path::PathBuf;

fn has_cgroups() -> bool {
    let ok =
        corral::host_report().backends.into_iter().any(|b| b.available.is_ok() && b.kind != corral::BackendKind::Pgid);
    if !ok {
        eprintln!("SKIPPED: no cgroup backend on this host (run as root)");
    }
    ok
}

/// The memory limit file of `pid`'s cgroup: v1 `memory.limit_in_bytes`
/// or v2 `memory.max`.
fn memory_limit_file(pid: u32) -> PathBuf {
    let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    for line in text.lines() {
        let mut parts = line.splitn(3, ':');
        let (_, ctl, path) = (parts.next().unwrap(), parts.next().unwrap(), parts.next().unwrap());
        if ctl.split(',').any(|c| c == "memory") {
            let f = PathBuf::from(format!("/sys/fs/cgroup/memory{path}/memory.limit_in_bytes"));
            if f.exists() {
                return f;
            }
        }
        if ctl.is_empty() {
            for root in ["/sys/fs/cgroup", "/sys/fs/cgroup/unified"] {
                let f = PathBuf::from(format!("{root}{path}/memory.max"));
                if f.exists() {
                    return f;
                }
            }
        }
    }
    panic!("no memory limit file for {pid} in:\n{text}");
}

fn read_limit(pid: u32) -> String {
    std::fs::read_to_string(memory_limit_file(pid)).unwrap().trim().to_string()
}

fn config(memory: &str, extra: &str) -> String {
    format!(
        "[services.web]\ncommand = [{}, \"--sleep\", \"30.5\"]\nrestart = \"no\"\nlimits = {{ memory = \"{memory}\"{extra} }}\n",
        tk()
    )
}

#[test]
fn corral_limit_changes_the_running_group_and_a_limits_only_reload_keeps_the_pid() {
    if !has_cgroups() {
        return;
    }
    let mut d = Daemon::start(&config("256MiB", ""));
    d.wait_transition("web", "running");
    let pid = d.pid_of("web").expect("running");
    d.seen.push(pid);
    assert_eq!(read_limit(pid), (256u64 << 20).to_string());

    let out = d.corral(&["limit", "web", "--memory", "64MiB"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "web.0: limits changed");
    assert_eq!(read_limit(pid), (64u64 << 20).to_string(), "read back from the cgroup");
    d.wait_event("a limit event", |e| {
        e["kind"] == "limit" && e["reason"].as_str().unwrap().contains("memory 64.0 MiB")
    });
    assert_eq!(d.pid_of("web"), Some(pid), "same run");

    // A reload that changes only the memory limit: retuned, same pid.
    std::fs::write(d.path("corral.toml"), config("128MiB", "")).unwrap();
    let out = d.corral(&["reload"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("retuned: web"), "{}", String::from_utf8_lossy(&out.stdout));
    assert_eq!(read_limit(pid), (128u64 << 20).to_string());
    assert_eq!(d.pid_of("web"), Some(pid), "same run after the reload");

    let out = d.corral(&["limit", "nope", "--memory", "1GiB"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("nope"), "{}", String::from_utf8_lossy(&out.stderr));
    d.down();
}

#[test]
fn a_notify_only_process_limit_is_an_event_and_the_service_keeps_running() {
    if !has_cgroups() {
        return;
    }
    let toml = format!(
        "[services.forky]\ncommand = [{}, \"--fork-loop\", \"10\", \"--sleep\", \"30.5\"]\nrestart = \"no\"\n\
         limits = {{ max_procs = 3, on_limit = \"notify\" }}\n",
        tk()
    );
    let mut d = Daemon::start(&toml);
    d.wait_transition("forky", "running");
    let pid = d.pid_of("forky").expect("running");
    d.seen.push(pid);
    let e = d.wait_event("a notify-only limit hit", |e| e["kind"] == "limit" && e["service"] == "forky");
    assert!(e["reason"].as_str().unwrap().contains("not killed"), "{e}");
    assert_eq!(d.pid_of("forky"), Some(pid), "the service keeps running");
    assert_eq!(d.instance("forky")["state"], "running");
    d.down();
}
