//! Measure 2: kill latency for trees of 10, 100 and 1000 processes, from
//! the kill call until the last process is gone, and the survivors.
//!
//! The tree is the testkit's: direct children with grandchildren, and in
//! two variants half of it escapes, with `setsid` or as daemons re-parented
//! out of the tree by a double fork (what `setsid -f` does). Every process
//! sleeps 30.5 s at most, so nothing outlives a crashed run for long.
//!
//! Each death is timed by polling a pidfd per process. A contender is done
//! when every process is gone, or when nothing has died for `QUIET`: what
//! is still alive then is a survivor (and is killed by pid afterwards).

use crate::report::{Section, Table, Verdict};
use crate::stats::{balanced_order, ratio, secs, Samples};
use crate::svg::{self, Series};
use crate::sys::{self, Pidfd};
use crate::Opts;
use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const QUIET: Duration = Duration::from_millis(250);
const LIMIT: Duration = Duration::from_secs(10);
const SIZES: [usize; 3] = [10, 100, 1000];

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Variant {
    Plain,
    HalfSetsid,
    HalfDaemon,
}

const VARIANTS: [Variant; 3] = [Variant::Plain, Variant::HalfSetsid, Variant::HalfDaemon];

impl Variant {
    fn label(self) -> &'static str {
        match self {
            Variant::Plain => "plain",
            Variant::HalfSetsid => "half setsid",
            Variant::HalfDaemon => "half daemonised",
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Who {
    Killpg,
    ProcessWrap,
    Processkit,
    KillTree,
    Corral,
}

const ALL: [Who; 5] = [Who::Corral, Who::Killpg, Who::ProcessWrap, Who::Processkit, Who::KillTree];

impl Who {
    fn label(self) -> &'static str {
        match self {
            Who::Killpg => "`killpg` by hand",
            Who::ProcessWrap => "process-wrap",
            Who::Processkit => "processkit",
            Who::KillTree => "kill_tree",
            Who::Corral => "**corral**",
        }
    }
    fn how(self) -> &'static str {
        match self {
            Who::Killpg => "new process group; `killpg(SIGKILL)`",
            Who::ProcessWrap => "`ProcessGroup::leader()`; `start_kill()` (killpg)",
            Who::Processkit => "`ProcessGroup` (cgroup v2); `kill_all()` (`cgroup.kill`)",
            Who::KillTree => "plain spawn; `kill_tree_with_config(SIGKILL)` (walks /proc by ppid)",
            Who::Corral => "`Group::builder().spawn()`; `kill()`",
        }
    }
    fn color(self) -> &'static str {
        match self {
            Who::Corral => "#d62728",
            Who::Killpg => "#1f77b4",
            Who::ProcessWrap => "#2ca02c",
            Who::Processkit => "#9467bd",
            Who::KillTree => "#ff7f0e",
        }
    }
}

/// `c` children with `g` grandchildren each, so that `c * (1 + g)` is close
/// to `n`.
fn shape(n: usize) -> (usize, usize) {
    let c = ((n as f64).sqrt().round() as usize).max(1);
    let g = ((n as f64 / c as f64).round() as usize).max(1) - 1;
    (c, g)
}

/// Testkit arguments for a tree of `size` processes (top included).
fn tree_args(size: usize, v: Variant) -> Vec<String> {
    let escapees_wanted = if v == Variant::Plain { 0 } else { size / 2 };
    let (c, g) = shape(size - 1 - escapees_wanted);
    let escapees = (size - 1).saturating_sub(c * (1 + g));
    let mut a = vec!["--children".into(), c.to_string(), "--grandchildren".into(), g.to_string()];
    match v {
        Variant::Plain => {}
        Variant::HalfSetsid => a.extend(["--setsid".into(), escapees.to_string()]),
        Variant::HalfDaemon => a.extend(["--double-fork".into(), escapees.to_string()]),
    }
    a.extend(["--sleep".into(), "30.5".into()]);
    a
}

enum Handle {
    Std(Child),
    Wrap(Box<dyn process_wrap::std::ChildWrapper>),
    Kit(Box<(processkit::ProcessGroup, tokio::process::Child)>),
    Corral(Box<corral::Group>),
}

struct Trial {
    latency: Option<Duration>,
    call: Duration,
    survivors: usize,
    procs: usize,
    corral_leftover: Option<usize>,
}

fn trial(who: Who, testkit: &Path, args: &[String], rt: &tokio::runtime::Runtime) -> Result<Trial, String> {
    let (reader, writer) = std::io::pipe().map_err(|e| e.to_string())?;
    let mut cmd = Command::new(testkit);
    cmd.args(args).stdin(Stdio::null()).stdout(writer);
    let handle = match who {
        Who::Killpg => {
            cmd.process_group(0);
            Handle::Std(cmd.spawn().map_err(|e| e.to_string())?)
        }
        Who::KillTree => Handle::Std(cmd.spawn().map_err(|e| e.to_string())?),
        Who::ProcessWrap => {
            use process_wrap::std::{CommandWrap, ProcessGroup};
            Handle::Wrap(CommandWrap::from(cmd).wrap(ProcessGroup::leader()).spawn().map_err(|e| e.to_string())?)
        }
        Who::Processkit => {
            let _g = rt.enter();
            let g = processkit::ProcessGroup::new().map_err(|e| e.to_string())?;
            let c = g.spawn(tokio::process::Command::from(cmd)).map_err(|e| e.to_string())?;
            Handle::Kit(Box::new((g, c)))
        }
        Who::Corral => Handle::Corral(Box::new(corral::Group::builder().spawn(cmd).map_err(|e| e.to_string())?)),
    };
    // The command (and its copy of the pipe's write end) is gone; only the
    // tree holds it now.
    let mut line = String::new();
    BufReader::new(reader).read_line(&mut line).map_err(|e| e.to_string())?;
    let ready: serde_json::Value =
        serde_json::from_str(line.trim()).map_err(|e| format!("testkit ready line {line:?}: {e}"))?;
    let top = ready["pid"].as_u64().ok_or("no pid in the ready line")? as u32;
    let mut pids: Vec<u32> = vec![top];
    pids.extend(ready["all"].as_array().into_iter().flatten().filter_map(|p| p.as_u64()).map(|p| p as u32));
    let fds = sys::open_all(&pids).map_err(|e| e.to_string())?;
    let keep: Vec<Pidfd> = sys::open_all(&pids).map_err(|e| e.to_string())?;

    let t0 = Instant::now();
    let r = match &handle {
        Handle::Std(_) if who == Who::Killpg => {
            // SAFETY: killpg with the pgid of the group we created.
            if unsafe { libc::killpg(top as libc::pid_t, libc::SIGKILL) } == 0 {
                Ok(())
            } else {
                Err(std::io::Error::last_os_error().to_string())
            }
        }
        Handle::Std(_) => kill_tree::blocking::kill_tree_with_config(
            top,
            &kill_tree::Config { signal: "SIGKILL".into(), include_target: true },
        )
        .map(|_| ())
        .map_err(|e| e.to_string()),
        Handle::Wrap(_) => Err("unreachable".to_string()),
        Handle::Kit(k) => k.0.kill_all().map_err(|e| e.to_string()),
        Handle::Corral(g) => g.kill().map_err(|e| e.to_string()),
    };
    let mut handle = handle;
    let r = match &mut handle {
        Handle::Wrap(c) => c.start_kill().map_err(|e| e.to_string()),
        _ => r,
    };
    let call = t0.elapsed();
    let deaths = sys::wait_deaths(fds, t0, QUIET, LIMIT);
    let survivors = deaths.survivors.len();
    sys::kill_and_reap(&deaths.survivors);
    let mut corral_leftover = None;
    match handle {
        Handle::Std(mut c) => {
            let _ = c.wait();
        }
        Handle::Wrap(mut c) => {
            let _ = c.wait();
        }
        Handle::Kit(k) => {
            let (g, mut c) = *k;
            let _ = rt.block_on(c.wait());
            drop(g);
        }
        Handle::Corral(g) => corral_leftover = Some(g.wait().leftover),
    }
    for f in &keep {
        f.reap();
    }
    r.map_err(|e| format!("{}: kill failed: {e}", who.label()))?;
    Ok(Trial { latency: deaths.last, call, survivors, procs: pids.len(), corral_leftover })
}

#[derive(Default, Clone)]
struct Cell {
    latency: Samples,
    call: Samples,
    survivors: Vec<usize>,
    procs: usize,
    corral_leftover: Vec<usize>,
}

pub fn run(opts: &Opts) -> Result<Section, String> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| e.to_string())?;
    let mechanism = {
        let _g = rt.enter();
        processkit::ProcessGroup::new()
            .map(|g| format!("{:?}", g.mechanism()))
            .unwrap_or_else(|e| format!("error: {e}"))
    };
    let mut cells = vec![vec![vec![Cell::default(); ALL.len()]; VARIANTS.len()]; SIZES.len()];
    let mut round_no = 0usize;
    // CORRAL_BENCH_KILL_ONLY=10,100: only these tree sizes (an A/B of one
    // size in a minute instead of the whole part).
    let only: Option<Vec<usize>> = std::env::var("CORRAL_BENCH_KILL_ONLY")
        .ok()
        .map(|v| v.split(',').filter_map(|x| x.trim().parse().ok()).collect());
    for (si, &size) in SIZES.iter().enumerate() {
        if only.as_ref().is_some_and(|o| !o.contains(&size)) {
            continue;
        }
        let rounds = match (opts.quick, size) {
            (true, 1000) => 2,
            (true, _) => 3,
            (false, 1000) => 5,
            (false, _) => 15,
        };
        eprintln!("corral-bench kill: trees of {size}, {rounds} round(s)");
        for _ in 0..rounds {
            for (vi, &v) in VARIANTS.iter().enumerate() {
                let args = tree_args(size, v);
                for k in balanced_order(ALL.len(), round_no) {
                    let t = trial(ALL[k], &opts.bins.testkit, &args, &rt)?;
                    let c = &mut cells[si][vi][k];
                    if let Some(l) = t.latency {
                        c.latency.push_duration(l);
                    }
                    c.call.push_duration(t.call);
                    c.survivors.push(t.survivors);
                    c.procs = t.procs;
                    c.corral_leftover.extend(t.corral_leftover);
                }
                round_no += 1;
            }
        }
    }

    // CORRAL_BACKEND may force one (cgroup2: containment without controllers).
    let backend = corral::Group::spawn(corral::Command::new("/bin/true")).map(|g| {
        let b = g.backend();
        g.wait();
        b
    });
    let backend = backend.map_or_else(|e| format!("none ({e})"), |b| b.to_string());
    let mut sec = Section::new(&format!("2. kill latency against tree size (corral's backend: {backend})"));
    sec.para(&format!(
        "From the kill call until the last process of the tree has exited, each death timed by `poll` on a \
         pidfd per process. A contender is done when all are gone, or when nothing has died for {} ms; what \
         lives then is a **survivor** (counted, then killed by pid). `call` is how long the kill call itself took. \
         Tree shapes (testkit): plain = children with grandchildren; half setsid = half of the processes \
         `setsid()` away; half daemonised = half are daemons re-parented out of the tree by a double fork \
         (what `setsid -f` does), in their own session. The bench process is a child subreaper for all \
         contenders alike (corral makes its process one anyway, and PID 1 here does not reap). \
         processkit's mechanism here: `{mechanism}`.",
        QUIET.as_millis()
    ));
    let mut contenders = Table::new(&["contender", "how"]);
    for w in ALL {
        contenders.row(vec![w.label().into(), w.how().into()]);
    }
    sec.table(&contenders);
    let killpg_k = ALL.iter().position(|&w| w == Who::Killpg).unwrap_or(0);
    let corral_k = ALL.iter().position(|&w| w == Who::Corral).unwrap_or(0);
    for (si, &size) in SIZES.iter().enumerate() {
        let mut t = Table::new(&[
            "contender",
            "variant",
            "procs",
            "median",
            "p10–p90",
            "call (median)",
            "survivors (max)",
            "× killpg plain",
        ]);
        let base = cells[si][0][killpg_k].latency.median();
        for (vi, &v) in VARIANTS.iter().enumerate() {
            for (k, &w) in ALL.iter().enumerate() {
                let c = &cells[si][vi][k];
                t.row(vec![
                    w.label().into(),
                    v.label().into(),
                    c.procs.to_string(),
                    secs(c.latency.median()),
                    format!("{}–{}", secs(c.latency.quantile(0.1)), secs(c.latency.quantile(0.9))),
                    secs(c.call.median()),
                    c.survivors.iter().max().copied().unwrap_or(0).to_string(),
                    ratio(c.latency.median(), base),
                ]);
            }
        }
        sec.para(&format!("**Trees of {size}** ({} samples per cell)", cells[si][0][0].call.len()));
        sec.table(&t);
    }

    // The plot: median kill latency against tree size, plain and daemonised.
    let mut series = Vec::new();
    for (k, &w) in ALL.iter().enumerate() {
        for (vi, dashed) in [(0usize, false), (2usize, true)] {
            let pts: Vec<(f64, f64)> = SIZES
                .iter()
                .enumerate()
                .filter_map(|(si, &n)| {
                    let m = cells[si][vi][k].latency.median();
                    (!m.is_nan()).then_some((n as f64, m * 1e3))
                })
                .collect();
            series.push(Series {
                label: format!("{} ({})", w.label().trim_matches('*').replace('`', ""), VARIANTS[vi].label()),
                color: w.color().into(),
                dashed,
                points: pts,
            });
        }
    }
    let plot = svg::log_log_plot(
        "Kill latency vs tree size (median; solid: plain, dashed: half daemonised)",
        "processes in the tree",
        "ms until the last killed process exited",
        &series,
    );
    sec.files.push(("benchmarks/kill-latency.svg".into(), plot));
    sec.para("![kill latency against tree size](benchmarks/kill-latency.svg)");

    // Verdicts.
    let mut worst_survivors = 0;
    let mut leftover = 0;
    for c in cells.iter().flatten().map(|by_who| &by_who[corral_k]) {
        worst_survivors = worst_survivors.max(c.survivors.iter().max().copied().unwrap_or(0));
        leftover = leftover.max(c.corral_leftover.iter().max().copied().unwrap_or(0));
    }
    sec.verdicts.push(Verdict::new(
        "2",
        "0 survivors in every variant",
        format!("corral: {worst_survivors} survivors at most (its own `leftover` count: {leftover})"),
        Some(worst_survivors == 0),
    ));
    for (si, &size) in SIZES.iter().enumerate() {
        let base = cells[si][0][killpg_k].latency.median();
        let c = cells[si][0][corral_k].latency.median();
        sec.verdicts.push(Verdict::new(
            "2",
            &format!("plain tree of {size}: ≤ 0.9 × killpg"),
            format!("{} ({} vs {})", ratio(c, base), secs(c), secs(base)),
            Some(c <= 0.9 * base),
        ));
    }
    Ok(sec)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn count(args: &[String]) -> usize {
        let n = |k: &str| args.iter().position(|a| a == k).map(|i| args[i + 1].parse::<usize>().unwrap()).unwrap_or(0);
        1 + n("--children") * (1 + n("--grandchildren")) + n("--setsid") + n("--double-fork")
    }

    #[test]
    fn trees_have_the_size_asked_for() {
        for size in SIZES {
            let plain = count(&tree_args(size, Variant::Plain));
            assert!(plain.abs_diff(size) * 50 <= size.max(50), "{size}: {plain}");
            for v in [Variant::HalfSetsid, Variant::HalfDaemon] {
                let a = tree_args(size, v);
                assert_eq!(count(&a), size, "{a:?}");
            }
        }
    }
}
