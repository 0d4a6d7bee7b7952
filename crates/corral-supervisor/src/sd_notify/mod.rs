//! Readiness and watchdog by notification: systemd's sd_notify protocol
//! (`notify = true`), s6's readiness fd (`notify_fd = N`) and the
//! watchdog (`watchdog = "10s"`).
//!
//! - Each run of a notify instance gets its own datagram socket, bound by
//!   the daemon, named in `NOTIFY_SOCKET`. It is an **abstract** socket on
//!   Linux (`@…`, the kernel picks an unused name): it has no file, so
//!   there is no directory whose owner and mode would have to let a
//!   service running as another `user` in while keeping others out, no
//!   `sun_path` length to outgrow, and nothing left on disk after a crash.
//!   Anyone in the network namespace may send to it; what guards it is the
//!   check every datagram passes: `SO_PASSCRED` gives the sender's pid as
//!   the kernel saw it, and only a member of that instance's group is
//!   heard. Everything else, a datagram over 4 KiB, and datagrams over the
//!   rate limit are dropped and counted (`notify.dropped` in `status`).
//! - `READY=1` (or a newline on the readiness fd) makes the instance
//!   ready: `depends_on = "healthy"` and rollouts wait for it. No
//!   readiness within `start_timeout` fails the start like a failed
//!   startup probe; `EXTEND_TIMEOUT_USEC` pushes the deadline out.
//! - A missing `WATCHDOG=1` within the period is a failed liveness check:
//!   the run ends with reason `liveness: watchdog: …`, and the restart
//!   policy, backoff and start limit apply as for the liveness probe.
//!
//! Pure parts (`message`, `timers`) are unit-tested; the socket is in
//! `sys::notify_socket` (Linux only: `notify = true` is refused at load
//! elsewhere).

mod message;
#[cfg(unix)]
mod run;
mod spec;
mod timers;

pub use message::{parse, Field, MAX_STATUS};
#[cfg(unix)]
pub(crate) use run::{prepare, Listener, Update};
pub use spec::{NotifySpec, NotifyStatus};
pub use timers::{Expired, RateLimit, Timers, MAX_USEC};

/// The largest datagram read; a longer one is dropped (systemd's own
/// bound, `PIPE_BUF`).
pub const MAX_DATAGRAM: usize = 4096;
/// Datagrams a second, on average, per instance, and the burst allowed.
pub const RATE: (u32, u32) = (100, 200);
