//! systemd's start limit: more than `burst` starts within `interval` and
//! the instance is `failed`, no longer restarted until someone starts it.

use std::collections::VecDeque;
use std::time::Duration;

/// `start_limit = { burst, interval }`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StartLimit {
    /// Starts allowed within `interval`.
    pub burst: u32,
    /// The sliding window.
    pub interval: Duration,
}

impl Default for StartLimit {
    fn default() -> Self {
        StartLimit { burst: 5, interval: Duration::from_secs(10) }
    }
}

impl StartLimit {
    /// Whether one more start at `now` is allowed, given the times of the
    /// earlier starts (any monotonic origin). Forgets starts that fell out
    /// of the window.
    pub fn allows(&self, starts: &mut VecDeque<Duration>, now: Duration) -> bool {
        while let Some(&first) = starts.front() {
            if now.saturating_sub(first) >= self.interval {
                starts.pop_front();
            } else {
                break;
            }
        }
        starts.len() < self.burst as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    #[test]
    fn burst_starts_are_allowed_then_no_more() {
        let limit = StartLimit { burst: 3, interval: s(10) };
        let mut starts = VecDeque::new();
        for t in 0..3 {
            assert!(limit.allows(&mut starts, s(t)));
            starts.push_back(s(t));
        }
        assert!(!limit.allows(&mut starts, s(3)));
    }

    #[test]
    fn old_starts_fall_out_of_the_window() {
        let limit = StartLimit { burst: 2, interval: s(10) };
        let mut starts: VecDeque<_> = [s(0), s(5)].into();
        assert!(!limit.allows(&mut starts, s(9)));
        assert!(limit.allows(&mut starts, s(10)));
        assert_eq!(starts, [s(5)]);
    }
}
