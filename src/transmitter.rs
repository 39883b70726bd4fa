//! The transmitter role: SSF metadata, stream management, event fan-out, the durable outbox,
//! push delivery (RFC 8935) and poll delivery (RFC 8936).

pub mod batcher;
pub mod cache;
pub mod fanout;
pub mod intake;
mod management;
pub mod metadata;
mod poll;
pub mod push;
pub mod push_target;
pub mod repo;
pub mod retry;
pub mod streams;

use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use axum::Router;

use crate::http::{AppState, Endpoints};
use metadata::paths;

/// The transmitter's routes, under the issuer's path.
pub fn router(endpoints: &Endpoints) -> Router<AppState> {
    Router::new()
        .merge(metadata::router(endpoints))
        .route(
            &endpoints.path(paths::CONFIGURATION),
            post(management::create)
                .get(management::read)
                .patch(management::update)
                .put(management::replace)
                .delete(management::delete),
        )
        .route(
            &endpoints.path(paths::STATUS),
            get(management::read_status).post(management::update_status),
        )
        .route(
            &endpoints.path(paths::ADD_SUBJECT),
            post(management::add_subject),
        )
        .route(
            &endpoints.path(paths::REMOVE_SUBJECT),
            post(management::remove_subject),
        )
        .route(
            &endpoints.path(paths::VERIFICATION),
            post(management::verify),
        )
        .route(
            &endpoints.path(&format!("{}{{stream_id}}", paths::POLL_PREFIX)),
            post(poll::poll),
        )
        .route(
            &endpoints.path(paths::EVENTS),
            post(intake::post_event).layer(DefaultBodyLimit::max(fanout::MAX_INTAKE_BYTES)),
        )
}
