-- Session enforcement (issue 4): application credentials, step-up targets, just-in-time
-- elevation, and the rule behind a session's state. migrations/postgres/0002_sessions.sql is its twin.

-- SQLite cannot change a CHECK constraint in place: rebuild the table.
CREATE TABLE credentials_new (
    id         TEXT PRIMARY KEY,
    kind       TEXT NOT NULL CHECK (kind IN ('receiver', 'publisher', 'admin', 'application')),
    name       TEXT NOT NULL,
    token_hash TEXT NOT NULL UNIQUE,
    scopes     TEXT NOT NULL,
    client_id  TEXT REFERENCES clients (client_id),
    created_at BIGINT NOT NULL,
    revoked_at BIGINT
);
INSERT INTO credentials_new SELECT id, kind, name, token_hash, scopes, client_id, created_at, revoked_at FROM credentials;
DROP TABLE credentials;
ALTER TABLE credentials_new RENAME TO credentials;

ALTER TABLE sessions ADD COLUMN required_acr TEXT;
ALTER TABLE sessions ADD COLUMN elevated_privilege TEXT;
ALTER TABLE sessions ADD COLUMN elevated_until BIGINT;
ALTER TABLE sessions ADD COLUMN cause_rule TEXT;
ALTER TABLE sessions ADD COLUMN attributes TEXT NOT NULL DEFAULT '{}';

-- Subjects an admin or a policy disabled: new sessions for them are denied.
CREATE TABLE disabled_subjects (
    subject_key TEXT PRIMARY KEY,
    rule        TEXT,
    jti         TEXT,
    at          BIGINT NOT NULL
);

CREATE INDEX audit_log_subject ON audit_log (subject, at);
CREATE INDEX notifications_due ON notifications (state, next_attempt_at);
