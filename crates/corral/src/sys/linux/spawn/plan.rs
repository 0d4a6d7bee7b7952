//! Everything the child needs, prepared in the parent: C strings, the
//! candidates of a `PATH` search, stdio fds, the pipe that reports a
//! failure. The child only reads this; it allocates nothing.

use crate::command::{Command, StdioKind};
use crate::sys::unix::hygiene::FdSweep;
use crate::sys::unix::Rlimit;
use std::ffi::{CString, OsStr, OsString};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;

/// Where `execvp` looks when `PATH` is unset (glibc's default).
const DEFAULT_PATH: &str = "/bin:/usr/bin";

pub(super) struct Plan {
    /// Full paths to try in order (one unless a `PATH` search).
    pub candidates: Vec<CString>,
    /// Owns the strings `argv_ptrs` points to.
    _argv: Vec<CString>,
    pub argv_ptrs: Vec<*const libc::c_char>,
    /// Owns the strings `envp_ptrs` points to.
    _envp: Vec<CString>,
    pub envp_ptrs: Vec<*const libc::c_char>,
    pub cwd: Option<CString>,
    pub uid: Option<libc::uid_t>,
    pub gid: Option<libc::gid_t>,
    /// Drop supplementary groups along with the uid (root only, like std).
    pub drop_groups: bool,
    /// The fd to put on 0, 1 and 2; `None` inherits.
    pub stdio: [Option<RawFd>; 3],
    /// v1 `tasks` files the child writes `0` into.
    pub joins: Vec<RawFd>,
    pub rlimits: Vec<Rlimit>,
    pub parent: libc::pid_t,
    /// How the child marks inherited fds close-on-exec (decided here).
    pub sweep: FdSweep,
    /// Write end of the failure pipe (close-on-exec).
    pub report: RawFd,
    /// Namespaces, mounts, privileges; `None` when nothing is isolated.
    pub isolate: Option<super::isolate::Prepared>,
}

/// The fds a plan refers to, owned here so they outlive the spawn.
pub(super) struct Fds {
    /// The controller's ends of piped stdio.
    pub parent_ends: [Option<OwnedFd>; 3],
    /// Child ends and `/dev/null`: closed in the parent after the spawn.
    pub child_ends: Vec<OwnedFd>,
    pub report_read: OwnedFd,
    pub report_write: OwnedFd,
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

/// The paths `execvp` would try for `program`, given the `PATH` in effect.
pub(super) fn candidates(program: &OsStr, path: Option<&OsStr>) -> Vec<OsString> {
    if program.as_bytes().contains(&b'/') || program.is_empty() {
        return vec![program.to_owned()];
    }
    let path = path.map(|p| p.as_bytes()).unwrap_or(DEFAULT_PATH.as_bytes());
    path.split(|b| *b == b':')
        .map(|dir| {
            if dir.is_empty() {
                // An empty entry is the working directory, as for execvp.
                return program.to_owned();
            }
            let mut c = dir.to_vec();
            if !c.ends_with(b"/") {
                c.push(b'/');
            }
            c.extend_from_slice(program.as_bytes());
            OsString::from(std::ffi::OsStr::from_bytes(&c))
        })
        .collect()
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
        let mut env = cmd.resolved_env();
        for (k, v) in extra_env {
            env.retain(|(ek, _)| ek != k);
            env.push((OsString::from(k), OsString::from(v)));
        }
        // std searches the child's PATH when the command set one, else
        // the controller's.
        let path = cmd
            .env
            .iter()
            .rev()
            .find(|(k, _)| k == "PATH")
            .map(|(_, v)| v.clone())
            .unwrap_or_else(|| std::env::var_os("PATH"));
        let candidates =
            candidates(&cmd.program, path.as_deref()).iter().map(|c| cstring(c)).collect::<io::Result<Vec<_>>>()?;
        let mut argv = vec![cstring(&cmd.program)?];
        for a in &cmd.args {
            argv.push(cstring(a)?);
        }
        let mut envp = Vec::with_capacity(env.len());
        for (k, v) in &env {
            let mut kv = k.as_bytes().to_vec();
            kv.push(b'=');
            kv.extend_from_slice(v.as_bytes());
            envp.push(
                CString::new(kv)
                    .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "a NUL byte in the environment"))?,
            );
        }
        let argv_ptrs = argv.iter().map(|c| c.as_ptr()).chain(std::iter::once(std::ptr::null())).collect();
        let envp_ptrs = envp.iter().map(|c| c.as_ptr()).chain(std::iter::once(std::ptr::null())).collect();
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
        let (report_read, report_write) = pipe()?;
        // SAFETY: getpid and geteuid have no preconditions.
        let (parent, euid) = unsafe { (libc::getpid(), libc::geteuid()) };
        let plan = Plan {
            candidates,
            _argv: argv,
            argv_ptrs,
            _envp: envp,
            envp_ptrs,
            cwd,
            uid: cmd.uid,
            gid: cmd.gid,
            drop_groups: cmd.uid.is_some() && euid == 0,
            stdio,
            joins,
            rlimits,
            parent,
            sweep: FdSweep::prepare(),
            report: report_write.as_raw_fd(),
            isolate: super::isolate::Prepared::new(isolation)?,
        };
        Ok((plan, Fds { parent_ends, child_ends, report_read, report_write }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_program_with_a_slash_is_run_as_given() {
        assert_eq!(candidates(OsStr::new("./x"), Some(OsStr::new("/a:/b"))), vec![OsString::from("./x")]);
    }

    #[test]
    fn path_entries_are_tried_in_order_and_an_empty_one_is_the_cwd() {
        let c = candidates(OsStr::new("ls"), Some(OsStr::new("/usr/bin::/bin/")));
        assert_eq!(c, vec![OsString::from("/usr/bin/ls"), OsString::from("ls"), OsString::from("/bin/ls")]);
    }

    #[test]
    fn without_path_the_default_of_execvp_is_searched() {
        let c = candidates(OsStr::new("sh"), None);
        assert_eq!(c, vec![OsString::from("/bin/sh"), OsString::from("/usr/bin/sh")]);
    }
}
