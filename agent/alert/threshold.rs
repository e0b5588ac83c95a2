//! Threshold rules: the `rules:` list of the alerts files (`alerts/*.yaml`), for what is not an
//! SLO (`pg_up == 0 for 1m`, Redis memory above 90%):
//!
//! ```yaml
//! rules:
//!   - alert: PostgresDown
//!     selector: pg_up
//!     op: "=="
//!     value: 0
//!     for: 1m
//!     labels: {severity: page}
//!     annotations: {summary: "{{ .labels.instance }} is down"}
//!   - alert: RedisMemoryHigh
//!     selector: redis_memory_used_bytes
//!     divide_by: redis_memory_max_bytes
//!     aggregate: sum
//!     by: [instance]
//!     op: ">"
//!     value: 0.9
//!     for: 5m
//! ```
//!
//! Without `aggregate`, every matching series is its own alert instance (its labels minus
//! `__name__`), as in PromQL; with it, one instance per value of the `by` labels. `divide_by`
//! divides by a second selector aggregated the same way (or, without `aggregate`, the series
//! with the same labels), as `a / b`; a zero denominator gives no value. Parsed by the alerts
//! file loader (`crate::notify::config`), which calls [`ThresholdRuleConfig::validate`];
//! evaluated by [`super::AlertEngine`] against the latest samples of the store.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use serde::Deserialize;

use super::state::Candidate;
use super::template::{self, THRESHOLD_VARS};
use crate::config::{Problem, check_label_name};
use crate::slo::spec::Op;
use crate::store::selector::Selector;
use crate::store::series::{Sample, SeriesStore};

/// How the matched series combine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RuleAggregate {
    /// Sum.
    Sum,
    /// Maximum.
    Max,
    /// Minimum.
    Min,
    /// Mean.
    Avg,
    /// Number of series.
    Count,
}

/// One `rules[]` entry of an alerts file.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ThresholdRuleConfig {
    /// The `alertname` label (`PostgresDown`).
    pub alert: String,
    /// Series selector (`pg_up{job="db"}`).
    pub selector: String,
    /// Combine the matched series (sum, max, min, avg, count); without it every series is its
    /// own alert.
    #[serde(default)]
    pub aggregate: Option<RuleAggregate>,
    /// Labels to aggregate by (one alert per value); needs `aggregate`.
    #[serde(default)]
    pub by: Vec<String>,
    /// Divide by this selector (aggregated the same way, matched on the `by` labels; without
    /// `aggregate`, on all labels but the name).
    #[serde(default)]
    pub divide_by: Option<String>,
    /// Comparison with `value`: `>`, `>=`, `<`, `<=`, `==`, `!=`.
    pub op: Op,
    /// The threshold.
    pub value: f64,
    /// How long the condition must hold before the alert fires.
    #[serde(default, rename = "for", deserialize_with = "crate::config::duration")]
    pub for_: Duration,
    /// How long it keeps firing after the condition stopped.
    #[serde(default, deserialize_with = "crate::config::duration")]
    pub keep_firing_for: Duration,
    /// Extra labels (templated), e.g. `severity: page`.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Annotations (templated: `{{ .value }}`, `{{ .labels.instance }}`, ...).
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
}

/// The operator as written in YAML.
pub fn op_text(op: Op) -> &'static str {
    match op {
        Op::Lt => "<",
        Op::Le => "<=",
        Op::Gt => ">",
        Op::Ge => ">=",
        Op::Eq => "==",
        Op::Ne => "!=",
    }
}

impl ThresholdRuleConfig {
    /// Semantic checks; `path` is e.g. `rules[2]`.
    pub fn validate(&self, path: &str, _base_dir: &Path, out: &mut Vec<Problem>) {
        let mut bad = |key: &str, message: String| out.push(Problem::at(path, key, message));
        let mut chars = self.alert.chars();
        let name_ok = chars
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
            && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':');
        if !name_ok {
            bad(
                "alert",
                format!(
                    "{:?} is not a valid alert name; use letters, digits, _ and : (not starting with a digit), e.g. PostgresDown",
                    self.alert
                ),
            );
        }
        let hint = "; write a series selector such as pg_up{job=\"db\"}";
        if let Err(e) = self.selector.parse::<Selector>() {
            bad("selector", format!("{e}{hint}"));
        }
        if let Some(d) = &self.divide_by {
            if let Err(e) = d.parse::<Selector>() {
                bad("divide_by", format!("{e}{hint}"));
            }
        }
        if !self.by.is_empty() && self.aggregate.is_none() {
            bad(
                "by",
                "needs aggregate (sum, max, min, avg or count); without it every series is its own alert".into(),
            );
        }
        for (i, l) in self.by.iter().enumerate() {
            if let Err(e) = check_label_name(l) {
                bad(&format!("by[{i}]"), e);
            }
        }
        if !self.value.is_finite() {
            bad("value", "must be a finite number".into());
        }
        for (k, v) in &self.labels {
            if let Err(e) = check_label_name(k) {
                bad(&format!("labels.{k}"), e);
            } else if k == "alertname" {
                bad(
                    "labels.alertname",
                    "is set from alert; remove it from labels".into(),
                );
            }
            if let Err(e) = template::check(v, THRESHOLD_VARS) {
                bad(&format!("labels.{k}"), e);
            }
        }
        for (k, v) in &self.annotations {
            if let Err(e) = check_label_name(k) {
                bad(&format!("annotations.{k}"), e);
            }
            if let Err(e) = template::check(v, THRESHOLD_VARS) {
                bad(&format!("annotations.{k}"), e);
            }
        }
    }
}

/// A rule ready to evaluate (selectors parsed).
#[derive(Debug, Clone, PartialEq)]
pub struct ThresholdRule {
    /// The config.
    pub config: ThresholdRuleConfig,
    selector: Selector,
    divide_by: Option<Selector>,
}

impl ThresholdRule {
    /// Compiles a validated rule; None when a selector does not parse (validation reports it).
    pub fn new(config: &ThresholdRuleConfig) -> Option<Self> {
        let selector = config.selector.parse().ok()?;
        let divide_by = match &config.divide_by {
            Some(d) => Some(d.parse().ok()?),
            None => None,
        };
        Some(Self {
            config: config.clone(),
            selector,
            divide_by,
        })
    }

    /// Key of the rule's state: rules with the same key keep their alerts across reloads.
    pub fn key(&self) -> String {
        format!(
            "threshold\u{0}{}\u{0}{}",
            self.config.alert,
            serde_json::to_string(&(
                &self.config.selector,
                &self.config.divide_by,
                &self.config.by,
                self.config.value,
                op_text(self.config.op)
            ))
            .unwrap_or_default()
        )
    }

    /// The label sets whose condition holds now.
    pub fn evaluate(&self, store: &SeriesStore) -> Vec<Candidate> {
        let c = &self.config;
        let num = self.values(&store.select(&self.selector));
        let den = self
            .divide_by
            .as_ref()
            .map(|d| self.values(&store.select(d)));
        let mut out = Vec::new();
        for (labels, v) in num {
            let v = match &den {
                Some(den) => match den.get(&labels) {
                    Some(d) if *d != 0.0 => v / d,
                    _ => continue,
                },
                None => v,
            };
            if !c.op.holds(v, c.value) {
                continue;
            }
            let vars = |name: &str| -> Option<String> {
                match name {
                    "alert" => Some(c.alert.clone()),
                    "value" => Some(template::number(v)),
                    "op" => Some(op_text(c.op).to_string()),
                    "threshold" => Some(template::number(c.value)),
                    "selector" => Some(c.selector.clone()),
                    _ => name
                        .strip_prefix("labels.")
                        .and_then(|l| labels.get(l).cloned()),
                }
            };
            let mut all = labels.clone();
            for (k, t) in &c.labels {
                all.insert(k.clone(), template::render(t, &vars));
            }
            all.insert("alertname".into(), c.alert.clone());
            let annotations = c
                .annotations
                .iter()
                .map(|(k, t)| (k.clone(), template::render(t, &vars)))
                .collect();
            out.push(Candidate::new(
                all,
                annotations,
                v,
                &format!("/api/v1/alerts?alertname={}", c.alert),
            ));
        }
        out
    }

    /// Values by output label set: per series (name dropped), or aggregated by `by`.
    fn values(&self, samples: &[Sample]) -> BTreeMap<BTreeMap<String, String>, f64> {
        let mut groups: BTreeMap<BTreeMap<String, String>, Vec<f64>> = BTreeMap::new();
        for s in samples {
            let key: BTreeMap<String, String> = match self.config.aggregate {
                None => s
                    .series
                    .labels
                    .iter()
                    .filter(|(k, _)| *k != "__name__")
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
                Some(_) => self
                    .config
                    .by
                    .iter()
                    .filter_map(|k| s.series.labels.get(k).map(|v| (k.clone(), v.to_string())))
                    .collect(),
            };
            groups.entry(key).or_default().push(s.value);
        }
        groups
            .into_iter()
            .filter_map(|(k, v)| {
                let agg = match self.config.aggregate {
                    // Two series with the same labels but another name: PromQL refuses the
                    // duplicate; take the last.
                    None => *v.last()?,
                    Some(RuleAggregate::Sum) => v.iter().sum(),
                    Some(RuleAggregate::Max) => v.iter().copied().fold(f64::NEG_INFINITY, f64::max),
                    Some(RuleAggregate::Min) => v.iter().copied().fold(f64::INFINITY, f64::min),
                    Some(RuleAggregate::Avg) => v.iter().sum::<f64>() / v.len() as f64,
                    Some(RuleAggregate::Count) => v.len() as f64,
                };
                Some((k, agg))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::series::{LabelSet, Series, Snapshot};
    use std::sync::Arc;

    fn rule(yaml: &str) -> ThresholdRule {
        let c: ThresholdRuleConfig = serde_yaml::from_str(yaml).expect("rule yaml");
        let mut problems = Vec::new();
        c.validate("rules[0]", Path::new("."), &mut problems);
        assert!(problems.is_empty(), "{problems:?}");
        ThresholdRule::new(&c).expect("compiles")
    }

    fn store(samples: &[(&[(&str, &str)], f64)]) -> SeriesStore {
        let st = SeriesStore::new();
        let samples = samples
            .iter()
            .map(|(labels, v)| Sample {
                series: Series::new(LabelSet::from_pairs(labels.iter().copied())),
                value: *v,
                timestamp_ms: 1000,
            })
            .collect();
        st.publish("t", Arc::new(Snapshot::from_samples(1000, samples)));
        st
    }

    #[test]
    fn per_series_without_aggregate() {
        let r = rule(
            "alert: PostgresDown\nselector: pg_up\nop: '=='\nvalue: 0\nfor: 1m\nlabels: {severity: page}\nannotations: {summary: '{{ .labels.instance }} is down ({{ .value }})'}\n",
        );
        let s = store(&[
            (&[("__name__", "pg_up"), ("instance", "a")], 0.0),
            (&[("__name__", "pg_up"), ("instance", "b")], 1.0),
            (&[("__name__", "other"), ("instance", "c")], 0.0),
        ]);
        let c = r.evaluate(&s);
        assert_eq!(c.len(), 1);
        assert_eq!(
            *c[0].labels,
            BTreeMap::from([
                ("alertname".to_string(), "PostgresDown".to_string()),
                ("instance".to_string(), "a".to_string()),
                ("severity".to_string(), "page".to_string()),
            ])
        );
        assert_eq!(c[0].annotations["summary"], "a is down (0)");
        assert_eq!(r.config.for_, Duration::from_secs(60));
    }

    #[test]
    fn aggregate_by_and_count() {
        let s = store(&[
            (&[("__name__", "lag"), ("group", "g1"), ("p", "0")], 600.0),
            (&[("__name__", "lag"), ("group", "g1"), ("p", "1")], 500.0),
            (&[("__name__", "lag"), ("group", "g2"), ("p", "0")], 10.0),
        ]);
        let r =
            rule("alert: Lag\nselector: lag\naggregate: sum\nby: [group]\nop: '>'\nvalue: 1000\n");
        let c = r.evaluate(&s);
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].value, 1100.0);
        assert_eq!(c[0].labels.get("group").map(String::as_str), Some("g1"));
        assert!(!c[0].labels.contains_key("p"));
        let r = rule("alert: Many\nselector: lag\naggregate: count\nop: '>='\nvalue: 3\n");
        let c = r.evaluate(&s);
        assert_eq!((c.len(), c[0].value), (1, 3.0));
        assert_eq!(c[0].labels.len(), 1, "only alertname: {:?}", c[0].labels);
        let r = rule("alert: Max\nselector: lag\naggregate: max\nop: '<'\nvalue: 100\n");
        assert!(r.evaluate(&s).is_empty());
        let r =
            rule("alert: Avg\nselector: lag\naggregate: avg\nby: [group]\nop: '<'\nvalue: 100\n");
        assert_eq!(r.evaluate(&s)[0].labels["group"], "g2");
    }

    #[test]
    fn ratio_with_divide_by() {
        let s = store(&[
            (
                &[("__name__", "redis_memory_used_bytes"), ("instance", "r1")],
                95.0,
            ),
            (
                &[("__name__", "redis_memory_max_bytes"), ("instance", "r1")],
                100.0,
            ),
            (
                &[("__name__", "redis_memory_used_bytes"), ("instance", "r2")],
                50.0,
            ),
            (
                &[("__name__", "redis_memory_max_bytes"), ("instance", "r2")],
                100.0,
            ),
            // maxmemory 0 (unlimited): no ratio, no alert.
            (
                &[("__name__", "redis_memory_used_bytes"), ("instance", "r3")],
                50.0,
            ),
            (
                &[("__name__", "redis_memory_max_bytes"), ("instance", "r3")],
                0.0,
            ),
        ]);
        let r = rule(
            "alert: RedisMemoryHigh\nselector: redis_memory_used_bytes\ndivide_by: redis_memory_max_bytes\nop: '>'\nvalue: 0.9\nannotations: {summary: 'memory at {{ .value }} of max'}\n",
        );
        let c = r.evaluate(&s);
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].labels["instance"], "r1");
        assert_eq!(c[0].annotations["summary"], "memory at 0.95 of max");
        let r = rule(
            "alert: RedisMemoryHigh\nselector: redis_memory_used_bytes\ndivide_by: redis_memory_max_bytes\naggregate: sum\nby: [instance]\nop: '>'\nvalue: 0.4\n",
        );
        assert_eq!(r.evaluate(&s).len(), 2);
    }

    #[test]
    fn problems_name_the_key() {
        let c: ThresholdRuleConfig = serde_yaml::from_str(
            "alert: 9bad\nselector: 'x{'\nby: [le-x]\nop: '>'\nvalue: .nan\nlabels: {alertname: y, sev: '{{ .nope }}'}\nannotations: {summary: '{{ value }}'}\ndivide_by: 'y{'\n",
        )
        .expect("yaml");
        let mut out = Vec::new();
        c.validate("rules[3]", Path::new("."), &mut out);
        let got: Vec<String> = out
            .iter()
            .map(|p| format!("{}: {}", p.path, p.message))
            .collect();
        let want = [
            "rules[3].alert: \"9bad\" is not a valid alert name; use letters, digits, _ and : (not starting with a digit), e.g. PostgresDown",
            "rules[3].selector: \"x{\": expected a label name at column 3; write a series selector such as pg_up{job=\"db\"}",
            "rules[3].divide_by: \"y{\": expected a label name at column 3; write a series selector such as pg_up{job=\"db\"}",
            "rules[3].by: needs aggregate (sum, max, min, avg or count); without it every series is its own alert",
            "rules[3].by[0]: \"le-x\" is not a valid label name; use letters, digits and _ (not starting with a digit)",
            "rules[3].value: must be a finite number",
            "rules[3].labels.alertname: is set from alert; remove it from labels",
            "rules[3].labels.sev: {{ .nope }} is not a known variable; use one of .alert, .value, .op, .threshold, .selector, or .labels.<name>",
            "rules[3].annotations.summary: {{ value }} is not a variable; write {{ .name }} with a leading dot",
        ];
        assert_eq!(got, want);
    }
}
