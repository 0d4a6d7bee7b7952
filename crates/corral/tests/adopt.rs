//! `GroupBuilder::adopt` on real trees started outside corral: the whole
//! tree ends up in the group (setsid escapees and a tree growing during
//! the adoption included), a timeout kills all of it, and bad pids are
//! refused with nothing changed. Every test proves its processes gone.

#![cfg(target_os = "linux")]

use corral::{BackendKind, ErrorKind, ExitStatus, Group, Reason, Signal, SpawnPath, StopPolicy};
use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

/// A testkit tree started by this test, not by corral, marked with an
/// environment variable every descendant inherits.
struct Outside {
    child: Child,
    mark: String,
    ready: String,
    /// The top's stdout, past its first line.
    out: BufReader<ChildStdout>,
}

impl Outside {
    fn start(args: &[&str]) -> Outside {
        Outside::start_in(args, false)
    }

    /// With `own_group`, the top leads a session and process group of its
    /// own (setsid), as a daemon started by a shell does.
    fn start_in(args: &[&str], own_group: bool) -> Outside {
        static SEQ: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let mark = format!("{}-{}", std::process::id(), SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed));
        let mut cmd = Command::new(corral_testkit::binary());
        if own_group {
            // SAFETY: setsid(2) is async-signal-safe.
            unsafe {
                cmd.pre_exec(|| if libc::setsid() < 0 { Err(std::io::Error::last_os_error()) } else { Ok(()) });
            }
        }
        let mut child = cmd
            .args(args)
            .env("CORRAL_ADOPT_TEST", &mark)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut ready = String::new();
        let mut out = BufReader::new(child.stdout.take().unwrap());
        out.read_line(&mut ready).unwrap();
        assert!(ready.contains("\"ready\":true") || ready.starts_with("ready "), "{ready}");
        Outside { child, mark, ready, out }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Every live process carrying this tree's mark.
    fn marked(&self) -> Vec<u32> {
        let needle = format!("CORRAL_ADOPT_TEST={}", self.mark);
        all_pids()
            .into_iter()
            .filter(|p| state(*p).is_some_and(|s| s != 'Z'))
            .filter(|p| {
                std::fs::read(format!("/proc/{p}/environ"))
                    .is_ok_and(|e| e.split(|&b| b == 0).any(|kv| kv == needle.as_bytes()))
            })
            .collect()
    }

    /// Kills the whole marked tree (when corral was not to hold it).
    fn kill_all(&self) {
        for p in self.marked() {
            // SAFETY: kill(2) on a pid of this test's own marked tree.
            unsafe { libc::kill(p as i32, libc::SIGKILL) };
        }
    }

    /// Reaps the top (ours) and proves that nothing marked is left.
    fn assert_gone(mut self) {
        let _ = self.child.wait();
        let end = Instant::now() + Duration::from_secs(10);
        loop {
            let left = self.marked();
            if left.is_empty() {
                return;
            }
            assert!(Instant::now() < end, "survivors: {left:?}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Outside {
    fn drop(&mut self) {
        // A failed test must not leave its tree for the whole --sleep.
        self.kill_all();
        let _ = self.child.wait();
    }
}

fn all_pids() -> Vec<u32> {
    std::fs::read_dir("/proc").unwrap().flatten().filter_map(|e| e.file_name().to_str()?.parse().ok()).collect()
}

fn state(pid: u32) -> Option<char> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    s[s.rfind(')')? + 2..].chars().next()
}

fn pids_of(ready: &str, key: &str) -> Vec<u32> {
    let i = ready.find(&format!("\"{key}\":[")).unwrap() + key.len() + 4;
    let rest = &ready[i..];
    rest[..rest.find(']').unwrap()].split(',').filter_map(|s| s.trim().parse().ok()).collect()
}

/// The cgroup backends (the pgid backend holds less, and is tested below).
fn cgroup_backends() -> Vec<BackendKind> {
    corral::host_report()
        .backends
        .into_iter()
        .filter(|b| b.available.is_ok() && b.kind != BackendKind::Pgid)
        .map(|b| b.kind)
        .collect()
}

#[test]
fn a_tree_with_setsid_escapees_is_adopted_and_a_timeout_kills_all_of_it() {
    for b in cgroup_backends() {
        let t = Outside::start(&["--children", "2", "--grandchildren", "2", "--setsid", "2", "--sleep", "30.5"]);
        let all = pids_of(&t.ready, "all");
        assert_eq!(all.len(), 8, "[{b}] {}", t.ready);
        let t0 = Instant::now();
        let g = Group::builder()
            .backend(b)
            .timeout(Duration::from_secs(1))
            .stop(StopPolicy::new(Signal::TERM, Duration::from_secs(2)))
            .adopt(t.pid())
            .unwrap_or_else(|e| panic!("[{b}] {e}"));
        let members = g.members().unwrap();
        eprintln!("[{b}] adopted {} processes in {:?}", members.len(), t0.elapsed());
        for p in all.iter().chain([&t.pid()]) {
            assert!(members.contains(p), "[{b}] {p} not in {members:?}");
        }
        // Continued after the move: nobody corral stopped stays stopped.
        for p in &members {
            assert_ne!(state(*p), Some('T'), "[{b}] {p} still stopped");
        }
        let o = g.wait();
        assert_eq!(o.reason, Reason::Timeout, "[{b}]");
        assert_eq!(o.leftover, 0, "[{b}]");
        assert_eq!(o.spawn, SpawnPath::Adopted);
        assert_eq!(o.status, ExitStatus::UNKNOWN, "[{b}] corral is not the leader's parent");
        t.assert_gone();
    }
}

#[test]
fn a_tree_growing_during_the_adoption_ends_up_entirely_inside() {
    for b in cgroup_backends() {
        // 3 + 9 + 27 + 81 = 120 processes forked 20 ms apart after the
        // ready line: the adoption lands in the middle of the growth.
        let t = Outside::start(&["--fork-paced", "4", "--sleep", "30.5"]);
        let g = Group::builder().backend(b).adopt(t.pid()).unwrap_or_else(|e| panic!("[{b}] {e}"));
        eprintln!("[{b}] {} members when adopted", g.members().unwrap().len());
        let end = Instant::now() + Duration::from_secs(60);
        loop {
            // Marked first: whatever runs then must be a member by the next read.
            let marked = t.marked();
            let members = g.members().unwrap();
            let outside: Vec<u32> = marked.into_iter().filter(|p| !members.contains(p)).collect();
            assert!(outside.is_empty(), "[{b}] outside the group: {outside:?}");
            if members.len() == 121 {
                break;
            }
            assert!(Instant::now() < end, "[{b}] the tree never grew to 121: {}", members.len());
            std::thread::sleep(Duration::from_millis(20));
        }
        g.kill().unwrap();
        let o = g.wait();
        assert_eq!((o.reason, o.leftover), (Reason::Killed, 0), "[{b}]");
        t.assert_gone();
    }
}

#[test]
fn an_adopted_tree_that_ends_by_itself_has_an_unknown_status() {
    for b in cgroup_backends() {
        let t = Outside::start(&["--children", "1", "--sleep", "1", "--exit", "3"]);
        let g = Group::builder().backend(b).adopt(t.pid()).unwrap();
        let o = g.wait();
        assert_eq!((o.reason, o.leftover, o.status), (Reason::Exited, 0, ExitStatus::UNKNOWN), "[{b}]");
        t.assert_gone();
    }
}

#[test]
fn bad_pids_are_refused_and_nothing_changes() {
    let me = std::process::id();
    let parent = std::os::unix::process::parent_id();
    let missing = u32::try_from(i32::MAX).unwrap();
    for (pid, kind, says) in [
        (missing, ErrorKind::NotFound, "no such process"),
        (me, ErrorKind::InvalidInput, "corral itself"),
        (parent, ErrorKind::InvalidInput, "ancestor of corral"),
        (0, ErrorKind::InvalidInput, "no such process"),
    ] {
        let e = Group::adopt(pid).unwrap_err();
        assert_eq!(e.kind(), kind, "{pid}: {e}");
        assert!(e.to_string().contains(says), "{pid}: {e}");
    }
    // A tree corral already holds.
    let mut cmd = corral::Command::new(corral_testkit::binary());
    cmd.args(["--sleep", "30.5"]).stdout(corral::Stdio::piped());
    let mut held = Group::spawn(cmd).unwrap();
    let mut line = String::new();
    BufReader::new(held.take_stdout().unwrap()).read_line(&mut line).unwrap();
    let e = Group::adopt(held.pid()).unwrap_err();
    assert!(e.to_string().contains("corral already holds it"), "{e}");
    assert_ne!(state(held.pid()), Some('T'), "the held leader was not stopped");
    held.kill().unwrap();
    assert_eq!(held.wait().leftover, 0);
}

#[test]
fn the_pgid_backend_adopts_a_process_group_with_its_setsid_escapees_and_a_timeout_kills_all_of_it() {
    let args = ["--children", "2", "--grandchildren", "1", "--setsid", "2", "--ignore-term", "--sleep", "60"];
    // SIGTERM ignored: only the kill ends the escapees.
    let t = Outside::start_in(&args, true);
    let all = pids_of(&t.ready, "all");
    let g = Group::builder()
        .backend(BackendKind::Pgid)
        .timeout(Duration::from_secs(1))
        .stop(StopPolicy::new(Signal::TERM, Duration::from_secs(2)))
        .adopt(t.pid())
        .unwrap_or_else(|e| panic!("{e}"));
    let members = g.members().unwrap();
    for p in all.iter().chain([&t.pid()]) {
        assert!(members.contains(p), "{p} not in {members:?} ({})", t.ready);
    }
    for p in &members {
        assert_ne!(state(*p), Some('T'), "{p} still stopped");
    }
    let o = g.wait();
    assert_eq!((o.reason, o.leftover, o.backend), (Reason::Timeout, 0, BackendKind::Pgid));
    assert!(o.duration < Duration::from_secs(30), "the escapees ended by themselves, not by the kill: {o:?}");
    assert_eq!((o.spawn, o.status), (SpawnPath::Adopted, ExitStatus::UNKNOWN));
    t.assert_gone();
}

#[test]
fn the_pgid_backend_follows_a_setsid_after_the_adoption_while_the_escapee_s_parent_is_a_member() {
    let trigger = std::env::temp_dir().join(format!("corral-late-escape-{}", std::process::id()));
    let _ = std::fs::remove_file(&trigger);
    let mut t = Outside::start_in(&["late-escape", trigger.to_str().unwrap(), "60"], true);
    let g = Group::builder().backend(BackendKind::Pgid).adopt(t.pid()).unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(&trigger, b"").unwrap();
    let mut line = String::new();
    t.out.read_line(&mut line).unwrap();
    std::fs::remove_file(&trigger).unwrap();
    let escapee: u32 =
        line.trim().strip_prefix("escaped ").and_then(|p| p.parse().ok()).unwrap_or_else(|| panic!("{line:?}"));
    let members = g.members().unwrap();
    assert!(members.contains(&escapee), "{escapee} not in {members:?}");
    g.kill().unwrap();
    let o = g.wait();
    assert_eq!((o.reason, o.leftover), (Reason::Killed, 0));
    assert!(o.duration < Duration::from_secs(30), "the escapee ended by itself, not by the kill: {o:?}");
    t.assert_gone();
}

#[test]
fn the_pgid_backend_refuses_a_leader_another_pgid_group_holds_and_stops_nothing() {
    let mut cmd = corral::Command::new(corral_testkit::binary());
    cmd.args(["--sleep", "30.5"]).stdout(corral::Stdio::piped());
    let mut held = Group::builder().backend(BackendKind::Pgid).spawn(cmd).unwrap();
    let mut line = String::new();
    BufReader::new(held.take_stdout().unwrap()).read_line(&mut line).unwrap();
    let e = Group::builder().backend(BackendKind::Pgid).adopt(held.pid()).unwrap_err();
    assert!(e.to_string().contains("corral already holds it"), "{e}");
    assert_ne!(state(held.pid()), Some('T'), "the held leader was not stopped");
    held.kill().unwrap();
    assert_eq!(held.wait().leftover, 0);
}

#[test]
fn the_pgid_backend_refuses_a_pid_that_leads_no_process_group_and_stops_nothing() {
    let t = Outside::start(&["--children", "1", "--sleep", "30.5"]);
    let e = Group::builder().backend(BackendKind::Pgid).adopt(t.pid()).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
    let line = e.to_string();
    assert!(line.contains("not a process-group leader") && line.contains("use a cgroup backend"), "{line}");
    assert!(!line.contains('\n'), "{line}");
    for p in t.marked() {
        assert_ne!(state(p), Some('T'), "{p} was left stopped");
    }
    t.kill_all();
    t.assert_gone();
}
