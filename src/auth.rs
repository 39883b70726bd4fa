//! Who is calling. Receivers authenticate to the stream management API with an OAuth 2.0
//! bearer token (RFC 6750) of one of three kinds, all accepted side by side:
//!
//! 1. an access token from ssfd's own token endpoint (client credentials, RFC 6749 §4.4):
//!    a short-lived JWT (`typ` `at+jwt`, RFC 9068) signed with ssfd's signing key;
//! 2. a JWT access token from an external authorization server (`[auth.external]`);
//! 3. a static token an admin created for a client (stored hashed).
//!
//! Scopes follow the CAEP Interoperability Profile (IOP-SC-02): `ssf.read` reads,
//! `ssf.manage` reads and changes. Publishers (`POST /events`) and admins hold credentials of
//! their own kinds; a receiver token is never accepted where those are required.

mod token_endpoint;

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{header, HeaderMap};
use serde_json::Value;
use sha2::{Digest, Sha256};
use tokio::sync::RwLock;

use crate::clock::Clock;
use crate::config::{AuthConfig, ExternalAuthConfig};
use crate::http::{ApiError, AppState};
use crate::jose::{KeyRing, SetVerifier, VerifyError};
use crate::storage::SharedStore;

pub use token_endpoint::{router, TOKEN_PATH};

/// Scope that allows reading streams (IOP-SC-02).
pub const SCOPE_READ: &str = "ssf.read";
/// Scope that allows creating, changing and deleting streams (IOP-SC-02).
pub const SCOPE_MANAGE: &str = "ssf.manage";

/// How long a cached verifier of ssfd's own tokens is trusted before it is rebuilt from the
/// store, so that a key rotated by another process (or the CLI) is picked up.
const OWN_KEYS_TTL_SECS: i64 = 60;

/// A hex SHA-256 digest: how client secrets and static tokens are stored. They are 256-bit
/// random values (`ids::new_secret`), so a fast hash is as good as a slow one here.
pub fn hash_secret(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// Compares a presented secret with a stored hash in constant time.
pub fn secret_matches(secret: &str, stored_hash: &str) -> bool {
    let presented = hash_secret(secret);
    presented.len() == stored_hash.len()
        && presented
            .bytes()
            .zip(stored_hash.bytes())
            .fold(0u8, |diff, (a, b)| diff | (a ^ b))
            == 0
}

/// Registers a receiver client; returns it with its secret, which is shown once and stored
/// only as a hash.
pub async fn register_client(
    store: &dyn crate::storage::Store,
    name: &str,
    scopes: &[&str],
    now: i64,
) -> Result<(crate::storage::ClientRow, String), crate::storage::DbError> {
    let secret = crate::ids::new_secret();
    let client = crate::storage::ClientRow {
        client_id: crate::ids::new_id(),
        name: name.to_owned(),
        secret_hash: hash_secret(&secret),
        scopes: scopes.join(" "),
        created_at: now,
        revoked_at: None,
    };
    store.insert_client(&client).await?;
    Ok((client, secret))
}

/// The kinds of static credential.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CredentialKind {
    /// A receiver's static bearer token, bound to a client.
    Receiver,
    /// The identity provider's credential for `POST /events`.
    Publisher,
    /// An administrator's credential.
    Admin,
    /// An application's credential for the session API (`/sessions`).
    Application,
}

impl CredentialKind {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Receiver => "receiver",
            Self::Publisher => "publisher",
            Self::Admin => "admin",
            Self::Application => "application",
        }
    }
}

/// Creates a static credential; returns it with its token, shown once and stored hashed.
pub async fn create_credential(
    store: &dyn crate::storage::Store,
    kind: CredentialKind,
    name: &str,
    scopes: &[&str],
    client_id: Option<&str>,
    now: i64,
) -> Result<(crate::storage::CredentialRow, String), crate::storage::DbError> {
    let token = crate::ids::new_secret();
    let credential = crate::storage::CredentialRow {
        id: crate::ids::new_id(),
        kind: kind.as_str().to_owned(),
        name: name.to_owned(),
        token_hash: hash_secret(&token),
        scopes: scopes.join(" "),
        client_id: client_id.map(str::to_owned),
        created_at: now,
        revoked_at: None,
    };
    store.insert_credential(&credential).await?;
    Ok((credential, token))
}

/// An authenticated receiver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Receiver {
    /// The client the streams belong to.
    pub client_id: String,
    /// Granted scopes.
    pub scopes: Vec<String>,
}

impl Receiver {
    /// Fails with 403 `insufficient_scope` unless the token may change streams.
    pub fn require_manage(&self) -> Result<(), ApiError> {
        if self.scopes.iter().any(|s| s == SCOPE_MANAGE) {
            Ok(())
        } else {
            Err(ApiError::InsufficientScope(SCOPE_MANAGE))
        }
    }

    /// Fails with 403 `insufficient_scope` unless the token may read streams.
    pub fn require_read(&self) -> Result<(), ApiError> {
        if self
            .scopes
            .iter()
            .any(|s| s == SCOPE_READ || s == SCOPE_MANAGE)
        {
            Ok(())
        } else {
            Err(ApiError::InsufficientScope(SCOPE_READ))
        }
    }
}

/// Checks bearer tokens. Shared by every request; caches built verifiers.
#[derive(Debug)]
pub struct Authenticator {
    issuer: String,
    store: SharedStore,
    clock: Arc<dyn Clock>,
    config: AuthConfig,
    http: reqwest::Client,
    own: RwLock<Option<Cached>>,
    external: RwLock<Option<Cached>>,
    /// Application credentials by token hash, with when they were read: the decision API is
    /// the hot path, and a database read per decision would bound it.
    applications: std::sync::Mutex<std::collections::HashMap<String, (String, i64)>>,
}

/// How long an application credential is trusted from memory: a revocation takes effect
/// within this many seconds.
const APPLICATION_CACHE_SECS: i64 = 5;
/// Most application credentials kept in memory.
const APPLICATION_CACHE_SIZE: usize = 4096;

#[derive(Debug)]
struct Cached {
    verifier: SetVerifier,
    built_at: i64,
}

impl Authenticator {
    /// An authenticator for tokens whose audience is `issuer`.
    pub fn new(
        issuer: String,
        config: AuthConfig,
        store: SharedStore,
        clock: Arc<dyn Clock>,
        http: reqwest::Client,
    ) -> Self {
        Self {
            issuer,
            store,
            clock,
            config,
            http,
            own: RwLock::new(None),
            external: RwLock::new(None),
            applications: std::sync::Mutex::default(),
        }
    }

    /// The lifetime of issued access tokens, seconds.
    pub fn token_lifetime(&self) -> i64 {
        self.config.access_token_lifetime_secs
    }

    /// Issues an access token for `client_id` with `scopes`.
    pub async fn issue_access_token(
        &self,
        client_id: &str,
        scopes: &[String],
    ) -> Result<String, ApiError> {
        let now = self.clock.now();
        let ring = KeyRing::new(self.store.list_signing_keys().await?, now)?;
        let claims = serde_json::json!({
            "iss": self.issuer,
            "aud": self.issuer,
            "sub": client_id,
            "client_id": client_id,
            "scope": scopes.join(" "),
            "iat": now,
            "nbf": now,
            "exp": now + self.config.access_token_lifetime_secs,
            "jti": crate::ids::new_id(),
        });
        Ok(ring.signer().sign_access_token(&claims)?)
    }

    /// Authenticates the bearer token of a request as a receiver.
    pub async fn receiver(
        &self,
        headers: &HeaderMap,
        query: Option<&str>,
    ) -> Result<Receiver, ApiError> {
        // RFC 6750 §2.3 / IOP-RS-02: tokens in the query string are refused outright.
        if let Some(query) = query {
            if url::form_urlencoded::parse(query.as_bytes()).any(|(name, _)| name == "access_token")
            {
                return Err(ApiError::BadRequest(
                    "access tokens are not accepted in the query string; use the Authorization header".to_owned(),
                ));
            }
        }
        let token = bearer_token(headers)?;
        if looks_like_jwt(token) {
            return self.jwt_receiver(token).await;
        }
        let credential = self
            .store
            .find_credential_by_token_hash(&hash_secret(token))
            .await
            .ok()
            .filter(|c| c.kind == "receiver" && c.revoked_at.is_none());
        match credential.and_then(|c| c.client_id.map(|client_id| (client_id, c.scopes))) {
            Some((client_id, scopes)) => Ok(Receiver {
                client_id,
                scopes: split_scopes(&scopes),
            }),
            None => Err(invalid_token("unknown or revoked token")),
        }
    }

    async fn jwt_receiver(&self, token: &str) -> Result<Receiver, ApiError> {
        let (_, claims) =
            crate::jose::peek_unverified(token).map_err(|_| invalid_token("malformed token"))?;
        let issuer = claims
            .get("iss")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let verified = if issuer == self.issuer {
            self.verify_own(token).await?
        } else if self
            .config
            .external
            .as_ref()
            .is_some_and(|e| e.issuer == issuer)
        {
            self.verify_external(token).await?
        } else {
            return Err(invalid_token("token from an unknown issuer"));
        };
        let client_id = verified
            .get("client_id")
            .or_else(|| verified.get("sub"))
            .and_then(Value::as_str)
            .ok_or_else(|| invalid_token("token names no client"))?
            .to_owned();
        if issuer == self.issuer {
            // A client revoked since the token was issued loses access at once.
            let client = self.store.get_client(&client_id).await.ok();
            if client.is_none_or(|c| c.revoked_at.is_some()) {
                return Err(invalid_token("the client has been revoked"));
            }
        }
        let scopes = verified
            .get("scope")
            .and_then(Value::as_str)
            .unwrap_or_default();
        Ok(Receiver {
            client_id,
            scopes: split_scopes(scopes),
        })
    }

    async fn verify_own(&self, token: &str) -> Result<serde_json::Map<String, Value>, ApiError> {
        let now = self.clock.now();
        for attempt in 0..2 {
            {
                let cached = self.own.read().await;
                if let Some(cached) = cached
                    .as_ref()
                    .filter(|c| now - c.built_at < OWN_KEYS_TTL_SECS)
                {
                    match cached.verifier.verify(token) {
                        Ok(verified) => return Ok(verified.claims),
                        Err(VerifyError::UnknownKey(_)) if attempt == 0 => {}
                        Err(error) => return Err(invalid_token(&error.description())),
                    }
                }
            }
            let ring = KeyRing::new(self.store.list_signing_keys().await?, now)?;
            let verifier =
                SetVerifier::builder(&self.issuer, &self.issuer, ring.jwks(), self.clock.clone())
                    .access_token()
                    .max_clock_skew(0)
                    .build()?;
            *self.own.write().await = Some(Cached {
                verifier,
                built_at: now,
            });
        }
        Err(invalid_token("unknown signing key"))
    }

    async fn verify_external(
        &self,
        token: &str,
    ) -> Result<serde_json::Map<String, Value>, ApiError> {
        let external = self
            .config
            .external
            .as_ref()
            .expect("checked by the caller");
        let now = self.clock.now();
        for attempt in 0..2 {
            {
                let cached = self.external.read().await;
                if let Some(cached) = cached.as_ref() {
                    match cached.verifier.verify(token) {
                        Ok(verified) => return Ok(verified.claims),
                        // Refresh on an unknown key at most once a minute, so a flood of
                        // made-up kids cannot hammer the authorization server.
                        Err(VerifyError::UnknownKey(_))
                            if attempt == 0 && now - cached.built_at >= OWN_KEYS_TTL_SECS => {}
                        Err(error) => return Err(invalid_token(&error.description())),
                    }
                }
            }
            let verifier = self.fetch_external(external).await?;
            *self.external.write().await = Some(Cached {
                verifier,
                built_at: now,
            });
        }
        Err(invalid_token("unknown signing key"))
    }

    async fn fetch_external(&self, external: &ExternalAuthConfig) -> Result<SetVerifier, ApiError> {
        let jwks: Value = self
            .http
            .get(&external.jwks_uri)
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .map_err(|e| ApiError::Internal(format!("cannot fetch the external JWKS: {e}")))?
            .json()
            .await
            .map_err(|e| ApiError::Internal(format!("the external JWKS is not JSON: {e}")))?;
        Ok(SetVerifier::builder(
            &external.issuer,
            &external.audience,
            &jwks,
            self.clock.clone(),
        )
        .access_token()
        .build()?)
    }
}

fn split_scopes(scopes: &str) -> Vec<String> {
    scopes.split_whitespace().map(str::to_owned).collect()
}

fn looks_like_jwt(token: &str) -> bool {
    token.split('.').count() == 3
}

fn invalid_token(description: &str) -> ApiError {
    ApiError::Unauthorized {
        error: Some("invalid_token"),
        description: description.to_owned(),
    }
}

/// The token of an `Authorization: Bearer` header (RFC 6750 §2.1).
fn bearer_token(headers: &HeaderMap) -> Result<&str, ApiError> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Err(ApiError::Unauthorized {
            error: None,
            description: "a bearer token is required".to_owned(),
        });
    };
    let value = value
        .to_str()
        .map_err(|_| invalid_token("malformed Authorization header"))?;
    match value.split_once(' ') {
        Some((scheme, token))
            if scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty() =>
        {
            Ok(token.trim())
        }
        _ => Err(ApiError::Unauthorized {
            error: Some("invalid_request"),
            description: "the Authorization header must be `Bearer <token>`".to_owned(),
        }),
    }
}

impl FromRequestParts<AppState> for Receiver {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        state.auth.receiver(&parts.headers, parts.uri.query()).await
    }
}

/// A publisher: the local identity provider, allowed to submit events (`POST /events`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Publisher {
    /// The credential's id.
    pub credential_id: String,
}

impl FromRequestParts<AppState> for Publisher {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let credential_id = static_credential(parts, state, CredentialKind::Publisher).await?;
        Ok(Publisher { credential_id })
    }
}

/// An administrator: allowed to use the admin API (`/admin/...`). Receiver and publisher
/// credentials are not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Admin {
    /// The credential's id.
    pub credential_id: String,
}

impl FromRequestParts<AppState> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let credential_id = static_credential(parts, state, CredentialKind::Admin).await?;
        Ok(Admin { credential_id })
    }
}

/// An application: allowed to use the session API (`/sessions`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Application {
    /// The credential's id.
    pub credential_id: String,
}

impl FromRequestParts<AppState> for Application {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let credential_id = static_credential(parts, state, CredentialKind::Application).await?;
        Ok(Application { credential_id })
    }
}

/// The id of the live static credential of `kind` that the request's bearer token names.
async fn static_credential(
    parts: &Parts,
    state: &AppState,
    kind: CredentialKind,
) -> Result<String, ApiError> {
    let token = bearer_token(&parts.headers)?;
    let hash = hash_secret(token);
    let now = state.clock.now();
    let cache = &state.auth.applications;
    if kind == CredentialKind::Application {
        let cached = cache.lock().expect("not poisoned").get(&hash).cloned();
        if let Some((id, read_at)) = cached {
            if now - read_at < APPLICATION_CACHE_SECS {
                return Ok(id);
            }
        }
    }
    let id = state
        .store
        .find_credential_by_token_hash(&hash)
        .await
        .ok()
        .filter(|c| c.kind == kind.as_str() && c.revoked_at.is_none())
        .map(|c| c.id)
        .ok_or_else(|| invalid_token(&format!("not a valid {} credential", kind.as_str())))?;
    if kind == CredentialKind::Application {
        let mut cache = cache.lock().expect("not poisoned");
        if cache.len() >= APPLICATION_CACHE_SIZE {
            cache.clear();
        }
        cache.insert(hash, (id.clone(), now));
    }
    Ok(id)
}
