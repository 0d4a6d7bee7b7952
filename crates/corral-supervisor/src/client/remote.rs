//! A daemon's `[daemon.tcp]` listener as a client sees it: an
//! `https://HOST:PORT` URL, whom to trust, and the bearer token. The
//! listener speaks TLS only, so a plain `http://` URL is refused here
//! rather than sent a request it would answer with 400.

use super::ClientError;
use crate::api::Token;
use crate::tls::Trust;
use hyper::Uri;
use std::time::Duration;
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

/// Connecting and the TLS handshake together get this long: a host that
/// drops packets must not hang a verb for minutes.
const CONNECT_DEADLINE: Duration = Duration::from_secs(10);

/// Where and how to reach a daemon over TCP.
#[derive(Clone)]
pub struct Remote {
    host: String,
    port: u16,
    trust: Trust,
    token: Token,
}

impl std::fmt::Debug for Remote {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Remote").field("url", &self.url()).field("trust", &self.trust).finish_non_exhaustive()
    }
}

impl Remote {
    /// `url` is `https://HOST:PORT` (a trailing `/` is allowed; the port
    /// defaults to 443). The error is one line for a person.
    pub fn new(url: &str, trust: Trust, token: Token) -> Result<Remote, String> {
        let (host, port) = parse(url)?;
        Ok(Remote { host, port, trust, token })
    }

    /// Checks a URL alone, before the token and CA are read.
    pub fn check_url(url: &str) -> Result<(), String> {
        parse(url).map(|_| ())
    }

    /// `https://HOST:PORT`, as the daemon's `listening on` line has it.
    pub fn url(&self) -> String {
        format!("https://{}", self.authority())
    }

    /// `HOST:PORT`, brackets around an IPv6 address: the `Host` header.
    pub(super) fn authority(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    /// The `Authorization` header.
    pub(super) fn bearer(&self) -> String {
        self.token.bearer()
    }

    /// A TLS connection to the listener, the certificate checked against
    /// the URL's host.
    pub(super) async fn connect(&self) -> Result<TlsStream<TcpStream>, ClientError> {
        let url = self.url();
        let connect = async {
            let tcp = TcpStream::connect((self.host.as_str(), self.port))
                .await
                .map_err(|e| ClientError::Unreachable(url.clone(), e.to_string()))?;
            let _ = tcp.set_nodelay(true);
            crate::tls::connect(tcp, &self.host, &self.trust).await.map_err(|e| ClientError::Tls(url.clone(), e))
        };
        match tokio::time::timeout(CONNECT_DEADLINE, connect).await {
            Ok(r) => r,
            Err(_) => {
                Err(ClientError::Unreachable(url.clone(), format!("no answer within {}s", CONNECT_DEADLINE.as_secs())))
            }
        }
    }
}

/// `https://HOST[:PORT][/]` into the host (without brackets) and port.
fn parse(url: &str) -> Result<(String, u16), String> {
    let expected = "expected https://HOST:PORT, the daemon's [daemon.tcp] listen address";
    let uri: Uri = url.parse().map_err(|e| format!("invalid URL `{url}`: {e} ({expected})"))?;
    match uri.scheme_str() {
        Some(s) if s.eq_ignore_ascii_case("https") => {}
        Some(s) if s.eq_ignore_ascii_case("http") => {
            let rest = &url[s.len()..];
            return Err(format!(
                "`{url}` is plain HTTP, and the daemon's TCP listener speaks TLS only (hint: use https{rest})"
            ));
        }
        Some(other) => return Err(format!("invalid URL `{url}`: scheme `{other}` ({expected})")),
        None => return Err(format!("invalid URL `{url}`: no scheme ({expected})")),
    }
    let host = uri.host().unwrap_or_default().trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() {
        return Err(format!("invalid URL `{url}`: no host ({expected})"));
    }
    if uri.path_and_query().is_some_and(|p| p.as_str() != "/") {
        return Err(format!("invalid URL `{url}`: it has a path; the verbs add their own ({expected})"));
    }
    Ok((host.to_string(), uri.port_u16().unwrap_or(443)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_https_urls_without_a_path_are_taken() {
        assert_eq!(parse("https://127.0.0.1:7070"), Ok(("127.0.0.1".into(), 7070)));
        assert_eq!(parse("https://localhost:7070/"), Ok(("localhost".into(), 7070)));
        assert_eq!(parse("HTTPS://[::1]:7070"), Ok(("::1".into(), 7070)));
        assert_eq!(parse("https://corral.example"), Ok(("corral.example".into(), 443)));
        let e = parse("http://127.0.0.1:7070").unwrap_err();
        assert_eq!(
            e,
            "`http://127.0.0.1:7070` is plain HTTP, and the daemon's TCP listener speaks TLS only (hint: use https://127.0.0.1:7070)"
        );
        assert!(parse("https://127.0.0.1:7070/v1/services").unwrap_err().contains("has a path"));
        assert!(parse("127.0.0.1:7070").unwrap_err().starts_with("invalid URL"));
        assert!(parse("ftp://x:1").unwrap_err().contains("scheme `ftp`"));
    }

    #[test]
    fn the_host_header_brackets_ipv6() {
        let token = Token::new("0123456789abcdef0123").unwrap();
        let r = Remote::new("https://[::1]:7070", Trust::Roots, token.clone()).unwrap();
        assert_eq!((r.authority(), r.url()), ("[::1]:7070".to_string(), "https://[::1]:7070".to_string()));
        assert!(!format!("{r:?}").contains("0123456789abcdef0123"), "the token never shows");
        let r = Remote::new("https://localhost:1/", Trust::Roots, token).unwrap();
        assert_eq!(r.url(), "https://localhost:1");
    }
}
