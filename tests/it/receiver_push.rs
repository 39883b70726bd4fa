//! The receiver's RFC 8935 push endpoint, with the test acting as the transmitter: valid SETs
//! are acknowledged and stored once; each tampered SET of the conformance suite's
//! invalid-set-rejection module gets its own RFC 8935 error.

use serde_json::{json, Value};
use ssfd::jose::{self, Algorithm, KeyRing};
use ssfd::storage::UpstreamRow;

use crate::common::TestServer;

const ISSUER: &str = "https://idp.example.test";
const AUDIENCE: &str = "https://rp.example.test";
const REVOKED: &str = "https://schemas.openid.net/secevent/caep/event-type/session-revoked";
const VERIFICATION: &str = "https://schemas.openid.net/secevent/ssf/event-type/verification";

struct Upstream {
    server: TestServer,
    keys: KeyRing,
    url: String,
    secret: String,
}

impl Upstream {
    async fn new() -> Self {
        let server = TestServer::start().await;
        let keys = KeyRing::new(
            vec![jose::generate(&Algorithm::Rs256, Some("tx-key-1"), 0).unwrap()],
            1,
        )
        .unwrap();
        let secret = ssfd::ids::new_secret();
        let now = server.state.clock.now();
        let row = UpstreamRow {
            id: "up1".into(),
            issuer: ISSUER.into(),
            metadata: None,
            auth: "{}".into(),
            delivery_method: "urn:ietf:rfc:8935".into(),
            events_requested: "[]".into(),
            remote_stream_id: Some("stream-1".into()),
            poll_url: None,
            audience: AUDIENCE.into(),
            jwks: Some(keys.jwks().to_string()),
            push_token_hash: Some(ssfd::auth::hash_secret(&secret)),
            status: "enabled".into(),
            verification_state: Some("state-42".into()),
            verified_at: None,
            created_at: now,
            updated_at: now,
        };
        server.store().insert_upstream(&row).await.unwrap();
        let url = server.url("/ssf/receiver/up1");
        Self {
            server,
            keys,
            url,
            secret,
        }
    }

    fn claims(&self, events: Value) -> Value {
        json!({"iss": ISSUER, "aud": AUDIENCE, "iat": self.server.state.clock.now(), "jti": ssfd::ids::new_id(),
               "sub_id": {"format": "email", "email": "jane@example.com"}, "events": events})
    }

    fn sign(&self, claims: &Value) -> String {
        self.keys.signer().sign(claims).unwrap()
    }

    async fn push(&self, token: &str) -> (u16, Value) {
        let response = self
            .server
            .http
            .post(&self.url)
            .header("content-type", "application/secevent+jwt")
            .bearer_auth(&self.secret)
            .body(token.to_owned())
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        let body = response.json().await.unwrap_or(Value::Null);
        (status, body)
    }

    async fn stored(&self, claims: &Value) -> bool {
        let (iss, jti) = (
            claims["iss"].as_str().unwrap(),
            claims["jti"].as_str().unwrap(),
        );
        self.server
            .store()
            .get_received(iss, jti)
            .await
            .unwrap()
            .is_some()
    }
}

#[tokio::test]
async fn valid_sets_are_acknowledged_and_stored_once() {
    let upstream = Upstream::new().await;
    let claims = upstream.claims(json!({REVOKED: {"reason_admin": {"en": "lost device"}}}));
    let token = upstream.sign(&claims);
    assert_eq!(upstream.push(&token).await.0, 202); // PUSH-08
    assert_eq!(
        upstream.push(&token).await.0,
        202,
        "a redelivered SET is acknowledged again"
    ); // PUSH-04
    assert!(upstream.stored(&claims).await);
}

#[tokio::test]
async fn each_tampered_set_gets_its_own_error() {
    // openid-ssf-receiver-invalid-set-rejection: corrupted signature, wrong iss, wrong aud,
    // unknown kid (PUSH-10, PUSH-12).
    let upstream = Upstream::new().await;
    let claims = upstream.claims(json!({REVOKED: {}}));
    // Change one character in the middle of the signature (the last one only carries padding
    // bits, whose change makes the encoding invalid rather than the signature).
    let signed = upstream.sign(&claims);
    let at = signed.rfind('.').unwrap() + 20;
    let replacement = if &signed[at..=at] == "A" { "B" } else { "A" };
    let signature_flipped = format!("{}{replacement}{}", &signed[..at], &signed[at + 1..]);
    let mut wrong_iss = claims.clone();
    wrong_iss["iss"] = json!("https://evil.example.test");
    let mut wrong_aud = claims.clone();
    wrong_aud["aud"] = json!("https://someone-else.example.test");
    let stranger = KeyRing::new(
        vec![jose::generate(&Algorithm::Rs256, Some("unknown-kid"), 0).unwrap()],
        1,
    )
    .unwrap();
    let cases = [
        (signature_flipped, "invalid_key"),
        (upstream.sign(&wrong_iss), "invalid_issuer"),
        (upstream.sign(&wrong_aud), "invalid_audience"),
        (stranger.signer().sign(&claims).unwrap(), "invalid_key"),
    ];
    for (token, code) in cases {
        let (status, body) = upstream.push(&token).await;
        assert_eq!(status, 400, "{code}");
        assert_eq!(body["err"], code, "{body}");
        assert!(body["description"].as_str().is_some_and(|d| !d.is_empty()));
    }
    assert!(
        !upstream.stored(&claims).await,
        "nothing rejected is stored"
    );
}

#[tokio::test]
async fn sets_breaking_the_ssf_rules_are_invalid_requests() {
    let upstream = Upstream::new().await;
    let two_events = upstream.claims(json!({REVOKED: {},
        "https://schemas.openid.net/secevent/caep/event-type/session-presented": {}}));
    let bad_payload = upstream.claims(json!({
        "https://schemas.openid.net/secevent/caep/event-type/credential-change": {"change_type": "create"}}));
    let mut with_sub = upstream.claims(json!({REVOKED: {}}));
    with_sub["sub"] = json!("jane");
    for claims in [two_events, bad_payload, with_sub] {
        let (status, body) = upstream.push(&upstream.sign(&claims)).await;
        assert_eq!(
            (status, body["err"].as_str()),
            (400, Some("invalid_request")),
            "{claims}"
        );
    }
    let (status, _) = upstream.push("not a jws").await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn verification_events_are_checked_against_the_requested_state() {
    // SSF-VER-06, SSF-VER-07, openid-ssf-receiver-verification-wrong-state / -wrong-subject /
    // unsolicited-stream-verification.
    let upstream = Upstream::new().await;
    let verification = |state: Option<&str>, stream_id: &str| {
        let mut claims = upstream.claims(json!({VERIFICATION: {}}));
        claims["sub_id"] = json!({"format": "opaque", "id": stream_id});
        if let Some(state) = state {
            claims["events"][VERIFICATION]["state"] = json!(state);
        }
        upstream.sign(&claims)
    };
    let (status, body) = upstream
        .push(&verification(Some("not-ours"), "stream-1"))
        .await;
    assert_eq!((status, body["err"].as_str()), (400, Some("invalid_state")));
    let (status, body) = upstream
        .push(&verification(Some("state-42"), "another-stream"))
        .await;
    assert_eq!(
        (status, body["err"].as_str()),
        (400, Some("invalid_request"))
    );
    assert_eq!(
        upstream
            .push(&verification(Some("state-42"), "stream-1"))
            .await
            .0,
        202
    );
    assert_eq!(
        upstream.push(&verification(None, "stream-1")).await.0,
        202,
        "unsolicited"
    );
    let row = upstream.server.store().get_upstream("up1").await.unwrap();
    assert!(row.verified_at.is_some());
}

#[tokio::test]
async fn the_push_credential_is_required() {
    let upstream = Upstream::new().await;
    let token = upstream.sign(&upstream.claims(json!({REVOKED: {}})));
    let response = upstream
        .server
        .http
        .post(&upstream.url)
        .bearer_auth("wrong")
        .body(token.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    assert_eq!(
        response.json::<Value>().await.unwrap()["err"],
        "authentication_failed"
    );
    let unknown = upstream
        .server
        .http
        .post(upstream.server.url("/ssf/receiver/nope"))
        .body(token)
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), 404);
}

#[tokio::test]
async fn rotated_keys_are_fetched_again_but_not_for_every_unknown_kid() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{Arc, Mutex};

    let upstream = Upstream::new().await;
    // The transmitter's JWKS endpoint, serving whatever keys it publishes now, counting fetches.
    let published = Arc::new(Mutex::new(upstream.keys.jwks().clone()));
    let fetches = Arc::new(AtomicUsize::new(0));
    let (served, counter) = (published.clone(), fetches.clone());
    let app = axum::Router::new().route(
        "/jwks",
        axum::routing::get(move || {
            counter.fetch_add(1, Ordering::SeqCst);
            let keys = served.lock().unwrap().clone();
            async move { axum::Json(keys) }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let jwks_uri = format!("http://{}/jwks", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let mut row = upstream.server.store().get_upstream("up1").await.unwrap();
    row.metadata = Some(json!({"issuer": ISSUER, "jwks_uri": jwks_uri}).to_string());
    upstream.server.store().update_upstream(&row).await.unwrap();

    // The transmitter rotates to a new key and publishes it.
    let rotated = KeyRing::new(
        vec![jose::generate(&Algorithm::Rs256, Some("tx-key-2"), 0).unwrap()],
        1,
    )
    .unwrap();
    *published.lock().unwrap() = rotated.jwks().clone();
    let claims = upstream.claims(json!({REVOKED: {}}));
    let (status, body) = upstream
        .push(&rotated.signer().sign(&claims).unwrap())
        .await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(fetches.load(Ordering::SeqCst), 1);

    // SETs naming keys nobody publishes: rejected, and no new fetch within the minute.
    for i in 0..5 {
        let stranger = KeyRing::new(
            vec![jose::generate(&Algorithm::Es256, Some(&format!("made-up-{i}")), 0).unwrap()],
            1,
        )
        .unwrap();
        let (status, body) = upstream
            .push(
                &stranger
                    .signer()
                    .sign(&upstream.claims(json!({REVOKED: {}})))
                    .unwrap(),
            )
            .await;
        assert_eq!((status, body["err"].as_str()), (400, Some("invalid_key")));
    }
    assert_eq!(
        fetches.load(Ordering::SeqCst),
        1,
        "a flood of unknown kids fetched the JWKS again"
    );
}

#[tokio::test]
async fn sets_older_than_the_configured_age_are_refused_and_rejections_counted() {
    let upstream = Upstream::new().await;
    let max_age = upstream.server.state.config.receiver.max_set_age_secs;
    let mut old = upstream.claims(json!({REVOKED: {}}));
    old["iat"] = json!(upstream.server.state.clock.now() - max_age - 60);
    let (status, body) = upstream.push(&upstream.sign(&old)).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["err"], "invalid_request", "{body}");
    // A tampered signature too: each refusal is counted by upstream and reason.
    let fresh = upstream.sign(&upstream.claims(json!({REVOKED: {}})));
    let other = upstream.sign(&upstream.claims(json!({REVOKED: {}})));
    let (signed_part, _) = fresh.rsplit_once('.').unwrap();
    let (_, foreign_signature) = other.rsplit_once('.').unwrap();
    let (status, _) = upstream
        .push(&format!("{signed_part}.{foreign_signature}"))
        .await;
    assert_eq!(status, 400);
    let metrics = &upstream.server.state.metrics;
    let rejected = |reason| {
        metrics.counter(
            ssfd::metrics::SETS_REJECTED,
            &[("upstream", "up1"), ("reason", reason)],
        )
    };
    assert_eq!(rejected("invalid_request"), 1);
    assert_eq!(rejected("invalid_key"), 1);
    let (status, _) = upstream.push(&fresh).await;
    assert_eq!(status, 202);
    assert_eq!(
        metrics.counter(ssfd::metrics::SETS_RECEIVED, &[("upstream", "up1")]),
        1
    );
    let text = upstream
        .server
        .http
        .get(upstream.server.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        text.contains("ssfd_sets_rejected_total{reason=\"invalid_key\",upstream=\"up1\"} 1"),
        "{text}"
    );
}
