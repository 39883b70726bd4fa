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

/// Least time between two JWKS fetches for one upstream, so that a flood of SETs naming
/// made-up key ids cannot make ssfd hammer the transmitter.
const JWKS_REFRESH_SECS: i64 = 60;

/// Validates and stores `token` from `upstream`.
pub async fn ingest(state: &AppState, upstream: &UpstreamRow, token: &str) -> Ingested {
    let max_age = state.config.receiver.max_set_age_secs;
    let verifiers = &state.receiver.verifiers;
    let mut validated = validate::validate(
        upstream,
        token.trim(),
        state.clock.clone(),
        max_age,
        verifiers,
    );
    let mut refreshed = None;
    if let Err(Rejection {
        unknown_key: true, ..
    }) = &validated
    {
        // A key we have not seen: the transmitter may have rotated. Fetch its JWKS again
        // (from the pinned jwks_uri only, never a URL named in the token) and retry once.
        if let Some(fresh) = refresh_jwks(state, upstream).await {
            validated = validate::validate(
                &fresh,
                token.trim(),
                state.clock.clone(),
                max_age,
                verifiers,
            );
            refreshed = Some(fresh);
        }
    }
    let upstream = refreshed.as_ref().unwrap_or(upstream);
    let accepted = match validated {
        Ok(accepted) => accepted,
        Err(Rejection { error, .. }) => {
            tracing::warn!(upstream = %upstream.id, err = %error.err, description = %error.description, "SET rejected");
            state.metrics.inc(
                crate::metrics::SETS_REJECTED,
                &[("upstream", &upstream.id), ("reason", error.err.as_str())],
            );
            return Ingested::Rejected(error);
        }
    };
    let now = state.clock.now();
    let mut row = ReceivedEventRow {
        upstream_id: Some(upstream.id.clone()),
        iss: accepted.set.iss.clone(),
        jti: accepted.set.jti.clone(),
        token: accepted.raw.clone(),
        claims: accepted.claims_json.clone(),
        event_type: accepted.event().event_type().as_uri().to_owned(),
        arrived_at: now,
        outcome: "accepted".to_owned(),
    };
    // The hand-off to the session engine: the SET and every effect it has are stored in one
    // transaction, before the transmitter hears that the SET was accepted.
    let applied = state
        .sessions
        .apply_received(state, &mut row, &accepted.set, accepted.event())
        .await;
    match applied {
        Ok(true) => {
            state
                .metrics
                .inc(crate::metrics::SETS_RECEIVED, &[("upstream", &upstream.id)]);
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
            tracing::debug!(upstream = %upstream.id, jti = %row.jti, event = %row.event_type, "SET accepted");
            Ingested::Stored
        }
        Ok(false) => Ingested::Duplicate,
        Err(e) => {
            tracing::error!(error = %e, "cannot store a SET");
            Ingested::NotStored(e.to_string())
        }
    }
}

/// Fetches the upstream's JWKS again, at most once per [`JWKS_REFRESH_SECS`]; returns the
/// updated row when the keys were replaced.
async fn refresh_jwks(state: &AppState, upstream: &UpstreamRow) -> Option<UpstreamRow> {
    let now = state.clock.now();
    {
        let mut last = state
            .receiver
            .jwks_refreshed_at
            .lock()
            .expect("not poisoned");
        let previous = last.get(&upstream.id).copied();
        if previous.is_some_and(|at| now - at < JWKS_REFRESH_SECS) {
            return None;
        }
        last.insert(upstream.id.clone(), now);
    }
    let metadata: serde_json::Value = serde_json::from_str(upstream.metadata.as_deref()?).ok()?;
    let jwks_uri = metadata.get("jwks_uri")?.as_str()?;
    let response = state
        .http
        .get(jwks_uri)
        .send()
        .await
        .ok()?
        .error_for_status()
        .ok()?;
    let jwks: serde_json::Value = response.json().await.ok()?;
    // Only a JWK Set replaces the pinned keys.
    jwks.get("keys").and_then(serde_json::Value::as_array)?;
    let mut fresh = upstream.clone();
    fresh.jwks = Some(jwks.to_string());
    fresh.updated_at = now;
    if let Err(error) = state.store.update_upstream(&fresh).await {
        tracing::warn!(%error, "cannot store the refreshed JWKS");
    }
    tracing::info!(upstream = %upstream.id, "refreshed the transmitter's keys");
    Some(fresh)
}
