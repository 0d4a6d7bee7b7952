//! Taking a running tree into the group (`corral adopt`, a restarted
//! daemon's re-attach): the checks, then `adopt::take` into every cgroup
//! directory of the group.

use super::group::Group;
use super::reaper::{self, Owner};
use super::{adopt, corral_roots, fds, hierarchy, layout, procfs};
use crate::sys::Spawned;
use crate::{Error, ErrorKind, SpawnPath};
use std::sync::{Arc, Mutex};

impl Group {
    /// [`crate::sys::SysGroup::adopt_leader`] (`old`: `None`) and
    /// [`crate::sys::SysGroup::reattach_leader`] (`old`: the recorded group id and the
    /// leader's start time): checks, stops, moves, continues.
    pub(super) fn take_running(&self, pid: u32, old: Option<(&str, u64)>) -> crate::Result<Spawned> {
        if !self.parts.in_cgroup() && old.is_none() {
            return self.take_running_pgid(pid);
        }
        if !self.parts.in_cgroup() {
            return Err(Error::new(
                ErrorKind::Unsupported,
                format!("cannot re-attach process {pid} with the pgid backend: a running process cannot be moved into another process group"),
            )
            .hint("re-attaching needs a cgroup: run as root, or under `systemd-run --user -p Delegate=yes`"));
        }
        let l = layout();
        let roots = corral_roots(l);
        let st = match old {
            None => adopt::check(pid, &roots)?,
            Some((id, start)) => adopt::check_recorded(pid, start, id)?,
        };
        // Opened before anything is stopped: from here on, the pid's end
        // is seen even if the number is reused.
        let pidfd = fds::pidfd_open(pid).ok();
        if procfs::stat(pid).map(|s| s.starttime) != Some(st.starttime) {
            return Err(Error::new(ErrorKind::NotFound, format!("cannot adopt process {pid}: it exited")));
        }
        let mut dests = Vec::new();
        if let (Some(v2), Some(mount)) = (self.parts.v2(), &l.v2_mount) {
            dests.push(adopt::Dest { procs: v2.file("cgroup.procs"), mount: mount.clone(), controller: None });
        }
        if let Some(v1) = self.parts.v1() {
            let mounts =
                hierarchy::parse_mountinfo(&std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default());
            let mut seen = Vec::new();
            for (c, dir) in v1.dirs() {
                let Some(m) = mounts.iter().find(|m| !m.v2 && m.controllers.iter().any(|x| x == c)) else { continue };
                if seen.contains(dir) {
                    continue;
                }
                seen.push(dir.clone());
                dests.push(adopt::Dest {
                    procs: dir.join("cgroup.procs"),
                    mount: m.path.clone(),
                    controller: Some(c.clone()),
                });
            }
        }
        let members = adopt::take(pid, st.starttime, &roots, old.map(|(id, _)| id), &dests)?;
        // A running tree's past forks were never seen: it is not followed.
        drop(self.connector.lock().unwrap_or_else(|p| p.into_inner()).take());
        if let Some((id, _)) = old {
            // Emptied by the move: the old group's directories go.
            for root in l.v2_root.iter().chain(l.v1_roots.iter().map(|(_, r)| r)) {
                let _ = std::fs::remove_dir(root.join(id));
            }
        }
        let owner = Arc::new(Owner {
            cgroup_leaf: self.parts.leaf_name(),
            known: Mutex::new(members.into_iter().collect()),
            ..Owner::default()
        });
        reaper::register(pid, owner.clone());
        let _ = self.owner.set(owner);
        let mut ld = self.leader.lock().unwrap_or_else(|p| p.into_inner());
        ld.pid = pid;
        ld.pidfd = pidfd;
        ld.adopted = true;
        Ok(Spawned { pid, stdin: None, stdout: None, stderr: None, path: SpawnPath::Adopted })
    }
}
