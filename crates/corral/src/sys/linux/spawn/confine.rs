//! The isolation steps of the child, between `clone3` and `exec`: raw
//! syscalls on what `isolate.rs` prepared, nothing allocated. The child
//! was cloned into its new namespaces already (`CLONE_NEW*`).
//!
//! Order matters:
//! - in a user namespace, nothing before its maps are written (`userns.rs`);
//! - mounts and the hostname need CAP_SYS_ADMIN, and the bounding set
//!   needs CAP_SETPCAP: both before the user switch;
//! - `PR_SET_KEEPCAPS` before the switch keeps the permitted set across
//!   it, so that the kept capabilities can be raised as ambient ones after
//!   it (the only way a non-root program keeps one through `exec`);
//! - `no_new_privs` last: it would not stop the switch, but it is the
//!   promise about what comes after.

use super::child::{fail, fail_at, Step};
use super::isolate::Prepared;
use super::plan::Plan;

fn errno() -> i32 {
    // SAFETY: errno is thread-local and always readable.
    unsafe { *libc::__errno_location() }
}

/// `struct __user_cap_header_struct`.
#[repr(C)]
struct CapHeader {
    version: u32,
    pid: libc::c_int,
}

/// `struct __user_cap_data_struct`; version 3 takes two of them (caps
/// 0-31, 32-63).
#[repr(C)]
#[derive(Clone, Copy, Default)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

const CAP_V3: u32 = 0x2008_0522;

/// Namespaces joined, mounts, network, hostname, bounding set: the steps
/// that need the controller's privileges.
pub(super) unsafe fn before_user_switch(p: &Plan, iso: &Prepared) {
    // SAFETY: raw syscalls on values the parent prepared (module note).
    unsafe {
        if let Some(u) = &iso.userns {
            super::userns::enter(p, u);
        }
        if let Some(fd) = iso.netns_fd() {
            if libc::setns(fd, libc::CLONE_NEWNET) != 0 {
                fail(p, Step::Network, errno());
            }
        }
        for (i, m) in iso.mounts.iter().enumerate() {
            let opt = |c: &Option<std::ffi::CString>| c.as_ref().map_or(std::ptr::null(), |c| c.as_ptr());
            let r = libc::mount(opt(&m.source), m.target.as_ptr(), opt(&m.fstype), m.flags, opt(&m.data).cast());
            if r != 0 {
                fail_at(p, Step::Mount, i as u32, errno());
            }
        }
        if let Some(root) = &iso.root {
            // The old root is stacked under the new one and detached at
            // once: nothing of the host stays reachable (pivot_root(2),
            // "pivot_root(".", ".")").
            if libc::chdir(root.as_ptr()) != 0
                || libc::syscall(libc::SYS_pivot_root, c".".as_ptr(), c".".as_ptr()) != 0
                || libc::umount2(c".".as_ptr(), libc::MNT_DETACH) != 0
                || libc::chdir(c"/".as_ptr()) != 0
            {
                fail(p, Step::Root, errno());
            }
        }
        if iso.loopback && loopback_up().is_err() {
            fail(p, Step::Network, errno());
        }
        if let Some(h) = &iso.hostname {
            if libc::sethostname(h.as_ptr(), h.as_bytes().len()) != 0 {
                fail(p, Step::Hostname, errno());
            }
        }
        if let Some(keep) = iso.keep_caps {
            for cap in 0..=iso.last_cap.min(63) {
                if keep & (1 << cap) == 0 && libc::prctl(libc::PR_CAPBSET_DROP, cap as libc::c_ulong, 0, 0, 0) != 0 {
                    fail(p, Step::Capabilities, errno());
                }
            }
            if p.uid.is_some() && libc::prctl(libc::PR_SET_KEEPCAPS, 1, 0, 0, 0) != 0 {
                fail(p, Step::Capabilities, errno());
            }
        }
    }
}

/// The capability sets and `no_new_privs`, after the user switch.
pub(super) unsafe fn after_user_switch(p: &Plan, iso: &Prepared) {
    // SAFETY: raw syscalls on values on this stack and in the plan.
    unsafe {
        if let Some(keep) = iso.keep_caps {
            let mut hdr = CapHeader { version: CAP_V3, pid: 0 };
            let mut data = [CapData::default(); 2];
            if libc::syscall(libc::SYS_capget, &mut hdr as *mut CapHeader, data.as_mut_ptr()) != 0 {
                fail(p, Step::Capabilities, errno());
            }
            // Only what is still permitted can be kept.
            for (i, d) in data.iter_mut().enumerate() {
                let want = (keep >> (32 * i)) as u32 & d.permitted;
                *d = CapData { effective: want, permitted: want, inheritable: want };
            }
            if libc::syscall(libc::SYS_capset, &mut hdr as *mut CapHeader, data.as_ptr()) != 0 {
                fail(p, Step::Capabilities, errno());
            }
            if libc::prctl(libc::PR_CAP_AMBIENT, libc::PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) != 0 {
                fail(p, Step::Capabilities, errno());
            }
            // Ambient: a kept capability survives the exec of a program
            // that is not root and has no file capabilities.
            for cap in 0..=iso.last_cap.min(63) {
                let held = data[(cap / 32) as usize].permitted & (1 << (cap % 32)) != 0;
                if held
                    && libc::prctl(libc::PR_CAP_AMBIENT, libc::PR_CAP_AMBIENT_RAISE, cap as libc::c_ulong, 0, 0) != 0
                {
                    fail(p, Step::Capabilities, errno());
                }
            }
        }
        if iso.no_new_privs && libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 {
            fail(p, Step::NoNewPrivileges, errno());
        }
        if let Some(prog) = &iso.seccomp {
            if !super::seccomp::install(prog) {
                fail(p, Step::Seccomp, errno());
            }
        }
    }
}

/// Brings `lo` up in a new network namespace, where it starts down.
unsafe fn loopback_up() -> Result<(), ()> {
    // SAFETY: a socket of our own and an ifreq on this stack.
    unsafe {
        let s = libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0);
        if s < 0 {
            return Err(());
        }
        let mut ifr: libc::ifreq = std::mem::zeroed();
        ifr.ifr_name[0] = b'l' as libc::c_char;
        ifr.ifr_name[1] = b'o' as libc::c_char;
        let mut ok = libc::ioctl(s, libc::SIOCGIFFLAGS, &mut ifr) == 0;
        if ok {
            ifr.ifr_ifru.ifru_flags |= (libc::IFF_UP | libc::IFF_RUNNING) as libc::c_short;
            ok = libc::ioctl(s, libc::SIOCSIFFLAGS, &ifr) == 0;
        }
        let e = errno();
        libc::close(s);
        *libc::__errno_location() = e;
        if ok {
            Ok(())
        } else {
            Err(())
        }
    }
}
