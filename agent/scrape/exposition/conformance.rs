//! Runner for the conformance corpus in `tests/fixtures/exposition` (layout in its
//! README.md): every `good/` case must pass strict [`check`] and parse, in both modes, to
//! exactly the samples of its `.expected` file; every `bad/` case must fail at the expected
//! `line:col` with the expected message, in scrape mode too when marked `both`.
//!
//! The directory defaults to the crate's `tests/fixtures/exposition`; set
//! `VIGIL_EXPOSITION_FIXTURES` to run it from elsewhere (e.g. a scratch crate).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use super::{Entry, Format, Mode, ParseError, Parser, Sample, check};

fn fixtures_dir() -> PathBuf {
    std::env::var_os("VIGIL_EXPOSITION_FIXTURES").map_or_else(
        || {
            PathBuf::from(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/tests/fixtures/exposition"
            ))
        },
        PathBuf::from,
    )
}

/// `NaN`, `+Inf`, `-Inf`, otherwise Rust's `{}`.
fn num(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v == f64::INFINITY {
        "+Inf".into()
    } else if v == f64::NEG_INFINITY {
        "-Inf".into()
    } else {
        format!("{v}")
    }
}

fn push_labels(out: &mut String, labels: &super::Labels<'_>, always_braces: bool) {
    if labels.is_empty() && !always_braces {
        return;
    }
    out.push('{');
    for (i, (n, v)) in labels.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let _ = write!(out, "{n}=\"");
        super::render::escape_label_value(out, &v);
        out.push('"');
    }
    out.push('}');
}

/// One `.expected` line: `name{l="v",...} value [timestamp_ms] [# {labels} value [ts]]`.
fn expected_line(s: &Sample<'_>) -> String {
    let mut out = s.name.to_string();
    push_labels(&mut out, &s.labels, false);
    let _ = write!(out, " {}", num(s.value));
    if let Some(ts) = s.timestamp_ms {
        let _ = write!(out, " {ts}");
    }
    if let Some(ex) = &s.exemplar {
        out.push_str(" # ");
        push_labels(&mut out, &ex.labels, true);
        let _ = write!(out, " {}", num(ex.value));
        if let Some(ts) = ex.timestamp_ms {
            let _ = write!(out, " {ts}");
        }
    }
    out
}

fn format_of(path: &Path) -> Option<Format> {
    match path.extension()?.to_str()? {
        "prom" => Some(Format::Text),
        "om" => Some(Format::OpenMetrics),
        _ => None,
    }
}

fn read(path: &Path) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))
}

/// The sample lines of `body`, or the first error.
fn sample_lines(body: &[u8], format: Format, mode: Mode) -> Result<Vec<String>, ParseError> {
    let mut out = Vec::new();
    for e in Parser::new(body, format, mode) {
        if let Entry::Sample(s) = e? {
            out.push(expected_line(&s));
        }
    }
    Ok(out)
}

fn run_good(path: &Path, format: Format) -> Result<(), String> {
    let body = read(path)?;
    let expected = String::from_utf8(read(&path.with_extension("expected"))?)
        .map_err(|e| format!("{}: .expected is not UTF-8: {e}", path.display()))?;
    let want: Vec<&str> = expected.lines().collect();
    let errs = check(&body, format);
    if !errs.is_empty() {
        return Err(format!("strict check reported {errs:?}"));
    }
    for mode in [Mode::Scrape, Mode::Strict] {
        let got = sample_lines(&body, format, mode).map_err(|e| format!("{mode:?}: {e}"))?;
        if got != want {
            return Err(format!(
                "{mode:?} samples differ:\n got: {got:#?}\nwant: {want:#?}"
            ));
        }
    }
    // Both modes must attribute every sample to the same family type.
    let types = |mode| {
        Parser::new(&body, format, mode)
            .filter_map(|e| match e {
                Ok(Entry::Sample(s)) => Some(s.family_type),
                _ => None,
            })
            .collect::<Vec<_>>()
    };
    let (scrape, strict) = (types(Mode::Scrape), types(Mode::Strict));
    if scrape != strict {
        return Err(format!(
            "family types differ: scrape {scrape:?}, strict {strict:?}"
        ));
    }
    Ok(())
}

/// Parses `line:col substring`.
fn parse_spec(s: &str) -> Option<(usize, usize, &str)> {
    let (pos, msg) = s.split_once(' ').unwrap_or((s, ""));
    let (l, c) = pos.split_once(':')?;
    Some((l.parse().ok()?, c.parse().ok()?, msg))
}

fn matches(e: &ParseError, line: usize, col: usize, msg: &str) -> bool {
    e.line == line && e.col == col && e.message.contains(msg)
}

fn run_bad(path: &Path, format: Format) -> Result<bool, String> {
    let body = read(path)?;
    let spec = String::from_utf8(read(&path.with_extension("error"))?)
        .map_err(|e| format!(".error is not UTF-8: {e}"))?;
    let mut lines = spec.lines();
    let both = match lines.next() {
        Some("both") => true,
        Some("strict-only") => false,
        other => {
            return Err(format!(
                "first line of .error must be both or strict-only, not {other:?}"
            ));
        }
    };
    let (line, col, msg) = lines
        .next()
        .and_then(parse_spec)
        .ok_or("second line of .error must be `line:col message`")?;
    let (s_line, s_col) = match lines.next().and_then(|l| l.strip_prefix("scrape ")) {
        Some(p) => parse_spec(p)
            .map(|(l, c, _)| (l, c))
            .ok_or("bad `scrape line:col` line")?,
        None => (line, col),
    };
    let errs = check(&body, format);
    match errs.first() {
        Some(e) if matches(e, line, col, msg) => {}
        Some(e) => {
            return Err(format!(
                "strict: expected {line}:{col} {msg:?}, got {e} (all: {errs:?})"
            ));
        }
        None => return Err("strict: no error".into()),
    }
    let scrape = Parser::new(&body, format, Mode::Scrape).find_map(Result::err);
    match (both, scrape) {
        (true, Some(e)) if matches(&e, s_line, s_col, msg) => {}
        (true, Some(e)) => {
            return Err(format!(
                "scrape: expected {s_line}:{s_col} {msg:?}, got {e}"
            ));
        }
        (true, None) => return Err("scrape: no error, but the case is marked both".into()),
        (false, Some(e)) => {
            return Err(format!(
                "scrape: unexpected error {e} (case is strict-only)"
            ));
        }
        (false, None) => {}
    }
    Ok(both)
}

fn cases(dir: &Path) -> Vec<(PathBuf, Format)> {
    let mut v: Vec<(PathBuf, Format)> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| {
            panic!(
                "cannot read {}: {e}; set VIGIL_EXPOSITION_FIXTURES",
                dir.display()
            )
        })
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter_map(|p| format_of(&p).map(|f| (p, f)))
        .collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

#[test]
fn conformance_corpus() {
    let root = fixtures_dir();
    let mut failures = Vec::new();
    let mut counts = [[0usize; 2]; 2]; // [good, bad][text, om]
    let idx = |f: Format| usize::from(f == Format::OpenMetrics);
    for (path, format) in cases(&root.join("good")) {
        counts[0][idx(format)] += 1;
        if let Err(e) = run_good(&path, format) {
            failures.push(format!("{}: {e}", path.display()));
        }
    }
    let mut both = 0;
    for (path, format) in cases(&root.join("bad")) {
        counts[1][idx(format)] += 1;
        match run_bad(&path, format) {
            Ok(b) => both += usize::from(b),
            Err(e) => failures.push(format!("{}: {e}", path.display())),
        }
    }
    eprintln!(
        "conformance: good text {} / om {}, bad text {} / om {} ({both} rejected in both modes)",
        counts[0][0], counts[0][1], counts[1][0], counts[1][1]
    );
    assert!(
        failures.is_empty(),
        "{} failing cases:\n{}",
        failures.len(),
        failures.join("\n")
    );
    let total: usize = counts.iter().flatten().sum();
    assert!(total >= 90, "expected at least 90 cases, found {total}");
    assert!(
        counts.iter().flatten().all(|&n| n > 0),
        "every group needs cases: {counts:?}"
    );
}
