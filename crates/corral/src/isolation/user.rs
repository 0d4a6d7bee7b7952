//! How a group's user namespace maps its one user and group.
//!
//! A user namespace (`Isolation::user`) maps exactly one host uid and one
//! host gid: the controller's own, or the leader's `Command::uid`/`gid`
//! when a root controller switches user. Every other id shows as
//! `nobody` inside, and the group holds no privilege over host files.
//!
//! The default maps that user to root inside ([`UserMap::Root`]), as
//! `unshare --map-root-user` and rootless podman do: the group is root of
//! its own namespaces (its mounts, its loopback, its hostname) and of
//! nothing else, and `id -u` says 0. bubblewrap (`--unshare-user`) and
//! systemd (`PrivateUsers=`) keep the caller's own id instead; that is
//! [`UserMap::Same`], for a program that must not believe it is root.

/// Which uid and gid the group has inside its user namespace.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum UserMap {
    /// The group's user and group are 0 inside (`/proc/self/uid_map`
    /// reads `0 UID 1`): root of its own namespaces only.
    #[default]
    Root,
    /// The group keeps its own ids inside (`UID UID 1`), like bubblewrap
    /// and systemd's `PrivateUsers=`; it holds no capability after `exec`.
    Same,
}

impl UserMap {
    /// The config and command-line name: `root` or `self`.
    pub fn name(self) -> &'static str {
        match self {
            UserMap::Root => "root",
            UserMap::Same => "self",
        }
    }

    /// Reads `root` or `self`.
    pub fn parse(s: &str) -> Option<UserMap> {
        match s {
            "root" => Some(UserMap::Root),
            "self" => Some(UserMap::Same),
            _ => None,
        }
    }
}
