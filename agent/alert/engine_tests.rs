//! Unit tests of the alert engine: SLO tiers over the real SLO engine with synthetic series,
//! factor derivation, inhibition, `min_events`, no data, budget exhausted, threshold rules.

use super::*;
use crate::slo::engine::Engine;
use crate::slo::spec::parse_file;
use crate::store::series::{LabelSet, Sample, Series, Snapshot};
use std::path::Path;
use std::time::Duration;

const T0: i64 = 1_800_000_000_000;
const S: i64 = 1000;
const M: i64 = 60 * S;

fn slos(yaml: &str) -> Vec<Arc<Slo>> {
    parse_file(yaml, Path::new("t.yaml"))
        .unwrap_or_else(|e| panic!("{e}"))
        .into_iter()
        .map(Arc::new)
        .collect()
}

fn factors(yaml: &str) -> Vec<(String, f64, u64, u64)> {
    slos(yaml)[0]
        .alert_tiers()
        .into_iter()
        .map(|t| {
            (
                t.name,
                (t.factor * 1e4).round() / 1e4,
                t.long_window.as_secs(),
                t.short_window.as_secs(),
            )
        })
        .collect()
}

fn spec(window: &str, extra: &str) -> String {
    format!(
        "service: shop\nlabels: {{team: pay}}\nslos:\n  - name: avail\n    objective: 99\n    window: {window}\n    sli: {{ratio: {{errors: 'req_total{{code=\"500\"}}', total: req_total}}}}\n{extra}"
    )
}

fn t(name: &str, f: f64, long: u64, short: u64) -> (String, f64, u64, u64) {
    (name.to_string(), f, long, short)
}

#[test]
fn default_factors_for_30d_28d_7d_month_and_1d() {
    const H: u64 = 3600;
    // 30d: 2% of the budget in 1h = 0.02 * 720h / 1h = 14.4; 5% in 6h = 0.05 * 720 / 6 = 6;
    // 10% in 1d = 0.1 * 30 = 3; 10% in 3d = 0.1 * 10 = 1.
    assert_eq!(
        factors(&spec("30d", "")),
        vec![
            t("page_fast", 14.4, H, 300),
            t("page_slow", 6.0, 6 * H, 1800),
            t("ticket_fast", 3.0, 24 * H, 2 * H),
            t("ticket_slow", 1.0, 72 * H, 6 * H),
        ]
    );
    // 28d (672h): 0.02 * 672 = 13.44; 0.05 * 112 = 5.6; 0.1 * 28 = 2.8; 0.1 * 28 / 3 = 0.9333.
    let f: Vec<f64> = factors(&spec("28d", "")).iter().map(|x| x.1).collect();
    assert_eq!(f, vec![13.44, 5.6, 2.8, 0.9333]);
    // 7d (168h): 0.02 * 168 = 3.36; 0.05 * 28 = 1.4; 0.1 * 7 = 0.7; 0.1 * 7 / 3 = 0.2333.
    let f: Vec<f64> = factors(&spec("7d", "")).iter().map(|x| x.1).collect();
    assert_eq!(f, vec![3.36, 1.4, 0.7, 0.2333]);
    // A calendar month counts as 30 days.
    let f: Vec<f64> = factors(&spec("{calendar: month}", ""))
        .iter()
        .map(|x| x.1)
        .collect();
    assert_eq!(f, vec![14.4, 6.0, 3.0, 1.0]);
    // 1d: the 3d tier does not fit and is left out; 0.02 * 24 = 0.48, 0.05 * 4 = 0.2, 0.1.
    let f: Vec<(String, f64)> = factors(&spec("1d", ""))
        .into_iter()
        .map(|x| (x.0, x.1))
        .collect();
    assert_eq!(
        f,
        vec![
            ("page_fast".into(), 0.48),
            ("page_slow".into(), 0.2),
            ("ticket_fast".into(), 0.1)
        ]
    );
}

#[test]
fn tiers_can_be_changed_disabled_and_added() {
    let yaml = spec(
        "30d",
        "    alerts:\n      tiers:\n        page_slow: {enabled: false}\n        ticket_fast: {factor: 2.5, severity: warning}\n        ticket_slow: {budget_share: 0.2}\n        quick: {long_window: 2m, short_window: 1m, factor: 10, severity: critical}\n",
    );
    assert_eq!(
        factors(&yaml),
        vec![
            t("quick", 10.0, 120, 60),
            t("page_fast", 14.4, 3600, 300),
            t("ticket_fast", 2.5, 86_400, 7200),
            t("ticket_slow", 2.0, 3 * 86_400, 6 * 3600),
        ],
        "most severe first: critical, page, warning, ticket"
    );
    // The SLO engine computes the custom windows.
    let mut e = Engine::new(slos(&yaml));
    let (st, _) = e.round(T0, &[]);
    let _ = st;
    let names: Vec<String> = {
        let mut w = World::default();
        let (st, _) = e.round(T0 + S, &w.snap(T0 + S, &[("req_total{code=\"200\"}", 1.0)]));
        st[0].instances[0]
            .windows
            .iter()
            .map(|w| w.window.clone())
            .collect()
    };
    assert_eq!(
        names,
        ["5m", "30m", "1h", "2h", "6h", "1d", "3d", "1m", "2m", "30d"]
    );
}

#[test]
fn bad_alert_config_is_reported_with_paths() {
    let yaml = spec(
        "1d",
        "    alerts:\n      labels: {severity: x, team: '{{ .nope }}'}\n      tiers:\n        page_fast: {factor: 0, short_window: 2h}\n        ticket_fast: {factor: 1, budget_share: 2}\n        mine: {long_window: 2d, short_window: 90s, factor: 2}\n        other: {factor: 3}\n        page_slow: {long_window: 7h30m, short_window: 30m}\n      no_data: {severity: ''}\n",
    );
    let err = parse_file(&yaml, Path::new("t.yaml"))
        .expect_err("invalid")
        .to_string();
    let want = [
        "slos[0].alerts.labels.severity: severity is set by vigil; set it with the severity key instead",
        "slos[0].alerts.labels.team: {{ .nope }} is not a known variable",
        "slos[0].alerts.tiers.mine.long_window: 2d is longer than the SLO window (1d); use at most the SLO window",
        "slos[0].alerts.tiers.mine.short_window: 1m 30s is not a whole number of minutes; use 1m or more, e.g. 5m",
        "slos[0].alerts.tiers.other: custom tier other needs long_window and short_window (and factor or budget_share); the default tiers are page_fast, page_slow, ticket_fast, ticket_slow",
        "slos[0].alerts.tiers.page_fast.factor: 0 must be a burn rate above 0, e.g. 14.4",
        "slos[0].alerts.tiers.page_fast.short_window: 2h is not shorter than the long window (1h); the short window must be shorter, typically long / 12",
        "slos[0].alerts.tiers.page_slow.long_window: 7h 30m is longer than 6h but not a whole number of hours; e.g. 12h",
        "slos[0].alerts.tiers.ticket_fast.budget_share: 2 must be above 0 and at most 1, e.g. 0.02 for 2% of the budget",
        "slos[0].alerts.tiers.ticket_fast: set factor or budget_share, not both",
        "slos[0].alerts.no_data.severity: must not be empty; e.g. page or ticket",
    ];
    for w in want {
        assert!(err.contains(w), "missing {w:?} in:\n{err}");
    }
    let unknown = parse_file(
        &spec(
            "30d",
            "    alerts:\n      tiers:\n        page_fast: {factr: 2}\n",
        ),
        Path::new("t.yaml"),
    )
    .expect_err("unknown key")
    .to_string();
    assert!(
        unknown.contains("slos[0].alerts.tiers.page_fast.factr: unknown key; remove it or use one of: enabled, long_window, short_window, factor, budget_share, severity, for, keep_firing_for, labels, annotations"),
        "{unknown}"
    );
}

/// Interns series by text so that the same labels keep their id across rounds.
#[derive(Default)]
struct World {
    series: HashMap<String, Arc<Series>>,
}

impl World {
    fn snap(&mut self, ts: i64, samples: &[(&str, f64)]) -> Vec<(String, Arc<Snapshot>)> {
        let samples = samples
            .iter()
            .map(|(text, v)| {
                let series = self
                    .series
                    .entry(text.to_string())
                    .or_insert_with(|| {
                        let sel: crate::store::selector::Selector = text.parse().expect("series");
                        Series::new(LabelSet::from_pairs(
                            sel.matchers
                                .iter()
                                .map(|m| (m.name.clone(), m.value.clone())),
                        ))
                    })
                    .clone();
                Sample {
                    series,
                    value: *v,
                    timestamp_ms: ts,
                }
            })
            .collect();
        vec![(
            "t".to_string(),
            Arc::new(Snapshot::from_samples(ts, samples)),
        )]
    }
}

/// Runs the SLO engine and the alert engine together, one round a minute, with `ok` and `err`
/// requests added per minute by `traffic(minute)`.
struct Rig {
    slo: Engine,
    alerts: AlertEngine,
    world: World,
    ok: f64,
    err: f64,
    store: SeriesStore,
}

impl Rig {
    fn new(yaml: &str) -> Self {
        Self {
            slo: Engine::new(slos(yaml)),
            alerts: AlertEngine::default(),
            world: World::default(),
            ok: 0.0,
            err: 0.0,
            store: SeriesStore::new(),
        }
    }

    /// One round at `T0 + minute` after adding the requests of that minute.
    fn round(&mut self, minute: i64, ok: f64, err: f64) -> Vec<Alert> {
        self.ok += ok;
        self.err += err;
        let t = T0 + minute * M;
        let snap = self.world.snap(
            t,
            &[
                ("req_total{code=\"200\"}", self.ok),
                ("req_total{code=\"500\"}", self.err),
            ],
        );
        let (st, _) = self.slo.round(t, &snap);
        self.alerts.evaluate(t, &st, &self.store)
    }
}

fn find<'a>(alerts: &'a [Alert], name: &str, tier: Option<&str>) -> Option<&'a Alert> {
    alerts.iter().find(|a| {
        a.labels.get("alertname").map(String::as_str) == Some(name)
            && a.labels.get("tier").map(String::as_str) == tier
    })
}

#[test]
fn a_50_percent_error_rate_fires_every_tier_and_only_the_fastest_page_notifies() {
    let mut r = Rig::new(&spec("30d", ""));
    assert!(r.round(0, 0.0, 0.0).is_empty(), "baseline round");
    let alerts = r.round(1, 50.0, 50.0);
    let page = find(&alerts, BURN_RATE_ALERT, Some("page_fast")).expect("page_fast");
    assert_eq!(page.state, AlertState::Firing, "for: 0 fires at once");
    assert!(
        (page.value - 50.0).abs() < 1e-9,
        "burn rate 0.5 / 0.01: {}",
        page.value
    );
    assert_eq!(page.inhibited_by, None);
    assert_eq!(
        page.labels,
        [
            ("alertname", "SLOBurnRateHigh"),
            ("service", "shop"),
            ("severity", "page"),
            ("slo", "avail"),
            ("team", "pay"),
            ("tier", "page_fast"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect::<BTreeMap<_, _>>()
    );
    assert_eq!(
        page.annotations["summary"],
        "shop/avail burns its error budget at 50x over 1h (tier page_fast)"
    );
    assert_eq!(page.generator_url, "/api/v1/slos/shop/avail");
    for tier in ["page_slow", "ticket_fast", "ticket_slow"] {
        let a = find(&alerts, BURN_RATE_ALERT, Some(tier)).expect(tier);
        assert_eq!(a.state, AlertState::Firing);
        assert_eq!(
            a.inhibited_by.as_deref(),
            Some("tier page_fast (severity page, burn rate 50) of the same SLO is firing"),
            "{tier}"
        );
    }
    // 100 events, 50 bad against 1 allowed: the budget is gone, but `for: 5m` holds it.
    let b = find(&alerts, BUDGET_ALERT, None).expect("budget");
    assert_eq!(b.state, AlertState::Pending);
    for m in 2..=6 {
        r.round(m, 50.0, 50.0);
    }
    let alerts = r.round(7, 50.0, 50.0);
    assert_eq!(
        find(&alerts, BUDGET_ALERT, None).map(|a| a.state),
        Some(AlertState::Firing)
    );

    // The errors stop: the 5m short window drops below 14.4 after a few minutes while the 1h
    // window is still high; page_fast resolves, the next tier takes over the notification.
    let mut resolved_at = None;
    for m in 8..30 {
        let alerts = r.round(m, 100.0, 0.0);
        let a = find(&alerts, BURN_RATE_ALERT, Some("page_fast")).expect("still reported");
        if a.state == AlertState::Resolved {
            resolved_at = Some(m);
            assert_eq!(a.resolved_at_ms, Some(T0 + m * M));
            let slow = find(&alerts, BURN_RATE_ALERT, Some("page_slow")).expect("page_slow");
            assert_eq!(slow.state, AlertState::Firing);
            assert_eq!(slow.inhibited_by, None, "page_slow now notifies");
            break;
        }
    }
    // 5m window = the current minute and the 4 before: 350 errors of 700 events at minute 8,
    // ... with 14.4% error rate needed for 14.4x; after 4 clean minutes: 50 of 500 = 10%.
    assert_eq!(resolved_at, Some(11));
}

#[test]
fn min_events_gates_burn_alerts() {
    let mut r = Rig::new(&spec("30d", "    min_events: 500\n"));
    r.round(0, 0.0, 0.0);
    let alerts = r.round(1, 50.0, 50.0);
    assert!(
        find(&alerts, BURN_RATE_ALERT, Some("page_fast")).is_none(),
        "100 events < 500"
    );
    assert!(find(&alerts, BUDGET_ALERT, None).is_none(), "gated as well");
    for m in 2..5 {
        r.round(m, 50.0, 50.0);
    }
    let alerts = r.round(5, 50.0, 50.0);
    assert_eq!(
        find(&alerts, BURN_RATE_ALERT, Some("page_fast")).map(|a| a.state),
        Some(AlertState::Firing),
        "500 events in the 1h window"
    );
}

#[test]
fn no_data_fires_after_10_minutes_and_resolves_when_data_comes() {
    let mut r = Rig::new(&spec(
        "30d",
        "    alerts:\n      no_data: {labels: {team: sre}, annotations: {runbook_url: 'https://wiki/{{ .slo }}'}}\n",
    ));
    let t = |m: i64| T0 + m * M;
    let (st, _) = r.slo.round(t(0), &[]);
    let alerts = r.alerts.evaluate(t(0), &st, &r.store);
    let a = find(&alerts, NO_DATA_ALERT, None).expect("no data");
    assert_eq!(a.state, AlertState::Pending);
    assert_eq!(a.labels.get("team").map(String::as_str), Some("sre"));
    assert_eq!(a.labels.get("severity").map(String::as_str), Some("ticket"));
    assert_eq!(a.annotations["runbook_url"], "https://wiki/avail");
    assert_eq!(
        a.annotations["description"],
        "req_total matches no series; the SLO cannot be evaluated while its series are missing."
    );
    let (st, _) = r.slo.round(t(9), &[]);
    let alerts = r.alerts.evaluate(t(9), &st, &r.store);
    assert_eq!(
        find(&alerts, NO_DATA_ALERT, None).map(|a| a.state),
        Some(AlertState::Pending)
    );
    let (st, _) = r.slo.round(t(10), &[]);
    let alerts = r.alerts.evaluate(t(10), &st, &r.store);
    assert_eq!(
        find(&alerts, NO_DATA_ALERT, None).map(|a| a.state),
        Some(AlertState::Firing)
    );
    let alerts = r.round(11, 1.0, 0.0);
    let a = find(&alerts, NO_DATA_ALERT, None).expect("resolved");
    assert_eq!(
        (a.state, a.resolved_at_ms),
        (AlertState::Resolved, Some(t(11)))
    );
}

#[test]
fn target_down_is_not_no_data() {
    let mut r = Rig::new(
        "service: s\nslos:\n  - name: a\n    objective: 99\n    window: 1d\n    sli: {ratio: {errors: 'x_total{job=\"api\",code=\"500\"}', total: 'x_total{job=\"api\"}'}}\n",
    );
    let snap = r.world.snap(T0, &[("up{job=\"api\"}", 0.0)]);
    let (st, _) = r.slo.round(T0, &snap);
    assert_eq!(st[0].condition, Condition::TargetDown);
    assert!(r.alerts.evaluate(T0, &st, &r.store).is_empty());
}

#[test]
fn custom_tier_with_for_keep_firing_for_and_templates() {
    let yaml = spec(
        "1h",
        "    alerts:\n      labels: {owner: '{{ .labels.team }}-oncall'}\n      annotations: {runbook_url: 'https://runbooks/{{ .service }}/{{ .slo }}'}\n      tiers:\n        page_fast: {enabled: false}\n        page_slow: {enabled: false}\n        ticket_fast: {enabled: false}\n        quick:\n          long_window: 2m\n          short_window: 1m\n          factor: 10\n          for: 1m\n          keep_firing_for: 2m\n          severity: critical\n          annotations: {summary: '{{ .slo }} at {{ .burn_rate }}x ({{ .short_burn_rate }}x over {{ .short_window }}), objective {{ .objective }}%, budget {{ .budget_remaining }}%'}\n      budget_exhausted: {enabled: false}\n",
    );
    let mut r = Rig::new(&yaml);
    r.round(0, 0.0, 0.0);
    let a = r.round(1, 80.0, 20.0);
    assert_eq!(a.len(), 1, "{a:?}");
    assert_eq!(a[0].state, AlertState::Pending);
    assert_eq!(a[0].labels["owner"], "pay-oncall");
    assert_eq!(a[0].labels["severity"], "critical");
    assert_eq!(
        a[0].annotations["runbook_url"],
        "https://runbooks/shop/avail"
    );
    assert_eq!(
        a[0].annotations["summary"],
        "avail at 20x (20x over 1m), objective 99%, budget -1900%"
    );
    let a = r.round(2, 80.0, 20.0);
    assert_eq!(
        (a[0].state, a[0].fired_at_ms),
        (AlertState::Firing, Some(T0 + 2 * M))
    );
    // Clean traffic: the 1m window is clean at minute 3; kept firing for 2m (3, 4), then
    // resolved at 5.
    for m in [3, 4] {
        assert_eq!(
            r.round(m, 100.0, 0.0)[0].state,
            AlertState::Firing,
            "minute {m}"
        );
    }
    let a = r.round(5, 100.0, 0.0);
    assert_eq!(
        (a[0].state, a[0].resolved_at_ms),
        (AlertState::Resolved, Some(T0 + 5 * M))
    );
}

#[test]
fn grouped_slos_inhibit_per_instance() {
    let yaml = "service: s\nslos:\n  - name: a\n    objective: 99\n    window: 30d\n    group_by: [route]\n    sli: {ratio: {errors: 'r_total{code=\"500\"}', total: r_total}}\n";
    let mut rig = Rig::new(yaml);
    let mut round = |m: i64, a_err: f64, b_err: f64| {
        let t = T0 + m * M;
        let snap = rig.world.snap(
            t,
            &[
                (
                    "r_total{route=\"a\",code=\"200\"}",
                    (100.0 - 10.0) * m as f64,
                ),
                ("r_total{route=\"a\",code=\"500\"}", a_err * m as f64),
                ("r_total{route=\"b\",code=\"200\"}", 90.0 * m as f64),
                ("r_total{route=\"b\",code=\"500\"}", b_err * m as f64),
            ],
        );
        let (st, _) = rig.slo.round(t, &snap);
        rig.alerts.evaluate(t, &st, &rig.store)
    };
    round(0, 0.0, 0.0);
    // route a: 10 errors of 100 (burn 10: page_slow and tickets fire, not page_fast);
    // route b: 50 of 140 (burn 35.7: every tier).
    let alerts = round(1, 10.0, 50.0);
    let of = |route: &str, tier: &str| {
        alerts
            .iter()
            .find(|a| {
                a.labels.get("route").map(String::as_str) == Some(route)
                    && a.labels.get("tier").map(String::as_str) == Some(tier)
            })
            .map(|a| a.inhibited_by.clone())
    };
    assert_eq!(of("a", "page_fast"), None, "does not fire");
    assert_eq!(
        of("a", "page_slow"),
        Some(None),
        "the most severe firing tier of a"
    );
    assert!(
        of("a", "ticket_fast")
            .flatten()
            .is_some_and(|r| r.starts_with("tier page_slow"))
    );
    assert_eq!(of("b", "page_fast"), Some(None));
    assert!(
        of("b", "page_slow")
            .flatten()
            .is_some_and(|r| r.starts_with("tier page_fast"))
    );
}

#[test]
fn threshold_rules_run_through_the_state_machine_and_reload() {
    let rule: ThresholdRuleConfig =
        serde_yaml::from_str("alert: QueueDeep\nselector: depth\nop: '>'\nvalue: 10\nfor: 1m\n")
            .expect("rule");
    let mut e = AlertEngine::new(std::slice::from_ref(&rule));
    let handle = e.handle();
    let store = SeriesStore::new();
    let series = Series::new(LabelSet::from_pairs([("__name__", "depth"), ("q", "x")]));
    let publish = |v: f64| {
        store.publish(
            "t",
            Arc::new(Snapshot::from_samples(
                T0,
                vec![Sample {
                    series: series.clone(),
                    value: v,
                    timestamp_ms: T0,
                }],
            )),
        );
    };
    publish(11.0);
    let a = e.evaluate(T0, &[], &store);
    assert_eq!(a[0].state, AlertState::Pending);
    assert_eq!(a[0].labels["q"], "x");
    let a = e.evaluate(T0 + M, &[], &store);
    assert_eq!(a[0].state, AlertState::Firing);
    let mut w = MetricsWriter::new();
    handle.write_metrics(&mut w);
    let text = w.finish();
    assert!(
        text.contains("ALERTS{alertname=\"QueueDeep\",alertstate=\"firing\",q=\"x\"} 1\n"),
        "{text}"
    );
    assert!(
        text.contains("ALERTS_FOR_STATE{alertname=\"QueueDeep\",q=\"x\"} 1800000000\n"),
        "{text}"
    );
    assert!(
        text.contains("vigil_alerts{state=\"firing\"} 1\n"),
        "{text}"
    );
    // A reload with the same rule keeps the alert firing; removing it drops the alert.
    handle.apply_config(std::slice::from_ref(&rule));
    assert_eq!(
        e.evaluate(T0 + 2 * M, &[], &store)[0].state,
        AlertState::Firing
    );
    handle.apply_config(&[]);
    assert!(e.evaluate(T0 + 3 * M, &[], &store).is_empty());
    publish(5.0);
    let _ = Duration::ZERO;
}
