//! `corral adopt PID`: a tree started outside corral is taken over with
//! `corral run`'s flags and exit codes; bad pids get one line and exit
//! 125 with nothing changed. Every test proves its processes gone.

#![cfg(target_os = "linux")]

mod support;

use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use support::*;

/// A testkit tree started by the test itself, marked for the leak check.
fn outside(w: &mut World, args: &[&str]) -> (Child, serde_json::Value) {
    outside_in(w, args, false)
}

/// With `own_group`, the top leads a session and process group of its own
/// (setsid), as a daemon started from a shell does.
fn outside_in(w: &mut World, args: &[&str], own_group: bool) -> (Child, serde_json::Value) {
    let mut cmd = Command::new(testkit());
    if own_group {
        // SAFETY: setsid(2) is async-signal-safe.
        unsafe {
            cmd.pre_exec(|| if libc::setsid() < 0 { Err(std::io::Error::last_os_error()) } else { Ok(()) });
        }
    }
    let mut child = cmd
        .args(args)
        .env("CORRAL_TEST_MARK", &w.mark)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let ready: serde_json::Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{line:?}: {e}"));
    w.note(&ready);
    (child, ready)
}

/// Kills what is left of a marked tree the test meant to keep running.
fn kill_marked(w: &World, mut top: Child) {
    let _ = top.kill();
    let _ = top.wait();
    for s in w.survivors() {
        let pid: i32 = s.split(' ').next().unwrap().parse().unwrap();
        // SAFETY: kill(2) on a pid of this test's own marked tree.
        unsafe { libc::kill(pid, libc::SIGKILL) };
    }
    w.assert_nothing_alive();
}

/// The cgroup backends (the pgid backend holds less, and is tested below).
fn cgroup_backends() -> Vec<String> {
    backends().into_iter().filter(|b| b != "pgid").collect()
}

#[test]
fn an_adopted_tree_with_setsid_escapees_is_killed_by_the_timeout() {
    for b in cgroup_backends() {
        let mut w = World::new(&b);
        let (mut top, ready) =
            outside(&mut w, &["--children", "2", "--grandchildren", "1", "--setsid", "2", "--sleep", "30.5"]);
        assert_eq!(w.seen(), 7, "[{b}] {ready}");
        let report = w.report_path();
        let pid = top.id().to_string();
        let mut c = w.corral(&["adopt", "-t", "1", "-k", "2", "--report", report.to_str().unwrap(), &pid]);
        c.stdout(Stdio::null()).stderr(Stdio::piped());
        let corral = w.spawn(c);
        let (code, err) = w.finish(corral);
        assert_eq!(code, 124, "[{b}] {err}");
        let r = w.report();
        assert_eq!(r["reason"], "timeout", "[{b}] {r}");
        assert_eq!(r["leftover"], 0, "[{b}] {r}");
        assert_eq!(r["spawn"], "adopted", "[{b}] {r}");
        assert!(r["exit_code"].is_null(), "[{b}] the leader's status is unknown: {r}");
        let _ = top.wait();
        // The escapees' parent was the top, not corral: PID 1 reaps them.
        w.assert_nothing_alive();
        w.assert_no_cgroup_dirs();
    }
}

#[test]
fn the_pgid_backend_adopts_a_process_group_with_a_setsid_escapee_and_the_timeout_kills_all_of_it() {
    let mut w = World::new("pgid");
    let (mut top, ready) = outside_in(
        &mut w,
        &["--children", "2", "--grandchildren", "1", "--setsid", "1", "--ignore-term", "--sleep", "60"],
        true,
    );
    assert_eq!(w.seen(), 6, "{ready}");
    let report = w.report_path();
    let pid = top.id().to_string();
    let mut c = w.corral(&["adopt", "-t", "1", "-k", "2", "--report", report.to_str().unwrap(), &pid]);
    c.stdout(Stdio::null()).stderr(Stdio::piped());
    let corral = w.spawn(c);
    let (code, err) = w.finish(corral);
    assert_eq!(code, 124, "{err}");
    assert!(err.contains("leaves the process group after the adoption"), "the weaker hold is said: {err}");
    let r = w.report();
    // SIGTERM is ignored: only the kill ends them, long before they would.
    assert!(r["duration_ms"].as_u64().unwrap() < 30_000, "{r}");
    assert_eq!(
        (&r["reason"], &r["leftover"], &r["backend"], &r["spawn"]),
        (&"timeout".into(), &0.into(), &"pgid".into(), &"adopted".into()),
        "{r}"
    );
    let _ = top.wait();
    w.assert_nothing_alive();
}

#[test]
fn the_pgid_backend_refuses_a_pid_that_leads_no_process_group_in_one_line_and_stops_nothing() {
    let mut w = World::new("pgid");
    let (top, _) = outside(&mut w, &["--children", "1", "--sleep", "30.5"]);
    let out = output(w.corral(&["adopt", &top.id().to_string()]));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(125), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("is not a process-group leader") && err.contains("use a cgroup backend"), "{err}");
    for s in w.survivors() {
        let pid: u32 = s.split(' ').next().unwrap().parse().unwrap();
        assert_ne!(state(pid), "T", "{pid} was left stopped");
    }
    kill_marked(&w, top);
}

#[test]
fn bad_pids_get_one_line_and_nothing_changes() {
    let backend = cgroup_backends().into_iter().next().unwrap_or_else(|| "pgid".into());
    let mut w = World::new(&backend);
    let one_line = |out: &std::process::Output, says: &str| {
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(125), "{err}");
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.contains(says), "{err}");
    };
    let run = |args: &[&str]| output(Command::new(corral()).args(args));
    one_line(&run(&["adopt", &i32::MAX.to_string()]), "there is no such process");
    one_line(&run(&["adopt", &std::process::id().to_string()]), "an ancestor of corral");
    // Its own pid: the shell execs corral in place.
    let own = output(Command::new("sh").args(["-c", &format!("exec {} adopt $$", corral().display())]));
    one_line(&own, "it is corral itself");

    // A tree corral already holds: it stays untouched.
    let mut held = w.spawn(w.run(&["-t", "60"], &["--children", "1", "--sleep", "30.5"]));
    let ready = w.ready(&mut held);
    let leader = ready["pid"].as_u64().unwrap().to_string();
    one_line(&run(&["adopt", &leader]), "corral already holds it");
    assert_ne!(state(leader.parse().unwrap()), "T", "the held tree is running, not stopped");
    // SAFETY: kill(2) on the `corral run` this test started.
    unsafe { libc::kill(held.id() as i32, libc::SIGTERM) };
    let (code, err) = w.finish(held);
    assert_eq!(code, 143, "{err}");
    w.assert_nothing_left();

    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipping the other-user case: it needs root to act as nobody");
        return;
    }
    let mut w = World::new(&backend);
    let (top, _) = outside(&mut w, &["--children", "1", "--sleep", "30.5"]);
    let out = match Command::new(corral()).args(["adopt", &top.id().to_string()]).uid(65534).gid(65534).output() {
        Ok(out) => out,
        // A checkout in a 0700 folder (mktemp -d) is closed to nobody.
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
            eprintln!("SKIPPED the other-user case: nobody cannot run {}: {e}", corral().display());
            kill_marked(&w, top);
            return;
        }
        Err(e) => panic!("{e}"),
    };
    one_line(&out, "belongs to another user");
    assert_ne!(state(top.id()), "T", "the root-owned tree is running, not stopped");
    kill_marked(&w, top);
}

mod daemon;

/// `n` quiet services, each a testkit tree with a setsid escapee.
fn quiet_services(n: usize) -> String {
    (0..n)
        .map(|i| {
            format!(
                "[services.s{i}]\ncommand = [{tk}, \"--children\", \"1\", \"--setsid\", \"1\", \"--sleep\", \"120\"]\n",
                tk = daemon::tk()
            )
        })
        .collect()
}

/// SIGKILLs the daemon and starts a new one on the same folder.
fn crash_and_restart(mut d: daemon::Daemon, before: impl FnOnce(&std::path::Path)) -> daemon::Daemon {
    let mut child = d.child.take().unwrap();
    child.kill().unwrap();
    child.wait().unwrap();
    let seen = std::mem::take(&mut d.seen);
    let dir = std::mem::replace(&mut d.dir, daemon::Daemon::dir());
    drop(d);
    before(dir.path());
    let mut d = daemon::Daemon::restart_in(dir);
    d.seen = seen;
    d
}

/// The recorded groups in `state.json`, once there are `n`.
fn recorded(dir: &std::path::Path, n: usize) -> serde_json::Value {
    let end = std::time::Instant::now() + daemon::LONG;
    loop {
        let text = std::fs::read_to_string(dir.join(".corral/state.json")).unwrap_or_default();
        if let Ok(v) = serde_json::from_str::<serde_json::Value>(&text) {
            if v["groups"].as_array().is_some_and(|g| g.len() == n && g.iter().all(|r| r["start"].is_u64())) {
                return v;
            }
        }
        assert!(std::time::Instant::now() < end, "never {n} groups recorded: {text}");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// The numbers of the `line <i> <pid>` lines in a service's log, in order.
fn numbered_lines(d: &daemon::Daemon, service: &str) -> Vec<u32> {
    let text = std::fs::read_to_string(d.path(&format!(".corral/logs/{service}/0.log"))).unwrap_or_default();
    text.lines()
        .filter_map(|l| l.split_once(" out line ").and_then(|(_, r)| r.split(' ').next()?.parse().ok()))
        .collect()
}

/// Waits until the log holds line `n`.
fn wait_line(d: &daemon::Daemon, service: &str, n: u32) -> Vec<u32> {
    let end = std::time::Instant::now() + daemon::LONG;
    loop {
        let got = numbered_lines(d, service);
        if got.contains(&n) {
            return got;
        }
        assert!(std::time::Instant::now() < end, "line {n} never came: {} lines", got.len());
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// 9 quiet services and `w`, which writes 400 numbered lines 10 ms apart.
fn ten_services() -> String {
    let writer = format!(
        "[services.w]\ncommand = [{tk}, \"--lines\", \"400\", \"--line-every-ms\", \"10\", \"--sleep\", \"120\"]\n",
        tk = daemon::tk()
    );
    format!("{writer}{}", quiet_services(9))
}

/// Every service's pids, once they run, recorded and `w` is writing.
fn running_pids(d: &mut daemon::Daemon) -> Vec<(String, Vec<u32>)> {
    let mut names: Vec<String> = (0..9).map(|i| format!("s{i}")).collect();
    names.push("w".into());
    let pids = names.into_iter().map(|s| (s.clone(), d.latest_ready_pids(&s, 0))).collect();
    recorded(d.dir.path(), 10);
    wait_line(d, "w", 50);
    pids
}

/// After a restart: every service was taken back with the same pids,
/// every line is there once and in order, and `down` ends it all, the log
/// holder included.
fn assert_taken_back_whole(mut d: daemon::Daemon, before: &[(String, Vec<u32>)]) {
    for (s, pids) in before {
        // The first run of the new daemon is the old one, taken back.
        let ev = d.wait_event("re-attached", |e| {
            daemon::is_transition(e)
                && e["service"] == s.as_str()
                && e["to"] == "running"
                && e["reason"] == "re-attached after a daemon restart"
        });
        assert_eq!(ev["pid"].as_u64(), Some(u64::from(pids[0])), "{ev}");
        for p in pids {
            assert!(!daemon::gone(*p), "{s}: {p} of {pids:?} died across the restart: {:#?}", d.events());
        }
    }
    let lines = wait_line(&d, "w", 400);
    assert_eq!(lines, (1..=400).collect::<Vec<u32>>(), "every line once, in order");
    let holder = daemon::holder_pid(d.dir.path());
    d.down();
    // With its last pipe dropped and its daemon gone, the holder goes too.
    daemon::assert_gone(&[holder]);
}

#[test]
fn a_sigkilled_daemon_restarted_takes_back_10_services_with_the_same_pids_and_every_log_line() {
    let mut d = daemon::Daemon::start(&ten_services());
    let before = running_pids(&mut d);
    let d = crash_and_restart(d, |_| {});
    assert_taken_back_whole(d, &before);
}

#[test]
fn an_upgrade_in_place_keeps_10_services_and_every_log_line() {
    let dir = daemon::Daemon::dir();
    std::fs::write(dir.path().join("corral.toml"), ten_services()).unwrap();
    // The daemon runs from a copy, which the "upgrade" then replaces.
    let exe = dir.path().join("corral-installed");
    std::fs::copy(daemon::CORRAL, &exe).unwrap();
    let mut c = Command::new(&exe);
    c.args(["up", "--no-color", "-c"])
        .arg(dir.path().join("corral.toml"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    // A file just written may be busy for a moment (ETXTBSY): a process
    // another test thread forks can hold its write fd until it execs.
    let mut child = (0..50)
        .find_map(|_| match c.spawn() {
            Err(e) if e.raw_os_error() == Some(libc::ETXTBSY) => {
                std::thread::sleep(std::time::Duration::from_millis(20));
                None
            }
            r => Some(r.unwrap()),
        })
        .expect("the copied corral stayed busy for 1 s");
    let (tx, stderr) = std::sync::mpsc::channel();
    let err = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(err).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let pid = child.id();
    let mut d = daemon::Daemon { dir, child: Some(child), stderr, started: Vec::new(), seen: Vec::new() };
    d.started = d.wait_stderr("corral: listening on");
    let before = running_pids(&mut d);

    // A different file under the same name, as a package manager does it.
    let fresh = d.path("corral-new");
    std::fs::copy(daemon::CORRAL, &fresh).unwrap();
    std::fs::rename(&fresh, &exe).unwrap();
    let running = std::fs::read_link(format!("/proc/{pid}/exe")).unwrap();
    assert!(running.to_string_lossy().ends_with("(deleted)"), "{}", running.display());

    let t0 = std::time::Instant::now();
    let out = d.corral(&["daemon", "restart"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    eprintln!("daemon restart with 10 services: answering again after {:?}", t0.elapsed());
    d.wait_stderr("re-executing");
    d.wait_stderr("corral: listening on");
    let now = std::fs::read_link(format!("/proc/{pid}/exe")).unwrap();
    assert_eq!(now, exe, "the same pid now runs the new file");
    assert_taken_back_whole(d, &before);
}

#[test]
fn a_recorded_leader_whose_start_time_differs_is_killed_not_taken_back() {
    let mut d = daemon::Daemon::start(&quiet_services(1));
    let old = d.latest_ready_pids("s0", 0);
    recorded(d.dir.path(), 1);
    // As if the pid had been reused by another process since.
    let d = crash_and_restart(d, |dir| {
        let path = dir.join(".corral/state.json");
        let mut v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let start = v["groups"][0]["start"].as_u64().unwrap();
        v["groups"][0]["start"] = (start + 1).into();
        std::fs::write(&path, v.to_string()).unwrap();
    });
    daemon::assert_gone(&old);
    let said = d.started.join("\n");
    assert!(said.contains("not re-attached: s0.0") && said.contains("the pid was reused"), "{said}");
    let mut d = d;
    let ev = d.wait_event("a refusal event", |e| e["kind"] == "daemon");
    assert!(ev["reason"].as_str().unwrap().contains("killed instead"), "{ev}");
    let ev = d.wait_event("a fresh start", |e| {
        daemon::is_transition(e) && e["to"] == "running" && e["pid"].as_u64() != Some(u64::from(old[0]))
    });
    assert_eq!(ev["reason"], "spawned", "{ev}");
    d.latest_ready_pids("s0", 0);
    d.down();
}

/// One HTTP request to `port`; whether an answer came.
fn answers(port: u16) -> bool {
    use std::io::{Read, Write};
    let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) else { return false };
    let _ = s.set_read_timeout(Some(std::time::Duration::from_secs(10)));
    let mut buf = Vec::new();
    s.write_all(b"GET / HTTP/1.0\r\n\r\n").is_ok() && s.read_to_end(&mut buf).is_ok() && buf.starts_with(b"HTTP/")
}

fn running_pid(d: &daemon::Daemon, service: &str) -> Option<u64> {
    d.status().into_iter().find(|i| i["service"] == service && i["state"] == "running")?["pid"].as_u64()
}

#[test]
fn a_socket_activated_service_taken_back_keeps_its_socket_and_the_next_run_gets_it() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let toml = format!(
        "[services.web]\ncommand = [{tk}, \"activated-http\", \"--sleep\", \"120\"]\nsockets = [{addr}]\n",
        tk = daemon::tk(),
        addr = daemon::q(format!("tcp://127.0.0.1:{port}"))
    );
    let d = daemon::Daemon::start(&toml);
    let end = std::time::Instant::now() + daemon::LONG;
    while running_pid(&d, "web").is_none() || !answers(port) {
        assert!(std::time::Instant::now() < end, "web never answered");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let pid = running_pid(&d, "web").unwrap();
    recorded(d.dir.path(), 1);
    // The service still listens on the address: the new daemon takes the
    // socket back from it instead of failing to bind.
    let mut d = crash_and_restart(d, |_| {});
    d.wait_event("re-attached", |e| {
        daemon::is_transition(e) && e["service"] == "web" && e["reason"] == "re-attached after a daemon restart"
    });
    assert_eq!(running_pid(&d, "web"), Some(pid));
    assert!(answers(port), "the service taken back still answers");
    // The daemon holds the socket again: the next run is passed it.
    let out = d.corral(&["restart", "web"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let end = std::time::Instant::now() + daemon::LONG;
    while running_pid(&d, "web").is_none_or(|p| p == pid) || !answers(port) {
        assert!(std::time::Instant::now() < end, "the next run never answered: {:#?}", d.status());
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert!(daemon::gone(pid as u32));
    d.down();
}

#[test]
fn a_run_taken_back_does_not_run_its_start_hooks_again() {
    let dir = daemon::Daemon::dir();
    let log = dir.path().join("hooks.log");
    let hook = |name: &str| format!("[\"sh\", \"-c\", \"echo {name} >> {}\"]", log.display());
    let toml = format!(
        "[services.s]\ncommand = [{tk}, \"--sleep\", \"120\"]\npre_start = {}\npost_start = {}\n",
        hook("pre_start"),
        hook("post_start"),
        tk = daemon::tk()
    );
    let mut d = daemon::Daemon::start_in(dir, &toml);
    let pid = d.latest_ready_pids("s", 0)[0];
    recorded(d.dir.path(), 1);
    let hooks_ran = |want: &str| {
        let end = std::time::Instant::now() + daemon::LONG;
        loop {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            if text == want {
                return;
            }
            assert!(std::time::Instant::now() < end, "hooks.log is {text:?}, not {want:?}");
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    };
    hooks_ran("pre_start\npost_start\n");
    let mut d = crash_and_restart(d, |_| {});
    let ev = d.wait_event("re-attached", |e| {
        daemon::is_transition(e) && e["service"] == "s" && e["reason"] == "re-attached after a daemon restart"
    });
    assert_eq!(ev["pid"].as_u64(), Some(u64::from(pid)), "{ev}");
    // post_start would start beside the run at once; give it time to show.
    std::thread::sleep(std::time::Duration::from_secs(1));
    hooks_ran("pre_start\npost_start\n");
    d.down();
}
