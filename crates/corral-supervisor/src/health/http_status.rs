//! The common http probe, plain `http://` with no body check, without
//! hyper's client: the request is written whole in one write and the
//! answer's head parsed with `httparse` (hyper's own parser) as it
//! arrives. With a probe on every service this is most of what a
//! supervisor does when idle, and hyper's connection task (a spawned task
//! per check, a channel to it, a `shutdown` before the close) cost about as
//! much CPU as the kernel's side of the check. https and body checks keep
//! hyper: they need its TLS plumbing and body decoding.

use std::collections::BTreeMap;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The longest answer head read; a longer one fails the check.
const MAX_HEAD: usize = 16 * 1024;
/// Headers parsed in a head; more fail the check.
const MAX_HEADERS: usize = 64;

/// The bytes of `GET path` with the probe's headers. A header that HTTP
/// does not allow (a bad name, a line break in a value) is refused, as
/// hyper's request builder refuses it.
pub(super) fn request(path: &str, authority: &str, headers: &BTreeMap<String, String>) -> Result<Vec<u8>, String> {
    let mut req = Vec::with_capacity(160);
    req.extend_from_slice(b"GET ");
    req.extend_from_slice(path.as_bytes());
    req.extend_from_slice(b" HTTP/1.1\r\n");
    let mut line = |k: &str, v: &str| {
        req.extend_from_slice(k.as_bytes());
        req.extend_from_slice(b": ");
        req.extend_from_slice(v.as_bytes());
        req.extend_from_slice(b"\r\n");
    };
    line("host", authority);
    line("user-agent", concat!("corral-probe/", env!("CARGO_PKG_VERSION")));
    line("connection", "close");
    for (k, v) in headers {
        hyper::header::HeaderName::from_bytes(k.as_bytes()).map_err(|_| format!("bad request: header name `{k}`"))?;
        hyper::header::HeaderValue::from_str(v).map_err(|_| format!("bad request: the value of header `{k}`"))?;
        line(k, v);
    }
    req.extend_from_slice(b"\r\n");
    Ok(req)
}

/// Sends `req` on `s` and returns the answer's status code. What the server
/// already sent of the body is read before the socket closes, so that a
/// small answer ends with a clean close rather than a reset.
pub(super) async fn status(mut s: TcpStream, req: &[u8]) -> Result<u16, String> {
    s.write_all(req).await.map_err(|e| format!("http: {e}"))?;
    let mut head = Vec::with_capacity(1024);
    let mut chunk = [0u8; 2048];
    let code = loop {
        let n = s.read(&mut chunk).await.map_err(|e| format!("http: {e}"))?;
        if n == 0 {
            return Err("http: the connection closed before a whole answer head".into());
        }
        head.extend_from_slice(&chunk[..n]);
        let mut slots = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut resp = httparse::Response::new(&mut slots);
        match resp.parse(&head) {
            Ok(httparse::Status::Complete(_)) => break resp.code.unwrap_or_default(),
            Ok(httparse::Status::Partial) if head.len() < MAX_HEAD => {}
            Ok(httparse::Status::Partial) => return Err(format!("http: an answer head over {} KiB", MAX_HEAD >> 10)),
            Err(e) => return Err(format!("http: invalid answer: {e}")),
        }
    };
    // Only what has arrived: the verdict never waits on the body.
    let mut drained = head.len();
    while drained < MAX_HEAD + super::MAX_BODY {
        match s.try_read(&mut chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => drained += n,
        }
    }
    Ok(code)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_request_is_one_get_with_its_headers() {
        let mut h = BTreeMap::new();
        h.insert("X-Probe".to_string(), "1".to_string());
        let r = String::from_utf8(request("/health?x=1", "127.0.0.1:80", &h).unwrap()).unwrap();
        assert!(r.starts_with("GET /health?x=1 HTTP/1.1\r\nhost: 127.0.0.1:80\r\n"), "{r}");
        assert!(r.contains("\r\nconnection: close\r\nX-Probe: 1\r\n\r\n"), "{r}");
        h.insert("X-Bad".to_string(), "a\r\nInjected: yes".to_string());
        assert!(request("/", "h", &h).unwrap_err().contains("X-Bad"));
        let mut h = BTreeMap::new();
        h.insert("bad name".to_string(), "1".to_string());
        assert!(request("/", "h", &h).is_err());
    }

    #[tokio::test]
    async fn the_status_is_read_from_the_head_whatever_follows() {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let server = tokio::spawn(async move {
            for answer in [
                &b"HTTP/1.1 204 No Content\r\nconnection: close\r\n\r\n"[..],
                b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 8\r\n\r\nfailing\n",
                b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3\r\nok\n\r\n0\r\n\r\n",
                b"nonsense\r\n\r\n",
            ] {
                let (mut c, _) = l.accept().await.unwrap();
                let mut buf = [0u8; 1024];
                let _ = c.read(&mut buf).await;
                // The head in two writes: a reader must wait for the rest.
                c.write_all(&answer[..5]).await.unwrap();
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                c.write_all(&answer[5..]).await.unwrap();
            }
        });
        let req = request("/health", "x", &BTreeMap::new()).unwrap();
        let mut got = Vec::new();
        for _ in 0..4 {
            got.push(status(TcpStream::connect(addr).await.unwrap(), &req).await);
        }
        server.await.unwrap();
        assert_eq!(got[..3], [Ok(204), Ok(503), Ok(200)]);
        assert!(got[3].as_ref().unwrap_err().contains("invalid answer"), "{got:?}");
    }
}
