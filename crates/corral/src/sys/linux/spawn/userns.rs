//! A group's user namespace: which ids it maps, who writes the maps, and
//! the handshake that holds the child until they are written.
//!
//! The child is cloned with `CLONE_NEWUSER` beside its other `CLONE_NEW*`
//! flags. The kernel makes the user namespace first, so it owns the
//! others: the child holds every capability over them (mounts, `lo`, the
//! hostname) and none over the host. Its cgroup was joined at the clone
//! (`CLONE_INTO_CGROUP`) or is joined by its v1 `tasks` writes before it
//! waits here.
//!
//! Until its maps are written the child's ids are unmapped and an `exec`
//! would keep nothing, so its first isolation step blocks on a pipe. The
//! parent writes `/proc/PID/uid_map`, `setgroups`, `gid_map`, then one
//! byte that lets it go. The parent writes them, not the child: only a
//! controller with CAP_SETUID over the host may map an id other than its
//! own (a root daemon running a service as `www`); one without may map
//! its own ids only, and must deny setgroups(2) first (user_namespaces(7)).
//!
//! Supplementary groups: the child keeps the controller's until it drops
//! them, and a group that shows as `nobody` inside still counts on host
//! files. A privileged controller leaves setgroups allowed so that the
//! child can drop them all, and a failure to do so stops the spawn. An
//! unprivileged one cannot drop them (as with `unshare -r` or bubblewrap):
//! they are its own, so the group gains nothing by them.

use super::child::{fail, Step};
use super::plan::Plan;
use crate::{Error, ErrorKind, Isolation, Network, UserMap};
use std::io::{self, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

const CAP_SETGID: u64 = 1 << 6;
const CAP_SETUID: u64 = 1 << 7;
const CAP_SYS_ADMIN: u64 = 1 << 21;

/// Who is making the namespace: corral's own effective ids and capabilities.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Caller {
    pub euid: u32,
    pub egid: u32,
    /// `CapEff`.
    pub caps: u64,
}

impl Caller {
    pub(crate) fn this_process() -> Caller {
        // SAFETY: geteuid and getegid have no preconditions.
        let (euid, egid) = unsafe { (libc::geteuid(), libc::getegid()) };
        Caller { euid, egid, caps: super::isolate::effective_caps() }
    }

    /// May map ids other than its own (CAP_SETUID and CAP_SETGID over the host).
    fn maps_any(self) -> bool {
        self.caps & (CAP_SETUID | CAP_SETGID) == (CAP_SETUID | CAP_SETGID)
    }
}

/// The one user and group a namespace maps, outside and inside.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Ids {
    pub host_uid: u32,
    pub host_gid: u32,
    pub inside_uid: u32,
    pub inside_gid: u32,
    /// The controller maps with CAP_SETUID/CAP_SETGID: setgroups stays
    /// allowed and the child drops its supplementary groups.
    pub privileged: bool,
}

impl Ids {
    fn uid_map(&self) -> String {
        format!("{} {} 1\n", self.inside_uid, self.host_uid)
    }
    fn gid_map(&self) -> String {
        format!("{} {} 1\n", self.inside_gid, self.host_gid)
    }
}

/// The ids of a group whose leader asks for `uid`, `gid` and `groups`
/// (its `Command`), or an error that names what cannot work.
pub(crate) fn ids(
    map: UserMap,
    uid: Option<u32>,
    gid: Option<u32>,
    groups: Option<&[u32]>,
    me: Caller,
) -> crate::Result<Ids> {
    let host_uid = uid.unwrap_or(me.euid);
    let host_gid = gid.unwrap_or(me.egid);
    let privileged = me.maps_any();
    let refuse = |what: String, hint: &str| Err(Error::new(ErrorKind::InvalidInput, what).hint(hint));
    if !privileged && host_uid != me.euid {
        return refuse(
            format!("a user namespace made by uid {} can map only that uid, not uid {host_uid}", me.euid),
            "run corral as root to run the group as another user, or drop the user switch",
        );
    }
    if !privileged && host_gid != me.egid {
        return refuse(
            format!("a user namespace made by gid {} can map only that gid, not gid {host_gid}", me.egid),
            "run corral as root to run the group with another group id, or drop the group switch",
        );
    }
    if groups.is_some_and(|g| !g.is_empty()) {
        return refuse(
            "supplementary groups cannot be set in a user namespace: it maps the group's one gid".into(),
            "drop the supplementary groups, or the user namespace",
        );
    }
    let (inside_uid, inside_gid) = match map {
        UserMap::Same => (host_uid, host_gid),
        _ => (0, 0),
    };
    Ok(Ids { host_uid, host_gid, inside_uid, inside_gid, privileged })
}

/// What this host says about user namespaces (`None`: no such file).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Host {
    /// `/proc/self/ns/user` exists.
    pub kernel_has_it: bool,
    /// `user.max_user_namespaces`.
    pub max: Option<u64>,
    /// `kernel.unprivileged_userns_clone` (Debian and Ubuntu kernels).
    pub unprivileged_clone: Option<u64>,
    /// `kernel.apparmor_restrict_unprivileged_userns` (Ubuntu 23.10+).
    pub apparmor_restrict: Option<u64>,
}

fn sysctl(path: &str) -> Option<u64> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

impl Host {
    pub(crate) fn read() -> Host {
        Host {
            kernel_has_it: Path::new("/proc/self/ns/user").exists(),
            max: sysctl("/proc/sys/user/max_user_namespaces"),
            unprivileged_clone: sysctl("/proc/sys/kernel/unprivileged_userns_clone"),
            apparmor_restrict: sysctl("/proc/sys/kernel/apparmor_restrict_unprivileged_userns"),
        }
    }

    /// Why a caller with these capabilities cannot have a user namespace
    /// here: (what, hint).
    fn refusal(&self, caps: u64) -> Option<(String, &'static str)> {
        let admin = caps & CAP_SYS_ADMIN != 0;
        if !self.kernel_has_it {
            return Some((
                "this kernel has no user namespace (no /proc/self/ns/user)".into(),
                "use a kernel built with CONFIG_USER_NS, or drop `user`",
            ));
        }
        if self.max == Some(0) {
            return Some((
                "user namespaces are disabled on this host (user.max_user_namespaces = 0)".into(),
                "sysctl -w user.max_user_namespaces=10000, or drop `user`",
            ));
        }
        if !admin && self.unprivileged_clone == Some(0) {
            return Some((
                "only root may make user namespaces on this host (kernel.unprivileged_userns_clone = 0)".into(),
                "sysctl -w kernel.unprivileged_userns_clone=1, or run corral as root",
            ));
        }
        if !admin && self.apparmor_restrict == Some(1) {
            return Some((
                "AppArmor takes every capability from an unprivileged user namespace here \
                 (kernel.apparmor_restrict_unprivileged_userns = 1)"
                    .into(),
                "give corral an AppArmor profile that allows `userns,`, or run corral as root",
            ));
        }
        None
    }
}

/// Whether this host and process can give `iso` its user namespace.
pub(crate) fn check(iso: &Isolation, host: &Host, caps: u64) -> crate::Result<()> {
    if iso.user.is_none() {
        return Ok(());
    }
    if let Some((what, hint)) = host.refusal(caps) {
        return Err(Error::new(ErrorKind::Unsupported, what).hint(hint));
    }
    if let Network::Join(p) = &iso.net {
        return Err(Error::new(
            ErrorKind::Unsupported,
            format!(
                "network namespace {} cannot be joined from a user namespace of the group's own: joining needs \
                 CAP_SYS_ADMIN over the namespace's owner",
                p.display()
            ),
        )
        .hint("use net = \"none\" or \"host\" with `user`, or drop `user` and run corral as root"));
    }
    Ok(())
}

/// Whether `cmd`'s user switch can work in `iso`'s user namespace.
pub(crate) fn check_leader(cmd: &crate::Command, iso: &Isolation) -> crate::Result<()> {
    match iso.user {
        Some(map) => ids(map, cmd.uid, cmd.gid, cmd.groups.as_deref(), Caller::this_process()).map(|_| ()),
        None => Ok(()),
    }
}

/// For `corral doctor`: whether this host and process can have user namespaces.
pub(crate) fn describe() -> String {
    let host = Host::read();
    let caps = super::isolate::effective_caps();
    match host.refusal(caps) {
        Some((what, hint)) => format!("user namespaces: refused: {what} ({hint})"),
        None => format!(
            "user namespaces: available{} (user.max_user_namespaces = {}): with `user` a group's user is root \
             inside its own namespaces (or itself with `self`) and nothing on the host",
            if caps & CAP_SYS_ADMIN != 0 {
                ""
            } else {
                " to this unprivileged user, who gets pid, net, mount, ipc and uts namespaces with them"
            },
            host.max.map_or("unknown".to_string(), |m| m.to_string())
        ),
    }
}

/// A user namespace for the child, prepared in the parent.
pub(super) struct UserNs {
    pub ids: Ids,
    /// The child reads one byte here once its maps are written.
    go_read: OwnedFd,
    /// The parent's end; the child closes its copy before it waits, so
    /// that a parent that dies lets it go with EOF.
    go_write: OwnedFd,
}

impl UserNs {
    pub(super) fn new(ids: Ids) -> io::Result<UserNs> {
        let mut fds = [0; 2];
        // SAFETY: fds is valid for two ints.
        if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: pipe2 just returned two fresh fds.
        let (go_read, go_write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        Ok(UserNs { ids, go_read, go_write })
    }

    /// In the parent, right after the clone: writes the maps of the child
    /// `pid` and lets it go. On an error the child is still waiting: the
    /// caller kills it. Returns which file failed with the error.
    pub(super) fn map(&self, pid: libc::pid_t) -> Result<(), (String, io::Error)> {
        let mut writes = vec![("uid_map", self.ids.uid_map())];
        if !self.ids.privileged {
            writes.push(("setgroups", "deny".to_string()));
        }
        writes.push(("gid_map", self.ids.gid_map()));
        for (file, text) in writes {
            let path = format!("/proc/{pid}/{file}");
            write_once(&path, text.as_bytes()).map_err(|e| (format!("writing {text:?} to {path}"), e))?;
        }
        let mut go = std::fs::File::from(self.go_write.try_clone().map_err(|e| ("letting it go".to_string(), e))?);
        go.write_all(b"1").map_err(|e| ("letting it go".to_string(), e))
    }
}

/// One `write(2)` of the whole text: the kernel takes a map in one write only.
fn write_once(path: &str, text: &[u8]) -> io::Result<()> {
    let mut f = std::fs::OpenOptions::new().write(true).custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC).open(path)?;
    match f.write(text)? {
        n if n == text.len() => Ok(()),
        _ => Err(io::Error::new(io::ErrorKind::WriteZero, "short write")),
    }
}

/// In the child, its first isolation step: waits until the parent has
/// written its maps, then drops the controller's supplementary groups
/// where it may (see the module note).
pub(super) unsafe fn enter(p: &Plan, u: &UserNs) {
    // SAFETY: raw syscalls on fds the plan owns, in a fork-like child
    // (its fd table is its own copy).
    unsafe {
        libc::close(u.go_write.as_raw_fd());
        let mut byte = 0u8;
        loop {
            match libc::read(u.go_read.as_raw_fd(), (&mut byte as *mut u8).cast(), 1) {
                1 => break,
                0 => fail(p, Step::UserNs, libc::EPIPE),
                _ if *libc::__errno_location() == libc::EINTR => {}
                _ => fail(p, Step::UserNs, *libc::__errno_location()),
            }
        }
        if u.ids.privileged && libc::syscall(libc::SYS_setgroups, 0usize, std::ptr::null::<libc::gid_t>()) != 0 {
            fail(p, Step::Groups, *libc::__errno_location());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROOT: Caller = Caller { euid: 0, egid: 0, caps: u64::MAX >> 23 };
    const NOBODY: Caller = Caller { euid: 65534, egid: 65534, caps: 0 };

    #[test]
    fn the_default_maps_the_callers_own_ids_to_root_inside() {
        let i = ids(UserMap::Root, None, None, None, NOBODY).unwrap();
        assert_eq!((i.host_uid, i.host_gid, i.inside_uid, i.inside_gid), (65534, 65534, 0, 0));
        assert!(!i.privileged);
        assert_eq!(i.uid_map(), "0 65534 1\n");
        let same = ids(UserMap::Same, None, None, None, NOBODY).unwrap();
        assert_eq!(same.uid_map(), "65534 65534 1\n");
        assert_eq!(same.gid_map(), "65534 65534 1\n");
    }

    #[test]
    fn a_root_controller_maps_the_leaders_user_and_drops_its_groups() {
        let i = ids(UserMap::Root, Some(1000), Some(100), Some(&[]), ROOT).unwrap();
        assert_eq!((i.host_uid, i.host_gid, i.inside_uid, i.inside_gid), (1000, 100, 0, 0));
        assert!(i.privileged);
        assert_eq!(i.gid_map(), "0 100 1\n");
    }

    #[test]
    fn a_switch_an_unprivileged_namespace_cannot_map_is_refused() {
        let e = ids(UserMap::Root, Some(0), None, None, NOBODY).unwrap_err();
        assert!(e.to_string().contains("made by uid 65534 can map only that uid, not uid 0"), "{e}");
        let e = ids(UserMap::Root, None, Some(5), None, NOBODY).unwrap_err();
        assert!(e.to_string().contains("not gid 5"), "{e}");
        // Its own ids, asked for by number, are fine.
        ids(UserMap::Root, Some(65534), Some(65534), None, NOBODY).unwrap();
        let e = ids(UserMap::Root, Some(1000), None, Some(&[10]), ROOT).unwrap_err();
        assert!(e.to_string().contains("supplementary groups cannot be set"), "{e}");
    }

    #[test]
    fn a_host_that_cannot_is_refused_with_its_sysctl() {
        let open = Host { kernel_has_it: true, max: Some(100), unprivileged_clone: None, apparmor_restrict: None };
        assert_eq!(open.refusal(0), None);
        let off = Host { max: Some(0), ..open };
        assert!(off.refusal(ROOT.caps).unwrap().0.contains("user.max_user_namespaces = 0"));
        let debian = Host { unprivileged_clone: Some(0), ..open };
        assert!(debian.refusal(0).unwrap().0.contains("kernel.unprivileged_userns_clone = 0"));
        assert_eq!(debian.refusal(ROOT.caps), None, "root may, whatever the sysctl");
        let ubuntu = Host { apparmor_restrict: Some(1), ..open };
        assert!(ubuntu.refusal(0).unwrap().0.contains("apparmor"));
        assert!(Host::default().refusal(ROOT.caps).unwrap().0.contains("no user namespace"));
    }

    #[test]
    fn joining_a_network_namespace_from_a_user_namespace_is_refused() {
        let open = Host { kernel_has_it: true, max: Some(100), ..Host::default() };
        let iso = Isolation::new().user(true).network(Network::Join("/run/netns/x".into()));
        let e = check(&iso, &open, ROOT.caps).unwrap_err();
        assert!(e.to_string().contains("cannot be joined from a user namespace"), "{e}");
        check(&Isolation::new().user(true).network(Network::None), &open, 0).unwrap();
    }
}
