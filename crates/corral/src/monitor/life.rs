//! One group's life as a state machine: fed what the OS reported, it
//! decides the stops and kills and says when to look again. What drives
//! it (the reactor, on every OS) only waits and feeds; the decisions are all here, and unit-tested against a
//! scripted [`SysGroup`].

use super::{Config, Request, Shared};
use crate::sys::{self, Change, SysGroup};
use crate::{Event, ExitStatus, LimitKind, Outcome, Reason, StopPolicy};
use std::collections::BTreeSet;
use std::time::{Duration, Instant};

/// How long teardown may take to reap everything before it counts leftovers.
pub(crate) const TEARDOWN_LIMIT: Duration = Duration::from_secs(5);
/// How often membership is diffed while someone listens for events.
const EVENT_POLL: Duration = Duration::from_millis(50);
/// `at + d`, saturating far in the future instead of panicking.
pub(crate) fn later(at: Instant, d: Duration) -> Instant {
    crate::deadline::after(at, d)
}

/// CPUs this process may use; read once (it costs a few file reads).
fn cores() -> u32 {
    static CORES: std::sync::OnceLock<u32> = std::sync::OnceLock::new();
    *CORES.get_or_init(|| std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1) as u32)
}

/// What the driver should do next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Next {
    /// Wait for the OS, a request, or this instant (`None`: no deadline).
    Wait(Option<Instant>),
    /// The group has ended: tear it down ([`Life::finish`]).
    Ended,
}

/// The stop sequence in progress.
#[derive(Debug)]
struct Teardown {
    reason: Option<Reason>,
    /// When the kill phase starts; `None` before a graceful stop began.
    kill_at: Option<Instant>,
    killed: bool,
}

impl Teardown {
    fn graceful<S: SysGroup>(&mut self, sys: &S, stop: &StopPolicy, now: Instant) {
        if self.kill_at.is_some() || self.killed {
            return;
        }
        if stop.grace.is_zero() {
            return self.kill(sys);
        }
        let _ = sys.graceful_stop(stop.signal);
        self.kill_at = Some(later(now, stop.grace));
    }

    fn kill<S: SysGroup>(&mut self, sys: &S) {
        if !self.killed {
            let _ = sys.kill();
            self.killed = true;
        }
    }
}

fn limit_reason(kind: LimitKind) -> Option<Reason> {
    match kind {
        LimitKind::Memory | LimitKind::MemoryPerProcess => Some(Reason::MemoryLimit),
        LimitKind::Processes => Some(Reason::ProcessLimit),
        LimitKind::CpuTime => Some(Reason::CpuTimeLimit),
        LimitKind::WallClock => Some(Reason::Timeout),
        LimitKind::CpuRate => None,
    }
}

/// One group from its spawn to its end.
#[derive(Debug)]
pub(crate) struct Life {
    stop: StopPolicy,
    started: Instant,
    leader_pid: u32,
    deadline: Option<Instant>,
    cpu_limit: Option<Duration>,
    next_cpu_check: Option<Instant>,
    cores: u32,
    td: Teardown,
    leader: Option<ExitStatus>,
    empty: bool,
    spawn: crate::SpawnPath,
}

impl Life {
    pub(crate) fn new<S: SysGroup>(sys: &S, cfg: &Config, started: Instant, leader_pid: u32) -> Life {
        let cpu_limit = cfg.cpu_time.filter(|_| !sys.enforces_cpu_time());
        Life {
            stop: cfg.stop,
            started,
            leader_pid,
            deadline: cfg.timeout.map(|t| later(started, t)),
            cpu_limit,
            next_cpu_check: cpu_limit.map(|_| started),
            cores: cores(),
            td: Teardown { reason: None, kill_at: None, killed: false },
            leader: None,
            empty: false,
            spawn: cfg.spawn,
        }
    }

    /// Takes in `changes` (what the OS reported since the last call),
    /// acts on them, on requests and on deadlines due at `now`, and says
    /// when to look again.
    pub(crate) fn advance<S: SysGroup>(
        &mut self,
        sys: &S,
        shared: &Shared,
        changes: Vec<Change>,
        now: Instant,
    ) -> Next {
        let listening = shared.listening();
        // With an OS event source, events arrive pushed; otherwise poll.
        let pushed = if listening { sys.take_events() } else { None };
        let pushes = pushed.is_some();
        emit_pushed(shared, pushed.unwrap_or_default());
        for c in changes {
            match c {
                Change::LeaderExited(st) => {
                    self.leader = Some(st);
                    if listening && !pushes {
                        shared.lock().known.remove(&self.leader_pid);
                        shared.emit(Event::Exited { pid: self.leader_pid, status: Some(st) });
                    }
                }
                Change::Empty => self.empty = true,
                Change::LimitNotice(kind) => {
                    shared.note_limit(kind);
                    shared.emit(Event::LimitHit { kind });
                }
                Change::Limit(kind) => {
                    shared.emit(Event::LimitHit { kind });
                    if let Some(r) = limit_reason(kind) {
                        self.td.reason.get_or_insert(r);
                        self.td.kill(sys);
                    }
                }
            }
        }
        if listening && !pushes {
            diff_members(sys, shared);
        }

        if let Some(d) = self.deadline {
            if now >= d && self.td.reason.is_none() && self.leader.is_none() {
                self.td.reason = Some(Reason::Timeout);
                shared.emit(Event::LimitHit { kind: LimitKind::WallClock });
                self.td.graceful(sys, &self.stop, now);
            }
        }
        if let (Some(limit), Some(at)) = (self.cpu_limit, self.next_cpu_check) {
            if now >= at && !self.td.killed {
                let used = sys.usage().cpu_total();
                if used >= limit {
                    self.td.reason.get_or_insert(Reason::CpuTimeLimit);
                    shared.emit(Event::LimitHit { kind: LimitKind::CpuTime });
                    self.td.kill(sys);
                    self.next_cpu_check = None;
                } else {
                    // The group cannot burn more than `cores` seconds per
                    // second, so nothing can happen before this point.
                    let wait = (limit - used) / self.cores.max(1);
                    self.next_cpu_check = Some(later(now, wait.max(Duration::from_millis(5))));
                }
            }
        }
        match shared.lock().request.take() {
            Some(Request::Stop) => {
                self.td.reason.get_or_insert(Reason::Killed);
                self.td.graceful(sys, &self.stop, now);
            }
            Some(Request::Kill) => {
                self.td.reason.get_or_insert(Reason::Killed);
                // Asked for explicitly (or the caller's own kill failed):
                // killed again even if it was before.
                self.td.killed = false;
                self.td.kill(sys);
            }
            Some(Request::Killed) => {
                self.td.reason.get_or_insert(Reason::Killed);
                self.td.killed = true;
            }
            None => {}
        }
        if let Some(k) = self.td.kill_at {
            if now >= k {
                self.td.kill(sys);
            }
        }
        if self.leader.is_some() && self.empty {
            return Next::Ended;
        }
        // The leader is gone but members remain: the group ends with its
        // leader, so the rest is stopped (systemd's KillMode=control-group).
        if self.leader.is_some() && !sys.settling() {
            self.td.graceful(sys, &self.stop, now);
        }
        let wake_at = [
            self.deadline.filter(|_| self.td.reason.is_none() && self.leader.is_none()),
            self.next_cpu_check,
            self.td.kill_at.filter(|_| !self.td.killed),
            (listening && !pushes).then(|| later(now, EVENT_POLL)),
        ]
        .into_iter()
        .flatten()
        .min();
        Next::Wait(wake_at)
    }

    /// How the group ended, once its leader has been reaped and the
    /// backend has reported it empty; `None` before that.
    pub(crate) fn ended(&self) -> Option<crate::Ended> {
        let status = self.leader.filter(|_| self.empty)?;
        Some(crate::Ended { status, reason: self.reason(status) })
    }

    fn reason(&self, status: ExitStatus) -> Reason {
        self.td.reason.unwrap_or(if status.signal.is_some() { Reason::Signal } else { Reason::Exited })
    }

    /// Reaps and removes the group, counts what is left, and tells how it
    /// ended. May block up to [`TEARDOWN_LIMIT`].
    pub(crate) fn finish<S: SysGroup>(self, sys: &S, shared: &Shared) -> Outcome {
        let leftover = sys.teardown(later(Instant::now(), TEARDOWN_LIMIT));
        self.conclude(sys, shared, leftover)
    }

    /// [`Life::finish`] when the teardown needs no waiting (see
    /// [`SysGroup::teardown_if_settled`]); `None`: [`Life::finish`] must
    /// follow.
    pub(crate) fn finish_if_settled<S: SysGroup>(&self, sys: &S, shared: &Shared) -> Option<Outcome> {
        sys.teardown_if_settled().map(|leftover| self.conclude(sys, shared, leftover))
    }

    /// The outcome, once the teardown counted `leftover`.
    fn conclude<S: SysGroup>(&self, sys: &S, shared: &Shared, leftover: usize) -> Outcome {
        // The teardown waits for the last exits to be reported; pass them on
        // before `Empty`, or a subscriber never learns how they ended.
        if shared.listening() {
            match sys.take_events() {
                Some(events) => emit_pushed(shared, events),
                None => diff_members(sys, shared),
            }
            // The leader's own exit event may trail its reaping (the teardown
            // waits for the other members only); its status is known here.
            let pending = shared.lock().known.remove(&self.leader_pid);
            if let (true, Some(st)) = (pending, self.leader) {
                shared.emit(Event::Exited { pid: self.leader_pid, status: Some(st) });
            }
        }
        let usage = sys.usage();
        let status = self.leader.unwrap_or(ExitStatus { code: None, signal: None });
        let reason = self.reason(status);
        Outcome {
            status,
            reason,
            usage,
            leftover,
            backend: sys.kind(),
            duration: self.started.elapsed(),
            spawn: self.spawn,
        }
    }
}

/// Emits OS-pushed events, dropping a `Started` already announced by the
/// snapshot a new subscriber got.
fn emit_pushed(shared: &Shared, events: Vec<Event>) {
    for e in events {
        let fresh = {
            let mut st = shared.lock();
            match &e {
                Event::Started { pid, .. } => st.known.insert(*pid),
                Event::Exited { pid, .. } => {
                    st.known.remove(pid);
                    true
                }
                _ => true,
            }
        };
        if fresh {
            shared.emit(e);
        }
    }
}

/// Turns a change in membership into Started/Exited events.
fn diff_members<S: SysGroup>(sys: &S, shared: &Shared) {
    let Ok(now) = sys.members() else { return };
    let now: BTreeSet<u32> = now.into_iter().collect();
    let (born, gone) = {
        let mut st = shared.lock();
        let born: Vec<u32> = now.difference(&st.known).copied().collect();
        let gone: Vec<u32> = st.known.difference(&now).copied().collect();
        st.known = now;
        (born, gone)
    };
    for pid in born {
        let (ppid, exe) = sys::describe(pid);
        shared.emit(Event::Started { pid, ppid, exe });
    }
    for pid in gone {
        shared.emit(Event::Exited { pid, status: None });
    }
}

#[cfg(test)]
mod tests;
