//! The transmitter conformance harness: every transmitter-side module of the OIDF SSF
//! conformance plans (`openid-ssf-transmitter-test-plan`, `…-caep-test-plan`), re-implemented
//! against a real ssfd on 127.0.0.1 with a real push receiver ([`ReceiverDouble`]) and a SET
//! checker that validates every SET received ([`SetChecker`]). One test per module, named
//! after the module's `testName`; a few extra tests cover push retries and event intake.
//!
//! Requirement IDs (SSF-…, IOP-…, PUSH-…, POLL-…, SET-…) are those of
//! `spec-checklist.md`. Plain http on 127.0.0.1 stands in for TLS (SSF-MD-05, PUSH-13/15):
//! the harness checks that every advertised URL derives from the issuer, and that an https
//! issuer yields https URLs only.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use reqwest::header::HeaderMap;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::common::TestServer;
use crate::receiver_double::{CheckedSet, ReceiverDouble, Reply, SetChecker, VERIFICATION};

const SESSION_REVOKED: &str = "https://schemas.openid.net/secevent/caep/event-type/session-revoked";
const CREDENTIAL_CHANGE: &str =
    "https://schemas.openid.net/secevent/caep/event-type/credential-change";
const DEVICE_COMPLIANCE_CHANGE: &str =
    "https://schemas.openid.net/secevent/caep/event-type/device-compliance-change";
const RISK_LEVEL_CHANGE: &str =
    "https://schemas.openid.net/secevent/caep/event-type/risk-level-change";
const PUSH: &str = "urn:ietf:rfc:8935";
const POLL: &str = "urn:ietf:rfc:8936";

/// How long the harness waits for something that should happen promptly.
const PROMPTLY: Duration = Duration::from_secs(10);
/// How long a stopped stream is watched for deliveries that must not happen.
const OBSERVE: Duration = Duration::from_secs(2);

// ---------------------------------------------------------------------------------------------
// The harness's receiver-side client of the management API.
// ---------------------------------------------------------------------------------------------

/// An HTTP answer, read in full.
#[derive(Debug)]
struct Resp {
    status: StatusCode,
    headers: HeaderMap,
    text: String,
}

impl Resp {
    fn json(&self) -> Value {
        serde_json::from_str(&self.text)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {} {}", self.status, self.text))
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    #[track_caller]
    fn expect(self, status: u16) -> Self {
        assert_eq!(self.status.as_u16(), status, "{}", self.text);
        self
    }

    /// Asserts an RFC 6750 §3 Bearer challenge, with `error` when given (§3.1).
    #[track_caller]
    fn expect_bearer_challenge(&self, error: Option<&str>) {
        let challenge = self
            .header("www-authenticate")
            .unwrap_or_else(|| panic!("no WWW-Authenticate on a {}: {}", self.status, self.text));
        assert!(
            challenge.starts_with("Bearer"),
            "not a Bearer challenge: {challenge}"
        );
        match error {
            Some(code) => assert!(
                challenge.contains(&format!("error=\"{code}\"")),
                "expected error=\"{code}\" in {challenge}"
            ),
            // RFC 6750 §3.1: no error code when the request carried no credentials.
            None => assert!(!challenge.contains("error="), "{challenge}"),
        }
    }
}

/// The conformance suite in its receiver role: discovered metadata and an access token.
struct Rx<'a> {
    server: &'a TestServer,
    metadata: Value,
    token: String,
}

impl<'a> Rx<'a> {
    /// Discovers the transmitter and gets an `ssf.manage` token for a new client.
    async fn new(server: &'a TestServer) -> Self {
        let token = server.token(&["ssf.manage"]).await;
        Self::with_token(server, token).await
    }

    async fn with_token(server: &'a TestServer, token: String) -> Self {
        let metadata = server
            .http
            .get(server.url("/.well-known/ssf-configuration"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        Self {
            server,
            metadata,
            token,
        }
    }

    fn endpoint(&self, name: &str) -> String {
        self.metadata[name]
            .as_str()
            .unwrap_or_else(|| panic!("metadata has no {name}: {}", self.metadata))
            .to_owned()
    }

    /// One request: `token` as a Bearer token when given, `body` as the JSON text.
    async fn call(
        &self,
        method: Method,
        url: &str,
        token: Option<&str>,
        body: Option<String>,
    ) -> Resp {
        let mut request = self.server.http.request(method, url);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request
                .header("content-type", "application/json")
                .body(body);
        }
        let response = request.send().await.unwrap();
        Resp {
            status: response.status(),
            headers: response.headers().clone(),
            text: response.text().await.unwrap(),
        }
    }

    async fn json(&self, method: Method, endpoint: &str, body: Value) -> Resp {
        let url = self.endpoint(endpoint);
        self.call(method, &url, Some(&self.token), Some(body.to_string()))
            .await
    }

    async fn query(&self, method: Method, endpoint: &str, stream_id: Option<&str>) -> Resp {
        let mut url = url::Url::parse(&self.endpoint(endpoint)).unwrap();
        if let Some(id) = stream_id {
            url.query_pairs_mut().append_pair("stream_id", id);
        }
        self.call(method, url.as_str(), Some(&self.token), None)
            .await
    }

    /// Creates a stream; asserts 201 (SSF 1.0 §8.1.1.1).
    async fn create(&self, body: Value) -> Value {
        self.json(Method::POST, "configuration_endpoint", body)
            .await
            .expect(201)
            .json()
    }

    async fn create_push(&self, url: &str, authorization: Option<&str>) -> Value {
        let mut delivery = json!({"method": PUSH, "endpoint_url": url});
        if let Some(value) = authorization {
            delivery["authorization_header"] = value.into();
        }
        self.create(json!({"delivery": delivery})).await
    }

    async fn create_poll(&self) -> Value {
        self.create(json!({"delivery": {"method": POLL}})).await
    }

    async fn read(&self, stream_id: &str) -> Resp {
        self.query(Method::GET, "configuration_endpoint", Some(stream_id))
            .await
    }

    async fn read_all(&self) -> Resp {
        self.query(Method::GET, "configuration_endpoint", None)
            .await
    }

    async fn delete(&self, stream_id: &str) -> Resp {
        self.query(Method::DELETE, "configuration_endpoint", Some(stream_id))
            .await
    }

    async fn status(&self, stream_id: &str) -> Resp {
        self.query(Method::GET, "status_endpoint", Some(stream_id))
            .await
    }

    /// Sets a stream's status; asserts 200 and the echoed status (SSF-ST-10/11).
    async fn set_status(&self, stream_id: &str, status: &str) {
        let body = json!({"stream_id": stream_id, "status": status,
            "reason": format!("conformance harness: {status}")});
        let answer = self
            .json(Method::POST, "status_endpoint", body)
            .await
            .expect(200)
            .json();
        assert_eq!(answer["stream_id"], stream_id);
        assert_eq!(answer["status"], status);
    }

    async fn verify(&self, stream_id: &str, state: Option<&str>) -> Resp {
        let mut body = json!({"stream_id": stream_id});
        if let Some(state) = state {
            body["state"] = state.into();
        }
        self.json(Method::POST, "verification_endpoint", body).await
    }

    /// Requests a verification; asserts the empty 204 (SSF-VER-12).
    async fn verify_ok(&self, stream_id: &str, state: &str) {
        let answer = self.verify(stream_id, Some(state)).await.expect(204);
        assert!(answer.text.is_empty(), "{}", answer.text);
    }

    async fn poll(&self, stream: &Value, body: Value) -> Resp {
        let url = stream["delivery"]["endpoint_url"].as_str().unwrap();
        self.call(Method::POST, url, Some(&self.token), Some(body.to_string()))
            .await
    }

    /// Polls; asserts 200 with a `sets` object (RFC 8936 §2.5) and returns its SETs.
    async fn poll_sets(&self, stream: &Value, body: Value) -> Vec<(String, String)> {
        let answer = self.poll(stream, body).await.expect(200).json();
        let sets = answer["sets"]
            .as_object()
            .unwrap_or_else(|| panic!("POLL: `sets` must be an object: {answer}"));
        sets.iter()
            .map(|(jti, set)| (jti.clone(), set.as_str().expect("a SET string").to_owned()))
            .collect()
    }

    /// Polls (without acknowledging) until `n` SETs are offered; checks each one.
    async fn poll_until(&self, stream: &Value, checker: &SetChecker, n: usize) -> Vec<CheckedSet> {
        let deadline = Instant::now() + PROMPTLY;
        loop {
            let sets = self
                .poll_sets(stream, json!({"returnImmediately": true}))
                .await;
            if sets.len() >= n {
                return sets
                    .iter()
                    .map(|(jti, token)| {
                        let checked = checker.check(token);
                        // RFC 8936 §2.5: each member name is the SET's jti.
                        assert_eq!(&checked.jti, jti);
                        checked
                    })
                    .collect();
            }
            assert!(
                Instant::now() < deadline,
                "expected {n} SET(s) by poll, got {sets:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn checker(&self, stream: &Value) -> SetChecker {
        SetChecker::new(
            &self.server.http,
            &self.metadata,
            stream,
            self.server.state.clock.clone(),
        )
        .await
    }
}

fn id(stream: &Value) -> &str {
    stream["stream_id"].as_str().expect("stream_id")
}

/// The local identity provider's side: `POST /events` with a publisher credential.
struct Idp<'a> {
    server: &'a TestServer,
    credential: String,
}

impl<'a> Idp<'a> {
    async fn new(server: &'a TestServer) -> Self {
        Self {
            server,
            credential: server.publisher().await,
        }
    }

    async fn post(&self, credential: Option<&str>, body: &str) -> Resp {
        let mut request = self
            .server
            .http
            .post(self.server.url("/events"))
            .header("content-type", "application/json")
            .body(body.to_owned());
        if let Some(credential) = credential {
            request = request.bearer_auth(credential);
        }
        let response = request.send().await.unwrap();
        Resp {
            status: response.status(),
            headers: response.headers().clone(),
            text: response.text().await.unwrap(),
        }
    }

    /// Submits one event; asserts 202 and returns the intake result `{txn, sets}`.
    async fn emit(&self, sub_id: Value, event_type: &str, payload: Value) -> Value {
        let body = json!({"sub_id": sub_id, "events": {event_type: payload}});
        self.post(Some(&self.credential), &body.to_string())
            .await
            .expect(202)
            .json()
    }

    /// Submits a session-revoked event about `email`.
    async fn revoke(&self, email: &str) -> Value {
        self.emit(
            json!({"format": "email", "email": email}),
            SESSION_REVOKED,
            json!({"reason_admin": {"en": "conformance harness"}}),
        )
        .await
    }
}

/// The `jti` an intake created for `stream`, if it created one.
fn jti_for(intake: &Value, stream: &Value) -> Option<String> {
    let sets = intake["sets"].as_array().expect("intake sets");
    let mine: Vec<&Value> = sets
        .iter()
        .filter(|s| s["stream_id"] == stream["stream_id"])
        .collect();
    assert!(mine.len() <= 1, "one SET per stream and event: {intake}");
    mine.first().map(|s| s["jti"].as_str().unwrap().to_owned())
}

fn string_set(value: &Value) -> BTreeSet<String> {
    value
        .as_array()
        .unwrap_or_else(|| panic!("not an array: {value}"))
        .iter()
        .map(|v| v.as_str().expect("a string").to_owned())
        .collect()
}

/// Checks a stream configuration the transmitter returned (SSF 1.0 §8.1.1).
#[track_caller]
fn check_stream(metadata: &Value, stream: &Value, requested: Option<&Value>) {
    // SSF-CFG-01: a transmitter-supplied id, RFC 3986 unreserved characters (AMBIG-25).
    let stream_id = id(stream);
    assert!(!stream_id.is_empty());
    assert!(
        stream_id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-._~".contains(c)),
        "{stream_id}"
    );
    // SSF-CR-02, SSF-SET-06: iss is the issuer.
    assert_eq!(stream["iss"], metadata["issuer"]);
    // aud: a string or an array of strings, REQUIRED.
    match &stream["aud"] {
        Value::String(aud) => assert!(!aud.is_empty()),
        Value::Array(auds) => {
            assert!(
                !auds.is_empty()
                    && auds
                        .iter()
                        .all(|a| a.as_str().is_some_and(|a| !a.is_empty()))
            )
        }
        other => panic!("aud: {other}"),
    }
    // delivery REQUIRED with a method (IOP-T-08) and an endpoint_url.
    let method = stream["delivery"]["method"]
        .as_str()
        .expect("delivery.method");
    assert!(method == PUSH || method == POLL, "{method}");
    assert!(stream["delivery"]["endpoint_url"].is_string(), "{stream}");
    // SSF-CFG-05: events_delivered ⊆ events_supported ∩ events_requested.
    let delivered = string_set(&stream["events_delivered"]);
    if let Some(supported) = stream.get("events_supported") {
        assert!(delivered.is_subset(&string_set(supported)), "{stream}");
    }
    if let Some(requested) = requested {
        assert!(delivered.is_subset(&string_set(requested)), "{stream}");
    }
}

/// Walks a JSON document and fails on any empty array (SSF-MD-10).
fn assert_no_empty_arrays(path: &str, value: &Value) {
    match value {
        Value::Array(items) => {
            assert!(!items.is_empty(), "SSF-MD-10: {path} is an empty array");
            for (i, item) in items.iter().enumerate() {
                assert_no_empty_arrays(&format!("{path}[{i}]"), item);
            }
        }
        Value::Object(members) => {
            for (name, member) in members {
                assert_no_empty_arrays(&format!("{path}.{name}"), member);
            }
        }
        _ => {}
    }
}

async fn wait_for_stats(
    server: &TestServer,
    stream_id: &str,
    what: &str,
    done: impl Fn(&ssfd::storage::DeliveryStats) -> bool,
) -> ssfd::storage::DeliveryStats {
    let deadline = Instant::now() + PROMPTLY;
    loop {
        let stats = server.store().delivery_stats(stream_id).await.unwrap();
        if done(&stats) {
            return stats;
        }
        assert!(Instant::now() < deadline, "{what}: {stats:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

// ---------------------------------------------------------------------------------------------
// openid-ssf-transmitter-metadata
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn openid_ssf_transmitter_metadata() {
    let server = TestServer::start().await;
    let http = &server.http;
    // SSF-DISC-02/03: GET at the issuer's well-known path, no credentials (SSF-MD-07a).
    let response = http
        .get(server.url("/.well-known/ssf-configuration"))
        .send()
        .await
        .unwrap();
    // SSF-MD-09: 200, application/json, a JSON object.
    assert_eq!(response.status(), 200);
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        content_type.starts_with("application/json"),
        "{content_type}"
    );
    let metadata: Value = response.json().await.unwrap();
    assert!(metadata.is_object());

    // SSF-MD-01, IOP-VER-02
    assert_eq!(metadata["spec_version"], "1_0");
    // SSF-MD-02, SSF-DISC-07: exactly the issuer the document was fetched for.
    assert_eq!(metadata["issuer"], server.base.as_str());
    let issuer = server.base.as_str();

    // SSF-MD-03, IOP-T-02: jwks_uri serves the current RS256 signing key, ≥ 2048 bits.
    let jwks_uri = metadata["jwks_uri"].as_str().expect("jwks_uri");
    let jwks: Value = http
        .get(jwks_uri)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let keys = jwks["keys"].as_array().expect("a JWK Set");
    assert!(!keys.is_empty());
    for key in keys {
        assert_eq!(key["kty"], "RSA", "{key}");
        assert!(key["kid"].is_string(), "{key}");
        assert!(
            key.get("d").is_none(),
            "private key material published: {key}"
        );
        let n = key["n"].as_str().unwrap();
        let bits = n.trim_end_matches('=').len() * 6;
        assert!(bits >= 2048, "IOP-SIG-01: {bits}-bit key");
    }

    // SSF-MD-04, IOP-T-01: both delivery methods.
    let methods = string_set(&metadata["delivery_methods_supported"]);
    assert!(
        methods.contains(PUSH) && methods.contains(POLL),
        "{methods:?}"
    );

    // SSF-MD-05, IOP-T-03/04/06: the management endpoints, all under the issuer.
    for name in [
        "configuration_endpoint",
        "status_endpoint",
        "add_subject_endpoint",
        "remove_subject_endpoint",
        "verification_endpoint",
    ] {
        let url = metadata[name]
            .as_str()
            .unwrap_or_else(|| panic!("{name} missing"));
        assert!(url.starts_with(&format!("{issuer}/")), "{name}: {url}");
        // The endpoint is really served: without a token it asks for one (SSF-API-01).
        let method = if name == "configuration_endpoint" || name == "status_endpoint" {
            Method::GET
        } else {
            Method::POST
        };
        let answer = http.request(method, url).send().await.unwrap();
        assert_eq!(answer.status(), 401, "{name}");
    }
    assert!(jwks_uri.starts_with(&format!("{issuer}/")), "{jwks_uri}");

    // SSF-MD-07, IOP-T-07: OAuth 2.0.
    let schemes = metadata["authorization_schemes"].as_array().unwrap();
    assert!(
        schemes.iter().any(|s| s["spec_urn"] == "urn:ietf:rfc:6749"),
        "{schemes:?}"
    );
    // SSF-MD-08: ALL or NONE, as configured.
    assert_eq!(metadata["default_subjects"], "ALL");
    // SSF-MD-10: no claim with zero elements.
    assert_no_empty_arrays("$", &metadata);

    // The same rules for an https issuer with a path: the document is at the path-inserted
    // URL (SSF-DISC-02, RFC 8615), not appended OIDC-style, and every URL uses TLS (SSF-MD-05).
    let tenant = TestServer::start_with(|config| {
        config.server.issuer = "https://ssf.example.test/tenant-a".to_owned();
        config.transmitter.default_subjects = ssfd::protocol::metadata::DefaultSubjects::None;
    })
    .await;
    let address = tenant.state.config.server.bind;
    let inserted = http
        .get(format!(
            "http://{address}/.well-known/ssf-configuration/tenant-a"
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(inserted.status(), 200);
    let metadata: Value = inserted.json().await.unwrap();
    assert_eq!(metadata["issuer"], "https://ssf.example.test/tenant-a");
    assert_eq!(metadata["default_subjects"], "NONE");
    for (name, value) in metadata.as_object().unwrap() {
        if name.ends_with("_endpoint") || name == "jwks_uri" {
            let url = value.as_str().unwrap();
            assert!(
                url.starts_with("https://ssf.example.test/tenant-a/"),
                "{name}: {url}"
            );
        }
    }
    assert_no_empty_arrays("$", &metadata);
    for wrong in [
        "/tenant-a/.well-known/ssf-configuration",
        "/.well-known/ssf-configuration",
    ] {
        let answer = http
            .get(format!("http://{address}{wrong}"))
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), 404, "{wrong}");
    }
}

// ---------------------------------------------------------------------------------------------
// openid-ssf-stream-control-happy-path
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn openid_ssf_stream_control_happy_path() {
    let server = TestServer::start().await;
    let receiver = ReceiverDouble::start().await;
    let rx = Rx::new(&server).await;
    let idp = Idp::new(&server).await;

    // SSF-RD-03: no stream yet: an empty array.
    let all = rx.read_all().await.expect(200).json();
    assert_eq!(all, json!([]));

    // Create (SSF 1.0 §8.1.1.1): 201 with the full configuration.
    let requested = json!([
        SESSION_REVOKED,
        CREDENTIAL_CHANGE,
        "urn:example:conformance:unknown"
    ]);
    let created = rx
        .json(
            Method::POST,
            "configuration_endpoint",
            json!({
                "events_requested": requested,
                "delivery": {"method": PUSH, "endpoint_url": receiver.url,
                    "authorization_header": "Bearer happy-create"},
                "description": "conformance happy path"
            }),
        )
        .await
        .expect(201);
    assert!(created
        .header("content-type")
        .is_some_and(|t| t.starts_with("application/json")));
    let stream = created.json();
    check_stream(&rx.metadata, &stream, Some(&requested));
    let stream_id = id(&stream).to_owned();
    assert_eq!(stream["delivery"]["method"], PUSH);
    assert_eq!(stream["delivery"]["endpoint_url"], receiver.url.as_str());
    assert_eq!(stream["description"], "conformance happy path");
    // SSF-CFG-03/05: the unknown type is ignored; both known ones are supported and delivered.
    assert_eq!(
        string_set(&stream["events_delivered"]),
        BTreeSet::from([SESSION_REVOKED.to_owned(), CREDENTIAL_CHANGE.to_owned()])
    );

    // Read one (SSF-RD-02): the object, as created.
    let read = rx.read(&stream_id).await.expect(200).json();
    assert_eq!(read, stream);
    // Read all (SSF-RD-03): an array, even of one.
    let all = rx.read_all().await.expect(200).json();
    assert_eq!(all, json!([stream]));

    // PATCH (SSF-UP-02/03): the named property changes, the others stay.
    let patched = rx
        .json(
            Method::PATCH,
            "configuration_endpoint",
            json!({"stream_id": stream_id, "description": "patched"}),
        )
        .await
        .expect(200)
        .json();
    check_stream(&rx.metadata, &patched, Some(&requested));
    assert_eq!(patched["description"], "patched");
    for unchanged in [
        "iss",
        "aud",
        "events_requested",
        "events_delivered",
        "delivery",
    ] {
        assert_eq!(patched[unchanged], stream[unchanged], "{unchanged}");
    }
    assert_eq!(rx.read(&stream_id).await.expect(200).json(), patched);
    // SSF-UP-05/07: transmitter-supplied values may be sent back when they match.
    let echoed = rx
        .json(
            Method::PATCH,
            "configuration_endpoint",
            json!({"stream_id": stream_id, "iss": patched["iss"], "aud": patched["aud"],
                "events_delivered": patched["events_delivered"]}),
        )
        .await
        .expect(200)
        .json();
    assert_eq!(echoed, patched);

    // PUT (SSF-PUT-01/02): the full set of receiver-supplied properties.
    let wider = json!([SESSION_REVOKED, CREDENTIAL_CHANGE, DEVICE_COMPLIANCE_CHANGE]);
    let replaced = rx
        .json(
            Method::PUT,
            "configuration_endpoint",
            json!({"stream_id": stream_id, "events_requested": wider,
                "delivery": {"method": PUSH, "endpoint_url": receiver.url,
                    "authorization_header": "Bearer happy-put-1"},
                "description": "replaced"}),
        )
        .await
        .expect(200)
        .json();
    check_stream(&rx.metadata, &replaced, Some(&wider));
    assert_eq!(replaced["description"], "replaced");
    assert_eq!(
        string_set(&replaced["events_delivered"]),
        string_set(&wider)
    );
    assert_eq!(rx.read(&stream_id).await.expect(200).json(), replaced);

    // PUT omitting description and narrowing events: what is missing is deleted (SSF-PUT-02).
    let narrow = json!([SESSION_REVOKED]);
    let narrowed = rx
        .json(
            Method::PUT,
            "configuration_endpoint",
            json!({"stream_id": stream_id, "events_requested": narrow,
                "delivery": {"method": PUSH, "endpoint_url": receiver.url,
                    "authorization_header": "Bearer happy-put-2"}}),
        )
        .await
        .expect(200)
        .json();
    check_stream(&rx.metadata, &narrowed, Some(&narrow));
    assert!(
        narrowed.get("description").is_none_or(Value::is_null),
        "{narrowed}"
    );
    assert_eq!(narrowed["events_requested"], narrow);
    assert_eq!(narrowed["events_delivered"], narrow);
    assert_eq!(rx.read(&stream_id).await.expect(200).json(), narrowed);

    // The narrowed stream carries only what events_delivered says, with the replaced
    // delivery (SSF-CFG-05, SSF-DEL-04).
    let jane = json!({"format": "email", "email": "jane@example.com"});
    let removed_type = idp
        .emit(
            jane.clone(),
            CREDENTIAL_CHANGE,
            json!({"credential_type": "password", "change_type": "update"}),
        )
        .await;
    assert_eq!(jti_for(&removed_type, &stream), None, "{removed_type}");
    let kept_type = idp.revoke("jane@example.com").await;
    let jti = jti_for(&kept_type, &stream).expect("a SET for the stream");
    let pushed = receiver.wait_for(1, PROMPTLY).await;
    let checker = rx.checker(&narrowed).await;
    let set = checker.check_push(&pushed[0]);
    assert_eq!(set.jti, jti);
    assert_eq!(set.event_type, SESSION_REVOKED);
    assert_eq!(
        pushed[0].header("authorization"),
        Some("Bearer happy-put-2")
    );
    receiver.expect_quiet(1, Duration::from_millis(500)).await;

    // A PUT of stream_id alone deletes every receiver-supplied property; without delivery
    // the transmitter's default applies, as on create: poll (SSF-PUT-02, SSF-CR-05, AMBIG-7).
    let bare = rx
        .json(
            Method::PUT,
            "configuration_endpoint",
            json!({"stream_id": stream_id}),
        )
        .await
        .expect(200)
        .json();
    check_stream(&rx.metadata, &bare, None);
    assert_eq!(bare["delivery"]["method"], POLL);
    assert_ne!(bare["delivery"]["endpoint_url"], receiver.url.as_str());
    assert!(
        bare.get("events_requested").is_none_or(Value::is_null),
        "{bare}"
    );
    assert!(bare.get("description").is_none_or(Value::is_null), "{bare}");
    assert_eq!(rx.read(&stream_id).await.expect(200).json(), bare);

    // Status (SSF-ST-04/05): enabled; then each status in turn (SSF-ST-10/11).
    let status = rx.status(&stream_id).await.expect(200).json();
    assert_eq!(status["stream_id"], stream_id.as_str());
    assert_eq!(status["status"], "enabled");
    for wanted in ["enabled", "paused", "disabled"] {
        rx.set_status(&stream_id, wanted).await;
        let status = rx.status(&stream_id).await.expect(200).json();
        assert_eq!(status["status"], wanted);
    }

    // Delete (SSF-DL-02): an empty 204; the stream is gone.
    let deleted = rx.delete(&stream_id).await.expect(204);
    assert!(deleted.text.is_empty());
    rx.read(&stream_id).await.expect(404);
    assert_eq!(rx.read_all().await.expect(200).json(), json!([]));
}

// ---------------------------------------------------------------------------------------------
// openid-ssf-stream-control-error-*
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn openid_ssf_stream_control_error_create_stream_with_broken_input() {
    let server = TestServer::start().await;
    let rx = Rx::new(&server).await;
    let url = rx.endpoint("configuration_endpoint");
    // SSF 1.0 §8.1.1.1 errors: 400 when the request cannot be parsed or is invalid.
    for body in [
        "{not json",
        "[]",
        r#"{"delivery": "urn:ietf:rfc:8936"}"#,
        r#"{"events_requested": "https://schemas.openid.net/secevent/caep/event-type/session-revoked"}"#,
        r#"{"description": 42}"#,
        // push without the receiver's endpoint_url
        r#"{"delivery": {"method": "urn:ietf:rfc:8935"}}"#,
        // SSF-CR-07: an unsupported delivery method
        r#"{"delivery": {"method": "urn:example:carrier-pigeon", "endpoint_url": "https://rx.example.com/"}}"#,
        // a push endpoint_url that is not a URL
        r#"{"delivery": {"method": "urn:ietf:rfc:8935", "endpoint_url": "not a url"}}"#,
    ] {
        let answer = rx
            .call(Method::POST, &url, Some(&rx.token), Some(body.to_owned()))
            .await;
        assert_eq!(answer.status, 400, "{body}: {}", answer.text);
    }
    // Nothing was created.
    assert_eq!(rx.read_all().await.expect(200).json(), json!([]));
}

/// Tokens a transmitter must refuse with 401 `invalid_token` (RFC 6750 §3.1, IOP-RS-03/04).
async fn invalid_tokens(server: &TestServer) -> Vec<String> {
    let valid = server.token(&["ssf.manage"]).await;
    // A real token with its signature altered.
    let mut tampered = valid.clone();
    let last = tampered.pop().unwrap();
    tampered.push(if last == 'A' { 'B' } else { 'A' });
    // A token signed by the transmitter for a client revoked since.
    let (client_id, secret) = server.client(&["ssf.manage"]).await;
    let revoked = server.token_for(&client_id, &secret).await;
    server
        .store()
        .revoke_client(&client_id, server.state.clock.now())
        .await
        .unwrap();
    vec!["not-a-valid-token".to_owned(), tampered, revoked]
}

#[tokio::test]
async fn openid_ssf_stream_control_error_create_stream_with_invalid_token() {
    let server = TestServer::start().await;
    let rx = Rx::new(&server).await;
    let url = rx.endpoint("configuration_endpoint");
    for token in invalid_tokens(&server).await {
        let answer = rx
            .call(Method::POST, &url, Some(&token), Some("{}".to_owned()))
            .await
            .expect(401);
        answer.expect_bearer_challenge(Some("invalid_token"));
    }
    assert_eq!(rx.read_all().await.expect(200).json(), json!([]));
}

#[tokio::test]
async fn openid_ssf_stream_control_error_create_stream_with_duplicate_config() {
    // SSF-CR-04: a transmitter allowing one stream per receiver answers a second create 409.
    let server = TestServer::start_with(|c| c.transmitter.single_stream_per_client = true).await;
    let rx = Rx::new(&server).await;
    let first = rx.create(json!({})).await;
    let again = rx
        .json(Method::POST, "configuration_endpoint", json!({}))
        .await;
    assert_eq!(again.status, 409, "{}", again.text);
    let all = rx.read_all().await.expect(200).json();
    assert_eq!(all, json!([first]));
    // The limit is per receiver: another client still gets its stream.
    let other = Rx::new(&server).await;
    other.create(json!({})).await;

    // SSF-CR-03: where several streams are allowed, a second create is a new stream.
    let server = TestServer::start().await;
    let rx = Rx::new(&server).await;
    let first = rx.create(json!({})).await;
    let second = rx.create(json!({})).await;
    assert_ne!(first["stream_id"], second["stream_id"]);
    assert_eq!(
        rx.read_all()
            .await
            .expect(200)
            .json()
            .as_array()
            .unwrap()
            .len(),
        2
    );
}

#[tokio::test]
async fn openid_ssf_stream_control_error_create_stream_with_read_only_token() {
    let server = TestServer::start().await;
    // A client allowed ssf.manage asks for ssf.read only, as the suite does.
    let (client_id, secret) = server.client(&["ssf.manage"]).await;
    let granted: Value = server
        .http
        .post(server.url("/oauth/token"))
        .basic_auth(&client_id, Some(&secret))
        .form(&[("grant_type", "client_credentials"), ("scope", "ssf.read")])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    // OIDSSFEnsureGrantedScopeIsReadOnly
    assert_eq!(granted["scope"], "ssf.read", "{granted}");
    // IOP-AS-02, OIDSSFEnsureShortLivedToken: a short-lived bearer token (≤ 60 minutes).
    assert_eq!(granted["token_type"], "Bearer");
    let expires_in = granted["expires_in"].as_i64().expect("expires_in");
    assert!((1..=3600).contains(&expires_in), "{expires_in}");
    let read_only = granted["access_token"].as_str().unwrap().to_owned();
    let rx = Rx::with_token(&server, read_only).await;

    // IOP-SC-02, IOP-RS-04: create needs ssf.manage: 403 insufficient_scope.
    let answer = rx
        .json(Method::POST, "configuration_endpoint", json!({}))
        .await
        .expect(403);
    answer.expect_bearer_challenge(Some("insufficient_scope"));
    // Reads are allowed with ssf.read, and nothing was created.
    assert_eq!(rx.read_all().await.expect(200).json(), json!([]));

    // The read-only token can read a stream of its client but not change or delete it.
    let manager = Rx::with_token(&server, server.token_for(&client_id, &secret).await).await;
    let stream = manager.create(json!({})).await;
    let stream_id = id(&stream);
    assert_eq!(rx.read(stream_id).await.expect(200).json(), stream);
    rx.status(stream_id).await.expect(200);
    for answer in [
        rx.json(
            Method::PATCH,
            "configuration_endpoint",
            json!({"stream_id": stream_id, "description": "x"}),
        )
        .await,
        rx.delete(stream_id).await,
        rx.json(
            Method::POST,
            "status_endpoint",
            json!({"stream_id": stream_id, "status": "paused"}),
        )
        .await,
        rx.verify(stream_id, Some("s")).await,
    ] {
        assert_eq!(answer.status, 403, "{}", answer.text);
        answer.expect_bearer_challenge(Some("insufficient_scope"));
    }
    assert_eq!(manager.read(stream_id).await.expect(200).json(), stream);
    assert_eq!(manager.status(stream_id).await.json()["status"], "enabled");
}

#[tokio::test]
async fn openid_ssf_stream_control_error_read_stream_with_invalid_token() {
    let server = TestServer::start().await;
    let rx = Rx::new(&server).await;
    let stream = rx.create(json!({})).await;
    let mut url = url::Url::parse(&rx.endpoint("configuration_endpoint")).unwrap();
    url.query_pairs_mut().append_pair("stream_id", id(&stream));
    for token in invalid_tokens(&server).await {
        for target in [url.as_str(), rx.endpoint("configuration_endpoint").as_str()] {
            let answer = rx
                .call(Method::GET, target, Some(&token), None)
                .await
                .expect(401);
            answer.expect_bearer_challenge(Some("invalid_token"));
            assert!(!answer.text.contains(id(&stream)), "{}", answer.text);
        }
    }
}

#[tokio::test]
async fn openid_ssf_stream_control_error_read_stream_without_access_token() {
    let server = TestServer::start().await;
    let rx = Rx::new(&server).await;
    let stream = rx.create(json!({})).await;
    let mut url = url::Url::parse(&rx.endpoint("configuration_endpoint")).unwrap();
    url.query_pairs_mut().append_pair("stream_id", id(&stream));
    // SSF-API-01, RFC 6750 §3: 401 with a Bearer challenge and no error code.
    let answer = rx
        .call(Method::GET, url.as_str(), None, None)
        .await
        .expect(401);
    answer.expect_bearer_challenge(None);
    assert!(!answer.text.contains(id(&stream)));
}

#[tokio::test]
async fn openid_ssf_stream_control_error_token_in_uri_query() {
    let server = TestServer::start().await;
    let rx = Rx::new(&server).await;
    let stream = rx.create(json!({})).await;
    let mut url = url::Url::parse(&rx.endpoint("configuration_endpoint")).unwrap();
    url.query_pairs_mut()
        .append_pair("stream_id", id(&stream))
        .append_pair("access_token", &rx.token);
    // IOP-RS-02 (RFC 6750 §2.3): a valid token in the query is refused, 400 or 401.
    let answer = rx.call(Method::GET, url.as_str(), None, None).await;
    assert!(
        answer.status == 400 || answer.status == 401,
        "{} {}",
        answer.status,
        answer.text
    );
    assert!(!answer.text.contains("events_delivered"), "{}", answer.text);
    // Also when a valid header comes with it: one method per request (RFC 6750 §2).
    let both = rx
        .call(Method::GET, url.as_str(), Some(&rx.token), None)
        .await;
    assert!(both.status == 400 || both.status == 401, "{}", both.text);
}

#[tokio::test]
async fn openid_ssf_stream_control_error_read_unknown_stream() {
    let server = TestServer::start().await;
    let rx = Rx::new(&server).await;
    rx.create(json!({})).await;
    // SSF 1.0 §8.1.1.2: 404 for a stream_id this receiver has no stream for.
    rx.read("no-such-stream").await.expect(404);
}

#[tokio::test]
async fn openid_ssf_stream_control_error_other_receivers_stream_is_unknown() {
    // SSF-API-02: every lookup is scoped to the caller; another receiver's stream is 404,
    // never 403, so its existence does not leak.
    let server = TestServer::start().await;
    let owner = Rx::new(&server).await;
    let stream = owner.create_poll().await;
    let stream_id = id(&stream);
    let other = Rx::new(&server).await;
    let subject = json!({"format": "email", "email": "jane@example.com"});
    for answer in [
        other.read(stream_id).await,
        other
            .json(
                Method::PATCH,
                "configuration_endpoint",
                json!({"stream_id": stream_id, "description": "mine now"}),
            )
            .await,
        other
            .json(
                Method::PUT,
                "configuration_endpoint",
                json!({"stream_id": stream_id, "description": "mine now"}),
            )
            .await,
        other.delete(stream_id).await,
        other.status(stream_id).await,
        other
            .json(
                Method::POST,
                "status_endpoint",
                json!({"stream_id": stream_id, "status": "disabled"}),
            )
            .await,
        other.verify(stream_id, Some("s")).await,
        other
            .json(
                Method::POST,
                "add_subject_endpoint",
                json!({"stream_id": stream_id, "subject": subject}),
            )
            .await,
        other
            .json(
                Method::POST,
                "remove_subject_endpoint",
                json!({"stream_id": stream_id, "subject": subject}),
            )
            .await,
        other
            .poll(&stream, json!({"returnImmediately": true}))
            .await,
    ] {
        assert_eq!(answer.status, 404, "{}", answer.text);
    }
    assert_eq!(other.read_all().await.expect(200).json(), json!([]));
    // The owner's stream is untouched.
    assert_eq!(owner.read(stream_id).await.expect(200).json(), stream);
    assert_eq!(owner.status(stream_id).await.json()["status"], "enabled");
    assert!(owner
        .poll_sets(&stream, json!({"returnImmediately": true}))
        .await
        .is_empty());
}

#[tokio::test]
async fn openid_ssf_stream_control_error_update_stream_with_invalid_body() {
    let server = TestServer::start().await;
    let rx = Rx::new(&server).await;
    let stream = rx
        .create(json!({"description": "original", "events_requested": [SESSION_REVOKED]}))
        .await;
    let stream_id = id(&stream);
    let url = rx.endpoint("configuration_endpoint");
    for body in [
        "{not json".to_owned(),
        // SSF-UP-01: stream_id is required.
        json!({"description": "no id"}).to_string(),
        json!({"stream_id": stream_id, "events_requested": 5}).to_string(),
        json!({"stream_id": stream_id, "delivery": {"method": "urn:example:carrier-pigeon"}})
            .to_string(),
        // SSF-UP-05: a transmitter-supplied property that does not match.
        json!({"stream_id": stream_id, "iss": "https://evil.example.com"}).to_string(),
        json!({"stream_id": stream_id, "aud": "someone-else"}).to_string(),
        // SSF-UP-07: events_delivered must match the value before the update.
        json!({"stream_id": stream_id, "events_requested": [CREDENTIAL_CHANGE],
            "events_delivered": [CREDENTIAL_CHANGE]})
        .to_string(),
    ] {
        let answer = rx
            .call(Method::PATCH, &url, Some(&rx.token), Some(body.clone()))
            .await;
        assert_eq!(answer.status, 400, "{body}: {}", answer.text);
    }
    // Nothing changed.
    assert_eq!(rx.read(stream_id).await.expect(200).json(), stream);
}

#[tokio::test]
async fn openid_ssf_stream_control_error_update_stream_with_invalid_token() {
    let server = TestServer::start().await;
    let rx = Rx::new(&server).await;
    let stream = rx.create(json!({"description": "original"})).await;
    let url = rx.endpoint("configuration_endpoint");
    let body = json!({"stream_id": id(&stream), "description": "changed"}).to_string();
    for token in invalid_tokens(&server).await {
        let answer = rx
            .call(Method::PATCH, &url, Some(&token), Some(body.clone()))
            .await
            .expect(401);
        answer.expect_bearer_challenge(Some("invalid_token"));
    }
    assert_eq!(rx.read(id(&stream)).await.expect(200).json(), stream);
}

#[tokio::test]
async fn openid_ssf_stream_control_error_update_unknown_stream() {
    let server = TestServer::start().await;
    let rx = Rx::new(&server).await;
    rx.create(json!({})).await;
    rx.json(
        Method::PATCH,
        "configuration_endpoint",
        json!({"stream_id": "no-such-stream", "description": "x"}),
    )
    .await
    .expect(404);
}

#[tokio::test]
async fn openid_ssf_stream_control_error_replace_stream_with_invalid_body() {
    let server = TestServer::start().await;
    let rx = Rx::new(&server).await;
    let stream = rx
        .create(json!({"description": "original", "events_requested": [SESSION_REVOKED]}))
        .await;
    let stream_id = id(&stream);
    let url = rx.endpoint("configuration_endpoint");
    for body in [
        "{not json".to_owned(),
        // SSF-PUT-01: stream_id is required.
        json!({"description": "no id", "delivery": {"method": POLL}}).to_string(),
        json!({"stream_id": stream_id, "description": ["not", "a", "string"]}).to_string(),
        json!({"stream_id": stream_id, "delivery": {"method": PUSH}}).to_string(),
        // SSF-PUT-05
        json!({"stream_id": stream_id, "iss": "https://evil.example.com"}).to_string(),
        json!({"stream_id": stream_id, "events_requested": [CREDENTIAL_CHANGE],
            "events_delivered": [CREDENTIAL_CHANGE]})
        .to_string(),
    ] {
        let answer = rx
            .call(Method::PUT, &url, Some(&rx.token), Some(body.clone()))
            .await;
        assert_eq!(answer.status, 400, "{body}: {}", answer.text);
    }
    assert_eq!(rx.read(stream_id).await.expect(200).json(), stream);
}

#[tokio::test]
async fn openid_ssf_stream_control_error_replace_stream_with_invalid_token() {
    let server = TestServer::start().await;
    let rx = Rx::new(&server).await;
    let stream = rx.create(json!({"description": "original"})).await;
    let url = rx.endpoint("configuration_endpoint");
    let body = json!({"stream_id": id(&stream), "delivery": {"method": POLL}}).to_string();
    for token in invalid_tokens(&server).await {
        let answer = rx
            .call(Method::PUT, &url, Some(&token), Some(body.clone()))
            .await
            .expect(401);
        answer.expect_bearer_challenge(Some("invalid_token"));
    }
    assert_eq!(rx.read(id(&stream)).await.expect(200).json(), stream);
}

#[tokio::test]
async fn openid_ssf_stream_control_error_replace_unknown_stream() {
    let server = TestServer::start().await;
    let rx = Rx::new(&server).await;
    rx.create(json!({})).await;
    rx.json(
        Method::PUT,
        "configuration_endpoint",
        json!({"stream_id": "no-such-stream", "delivery": {"method": POLL}}),
    )
    .await
    .expect(404);
}

#[tokio::test]
async fn openid_ssf_stream_control_error_delete_stream_with_invalid_token() {
    let server = TestServer::start().await;
    let rx = Rx::new(&server).await;
    let stream = rx.create(json!({})).await;
    let mut url = url::Url::parse(&rx.endpoint("configuration_endpoint")).unwrap();
    url.query_pairs_mut().append_pair("stream_id", id(&stream));
    for token in invalid_tokens(&server).await {
        let answer = rx
            .call(Method::DELETE, url.as_str(), Some(&token), None)
            .await
            .expect(401);
        answer.expect_bearer_challenge(Some("invalid_token"));
    }
    // Still there.
    assert_eq!(rx.read(id(&stream)).await.expect(200).json(), stream);
}

#[tokio::test]
async fn openid_ssf_stream_control_error_delete_unknown_stream() {
    let server = TestServer::start().await;
    let rx = Rx::new(&server).await;
    let stream = rx.create(json!({})).await;
    rx.delete("no-such-stream").await.expect(404);
    // A stream deleted once is unknown the second time.
    rx.delete(id(&stream)).await.expect(204);
    rx.delete(id(&stream)).await.expect(404);
}

#[tokio::test]
async fn openid_ssf_stream_control_error_read_status_of_unknown_stream() {
    let server = TestServer::start().await;
    let rx = Rx::new(&server).await;
    rx.create(json!({})).await;
    // SSF-ST-09: a stream that does not exist MUST be 404.
    rx.status("no-such-stream").await.expect(404);
    rx.json(
        Method::POST,
        "status_endpoint",
        json!({"stream_id": "no-such-stream", "status": "paused"}),
    )
    .await
    .expect(404);
}

#[tokio::test]
async fn openid_ssf_stream_control_error_read_stream_status_with_invalid_token() {
    let server = TestServer::start().await;
    let rx = Rx::new(&server).await;
    let stream = rx.create(json!({})).await;
    let mut url = url::Url::parse(&rx.endpoint("status_endpoint")).unwrap();
    url.query_pairs_mut().append_pair("stream_id", id(&stream));
    // SSF-ST-09: unauthorized MUST be 401.
    for token in invalid_tokens(&server).await {
        let answer = rx
            .call(Method::GET, url.as_str(), Some(&token), None)
            .await
            .expect(401);
        answer.expect_bearer_challenge(Some("invalid_token"));
    }
    let answer = rx
        .call(Method::GET, url.as_str(), None, None)
        .await
        .expect(401);
    answer.expect_bearer_challenge(None);
}

#[tokio::test]
async fn openid_ssf_stream_control_error_expired_access_token() {
    // IOP-RS-03 / POLL-16: the transmitter checks expiry; an expired token is 401.
    let clock = std::sync::Arc::new(ssfd::clock::ManualClock::at(ssfd::clock::Clock::now(
        &ssfd::clock::SystemClock,
    )));
    let server =
        TestServer::start_full(crate::common::TestDb::new().await, clock.clone(), |_| {}).await;
    let rx = Rx::new(&server).await;
    let stream = rx.create_poll().await;
    rx.read(id(&stream)).await.expect(200);
    clock.advance(server.state.config.auth.access_token_lifetime_secs + 1);
    let answer = rx.read(id(&stream)).await.expect(401);
    answer.expect_bearer_challenge(Some("invalid_token"));
    rx.poll(&stream, json!({"returnImmediately": true}))
        .await
        .expect(401)
        .expect_bearer_challenge(Some("invalid_token"));
    // A fresh token works again.
    let fresh = Rx::new(&server).await;
    fresh.create_poll().await;
}

#[tokio::test]
async fn openid_ssf_stream_control_create_stream_without_delivery() {
    let server = TestServer::start().await;
    let rx = Rx::new(&server).await;
    // SSF-CR-05/06: no delivery ⇒ poll, with the transmitter's endpoint_url.
    let requested = json!([SESSION_REVOKED]);
    let stream = rx
        .create(json!({"description": "no delivery", "events_requested": requested}))
        .await;
    check_stream(&rx.metadata, &stream, Some(&requested));
    assert_eq!(stream["delivery"]["method"], POLL);
    let url = stream["delivery"]["endpoint_url"].as_str().unwrap();
    assert!(url.starts_with(&format!("{}/", server.base)), "{url}");
    assert_eq!(rx.read(id(&stream)).await.expect(200).json(), stream);
    // RFC 8936 §2.5: the endpoint answers a poll; nothing is waiting.
    assert!(rx
        .poll_sets(&stream, json!({"returnImmediately": true}))
        .await
        .is_empty());
    rx.delete(id(&stream)).await.expect(204);
}

#[tokio::test]
async fn openid_ssf_transmitter_poll_endpoint_url_unique_per_stream() {
    let server = verification_server().await;
    let rx = Rx::new(&server).await;
    let first = rx.create_poll().await;
    let second = rx.create_poll().await;
    // SSF-DEL-06: poll endpoint_url MUST be unique per stream for a given receiver …
    assert_ne!(
        second["delivery"]["endpoint_url"],
        first["delivery"]["endpoint_url"]
    );
    // … and each URL serves its own stream only.
    rx.verify_ok(id(&second), "second").await;
    assert!(rx
        .poll_sets(&first, json!({"returnImmediately": true}))
        .await
        .is_empty());
    let checker = rx.checker(&second).await;
    let sets = rx.poll_until(&second, &checker, 1).await;
    assert_eq!(sets.len(), 1);
    assert_verification(&sets[0], "second");
    rx.verify_ok(id(&first), "first").await;
    let checker = rx.checker(&first).await;
    let sets = rx.poll_until(&first, &checker, 1).await;
    assert_eq!(sets.len(), 1);
    assert_verification(&sets[0], "first");
    // A deleted stream's poll URL serves nothing any more.
    rx.delete(id(&second)).await.expect(204);
    rx.poll(&second, json!({"returnImmediately": true}))
        .await
        .expect(404);
    rx.delete(id(&first)).await.expect(204);
}

#[tokio::test]
async fn openid_ssf_transmitter_poll_endpoint_authorization() {
    let server = TestServer::start().await;
    let rx = Rx::new(&server).await;
    let stream = rx.create_poll().await;
    rx.verify_ok(id(&stream), "secret").await;
    let url = stream["delivery"]["endpoint_url"].as_str().unwrap();
    let body = Some(json!({"returnImmediately": true}).to_string());
    // SSF-DEL-07, POLL-14: the poll endpoint is protected; 401 names the Bearer scheme.
    let anonymous = rx
        .call(Method::POST, url, None, body.clone())
        .await
        .expect(401);
    anonymous.expect_bearer_challenge(None);
    assert!(!anonymous.text.contains("sets"), "{}", anonymous.text);
    for token in invalid_tokens(&server).await {
        let answer = rx
            .call(Method::POST, url, Some(&token), body.clone())
            .await
            .expect(401);
        answer.expect_bearer_challenge(Some("invalid_token"));
    }
    // The SET is still there for the rightful receiver.
    assert_eq!(
        rx.poll_sets(&stream, json!({"returnImmediately": true}))
            .await
            .len(),
        1
    );
}

// ---------------------------------------------------------------------------------------------
// openid-ssf-stream-subject-control
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn openid_ssf_stream_subject_control() {
    let server = TestServer::start().await;
    let rx = Rx::new(&server).await;
    let stream = rx.create(json!({})).await;
    let stream_id = id(&stream);
    let subject = json!({"format": "email", "email": "jane.doe@example.com"});
    // SSF-AS-01/03: an empty 200.
    let added = rx
        .json(
            Method::POST,
            "add_subject_endpoint",
            json!({"stream_id": stream_id, "subject": subject, "verified": true}),
        )
        .await
        .expect(200);
    assert!(added.text.is_empty(), "{}", added.text);
    // A complex subject too (SSF 1.0 §3.3).
    rx.json(
        Method::POST,
        "add_subject_endpoint",
        json!({"stream_id": stream_id, "subject": {"format": "complex",
            "user": {"format": "iss_sub", "iss": "https://idp.example.com", "sub": "u-1"},
            "tenant": {"format": "opaque", "id": "t-1"}}}),
    )
    .await
    .expect(200);
    // SSF-RS-01/02: 204.
    let removed = rx
        .json(
            Method::POST,
            "remove_subject_endpoint",
            json!({"stream_id": stream_id, "subject": subject}),
        )
        .await
        .expect(204);
    assert!(removed.text.is_empty(), "{}", removed.text);
    // SSF-SM-03: the stream's own opaque subject is always in the stream.
    rx.json(
        Method::POST,
        "remove_subject_endpoint",
        json!({"stream_id": stream_id, "subject": {"format": "opaque", "id": stream_id}}),
    )
    .await
    .expect(400);
    // SSF-AS-05 / SSF-RS-03: 400 for a malformed request, 404 for an unknown stream.
    for (endpoint, body, status) in [
        ("add_subject_endpoint", json!({"stream_id": stream_id}), 400),
        (
            "add_subject_endpoint",
            json!({"stream_id": stream_id, "subject": {"format": "email"}}),
            400,
        ),
        (
            "add_subject_endpoint",
            json!({"stream_id": "no-such-stream", "subject": subject}),
            404,
        ),
        ("remove_subject_endpoint", json!({"subject": subject}), 400),
        (
            "remove_subject_endpoint",
            json!({"stream_id": "no-such-stream", "subject": subject}),
            404,
        ),
    ] {
        let answer = rx.json(Method::POST, endpoint, body.clone()).await;
        assert_eq!(answer.status, status, "{endpoint} {body}: {}", answer.text);
    }
    rx.delete(stream_id).await.expect(204);
}

#[tokio::test]
async fn openid_ssf_stream_subject_control_default_subjects_none() {
    // SSF-MD-08a: with NONE, only events about added subjects are transmitted.
    let server = TestServer::start_with(|c| {
        c.transmitter.default_subjects = ssfd::protocol::metadata::DefaultSubjects::None;
    })
    .await;
    let rx = Rx::new(&server).await;
    assert_eq!(rx.metadata["default_subjects"], "NONE");
    let idp = Idp::new(&server).await;
    let stream = rx.create_poll().await;
    let stream_id = id(&stream);
    let checker = rx.checker(&stream).await;
    let jane = json!({"format": "email", "email": "jane@example.com"});

    assert_eq!(
        jti_for(&idp.revoke("jane@example.com").await, &stream),
        None
    );
    rx.json(
        Method::POST,
        "add_subject_endpoint",
        json!({"stream_id": stream_id, "subject": jane}),
    )
    .await
    .expect(200);
    let for_jane = jti_for(&idp.revoke("jane@example.com").await, &stream).expect("jane added");
    assert_eq!(
        jti_for(&idp.revoke("john@example.com").await, &stream),
        None
    );
    let sets = rx.poll_until(&stream, &checker, 1).await;
    assert_eq!(sets.len(), 1);
    assert_eq!(sets[0].jti, for_jane);
    assert_eq!(sets[0].claims["sub_id"], jane);
    rx.poll_sets(
        &stream,
        json!({"ack": [for_jane], "returnImmediately": true}),
    )
    .await;

    rx.json(
        Method::POST,
        "remove_subject_endpoint",
        json!({"stream_id": stream_id, "subject": jane}),
    )
    .await
    .expect(204);
    assert_eq!(
        jti_for(&idp.revoke("jane@example.com").await, &stream),
        None
    );
    assert!(rx
        .poll_sets(&stream, json!({"returnImmediately": true}))
        .await
        .is_empty());
    // SSF-SM-03: the stream itself is always a subject: verification works under NONE.
    rx.verify_ok(stream_id, "none").await;
    let sets = rx.poll_until(&stream, &checker, 1).await;
    assert_verification(&sets[0], "none");
}

#[tokio::test]
async fn openid_ssf_stream_subject_control_default_subjects_all() {
    // SSF-MD-08a: with ALL, every subject is in the stream until removed; re-adding restores it.
    let server = TestServer::start().await;
    let rx = Rx::new(&server).await;
    assert_eq!(rx.metadata["default_subjects"], "ALL");
    let idp = Idp::new(&server).await;
    let stream = rx.create_poll().await;
    let stream_id = id(&stream);
    let jane = json!({"format": "email", "email": "jane@example.com"});

    assert!(jti_for(&idp.revoke("jane@example.com").await, &stream).is_some());
    rx.json(
        Method::POST,
        "remove_subject_endpoint",
        json!({"stream_id": stream_id, "subject": jane}),
    )
    .await
    .expect(204);
    assert_eq!(
        jti_for(&idp.revoke("jane@example.com").await, &stream),
        None
    );
    // Email addresses compare without case in the domain (RFC 9493 §3.2.2 / SSF-SM-02).
    assert_eq!(
        jti_for(&idp.revoke("jane@EXAMPLE.com").await, &stream),
        None
    );
    let john = jti_for(&idp.revoke("john@example.com").await, &stream).expect("john");
    rx.json(
        Method::POST,
        "add_subject_endpoint",
        json!({"stream_id": stream_id, "subject": jane}),
    )
    .await
    .expect(200);
    let jane_again = jti_for(&idp.revoke("jane@example.com").await, &stream).expect("re-added");

    let checker = rx.checker(&stream).await;
    let sets = rx.poll_until(&stream, &checker, 3).await;
    let jtis: BTreeSet<&str> = sets.iter().map(|s| s.jti.as_str()).collect();
    assert_eq!(jtis.len(), 3);
    assert!(jtis.contains(john.as_str()) && jtis.contains(jane_again.as_str()));
}

// ---------------------------------------------------------------------------------------------
// openid-ssf-transmitter-stream-verification-*
// ---------------------------------------------------------------------------------------------

/// A server whose verification endpoint accepts back-to-back requests.
async fn verification_server() -> TestServer {
    TestServer::start_with(|c| c.transmitter.min_verification_interval_secs = 0).await
}

#[track_caller]
fn assert_verification(set: &CheckedSet, state: &str) {
    // SSF-VER-04/05/10: the verification event, about the stream, with the state echoed.
    assert_eq!(set.event_type, VERIFICATION);
    assert_eq!(set.state(), Some(state), "{}", set.claims);
    // SSF-SET-11: Transmitters SHOULD set txn, on every SET (the suite warns otherwise).
    assert!(set.claims["txn"].is_string(), "{}", set.claims);
}

#[tokio::test]
async fn openid_ssf_transmitter_stream_verification_poll_only() {
    let server = verification_server().await;
    let rx = Rx::new(&server).await;
    let stream = rx.create_poll().await;
    let checker = rx.checker(&stream).await;
    rx.verify_ok(id(&stream), "poll-only-state").await;
    // POLL-08 Poll-Only: `{}`-style request without ack.
    let sets = rx.poll_until(&stream, &checker, 1).await;
    assert_eq!(sets.len(), 1);
    assert_verification(&sets[0], "poll-only-state");
    // Unacknowledged, it is still the receiver's to fetch.
    let again = rx
        .poll_sets(&stream, json!({"returnImmediately": true}))
        .await;
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].0, sets[0].jti);
}

#[tokio::test]
async fn openid_ssf_transmitter_stream_verification_poll_and_ack() {
    let server = verification_server().await;
    let rx = Rx::new(&server).await;
    let stream = rx.create_poll().await;
    let checker = rx.checker(&stream).await;
    rx.verify_ok(id(&stream), "first").await;
    let first = rx.poll_until(&stream, &checker, 1).await.remove(0);
    assert_verification(&first, "first");
    rx.verify_ok(id(&stream), "second").await;
    // POLL-08 combined: acknowledge the first while fetching the second.
    let sets = rx
        .poll_sets(
            &stream,
            json!({"ack": [first.jti], "returnImmediately": true}),
        )
        .await;
    assert_eq!(sets.len(), 1, "{sets:?}");
    let second = checker.check(&sets[0].1);
    assert_verification(&second, "second");
    assert_ne!(second.jti, first.jti);
    let rest = rx
        .poll_sets(
            &stream,
            json!({"ack": [second.jti], "returnImmediately": true}),
        )
        .await;
    assert!(rest.is_empty(), "{rest:?}");
    assert!(rx
        .poll_sets(&stream, json!({"returnImmediately": true}))
        .await
        .is_empty());
    let stats = server.store().delivery_stats(id(&stream)).await.unwrap();
    assert_eq!(stats.delivered, 2);
}

#[tokio::test]
async fn openid_ssf_transmitter_stream_verification_ack_only() {
    let server = verification_server().await;
    let rx = Rx::new(&server).await;
    let stream = rx.create_poll().await;
    let checker = rx.checker(&stream).await;
    rx.verify_ok(id(&stream), "ack-only").await;
    let set = rx.poll_until(&stream, &checker, 1).await.remove(0);
    assert_verification(&set, "ack-only");
    // POLL-08/09: acknowledge-only with maxEvents 0 and returnImmediately.
    let started = Instant::now();
    let acked = rx
        .poll(
            &stream,
            json!({"ack": [set.jti], "maxEvents": 0, "returnImmediately": true}),
        )
        .await
        .expect(200)
        .json();
    assert_eq!(acked["sets"], json!({}));
    assert!(started.elapsed() < Duration::from_secs(2));
    // RFC 8936 §2.4: once acknowledged the SET is not offered again.
    assert!(rx
        .poll_sets(&stream, json!({"returnImmediately": true}))
        .await
        .is_empty());
}

#[tokio::test]
async fn openid_ssf_transmitter_stream_verification_push() {
    let server = verification_server().await;
    let receiver = ReceiverDouble::start().await;
    let rx = Rx::new(&server).await;
    let stream = rx
        .create_push(&receiver.url, Some("Bearer push-secret"))
        .await;
    let checker = rx.checker(&stream).await;
    rx.verify_ok(id(&stream), "push-state").await;
    let pushed = receiver.wait_for(1, PROMPTLY).await;
    // PUSH-06 framing, SSF-DEL-04 the Authorization value verbatim.
    let set = checker.check_push(&pushed[0]);
    assert_verification(&set, "push-state");
    assert_eq!(
        pushed[0].header("authorization"),
        Some("Bearer push-secret")
    );
    assert_eq!(pushed[0].uri.path(), "/ssf/events");
    // Accepted with 202: delivered once.
    receiver.expect_quiet(1, Duration::from_secs(1)).await;
    let stats = server.store().delivery_stats(id(&stream)).await.unwrap();
    assert_eq!((stats.delivered, stats.failed), (1, 0));
}

#[tokio::test]
async fn openid_ssf_transmitter_stream_verification_push_no_auth() {
    let server = verification_server().await;
    let receiver = ReceiverDouble::start().await;
    let rx = Rx::new(&server).await;
    // SSF-DEL-04, AMBIG-4: no authorization_header ⇒ no Authorization header at all.
    let stream = rx.create_push(&receiver.url, None).await;
    let checker = rx.checker(&stream).await;
    rx.verify_ok(id(&stream), "no-auth").await;
    let pushed = receiver.wait_for(1, PROMPTLY).await;
    assert_verification(&checker.check_push(&pushed[0]), "no-auth");
    assert!(
        pushed[0].headers.get("authorization").is_none(),
        "{:?}",
        pushed[0].headers
    );
    // With one, exactly that value.
    let value = "Bearer abc.DEF-123 ~ with spaces";
    rx.json(
        Method::PATCH,
        "configuration_endpoint",
        json!({"stream_id": id(&stream),
            "delivery": {"method": PUSH, "endpoint_url": receiver.url, "authorization_header": value}}),
    )
    .await
    .expect(200);
    rx.verify_ok(id(&stream), "with-auth").await;
    let pushed = receiver.wait_for(2, PROMPTLY).await;
    assert_verification(&checker.check_push(&pushed[1]), "with-auth");
    assert_eq!(pushed[1].header("authorization"), Some(value));
}

#[tokio::test]
async fn openid_ssf_transmitter_stream_verification_set_errs() {
    let server = verification_server().await;
    let rx = Rx::new(&server).await;
    let stream = rx.create_poll().await;
    let checker = rx.checker(&stream).await;
    rx.verify_ok(id(&stream), "to-be-reported").await;
    let set = rx.poll_until(&stream, &checker, 1).await.remove(0);
    assert_verification(&set, "to-be-reported");
    // POLL-10/13: setErrs with maxEvents 0, Content-Language; 200 with empty sets.
    let url = stream["delivery"]["endpoint_url"].as_str().unwrap();
    let body = json!({"setErrs": {set.jti.clone(): {"err": "invalid_request",
        "description": "conformance harness: reported as invalid"}},
        "maxEvents": 0, "returnImmediately": true});
    let response = server
        .http
        .post(url)
        .bearer_auth(&rx.token)
        .header("content-language", "en")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let answer: Value = response.json().await.unwrap();
    assert_eq!(answer["sets"], json!({}));
    // The reported SET is not offered again, and is kept as rejected with its error.
    assert!(rx
        .poll_sets(&stream, json!({"returnImmediately": true}))
        .await
        .is_empty());
    let rejected = server
        .store()
        .outbox_entries(id(&stream), "rejected", 10)
        .await
        .unwrap();
    assert_eq!(rejected.len(), 1);
    assert_eq!(rejected[0].jti, set.jti);
    assert!(rejected[0]
        .last_error
        .as_deref()
        .is_some_and(|e| e.contains("invalid_request")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openid_ssf_transmitter_stream_verification_long_poll() {
    let server = TestServer::start_with(|c| {
        c.transmitter.min_verification_interval_secs = 0;
        c.transmitter.poll_max_wait_secs = 3;
    })
    .await;
    let rx = Rx::new(&server).await;
    let stream = rx.create_poll().await;
    let checker = rx.checker(&stream).await;

    // POLL-11: with nothing to deliver a long poll waits out its timeout, then answers {}.
    let started = Instant::now();
    let empty = rx.poll_sets(&stream, json!({})).await;
    let waited = started.elapsed();
    assert!(empty.is_empty());
    assert!(
        waited >= Duration::from_millis(2900) && waited < Duration::from_secs(6),
        "{waited:?}"
    );

    // … and answers as soon as a SET is available: a verification (the module's own case) …
    let set = long_poll_until(&rx, &stream, &checker, async {
        rx.verify_ok(id(&stream), "long-poll").await;
    })
    .await;
    assert_verification(&set, "long-poll");
    // … or an event submitted by the identity provider.
    rx.poll_sets(
        &stream,
        json!({"ack": [set.jti], "maxEvents": 0, "returnImmediately": true}),
    )
    .await;
    let idp = Idp::new(&server).await;
    let set = long_poll_until(&rx, &stream, &checker, async {
        idp.revoke("jane@example.com").await;
    })
    .await;
    assert_eq!(set.event_type, SESSION_REVOKED);
}

/// Starts a long poll (`returnImmediately: false`), checks that it waits, runs `trigger`,
/// and returns the one SET the poll answers with, asserting that it answered promptly: well
/// before the server's 3 s timeout (POLL-11).
async fn long_poll_until(
    rx: &Rx<'_>,
    stream: &Value,
    checker: &SetChecker,
    trigger: impl std::future::Future<Output = ()>,
) -> CheckedSet {
    let (http, url, token) = (
        rx.server.http.clone(),
        stream["delivery"]["endpoint_url"]
            .as_str()
            .unwrap()
            .to_owned(),
        rx.token.clone(),
    );
    let started = Instant::now();
    let waiting = tokio::spawn(async move {
        let answer: Value = http
            .post(url)
            .bearer_auth(token)
            .json(&json!({"returnImmediately": false}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        (answer, Instant::now())
    });
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert!(!waiting.is_finished(), "the long poll did not wait");
    let triggered = Instant::now();
    trigger.await;
    let (answer, answered) = waiting.await.unwrap();
    // started + 3 s (the timeout) is triggered + 2.2 s at the earliest.
    assert!(
        answered - triggered < Duration::from_secs(2),
        "answered {:?} after the event",
        answered - triggered
    );
    assert!(answered - started >= Duration::from_millis(800));
    let sets = answer["sets"].as_object().unwrap();
    assert_eq!(sets.len(), 1, "{answer}");
    let (jti, token) = sets.iter().next().unwrap();
    let set = checker.check(token.as_str().unwrap());
    assert_eq!(&set.jti, jti);
    set
}

#[tokio::test]
async fn openid_ssf_transmitter_stream_verification_invalid_body() {
    let server = verification_server().await;
    let rx = Rx::new(&server).await;
    let stream = rx.create_poll().await;
    let url = rx.endpoint("verification_endpoint");
    // SSF-VER-15: 400.
    for body in [
        "{not json".to_owned(),
        json!({"state": "no stream id"}).to_string(),
        json!({"stream_id": 42}).to_string(),
        json!({"stream_id": id(&stream), "state": {"not": "a string"}}).to_string(),
    ] {
        let answer = rx
            .call(Method::POST, &url, Some(&rx.token), Some(body.clone()))
            .await;
        assert_eq!(answer.status, 400, "{body}: {}", answer.text);
    }
    // Nothing was enqueued.
    assert!(rx
        .poll_sets(&stream, json!({"returnImmediately": true}))
        .await
        .is_empty());
}

#[tokio::test]
async fn openid_ssf_transmitter_stream_verification_invalid_token() {
    let server = verification_server().await;
    let rx = Rx::new(&server).await;
    let stream = rx.create_poll().await;
    let url = rx.endpoint("verification_endpoint");
    let body = json!({"stream_id": id(&stream), "state": "x"}).to_string();
    for token in invalid_tokens(&server).await {
        let answer = rx
            .call(Method::POST, &url, Some(&token), Some(body.clone()))
            .await
            .expect(401);
        answer.expect_bearer_challenge(Some("invalid_token"));
    }
    rx.call(Method::POST, &url, None, Some(body))
        .await
        .expect(401)
        .expect_bearer_challenge(None);
    assert!(rx
        .poll_sets(&stream, json!({"returnImmediately": true}))
        .await
        .is_empty());
}

#[tokio::test]
async fn openid_ssf_transmitter_stream_verification_unknown_stream() {
    let server = verification_server().await;
    let rx = Rx::new(&server).await;
    rx.create_poll().await;
    // SSF-VER-15: 404 for a stream this receiver does not have.
    rx.verify("no-such-stream", Some("x")).await.expect(404);
}

#[tokio::test]
async fn openid_ssf_transmitter_stream_verification_rate_limit() {
    let server =
        TestServer::start_with(|c| c.transmitter.min_verification_interval_secs = 30).await;
    let rx = Rx::new(&server).await;
    let stream = rx.create_poll().await;
    // SSF-CFG-06: the interval is advertised in the stream configuration.
    assert_eq!(stream["min_verification_interval"], 30);
    rx.verify_ok(id(&stream), "first").await;
    // SSF-VER-15: faster than min_verification_interval ⇒ 429, with Retry-After.
    let limited = rx.verify(id(&stream), Some("too soon")).await.expect(429);
    let retry_after: u64 = limited
        .header("retry-after")
        .expect("Retry-After")
        .parse()
        .expect("delay-seconds");
    assert!((1..=30).contains(&retry_after), "{retry_after}");
    let checker = rx.checker(&stream).await;
    let sets = rx.poll_until(&stream, &checker, 1).await;
    assert_eq!(sets.len(), 1);
    assert_verification(&sets[0], "first");
}

// ---------------------------------------------------------------------------------------------
// openid-ssf-transmitter-paused-stream-holds-events / -disabled-stream-drops-events
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Push,
    Poll,
}

/// The SETs a stream transmits, by its delivery method.
struct Delivered<'a> {
    rx: &'a Rx<'a>,
    stream: Value,
    checker: SetChecker,
    receiver: Option<ReceiverDouble>,
}

impl<'a> Delivered<'a> {
    async fn create(rx: &'a Rx<'a>, mode: Mode) -> Self {
        let (stream, receiver) = match mode {
            Mode::Push => {
                let receiver = ReceiverDouble::start().await;
                (rx.create_push(&receiver.url, None).await, Some(receiver))
            }
            Mode::Poll => (rx.create_poll().await, None),
        };
        let checker = rx.checker(&stream).await;
        Self {
            rx,
            stream,
            checker,
            receiver,
        }
    }

    fn id(&self) -> &str {
        id(&self.stream)
    }

    /// Asserts that nothing is transmitted during `window` (SSF-ST-07/08, SSF-ST-13).
    async fn expect_nothing(&self, already: usize, window: Duration) {
        match &self.receiver {
            Some(receiver) => receiver.expect_quiet(already, window).await,
            None => {
                let deadline = Instant::now() + window;
                while Instant::now() < deadline {
                    let sets = self
                        .rx
                        .poll_sets(&self.stream, json!({"returnImmediately": true}))
                        .await;
                    assert!(sets.is_empty(), "delivered while stopped: {sets:?}");
                    tokio::time::sleep(Duration::from_millis(250)).await;
                }
            }
        }
    }

    /// The next `n` SETs, checked; by push in arrival order, by poll acknowledged.
    async fn next(&self, already: usize, n: usize) -> Vec<CheckedSet> {
        match &self.receiver {
            Some(receiver) => {
                let requests = receiver.wait_for(already + n, PROMPTLY).await;
                requests[already..]
                    .iter()
                    .map(|r| self.checker.check_push(r))
                    .collect()
            }
            None => {
                let sets = self.rx.poll_until(&self.stream, &self.checker, n).await;
                let jtis: Vec<&str> = sets.iter().map(|s| s.jti.as_str()).collect();
                self.rx
                    .poll_sets(
                        &self.stream,
                        json!({"ack": jtis, "maxEvents": 0,
                        "returnImmediately": true}),
                    )
                    .await;
                sets
            }
        }
    }
}

async fn paused_stream_holds_events(mode: Mode) {
    let server = verification_server().await;
    let rx = Rx::new(&server).await;
    let idp = Idp::new(&server).await;
    let stream = Delivered::create(&rx, mode).await;
    assert_eq!(rx.status(stream.id()).await.json()["status"], "enabled");
    rx.set_status(stream.id(), "paused").await;
    assert_eq!(rx.status(stream.id()).await.json()["status"], "paused");

    // Events for one principal, and a verification, while paused: accepted and held.
    let jane = json!({"format": "email", "email": "jane@example.com"});
    let mut held = Vec::new();
    for (event_type, payload) in [
        (SESSION_REVOKED, json!({"reason_admin": {"en": "first"}})),
        (
            CREDENTIAL_CHANGE,
            json!({"credential_type": "password", "change_type": "update"}),
        ),
        (
            DEVICE_COMPLIANCE_CHANGE,
            json!({"previous_status": "compliant", "current_status": "not-compliant"}),
        ),
    ] {
        let intake = idp.emit(jane.clone(), event_type, payload).await;
        held.push(jti_for(&intake, &stream.stream).expect("held for the paused stream"));
    }
    rx.verify_ok(stream.id(), "held-verification").await;

    // SSF-ST-07: MUST NOT transmit while paused.
    stream.expect_nothing(0, OBSERVE).await;

    // SSF-ST-07: SHOULD transmit held events once enabled; MUST keep the generation order
    // of one principal's events.
    rx.set_status(stream.id(), "enabled").await;
    let delivered = stream.next(0, 4).await;
    let verification: Vec<&CheckedSet> = delivered
        .iter()
        .filter(|s| s.event_type == VERIFICATION)
        .collect();
    assert_eq!(verification.len(), 1);
    assert_verification(verification[0], "held-verification");
    let janes: Vec<&str> = delivered
        .iter()
        .filter(|s| s.event_type != VERIFICATION)
        .map(|s| s.jti.as_str())
        .collect();
    if mode == Mode::Push {
        assert_eq!(janes, held, "held events out of order");
    } else {
        // A poll response is a JSON object: no order to check, only completeness.
        assert_eq!(
            janes.iter().copied().collect::<BTreeSet<_>>(),
            held.iter().map(String::as_str).collect::<BTreeSet<_>>()
        );
    }
    stream.expect_nothing(4, Duration::from_millis(500)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openid_ssf_transmitter_paused_stream_holds_events_push() {
    paused_stream_holds_events(Mode::Push).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openid_ssf_transmitter_paused_stream_holds_events_poll() {
    paused_stream_holds_events(Mode::Poll).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openid_ssf_transmitter_paused_stream_holds_events_claimed_for_push() {
    // A SET already claimed by the push worker when the stream is paused is held like the
    // rest, and sent once the stream is enabled again (SSF-ST-07), not stuck until its claim
    // lapses.
    let server = TestServer::start_with(|c| c.transmitter.push_concurrency_per_stream = 1).await;
    let receiver = ReceiverDouble::start().await;
    receiver.script([Reply::status(202).after(Duration::from_millis(1500))]);
    let rx = Rx::new(&server).await;
    let idp = Idp::new(&server).await;
    let stream = rx.create_push(&receiver.url, None).await;
    let checker = rx.checker(&stream).await;

    let in_flight = jti_for(&idp.revoke("first@example.com").await, &stream).unwrap();
    receiver.wait_for(1, PROMPTLY).await;
    // The second waits in the stream's lane behind the first, already claimed.
    let queued = jti_for(&idp.revoke("second@example.com").await, &stream).unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    rx.set_status(id(&stream), "paused").await;
    let later = jti_for(&idp.revoke("third@example.com").await, &stream).unwrap();
    // The first completes; nothing else is sent while paused.
    receiver.expect_quiet(1, OBSERVE).await;

    rx.set_status(id(&stream), "enabled").await;
    let requests = receiver.wait_for(3, Duration::from_secs(5)).await;
    let jtis: Vec<String> = requests.iter().map(|r| checker.check_push(r).jti).collect();
    assert_eq!(jtis, [in_flight, queued, later]);
}

async fn disabled_stream_drops_events(mode: Mode) {
    let server = verification_server().await;
    let rx = Rx::new(&server).await;
    let idp = Idp::new(&server).await;
    let stream = Delivered::create(&rx, mode).await;

    // Held while paused, then dropped by the disable (SSF-ST-08: nothing is held for later).
    rx.set_status(stream.id(), "paused").await;
    let held = jti_for(&idp.revoke("jane@example.com").await, &stream.stream).expect("held");
    rx.set_status(stream.id(), "disabled").await;
    assert_eq!(rx.status(stream.id()).await.json()["status"], "disabled");
    // Events while disabled are not even taken.
    let dropped = idp.revoke("jane@example.com").await;
    assert_eq!(jti_for(&dropped, &stream.stream), None);
    // A verification requested while disabled is refused or, if accepted, never sent
    // (SSF-VER-16, AMBIG-11).
    let verification = rx.verify(stream.id(), Some("while-disabled")).await;
    assert!(
        verification.status == 400 || verification.status == 204,
        "{} {}",
        verification.status,
        verification.text
    );
    stream.expect_nothing(0, OBSERVE).await;

    // Enabled again: nothing from the disabled period arrives, new events do.
    rx.set_status(stream.id(), "enabled").await;
    stream.expect_nothing(0, Duration::from_secs(1)).await;
    let fresh = jti_for(&idp.revoke("jane@example.com").await, &stream.stream).expect("enabled");
    rx.verify_ok(stream.id(), "after-enable").await;
    let delivered = stream.next(0, 2).await;
    let jtis: BTreeSet<&str> = delivered.iter().map(|s| s.jti.as_str()).collect();
    assert!(jtis.contains(fresh.as_str()), "{jtis:?}");
    assert!(!jtis.contains(held.as_str()));
    let verification: Vec<&CheckedSet> = delivered
        .iter()
        .filter(|s| s.event_type == VERIFICATION)
        .collect();
    assert_eq!(verification.len(), 1);
    assert_verification(verification[0], "after-enable");
    stream.expect_nothing(2, Duration::from_millis(500)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openid_ssf_transmitter_disabled_stream_drops_events_push() {
    disabled_stream_drops_events(Mode::Push).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openid_ssf_transmitter_disabled_stream_drops_events_poll() {
    disabled_stream_drops_events(Mode::Poll).await;
}

// ---------------------------------------------------------------------------------------------
// openid-ssf-transmitter-stream-caep-interop
// ---------------------------------------------------------------------------------------------

async fn caep_interop(mode: Mode) {
    let server = verification_server().await;
    let rx = Rx::new(&server).await;
    let idp = Idp::new(&server).await;
    let requested = json!([SESSION_REVOKED, CREDENTIAL_CHANGE, DEVICE_COMPLIANCE_CHANGE]);
    let receiver = match mode {
        Mode::Push => Some(ReceiverDouble::start().await),
        Mode::Poll => None,
    };
    let delivery = match &receiver {
        Some(receiver) => json!({"method": PUSH, "endpoint_url": receiver.url}),
        None => json!({"method": POLL}),
    };
    // IOP-T-08/09: create, read the configuration, read the status, verify.
    let config = rx
        .create(json!({"events_requested": requested, "delivery": delivery}))
        .await;
    check_stream(&rx.metadata, &config, Some(&requested));
    assert_eq!(
        string_set(&config["events_delivered"]),
        string_set(&requested)
    );
    assert_eq!(rx.read(id(&config)).await.expect(200).json(), config);
    assert_eq!(
        rx.status(id(&config)).await.expect(200).json()["status"],
        "enabled"
    );
    let stream = Delivered {
        rx: &rx,
        checker: rx.checker(&config).await,
        stream: config.clone(),
        receiver,
    };
    rx.verify_ok(stream.id(), "caep-interop").await;
    let verification = stream.next(0, 1).await.remove(0);
    assert_verification(&verification, "caep-interop");

    // The three CAEP Interop use cases, triggered on the transmitter side.
    let now = server.state.clock.now();
    let submitted = [
        (
            SESSION_REVOKED,
            json!({"format": "email", "email": "jane.smith@example.com"}),
            json!({"event_timestamp": now, "initiating_entity": "policy",
                "reason_admin": {"en": "Landspeed Policy Violation: C076E82F"},
                "reason_user": {"en": "Access attempt from multiple regions.",
                    "es-410": "Intento de acceso desde varias regiones."}}),
        ),
        (
            CREDENTIAL_CHANGE,
            json!({"format": "iss_sub", "iss": "https://idp.example.com/3456789/", "sub": "jane.smith"}),
            json!({"event_timestamp": now, "initiating_entity": "user",
                "credential_type": "fido2-roaming", "change_type": "create",
                "friendly_name": "Jane's USB authenticator",
                "fido2_aaguid": "accced6a-63f5-490a-9eea-e59bc1896cfc",
                "reason_admin": {"en": "User self-enrollment"}}),
        ),
        (
            DEVICE_COMPLIANCE_CHANGE,
            json!({"format": "complex",
                "device": {"format": "iss_sub", "iss": "https://idp.example.com/123456789/", "sub": "e9297990-14d2-42ec-a4a9-4036db86509a"},
                "tenant": {"format": "opaque", "id": "123456789"}}),
            json!({"event_timestamp": now, "initiating_entity": "policy",
                "previous_status": "compliant", "current_status": "not-compliant",
                "reason_admin": {"en": "Location Policy Violation: C076E8A3"}}),
        ),
    ];
    let mut expected = Vec::new();
    for (event_type, sub_id, payload) in &submitted {
        let intake = idp.emit(sub_id.clone(), event_type, payload.clone()).await;
        let jti = jti_for(&intake, &config).expect("a SET for the stream");
        expected.push((jti, intake["txn"].as_str().unwrap().to_owned()));
    }
    // Not requested ⇒ not delivered (SSF-CFG-05).
    let unrequested = idp
        .emit(
            json!({"format": "email", "email": "jane.smith@example.com"}),
            RISK_LEVEL_CHANGE,
            json!({"principal": "USER", "current_level": "HIGH"}),
        )
        .await;
    assert_eq!(jti_for(&unrequested, &config), None);

    let received = stream.next(1, 3).await;
    assert_eq!(received.len(), 3);
    for ((event_type, sub_id, payload), (jti, txn)) in submitted.iter().zip(&expected) {
        let set = received
            .iter()
            .find(|s| &s.jti == jti)
            .unwrap_or_else(|| panic!("{event_type} not received"));
        // CAEP 1.0 per event: the type, the subject and every payload field as submitted.
        assert_eq!(&set.event_type, event_type);
        assert_eq!(&set.claims["sub_id"], sub_id);
        assert_eq!(&set.event, payload);
        // IOP-UC-01/02, AMBIG-21: reason_admin a non-empty language map.
        let reason = set.event["reason_admin"].as_object().unwrap();
        assert!(
            !reason.is_empty()
                && reason
                    .values()
                    .all(|v| v.as_str().is_some_and(|t| !t.is_empty()))
        );
        // CAEP-C-01, AMBIG-14: event_timestamp in seconds.
        assert!(set.event["event_timestamp"].as_i64().unwrap() < 100_000_000_000);
        // SSF-SET-11/12: one txn per underlying event, a string.
        assert_eq!(set.claims["txn"], txn.as_str());
    }
    stream.expect_nothing(4, Duration::from_millis(500)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openid_ssf_transmitter_stream_caep_interop_push() {
    caep_interop(Mode::Push).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openid_ssf_transmitter_stream_caep_interop_poll() {
    caep_interop(Mode::Poll).await;
}

// ---------------------------------------------------------------------------------------------
// RFC 8936 poll requests
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn rfc8936_poll_honours_max_events_and_refuses_invalid_requests() {
    let server = TestServer::start().await;
    let rx = Rx::new(&server).await;
    let idp = Idp::new(&server).await;
    let stream = rx.create_poll().await;
    let checker = rx.checker(&stream).await;
    let mut emitted = BTreeSet::new();
    for user in ["a", "b", "c"] {
        let intake = idp.revoke(&format!("{user}@example.com")).await;
        emitted.insert(jti_for(&intake, &stream).unwrap());
    }
    // POLL-05: no more than maxEvents; moreAvailable says the rest waits (RFC 8936 §2.5).
    let first = rx
        .poll(&stream, json!({"maxEvents": 2, "returnImmediately": true}))
        .await
        .expect(200)
        .json();
    let sets = first["sets"].as_object().unwrap();
    assert_eq!(sets.len(), 2, "{first}");
    assert_eq!(first["moreAvailable"], true);
    let acked: Vec<String> = sets
        .iter()
        .map(|(jti, set)| {
            assert_eq!(&checker.check(set.as_str().unwrap()).jti, jti);
            jti.clone()
        })
        .collect();
    let rest = rx
        .poll(&stream, json!({"ack": acked, "returnImmediately": true}))
        .await
        .expect(200)
        .json();
    let last: Vec<&String> = rest["sets"].as_object().unwrap().keys().collect();
    assert_eq!(last.len(), 1, "{rest}");
    assert_ne!(rest["moreAvailable"], true);
    let mut seen: BTreeSet<String> = acked.iter().cloned().collect();
    seen.insert(last[0].clone());
    assert_eq!(seen, emitted);

    // POLL-12: an invalid poll request is a 400, and changes nothing.
    let url = stream["delivery"]["endpoint_url"].as_str().unwrap();
    for body in [
        "{not json",
        r#"{"maxEvents": "two"}"#,
        r#"{"maxEvents": -1}"#,
        r#"{"returnImmediately": "yes"}"#,
        r#"{"ack": "not-an-array"}"#,
        r#"{"setErrs": {"jti": "not-an-object"}}"#,
    ] {
        let answer = rx
            .call(Method::POST, url, Some(&rx.token), Some(body.to_owned()))
            .await;
        assert_eq!(answer.status, 400, "{body}: {}", answer.text);
    }
    assert_eq!(
        rx.poll_sets(&stream, json!({"returnImmediately": true}))
            .await
            .len(),
        1
    );
}

// ---------------------------------------------------------------------------------------------
// Push delivery failures (RFC 8935 §2.3, §4)
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_retries_after_503_and_honours_retry_after() {
    let server = TestServer::start_with(|c| {
        c.transmitter.retry_initial_secs = 1;
        c.transmitter.retry_max_secs = 5;
    })
    .await;
    let receiver = ReceiverDouble::start().await;
    receiver.script([
        Reply::status(503),
        Reply::status(503).header("retry-after", "4"),
    ]);
    let rx = Rx::new(&server).await;
    let idp = Idp::new(&server).await;
    let stream = rx.create_push(&receiver.url, None).await;
    let checker = rx.checker(&stream).await;
    let jti = jti_for(&idp.revoke("jane@example.com").await, &stream).unwrap();

    let requests = receiver.wait_for(3, Duration::from_secs(15)).await;
    // PUSH-04/05: the same SET again after a recoverable failure.
    for request in &requests {
        assert_eq!(checker.check_push(request).jti, jti);
        assert_eq!(request.body, requests[0].body);
    }
    // PUSH-05: a retry after a short back-off (retry_initial_secs = 1) …
    let first_gap = requests[1].at - requests[0].at;
    assert!(first_gap < Duration::from_secs(3), "{first_gap:?}");
    // … and the receiver's Retry-After (4 s) as the floor of the next delay.
    let second_gap = requests[2].at - requests[1].at;
    assert!(second_gap >= Duration::from_secs(3), "{second_gap:?}");
    // 202: delivered, not sent again.
    receiver.expect_quiet(3, Duration::from_millis(1500)).await;
    let stats = wait_for_stats(&server, id(&stream), "delivered", |s| s.delivered == 1).await;
    assert_eq!((stats.failed, stats.dead), (2, 0));
    assert!(stats
        .last_error
        .as_deref()
        .is_some_and(|e| e.contains("503")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_retries_after_network_failure() {
    let server = TestServer::start().await;
    // A port nobody listens on: the receiver is down.
    let address = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let rx = Rx::new(&server).await;
    let idp = Idp::new(&server).await;
    let url = format!("http://{address}/ssf/events");
    let stream = rx.create_push(&url, None).await;
    let checker = rx.checker(&stream).await;
    let jti = jti_for(&idp.revoke("jane@example.com").await, &stream).unwrap();
    let stats = wait_for_stats(&server, id(&stream), "a failed attempt", |s| s.failed >= 1).await;
    assert_eq!((stats.delivered, stats.dead), (0, 0));
    assert!(
        stats
            .last_error
            .as_deref()
            .is_some_and(|e| e.contains("request failed")),
        "{stats:?}"
    );

    // The receiver comes up: the SET arrives on a retry (PUSH-05).
    let receiver = ReceiverDouble::start_on(address).await;
    let requests = receiver.wait_for(1, PROMPTLY).await;
    assert_eq!(checker.check_push(&requests[0]).jti, jti);
    wait_for_stats(&server, id(&stream), "delivered", |s| s.delivered == 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_error_response_is_recorded_and_dead_lettered() {
    let server = TestServer::start().await;
    let receiver = ReceiverDouble::start().await;
    // RFC 8935 §2.3 / PUSH-10/12: 400 with {err, description}.
    receiver.script([Reply::set_error(
        "invalid_key",
        "Key ID 12345 has been revoked.",
    )]);
    let rx = Rx::new(&server).await;
    let idp = Idp::new(&server).await;
    let stream = rx.create_push(&receiver.url, None).await;
    let checker = rx.checker(&stream).await;
    let rejected = jti_for(&idp.revoke("jane@example.com").await, &stream).unwrap();
    let requests = receiver.wait_for(1, PROMPTLY).await;
    assert_eq!(checker.check_push(&requests[0]).jti, rejected);

    let stats = wait_for_stats(&server, id(&stream), "dead-lettered", |s| s.dead == 1).await;
    assert!(
        stats
            .last_error
            .as_deref()
            .is_some_and(|e| e.contains("invalid_key")),
        "{stats:?}"
    );
    let dead = server
        .store()
        .outbox_entries(id(&stream), "dead", 10)
        .await
        .unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].jti, rejected);
    // PUSH-05/14: not retried (retry_max_secs is 2 in tests).
    receiver.expect_quiet(1, Duration::from_secs(3)).await;
    // The stream goes on with the next SET.
    let next = jti_for(&idp.revoke("jane@example.com").await, &stream).unwrap();
    let requests = receiver.wait_for(2, PROMPTLY).await;
    assert_eq!(checker.check_push(&requests[1]).jti, next);
}

// ---------------------------------------------------------------------------------------------
// Event intake (POST /events)
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn events_intake_rejects_an_invalid_payload_naming_the_field() {
    let server = TestServer::start().await;
    let rx = Rx::new(&server).await;
    let idp = Idp::new(&server).await;
    let stream = rx.create_poll().await;
    let jane = json!({"format": "email", "email": "jane@example.com"});
    for (body, field) in [
        (
            json!({"sub_id": jane, "events": {CREDENTIAL_CHANGE: {"credential_type": "password"}}}),
            "change_type",
        ),
        (
            json!({"sub_id": jane, "events": {DEVICE_COMPLIANCE_CHANGE:
                {"previous_status": "compliant", "current_status": "broken"}}}),
            "current_status",
        ),
        (
            json!({"sub_id": jane, "events": {SESSION_REVOKED: {"reason_admin": {}}}}),
            "reason_admin",
        ),
        (
            json!({"sub_id": jane, "events": {SESSION_REVOKED: {"initiating_entity": "robot"}}}),
            "initiating_entity",
        ),
        (json!({"events": {SESSION_REVOKED: {}}}), "sub_id"),
        (
            json!({"sub_id": {"format": "email"}, "events": {SESSION_REVOKED: {}}}),
            "email",
        ),
        (
            json!({"sub_id": jane, "events": {SESSION_REVOKED: {},
                CREDENTIAL_CHANGE: {"credential_type": "pin", "change_type": "delete"}}}),
            "events",
        ),
        (
            json!({"sub_id": jane, "events": {VERIFICATION: {"state": "forged"}}}),
            "events",
        ),
        (
            json!({"sub_id": jane, "events": {SESSION_REVOKED: {}}, "iss": "https://evil.example"}),
            "iss",
        ),
    ] {
        let answer = idp.post(Some(&idp.credential), &body.to_string()).await;
        assert_eq!(answer.status, 400, "{body}: {}", answer.text);
        assert!(
            answer.text.contains(field),
            "{field} not named: {}",
            answer.text
        );
    }
    // Nothing was created.
    assert!(rx
        .poll_sets(&stream, json!({"returnImmediately": true}))
        .await
        .is_empty());
    assert!(server
        .store()
        .pending_sets(id(&stream), 10)
        .await
        .unwrap()
        .is_empty());
}

#[tokio::test]
async fn events_intake_refuses_a_receiver_token() {
    let server = TestServer::start().await;
    let rx = Rx::new(&server).await;
    let idp = Idp::new(&server).await;
    let stream = rx.create_poll().await;
    let body = json!({"sub_id": {"format": "email", "email": "jane@example.com"},
        "events": {SESSION_REVOKED: {}}})
    .to_string();
    // A receiver may not publish events: 401, as without any credential.
    let answer = idp.post(Some(&rx.token), &body).await.expect(401);
    answer.expect_bearer_challenge(Some("invalid_token"));
    idp.post(None, &body).await.expect(401);
    assert!(server
        .store()
        .pending_sets(id(&stream), 10)
        .await
        .unwrap()
        .is_empty());
    // Nor may a publisher manage streams.
    rx.call(
        Method::GET,
        &rx.endpoint("configuration_endpoint"),
        Some(&idp.credential),
        None,
    )
    .await
    .expect(401);
    // The publisher's own request goes through.
    assert!(jti_for(&idp.revoke("jane@example.com").await, &stream).is_some());
}
