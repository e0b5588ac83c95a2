//! The agent's own dashboard from its self-metrics (`vigil_*` on `/metrics`): scrape health,
//! samples per second, collectors, evaluation rounds, alerts, notifications, ledger writes,
//! reloads and the process. The agent's series carry the `instance` Prometheus gives them when
//! it scrapes Vigil; the dashboard selects by it.

use serde_json::Value;

use super::model::{
    dashboard, datasource_variable, field_defaults, grid, label_variable, stat, tag_link, target,
    thresholds, ts,
};

/// Uid of the agent dashboard.
pub const UID: &str = "vigil-agent";

const I: &str = "instance=~\"$instance\"";

fn rate_by(by: &str, metric: &str, extra: &str) -> String {
    format!("sum by ({by}) (rate({metric}{{{I}{extra}}}[$__rate_interval]))")
}

/// The agent dashboard.
pub fn dashboard_json() -> Value {
    let panels = vec![
        stat(
            1,
            "Targets up",
            "Scrape targets whose last scrape succeeded, of all targets.",
            grid(0, 0, 5, 4),
            vec![target(
                "A",
                &format!(
                    "sum(vigil_scrape_targets{{{I},health=\"up\"}}) / sum(vigil_scrape_targets{{{I}}})"
                ),
                "",
                true,
            )],
            field_defaults(
                "percentunit",
                thresholds("red", &[(0.9, "orange"), (1.0, "green")]),
                Some(0.0),
                Some(1.0),
            ),
        ),
        stat(
            2,
            "Evaluation round",
            "Duration of the last SLO evaluation round.",
            grid(5, 0, 5, 4),
            vec![target(
                "A",
                &format!("max(vigil_evaluation_round_duration_seconds{{{I}}})"),
                "",
                true,
            )],
            field_defaults(
                "s",
                thresholds("green", &[(1.0, "orange"), (5.0, "red")]),
                None,
                None,
            ),
        ),
        stat(
            3,
            "Alerts firing",
            "Alerts by the alert engine's count.",
            grid(10, 0, 5, 4),
            vec![target(
                "A",
                &format!("sum(vigil_alerts{{{I},state=\"firing\"}})"),
                "",
                true,
            )],
            field_defaults("none", thresholds("green", &[(1.0, "red")]), None, None),
        ),
        stat(
            4,
            "Last reload",
            "1 when the last configuration reload succeeded.",
            grid(15, 0, 4, 4),
            vec![target(
                "A",
                &format!("min(vigil_config_last_reload_successful{{{I}}})"),
                "",
                true,
            )],
            field_defaults("none", thresholds("red", &[(1.0, "green")]), None, None),
        ),
        stat(
            5,
            "Notifications pending",
            "Notifications waiting in the outbox.",
            grid(19, 0, 5, 4),
            vec![target(
                "A",
                &format!("sum(vigil_notifications_pending{{{I}}})"),
                "",
                true,
            )],
            field_defaults(
                "none",
                thresholds("green", &[(10.0, "orange"), (100.0, "red")]),
                None,
                None,
            ),
        ),
        ts(
            6,
            "Scrape targets by health",
            "Targets per job that are up, down or not yet scraped.",
            grid(0, 4, 12, 8),
            vec![target(
                "A",
                &format!("sum by (job, health) (vigil_scrape_targets{{{I}}})"),
                "{{job}} {{health}}",
                false,
            )],
            "none",
        ),
        ts(
            7,
            "Scrapes and failures",
            "Scrapes per second per job, and failures by reason.",
            grid(12, 4, 12, 8),
            vec![
                target(
                    "A",
                    &rate_by("job", "vigil_scrapes_total", ""),
                    "{{job}} scrapes",
                    false,
                ),
                target(
                    "B",
                    &rate_by("job, reason", "vigil_scrape_failures_total", ""),
                    "{{job}} failed: {{reason}}",
                    false,
                ),
            ],
            "ops",
        ),
        ts(
            8,
            "Samples per second",
            "Samples stored from scrapes, per job.",
            grid(0, 12, 12, 8),
            vec![target(
                "A",
                &rate_by("job", "vigil_scrape_samples_total", ""),
                "{{job}}",
                false,
            )],
            "ops",
        ),
        ts(
            9,
            "Collector duration",
            "Duration of each native collector's last collection, and failures per second.",
            grid(12, 12, 12, 8),
            vec![
                target(
                    "A",
                    &format!("max by (collector, type) (vigil_collector_duration_seconds{{{I}}})"),
                    "{{collector}} ({{type}})",
                    false,
                ),
                target(
                    "B",
                    &rate_by("collector", "vigil_collector_failures_total", ""),
                    "{{collector}} failures/s",
                    false,
                ),
            ],
            "s",
        ),
        ts(
            10,
            "Evaluation round time",
            "Duration of the last evaluation round, and rounds per second.",
            grid(0, 20, 12, 8),
            vec![
                target(
                    "A",
                    &format!("max(vigil_evaluation_round_duration_seconds{{{I}}})"),
                    "round",
                    false,
                ),
                target(
                    "B",
                    &format!("max(vigil_alert_evaluation_duration_seconds{{{I}}})"),
                    "alert evaluation",
                    false,
                ),
            ],
            "s",
        ),
        ts(
            11,
            "Notifications",
            "Sent per receiver and integration, failed (given up) per receiver.",
            grid(12, 20, 12, 8),
            vec![
                target(
                    "A",
                    &rate_by(
                        "receiver, integration",
                        "vigil_notifications_sent_total",
                        "",
                    ),
                    "{{receiver}} {{integration}} sent",
                    false,
                ),
                target(
                    "B",
                    &rate_by("receiver", "vigil_notifications_failed_total", ""),
                    "{{receiver}} failed",
                    false,
                ),
            ],
            "ops",
        ),
        ts(
            12,
            "Ledger writes",
            "Evaluation rounds written to the ledger, and failed writes (retried next round).",
            grid(0, 28, 12, 8),
            vec![
                target(
                    "A",
                    &rate_by("instance", "vigil_ledger_writes_total", ""),
                    "{{instance}} writes",
                    false,
                ),
                target(
                    "B",
                    &rate_by("instance", "vigil_ledger_write_failures_total", ""),
                    "{{instance}} failures",
                    false,
                ),
            ],
            "ops",
        ),
        ts(
            13,
            "Alerts by state",
            "Alerts of the alert engine by state.",
            grid(12, 28, 12, 8),
            vec![target(
                "A",
                &format!("sum by (state) (vigil_alerts{{{I}}})"),
                "{{state}}",
                false,
            )],
            "none",
        ),
        ts(
            14,
            "Process memory",
            "Resident memory of the agent.",
            grid(0, 36, 12, 8),
            vec![target(
                "A",
                &format!("process_resident_memory_bytes{{{I}}}"),
                "{{instance}}",
                false,
            )],
            "bytes",
        ),
        ts(
            15,
            "Process CPU",
            "CPU seconds per second.",
            grid(12, 36, 12, 8),
            vec![target(
                "A",
                &rate_by("instance", "process_cpu_seconds_total", ""),
                "{{instance}}",
                false,
            )],
            "percentunit",
        ),
        ts(
            16,
            "Targets down",
            "Scrape targets whose last scrape failed (vigil_scrape_target_up == 0), per job and target.",
            grid(0, 44, 12, 8),
            vec![target(
                "A",
                &format!("vigil_scrape_target_up{{{I}}} == 0"),
                "{{job}} {{target}}",
                false,
            )],
            "none",
        ),
        ts(
            17,
            "Scrape duration per target",
            "Duration of each target's last scrape.",
            grid(12, 44, 12, 8),
            vec![target(
                "A",
                &format!("max by (job, target) (vigil_scrape_target_duration_seconds{{{I}}})"),
                "{{job}} {{target}}",
                false,
            )],
            "s",
        ),
    ];
    dashboard(
        UID,
        "Vigil / Agent",
        "The Vigil agent's own health. Generated by `vigil dashboards generate`; do not edit by hand.",
        &["vigil"],
        vec![
            datasource_variable(),
            label_variable("instance", "Agent", "vigil_build_info"),
        ],
        panels,
        vec![
            tag_link("SLOs", super::slo::TAG),
            tag_link("Collectors", super::collectors::TAG),
        ],
    )
}
