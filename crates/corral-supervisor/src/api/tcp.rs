//! The optional TCP listener, `[daemon.tcp]`: the same router as the local
//! socket, over TLS (rustls with the ring provider), HTTP/1.1, and a bearer
//! token on every request ([`super::auth`]).
//!
//! Everything is loaded and bound before any service starts, so a bad
//! certificate, key, token file or address stops the daemon with one line
//! and nothing started. TLS handshakes run in their own tasks with the
//! client timeout as deadline, so a slow or silent client never holds up
//! the others, and every connection is admitted by the listener's caps
//! first ([`super::admit`]): one address cannot fill the handshake slots.

use super::admit::{Admitted, Caps, Clients, Gate, Peer};
use super::auth::{self, Token};
use crate::config::TcpConfig;
use axum::serve::Listener;
use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, Semaphore};
use tokio_rustls::rustls::pki_types::pem::{self, PemObject};
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::{self, ServerConfig};
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

/// At most this many handshakes at once; connections past it are closed.
/// One address may run at most [`Caps::TCP`]`.per_peer` of them.
const MAX_HANDSHAKES: usize = 64;

/// What the TCP listener needs, read and checked: TLS material and the
/// token. Loading has no effect on the system.
#[derive(Clone)]
pub struct TcpTls {
    listen: SocketAddr,
    tls: Arc<ServerConfig>,
    token: Token,
    /// The token file's name: what events say was presented.
    token_name: Arc<str>,
}

impl std::fmt::Debug for TcpTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TcpTls").field("listen", &self.listen).finish_non_exhaustive()
    }
}

impl TcpTls {
    /// Loads the certificate chain, the private key and the token named by
    /// `[daemon.tcp]`. Errors are one line for a person.
    pub fn load(cfg: &TcpConfig) -> Result<TcpTls, String> {
        // The config check demands all three; this is a second guard.
        let (Some(cert), Some(key), Some(token_file)) = (&cfg.cert, &cfg.key, &cfg.token_file) else {
            return Err("[daemon.tcp] needs cert, key and token_file; a plain TCP control port is refused".into());
        };
        let tls = server_config(cert, key)?;
        let token = Token::from_file(token_file)?;
        auth::warn_if_shared(token_file);
        let token_name = token_file.file_name().map_or("token".into(), |n| n.to_string_lossy().into());
        Ok(TcpTls { listen: cfg.listen, tls, token, token_name })
    }

    /// The address from the config (the port may be 0).
    pub fn listen(&self) -> SocketAddr {
        self.listen
    }

    /// Binds the address. Nothing is served until [`BoundTcp::serve`].
    pub async fn bind(self) -> Result<BoundTcp, String> {
        let listener =
            TcpListener::bind(self.listen).await.map_err(|e| format!("cannot listen on {}: {e}", self.listen))?;
        let addr = listener.local_addr().map_err(|e| format!("cannot listen on {}: {e}", self.listen))?;
        Ok(BoundTcp { listener, addr, tls: self })
    }
}

/// A bound TCP listener, not yet serving.
#[derive(Debug)]
pub struct BoundTcp {
    listener: TcpListener,
    addr: SocketAddr,
    tls: TcpTls,
}

impl BoundTcp {
    /// The bound address, with the real port when the config said 0.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Serves `app`, behind the bearer token, until `stop` completes; then
    /// waits for open requests to end.
    pub fn serve(
        self,
        app: axum::Router,
        clients: &Clients,
        stop: impl Future<Output = ()> + Send + 'static,
    ) -> tokio::task::JoinHandle<std::io::Result<()>> {
        // The token is named inside the bearer check: only for requests that passed it.
        let app = app
            .layer(axum::middleware::from_fn_with_state(self.tls.token_name.clone(), super::actor::name_token))
            .layer(axum::middleware::from_fn_with_state(self.tls.token.clone(), auth::require_bearer));
        let admit = Admission {
            gate: clients.gate("the TCP listener", Caps::TCP),
            acceptor: TlsAcceptor::from(self.tls.tls),
            deadline: clients.timeout(),
        };
        let listener = TlsListener::start(self.listener, self.addr, admit);
        tokio::spawn(super::serve::serve(listener, app, clients.timeout(), stop))
    }
}

/// A rustls server config (TLS 1.2 and 1.3, ALPN `http/1.1`) from PEM files.
fn server_config(cert: &Path, key: &Path) -> Result<Arc<ServerConfig>, String> {
    let cert_pem =
        std::fs::read(cert).map_err(|e| format!("cannot read the TLS certificate {}: {e}", cert.display()))?;
    let certs = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("the TLS certificate {} is not valid PEM: {}", cert.display(), pem_error(e)))?;
    if certs.is_empty() {
        return Err(format!("no certificate (-----BEGIN CERTIFICATE-----) in {}", cert.display()));
    }
    let key_pem = std::fs::read(key).map_err(|e| format!("cannot read the TLS key {}: {e}", key.display()))?;
    let private = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| match e {
        pem::Error::NoItemsFound => format!("no private key (-----BEGIN PRIVATE KEY-----) in {}", key.display()),
        e => format!("the TLS key {} is not valid PEM: {}", key.display(), pem_error(e)),
    })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("cannot set up TLS: {e}"))?
        .with_no_client_auth()
        .with_single_cert(certs, private)
        .map_err(|e| {
            let why = match e {
                rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch) => {
                    "the key does not belong to the certificate".to_string()
                }
                e => e.to_string(),
            };
            format!("cannot use the TLS certificate {} with the key {}: {why}", cert.display(), key.display())
        })?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// pki-types prints raw bytes as numbers; say it in words instead.
fn pem_error(e: pem::Error) -> String {
    match e {
        pem::Error::MissingSectionEnd { .. } => "a section has no END line".into(),
        pem::Error::IllegalSectionStart { .. } => "a BEGIN line is malformed".into(),
        e => e.to_string(),
    }
}

/// Connections whose handshake is done, with their slot. A task accepts
/// TCP connections and runs each handshake in a task of its own; it stops
/// when the listener is dropped.
struct TlsListener {
    ready: mpsc::Receiver<(Conn, SocketAddr)>,
    addr: SocketAddr,
    accept: tokio::task::JoinHandle<()>,
}

type Conn = Admitted<TlsStream<TcpStream>>;

/// What the accept task needs to let a connection in.
struct Admission {
    gate: Gate,
    acceptor: TlsAcceptor,
    /// A client that has not finished its TLS handshake by then is dropped.
    deadline: Duration,
}

impl TlsListener {
    fn start(listener: TcpListener, addr: SocketAddr, admit: Admission) -> TlsListener {
        let (tx, ready) = mpsc::channel(16);
        let accept = tokio::spawn(accept_loop(listener, admit, tx));
        TlsListener { ready, addr, accept }
    }
}

impl Drop for TlsListener {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

async fn accept_loop(listener: TcpListener, admit: Admission, tx: mpsc::Sender<(Conn, SocketAddr)>) {
    let handshakes = Arc::new(Semaphore::new(MAX_HANDSHAKES));
    loop {
        let accepted = tokio::select! {
            _ = tx.closed() => return,
            a = listener.accept() => a,
        };
        let (stream, peer) = match accepted {
            Ok(a) => a,
            // Out of fds and the like: wait a little instead of spinning.
            Err(_) => {
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        // Over a cap, or too many handshakes at once: close this one
        // rather than queue it.
        let Ok(slot) = admit.gate.admit(Peer::of(peer.ip())) else { continue };
        let Ok(permit) = handshakes.clone().try_acquire_owned() else { continue };
        let _ = stream.set_nodelay(true);
        let acceptor = admit.acceptor.clone();
        let tx = tx.clone();
        let deadline = admit.deadline;
        tokio::spawn(async move {
            let _permit = permit;
            // A failed handshake (an untrusted client, a timeout) just
            // closes the connection.
            let handshake = async {
                if !speaks_tls(&stream).await {
                    refuse_plain(stream).await;
                    return None;
                }
                acceptor.accept(stream).await.ok()
            };
            if let Ok(Some(tls)) = tokio::time::timeout(deadline, handshake).await {
                let _ = tx.send((Admitted::new(tls, slot), peer)).await;
            }
        });
    }
}

/// A TLS client starts with a handshake record (content type 22); plain
/// HTTP starts with a method name.
async fn speaks_tls(stream: &TcpStream) -> bool {
    let mut first = [0u8; 1];
    matches!(stream.peek(&mut first).await, Ok(1) if first[0] == 0x16)
}

/// Tells a plain-HTTP client what is wrong, in plain HTTP, and closes.
async fn refuse_plain(mut stream: TcpStream) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    // Read what has arrived first: a reply to a request not yet read may be
    // lost to a reset.
    let mut buf = [0u8; 4096];
    let _ = tokio::time::timeout(Duration::from_millis(200), stream.read(&mut buf)).await;
    let body = r#"{"error":"this port speaks TLS only: use https://"}"#;
    let reply = format!(
        "HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = stream.write_all(reply.as_bytes()).await;
    let _ = stream.shutdown().await;
}

impl Listener for TlsListener {
    type Io = Conn;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(c) => c,
            // The accept task is gone (it only ends when this listener is
            // dropped): nothing more will come.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.addr)
    }
}
