//! A small HTTP/1.1 client for the local control API, for the `corral`
//! verbs and for tests.

use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use std::path::{Path, PathBuf};

/// Why a request did not get an answer.
#[derive(Debug)]
pub enum ClientError {
    /// Nothing listens on the socket.
    NoDaemon(PathBuf, std::io::Error),
    /// The connection broke, or the platform has no local API.
    Io(String),
}

impl std::fmt::Display for ClientError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ClientError::NoDaemon(p, e) => {
                write!(f, "no daemon is running on {} ({e}); start one with `corral up`", p.display())
            }
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
    /// The whole body.
    pub body: Vec<u8>,
}

impl Reply {
    /// The body as JSON (`null` when it is not JSON).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }
}

/// Talks to one daemon's socket.
#[derive(Debug, Clone)]
pub struct Client {
    socket: PathBuf,
}

impl Client {
    /// A client for the socket at `socket`.
    pub fn new(socket: &Path) -> Client {
        Client { socket: socket.to_path_buf() }
    }

    /// Sends one request and reads the whole answer.
    pub async fn request(&self, method: &str, path: &str) -> Result<Reply, ClientError> {
        let mut body = Vec::new();
        let status = self
            .stream(method, path, |chunk| {
                body.extend_from_slice(chunk);
                true
            })
            .await?;
        Ok(Reply { status, body })
    }

    /// Sends one request and hands each chunk of the answer to `each`
    /// until the answer ends or `each` returns false. Returns the status.
    pub async fn stream(
        &self,
        method: &str,
        path: &str,
        mut each: impl FnMut(&[u8]) -> bool,
    ) -> Result<u16, ClientError> {
        let io = self.connect().await?;
        let (mut sender, conn) =
            hyper::client::conn::http1::handshake(io).await.map_err(|e| ClientError::Io(e.to_string()))?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        let req = hyper::Request::builder()
            .method(method)
            .uri(path)
            .header(hyper::header::HOST, "corral")
            .body(Empty::<Bytes>::new())
            .map_err(|e| ClientError::Io(e.to_string()))?;
        let resp = sender
            .send_request(req)
            .await
            .map_err(|e| ClientError::Io(format!("the daemon closed the connection: {e}")))?;
        let status = resp.status().as_u16();
        let mut body = resp.into_body();
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| ClientError::Io(e.to_string()))?;
            if let Some(data) = frame.data_ref() {
                if !each(data) {
                    break;
                }
            }
        }
        Ok(status)
    }

    #[cfg(unix)]
    async fn connect(&self) -> Result<hyper_util::rt::TokioIo<tokio::net::UnixStream>, ClientError> {
        let s = tokio::net::UnixStream::connect(&self.socket)
            .await
            .map_err(|e| ClientError::NoDaemon(self.socket.clone(), e))?;
        Ok(hyper_util::rt::TokioIo::new(s))
    }

    #[cfg(windows)]
    async fn connect(
        &self,
    ) -> Result<hyper_util::rt::TokioIo<tokio::net::windows::named_pipe::NamedPipeClient>, ClientError> {
        let name = crate::api::local_address(&self.socket);
        let p = crate::api::pipe::connect(&name).await.map_err(|e| ClientError::NoDaemon(name.into(), e))?;
        Ok(hyper_util::rt::TokioIo::new(p))
    }
}
