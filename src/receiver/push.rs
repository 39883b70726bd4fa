//! The RFC 8935 push endpoint of one upstream. It answers 202 only once the SET is durably
//! stored; a SET delivered again is acknowledged again and stored once (PUSH-04); a bad one
//! gets 400 with `{"err", "description"}` (PUSH-10, PUSH-12).

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;

use super::ingest::{ingest, Ingested};
use crate::auth::secret_matches;
use crate::http::AppState;
use crate::protocol::{PushError, SetErrorCode};
use crate::storage::{DbError, UpstreamRow};

fn error(status: StatusCode, error: PushError) -> Response {
    let mut response = (status, [(header::CONTENT_LANGUAGE, "en")], Json(error)).into_response();
    if status == StatusCode::UNAUTHORIZED {
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            header::HeaderValue::from_static("Bearer"),
        );
    }
    response
}

fn authorized(upstream: &UpstreamRow, headers: &HeaderMap) -> bool {
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        });
    match (&upstream.push_token_hash, presented) {
        (Some(hash), Some(secret)) => secret_matches(secret.trim(), hash),
        // An upstream registered without a push secret takes unauthenticated pushes: the SET
        // signature still decides.
        (None, _) => true,
        (Some(_), None) => false,
    }
}

// RFC 8935 §2: https://www.rfc-editor.org/rfc/rfc8935#section-2
pub(super) async fn receive(
    State(state): State<AppState>,
    Path(upstream_id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let upstream = match state.store.get_upstream(&upstream_id).await {
        Ok(upstream) => upstream,
        Err(DbError::NotFound) => return StatusCode::NOT_FOUND.into_response(),
        Err(e) => {
            tracing::error!(error = %e, "cannot load the upstream");
            return StatusCode::SERVICE_UNAVAILABLE.into_response();
        }
    };
    if !authorized(&upstream, &headers) {
        return error(
            StatusCode::UNAUTHORIZED,
            PushError::new(
                SetErrorCode::AuthenticationFailed,
                "the push credential is missing or wrong",
            ),
        );
    }
    let Ok(token) = std::str::from_utf8(&body) else {
        return error(
            StatusCode::BAD_REQUEST,
            PushError::new(
                SetErrorCode::InvalidRequest,
                "the body is not a compact JWS",
            ),
        );
    };
    match ingest(&state, &upstream, token).await {
        Ingested::Stored | Ingested::Duplicate => StatusCode::ACCEPTED.into_response(),
        Ingested::Rejected(reason) => error(StatusCode::BAD_REQUEST, reason),
        // Not stored, so not acknowledged: the transmitter retries.
        Ingested::NotStored(_) => StatusCode::SERVICE_UNAVAILABLE.into_response(),
    }
}
