//! What a group may see and do: Linux namespaces, a private view of the
//! filesystem, and dropped privileges.
//!
//! An [`Isolation`] is plain data, checked when the group is built
//! ([`crate::GroupBuilder::isolate`]): a missing bind source, an unknown
//! capability or a host that cannot provide a namespace is an error
//! before anything starts. The kernel work happens in the leader's child
//! between `clone3` and `exec` (see `sys/linux/spawn/isolate.rs`).
//!
//! A PID namespace gets a tiny init of corral's own as its PID 1: it
//! forks the real leader, reaps orphans, forwards signals, and exits with
//! the leader's status (a leader killed by signal N shows as exit code
//! 128+N, as a shell reports it). When it exits, the kernel kills every
//! process left in the namespace.

mod capability;
mod token;
mod user;

pub(crate) use capability::number as capability_number;
#[cfg(target_os = "linux")]
pub(crate) use capability::LAST as LAST_CAPABILITY;
pub(crate) use token::refuse_off_windows as refuse_token_off_windows;
pub use token::Token;
pub use user::UserMap;

use crate::{Error, ErrorKind, Result};
use std::path::{Path, PathBuf};

/// The longest hostname the kernel takes (`HOST_NAME_MAX`).
pub const MAX_HOSTNAME: usize = 64;

/// The most paths (read-only ones plus binds) one group may mount: each
/// is a syscall or two in the child before `exec`.
pub const MAX_MOUNTS: usize = 256;

/// Which network a group sees.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Network {
    /// The host's network (no network namespace).
    #[default]
    Host,
    /// A new, empty network namespace: loopback only, brought up.
    None,
    /// A namespace made beforehand, joined by its path (`/run/netns/NAME`,
    /// `/proc/PID/ns/net`).
    Join(PathBuf),
}

/// A seccomp filter for the whole group. Any filter implies
/// `no_new_privileges` (the kernel's rule for a process that may drop
/// root before `exec`, as systemd does for `SystemCallFilter`). A denied
/// call fails with EPERM; nothing is killed.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Seccomp {
    /// Deny [`DEFAULT_DENY`]: what a service has no business calling.
    Default,
    /// Deny these syscalls (by name, like `mount`), allow the rest.
    Deny(Vec<String>),
    /// Allow only these syscalls (plus the few corral needs to start the
    /// program: `execve`, `exit_group` and the steps before `exec`).
    Allow(Vec<String>),
}

/// The default deny-list: loading kernel code, rebooting, swapping,
/// changing the clock, tracing or reading other processes, kernel
/// keyrings, BPF and perf, mounts and namespaces, raw port I/O.
pub const DEFAULT_DENY: &[&str] = &[
    "acct",
    "add_key",
    "bpf",
    "clock_adjtime",
    "clock_settime",
    "delete_module",
    "finit_module",
    "init_module",
    "ioperm",
    "iopl",
    "kexec_file_load",
    "kexec_load",
    "keyctl",
    "lookup_dcookie",
    "mount",
    "move_mount",
    "open_by_handle_at",
    "perf_event_open",
    "pivot_root",
    "process_vm_readv",
    "process_vm_writev",
    "ptrace",
    "quotactl",
    "reboot",
    "request_key",
    "setns",
    "settimeofday",
    "swapoff",
    "swapon",
    "syslog",
    "umount2",
    "unshare",
    "userfaultfd",
];

/// A bind mount: `src` of the host appears at `dst` inside the group.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Bind {
    /// The host path (must exist).
    pub src: PathBuf,
    /// Where the group sees it (must exist).
    pub dst: PathBuf,
    /// Mounted read-only.
    pub read_only: bool,
}

impl Bind {
    /// `src` at `dst`, writable.
    pub fn new(src: impl Into<PathBuf>, dst: impl Into<PathBuf>) -> Bind {
        Bind { src: src.into(), dst: dst.into(), read_only: false }
    }
    /// Mounted read-only.
    pub fn read_only(mut self, yes: bool) -> Bind {
        self.read_only = yes;
        self
    }
}

/// A group's isolation. The default isolates nothing.
///
/// ```no_run
/// use corral::{Command, Group, Isolation, Network};
/// let iso = Isolation::new().pid(true).network(Network::None).private_tmp(true).read_only("/usr");
/// let g = Group::builder().isolate(iso).spawn(Command::new("ps"))?;
/// # Ok::<(), corral::Error>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Isolation {
    /// A PID namespace: the group sees only itself, under an init of corral's.
    pub pid: bool,
    /// The network the group sees.
    pub net: Network,
    /// An IPC namespace (System V IPC, POSIX message queues).
    pub ipc: bool,
    /// A UTS namespace (its own hostname).
    pub uts: bool,
    /// The hostname inside the UTS namespace (implies `uts`).
    pub hostname: Option<String>,
    /// A mount namespace (implied by `pid`, `private_tmp`, `read_only`, `binds`).
    pub mount: bool,
    /// An empty tmpfs on `/tmp`, gone with the group.
    pub private_tmp: bool,
    /// Paths mounted read-only for the group.
    pub read_only: Vec<PathBuf>,
    /// Bind mounts.
    pub binds: Vec<Bind>,
    /// `PR_SET_NO_NEW_PRIVS`: no setuid bit or file capability raises privileges.
    pub no_new_privileges: bool,
    /// The only capabilities the group keeps (bounding, permitted,
    /// effective, inheritable and ambient sets); `None` leaves them alone.
    pub capabilities: Option<Vec<String>>,
    /// A seccomp filter (see [`Seccomp`]).
    pub seccomp: Option<Seccomp>,
    /// Windows: the job's UI restrictions (`JOB_OBJECT_UILIMIT_*`): no
    /// switching desktops, changing display settings or system
    /// parameters, exiting Windows, using global atoms or USER handles of
    /// processes outside the group, reading or writing the clipboard.
    /// Refused elsewhere.
    pub ui_restrictions: bool,
    /// Windows: the leader's access token (see [`Token`]). Needs a
    /// [`crate::Command`]. Refused elsewhere.
    pub token: Option<Token>,
    /// A new root (`pivot_root`; the old one is detached, not reachable):
    /// a directory owned by root, not writable by others, with `/bin/sh`.
    /// Bind targets, read-only paths, `/proc` and `/tmp` are inside it.
    pub root: Option<PathBuf>,
    /// A user namespace that owns the group's other namespaces, mapping
    /// its one user and group as [`UserMap`] says: so that a controller
    /// that is not root can have them too.
    pub user: Option<UserMap>,
}

impl Isolation {
    /// Nothing isolated.
    pub fn new() -> Isolation {
        Isolation::default()
    }
    /// A PID namespace.
    pub fn pid(mut self, yes: bool) -> Self {
        self.pid = yes;
        self
    }
    /// The network the group sees.
    pub fn network(mut self, net: Network) -> Self {
        self.net = net;
        self
    }
    /// An IPC namespace.
    pub fn ipc(mut self, yes: bool) -> Self {
        self.ipc = yes;
        self
    }
    /// A UTS namespace that keeps the host's name until the group changes it.
    pub fn uts(mut self, yes: bool) -> Self {
        self.uts = yes;
        self
    }
    /// A UTS namespace with this hostname.
    pub fn hostname(mut self, name: impl Into<String>) -> Self {
        self.hostname = Some(name.into());
        self.uts = true;
        self
    }
    /// A mount namespace (of its own it changes nothing that is seen).
    pub fn mount(mut self, yes: bool) -> Self {
        self.mount = yes;
        self
    }
    /// An empty, private `/tmp`.
    pub fn private_tmp(mut self, yes: bool) -> Self {
        self.private_tmp = yes;
        self
    }
    /// Adds a path the group sees read-only.
    pub fn read_only(mut self, path: impl Into<PathBuf>) -> Self {
        self.read_only.push(path.into());
        self
    }
    /// Adds a bind mount.
    pub fn bind(mut self, bind: Bind) -> Self {
        self.binds.push(bind);
        self
    }
    /// Sets `no_new_privs` for the whole group.
    pub fn no_new_privileges(mut self, yes: bool) -> Self {
        self.no_new_privileges = yes;
        self
    }
    /// Keeps only these capabilities (`CAP_NET_BIND_SERVICE` or
    /// `net_bind_service`); an empty list drops them all.
    pub fn keep_capabilities<I, S>(mut self, names: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.capabilities = Some(names.into_iter().map(Into::into).collect());
        self
    }

    /// Windows UI restrictions for the group (see [`Isolation::ui_restrictions`]).
    pub fn ui_restrictions(mut self, yes: bool) -> Self {
        self.ui_restrictions = yes;
        self
    }

    /// Windows: the leader's access token (see [`Isolation::token`]).
    pub fn token(mut self, token: Token) -> Self {
        self.token = Some(token);
        self
    }

    /// A seccomp filter for the group.
    pub fn seccomp(mut self, filter: Seccomp) -> Self {
        self.seccomp = Some(filter);
        self
    }

    /// A user namespace of the group's own, mapping its user to root
    /// inside ([`UserMap::Root`]); `false` removes it.
    pub fn user(mut self, yes: bool) -> Self {
        self.user = match (yes, self.user) {
            (true, Some(map)) => Some(map),
            (true, None) => Some(UserMap::default()),
            (false, _) => None,
        };
        self
    }

    /// A user namespace of the group's own, with this mapping.
    pub fn user_map(mut self, map: UserMap) -> Self {
        self.user = Some(map);
        self
    }

    /// A new root for the group (see [`Isolation::root`]).
    pub fn root(mut self, dir: impl Into<PathBuf>) -> Self {
        self.root = Some(dir.into());
        self
    }

    /// `path` as the host sees it: under the new root when there is one.
    pub(crate) fn host_path(&self, path: &Path) -> PathBuf {
        match &self.root {
            Some(r) => r.join(path.strip_prefix("/").unwrap_or(path)),
            None => path.to_path_buf(),
        }
    }

    /// True when nothing is isolated.
    pub fn is_empty(&self) -> bool {
        *self == Isolation::default()
    }

    /// Whether the group needs a mount namespace of its own.
    #[cfg_attr(not(target_os = "linux"), allow(dead_code))]
    pub(crate) fn needs_mount_ns(&self) -> bool {
        self.mount
            || self.pid
            || self.private_tmp
            || !self.read_only.is_empty()
            || !self.binds.is_empty()
            || self.root.is_some()
    }

    /// The kept capabilities as a bit mask (checked by `validate`).
    #[cfg_attr(not(target_os = "linux"), allow(dead_code))]
    pub(crate) fn capability_mask(&self) -> Option<u64> {
        self.capabilities
            .as_ref()
            .map(|names| names.iter().filter_map(|n| capability_number(n)).fold(0u64, |m, c| m | (1 << c)))
    }

    /// Checks that a group could be built with this isolation here: the
    /// values, the paths they name, and what this host and process can
    /// provide (namespaces in the kernel, the privileges to make them).
    /// [`crate::GroupBuilder::spawn`] runs the same check; a config
    /// reader calls it to refuse a setting before anything starts.
    pub fn check(&self) -> Result<()> {
        self.validate()?;
        crate::sys::check_isolation(self)
    }

    /// Checks the values themselves and that every path they name exists;
    /// whether this host can provide them is the backend's check.
    pub(crate) fn validate(&self) -> Result<()> {
        let bad = |what: String, hint: &str| Err(Error::new(ErrorKind::InvalidInput, what).hint(hint));
        if let Some(h) = &self.hostname {
            if h.is_empty() || h.len() > MAX_HOSTNAME || h.contains('\0') {
                return bad(
                    format!("hostname {h:?} is not a hostname"),
                    "use 1 to 64 characters (letters, digits, '-', '.')",
                );
            }
        }
        if self.read_only.len() + self.binds.len() > MAX_MOUNTS {
            return bad(
                format!(
                    "{} read-only paths and binds; the most is {MAX_MOUNTS}",
                    self.read_only.len() + self.binds.len()
                ),
                "bind or protect a parent directory instead",
            );
        }
        if let Some(r) = &self.root {
            usable_root(r)?;
            for (wanted, dir) in [(self.pid, "proc"), (self.private_tmp, "tmp")] {
                if wanted && !r.join(dir).is_dir() {
                    return bad(
                        format!("root {} has no /{dir} directory", r.display()),
                        "create it in the new root: it is mounted over for the group",
                    );
                }
            }
        }
        for p in &self.read_only {
            existing(p, "read-only path")?;
            existing(&self.host_path(p), "read-only path in the new root")?;
        }
        for b in &self.binds {
            existing(&b.src, "bind source")?;
            existing(&b.dst, "bind target")?;
            existing(&self.host_path(&b.dst), "bind target in the new root")?;
        }
        if let Network::Join(p) = &self.net {
            existing(p, "network namespace")?;
        }
        for n in self.capabilities.iter().flatten() {
            if capability_number(n).is_none() {
                return bad(
                    format!("unknown capability {n:?}"),
                    "use a name from capabilities(7), such as CAP_NET_BIND_SERVICE",
                );
            }
        }
        Ok(())
    }
}

/// The check of hosts without namespaces: any isolation is refused.
#[cfg(not(target_os = "linux"))]
pub(crate) fn linux_only(iso: &Isolation) -> Result<()> {
    refuse_token_off_windows(iso.token)?;
    // Windows has its own kinds: UI restrictions on the job, the token.
    let rest = Isolation { ui_restrictions: iso.ui_restrictions && !cfg!(windows), token: None, ..iso.clone() };
    if rest.is_empty() {
        return Ok(());
    }
    Err(Error::new(
        ErrorKind::Unsupported,
        format!("isolation (namespaces, mounts, capabilities) is Linux-only; this host runs {}", std::env::consts::OS),
    )
    .hint("drop the isolation settings on this host"))
}

/// A directory that can be a root: owned by root (or by corral's own
/// user), writable by no one else, with a `/bin/sh` (a root without one
/// is a typo far more often than a choice).
fn usable_root(r: &Path) -> Result<()> {
    existing(r, "root")?;
    let bad = |why: String, hint: &str| Err(Error::new(ErrorKind::InvalidInput, why).hint(hint));
    let meta = std::fs::metadata(r).map_err(|e| Error::os(format!("root {}", r.display()), e))?;
    if !meta.is_dir() {
        return bad(format!("root {} is not a directory", r.display()), "give the directory of a root filesystem");
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        // SAFETY: geteuid has no preconditions.
        let me = unsafe { libc::geteuid() };
        if meta.uid() != 0 && meta.uid() != me {
            return bad(
                format!("root {} is owned by uid {}, not by root", r.display(), meta.uid()),
                "chown root: a root another user owns can be changed under the group",
            );
        }
        if meta.mode() & 0o022 != 0 {
            return bad(
                format!("root {} is writable by group or others (mode {:o})", r.display(), meta.mode() & 0o7777),
                "chmod go-w it",
            );
        }
    }
    if !r.join("bin/sh").exists() {
        return bad(
            format!("root {} has no /bin/sh: it is not a usable root", r.display()),
            "give the directory of a root filesystem (with /bin/sh)",
        );
    }
    Ok(())
}

/// An absolute path that exists (a symlink is fine: the mount follows it
/// as the kernel would for the group itself).
fn existing(p: &Path, what: &str) -> Result<()> {
    if !p.is_absolute() {
        return Err(Error::new(ErrorKind::InvalidInput, format!("{what} {} is not an absolute path", p.display()))
            .hint("write it from the root, like /srv/data"));
    }
    match std::fs::metadata(p) {
        Ok(_) => Ok(()),
        Err(e) => Err(Error::os(format!("{what} {} cannot be used", p.display()), e)
            .with_kind(ErrorKind::InvalidInput)
            .hint("create it first, or fix the path")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_asked_is_empty_and_needs_no_mount_namespace() {
        assert!(Isolation::new().is_empty());
        assert!(!Isolation::new().network(Network::None).needs_mount_ns());
        assert!(Isolation::new().pid(true).needs_mount_ns());
        assert!(Isolation::new().private_tmp(true).needs_mount_ns());
    }

    #[test]
    fn a_missing_bind_source_is_refused_with_its_path() {
        let e = Isolation::new().bind(Bind::new("/nonexistent/corral-src", "/tmp")).validate().unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidInput);
        assert!(e.to_string().contains("bind source /nonexistent/corral-src"), "{e}");
    }

    #[test]
    fn a_relative_path_is_refused() {
        let e = Isolation::new().read_only("usr").validate().unwrap_err();
        assert!(e.to_string().contains("not an absolute path"), "{e}");
    }

    #[test]
    fn an_unknown_capability_is_refused_and_known_ones_make_a_mask() {
        let e = Isolation::new().keep_capabilities(["CAP_FLY"]).validate().unwrap_err();
        assert!(e.to_string().contains("unknown capability \"CAP_FLY\""), "{e}");
        let iso = Isolation::new().keep_capabilities(["net_bind_service", "CAP_CHOWN"]);
        iso.validate().unwrap();
        assert_eq!(iso.capability_mask(), Some((1 << 10) | 1));
        assert_eq!(Isolation::new().keep_capabilities(Vec::<String>::new()).capability_mask(), Some(0));
    }

    #[test]
    fn a_hostname_is_bounded() {
        assert!(Isolation::new().hostname("a".repeat(65)).validate().is_err());
        assert!(Isolation::new().hostname("").validate().is_err());
        let iso = Isolation::new().hostname("box");
        assert!(iso.uts);
        iso.validate().unwrap();
    }
}
