//! SET verification: an explicit policy object with secure defaults (R10).
//!
//! [`SetVerifier`] is built once per upstream stream and checks, in this order
//! (spec-checklist §9):
//!
//! 1. the token is three base64url parts whose header and payload are JSON objects;
//! 2. the header `typ` is `secevent+jwt` (RFC 8417 §2.3, SSF-SET-01; see [`SetVerifierBuilder::strict_typ`]);
//! 3. the header `alg` is not `none` (SSF-SET-17) and is on the allow-list, and no `crit`
//!    header is present (ssfd understands no JWS extensions, RFC 7515 §4.1.11);
//! 4. a key is selected from the configured JWKS by `kid`, and the key's algorithm is the
//!    header's `alg` (no "alg swap");
//! 5. the signature verifies;
//! 6. `iss` equals the configured issuer exactly (SSF-SET-07);
//! 7. `aud` (a string or an array of strings) contains the configured audience;
//! 8. `iat` is present, not beyond the allowed skew in the future, and, if configured, not
//!    older than the maximum age;
//! 9. `sub` and `exp` are absent (SSF-SET-02, SSF-SET-03);
//! 10. `jti` is a non-empty string (SET-06);
//! 11. `events` is a non-empty object whose members are objects (SET-01, SET-02).
//!
//! Keys come only from the JWKS (or shared secret) the verifier was built with. The header
//! members `jku`, `jwk`, `x5u`, `x5c` and `x5t` are never read: a token cannot bring its own key.

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use josekit::jwk::Jwk;
use josekit::jws::JwsVerifier;
use serde_json::{Map, Value};

use super::keys::check_key_shape;
use super::{Algorithm, JoseError, SET_TYP};
use crate::clock::Clock;

/// Default tolerance for an `iat` in the future, in seconds.
pub const DEFAULT_MAX_CLOCK_SKEW: i64 = 60;

/// A JSON object: a JOSE header or a claims set.
pub type JsonObject = Map<String, Value>;

/// The longest token-supplied string an error keeps (for logs), in characters.
const MAX_ECHO: usize = 64;

/// A SET whose signature and claims passed every check of its [`SetVerifier`].
#[derive(Debug, Clone)]
pub struct VerifiedSet {
    /// The `kid` of the key that verified it (the configured key's, which equals the header's
    /// when the header has one). `None` only for a kid-less key.
    pub kid: Option<String>,
    /// The algorithm that verified it.
    pub alg: Algorithm,
    /// The claims. Unknown members are kept as they came (SSF-SET-16: ignored, not dropped).
    pub claims: Map<String, Value>,
    /// The compact token exactly as received (R11), for storage, audit and replay.
    pub raw: String,
}

impl VerifiedSet {
    /// The `jti` claim (checked to be a non-empty string).
    pub fn jti(&self) -> &str {
        self.claims
            .get("jti")
            .and_then(Value::as_str)
            .unwrap_or_default()
    }

    /// The `iss` claim (checked to equal the configured issuer).
    pub fn iss(&self) -> &str {
        self.claims
            .get("iss")
            .and_then(Value::as_str)
            .unwrap_or_default()
    }

    /// The `events` claim (checked to be a non-empty object).
    pub fn events(&self) -> Option<&Map<String, Value>> {
        self.claims.get("events").and_then(Value::as_object)
    }
}

/// Why a SET was rejected. One variant per failure class; [`VerifyError::rfc8935_code`] gives
/// the RFC 8935 §2.4 error code and [`VerifyError::description`] a text safe to send to the
/// transmitter. `Display` is for logs: it may quote (clipped) values from the token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// Not three base64url parts, or the header or payload is not a JSON object, or a header
    /// member has the wrong type, or a `crit` header is present.
    #[error("malformed token: {0}")]
    Malformed(&'static str),
    /// The header says `alg: none`: an unsigned token.
    #[error("unsigned token (alg none)")]
    AlgNone,
    /// The header's `alg` is not on the allow-list.
    #[error("algorithm {0:?} is not allowed")]
    AlgNotAllowed(String),
    /// The header's `typ` is not `secevent+jwt` (`None`: no `typ` at all).
    #[error("wrong typ {0:?}")]
    WrongType(Option<String>),
    /// No configured key has the header's `kid` (`None`: the header has no `kid` and no key
    /// fits its `alg`).
    #[error("unknown key id {0:?}")]
    UnknownKey(Option<String>),
    /// The header has no `kid` and more than one configured key fits its `alg`.
    #[error("no kid and {0} keys fit the algorithm")]
    AmbiguousKey(usize),
    /// The key named by `kid` exists but is not a key for the header's `alg` (e.g. an RS256
    /// key and a header saying HS256, ES256 or PS256).
    #[error("key {kid:?} cannot verify {alg:?}")]
    KeyAlgMismatch {
        /// The header's `kid`.
        kid: Option<String>,
        /// The header's `alg`.
        alg: String,
    },
    /// The signature does not verify with the selected key.
    #[error("bad signature")]
    BadSignature,
    /// `iss` is not the configured issuer.
    #[error("wrong issuer {0:?}")]
    WrongIssuer(String),
    /// `aud` does not contain the configured audience.
    #[error("wrong audience")]
    WrongAudience,
    /// A required claim is absent.
    #[error("missing claim {0}")]
    MissingClaim(&'static str),
    /// A claim that SSF forbids is present (`sub`, `exp`).
    #[error("forbidden claim {0}")]
    ForbiddenClaim(&'static str),
    /// A claim has the wrong JSON type or an empty value.
    #[error("invalid claim {0}")]
    InvalidClaim(&'static str),
    /// `iat` is further in the future than the allowed clock skew.
    #[error("iat {iat} is in the future (now {now})")]
    IatInFuture {
        /// The token's `iat`.
        iat: i64,
        /// The verifier's now.
        now: i64,
    },
    /// `iat` is older than the configured maximum age.
    #[error("iat {iat} is too old (now {now})")]
    TooOld {
        /// The token's `iat`.
        iat: i64,
        /// The verifier's now.
        now: i64,
    },
    /// An access token's `exp` has passed.
    #[error("expired at {exp} (now {now})")]
    Expired {
        /// The token's `exp`.
        exp: i64,
        /// The verifier's now.
        now: i64,
    },
}

impl VerifyError {
    /// The RFC 8935 §2.4 error code (PUSH-12) for the push failure body
    /// `{"err": <code>, "description": ...}`, also used in RFC 8936 `setErrs`.
    ///
    /// Signature-side failures (unsigned, disallowed algorithm, unknown or unfit key, bad
    /// signature) are `invalid_key`; issuer and audience failures (wrong, missing or
    /// mistyped) are `invalid_issuer` / `invalid_audience`; everything else is
    /// `invalid_request`.
    pub fn rfc8935_code(&self) -> &'static str {
        match self {
            VerifyError::AlgNone
            | VerifyError::AlgNotAllowed(_)
            | VerifyError::UnknownKey(_)
            | VerifyError::AmbiguousKey(_)
            | VerifyError::KeyAlgMismatch { .. }
            | VerifyError::BadSignature => "invalid_key",
            VerifyError::WrongIssuer(_)
            | VerifyError::MissingClaim("iss")
            | VerifyError::InvalidClaim("iss") => "invalid_issuer",
            VerifyError::WrongAudience
            | VerifyError::MissingClaim("aud")
            | VerifyError::InvalidClaim("aud") => "invalid_audience",
            VerifyError::Malformed(_)
            | VerifyError::WrongType(_)
            | VerifyError::MissingClaim(_)
            | VerifyError::ForbiddenClaim(_)
            | VerifyError::InvalidClaim(_)
            | VerifyError::IatInFuture { .. }
            | VerifyError::TooOld { .. }
            | VerifyError::Expired { .. } => "invalid_request",
        }
    }

    /// A human-readable English description safe to send to the peer: it names the failed
    /// rule, never our configuration (expected issuer, audience, key ids) and never echoes
    /// values from the token.
    pub fn description(&self) -> Cow<'static, str> {
        match self {
            VerifyError::Malformed(_) => {
                "The request body is not a well-formed signed SET (compact JWS)".into()
            }
            VerifyError::AlgNone => "Unsigned SETs (alg none) are not accepted".into(),
            VerifyError::AlgNotAllowed(_) => "The SET's signing algorithm is not accepted".into(),
            VerifyError::WrongType(_) => "The JOSE header typ must be secevent+jwt".into(),
            VerifyError::UnknownKey(_) => "No known key matches the SET's kid".into(),
            VerifyError::AmbiguousKey(_) => {
                "The SET has no kid and more than one key could verify it".into()
            }
            VerifyError::KeyAlgMismatch { .. } => {
                "The SET's alg does not match the algorithm of its key".into()
            }
            VerifyError::BadSignature => "The SET's signature does not verify".into(),
            VerifyError::WrongIssuer(_) => "The SET's issuer is not the expected issuer".into(),
            VerifyError::WrongAudience => {
                "The SET's audience does not include this receiver".into()
            }
            VerifyError::MissingClaim(name) => format!("The {name} claim is required").into(),
            VerifyError::ForbiddenClaim(name) => {
                format!("The {name} claim must not be present in a SET").into()
            }
            VerifyError::InvalidClaim(name) => format!("The {name} claim is not valid").into(),
            VerifyError::IatInFuture { .. } => "The SET's iat is in the future".into(),
            VerifyError::TooOld { .. } => "The SET is too old".into(),
            VerifyError::Expired { .. } => "The token has expired".into(),
        }
    }
}

/// Shortens a token-supplied string before it goes into an error (and so into logs).
fn clip(value: &str) -> String {
    match value.char_indices().nth(MAX_ECHO) {
        Some((end, _)) => format!("{}…", &value[..end]),
        None => value.to_owned(),
    }
}

/// The three parts of a compact JWS, and the signing input.
struct Compact<'a> {
    header: &'a str,
    payload: &'a str,
    signature: &'a str,
    signing_input: &'a str,
}

fn split(token: &str) -> Result<Compact<'_>, VerifyError> {
    let mut parts = token.splitn(4, '.');
    let (Some(header), Some(payload), Some(signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(VerifyError::Malformed("not three dot-separated parts"));
    };
    let signing_input = &token[..header.len() + 1 + payload.len()];
    Ok(Compact {
        header,
        payload,
        signature,
        signing_input,
    })
}

fn decode_object(part: &str, what: &'static str) -> Result<Map<String, Value>, VerifyError> {
    let bytes = URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|_| VerifyError::Malformed(what))?;
    serde_json::from_slice(&bytes).map_err(|_| VerifyError::Malformed(what))
}

/// Decodes a token's header and claims WITHOUT VERIFYING ANYTHING.
///
/// # Security
///
/// The result is attacker-controlled. Use it only to route a token to the stream whose
/// [`SetVerifier`] will then verify it (R11): for example, read `iss` and `aud` to pick the
/// stream. Never take a key, a key URL, an algorithm or any decision from it.
pub fn peek_unverified(token: &str) -> Result<(JsonObject, JsonObject), VerifyError> {
    let parts = split(token)?;
    let header = decode_object(parts.header, "header is not a base64url JSON object")?;
    let claims = decode_object(parts.payload, "payload is not a base64url JSON object")?;
    Ok((header, claims))
}

/// One (key, algorithm) pair the verifier may use.
struct VerifyKey {
    kid: Option<String>,
    /// A shared secret configured without a kid matches any (or no) `kid`.
    any_kid: bool,
    alg: Algorithm,
    verifier: Box<dyn JwsVerifier>,
}

impl VerifyKey {
    fn matches_kid(&self, kid: &str) -> bool {
        self.any_kid || self.kid.as_deref() == Some(kid)
    }
}

/// Verifies SETs from one upstream: the policy object of R10. Build it once per stream (its
/// josekit verifiers are built once per key) and share it; it is `Send + Sync`.
///
/// Defaults: algorithms RS256, ES256, PS256 and EdDSA; `typ` `secevent+jwt` (also accepted,
/// ASCII case-insensitively, as `application/secevent+jwt`; see
/// [`SetVerifierBuilder::strict_typ`]); exact `iss`; `aud` must contain ours; `iat` at most
/// [`DEFAULT_MAX_CLOCK_SKEW`] seconds ahead; no maximum age.
///
/// `none` can never be allowed. HMAC algorithms are only possible with
/// [`SetVerifier::with_shared_secret`].
///
/// A token with a `kid` is verified only by a configured key with that exact `kid` (a JWK
/// without `kid` can only verify kid-less tokens). A token without a `kid` is accepted only
/// when exactly one configured key fits its `alg`.
/// A JWK without an `alg` member fits every allowed algorithm of its key type (an RSA key fits
/// RS256 and PS256); a JWK with one fits that algorithm only. JWKs that cannot be used
/// (`use` other than `sig`, `key_ops` without `verify`, unsupported `kty` or curve, RSA under
/// 2048 bits, an `alg` not on the allow-list) are skipped with a warning.
pub struct SetVerifier {
    issuer: String,
    audience: String,
    allowed: Vec<Algorithm>,
    keys: Vec<VerifyKey>,
    clock: Arc<dyn Clock>,
    max_skew: i64,
    max_age: Option<i64>,
    strict_typ: bool,
    profile: Profile,
}

/// What kind of JWT a verifier accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Profile {
    /// A Security Event Token (RFC 8417 as profiled by SSF 1.0 §4).
    Set,
    /// An OAuth JWT access token (RFC 9068): `exp` required, no `events`.
    AccessToken,
}

enum KeySource {
    Jwks(Value),
    SharedSecret {
        alg: Algorithm,
        secret: Vec<u8>,
        kid: Option<String>,
    },
}

/// Configures a [`SetVerifier`]; from [`SetVerifier::builder`] or
/// [`SetVerifier::with_shared_secret`].
pub struct SetVerifierBuilder {
    issuer: String,
    audience: String,
    clock: Arc<dyn Clock>,
    source: KeySource,
    allowed: Option<Vec<Algorithm>>,
    max_skew: i64,
    max_age: Option<i64>,
    strict_typ: bool,
    profile: Profile,
}

impl SetVerifier {
    /// A verifier for SETs from `issuer` (compared exactly, SSF-SET-07) to `audience`, signed
    /// by a key of the JWK Set `jwks` (`{"keys": [...]}`, e.g. fetched from the transmitter's
    /// `jwks_uri` and pinned in the stream's configuration; SSF-SET-04).
    pub fn builder(
        issuer: impl Into<String>,
        audience: impl Into<String>,
        jwks: &Value,
        clock: Arc<dyn Clock>,
    ) -> SetVerifierBuilder {
        SetVerifierBuilder::new(issuer, audience, KeySource::Jwks(jwks.clone()), clock)
    }

    /// A verifier for SETs authenticated with a shared secret (`HS256`, `HS384` or `HS512`),
    /// agreed out of band with one transmitter. The secret must be at least as long as the
    /// hash (32, 48 or 64 bytes; RFC 7518 §3.2). With `kid: Some(..)` the token's `kid` must
    /// equal it; with `None`, any `kid` (or none) is accepted. Only `alg` is allowed.
    pub fn with_shared_secret(
        issuer: impl Into<String>,
        audience: impl Into<String>,
        alg: Algorithm,
        secret: &[u8],
        kid: Option<&str>,
        clock: Arc<dyn Clock>,
    ) -> SetVerifierBuilder {
        let source = KeySource::SharedSecret {
            alg,
            secret: secret.to_vec(),
            kid: kid.map(str::to_owned),
        };
        SetVerifierBuilder::new(issuer, audience, source, clock)
    }

    /// The algorithms this verifier accepts.
    pub fn allowed_algorithms(&self) -> &[Algorithm] {
        &self.allowed
    }

    /// The usable (kid, algorithm) pairs, in JWKS order: what survived the skipping of unusable
    /// JWKs. A JWK without `alg` appears once per algorithm it fits.
    pub fn keys(&self) -> Vec<(Option<&str>, &Algorithm)> {
        self.keys
            .iter()
            .map(|key| (key.kid.as_deref(), &key.alg))
            .collect()
    }

    /// The configured issuer.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// The configured audience.
    pub fn audience(&self) -> &str {
        &self.audience
    }

    /// Verifies a compact SET against this policy; see the module documentation for the
    /// order of the checks.
    pub fn verify(&self, token: &str) -> Result<VerifiedSet, VerifyError> {
        let parts = split(token)?;
        let header = decode_object(parts.header, "header is not a base64url JSON object")?;

        // typ (SSF-SET-01)
        match header.get("typ") {
            None if self.profile == Profile::AccessToken => {}
            None => return Err(VerifyError::WrongType(None)),
            Some(Value::String(typ)) if self.typ_ok(typ) => {}
            Some(Value::String(typ)) => return Err(VerifyError::WrongType(Some(clip(typ)))),
            Some(_) => return Err(VerifyError::Malformed("typ is not a string")),
        }

        // alg (SSF-SET-17, IOP-SIG-01)
        let alg = match header.get("alg") {
            Some(Value::String(alg)) => Algorithm::from(alg.as_str()),
            Some(_) => return Err(VerifyError::Malformed("alg is not a string")),
            None => return Err(VerifyError::Malformed("alg is missing")),
        };
        if alg.is_none() {
            return Err(VerifyError::AlgNone);
        }
        if !self.allowed.contains(&alg) {
            return Err(VerifyError::AlgNotAllowed(clip(alg.as_str())));
        }
        if header.contains_key("crit") {
            return Err(VerifyError::Malformed("crit header is not supported"));
        }

        // key, chosen only among the configured keys
        let kid = match header.get("kid") {
            Some(Value::String(kid)) => Some(kid.as_str()),
            Some(_) => return Err(VerifyError::Malformed("kid is not a string")),
            None => None,
        };
        let key = self.select_key(kid, &alg)?;

        // signature (the payload's encoding is checked first, its JSON only once signed)
        let payload = URL_SAFE_NO_PAD
            .decode(parts.payload)
            .map_err(|_| VerifyError::Malformed("payload is not base64url"))?;
        let signature = URL_SAFE_NO_PAD
            .decode(parts.signature)
            .map_err(|_| VerifyError::Malformed("signature is not base64url"))?;
        key.verifier
            .verify(parts.signing_input.as_bytes(), &signature)
            .map_err(|_| VerifyError::BadSignature)?;

        let claims: Map<String, Value> = serde_json::from_slice(&payload)
            .map_err(|_| VerifyError::Malformed("payload is not a JSON object"))?;
        self.check_claims(&claims)?;

        Ok(VerifiedSet {
            kid: key.kid.clone().or_else(|| kid.map(str::to_owned)),
            alg,
            claims,
            raw: token.to_owned(),
        })
    }

    /// RFC 8417 §2.3 registers the media type `application/secevent+jwt` and recommends
    /// omitting the `application/` prefix in `typ`; RFC 7515 §4.1.9 says a `typ` without a
    /// `/` means `application/<typ>`, and media type names are case-insensitive (RFC 2045
    /// §5.1). So both spellings, in any letter case, name the same type and are accepted,
    /// unless [`SetVerifierBuilder::strict_typ`] asks for the exact `secevent+jwt` that SSF
    /// transmitters send (SSF-SET-01).
    fn typ_ok(&self, typ: &str) -> bool {
        if self.profile == Profile::AccessToken {
            // RFC 9068 §2.1 says `at+jwt`; many authorization servers still write `JWT`. A
            // SET is never an access token, whatever else it claims.
            let bare = typ.strip_prefix("application/").unwrap_or(typ);
            return bare.eq_ignore_ascii_case("at+jwt") || bare.eq_ignore_ascii_case("jwt");
        }
        if self.strict_typ {
            return typ == SET_TYP;
        }
        let bare = match typ.get(..12) {
            Some(prefix) if prefix.eq_ignore_ascii_case("application/") => &typ[12..],
            _ => typ,
        };
        bare.eq_ignore_ascii_case(SET_TYP)
    }

    fn select_key(&self, kid: Option<&str>, alg: &Algorithm) -> Result<&VerifyKey, VerifyError> {
        let mismatch = || VerifyError::KeyAlgMismatch {
            kid: kid.map(clip),
            alg: alg.to_string(),
        };
        match kid {
            Some(kid) => {
                let mut named = self
                    .keys
                    .iter()
                    .filter(|key| key.matches_kid(kid))
                    .peekable();
                if named.peek().is_none() {
                    return Err(VerifyError::UnknownKey(Some(clip(kid))));
                }
                named.find(|key| &key.alg == alg).ok_or_else(mismatch)
            }
            None => {
                let mut fitting = self.keys.iter().filter(|key| &key.alg == alg);
                match (fitting.next(), fitting.count()) {
                    (Some(key), 0) => Ok(key),
                    (Some(_), more) => Err(VerifyError::AmbiguousKey(more + 1)),
                    (None, _) if self.keys.is_empty() => Err(VerifyError::UnknownKey(None)),
                    (None, _) => Err(mismatch()),
                }
            }
        }
    }

    fn check_claims(&self, claims: &Map<String, Value>) -> Result<(), VerifyError> {
        // iss (SET-04, SSF-SET-07): exact string comparison.
        match claims.get("iss") {
            None => return Err(VerifyError::MissingClaim("iss")),
            Some(Value::String(iss)) if *iss == self.issuer => {}
            Some(Value::String(iss)) => return Err(VerifyError::WrongIssuer(clip(iss))),
            Some(_) => return Err(VerifyError::InvalidClaim("iss")),
        }

        // aud (SET-07, SSF-SET-08): a string or an array of strings containing ours.
        let audience_ok = match claims.get("aud") {
            None => return Err(VerifyError::MissingClaim("aud")),
            Some(Value::String(aud)) => *aud == self.audience,
            Some(Value::Array(auds)) => {
                let mut found = false;
                for aud in auds {
                    let aud = aud.as_str().ok_or(VerifyError::InvalidClaim("aud"))?;
                    found |= aud == self.audience;
                }
                found
            }
            Some(_) => return Err(VerifyError::InvalidClaim("aud")),
        };
        if !audience_ok {
            return Err(VerifyError::WrongAudience);
        }

        if self.profile == Profile::AccessToken {
            return self.check_access_token_times(claims);
        }

        // iat (SET-05): a NumericDate, possibly fractional.
        let iat = match claims.get("iat") {
            None => return Err(VerifyError::MissingClaim("iat")),
            Some(Value::Number(iat)) => {
                numeric_date(iat).ok_or(VerifyError::InvalidClaim("iat"))?
            }
            Some(_) => return Err(VerifyError::InvalidClaim("iat")),
        };
        let now = self.clock.now();
        if iat > now.saturating_add(self.max_skew) {
            return Err(VerifyError::IatInFuture { iat, now });
        }
        if let Some(max_age) = self.max_age {
            if now.saturating_sub(iat) > max_age {
                return Err(VerifyError::TooOld { iat, now });
            }
        }

        // SSF-SET-02, SSF-SET-03
        if claims.contains_key("sub") {
            return Err(VerifyError::ForbiddenClaim("sub"));
        }
        if claims.contains_key("exp") {
            return Err(VerifyError::ForbiddenClaim("exp"));
        }

        // jti (SET-06)
        match claims.get("jti") {
            None => return Err(VerifyError::MissingClaim("jti")),
            Some(Value::String(jti)) if !jti.is_empty() => {}
            Some(_) => return Err(VerifyError::InvalidClaim("jti")),
        }

        // events (SET-01, SET-02, SET-18)
        match claims.get("events") {
            None => return Err(VerifyError::MissingClaim("events")),
            Some(Value::Object(events))
                if !events.is_empty() && events.values().all(Value::is_object) => {}
            Some(_) => return Err(VerifyError::InvalidClaim("events")),
        }
        Ok(())
    }
}

impl SetVerifier {
    /// RFC 9068 §4: `exp` is required and in the future, `nbf` (if any) in the past, and a
    /// token carrying `events` is a SET, never an access token (RFC 8417 §4.2).
    fn check_access_token_times(&self, claims: &Map<String, Value>) -> Result<(), VerifyError> {
        if claims.contains_key("events") {
            return Err(VerifyError::ForbiddenClaim("events"));
        }
        let date = |name: &'static str| match claims.get(name) {
            None => Ok(None),
            Some(Value::Number(n)) => numeric_date(n)
                .map(Some)
                .ok_or(VerifyError::InvalidClaim(name)),
            Some(_) => Err(VerifyError::InvalidClaim(name)),
        };
        let now = self.clock.now();
        let exp = date("exp")?.ok_or(VerifyError::MissingClaim("exp"))?;
        if now >= exp.saturating_add(self.max_skew) {
            return Err(VerifyError::Expired { exp, now });
        }
        if let Some(nbf) = date("nbf")? {
            if nbf > now.saturating_add(self.max_skew) {
                return Err(VerifyError::IatInFuture { iat: nbf, now });
            }
        }
        Ok(())
    }
}

/// A NumericDate (RFC 7519 §2) as whole seconds, rounded down.
fn numeric_date(value: &serde_json::Number) -> Option<i64> {
    if let Some(seconds) = value.as_i64() {
        return Some(seconds);
    }
    let seconds = value.as_f64()?.floor();
    // i64::MAX as f64 rounds up to 2^63, so compare with strict bounds.
    (seconds.is_finite() && (-9.2e18..=9.2e18).contains(&seconds)).then_some(seconds as i64)
}

impl fmt::Debug for SetVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let keys: Vec<String> = self
            .keys
            .iter()
            .map(|key| match (&key.kid, key.any_kid) {
                (_, true) => format!("* {}", key.alg),
                (Some(kid), false) => format!("{kid} {}", key.alg),
                (None, false) => format!("(no kid) {}", key.alg),
            })
            .collect();
        f.debug_struct("SetVerifier")
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .field("allowed", &self.allowed)
            .field("keys", &keys)
            .field("max_skew", &self.max_skew)
            .field("max_age", &self.max_age)
            .field("strict_typ", &self.strict_typ)
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for SetVerifierBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let source = match &self.source {
            KeySource::Jwks(_) => "jwks".to_owned(),
            KeySource::SharedSecret { alg, .. } => format!("shared secret ({alg}, redacted)"),
        };
        f.debug_struct("SetVerifierBuilder")
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .field("keys", &source)
            .field("allowed", &self.allowed)
            .field("max_skew", &self.max_skew)
            .field("max_age", &self.max_age)
            .field("strict_typ", &self.strict_typ)
            .finish_non_exhaustive()
    }
}

impl SetVerifierBuilder {
    fn new(
        issuer: impl Into<String>,
        audience: impl Into<String>,
        source: KeySource,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            issuer: issuer.into(),
            audience: audience.into(),
            clock,
            source,
            allowed: None,
            max_skew: DEFAULT_MAX_CLOCK_SKEW,
            max_age: None,
            strict_typ: false,
            profile: Profile::Set,
        }
    }

    /// Replaces the algorithm allow-list. With a JWKS it may name only RS256, ES256, PS256
    /// and EdDSA; with a shared secret only the secret's algorithm. `none` is always refused.
    pub fn allowed_algorithms(mut self, algs: impl IntoIterator<Item = Algorithm>) -> Self {
        self.allowed = Some(algs.into_iter().collect());
        self
    }

    /// How far in the future `iat` may be, in seconds (default [`DEFAULT_MAX_CLOCK_SKEW`]).
    pub fn max_clock_skew(mut self, seconds: i64) -> Self {
        self.max_skew = seconds.max(0);
        self
    }

    /// Rejects SETs whose `iat` is more than `seconds` in the past (default: no limit, since
    /// a transmitter may legitimately deliver SETs it held while a stream was paused).
    pub fn max_age(mut self, seconds: i64) -> Self {
        self.max_age = Some(seconds.max(0));
        self
    }

    /// Accepts only the exact `typ` `secevent+jwt`, not `application/secevent+jwt` nor other
    /// letter cases (the conformance suite's view of SSF-SET-01).
    pub fn strict_typ(mut self) -> Self {
        self.strict_typ = true;
        self
    }

    /// Verifies OAuth JWT access tokens (RFC 9068) instead of SETs: `typ` `at+jwt` (or the
    /// common `JWT`, or none), `exp` required and not passed, `nbf` honoured, `events`
    /// forbidden; `iss`, `aud` and the keys are checked as for SETs.
    pub fn access_token(mut self) -> Self {
        self.profile = Profile::AccessToken;
        self
    }

    /// Checks the policy and builds every key's josekit verifier.
    pub fn build(self) -> Result<SetVerifier, JoseError> {
        let (allowed, keys) = match self.source {
            KeySource::Jwks(jwks) => {
                let allowed = self
                    .allowed
                    .unwrap_or_else(|| Algorithm::ASYMMETRIC.to_vec());
                check_allow_list(&allowed, |alg| {
                    if alg.is_hmac() {
                        Err("HMAC algorithms need SetVerifier::with_shared_secret")
                    } else if !alg.is_asymmetric() {
                        Err("not supported")
                    } else {
                        Ok(())
                    }
                })?;
                let keys = keys_from_jwks(&jwks, &allowed)?;
                (allowed, keys)
            }
            KeySource::SharedSecret { alg, secret, kid } => {
                let allowed = self.allowed.unwrap_or_else(|| vec![alg.clone()]);
                check_allow_list(&allowed, |other| {
                    if *other == alg {
                        Ok(())
                    } else {
                        Err("only the shared secret's algorithm can be allowed")
                    }
                })?;
                let min = alg
                    .hmac_min_secret_len()
                    .ok_or_else(|| JoseError::Policy(format!("{alg} is not an HMAC algorithm")))?;
                if secret.len() < min {
                    return Err(JoseError::WeakKey {
                        kid,
                        bits: secret.len() * 8,
                        min: min * 8,
                    });
                }
                let key = VerifyKey {
                    any_kid: kid.is_none(),
                    kid,
                    verifier: alg.hmac_verifier(&secret)?,
                    alg,
                };
                (allowed, vec![key])
            }
        };
        Ok(SetVerifier {
            issuer: self.issuer,
            audience: self.audience,
            allowed,
            keys,
            clock: self.clock,
            max_skew: self.max_skew,
            max_age: self.max_age,
            strict_typ: self.strict_typ,
            profile: self.profile,
        })
    }
}

fn check_allow_list(
    allowed: &[Algorithm],
    permitted: impl Fn(&Algorithm) -> Result<(), &'static str>,
) -> Result<(), JoseError> {
    if allowed.is_empty() {
        return Err(JoseError::Policy(
            "the algorithm allow-list is empty".to_owned(),
        ));
    }
    for alg in allowed {
        if alg.is_none() {
            return Err(JoseError::Policy(
                "alg none can never be allowed".to_owned(),
            ));
        }
        permitted(alg).map_err(|why| JoseError::Policy(format!("{alg}: {why}")))?;
    }
    Ok(())
}

/// Builds one [`VerifyKey`] per usable (JWK, allowed algorithm) pair; skips, with a warning,
/// the JWKs that cannot be used.
fn keys_from_jwks(jwks: &Value, allowed: &[Algorithm]) -> Result<Vec<VerifyKey>, JoseError> {
    let Some(entries) = jwks.get("keys").and_then(Value::as_array) else {
        return Err(JoseError::InvalidKey(
            "a JWK Set is an object with a \"keys\" array".to_owned(),
        ));
    };
    let mut keys = Vec::new();
    let mut skipped = Vec::new();
    for entry in entries {
        let kid = entry.get("kid").and_then(Value::as_str).map(str::to_owned);
        match keys_from_jwk(entry, kid.clone(), allowed) {
            Ok(mut found) if !found.is_empty() => keys.append(&mut found),
            Ok(_) => skipped.push(format!("{kid:?}: fits no allowed algorithm")),
            Err(why) => skipped.push(format!("{kid:?}: {why}")),
        }
    }
    for why in &skipped {
        tracing::warn!(key = %why, "JWKS key skipped");
    }
    if keys.is_empty() {
        let detail = if skipped.is_empty() {
            "the JWK Set is empty".to_owned()
        } else {
            skipped.join("; ")
        };
        return Err(JoseError::NoUsableKey(detail));
    }
    Ok(keys)
}

fn keys_from_jwk(
    entry: &Value,
    kid: Option<String>,
    allowed: &[Algorithm],
) -> Result<Vec<VerifyKey>, JoseError> {
    let map = entry
        .as_object()
        .ok_or_else(|| JoseError::InvalidKey("not a JSON object".to_owned()))?;
    let jwk = Jwk::from_map(map.clone()).map_err(|err| JoseError::InvalidKey(err.to_string()))?;
    if jwk.key_use().is_some_and(|key_use| key_use != "sig") {
        return Err(JoseError::InvalidKey("use is not sig".to_owned()));
    }
    if !jwk.is_for_key_operation("verify") {
        return Err(JoseError::InvalidKey("key_ops lacks verify".to_owned()));
    }
    let candidates: Vec<Algorithm> = match jwk.algorithm() {
        Some(name) => vec![Algorithm::from(name)],
        None => match (jwk.key_type(), jwk.curve()) {
            ("RSA", _) => vec![Algorithm::Rs256, Algorithm::Ps256],
            ("EC", Some("P-256")) => vec![Algorithm::Es256],
            ("OKP", Some("Ed25519")) => vec![Algorithm::EdDsa],
            (kty, crv) => {
                return Err(JoseError::InvalidKey(format!(
                    "kty {kty:?} crv {crv:?} not supported"
                )))
            }
        },
    };
    let mut keys = Vec::new();
    for alg in candidates.into_iter().filter(|alg| allowed.contains(alg)) {
        check_key_shape(&jwk, &alg, kid.as_deref())?;
        keys.push(VerifyKey {
            kid: kid.clone(),
            any_kid: false,
            verifier: alg.verifier_from_jwk(&jwk)?,
            alg,
        });
    }
    Ok(keys)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clip_shortens_long_values_on_char_boundaries() {
        assert_eq!(clip("short"), "short");
        let long = "é".repeat(100);
        let clipped = clip(&long);
        assert_eq!(clipped.chars().count(), MAX_ECHO + 1);
        assert!(clipped.ends_with('…'));
    }

    #[test]
    fn split_needs_exactly_three_parts() {
        assert!(split("a.b.c").is_ok());
        assert_eq!(split("a.b.c").unwrap().signing_input, "a.b");
        for bad in ["", "a", "a.b", "a.b.c.d", "a.b.c.d.e"] {
            assert!(
                matches!(split(bad), Err(VerifyError::Malformed(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn numeric_dates_accept_fractions_and_reject_absurd_values() {
        let n = |v: Value| numeric_date(v.as_number().unwrap());
        assert_eq!(n(serde_json::json!(1_700_000_000)), Some(1_700_000_000));
        assert_eq!(n(serde_json::json!(1_700_000_000.9)), Some(1_700_000_000));
        assert_eq!(n(serde_json::json!(1e300)), None);
        assert_eq!(n(serde_json::json!(u64::MAX)), None);
    }

    #[test]
    fn every_error_has_a_registered_code_and_a_description() {
        let all = [
            VerifyError::Malformed("x"),
            VerifyError::AlgNone,
            VerifyError::AlgNotAllowed("HS256".to_owned()),
            VerifyError::WrongType(None),
            VerifyError::UnknownKey(None),
            VerifyError::AmbiguousKey(2),
            VerifyError::KeyAlgMismatch {
                kid: None,
                alg: "PS256".to_owned(),
            },
            VerifyError::BadSignature,
            VerifyError::WrongIssuer("https://evil".to_owned()),
            VerifyError::WrongAudience,
            VerifyError::MissingClaim("jti"),
            VerifyError::ForbiddenClaim("sub"),
            VerifyError::InvalidClaim("events"),
            VerifyError::IatInFuture { iat: 2, now: 1 },
            VerifyError::TooOld { iat: 1, now: 2 },
            VerifyError::Expired { exp: 1, now: 2 },
        ];
        for err in &all {
            assert!([
                "invalid_request",
                "invalid_key",
                "invalid_issuer",
                "invalid_audience"
            ]
            .contains(&err.rfc8935_code()));
            assert!(!err.description().is_empty());
            assert!(!err.description().contains("evil"));
        }
        assert_eq!(
            VerifyError::MissingClaim("iss").rfc8935_code(),
            "invalid_issuer"
        );
        assert_eq!(
            VerifyError::InvalidClaim("aud").rfc8935_code(),
            "invalid_audience"
        );
        assert_eq!(
            VerifyError::MissingClaim("jti").rfc8935_code(),
            "invalid_request"
        );
    }
}
