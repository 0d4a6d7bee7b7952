//! Signals sent to `corral run` itself are forwarded to the whole group.
//!
//! The leader runs in its own process group, so a Ctrl-C on the terminal
//! reaches only corral; corral passes it on to every member (the first
//! time), and kills the group if it comes again. On Windows the job is
//! closed with corral (KILL_ON_JOB_CLOSE), so nothing needs forwarding.

use corral::Group;
use std::sync::Arc;

/// Undoes what corral's own parent set up for it, before anything else
/// runs (every verb, before any thread): an ignored SIGCHLD makes the
/// kernel reap children at once, so no exit status can be read and a
/// `waitpid` loop spins (`trap '' CHLD; exec corral run ...`, GNU
/// `timeout` resets it too); a blocked signal mask would keep Ctrl-C and
/// SIGTERM from ever reaching the handlers of `run` and `up`.
#[cfg(unix)]
pub fn reset_inherited() {
    // SAFETY: plain calls on valid, initialised values; no thread exists
    // yet, so the mask set here is the one every later thread inherits.
    unsafe {
        let mut old: libc::sigaction = std::mem::zeroed();
        if libc::sigaction(libc::SIGCHLD, std::ptr::null(), &mut old) == 0 && old.sa_sigaction == libc::SIG_IGN {
            libc::signal(libc::SIGCHLD, libc::SIG_DFL);
        }
        let mut empty: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut empty);
        libc::pthread_sigmask(libc::SIG_SETMASK, &empty, std::ptr::null_mut());
    }
}

/// Windows has no signal dispositions to inherit.
#[cfg(not(unix))]
pub fn reset_inherited() {}

pub struct Forwarder {
    #[cfg(unix)]
    read_fd: i32,
}

#[cfg(unix)]
mod imp {
    use std::sync::atomic::{AtomicI32, Ordering};

    pub static WRITE_FD: AtomicI32 = AtomicI32::new(-1);
    pub const FORWARDED: [i32; 4] = [libc::SIGINT, libc::SIGTERM, libc::SIGHUP, libc::SIGQUIT];

    pub extern "C" fn on_signal(sig: libc::c_int) {
        let fd = WRITE_FD.load(Ordering::Relaxed);
        let b = sig as u8;
        // SAFETY: write(2) is async-signal-safe; b lives for the call.
        unsafe { libc::write(fd, (&b as *const u8).cast(), 1) };
    }
}

impl Forwarder {
    /// Installs the handlers before the group exists, so a signal that
    /// arrives during the spawn is kept, not lost.
    #[cfg(unix)]
    pub fn install() -> Forwarder {
        use std::sync::atomic::Ordering;
        let mut fds = [-1i32; 2];
        // SAFETY: fds is valid for two ints.
        if unsafe { libc::pipe(fds.as_mut_ptr()) } != 0 {
            return Forwarder { read_fd: -1 };
        }
        for fd in fds {
            // SAFETY: fd is a fresh pipe end; the command must not inherit it.
            unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
        }
        imp::WRITE_FD.store(fds[1], Ordering::Relaxed);
        for sig in imp::FORWARDED {
            // SAFETY: a zeroed sigaction with a plain handler is valid; the
            // handler only calls write(2).
            unsafe {
                let mut sa: libc::sigaction = std::mem::zeroed();
                sa.sa_sigaction = imp::on_signal as *const () as usize;
                sa.sa_flags = libc::SA_RESTART;
                libc::sigemptyset(&mut sa.sa_mask);
                libc::sigaction(sig, &sa, std::ptr::null_mut());
            }
        }
        Forwarder { read_fd: fds[0] }
    }

    #[cfg(not(unix))]
    pub fn install() -> Forwarder {
        Forwarder {}
    }

    /// Forwards from now on, on a background thread.
    #[cfg(unix)]
    pub fn forward_to(self, group: Arc<Group>, grace: std::time::Duration) {
        let fd = self.read_fd;
        if fd < 0 {
            return;
        }
        std::thread::spawn(move || {
            let mut count = 0;
            loop {
                let mut b = 0u8;
                // SAFETY: reads one byte into b.
                let r = unsafe { libc::read(fd, (&mut b as *mut u8).cast(), 1) };
                if r <= 0 {
                    return;
                }
                count += 1;
                if count == 1 {
                    let _ = group.signal(corral::Signal::from_raw(b as i32));
                    // The group ends its own way, within the grace period.
                    let g = group.clone();
                    std::thread::spawn(move || {
                        if g.wait_timeout(grace).is_none() {
                            let _ = g.kill();
                        }
                    });
                } else {
                    let _ = group.kill();
                }
            }
        });
    }

    #[cfg(not(unix))]
    pub fn forward_to(self, _group: Arc<Group>, _grace: std::time::Duration) {}
}
