//! Persistence. One domain-level [`Store`] trait; [`connect`] picks SQLite or PostgreSQL by the
//! URL scheme. Row types here are storage types: they are converted to and from wire types at
//! the edges, so a schema change never silently changes the API.
//!
//! Both implementations run the same SQL (`$N` placeholders, `i64` epoch seconds, TEXT ids and
//! JSON), written once in `storage/sql.rs`; the few differences between the two dialects are
//! the parameters of that one macro. The schema lives in `migrations/sqlite` and
//! `migrations/postgres`, with the same numbers and names, embedded and applied at start.

#[macro_use]
mod sql;
#[macro_use]
pub mod sessions;
mod postgres;
mod sqlite;

use std::sync::Arc;

use async_trait::async_trait;

pub use postgres::PgStore;
pub use sqlite::SqliteStore;

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

impl From<sqlx::Error> for DbError {
    fn from(error: sqlx::Error) -> Self {
        match &error {
            sqlx::Error::RowNotFound => Self::NotFound,
            sqlx::Error::Database(db) if db.is_unique_violation() => {
                Self::Conflict(db.message().to_owned())
            }
            _ => Self::Other(error.to_string()),
        }
    }
}

impl From<sqlx::migrate::MigrateError> for DbError {
    fn from(error: sqlx::migrate::MigrateError) -> Self {
        Self::Other(format!("migration failed: {error}"))
    }
}

/// Writes a redacting `Debug` for a row type: the listed fields are shown, the secret ones
/// replaced, so that secrets never reach a log through `{:?}`.
macro_rules! redacted_debug {
    ($row:ident { $($field:ident),* } secret { $($secret:ident),* }) => {
        impl std::fmt::Debug for $row {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.debug_struct(stringify!($row))
                    $(.field(stringify!($field), &self.$field))*
                    $(.field(stringify!($secret), &"<redacted>"))*
                    .finish()
            }
        }
    };
}

/// A signing key as stored. `private_jwk` is secret material: never logged, never served.
#[derive(Clone, PartialEq, Eq, sqlx::FromRow)]
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
redacted_debug!(SigningKeyRow { kid, alg, created_at, retires_at } secret { private_jwk });

/// A receiver registered as an OAuth client.
#[derive(Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct ClientRow {
    /// The `client_id`.
    pub client_id: String,
    /// A name for people.
    pub name: String,
    /// SHA-256 of the client secret.
    pub secret_hash: String,
    /// Space-separated scopes the client may be granted.
    pub scopes: String,
    /// Creation time.
    pub created_at: i64,
    /// Revocation time, if revoked.
    pub revoked_at: Option<i64>,
}
redacted_debug!(ClientRow { client_id, name, scopes, created_at, revoked_at } secret { secret_hash });

/// A static bearer credential: a receiver token, or a publisher or admin credential.
#[derive(Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct CredentialRow {
    /// Credential id.
    pub id: String,
    /// `receiver`, `publisher` or `admin`.
    pub kind: String,
    /// A name for people.
    pub name: String,
    /// SHA-256 of the token.
    pub token_hash: String,
    /// Space-separated scopes.
    pub scopes: String,
    /// The client a receiver token acts for.
    pub client_id: Option<String>,
    /// Creation time.
    pub created_at: i64,
    /// Revocation time, if revoked.
    pub revoked_at: Option<i64>,
}
redacted_debug!(CredentialRow { id, kind, name, scopes, client_id, created_at, revoked_at } secret { token_hash });

/// A transmitter stream. JSON columns hold wire values (`aud`, event-type lists).
#[derive(Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct StreamRow {
    /// Stream id.
    pub stream_id: String,
    /// Owning receiver client.
    pub client_id: String,
    /// `aud`, JSON.
    pub aud: String,
    /// `events_requested`, JSON array, if given.
    pub events_requested: Option<String>,
    /// `events_delivered`, JSON array.
    pub events_delivered: String,
    /// Delivery method URI.
    pub delivery_method: String,
    /// Push or poll endpoint URL.
    pub endpoint_url: Option<String>,
    /// Push `Authorization` header value (secret).
    pub authorization_header: Option<String>,
    /// Receiver's description.
    pub description: Option<String>,
    /// `enabled`, `paused` or `disabled`.
    pub status: String,
    /// Why.
    pub status_reason: Option<String>,
    /// Seconds between verification requests.
    pub min_verification_interval: i64,
    /// Last verification request.
    pub last_verification_at: Option<i64>,
    /// Creation time.
    pub created_at: i64,
    /// Last change.
    pub updated_at: i64,
}
redacted_debug!(StreamRow {
    stream_id, client_id, aud, events_requested, events_delivered, delivery_method, endpoint_url,
    description, status, status_reason, min_verification_interval, last_verification_at,
    created_at, updated_at
} secret { authorization_header });

/// A subject added to or removed from a stream.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct SubjectRow {
    /// The stream.
    pub stream_id: String,
    /// Canonical text of the subject (unique per stream).
    pub subject_key: String,
    /// The subject, JSON.
    pub subject: String,
    /// `added` or `removed`.
    pub mode: String,
    /// The receiver's `verified` flag.
    pub verified: bool,
    /// When this row last changed.
    pub changed_at: i64,
}

/// A signed SET to put in the outbox.
#[derive(Clone, PartialEq, Eq)]
pub struct NewOutboxRow {
    /// The stream it goes to.
    pub stream_id: String,
    /// Its `jti`.
    pub jti: String,
    /// The compact JWS.
    pub token: String,
    /// Held for a paused stream: not delivered until the stream is enabled.
    pub held: bool,
    /// Delivered whatever the stream's status (stream-updated announcements, SSF-UPD-02).
    pub bypass_status: bool,
}
redacted_debug!(NewOutboxRow { stream_id, jti, held, bypass_status } secret {});

/// A SET claimed for a push attempt.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct LeasedSet {
    /// Outbox row id.
    pub id: i64,
    /// The stream.
    pub stream_id: String,
    /// Its `jti`.
    pub jti: String,
    /// The compact JWS.
    pub token: String,
    /// Failed attempts so far.
    pub attempts: i32,
    /// When it was enqueued.
    pub created_at: i64,
    /// Sent whatever the stream's status (a stream-updated announcement).
    pub bypass_status: bool,
}

/// An outbox row as an admin sees it (dead letters, rejected SETs).
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct OutboxEntry {
    /// Outbox row id.
    pub id: i64,
    /// The stream.
    pub stream_id: String,
    /// Its `jti`.
    pub jti: String,
    /// `pending`, `held`, `dead` or `rejected`.
    pub state: String,
    /// Failed attempts.
    pub attempts: i32,
    /// When it was enqueued.
    pub created_at: i64,
    /// The last failure.
    pub last_error: Option<String>,
}

/// Delivery counters and the last failure of a stream.
#[derive(Debug, Clone, PartialEq, Eq, Default, sqlx::FromRow)]
pub struct DeliveryStats {
    /// SETs delivered (push) or acknowledged (poll).
    pub delivered: i64,
    /// Failed attempts.
    pub failed: i64,
    /// SETs given up on.
    pub dead: i64,
    /// Last success.
    pub last_success_at: Option<i64>,
    /// Last failure.
    pub last_failure_at: Option<i64>,
    /// The last failure's description (for push: the receiver's error body).
    pub last_error: Option<String>,
}

/// An upstream transmitter ssfd receives SETs from (the receiver role).
#[derive(Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct UpstreamRow {
    /// Local id; also the last segment of its push endpoint.
    pub id: String,
    /// The transmitter's issuer, compared exactly (SSF-DISC-07).
    pub issuer: String,
    /// Its discovered metadata, JSON.
    pub metadata: Option<String>,
    /// How ssfd authorizes to it (token endpoint, client credentials or static token), JSON
    /// with secrets.
    pub auth: String,
    /// Delivery method URI.
    pub delivery_method: String,
    /// Event types requested, JSON array.
    pub events_requested: String,
    /// The stream id at the transmitter.
    pub remote_stream_id: Option<String>,
    /// Poll delivery: the transmitter's endpoint for this stream.
    pub poll_url: Option<String>,
    /// The `aud` its SETs must carry.
    pub audience: String,
    /// The pinned JWK Set its SETs are verified with, JSON.
    pub jwks: Option<String>,
    /// SHA-256 of the push secret ssfd gave it as `authorization_header`.
    pub push_token_hash: Option<String>,
    /// `enabled`, `paused`, `disabled` (as the transmitter last said) or a local state.
    pub status: String,
    /// The `state` of the verification ssfd last requested.
    pub verification_state: Option<String>,
    /// When a verification last succeeded.
    pub verified_at: Option<i64>,
    /// Creation time.
    pub created_at: i64,
    /// Last change.
    pub updated_at: i64,
}
redacted_debug!(UpstreamRow {
    id, issuer, delivery_method, events_requested, remote_stream_id, poll_url, audience, status,
    verification_state, verified_at, created_at, updated_at
} secret { metadata, auth, jwks, push_token_hash });

/// A SET accepted from an upstream transmitter.
#[derive(Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct ReceivedEventRow {
    /// The upstream it came from, if known.
    pub upstream_id: Option<String>,
    /// Its `iss`.
    pub iss: String,
    /// Its `jti`.
    pub jti: String,
    /// The compact JWS as received.
    pub token: String,
    /// The verified claims, JSON.
    pub claims: String,
    /// The event type URI.
    pub event_type: String,
    /// Arrival time.
    pub arrived_at: i64,
    /// What was done with it.
    pub outcome: String,
}
redacted_debug!(ReceivedEventRow { upstream_id, iss, jti, event_type, arrived_at, outcome } secret { token, claims });

/// A claim on due outbox rows, so that several workers (and replicas) never send one SET twice
/// at once.
#[derive(Debug, Clone, Copy)]
pub struct Lease<'a> {
    /// Now, seconds.
    pub now: i64,
    /// At most this many rows.
    pub limit: i64,
    /// The claim lapses at this time (a crashed worker's rows come back).
    pub until: i64,
    /// Who claims.
    pub owner: &'a str,
}

/// Everything ssfd persists.
#[async_trait]
pub trait Store: sessions::SessionStore + Send + Sync + std::fmt::Debug + 'static {
    // Signing keys.

    /// Adds a signing key.
    async fn insert_signing_key(&self, key: &SigningKeyRow) -> Result<(), DbError>;
    /// All signing keys, oldest first.
    async fn list_signing_keys(&self) -> Result<Vec<SigningKeyRow>, DbError>;
    /// In one transaction: every key retires at `retire_previous_at` at the latest (keys
    /// retiring earlier keep their time), then `new_key` is inserted (and, being newest,
    /// becomes the signing key).
    async fn rotate_signing_key(
        &self,
        new_key: &SigningKeyRow,
        retire_previous_at: i64,
    ) -> Result<(), DbError>;

    // Clients and credentials.

    /// Registers a receiver client.
    async fn insert_client(&self, client: &ClientRow) -> Result<(), DbError>;
    /// A client by id.
    async fn get_client(&self, client_id: &str) -> Result<ClientRow, DbError>;
    /// Every client.
    async fn list_clients(&self) -> Result<Vec<ClientRow>, DbError>;
    /// Replaces a client's secret hash.
    async fn set_client_secret(&self, client_id: &str, secret_hash: &str) -> Result<(), DbError>;
    /// Revokes a client and its receiver credentials.
    async fn revoke_client(&self, client_id: &str, now: i64) -> Result<(), DbError>;
    /// Adds a static credential.
    async fn insert_credential(&self, credential: &CredentialRow) -> Result<(), DbError>;
    /// A credential by the hash of its token.
    async fn find_credential_by_token_hash(
        &self,
        token_hash: &str,
    ) -> Result<CredentialRow, DbError>;
    /// Every credential of a kind.
    async fn list_credentials(&self, kind: &str) -> Result<Vec<CredentialRow>, DbError>;
    /// Revokes a credential.
    async fn revoke_credential(&self, id: &str, now: i64) -> Result<(), DbError>;

    // Streams.

    /// Creates a stream.
    async fn insert_stream(&self, stream: &StreamRow) -> Result<(), DbError>;
    /// A stream by id.
    async fn get_stream(&self, stream_id: &str) -> Result<StreamRow, DbError>;
    /// The streams of a client, or every stream, oldest first.
    async fn list_streams(&self, client_id: Option<&str>) -> Result<Vec<StreamRow>, DbError>;
    /// Replaces a stream's configuration (not its status).
    async fn update_stream(&self, stream: &StreamRow) -> Result<(), DbError>;
    /// Deletes a stream with its subjects and outbox.
    async fn delete_stream(&self, stream_id: &str) -> Result<(), DbError>;
    /// In one transaction: sets the status; on `enabled` releases held SETs, on `paused` holds
    /// pending ones, on `disabled` drops them (SSF-ST-06..08); then enqueues `announce`.
    async fn set_stream_status(
        &self,
        stream_id: &str,
        status: &str,
        reason: Option<&str>,
        now: i64,
        announce: &[NewOutboxRow],
    ) -> Result<(), DbError>;
    /// In one transaction: records a verification request and enqueues its SET.
    async fn record_verification(
        &self,
        stream_id: &str,
        now: i64,
        set: &NewOutboxRow,
    ) -> Result<(), DbError>;

    // Subjects.

    /// Inserts or replaces a stream subject (by stream and key).
    async fn upsert_subject(&self, subject: &SubjectRow) -> Result<(), DbError>;
    /// Removes a stream subject; `NotFound` when absent.
    async fn delete_subject(&self, stream_id: &str, subject_key: &str) -> Result<(), DbError>;
    /// The subjects of one stream, or of every stream.
    async fn list_subjects(&self, stream_id: Option<&str>) -> Result<Vec<SubjectRow>, DbError>;

    // Outbox.

    /// Enqueues SETs atomically: all of them or, on any error, none.
    async fn enqueue(&self, sets: &[NewOutboxRow], now: i64) -> Result<(), DbError>;
    /// Claims due SETs of push streams that may send now (enabled, or announcements).
    async fn lease_due(&self, lease: Lease<'_>) -> Result<Vec<LeasedSet>, DbError>;
    /// Pushed SETs were accepted: they leave the outbox (one transaction for all).
    async fn mark_delivered(&self, ids: &[i64], now: i64) -> Result<(), DbError>;
    /// A push failed and will be retried at `next_attempt_at`.
    async fn schedule_retry(
        &self,
        id: i64,
        next_attempt_at: i64,
        error: &str,
        now: i64,
    ) -> Result<(), DbError>;
    /// A SET is given up on: it stays as a dead letter.
    async fn dead_letter(&self, id: i64, error: &str, now: i64) -> Result<(), DbError>;
    /// Pending SETs of a poll stream, oldest first, at most `limit`.
    async fn pending_sets(
        &self,
        stream_id: &str,
        limit: i64,
    ) -> Result<Vec<(String, String)>, DbError>;
    /// Acknowledged SETs leave the outbox; returns how many did.
    async fn acknowledge(&self, stream_id: &str, jtis: &[String], now: i64)
        -> Result<u64, DbError>;
    /// SETs the receiver reported invalid (RFC 8936 `setErrs`): kept as rejected with the error.
    async fn reject_sets(
        &self,
        stream_id: &str,
        errors: &[(String, String)],
        now: i64,
    ) -> Result<(), DbError>;
    /// Dead letters back to pending; returns how many.
    async fn replay_dead(&self, stream_id: &str, now: i64) -> Result<u64, DbError>;
    /// Outbox rows of a stream in a state, oldest first.
    async fn outbox_entries(
        &self,
        stream_id: &str,
        state: &str,
        limit: i64,
    ) -> Result<Vec<OutboxEntry>, DbError>;
    /// Delivery counters of a stream.
    async fn delivery_stats(&self, stream_id: &str) -> Result<DeliveryStats, DbError>;

    // Receiver.

    /// Registers an upstream.
    async fn insert_upstream(&self, upstream: &UpstreamRow) -> Result<(), DbError>;
    /// An upstream by id.
    async fn get_upstream(&self, id: &str) -> Result<UpstreamRow, DbError>;
    /// Every upstream, oldest first.
    async fn list_upstreams(&self) -> Result<Vec<UpstreamRow>, DbError>;
    /// Replaces an upstream's row.
    async fn update_upstream(&self, upstream: &UpstreamRow) -> Result<(), DbError>;
    /// Removes an upstream (its received SETs stay, detached).
    async fn delete_upstream(&self, id: &str) -> Result<(), DbError>;
    /// The stored SET with this (iss, jti), if any.
    async fn get_received(&self, iss: &str, jti: &str)
        -> Result<Option<ReceivedEventRow>, DbError>;
    /// Stores an accepted SET unless one with its (iss, jti) is stored; true when new.
    async fn insert_received(&self, event: &ReceivedEventRow) -> Result<bool, DbError>;
    /// The latest received SETs of an upstream (or of all), newest first.
    async fn list_received(
        &self,
        upstream_id: Option<&str>,
        limit: i64,
    ) -> Result<Vec<ReceivedEventRow>, DbError>;
    /// Forgets received SETs that arrived before `before` (past the replay window); returns
    /// how many.
    async fn prune_received(&self, before: i64) -> Result<u64, DbError>;
    /// Records a health check of an upstream stream: `error` is `None` when it succeeded.
    async fn record_upstream_health(
        &self,
        upstream_id: &str,
        now: i64,
        error: Option<&str>,
    ) -> Result<(), DbError>;
    /// The last health check of an upstream, if any.
    async fn upstream_health(&self, upstream_id: &str) -> Result<Option<UpstreamHealth>, DbError>;
}

/// The last health check of an upstream stream.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct UpstreamHealth {
    /// When it was checked.
    pub checked_at: i64,
    /// When a check last succeeded.
    pub ok_at: Option<i64>,
    /// The last check's error, if it failed.
    pub error: Option<String>,
}

/// A shared handle to the configured store.
pub type SharedStore = Arc<dyn Store>;

/// Opens the store named by `url` (`sqlite:PATH`, `sqlite::memory:`, `postgres://...`) and
/// applies the migrations.
pub async fn connect(url: &str, max_connections: u32) -> Result<SharedStore, DbError> {
    let scheme = url.split(':').next().unwrap_or_default();
    match scheme {
        "sqlite" => Ok(Arc::new(SqliteStore::connect(url, max_connections).await?)),
        "postgres" | "postgresql" => Ok(Arc::new(PgStore::connect(url, max_connections).await?)),
        other => Err(DbError::Other(format!(
            "unsupported database URL scheme `{other}`: use sqlite: or postgres://"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::path::Path;

    fn names(folder: &str) -> BTreeSet<String> {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("migrations")
            .join(folder);
        std::fs::read_dir(dir)
            .unwrap()
            .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
            .collect()
    }

    #[test]
    fn migration_folders_stay_in_lockstep() {
        let sqlite = names("sqlite");
        assert!(!sqlite.is_empty());
        assert_eq!(sqlite, names("postgres"));
    }

    #[test]
    fn secrets_are_redacted_in_debug() {
        let row = super::ClientRow {
            client_id: "c".into(),
            name: "n".into(),
            secret_hash: "hash-value".into(),
            scopes: "ssf.read".into(),
            created_at: 0,
            revoked_at: None,
        };
        assert!(!format!("{row:?}").contains("hash-value"));
    }
}
