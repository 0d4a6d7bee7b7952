//! The cgroup counter files a group reads at its looks and at its end
//! (`cpu.stat`, the memory peak and use, the OOM and process-limit
//! counts), kept open on a leaf that goes back to the pool, so that each
//! later read is one `pread` where open, read, the read that finds the
//! end and close took four calls, twice per spawn and wait on a reused
//! leaf (strace of `examples/exit_path.rs`: six such files per cycle).
//!
//! Traps:
//! - Every cgroup file is a `seq_file`: a `pread` at offset 0 makes the
//!   kernel produce the text anew, as `cgroup.events` is read already.
//! - Only a poolable group keeps them ([`CounterFiles::keep`]): the pool
//!   is bounded (`leaf_pool::MAX_POOLED`), a group meant to outlive its
//!   controller is never pooled, and a daemon with a hundred such groups
//!   must not hold four hundred more fds for reads it makes once a
//!   minute.
//! - A file is kept by its path, and only the few paths the group's own
//!   code names: the list stays a handful long.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// The most a counter file is read: `cpu.stat` and `memory.events` are a
/// few hundred bytes; what is longer is not a counter file.
const MAX_LEN: usize = 64 << 10;

#[derive(Default)]
pub(crate) struct CounterFiles {
    keep: bool,
    files: Mutex<Vec<(PathBuf, File)>>,
}

impl std::fmt::Debug for CounterFiles {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CounterFiles").field("keep", &self.keep).finish_non_exhaustive()
    }
}

impl CounterFiles {
    /// From now on, each file read is kept open for the next read.
    pub(crate) fn keep(&mut self) {
        self.keep = true;
    }

    /// Reads `path` whole: through its kept fd, or by opening it (kept
    /// then, if this group keeps its files).
    pub(crate) fn read(&self, path: &Path) -> io::Result<String> {
        let mut files = self.files.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((_, f)) = files.iter().find(|(p, _)| p == path) {
            return read_whole(f);
        }
        let f = File::open(path)?;
        let text = read_whole(&f)?;
        if self.keep {
            files.push((path.to_owned(), f));
        }
        Ok(text)
    }

    /// The files, for the pooled leaf's next group; this group reads its
    /// leaf no more.
    pub(crate) fn take(&self) -> CounterFiles {
        let files = std::mem::take(&mut *self.files.lock().unwrap_or_else(|p| p.into_inner()));
        CounterFiles { keep: self.keep, files: Mutex::new(files) }
    }
}

/// Reads from offset 0 to the end, in one call for any counter file.
///
/// The first read goes to the stack: a counter file is a few dozen bytes,
/// and a spawn+wait reads six, so a zeroed 4 KiB heap buffer apiece was
/// 24 KiB written and freed per spawn for nothing. Only a file that fills
/// it is read on into a growing buffer.
fn read_whole(f: &File) -> io::Result<String> {
    let mut first = [0u8; 512];
    let n = f.read_at(&mut first, 0)?;
    let mut buf = first[..n].to_vec();
    if n == first.len() {
        read_rest(f, &mut buf)?;
    }
    String::from_utf8(buf).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

/// Reads on from `buf.len()` until the end of the file or [`MAX_LEN`].
fn read_rest(f: &File, buf: &mut Vec<u8>) -> io::Result<()> {
    let mut len = buf.len();
    buf.resize((len * 2).clamp(4096, MAX_LEN), 0);
    loop {
        let n = f.read_at(&mut buf[len..], len as u64)?;
        len += n;
        if n == 0 || len < buf.len() || buf.len() >= MAX_LEN {
            break;
        }
        buf.resize((buf.len() * 2).min(MAX_LEN), 0);
    }
    buf.truncate(len);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A temp dir of the test's own, removed on drop (a failed test too).
    struct TempDir(std::path::PathBuf);

    impl TempDir {
        fn new(tag: &str) -> TempDir {
            let dir = std::env::temp_dir().join(format!("corral-counter-{tag}-{}", std::process::id()));
            std::fs::create_dir_all(&dir).unwrap();
            TempDir(dir)
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn a_kept_file_is_read_anew_each_time_and_moves_with_take() {
        let tmp = TempDir::new("files");
        let dir = tmp.0.clone();
        let path = dir.join("count");
        std::fs::write(&path, "max 1\n").unwrap();
        let mut kept = CounterFiles::default();
        kept.keep();
        assert_eq!(kept.read(&path).unwrap(), "max 1\n");
        // The same fd, read from the start again after the file changed.
        std::fs::write(&path, "max 22\n").unwrap();
        let moved = kept.take();
        assert_eq!(moved.read(&path).unwrap(), "max 22\n");
        std::fs::remove_dir_all(&dir).unwrap();
        // Still open: the read goes through the kept fd, not the path.
        assert_eq!(moved.read(&path).unwrap(), "max 22\n");
        // A group that does not keep opens by path each time.
        assert!(CounterFiles::default().read(&path).is_err());
    }

    #[test]
    fn a_long_file_is_read_whole_up_to_the_bound() {
        let tmp = TempDir::new("long");
        let path = tmp.0.join("long");
        // Around the first read's stack buffer (512 bytes), then well past it.
        for len in [511, 512, 513, 10_000] {
            let text = "x".repeat(len);
            std::fs::write(&path, &text).unwrap();
            assert_eq!(CounterFiles::default().read(&path).unwrap(), text, "{len} bytes");
        }
        std::fs::write(&path, "y".repeat(MAX_LEN + 10)).unwrap();
        assert_eq!(CounterFiles::default().read(&path).unwrap().len(), MAX_LEN);
    }
}
