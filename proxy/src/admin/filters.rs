//! The filter admin API (REST, JSON): upload modules, push, list, roll back and remove filters.
//! Described by `openapi.json`, served at `GET /openapi.json`.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde_json::json;

use super::api::{FilterInfo, FilterRequest};
use super::{AdminState, Caller};
use crate::Signal;
use crate::control::{ManageError, parse_signal};

/// The OpenAPI document of the admin API.
pub const OPENAPI: &str = include_str!("openapi.json");

fn error(status: StatusCode, message: impl std::fmt::Display) -> Response {
    (status, Json(json!({ "error": message.to_string() }))).into_response()
}

fn manage_error(e: ManageError) -> Response {
    let status = match &e {
        ManageError::BadRequest(_) => StatusCode::BAD_REQUEST,
        ManageError::NotFound(_) => StatusCode::NOT_FOUND,
        ManageError::Conflict(_) => StatusCode::CONFLICT,
        ManageError::Invalid(_) => StatusCode::UNPROCESSABLE_ENTITY,
        ManageError::State(_) => StatusCode::INTERNAL_SERVER_ERROR,
        ManageError::Signature(_) => StatusCode::FORBIDDEN,
    };
    error(status, e)
}

/// One line per change through the API (target `weir::audit`): who, what, which module, and how it
/// ended. Tokens never appear in it.
fn audit(
    caller: &Caller,
    action: &str,
    target: &str,
    sha256: &str,
    result: Result<(), &dyn std::fmt::Display>,
) {
    match result {
        Ok(()) => tracing::info!(
            target: "weir::audit", peer = %caller.peer, auth = caller.auth, action, target, sha256,
            result = "ok", "admin change"
        ),
        Err(reason) => tracing::warn!(
            target: "weir::audit", peer = %caller.peer, auth = caller.auth, action, target, sha256,
            result = "refused", reason = %reason, "admin change"
        ),
    }
}

fn signal(s: &str) -> Result<Signal, Box<Response>> {
    parse_signal(s).ok_or_else(|| {
        Box::new(error(
            StatusCode::NOT_FOUND,
            format!("unknown pipeline `{s}`: traces, metrics, logs or profiles"),
        ))
    })
}

/// `POST /v1/modules`: the body is the `.wasm` file; its signature (`weir filter sign`), when there is
/// one, in the `x-weir-signature` header.
pub async fn upload(
    State(s): State<Arc<AdminState>>,
    Extension(caller): Extension<Caller>,
    headers: axum::http::HeaderMap,
    body: Bytes,
) -> Response {
    if body.is_empty() {
        return error(StatusCode::BAD_REQUEST, "empty body: send the .wasm file");
    }
    let size = body.len();
    let sha256 = crate::filter::runtime::sha256_hex(&body);
    let signature = headers
        .get(crate::signing::SIGNATURE_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    match s.manager.upload(body.to_vec(), signature).await {
        Ok(sha256) => {
            audit(&caller, "upload", "module", &sha256, Ok(()));
            (
                StatusCode::CREATED,
                Json(json!({ "sha256": sha256, "bytes": size })),
            )
                .into_response()
        }
        Err(ManageError::Invalid(e)) => {
            audit(&caller, "upload", "module", &sha256, Err(&e));
            error(StatusCode::BAD_REQUEST, e)
        }
        Err(e) => {
            audit(&caller, "upload", "module", &sha256, Err(&e));
            manage_error(e)
        }
    }
}

/// `PUT /v1/pipelines/{signal}/filters/{name}`.
pub async fn put(
    State(s): State<Arc<AdminState>>,
    Extension(caller): Extension<Caller>,
    Path((pipeline, name)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    let signal = match signal(&pipeline) {
        Ok(s) => s,
        Err(r) => return *r,
    };
    let request: FilterRequest = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => return error(StatusCode::BAD_REQUEST, format!("invalid request: {e}")),
    };
    let (target, sha256) = (format!("{pipeline}/{name}"), request.module.clone());
    match s.manager.put(signal, &name, request.into()).await {
        Ok(info) => {
            audit(&caller, "put", &target, &info.sha256, Ok(()));
            Json(FilterInfo::from(info)).into_response()
        }
        Err(e) => {
            audit(&caller, "put", &target, &sha256, Err(&e));
            manage_error(e)
        }
    }
}

/// `GET /v1/filters`.
pub async fn list(State(s): State<Arc<AdminState>>) -> Response {
    let filters: Vec<FilterInfo> = s.manager.list().await.into_iter().map(Into::into).collect();
    Json(json!({ "filters": filters })).into_response()
}

/// `POST /v1/pipelines/{signal}/filters/{name}/rollback`.
pub async fn rollback(
    State(s): State<Arc<AdminState>>,
    Extension(caller): Extension<Caller>,
    Path((pipeline, name)): Path<(String, String)>,
) -> Response {
    let signal = match signal(&pipeline) {
        Ok(s) => s,
        Err(r) => return *r,
    };
    let target = format!("{pipeline}/{name}");
    match s.manager.rollback(signal, &name).await {
        Ok(info) => {
            audit(&caller, "rollback", &target, &info.sha256, Ok(()));
            Json(FilterInfo::from(info)).into_response()
        }
        Err(e) => {
            audit(&caller, "rollback", &target, "-", Err(&e));
            manage_error(e)
        }
    }
}

/// `DELETE /v1/pipelines/{signal}/filters/{name}`.
pub async fn remove(
    State(s): State<Arc<AdminState>>,
    Extension(caller): Extension<Caller>,
    Path((pipeline, name)): Path<(String, String)>,
) -> Response {
    let signal = match signal(&pipeline) {
        Ok(s) => s,
        Err(r) => return *r,
    };
    let target = format!("{pipeline}/{name}");
    match s.manager.remove(signal, &name).await {
        Ok(()) => {
            audit(&caller, "remove", &target, "-", Ok(()));
            StatusCode::NO_CONTENT.into_response()
        }
        Err(e) => {
            audit(&caller, "remove", &target, "-", Err(&e));
            manage_error(e)
        }
    }
}
