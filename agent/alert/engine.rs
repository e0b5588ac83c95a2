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
use super::{Alert, AlertState, fingerprint};
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
    last: Vec<Arc<Alert>>,
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
            .map(|s| s.last.iter().map(|a| Alert::clone(a)).collect())
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
///
/// The work per round is proportional to the alerts that change, not to the alerts that are
/// active: per SLO it keeps the resolved tiers, and per rule and SLO instance the rendered labels
/// and annotations, which are templated again only when a value they show changes (as text:
/// a burn rate moving from 2.00001 to 2.00002 renders the same `2`). Alerts are shared (`Arc`)
/// between the state machine, the last round and the dispatcher, and copied only on change.
#[derive(Debug, Default)]
pub struct AlertEngine {
    rules: Vec<ThresholdRule>,
    /// State per threshold rule key.
    sets: HashMap<String, AlertSet>,
    /// Per SLO id: its tiers, alert state and rendered alerts.
    slos: HashMap<String, SloCache>,
    round: u64,
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

    /// One evaluation at `now_ms`: the pending, firing and just-resolved alerts, ordered by
    /// labels. Copies every alert; the daemon uses [`Self::evaluate_shared`].
    pub fn evaluate(&mut self, now_ms: i64, slos: &[SloStatus], store: &SeriesStore) -> Vec<Alert> {
        self.evaluate_shared(now_ms, slos, store)
            .into_iter()
            .map(Arc::unwrap_or_clone)
            .collect()
    }

    /// One evaluation at `now_ms`: the pending, firing and just-resolved alerts, ordered by
    /// labels, shared with the engine (an alert that did not change since the last round is
    /// the same `Arc`).
    pub fn evaluate_shared(
        &mut self,
        now_ms: i64,
        slos: &[SloStatus],
        store: &SeriesStore,
    ) -> Vec<Arc<Alert>> {
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
        self.round += 1;
        let mut out = Vec::new();
        for st in slos {
            self.evaluate_slo(now_ms, st, &mut out);
        }
        // SLOs that went away (reload) take their alerts with them, as rules do in Prometheus.
        let round = self.round;
        self.slos.retain(|_, c| c.round == round);
        let mut live: HashSet<String> = HashSet::with_capacity(self.rules.len());
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
            out.extend(set.shared_alerts());
            live.insert(key);
        }
        self.sets.retain(|k, _| live.contains(k));
        out.sort_by(|a, b| a.labels.cmp(&b.labels));
        if let Ok(mut s) = self.handle.shared.lock() {
            s.last = out.clone();
            s.evaluations += 1;
            s.last_duration_s = started.elapsed().as_secs_f64();
        }
        out
    }

    fn evaluate_slo(&mut self, now_ms: i64, st: &SloStatus, out: &mut Vec<Arc<Alert>>) {
        let round = self.round;
        if !self.slos.get(&st.id).is_some_and(|c| c.fits(st)) {
            let old = self.slos.remove(&st.id);
            self.slos.insert(st.id.clone(), SloCache::new(st, old));
        }
        let Some(cache) = self.slos.get_mut(&st.id) else {
            return;
        };
        cache.round = round;
        let slo = &st.slo;
        // Burn-rate tiers, per instance; then the winner per instance.
        let mut burn: Vec<Arc<Alert>> = Vec::new();
        for tc in &mut cache.tiers {
            let mut present = Vec::new();
            for inst in &st.instances {
                let Some((long, short)) = tc.burning(st, inst) else {
                    continue;
                };
                let vars = Vars {
                    st,
                    inst: Some(inst),
                    tier: Some(&tc.tier),
                    severity: &tc.tier.severity,
                    burn_rate: long,
                    short_burn_rate: short,
                    value: long,
                };
                present.push(
                    tc.rule
                        .candidate(slo, &vars, Some(&inst.group), long, round),
                );
            }
            tc.rule.step(now_ms, present, round, |set, now, present| {
                set.step(
                    now,
                    present,
                    tc.tier.for_.as_millis() as i64,
                    tc.tier.keep_firing_for.as_millis() as i64,
                )
            });
            burn.extend(tc.rule.set.shared_alerts());
        }
        inhibit_tiers(&mut burn, &cache.tier_names, &slo.spec.group_by);
        out.extend(burn);

        let spec = &slo.spec.alerts;
        if let Some(rule) = &mut cache.budget {
            let be = &spec.budget_exhausted;
            let severity = be.severity.as_deref().unwrap_or("ticket");
            let mut present = Vec::new();
            for inst in &st.instances {
                if !budget_exhausted(st, inst) {
                    continue;
                }
                let vars = Vars {
                    st,
                    inst: Some(inst),
                    tier: None,
                    severity,
                    burn_rate: 0.0,
                    short_burn_rate: 0.0,
                    value: inst.error_budget_remaining,
                };
                present.push(rule.candidate(
                    slo,
                    &vars,
                    Some(&inst.group),
                    inst.error_budget_remaining,
                    round,
                ));
            }
            rule.step(now_ms, present, round, |set, now, present| {
                step_condition(set, now, present, be, BUDGET_FOR_MS)
            });
            out.extend(rule.set.shared_alerts());
        }
        if let Some(rule) = &mut cache.no_data {
            let nd = &spec.no_data;
            let mut present = Vec::new();
            if st.condition == Condition::NoData {
                let vars = Vars {
                    st,
                    inst: None,
                    tier: None,
                    severity: nd.severity.as_deref().unwrap_or("ticket"),
                    burn_rate: 0.0,
                    short_burn_rate: 0.0,
                    value: 1.0,
                };
                present.push(rule.candidate(slo, &vars, None, 1.0, round));
            }
            rule.step(now_ms, present, round, |set, now, present| {
                step_condition(set, now, present, nd, NO_DATA_FOR_MS)
            });
            out.extend(rule.set.shared_alerts());
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

/// What the engine keeps per SLO between rounds; rebuilt (keeping the alert state of every
/// rule that is still there) when the SLO changes on reload.
#[derive(Debug)]
struct SloCache {
    slo: Arc<Slo>,
    /// The SLO fields the rendered alerts show, as they were when they were rendered.
    service: String,
    name: String,
    window: String,
    objective: f64,
    /// The enabled burn-rate tiers, most severe first.
    tiers: Vec<TierCache>,
    tier_names: Vec<String>,
    budget: Option<RuleCache>,
    no_data: Option<RuleCache>,
    /// Last round that saw this SLO.
    round: u64,
}

#[derive(Debug)]
struct TierCache {
    tier: AlertTier,
    long_window: String,
    short_window: String,
    rule: RuleCache,
}

impl TierCache {
    /// The (long, short) burn rates when both are above the factor with enough events.
    fn burning(&self, st: &SloStatus, inst: &InstanceStatus) -> Option<(f64, f64)> {
        let (long, long_total) = burn_rate_of(inst, &self.long_window)?;
        let (short, _) = burn_rate_of(inst, &self.short_window)?;
        let f = self.tier.factor;
        (long > f && short > f && long_total >= st.min_events).then_some((long, short))
    }
}

impl SloCache {
    fn new(st: &SloStatus, mut old: Option<SloCache>) -> Self {
        let slo = &st.slo;
        let spec = &slo.spec.alerts;
        let url: Arc<str> = format!("/api/v1/slos/{}/{}", st.service, st.name).into();
        let mut take = |key: &str| -> AlertSet {
            let Some(old) = old.as_mut() else {
                return AlertSet::default();
            };
            let rules = old
                .tiers
                .iter_mut()
                .map(|t| &mut t.rule)
                .chain(old.budget.as_mut())
                .chain(old.no_data.as_mut());
            for r in rules {
                if r.key == key {
                    return std::mem::take(&mut r.set);
                }
            }
            AlertSet::default()
        };
        let tiers: Vec<TierCache> = slo
            .alert_tiers()
            .into_iter()
            .map(|tier| {
                let key = format!("burn\u{0}{}\u{0}{}", st.id, tier.name);
                let rule = RuleCache::new(
                    key.clone(),
                    take(&key),
                    slo,
                    BURN_RATE_ALERT,
                    &tier.labels,
                    &tier.annotations,
                    BURN_DEFAULTS,
                    url.clone(),
                );
                TierCache {
                    long_window: window_name(tier.long_window),
                    short_window: window_name(tier.short_window),
                    tier,
                    rule,
                }
            })
            .collect();
        let condition = |prefix: &str,
                         alertname: &'static str,
                         c: &ConditionAlertSpec,
                         defaults: &'static [(&'static str, &'static str)],
                         take: &mut dyn FnMut(&str) -> AlertSet| {
            (spec.enabled && c.enabled != Some(false)).then(|| {
                let key = format!("{prefix}\u{0}{}", st.id);
                let set = take(&key);
                RuleCache::new(
                    key,
                    set,
                    slo,
                    alertname,
                    &c.labels,
                    &c.annotations,
                    defaults,
                    url.clone(),
                )
            })
        };
        let budget = condition(
            "budget",
            BUDGET_ALERT,
            &spec.budget_exhausted,
            BUDGET_DEFAULTS,
            &mut take,
        );
        let no_data = condition(
            "nodata",
            NO_DATA_ALERT,
            &spec.no_data,
            NO_DATA_DEFAULTS,
            &mut take,
        );
        Self {
            slo: slo.clone(),
            service: st.service.clone(),
            name: st.name.clone(),
            window: st.window.clone(),
            objective: st.objective,
            tier_names: tiers.iter().map(|t| t.tier.name.clone()).collect(),
            tiers,
            budget,
            no_data,
            round: 0,
        }
    }

    /// Whether this cache was built for the SLO of `st` as it is now.
    fn fits(&self, st: &SloStatus) -> bool {
        Arc::ptr_eq(&self.slo, &st.slo)
            && self.service == st.service
            && self.name == st.name
            && self.window == st.window
            && self.objective.to_bits() == st.objective.to_bits()
    }
}

/// Template variables whose values change from round to round; every other variable is fixed
/// by the SLO (and tier), so labels and annotations that use none of these never change.
const DYNAMIC_VARS: [&str; 5] = [
    "burn_rate",
    "short_burn_rate",
    "budget_remaining",
    "value",
    "problem",
];

fn dynamic_mask<'a>(templates: impl Iterator<Item = &'a str>) -> u8 {
    let mut mask = 0;
    for t in templates {
        for v in template::variables(t) {
            if let Some(i) = DYNAMIC_VARS.iter().position(|d| *d == v) {
                mask |= 1 << i;
            }
        }
    }
    mask
}

/// The dynamic variables of `mask` as `vars` renders them.
fn texts(mask: u8, vars: &Vars<'_>) -> Vec<Option<String>> {
    DYNAMIC_VARS
        .iter()
        .enumerate()
        .filter(|(i, _)| mask & (1 << i) != 0)
        .map(|(_, name)| vars.get(name, &NO_GROUP))
        .collect()
}

/// One alert rule of one SLO (a tier, budget exhausted or no data): its state and its
/// rendered alerts per SLO instance.
#[derive(Debug)]
struct RuleCache {
    key: String,
    set: AlertSet,
    alertname: &'static str,
    labels: BTreeMap<String, String>,
    annotations: BTreeMap<String, String>,
    defaults: &'static [(&'static str, &'static str)],
    /// Dynamic variables (bits of [`DYNAMIC_VARS`]) the label templates use.
    labels_mask: u8,
    /// Dynamic variables labels or annotations use.
    mask: u8,
    url: Arc<str>,
    /// By instance group.
    rendered: HashMap<BTreeMap<String, String>, Rendered>,
    present: usize,
}

/// The rendered alert of one SLO instance and the values it was rendered with.
#[derive(Debug)]
struct Rendered {
    /// Raw values of the dynamic variables (to skip formatting when nothing moved).
    raw: [u64; 4],
    problem: Option<String>,
    /// The dynamic variables as rendered (the templates' output only changes with these).
    texts: Vec<Option<String>>,
    labels: Arc<BTreeMap<String, String>>,
    fingerprint: u64,
    annotations: Arc<BTreeMap<String, String>>,
    round: u64,
}

static NO_GROUP: BTreeMap<String, String> = BTreeMap::new();

impl RuleCache {
    #[allow(clippy::too_many_arguments)]
    fn new(
        key: String,
        set: AlertSet,
        slo: &Slo,
        alertname: &'static str,
        labels: &BTreeMap<String, String>,
        annotations: &BTreeMap<String, String>,
        defaults: &'static [(&'static str, &'static str)],
        url: Arc<str>,
    ) -> Self {
        let all = &slo.spec.alerts;
        let labels_mask = dynamic_mask(
            all.labels
                .values()
                .chain(labels.values())
                .map(String::as_str),
        );
        let annotations_mask = dynamic_mask(
            defaults
                .iter()
                .map(|(_, t)| *t)
                .chain(all.annotations.values().map(String::as_str))
                .chain(annotations.values().map(String::as_str)),
        );
        Self {
            key,
            set,
            alertname,
            labels: labels.clone(),
            annotations: annotations.clone(),
            defaults,
            labels_mask,
            mask: labels_mask | annotations_mask,
            url,
            rendered: HashMap::new(),
            present: 0,
        }
    }

    fn raw(vars: &Vars<'_>) -> [u64; 4] {
        [
            vars.burn_rate.to_bits(),
            vars.short_burn_rate.to_bits(),
            vars.inst.map_or(0, |i| i.error_budget_remaining.to_bits()),
            vars.value.to_bits(),
        ]
    }

    /// The candidate of one instance, rendered again only when a value it shows changed.
    fn candidate(
        &mut self,
        slo: &Slo,
        vars: &Vars<'_>,
        group: Option<&BTreeMap<String, String>>,
        value: f64,
        round: u64,
    ) -> Candidate {
        self.present += 1;
        let raw = Self::raw(vars);
        let uses_problem = self.mask & (1 << 4) != 0;
        let g = group.unwrap_or(&NO_GROUP);
        if let Some(r) = self.rendered.get_mut(g) {
            r.round = round;
            let raw_same = (0..4).all(|i| self.mask & (1 << i) == 0 || r.raw[i] == raw[i]);
            let problem_same = !uses_problem || r.problem == vars.st.problem;
            if !(raw_same && problem_same) {
                let texts = texts(self.mask, vars);
                r.raw = raw;
                if uses_problem {
                    r.problem.clone_from(&vars.st.problem);
                }
                if texts != r.texts {
                    r.texts = texts;
                    if self.labels_mask != 0 {
                        let labels = render_labels(slo, vars, self.alertname, group, &self.labels);
                        if labels != *r.labels {
                            r.fingerprint = fingerprint(&labels);
                            r.labels = Arc::new(labels);
                        }
                    }
                    r.annotations = Arc::new(render_annotations(
                        slo,
                        vars,
                        &r.labels,
                        &self.annotations,
                        self.defaults,
                    ));
                }
            }
            return Candidate {
                labels: r.labels.clone(),
                fingerprint: r.fingerprint,
                annotations: r.annotations.clone(),
                value,
                generator_url: self.url.clone(),
            };
        }
        let labels = render_labels(slo, vars, self.alertname, group, &self.labels);
        let annotations = render_annotations(slo, vars, &labels, &self.annotations, self.defaults);
        let r = Rendered {
            raw,
            problem: if uses_problem {
                vars.st.problem.clone()
            } else {
                None
            },
            texts: texts(self.mask, vars),
            fingerprint: fingerprint(&labels),
            labels: Arc::new(labels),
            annotations: Arc::new(annotations),
            round,
        };
        let c = Candidate {
            labels: r.labels.clone(),
            fingerprint: r.fingerprint,
            annotations: r.annotations.clone(),
            value,
            generator_url: self.url.clone(),
        };
        self.rendered.insert(g.clone(), r);
        c
    }

    /// Steps the state machine with this round's candidates and forgets the rendered alerts
    /// of instances that are not there any more.
    fn step(
        &mut self,
        now_ms: i64,
        present: Vec<Candidate>,
        round: u64,
        step: impl FnOnce(&mut AlertSet, i64, Vec<Candidate>),
    ) {
        step(&mut self.set, now_ms, present);
        if self.rendered.len() != self.present {
            self.rendered.retain(|_, r| r.round == round);
        }
        self.present = 0;
    }
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

/// Labels: SLO labels, group labels, `alerts.labels`, the alert's own labels, then the fixed
/// ones (`alertname`, `service`, `slo`, `severity`, `tier`).
fn render_labels(
    slo: &Slo,
    vars: &Vars<'_>,
    alertname: &str,
    group: Option<&BTreeMap<String, String>>,
    own_labels: &BTreeMap<String, String>,
) -> BTreeMap<String, String> {
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
    labels
}

/// Annotations: defaults, `alerts.annotations`, the alert's own; templated with `labels`.
fn render_annotations(
    slo: &Slo,
    vars: &Vars<'_>,
    labels: &BTreeMap<String, String>,
    own_annotations: &BTreeMap<String, String>,
    default_annotations: &[(&str, &str)],
) -> BTreeMap<String, String> {
    let mut annotations: BTreeMap<String, &str> = BTreeMap::new();
    for (k, t) in default_annotations {
        annotations.insert(k.to_string(), t);
    }
    for (k, t) in slo.spec.alerts.annotations.iter().chain(own_annotations) {
        annotations.insert(k.clone(), t);
    }
    annotations
        .into_iter()
        .map(|(k, t)| (k, template::render(t, &|n| vars.get(n, labels))))
        .collect()
}

fn burn_rate_of(inst: &InstanceStatus, window: &str) -> Option<(f64, f64)> {
    inst.windows
        .iter()
        .find(|w| w.window == window)
        .map(|w| (w.burn_rate, w.total))
}

const BURN_DEFAULTS: &[(&str, &str)] = &[
    (
        "summary",
        "{{ .service }}/{{ .slo }} burns its error budget at {{ .burn_rate }}x over {{ .long_window }} (tier {{ .tier }})",
    ),
    (
        "description",
        "The error rate over {{ .long_window }} ({{ .burn_rate }}x) and over {{ .short_window }} ({{ .short_burn_rate }}x) is above {{ .factor }}x the rate the {{ .objective }}% objective allows over {{ .window }}; {{ .budget_remaining }}% of the error budget remains.",
    ),
];

const BUDGET_DEFAULTS: &[(&str, &str)] = &[
    (
        "summary",
        "{{ .service }}/{{ .slo }} has spent its error budget over {{ .window }} ({{ .budget_remaining }}% remaining)",
    ),
    (
        "description",
        "The {{ .objective }}% objective over {{ .window }} is not met; {{ .budget_remaining }}% of the error budget remains.",
    ),
];

const NO_DATA_DEFAULTS: &[(&str, &str)] = &[
    ("summary", "{{ .service }}/{{ .slo }} has no data"),
    (
        "description",
        "{{ .problem }}; the SLO cannot be evaluated while its series are missing.",
    ),
];

/// Whether the budget is spent (with at least `min_events` events in the SLO window).
fn budget_exhausted(st: &SloStatus, inst: &InstanceStatus) -> bool {
    let Some(whole) = inst.windows.last() else {
        return false;
    };
    !(inst.error_budget_remaining > 0.0 || whole.total <= 0.0 || whole.total < st.min_events)
}

/// One incident, one page: among the firing burn-rate alerts of one SLO instance (same labels
/// but `tier` and `severity`), only the most severe tier notifies; the others get
/// `inhibited_by` naming the winner. `tiers` (names) is ordered most severe first.
fn inhibit_tiers(alerts: &mut [Arc<Alert>], tiers: &[String], group_by: &[String]) {
    if alerts
        .iter()
        .filter(|a| a.state == AlertState::Firing)
        .nth(1)
        .is_none()
    {
        // Fewer than two firing: nobody loses.
        return;
    }
    let rank = |a: &Alert| {
        let t = a.labels.get("tier").map(String::as_str).unwrap_or("");
        tiers.iter().position(|x| x == t).unwrap_or(usize::MAX)
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
                Arc::make_mut(a).inhibited_by = Some(format!(
                    "tier {tier} (severity {severity}, burn rate {value}) of the same SLO is firing"
                ));
            }
        }
    }
}

#[cfg(test)]
#[path = "engine_tests.rs"]
mod tests;
