//! corral's own spawn path on Linux: `clone3` with `CLONE_PIDFD`, and
//! `CLONE_INTO_CGROUP` when the group has a cgroup v2 leaf, so the leader
//! is born inside its group. That spares the in-child `cgroup.procs` write
//! of the fork path, which waits for an RCU grace period (5-20 ms) on a
//! cgroup2 mount without `favordynmods`.
//!
//! Where `clone3` or `CLONE_INTO_CGROUP` is refused (an old kernel, a
//! seccomp policy, a cgroup that is not a plain leaf), the caller falls
//! back to the fork path: std's spawn with a pre-exec hook that joins the
//! group in the child. `CORRAL_SPAWN=fork` forces that path (tests use it
//! to cover both).

mod child;
mod clone3;
mod confine;
mod init;
mod isolate;
mod plan;
mod seccomp;
mod userns;

use crate::sys::unix::Rlimit;
pub(super) use child::Step;
use clone3::{CloneArgs, CLONE_INTO_CGROUP, CLONE_PIDFD};
pub(crate) use isolate::{check as check_isolation, describe as describe_isolation};
use plan::Plan;
use std::io::{self, Read};
use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};
pub(super) use userns::{check_leader as check_user_switch, describe as describe_user_namespaces};

/// Set once `clone3` itself was refused: later spawns go straight to fork.
static REFUSED: AtomicBool = AtomicBool::new(false);

/// A leader started by `clone3`.
pub(super) struct Started {
    pub pid: u32,
    pub pidfd: OwnedFd,
    /// The controller's ends of piped stdin, stdout, stderr.
    pub pipes: [Option<OwnedFd>; 3],
}

/// Why `clone3` did not start the leader.
#[derive(Debug)]
pub(super) enum NotStarted {
    /// The kernel or its policy refused the call: use the fork path.
    Refused,
    /// A real failure, in the child's `step` (`None`: before it ran),
    /// with what exactly (which mount) where the step has several.
    Failed { step: Option<Step>, detail: Option<String>, err: io::Error },
}

/// What an errno from `clone3` means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refusal {
    /// The call itself is refused here (kernel too old, seccomp): for
    /// every later spawn too.
    Always,
    /// This cgroup cannot be a `CLONE_INTO_CGROUP` target (not a leaf,
    /// threaded, not ours to move into): for this spawn.
    ThisCgroup,
}

fn refusal(errno: i32) -> Option<Refusal> {
    match errno {
        // ENOSYS: no clone3 (< 5.3) or a seccomp filter that hides it.
        // EPERM: a seccomp filter. E2BIG/EINVAL: a kernel that knows
        // clone3 but not `cgroup` (5.3-5.6).
        libc::ENOSYS | libc::EPERM | libc::E2BIG | libc::EINVAL => Some(Refusal::Always),
        libc::EBUSY | libc::EOPNOTSUPP | libc::EACCES | libc::ENODEV => Some(Refusal::ThisCgroup),
        _ => None,
    }
}

/// Whether spawns will try `clone3` (false once it was refused).
pub(super) fn enabled() -> bool {
    !REFUSED.load(Ordering::Relaxed)
}

/// For `corral doctor`: what this host allows.
pub(super) fn describe() -> String {
    let how = if clone3::SHARES_MEMORY { "vfork-like, on its own stack" } else { "fork-like" };
    match clone3::available() {
        Err(e) => format!("spawn path: fork (clone3 is refused here: {e})"),
        Ok(()) if !enabled() => "spawn path: fork (clone3 was refused by this kernel or its policy)".into(),
        Ok(()) => format!(
            "spawn path: clone3 ({how}; CLONE_INTO_CGROUP where the group has a cgroup v2 leaf); \
             CORRAL_SPAWN=fork forces the fork path"
        ),
    }
}

/// Starts `cmd` with `clone3`, inside the cgroup `cgroup` (a v2 leaf dir
/// fd) if given, after joining `joins` (v1 `tasks` fds) in the child, in
/// the namespaces and with the privileges `isolation` asks for.
pub(super) fn spawn(
    cmd: &crate::Command,
    extra_env: &[(&str, &str)],
    cgroup: Option<RawFd>,
    joins: Vec<RawFd>,
    rlimits: Vec<Rlimit>,
    death_signal: bool,
    isolation: &crate::Isolation,
) -> Result<Started, NotStarted> {
    let (mut plan, fds) = Plan::new(cmd, extra_env, joins, rlimits, isolation).map_err(|err| NotStarted::Failed {
        step: None,
        detail: None,
        err,
    })?;
    plan.death_signal = death_signal;
    let mut pidfd: libc::c_int = -1;
    let ns_flags = plan.isolate.as_ref().map_or(0, |i| i.clone_flags);
    let share_memory = shares_memory(plan.isolate.is_some());
    let mount_names: Vec<String> =
        plan.isolate.as_ref().map(|i| i.mounts.iter().map(|m| m.what.clone()).collect()).unwrap_or_default();
    let mut args = CloneArgs {
        flags: CLONE_PIDFD | ns_flags,
        pidfd: &mut pidfd as *mut libc::c_int as u64,
        exit_signal: libc::SIGCHLD as u64,
        ..CloneArgs::default()
    };
    if let Some(fd) = cgroup {
        args.flags |= CLONE_INTO_CGROUP;
        args.cgroup = fd as u64;
    }
    let saved = block_all_signals();
    // SAFETY: the plan lives on this frame until clone3 returns, which is
    // after the child exec'd or exited (CLONE_VFORK), or is a copy (no
    // CLONE_VM); child::main only makes raw syscalls.
    let r = unsafe { clone3::clone3(&mut args, child::main, (&plan as *const Plan).cast(), share_memory) };
    restore_signals(&saved);
    let pid = match r {
        Ok(pid) => pid,
        // With CLONE_NEWUSER these are the user namespace's refusals (a
        // chroot, a security module, the count of namespaces), not clone3's.
        Err(e)
            if ns_flags & libc::CLONE_NEWUSER as u64 != 0
                && matches!(e.raw_os_error(), Some(libc::EPERM | libc::ENOSPC | libc::EUSERS)) =>
        {
            return Err(NotStarted::Failed {
                step: Some(Step::UserNs),
                detail: Some("creating its user namespace (refused by the kernel; see `corral doctor`)".into()),
                err: e,
            })
        }
        Err(e) => {
            return Err(match e.raw_os_error().and_then(refusal) {
                Some(Refusal::Always) => {
                    REFUSED.store(true, Ordering::Relaxed);
                    NotStarted::Refused
                }
                Some(Refusal::ThisCgroup) => NotStarted::Refused,
                None => NotStarted::Failed { step: None, detail: None, err: e },
            })
        }
    };
    // SAFETY: CLONE_PIDFD stored a fresh fd that nothing else owns.
    let pidfd = unsafe { OwnedFd::from_raw_fd(pidfd) };
    if let Some(u) = plan.isolate.as_ref().and_then(|i| i.userns.as_ref()) {
        if let Err((doing, err)) = u.map(pid) {
            // It is still waiting for its maps: it never ran the program.
            // SAFETY: kill and waitpid on our own unreaped child.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
                libc::waitpid(pid, std::ptr::null_mut(), 0);
            }
            return Err(NotStarted::Failed { step: Some(Step::UserNs), detail: Some(doing), err });
        }
    }
    let plan::Fds { parent_ends, child_ends, report_read, report_write } = fds;
    // Only the child's copy of the write end may keep the pipe open.
    drop(report_write);
    drop(child_ends);
    let failure = match report_read {
        Some(r) => read_report(r),
        None => Some(plan.failure.load(Ordering::SeqCst).to_ne_bytes()).filter(|m| *m != [0; 8]),
    };
    drop(plan);
    let Some(msg) = failure else {
        return Ok(Started { pid: pid as u32, pidfd, pipes: parent_ends });
    };
    // The child failed a step and exits at once: reap it here.
    let mut status = 0;
    // SAFETY: waits for our own child; status is valid for writes.
    unsafe { libc::waitpid(pid, &mut status, 0) };
    let raw = u32::from_ne_bytes([msg[0], msg[1], msg[2], msg[3]]);
    let step = Step::from_raw(raw);
    let detail = match step {
        Some(Step::Mount) => mount_names.get(Step::index_of(raw) as usize).cloned(),
        _ => None,
    };
    let errno = i32::from_ne_bytes([msg[4], msg[5], msg[6], msg[7]]);
    Err(NotStarted::Failed { step, detail, err: io::Error::from_raw_os_error(errno) })
}

/// Blocks every signal on this thread, so that no handler of ours runs in
/// the child before it resets them; returns the mask to restore.
/// Whether the child runs on the parent's memory (vfork-like) until its
/// exec. See isolate.rs: an isolated child may become an init that never
/// execs, so it gets a copy.
fn shares_memory(isolated: bool) -> bool {
    clone3::SHARES_MEMORY && !isolated
}

/// What a child that does not share this memory reported before exiting;
/// `None` once its exec closed the pipe.
fn read_report(pipe: OwnedFd) -> Option<[u8; 8]> {
    let mut msg = [0u8; 8];
    let mut got = 0;
    let mut reader = std::fs::File::from(pipe);
    while got < msg.len() {
        match reader.read(&mut msg[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => break,
        }
    }
    (got == msg.len()).then_some(msg)
}

fn block_all_signals() -> libc::sigset_t {
    // SAFETY: plain sigset_t values; the raw syscall (not glibc's
    // pthread_sigmask) also blocks glibc's internal signals.
    unsafe {
        let mut all: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut all);
        let mut old: libc::sigset_t = std::mem::zeroed();
        libc::syscall(libc::SYS_rt_sigprocmask, libc::SIG_SETMASK, &all as *const _, &mut old as *mut _, 8usize);
        old
    }
}

fn restore_signals(old: &libc::sigset_t) {
    // SAFETY: restores a mask read by block_all_signals.
    unsafe {
        libc::syscall(
            libc::SYS_rt_sigprocmask,
            libc::SIG_SETMASK,
            old as *const _,
            std::ptr::null_mut::<libc::sigset_t>(),
            8usize,
        )
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refused_call_is_told_from_a_cgroup_that_cannot_take_the_child() {
        assert_eq!(refusal(libc::ENOSYS), Some(Refusal::Always));
        assert_eq!(refusal(libc::EPERM), Some(Refusal::Always));
        assert_eq!(refusal(libc::E2BIG), Some(Refusal::Always));
        assert_eq!(refusal(libc::EBUSY), Some(Refusal::ThisCgroup));
        assert_eq!(refusal(libc::EOPNOTSUPP), Some(Refusal::ThisCgroup));
        // Real failures are reported, not papered over by a fallback.
        assert_eq!(refusal(libc::EAGAIN), None);
        assert_eq!(refusal(libc::ENOMEM), None);
    }

    #[test]
    fn the_probe_finds_clone3_on_this_kernel() {
        // Every host this project tests on runs Linux 5.7+ without a
        // seccomp filter on clone3.
        assert!(clone3::available().is_ok(), "{}", describe());
    }
}
