//! Where each instance's log lives, and who is told when it grows.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use tokio::sync::watch;

/// How far one instance's log has come; followers wake on every change.
/// The three fields are published together, after the bytes are in the
/// file: offset `size` of the current file is byte `written` of the log.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Growth {
    /// Bytes in the log since the daemon started, across rotations,
    /// counting from the size the file had when first opened.
    pub written: u64,
    /// Rotations since the daemon started.
    pub rotations: u64,
    /// Bytes in the current file.
    pub size: u64,
}

/// The log folder and the growth signals of every instance.
pub struct LogHub {
    dir: PathBuf,
    echo: Option<Echo>,
    growth: Mutex<HashMap<(String, u32), watch::Sender<Growth>>>,
    /// Ends every capture cleanly before a re-exec.
    pub(crate) handover: super::Handover,
}

impl LogHub {
    /// Logs go under `dir`; with `echo`, every line is also printed with a
    /// name prefix (the foreground `corral up`).
    pub fn new(dir: &Path, echo: Option<Echo>) -> Self {
        LogHub { dir: dir.to_path_buf(), echo, growth: Mutex::new(HashMap::new()), handover: Default::default() }
    }

    /// `log_dir/<service>/<instance>.log`.
    pub fn path(&self, service: &str, instance: u32) -> PathBuf {
        self.dir.join(service).join(format!("{instance}.log"))
    }

    /// The folder of one service's logs.
    pub fn service_dir(&self, service: &str) -> PathBuf {
        self.dir.join(service)
    }

    pub(crate) fn echo(&self) -> Option<&Echo> {
        self.echo.as_ref()
    }

    fn sender(&self, service: &str, instance: u32) -> watch::Sender<Growth> {
        let mut g = self.growth.lock().unwrap_or_else(|p| p.into_inner());
        g.entry((service.to_string(), instance)).or_insert_with(|| watch::channel(Growth::default()).0).clone()
    }

    /// The growth signal of one instance, for its capture to hold: a write
    /// then tells followers without a lookup (see [`opened`], [`grew`]).
    pub(crate) fn signal(&self, service: &str, instance: u32) -> watch::Sender<Growth> {
        self.sender(service, instance)
    }

    /// [`grew`], by name.
    #[cfg(test)]
    pub(crate) fn grew(&self, service: &str, instance: u32, bytes: u64, rotated: u64, size: u64) {
        grew(&self.sender(service, instance), bytes, rotated, size)
    }

    /// A signal that changes whenever the log grows or rotates.
    pub fn watch(&self, service: &str, instance: u32) -> watch::Receiver<Growth> {
        self.sender(service, instance).subscribe()
    }
}

/// A capture opened the log, which holds `size` bytes. The first open
/// counts them as written, so `written` and a follower's count of bytes
/// read start from the same origin.
pub(crate) fn opened(signal: &watch::Sender<Growth>, size: u64) {
    signal.send_if_modified(|g| {
        let first = *g == Growth::default();
        if first {
            *g = Growth { written: size, rotations: 0, size };
        }
        first
    });
}

/// Tells followers that the log grew by `bytes` and rotated `rotated`
/// times, and that the current file now holds `size` bytes.
pub(crate) fn grew(signal: &watch::Sender<Growth>, bytes: u64, rotated: u64, size: u64) {
    if bytes == 0 && rotated == 0 {
        return;
    }
    signal.send_modify(|g| {
        g.written += bytes;
        g.rotations += rotated;
        g.size = size;
    });
}

/// Prints lines to stdout with a coloured `name |` prefix.
#[derive(Debug, Clone)]
pub struct Echo {
    /// Use ANSI colours.
    pub color: bool,
}

const COLORS: [u8; 6] = [36, 33, 32, 35, 34, 31];

impl Echo {
    /// Appends one prefixed line to `buf`; [`Echo::flush`] prints a whole
    /// read's worth at once, so a burst costs one `write`, not one per line.
    pub(crate) fn format(&self, buf: &mut Vec<u8>, label: &str, line: &[u8]) {
        if self.color {
            let c = COLORS[label.bytes().map(usize::from).sum::<usize>() % COLORS.len()];
            let _ = write!(buf, "\x1b[{c}m{label} |\x1b[0m ");
        } else {
            let _ = write!(buf, "{label} | ");
        }
        buf.extend_from_slice(line);
        buf.push(b'\n');
    }

    /// Prints and clears what [`Echo::format`] gathered.
    pub(crate) fn flush(&self, buf: &mut Vec<u8>) {
        if !buf.is_empty() {
            let mut out = std::io::stdout().lock();
            let _ = out.write_all(buf);
            let _ = out.flush();
            buf.clear();
        }
    }
}
