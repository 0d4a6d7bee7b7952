//! A group's seccomp filter, compiled to BPF in the parent by seccompiler
//! (its syscall table turns names into this architecture's numbers) and
//! installed by the child, after `no_new_privs`, as its last step before
//! `exec`: one raw `seccomp(2)` call on the prepared program.

use crate::{Seccomp, DEFAULT_DENY};
use seccompiler::{sock_filter, BpfProgram};
use std::io;

/// What corral itself calls between the filter and the program: kept by
/// an allow-list, whatever it names.
const CORRAL_NEEDS: &[&str] = &[
    "execve",
    "exit_group",
    "exit",
    "write",
    "close",
    "close_range",
    "fcntl",
    "prctl",
    "getppid",
    "chdir",
    "clone",
    "rt_sigprocmask",
    "rt_sigtimedwait",
    "wait4",
    "kill",
];

fn arch() -> io::Result<seccompiler::TargetArch> {
    std::env::consts::ARCH
        .try_into()
        .map_err(|_| io::Error::new(io::ErrorKind::Unsupported, "seccomp filters are not built for this architecture"))
}

/// The BPF program of `filter`; an unknown syscall name is an error that
/// names it.
pub(crate) fn compile(filter: &Seccomp) -> io::Result<BpfProgram> {
    let (names, deny): (Vec<String>, bool) = match filter {
        Seccomp::Default => (DEFAULT_DENY.iter().map(|s| s.to_string()).collect(), true),
        Seccomp::Deny(n) => (n.clone(), true),
        Seccomp::Allow(n) => (n.iter().cloned().chain(CORRAL_NEEDS.iter().map(|s| s.to_string())).collect(), false),
    };
    let mut names = names;
    names.sort();
    names.dedup();
    let eperm = serde_json::json!({ "errno": libc::EPERM });
    let (mismatch, matched) =
        if deny { (serde_json::json!("allow"), eperm) } else { (eperm, serde_json::json!("allow")) };
    let rules: Vec<_> = names.iter().map(|n| serde_json::json!({ "syscall": n })).collect();
    let json =
        serde_json::json!({ "group": { "mismatch_action": mismatch, "match_action": matched, "filter": rules } });
    let mut map = seccompiler::compile_from_json(json.to_string().as_bytes(), arch()?)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.to_string()))?;
    map.remove("group").ok_or_else(|| io::Error::other("seccomp filter: nothing compiled"))
}

/// `struct sock_fprog`.
#[repr(C)]
struct SockFprog {
    len: libc::c_ushort,
    filter: *const sock_filter,
}

/// Installs `prog` on the calling task. Async-signal-safe: one syscall on
/// memory the parent prepared.
pub(super) unsafe fn install(prog: &[sock_filter]) -> bool {
    let fprog = SockFprog { len: prog.len() as libc::c_ushort, filter: prog.as_ptr() };
    // SAFETY: fprog points at a live program for the duration of the call.
    unsafe { libc::syscall(libc::SYS_seccomp, libc::SECCOMP_SET_MODE_FILTER, 0, &fprog as *const SockFprog) == 0 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_list_and_named_lists_compile() {
        assert!(!compile(&Seccomp::Default).unwrap().is_empty());
        assert!(!compile(&Seccomp::Deny(vec!["mkdir".into()])).unwrap().is_empty());
        assert!(!compile(&Seccomp::Allow(vec!["read".into()])).unwrap().is_empty());
    }

    #[test]
    fn an_unknown_syscall_is_named() {
        let e = compile(&Seccomp::Deny(vec!["fly_to_the_moon".into()])).unwrap_err();
        assert!(e.to_string().contains("fly_to_the_moon"), "{e}");
    }
}
