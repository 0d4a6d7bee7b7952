//! Which OS mechanism holds a group, and what it can promise.
//!
//! Backends are chosen at run time, best first. When corral falls back to a
//! weaker one it says so through [`Enforcement`]; a weaker guarantee is never
//! silently taken for a stronger one.

use crate::LimitKind;

/// The mechanism that holds a group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum BackendKind {
    /// Linux, cgroup v2 with controllers.
    CgroupV2,
    /// Linux, v2 (no controllers) for membership and kill plus v1 for limits.
    Hybrid,
    /// Linux, cgroup v1 controllers with the freezer for an atomic kill.
    CgroupV1,
    /// A process group plus rlimits (and on Linux a subreaper sweep).
    Pgid,
    /// Windows Job Object.
    Job,
}

impl BackendKind {
    /// The stable name used in JSON, reports and `CORRAL_BACKEND`.
    pub fn as_str(self) -> &'static str {
        match self {
            BackendKind::CgroupV2 => "cgroup2",
            BackendKind::Hybrid => "hybrid",
            BackendKind::CgroupV1 => "cgroup1",
            BackendKind::Pgid => "pgid",
            BackendKind::Job => "job",
        }
    }

    /// Parses the names that [`BackendKind::as_str`] prints.
    pub fn parse(s: &str) -> Option<BackendKind> {
        Some(match s.trim() {
            "cgroup2" | "v2" => BackendKind::CgroupV2,
            "hybrid" => BackendKind::Hybrid,
            "cgroup1" | "v1" => BackendKind::CgroupV1,
            "pgid" => BackendKind::Pgid,
            "job" => BackendKind::Job,
            _ => return None,
        })
    }
}

impl std::fmt::Display for BackendKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How well one capability is provided.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Support {
    /// Provided for the whole group, by the named mechanism.
    Yes(String),
    /// Provided in a weaker form (per process, best effort), as described.
    Weaker(String),
    /// Not provided, for the reason given.
    No(String),
}

impl Support {
    /// The short word for tables and JSON: `yes`, `weaker`, `no`.
    pub fn word(&self) -> &'static str {
        match self {
            Support::Yes(_) => "yes",
            Support::Weaker(_) => "weaker",
            Support::No(_) => "no",
        }
    }
    /// The mechanism, or why not.
    pub fn detail(&self) -> &str {
        match self {
            Support::Yes(s) | Support::Weaker(s) | Support::No(s) => s,
        }
    }
}

/// How a requested limit is enforced on the group that was created.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Enforcement {
    /// The limit.
    pub limit: LimitKind,
    /// How it is enforced.
    pub support: Support,
}

/// A capability that `corral doctor` reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Capability {
    /// Escapees by setsid or double fork stay in the group.
    HoldsEscapees,
    /// Kill is atomic against fork races.
    AtomicKill,
    /// The group is torn down when the controller dies.
    KillOnControllerDeath,
    /// A limit.
    Limit(LimitKind),
    /// Peak memory accounting.
    PeakMemory,
    /// A notification when the group empties.
    EmptyNotification,
}

impl Capability {
    /// A stable snake_case name for JSON.
    pub fn key(self) -> &'static str {
        match self {
            Capability::HoldsEscapees => "holds_escapees",
            Capability::AtomicKill => "atomic_kill",
            Capability::KillOnControllerDeath => "kill_on_controller_death",
            Capability::Limit(k) => k.as_str(),
            Capability::PeakMemory => "peak_memory",
            Capability::EmptyNotification => "empty_notification",
        }
    }
    /// What it means, for people.
    pub fn describe(self) -> &'static str {
        match self {
            Capability::HoldsEscapees => "setsid / double-fork escapees stay in",
            Capability::AtomicKill => "kill is atomic against fork races",
            Capability::KillOnControllerDeath => "group dies with its controller",
            Capability::Limit(LimitKind::Memory) => "memory limit (group)",
            Capability::Limit(LimitKind::MemoryPerProcess) => "memory limit (per process)",
            Capability::Limit(LimitKind::Processes) => "process-count limit",
            Capability::Limit(LimitKind::CpuTime) => "CPU-time limit (group)",
            Capability::Limit(LimitKind::CpuRate) => "CPU rate limit",
            Capability::Limit(LimitKind::WallClock) => "wall-clock timeout",
            Capability::PeakMemory => "peak memory accounting",
            Capability::EmptyNotification => "group-empty notification",
        }
    }
}

/// What one backend can do on this host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackendReport {
    /// The backend.
    pub kind: BackendKind,
    /// `Ok` when it can be used here, or why it cannot.
    pub available: Result<(), String>,
    /// Each capability and how it is provided.
    pub capabilities: Vec<(Capability, Support)>,
}

/// What this host offers: the backend corral would choose, and every
/// backend with its capabilities. `corral doctor` prints this.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostReport {
    /// The OS, as `std::env::consts::OS` names it.
    pub os: &'static str,
    /// The backend a new group gets (after `CORRAL_BACKEND`).
    pub chosen: Option<BackendKind>,
    /// Every backend this OS has, best first.
    pub backends: Vec<BackendReport>,
    /// Facts about the host worth knowing (cgroup mounts, subreaper, …).
    pub notes: Vec<String>,
}

/// Reports what this host can enforce with each backend.
pub fn host_report() -> HostReport {
    crate::sys::host_report()
}
