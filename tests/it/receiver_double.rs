//! The receiver side of the conformance harness: a real RFC 8935 push receiver on
//! 127.0.0.1 that records every request and answers as scripted, and a SET checker that
//! validates each SET the way the OIDF conformance suite does (signature via the advertised
//! `jwks_uri`, envelope, profile, event payload).

#![allow(dead_code)] // not every test uses every helper

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Router;
use serde_json::Value;
use ssfd::clock::Clock;
use ssfd::jose::{peek_unverified, Algorithm, SetVerifier};
use ssfd::protocol::SecurityEventToken;
use tokio::sync::{oneshot, watch};

/// One request the receiver got.
#[derive(Debug, Clone)]
pub struct Recorded {
    /// When it arrived.
    pub at: Instant,
    /// Its method.
    pub method: Method,
    /// Its path and query.
    pub uri: Uri,
    /// Its headers.
    pub headers: HeaderMap,
    /// Its body, as text.
    pub body: String,
}

impl Recorded {
    /// A header's value as text, if present.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// A scripted answer.
#[derive(Debug, Clone)]
pub struct Reply {
    /// The status code.
    pub status: u16,
    /// Extra response headers.
    pub headers: Vec<(&'static str, String)>,
    /// The body.
    pub body: String,
    /// How long to wait before answering.
    pub delay: Duration,
}

impl Reply {
    /// A bare status with an empty body.
    pub fn status(status: u16) -> Self {
        Self {
            status,
            headers: Vec::new(),
            body: String::new(),
            delay: Duration::ZERO,
        }
    }

    /// Adds a response header.
    pub fn header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }

    /// Sets the body.
    pub fn body(mut self, body: impl Into<String>) -> Self {
        self.body = body.into();
        self
    }

    /// Answers only after `delay`.
    pub fn after(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }

    /// An RFC 8935 §2.3 error answer: 400, JSON `{err, description}`, `Content-Language`.
    pub fn set_error(err: &str, description: &str) -> Self {
        Self::status(400)
            .header("content-type", "application/json")
            .header("content-language", "en")
            .body(serde_json::json!({"err": err, "description": description}).to_string())
    }
}

struct Inner {
    requests: Mutex<Vec<Recorded>>,
    script: Mutex<VecDeque<Reply>>,
    count: watch::Sender<usize>,
}

/// A push receiver on 127.0.0.1. Answers every request with the next scripted [`Reply`], or
/// `202 Accepted` with an empty body (PUSH-08) once the script is exhausted.
pub struct ReceiverDouble {
    /// The URL to give ssfd as the push `endpoint_url`.
    pub url: String,
    /// Where it listens.
    pub address: SocketAddr,
    inner: Arc<Inner>,
    shutdown: Option<oneshot::Sender<()>>,
}

impl ReceiverDouble {
    /// A receiver on a free port.
    pub async fn start() -> Self {
        Self::start_on("127.0.0.1:0".parse().unwrap()).await
    }

    /// A receiver on `address` (to bring a receiver "back up" on a port ssfd already knows).
    pub async fn start_on(address: SocketAddr) -> Self {
        let listener = tokio::net::TcpListener::bind(address).await.unwrap();
        let address = listener.local_addr().unwrap();
        let inner = Arc::new(Inner {
            requests: Mutex::new(Vec::new()),
            script: Mutex::new(VecDeque::new()),
            count: watch::channel(0).0,
        });
        let app = Router::new().fallback(record).with_state(inner.clone());
        let (tx, rx) = oneshot::channel::<()>();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = rx.await;
                })
                .await;
        });
        Self {
            url: format!("http://{address}/ssf/events"),
            address,
            inner,
            shutdown: Some(tx),
        }
    }

    /// Queues answers for the next requests, in order.
    pub fn script(&self, replies: impl IntoIterator<Item = Reply>) {
        self.inner.script.lock().unwrap().extend(replies);
    }

    /// Every request so far.
    pub fn requests(&self) -> Vec<Recorded> {
        self.inner.requests.lock().unwrap().clone()
    }

    /// Waits until at least `n` requests arrived; panics after `timeout`.
    pub async fn wait_for(&self, n: usize, timeout: Duration) -> Vec<Recorded> {
        let mut count = self.inner.count.subscribe();
        let arrived = tokio::time::timeout(timeout, count.wait_for(|c| *c >= n)).await;
        let requests = self.requests();
        assert!(
            arrived.is_ok(),
            "the receiver expected {n} request(s) within {timeout:?} but got {}: {:#?}",
            requests.len(),
            requests
        );
        requests
    }

    /// Asserts that no request beyond the first `expected` arrives during `window`.
    pub async fn expect_quiet(&self, expected: usize, window: Duration) {
        let mut count = self.inner.count.subscribe();
        let more = tokio::time::timeout(window, count.wait_for(|c| *c > expected)).await;
        let requests = self.requests();
        assert!(
            more.is_err() && requests.len() == expected,
            "expected exactly {expected} request(s), got {}: {:#?}",
            requests.len(),
            requests
        );
    }
}

impl Drop for ReceiverDouble {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

async fn record(
    State(inner): State<Arc<Inner>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let recorded = Recorded {
        at: Instant::now(),
        method,
        uri,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    };
    let reply = inner.script.lock().unwrap().pop_front();
    {
        let mut requests = inner.requests.lock().unwrap();
        requests.push(recorded);
        inner.count.send_replace(requests.len());
    }
    let reply = reply.unwrap_or_else(|| Reply::status(202));
    if !reply.delay.is_zero() {
        tokio::time::sleep(reply.delay).await;
    }
    let mut response = (StatusCode::from_u16(reply.status).unwrap(), reply.body).into_response();
    for (name, value) in reply.headers {
        response
            .headers_mut()
            .insert(name, value.parse().expect("a valid header value"));
    }
    response
}

/// A SET that passed every check of [`SetChecker::check`].
#[derive(Debug, Clone)]
pub struct CheckedSet {
    /// The compact token as received.
    pub token: String,
    /// Its `jti`.
    pub jti: String,
    /// Its claims, as JSON.
    pub claims: Value,
    /// Its claims, parsed by the typed model (CAEP/RISC/SSF payload validation).
    pub set: SecurityEventToken,
    /// The one event's type URI.
    pub event_type: String,
    /// The one event's payload.
    pub event: Value,
}

impl CheckedSet {
    /// The `state` of a verification event.
    pub fn state(&self) -> Option<&str> {
        self.event.get("state").and_then(Value::as_str)
    }
}

/// The SSF event-type URI of verification events.
pub const VERIFICATION: &str = "https://schemas.openid.net/secevent/ssf/event-type/verification";
/// The SSF event-type URI of stream-updated events.
pub const STREAM_UPDATED: &str =
    "https://schemas.openid.net/secevent/ssf/event-type/stream-updated";

/// Validates SETs of one stream as a receiver (and the conformance suite) would.
pub struct SetChecker {
    verifier: SetVerifier,
    issuer: String,
    stream_id: String,
    stream_aud: Vec<String>,
    clock: Arc<dyn Clock>,
}

impl SetChecker {
    /// A checker for the stream `stream` (its configuration as the transmitter returned it),
    /// with the keys of the `jwks_uri` advertised in `metadata` (SSF-SET-04). Only RS256 is
    /// accepted (IOP-SIG-01) and `typ` must be exactly `secevent+jwt` (SSF-SET-01).
    pub async fn new(
        http: &reqwest::Client,
        metadata: &Value,
        stream: &Value,
        clock: Arc<dyn Clock>,
    ) -> Self {
        let jwks_uri = metadata["jwks_uri"].as_str().expect("jwks_uri (SSF-MD-03)");
        let jwks: Value = http
            .get(jwks_uri)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let issuer = metadata["issuer"].as_str().unwrap().to_owned();
        // SSF-SET-06: the stream's iss is the metadata's issuer and the SETs' iss.
        assert_eq!(stream["iss"], metadata["issuer"], "{stream}");
        let stream_aud: Vec<String> = match &stream["aud"] {
            Value::String(one) => vec![one.clone()],
            Value::Array(many) => many
                .iter()
                .map(|a| a.as_str().expect("aud entries are strings").to_owned())
                .collect(),
            other => panic!("aud must be a string or an array of strings: {other}"),
        };
        let verifier = SetVerifier::builder(&issuer, &stream_aud[0], &jwks, clock.clone())
            .strict_typ()
            .allowed_algorithms([Algorithm::Rs256])
            .max_clock_skew(0)
            .build()
            .unwrap();
        Self {
            verifier,
            issuer,
            stream_id: stream["stream_id"].as_str().unwrap().to_owned(),
            stream_aud,
            clock,
        }
    }

    /// Checks one SET; panics naming the broken rule.
    pub fn check(&self, token: &str) -> CheckedSet {
        let (header, _) = peek_unverified(token).expect("a compact JWS");
        // IOP-SIG-01: RS256; SSF-SET-01: explicit typing.
        assert_eq!(header.get("alg"), Some(&Value::from("RS256")), "{header:?}");
        assert_eq!(
            header.get("typ"),
            Some(&Value::from("secevent+jwt")),
            "{header:?}"
        );
        assert!(
            header.get("kid").is_some_and(Value::is_string),
            "{header:?}"
        );
        // Signature against the advertised JWKS, typ, iss (SSF-SET-06), aud, iat not in the
        // future, no sub (SSF-SET-02), no exp (SSF-SET-03), jti (SET-06), events (SET-02).
        let verified = self
            .verifier
            .verify(token)
            .unwrap_or_else(|e| panic!("SET rejected: {e}: {token}"));
        let claims = Value::Object(verified.claims.clone());
        assert_eq!(claims["iss"], self.issuer.as_str());
        // The SET's aud is within the stream's aud (SSF-SET-08/09).
        let aud: Vec<&str> = match &claims["aud"] {
            Value::String(one) => vec![one.as_str()],
            Value::Array(many) => many.iter().map(|a| a.as_str().unwrap()).collect(),
            other => panic!("aud must be a string or an array: {other}"),
        };
        assert!(
            aud.iter().all(|a| self.stream_aud.iter().any(|s| s == a)),
            "aud {aud:?} is not within the stream's {:?}",
            self.stream_aud
        );
        // SET-05: iat is an integer NumericDate, not in the future.
        let iat = claims["iat"].as_i64().expect("iat is an integer");
        assert!(iat <= self.clock.now(), "iat {iat} is in the future");
        assert!(claims.get("sub").is_none() && claims.get("exp").is_none());
        // SSF-SET-12 / SET-11: txn, when present, is a string.
        if let Some(txn) = claims.get("txn") {
            assert!(txn.as_str().is_some_and(|t| !t.is_empty()), "txn: {txn}");
        }
        // Typed parse: every known event's payload is checked against CAEP 1.0 / RISC 1.0 /
        // SSF 1.0, naming the field on error.
        let payload = serde_json::to_string(&claims).unwrap();
        let set = SecurityEventToken::from_json(&payload)
            .unwrap_or_else(|e| panic!("invalid SET claims: {e}: {payload}"));
        // SSF-SUB-02 sub_id present; IOP-SET-01 / SSF-SET-13 exactly one event.
        set.check_ssf_profile(true)
            .unwrap_or_else(|e| panic!("{e}: {payload}"));
        let events = claims["events"].as_object().unwrap();
        let (event_type, event) = events.iter().next().unwrap();
        assert!(
            event.is_object(),
            "SET-01: an event payload is a JSON object"
        );
        if event_type == VERIFICATION || event_type == STREAM_UPDATED {
            // SSF-VER-05 / SSF-UPD-06: the subject is the stream itself.
            assert_eq!(
                claims["sub_id"],
                serde_json::json!({"format": "opaque", "id": self.stream_id}),
                "{payload}"
            );
        }
        CheckedSet {
            token: token.to_owned(),
            jti: verified.jti().to_owned(),
            claims: claims.clone(),
            set,
            event_type: event_type.clone(),
            event: event.clone(),
        }
    }

    /// Checks a pushed request: RFC 8935 §2.1 framing (PUSH-06), then the SET.
    pub fn check_push(&self, request: &Recorded) -> CheckedSet {
        assert_eq!(request.method, Method::POST, "PUSH-06: {request:?}");
        assert_eq!(
            request.header("content-type"),
            Some("application/secevent+jwt"),
            "PUSH-06: {request:?}"
        );
        assert_eq!(
            request.header("accept"),
            Some("application/json"),
            "PUSH-06: {request:?}"
        );
        self.check(request.body.trim())
    }
}
