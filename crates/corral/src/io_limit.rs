//! I/O limits: bytes and operations per second on one block device, for
//! the whole group (cgroup v2 `io.max`, v1 `blkio.throttle.*`). The OS
//! throttles; a limit is never a reason to kill.

use std::path::PathBuf;

/// The most devices one group may limit.
pub const MAX_IO_DEVICES: usize = 64;

/// The throttle of one block device. `device` is the device node
/// (`/dev/vda`) or any path on it (`/var/lib/db`: the disk that holds that
/// filesystem; a partition counts as its whole disk).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct IoLimit {
    /// The device, or a path on it.
    pub device: PathBuf,
    /// Bytes read per second.
    pub read_bps: Option<u64>,
    /// Bytes written per second.
    pub write_bps: Option<u64>,
    /// Read operations per second.
    pub read_iops: Option<u64>,
    /// Write operations per second.
    pub write_iops: Option<u64>,
}

impl IoLimit {
    /// No throttle yet on `device`; add rates with the setters.
    pub fn new(device: impl Into<PathBuf>) -> IoLimit {
        IoLimit { device: device.into(), read_bps: None, write_bps: None, read_iops: None, write_iops: None }
    }
    /// Bytes read per second.
    pub fn read_bps(mut self, n: u64) -> Self {
        self.read_bps = Some(n);
        self
    }
    /// Bytes written per second.
    pub fn write_bps(mut self, n: u64) -> Self {
        self.write_bps = Some(n);
        self
    }
    /// Read operations per second.
    pub fn read_iops(mut self, n: u64) -> Self {
        self.read_iops = Some(n);
        self
    }
    /// Write operations per second.
    pub fn write_iops(mut self, n: u64) -> Self {
        self.write_iops = Some(n);
        self
    }

    /// `[read_bps, write_bps, read_iops, write_iops]`.
    pub fn rates(&self) -> [Option<u64>; 4] {
        [self.read_bps, self.write_bps, self.read_iops, self.write_iops]
    }

    /// Checks the values: a rate at all, none of them 0.
    pub(crate) fn validate(&self) -> crate::Result<()> {
        use crate::{Error, ErrorKind};
        let bad = |what: String| Err(Error::new(ErrorKind::InvalidInput, format!("invalid I/O limit: {what}")));
        if !self.device.is_absolute() {
            return bad(format!("device {} is not an absolute path", self.device.display()));
        }
        let rates = self.rates();
        if rates.iter().all(Option::is_none) {
            return bad(format!(
                "no rate for {}: give read_bps, write_bps, read_iops or write_iops",
                self.device.display()
            ));
        }
        if rates.iter().flatten().any(|r| *r == 0) {
            return bad(format!("a rate of 0 for {} would stop its I/O for good", self.device.display()));
        }
        Ok(())
    }
}

/// Off Linux: I/O limits and notify-only limits need cgroups, refused here.
#[cfg(not(target_os = "linux"))]
pub(crate) fn refuse_off_linux(limits: &crate::Limits) -> crate::Result<()> {
    use crate::{Error, ErrorKind};
    let what = match (limits.io.is_empty(), limits.notify.is_empty()) {
        (false, _) => "I/O limits",
        (true, false) => "notify-only limits",
        (true, true) => return Ok(()),
    };
    Err(Error::new(
        ErrorKind::Unsupported,
        format!("{what} need Linux cgroups; this host runs {}", std::env::consts::OS),
    )
    .hint("drop them on this host, or let the limits kill (on_limit = \"kill\")"))
}
