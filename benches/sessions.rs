//! Session decisions on loopback: (1) decisions per second of `POST /sessions/{id}/evaluate`
//! over HTTP with keep-alive, and of the in-memory decision alone; (2) latency from a SET's
//! arrival at the receiver's push endpoint to the changed decision (p50/p99). SQLite, one
//! process: a transmitter signs the SETs, the receiver under test takes them.
//! Run with `cargo bench --bench sessions`; BENCHMARKS.md records results.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use ssfd::auth::{self, CredentialKind};
use ssfd::clock::{Clock, SystemClock};
use ssfd::config::Config;
use ssfd::http::AppState;
use ssfd::jose::{self, Algorithm};
use ssfd::protocol::EventType;
use ssfd::receiver::upstreams::{register_push, Registration, UpstreamAuth};
use ssfd::sessions::engine::EvaluateRequest;
use ssfd::transmitter::intake;

const SESSIONS: usize = 10_000;
const CLIENTS: usize = 32;
const HTTP_SECONDS: u64 = 5;
const LATENCY_SAMPLES: usize = 500;

struct Server {
    base: String,
    state: AppState,
    _dir: tempfile::TempDir,
}

async fn server() -> Server {
    let dir = tempfile::tempdir().unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let mut config = Config::default();
    config.server.bind = address;
    config.server.issuer = format!("http://{address}");
    config.database.url = format!("sqlite:{}", dir.path().join("ssfd.db").display());
    config.transmitter.push_allowed_hosts = vec!["127.0.0.1".to_owned()];
    config.log.level = "warn".to_owned();
    let store = ssfd::storage::connect(&config.database.url, 8)
        .await
        .unwrap();
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    jose::ensure_signing_key(store.as_ref(), &Algorithm::Rs256, clock.as_ref())
        .await
        .unwrap();
    let base = config.server.issuer.clone();
    let state = AppState::new(config, store, clock);
    let serving = state.clone();
    tokio::spawn(async move {
        ssfd::http::serve(listener, serving, std::future::pending())
            .await
            .unwrap();
    });
    Server {
        base,
        state,
        _dir: dir,
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index]
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let transmitter = server().await;
    let receiver = server().await;
    let (client, secret) = auth::register_client(
        transmitter.state.store.as_ref(),
        "bench",
        &["ssf.manage"],
        0,
    )
    .await
    .unwrap();
    let upstream = register_push(
        &receiver.state,
        Registration {
            issuer: transmitter.base.clone(),
            auth: UpstreamAuth::ClientCredentials {
                token_endpoint: None,
                client_id: client.client_id,
                client_secret: secret,
                scope: None,
            },
            events: EventType::KNOWN
                .iter()
                .filter(|t| !t.is_ssf_control())
                .cloned()
                .collect(),
        },
    )
    .await
    .unwrap();
    let (_, app) = auth::create_credential(
        receiver.state.store.as_ref(),
        CredentialKind::Application,
        "bench",
        &[],
        None,
        0,
    )
    .await
    .unwrap();
    let http = reqwest::Client::new();
    for n in 0..SESSIONS {
        let response = http
            .post(format!("{}/sessions", receiver.base))
            .bearer_auth(&app)
            .json(&json!({"session_id": format!("s{n}"),
                "subjects": [{"format": "email", "email": format!("u{n}@example.com")}]}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 201);
    }

    // (1a) The decision itself, in memory.
    let engine = receiver.state.sessions.clone();
    let store = receiver.state.store.clone();
    let sessions: Vec<_> = registered_sessions(&engine, &store).await;
    let request = EvaluateRequest::default();
    let started = Instant::now();
    let mut decided = 0usize;
    while started.elapsed() < Duration::from_secs(2) {
        for session in &sessions {
            std::hint::black_box(engine.decide(session, &request, 1));
            decided += 1;
        }
    }
    let in_memory = decided as f64 / started.elapsed().as_secs_f64();
    println!("decisions in memory (one core): {in_memory:.0}/s");

    // (1b) Over HTTP with keep-alive, CLIENTS concurrent callers on the same 2 cores.
    let done = Arc::new(AtomicUsize::new(0));
    let deadline = Instant::now() + Duration::from_secs(HTTP_SECONDS);
    let mut tasks = Vec::new();
    for worker in 0..CLIENTS {
        let (http, base, app, done) = (
            http.clone(),
            receiver.base.clone(),
            app.clone(),
            done.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut n = worker;
            while Instant::now() < deadline {
                let response = http
                    .post(format!("{base}/sessions/s{}/evaluate", n % SESSIONS))
                    .bearer_auth(&app)
                    .body("{}")
                    .send()
                    .await
                    .unwrap();
                assert!(response.status().is_success());
                let _ = response.bytes().await;
                done.fetch_add(1, Ordering::Relaxed);
                n += CLIENTS;
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let over_http = done.load(Ordering::Relaxed) as f64 / HTTP_SECONDS as f64;
    println!("decisions over HTTP ({CLIENTS} clients, same 2 cores): {over_http:.0}/s");

    // (2) SET arrival -> changed decision.
    let stream_id = upstream.remote_stream_id.clone().unwrap();
    let stream = transmitter
        .state
        .store
        .get_stream(&stream_id)
        .await
        .unwrap();
    let push_url = stream.endpoint_url.clone().unwrap();
    let authorization = stream.authorization_header.clone().unwrap();
    let mut latencies = Vec::with_capacity(LATENCY_SAMPLES);
    for n in 0..LATENCY_SAMPLES {
        let intake = serde_json::from_value(json!({
            "sub_id": {"format": "email", "email": format!("u{n}@example.com")},
            "events": {"https://schemas.openid.net/secevent/caep/event-type/session-revoked": {}}
        }))
        .unwrap();
        let (_, outgoing) = intake::plan(&transmitter.state, intake).await.unwrap();
        let token = outgoing
            .into_iter()
            .find(|o| o.stream_id == stream_id)
            .unwrap()
            .token;
        let started = Instant::now();
        let response = http
            .post(&push_url)
            .header("content-type", "application/secevent+jwt")
            .header("authorization", authorization.as_str())
            .body(token)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 202);
        loop {
            let decision: Value = http
                .post(format!("{}/sessions/s{n}/evaluate", receiver.base))
                .bearer_auth(&app)
                .body("{}")
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            if decision["decision"] == "deny" {
                break;
            }
        }
        latencies.push(started.elapsed());
    }
    latencies.sort();
    println!(
        "SET arrival to changed decision ({LATENCY_SAMPLES} samples): p50 {:.2} ms, p99 {:.2} ms",
        percentile(&latencies, 0.5).as_secs_f64() * 1000.0,
        percentile(&latencies, 0.99).as_secs_f64() * 1000.0
    );
}

/// Every registered session, as the engine holds it.
async fn registered_sessions(
    engine: &ssfd::sessions::Engine,
    store: &ssfd::storage::SharedStore,
) -> Vec<Arc<ssfd::sessions::model::Session>> {
    let mut sessions = Vec::with_capacity(SESSIONS);
    for n in 0..SESSIONS {
        sessions.push(
            engine
                .session(store, &format!("s{n}"))
                .await
                .unwrap()
                .unwrap(),
        );
    }
    sessions
}
