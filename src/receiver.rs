//! The receiver role: SETs from upstream transmitters arrive at a push endpoint per upstream
//! (RFC 8935), are validated strictly, stored once, and handed to the session-action engine.

pub mod admin;
pub mod ingest;
pub mod manage;
pub mod poller;
pub mod push;
pub mod upstreams;
pub mod validate;
pub mod writer;

use axum::routing::post;
use axum::Router;

use crate::http::{AppState, Endpoints};

/// What the receiver keeps in memory between SETs.
#[derive(Debug, Default)]
pub struct Runtime {
    /// When each upstream's JWKS was last fetched again (seconds), to rate-limit refreshes.
    pub jwks_refreshed_at: std::sync::Mutex<std::collections::BTreeMap<String, i64>>,
    /// Each upstream's verifier, built from its pinned JWKS, with the JWKS and audience it was
    /// built from: building one per SET (parsing every key) would cost more than verifying.
    pub verifiers: validate::VerifierCache,
    /// Each upstream's access token and when to fetch a new one (None: never expires).
    pub tokens: std::sync::Mutex<std::collections::BTreeMap<String, (String, Option<i64>)>>,
}

/// Path prefix of the push endpoints: this, then the upstream's id.
pub const PUSH_PREFIX: &str = "/ssf/receiver/";

/// The receiver's routes.
pub fn router(endpoints: &Endpoints) -> Router<AppState> {
    Router::new()
        .route(
            &endpoints.path(&format!("{PUSH_PREFIX}{{upstream_id}}")),
            post(push::receive),
        )
        .merge(admin::router())
}
