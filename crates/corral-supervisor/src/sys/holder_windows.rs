//! The log holder on Windows: a process (`corral __holder STATE_DIR`)
//! that keeps a copy of every instance's stdout and stderr read ends, and
//! a handle to its job, so that a daemon that dies (killed, crashed) does
//! not close its services' pipes, and its jobs keep their names (on
//! Windows a job's name lives only while a handle to it is open).
//!
//! Windows lets a process put handles into another one and take them back
//! (`DuplicateHandle` with the other's process handle), so the holder
//! itself does nothing but wait: the daemon duplicates the handles into
//! it, and records their values in `holder.json` in its private state dir
//! (with the holder's pid and creation time). The next daemon reads that
//! record, takes the handles back out (closing them in the old holder),
//! ends the old holder and starts its own.
//!
//! The holder learns that its daemon is gone when its stdin (a pipe from
//! the daemon) closes. The daemon writes `held N` there after each change:
//! a holder whose daemon went holding nothing exits at once; holding
//! something, it waits for the next daemon at most [`ORPHAN_WAIT`].
//!
//! Trap: bytes the dead daemon had read but not yet written to the log
//! are lost with it; everything still in the pipe is not.

use crate::sys::safe_fs::PrivateDir;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::{self, BufRead, Write};
use std::os::windows::io::{AsRawHandle, FromRawHandle, OwnedHandle, RawHandle};
use std::path::Path;
use std::process::{ChildStderr, ChildStdin, ChildStdout};
use std::sync::Mutex;
use std::time::Duration;
use windows_sys::Win32::Foundation::{
    DuplicateHandle, DUPLICATE_CLOSE_SOURCE, DUPLICATE_SAME_ACCESS, FILETIME, HANDLE, WAIT_OBJECT_0,
};
use windows_sys::Win32::System::JobObjects::OpenJobObjectW;
use windows_sys::Win32::System::Threading::{
    GetCurrentProcess, GetProcessTimes, OpenProcess, TerminateProcess, WaitForSingleObject, CREATE_NEW_PROCESS_GROUP,
    CREATE_NO_WINDOW, PROCESS_DUP_HANDLE, PROCESS_QUERY_LIMITED_INFORMATION, PROCESS_SYNCHRONIZE, PROCESS_TERMINATE,
};

/// How long a holder with pipes waits for a daemon to come back.
pub const ORPHAN_WAIT: Duration = Duration::from_secs(24 * 3600);
/// The record's name in the state dir.
const RECORD: &str = "holder.json";
/// A record larger than this is not one corral wrote.
const MAX_RECORD: u64 = 16 << 20;
/// The most groups one holder keeps (instances are bounded far below).
const MAX_HELD: usize = 100_000;
/// A job's handle held only to keep it (and its name) alive: `SYNCHRONIZE`.
const JOB_HOLD: u32 = PROCESS_SYNCHRONIZE;

/// What `holder.json` says: who holds, and the handle values (in the
/// holder's table) of each group's stdout, stderr and job.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Record {
    pid: u32,
    created: u64,
    /// The daemon it serves: while that one lives, nobody else takes.
    daemon: u32,
    daemon_created: u64,
    held: BTreeMap<String, [u64; 3]>,
}

/// Runs the holder until its daemon is gone and nothing is left to hold
/// (or [`ORPHAN_WAIT`] ran out).
pub fn serve(_state_dir: &Path) -> io::Result<()> {
    let mut held = 0u64;
    for line in io::stdin().lock().lines() {
        let Ok(line) = line else { break };
        if let Some(n) = line.strip_prefix("held ").and_then(|n| n.trim().parse().ok()) {
            held = n;
        }
    }
    if held > 0 {
        // The next daemon takes the handles and ends this process.
        std::thread::sleep(ORPHAN_WAIT);
    }
    Ok(())
}

/// The daemon's side: its holder, if it has one.
#[derive(Default)]
pub(crate) struct Client {
    inner: Mutex<Option<Holder>>,
    /// Jobs of the previous daemon's groups, held until they are taken back
    /// (each name must outlive the take-back); they close with this.
    #[allow(dead_code)] // held for their drop
    old_jobs: Vec<OwnedHandle>,
}

struct Holder {
    dir: PrivateDir,
    child: std::process::Child,
    stdin: ChildStdin,
    record: Record,
}

/// Read ends taken back from a holder, by the group id they were put under.
pub(crate) type Taken = BTreeMap<String, (ChildStdout, ChildStderr)>;

impl Client {
    /// Takes back what the previous daemon's holder held, ends it, and
    /// starts a holder of its own. Without a holder the daemon works as
    /// before: its services' pipes then close with it.
    pub fn connect(state_dir: &Path) -> (Client, Taken) {
        let dir = match PrivateDir::create_or_check(state_dir) {
            Ok(d) => d,
            Err(e) => {
                eprintln!("corral: no log holder ({e}); logs do not survive a daemon crash");
                return (Client::default(), Taken::new());
            }
        };
        let Some((taken, old_jobs)) = take_previous(&dir) else {
            // Another daemon runs on this state dir: its holder is its own
            // (and this daemon is refused before it starts anything).
            return (Client::default(), Taken::new());
        };
        let inner =
            start(dir).map_err(|e| eprintln!("corral: no log holder ({e}); logs do not survive a daemon crash")).ok();
        (Client { inner: Mutex::new(inner), old_jobs }, taken)
    }

    /// Takes over `other`'s holder (the daemon connects before the
    /// supervisor that uses it exists); `other`'s old jobs close now, the
    /// groups being taken back.
    pub fn replace(&self, other: Client) {
        let theirs = other.inner.into_inner().unwrap_or_else(|p| p.into_inner());
        *self.inner.lock().unwrap_or_else(|p| p.into_inner()) = theirs;
    }

    /// Hands copies of a group's read ends, and a handle to its job, to
    /// the holder.
    pub fn put(&self, id: &str, out: &ChildStdout, err: &ChildStderr) {
        self.change(|h| {
            if h.record.held.len() >= MAX_HELD && !h.record.held.contains_key(id) {
                return Ok(());
            }
            let target = h.child.as_raw_handle() as HANDLE;
            let o = give(target, out.as_raw_handle(), false)?;
            let e = give(target, err.as_raw_handle(), false)?;
            // The job's name is the library's (`Local\corral-job-<id>`).
            let name: Vec<u16> = format!(r"Local\corral-job-{id}").encode_utf16().chain(Some(0)).collect();
            // SAFETY: `name` is NUL-terminated; the result is checked.
            let job = unsafe { OpenJobObjectW(JOB_HOLD, 0, name.as_ptr()) };
            let j = if job.is_null() { 0 } else { give(target, job, true)? };
            if let Some(old) = h.record.held.insert(id.to_string(), [o, e, j]) {
                close_in(target, &old);
            }
            Ok(())
        });
    }

    /// The group ended: the holder lets its handles go.
    pub fn drop_group(&self, id: &str) {
        self.change(|h| {
            if let Some(old) = h.record.held.remove(id) {
                close_in(h.child.as_raw_handle() as HANDLE, &old);
            }
            Ok(())
        });
    }

    /// Applies `f` to the record, then saves it and tells the holder.
    fn change(&self, f: impl FnOnce(&mut Holder) -> io::Result<()>) {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let Some(h) = inner.as_mut() else { return };
        let saved = f(h).and_then(|()| h.save());
        if let Err(e) = saved {
            eprintln!("corral: the log holder is gone ({e}); logs no longer survive a daemon crash");
            let _ = h.child.kill();
            let _ = h.dir.remove(RECORD);
            *inner = None;
        }
    }
}

impl Holder {
    fn save(&mut self) -> io::Result<()> {
        let text = serde_json::to_vec(&self.record).map_err(io::Error::other)?;
        self.dir.replace(RECORD, &text)?;
        writeln!(self.stdin, "held {}", self.record.held.len())?;
        self.stdin.flush()
    }
}

/// Starts `exe __holder STATE_DIR` and records it.
fn start(dir: PrivateDir) -> io::Result<Holder> {
    use std::os::windows::process::CommandExt;
    let exe = std::env::current_exe()?;
    let child = std::process::Command::new(exe)
        .arg("__holder")
        .arg(dir.path())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        // A Ctrl-C meant for the daemon is not its; no console window.
        .creation_flags(CREATE_NEW_PROCESS_GROUP | CREATE_NO_WINDOW)
        .spawn()?;
    let mut child = child;
    let stdin = child.stdin.take().ok_or_else(|| io::Error::other("no stdin pipe"))?;
    let record = Record {
        pid: child.id(),
        created: created(child.as_raw_handle() as HANDLE).unwrap_or(0),
        daemon: std::process::id(),
        // SAFETY: the pseudo handle of this process is always valid.
        daemon_created: created(unsafe { GetCurrentProcess() }).unwrap_or(0),
        held: BTreeMap::new(),
    };
    let mut h = Holder { dir, child, stdin, record };
    if let Err(e) = h.save() {
        let _ = h.child.kill();
        return Err(e);
    }
    Ok(h)
}

/// Takes every handle the previous holder recorded back into this
/// process, then ends that holder. A record whose holder is gone, or
/// whose pid now names another process, gives nothing; `None` while the
/// daemon it serves still runs.
fn take_previous(dir: &PrivateDir) -> Option<(Taken, Vec<OwnedHandle>)> {
    let mut taken = Taken::new();
    let mut jobs = Vec::new();
    let Ok(Some(text)) = dir.read(RECORD, MAX_RECORD) else { return Some((taken, jobs)) };
    let Ok(rec) = serde_json::from_slice::<Record>(&text) else { return Some((taken, jobs)) };
    if rec.daemon != std::process::id() && alive(rec.daemon, rec.daemon_created) {
        return None;
    }
    let _ = dir.remove(RECORD);
    let Some(holder) = open_same(rec.pid, rec.created, PROCESS_DUP_HANDLE | PROCESS_TERMINATE) else {
        return Some((taken, jobs));
    };
    let source = holder.as_raw_handle() as HANDLE;
    for (id, [o, e, j]) in rec.held {
        let (o, e) = (take(source, o), take(source, e));
        if j != 0 {
            jobs.extend(take(source, j));
        }
        if let (Some(o), Some(e)) = (o, e) {
            taken.insert(id, (ChildStdout::from(o), ChildStderr::from(e)));
        }
    }
    // SAFETY: a live process handle with PROCESS_TERMINATE, checked to be
    // the holder the record names (pid and creation time).
    unsafe { TerminateProcess(source, 0) };
    Some((taken, jobs))
}

/// Whether the process `pid` created at `created_at` still runs.
fn alive(pid: u32, created_at: u64) -> bool {
    open_same(pid, created_at, PROCESS_SYNCHRONIZE).is_some_and(|d| {
        // SAFETY: a live process handle with SYNCHRONIZE.
        let state = unsafe { WaitForSingleObject(d.as_raw_handle() as HANDLE, 0) };
        state != WAIT_OBJECT_0
    })
}

/// Opens `pid` with `access` only if it is the process created at
/// `created` (a pid alone may have been reused by anything).
fn open_same(pid: u32, created_at: u64, access: u32) -> Option<OwnedHandle> {
    // SAFETY: OpenProcess takes no pointers; the result is checked.
    let raw = unsafe { OpenProcess(access | PROCESS_QUERY_LIMITED_INFORMATION, 0, pid) };
    if raw.is_null() {
        return None;
    }
    // SAFETY: just opened for us; nobody else owns it.
    let h = unsafe { OwnedHandle::from_raw_handle(raw as RawHandle) };
    (created(h.as_raw_handle() as HANDLE) == Some(created_at)).then_some(h)
}

/// Duplicates `h` of this process into `target`; its value there.
/// `close`: `h` is ours to give away (closed here).
fn give(target: HANDLE, h: RawHandle, close: bool) -> io::Result<u64> {
    let mut out: HANDLE = std::ptr::null_mut();
    let opts = DUPLICATE_SAME_ACCESS | if close { DUPLICATE_CLOSE_SOURCE } else { 0 };
    // SAFETY: `h` is a live handle of this process; `target` a live process
    // handle with PROCESS_DUP_HANDLE (our child); `out` is writable.
    let ok = unsafe { DuplicateHandle(GetCurrentProcess(), h as HANDLE, target, &mut out, 0, 0, opts) };
    if ok == 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(out as usize as u64)
}

/// Takes the handle `value` out of `source`'s table into ours (closing it
/// there).
fn take(source: HANDLE, value: u64) -> Option<OwnedHandle> {
    let mut out: HANDLE = std::ptr::null_mut();
    let opts = DUPLICATE_SAME_ACCESS | DUPLICATE_CLOSE_SOURCE;
    // SAFETY: `source` is a live process handle with PROCESS_DUP_HANDLE;
    // a stale value only makes the call fail; `out` is writable.
    let ok = unsafe { DuplicateHandle(source, value as usize as HANDLE, GetCurrentProcess(), &mut out, 0, 0, opts) };
    // SAFETY: on success `out` is a new handle of this process, ours alone.
    (ok != 0 && !out.is_null()).then(|| unsafe { OwnedHandle::from_raw_handle(out as RawHandle) })
}

/// Closes handles in `target`'s table.
fn close_in(target: HANDLE, values: &[u64; 3]) {
    for v in values.iter().filter(|v| **v != 0) {
        // SAFETY: `target` is our live holder with PROCESS_DUP_HANDLE; with
        // no target process, DUPLICATE_CLOSE_SOURCE only closes the source.
        unsafe {
            DuplicateHandle(
                target,
                *v as usize as HANDLE,
                std::ptr::null_mut(),
                std::ptr::null_mut(),
                0,
                0,
                DUPLICATE_CLOSE_SOURCE,
            )
        };
    }
}

/// When the process was created (100 ns ticks), to tell the recorded
/// holder from a process that later got its pid.
fn created(h: HANDLE) -> Option<u64> {
    let z = FILETIME { dwLowDateTime: 0, dwHighDateTime: 0 };
    let (mut c, mut e, mut k, mut u) = (z, z, z, z);
    // SAFETY: `h` is a live process handle with query rights; the four
    // FILETIMEs are writable.
    let ok = unsafe { GetProcessTimes(h, &mut c, &mut e, &mut k, &mut u) };
    (ok != 0).then(|| (u64::from(c.dwHighDateTime) << 32) | u64::from(c.dwLowDateTime))
}
