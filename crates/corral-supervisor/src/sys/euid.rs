//! The user the daemon runs as: who owns its local socket and private
//! files, and whose account a service without `user` gets.

/// The daemon's effective uid.
pub(crate) fn euid() -> u32 {
    rustix::process::geteuid().as_raw()
}
