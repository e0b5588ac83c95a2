//! Vigil and Prometheus scrape the same real exporter (Debian's node_exporter, started by the
//! test services) at about the same time: every series Prometheus stored, Vigil stored too, with
//! the same labels; host series (`node_*`) whose value did not move in Prometheus' samples around
//! Vigil's scrape have exactly the same value in Vigil, and counters that moved lie between
//! Prometheus' reads before and after Vigil's.

mod common;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use common::service;
use tokio_util::sync::CancellationToken;
use vigil::api::Readiness;
use vigil::config::scrape::ScrapeConfig;
use vigil::scrape::ScrapeManager;
use vigil::store::series::SeriesStore;

type Series = BTreeMap<String, String>;

/// Labels every series gets from the scraper itself, not from the exporter.
const TARGET_LABELS: [&str; 3] = ["job", "instance", "suite"];
const SYNTHETIC: [&str; 5] = [
    "up",
    "scrape_duration_seconds",
    "scrape_samples_scraped",
    "scrape_samples_post_metric_relabeling",
    "scrape_series_added",
];

struct TargetFile(PathBuf);
impl Drop for TargetFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

async fn prom_api(base: &str, query: &str) -> serde_json::Value {
    let resp: serde_json::Value = reqwest::Client::new()
        .get(format!("{base}/api/v1/query"))
        .query(&[("query", query)])
        .send()
        .await
        .unwrap_or_else(|e| {
            panic!(
                "Prometheus at {base} does not answer ({e}); start it with scripts/test-services.sh"
            )
        })
        .json()
        .await
        .expect("Prometheus JSON");
    assert_eq!(resp["status"], "success", "{resp}");
    resp
}

fn labels_of(metric: &serde_json::Value) -> Series {
    metric
        .as_object()
        .expect("labels")
        .iter()
        .filter(|(k, _)| !TARGET_LABELS.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
        .collect()
}

/// Instant vector: labels and value.
async fn prom_query(base: &str, query: &str) -> Vec<(Series, f64)> {
    let resp = prom_api(base, query).await;
    resp["data"]["result"]
        .as_array()
        .expect("vector")
        .iter()
        .map(|r| {
            (
                labels_of(&r["metric"]),
                parse_prom_value(r["value"][1].as_str().expect("value")),
            )
        })
        .collect()
}

/// Range selector: every raw sample (timestamp in ms, value) per series.
async fn prom_raw(base: &str, query: &str) -> BTreeMap<Series, Vec<(i64, f64)>> {
    let resp = prom_api(base, query).await;
    resp["data"]["result"]
        .as_array()
        .expect("matrix")
        .iter()
        .map(|r| {
            let points = r["values"]
                .as_array()
                .expect("values")
                .iter()
                .map(|p| {
                    (
                        (p[0].as_f64().expect("ts") * 1000.0).round() as i64,
                        parse_prom_value(p[1].as_str().expect("v")),
                    )
                })
                .collect();
            (labels_of(&r["metric"]), points)
        })
        .collect()
}

fn parse_prom_value(s: &str) -> f64 {
    match s {
        "NaN" => f64::NAN,
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        v => v.parse().expect("float"),
    }
}

fn same(a: f64, b: f64) -> bool {
    a == b || (a.is_nan() && b.is_nan())
}

#[tokio::test]
async fn vigil_stores_what_prometheus_stores_from_node_exporter() {
    let prom = service("VIGIL_TEST_PROMETHEUS_URL", "Prometheus");
    let prom_dir = service("VIGIL_TEST_PROMETHEUS_DIR", "Prometheus' config directory");
    let exporter = service("VIGIL_TEST_NODE_EXPORTER_URL", "node_exporter");
    let address = exporter
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_string();
    let suite = format!(
        "scrape-compare-{}-{}",
        std::process::id(),
        fastrand::u32(..)
    );
    let file = TargetFile(
        PathBuf::from(&prom_dir)
            .join("targets")
            .join(format!("{suite}.json")),
    );
    std::fs::write(
        &file.0,
        format!(r#"[{{"targets": ["{address}"], "labels": {{"suite": "{suite}"}}}}]"#),
    )
    .expect("write target file");

    // Prometheus picks the file up (file_sd refresh 1s, scrape interval 1s).
    let up_query = format!("up{{suite=\"{suite}\"}}");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let r = prom_query(&prom, &up_query).await;
        if r.first().is_some_and(|(_, v)| *v == 1.0) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "Prometheus did not scrape {address} within 30s (target file {})",
            file.0.display()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    // Let Prometheus finish a complete scrape after the first one.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let cfg: ScrapeConfig = serde_yaml::from_str(&format!(
        "{{interval: 1s, timeout: 900ms, targets: [{{job: node, urls: ['{exporter}/metrics']}}]}}"
    ))
    .expect("scrape config");
    let store = Arc::new(SeriesStore::new());
    let manager = ScrapeManager::new(&cfg, store.clone(), Arc::new(Readiness::default()));
    let cancel = CancellationToken::new();
    tokio::spawn(manager.clone().run(cancel.clone()));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let (ours, ours_ts): (BTreeMap<Series, f64>, i64) = loop {
        if let Some((_, snap)) = store.snapshots().into_iter().next() {
            if snap.len() > SYNTHETIC.len() {
                let values = snap
                    .samples()
                    .filter(|s| !SYNTHETIC.contains(&s.series.labels.name()))
                    .map(|s| {
                        let labels: Series = s
                            .series
                            .labels
                            .iter()
                            .filter(|(k, _)| !TARGET_LABELS.contains(k))
                            .map(|(k, v)| (k.to_string(), v.to_string()))
                            .collect();
                        (labels, s.value)
                    })
                    .collect();
                break (values, snap.collected_at_ms);
            }
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "Vigil did not scrape {exporter}: {:?}",
            manager.targets().first().map(|t| t.health())
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    cancel.cancel();
    // Let Prometheus scrape twice more, then read its raw samples around Vigil's scrape.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let raw = prom_raw(
        &prom,
        &format!("{{suite=\"{suite}\",__name__!~\"up|scrape_.*\"}}[8s]"),
    )
    .await;
    assert!(
        raw.len() > 100,
        "Prometheus has only {} series from node_exporter",
        raw.len()
    );

    let (mut exact, mut bracketed) = (0, 0);
    for (labels, points) in &raw {
        let ours_v = *ours.get(labels).unwrap_or_else(|| {
            panic!(
                "Prometheus stored {labels:?} but Vigil did not ({} vs {} series)",
                raw.len(),
                ours.len()
            )
        });
        let before = points.iter().rev().find(|(t, _)| *t <= ours_ts);
        let after = points.iter().find(|(t, _)| *t >= ours_ts);
        let (Some((_, lo)), Some((_, hi))) = (before, after) else {
            continue;
        };
        // The exporter's own go_*/process_*/promhttp_* series describe the process serving the
        // scrapes, which every scrape perturbs (a GC target can move and come back between two
        // Prometheus scrapes); exact equality is asked of the host state (node_*) only.
        let host_state = labels["__name__"].starts_with("node_");
        if host_state && points.iter().all(|(_, v)| same(*v, points[0].1)) {
            // Never moved in the window: Vigil must have read exactly that.
            assert!(
                same(ours_v, points[0].1),
                "{labels:?}: Prometheus read {} throughout, Vigil {ours_v}",
                points[0].1
            );
            exact += 1;
        } else if ["_total", "_count", "_sum", "_bucket"]
            .iter()
            .any(|s| labels["__name__"].ends_with(s))
        {
            // A counter that moved: Vigil's read lies between Prometheus' reads around it.
            assert!(
                *lo <= ours_v && ours_v <= *hi,
                "{labels:?}: Vigil {ours_v} outside Prometheus' {lo}..{hi}"
            );
            bracketed += 1;
        }
    }
    // Vigil stores nothing Prometheus does not know about.
    for labels in ours.keys() {
        assert!(
            raw.contains_key(labels),
            "Vigil stored {labels:?}, Prometheus did not"
        );
    }
    assert!(
        exact > 50,
        "too few stable series compared exactly: {exact}"
    );
    eprintln!(
        "{} series: {exact} equal exactly, {bracketed} counters between Prometheus' reads",
        raw.len()
    );
}
