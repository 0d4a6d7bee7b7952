//! The fds a `clone3` leader is started through: the v2 leaf's directory
//! (`CLONE_INTO_CGROUP`) and each v1 `tasks` file the child writes itself
//! into. A pooled leaf keeps them open for the next group of its shape
//! (`leaf_pool.rs`), so a spawn on a reused leaf opens and closes nothing.
//!
//! They are close-on-exec: a child of another group, which holds them
//! between its fork and its exec, never keeps them.

use super::fds;
use super::parts::Parts;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::path::PathBuf;

pub(super) struct JoinFds {
    leaf: Option<OwnedFd>,
    tasks: Vec<File>,
}

impl JoinFds {
    /// Opens them for `parts`; on failure, the file that could not be
    /// opened.
    pub(super) fn open(parts: &Parts) -> Result<JoinFds, (PathBuf, io::Error)> {
        let leaf = match parts.v2() {
            Some(v2) => Some(fds::open_dir(&v2.dir).map_err(|e| (v2.dir.clone(), e))?),
            None => None,
        };
        let mut tasks = Vec::new();
        for f in parts.v1().iter().flat_map(|v1| v1.join_files()) {
            tasks.push(OpenOptions::new().write(true).open(&f).map_err(|e| (f, e))?);
        }
        Ok(JoinFds { leaf, tasks })
    }

    pub(super) fn leaf(&self) -> Option<RawFd> {
        self.leaf.as_ref().map(|f| f.as_raw_fd())
    }

    pub(super) fn tasks(&self) -> Vec<RawFd> {
        self.tasks.iter().map(|f| f.as_raw_fd()).collect()
    }
}
