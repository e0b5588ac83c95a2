//! Differential tests of the exposition parser against an independent implementation: the
//! Python `prometheus_client` package's parsers (`prometheus_client.parser` for the text format
//! 0.0.4, `prometheus_client.openmetrics.parser` for OpenMetrics 1.0), run through
//! `scripts/exposition_ref.py` with the test venv's interpreter (`VIGIL_TEST_PYTHON`).
//!
//! - `corpus_matches_prometheus_client`: every file of the real-world corpus
//!   (`VIGIL_EXPOSITION_CORPUS`, else `shared/corpus` beside the repository) must give the same
//!   samples in the same order from our parser (scrape mode) and from Python: names, label sets
//!   (values unescaped), values (bit-equal after parsing, NaN == NaN), timestamps and, for
//!   OpenMetrics, exemplars.
//! - `conformance_fixtures_match_prometheus_client`: the same over the valid cases of the
//!   parser's conformance fixtures (`tests/fixtures/exposition/good`): small edge cases, many
//!   with timestamps and exemplars, which the corpus has few of.
//! - `tricky_cases_across_parsers`: small hand-written inputs (label values with `,` `=` `}` and
//!   escapes, names with `:`, NaN/Inf, timestamps, OpenMetrics exemplars) run through our parser,
//!   Python, `prometheus-parse` 0.2 and `prom_text_format_parser` 0.1 and compared with the
//!   samples the specification says they contain. It asserts only about our parser and Python;
//!   run it with `--nocapture` to print the comparison table used in `docs/parser.md`.
//!
//! Normalisations and exclusions (each one narrow and explained where it is applied):
//! - Text format, counters: Python's text parser converts counters to the OpenMetrics data
//!   model. A sample named exactly like its `counter` family is renamed `<name>_total` unless the
//!   family name already ends in `_total` (see `build_metric` in `prometheus_client/parser.py`).
//!   We apply the same rename to our samples, tracking families the way Python does
//!   ([`PyFamilies`]); nothing else is renamed.
//! - Text format, timestamps: Python returns `int_ms / 1000` as a float; we compare it bit for
//!   bit with our milliseconds divided by 1000 in `f64` (both are one correctly rounded
//!   division of the same integer).
//! - OpenMetrics timestamps: Python returns an exact `Timestamp(sec, nsec)` for plain decimals;
//!   we compare whole milliseconds, truncated toward zero as our parser documents. Python
//!   mis-parses two spellings: with an exponent (`1.7268398142239082e+09` becomes
//!   `Timestamp(1, 726839814)`: it splits at the `.` and reads the first nine characters after
//!   it as nanoseconds) and negative values above -1 (`-0.5` becomes +0.5: the sign is on the
//!   integer part, which is 0). Only when Python disagrees on exactly such a token do we check
//!   our value against the token parsed as `f64` × 1000 instead (within 1 ms), and say so in
//!   the output.
//! - Integer values: Python parses `-0` as the integer 0, so integer values compare with `==`
//!   (0 == -0) rather than bit for bit.
//! - `prometheus-alltypes.5mfs.om.txt` violates OpenMetrics MUSTs that Python enforces and that
//!   scrape mode (like Prometheus) deliberately does not: a histogram with negative buckets has
//!   a negative `_sum` ("Count and Sum values are counters so MUST NOT be NaN or negative"; with
//!   negative buckets there must be no `_sum` at all), and a summary has a negative quantile
//!   value and a negative `_sum`. The four offending lines (plus the histogram's `_count`,
//!   because Python then insists on a `_sum` next to a `_count`) are removed from Python's copy
//!   of the input and their samples skipped on our side; everything else in the file is
//!   compared. See [`EXCLUSIONS`].
//! - Fixture `om_multiple_metricpoints.om` (a summary with two MetricPoints per series, at
//!   timestamps 123 and 456): Python silently drops the second `_sum` MetricPoint of each
//!   series (a bug in its duplicate detection, see [`EXCLUSIONS`]); those two lines are
//!   excluded the same way.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use serde::Deserialize;
use vigil::scrape::exposition::{Entry, Format, MetricType, Mode, Parser, detect_format};

/// The prometheus-client version the test venv must have (scripts/test-services.sh installs it).
const PROMETHEUS_CLIENT_PIN: &str = "prometheus-client==0.26.0";

/// Lines removed from Python's input (and whose samples are skipped on our side): file name,
/// exact line prefix, why.
const EXCLUSIONS: &[(&str, &str, &str)] = &[
    (
        "prometheus-alltypes.5mfs.om.txt",
        "rpc_durations_histogram_seconds_sum ",
        "negative _sum of a histogram with negative buckets (OpenMetrics: no _sum then)",
    ),
    (
        "prometheus-alltypes.5mfs.om.txt",
        "rpc_durations_histogram_seconds_count ",
        "Python requires _sum when _count is present, and the _sum is excluded above",
    ),
    (
        "prometheus-alltypes.5mfs.om.txt",
        "rpc_durations_seconds{service=\"normal\",quantile=\"0.5\"} ",
        "negative quantile value (OpenMetrics: quantile values MUST NOT be negative)",
    ),
    (
        "prometheus-alltypes.5mfs.om.txt",
        "rpc_durations_seconds_sum{service=\"normal\"} ",
        "negative summary _sum (OpenMetrics: Sum values MUST NOT be negative)",
    ),
    // Python bug: it drops the second MetricPoint (timestamp 456) of each `_sum` series as a
    // "duplicate due to timestamp truncation", because its set of series seen at the group's
    // current timestamp is reset when the group changes but not when the timestamp does, so
    // `_sum` (seen at 123) counts as already seen at 456.
    (
        "om_multiple_metricpoints.om",
        "foo_seconds_sum{a=\"bb\"} 0 456",
        "prometheus_client drops this valid later MetricPoint (see above)",
    ),
    (
        "om_multiple_metricpoints.om",
        "foo_seconds_sum{a=\"ccc\"} 0 456",
        "prometheus_client drops this valid later MetricPoint (see above)",
    ),
];

// ---------------------------------------------------------------------------------------------
// Python side
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Deserialize)]
struct PyTs {
    kind: String,
    #[serde(default)]
    v: Option<String>,
    #[serde(default)]
    sec: Option<i64>,
    #[serde(default)]
    nsec: Option<i64>,
}

#[derive(Debug, Clone, Deserialize)]
struct PyExemplar {
    labels: Vec<(String, String)>,
    value: String,
    int: bool,
    ts: Option<PyTs>,
}

#[derive(Debug, Clone, Deserialize)]
struct PySample {
    name: String,
    labels: Vec<(String, String)>,
    value: String,
    int: bool,
    ts: Option<PyTs>,
    exemplar: Option<PyExemplar>,
}

fn python() -> String {
    common::service("VIGIL_TEST_PYTHON", "the test Python venv")
}

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/exposition_ref.py")
}

fn fmt_arg(format: Format) -> &'static str {
    match format {
        Format::Text => "text",
        Format::OpenMetrics => "openmetrics",
    }
}

/// Runs the reference parser on `body`; `Err` is Python's error message when it rejects it.
fn run_python(py: &str, body: &[u8], format: Format) -> Result<Vec<PySample>, String> {
    assert!(script().is_file(), "{} is missing", script().display());
    let mut file = tempfile::NamedTempFile::new().expect("temp file");
    std::io::Write::write_all(&mut file, body).expect("write temp file");
    let out = Command::new(py)
        .arg(script())
        .arg(file.path())
        .arg(fmt_arg(format))
        .output()
        .unwrap_or_else(|e| panic!("cannot run {py}: {e}"));
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    match out.status.code() {
        Some(0) => {}
        Some(3) => return Err(stderr.trim().to_string()),
        _ => panic!(
            "{} failed ({}): {stderr}\nIs prometheus_client installed in the venv? \
             `{py} -m pip install {PROMETHEUS_CLIENT_PIN}` (scripts/test-services.sh does it)",
            script().display(),
            out.status
        ),
    }
    let stdout = String::from_utf8(out.stdout).expect("script output is UTF-8 (ASCII JSON)");
    Ok(stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad JSON {l:?}: {e}")))
        .collect())
}

fn parse_f64(s: &str) -> f64 {
    match s {
        "NaN" => f64::NAN,
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        _ => s
            .parse()
            .unwrap_or_else(|e| panic!("unparsable number {s:?} from Python: {e}")),
    }
}

/// Our value against Python's: bit-equal (NaN == NaN), or `==` when Python saw an integer.
fn same_value(ours: f64, py: &str, py_int: bool) -> bool {
    let p = parse_f64(py);
    if ours.is_nan() || p.is_nan() {
        return ours.is_nan() && p.is_nan();
    }
    if py_int {
        ours == p
    } else {
        ours.to_bits() == p.to_bits()
    }
}

/// Whether Python's OpenMetrics timestamp parsing is known to be wrong for `token` (see the
/// module docs): exponent notation, or a negative value above -1.
fn python_ts_unreliable(token: &str) -> bool {
    token.contains(['e', 'E']) || token.starts_with("-0")
}

/// Compares one timestamp. `token` is the raw timestamp text from the exposition.
fn check_ts(
    ours: Option<i64>,
    py: Option<&PyTs>,
    token: Option<&str>,
    format: Format,
    notes: &mut Vec<String>,
) -> Result<(), String> {
    let (ours, py) = match (ours, py) {
        (None, None) => return Ok(()),
        (Some(o), Some(p)) => (o, p),
        (o, p) => return Err(format!("timestamp: ours {o:?}, Python {p:?}")),
    };
    match format {
        Format::Text => {
            let want = parse_f64(py.v.as_deref().unwrap_or_default());
            let got = ours as f64 / 1000.0;
            if got.to_bits() != want.to_bits() {
                return Err(format!(
                    "timestamp: ours {ours} ms = {got:?} s, Python {want:?} s"
                ));
            }
        }
        Format::OpenMetrics => {
            let want = match py.kind.as_str() {
                "sec_ns" => {
                    let sec = i128::from(py.sec.unwrap_or_default());
                    let nsec = i128::from(py.nsec.unwrap_or_default());
                    // nsec carries the sign of sec; truncate toward zero, as our parser does.
                    sec * 1000 + nsec / 1_000_000
                }
                _ => {
                    let s = parse_f64(py.v.as_deref().unwrap_or_default());
                    (s * 1000.0).trunc() as i128
                }
            };
            if i128::from(ours) == want {
                return Ok(());
            }
            // Only for the spellings Python is known to get wrong: check against the token.
            if let Some(tok) = token.filter(|t| python_ts_unreliable(t)) {
                let exact = parse_f64(tok) * 1000.0;
                if (ours as f64 - exact).abs() > 1.0 {
                    return Err(format!(
                        "timestamp {tok:?}: ours {ours} ms, expected about {exact} ms"
                    ));
                }
                notes.push(format!(
                    "timestamp {tok:?}: Python gives {want} ms (known Python bug), ours {ours} ms matches the token"
                ));
                return Ok(());
            }
            return Err(format!(
                "timestamp: ours {ours} ms, Python {py:?} = {want} ms"
            ));
        }
    }
    Ok(())
}

fn sorted(mut l: Vec<(String, String)>) -> Vec<(String, String)> {
    l.sort();
    l
}

// ---------------------------------------------------------------------------------------------
// Our side
// ---------------------------------------------------------------------------------------------

/// One of our samples, owned, with where it came from.
#[derive(Debug, Clone)]
struct OurSample {
    line: usize,
    /// The whole line of the exposition.
    text: String,
    name: String,
    labels: Vec<(String, String)>,
    value: f64,
    timestamp_ms: Option<i64>,
    /// Raw timestamp token.
    ts_token: Option<String>,
    exemplar: Option<OurExemplar>,
}

#[derive(Debug, Clone)]
struct OurExemplar {
    labels: Vec<(String, String)>,
    value: f64,
    timestamp_ms: Option<i64>,
    ts_token: Option<String>,
}

/// Python's family tracking in the text parser, just enough to know which samples it renames
/// to `<name>_total` (see the module docs).
#[derive(Default)]
struct PyFamilies {
    name: String,
    kind: Option<MetricType>,
}

impl PyFamilies {
    fn help(&mut self, family: &str) {
        if family != self.name {
            self.name = family.to_string();
            self.kind = None;
        }
    }

    fn type_(&mut self, family: &str, kind: MetricType) {
        self.name = family.to_string();
        self.kind = Some(kind);
    }

    /// The name Python reports for a sample called `name`.
    fn sample_name(&mut self, name: &str) -> String {
        let allowed: &[&str] = match self.kind {
            Some(MetricType::Summary) => &["_count", "_sum", ""],
            Some(MetricType::Histogram) => &["_count", "_sum", "_bucket"],
            _ => &[""],
        };
        let in_family = !self.name.is_empty()
            && name
                .strip_prefix(self.name.as_str())
                .is_some_and(|suffix| allowed.contains(&suffix));
        if !in_family {
            // Python starts an anonymous untyped family; the next samples need a new HELP/TYPE.
            self.name.clear();
            self.kind = None;
            return name.to_string();
        }
        if self.kind == Some(MetricType::Counter) && !self.name.ends_with("_total") {
            format!("{name}_total")
        } else {
            name.to_string()
        }
    }
}

/// Whitespace-separated tokens after byte offset `from` of `line`.
fn tokens_after(line: &str, from: usize) -> Vec<&str> {
    line.get(from..)
        .unwrap_or_default()
        .split([' ', '\t'])
        .filter(|t| !t.is_empty())
        .collect()
}

/// Parses `body` in scrape mode into owned samples, applying the text-format counter rename.
fn ours(body: &[u8], format: Format) -> Result<Vec<OurSample>, String> {
    let base = body.as_ptr() as usize;
    let offset_of = |s: &str| s.as_ptr() as usize - base;
    let mut fams = PyFamilies::default();
    let mut out = Vec::new();
    let mut line_no = 1;
    let mut scanned = 0;
    for entry in Parser::new(body, format, Mode::Scrape) {
        let s = match entry.map_err(|e| e.to_string())? {
            Entry::Sample(s) => s,
            Entry::Help { family, .. } => {
                fams.help(family);
                continue;
            }
            Entry::Type { family, kind } => {
                fams.type_(family, kind);
                continue;
            }
            _ => continue,
        };
        let at = s.series.as_ptr() as usize - base;
        line_no += body[scanned..at].iter().filter(|&&c| c == b'\n').count();
        scanned = at;
        let line_start = body[..at]
            .iter()
            .rposition(|&c| c == b'\n')
            .map_or(0, |p| p + 1);
        let line_end = body[at..]
            .iter()
            .position(|&c| c == b'\n')
            .map_or(body.len(), |p| at + p);
        let line = std::str::from_utf8(&body[line_start..line_end]).expect("sample line is UTF-8");
        let after_series = at + s.series.len() - line_start;
        let toks = tokens_after(line, after_series);
        // toks: value [timestamp] [# {exemplar labels...}]
        let ts_token = toks
            .get(1)
            .filter(|t| !t.starts_with('#'))
            .map(|t| t.to_string());
        let exemplar = s.exemplar.as_ref().map(|e| {
            let raw = e.labels.as_raw();
            // Just past the exemplar's closing brace.
            let end = offset_of(raw) + raw.len() + 1 - line_start;
            let et = tokens_after(line, end);
            OurExemplar {
                labels: sorted(
                    e.labels
                        .iter()
                        .map(|(n, v)| (n.to_string(), v.into_owned()))
                        .collect(),
                ),
                value: e.value,
                timestamp_ms: e.timestamp_ms,
                ts_token: et.get(1).map(|t| t.to_string()),
            }
        });
        let name = match format {
            Format::Text => fams.sample_name(s.name),
            Format::OpenMetrics => s.name.to_string(),
        };
        out.push(OurSample {
            line: line_no,
            text: line.to_string(),
            name,
            labels: sorted(
                s.labels
                    .iter()
                    .map(|(n, v)| (n.to_string(), v.into_owned()))
                    .collect(),
            ),
            value: s.value,
            timestamp_ms: s.timestamp_ms,
            ts_token,
            exemplar,
        });
    }
    Ok(out)
}

/// Compares one sample; `Err` describes the first difference.
fn compare(
    o: &OurSample,
    p: &PySample,
    format: Format,
    notes: &mut Vec<String>,
) -> Result<(), String> {
    if o.name != p.name {
        return Err(format!("name: ours {:?}, Python {:?}", o.name, p.name));
    }
    let pl = sorted(p.labels.clone());
    if o.labels != pl {
        return Err(format!("labels: ours {:?}, Python {pl:?}", o.labels));
    }
    if !same_value(o.value, &p.value, p.int) {
        return Err(format!(
            "value: ours {:?} (bits {:#x}), Python {}",
            o.value,
            o.value.to_bits(),
            p.value
        ));
    }
    check_ts(
        o.timestamp_ms,
        p.ts.as_ref(),
        o.ts_token.as_deref(),
        format,
        notes,
    )?;
    match (&o.exemplar, &p.exemplar) {
        (None, None) => {}
        (Some(oe), Some(pe)) => {
            let pl = sorted(pe.labels.clone());
            if oe.labels != pl {
                return Err(format!(
                    "exemplar labels: ours {:?}, Python {pl:?}",
                    oe.labels
                ));
            }
            if !same_value(oe.value, &pe.value, pe.int) {
                return Err(format!(
                    "exemplar value: ours {:?}, Python {}",
                    oe.value, pe.value
                ));
            }
            check_ts(
                oe.timestamp_ms,
                pe.ts.as_ref(),
                oe.ts_token.as_deref(),
                format,
                notes,
            )
            .map_err(|e| format!("exemplar {e}"))?;
        }
        (oe, pe) => {
            return Err(format!(
                "exemplar: ours {:?}, Python {:?}",
                oe.is_some(),
                pe.is_some()
            ));
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Corpus differential
// ---------------------------------------------------------------------------------------------

fn corpus_dir() -> PathBuf {
    std::env::var_os("VIGIL_EXPOSITION_CORPUS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/corpus")))
}

fn corpus_files() -> Vec<(String, Vec<u8>)> {
    let dir = corpus_dir();
    let rd = std::fs::read_dir(&dir).unwrap_or_else(|e| {
        panic!(
            "cannot read the exposition corpus at {}: {e}; set VIGIL_EXPOSITION_CORPUS",
            dir.display()
        )
    });
    let mut files: Vec<(String, Vec<u8>)> = rd
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "txt"))
        .map(|p| {
            let body = std::fs::read(&p).unwrap_or_else(|e| panic!("read {}: {e}", p.display()));
            let name = p
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            (name, body)
        })
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no *.txt files in {}", dir.display());
    files
}

/// The format of a corpus file: by its name (`*.om.txt`, `*.prom.txt`), else detected.
fn format_of(name: &str, body: &[u8]) -> Format {
    if name.ends_with(".om.txt") {
        Format::OpenMetrics
    } else if name.ends_with(".prom.txt") {
        Format::Text
    } else {
        detect_format(body)
    }
}

fn excluded_prefixes(file: &str) -> Vec<&'static str> {
    EXCLUSIONS
        .iter()
        .filter(|(f, _, _)| *f == file)
        .map(|(_, prefix, _)| *prefix)
        .collect()
}

/// Compares our parser with Python on one file; returns a summary line and the differences.
fn diff_file(py: &str, name: &str, body: &[u8], format: Format) -> (String, Vec<String>) {
    let excluded = excluded_prefixes(name);
    // Python's copy of the input without the excluded lines.
    let text = String::from_utf8_lossy(body);
    let mut py_body = String::with_capacity(text.len());
    for line in text.split_inclusive('\n') {
        if !excluded.iter().any(|p| line.starts_with(p)) {
            py_body.push_str(line);
        }
    }
    let want = match run_python(py, py_body.as_bytes(), format) {
        Ok(v) => v,
        Err(e) => return (String::new(), vec![format!("Python rejects the file: {e}")]),
    };
    let got = match ours(body, format) {
        Ok(v) => v,
        Err(e) => {
            return (
                String::new(),
                vec![format!("our parser rejects the file: {e}")],
            );
        }
    };
    let total = got.len();
    let got: Vec<OurSample> = got
        .into_iter()
        .filter(|s| !excluded.iter().any(|p| s.text.starts_with(p)))
        .collect();
    let skipped = total - got.len();
    let mut notes = Vec::new();
    let mut diffs = Vec::new();
    for (i, (o, p)) in got.iter().zip(&want).enumerate() {
        if let Err(e) = compare(o, p, format, &mut notes) {
            diffs.push(format!("sample #{i}, line {}: {e}\n    {}", o.line, o.text));
        }
    }
    if got.len() != want.len() {
        let (first_extra, who) = if got.len() > want.len() {
            (
                got.get(want.len())
                    .map(|o| format!("line {}: {}", o.line, o.text)),
                "ours",
            )
        } else {
            (want.get(got.len()).map(|p| format!("{p:?}")), "Python's")
        };
        diffs.push(format!(
            "{} samples from us, {} from Python; first extra one ({who}): {}",
            got.len(),
            want.len(),
            first_extra.unwrap_or_default()
        ));
    }
    let exemplars = got.iter().filter(|s| s.exemplar.is_some()).count();
    let timestamps = got.iter().filter(|s| s.timestamp_ms.is_some()).count();
    let mut summary = format!(
        "{name} ({format:?}): {} samples compared ({exemplars} with exemplars, {timestamps} with timestamps), {skipped} excluded, {} differences",
        got.len().min(want.len()),
        diffs.len()
    );
    if let Some(first) = notes.first() {
        summary.push_str(&format!(
            "\n    {} timestamp(s) checked without Python, e.g. {first}",
            notes.len()
        ));
    }
    (summary, diffs)
}

fn report(results: Vec<(String, String, Vec<String>)>) {
    let mut failures = Vec::new();
    for (name, summary, diffs) in results {
        if !summary.is_empty() {
            eprintln!("{summary}");
        }
        for d in diffs.iter().take(10) {
            failures.push(format!("{name}: {d}"));
        }
        if diffs.len() > 10 {
            failures.push(format!("{name}: ... {} more differences", diffs.len() - 10));
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

#[test]
fn corpus_matches_prometheus_client() {
    let py = python();
    let results = corpus_files()
        .into_iter()
        .map(|(name, body)| {
            let (summary, diffs) = diff_file(&py, &name, &body, format_of(&name, &body));
            (name, summary, diffs)
        })
        .collect();
    report(results);
}

/// The valid cases of the parser's conformance fixtures (`tests/fixtures/exposition/good`, or
/// `$VIGIL_EXPOSITION_FIXTURES/good`): small hand-written edge cases, many with timestamps,
/// which the corpus lacks. Python accepts all of them.
#[test]
fn conformance_fixtures_match_prometheus_client() {
    let py = python();
    let dir = std::env::var_os("VIGIL_EXPOSITION_FIXTURES")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/tests/fixtures/exposition"
            ))
        })
        .join("good");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "om" || x == "prom"))
        .collect();
    files.sort();
    assert!(files.len() > 10, "fixtures in {}", dir.display());
    let mut compared = 0;
    let mut results = Vec::new();
    for path in files {
        let body = std::fs::read(&path).expect("read fixture");
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let format = if path.extension().is_some_and(|x| x == "om") {
            Format::OpenMetrics
        } else {
            Format::Text
        };
        let (summary, diffs) = diff_file(&py, &name, &body, format);
        if diffs.is_empty() {
            compared += 1;
        }
        results.push((name, summary, diffs));
    }
    eprintln!("{compared} fixture files identical");
    report(results);
}

// ---------------------------------------------------------------------------------------------
// Tricky cases, four parsers
// ---------------------------------------------------------------------------------------------

/// Label pairs, sorted.
type LabelPairs = Vec<(String, String)>;

/// An exemplar in a parser-neutral form: labels, value, timestamp in milliseconds.
type NormExemplar = (LabelPairs, f64, Option<i64>);

/// A sample in a parser-neutral form; labels sorted.
#[derive(Debug, Clone)]
struct Norm {
    name: String,
    labels: LabelPairs,
    value: f64,
    ts_ms: Option<i64>,
    exemplar: Option<NormExemplar>,
}

fn same_f64(a: f64, b: f64) -> bool {
    (a.is_nan() && b.is_nan()) || a.to_bits() == b.to_bits()
}

impl PartialEq for Norm {
    fn eq(&self, o: &Norm) -> bool {
        self.name == o.name
            && self.labels == o.labels
            && same_f64(self.value, o.value)
            && self.ts_ms == o.ts_ms
            && match (&self.exemplar, &o.exemplar) {
                (None, None) => true,
                (Some(a), Some(b)) => a.0 == b.0 && same_f64(a.1, b.1) && a.2 == b.2,
                _ => false,
            }
    }
}

fn norm(name: &str, labels: &[(&str, &str)], value: f64, ts_ms: Option<i64>) -> Norm {
    Norm {
        name: name.to_string(),
        labels: sorted(
            labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        ),
        value,
        ts_ms,
        exemplar: None,
    }
}

fn ours_norm(body: &str, format: Format) -> Result<Vec<Norm>, String> {
    let mut out = Vec::new();
    for e in Parser::new(body.as_bytes(), format, Mode::Scrape) {
        if let Entry::Sample(s) = e.map_err(|e| e.to_string())? {
            out.push(Norm {
                name: s.name.to_string(),
                labels: sorted(
                    s.labels
                        .iter()
                        .map(|(k, v)| (k.to_string(), v.into_owned()))
                        .collect(),
                ),
                value: s.value,
                ts_ms: s.timestamp_ms,
                exemplar: s.exemplar.map(|x| {
                    (
                        sorted(
                            x.labels
                                .iter()
                                .map(|(k, v)| (k.to_string(), v.into_owned()))
                                .collect(),
                        ),
                        x.value,
                        x.timestamp_ms,
                    )
                }),
            });
        }
    }
    Ok(out)
}

/// Python's timestamp in milliseconds, as reported (no bug workarounds: the table shows what
/// Python really gives).
fn py_ts_ms(ts: &PyTs, format: Format) -> i64 {
    match (ts.kind.as_str(), format) {
        ("sec_ns", _) => {
            ts.sec.unwrap_or_default() * 1000 + ts.nsec.unwrap_or_default() / 1_000_000
        }
        (_, Format::Text) => {
            (parse_f64(ts.v.as_deref().unwrap_or_default()) * 1000.0).round() as i64
        }
        _ => (parse_f64(ts.v.as_deref().unwrap_or_default()) * 1000.0).trunc() as i64,
    }
}

fn python_norm(py: &str, body: &str, format: Format) -> Result<Vec<Norm>, String> {
    Ok(run_python(py, body.as_bytes(), format)?
        .into_iter()
        .map(|p| Norm {
            name: p.name,
            labels: sorted(p.labels),
            value: parse_f64(&p.value),
            ts_ms: p.ts.as_ref().map(|t| py_ts_ms(t, format)),
            exemplar: p.exemplar.map(|e| {
                (
                    sorted(e.labels),
                    parse_f64(&e.value),
                    e.ts.as_ref().map(|t| py_ts_ms(t, format)),
                )
            }),
        })
        .collect())
}

/// Rust's float parsing plus the spellings Go's `ParseFloat` (and the exposition formats) use.
fn go_float(s: &str) -> Option<f64> {
    match s.to_ascii_lowercase().as_str() {
        "nan" => Some(f64::NAN),
        "inf" | "+inf" => Some(f64::INFINITY),
        "-inf" => Some(f64::NEG_INFINITY),
        l => l.parse().ok(),
    }
}

/// `prometheus-parse` 0.2, flattened back to one sample per line. It groups histogram buckets
/// and summary quantiles per series (the `le`/`quantile` label becomes an `f64`, rendered back
/// with Go's spelling here) and fills in "now" when a sample has no timestamp (detected by
/// the parse time window). It never fails: lines it cannot read are dropped silently.
fn prometheus_parse_norm(body: &str) -> Vec<Norm> {
    let before = now_ms();
    let lines = body.lines().map(|l| Ok(l.to_string()));
    let scrape = prometheus_parse::Scrape::parse(lines).expect("in-memory lines cannot fail");
    let after = now_ms();
    let mut out = Vec::new();
    for s in scrape.samples {
        let ts = s.timestamp.timestamp_millis();
        let ts = (!(before..=after).contains(&ts)).then_some(ts);
        let labels: Vec<(String, String)> = s
            .labels
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let mut push = |name: String, extra: Option<(&str, f64)>, v: f64| {
            let mut l = labels.clone();
            if let Some((k, x)) = extra {
                l.push((k.to_string(), vigil::scrape::exposition::format_value(x)));
            }
            out.push(Norm {
                name,
                labels: sorted(l),
                value: v,
                ts_ms: ts,
                exemplar: None,
            });
        };
        match &s.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => push(s.metric.clone(), None, *v),
            prometheus_parse::Value::Histogram(b) => {
                for h in b {
                    push(
                        format!("{}_bucket", s.metric),
                        Some(("le", h.less_than)),
                        h.count,
                    );
                }
            }
            prometheus_parse::Value::Summary(q) => {
                for c in q {
                    push(s.metric.clone(), Some(("quantile", c.quantile)), c.count);
                }
            }
        }
    }
    out
}

/// `prom_text_format_parser` 0.1, flattened (names rebuilt from family name + suffix as its
/// `Display` does). Label values are kept as written (escapes are not resolved).
fn prom_text_norm(body: &str) -> Result<Vec<Norm>, String> {
    use prom_text_format_parser::{Scrape, Type, ValueType};
    let scrape = Scrape::parse(body).map_err(|e| match e {
        prom_text_format_parser::ScrapeParseError::Parse(msg) => {
            // winnow's message: "parse error at line L, column C" plus a snippet.
            msg.lines().next().unwrap_or_default().to_string()
        }
        prom_text_format_parser::ScrapeParseError::Collect(errs) => errs
            .first()
            .map(|m| format!("line {}: {}", m.line_no.start, m.error))
            .unwrap_or_default(),
    })?;
    let mut out = Vec::new();
    for m in &scrape.metrics {
        for s in &m.samples {
            let suffix = match (m.kind, s.value.value_type) {
                (Type::Histogram, ValueType::Sample) => "_bucket",
                (Type::Histogram | Type::Summary, ValueType::Sum) => "_sum",
                (Type::Histogram | Type::Summary, ValueType::Count) => "_count",
                _ => "",
            };
            let raw: &str = &s.value.value;
            out.push(Norm {
                name: format!("{}{suffix}", m.name),
                labels: sorted(
                    s.labels
                        .iter()
                        .map(|l| (l.key.clone(), l.value.clone()))
                        .collect(),
                ),
                value: go_float(raw).ok_or_else(|| format!("value {raw:?} is not a float"))?,
                ts_ms: s.value.timestamp,
                exemplar: None,
            });
        }
    }
    Ok(out)
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// A short verdict for the table: "ok" or what went wrong.
fn verdict(got: &Result<Vec<Norm>, String>, want: &[Norm]) -> String {
    let got = match got {
        Err(e) => {
            let e: String = e
                .lines()
                .next()
                .unwrap_or_default()
                .chars()
                .take(60)
                .collect();
            return format!("rejects (`{}`)", e.replace('|', "\\|").replace('`', "'"));
        }
        Ok(g) => g,
    };
    let key = |n: &Norm| (n.name.clone(), n.labels.clone(), n.ts_ms);
    let mut g = got.clone();
    let mut w = want.to_vec();
    g.sort_by_key(key);
    w.sort_by_key(key);
    if g == w {
        return "ok".into();
    }
    if g.len() != w.len() {
        return format!("{} of {} samples", g.len(), w.len());
    }
    for (a, b) in g.iter().zip(&w) {
        let show = |s: &str| format!("{s:?}").replace('|', "\\|");
        if a.name != b.name {
            return format!("name `{}`", show(&a.name));
        }
        if a.labels != b.labels {
            let wrong: Vec<String> = a
                .labels
                .iter()
                .filter(|l| !b.labels.contains(l))
                .map(|(k, v)| format!("{k}={}", show(v)))
                .collect();
            return format!("labels `{}`", wrong.join(","));
        }
        if !same_f64(a.value, b.value) {
            return format!("value {:?}", a.value);
        }
        if a.ts_ms != b.ts_ms {
            return format!("timestamp {:?}", a.ts_ms);
        }
        if a.exemplar != b.exemplar {
            return match &a.exemplar {
                None => "exemplar dropped".into(),
                Some(e) => format!("exemplar ts {:?}", e.2),
            };
        }
    }
    "differs".into()
}

/// `le` and `quantile` label values respelled canonically (`1.0` -> `1`), for the corpus
/// table: prometheus-parse keeps them only as `f64`, which is not a parsing error.
fn le_quantile_canonical(mut v: Vec<Norm>) -> Vec<Norm> {
    for n in &mut v {
        for (k, val) in &mut n.labels {
            if (k == "le" || k == "quantile")
                && let Some(f) = go_float(val)
            {
                *val = vigil::scrape::exposition::format_value(f);
            }
        }
    }
    v
}

struct Case {
    name: &'static str,
    format: Format,
    body: &'static str,
    want: Vec<Norm>,
}

fn with_exemplar(mut n: Norm, labels: &[(&str, &str)], value: f64, ts: Option<i64>) -> Norm {
    n.exemplar = Some((
        sorted(
            labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        ),
        value,
        ts,
    ));
    n
}

fn cases() -> Vec<Case> {
    use Format::{OpenMetrics as Om, Text};
    vec![
        Case {
            name: "label value with `,` `=` `}`",
            format: Text,
            body: "m{a=\"x,y=z}w\",b=\"}\"} 1\n",
            want: vec![norm("m", &[("a", "x,y=z}w"), ("b", "}")], 1.0, None)],
        },
        Case {
            name: "escaped `\\\"` `\\\\` `\\n` in label value",
            format: Text,
            body: "m{a=\"q\\\"x\\\\y\\nz\"} 1\n",
            want: vec![norm("m", &[("a", "q\"x\\y\nz")], 1.0, None)],
        },
        Case {
            name: "escaped quote then `,` (`\"a\\\",b=\\\"c\"`)",
            format: Text,
            body: "m{a=\"a\\\",b=\\\"c\",d=\"e\"} 2\n",
            want: vec![norm("m", &[("a", "a\",b=\"c"), ("d", "e")], 2.0, None)],
        },
        Case {
            name: "UTF-8 label value",
            format: Text,
            body: "m{a=\"\u{fc}\u{2192}\u{1f600}\"} 1\n",
            want: vec![norm("m", &[("a", "\u{fc}\u{2192}\u{1f600}")], 1.0, None)],
        },
        Case {
            name: "metric name with `:`",
            format: Text,
            body: "job:http_requests:rate5m{job=\"a\"} 3\n",
            want: vec![norm("job:http_requests:rate5m", &[("job", "a")], 3.0, None)],
        },
        Case {
            name: "NaN, +Inf, -Inf values",
            format: Text,
            body: "m{a=\"1\"} NaN\nm{a=\"2\"} +Inf\nm{a=\"3\"} -Inf\n",
            want: vec![
                norm("m", &[("a", "1")], f64::NAN, None),
                norm("m", &[("a", "2")], f64::INFINITY, None),
                norm("m", &[("a", "3")], f64::NEG_INFINITY, None),
            ],
        },
        Case {
            name: "exponent, tiny and huge values",
            format: Text,
            body: "m{a=\"1\"} 1.5e+300\nm{a=\"2\"} -4.9e-324\nm{a=\"3\"} 123456789012345678901234567890\n",
            want: vec![
                norm("m", &[("a", "1")], 1.5e300, None),
                norm("m", &[("a", "2")], -4.9e-324, None),
                norm("m", &[("a", "3")], 1.2345678901234568e29, None),
            ],
        },
        Case {
            name: "timestamps (ms, negative)",
            format: Text,
            body: "m{a=\"1\"} 1 1700000000123\nm{a=\"2\"} 2 -1\n",
            want: vec![
                norm("m", &[("a", "1")], 1.0, Some(1_700_000_000_123)),
                norm("m", &[("a", "2")], 2.0, Some(-1)),
            ],
        },
        Case {
            name: "blanks inside the label block",
            format: Text,
            body: "m { a = \"1\" , b=\"2\" , } 1\n",
            want: vec![norm("m", &[("a", "1"), ("b", "2")], 1.0, None)],
        },
        Case {
            name: "OM counter, float timestamp, exemplar",
            format: Om,
            body: "# TYPE c counter\nc_total{a=\"b\"} 1 1700000000.123 # {trace_id=\"x,}\"} 0.5 1700000000.001\n# EOF\n",
            want: vec![with_exemplar(
                norm("c_total", &[("a", "b")], 1.0, Some(1_700_000_000_123)),
                &[("trace_id", "x,}")],
                0.5,
                Some(1_700_000_000_001),
            )],
        },
        Case {
            name: "OM exponent timestamp `1.7268398142239082e+09`",
            format: Om,
            body: "# TYPE g gauge\ng 1 1.7268398142239082e+09\n# EOF\n",
            want: vec![norm("g", &[], 1.0, Some(1_726_839_814_223))],
        },
        Case {
            name: "OM negative timestamp `-0.5`",
            format: Om,
            body: "# TYPE g gauge\ng 1 -0.5\n# EOF\n",
            want: vec![norm("g", &[], 1.0, Some(-500))],
        },
        Case {
            name: "OM NaN gauge, escaped label, `# EOF`",
            format: Om,
            body: "# TYPE g gauge\ng{a=\"\\\"q\\\"\"} NaN\n# EOF\n",
            want: vec![norm("g", &[("a", "\"q\"")], f64::NAN, None)],
        },
    ]
}

/// Cases where Python is known to disagree with the specification (see the module docs).
const PYTHON_KNOWN_WRONG: &[&str] = &[
    "OM exponent timestamp `1.7268398142239082e+09`",
    "OM negative timestamp `-0.5`",
];

#[test]
fn tricky_cases_across_parsers() {
    let py = python();
    let mut table = String::from(
        "| case | format | Vigil | prometheus_client 0.26 (Python) | prometheus-parse 0.2 | prom_text_format_parser 0.1 |\n|---|---|---|---|---|---|\n",
    );
    let mut failures = Vec::new();
    for c in cases() {
        let ours = ours_norm(c.body, c.format);
        let python = python_norm(&py, c.body, c.format);
        let pp = Ok(prometheus_parse_norm(c.body));
        let ptf = prom_text_norm(c.body);
        let v_ours = verdict(&ours, &c.want);
        let v_py = verdict(&python, &c.want);
        if v_ours != "ok" {
            failures.push(format!("{}: ours: {v_ours} ({ours:?})", c.name));
        }
        let py_known_wrong = PYTHON_KNOWN_WRONG.contains(&c.name);
        if (v_py == "ok") == py_known_wrong {
            failures.push(format!(
                "{}: Python: {v_py} ({python:?}); update PYTHON_KNOWN_WRONG",
                c.name
            ));
        }
        table.push_str(&format!(
            "| {} | {} | {v_ours} | {v_py} | {} | {} |\n",
            c.name,
            fmt_arg(c.format),
            verdict(&pp, &c.want),
            verdict(&ptf, &c.want)
        ));
    }
    // Corpus: sample counts and agreement with us, per parser (text parsers get every file).
    table.push_str(
        "\n| corpus file | Vigil samples | prometheus_client | prometheus-parse | prom_text_format_parser |\n|---|---|---|---|---|\n",
    );
    for (name, body) in corpus_files() {
        let format = format_of(&name, &body);
        let text = String::from_utf8_lossy(&body);
        let want = le_quantile_canonical(ours_norm(&text, format).unwrap_or_default());
        // For Python: our samples with its text-format counter rename applied.
        let want_py: Vec<Norm> = ours(&body, format)
            .unwrap_or_default()
            .into_iter()
            .map(|o| Norm {
                name: o.name,
                labels: o.labels,
                value: o.value,
                ts_ms: o.timestamp_ms,
                exemplar: o.exemplar.map(|e| (e.labels, e.value, e.timestamp_ms)),
            })
            .collect();
        let cell = |r: Result<Vec<Norm>, String>, want: &[Norm]| match r {
            Err(e) => {
                let e: String = e
                    .lines()
                    .next()
                    .unwrap_or_default()
                    .chars()
                    .take(70)
                    .collect();
                format!("rejects (`{}`)", e.replace('|', "\\|").replace('`', "'"))
            }
            Ok(g) => {
                let g = le_quantile_canonical(g);
                let matching = g.iter().filter(|n| want.contains(n)).count();
                let first_other = g.iter().find(|n| !want.contains(n)).map(|n| {
                    let labels: Vec<String> =
                        n.labels.iter().map(|(k, v)| format!("{k}={v:?}")).collect();
                    format!(
                        "; first different: `{}{{{}}}`",
                        n.name,
                        labels.join(",").replace('|', "\\|")
                    )
                });
                format!(
                    "{} samples, {matching} equal to ours{}",
                    g.len(),
                    first_other.unwrap_or_default()
                )
            }
        };
        let py_cell = cell(
            python_norm(&py, &text, format),
            &le_quantile_canonical(want_py),
        );
        table.push_str(&format!(
            "| {name} | {} | {py_cell} | {} | {} |\n",
            want.len(),
            cell(Ok(prometheus_parse_norm(&text)), &want),
            cell(prom_text_norm(&text), &want),
        ));
    }
    eprintln!("{table}");
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}
