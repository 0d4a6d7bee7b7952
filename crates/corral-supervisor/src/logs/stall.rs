//! How a held log is told: one event, one stderr line and a metric per
//! episode (see `capture`), never one per line.

use super::capture::Stall;
use crate::event::{Event, EventKind};
use crate::instance::{Ctx, Snapshot};
use std::io;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// Reports the holds of one instance's log.
pub(crate) struct StallReport {
    pub ctx: Arc<Ctx>,
    pub service: String,
    pub instance: u32,
    pub label: String,
    /// The instance's state, for the events' `from` and `to`.
    pub status: watch::Receiver<Snapshot>,
}

impl StallReport {
    pub(crate) fn emit(&self, reason: String) {
        let (state, pid) = {
            let s = self.status.borrow();
            (s.state, s.pid)
        };
        let ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_millis();
        self.ctx.events.emit(Event {
            ts: crate::time::format_millis(ms as i64),
            unix_ms: ms as u64,
            service: self.service.clone(),
            instance: self.instance,
            from: state,
            to: state,
            reason,
            pid,
            exit: None,
            kind: EventKind::Log,
            ready: None,
            probe: None,
            alert: None,
            hook: None,
            actor: None,
        });
    }
}

impl Stall for StallReport {
    fn held(&self, error: &io::Error) {
        eprintln!(
            "corral: cannot write the log of {}: {error}; its output is held (the service waits) until the disk takes it",
            self.label
        );
        self.ctx.metrics.log_held(&self.service, self.instance, true);
        self.emit(format!("log held: {error}"));
    }

    fn resumed(&self, held_for: Duration) {
        eprintln!("corral: the log of {} is written again, after {} ms held", self.label, held_for.as_millis());
        self.ctx.metrics.log_held(&self.service, self.instance, false);
        self.emit(format!("log resumed after {} ms held", held_for.as_millis()));
    }

    fn lost(&self, bytes: usize, error: &io::Error) {
        eprintln!(
            "corral: {bytes} bytes of output of {} were never written: the capture ended while held ({error})",
            self.label
        );
        self.ctx.metrics.log_held(&self.service, self.instance, false);
        self.emit(format!("log lost {bytes} bytes: the capture ended while held ({error})"));
    }
}
