//! How shipping drops are told: a metric per line, and one event (and one
//! stderr line) when a streak of drops begins and when it ends.

use crate::logs::StallReport;

/// Who hears about lines a sink did not take.
pub(crate) trait ShipReport: Send + Sync {
    /// The first drop of a streak, and why.
    fn dropping(&self, sink: &str, why: &str);
    /// One line dropped (every one, for the metric).
    fn dropped(&self, sink: &str);
    /// The sink takes lines again, after `dropped` were lost.
    fn recovered(&self, sink: &str, dropped: u64);
}

impl ShipReport for StallReport {
    fn dropping(&self, sink: &str, why: &str) {
        eprintln!("corral: shipping the log of {} to {sink}: lines are dropped ({why})", self.label);
        self.emit(format!("log shipping to {sink} drops lines: {why}"));
    }

    fn dropped(&self, sink: &str) {
        self.ctx.metrics.log_ship_dropped(&self.service, self.instance, sink);
    }

    fn recovered(&self, sink: &str, dropped: u64) {
        eprintln!("corral: shipping the log of {} to {sink} works again ({dropped} lines dropped)", self.label);
        self.emit(format!("log shipping to {sink} works again after {dropped} lines dropped"));
    }
}
