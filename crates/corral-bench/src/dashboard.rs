//! Measure 13, the dashboard's cost: a daemon with 100 services and its
//! dashboard on a loopback port, its CPU per minute while nobody looks,
//! and while one dashboard is open. The open dashboard is simulated as the
//! page behaves: it loads the page and its two assets, logs in, keeps the
//! event stream and one followed log open, and every 5 s asks for the
//! instances and the selected instance's tree. The windows alternate, so
//! a drift of the machine falls on both. Also the page's weight: the bytes
//! the daemon serves for it, and what gzip would make of them.

use crate::report::{Section, Table, Verdict};
use crate::soak::Daemon;
use crate::Opts;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// This part's heading in BENCHMARKS.md.
pub const HEADING: &str = "## 13. dashboard";
const SERVICES: usize = 100;
const TOKEN: &str = "bench-dashboard-token-0123456789";
/// The page's refresh period (`PERIOD` in app.js).
const PAGE_PERIOD: Duration = Duration::from_secs(5);
/// One dashboard's cost may be at most this share of a core.
const GOAL_CORE_SHARE: f64 = 0.01;

pub fn run(opts: &Opts) -> Result<Section, String> {
    let dir = crate::daemons::temp_dir("dashboard")?;
    let r = measure(opts, &dir);
    let _ = std::fs::remove_dir_all(&dir);
    r
}

fn measure(opts: &Opts, dir: &Path) -> Result<Section, String> {
    std::fs::write(dir.join("token"), format!("{TOKEN}\n")).map_err(|e| e.to_string())?;
    let mut config = String::from(
        "[daemon]\nstate_dir = \"state\"\nwatch_config = false\n\
         web = { listen = \"127.0.0.1:0\", token_file = \"token\", plain_http = true }\n",
    );
    for i in 0..SERVICES {
        config.push_str(&format!("\n[services.s{i}]\ncommand = [\"/bin/sh\", \"-c\", \"exec sleep 7200\"]\n"));
    }
    let path = dir.join("corral.toml");
    std::fs::write(&path, config).map_err(|e| e.to_string())?;
    let mut daemon = Daemon::start(&opts.bins.corral, dir, &path)?;
    let r = (|| {
        let addr = dashboard_addr(&dir.join("up.log"))?;
        daemon.wait_running(SERVICES, Duration::from_secs(120))?;
        let pid = daemon.pid();
        let window = if opts.quick { Duration::from_secs(10) } else { Duration::from_secs(60) };
        let rounds = if opts.quick { 1 } else { 3 };
        std::thread::sleep(Duration::from_secs(2));
        let weight = page_weight(addr)?;
        let (mut none, mut one) = (Vec::new(), Vec::new());
        for round in 0..rounds {
            eprintln!("corral-bench dashboard: round {}, no dashboard for {} s", round + 1, window.as_secs());
            none.push(cpu_per_minute(pid, window, || Ok(()))?);
            eprintln!("corral-bench dashboard: round {}, one dashboard for {} s", round + 1, window.as_secs());
            let page = Page::open(addr)?;
            one.push(cpu_per_minute(pid, window, || page.tick())?);
            page.close()?;
        }
        Ok(section(&none, &one, window, rounds, &weight))
    })();
    daemon.stop();
    r
}

/// The address in the daemon's `dashboard on http://…/` line.
fn dashboard_addr(log: &Path) -> Result<SocketAddr, String> {
    let end = Instant::now() + Duration::from_secs(60);
    while Instant::now() < end {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        if let Some(rest) = text.split("dashboard on http://").nth(1) {
            let addr = rest.split('/').next().unwrap_or_default();
            return addr.parse().map_err(|e| format!("dashboard address {addr:?}: {e}"));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Err("the daemon never said where its dashboard is".into())
}

/// The daemon's CPU time over `window`, scaled to a minute, in ms; `tick`
/// runs every page period meanwhile.
fn cpu_per_minute(pid: u32, window: Duration, tick: impl Fn() -> Result<(), String>) -> Result<f64, String> {
    let c0 = crate::sys::cpu_time(pid).map_err(|e| e.to_string())?;
    let t0 = Instant::now();
    while t0.elapsed() < window {
        tick()?;
        std::thread::sleep(PAGE_PERIOD.min(window.saturating_sub(t0.elapsed())));
    }
    let c1 = crate::sys::cpu_time(pid).map_err(|e| e.to_string())?;
    Ok((c1 - c0).as_secs_f64() * 1000.0 * 60.0 / t0.elapsed().as_secs_f64())
}

/// One request on a fresh connection; the status and the body.
fn request(addr: SocketAddr, head: &str, body: &str) -> Result<(u16, Vec<u8>), String> {
    let mut s = TcpStream::connect(addr).map_err(|e| format!("connecting to the dashboard: {e}"))?;
    s.set_read_timeout(Some(Duration::from_secs(30))).map_err(|e| e.to_string())?;
    write!(s, "{head}Host: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}", body.len())
        .map_err(|e| e.to_string())?;
    let mut answer = Vec::new();
    s.read_to_end(&mut answer).map_err(|e| e.to_string())?;
    let split = answer.windows(4).position(|w| w == b"\r\n\r\n").ok_or("no HTTP answer")?;
    let status = String::from_utf8_lossy(&answer[..split]).split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    Ok((status, answer[split + 4..].to_vec()))
}

/// The page's files as the daemon serves them: (name, bytes, gzip -9 bytes).
fn page_weight(addr: SocketAddr) -> Result<Vec<(String, usize, usize)>, String> {
    let mut out = Vec::new();
    for path in ["/", "/app.js", "/style.css"] {
        let (status, body) = request(addr, &format!("GET {path} HTTP/1.1\r\n"), "")?;
        if status != 200 {
            return Err(format!("GET {path}: {status}"));
        }
        out.push((path.to_string(), body.len(), gzipped(&body)?));
    }
    Ok(out)
}

fn gzipped(bytes: &[u8]) -> Result<usize, String> {
    let mut gz = std::process::Command::new("gzip")
        .args(["-9", "-c"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| format!("gzip: {e}"))?;
    gz.stdin.take().ok_or("gzip stdin")?.write_all(bytes).map_err(|e| e.to_string())?;
    let out = gz.wait_with_output().map_err(|e| e.to_string())?;
    Ok(out.stdout.len())
}

/// One open dashboard: its session, its two live streams, and its
/// periodic requests.
struct Page {
    addr: SocketAddr,
    cookie: String,
    stop: Arc<AtomicBool>,
    streams: Vec<std::thread::JoinHandle<()>>,
}

impl Page {
    fn open(addr: SocketAddr) -> Result<Page, String> {
        page_weight(addr)?;
        let mut s = TcpStream::connect(addr).map_err(|e| e.to_string())?;
        let form = format!("token={TOKEN}");
        write!(
            s,
            "POST /login HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nOrigin: http://{addr}\r\n\
             Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{form}",
            form.len()
        )
        .map_err(|e| e.to_string())?;
        let mut answer = String::new();
        s.read_to_string(&mut answer).map_err(|e| e.to_string())?;
        let cookie = answer
            .lines()
            .find_map(|l| l.strip_prefix("set-cookie: "))
            .and_then(|c| c.split(';').next())
            .ok_or_else(|| format!("the login set no cookie: {}", answer.lines().next().unwrap_or("")))?
            .to_string();
        let stop = Arc::new(AtomicBool::new(false));
        let mut streams = Vec::new();
        for path in ["/v1/events/stream", "/v1/logs?service=s0&n=200&follow=true"] {
            let mut s = TcpStream::connect(addr).map_err(|e| e.to_string())?;
            s.set_read_timeout(Some(Duration::from_millis(500))).map_err(|e| e.to_string())?;
            write!(s, "GET {path} HTTP/1.1\r\nHost: {addr}\r\nCookie: {cookie}\r\n\r\n").map_err(|e| e.to_string())?;
            let stop = stop.clone();
            streams.push(std::thread::spawn(move || {
                let mut buf = [0u8; 16 * 1024];
                while !stop.load(Ordering::Relaxed) {
                    match s.read(&mut buf) {
                        Ok(0) => break,
                        Ok(_) => {}
                        Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {
                        }
                        Err(_) => break,
                    }
                }
            }));
        }
        let page = Page { addr, cookie, stop, streams };
        page.get("/v1/events?n=50")?;
        Ok(page)
    }

    fn get(&self, path: &str) -> Result<(), String> {
        let (status, _) = request(self.addr, &format!("GET {path} HTTP/1.1\r\nCookie: {}\r\n", self.cookie), "")?;
        if status != 200 {
            return Err(format!("GET {path}: {status}"));
        }
        Ok(())
    }

    /// What the page asks every period.
    fn tick(&self) -> Result<(), String> {
        self.get("/v1/services")?;
        self.get("/v1/services/s0/members?instance=0")
    }

    fn close(self) -> Result<(), String> {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.streams {
            t.join().map_err(|_| "a stream reader panicked".to_string())?;
        }
        Ok(())
    }
}

fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

fn section(none: &[f64], one: &[f64], window: Duration, rounds: usize, weight: &[(String, usize, usize)]) -> Section {
    let mut sec = Section::new("13. dashboard");
    sec.para(&format!(
        "A daemon with {SERVICES} services (`sleep`) and `[daemon] web` on a loopback port. Its CPU time (all \
         threads) over {} s windows, scaled to a minute, with no dashboard and with one open dashboard, \
         alternating, {rounds} round(s). The open dashboard is simulated as the page behaves: the page and its \
         assets, the login, the event stream and one followed log held open, and every {} s the instances \
         (`GET /v1/services`) and the selected instance's tree. Median of the rounds.",
        window.as_secs(),
        PAGE_PERIOD.as_secs()
    ));
    let (n, o) = (median(none), median(one));
    let extra = (o - n).max(0.0);
    let mut t = Table::new(&["daemon, 100 services", "CPU per minute", "share of a core"]);
    t.row(vec!["no dashboard".into(), format!("{n:.0} ms"), format!("{:.2} %", n / 600.0)]);
    t.row(vec!["one dashboard open".into(), format!("{o:.0} ms"), format!("{:.2} %", o / 600.0)]);
    t.row(vec!["the dashboard's own cost".into(), format!("{extra:.0} ms"), format!("{:.2} %", extra / 600.0)]);
    sec.table(&t);
    let mut w = Table::new(&["asset", "bytes", "gzip -9"]);
    for (name, raw, gz) in weight {
        w.row(vec![format!("`{name}`"), raw.to_string(), gz.to_string()]);
    }
    let (raw, gz): (usize, usize) = weight.iter().fold((0, 0), |(a, b), (_, r, g)| (a + r, b + g));
    w.row(vec!["**total**".into(), raw.to_string(), gz.to_string()]);
    sec.para("The page's weight: what the daemon serves for it (embedded in the binary; served uncompressed).");
    sec.table(&w);
    let goal_ms = GOAL_CORE_SHARE * 60_000.0;
    sec.verdicts.push(Verdict::new(
        "dashboard: daemon CPU of one open dashboard, 100 services",
        &format!("≤ {goal_ms:.0} ms per minute (1 % of a core)"),
        format!("{extra:.0} ms per minute ({o:.0} with, {n:.0} without)"),
        Some(extra <= goal_ms),
    ));
    sec
}
