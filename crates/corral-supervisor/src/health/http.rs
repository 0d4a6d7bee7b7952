//! `http = "http://host:port/path"`: one GET on a fresh connection, passed
//! when the status is one of the expected ones (2xx by default). The body
//! is not read past what the status line needs.

use http_body_util::Empty;
use hyper::body::Bytes;
use hyper::Uri;
use std::collections::BTreeMap;

/// Checks `url` at load time: `http://`, a host, an optional port and path.
/// Returns the reason it is refused.
pub fn validate(url: &str) -> Result<(), String> {
    let uri: Uri = url.parse().map_err(|e| format!("invalid URL `{url}`: {e}"))?;
    match uri.scheme_str() {
        Some("http") => {}
        Some("https") => {
            return Err(format!("`{url}`: https probes are not supported yet; use http, or a tcp probe on the port"))
        }
        Some(other) => return Err(format!("`{url}`: scheme `{other}` is not http")),
        None => return Err(format!("invalid URL `{url}`: no scheme")),
    }
    if uri.host().is_none_or(str::is_empty) {
        return Err(format!("invalid URL `{url}`: no host"));
    }
    Ok(())
}

/// Whether `code` is in one of the inclusive ranges.
pub fn accepted(code: u16, ranges: &[(u16, u16)]) -> bool {
    ranges.iter().any(|&(lo, hi)| (lo..=hi).contains(&code))
}

/// One GET. `Ok` carries a short note (`status 200`), `Err` the reason.
pub async fn check(url: &str, headers: &BTreeMap<String, String>, status: &[(u16, u16)]) -> Result<String, String> {
    let uri: Uri = url.parse().map_err(|e| format!("invalid URL: {e}"))?;
    let host = uri.host().unwrap_or_default().trim_start_matches('[').trim_end_matches(']').to_string();
    let port = uri.port_u16().unwrap_or(80);
    let stream = tokio::net::TcpStream::connect((host.as_str(), port))
        .await
        .map_err(|e| format!("connect {host}:{port}: {e}"))?;
    let _ = stream.set_nodelay(true);
    let (mut sender, conn) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
        .await
        .map_err(|e| format!("http: {e}"))?;
    // The connection is driven beside the request and dropped with it.
    let conn = tokio::spawn(conn);
    let _guard = AbortOnDrop(conn);
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    let mut req = hyper::Request::get(path)
        .header(hyper::header::HOST, uri.authority().map_or(host.as_str(), |a| a.as_str()))
        .header(hyper::header::USER_AGENT, concat!("corral-probe/", env!("CARGO_PKG_VERSION")))
        .header(hyper::header::CONNECTION, "close");
    for (k, v) in headers {
        req = req.header(k.as_str(), v.as_str());
    }
    let req = req.body(Empty::<Bytes>::new()).map_err(|e| format!("bad request: {e}"))?;
    let resp = sender.send_request(req).await.map_err(|e| format!("http: {e}"))?;
    let code = resp.status();
    let shown = match code.canonical_reason() {
        Some(r) => format!("status {} {r}", code.as_u16()),
        None => format!("status {}", code.as_u16()),
    };
    if accepted(code.as_u16(), status) {
        Ok(shown)
    } else {
        Err(shown)
    }
}

struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_checked_at_load() {
        assert!(validate("http://127.0.0.1:8080/health").is_ok());
        assert!(validate("http://localhost/").is_ok());
        assert!(validate("http://[::1]:80/x?y=1").is_ok());
        assert!(validate("https://127.0.0.1/").unwrap_err().contains("https"));
        assert!(validate("ftp://x/").is_err());
        assert!(validate("127.0.0.1:8080/health").is_err());
        assert!(validate("http://").is_err());
        assert!(validate("http://exa mple/").is_err());
    }

    #[test]
    fn status_ranges() {
        assert!(accepted(204, &[(200, 299)]));
        assert!(!accepted(301, &[(200, 299)]));
        assert!(accepted(301, &[(200, 299), (301, 301)]));
    }
}
