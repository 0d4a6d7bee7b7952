//! What a group has used: CPU time where members are counted (a v2
//! leaf's `cpu.stat`, v1 `cpuacct`, or `/proc` plus what corral reaped),
//! memory where the limits live.

use super::group::Group;
use super::parts::{Controls, Holder};
use super::{procfs, unix};
use crate::Usage;
use std::time::Duration;

impl Group {
    pub(super) fn live_usage(&self) -> Usage {
        self.usage_of(self.members_cheap().unwrap_or_default())
    }

    /// The usage, given the members alive now (none once teardown found
    /// nothing left: no need to list them again).
    pub(super) fn usage_of(&self, members: Vec<u32>) -> Usage {
        let mut u = Usage {
            processes_active: members.len() as u64,
            processes_total: self.tracked.get().and_then(|t| t.total()),
            ..Usage::default()
        };
        let cpu = match self.parts.holder() {
            Holder::Leaf(v2) => v2.cpu(),
            Holder::V1(v1) => v1.cpu(),
            Holder::Pgid => None,
        };
        match cpu {
            Some((user, sys)) => {
                u.cpu_user = user.saturating_sub(self.cpu_base.0);
                u.cpu_system = sys.saturating_sub(self.cpu_base.1);
            }
            None => self.proc_usage(&members, &mut u),
        }
        match self.parts.controls() {
            Controls::V1(v1) if v1.has("memory") => {
                u.peak_memory = v1.memory_peak();
                u.memory_now = v1.memory_current();
            }
            Controls::V2(v2) => {
                u.peak_memory = v2.memory_peak();
                u.memory_now = v2.memory_current();
            }
            _ => {}
        }
        u
    }

    /// pgid: what reaped members used, plus the live ones now.
    fn proc_usage(&self, members: &[u32], u: &mut Usage) {
        let ticks = unix::clock_ticks();
        if let Some(o) = self.owner() {
            let r = *o.reaped.lock().unwrap_or_else(|p| p.into_inner());
            u.cpu_user = r.user;
            u.cpu_system = r.system;
            u.peak_memory = Some(r.maxrss);
        }
        for p in members {
            if let Some(st) = procfs::stat(*p) {
                u.cpu_user += Duration::from_secs_f64(st.utime as f64 / ticks as f64);
                u.cpu_system += Duration::from_secs_f64(st.stime as f64 / ticks as f64);
            }
        }
        let now: u64 = members.iter().filter_map(|p| procfs::rss_bytes(*p)).sum();
        u.memory_now = Some(now);
        let biggest = members.iter().filter_map(|p| procfs::rss_bytes(*p)).max().unwrap_or(0);
        u.peak_memory = Some(u.peak_memory.unwrap_or(0).max(biggest));
    }
}
