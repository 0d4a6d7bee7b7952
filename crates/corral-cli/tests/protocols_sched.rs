//! Schedules, restart on file change, config includes, boot entries,
//! shell completions and man pages, end to end: a real `corral up` per
//! daemon test (the harness in `daemon/`), the testkit or a bounded shell
//! loop as the service, waits on events and status with deadlines, never
//! a fixed sleep to synchronise, and every pid seen proven gone.
//!
//! Scheduled tests tick every second (`every = "1s"`, or a 6-field cron
//! with seconds), so each takes a few seconds.

#![cfg(target_os = "linux")]

mod daemon;

use daemon::*;
use serde_json::Value;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

fn reason(e: &Value) -> &str {
    e["reason"].as_str().unwrap_or_default()
}

fn kind(e: &Value, k: &str, service: &str) -> bool {
    e["kind"] == k && e["service"] == service
}

/// The events for which `pred` holds, once at least `n` of them exist.
fn wait_events(d: &mut Daemon, what: &str, n: usize, pred: impl Fn(&Value) -> bool) -> Vec<Value> {
    let end = Instant::now() + LONG;
    loop {
        let evs = d.events();
        d.note_pids(&evs);
        let hits: Vec<Value> = evs.into_iter().filter(|e| pred(e)).collect();
        if hits.len() >= n {
            return hits;
        }
        assert!(Instant::now() < end, "fewer than {n} events {what}: {hits:#?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn corral(args: &[&str]) -> std::process::Output {
    Command::new(CORRAL).args(args).output().unwrap()
}

// ---------------------------------------------------------------- schedules

#[test]
fn every_starts_a_run_at_each_tick_each_its_own_group_with_its_exit_status() {
    let toml = format!(
        r#"
        [services.job]
        command = [{tk}, "--sleep", "0.2", "--exit", "3"]
        every = "1s"
        "#,
        tk = tk()
    );
    let mut d = Daemon::start(&toml);
    let ended = wait_events(&mut d, "job ended with exit code 3", 2, |e| {
        is_transition(e) && e["service"] == "job" && e["to"] == "failed" && e["exit"]["code"] == 3
    });
    let spawned =
        wait_events(&mut d, "job spawned", 2, |e| is_transition(e) && e["service"] == "job" && e["to"] == "running");
    assert_ne!(spawned[0]["pid"], spawned[1]["pid"], "each run is a new group");
    let ticks = d.events().into_iter().filter(|e| kind(e, "schedule", "job")).count();
    assert!(ticks >= ended.len(), "a schedule event per run: {ticks}");
    let i = d.wait_status("a next run and the last exit", "job", |i| {
        i["next_run"].is_string() && i["last_exit"]["code"] == 3
    });
    assert_eq!(i["restarts"], 0, "restart = \"no\" by default for a scheduled run");
    let text = d.corral(&["status"]);
    let text = String::from_utf8_lossy(&text.stdout).to_string();
    assert!(text.contains("next run of job: ") && text.contains("(last run: exit code 3)"), "{text}");
    d.down();
}

#[test]
fn a_tick_while_the_run_still_goes_is_skipped_by_default() {
    let toml = format!(
        r#"
        [services.job]
        command = [{tk}, "--children", "1", "--sleep", "3"]
        every = "1s"
        "#,
        tk = tk()
    );
    let mut d = Daemon::start(&toml);
    d.ready_pids("job", 0);
    let skipped =
        d.wait_event("a skipped tick", |e| kind(e, "schedule", "job") && reason(e).starts_with("tick skipped"));
    assert!(reason(&skipped).contains("on_overlap = \"skip\""), "{skipped}");
    assert_eq!(d.status().iter().filter(|i| i["service"] == "job").count(), 1, "one slot: max_concurrent = 1");
    d.down();
}

#[test]
fn queue_starts_the_waiting_tick_once_the_run_ends() {
    let toml = format!(
        r#"
        [services.job]
        command = [{tk}, "--sleep", "1.6"]
        every = "1s"
        on_overlap = "queue"
        "#,
        tk = tk()
    );
    let mut d = Daemon::start(&toml);
    d.wait_event("a queued tick", |e| kind(e, "schedule", "job") && reason(e).starts_with("tick queued"));
    d.wait_event("the queued run", |e| kind(e, "schedule", "job") && reason(e) == "queued run started");
    d.down();
}

#[test]
fn replace_stops_the_oldest_run_and_starts_a_new_one_in_its_place() {
    let toml = format!(
        r#"
        [services.job]
        command = [{tk}, "--children", "1", "--sleep", "60"]
        every = "1s"
        on_overlap = "replace"
        stop = {{ grace = "5s" }}
        "#,
        tk = tk()
    );
    let mut d = Daemon::start(&toml);
    let first = d.ready_pids("job", 0);
    d.wait_event("a replacing tick", |e| kind(e, "schedule", "job") && reason(e).contains("replaces the oldest run"));
    let second = d.ready_pids("job", 1);
    assert_ne!(first, second);
    assert_gone(&first);
    d.down();
}

#[test]
fn max_concurrent_runs_go_side_by_side_each_in_its_slot() {
    let toml = format!(
        r#"
        [services.job]
        command = [{tk}, "--sleep", "2.5"]
        every = "1s"
        max_concurrent = 2
        "#,
        tk = tk()
    );
    let d = Daemon::start(&toml);
    let end = Instant::now() + LONG;
    loop {
        let running = d.status().iter().filter(|i| i["service"] == "job" && i["state"] == "running").count();
        if running == 2 {
            break;
        }
        assert!(Instant::now() < end, "two runs never went at once");
        std::thread::sleep(Duration::from_millis(50));
    }
    d.down();
}

#[test]
fn cron_restart_with_seconds_restarts_a_long_running_service_and_nothing_is_left() {
    let toml = format!(
        r#"
        [services.web]
        command = [{tk}, "--children", "1", "--grandchildren", "1", "--sleep", "60"]
        cron_restart = "*/2 * * * * *"
        schedule_tz = "UTC"
        "#,
        tk = tk()
    );
    let mut d = Daemon::start(&toml);
    let first = d.ready_pids("web", 0);
    d.wait_event("a cron_restart", |e| kind(e, "schedule", "web") && reason(e).starts_with("cron_restart"));
    let second = d.ready_pids("web", 1);
    assert_ne!(first, second);
    assert_gone(&first);
    assert!(d.instance("web")["next_run"].is_string());
    d.down();
}

#[test]
fn a_reload_that_changes_a_schedule_keeps_it_armed() {
    let job =
        |code: u8| format!("[services.job]\ncommand = [{tk}, \"--exit\", \"{code}\"]\nevery = \"1s\"\n", tk = tk());
    let dir = Daemon::dir();
    std::fs::write(dir.path().join("corral.toml"), job(3)).unwrap();
    let mut d = Daemon::restart_in(dir);
    d.wait_event("a run ending with 3", |e| is_transition(e) && e["service"] == "job" && e["exit"]["code"] == 3);
    std::fs::write(d.path("corral.toml"), job(4)).unwrap();
    let out = d.corral(&["reload"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    d.wait_event("a run of the new spec", |e| is_transition(e) && e["service"] == "job" && e["exit"]["code"] == 4);
    d.down();
}

#[test]
fn a_bad_cron_field_or_an_unknown_zone_is_an_error_at_load_with_its_place() {
    let dir = Daemon::dir();
    let path = dir.path().join("corral.toml");
    std::fs::write(
        &path,
        "[services.job]\ncommand = [\"true\"]\nschedule = \"*/5 25 * * *\"\n\n[services.nightly]\ncommand = [\"true\"]\ncron_restart = \"0 3 * * *\"\nschedule_tz = \"Europe/Pariss\"\n",
    )
    .unwrap();
    let out = corral(&["check", "-c", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    let shown = path.display();
    // `schedule = "` is 12 characters: the hour field starts at column 17.
    assert!(
        err.contains(&format!("{shown}:3:17: service `job`: `schedule`: the hour field `25` is not valid")),
        "{err}"
    );
    assert!(err.contains(&format!("{shown}:8:15: service `nightly`: unknown time zone `Europe/Pariss`")), "{err}");
    assert!(err.contains("did you mean `Europe/Paris`?"), "{err}");
    assert!(!dir.path().join(".corral").exists(), "nothing was started");
}

// ---------------------------------------------------------------- watch

#[test]
fn a_change_restarts_the_service_once_per_burst_and_ignored_files_do_nothing() {
    let dir = Daemon::dir();
    std::fs::create_dir(dir.path().join("src")).unwrap();
    let toml = format!(
        r#"
        [services.web]
        command = [{tk}, "--children", "1", "--sleep", "60"]
        watch = {{ paths = ["src"], ignore = ["*.log"], debounce = "1s" }}
        "#,
        tk = tk()
    );
    let mut d = Daemon::start_in(dir, &toml);
    let first = d.ready_pids("web", 0);
    // An ignored file, then a burst of real changes: one restart, for the burst.
    std::fs::write(d.path("src/debug.log"), "x").unwrap();
    for i in 0..5 {
        std::fs::write(d.path(&format!("src/m{i}.rs")), "fn main() {}").unwrap();
    }
    let second = d.ready_pids("web", 1);
    assert_gone(&first);
    let watch: Vec<Value> = d.events().into_iter().filter(|e| kind(e, "watch", "web")).collect();
    assert_eq!(watch.len(), 1, "one restart per burst: {watch:#?}");
    assert!(!reason(&watch[0]).contains("debug.log"), "{watch:#?}");
    // A later change is a new burst.
    std::fs::write(d.path("src/m0.rs"), "fn main() { }").unwrap();
    d.ready_pids("web", 2);
    assert!(!second.is_empty());
    d.down();
}

#[test]
fn signal_action_signals_the_group_instead_of_restarting_it() {
    watch_without_restart("action = \"signal:HUP\"", "");
}

#[test]
fn reload_action_runs_the_services_own_reload_instead_of_restarting_it() {
    watch_without_restart("action = \"reload\"", "reload_signal = \"HUP\"");
}

/// A change under `conf/` must reach the service as a SIGHUP (by `action`,
/// with `extra` keys in the service), and not restart it.
fn watch_without_restart(action: &str, extra: &str) {
    let dir = Daemon::dir();
    std::fs::create_dir(dir.path().join("conf")).unwrap();
    let got = dir.path().join("hups");
    let trapped = dir.path().join("trapped");
    // A loop that ends by itself within a minute, recording each SIGHUP
    // (and saying when its trap is set: a SIGHUP before would end it).
    let script = format!(
        "trap 'echo hup >> {f}' HUP; echo > {t}; i=0; while [ $i -lt 600 ]; do sleep 0.1; i=$((i+1)); done",
        f = got.display(),
        t = trapped.display()
    );
    let toml = format!(
        r#"
        [services.app]
        command = ["sh", "-c", {script}]
        watch = {{ paths = ["conf"], debounce = "50ms", {action} }}
        {extra}
        "#,
        script = q(&script)
    );
    let mut d = Daemon::start_in(dir, &toml);
    d.wait_transition("app", "running");
    let end = Instant::now() + LONG;
    while !trapped.exists() {
        assert!(Instant::now() < end, "the service never set its trap");
        std::thread::sleep(Duration::from_millis(20));
    }
    std::fs::write(d.path("conf/app.yml"), "a: 1").unwrap();
    let end = Instant::now() + LONG;
    while !std::fs::read_to_string(&got).unwrap_or_default().contains("hup") {
        assert!(Instant::now() < end, "the service never got SIGHUP");
        std::thread::sleep(Duration::from_millis(20));
    }
    let runs =
        d.events().into_iter().filter(|e| is_transition(e) && e["service"] == "app" && e["to"] == "running").count();
    assert_eq!(runs, 1, "signalled, not restarted");
    d.down();
}

#[test]
fn a_missing_watched_path_is_an_error_at_load() {
    let dir = Daemon::dir();
    let path = dir.path().join("corral.toml");
    std::fs::write(&path, "[services.web]\ncommand = [\"true\"]\nwatch = { paths = [\"src\"], debounce = \"1ms\" }\n")
        .unwrap();
    let out = corral(&["check", "-c", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(":3:20: service `web`: the watched path") && err.contains("src does not exist"), "{err}");
    assert!(err.contains("`watch.debounce` is not a duration in range"), "{err}");
}

// ---------------------------------------------------------------- includes

#[test]
fn included_services_run_errors_point_into_the_included_file_and_a_new_file_reloads() {
    let dir = Daemon::dir();
    let conf = dir.path().join("conf.d");
    std::fs::create_dir(&conf).unwrap();
    std::fs::write(conf.join("a.toml"), format!("[services.a]\ncommand = [{tk}, \"--sleep\", \"60\"]\n", tk = tk()))
        .unwrap();
    let main = "include = [\"conf.d/*.toml\"]\n";
    let mut d = Daemon::start_in(dir, main);
    d.wait_transition("a", "running");
    // A broken file dropped in: the reload is refused, located in it.
    std::fs::write(conf.join("b.toml"), "[services.b]\ncommand = [\"x\"]\ninstances = -1\n").unwrap();
    let refused = d.wait_stderr("refused");
    let text = refused.join("\n") + &d.wait_stderr("b.toml").join("\n");
    assert!(text.contains("conf.d/b.toml:3:13: service `b`"), "{text}");
    let out = d.corral(&["check"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("conf.d/b.toml:3:13"));
    // Fixed: the watcher sees the included file change and `b` starts.
    std::fs::write(conf.join("b.toml"), format!("[services.b]\ncommand = [{tk}, \"--sleep\", \"60\"]\n", tk = tk()))
        .unwrap();
    d.wait_transition("b", "running");
    d.down();
}

// ---------------------------------------------------------------- startup

/// A config to point the boot entries at, with no service started.
fn startup_config() -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = Daemon::dir();
    let path = dir.path().join("corral.toml");
    std::fs::write(&path, "[services.a]\ncommand = [\"sleep\", \"1\"]\nstop = { grace = \"20s\" }\n").unwrap();
    (dir, path)
}

fn startup(args: &[&str], config: &Path) -> std::process::Output {
    let mut all = vec!["startup"];
    all.extend(args);
    all.extend(["-c", config.to_str().unwrap()]);
    corral(&all)
}

#[test]
fn the_systemd_unit_parses_back_with_absolute_paths_and_verifies() {
    let (dir, config) = startup_config();
    let out = startup(&["systemd"], &config);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let unit = String::from_utf8(out.stdout).unwrap();
    let mut section = String::new();
    let mut keys = std::collections::BTreeMap::new();
    for line in unit.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')) {
        if let Some(s) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = s.to_string();
            continue;
        }
        let (k, v) = line.split_once('=').unwrap_or_else(|| panic!("not key=value: {line:?}"));
        keys.insert(format!("{section}.{k}"), v.to_string());
    }
    let exec: Vec<&str> = keys["Service.ExecStart"].split(' ').collect();
    assert!(Path::new(exec[0]).is_absolute() && Path::new(exec[0]).ends_with("corral"), "{exec:?}");
    assert_eq!(&exec[1..], ["up", "-c", config.to_str().unwrap()]);
    assert_eq!(keys["Service.ExecReload"], format!("{} reload -c {}", exec[0], config.display()));
    assert_eq!(keys["Service.KillMode"], "mixed");
    assert_eq!(keys["Service.TimeoutStopSec"], "50", "20 s of grace + 30 s");
    assert_eq!(keys["Install.WantedBy"], "multi-user.target");
    let user = String::from_utf8(startup(&["systemd", "--user"], &config).stdout).unwrap();
    assert!(user.contains("WantedBy=default.target"));
    // systemd's own checker, where systemd's tools are installed (they
    // are not a dependency: systemd as PID 1 is not needed for this).
    let file = dir.path().join("corral-test.service");
    std::fs::write(&file, &unit).unwrap();
    match Command::new("systemd-analyze").arg("verify").arg(&file).output() {
        Ok(v) => assert!(v.status.success(), "systemd-analyze verify: {}", String::from_utf8_lossy(&v.stderr)),
        Err(e) => eprintln!("skipped systemd-analyze verify: {e} (the systemd package is not installed)"),
    }
}

#[test]
fn the_openrc_script_passes_sh_n_and_the_launchd_plist_is_a_valid_property_list() {
    let (dir, config) = startup_config();
    let out = startup(&["openrc"], &config);
    assert!(out.status.success());
    let script = dir.path().join("corral-rc");
    std::fs::write(&script, &out.stdout).unwrap();
    let sh = Command::new("sh").arg("-n").arg(&script).output().unwrap();
    assert!(sh.status.success(), "sh -n: {}", String::from_utf8_lossy(&sh.stderr));
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.starts_with("#!/sbin/openrc-run\n")
            && text.contains(&format!("command_args=\"up -c {}\"", config.display()))
    );
    assert_eq!(startup(&["openrc", "--user"], &config).status.code(), Some(1), "OpenRC has no user services");

    let out = startup(&["launchd", "--name", "web"], &config);
    assert!(out.status.success());
    let v = plist::Value::from_reader_xml(&out.stdout[..]).expect("a valid XML property list");
    let d = v.as_dictionary().unwrap();
    assert_eq!(d["Label"].as_string(), Some("org.corral.web"));
    let args: Vec<&str> = d["ProgramArguments"].as_array().unwrap().iter().map(|a| a.as_string().unwrap()).collect();
    assert!(Path::new(args[0]).is_absolute());
    assert_eq!(&args[1..], ["up", "-c", config.to_str().unwrap()]);
    assert_eq!(d["RunAtLoad"].as_boolean(), Some(true));
}

#[test]
fn install_writes_once_refuses_a_different_file_without_force_and_never_a_symlink() {
    let (dir, config) = startup_config();
    let root = dir.path().join("root");
    let root_s = root.to_str().unwrap();
    let dest = root.join("etc/systemd/system/corral-app.service");
    let install = |extra: &[&str]| {
        let mut a = vec!["systemd", "--install", "--name", "app", "--root", root_s];
        a.extend(extra);
        startup(&a, &config)
    };
    let out = install(&[]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("systemctl daemon-reload"));
    let unit = std::fs::read_to_string(&dest).unwrap();
    assert!(unit.contains("ExecStart="));
    assert!(String::from_utf8_lossy(&install(&[]).stdout).contains("already installed"));
    std::fs::write(&dest, "[Unit]\nDescription=someone else's\n").unwrap();
    let out = install(&[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("exists and differs"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(std::fs::read_to_string(&dest).unwrap().contains("someone else's"), "left alone");
    assert!(install(&["--force"]).status.success());
    assert_eq!(std::fs::read_to_string(&dest).unwrap(), unit);
    // A symlink in its place is refused, even with --force, and its
    // target is untouched.
    let target = dir.path().join("elsewhere");
    std::fs::write(&target, "precious").unwrap();
    std::fs::remove_file(&dest).unwrap();
    std::os::unix::fs::symlink(&target, &dest).unwrap();
    let out = install(&["--force"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("is a symlink"), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(std::fs::read_to_string(&target).unwrap(), "precious");
    // OpenRC's script is executable.
    let out = startup(&["openrc", "--install", "--name", "app", "--root", root_s], &config);
    assert!(out.status.success());
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(root.join("etc/init.d/corral-app")).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o755);
}

// ---------------------------------------------------------------- completions, man pages

#[test]
fn the_bash_completion_parses_and_completes_a_verb() {
    let dir = Daemon::dir();
    let out = corral(&["completions", "bash"]);
    assert!(out.status.success());
    let file = dir.path().join("corral.bash");
    std::fs::write(&file, &out.stdout).unwrap();
    let n = Command::new("bash").arg("-n").arg(&file).output().unwrap();
    assert!(n.status.success(), "bash -n: {}", String::from_utf8_lossy(&n.stderr));
    let script = format!(
        "source {f}; complete -p corral; COMP_WORDS=(corral sta); COMP_CWORD=1; _corral corral sta corral; echo \"${{COMPREPLY[@]}}\"",
        f = file.display()
    );
    let run = Command::new("bash").arg("-c").arg(&script).output().unwrap();
    let text = String::from_utf8_lossy(&run.stdout);
    assert!(text.contains("-F _corral corral"), "{text}");
    let words: Vec<&str> = text.lines().last().unwrap_or_default().split_whitespace().collect();
    for verb in ["start", "startup", "status"] {
        assert!(words.contains(&verb), "`corral sta<TAB>` should offer {verb}: {words:?}");
    }
    for shell in ["zsh", "fish", "powershell"] {
        let out = corral(&["completions", shell]);
        assert!(out.status.success() && String::from_utf8_lossy(&out.stdout).contains("corral"), "{shell}");
    }
}

#[test]
fn man_pages_are_written_one_per_verb_and_parse() {
    let dir = Daemon::dir();
    let out = corral(&["manpage", "--dir", dir.path().to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let main = std::fs::read_to_string(dir.path().join("corral.1")).unwrap();
    assert!(main.starts_with(".ie \\n(.g .ds Aq") || main.contains("\n.TH corral 1"), "{main}");
    for verb in ["up", "status", "startup", "completions", "manpage", "run"] {
        assert!(main.contains(verb), "corral.1 names {verb}");
        let page = std::fs::read_to_string(dir.path().join(format!("corral-{verb}.1"))).unwrap();
        assert!(page.contains(&format!(".TH corral-{verb} 1")), "{page}");
    }
    let stdout = corral(&["manpage"]);
    assert_eq!(String::from_utf8_lossy(&stdout.stdout), main);
    // man-db renders it, where installed.
    match Command::new("man")
        .arg("-l")
        .arg(dir.path().join("corral-up.1"))
        .env("MANPAGER", "cat")
        .env("MANWIDTH", "80")
        .output()
    {
        Ok(m) => {
            assert!(m.status.success(), "man -l: {}", String::from_utf8_lossy(&m.stderr));
            let text = String::from_utf8_lossy(&m.stdout);
            assert!(text.contains("NAME") && text.contains("SYNOPSIS"), "{text}");
        }
        Err(e) => eprintln!("skipped man -l: {e} (man-db is not installed)"),
    }
}
