//! One service instance: a task that owns at most one corral group at a
//! time and walks the state machine. Decisions come from `policy`; this
//! file only waits, spawns, stops, and reports.
//!
//! Each run gets its own probe runner and alert watch, which report
//! [`Verdict`]s on a channel of that run only, so a verdict about one run
//! can never end the next. Readiness only flips `ready`; a failed liveness
//! or startup probe, or an alert with `action = "restart"`, ends the run
//! like a crash, so the restart policy, backoff and the start limit apply
//! to it unchanged (a run ended so never counts as a success). Verdicts
//! from outside come through `Control::Ready` and `Control::Unhealthy`
//! (see `Supervisor::report_health`).
//!
//! A reload that changes only probes or alerts sends `Control::Retune`:
//! the run goes on, and its probe runner and alert watch are replaced,
//! together with their channel, so nothing the old ones saw or still had
//! queued can reach the run after the swap.

use crate::alerts::sampler::Sampler;
use crate::alerts::{AlertAction, AlertReport, Firing};
use crate::config::ServiceSpec;
use crate::event::{Event, EventKind, EventLog};
use crate::health::runner::{self, Resume};
use crate::health::{Cause, ExecEnv, ProbeKind, ProbeResult, Verdict};
use crate::logs::{self, Follower, LogHub, Mark};
use crate::metrics::Metrics;
use crate::persist::{GroupRecord, Persist};
use crate::policy::{after_exit, AfterExit, Condition, RunResult};
use crate::state::{InstanceStatus, LastExit, State};
use corral::Group;
use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;

mod hooks;

/// Groups created at once, daemon-wide. The kernel serializes cgroup
/// creation and removal anyway; unbounded, a thousand instances that fail
/// to spawn held a thousand blocking threads while they queued for it.
const SPAWNS_AT_ONCE: usize = 16;
static SPAWNS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(SPAWNS_AT_ONCE);

/// What the daemon shares with every instance task.
pub(crate) struct Ctx {
    pub events: EventLog,
    pub logs: Arc<LogHub>,
    pub persist: Persist,
    /// The monotonic origin of start-limit arithmetic.
    pub origin: Instant,
    /// Counters for `/metrics`.
    pub metrics: Arc<Metrics>,
    /// The shared timer of every alert.
    pub sampler: Arc<Sampler>,
    /// `state_dir/dumps`.
    pub dumps: PathBuf,
    /// What each running instance's lineage recorded (`tree::follow`).
    pub lineage: Arc<crate::tree::follow::Registry>,
    /// The listening sockets of socket activation, held across runs.
    pub sockets: crate::activation::Registry,
    /// Groups taken back from a previous daemon, until their instance starts.
    pub reattached: crate::reattach::TakenBack,
    /// Keeps copies of every instance's pipes for the next daemon.
    pub holder: crate::holder::Client,
}

/// A dependency to wait for before the first start.
pub(crate) struct Dep {
    pub service: String,
    pub condition: Condition,
    pub instances: Vec<watch::Receiver<Snapshot>>,
    /// The service's instances as they are now (`None`: it is gone). An
    /// instance that a reload replaces (a rollout, a changed service)
    /// closes its channel; the wait goes on with the one in its place.
    pub now: Arc<dyn Fn() -> Option<Vec<watch::Receiver<Snapshot>>> + Send + Sync>,
}

/// Requests to an instance task.
pub(crate) enum Control {
    /// Start, after the dependencies are met. Resets the restart budget.
    Start(Vec<Dep>),
    /// Stop gracefully and stay down.
    Stop,
    /// Set readiness (a readiness probe's verdict).
    Ready(bool),
    /// End the current run like a crash, with this reason (a liveness or
    /// startup probe's verdict).
    Unhealthy(String),
    /// Take these probes and alerts (a reload changed nothing else): for
    /// the current run at once, without stopping it, and for the runs to
    /// come. `done` is told once they are in place.
    Retune { spec: Arc<ServiceSpec>, done: oneshot::Sender<()> },
    /// Stop and end the task (daemon shutdown, service removed).
    Shutdown,
}

/// The instance as its task last published it.
#[derive(Debug, Clone)]
pub(crate) struct Snapshot {
    pub state: State,
    pub ready: bool,
    pub pid: Option<u32>,
    pub since: Option<Instant>,
    pub restarts: u32,
    pub last_exit: Option<LastExit>,
    pub reason: String,
    /// The last result of each probe in this run.
    pub probes: Vec<ProbeResult>,
    /// What a notify service said about itself in this run.
    pub notify: Option<crate::sd_notify::NotifyStatus>,
}

/// The daemon's handle on one instance task.
pub(crate) struct Instance {
    pub index: u32,
    pub tx: mpsc::UnboundedSender<Control>,
    pub status: watch::Receiver<Snapshot>,
    group: Arc<Mutex<Option<Arc<Group>>>>,
    pub task: JoinHandle<()>,
    /// Who asked for the start or stop under way (see `asked.rs`).
    by: crate::asked::AskedBy,
}

impl Instance {
    /// Starts the task; the instance is `stopped` until told to start.
    pub fn spawn(ctx: Arc<Ctx>, spec: Arc<ServiceSpec>, index: u32) -> Instance {
        let (tx, rx) = mpsc::unbounded_channel();
        let (status_tx, status) = watch::channel(Snapshot {
            state: State::Stopped,
            ready: false,
            pid: None,
            since: None,
            restarts: 0,
            last_exit: None,
            reason: "created".into(),
            probes: Vec::new(),
            notify: None,
        });
        let group = Arc::new(Mutex::new(None));
        let by = crate::asked::AskedBy::default();
        let seed = (std::process::id() as u64) << 32 ^ u64::from(index) ^ ctx.origin.elapsed().as_nanos() as u64;
        let task = Task {
            ctx,
            spec,
            index,
            rx,
            status: status_tx,
            group: group.clone(),
            attempt: 0,
            starts: VecDeque::new(),
            rng: seed | 1,
            reattached: false,
            by: by.clone(),
            tearing: None,
        };
        let task = tokio::spawn(task.run());
        Instance { index, tx, status, group, task, by }
    }

    /// The cell holding the running group, for work that must not hold
    /// the supervisor's lock (a snapshot).
    pub fn group_handle(&self) -> Arc<Mutex<Option<Arc<Group>>>> {
        self.group.clone()
    }

    /// A diagnostic snapshot of the group in `cell`, asked for by a client;
    /// the folder, or why there is none. Tells a `dump` event when written.
    pub async fn dump_group(
        ctx: Arc<Ctx>,
        cell: Arc<Mutex<Option<Arc<Group>>>>,
        status: watch::Receiver<Snapshot>,
        service: &str,
        index: u32,
        by: Option<crate::api::Actor>,
    ) -> Result<String, String> {
        let group = cell.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let state = status.borrow().state;
        let Some(group) = group else { return Err(format!("not running ({state})")) };
        let service = service.to_string();
        tokio::task::spawn_blocking(move || {
            let (reason, dir) = snapshot(&ctx, &service, index, &group, "requested by a client");
            let note = Note { kind: EventKind::Dump, reason: reason.clone(), ready: None, probe: None, alert: None };
            let mut event = note.into_event(&service, index, state, Some(group.pid()));
            event.actor = by.map(Box::new);
            ctx.events.emit(event);
            dir.ok_or(reason)
        })
        .await
        .unwrap_or_else(|_| Err("the snapshot task failed".into()))
    }

    pub fn send(&self, c: Control) {
        if matches!(c, Control::Start(_) | Control::Stop) {
            self.by.set(None);
        }
        let _ = self.tx.send(c);
    }

    /// Sends a start or a stop asked for by `by`: the transitions it
    /// causes name it.
    pub fn send_by(&self, c: Control, by: Option<crate::api::Actor>) {
        self.by.set(by);
        let _ = self.tx.send(c);
    }

    /// Waits until the instance is down (stopped, exited or failed).
    pub async fn wait_down(&self) {
        let mut rx = self.status.clone();
        let _ = rx.wait_for(|s| s.state.is_down()).await;
    }

    /// The status with the group's usage now.
    pub fn status(&self, service: &str) -> InstanceStatus {
        let s = self.status.borrow().clone();
        let group = self.group.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let usage = group.map(|g| g.usage());
        InstanceStatus {
            service: service.to_string(),
            instance: self.index,
            state: s.state,
            ready: s.ready,
            pid: s.pid,
            uptime_ms: s.since.filter(|_| s.state == State::Running).map(|t| t.elapsed().as_millis() as u64),
            restarts: s.restarts,
            last_exit: s.last_exit,
            reason: s.reason,
            cpu_ms: usage.as_ref().map(|u| u.cpu_total().as_millis() as u64),
            memory_bytes: usage.as_ref().and_then(|u| u.memory_now),
            processes: usage.as_ref().map(|u| u.processes_active),
            probes: s.probes,
            next_run: None,
            notify: s.notify,
        }
    }
}

/// Whether the task goes on after a run of `up`.
#[derive(PartialEq)]
enum Flow {
    Down,
    Shutdown,
}

/// How a run ended, as the loop sees it.
enum RunEnd {
    /// By itself, or ended for its health, or never started: the restart
    /// policy decides on `result`. `exit` is what events and `status` show.
    Ended {
        result: RunResult,
        exit: LastExit,
        ran_for: Duration,
    },
    /// Stopped on request: no policy applies.
    Stopped,
    Shutdown,
}

struct Task {
    ctx: Arc<Ctx>,
    spec: Arc<ServiceSpec>,
    index: u32,
    rx: mpsc::UnboundedReceiver<Control>,
    status: watch::Sender<Snapshot>,
    group: Arc<Mutex<Option<Arc<Group>>>>,
    /// Consecutive quick failures: the backoff exponent.
    attempt: u32,
    /// Start times (since `ctx.origin`) inside the start-limit window.
    starts: VecDeque<Duration>,
    rng: u64,
    /// The current run was taken back from a previous daemon, not spawned.
    reattached: bool,
    by: crate::asked::AskedBy,
    /// The last run's teardown, when its end was told before it (see
    /// `watch_run`): awaited before the next one, and before the task ends.
    tearing: Option<JoinHandle<()>>,
}

impl Task {
    async fn run(mut self) {
        while let Some(c) = self.rx.recv().await {
            let flow = match c {
                Control::Start(deps) => {
                    self.reset_budget();
                    self.up(deps).await
                }
                Control::Stop => {
                    if self.state() != State::Stopped {
                        self.transition(State::Stopped, "stop requested", None, None);
                    }
                    Flow::Down
                }
                Control::Ready(_) | Control::Unhealthy(_) => Flow::Down,
                Control::Retune { spec, done } => {
                    self.retune_later(spec, done);
                    Flow::Down
                }
                Control::Shutdown => Flow::Shutdown,
            };
            if flow == Flow::Shutdown {
                break;
            }
        }
        if !self.state().is_down() {
            self.transition(State::Stopped, "daemon stopping", None, None);
        }
        // No container is left behind by a daemon that stops.
        self.torn_down().await;
    }

    /// New probes and alerts while no run is going: the next run has them.
    fn retune_later(&mut self, spec: Arc<ServiceSpec>, done: oneshot::Sender<()>) {
        self.spec = spec;
        let _ = done.send(());
    }

    fn reset_budget(&mut self) {
        self.attempt = 0;
        self.starts.clear();
        self.status.send_modify(|s| s.restarts = 0);
    }

    fn state(&self) -> State {
        self.status.borrow().state
    }

    /// Waits until the last run's teardown has finished, if it had not.
    async fn torn_down(&mut self) {
        if let Some(t) = self.tearing.take() {
            let _ = t.await;
        }
    }

    /// Runs until the instance is down again; no run of it is recorded
    /// as live then.
    async fn up(&mut self, deps: Vec<Dep>) -> Flow {
        let flow = self.up_and_running(deps).await;
        self.ctx.persist.remove(&self.spec.name, self.index);
        flow
    }

    async fn up_and_running(&mut self, deps: Vec<Dep>) -> Flow {
        if !deps.is_empty() {
            let names: Vec<String> =
                deps.iter().map(|d| format!("{} ({:?})", d.service, d.condition).to_lowercase()).collect();
            self.transition(State::Starting, format!("waiting for {}", names.join(", ")), None, None);
            let wait = wait_deps(deps);
            tokio::pin!(wait);
            loop {
                tokio::select! {
                    r = &mut wait => match r {
                        Ok(()) => break,
                        Err(why) => return self.enter_failed(why, None),
                    },
                    c = self.rx.recv() => match c {
                        Some(Control::Stop) => {
                            self.transition(State::Stopped, "stop requested", None, None);
                            return Flow::Down;
                        }
                        Some(Control::Shutdown) | None => return Flow::Shutdown,
                        Some(Control::Retune { spec, done }) => self.retune_later(spec, done),
                        Some(_) => {}
                    },
                }
            }
        }
        let mut why_start = "start requested".to_string();
        // The result of the previous run, once the backoff before this start is over.
        let mut restarting: Option<RunResult> = None;
        loop {
            if let Some(flow) = self.enter_starting(&why_start, restarting.take()) {
                return flow;
            }
            let (result, exit, ran_for) = match self.enter_running().await {
                RunEnd::Stopped => return Flow::Down,
                RunEnd::Shutdown => return Flow::Shutdown,
                RunEnd::Ended { result, exit, ran_for } => (result, exit, ran_for),
            };
            match after_exit(self.spec.restart, result) {
                AfterExit::Exited => return self.enter_exited(exit),
                AfterExit::Failed => return self.enter_failed(exit.reason.clone(), Some(exit)),
                AfterExit::Restart => match self.enter_backoff(exit, ran_for).await {
                    Some(flow) => return flow,
                    None => {
                        restarting = Some(result);
                        why_start = "restart after backoff".into();
                    }
                },
            }
        }
    }

    /// `starting`, unless the start limit forbids one more start (then
    /// `failed`, and the flow to return). A restart is counted here, once
    /// the start limit allows it: a restart that ends in `failed` did not
    /// happen. The limit is checked before a start, so it is no run's
    /// result.
    fn enter_starting(&mut self, why: &str, restarting: Option<RunResult>) -> Option<Flow> {
        let now = self.ctx.origin.elapsed();
        if !self.spec.start_limit.allows(&mut self.starts, now) {
            let l = self.spec.start_limit;
            let why =
                format!("start limit hit: {} starts within {}", l.burst, corral::units::format_duration(l.interval));
            return Some(self.enter_failed(why, None));
        }
        self.starts.push_back(now);
        if let Some(previous) = restarting {
            self.status.send_modify(|s| s.restarts += 1);
            self.ctx.metrics.restart(&self.spec.name, self.index, previous.restart_label());
        }
        if self.state() != State::Starting {
            self.transition(State::Starting, why, None, None);
        }
        None
    }

    /// Spawns the group and watches it (`running`, then `stopping` when it
    /// is ended) until the run is over; a spawn that fails is a run too.
    async fn enter_running(&mut self) -> RunEnd {
        // The hooks' and the spawn's futures are boxed (here and in
        // `watch_run`): some 3.5 KiB each, inline they sized every
        // instance's task for the moments it starts or stops (4.6 KiB a
        // task, 1.4 KiB boxed), while a running instance only watches.
        // Before the spawn turn: a slow pre_start must not hold one.
        match Box::pin(self.pre_start()).await {
            Err(end) => return end,
            Ok(Some(why)) => {
                let exit = LastExit { code: None, signal: None, reason: why };
                return RunEnd::Ended { result: RunResult::SpawnFailed, exit, ran_for: Duration::ZERO };
            }
            Ok(None) => {}
        }
        let permit = match self.spawn_turn().await {
            Ok(p) => p,
            Err(end) => return end,
        };
        let spawned = Box::pin(self.spawn()).await;
        // The turn is for the spawn only: held for the whole run, it let
        // no more than SPAWNS_AT_ONCE instances run at all.
        drop(permit);
        match spawned {
            Ok((group, capture, follower, notify)) => self.watch_run(group, capture, follower, notify).await,
            Err(e) => RunEnd::Ended {
                result: RunResult::SpawnFailed,
                exit: LastExit { code: None, signal: None, reason: format!("spawn failed: {e}") },
                ran_for: Duration::ZERO,
            },
        }
    }

    /// Waits for a turn to spawn (one of [`SPAWNS_AT_ONCE`]) while still
    /// obeying a stop: with a thousand instances queued, `corral down` must
    /// not wait for each one to be spawned first.
    async fn spawn_turn(&mut self) -> Result<tokio::sync::SemaphorePermit<'static>, RunEnd> {
        let turn = SPAWNS.acquire();
        tokio::pin!(turn);
        loop {
            tokio::select! {
                // The semaphore is never closed.
                p = &mut turn => return p.map_err(|_| RunEnd::Shutdown),
                c = self.rx.recv() => match c {
                    Some(Control::Stop) => {
                        self.transition(State::Stopped, "stop requested", None, None);
                        return Err(RunEnd::Stopped);
                    }
                    Some(Control::Shutdown) | None => return Err(RunEnd::Shutdown),
                    Some(Control::Retune { spec, done }) => self.retune_later(spec, done),
                    Some(_) => {}
                },
            }
        }
    }

    /// `exited`: a success that is not restarted.
    fn enter_exited(&mut self, exit: LastExit) -> Flow {
        self.transition(State::Exited, exit.reason.clone(), None, Some(exit));
        Flow::Down
    }

    /// `failed`: not started again until someone asks.
    fn enter_failed(&mut self, why: String, exit: Option<LastExit>) -> Flow {
        self.transition(State::Failed, why, None, exit);
        Flow::Down
    }

    /// `backoff`, then the wait before the next start; `Some` when a
    /// request ended the wait otherwise.
    async fn enter_backoff(&mut self, exit: LastExit, ran_for: Duration) -> Option<Flow> {
        if ran_for >= self.spec.backoff.reset_after {
            self.attempt = 0;
        }
        let r = self.random();
        let delay = self.spec.backoff.delay(self.attempt, r);
        self.attempt = self.attempt.saturating_add(1);
        let why = format!("{}; restarting in {}", exit.reason, corral::units::format_duration(delay));
        if !delay.is_zero() {
            // No run is live while it waits (see `watch_run`).
            self.ctx.persist.remove(&self.spec.name, self.index);
        }
        self.transition(State::Backoff, why, None, Some(exit));
        self.backoff(delay).await
    }

    /// Sleeps out the backoff; `Some` when a request ended it otherwise.
    async fn backoff(&mut self, delay: Duration) -> Option<Flow> {
        // No delay is no wait: tokio's timer would round even a zero sleep
        // up to its next millisecond tick (a restart at once waited ~1 ms).
        let sleep = async move {
            if !delay.is_zero() {
                tokio::time::sleep(delay).await
            }
        };
        tokio::pin!(sleep);
        loop {
            tokio::select! {
                // A request already queued wins over an elapsed backoff.
                biased;
                c = self.rx.recv() => match c {
                    Some(Control::Stop) => {
                        self.transition(State::Stopped, "stop requested", None, None);
                        return Some(Flow::Down);
                    }
                    Some(Control::Start(_)) => {
                        self.reset_budget();
                        return None;
                    }
                    Some(Control::Shutdown) | None => return Some(Flow::Shutdown),
                    Some(Control::Retune { spec, done }) => self.retune_later(spec, done),
                    Some(_) => {}
                },
                _ = &mut sleep => return None,
            }
        }
    }

    async fn spawn(&mut self) -> Result<(Arc<Group>, JoinHandle<()>, Follower, Option<NotifyRun>), String> {
        #[allow(unused_mut)]
        let mut cmd = crate::spawn::command(&self.spec, self.index)?;
        // The protocol variables are cleared first, then set for what the
        // service declares.
        #[cfg(unix)]
        let notify = crate::sd_notify::prepare(&self.spec.notify, &mut cmd)?;
        #[cfg(unix)]
        self.ctx.sockets.pass(&self.spec, &mut cmd)?;
        let builder = crate::spawn::builder(&self.spec);
        // Log probes follow the log from before the spawn: no line slips
        // past. The follower also marks where this run's lines begin, for a
        // log probe that a reload brings in later.
        let follower = self.follower(None);
        // Awaited, not blocked on: no thread of the runtime waits for the
        // start (and a bounded number at a time: see `spawn_turn`).
        self.reattached = false;
        let (mut group, pipes) = match self.ctx.reattached.take(&self.spec.name, self.index) {
            Some(back) => {
                self.reattached = true;
                (back.group, back.pipes)
            }
            None => (builder.spawn_async(cmd).await.map_err(|e| e.to_string())?, None),
        };
        let (stdout, stderr) = match pipes {
            Some((o, e)) => (Some(o), Some(e)),
            None => (group.take_stdout(), group.take_stderr()),
        };
        if let (Some(o), Some(e)) = (&stdout, &stderr) {
            self.ctx.holder.put(group.id(), o, e);
        }
        let src = logs::capture::Source { stdout, stderr };
        let label =
            if self.spec.instances > 1 { format!("{}.{}", self.spec.name, self.index) } else { self.spec.name.clone() };
        let stall = Arc::new(logs::StallReport {
            ctx: self.ctx.clone(),
            service: self.spec.name.clone(),
            instance: self.index,
            label: label.clone(),
            status: self.status.subscribe(),
        });
        let origin = logs::ship::Origin { service: self.spec.name.clone(), instance: self.index };
        let delivery = logs::capture::Delivery {
            format: self.spec.log_output.format,
            pid: Some(group.pid()),
            ship: logs::ship::Shipper::start(&self.spec.log_output, origin, stall.clone()),
        };
        let capture = tokio::spawn(logs::capture(
            src,
            self.ctx.logs.clone(),
            self.spec.name.clone(),
            self.index,
            label,
            self.spec.logs,
            stall,
            delivery,
        ));
        let group = Arc::new(group);
        self.ctx.persist.set(GroupRecord {
            service: self.spec.name.clone(),
            instance: self.index,
            group_id: group.id().to_string(),
            pid: group.pid(),
            backend: group.backend().as_str().to_string(),
            location: group.location(),
            start: corral::process_start_time(group.pid()),
        });
        *self.group.lock().unwrap_or_else(|p| p.into_inner()) = Some(group.clone());
        crate::tree::follow::start(&self.ctx.lineage, &self.ctx.logs, &self.spec, self.index, &group);
        #[cfg(unix)]
        let notify = notify.map(|n| n.start(group.clone())).transpose()?;
        #[cfg(not(unix))]
        let notify = None;
        Ok((group, capture, follower, notify))
    }

    /// A follower of this instance's log: from its end, or from `mark`.
    fn follower(&self, mark: Option<Mark>) -> Follower {
        let (path, growth) =
            (self.ctx.logs.path(&self.spec.name, self.index), self.ctx.logs.watch(&self.spec.name, self.index));
        match mark {
            Some(m) => Follower::from_mark(path, growth, m),
            None => Follower::new(path, growth),
        }
    }

    /// Starts the probes and the alert watch of the current run, on a new
    /// channel of their own. The caller keeps the sender: it holds the
    /// channel open when there is neither a probe nor an alert.
    fn watch_health(&self, group: &Arc<Group>, follower: Follower, from: Resume) -> Watchers {
        let (tx, rx) = mpsc::unbounded_channel();
        let exec = ExecEnv { spec: self.spec.clone(), index: self.index };
        let live = Live::default();
        let quiet: runner::Quiet = {
            let (ctx, status, live) = (self.ctx.clone(), self.status.clone(), live.0.clone());
            let (name, index) = (self.spec.name.clone(), self.index);
            Arc::new(move |result, took| {
                let at = ProbeRecord { ctx: &ctx, status: &status, name: &name, index };
                at.record(result, took, None, Some(&live));
            })
        };
        let probes = runner::start(&self.spec.health, exec, Some(follower), tx.clone(), quiet, from);
        let label = format!("{}.{}", self.spec.name, self.index);
        let alerts = self.ctx.sampler.watch(label, &self.spec.alerts, group.clone(), tx.clone());
        Watchers { _probes: probes, _alerts: alerts, _tx: tx, rx, _live: live }
    }

    /// A reload's new probes, alerts and live limits for the running run:
    /// the old runner and watch stop, with their channel, before the new
    /// ones start. Returns why the run must end instead, when the group
    /// refuses the new limits (a controller it was created without).
    fn retune_run(
        &mut self,
        spec: Arc<ServiceSpec>,
        w: &mut Watchers,
        group: &Arc<Group>,
        run: &RunHealth,
    ) -> Option<String> {
        let old_limits = std::mem::replace(&mut self.spec, spec).limits.clone();
        if self.spec.limits != old_limits {
            if let Err(e) = group.set_limits(self.spec.limits.clone()) {
                return Some(format!("reload: the running group cannot take the new limits ({e}); restarting"));
            }
            let reason = "reload: limits changed live (same run)".to_string();
            self.note(Note { kind: EventKind::Limit, reason, ready: None, probe: None, alert: None });
        }
        *w = Watchers::none();
        let was = self.status.borrow().ready;
        // Without a startup or readiness probe a running instance is ready;
        // with one, readiness stays as it is until the new probe crosses a
        // threshold. The old probes' results no longer apply.
        // A notify service stays as it said.
        let ready = was || (!self.spec.health.gates_ready() && !self.spec.notify.gates_ready());
        self.status.send_modify(|s| {
            s.ready = ready;
            s.probes.clear();
        });
        *w = self.watch_health(
            group,
            self.follower(Some(run.log)),
            Resume { startup_passed: run.startup_passed, ready },
        );
        let (probes, alerts) = (self.spec.health.probes().count(), self.spec.alerts.len());
        let reason = format!("reload: {probes} probe(s) and {alerts} alert(s) now, same run (ready: {ready})");
        let flipped = (ready != was).then_some(ready);
        self.note(Note { kind: EventKind::Retuned, reason, ready: flipped, probe: None, alert: None });
        None
    }

    /// Watches one run until it ends, for whatever reason.
    async fn watch_run(
        &mut self,
        group: Arc<Group>,
        capture: JoinHandle<()>,
        follower: Follower,
        mut notify: Option<NotifyRun>,
    ) -> RunEnd {
        let started = Instant::now();
        self.status.send_modify(|s| {
            s.since = Some(started);
            s.probes.clear();
            s.notify = notify.as_ref().map(|_| Default::default());
        });
        let how = if self.reattached { "re-attached after a daemon restart" } else { "spawned" };
        self.transition(State::Running, how, Some(group.pid()), None);
        let post_start = self.post_start(&group);
        let mut run = RunHealth { log: follower.mark(), startup_passed: self.spec.health.startup.is_none() };
        // Verdicts about this run only, from the watchers in force.
        let mut w = self.watch_health(&group, follower, Resume::FRESH);
        let mut unhealthy: Option<(Cause, String)> = None;
        let mut notices = crate::live_limits::Notices::default();
        let mut notice_tick = tokio::time::interval(crate::live_limits::NOTICE_PERIOD);
        let request = loop {
            tokio::select! {
                _ = group.wait_ended_async() => break None,
                _ = notice_tick.tick(), if !self.spec.limits.notify.is_empty() => self.tell_notices(&group, &mut notices),
                v = w.rx.recv() => match v.map(|v| *v) {
                    Some(Verdict::Probe { result, took, note, ready }) => {
                        // Startup passes once: a pass ends its probe.
                        if result.probe == ProbeKind::Startup && result.ok {
                            run.startup_passed = true;
                        }
                        self.on_probe(result, took, note, ready)
                    }
                    Some(Verdict::Restart { cause, reason }) => {
                        unhealthy = Some((cause, reason));
                        break None;
                    }
                    Some(Verdict::Alert(f)) => {
                        if let Some(why) = self.on_alert(&group, f) {
                            unhealthy = Some((Cause::Alert, why));
                            break None;
                        }
                    }
                    None => {}
                },
                Some(n) = next_notify(&mut notify) => {
                    if let Some(end) = self.on_notify(n) {
                        unhealthy = Some(end);
                        break None;
                    }
                }
                c = self.rx.recv() => match c {
                    Some(Control::Stop) => break Some((State::Stopped, "stop requested", RunEnd::Stopped)),
                    Some(Control::Shutdown) | None => break Some((State::Stopped, "daemon stopping", RunEnd::Shutdown)),
                    Some(Control::Ready(r)) => self.status.send_modify(|s| s.ready = r),
                    Some(Control::Unhealthy(why)) => {
                        unhealthy = Some((Cause::Reported, why));
                        break None;
                    }
                    Some(Control::Retune { spec, done }) => {
                        let refused = self.retune_run(spec, &mut w, &group, &run);
                        let _ = done.send(());
                        if let Some(why) = refused {
                            unhealthy = Some((Cause::Reported, why));
                            break None;
                        }
                    }
                    Some(Control::Start(_)) => {}
                },
            }
        };
        // No probe may judge a group that is being stopped.
        drop(w);
        drop(post_start);
        let pid = Some(group.pid());
        if let Some((_, why)) = &unhealthy {
            self.transition(State::Stopping, why.clone(), pid, None);
            Box::pin(self.pre_stop(&group)).await;
            group.stop();
        }
        if let Some((_, why, _)) = &request {
            self.transition(State::Stopping, *why, pid, None);
            Box::pin(self.pre_stop(&group)).await;
            group.stop();
        }
        // An end nobody asked for is told once no member is left, so that
        // the restart need not wait for the teardown (the cgroup's removal,
        // the final usage), as systemd restarts once the cgroup is empty.
        // A stop waits for all of it.
        let ended = match &request {
            None => group.wait_ended_async().await,
            Some(_) => corral::Ended::from(&group.wait_async().await),
        };
        // The notification socket outlives the group: a service that says
        // STOPPING=1 while it stops is heard (what it says is ignored now),
        // not refused. There is no watcher off Unix.
        #[cfg(unix)]
        drop(notify);
        // Every writer of the pipes is gone once the group is torn down, so
        // the capture ends by itself, unless a full disk holds it: then it
        // gets this long to write what it holds, and is ended (it reports
        // what it never wrote), so that no two captures share the file.
        let mut capture = capture;
        if tokio::time::timeout(Duration::from_secs(5), &mut capture).await.is_err() {
            capture.abort();
            let _ = capture.await;
        }
        *self.group.lock().unwrap_or_else(|p| p.into_inner()) = None;
        // A run that ended by itself is usually restarted at once: the next
        // run's record replaces this one (same service and instance), so
        // the state file is written once on the restart's path, not twice
        // (a writer thread and two fsyncs beside the spawn). `up` removes
        // it when no run follows at once.
        if request.is_some() {
            self.ctx.persist.remove(&self.spec.name, self.index);
        }
        Box::pin(self.post_stop(group.pid(), ended.status)).await;
        let exit = last_exit(&ended, unhealthy.as_ref().map(|u| u.1.as_str()));
        self.torn_down().await;
        self.tearing = Some(report_teardown(self.ctx.clone(), self.spec.name.clone(), group.clone()));
        match request {
            Some((to, why, end)) => {
                let why = if to == State::Starting { why.to_string() } else { format!("{why}; {}", exit.reason) };
                self.transition(to, why, None, Some(exit));
                end
            }
            None => {
                let result = match unhealthy {
                    Some((cause, _)) => RunResult::Unhealthy(cause),
                    None => RunResult::of(ended.reason, ended.status, &self.spec.success_exit_codes),
                };
                RunEnd::Ended { result, exit, ran_for: started.elapsed() }
            }
        }
    }

    /// Acts on what a notify service said; `Some` ends the run as a failed
    /// probe of that kind would.
    #[cfg(unix)]
    fn on_notify(&mut self, u: crate::sd_notify::Update) -> Option<(Cause, String)> {
        use crate::sd_notify::Update;
        match u {
            Update::Failed { cause, reason } => return Some((cause, reason)),
            Update::Ready(r, why) => {
                if self.status.borrow().ready != r {
                    // The event first, as for a probe: a dependant acts after it.
                    self.note(Note { kind: EventKind::Probe, reason: why, ready: Some(r), probe: None, alert: None });
                    self.status.send_modify(|s| s.ready = r);
                }
            }
            Update::Status(text) => {
                self.status.send_modify(|s| s.notify.get_or_insert_with(Default::default).status = Some(text))
            }
            Update::MainPid(p) => {
                self.status.send_modify(|s| s.notify.get_or_insert_with(Default::default).main_pid = Some(p))
            }
            Update::Dropped(n) => {
                self.status.send_modify(|s| s.notify.get_or_insert_with(Default::default).dropped = n)
            }
        }
        None
    }

    #[cfg(not(unix))]
    fn on_notify(&mut self, u: NotifyRun) -> Option<(Cause, String)> {
        match u {}
    }

    /// Keeps the probe's last result for `status`, counts it, flips
    /// readiness, and tells the notable ones.
    fn on_probe(&mut self, result: ProbeResult, took: Duration, note: Option<String>, ready: Option<bool>) {
        // The event first: whoever acts on the new readiness (a dependant,
        // a rollout) acts after it in the event log.
        if let Some(reason) = note {
            self.note(Note { kind: EventKind::Probe, reason, ready, probe: Some(result.clone()), alert: None });
        }
        let at = ProbeRecord { ctx: &self.ctx, status: &self.status, name: &self.spec.name, index: self.index };
        at.record(result, took, ready, None);
    }

    /// Tells an alert; returns the reason to end the run for `restart`.
    fn on_alert(&mut self, group: &Arc<Group>, f: Firing) -> Option<String> {
        let why = f.describe();
        if f.firing {
            let metric = f.alert.threshold.metric();
            self.ctx.metrics.alert(&self.spec.name, self.index, metric, f.alert.action.as_str());
            eprintln!("corral: {}.{}: {why} (action {})", self.spec.name, self.index, f.alert.action.as_str());
        }
        if !(f.firing && f.alert.action == AlertAction::Dump) {
            let alert = Some(f.report(None));
            self.note(Note { kind: EventKind::Alert, reason: why.clone(), ready: None, probe: None, alert });
            return (f.firing && f.alert.action == AlertAction::Restart).then_some(why);
        }
        // The snapshot reads /proc for every member: off the runtime. Its
        // event follows once it is written, with its folder.
        let (ctx, group, service, index, state) =
            (self.ctx.clone(), group.clone(), self.spec.name.clone(), self.index, self.state());
        tokio::task::spawn_blocking(move || {
            let (reason, dump) = snapshot(&ctx, &service, index, &group, &why);
            let note = Note { kind: EventKind::Alert, reason, ready: None, probe: None, alert: Some(f.report(dump)) };
            ctx.events.emit(note.into_event(&service, index, state, Some(group.pid())));
        });
        None
    }

    /// Hits of notify-only limits since the last look: an event, a line on
    /// stderr and the alert counter each, and the run goes on.
    fn tell_notices(&self, group: &Group, notices: &mut crate::live_limits::Notices) {
        for (kind, n) in notices.fresh(group) {
            let reason = crate::live_limits::notice_reason(kind, n, &group.limits());
            self.ctx.metrics.alert(&self.spec.name, self.index, kind.as_str(), "notify");
            eprintln!("corral: {}.{}: {reason}", self.spec.name, self.index);
            self.note(Note { kind: EventKind::Limit, reason, ready: None, probe: None, alert: None });
        }
    }

    /// An event that is not a transition, in the state the instance is in.
    fn note(&self, note: Note) {
        let (state, pid) = {
            let s = self.status.borrow();
            (s.state, s.pid)
        };
        self.ctx.events.emit(note.into_event(&self.spec.name, self.index, state, pid));
    }

    fn transition(&mut self, to: State, reason: impl Into<String>, pid: Option<u32>, exit: Option<LastExit>) {
        let reason = reason.into();
        let from = self.state();
        self.status.send_modify(|s| {
            s.state = to;
            s.reason = reason.clone();
            // With a startup or readiness probe, a probe says when; a
            // notify service says so itself.
            s.ready = to == State::Running && !self.spec.health.gates_ready() && !self.spec.notify.gates_ready();
            s.pid = if to == State::Running || to == State::Stopping { pid.or(s.pid) } else { None };
            if exit.is_some() {
                s.last_exit = exit.clone();
            }
        });
        let ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_millis();
        self.ctx.events.emit(Event {
            ts: crate::time::format_millis(ms as i64),
            unix_ms: ms as u64,
            service: self.spec.name.clone(),
            instance: self.index,
            from,
            to,
            reason,
            pid,
            exit,
            kind: EventKind::Transition,
            ready: None,
            probe: None,
            alert: None,
            hook: None,
            actor: self.by.take_for(to).map(Box::new),
        });
    }

    /// xorshift64*: jitter needs spread, not quality.
    fn random(&mut self) -> f64 {
        self.rng ^= self.rng >> 12;
        self.rng ^= self.rng << 25;
        self.rng ^= self.rng >> 27;
        let x = self.rng.wrapping_mul(0x2545_F491_4F6C_DD1D);
        (x >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// The notification watcher of a run (`sd_notify`).
#[cfg(unix)]
type NotifyRun = crate::sd_notify::Listener;
/// No notification watcher off Unix (the config refuses what needs one).
#[cfg(not(unix))]
enum NotifyRun {}

/// The next update of the run's notification watcher; `None` (the arm is
/// off) when the run has none or it has ended.
#[cfg(unix)]
async fn next_notify(n: &mut Option<NotifyRun>) -> Option<crate::sd_notify::Update> {
    match n {
        Some(l) => l.rx.recv().await,
        None => None,
    }
}

#[cfg(not(unix))]
async fn next_notify(_: &mut Option<NotifyRun>) -> Option<NotifyRun> {
    None
}

/// The probe runner and alert watch of a run, and the channel they report
/// on. Dropping it stops both and forgets whatever they still had queued.
struct Watchers {
    _probes: Option<runner::Runner>,
    _alerts: Option<crate::alerts::sampler::Watch>,
    /// Holds the channel open when there is neither a probe nor an alert.
    _tx: mpsc::UnboundedSender<Box<Verdict>>,
    rx: mpsc::UnboundedReceiver<Box<Verdict>>,
    /// Says the probes' quiet results still count (see [`ProbeRecord`]).
    _live: Live,
}

/// True until its watchers are dropped: a result a stopped probe records
/// on its own task after that (it may be mid-check when aborted) must not
/// undo the clearing of the results that follows.
struct Live(Arc<AtomicBool>);

impl Default for Live {
    fn default() -> Live {
        Live(Arc::new(AtomicBool::new(true)))
    }
}

impl Drop for Live {
    fn drop(&mut self) {
        self.0.store(false, Ordering::SeqCst);
    }
}

/// Where a check's result is recorded: the metrics, and the last result
/// `corral status` shows.
struct ProbeRecord<'a> {
    ctx: &'a Ctx,
    status: &'a watch::Sender<Snapshot>,
    name: &'a str,
    index: u32,
}

impl ProbeRecord<'_> {
    /// Records `result`, and the readiness it flipped to. A quiet result
    /// (`live` given, from the probe's own task) counts only while its
    /// watchers are live: `live` is read under the status's lock, which
    /// the clearing of the results takes too, so one cannot overtake the
    /// other.
    fn record(&self, result: ProbeResult, took: Duration, ready: Option<bool>, live: Option<&AtomicBool>) {
        self.ctx.metrics.probe(self.name, self.index, result.probe, took, result.ok);
        self.status.send_if_modified(|s| {
            if live.is_some_and(|l| !l.load(Ordering::SeqCst)) {
                return false;
            }
            match s.probes.iter_mut().find(|p| p.probe == result.probe) {
                Some(p) => *p = result,
                None => {
                    s.probes.push(result);
                    s.probes.sort_by_key(|p| p.probe);
                }
            }
            if let Some(r) = ready {
                s.ready = r;
            }
            true
        });
    }
}

impl Watchers {
    /// Nothing watching, nothing to receive.
    fn none() -> Watchers {
        let (tx, rx) = mpsc::unbounded_channel();
        Watchers { _probes: None, _alerts: None, _tx: tx, rx, _live: Live::default() }
    }
}

/// What the probes of a run have established, for probes a reload puts in
/// place during it.
struct RunHealth {
    /// Where the run's log lines begin.
    log: Mark,
    /// The startup probe passed (or there was none when the run started).
    startup_passed: bool,
}

/// A probe result or an alert worth an event.
struct Note {
    kind: EventKind,
    reason: String,
    ready: Option<bool>,
    probe: Option<ProbeResult>,
    alert: Option<AlertReport>,
}

impl Note {
    /// The event, with `from` and `to` both the state it happened in.
    fn into_event(self, service: &str, instance: u32, state: State, pid: Option<u32>) -> Event {
        let ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_millis();
        Event {
            ts: crate::time::format_millis(ms as i64),
            unix_ms: ms as u64,
            service: service.to_string(),
            instance,
            from: state,
            to: state,
            reason: self.reason,
            pid,
            exit: None,
            kind: self.kind,
            ready: self.ready,
            probe: self.probe.map(Box::new),
            alert: self.alert.map(Box::new),
            hook: None,
            actor: None,
        }
    }
}

/// Writes a snapshot; returns the event's reason and the folder written.
fn snapshot(ctx: &Ctx, service: &str, index: u32, group: &Group, why: &str) -> (String, Option<String>) {
    match crate::alerts::dump::write(&ctx.dumps, service, index, group, why) {
        Ok(dir) => (format!("{why}; snapshot in {}", dir.display()), Some(dir.display().to_string())),
        Err(e) => (format!("{why}; the snapshot failed: {e}"), None),
    }
}

/// Waits for the teardown of a group whose end was told before it, says
/// what it left behind, and lets the log holder drop its pipes. The drop
/// waits until here, off the restart's path: it wakes the holder process,
/// which on a 2-core host took the CPU from the next spawn (0.1 ms of a
/// 2.5 ms restart), and the pipes it holds are at end of file already.
fn report_teardown(ctx: Arc<Ctx>, name: String, group: Arc<Group>) -> JoinHandle<()> {
    tokio::spawn(async move {
        let outcome = group.wait_async().await;
        ctx.holder.drop_group(group.id());
        if outcome.leftover > 0 {
            eprintln!("corral: {name} left {} process(es) behind after teardown", outcome.leftover);
        }
    })
}

fn last_exit(o: &corral::Ended, unhealthy: Option<&str>) -> LastExit {
    let mut reason = match (o.status.code, o.status.signal) {
        (Some(c), _) => format!("exit code {c}"),
        (None, Some(s)) => format!("killed by {}", corral::Signal::from_raw(s)),
        _ => "ended".to_string(),
    };
    if o.reason != corral::Reason::Exited && o.reason != corral::Reason::Signal {
        reason = format!("{reason} ({})", o.reason);
    }
    if let Some(why) = unhealthy {
        reason = format!("{why}; {reason}");
    }
    LastExit { code: o.status.code, signal: o.status.signal, reason }
}

/// Waits until every dependency meets its condition, or one never can.
async fn wait_deps(deps: Vec<Dep>) -> Result<(), String> {
    for dep in deps {
        let cond = dep.condition;
        let went_away = || format!("dependency `{}` went away", dep.service);
        for (i, mut rx) in dep.instances.iter().cloned().enumerate() {
            let got = loop {
                let seen =
                    rx.wait_for(|s| cond.met_by(s.state, s.ready) || cond.hopeless(s.state)).await.map(|s| s.state);
                match seen {
                    Ok(state) => break Some(state),
                    // Replaced by a reload: wait for its successor; an
                    // index a scale-down removed is no longer waited for.
                    Err(_) => match (dep.now)().ok_or_else(went_away)?.into_iter().nth(i) {
                        Some(next) if !next.same_channel(&rx) => rx = next,
                        Some(_) => return Err(went_away()),
                        None => break None,
                    },
                }
            };
            if let Some(got) = got.filter(|s| cond.hopeless(*s)) {
                return Err(format!("dependency `{}` is {got}", dep.service));
            }
        }
    }
    Ok(())
}
