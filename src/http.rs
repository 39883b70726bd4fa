//! HTTP composition: the shared [`AppState`], the router built from each area's routes, the
//! one error type, and [`serve`], which the binary and the tests both use.

mod error;
mod extract;

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use tokio::net::TcpListener;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

pub use error::ApiError;
pub use extract::{parse_json, AppJson};

use crate::clock::Clock;
use crate::config::Config;
use crate::storage::SharedStore;

/// Everything a request handler may need. Cheap to clone: every member is shared. No globals,
/// so one process can run several servers (a transmitter and a receiver in one test).
#[derive(Debug, Clone)]
pub struct AppState {
    /// The validated configuration.
    pub config: Arc<Config>,
    /// The store.
    pub store: SharedStore,
    /// The time source.
    pub clock: Arc<dyn Clock>,
    /// Every URL ssfd serves, derived from the issuer.
    pub endpoints: Arc<Endpoints>,
    /// Bearer token checks.
    pub auth: Arc<crate::auth::Authenticator>,
    /// The outbound HTTP client (push delivery, JWKS fetches): one pool, kept alive.
    pub http: reqwest::Client,
    /// Woken whenever SETs enter the outbox: long polls and the push worker wait on it.
    pub outbox_signal: Arc<tokio::sync::Notify>,
    /// Snapshots of signer and streams for the intake hot path.
    pub caches: Arc<crate::transmitter::cache::Caches>,
    /// Group commit of outbox writes.
    pub outbox_writer: crate::transmitter::batcher::Batcher,
    /// The receiver's in-memory state.
    pub receiver: Arc<crate::receiver::Runtime>,
    /// Counters and histograms served at `/metrics`.
    pub metrics: Arc<crate::metrics::Metrics>,
    /// Local sessions, policy and decisions.
    pub sessions: Arc<crate::sessions::Engine>,
    /// Group commit of received SETs and their effects.
    pub received_writer: crate::receiver::writer::ReceivedWriter,
}

impl AppState {
    /// State for `config`, `store` and `clock`. Call it within a tokio runtime: it starts the
    /// outbox writer task.
    pub fn new(config: Config, store: SharedStore, clock: Arc<dyn Clock>) -> Self {
        let endpoints = Arc::new(Endpoints::new(&config.issuer_url()));
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(config.transmitter.push_timeout_secs))
            .pool_idle_timeout(Duration::from_secs(90))
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("ssfd/", env!("CARGO_PKG_VERSION")))
            .build()
            .expect("the TLS backend initialises");
        let auth = Arc::new(crate::auth::Authenticator::new(
            config.server.issuer.clone(),
            config.auth.clone(),
            store.clone(),
            clock.clone(),
            http.clone(),
        ));
        let outbox_writer = crate::transmitter::batcher::Batcher::start(store.clone());
        let sessions = Arc::new(crate::sessions::Engine::new(&config.sessions));
        let received_writer = crate::receiver::writer::ReceivedWriter::start(store.clone());
        Self {
            config: Arc::new(config),
            store,
            clock,
            endpoints,
            auth,
            http,
            outbox_signal: Arc::new(tokio::sync::Notify::new()),
            caches: Arc::default(),
            outbox_writer,
            receiver: Arc::default(),
            metrics: Arc::default(),
            sessions,
            received_writer,
        }
    }
}

/// The URLs ssfd advertises and the paths it routes, all derived from the one configured
/// issuer: an issuer with a path (`https://host/tenant`) puts every endpoint under that path,
/// and the metadata under `/.well-known/ssf-configuration/tenant` (SSF 1.0 §7.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoints {
    issuer: url::Url,
    base_path: String,
}

impl Endpoints {
    /// Endpoints for `issuer`.
    pub fn new(issuer: &url::Url) -> Self {
        Self {
            issuer: issuer.clone(),
            base_path: issuer.path().trim_end_matches('/').to_owned(),
        }
    }

    /// The router path of an endpoint: `suffix` under the issuer's path.
    pub fn path(&self, suffix: &str) -> String {
        format!("{}{suffix}", self.base_path)
    }

    /// The absolute URL of an endpoint.
    pub fn url(&self, suffix: &str) -> String {
        let mut url = self.issuer.clone();
        url.set_path(&self.path(suffix));
        url.to_string()
    }

    /// Path of the JWKS (the metadata's `jwks_uri`).
    pub const JWKS: &'static str = "/jwks.json";

    /// Path of the SSF metadata document (SSF 1.0 §7.2).
    pub fn metadata_path(&self) -> String {
        crate::protocol::metadata::discovery_path(&self.issuer)
    }

    /// Path of another well-known document, inserted the same way (RFC 8615).
    pub fn well_known_path(&self, well_known: &str) -> String {
        format!("{well_known}{}", self.base_path)
    }
}

/// The application: every area's routes plus the shared layers.
pub fn app(state: AppState) -> Router {
    let max_body = state.config.server.max_body_bytes;
    let timeout = Duration::from_secs(state.config.server.request_timeout_secs);
    let endpoints = state.endpoints.clone();
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route(&endpoints.path(Endpoints::JWKS), get(jwks))
        .merge(crate::auth::router(&endpoints))
        .merge(crate::transmitter::router(&endpoints))
        .merge(crate::receiver::router(&endpoints))
        .merge(crate::sessions::api::router())
        .merge(crate::sessions::admin::router())
        .with_state(state)
        .layer(RequestBodyLimitLayer::new(max_body))
        .layer(TimeoutLayer::with_status_code(
            axum::http::StatusCode::REQUEST_TIMEOUT,
            timeout,
        ))
        .layer(TraceLayer::new_for_http())
}

/// Serves `state` on `listener`, with the background workers (push delivery, upstream
/// polling), until
/// `shutdown` completes; then finishes in-flight requests and stops the workers.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let (stop, stopped) = tokio::sync::watch::channel(false);
    crate::sessions::Engine::start(&state, stopped.clone())
        .await
        .map_err(std::io::Error::other)?;
    let pusher = tokio::spawn(crate::transmitter::push::run(
        state.clone(),
        stopped.clone(),
    ));
    let health = tokio::spawn(crate::receiver::manage::run_health(
        state.clone(),
        stopped.clone(),
    ));
    let poller = tokio::spawn(crate::receiver::poller::run(state.clone(), stopped));
    let result = axum::serve(listener, app(state))
        .with_graceful_shutdown(shutdown)
        .await;
    let _ = stop.send(true);
    let _ = pusher.await;
    let _ = poller.await;
    let _ = health.await;
    result
}

/// Liveness: the process answers.
async fn healthz() -> &'static str {
    "ok"
}

/// Readiness: the store answers too.
async fn readyz(State(state): State<AppState>) -> Result<&'static str, ApiError> {
    state.store.list_signing_keys().await?;
    Ok("ready")
}

/// Prometheus metrics.
async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(&[]),
    )
}

/// The public signing keys (RFC 7517 JWK Set) of every key not yet retired.
async fn jwks(State(state): State<AppState>) -> Result<impl IntoResponse, ApiError> {
    let rows = state.store.list_signing_keys().await?;
    let ring = crate::jose::KeyRing::new(rows, state.clock.now())?;
    Ok((
        [(header::CACHE_CONTROL, "public, max-age=300")],
        Json(ring.jwks().clone()),
    ))
}
