//! `limits.io = [{ device = "/dev/vda", read_bps = "10M", write_bps = "5M",
//! read_iops = 100, write_iops = 100 }]`: I/O throttles, one per disk.
//! `device` is a device node or any path on the disk (relative to the
//! config's folder); it must exist at load.

use super::diagnostic::Sink;
use super::paths::anchor;
use super::raw::Size;
use super::validate::Span;
use corral::{IoLimit, Limits};
use serde::Deserialize;
use std::path::{Path, PathBuf};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawIo {
    device: PathBuf,
    read_bps: Option<Size>,
    write_bps: Option<Size>,
    read_iops: Option<u64>,
    write_iops: Option<u64>,
}

/// `limits` with the I/O throttles of `raw`; bad ones are errors at `span`.
pub(super) fn apply(
    sink: &mut Sink<'_>,
    what: &str,
    span: Span,
    base: &Path,
    limits: Limits,
    raw: Option<Vec<RawIo>>,
) -> Limits {
    let mut out = limits;
    for r in raw.into_iter().flatten() {
        let device = anchor(base, &r.device);
        let mut lim = IoLimit::new(&device);
        lim.read_bps = r.read_bps.map(|s| s.0);
        lim.write_bps = r.write_bps.map(|s| s.0);
        lim.read_iops = r.read_iops;
        lim.write_iops = r.write_iops;
        if let Err(e) = std::fs::metadata(&device) {
            sink.push(
                span.clone(),
                format!("{what}: limits.io device {} cannot be used: {e}", device.display()),
                Some("a block device like \"/dev/vda\" or a path on the disk".into()),
                None,
            );
            continue;
        }
        if lim.rates().iter().all(Option::is_none) || lim.rates().iter().flatten().any(|r| *r == 0) {
            sink.push(
                span.clone(),
                format!("{what}: limits.io for {} needs a rate above 0", device.display()),
                Some("read_bps, write_bps (sizes like \"10MiB\"), read_iops or write_iops".into()),
                None,
            );
            continue;
        }
        out = out.io(lim);
    }
    if out.io.len() > corral::MAX_IO_DEVICES {
        sink.push(span, format!("{what}: more than {} limits.io entries", corral::MAX_IO_DEVICES), None, None);
    }
    out
}

#[cfg(test)]
mod tests {
    #[cfg(unix)]
    fn parse(src: &str) -> Result<corral::Limits, String> {
        crate::config::parse(
            &format!("[services.a]\ncommand = [\"a\"]\n{src}"),
            std::path::Path::new("/etc/corral.toml"),
        )
        .map(|c| c.services["a"].limits.clone())
        .map_err(|e| e.to_string())
    }

    #[test]
    #[cfg(unix)]
    fn io_limits_are_read_with_sizes_and_counts() {
        let l = parse("limits = { io = [{ device = \"/\", read_bps = \"10M\", write_iops = 100 }] }\n").unwrap();
        assert_eq!(l.io.len(), 1);
        assert_eq!(l.io[0].read_bps, Some(10 << 20), "\"10M\" is 10 MiB, as everywhere in corral");
        assert_eq!(l.io[0].write_iops, Some(100));
    }

    // Unix paths and Unix-only keys; Windows refuses them at load.
    #[cfg(unix)]
    #[test]
    fn a_missing_device_or_no_rate_is_an_error_at_load() {
        let e = parse("limits = { io = [{ device = \"/nonexistent/disk\", write_bps = \"1M\" }] }\n").unwrap_err();
        assert!(e.contains("corral.toml:3:"), "{e}");
        assert!(e.contains("limits.io device /nonexistent/disk cannot be used"), "{e}");
        let e = parse("limits = { io = [{ device = \"/\" }] }\n").unwrap_err();
        assert!(e.contains("needs a rate above 0"), "{e}");
        let e = parse("limits = { io = [{ device = \"/\", write_bps = \"1M\", speed = 1 }] }\n").unwrap_err();
        assert!(e.contains("unknown"), "{e}");
    }
}
