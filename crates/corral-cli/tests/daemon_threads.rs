//! The daemon's thread count stays bounded, whatever it runs: with many
//! services, while clients ask for work kept off the runtime's workers
//! (metrics, event history, process trees), and after services restart.
//! Counted in `/proc/PID/task`, as people and the bench count them.
//!
//! Every sample is taken after a condition is met (all services running,
//! the requests answered, the restarts done), never after a fixed sleep.

#![cfg(target_os = "linux")]

mod daemon;

use daemon::*;
use std::fmt::Write as _;

/// Services in the test: enough that a thread per service, or per
/// request, shows at once.
const SERVICES: usize = 30;
/// The most threads the daemon may have (issue 11: at most 8 with 100
/// services; the count does not depend on the number of services).
const MAX_THREADS: usize = 8;

fn threads(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/task")).map(|d| d.count()).unwrap_or(0)
}

/// The names of the daemon's threads, for a failure's message.
fn thread_names(pid: u32) -> Vec<String> {
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/task")) else { return Vec::new() };
    dir.filter_map(Result::ok)
        .map(|t| std::fs::read_to_string(t.path().join("comm")).unwrap_or_default().trim().to_string())
        .collect()
}

fn assert_bounded(pid: u32, when: &str) {
    let n = threads(pid);
    assert!(n <= MAX_THREADS, "{when}: the daemon runs {n} threads (at most {MAX_THREADS}): {:?}", thread_names(pid));
}

#[test]
fn the_daemon_with_many_services_keeps_its_threads_bounded() {
    let mut toml = String::from("[daemon]\nstate_dir = \".corral\"\n");
    for i in 0..SERVICES {
        let _ = write!(
            toml,
            "\n[services.s{i}]\ncommand = [{}, \"--sleep\", \"120\"]\nrestart = \"always\"\nbackoff = {{ initial = \"0s\", max = \"0s\" }}\n",
            tk()
        );
    }
    let mut d = Daemon::start(&toml);
    let pid = d.child.as_ref().unwrap().id();
    let running = |d: &Daemon| d.status().iter().filter(|i| i["state"] == "running").count();
    let end = std::time::Instant::now() + LONG;
    while running(&d) < SERVICES {
        assert!(std::time::Instant::now() < end, "not every service started: {:#?}", d.status());
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert_bounded(pid, "all services running");

    // Requests whose work runs on the blocking pool, many at once: they
    // queue for its few threads rather than each adding one.
    let asks: Vec<_> = (0..12)
        .map(|i| {
            let config = d.path("corral.toml");
            std::thread::spawn(move || {
                let args: &[&str] = match i % 3 {
                    0 => &["status", "--json"],
                    1 => &["events", "-n", "50"],
                    _ => &["tree", "s1"],
                };
                let mut c = std::process::Command::new(CORRAL);
                c.args(args).arg("-c").arg(config);
                bounded_output(c)
            })
        })
        .collect();
    for a in asks {
        let _ = a.join();
        assert_bounded(pid, "clients asking at once");
    }

    // Restarts: each ends a group (its teardown) and starts one.
    for i in 0..5 {
        let name = format!("s{i}");
        let old = d.pid_of(&name).expect("a running service has a pid");
        d.seen.push(old);
        // SAFETY: kill has no memory-safety preconditions; `old` is the
        // leader this daemon started for the test.
        unsafe { libc::kill(old as i32, libc::SIGKILL) };
        let end = std::time::Instant::now() + LONG;
        loop {
            let now = d.instance(&name);
            if now["state"] == "running" && now["pid"].as_u64().is_some_and(|p| p as u32 != old) {
                break;
            }
            assert!(std::time::Instant::now() < end, "{name} was not restarted: {now:#}");
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
    }
    let end = std::time::Instant::now() + LONG;
    while running(&d) < SERVICES {
        assert!(std::time::Instant::now() < end, "not every service came back: {:#?}", d.status());
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    // Threads a restart used (teardown, the state file's writer) end once
    // their work is done: wait for that, bounded, then count.
    let end = std::time::Instant::now() + LONG;
    while threads(pid) > MAX_THREADS && std::time::Instant::now() < end {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert_bounded(pid, "after restarts");
    for i in d.status() {
        if let Some(p) = i["pid"].as_u64() {
            d.seen.push(p as u32);
        }
    }
    d.down();
}
