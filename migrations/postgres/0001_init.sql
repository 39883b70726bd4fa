-- ssfd schema, PostgreSQL. Times are seconds since the epoch (BIGINT); ids are TEXT; JSON is
-- stored as TEXT (the same in both backends). migrations/sqlite/0001_init.sql is its twin.

CREATE TABLE signing_keys (
    seq         BIGSERIAL PRIMARY KEY,
    kid         TEXT NOT NULL UNIQUE,
    alg         TEXT NOT NULL,
    private_jwk TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    retires_at  BIGINT
);

-- Receivers registered as OAuth clients.
CREATE TABLE clients (
    client_id   TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    secret_hash TEXT NOT NULL,
    scopes      TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    revoked_at  BIGINT
);

-- Static bearer credentials: receiver tokens, publisher and admin credentials.
CREATE TABLE credentials (
    id         TEXT PRIMARY KEY,
    kind       TEXT NOT NULL CHECK (kind IN ('receiver', 'publisher', 'admin')),
    name       TEXT NOT NULL,
    token_hash TEXT NOT NULL UNIQUE,
    scopes     TEXT NOT NULL,
    client_id  TEXT REFERENCES clients (client_id),
    created_at BIGINT NOT NULL,
    revoked_at BIGINT
);

-- Transmitter streams (SSF 1.0 §8.1.1).
CREATE TABLE streams (
    stream_id                 TEXT PRIMARY KEY,
    client_id                 TEXT NOT NULL,
    aud                       TEXT NOT NULL,
    events_requested          TEXT,
    events_delivered          TEXT NOT NULL,
    delivery_method           TEXT NOT NULL,
    endpoint_url              TEXT,
    authorization_header      TEXT,
    description               TEXT,
    status                    TEXT NOT NULL CHECK (status IN ('enabled', 'paused', 'disabled')),
    status_reason             TEXT,
    min_verification_interval BIGINT NOT NULL,
    last_verification_at      BIGINT,
    created_at                BIGINT NOT NULL,
    updated_at                BIGINT NOT NULL
);
CREATE INDEX streams_client ON streams (client_id);

-- Subjects added to (mode 'added') or removed from (mode 'removed', under default_subjects
-- ALL) a stream (SSF 1.0 §8.1.3).
CREATE TABLE stream_subjects (
    stream_id   TEXT NOT NULL REFERENCES streams (stream_id) ON DELETE CASCADE,
    subject_key TEXT NOT NULL,
    subject     TEXT NOT NULL,
    mode        TEXT NOT NULL CHECK (mode IN ('added', 'removed')),
    verified    BOOLEAN NOT NULL,
    changed_at  BIGINT NOT NULL,
    PRIMARY KEY (stream_id, subject_key)
);

-- Signed SETs waiting for delivery. A row leaves the table when delivered or acknowledged;
-- 'held' rows wait for a paused stream; 'dead' and 'rejected' rows are kept for the admin.
CREATE TABLE outbox (
    id              BIGSERIAL PRIMARY KEY,
    stream_id       TEXT NOT NULL REFERENCES streams (stream_id) ON DELETE CASCADE,
    jti             TEXT NOT NULL,
    token           TEXT NOT NULL,
    state           TEXT NOT NULL CHECK (state IN ('pending', 'held', 'dead', 'rejected')),
    bypass_status   BOOLEAN NOT NULL DEFAULT FALSE,
    attempts        INTEGER NOT NULL DEFAULT 0,
    created_at      BIGINT NOT NULL,
    next_attempt_at BIGINT NOT NULL,
    leased_until    BIGINT,
    lease_owner     TEXT,
    last_error      TEXT,
    UNIQUE (stream_id, jti)
);
CREATE INDEX outbox_due ON outbox (state, next_attempt_at);
CREATE INDEX outbox_stream ON outbox (stream_id, state, id);

CREATE TABLE stream_delivery_stats (
    stream_id       TEXT PRIMARY KEY REFERENCES streams (stream_id) ON DELETE CASCADE,
    delivered       BIGINT NOT NULL DEFAULT 0,
    failed          BIGINT NOT NULL DEFAULT 0,
    dead            BIGINT NOT NULL DEFAULT 0,
    last_success_at BIGINT,
    last_failure_at BIGINT,
    last_error      TEXT
);

-- Receiver role: upstream transmitters ssfd subscribes to.
CREATE TABLE upstreams (
    id                 TEXT PRIMARY KEY,
    issuer             TEXT NOT NULL,
    metadata           TEXT,
    auth               TEXT NOT NULL,
    delivery_method    TEXT NOT NULL,
    events_requested   TEXT NOT NULL,
    remote_stream_id   TEXT,
    poll_url           TEXT,
    audience           TEXT NOT NULL,
    jwks               TEXT,
    push_token_hash    TEXT,
    status             TEXT NOT NULL,
    verification_state TEXT,
    verified_at        BIGINT,
    created_at         BIGINT NOT NULL,
    updated_at         BIGINT NOT NULL
);

-- Every SET accepted from an upstream, raw and parsed, deduplicated on (iss, jti).
CREATE TABLE received_events (
    id          BIGSERIAL PRIMARY KEY,
    upstream_id TEXT REFERENCES upstreams (id) ON DELETE SET NULL,
    iss         TEXT NOT NULL,
    jti         TEXT NOT NULL,
    token       TEXT NOT NULL,
    claims      TEXT NOT NULL,
    event_type  TEXT NOT NULL,
    arrived_at  BIGINT NOT NULL,
    outcome     TEXT NOT NULL,
    UNIQUE (iss, jti)
);

-- Local sessions registered by applications, and the subject keys they match on.
CREATE TABLE sessions (
    session_id   TEXT PRIMARY KEY,
    subjects     TEXT NOT NULL,
    device_id    TEXT,
    auth_time    BIGINT,
    acr          TEXT,
    amr          TEXT,
    privilege    TEXT,
    state        TEXT NOT NULL CHECK (state IN ('active', 'step_up_required', 'downgraded', 'revoked', 'expired')),
    state_reason TEXT,
    cause_jti    TEXT,
    expires_at   BIGINT,
    created_at   BIGINT NOT NULL,
    updated_at   BIGINT NOT NULL
);
CREATE TABLE session_subjects (
    session_id  TEXT NOT NULL REFERENCES sessions (session_id) ON DELETE CASCADE,
    subject_key TEXT NOT NULL,
    PRIMARY KEY (session_id, subject_key)
);
CREATE INDEX session_subjects_key ON session_subjects (subject_key);

-- Every step-up, denial, revocation, downgrade and elevation.
CREATE TABLE audit_log (
    id         BIGSERIAL PRIMARY KEY,
    at         BIGINT NOT NULL,
    session_id TEXT,
    subject    TEXT,
    rule       TEXT,
    jti        TEXT,
    action     TEXT NOT NULL,
    detail     TEXT
);
CREATE INDEX audit_log_at ON audit_log (at);
CREATE INDEX audit_log_session ON audit_log (session_id, at);

-- Webhook notifications to applications, durable until delivered.
CREATE TABLE notifications (
    id              BIGSERIAL PRIMARY KEY,
    url             TEXT NOT NULL,
    body            TEXT NOT NULL,
    state           TEXT NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL,
    last_error      TEXT,
    created_at      BIGINT NOT NULL
);
