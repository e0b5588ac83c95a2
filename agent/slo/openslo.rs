//! OpenSLO v1 import: reads files of `apiVersion: openslo/v1` documents (`kind: SLO` and
//! `kind: SLI`, separated by `---`) and converts them to Vigil's SLO spec, one [`SloFile`] per
//! OpenSLO `spec.service`.
//!
//! Queries must be Prometheus series selectors, bare or inside `rate`/`increase` and
//! `sum [by (...)]` (`sum`, `max`, `min` or `avg` of a gauge for a `thresholdMetric`): Vigil
//! evaluates selectors against the samples it scrapes, it does not run PromQL. Whatever Vigil
//! cannot evaluate with the same meaning is rejected, every problem at once, each with the
//! document, its YAML path, line:col in the file, and what to write instead. The field-by-field
//! mapping is in `docs/openslo.md`.
//!
//! ```yaml
//! apiVersion: openslo/v1
//! kind: SLO
//! metadata: {name: availability}
//! spec:
//!   service: checkout
//!   indicator:
//!     metadata: {name: errors}
//!     spec:
//!       ratioMetric:
//!         counter: true
//!         bad:
//!           metricSource:
//!             type: Prometheus
//!             spec: {query: 'sum(rate(http_requests_total{code=~"5.."}[5m]))'}
//!         total:
//!           metricSource:
//!             type: Prometheus
//!             spec: {query: 'sum(rate(http_requests_total[5m]))'}
//!   timeWindow: [{duration: 28d, isRolling: true}]
//!   budgetingMethod: Occurrences
//!   objectives: [{target: 0.999}]
//! ```

use std::collections::{BTreeMap, HashMap};
use std::fmt::Display;
use std::path::Path;
use std::time::Duration;

use chrono::{Datelike, NaiveDate, NaiveDateTime, NaiveTime, Timelike, Weekday};
use serde_yaml::{Mapping, Value};

use crate::config::{LocationIndex, Problem, Problems, check_label_name};
use crate::slo::spec::{
    Aggregate, Budgeting, CalendarUnit, LatencySli, MAX_WINDOW, MIN_WINDOW, Op, RatioSli, Sli, Slo,
    SloFile, SloSpec, ThresholdSli, Window,
};
use crate::store::selector::{MatchOp, Selector};

/// The `apiVersion` this module imports.
pub const API_VERSION: &str = "openslo/v1";

/// Whether `text` looks like an OpenSLO file: some line is a top-level `apiVersion: openslo/…`.
/// Any OpenSLO version counts, so that [`parse_openslo`] can say that only `openslo/v1` is
/// supported (instead of Vigil's own format reporting `apiVersion` as an unknown key). The test
/// is textual, so that a file with a YAML syntax error still reaches the OpenSLO parser.
pub fn is_openslo(text: &str) -> bool {
    text.lines().any(|line| {
        line.trim_start_matches('\u{feff}')
            .strip_prefix("apiVersion:")
            .is_some_and(|rest| {
                let value = rest.split(" #").next().unwrap_or_default().trim();
                value.trim_matches(['"', '\'']).starts_with("openslo/")
            })
    })
}

/// Parses the OpenSLO documents of one file and converts them to Vigil SLO files, one per
/// `spec.service`, in the order the services first appear; SLOs keep the order of their
/// documents. `kind: SLI` documents are resolved by `indicatorRef` within the file; `Service`,
/// `DataSource` and the alerting kinds are accepted and ignored.
///
/// Everything is validated the way Vigil validates its own rules files (names, objective range,
/// window range, time zone, slice length, label names, selector syntax), so the result passes
/// Vigil's validation; problems name the OpenSLO paths. An SLO with several objectives becomes
/// one Vigil SLO per objective, named `<name>-<objective displayName or index>`.
pub fn parse_openslo(text: &str, path: &Path) -> Result<Vec<SloFile>, Problems> {
    let mut problems = Vec::new();
    let converted = convert(text, &mut problems);
    if !problems.is_empty() {
        problems.dedup();
        problems.sort_by_key(|p| p.location.unwrap_or((usize::MAX, 0)));
        return Err(Problems {
            file: path.display().to_string(),
            items: problems,
        });
    }
    let mut files: Vec<SloFile> = Vec::new();
    for (service, spec) in converted {
        match files.iter_mut().find(|f| f.service == service) {
            Some(f) => f.slos.push(spec),
            None => files.push(SloFile {
                version: None,
                service,
                labels: BTreeMap::new(),
                slos: vec![spec],
            }),
        }
    }
    Ok(files)
}

/// [`parse_openslo`], then each converted SLO made ready to evaluate, the way
/// `spec::parse_file` builds [`Slo`]s from a Vigil rules file (id `service/name`, objective as
/// a ratio, selectors parsed in the order the SLI names them).
pub fn parse_openslo_slos(text: &str, path: &Path) -> Result<Vec<Slo>, Problems> {
    let mut out = Vec::new();
    for file in parse_openslo(text, path)? {
        for spec in file.slos {
            let texts: Vec<&str> = match &spec.sli {
                Sli::Ratio(r) => r
                    .errors
                    .iter()
                    .chain(r.good.iter())
                    .chain(std::iter::once(&r.total))
                    .map(String::as_str)
                    .collect(),
                Sli::Latency(l) => vec![l.histogram.as_str()],
                Sli::Uptime(u) => vec![u.selector.as_str()],
                Sli::Threshold(t) => vec![t.selector.as_str()],
            };
            // Every selector was parsed during the conversion; none fails here.
            let selectors = texts.iter().filter_map(|t| t.parse().ok()).collect();
            let mut labels = file.labels.clone();
            labels.extend(spec.labels.clone());
            out.push(Slo {
                id: format!("{}/{}", file.service, spec.name),
                service: file.service.clone(),
                labels,
                objective: spec.objective / 100.0,
                budgeting: spec.budgeting.clone().unwrap_or(Budgeting::Occurrences),
                selectors,
                spec,
                file: path.to_path_buf(),
            });
        }
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------------
// Documents and problems
// ---------------------------------------------------------------------------------------------

/// One YAML document of the file: its text starts at line `line_offset + 1`.
struct Chunk<'a> {
    text: &'a str,
    line_offset: usize,
}

/// Splits at document markers (`---` at the start of a line). Each chunk keeps its marker line,
/// so that positions inside it are the file's positions minus `line_offset` lines.
fn split_documents(text: &str) -> Vec<Chunk<'_>> {
    let mut chunks = Vec::new();
    let (mut start, mut start_line, mut pos) = (0, 0, 0);
    for (n, line) in text.split_inclusive('\n').enumerate() {
        let bare = line.trim_end_matches(['\n', '\r']);
        let marker = bare == "---" || bare.starts_with("--- ") || bare.starts_with("---\t");
        if marker && pos > start {
            chunks.push(Chunk {
                text: &text[start..pos],
                line_offset: start_line,
            });
            start = pos;
            start_line = n;
        }
        pos += line.len();
    }
    if pos > start {
        chunks.push(Chunk {
            text: &text[start..],
            line_offset: start_line,
        });
    }
    chunks
}

/// A parsed, non-empty document.
struct Doc {
    /// 1-based among the file's non-empty documents.
    number: usize,
    value: Value,
    index: LocationIndex,
    line_offset: usize,
}

impl Doc {
    /// `SLO "availability" (document 2)`, for messages.
    fn label(&self) -> String {
        let kind = self.value.get("kind").and_then(Value::as_str);
        let name = self
            .value
            .get("metadata")
            .and_then(|m| m.get("name"))
            .and_then(Value::as_str);
        match (kind, name) {
            (Some(k), Some(n)) => format!("{k} {n:?} (document {})", self.number),
            (Some(k), None) => format!("{k} (document {})", self.number),
            _ => format!("document {}", self.number),
        }
    }
}

/// Records the problems of one document with their file positions.
struct Reporter<'a> {
    label: String,
    index: &'a LocationIndex,
    line_offset: usize,
    problems: &'a mut Vec<Problem>,
}

impl Reporter<'_> {
    fn bad(&mut self, path: &str, message: impl Display) {
        let location = self
            .index
            .find(path)
            .map(|(line, col)| (line + self.line_offset, col))
            .or(Some((self.line_offset + 1, 1)));
        self.problems.push(Problem {
            path: path.to_string(),
            message: format!("{}: {message}", self.label),
            location,
        });
    }

    fn mapping<'v>(&mut self, v: &'v Value, path: &str) -> Option<&'v Mapping> {
        match v {
            Value::Mapping(m) => Some(m),
            other => {
                self.bad(path, format!("expected a mapping, found {}", show(other)));
                None
            }
        }
    }

    /// Reports every key of `m` that is not in `known`.
    fn keys(&mut self, m: &Mapping, path: &str, known: &[&str]) {
        for k in m.keys() {
            match k.as_str() {
                Some(k) if known.contains(&k) => {}
                Some(k) => self.bad(
                    &join(path, k),
                    format!("unknown key; remove it or use one of: {}", known.join(", ")),
                ),
                None => self.bad(path, format!("{} is not a valid key", show(k))),
            }
        }
    }

    /// An optional string; a value of another type is a problem.
    fn string<'v>(&mut self, m: &'v Mapping, path: &str, key: &str) -> Option<&'v str> {
        match m.get(key)? {
            Value::String(s) => Some(s),
            other => {
                self.bad(
                    &join(path, key),
                    format!("expected a string, found {}", show(other)),
                );
                None
            }
        }
    }

    /// An optional number; a value of another type is a problem.
    fn number(&mut self, m: &Mapping, path: &str, key: &str) -> Option<f64> {
        match m.get(key)? {
            Value::Number(n) => n.as_f64(),
            other => {
                self.bad(
                    &join(path, key),
                    format!("expected a number, found {}", show(other)),
                );
                None
            }
        }
    }
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

/// A YAML value for messages.
fn show(v: &Value) -> String {
    match v {
        Value::Null => "nothing".to_string(),
        Value::String(s) => format!("{s:?}"),
        Value::Sequence(_) => "a list".to_string(),
        Value::Mapping(_) => "a mapping".to_string(),
        other => serde_yaml::to_string(other)
            .unwrap_or_default()
            .trim()
            .to_string(),
    }
}

// ---------------------------------------------------------------------------------------------
// Conversion
// ---------------------------------------------------------------------------------------------

/// The numerator of a ratio.
#[derive(Debug, Clone, PartialEq)]
enum Numerator {
    Good(String),
    Bad(String),
}

/// An SLI with its queries reduced to selectors.
#[derive(Debug, Clone, PartialEq)]
enum Indicator {
    Ratio {
        numerator: Numerator,
        total: String,
        group_by: Vec<String>,
    },
    Threshold {
        selector: String,
        aggregate: Aggregate,
        group_by: Vec<String>,
    },
}

/// A `kind: SLI` document: None when it has problems (already reported).
struct SliEntry {
    label: String,
    indicator: Option<Indicator>,
}

/// OpenSLO kinds that are accepted and ignored.
const IGNORED_KINDS: &[&str] = &[
    "Service",
    "DataSource",
    "AlertPolicy",
    "AlertCondition",
    "AlertNotificationTarget",
];

fn convert(text: &str, problems: &mut Vec<Problem>) -> Vec<(String, SloSpec)> {
    let mut docs = Vec::new();
    let mut number = 0;
    for chunk in split_documents(text) {
        match serde_yaml::from_str::<Value>(chunk.text) {
            Ok(Value::Null) => {}
            Ok(value) => {
                number += 1;
                docs.push(Doc {
                    number,
                    value,
                    index: LocationIndex::build(chunk.text),
                    line_offset: chunk.line_offset,
                });
            }
            Err(e) => {
                number += 1;
                let message = e.to_string();
                let message = message.split(" at line ").next().unwrap_or(&message);
                problems.push(Problem {
                    path: String::new(),
                    message: format!("document {number}: invalid YAML: {message}"),
                    location: e
                        .location()
                        .map(|l| (l.line() + chunk.line_offset, l.column())),
                });
            }
        }
    }
    if docs.is_empty() && problems.is_empty() {
        problems.push(Problem {
            path: String::new(),
            message: "the file holds no OpenSLO document; write at least one kind: SLO document"
                .into(),
            location: None,
        });
    }

    // First pass: versions and kinds, and every SLI document, referenced or not.
    let mut slis: HashMap<String, SliEntry> = HashMap::new();
    let mut slo_docs = Vec::new();
    for doc in &docs {
        let mut r = Reporter {
            label: doc.label(),
            index: &doc.index,
            line_offset: doc.line_offset,
            problems,
        };
        let Some(top) = r.mapping(&doc.value, "") else {
            continue;
        };
        match top.get("apiVersion") {
            Some(Value::String(v)) if v == API_VERSION => {}
            Some(v) => {
                r.bad(
                    "apiVersion",
                    format!(
                        "{} is not supported; Vigil imports {API_VERSION} documents, rewrite this one as {API_VERSION}",
                        show(v)
                    ),
                );
                continue;
            }
            None => {
                r.bad(
                    "",
                    format!(
                        "has no apiVersion; every document of an OpenSLO file needs apiVersion: {API_VERSION} (Vigil's own rules format cannot share a file with OpenSLO)"
                    ),
                );
                continue;
            }
        }
        match top.get("kind").and_then(Value::as_str) {
            Some("SLO") => slo_docs.push((doc, top)),
            Some("SLI") => {
                let indicator = convert_sli(&mut r, top);
                let Some(name) = doc
                    .value
                    .get("metadata")
                    .and_then(|m| m.get("name"))
                    .and_then(Value::as_str)
                else {
                    continue;
                };
                if let Some(first) = slis.get(name) {
                    let first = first.label.clone();
                    r.bad(
                        "metadata.name",
                        format!(
                            "the SLI name {name:?} is already used by {first}; give each SLI a unique name"
                        ),
                    );
                    continue;
                }
                slis.insert(
                    name.to_string(),
                    SliEntry {
                        label: r.label.clone(),
                        indicator,
                    },
                );
            }
            Some(kind) if IGNORED_KINDS.contains(&kind) => {}
            Some(kind) => r.bad(
                "kind",
                format!(
                    "{kind:?} is not an OpenSLO v1 kind Vigil knows; use SLO or SLI (Service, DataSource and the alerting kinds are accepted and ignored)"
                ),
            ),
            None => r.bad("kind", "is missing or not a string; set kind: SLO or kind: SLI"),
        }
    }
    if slo_docs.is_empty() && !docs.is_empty() && problems.is_empty() {
        problems.push(Problem {
            path: String::new(),
            message: "the file holds no kind: SLO document; Vigil imports SLOs, and resolves indicatorRef within the same file only".into(),
            location: None,
        });
    }

    // Second pass: the SLOs.
    let mut out = Vec::new();
    let mut seen: HashMap<(String, String), String> = HashMap::new();
    for (doc, top) in slo_docs {
        let mut r = Reporter {
            label: doc.label(),
            index: &doc.index,
            line_offset: doc.line_offset,
            problems,
        };
        for (service, spec, name_path) in convert_slo(&mut r, top, &slis) {
            let key = (service.clone(), spec.name.clone());
            if let Some(first) = seen.get(&key) {
                let first = first.clone();
                r.bad(
                    &name_path,
                    format!(
                        "the SLO name {:?} is already used in service {service:?} by {first}; names must be unique per service",
                        spec.name
                    ),
                );
                continue;
            }
            seen.insert(key, r.label.clone());
            out.push((service, spec));
        }
    }
    out
}

/// Metadata of a document.
struct Meta {
    name: Option<String>,
    display_name: Option<String>,
    labels: BTreeMap<String, String>,
}

fn metadata(r: &mut Reporter, top: &Mapping) -> Meta {
    let mut meta = Meta {
        name: None,
        display_name: None,
        labels: BTreeMap::new(),
    };
    let Some(v) = top.get("metadata") else {
        r.bad("", "has no metadata; add metadata: {name: ...}");
        return meta;
    };
    let Some(m) = r.mapping(v, "metadata") else {
        return meta;
    };
    r.keys(
        m,
        "metadata",
        &["name", "displayName", "labels", "annotations", "namespace"],
    );
    match r.string(m, "metadata", "name") {
        Some(n) if !n.trim().is_empty() => meta.name = Some(n.to_string()),
        Some(_) => r.bad("metadata.name", "must not be empty"),
        None if !m.contains_key("name") => r.bad("metadata", "needs name"),
        None => {}
    }
    meta.display_name = r.string(m, "metadata", "displayName").map(str::to_string);
    if let Some(labels) = m.get("labels") {
        meta.labels = labels_of(r, labels);
    }
    meta
}

/// `metadata.labels`: keys become Prometheus label names (`-`, `.`, `/` and other characters
/// replaced by `_`), list values are joined with `,`.
fn labels_of(r: &mut Reporter, v: &Value) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut origin: HashMap<String, String> = HashMap::new();
    let Some(m) = r.mapping(v, "metadata.labels") else {
        return out;
    };
    for (k, v) in m {
        let Some(key) = k.as_str() else {
            r.bad(
                "metadata.labels",
                format!("{} is not a valid label key", show(k)),
            );
            continue;
        };
        let path = join("metadata.labels", key);
        let value = match v {
            Value::String(s) => s.clone(),
            Value::Number(n) => n.to_string(),
            Value::Bool(b) => b.to_string(),
            Value::Null => String::new(),
            Value::Sequence(items) => {
                let texts: Option<Vec<&str>> = items.iter().map(Value::as_str).collect();
                match texts {
                    Some(t) => t.join(","),
                    None => {
                        r.bad(&path, "expected a string or a list of strings");
                        continue;
                    }
                }
            }
            _ => {
                r.bad(&path, "expected a string or a list of strings");
                continue;
            }
        };
        let name: String = key
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
            .collect();
        if let Err(e) = check_label_name(&name) {
            r.bad(
                &path,
                format!("{e}; the OpenSLO label key {key:?} becomes the Vigil label {name:?}"),
            );
            continue;
        }
        if let Some(other) = origin.get(&name) {
            r.bad(
                &path,
                format!(
                    "the label keys {other:?} and {key:?} both become the Vigil label {name:?}; rename one"
                ),
            );
            continue;
        }
        origin.insert(name.clone(), key.to_string());
        out.insert(name, value);
    }
    out
}

fn convert_sli(r: &mut Reporter, top: &Mapping) -> Option<Indicator> {
    r.keys(top, "", &["apiVersion", "kind", "metadata", "spec"]);
    metadata(r, top);
    match top.get("spec") {
        Some(spec) => indicator_spec(r, spec, "spec"),
        None => {
            r.bad(
                "",
                "has no spec; add spec with ratioMetric or thresholdMetric",
            );
            None
        }
    }
}

/// An SLI `spec` (of a `kind: SLI` document or an inline `indicator`).
fn indicator_spec(r: &mut Reporter, v: &Value, path: &str) -> Option<Indicator> {
    let m = r.mapping(v, path)?;
    r.keys(m, path, &["description", "thresholdMetric", "ratioMetric"]);
    match (m.get("ratioMetric"), m.get("thresholdMetric")) {
        (Some(_), Some(_)) => {
            r.bad(path, "set either ratioMetric or thresholdMetric, not both");
            None
        }
        (None, None) => {
            r.bad(
                path,
                "needs ratioMetric (good or bad, and total) or thresholdMetric",
            );
            None
        }
        (Some(ratio), None) => ratio_metric(r, ratio, &join(path, "ratioMetric")),
        (None, Some(threshold)) => {
            let q = metric_query(r, threshold, &join(path, "thresholdMetric"), Mode::Gauge)?;
            Some(Indicator::Threshold {
                selector: q.selector,
                // A plain selector of one series: its value; of several: the worst (largest).
                aggregate: q.aggregate.unwrap_or(Aggregate::Max),
                group_by: q.by,
            })
        }
    }
}

fn ratio_metric(r: &mut Reporter, v: &Value, path: &str) -> Option<Indicator> {
    let m = r.mapping(v, path)?;
    r.keys(
        m,
        path,
        &["counter", "good", "bad", "total", "raw", "rawType"],
    );
    let mut ok = true;
    for key in ["raw", "rawType"] {
        if m.contains_key(key) {
            r.bad(
                &join(path, key),
                "precomputed ratios (raw, rawType) are not supported: Vigil counts events itself; give good or bad, and total, as counter queries",
            );
            ok = false;
        }
    }
    match m.get("counter") {
        None | Some(Value::Bool(true)) => {}
        Some(Value::Bool(false)) => {
            r.bad(
                &join(path, "counter"),
                "counter: false (gauges that hold event counts per interval) is not supported; Vigil's ratio SLIs count the increase of counters such as http_requests_total: point the queries at counters and set counter: true",
            );
            ok = false;
        }
        Some(other) => {
            r.bad(
                &join(path, "counter"),
                format!("expected true or false, found {}", show(other)),
            );
            ok = false;
        }
    }
    let good = m
        .get("good")
        .map(|v| metric_query(r, v, &join(path, "good"), Mode::Counter));
    let bad = m
        .get("bad")
        .map(|v| metric_query(r, v, &join(path, "bad"), Mode::Counter));
    let total = match m.get("total") {
        Some(v) => metric_query(r, v, &join(path, "total"), Mode::Counter),
        None => {
            if !(m.contains_key("raw") || m.contains_key("rawType")) {
                r.bad(path, "needs total (the denominator) with good or bad");
            }
            None
        }
    };
    let (key, numerator) = match (good, bad) {
        (Some(g), None) => ("good", g),
        (None, Some(b)) => ("bad", b),
        (Some(_), Some(_)) => {
            r.bad(path, "set either good or bad, not both");
            return None;
        }
        (None, None) => {
            if ok {
                r.bad(path, "needs good or bad (the numerator), and total");
            }
            return None;
        }
    };
    let (numerator, total) = (numerator?, total?);
    if !ok {
        return None;
    }
    let (mut a, mut b) = (numerator.by.clone(), total.by.clone());
    a.sort();
    b.sort();
    if a != b {
        r.bad(
            &join(path, "total.metricSource.spec.query"),
            format!(
                "{key} is grouped by ({}) but total by ({}); group both queries by the same labels (they become the SLO's group_by), or neither",
                numerator.by.join(", "),
                total.by.join(", ")
            ),
        );
        return None;
    }
    Some(Indicator::Ratio {
        numerator: if key == "good" {
            Numerator::Good(numerator.selector)
        } else {
            Numerator::Bad(numerator.selector)
        },
        total: total.selector,
        group_by: total.by,
    })
}

/// A `{metricSource: {type, spec: {query}}}` and its query.
fn metric_query(r: &mut Reporter, v: &Value, path: &str, mode: Mode) -> Option<Query> {
    let m = r.mapping(v, path)?;
    r.keys(m, path, &["metricSource"]);
    let src_path = join(path, "metricSource");
    let Some(src) = m.get("metricSource") else {
        r.bad(
            path,
            "needs metricSource: {type: Prometheus, spec: {query: ...}}",
        );
        return None;
    };
    let src = r.mapping(src, &src_path)?;
    r.keys(src, &src_path, &["metricSourceRef", "type", "spec"]);
    let mut ok = true;
    match src.get("type") {
        None => {}
        Some(Value::String(t)) if t.eq_ignore_ascii_case("prometheus") => {}
        Some(other) => {
            r.bad(
                &join(&src_path, "type"),
                format!(
                    "{} is not supported; Vigil evaluates Prometheus series selectors against the samples it scrapes, so the type must be Prometheus",
                    show(other)
                ),
            );
            ok = false;
        }
    }
    let spec_path = join(&src_path, "spec");
    let Some(spec) = src.get("spec") else {
        r.bad(&src_path, "needs spec: {query: ...}");
        return None;
    };
    let spec = r.mapping(spec, &spec_path)?;
    let key = if spec.contains_key("query") || !spec.contains_key("promql") {
        "query"
    } else {
        "promql"
    };
    let query_path = join(&spec_path, key);
    let text = match spec.get(key) {
        Some(Value::String(q)) => q,
        Some(other) => {
            r.bad(
                &query_path,
                format!("expected the query as a string, found {}", show(other)),
            );
            return None;
        }
        None => {
            r.bad(&spec_path, "needs query: the Prometheus query");
            return None;
        }
    };
    if !ok {
        return None;
    }
    match parse_query(text, mode) {
        Ok(q) => Some(q),
        Err(reason) => {
            r.bad(
                &query_path,
                format!(
                    "query {:?} cannot be imported: {reason}; {}",
                    text.trim(),
                    mode.accepted()
                ),
            );
            None
        }
    }
}

/// The budgeting method of an SLO.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Method {
    Occurrences,
    Timeslices,
    RatioTimeslices,
}

/// One objective, its budgeting resolved.
struct Objective {
    index: usize,
    display_name: Option<String>,
    percent: f64,
    op: Option<Op>,
    value: Option<f64>,
    budgeting: Budgeting,
}

fn convert_slo(
    r: &mut Reporter,
    top: &Mapping,
    slis: &HashMap<String, SliEntry>,
) -> Vec<(String, SloSpec, String)> {
    r.keys(top, "", &["apiVersion", "kind", "metadata", "spec"]);
    let meta = metadata(r, top);
    let Some(spec) = top.get("spec") else {
        r.bad("", "has no spec; add spec with service, indicator, timeWindow, budgetingMethod and objectives");
        return Vec::new();
    };
    let Some(spec) = r.mapping(spec, "spec") else {
        return Vec::new();
    };
    r.keys(
        spec,
        "spec",
        &[
            "description",
            "service",
            "indicator",
            "indicatorRef",
            "timeWindow",
            "budgetingMethod",
            "objectives",
            "alertPolicies",
        ],
    );
    let description = r.string(spec, "spec", "description").map(str::to_string);
    let service = match r.string(spec, "spec", "service") {
        Some(s) if !s.trim().is_empty() => Some(s.to_string()),
        Some(_) => {
            r.bad(
                "spec.service",
                "must not be empty; it becomes the service label",
            );
            None
        }
        None => {
            if !spec.contains_key("service") {
                r.bad("spec", "needs service; it becomes the service label");
            }
            None
        }
    };
    let indicator = indicator_of(r, spec, slis);
    let window = window(r, spec);
    let method = method(r, spec);
    let objectives = method.map(|m| objectives(r, spec, m)).unwrap_or_default();
    let (Some(name), Some(service), Some(indicator), Some(window), Some(_)) =
        (meta.name, service, indicator, window, method)
    else {
        return Vec::new();
    };
    let description = description.or(meta.display_name).unwrap_or_default();
    let several = objectives.len() > 1;
    let mut out = Vec::new();
    for objective in objectives.into_iter().flatten() {
        let i = objective.index;
        let (slo_name, name_path) = if several {
            let suffix = objective
                .display_name
                .as_deref()
                .map(slug)
                .filter(|s| !s.is_empty())
                .unwrap_or_else(|| i.to_string());
            let path = if objective.display_name.is_some() {
                format!("spec.objectives[{i}].displayName")
            } else {
                format!("spec.objectives[{i}]")
            };
            (format!("{name}-{suffix}"), path)
        } else {
            (name.clone(), "metadata.name".to_string())
        };
        if !valid_name(&slo_name) {
            r.bad(
                &name_path,
                format!(
                    "{slo_name:?} is not a valid Vigil SLO name; use letters, digits, -, _ and ."
                ),
            );
            continue;
        }
        let (sli, group_by) = match &indicator {
            Indicator::Ratio {
                numerator,
                total,
                group_by,
            } => {
                let sli = match numerator {
                    Numerator::Bad(errors) => Sli::Ratio(RatioSli {
                        errors: Some(errors.clone()),
                        good: None,
                        total: total.clone(),
                    }),
                    Numerator::Good(good) => match latency(good, total, group_by) {
                        Some(l) => Sli::Latency(l),
                        None => Sli::Ratio(RatioSli {
                            errors: None,
                            good: Some(good.clone()),
                            total: total.clone(),
                        }),
                    },
                };
                (sli, group_by.clone())
            }
            Indicator::Threshold {
                selector,
                aggregate,
                group_by,
            } => {
                let (Some(op), Some(value)) = (objective.op, objective.value) else {
                    r.bad(
                        &format!("spec.objectives[{i}]"),
                        "a thresholdMetric needs op (lt, lte, gt or gte) and value on every objective: a round is good when the query's value compared with value by op holds",
                    );
                    continue;
                };
                let sli = Sli::Threshold(ThresholdSli {
                    selector: selector.clone(),
                    aggregate: *aggregate,
                    op,
                    value,
                });
                (sli, group_by.clone())
            }
        };
        out.push((
            service.clone(),
            SloSpec {
                name: slo_name,
                description: description.clone(),
                objective: objective.percent,
                window: window.clone(),
                budgeting: Some(objective.budgeting),
                labels: meta.labels.clone(),
                group_by,
                min_events: 0.0,
                alerts: Default::default(),
                sli,
            },
            name_path,
        ));
    }
    out
}

/// Vigil's SLO name rule.
fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// `Foo Total Errors` -> `foo-total-errors`.
fn slug(text: &str) -> String {
    let mut out = String::new();
    for c in text.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.is_empty() && !out.ends_with('-') {
            out.push('-');
        }
    }
    out.trim_end_matches('-').to_string()
}

/// `spec.indicator` or `spec.indicatorRef`.
fn indicator_of(
    r: &mut Reporter,
    spec: &Mapping,
    slis: &HashMap<String, SliEntry>,
) -> Option<Indicator> {
    match (spec.get("indicator"), spec.get("indicatorRef")) {
        (Some(_), Some(_)) => {
            r.bad(
                "spec.indicatorRef",
                "set either indicator or indicatorRef, not both",
            );
            None
        }
        (None, None) => {
            r.bad(
                "spec",
                "needs indicator (an inline SLI) or indicatorRef (the name of a kind: SLI document in this file)",
            );
            None
        }
        (Some(v), None) => {
            let m = r.mapping(v, "spec.indicator")?;
            r.keys(m, "spec.indicator", &["metadata", "spec"]);
            match m.get("spec") {
                Some(s) => indicator_spec(r, s, "spec.indicator.spec"),
                None => {
                    r.bad(
                        "spec.indicator",
                        "needs spec with ratioMetric or thresholdMetric",
                    );
                    None
                }
            }
        }
        (None, Some(v)) => {
            let Some(name) = v.as_str() else {
                r.bad(
                    "spec.indicatorRef",
                    format!("expected the name of an SLI, found {}", show(v)),
                );
                return None;
            };
            match slis.get(name) {
                // An SLI with problems has reported them itself.
                Some(entry) => entry.indicator.clone(),
                None => {
                    let mut known: Vec<&str> = slis.keys().map(String::as_str).collect();
                    known.sort_unstable();
                    let known = if known.is_empty() {
                        "there is none".to_string()
                    } else {
                        format!("there are {}", known.join(", "))
                    };
                    r.bad(
                        "spec.indicatorRef",
                        format!(
                            "no kind: SLI document named {name:?} in this file ({known}); Vigil resolves indicatorRef within the same file only: add the SLI document to it, or inline the SLI as spec.indicator"
                        ),
                    );
                    None
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Windows, budgeting, objectives
// ---------------------------------------------------------------------------------------------

/// An OpenSLO duration shorthand: a positive whole number and one of m, h, d, w, M, Q, Y.
fn shorthand(text: &str) -> Result<(u64, char), String> {
    let t = text.trim();
    let fail = || {
        format!(
            "{text:?} is not an OpenSLO duration; write a positive whole number and one of m, h, d, w, M, Q, Y, e.g. 5m or 28d"
        )
    };
    let unit = t.chars().last().ok_or_else(fail)?;
    if !"mhdwMQY".contains(unit) {
        return Err(fail());
    }
    let digits = &t[..t.len() - unit.len_utf8()];
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(fail());
    }
    match digits.parse::<u64>() {
        Ok(n) if n > 0 => Ok((n, unit)),
        _ => Err(fail()),
    }
}

/// The fixed length of a shorthand in m, h, d or w.
fn fixed_length(n: u64, unit: char) -> Option<Duration> {
    let secs = match unit {
        'm' => 60,
        'h' => 3600,
        'd' => 86_400,
        'w' => 7 * 86_400,
        _ => return None,
    };
    n.checked_mul(secs).map(Duration::from_secs)
}

fn window(r: &mut Reporter, spec: &Mapping) -> Option<Window> {
    let path = "spec.timeWindow";
    let Some(v) = spec.get("timeWindow") else {
        r.bad(
            path,
            "is missing; add timeWindow: [{duration: 28d, isRolling: true}], or a calendar window such as [{duration: 1M, calendar: {timeZone: UTC}}]",
        );
        return None;
    };
    let Value::Sequence(items) = v else {
        r.bad(
            path,
            "expected a list with one item, e.g. [{duration: 28d, isRolling: true}]",
        );
        return None;
    };
    let [item] = items.as_slice() else {
        r.bad(
            path,
            format!("has {} items; give exactly one time window", items.len()),
        );
        return None;
    };
    let p = "spec.timeWindow[0]";
    let m = r.mapping(item, p)?;
    r.keys(m, p, &["duration", "isRolling", "calendar"]);
    let dur_path = "spec.timeWindow[0].duration";
    let duration = match m.get("duration") {
        Some(Value::String(s)) => match shorthand(s) {
            Ok(d) => Some(d),
            Err(e) => {
                r.bad(dur_path, e);
                None
            }
        },
        Some(other) => {
            r.bad(
                dur_path,
                format!(
                    "expected a duration such as 28d or 1M, found {}",
                    show(other)
                ),
            );
            None
        }
        None => {
            r.bad(p, "needs duration, e.g. 28d (rolling) or 1M (calendar)");
            None
        }
    };
    let rolling = match m.get("isRolling") {
        None => None,
        Some(Value::Bool(b)) => Some(*b),
        Some(other) => {
            r.bad(
                "spec.timeWindow[0].isRolling",
                format!("expected true or false, found {}", show(other)),
            );
            return None;
        }
    };
    match (rolling, m.get("calendar")) {
        (Some(true), Some(_)) => {
            r.bad(
                "spec.timeWindow[0].calendar",
                "cannot be set when isRolling is true; remove calendar for a rolling window, or set isRolling: false",
            );
            None
        }
        (Some(true), None) => {
            let (n, unit) = duration?;
            let Some(d) = fixed_length(n, unit) else {
                r.bad(
                    dur_path,
                    format!(
                        "a rolling window of {n}{unit} has no fixed length; write it in days or weeks (e.g. 30d, 4w), or make it a calendar window (isRolling: false, calendar: {{timeZone: UTC}}) of 1M or 1Q"
                    ),
                );
                return None;
            };
            if d < MIN_WINDOW || d > MAX_WINDOW {
                r.bad(
                    dur_path,
                    format!("{n}{unit} is out of range; use 1h to 92d (or a calendar window)"),
                );
                return None;
            }
            Some(Window::Rolling(d))
        }
        (_, Some(c)) => calendar_window(r, c, duration?),
        (_, None) => {
            r.bad(
                p,
                "is neither rolling nor calendar-aligned; set isRolling: true, or add calendar: {timeZone: UTC} for a calendar window",
            );
            None
        }
    }
}

fn calendar_window(r: &mut Reporter, v: &Value, (n, unit): (u64, char)) -> Option<Window> {
    let p = "spec.timeWindow[0].calendar";
    let m = r.mapping(v, p)?;
    r.keys(m, p, &["startTime", "timeZone"]);
    let unit = match (n, unit) {
        (1, 'w') => Some(CalendarUnit::Week),
        (1, 'M') => Some(CalendarUnit::Month),
        (1, 'Q') => Some(CalendarUnit::Quarter),
        _ => {
            r.bad(
                "spec.timeWindow[0].duration",
                format!(
                    "a calendar window of {n}{unit} is not supported; Vigil's calendar windows are one week (1w), one month (1M) or one quarter (1Q)"
                ),
            );
            None
        }
    };
    let time_zone = r.string(m, p, "timeZone").unwrap_or("UTC").to_string();
    let mut ok = true;
    if time_zone.parse::<chrono_tz::Tz>().is_err() {
        r.bad(
            &join(p, "timeZone"),
            format!(
                "{time_zone:?} is not an IANA time zone; e.g. UTC, Europe/Berlin, America/New_York"
            ),
        );
        ok = false;
    }
    let start = r.string(m, p, "startTime");
    if let (Some(start), Some(unit)) = (start, unit) {
        let parsed = NaiveDateTime::parse_from_str(start.trim(), "%Y-%m-%d %H:%M:%S")
            .or_else(|_| NaiveDateTime::parse_from_str(start.trim(), "%Y-%m-%dT%H:%M:%S"))
            .or_else(|_| {
                NaiveDate::parse_from_str(start.trim(), "%Y-%m-%d")
                    .map(|d| d.and_time(NaiveTime::MIN))
            });
        match parsed {
            Err(_) => {
                r.bad(
                    &join(p, "startTime"),
                    format!(
                        "{start:?} is not a date and time; write it like 2024-01-01 00:00:00 (local time in timeZone)"
                    ),
                );
                ok = false;
            }
            Ok(t) => {
                let midnight = t.hour() == 0 && t.minute() == 0 && t.second() == 0;
                let (aligned, first) = match unit {
                    CalendarUnit::Week => (t.weekday() == Weekday::Mon, "a Monday"),
                    CalendarUnit::Month => (t.day() == 1, "the first day of a month"),
                    CalendarUnit::Quarter => (
                        t.day() == 1 && matches!(t.month(), 1 | 4 | 7 | 10),
                        "January, April, July or October 1st",
                    ),
                };
                if !(midnight && aligned) {
                    r.bad(
                        &join(p, "startTime"),
                        format!(
                            "{start:?} does not start a period: Vigil's calendar periods start at 00:00 on {first} in timeZone; set startTime to such a time (e.g. 2024-01-01 00:00:00) or remove it"
                        ),
                    );
                    ok = false;
                }
            }
        }
    }
    let unit = unit?;
    ok.then_some(Window::Calendar { unit, time_zone })
}

fn method(r: &mut Reporter, spec: &Mapping) -> Option<Method> {
    let p = "spec.budgetingMethod";
    let fix = "use Occurrences (every event counts), Timeslices (good minutes) or RatioTimeslices (average of the slices' ratios)";
    match spec.get("budgetingMethod") {
        None => {
            r.bad("spec", format!("needs budgetingMethod; {fix}"));
            None
        }
        Some(Value::String(s)) if s.eq_ignore_ascii_case("occurrences") => {
            Some(Method::Occurrences)
        }
        Some(Value::String(s)) if s.eq_ignore_ascii_case("timeslices") => Some(Method::Timeslices),
        Some(Value::String(s)) if s.eq_ignore_ascii_case("ratiotimeslices") => {
            Some(Method::RatioTimeslices)
        }
        Some(other) => {
            r.bad(
                p,
                format!("{} is not a budgeting method; {fix}", show(other)),
            );
            None
        }
    }
}

/// Every objective; None for those with problems.
fn objectives(r: &mut Reporter, spec: &Mapping, method: Method) -> Vec<Option<Objective>> {
    let path = "spec.objectives";
    let items = match spec.get("objectives") {
        Some(Value::Sequence(items)) if !items.is_empty() => items,
        Some(Value::Sequence(_)) => {
            r.bad(path, "is empty; add an objective, e.g. [{target: 0.999}]");
            return Vec::new();
        }
        Some(other) => {
            r.bad(
                path,
                format!(
                    "expected a list such as [{{target: 0.999}}], found {}",
                    show(other)
                ),
            );
            return Vec::new();
        }
        None => {
            r.bad("spec", "needs objectives, e.g. [{target: 0.999}]");
            return Vec::new();
        }
    };
    items
        .iter()
        .enumerate()
        .map(|(i, item)| objective(r, item, i, method))
        .collect()
}

fn objective(r: &mut Reporter, v: &Value, i: usize, method: Method) -> Option<Objective> {
    let p = format!("spec.objectives[{i}]");
    let m = r.mapping(v, &p)?;
    r.keys(
        m,
        &p,
        &[
            "displayName",
            "op",
            "value",
            "target",
            "targetPercent",
            "timeSliceTarget",
            "timeSliceWindow",
            "indicator",
            "indicatorRef",
            "compositeWeight",
        ],
    );
    let mut ok = true;
    for key in ["indicator", "indicatorRef", "compositeWeight"] {
        if m.contains_key(key) {
            r.bad(
                &join(&p, key),
                "composite SLOs (an indicator per objective) are not supported; write one SLO per indicator",
            );
            ok = false;
        }
    }
    let display_name = r.string(m, &p, "displayName").map(str::to_string);
    let target = r.number(m, &p, "target");
    let target_percent = r.number(m, &p, "targetPercent");
    let percent = match (m.contains_key("target"), m.contains_key("targetPercent")) {
        (true, true) => {
            r.bad(&p, "set either target or targetPercent, not both");
            None
        }
        (false, false) => {
            r.bad(
                &p,
                "needs target (a ratio, e.g. 0.999) or targetPercent (e.g. 99.9)",
            );
            None
        }
        (true, false) => target.and_then(|t| {
            if t > 0.0 && t < 1.0 {
                Some((t * 100.0 * 1e9).round() / 1e9)
            } else {
                r.bad(
                    &join(&p, "target"),
                    format!("{t} is out of range; give a ratio above 0 and below 1, e.g. 0.999"),
                );
                None
            }
        }),
        (false, true) => target_percent.and_then(|t| {
            if t > 0.0 && t < 100.0 {
                Some(t)
            } else {
                r.bad(
                    &join(&p, "targetPercent"),
                    format!(
                        "{t} is out of range; give a percentage above 0 and below 100, e.g. 99.9"
                    ),
                );
                None
            }
        }),
    };
    let op = match m.get("op") {
        None => None,
        Some(Value::String(s)) => match s.as_str() {
            "lt" => Some(Op::Lt),
            "lte" => Some(Op::Le),
            "gt" => Some(Op::Gt),
            "gte" => Some(Op::Ge),
            _ => {
                r.bad(
                    &join(&p, "op"),
                    format!("{s:?} is not an operator; use lt, lte, gt or gte"),
                );
                ok = false;
                None
            }
        },
        Some(other) => {
            r.bad(
                &join(&p, "op"),
                format!("expected lt, lte, gt or gte, found {}", show(other)),
            );
            ok = false;
            None
        }
    };
    let value = r.number(m, &p, "value");
    if let Some(x) = value {
        if !x.is_finite() {
            r.bad(&join(&p, "value"), "must be a finite number");
            ok = false;
        }
    }
    let budgeting = match method {
        // Slices are ignored with Occurrences.
        Method::Occurrences => Some(Budgeting::Occurrences),
        Method::Timeslices => {
            let slice = slice_window(r, m, &p);
            let target = r.number(m, &p, "timeSliceTarget");
            let target = match target {
                Some(t) if t > 0.0 && t <= 1.0 => Some(t),
                Some(t) => {
                    r.bad(
                        &join(&p, "timeSliceTarget"),
                        format!("{t} is not a ratio; use a value above 0 and at most 1, e.g. 0.95"),
                    );
                    None
                }
                None => {
                    if !m.contains_key("timeSliceTarget") {
                        r.bad(
                            &p,
                            "budgetingMethod Timeslices needs timeSliceTarget: the good ratio a slice needs, e.g. 0.95",
                        );
                    }
                    None
                }
            };
            match (slice, target) {
                (Some(slice), Some(target)) => Some(Budgeting::Timeslices { slice, target }),
                _ => None,
            }
        }
        Method::RatioTimeslices => {
            slice_window(r, m, &p).map(|slice| Budgeting::RatioTimeslices { slice })
        }
    };
    let (Some(percent), Some(budgeting), true) = (percent, budgeting, ok) else {
        return None;
    };
    Some(Objective {
        index: i,
        display_name,
        percent,
        op,
        value,
        budgeting,
    })
}

/// `timeSliceWindow`: a number of minutes or a shorthand; Vigil needs whole minutes, 1m to 1h.
fn slice_window(r: &mut Reporter, m: &Mapping, p: &str) -> Option<Duration> {
    let path = join(p, "timeSliceWindow");
    let slice = match m.get("timeSliceWindow") {
        None => {
            r.bad(
                p,
                "budgeting by time slices needs timeSliceWindow, the slice length, e.g. 1m or 5m",
            );
            return None;
        }
        Some(Value::Number(n)) => match n.as_u64() {
            Some(mins) if mins > 0 => mins.checked_mul(60).map(Duration::from_secs),
            _ => {
                r.bad(
                    &path,
                    format!("{n} is not a whole number of minutes; write e.g. 5 or 5m"),
                );
                return None;
            }
        },
        Some(Value::String(s)) => match shorthand(s) {
            Ok((n, unit)) => fixed_length(n, unit),
            Err(e) => {
                r.bad(&path, e);
                return None;
            }
        },
        Some(other) => {
            r.bad(
                &path,
                format!("expected a duration such as 1m, found {}", show(other)),
            );
            return None;
        }
    };
    match slice {
        Some(d) if d.as_secs() >= 60 && d.as_secs() <= 3600 => Some(d),
        _ => {
            r.bad(
                &path,
                "Vigil's time slices are a whole number of minutes from 1m to 1h; e.g. 1m or 5m",
            );
            None
        }
    }
}

/// A good-over-total ratio of one histogram's buckets is a latency SLI: good is
/// `x_bucket{le="T",...}`, total is `x_bucket{le="+Inf",...}` or `x_count{...}` with the same
/// other matchers.
fn latency(good: &str, total: &str, group_by: &[String]) -> Option<LatencySli> {
    if group_by.iter().any(|g| g == "le") {
        return None;
    }
    let g: Selector = good.parse().ok()?;
    let t: Selector = total.parse().ok()?;
    let base = g.metric_name()?.strip_suffix("_bucket")?;
    let le_of = |s: &Selector| -> Vec<(MatchOp, String)> {
        s.matchers
            .iter()
            .filter(|m| m.name == "le")
            .map(|m| (m.op, m.value.clone()))
            .collect()
    };
    let good_le = le_of(&g);
    let [(MatchOp::Equal, le)] = good_le.as_slice() else {
        return None;
    };
    let threshold: f64 = le.parse().ok()?;
    if !(threshold > 0.0 && threshold.is_finite()) {
        return None;
    }
    let total_le = le_of(&t);
    let total_name = t.metric_name()?;
    let total_ok = if total_name == format!("{base}_bucket") {
        matches!(total_le.as_slice(), [(MatchOp::Equal, v)] if v == "+Inf")
    } else {
        total_name == format!("{base}_count") && total_le.is_empty()
    };
    let rest = |s: &Selector| {
        let mut v: Vec<(String, &'static str, String)> = s
            .matchers
            .iter()
            .filter(|m| m.name != "le" && m.name != "__name__")
            .map(|m| (m.name.clone(), m.op.as_str(), m.value.clone()))
            .collect();
        v.sort();
        v
    };
    if !total_ok || rest(&g) != rest(&t) {
        return None;
    }
    let histogram = Selector {
        matchers: g
            .matchers
            .iter()
            .filter(|m| m.name != "le")
            .cloned()
            .collect(),
    };
    Some(LatencySli {
        histogram: histogram.to_string(),
        threshold,
    })
}

// ---------------------------------------------------------------------------------------------
// Queries
// ---------------------------------------------------------------------------------------------

/// What a query measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Counters of a ratio: `sum`, `rate`, `increase`.
    Counter,
    /// The gauge of a threshold: `sum`, `max`, `min`, `avg`.
    Gauge,
}

impl Mode {
    fn accepted(self) -> &'static str {
        match self {
            Mode::Counter => {
                "accepted forms: a counter selector such as http_requests_total{code=~\"5..\"}, rate(S[5m]), increase(S[5m]), sum(S), sum(rate(S[5m])), sum(increase(S[5m])), and sum by (label, ...) (rate(S[5m]))"
            }
            Mode::Gauge => {
                "accepted forms: a gauge selector such as kafka_consumergroup_lag{consumergroup=\"orders\"}, or sum, max, min or avg of it, optionally by (label, ...)"
            }
        }
    }
}

/// An accepted query, reduced.
#[derive(Debug, Clone, PartialEq)]
struct Query {
    /// The series selector as written.
    selector: String,
    /// The outer aggregation, if any.
    aggregate: Option<Aggregate>,
    /// Its `by` labels.
    by: Vec<String>,
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    Open,
    Close,
    Comma,
    /// `{…}`, braces included.
    Braces(String),
    /// The inside of `[…]`.
    Range(String),
    Op(String),
    Number(String),
    Str,
    At,
}

fn describe(t: &Tok) -> String {
    match t {
        Tok::Ident(s) | Tok::Op(s) | Tok::Number(s) => format!("`{s}`"),
        Tok::Open => "`(`".into(),
        Tok::Close => "`)`".into(),
        Tok::Comma => "`,`".into(),
        Tok::Braces(b) => format!("`{b}`"),
        Tok::Range(r) => format!("`[{r}]`"),
        Tok::Str => "a string".into(),
        Tok::At => "`@`".into(),
    }
}

fn tokenize(q: &str) -> Result<Vec<Tok>, String> {
    let chars: Vec<char> = q.chars().collect();
    let collect = |a: usize, b: usize| -> String { chars[a..b].iter().collect() };
    let mut out = Vec::new();
    let mut i = 0;
    while let Some(&c) = chars.get(i) {
        if c.is_whitespace() {
            i += 1;
        } else if c == '#' {
            while chars.get(i).is_some_and(|&c| c != '\n') {
                i += 1;
            }
        } else if c.is_ascii_alphabetic() || c == '_' || c == ':' {
            let s = i;
            while chars
                .get(i)
                .is_some_and(|&c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
            {
                i += 1;
            }
            out.push(Tok::Ident(collect(s, i)));
        } else if c.is_ascii_digit() || c == '.' {
            let s = i;
            while chars
                .get(i)
                .is_some_and(|&c| c.is_ascii_alphanumeric() || c == '.')
            {
                i += 1;
            }
            out.push(Tok::Number(collect(s, i)));
        } else {
            match c {
                '(' => out.push(Tok::Open),
                ')' => out.push(Tok::Close),
                ',' => out.push(Tok::Comma),
                '@' => out.push(Tok::At),
                '{' => {
                    let end = skip_braces(&chars, i)?;
                    out.push(Tok::Braces(collect(i, end)));
                    i = end;
                    continue;
                }
                '[' => {
                    let Some(len) = chars[i..].iter().position(|&c| c == ']') else {
                        return Err("a `[` is not closed".into());
                    };
                    out.push(Tok::Range(collect(i + 1, i + len)));
                    i += len + 1;
                    continue;
                }
                '"' | '\'' | '`' => {
                    i = skip_string(&chars, i)?;
                    out.push(Tok::Str);
                    continue;
                }
                '+' | '-' | '*' | '/' | '%' | '^' | '=' | '!' | '<' | '>' => {
                    let s = i;
                    while chars.get(i).is_some_and(|c| "+-*/%^=!<>".contains(*c)) {
                        i += 1;
                    }
                    out.push(Tok::Op(collect(s, i)));
                    continue;
                }
                other => return Err(format!("unexpected character {other:?}")),
            }
            i += 1;
        }
    }
    Ok(out)
}

/// The index after the string literal that starts at `i`.
fn skip_string(chars: &[char], i: usize) -> Result<usize, String> {
    let quote = chars[i];
    let mut j = i + 1;
    while let Some(&c) = chars.get(j) {
        if c == '\\' && quote != '`' {
            j += 2;
        } else if c == quote {
            return Ok(j + 1);
        } else {
            j += 1;
        }
    }
    Err("a quoted string is not closed".into())
}

/// The index after the `}` that closes the `{` at `i`.
fn skip_braces(chars: &[char], i: usize) -> Result<usize, String> {
    let mut j = i + 1;
    while let Some(&c) = chars.get(j) {
        match c {
            '"' | '\'' | '`' => j = skip_string(chars, j)?,
            '}' => return Ok(j + 1),
            _ => j += 1,
        }
    }
    Err("a `{` is not closed".into())
}

const BINARY: &str = "binary operators and comparisons are not supported (a ratio is written as separate good or bad and total queries; a threshold's comparison is the objective's op and value)";

/// Whether a function or aggregation called by name is accepted in `mode`.
fn check_function(name: &str, mode: Mode) -> Result<(), String> {
    match (name, mode) {
        ("by", _) | ("sum", _) => Ok(()),
        ("rate" | "increase", Mode::Counter) => Ok(()),
        ("max" | "min" | "avg", Mode::Gauge) => Ok(()),
        ("without", _) => Err(
            "without (...) is not supported; name the labels to keep with by (...)".to_string(),
        ),
        ("on" | "ignoring" | "group_left" | "group_right", _) => Err(BINARY.to_string()),
        ("histogram_quantile", _) => Err(
            "histogram_quantile() is not supported; write a latency SLI as a ratio of the histogram's buckets: good = sum(rate(x_bucket{le=\"0.25\"}[5m])), total = sum(rate(x_count[5m]))"
                .to_string(),
        ),
        ("rate" | "increase" | "irate" | "delta" | "idelta" | "deriv", Mode::Gauge) => Err(format!(
            "{name}() is not supported in a thresholdMetric: Vigil compares the gauge's current value every round; give the gauge selector itself"
        )),
        ("max" | "min" | "avg" | "count" | "group", Mode::Counter) => Err(format!(
            "{name}() is not supported for counters; only sum() aggregates them"
        )),
        ("irate", Mode::Counter) => Err("irate() is not supported; use rate()".to_string()),
        _ => Err(format!("{name}() is not supported")),
    }
}

/// Reduces an accepted query to its selector, aggregation and `by` labels, or says why it is not
/// accepted.
fn parse_query(q: &str, mode: Mode) -> Result<Query, String> {
    let toks = tokenize(q)?;
    if toks.is_empty() {
        return Err("the query is empty".into());
    }
    // Name what is unsupported before looking at the structure.
    for (i, t) in toks.iter().enumerate() {
        let called = matches!(toks.get(i + 1), Some(Tok::Open));
        match t {
            Tok::Ident(n) if called => check_function(n, mode)?,
            Tok::Ident(n) if n == "offset" => {
                return Err("offset modifiers are not supported".into());
            }
            Tok::At => return Err("@ modifiers are not supported".into()),
            Tok::Ident(n) if n == "without" => {
                return Err("without (...) is not supported; use by (...)".into());
            }
            Tok::Ident(n)
                if matches!(
                    n.as_str(),
                    "and" | "or" | "unless" | "bool" | "on" | "ignoring" | "group_left"
                ) =>
            {
                return Err(BINARY.into());
            }
            Tok::Op(_) => return Err(BINARY.into()),
            Tok::Range(r) if r.contains(':') => {
                return Err("subqueries ([range:resolution]) are not supported".into());
            }
            _ => {}
        }
    }
    let mut p = Parser {
        toks: &toks,
        pos: 0,
    };
    let query = p.query(mode)?;
    if let Some(t) = p.peek() {
        return Err(format!("unexpected {} after the expression", describe(t)));
    }
    Ok(query)
}

struct Parser<'a> {
    toks: &'a [Tok],
    pos: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos)
    }

    fn next(&mut self) -> Option<&Tok> {
        let t = self.toks.get(self.pos);
        self.pos += 1;
        t
    }

    fn is_ident(&self, at: usize, name: &str) -> bool {
        matches!(self.toks.get(at), Some(Tok::Ident(n)) if n == name)
    }

    fn expect(&mut self, want: &Tok, what: &str) -> Result<(), String> {
        match self.next() {
            Some(t) if t == want => Ok(()),
            Some(t) => Err(format!("expected {what}, found {}", describe(t))),
            None => Err(format!("expected {what} at the end")),
        }
    }

    fn query(&mut self, mode: Mode) -> Result<Query, String> {
        let agg = match self.peek() {
            Some(Tok::Ident(n)) => match (n.as_str(), mode) {
                ("sum", _) => Some(Aggregate::Sum),
                ("max", Mode::Gauge) => Some(Aggregate::Max),
                ("min", Mode::Gauge) => Some(Aggregate::Min),
                ("avg", Mode::Gauge) => Some(Aggregate::Avg),
                _ => None,
            },
            _ => None,
        };
        let follows = matches!(self.toks.get(self.pos + 1), Some(Tok::Open))
            || self.is_ident(self.pos + 1, "by");
        let Some(aggregate) = agg.filter(|_| follows) else {
            let selector = self.inner(mode)?;
            return Ok(Query {
                selector,
                aggregate: None,
                by: Vec::new(),
            });
        };
        self.pos += 1;
        let mut by = self.by_clause()?;
        self.expect(&Tok::Open, "`(`")?;
        let selector = self.inner(mode)?;
        self.expect(&Tok::Close, "`)`")?;
        if by.is_none() {
            by = self.by_clause()?;
        }
        Ok(Query {
            selector,
            aggregate: Some(aggregate),
            by: by.unwrap_or_default(),
        })
    }

    fn by_clause(&mut self) -> Result<Option<Vec<String>>, String> {
        if !self.is_ident(self.pos, "by") {
            return Ok(None);
        }
        self.pos += 1;
        self.expect(&Tok::Open, "`(` after by")?;
        let mut labels = Vec::new();
        loop {
            match self.next() {
                Some(Tok::Close) if labels.is_empty() => break,
                Some(Tok::Ident(l)) => {
                    check_label_name(l)?;
                    labels.push(l.clone());
                    match self.next() {
                        Some(Tok::Comma) => {}
                        Some(Tok::Close) => break,
                        _ => return Err("expected `,` or `)` in by (...)".into()),
                    }
                }
                _ => return Err("expected label names in by (...)".into()),
            }
        }
        Ok(Some(labels))
    }

    /// A selector, or `rate`/`increase` of a range selector (counters).
    fn inner(&mut self, mode: Mode) -> Result<String, String> {
        if let (Some(Tok::Ident(f)), Some(Tok::Open)) = (self.peek(), self.toks.get(self.pos + 1)) {
            let f = f.clone();
            if mode == Mode::Counter && (f == "rate" || f == "increase") {
                self.pos += 2;
                let selector = self.selector()?;
                match self.next() {
                    Some(Tok::Range(_)) => {}
                    _ => {
                        return Err(format!(
                            "{f}() needs a range selector such as {selector}[5m]"
                        ));
                    }
                }
                self.expect(&Tok::Close, "`)`")?;
                return Ok(selector);
            }
            return Err(format!("{f}() cannot be nested here"));
        }
        let selector = self.selector()?;
        if matches!(self.peek(), Some(Tok::Range(_))) {
            return Err(match mode {
                Mode::Counter => {
                    format!("the range selector {selector}[…] needs rate() or increase() around it")
                }
                Mode::Gauge => "range selectors are not supported in a thresholdMetric".into(),
            });
        }
        Ok(selector)
    }

    fn selector(&mut self) -> Result<String, String> {
        let text = match self.peek().cloned() {
            Some(Tok::Ident(name)) if !matches!(name.as_str(), "by" | "without") => {
                self.pos += 1;
                match self.peek() {
                    Some(Tok::Braces(b)) => {
                        let b = b.clone();
                        self.pos += 1;
                        format!("{name}{b}")
                    }
                    _ => name,
                }
            }
            Some(Tok::Braces(b)) => {
                self.pos += 1;
                b
            }
            Some(t) => {
                return Err(format!(
                    "expected a series selector, found {}",
                    describe(&t)
                ));
            }
            None => return Err("expected a series selector at the end".into()),
        };
        text.parse::<Selector>()?;
        Ok(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/openslo/");

    fn parse(text: &str) -> Result<Vec<SloFile>, String> {
        parse_openslo(text, Path::new("o.yaml")).map_err(|e| e.to_string())
    }

    fn fixture(name: &str) -> (String, Result<Vec<SloFile>, Problems>) {
        let path = format!("{FIXTURES}{name}");
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(!text.is_empty(), "fixture {path} is missing");
        assert!(is_openslo(&text), "{path}");
        let result = parse_openslo(&text, Path::new(name));
        (text, result)
    }

    /// An SLO document around an inline SLI spec (indented for `indicator.spec`).
    fn slo_with(sli: &str, rest: &str) -> String {
        format!(
            "apiVersion: openslo/v1\nkind: SLO\nmetadata:\n  name: s\nspec:\n  service: svc\n  indicator:\n    metadata: {{name: i}}\n    spec:\n{sli}{rest}"
        )
    }

    const ROLLING: &str = "  timeWindow: [{duration: 28d, isRolling: true}]\n  budgetingMethod: Occurrences\n  objectives: [{target: 0.999}]\n";

    fn ratio(good_or_bad: &str, num: &str, total: &str) -> String {
        format!(
            "      ratioMetric:\n        counter: true\n        {good_or_bad}: {{metricSource: {{type: Prometheus, spec: {{query: '{num}'}}}}}}\n        total: {{metricSource: {{type: Prometheus, spec: {{query: '{total}'}}}}}}\n"
        )
    }

    fn threshold(query: &str) -> String {
        format!(
            "      thresholdMetric: {{metricSource: {{type: Prometheus, spec: {{query: '{query}'}}}}}}\n"
        )
    }

    fn one(text: &str) -> SloSpec {
        let files = parse(text).expect("valid");
        assert_eq!(files.len(), 1);
        assert_eq!(files[0].slos.len(), 1);
        files[0].slos[0].clone()
    }

    fn query_error(query: &str, mode: Mode) -> String {
        parse_query(query, mode).expect_err(query)
    }

    #[test]
    fn detects_openslo() {
        assert!(is_openslo("apiVersion: openslo/v1\nkind: SLO\n"));
        assert!(is_openslo("---\napiVersion: \"openslo/v1alpha\" # old\n"));
        assert!(!is_openslo("service: s\nslos: []\n"));
        assert!(!is_openslo("labels:\n  apiVersion: openslo/v1\n"));
    }

    #[test]
    fn bad_over_total_is_an_errors_ratio() {
        let text = slo_with(
            &ratio(
                "bad",
                r#"sum(rate(http_requests_total{job="api",code=~"5.."}[5m]))"#,
                r#"sum(rate(http_requests_total{job="api"}[5m]))"#,
            ),
            ROLLING,
        );
        let s = one(&text);
        assert_eq!(s.name, "s");
        assert!((s.objective - 99.9).abs() < 1e-12, "{}", s.objective);
        assert_eq!(s.window, Window::Rolling(Duration::from_secs(28 * 86_400)));
        assert_eq!(s.budgeting, Some(Budgeting::Occurrences));
        assert_eq!(
            s.sli,
            Sli::Ratio(RatioSli {
                errors: Some(r#"http_requests_total{job="api",code=~"5.."}"#.into()),
                good: None,
                total: r#"http_requests_total{job="api"}"#.into(),
            })
        );
        assert!(s.group_by.is_empty());
    }

    #[test]
    fn good_over_total_with_by_labels_and_every_counter_form() {
        for (good, total) in [
            (
                "sum by (route) (rate(ok_total[5m]))",
                "sum(rate(all_total[1h])) by (route)",
            ),
            (
                "sum by (route) (increase(ok_total[5m]))",
                "sum by (route) (all_total)",
            ),
        ] {
            let s = one(&slo_with(&ratio("good", good, total), ROLLING));
            assert_eq!(s.group_by, vec!["route".to_string()]);
            assert_eq!(
                s.sli,
                Sli::Ratio(RatioSli {
                    errors: None,
                    good: Some("ok_total".into()),
                    total: "all_total".into(),
                })
            );
        }
        for q in [
            "ok_total",
            "rate(ok_total[5m])",
            "increase(ok_total[1d])",
            "sum(ok_total)",
        ] {
            let s = one(&slo_with(&ratio("good", q, "all_total"), ROLLING));
            assert!(
                matches!(&s.sli, Sli::Ratio(r) if r.good.as_deref() == Some("ok_total")),
                "{q}"
            );
        }
    }

    #[test]
    fn by_labels_must_agree() {
        let err = parse(&slo_with(
            &ratio(
                "bad",
                "sum by (route) (rate(e_total[5m]))",
                "sum(rate(t_total[5m]))",
            ),
            ROLLING,
        ))
        .expect_err("differs");
        assert!(
            err.contains("spec.indicator.spec.ratioMetric.total.metricSource.spec.query: SLO \"s\" (document 1): bad is grouped by (route) but total by ()"),
            "{err}"
        );
    }

    #[test]
    fn histogram_buckets_become_a_latency_sli() {
        for total in [
            r#"sum(rate(lat_seconds_count{job="api"}[5m]))"#,
            r#"sum(rate(lat_seconds_bucket{le="+Inf",job="api"}[5m]))"#,
        ] {
            let s = one(&slo_with(
                &ratio(
                    "good",
                    r#"sum(rate(lat_seconds_bucket{job="api",le="0.25"}[5m]))"#,
                    total,
                ),
                ROLLING,
            ));
            assert_eq!(
                s.sli,
                Sli::Latency(LatencySli {
                    histogram: r#"lat_seconds_bucket{job="api"}"#.into(),
                    threshold: 0.25,
                }),
                "{total}"
            );
        }
        // Other matchers differ: stays a ratio.
        let s = one(&slo_with(
            &ratio(
                "good",
                r#"lat_seconds_bucket{job="api",le="0.25"}"#,
                r#"lat_seconds_count{job="web"}"#,
            ),
            ROLLING,
        ));
        assert!(matches!(s.sli, Sli::Ratio(_)));
    }

    #[test]
    fn threshold_metric_with_op_and_value() {
        let rest = "  timeWindow: [{duration: 7d, isRolling: true}]\n  budgetingMethod: Timeslices\n  objectives: [{op: lte, value: 1000, target: 0.99, timeSliceTarget: 1, timeSliceWindow: 1m}]\n";
        let s = one(&slo_with(
            &threshold(
                r#"sum by (consumergroup) (kafka_consumergroup_lag{consumergroup="orders"})"#,
            ),
            rest,
        ));
        assert_eq!(
            s.sli,
            Sli::Threshold(ThresholdSli {
                selector: r#"kafka_consumergroup_lag{consumergroup="orders"}"#.into(),
                aggregate: Aggregate::Sum,
                op: Op::Le,
                value: 1000.0,
            })
        );
        assert_eq!(s.group_by, vec!["consumergroup".to_string()]);
        assert_eq!(
            s.budgeting,
            Some(Budgeting::Timeslices {
                slice: Duration::from_secs(60),
                target: 1.0
            })
        );
        for (q, agg) in [
            ("queue_depth", Aggregate::Max),
            ("max(queue_depth)", Aggregate::Max),
            ("min(queue_depth)", Aggregate::Min),
            ("avg(queue_depth)", Aggregate::Avg),
        ] {
            let s = one(&slo_with(&threshold(q), rest));
            assert!(
                matches!(s.sli, Sli::Threshold(ref t) if t.aggregate == agg && t.selector == "queue_depth"),
                "{q}"
            );
        }
        let err = parse(&slo_with(
            &threshold("queue_depth"),
            "  timeWindow: [{duration: 7d, isRolling: true}]\n  budgetingMethod: Occurrences\n  objectives: [{target: 0.99}]\n",
        ))
        .expect_err("no op");
        assert!(
            err.contains("spec.objectives[0]: SLO \"s\" (document 1): a thresholdMetric needs op (lt, lte, gt or gte) and value"),
            "{err}"
        );
    }

    #[test]
    fn several_objectives_calendar_and_slices() {
        let text = slo_with(
            &ratio("good", "ok_total", "all_total"),
            "  timeWindow:\n    - duration: 1M\n      calendar: {startTime: 2024-01-01 00:00:00, timeZone: Europe/Berlin}\n  budgetingMethod: RatioTimeslices\n  objectives:\n    - {displayName: Internal Goal, targetPercent: 99.5, timeSliceWindow: 5}\n    - {target: 0.99, timeSliceWindow: 1h}\n",
        );
        let files = parse(&text).expect("valid");
        let slos = &files[0].slos;
        assert_eq!(slos.len(), 2);
        assert_eq!(slos[0].name, "s-internal-goal");
        assert_eq!(slos[1].name, "s-1");
        assert_eq!(slos[0].objective, 99.5);
        assert!((slos[1].objective - 99.0).abs() < 1e-12);
        assert_eq!(
            slos[0].window,
            Window::Calendar {
                unit: CalendarUnit::Month,
                time_zone: "Europe/Berlin".into()
            }
        );
        assert_eq!(
            slos[0].budgeting,
            Some(Budgeting::RatioTimeslices {
                slice: Duration::from_secs(300)
            })
        );
        assert_eq!(
            slos[1].budgeting,
            Some(Budgeting::RatioTimeslices {
                slice: Duration::from_secs(3600)
            })
        );
        for (dur, unit) in [("1w", CalendarUnit::Week), ("1Q", CalendarUnit::Quarter)] {
            let s = one(&slo_with(
                &ratio("good", "ok_total", "all_total"),
                &format!(
                    "  timeWindow: [{{duration: {dur}, isRolling: false, calendar: {{}}}}]\n  budgetingMethod: Occurrences\n  objectives: [{{target: 0.9}}]\n"
                ),
            ));
            assert_eq!(
                s.window,
                Window::Calendar {
                    unit,
                    time_zone: "UTC".into()
                }
            );
        }
        let s = one(&slo_with(
            &ratio("good", "ok_total", "all_total"),
            "  timeWindow: [{duration: 2w, isRolling: true}]\n  budgetingMethod: Occurrences\n  objectives: [{target: 0.9}]\n",
        ));
        assert_eq!(s.window, Window::Rolling(Duration::from_secs(14 * 86_400)));
    }

    #[test]
    fn metadata_maps_to_name_description_and_labels() {
        let text = "apiVersion: openslo/v1\nkind: SLO\nmetadata:\n  name: avail\n  displayName: Checkout availability\n  labels:\n    team: payments\n    cost-centre: \"42\"\n    tags: [auth, tier-1]\n  annotations: {openslo.com/x: y}\nspec:\n  service: checkout\n  indicatorRef: errors\n  timeWindow: [{duration: 30d, isRolling: true}]\n  budgetingMethod: Occurrences\n  objectives: [{target: 0.995}]\n  alertPolicies: [{alertPolicyRef: page}]\n---\napiVersion: openslo/v1\nkind: SLI\nmetadata: {name: errors}\nspec:\n  ratioMetric:\n    bad: {metricSource: {spec: {query: e_total}}}\n    total: {metricSource: {metricSourceRef: prom, spec: {promql: t_total}}}\n";
        let s = one(text);
        assert_eq!(s.description, "Checkout availability");
        let labels: Vec<(&str, &str)> = s
            .labels
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        assert_eq!(
            labels,
            vec![
                ("cost_centre", "42"),
                ("tags", "auth,tier-1"),
                ("team", "payments")
            ]
        );
    }

    #[test]
    fn multi_document_file_with_refs_and_services() {
        let text = "# a comment before the first document\n---\napiVersion: openslo/v1\nkind: Service\nmetadata: {name: shop}\nspec: {description: the shop}\n---\napiVersion: openslo/v1\nkind: SLO\nmetadata: {name: a}\nspec:\n  service: shop\n  indicatorRef: later\n  timeWindow: [{duration: 28d, isRolling: true}]\n  budgetingMethod: Occurrences\n  objectives: [{target: 0.99}]\n---\napiVersion: openslo/v1\nkind: SLO\nmetadata: {name: b}\nspec:\n  service: search\n  indicatorRef: later\n  timeWindow: [{duration: 28d, isRolling: true}]\n  budgetingMethod: Occurrences\n  objectives: [{target: 0.95}]\n---\napiVersion: openslo/v1\nkind: SLO\nmetadata: {name: c}\nspec:\n  service: shop\n  indicatorRef: later\n  timeWindow: [{duration: 28d, isRolling: true}]\n  budgetingMethod: Occurrences\n  objectives: [{target: 0.9}]\n---\napiVersion: openslo/v1\nkind: SLI\nmetadata: {name: later}\nspec:\n  ratioMetric:\n    good: {metricSource: {type: prometheus, spec: {query: ok_total}}}\n    total: {metricSource: {type: Prometheus, spec: {query: all_total}}}\n...\n";
        let files = parse(text).expect("valid");
        let summary: Vec<(String, Vec<String>)> = files
            .iter()
            .map(|f| {
                (
                    f.service.clone(),
                    f.slos.iter().map(|s| s.name.clone()).collect(),
                )
            })
            .collect();
        assert_eq!(
            summary,
            vec![
                ("shop".to_string(), vec!["a".to_string(), "c".to_string()]),
                ("search".to_string(), vec!["b".to_string()]),
            ]
        );
        let slos = parse_openslo_slos(text, Path::new("o.yaml")).expect("valid");
        assert_eq!(slos.len(), 3);
        assert_eq!(slos[1].id, "shop/c");
        assert!((slos[0].objective - 0.99).abs() < 1e-12);
        assert_eq!(slos[0].selectors.len(), 2);
    }

    #[test]
    fn problems_in_later_documents_have_file_lines() {
        let text = "apiVersion: openslo/v1\nkind: SLI\nmetadata: {name: x}\nspec:\n  ratioMetric:\n    bad: {metricSource: {spec: {query: e_total}}}\n    total:\n      metricSource:\n        spec:\n          query: sum(rate(a[5m])) / 2\n---\napiVersion: openslo/v1\nkind: SLO\nmetadata: {name: a}\nspec:\n  service: shop\n  indicatorRef: nope\n  timeWindow: [{duration: 1M, isRolling: true}]\n  budgetingMethod: Occurrences\n  objectives: [{target: 1.5}]\n";
        let err = parse(text).expect_err("invalid");
        let lines: Vec<&str> = err.lines().collect();
        assert_eq!(lines.len(), 4, "{err}");
        assert!(
            lines[0].starts_with("o.yaml:10:11: spec.ratioMetric.total.metricSource.spec.query: SLI \"x\" (document 1): query \"sum(rate(a[5m])) / 2\" cannot be imported: binary operators"),
            "{err}"
        );
        assert!(
            lines[1].starts_with("o.yaml:17:3: spec.indicatorRef: SLO \"a\" (document 2): no kind: SLI document named \"nope\" in this file (there are x)"),
            "{err}"
        );
        assert!(
            lines[2].starts_with("o.yaml:18:") && lines[2].contains("spec.timeWindow[0].duration: SLO \"a\" (document 2): a rolling window of 1M has no fixed length"),
            "{err}"
        );
        assert!(
            lines[3].starts_with("o.yaml:20:")
                && lines[3].contains(
                    "spec.objectives[0].target: SLO \"a\" (document 2): 1.5 is out of range"
                ),
            "{err}"
        );
    }

    #[test]
    fn yaml_errors_point_into_their_document() {
        let err =
            parse("apiVersion: openslo/v1\nkind: Service\nmetadata: {name: s}\n---\nkind: [\n")
                .expect_err("broken");
        assert!(err.starts_with("o.yaml:6:"), "{err}");
        assert!(err.contains("document 2: invalid YAML"), "{err}");
    }

    #[test]
    fn query_rejections_say_why() {
        let c = Mode::Counter;
        let g = Mode::Gauge;
        for (q, mode, want) in [
            ("a_total / b_total", c, "binary operators"),
            ("a_total > 0", c, "binary operators"),
            ("sum(rate(a[5m])) and on(x) b", c, "binary operators"),
            (
                "histogram_quantile(0.99, sum by (le) (rate(x_bucket[5m])))",
                c,
                "histogram_quantile() is not supported; write a latency SLI as a ratio",
            ),
            ("rate(a_total[5m] offset 1h)", c, "offset modifiers"),
            ("a_total @ 1609746000", c, "@ modifiers"),
            ("rate(a_total[5m:1m])", c, "subqueries"),
            (
                "sum without (pod) (rate(a[5m]))",
                c,
                "without (...) is not supported",
            ),
            ("max(rate(a[5m]))", c, "max() is not supported for counters"),
            ("irate(a[5m])", c, "use rate()"),
            (
                "label_replace(a, \"x\", \"$1\", \"y\", \"(.*)\")",
                c,
                "label_replace() is not supported",
            ),
            ("sum(sum(a))", c, "sum() cannot be nested here"),
            ("a_total[5m]", c, "needs rate() or increase() around it"),
            (
                "rate(a_total)",
                c,
                "rate() needs a range selector such as a_total[5m]",
            ),
            ("rate(queue[5m])", g, "not supported in a thresholdMetric"),
            ("queue[5m]", g, "range selectors are not supported"),
            ("a{job=\"x\"", c, "not closed"),
            ("{}", c, "empty selector"),
            ("", c, "the query is empty"),
            ("sum by (\"x\") (a)", c, "expected label names in by (...)"),
            ("sum by (a b) (x)", c, "expected `,` or `)` in by (...)"),
            ("a b", c, "unexpected `b` after the expression"),
        ] {
            let err = query_error(q, mode);
            assert!(err.contains(want), "{q}: {err}");
        }
    }

    #[test]
    fn query_acceptance() {
        let q = parse_query(
            r#"sum by (a, b) (rate(x_total{c=~"5..",d!="}"}[5m]))"#,
            Mode::Counter,
        )
        .expect("ok");
        assert_eq!(q.selector, r#"x_total{c=~"5..",d!="}"}"#);
        assert_eq!(q.aggregate, Some(Aggregate::Sum));
        assert_eq!(q.by, vec!["a".to_string(), "b".to_string()]);
        let q = parse_query("{__name__=\"up\"} # comment", Mode::Gauge).expect("ok");
        assert_eq!(q.selector, "{__name__=\"up\"}");
        assert_eq!(q.aggregate, None);
        // A metric called like a keyword is still a selector.
        assert_eq!(
            parse_query("sum", Mode::Counter).expect("ok").selector,
            "sum"
        );
    }

    #[test]
    fn window_rejections() {
        let ratio = ratio("good", "ok_total", "all_total");
        for (window, want) in [
            (
                "[{duration: 1Y, isRolling: true}]",
                "a rolling window of 1Y has no fixed length",
            ),
            (
                "[{duration: 100d, isRolling: true}]",
                "100d is out of range; use 1h to 92d",
            ),
            ("[{duration: 30m, isRolling: true}]", "30m is out of range"),
            (
                "[{duration: 2w, calendar: {timeZone: UTC}}]",
                "a calendar window of 2w is not supported",
            ),
            (
                "[{duration: 1d, isRolling: false, calendar: {}}]",
                "a calendar window of 1d",
            ),
            (
                "[{duration: 1M, calendar: {timeZone: Mars/Olympus}}]",
                "\"Mars/Olympus\" is not an IANA time zone",
            ),
            (
                "[{duration: 1M, calendar: {startTime: 2022-01-01 12:00:00}}]",
                "does not start a period: Vigil's calendar periods start at 00:00 on the first day of a month",
            ),
            (
                "[{duration: 1w, calendar: {startTime: 2024-01-02}}]",
                "on a Monday",
            ),
            (
                "[{duration: 1Q, calendar: {startTime: 2024-02-01 00:00:00}}]",
                "January, April, July or October 1st",
            ),
            (
                "[{duration: 1M, calendar: {startTime: yesterday}}]",
                "is not a date and time",
            ),
            (
                "[{duration: 1M, isRolling: true, calendar: {timeZone: UTC}}]",
                "cannot be set when isRolling is true",
            ),
            (
                "[{duration: 28d}]",
                "is neither rolling nor calendar-aligned",
            ),
            (
                "[{duration: 28 days, isRolling: true}]",
                "is not an OpenSLO duration",
            ),
            (
                "[{duration: 28d, isRolling: true}, {duration: 7d, isRolling: true}]",
                "has 2 items; give exactly one",
            ),
            ("{duration: 28d}", "expected a list with one item"),
        ] {
            let text = slo_with(
                &ratio,
                &format!(
                    "  timeWindow: {window}\n  budgetingMethod: Occurrences\n  objectives: [{{target: 0.9}}]\n"
                ),
            );
            let err = parse(&text).expect_err(window);
            assert!(err.contains(want), "{window}: {err}");
        }
        let err = parse(&slo_with(
            &ratio,
            "  budgetingMethod: Occurrences\n  objectives: [{target: 0.9}]\n",
        ))
        .expect_err("no window");
        assert!(
            err.contains("spec.timeWindow: SLO \"s\" (document 1): is missing; add timeWindow"),
            "{err}"
        );
    }

    #[test]
    fn objective_and_budgeting_rejections() {
        let ratio = ratio("good", "ok_total", "all_total");
        let window = "  timeWindow: [{duration: 28d, isRolling: true}]\n";
        for (rest, want) in [
            (
                "  objectives: [{target: 0.9}]\n",
                "spec: SLO \"s\" (document 1): needs budgetingMethod",
            ),
            (
                "  budgetingMethod: Sometimes\n  objectives: [{target: 0.9}]\n",
                "spec.budgetingMethod: SLO \"s\" (document 1): \"Sometimes\" is not a budgeting method",
            ),
            (
                "  budgetingMethod: Occurrences\n  objectives: [{target: 0.9, targetPercent: 90}]\n",
                "set either target or targetPercent, not both",
            ),
            (
                "  budgetingMethod: Occurrences\n  objectives: [{displayName: x}]\n",
                "needs target (a ratio, e.g. 0.999) or targetPercent",
            ),
            (
                "  budgetingMethod: Occurrences\n  objectives: [{targetPercent: 100}]\n",
                "targetPercent: SLO \"s\" (document 1): 100 is out of range",
            ),
            (
                "  budgetingMethod: Occurrences\n  objectives: [{target: '0.9'}]\n",
                "expected a number",
            ),
            (
                "  budgetingMethod: Occurrences\n  objectives: []\n",
                "spec.objectives: SLO \"s\" (document 1): is empty",
            ),
            ("  budgetingMethod: Occurrences\n", "needs objectives"),
            (
                "  budgetingMethod: Timeslices\n  objectives: [{target: 0.9, timeSliceWindow: 1m}]\n",
                "Timeslices needs timeSliceTarget",
            ),
            (
                "  budgetingMethod: Timeslices\n  objectives: [{target: 0.9, timeSliceTarget: 0.9}]\n",
                "needs timeSliceWindow",
            ),
            (
                "  budgetingMethod: Timeslices\n  objectives: [{target: 0.9, timeSliceTarget: 1.5, timeSliceWindow: 1m}]\n",
                "1.5 is not a ratio",
            ),
            (
                "  budgetingMethod: RatioTimeslices\n  objectives: [{target: 0.9, timeSliceWindow: 2h}]\n",
                "time slices are a whole number of minutes from 1m to 1h",
            ),
            (
                "  budgetingMethod: RatioTimeslices\n  objectives: [{target: 0.9, timeSliceWindow: 1.5}]\n",
                "is not a whole number of minutes",
            ),
            (
                "  budgetingMethod: Occurrences\n  objectives: [{target: 0.9, op: eq}]\n",
                "\"eq\" is not an operator; use lt, lte, gt or gte",
            ),
            (
                "  budgetingMethod: Occurrences\n  objectives: [{target: 0.9, indicatorRef: x}]\n",
                "composite SLOs",
            ),
            (
                "  budgetingMethod: Occurrences\n  objectives: [{target: 0.9, bogus: 1}]\n",
                "spec.objectives[0].bogus: SLO \"s\" (document 1): unknown key; remove it or use one of: displayName, op",
            ),
            (
                "  budgetingMethod: Occurrences\n  objectives: [{displayName: A, target: 0.9}, {displayName: a, target: 0.8}]\n",
                "the SLO name \"s-a\" is already used in service \"svc\"",
            ),
        ] {
            let err = parse(&slo_with(&ratio, &format!("{window}{rest}"))).expect_err(rest);
            assert!(err.contains(want), "{rest}: {err}");
        }
        // Ratio objectives ignore op/value; Occurrences ignores slices.
        let s = one(&slo_with(
            &ratio,
            &format!(
                "{window}  budgetingMethod: occurrences\n  objectives: [{{op: gt, value: 1, target: 0.9, timeSliceWindow: 1m}}]\n"
            ),
        ));
        assert_eq!(s.budgeting, Some(Budgeting::Occurrences));
    }

    #[test]
    fn document_and_indicator_rejections() {
        let rest = ROLLING;
        for (text, want) in [
            (
                "apiVersion: openslo/v1alpha\nkind: SLO\nmetadata: {name: s}\n".to_string(),
                "apiVersion: SLO \"s\" (document 1): \"openslo/v1alpha\" is not supported; Vigil imports openslo/v1",
            ),
            (
                "apiVersion: openslo/v1\nkind: SLO\nmetadata: {name: s}\n---\nservice: x\nslos: []\n".to_string(),
                "document 2: has no apiVersion",
            ),
            (
                "apiVersion: openslo/v1\nkind: Thing\nmetadata: {name: s}\n".to_string(),
                "kind: Thing \"s\" (document 1): \"Thing\" is not an OpenSLO v1 kind",
            ),
            (
                "apiVersion: openslo/v1\nkind: Service\nmetadata: {name: s}\n".to_string(),
                "the file holds no kind: SLO document",
            ),
            ("# nothing\n".to_string(), "the file holds no OpenSLO document"),
            (
                format!("apiVersion: openslo/v1\nkind: SLO\nmetadata: {{name: s}}\nspec:\n  service: x\n{rest}"),
                "spec: SLO \"s\" (document 1): needs indicator (an inline SLI) or indicatorRef",
            ),
            (
                slo_with("      ratioMetric:\n        rawType: success\n        raw: {metricSource: {spec: {query: r}}}\n", rest),
                "ratioMetric.raw: SLO \"s\" (document 1): precomputed ratios (raw, rawType) are not supported",
            ),
            (
                slo_with(&ratio("good", "a", "b").replace("counter: true", "counter: false"), rest),
                "ratioMetric.counter: SLO \"s\" (document 1): counter: false",
            ),
            (
                slo_with(&ratio("good", "a", "b").replace("Prometheus", "Datadog"), rest),
                "metricSource.type: SLO \"s\" (document 1): \"Datadog\" is not supported",
            ),
            (
                slo_with("      ratioMetric:\n        total: {metricSource: {spec: {query: t}}}\n", rest),
                "needs good or bad (the numerator), and total",
            ),
            (
                slo_with(&format!("{}        bad: {{metricSource: {{spec: {{query: b}}}}}}\n", ratio("good", "a", "b")), rest),
                "set either good or bad, not both",
            ),
            (
                slo_with("      ratioMetric:\n        good: {metricSource: {spec: {}}}\n        total: {metricSource: {spec: {query: t}}}\n", rest),
                "good.metricSource.spec: SLO \"s\" (document 1): needs query",
            ),
            (
                slo_with(&format!("{}{}", ratio("good", "a", "b"), threshold("q")), rest),
                "set either ratioMetric or thresholdMetric, not both",
            ),
            (
                slo_with(&ratio("good", "a", "b"), rest).replace("  service: svc\n", "  service: ''\n"),
                "spec.service: SLO \"s\" (document 1): must not be empty",
            ),
            (
                slo_with(&ratio("good", "a", "b"), rest).replace("name: s\n", "name: s/x\n"),
                "\"s/x\" is not a valid Vigil SLO name",
            ),
            (
                slo_with(&ratio("good", "a", "b"), rest).replace("metadata:\n  name: s\n", "metadata:\n  name: s\n  labels: {__x: y}\n"),
                "metadata.labels.__x: SLO \"s\" (document 1): \"__x\" starts with __",
            ),
            (
                slo_with(&ratio("good", "a", "b"), rest).replace("metadata:\n  name: s\n", "metadata:\n  name: s\n  labels: {a-b: x, a.b: y}\n"),
                "the label keys \"a-b\" and \"a.b\" both become the Vigil label \"a_b\"",
            ),
            (
                format!("{}---\n{}", slo_with(&ratio("good", "a", "b"), rest), slo_with(&ratio("good", "a", "b"), rest)),
                "metadata.name: SLO \"s\" (document 2): the SLO name \"s\" is already used in service \"svc\" by SLO \"s\" (document 1)",
            ),
            (
                "apiVersion: openslo/v1\nkind: SLI\nmetadata: {name: i}\nspec: {thresholdMetric: {metricSource: {spec: {query: q}}}}\n---\napiVersion: openslo/v1\nkind: SLI\nmetadata: {name: i}\nspec: {thresholdMetric: {metricSource: {spec: {query: q}}}}\n".to_string(),
                "SLI \"i\" (document 2): the SLI name \"i\" is already used by SLI \"i\" (document 1)",
            ),
        ] {
            let err = parse(&text).expect_err(&text);
            assert!(err.contains(want), "{text}\n=> {err}");
        }
    }

    #[test]
    fn fixture_ratio() {
        let (_, result) = fixture("ratio.yaml");
        let files = result.map_err(|e| e.to_string()).expect("valid");
        assert_eq!(files.len(), 1);
        let f = &files[0];
        assert_eq!(f.service, "web-shop");
        let names: Vec<&str> = f.slos.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(
            names,
            vec!["main-page", "checkout-errors", "search-latency"]
        );
        assert_eq!(
            f.slos[0].budgeting,
            Some(Budgeting::RatioTimeslices {
                slice: Duration::from_secs(60)
            })
        );
        assert!(matches!(&f.slos[0].sli, Sli::Ratio(r) if r.good.is_some()));
        assert!(matches!(&f.slos[1].sli, Sli::Ratio(r) if r.errors.is_some()));
        assert_eq!(f.slos[1].group_by, vec!["route".to_string()]);
        assert!(matches!(&f.slos[2].sli, Sli::Latency(l) if l.threshold == 0.5));
    }

    #[test]
    fn fixture_threshold() {
        let (_, result) = fixture("threshold.yaml");
        let files = result.map_err(|e| e.to_string()).expect("valid");
        let slos: Vec<&SloSpec> = files.iter().flat_map(|f| f.slos.iter()).collect();
        assert_eq!(slos.len(), 2);
        assert!(
            matches!(&slos[0].sli, Sli::Threshold(t) if t.aggregate == Aggregate::Sum && t.op == Op::Le && t.value == 1000.0)
        );
        assert!(
            matches!(&slos[1].sli, Sli::Threshold(t) if t.aggregate == Aggregate::Max && t.op == Op::Lt && t.value == 0.5)
        );
        assert_eq!(slos[1].budgeting, Some(Budgeting::Occurrences));
    }

    #[test]
    fn fixture_calendar_month() {
        let (_, result) = fixture("calendar-month.yaml");
        let files = result.map_err(|e| e.to_string()).expect("valid");
        let slos = &files[0].slos;
        let names: Vec<&str> = slos.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(
            names,
            vec![
                "service-availability-internal-objective",
                "service-availability-sla"
            ]
        );
        for s in slos {
            assert_eq!(
                s.window,
                Window::Calendar {
                    unit: CalendarUnit::Month,
                    time_zone: "America/New_York".into()
                }
            );
            assert_eq!(
                s.budgeting,
                Some(Budgeting::Timeslices {
                    slice: Duration::from_secs(60),
                    target: 0.99
                })
            );
        }
        assert!((slos[0].objective - 99.5).abs() < 1e-12);
    }

    /// The converted files written as Vigil rules YAML.
    fn render(f: &SloFile) -> String {
        let q = |s: &str| serde_json::to_string(s).unwrap_or_default();
        let mut out = format!("service: {}\nslos:\n", q(&f.service));
        for s in &f.slos {
            let window = match &s.window {
                Window::Rolling(d) => format!("{}s", d.as_secs()),
                Window::Calendar { unit, time_zone } => {
                    let unit = match unit {
                        CalendarUnit::Week => "week",
                        CalendarUnit::Month => "month",
                        CalendarUnit::Quarter => "quarter",
                    };
                    format!("{{calendar: {unit}, time_zone: {}}}", q(time_zone))
                }
            };
            let budgeting = match &s.budgeting {
                None | Some(Budgeting::Occurrences) => "occurrences".to_string(),
                Some(Budgeting::Timeslices { slice, target }) => format!(
                    "{{timeslices: {{slice: {}s, target: {target}}}}}",
                    slice.as_secs()
                ),
                Some(Budgeting::RatioTimeslices { slice }) => {
                    format!("{{ratio_timeslices: {{slice: {}s}}}}", slice.as_secs())
                }
            };
            let sli = match &s.sli {
                Sli::Ratio(r) => match (&r.errors, &r.good) {
                    (Some(e), _) => {
                        format!("{{ratio: {{errors: {}, total: {}}}}}", q(e), q(&r.total))
                    }
                    (_, g) => format!(
                        "{{ratio: {{good: {}, total: {}}}}}",
                        q(g.as_deref().unwrap_or_default()),
                        q(&r.total)
                    ),
                },
                Sli::Latency(l) => format!(
                    "{{latency: {{histogram: {}, threshold: {}}}}}",
                    q(&l.histogram),
                    l.threshold
                ),
                Sli::Uptime(u) => format!("{{uptime: {{selector: {}}}}}", q(&u.selector)),
                Sli::Threshold(t) => {
                    let agg = match t.aggregate {
                        Aggregate::Sum => "sum",
                        Aggregate::Max => "max",
                        Aggregate::Min => "min",
                        Aggregate::Avg => "avg",
                    };
                    let op = match t.op {
                        Op::Lt => "<",
                        Op::Le => "<=",
                        Op::Gt => ">",
                        Op::Ge => ">=",
                        Op::Eq => "==",
                        Op::Ne => "!=",
                    };
                    format!(
                        "{{threshold: {{selector: {}, aggregate: {agg}, op: {}, value: {}}}}}",
                        q(&t.selector),
                        q(op),
                        t.value
                    )
                }
            };
            out.push_str(&format!(
                "  - name: {}\n    description: {}\n    objective: {}\n    window: {window}\n    budgeting: {budgeting}\n    labels: {}\n    group_by: {}\n    sli: {sli}\n",
                q(&s.name),
                q(&s.description),
                s.objective,
                serde_json::to_string(&s.labels).unwrap_or_default(),
                serde_json::to_string(&s.group_by).unwrap_or_default(),
            ));
        }
        out
    }

    /// What the import produces is what Vigil's own loader makes of the same SLOs: the
    /// conversion passes Vigil's validation and [`parse_openslo_slos`] builds the same [`Slo`]s.
    #[test]
    fn conversions_pass_vigil_validation() {
        for name in ["ratio.yaml", "threshold.yaml", "calendar-month.yaml"] {
            let (text, result) = fixture(name);
            let files = result.map_err(|e| e.to_string()).expect("valid");
            let path = Path::new(name);
            let mut from_vigil = Vec::new();
            for f in &files {
                let rendered = render(f);
                let slos = crate::slo::spec::parse_file(&rendered, path)
                    .map_err(|e| format!("{e}\n{rendered}"))
                    .expect("Vigil accepts the conversion");
                from_vigil.extend(slos);
            }
            let imported = parse_openslo_slos(&text, path).expect("valid");
            assert_eq!(imported, from_vigil, "{name}");
        }
    }

    #[test]
    fn fixture_bad() {
        let (text, result) = fixture("bad.yaml");
        let err = result.expect_err("invalid");
        let shown = err.to_string();
        let paths: Vec<&str> = err.items.iter().map(|p| p.path.as_str()).collect();
        assert_eq!(
            paths,
            vec![
                "spec.ratioMetric.good.metricSource.spec.query",
                "spec.indicatorRef",
                "spec.timeWindow[0].duration",
                "spec.objectives[0].target",
                "spec.indicator.spec.thresholdMetric.metricSource.spec.query",
                "spec.timeWindow[0].calendar.startTime",
                "spec.objectives[0].timeSliceWindow",
            ],
            "{shown}"
        );
        // Every location points at the line holding the key the path ends with.
        let lines: Vec<&str> = text.lines().collect();
        for p in &err.items {
            let (line, col) = p.location.expect("located");
            let leaf = p.path.rsplit('.').next().unwrap_or_default();
            let leaf = leaf.split('[').next().unwrap_or_default();
            let at = lines.get(line - 1).copied().unwrap_or_default();
            assert!(
                at.get(col - 1..).is_some_and(|s| s.starts_with(leaf)),
                "{}: line {line} col {col} is {at:?}",
                p.path
            );
        }
        assert!(
            shown.contains("histogram_quantile() is not supported"),
            "{shown}"
        );
        assert!(
            shown.contains("SLI \"latency-p99\" (document 1)"),
            "{shown}"
        );
        assert!(
            shown.contains("rate() is not supported in a thresholdMetric"),
            "{shown}"
        );
    }
}
