//! Push delivery (RFC 8935): a dispatcher claims due SETs from the outbox and hands them to
//! one lane per stream; each lane POSTs its SETs in order (`push_concurrency_per_stream`
//! lanes share a stream's queue), retries with exponential backoff and jitter, and gives up
//! on a SET once it is older than `dead_letter_after_secs`. Claims are leases in the database,
//! so replicas sharing PostgreSQL never send one SET at the same time, and a crashed process's
//! claims lapse and are taken over.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::header;
use tokio::sync::{mpsc, watch};

use super::repo;
use super::retry::{self, Outcome};
use super::streams::Stream;
use crate::http::AppState;
use crate::protocol::{DeliveryMethod, StreamState};
use crate::storage::{Lease, LeasedSet};

/// SETs claimed per round.
const LEASE_BATCH: i64 = 256;
/// How long a claim holds; far longer than one attempt, so only a crash lets it lapse.
const LEASE_SECS: i64 = 300;
/// How often the dispatcher looks again when nothing woke it.
const IDLE_RECHECK: Duration = Duration::from_millis(500);
/// Most bytes of a receiver's error body kept for the admin.
const MAX_ERROR_BODY: usize = 4096;

/// Runs the push worker until `shutdown` turns true.
pub async fn run(state: AppState, mut shutdown: watch::Receiver<bool>) {
    let owner = crate::ids::new_id();
    let in_flight: Arc<Mutex<BTreeSet<i64>>> = Arc::default();
    let mut lanes: BTreeMap<String, mpsc::UnboundedSender<LeasedSet>> = BTreeMap::new();
    loop {
        if *shutdown.borrow() {
            break;
        }
        let now = state.clock.now();
        let lease = Lease {
            now,
            limit: LEASE_BATCH,
            until: now + LEASE_SECS,
            owner: &owner,
        };
        let leased = match state.store.lease_due(lease).await {
            Ok(leased) => leased,
            Err(error) => {
                tracing::error!(%error, "cannot claim SETs to push");
                Vec::new()
            }
        };
        let mut dispatched = 0;
        for set in leased {
            // A claim renewed while the SET still waits in its lane is not a second send.
            if !in_flight.lock().expect("not poisoned").insert(set.id) {
                continue;
            }
            dispatched += 1;
            let lane = lanes
                .entry(set.stream_id.clone())
                .or_insert_with(|| spawn_lane(&state, in_flight.clone()));
            if let Err(mpsc::error::SendError(set)) = lane.send(set) {
                in_flight.lock().expect("not poisoned").remove(&set.id);
            }
        }
        if dispatched == 0 {
            tokio::select! {
                () = state.outbox_signal.notified() => {}
                () = tokio::time::sleep(IDLE_RECHECK) => {}
                _ = shutdown.changed() => {}
            }
        }
    }
}

/// One stream's queue, drained by `push_concurrency_per_stream` tasks.
fn spawn_lane(
    state: &AppState,
    in_flight: Arc<Mutex<BTreeSet<i64>>>,
) -> mpsc::UnboundedSender<LeasedSet> {
    let (sender, receiver) = mpsc::unbounded_channel::<LeasedSet>();
    let receiver = Arc::new(tokio::sync::Mutex::new(receiver));
    for _ in 0..state.config.transmitter.push_concurrency_per_stream {
        let (state, receiver, in_flight) = (state.clone(), receiver.clone(), in_flight.clone());
        tokio::spawn(async move {
            loop {
                let next = receiver.lock().await.recv().await;
                let Some(set) = next else { break };
                let id = set.id;
                if let Err(error) = deliver(&state, set).await {
                    tracing::error!(%error, "push bookkeeping failed");
                }
                in_flight.lock().expect("not poisoned").remove(&id);
            }
        });
    }
    sender
}

/// The stream of `set` once the SET may be pushed, or `None` when it must not be: the stream
/// was deleted (its outbox went with it), disabled (the status change dropped the SET), or
/// switched to poll (the receiver fetches the SET itself).
///
/// While the stream is paused the SET is kept here, claimed, until the stream is enabled
/// again (SSF-ST-07: held, then transmitted). Giving it up instead would leave it held with a
/// claim that outlives the pause by up to `LEASE_SECS`, so re-enabling the stream would not
/// release it.
async fn sendable(
    state: &AppState,
    set: &LeasedSet,
) -> Result<Option<Stream>, crate::http::ApiError> {
    loop {
        let Some(stream) = repo::get_stream(state, &set.stream_id).await? else {
            return Ok(None);
        };
        if stream.delivery.method != DeliveryMethod::Push {
            return Ok(None);
        }
        if set.bypass_status || stream.status == StreamState::Enabled {
            return Ok(Some(stream));
        }
        if stream.status == StreamState::Disabled {
            return Ok(None);
        }
        // Status changes wake the outbox signal; the timeout covers other replicas.
        tokio::select! {
            () = state.outbox_signal.notified() => {}
            () = tokio::time::sleep(IDLE_RECHECK) => {}
        }
    }
}

#[tracing::instrument(skip_all, fields(stream_id = %set.stream_id, jti = %set.jti))]
async fn deliver(state: &AppState, set: LeasedSet) -> Result<(), crate::http::ApiError> {
    let store = &state.store;
    let Some(stream) = sendable(state, &set).await? else {
        return Ok(());
    };
    let config = &state.config.transmitter;
    let now = state.clock.now();
    if now - set.created_at > config.dead_letter_after_secs {
        let reason = format!("not delivered within {} s", config.dead_letter_after_secs);
        store.dead_letter(set.id, &reason, now).await?;
        return Ok(());
    }
    let Some(url) = stream.delivery.endpoint_url.as_deref() else {
        store
            .dead_letter(set.id, "the stream has no push endpoint", now)
            .await?;
        return Ok(());
    };
    // PUSH-06: the SET as the body, typed; SSF-DEL-04: the receiver's Authorization value
    // verbatim, and none at all when it gave none.
    let mut request = state
        .http
        .post(url)
        .header(header::CONTENT_TYPE, "application/secevent+jwt")
        .header(header::ACCEPT, "application/json")
        .body(set.token.clone());
    if let Some(authorization) = &stream.delivery.authorization_header {
        request = request.header(header::AUTHORIZATION, authorization.expose());
    }
    let outcome = match request.send().await {
        Ok(response) => {
            let status = response.status().as_u16();
            let retry_after = response
                .headers()
                .get(header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            let body = response.bytes().await.unwrap_or_default();
            let body =
                String::from_utf8_lossy(&body[..body.len().min(MAX_ERROR_BODY)]).into_owned();
            retry::classify(status, retry_after.as_deref(), &body)
        }
        Err(error) => Outcome::Retry {
            error: format!("request failed: {error}"),
            retry_after: None,
        },
    };
    let now = state.clock.now();
    match outcome {
        Outcome::Delivered => store.mark_delivered(set.id, now).await?,
        Outcome::Reject { error } => {
            tracing::warn!(%error, "receiver rejected the SET");
            store.dead_letter(set.id, &error, now).await?;
        }
        Outcome::Retry { error, retry_after } => {
            let attempts = u32::try_from(set.attempts).unwrap_or(0);
            let delay = retry::backoff(
                attempts,
                Duration::from_secs(config.retry_initial_secs),
                Duration::from_secs(config.retry_max_secs),
                retry_after,
            );
            let next = now
                + i64::try_from(delay.as_secs())
                    .unwrap_or(i64::MAX / 2)
                    .max(1);
            if next - set.created_at > config.dead_letter_after_secs {
                store.dead_letter(set.id, &error, now).await?;
            } else {
                tracing::debug!(%error, attempts, "push failed; retrying");
                store.schedule_retry(set.id, next, &error, now).await?;
            }
        }
    }
    Ok(())
}
