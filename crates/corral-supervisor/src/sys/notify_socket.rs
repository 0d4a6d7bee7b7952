//! The datagram socket of `NOTIFY_SOCKET` (Linux): abstract, autobound
//! (the kernel picks a free name, so no one can squat it first), with
//! `SO_PASSCRED` so that every datagram carries its sender's pid as the
//! kernel saw it (`SCM_CREDENTIALS`).
//!
//! Traps: a sender may attach fds (`SCM_RIGHTS`, systemd's `FDSTORE=1`);
//! they are closed at once. A datagram longer than the buffer is flagged
//! `MSG_TRUNC` and dropped whole by the caller.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

/// A bound, non-blocking, close-on-exec notification socket.
pub(crate) struct NotifySocket {
    fd: OwnedFd,
    /// `@` and the abstract name, as `NOTIFY_SOCKET` spells it.
    name: String,
}

/// One datagram received.
#[derive(Debug)]
pub(crate) struct Datagram {
    pub len: usize,
    /// Longer than the buffer (the text is cut).
    pub truncated: bool,
    /// The sender's pid, when the kernel gave credentials.
    pub pid: Option<u32>,
}

fn cvt(r: libc::c_int) -> io::Result<libc::c_int> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

impl NotifySocket {
    pub(crate) fn bind() -> io::Result<NotifySocket> {
        // SAFETY: plain socket(2) call.
        let fd = cvt(unsafe {
            libc::socket(libc::AF_UNIX, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK, 0)
        })?;
        // SAFETY: socket just returned this fresh fd.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        let on: libc::c_int = 1;
        // SAFETY: a c_int option value that lives for the call.
        cvt(unsafe {
            libc::setsockopt(
                fd.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_PASSCRED,
                (&on as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        })?;
        // SAFETY: a zeroed sockaddr_un is valid.
        let mut addr: libc::sockaddr_un = unsafe { std::mem::zeroed() };
        addr.sun_family = libc::AF_UNIX as libc::sa_family_t;
        // Only the family: the kernel autobinds a free abstract name.
        let family_only = std::mem::size_of::<libc::sa_family_t>() as libc::socklen_t;
        // SAFETY: addr is valid for the length given.
        cvt(unsafe { libc::bind(fd.as_raw_fd(), (&addr as *const libc::sockaddr_un).cast(), family_only) })?;
        let mut len = std::mem::size_of::<libc::sockaddr_un>() as libc::socklen_t;
        // SAFETY: addr and len are valid for writes.
        cvt(unsafe { libc::getsockname(fd.as_raw_fd(), (&mut addr as *mut libc::sockaddr_un).cast(), &mut len) })?;
        let path_len = (len as usize).saturating_sub(family_only as usize);
        // An abstract name starts with a NUL byte; the rest is the name.
        let bytes: Vec<u8> = addr.sun_path[..path_len.min(addr.sun_path.len())].iter().map(|c| *c as u8).collect();
        if bytes.first() != Some(&0) || bytes.len() < 2 {
            return Err(io::Error::other("the kernel did not autobind an abstract name"));
        }
        let name = format!("@{}", String::from_utf8_lossy(&bytes[1..]));
        Ok(NotifySocket { fd, name })
    }

    /// `NOTIFY_SOCKET`'s value.
    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    /// Receives one datagram into `buf`; `WouldBlock` when none is queued.
    pub(crate) fn recv(&self, buf: &mut [u8]) -> io::Result<Datagram> {
        // Room for the credentials and a few fds (closed below).
        let mut control = [0u64; 16];
        let mut iov = libc::iovec { iov_base: buf.as_mut_ptr().cast(), iov_len: buf.len() };
        // SAFETY: a zeroed msghdr is valid; its pointers are set below.
        let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control.as_mut_ptr().cast();
        msg.msg_controllen = std::mem::size_of_val(&control) as _;
        // SAFETY: msg points at buffers that live for the call.
        let n = unsafe { libc::recvmsg(self.fd.as_raw_fd(), &mut msg, libc::MSG_CMSG_CLOEXEC | libc::MSG_TRUNC) };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        let mut pid = None;
        // SAFETY: the CMSG macros walk the control buffer the kernel filled.
        unsafe {
            let mut c = libc::CMSG_FIRSTHDR(&msg);
            while !c.is_null() {
                let data = libc::CMSG_DATA(c);
                let data_len = ((*c).cmsg_len as usize).saturating_sub(libc::CMSG_LEN(0) as usize);
                if (*c).cmsg_level == libc::SOL_SOCKET {
                    if (*c).cmsg_type == libc::SCM_CREDENTIALS && data_len >= std::mem::size_of::<libc::ucred>() {
                        let cred: libc::ucred = std::ptr::read_unaligned(data.cast());
                        pid = u32::try_from(cred.pid).ok().filter(|p| *p > 0);
                    } else if (*c).cmsg_type == libc::SCM_RIGHTS {
                        for i in 0..data_len / std::mem::size_of::<RawFd>() {
                            let fd: RawFd = std::ptr::read_unaligned(data.cast::<RawFd>().add(i));
                            drop(OwnedFd::from_raw_fd(fd));
                        }
                    }
                }
                c = libc::CMSG_NXTHDR(&msg, c);
            }
        }
        let len = n as usize;
        Ok(Datagram {
            len: len.min(buf.len()),
            truncated: len > buf.len() || msg.msg_flags & libc::MSG_TRUNC != 0,
            pid,
        })
    }
}

impl AsRawFd for NotifySocket {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::linux::net::SocketAddrExt;
    use std::os::unix::net::{SocketAddr, UnixDatagram};

    #[test]
    fn a_datagram_arrives_with_its_senders_pid_and_a_long_one_is_flagged() {
        let s = NotifySocket::bind().unwrap();
        assert!(s.name().starts_with('@') && s.name().len() > 1, "{}", s.name());
        let addr = SocketAddr::from_abstract_name(&s.name().as_bytes()[1..]).unwrap();
        let c = UnixDatagram::unbound().unwrap();
        c.send_to_addr(b"READY=1", &addr).unwrap();
        c.send_to_addr(&[b'x'; 100], &addr).unwrap();
        let mut buf = [0u8; 64];
        let d = s.recv(&mut buf).unwrap();
        assert_eq!(&buf[..d.len], b"READY=1");
        assert!(!d.truncated);
        assert_eq!(d.pid, Some(std::process::id()));
        let d = s.recv(&mut buf).unwrap();
        assert!(d.truncated);
        assert_eq!(s.recv(&mut buf).unwrap_err().kind(), io::ErrorKind::WouldBlock);
    }
}
