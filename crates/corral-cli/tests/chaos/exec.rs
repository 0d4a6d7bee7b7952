//! Chaos: exec. corral started by a careless or hostile parent (SIGCHLD
//! ignored, signals blocked, an fd left open on a root-only file) and a
//! daemon whose environment holds a secret: nothing of it may hang corral
//! or reach what corral starts (issue 10, items 1, 7 and 8).

use crate::daemon::{self, q, tk, Daemon};
use crate::support::{self, World};
use std::fs::File;
use std::io::Write;
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// The fd a launcher leaks into corral.
const LEAKED_FD: RawFd = 7;

/// Makes `cmd` start the way a careless parent leaves it: SIGCHLD and
/// SIGTERM ignored (`trap '' CHLD TERM`), SIGCHLD, SIGTERM, SIGINT and
/// SIGHUP blocked, and `leak` (if any) open on fd 7 without close-on-exec.
fn hostile(cmd: &mut Command, leak: Option<&File>) {
    let leak = leak.map(|f| f.as_raw_fd());
    // SAFETY: the closure runs between fork and exec and makes only
    // async-signal-safe calls on values captured by copy.
    unsafe {
        cmd.pre_exec(move || {
            if let Some(fd) = leak {
                // dup2 gives the new fd no FD_CLOEXEC.
                if libc::dup2(fd, LEAKED_FD) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            libc::signal(libc::SIGCHLD, libc::SIG_IGN);
            libc::signal(libc::SIGTERM, libc::SIG_IGN);
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            for s in [libc::SIGCHLD, libc::SIGTERM, libc::SIGINT, libc::SIGHUP] {
                libc::sigaddset(&mut set, s);
            }
            libc::sigprocmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
            Ok(())
        });
    }
}

/// A root-only (0600) file holding "original".
fn secret_file(dir: &Path) -> (std::path::PathBuf, File) {
    use std::os::unix::fs::OpenOptionsExt;
    let path = dir.join("root-only");
    let mut f = std::fs::OpenOptions::new().create_new(true).write(true).mode(0o600).open(&path).unwrap();
    f.write_all(b"original\n").unwrap();
    let f = std::fs::OpenOptions::new().append(true).open(&path).unwrap();
    (path, f)
}

/// Waits for `child` at most `limit`; past it, kills it (by its pid) and fails.
fn wait_bounded(child: &mut Child, limit: Duration, what: &str) -> ExitStatus {
    let end = Instant::now() + limit;
    loop {
        if let Some(st) = child.try_wait().unwrap() {
            return st;
        }
        if Instant::now() >= end {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what} did not end within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

#[test]
fn run_with_sigchld_ignored_still_times_out() {
    // Once: corral spun at 80% of a core and never returned.
    for backend in support::backends() {
        let mut w = World::new(&backend);
        let mut c = w.run(&["-t", "1s"], &["--sleep", "3"]);
        hostile(&mut c, None);
        let mut child = w.spawn(c);
        w.ready(&mut child);
        let started = Instant::now();
        let st = wait_bounded(&mut child, Duration::from_secs(10), "corral run -t 1s");
        assert_eq!(st.code(), Some(124), "[{backend}] {st}");
        assert!(started.elapsed() < Duration::from_millis(2900), "[{backend}] the timeout was not kept");
        assert_eq!(w.report()["reason"], "timeout");
        w.assert_nothing_left();
    }
}

#[test]
fn run_with_signals_blocked_still_forwards_sigterm() {
    let mut w = World::new("");
    let mut c = w.run(&[], &["--children", "1", "--sleep", "30"]);
    hostile(&mut c, None);
    let mut child = w.spawn(c);
    w.ready(&mut child);
    // SAFETY: kill has no memory-safety preconditions; the pid is our child's.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let st = wait_bounded(&mut child, Duration::from_secs(15), "corral run after SIGTERM");
    assert_eq!(st.code(), Some(128 + libc::SIGTERM), "{st}");
    w.assert_nothing_left();
}

#[test]
fn run_leader_starts_with_no_blocked_or_ignored_signal_and_no_leaked_fd() {
    let w = World::new("");
    let (path, leak) = secret_file(&w.dir);
    // The control: without corral the leaked fd is writable.
    let mut plain = Command::new("sh");
    plain.args(["-c", "echo control >&7"]);
    hostile(&mut plain, Some(&leak));
    assert!(plain.status().unwrap().success(), "the launcher did not leak fd 7");
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "original\ncontrol\n");

    let mut c = w.corral(&["run", "--", "sh", "-c", "echo pwned >&7 || echo refused; exec cat /proc/self/status"]);
    c.stdout(Stdio::piped()).stderr(Stdio::piped());
    hostile(&mut c, Some(&leak));
    let out = c.output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{text} {err}");
    assert!(text.contains("refused") && err.contains("Bad file descriptor"), "{text} {err}");
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "original\ncontrol\n");
    let field = |name: &str| {
        text.lines().find_map(|l| l.strip_prefix(name)).map(str::trim).unwrap_or_else(|| panic!("{name} in {text}"))
    };
    assert_eq!(field("SigBlk:"), "0000000000000000", "the leader inherited a blocked mask");
    assert_eq!(field("SigIgn:"), "0000000000000000", "the leader inherited ignored signals");
    w.assert_nothing_left();
}

/// `corral up -c config` started by [`hostile`], with `env` added to its
/// environment.
fn hostile_up(dir: tempfile::TempDir, toml: &str, leak: Option<&File>, env: &[(&str, &str)]) -> Daemon {
    std::fs::write(dir.path().join("corral.toml"), toml).unwrap();
    Daemon::restart_in_with(dir, |c| {
        c.envs(env.iter().copied());
        hostile(c, leak);
    })
}

/// The instance log of `service` once it holds `END`.
fn log_until_end(d: &Daemon, service: &str) -> String {
    let log = d.path(&format!(".corral/logs/{service}/0.log"));
    let end = Instant::now() + daemon::LONG;
    loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if text.lines().any(|l| l.ends_with(" END")) {
            return text;
        }
        assert!(Instant::now() < end, "no END in {}: {text}", log.display());
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The value of `NAME=` in an `env` dump inside a log.
fn var(log: &str, name: &str) -> Option<String> {
    let needle = format!(" {name}=");
    log.lines().find_map(|l| l.split_once(&needle).map(|(_, v)| v.to_string()))
}

#[test]
fn up_with_sigchld_ignored_sees_a_oneshot_exit_and_goes_down() {
    // Once: the one-shot stayed `running` forever and `down` hung.
    let toml = format!("[services.once]\ncommand = [{tk}, \"--sleep\", \"0.2\"]\nrestart = \"no\"\n", tk = tk());
    let mut d = hostile_up(Daemon::dir(), &toml, None, &[]);
    d.ready_pids("once", 0);
    d.wait_transition("once", "exited");
    d.down();
}

#[test]
fn up_with_signals_blocked_still_stops_on_sigterm() {
    let toml = format!("[services.long]\ncommand = [{tk}, \"--children\", \"1\", \"--sleep\", \"30\"]\n", tk = tk());
    let mut d = hostile_up(Daemon::dir(), &toml, None, &[]);
    let pids = d.ready_pids("long", 0);
    let mut child = d.child.take().unwrap();
    // SAFETY: kill has no memory-safety preconditions; the pid is our child's.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let st = wait_bounded(&mut child, Duration::from_secs(30), "corral up after SIGTERM");
    assert!(st.success(), "{st}");
    daemon::assert_gone(&pids);
}

#[test]
fn a_service_gets_a_clean_environment_and_only_what_it_asks_for() {
    let secret = ("CORRAL_CHAOS_SECRET", "hunter2");
    let dump = q("env; echo END");
    let toml = format!(
        "[services.plain]\ncommand = [\"sh\", \"-c\", {dump}]\nrestart = \"no\"\n\
         [services.listed]\ncommand = [\"sh\", \"-c\", {dump}]\nrestart = \"no\"\ninherit_env = [\"CORRAL_CHAOS_SECRET\"]\n\
         [services.all]\ncommand = [\"sh\", \"-c\", {dump}]\nrestart = \"no\"\ninherit_env = true\n"
    );
    let d = hostile_up(Daemon::dir(), &toml, None, &[secret, ("PATH", "/secret/bin:/usr/bin:/bin")]);
    let plain = log_until_end(&d, "plain");
    assert_eq!(var(&plain, secret.0), None, "{plain}");
    assert_eq!(var(&plain, "PATH").as_deref(), Some("/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"));
    assert_eq!(var(&plain, "CORRAL_SERVICE").as_deref(), Some("plain"));
    assert_eq!(var(&plain, "CORRAL_INSTANCE").as_deref(), Some("0"));
    assert!(var(&plain, "CORRAL_GROUP").is_some(), "the library's tag stays: {plain}");
    // The daemon's own account, as its passwd entry says.
    // SAFETY: geteuid has no preconditions.
    let me = passwd_of(&unsafe { libc::geteuid() }.to_string());
    assert_eq!(var(&plain, "HOME"), Some(me.home), "{plain}");
    assert_eq!(var(&plain, "USER"), Some(me.name.clone()));
    assert_eq!(var(&plain, "LOGNAME"), Some(me.name));
    assert_eq!(var(&plain, "SHELL"), Some(me.shell));
    let listed = log_until_end(&d, "listed");
    assert_eq!(var(&listed, secret.0).as_deref(), Some(secret.1));
    assert_eq!(var(&listed, "PATH").as_deref(), Some("/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"));
    let all = log_until_end(&d, "all");
    assert_eq!(var(&all, secret.0).as_deref(), Some(secret.1));
    assert_eq!(var(&all, "PATH").as_deref(), Some("/secret/bin:/usr/bin:/bin"));
    d.down();
}

#[test]
fn a_service_as_nobody_cannot_write_a_leaked_root_fd_and_gets_its_own_account() {
    if !is_root() {
        eprintln!("skipping: needs root to start a service as nobody");
        return;
    }
    let dir = Daemon::dir();
    let (path, leak) = secret_file(dir.path());
    let script = q("echo pwned >&7 || echo refused; env; echo END");
    let toml = format!(
        "[services.leak]\ncommand = [\"sh\", \"-c\", {script}]\nuser = \"nobody\"\ncwd = \"/\"\nrestart = \"no\"\n"
    );
    let d = hostile_up(dir, &toml, Some(&leak), &[]);
    let log = log_until_end(&d, "leak");
    assert!(log.contains(" out refused"), "{log}");
    assert!(log.contains("Bad file descriptor"), "{log}");
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "original\n");
    let nobody = passwd_of("nobody");
    assert_eq!(var(&log, "USER").as_deref(), Some("nobody"));
    assert_eq!(var(&log, "LOGNAME").as_deref(), Some("nobody"));
    assert_eq!(var(&log, "HOME"), Some(nobody.home));
    assert_eq!(var(&log, "SHELL"), Some(nobody.shell));
    d.down();
}

struct Passwd {
    name: String,
    home: String,
    shell: String,
}

/// An account from `getent passwd` (the same NSS the daemon asks).
fn passwd_of(user: &str) -> Passwd {
    let out = Command::new("getent").args(["passwd", user]).output().unwrap();
    let line = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let f: Vec<&str> = line.split(':').collect();
    assert_eq!(f.len(), 7, "getent passwd {user}: {line:?}");
    let shell = if f[6].is_empty() { "/bin/sh" } else { f[6] };
    Passwd { name: f[0].into(), home: f[5].into(), shell: shell.into() }
}

/// The daemon raises its own soft open-file limit (clients, pipes, logs);
/// a service starts with the soft limit the daemon's launcher gave it
/// (systemd gives services 1024), not the raised one, and with the hard
/// limit unchanged.
#[test]
fn a_service_gets_the_launchers_open_file_limit_not_the_daemons_raised_one() {
    let mut r = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit writes into the struct we own.
    assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) }, 0);
    let (launcher, hard) = (512.min(r.rlim_max), r.rlim_max);
    if hard <= launcher {
        eprintln!("SKIPPED: the hard open-file limit ({hard}) leaves no room for the daemon's raise");
        return;
    }
    let script = q("echo \"NOFILE $(ulimit -Sn) $(ulimit -Hn)\"; echo END");
    let dir = Daemon::dir();
    std::fs::write(
        dir.path().join("corral.toml"),
        format!("[services.n]\ncommand = [\"sh\", \"-c\", {script}]\nrestart = \"no\"\n"),
    )
    .unwrap();
    let d = Daemon::restart_in_with(dir, move |c| {
        // SAFETY: between fork and exec, only setrlimit on a value built before.
        unsafe {
            c.pre_exec(move || {
                let low = libc::rlimit { rlim_cur: launcher, rlim_max: hard };
                if libc::setrlimit(libc::RLIMIT_NOFILE, &low) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
    });
    let log = log_until_end(&d, "n");
    let seen = log.lines().find_map(|l| l.split_once(" NOFILE ").map(|(_, v)| v.trim().to_string()));
    assert_eq!(seen, Some(format!("{launcher} {hard}")), "{log}");
    // The control: the daemon did raise its own.
    let pid = d.child.as_ref().unwrap().id();
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let own: u64 = limits
        .lines()
        .find_map(|l| l.strip_prefix("Max open files"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("no open-file limit in {limits}"));
    assert!(own > launcher, "the daemon raised its soft limit to {own}");
    d.down();
}
