//! User namespaces end to end: `corral run --isolate user,pid -- id -u`
//! prints 0 on both spawn paths; a `corral` that is not root (run as
//! `nobody` under `setpriv`) gets user, PID, mount and network namespaces
//! and its setsid escapee dies with the group; a root daemon runs a
//! service as `nobody` on the host and root inside. Every process a test
//! started is proven gone by its marker, and its temp dirs removed.
//!
//! The tests run as root (to act as `nobody`); elsewhere they say SKIPPED.

#![cfg(target_os = "linux")]

mod daemon;
mod support;

use daemon::{q, Daemon};
use std::io::{BufRead, BufReader, Read, Write};
use std::process::Stdio;
use std::time::{Duration, Instant};
use support::*;

fn usable() -> bool {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("SKIPPED: these tests run as root, to act as nobody");
        return false;
    }
    let out = output(std::process::Command::new(corral()).arg("doctor"));
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    if !text.contains("user namespaces: available") {
        eprintln!("SKIPPED: this host has no user namespaces: {text}");
        return false;
    }
    true
}

#[test]
fn run_isolate_user_pid_prints_0_on_both_spawn_paths() {
    if !usable() {
        return;
    }
    for b in backends() {
        for path in ["clone3", "fork"] {
            let mut w = World::new(&b);
            let report = w.report_path();
            let mut c =
                w.corral(&["run", "--report", report.to_str().unwrap(), "--isolate", "user,pid", "--", "id", "-u"]);
            c.env("CORRAL_SPAWN", path).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
            let mut child = w.spawn(c);
            let mut out = String::new();
            child.stdout.take().unwrap().read_to_string(&mut out).unwrap();
            let (code, err) = w.finish(child);
            assert_eq!((code, out.as_str()), (0, "0\n"), "[{b} {path}] {err}");
            assert_eq!(w.report()["leftover"], 0, "[{b} {path}]");
            w.assert_nothing_left();
        }
    }
}

#[test]
fn an_unprivileged_corral_gets_user_pid_mount_net_and_its_escapee_dies_with_the_group() {
    if !usable() {
        return;
    }
    if output(std::process::Command::new("setpriv").arg("--version")).status.code() != Some(0) {
        eprintln!("SKIPPED: no setpriv (util-linux) to run corral as nobody");
        return;
    }
    let mut w = World::new("pgid");
    // The report is written by corral as nobody.
    std::os::unix::fs::chown(&w.dir, Some(65534), Some(65534)).unwrap();
    let report = w.report_path();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let script = format!(
        "setsid sleep 30 </dev/null >/dev/null 2>&1 & \
         if (exec 3<>/dev/tcp/127.0.0.1/{port}) 2>/dev/null; then net=host; else net=none; fi; \
         echo uid=$(id -u) map=$(echo $(cat /proc/self/uid_map)) procs=$(ls /proc | grep -cE '^[0-9]+$') \
         tmp=$(ls -A /tmp | wc -l) net=$net; read go; exit 3"
    );
    let mut c = std::process::Command::new("setpriv");
    c.args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(corral())
        .args(["run", "--report", report.to_str().unwrap(), "--isolate", "user,pid,mount,net", "--private-tmp"])
        .args(["--", "bash", "-c", &script])
        .env("CORRAL_BACKEND", "pgid")
        .env("CORRAL_TEST_MARK", &w.mark)
        .current_dir("/")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = w.spawn(c);
    let mut stdin = child.stdin.take().unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    lines.read_line(&mut line).unwrap();
    for want in ["uid=0 ", "map=0 65534 1 ", "tmp=0 ", "net=none"] {
        assert!(line.contains(want), "{want:?} in {line:?}");
    }
    let procs: usize = line.split("procs=").nth(1).unwrap().split(' ').next().unwrap().parse().unwrap();
    assert!(procs <= 6, "{line}");
    // The escapee, seen from the host: a marked `sleep` that runs as nobody.
    let deadline = Instant::now() + Duration::from_secs(20);
    let escapee = loop {
        let found = w.survivors().into_iter().filter_map(|s| s.split(' ').next()?.parse::<u32>().ok()).find(|p| {
            std::fs::read_to_string(format!("/proc/{p}/comm")).is_ok_and(|c| c.trim() == "sleep")
                && std::fs::read_to_string(format!("/proc/{p}/status"))
                    .is_ok_and(|s| s.lines().any(|l| l.starts_with("Uid:") && l.contains("65534")))
        });
        if let Some(p) = found {
            break p;
        }
        assert!(Instant::now() < deadline, "no escapee among {:?}", w.survivors());
        std::thread::sleep(Duration::from_millis(20));
    };
    // The leader ends; the group goes with it, escapee included.
    stdin.write_all(b"go\n").unwrap();
    drop(stdin);
    let (code, err) = w.finish(child);
    assert_eq!(code, 3, "{err}");
    let r = w.report();
    assert_eq!((r["leftover"].as_u64(), r["backend"].as_str()), (Some(0), Some("pgid")), "{r}");
    assert!(daemon::gone(escapee), "the escapee {escapee} is gone");
    w.assert_nothing_left();
    drop(listener);
}

#[test]
fn a_root_daemon_runs_a_service_as_nobody_on_the_host_and_root_inside() {
    if !usable() {
        return;
    }
    let script = "echo uid=$(id -u) map=$(echo $(cat /proc/self/uid_map)); exec sleep 30";
    let toml = format!(
        "[services.box]\ncommand = [\"/bin/sh\", \"-c\", {}]\nuser = \"nobody\"\nrestart = \"no\"\n\
         [services.box.isolate]\nuser = true\npid = true\n",
        q(script)
    );
    let mut d = Daemon::start(&toml);
    d.wait_transition("box", "running");
    let log = d.path(".corral/logs/box/0.log");
    let end = Instant::now() + daemon::LONG;
    let line = loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if let Some(l) = text.lines().find(|l| l.contains("uid=")) {
            break l.to_string();
        }
        assert!(Instant::now() < end, "no output in {}", log.display());
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(line.ends_with("uid=0 map=0 65534 1"), "{line}");
    let pid = d.pid_of("box").expect("a running instance");
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let uid = status.lines().find(|l| l.starts_with("Uid:")).unwrap();
    assert_eq!(uid.split_whitespace().skip(1).collect::<Vec<_>>(), ["65534"; 4], "{status}");
    d.seen.push(pid);
    d.down();
}
