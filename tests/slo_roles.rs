//! Many agents, one ledger: two `node` agents each scrape one target of a service and write
//! partial buckets to a shared Postgres ledger; an `aggregator` evaluates the sum. A standalone
//! agent scraping both targets must compute the same SLI: the same good and total events.
//!
//! The demo targets start with no traffic (so every agent's first scrape, its baseline, sees
//! the same counters), get a burst of traffic, and stop again before the comparison, so the
//! counts must agree exactly rather than within scrape-timing noise.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::{Daemon, eventually, http_post};
use serde_json::Value;

fn write(dir: &Path, name: &str, agent: &str, rest: &str) -> PathBuf {
    let sub = dir.join(name);
    std::fs::create_dir_all(&sub).expect("mkdir");
    std::fs::copy(dir.join("slo.yaml"), sub.join("slo.yaml")).expect("copy rules");
    let path = sub.join("vigil.yaml");
    let text = format!(
        "agent:\n  listen: 127.0.0.1:0\n  data_dir: {}\n  evaluation_interval: 1s\n  shutdown_grace_period: 5s\n{agent}{rest}rules: [slo.yaml]\n",
        sub.join("data").display()
    );
    std::fs::write(&path, text).expect("write config");
    path
}

fn one_day(d: &Daemon, service: &str) -> Option<(f64, f64)> {
    let (_, body) = d.get(&format!("/api/v1/slos/{service}/availability"));
    let v: Value = serde_json::from_str(&body).ok()?;
    let w = v["data"]["status"]["instances"][0]["windows"]
        .as_array()?
        .iter()
        .find(|w| w["window"] == "1d")?
        .clone();
    Some((w["good"].as_f64()?, w["total"].as_f64()?))
}

#[test]
fn aggregator_over_two_nodes_equals_one_standalone_agent() {
    let pg = common::service("VIGIL_TEST_PG_URL", "PostgreSQL");
    let env = [("VIGIL_TEST_LEDGER_URL", pg.as_str())];
    let u = format!("{}{}", std::process::id(), fastrand::u32(..));
    let service = format!("roles-{u}");
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("slo.yaml"),
        format!(
            "service: {service}\nslos:\n  - name: availability\n    objective: 99\n    window: 1d\n    sli:\n      ratio:\n        errors: http_requests_total{{job=\"shop\",code=~\"5..\"}}\n        total: http_requests_total{{job=\"shop\"}}\n"
        ),
    )
    .expect("rules");
    let (pa, pb) = (common::free_port(), common::free_port());
    let shared = "  ledger_url_env: VIGIL_TEST_LEDGER_URL\n";
    let demo = |port: u16, err: f64| {
        format!(
            "demo:\n  enabled: true\n  listen: 127.0.0.1:{port}\n  requests_per_second: 0\n  error_rate: {err}\n"
        )
    };
    let scrape = |urls: &str| {
        format!(
            "scrape:\n  targets:\n    - job: shop\n      urls: [{urls}]\n      interval: 1s\n      timeout: 900ms\n"
        )
    };
    let node_a = write(
        dir.path(),
        "a",
        &format!("  id: node-a-{u}\n  role: node\n{shared}"),
        &format!(
            "{}{}",
            demo(pa, 0.1),
            scrape(&format!("'http://127.0.0.1:{pa}/metrics'"))
        ),
    );
    let node_b = write(
        dir.path(),
        "b",
        &format!("  id: node-b-{u}\n  role: node\n{shared}"),
        &format!(
            "{}{}",
            demo(pb, 0.3),
            scrape(&format!("'http://127.0.0.1:{pb}/metrics'"))
        ),
    );
    let standalone = write(
        dir.path(),
        "s",
        &format!("  id: standalone-{u}\n"),
        &scrape(&format!(
            "'http://127.0.0.1:{pa}/metrics', 'http://127.0.0.1:{pb}/metrics'"
        )),
    );
    let aggregator = write(
        dir.path(),
        "g",
        &format!("  id: aggregator-{u}\n  role: aggregator\n{shared}"),
        "",
    );

    let a = Daemon::start_with_env(&node_a, &env);
    let b = Daemon::start_with_env(&node_b, &env);
    let s = Daemon::start(&standalone);
    let g = Daemon::start_with_env(&aggregator, &env);
    for d in [&a, &b, &s, &g] {
        eventually(Duration::from_secs(30), "/readyz", || {
            (d.get("/readyz").0 == 200).then_some(())
        });
    }
    // Every agent has its baseline (all counters 0); a node evaluates nothing itself.
    std::thread::sleep(Duration::from_millis(2500));
    let (_, body) = a.get("/api/v1/slos");
    assert_eq!(
        serde_json::from_str::<Value>(&body).expect("json")["data"],
        serde_json::json!([]),
        "a node reports no SLOs"
    );

    for port in [pa, pb] {
        assert_eq!(
            http_post(
                &format!("http://127.0.0.1:{port}/demo/requests-per-second"),
                "400"
            )
            .0,
            200
        );
    }
    std::thread::sleep(Duration::from_secs(4));
    for port in [pa, pb] {
        assert_eq!(
            http_post(
                &format!("http://127.0.0.1:{port}/demo/requests-per-second"),
                "0"
            )
            .0,
            200
        );
    }
    // Once every agent has scraped the final counters, the aggregator's sum equals the
    // standalone agent's count, exactly.
    let (sa, ga) = eventually(Duration::from_secs(30), "aggregator == standalone", || {
        let st = one_day(&s, &service)?;
        let ag = one_day(&g, &service)?;
        (st == ag && st.1 > 1000.0).then_some((st, ag))
    });
    // And it is not trivially equal: the two targets had different error rates (10% and 30%).
    let error_ratio = 1.0 - sa.0 / sa.1;
    assert!(
        error_ratio > 0.12 && error_ratio < 0.28,
        "mixed error ratio {error_ratio} ({sa:?}, {ga:?})"
    );
}
