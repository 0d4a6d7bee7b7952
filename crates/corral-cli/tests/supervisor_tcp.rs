//! The TCP control listener end to end: a real `corral up` whose
//! `[daemon.tcp]` listens on an ephemeral loopback port with a self-signed
//! certificate made at test time (rcgen), driven by a rustls client that
//! trusts only that certificate, speaking raw HTTP/1.1 over the TLS stream.
//!
//! Every test owns a temp dir (config, cert, key, token, state, socket),
//! finds the port in the daemon's `listening on https://…` line, never
//! sleeps to synchronise, and proves at the end that its processes are gone.

#![cfg(unix)]

mod daemon;

use daemon::assert_gone;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore, StreamOwned};
use serde_json::Value;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::Receiver;
use std::sync::Arc;
use std::time::{Duration, Instant};

const CORRAL: &str = env!("CARGO_BIN_EXE_corral");
const LONG: Duration = Duration::from_secs(30);
const TOKEN: &str = "c0ffee-7e57-70k3n-0123456789abcdef";

/// A self-signed certificate for `localhost`: (cert PEM, key PEM).
fn self_signed() -> (String, String) {
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    (ck.cert.pem(), ck.signing_key.serialize_pem())
}

/// A temp dir with a config whose `[daemon.tcp]` listens on port 0 with
/// TLS files and a token file next to it. `{dir}` in `services` is the
/// temp dir; `tcp` is the rest of the `[daemon.tcp]` table.
struct Setup {
    dir: tempfile::TempDir,
    cert_pem: String,
}

impl Setup {
    fn new(services: &str, tcp: &str) -> Setup {
        let dir = tempfile::tempdir().unwrap();
        let (cert_pem, key_pem) = self_signed();
        std::fs::write(dir.path().join("cert.pem"), &cert_pem).unwrap();
        std::fs::write(dir.path().join("key.pem"), key_pem).unwrap();
        std::fs::write(dir.path().join("token"), format!("{TOKEN}\n")).unwrap();
        chmod_600(&dir.path().join("token"));
        let services = services.replace("{dir}", &dir.path().display().to_string());
        let toml = format!("{services}[daemon.tcp]\nlisten = \"127.0.0.1:0\"\n{tcp}\n");
        std::fs::write(dir.path().join("corral.toml"), toml).unwrap();
        Setup { dir, cert_pem }
    }

    /// The usual `[daemon.tcp]`: cert, key and token file.
    fn full(services: &str) -> Setup {
        Setup::new(services, "cert = \"cert.pem\"\nkey = \"key.pem\"\ntoken_file = \"token\"")
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// `corral up` run to its end (for configs that must not start).
    fn up_fails(&self) -> (Option<i32>, String) {
        let out = Command::new(CORRAL)
            .args(["up", "--no-color", "-c"])
            .arg(self.path("corral.toml"))
            .stdin(Stdio::null())
            .output()
            .unwrap();
        (out.status.code(), String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

fn chmod_600(p: &Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o600)).unwrap();
}

struct Daemon {
    setup: Setup,
    child: Option<Child>,
    addr: SocketAddr,
    seen: Vec<u32>,
}

impl Daemon {
    fn start(setup: Setup) -> Daemon {
        let (child, rx) = daemon::spawn_up(&setup.path("corral.toml"));
        let mut d = Daemon { setup, child: Some(child), addr: "0.0.0.0:0".parse().unwrap(), seen: Vec::new() };
        let line = wait_line(&rx, "corral: listening on https://");
        let rest = line.split_once("https://").unwrap().1;
        d.addr = rest.split_whitespace().next().unwrap().parse().unwrap();
        assert!(d.addr.ip().is_loopback() && d.addr.port() != 0, "{line}");
        // Keep draining stderr so the daemon never blocks on a full pipe.
        std::thread::spawn(move || while rx.recv().is_ok() {});
        d
    }

    /// A request over TLS trusting this daemon's certificate.
    fn https(&self, method: &str, path: &str, auth: Option<&str>) -> Reply {
        https(self.addr, &self.setup.cert_pem, method, path, auth).expect("TLS request failed")
    }

    fn authed(&self, method: &str, path: &str) -> Reply {
        self.https(method, path, Some(&format!("Bearer {TOKEN}")))
    }

    /// Polls `GET /v1/services` over TCP until `service` has a pid.
    fn wait_pid(&mut self, service: &str) -> u32 {
        let end = Instant::now() + LONG;
        loop {
            let r = self.authed("GET", "/v1/services");
            assert_eq!(r.status, 200, "{r:?}");
            let pid = r.json()["instances"]
                .as_array()
                .unwrap()
                .iter()
                .find(|i| i["service"] == service)
                .and_then(|i| i["pid"].as_u64());
            if let Some(p) = pid {
                self.seen.push(p as u32);
                return p as u32;
            }
            assert!(Instant::now() < end, "{service} never got a pid: {r:?}");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Waits for the daemon to exit 0 and every pid it ran to be gone.
    fn wait_exit(mut self) {
        let mut child = self.child.take().unwrap();
        let end = Instant::now() + LONG;
        let status = loop {
            if let Some(s) = child.try_wait().unwrap() {
                break s;
            }
            assert!(Instant::now() < end, "the daemon did not exit");
            std::thread::sleep(Duration::from_millis(10));
        };
        assert!(status.success(), "daemon exit: {status}");
        assert_gone(&self.seen);
        assert!(!self.setup.path(".corral/corral.sock").exists(), "the socket is removed");
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

fn wait_line(rx: &Receiver<String>, needle: &str) -> String {
    let end = Instant::now() + LONG;
    let mut lines = Vec::new();
    while let Some(left) = end.checked_duration_since(Instant::now()) {
        match rx.recv_timeout(left) {
            Ok(l) if l.contains(needle) => return l,
            Ok(l) => lines.push(l),
            Err(_) => break,
        }
    }
    panic!("the daemon never printed {needle:?}; it printed {lines:?}");
}

#[derive(Debug)]
struct Reply {
    status: u16,
    head: String,
    body: String,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {self:?}"))
    }
}

/// One HTTP/1.1 request with `Connection: close`; the reply is read to
/// the end (or to Content-Length).
fn exchange(stream: &mut impl ReadWrite, method: &str, path: &str, auth: Option<&str>) -> std::io::Result<Reply> {
    let auth = auth.map(|a| format!("Authorization: {a}\r\n")).unwrap_or_default();
    let req =
        format!("{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nContent-Length: 0\r\n{auth}\r\n");
    stream.write_all(req.as_bytes())?;
    stream.flush()?;
    let mut raw = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => raw.extend_from_slice(&buf[..n]),
            // A peer that closes without a TLS close_notify: keep what came.
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof && !raw.is_empty() => break,
            Err(e) => return Err(e),
        }
        if complete(&raw) {
            break;
        }
    }
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidData, format!("no HTTP reply, got {text:?}")))?;
    let status = head.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    Ok(Reply { status, head: head.to_string(), body: body.to_string() })
}

/// True once a reply with a Content-Length has all its body.
fn complete(raw: &[u8]) -> bool {
    let text = String::from_utf8_lossy(raw);
    let Some((head, body)) = text.split_once("\r\n\r\n") else { return false };
    head.lines()
        .find_map(|l| l.split_once(':').filter(|(k, _)| k.eq_ignore_ascii_case("content-length")))
        .and_then(|(_, v)| v.trim().parse::<usize>().ok())
        .is_some_and(|n| body.len() >= n)
}

trait ReadWrite: Read + Write {}
impl<T: Read + Write> ReadWrite for T {}

fn connect(addr: SocketAddr) -> TcpStream {
    let tcp = TcpStream::connect(addr).unwrap();
    tcp.set_read_timeout(Some(LONG)).unwrap();
    tcp.set_write_timeout(Some(LONG)).unwrap();
    tcp
}

/// A request over TLS, trusting only `ca_pem`.
fn https(addr: SocketAddr, ca_pem: &str, method: &str, path: &str, auth: Option<&str>) -> std::io::Result<Reply> {
    let mut roots = RootCertStore::empty();
    for c in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(c.unwrap()).unwrap();
    }
    let config = ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let conn = ClientConnection::new(Arc::new(config), ServerName::try_from("localhost").unwrap()).unwrap();
    let mut tls = StreamOwned::new(conn, connect(addr));
    exchange(&mut tls, method, path, auth)
}

const SLEEPER: &str = "[services.web]\ncommand = [\"sleep\", \"600\"]\n";

#[test]
fn the_tls_listener_serves_the_api_only_with_the_bearer_token() {
    let mut d = Daemon::start(Setup::full(SLEEPER));

    // No token, a wrong one, another scheme: 401 with a JSON error, and
    // no handler runs (an unknown path is 401 too, not 404).
    for auth in [None, Some("Bearer wrong-token-0123456789abcdef".to_string()), Some(format!("Basic {TOKEN}"))] {
        for path in ["/v1/services", "/nope"] {
            let r = d.https("GET", path, auth.as_deref());
            assert_eq!(r.status, 401, "{auth:?} {path}: {r:?}");
            assert!(r.json()["error"].as_str().unwrap().contains("token"), "{r:?}");
            assert!(r.head.to_ascii_lowercase().contains("www-authenticate: bearer"), "{r:?}");
        }
    }
    // A token that is the right one plus a suffix, or a prefix of it.
    for t in [format!("{TOKEN}x"), TOKEN[..TOKEN.len() - 1].to_string()] {
        assert_eq!(d.https("GET", "/v1/services", Some(&format!("Bearer {t}"))).status, 401);
    }

    // The right token: the same API as the socket.
    let pid = d.wait_pid("web");
    let r = d.authed("GET", "/v1/services");
    assert_eq!(r.status, 200, "{r:?}");
    let list = r.json();
    let web = list["instances"].as_array().unwrap().iter().find(|i| i["service"] == "web").unwrap().clone();
    assert_eq!(web["pid"], pid);
    assert_eq!(d.https("GET", "/v1/services/web", Some(&format!("bearer {TOKEN}"))).status, 200);
    assert_eq!(d.authed("GET", "/nope").status, 404);

    // The Unix socket keeps its own (OS) auth: no token there.
    let out = Command::new(CORRAL).args(["status", "--json", "-c"]).arg(d.setup.path("corral.toml")).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["instances"][0]["pid"], pid);

    // Control works too: restart over TCP gives a new pid.
    let r = d.authed("POST", "/v1/services/web/restart");
    assert_eq!(r.status, 200, "{r:?}");
    d.seen.push(pid);
    let end = Instant::now() + LONG;
    loop {
        let r = d.authed("GET", "/v1/services/web");
        let now = r.json()["instances"][0]["pid"].as_u64();
        if let Some(p) = now.filter(|&p| p != pid as u64) {
            d.seen.push(p as u32);
            break;
        }
        assert!(Instant::now() < end, "no new pid after restart: {r:?}");
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_gone(&[pid]);

    // Shut down over TCP: every service stops and the daemon exits 0.
    let r = d.authed("POST", "/v1/shutdown");
    assert_eq!(r.status, 200, "{r:?}");
    d.wait_exit();
}

#[test]
fn plain_http_and_untrusting_clients_get_nothing() {
    let mut d = Daemon::start(Setup::full(SLEEPER));
    d.wait_pid("web");

    // Plain HTTP, even with the right token: a 400 that says TLS, never the API.
    let mut tcp = connect(d.addr);
    let r = exchange(&mut tcp, "GET", "/v1/services", Some(&format!("Bearer {TOKEN}")));
    match r {
        Ok(r) => {
            assert_eq!(r.status, 400, "{r:?}");
            assert!(r.body.contains("TLS"), "{r:?}");
            assert!(!r.body.contains("instances"), "{r:?}");
        }
        // A reset is a refusal too.
        Err(e) => assert!(e.kind() != std::io::ErrorKind::TimedOut, "{e}"),
    }

    // A client that trusts another certificate fails the handshake.
    let (other, _) = self_signed();
    let e = https(d.addr, &other, "GET", "/v1/services", Some(&format!("Bearer {TOKEN}"))).unwrap_err();
    assert!(e.to_string().to_lowercase().contains("certificate"), "{e}");

    // The listener still serves a proper client after all that.
    assert_eq!(d.authed("GET", "/v1/services").status, 200);

    let out = Command::new(CORRAL).args(["down", "-c"]).arg(d.setup.path("corral.toml")).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    d.wait_exit();
}

/// `corral <args>` pointed at nothing but what `args` and `env` say: no
/// config, and none of the variables that pick a daemon from outside.
fn verb(dir: &Path, args: &[&str], env: &[(&str, String)]) -> (Option<i32>, String, String) {
    let mut c = Command::new(CORRAL);
    c.args(args).current_dir(dir).stdin(Stdio::null());
    for v in ["CORRAL_URL", "CORRAL_SOCKET", "CORRAL_TOKEN_FILE", "CORRAL_CA", "CORRAL_CONFIG"] {
        c.env_remove(v);
    }
    for (k, v) in env {
        c.env(k, v);
    }
    let out = c.output().unwrap();
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    (out.status.code(), text(&out.stdout), text(&out.stderr))
}

#[test]
fn the_verbs_work_over_tcp_with_the_token_and_refuse_anything_less() {
    let mut d = Daemon::start(Setup::full(SLEEPER));
    let pid = d.wait_pid("web");
    let url = format!("https://localhost:{}", d.addr.port());
    let token = d.setup.path("token").display().to_string();
    let cert = d.setup.path("cert.pem").display().to_string();
    // Run from elsewhere: nothing may come from the config's folder.
    let away = tempfile::tempdir().unwrap();
    let run = |args: &[&str], env: &[(&str, String)]| verb(away.path(), args, env);

    // status with the token and the daemon's certificate as the CA.
    let (code, out, err) = run(&["status", "--json", "--url", &url, "--token-file", &token, "--ca", &cert], &[]);
    assert_eq!(code, Some(0), "{err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["instances"][0]["pid"], pid, "{v}");
    let (code, out, err) = run(&["status", "--url", &url, "--token-file", &token, "--ca", &cert], &[]);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("web") && out.contains(&pid.to_string()) && out.contains("running"), "{out}");

    // restart, with everything from the environment this time.
    let env = [("CORRAL_URL", url.clone()), ("CORRAL_TOKEN_FILE", token.clone()), ("CORRAL_CA", cert.clone())];
    let (code, out, err) = run(&["restart", "web"], &env);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("web.0: "), "{out}");
    d.seen.push(pid);
    let end = Instant::now() + LONG;
    let fresh = loop {
        let (_, out, _) = run(&["status", "--json"], &env);
        let now = serde_json::from_str::<Value>(&out).ok().and_then(|v| v["instances"][0]["pid"].as_u64());
        if let Some(p) = now.filter(|&p| p != u64::from(pid)) {
            break p as u32;
        }
        assert!(Instant::now() < end, "no new pid after restart: {out}");
        std::thread::sleep(Duration::from_millis(10));
    };
    d.seen.push(fresh);
    assert_gone(&[pid]);
    // The other verbs ride the same connection code: logs and events too.
    let (code, _, err) = run(&["logs", "-n", "5", "web"], &env);
    assert_eq!(code, Some(0), "{err}");
    let (code, out, err) = run(&["events", "-n", "100"], &env);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("web.0 running -> stopping (stop requested)"), "{out}");
    let (code, _, err) = run(&["logs", "nope"], &env);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.starts_with("corral: no service `nope`"), "{err}");

    // A wrong token: exit 1 and one line that says so; nothing changed.
    let wrong = d.setup.path("wrong-token");
    std::fs::write(&wrong, "not-the-token-0123456789abcdef\n").unwrap();
    let wrong = wrong.display().to_string();
    for args in [&["status"][..], &["restart", "web"], &["logs", "web"], &["events", "-f"]] {
        let mut all = args.to_vec();
        all.extend(["--url", &url, "--token-file", &wrong, "--ca", &cert]);
        let (code, out, err) = run(&all, &[]);
        assert_eq!(code, Some(1), "{args:?}: {err}");
        assert_eq!(err.lines().count(), 1, "{args:?}: one line: {err}");
        assert!(err.starts_with("corral: the daemon refused the token (wrong bearer token)"), "{args:?}: {err}");
        assert!(!err.contains(TOKEN) && !err.contains("not-the-token"), "never prints a token: {err}");
        assert!(out.is_empty(), "{args:?}: {out}");
    }
    // No token at all, plain http://, and a CA that does not vouch for the daemon.
    let (code, _, err) = run(&["status", "--url", &url, "--ca", &cert], &[]);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.starts_with("corral: ") && err.contains("needs the daemon's bearer token"), "{err}");
    let plain = format!("http://localhost:{}", d.addr.port());
    let (code, _, err) = run(&["status", "--url", &plain, "--token-file", &token], &[]);
    assert_eq!(code, Some(1), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains(&format!("`{plain}` is plain HTTP, and the daemon's TCP listener speaks TLS only")), "{err}");
    assert!(err.contains(&format!("hint: use {url}")), "{err}");
    let (code, _, err) = run(&["status", "--url", &url, "--token-file", &token], &[]);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("certificate verification failed") && err.contains("--ca FILE"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert_eq!(d.authed("GET", "/v1/services/web").json()["instances"][0]["pid"], fresh, "nothing changed");

    // down over TCP: every service stops and the daemon exits 0.
    let (code, out, err) = run(&["down"], &env);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("the daemon has stopped"), "{out}");
    d.wait_exit();
}

/// A service that would leave a mark if it ever ran.
const MARKER: &str = "[services.mark]\ncommand = [\"sh\", \"-c\", \"touch '{dir}/started'; sleep 600\"]\n";

#[test]
fn tcp_without_tls_or_token_is_a_config_error_and_starts_nothing() {
    for (tcp, missing) in [
        ("", "`cert`, `key`, `token_file`"),
        ("cert = \"cert.pem\"\nkey = \"key.pem\"", "`token_file`"),
        ("token_file = \"token\"", "`cert`, `key`"),
    ] {
        let s = Setup::new(MARKER, tcp);
        let (code, err) = s.up_fails();
        assert_eq!(code, Some(2), "{err}");
        let cfg = s.path("corral.toml").display().to_string();
        let want = format!(
            "{cfg}:3:9: [daemon.tcp] needs TLS and a bearer token; a plain TCP control port is refused (missing: {missing})"
        );
        assert!(err.contains(&want), "want {want:?} in {err}");
        assert!(err.contains("expected: cert = \"cert.pem\", key = \"key.pem\" and token_file = \"token\""), "{err}");
        assert!(!s.path(".corral").exists(), "nothing was created");
        assert!(!s.path("started").exists(), "nothing was started");
        // `corral check` says the same without running anything.
        let out = Command::new(CORRAL).args(["check", "-c"]).arg(s.path("corral.toml")).output().unwrap();
        assert_eq!(out.status.code(), Some(2));
    }
}

#[test]
fn bad_tls_files_or_token_stop_the_daemon_in_one_line_before_anything_starts() {
    let (_, other_key) = self_signed();
    let cases: [(&str, &str, &str); 6] = [
        ("cert.pem", "not a certificate\n", "no certificate"),
        ("cert.pem", "-----BEGIN CERTIFICATE-----\nAAAA\n", "not valid PEM"),
        ("key.pem", "", "no private key"),
        ("key.pem", &other_key, "the key does not belong to the certificate"),
        ("token", "short\n", "at least 16"),
        ("token", "\n", "is empty"),
    ];
    for (file, content, want) in cases {
        let s = Setup::full(MARKER);
        std::fs::write(s.path(file), content).unwrap();
        let (code, err) = s.up_fails();
        assert_eq!(code, Some(1), "{file}: {err}");
        assert_eq!(err.lines().count(), 1, "{file}: one line: {err}");
        assert!(err.starts_with("corral: ") && err.contains(want), "{file}: want {want:?} in {err}");
        assert!(err.contains(&s.path(file).display().to_string()), "{file}: names the file: {err}");
        assert!(!err.contains(TOKEN), "never prints the token: {err}");
        assert!(!s.path(".corral").exists(), "{file}: nothing was created");
        assert!(!s.path("started").exists(), "{file}: nothing was started");
    }
    // A missing file is named too.
    let s = Setup::full(MARKER);
    std::fs::remove_file(s.path("token")).unwrap();
    let (code, err) = s.up_fails();
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("cannot read the token file") && err.contains(&s.path("token").display().to_string()),
        "{err}"
    );
}
