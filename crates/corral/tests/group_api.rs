//! The library API on real processes: members, tree, events, usage, stop,
//! kill, kill-on-drop, typed errors, and the tokio front. Each test proves
//! that the pids the testkit printed are gone afterwards.

#![cfg(target_os = "linux")]

use corral::{BackendKind, Command, ErrorKind, Event, Group, Limits, Reason, Stdio, StopPolicy};
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::time::Duration;

use corral_testkit::test_support::{alive, assert_gone, starttime};

fn testkit() -> PathBuf {
    corral_testkit::binary()
}

fn tk(args: &[&str]) -> Command {
    let mut c = Command::new(testkit());
    c.args(args).stdout(Stdio::piped()).stderr(Stdio::null()).stdin(Stdio::null());
    c
}

/// Reads the ready line; returns every pid it names, with start times.
fn ready(g: &mut Group) -> (serde_like::Ready, Vec<(u32, u64)>) {
    let out = g.take_stdout().unwrap();
    let mut line = String::new();
    BufReader::new(out).read_line(&mut line).unwrap();
    let r = serde_like::parse(&line);
    let pids: Vec<(u32, u64)> = alive(std::iter::once(r.pid).chain(r.all.iter().copied()));
    (r, pids)
}

/// The backends to run against: every one this host can hold a group with.
fn backends() -> Vec<BackendKind> {
    corral::host_report().backends.into_iter().filter(|b| b.available.is_ok()).map(|b| b.kind).collect()
}

/// A tiny reader for the testkit's ready line (keeps serde out of the library).
mod serde_like {
    pub struct Ready {
        pub pid: u32,
        pub all: Vec<u32>,
        pub children: Vec<u32>,
    }
    fn list(line: &str, key: &str) -> Vec<u32> {
        let Some(i) = line.find(&format!("\"{key}\":[")) else { return vec![] };
        let rest = &line[i + key.len() + 4..];
        let end = rest.find(']').unwrap();
        rest[..end].split(',').filter_map(|s| s.trim().parse().ok()).collect()
    }
    pub fn parse(line: &str) -> Ready {
        assert!(line.contains("\"ready\":true"), "{line}");
        let i = line.find("\"pid\":").unwrap() + 6;
        let pid = line[i..].split(|c: char| !c.is_ascii_digit()).next().unwrap().parse().unwrap();
        Ready { pid, all: list(line, "all"), children: list(line, "children") }
    }
}

#[test]
fn members_and_tree_show_the_whole_group() {
    for b in backends() {
        let mut g = Group::builder()
            .backend(b)
            .spawn(tk(&["--children", "2", "--grandchildren", "2", "--setsid", "1", "--sleep", "30.5"]))
            .unwrap();
        let (r, pids) = ready(&mut g);
        let members = g.members().unwrap();
        for (p, _) in &pids {
            assert!(members.contains(p), "[{b}] {p} in {members:?}");
        }
        let tree = g.tree().unwrap();
        assert_eq!(tree.children(r.pid).len(), 3, "[{b}] leader has 2 children + 1 setsid child:\n{tree}");
        assert!(tree.to_string().contains("corral-testkit"), "[{b}]");
        g.kill().unwrap();
        let o = g.wait();
        assert_eq!(o.reason, Reason::Killed, "[{b}]");
        assert_eq!(o.leftover, 0);
        assert_eq!(o.backend, b);
        assert_gone(&pids);
    }
}

/// A caller's kill races the teardown that a waiter drives: the leader
/// dies during the kill and the waiter tears the group down at once. On
/// cgroup v1 a zombie shows in the root cgroup, so the kill must note
/// each member before it kills it. Noted after the thaw (as before), a
/// teardown that ran in between counted the killed setsid children as
/// nobody's and left their zombies unreaped, with `leftover` 0: a window
/// of microseconds that a loaded host (CI) hit about once in 20 runs of
/// this file, and that an idle one rarely does. A stress probe, then:
/// 8 rounds per backend, 8 escapees each.
#[test]
fn a_kill_racing_a_waiters_teardown_leaves_no_zombie_behind() {
    for b in backends() {
        for _ in 0..8 {
            let mut g = Group::builder()
                .backend(b)
                .spawn(tk(&["--children", "2", "--setsid", "8", "--sleep", "30.5"]))
                .unwrap();
            let (_r, pids) = ready(&mut g);
            let o = std::thread::scope(|s| {
                let waiter = s.spawn(|| g.wait());
                g.kill().unwrap();
                waiter.join().unwrap()
            });
            assert_eq!(o.reason, Reason::Killed, "[{b}]");
            assert_eq!(o.leftover, 0, "[{b}]");
            // Right after `wait`: every member was reaped by then.
            assert_gone(&pids);
        }
    }
}

#[test]
fn events_report_started_exited_and_empty() {
    for b in backends() {
        let mut g = Group::builder().backend(b).spawn(tk(&["--children", "2", "--sleep", "1"])).unwrap();
        let events = g.events();
        let (r, pids) = ready(&mut g);
        let mut started = Vec::new();
        let mut exited = Vec::new();
        let mut empty = false;
        while let Some(e) = events.next_timeout(Duration::from_secs(10)) {
            match e {
                Event::Started { pid, .. } => started.push(pid),
                Event::Exited { pid, .. } => exited.push(pid),
                Event::Empty => {
                    empty = true;
                    break;
                }
                _ => {}
            }
        }
        assert!(empty, "[{b}] Empty arrives");
        assert!(started.contains(&r.pid), "[{b}] leader started: {started:?}");
        for c in &r.children {
            assert!(started.contains(c), "[{b}] child {c} started: {started:?}");
        }
        assert!(exited.contains(&r.pid), "[{b}] leader exited: {exited:?}");
        let o = g.wait();
        assert_eq!(o.reason, Reason::Exited);
        assert_eq!(o.status.code, Some(0));
        assert_gone(&pids);
    }
}

#[test]
fn usage_accounts_for_the_whole_group() {
    let tkp = testkit();
    for b in backends() {
        // The leader only sleeps; all the CPU time is burnt by a child. It
        // spins until the group has used 100 ms, however loaded the host:
        // a spin for a fixed wall time gets little CPU on a busy machine.
        let mut g = Group::builder()
            .backend(b)
            .spawn(tk(&["--sleep", "20", "--exec-child", tkp.to_str().unwrap(), "--spin", "15", "--sleep", "15"]))
            .unwrap();
        let (_r, pids) = ready(&mut g);
        let end = std::time::Instant::now() + Duration::from_secs(15);
        while g.usage().cpu_total() < Duration::from_millis(100) && std::time::Instant::now() < end {
            std::thread::sleep(Duration::from_millis(20));
        }
        g.stop();
        let o = g.wait();
        let cpu = o.usage.cpu_total();
        assert!(cpu >= Duration::from_millis(100), "[{b}] the child's CPU is counted: {cpu:?}");
        assert!(o.usage.peak_memory.unwrap_or(0) > 0, "[{b}]");
        if let Some(total) = o.usage.processes_total {
            assert_eq!(total, 2, "[{b}] leader and child");
        }
        assert_gone(&pids);
    }
}

#[test]
fn stop_is_graceful_then_kills_after_the_grace() {
    for b in backends() {
        let stop = StopPolicy::new(corral::Signal::TERM, Duration::from_millis(300));
        let mut g = Group::builder()
            .backend(b)
            .stop(stop)
            .spawn(tk(&["--ignore-term", "--children", "2", "--sleep", "30.5"]))
            .unwrap();
        let (_r, pids) = ready(&mut g);
        g.stop();
        let o = g.wait();
        assert_eq!(o.reason, Reason::Killed);
        assert_eq!(o.status.signal, Some(9), "[{b}] ignored TERM, so it was killed");
        assert!(o.duration >= Duration::from_millis(300));
        assert_gone(&pids);
    }
}

#[test]
fn dropping_a_group_kills_it() {
    for b in backends() {
        let mut g = Group::builder()
            .backend(b)
            .spawn(tk(&["--children", "3", "--double-fork", "1", "--sleep", "30.5"]))
            .unwrap();
        let (_r, pids) = ready(&mut g);
        drop(g);
        // The monitor thread finishes the teardown in the background.
        let end = std::time::Instant::now() + Duration::from_secs(10);
        while pids.iter().any(|(p, s)| starttime(*p) == Some(*s)) && std::time::Instant::now() < end {
            std::thread::sleep(Duration::from_millis(10));
        }
        assert_gone(&pids);
    }
}

#[test]
fn errors_are_typed_with_a_hint() {
    let e = Group::spawn(Command::new("/definitely/not/here")).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound);
    assert_eq!(e.os_code(), Some(2));
    assert!(e.hint_text().is_some());
    let e = Group::builder().limits(Limits::new().max_procs(0)).spawn(Command::new("true")).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput);
    assert!(e.to_string().contains("max_procs"), "{e}");
}

/// Issue 10: a timeout near i64::MAX seconds overflowed `started + t` and
/// panicked the group's monitor (the leader was left a zombie shown as
/// running), and so did `now + grace` in the teardown. Deadlines saturate:
/// a huge one simply never comes.
#[test]
fn a_huge_timeout_and_grace_never_panic_the_monitor() {
    let mut cmd = Command::new("sh");
    // The leader leaves a member behind, so the teardown's graceful stop
    // (and its `now + grace`) runs; the member ends on the stop signal.
    cmd.args(["-c", "sleep 5 & exit 3"]);
    let g = Group::builder()
        .timeout(Duration::MAX)
        .stop(StopPolicy::new(corral::Signal::TERM, Duration::MAX))
        .spawn(cmd)
        .unwrap();
    let o = g.wait_timeout(Duration::from_secs(30)).expect("the group ended");
    assert_eq!(o.status.code, Some(3), "{o:?}");
    assert_eq!(o.reason, Reason::Exited);
    assert_eq!(o.leftover, 0);
}

/// Issue 10: a missing working directory was reported as "command not
/// found … check PATH". Nothing is started when it is missing.
#[test]
fn a_missing_cwd_is_named_not_taken_for_a_missing_command() {
    let mut cmd = Command::new("true");
    cmd.current_dir("/definitely/not/here");
    let e = Group::spawn(cmd).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
    let text = e.to_string();
    assert!(text.contains("working directory /definitely/not/here"), "{text}");
    assert!(!text.contains("command not found") && !text.contains("PATH"), "{text}");
}

/// Issue 10: `cpus = 1e300` reached the kernel, whose ERANGE came back
/// with the hint "run as root", to root. It is refused as a value first.
#[test]
fn a_huge_limit_is_refused_as_a_value() {
    for limits in [
        Limits::new().cpus(1e300),
        Limits::new().cpus(f64::NAN),
        Limits::new().cpus(1025.0),
        Limits::new().memory(u64::MAX),
        Limits::new().cpu_time(Duration::MAX),
        Limits::new().max_procs(u32::MAX),
    ] {
        let e = Group::builder().limits(limits.clone()).spawn(Command::new("true")).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidInput, "{limits:?}: {e}");
        assert!(!e.to_string().contains("root"), "{e}");
    }
}

#[cfg(feature = "tokio")]
#[test]
fn tokio_wait_does_not_block_the_runtime() {
    let rt = tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap();
    rt.block_on(async {
        let mut g = Group::builder()
            .timeout(Duration::from_millis(200))
            .spawn(tk(&["--children", "2", "--sleep", "30.5"]))
            .unwrap();
        let (_r, pids) = ready(&mut g);
        let mut events = g.events_async();
        // A timer on the same single-threaded runtime still fires while we wait.
        let (o, _) = tokio::join!(g.wait_async(), tokio::time::sleep(Duration::from_millis(10)));
        assert_eq!(o.reason, Reason::Timeout);
        let mut saw_empty = false;
        while let Some(e) = events.recv().await {
            if e == Event::Empty {
                saw_empty = true;
            }
        }
        assert!(saw_empty);
        assert_gone(&pids);
    });
}

/// Names of this process's threads.
fn thread_names() -> Vec<String> {
    std::fs::read_dir("/proc/self/task")
        .unwrap()
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
        .map(|n| n.trim().to_string())
        .collect()
}

#[test]
fn twenty_live_groups_share_one_event_loop_thread() {
    let mut groups = Vec::new();
    let mut pids = Vec::new();
    for _ in 0..20 {
        let mut g = Group::builder().timeout(Duration::from_secs(20)).spawn(tk(&["--sleep", "30.5"])).unwrap();
        pids.extend(ready(&mut g).1);
        groups.push(g);
    }
    // A thread another test's group just started (a teardown, the
    // connector's reader) carries its creator's name, the reactor's, until
    // it names itself: look again, a bounded number of times.
    let reactors = |names: &[String]| names.iter().filter(|n| *n == "corral-reactor").count();
    let mut names = thread_names();
    for _ in 0..20 {
        if reactors(&names) == 1 {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
        names = thread_names();
    }
    assert_eq!(reactors(&names), 1, "{names:?}");
    // No thread per group (the old monitor threads were named after it;
    // the kernel keeps 15 bytes of a thread's name).
    let named = |g: &Group| format!("corral-{}", g.id()).chars().take(15).collect::<String>();
    let per_group = names.iter().filter(|n| groups.iter().any(|g| **n == named(g)));
    assert_eq!(per_group.count(), 0, "{names:?}");
    for g in &groups {
        g.kill().unwrap();
    }
    for g in &groups {
        let o = g.wait();
        assert_eq!((o.reason, o.leftover), (Reason::Killed, 0));
    }
    assert_gone(&pids);
}

/// Pids of live (non-zombie) processes whose environment holds `kv`.
#[cfg(feature = "tokio")]
fn marked(kv: &str) -> Vec<u32> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else { continue };
        let Ok(env) = std::fs::read(format!("/proc/{pid}/environ")) else { continue };
        let zombie = std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .map(|s| s.rsplit_once(") ").is_some_and(|(_, r)| r.starts_with('Z')))
            .unwrap_or(true);
        if !zombie && env.split(|b| *b == 0).any(|v| v == kv.as_bytes()) {
            out.push(pid);
        }
    }
    out
}

/// An exec probe whose task was aborted while its group was starting once
/// left the group running: nothing held a handle to stop it.
#[cfg(feature = "tokio")]
#[test]
fn a_spawn_abandoned_by_its_task_is_killed_not_left_running() {
    let rt = tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap();
    let kv = format!("CORRAL_TEST_ABANDONED={}", std::process::id());
    for _ in 0..5 {
        let mut cmd = tk(&["--children", "1", "--sleep", "30.5"]);
        cmd.env("CORRAL_TEST_ABANDONED", std::process::id().to_string());
        // A zero timeout polls the spawn once (handing it to the event
        // loop), then drops it before the group can be delivered.
        let r = rt.block_on(async { tokio::time::timeout(Duration::ZERO, Group::builder().spawn_async(cmd)).await });
        drop(r);
    }
    // The event loop takes spawns in order: once this one is back, the
    // abandoned ones have all been started (and dealt with).
    let g = Group::spawn(Command::new("true")).unwrap();
    g.wait();
    let end = std::time::Instant::now() + Duration::from_secs(10);
    while !marked(&kv).is_empty() {
        assert!(std::time::Instant::now() < end, "left running: {:?}", marked(&kv));
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// What a dead controller left (a daemon SIGKILLed, its state file lost) is
/// found by the tag each member inherits and reaped; the groups of a live
/// controller (this test) are neither listed nor reaped.
#[test]
fn orphaned_groups_are_found_by_their_tag_and_reaped() {
    // A controller that is gone: a child that exited and was reaped.
    let mut dead = std::process::Command::new("true").spawn().unwrap();
    let dead_pid = dead.id();
    dead.wait().unwrap();
    let orphan_id = format!("{dead_pid}-{}", std::process::id());
    let live_id = format!("{}-4242424", std::process::id());
    let start = |id: &str| {
        let mut c = std::process::Command::new(testkit())
            .args(["--sleep", "30"])
            .env("CORRAL_GROUP", id)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(c.stdout.take().unwrap()).read_line(&mut line).unwrap();
        assert!(line.contains("\"ready\""), "{line}");
        c
    };
    let mut orphan = start(&orphan_id);
    let mut live = start(&live_id);
    let found = corral::orphaned_groups().unwrap();
    let g = found.iter().find(|g| g.id == orphan_id).unwrap_or_else(|| panic!("{orphan_id} not in {found:?}"));
    assert_eq!(g.members, [orphan.id()]);
    assert!(!found.iter().any(|g| g.id == live_id), "a live controller's group is not an orphan");
    assert_eq!(corral::reap_group(&orphan_id, orphan.id()).unwrap(), 1);
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(orphan.wait().unwrap().signal(), Some(9));
    let e = corral::reap_group(&live_id, live.id()).unwrap_err();
    assert!(e.to_string().contains("still running"), "{e}");
    assert!(live.try_wait().unwrap().is_none(), "refused, so not killed");
    live.kill().unwrap();
    live.wait().unwrap();
}

#[test]
fn record_events_keeps_a_short_life_for_a_subscriber_that_comes_after_the_end() {
    for b in backends() {
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "sh -c 'exit 3'; exit 5"]);
        let g = Group::builder().backend(b).record_events(true).spawn(cmd).unwrap();
        let o = g.wait();
        assert_eq!(o.status.code, Some(5));
        // Subscribed only now, after the end: what happened was held.
        let events: Vec<Event> = g.events().collect();
        assert_eq!(events.last(), Some(&Event::Empty), "[{b}] {events:?}");
        let started = |pid: u32| events.iter().any(|e| matches!(e, Event::Started { pid: p, .. } if *p == pid));
        assert!(started(g.pid()), "[{b}] the leader started: {events:?}");
        if g.observes_lineage() {
            let child = events.iter().find_map(|e| match e {
                Event::Exited { pid, status: Some(s) } if s.code == Some(3) => Some(*pid),
                _ => None,
            });
            let child = child.unwrap_or_else(|| panic!("[{b}] the child's exit 3: {events:?}"));
            assert!(started(child), "[{b}] the child started: {events:?}");
            assert!(
                events.iter().any(
                    |e| matches!(e, Event::Started { pid, ppid: Some(pp), .. } if *pid == child && *pp == g.pid())
                ),
                "[{b}] forked by the leader: {events:?}"
            );
        }
    }
}
