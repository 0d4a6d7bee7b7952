//! The notification watcher of one run: set up before the spawn (the
//! socket, the readiness pipe, the variables), started after it with the
//! group whose members alone may speak. It only reports [`Update`]s; the
//! instance task acts on them.

#[cfg(target_os = "linux")]
use super::message::parse;
use super::message::Field;
use super::spec::NotifySpec;
use super::timers::{Expired, RateLimit, Timers};
#[cfg(target_os = "linux")]
use super::MAX_DATAGRAM;
use super::RATE;
use crate::health::Cause;
use corral::{Command, Group};
use std::os::fd::OwnedFd;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::AsyncReadExt;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// What the watcher tells the instance task.
#[derive(Debug)]
pub(crate) enum Update {
    /// Readiness flips, with the reason of its event.
    Ready(bool, String),
    /// A new `STATUS=` line.
    Status(String),
    /// An accepted `MAINPID=`.
    MainPid(u32),
    /// Datagrams dropped so far in this run.
    #[cfg_attr(not(target_os = "linux"), allow(dead_code))]
    Dropped(u64),
    /// End the run, like a failed probe of this kind.
    Failed { cause: Cause, reason: String },
}

/// Set up before the spawn, started after it.
pub(crate) struct Prepared {
    #[cfg(target_os = "linux")]
    socket: Option<crate::sys::notify_socket::NotifySocket>,
    pipe: Option<OwnedFd>,
    timers: Timers,
    start_timeout: Duration,
}

/// The running watcher; dropping it stops it (and closes the socket).
pub(crate) struct Listener {
    pub rx: mpsc::UnboundedReceiver<Update>,
    task: JoinHandle<()>,
}

impl Drop for Listener {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The variables a service gets from a supervisor that it must not get
/// from anywhere else (an inherited `NOTIFY_SOCKET` would make it notify
/// corral's own supervisor).
const OURS: [&str; 7] = [
    "NOTIFY_SOCKET",
    "WATCHDOG_USEC",
    "WATCHDOG_PID",
    "LISTEN_FDS",
    "LISTEN_PID",
    "LISTEN_FDNAMES",
    "LISTEN_FDS_START",
];

/// Clears the protocol variables from `cmd`, then, for a service that
/// asks, binds its socket, makes its readiness pipe and sets the
/// variables. `None` when the service uses none of it.
pub(crate) fn prepare(spec: &NotifySpec, cmd: &mut Command) -> Result<Option<Prepared>, String> {
    for k in OURS {
        cmd.env_remove(k);
    }
    if !spec.is_active() {
        return Ok(None);
    }
    #[cfg(target_os = "linux")]
    let socket = if spec.notify || spec.watchdog.is_some() {
        let s = crate::sys::notify_socket::NotifySocket::bind()
            .map_err(|e| format!("cannot bind the notification socket: {e}"))?;
        cmd.env("NOTIFY_SOCKET", s.name());
        Some(s)
    } else {
        None
    };
    if let Some(w) = spec.watchdog {
        cmd.env("WATCHDOG_USEC", w.as_micros().to_string());
        cmd.env_leader_pid("WATCHDOG_PID");
    }
    let pipe = match spec.fd {
        Some(n) => {
            // std's pipe is close-on-exec on every Unix; pass_fd places the
            // write end in the service alone.
            let (r, w) = std::io::pipe().map_err(|e| format!("cannot make the readiness pipe: {e}"))?;
            cmd.pass_fd(w.into(), n);
            Some(OwnedFd::from(r))
        }
        None => None,
    };
    let start_timeout = spec.gates_ready().then_some(spec.start_timeout);
    Ok(Some(Prepared {
        #[cfg(target_os = "linux")]
        socket,
        pipe,
        timers: Timers::new(start_timeout, spec.watchdog, Instant::now()),
        start_timeout: spec.start_timeout,
    }))
}

impl Prepared {
    /// Starts watching, for the run of `group`.
    pub(crate) fn start(self, group: Arc<Group>) -> Result<Listener, String> {
        let (tx, rx) = mpsc::unbounded_channel();
        #[cfg(target_os = "linux")]
        let socket = match self.socket {
            // SAFETY: the socket owns its fd, which stays open and the same
            // for as long as the AsyncFd owns the socket.
            Some(s) => Some(
                unsafe { tokio::io::unix::AsyncFd::register_with_interest(s, tokio::io::Interest::READABLE) }
                    .map_err(|e| format!("cannot watch the notification socket: {e}"))?,
            ),
            None => None,
        };
        let pipe = match self.pipe {
            Some(p) => Some(
                tokio::net::unix::pipe::Receiver::from_owned_fd(p)
                    .map_err(|e| format!("cannot watch the readiness pipe: {e}"))?,
            ),
            None => None,
        };
        let w = Watch {
            group,
            timers: self.timers,
            start_timeout: self.start_timeout,
            tx,
            rate: RateLimit::new(RATE.0, RATE.1, Instant::now()),
            dropped: 0,
        };
        #[cfg(target_os = "linux")]
        let task = tokio::spawn(w.run(socket, pipe));
        #[cfg(not(target_os = "linux"))]
        let task = tokio::spawn(w.run(pipe));
        Ok(Listener { rx, task })
    }
}

/// Off Linux only the readiness pipe is watched: no socket, so no
/// sender to check and nothing to rate.
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
struct Watch {
    group: Arc<Group>,
    timers: Timers,
    start_timeout: Duration,
    tx: mpsc::UnboundedSender<Update>,
    rate: RateLimit,
    dropped: u64,
}

/// Waits until `at`, or forever.
async fn until(at: Option<Instant>) {
    match at {
        Some(t) => tokio::time::sleep_until(t.into()).await,
        None => std::future::pending().await,
    }
}

/// Reads the readiness pipe until a newline (`Some(true)`), its end
/// (`Some(false)`) or an error.
async fn newline(pipe: &mut Option<tokio::net::unix::pipe::Receiver>) -> bool {
    let Some(p) = pipe.as_mut() else { return std::future::pending().await };
    let mut buf = [0u8; 256];
    loop {
        match p.read(&mut buf).await {
            Ok(0) | Err(_) => return false,
            Ok(n) if buf[..n].contains(&b'\n') => return true,
            Ok(_) => {}
        }
    }
}

impl Watch {
    #[cfg(target_os = "linux")]
    async fn run(
        mut self,
        socket: Option<tokio::io::unix::AsyncFd<crate::sys::notify_socket::NotifySocket>>,
        mut pipe: Option<tokio::net::unix::pipe::Receiver>,
    ) {
        let mut buf = vec![0u8; MAX_DATAGRAM];
        loop {
            let readable = async {
                match &socket {
                    Some(s) => s.readable().await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = until(self.timers.next()) => {
                    if let Some(e) = self.timers.expired(Instant::now()) {
                        return self.fail(e);
                    }
                }
                ready = newline(&mut pipe) => {
                    pipe = None;
                    if ready && self.apply(&Field::Ready, "notify_fd").is_some() {
                        return;
                    }
                }
                guard = readable => {
                    let Ok(mut guard) = guard else { return };
                    let Some(s) = socket.as_ref() else { return };
                    loop {
                        match s.get_ref().recv(&mut buf) {
                            Ok(d) => {
                                if self.datagram(&buf[..d.len], d.truncated, d.pid) {
                                    return;
                                }
                            }
                            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                                guard.clear_ready();
                                break;
                            }
                            Err(_) => return,
                        }
                    }
                }
            }
        }
    }

    #[cfg(not(target_os = "linux"))]
    async fn run(mut self, mut pipe: Option<tokio::net::unix::pipe::Receiver>) {
        loop {
            tokio::select! {
                _ = until(self.timers.next()) => {
                    if let Some(e) = self.timers.expired(Instant::now()) {
                        return self.fail(e);
                    }
                }
                ready = newline(&mut pipe) => {
                    pipe = None;
                    if ready && self.apply(&Field::Ready, "notify_fd").is_some() {
                        return;
                    }
                }
            }
        }
    }

    /// One datagram; true when the run is to end.
    #[cfg(target_os = "linux")]
    fn datagram(&mut self, bytes: &[u8], truncated: bool, pid: Option<u32>) -> bool {
        let member = || pid.is_some_and(|p| self.group.members().is_ok_and(|m| m.contains(&p)));
        if truncated || !self.rate.take(Instant::now()) || !member() {
            self.dropped = self.dropped.saturating_add(1);
            let _ = self.tx.send(Update::Dropped(self.dropped));
            return false;
        }
        for f in parse(bytes) {
            if let Field::MainPid(p) = f {
                // Only a member may be named the main process.
                if !self.group.members().is_ok_and(|m| m.contains(&p)) {
                    continue;
                }
            }
            if self.apply(&f, "notify").is_some() {
                return true;
            }
        }
        false
    }

    /// Acts on one field; `Some` when it ended the run.
    fn apply(&mut self, f: &Field, from: &str) -> Option<()> {
        let was_starting = self.timers.starting();
        if let Some(e) = self.timers.on(f, Instant::now()) {
            self.fail(e);
            return Some(());
        }
        let u = match f {
            Field::Ready if from == "notify_fd" => {
                Update::Ready(true, "notify_fd: ready (a newline on the readiness fd)".into())
            }
            Field::Ready if was_starting => Update::Ready(true, "notify: READY=1".into()),
            Field::Ready => Update::Ready(true, "notify: READY=1 (ready again)".into()),
            Field::Reloading => Update::Ready(false, "notify: RELOADING=1".into()),
            Field::Stopping => Update::Ready(false, "notify: STOPPING=1".into()),
            Field::Status(s) => Update::Status(s.clone()),
            Field::MainPid(p) => Update::MainPid(*p),
            _ => return None,
        };
        let _ = self.tx.send(u);
        None
    }

    fn fail(&self, e: Expired) {
        let fmt = corral::units::format_duration;
        let (cause, reason) = match e {
            Expired::Start => (
                Cause::Startup,
                format!("startup: notify: not ready within the start timeout ({})", fmt(self.start_timeout)),
            ),
            Expired::Watchdog { triggered: true, .. } => {
                (Cause::Liveness, "liveness: watchdog: the service sent WATCHDOG=trigger".to_string())
            }
            Expired::Watchdog { period, .. } => (
                Cause::Liveness,
                format!("liveness: watchdog: no WATCHDOG=1 within {}", fmt(period.max(Duration::from_millis(1)))),
            ),
        };
        let _ = self.tx.send(Update::Failed { cause, reason });
    }
}
