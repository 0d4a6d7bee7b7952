//! The `corral up` test harness shared by the supervisor's end-to-end tests:
//! a real daemon per test in its own temp dir, waited on through its
//! stderr lines, its event log and `corral status`, never a fixed sleep,
//! and a final proof that every pid it saw is gone.

#![allow(dead_code)] // each test binary uses a different part of it

pub mod pki;

use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

pub const CORRAL: &str = env!("CARGO_BIN_EXE_corral");
pub const LONG: Duration = Duration::from_secs(30);

pub fn testkit() -> PathBuf {
    corral_testkit::binary()
}

/// A TOML string.
pub fn q(s: impl AsRef<str>) -> String {
    format!("{:?}", s.as_ref())
}

pub fn tk() -> String {
    q(testkit().display().to_string())
}

/// A port nothing listens on right now. The kernel hands out ephemeral
/// ports at random, so another test taking it before the service binds it
/// is very unlikely; the testkit binds with SO_REUSEADDR.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

pub struct Daemon {
    pub dir: tempfile::TempDir,
    pub child: Option<Child>,
    pub stderr: Receiver<String>,
    pub started: Vec<String>,
    pub seen: Vec<u32>,
}

impl Daemon {
    /// A temp dir for the test to put files in before it writes the config.
    pub fn dir() -> tempfile::TempDir {
        tempfile::tempdir().unwrap()
    }

    /// A daemon on `toml`, in a new temp dir.
    pub fn start(toml: &str) -> Daemon {
        Daemon::start_in(Daemon::dir(), toml)
    }

    /// A daemon on `toml`, written into `dir` (which may hold other files).
    pub fn start_in(dir: tempfile::TempDir, toml: &str) -> Daemon {
        std::fs::write(dir.path().join("corral.toml"), toml).unwrap();
        Daemon::restart_in(dir)
    }

    /// A daemon on the `corral.toml` already in `dir`.
    pub fn restart_in(dir: tempfile::TempDir) -> Daemon {
        Daemon::restart_in_with(dir, |_| {})
    }

    /// A daemon on the `corral.toml` already in `dir`, its command adjusted
    /// by `tweak` first (environment, inherited fds, signal state).
    pub fn restart_in_with(dir: tempfile::TempDir, tweak: impl FnOnce(&mut Command)) -> Daemon {
        let (child, rx) = spawn_up_with(&dir.path().join("corral.toml"), tweak);
        let mut d = Daemon { dir, child: Some(child), stderr: rx, started: Vec::new(), seen: Vec::new() };
        d.started = d.wait_stderr("corral: listening on");
        d
    }

    /// Waits for a daemon stderr line containing `needle`; returns the lines up to it.
    pub fn wait_stderr(&self, needle: &str) -> Vec<String> {
        let end = Instant::now() + LONG;
        let mut lines = Vec::new();
        while Instant::now() < end {
            match self.stderr.recv_timeout(end - Instant::now()) {
                Ok(l) => {
                    let hit = l.contains(needle);
                    lines.push(l);
                    if hit {
                        return lines;
                    }
                }
                Err(_) => break,
            }
        }
        panic!("the daemon never printed {needle:?}; it printed {lines:?}");
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    pub fn corral(&self, args: &[&str]) -> Output {
        let mut c = Command::new(CORRAL);
        c.args(args).arg("-c").arg(self.path("corral.toml"));
        bounded_output(c)
    }

    /// The event log's whole lines: the daemon may be appending the last
    /// one while it is read (a CI run read half a line so), and a line is
    /// only written once it ends in a newline.
    pub fn events(&self) -> Vec<Value> {
        let text = std::fs::read_to_string(self.path(".corral/events.jsonl")).unwrap_or_default();
        let whole = &text[..text.rfind('\n').map_or(0, |i| i + 1)];
        whole.lines().map(|l| serde_json::from_str(l).unwrap()).collect()
    }

    /// Polls the event log until `pred` holds for some event.
    pub fn wait_event(&mut self, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
        let end = Instant::now() + LONG;
        loop {
            let evs = self.events();
            self.note_pids(&evs);
            if let Some(e) = evs.iter().find(|e| pred(e)) {
                return e.clone();
            }
            assert!(Instant::now() < end, "no event {what} in {:#?}", evs);
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    pub fn wait_transition(&mut self, service: &str, to: &str) -> Value {
        self.wait_event(&format!("{service} -> {to}"), |e| is_transition(e) && e["service"] == service && e["to"] == to)
    }

    pub fn note_pids(&mut self, evs: &[Value]) {
        for e in evs {
            if let Some(p) = e["pid"].as_u64() {
                if !self.seen.contains(&(p as u32)) {
                    self.seen.push(p as u32);
                }
            }
        }
    }

    /// Waits until the instance's log holds a testkit ready line after
    /// `skip` earlier ones, and returns every pid in it.
    pub fn ready_pids(&mut self, service: &str, skip: usize) -> Vec<u32> {
        let log = self.path(&format!(".corral/logs/{service}/0.log"));
        let end = Instant::now() + LONG;
        loop {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            let ready: Vec<String> = text
                .lines()
                .filter_map(|l| l.split_once(" out {\"ready\"").map(|(_, j)| format!("{{\"ready\"{j}")))
                .collect();
            if let Some(json) = ready.get(skip) {
                let pids = pids_of_ready_line(json);
                self.seen.extend(&pids);
                return pids;
            }
            assert!(Instant::now() < end, "no ready line #{skip} in {}", log.display());
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    pub fn status(&self) -> Vec<Value> {
        let out = self.corral(&["status", "--json"]);
        assert!(out.status.success(), "status failed: {}", String::from_utf8_lossy(&out.stderr));
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        v["instances"].as_array().unwrap().clone()
    }

    pub fn instance(&self, service: &str) -> Value {
        self.status().into_iter().find(|i| i["service"] == service).unwrap()
    }

    /// Polls `corral status` until `pred` holds for the service's instance 0.
    pub fn wait_status(&self, what: &str, service: &str, pred: impl Fn(&Value) -> bool) -> Value {
        let end = Instant::now() + LONG;
        loop {
            let i = self.instance(service);
            if pred(&i) {
                return i;
            }
            assert!(Instant::now() < end, "{service} never got to {what}: {i:#}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits until the instance's log holds a testkit ready line and
    /// returns every pid in the latest one.
    pub fn latest_ready_pids(&mut self, service: &str, instance: u32) -> Vec<u32> {
        let log = self.path(&format!(".corral/logs/{service}/{instance}.log"));
        let end = Instant::now() + LONG;
        loop {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            if let Some(json) =
                text.lines().rev().find_map(|l| l.split_once(" out {\"ready\"").map(|(_, j)| format!("{{\"ready\"{j}")))
            {
                let v: Value = serde_json::from_str(&json).unwrap();
                let mut pids = vec![v["pid"].as_u64().unwrap() as u32];
                pids.extend(v["all"].as_array().unwrap().iter().map(|p| p.as_u64().unwrap() as u32));
                self.seen.extend(&pids);
                return pids;
            }
            assert!(Instant::now() < end, "no ready line in {}", log.display());
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    pub fn pid_of(&self, service: &str) -> Option<u32> {
        self.status().iter().find(|i| i["service"] == service).and_then(|i| i["pid"].as_u64()).map(|p| p as u32)
    }

    /// `corral down`, then the daemon must exit 0 and every pid seen be gone.
    pub fn down(mut self) {
        let out = self.corral(&["down"]);
        assert!(out.status.success(), "down failed: {}", String::from_utf8_lossy(&out.stderr));
        let status = self.child.take().unwrap().wait().unwrap();
        assert!(status.success(), "daemon exit: {status}");
        let evs = self.events();
        self.note_pids(&evs);
        assert_gone(&self.seen);
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            // SAFETY: kill has no memory-safety preconditions.
            unsafe { libc::kill(c.id() as i32, libc::SIGTERM) };
            let _ = c.wait();
        }
    }
}

/// A pid is gone when it has no /proc entry or is a zombie waiting for a
/// slow init to reap it.
pub fn gone(pid: u32) -> bool {
    if std::path::Path::new("/proc/self/stat").exists() {
        return match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
            Err(_) => true,
            Ok(s) => s.rsplit_once(") ").is_some_and(|(_, r)| r.starts_with('Z') || r.starts_with('X')),
        };
    }
    // No /proc (macOS): kill with signal 0 only checks that the pid exists.
    // SAFETY: no memory is involved.
    unsafe { libc::kill(pid as i32, 0) != 0 }
}

pub fn assert_gone(pids: &[u32]) {
    let end = Instant::now() + Duration::from_secs(10);
    while Instant::now() < end {
        if pids.iter().all(|&p| gone(p)) {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let alive: Vec<_> = pids.iter().filter(|&&p| !gone(p)).collect();
    panic!("processes left behind: {alive:?}");
}

pub fn is_transition(e: &Value) -> bool {
    e.get("kind").is_none()
}

pub fn pids_of_ready_line(json: &str) -> Vec<u32> {
    let v: Value = serde_json::from_str(json).unwrap();
    let mut pids = vec![v["pid"].as_u64().unwrap() as u32];
    pids.extend(v["all"].as_array().unwrap().iter().map(|p| p.as_u64().unwrap() as u32));
    pids
}

/// Starts `corral up -c config` with its stderr read line by line on a
/// thread, so a test can wait on lines without blocking the daemon.
pub fn spawn_up(config: &std::path::Path) -> (Child, Receiver<String>) {
    spawn_up_with(config, |_| {})
}

/// [`spawn_up`], with `tweak` applied to the command first (a lower
/// rlimit set in `pre_exec`, say).
pub fn spawn_up_with(config: &std::path::Path, tweak: impl FnOnce(&mut Command)) -> (Child, Receiver<String>) {
    let mut cmd = Command::new(CORRAL);
    cmd.args(["up", "--no-color", "-c"]).arg(config).stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::piped());
    tweak(&mut cmd);
    let mut child = cmd.spawn().unwrap();
    let (tx, rx) = mpsc::channel();
    let err = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(err).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    (child, rx)
}

/// A client verb may not hang a test: a daemon that stops answering fails
/// it (the verb killed by pid) instead of blocking the suite.
pub fn bounded_output(mut c: Command) -> Output {
    const VERB_LIMIT: Duration = Duration::from_secs(120);
    let mut child = c.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let read = |r: Option<Box<dyn std::io::Read + Send>>| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            if let Some(mut r) = r {
                let _ = r.read_to_end(&mut buf);
            }
            buf
        })
    };
    let out = read(child.stdout.take().map(|r| Box::new(r) as _));
    let err = read(child.stderr.take().map(|r| Box::new(r) as _));
    let end = Instant::now() + VERB_LIMIT;
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > end {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{c:?} did not answer within {VERB_LIMIT:?}");
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    Output { status, stdout: out.join().unwrap(), stderr: err.join().unwrap() }
}

/// The pid of the log holder (`corral __holder SOCKET`) serving the daemon
/// whose state folder is `dir`'s `.corral`.
pub fn holder_pid(dir: &std::path::Path) -> u32 {
    let sock = dir.join(".corral/holder.sock").display().to_string();
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .find(|p| {
            let cmd = std::fs::read(format!("/proc/{p}/cmdline")).unwrap_or_default();
            let args: Vec<&[u8]> = cmd.split(|&b| b == 0).collect();
            args.contains(&b"__holder".as_slice()) && args.contains(&sock.as_bytes())
        })
        .expect("a log holder runs")
}
