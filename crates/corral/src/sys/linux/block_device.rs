//! From a path to the `MAJOR:MINOR` of the disk that holds it, as cgroup
//! I/O files want it: a device node names itself, any other path its
//! filesystem's device; a partition is throttled as its whole disk (the
//! kernel throttles whole disks).

use std::io;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

fn split(dev: u64) -> (u64, u64) {
    (libc::major(dev) as u64, libc::minor(dev) as u64)
}

/// `"MAJOR:MINOR"` of the disk behind `path`.
pub(crate) fn disk_of(path: &Path) -> io::Result<String> {
    let meta = std::fs::metadata(path)?;
    let dev = if meta.file_type().is_block_device() { meta.rdev() } else { meta.dev() };
    let (major, minor) = split(dev);
    let sys = format!("/sys/dev/block/{major}:{minor}");
    if !Path::new(&sys).exists() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{} is not on a block device ({major}:{minor}: a virtual or network filesystem)", path.display()),
        ));
    }
    if Path::new(&sys).join("partition").exists() {
        // /sys/dev/block/M:m -> .../block/vda/vda1: the parent is the disk.
        let parent = std::fs::canonicalize(&sys)?.parent().map(|p| p.join("dev"));
        if let Some(d) = parent.and_then(|p| std::fs::read_to_string(p).ok()) {
            return Ok(d.trim().to_string());
        }
    }
    Ok(format!("{major}:{minor}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_path_on_a_virtual_filesystem_is_refused() {
        let e = disk_of(Path::new("/proc/self")).unwrap_err();
        assert!(e.to_string().contains("not on a block device"), "{e}");
    }

    #[test]
    fn the_root_filesystem_has_a_disk() {
        // Every test host boots from a block device.
        let d = disk_of(Path::new("/")).unwrap();
        assert!(d.split(':').all(|n| n.parse::<u64>().is_ok()), "{d}");
    }
}
