//! 12: the fleet on loopback. A real etcd and five `corral up` daemons,
//! each its own node; the time from `corral fleet apply` to every node
//! running the changed service (no canary), read from the daemons' own
//! event timestamps; and the writes a steady fleet makes (etcd's revision
//! moves with every write; lease keep-alives do not move it).

use crate::daemons::{run_cli, spawn_logged, temp_dir};
use crate::report::{Section, Table, Verdict};
use crate::stats::{secs, Samples};
use crate::Opts;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

const NODES: usize = 5;
const WAIT: Duration = Duration::from_secs(60);

pub fn run(opts: &Opts) -> Result<Section, String> {
    if Command::new("etcd").arg("--version").output().is_err() {
        return Err("etcd is not installed (Debian: apt-get install etcd-server)".into());
    }
    let mut world =
        World { dir: temp_dir("fleet")?, etcd: None, daemons: Vec::new(), corral: opts.bins.corral.clone() };
    let (client, peer, metrics) = (free_port()?, free_port()?, free_port()?);
    let url = format!("http://127.0.0.1:{client}");
    let mut etcd = Command::new("etcd");
    etcd.args(["--name", "bench", "--data-dir"])
        .arg(world.dir.join("etcd"))
        .args(["--listen-client-urls", &url, "--advertise-client-urls", &url])
        .args(["--listen-peer-urls", &format!("http://127.0.0.1:{peer}")])
        .args(["--initial-advertise-peer-urls", &format!("http://127.0.0.1:{peer}")])
        .args(["--initial-cluster", &format!("bench=http://127.0.0.1:{peer}")])
        .args(["--listen-metrics-urls", &format!("http://127.0.0.1:{metrics}")])
        .args(["--logger", "zap", "--log-outputs", "stderr", "--log-level", "error"]);
    world.etcd = Some(spawn_logged(&mut etcd, &world.dir.join("etcd.log"))?);
    wait_for(|| http_get(metrics, "/health").is_some_and(|b| b.contains("\"health\":\"true\"")), "etcd healthy")?;
    for i in 1..=NODES {
        let node = world.dir.join(format!("n{i}"));
        std::fs::create_dir(&node).map_err(|e| e.to_string())?;
        let toml = format!(
            "[daemon]\nstate_dir = \"state\"\nwatch_config = false\n\n[fleet]\nendpoints = [\"{url}\"]\ncluster = \"bench\"\nnode = \"n{i}\"\n"
        );
        std::fs::write(node.join("corral.toml"), toml).map_err(|e| e.to_string())?;
        let mut up = Command::new(&world.corral);
        up.args(["up", "--quiet", "-c"]).arg(node.join("corral.toml"));
        world.daemons.push((node.clone(), spawn_logged(&mut up, &node.join("up.log"))?));
    }
    for (node, _) in &world.daemons {
        wait_for(|| cli(&world.corral, &["status", "-c"], Some(&node.join("corral.toml")), &world.dir), "daemon up")?;
    }
    let rounds = if opts.quick { 5 } else { 20 };
    let mut lat = Samples::default();
    let spec = world.dir.join("services.toml");
    for round in 0..rounds {
        let text = format!(
            "[services.web]\ncommand = [{:?}, \"--sleep\", \"600\"]\nenv = {{ ROUND = \"{round}\" }}\nstop = {{ grace = \"2s\" }}\n",
            opts.bins.testkit.display().to_string()
        );
        std::fs::write(&spec, text).map_err(|e| e.to_string())?;
        let t0 = now_ms();
        let apply = ["fleet", "apply", "--endpoints", &url, "--cluster", "bench", "-f"];
        if !cli(&world.corral, &apply, Some(&spec), &world.dir) {
            return Err("corral fleet apply failed (see cli.log)".into());
        }
        let mut last = 0;
        for (node, _) in &world.daemons {
            let events = node.join("state/events.jsonl");
            let mut at = None;
            wait_for(
                || {
                    at = running_since(&events, t0);
                    at.is_some()
                },
                "web running on every node",
            )?;
            last = last.max(at.unwrap_or(t0));
        }
        lat.push((last - t0) as f64 / 1000.0);
    }
    // Steady state: nothing changes, so nothing but keep-alives may happen.
    let window = if opts.quick { Duration::from_secs(10) } else { Duration::from_secs(60) };
    // First the last round settles (old instances stop, new ones report
    // ready): the revision holds still for 2 s, within a bound.
    let mut last = revision(metrics).ok_or("no revision in etcd's metrics")?;
    let (mut still, end) = (Instant::now(), Instant::now() + WAIT);
    while still.elapsed() < Duration::from_secs(2) && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(200));
        let now = revision(metrics).ok_or("no revision in etcd's metrics")?;
        if now != last {
            (last, still) = (now, Instant::now());
        }
    }
    let before = revision(metrics).ok_or("no revision in etcd's metrics")?;
    std::thread::sleep(window);
    let after = revision(metrics).ok_or("no revision in etcd's metrics")?;
    let per_node_min = (after - before) as f64 / NODES as f64 / (window.as_secs_f64() / 60.0);

    let mut s = Section::new("12. Fleet: apply to running on 5 nodes, and a steady fleet's writes");
    s.para(&format!(
        "A real etcd and {NODES} `corral up` daemons on loopback (each its own node). Each round changes \
         one service with `corral fleet apply` (no canary); the time runs from just before the apply to \
         the last node's `running` event for the new spec (the daemons' own timestamps). {rounds} rounds. \
         Then {:.0} s with nothing changing: etcd's revision moves with every write, and keep-alives do \
         not move it.",
        window.as_secs_f64()
    ));
    let mut t = Table::new(&["measure", "p50", "p90", "min", "max"]);
    t.row(vec![
        format!("apply → {NODES} nodes running the new spec"),
        secs(lat.median()),
        secs(lat.quantile(0.9)),
        secs(lat.min()),
        secs(lat.max()),
    ]);
    s.table(&t);
    s.para(&format!(
        "Steady state: {} write(s) in {:.0} s = {per_node_min:.2} per node per minute.",
        after - before,
        window.as_secs_f64()
    ));
    s.verdicts.push(Verdict::new(
        "12 fleet apply → 5 nodes running (p50)",
        "< 300 ms",
        secs(lat.median()),
        Some(lat.median() < 0.3),
    ));
    s.verdicts.push(Verdict::new(
        "12 steady fleet: writes per node per minute",
        "0 besides keep-alives",
        format!("{per_node_min:.2}"),
        Some(after == before),
    ));
    Ok(s)
}

/// Everything this part started, stopped (by pid) and removed on drop.
struct World {
    dir: PathBuf,
    etcd: Option<Child>,
    daemons: Vec<(PathBuf, Child)>,
    corral: PathBuf,
}

impl Drop for World {
    fn drop(&mut self) {
        for (node, child) in self.daemons.drain(..) {
            let _ = cli(&self.corral, &["down", "-c"], Some(&node.join("corral.toml")), &self.dir);
            // Killed (by pid) and reaped if `down` did not end it.
            let _ = crate::daemons::wait_child(child, Duration::from_secs(10));
        }
        if let Some(mut e) = self.etcd.take() {
            let _ = e.kill();
            let _ = e.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn cli(corral: &Path, args: &[&str], path: Option<&Path>, dir: &Path) -> bool {
    let mut c = Command::new(corral);
    c.args(args);
    if let Some(p) = path {
        c.arg(p);
    }
    run_cli(c, &dir.join("cli.log"), WAIT).is_ok_and(|s| s.success())
}

/// The time of the first `running` of `web` at or after `t0` (ms).
fn running_since(events: &Path, t0: u64) -> Option<u64> {
    let text = std::fs::read_to_string(events).ok()?;
    text.lines().filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok()).find_map(|e| {
        let ms = e["unix_ms"].as_u64()?;
        (e.get("kind").is_none() && e["service"] == "web" && e["to"] == "running" && ms >= t0).then_some(ms)
    })
}

fn revision(metrics: u16) -> Option<i64> {
    let body = http_get(metrics, "/metrics")?;
    let line = body.lines().find(|l| l.starts_with("etcd_debugging_mvcc_current_revision "))?;
    line.split_whitespace().nth(1)?.parse::<f64>().ok().map(|v| v as i64)
}

fn http_get(port: u16, path: &str) -> Option<String> {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: x\r\n\r\n").ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    Some(out)
}

fn wait_for(mut f: impl FnMut() -> bool, what: &str) -> Result<(), String> {
    let end = Instant::now() + WAIT;
    while Instant::now() < end {
        if f() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    Err(format!("timed out waiting for {what}"))
}

fn free_port() -> Result<u16, String> {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).map_err(|e| e.to_string())
}

fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_millis() as u64
}
