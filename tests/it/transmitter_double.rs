//! A scripted SSF transmitter and authorization server on 127.0.0.1, for the receiver
//! conformance harness: metadata, JWKS, a client-credentials token endpoint with short-lived
//! tokens, stream management, status, subjects, verification and a poll endpoint. It records
//! every request ssfd makes and signs (or tampers with) the SETs the tests send.

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};
use ssfd::jose::{self, Algorithm, KeyRing};

/// One request ssfd made.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: Method,
    pub path: String,
    pub body: Value,
}

#[derive(Default)]
pub struct Script {
    /// Answer stream creation with a foreign `iss` (SSF 1.0 §8.1.1.1).
    pub foreign_iss: bool,
    /// Lifetime of issued tokens, seconds.
    pub token_lifetime: i64,
    /// Tokens that are accepted.
    pub valid_tokens: HashSet<String>,
    pub tokens_issued: usize,
    pub seen: Vec<Seen>,
    pub streams: BTreeMap<String, Value>,
    /// Per stream: SETs offered to polls, by jti.
    pub queued: BTreeMap<String, BTreeMap<String, String>>,
    pub acks: Vec<String>,
    pub set_errs: BTreeMap<String, Value>,
    pub verification_states: Vec<Option<String>>,
}

#[derive(Clone)]
pub struct TransmitterDouble {
    pub base: String,
    pub keys: Arc<KeyRing>,
    pub script: Arc<Mutex<Script>>,
    http: reqwest::Client,
}

type Shared = Arc<(String, Arc<Mutex<Script>>, Arc<KeyRing>)>;

impl TransmitterDouble {
    pub async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let keys = Arc::new(
            KeyRing::new(
                vec![jose::generate(&Algorithm::Rs256, Some("double-1"), 0).unwrap()],
                1,
            )
            .unwrap(),
        );
        let script = Arc::new(Mutex::new(Script {
            token_lifetime: 300,
            ..Script::default()
        }));
        let shared: Shared = Arc::new((base.clone(), script.clone(), keys.clone()));
        let app = Router::new()
            .route("/.well-known/ssf-configuration", get(metadata))
            .route("/jwks", get(jwks))
            .route("/token", post(token))
            .route(
                "/streams",
                get(read)
                    .post(create)
                    .patch(update)
                    .put(update)
                    .delete(delete),
            )
            .route("/status", get(status).post(status))
            .route("/subjects/add", post(subjects))
            .route("/subjects/remove", post(subjects))
            .route("/verify", post(verify))
            .route("/poll/{id}", post(poll))
            .with_state(shared);
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self {
            base,
            keys,
            script,
            http: reqwest::Client::new(),
        }
    }

    /// The requests ssfd made to `path`, by `method`.
    pub fn seen(&self, method: Method, path: &str) -> Vec<Seen> {
        let script = self.script.lock().unwrap();
        script
            .seen
            .iter()
            .filter(|s| s.method == method && s.path == path)
            .cloned()
            .collect()
    }

    pub fn stream(&self) -> Value {
        let script = self.script.lock().unwrap();
        script.streams.values().next().cloned().expect("a stream")
    }

    /// SET claims for the stream: our issuer, its audience, now.
    pub fn claims(&self, stream: &Value, sub_id: Value, events: Value) -> Value {
        json!({"iss": self.base, "aud": stream["aud"], "iat": now(), "jti": ssfd::ids::new_id(),
               "sub_id": sub_id, "events": events})
    }

    pub fn sign(&self, claims: &Value) -> String {
        self.keys.signer().sign(claims).unwrap()
    }

    /// A SET signed by a key the JWKS does not publish.
    pub fn sign_with_unknown_key(&self, claims: &Value) -> String {
        let other = KeyRing::new(
            vec![jose::generate(&Algorithm::Rs256, Some("unknown-kid"), 0).unwrap()],
            1,
        )
        .unwrap();
        other.signer().sign(claims).unwrap()
    }

    /// Pushes `token` to the stream's endpoint with its authorization header.
    pub async fn push(&self, stream: &Value, token: &str) -> (u16, Value) {
        let delivery = &stream["delivery"];
        let mut request = self
            .http
            .post(delivery["endpoint_url"].as_str().unwrap())
            .header("content-type", "application/secevent+jwt")
            .body(token.to_owned());
        if let Some(authorization) = delivery["authorization_header"].as_str() {
            request = request.header("authorization", authorization);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// Offers `token` to the next polls of the stream.
    pub fn queue(&self, stream: &Value, jti: &str, token: &str) {
        let id = stream["stream_id"].as_str().unwrap().to_owned();
        self.script
            .lock()
            .unwrap()
            .queued
            .entry(id)
            .or_default()
            .insert(jti.to_owned(), token.to_owned());
    }

    /// Whether ssfd acknowledged `jti` / reported it in setErrs.
    pub fn acked(&self, jti: &str) -> bool {
        self.script.lock().unwrap().acks.iter().any(|a| a == jti)
    }

    pub fn set_err(&self, jti: &str) -> Option<Value> {
        self.script.lock().unwrap().set_errs.get(jti).cloned()
    }
}

pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn record(shared: &Shared, method: Method, path: &str, body: Value) {
    shared.1.lock().unwrap().seen.push(Seen {
        method,
        path: path.to_owned(),
        body,
    });
}

/// Whether the bearer token is one we issued and still accept.
fn authorized(shared: &Shared, headers: &HeaderMap) -> bool {
    let token = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default();
    shared.1.lock().unwrap().valid_tokens.contains(token)
}

/// RFC 6750 §3.1: an expired or unknown token.
fn unauthorized() -> Response {
    (
        StatusCode::UNAUTHORIZED,
        [("www-authenticate", "Bearer error=\"invalid_token\"")],
    )
        .into_response()
}

async fn metadata(State(shared): State<Shared>) -> Json<Value> {
    let base = &shared.0;
    Json(json!({
        "spec_version": "1_0",
        "issuer": base,
        "jwks_uri": format!("{base}/jwks"),
        "delivery_methods_supported": ["urn:ietf:rfc:8935", "urn:ietf:rfc:8936"],
        "configuration_endpoint": format!("{base}/streams"),
        "status_endpoint": format!("{base}/status"),
        "add_subject_endpoint": format!("{base}/subjects/add"),
        "remove_subject_endpoint": format!("{base}/subjects/remove"),
        "verification_endpoint": format!("{base}/verify"),
        "token_endpoint": format!("{base}/token"),
        "authorization_schemes": [{"spec_urn": "urn:ietf:rfc:6749"}]
    }))
}

async fn jwks(State(shared): State<Shared>) -> Json<Value> {
    Json(shared.2.jwks().clone())
}

async fn token(State(shared): State<Shared>) -> Json<Value> {
    let mut script = shared.1.lock().unwrap();
    let token = ssfd::ids::new_secret();
    script.valid_tokens.insert(token.clone());
    script.tokens_issued += 1;
    Json(
        json!({"access_token": token, "token_type": "Bearer", "expires_in": script.token_lifetime}),
    )
}

async fn create(
    State(shared): State<Shared>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    if !authorized(&shared, &headers) {
        return unauthorized();
    }
    record(&shared, Method::POST, "/streams", body.clone());
    let id = ssfd::ids::new_id();
    let mut script = shared.1.lock().unwrap();
    let iss = if script.foreign_iss {
        "https://foreign.example".to_owned()
    } else {
        shared.0.clone()
    };
    let mut delivery = body["delivery"].clone();
    if delivery["method"] == "urn:ietf:rfc:8936" {
        delivery["endpoint_url"] = json!(format!("{}/poll/{id}", shared.0));
    }
    let stream = json!({
        "stream_id": id, "iss": iss, "aud": format!("https://rp.example/{id}"),
        "events_supported": body["events_requested"], "events_requested": body["events_requested"],
        "events_delivered": body["events_requested"], "delivery": delivery
    });
    script.streams.insert(id, stream.clone());
    (StatusCode::CREATED, Json(stream)).into_response()
}

async fn read(
    State(shared): State<Shared>,
    headers: HeaderMap,
    Query(query): Query<BTreeMap<String, String>>,
) -> Response {
    if !authorized(&shared, &headers) {
        return unauthorized();
    }
    record(&shared, Method::GET, "/streams", json!(query));
    let script = shared.1.lock().unwrap();
    match query.get("stream_id").and_then(|id| script.streams.get(id)) {
        Some(stream) => Json(stream.clone()).into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

async fn update(
    State(shared): State<Shared>,
    method: Method,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    if !authorized(&shared, &headers) {
        return unauthorized();
    }
    record(&shared, method, "/streams", body.clone());
    let mut script = shared.1.lock().unwrap();
    let Some(stream) = body["stream_id"]
        .as_str()
        .and_then(|id| script.streams.get_mut(id))
    else {
        return StatusCode::NOT_FOUND.into_response();
    };
    if let Some(events) = body.get("events_requested") {
        stream["events_requested"] = events.clone();
        stream["events_delivered"] = events.clone();
    }
    Json(stream.clone()).into_response()
}

async fn delete(
    State(shared): State<Shared>,
    headers: HeaderMap,
    Query(query): Query<BTreeMap<String, String>>,
) -> Response {
    if !authorized(&shared, &headers) {
        return unauthorized();
    }
    record(&shared, Method::DELETE, "/streams", json!(query));
    let mut script = shared.1.lock().unwrap();
    match query
        .get("stream_id")
        .and_then(|id| script.streams.remove(id))
    {
        Some(_) => StatusCode::NO_CONTENT.into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

async fn status(
    State(shared): State<Shared>,
    method: Method,
    headers: HeaderMap,
    body: String,
) -> Response {
    if !authorized(&shared, &headers) {
        return unauthorized();
    }
    let body: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
    record(&shared, method, "/status", body.clone());
    Json(json!({"stream_id": body["stream_id"], "status": body["status"].as_str().unwrap_or("enabled")}))
        .into_response()
}

async fn subjects(
    State(shared): State<Shared>,
    uri: axum::http::Uri,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    if !authorized(&shared, &headers) {
        return unauthorized();
    }
    record(&shared, Method::POST, uri.path(), body);
    StatusCode::OK.into_response()
}

async fn verify(
    State(shared): State<Shared>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    if !authorized(&shared, &headers) {
        return unauthorized();
    }
    record(&shared, Method::POST, "/verify", body.clone());
    shared
        .1
        .lock()
        .unwrap()
        .verification_states
        .push(body["state"].as_str().map(str::to_owned));
    StatusCode::NO_CONTENT.into_response()
}

async fn poll(
    State(shared): State<Shared>,
    Path(id): Path<String>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    if !authorized(&shared, &headers) {
        return unauthorized();
    }
    record(&shared, Method::POST, "/poll", body.clone());
    let sets = {
        let mut script = shared.1.lock().unwrap();
        for ack in body["ack"].as_array().into_iter().flatten() {
            let jti = ack.as_str().unwrap_or_default().to_owned();
            script.queued.entry(id.clone()).or_default().remove(&jti);
            script.acks.push(jti);
        }
        if let Some(errors) = body["setErrs"].as_object() {
            for (jti, error) in errors {
                script.queued.entry(id.clone()).or_default().remove(jti);
                script.set_errs.insert(jti.clone(), error.clone());
            }
        }
        script.queued.get(&id).cloned().unwrap_or_default()
    };
    if sets.is_empty() {
        // A short long poll: the harness does not wait for nothing.
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    }
    Json(json!({"sets": sets, "moreAvailable": false})).into_response()
}
