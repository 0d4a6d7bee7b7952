//! The host-wide process-event connector is open only while a group needs
//! it: cgroup groups list their members and say when they are empty, so
//! they never open it; a pgid group (no member list of its own) or a group
//! that records its events does, and the last one to end closes it and
//! ends its reader thread. Proved from this process's own fds and
//! threads, not only from the library's word. Every group is torn down
//! and counted (`leftover`), every pid the testkit printed proved gone.

#![cfg(target_os = "linux")]

use corral::{BackendKind, Command, Group, Reason, Stdio};
use std::io::{BufRead, BufReader};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use corral_testkit::test_support::{alive, assert_gone, is_root, listed_pids};

/// The connector is per process: these tests take turns.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn turn() -> std::sync::MutexGuard<'static, ()> {
    ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner())
}

/// `NETLINK_CONNECTOR`, the protocol column of `/proc/net/netlink`.
const NETLINK_CONNECTOR: &str = "11";

/// Inodes of this process's open connector sockets: its socket fds that
/// `/proc/net/netlink` lists with the connector protocol.
fn connector_sockets() -> Vec<u64> {
    let mine: Vec<u64> = std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .filter_map(|l| l.to_str()?.strip_prefix("socket:[")?.strip_suffix(']')?.parse().ok())
        .collect();
    let table = std::fs::read_to_string("/proc/net/netlink").unwrap();
    table
        .lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let inode: u64 = f.last()?.parse().ok()?;
            (f.get(1) == Some(&NETLINK_CONNECTOR) && mine.contains(&inode)).then_some(inode)
        })
        .collect()
}

/// Whether the connector's reader thread runs (the kernel keeps 15 bytes
/// of a thread's name).
fn reader_thread() -> bool {
    std::fs::read_dir("/proc/self/task")
        .unwrap()
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
        .any(|n| n.trim() == "corral-proc-eve")
}

/// Socket, thread and the library's own word agree that the connector is
/// `open`, within a deadline (a closed socket's thread ends just after).
fn assert_connector(open: bool, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let seen = (!connector_sockets().is_empty(), reader_thread(), corral::process_event_connector_open());
        if seen == (open, open, open) {
            return;
        }
        assert!(Instant::now() < deadline, "{what}: (socket, thread, library) = {seen:?}, expected all {open}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The connector needs CAP_NET_ADMIN; without it nothing here can be shown.
fn permitted() -> bool {
    let root = is_root();
    if !root {
        eprintln!("SKIPPED: the process-event connector needs root (CAP_NET_ADMIN)");
    }
    root
}

fn cgroup_backends() -> Vec<BackendKind> {
    corral::host_report()
        .backends
        .into_iter()
        .filter(|b| b.available.is_ok() && b.kind != BackendKind::Pgid)
        .map(|b| b.kind)
        .collect()
}

fn tk(args: &[&str]) -> Command {
    let mut c = Command::new(corral_testkit::binary());
    c.args(args).stdout(Stdio::piped()).stderr(Stdio::null()).stdin(Stdio::null());
    c
}

/// Every pid of the testkit's ready line (the leader and all it started),
/// with start times, so that a reused pid is not taken for a survivor.
fn ready_pids(g: &mut Group) -> Vec<(u32, u64)> {
    let mut line = String::new();
    BufReader::new(g.take_stdout().unwrap()).read_line(&mut line).unwrap();
    assert!(line.contains("\"ready\":true"), "{line}");
    let all = listed_pids(&line, "all");
    assert!(!all.is_empty(), "the ready line lists all pids: {line}");
    alive(std::iter::once(g.pid()).chain(all))
}

/// A tree with escapees: children, a setsid child and a double-forked
/// daemon re-parented to this process, all sleeping (and ending by
/// themselves if a test fails before it kills them).
const TREE: [&str; 8] = ["--children", "2", "--setsid", "1", "--double-fork", "1", "--sleep", "30.5"];

/// A cgroup group needs no connector, but for a pure v1 group in a
/// process that does not reap every orphan: the kernel shows a v1 zombie
/// in the root cgroup, and only lineage tells whose an escapee's zombie
/// is (`connector::needed`).
#[test]
fn cgroup_groups_but_pure_v1_ones_never_open_the_connector_and_all_leave_nothing_behind() {
    let _t = turn();
    if !permitted() {
        return;
    }
    for b in cgroup_backends() {
        let v1 = b == BackendKind::CgroupV1;
        assert_connector(false, &format!("[{b}] before"));
        let mut g = Group::builder().backend(b).spawn(tk(&TREE)).unwrap();
        let pids = ready_pids(&mut g);
        assert_connector(v1, &format!("[{b}] while a cgroup group runs"));
        assert_eq!(g.observes_lineage(), v1, "[{b}]");
        // The escapees are members, found through the cgroup.
        let members = g.members().unwrap();
        for (p, _) in &pids {
            assert!(members.contains(p), "[{b}] {p} is a member: {members:?}");
        }
        g.kill().unwrap();
        let o = g.wait();
        assert_eq!((o.reason, o.leftover), (Reason::Killed, 0), "[{b}]");
        match v1 {
            true => assert!(o.usage.processes_total >= Some(pids.len() as u64), "[{b}] counted: {:?}", o.usage),
            false => assert_eq!(o.usage.processes_total, None, "[{b}] not counted without the connector"),
        }
        assert_gone(&pids);
        assert_connector(false, &format!("[{b}] after"));
    }
}

#[test]
fn a_cgroup_group_that_ends_by_itself_with_escapees_gone_first_is_torn_down_clean() {
    let _t = turn();
    if !permitted() {
        return;
    }
    for b in cgroup_backends() {
        // Every process ends by itself at about the same time: the cgroup
        // empties while the escapees' zombies are this process's children,
        // to be reaped by the teardown.
        let mut g = Group::builder()
            .backend(b)
            .spawn(tk(&["--children", "3", "--setsid", "1", "--double-fork", "2", "--sleep", "0.3"]))
            .unwrap();
        let pids = ready_pids(&mut g);
        let o = g.wait();
        assert_eq!((o.reason, o.status.code, o.leftover), (Reason::Exited, Some(0), 0), "[{b}]");
        assert_gone(&pids);
        assert_connector(false, &format!("[{b}] after"));
    }
}

#[test]
fn a_pgid_group_opens_the_connector_and_the_last_one_to_end_closes_it() {
    let _t = turn();
    if !permitted() {
        return;
    }
    assert_connector(false, "before");
    let mut a = Group::builder().backend(BackendKind::Pgid).spawn(tk(&TREE)).unwrap();
    let mut pids = ready_pids(&mut a);
    assert_connector(true, "a pgid group runs");
    assert!(a.observes_lineage());
    let mut b = Group::builder().backend(BackendKind::Pgid).spawn(tk(&TREE)).unwrap();
    pids.extend(ready_pids(&mut b));
    a.kill().unwrap();
    let o = a.wait();
    assert_eq!((o.reason, o.leftover), (Reason::Killed, 0));
    assert_connector(true, "one of two pgid groups ended");
    b.kill().unwrap();
    let o = b.wait();
    assert_eq!((o.reason, o.leftover), (Reason::Killed, 0));
    assert_connector(false, "both pgid groups ended");
    assert_gone(&pids);

    // Opened again on demand, before the leader runs: a leader that forks
    // at once has every fork counted.
    let mut c = Group::builder().backend(BackendKind::Pgid).spawn(tk(&["--children", "3", "--sleep", "0.2"])).unwrap();
    let pids = ready_pids(&mut c);
    let o = c.wait();
    assert_eq!((o.reason, o.leftover), (Reason::Exited, 0));
    assert_eq!(o.usage.processes_total, Some(4), "the leader and its 3 children");
    assert_gone(&pids);
    assert_connector(false, "the reopened connector closed again");
}

#[test]
fn recording_events_or_counting_processes_holds_the_connector_for_the_group_s_life() {
    let _t = turn();
    if !permitted() {
        return;
    }
    let Some(&b) = cgroup_backends().first() else {
        eprintln!("SKIPPED: no cgroup backend here");
        return;
    };
    for (record, count) in [(true, false), (false, true)] {
        let what = format!("[{b}] record_events {record}, count_processes {count}");
        let mut g = Group::builder()
            .backend(b)
            .record_events(record)
            .count_processes(count)
            .spawn(tk(&["--children", "2", "--sleep", "0.5"]))
            .unwrap();
        let pids = ready_pids(&mut g);
        assert_connector(true, &what);
        assert!(g.observes_lineage(), "{what}");
        let o = g.wait();
        assert_eq!((o.reason, o.leftover), (Reason::Exited, 0), "{what}");
        assert_eq!(o.usage.processes_total, Some(3), "{what}: the leader and its 2 children");
        assert_gone(&pids);
        assert_connector(false, &format!("{what}: after"));
        if record {
            let events: Vec<corral::Event> = g.events().collect();
            for (p, _) in &pids {
                assert!(
                    events.iter().any(|e| matches!(e, corral::Event::Started { pid, .. } if pid == p)),
                    "{what}: {p}'s start held for the late subscriber: {events:?}"
                );
            }
        }
    }
}
