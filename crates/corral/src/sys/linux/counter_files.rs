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
//! - A file is kept by its name, one of the few the group's own code
//!   names (a `&'static str`: found without building or comparing a
//!   path), and read into the stack: a read allocates nothing.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::Mutex;

/// The most a counter file is read: `cpu.stat` and `memory.events` are a
/// few hundred bytes; what is longer is not a counter file.
const MAX_LEN: usize = 64 << 10;

#[derive(Default)]
pub(crate) struct CounterFiles {
    keep: bool,
    files: Mutex<Vec<(&'static str, File)>>,
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

    /// Reads the file `name` whole and hands its text to `parse`: through
    /// its kept fd, or by opening `path()` (kept then, if this group
    /// keeps its files). `None` when it cannot be read or parsed.
    pub(crate) fn read<R>(
        &self,
        name: &'static str,
        path: impl FnOnce() -> Option<PathBuf>,
        parse: impl FnOnce(&str) -> Option<R>,
    ) -> Option<R> {
        let mut files = self.files.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((_, f)) = files.iter().find(|(n, _)| *n == name) {
            return read_whole(f, parse).ok().flatten();
        }
        let f = File::open(path()?).ok()?;
        let parsed = read_whole(&f, parse).ok().flatten();
        if self.keep {
            files.push((name, f));
        }
        parsed
    }

    /// The files, for the pooled leaf's next group; this group reads its
    /// leaf no more.
    pub(crate) fn take(&self) -> CounterFiles {
        let files = std::mem::take(&mut *self.files.lock().unwrap_or_else(|p| p.into_inner()));
        CounterFiles { keep: self.keep, files: Mutex::new(files) }
    }
}

/// Reads from offset 0 to the end, in one call for any counter file, and
/// parses the text.
///
/// The read goes to the stack: a counter file is a few dozen bytes, and
/// a spawn+wait reads six, so a heap buffer and a `String` apiece were
/// twelve allocations per spawn for nothing. Only a file that fills it
/// is read on into a growing buffer.
fn read_whole<R>(f: &File, parse: impl FnOnce(&str) -> Option<R>) -> io::Result<Option<R>> {
    let mut first = [0u8; 512];
    let n = f.read_at(&mut first, 0)?;
    if n < first.len() {
        return Ok(std::str::from_utf8(&first[..n]).ok().and_then(parse));
    }
    let mut buf = first.to_vec();
    read_rest(f, &mut buf)?;
    Ok(std::str::from_utf8(&buf).ok().and_then(parse))
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
        let read = |k: &CounterFiles| k.read("count", || Some(path.clone()), |t| Some(t.to_string()));
        assert_eq!(read(&kept).as_deref(), Some("max 1\n"));
        // The same fd, read from the start again after the file changed.
        std::fs::write(&path, "max 22\n").unwrap();
        let moved = kept.take();
        assert_eq!(read(&moved).as_deref(), Some("max 22\n"));
        std::fs::remove_dir_all(&dir).unwrap();
        // Still open: the read goes through the kept fd, not the path.
        assert_eq!(read(&moved).as_deref(), Some("max 22\n"));
        // A group that does not keep opens by path each time.
        assert_eq!(read(&CounterFiles::default()), None);
    }

    #[test]
    fn a_long_file_is_read_whole_up_to_the_bound() {
        let tmp = TempDir::new("long");
        let path = tmp.0.join("long");
        let read = |p: &PathBuf| CounterFiles::default().read("long", || Some(p.clone()), |t| Some(t.to_string()));
        // Around the first read's stack buffer (512 bytes), then well past it.
        for len in [511, 512, 513, 10_000] {
            let text = "x".repeat(len);
            std::fs::write(&path, &text).unwrap();
            assert_eq!(read(&path).as_deref(), Some(text.as_str()), "{len} bytes");
        }
        std::fs::write(&path, "y".repeat(MAX_LEN + 10)).unwrap();
        assert_eq!(read(&path).map(|t| t.len()), Some(MAX_LEN));
    }
}
