//! Windows: taking back a group a previous controller left running, and
//! reaping one that cannot be taken back.
//!
//! A group meant to outlive its controller lives in a job without
//! `KILL_ON_JOB_CLOSE` named `Local\corral-job-<group id>`. The next
//! controller opens that job by name and takes the group back only when
//! the recorded leader is that very process: same pid, same creation time
//! (a reused pid never matches), and a member of that job. Then every
//! member of the old job is assigned to the new group's job, pass after
//! pass until none is new (a member's children are born in the new job
//! once their parent is in it).
//!
//! Traps:
//! - The new job nests inside the old one (Windows 8 and later, and Wine,
//!   allow it): the old job goes away with its last member. Each take-back
//!   adds one level.
//! - On Windows a job's name lives only while a handle to the job is open;
//!   a dead controller's handles are closed, so the name survives only if
//!   another process (the supervisor's log holder) keeps a handle. Wine
//!   keeps the name while members live.

use super::adopt::open_for_assign;
use super::handle::raw;
use super::job::Job;
use super::process;
use crate::{Error, ErrorKind, Result};
use std::collections::BTreeMap;
use std::os::windows::io::OwnedHandle;
use std::time::{Duration, Instant};

/// How many passes a growing group may need to be moved whole.
const MAX_PASSES: usize = 1000;

/// How long a reap waits for the killed members to be gone.
const REAP_WAIT: Duration = Duration::from_secs(5);

/// The job name of group `id`.
pub(super) fn job_name(id: &str) -> String {
    format!(r"Local\corral-job-{id}")
}

/// Takes group `id`, led by `pid` created at `start` (100 ns ticks since
/// 1601), into `job`. Returns the leader's handle and every member's.
pub(super) fn take_back(job: &Job, id: &str, pid: u32, start: u64) -> Result<(OwnedHandle, Vec<(u32, OwnedHandle)>)> {
    let refused = |why: String| Error::new(ErrorKind::NotFound, format!("cannot re-attach group {id}: {why}"));
    let name = job_name(id);
    let old = Job::open(&name).map_err(|e| refused(format!("its job {name} is gone ({e})")))?;
    let leader = open_for_assign(pid).map_err(|e| refused(format!("its leader {pid} is gone ({e})")))?;
    let born = process::created(raw(&leader));
    if born != Some(start) || !process::running(&leader) {
        let born = born.map_or("unknown".to_string(), |b| b.to_string());
        return Err(refused(format!(
            "process {pid} is not the recorded leader (created at {born}, recorded {start}: the pid was reused)"
        )));
    }
    if !old.contains(raw(&leader)).unwrap_or(false) {
        return Err(refused(format!("process {pid} is not in job {name}")));
    }
    let mut members: BTreeMap<u32, OwnedHandle> = BTreeMap::new();
    for _ in 0..MAX_PASSES {
        let mut fresh = 0;
        for p in old.pids().map_err(|e| super::error::os("listing the old job's processes", e))? {
            if members.contains_key(&p) {
                continue;
            }
            let Ok(h) = open_for_assign(p) else { continue };
            // The pid may name another process by now: only what the old
            // job claims is moved.
            if !process::running(&h) || !old.contains(raw(&h)).unwrap_or(false) {
                continue;
            }
            if !job.contains(raw(&h)).unwrap_or(false) {
                if let Err(e) = job.assign(raw(&h)) {
                    if process::running(&h) {
                        return Err(super::error::assign(e));
                    }
                    continue;
                }
            }
            members.insert(p, h);
            fresh += 1;
        }
        if fresh == 0 {
            return Ok((leader, members.into_iter().collect()));
        }
    }
    Err(refused(format!("its members kept changing for {MAX_PASSES} passes")))
}

/// Kills what is left of group `id` (a job that outlived its controller
/// and is not taken back); how many processes were in it. A job that is
/// gone left nothing to kill.
pub(super) fn reap(id: &str) -> std::io::Result<usize> {
    let Ok(job) = Job::open(&job_name(id)) else { return Ok(0) };
    let n = job.pids()?.len();
    let end = crate::deadline::after(Instant::now(), REAP_WAIT);
    loop {
        job.terminate(super::KILLED)?;
        if job.accounting().is_ok_and(|a| a.active_processes == 0) || Instant::now() >= end {
            return Ok(n);
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}
