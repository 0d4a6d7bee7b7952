//! When the process-event connector is open: only while some group holds
//! a [`Lease`] on it.
//!
//! The connector's socket receives every fork, exec and exit of the host,
//! and its reader thread wakes for each one: on a busy host that is most
//! of an idle controller's CPU. Groups that can do without it (a cgroup
//! lists its members and says when it is empty) do not open it; the pgid
//! backend, which has no such list, and a group that records its events
//! for lineage do.
//!
//! Traps:
//! - A group must hold its lease before its leader is spawned: the
//!   leader's first forks are only seen by a socket already listening.
//!   `Lease::take` returns once the kernel has the subscription.
//! - Closing joins the reader thread, under the same lock that opens: a
//!   lease taken while the last one is dropped waits for the old socket
//!   to close, then opens its own.

use super::proc_events::{self, Tracked, Watcher};
use super::EventFd;
use crate::BackendKind;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::thread::JoinHandle;

/// Whether a group on `kind` needs the connector: the pgid backend for its
/// membership and emptiness, a group recording its events for lineage,
/// one counting every process it starts; and a pure cgroup v1 group
/// unless this process reaps every orphan (`reap_all`): the kernel shows
/// a v1 zombie in the root cgroup, so an escapee that exited before the
/// group was last looked at is the group's only by lineage, and without
/// it its zombie would be left to this process, unreaped.
pub(crate) fn needed(kind: BackendKind, record_events: bool, count_processes: bool, reap_all: bool) -> bool {
    kind == BackendKind::Pgid || record_events || count_processes || (kind == BackendKind::CgroupV1 && !reap_all)
}

/// The open socket's reader thread and how to stop it.
struct Open {
    stop: Arc<EventFd>,
    reader: JoinHandle<()>,
}

#[derive(Default)]
struct Conn {
    leases: usize,
    open: Option<Open>,
    /// The kernel refused the connector to this process (no
    /// CAP_NET_ADMIN): not asked again.
    refused: bool,
}

static CONN: Mutex<Conn> = Mutex::new(Conn { leases: 0, open: None, refused: false });

fn conn() -> MutexGuard<'static, Conn> {
    CONN.lock().unwrap_or_else(|p| p.into_inner())
}

/// A group's hold on the connector, and the group it follows once its
/// leader is known. Dropping it stops following and, for the last one,
/// closes the socket and ends its thread.
pub(crate) struct Lease {
    tracked: OnceLock<Arc<Tracked>>,
}

impl Lease {
    /// Opens the connector if no group holds it yet; `None` where it is
    /// not permitted (then the group polls).
    pub(crate) fn take() -> Option<Lease> {
        let mut c = conn();
        if c.open.is_none() {
            if c.refused {
                return None;
            }
            match start() {
                Ok(o) => c.open = Some(o),
                Err(e) => {
                    c.refused = matches!(e.raw_os_error(), Some(libc::EPERM | libc::EACCES | libc::EPROTONOSUPPORT));
                    return None;
                }
            }
        }
        c.leases += 1;
        Some(Lease { tracked: OnceLock::new() })
    }

    /// Follows the group of `leader` from now on (see [`Watcher::track`]).
    pub(crate) fn track(&self, leader: u32, t: &Arc<Tracked>) {
        watcher().track(leader, t);
        let _ = self.tracked.set(t.clone());
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        if let Some(t) = self.tracked.get() {
            watcher().untrack(t);
        }
        let mut c = conn();
        c.leases = c.leases.saturating_sub(1);
        if c.leases > 0 {
            return;
        }
        if let Some(o) = c.open.take() {
            o.stop.signal();
            // Never joined from the reader itself (it holds no lease).
            if o.reader.thread().id() != std::thread::current().id() {
                let _ = o.reader.join();
            }
            watcher().closed();
        }
    }
}

fn watcher() -> &'static Watcher {
    proc_events::watcher()
}

fn start() -> std::io::Result<Open> {
    let fd = Arc::new(proc_events::open()?);
    let stop = Arc::new(EventFd::new()?);
    let theirs = stop.clone();
    watcher().opened(fd.clone());
    let reader = std::thread::Builder::new()
        .name("corral-proc-events".into())
        .spawn(move || proc_events::read_loop(fd, &theirs))
        .inspect_err(|_| watcher().closed())?;
    Ok(Open { stop, reader })
}

/// Whether the connector is open now (for tests, through
/// [`crate::connector_open`]).
pub(crate) fn is_open() -> bool {
    conn().open.is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_groups_without_a_member_list_or_a_zombie_cgroup_or_recording_events_need_the_connector() {
        for kind in [BackendKind::CgroupV2, BackendKind::CgroupV1, BackendKind::Hybrid] {
            assert!(!needed(kind, false, false, true), "{kind}");
            assert!(needed(kind, true, false, true), "{kind}");
            assert!(needed(kind, false, true, true), "{kind}");
        }
        assert!(needed(BackendKind::Pgid, false, false, true));
        // A v1 zombie's cgroup is unknown: lineage tells whose it is,
        // unless every orphan is reaped anyway.
        assert!(needed(BackendKind::CgroupV1, false, false, false));
        assert!(!needed(BackendKind::Hybrid, false, false, false), "v2 shows a zombie's cgroup");
    }
}
