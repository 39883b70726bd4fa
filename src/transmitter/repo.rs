//! The transmitter's persistence, in domain terms: conversions between [`Stream`] and the
//! store's rows, and the few multi-step operations handlers share.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::cache::FanoutSnapshot;

use super::fanout::{Envelope, StreamSubjects};
use super::metadata::paths;
use super::streams::{Stream, StreamPolicy};
use crate::http::{ApiError, AppState};
use crate::jose::{KeyRing, SetSigner};
use crate::protocol::metadata::DefaultSubjects;
use crate::protocol::{
    Audience, Delivery, DeliveryMethod, EventType, Extra, PushError, Secret, SecurityEventToken,
    StreamState, SubjectId,
};
use crate::storage::{DbError, NewOutboxRow, StreamRow, SubjectRow};

/// The transmitter's own settings, as stream rules need them.
pub fn policy(state: &AppState) -> StreamPolicy {
    StreamPolicy {
        issuer: state.config.server.issuer.clone(),
        events_supported: state.config.transmitter.supported_event_types(),
        min_verification_interval: state.config.transmitter.min_verification_interval_secs,
    }
}

/// The poll endpoint URL of a stream: unique per stream (SSF-DEL-06).
pub fn poll_url(state: &AppState, stream_id: &str) -> String {
    state
        .endpoints
        .url(&format!("{}{stream_id}", paths::POLL_PREFIX))
}

fn to_json<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string(value).expect("wire types serialise")
}

fn corrupt(what: &str, error: impl std::fmt::Display) -> ApiError {
    ApiError::Internal(format!("stored {what} is unreadable: {error}"))
}

impl Stream {
    fn to_row(&self) -> StreamRow {
        StreamRow {
            stream_id: self.stream_id.clone(),
            client_id: self.client_id.clone(),
            aud: to_json(&self.aud),
            events_requested: self.events_requested.as_ref().map(to_json),
            events_delivered: to_json(&self.events_delivered),
            delivery_method: self.delivery.method.as_str().to_owned(),
            endpoint_url: self.delivery.endpoint_url.clone(),
            authorization_header: self
                .delivery
                .authorization_header
                .as_ref()
                .map(|s| s.expose().to_owned()),
            description: self.description.clone(),
            status: self.status.as_str().to_owned(),
            status_reason: self.status_reason.clone(),
            min_verification_interval: i64::try_from(self.min_verification_interval)
                .unwrap_or(i64::MAX),
            last_verification_at: self.last_verification_at,
            created_at: self.created_at,
            updated_at: self.updated_at,
        }
    }

    fn from_row(row: StreamRow) -> Result<Self, ApiError> {
        let aud: Audience = serde_json::from_str(&row.aud).map_err(|e| corrupt("aud", e))?;
        let events_requested: Option<Vec<EventType>> = row
            .events_requested
            .as_deref()
            .map(serde_json::from_str)
            .transpose()
            .map_err(|e| corrupt("events_requested", e))?;
        let events_delivered: Vec<EventType> = serde_json::from_str(&row.events_delivered)
            .map_err(|e| corrupt("events_delivered", e))?;
        let status = row
            .status
            .parse::<StreamState>()
            .map_err(|e| corrupt("status", e))?;
        Ok(Self {
            stream_id: row.stream_id,
            client_id: row.client_id,
            aud,
            events_requested,
            events_delivered,
            delivery: Delivery {
                method: DeliveryMethod::from(row.delivery_method.as_str()),
                endpoint_url: row.endpoint_url,
                authorization_header: row.authorization_header.map(Secret),
                extra: Extra::new(),
            },
            description: row.description,
            status,
            status_reason: row.status_reason,
            min_verification_interval: u64::try_from(row.min_verification_interval).unwrap_or(0),
            last_verification_at: row.last_verification_at,
            created_at: row.created_at,
            updated_at: row.updated_at,
        })
    }
}

/// A stream by id, if it exists.
pub async fn get_stream(state: &AppState, stream_id: &str) -> Result<Option<Stream>, ApiError> {
    match state.store.get_stream(stream_id).await {
        Ok(row) => Stream::from_row(row).map(Some),
        Err(DbError::NotFound) => Ok(None),
        Err(other) => Err(other.into()),
    }
}

/// The streams of a client.
pub async fn list_streams(state: &AppState, client_id: &str) -> Result<Vec<Stream>, ApiError> {
    state
        .store
        .list_streams(Some(client_id))
        .await?
        .into_iter()
        .map(Stream::from_row)
        .collect()
}

/// Stores a new stream.
pub async fn insert_stream(state: &AppState, stream: &Stream) -> Result<(), ApiError> {
    state.store.insert_stream(&stream.to_row()).await?;
    state.caches.invalidate();
    Ok(())
}

/// Stores a changed configuration.
pub async fn update_stream(state: &AppState, stream: &Stream) -> Result<(), ApiError> {
    state.store.update_stream(&stream.to_row()).await?;
    state.caches.invalidate();
    Ok(())
}

/// Deletes a stream, its subjects and its outbox.
pub async fn delete_stream(state: &AppState, stream_id: &str) -> Result<(), ApiError> {
    state.store.delete_stream(stream_id).await?;
    state.caches.invalidate();
    Ok(())
}

/// The current signer, from the cache while it is fresh (see `cache`).
pub async fn signer(state: &AppState) -> Result<SetSigner, ApiError> {
    let now = state.clock.now_millis();
    if let Some(signer) = state.caches.signer(now).await {
        return Ok(signer);
    }
    let generation = state.caches.generation();
    let ring = KeyRing::new(state.store.list_signing_keys().await?, state.clock.now())?;
    let signer = ring.signer().clone();
    state
        .caches
        .put_signer(signer.clone(), generation, now)
        .await;
    Ok(signer)
}

/// Sets a stream's status (held SETs released on enable, pending ones held on pause, dropped
/// on disable). `announce` sends a stream-updated event first: required when the
/// transmitter, not the receiver, changes the status (SSF-ST-02, SSF-UPD-02/03).
pub async fn set_status(
    state: &AppState,
    stream: &Stream,
    status: StreamState,
    reason: Option<String>,
    announce: Option<&SetSigner>,
) -> Result<Stream, ApiError> {
    let now = state.clock.now();
    let mut rows = Vec::new();
    if let Some(signer) = announce {
        let issuer = state.config.server.issuer.clone();
        let set = Envelope {
            issuer: &issuer,
            now,
        }
        .stream_updated(stream, status, reason.clone());
        rows.push(NewOutboxRow {
            stream_id: stream.stream_id.clone(),
            jti: set.jti.clone(),
            token: signer.sign(&set)?,
            held: false,
            bypass_status: true,
        });
    }
    state
        .store
        .set_stream_status(
            &stream.stream_id,
            status.as_str(),
            reason.as_deref(),
            now,
            &rows,
        )
        .await?;
    state.caches.invalidate();
    state.outbox_signal.notify_waiters();
    let mut updated = stream.clone();
    updated.status = status;
    updated.status_reason = reason;
    updated.updated_at = now;
    Ok(updated)
}

/// Records a verification request and enqueues its SET (held while the stream is paused:
/// the conformance suite's paused-stream test expects verification held too).
pub async fn record_verification(
    state: &AppState,
    stream: &Stream,
    set: &SecurityEventToken,
) -> Result<(), ApiError> {
    let signer = signer(state).await?;
    let row = NewOutboxRow {
        stream_id: stream.stream_id.clone(),
        jti: set.jti.clone(),
        token: signer.sign(set)?,
        held: stream.status == StreamState::Paused,
        bypass_status: false,
    };
    state
        .store
        .record_verification(&stream.stream_id, state.clock.now(), &row)
        .await?;
    state.outbox_signal.notify_waiters();
    Ok(())
}

/// Adds a subject. Under `default_subjects` ALL this cancels an earlier removal.
pub async fn add_subject(
    state: &AppState,
    stream: &Stream,
    subject: &SubjectId,
    verified: bool,
) -> Result<(), ApiError> {
    let row = SubjectRow {
        stream_id: stream.stream_id.clone(),
        subject_key: subject.canonical_key(),
        subject: to_json(subject),
        mode: "added".to_owned(),
        verified,
        changed_at: state.clock.now(),
    };
    state.store.upsert_subject(&row).await?;
    state.caches.invalidate();
    Ok(())
}

/// Removes a subject: under ALL it is recorded as removed, under NONE its addition is
/// forgotten. Removing a subject never added is not an error (SSF-RS-03 allows 204).
pub async fn remove_subject(
    state: &AppState,
    stream: &Stream,
    subject: &SubjectId,
) -> Result<(), ApiError> {
    let key = subject.canonical_key();
    match state.config.transmitter.default_subjects {
        DefaultSubjects::All => {
            let row = SubjectRow {
                stream_id: stream.stream_id.clone(),
                subject_key: key,
                subject: to_json(subject),
                mode: "removed".to_owned(),
                verified: true,
                changed_at: state.clock.now(),
            };
            state.store.upsert_subject(&row).await?;
        }
        DefaultSubjects::None => match state.store.delete_subject(&stream.stream_id, &key).await {
            Ok(()) | Err(DbError::NotFound) => {}
            Err(other) => return Err(other.into()),
        },
    }
    state.caches.invalidate();
    Ok(())
}

/// Every stream with its subjects, for the fan-out, from the cache while it is fresh.
pub async fn streams_with_subjects(state: &AppState) -> Result<FanoutSnapshot, ApiError> {
    let now = state.clock.now_millis();
    if let Some(snapshot) = state.caches.fanout(now).await {
        return Ok(snapshot);
    }
    let generation = state.caches.generation();
    let snapshot = Arc::new(load_streams_with_subjects(state).await?);
    state
        .caches
        .put_fanout(snapshot.clone(), generation, now)
        .await;
    Ok(snapshot)
}

/// A stream from the fan-out snapshot (at most a second old; changes made by this process
/// are seen at once).
pub async fn cached_stream(state: &AppState, stream_id: &str) -> Result<Option<Stream>, ApiError> {
    Ok(streams_with_subjects(state)
        .await?
        .iter()
        .find(|(stream, _)| stream.stream_id == stream_id)
        .map(|(stream, _)| stream.clone()))
}

async fn load_streams_with_subjects(
    state: &AppState,
) -> Result<Vec<(Stream, StreamSubjects)>, ApiError> {
    let mut subjects: BTreeMap<String, StreamSubjects> = BTreeMap::new();
    for row in state.store.list_subjects(None).await? {
        let subject: SubjectId =
            serde_json::from_str(&row.subject).map_err(|e| corrupt("subject", e))?;
        let entry = subjects.entry(row.stream_id).or_default();
        match (row.mode.as_str(), row.verified) {
            ("added", true) => entry.added.push(subject),
            // An unverified subject is in the stream but receives nothing until verified.
            ("added", false) => {}
            _ => entry.removed.push(subject),
        }
    }
    state
        .store
        .list_streams(None)
        .await?
        .into_iter()
        .map(|row| {
            let stream = Stream::from_row(row)?;
            let subjects = subjects.remove(&stream.stream_id).unwrap_or_default();
            Ok((stream, subjects))
        })
        .collect()
}

/// A signed SET ready for the outbox.
#[derive(Debug, Clone)]
pub struct Outgoing {
    /// Its stream.
    pub stream_id: String,
    /// Its `jti`.
    pub jti: String,
    /// The compact JWS.
    pub token: String,
    /// Held for a paused stream.
    pub held: bool,
}

/// Enqueues SETs in one transaction and wakes the push worker and long polls.
pub async fn enqueue(state: &AppState, outgoing: Vec<Outgoing>, now: i64) -> Result<(), ApiError> {
    if outgoing.is_empty() {
        return Ok(());
    }
    let rows: Vec<NewOutboxRow> = outgoing
        .into_iter()
        .map(|o| NewOutboxRow {
            stream_id: o.stream_id,
            jti: o.jti,
            token: o.token,
            held: o.held,
            bypass_status: false,
        })
        .collect();
    state.outbox_writer.enqueue(rows, now).await?;
    state.outbox_signal.notify_waiters();
    Ok(())
}

/// Pending SETs of a poll stream, and whether more wait beyond `max`.
pub async fn pending_for_poll(
    state: &AppState,
    stream_id: &str,
    max: usize,
) -> Result<(Vec<(String, String)>, bool), ApiError> {
    let limit = i64::try_from(max).unwrap_or(i64::MAX - 1) + 1;
    let mut sets = state.store.pending_sets(stream_id, limit).await?;
    let more = sets.len() > max;
    sets.truncate(max);
    Ok((sets, more))
}

/// Removes acknowledged SETs (RFC 8936 §2.4).
pub async fn acknowledge(
    state: &AppState,
    stream_id: &str,
    jtis: &[String],
) -> Result<(), ApiError> {
    state
        .store
        .acknowledge(stream_id, jtis, state.clock.now())
        .await?;
    Ok(())
}

/// Records the receiver's `setErrs`: those SETs are not offered again.
pub async fn record_set_errors(
    state: &AppState,
    stream_id: &str,
    errors: &BTreeMap<String, PushError>,
) -> Result<(), ApiError> {
    let errors: Vec<(String, String)> = errors
        .iter()
        .map(|(jti, e)| (jti.clone(), format!("{}: {}", e.err, e.description)))
        .collect();
    Ok(state
        .store
        .reject_sets(stream_id, &errors, state.clock.now())
        .await?)
}
