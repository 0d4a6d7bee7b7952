//! `corral up` on Windows, for real (under Wine in CI): the control API on
//! a named pipe, the client verbs over it, a snapshot with a minidump of
//! the leader, and `corral down` leaving no process behind.
//!
//! Every pid the testkit prints is opened by the test itself as soon as it
//! is known, and must be ended at the end (`GetExitCodeProcess` on the
//! test's own handle, which also keeps the pid from being reused).

#![cfg(windows)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

mod windows_support;

use windows_support::*;

fn corral(cfg: &Path, args: &[&str]) -> Output {
    output(Command::new(CORRAL).args(args).arg("-c").arg(cfg).stdin(Stdio::null()))
}

/// A daemon with a temp folder, killed and cleaned up if the test fails.
struct Daemon {
    dir: PathBuf,
    cfg: PathBuf,
    child: Option<Child>,
    pipe: String,
}

impl Daemon {
    fn up(tag: &str, toml: &str) -> Daemon {
        let dir = std::env::temp_dir().join(format!("corral-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let cfg = dir.join("corral.toml");
        std::fs::write(&cfg, toml).unwrap();
        let mut child = Command::new(CORRAL)
            .args(["up", "--no-color", "-c"])
            .arg(&cfg)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start corral up");
        let mut err = BufReader::new(child.stderr.take().unwrap());
        let mut pipe = String::new();
        let mut seen = String::new();
        let mut line = String::new();
        while pipe.is_empty() {
            line.clear();
            if err.read_line(&mut line).unwrap_or(0) == 0 {
                let _ = child.kill();
                panic!("corral up ended before it listened:\n{seen}");
            }
            seen.push_str(&line);
            if let Some(p) = line.trim().strip_prefix("corral: listening on ") {
                pipe = p.to_string();
            }
        }
        // Keep draining stderr so the daemon never blocks on it.
        std::thread::spawn(move || {
            let mut sink = String::new();
            while err.read_line(&mut sink).unwrap_or(0) > 0 {
                eprint!("daemon: {sink}");
                sink.clear();
            }
        });
        Daemon { dir, cfg, child: Some(child), pipe }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[test]
fn up_on_a_named_pipe_dumps_the_leader_and_stops_leaving_nothing() {
    let kit = corral_testkit::binary();
    let toml = format!(
        "[services.app]\ncommand = ['{}', '--children', '2', '--sleep', '120']\nstop = {{ grace = \"3s\" }}\n",
        kit.display()
    );
    let mut d = Daemon::up("winup", &toml);
    assert!(d.pipe.starts_with(r"\\.\pipe\corral-"), "the API listens on a pipe: {}", d.pipe);

    // The client verbs reach it over the pipe.
    let status = until(30, "app running", || {
        let out = corral(&d.cfg, &["status", "--json"]);
        assert!(out.status.success(), "status: {}", text(&out.stderr));
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
        let i = v["instances"].as_array()?.first()?.clone();
        (i["state"] == "running").then_some(i)
    });
    let leader = status["pid"].as_u64().expect("a running instance has a pid") as u32;
    let log = d.dir.join(".corral").join("logs").join("app").join("0.log");
    let pids = until(30, "the testkit's ready line", || ready_pids(&log, 0));
    assert_eq!(pids[0], leader);
    assert_eq!(pids.len(), 3, "the leader and two children: {pids:?}");
    let procs: Vec<Proc> = pids.iter().map(|p| Proc::open(*p)).collect();

    // A snapshot on request: summary, tree and a minidump of the leader.
    let out = corral(&d.cfg, &["dump", "app"]);
    assert!(out.status.success(), "dump: {}{}", text(&out.stdout), text(&out.stderr));
    let stdout = text(&out.stdout);
    let folder = PathBuf::from(stdout.trim().strip_prefix("app.0: ").unwrap_or_else(|| panic!("{stdout}")));
    let dmp = std::fs::read(folder.join("leader.dmp")).expect("leader.dmp");
    assert_eq!(&dmp[..4], b"MDMP", "a minidump");
    let summary: serde_json::Value =
        serde_json::from_slice(&std::fs::read(folder.join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["leader"], leader);
    assert_eq!(summary["unreadable"].as_array().map(Vec::len), Some(0), "{summary}");
    assert!(folder.join("tree.txt").exists());
    assert!(procs.iter().all(Proc::running), "a snapshot stops nothing");
    let events = text(&corral(&d.cfg, &["events", "--json"]).stdout);
    assert!(events.contains("\"kind\":\"dump\""), "the snapshot is an event: {events}");

    // Bad input: one line naming the cause; nothing changes.
    let out = corral(&d.cfg, &["dump", "nosuch"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("no service `nosuch`"), "{}", text(&out.stderr));
    let second = corral(&d.cfg, &["up"]);
    assert!(!second.status.success(), "a second daemon for the same config must not start");
    assert!(text(&second.stderr).contains("another corral daemon"), "{}", text(&second.stderr));
    assert!(procs.iter().all(Proc::running), "the refused daemon touched nothing");

    // Down: every process of the group ends, then the daemon.
    let out = corral(&d.cfg, &["down"]);
    assert!(out.status.success(), "down: {}", text(&out.stderr));
    let mut child = d.child.take().unwrap();
    let code = until(30, "the daemon to exit", || child.try_wait().unwrap());
    assert!(code.success(), "the daemon exits 0: {code:?}");
    for p in &procs {
        assert!(!p.running(), "process {} survived corral down", p.pid);
    }
    let out = corral(&d.cfg, &["status"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("no daemon is running on"), "{}", text(&out.stderr));
}
