//! Measure 1: spawn and wait for `/bin/true` in a fully contained group.
//!
//! Every iteration runs each contender once, in a rotated order, so that
//! noise lands on all of them alike. Each sample is one spawn+wait.

use crate::report::{Section, Table, Verdict};
use crate::stats::{ratio, rotation, secs, Samples};
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
        }
    }
}

const ALL: [Who; 8] = [
    Who::Std,
    Who::StdPreExec,
    Who::ProcessWrap,
    Who::ProcesskitShared,
    Who::ProcesskitNew,
    Who::CorralLimits,
    Who::CorralNoLimits,
    Who::CorralPgid,
];

struct Runner {
    rt: tokio::runtime::Runtime,
    shared: processkit::ProcessGroup,
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
    let r = Runner { rt, shared };
    let mut samples: Vec<Samples> = vec![Samples::default(); ALL.len()];
    // For profiling one contender alone: CORRAL_BENCH_SPAWN_ONLY=<index in
    // the table> (e.g. 5 for corral with limits) under `perf record`.
    let only: Option<usize> = std::env::var("CORRAL_BENCH_SPAWN_ONLY").ok().and_then(|v| v.parse().ok());
    eprintln!("corral-bench spawn: {iters} interleaved iterations of {} contenders", ALL.len());
    for i in 0..iters + 10 {
        for k in rotation(ALL.len(), i) {
            if only.is_some_and(|o| o != k) {
                continue;
            }
            let s = r.once(ALL[k])?;
            if i >= 10 {
                samples[k].push(s);
            }
        }
    }
    let corral_backend = {
        let g = corral::Group::builder()
            .limits(corral::Limits::new().memory(256 << 20).max_procs(64))
            .spawn(corral::Command::new("/bin/true"))
            .map_err(|e| e.to_string())?;
        let b = g.backend();
        g.wait();
        b
    };

    let base = samples[0].median();
    let mut t = Table::new(&["contender", "contains", "median", "p10–p90", "× std"]);
    for (k, who) in ALL.iter().enumerate() {
        let s = &samples[k];
        t.row(vec![
            who.label().into(),
            who.contains().into(),
            secs(s.median()),
            format!("{}–{}", secs(s.quantile(0.1)), secs(s.quantile(0.9))),
            ratio(s.median(), base),
        ]);
    }
    let mut sec = Section::new("1. spawn + wait of `/bin/true` in a contained group");
    sec.para(&format!(
        "{iters} samples per contender, one spawn+wait each, contenders interleaved in a rotating order. \
         corral's backend here: `{corral_backend:?}`; processkit's mechanism: `{mechanism}`."
    ));
    sec.table(&t);
    let corral = samples[5].median();
    let r = corral / base;
    sec.verdicts.push(Verdict::new(
        "1",
        "spawn+wait in a group with limits ≤ 1.15 × plain std",
        format!("{:.2}× ({} vs {})", r, secs(corral), secs(base)),
        Some(r <= 1.15),
    ));
    Ok(sec)
}
