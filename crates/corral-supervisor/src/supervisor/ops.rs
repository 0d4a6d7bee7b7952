//! Operations on one running service that neither re-read the config nor
//! restart what runs: `corral signal`, `corral reload-service` (systemd's
//! `ExecReload=`) and `corral scale`.
//!
//! A scale is kept until the next reload that changes that service: the
//! config in force keeps the file's count, so a reload of an unchanged
//! file leaves the scaled instances as they are, while a reload that
//! changes the service (its `instances` included) applies the file's
//! count. A restarted daemon starts the file's count.

use super::{Supervisor, Target, UnknownService};
use crate::config::{ReloadAction, MAX_INSTANCES, MAX_TOTAL_INSTANCES};
use crate::hooks::{self, HookEnv, HookName, HookReport};
use crate::instance::{Control, Instance};
use corral::{Group, Signal};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::Instant;

/// Why an operation on a service did nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OpError {
    /// No such service.
    Unknown(UnknownService),
    /// The request is wrong (a count out of bounds, a service without a
    /// reload action, no signals on this OS): nothing was done.
    BadInput(String),
    /// There is nothing to act on now (no instance running, the daemon
    /// stopping).
    Refused(String),
}

impl std::fmt::Display for OpError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            OpError::Unknown(e) => write!(f, "{e}"),
            OpError::BadInput(m) | OpError::Refused(m) => f.write_str(m),
        }
    }
}

/// One instance's part of a `corral signal`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Signalled {
    /// Instance index.
    pub instance: u32,
    /// Its leader's pid.
    pub pid: u32,
    /// How many processes were signalled (1: the leader only).
    pub processes: usize,
    /// Why the signal could not be sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// One instance's part of a `corral reload-service`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reloaded {
    /// Instance index.
    pub instance: u32,
    /// Its leader's pid, unchanged by the reload.
    pub pid: u32,
    /// The signal was sent, or the command exited 0.
    pub ok: bool,
    /// What happened, in a few words.
    pub outcome: String,
}

impl Supervisor {
    /// Sends `signal` to the leader of each running instance of `name`
    /// (or of instance `only`), or with `all_members` to every process of
    /// their groups.
    pub async fn signal(
        &self,
        name: &str,
        signal: Signal,
        all_members: bool,
        only: Option<u32>,
    ) -> Result<Vec<Signalled>, OpError> {
        if cfg!(windows) {
            return Err(OpError::BadInput(
                "signals are a Unix notion: on Windows use `corral stop` or `corral restart`".into(),
            ));
        }
        let mut out = Vec::new();
        for (instance, group) in self.running(name, only)? {
            let pid = group.pid();
            let (processes, sent) = if all_members {
                let n = group.members().map(|m| m.len()).unwrap_or(0);
                (n, group.signal(signal).map_err(|e| e.to_string()))
            } else {
                (1, crate::sys::signal::to_pid(pid, signal).map_err(|e| e.to_string()))
            };
            out.push(Signalled { instance, pid, processes, error: sent.err() });
        }
        Ok(out)
    }

    /// Reloads each running instance of `name` as its config says
    /// (`reload_signal` to the leader, or the `reload` command with
    /// `MAINPID`), without restarting it. Each reload is a `hook` event.
    pub async fn reload_service(&self, name: &str) -> Result<Vec<Reloaded>, OpError> {
        self.resolve(&Target::Some(vec![name.to_string()])).map_err(OpError::Unknown)?;
        let spec = self.services().get(name).map(|s| s.spec.clone());
        let spec = spec.ok_or_else(|| went_away(name))?;
        let Some(action) = spec.reload.clone() else {
            return Err(OpError::BadInput(format!(
                "service `{name}` has no `reload_signal` or `reload` in its config: add one, or use `corral restart {name}`"
            )));
        };
        let mut out = Vec::new();
        for (instance, group) in self.running(name, None)? {
            let pid = group.pid();
            let report = match &action {
                ReloadAction::Signal(sig) => signal_report(pid, *sig),
                ReloadAction::Command(cmd) => {
                    let env = HookEnv { mainpid: Some(pid), ..HookEnv::default() };
                    hooks::run(&spec, instance, HookName::Reload, cmd, env).await
                }
            };
            let state = self.state_of(name, instance);
            self.emit(hooks::event(name, instance, state, Some(pid), report.clone()));
            out.push(Reloaded { instance, pid, ok: report.ok, outcome: report.outcome });
        }
        Ok(out)
    }

    /// Runs `name` with `count` instances: the highest-numbered ones stop
    /// gracefully, or new ones start (when the service is up).
    pub async fn scale(&self, name: &str, count: u32) -> Result<(), OpError> {
        self.scale_by(name, count, None).await
    }

    /// [`Supervisor::scale`] asked for by a client: the starts and stops it
    /// causes name `by`.
    pub async fn scale_by(&self, name: &str, count: u32, by: Option<crate::api::Actor>) -> Result<(), OpError> {
        self.resolve(&Target::Some(vec![name.to_string()])).map_err(OpError::Unknown)?;
        if !(1..=MAX_INSTANCES).contains(&count) {
            return Err(OpError::BadInput(format!("{count} instances: a service runs 1 to {MAX_INSTANCES}")));
        }
        let _op = self.inner.op.lock().await;
        if self.is_stopping() {
            return Err(OpError::Refused("the daemon is stopping; nothing was scaled".into()));
        }
        let (retired, fresh, spec) = {
            let mut services = self.services();
            let others: u32 = services.iter().filter(|(n, _)| *n != name).map(|(_, s)| s.instances.len() as u32).sum();
            if others.saturating_add(count) > MAX_TOTAL_INSTANCES {
                return Err(OpError::BadInput(format!(
                    "{count} instances would make {} in all services, more than {MAX_TOTAL_INSTANCES}",
                    others.saturating_add(count)
                )));
            }
            let s = services.get_mut(name).ok_or_else(|| went_away(name))?;
            let mut spec = (*s.spec).clone();
            spec.instances = count;
            let spec = Arc::new(spec);
            let up = s.instances.iter().any(|i| !i.status.borrow().state.is_down());
            let mut retired = Vec::new();
            while s.instances.len() > count as usize {
                retired.extend(s.instances.pop());
            }
            let mut fresh = Vec::new();
            while s.instances.len() < count as usize {
                let index = s.instances.len() as u32;
                s.instances.push(Instance::spawn(self.inner.ctx.clone(), spec.clone(), index));
                fresh.push(index as usize);
            }
            s.spec = spec.clone();
            (retired, if up { fresh } else { Vec::new() }, spec)
        };
        // All at once, each with its own stop policy and pre_stop.
        for i in &retired {
            i.send_by(Control::Stop, by.clone());
        }
        for i in retired {
            i.wait_down().await;
            i.send(Control::Shutdown);
            let _ = i.task.await;
        }
        let services = self.services();
        if let Some(s) = services.get(name) {
            for index in fresh {
                if let Some(i) = s.instances.get(index) {
                    i.send_by(Control::Start(self.deps_of(&services, &spec)), by.clone());
                }
            }
        }
        Ok(())
    }

    /// The running groups of `name` (of instance `only`), by index.
    fn running(&self, name: &str, only: Option<u32>) -> Result<Vec<(u32, Arc<Group>)>, OpError> {
        // Before the lock: `resolve` takes it too.
        self.resolve(&Target::Some(vec![name.to_string()])).map_err(OpError::Unknown)?;
        let services = self.services();
        let s = services.get(name).ok_or_else(|| went_away(name))?;
        let count = s.instances.len() as u32;
        if let Some(i) = only.filter(|i| *i >= count) {
            return Err(OpError::BadInput(format!("`{name}` has no instance {i}: it runs 0 to {}", count - 1)));
        }
        let found: Vec<(u32, Arc<Group>)> = s
            .instances
            .iter()
            .filter(|i| only.is_none_or(|o| o == i.index))
            .filter_map(|i| {
                let g = i.group_handle().lock().unwrap_or_else(|p| p.into_inner()).clone()?;
                // A group that has ended no longer owns its leader's pid.
                g.try_wait().is_none().then_some((i.index, g))
            })
            .collect();
        if found.is_empty() {
            let which = only.map_or(format!("no instance of `{name}`"), |i| format!("instance {i} of `{name}`"));
            let verb = if only.is_some() { "is not running" } else { "is running" };
            return Err(OpError::Refused(format!("{which} {verb}; nothing was signalled or reloaded")));
        }
        Ok(found)
    }

    fn state_of(&self, name: &str, index: u32) -> crate::State {
        let services = self.services();
        services
            .get(name)
            .and_then(|s| s.instances.get(index as usize))
            .map_or(crate::State::Stopped, |i| i.status.borrow().state)
    }
}

/// A service a reload removed between the check and the lock.
fn went_away(name: &str) -> OpError {
    OpError::Refused(format!("service `{name}` went away"))
}

/// A reload by signal, as a hook report.
fn signal_report(pid: u32, sig: Signal) -> HookReport {
    let started = Instant::now();
    let sent = crate::sys::signal::to_pid(pid, sig);
    HookReport {
        name: HookName::Reload.as_str().to_string(),
        ok: sent.is_ok(),
        code: None,
        signal: None,
        duration_ms: started.elapsed().as_millis() as u64,
        outcome: match sent {
            Ok(()) => format!("sent {sig} to pid {pid}"),
            Err(e) => format!("sending {sig} to pid {pid} failed: {e}"),
        },
    }
}
