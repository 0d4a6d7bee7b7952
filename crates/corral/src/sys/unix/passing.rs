//! What a leader receives besides stdio: fds at fixed numbers
//! ([`crate::Command::pass_fd`], socket activation's fds from 3) and
//! variables that hold its own pid ([`crate::Command::env_leader_pid`],
//! `LISTEN_PID`, `WATCHDOG_PID`).
//!
//! The leader's pid is known only in the child, between fork (or clone)
//! and exec, where nothing may allocate. So each such variable is a slot
//! allocated in the parent, `KEY=` followed by room for the digits, that
//! the child fills with `getpid()` in place before `execve`.
//!
//! std's fork path builds its environment where a pre-exec hook cannot
//! reach it: a leader that needs either feature is exec'd by the last hook
//! itself, from an [`ExecImage`] prepared here (the same `PATH` search as
//! `execvp`). The clone3 path has its own plan and uses the pieces.

use super::envp::Envp;
use crate::command::Command;
use std::ffi::{CString, OsStr, OsString};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;

/// Where `execvp` looks when `PATH` is unset (glibc's default).
const DEFAULT_PATH: &str = "/bin:/usr/bin";

/// Room for the decimal digits of any pid (`i32::MAX` has 10).
const PID_DIGITS: usize = 10;

/// One `KEY=<pid>` entry of the environment, written in the child.
pub(crate) struct PidVar {
    ptr: *mut u8,
    len: usize,
    value_at: usize,
}

// SAFETY: the buffer is written only by a child between fork and exec,
// on its own copy (or while the parent sleeps, with CLONE_VFORK).
unsafe impl Send for PidVar {}
// SAFETY: as above; the parent only reads its address.
unsafe impl Sync for PidVar {}

impl PidVar {
    pub(crate) fn new(key: &OsStr) -> io::Result<PidVar> {
        let key = key.as_bytes();
        if key.is_empty() || key.contains(&b'=') || key.contains(&0) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "a pid variable's name is empty or holds '=' or NUL",
            ));
        }
        let mut buf = key.to_vec();
        buf.push(b'=');
        let value_at = buf.len();
        buf.push(b'0');
        buf.resize(value_at + PID_DIGITS + 1, 0);
        let len = buf.len();
        let ptr = Box::into_raw(buf.into_boxed_slice()) as *mut u8;
        Ok(PidVar { ptr, len, value_at })
    }

    /// The `KEY=VALUE` C string, for an `envp` array.
    pub(crate) fn as_ptr(&self) -> *const libc::c_char {
        self.ptr as *const libc::c_char
    }

    /// Writes `pid` as the value. Async-signal-safe: stores bytes only.
    pub(crate) fn fill(&self, pid: i32) {
        let mut digits = [0u8; PID_DIGITS];
        let mut n = pid.max(0) as u32;
        let mut i = PID_DIGITS;
        loop {
            i -= 1;
            digits[i] = b'0' + (n % 10) as u8;
            n /= 10;
            if n == 0 || i == 0 {
                break;
            }
        }
        let used = PID_DIGITS - i;
        // SAFETY: value_at + PID_DIGITS + 1 == len, so value and NUL fit.
        unsafe {
            std::ptr::copy_nonoverlapping(digits[i..].as_ptr(), self.ptr.add(self.value_at), used);
            *self.ptr.add(self.value_at + used) = 0;
        }
    }

    #[cfg(test)]
    fn text(&self) -> String {
        // SAFETY: the buffer always holds a NUL within len.
        unsafe { std::ffi::CStr::from_ptr(self.as_ptr()) }.to_string_lossy().into_owned()
    }
}

impl Drop for PidVar {
    fn drop(&mut self) {
        // SAFETY: ptr and len come from Box::into_raw of a boxed slice.
        drop(unsafe { Box::from_raw(std::ptr::slice_from_raw_parts_mut(self.ptr, self.len)) });
    }
}

/// The fds to put at fixed numbers in the child.
pub(crate) struct Passing {
    /// Close-on-exec copies above every target, so no `dup2` overwrites a
    /// source before its turn; with their targets.
    fds: Vec<(OwnedFd, RawFd)>,
}

impl Passing {
    /// Checks the targets (3 or above, each once) and copies the sources
    /// out of their way.
    pub(crate) fn prepare(passed: &[(OwnedFd, RawFd)]) -> io::Result<Passing> {
        let Some(top) = passed.iter().map(|(_, t)| *t).max() else { return Ok(Passing { fds: Vec::new() }) };
        let mut fds = Vec::with_capacity(passed.len());
        for (i, (src, target)) in passed.iter().enumerate() {
            if *target < 3 {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("fd {target} cannot be passed: 0, 1 and 2 are stdin, stdout and stderr"),
                ));
            }
            if passed[..i].iter().any(|(_, t)| t == target) {
                return Err(io::Error::new(io::ErrorKind::InvalidInput, format!("fd {target} is passed twice")));
            }
            // SAFETY: F_DUPFD_CLOEXEC on an fd the command owns.
            let d = unsafe { libc::fcntl(src.as_raw_fd(), libc::F_DUPFD_CLOEXEC, top + 1) };
            if d < 0 {
                return Err(io::Error::last_os_error());
            }
            // SAFETY: fcntl just returned this fresh fd.
            fds.push((unsafe { OwnedFd::from_raw_fd(d) }, *target));
        }
        Ok(Passing { fds })
    }

    /// Puts every fd at its number, inheritable. Runs in the child after
    /// the close-on-exec sweep; async-signal-safe.
    pub(crate) fn apply(&self) -> io::Result<()> {
        for (src, target) in &self.fds {
            // SAFETY: dup2 on fds this plan owns; it clears FD_CLOEXEC on the target.
            if unsafe { libc::dup2(src.as_raw_fd(), *target) } < 0 {
                return Err(io::Error::last_os_error());
            }
        }
        Ok(())
    }
}

/// The paths `execvp` would try for `program`, given the `PATH` in effect.
pub(crate) fn candidates(program: &OsStr, path: Option<&OsStr>) -> Vec<OsString> {
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
            OsString::from(OsStr::from_bytes(&c))
        })
        .collect()
}

fn cstring(s: &[u8]) -> io::Result<CString> {
    CString::new(s).map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "a NUL byte in the command"))
}

/// Everything the last pre-exec hook of std's fork path needs to put the
/// passed fds in place, fill the pid variables and exec the leader.
pub(crate) struct ExecImage {
    candidates: Vec<CString>,
    _argv: Vec<CString>,
    argv_ptrs: Vec<*const libc::c_char>,
    envp: Envp,
    passing: Passing,
}

// SAFETY: the pointers point into buffers this value owns; the child
// writes only its own copy (see PidVar).
unsafe impl Send for ExecImage {}
// SAFETY: as above.
unsafe impl Sync for ExecImage {}

impl ExecImage {
    /// The image of `cmd` with `extra` set over its environment; `None`
    /// when it passes neither fds nor pid variables (std's own exec does).
    pub(crate) fn of(cmd: &Command, extra: &[(&str, &str)]) -> io::Result<Option<ExecImage>> {
        if cmd.passed.is_empty() && cmd.pid_vars.is_empty() {
            return Ok(None);
        }
        let (envp, path) = Envp::of_command(cmd, extra)?;
        let candidates = candidates(&cmd.program, path.as_deref())
            .iter()
            .map(|c| cstring(c.as_bytes()))
            .collect::<io::Result<Vec<_>>>()?;
        let mut argv = vec![cstring(cmd.program.as_bytes())?];
        for a in &cmd.args {
            argv.push(cstring(a.as_bytes())?);
        }
        let argv_ptrs = argv.iter().map(|c| c.as_ptr()).chain(std::iter::once(std::ptr::null())).collect();
        Ok(Some(ExecImage { candidates, _argv: argv, argv_ptrs, envp, passing: Passing::prepare(&cmd.passed)? }))
    }

    /// Makes this image the last pre-exec hook of `cmd`: it runs after
    /// every other hook (the fd sweep among them) and never returns on
    /// success.
    pub(crate) fn install(self, cmd: &mut std::process::Command) {
        use std::os::unix::process::CommandExt;
        // SAFETY: the hook makes only async-signal-safe calls (dup2,
        // getpid, execve) on memory prepared here.
        unsafe { cmd.pre_exec(move || Err(self.exec())) };
    }

    /// In the child: fds in place, pids filled, then `execve` over the
    /// candidates with `execvp`'s rules; returns only on failure.
    fn exec(&self) -> io::Error {
        if let Err(e) = self.passing.apply() {
            return e;
        }
        self.envp.fill_pids();
        let mut err = libc::ENOENT;
        let mut denied = false;
        for c in &self.candidates {
            // SAFETY: NUL-terminated strings and arrays owned by self.
            unsafe { libc::execve(c.as_ptr(), self.argv_ptrs.as_ptr(), self.envp.ptrs.as_ptr()) };
            err = io::Error::last_os_error().raw_os_error().unwrap_or(libc::ENOENT);
            match err {
                libc::EACCES => denied = true,
                libc::ENOENT | libc::ENOTDIR | libc::ESTALE | libc::ENODEV | libc::ETIMEDOUT => {}
                _ => break,
            }
        }
        if denied && matches!(err, libc::ENOENT | libc::ENOTDIR | libc::ESTALE | libc::ENODEV | libc::ETIMEDOUT) {
            err = libc::EACCES;
        }
        io::Error::from_raw_os_error(err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pid_slot_holds_any_pid_and_stays_terminated() {
        let v = PidVar::new(OsStr::new("LISTEN_PID")).unwrap();
        assert_eq!(v.text(), "LISTEN_PID=0");
        v.fill(i32::MAX);
        assert_eq!(v.text(), "LISTEN_PID=2147483647");
        v.fill(7);
        assert_eq!(v.text(), "LISTEN_PID=7");
        assert!(PidVar::new(OsStr::new("A=B")).is_err());
    }

    #[test]
    fn stdio_and_twice_used_targets_are_refused() {
        let f = || OwnedFd::from(std::fs::File::open("/dev/null").unwrap());
        assert!(Passing::prepare(&[(f(), 2)]).is_err());
        assert!(Passing::prepare(&[(f(), 3), (f(), 3)]).is_err());
        let p = Passing::prepare(&[(f(), 3), (f(), 9)]).unwrap();
        assert!(p.fds.iter().all(|(d, _)| d.as_raw_fd() > 9), "copies sit above every target");
    }

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
