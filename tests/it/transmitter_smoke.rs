//! End-to-end smoke test of the transmitter: discover, authorize, create a poll stream,
//! submit an event, poll it, verify its signature against the advertised JWKS.

use serde_json::{json, Value};
use ssfd::jose::SetVerifier;

use crate::common::TestServer;

#[tokio::test]
async fn discover_create_emit_poll_verify() {
    let server = TestServer::start().await;
    let http = &server.http;
    let metadata: Value = http
        .get(server.url("/.well-known/ssf-configuration"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(metadata["spec_version"], "1_0");
    assert_eq!(metadata["issuer"], server.base);

    let token = server.token(&["ssf.manage"]).await;
    let created = http
        .post(metadata["configuration_endpoint"].as_str().unwrap())
        .bearer_auth(&token)
        .json(&json!({"events_requested": ["https://schemas.openid.net/secevent/caep/event-type/session-revoked"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let stream: Value = created.json().await.unwrap();
    let poll_url = stream["delivery"]["endpoint_url"]
        .as_str()
        .unwrap()
        .to_owned();

    let publisher = server.publisher().await;
    let intake = http
        .post(server.url("/events"))
        .bearer_auth(&publisher)
        .json(&json!({
            "sub_id": {"format": "email", "email": "jane@example.com"},
            "events": {"https://schemas.openid.net/secevent/caep/event-type/session-revoked": {
                "reason_admin": {"en": "Policy violation"}}}
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(intake.status(), 202, "{:?}", intake.text().await);

    let polled: Value = http
        .post(&poll_url)
        .bearer_auth(&token)
        .json(&json!({"returnImmediately": true}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let sets = polled["sets"].as_object().unwrap();
    assert_eq!(sets.len(), 1, "{polled}");
    let (jti, set) = sets.iter().next().unwrap();

    let jwks: Value = http
        .get(metadata["jwks_uri"].as_str().unwrap())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let audience = stream["aud"].as_str().unwrap();
    let verifier = SetVerifier::builder(&server.base, audience, &jwks, server.state.clock.clone())
        .strict_typ()
        .build()
        .unwrap();
    let verified = verifier.verify(set.as_str().unwrap()).unwrap();
    assert_eq!(verified.jti(), jti);

    let acked: Value = http
        .post(&poll_url)
        .bearer_auth(&token)
        .json(&json!({"ack": [jti], "returnImmediately": true}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(acked["sets"], json!({}));
}

#[tokio::test]
async fn transmitter_initiated_status_changes_are_announced() {
    // SSF-ST-02, SSF-UPD-02, SSF-UPD-03: a stream the transmitter pauses hears of it first,
    // and again when it is enabled.
    let server = TestServer::start().await;
    let token = server.token(&["ssf.manage"]).await;
    let stream: Value = server
        .http
        .post(server.url("/ssf/stream"))
        .bearer_auth(&token)
        .json(&json!({}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let stream_id = stream["stream_id"].as_str().unwrap();
    let poll_url = stream["delivery"]["endpoint_url"]
        .as_str()
        .unwrap()
        .to_owned();
    let state = &server.state;
    let current = ssfd::transmitter::repo::get_stream(state, stream_id)
        .await
        .unwrap()
        .unwrap();
    let signer = ssfd::transmitter::repo::signer(state).await.unwrap();
    let paused = ssfd::transmitter::repo::set_status(
        state,
        &current,
        ssfd::protocol::StreamState::Paused,
        Some("maintenance".into()),
        Some(&signer),
    )
    .await
    .unwrap();

    let poll = || async {
        let body: Value = server
            .http
            .post(&poll_url)
            .bearer_auth(&token)
            .json(&json!({"returnImmediately": true}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        body["sets"].as_object().unwrap().clone()
    };
    let sets = poll().await;
    assert_eq!(sets.len(), 1, "the announcement reaches a paused stream");
    let (jti, set) = sets.iter().next().unwrap();
    let claims = ssfd::jose::peek_unverified(set.as_str().unwrap())
        .unwrap()
        .1;
    let event =
        &claims["events"]["https://schemas.openid.net/secevent/ssf/event-type/stream-updated"];
    assert_eq!(event["status"], "paused");
    assert_eq!(event["reason"], "maintenance");
    assert_eq!(
        claims["sub_id"],
        json!({"format": "opaque", "id": stream_id})
    );
    server
        .http
        .post(&poll_url)
        .bearer_auth(&token)
        .json(&json!({"ack": [jti], "returnImmediately": true}))
        .send()
        .await
        .unwrap();

    ssfd::transmitter::repo::set_status(
        state,
        &paused,
        ssfd::protocol::StreamState::Enabled,
        None,
        Some(&signer),
    )
    .await
    .unwrap();
    let sets = poll().await;
    let set = sets
        .values()
        .next()
        .expect("the re-enable is announced too");
    let claims = ssfd::jose::peek_unverified(set.as_str().unwrap())
        .unwrap()
        .1;
    assert_eq!(
        claims["events"]["https://schemas.openid.net/secevent/ssf/event-type/stream-updated"]
            ["status"],
        "enabled"
    );
}
