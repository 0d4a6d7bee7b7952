//! When an alert fires and clears, and the CPU rate between samples, as
//! plain functions of the samples and a monotonic clock.

use std::time::Duration;

/// One alert's state across samples.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AlertState {
    above_since: Option<Duration>,
    firing: bool,
}

/// A change of an alert.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// The value has been above the threshold for the hold time.
    Fired,
    /// The value fell back to or under the threshold after firing.
    Cleared,
}

impl AlertState {
    /// Takes one sample at `now`. An unknown value changes nothing. Fires
    /// once per excursion: after firing, only a fall back re-arms it.
    pub fn observe(&mut self, threshold: f64, hold: Duration, value: Option<f64>, now: Duration) -> Option<Change> {
        let value = value?;
        if value > threshold {
            let since = *self.above_since.get_or_insert(now);
            if !self.firing && now.saturating_sub(since) >= hold {
                self.firing = true;
                return Some(Change::Fired);
            }
            None
        } else {
            self.above_since = None;
            if std::mem::take(&mut self.firing) {
                Some(Change::Cleared)
            } else {
                None
            }
        }
    }

    /// Whether it has fired and not cleared.
    pub fn firing(&self) -> bool {
        self.firing
    }
}

/// CPU use in cores from successive cumulative CPU times.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CpuRate {
    last: Option<(Duration, Duration)>,
}

impl CpuRate {
    /// The cores used since the previous sample; `None` for the first
    /// sample, or when the clock did not move or the counter went back.
    pub fn sample(&mut self, cpu: Duration, now: Duration) -> Option<f64> {
        let prev = self.last.replace((cpu, now));
        let (pcpu, pnow) = prev?;
        if now <= pnow || cpu < pcpu {
            return None;
        }
        Some((cpu - pcpu).as_secs_f64() / (now - pnow).as_secs_f64())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    #[test]
    fn fires_after_the_hold_time_once_per_excursion() {
        let mut a = AlertState::default();
        let hold = s(3);
        let seq = [(0, 5.0), (1, 15.0), (2, 15.0), (3, 15.0), (4, 15.0), (5, 20.0), (6, 5.0), (7, 15.0), (10, 15.0)];
        let got: Vec<_> = seq.iter().map(|&(t, v)| a.observe(10.0, hold, Some(v), s(t))).collect();
        use Change::*;
        assert_eq!(got, [None, None, None, None, Some(Fired), None, Some(Cleared), None, Some(Fired)]);
    }

    #[test]
    fn a_dip_restarts_the_hold_time() {
        let mut a = AlertState::default();
        assert_eq!(a.observe(10.0, s(2), Some(11.0), s(0)), None);
        assert_eq!(a.observe(10.0, s(2), Some(9.0), s(1)), None);
        assert_eq!(a.observe(10.0, s(2), Some(11.0), s(2)), None);
        assert_eq!(a.observe(10.0, s(2), Some(11.0), s(4)), Some(Change::Fired));
    }

    #[test]
    fn zero_hold_fires_on_the_first_sample_above_and_unknown_values_change_nothing() {
        let mut a = AlertState::default();
        assert_eq!(a.observe(10.0, Duration::ZERO, None, s(0)), None);
        assert_eq!(a.observe(10.0, Duration::ZERO, Some(10.0), s(0)), None, "at the threshold is not above");
        assert_eq!(a.observe(10.0, Duration::ZERO, Some(10.5), s(1)), Some(Change::Fired));
        assert_eq!(a.observe(10.0, Duration::ZERO, None, s(2)), None);
        assert!(a.firing());
    }

    #[test]
    fn cpu_rate_is_cores_between_samples() {
        let mut r = CpuRate::default();
        assert_eq!(r.sample(s(10), s(100)), None);
        assert_eq!(r.sample(s(12), s(102)), Some(1.0));
        assert_eq!(r.sample(Duration::from_millis(12_500), s(103)), Some(0.5));
        assert_eq!(r.sample(s(20), s(103)), None, "the clock did not move");
    }
}
