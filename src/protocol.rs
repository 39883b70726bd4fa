//! Wire types of the Shared Signals Framework, kept pure: this module depends on serde,
//! serde_json and url only (no HTTP, database or crypto), so fixtures, transmitter, receiver and
//! admin all share one model.
//!
//! Conventions, following the specs' own rules:
//! - Registries (delivery methods, error codes, credential types, ...) are open enums: the
//!   known values plus `Other(String)`, so a value we do not know survives a round trip.
//! - Objects keep members they do not know in an `extra` map (SSF 1.0 §4.2.3: "Receivers MUST
//!   ignore any fields they do not understand"; ignoring is not the same as losing them).
//! - A known event type with an invalid payload is an error naming the field; an unknown event
//!   type is kept byte for byte.

#[macro_use]
mod macros;

pub mod delivery;
pub mod events;
pub mod metadata;
pub mod set;
pub mod stream;
pub mod subject;

pub use delivery::{PollRequest, PollResponse, PushError, SetErrorCode};
pub use events::{Event, EventPayload, EventType, Events};
pub use metadata::TransmitterMetadata;
pub use set::{Audience, JoseHeader, SecurityEventToken, SsfProfileError, Txn};
pub use stream::{
    AddSubjectRequest, CreateStreamRequest, Delivery, DeliveryMethod, RemoveSubjectRequest,
    StreamConfiguration, StreamState, StreamStatus, StreamUpdateRequest, VerificationRequest,
};
pub use subject::{ComplexSubject, SubjectId};

/// Unknown members of an object, kept so that re-serialising loses nothing.
pub type Extra = std::collections::BTreeMap<String, serde_json::Value>;

/// A secret string (a push `authorization_header`, a bearer token): serialised as itself, but
/// never shown by `Debug`, so it cannot leak into logs.
#[derive(Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct Secret(pub String);

impl Secret {
    /// The secret value, for the few places that must send or hash it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}
