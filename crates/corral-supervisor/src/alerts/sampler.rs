//! One timer for every alert of every instance. Each tick takes the
//! groups to sample under a lock, reads their `usage()` in one blocking
//! task (file reads on Linux, one query per job on Windows), and applies
//! the pure alert policy. No task per metric, no tight loop: with no
//! alert declared the timer does not even run.

use super::policy::{AlertState, Change, CpuRate};
use super::{AlertSpec, Firing, Threshold};
use crate::health::Verdict;
use corral::{Group, Usage};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};
use tokio::sync::mpsc::UnboundedSender;

/// The sampling period.
pub(crate) const PERIOD: Duration = Duration::from_secs(1);

/// Every watched group and its alerts.
pub(crate) struct Sampler {
    period: Duration,
    origin: Instant,
    inner: Mutex<Inner>,
}

struct Inner {
    next: u64,
    entries: BTreeMap<u64, Entry>,
    running: bool,
}

struct Entry {
    label: String,
    group: Arc<Group>,
    alerts: Vec<(AlertSpec, AlertState)>,
    cpu: CpuRate,
    tx: UnboundedSender<Box<Verdict>>,
    warned: bool,
}

/// A watched run. Dropping it stops the sampling of its group.
pub(crate) struct Watch {
    sampler: Arc<Sampler>,
    id: u64,
}

impl Drop for Watch {
    fn drop(&mut self) {
        self.sampler.lock().entries.remove(&self.id);
    }
}

impl Sampler {
    pub(crate) fn new(period: Duration) -> Arc<Sampler> {
        Arc::new(Sampler {
            period,
            origin: Instant::now(),
            inner: Mutex::new(Inner { next: 0, entries: BTreeMap::new(), running: false }),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Samples `group` for `alerts` until the returned guard is dropped;
    /// `None` when there are no alerts. Must run inside a tokio runtime.
    pub(crate) fn watch(
        self: &Arc<Self>,
        label: String,
        alerts: &[AlertSpec],
        group: Arc<Group>,
        tx: UnboundedSender<Box<Verdict>>,
    ) -> Option<Watch> {
        if alerts.is_empty() {
            return None;
        }
        let mut inner = self.lock();
        let id = inner.next;
        inner.next += 1;
        let alerts = alerts.iter().map(|a| (a.clone(), AlertState::default())).collect();
        inner.entries.insert(id, Entry { label, group, alerts, cpu: CpuRate::default(), tx, warned: false });
        if !inner.running {
            inner.running = true;
            tokio::spawn(run(Arc::downgrade(self), self.period));
        }
        Some(Watch { sampler: self.clone(), id })
    }

    /// The groups to sample now; stops the timer (under the same lock that
    /// `watch` starts it with) when there are none.
    fn targets(&self) -> Vec<(u64, Arc<Group>)> {
        let mut inner = self.lock();
        if inner.entries.is_empty() {
            inner.running = false;
        }
        inner.entries.iter().map(|(id, e)| (*id, e.group.clone())).collect()
    }

    fn apply(&self, samples: Vec<(u64, Usage)>, now: Duration) {
        let mut inner = self.lock();
        for (id, usage) in samples {
            // Gone since the sample was taken: its run ended.
            let Some(e) = inner.entries.get_mut(&id) else { continue };
            let cores = e.cpu.sample(usage.cpu_total(), now);
            if usage.memory_now.is_none() && !e.warned && e.alerts.iter().any(|(a, _)| a.threshold.metric() == "memory")
            {
                e.warned = true;
                eprintln!(
                    "corral: {}: the memory of this group is not measured on the {} backend; its memory alerts cannot fire",
                    e.label,
                    e.group.backend().as_str()
                );
            }
            for (spec, state) in &mut e.alerts {
                let value = match spec.threshold {
                    Threshold::Memory(_) => usage.memory_now.map(|m| m as f64),
                    Threshold::Cpu(_) => cores,
                };
                if let (Some(change), Some(v)) = (state.observe(spec.threshold.level(), spec.hold, value, now), value) {
                    let firing = change == Change::Fired;
                    let _ = e.tx.send(Box::new(Verdict::Alert(Firing { alert: spec.clone(), value: v, firing })));
                }
            }
        }
    }
}

async fn run(sampler: Weak<Sampler>, period: Duration) {
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // The first tick is immediate; a run that just started has nothing to say yet.
    tick.tick().await;
    loop {
        tick.tick().await;
        let Some(s) = sampler.upgrade() else { return };
        let targets = s.targets();
        if targets.is_empty() {
            return;
        }
        let Ok(samples) =
            tokio::task::spawn_blocking(move || targets.into_iter().map(|(id, g)| (id, g.usage())).collect()).await
        else {
            continue;
        };
        s.apply(samples, s.origin.elapsed());
    }
}
