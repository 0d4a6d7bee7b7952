//! Isolation end to end: `corral run --isolate …` and `[services.NAME.isolate]`
//! under a real daemon. Inside a PID namespace the testkit's pids are the
//! namespace's own, so survivors are found by the test's marker (every
//! process of a run inherits it) and by the daemon's events, never by the
//! pids the group printed. Namespaces need root: elsewhere each test
//! prints SKIPPED.

#![cfg(target_os = "linux")]

mod daemon;
mod support;

use daemon::{q, Daemon};
use std::io::{BufRead, BufReader, Read};
use std::process::Stdio;
use support::*;

use corral_testkit::require_root;
use corral_testkit::test_support::DiskDir;

const ROOT: &str = "namespaces and mounts need root";

/// `corral run [flags] -- sh -c script` to its end: (code, stdout, stderr).
fn run_sh(w: &mut World, flags: &[&str], script: &str) -> (i32, String, String) {
    let mut args = vec!["run"];
    args.extend_from_slice(flags);
    args.extend_from_slice(&["--", "/bin/sh", "-c", script]);
    let mut c = w.corral(&args);
    c.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = w.spawn(c);
    let mut out = String::new();
    child.stdout.take().unwrap().read_to_string(&mut out).unwrap();
    let (code, err) = w.finish(child);
    (code, out, err)
}

#[test]
fn run_isolates_pid_net_uts_tmp_read_only_and_capabilities() {
    require_root!(ROOT);
    let ro = DiskDir::new("cli-iso-ro");
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    for b in backends() {
        let mut w = World::new(&b);
        let script = format!(
            "echo procs=$(ls /proc | grep -cE '^[0-9]+$'); \
             echo host=$(cat /proc/sys/kernel/hostname); \
             echo tmp=$(ls -A /tmp | wc -l); \
             if touch {d}/x 2>/dev/null; then echo ro=no; else echo ro=yes; fi; \
             if bash -c 'exec 3<>/dev/tcp/127.0.0.1/{port}' 2>/dev/null; then echo net=host; else echo net=none; fi; \
             grep CapEff /proc/self/status",
            d = ro.path().display()
        );
        let ro_arg = ro.path().display().to_string();
        let flags = [
            "--isolate",
            "pid,net,ipc",
            "--hostname",
            "iso-box",
            "--private-tmp",
            "--read-only",
            &ro_arg,
            "--no-new-privileges",
            "--cap-keep",
            "CAP_NET_BIND_SERVICE",
        ];
        let (code, out, err) = run_sh(&mut w, &flags, &script);
        assert_eq!(code, 0, "[{b}] {err}");
        let procs: usize = out.lines().next().and_then(|l| l.strip_prefix("procs=")).unwrap().parse().unwrap();
        assert!(procs <= 6, "[{b}] the group sees only itself: {out}");
        for want in ["host=iso-box", "tmp=0", "ro=yes", "net=none", "CapEff:\t0000000000000400"] {
            assert!(out.contains(want), "[{b}] {want} in:\n{out}");
        }
        assert!(!ro.path().join("x").exists());
        w.assert_nothing_left();
    }
    drop(listener);
}

#[test]
fn a_timeout_kills_a_pid_namespace_with_its_setsid_escapees() {
    require_root!(ROOT);
    for b in backends() {
        let mut w = World::new(&b);
        let c = w
            .run(&["-t", "1", "-k", "1", "--isolate", "pid"], &["--children", "3", "--setsid", "2", "--sleep", "30.5"]);
        let mut child = w.spawn(c);
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        // The testkit is PID 2 of its namespace, under corral's init.
        assert_eq!(v["pid"], 2, "[{b}] {line}");
        assert_eq!(v["all"].as_array().unwrap().len(), 5, "[{b}] {line}");
        let (code, err) = w.finish(child);
        assert_eq!(code, 124, "[{b}] {err}");
        let r = w.report();
        assert_eq!(r["leftover"], 0, "[{b}]");
        w.assert_nothing_left();
    }
}

#[test]
fn run_refuses_bad_isolation_in_one_line_and_starts_nothing() {
    let mut w = World::new("pgid");
    let cases: [(&[&str], &str); 5] = [
        (&["--seccomp", "strict"], "expected default, deny=NAME,... or allow=NAME,..."),
        (&["--bind", "/nonexistent/corral-src:/mnt"], "bind source /nonexistent/corral-src cannot be used"),
        (&["--cap-keep", "CAP_FLY"], "unknown capability \"CAP_FLY\""),
        (&["--bind", "/usr"], "expected SRC:DST or SRC:DST:ro"),
        (&["--isolate", "user", "--net-ns", "/proc/self/ns/net"], "cannot be joined from a user namespace"),
    ];
    let marker = w.dir.join("started");
    for (flags, want) in cases {
        let (code, _, err) = run_sh(&mut w, flags, &format!("touch {}", marker.display()));
        assert_ne!(code, 0, "{flags:?}");
        assert!(err.contains(want), "{flags:?}: {err}");
        assert!(!marker.exists(), "{flags:?}: nothing starts");
    }
    w.assert_nothing_left();
}

#[test]
fn a_service_runs_isolated_under_the_daemon() {
    require_root!(ROOT);
    let script = "echo procs=$(ls /proc | grep -cE '^[0-9]+$') host=$(cat /proc/sys/kernel/hostname) \
                  tmp=$(ls -A /tmp | wc -l) $(grep CapEff /proc/self/status); exec sleep 30";
    let toml = format!(
        "[services.box]\ncommand = [\"/bin/sh\", \"-c\", {}]\nrestart = \"no\"\n\
         [services.box.isolate]\npid = true\nnet = \"none\"\nuts = \"svc-box\"\nprivate_tmp = true\n\
         no_new_privileges = true\ncapabilities = []\n",
        q(script)
    );
    let mut d = Daemon::start(&toml);
    d.wait_transition("box", "running");
    let log = d.path(".corral/logs/box/0.log");
    let end = std::time::Instant::now() + daemon::LONG;
    let line = loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if let Some(l) = text.lines().find(|l| l.contains("procs=")) {
            break l.to_string();
        }
        assert!(std::time::Instant::now() < end, "no output in {}", log.display());
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    for want in ["host=svc-box", "tmp=0", "CapEff: 0000000000000000"] {
        assert!(line.contains(want), "{want} in {line}");
    }
    let procs: usize = line.split("procs=").nth(1).unwrap().split(' ').next().unwrap().parse().unwrap();
    assert!(procs <= 6, "{line}");
    let pid = d.pid_of("box").expect("a running instance");
    assert_eq!(std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap().trim(), "corral-init");
    d.seen.push(pid);
    d.down();
}

#[test]
fn a_config_with_a_missing_bind_source_is_refused_at_load() {
    let dir = Daemon::dir();
    let toml = "[services.a]\ncommand = [\"/bin/true\"]\n\n[services.a.isolate]\n\
                bind = [{ src = \"/nonexistent/corral-src\", dst = \"/mnt\" }]\n";
    std::fs::write(dir.path().join("corral.toml"), toml).unwrap();
    let out = std::process::Command::new(daemon::CORRAL)
        .args(["up", "--no-color", "-c"])
        .arg(dir.path().join("corral.toml"))
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("corral.toml:5:8: service `a`: isolate: bind source /nonexistent/corral-src cannot be used"),
        "{err}"
    );
    assert!(!dir.path().join(".corral/events.jsonl").exists(), "nothing started: {err}");
}

/// The Windows-only flags of `corral run`: one line, exit 125, and the
/// command never ran.
#[test]
fn windows_token_and_working_set_flags_are_refused_on_linux_in_one_line() {
    let dir = DiskDir::new("cli-iso-winflags");
    let ran = dir.path().join("ran");
    let script = format!("touch {}", ran.display());
    for (flags, want) in [
        (["--token", "low-integrity"], "a low-integrity token is a Windows access token; linux has none"),
        (["--working-set", "1MiB:64MiB"], "a working-set limit is a limit of Windows jobs; linux has no"),
    ] {
        let out = std::process::Command::new(corral())
            .arg("run")
            .args(flags)
            .args(["--", "/bin/sh", "-c", &script])
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(125), "{err}");
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.contains(want), "{err}");
        assert!(!ran.exists(), "nothing starts: {flags:?}");
    }
}
