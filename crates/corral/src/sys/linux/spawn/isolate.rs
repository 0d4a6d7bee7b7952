//! A group's isolation, prepared in the parent: the `clone3` namespace
//! flags, every mount as C strings, the hostname, the capability mask, an
//! open fd of a network namespace to join. The child (`confine.rs`,
//! `init.rs`) only reads this.
//!
//! Why the isolated child never shares the parent's memory: a PID
//! namespace needs an init that lives as long as the group and never
//! execs, so it cannot run on the parent's memory while the parent waits
//! for an `exec` (`CLONE_VM | CLONE_VFORK`). An isolated group is started
//! by a fork-like `clone3` instead; its page-table copy is the price of a
//! namespace, next to the mounts it makes anyway.

use crate::{Error, ErrorKind, Isolation, Network};
use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// One `mount(2)` call for the child.
pub(super) struct Mount {
    pub source: Option<CString>,
    pub target: CString,
    pub fstype: Option<CString>,
    pub flags: libc::c_ulong,
    pub data: Option<CString>,
    /// What it does, for an error message.
    pub what: String,
}

/// Everything the child does for isolation.
pub(super) struct Prepared {
    /// `CLONE_NEW*` flags for `clone3`.
    pub clone_flags: u64,
    /// PID 1 of the namespace is corral's init (see `init.rs`).
    pub pid_ns: bool,
    pub mounts: Vec<Mount>,
    /// Bring `lo` up in a new network namespace.
    pub loopback: bool,
    /// A network namespace to join (`setns`).
    pub netns: Option<OwnedFd>,
    pub hostname: Option<CString>,
    /// The capabilities kept, as a mask; `None` leaves them alone.
    pub keep_caps: Option<u64>,
    /// The kernel's highest capability number.
    pub last_cap: u32,
    pub no_new_privs: bool,
    /// The new root to `pivot_root` into, after the mounts.
    pub root: Option<CString>,
    /// The seccomp filter, installed last.
    pub seccomp: Option<seccompiler::BpfProgram>,
    /// A user namespace: the child waits for its maps first (`userns.rs`).
    pub userns: Option<super::userns::UserNs>,
}

impl Prepared {
    pub(super) fn netns_fd(&self) -> Option<RawFd> {
        self.netns.as_ref().map(|f| f.as_raw_fd())
    }
}

fn cpath(p: &Path) -> io::Result<CString> {
    CString::new(p.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "a NUL byte in a path"))
}

/// The per-mount flags `path`'s mount has now, which a read-only remount
/// must repeat (a remount that drops `nosuid` or `nodev` would weaken the
/// mount, and inside a user namespace it is refused).
fn kept_flags(path: &Path) -> io::Result<libc::c_ulong> {
    let c = cpath(path)?;
    // SAFETY: a zeroed statvfs is valid; c is NUL-terminated.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    if unsafe { libc::statvfs(c.as_ptr(), &mut st) } != 0 {
        return Err(io::Error::last_os_error());
    }
    let mut flags = 0;
    for (st_flag, ms_flag) in [
        (libc::ST_NOSUID, libc::MS_NOSUID),
        (libc::ST_NODEV, libc::MS_NODEV),
        (libc::ST_NOEXEC, libc::MS_NOEXEC),
        (libc::ST_NOATIME, libc::MS_NOATIME),
        (libc::ST_NODIRATIME, libc::MS_NODIRATIME),
        (libc::ST_RELATIME, libc::MS_RELATIME),
    ] {
        if st.f_flag & st_flag != 0 {
            flags |= ms_flag;
        }
    }
    Ok(flags)
}

fn bind(src: &Path, dst: &Path, read_only: bool, out: &mut Vec<Mount>) -> io::Result<()> {
    out.push(Mount {
        source: Some(cpath(src)?),
        target: cpath(dst)?,
        fstype: None,
        flags: libc::MS_BIND | libc::MS_REC,
        data: None,
        what: format!("binding {} to {}", src.display(), dst.display()),
    });
    if read_only {
        out.push(Mount {
            source: None,
            target: cpath(dst)?,
            fstype: None,
            flags: libc::MS_BIND | libc::MS_REMOUNT | libc::MS_RDONLY | kept_flags(src)?,
            data: None,
            what: format!("making {} read-only", dst.display()),
        });
    }
    Ok(())
}

/// Reads the kernel's `CAP_LAST_CAP`, or corral's own where it cannot.
fn last_cap() -> u32 {
    std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(crate::isolation::LAST_CAPABILITY)
}

impl Prepared {
    /// `None` when nothing is isolated; `cmd` gives the ids a user
    /// namespace maps.
    pub(super) fn new(iso: &Isolation, cmd: &crate::Command) -> io::Result<Option<Prepared>> {
        if iso.is_empty() {
            return Ok(None);
        }
        let userns = match iso.user {
            Some(map) => {
                let me = super::userns::Caller::this_process();
                let ids = super::userns::ids(map, cmd.uid, cmd.gid, cmd.groups.as_deref(), me)
                    .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.to_string()))?;
                Some(super::userns::UserNs::new(ids)?)
            }
            None => None,
        };
        let mut flags = 0u64;
        let mut add = |yes: bool, f: libc::c_int| {
            if yes {
                flags |= f as u64;
            }
        };
        // The kernel makes the user namespace first: it owns the others.
        add(userns.is_some(), libc::CLONE_NEWUSER);
        add(iso.pid, libc::CLONE_NEWPID);
        add(iso.ipc, libc::CLONE_NEWIPC);
        add(iso.uts || iso.hostname.is_some(), libc::CLONE_NEWUTS);
        add(iso.net == Network::None, libc::CLONE_NEWNET);
        add(iso.needs_mount_ns(), libc::CLONE_NEWNS);
        let mut mounts = Vec::new();
        if iso.needs_mount_ns() {
            // Nothing mounted in the group propagates back to the host,
            // so the host's mount table never shows the group's mounts.
            mounts.push(Mount {
                source: None,
                target: c"/".into(),
                fstype: None,
                flags: libc::MS_REC | libc::MS_PRIVATE,
                data: None,
                what: "making every mount private to the group".into(),
            });
        }
        if let Some(r) = &iso.root {
            // pivot_root wants the new root to be a mount point.
            bind(r, r, false, &mut mounts)?;
        }
        for b in &iso.binds {
            bind(&b.src, &iso.host_path(&b.dst), b.read_only, &mut mounts)?;
        }
        for p in &iso.read_only {
            let inside = iso.host_path(p);
            bind(&inside, &inside, true, &mut mounts)?;
        }
        if iso.pid {
            // A /proc of the new namespace: `ps` sees the group only.
            mounts.push(Mount {
                source: Some(c"proc".into()),
                target: cpath(&iso.host_path(Path::new("/proc")))?,
                fstype: Some(c"proc".into()),
                flags: libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
                data: None,
                what: "mounting the namespace's own /proc".into(),
            });
        }
        if iso.private_tmp {
            // Its pages are charged to the group's memory limit.
            mounts.push(Mount {
                source: Some(c"tmpfs".into()),
                target: cpath(&iso.host_path(Path::new("/tmp")))?,
                fstype: Some(c"tmpfs".into()),
                flags: libc::MS_NOSUID | libc::MS_NODEV,
                data: Some(c"mode=1777".into()),
                what: "mounting a private /tmp".into(),
            });
        }
        let netns = match &iso.net {
            Network::Join(path) => {
                let c = cpath(path)?;
                // SAFETY: c is NUL-terminated; the fd is owned below.
                let fd = unsafe { libc::open(c.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) };
                if fd < 0 {
                    return Err(io::Error::last_os_error());
                }
                // SAFETY: open just returned this fresh fd.
                Some(unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) })
            }
            _ => None,
        };
        let hostname = iso
            .hostname
            .as_ref()
            .map(|h| CString::new(h.as_bytes()))
            .transpose()
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "a NUL byte in the hostname"))?;
        Ok(Some(Prepared {
            clone_flags: flags,
            pid_ns: iso.pid,
            mounts,
            loopback: iso.net == Network::None,
            netns,
            hostname,
            keep_caps: iso.capability_mask(),
            last_cap: last_cap(),
            // Any filter implies no_new_privs (see `Seccomp`).
            no_new_privs: iso.no_new_privileges || iso.seccomp.is_some(),
            root: iso.root.as_deref().map(cpath).transpose()?,
            seccomp: iso.seccomp.as_ref().map(super::seccomp::compile).transpose()?,
            userns,
        }))
    }
}

/// This process's effective capabilities (`CapEff` of /proc/self/status).
pub(super) fn effective_caps() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        .unwrap_or(0)
}

const CAP_SETPCAP: u64 = 1 << 8;
const CAP_SYS_ADMIN: u64 = 1 << 21;

/// Whether this host and this process can provide `iso`: every namespace
/// it asks for exists in this kernel, and corral holds the privileges to
/// make them. Called when the group is built, before anything starts.
pub(crate) fn check(iso: &Isolation) -> crate::Result<()> {
    if iso.is_empty() {
        return Ok(());
    }
    let unsupported = |what: String, hint: &str| Err(Error::new(ErrorKind::Unsupported, what).hint(hint));
    crate::isolation::refuse_token_off_windows(iso.token)?;
    if iso.ui_restrictions {
        return unsupported(
            "UI restrictions are a limit of Windows jobs; Linux has no such thing".into(),
            "drop ui_restrictions on this host",
        );
    }
    if let Err(e) = super::clone3::available() {
        return unsupported(
            format!("isolation needs clone3, which this kernel or its seccomp policy refuses ({e})"),
            "run on Linux 5.7 or later without a filter on clone3, or drop the isolation",
        );
    }
    let wanted = [
        (iso.pid, "pid", "PID"),
        (iso.net == Network::None || matches!(iso.net, Network::Join(_)), "net", "network"),
        (iso.ipc, "ipc", "IPC"),
        (iso.uts || iso.hostname.is_some(), "uts", "UTS"),
        (iso.needs_mount_ns(), "mnt", "mount"),
    ];
    for (want, file, name) in wanted {
        if want && !Path::new("/proc/self/ns").join(file).exists() {
            return unsupported(
                format!("this kernel has no {name} namespace (no /proc/self/ns/{file})"),
                "use a kernel built with it (CONFIG_*_NS), or drop that isolation",
            );
        }
    }
    if let Some(f) = &iso.seccomp {
        super::seccomp::compile(f).map_err(|e| {
            Error::os("the seccomp filter", e)
                .with_kind(ErrorKind::InvalidInput)
                .hint("name syscalls as in syscalls(2), like \"mount\" or \"ptrace\"")
        })?;
    }
    let caps = effective_caps();
    super::userns::check(iso, &super::userns::Host::read(), caps)?;
    // In a user namespace of its own the group holds every capability
    // over its other namespaces, whatever corral holds over the host.
    let own_userns = iso.user.is_some();
    let needs_admin = !own_userns
        && (iso.pid
            || iso.net != Network::Host
            || iso.ipc
            || iso.uts
            || iso.hostname.is_some()
            || iso.needs_mount_ns());
    // SAFETY: geteuid has no preconditions.
    let uid = unsafe { libc::geteuid() };
    if needs_admin && caps & CAP_SYS_ADMIN == 0 {
        return Err(Error::new(
            ErrorKind::PermissionDenied,
            format!("namespaces and mounts need CAP_SYS_ADMIN, which corral (uid {uid}) does not hold"),
        )
        .hint("run corral as root, or add `user` (a user namespace of the group's own) where the host allows it"));
    }
    if iso.capabilities.is_some() && !own_userns && caps & CAP_SETPCAP == 0 {
        return Err(Error::new(
            ErrorKind::PermissionDenied,
            format!("dropping capabilities needs CAP_SETPCAP, which corral (uid {uid}) does not hold"),
        )
        .hint("run corral as root, or leave capabilities unset (an unprivileged group holds none)"));
    }
    Ok(())
}

/// For `corral doctor`: which isolation this host and process can provide.
pub(crate) fn describe() -> String {
    let mut have = Vec::new();
    for (file, name) in [("pid", "pid"), ("net", "net"), ("ipc", "ipc"), ("uts", "uts"), ("mnt", "mount")] {
        if Path::new("/proc/self/ns").join(file).exists() {
            have.push(name);
        }
    }
    let caps = effective_caps();
    let privileged = if caps & CAP_SYS_ADMIN != 0 {
        "corral holds CAP_SYS_ADMIN: namespaces, private /tmp, read-only paths, binds, capabilities and \
         no_new_privileges are available"
    } else {
        "corral lacks CAP_SYS_ADMIN: without `user` only no_new_privileges and seccomp are available (with \
         `user`, see the user namespaces line; or run as root)"
    };
    format!("isolation: namespaces in this kernel: {}; {privileged}", have.join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Bind;

    #[test]
    fn the_flags_follow_what_is_asked() {
        let p = Prepared::new(&Isolation::new().pid(true).network(Network::None), &sh()).unwrap().unwrap();
        let want = (libc::CLONE_NEWPID | libc::CLONE_NEWNET | libc::CLONE_NEWNS) as u64;
        assert_eq!(p.clone_flags, want);
        assert!(p.loopback && p.pid_ns);
        // Private first, then the namespace's /proc.
        assert_eq!(p.mounts.len(), 2);
        assert_eq!(p.mounts[1].target.as_bytes(), b"/proc");
        assert!(Prepared::new(&Isolation::new(), &sh()).unwrap().is_none());
        let u = Prepared::new(&Isolation::new().user(true).pid(true), &sh()).unwrap().unwrap();
        assert_eq!(u.clone_flags, (libc::CLONE_NEWUSER | libc::CLONE_NEWPID | libc::CLONE_NEWNS) as u64);
        assert_eq!(u.userns.as_ref().map(|n| (n.ids.inside_uid, n.ids.inside_gid)), Some((0, 0)));
    }

    fn sh() -> crate::Command {
        crate::Command::new("/bin/sh")
    }

    #[test]
    fn a_read_only_bind_is_a_bind_then_a_remount() {
        let iso = Isolation::new().bind(Bind::new("/usr", "/mnt").read_only(true));
        let p = Prepared::new(&iso, &sh()).unwrap().unwrap();
        let m = &p.mounts[1..];
        assert_eq!(m.len(), 2);
        assert_eq!(m[0].flags & libc::MS_BIND, libc::MS_BIND);
        assert_eq!(m[1].flags & (libc::MS_REMOUNT | libc::MS_RDONLY), libc::MS_REMOUNT | libc::MS_RDONLY);
        assert_eq!(m[1].target.as_bytes(), b"/mnt");
    }
}
