//! [`Events`]: the blocking stream of one group's [`Event`]s. Dropping it
//! unsubscribes at once, so a stream nobody reads costs the group
//! nothing (a listener keeps the group's members polled).

use crate::monitor::Shared;
use crate::sys::SysGroup;
use crate::Event;
use std::sync::{mpsc, Arc, Weak};
use std::time::Duration;

/// Blocking iterator over a group's [`Event`]s.
#[derive(Debug)]
pub struct Events {
    rx: mpsc::Receiver<Event>,
    /// The group's shared state (not kept alive by the stream) and the
    /// subscription to end on drop.
    shared: Weak<Shared>,
    id: u64,
}

impl Events {
    /// Subscribes a new stream to the group that `shared` and `sys` hold.
    pub(crate) fn subscribe<S: SysGroup>(shared: &Arc<Shared>, sys: &S) -> Events {
        let (tx, rx) = mpsc::channel();
        let id = shared.subscribe(Box::new(move |e| tx.send(e).is_ok()), sys);
        Events { rx, shared: Arc::downgrade(shared), id }
    }

    /// The next event, waiting at most `timeout`.
    pub fn next_timeout(&self, timeout: Duration) -> Option<Event> {
        self.rx.recv_timeout(timeout).ok()
    }
}

impl Iterator for Events {
    type Item = Event;
    fn next(&mut self) -> Option<Event> {
        self.rx.recv().ok()
    }
}

impl Drop for Events {
    fn drop(&mut self) {
        if let Some(shared) = self.shared.upgrade() {
            shared.unsubscribe(self.id);
        }
    }
}
