//! Resource alerts: `alerts = [{ memory = "400MiB", for = "30s", action =
//! "restart" }, { cpu = 0.9, for = "1m", action = "log" }]`, measured on the
//! whole group through [`corral::Group::usage`], grandchildren and escapees
//! included.
//!
//! One shared timer samples every watched group (`sampler.rs`), so the cost
//! is one `usage()` per group per tick whatever the number of alerts; the
//! decisions are pure ([`policy`]). An alert fires once the value has stayed
//! above its threshold for `for`, once per excursion, and clears when the
//! value falls back.
//!
//! Actions: `log` writes an event (and a line on the daemon's stderr);
//! `dump` also writes a snapshot to `state_dir/dumps/` ([`dump`]) and keeps
//! the service running; `restart` ends the run like a failed liveness
//! probe, so the restart policy, backoff and start limit apply.

pub mod dump;
pub mod policy;
pub(crate) mod sampler;

use serde::{Deserialize, Serialize};
use std::time::Duration;

/// One `alerts` entry.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertSpec {
    /// What is measured, and the level it must stay above.
    pub threshold: Threshold,
    /// How long the value must stay above before the alert fires.
    pub hold: Duration,
    /// What happens when it fires.
    pub action: AlertAction,
}

/// What an alert measures.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Threshold {
    /// Memory of the whole group now, in bytes.
    Memory(u64),
    /// CPU of the whole group, in cores (1.0 = one core busy), averaged
    /// between two samples.
    Cpu(f64),
}

impl Threshold {
    /// `memory` or `cpu`.
    pub fn metric(&self) -> &'static str {
        match self {
            Threshold::Memory(_) => "memory",
            Threshold::Cpu(_) => "cpu",
        }
    }

    /// The level as a number (bytes or cores).
    pub fn level(&self) -> f64 {
        match *self {
            Threshold::Memory(b) => b as f64,
            Threshold::Cpu(c) => c,
        }
    }

    /// A value of this metric for people: `210.0 MiB` or `0.93 cores`.
    pub fn show(&self, value: f64) -> String {
        match self {
            Threshold::Memory(_) => corral::units::format_size(value.max(0.0) as u64),
            Threshold::Cpu(_) => format!("{value:.2} cores"),
        }
    }
}

/// `action = "restart" | "log" | "dump"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AlertAction {
    /// End the run; the restart policy decides.
    Restart,
    /// An event and a line on the daemon's stderr.
    Log,
    /// Like `log`, plus a diagnostic snapshot in `state_dir/dumps/`.
    Dump,
}

impl AlertAction {
    /// The lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            AlertAction::Restart => "restart",
            AlertAction::Log => "log",
            AlertAction::Dump => "dump",
        }
    }
}

/// An alert as events show it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertReport {
    /// `memory` or `cpu`.
    pub metric: String,
    /// The value that fired it (bytes or cores).
    pub value: f64,
    /// The threshold (bytes or cores).
    pub threshold: f64,
    /// `for`, in milliseconds.
    pub for_ms: u64,
    /// `restart`, `log` or `dump`.
    pub action: AlertAction,
    /// True when it fired, false when it cleared.
    pub firing: bool,
    /// The snapshot folder, for `dump`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dump: Option<String>,
}

/// An alert that fired or cleared, from the sampler to the instance.
#[derive(Debug, Clone)]
pub(crate) struct Firing {
    pub alert: AlertSpec,
    pub value: f64,
    pub firing: bool,
}

impl Firing {
    pub(crate) fn report(&self, dump: Option<String>) -> AlertReport {
        AlertReport {
            metric: self.alert.threshold.metric().into(),
            value: self.value,
            threshold: self.alert.threshold.level(),
            for_ms: self.alert.hold.as_millis() as u64,
            action: self.alert.action,
            firing: self.firing,
            dump,
        }
    }

    /// `alert: memory 210.0 MiB above 100.0 MiB for 1s`.
    pub(crate) fn describe(&self) -> String {
        let t = &self.alert.threshold;
        if self.firing {
            let held = if self.alert.hold.is_zero() {
                String::new()
            } else {
                format!(" for {}", corral::units::format_duration(self.alert.hold))
            };
            format!("alert: {} {} above {}{held}", t.metric(), t.show(self.value), t.show(t.level()))
        } else {
            format!("alert cleared: {} {} back under {}", t.metric(), t.show(self.value), t.show(t.level()))
        }
    }
}
