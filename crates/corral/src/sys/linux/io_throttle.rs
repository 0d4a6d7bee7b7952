//! I/O limits on the group's cgroup: one `io.max` line per disk on v2,
//! the four `blkio.throttle.*_device` files on v1 (hybrid hosts too,
//! where v2 holds no controller). Direct I/O is throttled on both; v1
//! does not see buffered writes (the kernel's writeback is not charged to
//! the group), v2 does.

use super::block_device::disk_of;
use super::group::Group;
use super::hierarchy::Layout;
use crate::sys::Spec;
use crate::{BackendKind, Error, ErrorKind, IoLimit};
use std::io;

/// Every I/O limit of `spec` with its disk (`MAJOR:MINOR`), once the
/// backend is known to throttle I/O here.
pub(super) fn io_devices(kind: BackendKind, spec: &Spec, l: &Layout) -> crate::Result<Vec<(String, IoLimit)>> {
    let io = &spec.limits.io;
    if io.is_empty() {
        return Ok(Vec::new());
    }
    let missing = match kind {
        BackendKind::CgroupV2 if !l.v2_controllers.iter().any(|c| c == "io") => {
            Some("the cgroup2 hierarchy here has no io controller".to_string())
        }
        BackendKind::Hybrid | BackendKind::CgroupV1 if l.v1_root("blkio").is_none() => {
            Some("no cgroup v1 blkio hierarchy is mounted".to_string())
        }
        BackendKind::Pgid => Some("the pgid backend has no cgroup to throttle".to_string()),
        _ => None,
    };
    if let Some(why) = missing {
        return Err(Error::new(
            ErrorKind::Unsupported,
            format!("I/O limits cannot be enforced by the {kind} backend: {why}"),
        )
        .hint("run `corral doctor` to see what this host enforces, or drop the io limits"));
    }
    io.iter()
        .map(|lim| {
            disk_of(&lim.device).map(|d| (d, lim.clone())).map_err(|e| {
                Error::os(format!("the I/O limit's device {}", lim.device.display()), e)
                    .with_kind(ErrorKind::InvalidInput)
                    .hint("name a block device (/dev/vda) or a path on a disk")
            })
        })
        .collect()
}

impl Group {
    pub(super) fn configure_io(&self, devices: &[(String, IoLimit)]) -> io::Result<()> {
        for (dev, lim) in devices {
            if let Some(v2) = self.parts.controls().v2() {
                let keys = ["rbps", "wbps", "riops", "wiops"];
                let line: Vec<String> =
                    keys.iter().zip(lim.rates()).filter_map(|(k, r)| r.map(|r| format!("{k}={r}"))).collect();
                std::fs::write(v2.file("io.max"), format!("{dev} {}", line.join(" ")))?;
                continue;
            }
            let dir = self.parts.controls().v1().and_then(|v| v.dir("blkio")).ok_or(io::ErrorKind::Unsupported)?;
            let files = ["read_bps_device", "write_bps_device", "read_iops_device", "write_iops_device"];
            for (f, r) in files.iter().zip(lim.rates()) {
                if let Some(r) = r {
                    std::fs::write(dir.join(format!("blkio.throttle.{f}")), format!("{dev} {r}"))?;
                }
            }
        }
        Ok(())
    }
}
