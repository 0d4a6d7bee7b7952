//! `POST /v1/services/{name}/limits?memory=BYTES&max_procs=N&cpus=CORES`:
//! new limits for the running instances, without a restart (`corral limit`).

use super::{error, unknown, Api};
use crate::live_limits::LimitChange;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

pub(super) async fn set(
    State(api): State<Api>,
    Path(name): Path<String>,
    Query(change): Query<LimitChange>,
) -> Response {
    if change.is_empty() {
        return error(StatusCode::BAD_REQUEST, "no limit given: set memory, max_procs or cpus");
    }
    let sup = api.sup.clone();
    let r = tokio::task::spawn_blocking(move || sup.set_limits(&name, &change)).await;
    match r {
        Ok(Ok(list)) => {
            Json(json!({ "ok": list.iter().all(|r| r.error.is_none()), "instances": list })).into_response()
        }
        Ok(Err(e)) => unknown(e),
        Err(_) => error(StatusCode::INTERNAL_SERVER_ERROR, "changing the limits failed"),
    }
}
