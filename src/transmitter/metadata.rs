//! The transmitter's discovery documents: SSF configuration metadata (SSF 1.0 §7) and, for
//! the token endpoint, OAuth 2.0 authorization server metadata (RFC 8414).

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;

use crate::auth::{SCOPE_MANAGE, SCOPE_READ};
use crate::http::{AppState, Endpoints};
use crate::protocol::metadata::AuthorizationScheme;
use crate::protocol::{DeliveryMethod, Extra, TransmitterMetadata};

/// Paths of the transmitter's endpoints under the issuer's path. SSF fixes none (SSF-API-06).
pub mod paths {
    /// Stream configuration (create, read, update, replace, delete).
    pub const CONFIGURATION: &str = "/ssf/stream";
    /// Stream status.
    pub const STATUS: &str = "/ssf/status";
    /// Add subject.
    pub const ADD_SUBJECT: &str = "/ssf/subjects/add";
    /// Remove subject.
    pub const REMOVE_SUBJECT: &str = "/ssf/subjects/remove";
    /// Verification.
    pub const VERIFICATION: &str = "/ssf/verify";
    /// Poll endpoints, one per stream: this prefix, then the stream id (SSF-DEL-06).
    pub const POLL_PREFIX: &str = "/ssf/poll/";
    /// Event intake from the local identity provider.
    pub const EVENTS: &str = "/events";
}

/// The SSF metadata of this transmitter: every URL derives from the one issuer.
pub fn ssf_metadata(state: &AppState) -> TransmitterMetadata {
    let endpoints = &state.endpoints;
    let mut extra = Extra::new();
    // Not an SSF member (§7.1 allows others): tells receivers where to get a token without
    // a second discovery round trip.
    extra.insert(
        "token_endpoint".to_owned(),
        endpoints.url(crate::auth::TOKEN_PATH).into(),
    );
    TransmitterMetadata {
        spec_version: Some("1_0".to_owned()),
        issuer: state.config.server.issuer.clone(),
        jwks_uri: Some(endpoints.url(Endpoints::JWKS)),
        delivery_methods_supported: vec![DeliveryMethod::Push, DeliveryMethod::Poll],
        configuration_endpoint: Some(endpoints.url(paths::CONFIGURATION)),
        status_endpoint: Some(endpoints.url(paths::STATUS)),
        add_subject_endpoint: Some(endpoints.url(paths::ADD_SUBJECT)),
        remove_subject_endpoint: Some(endpoints.url(paths::REMOVE_SUBJECT)),
        verification_endpoint: Some(endpoints.url(paths::VERIFICATION)),
        critical_subject_members: Vec::new(),
        authorization_schemes: vec![AuthorizationScheme {
            spec_urn: "urn:ietf:rfc:6749".to_owned(),
            extra: Extra::new(),
        }],
        default_subjects: Some(state.config.transmitter.default_subjects),
        extra,
    }
}

/// The discovery routes.
pub fn router(endpoints: &Endpoints) -> Router<AppState> {
    Router::new()
        .route(&endpoints.metadata_path(), get(ssf_configuration))
        .route(
            &endpoints.well_known_path("/.well-known/oauth-authorization-server"),
            get(oauth_metadata),
        )
}

// SSF 1.0 §7.2: https://openid.net/specs/openid-sharedsignals-framework-1_0.html#section-7.2
async fn ssf_configuration(State(state): State<AppState>) -> impl IntoResponse {
    (
        [(header::CACHE_CONTROL, "public, max-age=300")],
        Json(ssf_metadata(&state)),
    )
}

// RFC 8414 §3: authorization server metadata, path-inserted like the SSF document.
async fn oauth_metadata(State(state): State<AppState>) -> impl IntoResponse {
    let endpoints = &state.endpoints;
    Json(json!({
        "issuer": state.config.server.issuer,
        "token_endpoint": endpoints.url(crate::auth::TOKEN_PATH),
        "jwks_uri": endpoints.url(Endpoints::JWKS),
        "grant_types_supported": ["client_credentials"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "scopes_supported": [SCOPE_READ, SCOPE_MANAGE],
        "response_types_supported": ["token"],
    }))
}
