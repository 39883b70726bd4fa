//! JOSE: signing keys, JWKS, SET signing and verification, with real keys and real
//! signatures. Each test names the checklist IDs it covers.

use std::sync::Arc;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use josekit::jwk::{Jwk, KeyPair as _};
use josekit::jws::JwsSigner;
use serde_json::{json, Map, Value};

use ssfd::clock::ManualClock;
use ssfd::jose::{
    ensure_signing_key, generate, peek_unverified, rotate_signing_key, Algorithm, JoseError,
    KeyRing, SetVerifier, VerifyError,
};
use ssfd::storage::SigningKeyRow;

const NOW: i64 = 1_750_000_000;
const ISS: &str = "https://idp.example.com/";
const AUD: &str = "https://rp.example.net/ssf/stream-1";
const SESSION_REVOKED: &str = "https://schemas.openid.net/secevent/caep/event-type/session-revoked";

fn clock() -> Arc<ManualClock> {
    Arc::new(ManualClock::at(NOW))
}

fn claims() -> Value {
    json!({
        "iss": ISS,
        "aud": AUD,
        "iat": NOW,
        "jti": "756E69717565206964656E746966696572",
        "sub_id": {"format": "email", "email": "alice@example.com"},
        "events": {
            SESSION_REVOKED: {"event_timestamp": NOW - 5, "initiating_entity": "policy"}
        }
    })
}

/// `claims()` with `f` applied.
fn claims_with(f: impl FnOnce(&mut Map<String, Value>)) -> Value {
    let mut claims = claims();
    f(claims.as_object_mut().unwrap());
    claims
}

fn ring(alg: Algorithm, kid: &str) -> (KeyRing, SigningKeyRow) {
    let row = generate(&alg, Some(kid), NOW).unwrap();
    (KeyRing::new(vec![row.clone()], NOW).unwrap(), row)
}

fn verifier(jwks: &Value, clock: Arc<ManualClock>) -> SetVerifier {
    SetVerifier::builder(ISS, AUD, jwks, clock).build().unwrap()
}

/// A raw josekit signer for a stored key, to forge tokens with headers of our choosing.
fn raw_signer(row: &SigningKeyRow, alg: &str) -> Box<dyn JwsSigner> {
    let mut jwk = Jwk::from_bytes(row.private_jwk.as_bytes()).unwrap();
    // The stored JWK says which algorithm it is for; forging needs to ignore that.
    jwk.set_parameter("alg", None).unwrap();
    match alg {
        "RS256" => Box::new(josekit::jws::RS256.signer_from_jwk(&jwk).unwrap()),
        "PS256" => Box::new(josekit::jws::PS256.signer_from_jwk(&jwk).unwrap()),
        other => panic!("no raw signer for {other}"),
    }
}

/// A compact token with exactly this header and payload, signed by `signer` (or with an
/// empty signature).
fn forge(header: &Value, claims: &Value, signer: Option<&dyn JwsSigner>) -> String {
    let input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(header).unwrap()),
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims).unwrap())
    );
    let signature = signer.map_or_else(Vec::new, |signer| signer.sign(input.as_bytes()).unwrap());
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature))
}

fn header_of(token: &str) -> String {
    let first = token.split('.').next().unwrap();
    String::from_utf8(URL_SAFE_NO_PAD.decode(first).unwrap()).unwrap()
}

/// The standard RS256 fixture: a ring, its row, a verifier pinned to its JWKS, and a clock.
struct Rs256 {
    ring: KeyRing,
    row: SigningKeyRow,
    verifier: SetVerifier,
    clock: Arc<ManualClock>,
}

fn rs256() -> Rs256 {
    let clock = clock();
    let (ring, row) = ring(Algorithm::Rs256, "rsa-1");
    let verifier = verifier(ring.jwks(), clock.clone());
    Rs256 {
        ring,
        row,
        verifier,
        clock,
    }
}

impl Rs256 {
    fn sign(&self, claims: &Value) -> String {
        self.ring.signer().sign(claims).unwrap()
    }

    fn verify(&self, token: &str) -> Result<ssfd::jose::VerifiedSet, VerifyError> {
        self.verifier.verify(token)
    }
}

// ---------------------------------------------------------------------------------------
// Round trips

fn round_trip(alg: Algorithm) {
    let clock = clock();
    let kid = format!("{alg}-key");
    let (ring, _) = ring(alg.clone(), &kid);
    let token = ring.signer().sign(&claims()).unwrap();
    // SSF-SET-01: the protected header is exactly alg, kid, typ.
    assert_eq!(
        header_of(&token),
        format!(r#"{{"alg":"{alg}","kid":"{kid}","typ":"secevent+jwt"}}"#)
    );
    let verified = verifier(ring.jwks(), clock).verify(&token).unwrap();
    assert_eq!(verified.alg, alg);
    assert_eq!(verified.kid.as_deref(), Some(kid.as_str()));
    assert_eq!(Value::Object(verified.claims.clone()), claims());
    // R11: the raw compact token is kept byte for byte.
    assert_eq!(verified.raw, token);
    assert_eq!(verified.jti(), "756E69717565206964656E746966696572");
    assert_eq!(verified.iss(), ISS);
}

#[test]
fn rs256_round_trip() {
    // SSF-SET-01, IOP-SIG-01
    round_trip(Algorithm::Rs256);
}

#[test]
fn es256_round_trip() {
    // SSF-SET-01
    round_trip(Algorithm::Es256);
}

#[test]
fn ps256_round_trip() {
    // SSF-SET-01
    round_trip(Algorithm::Ps256);
}

#[test]
fn eddsa_round_trip() {
    // SSF-SET-01
    round_trip(Algorithm::EdDsa);
}

#[test]
fn default_algorithm_is_rs256_with_a_2048_bit_key() {
    // IOP-SIG-01
    assert_eq!(Algorithm::default(), Algorithm::Rs256);
    let (ring, _) = ring(Algorithm::default(), "k");
    let n = ring.jwks()["keys"][0]["n"].as_str().unwrap();
    assert_eq!(URL_SAFE_NO_PAD.decode(n).unwrap().len() * 8, 2048);
}

#[test]
fn signer_signs_payload_bytes_and_refuses_non_objects() {
    // SSF-SET-01
    let fx = rs256();
    let payload = serde_json::to_vec(&claims()).unwrap();
    let token = fx.ring.signer().sign_payload(&payload).unwrap();
    fx.verify(&token).unwrap();
    assert!(matches!(
        fx.ring.signer().sign(&json!(["not", "an", "object"])),
        Err(JoseError::Serialize(_))
    ));
}

// ---------------------------------------------------------------------------------------
// JWKS and rotation

#[test]
fn jwks_holds_public_members_only() {
    // IOP-SIG-01 (keys published for verification), SSF-SET-04
    for alg in Algorithm::ASYMMETRIC {
        let (ring, _) = ring(alg.clone(), "k1");
        let keys = ring.jwks()["keys"].as_array().unwrap();
        assert_eq!(keys.len(), 1);
        let key = keys[0].as_object().unwrap();
        for private in ["d", "p", "q", "dp", "dq", "qi", "oth", "k"] {
            assert!(!key.contains_key(private), "{alg}: {private} published");
        }
        assert_eq!(key["kid"], "k1");
        assert_eq!(key["alg"], alg.as_str());
        assert_eq!(key["use"], "sig");
        let allowed: &[&str] = match alg {
            Algorithm::Rs256 | Algorithm::Ps256 => &["kty", "n", "e", "kid", "alg", "use"],
            Algorithm::Es256 => &["kty", "crv", "x", "y", "kid", "alg", "use"],
            _ => &["kty", "crv", "x", "kid", "alg", "use"],
        };
        let mut members: Vec<&str> = key.keys().map(String::as_str).collect();
        members.sort_unstable();
        let mut expected = allowed.to_vec();
        expected.sort_unstable();
        assert_eq!(members, expected, "{alg}");
    }
}

/// A real (in-memory SQLite) store, for `ensure_signing_key` and rotation.
async fn key_store() -> ssfd::storage::SharedStore {
    ssfd::storage::connect("sqlite::memory:", 1).await.unwrap()
}

async fn key_count(store: &ssfd::storage::SharedStore) -> usize {
    store.list_signing_keys().await.unwrap().len()
}

fn jwks_kids(ring: &KeyRing) -> Vec<String> {
    ring.jwks()["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn first_start_generates_one_key_and_restarts_reuse_it() {
    // IOP-SIG-01
    let store = key_store().await;
    let clock = clock();
    let first = ensure_signing_key(store.as_ref(), &Algorithm::Rs256, clock.as_ref())
        .await
        .unwrap();
    assert_eq!(key_count(&store).await, 1);
    assert_eq!(first.signer().alg(), &Algorithm::Rs256);
    clock.advance(100);
    let again = ensure_signing_key(store.as_ref(), &Algorithm::Rs256, clock.as_ref())
        .await
        .unwrap();
    assert_eq!(key_count(&store).await, 1);
    assert_eq!(again.signer().kid(), first.signer().kid());
}

#[tokio::test]
async fn rotation_publishes_old_and_new_until_the_overlap_ends() {
    // SSF-SET-04, IOP-SIG-01
    let store = key_store().await;
    let clock = clock();
    let before = ensure_signing_key(store.as_ref(), &Algorithm::Es256, clock.as_ref())
        .await
        .unwrap();
    let old_kid = before.signer().kid().to_owned();
    let signed_before = before.signer().sign(&claims()).unwrap();

    clock.advance(10);
    let during = rotate_signing_key(store.as_ref(), &Algorithm::Es256, 3600, clock.as_ref())
        .await
        .unwrap();
    let new_kid = during.signer().kid().to_owned();
    assert_ne!(new_kid, old_kid);
    // The new key signs at once; the old one stays published.
    assert_eq!(jwks_kids(&during), [old_kid.clone(), new_kid.clone()]);
    assert_eq!(during.next_retirement(), Some(NOW + 10 + 3600));
    let receiver = verifier(during.jwks(), clock.clone());
    receiver.verify(&signed_before).unwrap();
    let signed_during = during.signer().sign(&claims()).unwrap();
    assert_eq!(
        receiver.verify(&signed_during).unwrap().kid,
        Some(new_kid.clone())
    );

    // Still published one second before the overlap ends...
    clock.advance(3599);
    let ring = ensure_signing_key(store.as_ref(), &Algorithm::Es256, clock.as_ref())
        .await
        .unwrap();
    assert_eq!(jwks_kids(&ring), [old_kid.clone(), new_kid.clone()]);

    // ...and gone when it ends.
    clock.advance(1);
    let after = ensure_signing_key(store.as_ref(), &Algorithm::Es256, clock.as_ref())
        .await
        .unwrap();
    assert_eq!(jwks_kids(&after), [new_kid.as_str()]);
    assert_eq!(after.signer().kid(), new_kid);
    assert_eq!(key_count(&store).await, 2, "no key generated");
    let receiver = SetVerifier::builder(ISS, AUD, after.jwks(), clock.clone())
        .build()
        .unwrap();
    assert_eq!(
        receiver.verify(&signed_before).unwrap_err(),
        VerifyError::UnknownKey(Some(old_kid))
    );
}

#[tokio::test]
async fn all_keys_retired_means_a_new_key() {
    // IOP-SIG-01
    let store = key_store().await;
    let mut old = generate(&Algorithm::Rs256, Some("old"), NOW - 100).unwrap();
    old.retires_at = Some(NOW);
    store.insert_signing_key(&old).await.unwrap();
    let ring = ensure_signing_key(store.as_ref(), &Algorithm::Rs256, &ManualClock::at(NOW))
        .await
        .unwrap();
    assert_ne!(ring.signer().kid(), "old");
    assert_eq!(ring.kids().count(), 1);
}

#[test]
fn short_rsa_keys_are_rejected() {
    // IOP-SIG-01: RSA keys of at least 2048 bits, for signing and for verifying.
    let mut jwk = Jwk::generate_rsa_key(1024).unwrap();
    jwk.set_key_id("short");
    jwk.set_algorithm("RS256");
    let row = SigningKeyRow {
        kid: "short".to_owned(),
        alg: "RS256".to_owned(),
        private_jwk: jwk.to_string(),
        created_at: NOW,
        retires_at: None,
    };
    match KeyRing::new(vec![row], NOW) {
        Err(JoseError::WeakKey { bits, min, .. }) => assert_eq!((bits, min), (1024, 2048)),
        other => panic!("expected WeakKey, got {other:?}"),
    }

    // A short key in an upstream JWKS is never used.
    let public = jwk.to_public_key().unwrap();
    let mut public_map = public.as_ref().clone();
    public_map.insert("kid".to_owned(), json!("short"));
    let jwks = json!({ "keys": [public_map] });
    let err = SetVerifier::builder(ISS, AUD, &jwks, clock())
        .build()
        .unwrap_err();
    assert!(matches!(err, JoseError::NoUsableKey(_)), "{err}");
}

// ---------------------------------------------------------------------------------------
// Tampered tokens: each fails with its own variant.

#[test]
fn flipped_signature_byte_fails_bad_signature() {
    // SSF-SET-17 (RFC 8417 §5.1: SETs are signed), PUSH-01
    let fx = rs256();
    let token = fx.sign(&claims());
    let (input, signature) = token.rsplit_once('.').unwrap();
    let mut signature = URL_SAFE_NO_PAD.decode(signature).unwrap();
    signature[17] ^= 0x01;
    let tampered = format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature));
    assert_eq!(fx.verify(&tampered).unwrap_err(), VerifyError::BadSignature);
    assert_eq!(VerifyError::BadSignature.rfc8935_code(), "invalid_key");

    // A changed payload under the original signature fails the same way.
    let (header, rest) = token.split_once('.').unwrap();
    let (_, signature) = rest.split_once('.').unwrap();
    let evil = claims_with(|c| {
        c.insert("jti".to_owned(), json!("another"));
    });
    let evil_payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&evil).unwrap());
    let swapped = format!("{header}.{evil_payload}.{signature}");
    assert_eq!(fx.verify(&swapped).unwrap_err(), VerifyError::BadSignature);
}

#[test]
fn alg_none_fails_alg_none() {
    // SSF-SET-17, SET-19
    let fx = rs256();
    for none in ["none", "None", "NONE"] {
        let header = json!({"alg": none, "kid": "rsa-1", "typ": "secevent+jwt"});
        let token = forge(&header, &claims(), None);
        assert!(token.ends_with('.'));
        assert_eq!(fx.verify(&token).unwrap_err(), VerifyError::AlgNone);
    }
    // And no policy can allow it.
    let err = SetVerifier::builder(ISS, AUD, fx.ring.jwks(), clock())
        .allowed_algorithms([Algorithm::Rs256, Algorithm::from("none")])
        .build()
        .unwrap_err();
    assert!(matches!(err, JoseError::Policy(_)), "{err}");
}

#[test]
fn alg_swap_to_hs256_with_the_public_key_as_secret_fails() {
    // SSF-SET-17, IOP-SIG-01: the classic RS256 -> HS256 key confusion.
    let fx = rs256();
    let jwk = Jwk::from_bytes(fx.row.private_jwk.as_bytes()).unwrap();
    let pem = josekit::jwk::alg::rsa::RsaKeyPair::from_jwk(&jwk)
        .unwrap()
        .to_pem_public_key();
    let hmac = josekit::jws::HS256.signer_from_bytes(&pem).unwrap();
    let header = json!({"alg": "HS256", "kid": "rsa-1", "typ": "secevent+jwt"});
    let token = forge(&header, &claims(), Some(&hmac));
    assert_eq!(
        fx.verify(&token).unwrap_err(),
        VerifyError::AlgNotAllowed("HS256".to_owned())
    );

    // HS256 cannot even be put on the allow-list of a JWKS-based verifier.
    let err = SetVerifier::builder(ISS, AUD, fx.ring.jwks(), clock())
        .allowed_algorithms([Algorithm::Rs256, Algorithm::Hs256])
        .build()
        .unwrap_err();
    assert!(matches!(err, JoseError::Policy(_)), "{err}");
}

#[test]
fn rs256_token_relabelled_ps256_fails_key_alg_mismatch() {
    // SSF-SET-17: the header alg must be the key's alg.
    let fx = rs256();
    let signer = raw_signer(&fx.row, "PS256");
    let header = json!({"alg": "PS256", "kid": "rsa-1", "typ": "secevent+jwt"});
    // Validly PS256-signed with the same RSA key, but the key is published as RS256 only.
    let token = forge(&header, &claims(), Some(signer.as_ref()));
    assert_eq!(
        fx.verify(&token).unwrap_err(),
        VerifyError::KeyAlgMismatch {
            kid: Some("rsa-1".to_owned()),
            alg: "PS256".to_owned()
        }
    );
    // Same with only the header edited on an RS256 token.
    let token = fx.sign(&claims());
    let (_, rest) = token.split_once('.').unwrap();
    let relabelled = format!(
        "{}.{rest}",
        URL_SAFE_NO_PAD.encode(br#"{"alg":"PS256","kid":"rsa-1","typ":"secevent+jwt"}"#)
    );
    assert!(matches!(
        fx.verify(&relabelled).unwrap_err(),
        VerifyError::KeyAlgMismatch { .. }
    ));
    // And an ES256 header against the RSA key.
    let header = json!({"alg": "ES256", "kid": "rsa-1", "typ": "secevent+jwt"});
    let token = forge(
        &header,
        &claims(),
        Some(raw_signer(&fx.row, "RS256").as_ref()),
    );
    assert!(matches!(
        fx.verify(&token).unwrap_err(),
        VerifyError::KeyAlgMismatch { .. }
    ));
}

#[test]
fn unknown_kid_fails_unknown_key() {
    // PUSH-01 (key belongs to the issuer), PUSH-12 invalid_key
    let fx = rs256();
    let header = json!({"alg": "RS256", "kid": "rsa-2", "typ": "secevent+jwt"});
    let token = forge(
        &header,
        &claims(),
        Some(raw_signer(&fx.row, "RS256").as_ref()),
    );
    let err = fx.verify(&token).unwrap_err();
    assert_eq!(err, VerifyError::UnknownKey(Some("rsa-2".to_owned())));
    assert_eq!(err.rfc8935_code(), "invalid_key");
}

#[test]
fn wrong_typ_fails_wrong_type() {
    // SSF-SET-01, SET-13
    let fx = rs256();
    let signer = raw_signer(&fx.row, "RS256");
    for typ in ["JWT", "at+jwt", "secevent", "application/jwt"] {
        let header = json!({"alg": "RS256", "kid": "rsa-1", "typ": typ});
        let token = forge(&header, &claims(), Some(signer.as_ref()));
        assert_eq!(
            fx.verify(&token).unwrap_err(),
            VerifyError::WrongType(Some(typ.to_owned()))
        );
    }
}

#[test]
fn missing_typ_fails_wrong_type() {
    // SSF-SET-01, SET-16: explicit typing is required.
    let fx = rs256();
    let header = json!({"alg": "RS256", "kid": "rsa-1"});
    let token = forge(
        &header,
        &claims(),
        Some(raw_signer(&fx.row, "RS256").as_ref()),
    );
    let err = fx.verify(&token).unwrap_err();
    assert_eq!(err, VerifyError::WrongType(None));
    assert_eq!(err.rfc8935_code(), "invalid_request");
}

#[test]
fn typ_media_type_spellings_are_accepted_unless_strict() {
    // SET-13: `application/secevent+jwt` names the same media type; strict mode wants the
    // exact SSF-SET-01 spelling.
    let fx = rs256();
    let signer = raw_signer(&fx.row, "RS256");
    let strict = SetVerifier::builder(ISS, AUD, fx.ring.jwks(), fx.clock.clone())
        .strict_typ()
        .build()
        .unwrap();
    for typ in [
        "application/secevent+jwt",
        "SECEVENT+JWT",
        "Application/SecEvent+JWT",
    ] {
        let header = json!({"alg": "RS256", "kid": "rsa-1", "typ": typ});
        let token = forge(&header, &claims(), Some(signer.as_ref()));
        fx.verify(&token).unwrap();
        assert_eq!(
            strict.verify(&token).unwrap_err(),
            VerifyError::WrongType(Some(typ.to_owned()))
        );
    }
    strict.verify(&fx.sign(&claims())).unwrap();
}

#[test]
fn wrong_iss_fails_wrong_issuer() {
    // SSF-SET-07, PUSH-12 invalid_issuer
    let fx = rs256();
    for iss in [
        "https://attacker.example/",
        "https://idp.example.com",
        "HTTPS://IDP.EXAMPLE.COM/",
    ] {
        let token = fx.sign(&claims_with(|c| {
            c.insert("iss".to_owned(), json!(iss));
        }));
        let err = fx.verify(&token).unwrap_err();
        assert_eq!(err, VerifyError::WrongIssuer(iss.to_owned()));
        assert_eq!(err.rfc8935_code(), "invalid_issuer");
    }
    let token = fx.sign(&claims_with(|c| {
        c.remove("iss");
    }));
    let err = fx.verify(&token).unwrap_err();
    assert_eq!(err, VerifyError::MissingClaim("iss"));
    assert_eq!(err.rfc8935_code(), "invalid_issuer");
}

#[test]
fn wrong_aud_fails_wrong_audience() {
    // SSF-SET-08, AMBIG-6, PUSH-12 invalid_audience
    let fx = rs256();
    for aud in [
        json!("https://other.example/"),
        json!(["a", "b"]),
        json!([]),
    ] {
        let token = fx.sign(&claims_with(|c| {
            c.insert("aud".to_owned(), aud.clone());
        }));
        let err = fx.verify(&token).unwrap_err();
        assert_eq!(err, VerifyError::WrongAudience, "{aud}");
        assert_eq!(err.rfc8935_code(), "invalid_audience");
    }
    // An array that contains ours is fine.
    let token = fx.sign(&claims_with(|c| {
        c.insert("aud".to_owned(), json!(["https://other.example/", AUD]));
    }));
    fx.verify(&token).unwrap();
    // Missing or mistyped aud.
    let token = fx.sign(&claims_with(|c| {
        c.remove("aud");
    }));
    assert_eq!(
        fx.verify(&token).unwrap_err(),
        VerifyError::MissingClaim("aud")
    );
    let token = fx.sign(&claims_with(|c| {
        c.insert("aud".to_owned(), json!([AUD, 7]));
    }));
    assert_eq!(
        fx.verify(&token).unwrap_err(),
        VerifyError::InvalidClaim("aud")
    );
}

#[test]
fn iat_beyond_skew_fails_iat_in_future() {
    // SET-05, spec-checklist §9 (iat not far future)
    let fx = rs256();
    let within = fx.sign(&claims_with(|c| {
        c.insert("iat".to_owned(), json!(NOW + 60));
    }));
    fx.verify(&within).unwrap();
    let beyond = fx.sign(&claims_with(|c| {
        c.insert("iat".to_owned(), json!(NOW + 61));
    }));
    assert_eq!(
        fx.verify(&beyond).unwrap_err(),
        VerifyError::IatInFuture {
            iat: NOW + 61,
            now: NOW
        }
    );
    // Time moves on and the same token becomes acceptable.
    fx.clock.advance(1);
    fx.verify(&beyond).unwrap();
    // iat is required.
    let token = fx.sign(&claims_with(|c| {
        c.remove("iat");
    }));
    assert_eq!(
        fx.verify(&token).unwrap_err(),
        VerifyError::MissingClaim("iat")
    );
    let token = fx.sign(&claims_with(|c| {
        c.insert("iat".to_owned(), json!("yesterday"));
    }));
    assert_eq!(
        fx.verify(&token).unwrap_err(),
        VerifyError::InvalidClaim("iat")
    );
}

#[test]
fn iat_older_than_max_age_fails_too_old() {
    // SET-05; max age is opt-in (POLL-06 redelivery may be late).
    let fx = rs256();
    let aged = SetVerifier::builder(ISS, AUD, fx.ring.jwks(), fx.clock.clone())
        .max_age(300)
        .build()
        .unwrap();
    let token = fx.sign(&claims());
    fx.clock.advance(300);
    aged.verify(&token).unwrap();
    fx.clock.advance(1);
    assert_eq!(
        aged.verify(&token).unwrap_err(),
        VerifyError::TooOld {
            iat: NOW,
            now: NOW + 301
        }
    );
    // Without max_age, old SETs are fine.
    fx.verify(&token).unwrap();
}

#[test]
fn sub_present_fails_forbidden_claim() {
    // SSF-SET-02, SET-08
    let fx = rs256();
    let token = fx.sign(&claims_with(|c| {
        c.insert("sub".to_owned(), json!("alice"));
    }));
    let err = fx.verify(&token).unwrap_err();
    assert_eq!(err, VerifyError::ForbiddenClaim("sub"));
    assert_eq!(err.rfc8935_code(), "invalid_request");
}

#[test]
fn exp_present_fails_forbidden_claim() {
    // SSF-SET-03, SET-09, SET-16
    let fx = rs256();
    let token = fx.sign(&claims_with(|c| {
        c.insert("exp".to_owned(), json!(NOW + 3600));
    }));
    assert_eq!(
        fx.verify(&token).unwrap_err(),
        VerifyError::ForbiddenClaim("exp")
    );
}

#[test]
fn jti_and_events_are_required() {
    // SET-06, SET-02, SET-18
    let fx = rs256();
    let cases: [(&str, Option<Value>, VerifyError); 6] = [
        ("jti", None, VerifyError::MissingClaim("jti")),
        ("jti", Some(json!("")), VerifyError::InvalidClaim("jti")),
        ("events", None, VerifyError::MissingClaim("events")),
        (
            "events",
            Some(json!({})),
            VerifyError::InvalidClaim("events"),
        ),
        (
            "events",
            Some(json!([SESSION_REVOKED])),
            VerifyError::InvalidClaim("events"),
        ),
        (
            "events",
            Some(json!({SESSION_REVOKED: "x"})),
            VerifyError::InvalidClaim("events"),
        ),
    ];
    for (name, value, expected) in cases {
        let token = fx.sign(&claims_with(|c| match value {
            Some(value) => {
                c.insert(name.to_owned(), value);
            }
            None => {
                c.remove(name);
            }
        }));
        assert_eq!(fx.verify(&token).unwrap_err(), expected);
    }
}

#[test]
fn keys_named_in_the_header_are_ignored() {
    // R11 (trust anchors come from the stream's config), SSF-SET-04
    let fx = rs256();
    let (attacker_ring, attacker_row) = ring(Algorithm::Rs256, "attacker");
    let attacker_jwk = attacker_ring.jwks()["keys"][0].clone();
    let attacker = raw_signer(&attacker_row, "RS256");
    let embedded = json!({
        "alg": "RS256",
        "typ": "secevent+jwt",
        "jku": "https://attacker.example/jwks.json",
        "x5u": "https://attacker.example/cert.pem",
        "jwk": attacker_jwk,
    });

    // Naming the attacker's own kid: not in the configured JWKS.
    let mut header = embedded.clone();
    header["kid"] = json!("attacker");
    let token = forge(&header, &claims(), Some(attacker.as_ref()));
    assert_eq!(
        fx.verify(&token).unwrap_err(),
        VerifyError::UnknownKey(Some("attacker".to_owned()))
    );

    // Naming the legitimate kid: the configured key does not verify the attacker's signature.
    let mut header = embedded.clone();
    header["kid"] = json!("rsa-1");
    let token = forge(&header, &claims(), Some(attacker.as_ref()));
    assert_eq!(fx.verify(&token).unwrap_err(), VerifyError::BadSignature);

    // No kid at all: the only configured RS256 key is tried, and fails.
    let token = forge(&embedded, &claims(), Some(attacker.as_ref()));
    assert_eq!(fx.verify(&token).unwrap_err(), VerifyError::BadSignature);

    // The same header members on a token the real key signed change nothing.
    let mut header = embedded;
    header["kid"] = json!("rsa-1");
    let token = forge(
        &header,
        &claims(),
        Some(raw_signer(&fx.row, "RS256").as_ref()),
    );
    fx.verify(&token).unwrap();
}

#[test]
fn malformed_tokens_fail_malformed() {
    // PUSH-10, PUSH-12 invalid_request
    let fx = rs256();
    let good = fx.sign(&claims());
    let (header, rest) = good.split_once('.').unwrap();
    let not_json = URL_SAFE_NO_PAD.encode(b"not json");
    let array = URL_SAFE_NO_PAD.encode(b"[1,2]");
    let crit = URL_SAFE_NO_PAD.encode(
        br#"{"alg":"RS256","kid":"rsa-1","typ":"secevent+jwt","crit":["b64"],"b64":false}"#,
    );
    let cases = [
        String::new(),
        "abc".to_owned(),
        format!("{good}.extra"),
        format!("{not_json}.{rest}"),
        format!("{array}.{rest}"),
        format!("{header}=.{rest}"),
        format!("{header}.!!!.sig"),
        format!("{crit}.{rest}"),
        // Properly signed, but the payload is not a claims object.
        fx.ring.signer().sign_payload(b"[1,2]").unwrap(),
        fx.ring.signer().sign_payload(b"not json").unwrap(),
    ];
    for token in &cases {
        let err = fx.verify(token).unwrap_err();
        assert!(matches!(err, VerifyError::Malformed(_)), "{token}: {err:?}");
        assert_eq!(err.rfc8935_code(), "invalid_request");
    }
}

// ---------------------------------------------------------------------------------------
// Key selection without kid, JWKS shapes, shared secrets

#[test]
fn kidless_token_needs_exactly_one_fitting_key() {
    // SSF-SET-04: key selection from the configured JWKS only.
    let (ring_a, row_a) = ring(Algorithm::Rs256, "a");
    let (ring_b, _) = ring(Algorithm::Rs256, "b");
    let (ring_e, _) = ring(Algorithm::Es256, "e");
    let header = json!({"alg": "RS256", "typ": "secevent+jwt"});
    let token = forge(
        &header,
        &claims(),
        Some(raw_signer(&row_a, "RS256").as_ref()),
    );

    // One RS256 key (plus an ES256 key that does not fit): accepted, kid reported.
    let jwks = json!({"keys": [ring_a.jwks()["keys"][0], ring_e.jwks()["keys"][0]]});
    let verified = verifier(&jwks, clock()).verify(&token).unwrap();
    assert_eq!(verified.kid.as_deref(), Some("a"));

    // Two RS256 keys: ambiguous, even though one of them would verify.
    let jwks = json!({"keys": [ring_a.jwks()["keys"][0], ring_b.jwks()["keys"][0]]});
    assert_eq!(
        verifier(&jwks, clock()).verify(&token).unwrap_err(),
        VerifyError::AmbiguousKey(2)
    );

    // No RS256 key at all.
    assert!(matches!(
        verifier(ring_e.jwks(), clock()).verify(&token).unwrap_err(),
        VerifyError::KeyAlgMismatch { kid: None, .. }
    ));
}

#[test]
fn jwks_without_alg_members_fit_by_key_type() {
    // SSF-SET-04: upstream JWKS often omit `alg`.
    let (ring, row) = ring(Algorithm::Rs256, "rsa");
    let mut key = ring.jwks()["keys"][0].clone();
    key.as_object_mut().unwrap().remove("alg");
    let jwks = json!({"keys": [key]});
    let receiver = verifier(&jwks, clock());
    for alg in ["RS256", "PS256"] {
        let header = json!({"alg": alg, "kid": "rsa", "typ": "secevent+jwt"});
        let token = forge(&header, &claims(), Some(raw_signer(&row, alg).as_ref()));
        assert_eq!(receiver.verify(&token).unwrap().alg.as_str(), alg);
    }
    // ...restricted by the allow-list.
    let rs_only = SetVerifier::builder(ISS, AUD, &jwks, clock())
        .allowed_algorithms([Algorithm::Rs256])
        .build()
        .unwrap();
    let header = json!({"alg": "PS256", "kid": "rsa", "typ": "secevent+jwt"});
    let token = forge(&header, &claims(), Some(raw_signer(&row, "PS256").as_ref()));
    assert_eq!(
        rs_only.verify(&token).unwrap_err(),
        VerifyError::AlgNotAllowed("PS256".to_owned())
    );
}

#[test]
fn unusable_jwks_entries_are_skipped() {
    // SSF-SET-04
    let (ring, _) = ring(Algorithm::Es256, "good");
    let good = ring.jwks()["keys"][0].clone();
    let mut enc = good.clone();
    enc["kid"] = json!("enc");
    enc["use"] = json!("enc");
    let jwks = json!({"keys": [
        enc,
        {"kty": "oct", "kid": "sym", "k": "c2VjcmV0"},
        {"kty": "RSA", "kid": "rs512", "alg": "RS512", "n": "AQAB", "e": "AQAB"},
        good,
    ]});
    let receiver = verifier(&jwks, clock());
    receiver
        .verify(&ring.signer().sign(&claims()).unwrap())
        .unwrap();
    assert_eq!(receiver.keys(), [(Some("good"), &Algorithm::Es256)]);
    assert!(format!("{receiver:?}").contains("good ES256"));

    assert!(matches!(
        SetVerifier::builder(ISS, AUD, &json!({"keys": []}), clock()).build(),
        Err(JoseError::NoUsableKey(_))
    ));
    assert!(matches!(
        SetVerifier::builder(ISS, AUD, &json!([{"kty": "EC"}]), clock()).build(),
        Err(JoseError::InvalidKey(_))
    ));
}

#[test]
fn shared_secret_verifier_is_separately_constructed() {
    // SSF-SET-17 (the spec's own example uses HS256)
    let secret = [7u8; 32];
    let hmac = josekit::jws::HS256.signer_from_bytes(secret).unwrap();
    let header = json!({"alg": "HS256", "kid": "shared", "typ": "secevent+jwt"});
    let token = forge(&header, &claims(), Some(&hmac));

    let any_kid =
        SetVerifier::with_shared_secret(ISS, AUD, Algorithm::Hs256, &secret, None, clock())
            .build()
            .unwrap();
    assert_eq!(any_kid.verify(&token).unwrap().alg, Algorithm::Hs256);
    let kidless = forge(
        &json!({"alg": "HS256", "typ": "secevent+jwt"}),
        &claims(),
        Some(&hmac),
    );
    any_kid.verify(&kidless).unwrap();

    let pinned = SetVerifier::with_shared_secret(
        ISS,
        AUD,
        Algorithm::Hs256,
        &secret,
        Some("other"),
        clock(),
    )
    .build()
    .unwrap();
    assert_eq!(
        pinned.verify(&token).unwrap_err(),
        VerifyError::UnknownKey(Some("shared".to_owned()))
    );

    // A wrong secret, an asymmetric alg, a short secret, a widened allow-list.
    let wrong =
        SetVerifier::with_shared_secret(ISS, AUD, Algorithm::Hs256, &[8u8; 32], None, clock())
            .build()
            .unwrap();
    assert_eq!(wrong.verify(&token).unwrap_err(), VerifyError::BadSignature);
    let (ring, _) = ring(Algorithm::Rs256, "rsa");
    assert_eq!(
        any_kid
            .verify(&ring.signer().sign(&claims()).unwrap())
            .unwrap_err(),
        VerifyError::AlgNotAllowed("RS256".to_owned())
    );
    assert!(matches!(
        SetVerifier::with_shared_secret(ISS, AUD, Algorithm::Hs256, &[1u8; 31], None, clock())
            .build(),
        Err(JoseError::WeakKey { bits: 248, .. })
    ));
    assert!(matches!(
        SetVerifier::with_shared_secret(ISS, AUD, Algorithm::Hs256, &secret, None, clock())
            .allowed_algorithms([Algorithm::Hs256, Algorithm::Rs256])
            .build(),
        Err(JoseError::Policy(_))
    ));
    assert!(matches!(
        SetVerifier::with_shared_secret(ISS, AUD, Algorithm::Rs256, &secret, None, clock()).build(),
        Err(JoseError::Policy(_))
    ));
    // The secret never shows in Debug.
    let builder =
        SetVerifier::with_shared_secret(ISS, AUD, Algorithm::Hs256, &secret, None, clock());
    for debug in [format!("{any_kid:?}"), format!("{builder:?}")] {
        assert!(!debug.contains("7, 7") && !debug.contains("[7"), "{debug}");
    }
}

#[test]
fn peek_unverified_reads_without_trusting() {
    // R11: routing only.
    let fx = rs256();
    let header = json!({"alg": "none", "typ": "secevent+jwt"});
    let token = forge(&header, &claims(), None);
    let (peeked_header, peeked_claims) = peek_unverified(&token).unwrap();
    assert_eq!(peeked_header["alg"], "none");
    assert_eq!(peeked_claims["iss"], ISS);
    assert_eq!(fx.verify(&token).unwrap_err(), VerifyError::AlgNone);
    assert!(matches!(
        peek_unverified("x.y"),
        Err(VerifyError::Malformed(_))
    ));
}

#[test]
fn descriptions_do_not_leak_configuration() {
    // PUSH-10, PUSH-11 (English description)
    let fx = rs256();
    let token = fx.sign(&claims_with(|c| {
        c.insert("iss".to_owned(), json!("https://attacker.example/"));
    }));
    let err = fx.verify(&token).unwrap_err();
    let description = err.description();
    assert!(!description.contains(ISS));
    assert!(!description.contains("attacker"));
    assert!(!description.is_empty());
}
