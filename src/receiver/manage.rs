//! Keeping an upstream stream healthy and managing it through the transmitter's SSF
//! management API (SSF 1.0 §8.1): tokens reused until shortly before they expire and fetched
//! again after a 401, subjects added and removed, the stream updated or deleted, verification
//! requested again periodically, and the stream re-created when the transmitter lost it.

use std::time::Duration;

use serde_json::{json, Value};
use tokio::sync::watch;

use super::upstreams::{self, UpstreamAuth};
use crate::http::AppState;
use crate::protocol::{DeliveryMethod, EventType, SubjectId, TransmitterMetadata};
use crate::storage::{DbError, UpstreamRow};

/// A token is fetched again this long before it expires, seconds.
const TOKEN_MARGIN_SECS: i64 = 30;

/// Why an operation on an upstream failed.
#[derive(Debug, thiserror::Error)]
pub enum ManageError {
    /// The upstream is unknown.
    #[error("no such upstream")]
    NotFound,
    /// The transmitter does not offer the endpoint needed.
    #[error("the transmitter offers no {0}")]
    Unsupported(&'static str),
    /// The transmitter refused or failed.
    #[error("{0}")]
    Transmitter(String),
    /// The store failed.
    #[error(transparent)]
    Db(#[from] DbError),
}

impl From<ManageError> for crate::http::ApiError {
    fn from(error: ManageError) -> Self {
        match error {
            ManageError::NotFound => Self::NotFound,
            ManageError::Unsupported(_) => Self::Conflict(error.to_string()),
            ManageError::Transmitter(message) => {
                Self::Conflict(format!("the transmitter refused: {message}"))
            }
            ManageError::Db(db) => db.into(),
        }
    }
}

fn metadata(upstream: &UpstreamRow) -> Result<TransmitterMetadata, ManageError> {
    upstream
        .metadata
        .as_deref()
        .and_then(|m| serde_json::from_str(m).ok())
        .ok_or_else(|| ManageError::Transmitter("the upstream has no metadata".to_owned()))
}

/// A bearer token for `upstream`: the cached one while it is fresh, else a new one.
pub async fn access_token(state: &AppState, upstream: &UpstreamRow) -> Result<String, ManageError> {
    let now = state.clock.now();
    if let Some((token, refresh_at)) = state
        .receiver
        .tokens
        .lock()
        .expect("not poisoned")
        .get(&upstream.id)
        .cloned()
    {
        if refresh_at.is_none_or(|at| now < at) {
            return Ok(token);
        }
    }
    let auth: UpstreamAuth = serde_json::from_str(&upstream.auth)
        .map_err(|e| ManageError::Transmitter(format!("stored credentials: {e}")))?;
    let (token, lifetime) = upstreams::token_with_lifetime(state, &auth, &metadata(upstream)?)
        .await
        .map_err(|e| ManageError::Transmitter(e.to_string()))?;
    // Refresh before expiry: a margin, but never less than half the lifetime.
    let refresh_at = lifetime.map(|l| now + (l - TOKEN_MARGIN_SECS).max(l / 2));
    state
        .receiver
        .tokens
        .lock()
        .expect("not poisoned")
        .insert(upstream.id.clone(), (token.clone(), refresh_at));
    Ok(token)
}

/// Forgets the cached token of `upstream_id` (the transmitter answered 401).
pub fn forget_token(state: &AppState, upstream_id: &str) {
    state
        .receiver
        .tokens
        .lock()
        .expect("not poisoned")
        .remove(upstream_id);
}

/// Calls a management endpoint with the upstream's token, once more with a new token after a
/// 401 (CAEP interop profile 2.7: expired tokens are replaced, not fatal). Returns the status
/// and the body.
async fn call(
    state: &AppState,
    upstream: &UpstreamRow,
    method: reqwest::Method,
    url: &str,
    body: Option<&Value>,
) -> Result<(u16, Value), ManageError> {
    for attempt in 0..2 {
        let token = access_token(state, upstream).await?;
        let mut request = state.http.request(method.clone(), url).bearer_auth(token);
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request
            .send()
            .await
            .map_err(|e| ManageError::Transmitter(e.to_string()))?;
        let status = response.status().as_u16();
        if status == 401 && attempt == 0 {
            forget_token(state, &upstream.id);
            continue;
        }
        let text = response.text().await.unwrap_or_default();
        let value = serde_json::from_str(&text).unwrap_or(Value::String(text));
        return Ok((status, value));
    }
    unreachable!("the loop returns on its second attempt")
}

fn stream_id(upstream: &UpstreamRow) -> Result<&str, ManageError> {
    upstream
        .remote_stream_id
        .as_deref()
        .ok_or_else(|| ManageError::Transmitter("the upstream has no stream".to_owned()))
}

fn success(status: u16, body: &Value) -> Result<(), ManageError> {
    if (200..300).contains(&status) {
        Ok(())
    } else {
        let text = body.to_string();
        Err(ManageError::Transmitter(format!(
            "{status}: {}",
            text.chars().take(300).collect::<String>()
        )))
    }
}

/// Adds (`add` true) or removes a subject at the upstream stream (SSF 1.0 §8.1.3.2/3).
pub async fn change_subject(
    state: &AppState,
    upstream: &UpstreamRow,
    subject: &SubjectId,
    add: bool,
) -> Result<(), ManageError> {
    let metadata = metadata(upstream)?;
    let (endpoint, name) = if add {
        (metadata.add_subject_endpoint, "add_subject_endpoint")
    } else {
        (metadata.remove_subject_endpoint, "remove_subject_endpoint")
    };
    let endpoint = endpoint.ok_or(ManageError::Unsupported(name))?;
    let mut body = json!({"stream_id": stream_id(upstream)?, "subject": subject});
    if add {
        body["verified"] = json!(true);
    }
    let (status, answer) = call(
        state,
        upstream,
        reqwest::Method::POST,
        &endpoint,
        Some(&body),
    )
    .await?;
    success(status, &answer)
}

/// Changes the events requested from the upstream (PATCH, SSF 1.0 §8.1.1.3).
pub async fn update_events(
    state: &AppState,
    upstream: &UpstreamRow,
    events: &[EventType],
) -> Result<UpstreamRow, ManageError> {
    let endpoint = metadata(upstream)?
        .configuration_endpoint
        .ok_or(ManageError::Unsupported("configuration_endpoint"))?;
    let body = json!({"stream_id": stream_id(upstream)?, "events_requested": events});
    let (status, answer) = call(
        state,
        upstream,
        reqwest::Method::PATCH,
        &endpoint,
        Some(&body),
    )
    .await?;
    success(status, &answer)?;
    let mut updated = upstream.clone();
    updated.events_requested = serde_json::to_string(events).expect("serialises");
    updated.updated_at = state.clock.now();
    state.store.update_upstream(&updated).await?;
    Ok(updated)
}

/// Asks the transmitter to change the stream's status (receiver-initiated, SSF 1.0 §8.1.2.2):
/// `enabled`, `paused` or `disabled`.
pub async fn set_status(
    state: &AppState,
    upstream: &UpstreamRow,
    status: &str,
    reason: Option<&str>,
) -> Result<UpstreamRow, ManageError> {
    let endpoint = metadata(upstream)?
        .status_endpoint
        .ok_or(ManageError::Unsupported("status_endpoint"))?;
    let mut body = json!({"stream_id": stream_id(upstream)?, "status": status});
    if let Some(reason) = reason {
        body["reason"] = json!(reason);
    }
    let (code, answer) = call(
        state,
        upstream,
        reqwest::Method::POST,
        &endpoint,
        Some(&body),
    )
    .await?;
    success(code, &answer)?;
    let mut updated = upstream.clone();
    updated.status = answer["status"].as_str().unwrap_or(status).to_owned();
    updated.updated_at = state.clock.now();
    state.store.update_upstream(&updated).await?;
    Ok(updated)
}

/// Deletes the upstream stream at the transmitter (SSF 1.0 §8.1.1.5), then forgets the
/// upstream. A stream the transmitter no longer has is not an error.
pub async fn delete(state: &AppState, upstream: &UpstreamRow) -> Result<(), ManageError> {
    if let (Some(endpoint), Some(stream_id)) = (
        metadata(upstream)?.configuration_endpoint,
        upstream.remote_stream_id.as_deref(),
    ) {
        let mut url = url::Url::parse(&endpoint)
            .map_err(|e| ManageError::Transmitter(format!("configuration_endpoint: {e}")))?;
        url.query_pairs_mut().append_pair("stream_id", stream_id);
        let (status, answer) =
            call(state, upstream, reqwest::Method::DELETE, url.as_str(), None).await?;
        if status != 404 {
            success(status, &answer)?;
        }
    }
    state.store.delete_upstream(&upstream.id).await?;
    forget_token(state, &upstream.id);
    Ok(())
}

/// Requests a verification event with a new `state` (SSF 1.0 §8.1.4.2); the SET arrives by
/// the stream and confirms it.
pub async fn request_verification(
    state: &AppState,
    upstream: &UpstreamRow,
) -> Result<(), ManageError> {
    let endpoint = metadata(upstream)?
        .verification_endpoint
        .ok_or(ManageError::Unsupported("verification_endpoint"))?;
    let verification_state = crate::ids::new_id();
    let mut updated = upstream.clone();
    updated.verification_state = Some(verification_state.clone());
    updated.updated_at = state.clock.now();
    state.store.update_upstream(&updated).await?;
    let body = json!({"stream_id": stream_id(upstream)?, "state": verification_state});
    let (status, answer) = call(
        state,
        upstream,
        reqwest::Method::POST,
        &endpoint,
        Some(&body),
    )
    .await?;
    success(status, &answer)
}

/// Checks the upstream stream: reads its configuration, re-creates it if the transmitter lost
/// it (404), and asks for a verification when the last one is older than the interval.
pub async fn check(state: &AppState, upstream: &UpstreamRow) -> Result<(), ManageError> {
    let endpoint = metadata(upstream)?
        .configuration_endpoint
        .ok_or(ManageError::Unsupported("configuration_endpoint"))?;
    let mut url = url::Url::parse(&endpoint)
        .map_err(|e| ManageError::Transmitter(format!("configuration_endpoint: {e}")))?;
    url.query_pairs_mut()
        .append_pair("stream_id", stream_id(upstream)?);
    let (status, answer) = call(state, upstream, reqwest::Method::GET, url.as_str(), None).await?;
    let mut current = upstream.clone();
    if status == 404 {
        tracing::warn!(upstream = %upstream.id, "the transmitter lost the stream; creating it again");
        current = recreate(state, upstream, &endpoint).await?;
    } else {
        success(status, &answer)?;
    }
    let now = state.clock.now();
    let stale = current
        .verified_at
        .is_none_or(|at| now - at >= state.config.receiver.reverify_interval_secs);
    if status == 404 || stale {
        request_verification(state, &current).await?;
    }
    Ok(())
}

async fn recreate(
    state: &AppState,
    upstream: &UpstreamRow,
    configuration_endpoint: &str,
) -> Result<UpstreamRow, ManageError> {
    let method = if upstream.delivery_method == DeliveryMethod::Poll.as_str() {
        DeliveryMethod::Poll
    } else {
        DeliveryMethod::Push
    };
    let events: Vec<EventType> = serde_json::from_str(&upstream.events_requested)
        .map_err(|e| ManageError::Transmitter(format!("stored events: {e}")))?;
    let push_secret = crate::ids::new_secret();
    let token = access_token(state, upstream).await?;
    let created = upstreams::create_stream(
        state,
        configuration_endpoint,
        &token,
        &upstream.issuer,
        &upstream.id,
        method.clone(),
        &events,
        &push_secret,
    )
    .await
    .map_err(|e| ManageError::Transmitter(e.to_string()))?;
    let mut updated = upstream.clone();
    updated.remote_stream_id = Some(created.stream.stream_id.clone());
    updated.audience = created.audience;
    updated.status = "enabled".to_owned();
    updated.verified_at = None;
    updated.updated_at = state.clock.now();
    match method {
        DeliveryMethod::Push => {
            updated.push_token_hash = Some(crate::auth::hash_secret(&push_secret));
        }
        _ => updated.poll_url = created.stream.delivery.endpoint_url.clone(),
    }
    state.store.update_upstream(&updated).await?;
    Ok(updated)
}

/// Checks every upstream every `receiver.health_check_secs`, recording the outcome, and
/// forgets received SETs past the replay window.
pub async fn run_health(state: AppState, mut shutdown: watch::Receiver<bool>) {
    let every = Duration::from_secs(state.config.receiver.health_check_secs);
    loop {
        tokio::select! {
            () = tokio::time::sleep(every) => {}
            _ = shutdown.changed() => return,
        }
        check_all(&state).await;
    }
}

/// One round of health checks and pruning.
pub async fn check_all(state: &AppState) {
    let upstreams = match state.store.list_upstreams().await {
        Ok(upstreams) => upstreams,
        Err(error) => {
            tracing::error!(%error, "cannot list upstreams");
            return;
        }
    };
    for upstream in upstreams {
        let outcome = check(state, &upstream).await;
        let error = outcome.as_ref().err().map(ToString::to_string);
        if let Some(error) = &error {
            tracing::warn!(upstream = %upstream.id, %error, "upstream stream check failed");
        }
        let now = state.clock.now();
        if let Err(db) = state
            .store
            .record_upstream_health(&upstream.id, now, error.as_deref())
            .await
        {
            tracing::error!(error = %db, "cannot record upstream health");
        }
    }
    let before = state.clock.now() - state.config.receiver.replay_window_secs;
    match state.store.prune_received(before).await {
        Ok(0) => {}
        Ok(count) => tracing::info!(count, "received SETs past the replay window forgotten"),
        Err(error) => tracing::warn!(%error, "cannot prune received SETs"),
    }
}
