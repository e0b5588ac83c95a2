//! The whole alerting path on the demo, through the real binary: the demo's error rate jumps,
//! the SLO's page tier fires, the slower tier is inhibited, and exactly one page reaches the
//! receiver (the demo receiver built into the agent, `POST /demo/webhook`, the one the shipped
//! `alerts/demo.yaml` uses); when the errors stop, one resolved notice follows.

mod common;

use std::time::Duration;

use common::{Daemon, eventually, http_post};

const RULES: &str = r#"
service: demo
slos:
  - name: availability
    objective: 99
    window: 1h
    min_events: 10
    alerts:
      tiers:
        page_fast: {enabled: false}
        quick: {long_window: 2m, short_window: 1m, factor: 10, severity: page}
        slower: {long_window: 3m, short_window: 1m, factor: 5, severity: ticket}
      budget_exhausted: {enabled: false}
    sli:
      ratio:
        errors: http_requests_total{job="demo",code=~"5.."}
        total: http_requests_total{job="demo"}
"#;

fn notifications(d: &Daemon) -> Vec<serde_json::Value> {
    let (code, body) = d.get("/demo/webhook");
    assert_eq!(code, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).expect("json");
    v["notifications"].as_array().cloned().unwrap_or_default()
}

#[test]
fn a_fast_burn_pages_the_receiver_once_and_resolves() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (api, demo) = (common::free_port(), common::free_port());
    std::fs::create_dir_all(dir.path().join("rules")).expect("mkdir");
    std::fs::write(dir.path().join("rules/demo.yaml"), RULES).expect("rules");
    std::fs::write(
        dir.path().join("alerts.yaml"),
        format!(
            "route:\n  receiver: demo\n  group_by: [alertname, service, slo]\n  group_wait: 1s\n  group_interval: 5s\n  repeat_interval: 4h\n\
             receivers:\n  - name: demo\n    webhook_configs:\n      - url: http://127.0.0.1:{api}/demo/webhook\n        send_resolved: true\n"
        ),
    )
    .expect("alerts");
    let cfg = dir.path().join("vigil.yaml");
    std::fs::write(
        &cfg,
        format!(
            "agent:\n  listen: 127.0.0.1:{api}\n  data_dir: {}\n  evaluation_interval: 1s\n  shutdown_grace_period: 5s\n\
             demo:\n  enabled: true\n  listen: 127.0.0.1:{demo}\n  requests_per_second: 200\n  error_rate: 0\n\
             scrape:\n  targets:\n    - job: demo\n      urls: [http://127.0.0.1:{demo}/metrics]\n      interval: 1s\n      timeout: 900ms\n\
             rules: [rules/*.yaml]\nalerts: [alerts.yaml]\n",
            dir.path().join("data").display()
        ),
    )
    .expect("config");
    let d = Daemon::start(&cfg);
    eventually(Duration::from_secs(30), "/readyz", || {
        (d.get("/readyz").0 == 200).then_some(())
    });
    assert!(
        notifications(&d).is_empty(),
        "nothing fires on healthy traffic"
    );

    assert_eq!(
        http_post(&format!("{}/demo/error-rate", d.url), "0.5").0,
        200
    );
    let first = eventually(Duration::from_secs(90), "a page at the receiver", || {
        notifications(&d).into_iter().next()
    });
    assert_eq!(first["status"], "firing", "{first}");
    assert_eq!(first["receiver"], "demo", "{first}");
    let alerts = first["alerts"].as_array().cloned().unwrap_or_default();
    assert_eq!(alerts.len(), 1, "one incident, one page: {first}");
    assert_eq!(alerts[0]["alertname"], "SLOBurnRateHigh", "{first}");
    assert_eq!(alerts[0]["severity"], "page", "{first}");

    // The ticket tier fires too, but is inhibited by the page: /api/v1/alerts says so, and no
    // further notification arrives while the group is unchanged.
    eventually(
        Duration::from_secs(60),
        "the ticket tier shown as inhibited",
        || {
            let (_, body) = d.get("/api/v1/alerts");
            (body.contains("\"tier\":\"slower\"") && body.contains("inhibited")).then_some(())
        },
    );
    std::thread::sleep(Duration::from_secs(8));
    let firing: Vec<_> = notifications(&d)
        .into_iter()
        .filter(|n| n["status"] == "firing")
        .collect();
    assert_eq!(firing.len(), 1, "exactly one page: {firing:?}");

    // Errors stop: the page resolves and the receiver hears it once.
    assert_eq!(http_post(&format!("{}/demo/error-rate", d.url), "0").0, 200);
    let resolved = eventually(Duration::from_secs(240), "the resolved notice", || {
        notifications(&d)
            .into_iter()
            .find(|n| n["status"] == "resolved")
    });
    assert_eq!(
        resolved["alerts"][0]["alertname"], "SLOBurnRateHigh",
        "{resolved}"
    );
    assert!(
        d.log_text().contains("demo receiver got a notification"),
        "the demo receiver logs what it got"
    );
}
