//! SLOs end to end through the real binary: the demo service is scraped, `rules/demo.yaml`'s
//! SLOs are evaluated every round, raising the demo's error rate raises the burn rates, the SLO
//! series appear on `/metrics`, and after `kill -9` and a restart on the same SQLite ledger the
//! 30-day budget continues from what was counted before (the downtime counts nothing).

mod common;

use std::time::Duration;

use common::{Daemon, eventually, http_post, metric_value, write_config};
use serde_json::Value;

fn demo_with_rules(dir: &std::path::Path) -> std::path::PathBuf {
    demo_with_rules_and(dir, "")
}

fn demo_with_rules_and(dir: &std::path::Path, extra_agent: &str) -> std::path::PathBuf {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port")
        .port();
    std::fs::create_dir_all(dir.join("rules")).expect("mkdir");
    std::fs::copy(
        common::repo().join("rules/demo.yaml"),
        dir.join("rules/demo.yaml"),
    )
    .expect("copy rules");
    let config = write_config(
        dir,
        &format!(
            "demo:\n  enabled: true\n  listen: 127.0.0.1:{port}\n  requests_per_second: 300\n  error_rate: 0\n\
             scrape:\n  targets:\n    - job: demo\n      urls: [http://127.0.0.1:{port}/metrics]\n      interval: 1s\n      timeout: 900ms\n\
             rules: [rules/*.yaml]\n"
        ),
    );
    if !extra_agent.is_empty() {
        let text = std::fs::read_to_string(&config).expect("read");
        std::fs::write(
            &config,
            text.replacen("agent:\n", &format!("agent:\n{extra_agent}"), 1),
        )
        .expect("write");
    }
    config
}

fn slo(d: &Daemon, name: &str) -> Option<Value> {
    let (_, body) = d.get(&format!("/api/v1/slos/demo/{name}"));
    let v: Value = serde_json::from_str(&body).ok()?;
    Some(v["data"].clone())
}

fn window_total(s: &Value, window: &str) -> f64 {
    s["status"]["instances"][0]["windows"]
        .as_array()
        .and_then(|ws| ws.iter().find(|w| w["window"] == window))
        .and_then(|w| w["total"].as_f64())
        .unwrap_or(0.0)
}

#[test]
fn demo_slos_burn_and_survive_kill_9() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = demo_with_rules(dir.path());
    let mut d = Daemon::start(&config);
    eventually(Duration::from_secs(30), "/readyz", || {
        (d.get("/readyz").0 == 200).then_some(())
    });

    // Traffic is counted.
    let avail = eventually(Duration::from_secs(20), "availability events", || {
        let s = slo(&d, "availability")?;
        (window_total(&s, "5m") > 200.0).then_some(s)
    });
    assert_eq!(avail["spec"]["objective"], 0.995);
    assert_eq!(avail["status"]["condition"], "ok");
    assert_eq!(avail["status"]["window"], "30d");

    // Latency is grouped by handler: one instance per handler.
    let lat = eventually(Duration::from_secs(10), "latency instances", || {
        let s = slo(&d, "latency")?;
        (s["status"]["instances"].as_array()?.len() == 2).then_some(s)
    });
    assert!(
        lat["status"]["instances"]
            .as_array()
            .is_some_and(|i| i.iter().any(|x| x["group"]["handler"] == "/api/cart"))
    );
    let up = eventually(Duration::from_secs(10), "uptime SLO", || slo(&d, "uptime"));
    assert_eq!(up["status"]["window"], "month");

    // Raise the error rate: the 5m burn rate of the availability SLO climbs past 14.4
    // (30% errors against a 0.5% budget is a burn of 60).
    let (code, _) = http_post(&format!("{}/demo/error-rate", d.url), "0.3");
    assert_eq!(code, 200);
    eventually(Duration::from_secs(20), "fast burn", || {
        let (_, m) = d.get("/metrics");
        let burn = metric_value(
            &m,
            "vigil_slo_burn_rate{slo=\"availability\",service=\"demo\",window=\"5m\"}",
        )?;
        (burn > 14.4).then_some(())
    });
    let (_, m) = d.get("/metrics");
    for series in [
        "vigil_slo_objective_ratio{slo=\"availability\",service=\"demo\"}",
        "vigil_slo_error_budget_remaining_ratio{slo=\"availability\",service=\"demo\"}",
        "vigil_slo_events_total{slo=\"availability\",service=\"demo\",kind=\"total\"}",
        "vigil_slo_time_to_exhaustion_seconds{slo=\"availability\",service=\"demo\"}",
        "vigil_slo_no_data{slo=\"availability\",service=\"demo\"}",
        "vigil_slo_sli_ratio{slo=\"latency\",service=\"demo\",handler=\"/api/cart\",window=\"1h\"}",
    ] {
        assert!(
            metric_value(&m, series).is_some(),
            "{series} missing from /metrics"
        );
    }
    assert!(
        metric_value(
            &m,
            "vigil_slo_error_budget_remaining_ratio{slo=\"availability\",service=\"demo\"}"
        )
        .unwrap_or(1.0)
            < 1.0
    );

    // `vigil slo status` prints the same SLOs as a table, worst budget first.
    let out = std::process::Command::new(common::vigil_bin())
        .args(["slo", "status", "--url", &d.url])
        .output()
        .expect("vigil slo status");
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{table}");
    let lines: Vec<&str> = table.lines().collect();
    assert!(
        lines[0].starts_with("SLO") && lines[0].contains("BUDGET LEFT"),
        "{table}"
    );
    assert!(
        lines[1].starts_with("demo/availability"),
        "the burning SLO comes first:\n{table}"
    );
    assert!(table.contains("handler=/api/cart"), "{table}");

    // kill -9, then restart on the same ledger: the 30d window continues from the ledger.
    let before = window_total(&slo(&d, "availability").expect("slo"), "30d");
    d.signal("KILL");
    let _ = d.wait_exit(Duration::from_secs(5));
    let d2 = Daemon::start(&config);
    let (after, counted_since_restart) =
        eventually(Duration::from_secs(20), "restored budget", || {
            let s = slo(&d2, "availability")?;
            let t = window_total(&s, "30d");
            let own = s["status"]["instances"][0]["events_total"].as_f64()?;
            (t > 0.0).then_some((t, own))
        });
    // Everything but the last unflushed round (at most 1s, ~300 events) survived, and the 30d
    // total is more than the new process counted itself: it came from the ledger.
    assert!(
        after >= before - 400.0,
        "30d total {after} after restart, {before} before kill -9"
    );
    assert!(
        after > counted_since_restart + 400.0,
        "30d total {after} vs {counted_since_restart} counted since restart"
    );
    let (_, m) = d2.get("/metrics");
    assert_eq!(
        metric_value(&m, "vigil_ledger_write_failures_total"),
        Some(0.0)
    );
}

/// The same continuity on a shared Postgres ledger (agent.ledger_url_env), with a unique agent id
/// so that runs do not see each other's buckets.
#[test]
fn budgets_survive_kill_9_on_postgres() {
    let pg = common::service("VIGIL_TEST_PG_URL", "PostgreSQL");
    let dir = tempfile::tempdir().expect("tempdir");
    let id = format!("pg-restart-{}-{}", std::process::id(), fastrand::u32(..));
    let config = demo_with_rules_and(
        dir.path(),
        &format!("  id: {id}\n  ledger_url_env: VIGIL_TEST_LEDGER_URL\n"),
    );
    let env = [("VIGIL_TEST_LEDGER_URL", pg.as_str())];
    let mut d = Daemon::start_with_env(&config, &env);
    assert!(
        d.log_text().contains("postgres://vigil:***@"),
        "the ledger URL is logged without its password:\n{}",
        d.log_text()
    );
    assert!(
        !d.log_text().contains("vigil:vigil@"),
        "password in the log:\n{}",
        d.log_text()
    );
    let before = eventually(
        Duration::from_secs(30),
        "events in the Postgres ledger",
        || {
            let s = slo(&d, "availability")?;
            let t = window_total(&s, "30d");
            (t > 1000.0).then_some(t)
        },
    );
    // Let one more round reach the ledger, then kill -9.
    std::thread::sleep(Duration::from_millis(1500));
    let before = before.max(window_total(&slo(&d, "availability").expect("slo"), "30d") - 400.0);
    d.signal("KILL");
    let _ = d.wait_exit(Duration::from_secs(5));
    let d2 = Daemon::start_with_env(&config, &env);
    let (after, own) = eventually(Duration::from_secs(20), "restored from Postgres", || {
        let s = slo(&d2, "availability")?;
        let t = window_total(&s, "30d");
        let own = s["status"]["instances"][0]["events_total"].as_f64()?;
        (t > 0.0).then_some((t, own))
    });
    assert!(
        after >= before,
        "30d total {after} after restart, at least {before} before kill -9"
    );
    assert!(
        after > own + 400.0,
        "restored total {after} must exceed what the new process counted ({own})"
    );
}
