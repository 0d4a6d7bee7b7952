//! How many file descriptors API and metrics clients may hold at once.
//!
//! Every connection is an fd, and so is every pipe, pidfd and cgroup file
//! a service instance needs. When clients may take them all, the next
//! spawn fails with EMFILE and a healthy service ends `failed`. So the fds
//! are split at start: a reserve for the services that clients never
//! touch, and the rest for clients, shared by every listener. A client
//! over its share is refused; a spawn never is.

use super::admit::{Caps, Clients};
use crate::config::Config;

/// The daemon's own fds: stdio, the listeners, the event loop, the event
/// log, state and the files a reload or a dump opens for a moment.
pub const RESERVE_BASE: u64 = 64;
/// What one running instance holds (measured: 6, for its two output
/// pipes, pidfd, `cgroup.events` watch, eventfd and log file), with room
/// for a spawn's own pipes and an exec probe's.
pub const RESERVE_PER_INSTANCE: u64 = 16;
/// Clients get at least this many, however tight the limit: a daemon that
/// nobody can reach cannot even be told to stop.
pub const MIN_CLIENTS: usize = 4;

/// The split of the open-file limit between services and clients.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FdBudget {
    /// The soft RLIMIT_NOFILE in force; `None` where there is none.
    pub limit: Option<u64>,
    /// Kept for the services and the daemon itself.
    pub reserve: u64,
    /// Connections that may be open at once, over every listener.
    pub clients: usize,
}

impl FdBudget {
    /// The split for `limit` and a config of `instances` instances. The
    /// reserve is at least half the limit, so instances that a reload adds
    /// later find fds too.
    pub fn plan(limit: Option<u64>, instances: u64) -> FdBudget {
        let Some(limit) = limit else {
            // No fd limit (Windows): the per-listener caps alone bound clients.
            return FdBudget { limit: None, reserve: 0, clients: usize::MAX };
        };
        let needed = RESERVE_BASE.saturating_add(RESERVE_PER_INSTANCE.saturating_mul(instances));
        let reserve = needed.max(limit / 2);
        let left = usize::try_from(limit.saturating_sub(reserve)).unwrap_or(usize::MAX);
        FdBudget { limit: Some(limit), reserve, clients: left.max(MIN_CLIENTS) }
    }

    /// One line for the daemon's stderr when the budget is below what the
    /// listeners in use could hold (`wanted`), else `None`.
    pub fn warning(&self, wanted: usize) -> Option<String> {
        let limit = self.limit?;
        (self.clients < wanted).then(|| {
            format!(
                "corral: warning: the open-file limit is {limit}: {} fds stay reserved for the services, so API clients get {} connections at once, not {wanted} (raise the hard limit: `ulimit -Hn`, or LimitNOFILE= under systemd)",
                self.reserve, self.clients
            )
        })
    }
}

/// The daemon's one effect here: raises the soft open-file limit
/// ([`crate::sys::nofile`]), splits it for `config`, says so on stderr
/// when clients get less than the listeners in use could hold, and returns
/// what the listeners share.
pub(crate) fn clients_for(config: &Config) -> Clients {
    let instances = config.services.values().map(|s| u64::from(s.instances)).sum();
    let budget = FdBudget::plan(crate::sys::nofile::raise(), instances);
    let d = &config.daemon;
    let wanted = Caps::LOCAL.total
        + d.tcp.as_ref().map_or(0, |_| Caps::TCP.total)
        + d.metrics_listen.map_or(0, |_| Caps::METRICS.total)
        + d.web.as_ref().map_or(0, |_| Caps::WEB.total);
    if let Some(w) = budget.warning(wanted) {
        eprintln!("{w}");
    }
    Clients::new(budget.clients, d.client_timeout)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_services_keep_half_the_limit_or_what_their_instances_need() {
        let b = FdBudget::plan(Some(1024), 1);
        assert_eq!((b.reserve, b.clients), (512, 512));
        // 100 instances need 64 + 1600 fds: more than half of 2048.
        let b = FdBudget::plan(Some(2048), 100);
        assert_eq!((b.reserve, b.clients), (1664, 384));
        let b = FdBudget::plan(Some(160), 1);
        assert_eq!((b.reserve, b.clients), (80, 80));
        // The README's example.
        let b = FdBudget::plan(Some(256), 8);
        assert_eq!((b.reserve, b.clients), (192, 64));
    }

    #[test]
    fn a_tight_limit_still_lets_a_few_clients_in() {
        let b = FdBudget::plan(Some(64), 10);
        assert_eq!(b.clients, MIN_CLIENTS);
        let b = FdBudget::plan(Some(1 << 20), u64::MAX);
        assert_eq!(b.reserve, u64::MAX);
        assert_eq!(b.clients, MIN_CLIENTS);
    }

    #[test]
    fn no_limit_leaves_the_caps_alone() {
        let b = FdBudget::plan(None, 100);
        assert_eq!(b.clients, usize::MAX);
        assert_eq!(b.warning(352), None);
    }

    #[test]
    fn the_warning_names_the_limit_and_the_way_out() {
        let b = FdBudget::plan(Some(160), 1);
        let w = b.warning(352).unwrap();
        assert!(w.contains("limit is 160") && w.contains("get 80 connections") && w.contains("LimitNOFILE"), "{w}");
        assert_eq!(FdBudget::plan(Some(1 << 20), 1).warning(352), None);
    }
}
