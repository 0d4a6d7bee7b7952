//! What happens when an instance's group has ended by itself.

use corral::ExitStatus;
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

/// Decides from the policy, the codes that count as success, and how it
/// ended. A death by signal is never a success.
pub fn after_exit(policy: RestartPolicy, success_codes: &[i32], status: ExitStatus) -> AfterExit {
    let success = status.signal.is_none() && status.code.is_some_and(|c| success_codes.contains(&c));
    match (policy, success) {
        (RestartPolicy::Always, _) => AfterExit::Restart,
        (RestartPolicy::OnFailure, true) | (RestartPolicy::No, true) => AfterExit::Exited,
        (RestartPolicy::OnFailure, false) => AfterExit::Restart,
        (RestartPolicy::No, false) => AfterExit::Failed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(c: i32) -> ExitStatus {
        ExitStatus { code: Some(c), signal: None }
    }
    fn signal(s: i32) -> ExitStatus {
        ExitStatus { code: None, signal: Some(s) }
    }

    #[test]
    fn always_restarts_even_a_clean_exit() {
        assert_eq!(after_exit(RestartPolicy::Always, &[0], code(0)), AfterExit::Restart);
        assert_eq!(after_exit(RestartPolicy::Always, &[0], code(3)), AfterExit::Restart);
    }

    #[test]
    fn on_failure_restarts_only_failures() {
        assert_eq!(after_exit(RestartPolicy::OnFailure, &[0], code(0)), AfterExit::Exited);
        assert_eq!(after_exit(RestartPolicy::OnFailure, &[0], code(1)), AfterExit::Restart);
        assert_eq!(after_exit(RestartPolicy::OnFailure, &[0], signal(9)), AfterExit::Restart);
    }

    #[test]
    fn no_ends_in_exited_or_failed() {
        assert_eq!(after_exit(RestartPolicy::No, &[0], code(0)), AfterExit::Exited);
        assert_eq!(after_exit(RestartPolicy::No, &[0], code(2)), AfterExit::Failed);
    }

    #[test]
    fn success_codes_are_configurable() {
        assert_eq!(after_exit(RestartPolicy::OnFailure, &[0, 3], code(3)), AfterExit::Exited);
        assert_eq!(after_exit(RestartPolicy::OnFailure, &[3], code(0)), AfterExit::Restart);
    }
}
