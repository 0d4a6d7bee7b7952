//! How one run of an instance ended, typed: systemd's `ServiceResult` for
//! corral. The restart policy switches on it; nothing stands in for it
//! (no made-up exit status to force a failure). systemd's
//! `start-limit-hit` has no variant: the start limit is checked before a
//! start (`StartLimit::allows`), so it is never the result of a run.

use crate::health::Cause;
use corral::{ExitStatus, LimitKind, Reason};

/// The result of one run (or of an attempt at one).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunResult {
    /// It exited by itself with a code that counts as success.
    Success,
    /// It exited by itself with any other code (systemd's `exit-code`).
    ExitCode(i32),
    /// A signal that corral did not send for a limit ended it (`signal`).
    Signal(i32),
    /// Its wall-clock limit, `limits.timeout`, ran out (`timeout`).
    Timeout,
    /// It was killed for a resource limit: memory (systemd's `oom-kill`),
    /// processes or CPU time (`resources`).
    Limit(LimitKind),
    /// The supervisor ended it for its health: a liveness or startup
    /// probe, an alert with `action = "restart"`, or a report from outside
    /// (systemd's `watchdog`).
    Unhealthy(Cause),
    /// It could not be started at all (a missing program, a refused
    /// group).
    SpawnFailed,
    /// Its status was lost: the leader was not corral's child to wait for.
    Unknown,
}

impl RunResult {
    /// The result of a run that ended by itself, from its group's outcome
    /// and the exit codes that count as success.
    pub fn of(reason: Reason, status: ExitStatus, success_codes: &[i32]) -> RunResult {
        match reason {
            Reason::Timeout => RunResult::Timeout,
            Reason::MemoryLimit => RunResult::Limit(LimitKind::Memory),
            Reason::CpuTimeLimit => RunResult::Limit(LimitKind::CpuTime),
            Reason::ProcessLimit => RunResult::Limit(LimitKind::Processes),
            _ => match (status.code, status.signal) {
                (_, Some(s)) => RunResult::Signal(s),
                (Some(c), None) if success_codes.contains(&c) => RunResult::Success,
                (Some(c), None) => RunResult::ExitCode(c),
                (None, None) => RunResult::Unknown,
            },
        }
    }

    /// Only a clean exit with a success code is a success; a death by
    /// signal, a limit and a health verdict never are.
    pub fn is_success(self) -> bool {
        self == RunResult::Success
    }

    /// The `reason` label of `corral_instance_restarts_total` for a
    /// restart after this result: the health check that asked for it, or
    /// `exit` for a run that ended by itself.
    pub fn restart_label(self) -> &'static str {
        match self {
            RunResult::Unhealthy(c) => c.as_str(),
            _ => "exit",
        }
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
    fn an_exit_is_a_success_only_with_a_success_code() {
        assert_eq!(RunResult::of(Reason::Exited, code(0), &[0]), RunResult::Success);
        assert_eq!(RunResult::of(Reason::Exited, code(3), &[0]), RunResult::ExitCode(3));
        assert_eq!(RunResult::of(Reason::Exited, code(3), &[0, 3]), RunResult::Success);
        assert_eq!(RunResult::of(Reason::Signal, signal(9), &[0]), RunResult::Signal(9));
        assert_eq!(RunResult::of(Reason::Exited, ExitStatus { code: None, signal: None }, &[0]), RunResult::Unknown);
    }

    #[test]
    fn limits_and_timeouts_are_named_whatever_the_status() {
        // A leader that exits 0 on the stop signal of a timeout still timed out.
        assert_eq!(RunResult::of(Reason::Timeout, code(0), &[0]), RunResult::Timeout);
        assert_eq!(RunResult::of(Reason::MemoryLimit, signal(9), &[0]), RunResult::Limit(LimitKind::Memory));
        assert_eq!(RunResult::of(Reason::CpuTimeLimit, signal(9), &[0]), RunResult::Limit(LimitKind::CpuTime));
        assert_eq!(RunResult::of(Reason::ProcessLimit, signal(9), &[0]), RunResult::Limit(LimitKind::Processes));
    }

    #[test]
    fn only_success_is_a_success() {
        assert!(RunResult::Success.is_success());
        for r in [
            RunResult::ExitCode(1),
            RunResult::Signal(15),
            RunResult::Timeout,
            RunResult::Limit(LimitKind::Memory),
            RunResult::Unhealthy(Cause::Liveness),
            RunResult::SpawnFailed,
            RunResult::Unknown,
        ] {
            assert!(!r.is_success(), "{r:?}");
        }
    }

    #[test]
    fn restart_labels_name_the_health_check_or_exit() {
        assert_eq!(RunResult::Unhealthy(Cause::Liveness).restart_label(), "liveness");
        assert_eq!(RunResult::Unhealthy(Cause::Reported).restart_label(), "health");
        assert_eq!(RunResult::ExitCode(1).restart_label(), "exit");
        assert_eq!(RunResult::SpawnFailed.restart_label(), "exit");
    }
}
