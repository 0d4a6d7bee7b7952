//! What probes and alerts tell an instance task about its current run.

use super::spec::ProbeKind;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// The last result of one probe, as `status` and events show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProbeResult {
    /// `startup`, `readiness` or `liveness`.
    pub probe: ProbeKind,
    /// The check's kind: `http`, `tcp`, `exec` or `log`.
    pub check: String,
    /// Whether this check passed.
    pub ok: bool,
    /// What it saw (`status 200 OK`) or why it failed (`timed out after 1s`).
    pub message: String,
    /// How long the check took, in milliseconds.
    pub duration_ms: u64,
    /// Failures in a row, this one included (0 after a pass).
    pub failures: u32,
    /// Failures in a row that make the probe fail.
    pub failure_threshold: u32,
    /// When it finished, in RFC 3339 UTC.
    pub ts: String,
}

/// Why a run was ended by the supervisor rather than by itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cause {
    /// The liveness probe failed.
    Liveness,
    /// The startup probe failed.
    Startup,
    /// An alert with `action = "restart"` fired.
    Alert,
    /// `Supervisor::report_health` said so.
    Reported,
}

impl Cause {
    /// The `reason` label of `corral_restarts_total`.
    pub fn as_str(self) -> &'static str {
        match self {
            Cause::Liveness => "liveness",
            Cause::Startup => "startup",
            Cause::Alert => "alert",
            Cause::Reported => "health",
        }
    }
}

/// A message from a run's probes or from the alert sampler. It travels
/// boxed: tokio allocates a channel's first block of 32 slots up front, and
/// 32 inline verdicts (some 140 bytes each) cost every running instance
/// 4.6 KiB, 0.45 MiB of a daemon with 100 services, for a channel most
/// runs never use.
#[derive(Debug)]
pub(crate) enum Verdict {
    /// One check finished. `note` is the reason of an event when the
    /// result is worth one (see [`super::policy::Step::notable`]); `ready`
    /// is set when it flips readiness (the readiness probe crossed a
    /// threshold, or the startup probe passed and there is no readiness
    /// probe).
    Probe { result: ProbeResult, took: Duration, note: Option<String>, ready: Option<bool> },
    /// End the run and let the restart policy decide.
    Restart { cause: Cause, reason: String },
    /// An alert fired or cleared.
    Alert(crate::alerts::Firing),
}
