//! The daemon end to end: a real `vigil run` process on ephemeral ports serves /metrics,
//! /healthz and /readyz, runs the demo service, reloads on SIGHUP and on a file change (keeping
//! the old config when the new one is bad), and exits 0 on SIGTERM within the grace period,
//! recording the clean stop in the ledger.

mod common;

use std::time::Duration;

use common::{Daemon, eventually, http_get, http_post, metric_value, write_config};

/// A demo on a free port, scraped every second by the `demo` job.
fn demo_config() -> String {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    format!(
        "demo:\n  enabled: true\n  listen: 127.0.0.1:{port}\n  requests_per_second: 200\n  error_rate: 0.01\n\
         scrape:\n  targets:\n    - job: demo\n      urls: [http://127.0.0.1:{port}/metrics]\n      interval: 1s\n      timeout: 900ms\n"
    )
}

#[test]
fn serves_reloads_and_stops_cleanly() {
    let dir = tempfile::tempdir().expect("tempdir");
    let demo = demo_config();
    let config = write_config(dir.path(), &demo);
    let mut d = Daemon::start(&config);

    assert_eq!(d.get("/healthz"), (200, "ok\n".to_string()));
    eventually(Duration::from_secs(20), "/readyz 200", || {
        (d.get("/readyz").0 == 200).then_some(())
    });

    let (code, metrics) = d.get("/metrics");
    assert_eq!(code, 200);
    for series in [
        "vigil_build_info",
        "process_cpu_seconds_total",
        "process_resident_memory_bytes",
        "process_open_fds",
        "process_start_time_seconds",
        "vigil_config_last_reload_success_timestamp_seconds",
    ] {
        assert!(
            metric_value(&metrics, series).is_some(),
            "{series} missing:\n{metrics}"
        );
    }
    assert_eq!(
        metric_value(&metrics, "vigil_config_last_reload_successful"),
        Some(1.0)
    );
    assert!(metric_value(&metrics, "vigil_evaluation_rounds_total").unwrap_or(0.0) >= 1.0);

    // The demo service serves its own metrics, and its error rate can be raised at run time
    // through the agent's listener.
    let demo_url = d.demo_url.clone().expect("demo URL logged");
    let demo_metrics = eventually(Duration::from_secs(10), "demo traffic", || {
        let (_, text) = http_get(&format!("{demo_url}/metrics"));
        (metric_value(&text, "http_request_duration_seconds_count").unwrap_or(0.0) > 0.0)
            .then_some(text)
    });
    assert!(
        demo_metrics
            .contains("http_requests_total{handler=\"/api/cart\",method=\"GET\",code=\"500\"}")
    );
    let (code, body) = http_post(&format!("{}/demo/error-rate", d.url), "0.5");
    assert_eq!(code, 200, "{body}");
    let (_, text) = http_get(&format!("{demo_url}/metrics"));
    assert_eq!(metric_value(&text, "demo_error_rate"), Some(0.5));
    let (code, body) = http_post(&format!("{}/demo/error-rate", d.url), "2");
    assert_eq!(code, 400, "{body}");
    assert!(body.contains("not a fraction"), "{body}");

    // The demo is scraped: the targets API shows it up with samples, like Prometheus' API.
    let targets: serde_json::Value = eventually(Duration::from_secs(10), "demo target up", || {
        let (_, body) = d.get("/api/v1/targets");
        let v: serde_json::Value = serde_json::from_str(&body).ok()?;
        let t = &v["data"]["activeTargets"][0];
        (t["health"] == "up" && t["samples"].as_u64() > Some(0)).then_some(v)
    });
    let t = &targets["data"]["activeTargets"][0];
    assert_eq!(t["scrapePool"], "demo");
    assert_eq!(t["labels"]["job"], "demo");
    assert_eq!(t["scrapeInterval"], "1s");
    assert!(
        t["lastScrape"]
            .as_str()
            .is_some_and(|s| s.starts_with("20")),
        "{t}"
    );
    let (_, m) = d.get("/metrics");
    assert!(
        metric_value(&m, "vigil_scrapes_total{job=\"demo\"}").unwrap_or(0.0) >= 1.0,
        "{m}"
    );
    assert_eq!(
        metric_value(&m, "vigil_scrape_targets{job=\"demo\",health=\"up\"}"),
        Some(1.0)
    );

    // A bad config on SIGHUP: kept running on the old one, every problem logged.
    std::fs::write(
        &config,
        "agent:\n  listen: nope\n  evaluation_interval: soon\n",
    )
    .expect("write");
    d.signal("HUP");
    eventually(Duration::from_secs(10), "reload failure", || {
        let (_, m) = d.get("/metrics");
        (metric_value(&m, "vigil_config_last_reload_successful") == Some(0.0)).then_some(())
    });
    let log = d.log_text();
    assert!(
        log.contains("agent.listen: \\\"nope\\\" is not an address")
            || log.contains("agent.listen: \"nope\" is not an address"),
        "{log}"
    );
    assert!(
        log.contains("agent.evaluation_interval: invalid duration"),
        "{log}"
    );
    assert_eq!(d.get("/healthz").0, 200, "still serving after a bad reload");

    // A good config, noticed from the file change alone (no signal).
    let good = write_config(
        dir.path(),
        &demo.replace(
            "error_rate: 0.01\n",
            "error_rate: 0.01\n  latency_median: 10ms\n",
        ),
    );
    assert_eq!(good, config);
    eventually(Duration::from_secs(15), "reload by file change", || {
        let (_, m) = d.get("/metrics");
        (metric_value(&m, "vigil_config_last_reload_successful") == Some(1.0)).then_some(())
    });
    let (_, m) = d.get("/metrics");
    assert_eq!(
        metric_value(&m, "vigil_config_reloads_total{result=\"failure\"}"),
        Some(1.0)
    );
    assert!(
        metric_value(&m, "vigil_config_reloads_total{result=\"success\"}").unwrap_or(0.0) >= 1.0
    );
    let (_, settings) = http_get(&format!("{}/demo", d.url));
    assert!(
        settings.contains("\"latency_median_seconds\":0.01"),
        "{settings}"
    );

    // SIGHUP with a valid config reloads (and does not kill the process).
    d.signal("HUP");
    eventually(Duration::from_secs(10), "second successful reload", || {
        let (_, m) = d.get("/metrics");
        (metric_value(&m, "vigil_config_reloads_total{result=\"success\"}").unwrap_or(0.0) >= 2.0)
            .then_some(())
    });

    d.signal("TERM");
    let status = d.wait_exit(Duration::from_secs(5 + 5));
    assert!(status.success(), "exit status {status}:\n{}", d.log_text());
    assert!(d.log_text().contains("stopped"));

    // The ledger recorded the run and its clean stop.
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let runs = rt.block_on(async {
        let l = vigil::store::ledger::Ledger::open_sqlite(&dir.path().join("data"))
            .await
            .expect("ledger");
        let id = vigil::config::ConfigSource::File(config.clone())
            .load()
            .expect("cfg")
            .agent_id();
        l.runs(&id, 5).await.expect("runs")
    });
    assert_eq!(runs.len(), 1);
    assert!(runs[0].stopped_at_ms.is_some(), "{runs:?}");
}

#[test]
fn ready_after_the_first_round_without_demo_and_sigint_stops() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = write_config(dir.path(), "");
    let mut d = Daemon::start(&config);
    eventually(Duration::from_secs(20), "/readyz 200", || {
        (d.get("/readyz").0 == 200).then_some(())
    });
    assert!(d.demo_url.is_none());
    d.signal("INT");
    assert!(d.wait_exit(Duration::from_secs(10)).success());
}

#[test]
fn port_in_use_is_a_clear_runtime_error() {
    let holder = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = holder.local_addr().expect("addr").port();
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("vigil.yaml");
    std::fs::write(
        &path,
        format!(
            "agent:\n  listen: 127.0.0.1:{port}\n  data_dir: {}\n",
            dir.path().join("data").display()
        ),
    )
    .expect("write");
    let out = std::process::Command::new(common::vigil_bin())
        .args(["run", "--config"])
        .arg(&path)
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!(
            "cannot listen on 127.0.0.1:{port} for the HTTP API"
        )),
        "{err}"
    );
    assert!(err.contains("change agent.listen"), "{err}");
}
