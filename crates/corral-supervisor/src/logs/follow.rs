//! Reading logs: the last N lines, and following new ones across
//! rotations without polling (the capture task signals growth).

use super::hub::Growth;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use tokio::sync::watch;

/// The last `n` lines of the log at `path` (and of its rotated
/// predecessor, when the current file holds fewer).
pub fn tail(path: &Path, n: usize) -> Vec<String> {
    let mut lines = last_lines(path, n).unwrap_or_default();
    if lines.len() < n {
        let older = super::rotate::numbered(path, 1);
        let mut before = last_lines(&older, n - lines.len()).unwrap_or_default();
        before.append(&mut lines);
        lines = before;
    }
    lines
}

/// The last `n` lines of one file (no rotated ones).
pub(crate) fn last_lines(path: &Path, n: usize) -> io::Result<Vec<String>> {
    if n == 0 {
        return Ok(Vec::new());
    }
    let mut f = File::open(path)?;
    let len = f.metadata()?.len();
    let mut start = len;
    let mut buf: Vec<u8> = Vec::new();
    // Read backwards in blocks until n+1 newlines are in hand.
    while start > 0 && buf.iter().filter(|&&b| b == b'\n').count() <= n {
        let step = start.min(64 * 1024);
        start -= step;
        f.seek(SeekFrom::Start(start))?;
        let mut block = vec![0u8; step as usize];
        f.read_exact(&mut block)?;
        block.extend_from_slice(&buf);
        buf = block;
    }
    let text = String::from_utf8_lossy(&buf);
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    if start > 0 && !lines.is_empty() {
        lines.remove(0); // possibly cut in the middle
    }
    let skip = lines.len().saturating_sub(n);
    Ok(lines.split_off(skip))
}

/// A place in one instance's log: an offset in the file after so many
/// rotations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Mark {
    pos: u64,
    rotations: u64,
}

/// Follows one instance's log from its current end.
pub struct Follower {
    path: PathBuf,
    file: Option<File>,
    pos: u64,
    rotations: u64,
    growth: watch::Receiver<Growth>,
    partial: Vec<u8>,
}

impl Follower {
    /// Starts at the current end of `path`.
    pub fn new(path: PathBuf, mut growth: watch::Receiver<Growth>) -> Self {
        let rotations = growth.borrow_and_update().1;
        let file = File::open(&path).ok();
        let pos = file.as_ref().and_then(|f| f.metadata().ok()).map_or(0, |m| m.len());
        Follower { path, file, pos, rotations, growth, partial: Vec::new() }
    }

    /// Where this follower stands, for a later one to start there.
    pub(crate) fn mark(&self) -> Mark {
        Mark { pos: self.pos, rotations: self.rotations }
    }

    /// Starts at `mark`, so lines written since are read too. When the log
    /// has rotated since, it starts at the beginning of the current file:
    /// the lines rotated away are not read again.
    pub(crate) fn from_mark(path: PathBuf, growth: watch::Receiver<Growth>, mark: Mark) -> Self {
        let mut f = Follower::new(path, growth);
        f.pos = if f.rotations == mark.rotations { mark.pos.min(f.pos) } else { 0 };
        f
    }

    /// The next lines written, waiting until there are some. `None` when
    /// the log can no longer grow (the daemon is going away).
    pub async fn next(&mut self) -> Option<Vec<String>> {
        loop {
            let rotations = self.growth.borrow_and_update().1;
            let mut lines = self.read_new();
            if rotations != self.rotations {
                // The old file is complete: take its rest, then the new one from 0.
                self.rotations = rotations;
                self.file = File::open(&self.path).ok();
                self.pos = 0;
                self.partial.clear();
                lines.extend(self.read_new());
            }
            if !lines.is_empty() {
                return Some(lines);
            }
            self.growth.changed().await.ok()?;
        }
    }

    fn read_new(&mut self) -> Vec<String> {
        if self.file.is_none() {
            self.file = File::open(&self.path).ok();
            self.pos = 0;
        }
        let Some(f) = self.file.as_mut() else { return Vec::new() };
        let mut buf = Vec::new();
        if f.seek(SeekFrom::Start(self.pos)).is_err() || f.read_to_end(&mut buf).is_err() {
            return Vec::new();
        }
        self.pos += buf.len() as u64;
        self.partial.extend_from_slice(&buf);
        let Some(last_nl) = self.partial.iter().rposition(|&b| b == b'\n') else { return Vec::new() };
        let rest = self.partial.split_off(last_nl + 1);
        let done = std::mem::replace(&mut self.partial, rest);
        String::from_utf8_lossy(&done).lines().map(str::to_string).collect()
    }
}
