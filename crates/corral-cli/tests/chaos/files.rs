//! Chaos: the daemon's files and its persisted state (issue 10, items 6,
//! 9, 10, 11, 15, 16, 17). The daemon runs as root while a service may
//! not: nothing it writes may be redirected by a planted symlink, nothing
//! it finds may lose its mode or be deleted, and nothing it persisted may
//! be lost or, once torn or corrupt, silently ignored.

use crate::daemon::{assert_gone, gone, tk, Daemon, CORRAL, LONG};
use serde_json::Value;
use std::os::unix::fs::{symlink, MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

fn mode(p: &Path) -> u32 {
    std::fs::symlink_metadata(p).unwrap().mode() & 0o7777
}

/// `corral up` on `toml` in `dir`, which must refuse to start: returns its
/// stderr. A daemon that starts anyway is killed (by pid) and fails the test.
fn up_refused(dir: &Path, toml: &str) -> String {
    std::fs::write(dir.join("corral.toml"), toml).unwrap();
    let mut child = Command::new(CORRAL)
        .args(["up", "--no-color", "-c"])
        .arg(dir.join("corral.toml"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let end = Instant::now() + LONG;
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > end {
            child.kill().unwrap();
            child.wait().unwrap();
            panic!("the daemon started where it had to refuse");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
    assert!(!status.success(), "the daemon exited 0: {err}");
    assert_eq!(err.lines().count(), 1, "one line that names the cause: {err}");
    err
}

/// Item 9: a shared (1777) state_dir lost its sticky bit for good.
#[test]
fn a_shared_state_dir_keeps_its_mode_and_is_refused_with_the_reason() {
    let dir = Daemon::dir();
    let shared = dir.path().join("shared");
    std::fs::create_dir(&shared).unwrap();
    std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o1777)).unwrap();
    let toml = "[daemon]\nstate_dir = \"shared\"\n[services.a]\ncommand = [\"true\"]\n";
    let err = up_refused(dir.path(), toml);
    assert!(err.contains("state_dir") && err.contains("writable by other users (mode 1777)"), "{err}");
    assert_eq!(mode(&shared), 0o1777, "a directory corral did not create keeps its mode");
    assert!(std::fs::read_dir(&shared).unwrap().next().is_none(), "nothing was written in it");
    // The same for a log_dir that others can write.
    let logs = dir.path().join("logs");
    std::fs::create_dir(&logs).unwrap();
    std::fs::set_permissions(&logs, std::fs::Permissions::from_mode(0o777)).unwrap();
    let err = up_refused(dir.path(), "[daemon]\nlog_dir = \"logs\"\n[services.a]\ncommand = [\"true\"]\n");
    assert!(err.contains("log_dir") && err.contains("mode 777"), "{err}");
    assert_eq!(mode(&logs), 0o777);
}

/// Item 10: `socket =` an existing regular file deleted it.
#[test]
fn socket_at_a_regular_file_keeps_the_file_and_a_stale_socket_is_replaced() {
    let dir = Daemon::dir();
    let precious = dir.path().join("precious.txt");
    std::fs::write(&precious, "not a socket\n").unwrap();
    let toml = "[daemon]\nsocket = \"precious.txt\"\n[services.a]\ncommand = [\"true\"]\n";
    let err = up_refused(dir.path(), toml);
    assert!(err.contains("is not a socket") && err.contains("precious.txt"), "{err}");
    assert_eq!(std::fs::read_to_string(&precious).unwrap(), "not a socket\n");
    // A socket nobody answers on is a stale one: replaced.
    let stale = dir.path().join("stale.sock");
    drop(std::os::unix::net::UnixListener::bind(&stale).unwrap());
    let toml =
        format!("[daemon]\nsocket = \"stale.sock\"\n[services.a]\ncommand = [{tk}, \"--sleep\", \"60\"]\n", tk = tk());
    let mut d = Daemon::start_in(dir, &toml);
    d.wait_transition("a", "running");
    d.down();
}

/// Item 11: logs outside state_dir were created 0644 in 0755 dirs.
#[test]
fn logs_outside_state_dir_are_private() {
    let dir = Daemon::dir();
    let toml = format!(
        "[daemon]\nlog_dir = \"out/logs\"\n[services.a]\ncommand = [{tk}, \"--lines\", \"3\", \"--sleep\", \"60\"]\n",
        tk = tk()
    );
    let mut d = Daemon::start_in(dir, &toml);
    d.wait_transition("a", "running");
    let log = d.path("out/logs/a/0.log");
    let end = Instant::now() + LONG;
    while std::fs::read_to_string(&log).unwrap_or_default().lines().count() < 3 {
        assert!(Instant::now() < end, "no output in {}", log.display());
        std::thread::sleep(Duration::from_millis(10));
    }
    for p in ["out", "out/logs", "out/logs/a", ".corral"] {
        assert_eq!(mode(&d.path(p)), 0o700, "{p}");
    }
    assert_eq!(mode(&log), 0o600);
    for f in ["events.jsonl", "state.json"] {
        assert_eq!(mode(&d.path(&format!(".corral/{f}"))), 0o600, "{f}");
    }
    d.down();
}

/// Item 6, at start: a `user = "nobody"` service whose log folder it can
/// write could swap its log for a symlink to a root-only file, and root
/// appended its next lines there. Such a folder is refused before anything
/// runs; the root-only file is untouched.
#[test]
fn a_log_folder_a_service_user_can_write_is_refused_before_it_runs() {
    if !is_root() {
        return eprintln!("skipped: needs root to run a service as nobody");
    }
    let dir = Daemon::dir();
    let secret = dir.path().join("secret");
    std::fs::write(&secret, "root only\n").unwrap();
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).unwrap();
    let theirs = dir.path().join(".corral/logs/svc");
    std::fs::create_dir_all(&theirs).unwrap();
    std::os::unix::fs::chown(&theirs, Some(65534), Some(65534)).unwrap();
    symlink(&secret, theirs.join("0.log")).unwrap();
    let marker = dir.path().join("it-ran");
    let toml = format!(
        "[services.svc]\nuser = \"nobody\"\ncommand = [\"sh\", \"-c\", \"echo leaked; : > {m}\"]\n",
        m = marker.display()
    );
    let err = up_refused(dir.path(), &toml);
    assert!(err.contains("`svc`") && err.contains("belongs to uid 65534"), "{err}");
    assert_eq!(std::fs::read_to_string(&secret).unwrap(), "root only\n");
    assert!(!marker.exists(), "nothing was started");
}

/// Item 6, at run time: whoever swaps a log file, a log folder, the state
/// file's temporary or a dump folder for a symlink to a root-only file
/// gets nothing written through it; the daemon says so once per refusal.
#[test]
fn symlinks_planted_where_the_daemon_writes_are_never_followed() {
    let dir = Daemon::dir();
    let secret = dir.path().join("secret");
    std::fs::write(&secret, "root only\n").unwrap();
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).unwrap();
    let elsewhere = dir.path().join("elsewhere");
    std::fs::create_dir(&elsewhere).unwrap();
    let toml = format!(
        "[services.file]\nrestart = \"no\"\ncommand = [{tk}, \"--lines\", \"2\", \"--sleep\", \"60\"]\n\
         [services.folder]\nrestart = \"no\"\ncommand = [{tk}, \"--lines\", \"2\", \"--sleep\", \"60\"]\n",
        tk = tk()
    );
    let mut d = Daemon::start_in(dir, &toml);
    d.ready_pids("file", 0);
    d.ready_pids("folder", 0);
    // Once both runs are recorded the state writer is idle: nothing races the plant.
    let first: Vec<Value> = ["file", "folder"].iter().map(|s| d.instance(s)["pid"].clone()).collect();
    wait_state(&d, "the first runs recorded", |s| recorded(s, &first));
    // The attacker's moves, between two runs.
    std::fs::remove_file(d.path(".corral/logs/file/0.log")).unwrap();
    symlink(&secret, d.path(".corral/logs/file/0.log")).unwrap();
    std::fs::remove_dir_all(d.path(".corral/logs/folder")).unwrap();
    symlink(&elsewhere, d.path(".corral/logs/folder")).unwrap();
    symlink(&secret, d.path(".corral/state.json.tmp")).unwrap();
    symlink(&elsewhere, d.path(".corral/dumps")).unwrap();
    let out = d.corral(&["dump", "file"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("no snapshot") && err.contains(".corral/dumps is a symlink"), "{err}");
    for svc in ["file", "folder"] {
        let out = d.corral(&["restart", svc]);
        assert!(out.status.success(), "restart {svc}: {}", String::from_utf8_lossy(&out.stderr));
    }
    let said = stderr_until(&d, &["logs/file/0.log is a symlink", "logs/folder is a symlink"]);
    // Both run on, their output discarded rather than redirected.
    let mut pids = Vec::new();
    for svc in ["file", "folder"] {
        let i = d.wait_status("running again", svc, |i| i["state"] == "running");
        pids.push(i["pid"].clone());
    }
    let all = said.into_iter().chain(d.stderr.try_iter()).collect::<Vec<_>>().join("\n");
    assert_eq!(all.matches("logs/file/0.log is a symlink").count(), 1, "{all}");
    assert_eq!(all.matches("logs/folder is a symlink").count(), 1, "{all}");
    assert_eq!(std::fs::read_to_string(&secret).unwrap(), "root only\n");
    assert!(std::fs::read_dir(&elsewhere).unwrap().next().is_none(), "nothing created through the folder link");
    // state.json was replaced whole, not written through its planted temporary.
    wait_state(&d, "the new runs recorded", |s| recorded(s, &pids));
    assert!(!d.path(".corral/state.json.tmp").exists());
    d.down();
}

/// Item 15: after a daemon SIGKILL, an empty or corrupt state.json was
/// ignored silently, and on the pgid backend 6 escapees lived on.
fn leftovers_are_reaped_with_an_unreadable_state_file(contents: &str) {
    let toml = format!(
        "[services.tree]\ncommand = [{tk}, \"--children\", \"2\", \"--setsid\", \"2\", \"--double-fork\", \"2\", \"--sleep\", \"120\"]\n",
        tk = tk()
    );
    let mut d = start_pgid(Daemon::dir(), Some(&toml));
    let pids = d.latest_ready_pids("tree", 0);
    let state = wait_state(&d, "the group recorded", |s| s["groups"].as_array().is_some_and(|g| g.len() == 1));
    assert_eq!(state["groups"][0]["backend"], "pgid", "{state}");
    let mut child = d.child.take().unwrap();
    child.kill().unwrap();
    child.wait().unwrap();
    let escapees: Vec<u32> = pids.iter().copied().filter(|&p| !gone(p)).collect();
    assert!(
        escapees.len() >= 4,
        "setsid and double-fork escapees outlive a SIGKILLed daemon: {escapees:?} of {pids:?}"
    );
    std::fs::write(d.path(".corral/state.json"), contents).unwrap();
    let dir = std::mem::replace(&mut d.dir, Daemon::dir());
    drop(d);
    let mut d = start_pgid(dir, None);
    assert_gone(&escapees);
    let said = d.started.join("\n");
    assert!(said.contains("state.json is unreadable") && said.contains("found by their tag"), "{said}");
    let ev = d.wait_event("daemon event", |e| e["kind"] == "daemon");
    assert!(ev["reason"].as_str().unwrap().contains("unreadable"), "{ev}");
    d.seen.extend(&pids);
    d.latest_ready_pids("tree", 0);
    d.down();
}

#[test]
fn a_corrupt_state_file_still_reaps_every_escapee_on_the_pgid_backend() {
    leftovers_are_reaped_with_an_unreadable_state_file("{\"daemon_pid\": 12, \"gro");
}

#[test]
fn an_empty_state_file_still_reaps_every_escapee_on_the_pgid_backend() {
    leftovers_are_reaped_with_an_unreadable_state_file("");
}

/// A daemon forced onto the pgid backend (no cgroup holds the escapees).
fn start_pgid(dir: tempfile::TempDir, toml: Option<&str>) -> Daemon {
    if let Some(t) = toml {
        std::fs::write(dir.path().join("corral.toml"), t).unwrap();
    }
    Daemon::restart_in_with(dir, |c| {
        c.env("CORRAL_BACKEND", "pgid");
    })
}

/// Item 16: a torn last line (no newline) swallowed the next event.
#[test]
fn a_torn_events_tail_is_cut_and_the_next_event_stays_whole() {
    let toml = format!("[services.a]\ncommand = [{tk}, \"--sleep\", \"60\"]\n", tk = tk());
    let mut d = Daemon::start(&toml);
    d.wait_transition("a", "running");
    let out = d.corral(&["down"]);
    assert!(out.status.success(), "down: {}", String::from_utf8_lossy(&out.stderr));
    assert!(d.child.take().unwrap().wait().unwrap().success());
    let path = d.path(".corral/events.jsonl");
    let before = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, format!("{before}{{\"ts\":\"2026-12-06T04:")).unwrap();
    let dir = std::mem::replace(&mut d.dir, Daemon::dir());
    let seen = std::mem::take(&mut d.seen);
    drop(d);
    let mut d = Daemon::restart_in(dir);
    d.seen = seen;
    let said = d.started.join("\n");
    assert!(said.contains("events.jsonl ended in a torn line (21 bytes"), "{said}");
    // Every line parses (the harness unwraps each), the new run's included.
    let end = Instant::now() + LONG;
    while d.events().iter().filter(|e| e["service"] == "a" && e["to"] == "running").count() < 2 {
        assert!(Instant::now() < end, "no second run in {:#?}", d.events());
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(std::fs::read_to_string(&path).unwrap().starts_with(&before));
    d.down();
}

/// Item 17: events.jsonl grew for ever.
#[test]
fn events_rotate_by_size_and_corral_events_reads_across_the_rotation() {
    let toml = "[daemon]\nevents = { max_size = \"1KiB\", keep = 2 }\n\
                [services.blink]\ncommand = [\"true\"]\nrestart = \"always\"\n\
                backoff = { initial = \"10ms\", max = \"10ms\" }\nstart_limit = { burst = 1000, interval = \"1m\" }\n";
    let d = Daemon::start(toml);
    let path = d.path(".corral/events.jsonl");
    let oldest = d.path(".corral/events.jsonl.2");
    let first_line = |p: &Path| std::fs::read_to_string(p).ok().and_then(|t| t.lines().next().map(str::to_string));
    let end = Instant::now() + LONG;
    while first_line(&oldest).is_none() {
        assert!(Instant::now() < end, "events.jsonl never rotated twice");
        std::thread::sleep(Duration::from_millis(10));
    }
    // One more rotation: the oldest file is replaced, not kept as .3.
    let was = first_line(&oldest);
    while first_line(&oldest) == was {
        assert!(Instant::now() < end, "events.jsonl stopped rotating");
        std::thread::sleep(Duration::from_millis(10));
    }
    let out = d.corral(&["stop", "blink"]);
    assert!(out.status.success(), "stop: {}", String::from_utf8_lossy(&out.stderr));
    assert!(!d.path(".corral/events.jsonl.3").exists(), "keep = 2");
    for p in [&path, &d.path(".corral/events.jsonl.1"), &oldest] {
        let text = std::fs::read_to_string(p).unwrap();
        assert!(text.len() <= 1024, "{} holds {} bytes", p.display(), text.len());
        for l in text.lines() {
            serde_json::from_str::<Value>(l).unwrap_or_else(|e| panic!("{}: {e}: {l}", p.display()));
        }
    }
    // `corral events` shows history across the rotation, oldest first.
    let out = d.corral(&["events", "-n", "8", "--json"]);
    assert!(out.status.success(), "events: {}", String::from_utf8_lossy(&out.stderr));
    let shown: Vec<Value> =
        String::from_utf8_lossy(&out.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(shown.len(), 8, "{shown:#?}");
    let current = std::fs::read_to_string(&path).unwrap().lines().count();
    assert!(current < 8, "the current file alone cannot hold 8 events of ~250 bytes");
    assert!(shown.windows(2).all(|w| w[0]["unix_ms"].as_u64() <= w[1]["unix_ms"].as_u64()), "{shown:#?}");
    d.down();
}

/// True when state.json records a group for each leader pid.
fn recorded(state: &Value, pids: &[Value]) -> bool {
    let have: Vec<&Value> = state["groups"].as_array().into_iter().flatten().map(|g| &g["pid"]).collect();
    pids.iter().all(|p| have.contains(&p))
}

/// Polls state.json (written by a thread of its own) until `pred` holds.
fn wait_state(d: &Daemon, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
    let end = Instant::now() + LONG;
    loop {
        let text = std::fs::read(d.path(".corral/state.json")).unwrap_or_default();
        let state: Value = serde_json::from_slice(&text).unwrap_or(Value::Null);
        if pred(&state) {
            return state;
        }
        assert!(Instant::now() < end, "state.json never had {what}: {state}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Lines the daemon prints until every needle was seen (bounded).
fn stderr_until(d: &Daemon, needles: &[&str]) -> Vec<String> {
    let end = Instant::now() + LONG;
    let mut lines = Vec::new();
    while !needles.iter().all(|n| lines.iter().any(|l: &String| l.contains(n))) {
        let left = end.saturating_duration_since(Instant::now());
        match d.stderr.recv_timeout(left) {
            Ok(l) => lines.push(l),
            Err(_) => panic!("the daemon never printed all of {needles:?}; it printed {lines:?}"),
        }
    }
    lines
}
