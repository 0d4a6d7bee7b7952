//! Spawn+wait of `/bin/true` in a group with limits, the way
//! `corral-bench spawn` times it, next to plain std: a small program to
//! strace, perf or time while changing the spawn path.
//!
//! Usage: spawn_loop [ROUNDS]   (default 300; at most 100000)
//! - `OUTLIVE=1`: a supervisor's kind of group instead (meant to outlive
//!   its controller, no limits): never on a pooled leaf, so each start
//!   makes its cgroups and each end removes them.
//! - `PGID=1`: the pgid backend instead (no limits), with its process-event
//!   connector: the time its reader takes to confirm the leader's exit.
//! - `NO_LIMITS=1`: a group without limits (the bench's "no limits" row;
//!   the only kind `CORRAL_BACKEND=cgroup2` takes on a host whose cgroup2
//!   mount has no controllers).
//! - `OTHER_CHILD=1`: this process has a child of its own besides the
//!   groups (a `sleep 60`), as a program that runs other tools has: the
//!   end of each group then cannot take the "no child at all" shortcut.
//! - `PAUSE_US=N`: sleep N µs before each round, to see what the previous
//!   round's tail (the loop's teardown) costs the next spawn on a busy
//!   2-core host.
//! - `NEIGHBOUR=1`: before each std and each corral turn, what processkit's
//!   new-group-per-call does in the bench's table: a cgroup2 directory
//!   made, a `/bin/true` moved into it by its own `cgroup.procs` write
//!   before its exec, waited for, the directory removed. Its `pre_exec`
//!   makes std fork the whole process, which leaves every page of it
//!   copy-on-write: the turn after it pays a fault per page it writes
//!   (count them with `perf stat -e minor-faults --no-inherit`).

use std::time::{Duration, Instant};

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v.get(v.len() / 2).copied().unwrap_or_default()
}

fn main() {
    let rounds: usize = std::env::args().nth(1).and_then(|s| s.parse().ok()).unwrap_or(300).clamp(1, 100_000);
    let limits = corral::Limits::new().memory(256 << 20).max_procs(64);
    let (mut std_t, mut corral_t) = (Vec::with_capacity(rounds), Vec::with_capacity(rounds));
    let (mut std_spawn, mut corral_spawn) = (Vec::with_capacity(rounds), Vec::with_capacity(rounds));
    let outlive = std::env::var_os("OUTLIVE").is_some();
    let pgid = std::env::var_os("PGID").is_some();
    let no_limits = std::env::var_os("NO_LIMITS").is_some();
    let pause = std::env::var("PAUSE_US").ok().and_then(|s| s.parse().ok()).map(Duration::from_micros);
    let neighbour = std::env::var_os("NEIGHBOUR").map(|_| Neighbour::new());
    let mut other = std::env::var_os("OTHER_CHILD")
        .map(|_| std::process::Command::new("sleep").arg("60").spawn().expect("spawn sleep 60"));
    for _ in 0..rounds {
        if let Some(p) = pause {
            std::thread::sleep(p);
        }
        if let Some(n) = &neighbour {
            n.call();
        }
        let t = Instant::now();
        let mut c = std::process::Command::new("/bin/true").spawn().expect("std spawn");
        std_spawn.push(t.elapsed());
        let ok = c.wait().map(|s| s.success()).unwrap_or(false);
        std_t.push(t.elapsed());
        assert!(ok, "std: /bin/true failed");
        if let Some(n) = &neighbour {
            n.call();
        }
        let t = Instant::now();
        let b = match (outlive, pgid) {
            // A supervisor's service: never pooled, no limits.
            (true, _) => corral::Group::builder().outlive_controller(true),
            (false, true) => corral::Group::builder().backend(corral::BackendKind::Pgid),
            (false, false) if no_limits => corral::Group::builder(),
            (false, false) => corral::Group::builder().limits(limits.clone()),
        };
        let g = match b.spawn(corral::Command::new("/bin/true")) {
            Ok(g) => g,
            Err(e) => {
                eprintln!("spawn_loop: {e}");
                std::process::exit(1);
            }
        };
        corral_spawn.push(t.elapsed());
        let o = g.wait();
        corral_t.push(t.elapsed());
        assert!(o.status.success() && o.leftover == 0, "corral: {o:?}");
    }
    let (ss, cs) = (median(std_spawn), median(corral_spawn));
    println!("spawn only: std {ss:?}  corral {cs:?}");
    let (s, c) = (median(std_t.clone()), median(corral_t.clone()));
    let p90 = |mut v: Vec<Duration>| {
        v.sort();
        v.get(v.len() * 9 / 10).copied().unwrap_or_default()
    };
    println!("std {s:?}  corral {c:?}  ratio {:.2}", c.as_secs_f64() / s.as_secs_f64());
    println!("p90: std {:?}  corral {:?}", p90(std_t), p90(corral_t));
    if let Some(c) = other.as_mut() {
        let _ = c.kill();
        let _ = c.wait();
    }
}

/// `NEIGHBOUR` is Linux's (cgroup2); elsewhere it refuses to start.
#[cfg(not(target_os = "linux"))]
struct Neighbour;

#[cfg(not(target_os = "linux"))]
impl Neighbour {
    fn new() -> Neighbour {
        panic!("NEIGHBOUR=1 needs Linux's cgroup2")
    }

    fn call(&self) {}
}

/// processkit's new group per call, without processkit (see `NEIGHBOUR`).
#[cfg(target_os = "linux")]
struct Neighbour {
    base: std::path::PathBuf,
    seq: std::cell::Cell<u64>,
}

#[cfg(target_os = "linux")]
impl Neighbour {
    fn new() -> Neighbour {
        // A hybrid host's cgroup2 mount, else a pure-v2 host's root.
        let base = ["/sys/fs/cgroup/unified", "/sys/fs/cgroup"]
            .map(std::path::PathBuf::from)
            .into_iter()
            .find(|b| b.join("cgroup.procs").exists() && b.join("cgroup.controllers").exists())
            .expect("NEIGHBOUR=1 needs a cgroup2 mount at /sys/fs/cgroup/unified or /sys/fs/cgroup");
        Neighbour { base, seq: std::cell::Cell::new(0) }
    }

    fn call(&self) {
        use std::os::unix::process::CommandExt;
        self.seq.set(self.seq.get() + 1);
        let dir = self.base.join(format!("spawn-loop-neighbour-{}-{}", std::process::id(), self.seq.get()));
        std::fs::create_dir(&dir).expect("neighbour: mkdir");
        let procs = std::ffi::CString::new(dir.join("cgroup.procs").into_os_string().into_encoded_bytes())
            .expect("no NUL in a cgroup path");
        let mut cmd = std::process::Command::new("/bin/true");
        // SAFETY: open, write and close are async-signal-safe; the path was
        // made before the fork.
        unsafe {
            cmd.pre_exec(move || {
                let fd = libc::open(procs.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
                if fd < 0 || libc::write(fd, b"0".as_ptr().cast(), 1) != 1 {
                    return Err(std::io::Error::last_os_error());
                }
                libc::close(fd);
                Ok(())
            });
        }
        let ok = cmd.status().map(|s| s.success()).unwrap_or(false);
        // Its only member has exited and been reaped: the directory is empty.
        let removed = std::fs::remove_dir(&dir);
        assert!(ok && removed.is_ok(), "neighbour: {ok} {removed:?}");
    }
}
