//! Health probes, resource alerts and `/metrics`, end to end: a real
//! `corral up` daemon per test, the testkit as the service (its small HTTP
//! server answers `/health`, and fails it while a file exists), real
//! sockets on 127.0.0.1.
//!
//! Every test owns a temp dir (config, state, socket, logs, flag files),
//! waits on events in `events.jsonl` or on the daemon's status, never on a
//! fixed sleep, and proves at the end that every pid it saw is gone.

#![cfg(target_os = "linux")]

mod daemon;

use daemon::*;

use serde_json::Value;
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;

fn reason(e: &Value) -> &str {
    e["reason"].as_str().unwrap_or_default()
}

/// Every pid in a file of bare pids and testkit ready lines.
fn pids_in(file: &Path) -> Vec<u32> {
    let text = std::fs::read_to_string(file).unwrap_or_default();
    let mut pids = Vec::new();
    for l in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        if l.starts_with('{') {
            if l.contains("\"ready\"") {
                pids.extend(pids_of_ready_line(l));
            }
        } else {
            pids.push(l.parse().unwrap());
        }
    }
    pids
}

/// The pids of the first check recorded in `file`: its shell's line and
/// the ready line of the testkit that replaced it.
fn first_check_pids(file: &Path) -> Vec<u32> {
    let text = std::fs::read_to_string(file).unwrap_or_default();
    let lines: Vec<&str> = text.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
    let end = lines.iter().position(|l| l.contains("\"ready\"")).map_or(lines.len(), |i| i + 1);
    let first = lines[..end].join("\n");
    let tmp = file.with_extension("first");
    std::fs::write(&tmp, first).unwrap();
    pids_in(&tmp)
}

/// A probe event of `probe` for which `pred` holds.
fn probe_event(e: &Value, service: &str, probe: &str) -> bool {
    e["kind"] == "probe" && e["service"] == service && e["probe"]["probe"] == probe
}

#[test]
fn failing_liveness_stops_the_whole_group_and_restarts_it_with_reason_liveness() {
    let dir = Daemon::dir();
    let fail = dir.path().join("fail");
    let port = free_port();
    let toml = format!(
        r#"
        [services.web]
        command = [{tk}, "--http-port", "{port}", "--http-fail-file", {fail}, "--children", "2", "--grandchildren", "1", "--sleep", "120"]
        backoff = {{ initial = "1s" }}
        stop = {{ grace = "2s" }}
        health.liveness = {{ http = "http://127.0.0.1:{port}/health", period = "100ms", failure_threshold = 3 }}
        "#,
        tk = tk(),
        fail = q(fail.display().to_string()),
    );
    let mut d = Daemon::start_in(dir, &toml);
    let first = d.ready_pids("web", 0);
    assert!(first.len() >= 5, "leader, 2 children, 2 grandchildren: {first:?}");
    d.wait_status("a passing liveness check", "web", |i| i["probes"][0]["ok"] == true);
    std::fs::write(&fail, "").unwrap();
    let stopping = d.wait_event("web stopping for liveness", |e| {
        is_transition(e) && e["service"] == "web" && e["to"] == "stopping"
    });
    // Remove the flag before the next run (1 s of backoff away) probes.
    std::fs::remove_file(&fail).unwrap();
    assert!(reason(&stopping).starts_with("liveness: failed 3 times in a row: status 503"), "{stopping}");
    let backoff = d.wait_transition("web", "backoff");
    assert!(reason(&backoff).starts_with("liveness:"), "{backoff}");
    assert!(reason(&backoff).contains("restarting in"), "{backoff}");
    // The whole group went, grandchildren included, before the restart.
    assert_gone(&first);
    // Three 503s in a row: the first (a new streak) and the third (the
    // crossing) are events. (A check before the server listened may have
    // failed too, with "connection refused".)
    let evs = d.events();
    let fails: Vec<u64> = evs
        .iter()
        .filter(|e| probe_event(e, "web", "liveness") && e["probe"]["message"].as_str().unwrap().contains("503"))
        .map(|e| e["probe"]["failures"].as_u64().unwrap())
        .collect();
    assert_eq!(fails, [1, 3], "{evs:#?}");
    let second = d.ready_pids("web", 1);
    assert_ne!(first[0], second[0]);
    let i = d.wait_status("running again", "web", |i| i["state"] == "running" && i["probes"][0]["ok"] == true);
    assert_eq!(i["restarts"], 1);
    assert!(i["last_exit"]["reason"].as_str().unwrap().starts_with("liveness:"), "{i}");
    d.down();
}

#[test]
fn https_probes_verify_the_server_against_their_ca() {
    let pki = pki::Pki::new();
    let server = pki::HttpsServer::start(&pki);
    let dir = Daemon::dir();
    std::fs::write(dir.path().join("ca.pem"), &pki.ca_pem).unwrap();
    std::fs::write(dir.path().join("other-ca.pem"), pki::Pki::new().ca_pem).unwrap();
    let url = |host: &str| q(format!("https://{host}:{}/health", server.port));
    let toml = format!(
        r#"
        [services.trusted]
        command = [{tk}, "--sleep", "120"]
        health.readiness = {{ http = {local}, ca = "ca.pem", period = "100ms" }}
        health.liveness = {{ http = {ip}, ca = "ca.pem", period = "100ms", failure_threshold = 1 }}

        [services.untrusted]
        command = [{tk}, "--sleep", "120"]
        health.readiness = {{ http = {ip}, ca = "other-ca.pem", period = "100ms" }}

        [services.dev]
        command = [{tk}, "--sleep", "120"]
        health.liveness = {{ http = {ip}, insecure = true, period = "100ms", failure_threshold = 1 }}
        "#,
        tk = tk(),
        local = url("localhost"),
        ip = url("127.0.0.1"),
    );
    let mut d = Daemon::start_in(dir, &toml);
    // Verified by name (SNI) and by IP address.
    let ready = d.wait_event("trusted ready", |e| probe_event(e, "trusted", "readiness") && e["ready"] == true);
    assert_eq!(reason(&ready), "readiness: ready (status 200 OK)", "{ready}");
    d.wait_status("both probes passing", "trusted", |i| {
        i["probes"].as_array().unwrap().len() == 2 && i["probes"].as_array().unwrap().iter().all(|p| p["ok"] == true)
    });
    // Another CA: the handshake fails, and the probe says why.
    let refused =
        d.wait_event("untrusted fails", |e| probe_event(e, "untrusted", "readiness") && e["probe"]["ok"] == false);
    let why = refused["probe"]["message"].as_str().unwrap();
    assert!(
        why.starts_with(&format!("127.0.0.1:{}: certificate verification failed: unknown issuer", server.port)),
        "{refused}"
    );
    let untrusted = d.wait_status("several refusals", "untrusted", |i| i["probes"][0]["failures"].as_u64() >= Some(3));
    assert_eq!((untrusted["state"].as_str(), untrusted["ready"].as_bool()), (Some("running"), Some(false)));
    // `insecure = true` checks nothing, and says so once.
    d.wait_stderr("service `dev`: health.liveness has `insecure = true`: it checks no certificate");
    d.wait_status("dev passing", "dev", |i| i["probes"][0]["ok"] == true);
    d.ready_pids("trusted", 0);
    d.ready_pids("untrusted", 0);
    d.ready_pids("dev", 0);
    let evs = d.events();
    assert!(evs.iter().all(|e| e["to"] != "stopping"), "no probe restarted anything: {evs:#?}");
    d.down();
    drop(server);
}

#[test]
fn a_reload_that_changes_only_probes_or_alerts_keeps_the_run_and_the_new_ones_act() {
    let port = free_port();
    let closed = free_port();
    let config = |liveness: &str, calm: &str| {
        format!(
            r#"
            [daemon]
            watch_config = false

            [services.web]
            command = [{tk}, "--http-port", "{port}", "--sleep", "120"]
            backoff = {{ initial = "10s" }}
            health.readiness = {{ tcp = "127.0.0.1:{port}", period = "100ms" }}
            health.liveness = {liveness}

            [services.calm]
            command = [{tk}, "--sleep", "120"]
            {calm}
            "#,
            tk = tk(),
        )
    };
    let passing = format!(r#"{{ tcp = "127.0.0.1:{port}", period = "100ms" }}"#);
    let failing = format!(r#"{{ tcp = "127.0.0.1:{closed}", period = "500ms", failure_threshold = 3 }}"#);
    // calm: a readiness `log` probe whose line was printed long before the
    // reload, and an alert that never fires, then one that fires at once.
    let quiet = "health.readiness = { log = '\"ready\":true', period = \"100ms\" }\n\
                 alerts = [{ cpu = 64, action = \"log\" }]";
    let loud = "health.readiness = { log = '\"all\":\\[', period = \"200ms\" }\n\
                alerts = [{ memory = \"1KiB\", action = \"log\" }]";
    let mut d = Daemon::start(&config(&passing, quiet));
    for s in ["web", "calm"] {
        d.wait_event("ready", |e| probe_event(e, s, "readiness") && e["ready"] == true);
    }
    d.wait_status("liveness passing", "web", |i| {
        i["probes"].as_array().unwrap().iter().any(|p| p["probe"] == "liveness")
    });
    let web = d.latest_ready_pids("web", 0)[0];
    let calm = d.latest_ready_pids("calm", 0)[0];
    let mark = d.events().len();

    std::fs::write(d.path("corral.toml"), config(&failing, loud)).unwrap();
    let out = d.corral(&["reload"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.contains("retuned: calm, web"), "{said}");
    assert!(!said.contains("changed:"), "{said}");
    // The reload answers once both instances have their new probes: the
    // events say so, on the same runs.
    let evs: Vec<Value> = d.events().split_off(mark);
    for (s, pid) in [("web", web), ("calm", calm)] {
        let e = evs.iter().find(|e| e["kind"] == "retuned" && e["service"] == s).unwrap_or_else(|| panic!("{evs:#?}"));
        assert_eq!((e["pid"].as_u64(), e["to"].as_str()), (Some(u64::from(pid)), Some("running")), "{e}");
        assert!(reason(e).ends_with("same run (ready: true)"), "{e}");
    }
    let last = evs.iter().rposition(|e| e["kind"] == "retuned").unwrap();
    assert!(evs[..last].iter().all(|e| !is_transition(e)), "no instance was stopped or started: {evs:#?}");
    assert_eq!(d.pid_of("calm"), Some(calm));

    // The new liveness probe acts on the same run: it fails, and liveness
    // stops it.
    let stopping = d.wait_event("web stopping", |e| is_transition(e) && e["service"] == "web" && e["to"] == "stopping");
    assert!(
        reason(&stopping).starts_with(&format!("liveness: failed 3 times in a row: connect 127.0.0.1:{closed}")),
        "{stopping}"
    );
    assert_eq!(stopping["pid"].as_u64(), Some(u64::from(web)), "the run the reload found: {stopping}");
    d.wait_transition("web", "backoff");
    assert_gone(&[web]);
    // Readiness went on from `ready`, and the new readiness probe of calm
    // read the line its run printed before the reload.
    let calm_now = d.wait_status("calm's new readiness probe passing", "calm", |i| {
        i["probes"][0]["ok"] == true && i["probes"][0]["message"].as_str().unwrap_or("").contains("\"all\"")
    });
    assert_eq!((calm_now["ready"].as_bool(), calm_now["pid"].as_u64()), (Some(true), Some(u64::from(calm))));
    // The new alert acts, and leaves the pid alone.
    let fired = d.wait_event("calm's new alert", |e| {
        e["kind"] == "alert" && e["service"] == "calm" && e["alert"]["firing"] == true
    });
    assert_eq!((fired["alert"]["metric"].as_str(), fired["pid"].as_u64()), (Some("memory"), Some(u64::from(calm))));
    assert_eq!(d.pid_of("calm"), Some(calm));
    let evs = d.events();
    assert!(evs.iter().all(|e| !(is_transition(e) && e["service"] == "calm" && e["to"] == "stopping")), "{evs:#?}");
    d.down();
}

#[test]
fn a_retune_stops_the_old_probes_even_mid_check() {
    let dir = Daemon::dir();
    let record = dir.path().join("probe-pids");
    let port = free_port();
    // The old liveness check hangs for a minute and would fail the run
    // (failure_threshold 1) if it were ever allowed to report.
    let hang = format!("echo $$ >> {}; exec sleep 60", record.display());
    let config = |liveness: &str| {
        format!(
            r#"
            [daemon]
            watch_config = false

            [services.web]
            command = [{tk}, "--http-port", "{port}", "--sleep", "120"]
            health.liveness = {liveness}
            "#,
            tk = tk(),
        )
    };
    let old = format!(r#"{{ exec = ["sh", "-c", {}], timeout = "2m", failure_threshold = 1 }}"#, q(&hang));
    let new = format!(r#"{{ tcp = "127.0.0.1:{port}", period = "100ms" }}"#);
    let mut d = Daemon::start_in(dir, &config(&old));
    let web = d.latest_ready_pids("web", 0)[0];
    let end = std::time::Instant::now() + LONG;
    let in_flight = loop {
        if let Some(p) = pids_in(&record).first() {
            break *p;
        }
        assert!(std::time::Instant::now() < end, "the old check never started");
        std::thread::sleep(std::time::Duration::from_millis(10));
    };
    d.seen.push(in_flight);
    std::fs::write(d.path("corral.toml"), config(&new)).unwrap();
    let out = d.corral(&["reload"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("retuned: web"), "{out:?}");
    // The check in flight went with its group, and its failure never
    // reached the run: the new probe passes on the same pid.
    assert_gone(&[in_flight]);
    let first = d.wait_status("the new probe passing", "web", |i| i["probes"][0]["check"] == "tcp");
    // Two checks later, a verdict of the killed check would have come long ago.
    let ts = |i: &Value| i["probes"][0]["ts"].as_str().unwrap_or_default().to_string();
    let second = d.wait_status("a second check", "web", |i| ts(i) != ts(&first));
    d.wait_status("a third check", "web", |i| ts(i) != ts(&first) && ts(i) != ts(&second));
    let i = d.instance("web");
    assert_eq!((i["state"].as_str(), i["pid"].as_u64()), (Some("running"), Some(u64::from(web))), "{i}");
    assert_eq!(i["probes"][0]["ok"], true, "{i}");
    let evs = d.events();
    assert!(evs.iter().all(|e| !(is_transition(e) && e["to"] == "stopping")), "{evs:#?}");
    d.down();
}

#[test]
fn readiness_gates_a_dependant_until_the_service_is_ready() {
    let dir = Daemon::dir();
    let fail = dir.path().join("fail");
    std::fs::write(&fail, "").unwrap();
    let port = free_port();
    let toml = format!(
        r#"
        [services.db]
        command = [{tk}, "--http-port", "{port}", "--http-fail-file", {fail}, "--sleep", "120"]
        health.readiness = {{ http = "http://127.0.0.1:{port}/health", period = "100ms", failure_threshold = 1 }}

        [services.app]
        command = [{tk}, "--sleep", "120"]
        depends_on = {{ db = "healthy" }}
        "#,
        tk = tk(),
        fail = q(fail.display().to_string()),
    );
    let mut d = Daemon::start_in(dir, &toml);
    d.wait_transition("db", "running");
    // Five failed readiness checks in a row: db runs, is not ready, and app
    // still waits for it.
    let db = d.wait_status("five failed readiness checks", "db", |i| i["probes"][0]["failures"].as_u64() >= Some(5));
    assert_eq!(db["state"], "running");
    assert_eq!(db["ready"], false);
    let app = d.instance("app");
    assert_eq!(app["state"], "starting", "{app}");
    assert!(app["reason"].as_str().unwrap().contains("waiting for db (healthy)"), "{app}");
    let out = d.corral(&["status"]);
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(table.contains("running (not ready)") && table.contains("readiness failing"), "{table}");
    std::fs::remove_file(&fail).unwrap();
    let ready = d.wait_event("db ready", |e| probe_event(e, "db", "readiness") && e["ready"] == true);
    assert!(reason(&ready).starts_with("readiness: ready (status 200"), "{ready}");
    d.wait_transition("app", "running");
    let evs = d.events();
    let at = |pred: &dyn Fn(&Value) -> bool| evs.iter().position(pred).unwrap();
    let ready_at = at(&|e| probe_event(e, "db", "readiness") && e["ready"] == true);
    let app_at = at(&|e| is_transition(e) && e["service"] == "app" && e["to"] == "running");
    assert!(ready_at < app_at, "app started only once db was ready");
    assert!(evs.iter().all(|e| !(e["service"] == "db" && e["to"] == "stopping")), "readiness never restarts");
    assert_eq!(d.instance("db")["ready"], true);
    d.down();
}

#[test]
fn a_startup_probe_holds_liveness_off_until_it_passes() {
    let dir = Daemon::dir();
    let fail = dir.path().join("fail");
    let started = dir.path().join("started");
    // /health fails from the first moment: a liveness check would restart
    // the service at once if it ran.
    std::fs::write(&fail, "").unwrap();
    let port = free_port();
    let toml = format!(
        r#"
        [services.slow]
        command = [{tk}, "--http-port", "{port}", "--http-fail-file", {fail}, "--sleep", "120"]
        backoff = {{ initial = "5s" }}
        health.startup = {{ exec = ["test", "-e", {started}], period = "100ms", failure_threshold = 1000 }}
        health.liveness = {{ http = "http://127.0.0.1:{port}/health", period = "100ms", failure_threshold = 1 }}

        [services.logged]
        command = [{tk}, "--sleep", "120"]
        health.startup = {{ log = '"ready":true', period = "100ms" }}
        "#,
        tk = tk(),
        fail = q(fail.display().to_string()),
        started = q(started.display().to_string()),
    );
    let mut d = Daemon::start_in(dir, &toml);
    let running = d.wait_transition("slow", "running");
    let slow = d.wait_status("ten failed startup checks", "slow", |i| {
        i["probes"][0]["probe"] == "startup" && i["probes"][0]["failures"].as_u64() >= Some(10)
    });
    assert_eq!(slow["probes"].as_array().unwrap().len(), 1, "liveness has not run: {slow:#}");
    assert_eq!(slow["ready"], false);
    assert_eq!(slow["pid"], running["pid"]);
    assert!(d.events().iter().all(|e| !(e["service"] == "slow" && e["to"] == "stopping")));
    std::fs::write(&started, "").unwrap();
    let passed = d.wait_event("startup passed", |e| probe_event(e, "slow", "startup") && e["probe"]["ok"] == true);
    let stopping =
        d.wait_event("slow stopping", |e| is_transition(e) && e["service"] == "slow" && e["to"] == "stopping");
    assert!(reason(&stopping).starts_with("liveness: failed once: status 503"), "{stopping}");
    assert!(passed["unix_ms"].as_u64() <= stopping["unix_ms"].as_u64());
    // A startup `log` probe: ready once the line is printed.
    let ready = d.wait_event("logged ready", |e| probe_event(e, "logged", "startup") && e["ready"] == true);
    assert_eq!(ready["probe"]["check"], "log");
    assert_eq!(d.instance("logged")["ready"], true);
    d.down();
}

#[test]
fn a_hanging_exec_probe_is_timed_out_and_leaves_no_process() {
    let dir = Daemon::dir();
    let record = dir.path().join("probe-pids");
    // Each check records its shell and then the testkit tree that replaces
    // it, which would sleep for two minutes.
    let script = format!(
        "echo $$ >> {rec}; exec {tk} --children 2 --grandchildren 1 --sleep 120 >> {rec}",
        rec = record.display(),
        tk = testkit().display()
    );
    let toml = format!(
        r#"
        [services.svc]
        command = [{tk}, "--sleep", "120"]
        backoff = {{ initial = "5s" }}
        health.liveness = {{ exec = ["sh", "-c", {script}], timeout = "1s", period = "500ms", failure_threshold = 2 }}
        "#,
        tk = tk(),
        script = q(script),
    );
    let mut d = Daemon::start_in(dir, &toml);
    let first = d.wait_event("first failed check", |e| probe_event(e, "svc", "liveness") && e["probe"]["ok"] == false);
    assert_eq!(first["probe"]["message"], "timed out after 1s", "{first}");
    assert!(first["probe"]["duration_ms"].as_u64().unwrap() >= 1000, "{first}");
    // The check returns once the probe's group is torn down: the first
    // tree is gone while the service itself still runs. Only the first
    // check's pids count here: the next check may already be running.
    let probe_pids = first_check_pids(&record);
    assert!(probe_pids.len() >= 6, "the shell and the tree were recorded: {probe_pids:?}");
    assert!(
        probe_pids.iter().all(|&p| gone(p)),
        "left: {:?}",
        probe_pids.iter().filter(|&&p| !gone(p)).collect::<Vec<_>>()
    );
    assert_eq!(d.instance("svc")["state"], "running");
    let stopping = d.wait_event("svc stopping", |e| is_transition(e) && e["service"] == "svc" && e["to"] == "stopping");
    assert!(reason(&stopping).starts_with("liveness: failed 2 times in a row: timed out after 1s"), "{stopping}");
    let all = pids_in(&record);
    d.seen.extend(&all);
    assert_gone(&all);
    d.down();
}

/// A leader whose child's child allocates 64 MiB: the leader itself stays
/// small, so only the group's memory crosses 32 MiB. The grandchild
/// records its pid.
fn growing_grandchild(record: &Path) -> String {
    let script = format!("echo $$ >> {}; exec {} --alloc 64 --sleep 120", record.display(), testkit().display());
    format!(
        r#"[{tk}, "--sleep", "120", "--exec-child", {tk}, "--sleep", "120", "--exec-child", "sh", "-c", {script}]"#,
        tk = tk(),
        script = q(script)
    )
}

#[test]
fn a_memory_alert_restarts_a_group_whose_grandchild_grows() {
    let dir = Daemon::dir();
    let record = dir.path().join("grandchildren");
    let toml = format!(
        r#"
        [services.grow]
        command = {cmd}
        backoff = {{ initial = "2s" }}
        stop = {{ grace = "2s" }}
        alerts = [{{ memory = "32MiB", for = "1s", action = "restart" }}]
        "#,
        cmd = growing_grandchild(&record),
    );
    let mut d = Daemon::start_in(dir, &toml);
    let leader = d.ready_pids("grow", 0);
    let fired = d
        .wait_event("memory alert", |e| e["kind"] == "alert" && e["service"] == "grow" && e["alert"]["firing"] == true);
    assert_eq!(fired["alert"]["metric"], "memory");
    assert_eq!(fired["alert"]["action"], "restart");
    assert!(fired["alert"]["value"].as_f64().unwrap() > 32.0 * 1024.0 * 1024.0, "{fired}");
    let grandchild = pids_in(&record)[0];
    assert!(!leader.contains(&grandchild), "the grower is not the leader nor its child");
    let stopping = d.wait_transition("grow", "stopping");
    assert!(reason(&stopping).starts_with("alert: memory"), "{stopping}");
    assert!(reason(&stopping).contains("above 32.0 MiB for 1s"), "{stopping}");
    let backoff = d.wait_transition("grow", "backoff");
    assert!(reason(&backoff).starts_with("alert: memory"), "{backoff}");
    assert_gone(&leader);
    assert_gone(&[grandchild]);
    d.ready_pids("grow", 1);
    d.seen.extend(pids_in(&record));
    d.down();
}

#[test]
fn a_dump_alert_writes_a_snapshot_and_keeps_the_service_running() {
    let dir = Daemon::dir();
    let record = dir.path().join("grandchildren");
    let toml = format!(
        r#"
        [services.grow]
        command = {cmd}
        alerts = [{{ memory = "32MiB", action = "dump" }}]
        "#,
        cmd = growing_grandchild(&record),
    );
    let mut d = Daemon::start_in(dir, &toml);
    let leader = d.ready_pids("grow", 0);
    let ev = d.wait_event("dump written", |e| e["kind"] == "alert" && e["alert"]["dump"].is_string());
    let snap = PathBuf::from(ev["alert"]["dump"].as_str().unwrap());
    assert!(snap.starts_with(d.path(".corral/dumps")), "{}", snap.display());
    assert!(snap.file_name().unwrap().to_str().unwrap().starts_with("grow-0-"));
    let grandchild = pids_in(&record)[0];
    let summary: Value = serde_json::from_slice(&std::fs::read(snap.join("summary.json")).unwrap()).unwrap();
    let members: Vec<u64> = summary["members"].as_array().unwrap().iter().map(|p| p.as_u64().unwrap()).collect();
    assert!(members.contains(&u64::from(leader[0])) && members.contains(&u64::from(grandchild)), "{summary:#}");
    assert!(summary["usage"]["memory_bytes"].as_u64().unwrap() > 32 << 20);
    let tree = std::fs::read_to_string(snap.join("tree.txt")).unwrap();
    assert!(tree.contains(&grandchild.to_string()) && tree.contains("--alloc 64"), "{tree}");
    let gdir = snap.join(grandchild.to_string());
    let status = std::fs::read_to_string(gdir.join("status")).unwrap();
    assert!(status.contains("VmRSS:"), "{status}");
    assert!(std::fs::read_to_string(gdir.join("smaps_rollup")).unwrap().contains("Rss:"));
    // The kernel stack needs CAP_SYS_ADMIN: either it is there or the
    // summary says why not.
    let noted = summary["unreadable"]
        .as_array()
        .unwrap()
        .iter()
        .any(|u| u["pid"] == u64::from(grandchild) && u["what"] == "stack");
    assert!(gdir.join("stack").exists() || noted, "{summary:#}");
    // Still the same run.
    let i = d.instance("grow");
    assert_eq!(i["state"], "running");
    assert_eq!(i["pid"], u64::from(leader[0]));
    assert!(d.events().iter().all(|e| e["to"] != "stopping"));
    d.seen.push(grandchild);
    d.down();
}

#[test]
fn corral_dump_snapshots_running_instances_on_request_and_refuses_bad_names() {
    let toml = format!(
        r#"
        [services.app]
        command = [{tk}, "--children", "2", "--sleep", "60"]
        [services.idle]
        command = [{tk}, "--exit", "0"]
        restart = "no"
        "#,
        tk = tk(),
    );
    let mut d = Daemon::start(&toml);
    let pids = d.ready_pids("app", 0);
    d.wait_transition("idle", "exited");
    let out = d.corral(&["dump", "app"]);
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    let snap = PathBuf::from(stdout.trim().strip_prefix("app.0: ").unwrap_or_else(|| panic!("{stdout}")));
    assert!(snap.starts_with(d.path(".corral/dumps")), "{}", snap.display());
    let summary: Value = serde_json::from_slice(&std::fs::read(snap.join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["reason"], "requested by a client");
    let members: Vec<u64> = summary["members"].as_array().unwrap().iter().map(|p| p.as_u64().unwrap()).collect();
    for p in &pids {
        assert!(members.contains(&u64::from(*p)), "{p} missing from {summary:#}");
        assert!(snap.join(p.to_string()).join("status").exists(), "per-process status of {p}");
    }
    let ev = d.wait_event("dump event", |e| e["kind"] == "dump" && e["service"] == "app");
    assert!(reason(&ev).contains(snap.to_str().unwrap()), "{ev}");
    // Not running: no snapshot, exit 1 with the state; unknown: did you mean.
    let out = d.corral(&["dump", "idle"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("idle.0: no snapshot: not running (exited)"), "{err}");
    let out = d.corral(&["dump", "ap"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no service `ap`") && err.contains("did you mean `app`"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    let i = d.instance("app");
    assert_eq!((i["state"].as_str(), i["pid"].as_u64()), (Some("running"), Some(u64::from(pids[0]))));
    d.down();
}

#[test]
fn flapping_on_health_ends_in_failed_at_the_start_limit() {
    let closed = free_port();
    let toml = format!(
        r#"
        [services.flap]
        command = [{tk}, "--sleep", "120"]
        backoff = {{ initial = "10ms", max = "10ms" }}
        start_limit = {{ burst = 3, interval = "1m" }}
        health.liveness = {{ tcp = "127.0.0.1:{closed}", period = "100ms", failure_threshold = 1 }}
        "#,
        tk = tk(),
    );
    let mut d = Daemon::start_in(Daemon::dir(), &toml);
    let failed = d.wait_transition("flap", "failed");
    assert!(reason(&failed).contains("start limit hit: 3 starts within 1m"), "{failed}");
    let evs = d.events();
    let stops: Vec<&Value> =
        evs.iter().filter(|e| is_transition(e) && e["service"] == "flap" && e["to"] == "stopping").collect();
    assert_eq!(stops.len(), 3, "{evs:#?}");
    assert!(stops.iter().all(|e| reason(e).starts_with("liveness: failed once: connect 127.0.0.1:")), "{stops:#?}");
    let i = d.instance("flap");
    assert_eq!(i["state"], "failed");
    assert_eq!(i["restarts"], 2);
    d.down();
}

/// One request over a socket; returns the status line's code, the
/// headers (lower-case names) and the body.
fn http_get(mut s: impl Read + Write, path: &str, accept: Option<&str>) -> (u16, BTreeMap<String, String>, String) {
    let accept = accept.map(|a| format!("accept: {a}\r\n")).unwrap_or_default();
    write!(s, "GET {path} HTTP/1.1\r\nhost: corral\r\n{accept}connection: close\r\n\r\n").unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let text = String::from_utf8(raw).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    let mut lines = head.lines();
    let code = lines.next().unwrap().split_whitespace().nth(1).unwrap().parse().unwrap();
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect::<BTreeMap<_, _>>();
    assert!(!headers.get("transfer-encoding").is_some_and(|t| t.contains("chunked")), "a whole body is expected");
    (code, headers, body.to_string())
}

/// Parses Prometheus text exposition (0.0.4) strictly: HELP and TYPE at
/// most once per family and before its samples, known types, well-formed
/// names, labels and values, no series twice, histogram buckets that never
/// decrease and end in `+Inf` equal to `_count`. Returns every series (name
/// and sorted labels) with its value.
fn parse_prometheus(text: &str) -> BTreeMap<String, f64> {
    fn name_ok(n: &str) -> bool {
        let mut c = n.chars();
        c.next().is_some_and(|f| f.is_ascii_alphabetic() || f == '_' || f == ':')
            && c.all(|x| x.is_ascii_alphanumeric() || x == '_' || x == ':')
    }
    let mut types: BTreeMap<String, String> = BTreeMap::new();
    let mut helps: BTreeMap<String, String> = BTreeMap::new();
    let mut sampled: BTreeMap<String, bool> = BTreeMap::new();
    let mut series: BTreeMap<String, f64> = BTreeMap::new();
    for (n, line) in text.lines().enumerate() {
        let at = format!("line {}: {line:?}", n + 1);
        if line.is_empty() {
            continue;
        }
        if let Some(rest) = line.strip_prefix("# ") {
            let mut p = rest.splitn(3, ' ');
            match (p.next(), p.next(), p.next()) {
                (Some("HELP"), Some(name), Some(help)) => {
                    assert!(name_ok(name), "{at}");
                    assert!(helps.insert(name.into(), help.into()).is_none(), "HELP twice: {at}");
                }
                (Some("TYPE"), Some(name), Some(ty)) => {
                    assert!(name_ok(name), "{at}");
                    assert!(["counter", "gauge", "histogram", "summary", "untyped"].contains(&ty), "{at}");
                    assert!(!sampled.contains_key(name), "TYPE after samples: {at}");
                    assert!(types.insert(name.into(), ty.into()).is_none(), "TYPE twice: {at}");
                }
                _ => {} // a comment
            }
            continue;
        }
        let (name_labels, value) = line.rsplit_once(' ').unwrap_or_else(|| panic!("no value: {at}"));
        let value: f64 = match value {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            v => v.parse().unwrap_or_else(|_| panic!("bad value: {at}")),
        };
        let (name, labels) = match name_labels.split_once('{') {
            Some((n, l)) => (n, l.strip_suffix('}').unwrap_or_else(|| panic!("unclosed labels: {at}"))),
            None => (name_labels, ""),
        };
        assert!(name_ok(name), "{at}");
        let mut pairs: Vec<(String, String)> = Vec::new();
        let mut rest = labels;
        while !rest.is_empty() {
            let (k, r) = rest.split_once("=\"").unwrap_or_else(|| panic!("bad label: {at}"));
            assert!(name_ok(k), "{at}");
            let mut v = String::new();
            let mut chars = r.char_indices();
            let end = loop {
                match chars.next() {
                    Some((_, '\\')) => v.push(chars.next().unwrap_or_else(|| panic!("{at}")).1),
                    Some((i, '"')) => break i,
                    Some((_, c)) => v.push(c),
                    None => panic!("unterminated label value: {at}"),
                }
            };
            pairs.push((k.into(), v));
            rest = r[end + 1..].strip_prefix(',').unwrap_or(&r[end + 1..]);
        }
        let family = [name.to_string()]
            .into_iter()
            .chain(["_bucket", "_sum", "_count"].iter().filter_map(|s| name.strip_suffix(s).map(str::to_string)))
            .find(|f| types.contains_key(f))
            .unwrap_or_else(|| panic!("a sample without TYPE: {at}"));
        sampled.insert(family, true);
        pairs.sort();
        let key =
            format!("{name}{{{}}}", pairs.iter().map(|(k, v)| format!("{k}={v:?}")).collect::<Vec<_>>().join(","));
        assert!(series.insert(key, value).is_none(), "a series twice: {at}");
    }
    for (family, ty) in &types {
        if ty != "histogram" {
            continue;
        }
        let buckets: Vec<(&String, &f64)> =
            series.iter().filter(|(k, _)| k.starts_with(&format!("{family}_bucket{{"))).collect();
        assert!(!buckets.is_empty(), "{family} has no buckets");
        let mut by_series: BTreeMap<String, Vec<(f64, f64)>> = BTreeMap::new();
        for (k, v) in buckets {
            let le = k.split("le=\"").nth(1).unwrap().split('"').next().unwrap();
            let le: f64 = if le == "+Inf" { f64::INFINITY } else { le.parse().unwrap() };
            let other =
                k.replace(&format!(",le=\"{}\"", k.split("le=\"").nth(1).unwrap().split('"').next().unwrap()), "");
            by_series.entry(other).or_default().push((le, *v));
        }
        for (s, mut b) in by_series {
            b.sort_by(|x, y| x.0.total_cmp(&y.0));
            assert!(b.windows(2).all(|w| w[0].1 <= w[1].1), "buckets decrease in {s}");
            assert_eq!(b.last().unwrap().0, f64::INFINITY, "no +Inf bucket in {s}");
            let count = s.replacen("_bucket{", "_count{", 1).replace("{,", "{").replace(",}", "}");
            assert_eq!(series.get(&count), Some(&b.last().unwrap().1), "+Inf bucket is not _count: {s}");
        }
    }
    series
}

fn metric(m: &BTreeMap<String, f64>, key: &str) -> Option<f64> {
    m.get(key).copied()
}

/// A series key as `parse_prometheus` writes it: labels sorted by name.
fn series(name: &str, labels: &[(&str, &str)]) -> String {
    let mut l = labels.to_vec();
    l.sort();
    format!("{name}{{{}}}", l.iter().map(|(k, v)| format!("{k}={v:?}")).collect::<Vec<_>>().join(","))
}

#[test]
fn metrics_parse_as_prometheus_text_and_the_counters_move() {
    let dir = Daemon::dir();
    let fail = dir.path().join("fail");
    let port = free_port();
    let toml = format!(
        r#"
        [daemon]
        metrics_listen = "127.0.0.1:0"

        [services.web]
        command = [{tk}, "--http-port", "{port}", "--http-fail-file", {fail}, "--children", "1", "--sleep", "120"]
        backoff = {{ initial = "1s" }}
        stop = {{ grace = "2s" }}
        health.liveness = {{ http = "http://127.0.0.1:{port}/health", period = "100ms", failure_threshold = 2 }}
        health.readiness = {{ tcp = "127.0.0.1:{port}", period = "100ms" }}
        "#,
        tk = tk(),
        fail = q(fail.display().to_string()),
    );
    let mut d = Daemon::start_in(dir, &toml);
    let addr: String = d
        .started
        .iter()
        .find_map(|l| l.strip_prefix("corral: metrics on http://").and_then(|r| r.strip_suffix("/metrics")))
        .expect("the daemon says where metrics are")
        .to_string();
    let scrape_tcp =
        |path: &str, accept: Option<&str>| http_get(std::net::TcpStream::connect(&addr).unwrap(), path, accept);
    let sock = d.path(".corral/corral.sock");
    let scrape_unix = || http_get(std::os::unix::net::UnixStream::connect(&sock).unwrap(), "/metrics", None);

    d.wait_status("ready", "web", |i| i["ready"] == true && i["probes"].as_array().unwrap().len() == 2);
    let (code, headers, body) = scrape_tcp("/metrics", None);
    assert_eq!(code, 200);
    assert_eq!(headers["content-type"], "text/plain; version=0.0.4; charset=utf-8");
    let before = parse_prometheus(&body);
    let web = [("service", "web"), ("instance", "0")];
    let live = [("service", "web"), ("instance", "0"), ("probe", "liveness")];
    assert_eq!(metric(&before, &series("corral_instance_up", &web)), Some(1.0), "{body}");
    assert_eq!(metric(&before, &series("corral_instance_ready", &web)), Some(1.0));
    assert_eq!(metric(&before, &series("corral_instance_processes", &web)), Some(2.0));
    assert!(metric(&before, &series("corral_instance_memory_bytes", &web)).unwrap() > 0.0);
    assert!(metric(&before, &series("corral_instance_cpu_seconds_total", &web)).is_some());
    let live_failures = series("corral_probe_failures_total", &live);
    // It exists from the first check on (which may have failed before the
    // server listened).
    let failed_before = metric(&before, &live_failures).unwrap_or_else(|| panic!("no {live_failures} in {body}"));
    let live_count = series("corral_probe_duration_seconds_count", &live);
    assert!(metric(&before, &live_count).unwrap() >= 1.0);
    assert!(metric(&before, "process_resident_memory_bytes{}").unwrap() > 1e6);
    assert!(metric(&before, "process_cpu_seconds_total{}").unwrap() >= 0.0, "in clock ticks: may still be 0");

    // The socket serves the same; the plain TCP listener serves nothing else.
    let (code, _, body) = scrape_unix();
    assert_eq!(code, 200);
    assert!(parse_prometheus(&body).contains_key(&live_count));
    let (code, _, _) = scrape_tcp("/v1/services", None);
    assert_eq!(code, 404, "metrics_listen carries no control");
    let (code, headers, body) = scrape_tcp("/metrics", Some("application/openmetrics-text; version=1.0.0"));
    assert_eq!(code, 200);
    assert!(headers["content-type"].starts_with("application/openmetrics-text"));
    assert!(body.ends_with("# EOF\n"), "{body}");

    std::fs::write(&fail, "").unwrap();
    d.wait_event("web stopping", |e| is_transition(e) && e["service"] == "web" && e["to"] == "stopping");
    std::fs::remove_file(&fail).unwrap();
    d.ready_pids("web", 1);
    d.wait_status("ready again", "web", |i| i["state"] == "running" && i["ready"] == true);
    let (_, _, body) = scrape_tcp("/metrics", None);
    let after = parse_prometheus(&body);
    assert!(metric(&after, &live_failures).unwrap() >= failed_before + 2.0, "{body}");
    let restarts =
        series("corral_instance_restarts_total", &[("service", "web"), ("instance", "0"), ("reason", "liveness")]);
    assert_eq!(metric(&after, &restarts), Some(1.0), "{body}");
    assert!(metric(&after, &live_count).unwrap() > metric(&before, &live_count).unwrap());
    assert!(
        metric(&after, "process_cpu_seconds_total{}").unwrap()
            >= metric(&before, "process_cpu_seconds_total{}").unwrap()
    );
    d.ready_pids("web", 0);
    d.down();
}

#[test]
fn bad_probe_config_is_rejected_at_load_with_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("corral.toml");
    std::fs::write(
        &cfg,
        r#"[services.web]
command = ["true"]
health.liveness = { http = "http//127.0.0.1:8080/health" }
health.readiness = { tcp = "127.0.0.1:80", failure_threshold = -1 }
health.startup = { grpc = "127.0.0.1:9000" }

[services.db.health.liveness]
log = "ready"
"#,
    )
    .unwrap();
    let out = Command::new(CORRAL).args(["check", "-c"]).arg(&cfg).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    for want in [
        "corral.toml:3:28: service `web`: health.liveness: invalid URL `http//127.0.0.1:8080/health`",
        "corral.toml:4:64: service `web`: health.readiness: invalid threshold -1",
        "expected: a whole number from 1 to 1000",
        "corral.toml:5:20: service `web`: health.startup: unknown key `grpc`",
        "expected: one of `http`, `headers`, `status`, `ca`, `insecure`, `tcp`, `exec`, `log`,",
        "corral.toml:8:7: service `db`: health.liveness: a `log` probe cannot decide liveness",
    ] {
        assert!(err.contains(want), "missing {want:?} in:\n{err}");
    }
    let out = Command::new(CORRAL).args(["up", "-c"]).arg(&cfg).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(!dir.path().join(".corral").exists(), "nothing was started");
}
