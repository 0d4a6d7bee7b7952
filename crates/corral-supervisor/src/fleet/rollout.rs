//! Gray release, the pure part: the rollout object kept in etcd under
//! `rollouts/<service>`, which nodes each step covers, and whether a step
//! is healthy, failed or still waiting.
//!
//! The nodes of a step are the first ⌈P% × n⌉ of the live nodes that the
//! service's placement selects, ordered by bucket (see
//! [`placement::bucket`](super::placement::bucket)) then name: the same
//! order every time, so the canary is predictable and each step only adds
//! nodes.

use super::placement::bucket;
use super::status::InstanceValue;
use serde::{Deserialize, Serialize};

/// At most this many history entries are kept (the oldest go first).
pub const MAX_HISTORY: usize = 100;

/// Where a rollout is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RolloutState {
    /// Steps advance as they prove healthy.
    Running,
    /// Stopped where it is, by an operator or a failed step without
    /// `auto_rollback`; `resume`, `promote`, `abort` or `rollback`.
    Paused,
    /// Every node runs the new revision.
    Done,
    /// Every node is back on the old revision.
    RolledBack,
}

impl RolloutState {
    /// True while a driver has work.
    pub fn is_active(self) -> bool {
        matches!(self, RolloutState::Running | RolloutState::Paused)
    }
}

/// One decision, for the record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// When (RFC 3339 UTC).
    pub at: String,
    /// Who decided (a driver's node, or an operator).
    pub by: String,
    /// What happened.
    pub what: String,
}

/// The value under `rollouts/<service>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rollout {
    /// The revision replaced.
    pub from: u64,
    /// The revision rolled out.
    pub to: u64,
    /// The TOML of `from`, to roll back to (also after the rollout is done).
    pub from_spec: String,
    /// The share of nodes after each step, in percent, ending at 100.
    pub steps: Vec<u8>,
    /// The step in progress (an index into `steps`).
    pub step: usize,
    /// Where it is.
    pub state: RolloutState,
    /// How long every instance of a step must be ready before the next.
    pub pause_ms: u64,
    /// Roll back by itself when a step fails.
    pub auto_rollback: bool,
    /// Why it paused or rolled back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The node driving it now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub driver: Option<String>,
    /// Every decision, oldest first.
    pub history: Vec<Entry>,
}

impl Rollout {
    /// Records a decision.
    pub fn note(&mut self, by: &str, what: impl Into<String>) {
        self.history.push(Entry { at: crate::time::now_rfc3339(), by: by.into(), what: what.into() });
        let extra = self.history.len().saturating_sub(MAX_HISTORY);
        self.history.drain(..extra);
    }
}

/// `--canary C% --step S%`: C, C+S, C+2S, … then 100.
pub fn steps(canary: u8, step: u8) -> Vec<u8> {
    let (canary, step) = (canary.clamp(1, 100), step.clamp(1, 100));
    let mut out = vec![canary];
    while *out.last().expect("one") < 100 {
        out.push(out.last().expect("one").saturating_add(step).min(100));
    }
    out
}

/// The nodes of a step at `percent`: see the module's note.
pub fn pick(nodes: &[String], percent: u8) -> Vec<String> {
    let mut sorted: Vec<&String> = nodes.iter().collect();
    sorted.sort_by_key(|n| (bucket(n), n.as_str()));
    let count = (nodes.len() * usize::from(percent)).div_ceil(100);
    let mut out: Vec<String> = sorted.into_iter().take(count).cloned().collect();
    out.sort();
    out
}

/// How a step is doing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Some instance is not on the new revision, or not ready yet.
    Waiting,
    /// Every instance on the step's nodes runs the new revision, ready.
    Healthy,
    /// A new instance crashed, backed off, failed or exited: why.
    Failed(String),
}

/// Judges a step from the published status of the service's instances
/// (`(node, index, value)`) on the step's nodes.
pub fn judge(instances: &[(String, u32, InstanceValue)], nodes: &[String], to: u64) -> Verdict {
    let mut waiting = false;
    for node in nodes {
        let mine: Vec<_> = instances.iter().filter(|(n, _, _)| n == node).collect();
        if mine.is_empty() {
            waiting = true;
        }
        for (_, i, v) in mine {
            if v.revision != to {
                waiting = true;
            } else if matches!(v.state.as_str(), "backoff" | "failed" | "exited") || v.restarts > 0 {
                return Verdict::Failed(format!(
                    "instance {i} of revision {to} on {node} is {} after {} restart(s)",
                    v.state, v.restarts
                ));
            } else if !(v.state == "running" && v.ready) {
                waiting = true;
            }
        }
    }
    if waiting {
        Verdict::Waiting
    } else {
        Verdict::Healthy
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(state: &str, ready: bool, restarts: u32, revision: u64) -> InstanceValue {
        InstanceValue { state: state.into(), ready, pid: Some(1), restarts, revision }
    }

    #[test]
    fn steps_go_from_the_canary_to_everyone() {
        assert_eq!(steps(10, 25), [10, 35, 60, 85, 100]);
        assert_eq!(steps(100, 25), [100]);
        assert_eq!(steps(0, 0), (1..=100).collect::<Vec<u8>>());
    }

    #[test]
    fn a_step_takes_the_lowest_buckets_and_at_least_one_node() {
        let nodes: Vec<String> = ["n1", "n2", "n3", "web-1"].iter().map(|s| s.to_string()).collect();
        let canary = pick(&nodes, 10);
        assert_eq!(canary.len(), 1);
        let first = nodes.iter().min_by_key(|n| (bucket(n), n.to_string())).unwrap();
        assert_eq!(&canary[0], first);
        let half = pick(&nodes, 50);
        assert_eq!(half.len(), 2);
        assert!(half.contains(first), "steps only add nodes");
        assert_eq!(pick(&nodes, 100).len(), 4);
        assert!(pick(&[], 50).is_empty());
    }

    #[test]
    fn a_step_is_healthy_only_when_every_new_instance_is_ready() {
        let nodes = vec!["a".to_string(), "b".to_string()];
        let mut st =
            vec![("a".to_string(), 0, v("running", true, 0, 2)), ("b".to_string(), 0, v("running", true, 0, 1))];
        assert_eq!(judge(&st, &nodes, 2), Verdict::Waiting);
        st[1].2 = v("running", false, 0, 2);
        assert_eq!(judge(&st, &nodes, 2), Verdict::Waiting);
        st[1].2 = v("running", true, 0, 2);
        assert_eq!(judge(&st, &nodes, 2), Verdict::Healthy);
        st[0].2 = v("backoff", false, 1, 2);
        assert!(matches!(judge(&st, &nodes, 2), Verdict::Failed(w) if w.contains("on a is backoff")));
        // An old instance that is down does not fail the new revision.
        st[0].2 = v("backoff", false, 3, 1);
        assert_eq!(judge(&st, &nodes, 2), Verdict::Waiting);
        assert_eq!(judge(&st[1..], &nodes, 2), Verdict::Waiting, "a node not reporting yet");
    }
}
