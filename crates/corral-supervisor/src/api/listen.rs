//! The local listener. On Unix: a socket with mode 0600 in a folder with
//! mode 0700, and every connection's peer uid checked (SO_PEERCRED /
//! getpeereid) against the daemon's, so a socket whose mode was loosened
//! still serves only its owner. On Windows: a named pipe with an
//! owner-only DACL and the same per-connection check, or in service mode
//! the owner, SYSTEM and Administrators (see `pipe`).

use super::Access;
use std::path::Path;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Where clients reach the daemon of a config whose `socket` is `socket`:
/// the path itself on Unix; on Windows a pipe name. `\\.\pipe\…` is used
/// as given; any other path names the pipe `corral-<hash of the path>`, so
/// one config always finds its daemon and two configs never share one.
pub fn local_address(socket: &Path) -> String {
    let s = socket.display().to_string();
    if cfg!(unix) || s.starts_with(r"\\.\pipe\") {
        return s;
    }
    // FNV-1a of the lower-cased path: Windows paths ignore case.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in s.to_lowercase().bytes() {
        h = (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3);
    }
    format!(r"\\.\pipe\corral-{h:016x}")
}

/// Answers a connection from another user with 403 and closes it.
async fn refuse<S: AsyncRead + AsyncWrite + Unpin>(mut s: S) {
    const REFUSED: &[u8] = b"HTTP/1.1 403 Forbidden\r\ncontent-type: application/json\r\ncontent-length: 52\r\nconnection: close\r\n\r\n{\"error\":\"only the daemon's owner may use this API\"}";
    // Read the request head first: a client whose request is cut off sees
    // a reset, not the reason.
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    let read = async {
        while head.len() < 16 * 1024 && !head.windows(4).any(|w| w == b"\r\n\r\n") {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => head.extend_from_slice(&buf[..n]),
            }
        }
    };
    let _ = tokio::time::timeout(std::time::Duration::from_secs(2), read).await;
    let _ = s.write_all(REFUSED).await;
    let _ = s.shutdown().await;
}

#[cfg(unix)]
pub use unix::serve_local;

#[cfg(unix)]
mod unix {
    use super::super::admit::{Admitted, Caps, Clients, Gate, Peer};
    use super::Path;
    use axum::serve::Listener;
    use std::future::Future;
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    use tokio::net::{UnixListener, UnixStream};

    /// Accepts only connections from the daemon's own uid, within the
    /// local socket's caps.
    struct OwnerOnly {
        inner: UnixListener,
        uid: u32,
        gate: Gate,
    }

    impl Listener for OwnerOnly {
        type Io = Admitted<UnixStream>;
        type Addr = tokio::net::unix::SocketAddr;

        async fn accept(&mut self) -> (Self::Io, Self::Addr) {
            loop {
                match self.inner.accept().await {
                    Ok((s, a)) => {
                        let slot = match self.gate.admit(Peer::Local) {
                            Ok(slot) => slot,
                            // Over the caps: closed at once; told why when
                            // its request has come (an answer before the
                            // request would be taken for garbage).
                            Err(why) => {
                                if s.try_read(&mut [0u8; 4096]).is_ok_and(|n| n > 0) {
                                    let _ = s.try_write(self.gate.refusal(why).as_bytes());
                                }
                                continue;
                            }
                        };
                        let owner = s.peer_cred().is_ok_and(|c| c.uid() == self.uid);
                        let s = Admitted::new(s, slot);
                        if owner {
                            return (s, a);
                        }
                        tokio::spawn(super::refuse(s));
                    }
                    // Out of fds and the like: wait a little instead of spinning.
                    Err(_) => tokio::time::sleep(std::time::Duration::from_millis(50)).await,
                }
            }
        }

        fn local_addr(&self) -> std::io::Result<Self::Addr> {
            self.inner.local_addr()
        }
    }

    /// Removes `path` when it is a stale socket: a socket no daemon answers
    /// on. Anything else found there (a file, a live socket) is refused,
    /// never deleted: `socket =` may point at something that is not ours.
    async fn remove_stale(path: &Path) -> std::io::Result<()> {
        use std::os::unix::fs::FileTypeExt;
        let meta = match std::fs::symlink_metadata(path) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e),
        };
        let refuse = |kind, why: String| Err(std::io::Error::new(kind, why));
        if !meta.file_type().is_socket() {
            return refuse(
                std::io::ErrorKind::AlreadyExists,
                "it exists and is not a socket; corral removes only a stale socket of its own: \
                 remove it, or set [daemon] socket to a free path"
                    .into(),
            );
        }
        if UnixStream::connect(path).await.is_ok() {
            return refuse(std::io::ErrorKind::AddrInUse, format!("a daemon already listens on {}", path.display()));
        }
        std::fs::remove_file(path)
    }

    /// Binds the socket (replacing a stale one) and serves until `stop`
    /// completes. On Unix every `access` serves the owner alone: there is
    /// no service mode here (systemd runs `corral up`).
    pub async fn serve_local(
        path: &Path,
        app: axum::Router,
        _access: super::Access,
        clients: &Clients,
        stop: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<tokio::task::JoinHandle<std::io::Result<()>>> {
        if let Some(dir) = path.parent() {
            std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)?;
        }
        remove_stale(path).await?;
        let inner = UnixListener::bind(path)?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
        let uid = crate::sys::euid::euid();
        let listener = OwnerOnly { inner, uid, gate: clients.gate("the local socket", Caps::LOCAL) };
        let timeout = clients.timeout();
        Ok(tokio::spawn(super::super::serve::serve(listener, app, timeout, stop)))
    }
}

#[cfg(windows)]
pub use windows::serve_local;

#[cfg(windows)]
mod windows {
    use super::super::admit::{Admitted, Caps, Clients, Gate, Peer};
    use super::super::pipe::PipeAcl;
    use super::{Access, Path};
    use axum::serve::Listener;
    use std::future::Future;
    use tokio::net::windows::named_pipe::NamedPipeServer;

    /// Hands out connected pipe instances of the clients `acl` allows,
    /// within the local pipe's caps.
    struct PipeListener {
        name: String,
        acl: PipeAcl,
        next: NamedPipeServer,
        gate: Gate,
    }

    impl PipeListener {
        /// The next instance; an error (out of handles) is retried.
        async fn fresh(&self) -> NamedPipeServer {
            loop {
                match self.acl.create(&self.name, false) {
                    Ok(p) => return p,
                    Err(_) => tokio::time::sleep(std::time::Duration::from_millis(50)).await,
                }
            }
        }
    }

    impl Listener for PipeListener {
        type Io = Admitted<NamedPipeServer>;
        type Addr = String;

        async fn accept(&mut self) -> (Self::Io, Self::Addr) {
            loop {
                let connected = self.next.connect().await;
                // A client always finds an instance waiting.
                let fresh = self.fresh().await;
                let conn = std::mem::replace(&mut self.next, fresh);
                if connected.is_err() {
                    // The client left before it was served.
                    continue;
                }
                let slot = match self.gate.admit(Peer::Local) {
                    Ok(slot) => slot,
                    // Over the caps: closed at once; told why when its
                    // request has come.
                    Err(why) => {
                        if conn.try_read(&mut [0u8; 4096]).is_ok_and(|n| n > 0) {
                            let _ = conn.try_write(self.gate.refusal(why).as_bytes());
                        }
                        continue;
                    }
                };
                let allowed = self.acl.is_allowed(&conn);
                let conn = Admitted::new(conn, slot);
                if allowed {
                    return (conn, self.name.clone());
                }
                tokio::spawn(super::refuse(conn));
            }
        }

        fn local_addr(&self) -> std::io::Result<Self::Addr> {
            Ok(self.name.clone())
        }
    }

    /// Creates the first pipe instance (refused when the name exists) and
    /// serves the clients `access` allows until `stop` completes.
    pub async fn serve_local(
        path: &Path,
        app: axum::Router,
        access: Access,
        clients: &Clients,
        stop: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<tokio::task::JoinHandle<std::io::Result<()>>> {
        let name = super::local_address(path);
        let acl = PipeAcl::new(access)?;
        let next = acl.create_first(&name)?;
        let listener = PipeListener { name, acl, next, gate: clients.gate("the local pipe", Caps::LOCAL) };
        let timeout = clients.timeout();
        Ok(tokio::spawn(super::super::serve::serve(listener, app, timeout, stop)))
    }
}
