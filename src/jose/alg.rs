//! JWS algorithm names (RFC 7518 §3.1), as an open type.

use std::fmt;
use std::str::FromStr;

use josekit::jws::{JwsSigner, JwsVerifier};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::JoseError;

/// A JWS `alg` value.
///
/// Open (R6): any string parses, and names ssfd does not implement land in
/// [`Algorithm::Other`], so a configuration or a peer's metadata that lists them can still be
/// read. Only [`Algorithm::Rs256`], [`Algorithm::Es256`], [`Algorithm::Ps256`] and
/// [`Algorithm::EdDsa`] can sign; the HMAC algorithms can only verify, and only through
/// [`super::SetVerifier::with_shared_secret`]. `none` is never usable (RFC 8417 §5.1,
/// SSF-SET-17): it parses to `Other("none")`.
///
/// Names are case-sensitive (RFC 7515 §4.1.1): `rs256` is `Other("rs256")`.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Algorithm {
    /// RSASSA-PKCS1-v1_5 with SHA-256. The default, required by the CAEP Interoperability
    /// Profile (IOP-SIG-01) with keys of at least 2048 bits.
    Rs256,
    /// ECDSA with P-256 and SHA-256.
    Es256,
    /// RSASSA-PSS with SHA-256 and MGF1 with SHA-256.
    Ps256,
    /// EdDSA, with an Ed25519 key (RFC 8037). Ed448 is not supported.
    EdDsa,
    /// HMAC with SHA-256: verification with a configured shared secret only.
    Hs256,
    /// HMAC with SHA-384: verification with a configured shared secret only.
    Hs384,
    /// HMAC with SHA-512: verification with a configured shared secret only.
    Hs512,
    /// Any other name, kept as given. Never usable for signing or verification.
    Other(String),
}

impl Algorithm {
    /// The asymmetric algorithms ssfd signs and verifies with; also the default allow-list of
    /// [`super::SetVerifier`].
    pub const ASYMMETRIC: [Algorithm; 4] = [
        Algorithm::Rs256,
        Algorithm::Es256,
        Algorithm::Ps256,
        Algorithm::EdDsa,
    ];

    /// The registered name, as it appears in a JWS header or a JWK `alg` member.
    pub fn as_str(&self) -> &str {
        match self {
            Algorithm::Rs256 => "RS256",
            Algorithm::Es256 => "ES256",
            Algorithm::Ps256 => "PS256",
            Algorithm::EdDsa => "EdDSA",
            Algorithm::Hs256 => "HS256",
            Algorithm::Hs384 => "HS384",
            Algorithm::Hs512 => "HS512",
            Algorithm::Other(name) => name,
        }
    }

    /// True for the HMAC algorithms (shared-secret, symmetric).
    pub fn is_hmac(&self) -> bool {
        matches!(self, Algorithm::Hs256 | Algorithm::Hs384 | Algorithm::Hs512)
    }

    /// True for one of [`Algorithm::ASYMMETRIC`].
    pub fn is_asymmetric(&self) -> bool {
        Self::ASYMMETRIC.contains(self)
    }

    /// True for `none` in any letter case: the unsecured JWS (RFC 7515 §A.5).
    pub fn is_none(&self) -> bool {
        matches!(self, Algorithm::Other(name) if name.eq_ignore_ascii_case("none"))
    }

    /// The JWK `kty` (and, where it matters, `crv`) a key for this algorithm has.
    pub(crate) fn key_type(&self) -> Option<(&'static str, Option<&'static str>)> {
        match self {
            Algorithm::Rs256 | Algorithm::Ps256 => Some(("RSA", None)),
            Algorithm::Es256 => Some(("EC", Some("P-256"))),
            Algorithm::EdDsa => Some(("OKP", Some("Ed25519"))),
            Algorithm::Hs256 | Algorithm::Hs384 | Algorithm::Hs512 => Some(("oct", None)),
            Algorithm::Other(_) => None,
        }
    }

    /// A josekit signer for a private JWK. The caller has checked `kty`, `crv` and size.
    pub(crate) fn signer_from_jwk(
        &self,
        jwk: &josekit::jwk::Jwk,
    ) -> Result<Box<dyn JwsSigner>, JoseError> {
        use josekit::jws::{EdDSA, ES256, PS256, RS256};
        let signer: Box<dyn JwsSigner> = match self {
            Algorithm::Rs256 => Box::new(RS256.signer_from_jwk(jwk).map_err(invalid_key)?),
            Algorithm::Es256 => Box::new(ES256.signer_from_jwk(jwk).map_err(invalid_key)?),
            Algorithm::Ps256 => Box::new(PS256.signer_from_jwk(jwk).map_err(invalid_key)?),
            Algorithm::EdDsa => Box::new(EdDSA.signer_from_jwk(jwk).map_err(invalid_key)?),
            other => return Err(JoseError::UnsupportedAlgorithm(other.to_string())),
        };
        Ok(signer)
    }

    /// A josekit verifier for a public (asymmetric) JWK. The caller has checked `kty`, `crv`
    /// and size.
    pub(crate) fn verifier_from_jwk(
        &self,
        jwk: &josekit::jwk::Jwk,
    ) -> Result<Box<dyn JwsVerifier>, JoseError> {
        use josekit::jws::{EdDSA, ES256, PS256, RS256};
        let verifier: Box<dyn JwsVerifier> = match self {
            Algorithm::Rs256 => Box::new(RS256.verifier_from_jwk(jwk).map_err(invalid_key)?),
            Algorithm::Es256 => Box::new(ES256.verifier_from_jwk(jwk).map_err(invalid_key)?),
            Algorithm::Ps256 => Box::new(PS256.verifier_from_jwk(jwk).map_err(invalid_key)?),
            Algorithm::EdDsa => Box::new(EdDSA.verifier_from_jwk(jwk).map_err(invalid_key)?),
            other => return Err(JoseError::UnsupportedAlgorithm(other.to_string())),
        };
        Ok(verifier)
    }

    /// A josekit HMAC verifier for a shared secret. The caller has checked the length.
    pub(crate) fn hmac_verifier(&self, secret: &[u8]) -> Result<Box<dyn JwsVerifier>, JoseError> {
        use josekit::jws::{HS256, HS384, HS512};
        let verifier: Box<dyn JwsVerifier> = match self {
            Algorithm::Hs256 => Box::new(HS256.verifier_from_bytes(secret).map_err(invalid_key)?),
            Algorithm::Hs384 => Box::new(HS384.verifier_from_bytes(secret).map_err(invalid_key)?),
            Algorithm::Hs512 => Box::new(HS512.verifier_from_bytes(secret).map_err(invalid_key)?),
            other => return Err(JoseError::UnsupportedAlgorithm(other.to_string())),
        };
        Ok(verifier)
    }

    /// Minimum HMAC secret length in bytes: the hash output size (RFC 7518 §3.2).
    pub(crate) fn hmac_min_secret_len(&self) -> Option<usize> {
        match self {
            Algorithm::Hs256 => Some(32),
            Algorithm::Hs384 => Some(48),
            Algorithm::Hs512 => Some(64),
            _ => None,
        }
    }
}

/// josekit's error text describes the JWK's shape (which member is missing or wrong), never
/// its secret values, so it is kept for the operator.
fn invalid_key(err: josekit::JoseError) -> JoseError {
    JoseError::InvalidKey(err.to_string())
}

impl Default for Algorithm {
    /// RS256 (IOP-SIG-01).
    fn default() -> Self {
        Algorithm::Rs256
    }
}

impl FromStr for Algorithm {
    type Err = std::convert::Infallible;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "RS256" => Algorithm::Rs256,
            "ES256" => Algorithm::Es256,
            "PS256" => Algorithm::Ps256,
            "EdDSA" => Algorithm::EdDsa,
            "HS256" => Algorithm::Hs256,
            "HS384" => Algorithm::Hs384,
            "HS512" => Algorithm::Hs512,
            other => Algorithm::Other(other.to_owned()),
        })
    }
}

impl From<&str> for Algorithm {
    fn from(s: &str) -> Self {
        match s.parse() {
            Ok(alg) => alg,
            Err(never) => match never {},
        }
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Algorithm({})", self.as_str())
    }
}

impl Serialize for Algorithm {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Algorithm {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = String::deserialize(deserializer)?;
        Ok(Algorithm::from(name.as_str()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_unknown_names_are_kept() {
        for alg in Algorithm::ASYMMETRIC
            .iter()
            .chain([Algorithm::Hs256, Algorithm::Hs384, Algorithm::Hs512].iter())
        {
            assert_eq!(&Algorithm::from(alg.as_str()), alg);
        }
        assert_eq!(
            Algorithm::from("RS512"),
            Algorithm::Other("RS512".to_owned())
        );
        assert_eq!(Algorithm::from("rs256").as_str(), "rs256");
        assert!(Algorithm::from("none").is_none());
        assert!(Algorithm::from("NONE").is_none());
        assert!(!Algorithm::Rs256.is_none());
        assert_eq!(Algorithm::default(), Algorithm::Rs256);
        let json = serde_json::to_string(&Algorithm::EdDsa).unwrap();
        assert_eq!(json, "\"EdDSA\"");
        let back: Algorithm = serde_json::from_str(&json).unwrap();
        assert_eq!(back, Algorithm::EdDsa);
    }
}
