//! # corral
//!
//! Hold a program and **every process it ever starts** as one group: start
//! it race-free inside the group, limit what the group may use, watch what
//! happens in it, stop all of it gracefully or at once, and prove
//! afterwards that nothing is left.
//!
//! ```no_run
//! use corral::{Group, Limits, Reason};
//! use corral::Command;
//! use std::time::Duration;
//!
//! let mut cmd = Command::new("sh");
//! cmd.args(["-c", "sleep 30 & setsid sleep 30 & wait"]);
//! let group = Group::builder()
//!     .limits(Limits::new().memory(256 << 20).max_procs(64))
//!     .timeout(Duration::from_secs(1))
//!     .spawn(cmd)?;
//! let outcome = group.wait();
//! assert_eq!(outcome.reason, Reason::Timeout);
//! assert_eq!(outcome.leftover, 0); // counted after teardown, not assumed
//! # Ok::<(), corral::Error>(())
//! ```
//!
//! Each OS holds the group with its own mechanism ([`BackendKind`]): cgroups
//! (v2, v1 or hybrid) or a process group with a subreaper sweep on Linux, a
//! process group on macOS, a Job Object on Windows. [`host_report`] tells
//! what each one can enforce here; [`Group::enforcement`] tells how each
//! limit of a live group is enforced. A weaker guarantee is never silently
//! taken for a stronger one.
//!
//! With the `tokio` feature, [`Group::wait_async`] and
//! [`Group::events_async`] serve async code.
//!
//! ## What the leader inherits
//!
//! The leader gets the [`Command`](std::process::Command) as the caller
//! built it: its environment (plus corral's tag variable, `CORRAL_GROUP`, or
//! `CORRAL_STOP_EVENT` on Windows), its stdio and working directory. Nothing
//! else of the caller's process leaks in:
//!
//! - **File descriptors.** On Unix every fd from 3 up is made close-on-exec
//!   in the child (`close_range(CLOSE_RANGE_CLOEXEC)` on Linux 5.11+, else
//!   `fcntl` up to the fd limit), so fds the caller's own parent left open
//!   never reach the group. An fd meant for the leader must be one of its
//!   stdio. On Windows std's `CreateProcessW` passes every *inheritable*
//!   handle of the process: std and corral create none but the child's
//!   stdio, yet a handle that corral's own parent passed down inheritable
//!   would reach the leader (closing that needs
//!   `PROC_THREAD_ATTRIBUTE_HANDLE_LIST`, i.e. owning the `CreateProcessW`
//!   call; not done yet).
//! - **Signals.** On Unix the leader starts with an empty signal mask and
//!   every signal at its default disposition, even those the caller ignores.
//!
//! **SIGCHLD.** corral waits for its leaders with `waitpid`. If the process
//! ignores SIGCHLD (often inherited: `trap '' CHLD` in a shell), the kernel
//! reaps children at once and no exit status can be read. So each spawn
//! resets an ignored SIGCHLD (or SIG_DFL with `SA_NOCLDWAIT`) to SIG_DFL,
//! for the whole process, as GNU `timeout` does. Children the caller starts
//! itself after that become zombies until it waits for them. A SIGCHLD
//! *handler* installed with `SA_NOCLDWAIT` is the caller's choice and is
//! left alone: the spawn fails with [`ErrorKind::Unsupported`] instead.

#![warn(missing_docs)]

mod adopt;
mod backend;
mod command;
pub mod deadline;
mod error;
mod event;
mod event_stream;
mod group;
mod io_limit;
mod isolation;
mod leftover;
mod limits;
mod monitor;
mod outcome;
mod stop;
mod sys;
mod tree;
pub mod units;
mod usage;
mod working_set;

pub use adopt::process_start_time;
pub use backend::{host_report, BackendKind, BackendReport, Capability, Enforcement, HostReport, Support};
pub use command::{Command, IntoLeader, SpawnPath, Stdio};
pub use error::{Error, ErrorKind, Result};
pub use event::Event;
pub use event_stream::Events;
pub use group::{Group, GroupBuilder};
pub use io_limit::{IoLimit, MAX_IO_DEVICES};
pub use isolation::{Bind, Isolation, Network, Seccomp, Token, UserMap, DEFAULT_DENY, MAX_HOSTNAME, MAX_MOUNTS};
pub use leftover::{orphaned_groups, reap_group, OrphanedGroup};
pub use limits::{LimitKind, Limits, MAX_CPUS, MAX_PROCS};
pub use outcome::{Ended, ExitStatus, Outcome, Reason};
pub use stop::{Signal, StopPolicy};
pub use tree::{describe_processes, find_group, process_argv, process_table, FoundGroup, ProcessInfo, ProcessTree};
pub use usage::Usage;
pub use working_set::WorkingSet;

/// Writes a minidump of the live process `pid` to `path`: its threads and
/// their stacks, the memory those point to, its handles and its memory
/// map (not its whole memory). Windows only; elsewhere the error is of
/// kind [`ErrorKind::Unsupported`].
///
/// A pid names a process only while someone holds it: pass the leader of a
/// live [`Group`] (which holds its handle), not a pid read long ago.
pub fn write_minidump(pid: u32, path: &std::path::Path) -> Result<()> {
    sys::minidump(pid, path).map_err(|e| {
        let err = Error::os(format!("cannot write a minidump of process {pid} to {}", path.display()), e);
        match err.kind() {
            ErrorKind::PermissionDenied => {
                err.hint("the process belongs to another user or is protected; run corral as that user")
            }
            _ => err,
        }
    })
}

/// Remembers this process's soft open-file limit (RLIMIT_NOFILE) as the one
/// every leader started afterwards gets back. Call it before raising your
/// own: a daemon that needs many fds then does not hand its raised limit
/// to the programs it starts. The first call wins; the leaders' hard limit
/// is this process's. Does nothing where there is no such limit (Windows).
pub fn keep_open_file_limit_for_leaders() {
    #[cfg(unix)]
    sys::unix::fd_limit::remember();
}

/// Whether this process holds the host-wide process-event connector
/// (Linux) open now; always false elsewhere. For tests of when corral
/// opens it (only while a group needs it).
#[doc(hidden)]
pub fn process_event_connector_open() -> bool {
    sys::connector_open()
}

/// Adopts and reaps orphaned processes of this whole process, not only
/// those corral can attribute to one of its groups.
///
/// Call this from a program that owns its process (a CLI, a daemon) and
/// starts every child through corral. A library must not call it, since it
/// would steal the exit statuses of children spawned elsewhere.
pub fn reap_all_orphans(yes: bool) {
    sys::reap_all_orphans(yes);
}
