//! Event intake from the local identity provider: `POST /events` (and `ssfd emit`). Each
//! event is validated against the typed model, fanned out to every stream that takes it, signed
//! once per stream and written to the outbox in one transaction before the answer: once the
//! caller has its answer, the SETs survive crashes and restarts.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;

use super::fanout::{self, Envelope, EventIntake};
use super::repo::{self, Outgoing};
use crate::auth::Publisher;
use crate::http::{ApiError, AppJson, AppState};
use crate::protocol::StreamState;

/// One SET created by an intake.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Created {
    /// The stream it goes to.
    pub stream_id: String,
    /// Its `jti`.
    pub jti: String,
}

/// What an intake answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IntakeResult {
    /// The `txn` shared by every SET of this event.
    pub txn: String,
    /// One entry per SET created (none when no stream takes the event).
    pub sets: Vec<Created>,
}

/// Fans `intake` out, signs, and enqueues durably; returns what was created.
pub async fn submit(state: &AppState, intake: EventIntake) -> Result<IntakeResult, ApiError> {
    let (result, outgoing) = plan(state, intake).await?;
    repo::enqueue(state, outgoing, state.clock.now()).await?;
    Ok(result)
}

/// Fans `intake` out and signs one SET per stream that takes it, without storing anything:
/// the caller writes the SETs in its own transaction (`submit`, or the session engine when it
/// forwards a received event downstream).
pub async fn plan(
    state: &AppState,
    intake: EventIntake,
) -> Result<(IntakeResult, Vec<Outgoing>), ApiError> {
    intake.validate().map_err(ApiError::BadRequest)?;
    let event = intake
        .events
        .iter()
        .next()
        .expect("validated: one event")
        .clone();
    let txn = intake.txn.clone().unwrap_or_else(crate::ids::new_id);
    let now = state.clock.now();
    let issuer = state.config.server.issuer.clone();
    let envelope = Envelope {
        issuer: &issuer,
        now,
    };
    let default_subjects = state.config.transmitter.default_subjects;
    let signer = repo::signer(state).await?;
    let mut outgoing = Vec::new();
    for (stream, subjects) in repo::streams_with_subjects(state).await?.iter() {
        if !fanout::stream_takes(stream, &event)
            || !fanout::subject_selected(&intake.sub_id, subjects, default_subjects)
        {
            continue;
        }
        let set = envelope.set(
            stream,
            intake.sub_id.clone(),
            event.clone(),
            Some(&txn),
            intake.toe,
        );
        let token = signer.sign(&set)?;
        outgoing.push(Outgoing {
            held: stream.status == StreamState::Paused,
            stream_id: stream.stream_id.clone(),
            jti: set.jti,
            token,
        });
    }
    let sets = outgoing
        .iter()
        .map(|o| Created {
            stream_id: o.stream_id.clone(),
            jti: o.jti.clone(),
        })
        .collect();
    Ok((IntakeResult { txn, sets }, outgoing))
}

// ssfd's own API: the identity provider hands over one event.
pub(super) async fn post_event(
    State(state): State<AppState>,
    publisher: Publisher,
    AppJson(intake): AppJson<EventIntake>,
) -> Result<Response, ApiError> {
    let result = submit(&state, intake).await?;
    tracing::info!(publisher = %publisher.credential_id, txn = %result.txn, sets = result.sets.len(), "event accepted");
    Ok((StatusCode::ACCEPTED, Json(result)).into_response())
}
