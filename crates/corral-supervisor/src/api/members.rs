//! `GET /v1/services/{name}/members?instance=N`: the members of one
//! instance's group (escapees included: membership, not parentage, says
//! who is in), each with its parent, session, command and usage. The
//! dashboard draws it as a graph; an instance that is not running has no
//! members. (`/tree` is the lineage view: placed by who started whom,
//! gone processes kept; this is the live membership, flat.)
//!
//! ```json
//! {"service":"web","instance":0,"leader":123,"truncated":false,
//!  "members":[{"pid":123,"ppid":1,"pgid":123,"sid":123,"cmd":"…","cpu_ms":5,"rss_bytes":4096}]}
//! ```

use super::query::JsonQuery;
use super::{error, unknown, Api};
use crate::supervisor::Target;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::json;

/// The most members one answer lists; a fork bomb's group is cut here
/// and says so (`truncated`).
pub const MAX_MEMBERS: usize = 2000;

/// One member as the route shows it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Member {
    /// Process id.
    pub pid: u32,
    /// Parent process id: an escapee's is whoever adopted it.
    pub ppid: u32,
    /// Process group.
    pub pgid: u32,
    /// Session.
    pub sid: u32,
    /// The command line.
    pub cmd: String,
    /// CPU time so far, user + system, in milliseconds.
    pub cpu_ms: Option<u64>,
    /// Resident memory, in bytes.
    pub rss_bytes: Option<u64>,
}

#[derive(Deserialize)]
pub(super) struct TreeQuery {
    instance: Option<u32>,
}

pub(super) async fn members_of(
    State(api): State<Api>,
    Path(name): Path<String>,
    JsonQuery(q): JsonQuery<TreeQuery>,
) -> Response {
    if let Err(e) = api.sup.resolve(&Target::Some(vec![name.clone()])) {
        return unknown(e);
    }
    let index = q.instance.unwrap_or(0);
    let Some(cell) = api.sup.group_of(&name, index) else {
        return error(StatusCode::NOT_FOUND, format!("service `{name}` has no instance {index}"));
    };
    let group = cell.lock().unwrap_or_else(|p| p.into_inner()).clone();
    let Some(group) = group else {
        return Json(json!({ "service": name, "instance": index, "leader": null, "truncated": false, "members": [] }))
            .into_response();
    };
    let leader = group.pid();
    let read = tokio::task::spawn_blocking(move || group.tree().map(|t| members(t.processes())));
    match read.await {
        Ok(Ok((members, truncated))) => Json(json!({
            "service": name, "instance": index, "leader": leader, "truncated": truncated, "members": members,
        }))
        .into_response(),
        Ok(Err(e)) => error(StatusCode::INTERNAL_SERVER_ERROR, e),
        Err(_) => error(StatusCode::INTERNAL_SERVER_ERROR, "reading the tree failed"),
    }
}

/// The first [`MAX_MEMBERS`] processes with their usage, and whether any
/// were left out.
fn members<'a>(procs: impl Iterator<Item = &'a corral::ProcessInfo>) -> (Vec<Member>, bool) {
    let mut out = Vec::new();
    let mut truncated = false;
    for p in procs {
        if out.len() == MAX_MEMBERS {
            truncated = true;
            break;
        }
        let u = crate::sys::proc_usage::of(p.pid);
        out.push(Member {
            pid: p.pid,
            ppid: p.ppid,
            pgid: p.pgid,
            sid: p.sid,
            cmd: p.cmdline.clone(),
            cpu_ms: u.cpu_ms,
            rss_bytes: u.rss_bytes,
        });
    }
    (out, truncated)
}
