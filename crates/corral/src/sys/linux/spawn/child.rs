//! What the child does between `clone3` and `exec`.
//!
//! It may share the parent's memory (see `clone3.rs`), so every step is a
//! plain syscall on values the parent prepared: no allocation, no lock, no
//! libc wrapper that keeps process-wide state. The user switch in
//! particular goes through raw `setuid`/`setgid`/`setgroups`: glibc's
//! wrappers would try to switch every thread of the parent too.
//!
//! A failed step reports `(step, errno)` and exits 127: into the plan's
//! `failure` when the child shares the parent's memory, else into the
//! report pipe, which a successful `exec` closes (close-on-exec) and the
//! parent reads as success.

use super::plan::Plan;
use super::{confine, init};
use crate::sys::unix::hygiene;

/// Declares `Step` and `Step::ALL` from one list, numbered from 1, so a
/// new step is written once and the parent can always read it back.
macro_rules! steps {
    ($first:ident $(, $rest:ident)* $(,)?) => {
        /// The step that failed, as reported to the parent.
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        #[repr(u32)]
        pub(crate) enum Step {
            $first = 1,
            $($rest,)*
        }

        impl Step {
            /// Every step, in the order of its number.
            pub(super) const ALL: &'static [Step] = &[Step::$first $(, Step::$rest)*];
        }
    };
}

steps!(
    ProcessGroup,
    JoinCgroup,
    Rlimit,
    Stdio,
    Groups,
    Gid,
    Uid,
    DeathSignal,
    Cwd,
    Fds,
    Exec,
    Mount,
    Network,
    Hostname,
    Capabilities,
    NoNewPrivileges,
    Init,
    Root,
    Seccomp,
    UserNs,
);

impl Step {
    /// The step a child reported; the low byte is the step, the rest its index.
    pub(super) fn from_raw(v: u32) -> Option<Step> {
        let n = (v & 0xff).checked_sub(1)?;
        Step::ALL.get(n as usize).copied()
    }

    /// The index a step reported along with itself (which mount failed).
    pub(super) fn index_of(v: u32) -> u32 {
        v >> 8
    }

    /// What the step was doing, for an error message.
    pub(crate) fn doing(self) -> &'static str {
        match self {
            Step::ProcessGroup => "creating its process group",
            Step::JoinCgroup => "joining the group's v1 cgroups",
            Step::Rlimit => "setting its rlimits",
            Step::Stdio => "connecting its stdin/stdout/stderr",
            Step::Groups => "setting its supplementary groups",
            Step::Gid => "switching to the group id",
            Step::Uid => "switching to the user id",
            Step::DeathSignal => "arming its parent-death signal",
            Step::Cwd => "changing to its working directory",
            Step::Fds => "marking inherited fds close-on-exec and placing passed ones",
            Step::Exec => "executing the program",
            Step::Mount => "setting up its mounts",
            Step::Network => "setting up its network namespace",
            Step::Hostname => "setting its hostname",
            Step::Capabilities => "dropping capabilities",
            Step::NoNewPrivileges => "setting no_new_privs",
            Step::Init => "starting the leader under the PID namespace's init",
            Step::Root => "moving into its new root (pivot_root)",
            Step::Seccomp => "installing its seccomp filter",
            Step::UserNs => "entering its user namespace (its uid/gid maps)",
        }
    }
}

fn errno() -> i32 {
    // SAFETY: errno is thread-local and always readable.
    unsafe { *libc::__errno_location() }
}

/// Reports `step` and the current errno, then exits.
pub(super) unsafe fn fail(p: &Plan, step: Step, err: i32) -> ! {
    // SAFETY: as for fail_at.
    unsafe { fail_at(p, step, 0, err) }
}

/// Reports `step`, which of its items failed (`index`), and `err`, then exits.
pub(super) unsafe fn fail_at(p: &Plan, step: Step, index: u32, err: i32) -> ! {
    // SAFETY: the child's own stack and a fd the plan names; see `run`.
    unsafe {
        let mut msg = [0u8; 8];
        msg[..4].copy_from_slice(&((step as u32) | (index << 8)).to_ne_bytes());
        msg[4..].copy_from_slice(&err.to_ne_bytes());
        if p.report < 0 {
            p.failure.store(u64::from_ne_bytes(msg), std::sync::atomic::Ordering::SeqCst);
        } else {
            libc::write(p.report, msg.as_ptr().cast(), msg.len());
        }
        libc::_exit(127)
    }
}

/// The child's entry point.
pub(super) extern "C" fn main(arg: *const libc::c_void) -> ! {
    // SAFETY: `arg` is the plan the parent keeps alive (and unchanged)
    // until this task execs or exits.
    unsafe { run(&*(arg as *const Plan)) }
}

unsafe fn run(p: &Plan) -> ! {
    // SAFETY: in the child between clone3 and exec; each call is a plain syscall on
    // values the parent prepared and keeps unchanged (see the module note).
    unsafe {
        reset_signals();
        if libc::setpgid(0, 0) != 0 {
            fail(p, Step::ProcessGroup, errno());
        }
        // Joined before the user switch: the cgroup files were opened as the
        // controller and are written as the controller.
        for &fd in &p.joins {
            if libc::write(fd, b"0".as_ptr().cast(), 1) != 1 {
                fail(p, Step::JoinCgroup, errno());
            }
        }
        for l in &p.rlimits {
            let rl = libc::rlimit { rlim_cur: l.soft as libc::rlim_t, rlim_max: l.hard as libc::rlim_t };
            #[allow(clippy::useless_conversion)]
            if libc::setrlimit(l.resource as _, &rl) != 0 {
                fail(p, Step::Rlimit, errno());
            }
        }
        for (target, src) in p.stdio.iter().enumerate() {
            // Sources are all >= 3 (see plan.rs), so dup2 never overwrites one
            // before its turn, and it clears close-on-exec on the target.
            if let Some(src) = *src {
                if libc::dup2(src, target as i32) < 0 {
                    fail(p, Step::Stdio, errno());
                }
            }
        }
        if let Some(iso) = &p.isolate {
            confine::before_user_switch(p, iso);
        }
        if let Some(groups) = &p.groups {
            // Asked for: a refusal (no CAP_SETGID) is a failure, not a
            // leader that runs with the controller's groups.
            if libc::syscall(libc::SYS_setgroups, groups.len(), groups.as_ptr()) != 0 {
                fail(p, Step::Groups, errno());
            }
        } else if p.drop_groups {
            // Without CAP_SETGID this fails harmlessly, as in std.
            if libc::syscall(libc::SYS_setgroups, 0usize, std::ptr::null::<libc::gid_t>()) != 0
                && errno() != libc::EPERM
            {
                fail(p, Step::Groups, errno());
            }
        }
        if let Some(gid) = p.gid {
            if libc::syscall(libc::SYS_setgid, gid) != 0 {
                fail(p, Step::Gid, errno());
            }
        }
        if let Some(uid) = p.uid {
            if libc::syscall(libc::SYS_setuid, uid) != 0 {
                fail(p, Step::Uid, errno());
            }
        }
        if let Some(iso) = &p.isolate {
            confine::after_user_switch(p, iso);
        }
        let pid_ns = p.isolate.as_ref().is_some_and(|i| i.pid_ns);
        // After the user switch, which clears it.
        if p.death_signal {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) != 0 {
                fail(p, Step::DeathSignal, errno());
            }
            // The parent may have died before the signal was armed. In a PID
            // namespace the parent is outside it, and getppid() answers 0.
            if !pid_ns && libc::getppid() != p.parent {
                libc::_exit(137);
            }
        }
        if let Some(cwd) = &p.cwd {
            if libc::chdir(cwd.as_ptr()) != 0 {
                fail(p, Step::Cwd, errno());
            }
        }
        if let Some(mask) = p.umask {
            libc::umask(mask);
        }
        // Only 0, 1 and 2 pass; the same sweep as the fork path's. Then the
        // fds passed on purpose, at their numbers, and the pid variables.
        if hygiene::close_inherited_fds(p.sweep, 3).is_err() || p.passing.apply().is_err() {
            fail(p, Step::Fds, errno());
        }
        if pid_ns {
            // Returns in the leader only; this task stays as the init.
            init::fork_leader(p);
        }
        // In the leader: with a PID namespace, its pid is not the clone's.
        p.env.fill_pids();
        let mut err = libc::ENOENT;
        let mut denied = false;
        for c in &p.candidates {
            libc::execve(c.as_ptr(), p.argv_ptrs.as_ptr(), p.env.ptrs.as_ptr());
            err = errno();
            match err {
                // execvp's rule: a denied candidate is remembered, the search goes on.
                libc::EACCES => denied = true,
                libc::ENOENT | libc::ENOTDIR | libc::ESTALE | libc::ENODEV | libc::ETIMEDOUT => {}
                _ => break,
            }
        }
        if denied && matches!(err, libc::ENOENT | libc::ENOTDIR | libc::ESTALE | libc::ENODEV | libc::ETIMEDOUT) {
            err = libc::EACCES;
        }
        fail(p, Step::Exec, err)
    }
}

/// Handlers of the parent must not run here (they would run on shared
/// memory): every caught signal goes back to its default. Ignored ones do
/// too, as on the fork path (`hygiene::reset_ignored_signals`: a leader
/// starts like a systemd service, whatever corral's caller ignored). Then
/// the mask is emptied; the parent blocked everything before `clone3`, so
/// nothing was delivered yet.
unsafe fn reset_signals() {
    // SAFETY: zeroed sigaction/sigset values are valid; only this task's dispositions change.
    unsafe {
        let mut old: libc::sigaction = std::mem::zeroed();
        let mut dfl: libc::sigaction = std::mem::zeroed();
        dfl.sa_sigaction = libc::SIG_DFL;
        // 1..=64: every signal of the kernel's mask; glibc's own two refuse
        // (EINVAL) and are left alone.
        for sig in 1..=64 {
            if sig == libc::SIGKILL || sig == libc::SIGSTOP {
                continue;
            }
            if libc::sigaction(sig, std::ptr::null(), &mut old) != 0 || old.sa_sigaction == libc::SIG_DFL {
                continue;
            }
            libc::sigaction(sig, &dfl, std::ptr::null_mut());
        }
        // The signals glibc keeps for itself (32, 33), through the raw call:
        // only those, the loop above did the rest (a second pass over all
        // 64 was 62 more syscalls on every spawn's critical path).
        for sig in 32..=33 {
            hygiene::reset_if_ignored(sig);
        }
        let empty: libc::sigset_t = std::mem::zeroed();
        libc::syscall(
            libc::SYS_rt_sigprocmask,
            libc::SIG_SETMASK,
            &empty as *const libc::sigset_t,
            std::ptr::null::<libc::sigset_t>(),
            8usize,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_step_survives_the_trip_through_the_pipe() {
        for (i, &s) in Step::ALL.iter().enumerate() {
            assert_eq!(s as u32, i as u32 + 1, "ALL is in the order of the steps' numbers");
            assert_eq!(Step::from_raw(s as u32), Some(s));
            assert_eq!(Step::from_raw(s as u32 | (7 << 8)), Some(s), "the index byte is not the step");
            assert!(!s.doing().is_empty());
        }
        assert_eq!(Step::from_raw(0), None);
        assert_eq!(Step::from_raw(Step::ALL.len() as u32 + 1), None);
        assert_eq!(Step::index_of(Step::Mount as u32 | (3 << 8)), 3);
    }
}
