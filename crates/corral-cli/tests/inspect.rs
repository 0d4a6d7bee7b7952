//! `corral doctor` and `corral tree` on a real host and a real group.

#![cfg(unix)]

mod support;

use serde_json::Value;
use support::*;

#[test]
fn doctor_json_is_stable_and_complete() {
    let out = output(std::process::Command::new(corral()).args(["doctor", "--json"]));
    assert!(out.status.success());
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["os"], std::env::consts::OS);
    let names: Vec<&str> = v["backends"].as_array().unwrap().iter().map(|b| b["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["cgroup2", "hybrid", "cgroup1", "pgid"]);
    for b in v["backends"].as_array().unwrap() {
        for key in [
            "holds_escapees",
            "atomic_kill",
            "kill_on_controller_death",
            "empty_notification",
            "peak_memory",
            "memory",
            "memory_per_process",
            "max_procs",
            "cpu_time",
            "cpus",
            "timeout",
        ] {
            let c = &b["capabilities"][key];
            assert!(["yes", "weaker", "no"].contains(&c["support"].as_str().unwrap()), "{key}: {c}");
            assert!(!c["detail"].as_str().unwrap().is_empty());
        }
        // An unusable backend always says why.
        if b["available"] == false {
            assert!(b["reason"].as_str().is_some_and(|r| !r.is_empty()), "{b}");
        }
    }
    assert_eq!(v["backends"][3]["available"], true, "pgid always works");
    let text = output(std::process::Command::new(corral()).arg("doctor"));
    let t = String::from_utf8_lossy(&text.stdout);
    assert!(t.contains("a new group gets the"), "{t}");
}

#[test]
fn tree_shows_a_live_group_with_pgid_sid_and_cgroup() {
    for b in backends() {
        let mut w = World::new(&b);
        let mut child = w.spawn(w.run(&["-t", "20"], &["--children", "2", "--setsid", "1", "--sleep", "30.5"]));
        let ready = w.ready(&mut child);
        let leader = ready["pid"].as_u64().unwrap().to_string();
        let out = output(std::process::Command::new(corral()).args(["tree", &leader]));
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(out.status.success());
        let header = text.lines().next().unwrap();
        for col in ["PID", "PPID", "PGID", "SID", "CPU", "MEM", "COMMAND"] {
            assert!(header.contains(col), "{header}");
        }
        // The leader and its three children, each on its own line, then the note.
        assert_eq!(text.lines().count(), 1 + 4 + 1, "[{b}]\n{text}");
        let note = text.lines().last().unwrap();
        let setsid = ready["setsid"][0].as_u64().unwrap().to_string();
        let line = text.lines().find(|l| l.split_whitespace().next() == Some(setsid.as_str())).unwrap();
        let cols: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(cols[2], setsid, "[{b}] its own process group: {line}");
        assert_eq!(cols[3], setsid, "[{b}] its own session: {line}");
        assert!(note.starts_with("# group "), "[{b}] the group is named: {note}");
        if b != "pgid" {
            assert!(note.contains("corral/"), "[{b}] the group's cgroup is shown: {note}");
        }
        child.kill().unwrap();
        child.wait().unwrap();
        // Controller gone: a new corral reaps the rest (cgroup backends); the
        // pgid leader dies by PDEATHSIG, its children expire or are killed here.
        let _ = output(w.corral(&["run", "--", "true"]));
        for p in ready["all"].as_array().unwrap() {
            // SAFETY: kill(2) on pids this test started.
            unsafe { libc::kill(p.as_u64().unwrap() as i32, libc::SIGKILL) };
        }
        w.assert_nothing_alive();
    }
    let out = output(std::process::Command::new(corral()).args(["tree", "999999999"]));
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no process with pid 999999999"));
}

#[test]
fn service_is_windows_only_and_says_what_to_use_instead() {
    for verb in [&["install", "-c", "corral.toml"][..], &["start"], &["stop", "--name", "x"], &["uninstall"]] {
        let out = output(std::process::Command::new(corral()).arg("service").args(verb));
        assert_eq!(out.status.code(), Some(1), "{verb:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("Windows only") && err.contains("systemd"), "{err}");
        assert_eq!(err.lines().count(), 1, "one line: {err}");
    }
}
