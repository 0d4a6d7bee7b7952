//! The documented maxima of a config's counts, checked with the rest of
//! it: nothing is allocated or started per a count that is not checked.
//! Durations are bounded by `corral::units::MAX_DURATION` (100 years) and
//! sizes by `corral::units::MAX_SIZE` (1 PiB), for every field.

/// Most `instances` of one service. Each is a group of its own, with its
/// own task, log files and event stream, and a spawn that costs a few
/// milliseconds: a thousand start within seconds on a small machine, and
/// more is a fleet's job (several daemons), not one service's.
pub const MAX_INSTANCES: u32 = 1000;

/// Most instances of all services together. Each holds a few fds (its
/// pipes, its log file, its group's handles) and a task: ten thousand stay
/// well inside a raised RLIMIT_NOFILE, and a 1 MiB config could otherwise
/// declare forty thousand one-instance services.
pub const MAX_TOTAL_INSTANCES: u32 = 10_000;

/// Longest service name, in characters of `[A-Za-z0-9_.-]`: it names log
/// files (`<name>.<i>.log` and rotations within a file system's 255 bytes),
/// metric labels and event fields.
pub const MAX_NAME_LEN: usize = 64;

/// Most processes a `limits.max_procs` can ask for (the library's bound:
/// Linux's own ceiling on pids).
pub const MAX_PROCS: u32 = corral::MAX_PROCS;

/// Largest `start_limit.burst`: the start times inside the window are kept,
/// so this bounds them.
pub const MAX_BURST: u32 = 10_000;

/// Largest probe `success_threshold` / `failure_threshold`.
pub const MAX_THRESHOLD: u32 = 1000;

/// Most rotated log files kept (`logs.keep`, `[daemon] events.keep`).
pub const MAX_KEEP: u32 = super::LogPolicy::MAX_KEEP;

/// Largest `backoff.factor`; the delay is capped by `backoff.max` anyway.
pub const MAX_FACTOR: f64 = 1000.0;
