//! Signing keys, the published JWKS, SET signing and SET verification, on josekit.
//!
//! * [`keys`](crate::jose::keys): [`generate`](crate::jose::generate) a key, hold the active
//!   keys in a [`KeyRing`](crate::jose::KeyRing) (the newest non-retired key signs, every
//!   non-retired key is published in the JWKS), and
//!   [`ensure_signing_key`](crate::jose::ensure_signing_key) /
//!   [`rotate_signing_key`](crate::jose::rotate_signing_key) against the
//!   [`Store`](crate::storage::Store).
//! * [`sign`](crate::jose::sign): [`SetSigner`](crate::jose::SetSigner) turns a claims object
//!   into a compact JWS with the header `{"alg","kid","typ":"secevent+jwt"}` (SSF-SET-01).
//!   Claim construction lives elsewhere.
//! * [`verify`](crate::jose::verify): [`SetVerifier`](crate::jose::SetVerifier) is the
//!   receiver's policy object (R10): algorithm allow-list, keys pinned from a configured JWKS
//!   only, `typ`, `iss`, `aud`, `iat` window and the SSF claim rules; every failure class is
//!   one [`VerifyError`](crate::jose::VerifyError) variant with its RFC 8935 code.
//!
//! Every josekit signer and verifier is built once per key and reused (RS256 signing costs
//! about 0.3 ms; see `reference/perf-limits.md`).

pub mod alg;
pub mod keys;
pub mod sign;
pub mod verify;

pub use alg::Algorithm;
pub use keys::{ensure_signing_key, generate, rotate_signing_key, KeyRing, MIN_RSA_BITS};
pub use sign::{SetSigner, ACCESS_TOKEN_TYP, SET_TYP};
pub use verify::{
    peek_unverified, JsonObject, SetVerifier, SetVerifierBuilder, VerifiedSet, VerifyError,
};

use crate::storage::DbError;

/// A failure to generate, load or use a key, or to sign. Never carries secret key material.
#[derive(Debug, thiserror::Error)]
pub enum JoseError {
    /// The algorithm is not one ssfd can use for this purpose (e.g. signing with `HS256`, or
    /// any `Other` name).
    #[error("unsupported algorithm {0:?}")]
    UnsupportedAlgorithm(String),
    /// A key could not be parsed or does not suit its algorithm. The text describes the key's
    /// shape, never its values.
    #[error("invalid key: {0}")]
    InvalidKey(String),
    /// An RSA key shorter than [`MIN_RSA_BITS`], or an HMAC secret shorter than its hash.
    #[error("key {kid:?} is too short: {bits} bits, at least {min} required")]
    WeakKey {
        /// The key id, when known.
        kid: Option<String>,
        /// The key's size in bits.
        bits: usize,
        /// The minimum accepted size in bits.
        min: usize,
    },
    /// No stored key is active (all are retired, or there are none).
    #[error("no active signing key")]
    NoSigningKey,
    /// A verifier was configured without any key it can use.
    #[error("no usable verification key: {0}")]
    NoUsableKey(String),
    /// The algorithm allow-list is empty or names an algorithm that cannot be allowed here.
    #[error("algorithm policy: {0}")]
    Policy(String),
    /// The claims could not be serialized to a JSON object.
    #[error("cannot serialize claims: {0}")]
    Serialize(String),
    /// The signature operation itself failed.
    #[error("signing failed: {0}")]
    Sign(String),
    /// The key store failed.
    #[error(transparent)]
    Store(#[from] DbError),
}
