//! What a service declares under `health`: up to three probes, each with
//! one check and Kubernetes' timing and thresholds.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::Duration;

/// Which of the three probes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProbeKind {
    /// Holds the other two off until it passes; failing restarts.
    Startup,
    /// Sets `ready`; never restarts.
    Readiness,
    /// Failing `failure_threshold` times in a row restarts the instance.
    Liveness,
}

impl ProbeKind {
    /// The lower-case name, as in the config.
    pub fn as_str(self) -> &'static str {
        match self {
            ProbeKind::Startup => "startup",
            ProbeKind::Readiness => "readiness",
            ProbeKind::Liveness => "liveness",
        }
    }
}

impl std::fmt::Display for ProbeKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `health.startup`, `health.readiness`, `health.liveness`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HealthSpec {
    /// Runs first; the others start once it passes.
    pub startup: Option<Probe>,
    /// Decides `ready`.
    pub readiness: Option<Probe>,
    /// Decides whether the instance is restarted.
    pub liveness: Option<Probe>,
}

impl HealthSpec {
    /// True when no probe is declared.
    pub fn is_empty(&self) -> bool {
        self.startup.is_none() && self.readiness.is_none() && self.liveness.is_none()
    }

    /// True when a running instance is not ready until a probe says so
    /// (a readiness or a startup probe is declared).
    pub fn gates_ready(&self) -> bool {
        self.startup.is_some() || self.readiness.is_some()
    }

    /// The declared probes, in the order they take effect.
    pub fn probes(&self) -> impl Iterator<Item = (ProbeKind, &Probe)> {
        [
            (ProbeKind::Startup, self.startup.as_ref()),
            (ProbeKind::Readiness, self.readiness.as_ref()),
            (ProbeKind::Liveness, self.liveness.as_ref()),
        ]
        .into_iter()
        .filter_map(|(k, p)| p.map(|p| (k, p)))
    }
}

/// One probe: a check and when to run it.
#[derive(Debug, Clone, PartialEq)]
pub struct Probe {
    /// What is checked.
    pub check: Check,
    /// Wait this long after the instance starts (or after the startup
    /// probe passed) before the first check. Default 0s.
    pub initial_delay: Duration,
    /// From the start of one check to the start of the next. Default 10s.
    pub period: Duration,
    /// A check that takes longer fails. Default 1s.
    pub timeout: Duration,
    /// Passes in a row that make the probe pass. Default 1.
    pub success_threshold: u32,
    /// Failures in a row that make the probe fail. Default 3.
    pub failure_threshold: u32,
}

impl Probe {
    /// A probe with Kubernetes' defaults.
    pub fn new(check: Check) -> Probe {
        Probe {
            check,
            initial_delay: Duration::ZERO,
            period: Duration::from_secs(10),
            timeout: Duration::from_secs(1),
            success_threshold: 1,
            failure_threshold: 3,
        }
    }
}

/// What a probe checks.
#[derive(Debug, Clone, PartialEq)]
pub enum Check {
    /// `http = "http://host:port/path"` or `https://…`: a GET whose
    /// status is expected.
    Http {
        /// The URL (checked at load: `http://` or `https://`, a host).
        url: String,
        /// Extra request headers.
        headers: BTreeMap<String, String>,
        /// Accepted status codes as inclusive ranges (default 200-299).
        status: Vec<(u16, u16)>,
        /// Whom an https probe trusts: Mozilla's roots, `ca = "ca.pem"`,
        /// or nobody checked (`insecure = true`). `Roots` for http.
        trust: crate::tls::Trust,
        /// What the body must say besides (`body` or `json`), if anything.
        body: Option<super::BodyCheck>,
    },
    /// `tcp = "host:port"`: the port accepts a connection.
    Tcp {
        /// `host:port`.
        addr: String,
    },
    /// `exec = ["cmd", "arg"]`: exits 0, run as its own corral group.
    Exec {
        /// The program and its arguments.
        argv: Vec<String>,
    },
    /// `log = "regex"`: the instance printed a matching line in this run
    /// (readiness and startup only).
    Log {
        /// The regular expression (checked at load).
        pattern: String,
    },
}

impl Check {
    /// The kind's key in the config.
    pub fn kind(&self) -> &'static str {
        match self {
            Check::Http { .. } => "http",
            Check::Tcp { .. } => "tcp",
            Check::Exec { .. } => "exec",
            Check::Log { .. } => "log",
        }
    }
}
