//! Who may use the dashboard: the token of `[daemon] web`, shown once at
//! the login form, or sent as `Authorization: Bearer` by a program.
//!
//! The login sets a cookie that holds a session key made at the daemon's
//! start, not the token: HttpOnly (no script reads it), SameSite=Strict
//! (no other site's page sends it), Secure under TLS. A restarted daemon
//! makes a new key, so every browser logs in again. No token ever goes in
//! a URL, where logs and histories would keep it.

use super::csrf::{self, Credential};
use crate::api::Token;
use crate::config::WebConfig;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::{Form, Json};
use serde::Deserialize;
use serde_json::json;
use std::sync::Arc;
use subtle::ConstantTimeEq;

/// The cookie's name.
pub const COOKIE: &str = "corral_session";

/// The token, the session key, and whether the listener speaks TLS.
#[derive(Clone)]
pub struct WebAuth {
    token: Token,
    session: Arc<str>,
    tls: bool,
}

impl std::fmt::Debug for WebAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebAuth").field("tls", &self.tls).finish_non_exhaustive()
    }
}

impl WebAuth {
    /// Reads the token file and makes this run's session key. One line
    /// for a person on error.
    pub fn load(cfg: &WebConfig) -> Result<WebAuth, String> {
        let token = Token::from_file(&cfg.token_file)?;
        crate::api::warn_if_shared(&cfg.token_file);
        WebAuth::new(token, cfg.tls.is_some())
    }

    /// With a token already read; the session key is new.
    pub fn new(token: Token, tls: bool) -> Result<WebAuth, String> {
        let mut key = [0u8; 32];
        ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut key)
            .map_err(|_| "the system gave no random bytes for the dashboard's session key".to_string())?;
        let session: String = key.iter().map(|b| format!("{b:02x}")).collect();
        Ok(WebAuth { token, session: session.into(), tls })
    }

    /// How `headers` prove who sent them, if they do.
    fn credential(&self, headers: &HeaderMap) -> Credential {
        if self.token.authorizes(headers).is_ok() {
            return Credential::Bearer;
        }
        let cookies = headers.get_all(header::COOKIE).into_iter().filter_map(|v| v.to_str().ok());
        let presented = cookies.flat_map(|c| c.split(';')).filter_map(|kv| kv.trim().split_once('='));
        let mut ok = false;
        for (name, value) in presented {
            // Every cookie of that name is compared, so the time taken
            // does not tell which one came close.
            ok |= name == COOKIE && bool::from(value.as_bytes().ct_eq(self.session.as_bytes()));
        }
        if ok {
            Credential::Cookie
        } else {
            Credential::None
        }
    }

    fn set_cookie(&self) -> String {
        let secure = if self.tls { "; Secure" } else { "" };
        format!("{COOKIE}={}; Path=/; HttpOnly; SameSite=Strict{secure}", self.session)
    }
}

/// The middleware in front of the API: the token or the session cookie,
/// and for anything that changes state, the CSRF rules ([`csrf::check`]).
pub(super) async fn require(State(auth): State<WebAuth>, req: Request, next: Next) -> Response {
    let cred = auth.credential(req.headers());
    if cred == Credential::None {
        return (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Bearer realm=\"corral\"")],
            Json(json!({ "error": "log in at / with the token, or send `Authorization: Bearer <token>`" })),
        )
            .into_response();
    }
    if let Err(why) = csrf::check(req.method(), req.headers(), cred) {
        return (StatusCode::FORBIDDEN, Json(json!({ "error": why }))).into_response();
    }
    next.run(req).await
}

#[derive(Deserialize)]
pub(super) struct Login {
    token: String,
}

/// `POST /login` from the page's form: the cookie and back to `/`, or
/// 401 with a page that says the token was wrong.
pub(super) async fn login(State(auth): State<WebAuth>, headers: HeaderMap, Form(form): Form<Login>) -> Response {
    if let Err(why) = csrf::check(&axum::http::Method::POST, &headers, Credential::None) {
        return (StatusCode::FORBIDDEN, Json(json!({ "error": why }))).into_response();
    }
    if !auth.token.matches(form.token.trim().as_bytes()) {
        let page = "<!doctype html><meta charset=utf-8><title>corral</title>\
                    <p>Wrong token. <a href=\"/\">Try again</a>.</p>";
        return (StatusCode::UNAUTHORIZED, [(header::CONTENT_TYPE, "text/html; charset=utf-8")], page).into_response();
    }
    let mut res = (StatusCode::SEE_OTHER, [(header::LOCATION, "/")]).into_response();
    if let Ok(v) = HeaderValue::from_str(&auth.set_cookie()) {
        res.headers_mut().insert(header::SET_COOKIE, v);
    }
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "0123456789abcdef0123";

    fn with_cookie(v: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::COOKIE, HeaderValue::from_str(v).unwrap());
        h
    }

    #[test]
    fn the_cookie_holds_a_session_key_not_the_token() {
        let a = WebAuth::new(Token::new(GOOD).unwrap(), false).unwrap();
        let c = a.set_cookie();
        assert!(!c.contains(GOOD), "{c}");
        assert!(c.contains("HttpOnly") && c.contains("SameSite=Strict") && !c.contains("Secure"), "{c}");
        assert!(WebAuth::new(Token::new(GOOD).unwrap(), true).unwrap().set_cookie().ends_with("; Secure"));
        let value = c.split(';').next().unwrap();
        assert_eq!(a.credential(&with_cookie(value)), Credential::Cookie);
        assert_eq!(a.credential(&with_cookie(&format!("x=1; {value}; y=2"))), Credential::Cookie);
        assert_eq!(a.credential(&with_cookie(&format!("{COOKIE}={GOOD}"))), Credential::None);
        assert_eq!(a.credential(&HeaderMap::new()), Credential::None);
        // Two runs never share a key.
        let b = WebAuth::new(Token::new(GOOD).unwrap(), false).unwrap();
        assert_eq!(b.credential(&with_cookie(value)), Credential::None);
    }

    #[test]
    fn the_bearer_token_works_as_on_the_tcp_listener() {
        let a = WebAuth::new(Token::new(GOOD).unwrap(), false).unwrap();
        let mut h = HeaderMap::new();
        h.insert(header::AUTHORIZATION, HeaderValue::from_str(&format!("Bearer {GOOD}")).unwrap());
        assert_eq!(a.credential(&h), Credential::Bearer);
    }
}
