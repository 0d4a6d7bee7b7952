//! What a Job Object can promise on this host, for `corral doctor` and for
//! each group's [`crate::Enforcement`].
//!
//! Under Wine every job limit but the CPU rate is accepted, yet none is
//! enforced or reported back by a query; corral says so instead of
//! claiming the real-Windows guarantee.

use super::{console, job, ntdll};
use crate::{BackendKind, BackendReport, Capability, HostReport, LimitKind, Support};
use windows_sys::Win32::System::JobObjects::{
    JOB_OBJECT_LIMIT_BREAKAWAY_OK, JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE, JOB_OBJECT_LIMIT_SILENT_BREAKAWAY_OK,
};

const WINE_LIMIT: &str = "Wine accepts the job limit but neither enforces it nor reports it back";

/// Jobs nest from Windows 8 (6.2) on. Wine nests them whatever Windows
/// version its prefix pretends to be (7, by default).
fn nests() -> bool {
    ntdll::wine_version().is_some()
        || !matches!(ntdll::windows_version(), Some((major, minor, _)) if (major, minor) < (6, 2))
}

/// How the job provides `limit` here.
pub(super) fn limit_support(limit: LimitKind) -> Support {
    let yes = |s: &str| Support::Yes(s.to_string());
    let wine = ntdll::wine_version().is_some();
    match limit {
        LimitKind::WallClock => yes("timer in the controller, then TerminateJobObject"),
        LimitKind::CpuRate if wine => {
            Support::No("Wine rejects JobObjectCpuRateControlInformation (ERROR_INVALID_PARAMETER)".to_string())
        }
        _ if wine => Support::Weaker(WINE_LIMIT.to_string()),
        LimitKind::Memory => yes("JobMemoryLimit (committed memory): an allocation over it fails, then corral kills the group"),
        LimitKind::MemoryPerProcess => yes("ProcessMemoryLimit (committed memory of each process)"),
        LimitKind::Processes => yes("ActiveProcessLimit: a process over it is not started, then corral kills the group"),
        LimitKind::CpuTime => {
            yes("PerJobUserTimeLimit: the job ends every member when the group's user-mode time runs out (kernel time is not counted)")
        }
        LimitKind::CpuRate if nests() => yes("JobObjectCpuRateControlInformation, hard cap"),
        LimitKind::CpuRate => Support::No("CPU rate control needs Windows 8 or later".to_string()),
    }
}

/// Whether a group can be created here; if not, why.
pub(super) fn available() -> Result<(), String> {
    match job::own_job() {
        Ok(Some(parent)) if !nests() => {
            let flags = parent.BasicLimitInformation.LimitFlags;
            if flags & (JOB_OBJECT_LIMIT_BREAKAWAY_OK | JOB_OBJECT_LIMIT_SILENT_BREAKAWAY_OK) == 0 {
                return Err("corral runs inside a job, this Windows (before 8) cannot nest jobs, and the job forbids \
                            breakaway: run corral outside that job"
                    .to_string());
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

fn report_job() -> BackendReport {
    let yes = |s: &str| Support::Yes(s.to_string());
    let wine = ntdll::wine_version().is_some();
    let mut caps = vec![
        (
            Capability::HoldsEscapees,
            yes("job membership is inherited by every descendant and cannot be left (no breakaway)"),
        ),
        (Capability::AtomicKill, yes("TerminateJobObject")),
        (Capability::KillOnControllerDeath, yes("JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE")),
        (
            Capability::EmptyNotification,
            yes("JOB_OBJECT_MSG_ACTIVE_PROCESS_ZERO on the completion port, confirmed by the active-process count"),
        ),
        (
            Capability::PeakMemory,
            if wine {
                Support::No("Wine's job accounting reports no peak memory (nor CPU time)".to_string())
            } else {
                yes("PeakJobMemoryUsed (committed memory of the whole group)")
            },
        ),
    ];
    for lk in LimitKind::ALL {
        caps.push((Capability::Limit(lk), limit_support(lk)));
    }
    BackendReport { kind: BackendKind::Job, available: available(), capabilities: caps }
}

pub(super) fn report() -> HostReport {
    let mut notes = Vec::new();
    if let Some((major, minor, build)) = ntdll::windows_version() {
        notes.push(format!("Windows {major}.{minor} build {build}"));
    }
    if let Some(v) = ntdll::wine_version() {
        notes.push(format!(
            "running under Wine {v}: job membership, TerminateJobObject, the completion port, the process list and \
             process counts work; limits are accepted but neither enforced nor reported back, and no CPU time or \
             peak memory is counted (real Windows does all of it)"
        ));
    }
    notes.push(format!(
        "nested jobs: {}",
        if nests() { "supported (Windows 8 or later, or Wine)" } else { "not supported (before Windows 8)" }
    ));
    match job::own_job() {
        Ok(None) => notes.push("corral runs in no job: its groups are top-level jobs".to_string()),
        Ok(Some(_)) if ntdll::wine_version().is_some() => notes.push(
            "corral runs inside a job (groups nest in it); Wine reports none of that job's limits, so whether it \
             allows breakaway or kills on close is unknown"
                .to_string(),
        ),
        Ok(Some(parent)) => {
            let flags = parent.BasicLimitInformation.LimitFlags;
            let breakaway = if flags & JOB_OBJECT_LIMIT_SILENT_BREAKAWAY_OK != 0 {
                "allowed (silently: children leave it by default)"
            } else if flags & JOB_OBJECT_LIMIT_BREAKAWAY_OK != 0 {
                "allowed (CREATE_BREAKAWAY_FROM_JOB)"
            } else {
                "not allowed"
            };
            notes.push(format!(
                "corral runs inside a job (groups nest in it); breakaway from it: {breakaway}; it kills on close: {}",
                if flags & JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE != 0 { "yes" } else { "no" }
            ));
        }
        Err(e) => notes.push(format!("cannot tell whether corral runs in a job: {e}")),
    }
    notes.push(if console::has_console() {
        "console: present, so a graceful stop also sends CTRL_BREAK to the leader's process group".to_string()
    } else {
        "console: none, so a graceful stop uses the stop event and WM_CLOSE only".to_string()
    });
    notes.push(
        "graceful stop: sets the event named in CORRAL_STOP_EVENT (Local\\corral-stop-<id>); programs that cooperate wait on it"
            .to_string(),
    );
    notes.extend(super::isolation_notes::notes(ntdll::wine_version().is_some()));
    HostReport {
        os: std::env::consts::OS,
        chosen: Some(BackendKind::Job).filter(|_| available().is_ok()),
        backends: vec![report_job()],
        notes,
    }
}
