//! CPU time and resident memory of one process, for the tree route
//! (`api/tree.rs`). The library measures whole groups; this is the one
//! per-process figure the dashboard draws on each node.
//!
//! Linux reads `/proc/<pid>/stat` (utime + stime, in clock ticks) and
//! `/proc/<pid>/statm` (resident pages). A process that exits between the
//! listing and the read just has no figures. Elsewhere: unknown.

/// What one process has used; `None` when it cannot be read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct ProcUsage {
    /// User + system CPU time, in milliseconds.
    pub cpu_ms: Option<u64>,
    /// Resident memory now, in bytes.
    pub rss_bytes: Option<u64>,
}

/// The usage of `pid` now.
#[cfg(target_os = "linux")]
pub(crate) fn of(pid: u32) -> ProcUsage {
    // SAFETY: sysconf has no preconditions.
    let (tick, page) = unsafe { (libc::sysconf(libc::_SC_CLK_TCK), libc::sysconf(libc::_SC_PAGESIZE)) };
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok();
    let statm = std::fs::read_to_string(format!("/proc/{pid}/statm")).ok();
    // c_long is i32 on 32-bit targets.
    #[allow(clippy::useless_conversion)]
    let tick = i64::from(tick);
    ProcUsage {
        cpu_ms: stat.as_deref().and_then(cpu_ticks).and_then(|t| ticks_to_ms(t, tick)),
        rss_bytes: statm
            .as_deref()
            .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
            .map(|pages| pages.saturating_mul(u64::try_from(page).unwrap_or(4096))),
    }
}

/// Unknown outside Linux.
#[cfg(not(target_os = "linux"))]
pub(crate) fn of(_pid: u32) -> ProcUsage {
    ProcUsage::default()
}

/// utime + stime from a `/proc/<pid>/stat` line. The command name may hold
/// spaces and parentheses, so the fields are counted from its last `)`.
#[cfg(any(target_os = "linux", test))]
fn cpu_ticks(stat: &str) -> Option<u64> {
    let (_, rest) = stat.rsplit_once(") ")?;
    let mut f = rest.split_whitespace().skip(11);
    let user: u64 = f.next()?.parse().ok()?;
    let system: u64 = f.next()?.parse().ok()?;
    Some(user.saturating_add(system))
}

#[cfg(any(target_os = "linux", test))]
fn ticks_to_ms(ticks: u64, per_second: i64) -> Option<u64> {
    let per_second = u64::try_from(per_second).ok().filter(|&t| t > 0)?;
    Some(ticks.saturating_mul(1000) / per_second)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cpu_fields_are_counted_from_the_last_parenthesis() {
        let line = "42 (a) b (c)) S 1 42 42 0 -1 4194304 100 0 0 0 250 50 0 0 20 0 1 0 1234 0 0";
        assert_eq!(cpu_ticks(line), Some(300));
        assert_eq!(ticks_to_ms(300, 100), Some(3000));
        assert_eq!(ticks_to_ms(300, 0), None);
        assert_eq!(cpu_ticks("garbage"), None);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn this_process_has_memory() {
        let u = of(std::process::id());
        assert!(u.rss_bytes.is_some_and(|b| b > 0), "{u:?}");
        assert!(u.cpu_ms.is_some(), "{u:?}");
    }
}
