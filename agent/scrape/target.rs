//! One target's scrape loop: fetch with a timeout and limits, parse, attach target labels, apply
//! `metric_relabel_configs`, and publish a snapshot (with `up`, `scrape_duration_seconds`,
//! `scrape_samples_scraped`, `scrape_samples_post_metric_relabeling`, `scrape_series_added`) to
//! the store. A failed scrape publishes only the synthetic series, so every scraped series goes
//! stale at once, as in Prometheus.
//!
//! Hot path: a per-target cache keyed by the raw series bytes of the exposition maps each line to
//! its interned series, so a repeated scrape of the same series allocates nothing per sample.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use reqwest::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, HeaderValue, USER_AGENT};
use tokio_util::sync::CancellationToken;

use super::discovery::Target;
use super::exposition::{self, Entry, Format, Mode, Parser};
use super::relabel::Relabeler;
use crate::store::series::{LabelBuilder, LabelSet, Sample, Series, SeriesStore, Snapshot};

/// Accept header: OpenMetrics preferred, then the text format, as Prometheus asks.
pub const ACCEPT_HEADER: &str =
    "application/openmetrics-text;version=1.0.0;q=0.5,text/plain;version=0.0.4;q=0.4,*/*;q=0.1";

/// Why a scrape failed. The `reason()` is the label of `vigil_scrape_failures_total`.
#[derive(Debug, thiserror::Error)]
pub enum ScrapeError {
    /// No answer within the timeout.
    #[error("scrape timed out after {0:?}")]
    Timeout(Duration),
    /// Connection or protocol failure.
    #[error("{0}")]
    Http(String),
    /// A non-2xx status.
    #[error("server returned HTTP status {0}")]
    Status(String),
    /// Body over `body_size_limit`.
    #[error("body size limit exceeded: the response is larger than {0} bytes (body_size_limit)")]
    BodyTooLarge(u64),
    /// Exposition syntax error.
    #[error("parse error at {0}")]
    Parse(exposition::ParseError),
    /// More samples than `sample_limit`.
    #[error("sample limit exceeded: more than {0} samples after metric relabelling (sample_limit)")]
    SampleLimit(usize),
    /// A series with more labels than `label_limit`.
    #[error(
        "label limit exceeded: series {series} has {count} labels, more than {limit} (label_limit)"
    )]
    LabelLimit {
        /// The series.
        series: String,
        /// Its label count.
        count: usize,
        /// The limit.
        limit: usize,
    },
}

impl ScrapeError {
    /// Short reason for metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Timeout(_) => "timeout",
            Self::Http(_) => "http",
            Self::Status(_) => "status",
            Self::BodyTooLarge(_) => "body_size_limit",
            Self::Parse(_) => "parse",
            Self::SampleLimit(_) => "sample_limit",
            Self::LabelLimit { .. } => "label_limit",
        }
    }
}

/// How a job scrapes (shared by its targets).
#[derive(Debug)]
pub struct JobRuntime {
    /// Job name.
    pub name: String,
    /// Interval between scrapes.
    pub interval: Duration,
    /// Timeout of one scrape.
    pub timeout: Duration,
    /// HTTP client with the job's TLS settings.
    pub client: reqwest::Client,
    /// `Authorization` header, if any (never logged).
    pub authorization: Option<HeaderValue>,
    /// Metric relabelling.
    pub metric_relabel: Relabeler,
    /// Body limit in bytes, 0 = none.
    pub body_size_limit: u64,
    /// Sample limit, 0 = none.
    pub sample_limit: usize,
    /// Label limit, 0 = none.
    pub label_limit: usize,
    /// Keep scraped labels on clashes.
    pub honor_labels: bool,
    /// Use exposed timestamps.
    pub honor_timestamps: bool,
    /// Cumulative counters of the job.
    pub counters: Arc<super::JobCounters>,
}

/// Health of a target, as the targets API shows it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Health {
    /// "up", "down" or "unknown" (not scraped yet).
    pub health: &'static str,
    /// Start of the last scrape.
    pub last_scrape: Option<SystemTime>,
    /// Duration of the last scrape in seconds.
    pub last_duration: f64,
    /// Error of the last scrape, "" when it succeeded.
    pub last_error: String,
    /// Samples stored by the last scrape (after relabelling).
    pub samples: usize,
    /// Series first seen in the last scrape.
    pub series_added: usize,
    /// Scrapes attempted.
    pub scrapes: u64,
}

/// A running target: what it is and how it is doing.
#[derive(Debug)]
pub struct TargetState {
    /// The target.
    pub target: Target,
    /// The job's settings.
    pub job: Arc<JobRuntime>,
    /// Health, updated after every scrape.
    pub health: Mutex<Health>,
}

impl TargetState {
    /// A snapshot of the health.
    pub fn health(&self) -> Health {
        self.health.lock().map(|h| h.clone()).unwrap_or_default()
    }
}

struct CacheEntry {
    /// None when metric relabelling drops the series.
    series: Option<Arc<Series>>,
    /// The scrape number that last saw it.
    seen: u64,
}

/// Outcome counters of one scrape, for the synthetic series.
#[derive(Debug, Default, Clone, Copy)]
struct Counts {
    scraped: usize,
    stored: usize,
    added: usize,
}

struct Synthetic {
    up: Arc<Series>,
    duration: Arc<Series>,
    scraped: Arc<Series>,
    post_relabel: Arc<Series>,
    added: Arc<Series>,
}

impl Synthetic {
    fn new(target: &LabelSet) -> Self {
        let make = |name: &str| {
            let mut b = target.to_builder();
            b.set("__name__".into(), name.into());
            Series::new(b.finish())
        };
        Self {
            up: make("up"),
            duration: make("scrape_duration_seconds"),
            scraped: make("scrape_samples_scraped"),
            post_relabel: make("scrape_samples_post_metric_relabeling"),
            added: make("scrape_series_added"),
        }
    }
}

/// The per-target state of the scrape loop.
pub struct Scraper {
    state: Arc<TargetState>,
    key: String,
    cache: HashMap<Box<[u8]>, CacheEntry>,
    body: Vec<u8>,
    scrape_no: u64,
    synthetic: Synthetic,
    last_len: usize,
}

fn now_ms(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

impl Scraper {
    /// A scraper for `state`, publishing under `key`.
    pub fn new(state: Arc<TargetState>, key: String) -> Self {
        let synthetic = Synthetic::new(&state.target.labels);
        Self {
            state,
            key,
            cache: HashMap::new(),
            body: Vec::new(),
            scrape_no: 0,
            synthetic,
            last_len: 0,
        }
    }

    /// Scrapes every interval until `cancel`, starting after `offset` (which spreads targets
    /// over the interval). `first_done` is called after the first attempt.
    pub async fn run(
        mut self,
        store: Arc<SeriesStore>,
        offset: Duration,
        cancel: CancellationToken,
        first_done: impl FnOnce(),
    ) {
        let interval = self.state.job.interval;
        let start = tokio::time::Instant::now() + offset;
        let mut tick = tokio::time::interval_at(start, interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut first_done = Some(first_done);
        loop {
            tokio::select! {
                _ = cancel.cancelled() => break,
                _ = tick.tick() => {}
            }
            let snap = self.scrape_once().await;
            store.publish(&self.key, Arc::new(snap));
            if let Some(f) = first_done.take() {
                f();
            }
        }
        store.remove(&self.key);
    }

    /// One scrape: fetch, parse, publish-ready snapshot; health updated.
    pub async fn scrape_once(&mut self) -> Snapshot {
        let started_wall = SystemTime::now();
        let started = Instant::now();
        let ts = now_ms(started_wall);
        self.scrape_no += 1;
        let result = match tokio::time::timeout(self.state.job.timeout, self.fetch()).await {
            Ok(Ok(format)) => self.ingest(format, ts),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(ScrapeError::Timeout(self.state.job.timeout)),
        };
        let elapsed = started.elapsed().as_secs_f64();
        let (mut samples, counts, error) = match result {
            Ok((samples, counts)) => {
                self.state.job.counters.record(counts.stored, None);
                (samples, counts, String::new())
            }
            Err(e) => {
                self.state.job.counters.record(0, Some(e.reason()));
                (Vec::with_capacity(5), Counts::default(), e.to_string())
            }
        };
        let up = if error.is_empty() { 1.0 } else { 0.0 };
        let s = &self.synthetic;
        for (series, value) in [
            (&s.up, up),
            (&s.duration, elapsed),
            (&s.scraped, counts.scraped as f64),
            (&s.post_relabel, counts.stored as f64),
            (&s.added, counts.added as f64),
        ] {
            samples.push(Sample {
                series: series.clone(),
                value,
                timestamp_ms: ts,
            });
        }
        if let Ok(mut h) = self.state.health.lock() {
            h.health = if error.is_empty() { "up" } else { "down" };
            h.last_scrape = Some(started_wall);
            h.last_duration = elapsed;
            h.samples = counts.stored;
            h.series_added = counts.added;
            h.scrapes += 1;
            if !error.is_empty() && h.last_error != error {
                tracing::warn!(job = %self.state.target.job, target = %self.state.target.url, error = %error, "scrape failed");
            }
            h.last_error = error;
        }
        Snapshot {
            collected_at_ms: ts,
            samples,
        }
    }

    /// Fetches the body into `self.body`; returns the exposition format.
    async fn fetch(&mut self) -> Result<Format, ScrapeError> {
        let job = &self.state.job;
        let mut req = job
            .client
            .get(&self.state.target.url)
            .header(ACCEPT, ACCEPT_HEADER)
            .header(USER_AGENT, concat!("Vigil/", env!("CARGO_PKG_VERSION")))
            .header(
                "X-Prometheus-Scrape-Timeout-Seconds",
                format!("{}", job.timeout.as_secs_f64()),
            );
        if let Some(auth) = &job.authorization {
            req = req.header(AUTHORIZATION, auth.clone());
        }
        let mut resp = req
            .send()
            .await
            .map_err(|e| ScrapeError::Http(describe(&e)))?;
        if !resp.status().is_success() {
            return Err(ScrapeError::Status(resp.status().to_string()));
        }
        let format = resp
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(exposition::format_from_content_type)
            .unwrap_or(Format::Text);
        self.body.clear();
        let limit = job.body_size_limit;
        while let Some(chunk) = resp
            .chunk()
            .await
            .map_err(|e| ScrapeError::Http(describe(&e)))?
        {
            if limit > 0 && (self.body.len() + chunk.len()) as u64 > limit {
                return Err(ScrapeError::BodyTooLarge(limit));
            }
            self.body.extend_from_slice(&chunk);
        }
        Ok(format)
    }

    /// Parses `self.body` into samples.
    fn ingest(&mut self, format: Format, ts: i64) -> Result<(Vec<Sample>, Counts), ScrapeError> {
        let job = self.state.job.clone();
        let mut samples = Vec::with_capacity(self.last_len + 5);
        let mut counts = Counts::default();
        let scrape_no = self.scrape_no;
        for entry in Parser::new(&self.body, format, Mode::Scrape) {
            let sample = match entry {
                Ok(Entry::Sample(s)) => s,
                Ok(_) => continue,
                Err(e) => return Err(ScrapeError::Parse(e)),
            };
            counts.scraped += 1;
            let entry = match self.cache.get_mut(sample.series) {
                Some(e) => {
                    if e.seen == scrape_no {
                        // The same series twice in one exposition: keep the first, as
                        // Prometheus does (it counts these as duplicates).
                        continue;
                    }
                    e.seen = scrape_no;
                    e
                }
                None => {
                    let series = build_series(&sample, &self.state.target.labels, &job)?;
                    if series.is_some() {
                        counts.added += 1;
                    }
                    self.cache
                        .entry(sample.series.into())
                        .or_insert(CacheEntry {
                            series,
                            seen: scrape_no,
                        })
                }
            };
            let Some(series) = &entry.series else {
                continue;
            };
            counts.stored += 1;
            if job.sample_limit > 0 && counts.stored > job.sample_limit {
                return Err(ScrapeError::SampleLimit(job.sample_limit));
            }
            let timestamp_ms = match sample.timestamp_ms {
                Some(t) if job.honor_timestamps => t,
                _ => ts,
            };
            samples.push(Sample {
                series: series.clone(),
                value: sample.value,
                timestamp_ms,
            });
        }
        // Forget series this scrape did not see (keeps the cache as large as one exposition).
        if self.cache.len() > counts.scraped {
            self.cache.retain(|_, e| e.seen == scrape_no);
        }
        self.last_len = samples.len();
        Ok((samples, counts))
    }
}

/// Builds the labels of a newly seen series: exposition labels, then target labels (with
/// `exported_` on clashes unless honor_labels), then metric relabelling. None when dropped.
fn build_series(
    sample: &exposition::Sample<'_>,
    target: &LabelSet,
    job: &JobRuntime,
) -> Result<Option<Arc<Series>>, ScrapeError> {
    let mut b = LabelBuilder::default();
    b.set("__name__".into(), sample.name.to_string());
    for (k, v) in sample.labels.iter() {
        b.set(k.to_string(), v.into_owned());
    }
    for (k, v) in target.iter() {
        match b.get(k) {
            Some(_) if job.honor_labels => {}
            Some(existing) => {
                let existing = existing.to_string();
                b.set(format!("exported_{k}"), existing);
                b.set(k.to_string(), v.to_string());
            }
            None => b.set(k.to_string(), v.to_string()),
        }
    }
    if !job.metric_relabel.apply(&mut b) || b.get("__name__").is_none() {
        return Ok(None);
    }
    if job.label_limit > 0 && b.len() - 1 > job.label_limit {
        let labels = b.finish();
        return Err(ScrapeError::LabelLimit {
            series: labels.to_string(),
            count: labels.len() - 1,
            limit: job.label_limit,
        });
    }
    Ok(Some(Series::new(b.finish())))
}

/// A reqwest error with its causes, without the URL's credentials.
fn describe(e: &reqwest::Error) -> String {
    let mut msg = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        msg.push_str(": ");
        msg.push_str(&s.to_string());
        source = s.source();
    }
    msg
}
