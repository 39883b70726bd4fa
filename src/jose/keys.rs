//! Signing keys: generation, the [`KeyRing`] of active keys, the published JWKS, rotation.
//!
//! Keys live in the store as [`SigningKeyRow`]s holding the private JWK. A key is *active*
//! while its `retires_at` is unset or in the future. The newest active key signs; every
//! active key is published, so receivers that cached the JWKS before a rotation can still
//! verify SETs signed just before it, until the overlap ends.

use std::fmt;

use josekit::jwk::Jwk;
use serde_json::{Map, Value};

use super::{Algorithm, JoseError, SetSigner};
use crate::clock::Clock;
use crate::storage::{SigningKeyRow, Store};

/// Smallest RSA modulus ssfd signs with or accepts, in bits (IOP-SIG-01).
pub const MIN_RSA_BITS: usize = 2048;

/// The public members of a JWK, per `kty`: everything else (`d`, `p`, `q`, `dp`, `dq`, `qi`,
/// `oth`, `k`, and whatever else a JWK carries) is private or irrelevant and never published.
fn public_members(kty: &str) -> Option<&'static [&'static str]> {
    match kty {
        "RSA" => Some(&["n", "e"]),
        "EC" => Some(&["crv", "x", "y"]),
        "OKP" => Some(&["crv", "x"]),
        _ => None,
    }
}

/// Generates a new private key for `alg` (RSA keys have [`MIN_RSA_BITS`] bits; ES256 uses
/// P-256, EdDSA Ed25519) and returns it as a storage row created at `now`, with `kid` or a
/// fresh [`crate::ids::new_id`]. The JWK carries `kid`, `alg` and `"use": "sig"`.
pub fn generate(alg: &Algorithm, kid: Option<&str>, now: i64) -> Result<SigningKeyRow, JoseError> {
    use josekit::jwk::alg::ec::EcCurve;
    use josekit::jwk::alg::ed::EdCurve;

    let bits = u32::try_from(MIN_RSA_BITS).expect("fits");
    let generated = match alg {
        Algorithm::Rs256 | Algorithm::Ps256 => Jwk::generate_rsa_key(bits),
        Algorithm::Es256 => Jwk::generate_ec_key(EcCurve::P256),
        Algorithm::EdDsa => Jwk::generate_ed_key(EdCurve::Ed25519),
        other => return Err(JoseError::UnsupportedAlgorithm(other.to_string())),
    };
    let mut jwk = generated.map_err(|err| JoseError::InvalidKey(err.to_string()))?;
    let kid = kid.map_or_else(crate::ids::new_id, str::to_owned);
    jwk.set_key_id(kid.as_str());
    jwk.set_algorithm(alg.as_str());
    jwk.set_key_use("sig");
    Ok(SigningKeyRow {
        kid,
        alg: alg.to_string(),
        private_jwk: jwk.to_string(),
        created_at: now,
        retires_at: None,
    })
}

/// One parsed, checked key.
struct LoadedKey {
    kid: String,
    alg: Algorithm,
    created_at: i64,
    retires_at: Option<i64>,
    public_jwk: Map<String, Value>,
    signer: SetSigner,
}

/// Parses a stored key, checks that its type, curve and size suit its algorithm, builds its
/// signer once, and proves that the private and public halves belong together by signing and
/// verifying a probe.
fn load(row: &SigningKeyRow) -> Result<LoadedKey, JoseError> {
    let context = |msg: &str| JoseError::InvalidKey(format!("key {:?}: {msg}", row.kid));
    let alg = Algorithm::from(row.alg.as_str());
    if !alg.is_asymmetric() {
        return Err(JoseError::UnsupportedAlgorithm(row.alg.clone()));
    }
    // The JSON error text carries positions only, but say nothing about the input anyway.
    let mut jwk = Jwk::from_bytes(row.private_jwk.as_bytes())
        .map_err(|_| context("private_jwk is not a JWK"))?;
    check_key_shape(&jwk, &alg, Some(&row.kid))?;
    if jwk.parameter("d").is_none() {
        return Err(context("private_jwk has no private part"));
    }
    match jwk.algorithm() {
        None => {}
        Some(name) if name == alg.as_str() => {}
        Some(_) => return Err(context("the JWK's alg differs from the row's alg")),
    }
    jwk.set_key_id(row.kid.as_str());

    let public_jwk = public_jwk(&jwk, &alg, &row.kid)?;
    let signer = alg
        .signer_from_jwk(&jwk)
        .map_err(|err| context(&err.to_string()))?;
    let verifier = alg.verifier_from_jwk(
        &Jwk::from_map(public_jwk.clone()).map_err(|err| context(&err.to_string()))?,
    )?;
    let probe = b"ssfd key self-test";
    let signature = signer
        .sign(probe)
        .map_err(|err| context(&format!("cannot sign: {err}")))?;
    verifier
        .verify(probe, &signature)
        .map_err(|_| context("the public part does not match the private part"))?;

    Ok(LoadedKey {
        kid: row.kid.clone(),
        alg: alg.clone(),
        created_at: row.created_at,
        retires_at: row.retires_at,
        public_jwk,
        signer: SetSigner::new(row.kid.clone(), alg, signer),
    })
}

/// Checks `kty`, `crv` and (for RSA) the modulus size of a JWK against `alg`.
pub(crate) fn check_key_shape(
    jwk: &Jwk,
    alg: &Algorithm,
    kid: Option<&str>,
) -> Result<(), JoseError> {
    let what = || kid.map_or_else(|| "key".to_owned(), |kid| format!("key {kid:?}"));
    let Some((kty, crv)) = alg.key_type() else {
        return Err(JoseError::UnsupportedAlgorithm(alg.to_string()));
    };
    if jwk.key_type() != kty {
        return Err(JoseError::InvalidKey(format!(
            "{}: kty {:?} cannot be used with {alg}",
            what(),
            jwk.key_type()
        )));
    }
    if let Some(crv) = crv {
        if jwk.curve() != Some(crv) {
            return Err(JoseError::InvalidKey(format!(
                "{}: {alg} needs curve {crv}",
                what()
            )));
        }
    }
    if kty == "RSA" {
        let bits = rsa_modulus_bits(jwk)
            .ok_or_else(|| JoseError::InvalidKey(format!("{}: bad RSA modulus n", what())))?;
        if bits < MIN_RSA_BITS {
            return Err(JoseError::WeakKey {
                kid: kid.map(str::to_owned),
                bits,
                min: MIN_RSA_BITS,
            });
        }
    }
    Ok(())
}

/// The bit length of an RSA JWK's modulus `n`.
fn rsa_modulus_bits(jwk: &Jwk) -> Option<usize> {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine as _;

    let Some(Value::String(n)) = jwk.parameter("n") else {
        return None;
    };
    let n = URL_SAFE_NO_PAD.decode(n).ok()?;
    let first = n.iter().position(|&byte| byte != 0)?;
    let leading_zeros = usize::try_from(n[first].leading_zeros()).ok()?;
    Some((n.len() - first) * 8 - leading_zeros)
}

/// The public JWK for a (private or public) JWK: only the public members of its `kty`,
/// plus `kid`, `alg` and `"use": "sig"`.
fn public_jwk(jwk: &Jwk, alg: &Algorithm, kid: &str) -> Result<Map<String, Value>, JoseError> {
    let kty = jwk.key_type();
    let members = public_members(kty)
        .ok_or_else(|| JoseError::InvalidKey(format!("key {kid:?}: kty {kty:?} not supported")))?;
    let mut public = Map::new();
    public.insert("kty".to_owned(), Value::String(kty.to_owned()));
    for &member in members {
        let value = jwk.parameter(member).ok_or_else(|| {
            JoseError::InvalidKey(format!("key {kid:?}: member {member:?} missing"))
        })?;
        public.insert(member.to_owned(), value.clone());
    }
    public.insert("kid".to_owned(), Value::String(kid.to_owned()));
    public.insert("alg".to_owned(), Value::String(alg.to_string()));
    public.insert("use".to_owned(), Value::String("sig".to_owned()));
    Ok(public)
}

/// The transmitter's active signing keys, as of one instant.
///
/// * [`KeyRing::signer`]: the newest active key (greatest `created_at`; on a tie, the later
///   row), which signs every new SET.
/// * [`KeyRing::jwks`]: the JWK Set (RFC 7517 §5) of every active key, public members only.
///
/// A ring is a snapshot: rebuild it after a rotation and at [`KeyRing::next_retirement`],
/// when a key leaves the JWKS. No private key material leaves it, and its `Debug` shows
/// key ids and algorithms only.
pub struct KeyRing {
    signer: SetSigner,
    published: Vec<Published>,
    jwks: Value,
    built_at: i64,
}

struct Published {
    kid: String,
    alg: Algorithm,
    retires_at: Option<i64>,
}

impl KeyRing {
    /// Loads every active row (as of `now`; retired rows are skipped unread). Fails when no
    /// row is active, or when an active row does not load (bad JWK, RSA key under
    /// [`MIN_RSA_BITS`], public and private parts that do not match).
    pub fn new(rows: Vec<SigningKeyRow>, now: i64) -> Result<Self, JoseError> {
        let mut loaded = Vec::new();
        for row in rows.iter().filter(|row| is_active(row, now)) {
            loaded.push(load(row)?);
        }
        // Newest wins; `max_by_key` returns the last of equal maxima: the later row.
        let newest = loaded
            .iter()
            .enumerate()
            .max_by_key(|(index, key)| (key.created_at, *index))
            .map(|(index, _)| index)
            .ok_or(JoseError::NoSigningKey)?;
        let signer = loaded[newest].signer.clone();
        let keys: Vec<Value> = loaded
            .iter()
            .map(|key| Value::Object(key.public_jwk.clone()))
            .collect();
        let published = loaded
            .into_iter()
            .map(|key| Published {
                kid: key.kid,
                alg: key.alg,
                retires_at: key.retires_at,
            })
            .collect();
        Ok(Self {
            signer,
            published,
            jwks: serde_json::json!({ "keys": keys }),
            built_at: now,
        })
    }

    /// The signer of the newest active key.
    pub fn signer(&self) -> &SetSigner {
        &self.signer
    }

    /// The JWK Set of every active key: `{"keys":[{kty, <public members>, kid, alg, use}]}`.
    pub fn jwks(&self) -> &Value {
        &self.jwks
    }

    /// The ids of the published keys, in stored order.
    pub fn kids(&self) -> impl Iterator<Item = &str> {
        self.published.iter().map(|key| key.kid.as_str())
    }

    /// The earliest `retires_at` of a published key: the ring should be rebuilt then.
    pub fn next_retirement(&self) -> Option<i64> {
        self.published.iter().filter_map(|key| key.retires_at).min()
    }

    /// The instant the ring was built for.
    pub fn built_at(&self) -> i64 {
        self.built_at
    }
}

impl fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        struct Key<'a>(&'a Published);
        impl fmt::Debug for Key<'_> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{} {}", self.0.kid, self.0.alg)?;
                if let Some(at) = self.0.retires_at {
                    write!(f, " (retires at {at})")?;
                }
                Ok(())
            }
        }
        f.debug_struct("KeyRing")
            .field("signing_kid", &self.signer.kid())
            .field(
                "published",
                &self.published.iter().map(Key).collect::<Vec<_>>(),
            )
            .field("built_at", &self.built_at)
            .finish()
    }
}

fn is_active(row: &SigningKeyRow, now: i64) -> bool {
    row.retires_at.is_none_or(|at| at > now)
}

/// Loads the stored keys into a [`KeyRing`]; on first start (or when every stored key has
/// retired) generates a key for `alg` and inserts it first.
///
/// Two replicas starting at once against an empty database may both insert a key: both are
/// then published and the newer one signs, which is harmless.
///
/// A stored active key of another algorithm keeps signing: changing the configured
/// algorithm takes effect at the next [`rotate_signing_key`].
pub async fn ensure_signing_key(
    store: &dyn Store,
    alg: &Algorithm,
    clock: &dyn Clock,
) -> Result<KeyRing, JoseError> {
    let now = clock.now();
    let mut rows = store.list_signing_keys().await?;
    if !rows.iter().any(|row| is_active(row, now)) {
        let row = generate(alg, None, now)?;
        store.insert_signing_key(&row).await?;
        tracing::info!(kid = %row.kid, alg = %row.alg, "generated the first signing key");
        rows = store.list_signing_keys().await?;
    }
    KeyRing::new(rows, now)
}

/// Rotates: generates a key for `alg`, which signs from now on, and retires every
/// previously unretired key at `now + overlap_secs` (they stay in the JWKS until then).
/// Returns the new ring.
pub async fn rotate_signing_key(
    store: &dyn Store,
    alg: &Algorithm,
    overlap_secs: i64,
    clock: &dyn Clock,
) -> Result<KeyRing, JoseError> {
    let now = clock.now();
    let row = generate(alg, None, now)?;
    // Check that the new key loads before the old ones are scheduled for retirement.
    load(&row)?;
    store
        .rotate_signing_key(&row, now.saturating_add(overlap_secs))
        .await?;
    tracing::info!(kid = %row.kid, alg = %row.alg, overlap_secs, "rotated the signing key");
    KeyRing::new(store.list_signing_keys().await?, now)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(alg: Algorithm, kid: &str, created_at: i64, retires_at: Option<i64>) -> SigningKeyRow {
        let mut row = generate(&alg, Some(kid), created_at).unwrap();
        row.retires_at = retires_at;
        row
    }

    fn published_kids(ring: &KeyRing) -> Vec<&str> {
        ring.kids().collect()
    }

    #[test]
    fn newest_active_key_signs_and_all_active_keys_are_published() {
        let rows = vec![
            row(Algorithm::Es256, "old", 100, Some(500)),
            row(Algorithm::Es256, "new", 200, None),
            row(Algorithm::EdDsa, "gone", 50, Some(150)),
        ];
        let ring = KeyRing::new(rows.clone(), 300).unwrap();
        assert_eq!(ring.signer().kid(), "new");
        assert_eq!(published_kids(&ring), ["old", "new"]);
        assert_eq!(ring.next_retirement(), Some(500));

        // retires_at is exclusive: at 500 "old" is retired.
        let ring = KeyRing::new(rows, 500).unwrap();
        assert_eq!(published_kids(&ring), ["new"]);
        assert_eq!(ring.next_retirement(), None);
    }

    #[test]
    fn a_newer_key_signs_even_if_it_retires_later() {
        // Rotation scheduled with a future retirement on the newest key still lets it sign.
        let rows = vec![
            row(Algorithm::EdDsa, "b", 200, Some(1_000)),
            row(Algorithm::EdDsa, "a", 100, None),
        ];
        let ring = KeyRing::new(rows, 300).unwrap();
        assert_eq!(ring.signer().kid(), "b");
    }

    #[test]
    fn ties_on_created_at_go_to_the_later_row() {
        let rows = vec![
            row(Algorithm::EdDsa, "first", 100, None),
            row(Algorithm::EdDsa, "second", 100, None),
        ];
        assert_eq!(KeyRing::new(rows, 100).unwrap().signer().kid(), "second");
    }

    #[test]
    fn no_active_key_is_an_error() {
        assert!(matches!(
            KeyRing::new(Vec::new(), 0),
            Err(JoseError::NoSigningKey)
        ));
        let rows = vec![row(Algorithm::EdDsa, "x", 0, Some(10))];
        assert!(matches!(
            KeyRing::new(rows, 10),
            Err(JoseError::NoSigningKey)
        ));
    }

    #[test]
    fn retired_rows_are_not_even_parsed() {
        let mut broken = row(Algorithm::EdDsa, "broken", 0, Some(10));
        broken.private_jwk = "not json".to_owned();
        let rows = vec![broken, row(Algorithm::EdDsa, "ok", 5, None)];
        assert_eq!(KeyRing::new(rows, 20).unwrap().signer().kid(), "ok");
    }

    #[test]
    fn a_corrupt_active_key_fails_loudly() {
        let mut broken = row(Algorithm::EdDsa, "broken", 0, None);
        broken.private_jwk = "not json".to_owned();
        let err = KeyRing::new(vec![broken], 0).unwrap_err();
        assert!(matches!(err, JoseError::InvalidKey(_)), "{err}");
        assert!(!err.to_string().contains("not json"));
    }

    #[test]
    fn mismatched_halves_are_rejected() {
        // Public x of one Ed25519 key with the private d of another.
        let a = row(Algorithm::EdDsa, "a", 0, None);
        let b = row(Algorithm::EdDsa, "b", 0, None);
        let mut a_jwk: Map<String, Value> = serde_json::from_str(&a.private_jwk).unwrap();
        let b_jwk: Map<String, Value> = serde_json::from_str(&b.private_jwk).unwrap();
        a_jwk.insert("x".to_owned(), b_jwk["x"].clone());
        let mut mixed = a;
        mixed.private_jwk = Value::Object(a_jwk).to_string();
        let err = KeyRing::new(vec![mixed], 0).unwrap_err();
        assert!(err.to_string().contains("does not match"), "{err}");
    }

    #[test]
    fn wrong_key_type_for_the_algorithm_is_rejected() {
        let mut es = row(Algorithm::Es256, "es", 0, None);
        es.alg = "EdDSA".to_owned();
        assert!(matches!(
            KeyRing::new(vec![es], 0),
            Err(JoseError::InvalidKey(_))
        ));
        let mut hs = row(Algorithm::EdDsa, "hs", 0, None);
        hs.alg = "HS256".to_owned();
        assert!(matches!(
            KeyRing::new(vec![hs], 0),
            Err(JoseError::UnsupportedAlgorithm(_))
        ));
    }

    #[test]
    fn debug_output_is_redacted() {
        let rows = vec![row(Algorithm::EdDsa, "k1", 0, None)];
        let private: Map<String, Value> = serde_json::from_str(&rows[0].private_jwk).unwrap();
        let d = private["d"].as_str().unwrap().to_owned();
        let ring = KeyRing::new(rows, 0).unwrap();
        let debug = format!("{ring:?} {:?}", ring.signer());
        assert!(debug.contains("k1"));
        assert!(!debug.contains(&d));
    }

    #[test]
    fn generation_rejects_algorithms_that_cannot_sign() {
        for name in ["HS256", "none", "RS512"] {
            assert!(matches!(
                generate(&Algorithm::from(name), None, 0),
                Err(JoseError::UnsupportedAlgorithm(_))
            ));
        }
        let row = generate(&Algorithm::Es256, None, 7).unwrap();
        assert_eq!(row.kid.len(), 32);
        assert_eq!(row.created_at, 7);
        assert_eq!(row.retires_at, None);
    }
}
