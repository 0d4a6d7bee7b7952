//! Bearer-token authentication for the TCP listener. The Unix socket does
//! not use it: there the OS says who the peer is.
//!
//! The token is read from `[daemon.tcp] token_file` (its first line) when
//! the daemon starts; every request on the TCP listener must carry
//! `Authorization: Bearer <token>`, compared in constant time. Anything
//! else gets `401` with a JSON error and never reaches a handler.

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;
use std::path::Path;
use std::sync::Arc;
use subtle::ConstantTimeEq;

/// The secret every TCP request must present. Its `Debug` hides it.
#[derive(Clone)]
pub struct Token(Arc<[u8]>);

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(..)")
    }
}

impl Token {
    /// Fewer characters than this is a password, not a token.
    pub const MIN_LEN: usize = 16;

    /// Checks a token: visible ASCII (what a header can carry), no spaces,
    /// at least 16 characters ([`Token::MIN_LEN`]). The error names what
    /// is wrong but never the token.
    pub fn new(text: &str) -> Result<Token, String> {
        if text.is_empty() {
            return Err("it is empty".into());
        }
        if !text.bytes().all(|b| b.is_ascii_graphic()) {
            return Err("it has spaces, control or non-ASCII characters; a header cannot carry them".into());
        }
        if text.len() < Token::MIN_LEN {
            return Err(format!("it has {} characters; at least {} are needed", text.len(), Token::MIN_LEN));
        }
        Ok(Token(text.as_bytes().into()))
    }

    /// Reads the token from the first line of `path` (surrounding
    /// whitespace and a trailing newline are ignored). One line for a
    /// person on error.
    pub fn from_file(path: &Path) -> Result<Token, String> {
        let text =
            std::fs::read_to_string(path).map_err(|e| format!("cannot read the token file {}: {e}", path.display()))?;
        let first = text.lines().next().unwrap_or("").trim();
        Token::new(first).map_err(|why| {
            format!(
                "the token file {} is unusable: {why} (make one with `openssl rand -hex 32 > {}`)",
                path.display(),
                path.display()
            )
        })
    }

    /// Reads the token a client presents from the first line of `path`,
    /// as the daemon reads its own. One line for a person on error.
    pub fn from_client_file(path: &Path) -> Result<Token, String> {
        let text =
            std::fs::read_to_string(path).map_err(|e| format!("cannot read the token file {}: {e}", path.display()))?;
        Token::new(text.lines().next().unwrap_or("").trim())
            .map_err(|why| format!("the token file {} is unusable: {why}", path.display()))
    }

    /// `Bearer <token>`: the `Authorization` header a client sends.
    pub fn bearer(&self) -> String {
        // Checked to be visible ASCII when made.
        format!("Bearer {}", String::from_utf8_lossy(&self.0))
    }

    /// True when `given` is the token. The time taken does not depend on
    /// where the two first differ.
    pub fn matches(&self, given: &[u8]) -> bool {
        bool::from(self.0.as_ref().ct_eq(given))
    }

    /// True when the headers hold `Authorization: Bearer <this token>`.
    /// The scheme is case-insensitive, as RFC 9110 says.
    pub fn authorizes(&self, headers: &HeaderMap) -> Result<(), &'static str> {
        let Some(value) = headers.get(header::AUTHORIZATION) else {
            return Err("this listener needs `Authorization: Bearer <token>`");
        };
        let value = value.as_bytes();
        let scheme = b"bearer ";
        if value.len() < scheme.len() || !value[..scheme.len()].eq_ignore_ascii_case(scheme) {
            return Err("this listener needs `Authorization: Bearer <token>`");
        }
        let given = value[scheme.len()..].trim_ascii();
        if self.matches(given) {
            Ok(())
        } else {
            Err("wrong bearer token")
        }
    }
}

/// Warns (one line) when the token file can be read by other users.
#[cfg(unix)]
pub fn warn_if_shared(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(m) = std::fs::metadata(path) {
        if m.permissions().mode() & 0o077 != 0 {
            eprintln!("corral: warning: the token file {} can be read by other users; `chmod 600` it", path.display());
        }
    }
}

/// Windows: ACLs are not checked.
#[cfg(not(unix))]
pub fn warn_if_shared(_path: &Path) {}

/// The middleware: a request without the right token never reaches a
/// handler.
pub async fn require_bearer(State(token): State<Token>, req: Request, next: Next) -> Response {
    match token.authorizes(req.headers()) {
        Ok(()) => next.run(req).await,
        Err(why) => (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Bearer realm=\"corral\"")],
            Json(json!({ "error": why })),
        )
            .into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    const GOOD: &str = "0123456789abcdef0123";

    fn headers(auth: Option<&str>) -> HeaderMap {
        let mut h = HeaderMap::new();
        if let Some(a) = auth {
            h.insert(header::AUTHORIZATION, HeaderValue::from_str(a).unwrap());
        }
        h
    }

    #[test]
    fn only_the_exact_token_matches() {
        let t = Token::new(GOOD).unwrap();
        assert!(t.matches(GOOD.as_bytes()));
        assert!(!t.matches(b"0123456789abcdef012"));
        assert!(!t.matches(b"0123456789abcdef01234"));
        assert!(!t.matches(b"1123456789abcdef0123"));
        assert!(!t.matches(b""));
    }

    #[test]
    fn the_header_needs_the_bearer_scheme() {
        let t = Token::new(GOOD).unwrap();
        assert!(t.authorizes(&headers(Some(&format!("Bearer {GOOD}")))).is_ok());
        assert!(t.authorizes(&headers(Some(&t.bearer()))).is_ok());
        assert!(t.authorizes(&headers(Some(&format!("bearer  {GOOD} ")))).is_ok());
        assert!(t.authorizes(&headers(None)).is_err());
        assert!(t.authorizes(&headers(Some(GOOD))).is_err());
        assert!(t.authorizes(&headers(Some(&format!("Basic {GOOD}")))).is_err());
        assert_eq!(t.authorizes(&headers(Some("Bearer nope"))), Err("wrong bearer token"));
        assert!(t.authorizes(&headers(Some("Bearer"))).is_err());
    }

    #[test]
    fn weak_or_unsendable_tokens_are_refused() {
        assert!(Token::new("").is_err());
        assert!(Token::new("short").unwrap_err().contains("at least 16"));
        assert!(Token::new("0123456789 abcdef0123").is_err());
        assert!(Token::new("0123456789abcdéf0123").is_err());
        assert!(format!("{:?}", Token::new(GOOD).unwrap()).find(GOOD).is_none());
    }

    #[test]
    fn the_file_gives_its_first_line() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("token");
        std::fs::write(&p, format!("  {GOOD}\nignored\n")).unwrap();
        assert!(Token::from_file(&p).unwrap().matches(GOOD.as_bytes()));
        std::fs::write(&p, "\n").unwrap();
        let e = Token::from_file(&p).unwrap_err();
        assert!(e.contains("is empty") && e.contains("unusable"), "{e}");
        let e = Token::from_file(&dir.path().join("missing")).unwrap_err();
        assert!(e.starts_with("cannot read the token file"), "{e}");
    }
}
