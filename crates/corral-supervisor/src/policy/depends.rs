//! When a dependency counts as met.

use crate::State;
use serde::Serialize;

/// `depends_on = { db = "started" | "healthy" | "completed" }`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Condition {
    /// Every instance is running.
    Started,
    /// Every instance is running and ready. Without a readiness probe an
    /// instance is ready as soon as it runs (Kubernetes' rule).
    Healthy,
    /// Every instance has exited with success (a one-shot job).
    Completed,
}

impl Condition {
    /// Whether one instance in `state` (and `ready`) meets the condition.
    pub fn met_by(self, state: State, ready: bool) -> bool {
        match self {
            Condition::Started => state == State::Running,
            Condition::Healthy => state == State::Running && ready,
            Condition::Completed => state == State::Exited,
        }
    }

    /// Whether waiting can no longer succeed without someone acting.
    pub fn hopeless(self, state: State) -> bool {
        match self {
            Condition::Completed => state == State::Failed,
            _ => matches!(state, State::Failed | State::Exited),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conditions() {
        assert!(Condition::Started.met_by(State::Running, false));
        assert!(!Condition::Healthy.met_by(State::Running, false));
        assert!(Condition::Healthy.met_by(State::Running, true));
        assert!(Condition::Completed.met_by(State::Exited, false));
        assert!(!Condition::Completed.met_by(State::Running, true));
        assert!(Condition::Started.hopeless(State::Failed));
        assert!(!Condition::Completed.hopeless(State::Exited));
    }
}
