-- One row per agent process run: when it started, when it was last seen alive (written every
-- evaluation round) and when it stopped cleanly. The gap between one run's last_seen_ms and the
-- next run's started_at_ms is time the agent was down (no data, never good events).
-- Portable SQL: the same migration runs on SQLite and PostgreSQL.
CREATE TABLE agent_runs (
    agent_id TEXT NOT NULL,
    started_at_ms BIGINT NOT NULL,
    version TEXT NOT NULL,
    last_seen_ms BIGINT NOT NULL,
    stopped_at_ms BIGINT,
    PRIMARY KEY (agent_id, started_at_ms)
);
