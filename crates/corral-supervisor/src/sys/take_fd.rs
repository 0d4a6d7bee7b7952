//! Taking a listening socket back from a running service (Linux).
//!
//! A daemon that dies leaves the sockets of socket activation in the
//! services it started (fd 3 on): the next daemon cannot bind those
//! addresses again while they listen there, and it must not, or the
//! service it takes back would accept on a socket nobody passes on. So it
//! copies the service's own listener with `pidfd_getfd` (Linux 5.6, the
//! right to ptrace the leader: the daemon is root or the service's user).

use std::io;
use std::os::fd::OwnedFd;

/// A copy of fd `fd` of process `pid`, when it is a listening socket.
pub(crate) fn take_listener(pid: u32, fd: i32) -> io::Result<OwnedFd> {
    let pid = rustix::process::Pid::from_raw(pid as i32).ok_or_else(|| io::Error::other("pid 0"))?;
    let pidfd = rustix::process::pidfd_open(pid, rustix::process::PidfdFlags::empty())?;
    let copy = rustix::process::pidfd_getfd(&pidfd, fd, rustix::process::PidfdGetfdFlags::empty())?;
    if !rustix::net::sockopt::socket_acceptconn(&copy)? {
        return Err(io::Error::other(format!("fd {fd} of pid {pid:?} does not listen")));
    }
    Ok(copy)
}
