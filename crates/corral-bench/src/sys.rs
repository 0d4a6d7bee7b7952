//! The Linux primitives every measure shares: pidfds to time deaths, targeted
//! reaping, memory from `smaps_rollup`, a process's CPU clock.
//!
//! Deaths are timed with `poll` on a pidfd per process, which becomes
//! readable the moment that process exits, so a kill call that returns early
//! (or late) does not skew the figure. Processes are only ever signalled
//! through their pidfd, so a recycled pid can never be hit.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::{Duration, Instant};

/// A process, held by a pidfd.
#[derive(Debug)]
pub struct Pidfd {
    pub pid: u32,
    fd: OwnedFd,
}

impl Pidfd {
    pub fn open(pid: u32) -> io::Result<Pidfd> {
        // SAFETY: pidfd_open takes a pid and flags and returns a new fd or -1.
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: the fd was just returned to us and is owned by nobody else.
        Ok(Pidfd { pid, fd: unsafe { OwnedFd::from_raw_fd(fd as i32) } })
    }

    /// Sends `sig` to exactly this process (never to a recycled pid).
    pub fn signal(&self, sig: i32) -> io::Result<()> {
        // SAFETY: a valid pidfd, a signal number, no siginfo, no flags.
        let r =
            unsafe { libc::syscall(libc::SYS_pidfd_send_signal, self.fd.as_raw_fd(), sig, std::ptr::null::<u8>(), 0) };
        if r < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// True once the process has exited (zombie or reaped).
    pub fn exited(&self) -> bool {
        let mut p = libc::pollfd { fd: self.fd.as_raw_fd(), events: libc::POLLIN, revents: 0 };
        // SAFETY: one valid pollfd, no wait.
        let n = unsafe { libc::poll(&mut p, 1, 0) };
        n > 0
    }

    /// Waits (in `poll`, no spinning) at most `timeout` for the process to
    /// exit; true once it has.
    pub fn wait_exit(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let ms = left.as_millis().clamp(0, i32::MAX as u128) as i32;
            let mut p = libc::pollfd { fd: self.fd.as_raw_fd(), events: libc::POLLIN, revents: 0 };
            // SAFETY: one valid pollfd.
            let n = unsafe { libc::poll(&mut p, 1, ms) };
            if n > 0 {
                return true;
            }
            if n == 0 || left.is_zero() {
                return false;
            }
        }
    }

    /// Reaps the process if it is our zombie child; anything else is a no-op.
    pub fn reap(&self) {
        // SAFETY: waitid on our own pidfd with a zeroed siginfo to fill.
        unsafe {
            let mut info: libc::siginfo_t = std::mem::zeroed();
            libc::waitid(libc::P_PIDFD, self.fd.as_raw_fd() as libc::id_t, &mut info, libc::WEXITED | libc::WNOHANG);
        }
    }
}

/// Opens a pidfd for every pid; a pid that is already gone is an error,
/// because the tree it belongs to was supposed to be alive.
pub fn open_all(pids: &[u32]) -> io::Result<Vec<Pidfd>> {
    pids.iter()
        .map(|&p| Pidfd::open(p).map_err(|e| io::Error::new(e.kind(), format!("pidfd_open({p}): {e}"))))
        .collect()
}

/// What a wait for deaths saw.
#[derive(Debug)]
pub struct Deaths {
    /// From `start` to the last death seen (None if nothing died).
    pub last: Option<Duration>,
    /// The ones still alive when the wait gave up.
    pub survivors: Vec<Pidfd>,
}

/// Waits until every process has exited, or none has exited for `quiet`,
/// or `limit` has passed since `start`. Death times are taken when `poll`
/// reports them, measured from `start`.
pub fn wait_deaths(fds: Vec<Pidfd>, start: Instant, quiet: Duration, limit: Duration) -> Deaths {
    wait_deaths_while(fds, start, || false, quiet, limit)
}

/// [`wait_deaths`], where the quiet period only starts counting once
/// `busy()` is false (say, once a stop command has returned).
pub fn wait_deaths_while(
    mut fds: Vec<Pidfd>,
    start: Instant,
    mut busy: impl FnMut() -> bool,
    quiet: Duration,
    limit: Duration,
) -> Deaths {
    let mut last = None;
    let mut quiet_from = Instant::now();
    while !fds.is_empty() {
        let now = Instant::now();
        if busy() {
            quiet_from = now;
        }
        let mut until = (quiet_from + quiet).min(start + limit);
        if now >= until {
            break;
        }
        if now < start + limit && busy() {
            until = until.min(now + Duration::from_millis(5));
        }
        let mut polls: Vec<libc::pollfd> =
            fds.iter().map(|f| libc::pollfd { fd: f.fd.as_raw_fd(), events: libc::POLLIN, revents: 0 }).collect();
        let ms = (until - now).as_millis().clamp(1, i32::MAX as u128) as i32;
        // SAFETY: a valid array of pollfds of the given length.
        let n = unsafe { libc::poll(polls.as_mut_ptr(), polls.len() as libc::nfds_t, ms) };
        let seen = Instant::now();
        if n < 0 {
            if io::Error::last_os_error().kind() == io::ErrorKind::Interrupted {
                continue;
            }
            break;
        }
        if n == 0 {
            continue;
        }
        let mut i = 0;
        fds.retain(|_| {
            let gone = polls[i].revents != 0;
            i += 1;
            !gone
        });
        last = Some(seen - start);
        quiet_from = seen;
    }
    Deaths { last, survivors: fds }
}

/// SIGKILLs every process through its pidfd, waits (bounded) until all have
/// exited, and reaps those that are our children. The clean-up after a
/// contender that left survivors.
pub fn kill_and_reap(fds: &[Pidfd]) {
    for f in fds {
        let _ = f.signal(libc::SIGKILL);
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    while fds.iter().any(|f| !f.exited()) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(2));
    }
    for f in fds {
        f.reap();
    }
}

/// Orphans of every tree are re-parented to this process instead of PID 1,
/// which on these machines does not reap them. corral makes its own process
/// a subreaper on first use anyway; doing it up front gives every contender
/// the same conditions.
pub fn become_subreaper() {
    // SAFETY: prctl with integer arguments.
    unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
}

/// Trees of 1000 processes need 1000 pidfds at once.
pub fn raise_nofile() {
    // SAFETY: getrlimit/setrlimit on a local struct.
    unsafe {
        let mut r: libc::rlimit = std::mem::zeroed();
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) == 0 && r.rlim_cur < r.rlim_max {
            r.rlim_cur = r.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &r);
        }
    }
}

/// Reaps every zombie child of this process. Only called where no library
/// in this process expects to reap a child of its own.
pub fn reap_zombie_children() {
    loop {
        // SAFETY: waitpid with a null status pointer.
        let r = unsafe { libc::waitpid(-1, std::ptr::null_mut(), libc::WNOHANG) };
        if r <= 0 {
            break;
        }
    }
}

/// The number of threads of `pid`, from `/proc/PID/task`.
pub fn threads(pid: u32) -> io::Result<usize> {
    Ok(std::fs::read_dir(format!("/proc/{pid}/task"))?.count())
}

/// How often `threads_most` counts.
pub const THREADS_EVERY: Duration = Duration::from_millis(500);

/// Waits `window`, counting the threads of `pid` every `THREADS_EVERY`
/// (a thread that lives between two counts is missed); returns the most
/// seen, the count at the end included.
pub fn threads_most(pid: u32, window: Duration) -> io::Result<usize> {
    let end = Instant::now() + window;
    let mut most = threads(pid)?;
    loop {
        let left = end.saturating_duration_since(Instant::now());
        std::thread::sleep(left.min(THREADS_EVERY));
        most = most.max(threads(pid)?);
        if left <= THREADS_EVERY {
            return Ok(most);
        }
    }
}

/// Resident and proportional set size, in bytes, from `smaps_rollup`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Memory {
    pub rss: u64,
    pub pss: u64,
}

pub fn memory(pid: u32) -> io::Result<Memory> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup"))?;
    let mut m = Memory::default();
    for line in text.lines() {
        let mut w = line.split_whitespace();
        let key = w.next().unwrap_or("");
        let kib: u64 = w.next().and_then(|v| v.parse().ok()).unwrap_or(0);
        match key {
            "Rss:" => m.rss = kib * 1024,
            "Pss:" => m.pss = kib * 1024,
            _ => {}
        }
    }
    Ok(m)
}

/// CPU time (user + system, every thread, living and ended) that process
/// `pid` has used, with nanosecond resolution (`/proc/PID/stat` counts in
/// 10 ms ticks, too coarse for an idle daemon).
pub fn cpu_time(pid: u32) -> io::Result<Duration> {
    // SAFETY: clock_getcpuclockid fills a clockid for the pid; clock_gettime
    // fills a timespec.
    unsafe {
        let mut clock: libc::clockid_t = 0;
        let e = libc::clock_getcpuclockid(pid as libc::pid_t, &mut clock);
        if e != 0 {
            return Err(io::Error::from_raw_os_error(e));
        }
        let mut ts: libc::timespec = std::mem::zeroed();
        if libc::clock_gettime(clock, &mut ts) != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32))
    }
}

/// The direct children of `pid` (from `/proc/PID/task/*/children`).
pub fn children(pid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else { return out };
    for t in tasks.flatten() {
        if let Ok(s) = std::fs::read_to_string(t.path().join("children")) {
            out.extend(s.split_whitespace().filter_map(|w| w.parse::<u32>().ok()));
        }
    }
    out
}
