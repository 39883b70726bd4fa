-- Receiver stream health (issue 3): the last check of each upstream stream, for admins.
CREATE TABLE upstream_health (
    upstream_id TEXT PRIMARY KEY REFERENCES upstreams (id) ON DELETE CASCADE,
    checked_at  BIGINT NOT NULL,
    ok_at       BIGINT,
    error       TEXT
);

CREATE INDEX received_events_arrived ON received_events (arrived_at);
