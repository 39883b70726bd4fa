//! The session engine: an in-memory index of live sessions (the decision hot path reads only
//! memory), the policy in force, and the planning of what a received event does.
//!
//! Every change is written to the store first and applied to memory after its commit, so a
//! decision never shows an effect that could still be rolled back; an event's effect is visible
//! here as soon as the receiver acknowledges its SET. Replicas sharing PostgreSQL hear of each
//! other's changes by `LISTEN/NOTIFY` and reload the sessions named.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tokio::sync::{mpsc, Notify};

use super::model::{self, Session, SessionState};
use super::policy::{Action, Facts, Policy, Rule, DEFAULT_POLICY};
use crate::config::SessionsConfig;
use crate::http::{ApiError, AppState};
use crate::protocol::{EventPayload, Events, SecurityEventToken, SubjectId, Txn};
use crate::storage::sessions::{
    AuditRow, DisabledSubjectRow, Effects, NotificationRow, SessionRow, RELOAD_ALL,
};
use crate::storage::{DbError, NewOutboxRow, ReceivedEventRow, SharedStore};

/// How often ended-by-time sessions are marked expired in the store.
const EXPIRY_SWEEP: Duration = Duration::from_secs(30);
/// Most decision audit entries written in one transaction.
const AUDIT_BATCH: usize = 512;

/// A decision's verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Go on.
    Allow,
    /// Authenticate again first.
    StepUp,
    /// Stop.
    Deny,
}

impl Verdict {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Allow => "allow",
            Self::StepUp => "step_up",
            Self::Deny => "deny",
        }
    }
}

/// How sensitive the action the application is about to perform is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Sensitivity {
    /// Reading non-sensitive data: allowed even on a downgraded session.
    Low,
    /// The default.
    #[default]
    Normal,
    /// Changing money, credentials, roles…: needs a recent authentication and full privilege.
    High,
}

/// `POST /sessions/{id}/evaluate`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EvaluateRequest {
    /// The action's sensitivity.
    #[serde(default)]
    pub sensitivity: Sensitivity,
    /// The privilege level the action needs.
    #[serde(default)]
    pub privilege: Option<String>,
}

/// The answer to an evaluation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Decision {
    /// allow, step_up or deny.
    pub decision: Verdict,
    /// The session's state.
    pub state: SessionState,
    /// Why, in words.
    pub reason: String,
    /// The policy rule behind the session's state, if any.
    pub rule: Option<String>,
    /// The SET behind the session's state, if any.
    pub jti: Option<String>,
    /// For step_up: the acr to reach, if the rule named one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub required_acr: Option<String>,
    /// The privilege in force.
    pub privilege: Option<String>,
}

#[derive(Debug, Default)]
struct Index {
    sessions: HashMap<String, Arc<Session>>,
    by_key: HashMap<String, HashSet<String>>,
    by_bare: HashMap<String, HashSet<String>>,
    disabled: HashSet<String>,
}

impl Index {
    fn put(&mut self, session: Session) {
        self.remove(&session.row.session_id);
        let id = session.row.session_id.clone();
        for key in &session.keys {
            self.by_key
                .entry(key.clone())
                .or_default()
                .insert(id.clone());
            self.by_bare
                .entry(model::bare_of(key).to_owned())
                .or_default()
                .insert(id.clone());
        }
        self.sessions.insert(id, Arc::new(session));
    }

    fn remove(&mut self, session_id: &str) {
        let Some(old) = self.sessions.remove(session_id) else {
            return;
        };
        for key in &old.keys {
            for (map, key) in [
                (&mut self.by_key, key.as_str()),
                (&mut self.by_bare, model::bare_of(key)),
            ] {
                if let Some(ids) = map.get_mut(key) {
                    ids.remove(session_id);
                    if ids.is_empty() {
                        map.remove(key);
                    }
                }
            }
        }
    }

    /// The sessions an event about `subject` concerns (see `model`).
    fn matching(&self, subject: &SubjectId) -> Vec<Arc<Session>> {
        let mut ids: HashSet<&String> = HashSet::new();
        match subject {
            SubjectId::Complex(complex) => {
                let members: Vec<(&str, Vec<String>)> = complex
                    .members
                    .iter()
                    .map(|(role, member)| (role.as_str(), model::bare_keys(member)))
                    .collect();
                for (role, keys) in &members {
                    for key in keys {
                        if let Some(found) = self.by_key.get(&format!("{role}|{key}")) {
                            ids.extend(found);
                        }
                    }
                }
                // Every member the session has a role for must match; others are wildcards.
                ids.retain(|id| {
                    let session = &self.sessions[*id];
                    members.iter().all(|(role, keys)| {
                        let own: Vec<&str> = session
                            .keys
                            .iter()
                            .filter(|k| model::role_of(k) == *role)
                            .map(|k| model::bare_of(k))
                            .collect();
                        own.is_empty() || keys.iter().any(|k| own.contains(&k.as_str()))
                    })
                });
            }
            simple => {
                for key in model::bare_keys(simple) {
                    if let Some(found) = self.by_bare.get(&key) {
                        ids.extend(found);
                    }
                }
            }
        }
        let mut sessions: Vec<Arc<Session>> = ids
            .into_iter()
            .map(|id| self.sessions[id].clone())
            .collect();
        sessions.sort_by(|a, b| a.row.session_id.cmp(&b.row.session_id));
        sessions
    }

    fn is_disabled(&self, session: &Session) -> bool {
        !self.disabled.is_empty()
            && session
                .keys
                .iter()
                .any(|k| self.disabled.contains(model::bare_of(k)))
    }
}

/// The engine. One per process, in `AppState`.
#[derive(Debug)]
pub struct Engine {
    index: RwLock<Index>,
    policy: RwLock<Arc<Policy>>,
    /// The policy file and its last modification time, when one is configured.
    policy_file: Mutex<Option<(PathBuf, Option<SystemTime>)>>,
    config: SessionsConfig,
    audit_queue: Mutex<Option<mpsc::UnboundedSender<AuditRow>>>,
    /// Wakes the webhook worker.
    pub webhook_signal: Notify,
}

impl Engine {
    /// An engine with the built-in default policy; [`Engine::start`] loads the configured one.
    pub fn new(config: &SessionsConfig) -> Self {
        let policy = Policy::parse(DEFAULT_POLICY, &config.privilege_levels)
            .expect("the built-in policy is valid (tested)");
        Self {
            index: RwLock::default(),
            policy: RwLock::new(Arc::new(policy)),
            policy_file: Mutex::new(None),
            config: config.clone(),
            audit_queue: Mutex::new(None),
            webhook_signal: Notify::new(),
        }
    }

    /// Loads the configured policy and every live session, and starts the background tasks:
    /// policy reloads, change notifications from other replicas, expiry, decision audit and
    /// webhooks. Fails when the policy file is invalid.
    pub async fn start(
        state: &AppState,
        shutdown: tokio::sync::watch::Receiver<bool>,
    ) -> Result<(), String> {
        let engine = &state.sessions;
        if !engine.config.policy_file.is_empty() {
            let path = PathBuf::from(&engine.config.policy_file);
            *engine.policy_file.lock().expect("not poisoned") = Some((path, None));
            engine.reload_policy(true)?;
        }
        engine
            .reload_all(&state.store)
            .await
            .map_err(|e| format!("cannot load sessions: {e}"))?;
        let (sender, receiver) = mpsc::unbounded_channel();
        *engine.audit_queue.lock().expect("not poisoned") = Some(sender);
        tokio::spawn(write_audit(state.store.clone(), receiver));
        tokio::spawn(follow_changes(state.clone()));
        tokio::spawn(housekeeping(state.clone(), shutdown.clone()));
        tokio::spawn(super::webhook::run(state.clone(), shutdown));
        Ok(())
    }

    /// The policy in force.
    pub fn policy(&self) -> Arc<Policy> {
        self.policy.read().expect("not poisoned").clone()
    }

    /// Reads the policy file again if it changed (or at once with `force`); keeps the policy
    /// in force if the new one is invalid. Returns the number of rules in force.
    pub fn reload_policy(&self, force: bool) -> Result<usize, String> {
        let mut file = self.policy_file.lock().expect("not poisoned");
        let Some((path, seen)) = file.as_mut() else {
            return Ok(self.policy().rules.len());
        };
        let modified = std::fs::metadata(&*path).and_then(|m| m.modified()).ok();
        if !force && seen.is_some() && *seen == modified {
            return Ok(self.policy().rules.len());
        }
        let text = std::fs::read_to_string(&*path)
            .map_err(|e| format!("cannot read the policy {}: {e}", path.display()))?;
        let policy = Policy::parse(&text, &self.config.privilege_levels)
            .map_err(|e| format!("{}: {e}", path.display()))?;
        *seen = modified;
        let rules = policy.rules.len();
        *self.policy.write().expect("not poisoned") = Arc::new(policy);
        tracing::info!(path = %path.display(), rules, "policy loaded");
        Ok(rules)
    }

    async fn reload_all(&self, store: &SharedStore) -> Result<(), DbError> {
        let sessions = store.load_sessions(None).await?;
        let disabled = store.disabled_subjects().await?;
        let mut index = Index::default();
        for (row, keys) in sessions {
            index.put(Session::from_row(row, keys));
        }
        index.disabled = disabled.into_iter().map(|d| d.subject_key).collect();
        *self.index.write().expect("not poisoned") = index;
        Ok(())
    }

    /// Reloads the named sessions from the store (another process changed them).
    async fn reload(&self, store: &SharedStore, ids: &[String]) -> Result<(), DbError> {
        let loaded = store.load_sessions(Some(ids)).await?;
        let mut index = self.index.write().expect("not poisoned");
        for id in ids {
            index.remove(id);
        }
        for (row, keys) in loaded {
            index.put(Session::from_row(row, keys));
        }
        Ok(())
    }

    /// The session, from memory, or from the store if this process has not seen it yet.
    pub async fn session(
        &self,
        store: &SharedStore,
        session_id: &str,
    ) -> Result<Option<Arc<Session>>, DbError> {
        if let Some(found) = self.cached(session_id) {
            return Ok(Some(found));
        }
        self.reload(store, &[session_id.to_owned()]).await?;
        Ok(self.cached(session_id))
    }

    fn cached(&self, session_id: &str) -> Option<Arc<Session>> {
        self.index
            .read()
            .expect("not poisoned")
            .sessions
            .get(session_id)
            .cloned()
    }

    /// Registers a new session.
    pub async fn register(
        &self,
        state: &AppState,
        new: model::NewSession,
    ) -> Result<Arc<Session>, ApiError> {
        let now = state.clock.now();
        let row = self.new_row(new, now)?;
        let subjects: Vec<SubjectId> =
            serde_json::from_str(&row.subjects).map_err(|e| ApiError::Internal(e.to_string()))?;
        let keys = model::session_keys(&row.session_id, &subjects, row.device_id.as_deref());
        state
            .store
            .insert_session(&row, &keys)
            .await
            .map_err(|e| match e {
                DbError::Conflict(_) => ApiError::Conflict(format!(
                    "session `{}` is already registered",
                    row.session_id
                )),
                other => other.into(),
            })?;
        let session = Session::from_row(row, keys);
        let id = session.row.session_id.clone();
        self.index.write().expect("not poisoned").put(session);
        Ok(self.cached(&id).expect("just stored"))
    }

    fn new_row(&self, new: model::NewSession, now: i64) -> Result<SessionRow, ApiError> {
        let bad = |m: String| ApiError::BadRequest(m);
        let session_id = new.session_id.unwrap_or_else(crate::ids::new_id);
        check_name("session_id", &session_id)?;
        if new.subjects.is_empty() || new.subjects.len() > model::MAX_SUBJECTS {
            return Err(bad(format!(
                "subjects: between 1 and {} subject identifiers are required",
                model::MAX_SUBJECTS
            )));
        }
        for (position, subject) in new.subjects.iter().enumerate() {
            if model::role_keys(subject).is_empty() {
                return Err(bad(format!(
                    "subjects[{position}]: names nobody (an empty complex subject)"
                )));
            }
        }
        for (field, value) in [
            ("device_id", &new.device_id),
            ("acr", &new.acr),
            ("privilege", &new.privilege),
        ] {
            if let Some(value) = value {
                check_name(field, value)?;
            }
        }
        if new.amr.len() > 16 || new.amr.iter().any(|m| m.is_empty() || m.len() > 64) {
            return Err(bad("amr: at most 16 methods of 1 to 64 bytes".to_owned()));
        }
        let levels = &self.config.privilege_levels;
        let privilege = match new.privilege {
            Some(level) if !levels.contains(&level) => {
                return Err(bad(format!(
                    "privilege: `{level}` is not one of {levels:?}"
                )))
            }
            Some(level) => level,
            None => levels
                .get(levels.len().saturating_sub(2).min(1))
                .cloned()
                .unwrap_or_default(),
        };
        if new.auth_time.is_some_and(|t| t > now + 60) {
            return Err(bad("auth_time: in the future".to_owned()));
        }
        if new.expires_at.is_some_and(|t| t <= now) {
            return Err(bad("expires_at: already past".to_owned()));
        }
        let attributes = Value::Object(new.attributes).to_string();
        if attributes.len() > model::MAX_ATTRIBUTES {
            return Err(bad(format!(
                "attributes: at most {} bytes",
                model::MAX_ATTRIBUTES
            )));
        }
        Ok(SessionRow {
            session_id,
            subjects: serde_json::to_string(&new.subjects)
                .map_err(|e| ApiError::Internal(e.to_string()))?,
            device_id: new.device_id,
            auth_time: Some(new.auth_time.unwrap_or(now)),
            acr: new.acr,
            amr: Some(json!(new.amr).to_string()),
            privilege: Some(privilege),
            state: SessionState::Active.as_str().to_owned(),
            state_reason: None,
            cause_jti: None,
            cause_rule: None,
            required_acr: None,
            elevated_privilege: None,
            elevated_until: None,
            expires_at: new.expires_at,
            attributes,
            created_at: now,
            updated_at: now,
        })
    }

    /// Forgets a session the application ended.
    pub async fn unregister(&self, state: &AppState, session_id: &str) -> Result<(), ApiError> {
        state.store.delete_session(session_id).await?;
        self.index.write().expect("not poisoned").remove(session_id);
        Ok(())
    }

    /// Answers whether `session` may go on with the action described by `request`.
    pub fn decide(&self, session: &Session, request: &EvaluateRequest, now: i64) -> Decision {
        let row = &session.row;
        let privilege = session.effective_privilege(now).map(str::to_owned);
        let decision = |verdict: Verdict, state: SessionState, reason: String| Decision {
            decision: verdict,
            state,
            reason,
            rule: row.cause_rule.clone(),
            jti: row.cause_jti.clone(),
            required_acr: None,
            privilege: privilege.clone(),
        };
        let reason_or = |fallback: &str| {
            row.state_reason
                .clone()
                .unwrap_or_else(|| fallback.to_owned())
        };
        match session.state {
            SessionState::Revoked => {
                return decision(
                    Verdict::Deny,
                    session.state,
                    reason_or("the session was revoked"),
                )
            }
            SessionState::Expired => {
                return decision(
                    Verdict::Deny,
                    session.state,
                    reason_or("the session expired"),
                )
            }
            _ => {}
        }
        if row.expires_at.is_some_and(|at| at <= now) {
            return decision(
                Verdict::Deny,
                SessionState::Expired,
                "the session expired".to_owned(),
            );
        }
        if self
            .index
            .read()
            .expect("not poisoned")
            .is_disabled(session)
        {
            return decision(
                Verdict::Deny,
                session.state,
                "the subject is disabled".to_owned(),
            );
        }
        if session.state == SessionState::StepUpRequired {
            let mut answer = decision(
                Verdict::StepUp,
                session.state,
                reason_or("re-authentication is required"),
            );
            answer.required_acr = row.required_acr.clone();
            return answer;
        }
        if let Some(needed) = &request.privilege {
            let levels = &self.config.privilege_levels;
            let rank = |level: Option<&str>| level.and_then(|l| levels.iter().position(|x| x == l));
            if rank(privilege.as_deref()) < rank(Some(needed)) || rank(Some(needed)).is_none() {
                return decision(
                    Verdict::Deny,
                    session.state,
                    format!("the action needs privilege `{needed}`"),
                );
            }
        }
        if request.sensitivity == Sensitivity::High {
            if session.state == SessionState::Downgraded {
                return decision(
                    Verdict::Deny,
                    session.state,
                    reason_or("the session is downgraded"),
                );
            }
            let too_old = row
                .auth_time
                .is_none_or(|t| now - t > self.config.sensitive_max_auth_age_secs);
            if too_old {
                return decision(
                    Verdict::StepUp,
                    session.state,
                    "a sensitive action needs a recent authentication".to_owned(),
                );
            }
        }
        let reason = if session.state == SessionState::Downgraded {
            reason_or("the session is downgraded")
        } else {
            "no event affects the session".to_owned()
        };
        decision(Verdict::Allow, session.state, reason)
    }

    /// Records a decision that was not `allow` in the audit log (batched, off the hot path).
    pub fn audit_decision(&self, session: &Session, decision: &Decision, now: i64) {
        if decision.decision == Verdict::Allow {
            return;
        }
        let entry = AuditRow {
            id: 0,
            at: now,
            session_id: Some(session.row.session_id.clone()),
            subject: Some(session.row.subjects.clone()),
            rule: decision.rule.clone(),
            jti: decision.jti.clone(),
            action: decision.decision.as_str().to_owned(),
            detail: Some(json!({"reason": decision.reason}).to_string()),
        };
        if let Some(queue) = &*self.audit_queue.lock().expect("not poisoned") {
            let _ = queue.send(entry);
        }
    }

    /// Stores an API-driven change of one session (step-up, elevation, admin revocation) with
    /// its audit entry, then shows it in memory.
    pub async fn save(
        &self,
        state: &AppState,
        session: Session,
        audit: AuditRow,
    ) -> Result<Arc<Session>, ApiError> {
        let effects = Effects {
            sessions: vec![session.row.clone()],
            audit: vec![audit],
            ..Effects::default()
        };
        state
            .store
            .apply_effects(&effects, state.clock.now())
            .await?;
        let id = session.row.session_id.clone();
        self.index.write().expect("not poisoned").put(session);
        Ok(self.cached(&id).expect("just stored"))
    }

    /// The hand-off from the receiver: stores `row` (an accepted SET) and, if it is new, every
    /// effect the policy gives it, in one transaction; then shows the effects in memory.
    /// Returns false for a SET stored before (nothing is applied twice).
    pub async fn apply_received(
        &self,
        state: &AppState,
        row: &mut ReceivedEventRow,
        set: &SecurityEventToken,
        event: &EventPayload,
    ) -> Result<bool, DbError> {
        let now = state.clock.now();
        let effects = if event.event_type().is_ssf_control() {
            Effects::default()
        } else {
            self.plan(state, row, set, event, now).await
        };
        row.outcome = if effects.is_empty() {
            "no_action".to_owned()
        } else {
            "applied".to_owned()
        };
        let stored = state
            .received_writer
            .store(row.clone(), effects.clone(), now)
            .await?;
        if !stored {
            return Ok(false);
        }
        self.show(&effects);
        if !effects.notifications.is_empty() {
            self.webhook_signal.notify_one();
        }
        if !effects.forward.is_empty() {
            state.outbox_signal.notify_waiters();
        }
        Ok(true)
    }

    fn show(&self, effects: &Effects) {
        let mut index = self.index.write().expect("not poisoned");
        for row in &effects.sessions {
            let Some(old) = index.sessions.get(&row.session_id).cloned() else {
                continue;
            };
            if old.state.is_ended() {
                continue; // the store refused to change it too
            }
            index.put(Session::from_row(row.clone(), old.keys.clone()));
        }
        for disabled in &effects.disable {
            index.disabled.insert(disabled.subject_key.clone());
        }
        for key in &effects.enable {
            index.disabled.remove(key);
        }
    }

    /// What the policy does with one event.
    async fn plan(
        &self,
        state: &AppState,
        row: &ReceivedEventRow,
        set: &SecurityEventToken,
        event: &EventPayload,
        now: i64,
    ) -> Effects {
        let policy = self.policy();
        let uri = event.event_type().as_uri().to_owned();
        let rules: Vec<&Rule> = policy.rules_for(&uri).collect();
        let mut effects = Effects::default();
        if rules.is_empty() {
            return effects;
        }
        let claims: Value = serde_json::from_str(&row.claims).unwrap_or(Value::Null);
        let event_value = claims["events"][uri.as_str()].clone();
        let subject_value = claims.get("sub_id").cloned().unwrap_or(Value::Null);
        let set_value =
            json!({"iss": set.iss, "jti": set.jti, "iat": set.iat, "txn": claims.get("txn")});
        let Some(subject) = set.sub_id.clone() else {
            return effects;
        };
        let subject_text = subject_value.to_string();
        let cause = Cause {
            jti: &set.jti,
            event_type: &uri,
            subject: &subject_text,
            now,
        };
        let none = Value::Null;
        let base = Facts {
            event: &event_value,
            event_type: &uri,
            subject: &subject_value,
            set: &set_value,
            session: &none,
            now,
        };
        // Session actions, for each session the event concerns.
        let matched = self.index.read().expect("not poisoned").matching(&subject);
        for original in matched {
            if original.state.is_ended() {
                continue;
            }
            let session_value = original.policy_value(now);
            let mut session = (*original).clone();
            let mut changed = false;
            for rule in &rules {
                if !rule.actions.iter().any(|a| a.is_per_session())
                    || !rule.holds(&Facts {
                        session: &session_value,
                        ..base
                    })
                {
                    continue;
                }
                for action in rule.actions.iter().filter(|a| a.is_per_session()) {
                    if self.act(&mut session, rule, *action, &cause) {
                        changed = true;
                        effects
                            .audit
                            .push(cause.audit(Some(&session), rule, action.as_str()));
                        self.notify(&mut effects, &cause, Some(&session), rule, *action, None);
                    }
                }
            }
            if changed {
                session.row.updated_at = now;
                effects.sessions.push(session.row);
            }
        }
        // Event actions, once.
        for rule in &rules {
            let event_actions: Vec<Action> = rule
                .actions
                .iter()
                .copied()
                .filter(|a| !a.is_per_session())
                .collect();
            if event_actions.is_empty() || !rule.holds(&base) {
                continue;
            }
            for action in event_actions {
                match action {
                    Action::DisableSubject => {
                        for key in subject_keys(&subject) {
                            effects.disable.push(DisabledSubjectRow {
                                subject_key: key,
                                rule: Some(rule.name.clone()),
                                jti: Some(set.jti.clone()),
                                at: now,
                            });
                        }
                    }
                    Action::EnableSubject => effects.enable.extend(subject_keys(&subject)),
                    Action::Forward => match forward(state, set, &subject, event).await {
                        Ok(rows) => effects.forward.extend(rows),
                        Err(error) => {
                            tracing::warn!(%error, rule = %rule.name, "cannot forward the event");
                            continue;
                        }
                    },
                    Action::Notify | Action::Record => {}
                    _ => continue,
                }
                effects.audit.push(cause.audit(None, rule, action.as_str()));
                if action != Action::Record {
                    self.notify(&mut effects, &cause, None, rule, action, Some(&event_value));
                }
            }
        }
        effects
    }

    /// Applies one session action; true when it changed the session.
    fn act(&self, session: &mut Session, rule: &Rule, action: Action, cause: &Cause<'_>) -> bool {
        let row = &mut session.row;
        let reason = rule
            .reason
            .clone()
            .unwrap_or_else(|| format!("{} by rule `{}`", action.as_str(), rule.name));
        let mark = |session_state: Option<SessionState>, row: &mut SessionRow| {
            if let Some(new_state) = session_state {
                row.state = new_state.as_str().to_owned();
            }
            row.state_reason = Some(reason.clone());
            row.cause_jti = Some(cause.jti.to_owned());
            row.cause_rule = Some(rule.name.clone());
        };
        match action {
            Action::Revoke => {
                mark(Some(SessionState::Revoked), row);
                session.state = SessionState::Revoked;
                true
            }
            Action::StepUp if session.state < SessionState::StepUpRequired => {
                mark(Some(SessionState::StepUpRequired), row);
                row.required_acr = rule.step_up_acr.clone();
                session.state = SessionState::StepUpRequired;
                true
            }
            Action::Downgrade if session.state < SessionState::Revoked => {
                let lowest = self.config.privilege_levels.first().cloned();
                let target = rule.downgrade_to.clone().or(lowest);
                if session.state == SessionState::Downgraded && row.privilege == target {
                    return false;
                }
                row.privilege = target;
                if session.state == SessionState::Active {
                    mark(Some(SessionState::Downgraded), row);
                    session.state = SessionState::Downgraded;
                } else {
                    mark(None, row);
                }
                true
            }
            Action::EndElevation if row.elevated_privilege.is_some() => {
                row.elevated_privilege = None;
                row.elevated_until = None;
                true
            }
            _ => false,
        }
    }

    /// Queues a webhook notification of `action`, when a webhook is configured.
    fn notify(
        &self,
        effects: &mut Effects,
        cause: &Cause<'_>,
        session: Option<&Session>,
        rule: &Rule,
        action: Action,
        event: Option<&Value>,
    ) {
        if self.config.webhook_url.is_empty() {
            return;
        }
        let mut body = json!({
            "id": crate::ids::new_id(),
            "action": action.as_str(),
            "at": cause.now,
            "rule": rule.name,
            "reason": rule.reason,
            "jti": cause.jti,
            "event_type": cause.event_type,
            "subject": serde_json::from_str::<Value>(cause.subject).unwrap_or(Value::Null),
        });
        if let Some(session) = session {
            body["session_id"] = json!(session.row.session_id);
            body["state"] = json!(session.state.as_str());
        }
        if let Some(event) = event {
            body["event"] = event.clone();
        }
        effects.notifications.push(NotificationRow {
            id: 0,
            url: self.config.webhook_url.clone(),
            body: body.to_string(),
            attempts: 0,
            created_at: cause.now,
        });
    }
}

/// What caused a change: for audit entries and notifications.
struct Cause<'a> {
    jti: &'a str,
    event_type: &'a str,
    subject: &'a str,
    now: i64,
}

impl Cause<'_> {
    fn audit(&self, session: Option<&Session>, rule: &Rule, action: &str) -> AuditRow {
        AuditRow {
            id: 0,
            at: self.now,
            session_id: session.map(|s| s.row.session_id.clone()),
            subject: Some(self.subject.to_owned()),
            rule: Some(rule.name.clone()),
            jti: Some(self.jti.to_owned()),
            action: action.to_owned(),
            detail: Some(
                json!({
                    "event_type": self.event_type,
                    "state": session.map(|s| s.state.as_str()),
                    "reason": rule.reason,
                })
                .to_string(),
            ),
        }
    }
}

/// The keys disabled with a subject: a complex subject's user, else every member's.
fn subject_keys(subject: &SubjectId) -> Vec<String> {
    match subject {
        SubjectId::Complex(complex) => match complex.user() {
            Some(user) => model::bare_keys(user),
            None => complex
                .members
                .values()
                .flat_map(model::bare_keys)
                .collect(),
        },
        simple => model::bare_keys(simple),
    }
}

/// The SETs forwarding `event` to ssfd's own receivers (hub mode), signed, not yet stored.
async fn forward(
    state: &AppState,
    set: &SecurityEventToken,
    subject: &SubjectId,
    event: &EventPayload,
) -> Result<Vec<NewOutboxRow>, ApiError> {
    let events = Events(vec![event.clone()]);
    let intake = crate::transmitter::fanout::EventIntake {
        sub_id: subject.clone(),
        events,
        txn: set.txn.as_ref().map(|txn| match txn {
            Txn::Text(text) => text.clone(),
            Txn::Number(number) => number.to_string(),
        }),
        toe: set.toe,
    };
    let (_, outgoing) = crate::transmitter::intake::plan(state, intake).await?;
    Ok(outgoing
        .into_iter()
        .map(|o| NewOutboxRow {
            stream_id: o.stream_id,
            jti: o.jti,
            token: o.token,
            held: o.held,
            bypass_status: false,
        })
        .collect())
}

fn check_name(field: &str, value: &str) -> Result<(), ApiError> {
    if value.is_empty() || value.len() > model::MAX_NAME || value.chars().any(char::is_control) {
        return Err(ApiError::BadRequest(format!(
            "{field}: 1 to {} printable characters",
            model::MAX_NAME
        )));
    }
    Ok(())
}

/// Writes decision audit entries in batches.
async fn write_audit(store: SharedStore, mut queue: mpsc::UnboundedReceiver<AuditRow>) {
    while let Some(first) = queue.recv().await {
        let mut batch = vec![first];
        while batch.len() < AUDIT_BATCH {
            match queue.try_recv() {
                Ok(next) => batch.push(next),
                Err(_) => break,
            }
        }
        if let Err(error) = store.insert_audit(&batch).await {
            tracing::error!(%error, count = batch.len(), "cannot write decision audit entries");
        }
    }
}

/// Applies other replicas' changes to memory.
async fn follow_changes(state: AppState) {
    let mut changes = match state.store.session_changes().await {
        Ok(Some(changes)) => changes,
        Ok(None) => return,
        Err(error) => {
            tracing::error!(%error, "cannot listen for session changes of other replicas");
            return;
        }
    };
    while let Some(payload) = changes.recv().await {
        let engine = &state.sessions;
        let result = if payload == RELOAD_ALL {
            engine.reload_all(&state.store).await
        } else {
            let ids: Vec<String> = payload.split(',').map(str::to_owned).collect();
            engine.reload(&state.store, &ids).await
        };
        if let Err(error) = result {
            tracing::warn!(%error, "cannot apply a session change; reloading everything");
            let _ = engine.reload_all(&state.store).await;
        }
    }
}

/// Policy reloads (file changes, SIGHUP) and expiry.
async fn housekeeping(state: AppState, mut shutdown: tokio::sync::watch::Receiver<bool>) {
    let engine = &state.sessions;
    let reload_every = match engine.config.policy_reload_secs {
        0 => Duration::from_secs(3600),
        secs => Duration::from_secs(secs),
    };
    let mut reload = tokio::time::interval(reload_every);
    let mut expiry = tokio::time::interval(EXPIRY_SWEEP);
    #[cfg(unix)]
    let mut hangup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
    loop {
        #[cfg(unix)]
        let hung_up = async {
            match hangup.as_mut() {
                Some(signal) => signal.recv().await,
                None => std::future::pending().await,
            }
        };
        #[cfg(not(unix))]
        let hung_up = std::future::pending::<Option<()>>();
        tokio::select! {
            _ = reload.tick(), if engine.config.policy_reload_secs > 0 => {
                if let Err(error) = engine.reload_policy(false) {
                    tracing::error!(%error, "policy not reloaded; the previous one stays in force");
                }
            }
            _ = hung_up => {
                if let Err(error) = engine.reload_policy(true) {
                    tracing::error!(%error, "policy not reloaded; the previous one stays in force");
                }
            }
            _ = expiry.tick() => {
                match state.store.expire_sessions(state.clock.now()).await {
                    Ok(ids) if !ids.is_empty() => {
                        if let Err(error) = engine.reload(&state.store, &ids).await {
                            tracing::warn!(%error, "cannot reload expired sessions");
                        }
                    }
                    Ok(_) => {}
                    Err(error) => tracing::warn!(%error, "cannot expire sessions"),
                }
            }
            _ = shutdown.changed() => break,
        }
    }
}
