//! Stream configuration rules (SSF 1.0 §8.1.1): what a create, update (PATCH) or replace (PUT)
//! request does to a stream. Pure functions over the domain type [`Stream`]; the HTTP handlers
//! load and store around them.

use crate::protocol::{
    Audience, CreateStreamRequest, Delivery, DeliveryMethod, EventType, Extra, Secret,
    StreamConfiguration, StreamState, StreamUpdateRequest,
};

/// Size limits of receiver-supplied stream properties.
pub mod limits {
    /// Longest `description`, in bytes.
    pub const DESCRIPTION: usize = 1024;
    /// Most entries in `events_requested`.
    pub const EVENTS_REQUESTED: usize = 64;
    /// Longest event-type URI, in bytes.
    pub const EVENT_TYPE: usize = 512;
    /// Longest `endpoint_url`, in bytes.
    pub const ENDPOINT_URL: usize = 2048;
    /// Longest `authorization_header`, in bytes.
    pub const AUTHORIZATION_HEADER: usize = 4096;
}

/// A transmitter stream, as the domain sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct Stream {
    /// Transmitter-supplied id.
    pub stream_id: String,
    /// The receiver client owning the stream.
    pub client_id: String,
    /// Transmitter-supplied audience.
    pub aud: Audience,
    /// Receiver-supplied; `None`: not given, every supported type is delivered.
    pub events_requested: Option<Vec<EventType>>,
    /// supported ∩ requested.
    pub events_delivered: Vec<EventType>,
    /// Delivery, with the push `authorization_header` (write-only).
    pub delivery: Delivery,
    /// Receiver-supplied description.
    pub description: Option<String>,
    /// Status.
    pub status: StreamState,
    /// Why the status was set.
    pub status_reason: Option<String>,
    /// Seconds between verification requests.
    pub min_verification_interval: u64,
    /// Last verification request, seconds.
    pub last_verification_at: Option<i64>,
    /// Creation time, seconds.
    pub created_at: i64,
    /// Last change, seconds.
    pub updated_at: i64,
}

/// What a stream is checked against: the transmitter's own settings.
#[derive(Debug, Clone)]
pub struct StreamPolicy {
    /// The issuer (the `iss` of every stream).
    pub issuer: String,
    /// Event types offered.
    pub events_supported: Vec<EventType>,
    /// Seconds between verification requests.
    pub min_verification_interval: u64,
}

/// A request that breaks a rule, with the message for the 400 answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidStream(pub String);

fn invalid(message: impl Into<String>) -> InvalidStream {
    InvalidStream(message.into())
}

impl Stream {
    /// The configuration a receiver sees: everything but the push `authorization_header`,
    /// which is write-only (secrets are never returned by read APIs).
    pub fn to_wire(&self, policy: &StreamPolicy) -> StreamConfiguration {
        let mut delivery = self.delivery.clone();
        delivery.authorization_header = None;
        StreamConfiguration {
            stream_id: self.stream_id.clone(),
            iss: policy.issuer.clone(),
            aud: self.aud.clone(),
            events_supported: Some(policy.events_supported.clone()),
            events_requested: self.events_requested.clone(),
            events_delivered: self.events_delivered.clone(),
            delivery,
            min_verification_interval: Some(self.min_verification_interval),
            description: self.description.clone(),
            inactivity_timeout: None,
            extra: Extra::new(),
        }
    }

    /// Whether this stream delivers events of `event_type` (SSF control events always go).
    pub fn delivers(&self, event_type: &EventType) -> bool {
        event_type.is_ssf_control() || self.events_delivered.contains(event_type)
    }
}

/// events_delivered = events_supported ∩ events_requested (SSF-CFG-05), in the supported
/// order; unknown requested types are ignored (SSF-CFG-03). No request means everything.
pub fn events_delivered(
    supported: &[EventType],
    requested: Option<&[EventType]>,
) -> Vec<EventType> {
    match requested {
        None => supported.to_vec(),
        Some(requested) => supported
            .iter()
            .filter(|t| requested.contains(t))
            .cloned()
            .collect(),
    }
}

fn check_events_requested(events: Option<&Vec<EventType>>) -> Result<(), InvalidStream> {
    let Some(events) = events else {
        return Ok(());
    };
    if events.len() > limits::EVENTS_REQUESTED {
        return Err(invalid(format!(
            "events_requested holds more than {} event types",
            limits::EVENTS_REQUESTED
        )));
    }
    if let Some(long) = events
        .iter()
        .find(|t| t.as_uri().len() > limits::EVENT_TYPE)
    {
        return Err(invalid(format!(
            "events_requested: an event type is longer than {} bytes: {}…",
            limits::EVENT_TYPE,
            &long.as_uri()[..40]
        )));
    }
    Ok(())
}

fn check_description(description: Option<&String>) -> Result<(), InvalidStream> {
    match description {
        Some(text) if text.len() > limits::DESCRIPTION => Err(invalid(format!(
            "description is longer than {} bytes",
            limits::DESCRIPTION
        ))),
        _ => Ok(()),
    }
}

/// The delivery a stream gets from a requested one: poll when none is asked for
/// (SSF-CR-05), the transmitter's poll URL for poll (SSF-CR-06), the receiver's URL for push.
/// The push URL's reachability policy is checked separately (it needs DNS).
pub fn delivery_for(
    requested: Option<&Delivery>,
    poll_url: String,
) -> Result<Delivery, InvalidStream> {
    let Some(requested) = requested else {
        return Ok(poll_delivery(poll_url));
    };
    match &requested.method {
        DeliveryMethod::Poll => {
            if requested.authorization_header.is_some() {
                return Err(invalid(
                    "authorization_header applies to push delivery only",
                ));
            }
            Ok(poll_delivery(poll_url))
        }
        DeliveryMethod::Push => {
            let url = requested
                .endpoint_url
                .as_ref()
                .ok_or_else(|| invalid("delivery.endpoint_url is required for push delivery"))?;
            if url.len() > limits::ENDPOINT_URL {
                return Err(invalid("delivery.endpoint_url is too long"));
            }
            if let Some(header) = &requested.authorization_header {
                let value = header.expose();
                if value.len() > limits::AUTHORIZATION_HEADER
                    || value.is_empty()
                    || value.chars().any(|c| c.is_control())
                {
                    return Err(invalid(
                        "delivery.authorization_header must be a non-empty header value",
                    ));
                }
            }
            Ok(Delivery {
                method: DeliveryMethod::Push,
                endpoint_url: Some(url.clone()),
                authorization_header: requested.authorization_header.clone(),
                extra: Extra::new(),
            })
        }
        DeliveryMethod::Other(method) => Err(invalid(format!(
            "delivery method {method} is not supported; use urn:ietf:rfc:8935 or urn:ietf:rfc:8936"
        ))),
    }
}

fn poll_delivery(url: String) -> Delivery {
    Delivery {
        method: DeliveryMethod::Poll,
        endpoint_url: Some(url),
        authorization_header: None,
        extra: Extra::new(),
    }
}

/// A new stream from a create request (SSF 1.0 §8.1.1.1).
pub fn create(
    request: &CreateStreamRequest,
    policy: &StreamPolicy,
    client_id: &str,
    stream_id: String,
    poll_url: String,
    now: i64,
) -> Result<Stream, InvalidStream> {
    check_events_requested(request.events_requested.as_ref())?;
    check_description(request.description.as_ref())?;
    let delivery = delivery_for(request.delivery.as_ref(), poll_url)?;
    Ok(Stream {
        stream_id,
        client_id: client_id.to_owned(),
        aud: Audience::One(client_id.to_owned()),
        events_delivered: events_delivered(
            &policy.events_supported,
            request.events_requested.as_deref(),
        ),
        events_requested: request.events_requested.clone(),
        delivery,
        description: request.description.clone(),
        status: StreamState::Enabled,
        status_reason: None,
        min_verification_interval: policy.min_verification_interval,
        last_verification_at: None,
        created_at: now,
        updated_at: now,
    })
}

/// Whether a request replaces (PUT) or updates (PATCH) the stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// PATCH: missing properties stay unchanged (SSF-UP-03).
    Update,
    /// PUT: missing receiver-supplied properties are removed (SSF-PUT-02).
    Replace,
}

/// Applies an update or replace request to `stream` (SSF 1.0 §8.1.1.3, §8.1.1.4).
pub fn change(
    stream: &Stream,
    request: &StreamUpdateRequest,
    how: Change,
    policy: &StreamPolicy,
    poll_url: String,
    now: i64,
) -> Result<Stream, InvalidStream> {
    check_transmitter_supplied(stream, request, policy)?;
    check_events_requested(request.events_requested.as_ref())?;
    check_description(request.description.as_ref())?;
    let mut next = stream.clone();
    match how {
        Change::Update => {
            if let Some(events) = &request.events_requested {
                next.events_requested = Some(events.clone());
            }
            if let Some(description) = &request.description {
                next.description = Some(description.clone());
            }
            if let Some(delivery) = &request.delivery {
                next.delivery = delivery_for(Some(delivery), poll_url)?;
            }
        }
        Change::Replace => {
            next.events_requested = request.events_requested.clone();
            next.description = request.description.clone();
            // A PUT without delivery gets what a create without delivery gets: poll (AMBIG-7).
            next.delivery = delivery_for(request.delivery.as_ref(), poll_url)?;
        }
    }
    next.events_delivered =
        events_delivered(&policy.events_supported, next.events_requested.as_deref());
    next.updated_at = now;
    Ok(next)
}

/// Transmitter-supplied properties MAY be sent back but MUST equal the current values;
/// `events_delivered` is compared with its value before the update (SSF-UP-05, SSF-UP-07).
fn check_transmitter_supplied(
    stream: &Stream,
    request: &StreamUpdateRequest,
    policy: &StreamPolicy,
) -> Result<(), InvalidStream> {
    let wrong = |name: &str| {
        Err(invalid(format!(
            "{name} is transmitter-supplied and does not match the stream's value"
        )))
    };
    if request
        .iss
        .as_ref()
        .is_some_and(|iss| *iss != policy.issuer)
    {
        return wrong("iss");
    }
    if request.aud.as_ref().is_some_and(|aud| *aud != stream.aud) {
        return wrong("aud");
    }
    if request
        .events_supported
        .as_ref()
        .is_some_and(|events| !same_set(events, &policy.events_supported))
    {
        return wrong("events_supported");
    }
    if request
        .events_delivered
        .as_ref()
        .is_some_and(|events| !same_set(events, &stream.events_delivered))
    {
        return wrong("events_delivered");
    }
    if request
        .min_verification_interval
        .is_some_and(|v| v != stream.min_verification_interval)
    {
        return wrong("min_verification_interval");
    }
    if request.inactivity_timeout.is_some() {
        return wrong("inactivity_timeout");
    }
    Ok(())
}

fn same_set(a: &[EventType], b: &[EventType]) -> bool {
    a.iter().all(|x| b.contains(x)) && b.iter().all(|x| a.contains(x))
}

/// A push `authorization_header` from a receiver's request, kept as a secret.
pub fn secret(value: &str) -> Secret {
    Secret(value.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> StreamPolicy {
        StreamPolicy {
            issuer: "https://tr.example.com".to_owned(),
            events_supported: vec![
                EventType::SessionRevoked,
                EventType::CredentialChange,
                EventType::DeviceComplianceChange,
            ],
            min_verification_interval: 5,
        }
    }

    fn push(url: &str, auth: Option<&str>) -> Delivery {
        Delivery {
            method: DeliveryMethod::Push,
            endpoint_url: Some(url.to_owned()),
            authorization_header: auth.map(secret),
            extra: Extra::new(),
        }
    }

    fn created(request: CreateStreamRequest) -> Stream {
        create(
            &request,
            &policy(),
            "client-a",
            "s1".into(),
            "https://tr.example.com/ssf/poll/s1".into(),
            100,
        )
        .unwrap()
    }

    fn update(stream_id: &str) -> StreamUpdateRequest {
        serde_json::from_value(serde_json::json!({"stream_id": stream_id})).unwrap()
    }

    #[test]
    fn create_without_delivery_is_poll_with_a_transmitter_url() {
        // SSF-CR-05, SSF-CR-06
        let stream = created(CreateStreamRequest::default());
        assert_eq!(stream.delivery.method, DeliveryMethod::Poll);
        assert_eq!(
            stream.delivery.endpoint_url.as_deref(),
            Some("https://tr.example.com/ssf/poll/s1")
        );
        assert_eq!(stream.events_delivered, policy().events_supported);
    }

    #[test]
    fn events_delivered_is_the_intersection() {
        // SSF-CFG-03, SSF-CFG-05
        let stream = created(CreateStreamRequest {
            events_requested: Some(vec![
                EventType::CredentialChange,
                EventType::Other("urn:example:unknown".into()),
                EventType::AccountPurged,
            ]),
            ..CreateStreamRequest::default()
        });
        assert_eq!(stream.events_delivered, vec![EventType::CredentialChange]);
    }

    #[test]
    fn the_push_authorization_header_is_write_only() {
        let stream = created(CreateStreamRequest {
            delivery: Some(push("https://rx.example.com/events", Some("Bearer s3cret"))),
            ..CreateStreamRequest::default()
        });
        assert!(stream.delivery.authorization_header.is_some());
        let wire = serde_json::to_string(&stream.to_wire(&policy())).unwrap();
        assert!(!wire.contains("s3cret"), "{wire}");
    }

    #[test]
    fn bad_requests_are_refused_with_a_reason() {
        let no_url = Delivery {
            endpoint_url: None,
            ..push("x", None)
        };
        let cases = [
            CreateStreamRequest {
                delivery: Some(no_url),
                ..Default::default()
            },
            CreateStreamRequest {
                delivery: Some(Delivery {
                    method: DeliveryMethod::Other("urn:x".into()),
                    ..push("https://a", None)
                }),
                ..Default::default()
            },
            CreateStreamRequest {
                description: Some("x".repeat(limits::DESCRIPTION + 1)),
                ..Default::default()
            },
            CreateStreamRequest {
                events_requested: Some(vec![
                    EventType::SessionRevoked;
                    limits::EVENTS_REQUESTED + 1
                ]),
                ..Default::default()
            },
            CreateStreamRequest {
                delivery: Some(push("https://a", Some("bad\nvalue"))),
                ..Default::default()
            },
        ];
        for request in cases {
            let result = create(&request, &policy(), "c", "s".into(), "p".into(), 0);
            assert!(result.is_err(), "{request:?} was accepted");
        }
    }

    #[test]
    fn patch_changes_only_what_it_names_and_put_removes_what_it_omits() {
        // SSF-UP-02, SSF-UP-03, SSF-PUT-02
        let stream = created(CreateStreamRequest {
            description: Some("first".into()),
            events_requested: Some(vec![EventType::SessionRevoked]),
            delivery: Some(push("https://rx.example.com/e", Some("Bearer a"))),
            ..Default::default()
        });
        let mut patch = update("s1");
        patch.description = Some("second".into());
        let patched = change(&stream, &patch, Change::Update, &policy(), "p".into(), 200).unwrap();
        assert_eq!(patched.description.as_deref(), Some("second"));
        assert_eq!(patched.events_requested, stream.events_requested);
        assert_eq!(patched.delivery, stream.delivery);
        assert_eq!(patched.updated_at, 200);

        let mut put = update("s1");
        put.delivery = Some(push("https://rx.example.com/e", None));
        let replaced = change(&stream, &put, Change::Replace, &policy(), "p".into(), 300).unwrap();
        assert_eq!(replaced.description, None);
        assert_eq!(replaced.events_requested, None);
        assert_eq!(replaced.delivery.authorization_header, None);
        assert_eq!(replaced.events_delivered, policy().events_supported);
    }

    #[test]
    fn transmitter_supplied_values_must_match() {
        // SSF-UP-05, SSF-UP-07
        let stream = created(CreateStreamRequest {
            events_requested: Some(vec![EventType::SessionRevoked]),
            ..Default::default()
        });
        let mut same = update("s1");
        same.iss = Some("https://tr.example.com".into());
        same.events_delivered = Some(vec![EventType::SessionRevoked]);
        same.events_requested = Some(vec![EventType::CredentialChange]);
        assert!(change(&stream, &same, Change::Update, &policy(), "p".into(), 1).is_ok());
        let mut wrong_iss = update("s1");
        wrong_iss.iss = Some("https://evil.example.com".into());
        assert!(change(
            &stream,
            &wrong_iss,
            Change::Update,
            &policy(),
            "p".into(),
            1
        )
        .is_err());
        let mut wrong_aud = update("s1");
        wrong_aud.aud = Some(Audience::One("someone-else".into()));
        assert!(change(
            &stream,
            &wrong_aud,
            Change::Replace,
            &policy(),
            "p".into(),
            1
        )
        .is_err());
    }
}
