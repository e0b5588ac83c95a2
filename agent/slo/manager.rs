//! The [`SloManager`]: runs the evaluation round every `agent.evaluation_interval` (store
//! snapshots -> [`Engine`] -> statuses), writes the round's bucket rows, completed periods and
//! the agent heartbeat to the ledger in one transaction, and restores buckets from the ledger at
//! start so budgets and burn rates continue after a restart (the time the agent was down shows
//! as no data: counters only count deltas the agent saw).
//!
//! A failed ledger write is counted (`vigil_ledger_write_failures_total`) and its rows are kept
//! in memory and written with the next round; evaluation never stops for it.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use super::engine::{Condition, Engine, PeriodRecord, SloStatus};
use super::spec::{MAX_WINDOW, Slo};
use super::window::{FINE_MINUTES, HOUR_MS, MINUTE_MS};
use crate::api::Readiness;
use crate::api::metrics::{MetricsSource, MetricsWriter};
use crate::config::Role;
use crate::store::ledger::{BucketRow, Ledger, PeriodRow};
use crate::store::series::SeriesStore;

/// Readiness condition: the first evaluation round has completed.
pub const READY_EVALUATION: &str = "evaluation";

/// Completed periods a follower holds at most (see [`SloManager::set_leader`]).
const MAX_HELD_PERIODS: usize = 1000;

/// Pending ledger rows keyed by (slo, group, resolution, index) so a retry writes the newest.
type Pending = BTreeMap<(String, String, i64, i64), (f64, f64)>;

struct Inner {
    engine: Mutex<Engine>,
    statuses: RwLock<Arc<Vec<SloStatus>>>,
    /// The round's time and statuses, for the alert engine.
    rounds_tx: tokio::sync::watch::Sender<(i64, Arc<Vec<SloStatus>>)>,
    history: RwLock<HashMap<String, Vec<PeriodRow>>>,
    pending: Mutex<(Pending, Vec<PeriodRow>)>,
    interval: Mutex<Duration>,
    store: Arc<SeriesStore>,
    ledger: Ledger,
    agent_id: String,
    started_ms: i64,
    readiness: Arc<Readiness>,
    rounds: AtomicU64,
    last_round_seconds: AtomicU64,
    ledger_failures: AtomicU64,
    ledger_writes: AtomicU64,
    last_prune_hour: AtomicU64,
    role: Role,
    /// Leadership (`agent.leader_election`); None: always the leader.
    leader: RwLock<Option<tokio::sync::watch::Receiver<bool>>>,
}

/// Evaluates SLOs (cheap to clone: a handle).
#[derive(Clone)]
pub struct SloManager {
    inner: Arc<Inner>,
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    (crate::config::reload::now_seconds() * 1000.0) as i64
}

impl SloManager {
    /// Builds the engine for `slos` and restores this agent's buckets and period history.
    #[allow(clippy::too_many_arguments)]
    pub async fn new(
        slos: Vec<Arc<Slo>>,
        interval: Duration,
        store: Arc<SeriesStore>,
        ledger: Ledger,
        agent_id: String,
        started_ms: i64,
        readiness: Arc<Readiness>,
        role: Role,
    ) -> Result<Self, crate::store::ledger::LedgerError> {
        readiness.require(READY_EVALUATION);
        let mut engine = Engine::new(slos.clone());
        let now = now_ms();
        let rows = ledger
            .load_buckets(
                now.div_euclid(MINUTE_MS) - FINE_MINUTES,
                now.div_euclid(HOUR_MS) - MAX_WINDOW.as_secs() as i64 / 3600 - 24,
                // A standalone agent or a node continues its own buckets; the aggregator sums
                // everyone's.
                if role == Role::Aggregator {
                    None
                } else {
                    Some(agent_id.as_str())
                },
            )
            .await?;
        let restored = rows.len();
        for (slo, grp, res, idx, bad, total) in rows {
            engine.load_bucket(&slo, &grp, res, idx, super::budget::Counts { bad, total });
        }
        // Loaded rows are not dirty: they are already in the ledger.
        let _ = engine.take_dirty();
        let mut history = HashMap::new();
        for slo in &slos {
            history.insert(slo.id.clone(), ledger.periods(&slo.id, 24).await?);
        }
        tracing::info!(
            slos = slos.len(),
            restored_buckets = restored,
            "SLO engine ready"
        );
        Ok(Self {
            inner: Arc::new(Inner {
                engine: Mutex::new(engine),
                statuses: RwLock::new(Arc::new(Vec::new())),
                rounds_tx: tokio::sync::watch::channel((0, Arc::new(Vec::new()))).0,
                history: RwLock::new(history),
                pending: Mutex::new((Pending::new(), Vec::new())),
                interval: Mutex::new(interval),
                store,
                ledger,
                agent_id,
                started_ms,
                readiness,
                rounds: AtomicU64::new(0),
                last_round_seconds: AtomicU64::new(0),
                ledger_failures: AtomicU64::new(0),
                ledger_writes: AtomicU64::new(0),
                last_prune_hour: AtomicU64::new(0),
                role,
                leader: RwLock::new(None),
            }),
        })
    }

    /// Applies reloaded SLOs and interval (already validated); unchanged SLOs keep their data.
    pub fn apply_config(&self, slos: Vec<Arc<Slo>>, interval: Duration) {
        if let Ok(mut e) = self.inner.engine.lock() {
            e.reconfigure(slos);
        }
        if let Ok(mut i) = self.inner.interval.lock() {
            *i = interval;
        }
    }

    /// Follows leadership (`agent.leader_election`): only the leader writes completed SLO
    /// periods to the shared ledger; a follower evaluates and serves them all the same.
    pub fn set_leader(&self, leader: tokio::sync::watch::Receiver<bool>) {
        if let Ok(mut l) = self.inner.leader.write() {
            *l = Some(leader);
        }
    }

    fn is_leader(&self) -> bool {
        self.inner
            .leader
            .read()
            .map(|l| l.as_ref().is_none_or(|r| *r.borrow()))
            .unwrap_or(true)
    }

    /// Evaluates every interval until `cancel`, then writes what is still pending.
    pub async fn run(self, cancel: CancellationToken) {
        loop {
            let start = Instant::now();
            self.round_once(now_ms()).await;
            let interval = self
                .inner
                .interval
                .lock()
                .map(|i| *i)
                .unwrap_or(Duration::from_secs(10));
            tokio::select! {
                _ = cancel.cancelled() => break,
                _ = tokio::time::sleep_until((start + interval).into()) => {}
            }
        }
        // Shutdown: one last attempt to persist what the last rounds counted.
        self.flush(now_ms()).await;
    }

    /// One evaluation round at `now`.
    pub async fn round_once(&self, now: i64) {
        let start = Instant::now();
        let (statuses, periods, dirty) = match self.inner.role {
            Role::Aggregator => {
                // Every node's recent buckets, summed: the last minutes are still being written.
                let recent = self
                    .inner
                    .ledger
                    .load_buckets(
                        now.div_euclid(MINUTE_MS) - 10,
                        now.div_euclid(HOUR_MS) - 1,
                        None,
                    )
                    .await;
                let Ok(mut engine) = self.inner.engine.lock() else {
                    return;
                };
                match recent {
                    Ok(rows) => {
                        for (slo, grp, res, idx, bad, total) in rows {
                            engine.load_bucket(
                                &slo,
                                &grp,
                                res,
                                idx,
                                super::budget::Counts { bad, total },
                            );
                        }
                    }
                    Err(err) => {
                        self.inner.ledger_failures.fetch_add(1, Ordering::Relaxed);
                        tracing::warn!(error = %err, "cannot read the nodes' buckets from the shared ledger; evaluating what is known");
                    }
                }
                let (s, p) = engine.round_buckets_only(now);
                let _ = engine.take_dirty();
                (s, p, Vec::new())
            }
            Role::Standalone | Role::Node => {
                let snapshots = self.inner.store.snapshots();
                let Ok(mut engine) = self.inner.engine.lock() else {
                    return;
                };
                let (s, p) = engine.round(now, &snapshots);
                // A node only contributes buckets; the aggregator evaluates and reports.
                let (s, p) = if self.inner.role == Role::Node {
                    (Vec::new(), Vec::new())
                } else {
                    (s, p)
                };
                (s, p, engine.take_dirty())
            }
        };
        if let Ok(mut pending) = self.inner.pending.lock() {
            for (slo, grp, res, idx, c) in dirty {
                pending.0.insert((slo, grp, res, idx), (c.bad, c.total));
            }
            pending.1.extend(periods.iter().map(period_row));
            // A follower holds its completed periods (written by the leader) until it leads;
            // written then with ON CONFLICT DO NOTHING, so a handover loses none. Bounded.
            let excess = pending.1.len().saturating_sub(MAX_HELD_PERIODS);
            pending.1.drain(..excess);
        }
        if !periods.is_empty() {
            if let Ok(mut h) = self.inner.history.write() {
                for p in &periods {
                    let list = h.entry(p.slo.clone()).or_default();
                    list.insert(0, period_row(p));
                    list.truncate(24);
                }
            }
        }
        for p in &periods {
            tracing::info!(slo = %p.slo, group = %p.group, period = %p.name, met = p.met, budget_used = p.budget_used, "SLO period completed");
        }
        let statuses = Arc::new(statuses);
        if let Ok(mut s) = self.inner.statuses.write() {
            *s = statuses.clone();
        }
        self.inner.rounds_tx.send_replace((now, statuses));
        self.flush(now).await;
        self.inner.rounds.fetch_add(1, Ordering::Relaxed);
        self.inner
            .last_round_seconds
            .store(start.elapsed().as_secs_f64().to_bits(), Ordering::Relaxed);
        self.inner.readiness.done(READY_EVALUATION);
    }

    /// Writes pending rows and the heartbeat; keeps them on failure.
    async fn flush(&self, now: i64) {
        let (rows, periods) = match self.inner.pending.lock() {
            Ok(p) => (
                p.0.iter()
                    .map(|((s, g, r, i), (b, t))| (s.clone(), g.clone(), *r, *i, *b, *t))
                    .collect::<Vec<BucketRow>>(),
                if self.is_leader() {
                    p.1.clone()
                } else {
                    Vec::new()
                },
            ),
            Err(_) => return,
        };
        let result = self
            .inner
            .ledger
            .write_round(
                &self.inner.agent_id,
                &rows,
                &periods,
                (self.inner.started_ms, now),
            )
            .await;
        match result {
            Ok(()) => {
                self.inner.ledger_writes.fetch_add(1, Ordering::Relaxed);
                if let Ok(mut p) = self.inner.pending.lock() {
                    for (s, g, r, i, b, t) in rows {
                        // Only drop what was written: a newer value stays pending.
                        if p.0.get(&(s.clone(), g.clone(), r, i)) == Some(&(b, t)) {
                            p.0.remove(&(s, g, r, i));
                        }
                    }
                    let written = periods.len().min(p.1.len());
                    p.1.drain(..written);
                }
            }
            Err(err) => {
                self.inner.ledger_failures.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(error = %err, pending_rows = rows.len(), "ledger write failed; keeping the rows in memory and retrying next round");
            }
        }
        let hour = now.div_euclid(HOUR_MS) as u64;
        if self.inner.last_prune_hour.swap(hour, Ordering::Relaxed) != hour {
            let min_minute = now.div_euclid(MINUTE_MS) - FINE_MINUTES;
            let min_hour = now.div_euclid(HOUR_MS) - MAX_WINDOW.as_secs() as i64 / 3600 - 24;
            if let Err(err) = self.inner.ledger.prune_buckets(min_minute, min_hour).await {
                tracing::warn!(error = %err, "ledger retention failed; will retry next hour");
            }
        }
    }

    /// Wakes after every round with its time (ms) and statuses; the alert engine follows it.
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<(i64, Arc<Vec<SloStatus>>)> {
        self.inner.rounds_tx.subscribe()
    }

    /// Statuses of the last round.
    pub fn statuses(&self) -> Arc<Vec<SloStatus>> {
        self.inner
            .statuses
            .read()
            .map(|s| s.clone())
            .unwrap_or_default()
    }

    /// Completed calendar periods of an SLO, newest first.
    pub fn history(&self, id: &str) -> Vec<PeriodRow> {
        self.inner
            .history
            .read()
            .ok()
            .and_then(|h| h.get(id).cloned())
            .unwrap_or_default()
    }

    /// The SLO definitions.
    pub fn slos(&self) -> Vec<Arc<Slo>> {
        self.inner
            .engine
            .lock()
            .map(|e| e.slos())
            .unwrap_or_default()
    }

    /// Bytes held by the buckets of every SLO instance.
    pub fn memory_bytes(&self) -> usize {
        self.inner
            .engine
            .lock()
            .map(|e| e.memory_bytes())
            .unwrap_or(0)
    }
}

fn period_row(p: &PeriodRecord) -> PeriodRow {
    PeriodRow {
        slo: p.slo.clone(),
        grp: p.group.clone(),
        start_ms: p.start_ms,
        end_ms: p.end_ms,
        name: p.name.clone(),
        good: p.good,
        total: p.total,
        objective: p.objective,
        met: p.met,
        budget_used: p.budget_used,
    }
}

impl MetricsSource for SloManager {
    fn write_metrics(&self, w: &mut MetricsWriter) {
        let i = &self.inner;
        w.family(
            "vigil_evaluation_rounds_total",
            "Completed evaluation rounds.",
            "counter",
        );
        w.sample(
            "vigil_evaluation_rounds_total",
            &[],
            i.rounds.load(Ordering::Relaxed) as f64,
        );
        w.family(
            "vigil_evaluation_round_duration_seconds",
            "Duration of the last evaluation round.",
            "gauge",
        );
        w.sample(
            "vigil_evaluation_round_duration_seconds",
            &[],
            f64::from_bits(i.last_round_seconds.load(Ordering::Relaxed)),
        );
        w.family(
            "vigil_ledger_writes_total",
            "Evaluation rounds written to the ledger.",
            "counter",
        );
        w.sample(
            "vigil_ledger_writes_total",
            &[],
            i.ledger_writes.load(Ordering::Relaxed) as f64,
        );
        w.family(
            "vigil_ledger_write_failures_total",
            "Ledger writes that failed (their rows are retried).",
            "counter",
        );
        w.sample(
            "vigil_ledger_write_failures_total",
            &[],
            i.ledger_failures.load(Ordering::Relaxed) as f64,
        );

        let statuses = self.statuses();
        let families: [(&str, &str, &str); 8] = [
            (
                "vigil_slo_objective_ratio",
                "The SLO's objective as a ratio.",
                "gauge",
            ),
            (
                "vigil_slo_sli_ratio",
                "Good events / total events in the window (absent without traffic).",
                "gauge",
            ),
            (
                "vigil_slo_error_ratio",
                "Bad events / total events in the window (absent without traffic).",
                "gauge",
            ),
            (
                "vigil_slo_burn_rate",
                "Error ratio / (1 - objective) in the window.",
                "gauge",
            ),
            (
                "vigil_slo_error_budget_remaining_ratio",
                "Share of the error budget left over the SLO window; negative when overspent.",
                "gauge",
            ),
            (
                "vigil_slo_events_total",
                "Events counted by this agent since it started, by kind (good, total).",
                "counter",
            ),
            (
                "vigil_slo_time_to_exhaustion_seconds",
                "Seconds until the budget is spent at the 1h burn rate.",
                "gauge",
            ),
            (
                "vigil_slo_no_data",
                "1 when the SLO's selector matches no series (or its targets are down).",
                "gauge",
            ),
        ];
        for (name, help, kind) in families {
            w.family(name, help, kind);
            for st in statuses.iter() {
                if name == "vigil_slo_no_data" {
                    let v = f64::from(u8::from(matches!(
                        st.condition,
                        Condition::NoData | Condition::TargetDown
                    )));
                    w.sample(name, &[("slo", &st.name), ("service", &st.service)], v);
                    continue;
                }
                for inst in &st.instances {
                    let mut labels: Vec<(&str, &str)> =
                        vec![("slo", &st.name), ("service", &st.service)];
                    labels.extend(inst.group.iter().map(|(k, v)| (k.as_str(), v.as_str())));
                    match name {
                        "vigil_slo_objective_ratio" => w.sample(name, &labels, st.objective),
                        "vigil_slo_error_budget_remaining_ratio" => {
                            w.sample(name, &labels, inst.error_budget_remaining)
                        }
                        "vigil_slo_time_to_exhaustion_seconds" => {
                            w.sample(name, &labels, inst.time_to_exhaustion_seconds)
                        }
                        "vigil_slo_events_total" => {
                            for (kind, v) in
                                [("good", inst.events_good), ("total", inst.events_total)]
                            {
                                let mut l = labels.clone();
                                l.push(("kind", kind));
                                w.sample(name, &l, v);
                            }
                        }
                        _ => {
                            for win in &inst.windows {
                                let v = match name {
                                    "vigil_slo_sli_ratio" => win.sli,
                                    "vigil_slo_error_ratio" => win.error_ratio,
                                    _ => Some(win.burn_rate),
                                };
                                if let Some(v) = v {
                                    let mut l = labels.clone();
                                    l.push(("window", &win.window));
                                    w.sample(name, &l, v);
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}
