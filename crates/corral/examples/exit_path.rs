//! How long `Group::wait()` takes to return once the leader has exited:
//! the caller itself waits on the leader's pidfd (which is when a plain
//! `wait4` would return), then times `wait()`. What it measures is
//! corral's exit path: the event loop's wake-up, its look and teardown,
//! and the caller's wake-up on the outcome.
//!
//! Usage: exit_path [ROUNDS]   (default 1000; at most 100000). Linux only.

#[cfg(target_os = "linux")]
fn main() {
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    use std::time::Instant;

    let rounds: usize = std::env::args().nth(1).and_then(|s| s.parse().ok()).unwrap_or(1000).clamp(1, 100_000);
    let limits = corral::Limits::new().memory(256 << 20).max_procs(64);
    let mut gaps = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        let g = match corral::Group::builder().limits(limits.clone()).spawn(corral::Command::new("/bin/true")) {
            Ok(g) => g,
            Err(e) => {
                eprintln!("exit_path: {e}");
                std::process::exit(1);
            }
        };
        // SAFETY: pidfd_open takes a pid and flags and returns a new fd or -1.
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, g.pid() as libc::pid_t, 0) };
        if fd < 0 {
            // Already reaped: nothing to time.
            g.wait();
            continue;
        }
        // SAFETY: a fresh fd owned by nobody else.
        let fd = unsafe { OwnedFd::from_raw_fd(fd as i32) };
        let mut p = libc::pollfd { fd: fd.as_raw_fd(), events: libc::POLLIN, revents: 0 };
        // SAFETY: one valid pollfd; bounded at 5 s.
        unsafe { libc::poll(&mut p, 1, 5000) };
        let t = Instant::now();
        g.wait();
        gaps.push(t.elapsed());
    }
    gaps.sort();
    let at = |q: usize| gaps.get(gaps.len() * q / 100).copied().unwrap_or_default();
    println!("leader's exit seen -> wait() returns: p10 {:?}, p50 {:?}, p90 {:?}", at(10), at(50), at(90));
}

#[cfg(not(target_os = "linux"))]
fn main() {
    eprintln!("exit_path: Linux only");
}
