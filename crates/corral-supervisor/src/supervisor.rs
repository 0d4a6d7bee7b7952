//! The daemon's core: the services, their instance tasks, and the
//! operations on them (start, stop, restart, reload) in dependency order.

use crate::alerts::sampler::Sampler;
use crate::api::Actor;
use crate::config::{Config, ConfigErrors, ServiceSpec, Specs};
use crate::diff::{diff, Diff};
use crate::event::{Event, EventLog};
use crate::instance::{Control, Ctx, Dep, Instance};
use crate::logs::LogHub;
use crate::metrics::{Format, Metrics};
use crate::persist::Persist;
use crate::policy::stop_waits_for;
use crate::state::InstanceStatus;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Instant;
use tokio::sync::broadcast;

mod ops;
pub use ops::{OpError, Reloaded, Signalled};

/// How long a rollout waits for each new instance to become ready.
pub const ROLL_WAIT: std::time::Duration = std::time::Duration::from_secs(300);

/// A verdict from a health check outside the daemon (the daemon's own
/// probes report on a channel of each run instead).
#[derive(Debug, Clone)]
pub enum Health {
    /// Readiness changed.
    Ready(bool),
    /// Liveness or startup failed: the run ends and the restart policy applies.
    Unhealthy(String),
}

/// Which services an operation applies to.
#[derive(Debug, Clone)]
pub enum Target {
    /// Every service.
    All,
    /// These services.
    Some(Vec<String>),
}

/// One instance's snapshot from [`Supervisor::dump`].
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct DumpResult {
    /// Service name.
    pub service: String,
    /// Instance index.
    pub instance: u32,
    /// The snapshot's folder.
    pub dir: Option<String>,
    /// Why there is no snapshot (not running, or the write failed).
    pub error: Option<String>,
}

/// Why a reload changed nothing.
#[derive(Debug, Clone)]
pub enum ReloadError {
    /// The new config does not load: every error, nothing changed.
    Config(ConfigErrors),
    /// The daemon is stopping: a reload now would start what the
    /// shutdown has just stopped.
    Stopping,
}

impl std::fmt::Display for ReloadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReloadError::Config(e) => write!(f, "{e}"),
            ReloadError::Stopping => f.write_str(STOPPING),
        }
    }
}

/// Why a reload or a rollout gave up.
const STOPPING: &str = "the daemon is stopping";

/// An operation named a service that does not exist.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownService {
    /// The name given.
    pub name: String,
    /// A close existing name.
    pub did_you_mean: Option<String>,
}

impl std::fmt::Display for UnknownService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "no service `{}`", self.name)?;
        if let Some(d) = &self.did_you_mean {
            write!(f, " (did you mean `{d}`?)")?;
        }
        Ok(())
    }
}

struct Service {
    spec: Arc<ServiceSpec>,
    instances: Vec<Instance>,
    /// The timer of `schedule`, `every` or `cron_restart` and the
    /// `watch`, while the service is started (`schedule/`).
    armed: Vec<crate::schedule::Armed>,
}

/// The supervisor of one config. Cheap to clone.
#[derive(Clone)]
pub struct Supervisor {
    inner: Arc<Inner>,
}

struct Inner {
    ctx: Arc<Ctx>,
    config: Mutex<Config>,
    services: Mutex<BTreeMap<String, Service>>,
    /// One operation at a time, so a reload never races a stop.
    op: tokio::sync::Mutex<()>,
    /// True once [`Supervisor::shutdown`] is called: a rollout in progress
    /// gives up (shutdown must not wait minutes for the operation lock),
    /// and nothing is started any more.
    stopping: tokio::sync::watch::Sender<bool>,
    /// Services whose last rollout halted: some instances run the new
    /// spec, the rest the old one. The next reload replaces them whole,
    /// even when the file has not changed since.
    mixed: Mutex<BTreeSet<String>>,
    /// Services from the fleet's desired state, merged into every config
    /// applied (`fleet/`).
    fleet: Mutex<crate::fleet::Overlay>,
}

impl Supervisor {
    /// Creates the instance tasks (all `stopped`). Must run inside a tokio
    /// runtime. Creates the state and log folders.
    pub fn new(config: Config, logs: LogHub) -> std::io::Result<Supervisor> {
        crate::sys::safe_fs::PrivateDir::create_or_check(&config.daemon.log_dir)?;
        let events = EventLog::open(&config.daemon.state_dir, config.daemon.events)?;
        let ctx = Arc::new(Ctx {
            events,
            logs: Arc::new(logs),
            persist: Persist::new(&config.daemon.state_dir)?,
            origin: Instant::now(),
            metrics: Arc::new(Metrics::default()),
            sampler: Sampler::new(crate::alerts::sampler::PERIOD),
            dumps: config.daemon.state_dir.join("dumps"),
            lineage: Arc::default(),
            sockets: Default::default(),
            reattached: Default::default(),
            holder: Default::default(),
        });
        let mut services = BTreeMap::new();
        for spec in config.services.values() {
            services.insert(spec.name.clone(), new_service(&ctx, spec));
        }
        Ok(Supervisor {
            inner: Arc::new(Inner {
                ctx,
                config: Mutex::new(config),
                services: Mutex::new(services),
                op: tokio::sync::Mutex::new(()),
                stopping: tokio::sync::watch::Sender::new(false),
                mixed: Mutex::new(BTreeSet::new()),
                fleet: Mutex::new(Default::default()),
            }),
        })
    }

    /// Binds the listening sockets of the config in force (socket
    /// activation), before anything starts: an address in use is an error
    /// at its entry's place.
    pub fn bind_sockets(&self) -> Result<(), ConfigErrors> {
        self.bind_sockets_taking(&Default::default())
    }

    /// [`Supervisor::bind_sockets`], first taking back the sockets that
    /// the groups of a previous daemon still listen on.
    pub(crate) fn bind_sockets_taking(&self, taken: &crate::reattach::TakenBack) -> Result<(), ConfigErrors> {
        #[cfg(target_os = "linux")]
        for (service, leader) in taken.leaders() {
            if let Some(spec) = self.config().services.get(&service) {
                self.inner.ctx.sockets.take_back(spec, leader);
            }
        }
        #[cfg(not(target_os = "linux"))]
        let _ = taken;
        self.inner.ctx.sockets.bind_missing(&self.config().services)
    }

    /// Groups a previous daemon left, taken back alive: each instance
    /// picks its own up at its first start instead of spawning.
    pub(crate) fn hand_over(&self, taken: crate::reattach::TakenBack, holder: crate::holder::Client) {
        self.inner.ctx.reattached.put(taken);
        self.inner.ctx.holder.replace(holder);
    }

    /// Waits (at most `limit`) until the state file holds every group.
    #[cfg_attr(target_os = "macos", allow(dead_code))] // for a re-exec, Linux and Windows
    pub(crate) fn flush_state(&self, limit: std::time::Duration) -> bool {
        self.inner.ctx.persist.flush(limit)
    }

    /// The config in force.
    pub fn config(&self) -> Config {
        self.inner.config.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Records an event about the daemon itself.
    pub(crate) fn emit(&self, event: Event) {
        self.inner.ctx.events.emit(event);
    }

    /// Events from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.inner.ctx.events.subscribe()
    }

    /// The log folder and followers.
    pub fn logs(&self) -> Arc<LogHub> {
        self.inner.ctx.logs.clone()
    }

    /// Every instance, by service then index.
    pub fn status(&self) -> Vec<InstanceStatus> {
        let services = self.services();
        let next = |s: &Service| s.armed.iter().find_map(|a| a.next_run());
        services
            .values()
            .flat_map(|s| {
                s.instances.iter().map(move |i| InstanceStatus { next_run: next(s), ..i.status(&s.spec.name) })
            })
            .collect()
    }

    /// `GET /metrics`: every instance and the daemon, in `format`. Reads
    /// each group's usage: call it off the runtime.
    pub fn metrics(&self, format: Format) -> String {
        let link = self.fleet().link.clone();
        self.inner.ctx.metrics.render(self.status(), link, format)
    }

    /// The cell holding the group of instance `index` of `service`
    /// (empty while it is not running); `None` when there is no such
    /// instance.
    pub(crate) fn group_of(&self, service: &str, index: u32) -> Option<Arc<Mutex<Option<Arc<corral::Group>>>>> {
        self.services().get(service)?.instances.get(index as usize).map(Instance::group_handle)
    }

    /// Instance counts by service.
    pub fn instance_counts(&self) -> BTreeMap<String, u32> {
        self.services().iter().map(|(n, s)| (n.clone(), s.instances.len() as u32)).collect()
    }

    /// Checks names against the services.
    pub fn resolve(&self, target: &Target) -> Result<Vec<String>, UnknownService> {
        let services = self.services();
        match target {
            Target::All => Ok(services.keys().cloned().collect()),
            Target::Some(names) => names
                .iter()
                .map(|n| {
                    if services.contains_key(n) {
                        Ok(n.clone())
                    } else {
                        Err(UnknownService {
                            name: n.clone(),
                            did_you_mean: crate::config::did_you_mean(n, services.keys().map(String::as_str)),
                        })
                    }
                })
                .collect(),
        }
    }

    /// Starts the services and what they depend on. Each instance waits
    /// for its dependencies itself, so independent services start in
    /// parallel. Returns once every instance has been told.
    pub async fn start(&self, target: &Target) -> Result<(), UnknownService> {
        self.start_by(target, None).await
    }

    /// [`Supervisor::start`] asked for by a client: the transitions it
    /// causes name `by`.
    pub async fn start_by(&self, target: &Target, by: Option<Actor>) -> Result<(), UnknownService> {
        let names = self.resolve(target)?;
        let _op = self.inner.op.lock().await;
        self.start_locked_by(&names, by.as_ref());
        Ok(())
    }

    fn start_locked_by(&self, names: &[String], by: Option<&Actor>) {
        if self.is_stopping() {
            return;
        }
        let skip = {
            let c = self.config();
            vec![c.daemon.state_dir, c.daemon.log_dir]
        };
        let mut services = self.services();
        let mut todo: BTreeSet<String> = BTreeSet::new();
        let mut stack: Vec<String> = names.to_vec();
        while let Some(n) = stack.pop() {
            if let Some(s) = services.get(&n) {
                if todo.insert(n.clone()) {
                    stack.extend(s.spec.depends_on.keys().cloned());
                }
            }
        }
        for name in &todo {
            let s = services.get_mut(name).expect("todo holds services");
            if s.armed.is_empty() {
                s.armed = crate::schedule::arm(self.downgrade(), &s.spec, skip.clone());
            }
            // A scheduled service is started by its ticks, not now.
            if s.spec.schedule.is_some() {
                continue;
            }
            let s = &services[name];
            let explicitly = names.contains(name);
            for inst in &s.instances {
                let state = inst.status.borrow().state;
                // A dependency that is already up (or done) is left alone.
                if !explicitly && !state.is_down() {
                    continue;
                }
                if !explicitly && state == crate::State::Exited {
                    continue;
                }
                // An instance already up is not started by this request.
                let by = by.filter(|_| state.is_down() || state == crate::State::Backoff).cloned();
                inst.send_by(Control::Start(self.deps_of(&services, &s.spec)), by);
            }
        }
    }

    /// Stops the services, each after the services among them that depend
    /// on it. Returns when they are all down.
    pub async fn stop(&self, target: &Target) -> Result<(), UnknownService> {
        self.stop_by(target, None).await
    }

    /// [`Supervisor::stop`] asked for by a client: the transitions it
    /// causes name `by`.
    pub async fn stop_by(&self, target: &Target, by: Option<Actor>) -> Result<(), UnknownService> {
        let names = self.resolve(target)?;
        let _op = self.inner.op.lock().await;
        self.stop_locked_by(&names, by.as_ref()).await;
        Ok(())
    }

    async fn stop_locked(&self, names: &[String]) {
        self.stop_locked_by(names, None).await
    }

    async fn stop_locked_by(&self, names: &[String], by: Option<&Actor>) {
        let graph = {
            let services = self.services();
            services
                .iter()
                .filter(|(n, _)| names.contains(n))
                .map(|(n, s)| (n.clone(), s.spec.depends_on.keys().cloned().collect::<Vec<_>>()))
                .collect::<BTreeMap<_, _>>()
        };
        let mut tasks = BTreeMap::new();
        let (done_tx, _) = tokio::sync::watch::channel(BTreeSet::<String>::new());
        for name in names {
            let waits_for = stop_waits_for(name, &graph);
            let mut done_rx = done_tx.subscribe();
            let done_tx = done_tx.clone();
            let me = self.clone();
            let name = name.clone();
            let by = by.cloned();
            tasks.insert(
                name.clone(),
                tokio::spawn(async move {
                    let _ = done_rx.wait_for(|d| waits_for.iter().all(|w| d.contains(w))).await;
                    me.stop_one(&name, by).await;
                    done_tx.send_modify(|d| {
                        d.insert(name.clone());
                    });
                }),
            );
        }
        for (_, t) in tasks {
            let _ = t.await;
        }
    }

    async fn stop_one(&self, name: &str, by: Option<Actor>) {
        let waits: Vec<_> = {
            let mut services = self.services();
            let Some(s) = services.get_mut(name) else { return };
            // First, so that no tick starts a run behind this stop.
            s.armed.clear();
            for i in &s.instances {
                // A stopped instance is not stopped by this request.
                let stopped = i.status.borrow().state == crate::State::Stopped;
                i.send_by(Control::Stop, by.clone().filter(|_| !stopped));
            }
            s.instances.iter().map(|i| i.status.clone()).collect()
        };
        for mut rx in waits {
            let _ = rx.wait_for(|s| s.state == crate::State::Stopped).await;
        }
    }

    /// Stops, then starts, in dependency order.
    pub async fn restart(&self, target: &Target) -> Result<(), UnknownService> {
        self.restart_by(target, None).await
    }

    /// [`Supervisor::restart`] asked for by a client: the transitions it
    /// causes name `by`.
    pub async fn restart_by(&self, target: &Target, by: Option<Actor>) -> Result<(), UnknownService> {
        let names = self.resolve(target)?;
        let _op = self.inner.op.lock().await;
        self.stop_locked_by(&names, by.as_ref()).await;
        self.start_locked_by(&names, by.as_ref());
        Ok(())
    }

    /// Tells, as a `daemon` event naming `by`, that a client asked for
    /// `what` (a reload, a shutdown): the daemon's own record of who did it.
    pub fn requested(&self, what: &str, by: Option<&Actor>) {
        let Some(by) = by else { return };
        let mut e = Event::daemon(format!("{what} requested"));
        e.actor = Some(Box::new(by.clone()));
        self.inner.ctx.events.emit(e);
    }

    /// Writes a diagnostic snapshot of every running instance of the
    /// services (`corral dump`), as an alert with `action = "dump"` does,
    /// without stopping anything. One result per instance: the folder, or
    /// why there is none.
    pub async fn dump(&self, target: &Target) -> Result<Vec<DumpResult>, UnknownService> {
        self.dump_by(target, None).await
    }

    /// [`Supervisor::dump`] asked for by a client: each `dump` event names `by`.
    pub async fn dump_by(&self, target: &Target, by: Option<Actor>) -> Result<Vec<DumpResult>, UnknownService> {
        let names = self.resolve(target)?;
        let mut out = Vec::new();
        for name in names {
            let count = self.services().get(&name).map_or(0, |s| s.instances.len());
            for index in 0..count {
                // The lock is not held across the write: look the instance up each time.
                let job = {
                    let services = self.services();
                    services.get(&name).and_then(|s| s.instances.get(index)).map(|i| {
                        let ctx = self.inner.ctx.clone();
                        let status = i.status.clone();
                        let group = i.group_handle();
                        (ctx, status, group)
                    })
                };
                let Some((ctx, status, group)) = job else { continue };
                let r = Instance::dump_group(ctx, group, status, &name, index as u32, by.clone()).await;
                out.push(DumpResult {
                    service: name.clone(),
                    instance: index as u32,
                    dir: r.as_ref().ok().cloned(),
                    error: r.err(),
                });
            }
        }
        Ok(out)
    }

    /// The live tree of one instance, placed by what its lineage recorded;
    /// `Ok(Err(why))` when it has no group now.
    pub async fn tree(&self, name: &str, index: u32) -> Result<Result<crate::tree::Tree, String>, UnknownService> {
        self.resolve(&Target::Some(vec![name.to_string()]))?;
        let found = {
            let services = self.services();
            services
                .get(name)
                .and_then(|s| s.instances.get(index as usize))
                .map(|i| (i.group_handle(), i.status.clone()))
        };
        let Some((cell, status)) = found else { return Ok(Err(format!("{name} has no instance {index}"))) };
        let lineage = self.inner.ctx.lineage.get(name, index);
        let group = cell.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let Some(group) = group else { return Ok(Err(format!("not running ({})", status.borrow().state))) };
        Ok(crate::tree::live::of_group(group, lineage).await)
    }

    /// Passes a probe's verdict to an instance.
    pub fn report_health(&self, service: &str, instance: u32, health: Health) {
        let services = self.services();
        if let Some(i) = services.get(service).and_then(|s| s.instances.get(instance as usize)) {
            i.send(match health {
                Health::Ready(r) => Control::Ready(r),
                Health::Unhealthy(why) => Control::Unhealthy(why),
            });
        }
    }

    /// Applies a new config: only the services that differ are touched.
    /// A config that does not load changes nothing, nor does a reload once
    /// the daemon is stopping.
    pub async fn reload(&self, new: Result<Config, ConfigErrors>) -> Result<Diff, ReloadError> {
        self.reload_by(new, None).await
    }

    /// [`Supervisor::reload`] asked for by a client: the starts and stops
    /// it causes name `by`.
    pub async fn reload_by(&self, new: Result<Config, ConfigErrors>, by: Option<Actor>) -> Result<Diff, ReloadError> {
        self.apply(new, true, by.as_ref()).await.map(Option::unwrap_or_default)
    }

    /// A reload by the config file watcher: `None`, and nothing done, when
    /// the new config's services are the ones in force (a `corral reload`
    /// applied the file first, or the daemon started with it), so content
    /// that was applied once is not applied again: that would take up a
    /// halted rollout that nobody asked to retry.
    pub(crate) async fn reload_if_changed(
        &self,
        new: Result<Config, ConfigErrors>,
    ) -> Result<Option<Diff>, ReloadError> {
        self.apply(new, false, None).await
    }

    async fn apply(
        &self,
        new: Result<Config, ConfigErrors>,
        always: bool,
        by: Option<&Actor>,
    ) -> Result<Option<Diff>, ReloadError> {
        let new = new.map_err(ReloadError::Config)?;
        let _op = self.inner.op.lock().await;
        if self.is_stopping() {
            return Err(ReloadError::Stopping);
        }
        let new = self.fleet().merge_into(new, &self.inner.ctx.events);
        let old = self.config();
        if !always && old.services == new.services {
            return Ok(None);
        }
        // New sockets bind before anything changes; the ones held stay.
        self.inner.ctx.sockets.bind_missing(&new.services).map_err(ReloadError::Config)?;
        let mut d = diff(&old.services, &new.services);
        // A halted rollout left two specs running: whatever the file says
        // now, the service changes (the config in force names the new
        // spec, so a plain diff would call it unchanged).
        let mixed = std::mem::take(&mut *self.inner.mixed.lock().unwrap_or_else(|p| p.into_inner()));
        for n in mixed {
            if !new.services.contains_key(&n) || d.changed.contains(&n) {
                continue;
            }
            d.unchanged.retain(|x| *x != n);
            d.scaled.retain(|x| *x != n);
            d.retuned.retain(|x| *x != n);
            d.changed.push(n);
        }
        d.changed.sort();
        let was_up: BTreeSet<String> = {
            let services = self.services();
            d.removed
                .iter()
                .chain(&d.changed)
                .filter(|n| {
                    // An armed job between two runs is up too: its timer is.
                    services.get(*n).is_some_and(|s| {
                        !s.armed.is_empty() || s.instances.iter().any(|i| !i.status.borrow().state.is_down())
                    })
                })
                .cloned()
                .collect()
        };
        // A changed service with several instances that is up rolls: it
        // keeps serving while its instances are replaced one at a time.
        d.rolled = {
            let services = self.services();
            d.changed
                .iter()
                .filter(|n| was_up.contains(*n) && new.services[*n].instances > 1)
                .filter(|n| services.get(*n).is_some_and(|s| s.instances.len() > 1))
                .cloned()
                .collect()
        };
        // Removed and changed services stop first, dependants before dependencies.
        let mut going: Vec<String> = d.removed.clone();
        going.extend(d.changed.iter().filter(|n| !d.rolled.contains(n)).cloned());
        self.stop_locked_by(&going, by).await;
        let mut to_start: Vec<String> = Vec::new();
        let mut retired: Vec<Instance> = Vec::new();
        let mut retuning = Vec::new();
        {
            let mut services = self.services();
            for n in &going {
                if let Some(s) = services.remove(n) {
                    retired.extend(s.instances);
                }
            }
            for n in d.changed.iter().filter(|n| !d.rolled.contains(n)).chain(&d.added) {
                services.insert(n.clone(), new_service(&self.inner.ctx, &new.services[n]));
                if d.added.contains(n) || was_up.contains(n) {
                    to_start.push(n.clone());
                }
            }
            for n in &d.scaled {
                let spec = new.services[n].clone();
                let s = services.get_mut(n).expect("scaled services exist");
                let want = spec.instances as usize;
                while s.instances.len() > want {
                    retired.push(s.instances.pop().expect("len > want"));
                }
                let up = s.instances.iter().any(|i| !i.status.borrow().state.is_down());
                while s.instances.len() < want {
                    let idx = s.instances.len() as u32;
                    s.instances.push(Instance::spawn(self.inner.ctx.clone(), spec.clone(), idx));
                }
                s.spec = spec;
                if up {
                    to_start.push(n.clone());
                }
            }
            // Only probes or alerts differ: every instance keeps its run
            // and takes the new ones in place.
            for n in &d.retuned {
                let spec = new.services[n].clone();
                let s = services.get_mut(n).expect("retuned services exist");
                for i in &s.instances {
                    let (done, taken) = tokio::sync::oneshot::channel();
                    i.send(Control::Retune { spec: spec.clone(), done });
                    retuning.push(taken);
                }
                s.spec = spec;
            }
        }
        // The reload answers once every instance has its new probes (an
        // instance task that is gone answers by dropping its end).
        for taken in retuning {
            let _ = taken.await;
        }
        for i in retired {
            i.send(Control::Shutdown);
            i.wait_down().await;
            let _ = i.task.await;
        }
        let rolling: Vec<(String, Arc<ServiceSpec>)> =
            d.rolled.iter().map(|n| (n.clone(), new.services[n].clone())).collect();
        *self.inner.config.lock().unwrap_or_else(|p| p.into_inner()) = Config { daemon: old.daemon, ..new };
        self.inner.ctx.sockets.retain(&self.config().services);
        self.start_locked_by(&to_start, by);
        for (name, spec) in rolling {
            if let Err(why) = self.roll(&name, spec, by).await {
                eprintln!("corral: the rollout of {name} halted: {why}");
                d.halted.insert(name, why);
            }
        }
        *self.inner.mixed.lock().unwrap_or_else(|p| p.into_inner()) = d.halted.keys().cloned().collect();
        // The old config and what the changed services held are freed now.
        crate::sys::malloc::trim_after_burst();
        Ok(Some(d))
    }

    /// Replaces a service's instances one at a time: old instance `i`
    /// stops, new instance `i` starts, and the next step waits until it is
    /// ready (running, and passing its readiness or startup probe if it
    /// has one). A new instance that fails, exits or is not ready within
    /// [`ROLL_WAIT`] halts the rollout; the instances not replaced yet keep
    /// running with the old spec.
    async fn roll(&self, name: &str, spec: Arc<ServiceSpec>, by: Option<&Actor>) -> Result<(), String> {
        let want = spec.instances as usize;
        let gone = || format!("service `{name}` went away");
        if let Some(s) = self.services().get_mut(name) {
            s.spec = spec.clone();
            if !s.armed.is_empty() {
                let c = self.config();
                s.armed = crate::schedule::arm(self.downgrade(), &spec, vec![c.daemon.state_dir, c.daemon.log_dir]);
            }
        }
        for i in 0..want {
            if self.is_stopping() {
                return Err(STOPPING.into());
            }
            let old = {
                let services = self.services();
                let s = services.get(name).ok_or_else(gone)?;
                s.instances.get(i).map(|o| {
                    o.send_by(Control::Stop, by.cloned());
                    o.status.clone()
                })
            };
            if let Some(mut st) = old {
                let stopped = st.wait_for(|s| s.state == crate::State::Stopped);
                if self.unless_stopping(stopped).await.is_none() {
                    return Err(STOPPING.into());
                }
            }
            let fresh = Instance::spawn(self.inner.ctx.clone(), spec.clone(), i as u32);
            let mut st = fresh.status.clone();
            let replaced = {
                let mut services = self.services();
                fresh.send_by(Control::Start(self.deps_of(&services, &spec)), by.cloned());
                let s = services.get_mut(name).ok_or_else(gone)?;
                if i < s.instances.len() {
                    Some(std::mem::replace(&mut s.instances[i], fresh))
                } else {
                    s.instances.push(fresh);
                    None
                }
            };
            if let Some(o) = replaced {
                o.send(Control::Shutdown);
                let _ = o.task.await;
            }
            use crate::State::{Backoff, Exited, Failed, Running};
            // `stopped` is not an outcome: it is the fresh instance's state
            // until its task takes the Start, and nothing else can stop it
            // while the reload holds the operation lock.
            let settled = async {
                st.wait_for(|s| (s.state == Running && s.ready) || matches!(s.state, Backoff | Exited | Failed))
                    .await
                    .map(|s| (s.state, s.reason.clone()))
            };
            let settled = self.unless_stopping(tokio::time::timeout(ROLL_WAIT, settled)).await.ok_or(STOPPING)?;
            match settled {
                Ok(Ok((Running, _))) => {}
                Ok(Ok((state, why))) => return Err(format!("new instance {i} is {state}: {why}")),
                Ok(Err(_)) => return Err(gone()),
                Err(_) => {
                    return Err(format!(
                        "new instance {i} was not ready within {}",
                        corral::units::format_duration(ROLL_WAIT)
                    ))
                }
            }
        }
        // Fewer instances now: the extra old ones stop last.
        let extra: Vec<Instance> = {
            let mut services = self.services();
            let s = services.get_mut(name).ok_or_else(gone)?;
            s.instances.drain(want.min(s.instances.len())..).collect()
        };
        for o in extra {
            o.send(Control::Shutdown);
            o.wait_down().await;
            let _ = o.task.await;
        }
        Ok(())
    }

    /// Whether [`Supervisor::shutdown`] has begun.
    fn is_stopping(&self) -> bool {
        *self.inner.stopping.borrow()
    }

    /// `f`, unless the daemon begins to stop first (`None` then).
    async fn unless_stopping<T>(&self, f: impl std::future::Future<Output = T>) -> Option<T> {
        let mut stopping = self.inner.stopping.subscribe();
        tokio::select! {
            biased;
            _ = stopping.wait_for(|s| *s) => None,
            v = f => Some(v),
        }
    }

    /// Stops everything in reverse dependency order and ends the tasks.
    /// A rollout in progress halts at once (its reload answers), and no
    /// operation after this one starts anything.
    pub async fn shutdown(&self) {
        self.inner.stopping.send_replace(true);
        let _op = self.inner.op.lock().await;
        // After the lock: a reload that held it may have added services.
        let names = self.resolve(&Target::All).unwrap_or_default();
        self.stop_locked(&names).await;
        let all: Vec<Instance> = {
            let mut services = self.services();
            std::mem::take(&mut *services).into_values().flat_map(|s| s.instances).collect()
        };
        for i in all {
            i.send(Control::Shutdown);
            let _ = i.task.await;
        }
    }

    /// Replaces the fleet's services and applies them with the local ones
    /// through the same diff as a reload; `None` when nothing changed.
    #[cfg_attr(not(feature = "fleet"), allow(dead_code))]
    pub(crate) async fn set_fleet_services(&self, services: Specs) -> Result<Option<Diff>, ReloadError> {
        let local = {
            let mut f = self.fleet();
            f.services = services;
            let mut c = self.config();
            c.services.retain(|n, _| !f.applied.contains(n));
            c
        };
        self.apply(Ok(local), false, None).await
    }

    pub(crate) fn fleet(&self) -> std::sync::MutexGuard<'_, crate::fleet::Overlay> {
        self.inner.fleet.lock().unwrap_or_else(|p| p.into_inner())
    }

    #[cfg_attr(not(feature = "fleet"), allow(dead_code))]
    pub(crate) fn events(&self) -> &EventLog {
        &self.inner.ctx.events
    }

    fn services(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Service>> {
        self.inner.services.lock().unwrap_or_else(|p| p.into_inner())
    }
}

mod limits;

fn new_service(ctx: &Arc<Ctx>, spec: &Arc<ServiceSpec>) -> Service {
    let spec = spec.clone();
    let instances = (0..spec.instances).map(|i| Instance::spawn(ctx.clone(), spec.clone(), i)).collect();
    Service { spec, instances, armed: Vec::new() }
}

/// A supervisor that a timer can reach without keeping it alive.
#[derive(Clone)]
pub(crate) struct WeakSupervisor(std::sync::Weak<Inner>);

impl WeakSupervisor {
    pub(crate) fn upgrade(&self) -> Option<Supervisor> {
        self.0.upgrade().map(|inner| Supervisor { inner })
    }
}

/// What a schedule's timer does, each checked against its `token` under
/// the services' lock: once the timer is disarmed (a stop, a reload), the
/// calls of its task that is still finishing change nothing.
impl Supervisor {
    pub(crate) fn downgrade(&self) -> WeakSupervisor {
        WeakSupervisor(Arc::downgrade(&self.inner))
    }

    fn armed_with<'a>(services: &'a BTreeMap<String, Service>, name: &str, token: u64) -> Option<&'a Service> {
        services.get(name).filter(|s| s.armed.iter().any(|a| a.token == token))
    }

    /// For each instance slot of `name`: whether a run is going.
    pub(crate) fn busy_slots(&self, name: &str) -> Vec<bool> {
        let services = self.services();
        let slots = services.get(name).map(|s| s.instances.as_slice()).unwrap_or_default();
        slots.iter().map(|i| !i.status.borrow().state.is_down()).collect()
    }

    /// Starts a run in slot `slot` (after its dependencies, like any start).
    pub(crate) fn start_slot(&self, name: &str, slot: usize, token: u64) -> bool {
        if self.is_stopping() {
            return false;
        }
        let services = self.services();
        let Some(s) = Self::armed_with(&services, name, token) else { return false };
        let Some(i) = s.instances.get(slot) else { return false };
        i.send(Control::Start(self.deps_of(&services, &s.spec)));
        true
    }

    /// Stops the run in slot `slot`; its status, to wait for the end.
    pub(crate) fn stop_slot(
        &self,
        name: &str,
        slot: usize,
        token: u64,
    ) -> Option<tokio::sync::watch::Receiver<crate::instance::Snapshot>> {
        let services = self.services();
        let i = Self::armed_with(&services, name, token)?.instances.get(slot)?;
        i.send(Control::Stop);
        Some(i.status.clone())
    }

    /// Sends `signal` to every member of each running instance of `name`.
    pub(crate) fn signal_groups(&self, name: &str, signal: corral::Signal, token: u64) {
        let services = self.services();
        let Some(s) = Self::armed_with(&services, name, token) else { return };
        for i in &s.instances {
            let group = i.group_handle().lock().unwrap_or_else(|p| p.into_inner()).clone();
            if let Some(g) = group {
                if let Err(e) = g.signal(signal) {
                    eprintln!("corral: {name}.{}: {e}", i.index);
                }
            }
        }
    }
}

impl Supervisor {
    /// What an instance of `spec` waits for: each dependency's instances
    /// now, and how to find the ones a reload puts in their place.
    fn deps_of(&self, services: &BTreeMap<String, Service>, spec: &ServiceSpec) -> Vec<Dep> {
        spec.depends_on
            .iter()
            .filter_map(|(name, cond)| {
                let s = services.get(name)?;
                // Weak: a waiting instance task must not keep the supervisor alive.
                let (inner, service) = (Arc::downgrade(&self.inner), name.clone());
                Some(Dep {
                    service: name.clone(),
                    condition: *cond,
                    instances: s.instances.iter().map(|i| i.status.clone()).collect(),
                    now: Arc::new(move || {
                        let inner = inner.upgrade()?;
                        let services = inner.services.lock().unwrap_or_else(|p| p.into_inner());
                        services.get(&service).map(|s| s.instances.iter().map(|i| i.status.clone()).collect())
                    }),
                })
            })
            .collect()
    }
}
