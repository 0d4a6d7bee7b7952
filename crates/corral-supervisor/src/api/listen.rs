//! The local listener. On Unix: a socket with mode 0600 in a folder with
//! mode 0700, and every connection's peer uid checked (SO_PEERCRED /
//! getpeereid) against the daemon's, so a socket whose mode was loosened
//! still serves only its owner. Windows has no local listener yet (a named
//! pipe with an owner-only ACL is planned); the daemon says so and stops.

use std::path::Path;

#[cfg(unix)]
pub use unix::serve_local;

#[cfg(unix)]
mod unix {
    use super::Path;
    use axum::serve::Listener;
    use std::future::Future;
    use std::os::unix::fs::PermissionsExt;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{UnixListener, UnixStream};

    /// Accepts only connections from the daemon's own uid.
    struct OwnerOnly {
        inner: UnixListener,
        uid: u32,
    }

    const REFUSED: &[u8] = b"HTTP/1.1 403 Forbidden\r\ncontent-type: application/json\r\ncontent-length: 52\r\nconnection: close\r\n\r\n{\"error\":\"only the daemon's owner may use this API\"}";

    impl Listener for OwnerOnly {
        type Io = UnixStream;
        type Addr = tokio::net::unix::SocketAddr;

        async fn accept(&mut self) -> (Self::Io, Self::Addr) {
            loop {
                match self.inner.accept().await {
                    Ok((s, a)) => match s.peer_cred() {
                        Ok(c) if c.uid() == self.uid => return (s, a),
                        _ => {
                            tokio::spawn(async move {
                                let mut s = s;
                                // Read the request head first: a client whose request is
                                // cut off sees a reset, not the reason.
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
                            });
                        }
                    },
                    // Out of fds and the like: wait a little instead of spinning.
                    Err(_) => tokio::time::sleep(std::time::Duration::from_millis(50)).await,
                }
            }
        }

        fn local_addr(&self) -> std::io::Result<Self::Addr> {
            self.inner.local_addr()
        }
    }

    /// Binds the socket (replacing a stale one) and serves until `stop`
    /// completes.
    pub async fn serve_local(
        path: &Path,
        app: axum::Router,
        stop: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<tokio::task::JoinHandle<std::io::Result<()>>> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        if path.exists() {
            if UnixStream::connect(path).await.is_ok() {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::AddrInUse,
                    format!("a daemon already listens on {}", path.display()),
                ));
            }
            std::fs::remove_file(path)?;
        }
        let inner = UnixListener::bind(path)?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
        // SAFETY: geteuid has no preconditions.
        let uid = unsafe { libc::geteuid() };
        let listener = OwnerOnly { inner, uid };
        Ok(tokio::spawn(async move { axum::serve(listener, app).with_graceful_shutdown(stop).await }))
    }
}

/// Windows: not yet.
#[cfg(not(unix))]
pub async fn serve_local(
    _path: &Path,
    _app: axum::Router,
    _stop: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<tokio::task::JoinHandle<std::io::Result<()>>> {
    Err(std::io::Error::new(
        std::io::ErrorKind::Unsupported,
        "the local control API is not available on Windows yet (a named pipe with an owner-only ACL is planned)",
    ))
}
