//! SET signing: claims in, compact JWS out.

use std::fmt;
use std::sync::Arc;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use josekit::jws::JwsSigner;
use serde::Serialize;

use super::{Algorithm, JoseError};

/// The JOSE `typ` of a SET (RFC 8417 §2.3), required by SSF 1.0 §4.1.1 (SSF-SET-01).
pub const SET_TYP: &str = "secevent+jwt";

/// The JOSE `typ` of a JWT access token (RFC 9068 §2.1), which keeps ssfd's access tokens and
/// SETs, signed by the same key, from being mistaken for one another.
pub const ACCESS_TOKEN_TYP: &str = "at+jwt";

/// Signs SETs with one key. Cheap to clone (one `Arc`); build it once (from
/// [`super::KeyRing::signer`]) and share it, never per SET.
///
/// The protected header is exactly `{"alg":<alg>,"kid":<kid>,"typ":"secevent+jwt"}`
/// (SSF-SET-01), in that order. It is serialized and base64url-encoded once, when the signer is
/// built. The signer signs what it is given: it does not add, check or remove claims.
#[derive(Clone)]
pub struct SetSigner {
    inner: Arc<Inner>,
}

struct Inner {
    kid: String,
    alg: Algorithm,
    /// base64url of the SET protected header, followed by the `.` separator.
    header_prefix: String,
    /// The same for access tokens (`typ` `at+jwt`).
    access_token_prefix: String,
    signer: Box<dyn JwsSigner>,
}

impl SetSigner {
    pub(crate) fn new(kid: String, alg: Algorithm, signer: Box<dyn JwsSigner>) -> Self {
        // A BTreeMap-backed (or insertion-ordered) object: alg, kid, typ either way.
        let prefix = |typ: &str| {
            let header = serde_json::json!({
                "alg": alg.as_str(),
                "kid": kid,
                "typ": typ,
            });
            let header = serde_json::to_vec(&header).expect("a map of strings serializes");
            let mut prefix = URL_SAFE_NO_PAD.encode(header);
            prefix.push('.');
            prefix
        };
        let header_prefix = prefix(SET_TYP);
        let access_token_prefix = prefix(ACCESS_TOKEN_TYP);
        Self {
            inner: Arc::new(Inner {
                kid,
                alg,
                header_prefix,
                access_token_prefix,
                signer,
            }),
        }
    }

    /// The key id written into every header.
    pub fn kid(&self) -> &str {
        &self.inner.kid
    }

    /// The algorithm written into every header.
    pub fn alg(&self) -> &Algorithm {
        &self.inner.alg
    }

    /// Serializes `claims` (which must serialize to a JSON object: a JWT claims set) and
    /// signs them.
    pub fn sign<T: Serialize + ?Sized>(&self, claims: &T) -> Result<String, JoseError> {
        let payload =
            serde_json::to_vec(claims).map_err(|err| JoseError::Serialize(err.to_string()))?;
        if payload.first() != Some(&b'{') {
            return Err(JoseError::Serialize(
                "the claims are not a JSON object".to_owned(),
            ));
        }
        self.sign_payload(&payload)
    }

    /// Signs payload bytes as they are: the caller vouches that they are a JSON object.
    pub fn sign_payload(&self, payload: &[u8]) -> Result<String, JoseError> {
        self.sign_with_prefix(&self.inner.header_prefix, payload)
    }

    /// Signs an OAuth access token's claims, with `typ` `at+jwt` (RFC 9068).
    pub fn sign_access_token<T: Serialize + ?Sized>(
        &self,
        claims: &T,
    ) -> Result<String, JoseError> {
        let payload =
            serde_json::to_vec(claims).map_err(|err| JoseError::Serialize(err.to_string()))?;
        self.sign_with_prefix(&self.inner.access_token_prefix, &payload)
    }

    fn sign_with_prefix(&self, header_prefix: &str, payload: &[u8]) -> Result<String, JoseError> {
        let inner = &*self.inner;
        let capacity = header_prefix.len()
            + 1
            + (payload.len() * 4).div_ceil(3)
            + (inner.signer.signature_len() * 4).div_ceil(3);
        let mut token = String::with_capacity(capacity);
        token.push_str(header_prefix);
        URL_SAFE_NO_PAD.encode_string(payload, &mut token);
        let signature = inner
            .signer
            .sign(token.as_bytes())
            .map_err(|err| JoseError::Sign(err.to_string()))?;
        token.push('.');
        URL_SAFE_NO_PAD.encode_string(signature, &mut token);
        Ok(token)
    }
}

impl fmt::Debug for SetSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SetSigner")
            .field("kid", &self.inner.kid)
            .field("alg", &self.inner.alg)
            .field("key", &"<redacted>")
            .finish()
    }
}
