-- Per (receiver, group key): how many times the dispatcher forgot what the receiver was told
-- (everything resolved, or everything muted). Part of each notification's idempotency key, so
-- that the next incident of the same alerts is a new notification, also after a restart.
-- Portable SQL: the same migration runs on SQLite and PostgreSQL.
CREATE TABLE notify_episodes (
    receiver TEXT NOT NULL,
    group_key TEXT NOT NULL,
    episode BIGINT NOT NULL,
    PRIMARY KEY (receiver, group_key)
);
