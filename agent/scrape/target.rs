//! One target's scrape loop: fetch with a timeout and limits, parse, attach target labels, apply
//! `metric_relabel_configs`, and publish a snapshot (with `up`, `scrape_duration_seconds`,
//! `scrape_samples_scraped`, `scrape_samples_post_metric_relabeling`, `scrape_series_added`) to
//! the store. A failed scrape publishes only the synthetic series, so every scraped series goes
//! stale at once, as in Prometheus.
//!
//! Hot path: a per-target cache keyed by the raw series bytes of the exposition maps each line to
//! its interned series, so a repeated scrape of the same series allocates nothing per sample.
//! Most expositions list the same series in the same order every time, so each line is first
//! compared with the line at the same position of the previous scrape (kept in one contiguous
//! buffer, read sequentially); only a mismatch pays for a hash lookup.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use reqwest::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, HeaderValue, USER_AGENT};
use tokio_util::sync::CancellationToken;

use super::discovery::Target;
use super::exposition::{self, Entry, Format, Mode, Parser};
use super::relabel::Relabeler;
use crate::store::series::{
    LabelBuilder, LabelSet, Series, SeriesStore, Snapshot, SnapshotBuilder,
};

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

/// The series bytes of one scrape, in exposition order, each with its cache slot.
#[derive(Default)]
struct Positions {
    /// Every sample's series bytes, concatenated.
    keys: Vec<u8>,
    /// Per sample: end offset in `keys` and the slot in `SeriesCache::slots`.
    ends: Vec<(u32, u32)>,
}

impl Positions {
    fn clear(&mut self) {
        self.keys.clear();
        self.ends.clear();
    }

    /// The series bytes at position `i` (empty past the end).
    fn key(&self, i: usize) -> &[u8] {
        let Some(&(end, _)) = self.ends.get(i) else {
            return &[];
        };
        let start = match i.checked_sub(1) {
            Some(p) => self.ends.get(p).map_or(0, |e| e.0),
            None => 0,
        };
        self.keys
            .get(start as usize..end as usize)
            .unwrap_or_default()
    }

    /// The slot of the series at position `i` when its bytes equal `key`.
    fn slot_if_same(&self, i: usize, key: &[u8]) -> Option<u32> {
        let &(_, slot) = self.ends.get(i)?;
        exposition::bytes_eq(self.key(i), key).then_some(slot)
    }

    fn push(&mut self, key: &[u8], slot: u32) {
        self.keys.extend_from_slice(key);
        self.ends.push((self.keys.len() as u32, slot));
    }

    /// Keeps the first `n` positions.
    fn truncate(&mut self, n: usize) {
        self.ends.truncate(n);
        self.keys
            .truncate(self.ends.last().map_or(0, |e| e.0 as usize));
    }

    /// Replaces `self` with the first `n` positions of `other`.
    fn copy_prefix(&mut self, other: &Positions, n: usize) {
        let n = n.min(other.ends.len());
        let end = n
            .checked_sub(1)
            .and_then(|p| other.ends.get(p))
            .map_or(0, |e| e.0 as usize);
        self.clear();
        self.keys
            .extend_from_slice(other.keys.get(..end).unwrap_or_default());
        self.ends
            .extend_from_slice(other.ends.get(..n).unwrap_or_default());
    }
}

/// Raw series bytes -> interned series, across scrapes of one target.
#[derive(Default)]
struct SeriesCache {
    slots: Vec<CacheEntry>,
    free: Vec<u32>,
    index: HashMap<Box<[u8]>, u32>,
    previous: Positions,
    current: Positions,
    /// While every position of this scrape so far matched the previous scrape's, `current`
    /// stays empty and this counts them: the steady state copies no key bytes. The first
    /// mismatch copies the matched prefix into `current` once.
    matched_prefix: Option<usize>,
}

impl SeriesCache {
    /// Starts a scrape (dropping what a failed one left behind).
    fn begin(&mut self) {
        self.current.clear();
        self.matched_prefix = Some(0);
    }

    /// Leaves prefix mode: `current` gets the positions matched so far.
    fn materialize(&mut self) {
        if let Some(n) = self.matched_prefix.take() {
            self.current.copy_prefix(&self.previous, n);
        }
    }

    /// The slot of `key` at position `i` of this scrape, if it is cached.
    fn find(&mut self, i: usize, key: &[u8]) -> Option<u32> {
        if let Some(slot) = self.previous.slot_if_same(i, key) {
            return Some(self.found_at_previous(i, key, slot));
        }
        let slot = *self.index.get(key)?;
        self.materialize();
        self.current.push(key, slot);
        Some(slot)
    }

    /// Records that position `i` holds `key`, equal to the previous scrape's series at `i`
    /// whose slot is `slot` (found by `find`, or by the parser's hint).
    fn found_at_previous(&mut self, i: usize, key: &[u8], slot: u32) -> u32 {
        match &mut self.matched_prefix {
            Some(n) if *n == i => *n += 1,
            _ => {
                self.materialize();
                self.current.push(key, slot);
            }
        }
        slot
    }

    /// The slot of the previous scrape's series at position `i`.
    fn previous_slot(&self, i: usize) -> u32 {
        self.previous.ends.get(i).map_or(0, |e| e.1)
    }

    fn insert(&mut self, key: &[u8], entry: CacheEntry) -> u32 {
        let slot = match self.free.pop() {
            Some(slot) => {
                self.slots[slot as usize] = entry;
                slot
            }
            None => {
                self.slots.push(entry);
                (self.slots.len() - 1) as u32
            }
        };
        self.index.insert(key.into(), slot);
        self.materialize();
        self.current.push(key, slot);
        slot
    }

    /// After a complete scrape: its positions become the reference, and series it did not see
    /// are forgotten (the cache stays as large as one exposition).
    fn finish(&mut self, scrape_no: u64, scraped: usize) {
        match self.matched_prefix.take() {
            // Every position matched: the previous list, cut to this scrape's length, is it.
            Some(n) => self.previous.truncate(n),
            None => std::mem::swap(&mut self.previous, &mut self.current),
        }
        self.current.clear();
        if self.index.len() > scraped {
            let (slots, free) = (&mut self.slots, &mut self.free);
            self.index.retain(|_, slot| {
                let e = &mut slots[*slot as usize];
                let keep = e.seen == scrape_no;
                if !keep {
                    e.series = None;
                    free.push(*slot);
                }
                keep
            });
        }
    }
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
    cache: SeriesCache,
    body: Vec<u8>,
    scrape_no: u64,
    synthetic: Synthetic,
    last_len: usize,
    /// The series list of the last snapshot, shared by the next one when unchanged.
    previous_series: Arc<[Arc<Series>]>,
    /// The format of the last scrape: the parser takes hints from the cache only while it
    /// stays the same.
    last_format: Option<Format>,
    /// The target URL, parsed once (reqwest would parse the string on every request).
    url: Option<reqwest::Url>,
    /// `X-Prometheus-Scrape-Timeout-Seconds`, formatted once.
    timeout_header: HeaderValue,
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
            key,
            cache: SeriesCache::default(),
            body: Vec::new(),
            scrape_no: 0,
            synthetic,
            last_len: 0,
            previous_series: Arc::default(),
            last_format: None,
            url: reqwest::Url::parse(&state.target.url).ok(),
            timeout_header: HeaderValue::from_str(&format!("{}", state.job.timeout.as_secs_f64()))
                .unwrap_or(HeaderValue::from_static("10")),
            state,
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
        let mut out = SnapshotBuilder::new(
            ts,
            std::mem::take(&mut self.previous_series),
            self.last_len + 5,
        );
        let result = match tokio::time::timeout(self.state.job.timeout, self.fetch()).await {
            Ok(Ok(format)) => self.ingest(format, ts, &mut out),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(ScrapeError::Timeout(self.state.job.timeout)),
        };
        let elapsed = started.elapsed().as_secs_f64();
        let (counts, error) = match result {
            Ok(counts) => {
                self.state.job.counters.record(counts.stored, None);
                (counts, String::new())
            }
            Err(e) => {
                self.state.job.counters.record(0, Some(e.reason()));
                out.clear();
                (Counts::default(), e.to_string())
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
            out.push(series, value, ts);
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
        let snapshot = out.finish();
        self.previous_series = snapshot.series.clone();
        snapshot
    }

    /// Fetches the body into `self.body`; returns the exposition format.
    async fn fetch(&mut self) -> Result<Format, ScrapeError> {
        let job = &self.state.job;
        let req = match &self.url {
            Some(url) => job.client.get(url.clone()),
            None => job.client.get(&self.state.target.url),
        };
        let mut req = req
            .header(ACCEPT, ACCEPT_HEADER)
            .header(USER_AGENT, concat!("Vigil/", env!("CARGO_PKG_VERSION")))
            .header(
                "X-Prometheus-Scrape-Timeout-Seconds",
                self.timeout_header.clone(),
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
    fn ingest(
        &mut self,
        format: Format,
        ts: i64,
        out: &mut SnapshotBuilder,
    ) -> Result<Counts, ScrapeError> {
        let job = self.state.job.clone();
        let mut counts = Counts::default();
        let scrape_no = self.scrape_no;
        // A failed scrape may have left a partial position list behind.
        self.cache.begin();
        // Hints only while the format stays the same: the label-block scan they skip differs
        // slightly between the two formats.
        let hints = self.last_format == Some(format);
        self.last_format = Some(format);
        let mut parser = Parser::new(&self.body, format, Mode::Scrape);
        loop {
            let position = counts.scraped;
            let hint = if hints {
                self.cache.previous.key(position)
            } else {
                &[]
            };
            let sample = match parser.next_hinted(hint) {
                None => break,
                Some(Ok(Entry::Sample(s))) => s,
                Some(Ok(_)) => continue,
                Some(Err(e)) => return Err(ScrapeError::Parse(e)),
            };
            counts.scraped += 1;
            let found = if parser.hint_matched() {
                let slot = self.cache.previous_slot(position);
                Some(self.cache.found_at_previous(position, sample.series, slot))
            } else {
                self.cache.find(position, sample.series)
            };
            let entry = match found {
                Some(slot) => {
                    let e = &mut self.cache.slots[slot as usize];
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
                    let slot = self.cache.insert(
                        sample.series,
                        CacheEntry {
                            series,
                            seen: scrape_no,
                        },
                    );
                    &mut self.cache.slots[slot as usize]
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
            out.push(series, sample.value, timestamp_ms);
        }
        self.cache.finish(scrape_no, counts.scraped);
        self.last_len = out.len();
        Ok(counts)
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs one "scrape" of `keys` through the cache as `Scraper::ingest` does; returns, per
    /// line, the series' label value (None for a duplicate that is skipped).
    fn scrape(cache: &mut SeriesCache, no: u64, keys: &[&str]) -> Vec<Option<u64>> {
        cache.begin();
        let mut out = Vec::new();
        for (i, k) in keys.iter().enumerate() {
            let key = k.as_bytes();
            match cache.find(i, key) {
                Some(slot) => {
                    let e = &mut cache.slots[slot as usize];
                    if e.seen == no {
                        out.push(None);
                        continue;
                    }
                    e.seen = no;
                    out.push(e.series.as_ref().map(|s| s.id));
                }
                None => {
                    let series = Series::new(LabelSet::from_pairs([("__name__", *k)]));
                    let id = series.id;
                    cache.insert(
                        key,
                        CacheEntry {
                            series: Some(series),
                            seen: no,
                        },
                    );
                    out.push(Some(id));
                }
            }
        }
        cache.finish(no, keys.len());
        out
    }

    fn name_of(cache: &SeriesCache, id: u64) -> String {
        cache
            .slots
            .iter()
            .filter_map(|e| e.series.as_ref())
            .find(|s| s.id == id)
            .map(|s| s.labels.name().to_string())
            .unwrap_or_default()
    }

    #[test]
    fn same_order_reorder_and_disappearance_keep_series_identity() {
        let mut c = SeriesCache::default();
        let first = scrape(&mut c, 1, &["a", "b", "c"]);
        assert_eq!(scrape(&mut c, 2, &["a", "b", "c"]), first);
        // Reordered and with a new series: same ids for the old ones, a new one for "d".
        let third = scrape(&mut c, 3, &["c", "d", "a"]);
        assert_eq!(third[0], first[2]);
        assert_eq!(third[2], first[0]);
        assert!(!first.contains(&third[1]));
        // "b" was dropped from the cache, so it comes back as a new series.
        let fourth = scrape(&mut c, 4, &["a", "b", "c", "d"]);
        assert!(!first.contains(&fourth[1]));
        assert_eq!(c.index.len(), 4);
        for id in fourth.iter().flatten() {
            assert!(!name_of(&c, *id).is_empty());
        }
    }

    #[test]
    fn duplicates_are_skipped_wherever_they_stand() {
        let mut c = SeriesCache::default();
        let first = scrape(&mut c, 1, &["x", "y", "x"]);
        assert_eq!(first[2], None, "second x is a duplicate");
        // Same positions: still a duplicate.
        assert_eq!(scrape(&mut c, 2, &["x", "y", "x"])[2], None);
        // The first x is gone; the x at the position that was a duplicate is now the only one.
        let third = scrape(&mut c, 3, &["z", "y", "x"]);
        assert_eq!(third[2], first[0], "x keeps its series and is not skipped");
        assert_eq!(name_of(&c, third[0].unwrap_or_default()), "z");
    }

    #[test]
    fn a_failed_scrape_leaves_the_reference_positions_intact() {
        let mut c = SeriesCache::default();
        let first = scrape(&mut c, 1, &["a", "b"]);
        // A scrape that fails half-way: positions pushed, finish() never called.
        c.begin();
        assert!(c.find(0, b"a").is_some());
        assert!(
            c.find(1, b"a").is_some(),
            "a at another position materializes"
        );
        let again = scrape(&mut c, 3, &["a", "b"]);
        assert_eq!(again, first);
        assert_eq!(c.previous.ends.len(), 2);
    }

    /// The position list after each scrape holds exactly that scrape's keys with their slots,
    /// whether every position matched (prefix mode, nothing copied), the scrape was shorter or
    /// longer, or it diverged part-way.
    #[test]
    fn positions_after_each_scrape_are_that_scrapes_series() {
        let scrapes: &[&[&str]] = &[
            &["a", "b", "c", "d"],
            &["a", "b", "c", "d"],
            &["a", "b", "c"],
            &["a", "b", "c", "d", "e"],
            &["a", "x", "c", "d", "e"],
            &["a", "x", "c", "d", "e"],
            &["b", "a"],
            &[],
            &["a"],
            &["a", "a", "b"],
            &["a", "a", "b"],
        ];
        let mut c = SeriesCache::default();
        for (no, keys) in scrapes.iter().enumerate() {
            let ids = scrape(&mut c, no as u64 + 1, keys);
            assert_eq!(c.previous.ends.len(), keys.len(), "scrape {no}");
            for (i, k) in keys.iter().enumerate() {
                assert_eq!(c.previous.key(i), k.as_bytes(), "scrape {no} position {i}");
                let slot = c.previous_slot(i) as usize;
                let id = c.slots[slot].series.as_ref().map(|s| s.id);
                // A duplicate position points at the first occurrence's series.
                let first = keys.iter().position(|x| x == k).unwrap_or(i);
                assert_eq!(id, ids[first], "scrape {no} position {i}");
            }
            assert!(c.current.ends.is_empty() && c.matched_prefix.is_none());
        }
    }
}
