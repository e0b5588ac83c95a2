//! The alert engine: after every SLO round it turns the SLO statuses (burn rates per window,
//! budget remaining, condition) and the latest samples of the store (threshold rules) into
//! alerts, runs each through the Prometheus-style state machine ([`state`]), marks the tiers of
//! an SLO instance that lose to a more severe firing tier as inhibited, and returns every
//! pending, firing and recently resolved alert. The daemon hands them to the dispatcher.
//!
//! SLO alerts (see docs/alerting-rules.md):
//! - `SLOBurnRateHigh` per tier and SLO instance: burn rate over the long window **and** over
//!   the short window above the tier's factor, and at least `min_events` events in the long
//!   window;
//! - `SLOBudgetExhausted` per instance: budget remaining <= 0 (with at least `min_events` events
//!   in the SLO window);
//! - `SLONoData` per SLO: the SLO's selector matches no series while its targets are up.
//!
//! State lives in memory: after a restart alerts re-enter pending/firing from the data (the SLO
//! buckets come back from the ledger), and `for` starts again.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use super::state::{AlertSet, Candidate};
use super::template;
use super::threshold::{ThresholdRule, ThresholdRuleConfig};
use super::{Alert, AlertState};
use crate::api::metrics::{MetricsSource, MetricsWriter};
use crate::slo::engine::{Condition, InstanceStatus, SloStatus};
use crate::slo::spec::{AlertTier, ConditionAlertSpec, Slo};
use crate::slo::window::window_name;
use crate::store::series::SeriesStore;

/// `alertname` of burn-rate alerts.
pub const BURN_RATE_ALERT: &str = "SLOBurnRateHigh";
/// `alertname` of budget-exhausted alerts.
pub const BUDGET_ALERT: &str = "SLOBudgetExhausted";
/// `alertname` of no-data alerts.
pub const NO_DATA_ALERT: &str = "SLONoData";

/// Default `for` of the budget-exhausted alert.
const BUDGET_FOR_MS: i64 = 5 * 60_000;
/// Default `for` of the no-data alert.
const NO_DATA_FOR_MS: i64 = 10 * 60_000;

/// What the engine shares with the rest of the daemon: threshold rules to apply at the next
/// round, and the alerts of the last round for `/metrics`.
#[derive(Debug, Default)]
struct Shared {
    new_rules: Option<Vec<ThresholdRuleConfig>>,
    last: Vec<Alert>,
    evaluations: u64,
    last_duration_s: f64,
    rules: usize,
}

/// A cheap-to-clone handle on an [`AlertEngine`]: applies new threshold rules (on reload) and
/// writes `ALERTS`, `ALERTS_FOR_STATE` and `vigil_alerts` to `/metrics`.
#[derive(Debug, Clone, Default)]
pub struct AlertsHandle {
    shared: Arc<Mutex<Shared>>,
}

impl AlertsHandle {
    /// Replaces the threshold rules from the next round on; alerts of rules that did not change
    /// keep their state.
    pub fn apply_config(&self, rules: &[ThresholdRuleConfig]) {
        if let Ok(mut s) = self.shared.lock() {
            s.new_rules = Some(rules.to_vec());
        }
    }

    /// The alerts of the last round.
    pub fn alerts(&self) -> Vec<Alert> {
        self.shared
            .lock()
            .map(|s| s.last.clone())
            .unwrap_or_default()
    }

    /// Writes the alert series as Prometheus does (`ALERTS{alertname, alertstate, ...}` 1 for
    /// pending and firing alerts, `ALERTS_FOR_STATE{...}` = active since, in seconds) and
    /// vigil's own counts.
    pub fn write_metrics(&self, w: &mut MetricsWriter) {
        let Ok(s) = self.shared.lock() else {
            return;
        };
        w.family(
            "ALERTS",
            "Pending and firing alerts, one series per alert (as Prometheus).",
            "gauge",
        );
        for a in s.last.iter().filter(|a| a.state != AlertState::Resolved) {
            let state = if a.state == AlertState::Firing {
                "firing"
            } else {
                "pending"
            };
            let mut labels: Vec<(&str, &str)> = vec![("alertstate", state)];
            labels.extend(a.labels.iter().map(|(k, v)| (k.as_str(), v.as_str())));
            labels.sort_by(|x, y| x.0.cmp(y.0));
            w.sample("ALERTS", &labels, 1.0);
        }
        w.family(
            "ALERTS_FOR_STATE",
            "Unix time in seconds since which each pending or firing alert's condition holds.",
            "gauge",
        );
        for a in s.last.iter().filter(|a| a.state != AlertState::Resolved) {
            let labels: Vec<(&str, &str)> = a
                .labels
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            w.sample("ALERTS_FOR_STATE", &labels, a.active_at_ms as f64 / 1000.0);
        }
        w.family(
            "vigil_alerts",
            "Alerts by state; firing_inhibited counts firing alerts that do not notify because a more severe tier of the same SLO fires.",
            "gauge",
        );
        let count = |f: &dyn Fn(&Alert) -> bool| s.last.iter().filter(|a| f(a)).count() as f64;
        for (name, n) in [
            ("pending", count(&|a| a.state == AlertState::Pending)),
            ("firing", count(&|a| a.state == AlertState::Firing)),
            (
                "firing_inhibited",
                count(&|a| a.state == AlertState::Firing && a.inhibited_by.is_some()),
            ),
            ("resolved", count(&|a| a.state == AlertState::Resolved)),
        ] {
            w.sample("vigil_alerts", &[("state", name)], n);
        }
        w.family(
            "vigil_alert_threshold_rules",
            "Threshold rules loaded from the alerts files.",
            "gauge",
        );
        w.sample("vigil_alert_threshold_rules", &[], s.rules as f64);
        w.family(
            "vigil_alert_evaluations_total",
            "Alert evaluation rounds.",
            "counter",
        );
        w.sample("vigil_alert_evaluations_total", &[], s.evaluations as f64);
        w.family(
            "vigil_alert_evaluation_duration_seconds",
            "Duration of the last alert evaluation round.",
            "gauge",
        );
        w.sample(
            "vigil_alert_evaluation_duration_seconds",
            &[],
            s.last_duration_s,
        );
    }
}

impl MetricsSource for AlertsHandle {
    fn write_metrics(&self, w: &mut MetricsWriter) {
        AlertsHandle::write_metrics(self, w);
    }
}

/// Evaluates every alert rule once per SLO round.
#[derive(Debug, Default)]
pub struct AlertEngine {
    rules: Vec<ThresholdRule>,
    /// State per rule key (SLO tier, SLO condition alert, threshold rule).
    sets: HashMap<String, AlertSet>,
    handle: AlertsHandle,
}

impl AlertEngine {
    /// An engine with the threshold rules of the alerts files (SLO alerts come with the SLO
    /// statuses).
    pub fn new(rules: &[ThresholdRuleConfig]) -> Self {
        let mut e = Self::default();
        e.set_rules(rules);
        e
    }

    /// The handle for reloads and `/metrics`.
    pub fn handle(&self) -> AlertsHandle {
        self.handle.clone()
    }

    fn set_rules(&mut self, rules: &[ThresholdRuleConfig]) {
        self.rules = rules.iter().filter_map(ThresholdRule::new).collect();
        if let Ok(mut s) = self.handle.shared.lock() {
            s.rules = self.rules.len();
        }
    }

    /// One evaluation at `now_ms`: the pending, firing and just-resolved alerts.
    pub fn evaluate(&mut self, now_ms: i64, slos: &[SloStatus], store: &SeriesStore) -> Vec<Alert> {
        let started = Instant::now();
        let new_rules = self
            .handle
            .shared
            .lock()
            .ok()
            .and_then(|mut s| s.new_rules.take());
        if let Some(rules) = new_rules {
            self.set_rules(&rules);
        }
        let mut live: HashSet<String> = HashSet::new();
        let mut out = Vec::new();
        for st in slos {
            self.evaluate_slo(now_ms, st, &mut live, &mut out);
        }
        for rule in &self.rules {
            let key = rule.key();
            let set = self.sets.entry(key.clone()).or_default();
            let c = &rule.config;
            set.step(
                now_ms,
                rule.evaluate(store),
                c.for_.as_millis() as i64,
                c.keep_firing_for.as_millis() as i64,
            );
            out.extend(set.alerts());
            live.insert(key);
        }
        // Rules that went away (reload) take their alerts with them, as in Prometheus.
        self.sets.retain(|k, _| live.contains(k));
        out.sort_by(|a, b| a.labels.cmp(&b.labels));
        if let Ok(mut s) = self.handle.shared.lock() {
            s.last = out.clone();
            s.evaluations += 1;
            s.last_duration_s = started.elapsed().as_secs_f64();
        }
        out
    }

    fn evaluate_slo(
        &mut self,
        now_ms: i64,
        st: &SloStatus,
        live: &mut HashSet<String>,
        out: &mut Vec<Alert>,
    ) {
        let slo = &st.slo;
        let spec = &slo.spec.alerts;
        if !spec.enabled {
            return;
        }
        let tiers = slo.alert_tiers();
        // Burn-rate tiers, per instance; then the winner per instance.
        let mut burn: Vec<Alert> = Vec::new();
        for tier in &tiers {
            let key = format!("burn\u{0}{}\u{0}{}", st.id, tier.name);
            let mut present = Vec::new();
            for inst in &st.instances {
                if let Some(c) = burn_candidate(st, slo, tier, inst) {
                    present.push(c);
                }
            }
            let set = self.sets.entry(key.clone()).or_default();
            set.step(
                now_ms,
                present,
                tier.for_.as_millis() as i64,
                tier.keep_firing_for.as_millis() as i64,
            );
            burn.extend(set.alerts());
            live.insert(key);
        }
        inhibit_tiers(&mut burn, &tiers, &slo.spec.group_by);
        out.extend(burn);

        let be = &spec.budget_exhausted;
        if be.enabled != Some(false) {
            let key = format!("budget\u{0}{}", st.id);
            let present = st
                .instances
                .iter()
                .filter_map(|inst| budget_candidate(st, slo, be, inst))
                .collect();
            let set = self.sets.entry(key.clone()).or_default();
            step_condition(set, now_ms, present, be, BUDGET_FOR_MS);
            out.extend(set.alerts());
            live.insert(key);
        }
        let nd = &spec.no_data;
        if nd.enabled != Some(false) {
            let key = format!("nodata\u{0}{}", st.id);
            let present = no_data_candidate(st, slo, nd).into_iter().collect();
            let set = self.sets.entry(key.clone()).or_default();
            step_condition(set, now_ms, present, nd, NO_DATA_FOR_MS);
            out.extend(set.alerts());
            live.insert(key);
        }
    }
}

fn step_condition(
    set: &mut AlertSet,
    now_ms: i64,
    present: Vec<Candidate>,
    spec: &ConditionAlertSpec,
    default_for_ms: i64,
) {
    set.step(
        now_ms,
        present,
        spec.for_.map_or(default_for_ms, |d| d.as_millis() as i64),
        spec.keep_firing_for.map_or(0, |d| d.as_millis() as i64),
    );
}

/// The values a template may name for one SLO instance.
struct Vars<'a> {
    st: &'a SloStatus,
    inst: Option<&'a InstanceStatus>,
    tier: Option<&'a AlertTier>,
    severity: &'a str,
    burn_rate: f64,
    short_burn_rate: f64,
    value: f64,
}

impl Vars<'_> {
    fn get(&self, name: &str, labels: &BTreeMap<String, String>) -> Option<String> {
        let n = template::number;
        Some(match name {
            "slo" => self.st.name.clone(),
            "service" => self.st.service.clone(),
            "objective" => n(self.st.objective * 100.0),
            "window" => self.st.window.clone(),
            "burn_rate" => n(self.burn_rate),
            "short_burn_rate" => n(self.short_burn_rate),
            "factor" => n(self.tier?.factor),
            "long_window" => window_name(self.tier?.long_window),
            "short_window" => window_name(self.tier?.short_window),
            "budget_remaining" => n(self.inst?.error_budget_remaining * 100.0),
            "severity" => self.severity.to_string(),
            "tier" => self.tier?.name.clone(),
            "value" => n(self.value),
            "problem" => self.st.problem.clone().unwrap_or_default(),
            "description" => self.st.slo.spec.description.clone(),
            _ => return labels.get(name.strip_prefix("labels.")?).cloned(),
        })
    }
}

/// Builds labels and annotations: SLO labels, group labels, `alerts.labels`, the alert's own
/// labels, then the fixed ones; annotations: defaults, `alerts.annotations`, the alert's own.
#[allow(clippy::too_many_arguments)]
fn candidate(
    slo: &Slo,
    vars: &Vars<'_>,
    alertname: &str,
    group: Option<&BTreeMap<String, String>>,
    own_labels: &BTreeMap<String, String>,
    own_annotations: &BTreeMap<String, String>,
    default_annotations: &[(&str, &str)],
    value: f64,
) -> Candidate {
    let mut labels = slo.labels.clone();
    if let Some(g) = group {
        labels.extend(g.clone());
    }
    let fixed = |labels: &mut BTreeMap<String, String>| {
        labels.insert("alertname".into(), alertname.to_string());
        labels.insert("service".into(), vars.st.service.clone());
        labels.insert("slo".into(), vars.st.name.clone());
        labels.insert("severity".into(), vars.severity.to_string());
        if let Some(t) = vars.tier {
            labels.insert("tier".into(), t.name.clone());
        }
    };
    fixed(&mut labels);
    let base = labels.clone();
    for (k, t) in slo.spec.alerts.labels.iter().chain(own_labels) {
        labels.insert(k.clone(), template::render(t, &|n| vars.get(n, &base)));
    }
    fixed(&mut labels);
    let mut annotations = BTreeMap::new();
    for (k, t) in default_annotations {
        annotations.insert(k.to_string(), t.to_string());
    }
    for (k, t) in slo.spec.alerts.annotations.iter().chain(own_annotations) {
        annotations.insert(k.clone(), t.clone());
    }
    let annotations = annotations
        .into_iter()
        .map(|(k, t)| (k, template::render(&t, &|n| vars.get(n, &labels))))
        .collect();
    Candidate {
        labels,
        annotations,
        value,
        generator_url: format!("/api/v1/slos/{}/{}", vars.st.service, vars.st.name),
    }
}

fn burn_rate_of(inst: &InstanceStatus, window: std::time::Duration) -> Option<(f64, f64)> {
    let name = window_name(window);
    inst.windows
        .iter()
        .find(|w| w.window == name)
        .map(|w| (w.burn_rate, w.total))
}

fn burn_candidate(
    st: &SloStatus,
    slo: &Slo,
    tier: &AlertTier,
    inst: &InstanceStatus,
) -> Option<Candidate> {
    let (long, long_total) = burn_rate_of(inst, tier.long_window)?;
    let (short, _) = burn_rate_of(inst, tier.short_window)?;
    if !(long > tier.factor && short > tier.factor) || long_total < st.min_events {
        return None;
    }
    let vars = Vars {
        st,
        inst: Some(inst),
        tier: Some(tier),
        severity: &tier.severity,
        burn_rate: long,
        short_burn_rate: short,
        value: long,
    };
    Some(candidate(
        slo,
        &vars,
        BURN_RATE_ALERT,
        Some(&inst.group),
        &tier.labels,
        &tier.annotations,
        &[
            (
                "summary",
                "{{ .service }}/{{ .slo }} burns its error budget at {{ .burn_rate }}x over {{ .long_window }} (tier {{ .tier }})",
            ),
            (
                "description",
                "The error rate over {{ .long_window }} ({{ .burn_rate }}x) and over {{ .short_window }} ({{ .short_burn_rate }}x) is above {{ .factor }}x the rate the {{ .objective }}% objective allows over {{ .window }}; {{ .budget_remaining }}% of the error budget remains.",
            ),
        ],
        long,
    ))
}

fn budget_candidate(
    st: &SloStatus,
    slo: &Slo,
    spec: &ConditionAlertSpec,
    inst: &InstanceStatus,
) -> Option<Candidate> {
    let whole = inst.windows.last()?;
    if inst.error_budget_remaining > 0.0 || whole.total <= 0.0 || whole.total < st.min_events {
        return None;
    }
    let severity = spec.severity.as_deref().unwrap_or("ticket");
    let vars = Vars {
        st,
        inst: Some(inst),
        tier: None,
        severity,
        burn_rate: 0.0,
        short_burn_rate: 0.0,
        value: inst.error_budget_remaining,
    };
    Some(candidate(
        slo,
        &vars,
        BUDGET_ALERT,
        Some(&inst.group),
        &spec.labels,
        &spec.annotations,
        &[
            (
                "summary",
                "{{ .service }}/{{ .slo }} has spent its error budget over {{ .window }} ({{ .budget_remaining }}% remaining)",
            ),
            (
                "description",
                "The {{ .objective }}% objective over {{ .window }} is not met; {{ .budget_remaining }}% of the error budget remains.",
            ),
        ],
        inst.error_budget_remaining,
    ))
}

fn no_data_candidate(st: &SloStatus, slo: &Slo, spec: &ConditionAlertSpec) -> Option<Candidate> {
    if st.condition != Condition::NoData {
        return None;
    }
    let severity = spec.severity.as_deref().unwrap_or("ticket");
    let vars = Vars {
        st,
        inst: None,
        tier: None,
        severity,
        burn_rate: 0.0,
        short_burn_rate: 0.0,
        value: 1.0,
    };
    Some(candidate(
        slo,
        &vars,
        NO_DATA_ALERT,
        None,
        &spec.labels,
        &spec.annotations,
        &[
            ("summary", "{{ .service }}/{{ .slo }} has no data"),
            (
                "description",
                "{{ .problem }}; the SLO cannot be evaluated while its series are missing.",
            ),
        ],
        1.0,
    ))
}

/// One incident, one page: among the firing burn-rate alerts of one SLO instance (same labels
/// but `tier` and `severity`), only the most severe tier notifies; the others get
/// `inhibited_by` naming the winner. `tiers` is ordered most severe first.
fn inhibit_tiers(alerts: &mut [Alert], tiers: &[AlertTier], group_by: &[String]) {
    let rank = |a: &Alert| {
        let t = a.labels.get("tier").map(String::as_str).unwrap_or("");
        tiers.iter().position(|x| x.name == t).unwrap_or(usize::MAX)
    };
    // The SLO instance: the group labels (service and slo are the same for all).
    let instance = |a: &Alert| -> Vec<Option<String>> {
        group_by.iter().map(|k| a.labels.get(k).cloned()).collect()
    };
    let mut best: HashMap<Vec<Option<String>>, usize> = HashMap::new();
    for (i, a) in alerts.iter().enumerate() {
        if a.state != AlertState::Firing {
            continue;
        }
        let e = best.entry(instance(a)).or_insert(i);
        if rank(a) < rank(&alerts[*e]) {
            *e = i;
        }
    }
    let winners: Vec<(Vec<Option<String>>, String, String, String)> = best
        .iter()
        .map(|(k, &i)| {
            let w = &alerts[i];
            let get = |n: &str| w.labels.get(n).cloned().unwrap_or_default();
            (
                k.clone(),
                get("tier"),
                get("severity"),
                template::number(w.value),
            )
        })
        .collect();
    for a in alerts.iter_mut() {
        if a.state != AlertState::Firing {
            continue;
        }
        let key = instance(a);
        if let Some((_, tier, severity, value)) = winners.iter().find(|w| w.0 == key) {
            if a.labels.get("tier") != Some(tier) {
                a.inhibited_by = Some(format!(
                    "tier {tier} (severity {severity}, burn rate {value}) of the same SLO is firing"
                ));
            }
        }
    }
}

#[cfg(test)]
#[path = "engine_tests.rs"]
mod tests;
