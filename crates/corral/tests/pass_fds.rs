//! `Command::pass_fd` and `Command::env_leader_pid`, on both spawn paths:
//! the leader finds the very socket at the number asked for, and the
//! variable holds its own pid (written in the child, between fork and
//! exec). One test, because the fork path is chosen through the process's
//! environment (`CORRAL_SPAWN=fork`).

#![cfg(target_os = "linux")]

use corral::{Command, Group, SpawnPath, Stdio};
use std::io::Read;
use std::os::fd::{AsRawFd, OwnedFd};

fn inode(fd: &impl AsRawFd) -> u64 {
    // SAFETY: a zeroed stat is a valid out-parameter.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: st is valid for writes; fd is open.
    assert_eq!(unsafe { libc::fstat(fd.as_raw_fd(), &mut st) }, 0);
    st.st_ino
}

/// What the leader says: its pid, LISTEN_PID, what fd 3 and fd 5 are.
fn run(listener: &std::net::TcpListener) -> (Vec<String>, SpawnPath) {
    let mut c = Command::new("sh");
    c.args(["-c", "echo \"$$ $LISTEN_PID $(readlink /proc/$$/fd/3) $(readlink /proc/$$/fd/5)\""])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .env("LISTEN_PID", "stale");
    c.pass_fd(OwnedFd::from(listener.try_clone().unwrap()), 3);
    c.pass_fd(OwnedFd::from(listener.try_clone().unwrap()), 5);
    c.env_leader_pid("LISTEN_PID");
    let mut g = Group::spawn(c).unwrap();
    let mut out = String::new();
    g.take_stdout().unwrap().read_to_string(&mut out).unwrap();
    let o = g.wait();
    assert_eq!(o.leftover, 0);
    assert_eq!(o.status.code, Some(0));
    (out.split_whitespace().map(String::from).collect(), g.spawn_path())
}

#[test]
fn passed_fds_sit_at_their_numbers_and_the_pid_variable_is_the_leaders_own() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let want = format!("socket:[{}]", inode(&listener));
    for path in [SpawnPath::Clone3, SpawnPath::Fork] {
        if path == SpawnPath::Fork {
            // The only test of this binary: no other thread reads the environment.
            std::env::set_var("CORRAL_SPAWN", "fork");
        }
        let (words, took) = run(&listener);
        assert_eq!(took, path);
        assert_eq!(words.len(), 4, "{words:?}");
        assert_eq!(words[0], words[1], "LISTEN_PID is the leader's pid on {path}: {words:?}");
        assert_eq!(words[2], want, "fd 3 on {path}");
        assert_eq!(words[3], want, "fd 5 on {path}");
    }
}
