//! The supervisors compared in measures 3 to 7b, behind one trait, and the
//! FIFO through which every service announces itself.
//!
//! Each service is a shell line that first writes `<name> <pid>` to a FIFO
//! the bench reads, then `exec`s the real program (so the pid stays). That
//! is the same for every supervisor, so "running" means the same thing for
//! all of them: the service's own process has started executing. Each
//! driver runs its daemon with a private config, socket, state and logs in
//! its own temp dir, and removes it when done.

mod cat;
mod corral_up;
mod pm2;
mod supervisord;

pub use cat::CatFloor;
pub use corral_up::CorralUp;
pub use pm2::Pm2;
pub use supervisord::Supervisord;

use crate::sys::{self, Pidfd};
use std::fs::File;
use std::io::Read;
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// How a service is restarted when it ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Policy {
    /// At once, every time, never giving up (measure 6).
    Immediate,
    /// With the tool's default delay or backoff, never giving up.
    Defaults,
    /// Never restarted: the service runs once (measure 8).
    Once,
}

/// One service: a name and its argv.
#[derive(Clone, Debug)]
pub struct Service {
    pub name: String,
    pub argv: Vec<String>,
    pub policy: Policy,
    /// A liveness probe (corral only: the peers have no probes).
    pub liveness: Option<Liveness>,
    /// Capture stdout to a log file that does not rotate below this many
    /// bytes (measure 8); `None`: each tool's default logging.
    pub log_max: Option<u64>,
}

impl Service {
    /// `sh -c 'announce; exec <program>'` (or `exit`), for the FIFO.
    pub fn shell(name: &str, shell: &str, fifo: &Path, rest: &str, policy: Policy) -> Service {
        let script = format!("echo \"{name} $$\" >> {}; {rest}", fifo.display());
        Service {
            name: name.into(),
            argv: vec![shell.into(), "-c".into(), script],
            policy,
            liveness: None,
            log_max: None,
        }
    }

    /// `argv` as it is, no shell: the program announces itself.
    pub fn direct(name: &str, argv: Vec<String>, policy: Policy) -> Service {
        Service { name: name.into(), argv, policy, liveness: None, log_max: None }
    }
}

/// A liveness probe at the default period (10 s) and timeout (1 s).
#[derive(Clone, Debug)]
pub enum Liveness {
    /// Passed when the command exits 0.
    Exec(Vec<String>),
    /// Passed on a 2xx answer to a GET of this URL.
    Http(String),
}

/// A supervisor daemon under test.
pub trait Supervisor {
    /// Starts the daemon with these services, from cold. Returns once the
    /// start has been asked for (PM2: once its CLI has returned).
    fn launch(&mut self, services: &[Service]) -> Result<(), String>;
    /// Waits until the daemon answers its control interface.
    fn wait_ready(&mut self, timeout: Duration) -> Result<(), String>;
    /// The daemon's pid (the process whose memory and CPU are measured).
    fn daemon_pid(&self) -> Option<u32>;
    /// Asks the daemon, through its own CLI, to stop one service.
    fn stop_cli(&self, name: &str) -> Command;
    /// The files that hold the captured stdout of service `name`: the
    /// current one and any rotated ones, those that exist.
    fn log_files(&self, name: &str) -> Vec<PathBuf>;
    /// Stops every service and the daemon, and removes the temp dir.
    fn shutdown(&mut self);
}

/// The files in `dir` whose names start with `prefix`, sorted.
pub fn files_with_prefix(dir: &Path, prefix: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(Result::ok)
                .filter(|e| e.file_name().to_string_lossy().starts_with(prefix))
                .map(|e| e.path())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// A fresh private directory under the system temp dir.
pub fn temp_dir(tag: &str) -> Result<PathBuf, String> {
    let base = std::env::temp_dir();
    for i in 0..1000u32 {
        let p = base.join(format!("corral-bench-{tag}-{}-{i}", std::process::id()));
        match std::fs::create_dir(&p) {
            Ok(()) => return Ok(p),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(format!("creating {}: {e}", p.display())),
        }
    }
    Err("no free temp dir name".into())
}

/// Runs a CLI to completion, with its output appended to `log`, and kills
/// it (by pid) if it takes longer than `timeout`.
pub fn run_cli(mut cmd: Command, log: &Path, timeout: Duration) -> Result<ExitStatus, String> {
    let child = spawn_logged(&mut cmd, log)?;
    wait_child(child, timeout).ok_or_else(|| format!("{cmd:?} took longer than {timeout:?}"))
}

pub fn spawn_logged(cmd: &mut Command, log: &Path) -> Result<Child, String> {
    let out = std::fs::OpenOptions::new().create(true).append(true).open(log).map_err(|e| e.to_string())?;
    let err = out.try_clone().map_err(|e| e.to_string())?;
    cmd.stdin(Stdio::null()).stdout(out).stderr(err).spawn().map_err(|e| format!("{cmd:?}: {e}"))
}

/// Waits for `child` at most `timeout`; kills and reaps it after that.
pub fn wait_child(mut child: Child, timeout: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Ok(Some(st)) = child.try_wait() {
            return Some(st);
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// The FIFO every service announces itself on, and every pid seen there.
pub struct Fifo {
    pub path: PathBuf,
    file: File,
    buf: Vec<u8>,
    last_read: Instant,
    seen: Vec<Pidfd>,
}

/// One announcement: a service started with this pid, seen at this time.
#[derive(Debug, Clone)]
pub struct Started {
    pub name: String,
    pub pid: u32,
    pub at: Instant,
}

impl Fifo {
    pub fn create(dir: &Path) -> Result<Fifo, String> {
        let path = dir.join("ready.fifo");
        let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).map_err(|e| e.to_string())?;
        // SAFETY: mkfifo on a NUL-terminated path.
        if unsafe { libc::mkfifo(c.as_ptr(), 0o600) } != 0 {
            return Err(format!("mkfifo {}: {}", path.display(), std::io::Error::last_os_error()));
        }
        // Read-write, so that writers never block on open and we never see EOF.
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(&path)
            .map_err(|e| e.to_string())?;
        Ok(Fifo { path, file, buf: Vec::new(), last_read: Instant::now(), seen: Vec::new() })
    }

    /// The next announcement, waiting at most `timeout`.
    pub fn next(&mut self, timeout: Duration) -> Option<Started> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(i) = self.buf.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = self.buf.drain(..=i).collect();
                let line = String::from_utf8_lossy(&line);
                let mut w = line.split_whitespace();
                let (Some(name), Some(pid)) = (w.next(), w.next().and_then(|p| p.parse::<u32>().ok())) else {
                    continue;
                };
                if let Ok(fd) = Pidfd::open(pid) {
                    self.seen.push(fd);
                }
                return Some(Started { name: name.into(), pid, at: self.last_read });
            }
            let now = Instant::now();
            if now >= deadline {
                return None;
            }
            let mut p = libc::pollfd { fd: self.file.as_raw_fd(), events: libc::POLLIN, revents: 0 };
            let ms = (deadline - now).as_millis().clamp(1, i32::MAX as u128) as i32;
            // SAFETY: one valid pollfd.
            let n = unsafe { libc::poll(&mut p, 1, ms) };
            if n > 0 {
                self.last_read = Instant::now();
                let mut chunk = [0u8; 4096];
                if let Ok(k) = self.file.read(&mut chunk) {
                    self.buf.extend_from_slice(&chunk[..k]);
                }
            }
        }
    }

    /// Kills (by pidfd) and reaps every announced process still alive.
    pub fn kill_leftovers(&mut self) -> usize {
        let alive: Vec<Pidfd> = self.seen.drain(..).filter(|f| !f.exited()).collect();
        sys::kill_and_reap(&alive);
        alive.len()
    }
}

impl Drop for Fifo {
    fn drop(&mut self) {
        self.kill_leftovers();
    }
}
