//! An I/O limit measurably slows a bounded `dd` with direct I/O to a file
//! on a real disk, on every cgroup backend that can throttle here (the v1
//! blkio hierarchy on hybrid and v1 hosts, `io.max` on v2). Where none
//! can, the test prints SKIPPED with the reason; the refusal itself is
//! checked on the pgid backend.

#![cfg(target_os = "linux")]

use corral::{BackendKind, Command, ErrorKind, Group, IoLimit, Limits, Stdio};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const MIB: u64 = 1 << 20;

/// A file of this test's own on the real disk (not a tmpfs), removed on drop.
struct Target(PathBuf);

impl Drop for Target {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Writes 8 MiB with O_DIRECT in the group; returns how long it took.
fn dd(backend: BackendKind, limits: Limits, target: &Path) -> corral::Result<Duration> {
    let mut c = Command::new("dd");
    c.args(["if=/dev/zero", &format!("of={}", target.display()), "bs=1M", "count=8", "oflag=direct"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let started = Instant::now();
    let g = Group::builder().backend(backend).limits(limits).timeout(Duration::from_secs(120)).spawn(c)?;
    let o = g.wait();
    assert_eq!(o.status.code, Some(0), "[{backend}] dd: {o:?}");
    assert_eq!(o.leftover, 0);
    Ok(started.elapsed())
}

#[test]
fn an_io_limit_slows_a_direct_write_to_a_real_disk() {
    let target = Target(Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("io-{}.bin", std::process::id())));
    let backends: Vec<BackendKind> = corral::host_report()
        .backends
        .into_iter()
        .filter(|b| b.available.is_ok() && b.kind != BackendKind::Pgid)
        .map(|b| b.kind)
        .collect();
    let mut throttled_somewhere = false;
    for b in backends {
        // 2 MiB/s: the 8 MiB take about 4 s, far above an unthrottled write.
        let limit = Limits::new().io(IoLimit::new(target.0.parent().unwrap()).write_bps(2 * MIB));
        let slow = match dd(b, limit, &target.0) {
            Ok(t) => t,
            Err(e) if e.kind() == ErrorKind::Unsupported || e.kind() == ErrorKind::InvalidInput => {
                eprintln!("SKIPPED [{b}]: {e}");
                continue;
            }
            Err(e) => panic!("[{b}] {e}"),
        };
        let fast = dd(b, Limits::new(), &target.0).unwrap();
        eprintln!("[{b}] 8 MiB with O_DIRECT: {fast:?} free, {slow:?} at 2 MiB/s");
        assert!(slow >= Duration::from_millis(2500), "[{b}] throttled to 2 MiB/s, 8 MiB took only {slow:?}");
        assert!(slow > fast, "[{b}] {slow:?} throttled vs {fast:?} free");
        throttled_somewhere = true;
    }
    if !throttled_somewhere {
        eprintln!("SKIPPED: no backend on this host can throttle I/O");
    }
}

#[test]
fn io_limits_are_refused_without_cgroups_and_for_a_path_on_no_disk() {
    let limit = Limits::new().io(IoLimit::new("/").write_bps(MIB));
    let e = Group::builder().backend(BackendKind::Pgid).limits(limit).spawn(Command::new("true")).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unsupported, "{e}");
    assert!(e.to_string().contains("I/O limits cannot be enforced by the pgid backend"), "{e}");
    let e = Group::builder().limits(Limits::new().io(IoLimit::new("/"))).spawn(Command::new("true")).unwrap_err();
    assert!(e.to_string().contains("no rate for /"), "{e}");
    let e = Group::builder()
        .limits(Limits::new().io(IoLimit::new("/").write_bps(0)))
        .spawn(Command::new("true"))
        .unwrap_err();
    assert!(e.to_string().contains("rate of 0"), "{e}");
}
