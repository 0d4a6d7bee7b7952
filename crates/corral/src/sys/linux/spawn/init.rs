//! PID 1 of a group's PID namespace.
//!
//! The first process of a new PID namespace is its init: orphans are
//! re-parented to it, and the kernel drops every signal it has no handler
//! for. A leader that is PID 1 by accident neither reaps nor dies of
//! SIGTERM. So the cloned child (PID 1, after every isolation step) forks
//! the real leader and stays behind as a tiny init, like tini:
//! - it blocks every signal and takes them with `sigtimedwait`: a blocked
//!   signal is queued even for a namespace init, and nothing runs in a
//!   handler;
//! - SIGCHLD: it reaps whatever exited; when the leader did, it exits with
//!   the leader's code (128+N for a signal N: an init cannot die of its
//!   own signal). The kernel then kills what is left in the namespace;
//! - any other signal is forwarded to the leader.
//!
//! It is a copy of the controller (fork-like `clone3`) that never execs,
//! so it closes every fd it holds: it must not keep the controller's
//! files, sockets or pipes open for the life of the group.

use super::child::{fail, Step};
use super::plan::Plan;

fn errno() -> i32 {
    // SAFETY: errno is thread-local and always readable.
    unsafe { *libc::__errno_location() }
}

unsafe fn set_mask(how: libc::c_int, set: *const libc::sigset_t) {
    // SAFETY: the caller passes a valid set; the raw call also covers
    // glibc's internal signals.
    unsafe { libc::syscall(libc::SYS_rt_sigprocmask, how, set, std::ptr::null_mut::<libc::sigset_t>(), 8usize) };
}

/// Forks the leader. Returns in the leader (which goes on to `exec`);
/// the init never returns.
pub(super) unsafe fn fork_leader(p: &Plan) {
    // SAFETY: raw syscalls on this stack's values and the plan's fds.
    unsafe {
        let mut all: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut all);
        set_mask(libc::SIG_SETMASK, &all);
        // A plain fork without glibc's bookkeeping (atfork handlers may
        // take locks that another thread of the controller held).
        let leader = libc::syscall(libc::SYS_clone, libc::SIGCHLD as libc::c_ulong, 0usize, 0usize, 0usize, 0usize);
        if leader < 0 {
            fail(p, Step::Init, errno());
        }
        if leader == 0 {
            let empty: libc::sigset_t = std::mem::zeroed();
            set_mask(libc::SIG_SETMASK, &empty);
            return;
        }
        run(leader as libc::pid_t, &all)
    }
}

unsafe fn run(leader: libc::pid_t, all: &libc::sigset_t) -> ! {
    // SAFETY: as in fork_leader.
    unsafe {
        libc::prctl(libc::PR_SET_NAME, c"corral-init".as_ptr(), 0, 0, 0);
        // Every fd, the report pipe and stdio included: the leader's copy
        // of the report pipe alone tells the controller how its exec went.
        if libc::syscall(libc::SYS_close_range, 0u32, u32::MAX, 0u32) != 0 {
            for fd in 0..1024 {
                libc::close(fd);
            }
        }
        loop {
            let mut info: libc::siginfo_t = std::mem::zeroed();
            let sig = libc::syscall(
                libc::SYS_rt_sigtimedwait,
                all as *const libc::sigset_t,
                &mut info as *mut libc::siginfo_t,
                std::ptr::null::<libc::timespec>(),
                8usize,
            ) as libc::c_int;
            if sig <= 0 {
                continue;
            }
            if sig != libc::SIGCHLD {
                libc::kill(leader, sig);
                continue;
            }
            loop {
                let mut status = 0;
                let pid = libc::wait4(-1, &mut status, libc::WNOHANG, std::ptr::null_mut());
                if pid <= 0 {
                    break;
                }
                if pid == leader {
                    let code =
                        if libc::WIFEXITED(status) { libc::WEXITSTATUS(status) } else { 128 + libc::WTERMSIG(status) };
                    libc::_exit(code);
                }
            }
        }
    }
}
