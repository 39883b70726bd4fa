//! Local sessions: the registration body applications send, the session as ssfd keeps it, and
//! the subject keys through which events find sessions.
//!
//! A key is `role|format:value`, where the role says what the identifier names (`user`,
//! `device`, `session`, or any other member name of an SSF complex subject) and the value is
//! normalised the way the specs compare identifiers (email addresses without case, SUBID-07;
//! phone numbers as E.164 digits). An event about a simple subject concerns every session
//! holding that identifier in any role; an event about a complex subject concerns the sessions
//! that match every member they have a role for (an absent role is a wildcard, SSF 1.0 §3.3).

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::protocol::SubjectId;
use crate::storage::sessions::SessionRow;

/// Most subject identifiers on one session.
pub const MAX_SUBJECTS: usize = 16;
/// Longest id, device id, acr or privilege name, in bytes.
pub const MAX_NAME: usize = 256;
/// Largest `attributes` object, serialised, in bytes.
pub const MAX_ATTRIBUTES: usize = 4096;

/// A session's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SessionState {
    /// Nothing against it.
    Active,
    /// Privilege lowered: sensitive actions are denied.
    Downgraded,
    /// The user must authenticate again (to `required_acr`) before going on.
    StepUpRequired,
    /// Ended by an event or an admin; never active again.
    Revoked,
    /// Past its expiry.
    Expired,
}

impl SessionState {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Downgraded => "downgraded",
            Self::StepUpRequired => "step_up_required",
            Self::Revoked => "revoked",
            Self::Expired => "expired",
        }
    }

    /// Parses a stored name.
    pub fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "active" => Self::Active,
            "downgraded" => Self::Downgraded,
            "step_up_required" => Self::StepUpRequired,
            "revoked" => Self::Revoked,
            "expired" => Self::Expired,
            _ => return None,
        })
    }

    /// Whether the session has ended for good.
    pub fn is_ended(self) -> bool {
        matches!(self, Self::Revoked | Self::Expired)
    }
}

/// `POST /sessions`: what an application says about one of its sessions.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewSession {
    /// The application's session id; generated when absent.
    #[serde(default)]
    pub session_id: Option<String>,
    /// Who the session belongs to: simple identifiers (the user), or complex subjects naming
    /// user, device, session… members.
    pub subjects: Vec<SubjectId>,
    /// The device the session runs on.
    #[serde(default)]
    pub device_id: Option<String>,
    /// When the user authenticated, seconds; now when absent.
    #[serde(default)]
    pub auth_time: Option<i64>,
    /// Authentication context class reached.
    #[serde(default)]
    pub acr: Option<String>,
    /// Authentication methods used.
    #[serde(default)]
    pub amr: Vec<String>,
    /// Privilege level (one of `sessions.privilege_levels`); the lowest but one when absent.
    #[serde(default)]
    pub privilege: Option<String>,
    /// When the session ends by itself, seconds.
    #[serde(default)]
    pub expires_at: Option<i64>,
    /// Anything else the policy's conditions may look at (`session.attributes`).
    #[serde(default)]
    pub attributes: Map<String, Value>,
}

/// A session as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SessionView {
    /// Its id.
    pub session_id: String,
    /// Its subjects.
    pub subjects: Value,
    /// Its device.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub device_id: Option<String>,
    /// Its state.
    pub state: SessionState,
    /// Why.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state_reason: Option<String>,
    /// The SET that caused the state.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cause_jti: Option<String>,
    /// The rule that caused the state.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cause_rule: Option<String>,
    /// The acr a step-up must reach.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub required_acr: Option<String>,
    /// Authentication time.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auth_time: Option<i64>,
    /// Authentication context class.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub acr: Option<String>,
    /// Authentication methods.
    pub amr: Vec<String>,
    /// Privilege level.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub privilege: Option<String>,
    /// Elevated privilege level, while the elevation lasts.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub elevated_privilege: Option<String>,
    /// When the elevation ends.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub elevated_until: Option<i64>,
    /// Expiry.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<i64>,
    /// Application attributes.
    pub attributes: Value,
    /// Registration time.
    pub created_at: i64,
    /// Last change.
    pub updated_at: i64,
}

/// A session in memory: its row, parsed, with its keys.
#[derive(Debug, Clone)]
pub struct Session {
    /// The stored row.
    pub row: SessionRow,
    /// Parsed state.
    pub state: SessionState,
    /// Parsed `amr`.
    pub amr: Vec<String>,
    /// Subject keys.
    pub keys: Vec<String>,
}

impl Session {
    /// Parses a stored row; a row that does not parse is a bug, reported as such.
    pub fn from_row(row: SessionRow, keys: Vec<String>) -> Self {
        let state = SessionState::parse(&row.state).unwrap_or(SessionState::Revoked);
        let amr = row
            .amr
            .as_deref()
            .and_then(|text| serde_json::from_str(text).ok())
            .unwrap_or_default();
        Self {
            row,
            state,
            amr,
            keys,
        }
    }

    /// The API view.
    pub fn view(&self) -> SessionView {
        let row = &self.row;
        SessionView {
            session_id: row.session_id.clone(),
            subjects: serde_json::from_str(&row.subjects).unwrap_or(Value::Null),
            device_id: row.device_id.clone(),
            state: self.state,
            state_reason: row.state_reason.clone(),
            cause_jti: row.cause_jti.clone(),
            cause_rule: row.cause_rule.clone(),
            required_acr: row.required_acr.clone(),
            auth_time: row.auth_time,
            acr: row.acr.clone(),
            amr: self.amr.clone(),
            privilege: row.privilege.clone(),
            elevated_privilege: row.elevated_privilege.clone(),
            elevated_until: row.elevated_until,
            expires_at: row.expires_at,
            attributes: serde_json::from_str(&row.attributes).unwrap_or(Value::Null),
            created_at: row.created_at,
            updated_at: row.updated_at,
        }
    }

    /// The privilege in force at `now`: the elevation's while it lasts.
    pub fn effective_privilege(&self, now: i64) -> Option<&str> {
        match (&self.row.elevated_privilege, self.row.elevated_until) {
            (Some(elevated), Some(until)) if until > now => Some(elevated),
            _ => self.row.privilege.as_deref(),
        }
    }

    /// The session as the policy's conditions see it (`session.…`).
    pub fn policy_value(&self, now: i64) -> Value {
        serde_json::json!({
            "id": self.row.session_id,
            "state": self.state.as_str(),
            "device_id": self.row.device_id,
            "auth_time": self.row.auth_time,
            "auth_age": self.row.auth_time.map(|t| now - t),
            "acr": self.row.acr,
            "amr": self.amr,
            "privilege": self.effective_privilege(now),
            "elevated": self.row.elevated_until.is_some_and(|until| until > now),
            "attributes": serde_json::from_str::<Value>(&self.row.attributes).unwrap_or(Value::Null),
        })
    }
}

/// The normalised identity of a simple subject, without role: `format:value`. Aliases give one
/// key per alias; a complex subject gives none (use [`role_keys`]).
pub fn bare_keys(subject: &SubjectId) -> Vec<String> {
    match subject {
        SubjectId::Aliases { identifiers, .. } => identifiers.iter().flat_map(bare_keys).collect(),
        SubjectId::Complex(_) => Vec::new(),
        SubjectId::Email { email, .. } => vec![format!("email:{}", email.trim().to_lowercase())],
        SubjectId::PhoneNumber { phone_number, .. } => {
            let digits: String = phone_number
                .chars()
                .filter(|c| c.is_ascii_digit() || *c == '+')
                .collect();
            vec![format!("phone_number:{digits}")]
        }
        SubjectId::Account { uri, .. } => vec![format!("account:{}", uri.trim().to_lowercase())],
        SubjectId::IssSub { iss, sub, .. } => {
            vec![format!(
                "iss_sub:{}",
                Value::from(vec![iss.as_str(), sub.as_str()])
            )]
        }
        SubjectId::Opaque { id, .. } => vec![format!("opaque:{id}")],
        SubjectId::Did { url, .. } => vec![format!("did:{url}")],
        SubjectId::Uri { uri, .. } => vec![format!("uri:{uri}")],
        other => vec![format!("{}:{}", other.format(), other.canonical_key())],
    }
}

/// Keys of a subject in roles: a simple subject is the `user`; a complex one gives each
/// member in its own role.
pub fn role_keys(subject: &SubjectId) -> Vec<String> {
    match subject {
        SubjectId::Complex(complex) => complex
            .members
            .iter()
            .flat_map(|(role, member)| {
                bare_keys(member)
                    .into_iter()
                    .map(move |key| format!("{role}|{key}"))
            })
            .collect(),
        simple => bare_keys(simple)
            .into_iter()
            .map(|key| format!("user|{key}"))
            .collect(),
    }
}

/// Every key of a session: its subjects', its device's and its own id.
pub fn session_keys(
    session_id: &str,
    subjects: &[SubjectId],
    device_id: Option<&str>,
) -> Vec<String> {
    let mut keys: Vec<String> = subjects.iter().flat_map(role_keys).collect();
    if let Some(device) = device_id {
        keys.push(format!("device|opaque:{device}"));
    }
    keys.push(format!("session|opaque:{session_id}"));
    keys.sort();
    keys.dedup();
    keys
}

/// The bare part of a role key.
pub fn bare_of(key: &str) -> &str {
    key.split_once('|').map_or(key, |(_, bare)| bare)
}

/// The role part of a role key.
pub fn role_of(key: &str) -> &str {
    key.split_once('|').map_or("", |(role, _)| role)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_compare_without_case_and_phones_as_digits() {
        // SUBID-07: email addresses are compared case-insensitively.
        assert_eq!(
            bare_keys(&SubjectId::email(" Alice@Example.COM")),
            ["email:alice@example.com"]
        );
        let phone: SubjectId = serde_json::from_value(
            serde_json::json!({"format": "phone_number", "phone_number": "+1 (206) 555-0100"}),
        )
        .unwrap();
        assert_eq!(bare_keys(&phone), ["phone_number:+12065550100"]);
    }

    #[test]
    fn complex_members_keep_their_roles_and_aliases_expand() {
        let subject: SubjectId = serde_json::from_value(serde_json::json!({
            "format": "complex",
            "user": {"format": "aliases", "identifiers": [
                {"format": "email", "email": "a@example.com"},
                {"format": "iss_sub", "iss": "https://idp", "sub": "42"}
            ]},
            "device": {"format": "opaque", "id": "d1"}
        }))
        .unwrap();
        assert_eq!(
            role_keys(&subject),
            [
                "device|opaque:d1",
                "user|email:a@example.com",
                "user|iss_sub:[\"https://idp\",\"42\"]"
            ]
        );
        let keys = session_keys("s1", &[SubjectId::email("b@example.com")], Some("d9"));
        assert_eq!(
            keys,
            [
                "device|opaque:d9",
                "session|opaque:s1",
                "user|email:b@example.com"
            ]
        );
    }
}
