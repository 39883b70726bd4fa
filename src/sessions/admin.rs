//! Admin API of the session engine (admin credential): sessions, the audit log, the policy.

use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};

use super::model::{self, Session, SessionState};
use crate::auth::Admin;
use crate::http::{ApiError, AppState};
use crate::protocol::SubjectId;
use crate::storage::sessions::{AuditFilter, AuditRow, SessionFilter};

/// Most entries one request returns.
const MAX_LIMIT: i64 = 10_000;

/// The routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/admin/sessions", get(list_sessions))
        .route("/admin/sessions/{id}", get(read_session))
        .route("/admin/sessions/{id}/revoke", post(revoke_session))
        .route("/admin/audit", get(audit))
        .route("/admin/policy", get(read_policy))
        .route("/admin/policy/reload", post(reload_policy))
}

/// `?subject=` accepts a subject identifier as JSON, or a bare email address.
fn subject_key(text: &str) -> Result<String, ApiError> {
    let subject = if text.trim_start().starts_with('{') {
        let value: Value = serde_json::from_str(text)
            .map_err(|e| ApiError::BadRequest(format!("subject: {e}")))?;
        SubjectId::from_value(value).map_err(|e| ApiError::BadRequest(format!("subject: {e}")))?
    } else {
        SubjectId::email(text)
    };
    model::bare_keys(&subject)
        .into_iter()
        .next()
        .ok_or_else(|| ApiError::BadRequest("subject: a simple subject identifier".to_owned()))
}

fn limit(asked: Option<i64>, default: i64) -> Result<i64, ApiError> {
    match asked.unwrap_or(default) {
        n if (1..=MAX_LIMIT).contains(&n) => Ok(n),
        _ => Err(ApiError::BadRequest(format!(
            "limit: between 1 and {MAX_LIMIT}"
        ))),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SessionQuery {
    subject: Option<String>,
    state: Option<String>,
    limit: Option<i64>,
}

async fn list_sessions(
    State(state): State<AppState>,
    _admin: Admin,
    Query(query): Query<SessionQuery>,
) -> Result<Json<Value>, ApiError> {
    if let Some(wanted) = &query.state {
        SessionState::parse(wanted)
            .ok_or_else(|| ApiError::BadRequest(format!("state: unknown state `{wanted}`")))?;
    }
    let subject_key = match &query.subject {
        // Sessions are keyed by role: look the identifier up as a user's, device's or session's.
        Some(text) => Some(subject_key(text)?),
        None => None,
    };
    let mut sessions = Vec::new();
    let roles: &[&str] = if subject_key.is_some() {
        &["user", "device", "session"]
    } else {
        &[""]
    };
    for role in roles {
        let filter = SessionFilter {
            subject_key: subject_key.as_ref().map(|k| format!("{role}|{k}")),
            state: query.state.clone(),
            limit: limit(query.limit, 100)?,
        };
        for row in state.store.list_sessions(&filter).await? {
            let view = Session::from_row(row, Vec::new()).view();
            if !sessions.contains(&view) {
                sessions.push(view);
            }
        }
    }
    Ok(Json(json!({ "sessions": sessions })))
}

async fn read_session(
    State(state): State<AppState>,
    _admin: Admin,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let row = state.store.get_session(&id).await?;
    Ok(Json(json!(Session::from_row(row, Vec::new()).view())))
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Revoke {
    #[serde(default)]
    reason: Option<String>,
}

async fn revoke_session(
    State(state): State<AppState>,
    admin: Admin,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Result<Json<Value>, ApiError> {
    let body: Revoke = if body.is_empty() {
        Revoke::default()
    } else {
        crate::http::parse_json(&body)?
    };
    if body.reason.as_ref().is_some_and(|r| r.len() > 1024) {
        return Err(ApiError::BadRequest(
            "reason: at most 1024 bytes".to_owned(),
        ));
    }
    let current = state
        .sessions
        .session(&state.store, &id)
        .await?
        .ok_or(ApiError::NotFound)?;
    if current.state.is_ended() {
        return Ok(Json(json!(current.view())));
    }
    let now = state.clock.now();
    let mut session = (*current).clone();
    let reason = body
        .reason
        .unwrap_or_else(|| "revoked by an administrator".to_owned());
    session.state = SessionState::Revoked;
    session.row.state = SessionState::Revoked.as_str().to_owned();
    session.row.state_reason = Some(reason.clone());
    session.row.cause_rule = Some("admin".to_owned());
    session.row.cause_jti = None;
    session.row.updated_at = now;
    let audit = super::api::audit_entry(
        &session,
        now,
        "revoke",
        json!({"reason": reason, "admin": admin.credential_id}),
    );
    let saved = state.sessions.save(&state, session, audit).await?;
    Ok(Json(json!(saved.view())))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AuditQuery {
    subject: Option<String>,
    session_id: Option<String>,
    since: Option<i64>,
    until: Option<i64>,
    after_id: Option<i64>,
    limit: Option<i64>,
    /// `json` (default) or `jsonl`.
    format: Option<String>,
}

/// An audit entry as the API shows it.
pub fn audit_json(row: &AuditRow) -> Value {
    let parse = |text: &Option<String>| {
        text.as_deref()
            .map(|t| serde_json::from_str(t).unwrap_or_else(|_| Value::from(t)))
    };
    json!({
        "id": row.id,
        "at": row.at,
        "session_id": row.session_id,
        "subject": parse(&row.subject),
        "rule": row.rule,
        "jti": row.jti,
        "action": row.action,
        "detail": parse(&row.detail),
    })
}

async fn audit(
    State(state): State<AppState>,
    _admin: Admin,
    Query(query): Query<AuditQuery>,
) -> Result<Response, ApiError> {
    if query.subject.as_ref().is_some_and(|s| s.len() > 512) {
        return Err(ApiError::BadRequest(
            "subject: at most 512 bytes".to_owned(),
        ));
    }
    let filter = AuditFilter {
        subject: query.subject.clone(),
        session_id: query.session_id.clone(),
        since: query.since,
        until: query.until,
        after_id: query.after_id,
        limit: limit(query.limit, 1000)?,
    };
    let rows = state.store.query_audit(&filter).await?;
    match query.format.as_deref() {
        None | Some("json") => Ok(Json(json!({
            "entries": rows.iter().map(audit_json).collect::<Vec<_>>()
        }))
        .into_response()),
        Some("jsonl") => {
            let mut lines = String::new();
            for row in &rows {
                lines.push_str(&audit_json(row).to_string());
                lines.push('\n');
            }
            Ok(([(header::CONTENT_TYPE, "application/jsonl")], lines).into_response())
        }
        Some(other) => Err(ApiError::BadRequest(format!(
            "format: `{other}` is not json or jsonl"
        ))),
    }
}

async fn read_policy(State(state): State<AppState>, _admin: Admin) -> Json<Value> {
    let policy = state.sessions.policy();
    let rules: Vec<Value> = policy
        .rules
        .iter()
        .map(|rule| {
            json!({
                "name": rule.name,
                "events": rule.events,
                "when": rule.when.as_ref().map(|c| c.source.clone()),
                "actions": rule.actions.iter().map(|a| a.as_str()).collect::<Vec<_>>(),
                "step_up_acr": rule.step_up_acr,
                "downgrade_to": rule.downgrade_to,
            })
        })
        .collect();
    Json(json!({ "rules": rules }))
}

async fn reload_policy(
    State(state): State<AppState>,
    _admin: Admin,
) -> Result<Json<Value>, ApiError> {
    let rules = state
        .sessions
        .reload_policy(true)
        .map_err(ApiError::BadRequest)?;
    Ok(Json(json!({ "rules": rules })))
}
