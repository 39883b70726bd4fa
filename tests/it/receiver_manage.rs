//! Managing upstream streams through ssfd (issue 3): the admin API lists upstreams without
//! secrets, adds and removes subjects, changes the events, re-verifies, re-creates a stream the
//! transmitter lost, and deletes it; tokens are reused until shortly before they expire.
//! An ssfd transmitter is the peer.

use std::time::Duration;

use serde_json::{json, Value};
use ssfd::auth::CredentialKind;
use ssfd::protocol::EventType;
use ssfd::receiver::manage;
use ssfd::receiver::upstreams::{register_push, Registration, UpstreamAuth};
use ssfd::storage::UpstreamRow;
use ssfd::transmitter::intake;

use crate::common::TestServer;

const REVOKED: &str = "https://schemas.openid.net/secevent/caep/event-type/session-revoked";
const CREDENTIAL: &str = "https://schemas.openid.net/secevent/caep/event-type/credential-change";

struct Pair {
    transmitter: TestServer,
    receiver: TestServer,
    upstream: UpstreamRow,
    secret: String,
    admin: String,
}

impl Pair {
    async fn start(token_lifetime: i64) -> Self {
        let transmitter = TestServer::start_with(move |config| {
            config.auth.access_token_lifetime_secs = token_lifetime;
        })
        .await;
        let receiver = TestServer::start().await;
        let (client_id, secret) = transmitter.client(&["ssf.manage"]).await;
        let upstream = register_push(
            &receiver.state,
            Registration {
                issuer: transmitter.base.clone(),
                auth: UpstreamAuth::ClientCredentials {
                    token_endpoint: None,
                    client_id,
                    client_secret: secret.clone(),
                    scope: None,
                },
                events: vec![EventType::from(REVOKED)],
            },
        )
        .await
        .expect("registration succeeds");
        let admin = receiver.credential(CredentialKind::Admin).await;
        Self {
            transmitter,
            receiver,
            upstream,
            secret,
            admin,
        }
    }

    async fn admin(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut request = self
            .receiver
            .http
            .request(method, self.receiver.url(path))
            .bearer_auth(&self.admin);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    async fn current(&self) -> UpstreamRow {
        self.receiver
            .store()
            .get_upstream(&self.upstream.id)
            .await
            .unwrap()
    }

    async fn wait_verified_after(&self, since: Option<i64>) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let row = self.current().await;
            if row.verified_at.is_some() && row.verified_at >= since.map(|s| s + 1).or(Some(0)) {
                return;
            }
            assert!(tokio::time::Instant::now() < deadline, "not verified");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_api_manages_upstream_streams() {
    let pair = Pair::start(300).await;
    let id = pair.upstream.id.clone();
    let stream_id = pair.upstream.remote_stream_id.clone().unwrap();

    // Listed without any credential (SSF-SEC: secrets are never returned).
    let (status, list) = pair
        .admin(reqwest::Method::GET, "/admin/upstreams", None)
        .await;
    assert_eq!(status, 200);
    assert_eq!(list["upstreams"][0]["id"], id.as_str());
    assert!(!list.to_string().contains(&pair.secret));
    assert!(!list.to_string().contains("client_secret"));

    // Subjects: added and removed at the transmitter's stream (SSF 1.0 §8.1.3).
    let subject = json!({"subject": {"format": "email", "email": "zoe@example.com"}});
    let path = format!("/admin/upstreams/{id}/subjects/add");
    let (status, body) = pair
        .admin(reqwest::Method::POST, &path, Some(subject.clone()))
        .await;
    assert_eq!(status, 204, "{body}");
    let subjects = pair
        .transmitter
        .store()
        .list_subjects(Some(&stream_id))
        .await
        .unwrap();
    assert!(subjects
        .iter()
        .any(|s| s.subject.contains("zoe@example.com") && s.mode == "added"));
    let path = format!("/admin/upstreams/{id}/subjects/remove");
    let (status, _) = pair
        .admin(reqwest::Method::POST, &path, Some(subject))
        .await;
    assert_eq!(status, 204);
    let subjects = pair
        .transmitter
        .store()
        .list_subjects(Some(&stream_id))
        .await
        .unwrap();
    assert!(!subjects
        .iter()
        .any(|s| s.subject.contains("zoe@example.com") && s.mode == "added"));

    // Events: changed at the transmitter (PATCH).
    let path = format!("/admin/upstreams/{id}");
    let (status, body) = pair
        .admin(
            reqwest::Method::PATCH,
            &path,
            Some(json!({"events": [REVOKED, CREDENTIAL]})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let stream = pair
        .transmitter
        .store()
        .get_stream(&stream_id)
        .await
        .unwrap();
    assert!(stream
        .events_requested
        .unwrap()
        .contains("credential-change"));

    // Verification on demand: a new state, confirmed when the SET arrives.
    pair.wait_verified_after(None).await;
    let before = pair.current().await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (status, _) = pair
        .admin(
            reqwest::Method::POST,
            &format!("/admin/upstreams/{id}/verify"),
            None,
        )
        .await;
    assert_eq!(status, 202);
    assert_ne!(
        pair.current().await.verification_state,
        before.verification_state
    );
    pair.wait_verified_after(before.verified_at).await;

    // The transmitter loses the stream: a check creates it again, and events flow again.
    pair.transmitter
        .store()
        .delete_stream(&stream_id)
        .await
        .unwrap();
    pair.transmitter.state.caches.invalidate();
    let (status, body) = pair
        .admin(
            reqwest::Method::POST,
            &format!("/admin/upstreams/{id}/check"),
            None,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert!(body["health"]["error"].is_null(), "{body}");
    let recreated = pair.current().await;
    assert_ne!(
        recreated.remote_stream_id.as_deref(),
        Some(stream_id.as_str())
    );
    let intake = serde_json::from_value(json!({
        "sub_id": {"format": "email", "email": "zoe@example.com"},
        "events": {REVOKED: {}}
    }))
    .unwrap();
    let sent = intake::submit(&pair.transmitter.state, intake)
        .await
        .unwrap();
    assert_eq!(sent.sets.len(), 1);
    let jti = sent.sets[0].jti.clone();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while pair
        .receiver
        .store()
        .get_received(&pair.transmitter.base, &jti)
        .await
        .unwrap()
        .is_none()
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no event after re-creation"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (_, detail) = pair
        .admin(
            reqwest::Method::GET,
            &format!("/admin/upstreams/{id}"),
            None,
        )
        .await;
    assert!(detail["recent_sets"]
        .as_array()
        .unwrap()
        .iter()
        .any(|s| s["jti"] == jti.as_str()));

    // Deleted: at the transmitter and here.
    let new_stream = recreated.remote_stream_id.unwrap();
    let (status, _) = pair
        .admin(
            reqwest::Method::DELETE,
            &format!("/admin/upstreams/{id}"),
            None,
        )
        .await;
    assert_eq!(status, 204);
    assert!(pair
        .transmitter
        .store()
        .get_stream(&new_stream)
        .await
        .is_err());
    assert!(pair.receiver.store().get_upstream(&id).await.is_err());
}

#[tokio::test]
async fn only_admins_reach_the_upstream_admin_api() {
    let pair = Pair::start(300).await;
    let publisher = pair.receiver.publisher().await;
    let application = pair.receiver.credential(CredentialKind::Application).await;
    for token in [
        Some(publisher),
        Some(application),
        Some("not-a-token".to_owned()),
        None,
    ] {
        let mut request = pair
            .receiver
            .http
            .get(pair.receiver.url("/admin/upstreams"));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        assert_eq!(request.send().await.unwrap().status(), 401);
    }
}

#[tokio::test]
async fn tokens_are_reused_until_shortly_before_they_expire() {
    // CAEP interop profile: short-lived tokens; ssfd renews them before they lapse.
    let pair = Pair::start(4).await;
    let first = manage::access_token(&pair.receiver.state, &pair.upstream)
        .await
        .unwrap();
    let again = manage::access_token(&pair.receiver.state, &pair.upstream)
        .await
        .unwrap();
    assert_eq!(first, again, "a fresh token is reused");
    // With a 4 s lifetime the token is renewed after half of it.
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let renewed = manage::access_token(&pair.receiver.state, &pair.upstream)
        .await
        .unwrap();
    assert_ne!(first, renewed);
    // After a 401 the cached token is forgotten.
    manage::forget_token(&pair.receiver.state, &pair.upstream.id);
    let after = manage::access_token(&pair.receiver.state, &pair.upstream)
        .await
        .unwrap();
    assert_ne!(after, renewed);
}

#[tokio::test]
async fn received_sets_are_forgotten_after_the_replay_window() {
    let pair = Pair::start(300).await;
    pair.wait_verified_after(None).await;
    let store = pair.receiver.store();
    assert!(!store
        .list_received(Some(&pair.upstream.id), 10)
        .await
        .unwrap()
        .is_empty());
    let window = pair.receiver.state.config.receiver.replay_window_secs;
    // Nothing is older than the window yet.
    manage::check_all(&pair.receiver.state).await;
    assert!(!store
        .list_received(Some(&pair.upstream.id), 10)
        .await
        .unwrap()
        .is_empty());
    let health = store
        .upstream_health(&pair.upstream.id)
        .await
        .unwrap()
        .unwrap();
    assert!(
        health.error.is_none() && health.ok_at.is_some(),
        "{health:?}"
    );
    // Rows past it are pruned.
    let pruned = store
        .prune_received(pair.receiver.state.clock.now() + 1)
        .await
        .unwrap();
    assert!(pruned >= 1);
    assert!(store
        .list_received(Some(&pair.upstream.id), 10)
        .await
        .unwrap()
        .is_empty());
    assert!(window >= pair.receiver.state.config.receiver.max_set_age_secs);
}
