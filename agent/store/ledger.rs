//! The ledger: state that must survive a restart, in SQL through sqlx. SQLite (a file in
//! `agent.data_dir`) by default; Postgres when several agents share one. The same migrations
//! (`migrations/`, embedded with `sqlx::migrate!`) run on both at start.
//!
//! Today it records agent runs (start, liveness heartbeat, clean stop), which tells later readers
//! when the agent was down; the SLO and alerting issues add their tables.

use std::path::{Path, PathBuf};
use std::time::Duration;

use sqlx::any::{AnyPoolOptions, install_default_drivers};
use sqlx::{AnyPool, Row};

/// Errors of the ledger. Messages name the database and say what to do.
#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    /// Could not connect or open the file.
    #[error(
        "cannot open the ledger at {target}: {source}; check agent.data_dir (writable?) or the ledger URL"
    )]
    Open {
        /// File path or URL with the password removed.
        target: String,
        /// The driver's error.
        #[source]
        source: sqlx::Error,
    },
    /// A migration failed.
    #[error("cannot migrate the ledger at {target}: {source}")]
    Migrate {
        /// File path or URL with the password removed.
        target: String,
        /// The migrator's error.
        #[source]
        source: sqlx::migrate::MigrateError,
    },
    /// A query failed.
    #[error("ledger query failed ({what}): {source}")]
    Query {
        /// What was being done.
        what: &'static str,
        /// The driver's error.
        #[source]
        source: sqlx::Error,
    },
}

/// One run of an agent process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentRun {
    /// Agent identity.
    pub agent_id: String,
    /// Start, Unix milliseconds; with `agent_id` the key of the run.
    pub started_at_ms: i64,
    /// Vigil version.
    pub version: String,
    /// Last heartbeat, Unix milliseconds.
    pub last_seen_ms: i64,
    /// Clean stop, Unix milliseconds; None if the process died or is still running.
    pub stopped_at_ms: Option<i64>,
}

/// One bucket row: (slo id, group key, resolution seconds, start index, bad, total).
pub type BucketRow = (String, String, i64, i64, f64, f64);

/// A completed calendar period as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct PeriodRow {
    /// SLO id.
    pub slo: String,
    /// Group key.
    pub grp: String,
    /// Start, ms.
    pub start_ms: i64,
    /// End (exclusive), ms.
    pub end_ms: i64,
    /// Name (`2026-11`).
    pub name: String,
    /// Good events.
    pub good: f64,
    /// All events.
    pub total: f64,
    /// Objective ratio.
    pub objective: f64,
    /// Met or not.
    pub met: bool,
    /// Share of the budget used.
    pub budget_used: f64,
}

/// A handle to the ledger (cheap to clone).
#[derive(Debug, Clone)]
pub struct Ledger {
    pool: AnyPool,
    target: String,
    /// SQLite binds `$N` parameters by name lookup (linear in the number of parameters, so a
    /// multi-row statement costs O(n²)); positional `?` avoids that. Postgres needs `$N`.
    sqlite: bool,
}

/// Bucket rows per upsert statement (7 parameters each; well under SQLite's and Postgres'
/// parameter limits).
const BUCKET_CHUNK: usize = 200;

impl Ledger {
    /// The connection pool, for modules that keep their own tables (silences, outbox).
    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// Opens (creating if missing) the SQLite ledger `vigil.db` in `data_dir` and migrates it.
    pub async fn open_sqlite(data_dir: &Path) -> Result<Self, LedgerError> {
        let file: PathBuf = data_dir.join("vigil.db");
        let url = format!("sqlite://{}?mode=rwc", file.display());
        let ledger = Self::connect(&url, file.display().to_string(), 1).await?;
        // WAL lets readers (API) proceed while a round writes; the setting persists in the file.
        sqlx::query("PRAGMA journal_mode=WAL")
            .execute(&ledger.pool)
            .await
            .map_err(|source| LedgerError::Query {
                what: "enable WAL",
                source,
            })?;
        Ok(ledger)
    }

    /// Opens a ledger by URL (`postgres://…` or `sqlite://…`) and migrates it.
    pub async fn open_url(url: &str) -> Result<Self, LedgerError> {
        Self::connect(url, redact_url(url), 4).await
    }

    async fn connect(url: &str, target: String, max: u32) -> Result<Self, LedgerError> {
        install_default_drivers();
        let pool = AnyPoolOptions::new()
            .max_connections(max)
            .acquire_timeout(Duration::from_secs(10))
            .connect(url)
            .await
            .map_err(|source| LedgerError::Open {
                target: target.clone(),
                source,
            })?;
        // A shared ledger may already carry migrations of a newer agent (a rolling upgrade of
        // the DaemonSet): older agents keep working with the tables they know.
        let mut migrator = sqlx::migrate!("./migrations");
        migrator.set_ignore_missing(true);
        migrator
            .run(&pool)
            .await
            .map_err(|source| LedgerError::Migrate {
                target: target.clone(),
                source,
            })?;
        let sqlite = url.starts_with("sqlite:");
        Ok(Self {
            pool,
            target,
            sqlite,
        })
    }

    /// The file or redacted URL, for logs.
    pub fn target(&self) -> &str {
        &self.target
    }

    /// Records the start of a run.
    pub async fn start_run(
        &self,
        agent_id: &str,
        version: &str,
        now_ms: i64,
    ) -> Result<(), LedgerError> {
        sqlx::query(
            "INSERT INTO agent_runs (agent_id, started_at_ms, version, last_seen_ms) VALUES ($1, $2, $3, $4)",
        )
        .bind(agent_id)
        .bind(now_ms)
        .bind(version)
        .bind(now_ms)
        .execute(&self.pool)
        .await
        .map_err(|source| LedgerError::Query { what: "start run", source })?;
        Ok(())
    }

    /// Records that the run is alive at `now_ms`.
    pub async fn heartbeat(
        &self,
        agent_id: &str,
        started_at_ms: i64,
        now_ms: i64,
    ) -> Result<(), LedgerError> {
        sqlx::query(
            "UPDATE agent_runs SET last_seen_ms = $1 WHERE agent_id = $2 AND started_at_ms = $3",
        )
        .bind(now_ms)
        .bind(agent_id)
        .bind(started_at_ms)
        .execute(&self.pool)
        .await
        .map_err(|source| LedgerError::Query {
            what: "heartbeat",
            source,
        })?;
        Ok(())
    }

    /// Records a clean stop.
    pub async fn finish_run(
        &self,
        agent_id: &str,
        started_at_ms: i64,
        now_ms: i64,
    ) -> Result<(), LedgerError> {
        sqlx::query(
            "UPDATE agent_runs SET last_seen_ms = $1, stopped_at_ms = $1 WHERE agent_id = $2 AND started_at_ms = $3",
        )
        .bind(now_ms)
        .bind(agent_id)
        .bind(started_at_ms)
        .execute(&self.pool)
        .await
        .map_err(|source| LedgerError::Query { what: "finish run", source })?;
        Ok(())
    }

    /// The most recent runs of `agent_id`, newest first.
    pub async fn runs(&self, agent_id: &str, limit: i64) -> Result<Vec<AgentRun>, LedgerError> {
        let rows = sqlx::query(
            "SELECT agent_id, started_at_ms, version, last_seen_ms, stopped_at_ms FROM agent_runs \
             WHERE agent_id = $1 ORDER BY started_at_ms DESC LIMIT $2",
        )
        .bind(agent_id)
        .bind(limit)
        .fetch_all(&self.pool)
        .await
        .map_err(|source| LedgerError::Query {
            what: "list runs",
            source,
        })?;
        rows.iter()
            .map(|r| {
                Ok(AgentRun {
                    agent_id: r.try_get(0)?,
                    started_at_ms: r.try_get(1)?,
                    version: r.try_get(2)?,
                    last_seen_ms: r.try_get(3)?,
                    stopped_at_ms: r.try_get(4)?,
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(|source| LedgerError::Query {
                what: "decode runs",
                source,
            })
    }

    /// Writes one evaluation round in one transaction: bucket rows of this agent (upserted),
    /// completed periods, and the run's heartbeat.
    pub async fn write_round(
        &self,
        agent_id: &str,
        buckets: &[BucketRow],
        periods: &[PeriodRow],
        heartbeat: (i64, i64),
    ) -> Result<(), LedgerError> {
        let q = |what| move |source| LedgerError::Query { what, source };
        let mut tx = self.pool.begin().await.map_err(q("begin round"))?;
        // Multi-row upserts: one statement per BUCKET_CHUNK rows instead of one per row (a round
        // of 1,000 SLOs writes ~2,000 rows; statement overhead dominated the round's CPU).
        for chunk in buckets.chunks(BUCKET_CHUNK) {
            let mut sql = String::with_capacity(160 + chunk.len() * 40);
            sql.push_str(
                "INSERT INTO slo_buckets (slo, grp, agent_id, resolution_s, start_idx, bad, total) VALUES ",
            );
            for r in 0..chunk.len() {
                let b = r * 7;
                if r > 0 {
                    sql.push(',');
                }
                if self.sqlite {
                    sql.push_str("(?, ?, ?, ?, ?, ?, ?)");
                } else {
                    sql.push_str(&format!(
                        "(${}, ${}, ${}, ${}, ${}, ${}, ${})",
                        b + 1,
                        b + 2,
                        b + 3,
                        b + 4,
                        b + 5,
                        b + 6,
                        b + 7
                    ));
                }
            }
            sql.push_str(
                " ON CONFLICT (slo, grp, agent_id, resolution_s, start_idx) DO UPDATE SET bad = excluded.bad, total = excluded.total",
            );
            let mut query = sqlx::query(&sql);
            for (slo, grp, res, idx, bad, total) in chunk {
                query = query
                    .bind(slo)
                    .bind(grp)
                    .bind(agent_id)
                    .bind(res)
                    .bind(idx)
                    .bind(bad)
                    .bind(total);
            }
            query.execute(&mut *tx).await.map_err(q("write bucket"))?;
        }
        for p in periods {
            sqlx::query(
                "INSERT INTO slo_periods (slo, grp, start_ms, end_ms, name, good, total, objective, met, budget_used)                  VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT (slo, grp, start_ms) DO NOTHING",
            )
            .bind(&p.slo)
            .bind(&p.grp)
            .bind(p.start_ms)
            .bind(p.end_ms)
            .bind(&p.name)
            .bind(p.good)
            .bind(p.total)
            .bind(p.objective)
            .bind(i64::from(p.met))
            .bind(p.budget_used)
            .execute(&mut *tx)
            .await
            .map_err(q("write period"))?;
        }
        sqlx::query(
            "UPDATE agent_runs SET last_seen_ms = $1 WHERE agent_id = $2 AND started_at_ms = $3",
        )
        .bind(heartbeat.1)
        .bind(agent_id)
        .bind(heartbeat.0)
        .execute(&mut *tx)
        .await
        .map_err(q("heartbeat"))?;
        tx.commit().await.map_err(q("commit round"))?;
        Ok(())
    }

    /// Bucket rows newer than the given start indices (minute rows from `min_minute`, hour
    /// rows from `min_hour`), summed over `agents` (None: every agent), for loading at start.
    pub async fn load_buckets(
        &self,
        min_minute: i64,
        min_hour: i64,
        agent: Option<&str>,
    ) -> Result<Vec<BucketRow>, LedgerError> {
        let rows = sqlx::query(
            "SELECT slo, grp, resolution_s, start_idx, SUM(bad), SUM(total) FROM slo_buckets              WHERE ((resolution_s = 60 AND start_idx >= $1) OR (resolution_s = 3600 AND start_idx >= $2))              AND ($3 = '' OR agent_id = $3)              GROUP BY slo, grp, resolution_s, start_idx",
        )
        .bind(min_minute)
        .bind(min_hour)
        .bind(agent.unwrap_or(""))
        .fetch_all(&self.pool)
        .await
        .map_err(|source| LedgerError::Query { what: "load buckets", source })?;
        rows.iter()
            .map(|r| {
                Ok((
                    r.try_get(0)?,
                    r.try_get(1)?,
                    r.try_get(2)?,
                    r.try_get(3)?,
                    r.try_get(4)?,
                    r.try_get(5)?,
                ))
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(|source| LedgerError::Query {
                what: "decode buckets",
                source,
            })
    }

    /// Deletes bucket rows older than the given indices (retention).
    pub async fn prune_buckets(&self, min_minute: i64, min_hour: i64) -> Result<u64, LedgerError> {
        let r = sqlx::query(
            "DELETE FROM slo_buckets WHERE (resolution_s = 60 AND start_idx < $1) OR (resolution_s = 3600 AND start_idx < $2)",
        )
        .bind(min_minute)
        .bind(min_hour)
        .execute(&self.pool)
        .await
        .map_err(|source| LedgerError::Query { what: "prune buckets", source })?;
        Ok(r.rows_affected())
    }

    /// Completed periods of `slo`, newest first.
    pub async fn periods(&self, slo: &str, limit: i64) -> Result<Vec<PeriodRow>, LedgerError> {
        let rows = sqlx::query(
            "SELECT slo, grp, start_ms, end_ms, name, good, total, objective, met, budget_used FROM slo_periods              WHERE slo = $1 ORDER BY start_ms DESC LIMIT $2",
        )
        .bind(slo)
        .bind(limit)
        .fetch_all(&self.pool)
        .await
        .map_err(|source| LedgerError::Query { what: "list periods", source })?;
        rows.iter()
            .map(|r| {
                Ok(PeriodRow {
                    slo: r.try_get(0)?,
                    grp: r.try_get(1)?,
                    start_ms: r.try_get(2)?,
                    end_ms: r.try_get(3)?,
                    name: r.try_get(4)?,
                    good: r.try_get(5)?,
                    total: r.try_get(6)?,
                    objective: r.try_get(7)?,
                    met: r.try_get::<i64, _>(8)? != 0,
                    budget_used: r.try_get(9)?,
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(|source| LedgerError::Query {
                what: "decode periods",
                source,
            })
    }

    /// Closes the pool, waiting for in-flight writes.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// A URL with its password replaced by `***`, for logs and errors.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let (authority, tail) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _password)) => format!("{scheme}://{user}:***@{host}{tail}"),
            None => url.to_string(),
        },
        None => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_passwords() {
        assert_eq!(
            redact_url("postgres://u:secret@h:5432/db"),
            "postgres://u:***@h:5432/db"
        );
        assert_eq!(redact_url("postgres://h/db"), "postgres://h/db");
        assert_eq!(redact_url("postgres://u@h/db"), "postgres://u@h/db");
        assert_eq!(redact_url("sqlite://x.db"), "sqlite://x.db");
    }

    #[tokio::test]
    async fn runs_survive_reopen() {
        let dir = tempfile::tempdir().expect("tempdir");
        let l = Ledger::open_sqlite(dir.path()).await.expect("open");
        l.start_run("a", "0.1.0", 1_000).await.expect("start");
        l.heartbeat("a", 1_000, 5_000).await.expect("beat");
        l.close().await;
        // A second open runs the migrations again (a no-op) and sees the first run, not stopped.
        let l = Ledger::open_sqlite(dir.path()).await.expect("reopen");
        l.start_run("a", "0.1.0", 9_000).await.expect("start 2");
        l.finish_run("a", 9_000, 12_000).await.expect("finish");
        let runs = l.runs("a", 10).await.expect("runs");
        assert_eq!(runs.len(), 2);
        assert_eq!(runs[0].stopped_at_ms, Some(12_000));
        assert_eq!((runs[1].last_seen_ms, runs[1].stopped_at_ms), (5_000, None));
    }
}
