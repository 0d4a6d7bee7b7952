//! What a service declares about readiness by notification, and what
//! `status` shows of it.

use serde::{Deserialize, Serialize};
use std::time::Duration;

/// `notify`, `notify_fd`, `watchdog` and `start_timeout` of a service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotifySpec {
    /// `notify = true`: a private `NOTIFY_SOCKET`; ready after `READY=1`.
    pub notify: bool,
    /// `notify_fd = N`: s6's readiness fd; ready after a newline on fd N.
    pub fd: Option<i32>,
    /// `watchdog = "10s"`: `WATCHDOG=1` due within each period.
    pub watchdog: Option<Duration>,
    /// No readiness within this long fails the start (default 90 s, as
    /// systemd's `TimeoutStartSec`).
    pub start_timeout: Duration,
}

impl NotifySpec {
    /// `start_timeout` when the config does not say.
    pub const START_TIMEOUT_DEFAULT: Duration = Duration::from_secs(90);
    /// The `start_timeout`s and `watchdog` periods accepted.
    pub const RANGE: (Duration, Duration) = (Duration::from_millis(100), Duration::from_secs(3600));
    /// The highest `notify_fd` accepted.
    pub const MAX_FD: i32 = 1023;

    /// True when a running instance is not ready until it says so.
    pub fn gates_ready(&self) -> bool {
        self.notify || self.fd.is_some()
    }

    /// True when anything needs a watcher for the run.
    pub fn is_active(&self) -> bool {
        self.gates_ready() || self.watchdog.is_some()
    }
}

impl Default for NotifySpec {
    fn default() -> Self {
        NotifySpec { notify: false, fd: None, watchdog: None, start_timeout: Self::START_TIMEOUT_DEFAULT }
    }
}

/// What the service said about itself in the current run.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NotifyStatus {
    /// Its last `STATUS=` line.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// Its last accepted `MAINPID=`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub main_pid: Option<u32>,
    /// Datagrams dropped: from outside the group, too long, or over the
    /// rate limit.
    #[serde(default)]
    pub dropped: u64,
}
