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

/// The order of contenders for round `round`: a Williams design, so that
/// over a cycle of rounds (`n` of them for an even `n`, `2n` for an odd one)
/// every contender runs once in every place and right after every other
/// contender equally often.
///
/// A plain rotation (`round, round + 1, …`) lets no contender always run
/// first, but it puts every contender behind the same neighbour in almost
/// every round, and what a contender leaves behind is paid by the next one:
/// a cgroup removed (the kernel frees it later, in its own workers, on the
/// same two cores), caches filled with its code, a scheduler in another
/// state. With a rotation over the spawn table, corral with limits ran
/// behind processkit's new-group-per-call in 8 of 9 rounds and measured
/// 1.19 × std, against 1.13 × with processkit left out.
pub fn balanced_order(n: usize, round: usize) -> impl Iterator<Item = usize> {
    // The design's first row, 0, 1, n-1, 2, n-2, …: the steps between
    // neighbours are 1, -2, 3, -4, …, every difference mod n once, so
    // shifting the row by the round pairs every contender with every
    // other as its predecessor once. For an odd n the differences repeat
    // in pairs; the mirrored rows (the second half of the cycle) even them out.
    let n = n.max(1);
    let cycle = if n.is_multiple_of(2) { n } else { 2 * n };
    let r = round % cycle;
    let (shift, mirrored) = (r % n, r >= n);
    (0..n).map(move |i| {
        let place = if mirrored { n - 1 - i } else { i };
        let base = if place % 2 == 1 { place / 2 + 1 } else { (n - place / 2) % n };
        (base + shift) % n
    })
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
    fn balanced_order_visits_everyone_once() {
        for n in 1..=10 {
            for round in 0..2 * n {
                let mut order: Vec<usize> = balanced_order(n, round).collect();
                order.sort_unstable();
                assert_eq!(order, (0..n).collect::<Vec<_>>(), "n = {n}, round {round}");
            }
        }
    }

    #[test]
    fn balanced_order_balances_places_and_predecessors() {
        for n in 2..=10usize {
            let cycle = if n.is_multiple_of(2) { n } else { 2 * n };
            let mut place = vec![vec![0; n]; n];
            let mut after = vec![vec![0; n]; n];
            for round in 0..cycle {
                let order: Vec<usize> = balanced_order(n, round).collect();
                for (i, &k) in order.iter().enumerate() {
                    place[k][i] += 1;
                }
                for w in order.windows(2) {
                    after[w[1]][w[0]] += 1;
                }
            }
            let per_place = cycle / n;
            let per_pair = cycle / n;
            for k in 0..n {
                assert!(place[k].iter().all(|&c| c == per_place), "n = {n}: {k} by place {:?}", place[k]);
                for j in (0..n).filter(|&j| j != k) {
                    assert_eq!(after[k][j], per_pair, "n = {n}: {k} after {j}");
                }
            }
        }
    }

    #[test]
    fn units() {
        assert_eq!(secs(0.00065), "0.650 ms");
        assert_eq!(secs(1.5), "1.50 s");
        assert_eq!(ratio(2.0, 1.0), "2.00×");
    }
}
