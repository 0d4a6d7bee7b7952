//! Which Linux backend a group gets, and what each one can do here.
//!
//! Best first: cgroup v2 with its controllers, hybrid (v2 membership and
//! kill, v1 limits), cgroup v1 with the freezer, and the process-group
//! fallback, which always works.

use super::hierarchy::{self, Layout};
use crate::{BackendKind, BackendReport, Capability, LimitKind, Support};

pub(crate) const ORDER: [BackendKind; 4] =
    [BackendKind::CgroupV2, BackendKind::Hybrid, BackendKind::CgroupV1, BackendKind::Pgid];

const DELEGATE_HINT: &str =
    "run as root, or under `systemd-run --user -p Delegate=yes`, or set CORRAL_CGROUP_ROOT to a writable cgroup";

/// `Ok` when `kind` can hold a group here; else why not, with a hint.
/// `strict` asks for the controllers too (automatic choice); a forced
/// cgroup2 without controllers still holds and kills, and reports its
/// limits as not enforced.
pub(crate) fn available(kind: BackendKind, l: &Layout, strict: bool) -> Result<(), String> {
    if let Some(p) = &l.override_problem {
        if kind != BackendKind::Pgid {
            return Err(p.clone());
        }
    }
    let v2 = || -> Result<(), String> {
        let root = l.v2_root.as_ref().ok_or("no cgroup2 mount on this host")?;
        hierarchy::writable(root).map_err(|e| format!("cgroup v2 subtree not delegated: {e}; {DELEGATE_HINT}"))
    };
    let v1 = |c: &str| -> Result<(), String> {
        let root = l.v1_root(c).ok_or(format!("no cgroup v1 `{c}` controller mounted"))?;
        hierarchy::writable(root).map_err(|e| format!("cgroup v1 `{c}` not writable: {e}; {DELEGATE_HINT}"))
    };
    match kind {
        BackendKind::CgroupV2 => {
            v2()?;
            if strict {
                let missing: Vec<&str> = ["memory", "pids", "cpu"]
                    .into_iter()
                    .filter(|c| !l.v2_controllers.iter().any(|x| x == c))
                    .collect();
                if !missing.is_empty() {
                    return Err(format!(
                        "the cgroup2 mount has no {} controller(s) (on a hybrid host they are bound to v1)",
                        missing.join("/")
                    ));
                }
            }
            Ok(())
        }
        BackendKind::Hybrid => {
            if l.v1_roots.is_empty() {
                return Err("no cgroup v1 controllers mounted (not a hybrid host)".into());
            }
            v2()?;
            for c in ["memory", "pids"] {
                v1(c)?;
            }
            Ok(())
        }
        BackendKind::CgroupV1 => {
            for c in ["freezer", "pids", "memory"] {
                v1(c)?;
            }
            Ok(())
        }
        BackendKind::Pgid => Ok(()),
        _ => Err("not a Linux backend".into()),
    }
}

/// The best backend available, or the forced one if it can run.
pub(crate) fn choose(forced: Option<BackendKind>, l: &Layout) -> crate::Result<BackendKind> {
    use crate::{Error, ErrorKind};
    if let Some(k) = forced {
        return available(k, l, false).map(|_| k).map_err(|why| {
            Error::new(ErrorKind::Unsupported, format!("backend {k} cannot run here: {why}"))
                .hint("run `corral doctor` to see the backends this host offers, or unset CORRAL_BACKEND")
        });
    }
    Ok(ORDER.into_iter().find(|k| available(*k, l, true).is_ok()).unwrap_or(BackendKind::Pgid))
}

fn has_v2(l: &Layout, c: &str) -> bool {
    l.v2_controllers.iter().any(|x| x == c)
}

/// How `kind` provides a limit on this host.
pub(crate) fn limit_support(kind: BackendKind, limit: LimitKind, l: &Layout, root: bool) -> Support {
    use BackendKind::*;
    use LimitKind::*;
    let yes = |s: &str| Support::Yes(s.to_string());
    let weak = |s: &str| Support::Weaker(s.to_string());
    let no = |s: &str| Support::No(s.to_string());
    let v1 = |c: &str| l.v1_root(c).is_some();
    match (kind, limit) {
        (_, MemoryPerProcess) => weak("RLIMIT_AS on each process (address space, not resident memory)"),
        (_, WallClock) => yes("timer in the controller"),
        (CgroupV2, Memory) if has_v2(l, "memory") => yes("memory.max"),
        (CgroupV2, Processes) if has_v2(l, "pids") => yes("pids.max"),
        (CgroupV2, CpuRate) if has_v2(l, "cpu") => yes("cpu.max"),
        (CgroupV2 | Hybrid, CpuTime) => yes("cpu.stat watched by the controller, then cgroup.kill"),
        (CgroupV2, _) => no("the cgroup2 mount has no controller for it; use the hybrid or cgroup1 backend"),
        (Hybrid | CgroupV1, Memory) if v1("memory") => yes("v1 memory.limit_in_bytes"),
        (Hybrid | CgroupV1, Processes) if v1("pids") => yes("v1 pids.max"),
        (Hybrid | CgroupV1, CpuRate) if v1("cpu") => yes("v1 cpu.cfs_quota_us"),
        (CgroupV1, CpuTime) if v1("cpuacct") => yes("v1 cpuacct watched by the controller, then the freezer kill"),
        (Hybrid | CgroupV1, _) => no("the v1 controller for it is not mounted"),
        (Pgid, Memory) => weak("sum of members' RSS sampled every 20 ms, then kill; a fast allocation can overshoot"),
        (Pgid, Processes) => weak("members counted every 20 ms, then kill (RLIMIT_NPROC is per user, and root is exempt)"),
        (Pgid, CpuTime) => weak("members' CPU time read from /proc by the controller; a member that exits unreaped by corral is not counted"),
        (Pgid, CpuRate) => no("no CPU throttling without cgroups"),
        _ => {
            let _ = root;
            no("not supported")
        }
    }
}

/// Everything `doctor` says about one backend.
pub(crate) fn report(kind: BackendKind, l: &Layout) -> BackendReport {
    use BackendKind::*;
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    let yes = |s: &str| Support::Yes(s.to_string());
    let weak = |s: &str| Support::Weaker(s.to_string());
    let cg = matches!(kind, CgroupV2 | Hybrid | CgroupV1);
    let mut caps = vec![
        (
            Capability::HoldsEscapees,
            if cg {
                yes("cgroup membership is inherited and cannot be left")
            } else {
                weak("subreaper sweep and environment tag")
            },
        ),
        (
            Capability::AtomicKill,
            match kind {
                CgroupV2 | Hybrid => yes("cgroup.kill"),
                CgroupV1 => yes("freezer: freeze, SIGKILL all, thaw"),
                _ => weak("killpg plus stop-then-kill rounds"),
            },
        ),
        (
            Capability::KillOnControllerDeath,
            if cg {
                weak("PR_SET_PDEATHSIG on the leader; the next corral process reaps the rest of the cgroup")
            } else {
                weak("PR_SET_PDEATHSIG on the leader only")
            },
        ),
        (
            Capability::EmptyNotification,
            match kind {
                CgroupV2 | Hybrid => yes("cgroup.events, signalled through poll"),
                _ => weak("polled after the leader exits"),
            },
        ),
        (
            Capability::PeakMemory,
            match kind {
                CgroupV2 if has_v2(l, "memory") => yes("memory.peak"),
                Hybrid | CgroupV1 if l.v1_root("memory").is_some() => yes("v1 memory.max_usage_in_bytes"),
                _ => weak("largest single process (rusage maxrss)"),
            },
        ),
    ];
    for lk in LimitKind::ALL {
        caps.push((Capability::Limit(lk), limit_support(kind, lk, l, root)));
    }
    BackendReport { kind, available: available(kind, l, kind == CgroupV2), capabilities: caps }
}
