//! Delivery bodies: RFC 8935 push error responses and RFC 8936 poll requests and responses.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::Extra;

open_enum! {
    /// Security Event Token error codes (RFC 8935 §2.4, registry of §7.1; SSF adds
    /// `invalid_state`, SSF-VER-07).
    pub enum SetErrorCode {
        /// The request body is not a SET, or the SET does not conform to its event's definition.
        InvalidRequest => "invalid_request",
        /// The key used to sign is invalid or unacceptable.
        InvalidKey => "invalid_key",
        /// The issuer is invalid or not accepted.
        InvalidIssuer => "invalid_issuer",
        /// The audience does not name the recipient.
        InvalidAudience => "invalid_audience",
        /// The recipient could not authenticate the transmitter.
        AuthenticationFailed => "authentication_failed",
        /// The transmitter may not send this SET.
        AccessDenied => "access_denied",
        /// A verification event's `state` is not the expected one (SSF 1.0 §8.1.4.1).
        InvalidState => "invalid_state",
    }
}

/// The body of an RFC 8935 §2.3 error response, and of one RFC 8936 `setErrs` entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PushError {
    /// The error code.
    pub err: SetErrorCode,
    /// A human-readable explanation.
    pub description: String,
    /// Other members.
    #[serde(flatten)]
    pub extra: Extra,
}

impl PushError {
    /// An error body with this code and description.
    pub fn new(err: SetErrorCode, description: impl Into<String>) -> Self {
        Self {
            err,
            description: description.into(),
            extra: Extra::new(),
        }
    }
}

/// An RFC 8936 §2.4 poll request. Every member is optional; `{}` is a plain poll.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct PollRequest {
    /// At most this many SETs; `0` makes an acknowledge-only request.
    #[serde(rename = "maxEvents", default, skip_serializing_if = "Option::is_none")]
    pub max_events: Option<u64>,
    /// Answer at once instead of long polling (default false).
    #[serde(
        rename = "returnImmediately",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub return_immediately: Option<bool>,
    /// `jti`s of SETs received and stored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ack: Option<Vec<String>>,
    /// `jti`s of SETs found invalid, with the error.
    #[serde(rename = "setErrs", default, skip_serializing_if = "Option::is_none")]
    pub set_errs: Option<BTreeMap<String, PushError>>,
    /// Other members.
    #[serde(flatten)]
    pub extra: Extra,
}

/// An RFC 8936 §2.5 poll response.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct PollResponse {
    /// `jti` to compact SET; `{}` when there is none.
    pub sets: BTreeMap<String, String>,
    /// Whether more SETs are waiting.
    #[serde(
        rename = "moreAvailable",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub more_available: Option<bool>,
    /// Other members.
    #[serde(flatten)]
    pub extra: Extra,
}
