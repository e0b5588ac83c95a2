//! Strict-mode rules: what the specifications require beyond line syntax.
//!
//! The [`Validator`] follows the parser line by line (the parser calls [`Validator::on_meta`]
//! and [`Validator::on_sample`]) and tracks metric families, series and histogram/summary
//! metric points. It enforces, for both formats unless noted:
//! - families are contiguous, metadata comes before a family's samples, at most one
//!   HELP/TYPE/UNIT per family;
//! - no duplicate series (same name and label set) unless timestamps strictly increase;
//! - no duplicate label names, no reserved `__` label names;
//! - counters are not negative (OpenMetrics: samples are `_total`/`_created`, not NaN);
//! - histogram buckets have a numeric `le`, ascending, counts non-decreasing, a `+Inf`
//!   bucket, and `_count` equal to it; summaries have numeric `quantile` labels (ascending in
//!   the text format, within 0..=1 in OpenMetrics);
//! - OpenMetrics only: metrics of a family are not interleaved, integer bucket/count values,
//!   `_sum` iff `_count`, info value 1, stateset values 0/1 with the state label, no unit on
//!   info/stateset, exemplars only on `_total`/`_bucket` with at most 128 characters of labels.
//!
//! Allocation is fine here: strict mode serves `vigil check metrics`, not the scrape loop.

use std::borrow::Cow;
use std::collections::hash_map::Entry as MapEntry;
use std::collections::{HashMap, HashSet, VecDeque};

use super::labels::RawLabel;
use super::render::escape_label_value;
use super::scan;
use super::{Format, MetricType, ParseError, Sample, SampleCols};

/// A metadata line, as seen by the validator.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Meta<'a> {
    Help,
    Type(MetricType),
    Unit(&'a str),
}

impl Meta<'_> {
    fn keyword(&self) -> &'static str {
        match self {
            Meta::Help => "HELP",
            Meta::Type(_) => "TYPE",
            Meta::Unit(_) => "UNIT",
        }
    }
}

/// Whether sample name `name` belongs to family `family` of type `kind`. `generous` is the
/// scrape-mode attribution (like Prometheus: bare counter names, `_created` everywhere);
/// otherwise the suffix rules of `format` apply exactly.
pub(crate) fn belongs(
    name: &str,
    family: &str,
    kind: MetricType,
    format: Format,
    generous: bool,
) -> bool {
    // Per sample: the word-wise compare, not `strip_prefix` (libc's memcmp, byte by byte on
    // musl). A byte prefix of a `str` that is itself a `str` ends on a char boundary.
    if !scan::starts_with(name.as_bytes(), family.as_bytes()) {
        return false;
    }
    name.get(family.len()..)
        .is_some_and(|suffix| suffix_allowed(kind, suffix, format, generous))
}

fn suffix_allowed(kind: MetricType, suffix: &str, format: Format, generous: bool) -> bool {
    let om = format == Format::OpenMetrics;
    match kind {
        // Text-format counters are named like their family, but `<family>_total` (the
        // OpenMetrics spelling) is common in the wild and Prometheus accepts it.
        MetricType::Counter => match suffix {
            "" => !om || generous,
            "_total" => true,
            "_created" => om || generous,
            _ => false,
        },
        MetricType::Gauge | MetricType::Unknown | MetricType::StateSet => suffix.is_empty(),
        MetricType::Histogram => match suffix {
            "_bucket" | "_count" | "_sum" => true,
            "_created" => om || generous,
            _ => false,
        },
        MetricType::GaugeHistogram => matches!(suffix, "_bucket" | "_gcount" | "_gsum"),
        MetricType::Summary => match suffix {
            "" | "_count" | "_sum" => true,
            "_created" => om || generous,
            _ => false,
        },
        MetricType::Info => suffix == "_info" || (generous && suffix.is_empty()),
    }
}

const SUFFIXES: [&str; 8] = [
    "_total", "_created", "_bucket", "_count", "_sum", "_gcount", "_gsum", "_info",
];

/// What the validator remembers of every family it has seen.
#[derive(Debug, Clone, Copy)]
struct Seen {
    kind: MetricType,
    line: usize,
}

/// State of one histogram or summary metric point (one label set without `le`/`quantile`).
#[derive(Debug, Default)]
struct Point {
    /// `{labels}` without the bucket/quantile label, for messages.
    display: String,
    line: usize,
    col: usize,
    ts: Option<i64>,
    last_le: Option<f64>,
    last_bucket: Option<f64>,
    /// Lowest `le` seen: a histogram with a negative threshold must not have a `_sum`.
    min_le: Option<f64>,
    inf: Option<f64>,
    count: Option<(f64, usize, usize)>,
    sum: Option<(usize, usize)>,
    last_quantile: Option<f64>,
    touched: bool,
}

/// The family currently being read.
#[derive(Debug)]
struct Family<'a> {
    name: &'a str,
    kind: MetricType,
    help: bool,
    typ: bool,
    unit: Option<&'a str>,
    samples: bool,
    /// Histogram/summary points by key, in order of appearance.
    points: Vec<Point>,
    point_index: HashMap<String, usize>,
    /// OpenMetrics metric interleaving: keys seen and the last one.
    metrics_seen: HashSet<String>,
    last_metric: Option<String>,
}

impl<'a> Family<'a> {
    fn new(name: &'a str) -> Self {
        Family {
            name,
            kind: MetricType::Unknown,
            help: false,
            typ: false,
            unit: None,
            samples: false,
            points: Vec::new(),
            point_index: HashMap::new(),
            metrics_seen: HashSet::new(),
            last_metric: None,
        }
    }
}

/// What the validator remembers of a series: the line it was last seen on and its timestamp.
#[derive(Debug, Clone, Copy)]
struct SeriesSeen {
    line: usize,
    ts: Option<i64>,
}

/// Strict-mode state for one exposition.
#[derive(Debug)]
pub(crate) struct Validator<'a> {
    format: Format,
    families: HashMap<&'a str, Seen>,
    cur: Option<Family<'a>>,
    series: HashMap<String, SeriesSeen>,
}

/// A label with its value resolved and its column in the line.
struct Lbl<'a> {
    name: &'a str,
    value: Cow<'a, str>,
    col: usize,
}

fn collect_labels<'a>(
    it: impl Iterator<Item = RawLabel<'a>>,
    block_open: Option<usize>,
) -> Vec<Lbl<'a>> {
    let base = block_open.map_or(0, |o| o + 1);
    it.map(|r| Lbl {
        name: r.name,
        value: r.value(),
        col: base + r.offset,
    })
    .collect()
}

/// `{a="x",b="y"}` of `labels` sorted by name, skipping `skip`; `""` when empty.
fn canonical(labels: &[Lbl<'_>], skip: Option<&str>) -> String {
    let mut v: Vec<&Lbl<'_>> = labels.iter().filter(|l| Some(l.name) != skip).collect();
    if v.is_empty() {
        return String::new();
    }
    v.sort_by(|a, b| a.name.cmp(b.name));
    let mut s = String::from("{");
    for (i, l) in v.iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        s.push_str(l.name);
        s.push_str("=\"");
        escape_label_value(&mut s, &l.value);
        s.push('"');
    }
    s.push('}');
    s
}

fn fmt_num(v: f64) -> String {
    super::render::format_value(v)
}

impl<'a> Validator<'a> {
    pub(crate) fn new(format: Format) -> Self {
        Validator {
            format,
            families: HashMap::new(),
            cur: None,
            series: HashMap::new(),
        }
    }

    fn om(&self) -> bool {
        self.format == Format::OpenMetrics
    }

    /// End of input or `# EOF`: close the current family.
    pub(crate) fn finish(&mut self, pending: &mut VecDeque<ParseError>) {
        self.close(pending);
    }

    fn open(&mut self, name: &'a str, line: usize) {
        self.families.entry(name).or_insert(Seen {
            kind: MetricType::Unknown,
            line,
        });
        self.cur = Some(Family::new(name));
    }

    /// Closes the current family, reporting incomplete histograms.
    fn close(&mut self, pending: &mut VecDeque<ParseError>) {
        let Some(mut fam) = self.cur.take() else {
            return;
        };
        let (name, kind) = (fam.name, fam.kind);
        for p in &mut fam.points {
            Self::finish_point(self.format, name, kind, p, pending);
        }
    }

    fn finish_point(
        format: Format,
        fam: &str,
        kind: MetricType,
        p: &mut Point,
        pending: &mut VecDeque<ParseError>,
    ) {
        if !p.touched {
            return;
        }
        p.touched = false;
        if !matches!(kind, MetricType::Histogram | MetricType::GaugeHistogram) {
            return;
        }
        let count_name = if kind == MetricType::Histogram {
            "_count"
        } else {
            "_gcount"
        };
        let sum_name = if kind == MetricType::Histogram {
            "_sum"
        } else {
            "_gsum"
        };
        match p.inf {
            None => pending.push_back(ParseError::at(
                p.line,
                p.col,
                format!("histogram {fam}{} has no le=\"+Inf\" bucket", p.display),
            )),
            Some(inf) => {
                if let Some((c, line, col)) = p.count
                    && c != inf
                {
                    pending.push_back(ParseError::at(
                        line,
                        col,
                        format!(
                            "{fam}{count_name}{} is {} but the le=\"+Inf\" bucket is {}; they must be equal",
                            p.display,
                            fmt_num(c),
                            fmt_num(inf)
                        ),
                    ));
                }
            }
        }
        if format == Format::OpenMetrics {
            match (p.count, p.sum) {
                (Some((_, line, col)), None) => pending.push_back(ParseError::at(
                    line,
                    col,
                    format!(
                        "{fam}{}: {count_name} without {sum_name} (they must appear together)",
                        p.display
                    ),
                )),
                (None, Some((line, col))) => pending.push_back(ParseError::at(
                    line,
                    col,
                    format!(
                        "{fam}{}: {sum_name} without {count_name} (they must appear together)",
                        p.display
                    ),
                )),
                _ => {}
            }
        }
    }

    /// A HELP, TYPE or UNIT line for `name`.
    pub(crate) fn on_meta(
        &mut self,
        meta: Meta<'a>,
        name: &'a str,
        line: usize,
        col: usize,
        pending: &mut VecDeque<ParseError>,
    ) -> Result<(), ParseError> {
        let kw = meta.keyword();
        let same = self.cur.as_ref().is_some_and(|f| f.name == name);
        let mut result = Ok(());
        if !same {
            self.close(pending);
            if let Some(seen) = self.families.get(name) {
                result = Err(ParseError::at(
                    line,
                    col,
                    format!(
                        "metric family {name} is not contiguous: it already appeared at line {} (all lines of a family must be together)",
                        seen.line
                    ),
                ));
            }
            self.open(name, line);
        }
        let om = self.om();
        let Some(fam) = self.cur.as_mut() else {
            return result;
        };
        if same && fam.samples {
            return Err(ParseError::at(
                line,
                col,
                format!(
                    "# {kw} for metric family {name} comes after its samples; metadata must come first"
                ),
            ));
        }
        let dup = match meta {
            Meta::Help => std::mem::replace(&mut fam.help, true),
            Meta::Type(_) => std::mem::replace(&mut fam.typ, true),
            Meta::Unit(u) => fam.unit.replace(u).is_some(),
        };
        if dup {
            return Err(ParseError::at(
                line,
                col,
                format!("duplicate # {kw} line for metric family {name}"),
            ));
        }
        if let Meta::Type(kind) = meta {
            fam.kind = kind;
            if let Some(seen) = self.families.get_mut(name) {
                seen.kind = kind;
            }
        }
        if om
            && matches!(fam.kind, MetricType::Info | MetricType::StateSet)
            && fam.unit.is_some_and(|u| !u.is_empty())
        {
            return Err(ParseError::at(
                line,
                col,
                format!(
                    "metric family {name} of type {} must not have a unit",
                    fam.kind.as_str(self.format)
                ),
            ));
        }
        result
    }

    /// The family of an earlier, closed family that sample name `name` would belong to.
    fn earlier_family_of(&self, name: &str) -> Option<(&'a str, usize)> {
        if let Some((&n, seen)) = self.families.get_key_value(name) {
            return Some((n, seen.line));
        }
        for suffix in SUFFIXES {
            if let Some(base) = name.strip_suffix(suffix)
                && let Some((&n, seen)) = self.families.get_key_value(base)
                && suffix_allowed(seen.kind, suffix, self.format, false)
            {
                return Some((n, seen.line));
            }
        }
        None
    }

    /// A sample line; returns the type of its family.
    pub(crate) fn on_sample(
        &mut self,
        s: &Sample<'a>,
        cols: &SampleCols,
        line: usize,
        pending: &mut VecDeque<ParseError>,
    ) -> Result<MetricType, ParseError> {
        let format = self.format;
        let om = self.om();
        let name = s.name;
        let at = |col: usize, msg: String| ParseError::at(line, col, msg);

        // Which family?
        let fits = self
            .cur
            .as_ref()
            .is_some_and(|f| belongs(name, f.name, f.kind, format, false));
        if !fits {
            if let Some(f) = self.cur.as_ref()
                && f.name == name
            {
                let want = match f.kind {
                    MetricType::Counter => "_total",
                    MetricType::Info => "_info",
                    MetricType::Histogram | MetricType::GaugeHistogram => "_bucket",
                    _ => "",
                };
                return Err(at(
                    cols.name,
                    format!(
                        "sample {name} of {} family {name} needs a suffix such as {want} ({name}{want})",
                        f.kind.as_str(format)
                    ),
                ));
            }
            if let Some((fam, l)) = self.earlier_family_of(name) {
                return Err(at(
                    cols.name,
                    format!(
                        "metric family {fam} is not contiguous: it already appeared at line {l} (all lines of a family must be together)"
                    ),
                ));
            }
            self.close(pending);
            self.open(name, line);
        }
        let Some(fam) = self.cur.as_mut() else {
            return Ok(MetricType::Unknown);
        };
        fam.samples = true;
        let kind = fam.kind;
        let fam_name = fam.name;
        let suffix = name.get(fam_name.len()..).unwrap_or_default();

        // Label names.
        let labels = collect_labels(s.labels.raw_iter(), cols.labels);
        let mut sorted: Vec<&Lbl<'_>> = labels.iter().collect();
        sorted.sort_by(|a, b| a.name.cmp(b.name).then(a.col.cmp(&b.col)));
        for w in sorted.windows(2) {
            if let [a, b] = w
                && a.name == b.name
            {
                return Err(at(
                    b.col,
                    format!("duplicate label name {:?} in sample {name}", b.name),
                ));
            }
        }
        if let Some(l) = labels.iter().find(|l| l.name.starts_with("__")) {
            return Err(at(
                l.col,
                format!(
                    "label name {:?} is reserved (names starting with __ are for internal use)",
                    l.name
                ),
            ));
        }

        // Duplicate series and timestamps.
        let key = format!("{name}{}", canonical(&labels, None));
        match self.series.entry(key) {
            MapEntry::Occupied(mut e) => {
                let prev = *e.get();
                match (prev.ts, s.timestamp_ms) {
                    (Some(p), Some(n)) if n > p => {
                        e.insert(SeriesSeen { line, ts: Some(n) });
                    }
                    (Some(p), Some(n)) => {
                        return Err(at(
                            cols.timestamp.unwrap_or(cols.value),
                            format!(
                                "timestamp {n} of series {} is not after the previous one ({p} at line {}); timestamps of a series must increase",
                                e.key(),
                                prev.line
                            ),
                        ));
                    }
                    _ => {
                        return Err(at(
                            cols.name,
                            format!(
                                "duplicate series {} (first seen at line {})",
                                e.key(),
                                prev.line
                            ),
                        ));
                    }
                }
            }
            MapEntry::Vacant(e) => {
                e.insert(SeriesSeen {
                    line,
                    ts: s.timestamp_ms,
                });
            }
        }

        // OpenMetrics: the metrics (label sets) of a family must not be interleaved.
        let point_label = match kind {
            MetricType::Histogram | MetricType::GaugeHistogram if suffix == "_bucket" => Some("le"),
            MetricType::Summary if suffix.is_empty() => Some("quantile"),
            MetricType::StateSet => Some(fam_name),
            _ => None,
        };
        let metric_key = canonical(&labels, point_label);
        if om && fam.last_metric.as_deref() != Some(metric_key.as_str()) {
            if fam.metrics_seen.contains(&metric_key) {
                return Err(at(
                    cols.name,
                    format!(
                        "metric {fam_name}{metric_key} is interleaved with other metrics of its family; keep its samples together"
                    ),
                ));
            }
            fam.metrics_seen.insert(metric_key.clone());
            fam.last_metric = Some(metric_key.clone());
        }

        let v = s.value;
        let value_col = cols.value;
        let find = |n: &str| labels.iter().find(|l| l.name == n);
        let is_int = |v: f64| v.is_finite() && v.fract() == 0.0;
        match kind {
            MetricType::Counter => {
                let total = suffix == "_total" || (!om && suffix.is_empty());
                if total {
                    if om && v.is_nan() {
                        return Err(at(value_col, format!("counter {name} must not be NaN")));
                    }
                    if v < 0.0 {
                        return Err(at(
                            value_col,
                            format!("counter {name} has negative value {}", fmt_num(v)),
                        ));
                    }
                }
            }
            MetricType::Histogram | MetricType::GaugeHistogram => {
                if om
                    && suffix != "_bucket"
                    && let Some(l) = find("le")
                {
                    return Err(at(
                        l.col,
                        format!("{name} must not have an \"le\" label (only _bucket samples do)"),
                    ));
                }
                let point = Self::point(
                    fam,
                    &metric_key,
                    line,
                    cols.name,
                    s.timestamp_ms,
                    pending,
                    format,
                );
                match suffix {
                    "_bucket" => {
                        let Some(le) = find("le") else {
                            return Err(at(
                                cols.name,
                                format!("histogram bucket {name} has no \"le\" label"),
                            ));
                        };
                        let lef = scan::parse_float(le.value.as_bytes())
                            .filter(|f| !f.is_nan())
                            .ok_or_else(|| {
                                at(
                                    le.col,
                                    format!("\"le\" label value {:?} is not a number", le.value),
                                )
                            })?;
                        // Record the bucket before judging it, so one bad bucket does not
                        // also cause a "no +Inf bucket" error for its histogram.
                        let prev_le = point
                            .last_le
                            .replace(point.last_le.map_or(lef, |p| p.max(lef)));
                        let prev_bucket = point.last_bucket.replace(v);
                        point.min_le = Some(point.min_le.map_or(lef, |m| m.min(lef)));
                        if lef == f64::INFINITY {
                            point.inf = Some(v);
                        }
                        if v.is_nan() || v < 0.0 {
                            return Err(at(
                                value_col,
                                format!(
                                    "bucket count {} must be a non-negative number",
                                    fmt_num(v)
                                ),
                            ));
                        }
                        if om && !is_int(v) {
                            return Err(at(
                                value_col,
                                format!("bucket count {} must be an integer", fmt_num(v)),
                            ));
                        }
                        if let Some(prev) = prev_le
                            && lef <= prev
                        {
                            return Err(at(
                                le.col,
                                format!(
                                    "histogram buckets must be sorted by increasing \"le\": le=\"{}\" comes after le=\"{}\"",
                                    le.value,
                                    fmt_num(prev)
                                ),
                            ));
                        }
                        if let Some(prev) = prev_bucket
                            && v < prev
                        {
                            return Err(at(
                                value_col,
                                format!(
                                    "bucket counts must not decrease: {} after {}",
                                    fmt_num(v),
                                    fmt_num(prev)
                                ),
                            ));
                        }
                        if let Some(ex) = &s.exemplar
                            && ex.value > lef
                        {
                            return Err(at(
                                cols.exemplar_value,
                                format!(
                                    "exemplar value {} is above the bucket's le=\"{}\"",
                                    fmt_num(ex.value),
                                    le.value
                                ),
                            ));
                        }
                    }
                    "_count" | "_gcount" => {
                        point.count = Some((v, line, cols.name));
                        if v.is_nan() || v < 0.0 || (om && !is_int(v)) {
                            return Err(at(
                                value_col,
                                format!(
                                    "{name} must be a non-negative integer, not {}",
                                    fmt_num(v)
                                ),
                            ));
                        }
                    }
                    "_sum" | "_gsum" => {
                        point.sum = Some((line, cols.name));
                        if om && v.is_nan() {
                            return Err(at(value_col, format!("{name} must not be NaN")));
                        }
                        // OpenMetrics: a histogram's Sum must not be negative, and a histogram
                        // with a negative bucket threshold must not have a Sum at all (gauge
                        // histograms may go negative).
                        if om && suffix == "_sum" {
                            if point.min_le.is_some_and(|m| m < 0.0) {
                                return Err(at(
                                    cols.name,
                                    format!(
                                        "{name}: a histogram with a negative bucket threshold must not have a _sum"
                                    ),
                                ));
                            }
                            if v < 0.0 {
                                return Err(at(
                                    value_col,
                                    format!("{name} must not be negative, not {}", fmt_num(v)),
                                ));
                            }
                        }
                    }
                    _ => {}
                }
            }
            MetricType::Summary => {
                let point = Self::point(
                    fam,
                    &metric_key,
                    line,
                    cols.name,
                    s.timestamp_ms,
                    pending,
                    format,
                );
                match suffix {
                    "" => {
                        let Some(q) = find("quantile") else {
                            return Err(at(
                                cols.name,
                                format!(
                                    "summary sample {name} needs a \"quantile\" label (or the _sum/_count suffix)"
                                ),
                            ));
                        };
                        let qf = scan::parse_float(q.value.as_bytes())
                            .filter(|f| !f.is_nan())
                            .ok_or_else(|| {
                                at(
                                    q.col,
                                    format!(
                                        "\"quantile\" label value {:?} is not a number",
                                        q.value
                                    ),
                                )
                            })?;
                        if om && !(0.0..=1.0).contains(&qf) {
                            return Err(at(
                                q.col,
                                format!("quantile {} must be between 0 and 1", q.value),
                            ));
                        }
                        if om && v < 0.0 {
                            return Err(at(
                                value_col,
                                format!("quantile value {} must not be negative", fmt_num(v)),
                            ));
                        }
                        if !om {
                            if let Some(prev) = point.last_quantile
                                && qf <= prev
                            {
                                return Err(at(
                                    q.col,
                                    format!(
                                        "quantiles must be sorted in increasing order: quantile=\"{}\" comes after {}",
                                        q.value,
                                        fmt_num(prev)
                                    ),
                                ));
                            }
                            point.last_quantile = Some(qf);
                        }
                    }
                    "_count" if v.is_nan() || v < 0.0 || (om && !is_int(v)) => {
                        return Err(at(
                            value_col,
                            format!("{name} must be a non-negative integer, not {}", fmt_num(v)),
                        ));
                    }
                    "_sum" if om && (v.is_nan() || v < 0.0) => {
                        return Err(at(
                            value_col,
                            format!("{name} must not be negative or NaN, not {}", fmt_num(v)),
                        ));
                    }
                    _ => {}
                }
            }
            MetricType::Info if om && v != 1.0 => {
                return Err(at(
                    value_col,
                    format!(
                        "info metric {name} must have the value 1, not {}",
                        fmt_num(v)
                    ),
                ));
            }
            MetricType::StateSet if om => {
                if v != 0.0 && v != 1.0 {
                    return Err(at(
                        value_col,
                        format!("stateset {name} values must be 0 or 1, not {}", fmt_num(v)),
                    ));
                }
                if find(fam_name).is_none() {
                    return Err(at(
                        cols.name,
                        format!(
                            "stateset sample {name} needs a label named after its family ({fam_name}=\"<state>\")"
                        ),
                    ));
                }
            }
            _ => {}
        }

        if let Some(ex) = &s.exemplar {
            let ex_col = cols.exemplar.unwrap_or(cols.value);
            let allowed = (kind == MetricType::Counter && suffix == "_total")
                || (matches!(kind, MetricType::Histogram | MetricType::GaugeHistogram)
                    && suffix == "_bucket");
            if !allowed {
                return Err(at(
                    ex_col,
                    "exemplars are only allowed on counter _total and histogram _bucket samples"
                        .to_string(),
                ));
            }
            let ex_labels = collect_labels(ex.labels.raw_iter(), Some(ex_col));
            let chars: usize = ex_labels
                .iter()
                .map(|l| l.name.chars().count() + l.value.chars().count())
                .sum();
            if chars > 128 {
                return Err(at(
                    ex_col,
                    format!("exemplar labels are {chars} characters long; at most 128 are allowed"),
                ));
            }
            let mut names: Vec<&str> = ex_labels.iter().map(|l| l.name).collect();
            names.sort_unstable();
            if let Some(w) = names.windows(2).find(|w| w.first() == w.get(1)) {
                return Err(at(
                    ex_col,
                    format!(
                        "duplicate label name {:?} in exemplar",
                        w.first().unwrap_or(&"")
                    ),
                ));
            }
        }
        Ok(kind)
    }

    /// The point for `key` in `fam`, created on first use. A different timestamp than the
    /// point's last one starts a new metric point (OpenMetrics allows several per metric).
    fn point<'f>(
        fam: &'f mut Family<'a>,
        key: &str,
        line: usize,
        col: usize,
        ts: Option<i64>,
        pending: &mut VecDeque<ParseError>,
        format: Format,
    ) -> &'f mut Point {
        let idx = match fam.point_index.get(key) {
            Some(&i) => i,
            None => {
                fam.points.push(Point {
                    display: key.to_string(),
                    line,
                    col,
                    ts,
                    ..Point::default()
                });
                let i = fam.points.len() - 1;
                fam.point_index.insert(key.to_string(), i);
                i
            }
        };
        let (name, kind) = (fam.name, fam.kind);
        // `idx` is always in range: it was just pushed or taken from the index.
        let last = fam.points.len() - 1;
        let p = &mut fam.points[idx.min(last)];
        if p.touched && p.ts != ts {
            Self::finish_point(format, name, kind, p, pending);
            *p = Point {
                display: key.to_string(),
                line,
                col,
                ts,
                ..Point::default()
            };
        }
        if !p.touched {
            p.line = line;
            p.col = col;
            p.ts = ts;
            p.touched = true;
        }
        p
    }
}
