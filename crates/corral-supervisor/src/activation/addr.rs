//! `sockets = ["tcp://127.0.0.1:8080", "tcp://[::1]:8080", "unix:/run/app.sock"]`:
//! what each entry means, read without touching the system.

use std::net::SocketAddr;
use std::path::PathBuf;

/// The longest unix socket path (`sun_path` holds 108 bytes with its NUL).
pub const MAX_UNIX_PATH: usize = 107;
/// The most sockets one service may be given.
pub const MAX_SOCKETS: usize = 64;

/// One address to listen on.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ListenAddr {
    /// A TCP listener (`SO_REUSEADDR`).
    Tcp(SocketAddr),
    /// A unix stream socket at this absolute path.
    Unix(PathBuf),
}

impl std::fmt::Display for ListenAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ListenAddr::Tcp(a) => write!(f, "tcp://{a}"),
            ListenAddr::Unix(p) => write!(f, "unix:{}", p.display()),
        }
    }
}

/// The forms accepted, for error messages.
pub const FORMS: &str = "\"tcp://127.0.0.1:8080\", \"tcp://[::1]:8080\" or \"unix:/absolute/path.sock\"";

impl std::str::FromStr for ListenAddr {
    type Err = String;

    fn from_str(s: &str) -> Result<ListenAddr, String> {
        if let Some(rest) = s.strip_prefix("tcp://") {
            let addr: SocketAddr = rest
                .parse()
                .map_err(|_| format!("`{s}` is not tcp://IP:PORT (a name is not resolved; brackets around IPv6)"))?;
            if addr.port() == 0 {
                return Err(format!("`{s}` has port 0: a socket a client must find needs a fixed port"));
            }
            return Ok(ListenAddr::Tcp(addr));
        }
        if let Some(rest) = s.strip_prefix("unix:") {
            let p = PathBuf::from(rest);
            if !p.is_absolute() {
                return Err(format!("`{s}`: the path must be absolute"));
            }
            if rest.len() > MAX_UNIX_PATH {
                return Err(format!(
                    "`{s}`: the path is {} bytes, longer than a unix socket allows ({MAX_UNIX_PATH})",
                    rest.len()
                ));
            }
            if p.file_name().is_none()
                || rest.ends_with('/')
                || p.components().any(|c| c == std::path::Component::ParentDir)
            {
                return Err(format!("`{s}`: the path must name a file, without `..`"));
            }
            return Ok(ListenAddr::Unix(p));
        }
        Err(format!("`{s}` is not a socket address"))
    }
}

/// One entry of `sockets`, with where it was written (for an error when
/// it cannot be bound). Two entries are equal when their addresses are:
/// moving a line in the file changes nothing.
#[derive(Debug, Clone)]
pub struct ListenSpec {
    /// What to bind.
    pub addr: ListenAddr,
    /// The config file it was written in.
    pub file: String,
    /// 1-based line of the entry.
    pub line: usize,
    /// 1-based column of the entry.
    pub column: usize,
}

impl PartialEq for ListenSpec {
    fn eq(&self, other: &ListenSpec) -> bool {
        self.addr == other.addr
    }
}

impl Eq for ListenSpec {}

#[cfg(test)]
mod tests {
    use super::*;

    // Unix paths and Unix-only keys; Windows refuses them at load.
    #[cfg(unix)]
    #[test]
    fn tcp_v4_v6_and_absolute_unix_paths_are_read() {
        assert_eq!("tcp://127.0.0.1:8080".parse::<ListenAddr>().unwrap().to_string(), "tcp://127.0.0.1:8080");
        assert_eq!("tcp://[::1]:8080".parse::<ListenAddr>().unwrap().to_string(), "tcp://[::1]:8080");
        assert_eq!("unix:/run/a.sock".parse::<ListenAddr>().unwrap(), ListenAddr::Unix("/run/a.sock".into()));
    }

    // Unix paths and Unix-only keys; Windows refuses them at load.
    #[cfg(unix)]
    #[test]
    fn bad_addresses_say_what_is_wrong() {
        let e = |s: &str| s.parse::<ListenAddr>().unwrap_err();
        assert!(e("tcp://localhost:80").contains("not tcp://IP:PORT"));
        assert!(e("tcp://::1:80").contains("brackets"));
        assert!(e("tcp://127.0.0.1:0").contains("port 0"));
        assert!(e("unix:rel.sock").contains("absolute"));
        assert!(e("unix:/a/../b.sock").contains("without `..`"));
        assert!(e(&format!("unix:/{}", "a".repeat(200))).contains("longer than"));
        assert!(e("udp://1.2.3.4:5").contains("not a socket address"));
    }

    #[test]
    fn the_place_of_an_entry_does_not_make_it_another() {
        let at = |line| ListenSpec { addr: "tcp://127.0.0.1:1".parse().unwrap(), file: "a".into(), line, column: 1 };
        let (a, b) = (at(1), at(9));
        assert_eq!(a, b);
    }
}
