//! `GET /v1/services/{name}/tree?instance=N`: one instance's live process
//! tree as JSON (the `corral::tree` model: `members` with pid, ppid, pgid,
//! sid, cmd, cpu_ms, rss_bytes, and where each is placed), for `corral
//! tree NAME`, `corral top` and the dashboard.

use super::query::JsonQuery;
use super::{error, unknown, Api};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;

#[derive(Deserialize)]
pub(super) struct TreeQuery {
    instance: Option<u32>,
}

pub(super) async fn tree(
    State(api): State<Api>,
    Path(name): Path<String>,
    JsonQuery(q): JsonQuery<TreeQuery>,
) -> Response {
    let index = q.instance.unwrap_or(0);
    match api.sup.tree(&name, index).await {
        Err(e) => unknown(e),
        Ok(Err(why)) => error(StatusCode::CONFLICT, format!("{name}.{index}: {why}")),
        Ok(Ok(t)) => {
            let mut v = serde_json::to_value(&t).unwrap_or_default();
            v["service"] = name.into();
            v["instance"] = index.into();
            Json(v).into_response()
        }
    }
}
