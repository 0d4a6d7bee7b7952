//! The daemon's process: its tokio runtime and its allocator, sized for a
//! supervisor that mostly waits.
//!
//! Every thread counts twice in a daemon that stays up for months: its
//! stack and its malloc arena are resident, and `/proc/PID/task` is what
//! people count. The library drives every group from one event loop of
//! its own, and instances are tasks, so the runtime needs few threads:
//!
//! - [`WORKERS`] workers, enough to keep log capture on both cores of a
//!   small machine while the API answers;
//! - at most [`BLOCKING`] blocking-pool threads, for the bounded work kept
//!   off the workers (config reads, `/proc` walks, snapshots); more of it
//!   waits its turn instead of adding a thread per request (not on
//!   Windows, where each pending pipe read holds one);
//! - an idle blocking thread ends after [`KEEP_ALIVE`], not tokio's 10 s:
//!   the config watcher's safety poll would otherwise keep one alive for
//!   good.

use std::time::Duration;

/// Worker threads of the runtime.
pub const WORKERS: usize = 2;
/// The most blocking-pool threads at once.
#[cfg(unix)]
pub const BLOCKING: usize = 2;
/// On Windows tokio reads a child's pipe with a blocking-pool thread per
/// pending read (two per running instance, for as long as it runs): a cap
/// of two starved every log but the first instance's. tokio's own bound.
#[cfg(windows)]
pub const BLOCKING: usize = 512;
/// How long an idle blocking-pool thread waits for work before it ends.
pub const KEEP_ALIVE: Duration = Duration::from_secs(1);

/// The runtime `corral up` runs the daemon on, with the allocator tuned
/// first (before any thread of the runtime exists).
pub fn daemon() -> std::io::Result<tokio::runtime::Runtime> {
    crate::sys::malloc::tune();
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(WORKERS)
        .max_blocking_threads(BLOCKING)
        .thread_keep_alive(KEEP_ALIVE)
        .thread_name("corral-worker")
        .enable_all()
        .build()
}
