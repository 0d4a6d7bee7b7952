//! The status a node publishes for each instance of a fleet service,
//! under its lease (so a dead node's status goes with it), and only what
//! changed: a steady fleet writes nothing but keep-alives.

use super::keys::Keys;
use crate::state::InstanceStatus;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The value under `status/<node>/<service>/<i>`. Nothing in it changes
/// while the instance runs steadily (no uptime, no usage).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstanceValue {
    /// `running`, `backoff`, …
    pub state: String,
    /// Readiness.
    pub ready: bool,
    /// The leader's pid.
    pub pid: Option<u32>,
    /// Restarts so far.
    pub restarts: u32,
    /// The desired revision this instance runs.
    pub revision: u64,
}

/// Keys and values for the fleet services' instances.
#[cfg_attr(not(feature = "fleet"), allow(dead_code))]
pub(crate) fn snapshot(
    keys: &Keys,
    node: &str,
    instances: &[InstanceStatus],
    revisions: &BTreeMap<String, u64>,
) -> BTreeMap<String, String> {
    instances
        .iter()
        .filter_map(|i| {
            let revision = *revisions.get(&i.service)?;
            let v = InstanceValue {
                state: i.state.as_str().to_string(),
                ready: i.ready,
                pid: i.pid,
                restarts: i.restarts,
                revision,
            };
            Some((keys.instance(node, &i.service, i.instance), serde_json::to_string(&v).ok()?))
        })
        .collect()
}

/// What to write and delete to go from `last` to `now`.
#[cfg_attr(not(feature = "fleet"), allow(dead_code))]
pub(crate) fn changes(
    last: &BTreeMap<String, String>,
    now: &BTreeMap<String, String>,
) -> (Vec<(String, String)>, Vec<String>) {
    let puts = now.iter().filter(|(k, v)| last.get(*k) != Some(v)).map(|(k, v)| (k.clone(), v.clone())).collect();
    let deletes = last.keys().filter(|k| !now.contains_key(*k)).cloned().collect();
    (puts, deletes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn only_what_changed_is_written() {
        let last = map(&[("a", "1"), ("b", "2"), ("c", "3")]);
        let now = map(&[("a", "1"), ("b", "20"), ("d", "4")]);
        let (puts, dels) = changes(&last, &now);
        assert_eq!(puts, vec![("b".to_string(), "20".to_string()), ("d".to_string(), "4".to_string())]);
        assert_eq!(dels, vec!["c".to_string()]);
        let (puts, dels) = changes(&now, &now);
        assert!(puts.is_empty() && dels.is_empty());
    }
}
