//! Who the leader runs as on std's fork path: supplementary groups, gid,
//! uid, and the umask.
//!
//! std sets the uid and gid itself, but before any pre-exec hook runs, and
//! its `groups` is unstable: a hook cannot call `setgroups` once the uid
//! is dropped. So when supplementary groups are asked for, the whole
//! switch happens in one hook, in the only order that works: `setgroups`,
//! then `setgid`, then `setuid` (each needs the privilege the next one
//! gives up). Without them, std's own switch is kept (it drops the
//! supplementary groups when root switches the uid).
//!
//! Trap: on Linux the raw syscalls, not glibc's wrappers, which would try
//! to switch every thread of the process (the child has only one, but the
//! wrapper's bookkeeping is not async-signal-safe).

use std::io;
use std::os::unix::process::CommandExt;

/// The identity settings of a corral `Command`.
#[derive(Debug, Default)]
pub(crate) struct Identity {
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    pub groups: Option<Vec<u32>>,
    pub umask: Option<u32>,
}

/// Sets `id` on a std command.
pub(crate) fn apply_to_std(c: &mut std::process::Command, id: Identity) {
    let Identity { uid, gid, groups, umask } = id;
    match groups {
        None => {
            if let Some(u) = uid {
                c.uid(u);
            }
            if let Some(g) = gid {
                c.gid(g);
            }
        }
        Some(groups) => {
            let groups: Vec<libc::gid_t> = groups.into_iter().map(|g| g as libc::gid_t).collect();
            // SAFETY: the closure makes raw syscalls on values it owns
            // (allocated before the fork), which is async-signal-safe.
            unsafe {
                c.pre_exec(move || switch(&groups, gid, uid));
            }
        }
    }
    if let Some(mask) = umask {
        // SAFETY: umask is async-signal-safe and cannot fail.
        unsafe {
            c.pre_exec(move || {
                libc::umask(mask as libc::mode_t);
                Ok(())
            });
        }
    }
}

/// `setgroups`, `setgid`, `setuid`, in that order. Async-signal-safe:
/// an error is the bare errno (building anything richer would allocate).
pub(crate) fn switch(groups: &[libc::gid_t], gid: Option<u32>, uid: Option<u32>) -> io::Result<()> {
    if set_groups(groups) != 0 {
        return Err(io::Error::last_os_error());
    }
    if let Some(g) = gid {
        if set_gid(g) != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    if let Some(u) = uid {
        if set_uid(u) != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

#[cfg(target_os = "linux")]
fn set_groups(groups: &[libc::gid_t]) -> libc::c_long {
    // SAFETY: the pointer and length describe a live slice.
    unsafe { libc::syscall(libc::SYS_setgroups, groups.len(), groups.as_ptr()) }
}

#[cfg(target_os = "linux")]
fn set_gid(gid: u32) -> libc::c_long {
    // SAFETY: a plain syscall.
    unsafe { libc::syscall(libc::SYS_setgid, gid) }
}

#[cfg(target_os = "linux")]
fn set_uid(uid: u32) -> libc::c_long {
    // SAFETY: a plain syscall.
    unsafe { libc::syscall(libc::SYS_setuid, uid) }
}

#[cfg(not(target_os = "linux"))]
fn set_groups(groups: &[libc::gid_t]) -> libc::c_long {
    // SAFETY: the pointer and length describe a live slice. A fork child
    // has one thread, so libc's wrapper is a plain syscall here.
    unsafe { libc::setgroups(groups.len() as _, groups.as_ptr()) as libc::c_long }
}

#[cfg(not(target_os = "linux"))]
fn set_gid(gid: u32) -> libc::c_long {
    // SAFETY: as above.
    unsafe { libc::setgid(gid as libc::gid_t) as libc::c_long }
}

#[cfg(not(target_os = "linux"))]
fn set_uid(uid: u32) -> libc::c_long {
    // SAFETY: as above.
    unsafe { libc::setuid(uid as libc::uid_t) as libc::c_long }
}
