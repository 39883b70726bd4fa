//! Poll delivery (RFC 8936): each poll stream has its own endpoint URL (SSF-DEL-06) where its
//! receiver acknowledges SETs, reports bad ones and fetches new ones, optionally waiting
//! (long poll) until one arrives.

use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;

use super::repo;
use crate::auth::Receiver;
use crate::http::{parse_json, ApiError, AppState};
use crate::protocol::{DeliveryMethod, PollRequest, PollResponse};

/// Most SETs one poll returns, whatever `maxEvents` says.
pub const MAX_EVENTS_PER_POLL: usize = 1000;
/// Most `ack` and `setErrs` entries one poll may carry.
const MAX_ACKS_PER_POLL: usize = 10_000;
/// How often a waiting long poll looks again without a wake-up (another replica may have
/// enqueued).
const RECHECK: Duration = Duration::from_millis(250);

// RFC 8936 §2.4: https://www.rfc-editor.org/rfc/rfc8936#section-2.4
pub(super) async fn poll(
    State(state): State<AppState>,
    receiver: Receiver,
    Path(stream_id): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    receiver.require_read()?;
    let request: PollRequest = if body.iter().all(u8::is_ascii_whitespace) {
        PollRequest::default()
    } else {
        parse_json(&body)?
    };
    let stream = match repo::get_stream(&state, &stream_id).await? {
        Some(s)
            if s.client_id == receiver.client_id && s.delivery.method == DeliveryMethod::Poll =>
        {
            s
        }
        _ => return Err(ApiError::NotFound),
    };
    let acks = request.ack.as_deref().unwrap_or_default();
    let errors = request.set_errs.clone().unwrap_or_default();
    if acks.len() + errors.len() > MAX_ACKS_PER_POLL {
        return Err(ApiError::BadRequest(format!(
            "at most {MAX_ACKS_PER_POLL} ack and setErrs entries per poll"
        )));
    }
    if !acks.is_empty() {
        repo::acknowledge(&state, &stream.stream_id, acks).await?;
    }
    if !errors.is_empty() {
        for (jti, error) in &errors {
            tracing::warn!(stream_id = %stream.stream_id, %jti, err = %error.err, description = %error.description, "receiver reported a SET error");
        }
        repo::record_set_errors(&state, &stream.stream_id, &errors).await?;
    }
    let max = request.max_events.map_or(MAX_EVENTS_PER_POLL, |m| {
        usize::try_from(m)
            .unwrap_or(usize::MAX)
            .min(MAX_EVENTS_PER_POLL)
    });
    let return_immediately = request.return_immediately.unwrap_or(false) || max == 0;
    let deadline = tokio::time::Instant::now()
        + Duration::from_secs(state.config.transmitter.poll_max_wait_secs);
    let mut response = PollResponse::default();
    loop {
        // A paused stream's SETs are held and a disabled stream's dropped (SSF-ST-07/08), by
        // the status change itself: what is still pending then is only the stream-updated
        // announcement, which must reach the receiver (SSF-UPD-02). So pending is offered
        // whatever the status (SSF-ST-13: otherwise an empty `sets`).
        if max > 0 {
            let (sets, more) = repo::pending_for_poll(&state, &stream.stream_id, max).await?;
            if !sets.is_empty() {
                response.sets = sets.into_iter().collect();
                response.more_available = Some(more);
                break;
            }
        }
        let now = tokio::time::Instant::now();
        if return_immediately || now >= deadline {
            break;
        }
        let wait = RECHECK.min(deadline - now);
        let _ = tokio::time::timeout(wait, state.outbox_signal.notified()).await;
    }
    Ok((
        StatusCode::OK,
        [(header::CACHE_CONTROL, "no-store")],
        Json(response),
    )
        .into_response())
}
