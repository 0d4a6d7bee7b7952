//! Measure 9, the soak: a daemon supervising 100 services for minutes, one
//! of them crash-looping about 100 times a minute, with a log follower
//! attached the whole time. The daemon's RSS, open fds and threads are
//! sampled every few seconds; the verdict is on flatness (the last third
//! of the run against the first). A long run, not a timed test: it is kept
//! out of `all` and of the test suite (issue 10).

use crate::daemons::{run_cli, spawn_logged, temp_dir, wait_child};
use crate::report::{Section, Table, Verdict};
use crate::svg::{self, Series};
use crate::sys;
use crate::Opts;
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Services in all, the crash-looper included.
const SERVICES: usize = 100;
/// The crash-looper's fixed restart delay: with its own run and the restart
/// itself, about 1,000 restarts in 10 minutes.
const CRASH_DELAY_MS: u64 = 550;
/// The most minutes a soak may ask for: a day.
pub const MAX_MINUTES: u64 = 24 * 60;

/// One sample of the daemon.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct Sample {
    at_s: f64,
    rss: u64,
    fds: u64,
    threads: u64,
    restarts: u64,
}

/// Whether a curve is flat: the median of its last third is within
/// `slack` (a fraction) plus `floor` (an absolute margin) of the median of
/// its first third. Medians, not maxima: a sample that falls on the
/// crash-looper's spawn sees its pipes and monitor thread for a moment; a
/// leak moves the median, such a spike does not. Pure, so its edges are
/// unit-tested.
fn flat(values: &[f64], slack: f64, floor: f64) -> Option<(f64, f64, bool)> {
    let third = values.len() / 3;
    if third == 0 {
        return None;
    }
    let median = |v: &[f64]| {
        let mut v = v.to_vec();
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let (first, last) = (median(&values[..third]), median(&values[values.len() - third..]));
    Some((first, last, last <= first * (1.0 + slack) + floor))
}

/// The sampling period for a run of `minutes`: every 5 s, at least 12
/// samples.
fn period(minutes: u64) -> Duration {
    Duration::from_millis((minutes * 60_000 / 12).clamp(1_000, 5_000))
}

pub fn run(opts: &Opts, minutes: u64) -> Result<Section, String> {
    let dir = temp_dir("soak")?;
    let r = soak(opts, &dir, minutes);
    let _ = std::fs::remove_dir_all(&dir);
    r
}

fn soak(opts: &Opts, dir: &Path, minutes: u64) -> Result<Section, String> {
    let run = Duration::from_secs(minutes * 60);
    // Sleepers outlive the run, so none restarts by itself, and still end
    // by themselves should everything else fail.
    let life = run.as_secs() + 300;
    let config = dir.join("corral.toml");
    std::fs::write(&config, config_text(life)).map_err(|e| e.to_string())?;
    let mut daemon = Daemon::start(&opts.bins.corral, dir, &config)?;
    daemon.wait_running(SERVICES, Duration::from_secs(120))?;

    let follower = Follower::attach(&dir.join("state").join("corral.sock"))?;
    let every = period(minutes);
    eprintln!(
        "corral-bench soak: {SERVICES} services, 1 crash-looping, a follower attached; {minutes} min, a sample every {} s",
        every.as_secs_f64()
    );
    let start = Instant::now();
    let mut samples = Vec::new();
    loop {
        let s = daemon.sample(start)?;
        eprintln!(
            "  {:>6.0} s  RSS {:>6.1} MiB  fds {:>4}  threads {:>3}  restarts {:>5}",
            s.at_s,
            s.rss as f64 / 1048576.0,
            s.fds,
            s.threads,
            s.restarts
        );
        samples.push(s);
        if start.elapsed() >= run {
            break;
        }
        std::thread::sleep(every.min(run.saturating_sub(start.elapsed())).max(Duration::from_millis(10)));
    }
    let (read, skipped) = follower.detach();
    let left = daemon.stop();
    Ok(section(minutes, &samples, read, skipped, left))
}

fn config_text(life: u64) -> String {
    let mut s = String::from("[daemon]\nstate_dir = \"state\"\nwatch_config = false\n");
    for i in 0..SERVICES - 1 {
        s.push_str(&format!(
            "\n[services.s{i}]\ncommand = [\"/bin/sh\", \"-c\", \"exec sleep {life}\"]\nrestart = \"always\"\n"
        ));
    }
    s.push_str(&format!(
        "\n[services.crasher]\n\
         command = [\"/bin/sh\", \"-c\", \"echo crash $$; echo crash $$ on stderr >&2; exit 1\"]\n\
         restart = \"always\"\n\
         backoff = {{ initial = \"{CRASH_DELAY_MS}ms\", max = \"{CRASH_DELAY_MS}ms\", factor = 1.0, jitter = 0.0 }}\n\
         start_limit = {{ burst = 100, interval = \"1s\" }}\n"
    ));
    s
}

/// `corral up -q` on the soak's config, and its CLI (the dashboard part
/// uses it too).
pub(crate) struct Daemon {
    bin: PathBuf,
    dir: PathBuf,
    config: PathBuf,
    child: Option<Child>,
}

impl Daemon {
    pub(crate) fn start(bin: &Path, dir: &Path, config: &Path) -> Result<Daemon, String> {
        let mut cmd = Command::new(bin);
        cmd.args(["up", "--quiet", "-c"]).arg(config);
        let child = spawn_logged(&mut cmd, &dir.join("up.log"))?;
        Ok(Daemon { bin: bin.into(), dir: dir.into(), config: config.into(), child: Some(child) })
    }

    pub(crate) fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    fn status(&self) -> Result<serde_json::Value, String> {
        let out = Command::new(&self.bin)
            .args(["status", "--json", "-c"])
            .arg(&self.config)
            .output()
            .map_err(|e| format!("corral status: {e}"))?;
        if !out.status.success() {
            return Err(format!("corral status: {}", String::from_utf8_lossy(&out.stderr).trim()));
        }
        serde_json::from_slice(&out.stdout).map_err(|e| format!("corral status --json: {e}"))
    }

    pub(crate) fn wait_running(&self, n: usize, timeout: Duration) -> Result<(), String> {
        let deadline = Instant::now() + timeout;
        let mut last = String::from("no answer");
        while Instant::now() < deadline {
            match self.status() {
                Ok(v) => {
                    let running = v["instances"].as_array().map_or(0, |a| {
                        a.iter().filter(|i| i["pid"].is_u64() || i["restarts"].as_u64() > Some(0)).count()
                    });
                    if running >= n {
                        return Ok(());
                    }
                    last = format!("{running} of {n} started");
                }
                Err(e) => last = e,
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        Err(format!("the services did not all start within {timeout:?}: {last}"))
    }

    fn sample(&self, start: Instant) -> Result<Sample, String> {
        let pid = self.pid();
        let rss = sys::memory(pid).map_err(|e| format!("the daemon's memory: {e}"))?.rss;
        let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).map_err(|e| e.to_string())?.count() as u64;
        let threads = std::fs::read_dir(format!("/proc/{pid}/task")).map_err(|e| e.to_string())?.count() as u64;
        let status = self.status()?;
        let restarts = status["instances"]
            .as_array()
            .and_then(|a| a.iter().find(|i| i["service"] == "crasher"))
            .and_then(|i| i["restarts"].as_u64())
            .unwrap_or(0);
        Ok(Sample { at_s: start.elapsed().as_secs_f64(), rss, fds, threads, restarts })
    }

    /// `corral down`; returns how many processes of the daemon's tree were
    /// still alive after it (killed by pidfd then).
    pub(crate) fn stop(&mut self) -> usize {
        let Some(child) = self.child.take() else { return 0 };
        let tree = descendants(child.id());
        let fds = sys::open_all(&tree).unwrap_or_default();
        let mut down = Command::new(&self.bin);
        down.args(["down", "-c"]).arg(&self.config);
        let _ = run_cli(down, &self.dir.join("cli.log"), Duration::from_secs(60));
        if wait_child(child, Duration::from_secs(30)).is_none() {
            eprintln!("corral-bench soak: corral up did not exit after `corral down`; killed it");
        }
        let alive: Vec<sys::Pidfd> = fds.into_iter().filter(|f| !f.exited()).collect();
        sys::kill_and_reap(&alive);
        alive.len()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Every process under `pid`, by `/proc/PID/task/*/children`.
fn descendants(pid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    let mut todo = vec![pid];
    while let Some(p) = todo.pop() {
        let kids = sys::children(p);
        out.extend(&kids);
        todo.extend(kids);
    }
    out
}

/// `GET /v1/logs?follow=true` of every service, read and counted on a
/// thread for the whole run.
struct Follower {
    stop: Arc<AtomicBool>,
    /// Lines read so far.
    read: Arc<AtomicU64>,
    thread: std::thread::JoinHandle<u64>,
}

impl Follower {
    fn attach(sock: &Path) -> Result<Follower, String> {
        let mut s = UnixStream::connect(sock).map_err(|e| format!("connecting to {}: {e}", sock.display()))?;
        s.set_read_timeout(Some(Duration::from_millis(500))).map_err(|e| e.to_string())?;
        write!(s, "GET /v1/logs?follow=true&n=0 HTTP/1.1\r\nhost: corral\r\n\r\n").map_err(|e| e.to_string())?;
        let stop = Arc::new(AtomicBool::new(false));
        let read = Arc::new(AtomicU64::new(0));
        let (st, rd) = (stop.clone(), read.clone());
        let thread = std::thread::spawn(move || {
            let mut buf = vec![0u8; 64 * 1024];
            let mut skipped = 0u64;
            // A marker split across two reads is missed; it is counted
            // for the report, not relied on.
            while !st.load(Ordering::Relaxed) {
                match s.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => {
                        rd.fetch_add(log_lines(&buf[..n]), Ordering::Relaxed);
                        skipped += String::from_utf8_lossy(&buf[..n]).matches("-- skipped ").count() as u64;
                    }
                    Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {}
                    Err(_) => break,
                }
            }
            skipped
        });
        Ok(Follower { stop, read, thread })
    }

    /// Lines read, and the `skipped` markers seen.
    fn detach(self) -> (u64, u64) {
        self.stop.store(true, Ordering::Relaxed);
        let skipped = self.thread.join().unwrap_or(0);
        (self.read.load(Ordering::Relaxed), skipped)
    }
}

/// Log lines (`<label> | <line>`) in a read; the chunked encoding's own
/// line breaks are not counted. A line cut between two reads may be missed.
fn log_lines(bytes: &[u8]) -> u64 {
    bytes.windows(3).filter(|w| w == b" | ").count() as u64
}

fn section(minutes: u64, samples: &[Sample], read: u64, skipped: u64, left: usize) -> Section {
    let mut sec = Section::new("9. soak");
    let last = samples.last().copied().unwrap_or_default();
    sec.para(&format!(
        "`corral-bench soak --minutes {minutes}`: one `corral up` supervising {SERVICES} services for {minutes} min: \
         {} sleepers and one that prints two lines and exits 1, restarted after a fixed {CRASH_DELAY_MS} ms \
         ({} restarts in this run). A follower (`GET /v1/logs?follow=true`, every service) stays attached and \
         reads all the time ({read} lines read, {skipped} `skipped` marker(s)). The daemon's RSS (`smaps_rollup`), \
         open fds (`/proc/PID/fd`) and threads are sampled {} times. Flat means: the median of the last \
         third of the run is within 10 % (RSS; plus 1 MiB) or 2 (fds, threads) of the median of the first \
         third (medians: a sample may fall on the crash-looper's spawn). Not part of `all` (it takes minutes); the lead's reference run is 10 minutes.",
        SERVICES - 1,
        last.restarts,
        samples.len(),
    ));
    let mut t = Table::new(&["t", "RSS", "fds", "threads", "restarts"]);
    let step = (samples.len() / 12).max(1);
    for (i, s) in samples.iter().enumerate() {
        if i % step == 0 || i + 1 == samples.len() {
            t.row(vec![
                format!("{:.0} s", s.at_s),
                format!("{:.1} MiB", s.rss as f64 / 1048576.0),
                s.fds.to_string(),
                s.threads.to_string(),
                s.restarts.to_string(),
            ]);
        }
    }
    sec.table(&t);
    let col = |f: fn(&Sample) -> f64| samples.iter().map(f).collect::<Vec<f64>>();
    let mib = 1048576.0;
    let checks = [
        ("RSS", flat(&col(|s| s.rss as f64), 0.10, mib), mib, " MiB"),
        ("fds", flat(&col(|s| s.fds as f64), 0.0, 2.0), 1.0, ""),
        ("threads", flat(&col(|s| s.threads as f64), 0.0, 2.0), 1.0, ""),
    ];
    let mut all_flat = true;
    let mut said = Vec::new();
    for (name, r, unit, suffix) in checks {
        match r {
            Some((first, last, ok)) => {
                all_flat &= ok;
                said.push(format!(
                    "{name} {:.1}{suffix} → {:.1}{suffix} ({})",
                    first / unit,
                    last / unit,
                    if ok { "flat" } else { "GROWS" }
                ));
            }
            None => {
                all_flat = false;
                said.push(format!("{name}: too few samples"));
            }
        }
    }
    if left > 0 {
        said.push(format!("{left} process(es) left after `corral down`"));
    }
    // Each crash prints two lines: a follower that kept up saw them.
    let followed = read >= last.restarts;
    if !followed {
        said.push(format!("the follower read only {read} lines"));
    }
    sec.para(&format!("First third's median → last third's median: {}.", said.join("; ")));
    let series = |label: &str, color: &str, f: fn(&Sample) -> f64| Series {
        label: label.into(),
        color: color.into(),
        dashed: false,
        points: samples.iter().filter(|s| s.at_s > 0.0).map(|s| (s.at_s, f(s))).collect(),
    };
    let plot = svg::log_log_plot(
        &format!("Soak: the daemon over {minutes} min (100 services, a crash loop, a follower)"),
        "seconds into the run",
        "value",
        &[
            series("RSS (MiB)", "#d62728", |s| s.rss as f64 / 1048576.0),
            series("open fds", "#1f77b4", |s| s.fds as f64),
            series("threads", "#2ca02c", |s| s.threads as f64),
            series("restarts (cumulative)", "#7f7f7f", |s| s.restarts.max(1) as f64),
        ],
    );
    sec.files.push(("benchmarks/soak.svg".into(), plot));
    sec.para("![the daemon's RSS, fds and threads during the soak](benchmarks/soak.svg)");
    let restarts_ok = last.restarts as f64 >= 0.8 * 100.0 * minutes as f64;
    sec.verdicts.push(Verdict::new(
        "9",
        "soak: flat RSS, fds and threads under a crash loop (~100 restarts/min) and a follower",
        format!("{}; {} restarts in {minutes} min", said.join("; "), last.restarts),
        Some(all_flat && left == 0 && restarts_ok && followed),
    ));
    sec
}

/// Replaces the section titled like `sec` in a BENCHMARKS.md `doc` (up to
/// the next `## `), or appends it: a soak updates its own section and
/// leaves the rest of the file as `all` wrote it.
pub fn splice(doc: &str, sec: &Section) -> String {
    let head = format!("## {}\n", sec.title);
    let body = sec.markdown();
    match doc.find(&head) {
        Some(at) => {
            let rest = &doc[at + head.len()..];
            let end = rest.find("\n## ").map_or(doc.len(), |e| at + head.len() + e + 1);
            format!("{}{}{}", &doc[..at], body, &doc[end..])
        }
        None => format!("{}\n{}", doc.trim_end(), format_args!("\n\n{body}")),
    }
}

/// The section under `heading` (`## 9. soak`) of an existing
/// BENCHMARKS.md, for `all` to keep.
pub fn kept_section(doc: &str, heading: &str) -> Option<String> {
    let at = doc.find(&format!("{heading}\n"))?;
    let rest = &doc[at..];
    let end = rest[1..].find("\n## ").map_or(rest.len(), |e| e + 2);
    Some(rest[..end].to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flatness_compares_the_last_third_with_the_first() {
        assert_eq!(flat(&[10.0, 12.0, 11.0, 12.0, 11.0, 12.0], 0.0, 0.0), Some((12.0, 12.0, true)));
        assert_eq!(flat(&[10.0, 10.0, 11.0, 12.0, 13.0, 14.0], 0.1, 0.0).map(|r| r.2), Some(false));
        assert_eq!(flat(&[10.0, 10.0, 11.0, 12.0, 13.0, 14.0], 0.5, 0.0).map(|r| r.2), Some(true));
        // One spike at the end is not a leak; a floor that rises is.
        let spike = [709.0, 709.0, 709.0, 709.0, 709.0, 709.0, 709.0, 709.0, 716.0];
        assert_eq!(flat(&spike, 0.0, 2.0), Some((709.0, 709.0, true)));
        let leak = [709.0, 709.0, 709.0, 709.0, 712.0, 715.0, 718.0, 721.0, 724.0];
        assert_eq!(flat(&leak, 0.0, 2.0).map(|r| r.2), Some(false));
        assert_eq!(flat(&[1.0, 2.0], 0.0, 0.0), None, "too few samples decide nothing");
    }

    #[test]
    fn a_soak_replaces_its_own_section_only() {
        let mut sec = Section::new("9. soak");
        sec.para("new");
        let doc = "# b\n\n## 8. logs\n\nx\n\n## 9. soak\n\nold\n\n## 10. z\n\nz\n";
        assert_eq!(splice(doc, &sec), "# b\n\n## 8. logs\n\nx\n\n## 9. soak\n\nnew\n\n## 10. z\n\nz\n");
        let doc = "# b\n\n## 9. soak\n\nold\n";
        assert_eq!(splice(doc, &sec), "# b\n\n## 9. soak\n\nnew\n\n");
        assert_eq!(splice("# b\n", &sec), "# b\n\n\n## 9. soak\n\nnew\n\n");
        assert_eq!(
            kept_section("# b\n\n## 9. soak\n\nold\n\n## 10. z\n", "## 9. soak"),
            Some("## 9. soak\n\nold\n\n".into())
        );
        assert_eq!(kept_section("# b\n\n## 9. soak\n\nold\n", "## 9. soak"), Some("## 9. soak\n\nold\n".into()));
    }

    #[test]
    fn samples_come_every_5_s_and_at_least_12_times() {
        assert_eq!(period(10), Duration::from_secs(5));
        assert_eq!(period(2), Duration::from_secs(5));
        assert_eq!(period(1), Duration::from_secs(5));
        assert_eq!(period(0), Duration::from_secs(1));
    }
}
