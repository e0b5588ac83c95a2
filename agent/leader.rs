//! Leader election among aggregator replicas (`agent.leader_election`), with a Postgres session
//! advisory lock on the shared ledger database.
//!
//! The [`LeaderElector`] holds one dedicated Postgres connection (not a pooled one: a session
//! advisory lock belongs to the session that took it). A follower calls
//! `pg_try_advisory_lock(key)` every `retry_period`; the replica that gets it is the leader and
//! confirms, every `retry_period`, that its session still holds the lock (`pg_locks`). When it
//! cannot confirm within `renew_deadline` of the last confirmation (a partition, a slow or lost
//! server) it steps down and drops the connection. Leadership is published on a
//! `tokio::sync::watch` channel that the daemon hands to the notification dispatcher and
//! outbox, the SLO manager (period rows) and the Grafana sync; everything else (evaluation,
//! alert tracking, the APIs) runs on every replica. On a clean shutdown the daemon calls
//! [`LeaderElector::release`] after the outbox drained, so the next replica takes over at once.
//!
//! With leader election disabled (the default) the agent is always the leader. The knobs are
//! named as client-go's `leaderelection` (`renew_deadline`, `retry_period`); a lease duration
//! has no meaning for an advisory lock: Postgres frees it when the session ends. See
//! docs/leader-election.md.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

use serde::Deserialize;
use sha2::{Digest, Sha256};
use sqlx::postgres::{PgConnectOptions, PgConnection};
use sqlx::{ConnectOptions, Connection, Row};
use tokio::sync::{Mutex, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::api::metrics::{MetricsSource, MetricsWriter};
use crate::config::Problem;
use crate::config::secret::Secret;

/// Default `lock_name`.
pub const DEFAULT_LOCK_NAME: &str = "vigil-aggregator";

/// `agent.leader_election`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LeaderElectionConfig {
    /// Elect one leader among the agents that share the Postgres ledger and this `lock_name`:
    /// only the leader sends notifications, writes completed SLO periods and syncs Grafana.
    /// Needs a Postgres ledger (`agent.ledger_url*`). Default false: the agent always leads.
    #[serde(default)]
    pub enabled: bool,
    /// Name of the lock; the advisory lock key is derived from it. Give two Vigil deployments
    /// that share one database different names.
    #[serde(default = "default_lock_name")]
    pub lock_name: String,
    /// How long the leader keeps acting without confirming that it still holds the lock;
    /// after that it steps down. Must be longer than `retry_period`.
    #[serde(
        default = "default_renew_deadline",
        deserialize_with = "crate::config::duration"
    )]
    pub renew_deadline: Duration,
    /// How often a follower tries to take the lock and the leader confirms it holds it.
    #[serde(
        default = "default_retry_period",
        deserialize_with = "crate::config::duration"
    )]
    pub retry_period: Duration,
}

fn default_lock_name() -> String {
    DEFAULT_LOCK_NAME.to_string()
}
fn default_renew_deadline() -> Duration {
    Duration::from_secs(10)
}
fn default_retry_period() -> Duration {
    Duration::from_secs(2)
}

impl Default for LeaderElectionConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            lock_name: default_lock_name(),
            renew_deadline: default_renew_deadline(),
            retry_period: default_retry_period(),
        }
    }
}

impl LeaderElectionConfig {
    /// Checks the block; `postgres_ledger` says whether `agent.ledger_url*` points at (or may
    /// point at) a Postgres database. Problems are reported under `agent.leader_election`.
    pub fn validate(&self, postgres_ledger: bool, out: &mut Vec<Problem>) {
        const BLOCK: &str = "agent.leader_election";
        if self.enabled && !postgres_ledger {
            out.push(Problem::at(
                BLOCK,
                "enabled",
                "needs the shared Postgres ledger (the lock is a Postgres advisory lock); set agent.ledger_url_env (or agent.ledger_url / agent.ledger_url_file) to a postgres:// URL, or remove leader_election",
            ));
        }
        if self.lock_name.trim().is_empty() {
            out.push(Problem::at(
                BLOCK,
                "lock_name",
                "must not be empty; e.g. vigil-aggregator",
            ));
        }
        if self.retry_period.is_zero() {
            out.push(Problem::at(
                BLOCK,
                "retry_period",
                "must be more than 0s; e.g. 2s",
            ));
        }
        if self.retry_period >= self.renew_deadline {
            out.push(Problem::at(
                BLOCK,
                "retry_period",
                format!(
                    "{} is not shorter than renew_deadline ({}); the leader must be able to confirm the lock more than once before it steps down: e.g. retry_period: 2s, renew_deadline: 10s",
                    humantime::format_duration(self.retry_period),
                    humantime::format_duration(self.renew_deadline)
                ),
            ));
        }
    }
}

/// The advisory lock key of `lock_name`: the first 8 bytes of SHA-256("vigil leader election\0"
/// + lock_name), big-endian, as a signed 64-bit integer (the type of `pg_try_advisory_lock`).
pub fn lock_key(lock_name: &str) -> i64 {
    let mut h = Sha256::new();
    h.update(b"vigil leader election\0");
    h.update(lock_name.as_bytes());
    let d = h.finalize();
    let mut b = [0u8; 8];
    b.copy_from_slice(&d[..8]);
    i64::from_be_bytes(b)
}

/// Elects this replica leader (or not) and says so on a watch channel. Cheap to clone.
#[derive(Clone)]
pub struct LeaderElector {
    inner: Arc<Inner>,
}

struct Inner {
    cfg: LeaderElectionConfig,
    url: Option<Secret>,
    identity: String,
    key: i64,
    tx: watch::Sender<bool>,
    transitions: AtomicU64,
    last_transition_ms: AtomicI64,
    conn: Mutex<Option<PgConnection>>,
}

/// What `GET /api/v1/status/leader` answers.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LeaderStatus {
    /// `agent.role`.
    pub role: String,
    /// Whether leader election is on.
    pub enabled: bool,
    /// Whether this replica leads (always true when election is off).
    pub leader: bool,
    /// This replica's identity (`agent.id`, `$NODE_NAME` or the host name).
    pub identity: String,
    /// `agent.leader_election.lock_name`.
    pub lock_name: String,
    /// The advisory lock key derived from it.
    pub lock_key: i64,
    /// Times this replica gained or lost leadership.
    pub transitions: u64,
    /// When it last did (RFC 3339), or null.
    pub last_transition_time: Option<String>,
}

impl LeaderElector {
    /// An elector for `cfg`. With election disabled the agent is the leader from the start and
    /// [`LeaderElector::run`] returns at once; otherwise it starts as a follower. `url` is the
    /// Postgres ledger URL; `identity` names this replica in logs and the status.
    pub fn new(cfg: &LeaderElectionConfig, url: Option<Secret>, identity: String) -> Self {
        let enabled = cfg.enabled && url.is_some();
        let (tx, _) = watch::channel(!enabled);
        Self {
            inner: Arc::new(Inner {
                cfg: LeaderElectionConfig {
                    enabled,
                    ..cfg.clone()
                },
                url,
                identity,
                key: lock_key(&cfg.lock_name),
                tx,
                transitions: AtomicU64::new(0),
                last_transition_ms: AtomicI64::new(0),
                conn: Mutex::new(None),
            }),
        }
    }

    /// Follows leadership: true while this replica leads.
    pub fn subscribe(&self) -> watch::Receiver<bool> {
        self.inner.tx.subscribe()
    }

    /// Whether this replica leads now.
    pub fn is_leader(&self) -> bool {
        *self.inner.tx.borrow()
    }

    /// Whether election is on.
    pub fn enabled(&self) -> bool {
        self.inner.cfg.enabled
    }

    /// The status shown by the API, with `role` (`agent.role`).
    pub fn status(&self, role: &str) -> LeaderStatus {
        let ms = self.inner.last_transition_ms.load(Ordering::Relaxed);
        LeaderStatus {
            role: role.to_string(),
            enabled: self.inner.cfg.enabled,
            leader: self.is_leader(),
            identity: self.inner.identity.clone(),
            lock_name: self.inner.cfg.lock_name.clone(),
            lock_key: self.inner.key,
            transitions: self.inner.transitions.load(Ordering::Relaxed),
            last_transition_time: (ms > 0)
                .then(|| chrono::DateTime::from_timestamp_millis(ms))
                .flatten()
                .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)),
        }
    }

    /// `GET /api/v1/status/leader`: this replica's role and leadership, Prometheus-API style.
    pub fn router(&self, role: &str) -> axum::Router {
        let this = self.clone();
        let role = role.to_string();
        axum::Router::new().route(
            "/api/v1/status/leader",
            axum::routing::get(move || {
                let status = this.status(&role);
                async move { axum::Json(serde_json::json!({"status": "success", "data": status})) }
            }),
        )
    }

    fn set(&self, leader: bool, why: &str) {
        if *self.inner.tx.borrow() == leader {
            return;
        }
        self.inner.tx.send_replace(leader);
        self.inner.transitions.fetch_add(1, Ordering::Relaxed);
        self.inner
            .last_transition_ms
            .store(chrono::Utc::now().timestamp_millis(), Ordering::Relaxed);
        let (identity, lock) = (&self.inner.identity, &self.inner.cfg.lock_name);
        if leader {
            info!(identity = %identity, lock_name = %lock, "leader election: became the leader; sending notifications from now on");
        } else {
            warn!(identity = %identity, lock_name = %lock, reason = why, "leader election: stopped leading; another replica takes over");
        }
    }

    /// Takes and keeps the lock until `cancel`. Does not release it: the daemon calls
    /// [`LeaderElector::release`] once the notifications in flight are done.
    pub async fn run(self, cancel: CancellationToken) {
        let Some(url) = self.inner.url.clone() else {
            return;
        };
        if !self.inner.cfg.enabled {
            return;
        }
        let retry = self.inner.cfg.retry_period;
        let deadline = self.inner.cfg.renew_deadline;
        info!(
            identity = %self.inner.identity,
            lock_name = %self.inner.cfg.lock_name,
            lock_key = self.inner.key,
            renew_deadline = %humantime::format_duration(deadline),
            retry_period = %humantime::format_duration(retry),
            "leader election: started as a follower"
        );
        let mut last_confirmed = Instant::now();
        let mut quiet_errors = false;
        loop {
            let started = Instant::now();
            if self.is_leader() {
                // The leader confirms within what is left of its renew deadline.
                let left = (last_confirmed + deadline).saturating_duration_since(started);
                match tokio::time::timeout(left, self.confirm()).await {
                    Ok(Ok(true)) => last_confirmed = Instant::now(),
                    Ok(Ok(false)) => {
                        self.drop_connection().await;
                        self.set(false, "the session no longer holds the lock");
                    }
                    Ok(Err(e)) => {
                        self.drop_connection().await;
                        warn!(error = %e, "leader election: cannot confirm the lock");
                        self.set(false, "the connection holding the lock failed");
                    }
                    Err(_) => {
                        self.drop_connection().await;
                        self.set(false, "could not confirm the lock within renew_deadline");
                    }
                }
            } else {
                match tokio::time::timeout(deadline, self.try_acquire(&url)).await {
                    Ok(Ok(true)) => {
                        last_confirmed = Instant::now();
                        quiet_errors = false;
                        self.set(true, "");
                    }
                    Ok(Ok(false)) => quiet_errors = false,
                    Ok(Err(e)) => {
                        self.drop_connection().await;
                        if !quiet_errors {
                            warn!(error = %e, "leader election: cannot reach the ledger database; retrying every retry_period");
                        }
                        quiet_errors = true;
                    }
                    Err(_) => {
                        self.drop_connection().await;
                        if !quiet_errors {
                            warn!(
                                "leader election: the ledger database did not answer within renew_deadline; retrying"
                            );
                        }
                        quiet_errors = true;
                    }
                }
            }
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = tokio::time::sleep_until(started + retry) => {}
            }
        }
    }

    /// Connects if needed and tries the lock once.
    async fn try_acquire(&self, url: &Secret) -> Result<bool, sqlx::Error> {
        let mut guard = self.inner.conn.lock().await;
        if guard.is_none() {
            *guard = Some(self.connect(url).await?);
        }
        let Some(conn) = guard.as_mut() else {
            return Ok(false);
        };
        let row = sqlx::query("SELECT pg_try_advisory_lock($1)")
            .bind(self.inner.key)
            .fetch_one(&mut *conn)
            .await?;
        row.try_get::<bool, _>(0)
    }

    async fn connect(&self, url: &Secret) -> Result<PgConnection, sqlx::Error> {
        let opts: PgConnectOptions = url.expose().parse()?;
        let opts =
            opts.application_name(&format!("vigil leader election ({})", self.inner.identity));
        let mut conn = opts.connect().await?;
        // Let the server notice a vanished leader (and free its lock) only after the leader has
        // stepped down itself: idle + count * interval > renew_deadline. The leader's session
        // is never idle for long while it confirms every retry_period.
        let idle = self.inner.cfg.renew_deadline.as_secs().max(1);
        let interval = self.inner.cfg.retry_period.as_secs().max(1);
        for sql in [
            format!("SET tcp_keepalives_idle = {idle}"),
            format!("SET tcp_keepalives_interval = {interval}"),
            "SET tcp_keepalives_count = 3".to_string(),
        ] {
            if let Err(e) = sqlx::query(&sql).execute(&mut conn).await {
                warn!(error = %e, setting = %sql, "leader election: cannot set the session's TCP keepalives; the server's defaults apply");
            }
        }
        Ok(conn)
    }

    /// Whether this session still holds the lock.
    async fn confirm(&self) -> Result<bool, sqlx::Error> {
        let mut guard = self.inner.conn.lock().await;
        let Some(conn) = guard.as_mut() else {
            return Ok(false);
        };
        let k = self.inner.key as u64;
        let row = sqlx::query(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid() \
             AND granted AND classid::int8 = $1 AND objid::int8 = $2 AND objsubid = 1",
        )
        .bind((k >> 32) as i64)
        .bind((k & 0xffff_ffff) as i64)
        .fetch_one(&mut *conn)
        .await?;
        Ok(row.try_get::<i64, _>(0)? > 0)
    }

    async fn drop_connection(&self) {
        // Closing the socket lets the server end the session (and free the lock) at once when
        // it is reachable; otherwise it does after its TCP keepalives.
        if let Some(conn) = self.inner.conn.lock().await.take() {
            let _ = tokio::time::timeout(Duration::from_secs(1), conn.close()).await;
        }
    }

    /// Releases the lock and closes the connection (clean shutdown), so that another replica
    /// takes over at its next try instead of after the session times out.
    pub async fn release(&self) {
        if !self.inner.cfg.enabled {
            return;
        }
        let was_leader = self.is_leader();
        let mut guard = self.inner.conn.lock().await;
        if let Some(mut conn) = guard.take() {
            if was_leader {
                let unlock = sqlx::query("SELECT pg_advisory_unlock($1)")
                    .bind(self.inner.key)
                    .execute(&mut conn);
                match tokio::time::timeout(Duration::from_secs(2), unlock).await {
                    Ok(Ok(_)) => info!("leader election: lock released"),
                    Ok(Err(e)) => {
                        warn!(error = %e, "leader election: cannot release the lock; the server frees it when the session ends")
                    }
                    Err(_) => warn!(
                        "leader election: releasing the lock timed out; the server frees it when the session ends"
                    ),
                }
            }
            let _ = tokio::time::timeout(Duration::from_secs(1), conn.close()).await;
        }
        drop(guard);
        self.set(false, "shutting down");
    }
}

impl MetricsSource for LeaderElector {
    fn write_metrics(&self, w: &mut MetricsWriter) {
        w.family(
            "vigil_leader",
            "1 when this replica is the leader (sends notifications, writes SLO periods, syncs Grafana), 0 when it follows. Always 1 without leader election.",
            "gauge",
        );
        w.sample("vigil_leader", &[], f64::from(u8::from(self.is_leader())));
        w.family(
            "vigil_leader_transitions_total",
            "Times this replica became or stopped being the leader.",
            "counter",
        );
        w.sample(
            "vigil_leader_transitions_total",
            &[],
            self.inner.transitions.load(Ordering::Relaxed) as f64,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problems(cfg: &LeaderElectionConfig, pg: bool) -> Vec<String> {
        let mut out = Vec::new();
        cfg.validate(pg, &mut out);
        out.iter()
            .map(|p| format!("{}: {}", p.path, p.message))
            .collect()
    }

    #[test]
    fn validation_names_the_key_and_says_what_to_do() {
        let ok = LeaderElectionConfig {
            enabled: true,
            ..Default::default()
        };
        assert!(problems(&ok, true).is_empty());
        // Disabled never needs Postgres.
        assert!(problems(&LeaderElectionConfig::default(), false).is_empty());
        let p = problems(&ok, false);
        assert_eq!(p.len(), 1, "{p:?}");
        assert!(
            p[0].starts_with("agent.leader_election.enabled: needs the shared Postgres ledger")
        );
        assert!(p[0].contains("set agent.ledger_url_env"), "{p:?}");
        let slow = LeaderElectionConfig {
            enabled: true,
            retry_period: Duration::from_secs(10),
            renew_deadline: Duration::from_secs(10),
            ..Default::default()
        };
        let p = problems(&slow, true);
        assert_eq!(p.len(), 1, "{p:?}");
        assert!(
            p[0].starts_with(
                "agent.leader_election.retry_period: 10s is not shorter than renew_deadline (10s)"
            ),
            "{p:?}"
        );
        let empty = LeaderElectionConfig {
            lock_name: " ".into(),
            retry_period: Duration::ZERO,
            ..Default::default()
        };
        let p = problems(&empty, true);
        assert_eq!(p.len(), 2, "{p:?}");
        assert!(p[0].starts_with("agent.leader_election.lock_name"));
        assert!(p[1].starts_with("agent.leader_election.retry_period: must be more than 0s"));
    }

    #[test]
    fn lock_keys_are_stable_and_differ_by_name() {
        assert_eq!(lock_key("vigil-aggregator"), lock_key("vigil-aggregator"));
        assert_ne!(
            lock_key("vigil-aggregator"),
            lock_key("vigil-aggregator-staging")
        );
        // Pinned: a change would let two versions of Vigil lead at once during a rollout.
        let k = lock_key(DEFAULT_LOCK_NAME);
        let d = Sha256::digest(b"vigil leader election\0vigil-aggregator");
        assert_eq!(k.to_be_bytes(), d[..8]);
    }

    #[tokio::test]
    async fn disabled_means_always_leader() {
        let e = LeaderElector::new(&LeaderElectionConfig::default(), None, "a".into());
        assert!(e.is_leader());
        assert!(!e.enabled());
        e.clone().run(CancellationToken::new()).await;
        e.release().await;
        assert!(e.is_leader(), "release does nothing without election");
        let mut w = MetricsWriter::new();
        e.write_metrics(&mut w);
        let text = w.finish();
        assert!(text.contains("\nvigil_leader 1\n"), "{text}");
        assert!(
            text.contains("\nvigil_leader_transitions_total 0\n"),
            "{text}"
        );
        let s = e.status("standalone");
        assert_eq!((s.leader, s.enabled, s.transitions), (true, false, 0));
    }
}
