//! The isolation flags of `corral run`, turned into a library
//! [`Isolation`]. Parsing checks the form of each value; the library
//! checks the rest (paths that exist, known capabilities, what this host
//! can do) before anything starts.

use corral::{Bind, Isolation, Network, Seccomp, UserMap};
use std::path::PathBuf;

#[derive(Debug, Default, clap::Args)]
pub struct IsolateArgs {
    /// Namespaces of the group's own, comma-separated: pid, net (loopback
    /// only), mount, ipc, uts (Linux, root), user (the others without
    /// root; the group is root inside).
    #[arg(long = "isolate", value_name = "NS", value_delimiter = ',', value_parser = parse_ns)]
    namespaces: Vec<Ns>,
    /// In the user namespace, the group is `root` (the default) or keeps
    /// its own ids (`self`); implies `--isolate user`.
    #[arg(long = "user-map", value_name = "root|self", value_parser = parse_user_map)]
    user_map: Option<UserMap>,
    /// Join this network namespace instead (/run/netns/NAME).
    #[arg(long = "net-ns", value_name = "PATH")]
    net_ns: Option<PathBuf>,
    /// The hostname inside a UTS namespace of the group's own.
    #[arg(long, value_name = "NAME")]
    hostname: Option<String>,
    /// An empty, private /tmp that goes away with the group.
    #[arg(long = "private-tmp")]
    private_tmp: bool,
    /// A path the group sees read-only (repeatable).
    #[arg(long = "read-only", value_name = "PATH")]
    read_only: Vec<PathBuf>,
    /// A bind mount, SRC:DST or SRC:DST:ro (repeatable).
    #[arg(long = "bind", value_name = "SRC:DST[:ro]", value_parser = parse_bind)]
    bind: Vec<Bind>,
    /// Move the group into this root (pivot_root): owned by root, with /bin/sh.
    #[arg(long, value_name = "DIR")]
    root: Option<PathBuf>,
    /// A seccomp filter: `default` (the documented deny-list), `deny=NAME,...` or `allow=NAME,...`.
    #[arg(long, value_name = "FILTER", value_parser = parse_seccomp)]
    seccomp: Option<Seccomp>,
    /// Set no_new_privs: setuid bits and file capabilities raise nothing.
    #[arg(long = "no-new-privileges")]
    no_new_privileges: bool,
    /// Keep only these capabilities (repeatable or comma-separated;
    /// `--cap-keep ''` drops them all).
    #[arg(long = "cap-keep", value_name = "NAME", value_delimiter = ',', num_args = 1)]
    cap_keep: Option<Vec<String>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ns {
    Pid,
    Net,
    Mount,
    Ipc,
    Uts,
    User,
}

fn parse_ns(s: &str) -> Result<Ns, String> {
    Ok(match s.trim() {
        "pid" => Ns::Pid,
        "net" => Ns::Net,
        "mount" | "mnt" => Ns::Mount,
        "ipc" => Ns::Ipc,
        "uts" => Ns::Uts,
        "user" => Ns::User,
        other => return Err(format!("unknown namespace '{other}': expected pid, net, mount, ipc, uts or user")),
    })
}

fn parse_user_map(s: &str) -> Result<UserMap, String> {
    UserMap::parse(s).ok_or_else(|| format!("invalid user map '{s}': expected root or self"))
}

fn parse_seccomp(s: &str) -> Result<Seccomp, String> {
    let names = |v: &str| v.split(',').map(|n| n.trim().to_string()).filter(|n| !n.is_empty()).collect::<Vec<_>>();
    match s.split_once('=') {
        None if s == "default" => Ok(Seccomp::Default),
        Some(("deny", v)) if !names(v).is_empty() => Ok(Seccomp::Deny(names(v))),
        Some(("allow", v)) if !names(v).is_empty() => Ok(Seccomp::Allow(names(v))),
        _ => Err(format!("invalid seccomp filter '{s}': expected default, deny=NAME,... or allow=NAME,...")),
    }
}

fn parse_bind(s: &str) -> Result<Bind, String> {
    let bad = || format!("invalid bind '{s}': expected SRC:DST or SRC:DST:ro, like /srv/data:/data:ro");
    let mut parts = s.split(':');
    let (src, dst) = match (parts.next(), parts.next()) {
        (Some(src), Some(dst)) if !src.is_empty() && !dst.is_empty() => (src, dst),
        _ => return Err(bad()),
    };
    let read_only = match (parts.next(), parts.next()) {
        (None, _) => false,
        (Some("ro"), None) => true,
        (Some("rw"), None) => false,
        _ => return Err(bad()),
    };
    Ok(Bind::new(src, dst).read_only(read_only))
}

impl IsolateArgs {
    pub fn isolation(&self) -> Isolation {
        let has = |n| self.namespaces.contains(&n);
        let mut iso = Isolation::new()
            .pid(has(Ns::Pid))
            .mount(has(Ns::Mount))
            .ipc(has(Ns::Ipc))
            .uts(has(Ns::Uts))
            .user(has(Ns::User))
            .private_tmp(self.private_tmp)
            .no_new_privileges(self.no_new_privileges);
        if has(Ns::Net) {
            iso = iso.network(Network::None);
        }
        if let Some(m) = self.user_map {
            iso = iso.user_map(m);
        }
        if let Some(p) = &self.net_ns {
            iso = iso.network(Network::Join(p.clone()));
        }
        if let Some(h) = &self.hostname {
            iso = iso.hostname(h.clone());
        }
        if let Some(f) = &self.seccomp {
            iso = iso.seccomp(f.clone());
        }
        if let Some(r) = &self.root {
            iso = iso.root(r.clone());
        }
        for p in &self.read_only {
            iso = iso.read_only(p.clone());
        }
        for b in &self.bind {
            iso = iso.bind(b.clone());
        }
        if let Some(caps) = &self.cap_keep {
            iso = iso.keep_capabilities(caps.iter().filter(|c| !c.trim().is_empty()).cloned());
        }
        iso
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bind_is_src_dst_and_an_optional_ro() {
        assert_eq!(parse_bind("/a:/b").unwrap(), Bind::new("/a", "/b"));
        assert_eq!(parse_bind("/a:/b:ro").unwrap(), Bind::new("/a", "/b").read_only(true));
        for bad in ["/a", ":/b", "/a:/b:rx", "/a:/b:ro:x"] {
            assert!(parse_bind(bad).unwrap_err().contains("SRC:DST"), "{bad}");
        }
    }

    #[test]
    fn namespaces_are_named_and_an_unknown_one_is_refused_in_one_line() {
        assert_eq!(parse_ns("mnt").unwrap(), Ns::Mount);
        assert_eq!(parse_ns("user").unwrap(), Ns::User);
        assert!(parse_ns("cgroup").unwrap_err().contains("expected pid, net, mount, ipc, uts or user"));
        assert_eq!(parse_user_map("self").unwrap(), UserMap::Same);
        assert!(parse_user_map("nobody").unwrap_err().contains("expected root or self"));
    }
}
