//! Unit tests for the exposition parser, plus the corpus, round-trip and no-panic fuzz tests.
//!
//! The corpus tests read the real-world expositions in `shared/corpus` (next to the repo);
//! set `VIGIL_EXPOSITION_CORPUS` to point elsewhere.

use std::borrow::Cow;
use std::path::PathBuf;

use super::*;

fn entries(body: &str, format: Format, mode: Mode) -> Vec<Result<Entry<'_>, ParseError>> {
    Parser::new(body.as_bytes(), format, mode).collect()
}

fn samples(body: &str, format: Format) -> Vec<Sample<'_>> {
    let mut out = Vec::new();
    for e in Parser::new(body.as_bytes(), format, Mode::Scrape) {
        match e {
            Ok(Entry::Sample(s)) => out.push(s),
            Ok(_) => {}
            Err(e) => panic!("unexpected error {e} in {body:?}"),
        }
    }
    out
}

fn first_error(body: &str, format: Format, mode: Mode) -> Option<ParseError> {
    Parser::new(body.as_bytes(), format, mode).find_map(Result::err)
}

fn labels_of(s: &Sample<'_>) -> Vec<(String, String)> {
    s.labels
        .iter()
        .map(|(n, v)| (n.to_string(), v.into_owned()))
        .collect()
}

#[test]
fn content_types() {
    let om = Some(Format::OpenMetrics);
    let text = Some(Format::Text);
    assert_eq!(
        format_from_content_type("application/openmetrics-text; version=1.0.0; charset=utf-8"),
        om
    );
    assert_eq!(
        format_from_content_type("application/openmetrics-text;version=0.0.1"),
        om
    );
    assert_eq!(format_from_content_type("Application/OpenMetrics-Text"), om);
    assert_eq!(
        format_from_content_type("application/openmetrics-text; version=2.0.0"),
        None
    );
    assert_eq!(
        format_from_content_type("text/plain; version=0.0.4; charset=utf-8"),
        text
    );
    assert_eq!(format_from_content_type("text/plain"), text);
    assert_eq!(
        format_from_content_type(" text/plain ;version=\"0.0.4\""),
        text
    );
    assert_eq!(
        format_from_content_type("application/vnd.google.protobuf; proto=x"),
        None
    );
    assert_eq!(format_from_content_type("application/json"), None);
    assert_eq!(format_from_content_type(""), None);
}

#[test]
fn detection() {
    assert_eq!(detect_format(b"a 1\n"), Format::Text);
    assert_eq!(detect_format(b""), Format::Text);
    assert_eq!(detect_format(b"a 1\n# EOF\n"), Format::OpenMetrics);
    assert_eq!(detect_format(b"a 1\n# EOF"), Format::OpenMetrics);
    assert_eq!(
        detect_format(b"# TYPE a counter\na_total 1\n# EOF\n"),
        Format::OpenMetrics
    );
    // A text exposition that happens to end with a "# EOF" comment.
    assert_eq!(
        detect_format(
            b"# TYPE a_total counter\na_total 1\n# TYPE b_total counter\nb_total 1\n# EOF\n"
        ),
        Format::Text
    );
    assert_eq!(
        detect_format(b"# UNIT a_seconds seconds\na_seconds 1\n"),
        Format::OpenMetrics
    );
    assert_eq!(
        detect_format(b"# TYPE a info\na_info 1\n"),
        Format::OpenMetrics
    );
    assert_eq!(
        detect_format(b"a_bucket{le=\"1\"} 1 # {t=\"x\"} 0.5\n"),
        Format::OpenMetrics
    );
    assert_eq!(
        detect_format(b"# TYPE a untyped\na 1\n# EOF\n"),
        Format::Text
    );
    assert_eq!(
        detect_format(b"# just a comment\na 1\n# EOF\n"),
        Format::Text
    );
}

#[test]
fn text_basics() {
    let body = "# HELP http_requests_total The total number of HTTP requests.\n\
                # TYPE http_requests_total counter\n\
                http_requests_total{method=\"post\",code=\"200\"} 1027 1395066363000\n\
                http_requests_total{method=\"post\",code=\"400\"}    3 1395066363000\n\
                \n\
                # Escaping in label values:\n\
                msdos_file_access_time_seconds{path=\"C:\\\\DIR\\\\FILE.TXT\",error=\"Cannot find file:\\n\\\"FILE.TXT\\\"\"} 1.458255915e9\n\
                metric_without_timestamp_and_labels 12.47\n\
                something_weird{problem=\"division by zero\"} +Inf -3982045\n";
    let all = entries(body, Format::Text, Mode::Scrape);
    assert_eq!(all.len(), 7, "{all:?}");
    assert_eq!(
        all[0],
        Ok(Entry::Help {
            family: "http_requests_total",
            text: Cow::Borrowed("The total number of HTTP requests.")
        })
    );
    assert_eq!(
        all[1],
        Ok(Entry::Type {
            family: "http_requests_total",
            kind: MetricType::Counter
        })
    );
    let s = samples(body, Format::Text);
    assert_eq!(s.len(), 5);
    assert_eq!(s[0].name, "http_requests_total");
    assert_eq!(
        s[0].series,
        b"http_requests_total{method=\"post\",code=\"200\"}"
    );
    assert_eq!(s[0].value, 1027.0);
    assert_eq!(s[0].timestamp_ms, Some(1_395_066_363_000));
    assert_eq!(s[0].family_type, MetricType::Counter);
    assert_eq!(s[1].value, 3.0);
    assert_eq!(
        labels_of(&s[2]),
        vec![
            ("path".to_string(), "C:\\DIR\\FILE.TXT".to_string()),
            (
                "error".to_string(),
                "Cannot find file:\n\"FILE.TXT\"".to_string()
            )
        ]
    );
    assert_eq!(s[2].value, 1.458255915e9);
    assert_eq!(s[2].family_type, MetricType::Unknown);
    assert_eq!(s[3].labels.len(), 0);
    assert_eq!(s[4].value, f64::INFINITY);
    assert_eq!(s[4].timestamp_ms, Some(-3_982_045));
    assert!(check(body.as_bytes(), Format::Text).is_empty());
}

#[test]
fn zero_copy_labels() {
    let body = "a{x=\"plain\",y=\"esc\\\"aped\"} 1\n";
    let s = samples(body, Format::Text);
    let v: Vec<(&str, Cow<'_, str>)> = s[0].labels.iter().collect();
    assert!(matches!(v[0].1, Cow::Borrowed("plain")));
    assert!(matches!(&v[1].1, Cow::Owned(o) if o == "esc\"aped"));
    assert_eq!(s[0].labels.get("y").as_deref(), Some("esc\"aped"));
    assert_eq!(s[0].labels.as_raw(), "x=\"plain\",y=\"esc\\\"aped\"");
    // The series slice points into the body.
    let range = body.as_bytes().as_ptr_range();
    assert!(range.contains(&s[0].series.as_ptr()));
}

#[test]
fn values_and_specials() {
    let body =
        "a 1\nb -1.5e-3\nc NaN\nd +Inf\ne -Inf\nf Inf\ng nan\nh +infinity\ni .5\nj 5.\nk 0x1p3\n";
    let err = first_error(body, Format::Text, Mode::Scrape).expect("0x1p3 is rejected");
    assert_eq!((err.line, err.col), (11, 3));
    assert!(err.message.contains("invalid value"), "{err}");
    let ok = body.replace("k 0x1p3\n", "");
    let s = samples(&ok, Format::Text);
    let v: Vec<f64> = s.iter().map(|s| s.value).collect();
    assert_eq!(v[0], 1.0);
    assert_eq!(v[1], -1.5e-3);
    assert!(v[2].is_nan());
    assert_eq!(&v[3..6], &[f64::INFINITY, f64::NEG_INFINITY, f64::INFINITY]);
    assert!(v[6].is_nan());
    assert_eq!(&v[7..], &[f64::INFINITY, 0.5, 5.0]);
}

#[test]
fn text_whitespace_and_commas() {
    let body = "  a { x = \"1\" , y=\"2\", } 7   123  \n\tb{}8\nc{x=\"1\" y=\"2\"} 9\n";
    let s = samples(body, Format::Text);
    assert_eq!(s.len(), 3);
    assert_eq!(s[0].series, b"a { x = \"1\" , y=\"2\", }");
    assert_eq!(
        labels_of(&s[0]),
        vec![("x".into(), "1".into()), ("y".into(), "2".into())]
    );
    assert_eq!(s[0].timestamp_ms, Some(123));
    assert_eq!(s[1].value, 8.0);
    // Missing comma: accepted when scraping (like Prometheus), rejected by strict mode.
    assert_eq!(s[2].labels.len(), 2);
    let errs = check(body.as_bytes(), Format::Text);
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert_eq!((errs[0].line, errs[0].col), (3, 9));
}

#[test]
fn text_comments_and_metadata_forms() {
    let body =
        "#HELP not metadata\n# HELP\n#\n# random comment\n#  TYPE  a\tgauge \n# HELP a\na 1\n";
    let all: Vec<Entry<'_>> = entries(body, Format::Text, Mode::Scrape)
        .into_iter()
        .map(|e| e.expect("parses"))
        .collect();
    assert_eq!(all.len(), 3, "{all:?}");
    assert_eq!(
        all[0],
        Entry::Type {
            family: "a",
            kind: MetricType::Gauge
        }
    );
    assert_eq!(
        all[1],
        Entry::Help {
            family: "a",
            text: Cow::Borrowed("")
        }
    );
    // Text-format HELP only unescapes \\ and \n.
    let s = "# HELP a x\\\\y\\nz\\\"q\n";
    let e = entries(s, Format::Text, Mode::Scrape);
    assert_eq!(
        e[0],
        Ok(Entry::Help {
            family: "a",
            text: Cow::Owned("x\\y\nz\\\"q".into())
        })
    );
    let s = "# HELP a x\\\\y\\nz\\\"q\n# EOF\n";
    let e = entries(s, Format::OpenMetrics, Mode::Scrape);
    assert_eq!(
        e[0],
        Ok(Entry::Help {
            family: "a",
            text: Cow::Owned("x\\y\nz\"q".into())
        })
    );
}

#[test]
fn scrape_stops_at_first_error_with_position() {
    let body = "a 1\nb{x=\"1\"} oops\nc 2\nd{ 3\n";
    let all = entries(body, Format::Text, Mode::Scrape);
    assert_eq!(all.len(), 2);
    let err = all[1].clone().expect_err("second line fails");
    assert_eq!((err.line, err.col), (2, 10));
    assert_eq!(err.to_string(), "2:10: invalid value \"oops\"");
    // Strict mode goes on and reports both bad lines.
    let errs = check(body.as_bytes(), Format::Text);
    assert_eq!(errs.iter().map(|e| e.line).collect::<Vec<_>>(), vec![2, 4]);
}

#[test]
fn missing_final_newline() {
    assert!(first_error("a 1", Format::Text, Mode::Scrape).is_none());
    let errs = check(b"a 1", Format::Text);
    assert_eq!(errs.len(), 1);
    assert_eq!((errs[0].line, errs[0].col), (1, 4));
}

#[test]
fn crlf_is_rejected_with_a_hint() {
    let err = first_error("a 1\r\n", Format::Text, Mode::Scrape).expect("error");
    assert!(err.message.contains("CRLF"), "{err}");
    let errs = check(b"# HELP a x\r\na 1\n", Format::Text);
    assert_eq!((errs[0].line, errs[0].col), (1, 11));
}

#[test]
fn invalid_utf8() {
    let body = b"a{x=\"\xff\"} 1\n";
    let err = Parser::new(body, Format::Text, Mode::Scrape)
        .find_map(Result::err)
        .expect("error");
    assert_eq!((err.line, err.col), (1, 6));
    let body = b"# HELP a caf\xc3\n";
    let err = Parser::new(body, Format::Text, Mode::Scrape)
        .find_map(Result::err)
        .expect("error");
    assert_eq!((err.line, err.col), (1, 13));
    // Comments are only validated in strict mode.
    assert!(Parser::new(b"# \xff\n", Format::Text, Mode::Scrape).all(|e| e.is_ok()));
    assert_eq!(check(b"# \xff\n", Format::Text).len(), 1);
}

#[test]
fn openmetrics_basics() {
    let body = "# TYPE foo_seconds histogram\n\
                # UNIT foo_seconds seconds\n\
                # HELP foo_seconds Some \\\"text\\\".\n\
                foo_seconds_bucket{le=\"0.1\"} 8 # {} 0.054\n\
                foo_seconds_bucket{le=\"1\"} 11 # {trace_id=\"KOO5S4vxi0o\"} 0.67\n\
                foo_seconds_bucket{le=\"10\"} 17 # {trace_id=\"oHg5SJYRHA0\"} 9.8 1520879607.789\n\
                foo_seconds_bucket{le=\"+Inf\"} 17\n\
                foo_seconds_count 17\n\
                foo_seconds_sum 324789.3\n\
                foo_seconds_created 1520430000.123\n\
                # TYPE c counter\n\
                c_total 17.0 1520879607.789 # {a=\"b\"} 1\n\
                # EOF\n";
    let all: Vec<Entry<'_>> = entries(body, Format::OpenMetrics, Mode::Strict)
        .into_iter()
        .map(|e| e.expect("valid"))
        .collect();
    assert_eq!(
        all[1],
        Entry::Unit {
            family: "foo_seconds",
            unit: "seconds"
        }
    );
    assert_eq!(
        all[2],
        Entry::Help {
            family: "foo_seconds",
            text: Cow::Owned("Some \"text\".".into())
        }
    );
    assert_eq!(all.last(), Some(&Entry::Eof));
    let s = samples(body, Format::OpenMetrics);
    assert_eq!(s.len(), 8);
    assert!(
        s.iter()
            .take(7)
            .all(|s| s.family_type == MetricType::Histogram)
    );
    let ex = s[0].exemplar.as_ref().expect("exemplar");
    assert!(ex.labels.is_empty());
    assert_eq!(ex.value, 0.054);
    assert_eq!(ex.timestamp_ms, None);
    let ex = s[2].exemplar.as_ref().expect("exemplar");
    assert_eq!(ex.labels.get("trace_id").as_deref(), Some("oHg5SJYRHA0"));
    assert_eq!(ex.timestamp_ms, Some(1_520_879_607_789));
    assert!(s[3].exemplar.is_none());
    assert_eq!(s[6].value, 1_520_430_000.123);
    assert_eq!(s[7].timestamp_ms, Some(1_520_879_607_789));
    assert_eq!(s[7].family_type, MetricType::Counter);
}

#[test]
fn openmetrics_eof_rules() {
    let e = first_error("a 1\n", Format::OpenMetrics, Mode::Scrape).expect("missing EOF");
    assert_eq!((e.line, e.col), (2, 1));
    assert!(e.message.contains("# EOF"));
    let e = first_error("a 1", Format::OpenMetrics, Mode::Scrape).expect("missing EOF");
    assert_eq!((e.line, e.col), (1, 4));
    let e = first_error("# EOF\na 1\n", Format::OpenMetrics, Mode::Scrape).expect("data after");
    assert_eq!((e.line, e.col), (2, 1));
    let e = first_error("# EOF\n\n", Format::OpenMetrics, Mode::Scrape).expect("blank after");
    assert_eq!(e.line, 2);
    assert!(first_error("a 1\n# EOF", Format::OpenMetrics, Mode::Strict).is_none());
    assert!(first_error("# EOF\n", Format::OpenMetrics, Mode::Strict).is_none());
    // In the text format "# EOF" is just a comment.
    assert!(first_error("# EOF\na 1\n", Format::Text, Mode::Strict).is_none());
}

#[test]
fn openmetrics_strict_whitespace() {
    let cases = [
        ("a  1\n# EOF\n", 1, 3),
        ("a 1 \n# EOF\n", 1, 4),
        (" a 1\n# EOF\n", 1, 1),
        ("a{x=\"1\", y=\"2\"} 1\n# EOF\n", 1, 9),
        ("a{x=\"1\",} 1\n# EOF\n", 1, 8),
        ("a\t1\n# EOF\n", 1, 2),
        ("a 1\n\n# EOF\n", 2, 1),
        ("#  TYPE a gauge\n# EOF\n", 1, 3),
        ("# comment\n# EOF\n", 1, 3),
        ("a{}1\n# EOF\n", 1, 4),
    ];
    for (body, line, col) in cases {
        let e = first_error(body, Format::OpenMetrics, Mode::Strict).expect(body);
        assert_eq!((e.line, e.col), (line, col), "{body:?}: {e}");
    }
    // Scrape mode tolerates the whitespace variants (but not comments).
    for body in [
        "a  1\n# EOF\n",
        "a 1 \n# EOF\n",
        "a{x=\"1\",} 1\n# EOF\n",
        "a 1\n\n# EOF\n",
    ] {
        assert!(
            first_error(body, Format::OpenMetrics, Mode::Scrape).is_none(),
            "{body:?}"
        );
    }
    assert!(first_error("# comment\n# EOF\n", Format::OpenMetrics, Mode::Scrape).is_some());
}

#[test]
fn family_type_attribution_when_scraping() {
    let body = "# TYPE h histogram\nh_bucket{le=\"+Inf\"} 1\nh_count 1\nh_sum 2\nh_other 3\n\
                # TYPE s summary\ns{quantile=\"0.5\"} 1\ns_count 1\n\
                # TYPE c_total counter\nc_total 1\n# HELP g help\n# TYPE g gauge\ng 1\nu 1\n";
    let types: Vec<MetricType> = samples(body, Format::Text)
        .iter()
        .map(|s| s.family_type)
        .collect();
    use MetricType::*;
    assert_eq!(
        types,
        vec![
            Histogram, Histogram, Histogram, Unknown, Summary, Summary, Counter, Gauge, Unknown
        ]
    );
    let body = "# TYPE c counter\nc_total 1\nc_created 2\nc 3\n# TYPE i info\ni_info{v=\"1\"} 1\n\
                # TYPE gh gaugehistogram\ngh_bucket{le=\"+Inf\"} 1\ngh_gcount 1\ngh_gsum 1\n\
                # TYPE st stateset\nst{st=\"a\"} 1\n# EOF\n";
    let types: Vec<MetricType> = samples(body, Format::OpenMetrics)
        .iter()
        .map(|s| s.family_type)
        .collect();
    assert_eq!(
        types,
        vec![
            Counter,
            Counter,
            Counter,
            Info,
            GaugeHistogram,
            GaugeHistogram,
            GaugeHistogram,
            StateSet
        ]
    );
}

#[test]
fn strict_rules_report_positions() {
    // (body, format, line, col, message part)
    let om = Format::OpenMetrics;
    let text = Format::Text;
    let cases: Vec<(&str, Format, usize, usize, &str)> = vec![
        ("a 1\nb 1\na 2\n", text, 3, 1, "not contiguous"),
        ("a 1\n# TYPE a gauge\n", text, 2, 8, "after its samples"),
        (
            "# HELP a x\n# HELP a y\na 1\n",
            text,
            2,
            8,
            "duplicate # HELP",
        ),
        (
            "# TYPE a gauge\n# TYPE a gauge\n",
            text,
            2,
            8,
            "duplicate # TYPE",
        ),
        (
            "a{x=\"1\"} 1\na{x=\"1\"} 2\n",
            text,
            2,
            1,
            "duplicate series",
        ),
        ("a 1 200\na 2 100\n", text, 2, 5, "not after the previous"),
        ("a{x=\"1\",x=\"2\"} 1\n", text, 1, 9, "duplicate label name"),
        ("a{__x=\"1\"} 1\n", text, 1, 3, "reserved"),
        ("# TYPE c counter\nc -1\n", text, 2, 3, "negative"),
        ("a{x=\"\\q\"} 1\n", text, 1, 6, "invalid escape"),
        ("# HELP a \\q\n", text, 1, 10, "invalid escape"),
        (
            "# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_count 1\n",
            text,
            2,
            1,
            "+Inf",
        ),
        (
            "# TYPE h histogram\nh_bucket{le=\"2\"} 1\nh_bucket{le=\"1\"} 1\nh_bucket{le=\"+Inf\"} 1\n",
            text,
            3,
            10,
            "sorted",
        ),
        (
            "# TYPE h histogram\nh_bucket{le=\"1\"} 2\nh_bucket{le=\"+Inf\"} 1\n",
            text,
            3,
            21,
            "must not decrease",
        ),
        (
            "# TYPE h histogram\nh_bucket{le=\"+Inf\"} 2\nh_count 3\n",
            text,
            3,
            1,
            "must be equal",
        ),
        (
            "# TYPE h histogram\nh_bucket{le=\"x\"} 2\nh_bucket{le=\"+Inf\"} 2\n",
            text,
            2,
            10,
            "not a number",
        ),
        (
            "# TYPE h histogram\nh_bucket 2\n",
            text,
            2,
            1,
            "no \"le\" label",
        ),
        (
            "# TYPE s summary\ns{quantile=\"0.9\"} 1\ns{quantile=\"0.5\"} 1\n",
            text,
            3,
            3,
            "increasing order",
        ),
        (
            "# TYPE s summary\ns{quantile=\"high\"} 1\n",
            text,
            2,
            3,
            "not a number",
        ),
        ("# TYPE c counter\nc 1\n# EOF\n", om, 2, 1, "_total"),
        ("# TYPE c counter\nc_total NaN\n# EOF\n", om, 2, 9, "NaN"),
        ("# TYPE i info\ni_info 2\n# EOF\n", om, 2, 8, "value 1"),
        (
            "# TYPE s stateset\ns{s=\"a\"} 2\n# EOF\n",
            om,
            2,
            10,
            "0 or 1",
        ),
        (
            "# TYPE s stateset\ns{x=\"a\"} 1\n# EOF\n",
            om,
            2,
            1,
            "named after its family",
        ),
        (
            "# TYPE s_bytes stateset\n# UNIT s_bytes bytes\n# EOF\n",
            om,
            2,
            8,
            "must not have a unit",
        ),
        (
            "# TYPE a_bytes gauge\n# UNIT a_bytes seconds\n# EOF\n",
            om,
            2,
            16,
            "not a suffix",
        ),
        (
            "# TYPE h histogram\nh_bucket{le=\"+Inf\"} 1.5\n# EOF\n",
            om,
            2,
            21,
            "integer",
        ),
        (
            "# TYPE h histogram\nh_bucket{le=\"+Inf\"} 1\nh_count 1\n# EOF\n",
            om,
            3,
            1,
            "without",
        ),
        (
            "# TYPE g gauge\ng 1 # {a=\"b\"} 1\n# EOF\n",
            om,
            2,
            7,
            "only allowed",
        ),
        (
            "# TYPE s summary\ns{quantile=\"1.5\"} 1\n# EOF\n",
            om,
            2,
            3,
            "between 0 and 1",
        ),
        (
            "# TYPE a gauge\na{x=\"1\"} 1 1\na{x=\"2\"} 1 1\na{x=\"1\"} 1 5\n# EOF\n",
            om,
            4,
            1,
            "interleaved",
        ),
        (
            "# HELP a x\n# HELP b y\n# TYPE a gauge\n# EOF\n",
            om,
            3,
            8,
            "not contiguous",
        ),
    ];
    for (body, format, line, col, msg) in cases {
        let errs = check(body.as_bytes(), format);
        let Some(e) = errs.first() else {
            panic!("no error for {body:?}");
        };
        assert_eq!((e.line, e.col), (line, col), "{body:?}: {errs:?}");
        assert!(e.message.contains(msg), "{body:?}: {e}");
    }
}

#[test]
fn strict_accepts_repeated_series_with_increasing_timestamps() {
    let body = "# TYPE a gauge\na 1 1\na 2 2\n# TYPE s summary\ns_count 0 1\ns_sum 0 1\ns_count 0 2\ns_sum 0 2\n# EOF\n";
    assert_eq!(check(body.as_bytes(), Format::OpenMetrics), vec![]);
}

#[test]
fn check_collects_many_errors() {
    let body = "a 1\nb{ 2\nc 3 x\na 4\n# TYPE d foo\n";
    let errs = check(body.as_bytes(), Format::Text);
    let lines: Vec<usize> = errs.iter().map(|e| e.line).collect();
    assert_eq!(lines, vec![2, 3, 4, 5], "{errs:?}");
}

#[test]
fn render_round_trip_property() {
    let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
    let pieces = [
        "", "a", "\\", "\"", "\n", "é", "{", "}", ",", "=", " ", "\u{0}", "#",
    ];
    for round in 0..300 {
        let n = 1 + rng.below(6) as usize;
        let mut list = Vec::new();
        for i in 0..n {
            let nl = rng.below(4) as usize;
            let labels: Vec<(String, String)> = (0..nl)
                .map(|j| {
                    let v: String = (0..rng.below(5))
                        .map(|_| pieces[rng.below(pieces.len() as u64) as usize])
                        .collect();
                    (format!("l{j}"), v)
                })
                .collect();
            let value = match rng.below(6) {
                0 => f64::INFINITY,
                1 => f64::NEG_INFINITY,
                2 => (rng.next() as i64 as f64) / 7.0,
                3 => f64::from_bits(rng.next()),
                4 => rng.below(1000) as f64,
                _ => -1e-300,
            };
            let ts = if rng.below(2) == 0 {
                Some(rng.next() as i64 / 1000)
            } else {
                None
            };
            let exemplar = if rng.below(3) == 0 {
                Some(OwnedExemplar {
                    labels: vec![("t".into(), "x\"".into())],
                    value: 0.25,
                    timestamp_ms: ts,
                })
            } else {
                None
            };
            list.push(OwnedSample {
                name: format!("m{round}_{i}:x"),
                labels,
                value,
                timestamp_ms: ts,
                exemplar,
            });
        }
        for format in [Format::Text, Format::OpenMetrics] {
            let body = match format {
                Format::Text => render_text(&list),
                Format::OpenMetrics => render_openmetrics(&list),
            };
            // Exemplars need a counter or histogram family, which a bare sample list lacks.
            let errs = check(body.as_bytes(), format);
            assert!(
                errs.iter()
                    .all(|e| e.message.contains("exemplars are only allowed")),
                "{body}\n{errs:?}"
            );
            let back: Vec<OwnedSample> = Parser::new(body.as_bytes(), format, Mode::Scrape)
                .filter_map(|e| match e {
                    Ok(Entry::Sample(s)) => Some(s.to_owned_sample()),
                    Ok(_) => None,
                    Err(e) => panic!("{e} in {body}"),
                })
                .collect();
            assert_eq!(back.len(), list.len());
            for (a, b) in list.iter().zip(&back) {
                assert_eq!(a.name, b.name);
                assert_eq!(a.labels, b.labels, "{body}");
                assert!(
                    a.value.to_bits() == b.value.to_bits()
                        || (a.value.is_nan() && b.value.is_nan()),
                    "{body}"
                );
                assert_eq!(a.timestamp_ms, b.timestamp_ms);
                match format {
                    Format::Text => assert!(b.exemplar.is_none()),
                    Format::OpenMetrics => assert_eq!(a.exemplar, b.exemplar),
                }
            }
        }
    }
}

#[test]
fn write_entry_round_trips_metadata() {
    let body = "# HELP a x\\ny \"q\"\n# TYPE a counter\n# UNIT a_s s\na_total 1\n# EOF\n";
    let mut out = String::new();
    for e in Parser::new(body.as_bytes(), Format::OpenMetrics, Mode::Scrape) {
        write_entry(&mut out, &e.expect("parses"), Format::OpenMetrics);
    }
    assert_eq!(
        out,
        "# HELP a x\\ny \\\"q\\\"\n# TYPE a counter\n# UNIT a_s s\na_total 1\n# EOF\n"
    );
}

/// Minimal xorshift64 generator for the property and fuzz tests.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// The real-world corpus directory (`shared/corpus` beside the repository).
pub(super) fn corpus_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("VIGIL_EXPOSITION_CORPUS") {
        return PathBuf::from(dir);
    }
    let beside_repo = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/corpus"));
    if beside_repo.is_dir() {
        return beside_repo;
    }
    PathBuf::from("/work/shared/corpus")
}

fn corpus_files() -> Vec<(String, Vec<u8>)> {
    let dir = corpus_dir();
    let rd = std::fs::read_dir(&dir).unwrap_or_else(|e| {
        panic!(
            "cannot read the exposition corpus at {}: {e}; set VIGIL_EXPOSITION_CORPUS to the shared/corpus directory",
            dir.display()
        )
    });
    let mut files: Vec<(String, Vec<u8>)> = rd
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "txt"))
        .map(|p| {
            let body = std::fs::read(&p).unwrap_or_else(|e| panic!("read {}: {e}", p.display()));
            (
                p.file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default(),
                body,
            )
        })
        .collect();
    files.sort();
    assert!(
        files.len() >= 4,
        "expected the corpus files in {}",
        dir.display()
    );
    files
}

#[test]
fn corpus_parses_in_scrape_mode_with_independent_counts() {
    for (name, body) in corpus_files() {
        let want_format = if name.contains(".om.") {
            Format::OpenMetrics
        } else {
            Format::Text
        };
        let format = detect_format(&body);
        assert_eq!(format, want_format, "{name}");
        let mut n = 0usize;
        for e in Parser::new(&body, format, Mode::Scrape) {
            match e {
                Ok(Entry::Sample(s)) => {
                    n += 1;
                    // Touch the labels so lazily-parsed blocks are exercised too.
                    assert!(s.labels.iter().count() < 64);
                }
                Ok(_) => {}
                Err(e) => panic!("{name}: {e}"),
            }
        }
        // Independent count: lines that are neither comments nor blank.
        let independent = String::from_utf8_lossy(&body)
            .lines()
            .filter(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
            .count();
        assert_eq!(n, independent, "{name}");
        eprintln!("{name}: {format:?}, {n} samples");
    }
}

#[test]
fn corpus_text_files_pass_strict_check() {
    for (name, body) in corpus_files() {
        if detect_format(&body) == Format::Text {
            let errs = check(&body, Format::Text);
            assert!(errs.is_empty(), "{name}: {errs:?}");
            let types = |mode| {
                Parser::new(&body, Format::Text, mode)
                    .filter_map(|e| match e {
                        Ok(Entry::Sample(s)) => Some(s.family_type),
                        _ => None,
                    })
                    .collect::<Vec<_>>()
            };
            assert_eq!(types(Mode::Scrape), types(Mode::Strict), "{name}");
        }
    }
}

#[test]
fn fuzz_mutated_corpus_never_panics() {
    let files = corpus_files();
    let mut rng = XorShift(0x2545_f491_4f6c_dd1d);
    let tokens: [&[u8]; 14] = [
        b"\n",
        b"\"",
        b"\\",
        b"{",
        b"}",
        b",",
        b"=",
        b" ",
        b"#",
        b"# EOF\n",
        b"\xff",
        b"\r",
        b"+Inf",
        b"# {a=\"1\"} 1 2",
    ];
    // VIGIL_FUZZ_ITERS raises the iteration count for a longer local run.
    let iters: usize = std::env::var("VIGIL_FUZZ_ITERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3000);
    for iter in 0..iters {
        let (_, src) = &files[iter % files.len()];
        // Work on a window so each iteration stays cheap.
        let start = rng.below(src.len() as u64) as usize;
        let len = 1 + rng.below(4096) as usize;
        let window = &src[start..(start + len).min(src.len())];
        let mut body: Vec<u8> = window.to_vec();
        for _ in 0..1 + rng.below(8) {
            let at = rng.below(body.len() as u64 + 1) as usize;
            match rng.below(4) {
                0 if at < body.len() => body[at] = rng.next() as u8,
                1 if at < body.len() => {
                    body.remove(at);
                }
                _ => {
                    let t = tokens[rng.below(tokens.len() as u64) as usize];
                    body.splice(at..at, t.iter().copied());
                }
            }
        }
        for format in [Format::Text, Format::OpenMetrics] {
            for mode in [Mode::Scrape, Mode::Strict] {
                for e in Parser::new(&body, format, mode).flatten() {
                    if let Entry::Sample(s) = e {
                        let _ = s.labels.len();
                        let _ = s.labels.get("le");
                        let _ = s.exemplar.map(|x| x.labels.iter().count());
                    }
                }
            }
            let _ = check(&body, format);
            // The scrape loop's hints (series of the unmutated window) change nothing.
            let plain: Vec<String> = Parser::new(&body, format, Mode::Scrape)
                .map(|e| format!("{e:?}"))
                .collect();
            assert_eq!(hinted_entries(window, &body, format).0, plain);
        }
        let _ = detect_format(&body);
    }
}

/// Parses `cur` as the scrape loop does, with the previous body's series bytes as hints by
/// position; returns every entry as text, and how many hints matched.
fn hinted_entries(prev: &[u8], cur: &[u8], format: Format) -> (Vec<String>, usize) {
    let hints: Vec<&[u8]> = Parser::new(prev, format, Mode::Scrape)
        .map_while(Result::ok)
        .filter_map(|e| match e {
            Entry::Sample(s) => Some(s.series),
            _ => None,
        })
        .collect();
    let mut p = Parser::new(cur, format, Mode::Scrape);
    let (mut out, mut matched, mut position) = (Vec::new(), 0, 0);
    loop {
        let hint = hints.get(position).copied().unwrap_or_default();
        let Some(e) = p.next_hinted(hint) else { break };
        if p.hint_matched()
            && let Ok(Entry::Sample(s)) = &e
        {
            matched += 1;
            assert_eq!(s.series, hint);
        }
        if matches!(e, Ok(Entry::Sample(_))) {
            position += 1;
        }
        out.push(format!("{e:?}"));
    }
    (out, matched)
}

#[test]
fn hints_never_change_what_is_parsed() {
    let plain = |body: &str, format| -> Vec<String> {
        entries(body, format, Mode::Scrape)
            .iter()
            .map(|e| format!("{e:?}"))
            .collect()
    };
    let base = "# TYPE a counter\na_total{x=\"1\",y=\"2\"} 1\na_total{x=\"2\"} 2\nb 3\nc{} 4\n";
    let variants = [
        // Unchanged: every labelled series is taken from its hint.
        base.to_string(),
        // A label value changed, a line inserted, a line removed.
        base.replace("x=\"2\"", "x=\"3\""),
        base.replace("b 3\n", "b 3\nnew{z=\"9\"} 5\n"),
        base.replace("a_total{x=\"2\"} 2\n", ""),
        // The hinted bytes followed by text that makes the line invalid or different.
        base.replace("a_total{x=\"1\",y=\"2\"} 1", "a_total{x=\"1\",y=\"2\"}x 1"),
        base.replace(
            "a_total{x=\"1\",y=\"2\"} 1",
            "a_total{x=\"1\",y=\"2\"},z=\"3\"} 1",
        ),
        base.replace("a_total{x=\"1\",y=\"2\"} 1", "a_total{x=\"1\",y=\"2\"}"),
        base.replace(
            "a_total{x=\"1\",y=\"2\"} 1",
            "a_total{x=\"1\",y=\"2\"} 1 1700000000000",
        ),
        // A longer name with the hint as a prefix.
        base.replace("c{} 4", "c{}_d{} 4"),
    ];
    for format in [Format::Text, Format::OpenMetrics] {
        for cur in &variants {
            let (hinted, matched) = hinted_entries(base.as_bytes(), cur.as_bytes(), format);
            assert_eq!(hinted, plain(cur, format), "{format:?} {cur:?}");
            if cur == base {
                assert_eq!(matched, 3, "{format:?}: every labelled series matched");
            }
        }
    }
    // The real-world corpus, each file against itself and against every other file.
    let files: Vec<(String, Format)> = corpus_files()
        .into_iter()
        .map(|(name, body)| {
            let body = String::from_utf8(body).unwrap_or_else(|e| panic!("{name}: {e}"));
            let format = detect_format(body.as_bytes());
            (body, format)
        })
        .collect();
    for (prev, pf) in &files {
        for (cur, cf) in &files {
            if pf != cf {
                continue;
            }
            let (hinted, _) = hinted_entries(prev.as_bytes(), cur.as_bytes(), *cf);
            assert_eq!(hinted, plain(cur, *cf));
        }
    }
}
