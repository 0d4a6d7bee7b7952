//! Deadlines that never overflow. `Instant + Duration` panics past the
//! clock's range, and a configured timeout or grace period must never be
//! able to crash the code that waits for it.

use std::time::{Duration, Instant};

/// `start + d`, or the latest instant the clock can hold on the way to it:
/// a deadline so far away that it never comes, rather than a panic.
pub fn after(start: Instant, d: Duration) -> Instant {
    let mut d = d;
    loop {
        if let Some(t) = start.checked_add(d) {
            return t;
        }
        // Halving reaches a representable step within 64 rounds (at worst
        // zero, which always fits).
        d /= 2;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_deadline_in_range_is_exact() {
        let now = Instant::now();
        assert_eq!(after(now, Duration::from_secs(5)), now + Duration::from_secs(5));
        assert_eq!(after(now, Duration::ZERO), now);
    }

    #[test]
    fn a_deadline_past_the_clock_saturates_far_away() {
        let now = Instant::now();
        let far = after(now, Duration::MAX);
        assert!(far > now);
        // At least 100 years away: such a deadline never comes.
        assert!(far.duration_since(now) >= Duration::from_secs(36_525 * 86_400));
        assert!(after(now, Duration::from_secs(i64::MAX as u64)) > now);
    }
}
