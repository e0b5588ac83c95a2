-- SLO event buckets, keyed by (slo, group, agent, resolution, start) so that several agents can
-- write partial buckets of the same SLO to one shared ledger and an aggregator can sum them.
-- resolution_s is 60 (minute rows, kept 7 hours) or 3600 (hour rows, kept for the SLO window).
-- grp is the JSON array of the group_by label values ("[]" without grouping).
CREATE TABLE slo_buckets (
    slo TEXT NOT NULL,
    grp TEXT NOT NULL,
    agent_id TEXT NOT NULL,
    resolution_s BIGINT NOT NULL,
    start_idx BIGINT NOT NULL,
    bad DOUBLE PRECISION NOT NULL,
    total DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (slo, grp, agent_id, resolution_s, start_idx)
);

-- Completed calendar periods: the compliance history.
CREATE TABLE slo_periods (
    slo TEXT NOT NULL,
    grp TEXT NOT NULL,
    start_ms BIGINT NOT NULL,
    end_ms BIGINT NOT NULL,
    name TEXT NOT NULL,
    good DOUBLE PRECISION NOT NULL,
    total DOUBLE PRECISION NOT NULL,
    objective DOUBLE PRECISION NOT NULL,
    met BIGINT NOT NULL,
    budget_used DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (slo, grp, start_ms)
);
