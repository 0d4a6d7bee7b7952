//! Starting the leader inside the group: `clone3` straight into the v2
//! leaf where it may (`spawn/`), else std's fork with a `pre_exec` hook
//! that joins every cgroup before the program runs a single instruction.

use super::group::Group;
use super::join_fds::JoinFds;
use super::{fds, procfs, reaper, spawn, unix};
use crate::command::Leader as LeaderCmd;
use crate::sys::Spawned;
use crate::{Error, ErrorKind, SpawnPath};
use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;

impl Group {
    /// [`crate::sys::SysGroup::spawn_leader`].
    pub(super) fn launch(&self, cmd: LeaderCmd) -> crate::Result<Spawned> {
        unix::hygiene::restore_sigchld()?;
        // Before the leader exists: every member starts after this.
        let since = procfs::boot_ticks_now();
        let leader = match self.try_clone3(cmd, since)? {
            Ok(started) => return Ok(started),
            Err(leader) => leader,
        };
        let id = self.spec.id.clone();
        // Passed fds and pid variables: the last hook execs the leader itself.
        let image = match &leader {
            LeaderCmd::Own(c) => unix::passing::ExecImage::of(c, &[("CORRAL_GROUP", &id)])
                .map_err(|e| Error::os(format!("starting {}", c.get_program().to_string_lossy()), e))?,
            LeaderCmd::Std(_) => None,
        };
        let mut cmd = leader.into_std();
        cmd.env("CORRAL_GROUP", &id);
        cmd.process_group(0);
        let mut files: Vec<PathBuf> = Vec::new();
        if let Some(v1) = self.parts.v1() {
            files.extend(v1.join_files());
        }
        // v2 has no single-thread shortcut between domains (`cgroup.threads`
        // is for threaded subtrees): this write waits for the lock.
        if let Some(v2) = self.parts.v2() {
            files.push(v2.file("cgroup.procs"));
        }
        let mut fds: Vec<std::fs::File> = Vec::new();
        for f in &files {
            let file = std::fs::OpenOptions::new().write(true).open(f).map_err(|e| {
                Error::os(format!("opening {}", f.display()), e).hint("the cgroup is not writable by this user")
            })?;
            fds.push(file);
        }
        let raw: Vec<RawFd> = fds.iter().map(|f| f.as_raw_fd()).collect();
        let rlimits = unix::process_rlimits(&self.spec.limits);
        let sweep = unix::hygiene::FdSweep::prepare();
        // SAFETY: getpid has no preconditions.
        let parent = unsafe { libc::getpid() };
        let death_signal = !self.spec.outlive;
        // SAFETY: the closure runs between fork and exec and only makes
        // async-signal-safe syscalls on fds and values captured by copy.
        unsafe {
            cmd.pre_exec(move || {
                for &fd in &raw {
                    if libc::write(fd, b"0".as_ptr().cast(), 1) != 1 {
                        return Err(io::Error::last_os_error());
                    }
                }
                if death_signal {
                    if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) != 0 {
                        return Err(io::Error::last_os_error());
                    }
                    // The parent may have died before pdeathsig was armed.
                    if libc::getppid() != parent {
                        libc::_exit(137);
                    }
                }
                unix::apply_rlimits(&rlimits)?;
                unix::hygiene::reset_ignored_signals();
                unix::hygiene::close_inherited_fds(sweep, 3)
            });
        }
        if let Some(image) = image {
            image.install(&mut cmd);
        }
        let program = cmd.get_program().to_string_lossy().into_owned();
        let guard = reaper::spawning();
        let child = cmd.spawn().map_err(|e| spawn_error(&program, e))?;
        self.adopt(child.id(), fds::pidfd_open(child.id()).ok(), since);
        drop(guard);
        drop(fds);
        Ok(Spawned::from_child(child, SpawnPath::Fork))
    }

    /// Starts a corral `Command` with `clone3` straight into the group.
    /// Gives the command back for the fork path when `clone3` is
    /// refused, forced off, or the command is std's own.
    fn try_clone3(&self, cmd: LeaderCmd, since: u64) -> crate::Result<Result<Spawned, LeaderCmd>> {
        let isolated = !self.spec.isolation.is_empty();
        let cmd = match cmd {
            // An isolated spawn is fork-like already: CORRAL_SPAWN=fork
            // changes nothing for it.
            LeaderCmd::Own(c) if isolated || (!self.spec.force_fork && spawn::enabled()) => c,
            LeaderCmd::Std(_) if isolated => {
                return Err(Error::new(ErrorKind::Unsupported, "isolation needs a corral::Command as the leader")
                    .hint("build the leader with corral::Command; std's Command keeps its settings private"))
            }
            other => return Ok(Err(other)),
        };
        spawn::check_user_switch(&cmd, &self.spec.isolation)?;
        let program = cmd.get_program().to_string_lossy().into_owned();
        let not_writable = |p: &std::path::Path, e: io::Error| {
            Error::os(format!("opening {}", p.display()), e).hint("the cgroup is not writable by this user")
        };
        // Kept with the group (and its leaf when it is pooled): a reused
        // leaf's spawn opens nothing.
        let mut joins = self.joins.lock().unwrap_or_else(|p| p.into_inner());
        if joins.is_none() {
            *joins = Some(JoinFds::open(&self.parts).map_err(|(p, e)| not_writable(&p, e))?);
        }
        let (leaf, tasks) = joins.as_ref().map(|j| (j.leaf(), j.tasks())).unwrap_or_default();
        let rlimits = unix::process_rlimits(&self.spec.limits);
        let guard = reaper::spawning();
        let started = spawn::spawn(
            &cmd,
            &[("CORRAL_GROUP", &self.spec.id)],
            leaf,
            tasks,
            rlimits,
            !self.spec.outlive,
            &self.spec.isolation,
        );
        let started = match started {
            Ok(s) => s,
            Err(spawn::NotStarted::Refused) if isolated => {
                return Err(Error::new(ErrorKind::Unsupported, format!("starting {program}: clone3 was refused"))
                    .hint("isolation needs clone3 (Linux 5.7+, no seccomp filter on it); see `corral doctor`"))
            }
            Err(spawn::NotStarted::Refused) => return Ok(Err(LeaderCmd::Own(cmd))),
            Err(spawn::NotStarted::Failed { step: Some(spawn::Step::Exec), err, .. }) => {
                return Err(spawn_error(&program, err))
            }
            Err(spawn::NotStarted::Failed { step: Some(step), detail, err }) => {
                let doing = detail.unwrap_or_else(|| step.doing().to_string());
                return Err(Error::os(format!("starting {program}: {doing}"), err));
            }
            Err(spawn::NotStarted::Failed { step: None, err, .. }) => {
                return Err(Error::os(format!("starting {program}"), err))
            }
        };
        self.adopt(started.pid, Some(started.pidfd), since);
        drop(guard);
        let [stdin, stdout, stderr] = started.pipes;
        Ok(Ok(Spawned {
            pid: started.pid,
            stdin: stdin.map(Into::into),
            stdout: stdout.map(Into::into),
            stderr: stderr.map(Into::into),
            path: SpawnPath::Clone3,
        }))
    }
}

fn spawn_error(program: &str, e: io::Error) -> Error {
    match e.raw_os_error() {
        Some(libc::ENOENT) => Error::os(format!("command not found: {program}"), e)
            .with_kind(ErrorKind::NotFound)
            .hint("check the spelling and PATH"),
        Some(libc::EACCES) | Some(libc::ENOEXEC) | Some(libc::EISDIR) => {
            Error::os(format!("cannot execute {program}"), e)
                .with_kind(ErrorKind::NotExecutable)
                .hint("check that it is a program and has the execute bit (chmod +x)")
        }
        _ => Error::os(format!("starting {program}"), e),
    }
}
