//! The protocols services already speak, end to end: readiness and the
//! watchdog by sd_notify, s6's readiness fd, and socket activation with
//! restarts that drop nothing. A real `corral up` per test, the testkit's
//! protocol modes as the services, real sockets on 127.0.0.1 and in the
//! test's own temp dir.
//!
//! Every test waits on events, log lines or `corral status`, never on a
//! fixed sleep, and proves at the end (`Daemon::down`) that every pid it
//! saw is gone.

#![cfg(target_os = "linux")]

mod daemon;

use daemon::*;
use serde_json::Value;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn reason(e: &Value) -> &str {
    e["reason"].as_str().unwrap_or_default()
}

/// The JSON lines of `service`'s log that start with `{"<key>"`.
fn lines_of(d: &Daemon, service: &str, key: &str) -> Vec<Value> {
    let text = std::fs::read_to_string(d.path(&format!(".corral/logs/{service}/0.log"))).unwrap_or_default();
    let needle = format!(" out {{\"{key}\"");
    text.lines()
        .filter_map(|l| l.split_once(&needle).map(|(_, j)| format!("{{\"{key}\"{j}")))
        .map(|j| serde_json::from_str(&j).unwrap())
        .collect()
}

/// Waits for at least `n` such lines; returns them all.
fn wait_lines(d: &mut Daemon, service: &str, key: &str, n: usize) -> Vec<Value> {
    let end = Instant::now() + LONG;
    loop {
        let got = lines_of(d, service, key);
        for v in &got {
            if let Some(p) = v[key]["pid"].as_u64() {
                d.seen.push(p as u32);
            }
        }
        if got.len() >= n {
            return got;
        }
        assert!(Instant::now() < end, "fewer than {n} {key} lines from {service}: {got:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The index of the first event matching `pred`.
fn position(evs: &[Value], what: &str, pred: impl Fn(&Value) -> bool) -> usize {
    evs.iter().position(pred).unwrap_or_else(|| panic!("no event {what} in {evs:#?}"))
}

#[test]
fn ready_only_after_ready_1_a_dependant_waits_for_it_and_status_shows_its_line() {
    let mut d = Daemon::start(&format!(
        "[services.db]\ncommand = [{tk}, \"notify\", \"--ready-after\", \"1\", \"--status\", \"accepting connections\"]\nnotify = true\n\
         [services.app]\ncommand = [{tk}, \"--sleep\", \"60\"]\ndepends_on = {{ db = \"healthy\" }}\n",
        tk = tk()
    ));
    d.wait_transition("app", "running");
    let evs = d.events();
    d.note_pids(&evs);
    let db_running = position(&evs, "db running", |e| is_transition(e) && e["service"] == "db" && e["to"] == "running");
    let db_ready = position(&evs, "db ready", |e| e["service"] == "db" && e["ready"] == true);
    let app_running =
        position(&evs, "app running", |e| is_transition(e) && e["service"] == "app" && e["to"] == "running");
    assert_eq!(reason(&evs[db_ready]), "notify: READY=1");
    assert!(db_running < db_ready && db_ready < app_running, "running, then READY=1, then the dependant");
    // The line was sent with READY=1, before the dependant started.
    let db = d.instance("db");
    assert_eq!(db["ready"], true);
    assert_eq!(db["notify"]["status"], "accepting connections", "{db:#}");
    assert_eq!(db["notify"]["dropped"], 0);
    let out = d.corral(&["status"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.lines().next().unwrap().trim_end().ends_with("STATUS"), "{text}");
    assert!(text.lines().any(|l| l.starts_with("db ") && l.ends_with("accepting connections")), "{text}");
    assert!(d.instance("app")["notify"].is_null(), "no notify view for a service that does not notify");
    d.down();
}

#[test]
fn a_datagram_from_outside_the_group_is_dropped_and_counted() {
    let mut d = Daemon::start(&format!(
        "[services.n]\ncommand = [{tk}, \"notify\", \"--no-ready\", \"--sleep\", \"60\"]\nnotify = true\nstart_timeout = \"60s\"\n",
        tk = tk()
    ));
    let line = wait_lines(&mut d, "n", "notify", 1).remove(0);
    let socket = line["notify"]["socket"].as_str().unwrap().to_string();
    assert!(socket.starts_with('@'), "an abstract socket: {socket}");
    // This test process is not in the group: READY=1 from it is not heard.
    use std::os::linux::net::SocketAddrExt;
    let addr = std::os::unix::net::SocketAddr::from_abstract_name(&socket.as_bytes()[1..]).unwrap();
    let outsider = std::os::unix::net::UnixDatagram::unbound().unwrap();
    outsider.send_to_addr(b"READY=1\nSTATUS=forged", &addr).unwrap();
    let i = d.wait_status("a dropped datagram", "n", |i| i["notify"]["dropped"].as_u64() >= Some(1));
    assert_eq!(i["ready"], false, "{i:#}");
    assert!(i["notify"]["status"].is_null(), "{i:#}");
    assert_eq!(i["state"], "running");
    d.down();
}

#[test]
fn a_missed_watchdog_ends_the_run_as_a_failed_liveness_check_and_it_restarts() {
    let mut d = Daemon::start(&format!(
        "[services.w]\ncommand = [{tk}, \"notify\", \"--watchdog-every\", \"0.2\", \"--watchdog-pings\", \"5\"]\n\
         notify = true\nwatchdog = \"1s\"\nbackoff = {{ initial = \"100ms\" }}\n",
        tk = tk()
    ));
    let first = wait_lines(&mut d, "w", "notify", 1).remove(0);
    assert_eq!(first["notify"]["watchdog_usec"], "1000000");
    assert_eq!(first["notify"]["watchdog_pid"], first["notify"]["pid"].to_string(), "WATCHDOG_PID is the leader");
    let e = d.wait_event("a watchdog restart", |e| {
        is_transition(e) && e["service"] == "w" && e["to"] == "backoff" && reason(e).contains("watchdog")
    });
    assert!(reason(&e).starts_with("liveness: watchdog: no WATCHDOG=1 within 1s"), "{e:#}");
    // Restarted like a failed liveness probe, and the next run is watched too.
    wait_lines(&mut d, "w", "notify", 2);
    d.wait_status("restarted", "w", |i| i["restarts"].as_u64() >= Some(1) && i["state"] == "running");
    d.down();
}

#[test]
fn extend_timeout_keeps_a_slow_start_alive_and_without_it_the_start_fails() {
    let mut d = Daemon::start(&format!(
        "[services.slow]\ncommand = [{tk}, \"notify\", \"--extend\", \"60000000\", \"--ready-after\", \"2\"]\n\
         notify = true\nstart_timeout = \"500ms\"\nrestart = \"no\"\n\
         [services.stuck]\ncommand = [{tk}, \"notify\", \"--ready-after\", \"50\"]\n\
         notify = true\nstart_timeout = \"500ms\"\nrestart = \"no\"\n",
        tk = tk()
    ));
    let e = d.wait_transition("stuck", "failed");
    assert!(
        reason(&e).starts_with("startup: notify: not ready within the start timeout (500ms)"),
        "no READY=1 in time is a failed start: {e:#}"
    );
    d.wait_event("slow ready", |e| e["service"] == "slow" && e["ready"] == true);
    let slow = d.instance("slow");
    assert_eq!(slow["state"], "running", "EXTEND_TIMEOUT_USEC pushed the deadline out: {slow:#}");
    assert_eq!(slow["restarts"], 0);
    d.down();
}

#[test]
fn a_newline_on_the_readiness_fd_makes_the_instance_ready() {
    let mut d = Daemon::start(&format!(
        "[services.s6]\ncommand = [{tk}, \"ready-fd\", \"5\", \"--after\", \"0.5\"]\nnotify_fd = 5\n\
         [services.after]\ncommand = [{tk}, \"--sleep\", \"60\"]\ndepends_on = {{ s6 = \"healthy\" }}\n",
        tk = tk()
    ));
    d.wait_transition("after", "running");
    let evs = d.events();
    let ready = position(&evs, "s6 ready", |e| e["service"] == "s6" && e["ready"] == true);
    let after =
        position(&evs, "after running", |e| is_transition(e) && e["service"] == "after" && e["to"] == "running");
    assert!(ready < after);
    assert_eq!(reason(&evs[ready]), "notify_fd: ready (a newline on the readiness fd)");
    d.down();
}

/// One GET; what happened to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Got {
    Ok,
    Refused,
    Reset,
}

fn get(addr: SocketAddr) -> Got {
    let mut s = match TcpStream::connect_timeout(&addr, Duration::from_secs(20)) {
        Ok(s) => s,
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => return Got::Refused,
        Err(_) => return Got::Reset,
    };
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    if s.write_all(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n").is_err() {
        return Got::Reset;
    }
    let mut answer = Vec::new();
    match s.read_to_end(&mut answer) {
        Ok(_) if answer.starts_with(b"HTTP/1.1 200") => Got::Ok,
        _ => Got::Reset,
    }
}

/// Requests in a loop (bounded) until `stop`; the tally.
fn hammer(addr: SocketAddr, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<[u64; 3]> {
    std::thread::spawn(move || {
        let mut tally = [0u64; 3];
        for _ in 0..200_000 {
            if stop.load(Ordering::SeqCst) {
                break;
            }
            tally[get(addr) as usize] += 1;
            std::thread::sleep(Duration::from_millis(2));
        }
        tally
    })
}

/// `corral restart SERVICE`, then waits until a new leader runs.
fn restart(d: &mut Daemon, service: &str) {
    let before = d.pid_of(service);
    let out = d.corral(&["restart", service]);
    assert!(out.status.success(), "restart: {}", String::from_utf8_lossy(&out.stderr));
    let i = d.wait_status("restarted", service, |i| {
        i["state"] == "running" && i["pid"].as_u64().map(|p| p as u32) != before
    });
    d.seen.extend(i["pid"].as_u64().map(|p| p as u32));
}

#[test]
fn sockets_come_from_fd_3_with_listen_vars_and_the_same_socket_survives_restarts_and_a_reload() {
    let dir = Daemon::dir();
    let port = free_port();
    let unix = dir.path().join("web.sock");
    let toml = format!(
        "[services.web]\ncommand = [{tk}, \"activated-http\", \"--sleep\", \"120\"]\nsockets = [{}, {}]\n",
        q(format!("tcp://127.0.0.1:{port}")),
        q(format!("unix:{}", unix.display())),
        tk = tk()
    );
    let mut d = Daemon::start_in(dir, &toml);
    let first = wait_lines(&mut d, "web", "activated", 1).remove(0)["activated"].clone();
    // The testkit refuses to serve unless LISTEN_PID is its own pid.
    assert_eq!(first["fds"], 2);
    assert_eq!(first["names"], "web:web");
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    assert_eq!(get(addr), Got::Ok);
    let mut u = std::os::unix::net::UnixStream::connect(&unix).unwrap();
    u.set_read_timeout(Some(LONG)).unwrap();
    u.write_all(b"GET / HTTP/1.1\r\n\r\n").unwrap();
    let mut answer = String::new();
    u.read_to_string(&mut answer).unwrap();
    assert!(answer.ends_with(&format!("pid {}\n", first["pid"])), "{answer}");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(&unix).unwrap().permissions().mode() & 0o777, 0o660);
    restart(&mut d, "web");
    restart(&mut d, "web");
    let runs = wait_lines(&mut d, "web", "activated", 3);
    for r in &runs {
        assert_eq!(r["activated"]["inodes"], first["inodes"], "the very same sockets every run: {runs:?}");
    }
    assert_ne!(runs[0]["activated"]["pid"], runs[2]["activated"]["pid"]);
    // A reload that changes the service but not its sockets: a new run, the same sockets.
    std::fs::write(d.path("corral.toml"), format!("{toml}env = {{ CHANGED = \"1\" }}\n")).unwrap();
    let out = d.corral(&["reload"]);
    assert!(out.status.success(), "reload: {}", String::from_utf8_lossy(&out.stderr));
    let runs = wait_lines(&mut d, "web", "activated", 4);
    assert_eq!(runs[3]["activated"]["inodes"], first["inodes"], "kept across the reload: {runs:?}");
    assert_eq!(get(addr), Got::Ok);
    d.down();
    assert!(!unix.exists(), "the daemon removes its socket file when it lets go of it");
}

#[test]
fn twenty_restarts_of_a_socket_activated_service_refuse_no_request() {
    let (port, own_port) = (free_port(), free_port());
    let mut d = Daemon::start(&format!(
        "[services.web]\ncommand = [{tk}, \"activated-http\", \"--sleep\", \"300\"]\nsockets = [{}]\n\
         [services.own]\ncommand = [{tk}, \"bound-http\", \"{own_port}\", \"--sleep\", \"300\"]\n",
        q(format!("tcp://127.0.0.1:{port}")),
        tk = tk()
    ));
    wait_lines(&mut d, "web", "activated", 1);
    wait_lines(&mut d, "own", "bound", 1);
    let stop = Arc::new(AtomicBool::new(false));
    let activated = hammer(format!("127.0.0.1:{port}").parse().unwrap(), stop.clone());
    let own = hammer(format!("127.0.0.1:{own_port}").parse().unwrap(), stop.clone());
    for _ in 0..20 {
        restart(&mut d, "web");
        restart(&mut d, "own");
    }
    stop.store(true, Ordering::SeqCst);
    let [ok, refused, reset] = activated.join().unwrap();
    let [own_ok, own_refused, own_reset] = own.join().unwrap();
    eprintln!(
        "socket-activated: {ok} ok, {refused} refused, {reset} reset; \
         binding its own port: {own_ok} ok, {own_refused} refused, {own_reset} reset"
    );
    assert!(ok > 0 && own_ok > 0);
    assert_eq!((refused, reset), (0, 0), "not one request refused or reset across 20 restarts");
    assert!(wait_lines(&mut d, "web", "activated", 21).len() >= 21);
    d.down();
}

/// `corral up` on `toml`, which must fail; its stderr.
fn up_fails(toml: &str) -> (tempfile::TempDir, String) {
    let dir = Daemon::dir();
    let cfg = dir.path().join("corral.toml");
    std::fs::write(&cfg, toml).unwrap();
    let (mut child, rx) = spawn_up(&cfg);
    let end = Instant::now() + LONG;
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > end {
            let _ = child.kill();
            let _ = child.wait();
            panic!("corral up did not fail");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(!status.success());
    let err: Vec<String> = rx.try_iter().collect();
    (dir, err.join("\n"))
}

#[test]
fn bad_sockets_and_notify_settings_are_refused_at_load_with_their_place() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let keep = Daemon::dir();
    let started = keep.path().join("started");
    let toml = format!(
        "[services.web]\ncommand = [\"sh\", \"-c\", {}]\nsockets = [\n  {}]\n",
        q(format!("touch {}; sleep 30", started.display())),
        q(format!("tcp://{}", taken.local_addr().unwrap()))
    );
    let (_dir, err) = up_fails(&toml);
    assert!(
        err.contains("corral.toml:4:3: service `web`: cannot listen on tcp://127.0.0.1:")
            && err.contains("expected: a free address"),
        "{err}"
    );
    assert!(!started.exists(), "nothing started");

    let (_dir, err) =
        up_fails("[services.web]\ncommand = [\"true\"]\nsockets = [\"unix:/tmp/corral-test-refused.sock\"]\n");
    assert!(err.contains("corral.toml:3:12:") && err.contains("the folder /tmp is writable by other users"), "{err}");

    let (_dir, err) = up_fails(
        "[services.web]\ncommand = [\"true\"]\nsockets = [\"tcp://localhost:80\"]\nwatchdog = \"5s\"\nnotify_fd = 1\n",
    );
    assert!(
        err.contains("corral.toml:3:12: service `web`: sockets: `tcp://localhost:80` is not tcp://IP:PORT"),
        "{err}"
    );
    assert!(err.contains("corral.toml:4:12: service `web`: `watchdog` needs `notify = true`"), "{err}");
    assert!(err.contains("corral.toml:5:13: service `web`: `notify_fd` is 1"), "{err}");
}
