//! Limits changed while the group runs (`Group::set_limits`), read back
//! from the cgroup and enforced, and notify-only limits whose hit is an
//! event while the group keeps running. Real processes, real cgroups;
//! each test proves its pids gone. Without cgroups (not root) the tests
//! print SKIPPED.

#![cfg(target_os = "linux")]

use corral::{BackendKind, Command, Event, Group, LimitKind, Limits, Reason, Stdio};
use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use corral_testkit::test_support::{alive, assert_gone};

/// The best cgroup backend here, if any.
fn cgroup_backend() -> Option<BackendKind> {
    let r = corral::host_report();
    let b = r.backends.into_iter().find(|b| b.available.is_ok() && b.kind != BackendKind::Pgid).map(|b| b.kind);
    if b.is_none() {
        eprintln!("SKIPPED: no cgroup backend on this host (run as root)");
    }
    b
}

/// The file holding `v2_name` (cgroup v2) or `v1_name` (the v1 `controller`)
/// for the cgroup of `pid`.
fn cgroup_file(pid: u32, controller: &str, v1_name: &str, v2_name: &str) -> PathBuf {
    let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    for line in text.lines() {
        let mut parts = line.splitn(3, ':');
        let (_, ctl, path) = (parts.next().unwrap(), parts.next().unwrap(), parts.next().unwrap());
        if ctl.split(',').any(|c| c == controller) {
            let f = PathBuf::from(format!("/sys/fs/cgroup/{controller}{path}/{v1_name}"));
            if f.exists() {
                return f;
            }
        }
        if ctl.is_empty() {
            for root in ["/sys/fs/cgroup", "/sys/fs/cgroup/unified"] {
                let f = PathBuf::from(format!("{root}{path}/{v2_name}"));
                if f.exists() {
                    return f;
                }
            }
        }
    }
    panic!("no {v1_name} or {v2_name} for {pid} in:\n{text}");
}

fn testkit() -> String {
    corral_testkit::binary().display().to_string()
}

#[test]
fn a_live_memory_limit_is_read_back_from_the_cgroup_and_enforced() {
    let Some(b) = cgroup_backend() else { return };
    // The leader waits for a line, then becomes a testkit that allocates
    // 96 MiB: within the first limit, beyond the second.
    let mut c = Command::new("/bin/sh");
    c.args(["-c", &format!("read go; exec {} --alloc 96 --sleep 20", testkit())])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let mut g = Group::builder().backend(b).limits(Limits::new().memory(512 << 20)).spawn(c).unwrap();
    let file = cgroup_file(g.pid(), "memory", "memory.limit_in_bytes", "memory.max");
    assert_eq!(std::fs::read_to_string(&file).unwrap().trim(), (512u64 << 20).to_string());
    g.set_limits(Limits::new().memory(32 << 20)).unwrap();
    assert_eq!(std::fs::read_to_string(&file).unwrap().trim(), (32u64 << 20).to_string(), "[{b}] {}", file.display());
    let pids = alive(g.members().unwrap());
    writeln!(g.take_stdin().unwrap(), "go").unwrap();
    let o = g.wait_timeout(Duration::from_secs(60)).expect("the allocation hits the new limit");
    assert_eq!(o.reason, Reason::MemoryLimit, "[{b}] {o:?}");
    assert_eq!(o.leftover, 0);
    assert_gone(&pids);
}

#[test]
fn limits_that_cannot_change_live_are_refused_and_nothing_changes() {
    let Some(b) = cgroup_backend() else { return };
    let mut c = Command::new("/bin/sh");
    c.args(["-c", "exec sleep 20"]).stdin(Stdio::null()).stdout(Stdio::null());
    let g = Group::builder().backend(b).limits(Limits::new().memory(256 << 20)).spawn(c).unwrap();
    let pids = alive(g.members().unwrap());
    let e = g.set_limits(Limits::new().memory(256 << 20).cpu_time(Duration::from_secs(5))).unwrap_err();
    assert!(e.to_string().contains("fixed when the group starts"), "{e}");
    let e = g.set_limits(Limits::new().memory(0)).unwrap_err();
    assert_eq!(e.kind(), corral::ErrorKind::InvalidInput);
    let file = cgroup_file(g.pid(), "memory", "memory.limit_in_bytes", "memory.max");
    assert_eq!(std::fs::read_to_string(&file).unwrap().trim(), (256u64 << 20).to_string());
    g.kill().unwrap();
    assert_eq!(g.wait().leftover, 0);
    assert_gone(&pids);
}

/// Waits for a `LimitHit` of `kind`, or for the group's count of such
/// notices: the testkit acts right after its ready line, without waiting
/// for the test to subscribe, so a hit may come before `events()` did.
fn wait_hit(g: &Group, events: &corral::Events, kind: LimitKind) -> bool {
    let end = Instant::now() + Duration::from_secs(30);
    while Instant::now() < end {
        if let Some(Event::LimitHit { kind: k }) = events.next_timeout(Duration::from_millis(200)) {
            if k == kind {
                return true;
            }
        }
        if g.limit_notices().iter().any(|(k, n)| *k == kind && *n >= 1) {
            return true;
        }
    }
    false
}

#[test]
fn a_notify_only_process_limit_refuses_forks_reports_and_the_group_keeps_running() {
    let Some(b) = cgroup_backend() else { return };
    // After its ready line, it forks 10 children (each lives 2 s).
    let mut c = Command::new(testkit());
    c.args(["--fork-loop", "10", "--sleep", "20"]).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::null());
    let limits = Limits::new().max_procs(3).notify_on(LimitKind::Processes);
    let mut g = Group::builder().backend(b).limits(limits).spawn(c).unwrap();
    let events = g.events();
    let mut line = String::new();
    BufReader::new(g.take_stdout().unwrap()).read_line(&mut line).unwrap();
    assert!(line.contains("\"ready\":true"), "{line}");
    assert!(wait_hit(&g, &events, LimitKind::Processes), "[{b}] a LimitHit event");
    assert!(g.try_wait().is_none(), "[{b}] the group keeps running");
    let members = g.members().unwrap();
    assert!(members.len() <= 3 && !members.is_empty(), "[{b}] forks were refused: {members:?}");
    assert!(g.limit_notices().iter().any(|(k, n)| *k == LimitKind::Processes && *n >= 1), "{:?}", g.limit_notices());
    let pids = alive(g.members().unwrap());
    g.kill().unwrap();
    let o = g.wait();
    assert_eq!(o.reason, Reason::Killed, "[{b}] killed by the test, not by the limit");
    assert_gone(&pids);
}

#[test]
fn a_notify_only_memory_limit_reports_and_the_group_keeps_running() {
    let Some(b) = cgroup_backend() else { return };
    let mut c = Command::new(testkit());
    c.args(["--alloc", "48", "--sleep", "20"]).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::null());
    let limits = Limits::new().memory(16 << 20).notify_on(LimitKind::Memory);
    let mut g = Group::builder().backend(b).limits(limits).spawn(c).unwrap();
    let events = g.events();
    let pids = alive(g.members().unwrap());
    let mut out = BufReader::new(g.take_stdout().unwrap());
    let mut line = String::new();
    // The ready line, then the allocation's own.
    while !line.contains("allocated_mib") {
        line.clear();
        assert!(out.read_line(&mut line).unwrap() > 0, "the testkit allocated");
    }
    assert!(wait_hit(&g, &events, LimitKind::Memory), "[{b}] a LimitHit event");
    assert!(g.try_wait().is_none(), "[{b}] the group keeps running above its notify-only limit");
    g.kill().unwrap();
    let o = g.wait();
    assert_eq!(o.reason, Reason::Killed, "[{b}] {o:?}");
    assert_gone(&pids);
}

#[test]
fn a_kind_that_cannot_only_notify_is_refused() {
    let e = Group::builder()
        .limits(Limits::new().cpu_time(Duration::from_secs(1)).notify_on(LimitKind::CpuTime))
        .spawn(Command::new("true"))
        .unwrap_err();
    assert!(e.to_string().contains("CPU time limit cannot only notify"), "{e}");
}

#[test]
fn a_per_process_cpu_time_limit_kills_the_spinner_not_the_group() {
    // RLIMIT_CPU needs no cgroup: every backend.
    let mut c = Command::new("/bin/sh");
    c.args(["-c", &format!("{} --spin 20 --sleep 20; echo spinner-ended", testkit())])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    let started = Instant::now();
    let mut g = Group::builder().limits(Limits::new().cpu_time_per_process(Duration::from_secs(1))).spawn(c).unwrap();
    let pids = alive(g.members().unwrap());
    let mut out = String::new();
    std::io::Read::read_to_string(&mut g.take_stdout().unwrap(), &mut out).unwrap();
    let o = g.wait_timeout(Duration::from_secs(60)).expect("the spinner is killed long before it ends by itself");
    assert!(out.contains("spinner-ended"), "the shell outlives its spinning child: {out}");
    assert_eq!(o.reason, Reason::Exited, "{o:?}");
    assert!(started.elapsed() < Duration::from_secs(19), "killed at ~1 s of CPU, not at the end of its spin");
    assert_gone(&pids);
}

#[test]
fn a_notify_only_cpu_rate_limit_throttles_reports_and_the_group_keeps_running() {
    let Some(b) = cgroup_backend() else { return };
    // Spins for up to 15 s after its ready line: far above a tenth of a CPU.
    let mut c = Command::new(testkit());
    c.args(["--spin", "15", "--sleep", "20"]).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::null());
    let limits = Limits::new().cpus(0.1).notify_on(LimitKind::CpuRate);
    let mut g = Group::builder().backend(b).limits(limits).spawn(c).unwrap();
    let events = g.events();
    let pids = alive(g.members().unwrap());
    let mut line = String::new();
    BufReader::new(g.take_stdout().unwrap()).read_line(&mut line).unwrap();
    assert!(line.contains("\"ready\":true"), "{line}");
    assert!(wait_hit(&g, &events, LimitKind::CpuRate), "[{b}] a LimitHit event for the throttling");
    assert!(g.try_wait().is_none(), "[{b}] the group keeps running while throttled");
    assert!(g.limit_notices().iter().any(|(k, n)| *k == LimitKind::CpuRate && *n >= 1), "{:?}", g.limit_notices());
    g.kill().unwrap();
    let o = g.wait();
    assert_eq!(o.reason, Reason::Killed, "[{b}] killed by the test, not by the limit: {o:?}");
    assert_gone(&pids);
}
