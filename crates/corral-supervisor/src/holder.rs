//! The log holder: a tiny process (`corral __holder SOCKET`) that keeps a
//! copy of every instance's stdout and stderr read ends, so that a daemon
//! that dies (SIGKILL, OOM) does not close its services' pipes: a writer
//! then blocks on a full pipe instead of dying of SIGPIPE, and nothing
//! written meanwhile is lost. The next daemon takes the read ends back.
//!
//! It never reads a pipe; it only holds. Protocol (one message per
//! `SOCK_SEQPACKET` packet, fds attached with `SCM_RIGHTS`):
//! - `put <group id>` + stdout, stderr: hold them (replacing any held);
//! - `drop <group id>`: close them (the group ended);
//! - `take`: every held pair comes back as `held <group id>` + fds, then
//!   `end`; the holder forgets them (the daemon puts back what it keeps).
//!
//! It serves one daemon at a time. When its daemon goes and it holds
//! nothing, it exits; holding something, it waits for the next daemon for
//! at most [`ORPHAN_WAIT`], then exits (closing the pipes). Pipes whose
//! every writer is gone are dropped as it goes.
//!
//! Trap: bytes the dead daemon had read but not yet written to the log
//! (a few microseconds' worth, and a line cut in two) are lost with it;
//! everything still in the pipe is not. Linux here; Windows has its own
//! holder (`sys/holder_windows.rs`, handles duplicated into a waiting
//! process); on macOS (which lacks the close-on-exec and no-SIGPIPE socket
//! flags this relies on, and cannot take groups back anyway) the client
//! does nothing.

#[cfg(windows)]
pub use crate::sys::holder_windows::serve;
#[cfg(windows)]
pub(crate) use crate::sys::holder_windows::{Client, Taken};

#[cfg(target_os = "linux")]
use crate::sys::fd_pass;
#[cfg(not(windows))]
use std::collections::BTreeMap;
#[cfg(target_os = "linux")]
use std::io;
#[cfg(target_os = "linux")]
use std::os::fd::{AsFd, OwnedFd};
#[cfg(not(windows))]
use std::path::Path;
#[cfg(not(windows))]
use std::process::{ChildStderr, ChildStdout};
#[cfg(target_os = "linux")]
use std::sync::Mutex;
#[cfg(target_os = "linux")]
use std::time::{Duration, Instant};

/// How long a holder with pipes waits for a daemon to come back.
#[cfg(target_os = "linux")]
pub const ORPHAN_WAIT: Duration = Duration::from_secs(24 * 3600);
/// How long a daemon waits for a holder it started to listen.
#[cfg(target_os = "linux")]
const START_WAIT: Duration = Duration::from_secs(5);
/// The most pipe pairs one holder keeps (instances are bounded far below).
#[cfg(target_os = "linux")]
const MAX_HELD: usize = 100_000;

/// The socket's name in the state dir.
#[cfg(target_os = "linux")]
pub(crate) const SOCKET: &str = "holder.sock";

/// Runs the holder on `socket` until it has nothing left to hold.
#[cfg(target_os = "linux")]
pub fn serve(socket: &Path) -> io::Result<()> {
    let listener = fd_pass::listen(socket)?;
    let mut held: BTreeMap<String, [OwnedFd; 2]> = BTreeMap::new();
    let result = (|| {
        let mut idle_since = Instant::now();
        loop {
            // A daemon that started us connects at once; one that comes
            // back after a crash, within ORPHAN_WAIT.
            if !fd_pass::readable(&listener, 1000) {
                held.retain(|_, p| !fd_pass::hung_up(&p[0]) || !fd_pass::hung_up(&p[1]));
                let waited = idle_since.elapsed();
                if (held.is_empty() && waited > START_WAIT) || waited > ORPHAN_WAIT {
                    return Ok(());
                }
                continue;
            }
            let conn = fd_pass::accept(&listener)?;
            serve_one(&conn, &mut held);
            held.retain(|_, p| !fd_pass::hung_up(&p[0]) || !fd_pass::hung_up(&p[1]));
            if held.is_empty() {
                return Ok(());
            }
            idle_since = Instant::now();
        }
    })();
    let _ = std::fs::remove_file(socket);
    result
}

/// One daemon's session, until it closes the connection.
#[cfg(target_os = "linux")]
fn serve_one(conn: &OwnedFd, held: &mut BTreeMap<String, [OwnedFd; 2]>) {
    while let Ok(Some((text, fds))) = fd_pass::recv(conn) {
        let (verb, id) = text.split_once(' ').unwrap_or((text.as_str(), ""));
        match verb {
            "put" if held.len() < MAX_HELD || held.contains_key(id) => {
                if let Ok(pair) = <[OwnedFd; 2]>::try_from(fds) {
                    held.insert(id.to_string(), pair);
                }
            }
            "drop" => {
                held.remove(id);
            }
            "take" => {
                for (id, pair) in std::mem::take(held) {
                    if fd_pass::send(conn, &format!("held {id}"), &[pair[0].as_fd(), pair[1].as_fd()]).is_err() {
                        return;
                    }
                }
                let _ = fd_pass::send(conn, "end", &[]);
            }
            _ => {}
        }
    }
}

/// The daemon's side: its connection to the holder, if there is one.
#[cfg(not(windows))]
#[derive(Default)]
pub(crate) struct Client {
    #[cfg(target_os = "linux")]
    conn: Mutex<Option<OwnedFd>>,
}

/// Read ends taken back from a holder, by the group id they were put under.
#[cfg(not(windows))]
pub(crate) type Taken = BTreeMap<String, (ChildStdout, ChildStderr)>;

#[cfg(target_os = "macos")]
impl Client {
    pub fn connect(_state_dir: &Path) -> (Client, Taken) {
        (Client::default(), Taken::new())
    }
    pub fn put(&self, _id: &str, _out: &ChildStdout, _err: &ChildStderr) {}
    pub fn drop_group(&self, _id: &str) {}
    pub fn replace(&self, _other: Client) {}
}

#[cfg(target_os = "linux")]
impl Client {
    /// Takes over `other`'s connection (the daemon connects before the
    /// supervisor that uses it exists).
    pub fn replace(&self, other: Client) {
        let theirs = other.conn.into_inner().unwrap_or_else(|p| p.into_inner());
        *self.conn.lock().unwrap_or_else(|p| p.into_inner()) = theirs;
    }

    /// Connects to the holder of `state_dir`, starting one (`exe
    /// __holder SOCKET`) when none answers, and takes back what it held
    /// for a previous daemon. Without a holder the daemon works as before:
    /// its services' pipes then close with it.
    pub fn connect(state_dir: &Path) -> (Client, Taken) {
        let socket = state_dir.join(SOCKET);
        let conn = match fd_pass::connect(&socket) {
            Ok(c) => Some(c),
            Err(_) => start(&socket)
                .map_err(|e| eprintln!("corral: no log holder ({e}); logs do not survive a daemon crash"))
                .ok(),
        };
        let mut taken = Taken::new();
        if let Some(c) = &conn {
            if fd_pass::send(c, "take", &[]).is_ok() {
                while let Ok(Some((text, fds))) = fd_pass::recv(c) {
                    let Some(id) = text.strip_prefix("held ") else { break };
                    if let Ok([out, err]) = <[OwnedFd; 2]>::try_from(fds) {
                        taken.insert(id.to_string(), (ChildStdout::from(out), ChildStderr::from(err)));
                    }
                }
            }
        }
        (Client { conn: Mutex::new(conn) }, taken)
    }

    /// Hands copies of a group's read ends to the holder.
    pub fn put(&self, id: &str, out: &ChildStdout, err: &ChildStderr) {
        self.send(&format!("put {id}"), &[out.as_fd(), err.as_fd()]);
    }

    /// The group ended: the holder lets its pipes go.
    pub fn drop_group(&self, id: &str) {
        self.send(&format!("drop {id}"), &[]);
    }

    fn send(&self, text: &str, fds: &[std::os::fd::BorrowedFd<'_>]) {
        let mut conn = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(c) = conn.as_ref() {
            if let Err(e) = fd_pass::send(c, text, fds) {
                eprintln!("corral: the log holder is gone ({e}); logs no longer survive a daemon crash");
                *conn = None;
            }
        }
    }
}

/// Starts a holder on `socket` and connects to it. A stale socket file (a
/// holder that died) is replaced: it is ours, in our private state dir.
#[cfg(target_os = "linux")]
fn start(socket: &Path) -> io::Result<OwnedFd> {
    let _ = std::fs::remove_file(socket);
    let exe = std::env::current_exe()?;
    let mut cmd = std::process::Command::new(exe);
    cmd.arg("__holder")
        .arg(socket)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .env_clear();
    // Its own process group: a Ctrl-C meant for the daemon is not its.
    std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
    let child = cmd.spawn()?;
    // The daemon reaps it if it ever exits first (reap-all mode); the
    // handle is not needed.
    drop(child);
    let end = Instant::now() + START_WAIT;
    loop {
        match fd_pass::connect(socket) {
            Ok(c) => return Ok(c),
            Err(e) if Instant::now() >= end => return Err(e),
            Err(_) => std::thread::sleep(Duration::from_millis(5)),
        }
    }
}
