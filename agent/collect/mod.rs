//! Native collectors (`collectors:` in `vigil.yaml`): Postgres, Redis and Kafka metrics gathered by
//! the agent itself, under the names of postgres_exporter, redis_exporter and kafka_exporter.
//!
//! [`CollectorKind`] is the registry: one variant, one file, one match arm per collector. The
//! [`CollectorManager`] runs one task per configured collector; each collection fills an
//! [`Output`], which becomes a [`Snapshot`] in the [`SeriesStore`] (source `collector/<name>`, so
//! SLOs and alerts select collector series like scraped ones) and the families shown on Vigil's
//! `/metrics`. Every sample carries `job="<type>"` and `instance="<name>"` plus the collector's
//! `labels`, as if Prometheus had scraped an exporter.
//!
//! `<system>_up` is written by the manager: 1 when the collection reached the server, 0 when it
//! did not (connection refused, authentication, timeout). After a failure the collector is retried
//! with exponential backoff (from `interval`, at most 5 minutes), while `<system>_up 0` is
//! republished every interval so alert series never go absent.
//!
//! Called by the daemon (`daemon.rs`), which builds the manager and applies reloads.

pub mod kafka;
pub mod postgres;
pub mod redis;
pub mod tls;

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Deserializer};
use serde_yaml::Value;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::api::metrics::{MetricsSource, MetricsWriter};
use crate::config::{Problem, check_label_name, nested_error, parse_duration};
use crate::store::series::{LabelBuilder, Series, SeriesStore, SnapshotBuilder};

/// Longest wait between reconnection attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(300);

/// One `collectors[]` entry: the fields every collector has, plus its own (selected by `type`).
#[derive(Debug, Clone, PartialEq)]
pub struct CollectorConfig {
    /// Unique name; the `instance` label of its samples and the `collector` label of
    /// `vigil_collector_*`.
    pub name: String,
    /// Time between collections.
    pub interval: Duration,
    /// Longest a collection may take; a slower one counts as a failure (`<system>_up 0`).
    pub timeout: Duration,
    /// Extra labels added to every sample of this collector.
    pub labels: BTreeMap<String, String>,
    /// The collector itself.
    pub kind: CollectorKind,
}

/// The collector registry: one variant per supported system.
#[derive(Debug, Clone, PartialEq)]
pub enum CollectorKind {
    /// `type: postgres`.
    Postgres(postgres::PostgresConfig),
    /// `type: redis`.
    Redis(redis::RedisConfig),
    /// `type: kafka`.
    Kafka(kafka::KafkaConfig),
    /// A missing or unknown `type` (the text given, empty when missing). Kept so that the
    /// other entries are still checked; [`CollectorConfig::validate`] rejects it.
    Unknown(String),
}

/// The keys every collector has.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Common {
    name: String,
    #[serde(rename = "type", default)]
    kind: String,
    #[serde(default = "default_interval", deserialize_with = "de_duration")]
    interval: Duration,
    #[serde(default = "default_timeout", deserialize_with = "de_duration")]
    timeout: Duration,
    #[serde(default)]
    labels: BTreeMap<String, String>,
}

const COMMON_KEYS: &[&str] = &["name", "type", "interval", "timeout", "labels"];
const TYPES: &str = "postgres, redis, kafka";

fn default_interval() -> Duration {
    Duration::from_secs(15)
}

fn default_timeout() -> Duration {
    Duration::from_secs(10)
}

fn de_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let text = String::deserialize(d)?;
    parse_duration(&text).map_err(serde::de::Error::custom)
}

fn sub_tree<T: serde::de::DeserializeOwned, E: serde::de::Error>(value: Value) -> Result<T, E> {
    serde_path_to_error::deserialize::<_, T>(value)
        .map_err(|e| nested_error(e.path(), &e.inner().to_string()))
}

impl<'de> Deserialize<'de> for CollectorConfig {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let Value::Mapping(map) = Value::deserialize(d)? else {
            return Err(D::Error::custom(
                "a collector is a mapping with at least name and type",
            ));
        };
        let (mut common, mut own) = (serde_yaml::Mapping::new(), serde_yaml::Mapping::new());
        for (k, v) in map {
            if k.as_str().is_some_and(|k| COMMON_KEYS.contains(&k)) {
                common.insert(k, v);
            } else {
                own.insert(k, v);
            }
        }
        let c: Common = sub_tree(Value::Mapping(common))?;
        let own = Value::Mapping(own);
        let kind = match c.kind.as_str() {
            "postgres" => CollectorKind::Postgres(sub_tree(own)?),
            "redis" => CollectorKind::Redis(sub_tree(own)?),
            "kafka" => CollectorKind::Kafka(sub_tree(own)?),
            other => CollectorKind::Unknown(other.to_string()),
        };
        Ok(Self {
            name: c.name,
            interval: c.interval,
            timeout: c.timeout,
            labels: c.labels,
            kind,
        })
    }
}

impl CollectorConfig {
    /// `postgres`, `redis` or `kafka`.
    pub fn type_name(&self) -> &'static str {
        match &self.kind {
            CollectorKind::Postgres(_) => "postgres",
            CollectorKind::Redis(_) => "redis",
            CollectorKind::Kafka(_) => "kafka",
            CollectorKind::Unknown(_) => "unknown",
        }
    }

    /// The `<system>_up` metric the manager writes.
    pub fn up_metric(&self) -> &'static str {
        match &self.kind {
            CollectorKind::Postgres(_) => "pg_up",
            CollectorKind::Redis(_) => "redis_up",
            CollectorKind::Kafka(_) => "kafka_up",
            CollectorKind::Unknown(_) => "up",
        }
    }

    /// Semantic checks; `path` is e.g. `collectors[2]`.
    pub fn validate(&self, path: &str, base_dir: &Path, out: &mut Vec<Problem>) {
        let mut bad = |key: &str, message: String| out.push(Problem::at(path, key, message));
        if self.name.trim().is_empty() {
            bad("name", "must not be empty; e.g. main-db".into());
        }
        if self.interval < Duration::from_secs(1) {
            bad("interval", "must be at least 1s".into());
        }
        if self.timeout.is_zero() {
            bad("timeout", "must be more than 0s; e.g. 10s".into());
        } else if self.timeout > self.interval {
            bad(
                "timeout",
                format!(
                    "{} is longer than interval {}; make it at most the interval",
                    humantime::format_duration(self.timeout),
                    humantime::format_duration(self.interval)
                ),
            );
        }
        for name in self.labels.keys() {
            if let Err(e) = check_label_name(name) {
                bad(&format!("labels.{name}"), e);
            } else if name == "job" || name == "instance" {
                bad(
                    &format!("labels.{name}"),
                    format!(
                        "{name} is set by vigil (job = the type, instance = the name); use another label name"
                    ),
                );
            }
        }
        match &self.kind {
            CollectorKind::Postgres(c) => c.validate(path, base_dir, out),
            CollectorKind::Redis(c) => c.validate(path, base_dir, out),
            CollectorKind::Kafka(c) => c.validate(path, base_dir, out),
            CollectorKind::Unknown(t) if t.is_empty() => out.push(Problem {
                path: path.to_string(),
                message: format!("missing key type; set it to one of: {TYPES}"),
                location: None,
            }),
            CollectorKind::Unknown(t) => out.push(Problem {
                path: format!("{path}.type"),
                message: format!("unknown collector type {t:?}; use one of: {TYPES}"),
                location: None,
            }),
        }
    }

    /// Makes relative file paths relative to the config file's directory.
    pub fn resolve_paths(&mut self, base_dir: &Path) {
        match &mut self.kind {
            CollectorKind::Postgres(c) => c.resolve_paths(base_dir),
            CollectorKind::Redis(c) => c.resolve_paths(base_dir),
            CollectorKind::Kafka(c) => c.resolve_paths(base_dir),
            CollectorKind::Unknown(_) => {}
        }
    }
}

/// Checks `collectors[]` as a whole (unique names) and each entry.
pub fn validate_all(collectors: &[CollectorConfig], base_dir: &Path, out: &mut Vec<Problem>) {
    let mut seen = HashMap::new();
    for (i, c) in collectors.iter().enumerate() {
        let path = format!("collectors[{i}]");
        if let Some(first) = seen.insert(c.name.as_str(), i) {
            out.push(Problem {
                path: format!("{path}.name"),
                message: format!(
                    "{:?} is also the name of collectors[{first}]; names must be unique",
                    c.name
                ),
                location: None,
            });
        }
        c.validate(&path, base_dir, out);
    }
}

/// Why one collection failed.
#[derive(Debug, thiserror::Error)]
pub enum CollectError {
    /// Postgres.
    #[error(transparent)]
    Postgres(#[from] postgres::PostgresError),
    /// Redis.
    #[error(transparent)]
    Redis(#[from] redis::RedisError),
    /// Kafka.
    #[error(transparent)]
    Kafka(#[from] kafka::KafkaError),
    /// The collection took longer than `timeout`.
    #[error(
        "collection timed out after {0}; raise the collector's timeout or check the server's load"
    )]
    Timeout(String),
}

/// A collector with its connection state, built from its config.
enum Collector {
    Postgres(postgres::Postgres),
    Redis(redis::Redis),
    Kafka(kafka::Kafka),
}

impl Collector {
    /// None for [`CollectorKind::Unknown`], which validation never lets through.
    fn new(cfg: &CollectorConfig) -> Option<Self> {
        Some(match &cfg.kind {
            CollectorKind::Postgres(c) => Self::Postgres(postgres::Postgres::new(&cfg.name, c)),
            CollectorKind::Redis(c) => Self::Redis(redis::Redis::new(&cfg.name, c)),
            CollectorKind::Kafka(c) => Self::Kafka(kafka::Kafka::new(&cfg.name, c)),
            CollectorKind::Unknown(_) => return None,
        })
    }

    /// One collection. Ok means the server was reached (even if some sub-collector failed).
    async fn collect(&mut self, out: &mut Output) -> Result<(), CollectError> {
        match self {
            Self::Postgres(c) => c.collect(out).await.map_err(CollectError::from),
            Self::Redis(c) => c.collect(out).await.map_err(CollectError::from),
            Self::Kafka(c) => c.collect(out).await.map_err(CollectError::from),
        }
    }

    /// Drops connections after a failure or timeout, so the next attempt reconnects.
    async fn reset(&mut self) {
        match self {
            Self::Postgres(c) => c.reset().await,
            Self::Redis(c) => c.reset().await,
            Self::Kafka(c) => c.reset().await,
        }
    }
}

/// Metric type of a family, as written in `# TYPE`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A value that goes up and down.
    Gauge,
    /// A monotonic counter.
    Counter,
    /// No type information.
    Untyped,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Self::Gauge => "gauge",
            Self::Counter => "counter",
            Self::Untyped => "untyped",
        }
    }
}

/// A series and its value in one collection.
pub type SeriesValue = (Arc<Series>, f64);

/// One family of a collection.
#[derive(Debug, Clone)]
pub struct Family {
    /// Metric name.
    pub name: String,
    /// `# HELP` text.
    pub help: String,
    /// `# TYPE`.
    pub kind: Kind,
    /// Samples (series with labels including `__name__`, and value).
    pub samples: Vec<SeriesValue>,
}

/// What one collection produced. Collectors call [`Output::family`] and then [`Output::sample`]
/// for each of its series. Series are interned across collections (stable ids, so counter
/// deltas in the SLO engine work); a series written twice in one collection keeps the first
/// value (a duplicate never fails the collection).
#[derive(Debug, Default)]
pub struct Output {
    base: Vec<(String, String)>,
    families: Vec<Family>,
    index: HashMap<String, usize>,
    seen: HashMap<String, Arc<Series>>,
    cache: HashMap<String, Arc<Series>>,
    duplicates: u64,
    key: String,
}

impl Output {
    fn new(base: Vec<(String, String)>) -> Self {
        Self {
            base,
            ..Self::default()
        }
    }

    /// Starts (or continues) family `name`; following [`Output::sample`] calls belong to it.
    pub fn family(&mut self, name: &str, help: &str, kind: Kind) {
        if let Some(&i) = self.index.get(name) {
            // Move it to the end so that `sample` appends to it.
            let f = self.families.remove(i);
            self.families.push(f);
            self.reindex();
            return;
        }
        self.index.insert(name.to_string(), self.families.len());
        self.families.push(Family {
            name: name.to_string(),
            help: help.to_string(),
            kind,
            samples: Vec::new(),
        });
    }

    fn reindex(&mut self) {
        self.index.clear();
        for (i, f) in self.families.iter().enumerate() {
            self.index.insert(f.name.clone(), i);
        }
    }

    /// Adds a sample to the current family. `labels` must not contain `job`/`instance`.
    pub fn sample(&mut self, labels: &[(&str, &str)], value: f64) {
        let Some(family) = self.families.last_mut() else {
            debug_assert!(false, "Output::sample before Output::family");
            return;
        };
        self.key.clear();
        self.key.push_str(&family.name);
        // Sorted label pairs, on the stack for the usual handful of labels.
        let mut small = [("", ""); 8];
        let mut large = Vec::new();
        let sorted: &mut [(&str, &str)] = if labels.len() <= small.len() {
            small[..labels.len()].copy_from_slice(labels);
            &mut small[..labels.len()]
        } else {
            large.extend_from_slice(labels);
            &mut large
        };
        sorted.sort_unstable();
        for (k, v) in sorted.iter() {
            self.key.push('\u{0}');
            self.key.push_str(k);
            self.key.push('\u{1}');
            self.key.push_str(v);
        }
        if self.seen.contains_key(&self.key) {
            self.duplicates += 1;
            return;
        }
        // Move the entry from last round's cache to this round's: no key allocation for a
        // series seen before.
        if let Some((key, series)) = self.cache.remove_entry(self.key.as_str()) {
            family.samples.push((series.clone(), value));
            self.seen.insert(key, series);
            return;
        }
        let mut b = LabelBuilder::default();
        for (k, v) in &self.base {
            b.set(k.clone(), v.clone());
        }
        for (k, v) in sorted.iter() {
            b.set((*k).to_string(), (*v).to_string());
        }
        b.set("__name__".into(), family.name.clone());
        let series = Series::new(b.finish());
        self.seen.insert(self.key.clone(), series.clone());
        family.samples.push((series, value));
    }

    /// The families written so far.
    pub fn families(&self) -> &[Family] {
        &self.families
    }

    /// Starts the next collection: keeps the series cache of what the last one wrote.
    fn next_round(&mut self) {
        self.families.clear();
        self.index.clear();
        self.cache = std::mem::take(&mut self.seen);
        self.duplicates = 0;
    }
}

/// Per-collector state shown on `/metrics` and `/api/v1/collectors`.
#[derive(Debug, Clone, Default)]
pub struct CollectorStatus {
    /// Collector name.
    pub name: String,
    /// `postgres`, `redis`, `kafka`.
    pub kind: String,
    /// Whether the last collection reached the server.
    pub up: bool,
    /// Duration of the last collection in seconds.
    pub duration_seconds: f64,
    /// When the last collection started (ms since the epoch), 0 before the first.
    pub last_collection_ms: i64,
    /// The last error, if the last collection failed.
    pub last_error: Option<String>,
    /// Collections so far.
    pub collections: u64,
    /// Failed collections so far.
    pub failures: u64,
    /// Series written twice in the last collection (the first value was kept).
    pub duplicates: u64,
    /// Families of the last collection (for `/metrics`).
    families: Arc<Vec<Family>>,
}

struct Running {
    config: CollectorConfig,
    cancel: CancellationToken,
    handle: JoinHandle<()>,
}

#[derive(Default)]
struct Inner {
    running: BTreeMap<String, Running>,
    status: BTreeMap<String, CollectorStatus>,
}

/// Runs the configured collectors. Cheap to clone (a handle).
#[derive(Clone)]
pub struct CollectorManager {
    store: Arc<SeriesStore>,
    inner: Arc<Mutex<Inner>>,
    cancel: CancellationToken,
}

impl CollectorManager {
    /// A manager with no collectors yet; call [`CollectorManager::apply_config`].
    pub fn new(store: Arc<SeriesStore>, cancel: CancellationToken) -> Self {
        Self {
            store,
            inner: Arc::default(),
            cancel,
        }
    }

    /// Starts new collectors, restarts changed ones and stops removed ones (their series go
    /// stale at once).
    pub fn apply_config(&self, configs: &[CollectorConfig]) {
        let Ok(mut inner) = self.inner.lock() else {
            return;
        };
        let wanted: BTreeMap<&str, &CollectorConfig> =
            configs.iter().map(|c| (c.name.as_str(), c)).collect();
        let names: Vec<String> = inner.running.keys().cloned().collect();
        for name in names {
            let keep =
                wanted.get(name.as_str()) == inner.running.get(&name).map(|r| &r.config).as_ref();
            if !keep {
                if let Some(r) = inner.running.remove(&name) {
                    r.cancel.cancel();
                    r.handle.abort();
                }
                inner.status.remove(&name);
                self.store.remove(&source_name(&name));
            }
        }
        for cfg in configs {
            if inner.running.contains_key(&cfg.name) {
                continue;
            }
            let cancel = self.cancel.child_token();
            let handle = tokio::spawn(run_collector(
                cfg.clone(),
                self.store.clone(),
                self.inner.clone(),
                cancel.clone(),
            ));
            info!(collector = %cfg.name, kind = cfg.type_name(), interval = %humantime::format_duration(cfg.interval), "collector started");
            inner.running.insert(
                cfg.name.clone(),
                Running {
                    config: cfg.clone(),
                    cancel,
                    handle,
                },
            );
        }
    }

    /// The state of every collector, by name.
    pub fn statuses(&self) -> Vec<CollectorStatus> {
        self.inner
            .lock()
            .map(|i| i.status.values().cloned().collect())
            .unwrap_or_default()
    }

    /// Waits until every collector task has stopped (after the daemon's cancel).
    pub async fn join(&self) {
        let handles: Vec<JoinHandle<()>> = match self.inner.lock() {
            Ok(mut i) => std::mem::take(&mut i.running)
                .into_values()
                .map(|r| r.handle)
                .collect(),
            Err(_) => Vec::new(),
        };
        for h in handles {
            let _ = h.await;
        }
    }
}

/// The store source name of a collector.
pub fn source_name(name: &str) -> String {
    format!("collector/{name}")
}

fn now_ms() -> i64 {
    crate::slo::manager::now_ms()
}

async fn run_collector(
    cfg: CollectorConfig,
    store: Arc<SeriesStore>,
    shared: Arc<Mutex<Inner>>,
    cancel: CancellationToken,
) {
    let mut base: Vec<(String, String)> = cfg
        .labels
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    base.push(("job".into(), cfg.type_name().into()));
    base.push(("instance".into(), cfg.name.clone()));
    let mut out = Output::new(base);
    let Some(mut collector) = Collector::new(&cfg) else {
        return;
    };
    let offset = crate::scrape::spread_offset(&cfg.name, cfg.interval);
    let mut next = tokio::time::Instant::now() + offset.min(Duration::from_secs(1));
    let mut failures: u32 = 0;
    let mut previous_series = Arc::default();
    let mut retry_at = Instant::now();
    let mut status = CollectorStatus {
        name: cfg.name.clone(),
        kind: cfg.type_name().into(),
        ..CollectorStatus::default()
    };
    loop {
        tokio::select! {
            _ = cancel.cancelled() => break,
            _ = tokio::time::sleep_until(next) => {}
        }
        next += cfg.interval;
        let started_ms = now_ms();
        let started = Instant::now();
        out.next_round();
        let result = if Instant::now() < retry_at {
            Err(None)
        } else {
            match tokio::time::timeout(cfg.timeout, collector.collect(&mut out)).await {
                Ok(Ok(())) => Ok(()),
                Ok(Err(e)) => Err(Some(e)),
                Err(_) => Err(Some(CollectError::Timeout(
                    humantime::format_duration(cfg.timeout).to_string(),
                ))),
            }
        };
        let elapsed = started.elapsed().as_secs_f64();
        let up = result.is_ok();
        match result {
            Ok(()) => {
                if failures > 0 {
                    info!(collector = %cfg.name, "collector reached its server again");
                }
                failures = 0;
                status.last_error = None;
            }
            Err(Some(err)) => {
                // A failed collection publishes `<system>_up 0` alone, so half-collected series
                // do not mix with stale ones.
                out.next_round();
                collector.reset().await;
                failures = failures.saturating_add(1);
                let backoff = cfg
                    .interval
                    .saturating_mul(1u32 << (failures - 1).min(16))
                    .min(MAX_BACKOFF.max(cfg.interval));
                retry_at = Instant::now() + backoff;
                warn!(collector = %cfg.name, kind = cfg.type_name(), error = %err, retry_in = %humantime::format_duration(backoff), "collection failed");
                status.last_error = Some(err.to_string());
                status.failures += 1;
            }
            Err(None) => {
                // Waiting for the backoff to expire: still report the server as down.
                status.failures += 1;
            }
        }
        out.family(
            cfg.up_metric(),
            "Whether the last collection reached the server (1) or not (0).",
            Kind::Gauge,
        );
        out.sample(&[], if up { 1.0 } else { 0.0 });
        status.up = up;
        status.duration_seconds = elapsed;
        status.last_collection_ms = started_ms;
        status.collections += 1;
        status.duplicates = out.duplicates;
        let mut snapshot = SnapshotBuilder::new(
            started_ms,
            std::mem::take(&mut previous_series),
            out.families.iter().map(|f| f.samples.len()).sum(),
        );
        for (series, value) in out.families.iter().flat_map(|f| &f.samples) {
            snapshot.push(series, *value, started_ms);
        }
        let snapshot = snapshot.finish();
        previous_series = snapshot.series.clone();
        store.publish(&source_name(&cfg.name), Arc::new(snapshot));
        status.families = Arc::new(out.families.clone());
        if let Ok(mut i) = shared.lock() {
            i.status.insert(cfg.name.clone(), status.clone());
        }
    }
    collector.reset().await;
}

impl MetricsSource for CollectorManager {
    fn write_metrics(&self, w: &mut MetricsWriter) {
        let statuses = self.statuses();
        w.family(
            "vigil_collector_success",
            "Whether the last collection of a collector reached its server (1) or not (0).",
            "gauge",
        );
        for s in &statuses {
            w.sample(
                "vigil_collector_success",
                &[("collector", &s.name), ("type", &s.kind)],
                if s.up { 1.0 } else { 0.0 },
            );
        }
        w.family(
            "vigil_collector_duration_seconds",
            "Duration of the last collection of a collector.",
            "gauge",
        );
        for s in &statuses {
            w.sample(
                "vigil_collector_duration_seconds",
                &[("collector", &s.name), ("type", &s.kind)],
                s.duration_seconds,
            );
        }
        w.family(
            "vigil_collector_collections_total",
            "Collections attempted by a collector.",
            "counter",
        );
        for s in &statuses {
            w.sample(
                "vigil_collector_collections_total",
                &[("collector", &s.name), ("type", &s.kind)],
                s.collections as f64,
            );
        }
        w.family(
            "vigil_collector_failures_total",
            "Collections that did not reach the server (errors, timeouts, backoff).",
            "counter",
        );
        for s in &statuses {
            w.sample(
                "vigil_collector_failures_total",
                &[("collector", &s.name), ("type", &s.kind)],
                s.failures as f64,
            );
        }
        // The collected families, merged by name across collectors.
        let mut merged: BTreeMap<&str, (&Family, Vec<&SeriesValue>)> = BTreeMap::new();
        for s in &statuses {
            for f in s.families.iter() {
                merged
                    .entry(f.name.as_str())
                    .or_insert_with(|| (f, Vec::new()))
                    .1
                    .extend(f.samples.iter());
            }
        }
        for (name, (family, samples)) in merged {
            w.family(name, &family.help, family.kind.as_str());
            for (series, value) in samples {
                let labels: Vec<(&str, &str)> = series
                    .labels
                    .iter()
                    .filter(|(k, _)| *k != "__name__")
                    .collect();
                w.sample(name, &labels, *value);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> Vec<(String, String)> {
        vec![
            ("job".into(), "redis".into()),
            ("instance".into(), "cache".into()),
        ]
    }

    #[test]
    fn output_interns_series_across_rounds_and_keeps_the_first_duplicate() {
        let mut out = Output::new(base());
        out.family("redis_db_keys", "Keys.", Kind::Gauge);
        out.sample(&[("db", "db0")], 3.0);
        out.sample(&[("db", "db1")], 4.0);
        out.sample(&[("db", "db0")], 99.0);
        out.family("redis_up_since", "x", Kind::Counter);
        out.sample(&[], 1.0);
        // Back to the first family: samples join it.
        out.family("redis_db_keys", "Keys.", Kind::Gauge);
        out.sample(&[("db", "db2")], 5.0);
        assert_eq!(out.duplicates, 1);
        let fam = &out.families()[out.families().len() - 1];
        assert_eq!(fam.name, "redis_db_keys");
        let values: Vec<f64> = fam.samples.iter().map(|(_, v)| *v).collect();
        assert_eq!(values, [3.0, 4.0, 5.0], "first value of a duplicate wins");
        let first = fam.samples[0].0.clone();
        assert_eq!(
            first.labels.to_string(),
            "redis_db_keys{db=\"db0\",instance=\"cache\",job=\"redis\"}"
        );
        // Next round: the same series object (same id) for the same labels, in any order.
        out.next_round();
        out.family("redis_db_keys", "Keys.", Kind::Gauge);
        out.sample(&[("db", "db0")], 6.0);
        assert!(Arc::ptr_eq(&out.families()[0].samples[0].0, &first));
        // A series missing for a round is forgotten: it comes back with a new id.
        out.next_round();
        out.next_round();
        out.family("redis_db_keys", "Keys.", Kind::Gauge);
        out.sample(&[("db", "db0")], 7.0);
        assert_ne!(out.families()[0].samples[0].0.id, first.id);
    }

    #[test]
    fn label_order_does_not_make_a_new_series() {
        let mut out = Output::new(base());
        out.family("m", "h", Kind::Gauge);
        out.sample(&[("a", "1"), ("b", "2")], 1.0);
        out.sample(&[("b", "2"), ("a", "1")], 2.0);
        assert_eq!(out.duplicates, 1);
        let many: Vec<(String, String)> = (0..12)
            .map(|i| (format!("l{i:02}"), i.to_string()))
            .collect();
        let pairs: Vec<(&str, &str)> = many.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        out.sample(&pairs, 3.0);
        assert_eq!(out.families()[0].samples.len(), 2);
        assert_eq!(out.families()[0].samples[1].0.labels.len(), 12 + 3);
    }
}
