//! Where each instance's log lives, and who is told when it grows.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use tokio::sync::watch;

/// (bytes written, rotations) of one instance's log; followers wake on
/// every change.
pub type Growth = (u64, u64);

/// The log folder and the growth signals of every instance.
pub struct LogHub {
    dir: PathBuf,
    echo: Option<Echo>,
    growth: Mutex<HashMap<(String, u32), watch::Sender<Growth>>>,
}

impl LogHub {
    /// Logs go under `dir`; with `echo`, every line is also printed with a
    /// name prefix (the foreground `corral up`).
    pub fn new(dir: &Path, echo: Option<Echo>) -> Self {
        LogHub { dir: dir.to_path_buf(), echo, growth: Mutex::new(HashMap::new()) }
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
        g.entry((service.to_string(), instance)).or_insert_with(|| watch::channel((0, 0)).0).clone()
    }

    /// Tells followers that the log grew or rotated.
    pub(crate) fn grew(&self, service: &str, instance: u32, bytes: u64, rotated: u64) {
        self.sender(service, instance).send_modify(|g| {
            g.0 += bytes;
            g.1 += rotated;
        });
    }

    /// A signal that changes whenever the log grows or rotates.
    pub fn watch(&self, service: &str, instance: u32) -> watch::Receiver<Growth> {
        self.sender(service, instance).subscribe()
    }
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
