//! What a group used.

use std::time::Duration;

/// Resources used by a whole group, living and dead members together.
/// Fields the OS cannot give on a backend are `None`, never guessed.
#[derive(Debug, Clone, Default, PartialEq)]
#[non_exhaustive]
pub struct Usage {
    /// CPU time in user mode.
    pub cpu_user: Duration,
    /// CPU time in kernel mode.
    pub cpu_system: Duration,
    /// The most memory the group held at once, in bytes (per process on
    /// backends without a group counter; see [`crate::BackendKind`]).
    pub peak_memory: Option<u64>,
    /// The memory the group holds now, in bytes.
    pub memory_now: Option<u64>,
    /// Processes started in the group over its life.
    pub processes_total: Option<u64>,
    /// Processes alive in the group now.
    pub processes_active: u64,
    /// Bytes read, where the OS accounts it.
    pub io_read_bytes: Option<u64>,
    /// Bytes written, where the OS accounts it.
    pub io_write_bytes: Option<u64>,
}

impl Usage {
    /// User plus system CPU time.
    pub fn cpu_total(&self) -> Duration {
        self.cpu_user + self.cpu_system
    }
}
