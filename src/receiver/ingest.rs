//! One SET from an upstream, whichever way it came (push or poll): validate, store once, hand
//! to the session-action engine, and say what to answer the transmitter.

use super::validate::{self, Rejection};
use crate::http::AppState;
use crate::protocol::{EventPayload, PushError};
use crate::storage::{ReceivedEventRow, UpstreamRow};

/// What became of a SET.
#[derive(Debug)]
pub enum Ingested {
    /// Validated and stored for the first time: acknowledge.
    Stored,
    /// Validated, and stored before (a redelivery): acknowledge again, apply nothing (PUSH-04).
    Duplicate,
    /// Invalid: answer with this error (RFC 8935 body, or a `setErrs` entry).
    Rejected(PushError),
    /// Valid but not stored (the database failed): do not acknowledge, so it comes again.
    NotStored(String),
}

/// Validates and stores `token` from `upstream`.
pub async fn ingest(state: &AppState, upstream: &UpstreamRow, token: &str) -> Ingested {
    let accepted = match validate::validate(upstream, token.trim(), state.clock.clone()) {
        Ok(accepted) => accepted,
        Err(Rejection(reason)) => {
            tracing::warn!(upstream = %upstream.id, err = %reason.err, description = %reason.description, "SET rejected");
            return Ingested::Rejected(reason);
        }
    };
    let now = state.clock.now();
    let row = ReceivedEventRow {
        upstream_id: Some(upstream.id.clone()),
        iss: accepted.set.iss.clone(),
        jti: accepted.set.jti.clone(),
        token: accepted.raw.clone(),
        claims: accepted.claims_json.clone(),
        event_type: accepted.event().event_type().as_uri().to_owned(),
        arrived_at: now,
        outcome: "accepted".to_owned(),
    };
    // The hand-off point to the session-action engine: storing the SET and its effects is one
    // statement today (the engine adds its effects to this transaction).
    match state.store.insert_received(&row).await {
        Ok(true) => {
            if let EventPayload::Verification(_) = accepted.event() {
                let mut verified = upstream.clone();
                verified.verified_at = Some(now);
                verified.updated_at = now;
                if let Err(e) = state.store.update_upstream(&verified).await {
                    tracing::warn!(error = %e, "cannot record the verification");
                }
            }
            if let EventPayload::StreamUpdated(updated) = accepted.event() {
                // The transmitter paused, disabled or enabled the stream (SSF 1.0 §8.1.5).
                let mut changed = upstream.clone();
                changed.status = updated.status.as_str().to_owned();
                changed.updated_at = now;
                if let Err(e) = state.store.update_upstream(&changed).await {
                    tracing::warn!(error = %e, "cannot record the stream's new status");
                }
            }
            tracing::info!(upstream = %upstream.id, jti = %row.jti, event = %row.event_type, "SET accepted");
            Ingested::Stored
        }
        Ok(false) => Ingested::Duplicate,
        Err(e) => {
            tracing::error!(error = %e, "cannot store a SET");
            Ingested::NotStored(e.to_string())
        }
    }
}
