//! Finding what a dead controller left behind.
//!
//! Every process of a group carries the group's tag in its environment,
//! inherited by every descendant (`setsid` and double-fork escapees
//! included), and a group's id starts with its controller's pid. So even a
//! controller that lost every record of its groups (a crash, a corrupt
//! state file) can be cleaned up after by the next one: the tag tells
//! which processes belong to a group, and the id whether its controller
//! still lives.

use crate::{Error, Result};

/// A group whose controller is gone while some of its members live on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrphanedGroup {
    /// The group's id ([`Group::id`](crate::Group::id)).
    pub id: String,
    /// Its live members.
    pub members: Vec<u32>,
}

/// Every group on this host whose controller is no longer running (or
/// whose controller's pid now names a younger, unrelated process), with
/// the members still alive.
///
/// Linux reads each process's environment; it sees the processes of other
/// users only with the privilege to read theirs (root). macOS and Windows
/// find none: macOS offers no other process's environment, and a Windows
/// Job Object kills its members when its controller's handle closes.
pub fn orphaned_groups() -> Result<Vec<OrphanedGroup>> {
    let found = crate::sys::orphaned_groups().map_err(|e| Error::os("reading the process table", e))?;
    Ok(found.into_iter().map(|(id, members)| OrphanedGroup { id, members }).collect())
}

/// Kills every live member of the group `id` whose controller is gone,
/// and returns how many it killed. `leader` is the leader's pid as it was
/// recorded, which is also the group's process group on Unix.
///
/// Linux finds the members by their tag, repeating until a scan finds
/// none (members may fork meanwhile; bounded to a few seconds). macOS,
/// without access to environments, kills the leader's process group.
/// Windows has nothing to do: a Job Object dies with its controller.
pub fn reap_group(id: &str, leader: u32) -> Result<usize> {
    crate::sys::reap_group(id, leader).map_err(|e| Error::os(format!("reaping the leftovers of group {id}"), e))
}
