//! Chaos: disk. A full disk under a service's log loses nothing (issue 10,
//! item 14), and a log follower that does not read costs the daemon a
//! bounded number of bytes (item 12).
//!
//! Linux: the tests mount a tmpfs and read `/proc`.

#![cfg(target_os = "linux")]

use crate::daemon::{assert_gone, q, tk, Daemon, LONG};
use std::io::{ErrorKind, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

/// A tmpfs of `size` mounted on a fresh dir; unmounted and removed on
/// drop, also when the test fails. Declare it before the daemon, so it
/// outlives it.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    /// `None` when this process may not mount (not root, or no mount
    /// namespace rights): the caller skips and says so.
    fn mount(size: &str) -> Option<Tmpfs> {
        let dir = tempfile::tempdir().unwrap();
        let out = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size},mode=0700"), "corral-chaos"])
            .arg(dir.path())
            .output()
            .ok()?;
        if !out.status.success() {
            eprintln!("skipped: cannot mount a tmpfs: {}", String::from_utf8_lossy(&out.stderr).trim());
            return None;
        }
        Some(Tmpfs { dir })
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let c = std::ffi::CString::new(self.dir.path().as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: `c` is a valid NUL-terminated path. MNT_DETACH: a file a
        // dying daemon still holds cannot keep the mount alive.
        let r = unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) };
        if r != 0 {
            eprintln!("umount {}: {}", self.dir.path().display(), std::io::Error::last_os_error());
        }
    }
}

/// Fills the file system of `path` with `path` itself, until it refuses,
/// then gives back `room` bytes.
fn fill(path: &Path, room: u64) {
    let mut f = std::fs::File::create(path).unwrap();
    let block = vec![0xAAu8; 64 * 1024];
    loop {
        match f.write(&block) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) if e.raw_os_error() == Some(libc::ENOSPC) => break,
            Err(e) => panic!("filling {}: {e}", path.display()),
        }
    }
    let len = f.metadata().unwrap().len();
    assert!(len > room, "the tmpfs is smaller than the room asked for");
    f.set_len(len - room).unwrap();
}

fn log_lines(dir: &Path) -> Vec<String> {
    let text = std::fs::read(dir.join("0.log")).unwrap_or_default();
    String::from_utf8(text).unwrap().lines().map(str::to_string).collect()
}

/// `line <i> <pid>` printed by the testkit, as it stands in the log.
fn numbered(line: &str) -> Option<u32> {
    let (_, rest) = line.split_once(" out line ")?;
    rest.split(' ').next()?.parse().ok()
}

/// Whether `pid` sleeps in a write to a full pipe: its wait channel, or
/// where no symbol names it, the system call it is in (x86_64 `write`: 1).
fn blocked_in_write(pid: u32) -> bool {
    let wchan = std::fs::read_to_string(format!("/proc/{pid}/wchan")).unwrap_or_default();
    if wchan.contains("pipe_write") {
        return true;
    }
    let syscall = std::fs::read_to_string(format!("/proc/{pid}/syscall")).unwrap_or_default();
    cfg!(target_arch = "x86_64") && wchan == "0" && syscall.split(' ').next() == Some("1")
}

fn vm_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

fn get(sock: &Path, path: &str) -> String {
    let mut s = UnixStream::connect(sock).unwrap();
    s.set_read_timeout(Some(LONG)).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nhost: corral\r\nconnection: close\r\n\r\n").unwrap();
    let mut body = String::new();
    s.read_to_string(&mut body).unwrap();
    body
}

fn log_events<'a>(evs: &'a [serde_json::Value], service: &str) -> Vec<&'a str> {
    evs.iter()
        .filter(|e| e["kind"] == "log" && e["service"] == service)
        .map(|e| e["reason"].as_str().unwrap())
        .collect()
}

#[test]
fn a_full_disk_holds_the_service_and_loses_no_line() {
    const LINES: u32 = 20_000;
    let Some(disk) = Tmpfs::mount("2m") else { return };
    // About 2,500 lines fit before the disk is full; the other 17,500 wait.
    let filler = disk.path().join("filler");
    fill(&filler, 128 * 1024);
    let toml = format!(
        r#"
        [daemon]
        log_dir = {logs}

        [services.writer]
        command = [{tk}, "--lines", "{LINES}", "--sleep", "120"]
        restart = "no"
        logs = {{ max_size = "100MiB", keep = 0 }}
        "#,
        logs = q(disk.path().display().to_string()),
        tk = tk(),
    );
    let mut d = Daemon::start(&toml);
    let held = d.wait_event("log held", |e| e["kind"] == "log" && e["service"] == "writer");
    assert!(held["reason"].as_str().unwrap().contains("No space left on device"), "{held}");
    d.wait_stderr("cannot write the log of writer");
    let pid = d.pid_of("writer").expect("the writer runs");
    d.seen.push(pid);
    let logs = disk.path().join("writer");

    // The service is blocked in `write` on its full pipe: it is alive, its
    // lines stop growing, and its last line is not out.
    let end = Instant::now() + LONG;
    while !blocked_in_write(pid) {
        assert!(Instant::now() < end, "the writer never blocked in pipe_write");
        std::thread::sleep(Duration::from_millis(20));
    }
    let before = log_lines(&logs);
    std::thread::sleep(Duration::from_millis(500));
    let after = log_lines(&logs);
    assert_eq!(before.len(), after.len(), "lines were written while the disk was full");
    assert!(after.iter().filter_map(|l| numbered(l)).all(|i| i < LINES), "the writer was never held");
    let sock = d.path(".corral/corral.sock");
    let metrics = get(&sock, "/metrics");
    assert!(metrics.contains("corral_log_held{service=\"writer\",instance=\"0\"} 1"), "{metrics}");

    // Space comes back: every line arrives, once, whole, in order.
    std::fs::remove_file(&filler).unwrap();
    d.wait_event("log resumed", |e| e["kind"] == "log" && e["reason"].as_str().unwrap().starts_with("log resumed"));
    let end = Instant::now() + LONG;
    let lines = loop {
        let lines = log_lines(&logs);
        if lines.last().and_then(|l| numbered(l)) == Some(LINES) {
            break lines;
        }
        assert!(Instant::now() < end, "the last line never came; {} lines", lines.len());
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut want = 1;
    for l in &lines {
        if l.contains(" out {\"ready\"") {
            continue;
        }
        let (ts, text) = l.split_once(" out ").unwrap_or_else(|| panic!("a torn line: {l:?}"));
        assert_eq!(ts.len(), "2026-01-01T00:00:00.000Z".len(), "a torn line: {l:?}");
        assert_eq!(text, format!("line {want} {pid}"), "line {want} lost, doubled or torn");
        want += 1;
    }
    assert_eq!(want, LINES + 1);

    let evs = d.events();
    let told = log_events(&evs, "writer");
    assert_eq!(told.len(), 2, "one event when held, one when resumed: {told:?}");
    let metrics = get(&sock, "/metrics");
    assert!(metrics.contains("corral_log_holds_total{service=\"writer\",instance=\"0\"} 1"), "{metrics}");
    assert!(metrics.contains("corral_log_held{service=\"writer\",instance=\"0\"} 0"), "{metrics}");
    // The first one was waited for above.
    let stderr: Vec<String> = d.stderr.try_iter().collect();
    let again = stderr.iter().filter(|l| l.contains("cannot write the log of writer")).count();
    assert_eq!(again, 0, "said once per hold, not once per line: {stderr:#?}");
    d.down();
}

#[test]
fn a_follower_that_does_not_read_costs_bounded_memory_and_is_told_what_it_skipped() {
    const LINES: u32 = 3_000_000;
    const BOUND_KIB: u64 = 64 * 1024;
    let dir = Daemon::dir();
    let go = dir.path().join("go");
    // The writer starts once the follower is in place (bounded wait).
    let script = format!(
        "for i in $(seq 600); do [ -e {go} ] && break; sleep 0.05; done; exec {tk} --lines {LINES} --sleep 120",
        go = go.display(),
        tk = crate::daemon::testkit().display(),
    );
    let toml = format!(
        r#"
        [services.chatty]
        command = {script}
        shell = true
        restart = "no"
        logs = {{ max_size = "4MiB", keep = 1 }}
        "#,
        script = q(script),
    );
    let mut d = Daemon::start_in(dir, &toml);
    let daemon = d.child.as_ref().unwrap().id();
    d.wait_transition("chatty", "running");
    let before = vm_rss_kib(daemon);

    let sock = d.path(".corral/corral.sock");
    let mut reader = UnixStream::connect(&sock).unwrap();
    write!(reader, "GET /v1/logs?service=chatty&n=0&follow=true HTTP/1.1\r\nhost: corral\r\n\r\n").unwrap();
    std::fs::write(&go, "").unwrap();

    // The reader reads nothing while 3 million lines (about 150 MB) go by.
    let logs = d.path(".corral/logs/chatty");
    let end = Instant::now() + Duration::from_secs(120);
    let mut peak = before;
    loop {
        peak = peak.max(vm_rss_kib(daemon));
        let last = std::fs::read_to_string(logs.join("0.log")).unwrap_or_default();
        if last.lines().last().and_then(numbered) == Some(LINES) {
            break;
        }
        assert!(Instant::now() < end, "the writer never finished");
        std::thread::sleep(Duration::from_millis(50));
    }
    let pid = d.pid_of("chatty").expect("chatty runs");
    d.seen.push(pid);
    assert!(peak < before + BOUND_KIB, "the daemon grew from {before} KiB to {peak} KiB for one idle reader");

    // Now it reads: what it missed is named, in bytes.
    reader.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
    let mut seen = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    let end = Instant::now() + LONG;
    let marker = loop {
        match reader.read(&mut buf) {
            Ok(0) => panic!("the daemon closed the follow"),
            Ok(n) => seen.extend_from_slice(&buf[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(e) => panic!("reading the follow: {e}"),
        }
        let text = String::from_utf8_lossy(&seen);
        if let Some(m) = text.lines().find(|l| l.contains("-- skipped ")) {
            break m.to_string();
        }
        // The lines before the marker are of no interest: keep the test small.
        if seen.len() > 1 << 20 {
            seen = seen.split_off(seen.len() - 64 * 1024);
        }
        assert!(Instant::now() < end, "no skipped marker in the follow");
    };
    let skipped: u64 = marker
        .split("-- skipped ")
        .nth(1)
        .and_then(|r| r.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("a marker without a count: {marker:?}"));
    assert!(skipped > 1 << 20, "at least a whole rotated file was skipped, {marker:?}");
    drop(reader);
    let after = vm_rss_kib(daemon);
    eprintln!("daemon VmRSS: {before} KiB before, {peak} KiB at most while ignored, {after} KiB after; {marker}");
    assert!(after < before + BOUND_KIB, "the daemon kept {after} KiB after the reader left (from {before} KiB)");
    d.down();
    assert_gone(&[pid]);
}

#[test]
fn a_daemon_stopping_while_the_disk_is_full_ends_and_says_what_it_never_wrote() {
    let Some(disk) = Tmpfs::mount("1m") else { return };
    fill(&disk.path().join("filler"), 64 * 1024);
    let toml = format!(
        r#"
        [daemon]
        log_dir = {logs}

        [services.writer]
        command = [{tk}, "--lines", "20000", "--sleep", "120"]
        restart = "no"
        "#,
        logs = q(disk.path().display().to_string()),
        tk = tk(),
    );
    let mut d = Daemon::start(&toml);
    d.wait_event("log held", |e| e["kind"] == "log" && e["service"] == "writer");
    d.seen.push(d.pid_of("writer").expect("the writer runs"));
    let out = d.corral(&["down"]);
    assert!(out.status.success(), "down failed: {}", String::from_utf8_lossy(&out.stderr));
    let status = d.child.take().unwrap().wait().unwrap();
    assert!(status.success(), "daemon exit: {status}");
    d.wait_stderr("bytes of output of writer were never written");
    let evs = d.events();
    let told = log_events(&evs, "writer");
    assert!(told.last().is_some_and(|r| r.starts_with("log lost ")), "{told:?}");
    d.note_pids(&evs);
    assert_gone(&d.seen);
}
