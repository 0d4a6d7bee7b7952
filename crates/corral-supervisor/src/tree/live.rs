//! A running group's tree: its members from the backend, described from
//! the process table, placed by its lineage.

use super::lineage::Lineage;
use super::Tree;
use corral::Group;
use std::sync::Arc;

/// The tree of `group` now. Reads the process table off the runtime.
pub async fn of_group(group: Arc<Group>, lineage: Option<Lineage>) -> Result<Tree, String> {
    tokio::task::spawn_blocking(move || of_group_blocking(&group, lineage.as_ref()))
        .await
        .map_err(|e| format!("reading the tree failed: {e}"))?
}

/// The same, blocking.
pub fn of_group_blocking(group: &Group, lineage: Option<&Lineage>) -> Result<Tree, String> {
    let members = group.members().map_err(|e| e.to_string())?;
    let procs = corral::describe_processes(&members).map_err(|e| e.to_string())?;
    Ok(Tree::live(procs, group.pid(), lineage))
}
