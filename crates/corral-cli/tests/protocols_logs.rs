//! Protocols services and operators already speak, end to end, each with
//! a real `corral up` in its own temp dir and the testkit as the service:
//! http probes that read the body, who asked for a change (`actor` in
//! events, over the Unix socket and over TCP), and logs as structured data
//! (JSON files, `corral logs --json`, journald's native protocol and
//! syslog, each received by a socket the test binds on loopback or in its
//! temp dir).
//!
//! Tests wait on events, status and files with deadlines, never on a fixed
//! sleep, and prove at the end that every pid they saw is gone.

#![cfg(target_os = "linux")]

mod daemon;

use daemon::*;

use serde_json::Value;
use std::io::{Read, Write};
use std::path::Path;
use std::process::Command;

/// Replaces `path`'s content at once (a reader never sees half of it).
fn put(path: &Path, text: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

fn text(out: &std::process::Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

#[test]
fn an_http_probe_that_gets_200_with_status_down_fails_and_says_why() {
    let dir = Daemon::dir();
    let (body, port) = (dir.path().join("body.json"), free_port());
    let (body2, port2) = (dir.path().join("body2.txt"), free_port());
    put(&body, r#"{"status":"up","checks":[{"db":true}]}"#);
    put(&body2, "all good: up\n");
    let toml = format!(
        r#"
        [services.api]
        command = [{tk}, "--http-port", "{port}", "--http-body-file", {body}, "--sleep", "120"]
        health.readiness = {{ http = "http://127.0.0.1:{port}/health", json = {{ path = "/status", equals = "up" }}, period = "100ms", failure_threshold = 1 }}

        [services.web]
        command = [{tk}, "--http-port", "{port2}", "--http-body-file", {body2}, "--sleep", "120"]
        health.readiness = {{ http = "http://127.0.0.1:{port2}/health", body = "good: (up|ok)", period = "100ms", failure_threshold = 1 }}
        "#,
        tk = tk(),
        body = q(body.display().to_string()),
        body2 = q(body2.display().to_string()),
    );
    let mut d = Daemon::start_in(dir, &toml);
    d.ready_pids("api", 0);
    d.ready_pids("web", 0);
    d.wait_status("api ready", "api", |i| i["ready"] == true && i["probes"][0]["ok"] == true);
    d.wait_status("web ready", "web", |i| i["ready"] == true && i["probes"][0]["ok"] == true);

    // Still 200, but the body says down: the probe fails, with the reason.
    put(&body, r#"{"status":"down"}"#);
    put(&body2, "all good: not really\n");
    let want = r#"status 200 OK, but `/status` is "down", not "up""#;
    let e = d.wait_event("api's readiness failing", |e| {
        e["kind"] == "probe" && e["service"] == "api" && e["probe"]["ok"] == false
    });
    assert_eq!(e["probe"]["message"], want, "{e}");
    let e = d.wait_event("web's readiness failing", |e| {
        e["kind"] == "probe" && e["service"] == "web" && e["probe"]["ok"] == false
    });
    let msg = e["probe"]["message"].as_str().unwrap();
    assert!(msg.starts_with("status 200 OK, but the body does not match `good: (up|ok)`"), "{msg}");
    let i = d.wait_status("api not ready", "api", |i| i["ready"] == false);
    assert_eq!(i["probes"][0]["message"], want, "{i}");
    let shown = text(&d.corral(&["status"]));
    assert!(shown.contains(r#"readiness failing 1/1: status 200 OK, but `/status` is "down", not "up""#), "{shown}");

    // Up again: ready again.
    put(&body, r#"{"status":"up"}"#);
    d.wait_status("api ready again", "api", |i| i["ready"] == true);
    d.down();
}

#[test]
fn a_bad_body_regex_or_json_pointer_stops_the_load_with_its_place() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("corral.toml");
    std::fs::write(
        &cfg,
        r#"[services.web]
command = ["true"]
health.readiness = { http = "http://127.0.0.1:1/health", body = "(up" }
health.liveness = { http = "http://127.0.0.1:1/health", json = { path = "status", equals = "up" } }
"#,
    )
    .unwrap();
    let out = Command::new(CORRAL).args(["check", "-c"]).arg(&cfg).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    for want in [
        "corral.toml:3:65: service `web`: health.readiness: body: invalid regex: unclosed group",
        "corral.toml:4:64: service `web`: health.liveness: json: invalid JSON pointer `status`",
    ] {
        assert!(err.contains(want), "missing {want:?} in:\n{err}");
    }
    let out = Command::new(CORRAL).args(["up", "-c"]).arg(&cfg).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(!dir.path().join(".corral").exists(), "nothing was started");
}

/// One request on the daemon's Unix socket, from this very process.
fn unix_request(socket: &Path, method: &str, path: &str) -> String {
    let mut s = std::os::unix::net::UnixStream::connect(socket).unwrap();
    s.set_read_timeout(Some(LONG)).unwrap();
    write!(s, "{method} {path} HTTP/1.1\r\nhost: corral\r\ncontent-length: 0\r\nconnection: close\r\n\r\n").unwrap();
    let mut reply = String::new();
    s.read_to_string(&mut reply).unwrap();
    reply
}

fn sleeper(name: &str) -> String {
    format!("[services.{name}]\ncommand = [{}, \"--sleep\", \"120\"]\n", tk())
}

#[test]
fn a_restart_through_the_unix_socket_names_the_callers_uid_and_pid() {
    let mut d = Daemon::start(&sleeper("web"));
    d.wait_transition("web", "running");
    let reply = unix_request(&d.path(".corral/corral.sock"), "POST", "/v1/services/web/restart");
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    // SAFETY: geteuid has no preconditions.
    let (uid, pid) = (unsafe { libc::geteuid() }, std::process::id());
    let asked = |e: &Value| e["actor"]["via"] == "unix" && e["actor"]["pid"] == pid && e["actor"]["uid"] == uid;
    // The request's whole effect names this process, and only it.
    for to in ["stopping", "stopped", "starting", "running"] {
        d.wait_event(&format!("web -> {to} by this test"), |e| {
            is_transition(e) && e["service"] == "web" && e["to"] == to && asked(e)
        });
    }
    let evs = d.events();
    let first = evs.iter().filter(|e| e["service"] == "web").take(2).collect::<Vec<_>>();
    assert!(first.iter().all(|e| e.get("actor").is_none()), "the daemon's own start names nobody: {first:#?}");
    let shown = text(&d.corral(&["events"]));
    assert!(
        shown.contains(&format!("web.0 running -> stopping (stop requested) by uid {uid} pid {pid} (unix)")),
        "{shown}"
    );
    // A shutdown through the socket is told with its asker too.
    let reply = unix_request(&d.path(".corral/corral.sock"), "POST", "/v1/shutdown");
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    let status = d.child.take().unwrap().wait().unwrap();
    assert!(status.success(), "daemon exit: {status}");
    let evs = d.events();
    d.note_pids(&evs);
    assert!(evs.iter().any(|e| e["kind"] == "daemon" && e["reason"] == "shutdown requested" && asked(e)), "{evs:#?}");
    assert_gone(&d.seen);
}

#[test]
fn a_restart_over_tcp_names_the_token_and_the_clients_address() {
    let dir = Daemon::dir();
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    std::fs::write(dir.path().join("cert.pem"), ck.cert.pem()).unwrap();
    std::fs::write(dir.path().join("key.pem"), ck.signing_key.serialize_pem()).unwrap();
    let token = dir.path().join("ops.token");
    std::fs::write(&token, "c0ffee-7e57-70k3n-0123456789abcdef\n").unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    let toml = format!(
        "{}[daemon.tcp]\nlisten = \"127.0.0.1:0\"\ncert = \"cert.pem\"\nkey = \"key.pem\"\ntoken_file = \"ops.token\"\n",
        sleeper("web")
    );
    let mut d = Daemon::start_in(dir, &toml);
    let line = d.wait_stderr("listening on https://").pop().unwrap();
    let port = line.split_once("https://").unwrap().1.split_whitespace().next().unwrap().rsplit_once(':').unwrap().1;
    d.wait_transition("web", "running");
    let url = format!("https://localhost:{port}");
    let (cert, token) = (d.path("cert.pem").display().to_string(), token.display().to_string());
    let out = Command::new(CORRAL)
        .args(["restart", "web", "--url", &url, "--token-file", &token, "--ca", &cert])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let e = d.wait_event("web -> running over tcp", |e| {
        is_transition(e) && e["service"] == "web" && e["to"] == "running" && e["actor"]["via"] == "tcp"
    });
    assert_eq!(e["actor"]["token"], "ops.token", "{e}");
    let address = e["actor"]["address"].as_str().unwrap();
    assert!(address.starts_with("127.0.0.1:"), "{e}");
    assert!(e["actor"].get("uid").is_none() && e["actor"].get("pid").is_none(), "{e}");
    let shown = text(&d.corral(&["events"]));
    assert!(shown.contains(&format!("by token ops.token from {address} (tcp)")), "{shown}");
    d.down();
}
