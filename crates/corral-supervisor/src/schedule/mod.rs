//! Schedules: `schedule = "*/5 * * * *"` or `every = "10m"` (a service run
//! as a job at each tick, each run its own group), and `cron_restart`
//! (a long-running service restarted gracefully at each tick, PM2's).
//!
//! A schedule is one tokio task per armed service (`runner.rs`), no
//! thread: it sleeps until the next tick, then asks the supervisor to
//! start a run in a free instance slot (`instances` = `max_concurrent`).
//! When to tick (`next.rs`) and what to do when the runs are all still
//! going (`overlap.rs`) are pure functions with their own tests.

mod next;
mod overlap;
mod runner;

pub use next::{CronSpec, NamedZone, Zone};
pub use overlap::Overlap;
pub(crate) use overlap::{on_tick, Tick};
pub(crate) use runner::{arm, restart_slots, Armed};

use std::time::Duration;

/// When a scheduled service runs.
#[derive(Debug, Clone, PartialEq)]
// One per scheduled service, held once: its size does not matter.
#[allow(clippy::large_enum_variant)]
pub enum When {
    /// At each time a cron expression names, in its zone.
    Cron(CronSpec),
    /// Every period, the first one a period after the schedule is armed.
    Every(Duration),
}

/// `schedule`/`every` with `max_concurrent` and `on_overlap`.
#[derive(Debug, Clone, PartialEq)]
pub struct ScheduleSpec {
    /// The ticks.
    pub when: When,
    /// Runs at once (each an instance slot of the service).
    pub max_concurrent: u32,
    /// What a tick does when every slot has a run going.
    pub on_overlap: Overlap,
}

impl ScheduleSpec {
    /// `every` accepts 1 s (a test's pace) up to a year.
    pub const EVERY_RANGE: (Duration, Duration) = (Duration::from_secs(1), Duration::from_secs(366 * 24 * 3600));
    /// Most runs at once.
    pub const MAX_CONCURRENT: u32 = 100;
}
