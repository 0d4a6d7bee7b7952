//! corral's own spawn path (`clone3` on Linux) against what a std
//! `Command` user relies on: arguments, environment, working directory,
//! every kind of stdio, the user switch, exec errors, and that no fd the
//! controller did not mean to pass reaches the leader. A std `Command`
//! still works and takes the fork path. Every group is torn down and
//! counted (`leftover`).

#![cfg(target_os = "linux")]

use corral::{Command, ErrorKind, Group, Outcome, SpawnPath, Stdio};
use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::path::PathBuf;

/// Runs `sh -c script` in a group and returns its stdout and outcome.
fn sh(script: &str, setup: impl FnOnce(&mut Command)) -> (String, Outcome, SpawnPath) {
    let mut c = Command::new("sh");
    c.args(["-c", script]).stdin(Stdio::null()).stdout(Stdio::piped());
    setup(&mut c);
    let mut g = Group::spawn(c).unwrap();
    let mut out = String::new();
    g.take_stdout().unwrap().read_to_string(&mut out).unwrap();
    let o = g.wait();
    assert_eq!(o.leftover, 0);
    (out, o, g.spawn_path())
}

fn temp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("corral-spawn-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn a_corral_command_is_started_by_clone3_and_a_std_one_by_fork() {
    let (out, o, path) = sh("echo \"$0 $1 $CORRAL_GROUP\"", |c| {
        c.arg("one");
    });
    assert_eq!(path, SpawnPath::Clone3);
    assert_eq!(o.spawn, SpawnPath::Clone3);
    assert!(out.starts_with("one "), "{out}");
    assert!(out.trim_end().len() > "one ".len(), "CORRAL_GROUP is set: {out}");

    let mut std_cmd = std::process::Command::new("true");
    std_cmd.stdin(std::process::Stdio::null());
    let g = Group::spawn(std_cmd).unwrap();
    assert_eq!(g.spawn_path(), SpawnPath::Fork);
    assert_eq!(g.wait().status.code, Some(0));
}

#[test]
fn env_changes_apply_in_order_and_env_clear_starts_empty() {
    let (out, ..) = sh("echo \"$A-${B-unset}-${HOME-nohome}\"", |c| {
        c.env("A", "1").env("B", "2").env_remove("B");
    });
    assert!(out.starts_with("1-unset-"), "{out}");
    assert!(!out.trim_end().ends_with("-nohome"), "the controller's environment is inherited: {out}");
    // Cleared: only what the command sets (and CORRAL_GROUP). The program
    // is still found through the controller's PATH, as with std.
    let (out, ..) = sh("env | grep -v '^PWD=\\|^SHLVL=\\|^_=' | sort | tr '\\n' ' '", |c| {
        c.env("KEEP", "yes").env_clear().env("ONLY", "this");
    });
    let vars: Vec<&str> = out.split_whitespace().map(|kv| kv.split('=').next().unwrap()).collect();
    assert_eq!(vars, ["CORRAL_GROUP", "ONLY"], "{out}");
}

#[test]
fn the_working_directory_is_changed_before_exec() {
    let d = temp_dir("cwd");
    let (out, ..) = sh("pwd", |c| {
        c.current_dir(&d);
    });
    assert_eq!(out.trim_end(), d.canonicalize().unwrap().to_str().unwrap());
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn stdin_stdout_and_stderr_take_pipes_files_null_and_inherit() {
    let d = temp_dir("stdio");
    let file = d.join("err.txt");
    let mut c = Command::new("sh");
    c.args(["-c", "cat; echo to-err >&2; echo out"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&file).unwrap());
    let mut g = Group::spawn(c).unwrap();
    let mut input = g.take_stdin().unwrap();
    input.write_all(b"from-stdin\n").unwrap();
    drop(input);
    let mut out = String::new();
    g.take_stdout().unwrap().read_to_string(&mut out).unwrap();
    assert_eq!(g.wait().leftover, 0);
    assert_eq!(out, "from-stdin\nout\n");
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "to-err\n");
    // Null reads as end of file at once; inherited stderr is not a pipe of ours.
    let (out, ..) = sh("cat; echo done", |c| {
        c.stdin(Stdio::null()).stderr(Stdio::inherit());
    });
    assert_eq!(out, "done\n");
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn only_stdio_reaches_the_leader_even_fds_left_inheritable() {
    // An fd the controller opened without close-on-exec (as careless code
    // or a library might): the fork path's std would pass it on.
    let f = std::fs::File::open("/proc/self/status").unwrap();
    let fd = f.as_raw_fd();
    // SAFETY: clears FD_CLOEXEC on an fd this test owns.
    unsafe { libc::fcntl(fd, libc::F_SETFD, 0) };
    let (out, ..) = sh("ls /proc/self/fd", |_| {});
    let fds: Vec<i32> = out.split_whitespace().filter_map(|s| s.parse().ok()).collect();
    // 0-2, plus the one `ls` opens to list the directory.
    assert!(fds.iter().all(|&n| n <= 3), "leaked fds: {fds:?} (the test's was {fd})");
    drop(f);
}

#[test]
fn the_user_switch_drops_uid_gid_and_supplementary_groups() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipping: needs root to switch users");
        return;
    }
    let (out, o, _) = sh("id -u; id -g; id -G", |c| {
        c.uid(65534).gid(65534).current_dir("/");
    });
    assert_eq!(o.status.code, Some(0), "{out}");
    assert_eq!(out, "65534\n65534\n65534\n");
}

#[test]
fn exec_and_setup_failures_are_typed_errors() {
    let e = Group::spawn(Command::new("/definitely/not/here")).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
    let e = Group::spawn(Command::new("corral-no-such-program-in-path")).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
    let e = Group::spawn(Command::new("/etc/passwd")).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotExecutable, "{e}");
    let mut c = Command::new("true");
    c.current_dir("/definitely/not/a/dir");
    let e = Group::spawn(c).unwrap_err();
    assert!(e.to_string().contains("working directory"), "{e}");
    let mut c = Command::new("true");
    c.arg("a\0b");
    let e = Group::spawn(c).unwrap_err();
    assert!(e.to_string().contains("NUL"), "{e}");
}

fn open_file_limit() -> (u64, u64) {
    let mut r = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit writes into the struct we own.
    assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) }, 0);
    (r.rlim_cur, r.rlim_max)
}

fn set_open_file_soft_limit(soft: u64) {
    let r = libc::rlimit { rlim_cur: soft, rlim_max: open_file_limit().1 };
    // SAFETY: setrlimit reads the struct we own.
    assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &r) }, 0);
}

/// A daemon raises its own soft open-file limit; the services it starts
/// get the limit its launcher gave it back (hard limit untouched), on the
/// clone3 path and on the fork path alike.
#[test]
fn leaders_get_the_launchers_open_file_limit_back_after_a_raise() {
    let (soft, hard) = open_file_limit();
    // The launcher's limit must sit below the hard one for a raise to show.
    let launcher = if soft < hard { soft } else { (hard / 2).max(64) };
    set_open_file_soft_limit(launcher);
    corral::keep_open_file_limit_for_leaders();
    set_open_file_soft_limit(hard);
    let want = format!("{launcher} {hard}");

    let (out, o, path) = sh("echo \"$(ulimit -Sn) $(ulimit -Hn)\"", |_| {});
    assert_eq!(path, SpawnPath::Clone3);
    assert_eq!(o.status.code, Some(0));
    assert_eq!(out.trim(), want, "clone3 path");

    let mut std_cmd = std::process::Command::new("sh");
    std_cmd.args(["-c", "echo \"$(ulimit -Sn) $(ulimit -Hn)\""]).stdout(std::process::Stdio::piped());
    let mut g = Group::spawn(std_cmd).unwrap();
    assert_eq!(g.spawn_path(), SpawnPath::Fork);
    let mut out = String::new();
    g.take_stdout().unwrap().read_to_string(&mut out).unwrap();
    let o = g.wait();
    assert_eq!((o.status.code, o.leftover), (Some(0), 0));
    assert_eq!(out.trim(), want, "fork path");
    assert_eq!(open_file_limit(), (hard, hard), "the controller keeps its raised limit");
}
