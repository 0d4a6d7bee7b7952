//! Issue 16, items 3, 4, 5 and 8, end to end on a real `corral up`:
//! env files, umask and groups, `corral signal`, `corral reload-service`,
//! the four hooks, and `corral scale`.
//!
//! Services are small `sh` scripts (their loops and sleeps end by
//! themselves within a minute) or the testkit. Every test owns a temp
//! dir, waits on log lines, events or `corral status` with deadlines,
//! and proves at the end that every pid it saw is gone.

#![cfg(target_os = "linux")]

mod daemon;

use daemon::*;
use serde_json::Value;
use std::path::Path;
use std::time::{Duration, Instant};

/// A shell loop that lives at most a minute, in 0.1 s steps (so a trap
/// runs within 0.1 s of its signal).
const LOOP: &str = "i=0; while [ $i -lt 600 ]; do sleep 0.1; i=$((i+1)); done";

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

fn text(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
}

/// The lines the instance wrote (without timestamp and stream).
fn log_lines(d: &Daemon, service: &str, instance: u32) -> Vec<String> {
    let log = d.path(&format!(".corral/logs/{service}/{instance}.log"));
    let text = std::fs::read_to_string(log).unwrap_or_default();
    text.lines()
        .filter_map(|l| l.split_once(" out ").or_else(|| l.split_once(" err ")).map(|(_, t)| t.to_string()))
        .collect()
}

/// Waits until the instance's log holds a line starting with `prefix`.
fn wait_log(d: &Daemon, service: &str, instance: u32, prefix: &str) -> String {
    let end = Instant::now() + LONG;
    loop {
        let lines = log_lines(d, service, instance);
        if let Some(l) = lines.iter().find(|l| l.starts_with(prefix)) {
            return l.trim_end().to_string();
        }
        assert!(Instant::now() < end, "no line {prefix:?} from {service}.{instance}: {lines:#?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Waits until `file` holds a line starting with `prefix`; returns every line.
fn wait_file(file: &Path, prefix: &str) -> Vec<String> {
    let end = Instant::now() + LONG;
    loop {
        let lines: Vec<String> =
            std::fs::read_to_string(file).unwrap_or_default().lines().map(str::to_string).collect();
        if lines.iter().any(|l| l.starts_with(prefix)) {
            return lines;
        }
        assert!(Instant::now() < end, "no line {prefix:?} in {}: {lines:#?}", file.display());
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn running_pid(d: &Daemon, service: &str) -> u32 {
    let i = d.wait_status("running", service, |i| i["state"] == "running");
    i["pid"].as_u64().unwrap() as u32
}

fn hook_events(d: &Daemon, service: &str) -> Vec<Value> {
    d.events().into_iter().filter(|e| e["kind"] == "hook" && e["service"] == service).collect()
}

#[test]
fn env_files_layer_under_env_and_are_read_again_at_each_start() {
    let dir = Daemon::dir();
    std::fs::write(dir.path().join("a.env"), "# shared\nexport A=from_a\nB=from_a\nQ=\"say \\\"hi\\\"\" # c\n")
        .unwrap();
    std::fs::write(dir.path().join("b.env"), "B=from_b\nC=from_b\n").unwrap();
    let toml = format!(
        "[services.app]\ncommand = [\"sh\", \"-c\", {}]\nenv_file = [\"a.env\", \"-missing.env\", \"b.env\"]\nenv = {{ C = \"from_env\" }}\n",
        q(format!("echo \"env A=$A B=$B C=$C Q=$Q\"; {LOOP}"))
    );
    let mut d = Daemon::start_in(dir, &toml);
    assert_eq!(wait_log(&d, "app", 0, "env "), "env A=from_a B=from_b C=from_env Q=say \"hi\"");
    // Edited, then restarted without a reload: the next start reads it.
    std::fs::write(d.path("b.env"), "B=edited\n").unwrap();
    let out = d.corral(&["restart", "app"]);
    assert!(out.status.success(), "{}", text(&out));
    let end = Instant::now() + LONG;
    while !log_lines(&d, "app", 0).iter().any(|l| l == "env A=from_a B=edited C=from_env Q=say \"hi\"") {
        assert!(Instant::now() < end, "{:#?}", log_lines(&d, "app", 0));
        std::thread::sleep(Duration::from_millis(20));
    }
    let evs = d.events();
    d.note_pids(&evs);
    d.down();
}

#[test]
fn bad_env_files_groups_umasks_and_hooks_are_refused_at_load_with_their_places() {
    let dir = Daemon::dir();
    std::fs::write(dir.path().join("bad.env"), "A=1\nB=\"never closed\n").unwrap();
    let config = dir.path().join("corral.toml");
    let toml = "[services.a]\ncommand = [\"true\"]\nenv_file = [\"bad.env\", \"gone.env\"]\n\
                [services.b]\ncommand = [\"true\"]\ngroup = \"corral-no-such-group\"\numask = \"0999\"\n\
                [services.c]\ncommand = [\"true\"]\npre_start = [\"/no/such/hook\"]\nreload_signal = \"BOGUS\"\n";
    std::fs::write(&config, toml).unwrap();
    let out = std::process::Command::new(CORRAL).args(["check", "-c"]).arg(&config).output().unwrap();
    let t = text(&out);
    assert_eq!(out.status.code(), Some(2), "{t}");
    let shown = config.display().to_string();
    let env = dir.path().join("bad.env").display().to_string();
    assert!(
        t.contains(&format!("{shown}:3:13: service `a`: env file {env}:2:3: this double quote is never closed")),
        "{t}"
    );
    assert!(
        t.contains(&format!("{shown}:3:24: service `a`: env file ")) && t.contains("gone.env does not exist"),
        "{t}"
    );
    assert!(t.contains(&format!("{shown}:6:9: service `b`: no such group `corral-no-such-group`")), "{t}");
    assert!(t.contains(&format!("{shown}:7:9: service `b`: invalid umask \"0999\"")), "{t}");
    assert!(t.contains(&format!("{shown}:10:14: service `c`: `pre_start`: the program /no/such/hook")), "{t}");
    assert!(t.contains(&format!("{shown}:11:17: service `c`: invalid signal 'BOGUS'")), "{t}");
    // `up` refuses the same file, and starts nothing.
    let out = std::process::Command::new(CORRAL).args(["up", "-c"]).arg(&config).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
}

#[test]
fn umask_group_and_supplementary_groups_reach_the_service() {
    if !is_root() {
        return eprintln!("skipped: switching users and groups needs root");
    }
    let script = format!("grep -E '^(Umask|Uid|Gid|Groups):' /proc/self/status | tr -s '\\t ' ' '; touch made; {LOOP}");
    let dir = Daemon::dir();
    let work = dir.path().join("work");
    std::fs::create_dir(&work).unwrap();
    std::os::unix::fs::chown(&work, Some(65534), None).unwrap();
    let toml = format!(
        "[services.id]\ncommand = [\"sh\", \"-c\", {}]\nuser = \"nobody\"\ngroup = \"daemon\"\n\
         supplementary_groups = [\"adm\", \"tty\"]\numask = \"0027\"\ncwd = \"work\"\n",
        q(script)
    );
    let d = Daemon::start_in(dir, &toml);
    assert_eq!(wait_log(&d, "id", 0, "Uid:"), "Uid: 65534 65534 65534 65534");
    assert_eq!(wait_log(&d, "id", 0, "Gid:"), "Gid: 1 1 1 1");
    assert_eq!(wait_log(&d, "id", 0, "Groups:"), "Groups: 4 5");
    assert_eq!(wait_log(&d, "id", 0, "Umask:"), "Umask: 0027");
    // The umask is what the service's files get.
    let made = work.join("made");
    let end = Instant::now() + LONG;
    while !made.exists() {
        assert!(Instant::now() < end, "the service made no file");
        std::thread::sleep(Duration::from_millis(20));
    }
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(&made).unwrap();
    assert_eq!((meta.mode() & 0o777, meta.uid(), meta.gid()), (0o640, 65534, 1));
    d.down();
}

#[test]
fn signal_goes_to_the_leader_or_every_member_and_restarts_nothing() {
    let child = format!("sh -c 'echo child $$; trap \"echo child-usr1\" USR1; trap \"echo child-hup\" HUP; {LOOP}' &");
    let script = format!("trap 'echo got-hup' HUP; trap 'echo got-usr1' USR1; {child} {LOOP}");
    let toml = format!("[services.web]\ncommand = [\"sh\", \"-c\", {}]\n", q(script));
    let mut d = Daemon::start(&toml);
    let pid = running_pid(&d, "web");
    let child: u32 = wait_log(&d, "web", 0, "child ").trim_start_matches("child ").parse().unwrap();
    d.seen.push(child);

    let out = d.corral(&["signal", "web", "HUP"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains(&format!("web.0: SIGHUP to 1 process(es) (leader {pid})")), "{}", text(&out));
    wait_log(&d, "web", 0, "got-hup");
    let out = d.corral(&["signal", "web", "SIGUSR1", "--all-members", "--instance", "0"]);
    assert!(out.status.success(), "{}", text(&out));
    wait_log(&d, "web", 0, "got-usr1");
    wait_log(&d, "web", 0, "child-usr1");
    // Only the leader had the HUP.
    assert!(!log_lines(&d, "web", 0).iter().any(|l| l == "child-hup"));

    for (args, why) in [
        (vec!["signal", "web", "BOGUS"], "invalid signal 'BOGUS'"),
        (vec!["signal", "nope", "HUP"], "no service `nope`"),
        (vec!["signal", "web", "HUP", "--instance", "3"], "has no instance 3"),
    ] {
        let out = d.corral(&args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", text(&out));
        assert!(text(&out).contains(why), "{args:?}: {}", text(&out));
        assert_eq!(text(&out).lines().count(), 1, "one line: {}", text(&out));
    }
    let i = d.instance("web");
    assert_eq!((i["pid"].as_u64(), i["restarts"].as_u64()), (Some(pid as u64), Some(0)));
    d.down();
}

#[test]
fn reload_service_signals_or_runs_its_command_and_keeps_the_pids() {
    let dir = Daemon::dir();
    let seen = dir.path().join("reloads");
    let toml = format!(
        "[services.sig]\ncommand = [\"sh\", \"-c\", {}]\nreload_signal = \"HUP\"\n\
         [services.cmd]\ncommand = [\"sh\", \"-c\", {}]\nreload = {{ cmd = [\"sh\", \"-c\", {}], timeout = \"10s\" }}\n\
         [services.bad]\ncommand = [\"sh\", \"-c\", {}]\nreload = [\"sh\", \"-c\", \"echo no config here >&2; exit 3\"]\n\
         [services.none]\ncommand = [\"sh\", \"-c\", {}]\n",
        q(format!("trap 'echo reloaded' HUP; {LOOP}")),
        q(LOOP),
        q(format!("echo \"reload $MAINPID $CORRAL_HOOK\" >> {}", seen.display())),
        q(LOOP),
        q(LOOP),
    );
    let d = Daemon::start_in(dir, &toml);
    let (sig_pid, cmd_pid) = (running_pid(&d, "sig"), running_pid(&d, "cmd"));
    running_pid(&d, "bad");

    let out = d.corral(&["reload-service", "sig"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains(&format!("sig.0: reloaded (pid {sig_pid}): sent SIGHUP to pid {sig_pid}")));
    wait_log(&d, "sig", 0, "reloaded");

    let out = d.corral(&["reload-service", "cmd"]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(wait_file(&seen, "reload "), vec![format!("reload {cmd_pid} reload")]);

    let out = d.corral(&["reload-service", "bad"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("the reload failed") && text(&out).contains("exit code 3"), "{}", text(&out));
    assert!(text(&out).contains("no config here"), "its last line is told: {}", text(&out));

    let out = d.corral(&["reload-service", "none"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("has no `reload_signal` or `reload`"), "{}", text(&out));

    // Nothing restarted.
    for (s, pid) in [("sig", sig_pid), ("cmd", cmd_pid)] {
        let i = d.instance(s);
        assert_eq!((i["pid"].as_u64(), i["restarts"].as_u64()), (Some(pid as u64), Some(0)), "{s}");
    }
    let ev = hook_events(&d, "cmd");
    assert_eq!(ev.len(), 1, "{ev:#?}");
    assert_eq!((ev[0]["hook"]["name"].as_str(), ev[0]["hook"]["ok"].as_bool()), (Some("reload"), Some(true)));
    assert_eq!(ev[0]["pid"].as_u64(), Some(cmd_pid as u64));
    let ev = hook_events(&d, "bad");
    assert_eq!((ev[0]["hook"]["ok"].as_bool(), ev[0]["hook"]["code"].as_i64()), (Some(false), Some(3)));
    d.down();
}

#[test]
fn hooks_run_around_a_run_in_order_with_their_events() {
    let dir = Daemon::dir();
    let log = dir.path().join("hooks.log");
    let hook = |line: &str| q(format!("echo \"{line}\" >> {}; echo $$ >> {}.pids", log.display(), log.display()));
    let toml = format!(
        "[services.web]\ncommand = [\"sh\", \"-c\", {}]\n\
         pre_start = [\"sh\", \"-c\", {}]\npost_start = [\"sh\", \"-c\", {}]\n\
         pre_stop = {{ cmd = [\"sh\", \"-c\", {}], timeout = \"5s\" }}\npost_stop = [\"sh\", \"-c\", {}]\n",
        q(format!("echo \"$CORRAL_HOOK\" | grep -q . && exit 9; {LOOP}")),
        hook("pre_start $CORRAL_HOOK"),
        hook("post_start $MAINPID"),
        hook("pre_stop $MAINPID $(kill -0 $MAINPID && echo alive)"),
        hook("post_stop $EXIT_CODE $EXIT_STATUS"),
    );
    let mut d = Daemon::start_in(dir, &toml);
    let pid = running_pid(&d, "web");
    wait_file(&log, "post_start");
    let out = d.corral(&["stop", "web"]);
    assert!(out.status.success(), "{}", text(&out));
    // `stop` answers once post_stop is done.
    let lines: Vec<String> = std::fs::read_to_string(&log).unwrap().lines().map(str::to_string).collect();
    assert_eq!(
        lines,
        vec![
            "pre_start pre_start".to_string(),
            format!("post_start {pid}"),
            format!("pre_stop {pid} alive"),
            "post_stop killed TERM".to_string(),
        ]
    );
    let ev = hook_events(&d, "web");
    let names: Vec<&str> = ev.iter().map(|e| e["hook"]["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["pre_start", "post_start", "pre_stop", "post_stop"]);
    for e in &ev {
        assert_eq!(e["hook"]["ok"], true, "{e:#}");
        assert!(e["hook"]["duration_ms"].is_u64(), "{e:#}");
        assert!(e["reason"].as_str().unwrap().contains("exit code 0 after"), "{e:#}");
    }
    let out = d.corral(&["events", "-n", "50"]);
    assert!(text(&out).contains("web.0 pre_stop: exit code 0 after"), "{}", text(&out));
    let pids = std::fs::read_to_string(d.path("hooks.log.pids")).unwrap();
    d.seen.extend(pids.lines().map(|p| p.parse::<u32>().unwrap()));
    d.down();
}

#[test]
fn a_failing_or_hanging_pre_start_fails_the_start_under_the_restart_policy() {
    let dir = Daemon::dir();
    let pids = dir.path().join("pids");
    let main = q(format!("echo main >> {}.main; {LOOP}", pids.display()));
    let toml = format!(
        "[services.fails]\ncommand = [\"sh\", \"-c\", {main}]\npre_start = [\"sh\", \"-c\", {}]\n\
         backoff = {{ initial = \"50ms\", max = \"50ms\" }}\nstart_limit = {{ burst = 3, interval = \"1m\" }}\n\
         [services.hangs]\ncommand = [\"sh\", \"-c\", {main}]\npre_start = {{ cmd = [\"sh\", \"-c\", {}], timeout = \"300ms\" }}\n\
         restart = \"no\"\n",
        q(format!("echo $$ >> {}; echo nope >&2; exit 7", pids.display())),
        q(format!("echo $$ >> {}; exec sleep 30", pids.display())),
    );
    let mut d = Daemon::start_in(dir, &toml);
    let failed = d.wait_transition("fails", "failed");
    assert!(failed["reason"].as_str().unwrap().contains("start limit hit"), "{failed:#}");
    let hung = d.wait_transition("hangs", "failed");
    assert!(hung["reason"].as_str().unwrap().contains("pre_start failed: timed out after 300ms"), "{hung:#}");
    let ev = hook_events(&d, "fails");
    assert_eq!(ev.len(), 3, "one pre_start per allowed start: {ev:#?}");
    for e in &ev {
        assert_eq!((e["hook"]["ok"].as_bool(), e["hook"]["code"].as_i64()), (Some(false), Some(7)), "{e:#}");
        assert!(e["reason"].as_str().unwrap().ends_with(": nope"), "{e:#}");
    }
    // The program itself never ran, nor was counted as spawned.
    assert!(!d.path("pids.main").exists());
    assert!(!d.events().iter().any(|e| is_transition(e) && e["reason"] == "spawned"));
    let hook_pids = std::fs::read_to_string(&pids).unwrap();
    d.seen.extend(hook_pids.lines().map(|p| p.parse::<u32>().unwrap()));
    assert_gone(&d.seen);
    d.down();
}

#[test]
fn scale_starts_and_stops_the_highest_instances_and_holds_until_a_reload_changes_the_service() {
    let toml = format!("[services.web]\ncommand = [{}, \"--sleep\", \"60\"]\nenv = {{ V = \"1\" }}\n", tk());
    let mut d = Daemon::start(&toml);
    let first = d.latest_ready_pids("web", 0);
    let out = d.corral(&["scale", "web", "3"]);
    assert!(out.status.success(), "{}", text(&out));
    let up: Vec<Vec<u32>> = (0..3).map(|i| d.latest_ready_pids("web", i)).collect();
    assert_eq!(up[0], first, "instance 0 runs on, untouched");
    let list = d.status();
    assert_eq!(list.iter().filter(|i| i["service"] == "web" && i["state"] == "running").count(), 3, "{list:#?}");

    // A reload of the unchanged file keeps the scale.
    let out = d.corral(&["reload"]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(d.status().iter().filter(|i| i["service"] == "web").count(), 3);

    let out = d.corral(&["scale", "web", "1"]);
    assert!(out.status.success(), "{}", text(&out));
    assert_gone(&up[1]);
    assert_gone(&up[2]);
    assert!(!gone(first[0]), "instance 0 still runs");
    let list = d.status();
    assert_eq!(list.iter().filter(|i| i["service"] == "web").count(), 1, "{list:#?}");
    assert_eq!(d.instance("web")["pid"].as_u64(), Some(first[0] as u64));

    for (n, why) in [("0", "a service runs 1 to 1000"), ("1001", "a service runs 1 to 1000"), ("x", "not a number")] {
        let out = d.corral(&["scale", "web", n]);
        assert_eq!(out.status.code(), Some(2), "{n}: {}", text(&out));
        assert!(text(&out).contains(why), "{n}: {}", text(&out));
    }
    let out = d.corral(&["scale", "nope", "2"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));

    // Scaled up again, then a reload that changes the service: the file's count.
    let out = d.corral(&["scale", "web", "2"]);
    assert!(out.status.success(), "{}", text(&out));
    d.latest_ready_pids("web", 1);
    std::fs::write(d.path("corral.toml"), toml.replace("V = \"1\"", "V = \"2\"")).unwrap();
    let out = d.corral(&["reload"]);
    assert!(out.status.success(), "{}", text(&out));
    let end = Instant::now() + LONG;
    loop {
        let list: Vec<Value> = d.status().into_iter().filter(|i| i["service"] == "web").collect();
        if list.len() == 1 && list[0]["state"] == "running" {
            break;
        }
        assert!(Instant::now() < end, "{list:#?}");
        std::thread::sleep(Duration::from_millis(20));
    }
    d.latest_ready_pids("web", 0);
    d.down();
}
