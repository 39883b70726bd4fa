//! Stream management bodies (SSF 1.0 §8.1): configuration, status, subjects, verification.

use serde::{Deserialize, Serialize};

use super::{Audience, EventType, Extra, Secret, SubjectId};

open_enum! {
    /// A delivery method URI (SSF 1.0 §6.1).
    pub enum DeliveryMethod {
        /// RFC 8935 push: the transmitter POSTs each SET to the receiver's `endpoint_url`.
        Push => "urn:ietf:rfc:8935",
        /// RFC 8936 poll: the receiver fetches SETs from the transmitter's `endpoint_url`.
        Poll => "urn:ietf:rfc:8936",
    }
}

/// The `delivery` member of a stream configuration (SSF 1.0 §6.1).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Delivery {
    /// How SETs travel.
    pub method: DeliveryMethod,
    /// Push: the receiver's URL; poll: the transmitter's URL, unique per stream (SSF-DEL-06).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint_url: Option<String>,
    /// Push only: the `Authorization` header value to send with each SET (SSF-DEL-04).
    /// Write-only: ssfd never returns it once stored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authorization_header: Option<Secret>,
    /// Other members.
    #[serde(flatten)]
    pub extra: Extra,
}

/// A stream configuration as the transmitter returns it (SSF 1.0 §8.1.1).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StreamConfiguration {
    /// Transmitter-supplied, unique id (SSF-CFG-01).
    pub stream_id: String,
    /// Transmitter-supplied issuer; equals the `iss` of the stream's SETs (SSF-SET-06).
    pub iss: String,
    /// Transmitter-supplied audience; cannot be updated.
    pub aud: Audience,
    /// Transmitter-supplied: event types it can send to this receiver.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub events_supported: Option<Vec<EventType>>,
    /// Receiver-supplied: event types it wants.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub events_requested: Option<Vec<EventType>>,
    /// Transmitter-supplied: event types it will send, within supported ∩ requested
    /// (SSF-CFG-05).
    pub events_delivered: Vec<EventType>,
    /// How SETs are delivered.
    pub delivery: Delivery,
    /// Transmitter-supplied: minimum seconds between verification requests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_verification_interval: Option<u64>,
    /// Receiver-supplied description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Transmitter-supplied: seconds of receiver inactivity before the stream may be paused,
    /// disabled or deleted (SSF-CFG-07/08).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inactivity_timeout: Option<u64>,
    /// Other members.
    #[serde(flatten)]
    pub extra: Extra,
}

/// The body of a create-stream request (SSF 1.0 §8.1.1.1): receiver-supplied properties only.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct CreateStreamRequest {
    /// Event types wanted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub events_requested: Option<Vec<EventType>>,
    /// Delivery; absent means poll (SSF-CR-05).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivery: Option<Delivery>,
    /// Description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Other members, transmitter-supplied ones included: the transmitter decides.
    #[serde(flatten)]
    pub extra: Extra,
}

/// The body of an update (PATCH, §8.1.1.3) or replace (PUT, §8.1.1.4) request. The shape is
/// the same; the meaning of a missing receiver-supplied property differs: PATCH leaves it
/// unchanged (SSF-UP-03), PUT removes it (SSF-PUT-02).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StreamUpdateRequest {
    /// The stream to change (REQUIRED).
    pub stream_id: String,
    /// Receiver-supplied: event types wanted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub events_requested: Option<Vec<EventType>>,
    /// Receiver-supplied: delivery.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivery: Option<Delivery>,
    /// Receiver-supplied: description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Transmitter-supplied; if present it MUST equal the current value (SSF-UP-05).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iss: Option<String>,
    /// Transmitter-supplied; if present it MUST equal the current value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aud: Option<Audience>,
    /// Transmitter-supplied; if present it MUST equal the current value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub events_supported: Option<Vec<EventType>>,
    /// Transmitter-supplied; if present it MUST equal the value before the update (SSF-UP-07).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub events_delivered: Option<Vec<EventType>>,
    /// Transmitter-supplied; if present it MUST equal the current value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_verification_interval: Option<u64>,
    /// Transmitter-supplied; if present it MUST equal the current value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inactivity_timeout: Option<u64>,
    /// Other members.
    #[serde(flatten)]
    pub extra: Extra,
}

closed_enum! {
    /// A stream's status (SSF 1.0 §8.1.2.1): "MUST be one of" these three.
    pub enum StreamState {
        /// Events are transmitted.
        Enabled => "enabled",
        /// Events are held and transmitted on re-enable (SSF-ST-07).
        Paused => "paused",
        /// Events are neither transmitted nor held (SSF-ST-08).
        Disabled => "disabled",
    }
}

/// A stream's status: the read response, the update request and its response (§8.1.2).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StreamStatus {
    /// The stream.
    pub stream_id: String,
    /// Its status.
    pub status: StreamState,
    /// Why it has this status (free text).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Other members.
    #[serde(flatten)]
    pub extra: Extra,
}

/// Add-subject request (SSF 1.0 §8.1.3.2).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AddSubjectRequest {
    /// The stream.
    pub stream_id: String,
    /// The subject to add, simple or complex.
    pub subject: SubjectId,
    /// Whether the receiver verified the subject; omitted means verified (SSF-AS-02).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verified: Option<bool>,
    /// Other members.
    #[serde(flatten)]
    pub extra: Extra,
}

/// Remove-subject request (SSF 1.0 §8.1.3.3).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RemoveSubjectRequest {
    /// The stream.
    pub stream_id: String,
    /// The subject to remove.
    pub subject: SubjectId,
    /// Other members.
    #[serde(flatten)]
    pub extra: Extra,
}

/// Verification request (SSF 1.0 §8.1.4.2).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VerificationRequest {
    /// The stream to verify.
    pub stream_id: String,
    /// Opaque value the transmitter echoes in the verification event (SSF-VER-10).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    /// Other members.
    #[serde(flatten)]
    pub extra: Extra,
}
