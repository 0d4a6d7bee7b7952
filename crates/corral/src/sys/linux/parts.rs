//! What holds one group on each Linux backend, in one place.
//!
//! | backend | members, kill, "empty"        | limits and accounting          |
//! |---------|-------------------------------|--------------------------------|
//! | cgroup2 | the v2 leaf                   | v2 controllers, where mounted  |
//! | hybrid  | the v2 leaf                   | v1 controllers                 |
//! | cgroup1 | the v1 directories (freezer)  | v1 controllers                 |
//! | pgid    | process group + environment tag | sampled from `/proc`         |
//!
//! The rest of the module asks one of the two views below ([`Holder`],
//! [`Controls`]) and never the backend's name, so a backend's behaviour is
//! this table.

use super::cgroup_v1::CgroupV1;
use super::cgroup_v2::{read_keyed, read_pids, CgroupV2};
use super::hierarchy::Layout;
use crate::sys::Spec;
use crate::{BackendKind, Error};
use std::io;

/// The directories of one group, per backend.
pub(super) enum Parts {
    CgroupV2(CgroupV2),
    Hybrid { v2: CgroupV2, v1: CgroupV1 },
    CgroupV1(CgroupV1),
    Pgid,
}

/// Where members are listed, killed and watched for "empty".
pub(super) enum Holder<'a> {
    Leaf(&'a CgroupV2),
    V1(&'a CgroupV1),
    Pgid,
}

/// Where limits are written and memory and limit hits are read.
pub(super) enum Controls<'a> {
    V2(&'a CgroupV2),
    V1(&'a CgroupV1),
    /// pgid: nothing to write; the group samples `/proc` instead.
    None,
}

impl<'a> Controls<'a> {
    pub(super) fn v2(&self) -> Option<&'a CgroupV2> {
        match self {
            Controls::V2(v2) => Some(v2),
            _ => None,
        }
    }

    pub(super) fn v1(&self) -> Option<&'a CgroupV1> {
        match self {
            Controls::V1(v1) => Some(v1),
            _ => None,
        }
    }

    /// The kernel's count of the group's OOM kills (0 with no memory
    /// controller). Cumulative: a reused leaf's count is subtracted.
    pub(super) fn oom_kills(&self) -> u64 {
        match self {
            Controls::V2(v2) => v2.oom_kills(),
            Controls::V1(v1) => v1.oom_kills(),
            Controls::None => 0,
        }
    }

    /// The kernel's count of forks the process limit refused.
    pub(super) fn pids_max_hits(&self) -> u64 {
        match self {
            Controls::V2(v2) => v2.pids_max_hits(),
            Controls::V1(v1) => v1.pids_max_hits(),
            Controls::None => 0,
        }
    }
}

impl Parts {
    /// Creates the group's directories for `kind`; nothing is left behind
    /// on failure. `cg_err` words the error for the caller.
    pub(super) fn create(
        kind: BackendKind,
        spec: &Spec,
        l: &Layout,
        cg_err: impl Fn(&str, io::Error) -> Error,
    ) -> crate::Result<Parts> {
        let v2 = || {
            let root = l.v2_root.as_ref().expect("checked by select::available");
            CgroupV2::create(root, &spec.id, &v2_controllers(kind, spec, l))
                .map_err(|e| cg_err("creating the cgroup", e))
        };
        let v1 = |v2: Option<&CgroupV2>| {
            CgroupV1::create(l, &spec.id, &needed_v1(kind, spec)).map_err(|e| {
                if let Some(v) = v2 {
                    let _ = v.remove();
                }
                cg_err("creating the v1 cgroups", e)
            })
        };
        Ok(match kind {
            BackendKind::CgroupV2 => Parts::CgroupV2(v2()?),
            BackendKind::Hybrid => {
                let v2 = v2()?;
                let v1 = v1(Some(&v2))?;
                Parts::Hybrid { v2, v1 }
            }
            BackendKind::CgroupV1 => Parts::CgroupV1(v1(None)?),
            _ => Parts::Pgid,
        })
    }

    pub(super) fn kind(&self) -> BackendKind {
        match self {
            Parts::CgroupV2(_) => BackendKind::CgroupV2,
            Parts::Hybrid { .. } => BackendKind::Hybrid,
            Parts::CgroupV1(_) => BackendKind::CgroupV1,
            Parts::Pgid => BackendKind::Pgid,
        }
    }

    pub(super) fn holder(&self) -> Holder<'_> {
        match self {
            Parts::CgroupV2(v2) | Parts::Hybrid { v2, .. } => Holder::Leaf(v2),
            Parts::CgroupV1(v1) => Holder::V1(v1),
            Parts::Pgid => Holder::Pgid,
        }
    }

    pub(super) fn controls(&self) -> Controls<'_> {
        match self {
            Parts::CgroupV2(v2) => Controls::V2(v2),
            Parts::Hybrid { v1, .. } | Parts::CgroupV1(v1) => Controls::V1(v1),
            Parts::Pgid => Controls::None,
        }
    }

    /// The v2 leaf a leader joins (and is cloned into), if any.
    pub(super) fn v2(&self) -> Option<&CgroupV2> {
        match self {
            Parts::CgroupV2(v2) | Parts::Hybrid { v2, .. } => Some(v2),
            _ => None,
        }
    }

    /// The v1 directories a leader joins, if any.
    pub(super) fn v1(&self) -> Option<&CgroupV1> {
        match self {
            Parts::Hybrid { v1, .. } | Parts::CgroupV1(v1) => Some(v1),
            _ => None,
        }
    }

    pub(super) fn v1_mut(&mut self) -> Option<&mut CgroupV1> {
        match self {
            Parts::Hybrid { v1, .. } | Parts::CgroupV1(v1) => Some(v1),
            _ => None,
        }
    }

    /// Whether the group has cgroups named after it, by which
    /// `/proc/<pid>/cgroup` tells a member.
    pub(super) fn in_cgroup(&self) -> bool {
        !matches!(self, Parts::Pgid)
    }

    /// The name of the group's cgroups, by which `/proc/<pid>/cgroup`
    /// tells a member: its id, or the id of the group that made a pooled
    /// leaf.
    pub(super) fn leaf_name(&self) -> Option<String> {
        let dir = match self {
            Parts::CgroupV2(v2) | Parts::Hybrid { v2, .. } => v2.dir.as_path(),
            Parts::CgroupV1(v1) => v1.dirs().first()?.1.as_path(),
            Parts::Pgid => return None,
        };
        Some(dir.file_name()?.to_string_lossy().into_owned())
    }

    /// True only when the kernel says no process is left (a failed read is
    /// not "empty"): a v2 leaf's `populated 0` covers every process that
    /// joined the group, descendants included; v1 has no such statement,
    /// so each directory's `cgroup.procs` is read.
    pub(super) fn is_provably_empty(&self) -> bool {
        match self {
            Parts::CgroupV2(v2) | Parts::Hybrid { v2, .. } => {
                read_keyed(&v2.file("cgroup.events"), "populated") == Some(0)
            }
            Parts::CgroupV1(v1) => {
                v1.dirs().iter().all(|(_, d)| read_pids(&d.join("cgroup.procs")).is_ok_and(|m| m.is_empty()))
            }
            Parts::Pgid => false,
        }
    }

    /// The same directories, for the pool; the group keeps its own copy
    /// but never touches them again. The v1 OOM eventfd goes along: its
    /// registration stays valid for the next group; so do the kept
    /// counter files.
    pub(super) fn detached(&self) -> Parts {
        match self {
            Parts::CgroupV2(v2) => Parts::CgroupV2(v2.reused()),
            Parts::Hybrid { v2, v1 } => Parts::Hybrid { v2: v2.reused(), v1: v1.reused() },
            Parts::CgroupV1(v1) => Parts::CgroupV1(v1.reused()),
            Parts::Pgid => Parts::Pgid,
        }
    }

    /// From now on the group's counter files stay open once read, for
    /// the reads of every later group on the same (pooled) leaf.
    pub(super) fn keep_counter_files(&mut self) {
        match self {
            Parts::CgroupV2(v2) => v2.kept.keep(),
            Parts::Hybrid { v2, v1 } => {
                v2.kept.keep();
                v1.kept.keep();
            }
            Parts::CgroupV1(v1) => v1.kept.keep(),
            Parts::Pgid => {}
        }
    }

    /// Removes every directory (they must be empty).
    pub(super) fn remove(&self) {
        if let Some(v2) = self.v2() {
            let _ = v2.remove();
        }
        if let Some(v1) = self.v1() {
            let _ = v1.remove_all();
        }
    }
}

/// The v2 controllers a cgroup2 group enables for its limits (a hybrid
/// host's v2 tree has none: its limits live in v1).
pub(super) fn v2_controllers(kind: BackendKind, spec: &Spec, l: &Layout) -> Vec<&'static str> {
    let mut ctl = Vec::new();
    if kind == BackendKind::CgroupV2 {
        let lim = &spec.limits;
        let io = !lim.io.is_empty();
        for (want, c) in [(true, "memory"), (lim.max_procs.is_some(), "pids"), (lim.cpus.is_some(), "cpu"), (io, "io")]
        {
            if want && l.v2_controllers.iter().any(|x| x == c) {
                ctl.push(c);
            }
        }
    }
    ctl
}

/// The v1 controllers a group needs: memory always on a hybrid host (for
/// its accounting), the freezer and cpuacct on cgroup1 (kill, CPU time).
pub(super) fn needed_v1(kind: BackendKind, spec: &Spec) -> Vec<&'static str> {
    let l = &spec.limits;
    let mut c = Vec::new();
    match kind {
        BackendKind::Hybrid => {
            c.push("memory");
            if l.max_procs.is_some() {
                c.push("pids");
            }
            if l.cpus.is_some() {
                c.push("cpu");
            }
            if !l.io.is_empty() {
                c.push("blkio");
            }
        }
        BackendKind::CgroupV1 => {
            c.extend(["freezer", "pids", "memory", "cpuacct"]);
            if l.cpus.is_some() {
                c.push("cpu");
            }
            if !l.io.is_empty() {
                c.push("blkio");
            }
        }
        _ => {}
    }
    c
}
