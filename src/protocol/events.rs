//! Event types and payloads of CAEP 1.0, RISC 1.0 and SSF 1.0, and the SET `events` claim.
//!
//! The `events` claim maps event-type URIs to payload objects (RFC 8417 §2.2). Each known URI
//! is parsed into its typed payload and a bad payload is an error naming the field; an unknown
//! URI is kept byte for byte ([`EventPayload::Unknown`]).

use std::collections::BTreeMap;

use serde::de::{DeserializeOwned, Error as _, MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::value::RawValue;
use serde_json::Value;

use super::{Extra, SubjectId};

const CAEP: &str = "https://schemas.openid.net/secevent/caep/event-type/";
const RISC: &str = "https://schemas.openid.net/secevent/risc/event-type/";

/// A language map (CAEP 1.0 §2 `reason_admin`, `reason_user`): BCP 47 language tag to text.
/// It "MUST contain at least one key/value pair".
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct LangMap(pub BTreeMap<String, String>);

impl LangMap {
    /// A map with one entry for language `tag`.
    pub fn single(tag: &str, text: impl Into<String>) -> Self {
        Self(BTreeMap::from([(tag.to_owned(), text.into())]))
    }
}

impl<'de> Deserialize<'de> for LangMap {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let map = BTreeMap::<String, String>::deserialize(deserializer)?;
        if map.is_empty() {
            return Err(D::Error::custom(
                "must contain at least one language tag (CAEP 1.0 §2)",
            ));
        }
        Ok(Self(map))
    }
}

closed_enum! {
    /// CAEP 1.0 §2 `initiating_entity`: "MUST be one of" these.
    pub enum InitiatingEntity {
        /// An administrator.
        Admin => "admin",
        /// The end user.
        User => "user",
        /// A policy evaluation.
        Policy => "policy",
        /// A system or service.
        System => "system",
    }
}

/// Declares an event payload struct: its specific claims, then the claims every CAEP event may
/// carry (CAEP 1.0 §2; RISC 1.0 §2.7 names the same ones), then the members nobody defined.
/// The common claims are fields of each struct rather than one flattened struct, so that an
/// error in one of them still names its path.
macro_rules! payload {
    ($(#[$meta:meta])* $name:ident { $($(#[$fmeta:meta])* $field:ident : $ty:ty,)* }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
        pub struct $name {
            $($(#[$fmeta])* pub $field: $ty,)*
            /// When the change happened, seconds since the epoch (CAEP 1.0 §2).
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub event_timestamp: Option<i64>,
            /// Who or what caused the event (CAEP 1.0 §2).
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub initiating_entity: Option<InitiatingEntity>,
            /// Localised explanation for administrators (CAEP 1.0 §2).
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub reason_admin: Option<LangMap>,
            /// Localised explanation for the end user (CAEP 1.0 §2).
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub reason_user: Option<LangMap>,
            /// Legacy in-event subject, which CAEP and RISC events MAY carry (SSF 1.0 §3.1.1).
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub subject: Option<SubjectId>,
            /// Members not defined for this event type.
            #[serde(flatten)]
            pub extra: Extra,
        }
    };
}

payload! {
    /// A payload with no event-specific claims: CAEP session-revoked and most RISC events.
    BasicEvent {}
}

payload! {
    /// CAEP 1.0 §3.2 token-claims-change.
    TokenClaimsChange {
        /// "One or more claims with their new value(s)".
        claims: serde_json::Map<String, Value>,
    }
}

open_enum! {
    /// CAEP 1.0 §3.3 `credential_type`: the listed values "or any other type mutually
    /// supported".
    pub enum CredentialType {
        /// A password.
        Password => "password",
        /// A PIN.
        Pin => "pin",
        /// An X.509 certificate.
        X509 => "x509",
        /// A platform FIDO2 authenticator.
        Fido2Platform => "fido2-platform",
        /// A roaming FIDO2 authenticator.
        Fido2Roaming => "fido2-roaming",
        /// A FIDO U2F key.
        FidoU2f => "fido-u2f",
        /// A verifiable credential.
        VerifiableCredential => "verifiable-credential",
        /// A phone reached by voice.
        PhoneVoice => "phone-voice",
        /// A phone reached by SMS.
        PhoneSms => "phone-sms",
        /// An authenticator app.
        App => "app",
    }
}

closed_enum! {
    /// CAEP 1.0 §3.3 `change_type`.
    pub enum ChangeType {
        /// Created.
        Create => "create",
        /// Revoked.
        Revoke => "revoke",
        /// Updated.
        Update => "update",
        /// Deleted.
        Delete => "delete",
    }
}

payload! {
    /// CAEP 1.0 §3.3 credential-change.
    CredentialChange {
        /// The kind of credential.
        credential_type: CredentialType,
        /// What happened to it.
        change_type: ChangeType,
        /// A name the user knows the credential by.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        friendly_name: Option<String>,
        /// Issuer of an X.509 credential.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        x509_issuer: Option<String>,
        /// Serial number of an X.509 credential.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        x509_serial: Option<String>,
        /// AAGUID of a FIDO2 authenticator.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        fido2_aaguid: Option<String>,
    }
}

open_enum! {
    /// CAEP 1.0 §3.4 `namespace`: the listed values or any alias agreed for a custom one.
    pub enum AssuranceNamespace {
        /// RFC 8176 authentication method references.
        Rfc8176 => "RFC8176",
        /// RFC 6711 level of assurance profiles.
        Rfc6711 => "RFC6711",
        /// ISO/IEC 29115.
        IsoIec29115 => "ISO-IEC-29115",
        /// NIST identity assurance level.
        NistIal => "NIST-IAL",
        /// NIST authenticator assurance level.
        NistAal => "NIST-AAL",
        /// NIST federation assurance level.
        NistFal => "NIST-FAL",
    }
}

closed_enum! {
    /// CAEP 1.0 §3.4 `change_direction`.
    pub enum ChangeDirection {
        /// The level rose.
        Increase => "increase",
        /// The level fell.
        Decrease => "decrease",
    }
}

payload! {
    /// CAEP 1.0 §3.4 assurance-level-change.
    AssuranceLevelChange {
        /// The namespace the levels belong to.
        namespace: AssuranceNamespace,
        /// The new level.
        current_level: String,
        /// The previous level; absent means unknown to the transmitter (CAEP-R-01).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        previous_level: Option<String>,
        /// Whether the level rose or fell.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        change_direction: Option<ChangeDirection>,
    }
}

closed_enum! {
    /// CAEP 1.0 §3.5 compliance status.
    pub enum ComplianceStatus {
        /// The device complies with policy.
        Compliant => "compliant",
        /// The device does not.
        NotCompliant => "not-compliant",
    }
}

payload! {
    /// CAEP 1.0 §3.5 device-compliance-change.
    DeviceComplianceChange {
        /// Status before the change.
        previous_status: ComplianceStatus,
        /// Status after the change.
        current_status: ComplianceStatus,
    }
}

payload! {
    /// CAEP 1.0 §3.6 session-established.
    SessionEstablished {
        /// Fingerprint of the user agent.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        fp_ua: Option<String>,
        /// Authentication context class reference.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        acr: Option<String>,
        /// Authentication methods references.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        amr: Option<Vec<String>>,
        /// External session identifier.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        ext_id: Option<String>,
    }
}

payload! {
    /// CAEP 1.0 §3.7 session-presented.
    SessionPresented {
        /// Fingerprint of the user agent.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        fp_ua: Option<String>,
        /// External session identifier.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        ext_id: Option<String>,
    }
}

open_enum! {
    /// CAEP 1.0 §3.8 `principal`: the listed entities "or other entity" of SSF §2.
    pub enum RiskPrincipal {
        /// A user.
        User => "USER",
        /// A device.
        Device => "DEVICE",
        /// A session.
        Session => "SESSION",
        /// A tenant.
        Tenant => "TENANT",
        /// An organisational unit.
        OrgUnit => "ORG_UNIT",
        /// A group.
        Group => "GROUP",
    }
}

closed_enum! {
    /// CAEP 1.0 §3.8 risk level.
    pub enum RiskLevel {
        /// Low risk.
        Low => "LOW",
        /// Medium risk.
        Medium => "MEDIUM",
        /// High risk.
        High => "HIGH",
    }
}

payload! {
    /// CAEP 1.0 §3.8 risk-level-change.
    RiskLevelChange {
        /// The kind of principal whose risk changed.
        principal: RiskPrincipal,
        /// The new level.
        current_level: RiskLevel,
        /// The previous level; absent means unknown (CAEP-R-01).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        previous_level: Option<RiskLevel>,
        /// Why the level changed (RECOMMENDED).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        risk_reason: Option<String>,
    }
}

open_enum! {
    /// RISC 1.0 §2.3 account-disabled `reason`.
    pub enum DisabledReason {
        /// The account was hijacked.
        Hijacking => "hijacking",
        /// The account was one of many created in bulk.
        BulkAccount => "bulk-account",
    }
}

payload! {
    /// RISC 1.0 §2.3 account-disabled.
    AccountDisabled {
        /// Why the account was disabled.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<DisabledReason>,
    }
}

payload! {
    /// RISC 1.0 §2.5 identifier-changed. The subject names the OLD identifier.
    IdentifierChanged {
        /// The new identifier.
        #[serde(rename = "new-value", default, skip_serializing_if = "Option::is_none")]
        new_value: Option<String>,
    }
}

payload! {
    /// RISC 1.0 §2.7 credential-compromise.
    CredentialCompromise {
        /// The kind of credential compromised (values of CAEP credential-change).
        credential_type: CredentialType,
    }
}

payload! {
    /// SSF 1.0 §8.1.4.1 verification event.
    Verification {
        /// The receiver's opaque value, echoed (SSF-VER-10); absent when unsolicited.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        state: Option<String>,
    }
}

payload! {
    /// SSF 1.0 §8.1.5 stream-updated event.
    StreamUpdated {
        /// The stream's new status (REQUIRED).
        status: super::StreamState,
        /// Why it changed.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    }
}

/// Declares [`EventType`], [`EventPayload`] and the dispatch between them from one table.
macro_rules! event_registry {
    ($($(#[$meta:meta])* $variant:ident($payload:ty) => $base:ident + $suffix:literal,)+) => {
        /// An event-type URI: every CAEP 1.0, RISC 1.0 and SSF 1.0 type, or another one.
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum EventType {
            $($(#[$meta])* $variant,)+
            /// A URI not defined by CAEP, RISC or SSF.
            Other(String),
        }

        impl EventType {
            /// Every event type ssfd knows.
            pub const KNOWN: &'static [EventType] = &[$(EventType::$variant,)+];

            /// The event-type URI.
            pub fn as_uri(&self) -> &str {
                match self {
                    $(Self::$variant => concat_base!($base, $suffix),)+
                    Self::Other(uri) => uri,
                }
            }
        }

        impl From<&str> for EventType {
            fn from(uri: &str) -> Self {
                match uri {
                    $(concat_base!($base, $suffix) => Self::$variant,)+
                    other => Self::Other(other.to_owned()),
                }
            }
        }

        /// One event: a typed payload for a known type, the raw JSON for another.
        #[derive(Debug, Clone, PartialEq)]
        pub enum EventPayload {
            $($(#[$meta])* $variant($payload),)+
            /// An event type ssfd does not know, kept byte for byte.
            Unknown {
                /// The event-type URI.
                uri: String,
                /// The payload exactly as received.
                payload: RawJson,
            },
        }

        impl EventPayload {
            /// This payload's event type.
            pub fn event_type(&self) -> EventType {
                match self {
                    $(Self::$variant(_) => EventType::$variant,)+
                    Self::Unknown { uri, .. } => EventType::Other(uri.clone()),
                }
            }

            /// Parses the payload of an event of type `uri`.
            pub fn parse(uri: &str, payload: &RawValue) -> Result<Self, String> {
                match EventType::from(uri) {
                    $(EventType::$variant => typed::<$payload>(payload).map(Self::$variant),)+
                    EventType::Other(uri) => {
                        if !payload.get().trim_start().starts_with('{') {
                            return Err("an event payload must be a JSON object (RFC 8417 §2.2)".to_owned());
                        }
                        Ok(Self::Unknown { uri, payload: RawJson(payload.to_owned()) })
                    }
                }
            }

            fn serialize_payload<M: SerializeMap>(&self, map: &mut M) -> Result<(), M::Error> {
                match self {
                    $(Self::$variant(payload) => map.serialize_entry(self.event_type().as_uri(), payload),)+
                    Self::Unknown { uri, payload } => map.serialize_entry(uri, &payload.0),
                }
            }
        }
    };
}

macro_rules! concat_base {
    (CAEP, $suffix:literal) => {
        concat!(
            "https://schemas.openid.net/secevent/caep/event-type/",
            $suffix
        )
    };
    (RISC, $suffix:literal) => {
        concat!(
            "https://schemas.openid.net/secevent/risc/event-type/",
            $suffix
        )
    };
    (SSF, $suffix:literal) => {
        concat!(
            "https://schemas.openid.net/secevent/ssf/event-type/",
            $suffix
        )
    };
}

event_registry! {
    /// CAEP 1.0 §3.1.
    SessionRevoked(BasicEvent) => CAEP + "session-revoked",
    /// CAEP 1.0 §3.2.
    TokenClaimsChange(TokenClaimsChange) => CAEP + "token-claims-change",
    /// CAEP 1.0 §3.3.
    CredentialChange(CredentialChange) => CAEP + "credential-change",
    /// CAEP 1.0 §3.4.
    AssuranceLevelChange(AssuranceLevelChange) => CAEP + "assurance-level-change",
    /// CAEP 1.0 §3.5.
    DeviceComplianceChange(DeviceComplianceChange) => CAEP + "device-compliance-change",
    /// CAEP 1.0 §3.6.
    SessionEstablished(SessionEstablished) => CAEP + "session-established",
    /// CAEP 1.0 §3.7.
    SessionPresented(SessionPresented) => CAEP + "session-presented",
    /// CAEP 1.0 §3.8.
    RiskLevelChange(RiskLevelChange) => CAEP + "risk-level-change",
    /// RISC 1.0 §2.1.
    AccountCredentialChangeRequired(BasicEvent) => RISC + "account-credential-change-required",
    /// RISC 1.0 §2.2.
    AccountPurged(BasicEvent) => RISC + "account-purged",
    /// RISC 1.0 §2.3.
    AccountDisabled(AccountDisabled) => RISC + "account-disabled",
    /// RISC 1.0 §2.4.
    AccountEnabled(BasicEvent) => RISC + "account-enabled",
    /// RISC 1.0 §2.5.
    IdentifierChanged(IdentifierChanged) => RISC + "identifier-changed",
    /// RISC 1.0 §2.6.
    IdentifierRecycled(BasicEvent) => RISC + "identifier-recycled",
    /// RISC 1.0 §2.7.
    CredentialCompromise(CredentialCompromise) => RISC + "credential-compromise",
    /// RISC 1.0 §2.8.1.
    OptIn(BasicEvent) => RISC + "opt-in",
    /// RISC 1.0 §2.8.2.
    OptOutInitiated(BasicEvent) => RISC + "opt-out-initiated",
    /// RISC 1.0 §2.8.3.
    OptOutCancelled(BasicEvent) => RISC + "opt-out-cancelled",
    /// RISC 1.0 §2.8.4.
    OptOutEffective(BasicEvent) => RISC + "opt-out-effective",
    /// RISC 1.0 §2.9.
    RecoveryActivated(BasicEvent) => RISC + "recovery-activated",
    /// RISC 1.0 §2.10.
    RecoveryInformationChanged(BasicEvent) => RISC + "recovery-information-changed",
    /// RISC 1.0 §2.11, deprecated in favour of CAEP session-revoked.
    SessionsRevoked(BasicEvent) => RISC + "sessions-revoked",
    /// SSF 1.0 §8.1.4.1.
    Verification(Verification) => SSF + "verification",
    /// SSF 1.0 §8.1.5.
    StreamUpdated(StreamUpdated) => SSF + "stream-updated",
}

impl EventType {
    /// Whether this is a CAEP event type.
    pub fn is_caep(&self) -> bool {
        self.as_uri().starts_with(CAEP)
    }

    /// Whether this is a RISC event type.
    pub fn is_risc(&self) -> bool {
        self.as_uri().starts_with(RISC)
    }

    /// Whether this is one of SSF's own control events (verification, stream-updated).
    pub fn is_ssf_control(&self) -> bool {
        matches!(self, Self::Verification | Self::StreamUpdated)
    }
}

impl std::fmt::Display for EventType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_uri())
    }
}

impl Serialize for EventType {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_uri())
    }
}

impl<'de> Deserialize<'de> for EventType {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let uri = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        Ok(Self::from(uri.as_ref()))
    }
}

/// JSON kept exactly as received.
#[derive(Debug, Clone)]
pub struct RawJson(pub Box<RawValue>);

impl PartialEq for RawJson {
    fn eq(&self, other: &Self) -> bool {
        self.0.get() == other.0.get()
    }
}

/// Parses a typed payload, naming the path of the offending field on error.
fn typed<T: DeserializeOwned>(payload: &RawValue) -> Result<T, String> {
    let mut deserializer = serde_json::Deserializer::from_str(payload.get());
    serde_path_to_error::deserialize(&mut deserializer).map_err(|error| {
        let path = error.path().to_string();
        let inner = error.into_inner();
        // serde_json appends "at line L column C"; the field path says more to a peer.
        let message = inner.to_string();
        let message = message
            .split(" at line ")
            .next()
            .unwrap_or(&message)
            .to_owned();
        if path == "." {
            message
        } else {
            format!("`{path}`: {message}")
        }
    })
}

/// An event with its type: the convenient form for building and matching events.
pub type Event = EventPayload;

/// The SET `events` claim: one or more events, each under its type URI (RFC 8417 §2.2).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Events(pub Vec<EventPayload>);

impl Events {
    /// A claim holding one event, as SSF 1.0 §4.2.1 recommends and the CAEP
    /// Interoperability Profile requires (IOP-SET-01).
    pub fn single(event: EventPayload) -> Self {
        Self(vec![event])
    }

    /// The events, in document order.
    pub fn iter(&self) -> impl Iterator<Item = &EventPayload> {
        self.0.iter()
    }

    /// The number of events.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether the claim is empty (invalid per RFC 8417 §2.2).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl Serialize for Events {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for event in &self.0 {
            event.serialize_payload(&mut map)?;
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for Events {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct EventsVisitor;

        impl<'de> Visitor<'de> for EventsVisitor {
            type Value = Events;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an object mapping event-type URIs to event payloads")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Events, A::Error> {
                let mut events = Vec::new();
                let mut seen = std::collections::BTreeSet::new();
                while let Some(uri) = map.next_key::<String>()? {
                    let payload: Box<RawValue> = map.next_value()?;
                    if !seen.insert(uri.clone()) {
                        return Err(A::Error::custom(format!(
                            "event type {uri} appears twice (RFC 8417 §2.2)"
                        )));
                    }
                    let event = EventPayload::parse(&uri, &payload)
                        .map_err(|e| A::Error::custom(format!("event {uri}: {e}")))?;
                    events.push(event);
                }
                Ok(Events(events))
            }
        }

        deserializer.deserialize_map(EventsVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> Result<Events, String> {
        serde_json::from_str(json).map_err(|e| e.to_string())
    }

    #[test]
    fn every_known_type_has_a_distinct_uri_that_maps_back() {
        assert_eq!(EventType::KNOWN.len(), 8 + 14 + 2);
        for known in EventType::KNOWN {
            assert_eq!(&EventType::from(known.as_uri()), known);
        }
        assert!(EventType::SessionRevoked.is_caep());
        assert!(EventType::AccountPurged.is_risc());
        assert!(EventType::Verification.is_ssf_control());
    }

    #[test]
    fn unknown_event_types_are_kept_byte_for_byte() {
        let json = r#"{"urn:example:event":{"b": 1,  "a":[2]}}"#;
        let events = parse(json).unwrap();
        assert!(matches!(events.0[0], EventPayload::Unknown { .. }));
        assert_eq!(
            serde_json::to_string(&events).unwrap(),
            r#"{"urn:example:event":{"b": 1,  "a":[2]}}"#
        );
    }

    #[test]
    fn invalid_known_payloads_name_the_field() {
        // CAEP-E-03: change_type MUST be one of create, revoke, update, delete.
        let err = parse(&format!(
            r#"{{"{CAEP}credential-change":{{"credential_type":"password","change_type":"rotate"}}}}"#
        ))
        .unwrap_err();
        assert!(err.contains("change_type"), "{err}");
        // CAEP-E-03: credential_type is REQUIRED.
        let err = parse(&format!(
            r#"{{"{CAEP}credential-change":{{"change_type":"create"}}}}"#
        ))
        .unwrap_err();
        assert!(err.contains("credential_type"), "{err}");
        // CAEP-C-03: reason_admin must hold at least one entry.
        let err = parse(&format!(
            r#"{{"{CAEP}session-revoked":{{"reason_admin":{{}}}}}}"#
        ))
        .unwrap_err();
        assert!(err.contains("reason_admin"), "{err}");
        // CAEP-E-05: compliance status values are closed.
        let err = parse(&format!(
            r#"{{"{CAEP}device-compliance-change":{{"previous_status":"compliant","current_status":"unknown"}}}}"#
        ))
        .unwrap_err();
        assert!(err.contains("current_status"), "{err}");
        // SET-10: a payload is an object.
        assert!(parse(r#"{"urn:x":[1]}"#).is_err());
    }

    #[test]
    fn extension_credential_types_and_unknown_members_survive() {
        // CAEP-R-03 and SSF-SET-16
        let json = format!(
            r#"{{"{CAEP}credential-change":{{"credential_type":"smart-card","change_type":"create","vendor_note":"x"}}}}"#
        );
        let events = parse(&json).unwrap();
        let EventPayload::CredentialChange(change) = &events.0[0] else {
            panic!("typed payload expected")
        };
        assert_eq!(
            change.credential_type,
            CredentialType::Other("smart-card".into())
        );
        assert_eq!(
            serde_json::to_value(&events).unwrap(),
            serde_json::from_str::<Value>(&json).unwrap()
        );
    }
}
