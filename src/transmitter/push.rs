//! Push delivery (RFC 8935): a dispatcher claims due SETs from the outbox and hands them to
//! one lane per stream; each lane POSTs its SETs in order (`push_concurrency_per_stream`
//! queues per stream, one sending task each; all SETs about one subject go through the same
//! queue, so one principal's SETs leave in the order they were generated, SSF-ST-07),
//! retries with exponential backoff and jitter, and gives up on a SET once it is older than
//! `dead_letter_after_secs`. Claims are leases in the database,
//! so replicas sharing PostgreSQL never send one SET at the same time, and a crashed process's
//! claims lapse and are taken over.

use std::collections::{BTreeMap, BTreeSet};
use std::hash::{Hash as _, Hasher as _};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::header;
use tokio::sync::{mpsc, oneshot, watch};

use super::repo;
use super::retry::{self, Outcome};
use super::streams::Stream;
use crate::http::AppState;
use crate::protocol::{DeliveryMethod, StreamState};
use crate::storage::{Lease, LeasedSet};

/// SETs claimed per round.
const LEASE_BATCH: i64 = 256;
/// How long a claim holds, in push timeouts: longer than an attempt, short enough that a
/// crashed process's SETs are taken over soon after it restarts (or by another replica).
const LEASE_TIMEOUTS: i64 = 3;
/// How often the dispatcher looks again when nothing woke it.
const IDLE_RECHECK: Duration = Duration::from_millis(500);
/// Most bytes of a receiver's error body kept for the admin.
const MAX_ERROR_BODY: usize = 4096;
/// Most deliveries recorded in one transaction.
const MAX_COMPLETIONS: usize = 512;

/// Where a queue reports a delivered SET, and learns when it is recorded.
type Completions = mpsc::UnboundedSender<(i64, oneshot::Sender<()>)>;

/// Records deliveries in batches: one commit for every SET acknowledged meanwhile, instead of
/// one per SET (the same group commit as the intake's).
async fn record_deliveries(
    state: AppState,
    mut delivered: mpsc::UnboundedReceiver<(i64, oneshot::Sender<()>)>,
) {
    while let Some(first) = delivered.recv().await {
        let mut batch = vec![first];
        while batch.len() < MAX_COMPLETIONS {
            match delivered.try_recv() {
                Ok(next) => batch.push(next),
                Err(_) => break,
            }
        }
        let ids: Vec<i64> = batch.iter().map(|(id, _)| *id).collect();
        if let Err(error) = state.store.mark_delivered(&ids, state.clock.now()).await {
            // The lease lapses and the SETs are sent again: at least once, never lost.
            tracing::error!(%error, count = ids.len(), "cannot record deliveries");
        }
        for (_, done) in batch {
            let _ = done.send(());
        }
    }
}

/// Runs the push worker until `shutdown` turns true.
pub async fn run(state: AppState, mut shutdown: watch::Receiver<bool>) {
    let owner = crate::ids::new_id();
    let (completions, delivered) = mpsc::unbounded_channel();
    tokio::spawn(record_deliveries(state.clone(), delivered));
    let in_flight: Arc<Mutex<BTreeSet<i64>>> = Arc::default();
    let mut lanes: BTreeMap<String, Lane> = BTreeMap::new();
    loop {
        if *shutdown.borrow() {
            break;
        }
        let now = state.clock.now();
        let timeout =
            i64::try_from(state.config.transmitter.push_timeout_secs).unwrap_or(i64::MAX / 8);
        let lease = Lease {
            now,
            limit: LEASE_BATCH,
            until: now + LEASE_TIMEOUTS * timeout,
            owner: &owner,
        };
        let mut leased = match state.store.lease_due(lease).await {
            Ok(leased) => leased,
            Err(error) => {
                tracing::error!(%error, "cannot claim SETs to push");
                Vec::new()
            }
        };
        // Generation order: an UPDATE … RETURNING does not promise the subquery's order.
        leased.sort_by_key(|set| set.id);
        let mut dispatched = 0;
        for set in leased {
            // A claim renewed while the SET still waits in its lane is not a second send.
            if !in_flight.lock().expect("not poisoned").insert(set.id) {
                continue;
            }
            dispatched += 1;
            let lane = lanes
                .entry(set.stream_id.clone())
                .or_insert_with(|| spawn_lane(&state, in_flight.clone(), completions.clone()));
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

/// One stream's lane: `push_concurrency_per_stream` queues, each drained in order by one task.
struct Lane {
    queues: Vec<mpsc::UnboundedSender<LeasedSet>>,
}

impl Lane {
    /// Queues `set` behind the earlier SETs about the same subject.
    fn send(&self, set: LeasedSet) -> Result<(), mpsc::error::SendError<LeasedSet>> {
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        subject_key(&set.token).hash(&mut hasher);
        let queue = usize::try_from(hasher.finish() % self.queues.len() as u64).unwrap_or(0);
        self.queues[queue].send(set)
    }
}

/// The `sub_id` of one of our own SETs, as compact JSON: what decides its queue.
fn subject_key(token: &str) -> String {
    crate::jose::peek_unverified(token)
        .ok()
        .and_then(|(_, claims)| claims.get("sub_id").map(ToString::to_string))
        .unwrap_or_default()
}

fn spawn_lane(
    state: &AppState,
    in_flight: Arc<Mutex<BTreeSet<i64>>>,
    completions: Completions,
) -> Lane {
    let queues = (0..state.config.transmitter.push_concurrency_per_stream.max(1))
        .map(|_| {
            let (sender, mut receiver) = mpsc::unbounded_channel::<LeasedSet>();
            let (state, in_flight, completions) =
                (state.clone(), in_flight.clone(), completions.clone());
            tokio::spawn(async move {
                while let Some(set) = receiver.recv().await {
                    let id = set.id;
                    if let Err(error) = deliver(&state, set, &completions).await {
                        tracing::error!(%error, "push bookkeeping failed");
                    }
                    in_flight.lock().expect("not poisoned").remove(&id);
                }
            });
            sender
        })
        .collect();
    Lane { queues }
}

/// The stream of `set` once the SET may be pushed, or `None` when it must not be: the stream
/// was deleted (its outbox went with it), disabled (the status change dropped the SET), or
/// switched to poll (the receiver fetches the SET itself).
///
/// While the stream is paused the SET is kept here, claimed, until the stream is enabled
/// again (SSF-ST-07: held, then transmitted). Giving it up instead would leave it held with a
/// claim that outlives the pause by up to a lease, so re-enabling the stream would not release
/// it at once.
async fn sendable(
    state: &AppState,
    set: &LeasedSet,
) -> Result<Option<Stream>, crate::http::ApiError> {
    loop {
        let Some(stream) = repo::cached_stream(state, &set.stream_id).await? else {
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
async fn deliver(
    state: &AppState,
    set: LeasedSet,
    completions: &Completions,
) -> Result<(), crate::http::ApiError> {
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
        Outcome::Delivered => {
            let (done, recorded) = oneshot::channel();
            if completions.send((set.id, done)).is_ok() {
                let _ = recorded.await;
            }
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine as _;

    fn set(id: i64, email: &str) -> LeasedSet {
        let part = |json: serde_json::Value| URL_SAFE_NO_PAD.encode(json.to_string());
        let token = format!(
            "{}.{}.sig",
            part(serde_json::json!({"alg": "RS256"})),
            part(serde_json::json!({"sub_id": {"format": "email", "email": email}}))
        );
        LeasedSet {
            id,
            stream_id: "s".to_owned(),
            jti: format!("j{id}"),
            token,
            attempts: 0,
            created_at: 0,
            bypass_status: false,
        }
    }

    #[test]
    fn one_subjects_sets_share_a_queue_in_order() {
        // SSF-ST-07: one principal's SETs leave in generation order.
        let (senders, mut receivers): (Vec<_>, Vec<_>) =
            (0..4).map(|_| mpsc::unbounded_channel()).unzip();
        let lane = Lane { queues: senders };
        for id in 0..20 {
            let email = format!("user{}@example.com", id % 5);
            lane.send(set(id, &email)).unwrap();
        }
        let mut seen = BTreeMap::<String, (usize, i64)>::new();
        for (queue, receiver) in receivers.iter_mut().enumerate() {
            while let Ok(set) = receiver.try_recv() {
                let key = subject_key(&set.token);
                assert!(!key.is_empty());
                if let Some((other, last)) = seen.insert(key, (queue, set.id)) {
                    assert_eq!(other, queue, "one subject, two queues");
                    assert!(last < set.id, "out of order");
                }
            }
        }
        assert_eq!(seen.len(), 5);
    }
}
