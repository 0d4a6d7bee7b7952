//! `http = "http://host:port/path"` (or `https://`): one GET on a fresh
//! connection, passed when the status is one of the expected ones (2xx by
//! default). A plain-http status check takes the lean path of
//! [`super::http_status`]. The body is not read past what the status line needs, unless
//! the probe asks about it ([`BodyCheck`]: at most [`MAX_BODY`] bytes). An
//! https probe verifies the server as its [`Trust`] says, against the
//! URL's host.

use super::body::{BodyCheck, MAX_BODY};
use crate::tls::Trust;
use http_body_util::{BodyExt, Empty, Limited};
use hyper::body::Bytes;
use hyper::rt::{Read, Write};
use hyper::Uri;
use std::collections::BTreeMap;

/// Checks `url` at load time: `http://` or `https://`, a host, an optional
/// port and path. Returns the reason it is refused.
pub fn validate(url: &str) -> Result<(), String> {
    let uri: Uri = url.parse().map_err(|e| format!("invalid URL `{url}`: {e}"))?;
    match uri.scheme_str() {
        Some(s) if s.eq_ignore_ascii_case("http") || s.eq_ignore_ascii_case("https") => {}
        Some(other) => return Err(format!("`{url}`: scheme `{other}` is not http or https")),
        None => return Err(format!("invalid URL `{url}`: no scheme")),
    }
    if uri.host().is_none_or(str::is_empty) {
        return Err(format!("invalid URL `{url}`: no host"));
    }
    Ok(())
}

/// True for an `https://` URL.
pub fn is_https(url: &str) -> bool {
    url.parse::<Uri>().is_ok_and(|u| u.scheme() == Some(&hyper::http::uri::Scheme::HTTPS))
}

/// Whether `code` is in one of the inclusive ranges.
pub fn accepted(code: u16, ranges: &[(u16, u16)]) -> bool {
    ranges.iter().any(|&(lo, hi)| (lo..=hi).contains(&code))
}

/// One GET. `Ok` carries a short note (`status 200`), `Err` the reason.
pub async fn check(
    url: &str,
    headers: &BTreeMap<String, String>,
    status: &[(u16, u16)],
    trust: &Trust,
    body: Option<&BodyCheck>,
) -> Result<String, String> {
    let uri: Uri = url.parse().map_err(|e| format!("invalid URL: {e}"))?;
    let https = is_https(url);
    let host = uri.host().unwrap_or_default().trim_start_matches('[').trim_end_matches(']').to_string();
    let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
    let stream = tokio::net::TcpStream::connect((host.as_str(), port))
        .await
        .map_err(|e| format!("connect {host}:{port}: {e}"))?;
    if !https && body.is_none() {
        // The whole request goes in one write: Nagle has nothing to delay.
        let path = uri.path_and_query().map_or("/", |p| p.as_str());
        let req = super::http_status::request(path, uri.authority().map_or(host.as_str(), |a| a.as_str()), headers)?;
        let code = super::http_status::status(stream, &req).await?;
        let shown = shown(code);
        return if accepted(code, status) { Ok(shown) } else { Err(shown) };
    }
    let _ = stream.set_nodelay(true);
    if !https {
        return get(hyper_util::rt::TokioIo::new(stream), &uri, &host, headers, status, body).await;
    }
    let tls = crate::tls::connect(stream, &host, trust).await.map_err(|e| format!("{host}:{port}: {e}"))?;
    get(hyper_util::rt::TokioIo::new(tls), &uri, &host, headers, status, body).await
}

/// The request itself, over plain TCP or TLS.
async fn get<IO: Read + Write + Unpin + Send + 'static>(
    io: IO,
    uri: &Uri,
    host: &str,
    headers: &BTreeMap<String, String>,
    status: &[(u16, u16)],
    body: Option<&BodyCheck>,
) -> Result<String, String> {
    let (mut sender, conn) = hyper::client::conn::http1::handshake(io).await.map_err(|e| format!("http: {e}"))?;
    // The connection is driven beside the request and dropped with it.
    let conn = tokio::spawn(conn);
    let _guard = AbortOnDrop(conn);
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    let mut req = hyper::Request::get(path)
        .header(hyper::header::HOST, uri.authority().map_or(host, |a| a.as_str()))
        .header(hyper::header::USER_AGENT, concat!("corral-probe/", env!("CARGO_PKG_VERSION")))
        .header(hyper::header::CONNECTION, "close");
    for (k, v) in headers {
        req = req.header(k.as_str(), v.as_str());
    }
    let req = req.body(Empty::<Bytes>::new()).map_err(|e| format!("bad request: {e}"))?;
    let resp = sender.send_request(req).await.map_err(|e| format!("http: {e}"))?;
    let code = resp.status();
    let shown = shown(code.as_u16());
    if !accepted(code.as_u16(), status) {
        return Err(shown);
    }
    let Some(want) = body else { return Ok(shown) };
    let read = Limited::new(resp.into_body(), MAX_BODY).collect().await;
    let bytes = match read {
        Ok(b) => b.to_bytes(),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => {
            return Err(format!("{shown}, but the body is over {} KiB", MAX_BODY >> 10));
        }
        Err(e) => return Err(format!("{shown}, but reading the body failed: {e}")),
    };
    match want.check(&bytes) {
        Ok(()) => Ok(format!("{shown}, body ok")),
        Err(why) => Err(format!("{shown}, but {why}")),
    }
}

/// `status 200 OK`, as people read it.
fn shown(code: u16) -> String {
    match hyper::StatusCode::from_u16(code).ok().and_then(|c| c.canonical_reason()) {
        Some(r) => format!("status {code} {r}"),
        None => format!("status {code}"),
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
        assert!(validate("https://127.0.0.1:8443/health").is_ok());
        assert!(validate("HTTPS://localhost/").is_ok());
        assert!(is_https("HTTPS://localhost/") && is_https("https://[::1]/") && !is_https("http://x/"));
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
