//! Hygiene at exec: what a leader must not inherit from whoever started
//! corral.
//!
//! - **File descriptors.** std's `Command` closes nothing: every fd that
//!   corral's own parent left open without `FD_CLOEXEC` (a launcher's fd 7
//!   on a root-only file) would reach the leader, even after a user switch.
//!   [`close_inherited_fds`] marks every fd from 3 up close-on-exec in the
//!   child. Marking, not closing: std's exec-error pipe is among them (it
//!   is CLOEXEC already) and must stay open until `exec` succeeds; so must
//!   the cgroup files a pre-exec hook writes.
//! - **Signals.** std empties the signal mask and resets SIGPIPE in the
//!   child; [`reset_ignored_signals`] resets every other *ignored*
//!   disposition too (handlers are reset by `exec` itself), so a leader
//!   starts like a systemd service, whatever corral's caller ignored.
//! - **SIGCHLD ignored in corral itself.** Then the kernel reaps children at
//!   once and `waitpid` fails with ECHILD: no exit status, a monitor that
//!   waits forever. [`restore_sigchld`] puts the default back (GNU
//!   `timeout` does the same), see the crate docs.
//!
//! Everything called in the child is async-signal-safe: raw syscalls on
//! values computed in the parent, no allocation, no locks.

use std::io;
use std::os::fd::RawFd;

/// How the child sweeps its fds; chosen in the parent, carried out in the
/// child by [`close_inherited_fds`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FdSweep {
    /// `close_range(first, ~0, CLOSE_RANGE_CLOEXEC)`: one syscall, every fd
    /// whatever its number (Linux 5.11+).
    #[cfg(target_os = "linux")]
    CloseRange,
    /// `fcntl(FD_CLOEXEC)` on each fd below `upto`: the fd limit, so
    /// bounded, and no fd can be at or above it (see [`fd_ceiling`]).
    Each { upto: RawFd },
}

impl FdSweep {
    /// The sweep for this host, decided before the fork.
    pub(crate) fn prepare() -> FdSweep {
        #[cfg(target_os = "linux")]
        if close_range_cloexec_works() {
            return FdSweep::CloseRange;
        }
        FdSweep::Each { upto: fd_ceiling() }
    }
}

/// Marks every fd from `first` (at least 3) up close-on-exec. Runs in the
/// child between fork and exec: async-signal-safe. fds below `first` are
/// the ones corral means to pass (stdio, and later socket activation's
/// fds from 3).
pub(crate) fn close_inherited_fds(sweep: FdSweep, first: RawFd) -> io::Result<()> {
    let first = first.max(3);
    match sweep {
        #[cfg(target_os = "linux")]
        FdSweep::CloseRange => {
            // SAFETY: close_range takes plain integers and only sets flags.
            let r = unsafe {
                libc::syscall(
                    libc::SYS_close_range,
                    first as libc::c_uint,
                    libc::c_uint::MAX,
                    libc::CLOSE_RANGE_CLOEXEC,
                )
            };
            if r != 0 {
                return Err(io::Error::last_os_error());
            }
        }
        FdSweep::Each { upto } => {
            for fd in first..upto {
                // SAFETY: fcntl on a number that may not be an open fd
                // fails with EBADF, which is what "nothing to mark" means.
                let flags = unsafe { libc::fcntl(fd, libc::F_GETFD) };
                if flags >= 0 && flags & libc::FD_CLOEXEC == 0 {
                    // SAFETY: as above; fd is open.
                    unsafe { libc::fcntl(fd, libc::F_SETFD, flags | libc::FD_CLOEXEC) };
                }
            }
        }
    }
    Ok(())
}

/// One past the highest fd this process can hold: the soft RLIMIT_NOFILE,
/// or, where it is unlimited, `sysconf(_SC_OPEN_MAX)` (macOS reports
/// `getdtablesize()` there). On Linux an fd opened before the limit was
/// lowered can sit above it, so the highest open fd (from /proc, read in
/// the parent, where allocating is fine) raises the ceiling.
fn fd_ceiling() -> RawFd {
    // SAFETY: zeroed rlimit is a valid out-parameter.
    let mut rl: libc::rlimit = unsafe { std::mem::zeroed() };
    // SAFETY: rl is valid for writes.
    let soft = if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut rl) } == 0 { rl.rlim_cur } else { 0 };
    let upto = if soft == libc::RLIM_INFINITY || soft == 0 || soft > RawFd::MAX as libc::rlim_t {
        // SAFETY: sysconf has no preconditions.
        let open_max = unsafe { libc::sysconf(libc::_SC_OPEN_MAX) };
        if open_max > 0 {
            open_max.min(RawFd::MAX as libc::c_long) as RawFd
        } else {
            // POSIX's smallest OPEN_MAX is 20; nothing better is known.
            1024
        }
    } else {
        soft as RawFd
    };
    upto.max(highest_open_fd().saturating_add(1))
}

/// The highest fd open in this process, read in the parent.
#[cfg(target_os = "linux")]
fn highest_open_fd() -> RawFd {
    let Ok(dir) = std::fs::read_dir("/proc/self/fd") else { return 0 };
    dir.flatten().filter_map(|e| e.file_name().to_str().and_then(|s| s.parse::<RawFd>().ok())).max().unwrap_or(0)
}

/// macOS has no /proc; `getdtablesize()` is already the ceiling there.
#[cfg(not(target_os = "linux"))]
fn highest_open_fd() -> RawFd {
    0
}

/// Whether `close_range` takes `CLOSE_RANGE_CLOEXEC` here (it needs Linux
/// 5.11; a seccomp filter may refuse it too). Asked once, on an fd range
/// that is never open, so the probe changes nothing.
#[cfg(target_os = "linux")]
fn close_range_cloexec_works() -> bool {
    static WORKS: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *WORKS.get_or_init(|| {
        let top = libc::c_uint::MAX;
        // SAFETY: close_range takes plain integers; fd ~0 is never open.
        unsafe { libc::syscall(libc::SYS_close_range, top, top, libc::CLOSE_RANGE_CLOEXEC) == 0 }
    })
}

/// Resets `sig` to its default disposition if it is ignored; through the
/// raw call on Linux, which also reaches the signals glibc keeps for its
/// threads. Async-signal-safe.
#[cfg(target_os = "linux")]
pub(crate) fn reset_if_ignored(sig: libc::c_int) {
    if is_ignored(sig) {
        set_default(sig);
    }
}

/// Resets every ignored signal to its default disposition. Runs in the
/// child between fork and exec: sigaction is async-signal-safe.
pub(crate) fn reset_ignored_signals() {
    for sig in 1..signal_count() {
        if sig == libc::SIGKILL || sig == libc::SIGSTOP {
            continue;
        }
        if is_ignored(sig) {
            set_default(sig);
        }
    }
}

/// The kernel's `struct sigaction` (x86_64 and aarch64 share it). glibc's
/// wrapper refuses signals 32 and 33, which it reserves for its threads;
/// but a parent may have left them ignored all the same, so the raw
/// syscall asks and resets them too.
#[cfg(all(target_os = "linux", any(target_arch = "x86_64", target_arch = "aarch64")))]
#[repr(C)]
struct KernelSigaction {
    handler: libc::sighandler_t,
    flags: libc::c_ulong,
    restorer: usize,
    mask: u64,
}

#[cfg(all(target_os = "linux", any(target_arch = "x86_64", target_arch = "aarch64")))]
fn is_ignored(sig: libc::c_int) -> bool {
    let mut old = KernelSigaction { handler: 0, flags: 0, restorer: 0, mask: 0 };
    // SAFETY: old is valid for writes and matches the kernel's layout; a
    // null new action only queries; 8 is the kernel's sigset size.
    let r =
        unsafe { libc::syscall(libc::SYS_rt_sigaction, sig, std::ptr::null::<KernelSigaction>(), &mut old, 8usize) };
    r == 0 && old.handler == libc::SIG_IGN
}

#[cfg(all(target_os = "linux", any(target_arch = "x86_64", target_arch = "aarch64")))]
fn set_default(sig: libc::c_int) {
    let dfl = KernelSigaction { handler: libc::SIG_DFL, flags: 0, restorer: 0, mask: 0 };
    // SAFETY: dfl matches the kernel's layout and lives for the call.
    unsafe { libc::syscall(libc::SYS_rt_sigaction, sig, &dfl, std::ptr::null_mut::<KernelSigaction>(), 8usize) };
}

#[cfg(not(all(target_os = "linux", any(target_arch = "x86_64", target_arch = "aarch64"))))]
fn is_ignored(sig: libc::c_int) -> bool {
    // SAFETY: zeroed sigaction is a valid out-parameter.
    let mut old: libc::sigaction = unsafe { std::mem::zeroed() };
    // SAFETY: old is valid for writes; a null new action only queries.
    unsafe { libc::sigaction(sig, std::ptr::null(), &mut old) == 0 && old.sa_sigaction == libc::SIG_IGN }
}

#[cfg(not(all(target_os = "linux", any(target_arch = "x86_64", target_arch = "aarch64"))))]
fn set_default(sig: libc::c_int) {
    // SAFETY: signal(2) with SIG_DFL has no memory-safety preconditions.
    unsafe { libc::signal(sig, libc::SIG_DFL) };
}

/// One past the highest signal number (real-time signals included).
fn signal_count() -> libc::c_int {
    #[cfg(target_os = "linux")]
    {
        libc::SIGRTMAX() + 1
    }
    #[cfg(not(target_os = "linux"))]
    {
        // macOS has no real-time signals; NSIG is 32.
        32
    }
}

/// What to do about corral's own SIGCHLD disposition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SigchldFix {
    /// Children become zombies until waited for: nothing to do.
    Fine,
    /// SIG_IGN (or SIG_DFL with SA_NOCLDWAIT), surely inherited: the kernel
    /// reaps children itself. The default is put back.
    ResetToDefault,
    /// A handler installed with SA_NOCLDWAIT: the caller chose it, so it is
    /// not corral's to replace; spawning is refused with a hint.
    Refuse,
}

/// The pure decision behind [`restore_sigchld`].
pub(crate) fn sigchld_fix(handler: libc::sighandler_t, flags: libc::c_int) -> SigchldFix {
    let auto_reaped = handler == libc::SIG_IGN || flags & libc::SA_NOCLDWAIT != 0;
    if !auto_reaped {
        SigchldFix::Fine
    } else if handler == libc::SIG_IGN || handler == libc::SIG_DFL {
        SigchldFix::ResetToDefault
    } else {
        SigchldFix::Refuse
    }
}

/// Makes sure children of this process are left for `waitpid`: resets an
/// ignored SIGCHLD to the default, and refuses a SA_NOCLDWAIT handler.
pub(crate) fn restore_sigchld() -> crate::Result<()> {
    // SAFETY: zeroed sigaction is a valid out-parameter.
    let mut old: libc::sigaction = unsafe { std::mem::zeroed() };
    // SAFETY: old is valid for writes; a null new action only queries.
    if unsafe { libc::sigaction(libc::SIGCHLD, std::ptr::null(), &mut old) } != 0 {
        return Err(crate::Error::os("reading the SIGCHLD disposition", io::Error::last_os_error()));
    }
    match sigchld_fix(old.sa_sigaction, old.sa_flags) {
        SigchldFix::Fine => Ok(()),
        SigchldFix::ResetToDefault => {
            // SAFETY: a zeroed sigaction is SIG_DFL with no flags and an
            // empty mask.
            let dfl: libc::sigaction = unsafe { std::mem::zeroed() };
            // SAFETY: dfl is a valid action for the call.
            if unsafe { libc::sigaction(libc::SIGCHLD, &dfl, std::ptr::null_mut()) } != 0 {
                return Err(crate::Error::os("resetting SIGCHLD to its default", io::Error::last_os_error()));
            }
            Ok(())
        }
        SigchldFix::Refuse => Err(crate::Error::new(
            crate::ErrorKind::Unsupported,
            "SIGCHLD has a handler installed with SA_NOCLDWAIT: the kernel reaps children before corral can wait for them",
        )
        .hint("install the SIGCHLD handler without SA_NOCLDWAIT")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;

    #[test]
    fn sigchld_ignored_is_reset_and_a_nocldwait_handler_is_refused() {
        let handler = sigchld_fix as *const () as usize as libc::sighandler_t;
        assert_eq!(sigchld_fix(libc::SIG_DFL, 0), SigchldFix::Fine);
        assert_eq!(sigchld_fix(handler, libc::SA_RESTART), SigchldFix::Fine);
        assert_eq!(sigchld_fix(libc::SIG_IGN, 0), SigchldFix::ResetToDefault);
        assert_eq!(sigchld_fix(libc::SIG_DFL, libc::SA_NOCLDWAIT), SigchldFix::ResetToDefault);
        assert_eq!(sigchld_fix(handler, libc::SA_NOCLDWAIT), SigchldFix::Refuse);
    }

    const EMBEDDER: &str = "CORRAL_TEST_SIGCHLD_EMBEDDER";

    /// Runs in a fresh copy of this test binary (SIGCHLD is process-wide):
    /// sets SIGCHLD as the parent asked, runs a group, prints what it saw.
    #[test]
    #[ignore = "helper: started by an_embedder_that_ignores_sigchld_still_gets_exit_statuses"]
    fn sigchld_embedder() {
        let Ok(mode) = std::env::var(EMBEDDER) else { return };
        // SAFETY: plain sigaction calls with valid, initialised values.
        unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = if mode == "ignore" { libc::SIG_IGN } else { noop as *const () as usize };
            sa.sa_flags = if mode == "ignore" { 0 } else { libc::SA_NOCLDWAIT };
            libc::sigaction(libc::SIGCHLD, &sa, std::ptr::null_mut());
        }
        let mut cmd = std::process::Command::new("sh");
        cmd.args(["-c", "exit 7"]);
        match crate::Group::builder().timeout(std::time::Duration::from_secs(20)).spawn(cmd) {
            Ok(g) => {
                let o = g.wait();
                println!("OUTCOME code={:?} reason={} leftover={}", o.status.code, o.reason.as_str(), o.leftover);
            }
            Err(e) => println!("OUTCOME error={:?} {e}", e.kind()),
        }
    }

    extern "C" fn noop(_: libc::c_int) {}

    /// The helper's OUTCOME line; a helper still running after 60 s is
    /// killed (by its pid) and fails the test.
    fn embedder(mode: &str) -> String {
        use std::io::Read;
        let mut child = std::process::Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "sys::unix::hygiene::tests::sigchld_embedder", "--ignored", "--nocapture"])
            .args(["--test-threads", "1"])
            .env(EMBEDDER, mode)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let end = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while child.try_wait().unwrap().is_none() {
            if std::time::Instant::now() > end {
                let _ = child.kill();
                let _ = child.wait();
                panic!("the {mode} embedder hung");
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let mut text = String::new();
        child.stdout.take().unwrap().read_to_string(&mut text).unwrap();
        text.lines().find_map(|l| l.split_once("OUTCOME ").map(|(_, o)| o.to_string())).unwrap_or(text)
    }

    /// Once: with SIGCHLD ignored the kernel reaped the leader itself and the
    /// monitor spun on ECHILD, past its timeout (the 20 s of the helper).
    #[test]
    fn an_embedder_that_ignores_sigchld_still_gets_exit_statuses() {
        assert_eq!(embedder("ignore"), "code=Some(7) reason=exited leftover=0");
        assert!(embedder("nocldwait-handler").starts_with("error=Unsupported"));
    }

    #[test]
    fn the_fd_ceiling_is_above_every_open_fd() {
        let f = std::fs::File::open("/dev/null").unwrap();
        assert!(fd_ceiling() > f.as_raw_fd());
    }

    /// Both sweeps, in a forked child that reports through its exit code
    /// whether an inherited (non-CLOEXEC) fd got marked.
    #[test]
    fn each_sweep_marks_an_inherited_fd_close_on_exec() {
        let mut sweeps = vec![FdSweep::Each { upto: fd_ceiling() }];
        if FdSweep::prepare() != sweeps[0] {
            sweeps.push(FdSweep::prepare());
        }
        let f = std::fs::File::open("/dev/null").unwrap();
        // SAFETY: dup returns a new fd without CLOEXEC, closed below.
        let fd = unsafe { libc::dup(f.as_raw_fd()) };
        assert!(fd >= 3);
        for sweep in sweeps {
            // SAFETY: the child makes only async-signal-safe calls and
            // leaves with _exit.
            let pid = unsafe { libc::fork() };
            if pid == 0 {
                let ok = close_inherited_fds(sweep, 3).is_ok();
                // SAFETY: fcntl on a valid fd.
                let marked = unsafe { libc::fcntl(fd, libc::F_GETFD) } & libc::FD_CLOEXEC != 0;
                // SAFETY: leaves the forked child without running destructors.
                unsafe { libc::_exit(if ok && marked { 0 } else { 1 }) };
            }
            let mut status = 0;
            // SAFETY: status is valid for writes.
            assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
            assert!(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0, "{sweep:?} left fd {fd} inheritable");
        }
        // SAFETY: fd is ours.
        unsafe { libc::close(fd) };
    }
}
