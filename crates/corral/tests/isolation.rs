//! Isolation on real processes and real kernel features: a PID namespace
//! that shows only the group (and still kills a setsid escapee), a
//! network namespace without the host's loopback, read-only paths, a
//! private /tmp that leaves no mount behind, dropped capabilities,
//! no_new_privs against a setuid binary, a hostname. Each test proves
//! that every pid it saw is gone, and removes its temp dirs.
//!
//! Namespaces need root: elsewhere each test prints SKIPPED and returns.

#![cfg(target_os = "linux")]

use corral::{Bind, Command, ErrorKind, Group, Isolation, Network, Stdio};
use std::path::Path;
use std::time::{Duration, Instant};

mod support;

use corral_testkit::require_root;
use corral_testkit::test_support::{alive, assert_gone, is_root, DiskDir};
use support::{as_nobody, backends, run};

const ROOT: &str = "namespaces and mounts need root";

fn sh(script: &str) -> Command {
    let mut c = Command::new("/bin/sh");
    c.args(["-c", script]).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::null());
    c
}

fn mountinfo() -> String {
    std::fs::read_to_string("/proc/self/mountinfo").unwrap()
}

#[test]
fn in_a_pid_namespace_the_group_sees_only_itself_and_a_setsid_escapee_is_killed() {
    require_root!(ROOT);
    for b in backends() {
        let script = "setsid sleep 30 </dev/null >/dev/null 2>&1 & \
                      echo $(ls /proc | grep -E '^[0-9]+$'); echo \"$$\"; exec sleep 30";
        let mut g = Group::builder().backend(b).isolate(Isolation::new().pid(true)).spawn(sh(script)).unwrap();
        let mut lines = std::io::BufReader::new(g.take_stdout().unwrap());
        let mut seen = String::new();
        let mut me = String::new();
        std::io::BufRead::read_line(&mut lines, &mut seen).unwrap();
        std::io::BufRead::read_line(&mut lines, &mut me).unwrap();
        let pids: Vec<u32> = seen.split_whitespace().map(|p| p.parse().unwrap()).collect();
        // The init (1), the shell (2), the escapee, ls and grep: never the
        // host's hundreds.
        assert!(pids.contains(&1) && pids.len() <= 8, "[{b}] /proc inside shows {pids:?}");
        assert_eq!(me.trim(), "2", "[{b}] the leader is not PID 1: corral's init is");
        let comm = std::fs::read_to_string(format!("/proc/{}/comm", g.pid())).unwrap();
        assert_eq!(comm.trim(), "corral-init", "[{b}]");
        // The escapee is a member seen from the host: leader, init, sleeper.
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut members = alive(g.members().unwrap());
        while members.len() < 3 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
            members = alive(g.members().unwrap());
        }
        assert!(members.len() >= 3, "[{b}] init, leader and escapee: {members:?}");
        g.kill().unwrap();
        let o = g.wait();
        assert_eq!(o.leftover, 0, "[{b}]");
        assert_gone(&members);
    }
}

#[test]
fn the_pid_namespace_init_forwards_a_stop_and_exits_with_the_leaders_code() {
    require_root!(ROOT);
    let iso = Isolation::new().pid(true);
    let script = "trap 'echo got-term; exit 7' TERM; echo ready; while :; do sleep 0.1; done";
    let mut g = Group::builder()
        .isolate(iso)
        .stop(corral::StopPolicy::new(corral::Signal::TERM, Duration::from_secs(20)))
        .spawn(sh(script))
        .unwrap();
    let mut lines = std::io::BufReader::new(g.take_stdout().unwrap());
    let mut l = String::new();
    std::io::BufRead::read_line(&mut lines, &mut l).unwrap();
    assert_eq!(l.trim(), "ready");
    let members = alive(g.members().unwrap());
    // To the init alone: it forwards to the leader.
    // SAFETY: kill(2) on the group's own init.
    assert_eq!(unsafe { libc::kill(g.pid() as i32, libc::SIGTERM) }, 0);
    let o = g.wait_timeout(Duration::from_secs(30)).expect("the leader acts on the forwarded TERM");
    assert_eq!(o.status.code, Some(7), "{o:?}");
    assert_eq!(o.leftover, 0);
    assert_gone(&members);
}

#[test]
fn under_net_none_a_connection_to_a_host_port_fails() {
    require_root!(ROOT);
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let script = format!(
        "if (exec 3<>/dev/tcp/127.0.0.1/{port}) 2>/dev/null; then echo connected; else echo refused; fi; \
         cat /sys/class/net/lo/operstate 2>/dev/null; ls /sys/class/net"
    );
    let bash = || {
        let mut b = Command::new("bash");
        b.args(["-c", &script]).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::null());
        b
    };
    // The same probe reaches the port from the host's network...
    let out = run(Isolation::new().pid(true), bash());
    assert!(out.starts_with("connected"), "{out}");
    // ...and not from a network namespace of its own.
    let out = run(Isolation::new().network(Network::None), bash());
    assert!(out.starts_with("refused"), "{out}");
    drop(listener);
}

#[test]
fn a_read_only_path_refuses_writes_and_a_private_tmp_is_empty_and_leaves_no_mount() {
    require_root!(ROOT);
    let dir = DiskDir::new("iso-ro");
    let marker = format!("corral-iso-{}", std::process::id());
    let before = mountinfo();
    let iso = Isolation::new().read_only(dir.path()).private_tmp(true);
    let script = format!(
        "if touch {d}/x 2>/dev/null; then echo wrote; else echo refused; fi; \
         echo tmp=$(ls -A /tmp | wc -l); touch /tmp/{marker} && echo tmp-writable; \
         grep -c ' /tmp ' /proc/self/mountinfo",
        d = dir.path().display()
    );
    let out = run(iso, sh(&script));
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "refused", "{out}");
    assert_eq!(lines[1], "tmp=0", "a private /tmp starts empty: {out}");
    assert_eq!(lines[2], "tmp-writable", "{out}");
    assert!(!dir.path().join("x").exists());
    assert!(!Path::new("/tmp").join(&marker).exists(), "the private /tmp's file is not on the host");
    let after = mountinfo();
    assert!(!after.contains(&dir.path().display().to_string()), "no mount of the group is left on the host:\n{after}");
    assert_eq!(before.lines().count(), after.lines().count(), "the host's mount table is unchanged");
    // Without isolation the same write goes through: the test can fail.
    let out = run(Isolation::new(), sh(&format!("touch {}/x && echo wrote", dir.path().display())));
    assert_eq!(out.trim(), "wrote");
}

#[test]
fn a_bind_mount_shows_its_source_and_a_read_only_one_refuses_writes() {
    require_root!(ROOT);
    let src = DiskDir::new("iso-bind-src");
    let dst = DiskDir::new("iso-bind-dst");
    std::fs::write(src.path().join("hello"), "from the source\n").unwrap();
    let script = format!(
        "cat {d}/hello; if touch {d}/new 2>/dev/null; then echo wrote; else echo refused; fi",
        d = dst.path().display()
    );
    let out = run(Isolation::new().bind(Bind::new(src.path(), dst.path())), sh(&script));
    assert_eq!(out, "from the source\nwrote\n");
    assert!(src.path().join("new").exists(), "a writable bind writes through to the source");
    let out = run(Isolation::new().bind(Bind::new(src.path(), dst.path()).read_only(true)), sh(&script));
    assert_eq!(out, "from the source\nrefused\n");
    assert!(!mountinfo().contains(&dst.path().display().to_string()));
}

fn status_field(out: &str, field: &str) -> String {
    out.lines().find_map(|l| l.strip_prefix(field)).map(|v| v.trim().to_string()).unwrap_or_default()
}

#[test]
fn dropped_capabilities_show_in_cap_eff() {
    require_root!(ROOT);
    let script = "grep -E '^Cap(Eff|Bnd|Amb|Prm):' /proc/self/status";
    let out = run(Isolation::new().keep_capabilities(["CAP_NET_BIND_SERVICE"]), sh(script));
    assert_eq!(status_field(&out, "CapEff:"), "0000000000000400", "{out}");
    assert_eq!(status_field(&out, "CapBnd:"), "0000000000000400", "{out}");
    let out = run(Isolation::new().keep_capabilities(Vec::<String>::new()), sh(script));
    assert_eq!(status_field(&out, "CapEff:"), "0000000000000000", "{out}");
    // A non-root leader keeps the kept one through exec, as an ambient capability.
    let out = run(Isolation::new().keep_capabilities(["net_bind_service"]), as_nobody(sh(script)));
    assert_eq!(status_field(&out, "CapEff:"), "0000000000000400", "{out}");
    assert_eq!(status_field(&out, "CapAmb:"), "0000000000000400", "{out}");
    // Without isolation, root keeps everything: the test can fail.
    let out = run(Isolation::new(), sh(script));
    assert_ne!(status_field(&out, "CapEff:"), "0000000000000400", "{out}");
}

#[test]
fn no_new_privileges_stops_a_setuid_binary_from_gaining_root() {
    require_root!(ROOT);
    let dir = DiskDir::new("iso-suid");
    // SAFETY: a zeroed statvfs is valid; the path is NUL-terminated.
    let nosuid = unsafe {
        let mut st: libc::statvfs = std::mem::zeroed();
        let c = std::ffi::CString::new(dir.path().as_os_str().as_encoded_bytes()).unwrap();
        libc::statvfs(c.as_ptr(), &mut st) == 0 && st.f_flag & libc::ST_NOSUID != 0
    };
    if nosuid {
        eprintln!("SKIPPED: {} is on a nosuid filesystem", dir.path().display());
        return;
    }
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let id = dir.path().join("id");
    std::fs::copy("/usr/bin/id", &id).unwrap();
    std::fs::set_permissions(&id, std::fs::Permissions::from_mode(0o4755)).unwrap();
    let script = format!("{} -u", id.display());
    // The setuid bit works here: the test can fail.
    let out = run(Isolation::new(), as_nobody(sh(&script)));
    if out.trim() != "0" {
        eprintln!("SKIPPED: a setuid copy does not raise privileges on this host ({out:?})");
        return;
    }
    let out = run(Isolation::new().no_new_privileges(true), as_nobody(sh(&script)));
    assert_eq!(out.trim(), "65534");
}

#[test]
fn a_uts_namespace_has_its_own_hostname_and_the_hosts_is_unchanged() {
    require_root!(ROOT);
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    let out = run(Isolation::new().hostname("corral-box").ipc(true), sh("cat /proc/sys/kernel/hostname"));
    assert_eq!(out.trim(), "corral-box");
    assert_eq!(std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap(), host);
}

#[test]
fn bad_isolation_is_refused_before_anything_starts() {
    let missing = Isolation::new().bind(Bind::new("/nonexistent/corral-src", "/tmp"));
    let e = Group::builder().isolate(missing).spawn(sh("exit 0")).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput);
    assert!(e.to_string().contains("/nonexistent/corral-src"), "{e}");
    let e = Group::builder().isolate(Isolation::new().keep_capabilities(["CAP_FLY"])).spawn(sh("exit 0")).unwrap_err();
    assert!(e.to_string().contains("CAP_FLY"), "{e}");
    if !is_root() {
        eprintln!("SKIPPED (the rest): namespaces need root");
        return;
    }
    let std_cmd = std::process::Command::new("true");
    let e = Group::builder().isolate(Isolation::new().pid(true)).spawn(std_cmd).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unsupported, "{e}");
    // A mount the kernel refuses names the mount: a directory onto a file.
    let dir = DiskDir::new("iso-badbind");
    std::fs::write(dir.path().join("file"), "").unwrap();
    let iso = Isolation::new().bind(Bind::new("/usr", dir.path().join("file")));
    let e = Group::builder().isolate(iso).spawn(sh("exit 0")).unwrap_err();
    assert!(e.to_string().contains("binding /usr to"), "{e}");
    assert!(!mountinfo().contains(&dir.path().display().to_string()));
}

/// A minimal root: a copy of dash as /bin/sh with the libraries `ldd`
/// names, and empty /proc and /tmp.
fn minimal_root(name: &str) -> Option<DiskDir> {
    let root = DiskDir::new(&format!("iso-{name}"));
    let ldd = std::process::Command::new("ldd").arg("/bin/dash").output().ok()?;
    if !ldd.status.success() {
        return None;
    }
    for dir in ["bin", "proc", "tmp"] {
        std::fs::create_dir_all(root.path().join(dir)).unwrap();
    }
    std::fs::copy("/bin/dash", root.path().join("bin/sh")).unwrap();
    for word in String::from_utf8_lossy(&ldd.stdout).split_whitespace() {
        if word.starts_with('/') && Path::new(word).exists() {
            let to = root.path().join(word.trim_start_matches('/'));
            std::fs::create_dir_all(to.parent().unwrap()).unwrap();
            std::fs::copy(word, &to).unwrap();
        }
    }
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(root.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    Some(root)
}

#[test]
fn a_new_root_hides_the_host_and_leaves_no_mount_behind() {
    require_root!(ROOT);
    let Some(root) = minimal_root("root") else {
        eprintln!("SKIPPED: no /bin/dash with ldd to build a minimal root from");
        return;
    };
    let iso = Isolation::new().root(root.path()).pid(true).private_tmp(true);
    let script = "for f in /*; do echo \"$f\"; done; [ -e /work ] && echo host-visible || echo host-hidden";
    let mut c = Command::new("/bin/sh");
    c.args(["-c", script]).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::null());
    let out = run(iso, c);
    assert!(out.contains("host-hidden"), "{out}");
    let entries: Vec<&str> = out.lines().filter(|l| l.starts_with('/')).collect();
    assert!(entries.contains(&"/bin") && entries.contains(&"/proc") && !entries.contains(&"/usr"), "{out}");
    assert!(!mountinfo().contains(&root.path().display().to_string()), "no mount of the new root is left on the host");
}

#[test]
fn a_root_that_is_not_usable_is_refused_before_anything_starts() {
    let dir = DiskDir::new("iso-badroot");
    let e = Group::builder().isolate(Isolation::new().root(dir.path())).spawn(sh("exit 0")).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput);
    assert!(e.to_string().contains("has no /bin/sh: it is not a usable root"), "{e}");
    std::fs::write(dir.path().join("file"), "").unwrap();
    let e = Group::builder().isolate(Isolation::new().root(dir.path().join("file"))).spawn(sh("exit 0")).unwrap_err();
    assert!(e.to_string().contains("is not a directory"), "{e}");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let e = Group::builder().isolate(Isolation::new().root(dir.path())).spawn(sh("exit 0")).unwrap_err();
    assert!(e.to_string().contains("writable by group or others"), "{e}");
}

#[test]
fn a_seccomp_deny_list_makes_the_call_fail_and_the_default_one_is_installed_with_no_new_privs() {
    require_root!(ROOT);
    let dir = DiskDir::new("iso-seccomp");
    let script = format!(
        "if mkdir {d}/x 2>/dev/null; then echo made; else echo denied; fi; grep -E '^(Seccomp|NoNewPrivs):' /proc/self/status",
        d = dir.path().display()
    );
    let deny = corral::Seccomp::Deny(vec!["mkdir".into(), "mkdirat".into()]);
    let out = run(Isolation::new().seccomp(deny), sh(&script));
    assert!(out.starts_with("denied"), "{out}");
    assert_eq!(status_field(&out, "Seccomp:"), "2", "{out}");
    assert_eq!(status_field(&out, "NoNewPrivs:"), "1", "a filter implies no_new_privs: {out}");
    assert!(!dir.path().join("x").exists());
    // The default deny-list leaves mkdir alone.
    let out = run(Isolation::new().seccomp(corral::Seccomp::Default), sh(&script));
    assert!(out.starts_with("made"), "{out}");
    assert_eq!(status_field(&out, "Seccomp:"), "2", "{out}");
}

#[test]
fn an_unknown_syscall_in_a_filter_is_refused_before_anything_starts() {
    require_root!(ROOT);
    let iso = Isolation::new().seccomp(corral::Seccomp::Deny(vec!["fly_to_the_moon".into()]));
    let e = Group::builder().isolate(iso).spawn(sh("exit 0")).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
    assert!(e.to_string().contains("fly_to_the_moon"), "{e}");
}

#[test]
fn windows_ui_restrictions_are_refused_on_linux() {
    let e = Group::builder().isolate(Isolation::new().ui_restrictions(true)).spawn(sh("exit 0")).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unsupported, "{e}");
    assert!(e.to_string().contains("UI restrictions are a limit of Windows jobs"), "{e}");
}

#[test]
fn a_windows_token_is_refused_on_linux_before_anything_starts() {
    let e =
        Group::builder().isolate(Isolation::new().token(corral::Token::LowIntegrity)).spawn(sh("exit 0")).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unsupported, "{e}");
    assert!(e.to_string().contains("a low-integrity token is a Windows access token; linux has none"), "{e}");
}

#[test]
fn a_working_set_limit_is_refused_on_linux_before_anything_starts() {
    let ws = corral::WorkingSet::new(1 << 20, 64 << 20);
    let e = Group::builder().limits(corral::Limits::new().working_set(ws)).spawn(sh("exit 0")).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unsupported, "{e}");
    assert!(e.to_string().contains("a working-set limit is a limit of Windows jobs; linux has no"), "{e}");
}
