//! What happens when an instance's group has ended by itself.

use super::RunResult;
use serde::Serialize;

/// When an instance that ended by itself is started again (systemd's names).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum RestartPolicy {
    /// Never.
    No,
    /// When it did not end with a success code.
    OnFailure,
    /// Always, a clean exit included.
    Always,
}

/// The decision after an instance ended by itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterExit {
    /// Start it again after the backoff delay.
    Restart,
    /// A success that is not restarted: state `exited`.
    Exited,
    /// A failure that is not restarted: state `failed`.
    Failed,
}

/// Decides from the policy and the typed result of the run (systemd's
/// `service_enter_dead`). Only [`RunResult::Success`] is a success.
pub fn after_exit(policy: RestartPolicy, result: RunResult) -> AfterExit {
    match (policy, result.is_success()) {
        (RestartPolicy::Always, _) => AfterExit::Restart,
        (RestartPolicy::OnFailure, true) | (RestartPolicy::No, true) => AfterExit::Exited,
        (RestartPolicy::OnFailure, false) => AfterExit::Restart,
        (RestartPolicy::No, false) => AfterExit::Failed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::health::Cause;
    use corral::LimitKind;

    const OK: RunResult = RunResult::Success;
    const FAILURES: [RunResult; 8] = [
        RunResult::ExitCode(3),
        RunResult::Signal(9),
        RunResult::Timeout,
        RunResult::Limit(LimitKind::Memory),
        RunResult::Unhealthy(Cause::Liveness),
        RunResult::Unhealthy(Cause::Alert),
        RunResult::SpawnFailed,
        RunResult::Unknown,
    ];

    #[test]
    fn always_restarts_even_a_clean_exit() {
        assert_eq!(after_exit(RestartPolicy::Always, OK), AfterExit::Restart);
        for f in FAILURES {
            assert_eq!(after_exit(RestartPolicy::Always, f), AfterExit::Restart, "{f:?}");
        }
    }

    #[test]
    fn on_failure_restarts_only_failures() {
        assert_eq!(after_exit(RestartPolicy::OnFailure, OK), AfterExit::Exited);
        for f in FAILURES {
            assert_eq!(after_exit(RestartPolicy::OnFailure, f), AfterExit::Restart, "{f:?}");
        }
    }

    #[test]
    fn no_ends_in_exited_or_failed() {
        assert_eq!(after_exit(RestartPolicy::No, OK), AfterExit::Exited);
        for f in FAILURES {
            assert_eq!(after_exit(RestartPolicy::No, f), AfterExit::Failed, "{f:?}");
        }
    }
}
