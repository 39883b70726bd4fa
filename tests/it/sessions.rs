//! Session enforcement end to end (issue 4): an ssfd transmitter emits real SETs, an ssfd
//! receiver takes them by push, its policy changes the local sessions an application
//! registered, the application's next `evaluate` answers as the rule says, the audit log has
//! the entry and the application's webhook received the signed notification.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::HeaderMap;
use serde_json::{json, Value};
use ssfd::auth::CredentialKind;
use ssfd::protocol::EventType;
use ssfd::receiver::upstreams::{register_push, Registration, UpstreamAuth};
use ssfd::storage::UpstreamRow;
use ssfd::transmitter::intake;

use crate::common::{TestDb, TestServer};
use crate::protocol::minimal_payload;

const CAEP: &str = "https://schemas.openid.net/secevent/caep/event-type/";
const RISC: &str = "https://schemas.openid.net/secevent/risc/event-type/";
const WEBHOOK_SECRET: &str = "webhook-secret-for-tests";

/// Notifications an application received: (ssfd-signature header, body).
#[derive(Clone, Default)]
struct Webhook {
    received: Arc<Mutex<Vec<(String, String)>>>,
    url: String,
}

impl Webhook {
    async fn start() -> Self {
        let received: Arc<Mutex<Vec<(String, String)>>> = Arc::default();
        let sink = received.clone();
        let app = axum::Router::new().route(
            "/hook",
            axum::routing::post(move |headers: HeaderMap, body: String| {
                let sink = sink.clone();
                async move {
                    let signature = headers
                        .get("ssfd-signature")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or_default()
                        .to_owned();
                    sink.lock().unwrap().push((signature, body));
                    axum::http::StatusCode::NO_CONTENT
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self { received, url }
    }

    /// Waits for a notification of `action` about `session_id` (or, with `None`, about the
    /// event `jti`), checks its signature, and returns its body.
    async fn expect(&self, action: &str, session_id: Option<&str>, jti: &str) -> Value {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let found = self
                .received
                .lock()
                .unwrap()
                .iter()
                .find_map(|(sig, body)| {
                    let value: Value = serde_json::from_str(body).unwrap();
                    let matches = value["action"] == action
                        && value["jti"] == jti
                        && value["session_id"].as_str() == session_id;
                    matches.then(|| (sig.clone(), body.clone(), value))
                });
            if let Some((signature, body, value)) = found {
                let timestamp: i64 = signature
                    .strip_prefix("t=")
                    .and_then(|rest| rest.split(',').next())
                    .and_then(|t| t.parse().ok())
                    .expect("a timestamp");
                assert_eq!(
                    signature,
                    ssfd::sessions::webhook::signature(WEBHOOK_SECRET, timestamp, &body),
                    "the HMAC signature verifies"
                );
                return value;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "no {action} notification for {session_id:?} / {jti}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// A transmitter, a receiver subscribed to it by push, an application and an admin.
struct Setup {
    transmitter: TestServer,
    receiver: TestServer,
    upstream: UpstreamRow,
    app: String,
    admin: String,
    webhook: Webhook,
}

impl Setup {
    async fn start() -> Self {
        Self::start_on(TestDb::new().await).await
    }

    async fn start_on(receiver_db: TestDb) -> Self {
        let webhook = Webhook::start().await;
        let transmitter = TestServer::start().await;
        let url = webhook.url.clone();
        let receiver = TestServer::start_full(
            receiver_db,
            Arc::new(ssfd::clock::SystemClock),
            move |config| {
                config.sessions.webhook_url = url;
                config.sessions.webhook_secret = WEBHOOK_SECRET.to_owned();
                config.sessions.webhook_allowed_hosts = vec!["127.0.0.1".to_owned()];
            },
        )
        .await;
        let (client_id, client_secret) = transmitter.client(&["ssf.manage"]).await;
        let registration = Registration {
            issuer: transmitter.base.clone(),
            auth: UpstreamAuth::ClientCredentials {
                token_endpoint: None,
                client_id,
                client_secret,
                scope: None,
            },
            events: EventType::KNOWN
                .iter()
                .filter(|t| !t.is_ssf_control())
                .cloned()
                .collect(),
        };
        let upstream = register_push(&receiver.state, registration)
            .await
            .expect("registration succeeds");
        let app = receiver.credential(CredentialKind::Application).await;
        let admin = receiver.credential(CredentialKind::Admin).await;
        Self {
            transmitter,
            receiver,
            upstream,
            app,
            admin,
            webhook,
        }
    }

    async fn register(&self, session: Value) -> Value {
        let response = self
            .receiver
            .http
            .post(self.receiver.url("/sessions"))
            .bearer_auth(&self.app)
            .json(&session)
            .send()
            .await
            .unwrap();
        let status = response.status();
        let body: Value = response.json().await.unwrap();
        assert_eq!(status, 201, "{body}");
        body
    }

    async fn evaluate(&self, session_id: &str, request: Value) -> Value {
        evaluate_at(&self.receiver, &self.app, session_id, request).await
    }

    /// Emits one event at the transmitter; returns its jti once the receiver has stored it
    /// (and with it, in the same transaction, its effects).
    async fn emit(&self, subject: Value, event_type: &str, payload: Value) -> String {
        let intake = serde_json::from_value(json!({
            "sub_id": subject,
            "events": {event_type: payload}
        }))
        .unwrap();
        let result = intake::submit(&self.transmitter.state, intake)
            .await
            .unwrap();
        assert_eq!(result.sets.len(), 1, "{event_type}");
        let jti = result.sets[0].jti.clone();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
        while self
            .receiver
            .store()
            .get_received(&self.transmitter.base, &jti)
            .await
            .unwrap()
            .is_none()
        {
            assert!(
                tokio::time::Instant::now() < deadline,
                "{event_type} never arrived"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        jti
    }

    async fn audit(&self, query: &[(&str, &str)]) -> Vec<Value> {
        let response: Value = self
            .receiver
            .http
            .get(self.receiver.url("/admin/audit"))
            .bearer_auth(&self.admin)
            .query(query)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        response["entries"].as_array().cloned().unwrap()
    }

    async fn expect_audit(&self, session_id: Option<&str>, jti: &str, action: &str) {
        let entries = self.audit(&[("limit", "10000")]).await;
        assert!(
            entries.iter().any(|e| e["jti"] == jti
                && e["action"] == action
                && e["session_id"].as_str() == session_id),
            "no audit entry {action} for {session_id:?} / {jti}: {entries:#?}"
        );
    }
}

async fn evaluate_at(server: &TestServer, app: &str, session_id: &str, request: Value) -> Value {
    let response = server
        .http
        .post(server.url(&format!("/sessions/{session_id}/evaluate")))
        .bearer_auth(app)
        .json(&request)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

fn email(address: &str) -> Value {
    json!({"format": "email", "email": address})
}

fn session_for(id: &str, address: &str) -> Value {
    json!({"session_id": id, "subjects": [email(address)], "privilege": "user", "acr": "pwd"})
}

/// One default rule: the event, the expected decision and what is recorded.
struct Case {
    /// The rule expected to apply.
    name: &'static str,
    event_type: String,
    payload: Value,
    /// The decision on the session afterwards.
    decision: &'static str,
    /// Audit action about the session (per-session rules).
    session_action: Option<&'static str>,
    /// Audit action about the event (event-level rules).
    event_action: Option<&'static str>,
}

fn case(
    name: &'static str,
    event_type: String,
    payload: Value,
    decision: &'static str,
    session_action: Option<&'static str>,
    event_action: Option<&'static str>,
) -> Case {
    Case {
        name,
        event_type,
        payload,
        decision,
        session_action,
        event_action,
    }
}

fn minimal(uri: &str) -> Value {
    minimal_payload(&EventType::from(uri))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_default_rule_applies_end_to_end_over_push() {
    let setup = Setup::start().await;
    let caep = |name: &str| format!("{CAEP}{name}");
    let risc = |name: &str| format!("{RISC}{name}");
    let cases = vec![
        case(
            "session-revoked",
            caep("session-revoked"),
            minimal(&caep("session-revoked")),
            "deny",
            Some("revoke"),
            None,
        ),
        case(
            // RISC's deprecated form falls under the same rule.
            "session-revoked",
            risc("sessions-revoked"),
            json!({}),
            "deny",
            Some("revoke"),
            None,
        ),
        case(
            "token-claims-change",
            caep("token-claims-change"),
            json!({"claims": {"role": "reader"}}),
            "step_up",
            Some("step_up"),
            None,
        ),
        case(
            "credential-change",
            caep("credential-change"),
            json!({"credential_type": "password", "change_type": "update"}),
            "deny",
            Some("revoke"),
            None,
        ),
        case(
            "assurance-level-decrease",
            caep("assurance-level-change"),
            json!({"namespace": "NIST-AAL", "current_level": "nist-aal1", "previous_level": "nist-aal2", "change_direction": "decrease"}),
            "step_up",
            Some("step_up"),
            None,
        ),
        case(
            "risk-level-rise",
            caep("risk-level-change"),
            json!({"principal": "USER", "current_level": "HIGH", "previous_level": "LOW"}),
            "step_up",
            Some("step_up"),
            None,
        ),
        case(
            "session-established",
            caep("session-established"),
            json!({}),
            "allow",
            None,
            Some("record"),
        ),
        case(
            "session-presented",
            caep("session-presented"),
            json!({}),
            "allow",
            None,
            Some("record"),
        ),
        case(
            "credential-change-required",
            risc("account-credential-change-required"),
            json!({}),
            "step_up",
            Some("step_up"),
            None,
        ),
        case(
            "credential-compromise",
            risc("credential-compromise"),
            minimal(&risc("credential-compromise")),
            "deny",
            Some("revoke"),
            None,
        ),
        case(
            "account-ended",
            risc("account-disabled"),
            json!({"reason": "hijacking"}),
            "deny",
            Some("revoke"),
            Some("disable_subject"),
        ),
        case(
            "account-ended",
            risc("account-purged"),
            json!({}),
            "deny",
            Some("revoke"),
            Some("disable_subject"),
        ),
        case(
            "identifier-recycled",
            risc("identifier-recycled"),
            json!({}),
            "deny",
            Some("revoke"),
            None,
        ),
        case(
            "recovery-activated",
            risc("recovery-activated"),
            json!({}),
            "step_up",
            Some("step_up"),
            Some("notify"),
        ),
        case(
            "identifier-changed",
            risc("identifier-changed"),
            minimal(&risc("identifier-changed")),
            "allow",
            None,
            Some("notify"),
        ),
        case(
            "recovery-information-changed",
            risc("recovery-information-changed"),
            json!({}),
            "allow",
            None,
            Some("notify"),
        ),
        case(
            "opt-in",
            risc("opt-in"),
            json!({}),
            "allow",
            None,
            Some("notify"),
        ),
        case(
            "opt-out-initiated",
            risc("opt-out-initiated"),
            json!({}),
            "allow",
            None,
            Some("notify"),
        ),
        case(
            "opt-out-cancelled",
            risc("opt-out-cancelled"),
            json!({}),
            "allow",
            None,
            Some("notify"),
        ),
        case(
            "opt-out-effective",
            risc("opt-out-effective"),
            json!({}),
            "allow",
            None,
            Some("notify"),
        ),
    ];
    for (n, case) in cases.iter().enumerate() {
        let address = format!("user{n}@example.com");
        let session_id = format!("s{n}-{}", case.name);
        // Registered with another spelling: email addresses match without case (SUBID-07).
        setup
            .register(session_for(&session_id, &address.to_uppercase()))
            .await;
        assert_eq!(
            setup.evaluate(&session_id, json!({})).await["decision"],
            "allow"
        );

        let jti = setup
            .emit(email(&address), &case.event_type, case.payload.clone())
            .await;
        let decision = setup.evaluate(&session_id, json!({})).await;
        assert_eq!(
            decision["decision"], case.decision,
            "{}: {decision}",
            case.name
        );
        if let Some(action) = case.session_action {
            assert_eq!(decision["jti"], jti, "{}", case.name);
            assert_eq!(decision["rule"], case.name, "{}", case.name);
            setup.expect_audit(Some(&session_id), &jti, action).await;
            setup.webhook.expect(action, Some(&session_id), &jti).await;
        }
        if let Some(action) = case.event_action {
            setup.expect_audit(None, &jti, action).await;
            if action != "record" {
                setup.webhook.expect(action, None, &jti).await;
            }
        }
        if case.decision != "allow" {
            // The denial or step-up answer itself is audited too.
            let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
            loop {
                let entries = setup.audit(&[("session_id", session_id.as_str())]).await;
                if entries.iter().any(|e| e["action"] == case.decision) {
                    break;
                }
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "{}: decision not audited",
                    case.name
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn device_compliance_loss_downgrades_only_the_sessions_on_that_device() {
    let setup = Setup::start().await;
    let on_laptop = json!({"session_id": "laptop", "subjects": [email("kim@example.com")],
        "device_id": "laptop-1", "privilege": "admin"});
    let on_phone = json!({"session_id": "phone", "subjects": [email("kim@example.com")],
        "device_id": "phone-1", "privilege": "admin"});
    setup.register(on_laptop).await;
    setup.register(on_phone).await;

    // CAEP 1.0 §3.5: the device and the user, as a complex subject.
    let subject = json!({"format": "complex", "user": email("Kim@Example.com"),
        "device": {"format": "opaque", "id": "laptop-1"}});
    let jti = setup
        .emit(
            subject,
            &format!("{CAEP}device-compliance-change"),
            json!({"previous_status": "compliant", "current_status": "not-compliant"}),
        )
        .await;

    let normal = setup.evaluate("laptop", json!({})).await;
    assert_eq!(normal["decision"], "allow", "{normal}");
    assert_eq!(normal["state"], "downgraded");
    assert_eq!(normal["privilege"], "read-only");
    let sensitive = setup
        .evaluate("laptop", json!({"sensitivity": "high"}))
        .await;
    assert_eq!(sensitive["decision"], "deny", "{sensitive}");
    let admin_action = setup
        .evaluate("laptop", json!({"privilege": "admin"}))
        .await;
    assert_eq!(admin_action["decision"], "deny");
    setup.expect_audit(Some("laptop"), &jti, "downgrade").await;
    setup
        .webhook
        .expect("downgrade", Some("laptop"), &jti)
        .await;

    // The other device of the same user is untouched.
    let phone = setup.evaluate("phone", json!({"privilege": "admin"})).await;
    assert_eq!(phone["decision"], "allow", "{phone}");
    assert_eq!(phone["state"], "active");

    // Back to compliant: recorded by no rule, nothing changes.
    setup
        .emit(
            json!({"format": "complex", "user": email("kim@example.com"),
                "device": {"format": "opaque", "id": "laptop-1"}}),
            &format!("{CAEP}device-compliance-change"),
            json!({"previous_status": "not-compliant", "current_status": "compliant"}),
        )
        .await;
    assert_eq!(
        setup.evaluate("laptop", json!({})).await["state"],
        "downgraded"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_member_revokes_only_that_session() {
    let setup = Setup::start().await;
    setup.register(session_for("one", "lee@example.com")).await;
    setup.register(session_for("two", "lee@example.com")).await;
    let subject = json!({"format": "complex", "user": email("lee@example.com"),
        "session": {"format": "opaque", "id": "one"}});
    setup
        .emit(subject, &format!("{CAEP}session-revoked"), json!({}))
        .await;
    assert_eq!(setup.evaluate("one", json!({})).await["decision"], "deny");
    assert_eq!(setup.evaluate("two", json!({})).await["decision"], "allow");

    // Without a session member, every session of the subject ends.
    setup
        .emit(
            email("lee@example.com"),
            &format!("{CAEP}session-revoked"),
            json!({}),
        )
        .await;
    assert_eq!(setup.evaluate("two", json!({})).await["decision"], "deny");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_disabled_account_denies_new_sessions_until_enabled() {
    let setup = Setup::start().await;
    setup
        .register(session_for("before", "max@example.com"))
        .await;
    setup
        .emit(
            email("max@example.com"),
            &format!("{RISC}account-disabled"),
            json!({}),
        )
        .await;
    assert_eq!(
        setup.evaluate("before", json!({})).await["decision"],
        "deny"
    );
    setup
        .register(session_for("during", "max@example.com"))
        .await;
    let during = setup.evaluate("during", json!({})).await;
    assert_eq!(during["decision"], "deny");
    assert_eq!(during["reason"], "the subject is disabled");

    setup
        .emit(
            email("max@example.com"),
            &format!("{RISC}account-enabled"),
            json!({}),
        )
        .await;
    assert_eq!(
        setup.evaluate("during", json!({})).await["decision"],
        "allow"
    );
    // A revoked session stays revoked.
    assert_eq!(
        setup.evaluate("before", json!({})).await["decision"],
        "deny"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn step_up_and_elevation_follow_the_session() {
    let setup = Setup::start().await;
    setup.register(session_for("s", "ana@example.com")).await;
    let post = |path: String, body: Value| {
        let request = setup
            .receiver
            .http
            .post(setup.receiver.url(&path))
            .bearer_auth(&setup.app)
            .json(&body);
        async move {
            let response = request.send().await.unwrap();
            let status = response.status().as_u16();
            (status, response.json::<Value>().await.unwrap())
        }
    };
    // Just-in-time elevation, bounded by configuration.
    let (status, body) = post(
        "/sessions/s/elevate".into(),
        json!({"privilege": "admin", "duration_secs": 999_999}),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    let (status, body) = post(
        "/sessions/s/elevate".into(),
        json!({"privilege": "admin", "duration_secs": 600}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["elevated_privilege"], "admin");
    assert_eq!(
        setup.evaluate("s", json!({"privilege": "admin"})).await["decision"],
        "allow"
    );

    // A privilege change ends the elevation and asks for step-up.
    let jti = setup
        .emit(
            email("ana@example.com"),
            &format!("{CAEP}token-claims-change"),
            json!({"claims": {"role": "reader"}}),
        )
        .await;
    let decision = setup.evaluate("s", json!({})).await;
    assert_eq!(decision["decision"], "step_up");
    setup.expect_audit(Some("s"), &jti, "end_elevation").await;

    // Stepping up restores the session, without the elevation.
    let (status, body) = post(
        "/sessions/s/step-up".into(),
        json!({"acr": "mfa", "amr": ["otp"]}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["state"], "active");
    assert_eq!(setup.evaluate("s", json!({})).await["decision"], "allow");
    assert_eq!(
        setup.evaluate("s", json!({"privilege": "admin"})).await["decision"],
        "deny"
    );
    let entries = setup.audit(&[("session_id", "s")]).await;
    let actions: Vec<&str> = entries
        .iter()
        .filter_map(|e| e["action"].as_str())
        .collect();
    for expected in ["elevate", "end_elevation", "step_up", "step_up_completed"] {
        assert!(
            actions.contains(&expected),
            "{expected} missing from {actions:?}"
        );
    }

    // A revoked session can neither step up nor be elevated.
    setup
        .emit(
            email("ana@example.com"),
            &format!("{CAEP}session-revoked"),
            json!({}),
        )
        .await;
    let (status, _) = post("/sessions/s/step-up".into(), json!({})).await;
    assert_eq!(status, 409);
    let (status, _) = post(
        "/sessions/s/elevate".into(),
        json!({"privilege": "admin", "duration_secs": 60}),
    )
    .await;
    assert_eq!(status, 409);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replayed_set_is_acknowledged_and_applied_once() {
    let setup = Setup::start().await;
    setup.register(session_for("r", "rob@example.com")).await;
    let jti = setup
        .emit(
            email("rob@example.com"),
            &format!("{CAEP}credential-change"),
            json!({"credential_type": "password", "change_type": "update"}),
        )
        .await;
    let stored = setup
        .receiver
        .store()
        .get_received(&setup.transmitter.base, &jti)
        .await
        .unwrap()
        .unwrap();
    // The transmitter pushes it again, with the secret the receiver handed over (PUSH-04).
    let stream_id = setup.upstream.remote_stream_id.as_deref().unwrap();
    let stream = setup
        .transmitter
        .store()
        .get_stream(stream_id)
        .await
        .unwrap();
    let authorization = stream.authorization_header.unwrap();
    let push_url = stream.endpoint_url.unwrap();
    for _ in 0..2 {
        let response = setup
            .receiver
            .http
            .post(&push_url)
            .header("content-type", "application/secevent+jwt")
            .header("authorization", authorization.as_str())
            .body(stored.token.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 202);
    }
    let entries = setup.audit(&[("session_id", "r")]).await;
    let revocations = entries
        .iter()
        .filter(|e| e["action"] == "revoke" && e["jti"] == jti)
        .count();
    assert_eq!(revocations, 1, "{entries:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_session_api_refuses_bad_input_and_other_credentials() {
    let setup = Setup::start().await;
    let url = setup.receiver.url("/sessions");
    let http = &setup.receiver.http;
    for (body, field) in [
        (json!({"subjects": []}), "subjects"),
        (
            json!({"subjects": [email("a@example.com")], "privilege": "root"}),
            "privilege",
        ),
        (json!({"subjects": [{"format": "email"}]}), "subjects[0]"),
        (
            json!({"subjects": [email("a@example.com")], "expires_at": 1}),
            "expires_at",
        ),
        (
            json!({"subjects": [email("a@example.com")], "colour": "red"}),
            "colour",
        ),
    ] {
        let response = http
            .post(&url)
            .bearer_auth(&setup.app)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 400, "{body}");
        let error: Value = response.json().await.unwrap();
        assert!(
            error["error_description"].as_str().unwrap().contains(field),
            "{field}: {error}"
        );
    }
    setup.register(session_for("dup", "d@example.com")).await;
    let again = http
        .post(&url)
        .bearer_auth(&setup.app)
        .json(&session_for("dup", "d@example.com"))
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 409);

    // Publisher and admin credentials, and no credential, cannot use the session API.
    let publisher = setup.receiver.publisher().await;
    for token in [Some(publisher.as_str()), Some(setup.admin.as_str()), None] {
        let mut request = http
            .post(setup.receiver.url("/sessions/dup/evaluate"))
            .json(&json!({}));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        assert_eq!(request.send().await.unwrap().status(), 401);
    }
    // And the application cannot use the admin API.
    let response = http
        .get(setup.receiver.url("/admin/audit"))
        .bearer_auth(&setup.app)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    let unknown = http
        .post(setup.receiver.url("/sessions/nope/evaluate"))
        .bearer_auth(&setup.app)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_audit_log_filters_and_exports_json_lines_through_the_cli() {
    let setup = Setup::start().await;
    setup.register(session_for("a1", "amy@example.com")).await;
    setup.register(session_for("b1", "bob@example.com")).await;
    for address in ["amy@example.com", "bob@example.com"] {
        setup
            .emit(email(address), &format!("{CAEP}session-revoked"), json!({}))
            .await;
    }
    let amy = setup.audit(&[("subject", "amy@example.com")]).await;
    assert!(!amy.is_empty());
    assert!(
        amy.iter()
            .all(|e| e["subject"]["email"] == "amy@example.com"),
        "{amy:#?}"
    );
    // An admin credential made by the CLI on the server's database.
    let created = std::process::Command::new(env!("CARGO_BIN_EXE_ssfd"))
        .args(["admin-credential", "create", "--name", "ops"])
        .env("SSFD_DATABASE__URL", &setup.receiver.db.url)
        .output()
        .unwrap();
    assert!(
        created.status.success(),
        "{}",
        String::from_utf8_lossy(&created.stderr)
    );
    let stdout = String::from_utf8(created.stdout).unwrap();
    let admin = stdout
        .lines()
        .find_map(|line| line.strip_prefix("token: "))
        .expect("the token is printed once")
        .trim()
        .to_owned();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_ssfd"))
        .args([
            "audit",
            "--jsonl",
            "--session",
            "b1",
            "--url",
            &setup.receiver.base,
        ])
        .env("SSFD_ADMIN_TOKEN", &admin)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let lines: Vec<Value> = String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert!(lines.iter().any(|e| e["action"] == "revoke"), "{lines:#?}");
    assert!(lines.iter().all(|e| e["session_id"] == "b1"));
    // A receiver credential is refused.
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_ssfd"))
        .args([
            "audit",
            "--url",
            &setup.receiver.base,
            "--token",
            &setup.app,
        ])
        .output()
        .unwrap();
    assert!(!output.status.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_policy_file_is_reloaded_and_an_invalid_one_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("policy.toml");
    std::fs::write(
        &path,
        "[[rules]]\nname = \"only-record\"\nevents = [\"*\"]\nactions = [\"record\"]\n",
    )
    .unwrap();
    let file = path.display().to_string();
    let server = TestServer::start_with(move |config| {
        config.sessions.policy_file = file;
        config.sessions.policy_reload_secs = 1;
    })
    .await;
    let admin = server.credential(CredentialKind::Admin).await;
    let rules = |server: &TestServer, admin: String| {
        let request = server
            .http
            .get(server.url("/admin/policy"))
            .bearer_auth(admin);
        async move {
            let body: Value = request.send().await.unwrap().json().await.unwrap();
            body["rules"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r["name"].as_str().unwrap().to_owned())
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(rules(&server, admin.clone()).await, ["only-record"]);

    // An invalid file: refused with the rule named, the policy in force stays.
    std::fs::write(&path, "[[rules]]\nname = \"broken\"\nevents = [\"*\"]\nwhen = \"event.x ==\"\nactions = [\"revoke\"]\n").unwrap();
    let response = server
        .http
        .post(server.url("/admin/policy/reload"))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let error: Value = response.json().await.unwrap();
    assert!(
        error["error_description"]
            .as_str()
            .unwrap()
            .contains("rule 1 (`broken`): when"),
        "{error}"
    );
    assert_eq!(rules(&server, admin.clone()).await, ["only-record"]);

    // A valid change is picked up by itself.
    std::fs::write(&path, "[[rules]]\nname = \"revoke-all\"\nevents = [\"caep:session-revoked\"]\nactions = [\"revoke\"]\n").unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while rules(&server, admin.clone()).await != ["revoke-all"] {
        assert!(tokio::time::Instant::now() < deadline, "not reloaded");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revocation_is_seen_by_another_process_on_the_same_postgresql() {
    let Ok(admin_url) = std::env::var("SSFD_TEST_DATABASE_URL") else {
        eprintln!("SSFD_TEST_DATABASE_URL is unset: this test runs in CI's PostgreSQL pass");
        return;
    };
    let db = TestDb::postgres(&admin_url).await;
    let shared_url = db.url.clone();
    let setup = Setup::start_on(db).await;
    // A second ssfd process (the real binary) on the same database.
    let dir = tempfile::tempdir().unwrap();
    let port = crate::crash::free_port();
    let other_base = format!("http://127.0.0.1:{port}");
    let _other = crate::crash::start(
        dir.path(),
        &[
            ("SSFD_SERVER__BIND", format!("127.0.0.1:{port}")),
            ("SSFD_SERVER__ISSUER", other_base.clone()),
            ("SSFD_DATABASE__URL", shared_url),
        ],
    );
    let http = reqwest::Client::new();
    let evaluate_other = || {
        let request = http
            .post(format!("{other_base}/sessions/shared/evaluate"))
            .bearer_auth(&setup.app)
            .json(&json!({}));
        async move {
            let response = request.send().await.unwrap();
            assert_eq!(response.status(), 200);
            response.json::<Value>().await.unwrap()
        }
    };
    setup
        .register(session_for("shared", "sam@example.com"))
        .await;
    // The other process knows the session (it loads it from the database on first sight).
    assert_eq!(evaluate_other().await["decision"], "allow");

    let jti = setup
        .emit(
            email("sam@example.com"),
            &format!("{CAEP}session-revoked"),
            json!({}),
        )
        .await;
    // Its memory follows by NOTIFY, without a restart.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let decision = evaluate_other().await;
        if decision["decision"] == "deny" {
            assert_eq!(decision["jti"], jti);
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the other process never saw it: {decision}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forward_rule_re_emits_the_event_downstream() {
    // Hub mode: transmitter -> hub (ssfd receiving, with a forward rule) -> downstream ssfd.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("policy.toml");
    std::fs::write(
        &path,
        "[[rules]]\nname = \"hub\"\nevents = [\"caep:credential-change\"]\nactions = [\"forward\", \"revoke\"]\n",
    )
    .unwrap();
    let policy = path.display().to_string();
    let source = TestServer::start().await;
    let hub = TestServer::start_with(move |config| config.sessions.policy_file = policy).await;
    let downstream = TestServer::start().await;
    let events = vec![EventType::from(format!("{CAEP}credential-change").as_str())];
    for (upstream, receiver) in [(&source, &hub), (&hub, &downstream)] {
        let (client_id, client_secret) = upstream.client(&["ssf.manage"]).await;
        register_push(
            &receiver.state,
            Registration {
                issuer: upstream.base.clone(),
                auth: UpstreamAuth::ClientCredentials {
                    token_endpoint: None,
                    client_id,
                    client_secret,
                    scope: None,
                },
                events: events.clone(),
            },
        )
        .await
        .expect("registration succeeds");
    }
    // An application of the downstream server has a session of the subject.
    let app = downstream.credential(CredentialKind::Application).await;
    let response = downstream
        .http
        .post(downstream.url("/sessions"))
        .bearer_auth(&app)
        .json(&session_for("fay", "fay@example.com"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let intake = serde_json::from_value(json!({
        "sub_id": email("fay@example.com"),
        "txn": "hub-test",
        "events": {format!("{CAEP}credential-change"): {"credential_type": "password", "change_type": "update"}}
    }))
    .unwrap();
    let sent = intake::submit(&source.state, intake).await.unwrap();
    assert_eq!(sent.sets.len(), 1);

    // The hub forwards the event; the downstream server's default policy revokes the session.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    let jti = loop {
        let decision = evaluate_at(&downstream, &app, "fay", json!({})).await;
        if decision["decision"] == "deny" {
            break decision["jti"].as_str().unwrap().to_owned();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "nothing was forwarded"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let row = downstream
        .store()
        .get_received(&hub.base, &jti)
        .await
        .unwrap()
        .expect("stored as received from the hub");
    let claims: Value = serde_json::from_str(&row.claims).unwrap();
    assert_eq!(claims["iss"], hub.base);
    assert_eq!(claims["sub_id"]["email"], "fay@example.com");
    assert_eq!(claims["txn"], "hub-test");
    assert_eq!(
        claims["events"][format!("{CAEP}credential-change")]["change_type"],
        "update"
    );
}
