//! What an instance does with its hooks (run by `crate::hooks`):
//!
//! - `pre_start` runs before every start, a stop request still obeyed
//!   while it runs. If it fails or times out, the start fails: the run's
//!   result is a failed start, so the restart policy, the backoff and the
//!   start limit apply as to a program that cannot be spawned (systemd's
//!   `ExecStartPre=`).
//! - `post_start` runs beside the new run; its failure is an event only.
//!   systemd stops the service when `ExecStartPost=` fails; corral does
//!   not, on purpose: the service is up and may be serving already, and a
//!   failed notification hook (a registration, a cache warm-up) is no
//!   reason to take it down. Ending a run is the liveness probe's job. A
//!   `post_start` still running when the run ends is killed with it.
//! - `pre_stop` runs when corral stops a running instance (a request, a
//!   reload, a failed health check), before the stop signal; whatever it
//!   returns, the stop goes on once it ends or its timeout is over.
//! - `post_stop` runs once the group is gone, however the run ended, and
//!   before the instance moves on (a `corral stop` answers after it).
//!
//! Each one emits a `hook` event with its name, exit and duration.

use super::{Control, RunEnd, State, Task};
use crate::hooks::{self, HookEnv, HookName, HookReport};
use corral::Group;
use std::sync::Arc;

/// Kills a `post_start` still running when the run ends (dropping its
/// group kills it).
pub(super) struct PostStart(Option<tokio::task::JoinHandle<()>>);

impl Drop for PostStart {
    fn drop(&mut self) {
        if let Some(h) = self.0.take() {
            h.abort();
        }
    }
}

impl Task {
    /// Runs `pre_start`, if any: `Ok(None)` to go on with the start,
    /// `Ok(Some(reason))` when it failed, `Err` when a request ended the
    /// wait (the instance is stopped, or the daemon stopping).
    pub(super) async fn pre_start(&mut self) -> Result<Option<String>, RunEnd> {
        let Some(hook) = self.spec.hooks.pre_start.clone() else { return Ok(None) };
        // A run taken back after a daemon restart started long ago; its
        // hooks ran then (systemd's daemon-reexec reruns none either).
        if self.ctx.reattached.holds(&self.spec.name, self.index) {
            return Ok(None);
        }
        let spec = self.spec.clone();
        let run = hooks::run(&spec, self.index, HookName::PreStart, &hook, HookEnv::default());
        tokio::pin!(run);
        let report = loop {
            tokio::select! {
                r = &mut run => break r,
                c = self.rx.recv() => match c {
                    Some(Control::Stop) => {
                        self.transition(State::Stopped, "stop requested (pre_start killed)", None, None);
                        return Err(RunEnd::Stopped);
                    }
                    Some(Control::Shutdown) | None => return Err(RunEnd::Shutdown),
                    Some(Control::Retune { spec, done }) => self.retune_later(spec, done),
                    Some(_) => {}
                },
            }
        };
        let failed = (!report.ok).then(|| format!("{} failed: {}", report.name, report.outcome));
        self.emit_hook(None, report);
        Ok(failed)
    }

    /// Starts `post_start`, if any, beside the run of `group`.
    pub(super) fn post_start(&self, group: &Arc<Group>) -> PostStart {
        let Some(hook) = self.spec.hooks.post_start.clone() else { return PostStart(None) };
        if self.reattached {
            return PostStart(None);
        }
        let (spec, index, ctx, pid) = (self.spec.clone(), self.index, self.ctx.clone(), group.pid());
        let status = self.status.subscribe();
        PostStart(Some(tokio::spawn(async move {
            let env = HookEnv { mainpid: Some(pid), ..HookEnv::default() };
            let report = hooks::run(&spec, index, HookName::PostStart, &hook, env).await;
            if !report.ok {
                eprintln!("corral: {}.{}: {} (the service keeps running)", spec.name, index, report.describe());
            }
            let state = status.borrow().state;
            ctx.events.emit(hooks::event(&spec.name, index, state, Some(pid), report));
        })))
    }

    /// Runs `pre_stop`, if any, before the stop signal goes to `group`.
    pub(super) async fn pre_stop(&mut self, group: &Arc<Group>) {
        let Some(hook) = self.spec.hooks.pre_stop.clone() else { return };
        let env = HookEnv { mainpid: Some(group.pid()), ..HookEnv::default() };
        let report = hooks::run(&self.spec, self.index, HookName::PreStop, &hook, env).await;
        self.emit_hook(Some(group.pid()), report);
    }

    /// Runs `post_stop`, if any, once the group of `pid` is gone.
    pub(super) async fn post_stop(&mut self, pid: u32, exit: corral::ExitStatus) {
        let Some(hook) = self.spec.hooks.post_stop.clone() else { return };
        let env = HookEnv { mainpid: None, exit: Some(exit) };
        let report = hooks::run(&self.spec, self.index, HookName::PostStop, &hook, env).await;
        self.emit_hook(Some(pid), report);
    }

    fn emit_hook(&self, pid: Option<u32>, report: HookReport) {
        if !report.ok {
            eprintln!("corral: {}.{}: {}", self.spec.name, self.index, report.describe());
        }
        let state = self.state();
        self.ctx.events.emit(hooks::event(&self.spec.name, self.index, state, pid, report));
    }
}
