//! The macOS half of the one event loop: one kqueue for every group of
//! the process.
//!
//! Each group has a token of its own. Its members are watched with
//! `EVFILT_PROC` (`NOTE_EXIT | NOTE_FORK`, the token in `udata`), and its
//! wake-ups are an `EVFILT_USER` event whose ident is the token; token 0
//! wakes the loop itself. Deadlines are the `kevent` timeout.
//!
//! Traps:
//! - `EVFILT_PROC` follows one process, not its children (`NOTE_TRACK` is
//!   gone from macOS): a fork only says "look again". The group then lists
//!   its process group and watches every member not yet watched, until a
//!   pass finds none (a member that forked before it was watched is found
//!   by the next pass).
//! - Watching a process that already exited fails with `ESRCH`: it is
//!   gone, which is news, not an error.
//! - A process's knote goes with the process; a group's `EVFILT_USER`
//!   knote does not, so the group deletes it when it drops. Tokens are
//!   never reused: an event for a group that ended names no group and is
//!   dropped.

use super::Group;
use crate::sys::{Poll, Wake};
use std::collections::HashMap;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

/// The token of the loop's own wake-ups; groups' tokens start above it.
const LOOP: usize = 0;

/// A token no group of this process had before.
pub(super) fn new_token() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(LOOP + 1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// The kqueue every group of this process uses, created on first use and
/// kept for the life of the process.
fn queue() -> io::Result<RawFd> {
    static QUEUE: OnceLock<Result<OwnedFd, i32>> = OnceLock::new();
    QUEUE
        .get_or_init(|| {
            // SAFETY: kqueue takes no arguments.
            let fd = unsafe { libc::kqueue() };
            if fd < 0 {
                return Err(io::Error::last_os_error().raw_os_error().unwrap_or(0));
            }
            // SAFETY: a fresh fd owned by nobody else; FD_CLOEXEC keeps it
            // out of every child (kqueues are not inherited anyway).
            unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
            // SAFETY: as above.
            Ok(unsafe { OwnedFd::from_raw_fd(fd) })
        })
        .as_ref()
        .map(|fd| fd.as_raw_fd())
        .map_err(|code| io::Error::from_raw_os_error(*code))
}

fn event(ident: usize, filter: i16, flags: u16, fflags: u32, token: usize) -> libc::kevent {
    libc::kevent { ident, filter, flags, fflags, data: 0, udata: token as *mut libc::c_void }
}

/// Applies one change to the queue.
fn change(ev: libc::kevent) -> io::Result<()> {
    let kq = queue()?;
    // SAFETY: one valid change, no event list, no timeout (changes only).
    let r = unsafe { libc::kevent(kq, &ev, 1, std::ptr::null_mut(), 0, std::ptr::null()) };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Registers the group's wake-up event.
pub(super) fn add_wake(token: usize) -> io::Result<()> {
    change(event(token, libc::EVFILT_USER, libc::EV_ADD | libc::EV_CLEAR, 0, token))
}

/// Deletes the group's wake-up event.
pub(super) fn remove_wake(token: usize) {
    let _ = change(event(token, libc::EVFILT_USER, libc::EV_DELETE, 0, token));
}

/// Watches `pid`'s forks and exit for the group `token`; false when it is
/// already gone.
pub(super) fn watch(pid: u32, token: usize) -> io::Result<bool> {
    let flags = libc::EV_ADD | libc::EV_CLEAR;
    match change(event(pid as usize, libc::EVFILT_PROC, flags, libc::NOTE_EXIT | libc::NOTE_FORK, token)) {
        Ok(()) => Ok(true),
        Err(e) if e.raw_os_error() == Some(libc::ESRCH) => Ok(false),
        Err(e) => Err(e),
    }
}

/// Wakes the event loop for one group (or, with [`LOOP`], for itself).
pub(super) struct TokenWake(pub(super) usize);

impl Wake for TokenWake {
    fn wake(&self) {
        let _ = change(event(self.0, libc::EVFILT_USER, 0, libc::NOTE_TRIGGER, self.0));
    }
}

pub(crate) struct Poller {
    kq: RawFd,
}

impl Poll for Poller {
    fn new() -> io::Result<Poller> {
        add_wake(LOOP)?;
        Ok(Poller { kq: queue()? })
    }

    fn waker(&self) -> Arc<dyn Wake> {
        Arc::new(TokenWake(LOOP))
    }

    fn wait(&mut self, groups: &[&Group], timeout: Option<Duration>) -> io::Result<Vec<bool>> {
        let ts = timeout.map(|t| {
            // Round up, so a deadline is never missed by a millisecond and spun on.
            let t = Duration::from_millis(t.as_micros().div_ceil(1000).min(u128::from(u32::MAX)) as u64);
            libc::timespec { tv_sec: t.as_secs() as libc::time_t, tv_nsec: t.subsec_nanos() as libc::c_long }
        });
        let tp = ts.as_ref().map_or(std::ptr::null(), |t| t as *const libc::timespec);
        // SAFETY: kevent is plain data; zeroes are valid.
        let mut evs: [libc::kevent; 64] = unsafe { std::mem::zeroed() };
        // SAFETY: no changes; `evs` is writable for its length; `tp` is
        // null or points at `ts`, which outlives the call.
        let n = unsafe { libc::kevent(self.kq, std::ptr::null(), 0, evs.as_mut_ptr(), evs.len() as i32, tp) };
        let mut news = vec![false; groups.len()];
        if n < 0 {
            let e = io::Error::last_os_error();
            return if e.kind() == io::ErrorKind::Interrupted { Ok(news) } else { Err(e) };
        }
        if n == 0 {
            return Ok(news);
        }
        let by_token: HashMap<usize, usize> = groups.iter().enumerate().map(|(i, g)| (g.token(), i)).collect();
        for ev in &evs[..n as usize] {
            let token = ev.udata as usize;
            let Some(&i) = by_token.get(&token) else { continue };
            if ev.filter == libc::EVFILT_PROC && ev.fflags & libc::NOTE_EXIT != 0 {
                groups[i].heard_exit(ev.ident as u32);
            }
            news[i] = true;
        }
        Ok(news)
    }
}
