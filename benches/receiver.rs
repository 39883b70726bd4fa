//! Receiver push ingest on loopback: ES256 SETs POSTed concurrently to the RFC 8935 endpoint,
//! each verified, deduplicated, handed to the session engine and durably stored (group commit)
//! before its 202. SQLite, and PostgreSQL too when `SSFD_TEST_DATABASE_URL` names a server.
//! Run with `cargo bench --bench receiver`; BENCHMARKS.md records results.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use serde_json::json;
use ssfd::clock::{Clock, SystemClock};
use ssfd::config::Config;
use ssfd::http::AppState;
use ssfd::jose::{self, Algorithm, KeyRing};
use ssfd::storage::UpstreamRow;

const SETS: usize = 20_000;
const CLIENTS: usize = 64;
const ISSUER: &str = "https://idp.example.test";
const AUDIENCE: &str = "https://rp.example.test";

async fn ingest_rate(url: &str) -> f64 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let mut config = Config::default();
    config.server.bind = address;
    config.server.issuer = format!("http://{address}");
    config.database.url = url.to_owned();
    config.database.max_connections = 8;
    let store = ssfd::storage::connect(url, 8).await.unwrap();
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    jose::ensure_signing_key(store.as_ref(), &Algorithm::Rs256, clock.as_ref())
        .await
        .unwrap();
    let keys = KeyRing::new(
        vec![jose::generate(&Algorithm::Es256, Some("bench-es256"), 0).unwrap()],
        1,
    )
    .unwrap();
    let secret = ssfd::ids::new_secret();
    let now = clock.now();
    store
        .insert_upstream(&UpstreamRow {
            id: "bench".into(),
            issuer: ISSUER.into(),
            metadata: None,
            auth: "{}".into(),
            delivery_method: "urn:ietf:rfc:8935".into(),
            events_requested: "[]".into(),
            remote_stream_id: Some("stream".into()),
            poll_url: None,
            audience: AUDIENCE.into(),
            jwks: Some(keys.jwks().to_string()),
            push_token_hash: Some(ssfd::auth::hash_secret(&secret)),
            status: "enabled".into(),
            verification_state: None,
            verified_at: Some(now),
            created_at: now,
            updated_at: now,
        })
        .await
        .unwrap();
    let state = AppState::new(config, store, clock);
    tokio::spawn(async move {
        ssfd::http::serve(listener, state, std::future::pending())
            .await
            .unwrap();
    });
    let signer = keys.signer();
    let tokens: Vec<String> = (0..SETS)
        .map(|n| {
            signer
                .sign(&json!({"iss": ISSUER, "aud": AUDIENCE, "iat": now, "jti": format!("j{n}"),
                    "sub_id": {"format": "email", "email": format!("u{}@example.com", n % 1000)},
                    "events": {"https://schemas.openid.net/secevent/caep/event-type/session-revoked": {}}}))
                .unwrap()
        })
        .collect();
    let tokens = Arc::new(tokens);
    let next = Arc::new(AtomicUsize::new(0));
    let url = format!("http://{address}/ssf/receiver/bench");
    let http = reqwest::Client::new();
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..CLIENTS {
        let (tokens, next, url, http, secret) = (
            tokens.clone(),
            next.clone(),
            url.clone(),
            http.clone(),
            secret.clone(),
        );
        tasks.push(tokio::spawn(async move {
            loop {
                let n = next.fetch_add(1, Ordering::Relaxed);
                let Some(token) = tokens.get(n) else { break };
                let response = http
                    .post(&url)
                    .header("content-type", "application/secevent+jwt")
                    .bearer_auth(&secret)
                    .body(token.clone())
                    .send()
                    .await
                    .unwrap();
                assert_eq!(response.status(), 202);
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    SETS as f64 / started.elapsed().as_secs_f64()
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let dir = tempfile::tempdir().unwrap();
    let sqlite = format!("sqlite:{}", dir.path().join("ssfd.db").display());
    let rate = ingest_rate(&sqlite).await;
    println!("SQLite: {rate:.0} SETs/s ingested (ES256, {CLIENTS} clients)");
    if let Ok(admin) = std::env::var("SSFD_TEST_DATABASE_URL") {
        use sqlx::Connection as _;
        let name = format!("ssfd_bench_{}", ssfd::ids::new_id());
        let mut connection = sqlx::PgConnection::connect(&admin).await.unwrap();
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut connection)
            .await
            .unwrap();
        let mut url = url::Url::parse(&admin).unwrap();
        url.set_path(&name);
        let rate = ingest_rate(url.as_str()).await;
        println!("PostgreSQL: {rate:.0} SETs/s ingested (ES256, {CLIENTS} clients)");
        let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            .execute(&mut connection)
            .await;
    }
}
