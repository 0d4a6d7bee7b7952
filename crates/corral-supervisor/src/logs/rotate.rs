//! A log file that rotates by size: `x.log` → `x.log.1` → … → `x.log.N`,
//! the oldest one removed, like logrotate's `rotate N`.
//!
//! Lines are queued in memory and written by [`RotatingFile::flush`]. A
//! write that fails (a full disk) or stops short keeps exactly the bytes
//! not yet written, so the next flush resumes where the file stopped: no
//! line is written twice, lost, or torn. The caller bounds the queue by
//! not reading more output until a flush succeeds.

use std::collections::VecDeque;
use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// The queue's capacity kept between flushes at least; more is given back
/// unless the last flush needed it.
const KEEP_QUEUE: usize = 64 * 1024;

/// Appends lines to `path`, rotating before a line would take the file
/// past `max_size`. A single line larger than `max_size` still goes in
/// whole, into a fresh file.
pub struct RotatingFile {
    path: PathBuf,
    max_size: u64,
    keep: u32,
    /// `None` between a rotation's renames and the open of the new file,
    /// when that open failed: the next flush opens it, and renames nothing
    /// twice.
    out: Option<File>,
    /// Bytes queued, not yet in the file.
    pending: Vec<u8>,
    /// Offsets in `pending` where a rotation comes before the rest.
    cuts: VecDeque<usize>,
    /// Bytes in the current file once `pending` is written, for the
    /// rotation decision.
    planned: u64,
    /// Bytes really in the current file.
    size: u64,
    /// Bytes really written since open, across rotations.
    written: u64,
    rotations: u64,
}

impl RotatingFile {
    /// Opens `path` for appending, creating its folder; both private, and
    /// never through a symlink (see `sys::safe_fs`).
    pub fn open(path: &Path, max_size: u64, keep: u32) -> io::Result<Self> {
        let file = append(path)?;
        let size = file.metadata()?.len();
        Ok(RotatingFile {
            path: path.to_path_buf(),
            max_size,
            keep,
            out: Some(file),
            pending: Vec::new(),
            cuts: VecDeque::new(),
            planned: size,
            size,
            written: 0,
            rotations: 0,
        })
    }

    /// Queues one line (the `\n` is added).
    pub fn write_line(&mut self, line: &[u8]) {
        self.write_parts(&[line])
    }

    /// Queues one line made of `parts` (the `\n` is added), without
    /// joining them first. Nothing touches the disk before [`flush`].
    ///
    /// [`flush`]: RotatingFile::flush
    pub fn write_parts(&mut self, parts: &[&[u8]]) {
        let len = parts.iter().map(|p| p.len() as u64).sum::<u64>() + 1;
        if self.planned > 0 && self.planned + len > self.max_size {
            self.cuts.push_back(self.pending.len());
            self.planned = 0;
        }
        for p in parts {
            self.pending.extend_from_slice(p);
        }
        self.pending.push(b'\n');
        self.planned += len;
    }

    /// Queues whole lines that `fill` appends straight to the queue. `fill`
    /// is told how many bytes fit before the file must rotate, and appends
    /// at most that many, ending with a `\n` (nothing, or whole lines):
    /// then no rotation falls among them, as if each had been queued by
    /// [`write_parts`].
    ///
    /// [`write_parts`]: RotatingFile::write_parts
    pub fn queue_whole<R>(&mut self, fill: impl FnOnce(&mut Vec<u8>, u64) -> R) -> R {
        let room = self.max_size.saturating_sub(self.planned);
        let before = self.pending.len();
        let r = fill(&mut self.pending, room);
        let added = (self.pending.len() - before) as u64;
        debug_assert!(added <= room && self.pending.last().is_none_or(|&b| b == b'\n'));
        self.planned += added;
        r
    }

    /// Writes what is queued, rotating where a line would not fit. On an
    /// error the bytes not written stay queued, in order, for the next
    /// call; what was written is never written again.
    pub fn flush(&mut self) -> io::Result<()> {
        let queued = self.pending.len();
        while !self.pending.is_empty() || !self.cuts.is_empty() || self.out.is_none() {
            if self.cuts.front() == Some(&0) {
                self.rotate()?;
                self.cuts.pop_front();
                continue;
            }
            if self.out.is_none() {
                self.out = Some(append(&self.path)?);
                continue;
            }
            let upto = self.cuts.front().copied().unwrap_or(self.pending.len());
            let n = self.write_some(upto)?;
            self.pending.drain(..n);
            for c in self.cuts.iter_mut() {
                *c -= n;
            }
        }
        // A burst (a 64 KiB read of short lines, each with its timestamp)
        // may have grown the queue to megabytes: give back what the next
        // burst like this one will not need. A chatty service keeps room
        // for one burst instead of growing it again at every read; a quiet
        // one is back to `KEEP_QUEUE` at its next write.
        self.pending.shrink_to(KEEP_QUEUE.max(queued.saturating_mul(2)));
        Ok(())
    }

    /// One `write` of the first `upto` queued bytes; a short count is
    /// fine, the caller loops.
    fn write_some(&mut self, upto: usize) -> io::Result<usize> {
        let Some(out) = self.out.as_mut() else { return Ok(0) };
        let n = loop {
            match out.write(&self.pending[..upto]) {
                Ok(0) => return Err(io::Error::new(io::ErrorKind::WriteZero, "the log file took no bytes")),
                Ok(n) => break n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        };
        self.size += n as u64;
        self.written += n as u64;
        Ok(n)
    }

    /// Bytes queued and not yet written.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    /// How many times this file has rotated since it was opened.
    pub fn rotations(&self) -> u64 {
        self.rotations
    }

    /// Bytes in the current file.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Bytes written since the file was opened, across rotations.
    pub fn written(&self) -> u64 {
        self.written
    }

    /// Renames the files along; the new current file is opened by the
    /// caller's next step, so a failed open is retried without renaming
    /// again.
    fn rotate(&mut self) -> io::Result<()> {
        if self.out.is_some() {
            if self.keep == 0 {
                fs::remove_file(&self.path).or_else(ignore_missing)?;
            } else {
                fs::remove_file(numbered(&self.path, self.keep)).or_else(ignore_missing)?;
                for i in (1..self.keep).rev() {
                    fs::rename(numbered(&self.path, i), numbered(&self.path, i + 1)).or_else(ignore_missing)?;
                }
                fs::rename(&self.path, numbered(&self.path, 1))?;
            }
            self.out = None;
            self.size = 0;
            self.rotations += 1;
        }
        // Anything planted under the name since is refused by `append`'s
        // checks (not ours, a link, not a regular file). Not `O_EXCL`: on
        // Windows a name renamed away can linger while a reader holds it.
        self.out = Some(append(&self.path)?);
        Ok(())
    }
}

/// Opens `path` for appending, creating it and its folder privately, never
/// through a symlink: the one place a log file is opened (at start, and
/// when an open after a rotation is retried).
fn append(path: &Path) -> io::Result<File> {
    crate::sys::safe_fs::append_to(path).map(|(_, file)| file)
}

/// `x.log.N`.
pub(crate) fn numbered(path: &Path, n: u32) -> PathBuf {
    let mut s = path.as_os_str().to_os_string();
    s.push(format!(".{n}"));
    PathBuf::from(s)
}

fn ignore_missing(e: io::Error) -> io::Result<()> {
    if e.kind() == io::ErrorKind::NotFound {
        Ok(())
    } else {
        Err(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotates_and_keeps_n_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.log");
        let mut f = RotatingFile::open(&path, 100, 2).unwrap();
        for i in 0..100 {
            f.write_line(format!("line {i:03} .........").as_bytes());
            if i % 7 == 0 {
                f.flush().unwrap();
            }
        }
        f.flush().unwrap();
        let mut names: Vec<String> =
            fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
        names.sort();
        assert_eq!(names, ["x.log", "x.log.1", "x.log.2"]);
        for n in &names {
            assert!(fs::metadata(dir.path().join(n)).unwrap().len() <= 100);
        }
        let last = fs::read_to_string(&path).unwrap();
        assert!(last.ends_with("line 099 .........\n"));
        let prev = fs::read_to_string(numbered(&path, 1)).unwrap();
        let first_in_last: u32 = last[5..8].parse().unwrap();
        assert!(prev.contains(&format!("line {:03}", first_in_last - 1)), "no line lost across a rotation");
        assert_eq!(f.pending(), 0);
        assert_eq!(f.rotations(), 19);
        assert_eq!(f.written(), 100 * 19);
    }

    #[test]
    fn whole_lines_queued_in_place_count_toward_the_next_rotation() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.log");
        let mut f = RotatingFile::open(&path, 10, 3).unwrap();
        let room = f.queue_whole(|q, room| {
            q.extend_from_slice(b"aaaa\n");
            room
        });
        assert_eq!(room, 10);
        assert_eq!(f.queue_whole(|_, room| room), 5);
        f.write_line(b"bbbb");
        f.write_line(b"cccc");
        f.flush().unwrap();
        let read = |n: u32| fs::read_to_string(if n == 0 { path.clone() } else { numbered(&path, n) }).unwrap();
        assert_eq!([read(1), read(0)], ["aaaa\nbbbb\n", "cccc\n"]);
        assert_eq!(f.queue_whole(|_, room| room), 5);
    }

    #[test]
    fn queued_lines_cross_several_rotations_in_one_flush() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.log");
        let mut f = RotatingFile::open(&path, 10, 3).unwrap();
        for l in ["aaaa", "bbbb", "cccc", "dddd", "eeee"] {
            f.write_line(l.as_bytes());
        }
        assert_eq!(fs::read_to_string(&path).unwrap(), "", "nothing is written before a flush");
        f.flush().unwrap();
        let read = |n: u32| fs::read_to_string(if n == 0 { path.clone() } else { numbered(&path, n) }).unwrap();
        assert_eq!([read(2), read(1), read(0)], ["aaaa\nbbbb\n", "cccc\ndddd\n", "eeee\n"]);
        assert_eq!((f.rotations(), f.size(), f.written()), (2, 5, 25));
    }
}
