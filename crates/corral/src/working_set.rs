//! Working-set limits: how much of its memory each process of a group may
//! keep resident, a limit of Windows jobs (`JOB_OBJECT_LIMIT_WORKINGSET`).
//!
//! A working set is the pages a process holds in RAM right now. Past the
//! maximum the memory manager trims the process's pages (to the standby
//! list, from which a touch brings them back): the limit slows a process
//! down, it never kills it. The minimum is what the manager tries to
//! leave it when memory is short.
//!
//! Linux and macOS have no such limit, and corral does not pretend:
//! `RLIMIT_RSS` has been ignored by Linux since 2.6, and a cgroup's
//! `memory.high` throttles the whole group and counts its page cache, a
//! different promise. A working-set limit is refused there.

use crate::{Error, ErrorKind, Result};

/// The resident memory each process of a group keeps: at least `min`
/// when memory is short, at most `max` (Windows jobs; see the module
/// docs for what it does and does not promise).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct WorkingSet {
    /// Bytes the memory manager leaves each process when memory is short.
    pub min: u64,
    /// Bytes past which the memory manager trims each process's pages.
    pub max: u64,
}

impl WorkingSet {
    /// Between `min` and `max` bytes resident for each process.
    pub fn new(min: u64, max: u64) -> WorkingSet {
        WorkingSet { min, max }
    }

    /// Checks the values and that this host can hold a group to them
    /// (Windows only); a config reader calls it to refuse a setting
    /// before anything starts.
    pub fn check(&self) -> Result<()> {
        self.validate()?;
        refuse_off_windows(self)
    }

    /// The values themselves: both above 0, `min` at most `max`, bounded.
    pub(crate) fn validate(&self) -> Result<()> {
        let bad = |what: String| {
            Err(Error::new(ErrorKind::InvalidInput, format!("invalid limit: {what}"))
                .hint("give a working set as MIN:MAX, like 16MiB:256MiB"))
        };
        if self.min == 0 || self.max == 0 {
            return bad("the working set's min and max must be greater than 0".into());
        }
        if self.min > self.max {
            return bad(format!("the working set's min ({} bytes) is above its max ({} bytes)", self.min, self.max));
        }
        if self.max > crate::units::MAX_SIZE {
            return bad("the working set's max must be at most 1 PiB".into());
        }
        Ok(())
    }
}

/// Refuses a working-set limit where no OS call provides it.
#[cfg(windows)]
fn refuse_off_windows(_: &WorkingSet) -> Result<()> {
    Ok(())
}

#[cfg(not(windows))]
fn refuse_off_windows(_: &WorkingSet) -> Result<()> {
    Err(Error::new(
        ErrorKind::Unsupported,
        format!(
            "a working-set limit is a limit of Windows jobs; {} has no per-process limit of resident memory",
            std::env::consts::OS
        ),
    )
    .hint("drop working_set on this host; memory or memory_per_process limit what a process may commit"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn min_and_max_are_above_zero_and_ordered() {
        assert!(WorkingSet::new(0, 1 << 20).validate().is_err());
        let e = WorkingSet::new(2 << 20, 1 << 20).validate().unwrap_err();
        assert!(e.to_string().contains("min (2097152 bytes) is above its max (1048576 bytes)"), "{e}");
        assert!(WorkingSet::new(1 << 20, u64::MAX).validate().is_err());
        WorkingSet::new(1 << 20, 1 << 20).validate().unwrap();
    }

    #[test]
    #[cfg(not(windows))]
    fn a_working_set_is_refused_off_windows_in_one_line() {
        let e = WorkingSet::new(1 << 20, 64 << 20).check().unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Unsupported);
        assert!(e.to_string().contains("a working-set limit is a limit of Windows jobs"), "{e}");
    }
}
