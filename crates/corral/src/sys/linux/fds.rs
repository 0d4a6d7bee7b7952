//! Owned kernel notification handles: pidfd, eventfd, timerfd, signalled cgroup files, and `poll`.
//!
//! Each handle is an `OwnedFd`, so it is closed on drop.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::Path;
use std::time::Duration;

fn cvt(r: libc::c_int) -> io::Result<libc::c_int> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

/// A pidfd: readable once the process has exited (Linux 5.3+). Holding it
/// also pins the pid: it cannot be reused while the fd is open.
pub(crate) fn pidfd_open(pid: u32) -> io::Result<OwnedFd> {
    // SAFETY: pidfd_open takes plain integers.
    let r = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0) };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the kernel just returned this fd and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(r as RawFd) })
}

/// A directory fd (a cgroup v2 leaf, for `CLONE_INTO_CGROUP`). Opened
/// without following a final symlink: corral made this directory.
pub(crate) fn open_dir(path: &Path) -> io::Result<OwnedFd> {
    use std::os::unix::fs::OpenOptionsExt;
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)?;
    Ok(f.into())
}

/// An eventfd used to wake a thread blocked in `poll`.
#[derive(Debug)]
pub(crate) struct EventFd(OwnedFd);

impl EventFd {
    pub(crate) fn new() -> io::Result<EventFd> {
        // SAFETY: eventfd takes plain integers.
        let fd = cvt(unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) })?;
        // SAFETY: fresh fd owned by nobody else.
        Ok(EventFd(unsafe { OwnedFd::from_raw_fd(fd) }))
    }

    pub(crate) fn signal(&self) {
        let one: u64 = 1;
        // SAFETY: writes 8 bytes from a valid u64.
        unsafe { libc::write(self.0.as_raw_fd(), (&one as *const u64).cast(), 8) };
    }

    /// Clears the counter; returns true if it was signalled.
    pub(crate) fn drain(&self) -> bool {
        read_count(&self.0)
    }

    pub(crate) fn raw(&self) -> RawFd {
        self.0.as_raw_fd()
    }
}

/// Reads the 8-byte count an eventfd or a timerfd holds (which clears
/// it); true if it was above zero. Never blocks: both are non-blocking.
fn read_count(fd: &OwnedFd) -> bool {
    let mut v: u64 = 0;
    // SAFETY: reads 8 bytes into a valid u64.
    let r = unsafe { libc::read(fd.as_raw_fd(), (&mut v as *mut u64).cast(), 8) };
    r == 8 && v > 0
}

/// A one-shot monotonic timer whose fd `poll` reports readable once it
/// has fired.
#[derive(Debug)]
pub(crate) struct TimerFd(OwnedFd);

impl TimerFd {
    pub(crate) fn new() -> io::Result<TimerFd> {
        // SAFETY: timerfd_create takes plain integers.
        let fd = cvt(unsafe { libc::timerfd_create(libc::CLOCK_MONOTONIC, libc::TFD_CLOEXEC | libc::TFD_NONBLOCK) })?;
        // SAFETY: fresh fd owned by nobody else.
        Ok(TimerFd(unsafe { OwnedFd::from_raw_fd(fd) }))
    }

    /// Fires once, `after` from now (at least a nanosecond: zero would
    /// disarm it); a pending expiry is replaced.
    pub(crate) fn arm(&self, after: Duration) -> io::Result<()> {
        let after = after.max(Duration::from_nanos(1));
        let spec = libc::itimerspec {
            it_interval: libc::timespec { tv_sec: 0, tv_nsec: 0 },
            it_value: libc::timespec {
                tv_sec: after.as_secs().min(i32::MAX as u64) as libc::time_t,
                tv_nsec: after.subsec_nanos() as libc::c_long,
            },
        };
        // SAFETY: spec is a valid itimerspec; the old value is not asked for.
        cvt(unsafe { libc::timerfd_settime(self.0.as_raw_fd(), 0, &spec, std::ptr::null_mut()) }).map(drop)
    }

    /// Clears a fired expiry; true if there was one.
    pub(crate) fn drain(&self) -> bool {
        read_count(&self.0)
    }

    pub(crate) fn raw(&self) -> RawFd {
        self.0.as_raw_fd()
    }
}

/// A cgroup file the kernel signals on change (`cgroup.events`,
/// `memory.events`, `pids.events`): `poll` reports POLLPRI after each
/// modification, and a read re-arms it.
///
/// This replaces inotify on purpose: closing an inotify instance that
/// watched a file waits for an SRCU grace period, several milliseconds per
/// group on a busy host.
///
/// Shared, not duplicated, when a pooled leaf hands it on: a `dup` on the
/// spawn path and a `close` on the loop's for nothing.
#[derive(Debug)]
pub(crate) struct Watched(std::sync::Arc<std::fs::File>);

impl Watched {
    pub(crate) fn open(path: &Path) -> io::Result<Watched> {
        let f = std::fs::File::open(path)?;
        let w = Watched(std::sync::Arc::new(f));
        w.rearm();
        Ok(w)
    }

    /// Reads the file from the start, which clears the pending change.
    pub(crate) fn rearm(&self) {
        let mut buf = [0u8; 512];
        // SAFETY: buf is valid for writes of its length.
        unsafe { libc::pread(self.0.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
    }

    /// The value of `key` now, through the fd already open (one `pread`
    /// instead of an open, reads and a close). It re-arms too: only the
    /// one who polls may call it, or a change would go unseen.
    pub(crate) fn read_keyed(&self, key: &str) -> Option<u64> {
        let mut buf = [0u8; 512];
        // SAFETY: buf is valid for writes of its length.
        let n = unsafe { libc::pread(self.0.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
        let text = std::str::from_utf8(buf.get(..usize::try_from(n).ok()?)?).ok()?;
        text.lines().find_map(|l| {
            let (k, v) = l.split_once(' ')?;
            (k == key).then(|| v.trim().parse().ok()).flatten()
        })
    }

    pub(crate) fn raw(&self) -> RawFd {
        self.0.as_raw_fd()
    }

    /// The same open file, for a pooled leaf: it closes with the last
    /// group that holds it.
    pub(crate) fn share(&self) -> Watched {
        Watched(self.0.clone())
    }
}

/// Waits until one of `fds` is ready or `timeout` passes: readable for
/// eventfds and pidfds, changed (POLLPRI) for [`Watched`] files. Returns
/// which are ready, in the same order.
pub(crate) fn poll_ready(fds: &[(RawFd, bool)], timeout: Option<Duration>) -> io::Result<Vec<bool>> {
    let mut pfds: Vec<libc::pollfd> = fds
        .iter()
        .map(|&(fd, watched)| libc::pollfd {
            fd,
            events: if watched { libc::POLLPRI } else { libc::POLLIN },
            revents: 0,
        })
        .collect();
    let ms = match timeout {
        None => -1,
        // Round up so a deadline is never missed by a millisecond and spun on.
        Some(d) => d.as_micros().div_ceil(1000).min(i32::MAX as u128) as i32,
    };
    // SAFETY: pfds is a valid array of pollfd of the given length.
    let r = unsafe { libc::poll(pfds.as_mut_ptr(), pfds.len() as libc::nfds_t, ms) };
    if r < 0 {
        let e = io::Error::last_os_error();
        if e.kind() == io::ErrorKind::Interrupted {
            return Ok(vec![false; fds.len()]);
        }
        return Err(e);
    }
    Ok(pfds.iter().map(|p| p.revents != 0).collect())
}
