//! Receiver conformance harness: each receiver-side module of the OIDF SSF conformance plans
//! (peers-and-conformance.md §4.3) as its own test, the test acting as transmitter and
//! authorization server (tests/it/transmitter_double.rs), by push and by poll where the module
//! applies.

use std::time::Duration;

use axum::http::Method;
use serde_json::{json, Value};
use ssfd::protocol::EventType;
use ssfd::receiver::manage;
use ssfd::receiver::upstreams::{register_poll, register_push, Registration, UpstreamAuth};
use ssfd::storage::UpstreamRow;

use crate::common::TestServer;
use crate::transmitter_double::TransmitterDouble;

const CAEP: &str = "https://schemas.openid.net/secevent/caep/event-type/";
const VERIFICATION: &str = "https://schemas.openid.net/secevent/ssf/event-type/verification";
const STREAM_UPDATED: &str = "https://schemas.openid.net/secevent/ssf/event-type/stream-updated";

#[derive(Clone, Copy, PartialEq)]
enum Mode {
    Push,
    Poll,
}

struct Rx {
    server: TestServer,
    double: TransmitterDouble,
    upstream: UpstreamRow,
    stream: Value,
    mode: Mode,
}

fn registration(double: &TransmitterDouble) -> Registration {
    Registration {
        issuer: double.base.clone(),
        auth: UpstreamAuth::ClientCredentials {
            token_endpoint: None,
            client_id: "ssfd".to_owned(),
            client_secret: "secret".to_owned(),
            scope: None,
        },
        events: [
            "session-revoked",
            "credential-change",
            "device-compliance-change",
        ]
        .iter()
        .map(|name| EventType::from(format!("{CAEP}{name}").as_str()))
        .collect(),
    }
}

impl Rx {
    async fn start(mode: Mode) -> Self {
        let double = TransmitterDouble::start().await;
        let server = TestServer::start().await;
        let upstream = match mode {
            Mode::Push => register_push(&server.state, registration(&double)).await,
            Mode::Poll => register_poll(&server.state, registration(&double)).await,
        }
        .expect("registration succeeds");
        let stream = double.stream();
        Self {
            server,
            double,
            upstream,
            stream,
            mode,
        }
    }

    fn stream_id(&self) -> &str {
        self.stream["stream_id"].as_str().unwrap()
    }

    fn user(&self) -> Value {
        json!({"format": "email", "email": "user@example.com"})
    }

    fn stream_subject(&self) -> Value {
        json!({"format": "opaque", "id": self.stream_id()})
    }

    fn claims(&self, sub_id: Value, events: Value) -> Value {
        self.double.claims(&self.stream, sub_id, events)
    }

    /// Delivers a signed SET; Ok when acknowledged, Err(code) when refused (the RFC 8935
    /// `err` pushed back, or the `setErrs` entry a poll reported).
    async fn send(&self, token: &str) -> Result<(), String> {
        let (_, claims) = ssfd::jose::peek_unverified(token).unwrap();
        let jti = claims["jti"].as_str().unwrap().to_owned();
        match self.mode {
            Mode::Push => match self.double.push(&self.stream, token).await {
                (202, _) => Ok(()),
                (400, body) => Err(body["err"].as_str().unwrap_or("no err").to_owned()),
                (status, body) => panic!("push answered {status}: {body}"),
            },
            Mode::Poll => {
                self.double.queue(&self.stream, &jti, token);
                let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
                loop {
                    if self.double.acked(&jti) {
                        return Ok(());
                    }
                    if let Some(error) = self.double.set_err(&jti) {
                        return Err(error["err"].as_str().unwrap_or("no err").to_owned());
                    }
                    assert!(
                        tokio::time::Instant::now() < deadline,
                        "{jti} neither acked nor refused"
                    );
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    }

    async fn send_claims(&self, claims: &Value) -> Result<(), String> {
        self.send(&self.double.sign(claims)).await
    }

    async fn current(&self) -> UpstreamRow {
        self.server
            .store()
            .get_upstream(&self.upstream.id)
            .await
            .unwrap()
    }

    fn requested_state(&self) -> Option<String> {
        self.double
            .script
            .lock()
            .unwrap()
            .verification_states
            .last()
            .cloned()
            .flatten()
    }

    async fn stored(&self, claims: &Value) -> bool {
        self.server
            .store()
            .get_received(&self.double.base, claims["jti"].as_str().unwrap())
            .await
            .unwrap()
            .is_some()
    }
}

async fn happypath(mode: Mode) {
    let rx = Rx::start(mode).await;
    assert_eq!(rx.double.seen(Method::POST, "/streams").len(), 1, "created");
    manage::check(&rx.server.state, &rx.upstream)
        .await
        .expect("read");
    assert!(!rx.double.seen(Method::GET, "/streams").is_empty(), "read");
    let events = [EventType::from(format!("{CAEP}session-revoked").as_str())];
    manage::update_events(&rx.server.state, &rx.upstream, &events)
        .await
        .expect("updated");
    let updates = rx.double.seen(Method::PATCH, "/streams");
    assert_eq!(updates.len(), 1);
    assert_eq!(updates[0].body["stream_id"], rx.stream_id());
    manage::delete(&rx.server.state, &rx.current().await)
        .await
        .expect("deleted");
    let deletes = rx.double.seen(Method::DELETE, "/streams");
    assert_eq!(deletes[0].body["stream_id"], rx.stream_id());
    assert!(rx
        .server
        .store()
        .get_upstream(&rx.upstream.id)
        .await
        .is_err());
}

#[tokio::test]
async fn openid_ssf_receiver_happypath_push() {
    happypath(Mode::Push).await;
}

#[tokio::test]
async fn openid_ssf_receiver_happypath_poll() {
    happypath(Mode::Poll).await;
}

#[tokio::test]
async fn openid_ssf_receiver_stream_create_delete() {
    let rx = Rx::start(Mode::Push).await;
    let created = &rx.double.seen(Method::POST, "/streams")[0].body;
    // SSF-CR: a push stream names ssfd's endpoint and its secret.
    assert_eq!(created["delivery"]["method"], "urn:ietf:rfc:8935");
    assert!(created["delivery"]["authorization_header"]
        .as_str()
        .unwrap()
        .starts_with("Bearer "));
    manage::delete(&rx.server.state, &rx.upstream)
        .await
        .unwrap();
    assert_eq!(rx.double.seen(Method::DELETE, "/streams").len(), 1);
    assert!(rx.double.script.lock().unwrap().streams.is_empty());
}

#[tokio::test]
async fn openid_ssf_receiver_stream_status_update() {
    let rx = Rx::start(Mode::Push).await;
    let paused = manage::set_status(
        &rx.server.state,
        &rx.upstream,
        "paused",
        Some("maintenance"),
    )
    .await
    .unwrap();
    assert_eq!(paused.status, "paused");
    let seen = rx.double.seen(Method::POST, "/status");
    assert_eq!(
        seen[0].body,
        json!({"stream_id": rx.stream_id(), "status": "paused", "reason": "maintenance"})
    );
    let enabled = manage::set_status(&rx.server.state, &paused, "enabled", None)
        .await
        .unwrap();
    assert_eq!(enabled.status, "enabled");
    manage::delete(&rx.server.state, &enabled).await.unwrap();
}

async fn verification(mode: Mode) {
    let rx = Rx::start(mode).await;
    let state = rx
        .requested_state()
        .expect("ssfd asked for a verification with a state");
    let claims = rx.claims(rx.stream_subject(), json!({VERIFICATION: {"state": state}}));
    assert_eq!(rx.send_claims(&claims).await, Ok(()));
    assert!(rx.current().await.verified_at.is_some());
}

#[tokio::test]
async fn openid_ssf_receiver_stream_verification_push() {
    verification(Mode::Push).await;
}

#[tokio::test]
async fn openid_ssf_receiver_stream_verification_poll() {
    verification(Mode::Poll).await;
}

async fn unsolicited_verification(mode: Mode) {
    let rx = Rx::start(mode).await;
    // SSF-VER-01/11: a transmitter may verify on its own, without a state.
    let claims = rx.claims(rx.stream_subject(), json!({VERIFICATION: {}}));
    assert_eq!(rx.send_claims(&claims).await, Ok(()));
}

#[tokio::test]
async fn openid_ssf_receiver_unsolicited_stream_verification_push() {
    unsolicited_verification(Mode::Push).await;
}

#[tokio::test]
async fn openid_ssf_receiver_unsolicited_stream_verification_poll() {
    unsolicited_verification(Mode::Poll).await;
}

async fn supported_events(mode: Mode) {
    let rx = Rx::start(mode).await;
    for event in [
        json!({format!("{CAEP}session-revoked"): {}}),
        json!({format!("{CAEP}credential-change"): {"credential_type": "password", "change_type": "update"}}),
    ] {
        let claims = rx.claims(rx.user(), event);
        assert_eq!(rx.send_claims(&claims).await, Ok(()), "{claims}");
        assert!(rx.stored(&claims).await);
    }
}

#[tokio::test]
async fn openid_ssf_receiver_stream_supported_events_push() {
    supported_events(Mode::Push).await;
}

#[tokio::test]
async fn openid_ssf_receiver_stream_supported_events_poll() {
    supported_events(Mode::Poll).await;
}

async fn invalid_set_rejection(mode: Mode) {
    let rx = Rx::start(mode).await;
    let event = json!({format!("{CAEP}session-revoked"): {}});
    // A valid signature of other claims.
    let claims = rx.claims(rx.user(), event.clone());
    let other = rx.double.sign(&rx.claims(rx.user(), event.clone()));
    let (signed, _) = rx
        .double
        .sign(&claims)
        .rsplit_once('.')
        .map(|(a, b)| (a.to_owned(), b.to_owned()))
        .unwrap();
    let bad_signature = format!("{signed}.{}", other.rsplit_once('.').unwrap().1);
    let mut wrong_iss = rx.claims(rx.user(), event.clone());
    wrong_iss["iss"] = json!("https://impostor.example");
    let mut wrong_aud = rx.claims(rx.user(), event.clone());
    wrong_aud["aud"] = json!("https://someone-else.example");
    let unknown_kid = rx
        .double
        .sign_with_unknown_key(&rx.claims(rx.user(), event));
    for (token, expected) in [
        (bad_signature, "invalid_key"),
        (rx.double.sign(&wrong_iss), "invalid_issuer"),
        (rx.double.sign(&wrong_aud), "invalid_audience"),
        (unknown_kid, "invalid_key"),
    ] {
        assert_eq!(rx.send(&token).await, Err(expected.to_owned()));
    }
}

#[tokio::test]
async fn openid_ssf_receiver_invalid_set_rejection_push() {
    invalid_set_rejection(Mode::Push).await;
}

#[tokio::test]
async fn openid_ssf_receiver_invalid_set_rejection_poll() {
    invalid_set_rejection(Mode::Poll).await;
}

async fn wrong_state(mode: Mode) {
    let rx = Rx::start(mode).await;
    let claims = rx.claims(
        rx.stream_subject(),
        json!({VERIFICATION: {"state": "not-the-one-asked"}}),
    );
    assert_eq!(
        rx.send_claims(&claims).await,
        Err("invalid_state".to_owned())
    );
    assert!(rx.current().await.verified_at.is_none());
}

#[tokio::test]
async fn openid_ssf_receiver_verification_wrong_state_push() {
    wrong_state(Mode::Push).await;
}

#[tokio::test]
async fn openid_ssf_receiver_verification_wrong_state_poll() {
    wrong_state(Mode::Poll).await;
}

#[tokio::test]
async fn openid_ssf_receiver_verification_wrong_subject() {
    let rx = Rx::start(Mode::Push).await;
    let state = rx.requested_state().unwrap();
    let claims = rx.claims(
        json!({"format": "opaque", "id": "another-stream"}),
        json!({VERIFICATION: {"state": state}}),
    );
    assert_eq!(
        rx.send_claims(&claims).await,
        Err("invalid_request".to_owned())
    );
}

#[tokio::test]
async fn openid_ssf_receiver_stream_issuer_mismatch() {
    let double = TransmitterDouble::start().await;
    double.script.lock().unwrap().foreign_iss = true;
    let server = TestServer::start().await;
    let error = register_push(&server.state, registration(&double))
        .await
        .unwrap_err();
    assert!(error.to_string().contains("iss"), "{error}");
    // SSF 1.0 §8.1.1.1: the stream is not used.
    assert!(server.store().list_upstreams().await.unwrap().is_empty());
}

#[tokio::test]
async fn openid_ssf_receiver_transmitter_initiated_status_change() {
    let rx = Rx::start(Mode::Push).await;
    for status in ["paused", "enabled"] {
        let claims = rx.claims(
            rx.stream_subject(),
            json!({STREAM_UPDATED: {"status": status}}),
        );
        assert_eq!(rx.send_claims(&claims).await, Ok(()));
        assert_eq!(rx.current().await.status, status);
    }
}

#[tokio::test]
async fn openid_ssf_receiver_verification_behind_queued_events() {
    // SSF 1.0 §8.1.4.2: the receiver must not depend on the verification arriving first.
    let rx = Rx::start(Mode::Poll).await;
    let mut jtis = Vec::new();
    for _ in 0..3 {
        let claims = rx.claims(rx.user(), json!({format!("{CAEP}session-revoked"): {}}));
        let jti = claims["jti"].as_str().unwrap().to_owned();
        rx.double.queue(&rx.stream, &jti, &rx.double.sign(&claims));
        jtis.push(jti);
    }
    let state = rx.requested_state().unwrap();
    let verification = rx.claims(rx.stream_subject(), json!({VERIFICATION: {"state": state}}));
    assert_eq!(rx.send_claims(&verification).await, Ok(()));
    for jti in jtis {
        assert!(rx.double.acked(&jti), "{jti}");
    }
    assert!(rx.current().await.verified_at.is_some());
}

async fn redelivered(mode: Mode) {
    let rx = Rx::start(mode).await;
    let claims = rx.claims(rx.user(), json!({format!("{CAEP}session-revoked"): {}}));
    let token = rx.double.sign(&claims);
    assert_eq!(rx.send(&token).await, Ok(()));
    if mode == Mode::Poll {
        rx.double.script.lock().unwrap().acks.clear();
    }
    // RFC 8935 §2: the same jti again is acknowledged again, and stored once.
    assert_eq!(rx.send(&token).await, Ok(()));
    let stored = rx
        .server
        .store()
        .list_received(Some(&rx.upstream.id), 100)
        .await
        .unwrap();
    assert_eq!(stored.iter().filter(|r| r.jti == claims["jti"]).count(), 1);
}

#[tokio::test]
async fn openid_ssf_receiver_redelivered_set_push() {
    redelivered(Mode::Push).await;
}

#[tokio::test]
async fn openid_ssf_receiver_redelivered_set_poll() {
    redelivered(Mode::Poll).await;
}

#[tokio::test]
async fn openid_ssf_receiver_removed_subject_event() {
    let rx = Rx::start(Mode::Push).await;
    let subject: ssfd::protocol::SubjectId = serde_json::from_value(rx.user()).unwrap();
    manage::change_subject(&rx.server.state, &rx.upstream, &subject, false)
        .await
        .unwrap();
    let removed = rx.double.seen(Method::POST, "/subjects/remove");
    assert_eq!(removed[0].body["subject"], rx.user());
    // SSF 1.0 §9.3: events about it may still arrive for a while; they are accepted.
    let claims = rx.claims(rx.user(), json!({format!("{CAEP}session-revoked"): {}}));
    assert_eq!(rx.send_claims(&claims).await, Ok(()));
}

#[tokio::test]
async fn openid_ssf_receiver_access_token_expiry() {
    let rx = Rx::start(Mode::Poll).await;
    let issued = rx.double.script.lock().unwrap().tokens_issued;
    // Every token issued so far expires (CAEPIOP 2.7.1/2.7.2): the next calls get 401.
    rx.double.script.lock().unwrap().valid_tokens.clear();
    let claims = rx.claims(rx.user(), json!({format!("{CAEP}session-revoked"): {}}));
    assert_eq!(
        rx.send_claims(&claims).await,
        Ok(()),
        "the poller renewed its token"
    );
    // Management calls renew theirs too.
    rx.double.script.lock().unwrap().valid_tokens.clear();
    manage::check(&rx.server.state, &rx.upstream)
        .await
        .expect("retried with a new token");
    assert!(rx.double.script.lock().unwrap().tokens_issued >= issued + 2);
}

#[tokio::test]
async fn openid_ssf_receiver_stream_caep_interop() {
    let rx = Rx::start(Mode::Poll).await;
    let created = &rx.double.seen(Method::POST, "/streams")[0].body;
    let requested: Vec<&str> = created["events_requested"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(requested.iter().any(|e| e.ends_with("session-revoked")));
    manage::check(&rx.server.state, &rx.upstream)
        .await
        .expect("configuration read");
    let state = rx.requested_state().unwrap();
    let verification = rx.claims(rx.stream_subject(), json!({VERIFICATION: {"state": state}}));
    assert_eq!(rx.send_claims(&verification).await, Ok(()));
    for event in [
        json!({format!("{CAEP}session-revoked"): {}}),
        json!({format!("{CAEP}credential-change"): {"credential_type": "password", "change_type": "update"}}),
        json!({format!("{CAEP}device-compliance-change"): {"previous_status": "compliant", "current_status": "not-compliant"}}),
    ] {
        let claims = rx.claims(rx.user(), event);
        assert_eq!(rx.send_claims(&claims).await, Ok(()));
        assert!(rx.stored(&claims).await);
    }
}
