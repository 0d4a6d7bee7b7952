//! Reload when the config file changes (`[daemon] watch_config`, on by
//! default).
//!
//! The file is read every [`PERIOD`] and compared with what was last seen,
//! instead of watching for filesystem events: a config is a few KiB, the
//! read costs microseconds, and it behaves the same on every OS and
//! filesystem (network mounts, editors that save by rename, mtimes with
//! one-second granularity). A change is applied once two reads in a row
//! agree, so a save in progress is never read half-written. Content equal
//! to what was last seen is no change, so `touch` does nothing; a config
//! that does not load is refused (and said so) once, not every period.
//! Content that loads to the services in force is no change either: the
//! daemon started with it, or `corral reload` applied it first.

use crate::supervisor::Supervisor;
use std::time::Duration;

/// How often the file is read.
pub(crate) const PERIOD: Duration = Duration::from_millis(500);

/// Runs until aborted.
pub(crate) async fn config_file(sup: Supervisor) {
    let path = sup.config().path;
    // Nothing acted on yet: the first settled content is compared with the
    // config in force, so a save made while the daemon started counts.
    let mut applied: Option<Vec<u8>> = None;
    let mut last: Option<Vec<u8>> = None;
    let mut tick = tokio::time::interval(PERIOD);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        // A missing file (mid-rename, or deleted) is no new config; nor is
        // one that is not a bounded regular file (the reload would refuse
        // it, and reading it could block or never end).
        let p = path.clone();
        let Ok(Ok(now)) = tokio::task::spawn_blocking(move || crate::config::read_file(&p)).await else { continue };
        let settled = last.as_ref() == Some(&now);
        last = Some(now);
        if settled && last != applied {
            applied = last.clone();
            crate::daemon::reload(&sup, "the config file changed", true).await;
        }
    }
}
