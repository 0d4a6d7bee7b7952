//! The leader's access token (`Isolation::token`): read back from the
//! running leader with the test's own `OpenProcessToken` and
//! `GetTokenInformation`, and the leader must still do its work: print
//! through its pipe, open the group's stop event and end by it.
//!
//! Wine runs `CreateRestrictedToken` and `CreateProcessAsUserW` (the
//! leader starts through corral's own path there too), but its tokens
//! carry no real integrity level or restricting SIDs: where Wine answers
//! otherwise than Windows must, the read-back says SKIPPED with what Wine
//! gave, and the rest of the test still runs.

#![cfg(windows)]

mod windows_support;

use corral::{Group, Isolation, Stdio, Token};
use std::io::{BufRead, BufReader};
use std::mem::size_of;
use std::time::Duration;
use windows_support::{assert_all_gone, testkit, wine, Proc, Ready};
use windows_sys::Win32::Foundation::{CloseHandle, HANDLE};
use windows_sys::Win32::Security::{
    GetSidSubAuthority, GetSidSubAuthorityCount, GetTokenInformation, IsTokenRestricted, TokenIntegrityLevel,
    TokenPrivileges, TOKEN_INFORMATION_CLASS, TOKEN_MANDATORY_LABEL, TOKEN_PRIVILEGES, TOKEN_QUERY,
};
use windows_sys::Win32::System::Threading::{OpenProcess, OpenProcessToken, PROCESS_QUERY_LIMITED_INFORMATION};

/// `SECURITY_MANDATORY_LOW_RID` and `SECURITY_MANDATORY_MEDIUM_RID`.
const LOW: u32 = 0x1000;
const MEDIUM: u32 = 0x2000;

/// What the test reads from a running process's primary token.
#[derive(Debug)]
struct Seen {
    integrity: u32,
    restricted: bool,
    privileges: u32,
}

fn info(t: HANDLE, class: TOKEN_INFORMATION_CLASS) -> Vec<usize> {
    let mut buf = vec![0usize; 512];
    let mut len = 0u32;
    // SAFETY: `buf` is writable and aligned for the class's structure.
    let ok = unsafe {
        GetTokenInformation(t, class, buf.as_mut_ptr().cast(), (buf.len() * size_of::<usize>()) as u32, &mut len)
    };
    assert!(ok != 0, "GetTokenInformation({class}): {}", std::io::Error::last_os_error());
    buf
}

fn token_of(pid: u32) -> Seen {
    // SAFETY: no pointers; checked.
    let p = unsafe { OpenProcess(PROCESS_QUERY_LIMITED_INFORMATION, 0, pid) };
    assert!(!p.is_null(), "OpenProcess({pid}): {}", std::io::Error::last_os_error());
    let mut t = std::ptr::null_mut();
    // SAFETY: `p` is live; `t` is writable.
    let ok = unsafe { OpenProcessToken(p, TOKEN_QUERY, &mut t) };
    assert!(ok != 0, "OpenProcessToken({pid}): {}", std::io::Error::last_os_error());
    let label = info(t, TokenIntegrityLevel);
    // SAFETY: the buffer starts with a TOKEN_MANDATORY_LABEL whose SID
    // points into it; the last sub-authority is the level.
    let integrity = unsafe {
        let sid = (*label.as_ptr().cast::<TOKEN_MANDATORY_LABEL>()).Label.Sid;
        let n = *GetSidSubAuthorityCount(sid);
        *GetSidSubAuthority(sid, u32::from(n) - 1)
    };
    let privs = info(t, TokenPrivileges);
    // SAFETY: the buffer starts with a TOKEN_PRIVILEGES.
    let privileges = unsafe { (*privs.as_ptr().cast::<TOKEN_PRIVILEGES>()).PrivilegeCount };
    // SAFETY: `t` is a live token with TOKEN_QUERY.
    let restricted = unsafe { IsTokenRestricted(t) } != 0;
    // SAFETY: both handles are ours, closed once.
    unsafe {
        CloseHandle(t);
        CloseHandle(p);
    }
    Seen { integrity, restricted, privileges }
}

/// Runs the testkit under `token`, reads its token back, then stops the
/// group through its stop event, which the leader must still be able to
/// open and wait on.
fn run_under(token: Token) -> Seen {
    let mut cmd = corral::Command::new(testkit());
    cmd.args(["--sleep", "60"]).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::null());
    let mut group = Group::builder()
        .isolate(Isolation::new().token(token))
        .spawn(cmd)
        .unwrap_or_else(|e| panic!("spawn under a {token} token: {e}"));
    let mut out = BufReader::new(group.take_stdout().expect("stdout"));
    let mut line = String::new();
    out.read_line(&mut line).expect("read the ready line");
    let ready = Ready::parse(line.trim());
    assert_eq!(ready.pid, group.pid());
    let procs: Vec<Proc> = ready.every_pid().into_iter().filter_map(Proc::open).collect();
    let seen = token_of(group.pid());
    group.stop();
    let o = group.wait_timeout(Duration::from_secs(60)).expect("the group ends by its stop event");
    assert_eq!(o.leftover, 0, "{o:?}");
    assert_eq!(o.status.code, Some(0), "the leader ended by the stop event, not by the kill: {o:?}");
    assert_all_gone(&procs);
    seen
}

#[test]
fn a_low_integrity_leader_runs_at_low_without_privileges() {
    let seen = run_under(Token::LowIntegrity);
    if wine() && seen.integrity != LOW {
        eprintln!("SKIPPED read-back under Wine (real Windows only): the token says {seen:?}, not Low integrity");
        return;
    }
    assert_eq!(seen.integrity, LOW, "{seen:?}");
    assert!(!seen.restricted, "{seen:?}");
    // DISABLE_MAX_PRIVILEGE keeps SeChangeNotifyPrivilege only.
    assert!(seen.privileges <= 1, "{seen:?}");
}

#[test]
fn a_restricted_leader_has_restricting_sids_and_no_privileges() {
    let seen = run_under(Token::Restricted);
    if wine() && !seen.restricted {
        eprintln!("SKIPPED read-back under Wine (real Windows only): the token says {seen:?}, not restricted");
        return;
    }
    assert!(seen.restricted, "{seen:?}");
    assert!(seen.privileges <= 1, "{seen:?}");
    // Restricted, not lowered: the level stays the caller's (Medium, or
    // High when the test runs elevated).
    assert!(seen.integrity >= MEDIUM, "{seen:?}");
}

#[test]
fn a_token_needs_corrals_own_command() {
    let e = Group::builder()
        .isolate(Isolation::new().token(Token::Restricted))
        .spawn(windows_support::command(&["--sleep", "1"]))
        .unwrap_err();
    assert_eq!(e.kind(), corral::ErrorKind::InvalidInput, "{e}");
    assert!(e.to_string().contains("needs a corral::Command leader"), "{e}");
}
