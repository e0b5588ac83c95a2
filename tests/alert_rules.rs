//! Alert rules end to end: the real `vigil run` binary scrapes its demo service, evaluates an
//! SLO with a short custom burn-rate tier, and when the demo's error rate is raised to 50% the
//! page fires on `/metrics` (`ALERTS`), the slower tier is inhibited (one incident, one page),
//! and it resolves when the errors stop. Also the bad `alerts:` fixtures of
//! `tests/fixtures/config/rules-bad/alerts-*.yaml` with their exact messages.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::{Daemon, eventually, http_post, metric_value, write_config};

/// An SLO over the demo's requests with a 1h window and two short tiers: `quick` (2m/1m at
/// 10x, page) and `slower` (3m/1m at 5x, ticket); the default tiers are off.
const RULES: &str = r#"
service: demo
slos:
  - name: availability
    objective: 99
    window: 1h
    min_events: 10
    alerts:
      labels: {team: demo}
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

fn config(dir: &Path, extra: &str) -> PathBuf {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port")
        .port();
    std::fs::create_dir_all(dir.join("rules")).expect("mkdir");
    std::fs::write(dir.join("rules/demo.yaml"), RULES).expect("write rules");
    write_config(
        dir,
        &format!(
            "demo:\n  enabled: true\n  listen: 127.0.0.1:{port}\n  requests_per_second: 200\n  error_rate: 0\n\
             scrape:\n  targets:\n    - job: demo\n      urls: [http://127.0.0.1:{port}/metrics]\n      interval: 1s\n      timeout: 900ms\n\
             rules: [rules/*.yaml]\n{extra}"
        ),
    )
}

const QUICK: &str = "ALERTS{alertname=\"SLOBurnRateHigh\",alertstate=\"firing\",service=\"demo\",severity=\"page\",slo=\"availability\",team=\"demo\",tier=\"quick\"}";
const SLOWER: &str = "ALERTS{alertname=\"SLOBurnRateHigh\",alertstate=\"firing\",service=\"demo\",severity=\"ticket\",slo=\"availability\",team=\"demo\",tier=\"slower\"}";

#[test]
fn demo_error_rate_fires_the_page_inhibits_the_ticket_and_resolves() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = config(dir.path(), "");
    let d = Daemon::start(&cfg);
    eventually(Duration::from_secs(30), "/readyz", || {
        (d.get("/readyz").0 == 200).then_some(())
    });
    // Healthy traffic: the metrics are there, nothing fires.
    let text = eventually(Duration::from_secs(20), "vigil_alerts on /metrics", || {
        let (_, t) = d.get("/metrics");
        (metric_value(&t, "vigil_alert_evaluations_total")? >= 3.0).then_some(t)
    });
    assert_eq!(
        metric_value(&text, "vigil_alerts{state=\"firing\"}"),
        Some(0.0),
        "{text}"
    );
    assert!(!text.contains("ALERTS{"), "{text}");

    let (status, _) = http_post(&format!("{}/demo/error-rate", d.url), "0.5");
    assert_eq!(status, 200);
    let text = eventually(Duration::from_secs(60), "the quick tier firing", || {
        let (_, t) = d.get("/metrics");
        metric_value(&t, QUICK).map(|_| t)
    });
    assert!(
        text.contains("ALERTS_FOR_STATE{alertname=\"SLOBurnRateHigh\",service=\"demo\",severity=\"page\",slo=\"availability\",team=\"demo\",tier=\"quick\"} "),
        "{text}"
    );
    // The ticket tier fires as well but does not notify: a page is already out.
    let text = eventually(Duration::from_secs(30), "the slower tier inhibited", || {
        let (_, t) = d.get("/metrics");
        (metric_value(&t, SLOWER).is_some()
            && metric_value(&t, "vigil_alerts{state=\"firing_inhibited\"}") == Some(1.0))
        .then_some(t)
    });
    assert_eq!(
        metric_value(&text, "vigil_alerts{state=\"firing\"}"),
        Some(2.0),
        "{text}"
    );

    // The errors stop: within a minute or two the 1m short window is clean and both resolve.
    let (status, _) = http_post(&format!("{}/demo/error-rate", d.url), "0");
    assert_eq!(status, 200);
    let text = eventually(Duration::from_secs(180), "both tiers resolved", || {
        let (_, t) = d.get("/metrics");
        (metric_value(&t, "vigil_alerts{state=\"resolved\"}") == Some(2.0)).then_some(t)
    });
    assert!(!text.contains("ALERTS{"), "{text}");
}

#[test]
fn threshold_rule_from_an_alerts_file_fires_on_the_demo_target() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir_all(dir.path().join("alerts")).expect("mkdir");
    std::fs::write(
        dir.path().join("alerts/rules.yaml"),
        "route: {receiver: nobody}\nreceivers: [{name: nobody}]\nrules:\n  - alert: DemoScraped\n    selector: up{job=\"demo\"}\n    op: \"==\"\n    value: 1\n    for: 2s\n    labels: {severity: info}\n    annotations: {summary: \"{{ .labels.instance }} is up ({{ .value }})\"}\n",
    )
    .expect("write alerts");
    let cfg = config(dir.path(), "alerts: [alerts/*.yaml]\n");
    let d = Daemon::start(&cfg);
    let text = eventually(Duration::from_secs(40), "DemoScraped firing", || {
        let (_, t) = d.get("/metrics");
        t.lines()
            .any(|l| {
                l.starts_with("ALERTS{alertname=\"DemoScraped\",alertstate=\"firing\",")
                    && l.contains("job=\"demo\"")
                    && l.contains("severity=\"info\"")
            })
            .then_some(t)
    });
    assert_eq!(
        metric_value(&text, "vigil_alert_threshold_rules"),
        Some(1.0),
        "{text}"
    );
}

/// `rules-bad/alerts-*.yaml`: each fails with exactly its `# expect:` lines.
#[test]
fn bad_alert_fixtures_fail_with_the_expected_problems() {
    let dir = common::repo().join("tests/fixtures/config/rules-bad");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("rules-bad")
        .map(|e| e.expect("entry").path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("alerts-") && n.ends_with(".yaml"))
        })
        .collect();
    files.sort();
    assert!(
        files.len() >= 2,
        "no alerts-*.yaml fixtures in {}",
        dir.display()
    );
    for file in files {
        let name = file.display().to_string();
        let text = std::fs::read_to_string(&file).expect("read");
        let expected: Vec<String> = text
            .lines()
            .filter_map(|l| l.strip_prefix("# expect: "))
            .map(|l| l.replace("{file}", &name))
            .collect();
        assert!(!expected.is_empty(), "{name} has no '# expect:' lines");
        let err = match vigil::slo::spec::load_file(&file) {
            Ok(_) => panic!("{name} should fail"),
            Err(e) => e.to_string(),
        };
        let got: Vec<String> = err.lines().map(str::to_string).collect();
        assert_eq!(got, expected, "problems of {name}:\n{err}");
    }
}
