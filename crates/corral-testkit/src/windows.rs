//! Windows side: console control events, the stop event, and the storms.
//!
//! Windows has no fork, so the fork-bomb, fork-chain and fork-loop spawn this
//! binary again with a hidden role. Their stdio is null so that they never
//! hold the top's stdout open.

use std::ffi::OsString;
use std::os::windows::ffi::OsStrExt;
use std::os::windows::process::CommandExt;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use windows_sys::Win32::Foundation::{CloseHandle, BOOL, FALSE, TRUE, WAIT_OBJECT_0};
use windows_sys::Win32::System::Console::{SetConsoleCtrlHandler, CTRL_BREAK_EVENT, CTRL_C_EVENT};
use windows_sys::Win32::System::Threading::{
    OpenEventW, WaitForSingleObject, CREATE_NEW_PROCESS_GROUP, DETACHED_PROCESS, SYNCHRONIZATION_SYNCHRONIZE,
};

use crate::args::{Opts, Role};

/// Whether `--ignore-term` was given, so the storms can pass it on: a console
/// handler, unlike a Unix SIG_IGN, is not inherited.
static IGNORE_TERM: AtomicBool = AtomicBool::new(false);

pub fn init(ignore_term: bool, deadline: Instant) {
    IGNORE_TERM.store(ignore_term, Ordering::Relaxed);
    if ignore_term {
        // SAFETY: a null handler with TRUE sets the CTRL_C-ignored flag,
        // which children inherit; `swallow` is a plain function that lives
        // as long as the process.
        unsafe {
            SetConsoleCtrlHandler(None, TRUE);
            SetConsoleCtrlHandler(Some(swallow), TRUE);
        }
    } else if let Some(name) = std::env::var_os("CORRAL_STOP_EVENT") {
        watch_stop_event(name, deadline);
    }
}

/// Swallows the events a supervisor sends to ask for a stop. Close, logoff and
/// shutdown keep their default handling.
unsafe extern "system" fn swallow(ctrl: u32) -> BOOL {
    if ctrl == CTRL_C_EVENT || ctrl == CTRL_BREAK_EVENT {
        TRUE
    } else {
        FALSE
    }
}

/// Opens the event now, before the ready line, so that a test may signal it
/// as soon as it has read that line; a thread then exits the process with 0
/// when it is signalled.
fn watch_stop_event(name: OsString, deadline: Instant) {
    let wide: Vec<u16> = name.encode_wide().chain(Some(0)).collect();
    // SAFETY: `wide` is NUL-terminated and outlives the call.
    let event = unsafe { OpenEventW(SYNCHRONIZATION_SYNCHRONIZE, FALSE, wide.as_ptr()) };
    if event.is_null() {
        eprintln!("corral-testkit: cannot open CORRAL_STOP_EVENT {name:?}: {}", std::io::Error::last_os_error());
        return;
    }
    // A HANDLE is a raw pointer, which is not Send; the address is.
    let event = event as usize;
    std::thread::spawn(move || {
        let event = event as windows_sys::Win32::Foundation::HANDLE;
        // Wait no longer than the process lives anyway.
        let left = deadline.saturating_duration_since(Instant::now());
        let ms = u32::try_from(left.as_millis()).unwrap_or(u32::MAX - 1);
        // SAFETY: `event` is a handle we opened and close only here.
        let signalled = unsafe {
            let r = WaitForSingleObject(event, ms);
            CloseHandle(event);
            r == WAIT_OBJECT_0
        };
        if signalled {
            std::process::exit(0);
        }
    });
}

/// Starts the child in a new process group with no console, the nearest
/// Windows has to setsid().
pub fn escape(cmd: &mut Command) {
    cmd.creation_flags(CREATE_NEW_PROCESS_GROUP | DETACHED_PROCESS);
}

/// Nothing to do: our stdout is a pipe only to our parent, which drops its
/// end after the report, and stdin and stderr are already null.
pub fn quiet_stdio() {}

pub fn linger(deadline: Instant) {
    std::thread::sleep(deadline.saturating_duration_since(Instant::now()));
}

/// Spawns this binary in `role`, with null stdio and no report to read.
fn spawn_quiet(role: Role, deadline: Instant, extra: &[String]) -> std::io::Result<()> {
    crate::role_command(role, IGNORE_TERM.load(Ordering::Relaxed), deadline)
        .args(extra)
        .stdout(Stdio::null())
        .spawn()
        .map(drop)
}

/// After ready: spawns `n` sleepers in a tight loop, each living 2 s (or until
/// the deadline, if sooner). Returns how many spawns succeeded and failed.
pub fn fork_loop(n: u32, deadline: Instant) -> (u32, u32) {
    let end = deadline.min(Instant::now() + Duration::from_secs(2));
    let (mut forked, mut failed) = (0, 0);
    for _ in 0..n {
        match spawn_quiet(Role::Sleeper, end, &[]) {
            Ok(()) => forked += 1,
            Err(_) => failed += 1,
        }
    }
    (forked, failed)
}

/// After ready: the top stays and starts a chain of `n` links, each of which
/// spawns the next and exits.
pub fn fork_chain(n: u32, deadline: Instant) {
    let _ = spawn_link(Role::Chain, n - 1, deadline);
}

/// After ready: spawns two bomb nodes, each of which spawns two more, `depth`
/// levels deep. A failed spawn is skipped.
pub fn fork_bomb(depth: u32, deadline: Instant) {
    if depth == 0 {
        return;
    }
    for _ in 0..2 {
        let _ = spawn_link(Role::Bomb, depth - 1, deadline);
    }
}

fn spawn_link(role: Role, more: u32, deadline: Instant) -> std::io::Result<()> {
    let flag = if role == Role::Bomb { "--fork-bomb" } else { "--fork-chain" };
    spawn_quiet(role, deadline, &[flag.to_string(), more.to_string()])
}

/// The body of a spawned bomb node or chain link.
pub fn run_fork_role(opts: &Opts, deadline: Instant) -> Result<i32, String> {
    if opts.role == Role::Bomb {
        fork_bomb(opts.fork_bomb, deadline);
    } else if opts.fork_chain > 0 {
        std::thread::sleep(Duration::from_millis(1));
        if Instant::now() < deadline && spawn_link(Role::Chain, opts.fork_chain - 1, deadline).is_ok() {
            return Ok(0);
        }
    }
    linger(deadline);
    Ok(0)
}
