//! The public handle: build a group, spawn its leader, watch it, stop it.

use crate::monitor::{self, Request, Shared};
use crate::sys::{self, SysGroup};
use crate::{
    BackendKind, Enforcement, Error, ErrorKind, Events, IntoLeader, Limits, Outcome, ProcessTree, Result, SpawnPath,
    StopPolicy, Usage,
};
use std::process::{ChildStderr, ChildStdin, ChildStdout};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// The next group number of this process image. A group meant to outlive
/// its controller counts from the clock (microseconds since 1970), not from
/// 1: a daemon that re-executes itself keeps its pid, and its new image
/// must never reuse the id of a group the previous image left running.
/// (Other groups die with their image, and keep short ids.)
fn next_seq(outlive: bool) -> u64 {
    static BASE: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    let n = NEXT_ID.fetch_add(1, Ordering::Relaxed);
    if !outlive {
        return n;
    }
    let base = *BASE.get_or_init(|| {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(1, |d| d.as_micros() as u64)
    });
    base.saturating_add(n)
}

/// Ends the id of a group whose leader outlives its controller.
pub(crate) const OUTLIVE_SUFFIX: &str = "-outlive";

/// Configures a group before its leader starts. See [`Group::builder`].
#[derive(Debug, Clone, Default)]
#[must_use]
pub struct GroupBuilder {
    limits: Limits,
    timeout: Option<Duration>,
    stop: StopPolicy,
    kill_on_drop: Option<bool>,
    backend: Option<BackendKind>,
    outlive: bool,
    record_events: bool,
    count_processes: bool,
    isolation: crate::Isolation,
}

impl GroupBuilder {
    /// Resource limits for the whole group.
    pub fn limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }
    /// Wall-clock timeout: when it runs out the group is stopped with the
    /// stop policy and the reason is [`crate::Reason::Timeout`].
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }
    /// How the group is stopped: signal, then kill after the grace period.
    pub fn stop(mut self, stop: StopPolicy) -> Self {
        self.stop = stop;
        self
    }
    /// Kill the whole group when the [`Group`] is dropped (default: true).
    pub fn kill_on_drop(mut self, yes: bool) -> Self {
        self.kill_on_drop = Some(yes);
        self
    }
    /// Lets the leader outlive this process (default: false). Normally a
    /// leader dies with its controller (`PR_SET_PDEATHSIG` on Linux); a
    /// daemon that means to take its groups back after a crash or a
    /// re-exec ([`GroupBuilder::reattach`]) turns that off. The group's
    /// cgroup still holds every member meanwhile. On Windows the group's
    /// job is then made without `KILL_ON_JOB_CLOSE` (its kill is explicit:
    /// a stop, a timeout, or a drop with [`GroupBuilder::kill_on_drop`]).
    /// On macOS nothing is armed to begin with.
    pub fn outlive_controller(mut self, yes: bool) -> Self {
        self.outlive = yes;
        self
    }
    /// Forces a backend instead of the best one available. Without this,
    /// the environment variable `CORRAL_BACKEND` may force one.
    pub fn backend(mut self, kind: BackendKind) -> Self {
        self.backend = Some(kind);
        self
    }

    /// Keeps the group's events from its start for its first subscriber
    /// ([`Group::events`]), so one that subscribes right after `spawn`, or
    /// even after the group ended, misses no process that started and
    /// ended in between (lineage traces need every one). Held up to 65536
    /// events; past that the rest is dropped until the subscriber comes.
    ///
    /// On Linux this opens the host-wide process-event connector for the
    /// group's life (where it is permitted), which wakes this process for
    /// every fork on the host: ask for it where lineage is wanted.
    pub fn record_events(mut self, yes: bool) -> Self {
        self.record_events = yes;
        self
    }

    /// Counts every process the group starts over its life
    /// ([`Usage::processes_total`]). On Linux cgroups count only the live
    /// ones, so this opens the process-event connector for the group's
    /// life (where it is permitted), which wakes this process for every
    /// fork on the host: fit for a run, not for a long-lived service.
    /// The pgid backend and Windows always count; macOS never does.
    pub fn count_processes(mut self, yes: bool) -> Self {
        self.count_processes = yes;
        self
    }

    /// Namespaces, a private view of the filesystem and dropped
    /// privileges for the whole group (Linux; elsewhere a non-empty
    /// isolation is refused with [`ErrorKind::Unsupported`]). Needs a
    /// [`crate::Command`], started through corral's own spawn path.
    pub fn isolate(mut self, isolation: crate::Isolation) -> Self {
        self.isolation = isolation;
        self
    }

    /// Starts `cmd` as the leader of a new group. The leader is a member
    /// before it runs a single instruction of the program, so nothing it
    /// starts can be outside the group.
    ///
    /// Platform notes: on Unix the leader gets its own process group (and
    /// on Linux `PR_SET_PDEATHSIG`); on Windows `spawn` sets the command's
    /// creation flags itself (suspended, new process group), replacing any
    /// the caller set. Members corral kills exit with signal 9 on Unix and
    /// with code 137 on Windows.
    ///
    /// `cmd` is a [`crate::Command`] (on Linux, corral's own `clone3`
    /// path) or a `std::process::Command` (std's fork path, since std
    /// keeps its stdio settings private); [`Group::spawn_path`] tells which
    /// ran.
    pub fn spawn(self, cmd: impl IntoLeader) -> Result<Group> {
        let (spec, cfg, kill_on_drop) = self.prepare()?;
        let cmd = cmd.into_leader();
        let cwd = cmd.current_dir().map(std::path::Path::to_path_buf);
        check_cwd(cwd.as_deref())?;
        let started = monitor::start(spec.clone(), cmd.into(), cfg).map_err(|e| cwd_error(cwd.as_deref(), e))?;
        Ok(Group::from_started(spec.id, spec.limits, started, kill_on_drop))
    }

    /// [`GroupBuilder::spawn`] for async code: the task awaits the start
    /// instead of blocking a thread of the runtime on it.
    #[cfg(feature = "tokio")]
    pub async fn spawn_async(self, cmd: impl IntoLeader) -> Result<Group> {
        let (spec, cfg, kill_on_drop) = self.prepare()?;
        let cmd = cmd.into_leader();
        let cwd = cmd.current_dir().map(std::path::Path::to_path_buf);
        check_cwd(cwd.as_deref())?;
        let started =
            monitor::start_async(spec.clone(), cmd.into(), cfg).await.map_err(|e| cwd_error(cwd.as_deref(), e))?;
        Ok(Group::from_started(spec.id, spec.limits, started, kill_on_drop))
    }

    pub(crate) fn prepare(self) -> Result<(sys::Spec, monitor::Config, bool)> {
        self.limits.validate()?;
        self.isolation.check()?;
        let backend = match self.backend {
            Some(b) => Some(b),
            None => backend_from_env()?,
        };
        let spec = sys::Spec {
            // `-outlive`: another corral's sweep of stale groups (controller
            // gone) spares it; the next controller takes it back or reaps it.
            id: format!(
                "{}-{}{}",
                std::process::id(),
                next_seq(self.outlive),
                if self.outlive { OUTLIVE_SUFFIX } else { "" }
            ),
            limits: self.limits,
            backend,
            force_fork: spawn_from_env()? == Some(SpawnPath::Fork),
            reattach: false,
            outlive: self.outlive,
            record_events: self.record_events,
            count_processes: self.count_processes,
            isolation: self.isolation,
        };
        let cfg = monitor::Config {
            timeout: self.timeout,
            stop: self.stop,
            cpu_time: spec.limits.cpu_time,
            spawn: SpawnPath::Fork,
        };
        Ok((spec, cfg, self.kill_on_drop.unwrap_or(true)))
    }
}

/// The exec's "no such file" may be the working directory's, removed
/// since [`check_cwd`]: then that is the error.
fn cwd_error(cwd: Option<&std::path::Path>, e: Error) -> Error {
    match e.kind() {
        ErrorKind::NotFound => check_cwd(cwd).err().unwrap_or(e),
        _ => e,
    }
}

/// A missing working directory makes the spawn fail with "no such file",
/// which would read as "command not found": name the directory instead.
fn check_cwd(cwd: Option<&std::path::Path>) -> Result<()> {
    let Some(dir) = cwd else { return Ok(()) };
    match std::fs::metadata(dir) {
        Ok(m) if m.is_dir() => Ok(()),
        Ok(_) => Err(Error::new(
            ErrorKind::InvalidInput,
            format!("the working directory {} is not a directory", dir.display()),
        )
        .hint("set the working directory (cwd) to a directory")),
        Err(e) => Err(Error::os(format!("the working directory {} cannot be used", dir.display()), e)
            .with_kind(ErrorKind::InvalidInput)
            .hint("create it, or set the working directory (cwd) to one that exists")),
    }
}

fn backend_from_env() -> Result<Option<BackendKind>> {
    match std::env::var("CORRAL_BACKEND") {
        Ok(v) if !v.trim().is_empty() => BackendKind::parse(&v).map(Some).ok_or_else(|| {
            Error::new(ErrorKind::InvalidInput, format!("CORRAL_BACKEND='{v}' is not a backend"))
                .hint("use one of cgroup2, hybrid, cgroup1, pgid, job, or unset it to pick the best")
        }),
        _ => Ok(None),
    }
}

fn spawn_from_env() -> Result<Option<SpawnPath>> {
    match std::env::var("CORRAL_SPAWN") {
        Ok(v) if !v.trim().is_empty() => match v.trim() {
            "clone3" => Ok(Some(SpawnPath::Clone3)),
            "fork" => Ok(Some(SpawnPath::Fork)),
            _ => Err(Error::new(ErrorKind::InvalidInput, format!("CORRAL_SPAWN='{v}' is not a spawn path"))
                .hint("use clone3 or fork, or unset it to pick the best")),
        },
        _ => Ok(None),
    }
}

/// A running group: a leader and every process it ever starts.
///
/// Dropping a `Group` kills the whole group unless
/// [`GroupBuilder::kill_on_drop`] was set to false.
pub struct Group {
    id: String,
    pid: u32,
    spawn: SpawnPath,
    sys: Arc<sys::Imp>,
    shared: Arc<Shared>,
    /// The limits in force (changed by `set_limits`).
    limits: std::sync::Mutex<Limits>,
    kill_on_drop: bool,
    stdin: Option<ChildStdin>,
    stdout: Option<ChildStdout>,
    stderr: Option<ChildStderr>,
}

impl std::fmt::Debug for Group {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Group")
            .field("id", &self.id)
            .field("pid", &self.pid)
            .field("backend", &self.sys.kind())
            .finish()
    }
}

impl Group {
    pub(crate) fn from_started(
        id: String,
        limits: Limits,
        started: monitor::Started<sys::Imp>,
        kill_on_drop: bool,
    ) -> Group {
        Group {
            id,
            limits: std::sync::Mutex::new(limits),
            pid: started.pid,
            spawn: started.child.path,
            sys: started.sys,
            shared: started.shared,
            kill_on_drop,
            stdin: started.child.stdin,
            stdout: started.child.stdout,
            stderr: started.child.stderr,
        }
    }

    /// A builder with no limits, no timeout and the default stop policy.
    pub fn builder() -> GroupBuilder {
        GroupBuilder::default()
    }

    /// Starts `cmd` in a new group with default settings.
    pub fn spawn(cmd: impl IntoLeader) -> Result<Group> {
        Group::builder().spawn(cmd)
    }

    /// This group's id, unique on this host while it lives.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The leader's pid.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// How the leader was started.
    pub fn spawn_path(&self) -> SpawnPath {
        self.spawn
    }

    /// The backend that holds this group.
    pub fn backend(&self) -> BackendKind {
        self.sys.kind()
    }

    /// Where the group lives: its cgroup path, job name or process group.
    pub fn location(&self) -> String {
        self.sys.location()
    }

    /// How each requested limit is enforced here. A limit the backend
    /// cannot enforce is listed as [`crate::Support::No`], never dropped.
    pub fn enforcement(&self) -> Vec<Enforcement> {
        self.sys.enforcement()
    }

    /// The pids alive in the group now.
    pub fn members(&self) -> Result<Vec<u32>> {
        self.sys.members().map_err(|e| Error::os("listing group members", e))
    }

    /// The members as a parent/child tree.
    pub fn tree(&self) -> Result<ProcessTree> {
        let members = self.members()?;
        let list = sys::tree_of(&members).map_err(|e| Error::os("reading the process table", e))?;
        Ok(ProcessTree::from_processes(list))
    }

    /// True when this group's [`Event`](crate::Event)s carry lineage: each `Started` names
    /// the process that forked it (even one re-parented since), and execs
    /// arrive as `Exec`. Linux with the process-event connector (root, or
    /// CAP_NET_ADMIN), for a group that records its events
    /// ([`GroupBuilder::record_events`]) or runs on the pgid backend;
    /// elsewhere a `Started`'s parent is only the one its process had when
    /// it was seen.
    pub fn observes_lineage(&self) -> bool {
        self.sys.observes_lineage()
    }

    /// What the group has used so far.
    pub fn usage(&self) -> Usage {
        self.sys.usage()
    }

    /// A stream of what happens in the group from now on. The members alive
    /// now arrive first, as `Started`. The stream ends after `Empty`.
    pub fn events(&self) -> Events {
        Events::subscribe(&self.shared, &*self.sys)
    }

    /// Starts a graceful stop: the stop signal to every member, then a kill
    /// after the grace period. Returns at once; [`Group::wait`] tells when
    /// it is over. The reason becomes `killed` unless the group already
    /// ended for another one.
    pub fn stop(&self) {
        self.shared.request(Request::Stop);
    }

    /// Sends `signal` to every member now, without starting a stop (for
    /// forwarding a signal the controller received). On Windows this is the
    /// first phase of a stop: the stop event (which stays set), CTRL_BREAK
    /// and WM_CLOSE.
    pub fn signal(&self, signal: crate::Signal) -> Result<()> {
        self.sys.graceful_stop(signal).map_err(|e| Error::os(format!("sending {signal} to the group"), e))
    }

    /// Changes the group's limits while it runs: memory, `max_procs`,
    /// `cpus` and which of them only notify. Limits the group was created
    /// without may need a controller it does not have (then the error
    /// says so: restart the group with them); `memory_per_process` and
    /// `cpu_time` are fixed at the start. Linux (cgroups); elsewhere the
    /// error is of kind [`ErrorKind::Unsupported`].
    pub fn set_limits(&self, limits: Limits) -> Result<()> {
        limits.validate()?;
        let mut now = self.limits.lock().unwrap_or_else(|p| p.into_inner());
        self.sys.set_limits(&limits)?;
        *now = limits;
        // Whoever drives the group (the loop, or a caller blocked in
        // `wait`) recomputes what it samples at its next look.
        self.shared.wake();
        Ok(())
    }

    /// The limits in force: the builder's, or the last ones
    /// [`Group::set_limits`] applied.
    pub fn limits(&self) -> Limits {
        self.limits.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// How often each notify-only limit was hit so far (see
    /// [`Limits::notify`]); a hit is also an [`Event::LimitHit`](crate::Event::LimitHit).
    pub fn limit_notices(&self) -> Vec<(crate::LimitKind, u64)> {
        self.shared.limit_notices()
    }

    /// Kills every member now, inescapably. Returns once the kill has been
    /// delivered; [`Group::wait`] tells when everything is reaped.
    pub fn kill(&self) -> Result<()> {
        // Noted first, so that the loop names the reason whenever it sees
        // the deaths; not woken, so that it does not wake beside the dying
        // tree only to kill it a second time.
        self.shared.note_request(Request::Killed);
        if self.shared.outcome().is_some() {
            return Ok(());
        }
        self.sys.kill().map_err(|e| {
            // The loop kills (and retries) instead.
            self.shared.request(Request::Kill);
            Error::os("killing the group", e)
        })
    }

    /// Waits until the group has ended and been torn down.
    pub fn wait(&self) -> Outcome {
        monitor::wait(&self.sys, &self.shared)
    }

    /// Waits until the leader has ended and no member of the group is left
    /// running, and tells how it ended. On the cgroup backends that is
    /// before the teardown that [`Group::wait`] waits for (the cgroup
    /// removed, zombies reaped, the final usage read, leftovers counted):
    /// what a supervisor needs to start the next run at once, as systemd
    /// restarts a unit once its cgroup is empty. Elsewhere (process
    /// groups, Windows, macOS) it comes with the outcome.
    pub fn wait_ended(&self) -> crate::Ended {
        self.shared.wait_ended()
    }

    /// [`Group::wait_ended`] without blocking the runtime.
    #[cfg(feature = "tokio")]
    pub async fn wait_ended_async(&self) -> crate::Ended {
        self.shared.wait_ended_async().await
    }

    /// Waits at most `timeout`; `None` if the group has not ended by then.
    pub fn wait_timeout(&self, timeout: Duration) -> Option<Outcome> {
        monitor::wait_timeout(&self.sys, &self.shared, timeout)
    }

    /// The outcome, if the group has ended.
    pub fn try_wait(&self) -> Option<Outcome> {
        self.shared.outcome()
    }

    /// Waits until the group has ended, without blocking the runtime.
    #[cfg(feature = "tokio")]
    pub async fn wait_async(&self) -> Outcome {
        self.shared.wait_async().await
    }

    /// A stream of events for async code; see [`Group::events`]. Once the
    /// receiver is dropped the group stops listening for it at its next
    /// look, event or not.
    #[cfg(feature = "tokio")]
    pub fn events_async(&self) -> tokio::sync::mpsc::UnboundedReceiver<crate::Event> {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let probe = tx.clone();
        self.shared.subscribe_closable(
            Box::new(move |e| tx.send(e).is_ok()),
            Some(Box::new(move || probe.is_closed())),
            &*self.sys,
        );
        rx
    }

    /// The leader's stdin, if it was piped.
    pub fn take_stdin(&mut self) -> Option<ChildStdin> {
        self.stdin.take()
    }
    /// The leader's stdout, if it was piped.
    pub fn take_stdout(&mut self) -> Option<ChildStdout> {
        self.stdout.take()
    }
    /// The leader's stderr, if it was piped.
    pub fn take_stderr(&mut self) -> Option<ChildStderr> {
        self.stderr.take()
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        if self.kill_on_drop && self.shared.outcome().is_none() {
            // The monitor thread finishes the teardown and reaps.
            let _ = self.kill();
        }
    }
}
