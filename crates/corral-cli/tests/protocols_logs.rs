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
use std::time::Duration;

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
    // (A check before the server listened may have failed too, refused.)
    d.wait_event("api's readiness failing on the body", |e| {
        e["kind"] == "probe" && e["service"] == "api" && e["probe"]["ok"] == false && e["probe"]["message"] == want
    });
    let e = d.wait_event("web's readiness failing on the body", |e| {
        e["kind"] == "probe"
            && e["service"] == "web"
            && e["probe"]["ok"] == false
            && e["probe"]["message"].as_str().is_some_and(|m| m.starts_with("status 200"))
    });
    let msg = e["probe"]["message"].as_str().unwrap();
    assert_eq!(msg, "status 200 OK, but the body does not match `good: (up|ok)`: all good: not really");
    let i = d.wait_status("api not ready", "api", |i| i["ready"] == false);
    assert_eq!(i["probes"][0]["message"], want, "{i}");
    let shown = text(&d.corral(&["status"]));
    let api = shown.lines().find(|l| l.starts_with("api ")).unwrap();
    assert!(api.contains("readiness failing ") && api.ends_with(&format!("/1: {want}")), "{shown}");

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
    // The reload below is asked for through the socket, not by the watcher.
    let toml = format!("[daemon]\nwatch_config = false\n{}", sleeper("web"));
    let mut d = Daemon::start(&toml);
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
    // A snapshot asked through the socket names its asker too.
    let reply = unix_request(&d.path(".corral/corral.sock"), "POST", "/v1/services/web/dump");
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    d.wait_event("the dump event, named", |e| e["kind"] == "dump" && e["service"] == "web" && asked(e));
    // A reload through the socket: told with its asker, and the restart of
    // the changed service names it too.
    std::fs::write(d.path("corral.toml"), toml.replace("120", "121")).unwrap();
    let reply = unix_request(&d.path(".corral/corral.sock"), "POST", "/v1/reload");
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    d.wait_event("the reload told with its asker", |e| {
        e["kind"] == "daemon" && e["reason"] == "reload requested" && asked(e)
    });
    wait_for("the reloaded web running, named", || {
        let evs = d.events();
        let n = evs.iter().filter(|e| is_transition(e) && e["to"] == "running" && asked(e)).count();
        (n == 2).then_some(())
    });
    // A scale through the socket: the new instance's start names the asker.
    let reply = unix_request(&d.path(".corral/corral.sock"), "POST", "/v1/services/web/scale?instances=2");
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    d.wait_event("web.1 running, named", |e| {
        is_transition(e) && e["instance"] == 1 && e["to"] == "running" && asked(e)
    });
    d.wait_event("the scale told", |e| {
        e["kind"] == "daemon" && e["reason"] == "scale of `web` to 2 requested" && asked(e)
    });
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

/// Polls `f` until it returns `Some`, for at most [`LONG`].
fn wait_for<T>(what: &str, f: impl FnMut() -> Option<T>) -> T {
    corral_testkit::test_support::eventually(what, LONG, Duration::from_millis(20), f)
}

/// The lines of an instance's log file once it holds at least `n`.
fn log_lines(d: &Daemon, service: &str, n: usize) -> Vec<String> {
    let path = d.path(&format!(".corral/logs/{service}/0.log"));
    wait_for(&format!("{n} lines in {}", path.display()), || {
        let text = std::fs::read(&path).ok()?;
        let lines: Vec<String> = String::from_utf8_lossy(&text).lines().map(str::to_string).collect();
        (lines.len() >= n).then_some(lines)
    })
}

/// RFC 3339 UTC with milliseconds: `2026-01-02T03:04:05.678Z`.
fn is_rfc3339_ms(ts: &str) -> bool {
    let b = ts.as_bytes();
    b.len() == 24
        && [4, 7].iter().all(|&i| b[i] == b'-')
        && b[10] == b'T'
        && [13, 16].iter().all(|&i| b[i] == b':')
        && b[19] == b'.'
        && b[23] == b'Z'
        && b.iter().enumerate().all(|(i, c)| [4, 7, 10, 13, 16, 19, 23].contains(&i) || c.is_ascii_digit())
}

#[test]
fn json_log_files_and_corral_logs_json_whatever_the_format() {
    let dir = Daemon::dir();
    let toml = format!(
        r#"
        [services.js]
        command = [{tk}, "--lines", "3", "--stderr-lines", "2", "--sleep", "120"]
        logs = {{ format = "json" }}

        [services.tx]
        command = [{tk}, "--lines", "2", "--sleep", "120"]

        [services.bin]
        command = ["sh", "-c", "printf 'caf\\351 \\377\\n'; echo fine >&2"]
        restart = "no"
        logs.format = "json"
        "#,
        tk = tk(),
    );
    let mut d = Daemon::start_in(dir, &toml);
    d.ready_pids("tx", 0);
    // The ready line, 3 on stdout, 2 on stderr: every one a JSON object.
    let lines = log_lines(&d, "js", 6);
    let objs: Vec<Value> = lines.iter().map(|l| serde_json::from_str(l).unwrap()).collect();
    let ready = objs.iter().find(|o| o["line"].as_str().unwrap().starts_with("{\"ready\"")).unwrap();
    let pids = pids_of_ready_line(ready["line"].as_str().unwrap());
    d.seen.extend(&pids);
    let pid = pids[0];
    for o in &objs {
        let keys: Vec<&str> = o.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(keys, ["instance", "line", "pid", "service", "stream", "ts"], "{o}");
        assert!(is_rfc3339_ms(o["ts"].as_str().unwrap()), "{o}");
        assert_eq!(
            (o["service"].as_str(), o["instance"].as_u64(), o["pid"].as_u64()),
            (Some("js"), Some(0), Some(pid as u64))
        );
    }
    let of = |stream: &str| -> Vec<String> {
        objs.iter().filter(|o| o["stream"] == stream).map(|o| o["line"].as_str().unwrap().to_string()).collect()
    };
    let stdout = of("stdout");
    assert!(stdout[0].contains("\"ready\""), "{stdout:?}");
    assert_eq!(stdout[1..], [1, 2, 3].map(|i| format!("line {i} {pid}")));
    assert_eq!(of("stderr"), [1, 2].map(|i| format!("line {i} {pid}")));
    // Non-UTF-8 output: shown with U+FFFD, kept exactly in line_base64.
    let bin = log_lines(&d, "bin", 2);
    let o: Value = serde_json::from_str(bin.iter().find(|l| l.contains("stdout")).unwrap()).unwrap();
    assert_eq!(o["line"], "caf\u{fffd} \u{fffd}", "{o}");
    assert_eq!(o["line_base64"], "Y2Fm6SD/", "{o}");
    let o: Value = serde_json::from_str(bin.iter().find(|l| l.contains("stderr")).unwrap()).unwrap();
    assert_eq!(o["line"], "fine");
    assert!(o.get("line_base64").is_none(), "UTF-8 lines have no copy: {o}");

    // `corral logs --json` reads the text file too (its pid is unknown).
    let out = d.corral(&["logs", "--json", "-n", "100"]);
    assert!(out.status.success(), "{}", text(&out));
    let all: Vec<Value> =
        String::from_utf8_lossy(&out.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let tx: Vec<&Value> = all.iter().filter(|o| o["service"] == "tx").collect();
    assert_eq!(tx.len(), 3, "{all:#?}");
    assert!(tx
        .iter()
        .all(|o| o["pid"].is_null() && o["stream"] == "stdout" && is_rfc3339_ms(o["ts"].as_str().unwrap())));
    assert!(tx[2]["line"].as_str().unwrap().starts_with("line 2 "), "{tx:?}");
    assert_eq!(all.iter().filter(|o| o["service"] == "js").count(), 6);
    let b = all.iter().find(|o| o["service"] == "bin" && o["stream"] == "stdout").unwrap();
    assert_eq!(b["line_base64"], "Y2Fm6SD/", "the bytes survive the API: {b}");
    // And the plain `corral logs` shows a JSON file as text.
    let out = d.corral(&["logs", "js", "-n", "2"]);
    let shown = String::from_utf8_lossy(&out.stdout);
    assert_eq!(shown.lines().count(), 2, "{shown}");
    assert!(
        shown.lines().all(|l| l.starts_with("js | ") && (l.contains("Z out line ") || l.contains("Z err line "))),
        "{shown}"
    );
    d.down();
}

/// journald's native protocol: `KEY=value\n`, or `KEY\n` + u64 LE length
/// + value + `\n`.
fn journal_fields(dgram: &[u8]) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut rest = dgram;
    while !rest.is_empty() {
        let nl = rest.iter().position(|&b| b == b'\n').expect("a field ends with a newline");
        let head = &rest[..nl];
        if let Some(eq) = head.iter().position(|&b| b == b'=') {
            out.push((String::from_utf8(head[..eq].to_vec()).unwrap(), head[eq + 1..].to_vec()));
            rest = &rest[nl + 1..];
        } else {
            let len = u64::from_le_bytes(rest[nl + 1..nl + 9].try_into().unwrap()) as usize;
            let value = rest[nl + 9..nl + 9 + len].to_vec();
            assert_eq!(rest[nl + 9 + len], b'\n');
            out.push((String::from_utf8(head.to_vec()).unwrap(), value));
            rest = &rest[nl + 10 + len..];
        }
    }
    out
}

/// An RFC 5424 message: PRI, VERSION, TIMESTAMP, HOSTNAME, APP-NAME,
/// PROCID, MSGID, STRUCTURED-DATA, MSG.
#[derive(Debug)]
struct Syslog {
    pri: u32,
    version: String,
    ts: String,
    host: String,
    app: String,
    procid: String,
    msgid: String,
    sd: String,
    msg: String,
}

fn syslog(m: &[u8]) -> Syslog {
    let m = String::from_utf8_lossy(m).into_owned();
    let (pri, rest) = m.strip_prefix('<').unwrap().split_once('>').unwrap();
    let mut parts = rest.splitn(7, ' ');
    let mut next = || parts.next().unwrap().to_string();
    let (version, ts, host, app, procid, msgid, rest) = (next(), next(), next(), next(), next(), next(), next());
    let (sd, msg) = if rest.starts_with('[') {
        // The first `]` not escaped ends the (single) element.
        let bytes = rest.as_bytes();
        let end = (1..bytes.len()).find(|&i| bytes[i] == b']' && bytes[i - 1] != b'\\').unwrap();
        (rest[..=end].to_string(), rest[end + 1..].strip_prefix(' ').unwrap_or("").to_string())
    } else {
        let (sd, msg) = rest.split_once(' ').unwrap_or((&rest, ""));
        (sd.to_string(), msg.to_string())
    };
    Syslog { pri: pri.parse().unwrap(), version, ts, host, app, procid, msgid, sd, msg }
}

#[test]
fn lines_are_shipped_to_journald_and_to_syslog_over_unix_udp_and_tcp() {
    use std::os::unix::net::UnixDatagram;
    let dir = Daemon::dir();
    let journal = UnixDatagram::bind(dir.path().join("journal.sock")).unwrap();
    let devlog = UnixDatagram::bind(dir.path().join("log.sock")).unwrap();
    let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let tcp = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    for s in [&journal, &devlog] {
        s.set_read_timeout(Some(LONG)).unwrap();
    }
    udp.set_read_timeout(Some(LONG)).unwrap();
    let toml = format!(
        r#"
        [services.web]
        command = [{tk}, "--lines", "3", "--stderr-lines", "2", "--sleep", "120"]
        logs = {{ journald = {{ socket = "journal.sock" }}, syslog = {{ address = "udp://{udp}", facility = "local3", app_name = "webapp" }} }}

        [services.api]
        command = [{tk}, "--lines", "2", "--sleep", "120"]
        logs.syslog = {{ address = "tcp://{tcp}" }}

        [services.dev]
        command = [{tk}, "--stderr-lines", "1", "--sleep", "120"]
        logs.syslog = {{ address = "unix:log.sock", facility = "user" }}
        "#,
        tk = tk(),
        udp = udp.local_addr().unwrap(),
        tcp = tcp.local_addr().unwrap(),
    );
    let mut d = Daemon::start_in(dir, &toml);
    let web = d.ready_pids("web", 0)[0];
    let api = d.ready_pids("api", 0)[0];
    let dev = d.ready_pids("dev", 0)[0];
    let mut buf = vec![0u8; 70_000];

    // journald: the ready line, 3 stdout lines, 2 stderr lines.
    let mut entries = Vec::new();
    while entries.len() < 6 {
        let n = journal.recv(&mut buf).expect("a journal entry");
        entries.push(journal_fields(&buf[..n]));
    }
    let get = |e: &[(String, Vec<u8>)], k: &str| {
        e.iter().find(|(key, _)| key == k).map(|(_, v)| String::from_utf8_lossy(v).into_owned()).unwrap_or_default()
    };
    for e in &entries {
        assert_eq!(get(e, "SYSLOG_IDENTIFIER"), "web");
        assert_eq!(get(e, "CORRAL_SERVICE"), "web");
        assert_eq!(get(e, "CORRAL_INSTANCE"), "0");
        assert_eq!(get(e, "SYSLOG_PID"), web.to_string());
        assert!(is_rfc3339_ms(&get(e, "CORRAL_TS")), "{e:?}");
        let (stream, prio) = (get(e, "CORRAL_STREAM"), get(e, "PRIORITY"));
        assert!(matches!((stream.as_str(), prio.as_str()), ("stdout", "6") | ("stderr", "4")), "{e:?}");
    }
    let messages: Vec<String> =
        entries.iter().filter(|e| get(e, "CORRAL_STREAM") == "stderr").map(|e| get(e, "MESSAGE")).collect();
    assert_eq!(messages, [1, 2].map(|i| format!("line {i} {web}")));

    // syslog over UDP: one RFC 5424 message per datagram.
    let mut msgs = Vec::new();
    while msgs.len() < 6 {
        let n = udp.recv(&mut buf).expect("a syslog datagram");
        msgs.push(syslog(&buf[..n]));
    }
    for m in &msgs {
        assert_eq!(m.version, "1", "{m:?}");
        assert!(is_rfc3339_ms(&m.ts), "{m:?}");
        assert!(!m.host.is_empty() && m.host != "-", "{m:?}");
        assert_eq!((m.app.as_str(), m.procid.as_str()), ("webapp", web.to_string().as_str()), "{m:?}");
        assert_eq!(m.sd, r#"[corral@32473 service="web" instance="0"]"#, "{m:?}");
        // local3 (19) * 8 + info (6) or warning (4).
        match m.msgid.as_str() {
            "stdout" => assert_eq!(m.pri, 158, "{m:?}"),
            "stderr" => assert_eq!(m.pri, 156, "{m:?}"),
            other => panic!("MSGID {other}"),
        }
    }
    let errs: Vec<&str> = msgs.iter().filter(|m| m.msgid == "stderr").map(|m| m.msg.as_str()).collect();
    assert_eq!(errs, [format!("line 1 {web}"), format!("line 2 {web}")]);

    // syslog over TCP: octet-counted frames (`LEN SP MSG`).
    let (mut conn, peer) = tcp.accept().unwrap();
    assert!(peer.ip().is_loopback());
    conn.set_read_timeout(Some(LONG)).unwrap();
    let mut stream = Vec::new();
    let mut frames: Vec<Syslog> = Vec::new();
    while frames.len() < 3 {
        let n = conn.read(&mut buf).unwrap();
        assert!(n > 0, "the daemon closed the syslog connection");
        stream.extend_from_slice(&buf[..n]);
        while let Some(sp) = stream.iter().position(|&b| b == b' ') {
            let len: usize = std::str::from_utf8(&stream[..sp]).unwrap().parse().unwrap();
            if stream.len() < sp + 1 + len {
                break;
            }
            frames.push(syslog(&stream[sp + 1..sp + 1 + len]));
            stream.drain(..sp + 1 + len);
        }
    }
    // daemon (3) * 8 + info (6): the default facility; APP-NAME the service.
    assert!(frames.iter().all(|m| m.pri == 30 && m.app == "api" && m.procid == api.to_string()), "{frames:?}");
    assert_eq!(frames[2].msg, format!("line 2 {api}"));

    // syslog on a local datagram socket.
    let mut local = Vec::new();
    while local.len() < 2 {
        let n = devlog.recv(&mut buf).expect("a datagram on log.sock");
        local.push(syslog(&buf[..n]));
    }
    // user (1) * 8 + warning (4) for the stderr line.
    let e = local.iter().find(|m| m.msgid == "stderr").unwrap();
    assert_eq!((e.pri, e.app.as_str(), e.msg.clone()), (12, "dev", format!("line 1 {dev}")));
    d.down();
}

#[test]
fn an_absent_sink_never_holds_capture_and_its_drops_are_counted_and_told() {
    let dir = Daemon::dir();
    // A port nothing listens on, and a socket path nothing is bound to.
    let closed = free_port();
    let toml = format!(
        r#"
        [services.web]
        command = [{tk}, "--lines", "3000", "--sleep", "120"]
        logs = {{ syslog = {{ address = "tcp://127.0.0.1:{closed}" }}, journald = {{ socket = "nobody.sock" }} }}
        "#,
        tk = tk(),
    );
    let mut d = Daemon::start_in(dir, &toml);
    d.ready_pids("web", 0);
    // Every line is in the file: shipping never held capture up.
    let lines = log_lines(&d, "web", 3001);
    assert!(lines[3000].contains("out line 3000 "), "{}", lines[3000]);
    for sink in ["syslog-tcp", "journald"] {
        let e = d.wait_event(&format!("drops to {sink} told"), |e| {
            e["kind"] == "log"
                && e["reason"].as_str().is_some_and(|r| r.starts_with(&format!("log shipping to {sink} drops lines: ")))
        });
        assert_eq!(e["service"], "web", "{e}");
    }
    let evs = d.events();
    let told =
        evs.iter().filter(|e| e["kind"] == "log" && e["reason"].as_str().unwrap().contains("drops lines")).count();
    assert_eq!(told, 2, "one event per sink for the whole streak: {evs:#?}");
    // Every line (the ready line and 3000) is dropped once, and counted,
    // once the queue is worked off.
    let socket = d.path(".corral/corral.sock");
    for sink in ["syslog-tcp", "journald"] {
        wait_for(&format!("3001 drops to {sink} counted"), || {
            let metrics = unix_request(&socket, "GET", "/metrics");
            let count: f64 = metrics
                .lines()
                .find(|l| l.starts_with("corral_log_ship_dropped_total{") && l.contains(&format!("sink=\"{sink}\"")))?
                .rsplit(' ')
                .next()?
                .parse()
                .ok()?;
            assert!(count <= 3001.0, "{sink}: {count} drops counted for 3001 lines");
            (count == 3001.0).then_some(())
        });
    }
    d.down();
}
