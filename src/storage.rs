//! Persistence. One domain-level [`Store`] trait; [`connect`] picks SQLite or PostgreSQL by the
//! URL scheme. Row types here are storage types: they are converted to and from wire types at
//! the edges, so a schema change never silently changes the API.

use std::sync::Arc;

use async_trait::async_trait;

/// A storage failure.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// The row asked for does not exist.
    #[error("not found")]
    NotFound,
    /// A uniqueness rule was violated.
    #[error("conflict: {0}")]
    Conflict(String),
    /// Anything else: connection, SQL, migration.
    #[error("database error: {0}")]
    Other(String),
}

/// A signing key as stored. `private_jwk` is secret material: never logged, never served.
#[derive(Clone, PartialEq, Eq)]
pub struct SigningKeyRow {
    /// Key id, also the JWS `kid`.
    pub kid: String,
    /// JWS algorithm name, e.g. `RS256`.
    pub alg: String,
    /// The private key as a JWK (JSON text).
    pub private_jwk: String,
    /// Creation time, seconds since the epoch.
    pub created_at: i64,
    /// When set, the key stops being published in the JWKS at this time (seconds).
    pub retires_at: Option<i64>,
}

impl std::fmt::Debug for SigningKeyRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKeyRow")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .field("private_jwk", &"<redacted>")
            .field("created_at", &self.created_at)
            .field("retires_at", &self.retires_at)
            .finish()
    }
}

/// Everything ssfd persists.
#[async_trait]
pub trait Store: Send + Sync + std::fmt::Debug + 'static {
    /// Adds a signing key.
    async fn insert_signing_key(&self, key: &SigningKeyRow) -> Result<(), DbError>;
    /// All signing keys, oldest first.
    async fn list_signing_keys(&self) -> Result<Vec<SigningKeyRow>, DbError>;
    /// In one transaction: every key without a `retires_at` gets `retire_previous_at`, then
    /// `new_key` is inserted (and, being newest, becomes the signing key).
    async fn rotate_signing_key(
        &self,
        new_key: &SigningKeyRow,
        retire_previous_at: i64,
    ) -> Result<(), DbError>;
}

/// A shared handle to the configured store.
pub type SharedStore = Arc<dyn Store>;
