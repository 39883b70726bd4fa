//! Durability across a crash: the server is killed (SIGKILL) while it pushes 1,000 SETs to
//! a receiver, restarted, and every SET accepted before the kill still arrives (at least once).

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::http::StatusCode;
use axum::routing::post;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde_json::{json, Value};

use crate::common::{fetch_token, TestDb};

const EVENTS: usize = 1000;

pub(crate) struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn ssfd(dir: &Path, env: &[(&str, String)]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_ssfd"));
    command.current_dir(dir).env_remove("RUST_LOG");
    for (name, _) in std::env::vars() {
        if name.starts_with("SSFD_") {
            command.env_remove(name);
        }
    }
    for (name, value) in env {
        command.env(name, value);
    }
    command
}

/// Starts `ssfd serve` and waits until it logs that it listens.
pub(crate) fn start(dir: &Path, env: &[(&str, String)]) -> Server {
    let mut child = ssfd(dir, env)
        .arg("serve")
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if line.contains("ssfd listening") {
                let _ = tx.send(());
            }
        }
    });
    rx.recv_timeout(Duration::from_secs(60))
        .expect("ssfd starts");
    Server(child)
}

pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn jti_of(token: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(token).ok()?;
    let payload = URL_SAFE_NO_PAD.decode(text.split('.').nth(1)?).ok()?;
    let claims: Value = serde_json::from_slice(&payload).ok()?;
    claims["jti"].as_str().map(str::to_owned)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_during_delivery_loses_nothing() {
    // A receiver that takes a few milliseconds per SET, so that delivery is under way when
    // the server dies.
    let received: Arc<Mutex<Vec<String>>> = Arc::default();
    let sink = received.clone();
    let app = axum::Router::new().route(
        "/events",
        post(move |body: Bytes| {
            let sink = sink.clone();
            async move {
                tokio::time::sleep(Duration::from_millis(3)).await;
                if let Some(jti) = jti_of(&body) {
                    sink.lock().unwrap().push(jti);
                }
                StatusCode::ACCEPTED
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let receiver_url = format!("http://{}/events", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let dir = tempfile::tempdir().unwrap();
    let db = TestDb::new().await;
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let env = vec![
        ("SSFD_SERVER__BIND", format!("127.0.0.1:{port}")),
        ("SSFD_SERVER__ISSUER", base.clone()),
        ("SSFD_DATABASE__URL", db.url.clone()),
        (
            "SSFD_TRANSMITTER__PUSH_ALLOWED_HOSTS",
            r#"["127.0.0.1"]"#.to_owned(),
        ),
        ("SSFD_TRANSMITTER__PUSH_TIMEOUT_SECS", "1".to_owned()),
    ];
    let cli = |args: &[&str]| {
        let output = ssfd(dir.path(), &env).args(args).output().unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).unwrap()
    };
    cli(&["migrate"]);
    let created = cli(&["client", "create", "--name", "crash receiver"]);
    let field = |text: &str, name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .map(|v| v.trim().to_owned())
            .unwrap()
    };
    let (client_id, secret) = (
        field(&created, "client_id:"),
        field(&created, "client_secret:"),
    );
    let publisher = field(&cli(&["publisher", "create", "--name", "idp"]), "token:");

    let server = start(dir.path(), &env);
    let http = reqwest::Client::new();
    let token = fetch_token(&http, &base, &client_id, &secret).await;
    let stream = http
        .post(format!("{base}/ssf/stream"))
        .bearer_auth(&token)
        .json(&json!({"delivery": {"method": "urn:ietf:rfc:8935", "endpoint_url": receiver_url}}))
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), 201);
    let stream: Value = stream.json().await.unwrap();
    let set_status = |status: &'static str| {
        let request = http
            .post(format!("{base}/ssf/status"))
            .bearer_auth(&token)
            .json(&json!({"stream_id": stream["stream_id"], "status": status}));
        async move { assert_eq!(request.send().await.unwrap().status(), 200) }
    };

    // Hold the events while they are submitted, so that all 1,000 wait when delivery starts.
    set_status("paused").await;
    let mut expected = BTreeSet::new();
    for i in 0..EVENTS {
        let answer: Value = http
            .post(format!("{base}/events"))
            .bearer_auth(&publisher)
            .json(&json!({
                "sub_id": {"format": "email", "email": format!("user{i}@example.com")},
                "events": {"https://schemas.openid.net/secevent/caep/event-type/session-revoked": {}}
            }))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        expected.insert(
            answer["sets"][0]["jti"]
                .as_str()
                .expect("one SET")
                .to_owned(),
        );
    }
    assert_eq!(expected.len(), EVENTS);
    assert!(
        received.lock().unwrap().is_empty(),
        "a paused stream delivered"
    );
    set_status("enabled").await;

    // Kill it mid-delivery.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while received.lock().unwrap().len() < 50 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "delivery never started"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    drop(server); // SIGKILL
    let at_kill = received.lock().unwrap().len();
    assert!(
        at_kill < EVENTS,
        "everything was delivered before the kill; the test proves nothing"
    );

    let _restarted = start(dir.path(), &env);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
    loop {
        let got: BTreeSet<String> = received.lock().unwrap().iter().cloned().collect();
        let missing = expected.difference(&got).count();
        if missing == 0 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{missing} of {EVENTS} SETs never arrived after the restart ({} before the kill)",
            at_kill
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let total = received.lock().unwrap().len();
    assert!(total >= EVENTS);
    eprintln!(
        "{} backend: {at_kill} SETs before the kill, {total} deliveries in all",
        db.backend()
    );
}
