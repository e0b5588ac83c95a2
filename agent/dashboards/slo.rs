//! SLO dashboards, drawn from the same specs the engine evaluates: an overview table of every
//! SLO and one detail dashboard per SLO (grouped SLOs get a variable per `group_by` label). The
//! series are the agent's `vigil_slo_*` and `ALERTS` (docs/slo.md); the "behind it" panel reads
//! the SLI's own selectors from the scraped target.

use std::fmt::Write as _;

use serde_json::{Value, json};

use super::model::{
    self, bargauge, column, dashboard, datasource_variable, field_defaults, gauge, grid,
    label_variable, promql_str, row, stat, table, tag_link, target, thresholds, timeseries,
};
use crate::slo::spec::{Aggregate, Sli, Slo, Window};
use crate::slo::window::window_name;
use crate::store::selector::Selector;

/// Uid of the overview dashboard.
pub const OVERVIEW_UID: &str = "vigil-slo-overview";

/// Tag every SLO dashboard carries (links between them use it).
pub const TAG: &str = "vigil-slo";

/// The uid of an SLO's detail dashboard.
pub fn detail_uid(slo: &Slo) -> String {
    model::uid(&["vigil-slo", &slo.service, &slo.spec.name])
}

/// The `window` label of the SLO window (`30d`, `month`, ...), as the engine names it.
pub fn slo_window(slo: &Slo) -> String {
    match &slo.spec.window {
        Window::Rolling(d) => window_name(*d),
        Window::Calendar { unit, .. } => format!("{unit:?}").to_lowercase(),
    }
}

/// `service="…",slo="…"` for the agent's series.
fn base_matchers(slo: &Slo) -> String {
    format!(
        "service={},slo={}",
        promql_str(&slo.service),
        promql_str(&slo.spec.name)
    )
}

/// Matchers of the detail dashboard: service, slo and one `label=~"$label"` per group label.
fn detail_matchers(slo: &Slo) -> String {
    let mut m = base_matchers(slo);
    for g in &slo.spec.group_by {
        let _ = write!(m, ",{g}=~\"${g}\"");
    }
    m
}

/// A spec selector with the group variables added (for the target's own series).
fn source_selector(slo: &Slo, text: &str) -> String {
    let Ok(sel) = text.parse::<Selector>() else {
        return text.to_string();
    };
    let name = sel.metric_name().unwrap_or_default().to_string();
    let mut parts: Vec<String> = sel
        .matchers
        .iter()
        .filter(|m| !(m.name == "__name__" && m.value == name && !name.is_empty()))
        .map(|m| format!("{}{}{}", m.name, m.op.as_str(), promql_str(&m.value)))
        .collect();
    for g in &slo.spec.group_by {
        parts.push(format!("{g}=~\"${g}\""));
    }
    if parts.is_empty() {
        name
    } else {
        format!("{name}{{{}}}", parts.join(","))
    }
}

fn by_groups(slo: &Slo, first: &[&str]) -> String {
    let mut labels: Vec<&str> = first.to_vec();
    labels.extend(slo.spec.group_by.iter().map(String::as_str));
    if labels.is_empty() {
        String::new()
    } else {
        format!(" by ({})", labels.join(", "))
    }
}

fn group_legend(slo: &Slo, rest: &str) -> String {
    let mut parts: Vec<String> = slo
        .spec
        .group_by
        .iter()
        .map(|g| format!("{{{{{g}}}}}"))
        .collect();
    if !rest.is_empty() {
        parts.push(rest.to_string());
    }
    parts.join(" ")
}

fn pct(objective: f64) -> String {
    let s = format!("{:.4}", objective * 100.0);
    let s = s.trim_end_matches('0').trim_end_matches('.');
    format!("{s}%")
}

fn severity_colour(severity: &str) -> &'static str {
    match severity {
        "page" | "critical" => "red",
        "ticket" | "warning" => "orange",
        _ => "yellow",
    }
}

fn budget_thresholds() -> Value {
    thresholds("red", &[(0.0, "orange"), (0.25, "yellow"), (0.5, "green")])
}

/// The overview: one row per SLO with objective, SLI over its window, budget remaining,
/// fast (1h) and slow (6h) burn, firing alerts and no-data; each row links to its detail.
pub fn overview(slos: &[&Slo]) -> Value {
    let union = |f: &dyn Fn(&Slo) -> String| -> String {
        slos.iter()
            .map(|s| {
                format!(
                    "label_replace({}, \"dashboard\", {}, \"\", \"\")",
                    f(s),
                    promql_str(&detail_uid(s))
                )
            })
            .collect::<Vec<_>>()
            .join("\nor\n")
    };
    let agg = |op: &str, metric: &str, extra: &str| {
        let op = op.to_string();
        let metric = metric.to_string();
        let extra = extra.to_string();
        move |s: &Slo| {
            format!(
                "{op} by (service, slo) ({metric}{{{}{extra}}})",
                base_matchers(s)
            )
        }
    };
    let sli = |s: &Slo| {
        format!(
            "min by (service, slo) (vigil_slo_sli_ratio{{{},window={}}})",
            base_matchers(s),
            promql_str(&slo_window(s))
        )
    };
    let firing = |s: &Slo| {
        format!(
            "(count by (service, slo) (ALERTS{{{m},alertstate=\"firing\"}}) or max by (service, slo) (vigil_slo_objective_ratio{{{m}}}) * 0)",
            m = base_matchers(s)
        )
    };
    let targets = vec![
        target(
            "A",
            &union(&agg("max", "vigil_slo_objective_ratio", "")),
            "",
            true,
        ),
        target("B", &union(&sli), "", true),
        target(
            "C",
            &union(&agg("min", "vigil_slo_error_budget_remaining_ratio", "")),
            "",
            true,
        ),
        target(
            "D",
            &union(&agg("max", "vigil_slo_burn_rate", ",window=\"1h\"")),
            "",
            true,
        ),
        target(
            "E",
            &union(&agg("max", "vigil_slo_burn_rate", ",window=\"6h\"")),
            "",
            true,
        ),
        target("F", &union(&firing), "", true),
        target("G", &union(&agg("max", "vigil_slo_no_data", "")), "", true),
    ];
    let link = json!([{
        "targetBlank": false,
        "title": "Open the SLO dashboard",
        "url": "/d/${__data.fields.dashboard}?${__url_time_range}&${datasource:queryparam}",
    }]);
    let unit = |u: &str| json!({"id": "unit", "value": u});
    let colour_cell = json!({"id": "custom.cellOptions", "value": {"type": "color-background"}});
    let overrides = vec![
        column("SLO", vec![json!({"id": "links", "value": link})]),
        column(
            "Objective",
            vec![unit("percentunit"), json!({"id": "decimals", "value": 2})],
        ),
        column(
            "SLI (SLO window)",
            vec![unit("percentunit"), json!({"id": "decimals", "value": 3})],
        ),
        column(
            "Budget remaining",
            vec![
                unit("percentunit"),
                colour_cell.clone(),
                json!({"id": "thresholds", "value": budget_thresholds()}),
            ],
        ),
        column(
            "Fast burn (1h)",
            vec![
                unit("x"),
                colour_cell.clone(),
                json!({"id": "thresholds", "value": thresholds("green", &[(6.0, "orange"), (14.4, "red")])}),
            ],
        ),
        column(
            "Slow burn (6h)",
            vec![
                unit("x"),
                colour_cell.clone(),
                json!({"id": "thresholds", "value": thresholds("green", &[(1.0, "orange"), (6.0, "red")])}),
            ],
        ),
        column(
            "Firing alerts",
            vec![
                colour_cell.clone(),
                json!({"id": "thresholds", "value": thresholds("green", &[(1.0, "red")])}),
            ],
        ),
        column(
            "No data",
            vec![
                colour_cell,
                json!({"id": "thresholds", "value": thresholds("green", &[(1.0, "red")])}),
            ],
        ),
    ];
    let organize = json!({
        "excludeByName": {"Time": true, "dashboard": true},
        "indexByName": {"service": 0, "slo": 1, "Value #A": 2, "Value #B": 3, "Value #C": 4, "Value #D": 5, "Value #E": 6, "Value #F": 7, "Value #G": 8},
        "renameByName": {
            "service": "Service",
            "slo": "SLO",
            "Value #A": "Objective",
            "Value #B": "SLI (SLO window)",
            "Value #C": "Budget remaining",
            "Value #D": "Fast burn (1h)",
            "Value #E": "Slow burn (6h)",
            "Value #F": "Firing alerts",
            "Value #G": "No data",
        },
    });
    let height = (3 + slos.len() as u32).clamp(6, 20);
    let panels = vec![
        table(
            1,
            "SLOs",
            "Every SLO Vigil evaluates, worst group per SLO. Click an SLO to open its dashboard.",
            grid(0, 0, 24, height),
            targets,
            overrides,
            organize,
        ),
        bargauge(
            2,
            "Error budget remaining",
            "Over each SLO's window; negative once overspent.",
            grid(0, height, 12, 8),
            vec![target(
                "A",
                "min by (service, slo) (vigil_slo_error_budget_remaining_ratio)",
                "{{service}} / {{slo}}",
                true,
            )],
            field_defaults("percentunit", budget_thresholds(), Some(-1.0), Some(1.0)),
        ),
        timeseries(
            3,
            "Burn rate (1h)",
            "How fast each SLO spends its budget: 1 spends it exactly over the window.",
            grid(12, height, 12, 8),
            vec![target(
                "A",
                "max by (service, slo) (vigil_slo_burn_rate{window=\"1h\"})",
                "{{service}} / {{slo}}",
                false,
            )],
            "x",
            thresholds("green", &[(1.0, "orange"), (14.4, "red")]),
            true,
        ),
    ];
    dashboard(
        OVERVIEW_UID,
        "Vigil / SLO overview",
        "Generated by `vigil dashboards generate` from the SLO specs; do not edit by hand.",
        &["vigil", TAG],
        vec![datasource_variable()],
        panels,
        vec![tag_link("SLOs", TAG)],
    )
}

/// The detail dashboard of one SLO.
pub fn detail(slo: &Slo) -> Value {
    let m = detail_matchers(slo);
    let window = slo_window(slo);
    let objective = slo.objective;
    let legend = |rest: &str| group_legend(slo, rest);
    let tiers = slo.alert_tiers();
    let mut burn_windows: Vec<std::time::Duration> = tiers
        .iter()
        .flat_map(|t| [t.long_window, t.short_window])
        .collect();
    burn_windows.sort();
    burn_windows.dedup();
    let burn_names: Vec<String> = burn_windows.iter().map(|d| window_name(*d)).collect();
    let mut factors: Vec<(f64, &str)> = Vec::new();
    for t in &tiers {
        let f = (t.factor * 1000.0).round() / 1000.0;
        if !factors.iter().any(|(x, _)| (*x - f).abs() < 1e-9) {
            factors.push((f, severity_colour(&t.severity)));
        }
    }
    factors.sort_by(|a, b| a.0.total_cmp(&b.0));
    let burn_th = thresholds("green", &factors);
    let tier_text: Vec<String> = tiers
        .iter()
        .map(|t| {
            format!(
                "{} ({}): {} over {} and {}",
                t.name,
                t.severity,
                (t.factor * 1000.0).round() / 1000.0,
                window_name(t.long_window),
                window_name(t.short_window)
            )
        })
        .collect();
    let sli_th = thresholds("red", &[(objective, "green")]);
    let mut panels = vec![
        stat(
            1,
            "Objective",
            &format!("{} over {}.", pct(objective), window),
            grid(0, 0, 4, 5),
            vec![target(
                "A",
                &format!("max(vigil_slo_objective_ratio{{{m}}})"),
                "",
                true,
            )],
            {
                let mut d = field_defaults("percentunit", thresholds("blue", &[]), None, None);
                d["decimals"] = json!(3);
                d
            },
        ),
        stat(
            2,
            &format!("SLI over {window}"),
            "Good events / all events over the SLO window; red below the objective.",
            grid(4, 0, 5, 5),
            vec![target(
                "A",
                &format!("vigil_slo_sli_ratio{{{m},window={}}}", promql_str(&window)),
                &legend(""),
                true,
            )],
            {
                let mut d = field_defaults("percentunit", sli_th.clone(), None, None);
                d["decimals"] = json!(3);
                d
            },
        ),
        gauge(
            3,
            "Error budget remaining",
            "1 − bad / ((1 − objective) × total) over the SLO window; negative once overspent.",
            grid(9, 0, 5, 5),
            vec![target(
                "A",
                &format!("vigil_slo_error_budget_remaining_ratio{{{m}}}"),
                &legend(""),
                true,
            )],
            field_defaults("percentunit", budget_thresholds(), Some(0.0), Some(1.0)),
        ),
        stat(
            4,
            "Time to budget exhaustion",
            "Budget remaining × window / the 1h burn rate (+Inf when nothing burns).",
            grid(14, 0, 5, 5),
            vec![target(
                "A",
                &format!("vigil_slo_time_to_exhaustion_seconds{{{m}}}"),
                &legend(""),
                true,
            )],
            field_defaults(
                "s",
                thresholds("red", &[(86_400.0, "orange"), (7.0 * 86_400.0, "green")]),
                None,
                None,
            ),
        ),
        stat(
            5,
            "Firing alerts",
            "Burn-rate and budget alerts of this SLO that fire now.",
            grid(19, 0, 5, 5),
            vec![target(
                "A",
                &format!("count(ALERTS{{{m},alertstate=\"firing\"}}) or vector(0)"),
                "",
                true,
            )],
            field_defaults("none", thresholds("green", &[(1.0, "red")]), None, None),
        ),
        timeseries(
            6,
            "SLI",
            &format!(
                "The SLI per window; the dashed line is the objective ({}).",
                pct(objective)
            ),
            grid(0, 5, 12, 8),
            vec![target(
                "A",
                &format!(
                    "vigil_slo_sli_ratio{{{m},window=~{}}}",
                    promql_str(&format!("5m|1h|1d|{window}"))
                ),
                &legend("{{window}}"),
                false,
            )],
            "percentunit",
            sli_th,
            true,
        ),
        timeseries(
            7,
            "Error budget remaining (burn-down)",
            "The budget left over the SLO window, over time.",
            grid(12, 5, 12, 8),
            vec![target(
                "A",
                &format!("vigil_slo_error_budget_remaining_ratio{{{m}}}"),
                &legend("remaining"),
                false,
            )],
            "percentunit",
            budget_thresholds(),
            true,
        ),
        timeseries(
            8,
            "Burn rate per window",
            &format!(
                "Error ratio / (1 − objective) per alerting window. Dashed lines: the tiers' thresholds. {}",
                tier_text.join("; ")
            ),
            grid(0, 13, 16, 8),
            vec![target(
                "A",
                &format!(
                    "vigil_slo_burn_rate{{{m},window=~{}}}",
                    promql_str(&burn_names.join("|"))
                ),
                &legend("{{window}}"),
                false,
            )],
            "x",
            burn_th.clone(),
            true,
        ),
        bargauge(
            9,
            "Burn rate now",
            "Current burn rate per alerting window, coloured by the tiers' thresholds.",
            grid(16, 13, 8, 8),
            vec![target(
                "A",
                &format!(
                    "vigil_slo_burn_rate{{{m},window=~{}}}",
                    promql_str(&burn_names.join("|"))
                ),
                &legend("{{window}}"),
                true,
            )],
            field_defaults("x", burn_th, Some(0.0), None),
        ),
    ];
    panels.push(source_panel(slo, 10, grid(0, 21, 12, 8)));
    panels.push(timeseries(
        11,
        "Events",
        "Good and total events per second as Vigil counts them.",
        grid(12, 21, 12, 8),
        vec![target(
            "A",
            &format!(
                "sum{} (rate(vigil_slo_events_total{{{m}}}[$__rate_interval]))",
                by_groups(slo, &["kind"])
            ),
            &legend("{{kind}}"),
            false,
        )],
        "ops",
        thresholds("green", &[]),
        false,
    ));
    panels.push(row(12, "Alerts", 29));
    panels.push(table(
        13,
        "Alerts",
        "This SLO's alerts now (pending and firing), from the agent's ALERTS series.",
        grid(0, 30, 24, 6),
        vec![target("A", &format!("ALERTS{{{m}}}"), "", true)],
        Vec::new(),
        json!({
            "excludeByName": {"Time": true, "Value": true, "__name__": true},
            "indexByName": {},
            "renameByName": {},
        }),
    ));
    let mut variables = vec![datasource_variable()];
    for g in &slo.spec.group_by {
        variables.push(label_variable(
            g,
            g,
            &format!("vigil_slo_objective_ratio{{{}}}", base_matchers(slo)),
        ));
    }
    let description = if slo.spec.description.is_empty() {
        format!("SLO {} of {}.", slo.spec.name, slo.service)
    } else {
        slo.spec.description.clone()
    };
    dashboard(
        &detail_uid(slo),
        &format!("Vigil / SLO / {} / {}", slo.service, slo.spec.name),
        &description,
        &["vigil", TAG],
        variables,
        panels,
        vec![
            json!({
                "asDropdown": false,
                "icon": "dashboard",
                "includeVars": false,
                "keepTime": true,
                "tags": [],
                "targetBlank": false,
                "title": "SLO overview",
                "tooltip": "",
                "type": "link",
                "url": format!("/d/{OVERVIEW_UID}"),
            }),
            tag_link("SLOs", TAG),
        ],
    )
}

/// "The error ratio or latency percentile behind it": the SLI computed from the target's own
/// series, as Prometheus sees them.
fn source_panel(slo: &Slo, id: u32, pos: Value) -> Value {
    let rate = |text: &str| {
        format!(
            "sum{} (rate({}[$__rate_interval]))",
            by_groups(slo, &[]),
            source_selector(slo, text)
        )
    };
    let legend = group_legend(slo, "");
    match &slo.spec.sli {
        Sli::Ratio(r) => {
            let expr = match (&r.errors, &r.good) {
                (Some(e), _) => format!("{}\n/\n{}", rate(e), rate(&r.total)),
                (None, Some(g)) => format!("1 - {}\n/\n{}", rate(g), rate(&r.total)),
                (None, None) => rate(&r.total),
            };
            timeseries(
                id,
                "Error ratio (from the target's series)",
                &format!(
                    "The SLI's selectors as rates; the dashed line is the budget, 1 − objective = {}.",
                    pct(1.0 - slo.objective)
                ),
                pos,
                vec![target(
                    "A",
                    &expr,
                    if legend.is_empty() {
                        "errors / total"
                    } else {
                        &legend
                    },
                    false,
                )],
                "percentunit",
                thresholds("green", &[(1.0 - slo.objective, "red")]),
                true,
            )
        }
        Sli::Latency(l) => {
            let q = model::nice(slo.objective);
            let expr = format!(
                "histogram_quantile({q}, sum{} (rate({}[$__rate_interval])))",
                by_groups(slo, &["le"]),
                source_selector(slo, &l.histogram)
            );
            timeseries(
                id,
                &format!("Latency p{}", pct(q).trim_end_matches('%')),
                &format!(
                    "The {} percentile of the histogram; the dashed line is the threshold ({}s).",
                    pct(q),
                    l.threshold
                ),
                pos,
                vec![target(
                    "A",
                    &expr,
                    if legend.is_empty() {
                        "latency"
                    } else {
                        &legend
                    },
                    false,
                )],
                "s",
                thresholds("green", &[(l.threshold, "red")]),
                true,
            )
        }
        Sli::Uptime(u) => {
            // `up` is made by the scraper and Vigil does not export it per target; its scrape
            // health per job is `vigil_scrape_targets{job, health}`.
            let parsed = u.selector.parse::<Selector>().ok();
            let scrape_up = parsed.as_ref().filter(|s| s.metric_name() == Some("up"));
            let (title, description, expr) = match scrape_up {
                Some(sel) => {
                    let jobs: Vec<String> = sel
                        .matchers
                        .iter()
                        .filter(|m| m.name == "job")
                        .map(|m| format!("job{}{}", m.op.as_str(), promql_str(&m.value)))
                        .collect();
                    let j = jobs.join(",");
                    let sep = if j.is_empty() { "" } else { "," };
                    (
                        "Targets up (Vigil's scrapes)",
                        "Share of the job's scrape targets whose last scrape succeeded; 1 is up.",
                        format!(
                            "sum by (job) (vigil_scrape_targets{{{j}{sep}health=\"up\"}})\n/\nsum by (job) (vigil_scrape_targets{{{j}}})"
                        ),
                    )
                }
                None => (
                    "Up (from the target's series)",
                    "The uptime selector; 1 is up.",
                    format!(
                        "min{} ({})",
                        by_groups(slo, &[]),
                        source_selector(slo, &u.selector)
                    ),
                ),
            };
            timeseries(
                id,
                title,
                description,
                pos,
                vec![target(
                    "A",
                    &expr,
                    if legend.is_empty() {
                        "{{job}}"
                    } else {
                        &legend
                    },
                    false,
                )],
                "percentunit",
                thresholds("red", &[(1.0, "green")]),
                true,
            )
        }
        Sli::Threshold(t) => {
            let agg = match t.aggregate {
                Aggregate::Sum => "sum",
                Aggregate::Max => "max",
                Aggregate::Min => "min",
                Aggregate::Avg => "avg",
            };
            timeseries(
                id,
                &format!("{agg} of the selector"),
                &format!(
                    "The threshold SLI's gauge; the dashed line is its limit {:?} {}.",
                    t.op, t.value
                ),
                pos,
                vec![target(
                    "A",
                    &format!(
                        "{agg}{} ({})",
                        by_groups(slo, &[]),
                        source_selector(slo, &t.selector)
                    ),
                    if legend.is_empty() { agg } else { &legend },
                    false,
                )],
                "none",
                thresholds("green", &[(t.value, "red")]),
                true,
            )
        }
    }
}
