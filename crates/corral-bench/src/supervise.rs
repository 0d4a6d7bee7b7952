//! Measures 3 to 7b: the supervisor daemons, corral's against supervisord
//! and PM2, each from cold with a private config in a temp dir.

use crate::daemons::{self, CorralUp, Fifo, Pm2, Policy, Service, Supervisor, Supervisord};
use crate::probes_on::{self, ProbesOn};
use crate::report::{Section, Table, Verdict};
use crate::smaps;
use crate::stats::{balanced_order, mib, ratio, secs, Samples};
use crate::svg::{self, Spread};
use crate::sys::{self, Pidfd};
use crate::Opts;
use std::collections::HashSet;
use std::time::{Duration, Instant};

/// Which supervisors this machine has; index 0 is always corral.
pub struct Contenders {
    names: Vec<&'static str>,
    missing: Vec<String>,
}

impl Contenders {
    pub fn new(opts: &Opts) -> Contenders {
        let mut names = vec!["corral"];
        let mut missing = Vec::new();
        if opts.peers.supervisord.is_some() {
            names.push("supervisord");
        } else {
            missing.push("supervisord could not be installed (PyPI or apt), so it is not measured".into());
        }
        if opts.peers.pm2.is_some() {
            names.push("PM2");
        } else {
            missing.push("PM2 could not be installed (npm), so it is not measured".into());
        }
        Contenders { names, missing }
    }

    fn make(&self, opts: &Opts, i: usize) -> Result<(Box<dyn Supervisor>, Fifo), String> {
        let name = self.names[i];
        let dir = daemons::temp_dir(&name.to_lowercase())?;
        let fifo = Fifo::create(&dir)?;
        let sup: Box<dyn Supervisor> = match name {
            "corral" => Box::new(CorralUp::new(opts.bins.corral.clone(), dir)),
            "supervisord" => Box::new(Supervisord::new(
                opts.peers.supervisord.clone().unwrap_or_default(),
                opts.peers.supervisorctl.clone().unwrap_or_default(),
                dir,
            )),
            _ => Box::new(Pm2::new(opts.peers.pm2.clone().unwrap_or_default(), dir)),
        };
        Ok((sup, fifo))
    }

    fn label(&self, i: usize) -> String {
        if i == 0 {
            "**corral** (`corral up`)".into()
        } else {
            self.names[i].into()
        }
    }

    fn color(&self, i: usize) -> &'static str {
        match self.names[i] {
            "corral" => "#d62728",
            "supervisord" => "#1f77b4",
            _ => "#2ca02c",
        }
    }

    fn notes(&self, sec: &mut Section) {
        for m in &self.missing {
            sec.para(&format!("**Not measured:** {m}."));
        }
    }
}

fn sleepers(fifo: &Fifo, n: usize, policy: Policy) -> Vec<Service> {
    (0..n).map(|i| Service::shell(&format!("s{i}"), "/bin/sh", &fifo.path, "exec sleep 300", policy)).collect()
}

/// Waits until every service named in `services` has announced itself.
fn wait_all(fifo: &mut Fifo, services: &[Service], timeout: Duration) -> Result<Instant, String> {
    let mut want: HashSet<&str> = services.iter().map(|s| s.name.as_str()).collect();
    let deadline = Instant::now() + timeout;
    let mut last = Instant::now();
    while !want.is_empty() {
        let left = deadline.saturating_duration_since(Instant::now());
        let s = fifo.next(left).ok_or_else(|| format!("{} service(s) never started", want.len()))?;
        want.remove(s.name.as_str());
        last = s.at;
    }
    Ok(last)
}

// ---------------------------------------------------------------- 3, 4, 5

#[derive(Default, Clone)]
struct Footprint {
    idle_rss: Samples,
    idle_pss: Samples,
    rss: Samples,
    pss: Samples,
    rss_after: Samples,
    /// Threads of the daemon with 100 services, after the idle window.
    threads: Samples,
    /// The most threads seen while sampling through the idle window.
    threads_max: Samples,
    cpu_per_30s: Samples,
    start: Samples,
}

/// Measures 3 (memory), 4 (idle CPU) and 5 (start time), one run each.
pub fn footprint(opts: &Opts) -> Result<Section, String> {
    let c = Contenders::new(opts);
    let rounds = if opts.quick { 1 } else { 3 };
    let window = if opts.quick { Duration::from_secs(4) } else { Duration::from_secs(30) };
    let settle = if opts.quick { Duration::from_millis(1000) } else { Duration::from_secs(3) };
    let n = 100;
    // More contenders than there are daemons: corral again, with a
    // liveness probe on every service, one row per kind (the peers have no
    // probes). Rows from `health` on are these.
    let health = c.names.len();
    let probes_on = |k: usize| k.checked_sub(health).map(|j| ProbesOn::ALL[j]);
    let rows = health + ProbesOn::ALL.len();
    let mut res = vec![Footprint::default(); rows];
    // What corral's RSS with 100 services is made of (its last round).
    let mut parts = None;
    for round in 0..rounds {
        for k in balanced_order(rows, round) {
            let on = probes_on(k);
            let i = if on.is_some() { 0 } else { k };
            let name = on.map_or(c.names[i], ProbesOn::name);
            eprintln!("corral-bench footprint: round {}, {name}", round + 1);
            // Idle: no services (once per daemon).
            if on.is_none() {
                let (mut sup, _fifo) = c.make(opts, i)?;
                sup.launch(&[])?;
                sup.wait_ready(Duration::from_secs(30))?;
                std::thread::sleep(settle);
                let pid = sup.daemon_pid().ok_or("no daemon pid")?;
                let m = sys::memory(pid).map_err(|e| format!("{name} memory: {e}"))?;
                res[k].idle_rss.push(m.rss as f64);
                res[k].idle_pss.push(m.pss as f64);
                sup.shutdown();
            }
            // 100 services.
            let (mut sup, mut fifo) = c.make(opts, i)?;
            let services = match on {
                Some(p) => p.services(opts, &fifo, n)?,
                None => sleepers(&fifo, n, Policy::Defaults),
            };
            let t0 = Instant::now();
            sup.launch(&services)?;
            let done = wait_all(&mut fifo, &services, Duration::from_secs(60))?;
            res[k].start.push_duration(done - t0);
            sup.wait_ready(Duration::from_secs(30))?;
            std::thread::sleep(settle);
            let pid = sup.daemon_pid().ok_or("no daemon pid")?;
            let m = sys::memory(pid).map_err(|e| format!("{name} memory: {e}"))?;
            res[k].rss.push(m.rss as f64);
            res[k].pss.push(m.pss as f64);
            if k == 0 {
                parts = Some(smaps::breakdown(pid).map_err(|e| format!("{name} smaps: {e}"))?);
            }
            let cpu0 = sys::cpu_time(pid).map_err(|e| e.to_string())?;
            let w0 = Instant::now();
            // Probes run every 10 s: a shorter (quick) window may see none.
            let span = if on.is_some() { window.max(probes_on::PERIOD) } else { window };
            let most = sys::threads_most(pid, span).map_err(|e| format!("{name} threads: {e}"))?;
            res[k].threads_max.push(most as f64);
            let cpu1 = sys::cpu_time(pid).map_err(|e| e.to_string())?;
            let per30 = (cpu1 - cpu0).as_secs_f64() * 30.0 / w0.elapsed().as_secs_f64();
            res[k].cpu_per_30s.push(per30);
            let m = sys::memory(pid).map_err(|e| format!("{name} memory: {e}"))?;
            res[k].rss_after.push(m.rss as f64);
            res[k].threads.push(sys::threads(pid).map_err(|e| format!("{name} threads: {e}"))? as f64);
            sup.shutdown();
            fifo.kill_leftovers();
        }
    }

    let mut sec = Section::new("3–5. supervisor daemon: memory, idle CPU, start of 100 services");
    sec.para(&format!(
        "Each daemon starts cold with a private config. **3:** RSS and PSS of the daemon process from \
         `/proc/PID/smaps_rollup`, {}s after start, with no services and with 100 services (`sh -c 'echo … > fifo; \
         exec sleep 300'`), and RSS again after the idle window (threads a daemon used only to start things may \
         have ended by then). **4:** the daemon's CPU time (its CPU clock, all threads) over a {} s idle window with the \
         100 services running, scaled to 30 s; health checks off, and for corral also on (see 4b below; neither \
         peer has built-in probes). **Threads:** the \
         daemon's entries in `/proc/PID/task`, counted every {} ms through the idle window: the most seen, and the \
         count at its end. **5:** from launching the daemon until all 100 services have announced themselves on a \
         FIFO (their own process has started). {} round(s), contenders interleaved.",
        settle.as_secs_f64(),
        window.as_secs(),
        sys::THREADS_EVERY.as_millis(),
        rounds
    ));
    c.notes(&mut sec);
    let mut t = Table::new(&[
        "daemon",
        "RSS idle",
        "PSS idle",
        "RSS, 100 services",
        "PSS, 100 services",
        "RSS, 100, after the window",
        "threads, 100: most / at the end",
        "CPU per 30 s idle",
        "start 100 (median)",
        "start 100 (min–max)",
        "start × corral",
    ]);
    let cs = res[0].start.median();
    for (i, r) in res.iter().enumerate() {
        let label = probes_on(i).map_or_else(|| c.label(i), |p| p.label().to_string());
        let idle = |v: &Samples| if i >= health { "(as above)".to_string() } else { mib(v.median()) };
        t.row(vec![
            label,
            idle(&r.idle_rss),
            idle(&r.idle_pss),
            mib(r.rss.median()),
            mib(r.pss.median()),
            mib(r.rss_after.median()),
            format!("{:.0} / {:.0}", r.threads_max.median(), r.threads.median()),
            secs(r.cpu_per_30s.median()),
            secs(r.start.median()),
            format!("{}–{}", secs(r.start.min()), secs(r.start.max())),
            ratio(r.start.median(), cs),
        ]);
    }
    sec.table(&t);
    let mut ratios = Table::new(&["peer", "RSS (100) peer / corral", "CPU peer / corral", "start peer / corral"]);
    for (i, r) in res.iter().enumerate().take(health).skip(1) {
        ratios.row(vec![
            c.label(i),
            ratio(r.rss.median(), res[0].rss.median()),
            ratio(r.cpu_per_30s.median(), res[0].cpu_per_30s.median()),
            ratio(r.start.median(), cs),
        ]);
    }
    sec.table(&ratios);
    if let Some(p) = &parts {
        sec.para(smaps::ABOUT);
        sec.table(&smaps::table(p));
    }
    let rss = res[0].rss.median();
    let after = res[0].rss_after.median();
    sec.verdicts.push(Verdict::new(
        "3",
        "daemon RSS ≤ 8 MiB with 100 services",
        format!(
            "{} {}s after start (PSS {}); {} after the {} s idle window",
            mib(rss),
            settle.as_secs_f64(),
            mib(res[0].pss.median()),
            mib(after),
            window.as_secs()
        ),
        Some(rss.max(after) <= 8.0 * 1024.0 * 1024.0),
    ));
    // Probes on: the most of any probes-on row.
    let most_on = |f: fn(&Footprint) -> &Samples| res[health..].iter().map(|r| f(r).median()).fold(0.0, f64::max);
    let off = &res[0];
    let threads =
        [off.threads.median(), off.threads_max.median(), most_on(|r| &r.threads), most_on(|r| &r.threads_max)];
    sec.verdicts.push(Verdict::new(
        "3",
        "daemon threads ≤ 8 with 100 services (`/proc/PID/task`)",
        format!(
            "most {:.0}, at the end {:.0} (health off); most {:.0}, at the end {:.0} (probes on)",
            threads[1], threads[0], threads[3], threads[2]
        ),
        Some(threads.iter().all(|&t| t <= 8.0)),
    ));
    let sv = c.names.iter().position(|&n| n == "supervisord");
    let cpu = res[0].cpu_per_30s.median();
    sec.verdicts.push(Verdict::new(
        "4",
        "idle CPU with 100 services ≤ supervisord's",
        match sv {
            Some(k) => format!("{} vs {} per 30 s", secs(cpu), secs(res[k].cpu_per_30s.median())),
            None => format!("{} per 30 s; supervisord missing", secs(cpu)),
        },
        sv.map(|k| cpu <= res[k].cpu_per_30s.median()),
    ));
    let on: Vec<f64> = res[health..].iter().map(|r| r.cpu_per_30s.median()).collect();
    probes_on::judge(&mut sec, &on, cpu, sv.map(|k| res[k].cpu_per_30s.median()));
    sec.verdicts.push(Verdict::new("5", "start 100 services ≤ 0.3 s", secs(cs), Some(cs <= 0.3)));
    Ok(sec)
}

// ---------------------------------------------------------------- 6

/// Measure 6: SIGKILL the service from outside, time until its new pid runs.
pub fn restart(opts: &Opts) -> Result<Section, String> {
    let c = Contenders::new(opts);
    let (rounds, per_round) = if opts.quick { (1, 5) } else { (4, 5) };
    let mut res = vec![Samples::default(); c.names.len()];
    let mut fails = vec![0usize; c.names.len()];
    for round in 0..rounds {
        for i in balanced_order(c.names.len(), round) {
            eprintln!("corral-bench restart: round {}, {}", round + 1, c.names[i]);
            let (mut sup, mut fifo) = c.make(opts, i)?;
            let services = vec![Service::shell("s0", "/bin/sh", &fifo.path, "exec sleep 300", Policy::Immediate)];
            sup.launch(&services)?;
            let mut cur = fifo.next(Duration::from_secs(30)).ok_or("the service never started")?;
            sup.wait_ready(Duration::from_secs(30))?;
            for _ in 0..per_round {
                // Let the run settle, so that no tool counts it as a failed start.
                std::thread::sleep(Duration::from_millis(300));
                let fd = Pidfd::open(cur.pid).map_err(|e| e.to_string())?;
                let t0 = Instant::now();
                fd.signal(libc::SIGKILL).map_err(|e| e.to_string())?;
                match fifo.next(Duration::from_secs(10)) {
                    Some(s) => {
                        res[i].push_duration(s.at - t0);
                        cur = s;
                    }
                    None => {
                        fails[i] += 1;
                        break;
                    }
                }
            }
            sup.shutdown();
            fifo.kill_leftovers();
        }
    }
    let mut sec = Section::new("6. restart latency after an external SIGKILL");
    sec.para(&format!(
        "One service (`exec sleep 300`), restart at once (corral: `backoff = {{ initial = \"0s\" }}`; supervisord: \
         `autorestart`, `startsecs=0`; PM2: `restart_delay: 0`). The bench SIGKILLs the service's pid and times until \
         the new process announces itself. {} kills per daemon in {} round(s), 300 ms apart.",
        rounds * per_round,
        rounds
    ));
    c.notes(&mut sec);
    let mut t = Table::new(&["daemon", "p50", "p90", "min–max", "no restart within 10 s", "p50 × corral"]);
    let base = res[0].median();
    for (i, s) in res.iter().enumerate() {
        t.row(vec![
            c.label(i),
            secs(s.median()),
            secs(s.quantile(0.9)),
            format!("{}–{}", secs(s.min()), secs(s.max())),
            fails[i].to_string(),
            ratio(s.median(), base),
        ]);
    }
    sec.table(&t);
    let spreads: Vec<Spread> = res
        .iter()
        .enumerate()
        .map(|(i, s)| Spread {
            label: c.names[i].into(),
            color: c.color(i).into(),
            p50: s.median() * 1e3,
            p90: s.quantile(0.9) * 1e3,
            min: s.min() * 1e3,
            max: s.max() * 1e3,
        })
        .collect();
    let plot = svg::spread_plot(
        "Restart latency after an external SIGKILL",
        "ms until the new process announced itself",
        "ms",
        &spreads,
    );
    sec.files.push(("benchmarks/restart-latency.svg".into(), plot));
    sec.para("![restart latency: p50, p90 and min–max per daemon](benchmarks/restart-latency.svg)");
    sec.verdicts.push(Verdict::new(
        "6",
        "restart p50 ≤ 2 ms",
        format!("p50 {}, p90 {}", secs(base), secs(res[0].quantile(0.9))),
        Some(base <= 0.002 && fails[0] == 0),
    ));
    Ok(sec)
}

// ---------------------------------------------------------------- 7

/// Measure 7: stop a service whose tree has a background and a setsid child.
pub fn stop(opts: &Opts) -> Result<Section, String> {
    let c = Contenders::new(opts);
    let rounds = if opts.quick { 1 } else { 5 };
    let mut time = vec![Samples::default(); c.names.len()];
    let mut cli = vec![Samples::default(); c.names.len()];
    let mut survivors = vec![Vec::new(); c.names.len()];
    for round in 0..rounds {
        for i in balanced_order(c.names.len(), round) {
            eprintln!("corral-bench stop: round {}, {}", round + 1, c.names[i]);
            let (mut sup, mut fifo) = c.make(opts, i)?;
            let services = vec![Service::shell(
                "s0",
                "/bin/bash",
                &fifo.path,
                "sleep 30.5 & setsid sleep 30.5 & wait",
                Policy::Defaults,
            )];
            sup.launch(&services)?;
            let s = fifo.next(Duration::from_secs(30)).ok_or("the service never started")?;
            sup.wait_ready(Duration::from_secs(30))?;
            let deadline = Instant::now() + Duration::from_secs(5);
            let mut kids = sys::children(s.pid);
            while kids.len() < 2 && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(5));
                kids = sys::children(s.pid);
            }
            if kids.len() < 2 {
                return Err(format!("{}: the service's two sleeps never appeared", c.names[i]));
            }
            // Past every tool's "started" threshold (supervisord: startsecs=1).
            std::thread::sleep(Duration::from_millis(1200));
            let mut pids = vec![s.pid];
            pids.extend(kids);
            let fds = sys::open_all(&pids).map_err(|e| e.to_string())?;
            let keep = sys::open_all(&pids).map_err(|e| e.to_string())?;
            let log = std::env::temp_dir().join(format!("corral-bench-stop-{}.log", std::process::id()));
            let t0 = Instant::now();
            let mut child = daemons::spawn_logged(&mut sup.stop_cli("s0"), &log)?;
            let mut cli_done: Option<Duration> = None;
            let deaths = sys::wait_deaths_while(
                fds,
                t0,
                || {
                    if cli_done.is_none() {
                        if let Ok(Some(_)) = child.try_wait() {
                            cli_done = Some(t0.elapsed());
                        }
                    }
                    cli_done.is_none()
                },
                Duration::from_secs(1),
                Duration::from_secs(20),
            );
            if cli_done.is_none() {
                cli_done = daemons::wait_child(child, Duration::from_secs(30)).map(|_| t0.elapsed());
            }
            let _ = std::fs::remove_file(&log);
            cli[i].push(cli_done.map_or(f64::NAN, |d| d.as_secs_f64()));
            if let Some(l) = deaths.last {
                time[i].push_duration(l);
            }
            survivors[i].push(deaths.survivors.len());
            sys::kill_and_reap(&deaths.survivors);
            for f in &keep {
                f.reap();
            }
            sup.shutdown();
            fifo.kill_leftovers();
        }
    }
    let mut sec = Section::new("7. tree cleanup when a service is stopped");
    sec.para(&format!(
        "The service is `bash -c 'echo … > fifo; sleep 30.5 & setsid sleep 30.5 & wait'` (bash plus a \
         background child plus a setsid escapee). After it has run 1.2 s, the bench runs the tool's own stop \
         command (`corral stop s0`, `supervisorctl stop s0` with `stopasgroup`/`killasgroup`, `pm2 stop s0` with \
         `treekill`); stop signal TERM with a 5 s grace everywhere. **stop time**: from the command until the last \
         of the three processes died (pidfd); **survivors**: alive 1 s after the command returned. {rounds} round(s)."
    ));
    c.notes(&mut sec);
    let mut t = Table::new(&[
        "daemon",
        "survivors (max of runs)",
        "stop time (median)",
        "min–max",
        "CLI returned after (median)",
    ]);
    for (i, s) in time.iter().enumerate() {
        t.row(vec![
            c.label(i),
            survivors[i].iter().max().copied().unwrap_or(0).to_string(),
            secs(s.median()),
            format!("{}–{}", secs(s.min()), secs(s.max())),
            secs(cli[i].median()),
        ]);
    }
    sec.table(&t);
    let worst = survivors[0].iter().max().copied().unwrap_or(0);
    sec.verdicts.push(Verdict::new(
        "7",
        "0 survivors; stop within what TERM needs",
        format!("{worst} survivors; last process gone after {}", secs(time[0].median())),
        Some(worst == 0 && time[0].median() < 1.0),
    ));
    Ok(sec)
}

// ---------------------------------------------------------------- 7b

/// Measure 7b: a service that exits 1 at once, for a fixed window.
pub fn crashloop(opts: &Opts) -> Result<Section, String> {
    let c = Contenders::new(opts);
    let window = if opts.quick { Duration::from_secs(5) } else { Duration::from_secs(10) };
    let rounds = if opts.quick { 1 } else { 2 };
    let mut starts = vec![Samples::default(); c.names.len()];
    let mut cpu = vec![Samples::default(); c.names.len()];
    for round in 0..rounds {
        for i in balanced_order(c.names.len(), round) {
            eprintln!("corral-bench crashloop: round {}, {}", round + 1, c.names[i]);
            let (mut sup, mut fifo) = c.make(opts, i)?;
            let services = vec![Service::shell("s0", "/bin/sh", &fifo.path, "exit 1", Policy::Defaults)];
            sup.launch(&services)?;
            let first = fifo.next(Duration::from_secs(30)).ok_or("the service never started")?;
            sup.wait_ready(Duration::from_secs(30))?;
            let pid = sup.daemon_pid().ok_or("no daemon pid")?;
            let end = first.at + window;
            let cpu0 = sys::cpu_time(pid).map_err(|e| e.to_string())?;
            let w0 = Instant::now();
            let mut n = 1usize;
            while let Some(s) = fifo.next(end.saturating_duration_since(Instant::now())) {
                if s.at > end {
                    break;
                }
                n += 1;
            }
            let cpu1 = sys::cpu_time(pid).map_err(|e| e.to_string())?;
            let used = (cpu1 - cpu0).as_secs_f64() / w0.elapsed().as_secs_f64();
            starts[i].push(n as f64);
            cpu[i].push(used);
            sup.shutdown();
            fifo.kill_leftovers();
        }
    }
    let mut sec = Section::new("7b. crash loop");
    sec.para(&format!(
        "A service that exits 1 at once (`sh -c 'echo … > fifo; exit 1'`), restart always, each tool's default \
         delay, and a restart budget raised so that none gives up (corral: default backoff 100 ms × 2ⁿ up to 30 s, \
         `start_limit` burst 10⁴ (the most the config allows) per second; supervisord: `autorestart`, default `startsecs=1` and its backoff, `startretries` \
         10⁶; PM2: default `restart_delay` 0, `max_restarts` 10⁶). Starts counted on the FIFO over {} s from the \
         first, the daemon's CPU over the same window. {rounds} round(s).",
        window.as_secs()
    ));
    c.notes(&mut sec);
    let head = format!("starts in {} s", window.as_secs());
    let mut t = Table::new(&["daemon", &head, "daemon CPU (% of a core)", "CPU × corral"]);
    for (i, s) in starts.iter().enumerate() {
        t.row(vec![
            c.label(i),
            format!("{:.0}", s.median()),
            format!("{:.2} %", cpu[i].median() * 100.0),
            ratio(cpu[i].median(), cpu[0].median()),
        ]);
    }
    sec.table(&t);
    let p = cpu[0].median();
    sec.verdicts.push(Verdict::new(
        "7b",
        "crash loop: daemon CPU < 1 % of a core, starts bounded by backoff",
        format!("{:.2} % CPU, {:.0} starts in {} s", p * 100.0, starts[0].median(), window.as_secs()),
        Some(p < 0.01 && starts[0].median() <= 20.0),
    ));
    Ok(sec)
}
