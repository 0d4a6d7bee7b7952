//! Whether a request that changes something may come from where it came
//! from: the dashboard's answer to cross-site request forgery.
//!
//! A browser tells where a request started: `Sec-Fetch-Site` (every
//! current browser) and `Origin` (on every POST). A request that says it
//! comes from another site is refused whatever it carries. A request
//! authenticated by the session cookie must also carry [`HEADER`], which
//! a page of another origin cannot add without a CORS preflight this
//! server never grants; a plain HTML form cannot add it at all. Programs
//! that send the bearer token send neither browser header and pass.

use axum::http::{header, HeaderMap, Method};

/// The header the dashboard's own script puts on every action.
pub const HEADER: &str = "x-corral-csrf";

/// How the request proved who it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Credential {
    /// `Authorization: Bearer`: a program, or the page's own script.
    Bearer,
    /// The session cookie, which a browser attaches by itself.
    Cookie,
    /// Nothing yet: the login form.
    None,
}

/// `Ok` when a request with `method` and `headers` may go on. `host` is
/// the `Host` the request was sent to, so an `Origin` must name it.
pub fn check(method: &Method, headers: &HeaderMap, cred: Credential) -> Result<(), &'static str> {
    if matches!(*method, Method::GET | Method::HEAD) {
        return Ok(());
    }
    let get = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    if let Some(site) = get("sec-fetch-site") {
        if !matches!(site, "same-origin" | "none") {
            return Err("a request from another site is refused (Sec-Fetch-Site)");
        }
    }
    if let Some(origin) = get(header::ORIGIN.as_str()) {
        let host = get(header::HOST.as_str()).unwrap_or("");
        let same = origin
            .strip_prefix("https://")
            .or_else(|| origin.strip_prefix("http://"))
            .is_some_and(|o| !host.is_empty() && o.eq_ignore_ascii_case(host));
        if !same {
            return Err("a request from another origin is refused (Origin)");
        }
    }
    if cred == Credential::Cookie && get(HEADER) != Some("1") {
        return Err("an action needs the X-Corral-CSRF header the dashboard sends");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn h(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut m = HeaderMap::new();
        for (k, v) in pairs {
            m.insert(*k, HeaderValue::from_static(v));
        }
        m
    }

    const HOST: (&str, &str) = ("host", "127.0.0.1:8080");

    #[test]
    fn reads_always_pass() {
        let cross = h(&[HOST, ("sec-fetch-site", "cross-site"), ("origin", "http://evil.example")]);
        assert!(check(&Method::GET, &cross, Credential::Cookie).is_ok());
    }

    #[test]
    fn the_dashboards_own_post_passes() {
        let own =
            h(&[HOST, ("sec-fetch-site", "same-origin"), ("origin", "http://127.0.0.1:8080"), ("x-corral-csrf", "1")]);
        assert!(check(&Method::POST, &own, Credential::Cookie).is_ok());
        // The login form: no custom header, but from here.
        let form = h(&[HOST, ("sec-fetch-site", "same-origin"), ("origin", "http://127.0.0.1:8080")]);
        assert!(check(&Method::POST, &form, Credential::None).is_ok());
    }

    #[test]
    fn a_cross_site_post_is_refused_whatever_it_carries() {
        for site in ["cross-site", "same-site"] {
            let mut m = h(&[HOST, ("origin", "http://127.0.0.1:8080"), ("x-corral-csrf", "1")]);
            m.insert("sec-fetch-site", HeaderValue::from_static(site));
            assert!(check(&Method::POST, &m, Credential::Cookie).is_err(), "{site}");
            assert!(check(&Method::POST, &m, Credential::Bearer).is_err(), "{site}");
        }
        for origin in ["http://evil.example", "null", "http://127.0.0.1:8081", "http://127.0.0.1:8080.evil"] {
            let mut m = h(&[HOST, ("x-corral-csrf", "1")]);
            m.insert("origin", HeaderValue::from_str(origin).unwrap());
            assert!(check(&Method::POST, &m, Credential::Cookie).is_err(), "{origin}");
        }
    }

    #[test]
    fn a_cookie_alone_is_not_enough_to_act() {
        assert!(check(&Method::POST, &h(&[HOST]), Credential::Cookie).is_err());
        // A program with the bearer token sends no browser headers.
        assert!(check(&Method::POST, &h(&[HOST]), Credential::Bearer).is_ok());
    }
}
