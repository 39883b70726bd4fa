//! Every CAEP 1.0, RISC 1.0 and SSF event type parses from a full SET and serialises back.

use serde_json::{json, Value};
use ssfd::protocol::{EventPayload, EventType, SecurityEventToken};

/// The smallest valid payload of each known event type, with its required claims.
pub(crate) fn minimal_payload(event_type: &EventType) -> Value {
    match event_type {
        EventType::TokenClaimsChange => json!({"claims": {"role": "ro-admin"}}),
        EventType::CredentialChange => {
            json!({"credential_type": "fido2-roaming", "change_type": "create"})
        }
        EventType::AssuranceLevelChange => {
            json!({"namespace": "NIST-AAL", "current_level": "nist-aal2"})
        }
        EventType::DeviceComplianceChange => {
            json!({"previous_status": "compliant", "current_status": "not-compliant"})
        }
        EventType::RiskLevelChange => json!({"principal": "USER", "current_level": "HIGH"}),
        EventType::CredentialCompromise => json!({"credential_type": "password"}),
        EventType::StreamUpdated => json!({"status": "paused"}),
        _ => json!({}),
    }
}

/// Claims every CAEP event may carry (CAEP 1.0 §2), to show they survive on every type.
fn with_common_claims(mut payload: Value) -> Value {
    let common = json!({
        "event_timestamp": 1615304991,
        "initiating_entity": "policy",
        "reason_admin": {"en": "Policy violation", "de": "Richtlinienverstoß"},
        "reason_user": {"en": "Your session ended."},
        "x-vendor": {"kept": true}
    });
    payload
        .as_object_mut()
        .unwrap()
        .extend(common.as_object().unwrap().clone());
    payload
}

#[test]
fn every_known_event_type_round_trips_in_a_set() {
    for event_type in EventType::KNOWN {
        for payload in [
            minimal_payload(event_type),
            with_common_claims(minimal_payload(event_type)),
        ] {
            let set = json!({
                "iss": "https://idp.example.com/",
                "jti": "24c63fb56e5a2d77a6b512616ca9fa24",
                "iat": 1615305159,
                "aud": "https://sp.example.com/caep",
                "txn": "8675309",
                "sub_id": {"format": "email", "email": "user@example.com"},
                "events": {event_type.as_uri(): payload}
            });
            let parsed = SecurityEventToken::from_json(&set.to_string())
                .unwrap_or_else(|e| panic!("{event_type}: {e}"));
            let event = parsed.events.iter().next().unwrap();
            assert_eq!(&event.event_type(), event_type);
            assert!(
                !matches!(event, EventPayload::Unknown { .. }),
                "{event_type} is typed"
            );
            assert_eq!(serde_json::to_value(&parsed).unwrap(), set, "{event_type}");
            parsed.check_ssf_profile(true).unwrap();
        }
    }
}

#[test]
fn a_known_type_missing_a_required_claim_is_an_error_naming_it() {
    let required = [
        (EventType::TokenClaimsChange, "claims"),
        (EventType::CredentialChange, "credential_type"),
        (EventType::AssuranceLevelChange, "namespace"),
        (EventType::DeviceComplianceChange, "previous_status"),
        (EventType::RiskLevelChange, "principal"),
        (EventType::CredentialCompromise, "credential_type"),
        (EventType::StreamUpdated, "status"),
    ];
    for (event_type, claim) in required {
        let mut payload = minimal_payload(&event_type);
        payload.as_object_mut().unwrap().remove(claim);
        let set =
            json!({"iss": "i", "jti": "j", "iat": 1, "events": {event_type.as_uri(): payload}});
        let err = SecurityEventToken::from_json(&set.to_string()).unwrap_err();
        assert!(err.contains(claim), "{event_type} without {claim}: {err}");
    }
}
