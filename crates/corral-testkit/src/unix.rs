//! Unix side: SIGTERM, setsid, and the fork-based storms.
//!
//! The storms call `libc::fork` directly. The testkit never starts a thread on
//! Unix, so forking is sound; the forked children then use only
//! async-signal-safe calls (dup2, clock_gettime, nanosleep, fork, _exit) and
//! never return into Rust code that could allocate or unwind.

use std::io;
use std::os::unix::process::CommandExt;
use std::process::Command;
use std::time::{Duration, Instant};

const NANOS: i64 = 1_000_000_000;

pub fn init(ignore_term: bool, _deadline: Instant) {
    if ignore_term {
        // SAFETY: SIG_IGN installs no handler code. Unlike a handler, an
        // ignored disposition survives fork and exec, so every descendant
        // ignores SIGTERM too.
        unsafe {
            libc::signal(libc::SIGTERM, libc::SIG_IGN);
        }
    }
}

/// Makes the spawned child call setsid() before exec, leaving our session and
/// process group, as a daemon would.
pub fn escape(cmd: &mut Command) {
    // SAFETY: the closure runs between fork and exec and calls only setsid,
    // which is async-signal-safe, and reads errno.
    unsafe {
        cmd.pre_exec(|| {
            if libc::setsid() == -1 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// Points stdin, stdout and stderr at /dev/null, so that this process holds
/// no pipe of its parent once it has reported.
pub fn quiet_stdio() {
    // SAFETY: open and dup2 on a literal path and our own descriptors; the
    // std handles keep using fds 0-2, which now refer to /dev/null.
    unsafe {
        let null = libc::open(c"/dev/null".as_ptr(), libc::O_RDWR | libc::O_CLOEXEC);
        if null >= 0 {
            for fd in 0..3 {
                libc::dup2(null, fd);
            }
            libc::close(null);
        }
    }
}

/// Sleeps until `deadline`, reaping exited children on the way so that they do
/// not linger as zombies.
pub fn linger(deadline: Instant) {
    loop {
        reap();
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return;
        }
        std::thread::sleep(left.min(Duration::from_millis(50)));
    }
}

fn reap() {
    // Bounded: there are never more than a few thousand children to reap.
    for _ in 0..4096 {
        // SAFETY: waitpid with a null status pointer only reaps.
        let pid = unsafe { libc::waitpid(-1, std::ptr::null_mut(), libc::WNOHANG) };
        if pid <= 0 {
            return;
        }
    }
}

/// After ready: forks `n` children in a tight loop, each living 2 s (or until
/// the deadline, if sooner). Returns how many forks succeeded and failed.
pub fn fork_loop(n: u32, deadline: Instant) -> (u32, u32) {
    let f = Forker::new(deadline.min(Instant::now() + Duration::from_secs(2)));
    let (mut forked, mut failed) = (0, 0);
    for _ in 0..n {
        // SAFETY: see the module comment; the child only sleeps and exits.
        match unsafe { f.fork() } {
            -1 => failed += 1,
            // SAFETY: as above, in the child.
            0 => unsafe { f.sleep_and_exit() },
            _ => forked += 1,
        }
    }
    f.close();
    (forked, failed)
}

/// After ready: a moving target. The top stays; a forked child starts a
/// chain where each link forks the next and exits, `n` links, 1 ms apart. The
/// last link lives until the deadline.
pub fn fork_chain(n: u32, deadline: Instant) {
    let f = Forker::new(deadline);
    // SAFETY: see the module comment.
    if unsafe { f.fork() } == 0 {
        // SAFETY: in the child: only async-signal-safe calls follow.
        unsafe { f.chain(n - 1) }
    }
    f.close();
}

/// After ready: every process forks two children which do the same, `depth`
/// levels deep, then sleeps until the deadline. A failed fork is skipped.
pub fn fork_bomb(depth: u32, deadline: Instant) {
    let f = Forker::new(deadline);
    // SAFETY: see the module comment.
    unsafe { f.bomb(depth) };
    f.close();
}

/// After ready: a tree that keeps growing for a while, for tests that
/// take it over mid-growth. Every process forks 3 children, 20 ms apart,
/// `depth` levels deep, then sleeps until the deadline.
pub fn fork_paced(depth: u32, deadline: Instant) {
    let f = Forker::new(deadline);
    // SAFETY: see the module comment.
    unsafe { f.paced(depth) };
    f.close();
}

/// Everything a forked child needs, prepared before the fork because the child
/// may not allocate or open files through std.
struct Forker {
    null: libc::c_int,
    /// CLOCK_MONOTONIC, in nanoseconds.
    deadline: i64,
}

impl Forker {
    fn new(deadline: Instant) -> Forker {
        let left = deadline.saturating_duration_since(Instant::now());
        // SAFETY: opening a literal path; -1 on failure is handled in fork().
        let null = unsafe { libc::open(c"/dev/null".as_ptr(), libc::O_RDWR | libc::O_CLOEXEC) };
        // `left` is at most a day (see args), far from overflowing.
        let left = i64::try_from(left.as_nanos()).unwrap_or(i64::MAX / 2);
        Forker { null, deadline: monotonic_nanos() + left }
    }

    fn close(self) {
        if self.null >= 0 {
            // SAFETY: our own descriptor, closed once.
            unsafe { libc::close(self.null) };
        }
    }

    /// Forks; the child points its stdio at /dev/null so that it never holds
    /// the top's stdout open. Returns fork's result.
    ///
    /// # Safety
    /// The caller must be single-threaded, and the child must then call only
    /// async-signal-safe functions.
    unsafe fn fork(&self) -> libc::pid_t {
        // SAFETY: guaranteed by the caller.
        let pid = unsafe { libc::fork() };
        if pid == 0 && self.null >= 0 {
            for fd in 0..3 {
                // SAFETY: dup2 is async-signal-safe.
                unsafe { libc::dup2(self.null, fd) };
            }
        }
        pid
    }

    /// # Safety
    /// As for `fork`.
    unsafe fn bomb(&self, levels: u32) {
        if levels == 0 {
            return;
        }
        for _ in 0..2 {
            // SAFETY: guaranteed by the caller.
            if unsafe { self.fork() } == 0 {
                // SAFETY: in the child, which recurses with one level less and
                // then never returns.
                unsafe {
                    self.bomb(levels - 1);
                    self.sleep_and_exit();
                }
            }
        }
    }

    /// # Safety
    /// As for `fork`.
    unsafe fn paced(&self, levels: u32) {
        if levels == 0 {
            return;
        }
        for _ in 0..3 {
            nap(20_000_000);
            // SAFETY: guaranteed by the caller.
            if unsafe { self.fork() } == 0 {
                // SAFETY: in the child, which recurses with one level less and
                // then never returns.
                unsafe {
                    self.paced(levels - 1);
                    self.sleep_and_exit();
                }
            }
        }
    }

    /// One link of the chain: `left` more links follow this one.
    ///
    /// # Safety
    /// Only in a forked child, as for `fork`.
    unsafe fn chain(&self, left: u32) -> ! {
        for _ in 0..left {
            nap(1_000_000);
            if self.deadline <= monotonic_nanos() {
                break;
            }
            // SAFETY: guaranteed by the caller.
            match unsafe { self.fork() } {
                // The new child is the next link: go round again.
                0 => continue,
                // Out of processes: this link becomes the last one.
                -1 => break,
                // SAFETY: _exit is async-signal-safe and runs no Rust code.
                _ => unsafe { libc::_exit(0) },
            }
        }
        // SAFETY: guaranteed by the caller.
        unsafe { self.sleep_and_exit() }
    }

    /// # Safety
    /// Only in a forked child, as for `fork`.
    unsafe fn sleep_and_exit(&self) -> ! {
        // Bounded: each round sleeps the whole remainder unless a signal
        // interrupts it, and a signal storm merely ends the sleep early.
        for _ in 0..10_000 {
            let left = self.deadline - monotonic_nanos();
            if left <= 0 {
                break;
            }
            nap(left);
        }
        // SAFETY: _exit is async-signal-safe; no destructors or atexit run.
        unsafe { libc::_exit(0) }
    }
}

/// Sleeps `nanos` with nanosleep, which is async-signal-safe
/// (std::thread::sleep is not promised to be).
fn nap(nanos: i64) {
    let ts = libc::timespec { tv_sec: (nanos / NANOS) as _, tv_nsec: (nanos % NANOS) as _ };
    // SAFETY: a valid timespec and a null remainder pointer.
    unsafe { libc::nanosleep(&ts, std::ptr::null_mut()) };
}

/// CLOCK_MONOTONIC in nanoseconds (the clock std's Instant uses on Unix).
// time_t and c_long are i64 here but i32 on 32-bit targets.
#[allow(clippy::useless_conversion)]
fn monotonic_nanos() -> i64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime writes into our timespec; it is async-signal-safe.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    i64::from(ts.tv_sec) * NANOS + i64::from(ts.tv_nsec)
}
