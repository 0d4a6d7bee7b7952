//! `corral run` against every backend that can run on this host, with the
//! testkit as the misbehaving child. Every test proves that nothing it
//! started is left. Hostile children are bounded: finite loops, and every
//! process expires by itself (`--sleep`), so no test depends on the code
//! under test to end it.

#![cfg(unix)]

mod support;

use std::process::Stdio;
use std::time::{Duration, Instant};
use support::*;

fn for_each_backend(f: impl Fn(&str)) {
    for b in backends() {
        eprintln!("--- backend {b}");
        f(&b);
    }
}

fn for_each_limit_backend(f: impl Fn(&str)) {
    for b in limit_backends() {
        eprintln!("--- backend {b}");
        f(&b);
    }
}

#[test]
fn timeout_kills_a_leader_with_50_descendants() {
    for_each_backend(|b| {
        let mut w = World::new(b);
        // 7 children with 6 grandchildren each: 49 descendants + the leader.
        let (code, err) =
            w.run_to_end(&["-t", "1", "-k", "2"], &["--children", "7", "--grandchildren", "6", "--sleep", "30.5"]);
        assert_eq!(w.seen(), 50, "[{b}] saw the whole tree");
        assert_eq!(code, 124, "[{b}] {err}");
        let r = w.report();
        assert_eq!(r["reason"], "timeout");
        assert_eq!(r["leftover"], 0);
        assert_eq!(r["backend"], b);
        // Counted by the kernel's process-event connector where permitted.
        if !r["processes_total"].is_null() {
            assert_eq!(r["processes_total"], 50, "[{b}] {r}");
        }
        w.assert_nothing_left();
    });
}

#[test]
fn setsid_and_double_fork_escapees_die_with_the_group() {
    for_each_backend(|b| {
        let mut w = World::new(b);
        let mut child = w.spawn(w.run(
            &["-t", "1", "-k", "2"],
            &["--children", "2", "--setsid", "3", "--double-fork", "3", "--sleep", "30.5"],
        ));
        let ready = w.ready(&mut child);
        assert_eq!(ready["setsid"].as_array().unwrap().len(), 3);
        assert_eq!(ready["daemons"].as_array().unwrap().len(), 3);
        // The escapees really escaped the process group and session.
        for p in ready["setsid"].as_array().unwrap() {
            let pid = p.as_u64().unwrap() as u32;
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
            let rest = &stat[stat.rfind(')').unwrap() + 2..];
            let sid: u32 = rest.split(' ').nth(3).unwrap().parse().unwrap();
            assert_eq!(sid, pid, "[{b}] setsid child leads its own session");
        }
        let (code, err) = w.finish(child);
        assert_eq!(code, 124, "[{b}] {err}");
        assert_eq!(w.report()["leftover"], 0);
        w.assert_nothing_left();
    });
}

#[test]
fn escapees_are_stopped_when_the_leader_exits() {
    // The leader dies; its escaped daemons must not outlive it.
    for_each_backend(|b| {
        let mut w = World::new(b);
        let mut child = w.spawn(w.run(&[], &["--setsid", "2", "--double-fork", "2", "--sleep", "30.5"]));
        let _ = w.ready(&mut child);
        // Kill the testkit leader only: the group must follow it down.
        let (code, err) = w.finish_after_leader_kill(child);
        assert_eq!(code, 137, "[{b}] {err}");
        let r = w.report();
        assert_eq!(r["reason"], "signal", "[{b}] {r}");
        assert_eq!(r["leftover"], 0);
        w.assert_nothing_left();
    });
}

#[test]
fn fork_bomb_under_a_process_limit_is_contained() {
    for_each_limit_backend(|b| {
        let mut w = World::new(b);
        // At most 2^11 processes even if containment failed, each expiring.
        let (code, err) = w.run_to_end(&["-p", "64", "-t", "20"], &["--fork-bomb", "10", "--sleep", "20"]);
        assert_eq!(code, 137, "[{b}] {err}");
        let r = w.report();
        assert_eq!(r["reason"], "process_limit", "[{b}] {r}");
        assert!(err.contains("killed: process limit 64 reached"), "[{b}] {err}");
        assert_eq!(r["leftover"], 0);
        w.assert_nothing_left();
        // The machine is still usable.
        assert!(std::process::Command::new("true").status().unwrap().success());
    });
}

#[test]
fn memory_limit_kills_with_137_and_reports_the_peak() {
    for_each_limit_backend(|b| {
        let mut w = World::new(b);
        let (code, err) = w.run_to_end(&["-m", "64MiB", "-t", "20"], &["--alloc", "500", "--sleep", "20"]);
        assert_eq!(code, 137, "[{b}] {err}");
        let r = w.report();
        assert_eq!(r["reason"], "memory_limit", "[{b}] {r}");
        assert!(r["peak_memory_bytes"].as_u64().unwrap() > 32 << 20, "[{b}] {r}");
        assert!(err.contains("killed: memory limit 64 MiB exceeded (peak "), "[{b}] {err}");
        w.assert_nothing_left();
    });
}

#[test]
fn a_limit_the_backend_cannot_enforce_is_refused_not_faked() {
    if !backends().iter().any(|b| b == "cgroup2") || limit_backends().iter().any(|b| b == "cgroup2") {
        eprintln!("skipping: needs a controller-less cgroup2 (a hybrid host)");
        return;
    }
    let w = World::new("cgroup2");
    let out = output(w.corral(&["run", "-m", "64MiB", "--", "true"]));
    assert_eq!(out.status.code(), Some(125));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("cannot be enforced by the cgroup2 backend"), "{err}");
}

#[test]
fn cpu_time_limit_stops_a_spinner_within_seconds() {
    for_each_backend(|b| {
        let mut w = World::new(b);
        let start = Instant::now();
        let (code, err) = w.run_to_end(&["--cpu-time", "1s", "-t", "20"], &["--spin", "20", "--sleep", "20"]);
        let took = start.elapsed();
        assert_eq!(code, 137, "[{b}] {err}");
        let r = w.report();
        assert_eq!(r["reason"], "cpu_time_limit", "[{b}] {r}");
        assert!(took < Duration::from_secs(6), "[{b}] took {took:?}");
        let cpu = r["cpu_user_ms"].as_u64().unwrap() + r["cpu_system_ms"].as_u64().unwrap();
        assert!((900..3000).contains(&cpu), "[{b}] cpu {cpu} ms");
        w.assert_nothing_left();
    });
}

#[test]
fn sigterm_ignorers_are_killed_after_the_grace_period() {
    for_each_backend(|b| {
        let mut w = World::new(b);
        let start = Instant::now();
        let (code, err) = w.run_to_end(
            &["-t", "0.5", "-k", "1"],
            &["--ignore-term", "--children", "3", "--grandchildren", "1", "--sleep", "30.5"],
        );
        let took = start.elapsed();
        assert_eq!(code, 124, "[{b}] {err}");
        let r = w.report();
        assert_eq!(r["signal"], 9, "[{b}] killed, not terminated: {r}");
        assert!(took >= Duration::from_millis(1400), "[{b}] grace was honoured: {took:?}");
        w.assert_nothing_left();
    });
}

#[test]
fn cooperative_children_stop_gracefully_before_the_grace_period() {
    for_each_backend(|b| {
        let mut w = World::new(b);
        let start = Instant::now();
        let (code, err) = w.run_to_end(&["-t", "0.5", "-k", "10"], &["--children", "3", "--sleep", "30.5"]);
        assert_eq!(code, 124, "[{b}] {err}");
        assert_eq!(w.report()["signal"], 15, "[{b}]");
        assert!(start.elapsed() < Duration::from_secs(5), "[{b}] did not wait out the grace");
        w.assert_nothing_left();
    });
}

#[test]
fn forking_in_a_tight_loop_during_the_kill_leaves_nothing() {
    for_each_backend(|b| {
        let mut w = World::new(b);
        // A moving target (a fork chain) plus a burst of forks, killed
        // mid-flight (`-k 0` would mean "never kill", as in GNU timeout).
        let (code, err) =
            w.run_to_end(&["-t", "0.3", "-k", "1ms"], &["--fork-chain", "1500", "--fork-loop", "300", "--sleep", "15"]);
        assert_eq!(code, 124, "[{b}] {err}");
        assert_eq!(w.report()["leftover"], 0);
        w.assert_nothing_left();
    });
}

#[test]
fn exit_codes_follow_gnu_timeout() {
    let b = backends()[0].clone();
    let w = World::new(&b);
    let code = |args: &[&str]| output(w.corral(args)).status.code().unwrap();
    assert_eq!(code(&["run", "--", "sh", "-c", "exit 3"]), 3);
    assert_eq!(code(&["run", "--", "sh", "-c", "kill -9 $$"]), 137);
    assert_eq!(code(&["run", "--", "/etc/passwd"]), 126);
    assert_eq!(code(&["run", "--", "/definitely/not/here"]), 127);
    assert_eq!(code(&["run", "--", "no-such-command-corral-test"]), 127);
    assert_eq!(code(&["run", "-t", "0.2", "--", "sleep", "5"]), 124);
    assert_eq!(code(&["run", "-t", "0.2", "--preserve-status", "--", "sleep", "5"]), 128 + 15);
    assert_eq!(code(&["run", "-t", "5", "--", "true"]), 0);
}

#[test]
fn bad_input_is_one_line_exit_125_and_starts_nothing() {
    let b = backends()[0].clone();
    let w = World::new(&b);
    let tk = testkit();
    let tk = tk.to_str().unwrap();
    for (args, needle) in [
        (vec!["run", "--bogus", "--", tk, "--sleep", "5"], "unexpected argument '--bogus'"),
        (vec!["run", "-m", "12XB", "--", tk, "--sleep", "5"], "invalid size '12XB'"),
        (vec!["run", "-t", "soon", "--", tk, "--sleep", "5"], "invalid duration 'soon'"),
        (vec!["run", "--cpus", "-1", "--", tk, "--sleep", "5"], "invalid CPU count"),
        (vec!["run", "--signal", "NOPE", "--", tk, "--sleep", "5"], "invalid signal 'NOPE'"),
        (vec!["run"], "required arguments were not provided"),
    ] {
        let out = output(w.corral(&args));
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(125), "{args:?}: {err}");
        assert_eq!(err.trim_end().lines().count(), 1, "{args:?}: one line: {err}");
        assert!(err.contains(needle), "{args:?}: {err}");
        assert!(err.starts_with("corral: "), "{err}");
    }
    assert!(w.survivors().is_empty(), "nothing was started");
}

#[test]
fn a_sigkilled_controller_leaves_a_group_the_next_run_reaps() {
    for b in backends() {
        if b == "pgid" {
            eprintln!("skipping pgid: without a cgroup, a dead controller's group has nothing to find it by");
            continue;
        }
        let mut w = World::new(&b);
        let mut child =
            w.spawn(w.run(&[], &["--children", "3", "--grandchildren", "2", "--setsid", "1", "--sleep", "30.5"]));
        let ready = w.ready(&mut child);
        child.kill().unwrap();
        child.wait().unwrap();
        // The grandchildren outlive their controller: the group is left behind.
        let gc = ready["grandchildren"][0].as_u64().unwrap() as u32;
        assert!(starttime(gc).is_some() && state(gc) != "Z", "[{b}] the tree outlived its controller");
        // The next corral that creates a group reaps it.
        let next = w.corral(&["run", "--", "true"]);
        let mut next_child = w.spawn(next);
        assert!(next_child.wait().unwrap().success());
        w.assert_nothing_alive();
        w.assert_no_cgroup_dirs();
    }
}

#[test]
fn without_cgroup_permission_it_falls_back_to_pgid_and_says_why() {
    let mut w = World::new("");
    let tk = testkit();
    let report = w.report_path();
    let mut c = std::process::Command::new(corral());
    c.args(["run", "--report", report.to_str().unwrap(), "-t", "0.5", "--"])
        .arg(&tk)
        .args(["--setsid", "2", "--children", "2", "--sleep", "30.5"])
        .env("CORRAL_CGROUP_ROOT", "/tmp/not-a-cgroup")
        .env("CORRAL_TEST_MARK", &w.mark)
        .env_remove("CORRAL_BACKEND")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = w.spawn(c);
    let _ = w.ready(&mut child);
    let (code, err) = w.finish(child);
    assert_eq!(code, 124, "{err}");
    assert_eq!(w.report()["backend"], "pgid");
    w.assert_nothing_left();
    let doc = std::process::Command::new(corral())
        .args(["doctor"])
        .env("CORRAL_CGROUP_ROOT", "/tmp/not-a-cgroup")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&doc.stdout);
    assert!(text.contains("`pgid` backend"), "{text}");
    assert!(text.contains("not inside a cgroup mount"), "{text}");
}

#[test]
fn an_unprivileged_user_falls_back_to_pgid() {
    use std::os::unix::process::CommandExt;
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipping: needs root to drop to nobody");
        return;
    }
    let w = World::new("");
    // The checkout may sit where nobody cannot reach it (a 0700 temp dir):
    // run a copy from the test's own world-readable directory.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&w.dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let exe = w.dir.join("corral");
    std::fs::copy(corral(), &exe).unwrap();
    std::fs::set_permissions(&exe, std::fs::Permissions::from_mode(0o755)).unwrap();
    let out = std::process::Command::new(&exe)
        .args(["run", "--report", "-", "--", "true"])
        .env_remove("CORRAL_BACKEND")
        .current_dir("/")
        .uid(65534)
        .gid(65534)
        .output()
        .unwrap();
    if out.status.code() == Some(126) {
        eprintln!("skipping: the corral binary is not executable by nobody here");
        return;
    }
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text} {}", String::from_utf8_lossy(&out.stderr));
    let r: serde_json::Value = serde_json::from_str(text.trim()).unwrap();
    assert_eq!(r["backend"], "pgid");
    drop(w);
}

#[test]
fn both_spawn_paths_contain_setsid_and_double_fork_escapees_and_say_which_ran() {
    for_each_backend(|b| {
        for path in ["clone3", "fork"] {
            let mut w = World::new(b);
            let mut c = w.run(&["-t", "1", "-k", "2"], &["--setsid", "2", "--double-fork", "2", "--sleep", "30.5"]);
            c.env("CORRAL_SPAWN", path);
            let mut child = w.spawn(c);
            let ready = w.ready(&mut child);
            assert_eq!(ready["daemons"].as_array().unwrap().len(), 2, "[{b}/{path}]");
            let (code, err) = w.finish(child);
            assert_eq!(code, 124, "[{b}/{path}] {err}");
            let r = w.report();
            assert_eq!(r["spawn"], path, "[{b}] {r}");
            assert_eq!(r["leftover"], 0, "[{b}/{path}]");
            w.assert_nothing_left();
        }
    });
}

#[test]
fn the_fork_fallback_contains_a_fork_bomb_and_forks_racing_the_kill() {
    for_each_limit_backend(|b| {
        let mut w = World::new(b);
        let mut c = w.run(&["-p", "64", "-t", "20"], &["--fork-bomb", "10", "--sleep", "20"]);
        c.env("CORRAL_SPAWN", "fork");
        let mut child = w.spawn(c);
        let _ = w.ready(&mut child);
        let (code, err) = w.finish(child);
        assert_eq!(code, 137, "[{b}] {err}");
        assert_eq!(w.report()["reason"], "process_limit", "[{b}]");
        assert_eq!(w.report()["spawn"], "fork", "[{b}]");
        w.assert_nothing_left();
    });
    for_each_backend(|b| {
        let mut w = World::new(b);
        let mut c = w.run(&["-t", "0.3", "-k", "0"], &["--fork-chain", "1500", "--fork-loop", "300", "--sleep", "15"]);
        c.env("CORRAL_SPAWN", "fork");
        let mut child = w.spawn(c);
        let _ = w.ready(&mut child);
        let (code, err) = w.finish(child);
        assert_eq!(code, 124, "[{b}] {err}");
        assert_eq!(w.report()["leftover"], 0, "[{b}]");
        w.assert_nothing_left();
    });
}

#[test]
fn controllers_sigkilled_at_any_point_of_the_spawn_leave_nothing_the_next_run_misses() {
    for b in backends() {
        if b == "pgid" {
            eprintln!("skipping pgid: without a cgroup, a dead controller's group has nothing to find it by");
            continue;
        }
        let mut w = World::new(&b);
        // Each controller dies at a different point of its start: before,
        // during or after the clone3 of its leader. Whatever the point, the
        // leader dies with it (PDEATHSIG, armed before exec) and the rest
        // is found by the next run.
        for i in 0..12u64 {
            let mut c = w.run(&[], &["--children", "2", "--grandchildren", "1", "--sleep", "30.5"]);
            c.stdout(Stdio::null()).stderr(Stdio::null());
            let mut child = w.spawn(c);
            std::thread::sleep(Duration::from_micros(i * 1500));
            child.kill().unwrap();
            child.wait().unwrap();
        }
        let mut next = w.spawn(w.corral(&["run", "--", "true"]));
        assert!(next.wait().unwrap().success(), "[{b}]");
        w.assert_nothing_alive();
        w.assert_no_cgroup_dirs();
    }
}

/// Runs `c` under a seccomp filter that answers ENOSYS to `clone3`, as
/// Docker's default profile did before it knew the call.
fn without_clone3(c: &mut std::process::Command) {
    use std::os::unix::process::CommandExt;
    const CLONE3: u32 = 435;
    // SAFETY: between fork and exec, only prctl on values built before.
    unsafe {
        c.pre_exec(|| {
            let filter = [
                // Load the syscall number; ENOSYS for clone3, allow the rest.
                libc::sock_filter { code: 0x20, jt: 0, jf: 0, k: 0 },
                libc::sock_filter { code: 0x15, jt: 0, jf: 1, k: CLONE3 },
                libc::sock_filter { code: 0x06, jt: 0, jf: 0, k: 0x0005_0000 | libc::ENOSYS as u32 },
                libc::sock_filter { code: 0x06, jt: 0, jf: 0, k: 0x7fff_0000 },
            ];
            let prog = libc::sock_fprog { len: filter.len() as u16, filter: filter.as_ptr() as *mut _ };
            if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0
                || libc::prctl(libc::PR_SET_SECCOMP, 2, &prog as *const libc::sock_fprog, 0, 0) != 0
            {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

#[test]
fn where_seccomp_refuses_clone3_the_fork_path_runs_and_still_contains_escapees() {
    #[cfg(not(target_arch = "x86_64"))]
    return eprintln!("skipping: the filter names clone3 by its x86_64 number");
    for_each_backend(|b| {
        let mut w = World::new(b);
        let mut c = w.run(&["-t", "1", "-k", "2"], &["--setsid", "2", "--double-fork", "2", "--sleep", "30.5"]);
        without_clone3(&mut c);
        let mut child = w.spawn(c);
        let _ = w.ready(&mut child);
        let (code, err) = w.finish(child);
        assert_eq!(code, 124, "[{b}] {err}");
        let r = w.report();
        assert_eq!(r["spawn"], "fork", "[{b}] {r}");
        assert_eq!(r["leftover"], 0, "[{b}]");
        w.assert_nothing_left();
    });
    let mut doctor = std::process::Command::new(corral());
    doctor.arg("doctor");
    without_clone3(&mut doctor);
    let out = output(doctor);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("spawn path: fork (clone3 is refused here"), "{text}");
}
