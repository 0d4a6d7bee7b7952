//! The listening sockets the daemon holds, by service and address.

use super::addr::{ListenAddr, ListenSpec};
use crate::config::{ConfigErrors, Diagnostic, ServiceSpec, Specs};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

/// The listen backlog: connections that wait while no instance accepts.
#[cfg(unix)]
const BACKLOG: i32 = 1024;

/// One bound socket; a unix socket's file goes with it.
struct Held {
    #[cfg(unix)]
    fd: std::os::fd::OwnedFd,
    #[cfg(unix)]
    unix: Option<(std::path::PathBuf, u64)>,
}

#[cfg(unix)]
impl Drop for Held {
    fn drop(&mut self) {
        if let Some((path, ino)) = &self.unix {
            crate::sys::listen_unix::remove(path, *ino);
        }
    }
}

type Key = (String, ListenAddr);

/// Every socket held for the services of the config in force.
#[derive(Default)]
pub(crate) struct Registry {
    held: Mutex<BTreeMap<Key, Arc<Held>>>,
}

impl Registry {
    fn held(&self) -> std::sync::MutexGuard<'_, BTreeMap<Key, Arc<Held>>> {
        self.held.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Binds every socket of `services` that is not held yet. All or
    /// nothing: on an error none of the new ones is kept, and every error
    /// names its entry's place.
    pub(crate) fn bind_missing(&self, services: &Specs) -> Result<(), ConfigErrors> {
        let mut fresh: Vec<(Key, Arc<Held>)> = Vec::new();
        let mut errors = Vec::new();
        for spec in services.values() {
            for s in &spec.sockets {
                let key = (spec.name.clone(), s.addr.clone());
                if self.held().contains_key(&key) {
                    continue;
                }
                match bind(spec, s) {
                    Ok(h) => fresh.push((key, Arc::new(h))),
                    Err(e) => errors.push(Diagnostic {
                        file: s.file.clone(),
                        line: s.line,
                        column: s.column,
                        message: format!("service `{}`: cannot listen on {}: {e}", spec.name, s.addr),
                        expected: Some(hint(&e)),
                        did_you_mean: None,
                    }),
                }
            }
        }
        if !errors.is_empty() {
            return Err(ConfigErrors(errors));
        }
        self.held().extend(fresh);
        Ok(())
    }

    /// Takes the sockets of `spec` back from `leader`, a running instance
    /// a previous daemon started and passed them to (fd 3 on, as
    /// declared): the addresses are still its, so they cannot be bound
    /// again. A socket that is not there, or not the declared one, is left
    /// to [`Registry::bind_missing`] (which then says the address is in use).
    #[cfg(target_os = "linux")]
    pub(crate) fn take_back(&self, spec: &ServiceSpec, leader: u32) {
        for (i, s) in spec.sockets.iter().enumerate() {
            let key = (spec.name.clone(), s.addr.clone());
            if self.held().contains_key(&key) {
                continue;
            }
            let Ok(fd) = crate::sys::take_fd::take_listener(leader, 3 + i as i32) else { continue };
            if let Some(h) = same_listener(fd, &s.addr) {
                self.held().insert(key, Arc::new(h));
            }
        }
    }

    /// Lets go of every socket no service of `services` declares.
    pub(crate) fn retain(&self, services: &Specs) {
        self.held()
            .retain(|(name, addr), _| services.get(name).is_some_and(|s| s.sockets.iter().any(|l| &l.addr == addr)));
    }

    /// Gives `cmd` the service's sockets from fd 3, in the order declared,
    /// with `LISTEN_FDS`, `LISTEN_FDNAMES` (the service's name for each)
    /// and `LISTEN_PID` (the leader's own pid, filled in the child).
    #[cfg(unix)]
    pub(crate) fn pass(&self, spec: &ServiceSpec, cmd: &mut corral::Command) -> Result<(), String> {
        if spec.sockets.is_empty() {
            return Ok(());
        }
        let held = self.held();
        for (i, s) in spec.sockets.iter().enumerate() {
            let h = held
                .get(&(spec.name.clone(), s.addr.clone()))
                .ok_or_else(|| format!("the socket {} is not bound", s.addr))?;
            let fd = h.fd.try_clone().map_err(|e| format!("cannot pass the socket {}: {e}", s.addr))?;
            cmd.pass_fd(fd, 3 + i as i32);
        }
        let names = vec![spec.name.as_str(); spec.sockets.len()].join(":");
        cmd.env("LISTEN_FDS", spec.sockets.len().to_string()).env("LISTEN_FDNAMES", names);
        cmd.env_leader_pid("LISTEN_PID");
        Ok(())
    }

    /// How many sockets are held (for tests and `doctor`-like views).
    #[cfg(all(test, unix))]
    fn len(&self) -> usize {
        self.held().len()
    }
}

/// `fd` as held, when it listens on `addr`.
#[cfg(target_os = "linux")]
fn same_listener(fd: std::os::fd::OwnedFd, addr: &ListenAddr) -> Option<Held> {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    match addr {
        ListenAddr::Tcp(a) => {
            let l = std::net::TcpListener::from(fd);
            (l.local_addr().ok()? == *a).then(|| Held { fd: l.into(), unix: None })
        }
        ListenAddr::Unix(p) => {
            let l = std::os::unix::net::UnixListener::from(fd);
            if l.local_addr().ok()?.as_pathname() != Some(p.as_path()) {
                return None;
            }
            // The file the previous daemon made, removed with the socket.
            let m = std::fs::symlink_metadata(p).ok().filter(|m| m.file_type().is_socket());
            Some(Held { fd: l.into(), unix: m.map(|m| (p.clone(), m.ino())) })
        }
    }
}

/// What a person can do about a socket that does not bind.
fn hint(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::AddrInUse => "a free address: another program listens there (see `ss -ltnp`)".into(),
        std::io::ErrorKind::AddrNotAvailable => "an address of this host".into(),
        std::io::ErrorKind::PermissionDenied => {
            "a path in a folder of root's or the daemon's, writable by no one else (not /tmp)".into()
        }
        _ => super::FORMS.to_string(),
    }
}

#[cfg(unix)]
fn bind(spec: &ServiceSpec, s: &ListenSpec) -> std::io::Result<Held> {
    match &s.addr {
        ListenAddr::Tcp(a) => {
            // std sets SO_REUSEADDR on Unix: a restarted daemon rebinds at
            // once despite connections in TIME_WAIT.
            let l = std::net::TcpListener::bind(a)?;
            Ok(Held { fd: l.into(), unix: None })
        }
        ListenAddr::Unix(p) => {
            let owner = match &spec.user {
                Some(u) => {
                    let acc = crate::user::lookup(u).map_err(std::io::Error::other)?;
                    Some((acc.uid, acc.gid))
                }
                None => None,
            };
            let b = crate::sys::listen_unix::bind(p, owner, BACKLOG)?;
            Ok(Held { fd: b.fd, unix: Some((p.clone(), b.ino)) })
        }
    }
}

#[cfg(not(unix))]
fn bind(_spec: &ServiceSpec, _s: &ListenSpec) -> std::io::Result<Held> {
    Err(std::io::Error::new(std::io::ErrorKind::Unsupported, "socket activation is not supported on Windows yet"))
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    fn spec(name: &str, addrs: &[String]) -> std::sync::Arc<ServiceSpec> {
        let src = format!(
            "[services.{name}]\ncommand = [\"true\"]\nsockets = [{}]\n",
            addrs.iter().map(|a| format!("{a:?}")).collect::<Vec<_>>().join(", ")
        );
        crate::config::parse(&src, std::path::Path::new("/nonexistent/corral.toml")).unwrap().services[name].clone()
    }

    #[test]
    fn sockets_are_kept_while_declared_and_a_taken_address_is_an_error_at_its_place() {
        let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
        let r = Registry::default();
        let mut services = BTreeMap::new();
        services.insert("a".to_string(), spec("a", &[format!("tcp://{free}")]));
        r.bind_missing(&services).unwrap();
        assert_eq!(r.len(), 1);
        // Binding again keeps the socket it holds (no EADDRINUSE from itself).
        r.bind_missing(&services).unwrap();
        assert_eq!(r.len(), 1);
        let mut bad = services.clone();
        bad.insert("b".to_string(), spec("b", &[format!("tcp://{}", taken.local_addr().unwrap())]));
        let e = r.bind_missing(&bad).unwrap_err().to_string();
        assert!(e.starts_with("/nonexistent/corral.toml:3:"), "{e}");
        assert!(e.contains("cannot listen on tcp://") && e.contains("a free address"), "{e}");
        assert_eq!(r.len(), 1, "nothing new is kept after an error");
        r.retain(&BTreeMap::new());
        assert_eq!(r.len(), 0);
        std::net::TcpListener::bind(free).expect("the address is free again");
    }
}
