//! Medians and spreads of samples, and how they are printed.

use std::time::Duration;

/// Samples of one quantity for one contender.
#[derive(Debug, Clone, Default)]
pub struct Samples(Vec<f64>);

impl Samples {
    pub fn push(&mut self, v: f64) {
        self.0.push(v);
    }
    pub fn push_duration(&mut self, d: Duration) {
        self.0.push(d.as_secs_f64());
    }
    pub fn len(&self) -> usize {
        self.0.len()
    }

    fn sorted(&self) -> Vec<f64> {
        let mut v = self.0.clone();
        v.sort_by(f64::total_cmp);
        v
    }

    /// The q-quantile (0..=1), interpolated between the two nearest ranks.
    pub fn quantile(&self, q: f64) -> f64 {
        let v = self.sorted();
        if v.is_empty() {
            return f64::NAN;
        }
        let pos = q.clamp(0.0, 1.0) * (v.len() - 1) as f64;
        let lo = pos.floor() as usize;
        let hi = pos.ceil() as usize;
        v[lo] + (v[hi] - v[lo]) * (pos - lo as f64)
    }
    pub fn median(&self) -> f64 {
        self.quantile(0.5)
    }
    pub fn min(&self) -> f64 {
        self.sorted().first().copied().unwrap_or(f64::NAN)
    }
    pub fn max(&self) -> f64 {
        self.sorted().last().copied().unwrap_or(f64::NAN)
    }
}

/// A time in seconds, printed in the unit that suits it.
pub fn secs(s: f64) -> String {
    if s.is_nan() {
        "—".into()
    } else if s >= 1.0 {
        format!("{s:.2} s")
    } else if s >= 0.01 {
        format!("{:.1} ms", s * 1e3)
    } else if s >= 0.000_1 {
        format!("{:.3} ms", s * 1e3)
    } else {
        format!("{:.1} µs", s * 1e6)
    }
}

/// Bytes as MiB.
pub fn mib(b: f64) -> String {
    if b.is_nan() {
        "—".into()
    } else {
        format!("{:.1} MiB", b / (1024.0 * 1024.0))
    }
}

/// `a / b` as `1.23×`, or a dash when it means nothing.
pub fn ratio(a: f64, b: f64) -> String {
    if a.is_nan() || b.is_nan() || b == 0.0 {
        "—".into()
    } else {
        format!("{:.2}×", a / b)
    }
}

/// The order of contenders for round `round`: rotated, so that no contender
/// always runs first (on a cold cache) or last.
pub fn rotation(n: usize, round: usize) -> impl Iterator<Item = usize> {
    (0..n).map(move |i| (i + round) % n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_interpolate() {
        let mut s = Samples::default();
        for v in [4.0, 1.0, 3.0, 2.0] {
            s.push(v);
        }
        assert_eq!(s.median(), 2.5);
        assert_eq!(s.quantile(0.0), 1.0);
        assert_eq!(s.quantile(1.0), 4.0);
    }

    #[test]
    fn rotation_visits_everyone_once() {
        let order: Vec<usize> = rotation(3, 4).collect();
        assert_eq!(order, vec![1, 2, 0]);
    }

    #[test]
    fn units() {
        assert_eq!(secs(0.00065), "0.650 ms");
        assert_eq!(secs(1.5), "1.50 s");
        assert_eq!(ratio(2.0, 1.0), "2.00×");
    }
}
