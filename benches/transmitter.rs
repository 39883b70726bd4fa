//! Transmitter throughput on loopback: (1) events signed and durably enqueued per second
//! through the intake path, (2) SETs pushed per second to 10 receivers. Runs on SQLite, and on
//! PostgreSQL too when `SSFD_TEST_DATABASE_URL` names a server (a scratch database is created
//! and dropped). Run with `cargo bench --bench transmitter`; BENCHMARKS.md records results.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use axum::routing::post;
use serde_json::json;
use ssfd::auth;
use ssfd::clock::{Clock, SystemClock};
use ssfd::config::Config;
use ssfd::http::AppState;
use ssfd::jose::{self, Algorithm};
use ssfd::protocol::{CreateStreamRequest, Delivery, DeliveryMethod, Extra};
use ssfd::storage::{self, NewOutboxRow};
use ssfd::transmitter::fanout::EventIntake;
use ssfd::transmitter::{intake, repo, streams};

const RECEIVERS: usize = 10;

async fn state_for(url: &str, algorithm: &str) -> AppState {
    let mut config = Config::default();
    config.database.url = url.to_owned();
    config.database.max_connections = 8;
    config.signing.algorithm = algorithm.to_owned();
    config.transmitter.push_allowed_hosts = vec!["127.0.0.1".to_owned()];
    // Throughput over order (the default, 1, keeps each stream's SETs in order).
    config.transmitter.push_concurrency_per_stream = 4;
    let store = storage::connect(url, 8).await.expect("database");
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    // A fresh key of the algorithm under test signs from now on.
    jose::rotate_signing_key(
        store.as_ref(),
        &Algorithm::from(algorithm),
        0,
        clock.as_ref(),
    )
    .await
    .unwrap();
    AppState::new(config, store, clock)
}

async fn add_stream(state: &AppState, delivery: Option<Delivery>) -> String {
    let (client, _) = auth::register_client(
        state.store.as_ref(),
        "bench",
        &["ssf.manage"],
        state.clock.now(),
    )
    .await
    .unwrap();
    let stream_id = ssfd::ids::new_id();
    let request = CreateStreamRequest {
        delivery,
        ..CreateStreamRequest::default()
    };
    let stream = streams::create(
        &request,
        &repo::policy(state),
        &client.client_id,
        stream_id.clone(),
        repo::poll_url(state, &stream_id),
        state.clock.now(),
    )
    .unwrap();
    repo::insert_stream(state, &stream).await.unwrap();
    stream_id
}

/// Events per second through validate → fan-out → sign → one-transaction enqueue, with as
/// many concurrent submitters as cores times two, one poll stream.
async fn intake_rate(state: &AppState, events: usize) -> f64 {
    add_stream(state, None).await;
    let intake: EventIntake = serde_json::from_value(json!({
        "sub_id": {"format": "email", "email": "jane@example.com"},
        "events": {"https://schemas.openid.net/secevent/caep/event-type/session-revoked": {
            "event_timestamp": 1_700_000_000, "initiating_entity": "policy",
            "reason_admin": {"en": "Landspeed policy violation"}}}
    }))
    .unwrap();
    let workers = 4;
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..workers {
        let (state, intake) = (state.clone(), intake.clone());
        tasks.spawn(async move {
            for _ in 0..events / workers {
                intake::submit(&state, intake.clone()).await.unwrap();
            }
        });
    }
    while tasks.join_next().await.is_some() {}
    events as f64 / started.elapsed().as_secs_f64()
}

/// SETs per second pushed to 10 receivers on loopback, from a full outbox.
async fn push_rate(state: &AppState, per_receiver: usize) -> f64 {
    let delivered = Arc::new(AtomicUsize::new(0));
    let mut stream_ids = Vec::new();
    for _ in 0..RECEIVERS {
        let counter = delivered.clone();
        let app = axum::Router::new().route(
            "/events",
            post(move || {
                counter.fetch_add(1, Ordering::Relaxed);
                async { StatusCode::ACCEPTED }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/events", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        let delivery = Delivery {
            method: DeliveryMethod::Push,
            endpoint_url: Some(url),
            authorization_header: None,
            extra: Extra::new(),
        };
        stream_ids.push(add_stream(state, Some(delivery)).await);
    }
    // One signed SET, enqueued under distinct jtis: this measures delivery, not signing.
    let token = repo::signer(state)
        .await
        .unwrap()
        .sign(&json!({"iss": "bench"}))
        .unwrap();
    for stream_id in &stream_ids {
        let rows: Vec<NewOutboxRow> = (0..per_receiver)
            .map(|_| NewOutboxRow {
                stream_id: stream_id.clone(),
                jti: ssfd::ids::new_id(),
                token: token.clone(),
                held: false,
                bypass_status: false,
            })
            .collect();
        state.store.enqueue(&rows, state.clock.now()).await.unwrap();
    }
    let total = per_receiver * RECEIVERS;
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let started = Instant::now();
    let worker = tokio::spawn(ssfd::transmitter::push::run(state.clone(), stopped));
    while delivered.load(Ordering::Relaxed) < total {
        assert!(started.elapsed() < Duration::from_secs(300), "push stalled");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let rate = total as f64 / started.elapsed().as_secs_f64();
    let _ = stop.send(true);
    let _ = worker.await;
    rate
}

async fn scratch_postgres(admin: &str) -> (String, String) {
    use sqlx::Connection as _;
    let name = format!("ssfd_bench_{}", ssfd::ids::new_id());
    let mut connection = sqlx::PgConnection::connect(admin).await.unwrap();
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut connection)
        .await
        .unwrap();
    let mut url = url::Url::parse(admin).unwrap();
    url.set_path(&name);
    (url.to_string(), name)
}

async fn drop_postgres(admin: &str, name: &str) {
    use sqlx::Connection as _;
    let mut connection = sqlx::PgConnection::connect(admin).await.unwrap();
    let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .execute(&mut connection)
        .await;
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let events: usize = std::env::var("SSFD_BENCH_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(4000);
    let dir = tempfile::tempdir().unwrap();
    let mut backends = vec![(
        "sqlite".to_owned(),
        format!("sqlite:{}/bench.db", dir.path().display()),
        None,
    )];
    if let Ok(admin) = std::env::var("SSFD_TEST_DATABASE_URL") {
        let (url, name) = scratch_postgres(&admin).await;
        backends.push(("postgres".to_owned(), url, Some((admin, name))));
    }
    println!(
        "{:<9} {:<6} {:>22} {:>26}",
        "backend", "alg", "sign+enqueue events/s", "push SETs/s (10 receivers)"
    );
    for (backend, url, cleanup) in &backends {
        for algorithm in ["RS256", "ES256"] {
            let state = state_for(url, algorithm).await;
            let intake = intake_rate(&state, events).await;
            let push = if algorithm == "RS256" {
                format!("{:.0}", push_rate(&state, events / RECEIVERS).await)
            } else {
                "-".to_owned()
            };
            println!("{backend:<9} {algorithm:<6} {intake:>22.0} {push:>26}");
            // Each run starts from an empty outbox.
            for stream in state.store.list_streams(None).await.unwrap() {
                state.store.delete_stream(&stream.stream_id).await.unwrap();
            }
        }
        if let Some((admin, name)) = cleanup {
            drop_postgres(admin, name).await;
        }
    }
}
