//! Poll delivery from upstreams (RFC 8936, as the client): one loop per poll upstream long-polls
//! its transmitter, acknowledges in the next request what it durably stored, reports invalid
//! SETs in `setErrs`, refreshes its token after a 401, and backs off on errors, so that it
//! survives the transmitter restarting.

use std::collections::BTreeMap;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::ingest::{ingest, Ingested};
use super::manage;
use crate::http::AppState;
use crate::protocol::{DeliveryMethod, PollRequest, PollResponse, PushError};
use crate::storage::{DbError, UpstreamRow};

/// How often the supervisor looks for new or removed poll upstreams.
const SUPERVISE_EVERY: Duration = Duration::from_secs(2);
/// Most SETs asked for per poll.
const MAX_EVENTS: u64 = 100;
/// Longest wait for one poll answer (the transmitter decides how long a long poll lasts).
const POLL_TIMEOUT: Duration = Duration::from_secs(90);
/// Longest pause between failed polls.
const MAX_BACKOFF: Duration = Duration::from_secs(60);

/// Runs a poll loop for every poll upstream until `shutdown` turns true.
pub async fn run(state: AppState, mut shutdown: watch::Receiver<bool>) {
    let mut running: BTreeMap<String, JoinHandle<()>> = BTreeMap::new();
    loop {
        if *shutdown.borrow() {
            break;
        }
        running.retain(|_, task| !task.is_finished());
        match state.store.list_upstreams().await {
            Ok(upstreams) => {
                for upstream in upstreams {
                    if upstream.delivery_method == DeliveryMethod::Poll.as_str()
                        && !running.contains_key(&upstream.id)
                    {
                        let task = tokio::spawn(poll_loop(
                            state.clone(),
                            upstream.id.clone(),
                            shutdown.clone(),
                        ));
                        running.insert(upstream.id, task);
                    }
                }
            }
            Err(error) => tracing::error!(%error, "cannot list upstreams"),
        }
        tokio::select! {
            () = tokio::time::sleep(SUPERVISE_EVERY) => {}
            _ = shutdown.changed() => {}
        }
    }
    for (_, task) in running {
        let _ = task.await;
    }
}

/// What the loop carries from one poll to the next.
#[derive(Debug, Default)]
struct Pending {
    acks: Vec<String>,
    errors: BTreeMap<String, PushError>,
}

async fn poll_loop(state: AppState, upstream_id: String, mut shutdown: watch::Receiver<bool>) {
    let mut pending = Pending::default();
    let mut token: Option<String> = None;
    let mut backoff = Duration::from_secs(1);
    loop {
        if *shutdown.borrow() {
            return;
        }
        let upstream = match state.store.get_upstream(&upstream_id).await {
            Ok(upstream) => upstream,
            Err(DbError::NotFound) => return,
            Err(error) => {
                tracing::error!(%error, "cannot load the upstream");
                wait(&mut shutdown, backoff).await;
                continue;
            }
        };
        let result = tokio::select! {
            result = poll_once(&state, &upstream, &mut token, &mut pending) => result,
            _ = shutdown.changed() => return,
        };
        match result {
            Ok(()) => backoff = Duration::from_secs(1),
            Err(error) => {
                tracing::warn!(upstream = %upstream.id, %error, retry_in = ?backoff, "poll failed");
                wait(&mut shutdown, backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    }
}

async fn wait(shutdown: &mut watch::Receiver<bool>, delay: Duration) {
    tokio::select! {
        () = tokio::time::sleep(delay) => {}
        _ = shutdown.changed() => {}
    }
}

/// One poll: send the acknowledgements and errors gathered, take new SETs in.
async fn poll_once(
    state: &AppState,
    upstream: &UpstreamRow,
    token: &mut Option<String>,
    pending: &mut Pending,
) -> Result<(), String> {
    let url = upstream
        .poll_url
        .as_deref()
        .ok_or("the upstream has no poll URL")?;
    // The cached token while it is fresh; a new one shortly before it expires.
    *token = Some(
        manage::access_token(state, upstream)
            .await
            .map_err(|e| e.to_string())?,
    );
    let request = PollRequest {
        max_events: Some(MAX_EVENTS),
        return_immediately: Some(false),
        ack: Some(pending.acks.clone()),
        set_errs: (!pending.errors.is_empty()).then(|| pending.errors.clone()),
        extra: Default::default(),
    };
    let response = state
        .http
        .post(url)
        .bearer_auth(token.as_deref().unwrap_or_default())
        .header(reqwest::header::CONTENT_LANGUAGE, "en")
        .timeout(POLL_TIMEOUT)
        .json(&request)
        .send()
        .await
        .map_err(|e| e.to_string())?;
    if response.status() == reqwest::StatusCode::UNAUTHORIZED {
        // Expired or revoked: get a new token on the next round (receiver access-token expiry).
        *token = None;
        manage::forget_token(state, &upstream.id);
        return Err("the transmitter refused the token (401)".to_owned());
    }
    if !response.status().is_success() {
        return Err(format!("the transmitter answered {}", response.status()));
    }
    let answer: PollResponse = response.json().await.map_err(|e| e.to_string())?;
    // The transmitter has the acknowledgements and errors now.
    *pending = Pending::default();
    for (jti, set) in answer.sets {
        match ingest(state, upstream, &set).await {
            Ingested::Stored | Ingested::Duplicate => pending.acks.push(jti),
            Ingested::Rejected(error) => {
                pending.errors.insert(jti, error);
            }
            // Not acknowledged: the transmitter offers it again.
            Ingested::NotStored(_) => {}
        }
    }
    Ok(())
}
