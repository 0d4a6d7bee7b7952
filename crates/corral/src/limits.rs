//! What a group may use. Every limit applies to the whole group unless its
//! name says "per process".

use std::time::Duration;

/// The most cores `cpus` may ask for. A rate above the machine's cores is
/// harmless (it only means "no throttling"), but a huge one overflows the
/// kernel's quota arithmetic (cgroup `cpu.max` answers ERANGE).
pub const MAX_CPUS: f64 = 1024.0;

/// The most processes `max_procs` may ask for: Linux's own ceiling on pids
/// (PID_MAX_LIMIT, 2^22); more can never exist at once, and the kernel
/// refuses a larger `pids.max`.
pub const MAX_PROCS: u32 = 1 << 22;

/// Resource limits for a whole group. `None` means unlimited.
///
/// The wall-clock timeout is not here: it lives on the builder
/// ([`crate::GroupBuilder::timeout`]) because it is a policy of the
/// controller, not a property of the OS container.
#[derive(Debug, Clone, Default, PartialEq)]
#[non_exhaustive]
pub struct Limits {
    /// Memory for the whole group, in bytes.
    pub memory: Option<u64>,
    /// Memory (address space) for each process, in bytes.
    pub memory_per_process: Option<u64>,
    /// How many processes the group may hold at once.
    pub max_procs: Option<u32>,
    /// CPU time (user + system) the whole group may consume.
    pub cpu_time: Option<Duration>,
    /// CPU time each process may consume (`RLIMIT_CPU`, whole seconds
    /// rounded up; Windows: the job's `PerProcessUserTimeLimit`). A
    /// process past it is killed by the kernel, not the group.
    pub cpu_time_per_process: Option<Duration>,
    /// The resident memory each process keeps (Windows jobs'
    /// `JOB_OBJECT_LIMIT_WORKINGSET`; refused elsewhere): pages past the
    /// max are trimmed, nothing is killed. See [`crate::WorkingSet`].
    pub working_set: Option<crate::WorkingSet>,
    /// CPU rate in cores, like `docker --cpus`: `0.5` is half of one core.
    pub cpus: Option<f64>,
    /// Limits whose hit is news, not a death (`on_limit = "notify"`): the
    /// OS throttles or refuses instead of killing (memory above the limit
    /// is reclaimed and throttled, forks past `max_procs` fail, the CPU
    /// rate is throttled) and each hit is an [`crate::Event::LimitHit`]
    /// counted by [`crate::Group::limit_notices`]. Only
    /// [`LimitKind::Memory`], [`LimitKind::Processes`] and
    /// [`LimitKind::CpuRate`] can be notify-only.
    pub notify: Vec<LimitKind>,
    /// I/O throttles, one per block device (Linux cgroups; see [`crate::IoLimit`]).
    pub io: Vec<crate::IoLimit>,
}

impl Limits {
    /// No limits.
    pub fn new() -> Self {
        Self::default()
    }
    /// Sets the memory limit for the whole group, in bytes.
    pub fn memory(mut self, bytes: u64) -> Self {
        self.memory = Some(bytes);
        self
    }
    /// Sets the per-process memory limit, in bytes.
    pub fn memory_per_process(mut self, bytes: u64) -> Self {
        self.memory_per_process = Some(bytes);
        self
    }
    /// Sets how many processes the group may hold at once.
    pub fn max_procs(mut self, n: u32) -> Self {
        self.max_procs = Some(n);
        self
    }
    /// Sets the CPU time the whole group may consume.
    pub fn cpu_time(mut self, d: Duration) -> Self {
        self.cpu_time = Some(d);
        self
    }
    /// Sets the CPU time each process may consume.
    pub fn cpu_time_per_process(mut self, d: Duration) -> Self {
        self.cpu_time_per_process = Some(d);
        self
    }
    /// Sets the working set of each process (Windows; see [`Limits::working_set`]).
    pub fn working_set(mut self, ws: crate::WorkingSet) -> Self {
        self.working_set = Some(ws);
        self
    }
    /// Sets the CPU rate, in cores.
    pub fn cpus(mut self, cores: f64) -> Self {
        self.cpus = Some(cores);
        self
    }

    /// Adds an I/O throttle.
    pub fn io(mut self, limit: crate::IoLimit) -> Self {
        self.io.push(limit);
        self
    }

    /// Makes a hit of `kind` news, not a death (see [`Limits::notify`]).
    pub fn notify_on(mut self, kind: LimitKind) -> Self {
        if !self.notify.contains(&kind) {
            self.notify.push(kind);
        }
        self
    }

    /// Whether a hit of `kind` only notifies.
    pub fn notifies(&self, kind: LimitKind) -> bool {
        self.notify.contains(&kind)
    }

    /// Checks the values themselves, before anything is created.
    pub(crate) fn validate(&self) -> crate::Result<()> {
        use crate::{Error, ErrorKind};
        let bad = |what: &str| Err(Error::new(ErrorKind::InvalidInput, format!("invalid limit: {what}")));
        if self.io.len() > crate::MAX_IO_DEVICES {
            return bad("at most 64 I/O limits");
        }
        for l in &self.io {
            l.validate()?;
        }
        if let Some(k) = self.notify.iter().find(|k| !NOTIFIABLE.contains(k)) {
            return Err(Error::new(ErrorKind::InvalidInput, format!("invalid limit: the {k} cannot only notify"))
                .hint("on_limit = \"notify\" is for memory, max_procs and cpus, which the OS can throttle or refuse"));
        }
        if self.memory == Some(0) || self.memory_per_process == Some(0) {
            return bad("memory must be greater than 0");
        }
        if self.max_procs == Some(0) || self.max_procs > Some(MAX_PROCS) {
            return bad("max_procs must be from 1 to 4194304");
        }
        if self.cpu_time == Some(Duration::ZERO) || self.cpu_time_per_process == Some(Duration::ZERO) {
            return bad("cpu_time must be greater than 0");
        }
        if let Some(c) = self.cpus {
            if !(c.is_finite() && c > 0.0 && c <= MAX_CPUS) {
                return bad("cpus must be a number of cores above 0 and at most 1024, like 0.5 or 2");
            }
        }
        let sizes = [self.memory, self.memory_per_process];
        if sizes.iter().flatten().any(|&m| m > crate::units::MAX_SIZE) {
            return bad("memory must be at most 1 PiB");
        }
        if [self.cpu_time, self.cpu_time_per_process].iter().flatten().any(|t| *t > crate::units::MAX_DURATION) {
            return bad("cpu_time must be at most 36525d (100 years)");
        }
        if let Some(ws) = &self.working_set {
            ws.check()?;
        }
        Ok(())
    }

    /// The limit kinds that are set, in a fixed order.
    pub fn kinds(&self) -> Vec<LimitKind> {
        let mut out = Vec::new();
        if self.memory.is_some() {
            out.push(LimitKind::Memory);
        }
        if self.memory_per_process.is_some() {
            out.push(LimitKind::MemoryPerProcess);
        }
        if self.max_procs.is_some() {
            out.push(LimitKind::Processes);
        }
        if self.cpu_time.is_some() {
            out.push(LimitKind::CpuTime);
        }
        if self.cpus.is_some() {
            out.push(LimitKind::CpuRate);
        }
        out
    }
}

/// The limits the OS can enforce without ending the group.
const NOTIFIABLE: [LimitKind; 3] = [LimitKind::Memory, LimitKind::Processes, LimitKind::CpuRate];

/// One kind of limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum LimitKind {
    /// Memory of the whole group.
    Memory,
    /// Memory of one process.
    MemoryPerProcess,
    /// Number of processes at once.
    Processes,
    /// CPU time of the whole group.
    CpuTime,
    /// CPU rate (throttling; never a reason to kill).
    CpuRate,
    /// The wall-clock timeout.
    WallClock,
}

impl LimitKind {
    /// Every kind, in the order reports list them.
    pub const ALL: [LimitKind; 6] = [
        LimitKind::Memory,
        LimitKind::MemoryPerProcess,
        LimitKind::Processes,
        LimitKind::CpuTime,
        LimitKind::CpuRate,
        LimitKind::WallClock,
    ];

    /// A stable lower-case name, used in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            LimitKind::Memory => "memory",
            LimitKind::MemoryPerProcess => "memory_per_process",
            LimitKind::Processes => "max_procs",
            LimitKind::CpuTime => "cpu_time",
            LimitKind::CpuRate => "cpus",
            LimitKind::WallClock => "timeout",
        }
    }
}

impl std::fmt::Display for LimitKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            LimitKind::Memory => "memory limit",
            LimitKind::MemoryPerProcess => "per-process memory limit",
            LimitKind::Processes => "process limit",
            LimitKind::CpuTime => "CPU time limit",
            LimitKind::CpuRate => "CPU rate limit",
            LimitKind::WallClock => "timeout",
        })
    }
}
