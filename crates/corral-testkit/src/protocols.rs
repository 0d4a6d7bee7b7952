//! The protocols a supervisor speaks with its services, played by the
//! testkit (Unix): `corral-testkit MODE ...` before any other option.
//!
//! - `notify [--ready-after S] [--no-ready] [--status TEXT] [--extend USEC]
//!   [--watchdog-every S] [--watchdog-pings N] [--sleep S]`: speaks
//!   sd_notify on `NOTIFY_SOCKET` (an `@abstract` name or a path) with
//!   plain std. Prints one line first,
//!   `{"notify":{"pid":..,"socket":"..","watchdog_usec":"..","watchdog_pid":".."}}`.
//! - `ready-fd FD [--after S] [--sleep S]`: s6's readiness: a newline on FD.
//! - `activated-http [--sleep S]`: an HTTP server on the sockets passed by
//!   socket activation (checks `LISTEN_PID == getpid()`), printing
//!   `{"activated":{"pid":..,"fds":..,"names":"..","inodes":[..]}}` first.
//! - `bound-http PORT [--sleep S]`: the same server binding 127.0.0.1:PORT
//!   itself (the comparison: its port is closed while it restarts).
//!
//! Every mode ends by itself when `--sleep` (default 60 s) runs out. The
//! servers stop gracefully on SIGTERM: the request in hand is answered,
//! whatever waits in the backlog is left for the next instance.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::os::fd::{AsRawFd, FromRawFd};
use std::os::unix::net::{UnixDatagram, UnixStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

const DEFAULT_LIFE: Duration = Duration::from_secs(60);

/// Runs `mode` when the first argument names one; `None` otherwise.
pub fn dispatch(args: &[String]) -> Option<i32> {
    let (mode, rest) = args.split_first()?;
    let r = match mode.as_str() {
        "notify" => notify(rest),
        "ready-fd" => ready_fd(rest),
        "activated-http" => activated_http(rest),
        "bound-http" => bound_http(rest),
        _ => return None,
    };
    Some(match r {
        Ok(code) => code,
        Err(e) => {
            eprintln!("corral-testkit {mode}: {e}");
            2
        }
    })
}

/// `--name VALUE` options, and the positional words.
struct Flags {
    named: Vec<(String, String)>,
    bare: Vec<String>,
    switches: Vec<String>,
}

fn flags(args: &[String], switches: &[&str]) -> Flags {
    let mut f = Flags { named: Vec::new(), bare: Vec::new(), switches: Vec::new() };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        if switches.contains(&a.as_str()) {
            f.switches.push(a.clone());
        } else if let Some(n) = a.strip_prefix("--") {
            f.named.push((n.to_string(), it.next().cloned().unwrap_or_default()));
        } else {
            f.bare.push(a.clone());
        }
    }
    f
}

impl Flags {
    fn get(&self, name: &str) -> Option<&str> {
        self.named.iter().rev().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }
    fn secs(&self, name: &str) -> Result<Option<Duration>, String> {
        self.get(name)
            .map(|v| {
                v.parse::<f64>()
                    .ok()
                    .filter(|s| s.is_finite() && (0.0..=86_400.0).contains(s))
                    .map(Duration::from_secs_f64)
                    .ok_or_else(|| format!("--{name} {v}: expected seconds"))
            })
            .transpose()
    }
    fn life(&self) -> Result<Instant, String> {
        Ok(Instant::now() + self.secs("sleep")?.unwrap_or(DEFAULT_LIFE))
    }
}

fn sleep_until(t: Instant) {
    let now = Instant::now();
    if t > now {
        std::thread::sleep(t - now);
    }
}

/// Sends one datagram to `NOTIFY_SOCKET`.
fn sd_notify(msg: &str) -> Result<(), String> {
    let to = std::env::var("NOTIFY_SOCKET").map_err(|_| "NOTIFY_SOCKET is not set".to_string())?;
    let s = UnixDatagram::unbound().map_err(|e| e.to_string())?;
    let sent = match to.strip_prefix('@') {
        #[cfg(target_os = "linux")]
        Some(name) => {
            use std::os::linux::net::SocketAddrExt;
            let addr =
                std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).map_err(|e| e.to_string())?;
            s.send_to_addr(msg.as_bytes(), &addr)
        }
        #[cfg(not(target_os = "linux"))]
        Some(_) => return Err("abstract sockets are Linux-only".into()),
        None => s.send_to(msg.as_bytes(), &to),
    };
    sent.map(|_| ()).map_err(|e| format!("sending to {to}: {e}"))
}

fn notify(args: &[String]) -> Result<i32, String> {
    let f = flags(args, &["--no-ready"]);
    let end = f.life()?;
    let var = |k: &str| std::env::var(k).unwrap_or_default();
    println!(
        "{{\"notify\":{{\"pid\":{},\"socket\":{:?},\"watchdog_usec\":\"{}\",\"watchdog_pid\":\"{}\"}}}}",
        std::process::id(),
        var("NOTIFY_SOCKET"),
        var("WATCHDOG_USEC"),
        var("WATCHDOG_PID")
    );
    let _ = std::io::stdout().flush();
    if let Some(u) = f.get("extend") {
        sd_notify(&format!("EXTEND_TIMEOUT_USEC={u}"))?;
    }
    let every = f.secs("watchdog-every")?;
    let mut pings: u64 =
        f.get("watchdog-pings").map_or(Ok(u64::MAX), |v| v.parse().map_err(|_| "--watchdog-pings N"))?;
    let ready_at = Instant::now() + f.secs("ready-after")?.unwrap_or_default();
    let mut ready_sent = f.switches.iter().any(|s| s == "--no-ready");
    let mut next_ping = Instant::now();
    while Instant::now() < end {
        let now = Instant::now();
        if !ready_sent && now >= ready_at {
            let mut msg = "READY=1".to_string();
            if let Some(s) = f.get("status") {
                msg.push_str(&format!("\nSTATUS={s}"));
            }
            sd_notify(&msg)?;
            println!("notify: ready sent");
            let _ = std::io::stdout().flush();
            ready_sent = true;
        }
        if let Some(p) = every.filter(|_| pings > 0 && now >= next_ping) {
            sd_notify("WATCHDOG=1")?;
            pings -= 1;
            if pings == 0 {
                println!("notify: watchdog pings stopped");
                let _ = std::io::stdout().flush();
            }
            next_ping = now + p;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    Ok(0)
}

fn ready_fd(args: &[String]) -> Result<i32, String> {
    let f = flags(args, &[]);
    let end = f.life()?;
    let fd: i32 = f.bare.first().and_then(|v| v.parse().ok()).ok_or("ready-fd FD")?;
    sleep_until(Instant::now() + f.secs("after")?.unwrap_or_default());
    // SAFETY: the fd was passed to this process for this write; it is
    // closed by the File.
    let mut w = unsafe { std::fs::File::from_raw_fd(fd) };
    w.write_all(b"\n").map_err(|e| format!("writing to fd {fd}: {e}"))?;
    drop(w);
    println!("ready-fd: newline written on {fd}");
    let _ = std::io::stdout().flush();
    sleep_until(end);
    Ok(0)
}

static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_term(_: libc::c_int) {
    STOP.store(true, Ordering::SeqCst);
}

fn inode(fd: i32) -> u64 {
    // SAFETY: a zeroed stat is a valid out-parameter.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: st is valid for writes.
    if unsafe { libc::fstat(fd, &mut st) } == 0 {
        st.st_ino as u64
    } else {
        0
    }
}

fn activated_http(args: &[String]) -> Result<i32, String> {
    let f = flags(args, &[]);
    let end = f.life()?;
    let pid: u32 = std::env::var("LISTEN_PID").ok().and_then(|p| p.parse().ok()).ok_or("LISTEN_PID is not set")?;
    if pid != std::process::id() {
        return Err(format!("LISTEN_PID is {pid}, not this process ({})", std::process::id()));
    }
    let n: i32 = std::env::var("LISTEN_FDS").ok().and_then(|p| p.parse().ok()).ok_or("LISTEN_FDS is not set")?;
    if !(1..=64).contains(&n) {
        return Err(format!("LISTEN_FDS is {n}"));
    }
    let inodes: Vec<String> = (3..3 + n).map(|fd| inode(fd).to_string()).collect();
    println!(
        "{{\"activated\":{{\"pid\":{pid},\"fds\":{n},\"names\":{:?},\"inodes\":[{}]}}}}",
        std::env::var("LISTEN_FDNAMES").unwrap_or_default(),
        inodes.join(",")
    );
    let _ = std::io::stdout().flush();
    serve((3..3 + n).collect(), end)
}

fn bound_http(args: &[String]) -> Result<i32, String> {
    let f = flags(args, &[]);
    let end = f.life()?;
    let port: u16 = f.bare.first().and_then(|v| v.parse().ok()).ok_or("bound-http PORT")?;
    let listener = TcpListener::bind(("127.0.0.1", port)).map_err(|e| format!("binding 127.0.0.1:{port}: {e}"))?;
    println!("{{\"bound\":{{\"pid\":{},\"port\":{port}}}}}", std::process::id());
    let _ = std::io::stdout().flush();
    serve(vec![listener.as_raw_fd()], end)
}

/// Answers each request on the listening sockets `fds` (TCP or unix)
/// with this process's pid, until SIGTERM or `end`.
fn serve(fds: Vec<i32>, end: Instant) -> Result<i32, String> {
    // SAFETY: the handler only stores to an atomic; no SA_RESTART, so a
    // blocked poll returns.
    unsafe { libc::signal(libc::SIGTERM, on_term as *const () as libc::sighandler_t) };
    let mut polled: Vec<libc::pollfd> =
        fds.iter().map(|&fd| libc::pollfd { fd, events: libc::POLLIN, revents: 0 }).collect();
    while !STOP.load(Ordering::SeqCst) && Instant::now() < end {
        // SAFETY: valid pollfds for the length given.
        let r = unsafe { libc::poll(polled.as_mut_ptr(), polled.len() as libc::nfds_t, 50) };
        if r <= 0 || STOP.load(Ordering::SeqCst) {
            continue;
        }
        for p in polled.iter().filter(|p| p.revents & libc::POLLIN != 0) {
            // SAFETY: accept on a listening socket of ours; null address.
            let c = unsafe { libc::accept(p.fd, std::ptr::null_mut(), std::ptr::null_mut()) };
            if c >= 0 {
                // SAFETY: accept just returned this fresh fd; a UnixStream
                // only reads and writes it, whatever its family.
                answer(unsafe { UnixStream::from_raw_fd(c) });
            }
        }
    }
    Ok(0)
}

fn answer(mut s: UnixStream) {
    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while head.len() < 8192 && !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match s.read(&mut buf) {
            // The SIGTERM handler has no SA_RESTART: a stop arriving while
            // a request is read must not drop that request.
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Ok(0) | Err(_) => return,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    }
    let body = format!("pid {}\n", std::process::id());
    let _ = write!(
        s,
        "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = s.flush();
}
