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

/// Everything one source produced in one collection.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// Milliseconds since the Unix epoch when the collection started.
    pub collected_at_ms: i64,
    /// The samples, synthetic ones (`up`, ...) included.
    pub samples: Vec<Sample>,
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
                snap.samples
                    .iter()
                    .filter(|s| selector.matches(&s.series.labels))
                    .cloned(),
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
    fn publish_select_remove() {
        let store = SeriesStore::new();
        let up = Series::new(LabelSet::from_pairs([("__name__", "up"), ("job", "a")]));
        let other = Series::new(LabelSet::from_pairs([("__name__", "x"), ("job", "a")]));
        let snap = Snapshot {
            collected_at_ms: 5,
            samples: vec![
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
        };
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
