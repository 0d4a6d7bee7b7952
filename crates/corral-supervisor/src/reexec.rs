//! `corral daemon restart`: the daemon re-executes itself in place (same
//! pid; the binary at the path it was started from, so an upgrade that
//! replaced that file runs the new version) and its services keep running.
//!
//! Before the exec, the API stops (the request that asked gets its
//! answer), every capture stops between two reads with what it read on
//! disk, and the state file holds every group. The new image then starts
//! as after a crash: it takes back the recorded groups (`reattach`) and
//! their pipes' read ends from the log holder, which kept copies
//! (`holder`); what the services wrote meanwhile waits in the pipes.
//!
//! Windows has no exec: the daemon starts its successor (same binary path,
//! same arguments, same stdio, told the predecessor's pid in
//! `CORRAL_SUCCESSOR_OF`) and exits without stopping anything; the successor
//! waits for it to be gone, then starts as after a crash. Its pid is new,
//! the services' are not. Under the Service Control Manager the service
//! process ends with it: restart the service there instead. macOS cannot
//! take groups back, so it does not re-execute.

use crate::supervisor::Supervisor;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;
#[cfg(any(target_os = "linux", windows))]
use std::time::Duration;

static REQUESTED: AtomicBool = AtomicBool::new(false);
static EXE: OnceLock<Option<PathBuf>> = OnceLock::new();
static IMAGE: OnceLock<String> = OnceLock::new();

/// Names, in a Windows successor's environment, the daemon it follows.
#[cfg(windows)]
const SUCCESSOR_OF: &str = "CORRAL_SUCCESSOR_OF";

/// How long a successor waits for its predecessor to be gone.
#[cfg(windows)]
const PREDECESSOR_WAIT: Duration = Duration::from_secs(30);

/// How long the captures and the state file may take to settle.
#[cfg(any(target_os = "linux", windows))]
const SETTLE: Duration = Duration::from_secs(5);

/// Notes, at start, the path this image was started from: once an
/// upgrade replaced the file, `/proc/self/exe` names a deleted one.
pub(crate) fn remember_exe() {
    EXE.get_or_init(|| std::env::current_exe().ok());
    image();
}

/// Names this image of the daemon: it changes with each re-exec (the pid
/// does not), so a client can tell when the new image answers.
pub fn image() -> &'static str {
    IMAGE.get_or_init(|| {
        let ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_millis();
        format!("{}-{ms}", std::process::id())
    })
}

static REFUSED: OnceLock<&'static str> = OnceLock::new();

/// A daemon run by a service manager that follows one process (the
/// Windows Service Control Manager: `Options::stop` is its handler) must
/// not restart as a new process: the manager would see its service end.
pub(crate) fn refuse_under_a_manager(managed: bool) {
    if cfg!(windows) && managed {
        let _ = REFUSED.set(
            "the daemon runs as a Windows service, which must stay one process: restart it with `corral service stop` and `corral service start`",
        );
    }
}

/// Why a restart is refused, if it is.
pub(crate) fn refused() -> Option<&'static str> {
    REFUSED.get().copied()
}

/// A client asked for a re-exec; the daemon's stop path then re-executes
/// instead of stopping the services.
pub(crate) fn request() {
    REQUESTED.store(true, Ordering::SeqCst);
}

pub(crate) fn requested() -> bool {
    REQUESTED.load(Ordering::SeqCst)
}

/// Settles the captures and the state file, then execs; returns only on
/// failure, with the reason.
#[cfg(target_os = "linux")]
pub(crate) async fn exec(sup: &Supervisor) -> String {
    use std::os::unix::process::CommandExt;
    let Some(exe) = EXE.get().cloned().flatten() else {
        return "cannot re-execute: the daemon's own path is unknown".into();
    };
    if !sup.logs().handover.stop_all(SETTLE).await {
        eprintln!("corral: a capture did not stop within {SETTLE:?} (a full disk?); its unwritten output is lost");
    }
    if !sup.flush_state(SETTLE) {
        return format!("cannot re-execute: the state file was not written within {SETTLE:?}");
    }
    eprintln!("corral: re-executing {} in place; services keep running", exe.display());
    let err = std::process::Command::new(&exe).args(std::env::args_os().skip(1)).exec();
    format!("cannot re-execute {}: {err}", exe.display())
}

#[cfg(windows)]
pub(crate) async fn exec(sup: &Supervisor) -> String {
    let Some(exe) = EXE.get().cloned().flatten() else {
        return "cannot restart: the daemon's own path is unknown".into();
    };
    if !sup.logs().handover.stop_all(SETTLE).await {
        eprintln!("corral: a capture did not stop within {SETTLE:?} (a full disk?); its unwritten output is lost");
    }
    if !sup.flush_state(SETTLE) {
        return format!("cannot restart: the state file was not written within {SETTLE:?}");
    }
    // `CreateProcess` now and then fails with ERROR_INTERNAL_ERROR (1359)
    // while the system is busy (seen under Wine, whose server was loaded
    // by other tests). Nothing started then, and giving up would stop
    // every service, so the start is tried again, at most five times.
    const ERROR_INTERNAL_ERROR: i32 = 1359;
    let mut tries = 0;
    let spawned = loop {
        let r = std::process::Command::new(&exe)
            .args(std::env::args_os().skip(1))
            .env(SUCCESSOR_OF, std::process::id().to_string())
            .spawn();
        match r {
            Err(e) if e.raw_os_error() == Some(ERROR_INTERNAL_ERROR) && tries < 4 => {
                tries += 1;
                eprintln!("corral: starting the successor failed ({e}); trying again");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            r => break r,
        }
    };
    match spawned {
        Ok(_) => {
            eprintln!("corral: restarting as a new process of {}; services keep running", exe.display());
            // No destructor runs: nothing is stopped, and the groups' jobs
            // (without KILL_ON_JOB_CLOSE) outlive their handles.
            std::process::exit(0)
        }
        Err(e) => format!("cannot restart {}: {e}", exe.display()),
    }
}

#[cfg(target_os = "macos")]
pub(crate) async fn exec(_sup: &Supervisor) -> String {
    "a re-exec in place is Linux and Windows only".into()
}

/// In a Windows successor: waits (bounded) until the daemon it follows is
/// gone, so that its state, holder and pipe name are free.
pub(crate) fn wait_for_predecessor() {
    #[cfg(windows)]
    if let Some(pid) = std::env::var(SUCCESSOR_OF).ok().and_then(|p| p.parse::<u32>().ok()) {
        std::env::remove_var(SUCCESSOR_OF);
        let end = corral::deadline::after(std::time::Instant::now(), PREDECESSOR_WAIT);
        while std::time::Instant::now() < end && corral::process_table().is_ok_and(|t| t.get(pid).is_some()) {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}
