//! Test support: run `corral` on the testkit, parse its ready line, and
//! prove afterwards that nothing it started is left.
//!
//! Every test marks its processes with a unique environment variable, which
//! every descendant inherits; the leak check scans `/proc` for it as well as
//! for the pids the testkit printed (compared by start time, so a reused pid
//! is not mistaken for a survivor).

#![allow(dead_code)]

use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

pub fn corral() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_corral"))
}

/// A fresh testkit binary (see `corral_testkit::binary`).
pub fn testkit() -> PathBuf {
    corral_testkit::binary()
}

/// Backends that can run on this host, from `corral doctor --json`.
pub fn backends() -> Vec<String> {
    let out = Command::new(corral()).args(["doctor", "--json"]).output().unwrap();
    let v: Value = serde_json::from_slice(&out.stdout).expect("doctor --json");
    let mut names = Vec::new();
    for b in v["backends"].as_array().unwrap() {
        let name = b["name"].as_str().unwrap().to_string();
        if b["available"].as_bool() == Some(true) || name == "cgroup2" && cgroup2_forceable(&b["reason"]) {
            names.push(name);
        } else {
            eprintln!("skipping backend {name}: {}", b["reason"]);
        }
    }
    names
}

/// A forced cgroup2 works without controllers (membership and kill only).
fn cgroup2_forceable(reason: &Value) -> bool {
    reason.as_str().is_some_and(|r| r.contains("has no"))
}

/// Backends that enforce group limits (a controller-less cgroup2 does not).
pub fn limit_backends() -> Vec<String> {
    let out = Command::new(corral()).args(["doctor", "--json"]).output().unwrap();
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    v["backends"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|b| b["available"].as_bool() == Some(true))
        .map(|b| b["name"].as_str().unwrap().to_string())
        .collect()
}

static SEQ: AtomicU32 = AtomicU32::new(0);

/// One test's world: a marker, a temp dir, the pids it saw.
pub struct World {
    pub mark: String,
    pub dir: PathBuf,
    pub backend: String,
    seen: Vec<(u32, u64)>,
    controllers: Vec<u32>,
}

impl World {
    pub fn new(backend: &str) -> World {
        let mark = format!("{}-{}-{}", std::process::id(), SEQ.fetch_add(1, Ordering::Relaxed), backend);
        let dir = std::env::temp_dir().join(format!("corral-test-{mark}"));
        std::fs::create_dir_all(&dir).unwrap();
        World { mark, dir, backend: backend.to_string(), seen: Vec::new(), controllers: Vec::new() }
    }

    /// `corral <args>` with the backend forced and the marker set.
    pub fn corral(&self, args: &[&str]) -> Command {
        let mut c = Command::new(corral());
        c.args(args).env("CORRAL_BACKEND", &self.backend).env("CORRAL_TEST_MARK", &self.mark);
        c
    }

    /// `corral run [flags] -- testkit [tk args]`, with a report file.
    pub fn run(&self, flags: &[&str], tk: &[&str]) -> Command {
        let report = self.report_path();
        let tkp = testkit();
        let mut args: Vec<&str> = vec!["run", "--report", report.to_str().unwrap()];
        args.extend_from_slice(flags);
        args.push("--");
        args.push(tkp.to_str().unwrap());
        args.extend_from_slice(tk);
        let mut c = self.corral(&args);
        c.stdout(Stdio::piped()).stderr(Stdio::piped());
        c
    }

    pub fn report_path(&self) -> PathBuf {
        self.dir.join("report.json")
    }

    pub fn report(&self) -> Value {
        let s = std::fs::read_to_string(self.report_path()).expect("report written");
        serde_json::from_str(&s).expect("report is JSON")
    }

    /// Spawns a `corral` process and remembers its pid for the cgroup check.
    pub fn spawn(&mut self, mut c: Command) -> Child {
        let child = c.spawn().unwrap();
        self.controllers.push(child.id());
        child
    }

    /// Reads the testkit's ready line from a running `corral run`.
    pub fn ready(&mut self, child: &mut Child) -> Value {
        let out = child.stdout.take().unwrap();
        let mut r = BufReader::new(out);
        let mut line = String::new();
        r.read_line(&mut line).unwrap();
        let v: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("ready line {line:?}: {e}"));
        self.note(&v);
        // Keep draining so the child never blocks on a full pipe.
        std::thread::spawn(move || {
            let mut sink = String::new();
            while r.read_line(&mut sink).map(|n| n > 0).unwrap_or(false) {
                sink.clear();
            }
        });
        v
    }

    /// Records the pids of a ready line with their start times.
    pub fn note(&mut self, ready: &Value) {
        let mut pids = vec![ready["pid"].as_u64().unwrap() as u32];
        pids.extend(ready["all"].as_array().unwrap().iter().map(|p| p.as_u64().unwrap() as u32));
        for p in pids {
            if let Some(st) = starttime(p) {
                self.seen.push((p, st));
            }
        }
    }

    pub fn seen(&self) -> usize {
        self.seen.len()
    }

    /// Waits for a finished `corral` and returns its output.
    pub fn finish(&mut self, mut child: Child) -> (i32, String) {
        let status = child.wait().unwrap();
        let mut err = String::new();
        if let Some(mut e) = child.stderr.take() {
            use std::io::Read;
            let _ = e.read_to_string(&mut err);
        }
        (status.code().unwrap_or(-1), err)
    }

    /// Kills the testkit leader (not corral), then waits for corral.
    pub fn finish_after_leader_kill(&mut self, child: Child) -> (i32, String) {
        let leader = self.seen.first().map(|(p, _)| *p).expect("ready line read");
        // SAFETY: kill(2) on a pid this test started.
        unsafe { libc::kill(leader as i32, libc::SIGKILL) };
        self.finish(child)
    }

    /// Runs to completion, reading the ready line if the testkit prints one.
    pub fn run_to_end(&mut self, flags: &[&str], tk: &[&str]) -> (i32, String) {
        let c = self.run(flags, tk);
        let mut child = self.spawn(c);
        let _ = self.ready(&mut child);
        self.finish(child)
    }

    /// Everything this test started is gone: reaped, not merely signalled.
    pub fn assert_nothing_left(&self) {
        let left = self.survivors();
        assert!(left.is_empty(), "[{}] processes survived: {left:?}", self.backend);
        self.assert_no_cgroup_dirs();
    }

    /// No cgroup directory of a `corral` this test ran is left.
    pub fn assert_no_cgroup_dirs(&self) {
        let mut dirs = Vec::new();
        walk(std::path::Path::new("/sys/fs/cgroup"), 0, &mut dirs);
        let mine: Vec<&PathBuf> = dirs
            .iter()
            .filter(|d| {
                let name = d.file_name().unwrap().to_string_lossy();
                self.controllers.iter().any(|c| name.starts_with(&format!("{c}-")))
            })
            .collect();
        assert!(mine.is_empty(), "[{}] cgroup directories left: {mine:?}", self.backend);
    }

    /// Pids of this test that still exist (zombies included), and live
    /// processes carrying the marker.
    pub fn survivors(&self) -> Vec<String> {
        let mut out = Vec::new();
        for (pid, start) in &self.seen {
            if starttime(*pid) == Some(*start) {
                out.push(format!("{pid} ({})", state(*pid)));
            }
        }
        let needle = format!("CORRAL_TEST_MARK={}", self.mark);
        for pid in all_pids() {
            if let Ok(env) = std::fs::read(format!("/proc/{pid}/environ")) {
                if env.split(|&b| b == 0).any(|kv| kv == needle.as_bytes())
                    && !out.iter().any(|s| s.starts_with(&format!("{pid} ")))
                {
                    out.push(format!("{pid} (marked, {})", state(pid)));
                }
            }
        }
        out
    }

    /// Like [`World::assert_nothing_left`], but processes that are no longer
    /// ours (re-parented to PID 1 after a controller was SIGKILLed) may
    /// linger as zombies until PID 1 reaps them.
    pub fn assert_nothing_alive(&self) {
        let end = Instant::now() + Duration::from_secs(10);
        loop {
            let alive: Vec<String> = self.survivors().into_iter().filter(|s| !s.contains("(Z")).collect();
            if alive.is_empty() {
                return;
            }
            assert!(Instant::now() < end, "[{}] still alive: {alive:?}", self.backend);
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for World {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

pub use corral_testkit::test_support::starttime;

pub fn state(pid: u32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| s.rfind(')').map(|i| s[i + 2..i + 3].to_string()))
        .unwrap_or_else(|| "?".into())
}

pub fn all_pids() -> Vec<u32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str().and_then(|s| s.parse().ok()))
        .collect()
}

fn walk(dir: &std::path::Path, depth: usize, out: &mut Vec<PathBuf>) {
    if depth > 6 {
        return;
    }
    let Ok(rd) = std::fs::read_dir(dir) else { return };
    for e in rd.flatten() {
        if !e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
            continue;
        }
        let p = e.path();
        let name = e.file_name().to_string_lossy().into_owned();
        let in_corral = dir.file_name().is_some_and(|n| n == "corral");
        if in_corral
            && name.split_once('-').is_some_and(|(pid, seq)| pid.parse::<u32>().is_ok() && seq.parse::<u64>().is_ok())
        {
            out.push(p.clone());
        } else {
            walk(&p, depth + 1, out);
        }
    }
}

/// Runs `corral` with args and no testkit.
pub fn output(mut c: impl std::borrow::BorrowMut<Command>) -> Output {
    let c = c.borrow_mut();
    c.stdin(Stdio::null());
    c.output().unwrap()
}
