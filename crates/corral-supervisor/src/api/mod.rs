//! The control API: HTTP/1.1 and JSON under `/v1`. See README.md, "Control API"
//! for every endpoint. A bad request gets a 4xx with `{"error": …}` and
//! changes nothing.

mod actor;
mod admit;
mod auth;
mod budget;
mod limits;
mod listen;
mod log_lines;
mod members;
mod metrics_listen;
mod ops;
#[cfg(windows)]
pub(crate) mod pipe;
mod query;
mod serve;
mod stall;
mod tcp;
mod tree;
mod web_listen;

pub use actor::Actor;
pub use admit::{Caps, Clients};
pub(crate) use auth::warn_if_shared;
pub use auth::Token;
pub(crate) use budget::clients_for;
pub use budget::FdBudget;
pub use listen::{local_address, serve_local};
pub use members::{Member, MAX_MEMBERS};
pub use metrics_listen::BoundMetrics;
pub use tcp::{BoundTcp, TcpTls};
pub use web_listen::BoundWeb;

use crate::logs::{tail, Follower};
use crate::supervisor::{ReloadError, Supervisor, Target, UnknownService};
use axum::body::{Body, Bytes};
use axum::extract::{Extension, Path, State};
use axum::http::{header, StatusCode};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use query::JsonQuery;
use serde::Deserialize;
use serde_json::json;
use std::convert::Infallible;
use std::sync::Arc;
use tokio::sync::Notify;
use tokio_stream::wrappers::{BroadcastStream, ReceiverStream};
use tokio_stream::StreamExt;

/// Who may use the local API besides the daemon's own user.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Access {
    /// The daemon's own user only (`corral up`).
    #[default]
    Owner,
    /// Also SYSTEM and elevated members of BUILTIN\Administrators: the
    /// people who administer a Windows service (`corral service`), whose
    /// daemon runs as a service account nobody logs on as. Windows only;
    /// on Unix the socket serves its owner alone.
    OwnerAndAdministrators,
}

/// What the handlers share.
#[derive(Clone)]
pub struct Api {
    /// The supervisor.
    pub sup: Supervisor,
    /// Notified when a client asks the daemon to stop (`corral down`).
    pub shutdown: Arc<Notify>,
}

/// The router of every endpoint.
pub fn router(api: Api) -> Router {
    Router::new()
        .route("/v1/daemon", get(daemon))
        .route("/v1/services", get(list))
        .route("/v1/services/{name}", get(one))
        .route("/v1/services/{name}/tree", get(tree::tree))
        .route("/v1/services/{name}/members", get(members::members_of))
        .route("/v1/services/{name}/limits", post(limits::set))
        .route("/v1/services/{name}/{action}", post(act_one))
        .route("/v1/{action}", post(act_all))
        .route("/v1/events", get(events))
        .route("/v1/events/stream", get(event_stream))
        .route("/v1/logs", get(logs))
        .route("/metrics", get(metrics))
        .merge(ops::router())
        .fallback(|| async { error(StatusCode::NOT_FOUND, "no such endpoint; see /v1/services") })
        .method_not_allowed_fallback(|| async { error(StatusCode::METHOD_NOT_ALLOWED, "method not allowed") })
        .with_state(api)
}

/// The router of the plain TCP `metrics_listen`: `/metrics` and nothing
/// else, so it carries no control.
pub fn metrics_router(api: Api) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .fallback(|| async { error(StatusCode::NOT_FOUND, "only /metrics is served here") })
        .with_state(api)
}

/// Prometheus text by default, OpenMetrics when the scraper asks for it.
async fn metrics(State(api): State<Api>, headers: axum::http::HeaderMap) -> Response {
    let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok());
    let format = crate::metrics::Format::from_accept(accept);
    let sup = api.sup.clone();
    match tokio::task::spawn_blocking(move || sup.metrics(format)).await {
        Ok(text) => ([(header::CONTENT_TYPE, format.content_type())], text).into_response(),
        Err(_) => error(StatusCode::INTERNAL_SERVER_ERROR, "collecting the metrics failed"),
    }
}

fn error(code: StatusCode, msg: impl std::fmt::Display) -> Response {
    (code, Json(json!({ "error": msg.to_string() }))).into_response()
}

fn unknown(e: UnknownService) -> Response {
    (StatusCode::NOT_FOUND, Json(json!({ "error": e.to_string(), "did_you_mean": e.did_you_mean }))).into_response()
}

async fn daemon(State(api): State<Api>) -> Response {
    let c = api.sup.config();
    Json(json!({
        "pid": std::process::id(),
        "image": crate::reexec::image(),
        "version": env!("CARGO_PKG_VERSION"),
        "config": c.path,
        "socket": c.daemon.socket,
        "state_dir": c.daemon.state_dir,
        "log_dir": c.daemon.log_dir,
    }))
    .into_response()
}

async fn list(State(api): State<Api>) -> Response {
    let fleet = api.sup.fleet().link.clone();
    Json(json!({ "instances": api.sup.status(), "fleet": fleet })).into_response()
}

async fn one(State(api): State<Api>, Path(name): Path<String>) -> Response {
    if let Err(e) = api.sup.resolve(&Target::Some(vec![name.clone()])) {
        return unknown(e);
    }
    let instances: Vec<_> = api.sup.status().into_iter().filter(|i| i.service == name).collect();
    Json(json!({ "service": name, "instances": instances })).into_response()
}

/// Who asked, as the listener saw it (see `actor.rs`).
type By = Option<Extension<Actor>>;

async fn act_one(State(api): State<Api>, by: By, Path((name, action)): Path<(String, String)>) -> Response {
    act(api, Target::Some(vec![name]), &action, by.map(|b| b.0)).await
}

async fn act_all(State(api): State<Api>, by: By, Path(action): Path<String>) -> Response {
    let by = by.map(|b| b.0);
    match action.as_str() {
        "reload" => {
            api.sup.requested("reload", by.as_ref());
            reload(api, by).await
        }
        "shutdown" => {
            api.sup.requested("shutdown", by.as_ref());
            api.shutdown.notify_one();
            Json(json!({ "ok": true })).into_response()
        }
        // `corral daemon restart`: the stop path re-executes instead.
        "reexec" if cfg!(any(target_os = "linux", windows)) => {
            if let Some(why) = crate::reexec::refused() {
                return error(StatusCode::CONFLICT, why);
            }
            api.sup.requested("reexec", by.as_ref());
            crate::reexec::request();
            api.shutdown.notify_one();
            Json(json!({ "ok": true, "image": crate::reexec::image() })).into_response()
        }
        _ => act(api, Target::All, &action, by).await,
    }
}

async fn act(api: Api, target: Target, action: &str, by: Option<Actor>) -> Response {
    if action == "dump" {
        return match api.sup.dump_by(&target, by).await {
            Ok(list) => Json(json!({ "ok": list.iter().all(|d| d.dir.is_some()), "dumps": list })).into_response(),
            Err(e) => unknown(e),
        };
    }
    let r = match action {
        "start" => api.sup.start_by(&target, by).await,
        "stop" => api.sup.stop_by(&target, by).await,
        "restart" => api.sup.restart_by(&target, by).await,
        other => {
            return error(
                StatusCode::NOT_FOUND,
                format!("unknown action `{other}`: expected start, stop, restart or dump"),
            );
        }
    };
    match r {
        Ok(()) => {
            let names = api.sup.resolve(&target).unwrap_or_default();
            let instances: Vec<_> = api.sup.status().into_iter().filter(|i| names.contains(&i.service)).collect();
            Json(json!({ "ok": true, "instances": instances })).into_response()
        }
        Err(e) => unknown(e),
    }
}

async fn reload(api: Api, by: Option<Actor>) -> Response {
    let path = api.sup.config().path;
    let new = tokio::task::spawn_blocking(move || crate::config::load(&path)).await;
    let Ok(new) = new else { return error(StatusCode::INTERNAL_SERVER_ERROR, "reading the config failed") };
    match api.sup.reload_by(new, by).await {
        Ok(diff) => Json(json!({ "ok": true, "diff": diff })).into_response(),
        Err(ReloadError::Stopping) => {
            error(StatusCode::SERVICE_UNAVAILABLE, "the daemon is stopping; nothing was reloaded")
        }
        Err(ReloadError::Config(errors)) => (
            StatusCode::UNPROCESSABLE_ENTITY,
            Json(json!({
                "error": "the new config is rejected; nothing was changed",
                "errors": errors.0.iter().map(|d| d.to_string()).collect::<Vec<_>>(),
            })),
        )
            .into_response(),
    }
}

#[derive(Deserialize)]
struct EventsQuery {
    n: Option<usize>,
}

async fn events(State(api): State<Api>, JsonQuery(q): JsonQuery<EventsQuery>) -> Response {
    let d = api.sup.config().daemon;
    let n = q.n.unwrap_or(100);
    let lines = tokio::task::spawn_blocking(move || crate::event::recent(&d.state_dir, n, d.events.keep))
        .await
        .unwrap_or_default();
    let events: Vec<serde_json::Value> = lines.iter().filter_map(|l| serde_json::from_str(l).ok()).collect();
    Json(json!({ "events": events })).into_response()
}

async fn event_stream(State(api): State<Api>) -> Sse<impl tokio_stream::Stream<Item = Result<SseEvent, Infallible>>> {
    let stream = BroadcastStream::new(api.sup.subscribe()).filter_map(|e| {
        let e = e.ok()?;
        Some(Ok(SseEvent::default().event(e.kind.as_str()).json_data(e).unwrap_or_default()))
    });
    Sse::new(stream).keep_alive(KeepAlive::default())
}

#[derive(Deserialize)]
struct LogsQuery {
    service: Option<String>,
    n: Option<usize>,
    follow: Option<bool>,
    json: Option<bool>,
}

/// The most lines `GET /v1/logs?n=` answers with.
const MAX_TAIL: usize = 10_000;

/// Plain text, one line per log line: `<label> | <ts> <stream> <text>`;
/// with `json=true`, one JSON object per line (see `log_lines.rs`).
async fn logs(State(api): State<Api>, JsonQuery(q): JsonQuery<LogsQuery>) -> Response {
    let target = match &q.service {
        Some(s) => Target::Some(vec![s.clone()]),
        None => Target::All,
    };
    let names = match api.sup.resolve(&target) {
        Ok(n) => n,
        Err(e) => return unknown(e),
    };
    let counts = api.sup.instance_counts();
    let hub = api.sup.logs();
    let mut sources = Vec::new();
    for name in &names {
        let n = counts.get(name).copied().unwrap_or(1);
        for i in 0..n {
            let label = if n > 1 { format!("{name}.{i}") } else { name.clone() };
            let src = log_lines::Source { label, service: name.clone(), instance: i };
            sources.push((src, hub.path(name, i), hub.watch(name, i)));
        }
    }
    let n = q.n.unwrap_or(20);
    if n > MAX_TAIL {
        return error(StatusCode::BAD_REQUEST, format!("n = {n} is too many lines: ask for at most {MAX_TAIL}"));
    }
    let follow = q.follow.unwrap_or(false);
    let json = q.json.unwrap_or(false);
    let kind = if json { "application/x-ndjson" } else { "text/plain; charset=utf-8" };
    // Followers start before the tail is read, so no line falls between.
    let followers: Vec<_> = if follow {
        sources.iter().map(|(l, p, w)| (l.clone(), Follower::new(p.clone(), w.clone()))).collect()
    } else {
        Vec::new()
    };
    let paths: Vec<_> = sources.iter().map(|(l, p, _)| (l.clone(), p.clone())).collect();
    let mut history: Vec<String> = tokio::task::spawn_blocking(move || {
        let mut all: Vec<(String, String)> = Vec::new();
        for (src, path) in paths {
            all.extend(tail(&path, n).into_iter().map(|l| (log_lines::when(&l), src.render(&l, json))));
        }
        // A stable sort on the timestamps merges the instances.
        all.sort_by(|a, b| a.0.cmp(&b.0));
        let skip = all.len().saturating_sub(n);
        all.into_iter().skip(skip).map(|(_, l)| l).collect()
    })
    .await
    .unwrap_or_default();
    if !follow {
        return ([(header::CONTENT_TYPE, kind)], history.concat()).into_response();
    }
    // A follower holds at most one batch (READ_MAX bytes of the file, with
    // labels) and each channel a few: a reader that does not read costs a
    // bounded number of bytes, the backlog stays on disk, and a follower
    // that falls more than a rotation behind gets a `skipped` marker.
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, Infallible>>(2);
    tokio::spawn(async move {
        if tx.send(Ok(Bytes::from(history.drain(..).collect::<String>()))).await.is_err() {
            return;
        }
        let (ltx, mut lrx) = tokio::sync::mpsc::channel::<String>(1);
        for (src, mut f) in followers {
            let ltx = ltx.clone();
            tokio::spawn(async move {
                loop {
                    tokio::select! {
                        _ = ltx.closed() => return,
                        batch = f.next() => {
                            let Some(batch) = batch else { return };
                            if ltx.send(src.batch(&batch, json)).await.is_err() {
                                return;
                            }
                        }
                    }
                }
            });
        }
        drop(ltx);
        loop {
            tokio::select! {
                _ = tx.closed() => return,
                text = lrx.recv() => {
                    let Some(text) = text else { return };
                    if tx.send(Ok(Bytes::from(text))).await.is_err() {
                        return;
                    }
                }
            }
        }
    });
    ([(header::CONTENT_TYPE, kind)], Body::from_stream(ReceiverStream::new(rx))).into_response()
}
