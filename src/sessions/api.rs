//! The session API for applications (`/sessions`, application credential): register a
//! session, ask whether it may go on, record a completed step-up, grant a just-in-time
//! elevation, end it.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;

use super::engine::{Decision, EvaluateRequest};
use super::model::{NewSession, SessionState, SessionView};
use crate::auth::Application;
use crate::http::{ApiError, AppJson, AppState};
use crate::storage::sessions::AuditRow;

/// The session API's routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/sessions", post(register))
        .route("/sessions/{id}", get(read).delete(unregister))
        .route("/sessions/{id}/evaluate", post(evaluate))
        .route("/sessions/{id}/step-up", post(step_up))
        .route("/sessions/{id}/elevate", post(elevate))
}

async fn register(
    State(state): State<AppState>,
    _app: Application,
    AppJson(new): AppJson<NewSession>,
) -> Result<Response, ApiError> {
    let session = state.sessions.register(&state, new).await?;
    Ok((StatusCode::CREATED, Json(session.view())).into_response())
}

async fn read(
    State(state): State<AppState>,
    _app: Application,
    Path(id): Path<String>,
) -> Result<Json<SessionView>, ApiError> {
    let session = state
        .sessions
        .session(&state.store, &id)
        .await?
        .ok_or(ApiError::NotFound)?;
    Ok(Json(session.view()))
}

async fn unregister(
    State(state): State<AppState>,
    _app: Application,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    state.sessions.unregister(&state, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The hot path: answered from memory.
async fn evaluate(
    State(state): State<AppState>,
    _app: Application,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Result<Json<Decision>, ApiError> {
    // An empty body is the default request.
    let request: EvaluateRequest = if body.iter().all(u8::is_ascii_whitespace) {
        EvaluateRequest::default()
    } else {
        crate::http::parse_json(&body)?
    };
    let session = state
        .sessions
        .session(&state.store, &id)
        .await?
        .ok_or(ApiError::NotFound)?;
    let now = state.clock.now();
    let decision = state.sessions.decide(&session, &request, now);
    state.metrics.inc(
        crate::metrics::DECISIONS,
        &[("decision", decision.decision.as_str())],
    );
    state.sessions.audit_decision(&session, &decision, now);
    Ok(Json(decision))
}

/// `POST /sessions/{id}/step-up`: the user authenticated again.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct StepUp {
    /// The acr reached.
    #[serde(default)]
    acr: Option<String>,
    /// The methods used.
    #[serde(default)]
    amr: Vec<String>,
}

async fn step_up(
    State(state): State<AppState>,
    _app: Application,
    Path(id): Path<String>,
    AppJson(body): AppJson<StepUp>,
) -> Result<Json<SessionView>, ApiError> {
    let current = live_session(&state, &id).await?;
    if let (Some(required), reached) = (&current.row.required_acr, &body.acr) {
        if reached.as_ref() != Some(required) {
            return Err(ApiError::BadRequest(format!(
                "acr: the step-up must reach `{required}`"
            )));
        }
    }
    if body.amr.len() > 16 || body.acr.as_ref().is_some_and(|a| a.len() > 256) {
        return Err(ApiError::BadRequest("acr or amr: too long".to_owned()));
    }
    let now = state.clock.now();
    let mut session = (*current).clone();
    let row = &mut session.row;
    row.auth_time = Some(now);
    if body.acr.is_some() {
        row.acr = body.acr.clone();
    }
    if !body.amr.is_empty() {
        row.amr = Some(json!(body.amr).to_string());
        session.amr = body.amr.clone();
    }
    if session.state == SessionState::StepUpRequired {
        // A downgrade stays: stepping up proves the user, not the device.
        row.state = SessionState::Active.as_str().to_owned();
        row.state_reason = None;
        row.required_acr = None;
        session.state = SessionState::Active;
    }
    row.updated_at = now;
    let audit = audit_entry(&session, now, "step_up_completed", json!({"acr": body.acr}));
    let saved = state.sessions.save(&state, session, audit).await?;
    Ok(Json(saved.view()))
}

/// `POST /sessions/{id}/elevate`: just-in-time privilege for a while.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Elevate {
    /// The privilege level granted.
    privilege: String,
    /// For how long, seconds.
    duration_secs: i64,
    /// Why (recorded).
    #[serde(default)]
    reason: Option<String>,
}

async fn elevate(
    State(state): State<AppState>,
    _app: Application,
    Path(id): Path<String>,
    AppJson(body): AppJson<Elevate>,
) -> Result<Json<SessionView>, ApiError> {
    let config = &state.config.sessions;
    let levels = &config.privilege_levels;
    let Some(rank) = levels.iter().position(|l| *l == body.privilege) else {
        return Err(ApiError::BadRequest(format!(
            "privilege: `{}` is not one of {levels:?}",
            body.privilege
        )));
    };
    if body.duration_secs <= 0 || body.duration_secs > config.max_elevation_secs {
        return Err(ApiError::BadRequest(format!(
            "duration_secs: between 1 and {}",
            config.max_elevation_secs
        )));
    }
    if body.reason.as_ref().is_some_and(|r| r.len() > 1024) {
        return Err(ApiError::BadRequest(
            "reason: at most 1024 bytes".to_owned(),
        ));
    }
    let current = live_session(&state, &id).await?;
    if current.state != SessionState::Active {
        return Err(ApiError::Conflict(format!(
            "the session is {}: only an active session can be elevated",
            current.state.as_str()
        )));
    }
    let now = state.clock.now();
    let own = current
        .row
        .privilege
        .as_ref()
        .and_then(|p| levels.iter().position(|l| l == p));
    if own.is_some_and(|own| own >= rank) {
        return Err(ApiError::BadRequest(format!(
            "privilege: the session already has `{}`",
            body.privilege
        )));
    }
    let mut session = (*current).clone();
    session.row.elevated_privilege = Some(body.privilege.clone());
    session.row.elevated_until = Some(now + body.duration_secs);
    session.row.updated_at = now;
    let audit = audit_entry(
        &session,
        now,
        "elevate",
        json!({"privilege": body.privilege, "until": now + body.duration_secs, "reason": body.reason}),
    );
    let saved = state.sessions.save(&state, session, audit).await?;
    Ok(Json(saved.view()))
}

/// The session, if it has not ended (409 when it has: nothing can change it any more).
async fn live_session(
    state: &AppState,
    id: &str,
) -> Result<std::sync::Arc<super::model::Session>, ApiError> {
    let session = state
        .sessions
        .session(&state.store, id)
        .await?
        .ok_or(ApiError::NotFound)?;
    if session.state.is_ended()
        || session
            .row
            .expires_at
            .is_some_and(|at| at <= state.clock.now())
    {
        return Err(ApiError::Conflict(format!(
            "the session has ended ({})",
            session.state.as_str()
        )));
    }
    Ok(session)
}

/// An audit entry for an API-driven change.
pub fn audit_entry(
    session: &super::model::Session,
    now: i64,
    action: &str,
    detail: serde_json::Value,
) -> AuditRow {
    AuditRow {
        id: 0,
        at: now,
        session_id: Some(session.row.session_id.clone()),
        subject: Some(session.row.subjects.clone()),
        rule: None,
        jti: None,
        action: action.to_owned(),
        detail: Some(detail.to_string()),
    }
}
