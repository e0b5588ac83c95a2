-- Silences (Alertmanager's model): matchers as a JSON array of {name, value, isRegex, isEqual},
-- the period [starts_at_ms, ends_at_ms), who created it and why. Expiring a silence sets
-- ends_at_ms to the time of expiry; expired silences are kept 5 days, then deleted.
-- Portable SQL: the same migration runs on SQLite and PostgreSQL.
CREATE TABLE silences (
    id TEXT NOT NULL PRIMARY KEY,
    matchers TEXT NOT NULL,
    starts_at_ms BIGINT NOT NULL,
    ends_at_ms BIGINT NOT NULL,
    created_by TEXT NOT NULL,
    comment TEXT NOT NULL,
    updated_at_ms BIGINT NOT NULL
);
