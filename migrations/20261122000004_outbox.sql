-- The notification outbox (agent/notify/outbox.rs). Every notification is written here before
-- it is sent: one outbox_notifications row per notification (its idempotency key is unique, so
-- the same (group, state change) is never enqueued twice), one outbox_deliveries row per
-- integration of its receiver (state pending -> sent | failed | superseded | skipped, with
-- attempts, next attempt and last error), and one outbox_alerts row per alert in it (the
-- fired/resolved history per alert fingerprint). Rows older than the history retention are
-- pruned, pending ones never.
-- Portable SQL: the same migration runs on SQLite and PostgreSQL.
CREATE TABLE outbox_notifications (
    idempotency_key TEXT NOT NULL PRIMARY KEY,
    receiver TEXT NOT NULL,
    group_key TEXT NOT NULL,
    status TEXT NOT NULL,
    payload TEXT NOT NULL,
    created_ms BIGINT NOT NULL
);
CREATE INDEX outbox_notifications_created ON outbox_notifications (created_ms);

CREATE TABLE outbox_deliveries (
    delivery_key TEXT NOT NULL PRIMARY KEY,
    idempotency_key TEXT NOT NULL,
    receiver TEXT NOT NULL,
    integration TEXT NOT NULL,
    group_key TEXT NOT NULL,
    created_ms BIGINT NOT NULL,
    state TEXT NOT NULL,
    attempts BIGINT NOT NULL,
    next_attempt_ms BIGINT NOT NULL,
    last_attempt_ms BIGINT,
    sent_ms BIGINT,
    last_error TEXT
);
CREATE INDEX outbox_deliveries_state ON outbox_deliveries (state, next_attempt_ms);
CREATE INDEX outbox_deliveries_key ON outbox_deliveries (idempotency_key);
CREATE INDEX outbox_deliveries_created ON outbox_deliveries (created_ms);

CREATE TABLE outbox_alerts (
    idempotency_key TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    alertname TEXT NOT NULL,
    labels TEXT NOT NULL,
    status TEXT NOT NULL,
    starts_ms BIGINT NOT NULL,
    ends_ms BIGINT,
    created_ms BIGINT NOT NULL,
    PRIMARY KEY (idempotency_key, fingerprint)
);
CREATE INDEX outbox_alerts_fingerprint ON outbox_alerts (fingerprint, created_ms);
CREATE INDEX outbox_alerts_created ON outbox_alerts (created_ms);
