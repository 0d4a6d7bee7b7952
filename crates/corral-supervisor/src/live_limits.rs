//! Limits of running instances: which changes a reload can apply without
//! a restart (pure), what `corral limit` asks for, and the watch that
//! turns hits of notify-only limits into events.

use corral::{Group, LimitKind, Limits};
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// True when `new` can be applied to a group running with `old`: only the
/// limits the kernel can change under a running group differ (memory,
/// `max_procs`, `cpus`, and which of them only notify).
pub fn live_changeable(old: &Limits, new: &Limits) -> bool {
    old.memory_per_process == new.memory_per_process
        && old.cpu_time == new.cpu_time
        && old.cpu_time_per_process == new.cpu_time_per_process
        && old.working_set == new.working_set
}

/// What `corral limit SERVICE` changes; `None` keeps the value in force.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LimitChange {
    /// Memory of the whole group, in bytes.
    pub memory: Option<u64>,
    /// Processes at once.
    pub max_procs: Option<u32>,
    /// CPU rate in cores.
    pub cpus: Option<f64>,
}

impl LimitChange {
    /// True when nothing would change.
    pub fn is_empty(&self) -> bool {
        *self == LimitChange::default()
    }

    /// `limits` with this change applied.
    pub fn apply(&self, limits: &Limits) -> Limits {
        let mut l = limits.clone();
        if let Some(m) = self.memory {
            l.memory = Some(m);
        }
        if let Some(n) = self.max_procs {
            l.max_procs = Some(n);
        }
        if let Some(c) = self.cpus {
            l.cpus = Some(c);
        }
        l
    }

    /// For events and output: `memory 1 GiB, cpus 0.5`.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if let Some(m) = self.memory {
            parts.push(format!("memory {}", corral::units::format_size(m)));
        }
        if let Some(n) = self.max_procs {
            parts.push(format!("max_procs {n}"));
        }
        if let Some(c) = self.cpus {
            parts.push(format!("cpus {c}"));
        }
        parts.join(", ")
    }
}

/// The result of `corral limit` for one instance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LimitResult {
    /// The service.
    pub service: String,
    /// The instance index.
    pub instance: u32,
    /// Why the change was not applied (not running, refused by the kernel).
    pub error: Option<String>,
}

/// How often a run's notify-only limits are looked at: a hit is news, not
/// an emergency, and the count is kept by the library meanwhile.
pub(crate) const NOTICE_PERIOD: Duration = Duration::from_millis(500);

/// The hits of notify-only limits already told, for one run.
#[derive(Debug, Default)]
pub(crate) struct Notices {
    told: Vec<(LimitKind, u64)>,
}

impl Notices {
    /// The kinds hit since the last call, with their total count.
    pub(crate) fn fresh(&mut self, group: &Group) -> Vec<(LimitKind, u64)> {
        let mut out = Vec::new();
        for (kind, n) in group.limit_notices() {
            let told = self.told.iter_mut().find(|(k, _)| *k == kind);
            match told {
                Some((_, t)) if *t >= n => {}
                Some((_, t)) => {
                    *t = n;
                    out.push((kind, n));
                }
                None => {
                    self.told.push((kind, n));
                    out.push((kind, n));
                }
            }
        }
        out
    }
}

/// The event's words for a notify-only hit.
pub(crate) fn notice_reason(kind: LimitKind, count: u64, limits: &Limits) -> String {
    let what = match kind {
        LimitKind::Memory => "memory above its limit: reclaimed and throttled",
        LimitKind::Processes => "a fork refused at max_procs",
        LimitKind::CpuRate => "CPU throttled at its rate",
        _ => "limit reached",
    };
    let value = match kind {
        LimitKind::Memory => limits.memory.map(corral::units::format_size),
        LimitKind::Processes => limits.max_procs.map(|n| n.to_string()),
        LimitKind::CpuRate => limits.cpus.map(|c| format!("{c} cores")),
        _ => None,
    };
    format!(
        "{kind} ({}) hit, {count} time(s) so far: {what}, not killed (on_limit = \"notify\")",
        value.unwrap_or_default()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_pids_and_cpus_change_live_and_the_rest_needs_a_restart() {
        let old = Limits::new().memory(1 << 30).cpu_time(Duration::from_secs(60));
        assert!(live_changeable(&old, &old.clone().memory(1 << 20).max_procs(5).cpus(0.5)));
        assert!(live_changeable(&old, &old.clone().notify_on(LimitKind::Memory)));
        assert!(!live_changeable(&old, &old.clone().cpu_time(Duration::from_secs(5))));
        assert!(!live_changeable(&old, &old.clone().memory_per_process(1 << 20)));
    }

    #[test]
    fn a_change_keeps_what_it_does_not_name() {
        let l = Limits::new().memory(1 << 30).max_procs(10);
        let c = LimitChange { cpus: Some(0.5), ..LimitChange::default() };
        let n = c.apply(&l);
        assert_eq!((n.memory, n.max_procs, n.cpus), (Some(1 << 30), Some(10), Some(0.5)));
        assert_eq!(c.describe(), "cpus 0.5");
        assert!(LimitChange::default().is_empty());
    }
}
