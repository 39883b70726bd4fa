-- Session enforcement (issue 4): application credentials, step-up targets, just-in-time
-- elevation, and the rule behind a session's state. migrations/sqlite/0002_sessions.sql is its twin.

ALTER TABLE credentials DROP CONSTRAINT IF EXISTS credentials_kind_check;
ALTER TABLE credentials ADD CONSTRAINT credentials_kind_check
    CHECK (kind IN ('receiver', 'publisher', 'admin', 'application'));

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
