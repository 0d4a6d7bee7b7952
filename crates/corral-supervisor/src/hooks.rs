//! Running a hook (`pre_start`, `post_start`, `pre_stop`, `post_stop`) or
//! a `reload` command: like an instance of its service (environment,
//! `env_file`s, user, groups, umask, folder), as a corral group of its own
//! with the hook's timeout as its wall-clock limit, so a hook that hangs
//! or leaves children behind is killed whole; it returns only once that
//! group is torn down. Never through a shell unless the user wrote one.
//!
//! Besides the service's environment a hook gets `CORRAL_HOOK` (its
//! name), `MAINPID` (the leader's pid, when there is one: `post_start`,
//! `pre_stop`, `reload`), and after a run `EXIT_CODE` / `EXIT_STATUS`
//! (`post_stop`, systemd's names and values: `exited` and the code, or
//! `killed` and the signal's name).
//!
//! What each hook's result does is the instance's business
//! (`instance/hooks.rs`); here it is only run and described.

use crate::config::{HookCommand, ServiceSpec};
use crate::event::{Event, EventKind};
use crate::state::State;
use corral::{Group, Reason, Signal, StopPolicy};
use serde::{Deserialize, Serialize};
use std::time::{Duration, Instant};

/// Which hook.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum HookName {
    PreStart,
    PostStart,
    PreStop,
    PostStop,
    Reload,
}

impl HookName {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            HookName::PreStart => "pre_start",
            HookName::PostStart => "post_start",
            HookName::PreStop => "pre_stop",
            HookName::PostStop => "post_stop",
            HookName::Reload => "reload",
        }
    }
}

/// How a hook ended, as `hook` events carry it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HookReport {
    /// `pre_start`, `post_start`, `pre_stop`, `post_stop` or `reload`.
    pub name: String,
    /// It exited 0 (for a reload signal: the signal was sent).
    pub ok: bool,
    /// Its exit code, when it exited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<i32>,
    /// The signal that ended it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signal: Option<i32>,
    /// How long it ran, spawn to teardown.
    pub duration_ms: u64,
    /// How it ended, in a few words, with its last line of output.
    pub outcome: String,
}

impl HookReport {
    /// `pre_start: exit code 3 after 12ms: <last line>`.
    pub fn describe(&self) -> String {
        format!("{}: {}", self.name, self.outcome)
    }
}

/// Extra variables of a hook, on top of its service's.
#[derive(Debug, Default, Clone)]
pub(crate) struct HookEnv {
    pub mainpid: Option<u32>,
    /// How the run ended (`post_stop`).
    pub exit: Option<corral::ExitStatus>,
}

/// Runs `hook` once for instance `index` of `spec`.
pub(crate) async fn run(
    spec: &ServiceSpec,
    index: u32,
    name: HookName,
    hook: &HookCommand,
    env: HookEnv,
) -> HookReport {
    let started = Instant::now();
    let report = |ok: bool, code: Option<i32>, signal: Option<i32>, outcome: String| HookReport {
        name: name.as_str().to_string(),
        ok,
        code,
        signal,
        duration_ms: started.elapsed().as_millis() as u64,
        outcome,
    };
    let mut cmd = match crate::spawn::with_argv(spec, index, &hook.argv) {
        Ok(c) => c,
        Err(e) => return report(false, None, None, format!("not started: {e}")),
    };
    cmd.env("CORRAL_HOOK", name.as_str());
    if let Some(pid) = env.mainpid {
        cmd.env("MAINPID", pid.to_string());
    }
    if let Some(st) = env.exit {
        let (kind, status) = match (st.code, st.signal) {
            (Some(c), _) => ("exited", c.to_string()),
            (None, Some(s)) => ("killed", Signal::from_raw(s).to_string().trim_start_matches("SIG").to_string()),
            _ => ("exited", String::new()),
        };
        cmd.env("EXIT_CODE", kind).env("EXIT_STATUS", status);
    }
    // No grace: the hook already had its time.
    let builder = Group::builder().timeout(hook.timeout).stop(StopPolicy::new(Signal::KILL, Duration::ZERO));
    let mut group = match builder.spawn_async(cmd).await {
        Ok(g) => g,
        Err(e) => return report(false, None, None, format!("`{}` not started: {e}", hook.argv[0])),
    };
    let out = group.take_stdout().and_then(|o| tokio::process::ChildStdout::from_std(o).ok());
    let err = group.take_stderr().and_then(|e| tokio::process::ChildStderr::from_std(e).ok());
    use crate::health::exec::{last_line, tail};
    // The pipes close once every member is gone, so both ends come together.
    let (outcome, (o, e)) = tokio::join!(group.wait_async(), async { tokio::join!(tail(out), tail(err)) });
    let took = corral::units::format_duration(Duration::from_millis(started.elapsed().as_millis() as u64));
    let said = last_line(&e).or_else(|| last_line(&o)).map(|l| format!(": {l}")).unwrap_or_default();
    let (code, signal) = (outcome.status.code, outcome.status.signal);
    if outcome.reason == Reason::Timeout {
        let limit = corral::units::format_duration(hook.timeout);
        return report(false, code, signal, format!("timed out after {limit}, killed{said}"));
    }
    match (code, signal) {
        (Some(0), _) => report(true, code, None, format!("exit code 0 after {took}{said}")),
        (Some(c), _) => report(false, code, None, format!("exit code {c} after {took}{said}")),
        (None, Some(s)) => report(false, None, signal, format!("killed by {} after {took}{said}", Signal::from_raw(s))),
        (None, None) => report(false, None, None, format!("ended ({}) after {took}{said}", outcome.reason)),
    }
}

/// The `hook` event of instance `index` in `state`.
pub(crate) fn event(service: &str, index: u32, state: State, pid: Option<u32>, report: HookReport) -> Event {
    let mut e = Event::daemon(report.describe());
    e.kind = EventKind::Hook;
    e.service = service.to_string();
    e.instance = index;
    e.from = state;
    e.to = state;
    e.pid = pid;
    e.hook = Some(Box::new(report));
    e
}
