//! How a group ended.

use crate::{BackendKind, Usage};
use std::time::Duration;

/// The leader's exit status, in a form that is the same on every OS.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ExitStatus {
    /// The exit code, if it exited (on Windows, always).
    pub code: Option<i32>,
    /// The signal that ended it (Unix).
    pub signal: Option<i32>,
}

impl ExitStatus {
    /// The status of a leader corral did not start (an adopted tree): it
    /// is not the parent, so the kernel never tells it how the leader ended.
    pub const UNKNOWN: ExitStatus = ExitStatus { code: None, signal: None };

    /// False for [`ExitStatus::UNKNOWN`].
    pub fn is_known(&self) -> bool {
        self.code.is_some() || self.signal.is_some()
    }

    /// True when it exited with code 0.
    pub fn success(&self) -> bool {
        self.code == Some(0)
    }

    /// The status as a shell reports it: the code, or 128 + the signal.
    pub fn shell_code(&self) -> i32 {
        match (self.code, self.signal) {
            (Some(c), _) => c,
            (None, Some(s)) => 128 + s,
            (None, None) => 255,
        }
    }
}

impl std::fmt::Display for ExitStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (self.code, self.signal) {
            (Some(c), _) => write!(f, "exit code {c}"),
            (None, Some(s)) => write!(f, "signal {}", crate::Signal::from_raw(s)),
            (None, None) => f.write_str("unknown status"),
        }
    }
}

/// Why a group ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Reason {
    /// The leader exited by itself (with any code).
    Exited,
    /// The wall-clock timeout ran out.
    Timeout,
    /// The group was killed for its memory limit.
    MemoryLimit,
    /// The group was killed for its CPU-time limit.
    CpuTimeLimit,
    /// The group was killed for its process-count limit.
    ProcessLimit,
    /// The controller stopped or killed the group on request.
    Killed,
    /// The leader was ended by a signal that corral did not send.
    Signal,
}

impl Reason {
    /// The stable name used in JSON reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Exited => "exited",
            Reason::Timeout => "timeout",
            Reason::MemoryLimit => "memory_limit",
            Reason::CpuTimeLimit => "cpu_time_limit",
            Reason::ProcessLimit => "process_limit",
            Reason::Killed => "killed",
            Reason::Signal => "signal",
        }
    }

    /// True for the reasons where corral killed the group for a limit.
    pub fn is_limit(self) -> bool {
        matches!(self, Reason::MemoryLimit | Reason::CpuTimeLimit | Reason::ProcessLimit)
    }
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How a group's leader ended, known as soon as every member is gone:
/// before the teardown (the container removed, stray zombies reaped, the
/// final usage read, leftovers counted) that [`Outcome`] waits for. See
/// [`Group::wait_ended`](crate::Group::wait_ended).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Ended {
    /// The leader's status, as [`Outcome::status`] will tell it.
    pub status: ExitStatus,
    /// Why the group ended, as [`Outcome::reason`] will tell it.
    pub reason: Reason,
}

impl From<&Outcome> for Ended {
    fn from(o: &Outcome) -> Ended {
        Ended { status: o.status, reason: o.reason }
    }
}

/// The end of a group, with the proof that it is over.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Outcome {
    /// The leader's status; [`ExitStatus::UNKNOWN`] when the group was
    /// adopted (`spawn` is [`SpawnPath::Adopted`](crate::SpawnPath::Adopted))
    /// and the leader ended by itself.
    pub status: ExitStatus,
    /// Why the group ended.
    pub reason: Reason,
    /// What the group used.
    pub usage: Usage,
    /// Members still alive (or unreaped) after teardown, counted, not
    /// assumed. Anything but 0 is a containment failure.
    pub leftover: usize,
    /// The backend that held the group.
    pub backend: BackendKind,
    /// How the leader was started.
    pub spawn: crate::SpawnPath,
    /// From spawn to the end of teardown.
    pub duration: Duration,
}
