//! The states of one service instance and what is known about it.

use serde::Serialize;

/// `stopped → starting → running → stopping → stopped`, plus `backoff`
/// (waiting to restart), `exited` (a success that is not restarted) and
/// `failed` (a failure that is not restarted, or the start limit).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    /// Not running and not meant to.
    Stopped,
    /// Waiting for dependencies, or being spawned.
    Starting,
    /// Its group is alive.
    Running,
    /// Its group is being stopped.
    Stopping,
    /// Waiting before the next start.
    Backoff,
    /// Ended with success and is not restarted.
    Exited,
    /// Ended with failure and is not restarted.
    Failed,
}

impl State {
    /// The stable lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            State::Stopped => "stopped",
            State::Starting => "starting",
            State::Running => "running",
            State::Stopping => "stopping",
            State::Backoff => "backoff",
            State::Exited => "exited",
            State::Failed => "failed",
        }
    }

    /// True when no group is alive and none will start by itself.
    pub fn is_down(self) -> bool {
        matches!(self, State::Stopped | State::Exited | State::Failed)
    }
}

impl std::fmt::Display for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How the last run ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct LastExit {
    /// Exit code, if it exited.
    pub code: Option<i32>,
    /// Signal, if one ended it.
    pub signal: Option<i32>,
    /// corral's reason: `exited`, `killed`, `timeout`, `memory_limit`, …
    pub reason: String,
}

/// One instance as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct InstanceStatus {
    /// Service name.
    pub service: String,
    /// Instance index, from 0.
    pub instance: u32,
    /// Current state.
    pub state: State,
    /// Readiness: set by a readiness probe; without one, true while running.
    pub ready: bool,
    /// The leader's pid while a group is alive.
    pub pid: Option<u32>,
    /// Milliseconds since the current run started.
    pub uptime_ms: Option<u64>,
    /// Restarts since the service was last started by a person.
    pub restarts: u32,
    /// How the last run ended.
    pub last_exit: Option<LastExit>,
    /// The reason of the last transition.
    pub reason: String,
    /// CPU time of the whole group, in milliseconds.
    pub cpu_ms: Option<u64>,
    /// Memory of the whole group now, in bytes.
    pub memory_bytes: Option<u64>,
    /// Processes alive in the group.
    pub processes: Option<u64>,
    /// The last result of each probe in the current run (startup,
    /// readiness, liveness order); empty without probes.
    #[serde(default)]
    pub probes: Vec<crate::health::ProbeResult>,
    /// The next tick of the service's `schedule`, `every` or
    /// `cron_restart`, RFC 3339 in UTC, while it is armed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_run: Option<String>,
    /// What a notify service said about itself in the current run
    /// (`STATUS=`, `MAINPID=`, datagrams dropped); absent otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notify: Option<crate::sd_notify::NotifyStatus>,
}
