//! The stream management API (SSF 1.0 §8.1): configuration, status, subjects, verification.
//! Every lookup is scoped to the calling receiver: another client's stream is 404, never 403,
//! so its existence does not leak (SSF-API-02).

use axum::extract::{Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;

use super::fanout::Envelope;
use super::repo;
use super::streams::{self, Change, Stream};
use crate::auth::Receiver;
use crate::http::{ApiError, AppJson, AppState};
use crate::protocol::{
    AddSubjectRequest, CreateStreamRequest, DeliveryMethod, RemoveSubjectRequest, StreamState,
    StreamStatus, StreamUpdateRequest, VerificationRequest,
};

/// `?stream_id=` of GET and DELETE (SSF-DL-01).
#[derive(Debug, Deserialize)]
pub(super) struct StreamQuery {
    stream_id: Option<String>,
}

/// Responses of the management API must not be cached (the spec's examples send no-store).
fn no_store(status: StatusCode, body: impl IntoResponse) -> Response {
    (status, [(header::CACHE_CONTROL, "no-store")], body).into_response()
}

/// Loads the caller's stream, or 404.
async fn own_stream(
    state: &AppState,
    receiver: &Receiver,
    stream_id: &str,
) -> Result<Stream, ApiError> {
    match repo::get_stream(state, stream_id).await? {
        Some(stream) if stream.client_id == receiver.client_id => Ok(stream),
        _ => Err(ApiError::NotFound),
    }
}

/// Checks a push target against the operator's policy (https, public addresses).
async fn check_push_target(state: &AppState, stream: &Stream) -> Result<(), ApiError> {
    if stream.delivery.method != DeliveryMethod::Push {
        return Ok(());
    }
    let url = stream.delivery.endpoint_url.as_deref().unwrap_or_default();
    super::push_target::check(url, &state.config.transmitter.allowed_hosts())
        .await
        .map(drop)
        .map_err(|e| ApiError::BadRequest(e.to_string()))
}

// SSF 1.0 §8.1.1.1 Creating a Stream
pub(super) async fn create(
    State(state): State<AppState>,
    receiver: Receiver,
    AppJson(request): AppJson<CreateStreamRequest>,
) -> Result<Response, ApiError> {
    receiver.require_manage()?;
    if state.config.transmitter.single_stream_per_client
        && !repo::list_streams(&state, &receiver.client_id)
            .await?
            .is_empty()
    {
        // SSF-CR-04
        return Err(ApiError::Conflict(
            "this receiver already has a stream and only one is allowed".to_owned(),
        ));
    }
    let stream_id = crate::ids::new_id();
    let poll_url = repo::poll_url(&state, &stream_id);
    let now = state.clock.now();
    let policy = repo::policy(&state);
    let stream = streams::create(
        &request,
        &policy,
        &receiver.client_id,
        stream_id,
        poll_url,
        now,
    )
    .map_err(|e| ApiError::BadRequest(e.0))?;
    check_push_target(&state, &stream).await?;
    repo::insert_stream(&state, &stream).await?;
    tracing::info!(stream_id = %stream.stream_id, client_id = %receiver.client_id, "stream created");
    Ok(no_store(StatusCode::CREATED, Json(stream.to_wire(&policy))))
}

// SSF 1.0 §8.1.1.2 Reading a Stream's Configuration
pub(super) async fn read(
    State(state): State<AppState>,
    receiver: Receiver,
    Query(query): Query<StreamQuery>,
) -> Result<Response, ApiError> {
    receiver.require_read()?;
    let policy = repo::policy(&state);
    match query.stream_id {
        // SSF-RD-02: one object.
        Some(stream_id) => {
            let stream = own_stream(&state, &receiver, &stream_id).await?;
            Ok(no_store(StatusCode::OK, Json(stream.to_wire(&policy))))
        }
        // SSF-RD-03: an array, `[]` when there is none.
        None => {
            let all: Vec<_> = repo::list_streams(&state, &receiver.client_id)
                .await?
                .iter()
                .map(|s| s.to_wire(&policy))
                .collect();
            Ok(no_store(StatusCode::OK, Json(all)))
        }
    }
}

async fn change(
    state: AppState,
    receiver: Receiver,
    request: StreamUpdateRequest,
    how: Change,
) -> Result<Response, ApiError> {
    receiver.require_manage()?;
    let stream = own_stream(&state, &receiver, &request.stream_id).await?;
    let policy = repo::policy(&state);
    let poll_url = repo::poll_url(&state, &stream.stream_id);
    let next = streams::change(&stream, &request, how, &policy, poll_url, state.clock.now())
        .map_err(|e| ApiError::BadRequest(e.0))?;
    check_push_target(&state, &next).await?;
    repo::update_stream(&state, &next).await?;
    Ok(no_store(StatusCode::OK, Json(next.to_wire(&policy))))
}

// SSF 1.0 §8.1.1.3 Updating a Stream's Configuration
pub(super) async fn update(
    State(state): State<AppState>,
    receiver: Receiver,
    AppJson(request): AppJson<StreamUpdateRequest>,
) -> Result<Response, ApiError> {
    change(state, receiver, request, Change::Update).await
}

// SSF 1.0 §8.1.1.4 Replacing a Stream's Configuration
pub(super) async fn replace(
    State(state): State<AppState>,
    receiver: Receiver,
    AppJson(request): AppJson<StreamUpdateRequest>,
) -> Result<Response, ApiError> {
    change(state, receiver, request, Change::Replace).await
}

// SSF 1.0 §8.1.1.5 Deleting a Stream
pub(super) async fn delete(
    State(state): State<AppState>,
    receiver: Receiver,
    Query(query): Query<StreamQuery>,
) -> Result<Response, ApiError> {
    receiver.require_manage()?;
    let stream_id = query.stream_id.ok_or_else(|| {
        ApiError::BadRequest("the stream_id query parameter is required".to_owned())
    })?;
    let stream = own_stream(&state, &receiver, &stream_id).await?;
    repo::delete_stream(&state, &stream.stream_id).await?;
    tracing::info!(stream_id = %stream.stream_id, "stream deleted");
    Ok(no_store(StatusCode::NO_CONTENT, ()))
}

// SSF 1.0 §8.1.2.1 Reading a Stream's Status
pub(super) async fn read_status(
    State(state): State<AppState>,
    receiver: Receiver,
    Query(query): Query<StreamQuery>,
) -> Result<Response, ApiError> {
    receiver.require_read()?;
    let stream_id = query.stream_id.ok_or_else(|| {
        ApiError::BadRequest("the stream_id query parameter is required".to_owned())
    })?;
    let stream = own_stream(&state, &receiver, &stream_id).await?;
    Ok(no_store(StatusCode::OK, Json(status_of(&stream))))
}

fn status_of(stream: &Stream) -> StreamStatus {
    StreamStatus {
        stream_id: stream.stream_id.clone(),
        status: stream.status,
        reason: stream.status_reason.clone(),
        extra: Default::default(),
    }
}

// SSF 1.0 §8.1.2.2 Updating a Stream's Status
pub(super) async fn update_status(
    State(state): State<AppState>,
    receiver: Receiver,
    AppJson(request): AppJson<StreamStatus>,
) -> Result<Response, ApiError> {
    receiver.require_manage()?;
    if request
        .reason
        .as_ref()
        .is_some_and(|r| r.len() > streams::limits::DESCRIPTION)
    {
        return Err(ApiError::BadRequest("reason is too long".to_owned()));
    }
    let stream = own_stream(&state, &receiver, &request.stream_id).await?;
    let updated = repo::set_status(
        &state,
        &stream,
        request.status,
        request.reason.clone(),
        None,
    )
    .await?;
    Ok(no_store(StatusCode::OK, Json(status_of(&updated))))
}

// SSF 1.0 §8.1.3.2 Adding a Subject to a Stream
pub(super) async fn add_subject(
    State(state): State<AppState>,
    receiver: Receiver,
    AppJson(request): AppJson<AddSubjectRequest>,
) -> Result<Response, ApiError> {
    receiver.require_manage()?;
    let stream = own_stream(&state, &receiver, &request.stream_id).await?;
    if request.subject.canonical_key().len() > 4096 {
        return Err(ApiError::BadRequest("subject is too large".to_owned()));
    }
    // SSF-AS-02: an omitted `verified` means verified.
    let verified = request.verified.unwrap_or(true);
    repo::add_subject(&state, &stream, &request.subject, verified).await?;
    // SSF-AS-03: an empty 200.
    Ok(no_store(StatusCode::OK, ()))
}

// SSF 1.0 §8.1.3.3 Removing a Subject
pub(super) async fn remove_subject(
    State(state): State<AppState>,
    receiver: Receiver,
    AppJson(request): AppJson<RemoveSubjectRequest>,
) -> Result<Response, ApiError> {
    receiver.require_manage()?;
    let stream = own_stream(&state, &receiver, &request.stream_id).await?;
    if request.subject == crate::protocol::SubjectId::opaque(&stream.stream_id) {
        // SSF-SM-03: the stream's own subject is always in the stream.
        return Err(ApiError::BadRequest(
            "the stream's own subject cannot be removed".to_owned(),
        ));
    }
    repo::remove_subject(&state, &stream, &request.subject).await?;
    // SSF-RS-02: 204.
    Ok(no_store(StatusCode::NO_CONTENT, ()))
}

// SSF 1.0 §8.1.4.2 Triggering a Verification Event
pub(super) async fn verify(
    State(state): State<AppState>,
    receiver: Receiver,
    AppJson(request): AppJson<VerificationRequest>,
) -> Result<Response, ApiError> {
    receiver.require_manage()?;
    if request.state.as_ref().is_some_and(|s| s.len() > 1024) {
        return Err(ApiError::BadRequest(
            "state is longer than 1024 bytes".to_owned(),
        ));
    }
    let stream = own_stream(&state, &receiver, &request.stream_id).await?;
    if stream.status == StreamState::Disabled {
        // SSF-VER-16 / AMBIG-11: a disabled stream transmits nothing, verification included.
        return Err(ApiError::BadRequest("the stream is disabled".to_owned()));
    }
    let now = state.clock.now();
    if let Some(last) = stream.last_verification_at {
        let interval = i64::try_from(stream.min_verification_interval).unwrap_or(i64::MAX);
        let wait = last.saturating_add(interval) - now;
        if wait > 0 {
            // SSF-CFG-06, SSF-VER-15
            return Err(ApiError::TooManyRequests(wait.unsigned_abs()));
        }
    }
    let issuer = state.config.server.issuer.clone();
    let set = Envelope {
        issuer: &issuer,
        now,
    }
    .verification(&stream, request.state);
    repo::record_verification(&state, &stream, &set).await?;
    // SSF-VER-12: an empty 204; the SET is in the outbox (held if the stream is paused).
    Ok(no_store(StatusCode::NO_CONTENT, ()))
}
