//! Property tests of the exposition parser (proptest).
//!
//! - Round trips: generated sample lists (metric names with `:` and `_`, label values with
//!   arbitrary Unicode including `,` `=` `}` `"` `\` and line feeds, values including NaN, ±Inf,
//!   -0, subnormals and extremes, optional timestamps over the whole `i64` range, OpenMetrics
//!   exemplars) are written with `render_text` / `render_openmetrics` and parsed back. Every
//!   generated list parses in scrape mode; lists that are valid expositions (families
//!   contiguous, no duplicate series or label names, no reserved `__` label names, and no
//!   exemplars, which OpenMetrics allows only in typed families) also parse in strict mode and
//!   `check` finds nothing.
//!   The samples must come back equal: names, labels in order, values bit-equal (or both NaN),
//!   timestamps, exemplars.
//! - Robustness: the parser (both formats, both modes, including lazy label iteration),
//!   `check`, `detect_format` and `format_from_content_type` never panic, on arbitrary bytes
//!   and on valid expositions with random bytes spliced in.
//!
//! Case counts are fixed (256 per round-trip property, 512 per robustness property) so the
//! file runs in a few seconds; `PROPTEST_CASES` overrides them for a longer local run.

use proptest::prelude::*;
use proptest::test_runner::Config;
use vigil::scrape::exposition::{
    Entry, Format, Mode, OwnedExemplar, OwnedSample, Parser, check, detect_format,
    format_from_content_type, render_openmetrics, render_text,
};

fn cases(default: u32) -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// `default` cases (or `PROPTEST_CASES`), and no regression files written into the tree.
fn config(default: u32) -> Config {
    Config {
        cases: cases(default),
        failure_persistence: None,
        ..Config::default()
    }
}

fn metric_name() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-zA-Z_:][a-zA-Z0-9_:]{0,24}",
        // Realistic shapes: recording-rule names and the suffixes families use.
        "[a-z]{1,6}:[a-z_]{1,10}:[a-z0-9]{1,6}",
        "[a-z_]{1,12}_(total|bucket|sum|count|created|info)",
    ]
}

fn label_name() -> impl Strategy<Value = String> {
    "[a-zA-Z_][a-zA-Z0-9_]{0,12}"
}

fn label_value() -> impl Strategy<Value = String> {
    let special = prop_oneof![
        Just(','),
        Just('='),
        Just('}'),
        Just('{'),
        Just('"'),
        Just('\\'),
        Just('\n'),
        Just(' '),
        Just('#'),
        Just('n'),
        Just('\t'),
        Just('\u{e9}'),
        Just('\u{1f600}'),
    ];
    prop_oneof![
        any::<String>(),
        proptest::collection::vec(prop_oneof![special, any::<char>()], 0..16)
            .prop_map(String::from_iter),
    ]
}

fn value() -> impl Strategy<Value = f64> {
    prop_oneof![
        3 => any::<f64>(),
        1 => (-1_000_000i64..1_000_000).prop_map(|v| v as f64),
        1 => prop_oneof![
            Just(f64::NAN),
            Just(f64::INFINITY),
            Just(f64::NEG_INFINITY),
            Just(-0.0),
            Just(0.0),
            Just(f64::MAX),
            Just(f64::MIN),
            Just(f64::MIN_POSITIVE),
            Just(f64::from_bits(1)),
            Just(-f64::from_bits(1)),
            Just(1e16),
            Just(1e-5),
            Just(0.1),
            Just(9007199254740993.0),
        ],
    ]
}

fn timestamp() -> impl Strategy<Value = Option<i64>> {
    prop_oneof![
        2 => Just(None),
        2 => (0i64..4_000_000_000_000).prop_map(Some),
        1 => any::<i64>().prop_map(Some),
        1 => prop_oneof![Just(i64::MIN), Just(i64::MAX), Just(-1), Just(0), Just(-999)]
            .prop_map(Some),
    ]
}

fn labels() -> impl Strategy<Value = Vec<(String, String)>> {
    proptest::collection::vec((label_name(), label_value()), 0..5)
}

fn exemplar() -> impl Strategy<Value = Option<OwnedExemplar>> {
    prop_oneof![
        2 => Just(None),
        1 => (
            proptest::collection::vec(("[a-z_]{1,8}", "[ -~]{0,12}"), 0..3),
            value(),
            timestamp(),
        )
            .prop_map(|(labels, value, timestamp_ms)| Some(OwnedExemplar {
                labels,
                value,
                timestamp_ms,
            })),
    ]
}

fn sample() -> impl Strategy<Value = OwnedSample> {
    (metric_name(), labels(), value(), timestamp(), exemplar()).prop_map(
        |(name, labels, value, timestamp_ms, exemplar)| OwnedSample {
            name,
            labels,
            value,
            timestamp_ms,
            exemplar,
        },
    )
}

/// Any list of samples: a valid input for scrape mode, not necessarily for strict mode.
fn samples() -> impl Strategy<Value = Vec<OwnedSample>> {
    proptest::collection::vec(sample(), 0..12)
}

/// Makes `v` a valid exposition for strict mode: families (= names; there is no metadata, so
/// every name is its own untyped family) contiguous, unique label names without the reserved
/// `__` prefix, no duplicate series, no exemplars.
fn make_strict_valid(v: Vec<OwnedSample>) -> Vec<OwnedSample> {
    let mut out: Vec<OwnedSample> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for mut s in v {
        let mut names = std::collections::HashSet::new();
        s.labels
            .retain(|(n, _)| !n.starts_with("__") && names.insert(n.clone()));
        let mut key_labels = s.labels.clone();
        key_labels.sort();
        if !seen.insert((s.name.clone(), key_labels)) {
            continue;
        }
        // The renderers write no metadata, so every family is untyped, and OpenMetrics allows
        // exemplars only on counters' `_total` and histograms' `_bucket` samples.
        s.exemplar = None;
        out.push(s);
    }
    // Group by name, keeping first-appearance order of the names.
    let mut order: Vec<String> = Vec::new();
    for s in &out {
        if !order.contains(&s.name) {
            order.push(s.name.clone());
        }
    }
    let mut grouped = Vec::with_capacity(out.len());
    for name in order {
        grouped.extend(out.iter().filter(|s| s.name == name).cloned());
    }
    grouped
}

fn parse_all(body: &str, format: Format, mode: Mode) -> Result<Vec<OwnedSample>, String> {
    let mut out = Vec::new();
    for e in Parser::new(body.as_bytes(), format, mode) {
        match e {
            Ok(Entry::Sample(s)) => out.push(s.to_owned_sample()),
            Ok(_) => {}
            Err(e) => return Err(format!("{e}")),
        }
    }
    Ok(out)
}

fn same_f64(a: f64, b: f64) -> bool {
    (a.is_nan() && b.is_nan()) || a.to_bits() == b.to_bits()
}

/// Equal samples: names, labels (in order), values bit-equal or both NaN, timestamps and (for
/// OpenMetrics) exemplars; the text format has no exemplars.
fn assert_same(got: &[OwnedSample], want: &[OwnedSample], format: Format, body: &str) {
    assert_eq!(got.len(), want.len(), "sample count; body:\n{body}");
    for (g, w) in got.iter().zip(want) {
        let ctx = || format!("\n got {g:?}\nwant {w:?}\nbody:\n{body}");
        assert_eq!(g.name, w.name, "{}", ctx());
        assert_eq!(g.labels, w.labels, "{}", ctx());
        assert!(same_f64(g.value, w.value), "value{}", ctx());
        assert_eq!(g.timestamp_ms, w.timestamp_ms, "{}", ctx());
        match (format, &g.exemplar, &w.exemplar) {
            (Format::Text, None, _) => {}
            (Format::OpenMetrics, None, None) => {}
            (Format::OpenMetrics, Some(ge), Some(we)) => {
                assert_eq!(ge.labels, we.labels, "exemplar{}", ctx());
                assert!(same_f64(ge.value, we.value), "exemplar value{}", ctx());
                assert_eq!(ge.timestamp_ms, we.timestamp_ms, "exemplar{}", ctx());
            }
            _ => panic!("exemplar mismatch{}", ctx()),
        }
    }
}

/// Every way to read an exposition, results ignored: nothing may panic.
fn exercise(body: &[u8]) {
    for format in [Format::Text, Format::OpenMetrics] {
        for mode in [Mode::Scrape, Mode::Strict] {
            for e in Parser::new(body, format, mode).flatten() {
                if let Entry::Sample(s) = e {
                    for (n, v) in s.labels.iter() {
                        assert!(!n.is_empty());
                        let _ = v.len();
                    }
                    let _ = s.labels.len();
                    let _ = s.labels.get("le");
                    let _ = s.to_owned_sample();
                    if let Some(x) = s.exemplar {
                        let _ = x.labels.iter().count();
                    }
                }
            }
        }
        let _ = check(body, format);
    }
    let _ = detect_format(body);
    let _ = format_from_content_type(&String::from_utf8_lossy(body));
}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn text_round_trip_scrape(v in samples()) {
        let body = render_text(&v);
        let got = parse_all(&body, Format::Text, Mode::Scrape)
            .unwrap_or_else(|e| panic!("{e}\nbody:\n{body}"));
        assert_same(&got, &v, Format::Text, &body);
    }

    #[test]
    fn openmetrics_round_trip_scrape(v in samples()) {
        let body = render_openmetrics(&v);
        let got = parse_all(&body, Format::OpenMetrics, Mode::Scrape)
            .unwrap_or_else(|e| panic!("{e}\nbody:\n{body}"));
        assert_same(&got, &v, Format::OpenMetrics, &body);
    }

    #[test]
    fn text_round_trip_strict(v in samples().prop_map(make_strict_valid)) {
        let body = render_text(&v);
        let errors = check(body.as_bytes(), Format::Text);
        prop_assert!(errors.is_empty(), "{errors:?}\nbody:\n{body}");
        let got = parse_all(&body, Format::Text, Mode::Strict)
            .unwrap_or_else(|e| panic!("{e}\nbody:\n{body}"));
        assert_same(&got, &v, Format::Text, &body);
    }

    #[test]
    fn openmetrics_round_trip_strict(v in samples().prop_map(make_strict_valid)) {
        let body = render_openmetrics(&v);
        let errors = check(body.as_bytes(), Format::OpenMetrics);
        prop_assert!(errors.is_empty(), "{errors:?}\nbody:\n{body}");
        let got = parse_all(&body, Format::OpenMetrics, Mode::Strict)
            .unwrap_or_else(|e| panic!("{e}\nbody:\n{body}"));
        assert_same(&got, &v, Format::OpenMetrics, &body);
    }
}

proptest! {
    #![proptest_config(config(512))]

    #[test]
    fn arbitrary_bytes_never_panic(body in proptest::collection::vec(any::<u8>(), 0..512)) {
        exercise(&body);
    }

    #[test]
    fn arbitrary_text_never_panics(body in "(?s).{0,256}") {
        exercise(body.as_bytes());
    }

    #[test]
    fn spliced_expositions_never_panic(
        v in samples(),
        om in any::<bool>(),
        splices in proptest::collection::vec(
            (any::<prop::sample::Index>(), proptest::collection::vec(any::<u8>(), 0..6)),
            1..6,
        ),
    ) {
        let mut body = if om { render_openmetrics(&v) } else { render_text(&v) }.into_bytes();
        for (at, bytes) in splices {
            let at = at.index(body.len() + 1);
            body.splice(at..at, bytes);
        }
        exercise(&body);
    }
}
