//! The query string, read as axum's `Query` reads it, but refused in the
//! documented form: a 400 with `{"error": …}`, like every other bad
//! request, where axum's own rejection is plain text.

use axum::extract::{FromRequestParts, Query};
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::response::Response;
use serde::de::DeserializeOwned;

/// A query string deserialized into `T`.
pub(super) struct JsonQuery<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for JsonQuery<T> {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Response> {
        match Query::<T>::from_request_parts(parts, state).await {
            Ok(Query(t)) => Ok(JsonQuery(t)),
            Err(e) => Err(super::error(StatusCode::BAD_REQUEST, e.body_text())),
        }
    }
}
