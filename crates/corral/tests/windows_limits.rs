//! Job limits: read back from the job with the test's own
//! `QueryInformationJobObject`, and enforced, on real Windows.
//!
//! Wine accepts job limits but neither enforces them nor reports them
//! back, so under Wine the enforcement and read-back tests print why they
//! skip; what corral passes to the job is then checked by the unit tests
//! of `sys::windows::job::limit_info`.

#![cfg(windows)]

mod windows_support;

use corral::{Group, LimitKind, Limits, Reason, Signal, StopPolicy, Support};
use std::process::Command;
use std::time::Duration;
use windows_support::{assert_all_gone, start, wine, JobView};
use windows_sys::Win32::System::JobObjects::{
    JobObjectCpuRateControlInformation, JobObjectExtendedLimitInformation, JOBOBJECT_CPU_RATE_CONTROL_INFORMATION,
    JOBOBJECT_EXTENDED_LIMIT_INFORMATION, JOB_OBJECT_CPU_RATE_CONTROL_ENABLE, JOB_OBJECT_CPU_RATE_CONTROL_HARD_CAP,
    JOB_OBJECT_LIMIT_ACTIVE_PROCESS, JOB_OBJECT_LIMIT_JOB_MEMORY, JOB_OBJECT_LIMIT_JOB_TIME,
    JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE, JOB_OBJECT_LIMIT_PROCESS_MEMORY,
};

const MIB: u64 = 1 << 20;

trait Extended {
    fn extended(&self) -> JOBOBJECT_EXTENDED_LIMIT_INFORMATION;
}

impl Extended for JobView {
    fn extended(&self) -> JOBOBJECT_EXTENDED_LIMIT_INFORMATION {
        self.query(JobObjectExtendedLimitInformation).expect("query the job's limits")
    }
}

/// Wine 8 accepts the limits (SetInformationJobObject succeeds, or the
/// group would not exist) but answers every query of them with zeroes.
/// There the values are checked by the unit tests of the structure corral
/// passes (`sys::windows::job::limit_info`).
fn wine_answers_zeroes(flags: u32) -> bool {
    if wine() && flags == 0 {
        eprintln!("SKIPPED read-back under Wine: QueryInformationJobObject returns zeroes for job limits");
        return true;
    }
    false
}

#[test]
fn a_group_without_limits_only_kills_on_close() {
    let kit = start(Group::builder(), &["--sleep", "60"]);
    let info = JobView::open(&kit.group).extended();
    let flags = info.BasicLimitInformation.LimitFlags;
    if wine_answers_zeroes(flags) {
        kit.group.kill().unwrap();
        return;
    }
    assert_ne!(flags & JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE, 0, "flags {flags:#x}");
    let limits = JOB_OBJECT_LIMIT_JOB_MEMORY
        | JOB_OBJECT_LIMIT_PROCESS_MEMORY
        | JOB_OBJECT_LIMIT_ACTIVE_PROCESS
        | JOB_OBJECT_LIMIT_JOB_TIME;
    assert_eq!(flags & limits, 0, "flags {flags:#x}");
    kit.group.kill().unwrap();
    assert_eq!(kit.group.wait().leftover, 0);
    assert_all_gone(&kit.procs);
}

#[test]
fn limits_read_back_from_the_job() {
    let limits = Limits::new()
        .memory(96 * MIB)
        .memory_per_process(48 * MIB)
        .max_procs(7)
        .cpu_time(Duration::from_millis(30_500));
    let kit = start(Group::builder().limits(limits.clone()), &["--sleep", "60"]);
    let info = JobView::open(&kit.group).extended();
    let b = info.BasicLimitInformation;
    if !wine_answers_zeroes(b.LimitFlags) {
        for (flag, name) in [
            (JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE, "KILL_ON_JOB_CLOSE"),
            (JOB_OBJECT_LIMIT_JOB_MEMORY, "JOB_MEMORY"),
            (JOB_OBJECT_LIMIT_PROCESS_MEMORY, "PROCESS_MEMORY"),
            (JOB_OBJECT_LIMIT_ACTIVE_PROCESS, "ACTIVE_PROCESS"),
            (JOB_OBJECT_LIMIT_JOB_TIME, "JOB_TIME"),
        ] {
            assert_ne!(b.LimitFlags & flag, 0, "{name} missing from {:#x}", b.LimitFlags);
        }
        assert_eq!(info.JobMemoryLimit as u64, 96 * MIB);
        assert_eq!(info.ProcessMemoryLimit as u64, 48 * MIB);
        assert_eq!(b.ActiveProcessLimit, 7);
        // 100 ns units.
        assert_eq!(b.PerJobUserTimeLimit, 305_000_000);
    }

    // How corral itself describes them: enforced on Windows, and honestly
    // not under Wine.
    let e = kit.group.enforcement();
    assert_eq!(e.iter().map(|e| e.limit).collect::<Vec<_>>(), limits.kinds());
    for x in &e {
        match (&x.support, wine(), x.limit) {
            (Support::Yes(_), false, _) => {}
            (Support::Weaker(d), true, _) => assert!(d.contains("Wine"), "{x:?}"),
            other => panic!("unexpected enforcement {other:?}"),
        }
    }
    kit.group.kill().unwrap();
    assert_eq!(kit.group.wait().leftover, 0);
    assert_all_gone(&kit.procs);
}

#[test]
fn cpu_rate_reads_back_or_is_refused_under_wine() {
    let b = Group::builder().limits(Limits::new().cpus(0.5));
    if wine() {
        // Wine rejects JobObjectCpuRateControlInformation outright; corral
        // refuses the group rather than pretend.
        let e = b.spawn(windows_support::command(&["--sleep", "60"])).unwrap_err();
        assert_eq!(e.kind(), corral::ErrorKind::Unsupported, "{e}");
        eprintln!("under Wine a CPU rate limit is refused: {e}");
        return;
    }
    let kit = start(b, &["--sleep", "60"]);
    let rate: JOBOBJECT_CPU_RATE_CONTROL_INFORMATION =
        JobView::open(&kit.group).query(JobObjectCpuRateControlInformation).expect("query the CPU rate");
    let want = JOB_OBJECT_CPU_RATE_CONTROL_ENABLE | JOB_OBJECT_CPU_RATE_CONTROL_HARD_CAP;
    assert_eq!(rate.ControlFlags & want, want, "flags {:#x}", rate.ControlFlags);
    let ncpu = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1) as f64;
    // SAFETY: with CPU_RATE_CONTROL_ENABLE alone (no WEIGHT_BASED or
    // MIN_MAX_RATE), the union holds CpuRate.
    let got = unsafe { rate.Anonymous.CpuRate };
    let expect = (0.5 / ncpu * 10_000.0).round().clamp(1.0, 10_000.0) as u32;
    assert!(got.abs_diff(expect) <= 1, "CpuRate {got}, expected about {expect} for {ncpu} CPUs");
    kit.group.kill().unwrap();
    assert_eq!(kit.group.wait().leftover, 0);
}

#[test]
fn cpu_time_limit_kills_the_group() {
    if windows_support::skip_under_wine("Wine does not enforce PerJobUserTimeLimit, nor count CPU time in a job") {
        return;
    }
    let b = Group::builder()
        .limits(Limits::new().cpu_time(Duration::from_millis(300)))
        .stop(StopPolicy::new(Signal::TERM, Duration::from_millis(200)));
    let kit = start(b, &["--children", "1", "--spin", "30", "--sleep", "30"]);
    let out = kit.group.wait();
    eprintln!("cpu-time limit 300 ms: {:?} after {:?}, usage {:?}", out.reason, out.duration, out.usage);
    assert_eq!(out.reason, Reason::CpuTimeLimit);
    assert!(out.usage.cpu_total() >= Duration::from_millis(250), "{:?}", out.usage);
    assert!(out.duration < Duration::from_secs(20), "{:?}", out.duration);
    assert_eq!(out.leftover, 0);
    assert_all_gone(&kit.procs);
}

#[test]
fn memory_limit_kills_the_group() {
    if windows_support::skip_under_wine("Wine does not enforce JobMemoryLimit") {
        return;
    }
    let b = Group::builder().limits(Limits::new().memory(64 * MIB));
    let kit = start(b, &["--alloc", "512", "--sleep", "30"]);
    let out = kit.group.wait();
    assert_eq!(out.reason, Reason::MemoryLimit, "{out:?}");
    assert!(out.usage.peak_memory.is_some_and(|p| p <= 80 * MIB), "{:?}", out.usage);
    assert_eq!(out.leftover, 0);
    assert_all_gone(&kit.procs);
}

#[test]
fn per_process_memory_limit_kills_the_group() {
    if windows_support::skip_under_wine("Wine does not enforce ProcessMemoryLimit") {
        return;
    }
    let b = Group::builder().limits(Limits::new().memory_per_process(64 * MIB));
    let kit = start(b, &["--alloc", "512", "--sleep", "30"]);
    let out = kit.group.wait();
    assert_eq!(out.reason, Reason::MemoryLimit, "{out:?}");
    assert_eq!(out.leftover, 0);
    assert_all_gone(&kit.procs);
}

#[test]
fn process_limit_kills_the_group() {
    if windows_support::skip_under_wine("Wine does not enforce ActiveProcessLimit") {
        return;
    }
    // The tree needs 1 + 3 processes; the job allows 3 at once. The
    // testkit fails to start its third child, so there is no ready line:
    // the outcome is the proof.
    let b = Group::builder().limits(Limits::new().max_procs(3));
    let mut group = b.spawn(windows_support::command(&["--children", "3", "--sleep", "30"])).unwrap();
    let _stdout = group.take_stdout();
    let out = group.wait();
    assert_eq!(out.reason, Reason::ProcessLimit, "{out:?}");
    assert_eq!(out.leftover, 0);
}

#[test]
fn ctrl_break_reaches_the_console_group() {
    if windows_support::skip_under_wine("GenerateConsoleCtrlEvent(CTRL_BREAK_EVENT) fails under Wine") {
        return;
    }
    let has_console = {
        let mut pids = [0u32; 4];
        // SAFETY: `pids` is writable for its length.
        unsafe { windows_sys::Win32::System::Console::GetConsoleProcessList(pids.as_mut_ptr(), 4) != 0 }
    };
    if !has_console {
        eprintln!("SKIPPED: this test process has no console for CTRL_BREAK to travel on");
        return;
    }
    // cmd clears CORRAL_STOP_EVENT, so only CTRL_BREAK can end the testkit
    // before the kill; its default handler exits with STATUS_CONTROL_C_EXIT.
    let kit = windows_support::testkit();
    let mut cmd = Command::new("cmd");
    cmd.arg("/c").arg(format!("set CORRAL_STOP_EVENT=& \"{}\" --sleep 60", kit.display()));
    cmd.stdout(std::process::Stdio::piped()).stdin(std::process::Stdio::null());
    let mut group = Group::builder().stop(StopPolicy::new(Signal::TERM, Duration::from_secs(20))).spawn(cmd).unwrap();
    // The testkit inherits cmd's stdout and prints its ready line there.
    let mut line = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(group.take_stdout().unwrap()), &mut line).unwrap();
    windows_support::Ready::parse(line.trim());
    let t = std::time::Instant::now();
    group.stop();
    let out = group.wait();
    assert!(t.elapsed() < Duration::from_secs(15), "CTRL_BREAK did not arrive: {:?}", t.elapsed());
    assert_eq!(out.status.code, Some(0xC000_013Au32 as i32), "{out:?}");
    assert_eq!(out.leftover, 0);
}

#[test]
fn enforcement_is_reported_per_limit() {
    let b = Group::builder().limits(Limits::new().memory(256 * MIB).max_procs(50));
    let kit = start(b, &["--sleep", "60"]);
    let e = kit.group.enforcement();
    assert_eq!(e.len(), 2);
    assert_eq!(e[0].limit, LimitKind::Memory);
    assert_eq!(e[1].limit, LimitKind::Processes);
    kit.group.kill().unwrap();
    assert_eq!(kit.group.wait().leftover, 0);
}
