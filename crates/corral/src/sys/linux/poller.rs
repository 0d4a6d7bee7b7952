//! The Linux half of the one event loop: a single `poll` over every
//! group's pidfds, `cgroup.events`-style files and wake eventfds, plus the
//! loop's own eventfd and timer.
//!
//! Trap: `poll` over every group's fds costs a pass over a few hundred fds
//! per wake-up, which is rare when idle; epoll would spare that pass but
//! needs care with fds closed and reused between registrations.

use super::{poll_ready, EventFd, Group, TimerFd};
use crate::sys::{Poll, SysGroup, Wake, WAKE_SOON};
use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

pub(crate) struct Poller {
    wake: Arc<LoopWake>,
}

/// How the loop is woken.
///
/// Now: an eventfd write. When the loop sleeps on the other CPU, that
/// write sends the wake-up to it on the caller's time: 14 µs of a 0.6 ms
/// spawn+wait on the bench's 2-vCPU VM, the largest single cost of
/// corral's own in it (the kernel's exit and exec aside).
///
/// Soon: a timer, armed by the first caller since the loop last woke for
/// it (one `timerfd_settime`, about 1 µs; later callers make no call at
/// all). The kernel wakes the loop when it fires, on nobody's time. A
/// spawn loop on one thread so makes the loop wake once per
/// [`WAKE_SOON`], not once per spawn, which also bounds how many ended
/// groups it still holds (their fds) between two wake-ups.
struct LoopWake {
    now: EventFd,
    /// `None` where no timer could be made: then "soon" is "now".
    soon: Option<TimerFd>,
    /// The timer is armed and has not fired yet, as far as the loop knows.
    armed: AtomicBool,
}

impl Wake for LoopWake {
    fn wake(&self) {
        self.now.signal();
    }

    fn wake_soon(&self) {
        let Some(t) = &self.soon else { return self.now.signal() };
        // The swap orders this caller's queued work before the loop's own
        // swap back to false (both read-modify-write): either the loop sees
        // the work when it takes its queue after that swap, or this caller
        // sees `false` and arms the timer again.
        if !self.armed.swap(true, Ordering::AcqRel) && t.arm(WAKE_SOON).is_err() {
            self.armed.store(false, Ordering::Release);
            self.now.signal();
        }
    }
}

impl LoopWake {
    /// After `poll`: clears what woke the loop, before it takes its queue.
    fn clear(&self, fired: bool) {
        self.now.drain();
        if let (Some(t), true) = (&self.soon, fired) {
            t.drain();
            self.armed.swap(false, Ordering::AcqRel);
        }
    }
}

impl Poll for Poller {
    fn new() -> io::Result<Poller> {
        let wake = LoopWake { now: EventFd::new()?, soon: TimerFd::new().ok(), armed: AtomicBool::new(false) };
        Ok(Poller { wake: Arc::new(wake) })
    }

    fn waker(&self) -> Arc<dyn Wake> {
        self.wake.clone()
    }

    fn wait(&mut self, groups: &[&Group], timeout: Option<Duration>) -> io::Result<Vec<bool>> {
        let mut fds = vec![(self.wake.now.raw(), false)];
        let timer_at = self.wake.soon.as_ref().map(|t| {
            fds.push((t.raw(), false));
            fds.len() - 1
        });
        let mut spans = Vec::with_capacity(groups.len());
        for g in groups {
            let start = fds.len();
            fds.extend(g.readiness().unwrap_or_default().fds);
            spans.push(start..fds.len());
        }
        let ready = poll_ready(&fds, timeout);
        let fired = timer_at.is_some_and(|i| ready.as_ref().is_ok_and(|r| r[i]));
        self.wake.clear(fired);
        let ready = ready?;
        Ok(spans.into_iter().map(|s| ready[s].iter().any(|r| *r)).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    /// The timer's wake comes within its bound and only once per arming;
    /// a second `wake_soon` while it is armed makes no call of its own.
    #[test]
    fn soon_wakes_the_loop_once_within_its_bound() {
        let mut p = Poller::new().expect("poller");
        assert!(p.wake.soon.is_some(), "timerfd on this kernel");
        let waker = p.waker();
        let t = Instant::now();
        waker.wake_soon();
        waker.wake_soon();
        assert!(p.wake.armed.load(Ordering::Acquire));
        p.wait(&[], Some(Duration::from_secs(5))).expect("wait");
        let took = t.elapsed();
        assert!(took >= WAKE_SOON - Duration::from_micros(100), "fired early: {took:?}");
        assert!(took < Duration::from_secs(1), "never fired: {took:?}");
        assert!(!p.wake.armed.load(Ordering::Acquire), "cleared once fired");
        // Nothing else is pending: the next wait times out.
        let t = Instant::now();
        p.wait(&[], Some(Duration::from_millis(20))).expect("wait");
        assert!(t.elapsed() >= Duration::from_millis(20), "a second wake-up from one arming");
        // And it arms again after firing.
        waker.wake_soon();
        assert!(p.wake.armed.load(Ordering::Acquire));
        p.wait(&[], Some(Duration::from_secs(5))).expect("wait");
        assert!(!p.wake.armed.load(Ordering::Acquire));
    }

    #[test]
    fn now_still_wakes_at_once() {
        let mut p = Poller::new().expect("poller");
        let waker = p.waker();
        waker.wake();
        let t = Instant::now();
        p.wait(&[], Some(Duration::from_secs(5))).expect("wait");
        assert!(t.elapsed() < Duration::from_millis(500));
    }
}
