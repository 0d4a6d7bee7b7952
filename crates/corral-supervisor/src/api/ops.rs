//! `POST /v1/services/{name}/signal`, `/reload` and `/scale`: operations
//! on one running service that restart nothing (`supervisor/ops.rs`).
//!
//! - `signal?signal=HUP[&all_members=true][&instance=N]`
//! - `reload`: `{"ok": …, "instances": [{instance, pid, ok, outcome}]}`,
//!   `ok` false when a reload command failed.
//! - `scale?instances=N`
//!
//! A bad request is a 400 (a 404 for an unknown service) and changes
//! nothing; a request with nothing to act on (no instance running) a 409.

use super::query::JsonQuery;
use super::{error, unknown, Api};
use crate::supervisor::OpError;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;

/// The routes, merged into the API's router.
pub(super) fn router() -> Router<Api> {
    Router::new()
        .route("/v1/services/{name}/signal", post(signal))
        .route("/v1/services/{name}/reload", post(reload))
        .route("/v1/services/{name}/scale", post(scale))
}

fn refused(e: OpError) -> Response {
    match e {
        OpError::Unknown(u) => unknown(u),
        OpError::BadInput(m) => error(StatusCode::BAD_REQUEST, m),
        OpError::Refused(m) => error(StatusCode::CONFLICT, m),
    }
}

#[derive(Deserialize)]
struct SignalQuery {
    signal: String,
    all_members: Option<bool>,
    instance: Option<u32>,
}

/// Who asked, as the listener saw it (see `actor.rs`).
type By = Option<axum::extract::Extension<super::Actor>>;

async fn signal(
    State(api): State<Api>,
    by: By,
    Path(name): Path<String>,
    JsonQuery(q): JsonQuery<SignalQuery>,
) -> Response {
    let sig: corral::Signal = match q.signal.parse() {
        Ok(s) => s,
        Err(e) => return error(StatusCode::BAD_REQUEST, e),
    };
    api.sup.requested(&format!("signal {sig} to `{name}`"), by.map(|b| b.0).as_ref());
    match api.sup.signal(&name, sig, q.all_members.unwrap_or(false), q.instance).await {
        Ok(list) => {
            let ok = list.iter().all(|s| s.error.is_none());
            Json(json!({ "ok": ok, "signal": sig.to_string(), "instances": list })).into_response()
        }
        Err(e) => refused(e),
    }
}

async fn reload(State(api): State<Api>, by: By, Path(name): Path<String>) -> Response {
    api.sup.requested(&format!("reload of `{name}`"), by.map(|b| b.0).as_ref());
    match api.sup.reload_service(&name).await {
        Ok(list) => Json(json!({ "ok": list.iter().all(|r| r.ok), "instances": list })).into_response(),
        Err(e) => refused(e),
    }
}

#[derive(Deserialize)]
struct ScaleQuery {
    instances: u32,
}

async fn scale(
    State(api): State<Api>,
    by: By,
    Path(name): Path<String>,
    JsonQuery(q): JsonQuery<ScaleQuery>,
) -> Response {
    let by = by.map(|b| b.0);
    api.sup.requested(&format!("scale of `{name}` to {}", q.instances), by.as_ref());
    match api.sup.scale_by(&name, q.instances, by).await {
        Ok(()) => {
            let instances: Vec<_> = api.sup.status().into_iter().filter(|i| i.service == name).collect();
            Json(json!({ "ok": true, "instances": instances })).into_response()
        }
        Err(e) => refused(e),
    }
}
