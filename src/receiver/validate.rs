//! The validation pipeline of a SET from an upstream (spec-checklist §9): signature and
//! envelope by the upstream's pinned keys ([`crate::jose::SetVerifier`]), then the SSF rules
//! on `sub_id` and `events` and the typed event payloads, then what the event says about the
//! stream itself (verification `state`, SSF-VER-06/07).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use crate::clock::Clock;
use crate::jose::{SetVerifier, VerifyError};
use crate::protocol::{EventPayload, PushError, SecurityEventToken, SetErrorCode, SubjectId};
use crate::storage::UpstreamRow;

/// Verifiers by upstream id, each with the JWKS text and audience it was built from.
pub type VerifierCache = Mutex<BTreeMap<String, (String, String, Arc<SetVerifier>)>>;

/// A SET that passed every check.
#[derive(Debug, Clone)]
pub struct Accepted {
    /// The parsed claims.
    pub set: SecurityEventToken,
    /// The verified claims as JSON text, for storage.
    pub claims_json: String,
    /// The compact token as received.
    pub raw: String,
}

impl Accepted {
    /// The (single) event.
    pub fn event(&self) -> &EventPayload {
        self.set.events.iter().next().expect("validated: one event")
    }
}

/// Why a SET is refused, as the RFC 8935 error the transmitter gets.
#[derive(Debug, Clone, PartialEq)]
pub struct Rejection {
    /// The error for the transmitter.
    pub error: PushError,
    /// The SET names a key the pinned JWKS lacks: the transmitter may have rotated keys.
    pub unknown_key: bool,
}

fn reject(code: SetErrorCode, description: impl Into<String>) -> Rejection {
    Rejection {
        error: PushError::new(code, description),
        unknown_key: false,
    }
}

impl From<VerifyError> for Rejection {
    fn from(error: VerifyError) -> Self {
        let unknown_key = matches!(error, VerifyError::UnknownKey(_));
        let mut rejection = reject(
            SetErrorCode::from(error.rfc8935_code()),
            error.description(),
        );
        rejection.unknown_key = unknown_key;
        rejection
    }
}

/// Validates `token` from `upstream`, with its verifier from `cache` (built again when the
/// pinned JWKS or the audience changed).
pub fn validate(
    upstream: &UpstreamRow,
    token: &str,
    clock: Arc<dyn Clock>,
    max_age_secs: i64,
    cache: &VerifierCache,
) -> Result<Accepted, Rejection> {
    let jwks_text = upstream.jwks.as_deref().unwrap_or_default();
    let cached = cache
        .lock()
        .expect("not poisoned")
        .get(&upstream.id)
        .filter(|(jwks, audience, _)| jwks == jwks_text && *audience == upstream.audience)
        .map(|(_, _, verifier)| verifier.clone());
    let verifier = match cached {
        Some(verifier) => verifier,
        None => {
            let verifier = Arc::new(build_verifier(upstream, clock, max_age_secs)?);
            cache.lock().expect("not poisoned").insert(
                upstream.id.clone(),
                (
                    jwks_text.to_owned(),
                    upstream.audience.clone(),
                    verifier.clone(),
                ),
            );
            verifier
        }
    };
    let verified = verifier.verify(token)?;
    let claims_json = serde_json::to_string(&verified.claims).expect("a JSON object serialises");
    let set = SecurityEventToken::from_json(&claims_json).map_err(|e| {
        reject(
            SetErrorCode::InvalidRequest,
            format!("the SET does not conform: {e}"),
        )
    })?;
    // One event per SET (IOP-SET-01), sub_id present, no sub/exp (SSF-SET-02/03).
    set.check_ssf_profile(true)
        .map_err(|e| reject(SetErrorCode::InvalidRequest, e.to_string()))?;
    let accepted = Accepted {
        set,
        claims_json,
        raw: verified.raw,
    };
    check_stream_events(upstream, &accepted)?;
    Ok(accepted)
}

fn build_verifier(
    upstream: &UpstreamRow,
    clock: Arc<dyn Clock>,
    max_age_secs: i64,
) -> Result<SetVerifier, Rejection> {
    let jwks: serde_json::Value = upstream
        .jwks
        .as_deref()
        .and_then(|j| serde_json::from_str(j).ok())
        .ok_or_else(|| {
            reject(
                SetErrorCode::InvalidKey,
                "no keys are known for this transmitter yet",
            )
        })?;
    SetVerifier::builder(&upstream.issuer, &upstream.audience, &jwks, clock)
        .max_age(max_age_secs)
        .build()
        .map_err(|_| {
            reject(
                SetErrorCode::InvalidKey,
                "no usable key is known for this transmitter",
            )
        })
}

/// Verification and stream-updated events name the stream as their subject
/// (SSF-VER-05, SSF-UPD-06); a verification answering our request echoes our `state`.
fn check_stream_events(upstream: &UpstreamRow, accepted: &Accepted) -> Result<(), Rejection> {
    let about_stream = || match (&accepted.set.sub_id, &upstream.remote_stream_id) {
        (Some(SubjectId::Opaque { id, .. }), Some(stream_id)) => id == stream_id,
        (Some(SubjectId::Opaque { .. }), None) => true,
        _ => false,
    };
    match accepted.event() {
        EventPayload::Verification(verification) => {
            if !about_stream() {
                return Err(reject(
                    SetErrorCode::InvalidRequest,
                    "a verification event's sub_id must be the opaque stream id",
                ));
            }
            // Unsolicited verification carries no state (SSF-VER-01/11); a solicited one
            // must echo ours.
            match (&verification.state, &upstream.verification_state) {
                (None, _) => Ok(()),
                (Some(state), Some(expected)) if state == expected => Ok(()),
                _ => Err(reject(
                    SetErrorCode::InvalidState,
                    "the verification state is not the one requested",
                )),
            }
        }
        EventPayload::StreamUpdated(_) if !about_stream() => Err(reject(
            SetErrorCode::InvalidRequest,
            "a stream-updated event's sub_id must be the opaque stream id",
        )),
        _ => Ok(()),
    }
}
