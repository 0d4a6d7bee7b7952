//! `exec = ["cmd", "arg"]`: passed when the program exits 0. It runs as
//! its own corral group with the probe's timeout as the group's wall-clock
//! limit, so a probe that hangs, or leaves children behind, is killed whole
//! and cannot pile up: the check returns only once the group is torn down.

use crate::config::ServiceSpec;
use corral::{Group, Reason, Signal, StopPolicy};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt};

/// What an exec probe inherits from its service: environment, folder, user.
#[derive(Clone)]
pub(crate) struct ExecEnv {
    pub spec: Arc<ServiceSpec>,
    pub index: u32,
}

/// How much of the probe's output is kept for the failure reason.
const KEEP: usize = 512;

/// Runs the probe once and waits until its group is gone.
pub(crate) async fn check(argv: &[String], env: &ExecEnv, timeout: Duration) -> Result<String, String> {
    let cmd = crate::spawn::with_argv(&env.spec, env.index, argv)?;
    // No grace: the probe already had its time.
    let builder = Group::builder().timeout(timeout).stop(StopPolicy::new(Signal::KILL, Duration::ZERO));
    let mut group = builder.spawn_async(cmd).await.map_err(|e| format!("spawn `{}`: {e}", argv[0]))?;
    let out = group.take_stdout().and_then(|o| tokio::process::ChildStdout::from_std(o).ok());
    let err = group.take_stderr().and_then(|e| tokio::process::ChildStderr::from_std(e).ok());
    // The pipes close once every member is gone, so both ends come together.
    let (outcome, (o, e)) = tokio::join!(group.wait_async(), async { tokio::join!(tail(out), tail(err)) });
    let said = last_line(&e).or_else(|| last_line(&o));
    let with = |s: String| match &said {
        Some(l) => format!("{s}: {l}"),
        None => s,
    };
    if outcome.reason == Reason::Timeout {
        return Err(format!("timed out after {}", corral::units::format_duration(timeout)));
    }
    match (outcome.status.code, outcome.status.signal) {
        (Some(0), _) => Ok(with("exit code 0".into())),
        (Some(c), _) => Err(with(format!("exit code {c}"))),
        (None, Some(s)) => Err(with(format!("killed by {}", Signal::from_raw(s)))),
        (None, None) => Err(with(format!("ended ({})", outcome.reason))),
    }
}

/// Reads to the end, keeping the last `KEEP` bytes.
pub(crate) async fn tail<R: AsyncRead + Unpin>(r: Option<R>) -> Vec<u8> {
    let Some(mut r) = r else { return Vec::new() };
    let mut kept = Vec::new();
    // On the heap while it reads: an array here would sit in the state of
    // every future that awaits a tail (a hook's, inside every instance's
    // task), 4 KiB each, for the daemon's whole life.
    let mut buf = vec![0u8; 4096];
    while let Ok(n) = r.read(&mut buf).await {
        if n == 0 {
            break;
        }
        kept.extend_from_slice(&buf[..n]);
        if kept.len() > KEEP {
            kept.drain(..kept.len() - KEEP);
        }
    }
    kept
}

pub(crate) fn last_line(bytes: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(bytes);
    text.lines().map(str::trim).rfind(|l| !l.is_empty()).map(|l| l.chars().take(200).collect())
}
