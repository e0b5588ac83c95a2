//! Exposition parser: the Prometheus text format 0.0.4 and OpenMetrics 1.0 text format.
//!
//! The scrape loop hands a response body and its `Content-Type` to [`Parser`] (mode
//! [`Mode::Scrape`]) and reads [`Entry`] values: metadata and samples borrowed from the body.
//! `vigil check metrics` uses [`check`] (mode [`Mode::Strict`]), which reports every problem
//! it can find with its line and column. The crate's tests use [`render_text`] and
//! [`render_openmetrics`] for round trips.
//!
//! Design:
//! - Line oriented: a word-at-a-time search finds each line end, then one pass over the
//!   line's bytes parses it. No regex, no `char` iteration, no allocation per sample unless a
//!   HELP text or label value contains an escape (and then only when it is read).
//! - [`Sample::series`] is the raw `name{labels}` slice of the body, the key for a
//!   per-target series cache; [`Labels`] re-scans the borrowed label block lazily.
//! - UTF-8 is validated only where the grammar allows non-ASCII: the name-plus-labels slice
//!   of a sample and HELP texts (and, in strict mode, whole comment lines).
//! - [`Mode::Scrape`] is lenient the way Prometheus is: the first syntax error fails the
//!   scrape. [`Mode::Strict`] additionally enforces the specification's semantic rules
//!   (family grouping, duplicate series, histogram bucket rules, ...) in `strict.rs`, and
//!   keeps going after an error so that [`check`] can list them all.
//!
//! Where the two modes differ from each other and from Prometheus (2.x/3.x `textparse`):
//! - Scrape mode accepts everything Prometheus accepts, plus, for OpenMetrics, runs of blanks
//!   between tokens, leading/trailing blanks, blank lines and `# HELP name` without text
//!   (Prometheus rejects those; being more lenient cannot break a target that works there).
//!   Text-format timestamps may be negative (the docs allow it, Prometheus' lexer does not).
//! - Both modes reject: raw line feeds inside label values, CR line endings, exemplars in
//!   the text format, comments in OpenMetrics, a missing `# EOF` or anything after it, a
//!   UNIT that is not a suffix of its family name, invalid UTF-8 in label values and HELP,
//!   quoted (UTF-8) metric and label names (not supported yet).
//! - Unknown escapes such as `\q` are kept literally (as Prometheus does); strict mode rejects
//!   them in the text format (as promtool does) but not in OpenMetrics, whose grammar allows
//!   them.
//! - OpenMetrics float timestamps become milliseconds by exact decimal arithmetic, truncated
//!   toward zero (Go computes `int64(f * 1000)` in binary, which can be off by one).
//! - Strict mode follows the specifications' MUSTs (see `strict.rs`); it does not apply
//!   promtool's naming lints (units, `_total` on text-format counters, camelCase, ...).
//!
//! Files: `scan.rs` (byte scanning, numbers, escapes), `labels.rs` ([`Labels`]),
//! `strict.rs` (strict-mode rules), `render.rs` (writing expositions), `tests.rs` (unit,
//! corpus and fuzz tests), `conformance.rs` (runner for `tests/fixtures/exposition`).

use std::borrow::Cow;
use std::collections::VecDeque;
use std::fmt;

mod labels;
pub(crate) mod render;
mod scan;
mod strict;

#[cfg(test)]
mod conformance;
#[cfg(test)]
mod tests;

pub use labels::{Labels, LabelsIter};

/// Byte equality without libc's `memcmp` (see `scan::starts_with`), for the scrape loop's
/// per-sample series comparisons.
#[inline]
pub(crate) fn bytes_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && scan::starts_with(a, b)
}
pub use render::{
    OwnedExemplar, OwnedSample, format_value, render_openmetrics, render_text, write_entry,
};

/// An exposition format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    /// Prometheus text format 0.0.4 (`text/plain; version=0.0.4`).
    Text,
    /// OpenMetrics 1.0 text format (`application/openmetrics-text; version=1.0.0`).
    OpenMetrics,
}

/// How strictly to parse.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Mode {
    /// Enforce the specification, including semantic rules, and keep going after errors.
    Strict,
    /// Accept what Prometheus accepts when scraping; the first error ends the parse.
    Scrape,
}

/// The type of a metric family.
///
/// Word-sized on purpose: the parser sets it last and the whole sample is then moved with 8-byte
/// loads; a 1-byte store followed by an 8-byte load of the same word stalls store forwarding
/// (measured: 2.6% of parse time on the Prometheus corpus).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u64)]
pub enum MetricType {
    /// `counter`.
    Counter,
    /// `gauge`.
    Gauge,
    /// `histogram`.
    Histogram,
    /// `gaugehistogram` (OpenMetrics only).
    GaugeHistogram,
    /// `summary`.
    Summary,
    /// `stateset` (OpenMetrics only).
    StateSet,
    /// `info` (OpenMetrics only).
    Info,
    /// `untyped` (text format), `unknown` (OpenMetrics), or no `# TYPE` line at all.
    Unknown,
}

impl MetricType {
    /// The keyword used on `# TYPE` lines of `format`.
    pub fn as_str(self, format: Format) -> &'static str {
        match self {
            MetricType::Counter => "counter",
            MetricType::Gauge => "gauge",
            MetricType::Histogram => "histogram",
            MetricType::GaugeHistogram => "gaugehistogram",
            MetricType::Summary => "summary",
            MetricType::StateSet => "stateset",
            MetricType::Info => "info",
            MetricType::Unknown => match format {
                Format::Text => "untyped",
                Format::OpenMetrics => "unknown",
            },
        }
    }

    /// Parses a `# TYPE` keyword of `format` (lowercase only, as Prometheus requires).
    pub fn parse(s: &[u8], format: Format) -> Option<MetricType> {
        Some(match (s, format) {
            (b"counter", _) => MetricType::Counter,
            (b"gauge", _) => MetricType::Gauge,
            (b"histogram", _) => MetricType::Histogram,
            (b"summary", _) => MetricType::Summary,
            (b"untyped", Format::Text) => MetricType::Unknown,
            (b"unknown", Format::OpenMetrics) => MetricType::Unknown,
            (b"gaugehistogram", Format::OpenMetrics) => MetricType::GaugeHistogram,
            (b"stateset", Format::OpenMetrics) => MetricType::StateSet,
            (b"info", Format::OpenMetrics) => MetricType::Info,
            _ => return None,
        })
    }
}

/// One parsed line of an exposition.
#[derive(Debug, Clone, PartialEq)]
pub enum Entry<'a> {
    /// `# HELP family text`, with escapes resolved.
    Help {
        /// Metric family name.
        family: &'a str,
        /// The help text.
        text: Cow<'a, str>,
    },
    /// `# TYPE family kind`.
    Type {
        /// Metric family name.
        family: &'a str,
        /// The declared type.
        kind: MetricType,
    },
    /// `# UNIT family unit` (OpenMetrics only).
    Unit {
        /// Metric family name.
        family: &'a str,
        /// The unit (may be empty).
        unit: &'a str,
    },
    /// A sample line.
    Sample(Sample<'a>),
    /// `# EOF` (OpenMetrics only; always the last entry of a valid exposition).
    Eof,
}

/// One sample, borrowed from the exposition body.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample<'a> {
    /// Raw bytes of the metric name and label block exactly as in the body (including any
    /// whitespace the text format allowed between them): the key for a per-target cache.
    pub series: &'a [u8],
    /// The sample's metric name (for histograms etc. including the `_bucket`... suffix).
    pub name: &'a str,
    /// The labels, in exposition order.
    pub labels: Labels<'a>,
    /// The value; `NaN`, `+Inf` and `-Inf` are possible.
    pub value: f64,
    /// Explicit timestamp in milliseconds since the epoch, if any. The text format writes
    /// integer milliseconds; OpenMetrics writes float seconds, converted here exactly
    /// (truncating sub-millisecond digits toward zero).
    pub timestamp_ms: Option<i64>,
    /// The exemplar (OpenMetrics only).
    pub exemplar: Option<Exemplar<'a>>,
    /// Type of the family the sample belongs to (from `# TYPE`; `Unknown` if none).
    pub family_type: MetricType,
}

/// An OpenMetrics exemplar: `# {labels} value [timestamp]` after a sample.
#[derive(Debug, Clone, PartialEq)]
pub struct Exemplar<'a> {
    /// The exemplar's labels (e.g. a trace id).
    pub labels: Labels<'a>,
    /// The exemplar's value.
    pub value: f64,
    /// Its timestamp in milliseconds, if given.
    pub timestamp_ms: Option<i64>,
}

/// A parse error with its position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    /// 1-based line number.
    pub line: usize,
    /// 1-based column: the byte offset within the line plus one.
    pub col: usize,
    /// What is wrong, in lowercase prose.
    pub message: String,
}

impl ParseError {
    /// An error at 0-based byte index `idx` of line `line`.
    pub(crate) fn at(line: usize, idx: usize, message: impl Into<String>) -> Self {
        ParseError {
            line,
            col: idx + 1,
            message: message.into(),
        }
    }
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}", self.line, self.col, self.message)
    }
}

impl std::error::Error for ParseError {}

/// The format for an HTTP `Content-Type`, or `None` if it is not a supported exposition
/// format. `text/plain` (any version parameter) is the text format;
/// `application/openmetrics-text` with no version, `0.0.1` or `1.0.0` is OpenMetrics 1.0.
pub fn format_from_content_type(ct: &str) -> Option<Format> {
    let mut parts = ct.split(';');
    let media = parts.next().unwrap_or_default().trim();
    let mut version = None;
    for p in parts {
        if let Some((k, v)) = p.split_once('=')
            && k.trim().eq_ignore_ascii_case("version")
        {
            version = Some(v.trim().trim_matches('"'));
        }
    }
    if media.eq_ignore_ascii_case("text/plain") {
        return Some(Format::Text);
    }
    if media.eq_ignore_ascii_case("application/openmetrics-text") {
        return match version {
            None | Some("0.0.1" | "1.0.0") => Some(Format::OpenMetrics),
            Some(_) => None,
        };
    }
    None
}

/// Guesses the format of a file with no content type. OpenMetrics-only features (`# UNIT`,
/// OpenMetrics-only types, exemplars, counters exposed as `<family>_total`, a final `# EOF`)
/// count for OpenMetrics; text-only ones (`untyped`, plain comments, blank lines, counter
/// samples named exactly like their family) count for the text format. Ties go to text.
pub fn detect_format(body: &[u8]) -> Format {
    const SCAN_LIMIT: usize = 256 * 1024;
    let mut om: i64 = 0;
    let mut text: i64 = 0;
    let mut end = body.len();
    while end > 0 && matches!(body.get(end - 1), Some(b'\n' | b' ' | b'\t' | b'\r')) {
        end -= 1;
    }
    if body.get(..end).is_some_and(|b| b.ends_with(b"# EOF")) {
        om += 2;
    }
    let mut counter: &[u8] = &[];
    let mut pos = 0;
    while pos < body.len().min(SCAN_LIMIT) {
        let rest = body.get(pos..).unwrap_or_default();
        let len = scan::find_byte(b'\n', rest).unwrap_or(rest.len());
        let line = rest.get(..len).unwrap_or_default();
        pos += len + 1;
        if line.iter().all(|&c| scan::is_blank(c)) {
            if pos < end {
                text += 5;
            }
            continue;
        }
        if let Some(meta) = line.strip_prefix(b"# ") {
            let mut words = meta.split(|&c| c == b' ').filter(|w| !w.is_empty());
            match (words.next(), words.next(), words.next()) {
                (Some(b"UNIT"), _, _) => om += 10,
                (Some(b"TYPE"), Some(name), Some(kind)) => {
                    match kind {
                        b"unknown" | b"gaugehistogram" | b"stateset" | b"info" => om += 10,
                        b"untyped" => text += 10,
                        _ => {}
                    }
                    counter = if kind == b"counter" { name } else { &[] };
                }
                (Some(b"HELP" | b"EOF"), _, _) => {}
                _ => text += 5,
            }
            continue;
        }
        if line.first() == Some(&b'#') {
            text += 5;
            continue;
        }
        if scan::find_byte(b'#', line).is_some() && line.windows(3).any(|w| w == b" # ") {
            om += 10;
        }
        let name = line
            .get(..scan::scan_metric_name(line, 0))
            .unwrap_or_default();
        if !counter.is_empty() {
            if name == counter {
                text += 3;
            } else if name.strip_prefix(counter) == Some(b"_total") && !counter.ends_with(b"_total")
            {
                om += 3;
            }
            counter = &[];
        }
    }
    if om > text {
        Format::OpenMetrics
    } else {
        Format::Text
    }
}

/// Parses `body` in strict mode and returns every problem found, sorted by position
/// (after an error, parsing resumes at the next line). Empty means the exposition is valid.
pub fn check(body: &[u8], format: Format) -> Vec<ParseError> {
    let mut errors: Vec<ParseError> = Parser::new(body, format, Mode::Strict)
        .filter_map(Result::err)
        .collect();
    errors.sort_by_key(|e| (e.line, e.col));
    errors
}

/// Column positions (0-based byte indexes in the line) of a sample's parts, for strict-mode
/// error messages.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct SampleCols {
    pub(crate) name: usize,
    /// Index of the `{` of the label block, if any.
    pub(crate) labels: Option<usize>,
    pub(crate) value: usize,
    pub(crate) timestamp: Option<usize>,
    /// Index of the exemplar's `{`, if any.
    pub(crate) exemplar: Option<usize>,
    pub(crate) exemplar_value: usize,
}

/// An error inside the current line, before the line number is attached.
struct LineError {
    idx: usize,
    msg: String,
}

fn lerr(idx: usize, msg: impl Into<String>) -> LineError {
    LineError {
        idx,
        msg: msg.into(),
    }
}

type LResult<T> = Result<T, LineError>;

/// Renders a token for an error message, capped so that a huge garbage line stays readable.
fn show(tok: &[u8]) -> String {
    let s = String::from_utf8_lossy(tok.get(..tok.len().min(64)).unwrap_or_default());
    if tok.len() > 64 {
        format!("{s:?}...")
    } else {
        format!("{s:?}")
    }
}

/// Suffix of a token that hints at CRLF line endings, for friendlier messages.
fn crlf_hint(tok: &[u8]) -> &'static str {
    if tok.last() == Some(&b'\r') {
        " (carriage return: CRLF line endings are not allowed, lines must end with \\n)"
    } else {
        ""
    }
}

/// Streaming parser over one exposition body; iterate it to get [`Entry`] values.
///
/// In [`Mode::Scrape`], iteration ends after the first error. In [`Mode::Strict`] it
/// resumes at the next line, so several errors can be reported; some of them (about whole
/// metric families, e.g. a histogram without a `+Inf` bucket) are reported when the family
/// ends, after entries of later lines.
pub struct Parser<'a> {
    body: &'a [u8],
    /// The whole body as `&str` when it is valid UTF-8 (checked once up front, which is much
    /// cheaper than validating each label block and HELP text separately).
    text: Option<&'a str>,
    /// Byte offset of the current line.
    line_start: usize,
    /// Byte offset of the next line.
    pos: usize,
    /// 1-based number of the next line.
    line_no: usize,
    format: Format,
    mode: Mode,
    /// Whether runs of blanks separate tokens (text format, and OpenMetrics when scraping)
    /// rather than exactly one space (strict OpenMetrics).
    lenient_ws: bool,
    finished: bool,
    saw_eof: bool,
    /// Family named by the last metadata line and its type: attributes `family_type` in
    /// scrape mode, as Prometheus does.
    meta_name: &'a str,
    meta_type: MetricType,
    pending: VecDeque<ParseError>,
    strict: Option<Box<strict::Validator<'a>>>,
    /// Whether the last sample's series bytes equalled the hint given to [`Parser::next_hinted`].
    hint_matched: bool,
}

impl fmt::Debug for Parser<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Parser")
            .field("format", &self.format)
            .field("mode", &self.mode)
            .field("pos", &self.pos)
            .field("line", &self.line_no)
            .finish_non_exhaustive()
    }
}

impl<'a> Parser<'a> {
    /// A parser over `body` in `format` and `mode`.
    pub fn new(body: &'a [u8], format: Format, mode: Mode) -> Self {
        let strict = match mode {
            Mode::Strict => Some(Box::new(strict::Validator::new(format))),
            Mode::Scrape => None,
        };
        Parser {
            body,
            text: std::str::from_utf8(body).ok(),
            line_start: 0,
            pos: 0,
            line_no: 1,
            format,
            mode,
            lenient_ws: format == Format::Text || mode == Mode::Scrape,
            finished: false,
            saw_eof: false,
            meta_name: "",
            meta_type: MetricType::Unknown,
            pending: VecDeque::new(),
            strict,
            hint_matched: false,
        }
    }

    /// The next entry, like [`Iterator::next`], given the series bytes the caller expects on the
    /// next sample line (in scrape mode, a per-target cache knows what the same position held in
    /// the previous scrape). When the line starts with exactly those bytes and they end a label
    /// block, the block is not scanned again: the same bytes were accepted before, and the scan
    /// depends on nothing else (the caller passes no hint after a change of format).
    /// [`Parser::hint_matched`] then says whether the hint was used.
    pub fn next_hinted(&mut self, hint: &[u8]) -> Option<Result<Entry<'a>, ParseError>> {
        let usable = self.mode == Mode::Scrape && hint.last() == Some(&b'}');
        self.next_entry(if usable { hint } else { &[] })
    }

    /// Whether the sample last returned by [`Parser::next_hinted`] matched its hint (its
    /// `series` equals the hint).
    pub fn hint_matched(&self) -> bool {
        self.hint_matched
    }

    /// The format being parsed.
    pub fn format(&self) -> Format {
        self.format
    }

    /// The mode being parsed in.
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// Position just past the last byte of the body, for end-of-input errors (called once
    /// every line has been read).
    fn end_position(&self) -> (usize, usize) {
        if self.body.is_empty() || self.body.ends_with(b"\n") {
            (self.line_no, 1)
        } else {
            (
                self.line_no.saturating_sub(1).max(1),
                self.body.len() - self.line_start + 1,
            )
        }
    }

    /// End of input: close the last family (strict) and report a missing `# EOF` or final
    /// newline.
    fn finish(&mut self) {
        self.finished = true;
        if let Some(v) = self.strict.as_mut() {
            v.finish(&mut self.pending);
        }
        if self.format == Format::OpenMetrics && !self.saw_eof {
            let (line, col) = self.end_position();
            self.pending.push_back(ParseError {
                line,
                col,
                message: "missing \"# EOF\": an OpenMetrics exposition must end with it".into(),
            });
        }
        if self.format == Format::Text
            && self.mode == Mode::Strict
            && !self.body.is_empty()
            && !self.body.ends_with(b"\n")
        {
            let (line, col) = self.end_position();
            self.pending.push_back(ParseError {
                line,
                col,
                message: "the last line must end with a line feed (\\n)".into(),
            });
        }
    }

    fn fail(&mut self, e: ParseError) -> Option<Result<Entry<'a>, ParseError>> {
        if self.mode == Mode::Scrape {
            self.finished = true;
            self.pending.clear();
        }
        Some(Err(e))
    }

    /// `b[start..end]` of the current line `b` as `&str`: sliced from the pre-validated body
    /// when possible, validated otherwise. The error is the line index of the invalid byte.
    fn line_str(&self, b: &'a [u8], start: usize, end: usize) -> Result<&'a str, usize> {
        if let Some(s) = self
            .text
            .and_then(|t| t.get(self.line_start + start..self.line_start + end))
        {
            return Ok(s);
        }
        let sub = b.get(start..end).unwrap_or_default();
        std::str::from_utf8(sub).map_err(|e| start + e.valid_up_to())
    }

    /// A name already checked to be ASCII by the name scanners.
    fn ascii(&self, b: &'a [u8], start: usize, end: usize) -> &'a str {
        self.line_str(b, start, end).unwrap_or_default()
    }

    /// A plain comment line: ignored, but must be UTF-8 in strict mode.
    fn comment(&self, b: &'a [u8], line_no: usize) -> Result<Option<Entry<'a>>, ParseError> {
        if self.mode == Mode::Strict
            && let Err(idx) = self.line_str(b, 0, b.len())
        {
            return Err(ParseError::at(line_no, idx, "invalid UTF-8 in comment"));
        }
        Ok(None)
    }

    fn ws(&self, b: &[u8], i: usize) -> usize {
        if self.lenient_ws {
            scan::skip_blanks(b, i)
        } else {
            i
        }
    }

    /// Moves past the separator before `what` at `i` (which must not be the end of line):
    /// one or more blanks when lenient, exactly one space in strict OpenMetrics.
    fn sep(&self, b: &[u8], i: usize, what: &str) -> LResult<usize> {
        if self.lenient_ws {
            let j = scan::skip_blanks(b, i);
            if j == i {
                return Err(lerr(i, format!("expected whitespace before {what}")));
            }
            return Ok(j);
        }
        if b.get(i) != Some(&b' ') {
            return Err(lerr(i, format!("expected a single space before {what}")));
        }
        if b.get(i + 1).is_some_and(|&c| scan::is_blank(c)) {
            return Err(lerr(
                i + 1,
                "unexpected whitespace: OpenMetrics separates tokens with exactly one space",
            ));
        }
        Ok(i + 1)
    }

    /// After a token ending at `i`: `None` at the end of the line (trailing blanks allowed
    /// when lenient), otherwise the start of the next token.
    fn next_token(&self, b: &[u8], i: usize, what: &str) -> LResult<Option<usize>> {
        if i >= b.len() {
            return Ok(None);
        }
        if self.lenient_ws && scan::skip_blanks(b, i) >= b.len() {
            return Ok(None);
        }
        if !self.lenient_ws && b.get(i) == Some(&b' ') && i + 1 == b.len() {
            return Err(lerr(i, "trailing whitespace is not allowed in OpenMetrics"));
        }
        self.sep(b, i, what).map(Some)
    }

    fn parse_line(
        &mut self,
        b: &'a [u8],
        line_no: usize,
        hint: &[u8],
    ) -> Result<Option<Entry<'a>>, ParseError> {
        let strict = self.mode == Mode::Strict;
        if strict && b.last() == Some(&b'\r') {
            return Err(ParseError::at(
                line_no,
                b.len() - 1,
                "carriage return at end of line: CRLF line endings are not allowed",
            ));
        }
        let start = self.ws(b, 0);
        let Some(&first) = b.get(start) else {
            if self.format == Format::OpenMetrics && strict {
                return Err(ParseError::at(
                    line_no,
                    0,
                    "blank lines are not allowed in OpenMetrics",
                ));
            }
            return Ok(None);
        };
        let res = if first == b'#' {
            match self.format {
                Format::Text => self.parse_text_comment(b, start, line_no),
                Format::OpenMetrics => self.parse_om_comment(b, start, line_no),
            }
        } else {
            self.parse_sample(b, start, line_no, hint)
                .map(|s| Some(Entry::Sample(s)))
        };
        match res {
            Ok(Some(entry)) => {
                self.after_entry(&entry, b, line_no)?;
                Ok(Some(entry))
            }
            other => other,
        }
    }

    /// Bookkeeping after a successful line: metadata tracking and the strict rules.
    fn after_entry(
        &mut self,
        entry: &Entry<'a>,
        b: &[u8],
        line_no: usize,
    ) -> Result<(), ParseError> {
        let (name, meta) = match *entry {
            Entry::Help { family, .. } => (family, strict::Meta::Help),
            Entry::Type { family, kind } => (family, strict::Meta::Type(kind)),
            Entry::Unit { family, unit } => (family, strict::Meta::Unit(unit)),
            Entry::Sample(_) => return Ok(()),
            Entry::Eof => {
                self.saw_eof = true;
                if let Some(v) = self.strict.as_mut() {
                    v.finish(&mut self.pending);
                }
                return Ok(());
            }
        };
        match meta {
            strict::Meta::Type(kind) => {
                self.meta_name = name;
                self.meta_type = kind;
            }
            _ if name != self.meta_name => {
                self.meta_name = name;
                self.meta_type = MetricType::Unknown;
            }
            _ => {}
        }
        if let Some(v) = self.strict.as_mut() {
            // Column of the family name on the metadata line.
            let col = (name.as_ptr() as usize)
                .saturating_sub(b.as_ptr() as usize)
                .min(b.len());
            v.on_meta(meta, name, line_no, col, &mut self.pending)?;
        }
        Ok(())
    }

    /// `#` lines of the text format: HELP and TYPE, everything else is a comment.
    fn parse_text_comment(
        &mut self,
        b: &'a [u8],
        hash: usize,
        line_no: usize,
    ) -> Result<Option<Entry<'a>>, ParseError> {
        let e = |err: LineError| ParseError::at(line_no, err.idx, err.msg);
        let strict = self.mode == Mode::Strict;
        // As in Prometheus, only "#" + blanks + HELP/TYPE + blanks is metadata.
        if !b.get(hash + 1).is_some_and(|&c| scan::is_blank(c)) {
            return self.comment(b, line_no);
        }
        let k = scan::skip_blanks(b, hash + 1);
        let kw_end = scan::token_end(b, k);
        let kw = b.get(k..kw_end).unwrap_or_default();
        let is_help = kw == b"HELP";
        if !(is_help || kw == b"TYPE") || kw_end >= b.len() {
            return self.comment(b, line_no);
        }
        let n = scan::skip_blanks(b, kw_end);
        let name_end = scan::scan_metric_name(b, n);
        let kw_str = if is_help { "HELP" } else { "TYPE" };
        if name_end == n {
            return Err(e(lerr(n, format!("expected metric name after {kw_str}"))));
        }
        if b.get(name_end).is_some_and(|&c| !scan::is_blank(c)) {
            let c = b.get(name_end..name_end + 1).unwrap_or_default();
            return Err(e(lerr(
                name_end,
                format!("invalid character {} in metric name", show(c)),
            )));
        }
        let family = self.ascii(b, n, name_end);
        let rest = scan::skip_blanks(b, name_end);
        let tail = b.get(rest..).unwrap_or_default();
        if is_help {
            let text = self
                .line_str(b, rest, b.len())
                .map_err(|idx| ParseError::at(line_no, idx, "invalid UTF-8 in HELP text"))?;
            if strict && let Some(idx) = bad_escape(tail, false) {
                return Err(ParseError::at(
                    line_no,
                    rest + idx,
                    "invalid escape sequence in HELP text: the text format allows only \\\\ and \\n",
                ));
            }
            return Ok(Some(Entry::Help {
                family,
                text: scan::unescape(text, scan::Escapes::TextHelp),
            }));
        }
        let mut t_end = b.len();
        while t_end > rest && b.get(t_end - 1).is_some_and(|&c| scan::is_blank(c)) {
            t_end -= 1;
        }
        let tok = b.get(rest..t_end).unwrap_or_default();
        match MetricType::parse(tok, Format::Text) {
            Some(kind) => Ok(Some(Entry::Type { family, kind })),
            None => Err(e(lerr(
                rest,
                format!(
                    "invalid metric type {}: expected counter, gauge, histogram, summary or untyped{}",
                    show(tok),
                    crlf_hint(tok)
                ),
            ))),
        }
    }

    /// `#` lines of OpenMetrics: HELP, TYPE, UNIT and EOF; there are no comments.
    fn parse_om_comment(
        &mut self,
        b: &'a [u8],
        hash: usize,
        line_no: usize,
    ) -> Result<Option<Entry<'a>>, ParseError> {
        let e = |err: LineError| ParseError::at(line_no, err.idx, err.msg);
        let strict = self.mode == Mode::Strict;
        let k = if self.lenient_ws {
            let k = scan::skip_blanks(b, hash + 1);
            if k == hash + 1 {
                return Err(e(lerr(
                    hash + 1,
                    "expected a space after '#': OpenMetrics has no comments, only # HELP, # TYPE, # UNIT and # EOF",
                )));
            }
            k
        } else {
            if b.get(hash + 1) != Some(&b' ') {
                return Err(e(lerr(
                    hash + 1,
                    "expected a space after '#': OpenMetrics has no comments, only # HELP, # TYPE, # UNIT and # EOF",
                )));
            }
            hash + 2
        };
        let kw_end = scan::token_end(b, k);
        let kw = b.get(k..kw_end).unwrap_or_default();
        let kw_str = match kw {
            b"EOF" => {
                let after = self.ws(b, kw_end);
                if after < b.len() {
                    return Err(e(lerr(kw_end, "unexpected text after # EOF")));
                }
                return Ok(Some(Entry::Eof));
            }
            b"HELP" => "HELP",
            b"TYPE" => "TYPE",
            b"UNIT" => "UNIT",
            _ => {
                return Err(e(lerr(
                    k,
                    format!(
                        "unexpected {}: OpenMetrics has no comments, only # HELP, # TYPE, # UNIT and # EOF",
                        show(b.get(k..).unwrap_or_default())
                    ),
                )));
            }
        };
        if kw_end >= b.len() {
            return Err(e(lerr(
                kw_end,
                format!("expected metric name after {kw_str}"),
            )));
        }
        let n = self.sep(b, kw_end, "the metric name").map_err(e)?;
        let name_end = scan::scan_metric_name(b, n);
        if name_end == n {
            return Err(e(lerr(n, format!("expected metric name after {kw_str}"))));
        }
        let family = self.ascii(b, n, name_end);
        match b.get(name_end) {
            None => {
                if kw_str == "TYPE" || strict {
                    let what = match kw_str {
                        "TYPE" => "the metric type",
                        "HELP" => "the help text (it may be empty)",
                        _ => "the unit (it may be empty)",
                    };
                    return Err(e(lerr(
                        name_end,
                        format!("expected a space and {what} after the metric name"),
                    )));
                }
            }
            Some(&c) if !scan::is_blank(c) || (!self.lenient_ws && c != b' ') => {
                let c = b.get(name_end..name_end + 1).unwrap_or_default();
                return Err(e(lerr(
                    name_end,
                    format!("invalid character {} in metric name", show(c)),
                )));
            }
            Some(_) => {}
        }
        // Exactly one separator precedes the value (HELP text keeps any further blanks).
        let v = (name_end + 1).min(b.len());
        let tail = b.get(v..).unwrap_or_default();
        match kw_str {
            "HELP" => {
                let text = self
                    .line_str(b, v, b.len())
                    .map_err(|idx| ParseError::at(line_no, idx, "invalid UTF-8 in HELP text"))?;
                if strict {
                    if let Some(idx) = bad_escape(tail, true) {
                        return Err(ParseError::at(
                            line_no,
                            v + idx,
                            "backslash at end of HELP text",
                        ));
                    }
                    if let Some(idx) = unescaped_quote(tail) {
                        return Err(ParseError::at(
                            line_no,
                            v + idx,
                            "unescaped '\"' in HELP text: OpenMetrics requires \\\"",
                        ));
                    }
                }
                Ok(Some(Entry::Help {
                    family,
                    text: scan::unescape(text, scan::Escapes::Quoted),
                }))
            }
            "UNIT" => {
                let (us, ue) = if self.lenient_ws {
                    trim_blanks(b, v)
                } else {
                    (v, b.len())
                };
                let unit_b = b.get(us..ue).unwrap_or_default();
                if !scan::all_metric_name_chars(unit_b) {
                    return Err(e(lerr(
                        us,
                        format!(
                            "invalid unit {}: only [a-zA-Z0-9_:] are allowed{}",
                            show(unit_b),
                            crlf_hint(unit_b)
                        ),
                    )));
                }
                let unit = self.ascii(b, us, ue);
                if !unit.is_empty() {
                    let ok = family
                        .strip_suffix(unit)
                        .is_some_and(|base| base.len() > 1 && base.ends_with('_'));
                    if !ok {
                        return Err(e(lerr(
                            us,
                            format!(
                                "unit {unit:?} is not a suffix of metric family name {family:?} (expected the name to end in \"_{unit}\")"
                            ),
                        )));
                    }
                }
                Ok(Some(Entry::Unit { family, unit }))
            }
            _ => {
                let (ts, te) = if self.lenient_ws {
                    trim_blanks(b, v)
                } else {
                    (v, b.len())
                };
                let tok = b.get(ts..te).unwrap_or_default();
                match MetricType::parse(tok, Format::OpenMetrics) {
                    Some(kind) => Ok(Some(Entry::Type { family, kind })),
                    None => Err(e(lerr(
                        ts,
                        format!(
                            "invalid metric type {}: expected counter, gauge, histogram, gaugehistogram, summary, stateset, info or unknown{}",
                            show(tok),
                            crlf_hint(tok)
                        ),
                    ))),
                }
            }
        }
    }

    /// Scans a `{...}` block whose `{` is at `open`; returns the index just past `}`.
    fn scan_label_block(&self, b: &[u8], open: usize) -> LResult<usize> {
        let strict = self.mode == Mode::Strict;
        let mut k = open + 1;
        let mut after_comma = false;
        loop {
            k = self.ws(b, k);
            let Some(&c) = b.get(k) else {
                return Err(lerr(k, "unterminated label set: expected '}'"));
            };
            if c == b'}' {
                if after_comma && strict && self.format == Format::OpenMetrics {
                    return Err(lerr(
                        k - 1,
                        "trailing comma in label set is not allowed in OpenMetrics",
                    ));
                }
                return Ok(k + 1);
            }
            let name_end = scan::scan_label_name(b, k);
            if name_end == k {
                return Err(lerr(
                    k,
                    match c {
                        b'"' => "expected label name; quoted (UTF-8) label names are not supported"
                            .to_string(),
                        b',' => "expected label name, found ','".to_string(),
                        _ if scan::is_blank(c) => {
                            "unexpected whitespace in label set (not allowed in OpenMetrics)"
                                .to_string()
                        }
                        _ => format!(
                            "expected label name, found {}",
                            show(b.get(k..k + 1).unwrap_or_default())
                        ),
                    },
                ));
            }
            k = self.ws(b, name_end);
            if b.get(k) != Some(&b'=') {
                return Err(lerr(k, "expected '=' after label name"));
            }
            k = self.ws(b, k + 1);
            if b.get(k) != Some(&b'"') {
                return Err(lerr(k, "expected '\"' to start the label value"));
            }
            let quote = k;
            k += 1;
            loop {
                let rest = b.get(k..).unwrap_or_default();
                match scan::find_either(b'"', b'\\', rest) {
                    None => {
                        return Err(lerr(
                            quote,
                            "unterminated label value: missing closing '\"'",
                        ));
                    }
                    Some(p) if rest.get(p) == Some(&b'"') => {
                        k += p + 1;
                        break;
                    }
                    Some(p) => {
                        let esc = rest.get(p + 1).copied();
                        if esc.is_none() {
                            return Err(lerr(
                                quote,
                                "unterminated label value: missing closing '\"'",
                            ));
                        }
                        if strict
                            && self.format == Format::Text
                            && !matches!(esc, Some(b'\\' | b'"' | b'n'))
                        {
                            return Err(lerr(
                                k + p,
                                "invalid escape sequence in label value: only \\\\, \\\" and \\n are allowed",
                            ));
                        }
                        k += p + 2;
                    }
                }
            }
            k = self.ws(b, k);
            match b.get(k) {
                Some(b',') => {
                    after_comma = true;
                    k += 1;
                }
                Some(b'}') => after_comma = false,
                // Prometheus' text parser accepts pairs without a separating comma.
                Some(&c) if !strict && self.format == Format::Text && scan::is_label_start(c) => {
                    after_comma = false;
                }
                Some(&c) if scan::is_blank(c) => {
                    return Err(lerr(
                        k,
                        "unexpected whitespace in label set (not allowed in OpenMetrics)",
                    ));
                }
                _ => return Err(lerr(k, "expected ',' or '}' after label value")),
            }
        }
    }

    fn parse_sample(
        &mut self,
        b: &'a [u8],
        start: usize,
        line_no: usize,
        hint: &[u8],
    ) -> Result<Sample<'a>, ParseError> {
        let (mut sample, cols) = self
            .scan_sample(b, start, hint)
            .map_err(|e| ParseError::at(line_no, e.idx, e.msg))?;
        sample.family_type = match self.strict.as_mut() {
            Some(v) => v.on_sample(&sample, &cols, line_no, &mut self.pending)?,
            None => {
                if !self.meta_name.is_empty()
                    && strict::belongs(
                        sample.name,
                        self.meta_name,
                        self.meta_type,
                        self.format,
                        true,
                    )
                {
                    self.meta_type
                } else {
                    MetricType::Unknown
                }
            }
        };
        Ok(sample)
    }

    fn scan_sample(
        &mut self,
        b: &'a [u8],
        start: usize,
        hint: &[u8],
    ) -> LResult<(Sample<'a>, SampleCols)> {
        let mut cols = SampleCols {
            name: start,
            ..SampleCols::default()
        };
        // A hint ends with '}' (see next_hinted) and next_entry passes it only when the line
        // starts with it: equal bytes close the label block at the same place, so only the value
        // and what follows are left to parse. The hint's name was accepted before, so it ends at
        // the first '{' (less blanks before it, which the text format allows), found faster than
        // by classifying every byte again.
        let name_end = match scan::find_byte(b'{', hint) {
            Some(brace) if start == 0 => {
                let mut e = brace;
                while e > 0 && hint.get(e - 1).is_some_and(|&c| scan::is_blank(c)) {
                    e -= 1;
                }
                e
            }
            _ => scan::scan_metric_name(b, start),
        };
        self.hint_matched = !hint.is_empty() && start == 0 && name_end > start;
        debug_assert!(!self.hint_matched || b.starts_with(hint));
        debug_assert!(!self.hint_matched || name_end == scan::scan_metric_name(b, start));
        if name_end == start {
            let c = b.get(start).copied().unwrap_or(b' ');
            return Err(lerr(
                start,
                if c == b'{' {
                    "expected metric name; quoted (UTF-8) metric names inside braces are not supported"
                        .to_string()
                } else if scan::is_blank(c) {
                    "unexpected whitespace at start of line (not allowed in OpenMetrics)"
                        .to_string()
                } else {
                    format!(
                        "expected a metric name or '#' at start of line, found {}",
                        show(b.get(start..start + 1).unwrap_or_default())
                    )
                },
            ));
        }
        let mut i = name_end;
        let brace = self.ws(b, i);
        let mut block = None;
        if self.hint_matched {
            block = Some(brace);
            i = start + hint.len();
        } else if b.get(brace) == Some(&b'{') {
            block = Some(brace);
            i = self.scan_label_block(b, brace)?;
        } else if let Some(&c) = b.get(i)
            && !scan::is_blank(c)
        {
            return Err(lerr(
                i,
                format!(
                    "invalid character {} in metric name",
                    show(b.get(i..i + 1).unwrap_or_default())
                ),
            ));
        }
        cols.labels = block;
        let series = b.get(start..i).unwrap_or_default();
        let series_str = self
            .line_str(b, start, i)
            .map_err(|idx| lerr(idx, "invalid UTF-8 in label value"))?;
        let name = series_str.get(..name_end - start).unwrap_or_default();
        let labels = match block {
            Some(o) => Labels::from_inner(
                series_str
                    .get(o + 1 - start..i - 1 - start)
                    .unwrap_or_default(),
            ),
            None => Labels::empty(),
        };

        // Value. After '}' the text format needs no blank (Prometheus accepts `a{}1`).
        let v = if block.is_some() && self.lenient_ws {
            scan::skip_blanks(b, i)
        } else if i >= b.len() {
            i
        } else {
            self.sep(b, i, "the value")?
        };
        if v >= b.len() {
            return Err(lerr(v, "expected a value after the metric name and labels"));
        }
        let v_end = scan::token_end(b, v);
        let tok = b.get(v..v_end).unwrap_or_default();
        let value = scan::parse_float(tok)
            .ok_or_else(|| lerr(v, format!("invalid value {}{}", show(tok), crlf_hint(tok))))?;
        cols.value = v;

        let mut sample = Sample {
            series,
            name,
            labels,
            value,
            timestamp_ms: None,
            exemplar: None,
            family_type: MetricType::Unknown,
        };
        let Some(mut t) = self.next_token(b, v_end, "the timestamp")? else {
            return Ok((sample, cols));
        };
        if b.get(t) != Some(&b'#') {
            let t_end = scan::token_end(b, t);
            let tok = b.get(t..t_end).unwrap_or_default();
            sample.timestamp_ms = Some(self.parse_timestamp(tok, t)?);
            cols.timestamp = Some(t);
            match self.next_token(b, t_end, "the exemplar")? {
                None => return Ok((sample, cols)),
                Some(n) if b.get(n) == Some(&b'#') => t = n,
                Some(n) => return Err(lerr(n, "unexpected text after the timestamp")),
            }
        }
        if self.format == Format::Text {
            return Err(lerr(
                t,
                "unexpected '#' after the value: exemplars are only supported in OpenMetrics",
            ));
        }
        let (ex, ex_cols) = self.scan_exemplar(b, t)?;
        cols.exemplar = Some(ex_cols.0);
        cols.exemplar_value = ex_cols.1;
        sample.exemplar = Some(ex);
        Ok((sample, cols))
    }

    fn parse_timestamp(&self, tok: &[u8], at: usize) -> LResult<i64> {
        let res = match self.format {
            Format::Text => scan::parse_int_timestamp(tok),
            Format::OpenMetrics => scan::parse_float_timestamp_ms(tok),
        };
        res.map_err(|err| match err {
            scan::TsError::Range => lerr(at, format!("timestamp {} is out of range", show(tok))),
            scan::TsError::Syntax => lerr(
                at,
                format!(
                    "invalid timestamp {}: expected {}{}",
                    show(tok),
                    match self.format {
                        Format::Text => "an integer number of milliseconds",
                        Format::OpenMetrics => "a number of seconds",
                    },
                    crlf_hint(tok)
                ),
            ),
        })
    }

    /// Exemplar starting at the `#` at `hash`; returns it and the columns of its `{` and value.
    fn scan_exemplar(&self, b: &'a [u8], hash: usize) -> LResult<(Exemplar<'a>, (usize, usize))> {
        if hash + 1 >= b.len() {
            return Err(lerr(hash + 1, "expected exemplar labels after '#'"));
        }
        let open = self.sep(b, hash + 1, "the exemplar labels")?;
        if b.get(open) != Some(&b'{') {
            return Err(lerr(open, "expected '{' to start the exemplar labels"));
        }
        let close = self.scan_label_block(b, open)?;
        let inner = self
            .line_str(b, open + 1, close - 1)
            .map_err(|idx| lerr(idx, "invalid UTF-8 in exemplar label value"))?;
        if close >= b.len() {
            return Err(lerr(close, "expected the exemplar value after its labels"));
        }
        let v = self.sep(b, close, "the exemplar value")?;
        let v_end = scan::token_end(b, v);
        let tok = b.get(v..v_end).unwrap_or_default();
        let value = scan::parse_float(tok).ok_or_else(|| {
            lerr(
                v,
                format!("invalid exemplar value {}{}", show(tok), crlf_hint(tok)),
            )
        })?;
        let mut ex = Exemplar {
            labels: Labels::from_inner(inner),
            value,
            timestamp_ms: None,
        };
        if let Some(t) = self.next_token(b, v_end, "the exemplar timestamp")? {
            let t_end = scan::token_end(b, t);
            let tok = b.get(t..t_end).unwrap_or_default();
            ex.timestamp_ms = Some(self.parse_timestamp(tok, t)?);
            if let Some(n) = self.next_token(b, t_end, "end of line")? {
                return Err(lerr(n, "unexpected text after the exemplar timestamp"));
            }
        }
        Ok((ex, (open, v)))
    }
}

impl<'a> Iterator for Parser<'a> {
    type Item = Result<Entry<'a>, ParseError>;

    fn next(&mut self) -> Option<Self::Item> {
        self.next_entry(&[])
    }
}

impl<'a> Parser<'a> {
    fn next_entry(&mut self, hint: &[u8]) -> Option<Result<Entry<'a>, ParseError>> {
        self.hint_matched = false;
        loop {
            if let Some(e) = self.pending.pop_front() {
                return self.fail(e);
            }
            if self.finished {
                return None;
            }
            if self.pos >= self.body.len() {
                self.finish();
                continue;
            }
            let start = self.pos;
            let rest = self.body.get(start..).unwrap_or_default();
            // A hint is the series bytes of an accepted line, so it holds no newline: when the
            // line starts with it, the newline search starts after it, and the sample scanner
            // is told the prefix matched (an empty hint otherwise).
            let hint = if !hint.is_empty() && scan::starts_with(rest, hint) {
                hint
            } else {
                &[]
            };
            let (line, next) =
                match scan::find_byte(b'\n', rest.get(hint.len()..).unwrap_or_default()) {
                    Some(p) => (
                        rest.get(..hint.len() + p).unwrap_or_default(),
                        start + hint.len() + p + 1,
                    ),
                    None => (rest, self.body.len()),
                };
            let line_no = self.line_no;
            self.line_start = start;
            self.pos = next;
            self.line_no += 1;
            if self.saw_eof {
                self.finished = true;
                self.pending.clear();
                return Some(Err(ParseError::at(
                    line_no,
                    0,
                    "unexpected data after # EOF",
                )));
            }
            match self.parse_line(line, line_no, hint) {
                Ok(Some(entry)) => return Some(Ok(entry)),
                Ok(None) => {}
                Err(e) => return self.fail(e),
            }
        }
    }
}

/// Range of `b[from..]` without leading and trailing blanks.
fn trim_blanks(b: &[u8], from: usize) -> (usize, usize) {
    let s = scan::skip_blanks(b, from);
    let mut e = b.len();
    while e > s && b.get(e - 1).is_some_and(|&c| scan::is_blank(c)) {
        e -= 1;
    }
    (s, e)
}

/// Index of the first invalid escape: for the text format's HELP anything but `\\`, `\n`
/// (and `\"`, which promtool accepts); with `any_char` (OpenMetrics) only a backslash at the
/// very end.
fn bad_escape(s: &[u8], any_char: bool) -> Option<usize> {
    let mut i = 0;
    while let Some(p) = s.get(i..).and_then(|r| scan::find_byte(b'\\', r)) {
        let at = i + p;
        match s.get(at + 1) {
            None => return Some(at),
            Some(b'\\' | b'n' | b'"') => {}
            Some(_) if any_char => {}
            Some(_) => return Some(at),
        }
        i = at + 2;
    }
    None
}

/// Index of the first `"` not preceded by an escaping backslash.
fn unescaped_quote(s: &[u8]) -> Option<usize> {
    let mut i = 0;
    while let Some(p) = s.get(i..).and_then(|r| scan::find_either(b'"', b'\\', r)) {
        let at = i + p;
        if s.get(at) == Some(&b'"') {
            return Some(at);
        }
        i = at + 2;
    }
    None
}
