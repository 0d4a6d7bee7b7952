//! Typed errors. Every error says what failed, carries the OS error where
//! there is one, and a hint a person can act on.

use std::fmt;
use std::io;

/// What kind of failure an [`Error`] is. Match on this, not on messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The program to run was not found (exit code 127 in `corral run`).
    NotFound,
    /// The program was found but cannot be executed (exit code 126).
    NotExecutable,
    /// The OS refused: no permission for a cgroup, a job, a process.
    PermissionDenied,
    /// The request cannot be met on this host or with this backend.
    Unsupported,
    /// A value given by the caller is invalid (a limit, a duration, a size).
    InvalidInput,
    /// Any other OS failure.
    Os,
}

/// The error type of the `corral` library.
#[derive(Debug)]
pub struct Error {
    kind: ErrorKind,
    context: String,
    source: Option<io::Error>,
    hint: Option<String>,
}

/// `Result` with corral's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub(crate) fn new(kind: ErrorKind, context: impl Into<String>) -> Self {
        Error { kind, context: context.into(), source: None, hint: None }
    }

    /// Wraps an OS error; the kind follows from the OS error code.
    pub(crate) fn os(context: impl Into<String>, err: io::Error) -> Self {
        let kind = match err.kind() {
            io::ErrorKind::PermissionDenied => ErrorKind::PermissionDenied,
            io::ErrorKind::NotFound => ErrorKind::NotFound,
            io::ErrorKind::Unsupported => ErrorKind::Unsupported,
            io::ErrorKind::InvalidInput => ErrorKind::InvalidInput,
            _ => ErrorKind::Os,
        };
        Error { kind, context: context.into(), source: Some(err), hint: None }
    }

    pub(crate) fn with_kind(mut self, kind: ErrorKind) -> Self {
        self.kind = kind;
        self
    }

    pub(crate) fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    /// The kind of failure.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The raw OS error code (`errno` or `GetLastError`), if the OS gave one.
    pub fn os_code(&self) -> Option<i32> {
        self.source.as_ref().and_then(|e| e.raw_os_error())
    }

    /// What a person can do about it, if corral knows.
    pub fn hint_text(&self) -> Option<&str> {
        self.hint.as_deref()
    }

    /// What corral was doing when it failed.
    pub fn context(&self) -> &str {
        &self.context
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.context)?;
        if let Some(src) = &self.source {
            write!(f, ": {src}")?;
        }
        if let Some(hint) = &self.hint {
            write!(f, " (hint: {hint})")?;
        }
        Ok(())
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source.as_ref().map(|e| e as &(dyn std::error::Error + 'static))
    }
}
