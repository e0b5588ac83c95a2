//! The latest samples of every source (a scrape target or a collector), held in memory. Each
//! source publishes a whole [`Snapshot`] after every collection; readers (SLO evaluation, the
//! HPA API, alert rules) take consistent snapshots without blocking writers for long.
//!
//! Series are interned by the producer ([`Series`] behind an `Arc` with a process-unique id), so
//! publishing a snapshot of a repeated scrape allocates one vector, not one object per sample.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use super::selector::Selector;

/// The value of `name` in pairs sorted by name.
fn lookup<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs
        .binary_search_by(|(k, _)| k.as_str().cmp(name))
        .ok()
        .map(|i| pairs[i].1.as_str())
}

/// A sorted set of label pairs, `__name__` included.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct LabelSet(Vec<(String, String)>);

impl LabelSet {
    /// Builds a set from pairs: sorted by name, later duplicates win, empty values removed (an
    /// empty label value means "no such label", as in Prometheus).
    pub fn from_pairs<K: Into<String>, V: Into<String>>(
        pairs: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        let mut b = LabelBuilder::default();
        for (k, v) in pairs {
            b.set(k.into(), v.into());
        }
        b.finish()
    }

    /// The value of `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        lookup(&self.0, name)
    }

    /// The metric name (`__name__`), or "".
    pub fn name(&self) -> &str {
        self.get("__name__").unwrap_or("")
    }

    /// Pairs in name order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// Number of labels, `__name__` included.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True when there are no labels.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// A builder holding these labels, for relabelling.
    pub fn to_builder(&self) -> LabelBuilder {
        LabelBuilder(self.0.clone())
    }
}

impl fmt::Display for LabelSet {
    /// `name{a="b",c="d"}` with Prometheus escaping.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = String::from(self.name());
        out.push('{');
        let mut first = true;
        for (k, v) in self.iter().filter(|(k, _)| *k != "__name__") {
            if !first {
                out.push(',');
            }
            first = false;
            out.push_str(k);
            out.push_str("=\"");
            crate::api::metrics::escape_label_value(v, &mut out);
            out.push('"');
        }
        out.push('}');
        f.write_str(&out)
    }
}

/// A mutable label set kept sorted by name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LabelBuilder(Vec<(String, String)>);

impl LabelBuilder {
    /// Sets `name` to `value`; an empty value removes the label.
    pub fn set(&mut self, name: String, value: String) {
        match self.0.binary_search_by(|(k, _)| k.as_str().cmp(&name)) {
            Ok(i) if value.is_empty() => {
                self.0.remove(i);
            }
            Ok(i) => self.0[i].1 = value,
            Err(_) if value.is_empty() => {}
            Err(i) => self.0.insert(i, (name, value)),
        }
    }

    /// The value of `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        lookup(&self.0, name)
    }

    /// Removes `name`.
    pub fn remove(&mut self, name: &str) {
        if let Ok(i) = self.0.binary_search_by(|(k, _)| k.as_str().cmp(name)) {
            self.0.remove(i);
        }
    }

    /// Keeps the labels for which `keep(name)` is true.
    pub fn retain(&mut self, mut keep: impl FnMut(&str) -> bool) {
        self.0.retain(|(k, _)| keep(k));
    }

    /// Pairs in name order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// Number of labels.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The finished set.
    pub fn finish(self) -> LabelSet {
        LabelSet(self.0)
    }
}

static NEXT_SERIES_ID: AtomicU64 = AtomicU64::new(1);

/// An interned series: labels plus an id unique in this process. A series that disappears and
/// comes back gets a new id, so consumers never compute a delta across a gap they did not see.
#[derive(Debug, PartialEq, Eq)]
pub struct Series {
    /// Unique id.
    pub id: u64,
    /// The labels.
    pub labels: LabelSet,
}

impl Series {
    /// Interns `labels` under a fresh id.
    pub fn new(labels: LabelSet) -> Arc<Self> {
        Arc::new(Self {
            id: NEXT_SERIES_ID.fetch_add(1, Ordering::Relaxed),
            labels,
        })
    }
}

/// One value of a series.
#[derive(Debug, Clone)]
pub struct Sample {
    /// The series.
    pub series: Arc<Series>,
    /// The value.
    pub value: f64,
    /// Milliseconds since the Unix epoch.
    pub timestamp_ms: i64,
}

/// A sample borrowed from a [`Snapshot`].
#[derive(Debug, Clone, Copy)]
pub struct SampleRef<'a> {
    /// The series.
    pub series: &'a Arc<Series>,
    /// The value.
    pub value: f64,
    /// Milliseconds since the Unix epoch.
    pub timestamp_ms: i64,
}

/// Everything one source produced in one collection, by column: `series[i]` has `values[i]`.
///
/// A source that exposes the same series in the same order as last time shares the previous
/// snapshot's `series` list (one reference count, not one per series): touching every series'
/// reference count costs a cache miss per sample on a large scrape.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// Milliseconds since the Unix epoch when the collection started.
    pub collected_at_ms: i64,
    /// The series, synthetic ones (`up`, ...) included.
    pub series: Arc<[Arc<Series>]>,
    /// One value per series.
    pub values: Vec<f64>,
    /// One timestamp per series when some differ from `collected_at_ms` (exposed timestamps
    /// with `honor_timestamps`); empty when all are `collected_at_ms`.
    pub timestamps_ms: Vec<i64>,
}

impl Snapshot {
    /// A snapshot of `samples` (no sharing with a previous snapshot).
    pub fn from_samples(collected_at_ms: i64, samples: Vec<Sample>) -> Self {
        let mut b = SnapshotBuilder::new(collected_at_ms, Arc::default(), samples.len());
        for s in &samples {
            b.push(&s.series, s.value, s.timestamp_ms);
        }
        b.finish()
    }

    /// Number of samples.
    pub fn len(&self) -> usize {
        self.values.len()
    }

    /// Whether there are no samples.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// The samples in order.
    pub fn samples(&self) -> impl Iterator<Item = SampleRef<'_>> {
        self.series
            .iter()
            .zip(&self.values)
            .enumerate()
            .map(|(i, (series, &value))| SampleRef {
                series,
                value,
                timestamp_ms: self
                    .timestamps_ms
                    .get(i)
                    .copied()
                    .unwrap_or(self.collected_at_ms),
            })
    }
}

/// Builds a [`Snapshot`], reusing the previous snapshot's series list when the same series come
/// in the same order (compared by pointer, without touching reference counts).
#[derive(Debug)]
pub struct SnapshotBuilder {
    collected_at_ms: i64,
    previous: Arc<[Arc<Series>]>,
    /// How many leading series equal `previous` while `own` is None.
    same: usize,
    own: Option<Vec<Arc<Series>>>,
    values: Vec<f64>,
    timestamps_ms: Vec<i64>,
}

impl SnapshotBuilder {
    /// A builder for a collection at `collected_at_ms`; `previous` is the series list of the
    /// source's last snapshot (empty if none).
    pub fn new(collected_at_ms: i64, previous: Arc<[Arc<Series>]>, capacity: usize) -> Self {
        Self {
            collected_at_ms,
            previous,
            same: 0,
            own: None,
            values: Vec::with_capacity(capacity),
            timestamps_ms: Vec::new(),
        }
    }

    /// Appends a sample.
    pub fn push(&mut self, series: &Arc<Series>, value: f64, timestamp_ms: i64) {
        match &mut self.own {
            Some(own) => own.push(series.clone()),
            None => {
                if self
                    .previous
                    .get(self.same)
                    .is_some_and(|p| Arc::ptr_eq(p, series))
                {
                    self.same += 1;
                } else {
                    let mut own = Vec::with_capacity(self.values.capacity().max(self.same + 1));
                    own.extend(self.previous[..self.same].iter().cloned());
                    own.push(series.clone());
                    self.own = Some(own);
                }
            }
        }
        // Per-sample timestamps start with the first one that differs.
        if !self.timestamps_ms.is_empty() || timestamp_ms != self.collected_at_ms {
            self.timestamps_ms
                .resize(self.values.len(), self.collected_at_ms);
            self.timestamps_ms.push(timestamp_ms);
        }
        self.values.push(value);
    }

    /// Number of samples so far.
    pub fn len(&self) -> usize {
        self.values.len()
    }

    /// Whether no sample was pushed yet.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// Drops every sample pushed so far (a collection that failed half-way).
    pub fn clear(&mut self) {
        self.same = 0;
        self.own = None;
        self.values.clear();
        self.timestamps_ms.clear();
    }

    /// The snapshot.
    pub fn finish(self) -> Snapshot {
        let series = match self.own {
            Some(own) => Arc::from(own),
            None if self.same == self.previous.len() => self.previous,
            None => Arc::from(&self.previous[..self.same]),
        };
        Snapshot {
            collected_at_ms: self.collected_at_ms,
            series,
            values: self.values,
            timestamps_ms: self.timestamps_ms,
        }
    }
}

/// Latest snapshot of every source.
#[derive(Debug, Default)]
pub struct SeriesStore {
    sources: RwLock<BTreeMap<String, Arc<Snapshot>>>,
    version: AtomicU64,
}

impl SeriesStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Replaces the snapshot of `source`. Series absent from it are stale from now on.
    pub fn publish(&self, source: &str, snapshot: Arc<Snapshot>) {
        if let Ok(mut s) = self.sources.write() {
            match s.get_mut(source) {
                Some(slot) => *slot = snapshot,
                None => {
                    s.insert(source.to_string(), snapshot);
                }
            }
        }
        self.version.fetch_add(1, Ordering::Release);
    }

    /// Removes `source` (a target that went away): all its series become stale.
    pub fn remove(&self, source: &str) {
        if let Ok(mut s) = self.sources.write() {
            s.remove(source);
        }
        self.version.fetch_add(1, Ordering::Release);
    }

    /// Increases with every publish or removal.
    pub fn version(&self) -> u64 {
        self.version.load(Ordering::Acquire)
    }

    /// The current snapshot of every source.
    pub fn snapshots(&self) -> Vec<(String, Arc<Snapshot>)> {
        self.sources
            .read()
            .map(|s| s.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
            .unwrap_or_default()
    }

    /// The snapshot of one source.
    pub fn snapshot(&self, source: &str) -> Option<Arc<Snapshot>> {
        self.sources
            .read()
            .ok()
            .and_then(|s| s.get(source).cloned())
    }

    /// Latest samples of every series matching `selector`, over all sources.
    pub fn select(&self, selector: &Selector) -> Vec<Sample> {
        let mut out = Vec::new();
        for (_, snap) in self.snapshots() {
            out.extend(
                snap.samples()
                    .filter(|s| selector.matches(&s.series.labels))
                    .map(|s| Sample {
                        series: s.series.clone(),
                        value: s.value,
                        timestamp_ms: s.timestamp_ms,
                    }),
            );
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_sets_sort_dedupe_and_drop_empty() {
        let l = LabelSet::from_pairs([
            ("b", "2"),
            ("__name__", "up"),
            ("a", "1"),
            ("b", "3"),
            ("c", ""),
        ]);
        assert_eq!(
            l.iter().collect::<Vec<_>>(),
            vec![("__name__", "up"), ("a", "1"), ("b", "3")]
        );
        assert_eq!(l.to_string(), "up{a=\"1\",b=\"3\"}");
        assert_eq!(l.get("c"), None);
    }

    #[test]
    fn builder_shares_an_unchanged_series_list_and_copes_with_changes() {
        let a = Series::new(LabelSet::from_pairs([("__name__", "a")]));
        let b = Series::new(LabelSet::from_pairs([("__name__", "b")]));
        let c = Series::new(LabelSet::from_pairs([("__name__", "c")]));
        let build = |prev: &Arc<[Arc<Series>]>, list: &[&Arc<Series>], ts: &[i64]| {
            let mut bld = SnapshotBuilder::new(10, prev.clone(), list.len());
            for (i, s) in list.iter().enumerate() {
                bld.push(s, i as f64, ts.get(i).copied().unwrap_or(10));
            }
            bld.finish()
        };
        let first = build(&Arc::default(), &[&a, &b], &[]);
        let same = build(&first.series, &[&a, &b], &[]);
        assert!(
            Arc::ptr_eq(&first.series, &same.series),
            "unchanged list is shared"
        );
        assert_eq!(Arc::strong_count(&a), 2, "no per-series reference added");
        let shorter = build(&first.series, &[&a], &[]);
        assert_eq!(shorter.series.len(), 1);
        let first_differs = build(&Arc::default(), &[&a, &b], &[3]);
        let ts: Vec<i64> = first_differs.samples().map(|s| s.timestamp_ms).collect();
        assert_eq!(ts, [3, 10]);
        let changed = build(&first.series, &[&a, &c, &b], &[10, 7, 10]);
        let names: Vec<&str> = changed.samples().map(|s| s.series.labels.name()).collect();
        assert_eq!(names, ["a", "c", "b"]);
        let ts: Vec<i64> = changed.samples().map(|s| s.timestamp_ms).collect();
        assert_eq!(ts, [10, 7, 10]);
        assert!(same.timestamps_ms.is_empty());
        let values: Vec<f64> = changed.samples().map(|s| s.value).collect();
        assert_eq!(values, [0.0, 1.0, 2.0]);
    }

    #[test]
    fn publish_select_remove() {
        let store = SeriesStore::new();
        let up = Series::new(LabelSet::from_pairs([("__name__", "up"), ("job", "a")]));
        let other = Series::new(LabelSet::from_pairs([("__name__", "x"), ("job", "a")]));
        let snap = Snapshot::from_samples(
            5,
            vec![
                Sample {
                    series: up.clone(),
                    value: 1.0,
                    timestamp_ms: 5,
                },
                Sample {
                    series: other,
                    value: 7.0,
                    timestamp_ms: 5,
                },
            ],
        );
        let v0 = store.version();
        store.publish("t1", Arc::new(snap));
        assert!(store.version() > v0);
        let sel: Selector = "up{job=\"a\"}".parse().expect("selector");
        let got = store.select(&sel);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].series.id, up.id);
        store.remove("t1");
        assert!(store.select(&sel).is_empty());
    }
}
