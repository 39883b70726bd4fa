//! Admin API of the receiver (admin credential): upstreams with their health, registration,
//! re-verification, subjects, events, removal. Credentials given at registration are never
//! shown again.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};

use super::manage;
use super::upstreams::{register_poll, register_push, Registration, UpstreamAuth};
use crate::auth::Admin;
use crate::http::{ApiError, AppJson, AppState};
use crate::protocol::{EventType, SubjectId};
use crate::storage::UpstreamRow;

/// Most recent SETs shown with an upstream.
const RECENT: i64 = 20;

/// The routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/admin/upstreams", get(list).post(add))
        .route(
            "/admin/upstreams/{id}",
            get(read).patch(update).delete(remove),
        )
        .route("/admin/upstreams/{id}/verify", post(verify))
        .route("/admin/upstreams/{id}/status", post(set_status))
        .route("/admin/upstreams/{id}/check", post(check))
        .route("/admin/upstreams/{id}/subjects/add", post(add_subject))
        .route(
            "/admin/upstreams/{id}/subjects/remove",
            post(remove_subject),
        )
}

/// An upstream as admins see it: no credentials, no secrets.
async fn view(state: &AppState, upstream: &UpstreamRow) -> Result<Value, ApiError> {
    let health = state.store.upstream_health(&upstream.id).await?;
    Ok(json!({
        "id": upstream.id,
        "issuer": upstream.issuer,
        "delivery_method": upstream.delivery_method,
        "events_requested": serde_json::from_str::<Value>(&upstream.events_requested).unwrap_or(Value::Null),
        "stream_id": upstream.remote_stream_id,
        "poll_url": upstream.poll_url,
        "audience": upstream.audience,
        "status": upstream.status,
        "verified_at": upstream.verified_at,
        "created_at": upstream.created_at,
        "updated_at": upstream.updated_at,
        "health": health.map(|h| json!({"checked_at": h.checked_at, "ok_at": h.ok_at, "error": h.error})),
    }))
}

async fn find(state: &AppState, id: &str) -> Result<UpstreamRow, ApiError> {
    Ok(state.store.get_upstream(id).await?)
}

async fn list(State(state): State<AppState>, _admin: Admin) -> Result<Json<Value>, ApiError> {
    let mut upstreams = Vec::new();
    for upstream in state.store.list_upstreams().await? {
        upstreams.push(view(&state, &upstream).await?);
    }
    Ok(Json(json!({ "upstreams": upstreams })))
}

async fn read(
    State(state): State<AppState>,
    _admin: Admin,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let upstream = find(&state, &id).await?;
    let mut body = view(&state, &upstream).await?;
    let recent: Vec<Value> = state
        .store
        .list_received(Some(&id), RECENT)
        .await?
        .iter()
        .map(|r| json!({"jti": r.jti, "event_type": r.event_type, "arrived_at": r.arrived_at, "outcome": r.outcome}))
        .collect();
    body["recent_sets"] = json!(recent);
    Ok(Json(body))
}

/// `POST /admin/upstreams`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NewUpstream {
    issuer: String,
    /// `push` (default) or `poll`.
    #[serde(default)]
    delivery: Option<String>,
    /// Client credentials, or `token` for a static bearer token.
    #[serde(default)]
    client_id: Option<String>,
    #[serde(default)]
    client_secret: Option<String>,
    #[serde(default)]
    token_endpoint: Option<String>,
    #[serde(default)]
    scope: Option<String>,
    #[serde(default)]
    token: Option<String>,
    /// Event-type URIs, or `caep` / `risc`; both specifications when absent.
    #[serde(default)]
    events: Option<Vec<String>>,
}

/// Event-type names as the CLI and API take them: URIs, or `caep` / `risc`.
pub fn event_types(names: Vec<String>) -> Vec<EventType> {
    crate::config::TransmitterConfig {
        events_supported: names,
        ..Default::default()
    }
    .supported_event_types()
}

async fn add(
    State(state): State<AppState>,
    _admin: Admin,
    AppJson(body): AppJson<NewUpstream>,
) -> Result<Response, ApiError> {
    let auth = match (body.client_id, body.client_secret, body.token) {
        (Some(client_id), Some(client_secret), None) => UpstreamAuth::ClientCredentials {
            token_endpoint: body.token_endpoint,
            client_id,
            client_secret,
            scope: body.scope,
        },
        (None, None, Some(token)) => UpstreamAuth::Static { token },
        _ => {
            return Err(ApiError::BadRequest(
                "give client_id and client_secret, or token".to_owned(),
            ))
        }
    };
    let events = event_types(
        body.events
            .unwrap_or_else(|| vec!["caep".to_owned(), "risc".to_owned()]),
    );
    let registration = Registration {
        issuer: body.issuer,
        auth,
        events,
    };
    let registered = match body.delivery.as_deref().unwrap_or("push") {
        "push" => register_push(&state, registration).await,
        "poll" => register_poll(&state, registration).await,
        other => {
            return Err(ApiError::BadRequest(format!(
                "delivery: `{other}` is not push or poll"
            )))
        }
    };
    let upstream = registered.map_err(|e| ApiError::BadRequest(e.to_string()))?;
    Ok((StatusCode::CREATED, Json(view(&state, &upstream).await?)).into_response())
}

/// `PATCH /admin/upstreams/{id}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Update {
    events: Vec<String>,
}

async fn update(
    State(state): State<AppState>,
    _admin: Admin,
    Path(id): Path<String>,
    AppJson(body): AppJson<Update>,
) -> Result<Json<Value>, ApiError> {
    let events = event_types(body.events);
    if events.is_empty() {
        return Err(ApiError::BadRequest(
            "events: at least one known event type".to_owned(),
        ));
    }
    let upstream = find(&state, &id).await?;
    let updated = manage::update_events(&state, &upstream, &events).await?;
    Ok(Json(view(&state, &updated).await?))
}

async fn remove(
    State(state): State<AppState>,
    _admin: Admin,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let upstream = find(&state, &id).await?;
    manage::delete(&state, &upstream).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn verify(
    State(state): State<AppState>,
    _admin: Admin,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let upstream = find(&state, &id).await?;
    manage::request_verification(&state, &upstream).await?;
    Ok(StatusCode::ACCEPTED)
}

/// `POST /admin/upstreams/{id}/status`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct StatusChange {
    status: String,
    #[serde(default)]
    reason: Option<String>,
}

async fn set_status(
    State(state): State<AppState>,
    _admin: Admin,
    Path(id): Path<String>,
    AppJson(body): AppJson<StatusChange>,
) -> Result<Json<Value>, ApiError> {
    if !matches!(body.status.as_str(), "enabled" | "paused" | "disabled") {
        return Err(ApiError::BadRequest(
            "status: enabled, paused or disabled".to_owned(),
        ));
    }
    if body.reason.as_ref().is_some_and(|r| r.len() > 1024) {
        return Err(ApiError::BadRequest(
            "reason: at most 1024 bytes".to_owned(),
        ));
    }
    let upstream = find(&state, &id).await?;
    let updated =
        manage::set_status(&state, &upstream, &body.status, body.reason.as_deref()).await?;
    Ok(Json(view(&state, &updated).await?))
}

async fn check(
    State(state): State<AppState>,
    _admin: Admin,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let upstream = find(&state, &id).await?;
    let outcome = manage::check(&state, &upstream).await;
    let error = outcome.err().map(|e| e.to_string());
    state
        .store
        .record_upstream_health(&id, state.clock.now(), error.as_deref())
        .await?;
    let upstream = find(&state, &id).await?;
    Ok(Json(view(&state, &upstream).await?))
}

/// Body of the subject endpoints.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SubjectBody {
    subject: SubjectId,
}

async fn add_subject(
    State(state): State<AppState>,
    _admin: Admin,
    Path(id): Path<String>,
    AppJson(body): AppJson<SubjectBody>,
) -> Result<StatusCode, ApiError> {
    let upstream = find(&state, &id).await?;
    manage::change_subject(&state, &upstream, &body.subject, true).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn remove_subject(
    State(state): State<AppState>,
    _admin: Admin,
    Path(id): Path<String>,
    AppJson(body): AppJson<SubjectBody>,
) -> Result<StatusCode, ApiError> {
    let upstream = find(&state, &id).await?;
    manage::change_subject(&state, &upstream, &body.subject, false).await?;
    Ok(StatusCode::NO_CONTENT)
}
