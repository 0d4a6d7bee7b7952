//! Who asked: the client behind a request, as the transport tells it, so
//! that every event the request causes can name it (`actor` in the event
//! JSON, and in the fleet's audit records).
//!
//! - The Unix socket: the peer's uid and pid from the kernel
//!   (SO_PEERCRED / getpeereid), taken when the connection is accepted.
//! - The named pipe: the client's user SID (from its token) and its pid.
//! - TCP: the client's address, and the name of the bearer token it
//!   presented (the token file's name: one daemon has one token).
//! - The fleet: the etcd user, client certificate or OS user that wrote.
//!
//! The pid is the client's when it connected; a pid is reused once that
//! process is gone, so it names the asker at that moment only.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Who asked for a change.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Actor {
    /// How the request came: `unix`, `pipe`, `tcp` or `fleet`.
    pub via: String,
    /// The client's uid (`unix`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<u32>,
    /// The client's pid when it connected (`unix`, `pipe`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<u32>,
    /// The client's user SID, like `S-1-5-21-…` (`pipe`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
    /// The name of the bearer token presented (`tcp`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    /// The client's address, `IP:PORT` (`tcp`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    /// The etcd user, `cert:<CN>` or `<user>@<host>` (`fleet`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
}

impl Actor {
    /// A client of the Unix socket.
    pub fn unix(uid: u32, pid: Option<u32>) -> Actor {
        Actor { via: "unix".into(), uid: Some(uid), pid, ..Actor::default() }
    }

    /// A client of the named pipe.
    pub fn pipe(sid: Option<String>, pid: Option<u32>) -> Actor {
        Actor { via: "pipe".into(), sid, pid, ..Actor::default() }
    }

    /// A client of the TCP listener; its token is named once it is checked.
    pub fn tcp(address: std::net::SocketAddr) -> Actor {
        Actor { via: "tcp".into(), address: Some(address.to_string()), ..Actor::default() }
    }

    /// A writer of the fleet's desired state.
    pub fn fleet(user: impl Into<String>) -> Actor {
        Actor { via: "fleet".into(), user: Some(user.into()), ..Actor::default() }
    }
}

/// In a few words, for `corral events`: `by uid 1000 pid 4242 (unix)`.
impl fmt::Display for Actor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts: Vec<String> = Vec::new();
        if let Some(u) = &self.user {
            parts.push(u.clone());
        }
        if let Some(t) = &self.token {
            parts.push(format!("token {t}"));
        }
        if let Some(a) = &self.address {
            parts.push(format!("from {a}"));
        }
        if let Some(s) = &self.sid {
            parts.push(format!("sid {s}"));
        }
        if let Some(u) = self.uid {
            parts.push(format!("uid {u}"));
        }
        if let Some(p) = self.pid {
            parts.push(format!("pid {p}"));
        }
        write!(f, "by {} ({})", parts.join(" "), self.via)
    }
}

/// A connection that can say who is at the other end. `None` where the
/// transport cannot tell (the metrics listener serves no changes).
pub(crate) trait Identify {
    fn actor(&self) -> Option<Actor> {
        None
    }
}

impl Identify for super::admit::Admitted<super::stall::WriteDeadline<tokio::net::TcpStream>> {}

#[cfg(unix)]
impl Identify for super::admit::Admitted<tokio::net::UnixStream> {
    fn actor(&self) -> Option<Actor> {
        let cred = self.get_ref().peer_cred().ok()?;
        Some(Actor::unix(cred.uid(), cred.pid().and_then(|p| u32::try_from(p).ok())))
    }
}

#[cfg(windows)]
impl Identify for super::admit::Admitted<tokio::net::windows::named_pipe::NamedPipeServer> {
    fn actor(&self) -> Option<Actor> {
        let (sid, pid) = super::pipe::client_identity(self.get_ref());
        Some(Actor::pipe(sid, pid))
    }
}

impl Identify for super::admit::Admitted<tokio_rustls::server::TlsStream<tokio::net::TcpStream>> {
    fn actor(&self) -> Option<Actor> {
        self.get_ref().get_ref().0.peer_addr().ok().map(Actor::tcp)
    }
}

/// The TCP listener's middleware, behind the bearer check: a request that
/// got this far presented the token named `name`.
pub(crate) async fn name_token(
    axum::extract::State(name): axum::extract::State<std::sync::Arc<str>>,
    mut req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    if let Some(a) = req.extensions_mut().get_mut::<Actor>() {
        a.token = Some(name.to_string());
    }
    next.run(req).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_json_names_only_what_the_transport_tells() {
        let a = Actor::unix(1000, Some(4242));
        assert_eq!(serde_json::to_string(&a).unwrap(), r#"{"via":"unix","uid":1000,"pid":4242}"#);
        assert_eq!(a.to_string(), "by uid 1000 pid 4242 (unix)");
        let mut t = Actor::tcp("127.0.0.1:5555".parse().unwrap());
        t.token = Some("token".into());
        assert_eq!(serde_json::to_string(&t).unwrap(), r#"{"via":"tcp","token":"token","address":"127.0.0.1:5555"}"#);
        assert_eq!(t.to_string(), "by token token from 127.0.0.1:5555 (tcp)");
        let p = Actor::pipe(Some("S-1-5-21-1-2-3-1001".into()), Some(7));
        assert_eq!(p.to_string(), "by sid S-1-5-21-1-2-3-1001 pid 7 (pipe)");
        let f = Actor::fleet("cert:alice");
        assert_eq!(serde_json::to_string(&f).unwrap(), r#"{"via":"fleet","user":"cert:alice"}"#);
        let back: Actor = serde_json::from_str(&serde_json::to_string(&t).unwrap()).unwrap();
        assert_eq!(back, t);
    }
}
