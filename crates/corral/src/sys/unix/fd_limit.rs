//! The open-file limit a leader starts with.
//!
//! A daemon raises its own soft RLIMIT_NOFILE (it holds clients, log pipes
//! and listeners), and a child inherits the soft limit it is forked with:
//! every service would start with the daemon's raised limit where its
//! launcher (systemd: 1024) meant it to have less, and a program that
//! sizes tables by the limit or still calls `select(2)` pays for it.
//! [`remember`] records the soft limit before the raise; the spawn paths
//! put it back in the child, with the hard limit left as it is.

use super::Rlimit;
use std::sync::OnceLock;

static LAUNCHER_SOFT: OnceLock<u64> = OnceLock::new();

/// The soft and hard RLIMIT_NOFILE of this process now.
fn current() -> Option<(u64, u64)> {
    let mut r = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit writes into the struct we own.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) } != 0 {
        return None;
    }
    #[allow(clippy::useless_conversion)] // rlim_t is u64 on every Unix corral builds for
    Some((u64::from(r.rlim_cur), u64::from(r.rlim_max)))
}

/// Records the current soft limit as the one leaders start with. The
/// first call wins, so a second raise does not move it.
pub(crate) fn remember() {
    if let Some((soft, _)) = current() {
        let _ = LAUNCHER_SOFT.get_or_init(|| soft);
    }
}

/// The rlimit that gives a leader the remembered soft limit back; `None`
/// when nothing was remembered or the limit was not changed since.
pub(crate) fn for_child() -> Option<Rlimit> {
    let want = *LAUNCHER_SOFT.get()?;
    let (soft, hard) = current()?;
    restore(want, soft, hard)
}

/// Pure part of [`for_child`]: never above the hard limit in force.
fn restore(want: u64, soft: u64, hard: u64) -> Option<Rlimit> {
    let want = want.min(hard);
    #[allow(clippy::unnecessary_cast)] // RLIMIT_NOFILE is u32 on glibc, i32 on macOS
    (want != soft).then_some(Rlimit { resource: libc::RLIMIT_NOFILE as i32, soft: want, hard })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_launchers_soft_limit_comes_back_under_the_hard_one() {
        let r = restore(1024, 524_288, 524_288).unwrap();
        assert_eq!((r.soft, r.hard), (1024, 524_288));
        assert_eq!(restore(1024, 1024, 4096), None, "unchanged: nothing to set");
        assert_eq!(restore(4096, 2048, 2048), None, "never above the hard limit");
        let r = restore(4096, 8192, 2048).unwrap();
        assert_eq!((r.soft, r.hard), (2048, 2048));
    }
}
