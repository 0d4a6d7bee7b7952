//! A log file that rotates by size: `x.log` → `x.log.1` → … → `x.log.N`,
//! the oldest one removed, like logrotate's `rotate N`.

use std::fs::{self, File};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

/// Appends lines to `path`, rotating before a line would take the file
/// past `max_size`. A single line larger than `max_size` still goes in
/// whole, into a fresh file.
pub struct RotatingFile {
    path: PathBuf,
    max_size: u64,
    keep: u32,
    out: BufWriter<File>,
    size: u64,
    rotations: u64,
}

impl RotatingFile {
    /// Opens `path` for appending, creating its folder; both private, and
    /// never through a symlink (see `sys::safe_fs`).
    pub fn open(path: &Path, max_size: u64, keep: u32) -> io::Result<Self> {
        let (_, file) = crate::sys::safe_fs::append_to(path)?;
        let size = file.metadata()?.len();
        Ok(RotatingFile {
            path: path.to_path_buf(),
            max_size,
            keep,
            out: BufWriter::with_capacity(64 * 1024, file),
            size,
            rotations: 0,
        })
    }

    /// Writes one line (the `\n` is added).
    pub fn write_line(&mut self, line: &[u8]) -> io::Result<()> {
        self.write_parts(&[line])
    }

    /// Writes one line made of `parts` (the `\n` is added), without
    /// joining them first.
    pub fn write_parts(&mut self, parts: &[&[u8]]) -> io::Result<()> {
        let len = parts.iter().map(|p| p.len() as u64).sum::<u64>() + 1;
        if self.size > 0 && self.size + len > self.max_size {
            self.rotate()?;
        }
        for p in parts {
            self.out.write_all(p)?;
        }
        self.out.write_all(b"\n")?;
        self.size += len;
        Ok(())
    }

    /// Pushes buffered lines to the file, so readers see them.
    pub fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }

    /// How many times this file has rotated since it was opened.
    pub fn rotations(&self) -> u64 {
        self.rotations
    }

    /// Bytes in the current file.
    pub fn size(&self) -> u64 {
        self.size
    }

    fn rotate(&mut self) -> io::Result<()> {
        self.out.flush()?;
        if self.keep == 0 {
            fs::remove_file(&self.path).or_else(ignore_missing)?;
        } else {
            fs::remove_file(numbered(&self.path, self.keep)).or_else(ignore_missing)?;
            for i in (1..self.keep).rev() {
                fs::rename(numbered(&self.path, i), numbered(&self.path, i + 1)).or_else(ignore_missing)?;
            }
            fs::rename(&self.path, numbered(&self.path, 1))?;
        }
        // Renamed away just now: anything found under the name was planted.
        let file = crate::sys::safe_fs::create_new_at(&self.path)?;
        self.out = BufWriter::with_capacity(64 * 1024, file);
        self.size = 0;
        self.rotations += 1;
        Ok(())
    }
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
            f.write_line(format!("line {i:03} .........").as_bytes()).unwrap();
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
    }
}
