//! Everything the child needs, prepared in the parent: C strings, the
//! candidates of a `PATH` search, stdio fds, the pipe that reports a
//! failure. The child only reads this; it allocates nothing.

use crate::command::{Command, StdioKind};
use crate::sys::unix::envp::Envp;
use crate::sys::unix::hygiene::FdSweep;
pub(super) use crate::sys::unix::passing::candidates;
use crate::sys::unix::passing::Passing;
use crate::sys::unix::Rlimit;
use std::ffi::{CString, OsStr};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::sync::atomic::AtomicU64;

pub(super) struct Plan {
    /// Full paths to try in order (one unless a `PATH` search).
    pub candidates: Vec<CString>,
    /// Owns the strings `argv_ptrs` points to.
    _argv: Vec<CString>,
    pub argv_ptrs: Vec<*const libc::c_char>,
    /// The environment, with the pid variables the child fills.
    pub env: Envp,
    /// fds put at fixed numbers after the sweep (socket activation).
    pub passing: Passing,
    pub cwd: Option<CString>,
    pub uid: Option<libc::uid_t>,
    pub gid: Option<libc::gid_t>,
    /// Drop supplementary groups along with the uid (root only, like std).
    pub drop_groups: bool,
    /// Set exactly these supplementary groups (instead of dropping them).
    pub groups: Option<Vec<libc::gid_t>>,
    pub umask: Option<libc::mode_t>,
    /// The fd to put on 0, 1 and 2; `None` inherits.
    pub stdio: [Option<RawFd>; 3],
    /// v1 `tasks` files the child writes `0` into.
    pub joins: Vec<RawFd>,
    pub rlimits: Vec<Rlimit>,
    pub parent: libc::pid_t,
    /// Arm `PR_SET_PDEATHSIG` (off for a leader meant to outlive its
    /// controller: `GroupBuilder::outlive_controller`).
    pub death_signal: bool,
    /// How the child marks inherited fds close-on-exec (decided here).
    pub sweep: FdSweep,
    /// Write end of the failure pipe (close-on-exec); -1 for a child that
    /// shares this memory, which reports in `failure` instead.
    pub report: RawFd,
    /// A failed step, packed as the pipe's 8 bytes (never 0: steps count
    /// from 1), written by a child that shares this memory. The parent
    /// reads it once `clone3` returned, when the child has exec'd or
    /// exited (`CLONE_VFORK`): no pipe to make, and no wait after the
    /// return for the rest of the exec to close one, as glibc's
    /// `posix_spawn` does.
    pub failure: AtomicU64,
    /// Namespaces, mounts, privileges; `None` when nothing is isolated.
    pub isolate: Option<super::isolate::Prepared>,
}

/// The fds a plan refers to, owned here so they outlive the spawn.
pub(super) struct Fds {
    /// The controller's ends of piped stdio.
    pub parent_ends: [Option<OwnedFd>; 3],
    /// Child ends and `/dev/null`: closed in the parent after the spawn.
    pub child_ends: Vec<OwnedFd>,
    /// The failure pipe, for a child that does not share this memory.
    pub report_read: Option<OwnedFd>,
    pub report_write: Option<OwnedFd>,
}

fn cstring(s: &OsStr) -> io::Result<CString> {
    CString::new(s.as_bytes()).map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "a NUL byte in the command"))
}

fn cvt(r: libc::c_int) -> io::Result<libc::c_int> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: fds is valid for two ints.
    cvt(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) })?;
    // SAFETY: pipe2 just returned two fresh fds.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// A close-on-exec copy at 3 or above, so that no stdio source is
/// overwritten by the `dup2` of another before its own turn.
fn above_stdio(fd: RawFd) -> io::Result<OwnedFd> {
    // SAFETY: F_DUPFD_CLOEXEC on an fd the caller holds open.
    let d = cvt(unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 3) })?;
    // SAFETY: fcntl just returned this fresh fd.
    Ok(unsafe { OwnedFd::from_raw_fd(d) })
}

impl Plan {
    /// Prepares `cmd`, with `extra_env` set over its environment and the
    /// leader joining `joins` (fds the caller keeps open).
    pub(super) fn new(
        cmd: &Command,
        extra_env: &[(&str, &str)],
        joins: Vec<RawFd>,
        rlimits: Vec<Rlimit>,
        isolation: &crate::Isolation,
    ) -> io::Result<(Plan, Fds)> {
        let (env, path) = Envp::of_command(cmd, extra_env)?;
        let candidates =
            candidates(&cmd.program, path.as_deref()).iter().map(|c| cstring(c)).collect::<io::Result<Vec<_>>>()?;
        let mut argv = vec![cstring(&cmd.program)?];
        for a in &cmd.args {
            argv.push(cstring(a)?);
        }
        let argv_ptrs = argv.iter().map(|c| c.as_ptr()).chain(std::iter::once(std::ptr::null())).collect();
        let cwd = cmd.cwd.as_ref().map(|d| cstring(d.as_os_str())).transpose()?;

        let mut parent_ends: [Option<OwnedFd>; 3] = [None, None, None];
        let mut child_ends = Vec::new();
        let mut stdio: [Option<RawFd>; 3] = [None, None, None];
        for (i, s) in [&cmd.stdin, &cmd.stdout, &cmd.stderr].into_iter().enumerate() {
            let child_end = match &s.0 {
                StdioKind::Inherit => continue,
                StdioKind::Null => {
                    // SAFETY: a constant NUL-terminated path.
                    let fd = cvt(unsafe { libc::open(c"/dev/null".as_ptr(), libc::O_RDWR | libc::O_CLOEXEC) })?;
                    // SAFETY: open just returned this fresh fd.
                    unsafe { OwnedFd::from_raw_fd(fd) }
                }
                StdioKind::Piped => {
                    let (r, w) = pipe()?;
                    let (mine, theirs) = if i == 0 { (w, r) } else { (r, w) };
                    parent_ends[i] = Some(mine);
                    theirs
                }
                StdioKind::File(f) => above_stdio(f.as_raw_fd())?,
            };
            let child_end = if child_end.as_raw_fd() < 3 { above_stdio(child_end.as_raw_fd())? } else { child_end };
            stdio[i] = Some(child_end.as_raw_fd());
            child_ends.push(child_end);
        }
        let isolate = super::isolate::Prepared::new(isolation, cmd)?;
        let (report_read, report_write) = match super::shares_memory(isolate.is_some()) {
            true => (None, None),
            false => pipe().map(|(r, w)| (Some(r), Some(w)))?,
        };
        // In a user namespace the switch is to the ids mapped inside.
        let inside = isolate.as_ref().and_then(|i| i.userns.as_ref()).map(|u| (u.ids.inside_uid, u.ids.inside_gid));
        // SAFETY: getpid and geteuid have no preconditions.
        let (parent, euid) = unsafe { (libc::getpid(), libc::geteuid()) };
        let plan = Plan {
            candidates,
            _argv: argv,
            argv_ptrs,
            env,
            passing: Passing::prepare(&cmd.passed)?,
            cwd,
            uid: inside.map_or(cmd.uid, |(u, _)| Some(u)),
            gid: inside.map_or(cmd.gid, |(_, g)| Some(g)),
            drop_groups: cmd.uid.is_some() && euid == 0,
            groups: cmd.groups.as_ref().map(|g| g.iter().map(|&g| g as libc::gid_t).collect()),
            umask: cmd.umask.map(|m| m as libc::mode_t),
            stdio,
            joins,
            rlimits,
            parent,
            death_signal: true,
            sweep: FdSweep::prepare(),
            report: report_write.as_ref().map_or(-1, |w| w.as_raw_fd()),
            failure: AtomicU64::new(0),
            isolate,
        };
        Ok((plan, Fds { parent_ends, child_ends, report_read, report_write }))
    }
}
