//! Exponential backoff between restarts, with jitter so that services that
//! failed together do not all come back in the same millisecond.

use std::time::Duration;

/// `backoff = { initial, max, factor, reset_after, jitter }`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Backoff {
    /// The delay before the first restart.
    pub initial: Duration,
    /// The delay never grows past this (jitter included).
    pub max: Duration,
    /// Each further restart multiplies the delay by this.
    pub factor: f64,
    /// An instance that ran this long starts again from `initial`.
    pub reset_after: Duration,
    /// The delay is spread by ±this fraction (0.1 = ±10 %).
    pub jitter: f64,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            initial: Duration::from_millis(100),
            max: Duration::from_secs(30),
            factor: 2.0,
            reset_after: Duration::from_secs(60),
            jitter: 0.1,
        }
    }
}

impl Backoff {
    /// The delay before restart number `attempt` (0 for the first), given
    /// `random` drawn uniformly from [0, 1).
    pub fn delay(&self, attempt: u32, random: f64) -> Duration {
        let base = self.initial.as_secs_f64() * self.factor.powi(attempt.min(1000) as i32);
        let base = base.min(self.max.as_secs_f64());
        let spread = 1.0 + self.jitter * (2.0 * random.clamp(0.0, 1.0) - 1.0);
        let secs = (base * spread).clamp(0.0, self.max.as_secs_f64());
        // 0 × ∞ is NaN (initial 0 with a huge factor^attempt): never a panic,
        // the longest delay instead.
        corral::units::duration_from_secs(secs).unwrap_or(self.max)
    }

    /// The attempt number after an instance that ran for `ran_for`: back to
    /// 0 when it ran long enough to count as healthy.
    pub fn next_attempt(&self, attempt: u32, ran_for: Duration) -> u32 {
        if ran_for >= self.reset_after {
            0
        } else {
            attempt.saturating_add(1)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn grows_by_the_factor_without_jitter() {
        let b = Backoff { jitter: 0.0, ..Backoff::default() };
        let d: Vec<_> = (0..5).map(|a| b.delay(a, 0.5)).collect();
        assert_eq!(d, [ms(100), ms(200), ms(400), ms(800), ms(1600)]);
    }

    #[test]
    fn stops_growing_at_max() {
        let b = Backoff { max: ms(500), jitter: 0.0, ..Backoff::default() };
        assert_eq!(b.delay(10, 0.5), ms(500));
        assert_eq!(b.delay(u32::MAX, 0.5), ms(500));
    }

    #[test]
    fn jitter_stays_within_its_fraction_and_under_max() {
        let b = Backoff::default();
        assert_eq!(b.delay(0, 0.0), ms(90));
        assert_eq!(b.delay(0, 0.5), ms(100));
        assert!(b.delay(0, 0.999_999) <= ms(110));
        let capped = Backoff { max: ms(100), ..Backoff::default() };
        assert!(capped.delay(5, 0.999) <= ms(100));
    }

    #[test]
    fn extreme_settings_give_a_delay_within_max_never_a_panic() {
        let b = Backoff { initial: Duration::ZERO, factor: 1000.0, jitter: 1.0, ..Backoff::default() };
        for attempt in [0, 1, 200, 1000, u32::MAX] {
            for r in [0.0, 0.5, 0.999, f64::NAN] {
                assert!(b.delay(attempt, r) <= b.max, "{attempt} {r}");
            }
        }
        let far = Backoff { max: corral::units::MAX_DURATION, factor: 1000.0, ..Backoff::default() };
        assert!(far.delay(u32::MAX, 0.5) <= corral::units::MAX_DURATION);
    }

    #[test]
    fn a_long_run_resets_the_attempts() {
        let b = Backoff::default();
        assert_eq!(b.next_attempt(3, Duration::from_secs(1)), 4);
        assert_eq!(b.next_attempt(3, Duration::from_secs(60)), 0);
    }
}
