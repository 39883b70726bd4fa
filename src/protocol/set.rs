//! The Security Event Token claims set (RFC 8417 §2) as profiled by SSF 1.0 §4.

use std::collections::BTreeMap;

use serde::de::{Error as _, MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::value::RawValue;

use super::events::RawJson;
use super::{Events, Extra, SubjectId};

/// The `aud` claim: one audience or several (RFC 7519 §4.1.3, SSF 1.0 §4.1.8). The form
/// received is the form sent back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Audience {
    /// A single audience string.
    One(String),
    /// An array of audience strings.
    Many(Vec<String>),
}

impl Audience {
    /// Whether `audience` is one of the values.
    pub fn contains(&self, audience: &str) -> bool {
        match self {
            Self::One(one) => one == audience,
            Self::Many(many) => many.iter().any(|a| a == audience),
        }
    }

    /// The values as a slice-like iterator.
    pub fn iter(&self) -> impl Iterator<Item = &str> {
        let values: &[String] = match self {
            Self::One(one) => std::slice::from_ref(one),
            Self::Many(many) => many,
        };
        values.iter().map(String::as_str)
    }
}

/// The `txn` claim. RFC 8417 §2.2 makes it a string; early SSF drafts printed numbers, which
/// are accepted and kept as they came (AMBIG-13).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Txn {
    /// The standard string form.
    Text(String),
    /// A legacy numeric form.
    Number(serde_json::Number),
}

/// A SET's claims (RFC 8417 §2.2; SSF 1.0 §4.1). Unknown claims are kept byte for byte.
#[derive(Debug, Clone, PartialEq)]
pub struct SecurityEventToken {
    /// Issuer; compared as an exact string (SSF-SET-07).
    pub iss: String,
    /// Issued-at time, seconds since the epoch.
    pub iat: i64,
    /// Unique id of this SET within the issuer's feed (SET-06).
    pub jti: String,
    /// Intended audience(s) (SET-07).
    pub aud: Option<Audience>,
    /// Transaction id tying SETs caused by one underlying event (SSF-SET-11/12).
    pub txn: Option<Txn>,
    /// Time of the event (SET-12).
    pub toe: Option<i64>,
    /// The primary subject (SSF-SUB-02).
    pub sub_id: Option<SubjectId>,
    /// The events (SET-02).
    pub events: Events,
    /// Any other claims, as received.
    pub extra: BTreeMap<String, RawJson>,
}

/// A way a SET breaks the SSF 1.0 profile of RFC 8417, although it is a valid SET.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SsfProfileError {
    /// SSF-SET-02: the `sub` claim MUST NOT be present.
    #[error("the `sub` claim must not be present in an SSF SET")]
    SubPresent,
    /// SSF-SET-03: the `exp` claim MUST NOT be used.
    #[error("the `exp` claim must not be present in an SSF SET")]
    ExpPresent,
    /// SSF-SUB-02/04: the top-level `sub_id` claim is required.
    #[error("the `sub_id` claim is required")]
    SubIdMissing,
    /// RFC 8417 §2.2: `events` holds at least one event.
    #[error("the `events` claim holds no event")]
    NoEvent,
    /// IOP-SET-01: exactly one event per SET under the CAEP Interoperability Profile.
    #[error("the `events` claim holds {0} events; exactly one is allowed")]
    SeveralEvents(usize),
}

impl SecurityEventToken {
    /// Parses a claims set from JSON text, naming the offending claim on error.
    pub fn from_json(json: &str) -> Result<Self, String> {
        let mut deserializer = serde_json::Deserializer::from_str(json);
        let token = serde_path_to_error::deserialize(&mut deserializer)
            .map_err(|e| format!("{}: {}", e.path(), e.inner()))?;
        deserializer.end().map_err(|e| e.to_string())?;
        Ok(token)
    }

    /// Checks the SSF 1.0 rules a valid RFC 8417 SET may still break. `single_event` applies
    /// the CAEP Interoperability Profile's one-event rule (IOP-SET-01).
    pub fn check_ssf_profile(&self, single_event: bool) -> Result<(), SsfProfileError> {
        if self.extra.contains_key("sub") {
            return Err(SsfProfileError::SubPresent);
        }
        if self.extra.contains_key("exp") {
            return Err(SsfProfileError::ExpPresent);
        }
        if self.sub_id.is_none() {
            return Err(SsfProfileError::SubIdMissing);
        }
        match self.events.len() {
            0 => Err(SsfProfileError::NoEvent),
            1 => Ok(()),
            n if single_event => Err(SsfProfileError::SeveralEvents(n)),
            _ => Ok(()),
        }
    }
}

impl Serialize for SecurityEventToken {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(None)?;
        map.serialize_entry("iss", &self.iss)?;
        map.serialize_entry("iat", &self.iat)?;
        map.serialize_entry("jti", &self.jti)?;
        if let Some(aud) = &self.aud {
            map.serialize_entry("aud", aud)?;
        }
        if let Some(txn) = &self.txn {
            map.serialize_entry("txn", txn)?;
        }
        if let Some(toe) = &self.toe {
            map.serialize_entry("toe", toe)?;
        }
        if let Some(sub_id) = &self.sub_id {
            map.serialize_entry("sub_id", sub_id)?;
        }
        map.serialize_entry("events", &self.events)?;
        for (name, value) in &self.extra {
            map.serialize_entry(name, &value.0)?;
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for SecurityEventToken {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct SetVisitor;

        fn once<T, E: serde::de::Error>(
            slot: &mut Option<T>,
            name: &str,
            value: T,
        ) -> Result<(), E> {
            if slot.replace(value).is_some() {
                return Err(E::custom(format!("claim `{name}` appears twice")));
            }
            Ok(())
        }

        impl<'de> Visitor<'de> for SetVisitor {
            type Value = SecurityEventToken;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a SET claims object")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let (mut iss, mut iat, mut jti, mut aud, mut txn) = (None, None, None, None, None);
                let (mut toe, mut sub_id, mut events) = (None, None, None);
                let mut extra = BTreeMap::new();
                while let Some(name) = map.next_key::<String>()? {
                    match name.as_str() {
                        "iss" => once(&mut iss, "iss", map.next_value::<String>()?)?,
                        "iat" => once(&mut iat, "iat", map.next_value::<i64>()?)?,
                        "jti" => once(&mut jti, "jti", map.next_value::<String>()?)?,
                        "aud" => once(&mut aud, "aud", map.next_value::<Audience>()?)?,
                        "txn" => once(&mut txn, "txn", map.next_value::<Txn>()?)?,
                        "toe" => once(&mut toe, "toe", map.next_value::<i64>()?)?,
                        "sub_id" => once(&mut sub_id, "sub_id", map.next_value::<SubjectId>()?)?,
                        "events" => once(&mut events, "events", map.next_value::<Events>()?)?,
                        _ => {
                            let value: Box<RawValue> = map.next_value()?;
                            if extra.insert(name.clone(), RawJson(value)).is_some() {
                                return Err(A::Error::custom(format!(
                                    "claim `{name}` appears twice"
                                )));
                            }
                        }
                    }
                }
                let missing = |name: &'static str| A::Error::missing_field(name);
                Ok(SecurityEventToken {
                    iss: iss.ok_or_else(|| missing("iss"))?,
                    iat: iat.ok_or_else(|| missing("iat"))?,
                    jti: jti.ok_or_else(|| missing("jti"))?,
                    aud,
                    txn,
                    toe,
                    sub_id,
                    events: events.ok_or_else(|| missing("events"))?,
                    extra,
                })
            }
        }

        deserializer.deserialize_map(SetVisitor)
    }
}

/// A JOSE header as SSF uses it (SSF 1.0 §4.1.1): `typ` MUST be `secevent+jwt`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JoseHeader {
    /// The signature algorithm.
    pub alg: String,
    /// The media type of the token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub typ: Option<String>,
    /// The signing key's id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kid: Option<String>,
    /// Other header parameters.
    #[serde(flatten)]
    pub extra: Extra,
}

#[cfg(test)]
mod tests {
    use super::*;

    const SET: &str = r#"{
        "iss": "https://idp.example.com/",
        "jti": "756E69717565206964656E746966696572",
        "iat": 1520364019,
        "txn": "8675309",
        "aud": "636C69656E745F6964",
        "sub_id": {"format": "email", "email": "foo@example.com"},
        "events": {"https://schemas.openid.net/secevent/risc/event-type/account-enabled": {}},
        "x-claim": {"kept": [1, 2]}
    }"#;

    #[test]
    fn round_trips_and_keeps_unknown_claims() {
        let token = SecurityEventToken::from_json(SET).unwrap();
        assert_eq!(token.aud, Some(Audience::One("636C69656E745F6964".into())));
        assert!(token.extra.contains_key("x-claim"));
        let back: serde_json::Value = serde_json::to_value(&token).unwrap();
        assert_eq!(
            back,
            serde_json::from_str::<serde_json::Value>(SET).unwrap()
        );
        token.check_ssf_profile(true).unwrap();
    }

    #[test]
    fn missing_and_duplicate_claims_are_errors() {
        // SET-04, SET-05, SET-06: iss, iat and jti are REQUIRED.
        let err = SecurityEventToken::from_json(r#"{"iss":"a","iat":1,"events":{}}"#).unwrap_err();
        assert!(err.contains("jti"), "{err}");
        let err =
            SecurityEventToken::from_json(r#"{"iss":"a","iss":"b","iat":1,"jti":"j","events":{}}"#)
                .unwrap_err();
        assert!(err.contains("twice"), "{err}");
    }

    #[test]
    fn profile_rules() {
        let with = |extra: &str| {
            SecurityEventToken::from_json(&format!(
                r#"{{"iss":"a","iat":1,"jti":"j","sub_id":{{"format":"opaque","id":"x"}},"events":{{"urn:a":{{}}}}{extra}}}"#
            ))
            .unwrap()
        };
        assert_eq!(
            with(r#","sub":"x""#).check_ssf_profile(false),
            Err(SsfProfileError::SubPresent)
        ); // SSF-SET-02
        assert_eq!(
            with(r#","exp":2"#).check_ssf_profile(false),
            Err(SsfProfileError::ExpPresent)
        ); // SSF-SET-03
        let mut two = with("");
        two.events.0.push(two.events.0[0].clone());
        assert_eq!(
            two.check_ssf_profile(true),
            Err(SsfProfileError::SeveralEvents(2))
        ); // IOP-SET-01
        assert_eq!(two.check_ssf_profile(false), Ok(()));
        let mut no_subject = with("");
        no_subject.sub_id = None;
        assert_eq!(
            no_subject.check_ssf_profile(false),
            Err(SsfProfileError::SubIdMissing)
        ); // SSF-SUB-02
    }
}
