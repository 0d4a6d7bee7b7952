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
//! Linux only (elsewhere groups cannot be taken back).

use crate::supervisor::Supervisor;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;
#[cfg(target_os = "linux")]
use std::time::Duration;

static REQUESTED: AtomicBool = AtomicBool::new(false);
static EXE: OnceLock<Option<PathBuf>> = OnceLock::new();
static IMAGE: OnceLock<String> = OnceLock::new();

/// How long the captures and the state file may take to settle.
#[cfg(target_os = "linux")]
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

#[cfg(not(target_os = "linux"))]
pub(crate) async fn exec(_sup: &Supervisor) -> String {
    "a re-exec in place is Unix only".into()
}
