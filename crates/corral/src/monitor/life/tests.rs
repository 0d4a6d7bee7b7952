//! The life of a group against a scripted OS (after tokio's
//! `process/unix/orphan.rs`): "leader exits", "member appears", "grace
//! ends", "limit hit", and the stops and kills that must follow.

use super::*;
use crate::sys::{Spawned, Spec, Wake};
use crate::{BackendKind, Enforcement, Signal, SpawnPath, Usage};
use std::io;
use std::sync::{Arc, Mutex};

/// What the monitor asked of the OS, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Call {
    Stop(Signal),
    Kill,
}

#[derive(Default)]
struct Script {
    calls: Vec<Call>,
    members: Vec<u32>,
    cpu: Duration,
    settling: bool,
}

#[derive(Default)]
struct MockGroup {
    script: Mutex<Script>,
    cpu_enforced: bool,
}

impl MockGroup {
    fn calls(&self) -> Vec<Call> {
        self.script.lock().unwrap().calls.clone()
    }
    fn set_members(&self, m: &[u32]) {
        self.script.lock().unwrap().members = m.to_vec();
    }
    fn set_cpu(&self, d: Duration) {
        self.script.lock().unwrap().cpu = d;
    }
    fn set_settling(&self, yes: bool) {
        self.script.lock().unwrap().settling = yes;
    }
}

struct NoWake;
impl Wake for NoWake {
    fn wake(&self) {}
}

impl SysGroup for MockGroup {
    fn create(_: &Spec) -> crate::Result<Self> {
        Ok(MockGroup::default())
    }
    fn spawn_leader(&self, _: crate::command::Leader) -> crate::Result<Spawned> {
        Err(crate::Error::new(crate::ErrorKind::Unsupported, "the mock starts nothing"))
    }
    fn kind(&self) -> BackendKind {
        BackendKind::Pgid
    }
    fn enforcement(&self) -> Vec<Enforcement> {
        Vec::new()
    }
    fn enforces_cpu_time(&self) -> bool {
        self.cpu_enforced
    }
    fn members(&self) -> io::Result<Vec<u32>> {
        Ok(self.script.lock().unwrap().members.clone())
    }
    fn graceful_stop(&self, signal: Signal) -> io::Result<()> {
        self.script.lock().unwrap().calls.push(Call::Stop(signal));
        Ok(())
    }
    fn kill(&self) -> io::Result<()> {
        self.script.lock().unwrap().calls.push(Call::Kill);
        Ok(())
    }
    fn usage(&self) -> Usage {
        Usage { cpu_user: self.script.lock().unwrap().cpu, ..Usage::default() }
    }
    fn wait(&self, _: Option<Duration>) -> io::Result<Vec<Change>> {
        Ok(Vec::new())
    }
    fn waker(&self) -> Arc<dyn Wake> {
        Arc::new(NoWake)
    }
    fn teardown(&self, _: Instant) -> usize {
        0
    }
    fn settling(&self) -> bool {
        self.script.lock().unwrap().settling
    }
    fn location(&self) -> String {
        "mock".into()
    }
}

const GRACE: Duration = Duration::from_secs(2);

fn cfg(timeout: Option<Duration>, cpu_time: Option<Duration>) -> Config {
    Config { timeout, stop: StopPolicy::new(Signal::TERM, GRACE), cpu_time, spawn: SpawnPath::Clone3 }
}

fn setup(c: &Config) -> (MockGroup, Shared, Life, Instant) {
    let sys = MockGroup::default();
    let shared = Shared::new(Arc::new(NoWake));
    let t0 = Instant::now();
    let life = Life::new(&sys, c, t0, 100);
    (sys, shared, life, t0)
}

fn exited(code: i32) -> Change {
    Change::LeaderExited(ExitStatus { code: Some(code), signal: None })
}

#[test]
fn a_leader_that_exits_alone_ends_the_group_without_a_signal() {
    let (sys, shared, mut life, t0) = setup(&cfg(None, None));
    assert_eq!(life.advance(&sys, &shared, vec![], t0), Next::Wait(None), "nothing to wake for");
    assert_eq!(life.advance(&sys, &shared, vec![exited(3), Change::Empty], t0), Next::Ended);
    assert!(sys.calls().is_empty());
    let o = life.finish(&sys, &shared);
    assert_eq!((o.reason, o.status.code, o.spawn), (Reason::Exited, Some(3), SpawnPath::Clone3));
}

#[test]
fn members_left_by_the_leader_are_stopped_then_killed_when_the_grace_ends() {
    let (sys, shared, mut life, t0) = setup(&cfg(None, None));
    // The leader exits; an escapee stays.
    let next = life.advance(&sys, &shared, vec![exited(0)], t0);
    assert_eq!(sys.calls(), [Call::Stop(Signal::TERM)]);
    assert_eq!(next, Next::Wait(Some(t0 + GRACE)), "wakes when the grace ends");
    // Before the grace ends: nothing more.
    life.advance(&sys, &shared, vec![], t0 + GRACE / 2);
    assert_eq!(sys.calls(), [Call::Stop(Signal::TERM)]);
    // Grace over: the kill, once.
    life.advance(&sys, &shared, vec![], t0 + GRACE);
    life.advance(&sys, &shared, vec![], t0 + GRACE * 2);
    assert_eq!(sys.calls(), [Call::Stop(Signal::TERM), Call::Kill]);
    assert_eq!(life.advance(&sys, &shared, vec![Change::Empty], t0 + GRACE * 2), Next::Ended);
    assert_eq!(life.finish(&sys, &shared).reason, Reason::Exited, "the leader's own end, not a kill, is the reason");
}

#[test]
fn the_rest_is_not_stopped_while_the_backend_is_settling_the_groups_emptiness() {
    let (sys, shared, mut life, t0) = setup(&cfg(None, None));
    sys.set_settling(true);
    // The leader exits; the backend has every sign that it was alone.
    assert_eq!(life.advance(&sys, &shared, vec![exited(0)], t0), Next::Wait(None));
    assert!(sys.calls().is_empty(), "no stop while settling");
    // Confirmed empty: the end, never a stop.
    assert_eq!(life.advance(&sys, &shared, vec![Change::Empty], t0), Next::Ended);
    assert!(sys.calls().is_empty());
    // Or not: the stop follows as soon as it knows.
    let (sys, shared, mut life, t0) = setup(&cfg(None, None));
    sys.set_settling(true);
    life.advance(&sys, &shared, vec![exited(0)], t0);
    sys.set_settling(false);
    assert_eq!(life.advance(&sys, &shared, vec![], t0), Next::Wait(Some(t0 + GRACE)));
    assert_eq!(sys.calls(), [Call::Stop(Signal::TERM)]);
}

#[test]
fn the_timeout_stops_gracefully_and_is_the_reason() {
    let ten = Duration::from_secs(10);
    let (sys, shared, mut life, t0) = setup(&cfg(Some(ten), None));
    assert_eq!(life.advance(&sys, &shared, vec![], t0), Next::Wait(Some(t0 + ten)));
    life.advance(&sys, &shared, vec![], t0 + ten);
    assert_eq!(sys.calls(), [Call::Stop(Signal::TERM)]);
    let signalled = Change::LeaderExited(ExitStatus { code: None, signal: Some(15) });
    assert_eq!(life.advance(&sys, &shared, vec![signalled, Change::Empty], t0 + ten), Next::Ended);
    assert_eq!(life.finish(&sys, &shared).reason, Reason::Timeout);
}

#[test]
fn a_limit_hit_kills_at_once_and_wins_over_a_later_stop() {
    let (sys, shared, mut life, t0) = setup(&cfg(None, None));
    life.advance(&sys, &shared, vec![Change::Limit(LimitKind::Memory)], t0);
    assert_eq!(sys.calls(), [Call::Kill]);
    shared.request(Request::Stop);
    life.advance(&sys, &shared, vec![exited(137), Change::Empty], t0);
    assert_eq!(sys.calls(), [Call::Kill], "no stop after the kill");
    assert_eq!(life.finish(&sys, &shared).reason, Reason::MemoryLimit);
}

#[test]
fn a_cpu_rate_report_is_an_event_not_a_kill() {
    let (sys, shared, mut life, t0) = setup(&cfg(None, None));
    life.advance(&sys, &shared, vec![Change::Limit(LimitKind::CpuRate)], t0);
    assert!(sys.calls().is_empty());
}

#[test]
fn cpu_time_is_checked_no_sooner_than_the_group_could_reach_it() {
    let (sys, shared, mut life, t0) = setup(&cfg(None, Some(Duration::from_secs(4))));
    sys.set_cpu(Duration::from_secs(2));
    let next = life.advance(&sys, &shared, vec![], t0);
    assert_eq!(next, Next::Wait(Some(t0 + Duration::from_secs(2) / cores())));
    sys.set_cpu(Duration::from_secs(4));
    life.advance(&sys, &shared, vec![], t0 + Duration::from_secs(2));
    assert_eq!(sys.calls(), [Call::Kill]);
    life.advance(&sys, &shared, vec![exited(0), Change::Empty], t0 + Duration::from_secs(2));
    assert_eq!(life.finish(&sys, &shared).reason, Reason::CpuTimeLimit);
}

#[test]
fn cpu_time_the_os_enforces_is_not_polled() {
    let sys = MockGroup { cpu_enforced: true, ..MockGroup::default() };
    let shared = Shared::new(Arc::new(NoWake));
    let t0 = Instant::now();
    let mut life = Life::new(&sys, &cfg(None, Some(Duration::from_secs(1))), t0, 100);
    assert_eq!(life.advance(&sys, &shared, vec![], t0), Next::Wait(None));
}

#[test]
fn a_kill_request_overrides_a_pending_stop() {
    let (sys, shared, mut life, t0) = setup(&cfg(None, None));
    shared.request(Request::Stop);
    shared.request(Request::Kill);
    life.advance(&sys, &shared, vec![], t0);
    assert_eq!(sys.calls(), [Call::Kill]);
    shared.request(Request::Stop);
    life.advance(&sys, &shared, vec![], t0);
    assert_eq!(sys.calls(), [Call::Kill], "a stop after a kill does nothing");
    life.advance(&sys, &shared, vec![exited(0), Change::Empty], t0);
    assert_eq!(life.finish(&sys, &shared).reason, Reason::Killed);
}

#[test]
fn a_stop_with_no_grace_is_a_kill() {
    let sys = MockGroup::default();
    let shared = Shared::new(Arc::new(NoWake));
    let t0 = Instant::now();
    let c = Config { stop: StopPolicy::new(Signal::TERM, Duration::ZERO), ..cfg(None, None) };
    let mut life = Life::new(&sys, &c, t0, 100);
    shared.request(Request::Stop);
    life.advance(&sys, &shared, vec![], t0);
    assert_eq!(sys.calls(), [Call::Kill]);
}

#[test]
fn members_appearing_and_leaving_become_events_while_someone_listens() {
    let (sys, shared, mut life, t0) = setup(&cfg(None, None));
    sys.set_members(&[100]);
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s = seen.clone();
    shared.subscribe(
        Box::new(move |e| {
            s.lock().unwrap().push(e);
            true
        }),
        &sys,
    );
    sys.set_members(&[100, 101]);
    let next = life.advance(&sys, &shared, vec![], t0);
    assert_eq!(next, Next::Wait(Some(t0 + EVENT_POLL)), "polls while listening without pushed events");
    sys.set_members(&[101]);
    life.advance(&sys, &shared, vec![exited(0)], t0);
    let pids: Vec<(bool, u32)> = seen
        .lock()
        .unwrap()
        .iter()
        .filter_map(|e| match e {
            Event::Started { pid, .. } => Some((true, *pid)),
            Event::Exited { pid, .. } => Some((false, *pid)),
            _ => None,
        })
        .collect();
    assert_eq!(pids, [(true, 100), (true, 101), (false, 100)]);
}

#[test]
fn a_dropped_event_stream_unsubscribes_at_once_and_the_polling_stops() {
    let (sys, _, mut life, t0) = setup(&cfg(None, None));
    let shared = Arc::new(Shared::new(Arc::new(NoWake)));
    sys.set_members(&[100]);
    let events = crate::Events::subscribe(&shared, &sys);
    let kept = crate::Events::subscribe(&shared, &sys);
    assert_eq!(shared.subscriber_count(), 2);
    assert_eq!(life.advance(&sys, &shared, vec![], t0), Next::Wait(Some(t0 + EVENT_POLL)));
    drop(events);
    assert_eq!(shared.subscriber_count(), 1, "the dropped stream is gone before any event");
    drop(kept);
    assert_eq!(shared.subscriber_count(), 0);
    assert_eq!(life.advance(&sys, &shared, vec![], t0), Next::Wait(None), "nobody listens: no poll");
}

#[test]
fn a_stream_whose_reader_is_gone_stops_the_polling_at_the_next_look() {
    let (sys, _, mut life, t0) = setup(&cfg(None, None));
    let shared = Arc::new(Shared::new(Arc::new(NoWake)));
    sys.set_members(&[100]);
    let (tx, rx) = std::sync::mpsc::channel::<crate::Event>();
    let gone = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let seen = gone.clone();
    shared.subscribe_closable(
        Box::new(move |e| tx.send(e).is_ok()),
        Some(Box::new(move || seen.load(std::sync::atomic::Ordering::Relaxed))),
        &sys,
    );
    assert_eq!(life.advance(&sys, &shared, vec![], t0), Next::Wait(Some(t0 + EVENT_POLL)));
    // The reader goes, and no event comes that would fail to reach it.
    drop(rx);
    gone.store(true, std::sync::atomic::Ordering::Relaxed);
    assert_eq!(life.advance(&sys, &shared, vec![], t0), Next::Wait(None), "nobody listens: no poll");
    assert_eq!(shared.subscriber_count(), 0);
}

#[test]
fn deadlines_past_the_end_of_time_saturate() {
    let t0 = Instant::now();
    assert!(later(t0, Duration::MAX) > t0 + Duration::from_secs(3600));
    let (sys, shared, mut life, t0) = setup(&cfg(Some(Duration::MAX), None));
    assert!(matches!(life.advance(&sys, &shared, vec![], t0), Next::Wait(Some(_))));
}

#[test]
fn a_kill_the_caller_made_is_neither_repeated_nor_unnamed() {
    let (sys, shared, mut life, t0) = setup(&cfg(None, None));
    shared.note_request(Request::Killed);
    life.advance(&sys, &shared, vec![], t0);
    assert_eq!(sys.calls(), Vec::<Call>::new(), "the caller killed already");
    shared.request(Request::Stop);
    life.advance(&sys, &shared, vec![], t0);
    assert_eq!(sys.calls(), Vec::<Call>::new(), "a stop after a kill does nothing");
    life.advance(
        &sys,
        &shared,
        vec![Change::LeaderExited(ExitStatus { code: None, signal: Some(9) }), Change::Empty],
        t0,
    );
    assert_eq!(life.finish(&sys, &shared).reason, Reason::Killed);
}

#[test]
fn a_kill_request_after_the_callers_own_kills_again() {
    let (sys, shared, mut life, t0) = setup(&cfg(None, None));
    shared.note_request(Request::Killed);
    life.advance(&sys, &shared, vec![], t0);
    shared.request(Request::Kill);
    life.advance(&sys, &shared, vec![], t0);
    assert_eq!(sys.calls(), [Call::Kill]);
}

#[test]
fn the_end_is_known_once_the_leader_is_reaped_and_the_group_empty() {
    let (sys, shared, mut life, t0) = setup(&cfg(None, None));
    assert_eq!(life.ended(), None);
    life.advance(&sys, &shared, vec![exited(3)], t0);
    assert_eq!(life.ended(), None, "members may still run");
    life.advance(&sys, &shared, vec![Change::Empty], t0);
    let ended = life.ended().expect("leader reaped and the group empty");
    let outcome = life.finish(&sys, &shared);
    assert_eq!(ended, crate::Ended::from(&outcome));
    assert_eq!(ended.status.code, Some(3));
    assert_eq!(ended.reason, Reason::Exited);
}
