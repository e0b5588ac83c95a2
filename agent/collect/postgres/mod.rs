//! The `type: postgres` collector: PostgreSQL statistics under postgres_exporter's names, types
//! and labels (`pg_stat_database_*`, `pg_database_size_bytes`, `pg_stat_activity_*`,
//! `pg_locks_count`, `pg_settings_*`, `pg_stat_bgwriter_*`, ...). See
//! `docs/collectors-postgres.md`.
//!
//! One sqlx [`PgConnection`] (not a pool: one collection at a time), opened lazily by
//! [`Postgres::collect`] and dropped by [`Postgres::reset`] after a failure. Each sub-collector is
//! one query (prepared once per connection), reported in `pg_scrape_collector_success` and
//! `pg_scrape_collector_duration_seconds{collector}`. The first query (`server`) decides
//! `pg_up`: when it or the connection fails the collection fails. A later sub-collector that
//! fails on SQL (e.g. a missing privilege) is left out with one WARN line, and the others go on.
//!
//! Called by the collector manager in `collect/mod.rs`; `queries.rs` holds the SQL and the
//! metric tables, `config.rs` the configuration.

mod config;
mod queries;

pub use config::{DatabaseFilter, DatabaseMatcher, PostgresConfig, PostgresTls, TlsMode, redact};

use std::collections::{HashMap, HashSet};
use std::time::Instant;

use sqlx::postgres::{PgConnectOptions, PgConnection};
use sqlx::{ConnectOptions, Row};
use tracing::{info, warn};

use super::{Kind, Output};
use queries::Col;

/// Collections a sub-collector stays off after a permission error before it is tried again.
const DISABLED_ROUNDS: u64 = 40;

/// Why a postgres collection failed.
#[derive(Debug, thiserror::Error)]
pub enum PostgresError {
    /// The URL could not be read or parsed.
    #[error("postgres connection settings: {0}")]
    Config(String),
    /// Connecting (TCP, TLS, authentication) failed.
    #[error("cannot connect to {url}: {source}")]
    Connect {
        /// The URL without its password.
        url: String,
        /// What sqlx reported.
        #[source]
        source: sqlx::Error,
    },
    /// The server could not be queried (connection lost, server shutting down).
    #[error("sub-collector {sub} on {url} failed: {source}")]
    Query {
        /// The sub-collector (`server`, `database`, ...).
        sub: &'static str,
        /// The URL without its password.
        url: String,
        /// What sqlx reported.
        #[source]
        source: sqlx::Error,
    },
}

/// The sub-collectors, in collection order (the `collector` label of `pg_scrape_collector_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Sub {
    Server,
    Database,
    StatDatabase,
    StatActivity,
    Locks,
    Settings,
    Bgwriter,
    StatUserTables,
}

impl Sub {
    fn name(self) -> &'static str {
        match self {
            Sub::Server => "server",
            Sub::Database => "database",
            Sub::StatDatabase => "stat_database",
            Sub::StatActivity => "stat_activity",
            Sub::Locks => "locks",
            Sub::Settings => "settings",
            Sub::Bgwriter => "bgwriter",
            Sub::StatUserTables => "stat_user_tables",
        }
    }
}

#[derive(Debug, Default)]
struct SubState {
    /// Failed last time (its WARN was logged).
    failing: bool,
    /// Not run before this round (after a permission error).
    disabled_until: u64,
}

/// What a connection found out about its server, for choosing queries.
struct Server {
    conn: PgConnection,
    version: u32,
    stat_database: (Vec<Col>, Vec<Col>, String),
    bgwriter: (Vec<Col>, String),
}

/// A postgres collector and its connection (boxed: the state is large and the collector enum
/// holds it by value).
pub struct Postgres(Box<State>);

impl Postgres {
    /// Builds the collector; connects lazily on the first collection.
    pub fn new(name: &str, cfg: &PostgresConfig) -> Self {
        Self(Box::new(State::new(name, cfg)))
    }

    /// One collection into `out`.
    pub async fn collect(&mut self, out: &mut Output) -> Result<(), PostgresError> {
        self.0.collect(out).await
    }

    /// Drops the connections; the next collection reconnects (re-reading the URL secret).
    pub async fn reset(&mut self) {
        self.0.reset().await
    }

    /// The server version of the current connection (`server_version_num`), if connected.
    pub fn server_version(&self) -> Option<u32> {
        self.0.server.as_ref().map(|s| s.version)
    }
}

struct State {
    name: String,
    cfg: PostgresConfig,
    matcher: Result<DatabaseMatcher, String>,
    /// The URL without its password (for messages), once known.
    url: String,
    /// `host:port`, the exporter's `server` label.
    server_label: String,
    /// The database of the URL.
    main_db: String,
    opts: Option<Box<PgConnectOptions>>,
    server: Option<Box<Server>>,
    subs: HashMap<Sub, SubState>,
    round: u64,
    /// Databases `per_table_stats` visits (from the last `database` query).
    databases: Vec<String>,
    table_conns: HashMap<String, PgConnection>,
    failing_dbs: HashSet<String>,
    user_tables_sql: String,
    setting_names: SettingNames,
}

impl State {
    fn new(name: &str, cfg: &PostgresConfig) -> Self {
        Self {
            name: name.to_string(),
            cfg: cfg.clone(),
            matcher: cfg.databases.compile(),
            url: "the configured postgres URL".into(),
            server_label: String::new(),
            main_db: String::new(),
            opts: None,
            server: None,
            subs: HashMap::new(),
            round: 0,
            databases: Vec::new(),
            table_conns: HashMap::new(),
            failing_dbs: HashSet::new(),
            user_tables_sql: queries::user_tables_sql(),
            setting_names: SettingNames::default(),
        }
    }

    async fn reset(&mut self) {
        self.server = None;
        self.opts = None;
        self.table_conns.clear();
    }

    async fn connect(&mut self) -> Result<(), PostgresError> {
        if self.opts.is_none() {
            let (opts, url) = self.cfg.connect_options().map_err(PostgresError::Config)?;
            let opts = opts.application_name("vigil").disable_statement_logging();
            self.server_label = format!("{}:{}", opts.get_host(), opts.get_port());
            self.main_db = opts
                .get_database()
                .unwrap_or(opts.get_username())
                .to_string();
            self.url = url;
            self.opts = Some(Box::new(opts));
        }
        let Some(opts) = &self.opts else {
            return Ok(());
        };
        let connect_err = |source| PostgresError::Connect {
            url: self.url.clone(),
            source,
        };
        let mut conn = opts.connect().await.map_err(connect_err)?;
        let version = match conn.server_version_num() {
            Some(v) => v,
            None => {
                sqlx::query_scalar::<_, i32>("SELECT current_setting('server_version_num')::int4")
                    .fetch_one(&mut conn)
                    .await
                    .map_err(connect_err)?
                    .try_into()
                    .unwrap_or(0)
            }
        };
        let (stat, conflicts) = queries::stat_database_cols(version);
        let sql = queries::stat_database_sql(&stat, &conflicts);
        self.server = Some(Box::new(Server {
            conn,
            version,
            stat_database: (stat, conflicts, sql),
            bgwriter: queries::bgwriter(version),
        }));
        Ok(())
    }

    async fn collect(&mut self, out: &mut Output) -> Result<(), PostgresError> {
        self.round += 1;
        if self.server.is_none() {
            self.connect().await?;
        }
        let mut results: Vec<(&'static str, bool, f64)> = Vec::with_capacity(8);
        let mut subs = vec![
            Sub::Server,
            Sub::Database,
            Sub::StatDatabase,
            Sub::StatActivity,
            Sub::Locks,
        ];
        if self.cfg.settings {
            subs.push(Sub::Settings);
        }
        subs.push(Sub::Bgwriter);
        let outcome = self.run_subs(&subs, out, &mut results).await;
        if outcome.is_ok() && self.cfg.per_table_stats {
            let started = Instant::now();
            let ok = self.per_table_stats(out).await;
            results.push((
                Sub::StatUserTables.name(),
                ok,
                started.elapsed().as_secs_f64(),
            ));
        }
        outcome?;
        out.family(
            "pg_scrape_collector_duration_seconds",
            "postgres_exporter: Duration of a collector scrape.",
            Kind::Gauge,
        );
        for (name, _, d) in &results {
            out.sample(&[("collector", name)], *d);
        }
        out.family(
            "pg_scrape_collector_success",
            "postgres_exporter: Whether a collector succeeded.",
            Kind::Gauge,
        );
        for (name, ok, _) in &results {
            out.sample(&[("collector", name)], if *ok { 1.0 } else { 0.0 });
        }
        Ok(())
    }

    async fn run_subs(
        &mut self,
        subs: &[Sub],
        out: &mut Output,
        results: &mut Vec<(&'static str, bool, f64)>,
    ) -> Result<(), PostgresError> {
        for &sub in subs {
            let state = self.subs.entry(sub).or_default();
            if state.disabled_until > self.round {
                results.push((sub.name(), false, 0.0));
                continue;
            }
            let Some(server) = self.server.as_mut() else {
                return Ok(());
            };
            let started = Instant::now();
            let s = &self.server_label;
            let res = match sub {
                Sub::Server => query_server(&mut server.conn, out, s).await,
                Sub::Database => {
                    query_database(&mut server.conn, out, s, &mut self.databases).await
                }
                Sub::StatDatabase => {
                    let (stat, conflicts, sql) = &server.stat_database;
                    query_stat_database(&mut server.conn, out, s, stat, conflicts, sql).await
                }
                Sub::StatActivity => query_activity(&mut server.conn, out, s).await,
                Sub::Locks => query_locks(&mut server.conn, out, s).await,
                Sub::Settings => {
                    query_settings(&mut server.conn, out, s, &mut self.setting_names).await
                }
                Sub::Bgwriter => {
                    let (cols, sql) = &server.bgwriter;
                    query_bgwriter(&mut server.conn, out, s, cols, sql).await
                }
                Sub::StatUserTables => Ok(()),
            };
            let elapsed = started.elapsed().as_secs_f64();
            let state = self.subs.entry(sub).or_default();
            match res {
                Ok(()) => {
                    if state.failing {
                        info!(collector = %self.name, sub_collector = sub.name(), "postgres sub-collector works again");
                    }
                    state.failing = false;
                    state.disabled_until = 0;
                    results.push((sub.name(), true, elapsed));
                }
                Err(e) if sub == Sub::Server || is_connection_error(&e) => {
                    return Err(PostgresError::Query {
                        sub: sub.name(),
                        url: self.url.clone(),
                        source: e,
                    });
                }
                Err(e) => {
                    let denied = sqlstate(&e).is_some_and(|c| c == "42501");
                    if denied {
                        state.disabled_until = self.round + DISABLED_ROUNDS;
                    }
                    if !state.failing {
                        if denied {
                            warn!(collector = %self.name, sub_collector = sub.name(), error = %e, retry_in_collections = DISABLED_ROUNDS,
                                "postgres sub-collector disabled: the user lacks a privilege; grant it pg_monitor (GRANT pg_monitor TO <user>)");
                        } else {
                            warn!(collector = %self.name, sub_collector = sub.name(), error = %e,
                                "postgres sub-collector failed; its metrics are left out until it works again");
                        }
                    }
                    state.failing = true;
                    results.push((sub.name(), false, elapsed));
                }
            }
        }
        Ok(())
    }

    /// `pg_stat_user_tables_*` of every database in `databases`; false when one
    /// of them failed (each failure is logged once until that database works again).
    async fn per_table_stats(&mut self, out: &mut Output) -> bool {
        let Some(opts) = self.opts.clone() else {
            return false;
        };
        let matcher = match &self.matcher {
            Ok(m) => m.clone(),
            Err(e) => {
                if self.failing_dbs.insert(String::new()) {
                    warn!(collector = %self.name, error = %e, "per_table_stats: bad databases filter");
                }
                return false;
            }
        };
        let wanted: Vec<String> = self
            .databases
            .iter()
            .filter(|d| matcher.matches(d))
            .cloned()
            .collect();
        self.table_conns.retain(|d, _| wanted.contains(d));
        let mut all_ok = true;
        for db in wanted {
            let result = if db == self.main_db {
                match self.server.as_mut() {
                    Some(s) => {
                        query_user_tables(
                            &mut s.conn,
                            out,
                            &self.server_label,
                            &self.user_tables_sql,
                        )
                        .await
                    }
                    None => continue,
                }
            } else {
                if !self.table_conns.contains_key(&db) {
                    match opts.clone().database(&db).connect().await {
                        Ok(c) => {
                            self.table_conns.insert(db.clone(), c);
                        }
                        Err(e) => {
                            all_ok = false;
                            if self.failing_dbs.insert(db.clone()) {
                                warn!(collector = %self.name, database = %db, error = %e, "per_table_stats: cannot connect to this database; its tables are left out");
                            }
                            continue;
                        }
                    }
                }
                let Some(conn) = self.table_conns.get_mut(&db) else {
                    continue;
                };
                query_user_tables(conn, out, &self.server_label, &self.user_tables_sql).await
            };
            match result {
                Ok(()) => {
                    self.failing_dbs.remove(&db);
                }
                Err(e) => {
                    all_ok = false;
                    self.table_conns.remove(&db);
                    if self.failing_dbs.insert(db.clone()) {
                        warn!(collector = %self.name, database = %db, error = %e, "per_table_stats: query failed; this database's tables are left out");
                    }
                }
            }
        }
        all_ok
    }
}

fn sqlstate(e: &sqlx::Error) -> Option<String> {
    match e {
        sqlx::Error::Database(d) => d.code().map(|c| c.into_owned()),
        _ => None,
    }
}

/// Whether `e` means the connection is unusable (as opposed to one query failing).
fn is_connection_error(e: &sqlx::Error) -> bool {
    match e {
        // 08: connection exception; 57: operator intervention (shutdown, terminated), except
        // 57014 (statement timeout / cancel).
        sqlx::Error::Database(_) => sqlstate(e)
            .is_some_and(|c| c.starts_with("08") || (c.starts_with("57") && c != "57014")),
        sqlx::Error::ColumnDecode { .. }
        | sqlx::Error::ColumnNotFound(_)
        | sqlx::Error::ColumnIndexOutOfBounds { .. }
        | sqlx::Error::TypeNotFound { .. }
        | sqlx::Error::Decode(_)
        | sqlx::Error::RowNotFound => false,
        _ => true,
    }
}

fn or_nan(v: Option<f64>) -> f64 {
    v.unwrap_or(f64::NAN)
}

async fn query_server(
    conn: &mut PgConnection,
    out: &mut Output,
    server: &str,
) -> Result<(), sqlx::Error> {
    let row = sqlx::query(queries::SERVER_SQL).fetch_one(conn).await?;
    let version: String = row.try_get(0)?;
    let start: Option<f64> = row.try_get(1)?;
    let replica: bool = row.try_get(2)?;
    let lag: Option<f64> = row.try_get(3)?;
    out.family(
        "pg_static",
        "Version string as reported by postgres",
        Kind::Untyped,
    );
    let short = queries::short_version(&version);
    out.sample(
        &[
            ("server", server),
            ("short_version", &short),
            ("version", &version),
        ],
        1.0,
    );
    out.family(
        "pg_postmaster_start_time_seconds",
        "Time at which postmaster started",
        Kind::Gauge,
    );
    out.sample(&[("server", server)], or_nan(start));
    out.family(
        "pg_replication_lag",
        "Replication lag behind master in seconds",
        Kind::Gauge,
    );
    out.sample(&[("server", server)], or_nan(lag));
    out.family(
        "pg_replication_lag_seconds",
        "Replication lag behind master in seconds",
        Kind::Gauge,
    );
    out.sample(&[("server", server)], or_nan(lag));
    out.family(
        "pg_replication_is_replica",
        "Indicates if the server is a replica",
        Kind::Gauge,
    );
    out.sample(&[("server", server)], if replica { 1.0 } else { 0.0 });
    Ok(())
}

async fn query_database(
    conn: &mut PgConnection,
    out: &mut Output,
    server: &str,
    databases: &mut Vec<String>,
) -> Result<(), sqlx::Error> {
    let rows = sqlx::query(queries::DATABASE_SQL).fetch_all(conn).await?;
    databases.clear();
    out.family(
        "pg_database_size_bytes",
        "Disk space used by the database",
        Kind::Gauge,
    );
    for row in &rows {
        let name: String = row.try_get(0)?;
        let can_connect: Option<bool> = row.try_get(1)?;
        let size: Option<f64> = row.try_get(2)?;
        if let Some(size) = size {
            out.sample(&[("datname", &name), ("server", server)], size);
        }
        if can_connect == Some(true) {
            databases.push(name);
        }
    }
    Ok(())
}

async fn query_stat_database(
    conn: &mut PgConnection,
    out: &mut Output,
    server: &str,
    stat: &[Col],
    conflicts: &[Col],
    sql: &str,
) -> Result<(), sqlx::Error> {
    let rows = sqlx::query(sql).fetch_all(conn).await?;
    let mut keys = Vec::with_capacity(rows.len());
    for row in &rows {
        let datid: String = row.try_get(0)?;
        let datname: String = row.try_get(1)?;
        let has_conflicts: bool = row.try_get(2)?;
        keys.push((datid, datname, has_conflicts));
    }
    for (i, c) in stat.iter().chain(conflicts).enumerate() {
        let conflict_col = i >= stat.len();
        out.family(c.metric, c.help, c.kind);
        for (row, (datid, datname, has_conflicts)) in rows.iter().zip(&keys) {
            if conflict_col && !has_conflicts {
                continue;
            }
            let v: Option<f64> = row.try_get(3 + i)?;
            out.sample(
                &[("datid", datid), ("datname", datname), ("server", server)],
                or_nan(v),
            );
        }
    }
    Ok(())
}

async fn query_activity(
    conn: &mut PgConnection,
    out: &mut Output,
    server: &str,
) -> Result<(), sqlx::Error> {
    let rows = sqlx::query(queries::ACTIVITY_SQL).fetch_all(conn).await?;
    let mut decoded = Vec::with_capacity(rows.len());
    for row in &rows {
        let datname: String = row.try_get(0)?;
        let state: String = row.try_get(1)?;
        let count: f64 = row.try_get(2)?;
        let max_tx: f64 = row.try_get(3)?;
        decoded.push((datname, state, count, max_tx));
    }
    out.family(
        "pg_stat_activity_count",
        "number of connections in this state",
        Kind::Gauge,
    );
    for (datname, state, count, _) in &decoded {
        out.sample(
            &[("datname", datname), ("server", server), ("state", state)],
            *count,
        );
    }
    out.family(
        "pg_stat_activity_max_tx_duration",
        "max duration in seconds any active transaction has been running",
        Kind::Gauge,
    );
    for (datname, state, _, max_tx) in &decoded {
        out.sample(
            &[("datname", datname), ("server", server), ("state", state)],
            *max_tx,
        );
    }
    Ok(())
}

async fn query_locks(
    conn: &mut PgConnection,
    out: &mut Output,
    server: &str,
) -> Result<(), sqlx::Error> {
    let rows = sqlx::query(queries::LOCKS_SQL).fetch_all(conn).await?;
    out.family("pg_locks_count", "Number of locks", Kind::Gauge);
    for row in &rows {
        let datname: String = row.try_get(0)?;
        let mode: String = row.try_get(1)?;
        let count: f64 = row.try_get(2)?;
        out.sample(
            &[("datname", &datname), ("mode", &mode), ("server", server)],
            count,
        );
    }
    Ok(())
}

/// Metric name and help of each setting, by setting name.
#[derive(Default)]
struct SettingNames(HashMap<String, CachedSetting>);

struct CachedSetting {
    /// `unit` and `vartype` when cached (a change recomputes the names).
    unit: String,
    vartype: String,
    /// Metric name and help; None when the exporter would not export it.
    names: Option<(String, String)>,
}

async fn query_settings(
    conn: &mut PgConnection,
    out: &mut Output,
    server: &str,
    cache: &mut SettingNames,
) -> Result<(), sqlx::Error> {
    let rows = sqlx::query(queries::SETTINGS_SQL).fetch_all(conn).await?;
    for row in &rows {
        let name: &str = row.try_get(0)?;
        let setting: &str = row.try_get(1)?;
        let unit: &str = row.try_get(2)?;
        let vartype: &str = row.try_get(4)?;
        let fresh = cache
            .0
            .get(name)
            .is_some_and(|c| c.unit == unit && c.vartype == vartype);
        if !fresh {
            let desc: &str = row.try_get(3)?;
            let names = queries::setting_name_help(name, unit, desc, vartype);
            let cached = CachedSetting {
                unit: unit.to_string(),
                vartype: vartype.to_string(),
                names,
            };
            cache.0.insert(name.to_string(), cached);
        }
        let (Some((metric, help)), Some(value)) = (
            cache.0.get(name).and_then(|c| c.names.as_ref()),
            queries::setting_value(setting, unit, vartype),
        ) else {
            continue;
        };
        out.family(metric, help, Kind::Gauge);
        out.sample(&[("server", server)], value);
    }
    Ok(())
}

async fn query_bgwriter(
    conn: &mut PgConnection,
    out: &mut Output,
    server: &str,
    cols: &[Col],
    sql: &str,
) -> Result<(), sqlx::Error> {
    let row = sqlx::query(sql).fetch_one(conn).await?;
    for (i, c) in cols.iter().enumerate() {
        let v: Option<f64> = row.try_get(i)?;
        out.family(c.metric, c.help, c.kind);
        out.sample(&[("server", server)], or_nan(v));
    }
    Ok(())
}

async fn query_user_tables(
    conn: &mut PgConnection,
    out: &mut Output,
    server: &str,
    sql: &str,
) -> Result<(), sqlx::Error> {
    let rows = sqlx::query(sql).fetch_all(conn).await?;
    let mut keys = Vec::with_capacity(rows.len());
    for row in &rows {
        let datname: String = row.try_get(0)?;
        let schema: String = row.try_get(1)?;
        let rel: String = row.try_get(2)?;
        keys.push((datname, schema, rel));
    }
    for (i, c) in queries::USER_TABLES.iter().enumerate() {
        out.family(c.metric, c.help, c.kind);
        for (row, (datname, schema, rel)) in rows.iter().zip(&keys) {
            let v: Option<f64> = row.try_get(3 + i)?;
            out.sample(
                &[
                    ("datname", datname),
                    ("relname", rel),
                    ("schemaname", schema),
                    ("server", server),
                ],
                or_nan(v),
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_errors_are_told_apart() {
        assert!(is_connection_error(&sqlx::Error::PoolClosed));
        assert!(is_connection_error(&sqlx::Error::Io(
            std::io::Error::other("x")
        )));
        assert!(!is_connection_error(&sqlx::Error::RowNotFound));
        assert!(!is_connection_error(&sqlx::Error::ColumnNotFound(
            "x".into()
        )));
    }

    #[test]
    fn sub_names_are_unique() {
        let all = [
            Sub::Server,
            Sub::Database,
            Sub::StatDatabase,
            Sub::StatActivity,
            Sub::Locks,
            Sub::Settings,
            Sub::Bgwriter,
            Sub::StatUserTables,
        ];
        let names: HashSet<&str> = all.iter().map(|s| s.name()).collect();
        assert_eq!(names.len(), all.len());
    }
}
