//! What the isolation and user-namespace tests share: the backends to run
//! on, a command run isolated to its end, and a leader dropped to
//! `nobody`. Process checks and temp dirs are in
//! `corral_testkit::test_support`, which the CLI's tests share too.

use corral::{BackendKind, Command, Group, Isolation};
use std::io::Read;
use std::time::Duration;

/// The host's `nobody`.
const NOBODY: u32 = 65534;

/// The backends this host can hold a group with.
pub fn backends() -> Vec<BackendKind> {
    corral::host_report().backends.into_iter().filter(|b| b.available.is_ok()).map(|b| b.kind).collect()
}

/// Runs `c` under `iso` to its end (a minute at most); returns its stdout,
/// and checks that nothing of the group is left.
pub fn run(iso: Isolation, c: Command) -> String {
    let mut g = Group::builder().isolate(iso).timeout(Duration::from_secs(60)).spawn(c).unwrap();
    let mut out = String::new();
    g.take_stdout().unwrap().read_to_string(&mut out).unwrap();
    let o = g.wait();
    assert_eq!(o.leftover, 0);
    out
}

/// `c` with the leader's uid and gid dropped to `nobody`.
pub fn as_nobody(mut c: Command) -> Command {
    c.uid(NOBODY).gid(NOBODY);
    c
}
