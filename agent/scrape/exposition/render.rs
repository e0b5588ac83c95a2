//! Writing expositions: the inverse of the parser, used for round-trip property tests and
//! for re-serialising parsed entries.
//!
//! [`OwnedSample`] is an owned, easily constructed sample; [`render_text`] and
//! [`render_openmetrics`] write a list of them, and [`write_entry`] writes one parsed
//! [`Entry`]. Numbers are written so that they parse back to the same `f64` bits (except
//! NaN payloads); strings are escaped as each format requires.

use std::fmt::Write as _;

use super::{Entry, Format, Labels, MetricType, Sample};

/// An owned exemplar; see [`OwnedSample`].
#[derive(Debug, Clone, PartialEq)]
pub struct OwnedExemplar {
    /// Label pairs in order.
    pub labels: Vec<(String, String)>,
    /// The value.
    pub value: f64,
    /// Timestamp in milliseconds.
    pub timestamp_ms: Option<i64>,
}

/// An owned sample, for building expositions in tests and converting parsed ones.
#[derive(Debug, Clone, PartialEq)]
pub struct OwnedSample {
    /// Metric name.
    pub name: String,
    /// Label pairs in exposition order (values unescaped).
    pub labels: Vec<(String, String)>,
    /// The value.
    pub value: f64,
    /// Timestamp in milliseconds.
    pub timestamp_ms: Option<i64>,
    /// Exemplar (written only by [`render_openmetrics`]).
    pub exemplar: Option<OwnedExemplar>,
}

impl Sample<'_> {
    /// An owned copy (labels unescaped).
    pub fn to_owned_sample(&self) -> OwnedSample {
        OwnedSample {
            name: self.name.to_string(),
            labels: owned_labels(&self.labels),
            value: self.value,
            timestamp_ms: self.timestamp_ms,
            exemplar: self.exemplar.as_ref().map(|e| OwnedExemplar {
                labels: owned_labels(&e.labels),
                value: e.value,
                timestamp_ms: e.timestamp_ms,
            }),
        }
    }
}

fn owned_labels(l: &Labels<'_>) -> Vec<(String, String)> {
    l.iter()
        .map(|(n, v)| (n.to_string(), v.into_owned()))
        .collect()
}

/// Formats a value so that it parses back exactly in both formats: `NaN`, `+Inf`, `-Inf`,
/// Rust's shortest round-trip decimal for moderate magnitudes, scientific notation otherwise.
pub fn format_value(v: f64) -> String {
    if v.is_nan() {
        "NaN".to_string()
    } else if v == f64::INFINITY {
        "+Inf".to_string()
    } else if v == f64::NEG_INFINITY {
        "-Inf".to_string()
    } else if v == 0.0 || (1e-5..1e16).contains(&v.abs()) {
        format!("{v}")
    } else {
        format!("{v:e}")
    }
}

/// Appends `v` with `\`, `"` and line feeds escaped (label values, OpenMetrics HELP).
pub(crate) fn escape_label_value(out: &mut String, v: &str) {
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

fn escape_help(out: &mut String, v: &str, format: Format) {
    match format {
        Format::OpenMetrics => escape_label_value(out, v),
        Format::Text => {
            for c in v.chars() {
                match c {
                    '\\' => out.push_str("\\\\"),
                    '\n' => out.push_str("\\n"),
                    c => out.push(c),
                }
            }
        }
    }
}

fn write_labels<'s>(out: &mut String, labels: impl Iterator<Item = (&'s str, &'s str)>) {
    let mut first = true;
    for (n, v) in labels {
        out.push(if first { '{' } else { ',' });
        first = false;
        out.push_str(n);
        out.push_str("=\"");
        escape_label_value(out, v);
        out.push('"');
    }
    if !first {
        out.push('}');
    }
}

fn write_timestamp(out: &mut String, ms: i64, format: Format) {
    match format {
        Format::Text => {
            let _ = write!(out, " {ms}");
        }
        Format::OpenMetrics => {
            let sign = if ms < 0 { "-" } else { "" };
            let a = ms.unsigned_abs();
            let _ = write!(out, " {sign}{}.{:03}", a / 1000, a % 1000);
        }
    }
}

fn write_owned(out: &mut String, s: &OwnedSample, format: Format) {
    out.push_str(&s.name);
    write_labels(out, s.labels.iter().map(|(n, v)| (n.as_str(), v.as_str())));
    out.push(' ');
    out.push_str(&format_value(s.value));
    if let Some(ts) = s.timestamp_ms {
        write_timestamp(out, ts, format);
    }
    if format == Format::OpenMetrics
        && let Some(ex) = &s.exemplar
    {
        out.push_str(" # ");
        if ex.labels.is_empty() {
            out.push_str("{}");
        }
        write_labels(out, ex.labels.iter().map(|(n, v)| (n.as_str(), v.as_str())));
        out.push(' ');
        out.push_str(&format_value(ex.value));
        if let Some(ts) = ex.timestamp_ms {
            write_timestamp(out, ts, format);
        }
    }
    out.push('\n');
}

/// Writes `samples` in the text format 0.0.4, one line each, no metadata.
pub fn render_text(samples: &[OwnedSample]) -> String {
    let mut out = String::new();
    for s in samples {
        write_owned(&mut out, s, Format::Text);
    }
    out
}

/// Writes `samples` in OpenMetrics 1.0 (with exemplars), one line each, then `# EOF`.
pub fn render_openmetrics(samples: &[OwnedSample]) -> String {
    let mut out = String::new();
    for s in samples {
        write_owned(&mut out, s, Format::OpenMetrics);
    }
    out.push_str("# EOF\n");
    out
}

/// Appends one parsed entry to `out` in `format`, ending with a line feed. `# UNIT` and
/// `# EOF` are skipped for the text format, and exemplars are dropped there.
pub fn write_entry(out: &mut String, entry: &Entry<'_>, format: Format) {
    match entry {
        Entry::Help { family, text } => {
            out.push_str("# HELP ");
            out.push_str(family);
            out.push(' ');
            escape_help(out, text, format);
            out.push('\n');
        }
        Entry::Type { family, kind } => {
            let kind = match (format, kind) {
                (Format::Text, MetricType::GaugeHistogram) => "histogram",
                (Format::Text, MetricType::StateSet | MetricType::Info) => "gauge",
                (_, k) => k.as_str(format),
            };
            let _ = writeln!(out, "# TYPE {family} {kind}");
        }
        Entry::Unit { family, unit } => {
            if format == Format::OpenMetrics {
                let _ = writeln!(out, "# UNIT {family} {unit}");
            }
        }
        Entry::Eof => {
            if format == Format::OpenMetrics {
                out.push_str("# EOF\n");
            }
        }
        Entry::Sample(s) => write_owned(out, &s.to_owned_sample(), format),
    }
}
