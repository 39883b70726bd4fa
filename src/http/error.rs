//! The one error type of every HTTP handler, and its one mapping to a response.

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use crate::storage::DbError;

/// An error a handler returns. Client errors carry a message safe to show; internal errors are
/// logged and answered with a generic message, never with their details.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 400: the request is malformed or invalid.
    #[error("{0}")]
    BadRequest(String),
    /// 401: no valid credentials (RFC 6750 §3.1 `invalid_token` or none at all).
    #[error("authentication required")]
    Unauthorized {
        /// RFC 6750 error code, if a token was presented.
        error: Option<&'static str>,
        /// Human-readable reason.
        description: String,
    },
    /// 403: authenticated but not allowed.
    #[error("{0}")]
    Forbidden(String),
    /// 403 `insufficient_scope` (RFC 6750 §3.1): the token lacks this scope.
    #[error("the token lacks the {0} scope")]
    InsufficientScope(&'static str),
    /// 404: no such resource for this caller.
    #[error("not found")]
    NotFound,
    /// 409: conflicts with the current state.
    #[error("{0}")]
    Conflict(String),
    /// 429: too many requests; retry after this many seconds.
    #[error("too many requests")]
    TooManyRequests(u64),
    /// 500: a failure that is ours, not the client's.
    #[error("internal error")]
    Internal(String),
}

impl ApiError {
    fn status(&self) -> StatusCode {
        match self {
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::Unauthorized { .. } => StatusCode::UNAUTHORIZED,
            Self::Forbidden(_) | Self::InsufficientScope(_) => StatusCode::FORBIDDEN,
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::Conflict(_) => StatusCode::CONFLICT,
            Self::TooManyRequests(_) => StatusCode::TOO_MANY_REQUESTS,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn code(&self) -> &'static str {
        match self {
            Self::BadRequest(_) => "invalid_request",
            Self::Unauthorized { error, .. } => error.unwrap_or("unauthorized"),
            Self::Forbidden(_) => "forbidden",
            Self::InsufficientScope(_) => "insufficient_scope",
            Self::NotFound => "not_found",
            Self::Conflict(_) => "conflict",
            Self::TooManyRequests(_) => "too_many_requests",
            Self::Internal(_) => "server_error",
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let description = match &self {
            Self::Internal(detail) => {
                tracing::error!(%detail, "request failed");
                "an internal error occurred".to_owned()
            }
            Self::Unauthorized { description, .. } => description.clone(),
            other => other.to_string(),
        };
        let body = Json(json!({"error": self.code(), "error_description": description}));
        let mut response = (self.status(), body).into_response();
        let headers = response.headers_mut();
        match &self {
            // RFC 6750 §3: a 401 names the scheme, and the error when a token was presented.
            Self::Unauthorized { error, description } => {
                let value = match error {
                    Some(code) => format!(
                        "Bearer error=\"{code}\", error_description=\"{}\"",
                        description.replace('"', "'")
                    ),
                    None => "Bearer".to_owned(),
                };
                if let Ok(value) = value.parse() {
                    headers.insert(header::WWW_AUTHENTICATE, value);
                }
            }
            Self::InsufficientScope(scope) => {
                let value = format!("Bearer error=\"insufficient_scope\", scope=\"{scope}\"");
                if let Ok(value) = value.parse() {
                    headers.insert(header::WWW_AUTHENTICATE, value);
                }
            }
            Self::TooManyRequests(seconds) => {
                headers.insert(header::RETRY_AFTER, (*seconds).into());
            }
            _ => {}
        }
        response
    }
}

impl From<DbError> for ApiError {
    fn from(error: DbError) -> Self {
        match error {
            DbError::NotFound => Self::NotFound,
            DbError::Conflict(what) => Self::Conflict(what),
            DbError::Other(detail) => Self::Internal(detail),
        }
    }
}

impl From<crate::jose::JoseError> for ApiError {
    fn from(error: crate::jose::JoseError) -> Self {
        match error {
            crate::jose::JoseError::Store(db) => db.into(),
            other => Self::Internal(other.to_string()),
        }
    }
}
