//! The test harness: real servers on 127.0.0.1:0 backed by a real database, SQLite by default
//! and PostgreSQL when `SSFD_TEST_DATABASE_URL` names a server (each test gets a database of
//! its own, dropped afterwards).

#![allow(dead_code)] // each test module uses a different part of the harness

use std::sync::Arc;

use ssfd::auth::{self, CredentialKind};
use ssfd::clock::{Clock, SystemClock};
use ssfd::config::Config;
use ssfd::http::AppState;
use ssfd::jose::{self, Algorithm};
use ssfd::storage::{self, SharedStore};
use tokio::sync::oneshot;

/// A database for one test.
pub struct TestDb {
    pub url: String,
    _dir: Option<tempfile::TempDir>,
    postgres: Option<(String, String)>,
}

impl TestDb {
    /// PostgreSQL if `SSFD_TEST_DATABASE_URL` is set, else a SQLite file in a temporary folder.
    pub async fn new() -> Self {
        match std::env::var("SSFD_TEST_DATABASE_URL") {
            Ok(admin) if !admin.is_empty() => Self::postgres(&admin).await,
            _ => Self::sqlite(),
        }
    }

    /// A SQLite file in a temporary folder.
    pub fn sqlite() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite:{}", dir.path().join("ssfd.db").display());
        Self {
            url,
            _dir: Some(dir),
            postgres: None,
        }
    }

    /// A fresh database on the PostgreSQL server of `admin_url`.
    pub async fn postgres(admin_url: &str) -> Self {
        use sqlx::Connection as _;
        let name = format!("ssfd_test_{}", ssfd::ids::new_id());
        let mut admin = sqlx::PgConnection::connect(admin_url)
            .await
            .expect("PostgreSQL answers");
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut admin)
            .await
            .unwrap();
        let mut url = url::Url::parse(admin_url).unwrap();
        url.set_path(&name);
        Self {
            url: url.to_string(),
            _dir: None,
            postgres: Some((admin_url.to_owned(), name)),
        }
    }

    /// The same database for a second server: dropping it removes nothing.
    pub fn share(&self) -> Self {
        Self {
            url: self.url.clone(),
            _dir: None,
            postgres: None,
        }
    }

    /// Which backend, for messages.
    pub fn backend(&self) -> &'static str {
        if self.postgres.is_some() {
            "postgres"
        } else {
            "sqlite"
        }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Some((admin_url, name)) = self.postgres.take() {
            // Drop runs outside any runtime guarantee: use a thread with its own.
            let _ = std::thread::spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                runtime.block_on(async {
                    use sqlx::Connection as _;
                    if let Ok(mut admin) = sqlx::PgConnection::connect(&admin_url).await {
                        let _ =
                            sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                                .execute(&mut admin)
                                .await;
                    }
                });
            })
            .join();
        }
    }
}

/// A running ssfd on 127.0.0.1, stopped on drop.
pub struct TestServer {
    pub base: String,
    pub state: AppState,
    pub http: reqwest::Client,
    shutdown: Option<oneshot::Sender<()>>,
    pub db: TestDb,
}

impl TestServer {
    /// A server with the test defaults: issuer = its own address, push to 127.0.0.1 allowed.
    pub async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    /// A server whose configuration `configure` adjusts.
    pub async fn start_with(configure: impl FnOnce(&mut Config)) -> Self {
        Self::start_full(TestDb::new().await, Arc::new(SystemClock), configure).await
    }

    /// A server on `db` with `clock`.
    pub async fn start_full(
        db: TestDb,
        clock: Arc<dyn Clock>,
        configure: impl FnOnce(&mut Config),
    ) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let mut config = Config::default();
        config.server.bind = address;
        config.server.issuer = format!("http://{address}");
        config.database.url = db.url.clone();
        config.transmitter.push_allowed_hosts = vec!["127.0.0.1".to_owned()];
        config.transmitter.retry_initial_secs = 1;
        config.transmitter.retry_max_secs = 2;
        configure(&mut config);
        let store = storage::connect(&config.database.url, 4).await.unwrap();
        let algorithm = Algorithm::from(config.signing.algorithm.as_str());
        jose::ensure_signing_key(store.as_ref(), &algorithm, clock.as_ref())
            .await
            .unwrap();
        let base = config.server.issuer.trim_end_matches('/').to_owned();
        let state = AppState::new(config, store, clock);
        let (tx, rx) = oneshot::channel();
        let serving = state.clone();
        tokio::spawn(async move {
            ssfd::http::serve(listener, serving, async {
                let _ = rx.await;
            })
            .await
            .unwrap();
        });
        Self {
            base,
            state,
            http: reqwest::Client::new(),
            shutdown: Some(tx),
            db,
        }
    }

    /// The store.
    pub fn store(&self) -> &SharedStore {
        &self.state.store
    }

    /// An absolute URL on this server.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Registers a receiver client with `scopes`; returns (client_id, client_secret).
    pub async fn client(&self, scopes: &[&str]) -> (String, String) {
        let (client, secret) = auth::register_client(
            self.store().as_ref(),
            "test receiver",
            scopes,
            self.state.clock.now(),
        )
        .await
        .unwrap();
        (client.client_id, secret)
    }

    /// An access token from the token endpoint for a new client with `scopes`.
    pub async fn token(&self, scopes: &[&str]) -> String {
        let (client_id, secret) = self.client(scopes).await;
        self.token_for(&client_id, &secret).await
    }

    /// An access token for an existing client (client_secret_basic).
    pub async fn token_for(&self, client_id: &str, secret: &str) -> String {
        fetch_token(&self.http, &self.base, client_id, secret).await
    }

    /// A publisher credential for `POST /events`.
    pub async fn publisher(&self) -> String {
        self.credential(CredentialKind::Publisher).await
    }

    /// A new static credential of `kind`; returns its token.
    pub async fn credential(&self, kind: CredentialKind) -> String {
        auth::create_credential(
            self.store().as_ref(),
            kind,
            "test credential",
            &[],
            None,
            self.state.clock.now(),
        )
        .await
        .unwrap()
        .1
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// An access token from the token endpoint of the server at `base` (client_secret_basic).
pub async fn fetch_token(
    http: &reqwest::Client,
    base: &str,
    client_id: &str,
    secret: &str,
) -> String {
    let response: serde_json::Value = http
        .post(format!("{base}/oauth/token"))
        .basic_auth(client_id, Some(secret))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    response["access_token"]
        .as_str()
        .expect("a token")
        .to_owned()
}
