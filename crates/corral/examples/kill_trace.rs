//! Kill latency of testkit trees, the way `corral-bench kill` times it (a
//! pidfd per process, polled until all are readable), for several ways of
//! killing, interleaved: a small program to strace or to time.
//!
//! Usage: kill_trace TESTKIT CHILDREN GRANDCHILDREN ROUNDS [WAYS]
//! WAYS: comma-separated among
//! - corral: `Group::kill()`;
//! - killpg: a plain process group (no corral), `killpg`;
//! - corral-killpg: the group's tree killed by `killpg` instead;
//! - corral-raw: the group's `cgroup.kill` written by hand;
//! - bare-killpg, bare-cgkill: a v2 leaf made by hand (no corral thread);
//! - bare1-killpg, bare1-cgkill: the same, plus a v1 memory cgroup (hybrid).
//!
//! Linux only; run as root on a host with cgroup2 at /sys/fs/cgroup/unified.

#[cfg(target_os = "linux")]
mod linux {
    use std::io::{BufRead, BufReader, Write};
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    use std::os::unix::process::CommandExt;
    use std::process::{Command, Stdio};
    use std::time::{Duration, Instant};

    fn pidfd(pid: u32) -> OwnedFd {
        // SAFETY: pidfd_open takes a pid and flags and returns a new fd or -1.
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0) };
        assert!(fd >= 0, "pidfd_open {pid}");
        // SAFETY: a fresh fd owned by nobody else.
        unsafe { OwnedFd::from_raw_fd(fd as i32) }
    }

    /// Polls until every fd is readable; the time of the last one.
    fn all_dead(fds: Vec<OwnedFd>, t0: Instant) -> Duration {
        let mut fds = fds;
        let mut last = Duration::ZERO;
        let limit = Instant::now() + Duration::from_secs(5);
        while !fds.is_empty() && Instant::now() < limit {
            let mut p: Vec<libc::pollfd> =
                fds.iter().map(|f| libc::pollfd { fd: f.as_raw_fd(), events: libc::POLLIN, revents: 0 }).collect();
            // SAFETY: a valid array of pollfds.
            let n = unsafe { libc::poll(p.as_mut_ptr(), p.len() as libc::nfds_t, 1000) };
            last = t0.elapsed();
            if n <= 0 {
                continue;
            }
            let mut i = 0;
            fds.retain(|_| {
                i += 1;
                p[i - 1].revents == 0
            });
        }
        assert!(fds.is_empty(), "survivors");
        last
    }

    fn median(v: &mut [f64]) -> f64 {
        v.sort_by(|a, b| a.total_cmp(b));
        v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
    }

    pub fn main() {
        let a: Vec<String> = std::env::args().skip(1).collect();
        let testkit = a.first().expect("usage: kill_trace TESTKIT CHILDREN GRANDCHILDREN ROUNDS [WAYS]").clone();
        let c = a.get(1).cloned().unwrap_or_else(|| "3".into());
        let g = a.get(2).cloned().unwrap_or_else(|| "2".into());
        let rounds: usize = a.get(3).and_then(|r| r.parse().ok()).unwrap_or(3);
        let ways: Vec<String> =
            a.get(4).map(|w| w.split(',').map(str::to_string).collect()).unwrap_or_else(|| vec!["corral".into()]);
        let mut lat = vec![Vec::new(); ways.len()];
        let mut calls = vec![Vec::new(); ways.len()];
        for r in 0..rounds {
            for k in 0..ways.len() {
                let k = (k + r) % ways.len();
                let way = ways[k].as_str();
                let (reader, writer) = std::io::pipe().expect("pipe");
                let mut cmd = Command::new(&testkit);
                cmd.args(["--children", &c, "--grandchildren", &g, "--sleep", "30.5"])
                    .stdin(Stdio::null())
                    .stdout(writer);
                let bare = format!("/sys/fs/cgroup/unified/kill-trace-{}-{r}-{k}", std::process::id());
                let own = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
                let mem = own.lines().find_map(|l| l.split(":memory:").nth(1)).unwrap_or("/").to_string();
                let v1 = format!(
                    "/sys/fs/cgroup/memory{}/kill-trace-{}-{r}-{k}",
                    mem.trim_end_matches('/'),
                    std::process::id()
                );
                let (group, mut child) = if way == "killpg" {
                    cmd.process_group(0);
                    (None, Some(cmd.spawn().expect("spawn")))
                } else if way.starts_with("bare") {
                    // A v2 leaf without corral: what membership alone costs.
                    std::fs::create_dir(&bare).expect("mkdir");
                    let procs = std::ffi::CString::new(format!("{bare}/cgroup.procs")).expect("path");
                    // "bare1-…": also in a v1 memory cgroup (`v1` above), as
                    // on corral's hybrid backend.
                    let v1_procs = way.starts_with("bare1").then(|| {
                        std::fs::create_dir(&v1).expect("mkdir v1");
                        std::ffi::CString::new(format!("{v1}/cgroup.procs")).expect("path")
                    });
                    cmd.process_group(0);
                    // SAFETY: only async-signal-safe calls (open, write, close).
                    unsafe {
                        cmd.pre_exec(move || {
                            let fd = libc::open(procs.as_ptr(), libc::O_WRONLY);
                            if fd < 0 || libc::write(fd, b"0".as_ptr().cast(), 1) != 1 {
                                return Err(std::io::Error::last_os_error());
                            }
                            libc::close(fd);
                            if let Some(p) = &v1_procs {
                                let fd = libc::open(p.as_ptr(), libc::O_WRONLY);
                                if fd < 0 || libc::write(fd, b"0".as_ptr().cast(), 1) != 1 {
                                    return Err(std::io::Error::last_os_error());
                                }
                                libc::close(fd);
                            }
                            Ok(())
                        });
                    }
                    (None, Some(cmd.spawn().expect("spawn")))
                } else {
                    (Some(corral::Group::builder().spawn(cmd).expect("spawn")), None)
                };
                let mut line = String::new();
                BufReader::new(reader).read_line(&mut line).expect("ready line");
                let v: serde_json::Value = serde_json::from_str(line.trim()).expect("json");
                let top = v["pid"].as_u64().expect("pid") as u32;
                let mut pids = vec![top];
                pids.extend(v["all"].as_array().into_iter().flatten().filter_map(|p| p.as_u64()).map(|p| p as u32));
                let fds: Vec<OwnedFd> = pids.iter().map(|&p| pidfd(p)).collect();
                let raw = (way == "corral-raw" || way.ends_with("-cgkill")).then(|| {
                    let loc = group.as_ref().map(|g| g.location()).unwrap_or_else(|| bare.clone());
                    std::fs::OpenOptions::new().write(true).open(format!("{loc}/cgroup.kill")).expect("cgroup.kill")
                });
                eprintln!("KILL-START {way}");
                let t0 = Instant::now();
                match way {
                    "corral" => group.as_ref().expect("group").kill().expect("kill"),
                    // SAFETY: killpg of the tree's own process group.
                    "killpg" | "corral-killpg" | "bare-killpg" | "bare1-killpg" => {
                        assert_eq!(unsafe { libc::killpg(top as i32, libc::SIGKILL) }, 0)
                    }
                    "corral-raw" | "bare-cgkill" | "bare1-cgkill" => {
                        raw.as_ref().expect("fd").write_all(b"1").expect("write")
                    }
                    w => panic!("unknown way {w}"),
                }
                let call = t0.elapsed();
                let l = all_dead(fds, t0);
                eprintln!("KILL-END {way} call {call:?} last death {l:?}");
                lat[k].push(l.as_secs_f64() * 1e3);
                calls[k].push(call.as_secs_f64() * 1e3);
                if let Some(g) = group {
                    assert_eq!(g.wait().leftover, 0);
                }
                if let Some(ch) = child.as_mut() {
                    let _ = ch.wait();
                    for p in &pids[1..] {
                        // Our subreaped zombies, if any.
                        // SAFETY: waitpid on a pid with WNOHANG.
                        unsafe { libc::waitpid(*p as i32, std::ptr::null_mut(), libc::WNOHANG) };
                    }
                    if way.starts_with("bare") {
                        for _ in 0..100 {
                            let _ = std::fs::remove_dir(&bare);
                            let _ = std::fs::remove_dir(&v1);
                            if !std::path::Path::new(&bare).exists() && !std::path::Path::new(&v1).exists() {
                                break;
                            }
                            std::thread::sleep(Duration::from_millis(1));
                        }
                    }
                }
            }
        }
        for (k, w) in ways.iter().enumerate() {
            println!(
                "{w:14} median {:.3} ms  call {:.3} ms  (n={})",
                median(&mut lat[k]),
                median(&mut calls[k]),
                lat[k].len()
            );
        }
    }
}

#[cfg(target_os = "linux")]
fn main() {
    linux::main();
}

#[cfg(not(target_os = "linux"))]
fn main() {}
