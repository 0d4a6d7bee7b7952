//! Which fleet services a node runs: pure, so an operator can predict it.
//!
//! A service's `placement` selects nodes by labels (every label must
//! match) and, with `nodes = "P%"`, keeps the nodes whose **bucket** is
//! below P. A node's bucket is the 64-bit FNV-1a hash of its name, modulo
//! 100: stable across restarts, machines and versions, and independent of
//! which other nodes exist, so growing a percentage only adds nodes.

use std::collections::BTreeMap;

/// Where a fleet service runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placement {
    /// Labels a node must all have (empty: every node).
    pub labels: BTreeMap<String, String>,
    /// The share of the matching nodes, by [`bucket`] (100: all).
    pub percent: u8,
}

impl Default for Placement {
    fn default() -> Self {
        Placement { labels: BTreeMap::new(), percent: 100 }
    }
}

impl Placement {
    /// True when `node`, with `labels`, runs the service.
    pub fn selects(&self, node: &str, labels: &BTreeMap<String, String>) -> bool {
        self.labels.iter().all(|(k, v)| labels.get(k) == Some(v)) && bucket(node) < self.percent
    }
}

/// A node's bucket, 0 to 99: FNV-1a (64-bit) of the name's bytes, mod 100.
pub fn bucket(node: &str) -> u8 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in node.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    (h % 100) as u8
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn every_label_must_match() {
        let p = Placement { labels: labels(&[("zone", "a")]), percent: 100 };
        assert!(p.selects("n1", &labels(&[("zone", "a"), ("disk", "ssd")])));
        assert!(!p.selects("n1", &labels(&[("zone", "b")])));
        assert!(!p.selects("n1", &labels(&[])));
        assert!(Placement::default().selects("n1", &labels(&[])));
    }

    #[test]
    fn buckets_are_stable_and_documented() {
        // Pinned: changing the hash would move services between nodes.
        assert_eq!(bucket(""), (0xcbf2_9ce4_8422_2325u64 % 100) as u8);
        assert_eq!(bucket("web-1"), 39);
        let b = bucket("web-1");
        assert!(Placement { labels: BTreeMap::new(), percent: b + 1 }.selects("web-1", &BTreeMap::new()));
        assert!(!Placement { labels: BTreeMap::new(), percent: b }.selects("web-1", &BTreeMap::new()));
    }

    #[test]
    fn a_percentage_picks_about_that_share() {
        let n = (0..1000).filter(|i| bucket(&format!("node-{i}")) < 25).count();
        assert!((150..350).contains(&n), "{n} of 1000 in 25%");
    }
}
