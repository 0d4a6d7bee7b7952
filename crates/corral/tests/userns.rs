//! User namespaces on real processes: a leader that is `nobody` on the
//! host is root inside its own user, PID, mount and network namespaces
//! and still cannot touch the host's root-owned files; root gets every
//! other key inside a user namespace too; a setsid escapee inside user
//! and PID namespaces dies with the group. Each test proves that every
//! pid it saw is gone and removes its temp dirs.
//!
//! The tests run as root and drop the leader to `nobody` with the
//! library's uid/gid (the unprivileged *controller* is covered by the
//! CLI's tests, under `setpriv`). Elsewhere each prints SKIPPED.

#![cfg(target_os = "linux")]

use corral::{Bind, Command, ErrorKind, Group, Isolation, Network, Stdio, UserMap};
use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

mod support;

use corral_testkit::test_support::{alive, assert_gone, is_root, DiskDir};
use support::{as_nobody, backends, run};

fn usable() -> bool {
    if !is_root() {
        eprintln!("SKIPPED: these tests run as root and drop the leader to nobody");
        return false;
    }
    if let Err(e) = Isolation::new().user(true).check() {
        eprintln!("SKIPPED: this host has no user namespaces: {e}");
        return false;
    }
    true
}

fn bash(script: &str) -> Command {
    let mut c = Command::new("bash");
    c.args(["-c", script]).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::null());
    c
}

/// `key=value` of a line the script printed.
fn value<'a>(out: &'a str, key: &str) -> &'a str {
    out.lines().find_map(|l| l.strip_prefix(key).and_then(|v| v.strip_prefix('='))).unwrap_or("").trim()
}

/// A field of /proc/PID/status, whitespace collapsed.
fn host_status(pid: u32, field: &str) -> String {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let v = s.lines().find_map(|l| l.strip_prefix(field)).unwrap_or("");
    v.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The mask of every capability this kernel knows.
fn every_capability() -> u64 {
    let last: u32 = std::fs::read_to_string("/proc/sys/kernel/cap_last_cap").unwrap().trim().parse().unwrap();
    u64::MAX >> (63 - last)
}

/// A directory of this test's own (see `DiskDir`) that `nobody` may enter.
fn nobody_dir(name: &str) -> DiskDir {
    let d = DiskDir::new(&format!("userns-{name}"));
    std::fs::set_permissions(d.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    d
}

/// A root-owned file with `mode` in `dir`.
fn root_file(dir: &DiskDir, name: &str, mode: u32) -> PathBuf {
    let p = dir.path().join(name);
    std::fs::write(&p, "host\n").unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
    p
}

/// What the probe script prints: who it is inside, what it sees, what it
/// may do to two root-owned host files and to a host port.
fn probe(file: &Path, secret: &Path, port: u16) -> String {
    format!(
        "echo uid=$(id -u) gid=$(id -g); echo map=$(cat /proc/self/uid_map); echo gmap=$(cat /proc/self/gid_map); \
         echo procs=$(ls /proc | grep -cE '^[0-9]+$'); echo tmp=$(ls -A /tmp | wc -l); \
         if echo x >> {f} 2>/dev/null; then echo append=yes; else echo append=no; fi; \
         if cat {s} >/dev/null 2>&1; then echo secret=read; else echo secret=denied; fi; \
         if (exec 3<>/dev/tcp/127.0.0.1/{port}) 2>/dev/null; then echo net=host; else echo net=none; fi; \
         echo cap=$(grep CapEff /proc/self/status | cut -f2); echo done",
        f = file.display(),
        s = secret.display()
    )
}

#[test]
fn a_nobody_leader_in_user_pid_mount_net_namespaces_is_root_inside_and_nothing_on_the_host() {
    if !usable() {
        return;
    }
    let dir = nobody_dir("host");
    let file = root_file(&dir, "owned-by-root", 0o644);
    let secret = root_file(&dir, "secret", 0o600);
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let script = format!("{}; exec sleep 30", probe(&file, &secret, port));
    // Root without a user namespace reaches all three: the test can fail.
    let control = run(Isolation::new(), bash(&probe(&file, &secret, port)));
    assert_eq!(
        (value(&control, "append"), value(&control, "secret"), value(&control, "net")),
        ("yes", "read", "host"),
        "{control}"
    );
    for b in backends() {
        let iso = Isolation::new().user(true).pid(true).mount(true).network(Network::None).private_tmp(true);
        let mut g = Group::builder().backend(b).isolate(iso).spawn(as_nobody(bash(&script))).unwrap();
        let mut lines = BufReader::new(g.take_stdout().unwrap());
        let mut out = String::new();
        while !out.ends_with("done\n") {
            let before = out.len();
            lines.read_line(&mut out).unwrap();
            assert!(out.len() > before, "[{b}] the probe ended early: {out}");
        }
        assert_eq!(value(&out, "uid"), "0 gid=0", "[{b}] root inside: {out}");
        assert_eq!(value(&out, "map"), "0 65534 1", "[{b}] {out}");
        assert_eq!(value(&out, "gmap"), "0 65534 1", "[{b}] {out}");
        let procs: usize = value(&out, "procs").parse().unwrap();
        assert!(procs <= 6, "[{b}] its own PID namespace: {out}");
        assert_eq!(value(&out, "tmp"), "0", "[{b}] {out}");
        // A new user namespace starts with the full set, whatever bounds the host's caller.
        assert_eq!(value(&out, "cap"), format!("{:016x}", every_capability()), "[{b}] every capability, inside");
        // ...and none of it reaches the host.
        assert_eq!(value(&out, "append"), "no", "[{b}] {out}");
        assert_eq!(value(&out, "secret"), "denied", "[{b}] {out}");
        assert_eq!(value(&out, "net"), "none", "[{b}] {out}");
        // The host sees nobody, without root's supplementary groups.
        assert_eq!(host_status(g.pid(), "Uid:"), "65534 65534 65534 65534", "[{b}]");
        assert_eq!(host_status(g.pid(), "Gid:"), "65534 65534 65534 65534", "[{b}]");
        assert_eq!(host_status(g.pid(), "Groups:"), "", "[{b}]");
        let members = alive(g.members().unwrap());
        g.kill().unwrap();
        let o = g.wait();
        assert_eq!(o.leftover, 0, "[{b}]");
        assert_gone(&members);
    }
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "host\nx\n", "only the control appended");
    drop(listener);
}

#[test]
fn as_root_a_user_namespace_takes_every_other_key() {
    if !usable() {
        return;
    }
    let ro = nobody_dir("ro");
    let src = nobody_dir("src");
    let dst = nobody_dir("dst");
    std::fs::write(src.path().join("hello"), "from the source\n").unwrap();
    let iso = Isolation::new()
        .user(true)
        .pid(true)
        .network(Network::None)
        .ipc(true)
        .hostname("corral-userns")
        .private_tmp(true)
        .read_only(ro.path())
        .bind(Bind::new(src.path(), dst.path()).read_only(true))
        .keep_capabilities(["CAP_NET_BIND_SERVICE"])
        .no_new_privileges(true);
    let script = format!(
        "echo uid=$(id -u); echo map=$(cat /proc/self/uid_map); echo host=$(cat /proc/sys/kernel/hostname); \
         echo tmp=$(ls -A /tmp | wc -l); if touch {ro}/x 2>/dev/null; then echo ro=no; else echo ro=yes; fi; \
         echo bind=$(cat {dst}/hello); if touch {dst}/x 2>/dev/null; then echo bindro=no; else echo bindro=yes; fi; \
         echo cap=$(grep CapEff /proc/self/status | cut -f2); echo nnp=$(grep NoNewPrivs /proc/self/status | cut -f2)",
        ro = ro.path().display(),
        dst = dst.path().display()
    );
    let out = run(iso, bash(&script));
    assert_eq!(value(&out, "uid"), "0", "{out}");
    assert_eq!(value(&out, "map"), "0 0 1", "root maps itself: {out}");
    assert_eq!(value(&out, "host"), "corral-userns", "{out}");
    assert_eq!(value(&out, "tmp"), "0", "{out}");
    assert_eq!(value(&out, "ro"), "yes", "{out}");
    assert_eq!(value(&out, "bind"), "from the source", "{out}");
    assert_eq!(value(&out, "bindro"), "yes", "{out}");
    assert_eq!(value(&out, "cap"), "0000000000000400", "{out}");
    assert_eq!(value(&out, "nnp"), "1", "{out}");
    assert!(!ro.path().join("x").exists() && !src.path().join("x").exists());
}

#[test]
fn a_setsid_escapee_inside_user_and_pid_namespaces_is_killed_at_teardown() {
    if !usable() {
        return;
    }
    for b in backends() {
        let script = "setsid sleep 30 </dev/null >/dev/null 2>&1 & echo ready; exec sleep 30";
        let iso = Isolation::new().user(true).pid(true);
        let mut g = Group::builder().backend(b).isolate(iso).spawn(as_nobody(bash(script))).unwrap();
        let mut line = String::new();
        BufReader::new(g.take_stdout().unwrap()).read_line(&mut line).unwrap();
        assert_eq!(line.trim(), "ready", "[{b}]");
        // Init, leader and escapee (in a session of its own), seen from the host.
        let sessions = |m: &[(u32, u64)]| {
            m.iter().map(|(p, _)| host_status(*p, "NSsid:")).collect::<std::collections::HashSet<_>>().len()
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut members = alive(g.members().unwrap());
        while (members.len() < 3 || sessions(&members) < 2) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
            members = alive(g.members().unwrap());
        }
        assert!(members.len() >= 3 && sessions(&members) >= 2, "[{b}] init, leader and escapee: {members:?}");
        g.kill().unwrap();
        let o = g.wait();
        assert_eq!(o.leftover, 0, "[{b}]");
        assert_gone(&members);
    }
}

#[test]
fn the_self_map_keeps_the_leaders_own_ids_and_no_capability() {
    if !usable() {
        return;
    }
    let script = "echo uid=$(id -u); echo map=$(cat /proc/self/uid_map); \
                  echo cap=$(grep CapEff /proc/self/status | cut -f2)";
    let out = run(Isolation::new().user_map(UserMap::Same).pid(true), as_nobody(bash(script)));
    assert_eq!(value(&out, "uid"), "65534", "{out}");
    assert_eq!(value(&out, "map"), "65534 65534 1", "{out}");
    assert_eq!(value(&out, "cap"), "0000000000000000", "{out}");
}

#[test]
fn supplementary_groups_in_a_user_namespace_are_refused_before_anything_starts() {
    if !usable() {
        return;
    }
    let dir = nobody_dir("refused");
    let marker = dir.path().join("started");
    let mut c = as_nobody(bash(&format!("touch {}", marker.display())));
    c.groups(&[100]);
    let e = Group::builder().isolate(Isolation::new().user(true)).spawn(c).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
    assert!(e.to_string().contains("supplementary groups cannot be set in a user namespace"), "{e}");
    assert!(e.hint_text().is_some_and(|h| h.contains("drop the supplementary groups")), "{e}");
    assert!(!marker.exists(), "nothing started");
}
