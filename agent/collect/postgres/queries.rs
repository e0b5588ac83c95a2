//! The SQL of each postgres sub-collector and the metric tables that map its columns to
//! postgres_exporter's names and types; plus the pure conversions (`pg_settings` units, the
//! short version). Used by the collector in `mod.rs`; no I/O here.

use super::super::Kind;

/// One numeric column of a statistics view and the metric it becomes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Col {
    /// SQL expression (a column of the view), selected as `float8`.
    pub sql: &'static str,
    /// Full metric name.
    pub metric: &'static str,
    /// Metric type, as the exporter declares it.
    pub kind: Kind,
    /// `# HELP`.
    pub help: &'static str,
    /// Lowest `server_version_num` that has the column.
    pub since: u32,
}

const fn col(sql: &'static str, metric: &'static str, kind: Kind, help: &'static str) -> Col {
    Col {
        sql,
        metric,
        kind,
        help,
        since: 0,
    }
}

const fn col_since(
    since: u32,
    sql: &'static str,
    metric: &'static str,
    kind: Kind,
    help: &'static str,
) -> Col {
    Col {
        sql,
        metric,
        kind,
        help,
        since,
    }
}

use Kind::{Counter, Gauge, Untyped};

/// `pg_stat_database` (labels datid, datname). The columns added after PostgreSQL 11 are
/// untyped, as postgres_exporter 0.11 (which does not know them) exposes them.
#[rustfmt::skip]
pub const STAT_DATABASE: &[Col] = &[
    col("s.numbackends", "pg_stat_database_numbackends", Gauge, "Number of backends currently connected to this database."),
    col("s.xact_commit", "pg_stat_database_xact_commit", Counter, "Number of transactions in this database that have been committed"),
    col("s.xact_rollback", "pg_stat_database_xact_rollback", Counter, "Number of transactions in this database that have been rolled back"),
    col("s.blks_read", "pg_stat_database_blks_read", Counter, "Number of disk blocks read in this database"),
    col("s.blks_hit", "pg_stat_database_blks_hit", Counter, "Number of times disk blocks were found already in the buffer cache"),
    col("s.tup_returned", "pg_stat_database_tup_returned", Counter, "Number of rows returned by queries in this database"),
    col("s.tup_fetched", "pg_stat_database_tup_fetched", Counter, "Number of rows fetched by queries in this database"),
    col("s.tup_inserted", "pg_stat_database_tup_inserted", Counter, "Number of rows inserted by queries in this database"),
    col("s.tup_updated", "pg_stat_database_tup_updated", Counter, "Number of rows updated by queries in this database"),
    col("s.tup_deleted", "pg_stat_database_tup_deleted", Counter, "Number of rows deleted by queries in this database"),
    col("s.conflicts", "pg_stat_database_conflicts", Counter, "Number of queries canceled due to conflicts with recovery in this database."),
    col("s.temp_files", "pg_stat_database_temp_files", Counter, "Number of temporary files created by queries in this database."),
    col("s.temp_bytes", "pg_stat_database_temp_bytes", Counter, "Total amount of data written to temporary files by queries in this database."),
    col("s.deadlocks", "pg_stat_database_deadlocks", Counter, "Number of deadlocks detected in this database"),
    col("s.blk_read_time", "pg_stat_database_blk_read_time", Counter, "Time spent reading data file blocks by backends in this database, in milliseconds"),
    col("s.blk_write_time", "pg_stat_database_blk_write_time", Counter, "Time spent writing data file blocks by backends in this database, in milliseconds"),
    col("EXTRACT(EPOCH FROM s.stats_reset)", "pg_stat_database_stats_reset", Counter, "Time at which these statistics were last reset"),
    col_since(120000, "s.checksum_failures", "pg_stat_database_checksum_failures", Untyped, "Number of data page checksum failures detected in this database"),
    col_since(120000, "EXTRACT(EPOCH FROM s.checksum_last_failure)", "pg_stat_database_checksum_last_failure", Untyped, "Time at which the last data page checksum failure was detected"),
    col_since(140000, "s.session_time", "pg_stat_database_session_time", Untyped, "Time spent by database sessions in this database, in milliseconds"),
    col_since(140000, "s.active_time", "pg_stat_database_active_time", Untyped, "Time spent executing SQL statements in this database, in milliseconds"),
    col_since(140000, "s.idle_in_transaction_time", "pg_stat_database_idle_in_transaction_time", Untyped, "Time spent idling while in a transaction in this database, in milliseconds"),
    col_since(140000, "s.sessions", "pg_stat_database_sessions", Untyped, "Total number of sessions established to this database"),
    col_since(140000, "s.sessions_abandoned", "pg_stat_database_sessions_abandoned", Untyped, "Number of database sessions that were terminated because connection to the client was lost"),
    col_since(140000, "s.sessions_fatal", "pg_stat_database_sessions_fatal", Untyped, "Number of database sessions that were terminated by fatal errors"),
    col_since(140000, "s.sessions_killed", "pg_stat_database_sessions_killed", Untyped, "Number of database sessions that were terminated by operator intervention"),
];

/// `pg_stat_database_conflicts` (labels datid, datname), joined to `pg_stat_database`.
#[rustfmt::skip]
pub const STAT_DATABASE_CONFLICTS: &[Col] = &[
    col("c.confl_tablespace", "pg_stat_database_conflicts_confl_tablespace", Counter, "Number of queries in this database that have been canceled due to dropped tablespaces"),
    col("c.confl_lock", "pg_stat_database_conflicts_confl_lock", Counter, "Number of queries in this database that have been canceled due to lock timeouts"),
    col("c.confl_snapshot", "pg_stat_database_conflicts_confl_snapshot", Counter, "Number of queries in this database that have been canceled due to old snapshots"),
    col("c.confl_bufferpin", "pg_stat_database_conflicts_confl_bufferpin", Counter, "Number of queries in this database that have been canceled due to pinned buffers"),
    col("c.confl_deadlock", "pg_stat_database_conflicts_confl_deadlock", Counter, "Number of queries in this database that have been canceled due to deadlocks"),
    col_since(160000, "c.confl_active_logicalslot", "pg_stat_database_conflicts_confl_active_logicalslot", Untyped, "Number of uses of logical slots in this database that have been canceled due to old snapshots or too low a wal_level on the primary"),
];

/// The columns of [`STAT_DATABASE`] and [`STAT_DATABASE_CONFLICTS`] this server has.
pub fn stat_database_cols(version: u32) -> (Vec<Col>, Vec<Col>) {
    let pick = |cols: &[Col]| {
        cols.iter()
            .filter(|c| version >= c.since)
            .copied()
            .collect()
    };
    (pick(STAT_DATABASE), pick(STAT_DATABASE_CONFLICTS))
}

/// `SELECT datid, datname, has_conflicts, <stat columns>, <conflict columns>`.
pub fn stat_database_sql(stat: &[Col], conflicts: &[Col]) -> String {
    let mut sql =
        String::from("SELECT s.datid::text, COALESCE(s.datname::text, ''), c.datid IS NOT NULL");
    for c in stat.iter().chain(conflicts) {
        sql.push_str(", (");
        sql.push_str(c.sql);
        sql.push_str(")::float8");
    }
    sql.push_str(
        " FROM pg_stat_database s LEFT JOIN pg_stat_database_conflicts c ON c.datid = s.datid",
    );
    sql
}

/// `pg_database_size_bytes` and the databases `per_table_stats` may visit: name, whether it
/// accepts connections by this user, size (NULL without the privilege to see it).
pub const DATABASE_SQL: &str = "SELECT datname::text, datallowconn AND has_database_privilege(oid, 'CONNECT'), \
     CASE WHEN has_database_privilege(oid, 'CONNECT') OR pg_has_role('pg_read_all_stats', 'MEMBER') \
     THEN pg_database_size(oid)::float8 END FROM pg_database";

/// The server itself: version string, postmaster start, recovery state and replay lag.
pub const SERVER_SQL: &str = "SELECT version(), EXTRACT(EPOCH FROM pg_postmaster_start_time())::float8, \
     pg_is_in_recovery(), (CASE WHEN NOT pg_is_in_recovery() THEN 0 ELSE GREATEST(0, \
     EXTRACT(EPOCH FROM (now() - pg_last_xact_replay_timestamp()))) END)::float8";

/// `pg_stat_activity_count` / `_max_tx_duration`, zero-filled for every database and state
/// (the exporter's query).
pub const ACTIVITY_SQL: &str = "SELECT pg_database.datname::text, tmp.state, COALESCE(count, 0)::float8, \
     COALESCE(max_tx_duration, 0)::float8 FROM (VALUES ('active'), ('idle'), ('idle in transaction'), \
     ('idle in transaction (aborted)'), ('fastpath function call'), ('disabled')) AS tmp(state) \
     CROSS JOIN pg_database LEFT JOIN (SELECT datname, state, count(*) AS count, \
     MAX(EXTRACT(EPOCH FROM now() - xact_start))::float8 AS max_tx_duration FROM pg_stat_activity \
     GROUP BY datname, state) AS tmp2 ON tmp.state = tmp2.state AND pg_database.datname = tmp2.datname";

/// `pg_locks_count`, zero-filled for every database and lock mode (the exporter's query).
pub const LOCKS_SQL: &str = "SELECT pg_database.datname::text, tmp.mode, COALESCE(count, 0)::float8 \
     FROM (VALUES ('accesssharelock'), ('rowsharelock'), ('rowexclusivelock'), \
     ('shareupdateexclusivelock'), ('sharelock'), ('sharerowexclusivelock'), ('exclusivelock'), \
     ('accessexclusivelock'), ('sireadlock')) AS tmp(mode) CROSS JOIN pg_database \
     LEFT JOIN (SELECT database, lower(mode) AS mode, count(*) AS count FROM pg_locks \
     WHERE database IS NOT NULL GROUP BY database, lower(mode)) AS tmp2 \
     ON tmp.mode = tmp2.mode AND pg_database.oid = tmp2.database";

/// `pg_settings_*` (the exporter's query).
pub const SETTINGS_SQL: &str = "SELECT name, setting, COALESCE(unit, ''), short_desc, vartype \
     FROM pg_settings WHERE vartype IN ('bool', 'integer', 'real')";

/// `pg_stat_bgwriter` before PostgreSQL 17 (every column a `_total` counter).
#[rustfmt::skip]
pub const BGWRITER: &[Col] = &[
    col("b.checkpoints_timed", "pg_stat_bgwriter_checkpoints_timed_total", Counter, "Number of scheduled checkpoints that have been performed"),
    col("b.checkpoints_req", "pg_stat_bgwriter_checkpoints_req_total", Counter, "Number of requested checkpoints that have been performed"),
    col("b.checkpoint_write_time", "pg_stat_bgwriter_checkpoint_write_time_total", Counter, "Total amount of time that has been spent in the portion of checkpoint processing where files are written to disk, in milliseconds"),
    col("b.checkpoint_sync_time", "pg_stat_bgwriter_checkpoint_sync_time_total", Counter, "Total amount of time that has been spent in the portion of checkpoint processing where files are synchronized to disk, in milliseconds"),
    col("b.buffers_checkpoint", "pg_stat_bgwriter_buffers_checkpoint_total", Counter, "Number of buffers written during checkpoints"),
    col("b.buffers_clean", "pg_stat_bgwriter_buffers_clean_total", Counter, "Number of buffers written by the background writer"),
    col("b.maxwritten_clean", "pg_stat_bgwriter_maxwritten_clean_total", Counter, "Number of times the background writer stopped a cleaning scan because it had written too many buffers"),
    col("b.buffers_backend", "pg_stat_bgwriter_buffers_backend_total", Counter, "Number of buffers written directly by a backend"),
    col("b.buffers_backend_fsync", "pg_stat_bgwriter_buffers_backend_fsync_total", Counter, "Number of times a backend had to execute its own fsync call (normally the background writer handles those even when the backend does its own write)"),
    col("b.buffers_alloc", "pg_stat_bgwriter_buffers_alloc_total", Counter, "Number of buffers allocated"),
    col("EXTRACT(EPOCH FROM b.stats_reset)", "pg_stat_bgwriter_stats_reset_total", Counter, "Time at which these statistics were last reset"),
];

/// PostgreSQL 17 and later: what is left of `pg_stat_bgwriter` plus `pg_stat_checkpointer`,
/// under the names of postgres_exporter 0.16.
#[rustfmt::skip]
pub const BGWRITER_17: &[Col] = &[
    col("b.buffers_clean", "pg_stat_bgwriter_buffers_clean_total", Counter, "Number of buffers written by the background writer"),
    col("b.maxwritten_clean", "pg_stat_bgwriter_maxwritten_clean_total", Counter, "Number of times the background writer stopped a cleaning scan because it had written too many buffers"),
    col("b.buffers_alloc", "pg_stat_bgwriter_buffers_alloc_total", Counter, "Number of buffers allocated"),
    col("EXTRACT(EPOCH FROM b.stats_reset)", "pg_stat_bgwriter_stats_reset_total", Counter, "Time at which these statistics were last reset"),
    col("c.num_timed", "pg_stat_checkpointer_num_timed_total", Counter, "Number of scheduled checkpoints due to timeout"),
    col("c.num_requested", "pg_stat_checkpointer_num_requested_total", Counter, "Number of requested checkpoints that have been performed"),
    col("c.restartpoints_timed", "pg_stat_checkpointer_restartpoints_timed_total", Counter, "Number of scheduled restartpoints due to timeout or after a failed attempt to perform it"),
    col("c.restartpoints_req", "pg_stat_checkpointer_restartpoints_req_total", Counter, "Number of requested restartpoints"),
    col("c.restartpoints_done", "pg_stat_checkpointer_restartpoints_done_total", Counter, "Number of restartpoints that have been performed"),
    col("c.write_time", "pg_stat_checkpointer_write_time_total", Counter, "Total amount of time that has been spent in the portion of processing checkpoints and restartpoints where files are written to disk, in milliseconds"),
    col("c.sync_time", "pg_stat_checkpointer_sync_time_total", Counter, "Total amount of time that has been spent in the portion of processing checkpoints and restartpoints where files are synchronized to disk, in milliseconds"),
    col("c.buffers_written", "pg_stat_checkpointer_buffers_written_total", Counter, "Number of buffers written during checkpoints and restartpoints"),
    col("EXTRACT(EPOCH FROM c.stats_reset)", "pg_stat_checkpointer_stats_reset_total", Counter, "Time at which these statistics were last reset"),
];

/// `pg_stat_archiver` (one row, so it shares the bgwriter query).
#[rustfmt::skip]
pub const ARCHIVER: &[Col] = &[
    col("a.archived_count", "pg_stat_archiver_archived_count", Counter, "Number of WAL files that have been successfully archived"),
    col("a.failed_count", "pg_stat_archiver_failed_count", Counter, "Number of failed attempts for archiving WAL files"),
    col("EXTRACT(EPOCH FROM now() - a.last_archived_time)", "pg_stat_archiver_last_archive_age", Gauge, "Time in seconds since last WAL segment was successfully archived"),
];

/// The bgwriter/checkpointer/archiver columns and their one query for a server version.
pub fn bgwriter(version: u32) -> (Vec<Col>, String) {
    let (cols, from) = if version >= 170000 {
        (
            BGWRITER_17,
            " FROM pg_stat_bgwriter b, pg_stat_checkpointer c, pg_stat_archiver a",
        )
    } else {
        (BGWRITER, " FROM pg_stat_bgwriter b, pg_stat_archiver a")
    };
    let cols: Vec<Col> = cols.iter().chain(ARCHIVER).copied().collect();
    let sql = select_floats("SELECT ", &cols, from);
    (cols, sql)
}

/// `pg_stat_user_tables_*` (labels datname, schemaname, relname), as the exporter's example
/// `queries.yaml` defines them.
#[rustfmt::skip]
pub const USER_TABLES: &[Col] = &[
    col("seq_scan", "pg_stat_user_tables_seq_scan", Counter, "Number of sequential scans initiated on this table"),
    col("seq_tup_read", "pg_stat_user_tables_seq_tup_read", Counter, "Number of live rows fetched by sequential scans"),
    col("idx_scan", "pg_stat_user_tables_idx_scan", Counter, "Number of index scans initiated on this table"),
    col("idx_tup_fetch", "pg_stat_user_tables_idx_tup_fetch", Counter, "Number of live rows fetched by index scans"),
    col("n_tup_ins", "pg_stat_user_tables_n_tup_ins", Counter, "Number of rows inserted"),
    col("n_tup_upd", "pg_stat_user_tables_n_tup_upd", Counter, "Number of rows updated"),
    col("n_tup_del", "pg_stat_user_tables_n_tup_del", Counter, "Number of rows deleted"),
    col("n_tup_hot_upd", "pg_stat_user_tables_n_tup_hot_upd", Counter, "Number of rows HOT updated (i.e., with no separate index update required)"),
    col("n_live_tup", "pg_stat_user_tables_n_live_tup", Gauge, "Estimated number of live rows"),
    col("n_dead_tup", "pg_stat_user_tables_n_dead_tup", Gauge, "Estimated number of dead rows"),
    col("n_mod_since_analyze", "pg_stat_user_tables_n_mod_since_analyze", Gauge, "Estimated number of rows changed since last analyze"),
    col("EXTRACT(EPOCH FROM COALESCE(last_vacuum, '1970-01-01Z'))", "pg_stat_user_tables_last_vacuum", Gauge, "Last time at which this table was manually vacuumed (not counting VACUUM FULL)"),
    col("EXTRACT(EPOCH FROM COALESCE(last_autovacuum, '1970-01-01Z'))", "pg_stat_user_tables_last_autovacuum", Gauge, "Last time at which this table was vacuumed by the autovacuum daemon"),
    col("EXTRACT(EPOCH FROM COALESCE(last_analyze, '1970-01-01Z'))", "pg_stat_user_tables_last_analyze", Gauge, "Last time at which this table was manually analyzed"),
    col("EXTRACT(EPOCH FROM COALESCE(last_autoanalyze, '1970-01-01Z'))", "pg_stat_user_tables_last_autoanalyze", Gauge, "Last time at which this table was analyzed by the autovacuum daemon"),
    col("vacuum_count", "pg_stat_user_tables_vacuum_count", Counter, "Number of times this table has been manually vacuumed (not counting VACUUM FULL)"),
    col("autovacuum_count", "pg_stat_user_tables_autovacuum_count", Counter, "Number of times this table has been vacuumed by the autovacuum daemon"),
    col("analyze_count", "pg_stat_user_tables_analyze_count", Counter, "Number of times this table has been manually analyzed"),
    col("autoanalyze_count", "pg_stat_user_tables_autoanalyze_count", Counter, "Number of times this table has been analyzed by the autovacuum daemon"),
];

/// `SELECT current_database(), schemaname, relname, <USER_TABLES> FROM pg_stat_user_tables`.
pub fn user_tables_sql() -> String {
    select_floats(
        "SELECT current_database()::text, schemaname::text, relname::text, ",
        USER_TABLES,
        " FROM pg_stat_user_tables",
    )
}

fn select_floats(head: &str, cols: &[Col], from: &str) -> String {
    let mut sql = String::from(head);
    for (i, c) in cols.iter().enumerate() {
        if i > 0 {
            sql.push_str(", ");
        }
        sql.push('(');
        sql.push_str(c.sql);
        sql.push_str(")::float8");
    }
    sql.push_str(from);
    sql
}

/// A `pg_settings` row turned into the exporter's metric: name (with a `_seconds`/`_bytes`
/// suffix after unit conversion), help and value. None for a row the exporter would not export
/// (unknown unit or type, a value that is not a number).
#[cfg(test)]
fn setting_metric(
    name: &str,
    setting: &str,
    unit: &str,
    short_desc: &str,
    vartype: &str,
) -> Option<(String, String, f64)> {
    let (metric, help) = setting_name_help(name, unit, short_desc, vartype)?;
    Some((metric, help, setting_value(setting, unit, vartype)?))
}

/// The metric name and help of a setting (they change only with the server version, so the
/// collector caches them).
pub fn setting_name_help(
    name: &str,
    unit: &str,
    short_desc: &str,
    vartype: &str,
) -> Option<(String, String)> {
    let base = format!("pg_settings_{}", name.replace('.', "_"));
    match vartype {
        "bool" => Some((base, short_desc.to_string())),
        "integer" | "real" => match unit_factor(unit)? {
            ("", _) => Some((base, short_desc.to_string())),
            (suffix, _) => Some((
                format!("{base}_{suffix}"),
                format!("{short_desc} [Units converted to {suffix}.]"),
            )),
        },
        _ => None,
    }
}

/// The value of a setting in the exporter's units.
pub fn setting_value(setting: &str, unit: &str, vartype: &str) -> Option<f64> {
    match vartype {
        "bool" => Some(if setting == "on" { 1.0 } else { 0.0 }),
        "integer" | "real" => {
            let value: f64 = setting.parse().ok()?;
            let (_, factor) = unit_factor(unit)?;
            // -1 means "disabled" (or "use another setting") and is kept as is.
            Some(if value == -1.0 { value } else { value * factor })
        }
        _ => None,
    }
}

/// The exporter's unit table: `(suffix, factor)`; None for a unit it does not know.
fn unit_factor(unit: &str) -> Option<(&'static str, f64)> {
    const KB: f64 = 1024.0;
    Some(match unit {
        "" => ("", 1.0),
        "ms" => ("seconds", 1e-3),
        "s" => ("seconds", 1.0),
        "min" => ("seconds", 60.0),
        "h" => ("seconds", 3600.0),
        "d" => ("seconds", 86400.0),
        "B" => ("bytes", 1.0),
        "kB" | "1kB" => ("bytes", KB),
        "2kB" => ("bytes", 2.0 * KB),
        "4kB" => ("bytes", 4.0 * KB),
        "8kB" => ("bytes", 8.0 * KB),
        "16kB" => ("bytes", 16.0 * KB),
        "32kB" => ("bytes", 32.0 * KB),
        "64kB" => ("bytes", 64.0 * KB),
        "MB" => ("bytes", KB * KB),
        "16MB" => ("bytes", 16.0 * KB * KB),
        "32MB" => ("bytes", 32.0 * KB * KB),
        "64MB" => ("bytes", 64.0 * KB * KB),
        "GB" => ("bytes", KB * KB * KB),
        "TB" => ("bytes", KB * KB * KB * KB),
        _ => return None,
    })
}

/// The exporter's `short_version` label: the version number of `version()` as three
/// components (`PostgreSQL 15.4 (Debian ...)` -> `15.4.0`).
pub fn short_version(version: &str) -> String {
    let number = version.split_whitespace().nth(1).unwrap_or_default();
    let digits: String = number
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == '.')
        .collect();
    let mut parts: Vec<&str> = digits.split('.').filter(|p| !p.is_empty()).collect();
    parts.truncate(3);
    while parts.len() < 3 {
        parts.push("0");
    }
    parts.join(".")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_units_as_the_exporter() {
        let m = |n, s, u, t| setting_metric(n, s, u, "d", t).map(|(n, _, v)| (n, v));
        assert_eq!(
            m("fsync", "on", "", "bool"),
            Some(("pg_settings_fsync".into(), 1.0))
        );
        assert_eq!(
            m("jit", "off", "", "bool"),
            Some(("pg_settings_jit".into(), 0.0))
        );
        assert_eq!(
            m("shared_buffers", "16384", "8kB", "integer"),
            Some(("pg_settings_shared_buffers_bytes".into(), 134217728.0))
        );
        assert_eq!(
            m("log_rotation_age", "1440", "min", "integer"),
            Some(("pg_settings_log_rotation_age_seconds".into(), 86400.0))
        );
        assert_eq!(
            m("statement_timeout", "1500", "ms", "integer"),
            Some(("pg_settings_statement_timeout_seconds".into(), 1.5))
        );
        assert_eq!(
            m("log_min_duration_statement", "-1", "ms", "integer"),
            Some((
                "pg_settings_log_min_duration_statement_seconds".into(),
                -1.0
            ))
        );
        assert_eq!(
            m("a.b", "0.5", "", "real"),
            Some(("pg_settings_a_b".into(), 0.5))
        );
        assert_eq!(m("x", "1", "furlongs", "integer"), None);
        assert_eq!(m("x", "abc", "", "integer"), None);
        assert_eq!(m("x", "abc", "", "string"), None);
        let (_, help, _) =
            setting_metric("work_mem", "4096", "kB", "Sets memory.", "integer").expect("some");
        assert_eq!(help, "Sets memory. [Units converted to bytes.]");
    }

    #[test]
    fn short_versions() {
        assert_eq!(
            short_version("PostgreSQL 15.18 (Debian 15.18-0+deb12u1) on x86_64"),
            "15.18.0"
        );
        assert_eq!(short_version("PostgreSQL 9.6.24 on x86_64"), "9.6.24");
        assert_eq!(short_version("PostgreSQL 17beta1 on x"), "17.0.0");
        assert_eq!(short_version(""), "0.0.0");
    }

    #[test]
    fn columns_by_version() {
        let (s, c) = stat_database_cols(110000);
        assert!(s.iter().all(|c| c.since <= 110000));
        assert!(!s.iter().any(|c| c.metric == "pg_stat_database_sessions"));
        assert_eq!(c.len(), 5);
        let (s, c) = stat_database_cols(160002);
        assert!(s.iter().any(|c| c.metric == "pg_stat_database_sessions"));
        assert_eq!(c.len(), 6);
        let sql = stat_database_sql(&s, &c);
        assert!(sql.contains("(s.session_time)::float8"), "{sql}");
        assert!(
            bgwriter(150000)
                .1
                .contains("FROM pg_stat_bgwriter b, pg_stat_archiver a")
        );
        assert!(!bgwriter(150000).1.contains("checkpointer"));
        assert!(bgwriter(170000).1.contains("pg_stat_checkpointer c"));
        assert_eq!(bgwriter(170000).0.len(), BGWRITER_17.len() + ARCHIVER.len());
        assert_eq!(bgwriter(150000).0[..BGWRITER.len()], *BGWRITER);
    }

    #[test]
    fn counters_are_counters() {
        // The exporter types every pg_stat_bgwriter/checkpointer column as a counter.
        assert!(
            BGWRITER
                .iter()
                .chain(BGWRITER_17)
                .all(|c| matches!(c.kind, Kind::Counter))
        );
        assert!(
            BGWRITER
                .iter()
                .chain(BGWRITER_17)
                .all(|c| c.metric.ends_with("_total"))
        );
    }
}
