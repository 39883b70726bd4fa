//! Which streams an event goes to, and the SET each of them gets (SSF 1.0 §4, §8.1.3).

use serde::{Deserialize, Serialize};

use super::streams::Stream;
use crate::protocol::events::{StreamUpdated, Verification};
use crate::protocol::metadata::DefaultSubjects;
use crate::protocol::{
    EventPayload, Events, Extra, SecurityEventToken, StreamState, SubjectId, Txn,
};

/// An event handed to the transmitter by the local identity provider (`POST /events`,
/// `ssfd emit`): the SET without its envelope. ssfd adds `iss`, `iat`, `jti` and `aud` per
/// stream.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventIntake {
    /// The primary subject (SSF-SUB-02).
    pub sub_id: SubjectId,
    /// Exactly one event (SSF-SET-13, IOP-SET-01).
    pub events: Events,
    /// Correlates SETs caused by one underlying event (SSF-SET-12); generated when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub txn: Option<String>,
    /// Time of the event (RFC 8417 `toe`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub toe: Option<i64>,
}

/// Largest accepted intake body, in bytes.
pub const MAX_INTAKE_BYTES: usize = 16 * 1024;

impl EventIntake {
    /// Checks what the typed model cannot: one event, and no SSF control event (those are
    /// ssfd's own to send).
    pub fn validate(&self) -> Result<(), String> {
        if self.events.len() != 1 {
            return Err(format!(
                "events: exactly one event per intake (SSF 1.0 §4.2.1), got {}",
                self.events.len()
            ));
        }
        let event = self.events.iter().next().expect("one event");
        if event.event_type().is_ssf_control() {
            return Err(format!(
                "events: {} events are sent by ssfd itself, not submitted",
                event.event_type()
            ));
        }
        if let Some(txn) = &self.txn {
            if txn.is_empty() || txn.len() > 256 {
                return Err("txn: must be 1 to 256 characters".to_owned());
            }
        }
        Ok(())
    }
}

/// A stream's subjects, as the fan-out sees them.
#[derive(Debug, Clone, Default)]
pub struct StreamSubjects {
    /// Subjects the receiver added (with `verified` true or absent).
    pub added: Vec<SubjectId>,
    /// Subjects the receiver removed while `default_subjects` is `ALL`.
    pub removed: Vec<SubjectId>,
}

/// Whether an event about `subject` goes to a stream with these subjects (SSF-MD-08a):
/// with `ALL`, unless the subject was removed; with `NONE`, only if it was added.
pub fn subject_selected(
    subject: &SubjectId,
    subjects: &StreamSubjects,
    default_subjects: DefaultSubjects,
) -> bool {
    let added = subjects.added.iter().any(|s| subject.matches(s));
    match default_subjects {
        DefaultSubjects::All => added || !subjects.removed.iter().any(|s| subject.matches(s)),
        DefaultSubjects::None => added,
    }
}

/// Whether a stream takes an event now: enabled or paused (paused streams hold events,
/// SSF-ST-07), not disabled (SSF-ST-08), and the event type is delivered.
pub fn stream_takes(stream: &Stream, event: &EventPayload) -> bool {
    stream.status != StreamState::Disabled && stream.delivers(&event.event_type())
}

/// The envelope every SET of one stream shares.
#[derive(Debug, Clone)]
pub struct Envelope<'a> {
    /// ssfd's issuer.
    pub issuer: &'a str,
    /// Now, seconds.
    pub now: i64,
}

impl Envelope<'_> {
    /// The SET for `stream` carrying `event` about `sub_id`: a fresh `jti`, the stream's
    /// `aud`, no `sub`, no `exp` (SSF-SET-02/03, SSF-SET-18).
    pub fn set(
        &self,
        stream: &Stream,
        sub_id: SubjectId,
        event: EventPayload,
        txn: Option<&str>,
        toe: Option<i64>,
    ) -> SecurityEventToken {
        SecurityEventToken {
            iss: self.issuer.to_owned(),
            iat: self.now,
            jti: crate::ids::new_id(),
            aud: Some(stream.aud.clone()),
            txn: txn.map(|t| Txn::Text(t.to_owned())),
            toe,
            sub_id: Some(sub_id),
            events: Events::single(event),
            extra: Default::default(),
        }
    }

    /// A verification SET (SSF 1.0 §8.1.4.1): subject `opaque` = the stream id, `state`
    /// echoed when the receiver asked (SSF-VER-05, SSF-VER-10), a txn of its own.
    pub fn verification(&self, stream: &Stream, state: Option<String>) -> SecurityEventToken {
        let event = EventPayload::Verification(Verification {
            state,
            event_timestamp: None,
            initiating_entity: None,
            reason_admin: None,
            reason_user: None,
            subject: None,
            extra: Extra::new(),
        });
        // SSF-SET-11: every SET gets a txn; the underlying event is this one request.
        self.set(
            stream,
            SubjectId::opaque(&stream.stream_id),
            event,
            Some(&crate::ids::new_id()),
            None,
        )
    }

    /// A stream-updated SET (SSF 1.0 §8.1.5) announcing `status`, with a txn of its own.
    pub fn stream_updated(
        &self,
        stream: &Stream,
        status: StreamState,
        reason: Option<String>,
    ) -> SecurityEventToken {
        let event = EventPayload::StreamUpdated(StreamUpdated {
            status,
            reason,
            event_timestamp: Some(self.now),
            initiating_entity: None,
            reason_admin: None,
            reason_user: None,
            subject: None,
            extra: Extra::new(),
        });
        // SSF-SET-11: every SET gets a txn; the underlying event is this one request.
        self.set(
            stream,
            SubjectId::opaque(&stream.stream_id),
            event,
            Some(&crate::ids::new_id()),
            None,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn intake(value: serde_json::Value) -> Result<EventIntake, String> {
        let intake: EventIntake = serde_json::from_value(value).map_err(|e| e.to_string())?;
        intake.validate()?;
        Ok(intake)
    }

    #[test]
    fn intake_takes_exactly_one_publishable_event() {
        let subject = json!({"format": "email", "email": "a@example.com"});
        let revoked = "https://schemas.openid.net/secevent/caep/event-type/session-revoked";
        assert!(intake(json!({"sub_id": subject, "events": {revoked: {}}})).is_ok());
        assert!(intake(json!({"sub_id": subject, "events": {}})).is_err());
        let verification = "https://schemas.openid.net/secevent/ssf/event-type/verification";
        assert!(intake(json!({"sub_id": subject, "events": {verification: {}}})).is_err());
        assert!(intake(json!({"sub_id": subject, "events": {revoked: {}}, "iss": "x"})).is_err());
        let err = intake(json!({"sub_id": subject, "events": {
            "https://schemas.openid.net/secevent/caep/event-type/credential-change": {"change_type": "create"}}}))
        .unwrap_err();
        assert!(err.contains("credential_type"), "{err}");
    }

    #[test]
    fn default_subjects_all_and_none() {
        // SSF-MD-08a
        let jane = SubjectId::email("jane@example.com");
        let john = SubjectId::email("john@example.com");
        let none_added = StreamSubjects::default();
        assert!(subject_selected(&jane, &none_added, DefaultSubjects::All));
        assert!(!subject_selected(&jane, &none_added, DefaultSubjects::None));
        let jane_added = StreamSubjects {
            added: vec![jane.clone()],
            removed: vec![],
        };
        assert!(subject_selected(&jane, &jane_added, DefaultSubjects::None));
        assert!(!subject_selected(&john, &jane_added, DefaultSubjects::None));
        let jane_removed = StreamSubjects {
            added: vec![],
            removed: vec![jane.clone()],
        };
        assert!(!subject_selected(
            &jane,
            &jane_removed,
            DefaultSubjects::All
        ));
        assert!(subject_selected(&john, &jane_removed, DefaultSubjects::All));
    }
}
