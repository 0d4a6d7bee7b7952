//! A cap on the dashboard's live streams (the event stream and followed
//! logs): each holds a connection and a task for as long as a tab is
//! open, so past [`MAX_STREAMS`] a new one gets 503 instead of a slot.
//! Each stream's own buffers are bounded where it is made (`api/mod.rs`:
//! a broadcast receiver of fixed depth, a follower's channel of two
//! batches).

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;
use std::sync::Arc;
use tokio::sync::Semaphore;
use tokio_stream::StreamExt;

/// Live streams open at once on one dashboard listener: a tab holds two
/// (events and the selected service's log).
pub const MAX_STREAMS: usize = 32;

/// The slots.
#[derive(Debug, Clone)]
pub struct Streams(Arc<Semaphore>);

impl Default for Streams {
    fn default() -> Self {
        Streams(Arc::new(Semaphore::new(MAX_STREAMS)))
    }
}

/// True for a request whose answer streams until the client leaves.
fn streams(req: &Request) -> bool {
    let uri = req.uri();
    match uri.path() {
        "/v1/events/stream" => true,
        "/v1/logs" => uri.query().unwrap_or("").split('&').any(|kv| kv == "follow=true" || kv == "follow=1"),
        _ => false,
    }
}

/// The middleware: a streaming answer holds a slot until its body is
/// dropped (the client gone, or the daemon stopping).
pub(super) async fn limit(State(slots): State<Streams>, req: Request, next: Next) -> Response {
    if !streams(&req) {
        return next.run(req).await;
    }
    let Ok(permit) = slots.0.clone().try_acquire_owned() else {
        let why = format!("{MAX_STREAMS} live streams are open on the dashboard already; close a tab");
        return (StatusCode::SERVICE_UNAVAILABLE, Json(json!({ "error": why }))).into_response();
    };
    let res = next.run(req).await;
    let (parts, body) = res.into_parts();
    let held = body.into_data_stream().map(move |chunk| {
        let _slot = &permit;
        chunk
    });
    Response::from_parts(parts, Body::from_stream(held))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::routing::get;
    use axum::Router;
    use tower::ServiceExt;

    fn app(slots: Streams) -> Router {
        let endless = || async { Body::from_stream(endless_body()) };
        Router::new()
            .route("/v1/events/stream", get(endless))
            .route("/v1/services", get(|| async { "ok" }))
            .layer(axum::middleware::from_fn_with_state(slots, limit))
    }

    /// A body that never ends, as an event stream with nothing to say.
    fn endless_body() -> impl tokio_stream::Stream<Item = Result<axum::body::Bytes, std::convert::Infallible>> {
        tokio_stream::pending()
    }

    async fn status(app: &Router, uri: &str) -> (StatusCode, Response) {
        let req = axum::http::Request::get(uri).body(Body::empty()).unwrap();
        let res = app.clone().oneshot(req).await.unwrap();
        (res.status(), res)
    }

    #[tokio::test]
    async fn past_the_cap_a_stream_gets_503_until_one_is_closed() {
        let app = app(Streams::default());
        let mut open = Vec::new();
        for _ in 0..MAX_STREAMS {
            let (code, res) = status(&app, "/v1/events/stream").await;
            assert_eq!(code, StatusCode::OK);
            open.push(res);
        }
        assert_eq!(status(&app, "/v1/events/stream").await.0, StatusCode::SERVICE_UNAVAILABLE);
        // Requests that do not stream are not counted.
        assert_eq!(status(&app, "/v1/services").await.0, StatusCode::OK);
        // A closed tab gives its slot back.
        drop(open.pop());
        assert_eq!(status(&app, "/v1/events/stream").await.0, StatusCode::OK);
    }
}
