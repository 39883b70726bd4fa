//! Subject identifiers: every format of RFC 9493 §3.2, the formats SSF 1.0 §3.5 adds
//! (`jwt_id`, `saml_assertion_id`, `ip-addresses`) and the SSF complex subject (§3.3).
//!
//! A format we do not know (a proprietary one agreed between the parties, SSF-SUB-12, or a
//! legacy name such as `phone`) is kept whole in [`SubjectId::Other`]. Members a known format
//! does not describe are kept in `extra` (AMBIG-9: tolerate on receipt, never emit).

use std::collections::BTreeMap;

use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};

use super::Extra;

/// One subject identifier (RFC 9493 §3) or an SSF complex subject (SSF 1.0 §3.3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SubjectId {
    /// `account`: an `acct:` URI (RFC 9493 §3.2.1).
    Account { uri: String, extra: Extra },
    /// `email`: an RFC 5322 addr-spec (RFC 9493 §3.2.2).
    Email { email: String, extra: Extra },
    /// `iss_sub`: issuer and subject pair (RFC 9493 §3.2.3).
    IssSub {
        iss: String,
        sub: String,
        extra: Extra,
    },
    /// `opaque`: an identifier with no further meaning (RFC 9493 §3.2.4).
    Opaque { id: String, extra: Extra },
    /// `phone_number`: an E.164 telephone number (RFC 9493 §3.2.5).
    PhoneNumber { phone_number: String, extra: Extra },
    /// `did`: a DID URL (RFC 9493 §3.2.6).
    Did { url: String, extra: Extra },
    /// `uri`: any URI (RFC 9493 §3.2.7).
    Uri { uri: String, extra: Extra },
    /// `aliases`: several identifiers of one subject; never nested (RFC 9493 §3.2.8).
    Aliases {
        identifiers: Vec<SubjectId>,
        extra: Extra,
    },
    /// `jwt_id`: a JWT by issuer and `jti` (SSF 1.0 §3.5.1).
    JwtId {
        iss: String,
        jti: String,
        extra: Extra,
    },
    /// `saml_assertion_id`: a SAML assertion (SSF 1.0 §3.5.2).
    SamlAssertionId {
        issuer: String,
        assertion_id: String,
        extra: Extra,
    },
    /// `ip-addresses`: IP addresses in RFC 4001 text form (SSF 1.0 §3.5.3).
    IpAddresses {
        ip_addresses: Vec<String>,
        extra: Extra,
    },
    /// `complex`: several simple subjects describing one principal (SSF 1.0 §3.3).
    Complex(ComplexSubject),
    /// A format not defined by the specifications: kept whole.
    Other { format: String, members: Extra },
    /// The deprecated Google RISC form naming the format in `subject_type` instead of `format`
    /// (RISC 1.0 §3.1, RFC 8417 Figure 4): accepted on receipt, never emitted by ssfd.
    LegacySubjectType {
        subject_type: String,
        members: Extra,
    },
}

/// An SSF complex subject: named members, each a simple subject identifier (SSF 1.0 §3.3).
/// The defined names are `user`, `device`, `session`, `application`, `tenant`, `org_unit` and
/// `group`; others MAY be used (SSF-SUB-10) and are kept alike.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ComplexSubject {
    /// Member name to simple subject.
    pub members: BTreeMap<String, SubjectId>,
}

impl ComplexSubject {
    /// The member with this name, if present.
    pub fn member(&self, name: &str) -> Option<&SubjectId> {
        self.members.get(name)
    }

    /// The `user` member.
    pub fn user(&self) -> Option<&SubjectId> {
        self.member("user")
    }

    /// The `device` member.
    pub fn device(&self) -> Option<&SubjectId> {
        self.member("device")
    }

    /// The `session` member.
    pub fn session(&self) -> Option<&SubjectId> {
        self.member("session")
    }
}

impl SubjectId {
    /// A simple `email` subject.
    pub fn email(email: impl Into<String>) -> Self {
        Self::Email {
            email: email.into(),
            extra: Extra::new(),
        }
    }

    /// A simple `opaque` subject (the form SSF uses for stream ids, §8.1.4.1).
    pub fn opaque(id: impl Into<String>) -> Self {
        Self::Opaque {
            id: id.into(),
            extra: Extra::new(),
        }
    }

    /// A simple `iss_sub` subject.
    pub fn iss_sub(iss: impl Into<String>, sub: impl Into<String>) -> Self {
        Self::IssSub {
            iss: iss.into(),
            sub: sub.into(),
            extra: Extra::new(),
        }
    }

    /// The `format` member's value.
    pub fn format(&self) -> &str {
        match self {
            Self::Account { .. } => "account",
            Self::Email { .. } => "email",
            Self::IssSub { .. } => "iss_sub",
            Self::Opaque { .. } => "opaque",
            Self::PhoneNumber { .. } => "phone_number",
            Self::Did { .. } => "did",
            Self::Uri { .. } => "uri",
            Self::Aliases { .. } => "aliases",
            Self::JwtId { .. } => "jwt_id",
            Self::SamlAssertionId { .. } => "saml_assertion_id",
            Self::IpAddresses { .. } => "ip-addresses",
            Self::Complex(_) => "complex",
            Self::Other { format, .. } => format,
            Self::LegacySubjectType { subject_type, .. } => subject_type,
        }
    }

    /// Whether this is a simple subject (anything but `complex`).
    pub fn is_simple(&self) -> bool {
        !matches!(self, Self::Complex(_))
    }

    /// The subject as a JSON value.
    pub fn to_value(&self) -> Value {
        Value::Object(self.to_map())
    }

    /// A deterministic text form (JSON with sorted members): equal subjects give equal keys.
    pub fn canonical_key(&self) -> String {
        self.to_value().to_string()
    }

    /// Parses a subject identifier from a JSON value.
    pub fn from_value(value: Value) -> Result<Self, String> {
        match value {
            Value::Object(map) => Self::from_map(map),
            _ => Err("a subject identifier must be a JSON object".to_owned()),
        }
    }

    /// Whether an event about `self` concerns a stream subject `other` (SSF 1.0 §8.1.3.1,
    /// SSF-SM-02). Simple subjects match when identical (email addresses compared without
    /// case, SUBID-07). Complex subjects match when every member present in both is
    /// identical: an absent member is a wildcard. A simple subject matches a complex one
    /// holding it as a member. An `aliases` subject matches when any alias does (AMBIG-17).
    pub fn matches(&self, other: &SubjectId) -> bool {
        match (self, other) {
            (Self::Aliases { identifiers, .. }, _) => identifiers.iter().any(|a| a.matches(other)),
            (_, Self::Aliases { identifiers, .. }) => identifiers.iter().any(|a| self.matches(a)),
            (Self::Complex(a), Self::Complex(b)) => {
                let mut shared = a
                    .members
                    .iter()
                    .filter_map(|(name, member)| b.members.get(name).map(|other| (member, other)))
                    .peekable();
                shared.peek().is_some() && shared.all(|(x, y)| x.same_simple(y))
            }
            (Self::Complex(complex), simple) | (simple, Self::Complex(complex)) => complex
                .members
                .values()
                .any(|member| member.same_simple(simple)),
            (a, b) => a.same_simple(b),
        }
    }

    /// Identity of two simple subjects, with the one normalisation ssfd applies: email
    /// addresses are compared without case.
    fn same_simple(&self, other: &SubjectId) -> bool {
        match (self, other) {
            (Self::Email { email: a, .. }, Self::Email { email: b, .. }) => {
                a.eq_ignore_ascii_case(b)
            }
            (Self::Aliases { .. }, _) | (_, Self::Aliases { .. }) => self.matches(other),
            (a, b) => a.format() == b.format() && a.without_extra() == b.without_extra(),
        }
    }

    /// The identifying members only: unknown members do not change who a subject is.
    fn without_extra(&self) -> Value {
        let mut map = self.to_map();
        if let Self::Other { .. } | Self::LegacySubjectType { .. } | Self::Complex(_) = self {
            return Value::Object(map);
        }
        let extra: Vec<String> = match self {
            Self::Account { extra, .. }
            | Self::Email { extra, .. }
            | Self::IssSub { extra, .. }
            | Self::Opaque { extra, .. }
            | Self::PhoneNumber { extra, .. }
            | Self::Did { extra, .. }
            | Self::Uri { extra, .. }
            | Self::Aliases { extra, .. }
            | Self::JwtId { extra, .. }
            | Self::SamlAssertionId { extra, .. }
            | Self::IpAddresses { extra, .. } => extra.keys().cloned().collect(),
            Self::Complex(_) | Self::Other { .. } | Self::LegacySubjectType { .. } => Vec::new(),
        };
        for name in extra {
            map.remove(&name);
        }
        Value::Object(map)
    }

    fn to_map(&self) -> Map<String, Value> {
        let mut map = Map::new();
        let format_member = match self {
            Self::LegacySubjectType { .. } => "subject_type",
            _ => "format",
        };
        map.insert(format_member.to_owned(), Value::from(self.format()));
        let mut put = |name: &str, value: Value| {
            map.insert(name.to_owned(), value);
        };
        let extra = match self {
            Self::Account { uri, extra } | Self::Uri { uri, extra } => {
                put("uri", uri.as_str().into());
                Some(extra)
            }
            Self::Email { email, extra } => {
                put("email", email.as_str().into());
                Some(extra)
            }
            Self::IssSub { iss, sub, extra } => {
                put("iss", iss.as_str().into());
                put("sub", sub.as_str().into());
                Some(extra)
            }
            Self::Opaque { id, extra } => {
                put("id", id.as_str().into());
                Some(extra)
            }
            Self::PhoneNumber {
                phone_number,
                extra,
            } => {
                put("phone_number", phone_number.as_str().into());
                Some(extra)
            }
            Self::Did { url, extra } => {
                put("url", url.as_str().into());
                Some(extra)
            }
            Self::Aliases { identifiers, extra } => {
                put(
                    "identifiers",
                    identifiers.iter().map(SubjectId::to_value).collect(),
                );
                Some(extra)
            }
            Self::JwtId { iss, jti, extra } => {
                put("iss", iss.as_str().into());
                put("jti", jti.as_str().into());
                Some(extra)
            }
            Self::SamlAssertionId {
                issuer,
                assertion_id,
                extra,
            } => {
                put("issuer", issuer.as_str().into());
                put("assertion_id", assertion_id.as_str().into());
                Some(extra)
            }
            Self::IpAddresses {
                ip_addresses,
                extra,
            } => {
                put("ip-addresses", ip_addresses.clone().into());
                Some(extra)
            }
            Self::Complex(complex) => {
                for (name, member) in &complex.members {
                    put(name, member.to_value());
                }
                None
            }
            Self::Other { members, .. } | Self::LegacySubjectType { members, .. } => Some(members),
        };
        for (name, value) in extra.into_iter().flatten() {
            map.entry(name.clone()).or_insert_with(|| value.clone());
        }
        map
    }

    fn from_map(mut map: Map<String, Value>) -> Result<Self, String> {
        let format = match map.remove("format") {
            Some(Value::String(format)) => format,
            Some(_) => return Err("`format` must be a string".to_owned()),
            None => match map.remove("subject_type") {
                Some(Value::String(subject_type)) => {
                    return Ok(Self::LegacySubjectType {
                        subject_type,
                        members: map.into_iter().collect(),
                    })
                }
                _ => return Err("missing member `format`".to_owned()),
            },
        };
        let mut members = Members {
            format: &format,
            map,
        };
        let subject = match format.as_str() {
            "account" => Self::Account {
                uri: members.required("uri")?,
                extra: members.rest(),
            },
            "email" => Self::Email {
                email: members.required("email")?,
                extra: members.rest(),
            },
            "iss_sub" => Self::IssSub {
                iss: members.required("iss")?,
                sub: members.required("sub")?,
                extra: members.rest(),
            },
            "opaque" => Self::Opaque {
                id: members.required("id")?,
                extra: members.rest(),
            },
            "phone_number" => Self::PhoneNumber {
                phone_number: members.required("phone_number")?,
                extra: members.rest(),
            },
            "did" => Self::Did {
                url: members.required("url")?,
                extra: members.rest(),
            },
            "uri" => Self::Uri {
                uri: members.required("uri")?,
                extra: members.rest(),
            },
            "jwt_id" => Self::JwtId {
                iss: members.required("iss")?,
                jti: members.required("jti")?,
                extra: members.rest(),
            },
            "saml_assertion_id" => Self::SamlAssertionId {
                issuer: members.required("issuer")?,
                assertion_id: members.required("assertion_id")?,
                extra: members.rest(),
            },
            "ip-addresses" => Self::IpAddresses {
                ip_addresses: members.ip_addresses()?,
                extra: members.rest(),
            },
            "aliases" => Self::Aliases {
                identifiers: members.aliases()?,
                extra: members.rest(),
            },
            "complex" => Self::Complex(members.complex()?),
            _ => Self::Other {
                format: format.clone(),
                members: members.rest(),
            },
        };
        Ok(subject)
    }
}

/// The members of a subject object being parsed, consumed as they are read.
struct Members<'a> {
    format: &'a str,
    map: Map<String, Value>,
}

impl Members<'_> {
    /// A REQUIRED string member, which RFC 9493 says "MUST NOT be null or empty".
    fn required(&mut self, name: &str) -> Result<String, String> {
        match self.map.remove(name) {
            Some(Value::String(value)) if !value.is_empty() => Ok(value),
            Some(Value::String(_)) => Err(self.error(name, "must not be empty")),
            Some(_) => Err(self.error(name, "must be a string")),
            None => Err(self.error(name, "is required")),
        }
    }

    fn ip_addresses(&mut self) -> Result<Vec<String>, String> {
        let name = "ip-addresses";
        let Some(Value::Array(items)) = self.map.remove(name) else {
            return Err(self.error(name, "is required and must be an array of strings"));
        };
        if items.is_empty() {
            return Err(self.error(name, "must not be empty"));
        }
        items
            .into_iter()
            .map(|item| match item {
                Value::String(text) if text.parse::<std::net::IpAddr>().is_ok() => Ok(text),
                other => Err(self.error(name, &format!("holds {other}, not an IP address"))),
            })
            .collect()
    }

    fn aliases(&mut self) -> Result<Vec<SubjectId>, String> {
        let name = "identifiers";
        let Some(Value::Array(items)) = self.map.remove(name) else {
            return Err(self.error(name, "is required and must be an array"));
        };
        if items.is_empty() {
            return Err(self.error(name, "must not be empty"));
        }
        items
            .into_iter()
            .map(|item| {
                let alias = SubjectId::from_value(item)
                    .map_err(|e| self.error(name, &format!("holds an invalid identifier: {e}")))?;
                match alias {
                    SubjectId::Aliases { .. } => {
                        Err(self.error(name, "must not nest `aliases` (RFC 9493 §3.2.8)"))
                    }
                    SubjectId::Complex(_) => {
                        Err(self.error(name, "must hold simple subject identifiers"))
                    }
                    alias => Ok(alias),
                }
            })
            .collect()
    }

    fn complex(&mut self) -> Result<ComplexSubject, String> {
        let mut complex = ComplexSubject::default();
        for (name, value) in std::mem::take(&mut self.map) {
            let member = SubjectId::from_value(value)
                .map_err(|e| self.error(&name, &format!("is not a subject identifier: {e}")))?;
            if !member.is_simple() {
                return Err(self.error(&name, "must be a simple subject (SSF 1.0 §3.3)"));
            }
            complex.members.insert(name, member);
        }
        if complex.members.is_empty() {
            return Err("a complex subject needs at least one member (SSF 1.0 §3.3)".to_owned());
        }
        Ok(complex)
    }

    fn rest(&mut self) -> Extra {
        std::mem::take(&mut self.map).into_iter().collect()
    }

    fn error(&self, member: &str, problem: &str) -> String {
        format!("`{}` subject: member `{member}` {problem}", self.format)
    }
}

impl Serialize for SubjectId {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.to_map().serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for SubjectId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let map = Map::deserialize(deserializer)?;
        Self::from_map(map).map_err(D::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(value: Value) -> Result<SubjectId, String> {
        SubjectId::from_value(value)
    }

    #[test]
    fn every_known_format_round_trips() {
        // RFC 9493 §3.2 and SSF 1.0 §3.5 (SUBID-05..13, SSF-SUB-13..15)
        let samples = [
            json!({"format": "account", "uri": "acct:a@b.example"}),
            json!({"format": "email", "email": "a@b.example"}),
            json!({"format": "iss_sub", "iss": "https://i.example", "sub": "1"}),
            json!({"format": "opaque", "id": "x"}),
            json!({"format": "phone_number", "phone_number": "+12065550100"}),
            json!({"format": "did", "url": "did:example:1"}),
            json!({"format": "uri", "uri": "https://u.example/1"}),
            json!({"format": "jwt_id", "iss": "https://i.example", "jti": "j"}),
            json!({"format": "saml_assertion_id", "issuer": "i", "assertion_id": "a"}),
            json!({"format": "ip-addresses", "ip-addresses": ["10.0.0.1", "::1"]}),
            json!({"format": "aliases", "identifiers": [
                {"format": "email", "email": "a@b.example"},
                {"format": "phone_number", "phone_number": "+1"}]}),
            json!({"format": "complex",
                "user": {"format": "email", "email": "a@b.example"},
                "tenant": {"format": "opaque", "id": "t"},
                "custom_member": {"format": "opaque", "id": "c"}}),
            json!({"format": "catalog_item", "catalog_id": "c0384/winter/2354122"}),
        ];
        for sample in samples {
            let subject = parse(sample.clone()).unwrap();
            assert!(
                !matches!(subject, SubjectId::Other { .. }) || subject.format() == "catalog_item"
            );
            assert_eq!(subject.to_value(), sample);
        }
    }

    #[test]
    fn required_members_are_named_when_missing_or_empty() {
        // SUBID-03, SUBID-06: required members present and non-empty.
        let err = parse(json!({"format": "email"})).unwrap_err();
        assert!(err.contains("`email`") && err.contains("required"), "{err}");
        let err = parse(json!({"format": "iss_sub", "iss": "x", "sub": ""})).unwrap_err();
        assert!(err.contains("`sub`") && err.contains("empty"), "{err}");
        let err = parse(json!({"email": "a@b"})).unwrap_err();
        assert!(err.contains("format"), "{err}");
    }

    #[test]
    fn aliases_do_not_nest_and_complex_members_are_simple() {
        // SUBID-13, SSF-SUB-09
        let nested = json!({"format": "aliases", "identifiers": [
            {"format": "aliases", "identifiers": [{"format": "opaque", "id": "x"}]}]});
        assert!(parse(nested).unwrap_err().contains("nest"));
        let complex_in_complex = json!({"format": "complex",
            "user": {"format": "complex", "device": {"format": "opaque", "id": "d"}}});
        assert!(parse(complex_in_complex).unwrap_err().contains("simple"));
        let bad_ip = json!({"format": "ip-addresses", "ip-addresses": ["not-an-ip"]});
        assert!(parse(bad_ip).unwrap_err().contains("IP"));
    }

    #[test]
    fn complex_subjects_match_on_shared_members() {
        // SSF-SM-02, the three cases of SSF 1.0 §8.1.3.1 (fixture F23).
        let tenant = json!({"format": "complex", "tenant": {"format": "opaque", "id": "example-a38h4792-uw2"}});
        let event = json!({"format": "complex",
            "tenant": {"format": "opaque", "id": "example-a38h4792-uw2"},
            "user": {"format": "email", "email": "jdoe@example.com"}});
        assert!(parse(event).unwrap().matches(&parse(tenant).unwrap()));

        let added = json!({"format": "complex",
            "user": {"format": "email", "email": "user@example.com"},
            "device": {"format": "ip-addresses", "ip-addresses": ["10.29.37.75"]}});
        let user_only =
            json!({"format": "complex", "user": {"format": "email", "email": "user@example.com"}});
        assert!(parse(user_only).unwrap().matches(&parse(added).unwrap()));

        let with_group = json!({"format": "complex",
            "user": {"format": "email", "email": "user@example.com"},
            "group": {"format": "did", "url": "did:example:123456"}});
        let other_group = json!({"format": "complex",
            "user": {"format": "email", "email": "user@example.com"},
            "group": {"format": "did", "url": "did:example:9999999"}});
        assert!(!parse(other_group)
            .unwrap()
            .matches(&parse(with_group).unwrap()));
    }

    #[test]
    fn simple_subjects_match_when_identical() {
        let a = SubjectId::email("Jane@Example.com");
        assert!(a.matches(&SubjectId::email("jane@example.com")));
        assert!(!a.matches(&SubjectId::email("john@example.com")));
        assert!(!SubjectId::opaque("x").matches(&SubjectId::opaque("X")));
        let complex = parse(
            json!({"format": "complex", "user": {"format": "email", "email": "jane@example.com"}}),
        )
        .unwrap();
        assert!(a.matches(&complex) && complex.matches(&a));
        let aliases = parse(json!({"format": "aliases", "identifiers": [
            {"format": "phone_number", "phone_number": "+1"}, {"format": "email", "email": "jane@example.com"}]})).unwrap();
        assert!(aliases.matches(&a) && a.matches(&aliases));
    }

    #[test]
    fn unknown_members_of_known_formats_are_kept() {
        // AMBIG-9: tolerate on receipt, lose nothing.
        let value = json!({"format": "email", "email": "a@b.example", "note": 1});
        assert_eq!(parse(value.clone()).unwrap().to_value(), value);
    }
}
