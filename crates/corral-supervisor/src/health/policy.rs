//! Probe thresholds as plain data: a probe passes after
//! `success_threshold` passes in a row and fails after
//! `failure_threshold` failures in a row, and each crossing happens once
//! until the other one. No clock, no I/O.

use super::ProbeKind;

/// What one probe has seen so far in this run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tracker {
    success_threshold: u32,
    failure_threshold: u32,
    successes: u32,
    failures: u32,
    last_ok: Option<bool>,
    /// Whether the probe counts as passing now; `None` before any verdict.
    passing: Option<bool>,
}

/// A threshold that one result crossed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Crossed {
    /// `success_threshold` passes in a row, after not passing.
    Passed,
    /// `failure_threshold` failures in a row, after passing (or before any
    /// verdict).
    Failed,
}

/// What one result means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Step {
    /// A threshold crossed by this result.
    pub crossed: Option<Crossed>,
    /// Worth an event: the first failure of a streak, the first pass after
    /// failures, or a crossing. Every other result only updates counters.
    pub notable: bool,
    /// Failures in a row, this one included.
    pub failures: u32,
}

impl Tracker {
    /// A tracker in the state the probe starts in: liveness counts as
    /// passing until it fails, readiness as not passing until it passes
    /// (Kubernetes' rules), startup as neither.
    pub fn new(kind: ProbeKind, success_threshold: u32, failure_threshold: u32) -> Tracker {
        let passing = match kind {
            ProbeKind::Startup => None,
            ProbeKind::Readiness => Some(false),
            ProbeKind::Liveness => Some(true),
        };
        Tracker {
            success_threshold: success_threshold.max(1),
            failure_threshold: failure_threshold.max(1),
            successes: 0,
            failures: 0,
            last_ok: None,
            passing,
        }
    }

    /// The same tracker, counting as passing (or not) from the start. A
    /// readiness probe that a reload put in place goes on from the
    /// instance's readiness, as if it had always been its probe: it flips
    /// only by crossing a threshold, never merely by being new.
    pub fn starting_from(mut self, passing: bool) -> Tracker {
        self.passing = Some(passing);
        self
    }

    /// Records one result.
    pub fn record(&mut self, ok: bool) -> Step {
        let was = self.last_ok;
        self.last_ok = Some(ok);
        if ok {
            self.successes = self.successes.saturating_add(1);
            self.failures = 0;
        } else {
            self.failures = self.failures.saturating_add(1);
            self.successes = 0;
        }
        let crossed = if ok && self.successes >= self.success_threshold && self.passing != Some(true) {
            self.passing = Some(true);
            Some(Crossed::Passed)
        } else if !ok && self.failures >= self.failure_threshold && self.passing != Some(false) {
            self.passing = Some(false);
            Some(Crossed::Failed)
        } else {
            None
        };
        let streak_started = !ok && self.failures == 1;
        let recovered = ok && was == Some(false);
        Step { crossed, notable: crossed.is_some() || streak_started || recovered, failures: self.failures }
    }

    /// Whether the probe counts as passing now.
    pub fn passing(&self) -> Option<bool> {
        self.passing
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(t: &mut Tracker, results: &[bool]) -> Vec<Option<Crossed>> {
        results.iter().map(|&ok| t.record(ok).crossed).collect()
    }

    #[test]
    fn liveness_fails_once_after_threshold_failures_in_a_row() {
        let mut t = Tracker::new(ProbeKind::Liveness, 1, 3);
        let got = run(&mut t, &[true, false, false, true, false, false, false, false]);
        assert_eq!(got, [None, None, None, None, None, None, Some(Crossed::Failed), None]);
        assert_eq!(t.passing(), Some(false));
    }

    #[test]
    fn readiness_starts_not_ready_and_flips_both_ways() {
        let mut t = Tracker::new(ProbeKind::Readiness, 2, 2);
        // Failures before the first pass change nothing: it was never ready.
        let got = run(&mut t, &[false, false, false, true, true, true, false, false, true, true]);
        use Crossed::*;
        assert_eq!(got, [None, None, None, None, Some(Passed), None, None, Some(Failed), None, Some(Passed)]);
    }

    #[test]
    fn startup_crosses_either_way_from_no_verdict() {
        let mut t = Tracker::new(ProbeKind::Startup, 1, 2);
        assert_eq!(run(&mut t, &[false, false]), [None, Some(Crossed::Failed)]);
        let mut t = Tracker::new(ProbeKind::Startup, 1, 2);
        assert_eq!(run(&mut t, &[false, true]), [None, Some(Crossed::Passed)]);
    }

    #[test]
    fn only_streak_edges_and_crossings_are_notable() {
        let mut t = Tracker::new(ProbeKind::Liveness, 1, 3);
        let notable: Vec<bool> =
            [true, true, false, false, false, false, true, true].iter().map(|&ok| t.record(ok).notable).collect();
        assert_eq!(notable, [false, false, true, false, true, false, true, false]);
    }

    #[test]
    fn a_replaced_readiness_probe_goes_on_from_the_readiness_it_found() {
        use Crossed::*;
        // Ready: passes change nothing, a failure streak unreadies it.
        let mut t = Tracker::new(ProbeKind::Readiness, 1, 2).starting_from(true);
        assert_eq!(
            run(&mut t, &[true, false, true, false, false, true]),
            [None, None, None, None, Some(Failed), Some(Passed)]
        );
        // Not ready: failures change nothing, passes make it ready.
        let mut t = Tracker::new(ProbeKind::Readiness, 2, 1).starting_from(false);
        assert_eq!(run(&mut t, &[false, true, true]), [None, None, Some(Passed)]);
    }

    #[test]
    fn zero_thresholds_act_as_one() {
        let mut t = Tracker::new(ProbeKind::Liveness, 0, 0);
        assert_eq!(t.record(false).crossed, Some(Crossed::Failed));
    }
}
