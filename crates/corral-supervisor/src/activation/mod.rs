//! Socket activation: `sockets = [...]` are bound by the daemon, passed to
//! every run of the service from fd 3 with `LISTEN_FDS`, `LISTEN_PID` and
//! `LISTEN_FDNAMES` (systemd's `sd_listen_fds(3)` convention), and held
//! by the daemon across restarts, rollouts and reloads that keep them. A
//! client that connects while the service restarts waits in the listen
//! backlog instead of being refused.
//!
//! Binding happens once the config is checked and before anything
//! starts (and, for a reload, before anything changes): an address in use
//! is an error with the entry's `file:line:column`, and nothing starts.
//! Unix only: the config refuses `sockets` on Windows.

mod addr;
mod registry;

pub use addr::{ListenAddr, ListenSpec, FORMS, MAX_SOCKETS, MAX_UNIX_PATH};
pub(crate) use registry::Registry;
