//! What happens inside a group, as a stream.

use crate::ExitStatus;
use crate::LimitKind;
use std::path::PathBuf;

/// One thing that happened inside a group.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Event {
    /// A process joined the group.
    Started {
        /// Its pid.
        pid: u32,
        /// Its parent's pid, when known.
        ppid: Option<u32>,
        /// Its executable, when it could be read.
        exe: Option<PathBuf>,
    },
    /// A process of the group replaced its program (`execve`). Only where
    /// the OS reports it as it happens (the Linux process-event
    /// connector); the image and arguments are read at once, so a short
    /// life is still caught.
    Exec {
        /// Its pid.
        pid: u32,
        /// Its new executable, when it could be read.
        exe: Option<PathBuf>,
        /// Its new arguments, the program name first (empty when they
        /// could not be read).
        argv: Vec<String>,
    },
    /// A process of the group ended.
    Exited {
        /// Its pid.
        pid: u32,
        /// Its status, when corral reaped it itself.
        status: Option<ExitStatus>,
    },
    /// A limit was reached.
    LimitHit {
        /// Which one.
        kind: LimitKind,
    },
    /// The group holds no process any more.
    Empty,
}
