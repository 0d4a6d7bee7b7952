//! Trace files: JSON lines, bounded by rotation. A file that reaches
//! [`TRACE_FILE_MAX`] is renamed to `<name>.1` (replacing an older one)
//! and a new one begins, so one trace never takes more than twice that on
//! disk. Reading takes `<name>.1` first, then `<name>`.

use super::lineage::{Lineage, TraceLine};
use crate::sys::safe_fs::PrivateDir;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};

/// The size at which a trace file is rotated.
pub const TRACE_FILE_MAX: u64 = 4 << 20;
/// The longest line read back; a longer one is not corral's.
const MAX_LINE: usize = 64 << 10;

enum Target {
    /// A path the caller named (`corral run --trace FILE`, as its user).
    Plain(PathBuf),
    /// A file the daemon owns, in a directory it created or checked.
    Private(PrivateDir, String),
}

/// An open trace file.
pub struct TraceFile {
    target: Target,
    file: File,
    size: u64,
    /// The first write error; nothing more is written after it.
    pub failed: Option<io::Error>,
}

impl TraceFile {
    /// `path`, truncated: a trace of one run.
    pub fn create(path: &Path) -> io::Result<TraceFile> {
        let file = File::create(path)?;
        Ok(TraceFile { target: Target::Plain(path.to_path_buf()), file, size: 0, failed: None })
    }

    /// `name` in the daemon's `dir`, appended to (one line per run starts
    /// each run), opened without following a link.
    pub fn append_private(dir: PrivateDir, name: &str) -> io::Result<TraceFile> {
        let file = dir.append(name)?;
        let size = file.metadata().map(|m| m.len()).unwrap_or(0);
        Ok(TraceFile { target: Target::Private(dir, name.to_string()), file, size, failed: None })
    }

    /// Appends one line, rotating first when the file is full.
    pub fn write(&mut self, line: &TraceLine) {
        if self.failed.is_some() {
            return;
        }
        let mut bytes = serde_json::to_vec(line).unwrap_or_default();
        bytes.push(b'\n');
        if self.size > 0 && self.size + bytes.len() as u64 > TRACE_FILE_MAX {
            if let Err(e) = self.rotate() {
                self.failed = Some(e);
                return;
            }
        }
        match self.file.write_all(&bytes) {
            Ok(()) => self.size += bytes.len() as u64,
            Err(e) => self.failed = Some(e),
        }
    }

    fn rotate(&mut self) -> io::Result<()> {
        self.file = match &self.target {
            Target::Plain(p) => {
                std::fs::rename(p, numbered(p))?;
                File::create(p)?
            }
            Target::Private(dir, name) => {
                dir.rename(name, &format!("{name}.1"))?;
                dir.append(name)?
            }
        };
        self.size = 0;
        Ok(())
    }
}

fn numbered(p: &Path) -> PathBuf {
    let mut s = p.as_os_str().to_owned();
    s.push(".1");
    PathBuf::from(s)
}

/// Folds the trace at `path` (its rotated part first) into a lineage. A
/// line that is not a trace line is an error naming `file:line`.
pub fn read(path: &Path) -> Result<Lineage, String> {
    let mut l = Lineage::new();
    let older = numbered(path);
    for p in [older.as_path(), path] {
        let f = match File::open(p) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound && p != path => continue,
            Err(e) => return Err(format!("cannot read {}: {e}", p.display())),
        };
        let mut r = BufReader::new(f);
        let mut buf = Vec::new();
        for n in 1.. {
            buf.clear();
            let got = (&mut r).take(MAX_LINE as u64 + 1).read_until(b'\n', &mut buf);
            match got {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) => return Err(format!("cannot read {}: {e}", p.display())),
            }
            if buf.len() > MAX_LINE {
                return Err(format!(
                    "{}:{n}: a line longer than {MAX_LINE} bytes is not a corral trace line",
                    p.display()
                ));
            }
            let text = String::from_utf8_lossy(&buf);
            if text.trim().is_empty() {
                continue;
            }
            let line: TraceLine = serde_json::from_str(text.trim()).map_err(|e| {
                format!("{}:{n}: not a corral trace line ({e}); write one with `corral run --trace FILE`", p.display())
            })?;
            l.apply(&line);
        }
    }
    Ok(l)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exit(pid: u32) -> TraceLine {
        TraceLine::Exit { pid, code: Some(1), signal: None, at_ms: 5 }
    }

    #[test]
    fn writes_read_back_and_rotate_within_the_bound() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.jsonl");
        let mut f = TraceFile::create(&path).unwrap();
        f.write(&TraceLine::Run { leader: 1, lineage: true, note: "n".into(), backend: "b".into(), at_ms: 0 });
        let start = TraceLine::Start { pid: 2, parent: Some(1), exe: None, argv: vec!["x".repeat(900)], at_ms: 1 };
        let per = serde_json::to_vec(&start).unwrap().len() as u64 + 1;
        for _ in 0..(2 * TRACE_FILE_MAX / per + 10) {
            f.write(&start);
            f.write(&exit(2));
        }
        assert!(f.failed.is_none());
        let size = |p: &Path| std::fs::metadata(p).unwrap().len();
        assert!(size(&path) <= TRACE_FILE_MAX && size(&numbered(&path)) <= TRACE_FILE_MAX);
        let l = read(&path).unwrap();
        assert!(l.records().count() > 100);
    }

    #[test]
    fn the_daemons_trace_rotates_inside_its_checked_folder() {
        let dir = tempfile::tempdir().unwrap();
        let logs = dir.path().join("web");
        let open = || TraceFile::append_private(PrivateDir::create_or_check(&logs).unwrap(), "0.trace.jsonl");
        let mut f = open().unwrap();
        let start = TraceLine::Start { pid: 2, parent: Some(1), exe: None, argv: vec!["x".repeat(4000)], at_ms: 1 };
        for _ in 0..(TRACE_FILE_MAX / 4000 + 10) {
            f.write(&start);
        }
        assert!(f.failed.is_none());
        assert!(logs.join("0.trace.jsonl.1").exists(), "rotated");
        // A planted link where the trace goes is refused, not followed.
        drop(f);
        std::fs::remove_file(logs.join("0.trace.jsonl")).unwrap();
        #[cfg(unix)]
        {
            std::os::unix::fs::symlink(dir.path().join("elsewhere"), logs.join("0.trace.jsonl")).unwrap();
            assert!(open().is_err());
            assert!(!dir.path().join("elsewhere").exists());
        }
    }

    #[test]
    fn a_bad_line_names_file_and_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.jsonl");
        std::fs::write(&path, "{\"event\":\"exit\",\"pid\":1,\"code\":0,\"signal\":null,\"at_ms\":1}\nhello\n")
            .unwrap();
        let e = read(&path).unwrap_err();
        assert!(e.contains("t.jsonl:2: not a corral trace line"), "{e}");
        assert!(read(&dir.path().join("none")).unwrap_err().starts_with("cannot read"));
    }
}
