//! The Linux half of the one event loop: a single `poll` over every
//! group's pidfds, `cgroup.events`-style files and wake eventfds, plus the
//! loop's own eventfd.
//!
//! Trap: `poll` over every group's fds costs a pass over a few hundred fds
//! per wake-up, which is rare when idle; epoll would spare that pass but
//! needs care with fds closed and reused between registrations.

use super::{poll_ready, EventFd, Group};
use crate::sys::{Poll, SysGroup, Wake};
use std::io;
use std::sync::Arc;
use std::time::Duration;

pub(crate) struct Poller {
    wake: Arc<EventFd>,
}

impl Wake for EventFd {
    fn wake(&self) {
        self.signal();
    }
}

impl Poll for Poller {
    fn new() -> io::Result<Poller> {
        Ok(Poller { wake: Arc::new(EventFd::new()?) })
    }

    fn waker(&self) -> Arc<dyn Wake> {
        self.wake.clone()
    }

    fn wait(&mut self, groups: &[&Group], timeout: Option<Duration>) -> io::Result<Vec<bool>> {
        let mut fds = vec![(self.wake.raw(), false)];
        let mut spans = Vec::with_capacity(groups.len());
        for g in groups {
            let start = fds.len();
            fds.extend(g.readiness().unwrap_or_default().fds);
            spans.push(start..fds.len());
        }
        let ready = poll_ready(&fds, timeout);
        self.wake.drain();
        let ready = ready?;
        Ok(spans.into_iter().map(|s| ready[s].iter().any(|r| *r)).collect())
    }
}
