//! Health probes: `health.startup`, `health.readiness` and
//! `health.liveness`, with Kubernetes' names, defaults and semantics.
//!
//! - The startup probe runs alone first; the other two start once it
//!   passes. Failing `failure_threshold` times restarts the instance.
//! - Liveness failing `failure_threshold` times in a row stops the whole
//!   group (stop signal, grace, kill) and the restart policy decides, with
//!   backoff and the start limit, exactly as for a crash; the reason starts
//!   with `liveness:`.
//! - Readiness only flips `ready`, which `depends_on = "healthy"` and
//!   `status` read. With a startup or readiness probe an instance is not
//!   ready until one passes.
//! - A probe never overlaps itself, and a check that takes longer than
//!   `timeout` fails.
//!
//! The runner of one run (`runner.rs`) only reports verdicts; the
//! instance task acts on them. Thresholds are pure ([`policy`]).

mod body;
pub(crate) mod exec;
mod http;
mod http_status;
mod logmatch;
pub mod policy;
mod probe;
pub(crate) mod runner;
mod spec;
mod tcp;
mod verdict;

pub use body::{BodyCheck, MAX_BODY};
pub(crate) use exec::ExecEnv;
pub use spec::{Check, HealthSpec, Probe, ProbeKind};
pub use verdict::Cause;
pub use verdict::ProbeResult;
pub(crate) use verdict::Verdict;

/// Load-time checks of probe settings, for the config.
pub(crate) mod validate {
    pub(crate) use super::http::is_https;
    pub(crate) use super::http::validate as http_url;
    pub(crate) use super::tcp::validate as tcp_addr;
}
