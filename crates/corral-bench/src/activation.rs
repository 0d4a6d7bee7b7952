//! 16. Socket activation: restarts that drop nothing.
//!
//! One `corral up` runs two copies of the testkit's HTTP server: `web`
//! gets its listening socket from corral (`sockets = [...]`, passed from
//! fd 3 and held by the daemon across runs), `own` binds its port itself,
//! as a service under PM2 or supervisord does. A client per service makes
//! requests in a loop (bounded) while each service is restarted 20 times,
//! interleaved; every request is counted as answered, refused (nothing
//! listening) or reset (accepted by a listener that then went away).
//! Run alone (`corral-bench -- activation`); its section of BENCHMARKS.md
//! is replaced, the rest kept.

use crate::daemons::{spawn_logged, temp_dir, wait_child};
use crate::report::{Section, Table, Verdict};
use crate::Opts;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub const TITLE: &str = "16. socket activation: 20 restarts under load";
const RESTARTS: u32 = 20;
/// The most requests one client makes, whatever happens.
const MAX_REQUESTS: u64 = 1_000_000;
const WAIT: Duration = Duration::from_secs(60);

#[derive(Debug, Default, Clone, Copy)]
struct Tally {
    ok: u64,
    refused: u64,
    reset: u64,
}

fn get(addr: SocketAddr, t: &mut Tally) {
    let mut s = match TcpStream::connect_timeout(&addr, Duration::from_secs(20)) {
        Ok(s) => s,
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => return t.refused += 1,
        Err(_) => return t.reset += 1,
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(30)));
    let mut answer = Vec::new();
    let ok = s.write_all(b"GET / HTTP/1.1\r\nhost: bench\r\n\r\n").is_ok()
        && s.read_to_end(&mut answer).is_ok()
        && answer.starts_with(b"HTTP/1.1 200");
    if ok {
        t.ok += 1
    } else {
        t.reset += 1
    }
}

fn client(addr: SocketAddr, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<Tally> {
    std::thread::spawn(move || {
        let mut t = Tally::default();
        for _ in 0..MAX_REQUESTS {
            if stop.load(Ordering::SeqCst) {
                break;
            }
            get(addr, &mut t);
            // Gentle on a shared machine; still hundreds of requests a second.
            std::thread::sleep(Duration::from_millis(1));
        }
        t
    })
}

fn free_port() -> Result<u16, String> {
    Ok(TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map_err(|e| e.to_string())?.port())
}

struct Daemon {
    corral: PathBuf,
    config: PathBuf,
    log: PathBuf,
    child: Option<std::process::Child>,
}

impl Daemon {
    fn cli(&self, args: &[&str]) -> Result<String, String> {
        let out = Command::new(&self.corral)
            .args(args)
            .arg("-c")
            .arg(&self.config)
            .output()
            .map_err(|e| format!("corral {args:?}: {e}"))?;
        if !out.status.success() {
            return Err(format!("corral {args:?}: {}", String::from_utf8_lossy(&out.stderr).trim()));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// The leader's pid of `service`, once it runs.
    fn running_pid(&self, service: &str) -> Result<Option<u64>, String> {
        let v: serde_json::Value =
            serde_json::from_str(&self.cli(&["status", "--json"])?).map_err(|e| format!("status: {e}"))?;
        Ok(v["instances"]
            .as_array()
            .and_then(|a| a.iter().find(|i| i["service"] == service && i["state"] == "running"))
            .and_then(|i| i["pid"].as_u64()))
    }

    fn wait_running(&self, service: &str, not: Option<u64>) -> Result<u64, String> {
        let end = Instant::now() + WAIT;
        while Instant::now() < end {
            if let Ok(Some(p)) = self.running_pid(service) {
                if Some(p) != not {
                    return Ok(p);
                }
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        Err(format!("{service} was not running again within {WAIT:?}"))
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.cli(&["down"]);
        if let Some(c) = self.child.take() {
            let _ = wait_child(c, WAIT);
        }
    }
}

pub fn run(opts: &Opts) -> Result<Section, String> {
    let dir = temp_dir("activation")?;
    let r = measure(opts, &dir);
    let _ = std::fs::remove_dir_all(&dir);
    r
}

fn measure(opts: &Opts, dir: &Path) -> Result<Section, String> {
    let (port, own_port) = (free_port()?, free_port()?);
    let tk = format!("{:?}", opts.bins.testkit.display().to_string());
    let config = dir.join("corral.toml");
    std::fs::write(
        &config,
        format!(
            "[services.web]\ncommand = [{tk}, \"activated-http\", \"--sleep\", \"600\"]\nsockets = [\"tcp://127.0.0.1:{port}\"]\n\
             [services.own]\ncommand = [{tk}, \"bound-http\", \"{own_port}\", \"--sleep\", \"600\"]\n"
        ),
    )
    .map_err(|e| e.to_string())?;
    let log = dir.join("daemon.log");
    let mut up = Command::new(&opts.bins.corral);
    up.args(["up", "--no-color", "-c"]).arg(&config);
    let child = spawn_logged(&mut up, &log)?;
    let d = Daemon { corral: opts.bins.corral.clone(), config, log, child: Some(child) };
    let mut pids = [d.wait_running("web", None)?, d.wait_running("own", None)?];
    let stop = Arc::new(AtomicBool::new(false));
    let addr = |p: u16| -> SocketAddr { SocketAddr::from(([127, 0, 0, 1], p)) };
    let web = client(addr(port), stop.clone());
    let own = client(addr(own_port), stop.clone());
    let started = Instant::now();
    let restarts = if opts.quick { RESTARTS / 4 } else { RESTARTS };
    let mut failed = None;
    'outer: for _ in 0..restarts {
        for (i, s) in ["web", "own"].into_iter().enumerate() {
            let step = d.cli(&["restart", s]).and_then(|_| d.wait_running(s, Some(pids[i])));
            match step {
                Ok(p) => pids[i] = p,
                Err(e) => {
                    failed = Some(e);
                    break 'outer;
                }
            }
        }
    }
    let took = started.elapsed();
    stop.store(true, Ordering::SeqCst);
    let (web, own) = (web.join().map_err(|_| "a client panicked")?, own.join().map_err(|_| "a client panicked")?);
    if let Some(e) = failed {
        return Err(format!("{e} (daemon log: {})", std::fs::read_to_string(&d.log).unwrap_or_default()));
    }
    drop(d);
    let mut s = Section::new(TITLE);
    s.para(&format!(
        "`corral-bench -- activation`: one `corral up`, two copies of the testkit's HTTP server. `web` gets its \
         listening socket from corral (`sockets = [\"tcp://127.0.0.1:PORT\"]`, passed from fd 3, held by the \
         daemon across runs); `own` binds its port itself, as it would under PM2 or supervisord. One client per \
         service requests in a loop, one connection per request, while each is restarted {restarts} times \
         (`corral restart`, interleaved, each waited for until the new leader runs), in {:.1} s. Refused: \
         nothing listened; reset: a listener accepted the connection, then closed without answering.",
        took.as_secs_f64()
    ));
    let mut t = Table::new(&["service", "restarts", "answered", "refused", "reset"]);
    for (name, x) in [("web: socket-activated (corral holds the socket)", web), ("own: binds its own port", own)] {
        t.row(vec![name.into(), restarts.to_string(), x.ok.to_string(), x.refused.to_string(), x.reset.to_string()]);
    }
    s.table(&t);
    s.para(
        "While a socket-activated service restarts, its listening socket stays open in the daemon: new \
         connections wait in the backlog and the next run accepts them. A service that binds its own port \
         has no listener between the old run's exit and the new run's bind, so connections are refused then, \
         and the ones already queued on the old listener are reset when it closes.",
    );
    let lost = web.refused + web.reset;
    s.verdicts.push(Verdict::new(
        "16",
        &format!("0 refused or reset during {restarts} restarts (socket activation)"),
        format!("{lost} lost of {} (own port: {} lost)", web.ok + lost, own.refused + own.reset),
        Some(lost == 0 && web.ok > 0),
    ));
    Ok(s)
}

/// Writes the section into BENCHMARKS.md (or `out`), replacing its own.
pub fn write(sec: &Section, out: Option<PathBuf>) -> Result<PathBuf, String> {
    let path = out.unwrap_or_else(|| crate::tools::workspace().join("BENCHMARKS.md"));
    let doc = std::fs::read_to_string(&path).unwrap_or_default();
    std::fs::write(&path, crate::soak::splice(&doc, sec)).map_err(|e| format!("writing {}: {e}", path.display()))?;
    Ok(path)
}

/// This section of an existing BENCHMARKS.md, for `all` to keep.
pub fn kept_section(doc: &str) -> Option<String> {
    let at = doc.find(&format!("## {TITLE}\n"))?;
    let rest = &doc[at..];
    let end = rest[1..].find("\n## ").map_or(rest.len(), |e| e + 2);
    Some(rest[..end].to_string())
}
