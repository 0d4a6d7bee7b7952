//! Limits that change while the group runs, and limits whose hit is news
//! rather than a death (`Limits::notify`).
//!
//! A notify-only limit is written where the kernel throttles or refuses
//! instead of killing:
//! - memory: `memory.high` on v2 (reclaim and throttle above it; each
//!   crossing counts in `memory.events` `high`), `memory.soft_limit_in_bytes`
//!   on v1 (reclaimed first under pressure; corral samples the usage
//!   against it, since v1 has no counter);
//! - processes: `pids.max` refuses the fork either way; only the verdict
//!   differs (`pids.events` `max`);
//! - CPU rate: the quota throttles either way; `cpu.stat` `nr_throttled`
//!   counts the periods that were.
//!
//! A live change writes the same files. A limit needs its controller: a
//! group created without a process limit on a v1 or hybrid host has no
//! pids cgroup, and the error says to restart it with one.

use super::cgroup_v2::read_keyed;
use super::enforce::Counted;
use super::group::Group;
use crate::sys::Change;
use crate::{Error, ErrorKind, LimitKind, Limits};
use std::fs;
use std::io;
use std::path::Path;
use std::sync::atomic::Ordering;

fn write(path: &Path, value: impl ToString) -> io::Result<()> {
    fs::write(path, value.to_string())
}

fn quota(cores: f64) -> u64 {
    ((cores * 100_000.0).round() as u64).max(1000)
}

impl Group {
    /// The limits in force now.
    pub(super) fn live_limits(&self) -> Limits {
        self.live.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub(super) fn change_limits(&self, new: &Limits) -> crate::Result<()> {
        let mut live = self.live.lock().unwrap_or_else(|p| p.into_inner());
        if new.memory_per_process != live.memory_per_process
            || new.cpu_time != live.cpu_time
            || new.cpu_time_per_process != live.cpu_time_per_process
        {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                "memory_per_process, cpu_time and cpu_time_per_process are fixed when the group starts",
            )
            .hint("restart the group to change them"));
        }
        let refused = |what: &str, e: io::Error| {
            let hint = match e.kind() {
                io::ErrorKind::Unsupported => {
                    "restart the group with this limit set, so that its controller is created"
                }
                _ => "the kernel refused the value: memory below what the group uses now may be refused (EBUSY)",
            };
            Error::os(format!("changing the {what} of the running group ({} backend)", self.kind()), e).hint(hint)
        };
        let unsupported = || io::Error::from(io::ErrorKind::Unsupported);
        let (v2, v1) = (self.parts.controls().v2(), self.parts.controls().v1());
        let notify_mem = new.notifies(LimitKind::Memory);
        if new.memory != live.memory || notify_mem != live.notifies(LimitKind::Memory) {
            let (hard, soft) = match (new.memory, notify_mem) {
                (Some(m), true) => (None, Some(m)),
                (m, _) => (m, None),
            };
            let r = if let Some(v2) = v2 {
                write(&v2.file("memory.high"), soft.map_or("max".into(), |m| m.to_string()))
                    .and_then(|_| write(&v2.file("memory.max"), hard.map_or("max".into(), |m| m.to_string())))
            } else if let Some(d) = v1.and_then(|v| v.dir("memory")) {
                let limit = hard.map_or("-1".to_string(), |m| m.to_string());
                // memsw must stay >= the limit: raise it first, lower it after.
                let _ = write(&d.join("memory.memsw.limit_in_bytes"), &limit);
                write(&d.join("memory.limit_in_bytes"), &limit)
                    .and_then(|_| {
                        write(&d.join("memory.soft_limit_in_bytes"), soft.map_or("-1".into(), |m| m.to_string()))
                    })
                    .map(|_| {
                        let _ = write(&d.join("memory.memsw.limit_in_bytes"), &limit);
                    })
            } else {
                Err(unsupported())
            };
            r.map_err(|e| refused("memory limit", e))?;
        }
        if new.max_procs != live.max_procs {
            let value = new.max_procs.map_or("max".to_string(), |n| n.to_string());
            let r = if let Some(v2) = v2 {
                write(&v2.file("pids.max"), value)
            } else if let Some(d) = v1.and_then(|v| v.dir("pids")) {
                write(&d.join("pids.max"), value)
            } else {
                Err(unsupported())
            };
            r.map_err(|e| refused("process limit", e))?;
        }
        if new.cpus != live.cpus {
            let r = if let Some(v2) = v2 {
                write(
                    &v2.file("cpu.max"),
                    new.cpus.map_or("max 100000".to_string(), |c| format!("{} 100000", quota(c))),
                )
            } else if let Some(d) = v1.and_then(|v| v.dir("cpu")) {
                write(&d.join("cpu.cfs_period_us"), 100_000).and_then(|_| {
                    write(&d.join("cpu.cfs_quota_us"), new.cpus.map_or("-1".to_string(), |c| quota(c).to_string()))
                })
            } else {
                Err(unsupported())
            };
            r.map_err(|e| refused("CPU rate", e))?;
        }
        // A counter followed from now on starts from what it reads now:
        // kills before the limit were not the limit's.
        let (was, now) = (Counted::of(&live), Counted::of(new));
        let controls = self.parts.controls();
        if now.oom_kills && !was.oom_kills {
            self.seen_oom.store(controls.oom_kills(), Ordering::Relaxed);
        }
        if now.pids_max_hits && !was.pids_max_hits {
            self.seen_pids_max.store(controls.pids_max_hits(), Ordering::Relaxed);
        }
        *live = new.clone();
        Ok(())
    }

    /// Writes a notify-only memory limit at creation (instead of the hard one).
    pub(super) fn configure_notify_memory(&self, bytes: u64) -> io::Result<()> {
        if let Some(v2) = self.parts.controls().v2() {
            return write(&v2.file("memory.high"), bytes);
        }
        match self.parts.controls().v1().and_then(|v| v.dir("memory")) {
            Some(d) => write(&d.join("memory.soft_limit_in_bytes"), bytes),
            None => Err(io::ErrorKind::Unsupported.into()),
        }
    }

    /// Hits of notify-only memory and CPU-rate limits since the last look.
    pub(super) fn limit_notices(&self, live: &Limits) -> Vec<Change> {
        let mut out = Vec::new();
        let (v2, v1) = (self.parts.controls().v2(), self.parts.controls().v1());
        if let (Some(limit), true) = (live.memory, live.notifies(LimitKind::Memory)) {
            if let Some(v2) = v2 {
                let high = read_keyed(&v2.file("memory.events"), "high").unwrap_or(0);
                if high > self.seen_high.swap(high, Ordering::Relaxed) {
                    out.push(Change::LimitNotice(LimitKind::Memory));
                }
            } else if let Some(v1) = v1 {
                // One notice per crossing, not one per sample above it.
                let over = v1.memory_current().is_some_and(|now| now > limit);
                if over && !self.above_soft.swap(true, Ordering::Relaxed) {
                    out.push(Change::LimitNotice(LimitKind::Memory));
                } else if !over {
                    self.above_soft.store(false, Ordering::Relaxed);
                }
            }
        }
        if live.cpus.is_some() && live.notifies(LimitKind::CpuRate) {
            let stat = match (v2, v1.and_then(|v| v.dir("cpu"))) {
                (Some(v2), _) => Some(v2.file("cpu.stat")),
                (None, Some(d)) => Some(d.join("cpu.stat")),
                _ => None,
            };
            let throttled = stat.and_then(|p| read_keyed(&p, "nr_throttled")).unwrap_or(0);
            if throttled > self.seen_throttled.swap(throttled, Ordering::Relaxed) {
                out.push(Change::LimitNotice(LimitKind::CpuRate));
            }
        }
        out
    }
}
