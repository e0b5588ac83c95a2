//! Durable delivery: every [`Notification`] from the dispatcher is written to the ledger
//! (`migrations/20261122000004_outbox.sql`) before anything is sent, one delivery row per
//! integration of its receiver. A scheduler sends due rows (up to [`MAX_IN_FLIGHT`] at once),
//! retries failures with exponential backoff and jitter up to the receiver's `max_attempts`,
//! then marks them failed; after a restart the pending rows are sent. For one group and one
//! integration only the newest pending notification is sent (older pending ones are
//! superseded: the newest carries the group's current state), and never two at once, so a
//! resolve cannot overtake its trigger.
//!
//! Guarantee: at least once, with a stable key. A row is marked sent only after the receiver
//! accepted it; a crash between the two re-sends it after the restart with the same
//! `Idempotency-Key` header (webhook), Message-ID (email), `dedup_key` (PagerDuty) or label
//! set (Alertmanager). Exactly once therefore holds for receivers that deduplicate on those;
//! Slack and plain SMTP relays may show the rare duplicate.
//!
//! Also here: re-pushing firing alerts to `alertmanager_configs` every resend interval, the
//! history behind `GET /api/v1/alerts/history` with its retention, and the `/metrics` families
//! `vigil_notifications_*` and `vigil_notification_*`. Run by the daemon.

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use sqlx::Row;
use tokio::sync::{Notify, mpsc, watch};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info, warn};

use super::Notification;
use super::config::AlertingConfig;
use super::receivers::{
    DeliveryConfig, Integration, ReceiverConfig, SendContext, SendError, for_integration, starts_ms,
};
use crate::alert::{Alert, AlertState};
use crate::api::metrics::{MetricsSource, MetricsWriter};
use crate::store::ledger::Ledger;

/// Most sends in flight at once.
pub const MAX_IN_FLIGHT: usize = 32;

/// How often old history rows are pruned.
const PRUNE_EVERY: Duration = Duration::from_secs(3600);

/// How long shutdown waits for sends in flight (they stay pending if cut off).
const DRAIN_GRACE: Duration = Duration::from_secs(2);

/// Errors of the outbox's ledger access.
#[derive(Debug, thiserror::Error)]
pub enum OutboxError {
    /// A query failed.
    #[error("notification outbox: ledger query failed ({what}): {source}")]
    Query {
        /// What was being done.
        what: &'static str,
        /// The driver's error.
        #[source]
        source: sqlx::Error,
    },
    /// A notification could not be encoded.
    #[error("notification outbox: cannot encode notification {key}: {source}")]
    Encode {
        /// Its idempotency key.
        key: String,
        /// The encoder's error.
        #[source]
        source: serde_json::Error,
    },
}

fn q(what: &'static str) -> impl FnOnce(sqlx::Error) -> OutboxError {
    move |source| OutboxError::Query { what, source }
}

/// Persists notifications in the ledger and delivers them. Cheap to clone.
#[derive(Clone)]
pub struct Outbox {
    inner: Arc<Inner>,
}

struct Inner {
    ledger: Ledger,
    config: RwLock<Arc<AlertingConfig>>,
    http: reqwest::Client,
    wake: Notify,
    in_flight: Mutex<HashSet<String>>,
    /// Latest notification pushed per (receiver, integration, group) with firing alerts: what
    /// the Alertmanager re-push sends.
    am_active: Mutex<BTreeMap<(String, String, String), Notification>>,
    metrics: Mutex<Metrics>,
}

/// Latency buckets (seconds) of both histograms.
const BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0,
];

#[derive(Debug, Clone, Default)]
struct Histogram {
    counts: Vec<u64>,
    sum: f64,
    count: u64,
}

impl Histogram {
    fn observe(&mut self, v: f64) {
        if self.counts.is_empty() {
            self.counts = vec![0; BUCKETS.len()];
        }
        for (i, b) in BUCKETS.iter().enumerate() {
            if v <= *b {
                self.counts[i] += 1;
            }
        }
        self.sum += v;
        self.count += 1;
    }

    fn write(&self, w: &mut MetricsWriter, name: &str, labels: &[(&str, &str)]) {
        let bucket = format!("{name}_bucket");
        for (i, b) in BUCKETS.iter().enumerate() {
            let le = b.to_string();
            let mut l = labels.to_vec();
            l.push(("le", &le));
            w.sample(&bucket, &l, self.counts.get(i).copied().unwrap_or(0) as f64);
        }
        let mut l = labels.to_vec();
        l.push(("le", "+Inf"));
        w.sample(&bucket, &l, self.count as f64);
        w.sample(&format!("{name}_sum"), labels, self.sum);
        w.sample(&format!("{name}_count"), labels, self.count as f64);
    }
}

#[derive(Debug, Default)]
struct Metrics {
    enqueued: BTreeMap<String, u64>,
    sent: BTreeMap<(String, String), u64>,
    errors: BTreeMap<(String, String), u64>,
    failed: BTreeMap<String, u64>,
    superseded: BTreeMap<String, u64>,
    pending: u64,
    latency: BTreeMap<String, Histogram>,
    delay: BTreeMap<String, Histogram>,
    am_resends: u64,
    am_resend_errors: u64,
}

/// One delivery (a notification to one integration), as the history shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DeliveryRecord {
    /// Idempotency key of the notification plus the integration id.
    pub delivery_key: String,
    /// The notification's idempotency key.
    pub idempotency_key: String,
    /// Receiver name.
    pub receiver: String,
    /// Integration id (`webhook[0]`, `email[1]`, ...).
    pub integration: String,
    /// Group key.
    pub group_key: String,
    /// `firing` or `resolved`.
    pub status: String,
    /// `pending`, `sent`, `failed`, `superseded` or `skipped`.
    pub state: String,
    /// Attempts made.
    pub attempts: i64,
    /// When the dispatcher emitted the notification (ms).
    pub created_ms: i64,
    /// Next attempt (ms), for pending rows.
    pub next_attempt_ms: i64,
    /// Last attempt (ms).
    pub last_attempt_ms: Option<i64>,
    /// When the receiver accepted it (ms).
    pub sent_ms: Option<i64>,
    /// Error of the last failed attempt.
    pub last_error: Option<String>,
    /// The alerts in the notification.
    pub alerts: Vec<AlertRef>,
}

/// An alert as referenced from a delivery.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AlertRef {
    /// Alertmanager fingerprint.
    pub fingerprint: String,
    /// `alertname` label.
    pub alertname: String,
    /// `firing` or `resolved`.
    pub status: String,
}

/// When one alert (fingerprint) fired and resolved, derived from the notifications about it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AlertTimeline {
    /// Alertmanager fingerprint.
    pub fingerprint: String,
    /// `alertname` label.
    pub alertname: String,
    /// All labels.
    pub labels: BTreeMap<String, String>,
    /// One entry per firing, oldest first.
    pub firings: Vec<Firing>,
}

/// One firing of an alert.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Firing {
    /// `startsAt` (ms).
    pub starts_ms: i64,
    /// `endsAt` (ms) once a notification reported it resolved.
    pub ends_ms: Option<i64>,
    /// Notifications that carried this firing.
    pub notifications: u64,
}

/// Filters of the history.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct HistoryQuery {
    /// Only this receiver.
    #[serde(default)]
    pub receiver: Option<String>,
    /// Only notifications about this alert fingerprint.
    #[serde(default)]
    pub fingerprint: Option<String>,
    /// Only this delivery state.
    #[serde(default)]
    pub state: Option<String>,
    /// Only notifications created at or after this time (ms).
    #[serde(default)]
    pub since_ms: Option<i64>,
    /// Most deliveries returned (newest first). Default 100, at most 1000.
    #[serde(default)]
    pub limit: Option<i64>,
}

/// What `GET /api/v1/alerts/history` answers.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct History {
    /// Deliveries, newest first.
    pub notifications: Vec<DeliveryRecord>,
    /// Per alert fingerprint, when it fired and resolved.
    pub alerts: Vec<AlertTimeline>,
}

/// The stored form of a notification (the types in `alert`/`notify` serialize only).
#[derive(Debug, Clone, Deserialize)]
struct StoredNotification {
    receiver: String,
    group_key: String,
    group_labels: BTreeMap<String, String>,
    alerts: Vec<StoredAlert>,
    idempotency_key: String,
    created_ms: i64,
}

#[derive(Debug, Clone, Deserialize)]
struct StoredAlert {
    labels: BTreeMap<String, String>,
    annotations: BTreeMap<String, String>,
    state: String,
    active_at_ms: i64,
    fired_at_ms: Option<i64>,
    resolved_at_ms: Option<i64>,
    value: Option<f64>,
    inhibited_by: Option<String>,
    generator_url: String,
}

fn decode(payload: &str) -> Result<Notification, serde_json::Error> {
    let s: StoredNotification = serde_json::from_str(payload)?;
    Ok(Notification {
        receiver: s.receiver,
        group_key: s.group_key,
        group_labels: s.group_labels,
        alerts: s
            .alerts
            .into_iter()
            .map(|a| Alert {
                labels: a.labels,
                annotations: a.annotations,
                state: match a.state.as_str() {
                    "firing" => AlertState::Firing,
                    "resolved" => AlertState::Resolved,
                    _ => AlertState::Pending,
                },
                active_at_ms: a.active_at_ms,
                fired_at_ms: a.fired_at_ms,
                resolved_at_ms: a.resolved_at_ms,
                // serde_json writes NaN and infinities as null.
                value: a.value.unwrap_or(f64::NAN),
                inhibited_by: a.inhibited_by,
                generator_url: a.generator_url,
            })
            .collect(),
        idempotency_key: s.idempotency_key,
        created_ms: s.created_ms,
    })
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// The newest notification of every (group, receiver) in the ledger: what the receivers were
/// told (or will be, for pending deliveries). A new leader's dispatcher starts from it.
pub(crate) async fn last_told(ledger: &Ledger) -> Result<Vec<Notification>, OutboxError> {
    let rows = sqlx::query(
        "SELECT n.payload FROM outbox_notifications n WHERE n.created_ms = \
         (SELECT MAX(m.created_ms) FROM outbox_notifications m WHERE m.receiver = n.receiver AND m.group_key = n.group_key) \
         ORDER BY n.created_ms, n.idempotency_key",
    )
    .fetch_all(ledger.pool())
    .await
    .map_err(q("list last notifications"))?;
    let mut out: BTreeMap<(String, String), Notification> = BTreeMap::new();
    for r in rows {
        let payload: String = r.try_get(0).map_err(q("decode last notifications"))?;
        match decode(&payload) {
            // Ties on created_ms: the later key in order wins, as the scheduler's order does.
            Ok(n) => {
                out.insert((n.group_key.clone(), n.receiver.clone()), n);
            }
            Err(e) => warn!(error = %e, "a stored notification cannot be decoded; skipped"),
        }
    }
    Ok(out.into_values().collect())
}

/// Wait before attempt `attempts + 1` after `attempts` failures: `min * 2^(attempts-1)`
/// capped at `max`, with jitter (uniform between half and all of it).
pub fn backoff(attempts: u32, min: Duration, max: Duration) -> Duration {
    let exp = attempts.saturating_sub(1).min(30);
    let base = min.saturating_mul(1u32 << exp).min(max);
    let half = base / 2;
    half + half.mul_f64(fastrand::f64())
}

/// A pending delivery row.
#[derive(Debug, Clone)]
struct Pending {
    delivery_key: String,
    idempotency_key: String,
    receiver: String,
    integration: String,
    group_key: String,
    created_ms: i64,
    attempts: i64,
    next_attempt_ms: i64,
}

impl Outbox {
    /// An outbox over `ledger` for the receivers of `config`.
    pub async fn new(config: Arc<AlertingConfig>, ledger: Ledger) -> Self {
        let http = reqwest::Client::builder()
            .user_agent(super::receivers::USER_AGENT)
            .build()
            .unwrap_or_default();
        Self {
            inner: Arc::new(Inner {
                ledger,
                config: RwLock::new(config),
                http,
                wake: Notify::new(),
                in_flight: Mutex::new(HashSet::new()),
                am_active: Mutex::new(BTreeMap::new()),
                metrics: Mutex::new(Metrics::default()),
            }),
        }
    }

    /// A new configuration (reload). Pending rows are sent with the new receivers' settings;
    /// rows of receivers or integrations that no longer exist fail with a message saying so.
    pub fn apply_config(&self, config: Arc<AlertingConfig>) {
        if let Ok(mut c) = self.inner.config.write() {
            *c = config;
        }
        self.inner.wake.notify_one();
    }

    fn config(&self) -> Arc<AlertingConfig> {
        self.inner
            .config
            .read()
            .map(|c| c.clone())
            .unwrap_or_default()
    }

    /// The delivery settings (the alerts files' `delivery:` section).
    fn delivery(&self) -> DeliveryConfig {
        self.config().delivery.clone()
    }

    /// Persists and delivers what arrives on `rx` (and what was pending at start) until
    /// `cancel`. On cancel, what is still queued in `rx` is persisted, and sends in flight get
    /// a short grace; whatever is cut off stays pending for the next start.
    pub async fn run(self, rx: mpsc::Receiver<Notification>, cancel: CancellationToken) {
        let (_keep, leader) = watch::channel(true);
        self.run_with_leader(rx, cancel, leader).await;
    }

    /// [`Outbox::run`] that delivers only while `leader` is true (`agent.leader_election`): a
    /// follower still persists what reaches it but sends nothing, re-pushes nothing to
    /// Alertmanagers and prunes nothing. On becoming the leader it sends every pending
    /// delivery in the ledger, including those the previous leader enqueued.
    pub async fn run_with_leader(
        self,
        mut rx: mpsc::Receiver<Notification>,
        cancel: CancellationToken,
        mut leader: watch::Receiver<bool>,
    ) {
        let mut leading = *leader.borrow_and_update();
        let mut watching = true;
        if leading {
            if let Err(e) = self.rebuild_am_active().await {
                warn!(error = %e, "cannot restore the alerts pushed to Alertmanager");
            }
            self.prune_logged().await;
        }
        let mut last_prune = Instant::now();
        let mut tasks: JoinSet<()> = JoinSet::new();
        let mut rx_open = true;
        let mut resend_every = self.delivery().resend_interval;
        let mut resend = tokio::time::interval(resend_every);
        resend.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        resend.tick().await;
        loop {
            let now_leading = *leader.borrow_and_update();
            if now_leading != leading {
                leading = now_leading;
                if leading {
                    info!(
                        "notification outbox: leading; sending the pending deliveries in the ledger"
                    );
                    if let Err(e) = self.rebuild_am_active().await {
                        warn!(error = %e, "cannot restore the alerts pushed to Alertmanager");
                    }
                } else {
                    info!(
                        "notification outbox: following; the leader sends the pending deliveries"
                    );
                    if let Ok(mut am) = self.inner.am_active.lock() {
                        am.clear();
                    }
                }
            }
            let next_due = if !leading {
                None
            } else {
                match self.schedule(&mut tasks).await {
                    Ok(n) => n,
                    Err(e) => {
                        error!(error = %e, "notification outbox cannot read pending deliveries");
                        Some(now_ms() + 5_000)
                    }
                }
            };
            let wait = next_due
                .map(|due| Duration::from_millis(u64::try_from(due - now_ms()).unwrap_or(0)))
                .unwrap_or(Duration::from_secs(30))
                .min(Duration::from_secs(30));
            tokio::select! {
                biased;
                _ = cancel.cancelled() => break,
                n = rx.recv(), if rx_open => match n {
                    Some(n) => {
                        self.enqueue_logged(&n).await;
                        // A burst is persisted before the next scheduling pass.
                        for _ in 0..256 {
                            let Ok(n) = rx.try_recv() else { break };
                            self.enqueue_logged(&n).await;
                        }
                    }
                    None => rx_open = false,
                },
                Some(_) = tasks.join_next(), if !tasks.is_empty() => {
                    while tasks.try_join_next().is_some() {}
                }
                _ = self.inner.wake.notified() => {}
                changed = leader.changed(), if watching => {
                    if changed.is_err() {
                        watching = false;
                    }
                }
                _ = resend.tick() => if leading { self.resend_alertmanager(&mut tasks) },
                _ = tokio::time::sleep(wait) => {}
            }
            let every = self.delivery().resend_interval;
            if every != resend_every {
                resend_every = every;
                resend = tokio::time::interval(every);
                resend.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                resend.tick().await;
            }
            if leading && last_prune.elapsed() >= PRUNE_EVERY {
                last_prune = Instant::now();
                self.prune_logged().await;
            }
        }
        // Persist what the dispatcher already handed over, then let sends in flight finish.
        while let Ok(n) = rx.try_recv() {
            self.enqueue_logged(&n).await;
        }
        let drained = tokio::time::timeout(DRAIN_GRACE, async {
            while tasks.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            info!(
                in_flight = tasks.len(),
                "notification outbox stopped with sends in flight; they stay pending and are sent after the restart"
            );
        }
    }

    async fn enqueue_logged(&self, n: &Notification) {
        match self.enqueue(n).await {
            Ok(true) => {}
            Ok(false) => debug!(key = %n.idempotency_key, "notification already in the outbox"),
            Err(e) => error!(
                error = %e,
                receiver = %n.receiver,
                key = %n.idempotency_key,
                "cannot persist a notification; it is not sent"
            ),
        }
    }

    /// Writes `n` and one delivery row per integration of its receiver to the ledger in one
    /// transaction. Ok(false) when a notification with the same idempotency key is already
    /// there (nothing is written).
    pub async fn enqueue(&self, n: &Notification) -> Result<bool, OutboxError> {
        let cfg = self.config();
        let receiver = cfg.receivers.iter().find(|r| r.name == n.receiver);
        if receiver.is_none() {
            warn!(receiver = %n.receiver, "notification for a receiver that is not configured; recorded, not sent");
        }
        let payload = serde_json::to_string(n).map_err(|source| OutboxError::Encode {
            key: n.idempotency_key.clone(),
            source,
        })?;
        let pool = self.inner.ledger.pool();
        let mut tx = pool.begin().await.map_err(q("begin enqueue"))?;
        let inserted = sqlx::query(
            "INSERT INTO outbox_notifications (idempotency_key, receiver, group_key, status, payload, created_ms) \
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (idempotency_key) DO NOTHING",
        )
        .bind(&n.idempotency_key)
        .bind(&n.receiver)
        .bind(&n.group_key)
        .bind(n.status())
        .bind(&payload)
        .bind(n.created_ms)
        .execute(&mut *tx)
        .await
        .map_err(q("insert notification"))?
        .rows_affected();
        if inserted == 0 {
            tx.rollback().await.map_err(q("rollback enqueue"))?;
            return Ok(false);
        }
        let mut rows = 0;
        if let Some(r) = receiver {
            for (id, integ) in r.integrations() {
                if for_integration(n, integ.send_resolved()).is_none() {
                    continue;
                }
                rows += 1;
                sqlx::query(
                    "INSERT INTO outbox_deliveries (delivery_key, idempotency_key, receiver, integration, group_key, created_ms, state, attempts, next_attempt_ms) \
                     VALUES ($1, $2, $3, $4, $5, $6, 'pending', 0, $7) ON CONFLICT (delivery_key) DO NOTHING",
                )
                .bind(format!("{}/{id}", n.idempotency_key))
                .bind(&n.idempotency_key)
                .bind(&n.receiver)
                .bind(&id)
                .bind(&n.group_key)
                .bind(n.created_ms)
                .bind(n.created_ms)
                .execute(&mut *tx)
                .await
                .map_err(q("insert delivery"))?;
            }
        }
        for a in &n.alerts {
            if a.state == AlertState::Pending {
                continue;
            }
            let labels = serde_json::to_string(&a.labels).unwrap_or_else(|_| "{}".into());
            sqlx::query(
                "INSERT INTO outbox_alerts (idempotency_key, fingerprint, alertname, labels, status, starts_ms, ends_ms, created_ms) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (idempotency_key, fingerprint) DO NOTHING",
            )
            .bind(&n.idempotency_key)
            .bind(a.fingerprint())
            .bind(a.labels.get("alertname").cloned().unwrap_or_default())
            .bind(labels)
            .bind(super::receivers::alert_status(a))
            .bind(starts_ms(a))
            .bind(a.resolved_at_ms.filter(|_| a.state == AlertState::Resolved))
            .bind(n.created_ms)
            .execute(&mut *tx)
            .await
            .map_err(q("insert alert"))?;
        }
        tx.commit().await.map_err(q("commit enqueue"))?;
        if let Ok(mut m) = self.inner.metrics.lock() {
            *m.enqueued.entry(n.receiver.clone()).or_default() += 1;
            m.pending += rows;
        }
        self.inner.wake.notify_one();
        Ok(true)
    }

    /// Sends the due pending deliveries that are not in flight (newest per group and
    /// integration; older ones superseded); returns when the next one is due (ms).
    async fn schedule(&self, tasks: &mut JoinSet<()>) -> Result<Option<i64>, OutboxError> {
        let pool = self.inner.ledger.pool();
        // Snapshot the sends in flight before reading the rows: a send that finishes in between
        // has committed its row before leaving the set, so the read sees it as done and it is
        // not sent twice.
        let in_flight: HashSet<String> = self
            .inner
            .in_flight
            .lock()
            .map(|s| s.clone())
            .unwrap_or_default();
        let rows = sqlx::query(
            "SELECT delivery_key, idempotency_key, receiver, integration, group_key, created_ms, attempts, next_attempt_ms \
             FROM outbox_deliveries WHERE state = 'pending' ORDER BY created_ms, delivery_key LIMIT 10000",
        )
        .fetch_all(pool)
        .await
        .map_err(q("list pending"))?;
        let mut groups: BTreeMap<(String, String, String), Vec<Pending>> = BTreeMap::new();
        for r in &rows {
            let p = Pending {
                delivery_key: r.try_get(0).map_err(q("decode pending"))?,
                idempotency_key: r.try_get(1).map_err(q("decode pending"))?,
                receiver: r.try_get(2).map_err(q("decode pending"))?,
                integration: r.try_get(3).map_err(q("decode pending"))?,
                group_key: r.try_get(4).map_err(q("decode pending"))?,
                created_ms: r.try_get(5).map_err(q("decode pending"))?,
                attempts: r.try_get(6).map_err(q("decode pending"))?,
                next_attempt_ms: r.try_get(7).map_err(q("decode pending"))?,
            };
            groups
                .entry((
                    p.receiver.clone(),
                    p.integration.clone(),
                    p.group_key.clone(),
                ))
                .or_default()
                .push(p);
        }
        let pending_total = rows.len() as u64;
        let now = now_ms();
        let mut next_due: Option<i64> = None;
        let mut superseded = 0u64;
        for (_, mut list) in groups {
            if list.iter().any(|p| in_flight.contains(&p.delivery_key)) {
                continue;
            }
            let Some(newest) = list.pop() else { continue };
            for old in list {
                sqlx::query(
                    "UPDATE outbox_deliveries SET state = 'superseded', last_error = $1 WHERE delivery_key = $2 AND state = 'pending'",
                )
                .bind(format!("superseded by the newer notification {}", newest.idempotency_key))
                .bind(&old.delivery_key)
                .execute(pool)
                .await
                .map_err(q("supersede"))?;
                superseded += 1;
                if let Ok(mut m) = self.inner.metrics.lock() {
                    *m.superseded.entry(old.receiver.clone()).or_default() += 1;
                }
            }
            if newest.next_attempt_ms > now {
                next_due = Some(next_due.map_or(newest.next_attempt_ms, |d: i64| {
                    d.min(newest.next_attempt_ms)
                }));
                continue;
            }
            let busy = self.inner.in_flight.lock().map(|s| s.len()).unwrap_or(0);
            if busy >= MAX_IN_FLIGHT {
                next_due = Some(now + 100);
                continue;
            }
            let payload: Option<String> =
                sqlx::query("SELECT payload FROM outbox_notifications WHERE idempotency_key = $1")
                    .bind(&newest.idempotency_key)
                    .fetch_optional(pool)
                    .await
                    .map_err(q("load payload"))?
                    .map(|r| r.try_get(0))
                    .transpose()
                    .map_err(q("decode payload"))?;
            if let Ok(mut s) = self.inner.in_flight.lock() {
                s.insert(newest.delivery_key.clone());
            }
            let this = self.clone();
            tasks.spawn(async move {
                let key = newest.delivery_key.clone();
                this.deliver(newest, payload).await;
                if let Ok(mut s) = this.inner.in_flight.lock() {
                    s.remove(&key);
                }
            });
        }
        if let Ok(mut m) = self.inner.metrics.lock() {
            m.pending = pending_total.saturating_sub(superseded);
        }
        Ok(next_due)
    }

    /// One attempt of one delivery, and its bookkeeping.
    async fn deliver(&self, p: Pending, payload: Option<String>) {
        let cfg = self.config();
        let delivery = self.delivery();
        let receiver: Option<&ReceiverConfig> = cfg.receivers.iter().find(|r| r.name == p.receiver);
        let integ: Option<Integration<'_>> = receiver.and_then(|r| r.integration(&p.integration));
        let (Some(receiver), Some(integ)) = (receiver, integ) else {
            let msg = format!(
                "receiver {} has no integration {} any more (configuration changed)",
                p.receiver, p.integration
            );
            self.finish(
                &p,
                "unknown",
                Err(SendError::permanent(msg)),
                0,
                Duration::ZERO,
            )
            .await;
            return;
        };
        let n = match payload.as_deref().map(decode) {
            Some(Ok(n)) => n,
            Some(Err(e)) => {
                let msg = format!("stored notification cannot be decoded: {e}");
                self.finish(
                    &p,
                    integ.kind(),
                    Err(SendError::permanent(msg)),
                    0,
                    Duration::ZERO,
                )
                .await;
                return;
            }
            None => {
                let msg = "stored notification is missing".to_string();
                self.finish(
                    &p,
                    integ.kind(),
                    Err(SendError::permanent(msg)),
                    0,
                    Duration::ZERO,
                )
                .await;
                return;
            }
        };
        let Some(filtered) = for_integration(&n, integ.send_resolved()) else {
            self.mark(
                &p,
                "skipped",
                Some("nothing to send (send_resolved is off)"),
                None,
            )
            .await;
            return;
        };
        let ctx = SendContext {
            http: &self.inner.http,
            timeout: receiver.timeout,
            delivery_key: &p.delivery_key,
            external_url: &delivery.external_url,
            resend_interval: delivery.resend_interval,
            now_ms: now_ms(),
        };
        let started = Instant::now();
        let result = integ.send(&ctx, &filtered).await;
        let took = started.elapsed();
        if result.is_ok() && matches!(integ, Integration::Alertmanager(_)) {
            self.track_alertmanager(&p, filtered);
        }
        let max_attempts = i64::from(receiver.max_attempts);
        self.finish(&p, integ.kind(), result, max_attempts, took)
            .await;
        self.inner.wake.notify_one();
    }

    /// Records the outcome of an attempt: sent, retry later, or failed for good.
    async fn finish(
        &self,
        p: &Pending,
        kind: &str,
        result: Result<(), SendError>,
        max_attempts: i64,
        took: Duration,
    ) {
        let now = now_ms();
        let attempts = p.attempts + 1;
        let pool = self.inner.ledger.pool();
        let update = match &result {
            Ok(()) => {
                if let Ok(mut m) = self.inner.metrics.lock() {
                    *m.sent
                        .entry((p.receiver.clone(), kind.to_string()))
                        .or_default() += 1;
                    m.latency
                        .entry(kind.to_string())
                        .or_default()
                        .observe(took.as_secs_f64());
                    m.delay
                        .entry(kind.to_string())
                        .or_default()
                        .observe((now - p.created_ms).max(0) as f64 / 1000.0);
                }
                debug!(receiver = %p.receiver, integration = %p.integration, key = %p.delivery_key, "notification sent");
                sqlx::query(
                    "UPDATE outbox_deliveries SET state = 'sent', attempts = $1, last_attempt_ms = $2, sent_ms = $2, last_error = NULL WHERE delivery_key = $3",
                )
                .bind(attempts)
                .bind(now)
                .bind(&p.delivery_key)
                .execute(pool)
                .await
            }
            Err(e) => {
                if let Ok(mut m) = self.inner.metrics.lock() {
                    *m.errors
                        .entry((p.receiver.clone(), kind.to_string()))
                        .or_default() += 1;
                }
                if e.retryable && attempts < max_attempts {
                    let min = self.min_backoff(&p.receiver);
                    let wait = backoff(u32::try_from(attempts).unwrap_or(u32::MAX), min.0, min.1);
                    warn!(
                        receiver = %p.receiver,
                        integration = %p.integration,
                        attempt = attempts,
                        max_attempts,
                        retry_in = %humantime::format_duration(Duration::from_millis(wait.as_millis() as u64)),
                        error = %e,
                        "notification not delivered; retrying"
                    );
                    sqlx::query(
                        "UPDATE outbox_deliveries SET attempts = $1, last_attempt_ms = $2, next_attempt_ms = $3, last_error = $4 WHERE delivery_key = $5",
                    )
                    .bind(attempts)
                    .bind(now)
                    .bind(now + i64::try_from(wait.as_millis()).unwrap_or(i64::MAX / 2))
                    .bind(&e.message)
                    .bind(&p.delivery_key)
                    .execute(pool)
                    .await
                } else {
                    if let Ok(mut m) = self.inner.metrics.lock() {
                        *m.failed.entry(p.receiver.clone()).or_default() += 1;
                    }
                    let why = if e.retryable {
                        "gave up after max_attempts"
                    } else {
                        "not retried (permanent error)"
                    };
                    error!(
                        receiver = %p.receiver,
                        integration = %p.integration,
                        attempts,
                        error = %e,
                        "notification failed: {why}"
                    );
                    sqlx::query(
                        "UPDATE outbox_deliveries SET state = 'failed', attempts = $1, last_attempt_ms = $2, last_error = $3 WHERE delivery_key = $4",
                    )
                    .bind(attempts)
                    .bind(now)
                    .bind(&e.message)
                    .bind(&p.delivery_key)
                    .execute(pool)
                    .await
                }
            }
        };
        if let Err(e) = update {
            // The row stays as it was: a sent notification is re-sent (same key) later.
            error!(error = %e, key = %p.delivery_key, "cannot record a delivery attempt in the ledger");
        }
    }

    fn min_backoff(&self, receiver: &str) -> (Duration, Duration) {
        let cfg = self.config();
        cfg.receivers
            .iter()
            .find(|r| r.name == receiver)
            .map(|r| (r.min_backoff, r.max_backoff))
            .unwrap_or((Duration::from_secs(1), Duration::from_secs(300)))
    }

    async fn mark(&self, p: &Pending, state: &str, why: Option<&str>, sent: Option<i64>) {
        let r = sqlx::query(
            "UPDATE outbox_deliveries SET state = $1, last_error = $2, sent_ms = $3 WHERE delivery_key = $4",
        )
        .bind(state)
        .bind(why)
        .bind(sent)
        .bind(&p.delivery_key)
        .execute(self.inner.ledger.pool())
        .await;
        if let Err(e) = r {
            error!(error = %e, key = %p.delivery_key, "cannot record a delivery in the ledger");
        }
    }

    /// Remembers what was pushed to an Alertmanager, for the re-push while it fires.
    fn track_alertmanager(&self, p: &Pending, n: Notification) {
        let key = (
            p.receiver.clone(),
            p.integration.clone(),
            p.group_key.clone(),
        );
        if let Ok(mut am) = self.inner.am_active.lock() {
            let firing: Vec<Alert> = n
                .alerts
                .iter()
                .filter(|a| a.state == AlertState::Firing)
                .cloned()
                .collect();
            if firing.is_empty() {
                am.remove(&key);
            } else {
                am.insert(
                    key,
                    Notification {
                        alerts: firing,
                        ..n
                    },
                );
            }
        }
    }

    async fn rebuild_am_active(&self) -> Result<(), OutboxError> {
        let rows = sqlx::query(
            "SELECT d.receiver, d.integration, d.group_key, n.payload FROM outbox_deliveries d \
             JOIN outbox_notifications n ON n.idempotency_key = d.idempotency_key \
             WHERE d.integration LIKE 'alertmanager%' AND d.state = 'sent' ORDER BY d.created_ms",
        )
        .fetch_all(self.inner.ledger.pool())
        .await
        .map_err(q("list alertmanager pushes"))?;
        for r in rows {
            let p = Pending {
                delivery_key: String::new(),
                idempotency_key: String::new(),
                receiver: r.try_get(0).map_err(q("decode push"))?,
                integration: r.try_get(1).map_err(q("decode push"))?,
                group_key: r.try_get(2).map_err(q("decode push"))?,
                created_ms: 0,
                attempts: 0,
                next_attempt_ms: 0,
            };
            let payload: String = r.try_get(3).map_err(q("decode push"))?;
            if let Ok(n) = decode(&payload) {
                self.track_alertmanager(&p, n);
            }
        }
        Ok(())
    }

    /// Re-pushes the firing alerts to their Alertmanagers with a fresh `endsAt`.
    fn resend_alertmanager(&self, tasks: &mut JoinSet<()>) {
        let active: Vec<((String, String, String), Notification)> = self
            .inner
            .am_active
            .lock()
            .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
            .unwrap_or_default();
        for ((receiver, integration, _), n) in active {
            let this = self.clone();
            tasks.spawn(async move {
                let cfg = this.config();
                let delivery = this.delivery();
                let Some(r) = cfg.receivers.iter().find(|r| r.name == receiver) else {
                    return;
                };
                let Some(integ @ Integration::Alertmanager(_)) = r.integration(&integration)
                else {
                    return;
                };
                let ctx = SendContext {
                    http: &this.inner.http,
                    timeout: r.timeout,
                    delivery_key: &n.idempotency_key,
                    external_url: &delivery.external_url,
                    resend_interval: delivery.resend_interval,
                    now_ms: now_ms(),
                };
                let res = integ.send(&ctx, &n).await;
                if let Ok(mut m) = this.inner.metrics.lock() {
                    m.am_resends += 1;
                    if res.is_err() {
                        m.am_resend_errors += 1;
                    }
                }
                if let Err(e) = res {
                    warn!(receiver = %receiver, integration = %integration, error = %e, "re-push to Alertmanager failed; next try at the next resend interval");
                }
            });
        }
    }

    async fn prune_logged(&self) {
        let retention = self.delivery().history_retention;
        let cutoff = now_ms() - i64::try_from(retention.as_millis()).unwrap_or(i64::MAX / 2);
        match self.prune(cutoff).await {
            Ok(0) => {}
            Ok(n) => info!(rows = n, "pruned notification history"),
            Err(e) => warn!(error = %e, "cannot prune the notification history"),
        }
    }

    /// Deletes history created before `cutoff_ms` (never pending deliveries); returns the
    /// number of notifications removed.
    pub async fn prune(&self, cutoff_ms: i64) -> Result<u64, OutboxError> {
        let pool = self.inner.ledger.pool();
        sqlx::query("DELETE FROM outbox_deliveries WHERE created_ms < $1 AND state <> 'pending'")
            .bind(cutoff_ms)
            .execute(pool)
            .await
            .map_err(q("prune deliveries"))?;
        sqlx::query(
            "DELETE FROM outbox_alerts WHERE created_ms < $1 AND idempotency_key NOT IN (SELECT idempotency_key FROM outbox_deliveries)",
        )
        .bind(cutoff_ms)
        .execute(pool)
        .await
        .map_err(q("prune alerts"))?;
        let n = sqlx::query(
            "DELETE FROM outbox_notifications WHERE created_ms < $1 AND idempotency_key NOT IN (SELECT idempotency_key FROM outbox_deliveries)",
        )
        .bind(cutoff_ms)
        .execute(pool)
        .await
        .map_err(q("prune notifications"))?
        .rows_affected();
        Ok(n)
    }

    /// The delivery history (newest first) and the per-alert firings, filtered by `query`.
    pub async fn history(&self, query: &HistoryQuery) -> Result<History, OutboxError> {
        let pool = self.inner.ledger.pool();
        let limit = query.limit.unwrap_or(100).clamp(1, 1000);
        let since = query.since_ms.unwrap_or(0);
        let fp = query.fingerprint.clone().unwrap_or_default();
        let rows = sqlx::query(
            "SELECT d.delivery_key, d.idempotency_key, d.receiver, d.integration, d.group_key, n.status, d.state, d.attempts, \
                    d.created_ms, d.next_attempt_ms, d.last_attempt_ms, d.sent_ms, d.last_error \
             FROM outbox_deliveries d JOIN outbox_notifications n ON n.idempotency_key = d.idempotency_key \
             WHERE ($1 = '' OR d.receiver = $1) AND ($2 = '' OR d.state = $2) AND d.created_ms >= $3 \
               AND ($4 = '' OR d.idempotency_key IN (SELECT idempotency_key FROM outbox_alerts WHERE fingerprint = $4)) \
             ORDER BY d.created_ms DESC, d.delivery_key LIMIT $5",
        )
        .bind(query.receiver.clone().unwrap_or_default())
        .bind(query.state.clone().unwrap_or_default())
        .bind(since)
        .bind(&fp)
        .bind(limit)
        .fetch_all(pool)
        .await
        .map_err(q("list history"))?;
        let mut out = Vec::with_capacity(rows.len());
        for r in &rows {
            let d = |what| q(what);
            out.push(DeliveryRecord {
                delivery_key: r.try_get(0).map_err(d("decode history"))?,
                idempotency_key: r.try_get(1).map_err(d("decode history"))?,
                receiver: r.try_get(2).map_err(d("decode history"))?,
                integration: r.try_get(3).map_err(d("decode history"))?,
                group_key: r.try_get(4).map_err(d("decode history"))?,
                status: r.try_get(5).map_err(d("decode history"))?,
                state: r.try_get(6).map_err(d("decode history"))?,
                attempts: r.try_get(7).map_err(d("decode history"))?,
                created_ms: r.try_get(8).map_err(d("decode history"))?,
                next_attempt_ms: r.try_get(9).map_err(d("decode history"))?,
                last_attempt_ms: r.try_get(10).map_err(d("decode history"))?,
                sent_ms: r.try_get(11).map_err(d("decode history"))?,
                last_error: r.try_get(12).map_err(d("decode history"))?,
                alerts: Vec::new(),
            });
        }
        // Alerts of the listed notifications, and the per-fingerprint timeline.
        let arows = sqlx::query(
            "SELECT idempotency_key, fingerprint, alertname, labels, status, starts_ms, ends_ms \
             FROM outbox_alerts WHERE created_ms >= $1 AND ($2 = '' OR fingerprint = $2) \
             ORDER BY created_ms, fingerprint LIMIT 20000",
        )
        .bind(since)
        .bind(&fp)
        .fetch_all(pool)
        .await
        .map_err(q("list alert history"))?;
        let mut by_key: BTreeMap<String, Vec<AlertRef>> = BTreeMap::new();
        let mut timelines: BTreeMap<String, AlertTimeline> = BTreeMap::new();
        for r in &arows {
            let key: String = r.try_get(0).map_err(q("decode alert history"))?;
            let fingerprint: String = r.try_get(1).map_err(q("decode alert history"))?;
            let alertname: String = r.try_get(2).map_err(q("decode alert history"))?;
            let labels: String = r.try_get(3).map_err(q("decode alert history"))?;
            let status: String = r.try_get(4).map_err(q("decode alert history"))?;
            let starts: i64 = r.try_get(5).map_err(q("decode alert history"))?;
            let ends: Option<i64> = r.try_get(6).map_err(q("decode alert history"))?;
            by_key.entry(key).or_default().push(AlertRef {
                fingerprint: fingerprint.clone(),
                alertname: alertname.clone(),
                status,
            });
            let t = timelines
                .entry(fingerprint.clone())
                .or_insert_with(|| AlertTimeline {
                    fingerprint,
                    alertname,
                    labels: serde_json::from_str(&labels).unwrap_or_default(),
                    firings: Vec::new(),
                });
            match t.firings.iter_mut().find(|f| f.starts_ms == starts) {
                Some(f) => {
                    f.notifications += 1;
                    if ends.is_some() {
                        f.ends_ms = ends;
                    }
                }
                None => t.firings.push(Firing {
                    starts_ms: starts,
                    ends_ms: ends,
                    notifications: 1,
                }),
            }
        }
        for d in &mut out {
            if let Some(a) = by_key.get(&d.idempotency_key) {
                d.alerts = a.clone();
            }
        }
        let mut alerts: Vec<AlertTimeline> = timelines.into_values().collect();
        for t in &mut alerts {
            t.firings.sort_by_key(|f| f.starts_ms);
        }
        Ok(History {
            notifications: out,
            alerts,
        })
    }
}

impl MetricsSource for Outbox {
    fn write_metrics(&self, w: &mut MetricsWriter) {
        let Ok(m) = self.inner.metrics.lock() else {
            return;
        };
        w.family(
            "vigil_notifications_enqueued_total",
            "Notifications written to the outbox, by receiver.",
            "counter",
        );
        for (r, v) in &m.enqueued {
            w.sample(
                "vigil_notifications_enqueued_total",
                &[("receiver", r)],
                *v as f64,
            );
        }
        w.family(
            "vigil_notifications_sent_total",
            "Notifications accepted by a receiver's integration.",
            "counter",
        );
        for ((r, i), v) in &m.sent {
            w.sample(
                "vigil_notifications_sent_total",
                &[("receiver", r), ("integration", i)],
                *v as f64,
            );
        }
        w.family(
            "vigil_notification_send_errors_total",
            "Failed send attempts (each retry counts).",
            "counter",
        );
        for ((r, i), v) in &m.errors {
            w.sample(
                "vigil_notification_send_errors_total",
                &[("receiver", r), ("integration", i)],
                *v as f64,
            );
        }
        w.family(
            "vigil_notifications_failed_total",
            "Notifications given up on (max_attempts reached or a permanent error).",
            "counter",
        );
        for (r, v) in &m.failed {
            w.sample(
                "vigil_notifications_failed_total",
                &[("receiver", r)],
                *v as f64,
            );
        }
        w.family(
            "vigil_notifications_superseded_total",
            "Pending notifications replaced by a newer one of the same group before they were sent.",
            "counter",
        );
        for (r, v) in &m.superseded {
            w.sample(
                "vigil_notifications_superseded_total",
                &[("receiver", r)],
                *v as f64,
            );
        }
        w.family(
            "vigil_notifications_pending",
            "Deliveries waiting in the outbox (first attempt or retry).",
            "gauge",
        );
        w.sample("vigil_notifications_pending", &[], m.pending as f64);
        w.family(
            "vigil_notification_latency_seconds",
            "Duration of successful send attempts.",
            "histogram",
        );
        for (i, h) in &m.latency {
            h.write(
                w,
                "vigil_notification_latency_seconds",
                &[("integration", i)],
            );
        }
        w.family(
            "vigil_notification_delivery_delay_seconds",
            "From the dispatcher emitting a notification to a receiver accepting it (retries included).",
            "histogram",
        );
        for (i, h) in &m.delay {
            h.write(
                w,
                "vigil_notification_delivery_delay_seconds",
                &[("integration", i)],
            );
        }
        w.family(
            "vigil_alertmanager_resends_total",
            "Re-pushes of firing alerts to Alertmanagers.",
            "counter",
        );
        w.sample("vigil_alertmanager_resends_total", &[], m.am_resends as f64);
        w.family(
            "vigil_alertmanager_resend_errors_total",
            "Re-pushes to Alertmanagers that failed.",
            "counter",
        );
        w.sample(
            "vigil_alertmanager_resend_errors_total",
            &[],
            m.am_resend_errors as f64,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_with_jitter_and_caps() {
        let min = Duration::from_secs(1);
        let max = Duration::from_secs(60);
        for attempts in 1..20 {
            let b = backoff(attempts, min, max);
            let base = min.saturating_mul(1 << (attempts - 1).min(30)).min(max);
            assert!(b >= base / 2 && b <= base, "{attempts}: {b:?} vs {base:?}");
        }
        assert!(backoff(40, min, max) <= max);
    }

    #[test]
    fn stored_form_round_trips() {
        let mut labels = BTreeMap::new();
        labels.insert("alertname".to_string(), "A".to_string());
        let n = Notification {
            receiver: "r".into(),
            group_key: "g".into(),
            group_labels: labels.clone(),
            alerts: vec![Alert {
                labels,
                annotations: BTreeMap::new(),
                state: AlertState::Resolved,
                active_at_ms: 1,
                fired_at_ms: Some(2),
                resolved_at_ms: Some(3),
                value: 1.5,
                inhibited_by: None,
                generator_url: "u".into(),
            }],
            idempotency_key: "k".into(),
            created_ms: 4,
        };
        let text = serde_json::to_string(&n).expect("encode");
        assert_eq!(decode(&text).expect("decode"), n);
    }
}
