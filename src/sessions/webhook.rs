//! Webhook notifications: each session action is POSTed to the application as JSON, signed
//! with HMAC-SHA256 so the application can trust it, retried with backoff until delivered or
//! too old. Notifications are rows written with the action itself, so none is lost.
//!
//! Signature: header `ssfd-signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>`.
//! The timestamp lets the application refuse old replays.

use std::time::Duration;

use hmac::{Hmac, Mac};
use sha2::Sha256;
use tokio::sync::watch;

use crate::http::AppState;
use crate::storage::sessions::NotificationRow;
use crate::transmitter::retry;

/// Notifications claimed per round.
const BATCH: i64 = 64;
/// How long a claim holds, seconds.
const CLAIM_SECS: i64 = 60;
/// How often the worker looks when nothing woke it.
const IDLE: Duration = Duration::from_secs(1);

/// The `ssfd-signature` header value for `body` at `timestamp`.
pub fn signature(secret: &str, timestamp: i64, body: &str) -> String {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes keys of any size");
    mac.update(format!("{timestamp}.{body}").as_bytes());
    format!(
        "t={timestamp},v1={}",
        hex::encode(mac.finalize().into_bytes())
    )
}

/// Delivers notifications until `shutdown`.
pub async fn run(state: AppState, mut shutdown: watch::Receiver<bool>) {
    let config = state.config.sessions.clone();
    if config.webhook_url.is_empty() {
        return;
    }
    let allowed: Vec<_> = config
        .webhook_allowed_hosts
        .iter()
        .filter_map(|h| h.parse().ok())
        .collect();
    if let Err(error) = crate::transmitter::push_target::check(&config.webhook_url, &allowed).await
    {
        tracing::error!(%error, "sessions.webhook_url is not allowed; no webhooks will be sent");
        return;
    }
    loop {
        if *shutdown.borrow() {
            break;
        }
        let now = state.clock.now();
        let due = match state
            .store
            .lease_notifications(now, now + CLAIM_SECS, BATCH)
            .await
        {
            Ok(due) => due,
            Err(error) => {
                tracing::error!(%error, "cannot claim notifications");
                Vec::new()
            }
        };
        let idle = due.is_empty();
        for note in due {
            deliver(&state, note).await;
        }
        if idle {
            tokio::select! {
                () = state.sessions.webhook_signal.notified() => {}
                () = tokio::time::sleep(IDLE) => {}
                _ = shutdown.changed() => {}
            }
        }
    }
}

async fn deliver(state: &AppState, note: NotificationRow) {
    let config = &state.config.sessions;
    let now = state.clock.now();
    let result = state
        .http
        .post(&note.url)
        .header("content-type", "application/json")
        .header(
            "ssfd-signature",
            signature(&config.webhook_secret, now, &note.body),
        )
        .body(note.body.clone())
        .send()
        .await;
    let error = match result {
        Ok(response) if response.status().is_success() => {
            if let Err(error) = state.store.notification_delivered(note.id).await {
                tracing::error!(%error, "cannot record a delivered notification");
            }
            return;
        }
        Ok(response) => format!("the webhook answered {}", response.status()),
        Err(error) => format!("request failed: {error}"),
    };
    let delay = retry::backoff(
        u32::try_from(note.attempts).unwrap_or(0),
        Duration::from_secs(1),
        Duration::from_secs(300),
        None,
    );
    let next = now + i64::try_from(delay.as_secs()).unwrap_or(300).max(1);
    let next = (next - note.created_at <= config.webhook_give_up_after_secs).then_some(next);
    if next.is_none() {
        tracing::warn!(id = note.id, %error, "notification given up");
    }
    if let Err(error) = state.store.notification_failed(note.id, next, &error).await {
        tracing::error!(%error, "cannot record a failed notification");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_covers_time_and_body() {
        let a = signature("0123456789abcdef", 1000, "{}");
        assert!(a.starts_with("t=1000,v1="));
        assert_eq!(a.len(), "t=1000,v1=".len() + 64);
        assert_ne!(a, signature("0123456789abcdef", 1001, "{}"));
        assert_ne!(a, signature("0123456789abcdef", 1000, "{ }"));
        assert_ne!(a, signature("0123456789abcdeg", 1000, "{}"));
    }
}
