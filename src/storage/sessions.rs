//! Persistence of the session engine: local sessions and the subject keys they match on,
//! disabled subjects, the audit log and webhook notifications. A received SET and every effect
//! it has are written in one transaction ([`SessionStore::apply_received`]), so a SET is never
//! acknowledged without its effects, nor applied twice.
//!
//! On PostgreSQL every change also sends `NOTIFY ssfd_sessions` inside its transaction, so
//! other replicas refresh their in-memory copy as soon as it commits.

use async_trait::async_trait;

use super::{DbError, NewOutboxRow, ReceivedEventRow};

/// The NOTIFY channel of session changes (PostgreSQL).
pub const CHANNEL: &str = "ssfd_sessions";
/// The notification payload meaning "reload everything" (too many ids, or disabled subjects).
pub const RELOAD_ALL: &str = "*";

/// A local session, as stored. JSON columns are TEXT.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct SessionRow {
    /// The application's session id.
    pub session_id: String,
    /// The subject identifiers, a JSON array.
    pub subjects: String,
    /// The device the session runs on.
    pub device_id: Option<String>,
    /// When the user last authenticated, seconds.
    pub auth_time: Option<i64>,
    /// Authentication context class.
    pub acr: Option<String>,
    /// Authentication methods, a JSON array.
    pub amr: Option<String>,
    /// Current privilege level.
    pub privilege: Option<String>,
    /// `active`, `step_up_required`, `downgraded`, `revoked` or `expired`.
    pub state: String,
    /// Why the state is what it is.
    pub state_reason: Option<String>,
    /// The SET that caused the state.
    pub cause_jti: Option<String>,
    /// The policy rule that caused the state.
    pub cause_rule: Option<String>,
    /// The acr a step-up must reach.
    pub required_acr: Option<String>,
    /// A just-in-time elevation's privilege level.
    pub elevated_privilege: Option<String>,
    /// When the elevation ends, seconds.
    pub elevated_until: Option<i64>,
    /// When the session ends by itself, seconds.
    pub expires_at: Option<i64>,
    /// Application attributes, a JSON object (visible to policy conditions).
    pub attributes: String,
    /// Registration time.
    pub created_at: i64,
    /// Last change.
    pub updated_at: i64,
}

/// A disabled subject: sessions matching it are denied.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct DisabledSubjectRow {
    /// The normalised subject key.
    pub subject_key: String,
    /// The rule that disabled it.
    pub rule: Option<String>,
    /// The SET that caused it.
    pub jti: Option<String>,
    /// When.
    pub at: i64,
}

/// One audit entry: a step-up, denial, revocation, downgrade, elevation…
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct AuditRow {
    /// Its sequence number (0 before it is stored).
    pub id: i64,
    /// When, seconds.
    pub at: i64,
    /// The session concerned.
    pub session_id: Option<String>,
    /// The subject concerned, JSON.
    pub subject: Option<String>,
    /// The policy rule.
    pub rule: Option<String>,
    /// The causing SET's jti.
    pub jti: Option<String>,
    /// What happened.
    pub action: String,
    /// Details, JSON.
    pub detail: Option<String>,
}

/// A filter over the audit log; every field narrows it.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    /// Entries whose subject JSON contains this text (e.g. an email address).
    pub subject: Option<String>,
    /// Entries of this session.
    pub session_id: Option<String>,
    /// At or after, seconds.
    pub since: Option<i64>,
    /// Before, seconds.
    pub until: Option<i64>,
    /// Entries with a greater id (paging).
    pub after_id: Option<i64>,
    /// At most this many, oldest first.
    pub limit: i64,
}

/// A filter over sessions.
#[derive(Debug, Clone, Default)]
pub struct SessionFilter {
    /// Sessions matching this subject key.
    pub subject_key: Option<String>,
    /// Sessions in this state.
    pub state: Option<String>,
    /// At most this many, newest first.
    pub limit: i64,
}

/// A webhook notification, durable until delivered.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct NotificationRow {
    /// Its id (0 before it is stored).
    pub id: i64,
    /// Where it goes.
    pub url: String,
    /// The JSON body.
    pub body: String,
    /// Attempts so far.
    pub attempts: i32,
    /// Creation time.
    pub created_at: i64,
}

/// Everything a SET (or an API call) changes, written in one transaction.
#[derive(Debug, Clone, Default)]
pub struct Effects {
    /// Sessions with their new state (a revoked session never changes again).
    pub sessions: Vec<SessionRow>,
    /// Audit entries.
    pub audit: Vec<AuditRow>,
    /// Webhook notifications.
    pub notifications: Vec<NotificationRow>,
    /// Subjects to disable.
    pub disable: Vec<DisabledSubjectRow>,
    /// Subject keys to enable again.
    pub enable: Vec<String>,
    /// SETs forwarded downstream (hub mode), already signed.
    pub forward: Vec<NewOutboxRow>,
}

impl Effects {
    /// Whether nothing changes.
    pub fn is_empty(&self) -> bool {
        self.sessions.is_empty()
            && self.audit.is_empty()
            && self.notifications.is_empty()
            && self.disable.is_empty()
            && self.enable.is_empty()
            && self.forward.is_empty()
    }
}

/// The session engine's storage.
#[async_trait]
pub trait SessionStore: Send + Sync {
    /// Registers a session with its subject keys; `Conflict` if the id is taken.
    async fn insert_session(&self, row: &SessionRow, keys: &[String]) -> Result<(), DbError>;
    /// One session.
    async fn get_session(&self, session_id: &str) -> Result<SessionRow, DbError>;
    /// Sessions matching `filter`.
    async fn list_sessions(&self, filter: &SessionFilter) -> Result<Vec<SessionRow>, DbError>;
    /// Every session not ended (neither revoked nor expired) with its keys, for the
    /// in-memory index; or only those named.
    async fn load_sessions(
        &self,
        only: Option<&[String]>,
    ) -> Result<Vec<(SessionRow, Vec<String>)>, DbError>;
    /// Ends a session (the application logged out); `NotFound` if unknown.
    async fn delete_session(&self, session_id: &str) -> Result<(), DbError>;
    /// Writes `effects` of an API call (step-up, elevation, admin revocation).
    async fn apply_effects(&self, effects: &Effects, now: i64) -> Result<(), DbError>;
    /// Stores an accepted SET and, if it is new, its `effects`, in one transaction; true when
    /// new. A SET stored before changes nothing (replays are applied once).
    async fn apply_received(
        &self,
        event: &ReceivedEventRow,
        effects: &Effects,
        now: i64,
    ) -> Result<bool, DbError>;
    /// [`SessionStore::apply_received`] for several SETs in one transaction (group commit);
    /// one answer per SET, in order.
    async fn apply_received_batch(
        &self,
        items: &[(ReceivedEventRow, Effects)],
        now: i64,
    ) -> Result<Vec<bool>, DbError>;
    /// Marks sessions past their expiry as expired; returns their ids.
    async fn expire_sessions(&self, now: i64) -> Result<Vec<String>, DbError>;
    /// Every disabled subject.
    async fn disabled_subjects(&self) -> Result<Vec<DisabledSubjectRow>, DbError>;
    /// Audit entries matching `filter`, oldest first.
    async fn query_audit(&self, filter: &AuditFilter) -> Result<Vec<AuditRow>, DbError>;
    /// Appends audit entries (decisions, written in batches).
    async fn insert_audit(&self, rows: &[AuditRow]) -> Result<(), DbError>;
    /// Claims up to `limit` due notifications until `until`.
    async fn lease_notifications(
        &self,
        now: i64,
        until: i64,
        limit: i64,
    ) -> Result<Vec<NotificationRow>, DbError>;
    /// A notification was delivered.
    async fn notification_delivered(&self, id: i64) -> Result<(), DbError>;
    /// A notification failed: retry at `next`, or give up when `next` is `None`.
    async fn notification_failed(
        &self,
        id: i64,
        next: Option<i64>,
        error: &str,
    ) -> Result<(), DbError>;
    /// Session changes made by other processes (ids, or [`RELOAD_ALL`]); `None` where the
    /// store has no other writers to hear of (SQLite: one process owns the file).
    async fn session_changes(
        &self,
    ) -> Result<Option<tokio::sync::mpsc::UnboundedReceiver<String>>, DbError>;
}

/// The payload announcing changes of `ids` (and of disabled subjects when `all`).
pub fn change_payload(ids: &[String], all: bool) -> String {
    let joined = ids.join(",");
    // NOTIFY payloads are limited to 8000 bytes.
    if all || joined.len() > 7000 {
        RELOAD_ALL.to_owned()
    } else {
        joined
    }
}

/// Implements [`SessionStore`] for `$store`. `$notify` is the SQL announcing a change inside a
/// transaction (empty for none); `$skip_locked` locks claimed notification rows.
macro_rules! session_store {
    ($store:ty, $db:ty, notify = $notify:literal, skip_locked = $skip_locked:literal) => {
        const SESSION_COLUMNS: &str = "session_id, subjects, device_id, auth_time, acr, amr, privilege, state, \
             state_reason, cause_jti, cause_rule, required_acr, elevated_privilege, elevated_until, \
             expires_at, attributes, created_at, updated_at";

        async fn write_effects(
            tx: &mut sqlx::Transaction<'_, $db>,
            effects: &$crate::storage::sessions::Effects,
            now: i64,
        ) -> Result<(), DbError> {
            for row in &effects.sessions {
                // A revoked or expired session has ended: nothing revives it.
                sqlx::query(
                    "UPDATE sessions SET state = $2, state_reason = $3, cause_jti = $4, cause_rule = $5, \
                     required_acr = $6, privilege = $7, elevated_privilege = $8, elevated_until = $9, \
                     auth_time = $10, acr = $11, amr = $12, updated_at = $13 \
                     WHERE session_id = $1 AND state NOT IN ('revoked', 'expired')",
                )
                .bind(&row.session_id)
                .bind(&row.state)
                .bind(&row.state_reason)
                .bind(&row.cause_jti)
                .bind(&row.cause_rule)
                .bind(&row.required_acr)
                .bind(&row.privilege)
                .bind(&row.elevated_privilege)
                .bind(row.elevated_until)
                .bind(row.auth_time)
                .bind(&row.acr)
                .bind(&row.amr)
                .bind(row.updated_at)
                .execute(&mut **tx)
                .await?;
            }
            for entry in &effects.audit {
                insert_audit_row(tx, entry).await?;
            }
            for note in &effects.notifications {
                sqlx::query(
                    "INSERT INTO notifications (url, body, state, attempts, next_attempt_at, created_at) \
                     VALUES ($1, $2, 'pending', 0, $3, $3)",
                )
                .bind(&note.url)
                .bind(&note.body)
                .bind(now)
                .execute(&mut **tx)
                .await?;
            }
            for disabled in &effects.disable {
                sqlx::query(
                    "INSERT INTO disabled_subjects (subject_key, rule, jti, at) VALUES ($1, $2, $3, $4) \
                     ON CONFLICT (subject_key) DO NOTHING",
                )
                .bind(&disabled.subject_key)
                .bind(&disabled.rule)
                .bind(&disabled.jti)
                .bind(disabled.at)
                .execute(&mut **tx)
                .await?;
            }
            for key in &effects.enable {
                sqlx::query("DELETE FROM disabled_subjects WHERE subject_key = $1")
                    .bind(key)
                    .execute(&mut **tx)
                    .await?;
            }
            for row in &effects.forward {
                insert_outbox(tx, row, now).await?;
            }
            let ids: Vec<String> = effects.sessions.iter().map(|s| s.session_id.clone()).collect();
            let subjects_changed = !effects.disable.is_empty() || !effects.enable.is_empty();
            if !$notify.is_empty() && (!ids.is_empty() || subjects_changed) {
                sqlx::query($notify)
                    .bind($crate::storage::sessions::change_payload(&ids, subjects_changed))
                    .execute(&mut **tx)
                    .await?;
            }
            Ok(())
        }

        async fn insert_audit_row(
            tx: &mut sqlx::Transaction<'_, $db>,
            entry: &$crate::storage::sessions::AuditRow,
        ) -> Result<(), DbError> {
            sqlx::query(
                "INSERT INTO audit_log (at, session_id, subject, rule, jti, action, detail) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(entry.at)
            .bind(&entry.session_id)
            .bind(&entry.subject)
            .bind(&entry.rule)
            .bind(&entry.jti)
            .bind(&entry.action)
            .bind(&entry.detail)
            .execute(&mut **tx)
            .await?;
            Ok(())
        }

        #[async_trait::async_trait]
        impl $crate::storage::sessions::SessionStore for $store {
            async fn insert_session(
                &self,
                row: &$crate::storage::sessions::SessionRow,
                keys: &[String],
            ) -> Result<(), DbError> {
                let mut tx = self.pool.begin().await?;
                sqlx::query(&format!(
                    "INSERT INTO sessions ({SESSION_COLUMNS}) VALUES \
                     ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18)"
                ))
                .bind(&row.session_id)
                .bind(&row.subjects)
                .bind(&row.device_id)
                .bind(row.auth_time)
                .bind(&row.acr)
                .bind(&row.amr)
                .bind(&row.privilege)
                .bind(&row.state)
                .bind(&row.state_reason)
                .bind(&row.cause_jti)
                .bind(&row.cause_rule)
                .bind(&row.required_acr)
                .bind(&row.elevated_privilege)
                .bind(row.elevated_until)
                .bind(row.expires_at)
                .bind(&row.attributes)
                .bind(row.created_at)
                .bind(row.updated_at)
                .execute(&mut *tx)
                .await?;
                for key in keys {
                    sqlx::query(
                        "INSERT INTO session_subjects (session_id, subject_key) VALUES ($1, $2) \
                         ON CONFLICT DO NOTHING",
                    )
                    .bind(&row.session_id)
                    .bind(key)
                    .execute(&mut *tx)
                    .await?;
                }
                if !$notify.is_empty() {
                    sqlx::query($notify)
                        .bind(&row.session_id)
                        .execute(&mut *tx)
                        .await?;
                }
                tx.commit().await?;
                Ok(())
            }

            async fn get_session(
                &self,
                session_id: &str,
            ) -> Result<$crate::storage::sessions::SessionRow, DbError> {
                Ok(sqlx::query_as(&format!(
                    "SELECT {SESSION_COLUMNS} FROM sessions WHERE session_id = $1"
                ))
                .bind(session_id)
                .fetch_one(&self.pool)
                .await?)
            }

            async fn list_sessions(
                &self,
                filter: &$crate::storage::sessions::SessionFilter,
            ) -> Result<Vec<$crate::storage::sessions::SessionRow>, DbError> {
                Ok(sqlx::query_as(&format!(
                    "SELECT {SESSION_COLUMNS} FROM sessions s WHERE \
                     ($1 IS NULL OR EXISTS (SELECT 1 FROM session_subjects k \
                        WHERE k.session_id = s.session_id AND k.subject_key = $1)) \
                     AND ($2 IS NULL OR s.state = $2) \
                     ORDER BY s.created_at DESC, s.session_id LIMIT $3"
                ))
                .bind(&filter.subject_key)
                .bind(&filter.state)
                .bind(filter.limit)
                .fetch_all(&self.pool)
                .await?)
            }

            async fn load_sessions(
                &self,
                only: Option<&[String]>,
            ) -> Result<Vec<($crate::storage::sessions::SessionRow, Vec<String>)>, DbError> {
                let mut sessions: Vec<$crate::storage::sessions::SessionRow> = Vec::new();
                let mut keys: Vec<(String, String)> = Vec::new();
                match only {
                    None => {
                        sessions = sqlx::query_as(&format!(
                            "SELECT {SESSION_COLUMNS} FROM sessions \
                             WHERE state NOT IN ('revoked', 'expired')"
                        ))
                        .fetch_all(&self.pool)
                        .await?;
                        keys = sqlx::query_as(
                            "SELECT k.session_id, k.subject_key FROM session_subjects k \
                             JOIN sessions s ON s.session_id = k.session_id \
                             WHERE s.state NOT IN ('revoked', 'expired')",
                        )
                        .fetch_all(&self.pool)
                        .await?;
                    }
                    Some(ids) => {
                        for id in ids {
                            let found: Option<$crate::storage::sessions::SessionRow> =
                                sqlx::query_as(&format!(
                                    "SELECT {SESSION_COLUMNS} FROM sessions WHERE session_id = $1"
                                ))
                                .bind(id)
                                .fetch_optional(&self.pool)
                                .await?;
                            if let Some(row) = found {
                                sessions.push(row);
                                let mut own: Vec<(String, String)> = sqlx::query_as(
                                    "SELECT session_id, subject_key FROM session_subjects \
                                     WHERE session_id = $1",
                                )
                                .bind(id)
                                .fetch_all(&self.pool)
                                .await?;
                                keys.append(&mut own);
                            }
                        }
                    }
                }
                let mut by_session: std::collections::HashMap<String, Vec<String>> =
                    std::collections::HashMap::new();
                for (session_id, key) in keys {
                    by_session.entry(session_id).or_default().push(key);
                }
                Ok(sessions
                    .into_iter()
                    .map(|row| {
                        let keys = by_session.remove(&row.session_id).unwrap_or_default();
                        (row, keys)
                    })
                    .collect())
            }

            async fn delete_session(&self, session_id: &str) -> Result<(), DbError> {
                let mut tx = self.pool.begin().await?;
                let done = sqlx::query("DELETE FROM sessions WHERE session_id = $1")
                    .bind(session_id)
                    .execute(&mut *tx)
                    .await?;
                found(done.rows_affected())?;
                if !$notify.is_empty() {
                    sqlx::query($notify).bind(session_id).execute(&mut *tx).await?;
                }
                tx.commit().await?;
                Ok(())
            }

            async fn apply_effects(
                &self,
                effects: &$crate::storage::sessions::Effects,
                now: i64,
            ) -> Result<(), DbError> {
                let mut tx = self.pool.begin().await?;
                write_effects(&mut tx, effects, now).await?;
                tx.commit().await?;
                Ok(())
            }

            async fn apply_received(
                &self,
                event: &ReceivedEventRow,
                effects: &$crate::storage::sessions::Effects,
                now: i64,
            ) -> Result<bool, DbError> {
                let items = [(event.clone(), effects.clone())];
                Ok(self.apply_received_batch(&items, now).await?[0])
            }

            async fn apply_received_batch(
                &self,
                items: &[(ReceivedEventRow, $crate::storage::sessions::Effects)],
                now: i64,
            ) -> Result<Vec<bool>, DbError> {
                let mut tx = self.pool.begin().await?;
                let mut stored = Vec::with_capacity(items.len());
                for (event, effects) in items {
                    let done = sqlx::query(
                        "INSERT INTO received_events (upstream_id, iss, jti, token, claims, event_type, arrived_at, outcome) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (iss, jti) DO NOTHING",
                    )
                    .bind(&event.upstream_id)
                    .bind(&event.iss)
                    .bind(&event.jti)
                    .bind(&event.token)
                    .bind(&event.claims)
                    .bind(&event.event_type)
                    .bind(event.arrived_at)
                    .bind(&event.outcome)
                    .execute(&mut *tx)
                    .await?;
                    // A replay changes nothing: its effects were applied the first time.
                    let new = done.rows_affected() == 1;
                    if new {
                        write_effects(&mut tx, effects, now).await?;
                    }
                    stored.push(new);
                }
                tx.commit().await?;
                Ok(stored)
            }

            async fn expire_sessions(&self, now: i64) -> Result<Vec<String>, DbError> {
                let mut tx = self.pool.begin().await?;
                let ids: Vec<(String,)> = sqlx::query_as(
                    "UPDATE sessions SET state = 'expired', state_reason = 'the session expired', updated_at = $1 \
                     WHERE expires_at IS NOT NULL AND expires_at <= $1 AND state NOT IN ('revoked', 'expired') \
                     RETURNING session_id",
                )
                .bind(now)
                .fetch_all(&mut *tx)
                .await?;
                let ids: Vec<String> = ids.into_iter().map(|(id,)| id).collect();
                if !$notify.is_empty() && !ids.is_empty() {
                    sqlx::query($notify)
                        .bind($crate::storage::sessions::change_payload(&ids, false))
                        .execute(&mut *tx)
                        .await?;
                }
                tx.commit().await?;
                Ok(ids)
            }

            async fn disabled_subjects(
                &self,
            ) -> Result<Vec<$crate::storage::sessions::DisabledSubjectRow>, DbError> {
                Ok(sqlx::query_as(
                    "SELECT subject_key, rule, jti, at FROM disabled_subjects ORDER BY at",
                )
                .fetch_all(&self.pool)
                .await?)
            }

            async fn query_audit(
                &self,
                filter: &$crate::storage::sessions::AuditFilter,
            ) -> Result<Vec<$crate::storage::sessions::AuditRow>, DbError> {
                let subject = filter.subject.as_ref().map(|s| format!("%{s}%"));
                Ok(sqlx::query_as(
                    "SELECT id, at, session_id, subject, rule, jti, action, detail FROM audit_log \
                     WHERE ($1 IS NULL OR subject LIKE $1) AND ($2 IS NULL OR session_id = $2) \
                     AND ($3 IS NULL OR at >= $3) AND ($4 IS NULL OR at < $4) \
                     AND ($5 IS NULL OR id > $5) ORDER BY id LIMIT $6",
                )
                .bind(subject)
                .bind(&filter.session_id)
                .bind(filter.since)
                .bind(filter.until)
                .bind(filter.after_id)
                .bind(filter.limit)
                .fetch_all(&self.pool)
                .await?)
            }

            async fn insert_audit(
                &self,
                rows: &[$crate::storage::sessions::AuditRow],
            ) -> Result<(), DbError> {
                let mut tx = self.pool.begin().await?;
                for row in rows {
                    insert_audit_row(&mut tx, row).await?;
                }
                tx.commit().await?;
                Ok(())
            }

            async fn lease_notifications(
                &self,
                now: i64,
                until: i64,
                limit: i64,
            ) -> Result<Vec<$crate::storage::sessions::NotificationRow>, DbError> {
                // The claim is the next attempt moved to `until`: a crashed worker's
                // notifications come due again by themselves.
                Ok(sqlx::query_as(concat!(
                    "UPDATE notifications SET next_attempt_at = $1 WHERE id IN (\
                     SELECT id FROM notifications WHERE state = 'pending' AND next_attempt_at <= $2 \
                     ORDER BY id LIMIT $3 ", $skip_locked, ") \
                     RETURNING id, url, body, attempts, created_at"
                ))
                .bind(until)
                .bind(now)
                .bind(limit)
                .fetch_all(&self.pool)
                .await?)
            }

            async fn notification_delivered(&self, id: i64) -> Result<(), DbError> {
                sqlx::query("DELETE FROM notifications WHERE id = $1")
                    .bind(id)
                    .execute(&self.pool)
                    .await?;
                Ok(())
            }

            async fn notification_failed(
                &self,
                id: i64,
                next: Option<i64>,
                error: &str,
            ) -> Result<(), DbError> {
                let state = if next.is_some() { "pending" } else { "dead" };
                sqlx::query(
                    "UPDATE notifications SET state = $2, attempts = attempts + 1, \
                     next_attempt_at = COALESCE($3, next_attempt_at), last_error = $4 WHERE id = $1",
                )
                .bind(id)
                .bind(state)
                .bind(next)
                .bind(error)
                .execute(&self.pool)
                .await?;
                Ok(())
            }

            async fn session_changes(
                &self,
            ) -> Result<Option<tokio::sync::mpsc::UnboundedReceiver<String>>, DbError> {
                self.listen_session_changes().await
            }
        }
    };
}
