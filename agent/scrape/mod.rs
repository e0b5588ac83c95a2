//! Scraping: the [`ScrapeManager`] turns the `scrape:` config into targets (static URLs and
//! file_sd, through `relabel_configs`), runs one loop per target spread over its interval, and
//! publishes every scrape into the [`SeriesStore`](crate::store::series::SeriesStore). A slow or
//! failing target never delays the others; errors are counted and shown on `/api/v1/targets`.
//!
//! - [`exposition`]: the text 0.0.4 / OpenMetrics 1.0 parser (strict and scrape modes);
//! - [`discovery`]: static and file-based targets; [`kubernetes`]: Kubernetes discovery
//!   (`kubernetes_sd_configs`, watch-based); [`relabel`]: relabelling;
//! - [`target`]: one target's scrape loop and its series cache.

pub mod discovery;
pub mod exposition;
pub mod kubernetes;
pub mod relabel;
pub mod target;

use std::collections::hash_map::DefaultHasher;
use std::collections::{BTreeMap, HashMap};
use std::hash::{Hash, Hasher};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest::header::HeaderValue;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::api::Readiness;
use crate::api::metrics::{MetricsSource, MetricsWriter};
use crate::config::scrape::{JobConfig, ScrapeConfig};
use crate::store::series::SeriesStore;
use discovery::{DroppedTarget, FileSdCache, targets_with};
use kubernetes::KubernetesSd;
use relabel::Relabeler;
use target::{Health, JobRuntime, Scraper, TargetState};

/// Readiness condition: every target known at start has been scraped once.
pub const READY_SCRAPE: &str = "scrape";

/// Failure reasons, in the order of [`JobCounters::failures`].
const REASONS: [&str; 7] = [
    "timeout",
    "http",
    "status",
    "body_size_limit",
    "parse",
    "sample_limit",
    "label_limit",
];

/// A per-job counter family: name, help and how to read it.
type CounterFamily = (&'static str, &'static str, fn(&JobCounters) -> u64);

/// Cumulative counters of a job, kept across reloads.
#[derive(Debug, Default)]
pub struct JobCounters {
    scrapes: AtomicU64,
    samples: AtomicU64,
    failures: [AtomicU64; REASONS.len()],
}

struct Job {
    fingerprint: String,
    generation: u64,
    runtime: Option<Arc<JobRuntime>>,
    relabel: Relabeler,
    file_sd: FileSdCache,
    /// Running Kubernetes discoveries; dropping the job stops them.
    kubernetes: Vec<KubernetesSd>,
    config: JobConfig,
}

struct Running {
    state: Arc<TargetState>,
    cancel: CancellationToken,
}

struct Inner {
    store: Arc<SeriesStore>,
    readiness: Arc<Readiness>,
    config: Mutex<(ScrapeConfig, std::path::PathBuf)>,
    wake: Notify,
    jobs: Mutex<BTreeMap<String, Job>>,
    running: Mutex<BTreeMap<String, Running>>,
    dropped: Mutex<Vec<(String, DroppedTarget)>>,
    counters: Mutex<HashMap<String, Arc<JobCounters>>>,
    generation: AtomicU64,
}

/// Runs the scrape loops (cheap to clone: a handle).
#[derive(Clone)]
pub struct ScrapeManager {
    inner: Arc<Inner>,
}

/// Errors building a job's HTTP client.
#[derive(Debug, thiserror::Error)]
pub enum ScrapeConfigError {
    /// A TLS file could not be used.
    #[error("job {job}: {what}: {message}")]
    Tls {
        /// The job.
        job: String,
        /// Which file.
        what: &'static str,
        /// Why.
        message: String,
    },
}

impl ScrapeManager {
    /// A manager for `cfg`; relative paths in it are already resolved against the config file.
    pub fn new(cfg: &ScrapeConfig, store: Arc<SeriesStore>, readiness: Arc<Readiness>) -> Self {
        readiness.require(READY_SCRAPE);
        Self {
            inner: Arc::new(Inner {
                store,
                readiness,
                config: Mutex::new((cfg.clone(), std::path::PathBuf::from("."))),
                wake: Notify::new(),
                jobs: Mutex::new(BTreeMap::new()),
                running: Mutex::new(BTreeMap::new()),
                dropped: Mutex::new(Vec::new()),
                counters: Mutex::new(HashMap::new()),
                generation: AtomicU64::new(0),
            }),
        }
    }

    /// Applies a reloaded (already validated) configuration: changed jobs restart their
    /// targets, removed targets go stale, new ones start.
    pub fn apply_config(&self, cfg: &ScrapeConfig) {
        if let Ok(mut c) = self.inner.config.lock() {
            c.0 = cfg.clone();
        }
        self.inner.wake.notify_one();
    }

    /// Reconciles targets until `cancel` fires; then stops every target loop.
    pub async fn run(self, cancel: CancellationToken) {
        loop {
            let refresh = self.sync(&cancel);
            self.check_ready();
            tokio::select! {
                _ = cancel.cancelled() => break,
                _ = tokio::time::sleep(refresh) => {}
                _ = self.inner.wake.notified() => {}
            }
        }
        let running =
            std::mem::take(&mut *self.inner.running.lock().unwrap_or_else(|e| e.into_inner()));
        for r in running.values() {
            r.cancel.cancel();
        }
    }

    fn check_ready(&self) {
        let all_scraped = self
            .inner
            .running
            .lock()
            .map(|r| r.values().all(|t| t.state.health().scrapes > 0))
            .unwrap_or(false);
        if all_scraped {
            self.inner.readiness.done(READY_SCRAPE);
        }
    }

    /// One reconciliation; returns how long to wait before the next.
    fn sync(&self, cancel: &CancellationToken) -> Duration {
        let (cfg, _) = self
            .inner
            .config
            .lock()
            .map(|c| c.clone())
            .unwrap_or_default();
        let mut refresh = Duration::from_secs(30);
        let mut desired: BTreeMap<String, (discovery::Target, Arc<JobRuntime>, Duration)> =
            BTreeMap::new();
        let mut dropped_all = Vec::new();
        {
            let Ok(mut jobs) = self.inner.jobs.lock() else {
                return refresh;
            };
            jobs.retain(|name, _| cfg.targets.iter().any(|j| &j.job == name));
            for jc in &cfg.targets {
                let fingerprint =
                    format!("{:?}|{:?}|{:?}", jc, jc.interval(&cfg), jc.timeout(&cfg));
                let stale = jobs
                    .get(&jc.job)
                    .is_none_or(|j| j.fingerprint != fingerprint);
                if stale {
                    let job = self.build_job(jc, &cfg, fingerprint, cancel);
                    jobs.insert(jc.job.clone(), job);
                }
                let Some(job) = jobs.get_mut(&jc.job) else {
                    continue;
                };
                let Some(runtime) = job.runtime.clone() else {
                    continue;
                };
                let mut groups = Vec::new();
                for sd in &job.config.file_sd_configs {
                    refresh = refresh.min(sd.refresh_interval);
                    groups.extend(job.file_sd.read(&sd.files));
                }
                for (file, err) in job.file_sd.errors.drain(..) {
                    tracing::error!(job = %jc.job, file = %file.display(), error = %err, "file_sd: keeping the last good targets of this file");
                }
                let sd_targets: Vec<discovery::DiscoveredLabels> = job
                    .kubernetes
                    .iter()
                    .flat_map(KubernetesSd::targets)
                    .collect();
                let (targets, dropped) =
                    targets_with(&job.config, &job.relabel, &groups, &sd_targets);
                for t in targets {
                    let key = format!("scrape/{}/{}", job.generation, t.key());
                    let offset = spread_offset(&t.key(), runtime.interval);
                    desired.insert(key, (t, runtime.clone(), offset));
                }
                dropped_all.extend(dropped.into_iter().map(|d| (jc.job.clone(), d)));
            }
        }
        if let Ok(mut d) = self.inner.dropped.lock() {
            *d = dropped_all;
        }
        let Ok(mut running) = self.inner.running.lock() else {
            return refresh;
        };
        running.retain(|key, r| {
            let keep = desired.contains_key(key);
            if !keep {
                r.cancel.cancel();
            }
            keep
        });
        for (key, (target, runtime, offset)) in desired {
            if running.contains_key(&key) {
                continue;
            }
            let state = Arc::new(TargetState {
                target,
                job: runtime,
                health: Mutex::new(Health {
                    health: "unknown",
                    ..Health::default()
                }),
            });
            let child = cancel.child_token();
            let scraper = Scraper::new(state.clone(), key.clone());
            let store = self.inner.store.clone();
            let inner = self.inner.clone();
            tokio::spawn(scraper.run(store, offset, child.clone(), move || {
                inner.wake.notify_one()
            }));
            running.insert(
                key,
                Running {
                    state,
                    cancel: child,
                },
            );
        }
        refresh
    }

    fn build_job(
        &self,
        jc: &JobConfig,
        cfg: &ScrapeConfig,
        fingerprint: String,
        cancel: &CancellationToken,
    ) -> Job {
        let generation = self.inner.generation.fetch_add(1, Ordering::Relaxed);
        let relabel = Relabeler::compile(&jc.relabel_configs).unwrap_or_default();
        let runtime = match self.build_runtime(jc, cfg) {
            Ok(r) => Some(Arc::new(r)),
            Err(e) => {
                tracing::error!(job = %jc.job, error = %e, "cannot scrape this job; fix its configuration and reload");
                None
            }
        };
        // The watch tasks hold the manager weakly: they wake it, they do not keep it alive.
        let weak = Arc::downgrade(&self.inner);
        let wake: kubernetes::Wake = Arc::new(move || {
            if let Some(inner) = weak.upgrade() {
                inner.wake.notify_one();
            }
        });
        let kubernetes = jc
            .kubernetes_sd_configs
            .iter()
            .map(|sd| KubernetesSd::spawn(&jc.job, sd, cancel, wake.clone()))
            .collect();
        Job {
            fingerprint,
            generation,
            runtime,
            relabel,
            file_sd: FileSdCache::default(),
            kubernetes,
            config: jc.clone(),
        }
    }

    fn build_runtime(
        &self,
        jc: &JobConfig,
        cfg: &ScrapeConfig,
    ) -> Result<JobRuntime, ScrapeConfigError> {
        let tls_err = |what, message: String| ScrapeConfigError::Tls {
            job: jc.job.clone(),
            what,
            message,
        };
        let timeout = jc.timeout(cfg);
        let mut b = reqwest::Client::builder()
            .gzip(true)
            .connect_timeout(timeout)
            .pool_max_idle_per_host(2)
            .use_rustls_tls();
        if let Some(tls) = &jc.tls_config {
            if let Some(ca) = &tls.ca_file {
                let pem = std::fs::read(ca).map_err(|e| tls_err("ca_file", e.to_string()))?;
                for cert in reqwest::Certificate::from_pem_bundle(&pem)
                    .map_err(|e| tls_err("ca_file", e.to_string()))?
                {
                    b = b.add_root_certificate(cert);
                }
            }
            if let (Some(cert), Some(key)) = (&tls.cert_file, &tls.key_file) {
                let mut pem =
                    std::fs::read(cert).map_err(|e| tls_err("cert_file", e.to_string()))?;
                pem.extend(std::fs::read(key).map_err(|e| tls_err("key_file", e.to_string()))?);
                b = b.identity(
                    reqwest::Identity::from_pem(&pem)
                        .map_err(|e| tls_err("cert_file", e.to_string()))?,
                );
            }
            if tls.insecure_skip_verify {
                b = b.danger_accept_invalid_certs(true);
            }
        }
        let client = b
            .build()
            .map_err(|e| tls_err("tls_config", e.to_string()))?;
        let authorization = jc
            .authorization_header(Path::new("."))
            .map_err(|e| tls_err("authorization", e))?
            .and_then(|h| {
                let mut v = HeaderValue::from_str(&h).ok()?;
                v.set_sensitive(true);
                Some(v)
            });
        let counters = self
            .inner
            .counters
            .lock()
            .map(|mut c| c.entry(jc.job.clone()).or_default().clone())
            .unwrap_or_default();
        Ok(JobRuntime {
            name: jc.job.clone(),
            interval: jc.interval(cfg),
            timeout,
            client,
            authorization,
            metric_relabel: Relabeler::compile(&jc.metric_relabel_configs).unwrap_or_default(),
            body_size_limit: jc.body_size_limit,
            sample_limit: jc.sample_limit,
            label_limit: jc.label_limit,
            honor_labels: jc.honor_labels,
            honor_timestamps: jc.honor_timestamps,
            counters,
        })
    }

    /// Every running target, sorted by job and URL.
    pub fn targets(&self) -> Vec<Arc<TargetState>> {
        let mut v: Vec<Arc<TargetState>> = self
            .inner
            .running
            .lock()
            .map(|r| r.values().map(|t| t.state.clone()).collect())
            .unwrap_or_default();
        v.sort_by(|a, b| (&a.target.job, &a.target.url).cmp(&(&b.target.job, &b.target.url)));
        v
    }

    /// Targets that relabelling dropped, with their job.
    pub fn dropped(&self) -> Vec<(String, DroppedTarget)> {
        self.inner
            .dropped
            .lock()
            .map(|d| d.clone())
            .unwrap_or_default()
    }
}

impl JobCounters {
    /// Records one scrape's outcome.
    pub fn record(&self, samples: usize, failure: Option<&str>) {
        self.scrapes.fetch_add(1, Ordering::Relaxed);
        self.samples.fetch_add(samples as u64, Ordering::Relaxed);
        if let Some(reason) = failure {
            if let Some(i) = REASONS.iter().position(|r| *r == reason) {
                self.failures[i].fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

impl MetricsSource for ScrapeManager {
    fn write_metrics(&self, w: &mut MetricsWriter) {
        let mut by_job: BTreeMap<String, [usize; 3]> = BTreeMap::new();
        for t in self.targets() {
            let h = t.state_health();
            let slot = by_job.entry(t.target.job.clone()).or_default();
            slot[match h {
                "up" => 0,
                "down" => 1,
                _ => 2,
            }] += 1;
        }
        w.family(
            "vigil_scrape_targets",
            "Scrape targets by job and health.",
            "gauge",
        );
        for (job, counts) in &by_job {
            for (i, health) in ["up", "down", "unknown"].iter().enumerate() {
                w.sample(
                    "vigil_scrape_targets",
                    &[("job", job), ("health", health)],
                    counts[i] as f64,
                );
            }
        }
        // Per target (`target` is its instance label: `instance` is left to whoever scrapes
        // the agent): up after each scrape, and how long the last scrape took.
        let scraped: Vec<(String, String, crate::scrape::target::Health)> = self
            .targets()
            .iter()
            .map(|t| {
                let instance = t.target.labels.get("instance").unwrap_or_default();
                (t.target.job.clone(), instance.to_string(), t.health())
            })
            .filter(|(_, _, h)| h.scrapes > 0)
            .collect();
        w.family(
            "vigil_scrape_target_up",
            "1 if the target's last scrape succeeded, 0 if not (Prometheus' up, per target).",
            "gauge",
        );
        for (job, target, h) in &scraped {
            let up = if h.health == "up" { 1.0 } else { 0.0 };
            w.sample(
                "vigil_scrape_target_up",
                &[("job", job), ("target", target)],
                up,
            );
        }
        w.family(
            "vigil_scrape_target_duration_seconds",
            "Duration of the target's last scrape.",
            "gauge",
        );
        for (job, target, h) in &scraped {
            w.sample(
                "vigil_scrape_target_duration_seconds",
                &[("job", job), ("target", target)],
                h.last_duration,
            );
        }
        let counters: BTreeMap<String, Arc<JobCounters>> = self
            .inner
            .counters
            .lock()
            .map(|c| c.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
            .unwrap_or_default();
        let totals: [CounterFamily; 2] = [
            ("vigil_scrapes_total", "Scrapes attempted, by job.", |c| {
                c.scrapes.load(Ordering::Relaxed)
            }),
            (
                "vigil_scrape_samples_total",
                "Samples stored from scrapes, by job.",
                |c| c.samples.load(Ordering::Relaxed),
            ),
        ];
        for (name, help, value) in totals {
            w.family(name, help, "counter");
            for (job, c) in &counters {
                w.sample(name, &[("job", job)], value(c) as f64);
            }
        }
        w.family(
            "vigil_scrape_failures_total",
            "Failed scrapes, by job and reason.",
            "counter",
        );
        for (job, c) in &counters {
            for (i, reason) in REASONS.iter().enumerate() {
                w.sample(
                    "vigil_scrape_failures_total",
                    &[("job", job), ("reason", reason)],
                    c.failures[i].load(Ordering::Relaxed) as f64,
                );
            }
        }
    }
}

impl TargetState {
    fn state_health(&self) -> &'static str {
        self.health().health
    }
}

/// A stable offset in `[0, interval)` for a target, so that targets spread over the interval
/// instead of all scraping at once, and keep their phase across restarts.
pub fn spread_offset(key: &str, interval: Duration) -> Duration {
    let mut h = DefaultHasher::new();
    key.hash(&mut h);
    let nanos = interval.as_nanos().max(1) as u64;
    Duration::from_nanos(h.finish() % nanos)
}
