//! `vigil test rules FILE...`: unit tests for SLO specs, in the spirit of `promtool test rules`.
//! Input series use promtool's expanding notation at a fixed interval, the engine evaluates
//! them on a synthetic clock, and expectations name an SLO, a window and the values expected at
//! a time.
//!
//! ```yaml
//! rule_files: [demo.yaml]            # relative to the test file
//! evaluation_interval: 1m
//! tests:
//!   - name: a 2% error rate burns at 4x a 99.5% budget
//!     interval: 1m
//!     input_series:
//!       - series: 'http_requests_total{job="demo",code="200"}'
//!         values: '0+98x120'          # 0, 98, 196, ... (121 samples)
//!       - series: 'http_requests_total{job="demo",code="500"}'
//!         values: '0+2x120'
//!     expect:
//!       - at: 60m
//!         slo: availability            # name, or service/name
//!         window: 1h
//!         burn_rate: 4
//!         sli: 0.98
//! ```
//!
//! Alert times: `{at: 1m, slo: availability, alert: page_fast, alert_state: firing}` runs the
//! alert engine (`crate::alert`) over the same rounds; `alert` is a burn-rate tier or an alert
//! name (`SLOBudgetExhausted`, `SLONoData`), `alert_state` one of inactive, pending, firing,
//! inhibited (firing, but a more severe tier notifies) and resolved.
//!
//! Values: numbers, `_` (no sample), `stale` (the series disappears), `a+bxn` / `a-bxn`
//! (a, a±b, …, a±nb), `axn` (a repeated n+1 times), `_xn` (n+1 missing samples).

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;

use super::engine::{Engine, SloStatus};
use super::spec::{Slo, load_file};
use crate::store::series::{LabelSet, Sample, Series, Snapshot};

/// A test file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TestFile {
    /// SLO files under test, relative to the test file.
    pub rule_files: Vec<PathBuf>,
    /// How often the engine evaluates.
    #[serde(default = "one_minute", deserialize_with = "crate::config::duration")]
    pub evaluation_interval: Duration,
    /// Start of the synthetic clock (RFC 3339); default 2026-01-05T00:00:00Z (a Monday).
    #[serde(default)]
    pub start: Option<String>,
    /// The test cases.
    pub tests: Vec<TestCase>,
}

fn one_minute() -> Duration {
    Duration::from_secs(60)
}

/// One test case.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TestCase {
    /// Name for reports.
    #[serde(default)]
    pub name: String,
    /// Spacing of the input samples.
    #[serde(default = "one_minute", deserialize_with = "crate::config::duration")]
    pub interval: Duration,
    /// Input series.
    pub input_series: Vec<InputSeries>,
    /// Expectations.
    pub expect: Vec<Expectation>,
}

/// An input series.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InputSeries {
    /// `name{label="value",...}`.
    pub series: String,
    /// Expanding notation.
    pub values: String,
}

/// What must hold at a time.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expectation {
    /// Time since the start (`60m`).
    #[serde(deserialize_with = "crate::config::duration")]
    pub at: Duration,
    /// SLO name or `service/name`.
    pub slo: String,
    /// Group labels of the instance (for grouped SLOs).
    #[serde(default)]
    pub group: BTreeMap<String, String>,
    /// Window for sli / error_ratio / burn_rate / good / total.
    #[serde(default)]
    pub window: Option<String>,
    /// Expected SLI (`null`: no traffic).
    #[serde(default, deserialize_with = "some_or_null")]
    pub sli: Option<Option<f64>>,
    /// Expected error ratio.
    #[serde(default, deserialize_with = "some_or_null")]
    pub error_ratio: Option<Option<f64>>,
    /// Expected burn rate.
    #[serde(default)]
    pub burn_rate: Option<f64>,
    /// Expected good events in the window.
    #[serde(default)]
    pub good: Option<f64>,
    /// Expected events in the window.
    #[serde(default)]
    pub total: Option<f64>,
    /// Expected budget remaining over the SLO window.
    #[serde(default)]
    pub error_budget_remaining: Option<f64>,
    /// Expected condition (`ok`, `no_data`, `target_down`, `invalid`).
    #[serde(default)]
    pub condition: Option<String>,
    /// Relative tolerance (default 1e-9).
    #[serde(default)]
    pub tolerance: Option<f64>,
    /// An alert of this SLO: a burn-rate tier (`page_fast`) or an alert name
    /// (`SLOBudgetExhausted`, `SLONoData`); checked against `alert_state`.
    #[serde(default)]
    pub alert: Option<String>,
    /// Expected state of `alert`: `inactive`, `pending`, `firing`, `resolved`, or
    /// `inhibited` (firing, but a more severe tier notifies).
    #[serde(default)]
    pub alert_state: Option<String>,
}

fn some_or_null<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Option<f64>>, D::Error> {
    Option::<f64>::deserialize(d).map(Some)
}

/// One value of an input series at a sample index.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Point {
    /// A sample.
    Value(f64),
    /// No sample at this time.
    Missing,
    /// The series is gone.
    Stale,
}

/// Expands promtool's notation.
pub fn expand(values: &str) -> Result<Vec<Point>, String> {
    let mut out = Vec::new();
    for tok in values.split_whitespace() {
        let bad = || format!("{tok:?} is not a value; use a number, _, stale, a+bxn, a-bxn or axn");
        match tok {
            "_" => out.push(Point::Missing),
            "stale" => out.push(Point::Stale),
            _ => match tok.split_once('x') {
                Some((head, n))
                    if !head.is_empty()
                        && n.chars().all(|c| c.is_ascii_digit())
                        && !n.is_empty() =>
                {
                    let n: usize = n.parse().map_err(|_| bad())?;
                    if head == "_" {
                        out.extend(std::iter::repeat_n(Point::Missing, n + 1));
                        continue;
                    }
                    // a+b or a-b, where a may itself be negative.
                    let split = head[1..].find(['+', '-']).map(|i| i + 1);
                    let (a, step) = match split {
                        Some(i) => {
                            let a: f64 = head[..i].parse().map_err(|_| bad())?;
                            let b: f64 = head[i + 1..].parse().map_err(|_| bad())?;
                            (a, if &head[i..=i] == "-" { -b } else { b })
                        }
                        None => (head.parse().map_err(|_| bad())?, 0.0),
                    };
                    out.extend((0..=n).map(|k| Point::Value(a + step * k as f64)));
                }
                _ => out.push(Point::Value(tok.parse().map_err(|_| bad())?)),
            },
        }
    }
    Ok(out)
}

/// Runs a test file; returns the failures (empty when every expectation holds).
pub fn run_file(path: &Path) -> Result<Vec<String>, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("{}: cannot read: {e}", path.display()))?;
    let file: TestFile =
        serde_yaml::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut slos: Vec<Arc<Slo>> = Vec::new();
    for f in &file.rule_files {
        let full = dir.join(f);
        let loaded = load_file(&full).map_err(|p| p.to_string())?;
        slos.extend(loaded.into_iter().map(Arc::new));
    }
    let start_ms = match &file.start {
        Some(s) => chrono::DateTime::parse_from_rfc3339(s)
            .map_err(|e| format!("start: {s:?}: {e}"))?
            .timestamp_millis(),
        None => 1_767_571_200_000, // 2026-01-05T00:00:00Z
    };
    let mut failures = Vec::new();
    for (n, case) in file.tests.iter().enumerate() {
        let name = if case.name.is_empty() {
            format!("tests[{n}]")
        } else {
            case.name.clone()
        };
        match run_case(case, &slos, start_ms, file.evaluation_interval) {
            Ok(f) => failures.extend(f.into_iter().map(|m| format!("{name}: {m}"))),
            Err(e) => failures.push(format!("{name}: {e}")),
        }
    }
    Ok(failures)
}

fn run_case(
    case: &TestCase,
    slos: &[Arc<Slo>],
    start_ms: i64,
    eval: Duration,
) -> Result<Vec<String>, String> {
    let mut inputs = Vec::new();
    for (i, s) in case.input_series.iter().enumerate() {
        let labels =
            parse_series(&s.series).map_err(|e| format!("input_series[{i}].series: {e}"))?;
        let points = expand(&s.values).map_err(|e| format!("input_series[{i}].values: {e}"))?;
        inputs.push((Series::new(labels), points));
    }
    let step = case.interval.as_millis() as i64;
    let eval_ms = (eval.as_millis() as i64).max(1);
    let mut times: Vec<i64> = case
        .expect
        .iter()
        .map(|e| e.at.as_millis() as i64)
        .collect();
    let last = times.iter().copied().max().unwrap_or(0);
    let mut t = 0;
    while t <= last {
        times.push(t);
        t += eval_ms;
    }
    times.sort_unstable();
    times.dedup();
    let mut engine = Engine::new(slos.to_vec());
    let mut alert_engine = crate::alert::engine::AlertEngine::default();
    let empty_store = crate::store::series::SeriesStore::new();
    let mut results: HashMap<i64, Vec<SloStatus>> = HashMap::new();
    let mut alerts: HashMap<i64, Vec<crate::alert::Alert>> = HashMap::new();
    for &t in &times {
        let mut samples = Vec::new();
        for (series, points) in &inputs {
            // The latest sample at or before t; absent when stale or before the first sample.
            let idx = (t / step.max(1)) as usize;
            let upto = &points[..(idx + 1).min(points.len())];
            if matches!(upto.last(), Some(Point::Stale)) {
                continue;
            }
            if let Some((k, Point::Value(v))) = upto
                .iter()
                .enumerate()
                .rev()
                .find(|(_, p)| matches!(p, Point::Value(_)))
            {
                if !upto[k..].contains(&Point::Stale) {
                    samples.push(Sample {
                        series: series.clone(),
                        value: *v,
                        timestamp_ms: start_ms + k as i64 * step,
                    });
                }
            }
        }
        let snap = vec![(
            "test".to_string(),
            Arc::new(Snapshot::from_samples(start_ms + t, samples)),
        )];
        let (statuses, _) = engine.round(start_ms + t, &snap);
        alerts.insert(
            t,
            alert_engine.evaluate(start_ms + t, &statuses, &empty_store),
        );
        results.insert(t, statuses);
    }
    let mut failures = Vec::new();
    for exp in &case.expect {
        let at = exp.at.as_millis() as i64;
        let label = format!("at {}, slo {}", humantime::format_duration(exp.at), exp.slo);
        let Some(st) = results
            .get(&at)
            .and_then(|s| s.iter().find(|s| s.id == exp.slo || s.name == exp.slo))
        else {
            failures.push(format!("{label}: no such SLO in the rule files"));
            continue;
        };
        if let Some(c) = &exp.condition {
            let got = serde_json::to_value(st.condition)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default();
            if &got != c {
                failures.push(format!("{label}: condition expected {c}, got {got}"));
            }
        }
        if let Some(name) = &exp.alert {
            let want = exp.alert_state.as_deref().unwrap_or("firing");
            let got = alerts
                .get(&at)
                .and_then(|list| {
                    list.iter().find(|a| {
                        let l = |k: &str| a.labels.get(k).map(String::as_str);
                        l("service") == Some(st.service.as_str())
                            && l("slo") == Some(st.name.as_str())
                            && (l("tier") == Some(name.as_str())
                                || l("alertname") == Some(name.as_str()))
                            && exp.group.iter().all(|(k, v)| a.labels.get(k) == Some(v))
                    })
                })
                .map(|a| match (a.state, &a.inhibited_by) {
                    (crate::alert::AlertState::Firing, Some(_)) => "inhibited",
                    (crate::alert::AlertState::Firing, None) => "firing",
                    (crate::alert::AlertState::Pending, _) => "pending",
                    (crate::alert::AlertState::Resolved, _) => "resolved",
                })
                .unwrap_or("inactive");
            if got != want {
                failures.push(format!("{label}: alert {name} expected {want}, got {got}"));
            }
        }
        let Some(inst) = st
            .instances
            .iter()
            .find(|i| exp.group.iter().all(|(k, v)| i.group.get(k) == Some(v)))
        else {
            if exp.window.is_some() || exp.error_budget_remaining.is_some() {
                failures.push(format!("{label}: no instance with group {:?}", exp.group));
            }
            continue;
        };
        let tol = exp.tolerance.unwrap_or(1e-9);
        let mut check = |what: &str, want: Option<f64>, got: Option<f64>| {
            failures.extend(mismatch(&label, what, want, got, tol));
        };
        if let Some(b) = exp.error_budget_remaining {
            check(
                "error_budget_remaining",
                Some(b),
                Some(inst.error_budget_remaining),
            );
        }
        if let Some(wname) = &exp.window {
            let Some(w) = inst.windows.iter().find(|w| &w.window == wname) else {
                let names: Vec<&str> = inst.windows.iter().map(|w| w.window.as_str()).collect();
                failures.push(format!(
                    "{label}: no window {wname:?}; windows are {}",
                    names.join(", ")
                ));
                continue;
            };
            let label = format!("{label}, window {wname}");
            let mut check = |what: &str, want: Option<f64>, got: Option<f64>| {
                failures.extend(mismatch(&label, what, want, got, tol));
            };
            if let Some(v) = exp.sli {
                check("sli", v, w.sli);
            }
            if let Some(v) = exp.error_ratio {
                check("error_ratio", v, w.error_ratio);
            }
            if let Some(v) = exp.burn_rate {
                check("burn_rate", Some(v), Some(w.burn_rate));
            }
            if let Some(v) = exp.good {
                check("good", Some(v), Some(w.good));
            }
            if let Some(v) = exp.total {
                check("total", Some(v), Some(w.total));
            }
        }
    }
    Ok(failures)
}

/// A failure message when `got` is not `want` within the relative tolerance (None = no traffic).
fn mismatch(
    label: &str,
    what: &str,
    want: Option<f64>,
    got: Option<f64>,
    tol: f64,
) -> Option<String> {
    let ok = match (want, got) {
        (None, None) => true,
        (Some(w), Some(g)) => (w - g).abs() <= tol * w.abs().max(1.0),
        _ => false,
    };
    (!ok).then(|| format!("{label}: {what} expected {}, got {}", fmt(want), fmt(got)))
}

fn fmt(v: Option<f64>) -> String {
    v.map(|x| x.to_string())
        .unwrap_or_else(|| "null (no traffic)".into())
}

/// Parses `name{a="b",...}` into labels, with PromQL string escapes.
fn parse_series(text: &str) -> Result<LabelSet, String> {
    let sel: crate::store::selector::Selector = text.parse()?;
    let mut pairs = Vec::new();
    for m in &sel.matchers {
        if m.op != crate::store::selector::MatchOp::Equal {
            return Err(format!("{text:?}: input series take = only"));
        }
        pairs.push((m.name.clone(), m.value.clone()));
    }
    Ok(LabelSet::from_pairs(pairs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expanding_notation() {
        use Point::*;
        assert_eq!(
            expand("0+10x3").expect("ok"),
            vec![Value(0.0), Value(10.0), Value(20.0), Value(30.0)]
        );
        assert_eq!(
            expand("5-1x2 _ stale").expect("ok"),
            vec![Value(5.0), Value(4.0), Value(3.0), Missing, Stale]
        );
        assert_eq!(
            expand("-2+1x1 7x2 _x1").expect("ok"),
            vec![
                Value(-2.0),
                Value(-1.0),
                Value(7.0),
                Value(7.0),
                Value(7.0),
                Missing,
                Missing
            ]
        );
        assert_eq!(expand("1e3 NaN").expect("ok")[0], Value(1000.0));
        assert!(expand("1+x3").is_err());
        assert!(expand("abc").is_err());
    }
}
