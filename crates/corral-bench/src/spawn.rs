//! Measure 1: spawn and wait for `/bin/true` in a fully contained group.
//!
//! Every iteration runs each contender once, in a balanced order (each runs
//! in every place and behind every other equally often), so that
//! noise lands on all of them alike. Each sample is one spawn+wait.

use crate::report::{Section, Table, Verdict};
use crate::spawn_floor::Floor;
use crate::stats::{balanced_order, ratio, secs, Samples};
use crate::Opts;
use std::os::unix::process::CommandExt;
use std::process::Command;
use std::time::Instant;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Who {
    Std,
    StdPreExec,
    ProcessWrap,
    ProcesskitShared,
    ProcesskitNew,
    CorralLimits,
    CorralNoLimits,
    CorralPgid,
    KernelFloor,
}

impl Who {
    fn label(self) -> &'static str {
        match self {
            Who::Std => "std `Command` (baseline)",
            Who::StdPreExec => "std `Command` + no-op `pre_exec` (reference)",
            Who::ProcessWrap => "process-wrap `ProcessGroup::leader()`",
            Who::ProcesskitShared => "processkit, one shared `ProcessGroup`",
            Who::ProcesskitNew => "processkit, new `ProcessGroup` per call",
            Who::CorralLimits => "**corral** `Group` + limits (memory 256 MiB, 64 procs)",
            Who::CorralNoLimits => "corral `Group`, no limits",
            Who::CorralPgid => "corral `Group`, `pgid` backend, no limits",
            Who::KernelFloor => "kernel floor: the same cgroups and limits, without corral (reference)",
        }
    }
    fn contains(self) -> &'static str {
        match self {
            Who::Std | Who::StdPreExec => "nothing",
            Who::ProcessWrap => "process group (setsid escapes)",
            Who::ProcesskitShared | Who::ProcesskitNew => "cgroup v2 (no limits: no controllers here)",
            Who::CorralLimits => "cgroup (v2 membership + v1 limits)",
            Who::CorralNoLimits => "cgroup",
            Who::CorralPgid => "process group + subreaper sweep",
            Who::KernelFloor => "what corral's group holds (see above)",
        }
    }
}

const ALL: [Who; 9] = [
    Who::Std,
    Who::StdPreExec,
    Who::ProcessWrap,
    Who::ProcesskitShared,
    Who::ProcesskitNew,
    Who::CorralLimits,
    Who::CorralNoLimits,
    Who::CorralPgid,
    Who::KernelFloor,
];

struct Runner {
    rt: tokio::runtime::Runtime,
    shared: processkit::ProcessGroup,
    floor: Option<Floor>,
}

fn true_cmd() -> Command {
    Command::new("/bin/true")
}

impl Runner {
    fn once(&self, who: Who) -> Result<f64, String> {
        let t = Instant::now();
        match who {
            Who::Std => {
                let st = true_cmd().spawn().and_then(|mut c| c.wait()).map_err(|e| e.to_string())?;
                check(st.success(), "std")?;
            }
            Who::StdPreExec => {
                let mut cmd = true_cmd();
                // SAFETY: the hook does nothing; it only makes std fork+exec
                // instead of posix_spawn, as every containing spawner must.
                unsafe { cmd.pre_exec(|| Ok(())) };
                let st = cmd.spawn().and_then(|mut c| c.wait()).map_err(|e| e.to_string())?;
                check(st.success(), "std+pre_exec")?;
            }
            Who::ProcessWrap => {
                use process_wrap::std::{CommandWrap, ProcessGroup};
                let mut c =
                    CommandWrap::from(true_cmd()).wrap(ProcessGroup::leader()).spawn().map_err(|e| e.to_string())?;
                let st = c.wait().map_err(|e| e.to_string())?;
                check(st.success(), "process-wrap")?;
            }
            Who::ProcesskitShared => {
                let st = self.rt.block_on(async {
                    let mut c =
                        self.shared.spawn(tokio::process::Command::from(true_cmd())).map_err(|e| e.to_string())?;
                    c.wait().await.map_err(|e| e.to_string())
                })?;
                check(st.success(), "processkit shared")?;
            }
            Who::ProcesskitNew => {
                let st = self.rt.block_on(async {
                    let g = processkit::ProcessGroup::new().map_err(|e| e.to_string())?;
                    let mut c = g.spawn(tokio::process::Command::from(true_cmd())).map_err(|e| e.to_string())?;
                    let st = c.wait().await.map_err(|e| e.to_string())?;
                    drop(g);
                    Ok::<_, String>(st)
                })?;
                check(st.success(), "processkit new")?;
            }
            Who::CorralLimits | Who::CorralNoLimits | Who::CorralPgid => {
                let mut b = corral::Group::builder();
                if who == Who::CorralLimits {
                    b = b.limits(corral::Limits::new().memory(256 << 20).max_procs(64));
                }
                if who == Who::CorralPgid {
                    b = b.backend(corral::BackendKind::Pgid);
                }
                let g = b.spawn(corral::Command::new("/bin/true")).map_err(|e| e.to_string())?;
                let o = g.wait();
                check(o.status.success() && o.leftover == 0, "corral")?;
            }
            Who::KernelFloor => self.floor.as_ref().ok_or("no floor")?.once()?,
        }
        Ok(t.elapsed().as_secs_f64())
    }
}

fn check(ok: bool, who: &str) -> Result<(), String> {
    if ok {
        Ok(())
    } else {
        Err(format!("{who}: /bin/true did not succeed"))
    }
}

pub fn run(opts: &Opts) -> Result<Section, String> {
    let iters = if opts.quick { 150 } else { 1500 };
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| e.to_string())?;
    let shared = {
        let _g = rt.enter();
        processkit::ProcessGroup::new().map_err(|e| format!("processkit: {e}"))?
    };
    let mechanism = format!("{:?}", shared.mechanism());
    // The backend corral takes here (CORRAL_BACKEND may force one): a
    // forced cgroup2 without controllers refuses the limits, and then the
    // group without limits is what this run can compare.
    let with_limits = corral::Group::builder()
        .limits(corral::Limits::new().memory(256 << 20).max_procs(64))
        .spawn(corral::Command::new("/bin/true"));
    let (g, limits_refused) = match with_limits {
        Ok(g) => (g, None),
        Err(e) => {
            (corral::Group::spawn(corral::Command::new("/bin/true")).map_err(|e| e.to_string())?, Some(e.to_string()))
        }
    };
    let corral_backend = g.backend();
    g.wait();
    let (floor, floor_refused) = match Floor::new(corral_backend) {
        Ok(f) => (Some(f), None),
        Err(e) => (None, Some(e)),
    };
    let floor_what = floor.as_ref().map(|f| f.what().to_string());
    let r = Runner { rt, shared, floor };
    let skipped = |w: Who| match w {
        Who::CorralLimits => limits_refused.clone(),
        Who::KernelFloor => floor_refused.clone(),
        _ => None,
    };
    let mut samples: Vec<Samples> = vec![Samples::default(); ALL.len()];
    // For profiling one contender alone, or a few together (what the
    // others leave behind in caches and in the process):
    // CORRAL_BENCH_SPAWN_ONLY=<indices in the table, comma-separated>
    // (e.g. 5 for corral with limits, 0,5 for std and it) under `perf record`.
    let only: Option<Vec<usize>> = std::env::var("CORRAL_BENCH_SPAWN_ONLY")
        .ok()
        .map(|v| v.split(',').filter_map(|k| k.trim().parse().ok()).collect());
    eprintln!("corral-bench spawn: {iters} interleaved iterations of {} contenders", ALL.len());
    for i in 0..iters + 10 {
        for k in balanced_order(ALL.len(), i) {
            if only.as_ref().is_some_and(|o| !o.contains(&k)) || skipped(ALL[k]).is_some() {
                continue;
            }
            let s = r.once(ALL[k])?;
            if i >= 10 {
                samples[k].push(s);
            }
        }
    }
    drop(r);

    let base = samples[0].median();
    let mut t = Table::new(&["contender", "contains", "median", "p10–p90", "× std"]);
    for (k, who) in ALL.iter().enumerate() {
        let s = &samples[k];
        if let Some(why) = skipped(*who) {
            t.row(vec![
                who.label().into(),
                who.contains().into(),
                format!("not measured: {why}"),
                "—".into(),
                "—".into(),
            ]);
            continue;
        }
        t.row(vec![
            who.label().into(),
            who.contains().into(),
            secs(s.median()),
            format!("{}–{}", secs(s.quantile(0.1)), secs(s.quantile(0.9))),
            ratio(s.median(), base),
        ]);
    }
    let mut sec = Section::new(&format!(
        "1. spawn + wait of `/bin/true` in a contained group (corral's backend: {corral_backend})"
    ));
    sec.para(&format!(
        "{iters} samples per contender, one spawn+wait each, contenders interleaved in a balanced order (a Williams design: each in every place and behind every other equally often). \
         corral's backend here: `{corral_backend:?}`; processkit's mechanism: `{mechanism}`. The kernel floor \
         holds its child as corral's group would, with no corral code: {}. It shows how much of corral's \
         time is the kernel's (the clone into the cgroup, any v1 joins, the exec) and how much is corral's own.",
        floor_what.as_deref().unwrap_or("not measured here")
    ));
    sec.table(&t);
    let (k, goal) = match limits_refused {
        None => (5, "spawn+wait in a group with limits ≤ 1.15 × plain std"),
        // cgroup2 without controllers: containment only.
        Some(_) => (6, "spawn+wait in a group (no controllers here, so no limits) ≤ 1.15 × plain std"),
    };
    let corral = samples[k].median();
    let r = corral / base;
    let floor_note = match floor_refused {
        None => format!("; kernel floor {:.2}×", samples[8].median() / base),
        Some(_) => String::new(),
    };
    sec.verdicts.push(Verdict::new(
        "1",
        goal,
        format!("{:.2}× ({} vs {}{floor_note})", r, secs(corral), secs(base)),
        Some(r <= 1.15),
    ));
    Ok(sec)
}
