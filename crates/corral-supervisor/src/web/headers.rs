//! The embedded assets and the headers every answer of the dashboard
//! carries. One HTML page, one script, one style sheet, hand-written and
//! compiled into the binary: the page needs no network beyond the daemon.

use axum::extract::Request;
use axum::http::{header, HeaderValue};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

/// The page.
pub const INDEX_HTML: &str = include_str!("assets/index.html");
/// Its script.
pub const APP_JS: &str = include_str!("assets/app.js");
/// Its style sheet.
pub const STYLE_CSS: &str = include_str!("assets/style.css");

/// What a browser downloads to show the dashboard, in bytes.
pub const ASSET_BYTES: usize = INDEX_HTML.len() + APP_JS.len() + STYLE_CSS.len();

// Small: a page, not an application bundle.
const _: () = assert!(ASSET_BYTES < 64 * 1024);

/// Only this origin's own files run, nothing inline, no frames.
const CSP: &str = "default-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'; object-src 'none'";

fn asset(content_type: &'static str, body: &'static str) -> Response {
    ([(header::CONTENT_TYPE, content_type)], body).into_response()
}

pub(super) async fn index() -> Response {
    asset("text/html; charset=utf-8", INDEX_HTML)
}

pub(super) async fn app_js() -> Response {
    asset("text/javascript; charset=utf-8", APP_JS)
}

pub(super) async fn style_css() -> Response {
    asset("text/css; charset=utf-8", STYLE_CSS)
}

/// Adds the security headers to every answer, the API's included.
pub(super) async fn secure(req: Request, next: Next) -> Response {
    let mut res = next.run(req).await;
    let h = res.headers_mut();
    h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    // Not `no-referrer`: under it a browser sends `Origin: null` on the
    // page's own form POST, which the CSRF check must refuse.
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_loads_nothing_from_elsewhere_and_runs_nothing_inline() {
        for (name, text) in [("index.html", INDEX_HTML), ("app.js", APP_JS), ("style.css", STYLE_CSS)] {
            // The SVG namespace is a name, not a place the page loads from.
            let text = text.replace("http://www.w3.org/2000/svg", "");
            assert!(!text.contains("http://") && !text.contains("https://") && !text.contains("//cdn"), "{name}");
        }
        let inline_handler = regex::Regex::new(r"\son[a-z]+\s*=").unwrap();
        assert!(
            !INDEX_HTML.contains("<script>") && !INDEX_HTML.contains(" style=") && !inline_handler.is_match(INDEX_HTML)
        );
        assert!(INDEX_HTML.contains("src=\"/app.js\"") && INDEX_HTML.contains("href=\"/style.css\""));
    }
}
