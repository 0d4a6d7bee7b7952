//! The daemon's open-file limit (RLIMIT_NOFILE).
//!
//! The soft limit is what `open`, `accept` and `pipe` run into; the hard
//! limit is the ceiling an unprivileged process may raise it to. Many
//! launchers leave the soft limit at 1024 under a far larger hard one, so
//! the daemon raises it to the hard limit at start, but never past
//! [`CEILING`]: an unlimited hard limit would otherwise make every
//! fd-sized table (and the children's inherited limit) absurdly large.
//! Services get the launcher's soft limit back (the library restores it
//! in each leader), and their own limits through the library.

/// The soft limit is never raised past this.
#[cfg(any(unix, test))]
pub(crate) const CEILING: u64 = 1 << 20;

/// The soft limit to ask for, given the current soft and hard limits:
/// the hard one, bounded by [`CEILING`], and never lower than now.
#[cfg(any(unix, test))]
pub(crate) fn target(soft: u64, hard: u64) -> u64 {
    soft.max(hard.min(CEILING))
}

/// Raises the soft limit as [`target`] says and returns the soft limit in
/// force afterwards (unchanged when the OS refused). `None` where there is
/// no such limit (Windows: handles are not bounded this way).
#[cfg(unix)]
pub(crate) fn raise() -> Option<u64> {
    // Services start with the limit the daemon was given, not this one.
    corral::keep_open_file_limit_for_leaders();
    let mut r = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit writes into the struct we own.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) } != 0 {
        return None;
    }
    // rlim_t is u64 on every Unix corral builds for.
    let (soft, hard): (u64, u64) = (r.rlim_cur, r.rlim_max);
    let want = target(soft, hard);
    if want > soft {
        let new = libc::rlimit { rlim_cur: want, rlim_max: r.rlim_max };
        // SAFETY: setrlimit reads the struct we own.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &new) } == 0 {
            return Some(want);
        }
        // macOS refuses more than its per-process maximum: keep what we have.
    }
    Some(soft)
}

/// Windows has no per-process descriptor limit to raise.
#[cfg(not(unix))]
pub(crate) fn raise() -> Option<u64> {
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_soft_limit_goes_up_to_the_hard_one_within_the_ceiling() {
        assert_eq!(target(1024, 524_288), 524_288);
        assert_eq!(target(96, 160), 160);
        assert_eq!(target(1024, u64::MAX), CEILING);
        assert_eq!(target(1024, 1024), 1024);
        // A soft limit already past the ceiling is left as it is.
        assert_eq!(target(CEILING * 2, u64::MAX), CEILING * 2);
    }
}
