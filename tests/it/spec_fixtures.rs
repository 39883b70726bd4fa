//! Every example of the specifications, retyped under spec-fixtures/, parses into the typed
//! model and serialises back to the same JSON value (style rule R23). INDEX.toml says which
//! model each file is an example of.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use ssfd::protocol::{
    AddSubjectRequest, CreateStreamRequest, EventPayload, Events, JoseHeader, PollRequest,
    PollResponse, PushError, RemoveSubjectRequest, SecurityEventToken, StreamConfiguration,
    StreamStatus, StreamUpdateRequest, SubjectId, TransmitterMetadata, VerificationRequest,
};

#[derive(Debug, Deserialize)]
struct Index {
    fixture: Vec<Fixture>,
}

#[derive(Debug, Deserialize)]
#[allow(dead_code)] // every field is part of the index format; the test reads some of them
struct Fixture {
    file: String,
    source: String,
    revision: Option<String>,
    section: String,
    title: String,
    kind: String,
    event_type: Option<String>,
    deviation: Option<String>,
    expect: Option<String>,
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("spec-fixtures")
}

fn index() -> Index {
    let text =
        std::fs::read_to_string(root().join("INDEX.toml")).expect("spec-fixtures/INDEX.toml");
    toml::from_str(&text).expect("INDEX.toml parses")
}

fn files_under(dir: &Path, base: &Path, out: &mut BTreeSet<String>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files_under(&path, base, out);
        } else {
            let relative = path
                .strip_prefix(base)
                .unwrap()
                .to_string_lossy()
                .replace('\\', "/");
            if relative != "INDEX.toml" && !relative.ends_with(".md") {
                out.insert(relative);
            }
        }
    }
}

/// Parses `json` as `T` and checks that serialising gives the same JSON value back.
fn round_trip<T: DeserializeOwned + Serialize>(json: &str) -> Result<(), String> {
    let typed: T = serde_json::from_str(json).map_err(|e| format!("does not parse: {e}"))?;
    same_value(json, &serde_json::to_value(&typed).unwrap())
}

fn same_value(original: &str, back: &Value) -> Result<(), String> {
    let original: Value = serde_json::from_str(original).unwrap();
    if &original == back {
        Ok(())
    } else {
        Err(format!(
            "round trip changed the value:\n  in:  {original}\n  out: {back}"
        ))
    }
}

fn check_set(json: &str) -> Result<(), String> {
    let set = SecurityEventToken::from_json(json)?;
    same_value(json, &serde_json::to_value(&set).unwrap())
}

fn check_event(event_type: &str, json: &str) -> Result<(), String> {
    let raw = serde_json::value::RawValue::from_string(json.to_owned()).unwrap();
    let payload = EventPayload::parse(event_type, &raw)?;
    if matches!(payload, EventPayload::Unknown { .. }) {
        return Err(format!("{event_type} is not a known event type"));
    }
    let back = serde_json::to_value(Events::single(payload)).unwrap();
    same_value(json, &back[event_type])
}

fn check_jwt_claims(json: &str) -> Result<(), String> {
    let mut claims: serde_json::Map<String, Value> =
        serde_json::from_str(json).map_err(|e| e.to_string())?;
    if let Some(sub_id) = claims.remove("sub_id") {
        let subject = SubjectId::from_value(sub_id)?;
        claims.insert("sub_id".to_owned(), subject.to_value());
    }
    same_value(json, &Value::Object(claims))
}

fn check_compact(text: &str) -> Result<(), String> {
    let parts: Vec<&str> = text.trim().split('.').collect();
    if parts.len() != 3 {
        return Err(format!("{} parts, not 3", parts.len()));
    }
    let decode = |part: &str| {
        URL_SAFE_NO_PAD
            .decode(part.trim_end_matches('='))
            .map_err(|e| format!("base64url: {e}"))
            .and_then(|bytes| String::from_utf8(bytes).map_err(|e| e.to_string()))
    };
    let header = decode(parts[0])?;
    round_trip::<JoseHeader>(&header)?;
    let payload = decode(parts[1])?;
    let claims: Value = serde_json::from_str(&payload).map_err(|e| e.to_string())?;
    if claims.get("events").is_some() {
        check_set(&payload)?;
    }
    Ok(())
}

fn check(fixture: &Fixture, text: &str) -> Result<(), String> {
    match fixture.kind.as_str() {
        "subject" => round_trip::<SubjectId>(text),
        "set" => check_set(text),
        "jwt-claims" => check_jwt_claims(text),
        "jose-header" => round_trip::<JoseHeader>(text),
        "event" => {
            let event_type = fixture
                .event_type
                .as_deref()
                .ok_or("kind event needs event_type")?;
            check_event(event_type, text)
        }
        "metadata" => round_trip::<TransmitterMetadata>(text),
        "stream-config" => round_trip::<StreamConfiguration>(text),
        "stream-config-list" => round_trip::<Vec<StreamConfiguration>>(text),
        "stream-create-request" => round_trip::<CreateStreamRequest>(text),
        "stream-update-request" | "stream-replace-request" => {
            round_trip::<StreamUpdateRequest>(text)
        }
        "stream-status" => round_trip::<StreamStatus>(text),
        "add-subject-request" => round_trip::<AddSubjectRequest>(text),
        "remove-subject-request" => round_trip::<RemoveSubjectRequest>(text),
        "verification-request" => round_trip::<VerificationRequest>(text),
        "push-error" => round_trip::<PushError>(text),
        "poll-request" => round_trip::<PollRequest>(text),
        "poll-response" => round_trip::<PollResponse>(text),
        "compact-jws" => check_compact(text),
        "invalid-json" => match serde_json::from_str::<Value>(text) {
            Ok(_) => Err("kind invalid-json, but the text parses".to_owned()),
            Err(_) => Ok(()),
        },
        "other" => serde_json::from_str::<Value>(text)
            .map(drop)
            .map_err(|e| e.to_string()),
        kind => Err(format!("unknown kind `{kind}`")),
    }
}

#[test]
fn index_lists_every_fixture_file_exactly_once() {
    let index = index();
    let mut listed = BTreeSet::new();
    for fixture in &index.fixture {
        assert!(
            listed.insert(fixture.file.clone()),
            "{} is listed twice",
            fixture.file
        );
        assert!(
            !fixture.section.is_empty() && !fixture.title.is_empty(),
            "{}",
            fixture.file
        );
        assert!(
            [
                "SSF 1.0",
                "CAEP 1.0",
                "RISC 1.0",
                "CAEP Interop 1.0",
                "RFC 8417",
                "RFC 8935",
                "RFC 8936",
                "RFC 9493"
            ]
            .contains(&fixture.source.as_str()),
            "{}: unknown source {}",
            fixture.file,
            fixture.source
        );
    }
    let mut present = BTreeSet::new();
    files_under(&root(), &root(), &mut present);
    let unlisted: Vec<_> = present.difference(&listed).collect();
    let missing: Vec<_> = listed.difference(&present).collect();
    assert!(
        unlisted.is_empty(),
        "files missing from INDEX.toml: {unlisted:?}"
    );
    assert!(
        missing.is_empty(),
        "INDEX.toml names absent files: {missing:?}"
    );
    assert!(
        index.fixture.len() > 50,
        "only {} fixtures",
        index.fixture.len()
    );
}

#[test]
fn every_fixture_parses_into_the_typed_model_and_round_trips() {
    let mut failures = Vec::new();
    for fixture in index().fixture {
        let text = std::fs::read_to_string(root().join(&fixture.file)).unwrap();
        match (check(&fixture, &text), fixture.expect.as_deref()) {
            (Ok(()), None) | (Err(_), Some("error")) => {}
            (Err(problem), None) => {
                failures.push(format!("{} ({}): {problem}", fixture.file, fixture.kind));
            }
            (Ok(()), Some("error")) => failures.push(format!(
                "{}: expected to be refused ({}), but it was accepted",
                fixture.file,
                fixture.deviation.as_deref().unwrap_or("no reason recorded")
            )),
            (_, Some(other)) => {
                failures.push(format!("{}: unknown expect `{other}`", fixture.file))
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} fixtures fail:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn every_known_event_type_has_a_fixture() {
    let mut covered = BTreeSet::new();
    for fixture in index().fixture {
        let text = std::fs::read_to_string(root().join(&fixture.file)).unwrap();
        match fixture.kind.as_str() {
            "set" => {
                if let Ok(set) = SecurityEventToken::from_json(&text) {
                    covered.extend(set.events.iter().map(|e| e.event_type()));
                }
            }
            "event" => covered
                .insert(fixture.event_type.unwrap().as_str().into())
                .then_some(())
                .map_or((), drop),
            _ => {}
        }
    }
    let uncovered: Vec<_> = ssfd::protocol::EventType::KNOWN
        .iter()
        .filter(|t| !covered.contains(*t))
        .map(|t| t.as_uri())
        .collect();
    // The specs print no example for these RISC types; every other type must have one.
    let without_examples = [
        "account-purged",
        "account-enabled",
        "opt-in",
        "opt-out-initiated",
        "opt-out-cancelled",
        "opt-out-effective",
        "recovery-activated",
        "recovery-information-changed",
        "sessions-revoked",
        "stream-updated",
    ];
    let unexpected: Vec<_> = uncovered
        .iter()
        .filter(|uri| !without_examples.iter().any(|suffix| uri.ends_with(suffix)))
        .collect();
    assert!(
        unexpected.is_empty(),
        "event types without a fixture: {unexpected:?}"
    );
}
