//! corral's own command type: the builder shape of `std::process::Command`,
//! with everything readable back.
//!
//! Why not only std's `Command`: std keeps its stdio configuration, uid and
//! gid private, so a spawn path other than std's own (corral's `clone3`
//! into the group's cgroup on Linux) cannot read them. A std `Command` is
//! still accepted by [`crate::GroupBuilder::spawn`]; it goes through std's
//! fork with a pre-exec hook, the slower path (see README "Spawning").

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::path::{Path, PathBuf};

/// What a leader's stdin, stdout or stderr is connected to.
#[derive(Debug, Default)]
pub struct Stdio(pub(crate) StdioKind);

#[derive(Debug, Default)]
pub(crate) enum StdioKind {
    /// The controller's own stream.
    #[default]
    Inherit,
    /// `/dev/null` (`NUL` on Windows).
    Null,
    /// A new pipe; the controller's end is taken from the group
    /// ([`crate::Group::take_stdout`] and friends).
    Piped,
    /// An open file (or any fd turned into a `File`).
    File(File),
}

impl Stdio {
    /// The controller's own stream (the default).
    pub fn inherit() -> Stdio {
        Stdio(StdioKind::Inherit)
    }
    /// Nothing: reads see end of file, writes are dropped.
    pub fn null() -> Stdio {
        Stdio(StdioKind::Null)
    }
    /// A new pipe to the controller.
    pub fn piped() -> Stdio {
        Stdio(StdioKind::Piped)
    }

    pub(crate) fn into_std(self) -> std::process::Stdio {
        match self.0 {
            StdioKind::Inherit => std::process::Stdio::inherit(),
            StdioKind::Null => std::process::Stdio::null(),
            StdioKind::Piped => std::process::Stdio::piped(),
            StdioKind::File(f) => std::process::Stdio::from(f),
        }
    }
}

impl From<File> for Stdio {
    fn from(f: File) -> Stdio {
        Stdio(StdioKind::File(f))
    }
}

/// A program to start as a group's leader, built like
/// `std::process::Command`.
///
/// ```
/// use corral::{Command, Stdio};
/// let mut cmd = Command::new("sh");
/// cmd.args(["-c", "echo hi"]).env("LANG", "C").stdout(Stdio::piped());
/// assert_eq!(cmd.get_args().count(), 2);
/// ```
///
/// On Unix the leader always leads a new process group of its own (the
/// group's pgid is the leader's pid), so there is no `process_group`.
#[derive(Debug)]
pub struct Command {
    pub(crate) program: OsString,
    pub(crate) args: Vec<OsString>,
    /// Changes to the inherited environment, in order: `None` removes.
    pub(crate) env: Vec<(OsString, Option<OsString>)>,
    pub(crate) env_clear: bool,
    pub(crate) cwd: Option<PathBuf>,
    pub(crate) stdin: Stdio,
    pub(crate) stdout: Stdio,
    pub(crate) stderr: Stdio,
    #[cfg(unix)]
    pub(crate) uid: Option<u32>,
    #[cfg(unix)]
    pub(crate) gid: Option<u32>,
    /// Supplementary groups, set before the gid and the uid.
    #[cfg(unix)]
    pub(crate) groups: Option<Vec<u32>>,
    #[cfg(unix)]
    pub(crate) umask: Option<u32>,
    /// fds the leader gets at fixed numbers (`pass_fd`).
    #[cfg(unix)]
    pub(crate) passed: Vec<(std::os::fd::OwnedFd, std::os::fd::RawFd)>,
    /// Variables set to the leader's own pid (`env_leader_pid`).
    #[cfg(unix)]
    pub(crate) pid_vars: Vec<OsString>,
}

impl Command {
    /// A command running `program` (looked up in `PATH` when it has no `/`).
    pub fn new(program: impl AsRef<OsStr>) -> Command {
        Command {
            program: program.as_ref().to_owned(),
            args: Vec::new(),
            env: Vec::new(),
            env_clear: false,
            cwd: None,
            stdin: Stdio::inherit(),
            stdout: Stdio::inherit(),
            stderr: Stdio::inherit(),
            #[cfg(unix)]
            uid: None,
            #[cfg(unix)]
            gid: None,
            #[cfg(unix)]
            groups: None,
            #[cfg(unix)]
            umask: None,
            #[cfg(unix)]
            passed: Vec::new(),
            #[cfg(unix)]
            pid_vars: Vec::new(),
        }
    }

    /// Adds one argument.
    pub fn arg(&mut self, arg: impl AsRef<OsStr>) -> &mut Command {
        self.args.push(arg.as_ref().to_owned());
        self
    }
    /// Adds arguments.
    pub fn args<I, S>(&mut self, args: I) -> &mut Command
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.args.extend(args.into_iter().map(|a| a.as_ref().to_owned()));
        self
    }
    /// Sets one environment variable.
    pub fn env(&mut self, key: impl AsRef<OsStr>, val: impl AsRef<OsStr>) -> &mut Command {
        self.env.push((key.as_ref().to_owned(), Some(val.as_ref().to_owned())));
        self
    }
    /// Sets environment variables.
    pub fn envs<I, K, V>(&mut self, vars: I) -> &mut Command
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<OsStr>,
        V: AsRef<OsStr>,
    {
        for (k, v) in vars {
            self.env(k, v);
        }
        self
    }
    /// Removes one variable from what the leader inherits.
    pub fn env_remove(&mut self, key: impl AsRef<OsStr>) -> &mut Command {
        self.env.push((key.as_ref().to_owned(), None));
        self
    }
    /// Starts from an empty environment instead of the controller's.
    pub fn env_clear(&mut self) -> &mut Command {
        self.env.clear();
        self.env_clear = true;
        self
    }
    /// The leader's working directory.
    pub fn current_dir(&mut self, dir: impl AsRef<Path>) -> &mut Command {
        self.cwd = Some(dir.as_ref().to_owned());
        self
    }
    /// The leader's stdin.
    pub fn stdin(&mut self, s: impl Into<Stdio>) -> &mut Command {
        self.stdin = s.into();
        self
    }
    /// The leader's stdout.
    pub fn stdout(&mut self, s: impl Into<Stdio>) -> &mut Command {
        self.stdout = s.into();
        self
    }
    /// The leader's stderr.
    pub fn stderr(&mut self, s: impl Into<Stdio>) -> &mut Command {
        self.stderr = s.into();
        self
    }
    /// Runs the leader as this user id. Without [`Command::gid`] the group
    /// id stays; supplementary groups are dropped when the controller may.
    #[cfg(unix)]
    pub fn uid(&mut self, uid: u32) -> &mut Command {
        self.uid = Some(uid);
        self
    }
    /// Runs the leader with this group id.
    #[cfg(unix)]
    pub fn gid(&mut self, gid: u32) -> &mut Command {
        self.gid = Some(gid);
        self
    }
    /// Runs the leader with exactly these supplementary groups (they are
    /// set before the gid and the uid, which needs `CAP_SETGID`: a spawn
    /// that cannot set them fails rather than run with the controller's).
    #[cfg(unix)]
    pub fn groups(&mut self, groups: &[u32]) -> &mut Command {
        self.groups = Some(groups.to_vec());
        self
    }
    /// The leader's file mode creation mask (`0o027`: no write for the
    /// group, nothing for others). Only the permission bits count.
    #[cfg(unix)]
    pub fn umask(&mut self, mask: u32) -> &mut Command {
        self.umask = Some(mask & 0o777);
        self
    }

    /// Gives the leader `fd` as fd number `target` (3 or above), open
    /// across `exec`: how a supervisor hands a service its listening
    /// sockets (systemd's socket activation passes them from 3). The
    /// command owns `fd` until the spawn; the controller's own copy, if it
    /// keeps one, is not touched. Every other fd above 2 is still closed
    /// at exec.
    #[cfg(unix)]
    pub fn pass_fd(&mut self, fd: std::os::fd::OwnedFd, target: std::os::fd::RawFd) -> &mut Command {
        self.passed.push((fd, target));
        self
    }

    /// Sets `key` to the leader's own pid, written in the child between
    /// fork and exec (the parent cannot know it sooner): `LISTEN_PID` and
    /// `WATCHDOG_PID` of systemd's protocols.
    #[cfg(unix)]
    pub fn env_leader_pid(&mut self, key: impl AsRef<OsStr>) -> &mut Command {
        self.pid_vars.push(key.as_ref().to_owned());
        self
    }

    /// The program.
    pub fn get_program(&self) -> &OsStr {
        &self.program
    }
    /// The arguments, without the program.
    pub fn get_args(&self) -> impl Iterator<Item = &OsStr> {
        self.args.iter().map(|a| a.as_os_str())
    }
    /// The working directory, if set.
    pub fn get_current_dir(&self) -> Option<&Path> {
        self.cwd.as_deref()
    }

    /// The environment the leader will get: the controller's (unless
    /// cleared) with this command's changes applied one by one, the plain
    /// reading of std's rules that the spawn paths' one-pass build
    /// (`sys/unix/envp.rs`) is checked against.
    #[cfg(test)]
    pub(crate) fn resolved_env(&self) -> Vec<(OsString, OsString)> {
        let mut env: Vec<(OsString, OsString)> =
            if self.env_clear { Vec::new() } else { std::env::vars_os().collect() };
        for (k, v) in &self.env {
            // Every entry of that name goes (an environment may hold one
            // twice), then the new value, if any, is added.
            env.retain(|(ek, _)| ek != k);
            if let Some(v) = v {
                env.push((k.clone(), v.clone()));
            }
        }
        env
    }

    /// The same command for std's spawn path (other OSes, and the fork
    /// fallback on Linux).
    pub(crate) fn into_std(self) -> std::process::Command {
        let mut c = std::process::Command::new(&self.program);
        c.args(&self.args);
        if self.env_clear {
            c.env_clear();
        }
        for (k, v) in &self.env {
            match v {
                Some(v) => c.env(k, v),
                None => c.env_remove(k),
            };
        }
        if let Some(d) = &self.cwd {
            c.current_dir(d);
        }
        #[cfg(unix)]
        crate::sys::unix::identity::apply_to_std(
            &mut c,
            crate::sys::unix::identity::Identity {
                uid: self.uid,
                gid: self.gid,
                groups: self.groups,
                umask: self.umask,
            },
        );
        c.stdin(self.stdin.into_std()).stdout(self.stdout.into_std()).stderr(self.stderr.into_std());
        c
    }
}

/// What [`crate::GroupBuilder::spawn`] accepts: corral's [`Command`] (the
/// fast path) or a `std::process::Command` (std's fork path).
pub trait IntoLeader: sealed::Sealed {
    #[doc(hidden)]
    fn into_leader(self) -> Leader;
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for super::Command {}
    impl Sealed for std::process::Command {}
}

/// A leader's command, as the OS layer receives it.
#[doc(hidden)]
#[derive(Debug)]
pub enum Leader {
    /// corral's command: every setting readable, so any spawn path works.
    Own(Command),
    /// std's command: only std can spawn it.
    Std(std::process::Command),
}

impl Leader {
    /// The working directory the command asks for.
    pub(crate) fn current_dir(&self) -> Option<&Path> {
        match self {
            Leader::Own(c) => c.get_current_dir(),
            Leader::Std(c) => c.get_current_dir(),
        }
    }

    /// The command for std's spawn path.
    #[cfg_attr(target_os = "linux", allow(dead_code))]
    pub(crate) fn into_std(self) -> std::process::Command {
        match self {
            Leader::Own(c) => c.into_std(),
            Leader::Std(c) => c,
        }
    }
}

impl IntoLeader for Command {
    fn into_leader(self) -> Leader {
        Leader::Own(self)
    }
}

impl IntoLeader for std::process::Command {
    fn into_leader(self) -> Leader {
        Leader::Std(self)
    }
}

/// How a group's leader was started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SpawnPath {
    /// Linux `clone3` straight into the group's cgroup (`CLONE_INTO_CGROUP`
    /// when a cgroup v2 leaf exists), with a pidfd; vfork-like cost.
    Clone3,
    /// A fork that joins the group in the child before `exec`: std's
    /// spawn with a pre-exec hook (macOS, a std `Command`, or Linux where
    /// `clone3` was refused or `CORRAL_SPAWN=fork`).
    Fork,
    /// Windows `CreateProcess`, suspended until the leader is in its job.
    CreateProcess,
    /// Not started by corral: a running tree taken over by
    /// [`GroupBuilder::adopt`](crate::GroupBuilder::adopt). corral is not
    /// the leader's parent, so the leader's exit status is unknown.
    Adopted,
}

impl SpawnPath {
    /// The stable name used in reports: `clone3`, `fork`, `createprocess`,
    /// `adopted`.
    pub fn as_str(self) -> &'static str {
        match self {
            SpawnPath::Clone3 => "clone3",
            SpawnPath::Fork => "fork",
            SpawnPath::CreateProcess => "createprocess",
            SpawnPath::Adopted => "adopted",
        }
    }
}

impl std::fmt::Display for SpawnPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_changes_apply_in_order_over_a_cleared_or_inherited_base() {
        let mut c = Command::new("x");
        c.env_clear().env("A", "1").env("B", "2").env_remove("A").env("B", "3");
        assert_eq!(c.resolved_env(), vec![("B".into(), "3".into())]);
        let mut c = Command::new("x");
        c.env("CORRAL_TEST_ONLY_HERE", "v");
        let env = c.resolved_env();
        assert!(env.iter().any(|(k, v)| k == "CORRAL_TEST_ONLY_HERE" && v == "v"));
        assert!(env.iter().any(|(k, _)| k == "PATH"), "the controller's environment is inherited");
    }

    #[test]
    fn env_clear_forgets_earlier_changes_like_std() {
        let mut c = Command::new("x");
        c.env("A", "1").env_clear();
        assert!(c.resolved_env().is_empty());
    }
}
