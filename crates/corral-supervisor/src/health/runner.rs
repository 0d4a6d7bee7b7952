//! The probes of one run: the startup probe alone first, then readiness
//! and liveness side by side. Each probe is one loop, so a probe never
//! overlaps itself; a check that outlives its period delays the next one
//! instead. The runner only reports; the instance task acts. A check
//! that changes nothing the instance acts on (no note, no readiness flip,
//! no end) is only recorded, on the probe's own task ([`Quiet`]): with a
//! hundred probed services, a wake-up of each instance task per check
//! was most of an idle daemon's work.

use super::exec::ExecEnv;
use super::logmatch::LogMatch;
use super::policy::{Crossed, Tracker};
use super::probe::{check, CheckCtx};
use super::spec::{Check, HealthSpec, Probe, ProbeKind};
use super::verdict::{Cause, ProbeResult, Verdict};
use crate::logs::Follower;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc::UnboundedSender;
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// The probes of one run. Dropping it stops them (an exec probe in flight
/// is killed with its group).
pub(crate) struct Runner {
    task: JoinHandle<()>,
}

impl Drop for Runner {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The log patterns the probes wait for; the instance follows its log
/// from before the spawn when there are any.
pub(crate) fn log_patterns(health: &HealthSpec) -> Vec<String> {
    health
        .probes()
        .filter_map(|(_, p)| match &p.check {
            Check::Log { pattern } => Some(pattern.clone()),
            _ => None,
        })
        .collect()
}

/// Records a check's result that the instance need not act on (see the
/// module note).
pub(crate) type Quiet = Arc<dyn Fn(ProbeResult, Duration) + Send + Sync>;

/// Where a run's probes begin: at the start of the run, or where a run
/// whose probes a reload replaced stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Resume {
    /// The startup probe has passed in this run (or the run had none): a
    /// new startup probe does not run, readiness and liveness start at once
    /// (after their `initial_delay`).
    pub startup_passed: bool,
    /// The instance's readiness now; the readiness probe goes on from it.
    pub ready: bool,
}

impl Resume {
    /// A run that has just started: startup first, not ready.
    pub(crate) const FRESH: Resume = Resume { startup_passed: false, ready: false };
}

/// Starts the probes of a run; `None` without probes.
pub(crate) fn start(
    health: &HealthSpec,
    exec: ExecEnv,
    follower: Option<Follower>,
    tx: UnboundedSender<Box<Verdict>>,
    quiet: Quiet,
    from: Resume,
) -> Option<Runner> {
    if health.is_empty() {
        return None;
    }
    for (kind, p) in health.probes() {
        if matches!(&p.check, Check::Http { trust: crate::tls::Trust::Insecure, .. }) {
            crate::tls::warn_insecure_once(&format!("service `{}`: health.{kind}", exec.spec.name));
        }
    }
    let patterns = log_patterns(health);
    let log = follower.filter(|_| !patterns.is_empty()).map(|f| Arc::new(LogMatch::start(f, patterns)));
    let health = health.clone();
    let out = Out { tx, quiet };
    let task = tokio::spawn(async move { run(health, CheckCtx { exec, log }, out, from).await });
    Some(Runner { task })
}

/// Where the probes' results go.
struct Out {
    tx: UnboundedSender<Box<Verdict>>,
    quiet: Quiet,
}

async fn run(h: HealthSpec, ctx: CheckCtx, out: Out, from: Resume) {
    let tx = &out.tx;
    if let Some(p) = h.startup.as_ref().filter(|_| !from.startup_passed) {
        // Without a readiness probe, passing startup makes the instance ready.
        let ready_after = h.readiness.is_none();
        if let Some(why) = probe_loop(ProbeKind::Startup, p, &ctx, &out, ready_after, false).await {
            let _ = tx.send(Box::new(Verdict::Restart { cause: Cause::Startup, reason: format!("startup: {why}") }));
            return;
        }
    }
    let readiness = async {
        if let Some(p) = &h.readiness {
            probe_loop(ProbeKind::Readiness, p, &ctx, &out, false, from.ready).await;
        }
    };
    let liveness = async {
        if let Some(p) = &h.liveness {
            if let Some(why) = probe_loop(ProbeKind::Liveness, p, &ctx, &out, false, false).await {
                let _ =
                    tx.send(Box::new(Verdict::Restart { cause: Cause::Liveness, reason: format!("liveness: {why}") }));
            }
        }
    };
    tokio::join!(readiness, liveness);
}

/// Runs one probe until it decides the run's fate: `None` when a startup
/// probe passed, `Some(why)` when a startup or liveness probe failed.
/// Readiness never returns; it reports each flip, starting from `ready`.
async fn probe_loop(
    kind: ProbeKind,
    p: &Probe,
    ctx: &CheckCtx,
    out: &Out,
    ready_after_startup: bool,
    ready: bool,
) -> Option<String> {
    tokio::time::sleep(p.initial_delay).await;
    let mut tracker = Tracker::new(kind, p.success_threshold, p.failure_threshold);
    if kind == ProbeKind::Readiness {
        tracker = tracker.starting_from(ready);
    }
    loop {
        let begun = Instant::now();
        let r = check(&p.check, ctx, p.timeout).await;
        let took = begun.elapsed();
        let step = tracker.record(r.is_ok());
        let (ok, message) = match r {
            Ok(m) => (true, m),
            Err(m) => (false, m),
        };
        let times = |n: u32| if n == 1 { "once".to_string() } else { format!("{n} times in a row") };
        let (ready, mut note, end) = match (kind, step.crossed) {
            (ProbeKind::Startup, Some(Crossed::Passed)) => {
                (ready_after_startup.then_some(true), Some(format!("startup: passed ({message})")), Some(None))
            }
            (ProbeKind::Startup | ProbeKind::Liveness, Some(Crossed::Failed)) => {
                (None, None, Some(Some(format!("failed {}: {message}", times(step.failures)))))
            }
            (ProbeKind::Readiness, Some(Crossed::Passed)) => {
                (Some(true), Some(format!("readiness: ready ({message})")), None)
            }
            (ProbeKind::Readiness, Some(Crossed::Failed)) => {
                (Some(false), Some(format!("readiness: not ready, failed {}: {message}", times(step.failures))), None)
            }
            _ => (None, None, None),
        };
        if note.is_none() && step.notable {
            note = Some(if ok {
                format!("{kind}: passed ({message})")
            } else {
                format!("{kind}: failed ({}/{}): {message}", step.failures, p.failure_threshold)
            });
        }
        let result = ProbeResult {
            probe: kind,
            check: p.check.kind().to_string(),
            ok,
            message,
            duration_ms: took.as_millis() as u64,
            failures: step.failures,
            failure_threshold: p.failure_threshold,
            ts: crate::time::now_rfc3339(),
        };
        if note.is_none() && ready.is_none() && end.is_none() {
            (out.quiet)(result, took);
        } else {
            let _ = out.tx.send(Box::new(Verdict::Probe { result, took, note, ready }));
        }
        if let Some(end) = end {
            return end;
        }
        // Saturating: `period` is bounded by the config, but a deadline
        // must never be able to panic the probe task.
        tokio::time::sleep_until(corral::deadline::after(begun.into_std(), p.period).into()).await;
    }
}
