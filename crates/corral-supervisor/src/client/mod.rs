//! A small HTTP/1.1 client for the control API, for the `corral` verbs and
//! for tests: on the local socket (named pipe on Windows), or on the
//! `[daemon.tcp]` listener over TLS with the bearer token ([`Remote`]).

mod remote;

pub use remote::Remote;

use http_body_util::{BodyExt, Empty};
use hyper::body::{Bytes, Incoming};
use hyper::client::conn::http1::SendRequest;
use std::path::{Path, PathBuf};

/// Why a request did not get an answer.
#[derive(Debug)]
pub enum ClientError {
    /// Nothing listens on the socket.
    NoDaemon(PathBuf, std::io::Error),
    /// Nothing answers at the URL (connection refused, no route, silence).
    Unreachable(String, String),
    /// The TLS handshake with the URL failed (most often: the daemon's
    /// certificate is not trusted).
    Tls(String, String),
    /// The daemon refused the bearer token (401), with its reason.
    Unauthorized(String),
    /// The connection broke, or the platform has no local API.
    Io(String),
}

impl std::fmt::Display for ClientError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ClientError::NoDaemon(p, e) => {
                write!(f, "no daemon is running on {} ({e}); start one with `corral up`", p.display())
            }
            ClientError::Unreachable(url, e) => {
                write!(f, "no daemon answers at {url}: {e} (hint: check the URL against [daemon.tcp] listen)")
            }
            ClientError::Tls(url, e) if e.starts_with("certificate verification failed") => {
                write!(f, "{url}: {e} (hint: trust the daemon's certificate, or the CA that signed it, with --ca FILE)")
            }
            ClientError::Tls(url, e) => write!(f, "{url}: {e}"),
            ClientError::Unauthorized(why) => write!(
                f,
                "the daemon refused the token ({why}) (hint: --token-file FILE with the token_file of its [daemon.tcp])"
            ),
            ClientError::Io(e) => f.write_str(e),
        }
    }
}

impl std::error::Error for ClientError {}

/// An answer: the status code and the body.
#[derive(Debug)]
pub struct Reply {
    /// HTTP status.
    pub status: u16,
    /// The whole body (of a streamed answer: only when it is an error).
    pub body: Vec<u8>,
}

impl Reply {
    /// The body as JSON (`null` when it is not JSON).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }
}

/// Where the daemon is.
#[derive(Debug, Clone)]
enum To {
    Local(PathBuf),
    Tcp(Remote),
}

/// Talks to one daemon.
#[derive(Debug, Clone)]
pub struct Client {
    to: To,
}

impl Client {
    /// A client for the local socket at `socket` (on Windows, the pipe
    /// that [`crate::api::local_address`] names after it).
    pub fn new(socket: &Path) -> Client {
        Client { to: To::Local(socket.to_path_buf()) }
    }

    /// A client for a daemon's `[daemon.tcp]` listener.
    pub fn remote(remote: Remote) -> Client {
        Client { to: To::Tcp(remote) }
    }

    /// Sends one request and reads the whole answer.
    pub async fn request(&self, method: &str, path: &str) -> Result<Reply, ClientError> {
        let resp = self.send(method, path).await?;
        let status = resp.status().as_u16();
        Ok(Reply { status, body: collect(resp.into_body()).await? })
    }

    /// Sends one request and hands each chunk of a successful answer to
    /// `each` until the answer ends or `each` returns false. An error
    /// answer (4xx, 5xx) is not handed over: it comes back whole, in the
    /// reply's body.
    pub async fn stream(
        &self,
        method: &str,
        path: &str,
        mut each: impl FnMut(&[u8]) -> bool,
    ) -> Result<Reply, ClientError> {
        let resp = self.send(method, path).await?;
        let status = resp.status().as_u16();
        let mut body = resp.into_body();
        if status >= 400 {
            return Ok(Reply { status, body: collect(body).await? });
        }
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| ClientError::Io(e.to_string()))?;
            if let Some(data) = frame.data_ref() {
                if !each(data) {
                    break;
                }
            }
        }
        Ok(Reply { status, body: Vec::new() })
    }

    /// Connects, sends, and returns the answer's head. A 401 from the TCP
    /// listener is an error of its own: no verb can do anything with it.
    async fn send(&self, method: &str, path: &str) -> Result<hyper::Response<Incoming>, ClientError> {
        let (mut sender, host, auth) = match &self.to {
            To::Local(socket) => (handshake(local(socket).await?).await?, "corral".to_string(), None),
            To::Tcp(r) => {
                (handshake(hyper_util::rt::TokioIo::new(r.connect().await?)).await?, r.authority(), Some(r.bearer()))
            }
        };
        let mut req = hyper::Request::builder().method(method).uri(path).header(hyper::header::HOST, host);
        if let Some(a) = auth {
            req = req.header(hyper::header::AUTHORIZATION, a);
        }
        let req = req.body(Empty::<Bytes>::new()).map_err(|e| ClientError::Io(e.to_string()))?;
        let resp = sender.send_request(req).await.map_err(|e| {
            ClientError::Io(format!(
                "the daemon closed the connection: {e} (if it is at its connection cap, its stderr says so)"
            ))
        })?;
        if resp.status() == hyper::StatusCode::UNAUTHORIZED && matches!(self.to, To::Tcp(_)) {
            let body = collect(resp.into_body()).await.unwrap_or_default();
            let why = serde_json::from_slice::<serde_json::Value>(&body)
                .ok()
                .and_then(|j| j["error"].as_str().map(str::to_string))
                .unwrap_or_else(|| "401 Unauthorized".into());
            return Err(ClientError::Unauthorized(why));
        }
        Ok(resp)
    }
}

/// The HTTP/1.1 handshake on a connection; the connection is driven by a
/// task of its own until the answer is read.
async fn handshake<IO>(io: IO) -> Result<SendRequest<Empty<Bytes>>, ClientError>
where
    IO: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let (sender, conn) = hyper::client::conn::http1::handshake(io).await.map_err(|e| ClientError::Io(e.to_string()))?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(sender)
}

async fn collect(body: Incoming) -> Result<Vec<u8>, ClientError> {
    Ok(body.collect().await.map_err(|e| ClientError::Io(e.to_string()))?.to_bytes().to_vec())
}

#[cfg(unix)]
async fn local(socket: &Path) -> Result<hyper_util::rt::TokioIo<tokio::net::UnixStream>, ClientError> {
    let s =
        tokio::net::UnixStream::connect(socket).await.map_err(|e| ClientError::NoDaemon(socket.to_path_buf(), e))?;
    Ok(hyper_util::rt::TokioIo::new(s))
}

#[cfg(windows)]
async fn local(
    socket: &Path,
) -> Result<hyper_util::rt::TokioIo<tokio::net::windows::named_pipe::NamedPipeClient>, ClientError> {
    let name = crate::api::local_address(socket);
    let p = crate::api::pipe::connect(&name).await.map_err(|e| ClientError::NoDaemon(name.into(), e))?;
    Ok(hyper_util::rt::TokioIo::new(p))
}
