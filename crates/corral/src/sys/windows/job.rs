//! The Job Object: membership, limits, accounting and the atomic kill.
//!
//! A process joins a job when it is assigned (the leader, while still
//! suspended) or when a member creates it: membership is inherited and,
//! without `JOB_OBJECT_LIMIT_BREAKAWAY_OK`, cannot be left. Jobs nest on
//! Windows 8 and later, so corral works inside a CI runner's or a
//! service's job.
//!
//! Traps:
//! - `JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE` kills the members when the last
//!   handle to the job closes. The handle must therefore never be
//!   inheritable (it is not: no `SECURITY_ATTRIBUTES`), or a member would
//!   keep its own job alive.
//! - Memory limits count *committed* memory (private bytes), not the
//!   working set. An allocation over the limit fails inside the member and
//!   a message is posted; the job does not kill by itself.
//! - `PerJobUserTimeLimit` counts user-mode time only. When it runs out the
//!   job terminates every member (the default end-of-job action) and
//!   becomes signalled; no message is posted in that mode.
//! - `JobObjectBasicProcessIdList` fails with `ERROR_MORE_DATA` when the
//!   list outgrew the buffer; the header still says how many there are.

use super::handle::{self, check, raw};
use crate::Limits;
use std::io;
use std::mem::{size_of, zeroed};
use std::os::windows::io::OwnedHandle;
use std::time::Duration;
use windows_sys::Win32::Foundation::{ERROR_MORE_DATA, HANDLE, WAIT_OBJECT_0};
use windows_sys::Win32::Storage::FileSystem::SYNCHRONIZE;
use windows_sys::Win32::System::JobObjects::{
    AssignProcessToJobObject, CreateJobObjectW, IsProcessInJob, JobObjectAssociateCompletionPortInformation,
    JobObjectBasicAccountingInformation, JobObjectBasicAndIoAccountingInformation, JobObjectBasicProcessIdList,
    JobObjectBasicUIRestrictions, JobObjectCpuRateControlInformation, JobObjectExtendedLimitInformation,
    OpenJobObjectW, QueryInformationJobObject, SetInformationJobObject, TerminateJobObject, JOBOBJECTINFOCLASS,
    JOBOBJECT_ASSOCIATE_COMPLETION_PORT, JOBOBJECT_BASIC_ACCOUNTING_INFORMATION,
    JOBOBJECT_BASIC_AND_IO_ACCOUNTING_INFORMATION, JOBOBJECT_BASIC_UI_RESTRICTIONS,
    JOBOBJECT_CPU_RATE_CONTROL_INFORMATION, JOBOBJECT_EXTENDED_LIMIT_INFORMATION, JOB_OBJECT_CPU_RATE_CONTROL_ENABLE,
    JOB_OBJECT_CPU_RATE_CONTROL_HARD_CAP, JOB_OBJECT_LIMIT_ACTIVE_PROCESS, JOB_OBJECT_LIMIT_DIE_ON_UNHANDLED_EXCEPTION,
    JOB_OBJECT_LIMIT_JOB_MEMORY, JOB_OBJECT_LIMIT_JOB_TIME, JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE,
    JOB_OBJECT_LIMIT_PROCESS_MEMORY, JOB_OBJECT_LIMIT_PROCESS_TIME, JOB_OBJECT_LIMIT_WORKINGSET,
    JOB_OBJECT_UILIMIT_DESKTOP, JOB_OBJECT_UILIMIT_DISPLAYSETTINGS, JOB_OBJECT_UILIMIT_EXITWINDOWS,
    JOB_OBJECT_UILIMIT_GLOBALATOMS, JOB_OBJECT_UILIMIT_HANDLES, JOB_OBJECT_UILIMIT_READCLIPBOARD,
    JOB_OBJECT_UILIMIT_SYSTEMPARAMETERS, JOB_OBJECT_UILIMIT_WRITECLIPBOARD,
};
use windows_sys::Win32::System::SystemServices::{
    JOB_OBJECT_ASSIGN_PROCESS, JOB_OBJECT_QUERY, JOB_OBJECT_SET_ATTRIBUTES, JOB_OBJECT_TERMINATE,
};
use windows_sys::Win32::System::Threading::{GetActiveProcessorCount, WaitForSingleObject};

/// Job times are in units of 100 ns.
const TICKS_PER_SEC: u64 = 10_000_000;

fn ticks_to_duration(t: i64) -> Duration {
    let t = t.max(0) as u64;
    Duration::new(t / TICKS_PER_SEC, ((t % TICKS_PER_SEC) * 100) as u32)
}

fn duration_to_ticks(d: Duration) -> i64 {
    i64::try_from(d.as_nanos() / 100).unwrap_or(i64::MAX)
}

/// What a controller that takes a job back needs of it: list, assign,
/// watch (its completion port) and kill.
const REOPEN: u32 =
    JOB_OBJECT_QUERY | JOB_OBJECT_ASSIGN_PROCESS | JOB_OBJECT_SET_ATTRIBUTES | JOB_OBJECT_TERMINATE | SYNCHRONIZE;

/// `ALL_PROCESSOR_GROUPS`: count the processors of every group.
const ALL_PROCESSOR_GROUPS: u16 = 0xffff;

/// What the job has counted so far.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Accounting {
    pub user: Duration,
    pub kernel: Duration,
    pub total_processes: u32,
    pub active_processes: u32,
    pub read_bytes: Option<u64>,
    pub write_bytes: Option<u64>,
}

/// One job, owned: closing it kills whatever is left in it, unless it
/// was made to outlive its controller.
pub(super) struct Job {
    handle: OwnedHandle,
    name: String,
    kill_on_close: bool,
}

impl Job {
    /// Creates the named job with no limits yet, and with
    /// `KILL_ON_JOB_CLOSE` unless `outlive`: then its members live on when
    /// the controller dies, and its kill is only ever explicit.
    /// `name` is a base: a taken one gets a suffix (see `create_named`).
    pub(super) fn create(name: &str, outlive: bool) -> io::Result<Job> {
        // SAFETY: the name is NUL-terminated; null attributes give a
        // non-inheritable handle with the default security descriptor.
        let (h, name) = handle::create_named(name, |w| unsafe { CreateJobObjectW(std::ptr::null(), w) })?;
        let job = Job { handle: h, name, kill_on_close: !outlive };
        job.set_extended(&Limits::default())?;
        Ok(job)
    }

    /// Opens the existing job `name` (one a previous controller made to
    /// outlive it). Its limits are left as they are.
    ///
    /// Trap: a job's name lives only while someone holds a handle to it
    /// (on Windows; Wine keeps it while members live), so a controller that
    /// means to find it again by name keeps a handle in another process.
    pub(super) fn open(name: &str) -> io::Result<Job> {
        let w = handle::wide(name);
        // SAFETY: `w` is NUL-terminated; the handle is not inheritable.
        let h = handle::from_null(unsafe { OpenJobObjectW(REOPEN, 0, w.as_ptr()) })?;
        Ok(Job { handle: h, name: name.to_string(), kill_on_close: false })
    }

    pub(super) fn name(&self) -> &str {
        &self.name
    }

    pub(super) fn raw(&self) -> HANDLE {
        raw(&self.handle)
    }

    pub(super) fn query<T>(&self, class: JOBOBJECTINFOCLASS) -> io::Result<T> {
        // SAFETY: every T used here is a plain C struct; zeroes are valid.
        let mut v: T = unsafe { zeroed() };
        // SAFETY: `v` is writable and exactly `size_of::<T>()` bytes.
        check(unsafe {
            QueryInformationJobObject(
                self.raw(),
                class,
                (&mut v as *mut T).cast(),
                size_of::<T>() as u32,
                std::ptr::null_mut(),
            )
        })?;
        Ok(v)
    }

    fn set<T>(&self, class: JOBOBJECTINFOCLASS, v: &T) -> io::Result<()> {
        // SAFETY: `v` is a plain C struct of the size passed for `class`.
        check(unsafe { SetInformationJobObject(self.raw(), class, (v as *const T).cast(), size_of::<T>() as u32) })
    }

    /// Sets the kill-on-close flag and the memory, process and CPU-time
    /// limits in one call (they share one structure).
    pub(super) fn set_extended(&self, l: &Limits) -> io::Result<()> {
        self.set(JobObjectExtendedLimitInformation, &limit_info(l, self.kill_on_close))
    }

    /// Every `JOB_OBJECT_UILIMIT_*` restriction.
    pub(super) fn set_ui_restrictions(&self) -> io::Result<()> {
        let info = JOBOBJECT_BASIC_UI_RESTRICTIONS { UIRestrictionsClass: UI_LIMITS };
        self.set(JobObjectBasicUIRestrictions, &info)
    }

    /// Caps the job at `cores` of CPU, like `docker --cpus`.
    pub(super) fn set_cpu_rate(&self, cores: f64) -> io::Result<()> {
        // SAFETY: GetActiveProcessorCount has no preconditions.
        let ncpu = unsafe { GetActiveProcessorCount(ALL_PROCESSOR_GROUPS) }.max(1);
        // SAFETY: plain C struct (with a union of u32s); zeroes are valid.
        let mut info: JOBOBJECT_CPU_RATE_CONTROL_INFORMATION = unsafe { zeroed() };
        info.ControlFlags = JOB_OBJECT_CPU_RATE_CONTROL_ENABLE | JOB_OBJECT_CPU_RATE_CONTROL_HARD_CAP;
        info.Anonymous.CpuRate = cpu_rate(cores, ncpu);
        self.set(JobObjectCpuRateControlInformation, &info)
    }

    /// The limits as the OS holds them now.
    pub(super) fn extended(&self) -> io::Result<JOBOBJECT_EXTENDED_LIMIT_INFORMATION> {
        self.query(JobObjectExtendedLimitInformation)
    }

    /// The job's counters. Wine 8 answers only the basic class, so the I/O
    /// counts are `None` there.
    pub(super) fn accounting(&self) -> io::Result<Accounting> {
        let (b, io) = match self
            .query::<JOBOBJECT_BASIC_AND_IO_ACCOUNTING_INFORMATION>(JobObjectBasicAndIoAccountingInformation)
        {
            Ok(a) => (a.BasicInfo, Some((a.IoInfo.ReadTransferCount, a.IoInfo.WriteTransferCount))),
            Err(_) => {
                (self.query::<JOBOBJECT_BASIC_ACCOUNTING_INFORMATION>(JobObjectBasicAccountingInformation)?, None)
            }
        };
        Ok(Accounting {
            user: ticks_to_duration(b.TotalUserTime),
            kernel: ticks_to_duration(b.TotalKernelTime),
            total_processes: b.TotalProcesses,
            active_processes: b.ActiveProcesses,
            read_bytes: io.map(|i| i.0),
            write_bytes: io.map(|i| i.1),
        })
    }

    /// The most committed memory the whole job held at once.
    pub(super) fn peak_memory(&self) -> io::Result<u64> {
        Ok(self.extended()?.PeakJobMemoryUsed as u64)
    }

    /// The pids in the job (and in jobs nested in it), growing the buffer
    /// until the whole list fits.
    pub(super) fn pids(&self) -> io::Result<Vec<u32>> {
        // The list is two u32 counts, then one pointer-sized id per process.
        // A Vec<usize> gives the alignment; the counts take 8 bytes.
        let head = 8 / size_of::<usize>();
        let mut cap = 64usize;
        for _ in 0..8 {
            let mut buf = vec![0usize; head + cap];
            let bytes = (buf.len() * size_of::<usize>()) as u32;
            // SAFETY: `buf` is writable for `bytes` bytes and aligned for
            // JOBOBJECT_BASIC_PROCESS_ID_LIST.
            let ok = unsafe {
                QueryInformationJobObject(
                    self.raw(),
                    JobObjectBasicProcessIdList,
                    buf.as_mut_ptr().cast(),
                    bytes,
                    std::ptr::null_mut(),
                )
            };
            // SAFETY: `buf` holds at least 8 initialised bytes, aligned for u32.
            let [assigned, listed] = unsafe { std::ptr::read(buf.as_ptr().cast::<[u32; 2]>()) };
            let (assigned, listed) = (assigned as usize, (listed as usize).min(cap));
            if ok == 0 {
                let e = io::Error::last_os_error();
                if e.raw_os_error() != Some(ERROR_MORE_DATA as i32) {
                    return Err(e);
                }
            } else if listed >= assigned {
                return Ok(buf[head..head + listed].iter().map(|p| *p as u32).collect());
            }
            // Room for what is there now, plus some for what starts meanwhile.
            cap = assigned.max(cap) * 2;
        }
        Err(io::Error::other("the job's process list kept growing faster than it could be read"))
    }

    /// Puts a process (still suspended) into the job.
    pub(super) fn assign(&self, process: HANDLE) -> io::Result<()> {
        // SAFETY: both handles are live; the caller owns `process`.
        check(unsafe { AssignProcessToJobObject(self.raw(), process) })
    }

    /// Ends every member at once with `code`.
    pub(super) fn terminate(&self, code: u32) -> io::Result<()> {
        // SAFETY: the job handle is live and has JOB_OBJECT_TERMINATE.
        check(unsafe { TerminateJobObject(self.raw(), code) })
    }

    /// Whether `process` is in this job (or one nested in it).
    pub(super) fn contains(&self, process: HANDLE) -> io::Result<bool> {
        let mut yes = 0;
        // SAFETY: both handles are live; `yes` is writable.
        check(unsafe { IsProcessInJob(process, self.raw(), &mut yes) })?;
        Ok(yes != 0)
    }

    /// Sends the job's messages to `port` with `key`.
    pub(super) fn associate(&self, port: HANDLE, key: usize) -> io::Result<()> {
        let info = JOBOBJECT_ASSOCIATE_COMPLETION_PORT { CompletionKey: key as *mut _, CompletionPort: port };
        self.set(JobObjectAssociateCompletionPortInformation, &info)
    }

    /// True once the job's end-of-job time (the CPU-time limit) ran out:
    /// only that makes a job object signalled.
    pub(super) fn time_limit_reached(&self) -> bool {
        // SAFETY: the job handle is live and has SYNCHRONIZE.
        unsafe { WaitForSingleObject(self.raw(), 0) == WAIT_OBJECT_0 }
    }
}

/// Every UI restriction a job can hold.
pub(super) const UI_LIMITS: u32 = JOB_OBJECT_UILIMIT_DESKTOP
    | JOB_OBJECT_UILIMIT_DISPLAYSETTINGS
    | JOB_OBJECT_UILIMIT_EXITWINDOWS
    | JOB_OBJECT_UILIMIT_GLOBALATOMS
    | JOB_OBJECT_UILIMIT_HANDLES
    | JOB_OBJECT_UILIMIT_READCLIPBOARD
    | JOB_OBJECT_UILIMIT_SYSTEMPARAMETERS
    | JOB_OBJECT_UILIMIT_WRITECLIPBOARD;

/// The structure that puts `l` on a job. Under Wine this is the only
/// place the values can be checked: Wine 8 accepts them but answers
/// every query of them with zeroes.
pub(super) fn limit_info(l: &Limits, kill_on_close: bool) -> JOBOBJECT_EXTENDED_LIMIT_INFORMATION {
    // SAFETY: plain C struct; zeroes mean "no limit".
    let mut info: JOBOBJECT_EXTENDED_LIMIT_INFORMATION = unsafe { zeroed() };
    // A member that crashes dies at once instead of waiting on an error
    // dialog that nobody will answer.
    let mut flags = JOB_OBJECT_LIMIT_DIE_ON_UNHANDLED_EXCEPTION;
    if kill_on_close {
        flags |= JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE;
    }
    if let Some(m) = l.memory {
        flags |= JOB_OBJECT_LIMIT_JOB_MEMORY;
        info.JobMemoryLimit = usize::try_from(m).unwrap_or(usize::MAX);
    }
    if let Some(m) = l.memory_per_process {
        flags |= JOB_OBJECT_LIMIT_PROCESS_MEMORY;
        info.ProcessMemoryLimit = usize::try_from(m).unwrap_or(usize::MAX);
    }
    if let Some(n) = l.max_procs {
        flags |= JOB_OBJECT_LIMIT_ACTIVE_PROCESS;
        info.BasicLimitInformation.ActiveProcessLimit = n;
    }
    if let Some(t) = l.cpu_time {
        flags |= JOB_OBJECT_LIMIT_JOB_TIME;
        info.BasicLimitInformation.PerJobUserTimeLimit = duration_to_ticks(t);
    }
    if let Some(t) = l.cpu_time_per_process {
        flags |= JOB_OBJECT_LIMIT_PROCESS_TIME;
        info.BasicLimitInformation.PerProcessUserTimeLimit = duration_to_ticks(t);
    }
    if let Some(ws) = l.working_set {
        // Both or neither: a max without a min is ERROR_INVALID_PARAMETER.
        flags |= JOB_OBJECT_LIMIT_WORKINGSET;
        info.BasicLimitInformation.MinimumWorkingSetSize = usize::try_from(ws.min).unwrap_or(usize::MAX);
        info.BasicLimitInformation.MaximumWorkingSetSize = usize::try_from(ws.max).unwrap_or(usize::MAX);
    }
    info.BasicLimitInformation.LimitFlags = flags;
    info
}

/// `JOBOBJECT_CPU_RATE_CONTROL_INFORMATION.CpuRate`: hundredths of a
/// percent of the whole machine, 1..=10000.
pub(super) fn cpu_rate(cores: f64, ncpu: u32) -> u32 {
    let rate = (cores / f64::from(ncpu.max(1)) * 10_000.0).round();
    rate.clamp(1.0, 10_000.0) as u32
}

/// Whether this process is in any job, and if so that job's limits
/// (queried through the NULL job handle, which means "my job").
pub(super) fn own_job() -> io::Result<Option<JOBOBJECT_EXTENDED_LIMIT_INFORMATION>> {
    let mut yes = 0;
    // SAFETY: the current-process pseudo handle is always valid; a NULL
    // job asks about any job.
    check(unsafe {
        IsProcessInJob(windows_sys::Win32::System::Threading::GetCurrentProcess(), std::ptr::null_mut(), &mut yes)
    })?;
    if yes == 0 {
        return Ok(None);
    }
    // SAFETY: plain C struct.
    let mut v: JOBOBJECT_EXTENDED_LIMIT_INFORMATION = unsafe { zeroed() };
    // SAFETY: a NULL job handle queries the job of the calling process;
    // `v` is writable for its size.
    check(unsafe {
        QueryInformationJobObject(
            std::ptr::null_mut(),
            JobObjectExtendedLimitInformation,
            (&mut v as *mut JOBOBJECT_EXTENDED_LIMIT_INFORMATION).cast(),
            size_of::<JOBOBJECT_EXTENDED_LIMIT_INFORMATION>() as u32,
            std::ptr::null_mut(),
        )
    })?;
    Ok(Some(v))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_rate_is_a_share_of_the_machine() {
        assert_eq!(cpu_rate(0.5, 1), 5_000);
        assert_eq!(cpu_rate(1.0, 4), 2_500);
        assert_eq!(cpu_rate(8.0, 4), 10_000);
        assert_eq!(cpu_rate(0.00001, 64), 1);
    }

    #[test]
    fn no_limits_still_kill_on_close() {
        let i = limit_info(&Limits::default(), true);
        assert_eq!(
            i.BasicLimitInformation.LimitFlags,
            JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE | JOB_OBJECT_LIMIT_DIE_ON_UNHANDLED_EXCEPTION
        );
        assert_eq!((i.JobMemoryLimit, i.ProcessMemoryLimit), (0, 0));
    }

    #[test]
    fn a_job_meant_to_outlive_its_controller_does_not_kill_on_close() {
        let i = limit_info(&Limits::new().max_procs(3), false);
        let f = i.BasicLimitInformation.LimitFlags;
        assert_eq!(f & JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE, 0);
        assert_ne!(f & JOB_OBJECT_LIMIT_ACTIVE_PROCESS, 0, "its limits still hold");
    }

    #[test]
    fn every_limit_lands_in_its_field() {
        let l = Limits::new()
            .memory(96 << 20)
            .memory_per_process(48 << 20)
            .max_procs(7)
            .cpu_time(Duration::from_millis(30_500));
        let i = limit_info(&l, true);
        let b = i.BasicLimitInformation;
        for flag in [
            JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE,
            JOB_OBJECT_LIMIT_JOB_MEMORY,
            JOB_OBJECT_LIMIT_PROCESS_MEMORY,
            JOB_OBJECT_LIMIT_ACTIVE_PROCESS,
            JOB_OBJECT_LIMIT_JOB_TIME,
        ] {
            assert_ne!(b.LimitFlags & flag, 0, "{flag:#x} missing from {:#x}", b.LimitFlags);
        }
        assert_eq!(i.JobMemoryLimit, 96 << 20);
        assert_eq!(i.ProcessMemoryLimit, 48 << 20);
        assert_eq!(b.ActiveProcessLimit, 7);
        assert_eq!(b.PerJobUserTimeLimit, 305_000_000);
    }

    #[test]
    fn a_working_set_lands_in_both_fields_with_its_flag() {
        let i = limit_info(&Limits::new().working_set(crate::WorkingSet::new(1 << 20, 64 << 20)), true);
        let b = i.BasicLimitInformation;
        assert_ne!(b.LimitFlags & JOB_OBJECT_LIMIT_WORKINGSET, 0, "{:#x}", b.LimitFlags);
        assert_eq!((b.MinimumWorkingSetSize, b.MaximumWorkingSetSize), (1 << 20, 64 << 20));
        let none = limit_info(&Limits::new(), true).BasicLimitInformation;
        assert_eq!(none.LimitFlags & JOB_OBJECT_LIMIT_WORKINGSET, 0);
    }

    /// The Wine flake: a job left by a dead controller with the same pid
    /// held the name, and the new controller's spawn failed.
    #[test]
    fn a_taken_name_gets_a_suffix_never_the_namesake() {
        let base = format!(r"Local\corral-job-test-taken-{}", std::process::id());
        let stale = Job::create(&base, false).unwrap();
        assert_eq!(stale.name(), base);
        let fresh = Job::create(&base, false).unwrap();
        assert_eq!(fresh.name(), format!("{base}.1"));
        assert_ne!(stale.raw(), fresh.raw());
        // Not the same object: a limit set on one is not seen on the other.
        fresh.set_extended(&Limits::new().max_procs(3)).unwrap();
        let b = stale.extended().unwrap();
        assert_eq!(b.BasicLimitInformation.ActiveProcessLimit, 0);
    }

    #[test]
    fn ticks_round_trip() {
        let d = Duration::from_millis(1_500);
        assert_eq!(duration_to_ticks(d), 15_000_000);
        assert_eq!(ticks_to_duration(15_000_000), d);
        assert_eq!(ticks_to_duration(-5), Duration::ZERO);
    }
}
