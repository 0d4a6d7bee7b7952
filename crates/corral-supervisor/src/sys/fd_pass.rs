//! Unix: short messages with file descriptors attached (`SCM_RIGHTS`), on
//! a `SOCK_SEQPACKET` socket, which keeps each message whole and its fds
//! with it. The log holder (`crate::holder`) and the daemon talk this way.

use rustix::net::{
    self, AddressFamily, RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, SendAncillaryBuffer,
    SendAncillaryMessage, SendFlags, SocketAddrUnix, SocketType,
};
use std::io::{self, IoSlice, IoSliceMut};
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;

/// The longest message (a verb and a group id).
pub(crate) const MAX_MSG: usize = 512;
/// The most fds one message carries (stdout and stderr).
pub(crate) const MAX_FDS: usize = 2;

/// A listening socket at `path` (which must not exist).
pub(crate) fn listen(path: &Path) -> io::Result<OwnedFd> {
    let s = net::socket_with(AddressFamily::UNIX, SocketType::SEQPACKET, net::SocketFlags::CLOEXEC, None)?;
    net::bind(&s, &SocketAddrUnix::new(path)?)?;
    net::listen(&s, 4)?;
    Ok(s)
}

pub(crate) fn accept(listener: &OwnedFd) -> io::Result<OwnedFd> {
    Ok(net::accept_with(listener, net::SocketFlags::CLOEXEC)?)
}

pub(crate) fn connect(path: &Path) -> io::Result<OwnedFd> {
    let s = net::socket_with(AddressFamily::UNIX, SocketType::SEQPACKET, net::SocketFlags::CLOEXEC, None)?;
    net::connect(&s, &SocketAddrUnix::new(path)?)?;
    Ok(s)
}

/// Sends `text` with `fds` attached, whole or not at all.
pub(crate) fn send(sock: &OwnedFd, text: &str, fds: &[BorrowedFd<'_>]) -> io::Result<()> {
    if text.len() > MAX_MSG || fds.len() > MAX_FDS {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "message too long"));
    }
    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(MAX_FDS))];
    let mut control = SendAncillaryBuffer::new(&mut space);
    if !fds.is_empty() && !control.push(SendAncillaryMessage::ScmRights(fds)) {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "too many fds"));
    }
    // NOSIGNAL: a holder or daemon that went away is an error, not a SIGPIPE.
    net::sendmsg(sock, &[IoSlice::new(text.as_bytes())], &mut control, SendFlags::NOSIGNAL)?;
    Ok(())
}

/// The next message and its fds (close-on-exec); `None` at end of stream.
pub(crate) fn recv(sock: &OwnedFd) -> io::Result<Option<(String, Vec<OwnedFd>)>> {
    let mut buf = [0u8; MAX_MSG];
    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(MAX_FDS))];
    let mut control = RecvAncillaryBuffer::new(&mut space);
    let got = net::recvmsg(sock, &mut [IoSliceMut::new(&mut buf)], &mut control, RecvFlags::CMSG_CLOEXEC)?;
    let mut fds = Vec::new();
    for m in control.drain() {
        if let RecvAncillaryMessage::ScmRights(rights) = m {
            fds.extend(rights);
        }
    }
    if got.bytes == 0 && fds.is_empty() {
        return Ok(None);
    }
    let text = String::from_utf8_lossy(&buf[..got.bytes.min(MAX_MSG)]).into_owned();
    Ok(Some((text, fds)))
}

/// True once every writer of the pipe whose read end is `fd` is gone.
pub(crate) fn hung_up(fd: &OwnedFd) -> bool {
    let mut p = [rustix::event::PollFd::new(fd, rustix::event::PollFlags::IN)];
    match rustix::event::poll(&mut p, Some(&rustix::event::Timespec { tv_sec: 0, tv_nsec: 0 })) {
        Ok(_) => p[0].revents().contains(rustix::event::PollFlags::HUP),
        Err(_) => false,
    }
}

/// Waits up to `ms` for `fd` to be readable (a connection to accept).
pub(crate) fn readable(fd: &impl AsFd, ms: i64) -> bool {
    let mut p = [rustix::event::PollFd::new(fd, rustix::event::PollFlags::IN)];
    let t = rustix::event::Timespec { tv_sec: ms / 1000, tv_nsec: (ms % 1000) * 1_000_000 };
    rustix::event::poll(&mut p, Some(&t)).is_ok_and(|n| n > 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    #[test]
    fn a_message_carries_its_fds_and_a_closed_peer_ends_the_stream() {
        let (a, b) =
            net::socketpair(AddressFamily::UNIX, SocketType::SEQPACKET, net::SocketFlags::CLOEXEC, None).unwrap();
        let (mut r, mut w) = std::io::pipe().unwrap();
        send(&a, "put 1-2", &[r.as_fd(), w.as_fd()]).unwrap();
        let (text, fds) = recv(&b).unwrap().unwrap();
        assert_eq!((text.as_str(), fds.len()), ("put 1-2", 2));
        // The passed write end writes into the same pipe.
        std::fs::File::from(fds.into_iter().nth(1).unwrap()).write_all(b"x").unwrap();
        let mut one = [0u8; 1];
        r.read_exact(&mut one).unwrap();
        assert_eq!(&one, b"x");
        drop(a);
        assert!(recv(&b).unwrap().is_none());
        w.flush().unwrap();
    }
}
