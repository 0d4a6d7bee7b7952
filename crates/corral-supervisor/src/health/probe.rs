//! One check of any kind, bounded by the probe's timeout: a check that
//! takes longer fails with "timed out".

use super::exec::{self, ExecEnv};
use super::logmatch::LogMatch;
use super::spec::Check;
use super::{http, tcp};
use std::sync::Arc;
use std::time::Duration;

/// What the checks of one run need besides their own settings.
pub(crate) struct CheckCtx {
    pub exec: ExecEnv,
    pub log: Option<Arc<LogMatch>>,
}

/// An exec probe returns once its group is torn down, which the library
/// does at the timeout; this only guards against a spawn that never
/// returns.
const EXEC_SLACK: Duration = Duration::from_secs(10);

/// Runs `check` once. `Ok` and `Err` both carry a short note for people.
pub(crate) async fn check(check: &Check, ctx: &CheckCtx, timeout: Duration) -> Result<String, String> {
    let timed_out = || format!("timed out after {}", corral::units::format_duration(timeout));
    match check {
        Check::Http { url, headers, status, trust, body } => {
            tokio::time::timeout(timeout, http::check(url, headers, status, trust, body.as_ref()))
                .await
                .unwrap_or_else(|_| Err(timed_out()))
        }
        Check::Tcp { addr } => {
            tokio::time::timeout(timeout, tcp::check(addr)).await.unwrap_or_else(|_| Err(timed_out()))
        }
        Check::Exec { argv } => tokio::time::timeout(timeout + EXEC_SLACK, exec::check(argv, &ctx.exec, timeout))
            .await
            .unwrap_or_else(|_| Err(timed_out())),
        Check::Log { pattern } => match &ctx.log {
            Some(l) => l.check(pattern, timeout).await,
            None => Err("the log is not followed".into()),
        },
    }
}
