//! The dashboard, `[daemon] web`: one page served by the daemon that shows
//! every instance (state, readiness, restarts, CPU and memory sparklines),
//! the selected one's process tree as a graph and its log following live,
//! recent events, and buttons for start, stop, restart and dump.
//!
//! The page is static and embedded ([`headers`]); everything it shows
//! comes from the control API, mounted here behind the token or the
//! session cookie ([`session`]) and the CSRF rules ([`csrf`]). Live updates
//! ride the API's event stream; the page asks for the instances' usage
//! every few seconds only. The listener (plain http on loopback, or TLS)
//! is [`crate::api::BoundWeb`].

pub mod csrf;
pub mod headers;
pub mod session;
pub mod streams;

pub use session::WebAuth;
pub use streams::Streams;

use crate::api::Api;
use axum::routing::{get, post};
use axum::Router;

/// The dashboard's router: the page, the login, and the API under `/v1`.
pub fn router(api: Api, auth: WebAuth) -> Router {
    let guarded = crate::api::router(api)
        .layer(axum::middleware::from_fn_with_state(Streams::default(), streams::limit))
        .layer(axum::middleware::from_fn_with_state(auth.clone(), session::require));
    Router::new()
        .route("/", get(headers::index))
        .route("/app.js", get(headers::app_js))
        .route("/style.css", get(headers::style_css))
        .route("/login", post(session::login))
        .with_state(auth)
        .merge(guarded)
        .layer(axum::middleware::from_fn(headers::secure))
}

/// The dashboard read and bound, before any service starts.
#[derive(Debug)]
pub struct Dashboard {
    auth: WebAuth,
    bound: crate::api::BoundWeb,
}

impl Dashboard {
    /// Reads the token (and certificate) and binds the address. One line
    /// for a person on error.
    pub async fn bind(cfg: &crate::config::WebConfig) -> Result<Dashboard, String> {
        let auth = WebAuth::load(cfg)?;
        let bound = crate::api::BoundWeb::bind(cfg).await?;
        Ok(Dashboard { auth, bound })
    }

    /// Where a browser finds it.
    pub fn url(&self) -> String {
        self.bound.url()
    }

    /// Serves the page and the API until `stop` is notified.
    pub fn serve(
        self,
        api: Api,
        clients: &crate::api::Clients,
        stop: std::sync::Arc<tokio::sync::Notify>,
    ) -> tokio::task::JoinHandle<std::io::Result<()>> {
        self.bound.serve(router(api, self.auth), clients, async move { stop.notified().await })
    }
}
