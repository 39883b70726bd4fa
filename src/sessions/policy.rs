//! Policy as code: rules mapping received events to session actions, read from TOML, with
//! optional CEL conditions. See config/policy.example.toml (also the built-in default) for the
//! format. A policy is checked whole at load: an invalid one is refused with a message naming
//! the rule and the position, and the policy in force stays.

use std::sync::Arc;

use serde::Deserialize;
use serde_json::Value;

use crate::protocol::events::EventType;

/// The built-in default policy.
pub const DEFAULT_POLICY: &str = include_str!("../../config/policy.example.toml");

/// Largest policy file, in bytes.
pub const MAX_POLICY_BYTES: usize = 1024 * 1024;

/// Variables a condition may use.
const VARIABLES: [&str; 6] = ["event", "event_type", "subject", "set", "session", "now"];

/// What a rule does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// End the matching sessions.
    Revoke,
    /// Require re-authentication.
    StepUp,
    /// Lower the privilege.
    Downgrade,
    /// End just-in-time elevations.
    EndElevation,
    /// Deny every session of the subject, present and future.
    DisableSubject,
    /// Undo `disable_subject`.
    EnableSubject,
    /// Send the event to the application webhook.
    Notify,
    /// Re-emit the event downstream (hub mode).
    Forward,
    /// Write the audit log only.
    Record,
}

impl Action {
    /// Whether the action applies to each matching session (rather than once per event).
    pub fn is_per_session(self) -> bool {
        matches!(
            self,
            Self::Revoke | Self::StepUp | Self::Downgrade | Self::EndElevation
        )
    }

    /// The name used in the audit log.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Revoke => "revoke",
            Self::StepUp => "step_up",
            Self::Downgrade => "downgrade",
            Self::EndElevation => "end_elevation",
            Self::DisableSubject => "disable_subject",
            Self::EnableSubject => "enable_subject",
            Self::Notify => "notify",
            Self::Forward => "forward",
            Self::Record => "record",
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PolicyFile {
    #[serde(default)]
    rules: Vec<RuleFile>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleFile {
    name: String,
    events: Vec<String>,
    #[serde(default)]
    when: Option<String>,
    actions: Vec<Action>,
    #[serde(default)]
    step_up_acr: Option<String>,
    #[serde(default)]
    downgrade_to: Option<String>,
    #[serde(default)]
    reason: Option<String>,
}

/// A compiled CEL condition.
#[derive(Debug, Clone)]
pub struct Condition {
    /// As written.
    pub source: String,
    program: Arc<cel::Program>,
    uses_session: bool,
}

/// One rule, checked.
#[derive(Debug, Clone)]
pub struct Rule {
    /// Its unique name.
    pub name: String,
    /// Event-type URIs it applies to; empty means every type.
    pub events: Vec<String>,
    /// Its condition.
    pub when: Option<Condition>,
    /// What it does.
    pub actions: Vec<Action>,
    /// The acr a step-up must reach.
    pub step_up_acr: Option<String>,
    /// The privilege a downgrade lowers to.
    pub downgrade_to: Option<String>,
    /// Why, for the session and the audit log.
    pub reason: Option<String>,
}

/// A checked policy.
#[derive(Debug, Clone, Default)]
pub struct Policy {
    /// The rules, in file order.
    pub rules: Vec<Rule>,
}

/// What a condition sees.
#[derive(Debug, Clone, Copy)]
pub struct Facts<'a> {
    /// The event's claims.
    pub event: &'a Value,
    /// Its type URI.
    pub event_type: &'a str,
    /// The SET's `sub_id`.
    pub subject: &'a Value,
    /// iss, jti, iat, txn.
    pub set: &'a Value,
    /// The session, or null for the event-level actions.
    pub session: &'a Value,
    /// Now, seconds.
    pub now: i64,
}

impl Policy {
    /// Parses and checks a policy; `privilege_levels` are the configured levels.
    pub fn parse(text: &str, privilege_levels: &[String]) -> Result<Self, String> {
        if text.len() > MAX_POLICY_BYTES {
            return Err(format!(
                "the policy is larger than {MAX_POLICY_BYTES} bytes"
            ));
        }
        let file: PolicyFile = toml::from_str(text).map_err(|e| {
            let position = e
                .span()
                .map(|span| {
                    let (line, column) = line_column(text, span.start);
                    format!(" at line {line}, column {column}")
                })
                .unwrap_or_default();
            format!("invalid policy{position}: {}", e.message())
        })?;
        let mut rules: Vec<Rule> = Vec::with_capacity(file.rules.len());
        for (index, rule) in file.rules.into_iter().enumerate() {
            let label = format!("rule {} (`{}`)", index + 1, rule.name);
            if rule.name.trim().is_empty() {
                return Err(format!("rule {}: name must not be empty", index + 1));
            }
            if rules.iter().any(|r| r.name == rule.name) {
                return Err(format!("{label}: the name is used by an earlier rule"));
            }
            if rule.actions.is_empty() {
                return Err(format!("{label}: actions must not be empty"));
            }
            let mut events = Vec::new();
            for (position, name) in rule.events.iter().enumerate() {
                match resolve_event(name) {
                    Some(None) => {}
                    Some(Some(uri)) => events.push(uri),
                    None => {
                        return Err(format!(
                            "{label}: events[{position}]: unknown event type `{name}` \
                             (use caep:<name>, risc:<name>, a full URI, or *)"
                        ))
                    }
                }
            }
            if rule.events.is_empty() {
                return Err(format!(
                    "{label}: events must not be empty (use [\"*\"] for all)"
                ));
            }
            if rule.events.iter().any(|e| e == "*") {
                events.clear();
            }
            let when = match rule.when {
                None => None,
                Some(source) => Some(compile(&source).map_err(|e| format!("{label}: when: {e}"))?),
            };
            if let Some(level) = &rule.downgrade_to {
                if !privilege_levels.contains(level) {
                    return Err(format!(
                        "{label}: downgrade_to: `{level}` is not one of sessions.privilege_levels {privilege_levels:?}"
                    ));
                }
            }
            rules.push(Rule {
                name: rule.name,
                events,
                when,
                actions: rule.actions,
                step_up_acr: rule.step_up_acr,
                downgrade_to: rule.downgrade_to,
                reason: rule.reason,
            });
        }
        Ok(Self { rules })
    }

    /// The rules that apply to events of type `uri`.
    pub fn rules_for<'a>(&'a self, uri: &'a str) -> impl Iterator<Item = &'a Rule> + 'a {
        self.rules
            .iter()
            .filter(move |rule| rule.events.is_empty() || rule.events.iter().any(|e| e == uri))
    }
}

impl Rule {
    /// Whether the rule's condition holds for `facts` (no condition: always). A condition
    /// that fails to evaluate (a missing member, a type error) does not hold; the error is
    /// logged, never fatal.
    pub fn holds(&self, facts: &Facts<'_>) -> bool {
        let Some(condition) = &self.when else {
            return true;
        };
        match condition.evaluate(facts) {
            Ok(result) => result,
            Err(error) => {
                tracing::warn!(rule = %self.name, %error, "policy condition failed; the rule does not apply");
                false
            }
        }
    }

    /// Whether the condition looks at the session.
    pub fn uses_session(&self) -> bool {
        self.when.as_ref().is_some_and(|c| c.uses_session)
    }
}

impl Condition {
    fn evaluate(&self, facts: &Facts<'_>) -> Result<bool, String> {
        let mut context = cel::Context::default();
        let bind = |value: &Value| cel::to_value(value).map_err(|e| e.to_string());
        context.add_variable_from_value("event", bind(facts.event)?);
        context.add_variable_from_value("event_type", facts.event_type.to_owned());
        context.add_variable_from_value("subject", bind(facts.subject)?);
        context.add_variable_from_value("set", bind(facts.set)?);
        context.add_variable_from_value("session", bind(facts.session)?);
        context.add_variable_from_value("now", facts.now);
        match self.program.execute(&context) {
            Ok(cel::Value::Bool(result)) => Ok(result),
            Ok(other) => Err(format!("the condition gave {other:?}, not a boolean")),
            Err(error) => Err(error.to_string()),
        }
    }
}

fn compile(source: &str) -> Result<Condition, String> {
    if source.len() > 4096 {
        return Err("a condition must be at most 4096 bytes".to_owned());
    }
    let program = cel::Program::compile(source).map_err(|errors| {
        errors
            .errors
            .iter()
            .map(|e| format!("line {}, column {}: {}", e.pos.0, e.pos.1 + 1, e.msg))
            .collect::<Vec<_>>()
            .join("; ")
    })?;
    let references = program.references();
    if let Some(unknown) = references
        .variables()
        .into_iter()
        .find(|name| !VARIABLES.contains(name))
    {
        return Err(format!(
            "unknown variable `{unknown}` (known: {})",
            VARIABLES.join(", ")
        ));
    }
    let uses_session = references.has_variable("session");
    Ok(Condition {
        source: source.to_owned(),
        program: Arc::new(program),
        uses_session,
    })
}

/// `Some(Some(uri))` for an event name, `Some(None)` for `*`, `None` if unknown.
fn resolve_event(name: &str) -> Option<Option<String>> {
    if name == "*" {
        return Some(None);
    }
    let uri = if let Some(short) = name.strip_prefix("caep:") {
        format!("https://schemas.openid.net/secevent/caep/event-type/{short}")
    } else if let Some(short) = name.strip_prefix("risc:") {
        format!("https://schemas.openid.net/secevent/risc/event-type/{short}")
    } else {
        name.to_owned()
    };
    match EventType::from(uri.as_str()) {
        // A full URI of a type ssfd does not know is allowed (proprietary events); a short
        // name must be a known one, so that a typo is caught.
        EventType::Other(_) if name.starts_with("caep:") || name.starts_with("risc:") => None,
        EventType::Other(_) if url::Url::parse(name).is_err() => None,
        _ => Some(Some(uri)),
    }
}

fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
    (line, column)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn levels() -> Vec<String> {
        ["read-only", "user", "admin"].map(String::from).to_vec()
    }

    #[test]
    fn the_default_policy_loads_and_covers_every_caep_and_risc_type() {
        let policy = Policy::parse(DEFAULT_POLICY, &levels()).unwrap();
        for event_type in EventType::KNOWN {
            if event_type.is_ssf_control() {
                continue;
            }
            assert!(
                policy.rules_for(event_type.as_uri()).next().is_some(),
                "no default rule for {event_type}"
            );
        }
    }

    #[test]
    fn invalid_policies_name_the_rule_and_the_position() {
        let bad_cel = "[[rules]]\nname = \"x\"\nevents = [\"caep:session-revoked\"]\nwhen = \"event.a ==\"\nactions = [\"revoke\"]\n";
        let error = Policy::parse(bad_cel, &levels()).unwrap_err();
        assert!(error.starts_with("rule 1 (`x`): when: line"), "{error}");

        let unknown_action = "[[rules]]\nname = \"x\"\nevents = [\"*\"]\nactions = [\"explode\"]\n";
        let error = Policy::parse(unknown_action, &levels()).unwrap_err();
        assert!(error.contains("line 4"), "{error}");

        let unknown_event =
            "[[rules]]\nname = \"y\"\nevents = [\"caep:sesion-revoked\"]\nactions = [\"revoke\"]\n";
        let error = Policy::parse(unknown_event, &levels()).unwrap_err();
        assert!(error.contains("rule 1 (`y`): events[0]"), "{error}");

        let unknown_variable = "[[rules]]\nname = \"z\"\nevents = [\"*\"]\nwhen = \"user.x == 1\"\nactions = [\"record\"]\n";
        let error = Policy::parse(unknown_variable, &levels()).unwrap_err();
        assert!(error.contains("unknown variable `user`"), "{error}");

        let duplicate = "[[rules]]\nname = \"a\"\nevents = [\"*\"]\nactions = [\"record\"]\n[[rules]]\nname = \"a\"\nevents = [\"*\"]\nactions = [\"record\"]\n";
        let error = Policy::parse(duplicate, &levels()).unwrap_err();
        assert!(error.starts_with("rule 2 (`a`)"), "{error}");

        let bad_level = "[[rules]]\nname = \"d\"\nevents = [\"*\"]\nactions = [\"downgrade\"]\ndowngrade_to = \"root\"\n";
        assert!(Policy::parse(bad_level, &levels())
            .unwrap_err()
            .contains("downgrade_to"));
    }

    #[test]
    fn conditions_see_the_event_and_the_session() {
        let text = "[[rules]]\nname = \"c\"\nevents = [\"caep:device-compliance-change\"]\n\
                    when = 'event.current_status == \"not-compliant\" && session.privilege == \"admin\"'\n\
                    actions = [\"downgrade\"]\n";
        let policy = Policy::parse(text, &levels()).unwrap();
        let rule = &policy.rules[0];
        assert!(rule.uses_session());
        let event =
            serde_json::json!({"current_status": "not-compliant", "previous_status": "compliant"});
        let admin = serde_json::json!({"privilege": "admin"});
        let user = serde_json::json!({"privilege": "user"});
        let facts = |session| Facts {
            event: &event,
            event_type: "x",
            subject: &Value::Null,
            set: &Value::Null,
            session,
            now: 0,
        };
        assert!(rule.holds(&facts(&admin)));
        assert!(!rule.holds(&facts(&user)));
        // A missing member makes the condition fail, and the rule not apply.
        assert!(!rule.holds(&facts(&Value::Null)));
    }
}
