//! Cgroup leaves reused between groups (`sys/linux/leaf_pool.rs`): a
//! group that takes the leaf of the group before it sees none of that
//! group's members, limits or counters (OOM kills, process-limit hits, CPU
//! time, peak memory), and a process that exits leaves no leaf behind.
//! One test runs the groups one after another (the pool is per process,
//! so a parallel test could take the leaf); the exit check runs in a
//! child process of its own. Without cgroups (not root) they print SKIPPED.

#![cfg(target_os = "linux")]

use corral::{BackendKind, Command, Group, Limits, Outcome, Reason, Stdio};
use std::io::{BufRead, BufReader};
use std::path::PathBuf;

use corral_testkit::test_support::{assert_gone, starttime};

/// The backends whose leaves are pooled, among those this host offers.
fn pooled_backends() -> Vec<BackendKind> {
    let r = corral::host_report();
    let b: Vec<BackendKind> = r
        .backends
        .into_iter()
        .filter(|b| b.available.is_ok() && matches!(b.kind, BackendKind::Hybrid | BackendKind::CgroupV1))
        .map(|b| b.kind)
        .collect();
    if b.is_empty() {
        eprintln!("SKIPPED: no hybrid or cgroup1 backend on this host (run as root on a host with v1 controllers)");
    }
    b
}

/// Every cgroup directory of `pid` (v2 and each v1 hierarchy).
fn cgroup_dirs(pid: u32) -> Vec<PathBuf> {
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    let mut out = Vec::new();
    for line in text.lines() {
        let mut parts = line.splitn(3, ':');
        let (_, ctl, path) = (parts.next().unwrap(), parts.next().unwrap(), parts.next().unwrap());
        for m in mounts.lines() {
            let Some((left, right)) = m.split_once(" - ") else { continue };
            let point = left.split(' ').nth(4).unwrap_or("");
            let mut r = right.split(' ');
            let (fstype, opts) = (r.next().unwrap_or(""), r.nth(1).unwrap_or(""));
            let fits = match fstype {
                "cgroup2" => ctl.is_empty(),
                "cgroup" => !ctl.is_empty() && ctl.split(',').all(|c| opts.split(',').any(|o| o == c)),
                _ => false,
            };
            if fits {
                out.push(PathBuf::from(format!("{point}{path}")));
            }
        }
    }
    out
}

/// The file `name` in whichever cgroup directory of `pid` has it.
fn cgroup_file(pid: u32, name: &str) -> String {
    let dirs = cgroup_dirs(pid);
    let f = dirs.iter().map(|d| d.join(name)).find(|f| f.exists());
    let f = f.unwrap_or_else(|| panic!("no {name} in {dirs:?}"));
    std::fs::read_to_string(f).unwrap().trim().to_string()
}

fn testkit() -> String {
    corral_testkit::binary().display().to_string()
}

/// Starts `sh -c script` (which prints a line when ready) in a group and
/// reads that line; returns the group and the leader's pid.
fn start(b: BackendKind, limits: Limits, script: &str) -> (Group, u32) {
    let mut c = Command::new("sh");
    c.args(["-c", script]).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::null());
    let mut g = Group::builder().backend(b).limits(limits).spawn(c).unwrap();
    let mut line = String::new();
    BufReader::new(g.take_stdout().unwrap()).read_line(&mut line).unwrap();
    let pid = g.pid();
    (g, pid)
}

fn finish(g: Group, pid: u32) -> Outcome {
    let start = starttime(pid);
    let o = g.wait();
    assert_eq!(o.leftover, 0);
    if let Some(s) = start {
        assert_gone(&[(pid, s)]);
    }
    o
}

/// `limits` with the controllers every group here shares (pids and cpu),
/// so that all of them have the same shape and take each other's leaf.
fn shaped(memory: Option<u64>, max_procs: u32, cpus: f64) -> Limits {
    let l = Limits::new().max_procs(max_procs).cpus(cpus);
    match memory {
        Some(m) => l.memory(m),
        None => l,
    }
}

/// A fixed amount of work for the shell: its CPU time does not depend on
/// how busy the machine is, only on how fast it is.
const WORK: &str = "i=0; while [ $i -lt 200000 ]; do i=$((i+1)); done";

#[test]
fn a_reused_leaf_carries_no_member_limit_or_counter_of_the_group_before() {
    let tk = testkit();
    for b in pooled_backends() {
        // A v2 leaf is never reused after `cgroup.kill`; v1's freezer kill
        // leaves nothing behind, so cgroup1 reuses a killed group's leaf.
        let after_kill = b == BackendKind::CgroupV1;

        // A: killed for its memory limit (an OOM kill counted in the leaf).
        let (g, pid) = start(
            b,
            shaped(Some(32 << 20), 8, 1.0),
            &format!("echo ready; exec {tk} --alloc 64 --sleep 10 >/dev/null"),
        );
        let a_leaf = g.location();
        let a = finish(g, pid);
        assert_eq!(a.reason, Reason::MemoryLimit, "[{b}] {a:?}");

        // B: no memory limit, so 48 MiB is fine even on A's leaf.
        let (g, pid) =
            start(b, shaped(None, 8, 1.0), &format!("echo ready; exec {tk} --alloc 48 --sleep 0.1 >/dev/null"));
        assert_eq!(g.location() == a_leaf, after_kill, "[{b}] A's leaf is reused only where a kill leaves no trace");
        let kept = g.location();
        let o = finish(g, pid);
        assert_eq!((o.reason, o.status.code), (Reason::Exited, Some(0)), "[{b}] no 32 MiB limit left: {o:?}");
        let b_peak = o.usage.peak_memory.unwrap();
        // Global reclaim on a busy host may take some of it back.
        assert!(b_peak >= 24 << 20, "[{b}] B's peak {b_peak}");

        // C: a memory limit again (A's OOM kill must not count against it),
        // a process limit of 4, and CPU time of its own.
        let (g, pid) = start(b, shaped(Some(256 << 20), 4, 1.0), &format!("echo ready; {WORK}"));
        assert_eq!(g.location(), kept, "[{b}] B's leaf is reused");
        let c = finish(g, pid);
        assert_eq!((c.reason, c.status.code), (Reason::Exited, Some(0)), "[{b}] no stale OOM kill: {c:?}");
        let c_peak = c.usage.peak_memory.unwrap();
        assert!(c_peak < (16 << 20).min(b_peak / 2), "[{b}] C's peak is its own ({c_peak}), not B's ({b_peak})");
        let c_cpu = c.usage.cpu_total();
        assert!(c_cpu.as_millis() >= 20, "[{b}] C's work is counted: {c_cpu:?}");

        // E: only its own member, its own limits in the files, and none of
        // C's CPU time.
        let (g, pid) = start(b, shaped(Some(256 << 20), 8, 0.5), "echo ready; exec sleep 1");
        assert_eq!(g.location(), kept, "[{b}] C's leaf is reused");
        assert_eq!(g.members().unwrap(), vec![pid], "[{b}] only E's leader is in the leaf");
        assert_eq!(cgroup_file(pid, "pids.max"), "8", "[{b}] C's limit of 4 is rewritten");
        assert_eq!(cgroup_file(pid, "cpu.cfs_quota_us"), "50000", "[{b}]");
        assert_eq!(cgroup_file(pid, "memory.limit_in_bytes"), (256u64 << 20).to_string(), "[{b}]");
        let e = finish(g, pid);
        assert_eq!((e.reason, e.status.code), (Reason::Exited, Some(0)), "[{b}] {e:?}");
        let e_cpu = e.usage.cpu_total();
        assert!(e_cpu < c_cpu / 2, "[{b}] E's CPU time ({e_cpu:?}) does not hold C's ({c_cpu:?})");

        // G: a member without its environment (no tag) is still found to
        // be G's by its cgroup, though the reused leaf has another group's
        // name.
        let (g, pid) = start(b, shaped(Some(256 << 20), 8, 0.5), "echo ready; env -i sleep 1 & exec sleep 3");
        assert_eq!(g.location(), kept, "[{b}] E's leaf is reused");
        let end = std::time::Instant::now() + std::time::Duration::from_secs(10);
        let untagged = loop {
            let bare = g
                .members()
                .unwrap()
                .into_iter()
                .find(|&m| m != pid && std::fs::read(format!("/proc/{m}/environ")).is_ok_and(|e| e.is_empty()));
            if let Some(m) = bare {
                break m;
            }
            assert!(std::time::Instant::now() < end, "[{b}] env -i never ran");
            std::thread::sleep(std::time::Duration::from_millis(10));
        };
        // The leader may be inside its `exec sleep 3` at this moment, when
        // its environment reads empty for an instant: look again, bounded.
        let found = loop {
            if let Some(f) = corral::find_group(pid).unwrap() {
                break f;
            }
            assert!(std::time::Instant::now() < end, "[{b}] the leader is never found");
            std::thread::sleep(std::time::Duration::from_millis(10));
        };
        assert_eq!(found.id, g.id(), "[{b}]");
        // Only a v2 leaf names a process's group from outside: the cgroup1
        // backend finds members by their tag alone.
        if b != BackendKind::CgroupV1 {
            assert!(found.members.contains(&untagged), "[{b}] {untagged} is found by its cgroup: {found:?}");
        }
        let g_end = finish(g, pid);
        assert_eq!(g_end.reason, Reason::Exited, "[{b}] {g_end:?}");

        // D: killed for its process limit (a `max` counted in pids.events).
        let (g, pid) =
            start(b, shaped(None, 4, 1.0), "echo ready; for j in 1 2 3 4 5 6 7 8; do sleep 5 & done 2>/dev/null; wait");
        assert_eq!(g.location(), kept, "[{b}] E's leaf is reused");
        let d = finish(g, pid);
        assert_eq!(d.reason, Reason::ProcessLimit, "[{b}] {d:?}");

        // F: D's process-limit hit does not count against it.
        let (g, pid) = start(b, shaped(None, 8, 1.0), "echo ready; exec sleep 0.3");
        assert_eq!(g.location() == kept, after_kill, "[{b}] D's leaf is reused only where a kill leaves no trace");
        let f = finish(g, pid);
        assert_eq!((f.reason, f.status.code), (Reason::Exited, Some(0)), "[{b}] no stale process-limit hit: {f:?}");

        // H after I: I's handle outlives I, and its requests signal the
        // wake eventfd that H took with I's leaf: H only looks once more.
        let (i, _) = start(b, shaped(None, 8, 1.0), "echo ready; exec true");
        let i_end = i.wait();
        assert_eq!((i_end.reason, i_end.leftover), (Reason::Exited, 0), "[{b}] {i_end:?}");
        let (g, pid) = start(b, shaped(None, 8, 1.0), "echo ready; exec sleep 0.3");
        assert_eq!(g.location(), i.location(), "[{b}] I's leaf is reused");
        i.stop();
        i.kill().unwrap();
        let h = finish(g, pid);
        assert_eq!((h.reason, h.status.code), (Reason::Exited, Some(0)), "[{b}] I's late requests are not H's: {h:?}");
    }
}

/// Run in a child process: starts two groups one after the other, prints
/// their directories (kept for reuse once each group ends), and exits.
#[test]
fn pooled_leaves_child() {
    if std::env::var_os("CORRAL_LEAF_REUSE_CHILD").is_none() {
        return;
    }
    let b = std::env::var("CORRAL_LEAF_REUSE_CHILD").unwrap();
    let b = BackendKind::parse(&b).unwrap();
    for _ in 0..2 {
        let (g, pid) = start(b, shaped(Some(64 << 20), 8, 1.0), "echo ready; exec sleep 0.5");
        let dirs = cgroup_dirs(pid);
        finish(g, pid);
        let mine = format!("{}-", std::process::id());
        let leaves = dirs.iter().filter(|d| d.file_name().is_some_and(|n| n.to_string_lossy().starts_with(&mine)));
        for d in leaves {
            assert!(d.exists(), "{} is kept for the next group", d.display());
            println!("DIR {}", d.display());
        }
    }
}

#[test]
fn no_pooled_leaf_outlives_the_process() {
    for b in pooled_backends() {
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "pooled_leaves_child", "--nocapture", "--test-threads", "1"])
            .env("CORRAL_LEAF_REUSE_CHILD", b.to_string())
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "[{b}] {text}\n{}", String::from_utf8_lossy(&out.stderr));
        let dirs: Vec<&str> = text.lines().filter_map(|l| l.strip_prefix("DIR ")).collect();
        assert!(!dirs.is_empty(), "[{b}] the child printed its directories: {text}");
        for d in dirs {
            assert!(!std::path::Path::new(d).exists(), "[{b}] {d} is left after the process exited");
        }
    }
}
